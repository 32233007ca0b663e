/*
 * dsn.c -- build delivery status notifications (RFC 3464, RFC 6522).
 *
 * Purpose: turn a queue envelope and its queued message into one DSN
 * for the recipients of one kind (failed, delayed, delivered), with the
 * RFC 3461 parameters honoured: NOTIFY picks the recipients, ORCPT and
 * ENVID (xtext-decoded) are reported, RET picks how much of the
 * original comes back.  The message:
 *
 *	From, To, Subject, Date, Message-ID, Auto-Submitted,
 *	MIME-Version, Content-Type: multipart/report; boundary="B"
 *
 *	preamble
 *	--B	text/plain: the explanation, one line per recipient
 *	--B	message/delivery-status: per-message fields, then one
 *		block per recipient
 *	--B	message/rfc822 (RET=FULL) or text/rfc822-headers
 *	--B--
 *
 * Each part's content is followed by CRLF "--B": that CRLF belongs to
 * the delimiter (RFC 2046 5.1.1), so a returned original is byte exact.
 *
 * Runs in: mailsrv, any thread (no shared state; the RNG is OpenSSL's).
 * Failure policy: negative enum err with err_set() (see dsn.h); OOM is
 * fatal (xmalloc).  Output buffers have a hard maximum (DSN_MSG_MAX).
 * SECURITY: every string from the envelope (addresses, ORCPT, ENVID,
 * statuses, which may come from a remote server) is untrusted: it goes
 * through dsn_clean() before it reaches a header or a field, so no
 * CR/LF or control character can start a new header line or field, and
 * each is capped so that, folded at 78 columns, no line reaches 998
 * octets.  The boundary is random and checked against every part.
 * Copies of the message content (header copy, the result) are sized
 * before they are written (no realloc leaves plaintext in freed memory)
 * and wiped when freed here; the caller wipes the result.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/xmalloc.h"
#include "mailsrv/dsn.h"

#define DSN_LINE_MAX	998	/* RFC 5322 2.1.1, without the CRLF */
#define DSN_FOLD_COL	78	/* fold header fields and text here */
#define DSN_STR_MAX	900	/* one cleaned untrusted string */
#define DSN_SPLIT_COL	990	/* split longer original header lines */
#define DSN_MTA_MAX	253
#define DSN_RAND_LEN	16	/* random bytes in a boundary/Message-ID */
#define DSN_TRIES	16	/* boundaries tried before giving up */

/* Why part 3 holds only the header section although RET=FULL. */
enum dsn_why {
	DSN_WHY_NONE = 0,
	DSN_WHY_BIG,		/* over DSN_ORIG_MAX */
	DSN_WHY_UNSAFE,		/* NUL, bare CR/LF, or a line over 998 */
};

/* A bounded output buffer whose first error sticks. */
struct dsn_out {
	struct buf	b;
	int		rc;
};

struct dsn {
	const struct queue_env	*env;
	enum dsn_kind		 kind;
	const char		*mta;
	int			 utf8;		/* env->smtputf8 */
	struct dsn_out		 text;		/* part 1 content */
	struct dsn_out		 status;	/* part 2 content */
	unsigned char		*hdrs;		/* header copy (owned) */
	size_t			 hdrs_len;
	const unsigned char	*part3;		/* part 3 content */
	size_t			 part3_len;
	int			 full;		/* part 3 is the message */
	int			 hdr8;		/* its headers are 8-bit */
	int			 why;		/* enum dsn_why */
	int			 cut;		/* header copy truncated */
	char			 boundary[64];
};

static const char *const dsn_subject[] = {
	[DSN_FAILURE] = "Undelivered Mail Returned to Sender",
	[DSN_DELAY] = "Delayed Mail (still being retried)",
	[DSN_SUCCESS] = "Successful Mail Delivery Report",
};
static const char *const dsn_action[] = {
	[DSN_FAILURE] = "failed",
	[DSN_DELAY] = "delayed",
	[DSN_SUCCESS] = "delivered",
};
static const char *const dsn_default_code[] = {
	[DSN_FAILURE] = "5.0.0",
	[DSN_DELAY] = "4.0.0",
	[DSN_SUCCESS] = "2.0.0",
};
static const char *const dsn_intro[] = {
	[DSN_FAILURE] = "Your message could not be delivered to one or more "
	    "recipients.  The reasons are given below; the delivery report "
	    "and the returned message are attached.",
	[DSN_DELAY] = "Delivery of your message to the recipients below has "
	    "been delayed.  The mail system will keep trying; you do not "
	    "need to send it again yet.",
	[DSN_SUCCESS] = ("Your message was delivered to the recipients "
	    "below."),
};

