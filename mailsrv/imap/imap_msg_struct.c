/*
 * imap_msg_struct.c -- what FETCH reads from a message's MIME tree:
 * BODY/BODYSTRUCTURE, the bytes of a section and BINARY (the part's
 * body with its Content-Transfer-Encoding removed) (contract in
 * imap_msg.h; the tree is built by imap_msg.c, shared through
 * imap_msg_int.h).
 *
 * Runs in: the mailsrv process, worker threads (a parsed message is
 * read-only: several threads may render it at once).
 * Failure policy: the only errors are a full output buffer
 * (ERR_TOOBIG), an unknown transfer encoding for BINARY (ERR_PROTO)
 * and caller bugs (ERR_INVAL).  Allocation failure is fatal (xmalloc).
 * SECURITY: the tree and the bodies are peer data.  Rendering recursion
 * is bounded by the tree depth (IMAP_MSG_DEPTH_MAX), part paths by
 * IMAP_SECT_DEPTH_MAX; decoders write in place and never produce more
 * than they read; strings go out through imap_fmt_string(), so no
 * value escapes the IMAP framing.
 */
#include <stdint.h>
#include <string.h>

#include "common/base64.h"
#include "common/buf.h"
#include "common/err.h"
#include "mailsrv/imap/imap_format.h"
#include "mailsrv/imap/imap_msg.h"
#include "mailsrv/imap/imap_msg_int.h"

/* ----------------------------------------------------- BODYSTRUCTURE */

static int
fmt_str(struct buf *b, const char *s, int utf8)
{
	return imap_fmt_string(b, s, strlen(s), utf8);
}

static int
fmt_nstr(struct buf *b, const char *s, int utf8)
{
	return s == NULL ? buf_append(b, "NIL", 3) : fmt_str(b, s, utf8);
}

/* ("name" "value" ...), NIL when empty; text parts get a charset. */
static int
write_params(struct buf *b, const struct mparam *p, size_t n, int charset,
    int utf8)
{
	size_t	i;
	int	rc;

	if (charset && imap_msg__param_get(p, n, "charset") != NULL)
		charset = 0;
	if (n == 0 && !charset)
		return buf_append(b, "NIL", 3);
	if ((rc = buf_putc(b, '(')) < 0)
		return rc;
	for (i = 0; i < n; i++)
		if ((i > 0 && (rc = buf_putc(b, ' ')) < 0) ||
		    (rc = fmt_str(b, p[i].name, utf8)) < 0 ||
		    (rc = buf_putc(b, ' ')) < 0 ||
		    (rc = fmt_str(b, p[i].value, utf8)) < 0)
			return rc;
	if (charset && (rc = buf_printf(b, "%s\"charset\" \"us-ascii\"",
	    n > 0 ? " " : "")) < 0)
		return rc;
	return buf_putc(b, ')');
}

/* SP disposition SP language SP location (both body kinds). */
static int
write_ext_common(struct buf *b, const struct minfo *ci, int utf8)
{
	size_t	i;
	int	rc;

	if ((rc = buf_putc(b, ' ')) < 0)
		return rc;
	if (ci->disp == NULL)
		rc = buf_append(b, "NIL", 3);
	else if ((rc = buf_putc(b, '(')) == 0 &&
	    (rc = fmt_str(b, ci->disp, utf8)) == 0 &&
	    (rc = buf_putc(b, ' ')) == 0 &&
	    (rc = write_params(b, ci->dparams, ci->ndparams, 0, utf8)) == 0)
		rc = buf_putc(b, ')');
	if (rc < 0 || (rc = buf_putc(b, ' ')) < 0)
		return rc;
	if (ci->nlang == 0)
		rc = buf_append(b, "NIL", 3);
	for (i = 0; i < ci->nlang; i++)
		if ((rc = buf_putc(b, i == 0 ? '(' : ' ')) < 0 ||
		    (rc = fmt_str(b, ci->lang[i], utf8)) < 0 ||
		    (i + 1 == ci->nlang && (rc = buf_putc(b, ')')) < 0))
			return rc;
	if (rc < 0 || (rc = buf_putc(b, ' ')) < 0)
		return rc;
	return fmt_nstr(b, ci->loc, utf8);
}

