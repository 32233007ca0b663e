/*
 * imap_msg_env.c -- what IMAP reads from a message's header fields:
 * ENVELOPE, with its RFC 5322 address-list parser, and the Date: field
 * as a timestamp (contract in imap_msg.h; the parsed message and the
 * header helpers come from imap_msg.c through imap_msg_int.h).
 *
 * Addresses have their own small tokenizer (words, quoted strings,
 * domain literals, specials, comments); dates use the structured field
 * lexer of imap_msg.c.  Both skip nested comments iteratively.
 *
 * Runs in: the mailsrv process, worker threads (a parsed message is
 * read-only: several threads may render it at once).
 * Failure policy: malformed fields never fail, they are read as well as
 * they can be (a missing local part or domain is MISSING_MAILBOX /
 * MISSING_DOMAIN); the only errors are a full output buffer
 * (ERR_TOOBIG) and an absent or unparsable Date: (ERR_NOTFOUND).
 * Allocation failure is fatal (xmalloc).
 * SECURITY: header values are peer data.  Addresses are bounded by
 * IMAP_MSG_ADDR_MAX per field, every scan by the field's length, and
 * comments are counted, never recursed into; strings go out through
 * imap_fmt_string(), so no value escapes the IMAP framing.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/err.h"
#include "mailsrv/imap/imap_format.h"
#include "mailsrv/imap/imap_msg.h"
#include "mailsrv/imap/imap_msg_int.h"

/* --------------------------------------------------------- addresses */

enum { T_END, T_WORD, T_QSTR, T_DLIT, T_SPEC };

struct atok {
	int	type;
	char	c;		/* T_SPEC */
	size_t	s, e;		/* T_QSTR: inside the quotes */
	int	ws;		/* white space or a comment before it */
};

struct alex {
	const char	*v;
	size_t		 n, i;
	size_t		 cs, ce;	/* the last comment's text */
	int		 comment;
};

static int
is_aspecial(char c)
{
	return c != '\0' && strchr("<>:;@,.", c) != NULL;
}

static int
ends_word(char c)
{
	return is_aspecial(c) || is_wsp(c) || c == '\r' || c == '\n' ||
	    c == '(' || c == '"' || c == '[';
}

/* Skip white space and comments (nested, iteratively). */
static void
alex_skip(struct alex *x, struct atok *t)
{
	size_t	depth, start;
	char	c;

	while (x->i < x->n) {
		c = x->v[x->i];
		if (is_wsp(c) || c == '\r' || c == '\n') {
			x->i++;
			t->ws = 1;
			continue;
		}
		if (c != '(')
			return;
		start = ++x->i;
		for (depth = 1; x->i < x->n && depth > 0; x->i++) {
			c = x->v[x->i];
			if (c == '\\' && x->i + 1 < x->n)
				x->i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
		}
		x->cs = start;
		x->ce = depth == 0 ? x->i - 1 : x->i;
		x->comment = 1;
		t->ws = 1;
	}
}

static void
alex_next(struct alex *x, struct atok *t)
{
	char	c;

	t->ws = 0;
	alex_skip(x, t);
	if (x->i >= x->n) {
		t->type = T_END;
		return;
	}
	c = x->v[x->i];
	t->s = x->i;
	if (c == '"') {
		t->type = T_QSTR;
		t->s = ++x->i;
		while (x->i < x->n && x->v[x->i] != '"') {
			if (x->v[x->i] == '\\' && x->i + 1 < x->n)
				x->i++;
			x->i++;
		}
		t->e = x->i;
		if (x->i < x->n)
			x->i++;
	} else if (c == '[') {
		t->type = T_DLIT;
		while (x->i < x->n && x->v[x->i] != ']')
			x->i++;
		if (x->i < x->n)
			x->i++;
		t->e = x->i;
	} else if (is_aspecial(c)) {
		t->type = T_SPEC;
		t->c = c;
		t->e = ++x->i;
	} else {
		t->type = T_WORD;
		while (x->i < x->n && !ends_word(x->v[x->i]))
			x->i++;
		t->e = x->i;
	}
}

static int
tok_is(const struct atok *t, char c)
{
	return t->type == T_SPEC && t->c == c;
}