static void
out_init(struct dsn_out *o)
{
	buf_init(&o->b, DSN_MSG_MAX);
	o->rc = 0;
}

static void
out_mem(struct dsn_out *o, const void *p, size_t n)
{
	if (o->rc == 0)
		o->rc = buf_append(&o->b, p, n);
}

static void
out_str(struct dsn_out *o, const char *s)
{
	out_mem(o, s, strlen(s));
}

static int
dsn_has8bit(const void *p, size_t n)
{
	const unsigned char	*s = p;
	size_t			 i;

	for (i = 0; i < n; i++)
		if (s[i] >= 0x80)
			return 1;
	return 0;
}

static int
dsn_contains(const void *hay, size_t n, const char *needle)
{
	return n > 0 && memmem(hay, n, needle, strlen(needle)) != NULL;
}

/*
 * Length of the valid UTF-8 sequence at p (n bytes left), or 0 for an
 * invalid one (overlong, surrogate, beyond U+10FFFF, truncated) and for
 * the C1 controls U+0080..U+009F.
 */
static size_t
dsn_utf8_len(const unsigned char *p, size_t n)
{
	unsigned char	lo = 0x80, hi = 0xbf;
	size_t		len, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (len > n)
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	else if (p[0] == 0xc2)
		lo = 0xa0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/*
 * A copy of an untrusted string fit for a header field or a text line:
 * control characters and white space become spaces, runs of them one
 * space, none leading or trailing; a byte >= 0x80 stays only inside
 * valid UTF-8 and only when utf8, else it becomes '?'; at most
 * DSN_STR_MAX bytes, cut on a character boundary.  Caller frees.
 */
static char *
dsn_clean(const char *s, int utf8)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 n = strlen(s), i = 0, o = 0, l;
	char			*r = xmalloc(DSN_STR_MAX + 1);
	int			 space = 0;

	while (i < n) {
		if (p[i] <= 0x20 || p[i] == 0x7f) {
			space = o > 0;
			i++;
			continue;
		}
		if (p[i] < 0x80)
			l = 1;
		else if (!utf8 || (l = dsn_utf8_len(p + i, n - i)) == 0)
			l = 0;
		if (o + (l ? l : 1) + space > DSN_STR_MAX)
			break;
		if (space)
			r[o++] = ' ';
		space = 0;
		if (l == 0) {
			r[o++] = '?';
			i++;
		} else {
			memcpy(r + o, p + i, l);
			o += l;
			i += l;
		}
	}
	r[o] = '\0';
	return r;
}

static int
dsn_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * Decode xtext (RFC 3461 4): "+HH" is the byte 0xHH; anything else,
 * a '+' not followed by two hex digits included, stands for itself.  A
 * decoded NUL becomes a space.  Caller frees (and cleans).
 */
static char *
dsn_xtext_decode(const char *s)
{
	size_t	n = strlen(s), i, o = 0;
	char	*r = xmalloc(n + 1);
	int	hi, lo;

	for (i = 0; i < n; i++) {
		if (s[i] == '+' && (hi = dsn_hexval(s[i + 1])) >= 0 &&
		    (lo = dsn_hexval(s[i + 2])) >= 0) {
			r[o] = (char)(hi << 4 | lo);
			if (r[o] == '\0')
				r[o] = ' ';
			o++;
			i += 2;
		} else
			r[o++] = s[i];
	}
	r[o] = '\0';
	return r;
}

/* RFC 5322 3.3 date-time in UTC; ERR_INVAL outside 1900..9999. */
static int
dsn_date(char *out, size_t len, int64_t t)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed",
	    "Thu", "Fri", "Sat" };
	static const char *const mons[] = { "Jan", "Feb", "Mar", "Apr",
	    "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t		tt = (time_t)t;
	struct tm	tm;

	if ((int64_t)tt != t || gmtime_r(&tt, &tm) == NULL ||
	    tm.tm_year < 0 || tm.tm_year > 9999 - 1900 ||
	    tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
	    tm.tm_mon > 11)
		return ERR_INVAL;
	(void)snprintf(out, len, "%s, %02d %s %04d %02d:%02d:%02d +0000",
	    days[tm.tm_wday], tm.tm_mday, mons[tm.tm_mon], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec);
	return 0;
}