static int	write_part(struct buf *, const struct imap_msg *, uint32_t,
		    int, int);

static int
write_multi(struct buf *b, const struct imap_msg *m, const struct mpart *p,
    int ext, int utf8)
{
	uint32_t	c;
	int		rc;

	if (p->child == NONE)
		/* no parts: one empty text/plain, as Dovecot */
		rc = buf_printf(b, "(\"text\" \"plain\" (\"charset\" "
		    "\"us-ascii\") NIL NIL \"7bit\" 0 0%s)",
		    ext ? " NIL NIL NIL NIL" : "");
	else
		for (c = p->child, rc = 0; c != NONE && rc == 0;
		    c = m->parts[c].next)
			rc = write_part(b, m, c, ext, utf8);
	if (rc < 0 || (rc = buf_putc(b, ' ')) < 0 ||
	    (rc = fmt_str(b, p->ci.subtype, utf8)) < 0 || !ext)
		return rc;
	if ((rc = buf_putc(b, ' ')) < 0 ||
	    (rc = write_params(b, p->ci.params, p->ci.nparams, 0, utf8)) < 0)
		return rc;
	return write_ext_common(b, &p->ci, utf8);
}

static int
write_single(struct buf *b, const struct imap_msg *m, const struct mpart *p,
    int ext, int utf8)
{
	const struct minfo	*ci = &p->ci;
	int			 rc;

	if (p->kind == K_OPAQUE)
		rc = buf_printf(b, "%s", "\"application\" \"octet-stream\" NIL");
	else if (ci->type == NULL)
		rc = buf_printf(b, "%s", p->kind == K_MSG ?
		    "\"message\" \"rfc822\" NIL" :
		    "\"text\" \"plain\" (\"charset\" \"us-ascii\")");
	else if ((rc = fmt_str(b, ci->type, utf8)) == 0 &&
	    (rc = buf_putc(b, ' ')) == 0 &&
	    (rc = fmt_str(b, ci->subtype, utf8)) == 0 &&
	    (rc = buf_putc(b, ' ')) == 0)
		rc = write_params(b, ci->params, ci->nparams, p->text, utf8);
	if (rc < 0 || (rc = buf_putc(b, ' ')) < 0 ||
	    (rc = fmt_nstr(b, ci->id, utf8)) < 0 ||
	    (rc = buf_putc(b, ' ')) < 0 ||
	    (rc = fmt_nstr(b, ci->desc, utf8)) < 0 ||
	    (rc = buf_putc(b, ' ')) < 0 ||
	    (rc = fmt_str(b, ci->enc != NULL ? ci->enc : "7bit", utf8)) < 0 ||
	    (rc = buf_printf(b, " %zu", p->bend - p->bstart)) < 0)
		return rc;
	if (p->kind == K_MSG) {
		if ((rc = buf_putc(b, ' ')) < 0 ||
		    (rc = imap_msg__write_envelope(b, m,
		    m->parts[p->child].hstart, m->parts[p->child].hend,
		    utf8)) < 0 ||
		    (rc = buf_putc(b, ' ')) < 0 ||
		    (rc = write_part(b, m, p->child, ext, utf8)) < 0)
			return rc;
	}
	if ((p->text || p->kind == K_MSG) &&
	    (rc = buf_printf(b, " %u", p->lines)) < 0)
		return rc;
	if (!ext)
		return 0;
	if ((rc = buf_putc(b, ' ')) < 0 || (rc = fmt_nstr(b, ci->md5, utf8)) < 0)
		return rc;
	return write_ext_common(b, ci, utf8);
}

/* Recursion bounded by the tree depth (IMAP_MSG_DEPTH_MAX). */
static int
write_part(struct buf *b, const struct imap_msg *m, uint32_t pi, int ext,
    int utf8)
{
	const struct mpart	*p = &m->parts[pi];
	int			 rc;

	if ((rc = buf_putc(b, '(')) < 0)
		return rc;
	if (p->kind == K_MULTI)
		rc = write_multi(b, m, p, ext, utf8);
	else
		rc = write_single(b, m, p, ext, utf8);
	if (rc < 0)
		return rc;
	return buf_putc(b, ')');
}

