/*
 * imap_format.c -- IMAP output primitives (strings, literals, flag
 * lists, INTERNALDATE) and the IMAP date / date-time parsers.
 *
 * Runs in: the mailsrv process, any thread; pure functions.
 * Failure policy: appends return ERR_TOOBIG when the buffer is full;
 * parsers return ERR_PROTO (with err_set()) for invalid input.
 * SECURITY: peer data is never sent quoted unless every byte is allowed
 * in a quoted string (no CR, LF, NUL or other controls; 8-bit only as
 * valid UTF-8 and only when the client enabled UTF-8); everything else
 * goes in a counted literal, so a header value can never inject
 * protocol syntax.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "mailsrv/imap/imap_format.h"
#include "mailsrv/imap/imap_parser.h"
#include "mailsrv/store/store.h"

static const char months[12][4] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

size_t
imap_utf8_len(const unsigned char *s, size_t n)
{
	unsigned	c = s[0];
	uint32_t	cp;
	size_t		len, i;

	if (n == 0)
		return 0;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* 1 when s can be sent as a quoted string. */
static int
quotable(const unsigned char *s, size_t len, int utf8)
{
	size_t	i, l;

	if (len > IMAP_FMT_QUOTED_MAX)
		return 0;
	for (i = 0; i < len; i += l) {
		l = 1;
		if (s[i] >= 0x20 && s[i] < 0x7f)
			continue;
		if (s[i] < 0x80 || !utf8)
			return 0;
		if ((l = imap_utf8_len(s + i, len - i)) == 0)
			return 0;
	}
	return 1;
}

/* Append s, each NUL sent as 0x80. */
static int
append_nonul(struct buf *b, const unsigned char *s, size_t len)
{
	const unsigned char	*z;
	size_t			 k;
	int			 rc;

	while (len > 0) {
		z = memchr(s, '\0', len);
		k = z == NULL ? len : (size_t)(z - s);
		if ((rc = buf_append(b, s, k)) < 0)
			return rc;
		s += k;
		len -= k;
		if (len > 0) {
			if ((rc = buf_putc(b, 0x80)) < 0)
				return rc;
			s++;
			len--;
		}
	}
	return 0;
}

int
imap_fmt_literal(struct buf *b, const void *p, size_t len, int binary)
{
	int	rc;

	if (binary && memchr(p, '\0', len) != NULL) {
		if ((rc = buf_printf(b, "~{%zu}\r\n", len)) < 0)
			return rc;
		return buf_append(b, p, len);
	}
	if ((rc = buf_printf(b, "{%zu}\r\n", len)) < 0)
		return rc;
	return append_nonul(b, p, len);
}

int
imap_fmt_string(struct buf *b, const char *s, size_t len, int utf8)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i, run;
	int			 rc;

	if (!quotable(u, len, utf8))
		return imap_fmt_literal(b, s, len, 0);
	if ((rc = buf_putc(b, '"')) < 0)
		return rc;
	for (i = 0; i < len; i += run) {
		if (s[i] == '"' || s[i] == '\\') {
			if ((rc = buf_putc(b, '\\')) < 0 ||
			    (rc = buf_putc(b, s[i])) < 0)
				return rc;
			run = 1;
			continue;
		}
		for (run = 1; i + run < len && s[i + run] != '"' &&
		    s[i + run] != '\\'; run++)
			;
		if ((rc = buf_append(b, s + i, run)) < 0)
			return rc;
	}
	return buf_putc(b, '"');
}

int
imap_fmt_nstring(struct buf *b, const char *s, size_t len, int utf8)
{
	if (s == NULL)
		return buf_append(b, "NIL", 3);
	return imap_fmt_string(b, s, len, utf8);
}

int
imap_fmt_astring(struct buf *b, const char *s, size_t len, int utf8)
{
	size_t	i;

	if (len == 0 || (len == 3 && strncasecmp(s, "NIL", 3) == 0))
		return imap_fmt_string(b, s, len, utf8);
	for (i = 0; i < len; i++)
		if (!imap_astring_char((unsigned char)s[i]))
			return imap_fmt_string(b, s, len, utf8);
	return buf_append(b, s, len);
}

int
imap_fmt_flags(struct buf *b, uint32_t flags, uint64_t kwmask,
    char *const *kw, size_t nkw)
{
	static const struct {
		uint32_t	 bit;
		const char	*name;
	} sys[] = {
		{ STORE_F_SEEN, "\\Seen" },
		{ STORE_F_ANSWERED, "\\Answered" },
		{ STORE_F_FLAGGED, "\\Flagged" },
		{ STORE_F_DELETED, "\\Deleted" },
		{ STORE_F_DRAFT, "\\Draft" },
	};
	const char	*sep = "";
	size_t		 i;
	int		 rc;

	if ((rc = buf_putc(b, '(')) < 0)
		return rc;
	for (i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
		if ((flags & sys[i].bit) == 0)
			continue;
		if ((rc = buf_printf(b, "%s%s", sep, sys[i].name)) < 0)
			return rc;
		sep = " ";
	}
	for (i = 0; i < 64 && i < nkw; i++) {
		if ((kwmask & ((uint64_t)1 << i)) == 0 || kw[i] == NULL)
			continue;
		if ((rc = buf_printf(b, "%s%s", sep, kw[i])) < 0)
			return rc;
		sep = " ";
	}
	return buf_putc(b, ')');
}