/*
 * Write first, then the words of value (separated by single spaces)
 * folded before a word that would pass DSN_FOLD_COL: the fold is CRLF
 * and cont.  A header field passes cont " " (unfolding restores the
 * value), a text paragraph an indent.  Never folds before the first
 * word; words are at most DSN_STR_MAX bytes, so no line nears 998.
 */
static void
dsn_fold(struct dsn_out *o, const char *first, const char *value,
    const char *cont)
{
	const char	*p = value;
	size_t		 col = strlen(first), w;
	int		 words = 0;

	out_str(o, first);
	while (*p == ' ')
		p++;
	while (*p != '\0') {
		w = strcspn(p, " ");
		if (words > 0 && col + 1 + w > DSN_FOLD_COL) {
			out_str(o, "\r\n");
			out_str(o, cont);
			col = strlen(cont);
		} else if (words > 0) {
			out_str(o, " ");
			col++;
		}
		out_mem(o, p, w);
		col += w;
		words++;
		p += w;
		while (*p == ' ')
			p++;
	}
	out_str(o, "\r\n");
}

/* "Name: value" folded; name is ours, value cleaned or ours. */
static void
dsn_field(struct dsn_out *o, const char *name, const char *value)
{
	char	first[64];

	(void)snprintf(first, sizeof(first), "%s: ", name);
	dsn_fold(o, first, value, " ");
}

static int
dsn_wanted(const struct queue_rcpt *r, enum dsn_kind kind)
{
	if (r->addr == NULL || r->addr[0] == '\0' ||
	    (r->notify & QUEUE_NOTIFY_NEVER))
		return 0;
	switch (kind) {
	case DSN_FAILURE:
		return r->state == QUEUE_RCPT_FAILED && (r->notify == 0 ||
		    (r->notify & QUEUE_NOTIFY_FAILURE));
	case DSN_DELAY:
		return r->state == QUEUE_RCPT_PENDING && !r->delayed &&
		    (r->notify & QUEUE_NOTIFY_DELAY);
	case DSN_SUCCESS:
		return r->state == QUEUE_RCPT_DELIVERED &&
		    (r->notify & QUEUE_NOTIFY_SUCCESS);
	}
	return 0;
}

size_t
dsn_count(const struct queue_env *env, enum dsn_kind kind)
{
	size_t	i, n = 0;

	if (env == NULL || env->rcpts == NULL)
		return 0;
	for (i = 0; i < env->nrcpts; i++)
		if (dsn_wanted(&env->rcpts[i], kind))
			n++;
	return n;
}

/*
 * An RFC 3463 code "c.s.d" (subject and detail 1-3 digits) whose class
 * fits the kind: 4 or 5 for a failure (4.4.7 is a common expiry code),
 * 4 for a delay, 2 for a success.
 */
static int
dsn_code_ok(const char *p, size_t n, enum dsn_kind kind)
{
	size_t	i, run = 0;
	int	dots = 0;

	if (n < 5 || n > 9 || p[1] != '.')
		return 0;
	if ((kind == DSN_FAILURE && p[0] != '5' && p[0] != '4') ||
	    (kind == DSN_DELAY && p[0] != '4') ||
	    (kind == DSN_SUCCESS && p[0] != '2'))
		return 0;
	for (i = 2; i < n; i++) {
		if (p[i] == '.') {
			if (run == 0 || ++dots > 1)
				return 0;
			run = 0;
		} else if (p[i] >= '0' && p[i] <= '9') {
			if (++run > 3)
				return 0;
		} else
			return 0;
	}
	return dots == 1 && run > 0;
}

/*
 * Split a status "5.1.1 text" into its code (code[16]) and the rest
 * (*text, borrowed from status).  No status, or one without a fitting
 * code first, gives the kind's default code and the whole as text.
 */
static void
dsn_status_split(const char *status, enum dsn_kind kind, char *code,
    const char **text)
{
	const char	*p = status;
	size_t		 n;

	(void)snprintf(code, 16, "%s", dsn_default_code[kind]);
	*text = status != NULL ? status : "";
	if (status == NULL)
		return;
	while (*p == ' ' || *p == '\t')
		p++;
	n = strcspn(p, " \t\r\n");
	if (!dsn_code_ok(p, n, kind))
		return;
	memcpy(code, p, n);
	code[n] = '\0';
	*text = p + n;
}