int
imap_msg_bodystructure(struct buf *out, const struct imap_msg *m, int ext,
    int utf8)
{
	return write_part(out, m, 0, ext, utf8);
}

/* ---------------------------------------------------------- sections */

/* The part the numbers name (Dovecot's walk), NONE if none. */
static uint32_t
find_part(const struct imap_msg *m, const struct imap_section *s)
{
	uint32_t	pi = 0, c, k;
	size_t		i;

	for (i = 0; i < s->npart; i++) {
		if (m->parts[pi].kind == K_MULTI) {
			c = m->parts[pi].child;
			for (k = 1; c != NONE && k < s->part[i]; k++)
				c = m->parts[c].next;
			if (c == NONE || s->part[i] == 0)
				return NONE;
			pi = c;
		} else if (s->part[i] != 1 ||
		    (i + 1 < s->npart && m->parts[pi].kind != K_MSG))
			return NONE;
		/* going on inside a message/rfc822: its message */
		if (i + 1 < s->npart && m->parts[pi].kind == K_MSG)
			pi = m->parts[pi].child;
	}
	return pi;
}

static int
name_listed(const unsigned char *d, const struct hfield *f,
    const char *const *names, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (imap_msg__field_is(d, f, names[i]))
			return 1;
	return 0;
}

/* HEADER.FIELDS[.NOT]: the (non-)matching fields and a CRLF. */
static int
header_fields(struct buf *out, const struct imap_msg *m,
    const struct mpart *p, const struct imap_section *s, int not)
{
	struct hfield	f;
	size_t		pos = p->hstart;
	int		rc;

	while (imap_msg__hdr_next(m->d, p->hend, &pos, &f)) {
		if (name_listed(m->d, &f, s->fields, s->nfields) == not)
			continue;
		if ((rc = buf_append(out, m->d + f.start, f.end - f.start)) < 0)
			return rc;
		if (m->d[f.end - 1] != '\n' &&
		    (rc = buf_append(out, "\r\n", 2)) < 0)
			return rc;
	}
	return buf_append(out, "\r\n", 2);
}

int
imap_msg_section(struct buf *out, const struct imap_msg *m,
    const struct imap_section *s)
{
	const struct mpart	*p;
	uint32_t		 pi;

	if (s->npart > IMAP_SECT_DEPTH_MAX ||
	    (s->npart == 0 && s->kind == IMAP_SECT_MIME)) {
		err_set(ERR_INVAL, "invalid section");
		return ERR_INVAL;
	}
	if (s->npart == 0 && s->kind == IMAP_SECT_ALL)
		return buf_append(out, m->d, m->n);
	if ((pi = find_part(m, s)) == NONE)
		return 0;
	p = &m->parts[pi];
	if (s->kind == IMAP_SECT_ALL)
		return buf_append(out, m->d + p->bstart, p->bend - p->bstart);
	if (s->kind == IMAP_SECT_MIME)
		return buf_append(out, m->d + p->hstart, p->hend - p->hstart);
	if (s->npart > 0) {
		/* HEADER* and TEXT name the message of a message/rfc822 */
		if (p->kind != K_MSG)
			return 0;
		p = &m->parts[p->child];
	}
	switch (s->kind) {
	case IMAP_SECT_HEADER:
		return buf_append(out, m->d + p->hstart, p->hend - p->hstart);
	case IMAP_SECT_TEXT:
		return buf_append(out, m->d + p->bstart, p->bend - p->bstart);
	case IMAP_SECT_HEADER_FIELDS:
		return header_fields(out, m, p, s, 0);
	case IMAP_SECT_HEADER_FIELDS_NOT:
		return header_fields(out, m, p, s, 1);
	default:
		err_set(ERR_INVAL, "invalid section");
		return ERR_INVAL;
	}
}

/* ---------------------------------------------------------- decoding */

/*
 * Decoders write in place: out first grows by n bytes (the decoded
 * text is never longer), then is cut to what was written.
 */
