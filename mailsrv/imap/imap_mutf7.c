/*
 * imap_mutf7.c -- modified UTF-7 mailbox names and LIST pattern matching
 * (see imap_mutf7.h).
 *
 * Runs in: the imap process (and anything that lists mailboxes).
 * Failure policy: invalid names are ERR_PROTO with one line in err_msg();
 * nothing is logged here.
 * SECURITY: names come from the peer.  Decoding is strict (one canonical
 * form per name, so two wire names can never denote one mailbox), output
 * sizes are bounded by the input length, and pattern matching simulates
 * the pattern as an NFA, one pass over the name: a hostile pattern such
 * as "*a*a*a*a*b" costs O(len(pattern) * len(name)), never exponential
 * or cubic time.
 *
 * Modified UTF-7 in short: printable ASCII 0x20-0x7e stands for itself
 * except '&', written "&-"; anything else is UTF-16, base64-encoded with
 * ',' for '/', between '&' and '-', without '=' padding.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/base64.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/xmalloc.h"
#include "mailsrv/imap/imap_mutf7.h"

#define MUTF7_PRINTABLE(c)	((c) >= 0x20 && (c) <= 0x7e)

static const char	mutf7_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int
mutf7_bad(const char *what, size_t off)
{
	err_set(ERR_PROTO, "invalid modified UTF-7 mailbox name: %s at "
	    "offset %zu", what, off);
	return ERR_PROTO;
}

static void
utf8_put(struct buf *b, uint32_t cp)
{
	unsigned char	u[4];
	size_t		n;

	if (cp < 0x80) {
		u[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (unsigned char)(0xc0 | cp >> 6);
		u[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (unsigned char)(0xe0 | cp >> 12);
		u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (unsigned char)(0xf0 | cp >> 18);
		u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	/* the buffer was sized for the worst case */
	if (buf_append(b, u, n) < 0)
		abort();
}

/*
 * Decode the base64 run starting at in[*ip] (just after '&') up to and
 * including its '-'.
 */
static int
mutf7_run(struct buf *b, const unsigned char *in, size_t len, size_t *ip)
{
	size_t		i = *ip, nunits = 0;
	uint32_t	bits = 0, u, hi = 0;
	int		nbits = 0, v;

	for (; i < len && in[i] != '-'; i++) {
		if ((v = b64_char_value(in[i], '+', ',')) < 0)
			return mutf7_bad("bad base64", i);
		bits = bits << 6 | (uint32_t)v;
		if ((nbits += 6) < 16)
			continue;
		nbits -= 16;
		u = (bits >> nbits) & 0xffff;
		bits &= (1u << nbits) - 1;
		nunits++;
		if (hi != 0) {
			if (u < 0xdc00 || u > 0xdfff)
				return mutf7_bad("unpaired surrogate", i);
			utf8_put(b, 0x10000 + ((hi - 0xd800) << 10) +
			    (u - 0xdc00));
			hi = 0;
		} else if (u >= 0xd800 && u <= 0xdbff) {
			hi = u;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			return mutf7_bad("unpaired surrogate", i);
		} else if (MUTF7_PRINTABLE(u)) {
			return mutf7_bad("encoded printable ASCII", i);
		} else if (u == 0) {
			return mutf7_bad("NUL", i);
		} else
			utf8_put(b, u);
	}
	if (i == len)
		return mutf7_bad("unterminated '&'", i);
	if (nunits == 0 || nbits >= 6 || bits != 0)
		return mutf7_bad("non-canonical base64", i);
	if (hi != 0)
		return mutf7_bad("unpaired surrogate", i);
	i++;
	/* "&AOk-&AOk-" is "&AOkA6Q-" written twice as long */
	if (i + 1 < len && in[i] == '&' && in[i + 1] != '-')
		return mutf7_bad("adjacent encoded runs", i);
	*ip = i;
	return 0;
}

int
imap_mutf7_to_utf8(char **out, const char *src, size_t len)
{
	const unsigned char	*in = (const unsigned char *)src;
	struct buf		 b;
	size_t			 i = 0;
	int			 rc;

	/* base64 of n units is >= 8n/3 bytes and gives <= 3n (or 4/2 units) */
	if (len > SIZE_MAX / 2 - 16)
		return mutf7_bad("too long", 0);
	buf_init(&b, len * 2 + 16);
	while (i < len) {
		if (in[i] == '&') {
			if (i + 1 < len && in[i + 1] == '-') {
				(void)buf_putc(&b, '&');
				i += 2;
			} else {
				i++;
				if ((rc = mutf7_run(&b, in, len, &i)) < 0)
					goto fail;
			}
		} else if (MUTF7_PRINTABLE(in[i])) {
			(void)buf_putc(&b, in[i]);
			i++;
		} else {
			rc = mutf7_bad(in[i] >= 0x80 ? "8-bit byte" :
			    "control character", i);
			goto fail;
		}
	}
	*out = buf_steal(&b, NULL);
	return 0;
fail:
	buf_free(&b);
	return rc;
}

/* ------------------------------------------------------------------ */