/* Howard Hinnant's days_from_civil. */
int64_t
imap_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t		era;
	unsigned	yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static unsigned
days_in_month(int64_t y, unsigned m)
{
	static const unsigned char dim[12] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31,
	};

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dim[m - 1];
}

int
imap_fmt_datetime(struct buf *b, int64_t t)
{
	const int64_t	max = 253402300799LL;	/* 9999-12-31 23:59:59 */
	struct tm	tm;
	time_t		tt;

	if (t < 0)
		t = 0;
	if (t > max)
		t = max;
	tt = (time_t)t;
	if (gmtime_r(&tt, &tm) == NULL)
		return ERR_INVAL;
	return buf_printf(b, "\"%02d-%s-%04d %02d:%02d:%02d +0000\"",
	    tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
	    tm.tm_min, tm.tm_sec);
}

/* n decimal digits at s[*i] -> *v; 0 or -1. */
static int
digits(const char *s, size_t len, size_t *i, size_t n, unsigned *v)
{
	size_t	k;

	if (len - *i < n)
		return -1;
	*v = 0;
	for (k = 0; k < n; k++) {
		if (s[*i + k] < '0' || s[*i + k] > '9')
			return -1;
		*v = *v * 10 + (unsigned)(s[*i + k] - '0');
	}
	*i += n;
	return 0;
}

/* "d-Mon-yyyy" (day 1*2DIGIT, or " d" when sp_day) at s[*i]. */
static int
parse_dmy(const char *s, size_t len, size_t *i, int sp_day, int64_t *days)
{
	unsigned	d, m, y;

	if (sp_day && *i < len && s[*i] == ' ')
		(*i)++;
	if (digits(s, len, i, 1, &d) < 0)
		return -1;
	if (*i < len && s[*i] >= '0' && s[*i] <= '9') {
		d = d * 10 + (unsigned)(s[*i] - '0');
		(*i)++;
	}
	if (len - *i < 5 || s[*i] != '-' || s[*i + 4] != '-')
		return -1;
	for (m = 0; m < 12; m++)
		if (strncasecmp(s + *i + 1, months[m], 3) == 0)
			break;
	if (m == 12)
		return -1;
	*i += 5;
	if (digits(s, len, i, 4, &y) < 0)
		return -1;
	m++;
	if (d < 1 || d > days_in_month(y, m))
		return -1;
	*days = imap_days_from_civil(y, m, d);
	return 0;
}

int
imap_parse_date(const char *s, size_t len, int32_t *out)
{
	int64_t	days;
	size_t	i = 0;

	if (parse_dmy(s, len, &i, 0, &days) < 0 || i != len) {
		err_set(ERR_PROTO, "invalid date");
		return ERR_PROTO;
	}
	*out = (int32_t)days;
	return 0;
}

int
imap_parse_datetime(const char *s, size_t len, int64_t *out)
{
	int64_t		days;
	unsigned	hh, mm, ss, zh, zm;
	size_t		i = 0;
	int		sign;

	/* " hh:mm:ss +zzzz" */
	if (parse_dmy(s, len, &i, 1, &days) < 0 || len - i != 15 ||
	    s[i] != ' ' || s[i + 3] != ':' || s[i + 6] != ':' ||
	    s[i + 9] != ' ' || (s[i + 10] != '+' && s[i + 10] != '-'))
		goto bad;
	sign = s[i + 10] == '-' ? -1 : 1;
	i++;
	if (digits(s, len, &i, 2, &hh) < 0)
		goto bad;
	i++;
	if (digits(s, len, &i, 2, &mm) < 0)
		goto bad;
	i++;
	if (digits(s, len, &i, 2, &ss) < 0)
		goto bad;
	i += 2;
	if (digits(s, len, &i, 2, &zh) < 0 || digits(s, len, &i, 2, &zm) < 0)
		goto bad;
	/* a leap second (ss == 60) is kept: it is the next second */
	if (hh > 23 || mm > 59 || ss > 60 || zh > 23 || zm > 59)
		goto bad;
	*out = days * 86400 + hh * 3600 + mm * 60 + ss -
	    sign * (int64_t)(zh * 3600 + zm * 60);
	return 0;
bad:
	err_set(ERR_PROTO, "invalid date-time");
	return ERR_PROTO;
}

int
imap_fmt_seqset(struct buf *b, const uint32_t *v, size_t n)
{
	size_t	i, j;
	int	rc;

	for (i = 0; i < n; i = j + 1) {
		for (j = i; j + 1 < n && v[j] != UINT32_MAX &&
		    v[j + 1] == v[j] + 1; j++)
			;
		if (j == i)
			rc = buf_printf(b, "%s%u", i ? "," : "", v[i]);
		else
			rc = buf_printf(b, "%s%u:%u", i ? "," : "", v[i],
			    v[j]);
		if (rc < 0)
			return rc;
	}
	return 0;
}