static int
decode_b64(struct buf *out, const unsigned char *s, size_t n)
{
	unsigned char	*o;
	size_t		 start = out->len, k = 0, i;
	uint32_t	 acc = 0;
	int		 v, q = 0, rc;

	if ((rc = buf_append(out, s, n)) < 0)
		return rc;
	o = out->data + start;
	for (i = 0; i < n && s[i] != '='; i++) {
		if ((v = b64_char_value(s[i], '+', '/')) < 0)
			continue;	/* line breaks, junk */
		acc = acc << 6 | (uint32_t)v;
		if (++q == 4) {
			o[k++] = (unsigned char)(acc >> 16);
			o[k++] = (unsigned char)(acc >> 8);
			o[k++] = (unsigned char)acc;
			q = 0;
			acc = 0;
		}
	}
	if (q == 2)
		o[k++] = (unsigned char)(acc >> 4);
	else if (q == 3) {
		o[k++] = (unsigned char)(acc >> 10);
		o[k++] = (unsigned char)(acc >> 2);
	}
	out->len = start + k;
	out->data[out->len] = '\0';
	return 0;
}

static int
hexval(unsigned char c)
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
 * RFC 2045 6.7: "=XX", soft line breaks ("=" and transport padding
 * before the line end) removed, trailing white space of each line
 * dropped; a "=" that starts nothing valid is kept.
 */
static int
decode_qp(struct buf *out, const unsigned char *s, size_t n)
{
	unsigned char	*o;
	size_t		 start = out->len, k = 0, ws = SIZE_MAX, i = 0, j;
	int		 rc;

	if ((rc = buf_append(out, s, n)) < 0)
		return rc;
	o = out->data + start;
	while (i < n) {
		if (s[i] == '=') {
			if (i + 2 < n && hexval(s[i + 1]) >= 0 &&
			    hexval(s[i + 2]) >= 0) {
				o[k++] = (unsigned char)(hexval(s[i + 1]) << 4 |
				    hexval(s[i + 2]));
				i += 3;
				ws = SIZE_MAX;
				continue;
			}
			for (j = i + 1; j < n && is_wsp(s[j]); j++)
				;
			if (j + 1 < n && s[j] == '\r' && s[j + 1] == '\n') {
				i = j + 2;
				continue;
			}
			if (j == n || s[j] == '\n') {
				i = j + (j < n);
				continue;
			}
			ws = SIZE_MAX;		/* a lone "=" is kept */
		} else if (s[i] == '\r' || s[i] == '\n') {
			if (ws != SIZE_MAX)
				k = ws;
			ws = SIZE_MAX;
		} else if (is_wsp(s[i])) {
			if (ws == SIZE_MAX)
				ws = k;
		} else
			ws = SIZE_MAX;
		o[k++] = s[i++];
	}
	if (ws != SIZE_MAX)
		k = ws;
	out->len = start + k;
	out->data[out->len] = '\0';
	return 0;
}

/* The body of p with its transfer encoding removed. */
int
imap_msg__decode_body(struct buf *out, const struct imap_msg *m,
    const struct mpart *p)
{
	const unsigned char	*s = m->d + p->bstart;
	size_t			 n = p->bend - p->bstart;

	switch (p->ci.cte) {
	case CTE_B64:
		return decode_b64(out, s, n);
	case CTE_QP:
		return decode_qp(out, s, n);
	case CTE_OTHER:
		err_set(ERR_PROTO, "unknown Content-Transfer-Encoding");
		return ERR_PROTO;
	default:
		return buf_append(out, s, n);
	}
}

int
imap_msg_binary(struct buf *out, const struct imap_msg *m,
    const struct imap_section *s)
{
	uint32_t	pi;

	if (s->npart > IMAP_SECT_DEPTH_MAX) {
		err_set(ERR_INVAL, "invalid section");
		return ERR_INVAL;
	}
	if (s->npart == 0)
		return buf_append(out, m->d, m->n);
	if ((pi = find_part(m, s)) == NONE)
		return 0;
	return imap_msg__decode_body(out, m, &m->parts[pi]);
}