/* One UTF-8 sequence at in[*ip]; 0 and *cp, or ERR_PROTO. */
static int
utf8_get(uint32_t *cp, const unsigned char *in, size_t len, size_t *ip)
{
	size_t		i = *ip, n, k;
	uint32_t	c = in[i];

	if (c < 0x80) {
		n = 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		c &= 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		c &= 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		c &= 0x07;
	} else
		goto bad;
	if (n > len - i)
		goto bad;
	for (k = 1; k < n; k++) {
		if ((in[i + k] & 0xc0) != 0x80)
			goto bad;
		c = c << 6 | (in[i + k] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
	    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) || c == 0)
		goto bad;
	*cp = c;
	*ip = i + n;
	return 0;
bad:
	err_set(ERR_PROTO, "invalid UTF-8 in mailbox name at offset %zu", i);
	return ERR_PROTO;
}

struct mutf7_enc {
	struct buf	*b;
	uint32_t	 bits;
	int		 nbits;
	int		 in_run;
};

static void
enc_unit(struct mutf7_enc *e, uint32_t u)
{
	if (!e->in_run) {
		(void)buf_putc(e->b, '&');
		e->in_run = 1;
	}
	e->bits = e->bits << 16 | u;
	e->nbits += 16;
	while (e->nbits >= 6) {
		e->nbits -= 6;
		(void)buf_putc(e->b, mutf7_b64[(e->bits >> e->nbits) & 0x3f]);
	}
	e->bits &= (1u << e->nbits) - 1;
}

static void
enc_end_run(struct mutf7_enc *e)
{
	if (!e->in_run)
		return;
	if (e->nbits > 0)
		(void)buf_putc(e->b,
		    mutf7_b64[(e->bits << (6 - e->nbits)) & 0x3f]);
	(void)buf_putc(e->b, '-');
	e->bits = 0;
	e->nbits = 0;
	e->in_run = 0;
}

int
imap_utf8_to_mutf7(char **out, const char *src, size_t len)
{
	const unsigned char	*in = (const unsigned char *)src;
	struct buf		 b;
	struct mutf7_enc	 e = { &b, 0, 0, 0 };
	size_t			 i = 0;
	uint32_t		 cp;
	int			 rc;

	/* worst case: a 1-byte control between ASCII is "&AAE-", 5 bytes */
	if (len > SIZE_MAX / 8)
		return mutf7_bad("too long", 0);
	buf_init(&b, len * 5 + 16);
	while (i < len) {
		if ((rc = utf8_get(&cp, in, len, &i)) < 0) {
			buf_free(&b);
			return rc;
		}
		if (MUTF7_PRINTABLE(cp)) {
			enc_end_run(&e);
			if (buf_putc(&b, (int)cp) < 0 ||
			    (cp == '&' && buf_putc(&b, '-') < 0))
				abort();	/* sized for the worst case */
		} else if (cp >= 0x10000) {
			enc_unit(&e, 0xd800 + ((cp - 0x10000) >> 10));
			enc_unit(&e, 0xdc00 + ((cp - 0x10000) & 0x3ff));
		} else
			enc_unit(&e, cp);
	}
	enc_end_run(&e);
	*out = buf_steal(&b, NULL);
	return 0;
}

/* ------------------------------------------------------------------ */

/*
 * The pattern as an NFA: state k means "pattern[0..k) matched so far".  A
 * wildcard at k loops on every byte it may match and can also be skipped
 * (an epsilon move to k + 1); a literal at k moves to k + 1 on its byte.
 * All live states advance together, one name byte at a time.
 */
static void
list_closure(unsigned char *st, const char *pat, size_t plen)
{
	size_t	k;

	for (k = 0; k < plen; k++)
		if (st[k] && (pat[k] == '*' || pat[k] == '%'))
			st[k + 1] = 1;
}

static int
list_nfa(const char *pat, const char *name, char sep)
{
	unsigned char	 small[2 * 128], *cur, *next, *tmp, *mem = NULL;
	size_t		 plen = strlen(pat), k;
	int		 live, match;
	char		 c;

	if (plen + 1 <= sizeof(small) / 2) {
		cur = small;
	} else {
		mem = xreallocarray(NULL, plen + 1, 2);
		cur = mem;
	}
	next = cur + plen + 1;
	memset(cur, 0, plen + 1);
	cur[0] = 1;
	list_closure(cur, pat, plen);
	for (; (c = *name) != '\0'; name++) {
		memset(next, 0, plen + 1);
		live = 0;
		for (k = 0; k < plen; k++) {
			if (!cur[k])
				continue;
			if (pat[k] == '*' || (pat[k] == '%' && c != sep))
				next[k] = live = 1;
			else if (pat[k] == c)
				next[k + 1] = live = 1;
		}
		if (!live)
			break;
		list_closure(next, pat, plen);
		tmp = cur;
		cur = next;
		next = tmp;
	}
	match = *name == '\0' && cur[plen];
	free(mem);
	return match;
}

/* Is the first hierarchy component of s "INBOX" in any case? */
static int
list_inbox_first(const char *s, char sep)
{
	return strncasecmp(s, "INBOX", 5) == 0 &&
	    (s[5] == '\0' || (sep != '\0' && s[5] == sep));
}

int
imap_list_match(const char *pattern, const char *name, char sep)
{
	if (list_inbox_first(name, sep) && strncasecmp(pattern, "INBOX",
	    5) == 0)
		return list_nfa(pattern + 5, name + 5, sep);
	return list_nfa(pattern, name, sep);
}