/*
 * Length of the header section of the message m (n bytes): up to and
 * including the line end before the first empty line (CRLF or LF); the
 * whole message if there is none.
 */
static size_t
dsn_header_len(const unsigned char *m, size_t n)
{
	size_t	i;

	if (n > 0 && (m[0] == '\n' || (m[0] == '\r' && n > 1 &&
	    m[1] == '\n')))
		return 0;
	for (i = 0; i + 1 < n; i++) {
		if (m[i] != '\n')
			continue;
		if (m[i + 1] == '\n' || (m[i + 1] == '\r' && i + 2 < n &&
		    m[i + 2] == '\n'))
			return i + 1;
	}
	return n;
}

/* 1 if m can go out as 7bit/8bit MIME content unchanged. */
static int
dsn_mime_safe(const unsigned char *m, size_t n)
{
	size_t	i, col = 0;

	for (i = 0; i < n; i++) {
		if (m[i] == '\0' || m[i] == '\n')
			return 0;
		if (m[i] == '\r') {
			if (i + 1 >= n || m[i + 1] != '\n')
				return 0;
			i++;
			col = 0;
			continue;
		}
		if (++col > DSN_LINE_MAX)
			return 0;
	}
	return 1;
}

/*
 * Copy the header section h (n bytes) into dst, or only count when dst
 * is NULL; returns the length.  Line ends (CRLF, bare LF, bare CR)
 * become CRLF, NUL becomes '?', a line longer than DSN_SPLIT_COL is
 * split into continuation lines (CRLF TAB), and the copy ends in CRLF.
 */
static size_t
dsn_hdrs_copy(unsigned char *dst, const unsigned char *h, size_t n)
{
	size_t	i, o = 0, col = 0;

#define PUT(c)	do { if (dst != NULL) dst[o] = (c); o++; } while (0)
	for (i = 0; i < n; i++) {
		if (h[i] == '\r' || h[i] == '\n') {
			if (h[i] == '\r' && i + 1 < n && h[i + 1] == '\n')
				i++;
			PUT('\r');
			PUT('\n');
			col = 0;
			continue;
		}
		if (col >= DSN_SPLIT_COL) {
			PUT('\r');
			PUT('\n');
			PUT('\t');
			col = 1;
		}
		PUT(h[i] == '\0' ? '?' : h[i]);
		col++;
	}
	if (col > 0) {
		PUT('\r');
		PUT('\n');
	}
#undef PUT
	return o;
}

/* Choose part 3: the whole message, or a copy of its header section. */
static void
dsn_orig(struct dsn *d, const unsigned char *m, size_t n)
{
	size_t	hl;

	if (d->env->ret_full) {
		if (n > DSN_ORIG_MAX)
			d->why = DSN_WHY_BIG;
		else if (!dsn_mime_safe(m, n))
			d->why = DSN_WHY_UNSAFE;
		else {
			d->full = 1;
			d->part3 = m;
			d->part3_len = n;
			d->hdr8 = dsn_has8bit(m, dsn_header_len(m, n));
			return;
		}
	}
	hl = dsn_header_len(m, n);
	if (hl > DSN_ORIG_MAX) {
		/* cut after the last whole line that fits */
		d->cut = 1;
		hl = DSN_ORIG_MAX;
		while (hl > 0 && m[hl - 1] != '\n')
			hl--;
		if (hl == 0)
			hl = DSN_ORIG_MAX;
	}
	d->hdrs_len = dsn_hdrs_copy(NULL, m, hl);
	d->hdrs = xmalloc(d->hdrs_len + 1);
	(void)dsn_hdrs_copy(d->hdrs, m, hl);
	d->part3 = d->hdrs;
	d->part3_len = d->hdrs_len;
	d->hdr8 = dsn_has8bit(d->hdrs, d->hdrs_len);
}