static int
tok_word(const struct atok *t)
{
	return t->type == T_WORD || t->type == T_QSTR || tok_is(t, '.');
}

/* Append a token's text; quoted strings unescaped. */
static int
tok_append(struct buf *b, const struct alex *x, const struct atok *t)
{
	size_t	i;
	int	rc;

	if (t->type != T_QSTR)
		return buf_append(b, x->v + t->s, t->e - t->s);
	for (i = t->s; i < t->e; i++) {
		if (x->v[i] == '\\' && i + 1 < t->e)
			i++;
		if ((rc = buf_putc(b, x->v[i])) < 0)
			return rc;
	}
	return 0;
}

struct addr {
	struct buf	name, route, local, dom;
};

static int
emit_str(struct buf *out, const struct buf *b, const char *dflt, int utf8)
{
	if (b->len > 0)
		return imap_fmt_string(out, (const char *)b->data, b->len,
		    utf8);
	if (dflt == NULL)
		return buf_append(out, "NIL", 3);
	return imap_fmt_string(out, dflt, strlen(dflt), utf8);
}

/* (name adl mailbox host); a comment stands in for a missing name. */
static int
emit_addr(struct buf *out, struct addr *a, const struct alex *x, int utf8)
{
	int	rc;

	if (a->name.len == 0 && x->comment &&
	    (rc = buf_append(&a->name, x->v + x->cs, x->ce - x->cs)) < 0)
		return rc;
	if ((rc = buf_putc(out, '(')) < 0 ||
	    (rc = emit_str(out, &a->name, NULL, utf8)) < 0 ||
	    (rc = buf_putc(out, ' ')) < 0 ||
	    (rc = emit_str(out, &a->route, NULL, utf8)) < 0 ||
	    (rc = buf_putc(out, ' ')) < 0 ||
	    (rc = emit_str(out, &a->local, "MISSING_MAILBOX", utf8)) < 0 ||
	    (rc = buf_putc(out, ' ')) < 0 ||
	    (rc = emit_str(out, &a->dom, "MISSING_DOMAIN", utf8)) < 0)
		return rc;
	return buf_putc(out, ')');
}

/* Group start (NIL NIL name NIL), or its end (NIL NIL NIL NIL). */
static int
emit_group(struct buf *out, const struct buf *name, int utf8)
{
	int	rc;

	if (name == NULL)
		return buf_append(out, "(NIL NIL NIL NIL)", 17);
	if ((rc = buf_append(out, "(NIL NIL ", 9)) < 0 ||
	    (rc = imap_fmt_string(out, name->len ? (char *)name->data : "",
	    name->len, utf8)) < 0)
		return rc;
	return buf_append(out, " NIL)", 5);
}

/* domain = *(word / "." / domain-literal) */
static int
take_domain(struct buf *dom, struct alex *x, struct atok *t)
{
	int	rc;

	while (t->type == T_WORD || t->type == T_DLIT || tok_is(t, '.')) {
		if ((rc = tok_append(dom, x, t)) < 0)
			return rc;
		alex_next(x, t);
	}
	return 0;
}

/* After "<": [route ":"] local-part ["@" domain] ">". */
static int
take_angle(struct addr *a, struct alex *x, struct atok *t)
{
	int	rc;

	alex_next(x, t);
	if (tok_is(t, '@')) {
		while (t->type != T_END && !tok_is(t, ':') && !tok_is(t, '>')) {
			if ((rc = tok_append(&a->route, x, t)) < 0)
				return rc;
			alex_next(x, t);
		}
		if (tok_is(t, ':'))
			alex_next(x, t);
	}
	buf_reset(&a->local);
	while (tok_word(t)) {
		if ((rc = tok_append(&a->local, x, t)) < 0)
			return rc;
		alex_next(x, t);
	}
	if (tok_is(t, '@')) {
		alex_next(x, t);
		if ((rc = take_domain(&a->dom, x, t)) < 0)
			return rc;
	}
	while (t->type != T_END && !tok_is(t, '>') && !tok_is(t, ',') &&
	    !tok_is(t, ';'))
		alex_next(x, t);
	if (tok_is(t, '>'))
		alex_next(x, t);
	return 0;
}

/*
 * One address (or group start) from the current token; *n counts what
 * was emitted.
 */
