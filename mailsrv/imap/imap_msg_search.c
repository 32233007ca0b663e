/*
 * imap_msg_search.c -- the SEARCH matchers over a parsed message:
 * header fields RFC 2047-decoded, text parts with their transfer
 * encoding removed and their charset converted to UTF-8, both case
 * folded for a substring match (contract in imap_msg.h; the parsed
 * message comes from imap_msg.c through imap_msg_int.h).
 *
 * The only user of libetpan (mailmime_encoded_phrase_parse,
 * charconv_buffer): it gets one unfolded field value or one decoded
 * body at a time, never the message, whose structure and headers are
 * parsed by our own code (libetpan's parsers recurse without bound).
 *
 * Runs in: the mailsrv process, worker threads (a parsed message is
 * read-only: several threads may search it at once).
 * Case folding is libunistring's (u8_casefold with NFKD): a copy of
 * the decoded text, at most a few times its length.
 * Failure policy: matching never fails: a value that does not decode or
 * convert is matched as sent, one that does not fit the scratch buffer
 * does not match.  Allocation failure is fatal (xmalloc, fatalx).
 * SECURITY: header values and bodies are peer data.  Every scan is
 * bounded by a part's length.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libetpan/charconv.h>
#include <libetpan/mailmime_decode.h>
#include <unicase.h>
#include <uninorm.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "mailsrv/imap/imap_msg.h"
#include "mailsrv/imap/imap_msg_int.h"

/* ------------------------------------------------------------ SEARCH */

/*
 * ASCII bytes are starters that fold on their own, so a text folds the
 * same in pieces split before any ASCII byte: runs of ASCII are lowered
 * here, and libunistring gets each stretch from a non-ASCII byte up to
 * the next FOLD_ASCII_RUN ASCII bytes in a row (NFKD costs about 40 ms
 * per MB; mail is mostly ASCII).
 */
#define FOLD_ASCII_RUN	16

/*
 * Append s case-folded to out, for a substring match: Unicode full case
 * folding, then compatibility decomposition (NFKD), as RFC 5051's
 * i;unicode-casemap (which maps to titlecase first), so that "STRASSE"
 * finds "Stra\u00dfe", a precomposed letter finds its decomposed form and
 * every script with case (Kazakh, Armenian, Georgian, Vietnamese...)
 * folds.  Invalid UTF-8 becomes U+FFFD.  -1 if out would exceed its
 * bound.
 */
static int
fold(struct buf *out, const unsigned char *s, size_t n)
{
	uint8_t	*f;
	size_t	 i = 0, j, at, run, flen;
	int	 rc;

	while (i < n) {
		for (j = i; j < n && s[j] < 0x80; j++)
			;
		if (j > i) {
			at = out->len;
			if (buf_append(out, s + i, j - i) < 0)
				return -1;
			for (; at < out->len; at++)
				if (out->data[at] >= 'A' && out->data[at] <= 'Z')
					out->data[at] += 'a' - 'A';
			i = j;
			continue;
		}
		for (run = 0; j < n && run < FOLD_ASCII_RUN; j++)
			run = s[j] < 0x80 ? run + 1 : 0;
		j -= run;
		if ((f = u8_casefold(s + i, j - i, NULL, UNINORM_NFKD, NULL,
		    &flen)) == NULL)
			fatalx("imap search: case folding: %s", strerror(errno));
		rc = buf_append(out, f, flen);
		free(f);
		if (rc < 0)
			return -1;
		i = j;
	}
	return 0;
}

/* Fold b and look for the (folded) needle. */
static int
found_in(const struct buf *b, const struct buf *needle)
{
	struct buf	f;
	int		hit;

	if (needle->len == 0)
		return 1;
	buf_init(&f, SCRATCH_MAX);
	hit = fold(&f, b->data, b->len) == 0 && f.len >= needle->len &&
	    memmem(f.data, f.len, needle->data, needle->len) != NULL;
	buf_free(&f);
	return hit;
}