/* Part 1: the explanation for people. */
static void
dsn_text(struct dsn *d)
{
	const struct queue_rcpt	*r;
	struct dsn_out		*o = &d->text;
	char			*addr, *st, *line;
	size_t			 i;

	out_str(o, "This is the mail system at host ");
	out_str(o, d->mta);
	out_str(o, ".\r\n\r\n");
	dsn_fold(o, "", dsn_intro[d->kind], "");
	out_str(o, "\r\n");
	for (i = 0; i < d->env->nrcpts; i++) {
		r = &d->env->rcpts[i];
		if (!dsn_wanted(r, d->kind))
			continue;
		addr = dsn_clean(r->addr, d->utf8);
		st = dsn_clean(r->status != NULL ? r->status : "", d->utf8);
		xasprintf(&line, "<%s>: %s", addr, st[0] != '\0' ? st :
		    dsn_action[d->kind]);
		dsn_fold(o, "  ", line, "    ");
		free(line);
		free(st);
		free(addr);
	}
	if (d->why != DSN_WHY_NONE || d->cut) {
		out_str(o, "\r\n");
		dsn_fold(o, "", d->why == DSN_WHY_BIG ? "The message is too "
		    "large to be returned whole; only its header section is "
		    "attached." : d->why == DSN_WHY_UNSAFE ? "The message "
		    "cannot be returned whole as it is (NUL bytes, bare CR or "
		    "LF, or over-long lines); only its header section is "
		    "attached." : "The header section of the message is too "
		    "large; only its beginning is attached.", "");
	}
}

/* One recipient block of part 2. */
static void
dsn_status_rcpt(struct dsn *d, const struct queue_rcpt *r)
{
	struct dsn_out	*o = &d->status;
	const char	*text;
	char		 code[16], *s, *v;

	out_str(o, "\r\n");
	if (r->orcpt != NULL) {
		v = dsn_xtext_decode(r->orcpt);
		s = dsn_clean(v, d->utf8);
		/* addr-type ";" address, else it is not reported */
		if (s[0] != ';' && strchr(s, ';') != NULL)
			dsn_field(o, "Original-Recipient", s);
		free(s);
		free(v);
	}
	s = dsn_clean(r->addr, d->utf8);
	xasprintf(&v, "%s; %s", dsn_has8bit(s, strlen(s)) ? "utf-8" :
	    "rfc822", s);
	dsn_field(o, "Final-Recipient", v);
	free(v);
	free(s);
	dsn_field(o, "Action", dsn_action[d->kind]);
	dsn_status_split(r->status, d->kind, code, &text);
	dsn_field(o, "Status", code);
	s = dsn_clean(text, d->utf8);
	if (s[0] != '\0') {
		xasprintf(&v, "smtp; %s", s);
		dsn_field(o, "Diagnostic-Code", v);
		free(v);
	}
	free(s);
}