static int
take_address(struct buf *out, struct addr *a, struct alex *x,
    struct atok *t, int *in_group, size_t *n, int utf8)
{
	size_t	words = 0;
	int	rc;

	buf_reset(&a->name);
	buf_reset(&a->route);
	buf_reset(&a->local);
	buf_reset(&a->dom);
	for (; tok_word(t); words++, alex_next(x, t))
		if ((words > 0 && t->ws && (rc = buf_putc(&a->name, ' ')) < 0) ||
		    (rc = tok_append(&a->name, x, t)) < 0 ||
		    (rc = tok_append(&a->local, x, t)) < 0)
			return rc;
	if (tok_is(t, ':') && !*in_group && words > 0) {
		*in_group = 1;
		alex_next(x, t);
		(*n)++;
		return emit_group(out, &a->name, utf8);
	}
	if (tok_is(t, '<')) {
		if ((rc = take_angle(a, x, t)) < 0)
			return rc;
	} else if (tok_is(t, '@')) {
		buf_reset(&a->name);
		alex_next(x, t);
		if ((rc = take_domain(&a->dom, x, t)) < 0)
			return rc;
	} else if (words > 0) {
		/* a bare word list: the mailbox, without a domain */
		buf_reset(&a->local);
		if ((rc = buf_append(&a->local, a->name.data,
		    a->name.len)) < 0)
			return rc;
		buf_reset(&a->name);
	} else {
		alex_next(x, t);	/* junk */
		return 0;
	}
	(*n)++;
	return emit_addr(out, a, x, utf8);
}

/* An address-list or mailbox-list header value (RFC 5322 3.4). */
static int
addr_list(struct buf *out, const char *v, size_t len, int utf8, size_t *n)
{
	struct alex	x;
	struct atok	t;
	struct addr	a;
	int		in_group = 0, rc = 0;

	memset(&x, 0, sizeof(x));
	x.v = v;
	x.n = len;
	buf_init(&a.name, SCRATCH_MAX);
	buf_init(&a.route, SCRATCH_MAX);
	buf_init(&a.local, SCRATCH_MAX);
	buf_init(&a.dom, SCRATCH_MAX);
	*n = 0;
	alex_next(&x, &t);
	while (rc == 0 && t.type != T_END && *n < IMAP_MSG_ADDR_MAX) {
		if (tok_is(&t, ',') || tok_is(&t, ';')) {
			if (tok_is(&t, ';') && in_group) {
				in_group = 0;
				(*n)++;
				rc = emit_group(out, NULL, utf8);
			}
			x.comment = 0;
			alex_next(&x, &t);
			continue;
		}
		rc = take_address(out, &a, &x, &t, &in_group, n, utf8);
	}
	if (rc == 0 && in_group) {
		(*n)++;
		rc = emit_group(out, NULL, utf8);
	}
	buf_free(&a.name);
	buf_free(&a.route);
	buf_free(&a.local);
	buf_free(&a.dom);
	return rc;
}

/* ---------------------------------------------------------- envelope */

enum {
	E_DATE, E_SUBJECT, E_FROM, E_SENDER, E_REPLY_TO, E_TO, E_CC, E_BCC,
	E_IRT, E_MSGID, E_N
};

static const char *const env_names[E_N] = {
	"Date", "Subject", "From", "Sender", "Reply-To", "To", "Cc", "Bcc",
	"In-Reply-To", "Message-ID",
};

/* An address field into b ("(...)" or NIL); *n: addresses in it. */
static int
env_addrs(struct buf *b, const struct imap_msg *m, const struct hfield *f,
    struct buf *tmp, int utf8, size_t *n)
{
	struct buf	list;
	int		rc;

	*n = 0;
	if (f == NULL)
		return buf_append(b, "NIL", 3);
	buf_reset(tmp);
	buf_init(&list, b->max);
	if ((rc = imap_msg__unfold(tmp, m->d, f->vstart, f->vend)) < 0 ||
	    (rc = addr_list(&list, tmp->len ? (char *)tmp->data : "",
	    tmp->len, utf8, n)) < 0)
		goto done;
	if (*n == 0)
		rc = buf_append(b, "NIL", 3);
	else if ((rc = buf_putc(b, '(')) == 0 &&
	    (rc = buf_append(b, list.data, list.len)) == 0)
		rc = buf_putc(b, ')');
done:
	buf_free(&list);
	return rc;
}