/* The field's value unfolded and RFC 2047-decoded to UTF-8. */
static int
decoded_value(struct buf *out, const struct imap_msg *m,
    const struct hfield *f)
{
	struct buf	 raw;
	char		*res = NULL;
	size_t		 idx = 0;
	int		 rc;

	buf_init(&raw, SCRATCH_MAX);
	if ((rc = imap_msg__unfold(&raw, m->d, f->vstart, f->vend)) < 0 ||
	    raw.len == 0)
		goto done;
	if (mailmime_encoded_phrase_parse("utf-8", (const char *)raw.data,
	    raw.len, &idx, "utf-8", &res) == MAILIMF_NO_ERROR && res != NULL)
		rc = buf_append(out, res, strlen(res));
	else
		rc = buf_append(out, raw.data, raw.len);
done:
	free(res);
	buf_free(&raw);
	return rc;
}

/* "Name: value" of every field of p's header, decoded. */
static int
headers_match(const struct imap_msg *m, const struct mpart *p,
    const struct buf *needle, struct buf *tmp)
{
	struct hfield	f;
	size_t		pos = p->hstart;

	while (imap_msg__hdr_next(m->d, p->hend, &pos, &f)) {
		buf_reset(tmp);
		if (buf_append(tmp, m->d + f.start, f.name_len) < 0 ||
		    buf_append(tmp, ": ", 2) < 0 || decoded_value(tmp, m, &f) < 0)
			continue;
		if (found_in(tmp, needle))
			return 1;
	}
	return 0;
}

/* A text part, transfer encoding removed, converted to UTF-8. */
static int
text_part_match(const struct imap_msg *m, const struct mpart *p,
    const struct buf *needle, struct buf *tmp)
{
	const char	*cs;
	char		*res = NULL;
	size_t		 rlen = 0;
	int		 hit;

	buf_reset(tmp);
	if (imap_msg__decode_body(tmp, m, p) < 0) {
		buf_reset(tmp);
		if (buf_append(tmp, m->d + p->bstart, p->bend - p->bstart) < 0)
			return 0;
	}
	cs = imap_msg__param_get(p->ci.params, p->ci.nparams, "charset");
	if (cs != NULL && strcasecmp(cs, "utf-8") != 0 &&
	    strcasecmp(cs, "us-ascii") != 0 && tmp->len > 0 &&
	    charconv_buffer("utf-8", cs, (const char *)tmp->data, tmp->len,
	    &res, &rlen) == MAIL_CHARCONV_NO_ERROR) {
		buf_reset(tmp);
		hit = buf_append(tmp, res, rlen);
		charconv_buffer_free(res);
		if (hit < 0)
			return 0;
	}
	return found_in(tmp, needle);
}

static void
needle_init(struct buf *b, const char *needle, size_t len)
{
	buf_init(b, SIZE_MAX / 2);
	(void)fold(b, (const unsigned char *)needle, len);
}

int
imap_msg_header_match(const struct imap_msg *m, const char *field,
    const char *needle, size_t len)
{
	struct hfield	f;
	struct buf	nd, tmp;
	size_t		pos = m->parts[0].hstart;
	int		hit = 0;

	needle_init(&nd, needle, len);
	buf_init(&tmp, SCRATCH_MAX);
	while (!hit && imap_msg__hdr_next(m->d, m->parts[0].hend, &pos, &f)) {
		if (field != NULL && !imap_msg__field_is(m->d, &f, field))
			continue;
		buf_reset(&tmp);
		hit = len == 0 ||
		    (decoded_value(&tmp, m, &f) == 0 && found_in(&tmp, &nd));
	}
	buf_free(&nd);
	buf_free(&tmp);
	return hit;
}

int
imap_msg_text_match(const struct imap_msg *m, const char *needle,
    size_t len, int with_headers)
{
	const struct mpart	*p;
	struct buf		 nd, tmp;
	uint32_t		 pi;
	int			 hit;

	if (len == 0)
		return 1;
	needle_init(&nd, needle, len);
	buf_init(&tmp, SCRATCH_MAX);
	hit = with_headers && headers_match(m, &m->parts[0], &nd, &tmp);
	for (pi = 0; pi < m->np && !hit; pi++) {
		p = &m->parts[pi];
		/* the header of an enclosed message is body text */
		if (p->parent != NONE && m->parts[p->parent].kind == K_MSG)
			hit = headers_match(m, p, &nd, &tmp);
		if (!hit && p->kind == K_LEAF && p->text)
			hit = text_part_match(m, p, &nd, &tmp);
	}
	buf_free(&nd);
	buf_free(&tmp);
	return hit;
}