static int
dsn_queue_id_ok(const char *id)
{
	size_t	i;

	for (i = 0; i < QUEUE_ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		    (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	return id[QUEUE_ID_LEN] == '\0';
}

/* Part 2: per-message fields, then one block per reported recipient. */
static void
dsn_status(struct dsn *d)
{
	const struct queue_env	*env = d->env;
	struct dsn_out		*o = &d->status;
	char			 date[64], *s, *v;
	size_t			 i;

	xasprintf(&v, "dns; %s", d->mta);
	dsn_field(o, "Reporting-MTA", v);
	free(v);
	if (dsn_queue_id_ok(env->id))
		dsn_field(o, "X-Amanat-Queue-ID", env->id);
	if (env->envid != NULL) {
		v = dsn_xtext_decode(env->envid);
		s = dsn_clean(v, d->utf8);
		if (s[0] != '\0')
			dsn_field(o, "Original-Envelope-Id", s);
		free(s);
		free(v);
	}
	if (env->created > 0 && dsn_date(date, sizeof(date),
	    env->created) == 0)
		dsn_field(o, "Arrival-Date", date);
	for (i = 0; i < env->nrcpts; i++)
		if (dsn_wanted(&env->rcpts[i], d->kind))
			dsn_status_rcpt(d, &env->rcpts[i]);
}

static int
dsn_random_hex(char *out)
{
	unsigned char	r[DSN_RAND_LEN];
	size_t		i;

	if (RAND_bytes(r, sizeof(r)) != 1) {
		err_set(ERR_GENERIC, "dsn: RAND_bytes failed");
		return ERR_GENERIC;
	}
	for (i = 0; i < sizeof(r); i++)
		(void)snprintf(out + 2 * i, 3, "%02x", r[i]);
	return 0;
}

/* A random boundary that occurs in no part ("=_" is never in QP/base64). */
static int
dsn_boundary(struct dsn *d)
{
	char	hex[2 * DSN_RAND_LEN + 1];
	int	i, rc;

	for (i = 0; i < DSN_TRIES; i++) {
		if ((rc = dsn_random_hex(hex)) < 0)
			return rc;
		(void)snprintf(d->boundary, sizeof(d->boundary),
		    "=_amanat_dsn_%s", hex);
		if (!dsn_contains(d->text.b.data, d->text.b.len, d->boundary) &&
		    !dsn_contains(d->status.b.data, d->status.b.len,
		    d->boundary) &&
		    !dsn_contains(d->part3, d->part3_len, d->boundary))
			return 0;
	}
	err_set(ERR_GENERIC, "dsn: no usable boundary");
	return ERR_GENERIC;
}

/* The top-level header section, then the preamble. */
static void
dsn_top(struct dsn *d, struct dsn_out *o, const char *date,
    const char *msgid, int eight)
{
	char	*s, *v;

	xasprintf(&v, "\"Mail Delivery System\" <MAILER-DAEMON@%s>", d->mta);
	dsn_field(o, "From", v);
	free(v);
	s = dsn_clean(d->env->sender, d->utf8);
	xasprintf(&v, "<%s>", s);
	dsn_field(o, "To", v);
	free(v);
	free(s);
	dsn_field(o, "Subject", dsn_subject[d->kind]);
	dsn_field(o, "Date", date);
	xasprintf(&v, "<%s@%s>", msgid, d->mta);
	dsn_field(o, "Message-ID", v);
	free(v);
	dsn_field(o, "Auto-Submitted", "auto-replied");
	dsn_field(o, "MIME-Version", "1.0");
	xasprintf(&v, "multipart/report; report-type=delivery-status; "
	    "boundary=\"%s\"", d->boundary);
	dsn_field(o, "Content-Type", v);
	free(v);
	if (eight)
		dsn_field(o, "Content-Transfer-Encoding", "8bit");
	out_str(o, "\r\nThis is a MIME-encapsulated message.");
}

/* A delimiter and the header section of one part. */
static void
dsn_part_head(struct dsn *d, struct dsn_out *o, const char *desc,
    const char *ctype, int eight)
{
	out_str(o, "\r\n--");
	out_str(o, d->boundary);
	out_str(o, "\r\n");
	dsn_field(o, "Content-Description", desc);
	dsn_field(o, "Content-Type", ctype);
	if (eight)
		dsn_field(o, "Content-Transfer-Encoding", "8bit");
	out_str(o, "\r\n");
}

/*
 * Put the message together into one allocation of its exact size: the
 * glue (headers, delimiters) goes to small buffers, the contents are
 * copied once.
 */
static int
dsn_assemble(struct dsn *d, char **out, size_t *len, const char *date,
    const char *msgid)
{
	struct dsn_out	 g[4];
	const void	*piece[7];
	size_t		 plen[7], total = 0, i;
	int		 e1, e2, e3, rc = 0;
	char		*m;

	e1 = dsn_has8bit(d->text.b.data, d->text.b.len);
	e2 = dsn_has8bit(d->status.b.data, d->status.b.len);
	e3 = dsn_has8bit(d->part3, d->part3_len);
	for (i = 0; i < 4; i++)
		out_init(&g[i]);
	dsn_top(d, &g[0], date, msgid, e1 || e2 || e3);
	dsn_part_head(d, &g[0], "Notification", e1 ?
	    "text/plain; charset=utf-8" : "text/plain; charset=us-ascii", e1);
	dsn_part_head(d, &g[1], "Delivery report", e2 ?
	    "message/global-delivery-status" : "message/delivery-status", e2);
	dsn_part_head(d, &g[2], d->full ? "Returned message" :
	    "Returned message headers", d->full ? (d->utf8 && d->hdr8 ?
	    "message/global" : "message/rfc822") : (d->utf8 && d->hdr8 ?
	    "message/global-headers" : "text/rfc822-headers"), e3);
	out_str(&g[3], "\r\n--");
	out_str(&g[3], d->boundary);
	out_str(&g[3], "--\r\n");
	piece[0] = g[0].b.data, plen[0] = g[0].b.len;
	piece[1] = d->text.b.data, plen[1] = d->text.b.len;
	piece[2] = g[1].b.data, plen[2] = g[1].b.len;
	piece[3] = d->status.b.data, plen[3] = d->status.b.len;
	piece[4] = g[2].b.data, plen[4] = g[2].b.len;
	piece[5] = d->part3, plen[5] = d->part3_len;
	piece[6] = g[3].b.data, plen[6] = g[3].b.len;
	for (i = 0; i < 4 && rc == 0; i++)
		rc = g[i].rc;
	for (i = 0; i < 7 && rc == 0; i++) {
		if (plen[i] > DSN_MSG_MAX - total) {
			err_set(ERR_TOOBIG, "dsn: over %d bytes", DSN_MSG_MAX);
			rc = ERR_TOOBIG;
		} else
			total += plen[i];
	}
	if (rc == 0) {
		m = xmalloc(total + 1);
		for (total = 0, i = 0; i < 7; i++) {
			if (plen[i] > 0)
				memcpy(m + total, piece[i], plen[i]);
			total += plen[i];
		}
		m[total] = '\0';
		*out = m;
		*len = total;
	}
	for (i = 0; i < 4; i++)
		buf_free(&g[i].b);
	return rc;
}

static int
dsn_mta_ok(const char *s)
{
	size_t	i, n;

	if (s == NULL || (n = strlen(s)) == 0 || n > DSN_MTA_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '.' || s[i] == '-' || s[i] == '_'))
			return 0;
	return 1;
}

static int
dsn_check(const struct queue_env *env, enum dsn_kind kind, const char *mta,
    const void *orig, size_t orig_len)
{
	char	*s;
	int	 empty;

	if (env == NULL || (kind != DSN_FAILURE && kind != DSN_DELAY &&
	    kind != DSN_SUCCESS) || (orig == NULL && orig_len > 0)) {
		err_set(ERR_INVAL, "dsn: bad arguments");
		return ERR_INVAL;
	}
	if (!dsn_mta_ok(mta)) {
		err_set(ERR_INVAL, "dsn: bad reporting MTA name");
		return ERR_INVAL;
	}
	if (env->sender == NULL || env->sender[0] == '\0') {
		err_set(ERR_INVAL, "dsn: null sender (never bounce a bounce)");
		return ERR_INVAL;
	}
	s = dsn_clean(env->sender, env->smtputf8);
	empty = s[0] == '\0';
	free(s);
	if (empty) {
		err_set(ERR_INVAL, "dsn: unusable sender");
		return ERR_INVAL;
	}
	if (dsn_count(env, kind) == 0) {
		err_set(ERR_INVAL, "dsn: no recipient to report");
		return ERR_INVAL;
	}
	return 0;
}

int
dsn_build(char **out, size_t *len, const struct queue_env *env,
    enum dsn_kind kind, const char *reporting_mta, int64_t now,
    const void *orig, size_t orig_len)
{
	struct dsn	d;
	char		date[64], msgid[2 * DSN_RAND_LEN + 1];
	int		rc;

	if (out == NULL || len == NULL) {
		err_set(ERR_INVAL, "dsn: bad arguments");
		return ERR_INVAL;
	}
	*out = NULL;
	*len = 0;
	if ((rc = dsn_check(env, kind, reporting_mta, orig, orig_len)) < 0)
		return rc;
	if (dsn_date(date, sizeof(date), now) < 0) {
		err_set(ERR_INVAL, "dsn: time out of range");
		return ERR_INVAL;
	}
	memset(&d, 0, sizeof(d));
	d.env = env;
	d.kind = kind;
	d.mta = reporting_mta;
	d.utf8 = env->smtputf8 != 0;
	out_init(&d.text);
	out_init(&d.status);
	dsn_orig(&d, orig, orig_len);
	dsn_text(&d);
	dsn_status(&d);
	if ((rc = d.text.rc) < 0 || (rc = d.status.rc) < 0)
		goto done;
	if ((rc = dsn_boundary(&d)) < 0 || (rc = dsn_random_hex(msgid)) < 0)
		goto done;
	rc = dsn_assemble(&d, out, len, date, msgid);
done:
	buf_free_secret(&d.text.b);
	buf_free_secret(&d.status.b);
	xfreezero(d.hdrs, d.hdrs_len + 1);
	return rc;
}