static int
env_string(struct buf *b, const struct imap_msg *m, const struct hfield *f,
    struct buf *tmp, int utf8)
{
	int	rc;

	if (f == NULL)
		return buf_append(b, "NIL", 3);
	buf_reset(tmp);
	if ((rc = imap_msg__unfold(tmp, m->d, f->vstart, f->vend)) < 0)
		return rc;
	return imap_fmt_string(b, tmp->len ? (char *)tmp->data : "",
	    tmp->len, utf8);
}

/* The ENVELOPE of the header [hs, he). */
int
imap_msg__write_envelope(struct buf *out, const struct imap_msg *m, size_t hs,
    size_t he, int utf8)
{
	struct hfield	 f, fld[E_N];
	struct hfield	*have[E_N] = { NULL };
	struct buf	 tmp, from, one;
	size_t		 pos = hs, i, n, nfrom;
	int		 rc;

	while (imap_msg__hdr_next(m->d, he, &pos, &f))
		for (i = 0; i < E_N; i++)
			if (have[i] == NULL &&
			    imap_msg__field_is(m->d, &f, env_names[i])) {
				fld[i] = f;
				have[i] = &fld[i];
			}
	buf_init(&tmp, SCRATCH_MAX);
	buf_init(&from, out->max);
	buf_init(&one, out->max);
	if ((rc = buf_putc(out, '(')) < 0 ||
	    (rc = env_string(out, m, have[E_DATE], &tmp, utf8)) < 0 ||
	    (rc = buf_putc(out, ' ')) < 0 ||
	    (rc = env_string(out, m, have[E_SUBJECT], &tmp, utf8)) < 0 ||
	    (rc = env_addrs(&from, m, have[E_FROM], &tmp, utf8, &nfrom)) < 0)
		goto done;
	for (i = E_FROM; i <= E_BCC; i++) {
		if ((rc = buf_putc(out, ' ')) < 0)
			goto done;
		if (i == E_FROM) {
			if ((rc = buf_append(out, from.data, from.len)) < 0)
				goto done;
			continue;
		}
		buf_reset(&one);
		if ((rc = env_addrs(&one, m, have[i], &tmp, utf8, &n)) < 0)
			goto done;
		/* RFC 9051 7.5.2: Sender and Reply-To absent or empty: From */
		if ((i == E_SENDER || i == E_REPLY_TO) && n == 0)
			rc = buf_append(out, from.data, from.len);
		else
			rc = buf_append(out, one.data, one.len);
		if (rc < 0)
			goto done;
	}
	if ((rc = buf_putc(out, ' ')) < 0 ||
	    (rc = env_string(out, m, have[E_IRT], &tmp, utf8)) < 0 ||
	    (rc = buf_putc(out, ' ')) < 0 ||
	    (rc = env_string(out, m, have[E_MSGID], &tmp, utf8)) < 0)
		goto done;
	rc = buf_putc(out, ')');
done:
	buf_free(&tmp);
	buf_free(&from);
	buf_free(&one);
	return rc;
}

int
imap_msg_envelope(struct buf *out, const struct imap_msg *m, int utf8)
{
	return imap_msg__write_envelope(out, m, m->parts[0].hstart,
	    m->parts[0].hend, utf8);
}

/* -------------------------------------------------------------- Date */

/* min..max digits; more digits than max is an error. */
static int
date_num(struct lex *x, size_t min, size_t max, int *v)
{
	size_t	start = x->i;

	*v = 0;
	while (x->i < x->n && x->s[x->i] >= '0' && x->s[x->i] <= '9') {
		if (x->i - start == max)
			return 0;
		*v = *v * 10 + (x->s[x->i++] - '0');
	}
	return x->i - start >= min;
}

/* A run of letters; its first wmax - 1 are copied to w. */
static size_t
date_word(struct lex *x, char *w, size_t wmax)
{
	size_t	start = x->i, k = 0;
	char	c;

	while (x->i < x->n) {
		c = x->s[x->i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			break;
		if (k + 1 < wmax)
			w[k++] = c;
		x->i++;
	}
	w[k] = '\0';
	return x->i - start;
}

/* RFC 5322 4.3 zone names; military letters and others are +0000. */
static int
zone_name(const char *w)
{
	static const struct {
		const char	*name;
		int		 off;
	} zones[] = {
		{ "EST", -300 }, { "EDT", -240 }, { "CST", -360 },
		{ "CDT", -300 }, { "MST", -420 }, { "MDT", -360 },
		{ "PST", -480 }, { "PDT", -420 },
	};
	size_t	i;

	for (i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
		if (strcasecmp(w, zones[i].name) == 0)
			return zones[i].off;
	return 0;
}

static int
month_days(int y, int mon)
{
	static const unsigned char dim[12] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31,
	};

	if (mon == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dim[mon - 1];
}

/* [day-of-week ","] day month year hh:mm[:ss] [zone], leniently. */
static int
parse_date(const char *v, size_t n, int64_t *t, int *tz)
{
	static const char	 mons[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	struct lex		 x = { v, 0, n };
	char			 w[16];
	const char		*p;
	int			 day, mon, year, hh, mm, ss = 0, off = 0, z;

	imap_msg__lex_cfws(&x);
	if (date_word(&x, w, sizeof(w)) > 0) {
		imap_msg__lex_cfws(&x);
		(void)imap_msg__lex_is(&x, ',');
		imap_msg__lex_cfws(&x);
	}
	if (!date_num(&x, 1, 2, &day))
		return -1;
	imap_msg__lex_cfws(&x);
	if (date_word(&x, w, sizeof(w)) < 3)
		return -1;
	w[3] = '\0';
	for (p = mons; *p != '\0' && strncasecmp(p, w, 3) != 0; p += 3)
		;
	if (*p == '\0')
		return -1;
	mon = (int)(p - mons) / 3 + 1;
	imap_msg__lex_cfws(&x);
	if (!date_num(&x, 2, 4, &year))
		return -1;
	if (year < 50)
		year += 2000;
	else if (year < 1000)
		year += 1900;		/* 2 and 3 digits: RFC 5322 4.3 */
	imap_msg__lex_cfws(&x);
	if (!date_num(&x, 1, 2, &hh) ||
	    (imap_msg__lex_cfws(&x), !imap_msg__lex_is(&x, ':')) ||
	    (imap_msg__lex_cfws(&x), !date_num(&x, 1, 2, &mm)))
		return -1;
	imap_msg__lex_cfws(&x);
	if (imap_msg__lex_is(&x, ':')) {
		imap_msg__lex_cfws(&x);
		if (!date_num(&x, 1, 2, &ss))
			return -1;
		imap_msg__lex_cfws(&x);
	}
	if (x.i < x.n && (x.s[x.i] == '+' || x.s[x.i] == '-')) {
		x.i++;
		if (!date_num(&x, 4, 4, &z) || z % 100 > 59)
			return -1;
		off = (z / 100 * 60 + z % 100) * (x.s[x.i - 5] == '-' ? -1 : 1);
	} else if (date_word(&x, w, sizeof(w)) > 0)
		off = zone_name(w);
	if (day < 1 || day > month_days(year, mon) || hh > 23 || mm > 59 ||
	    ss > 60)
		return -1;
	*t = imap_days_from_civil(year, (unsigned)mon, (unsigned)day) * 86400 +
	    hh * 3600 + mm * 60 + ss - (int64_t)off * 60;
	*tz = off;
	return 0;
}

int
imap_msg_date(const struct imap_msg *m, int64_t *t, int *tzoff)
{
	struct hfield	f;
	struct buf	v;
	size_t		pos = m->parts[0].hstart;
	int		rc = ERR_NOTFOUND;

	while (imap_msg__hdr_next(m->d, m->parts[0].hend, &pos, &f))
		if (imap_msg__field_is(m->d, &f, "Date"))
			break;
	if (pos > m->parts[0].hend || !imap_msg__field_is(m->d, &f, "Date"))
		return ERR_NOTFOUND;
	buf_init(&v, SCRATCH_MAX);
	if (imap_msg__unfold(&v, m->d, f.vstart, f.vend) == 0 && v.len > 0 &&
	    parse_date((const char *)v.data, v.len, t, tzoff) == 0)
		rc = 0;
	buf_free(&v);
	return rc;
}
