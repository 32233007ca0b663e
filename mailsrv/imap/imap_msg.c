/*
 * imap_msg.c -- a message's MIME tree: the scan that splits it into
 * parts, each part's Content-* fields, and the header helpers shared
 * with the files that render the tree (through imap_msg_int.h):
 * imap_msg_env.c (ENVELOPE, Date:), imap_msg_struct.c (BODY/
 * BODYSTRUCTURE, sections, BINARY), imap_msg_search.c (SEARCH).
 *
 * The tree is an array of parts in message order (parent, first child
 * and next sibling are indices), built by one forward scan that keeps a
 * stack of the active multipart boundaries (contract in imap_msg.h).
 * Header values are parsed here, with iterative comment skipping; the
 * parts' strings live in an arena freed with the message.
 *
 * Runs in: the mailsrv process, worker threads (a parsed message is
 * read-only: several threads may render it at once).
 * Failure policy: malformed mail never fails, it is read as well as it
 * can be: parsing has no error.  Allocation failure is fatal (xmalloc).
 * SECURITY: the message is peer data.  Parsing recursion is bounded by
 * IMAP_MSG_DEPTH_MAX; parts by IMAP_MSG_PARTS_MAX, parameters and
 * languages by their limits; every scan is bounded by the message
 * length; line counts are kept while scanning so nested parts never
 * rescan their bodies.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "mailsrv/imap/imap_msg.h"
#include "mailsrv/imap/imap_msg_int.h"

#define ARENA_CHUNK	8192
#define LANG_MAX	64

struct achunk {
	struct achunk	*next;
	size_t		 used, cap;
	_Alignas(16) unsigned char data[];
};

/* ---------------------------------------------------------- arena */

static void *
arena_alloc(struct imap_msg *m, size_t n)
{
	struct achunk	*c = m->arena;
	size_t		 cap;
	void		*p;

	n = (n + 15) & ~(size_t)15;
	if (c == NULL || c->cap - c->used < n) {
		cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
		c = xmalloc(sizeof(*c) + cap);
		c->used = 0;
		c->cap = cap;
		c->next = m->arena;
		m->arena = c;
	}
	p = c->data + c->used;
	c->used += n;
	return p;
}

static const char *
arena_strndup(struct imap_msg *m, const char *s, size_t n)
{
	char	*p = arena_alloc(m, n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* ------------------------------------------------------ lines, fields */

/* The end of the line at pos: after its LF, or n. */
static size_t
line_end(const unsigned char *d, size_t n, size_t pos)
{
	const unsigned char	*lf;

	lf = memchr(d + pos, '\n', n - pos);
	return lf == NULL ? n : (size_t)(lf - d) + 1;
}

/* The length of the line ending just before e (>= s): 2, 1 or 0. */
static size_t
eol_len(const unsigned char *d, size_t s, size_t e)
{
	if (e <= s || d[e - 1] != '\n')
		return 0;
	return e - 1 > s && d[e - 2] == '\r' ? 2 : 1;
}

/*
 * The next field of the header section [*pos, end): 1, or 0 at the
 * empty line that ends it or at end.
 */
int
imap_msg__hdr_next(const unsigned char *d, size_t end, size_t *pos,
    struct hfield *f)
{
	const unsigned char	*colon;
	size_t			 s = *pos, e, first;

	if (s >= end)
		return 0;
	first = e = line_end(d, end, s);
	if (e - s == eol_len(d, s, e))
		return 0;
	while (e < end && is_wsp(d[e]))
		e = line_end(d, end, e);
	f->start = s;
	f->end = e;
	f->vend = e - eol_len(d, s, e);
	colon = memchr(d + s, ':', first - s);
	if (colon == NULL) {
		f->name_len = 0;
		f->vstart = s;
	} else {
		f->name_len = (size_t)(colon - d) - s;
		while (f->name_len > 0 && is_wsp(d[s + f->name_len - 1]))
			f->name_len--;
		f->vstart = (size_t)(colon - d) + 1;
	}
	*pos = e;
	return 1;
}

int
imap_msg__field_is(const unsigned char *d, const struct hfield *f,
    const char *name)
{
	size_t	len = strlen(name);

	return f->name_len == len &&
	    strncasecmp((const char *)d + f->start, name, len) == 0;
}

/*
 * The value [s, e) unfolded: CR and LF dropped (the white space after
 * them kept), leading white space skipped.
 */
int
imap_msg__unfold(struct buf *b, const unsigned char *d, size_t s, size_t e)
{
	const unsigned char	*p;
	size_t			 k;
	int			 rc;

	while (s < e && (is_wsp(d[s]) || d[s] == '\r' || d[s] == '\n'))
		s++;
	while (s < e) {
		for (p = d + s; p < d + e && *p != '\r' && *p != '\n'; p++)
			;
		k = (size_t)(p - d) - s;
		if ((rc = buf_append(b, d + s, k)) < 0)
			return rc;
		s += k;
		while (s < e && (d[s] == '\r' || d[s] == '\n'))
			s++;
	}
	return 0;
}

static const char *
arena_unfold(struct imap_msg *m, size_t s, size_t e)
{
	char	*p = arena_alloc(m, e - s + 1);
	size_t	 k = 0;

	while (s < e && (is_wsp(m->d[s]) || m->d[s] == '\r' ||
	    m->d[s] == '\n'))
		s++;
	for (; s < e; s++)
		if (m->d[s] != '\r' && m->d[s] != '\n')
			p[k++] = (char)m->d[s];
	p[k] = '\0';
	return p;
}

/* ------------------------------------------- structured field lexer */

/* Skip white space, line breaks and (nested) comments, iteratively. */
void
imap_msg__lex_cfws(struct lex *x)
{
	size_t	depth = 0;
	char	c;

	while (x->i < x->n) {
		c = x->s[x->i];
		if (depth == 0) {
			if (c != '(' && !is_wsp(c) && c != '\r' && c != '\n')
				return;
			if (c == '(')
				depth = 1;
			x->i++;
			continue;
		}
		if (c == '\\' && x->i + 1 < x->n)
			x->i++;
		else if (c == '(')
			depth++;
		else if (c == ')')
			depth--;
		x->i++;
	}
}

/* RFC 2045 token character; 8-bit accepted (seen in the wild). */
static int
is_tchar(int c)
{
	unsigned char	u = (unsigned char)c;

	if (u >= 0x80)
		return 1;
	return u > 0x20 && u < 0x7f && strchr("()<>@,;:\\\"/[]?=", u) == NULL;
}

static int
lex_token(struct lex *x, const char **s, size_t *len)
{
	size_t	start = x->i;

	while (x->i < x->n && is_tchar(x->s[x->i]))
		x->i++;
	*s = x->s + start;
	*len = x->i - start;
	return *len > 0;
}

int
imap_msg__lex_is(struct lex *x, char c)
{
	if (x->i < x->n && x->s[x->i] == c) {
		x->i++;
		return 1;
	}
	return 0;
}

/*
 * A parameter value: a quoted string (unescaped, to its closing quote
 * or the end) or, leniently, any run of bytes up to ";", white space
 * or a comment.
 */
static const char *
lex_value(struct imap_msg *m, struct lex *x)
{
	char	*p;
	size_t	 start, k = 0;

	if (imap_msg__lex_is(x, '"')) {
		p = arena_alloc(m, x->n - x->i + 1);
		while (x->i < x->n && x->s[x->i] != '"') {
			if (x->s[x->i] == '\\' && x->i + 1 < x->n)
				x->i++;
			p[k++] = x->s[x->i++];
		}
		(void)imap_msg__lex_is(x, '"');
		p[k] = '\0';
		return p;
	}
	start = x->i;
	while (x->i < x->n && (unsigned char)x->s[x->i] > 0x20 &&
	    x->s[x->i] != ';' && x->s[x->i] != '"' && x->s[x->i] != '(' &&
	    x->s[x->i] != 0x7f)
		x->i++;
	return arena_strndup(m, x->s + start, x->i - start);
}

/* ------------------------------------------------- Content-* fields */

struct rawparam {
	const char	*name;
	const char	*value;
	size_t		 blen;		/* base name length (RFC 2231) */
	int		 sect;		/* continuation number, -1: none */
	int		 ext;		/* "*" after the number */
	int		 used;
};

/* "name*N" / "name*N*" (RFC 2231 3 and 4): the base and the number. */
static void
split_2231(struct rawparam *r)
{
	size_t	len = strlen(r->name), i, ds;
	int	ext = 0, v = 0;

	r->blen = len;
	r->sect = -1;
	r->ext = 0;
	if (len > 1 && r->name[len - 1] == '*') {
		ext = 1;
		len--;
	}
	for (i = len; i > 0 && r->name[i - 1] >= '0' && r->name[i - 1] <= '9';
	    i--)
		;
	if (i == len || i < 2 || r->name[i - 1] != '*' || len - i > 3 ||
	    (len - i > 1 && r->name[i] == '0'))
		return;
	for (ds = i; i < len; i++)
		v = v * 10 + (r->name[i] - '0');
	r->sect = v;
	r->ext = ext;
	r->blen = ds - 1;
}

static int
attr_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || strchr("!#$&+-.^_`|~", c) != NULL;
}

/*
 * Merge the continuations of raw[i]'s base name into one value (as
 * Dovecot: "name*" when a section is extended, the plain sections then
 * percent-encoded).  Without a section 0 the parameter is kept as sent.
 */
static void
merge_2231(struct imap_msg *m, struct rawparam *raw, size_t n, size_t i,
    struct mparam *out)
{
	struct buf	 b;
	const char	*v;
	size_t		 j;
	int		 k, any_ext = 0, found;

	for (j = 0; j < n; j++)
		if (!raw[j].used && raw[j].sect >= 0 &&
		    raw[j].blen == raw[i].blen &&
		    strncasecmp(raw[j].name, raw[i].name, raw[i].blen) == 0)
			any_ext |= raw[j].ext;
	buf_init(&b, SCRATCH_MAX);
	for (k = 0, found = 1; found; k++) {
		found = 0;
		for (j = 0; j < n && !found; j++) {
			if (raw[j].used || raw[j].sect != k ||
			    raw[j].blen != raw[i].blen ||
			    strncasecmp(raw[j].name, raw[i].name,
			    raw[i].blen) != 0)
				continue;
			found = raw[j].used = 1;
			for (v = raw[j].value; *v != '\0'; v++) {
				if (!any_ext || raw[j].ext ||
				    attr_char((unsigned char)*v))
					(void)buf_putc(&b, *v);
				else
					(void)buf_printf(&b, "%%%02X",
					    (unsigned char)*v);
			}
		}
	}
	if (k == 1) {
		/* no section 0 */
		out->name = raw[i].name;
		out->value = raw[i].value;
		raw[i].used = 1;
	} else {
		(void)buf_append(&b, "", 0);
		out->value = arena_strndup(m, (char *)b.data, b.len);
		buf_reset(&b);
		(void)buf_append(&b, raw[i].name, raw[i].blen);
		if (any_ext)
			(void)buf_putc(&b, '*');
		out->name = arena_strndup(m, (char *)b.data, b.len);
	}
	buf_free(&b);
}

/* *( ";" attribute "=" value ), leniently, then RFC 2231 merging. */
static void
parse_params(struct imap_msg *m, struct lex *x, struct mparam **out,
    uint8_t *nout)
{
	struct rawparam	 raw[IMAP_MSG_PARAMS_MAX];
	struct mparam	*res;
	const char	*s;
	size_t		 n = 0, len, i, k = 0;

	for (;;) {
		imap_msg__lex_cfws(x);
		if (x->i >= x->n)
			break;
		if (!imap_msg__lex_is(x, ';')) {
			x->i++;		/* junk */
			continue;
		}
		imap_msg__lex_cfws(x);
		if (!lex_token(x, &s, &len))
			continue;
		imap_msg__lex_cfws(x);
		if (!imap_msg__lex_is(x, '='))
			continue;
		imap_msg__lex_cfws(x);
		if (n == IMAP_MSG_PARAMS_MAX) {
			(void)lex_value(m, x);
			continue;
		}
		raw[n].name = arena_strndup(m, s, len);
		raw[n].value = lex_value(m, x);
		raw[n].used = 0;
		split_2231(&raw[n]);
		n++;
	}
	*out = NULL;
	*nout = 0;
	if (n == 0)
		return;
	res = arena_alloc(m, n * sizeof(*res));
	for (i = 0; i < n; i++) {
		if (raw[i].used)
			continue;
		if (raw[i].sect < 0) {
			res[k].name = raw[i].name;
			res[k++].value = raw[i].value;
			raw[i].used = 1;
		} else
			merge_2231(m, raw, n, i, &res[k++]);
	}
	*out = res;
	*nout = (uint8_t)k;
}

/* Content-Type: type "/" subtype params; invalid: the default. */
static void
parse_ctype(struct imap_msg *m, struct minfo *ci, const char *v)
{
	struct lex	 x = { v, 0, strlen(v) };
	const char	*t, *st;
	size_t		 tl, stl;

	imap_msg__lex_cfws(&x);
	if (!lex_token(&x, &t, &tl))
		return;
	imap_msg__lex_cfws(&x);
	if (!imap_msg__lex_is(&x, '/'))
		return;
	imap_msg__lex_cfws(&x);
	if (!lex_token(&x, &st, &stl))
		return;
	ci->type = arena_strndup(m, t, tl);
	ci->subtype = arena_strndup(m, st, stl);
	parse_params(m, &x, &ci->params, &ci->nparams);
}

static void
parse_cte(struct imap_msg *m, struct minfo *ci, const char *v)
{
	static const struct {
		const char	*name;
		int		 cte;
	} known[] = {
		{ "7bit", CTE_7BIT }, { "8bit", CTE_8BIT },
		{ "binary", CTE_BINARY }, { "quoted-printable", CTE_QP },
		{ "base64", CTE_B64 },
	};
	struct lex	 x = { v, 0, strlen(v) };
	const char	*t;
	size_t		 tl, i;

	imap_msg__lex_cfws(&x);
	if (!lex_token(&x, &t, &tl))
		return;
	imap_msg__lex_cfws(&x);
	if (x.i < x.n)
		return;		/* not one token: as if absent (Dovecot) */
	ci->enc = arena_strndup(m, t, tl);
	ci->cte = CTE_OTHER;
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcasecmp(ci->enc, known[i].name) == 0)
			ci->cte = (uint8_t)known[i].cte;
}

static void
parse_disp(struct imap_msg *m, struct minfo *ci, const char *v)
{
	struct lex	 x = { v, 0, strlen(v) };
	const char	*t;
	size_t		 tl;

	imap_msg__lex_cfws(&x);
	if (!lex_token(&x, &t, &tl))
		return;
	ci->disp = arena_strndup(m, t, tl);
	parse_params(m, &x, &ci->dparams, &ci->ndparams);
}

/* Content-Language: 1#Language-tag. */
static void
parse_lang(struct imap_msg *m, struct minfo *ci, const char *v)
{
	struct lex	 x = { v, 0, strlen(v) };
	const char	*tags[LANG_MAX], *t;
	size_t		 tl, n = 0;

	for (;;) {
		imap_msg__lex_cfws(&x);
		if (n == LANG_MAX || !lex_token(&x, &t, &tl))
			break;
		tags[n++] = arena_strndup(m, t, tl);
		imap_msg__lex_cfws(&x);
		if (!imap_msg__lex_is(&x, ','))
			break;
	}
	if (n == 0)
		return;
	ci->lang = arena_alloc(m, n * sizeof(*ci->lang));
	memcpy(ci->lang, tags, n * sizeof(*ci->lang));
	ci->nlang = (uint8_t)n;
}

/*
 * The Content-* fields of part pi (first occurrence of each).  They
 * count when mime is set (a part of a multipart) or the header has
 * MIME-Version or Content-Type.
 */
static void
parse_fields(struct imap_msg *m, uint32_t pi, int mime)
{
	struct minfo	*ci = &m->parts[pi].ci;
	struct hfield	 f;
	const char	*v;
	size_t		 pos = m->parts[pi].hstart, end = m->parts[pi].hend;
	int		 seen_ct = 0, seen_cte = 0, seen_dsp = 0, seen_lang = 0;

	while (imap_msg__hdr_next(m->d, end, &pos, &f)) {
		if (imap_msg__field_is(m->d, &f, "MIME-Version")) {
			mime = 1;
			continue;
		}
		if (f.name_len <= 8 ||
		    strncasecmp((const char *)m->d + f.start, "Content-", 8))
			continue;
		v = NULL;
		if (imap_msg__field_is(m->d, &f, "Content-Type") && !seen_ct) {
			seen_ct = mime = 1;
			parse_ctype(m, ci, arena_unfold(m, f.vstart, f.vend));
		} else if (imap_msg__field_is(m->d, &f,
		    "Content-Transfer-Encoding") && !seen_cte) {
			seen_cte = 1;
			parse_cte(m, ci, arena_unfold(m, f.vstart, f.vend));
		} else if (imap_msg__field_is(m->d, &f,
		    "Content-Disposition") && !seen_dsp) {
			seen_dsp = 1;
			parse_disp(m, ci, arena_unfold(m, f.vstart, f.vend));
		} else if (imap_msg__field_is(m->d, &f, "Content-Language") &&
		    !seen_lang) {
			seen_lang = 1;
			parse_lang(m, ci, arena_unfold(m, f.vstart, f.vend));
		} else if ((imap_msg__field_is(m->d, &f, "Content-ID") &&
		    !ci->id) ||
		    (imap_msg__field_is(m->d, &f, "Content-Description") &&
		    !ci->desc) ||
		    (imap_msg__field_is(m->d, &f, "Content-MD5") &&
		    !ci->md5) ||
		    (imap_msg__field_is(m->d, &f, "Content-Location") &&
		    !ci->loc))
			v = arena_unfold(m, f.vstart, f.vend);
		if (v == NULL)
			continue;
		switch (f.name_len) {
		case 10:
			ci->id = v;
			break;
		case 11:
			ci->md5 = v;
			break;
		case 16:
			ci->loc = v;
			break;
		default:
			ci->desc = v;
		}
	}
	if (!mime)
		memset(ci, 0, sizeof(*ci));
}

const char *
imap_msg__param_get(const struct mparam *p, size_t n, const char *name)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (strcasecmp(p[i].name, name) == 0)
			return p[i].value;
	return NULL;
}

/* The part's kind from its Content-Type, depth and the parts made. */
static void
classify(struct imap_msg *m, uint32_t pi)
{
	struct mpart		*p = &m->parts[pi];
	struct minfo		*ci = &p->ci;
	const struct mpart	*par;
	const char		*b;
	int			 room;

	room = p->depth < IMAP_MSG_DEPTH_MAX && m->np < IMAP_MSG_PARTS_MAX;
	par = p->parent == NONE ? NULL : &m->parts[p->parent];
	p->kind = K_LEAF;
	p->text = 0;
	if (ci->type == NULL) {
		if (par != NULL && par->kind == K_MULTI &&
		    strcasecmp(par->ci.subtype, "digest") == 0)
			p->kind = room ? K_MSG : K_OPAQUE;
		else
			p->text = 1;
		return;
	}
	if (strcasecmp(ci->type, "multipart") == 0) {
		b = imap_msg__param_get(ci->params, ci->nparams, "boundary");
		if (b == NULL || *b == '\0' ||
		    strlen(b) > IMAP_MSG_BOUNDARY_MAX) {
			/* unusable (RFC 2046 5.1.1): text/plain */
			ci->type = ci->subtype = NULL;
			ci->params = NULL;
			ci->nparams = 0;
			p->text = 1;
			return;
		}
		ci->boundary = b;
		p->kind = room ? K_MULTI : K_OPAQUE;
		return;
	}
	if (strcasecmp(ci->type, "message") == 0 &&
	    (strcasecmp(ci->subtype, "rfc822") == 0 ||
	    strcasecmp(ci->subtype, "global") == 0)) {
		p->kind = room ? K_MSG : K_OPAQUE;
		return;
	}
	p->text = strcasecmp(ci->type, "text") == 0;
}

/* ------------------------------------------------- structure parser */

struct bnd {
	const char	*s;
	size_t		 len;
	uint32_t	 owner;
};

struct pctx {
	struct imap_msg	*m;
	struct bnd	 b[IMAP_MSG_DEPTH_MAX];
	size_t		 nb;
	size_t		 lpos;		/* [0, lpos) holds lcount LFs */
	uint32_t	 lcount;
};

/* A boundary line found at line, the next line at next. */
struct hit {
	int		 found;
	int		 close;		/* "--boundary--" */
	size_t		 line, next;
	uint32_t	 owner;		/* the multipart it belongs to */
};

/* The LFs in [0, pos); cheap when pos moves forward, as it does. */
static uint32_t
lf_at(struct pctx *c, size_t pos)
{
	const unsigned char	*d = c->m->d, *p, *e;
	uint32_t		 k = 0;

	if (pos == c->lpos)
		return c->lcount;
	p = d + (pos > c->lpos ? c->lpos : pos);
	e = d + (pos > c->lpos ? pos : c->lpos);
	while ((p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
		k++;
		if (++p == e)
			break;
	}
	c->lcount = pos > c->lpos ? c->lcount + k : c->lcount - k;
	c->lpos = pos;
	return c->lcount;
}

/* Is the line at pos a boundary of an enclosing multipart? */
static int
boundary_at(const struct pctx *c, size_t pos, struct hit *h)
{
	const unsigned char	*d = c->m->d;
	size_t			 n = c->m->n, e, len, i;
	const struct bnd	*b;

	if (n - pos < 2 || d[pos] != '-' || d[pos + 1] != '-')
		return 0;
	e = line_end(d, n, pos);
	len = e - pos - eol_len(d, pos, e) - 2;
	for (i = c->nb; i-- > 0;) {
		b = &c->b[i];
		if (b->len > len || memcmp(d + pos + 2, b->s, b->len) != 0)
			continue;
		h->found = 1;
		h->line = pos;
		h->next = e;
		h->owner = b->owner;
		h->close = len - b->len >= 2 && d[pos + 2 + b->len] == '-' &&
		    d[pos + 3 + b->len] == '-';
		return 1;
	}
	return 0;
}

static void
find_boundary(struct pctx *c, size_t pos, struct hit *h)
{
	const unsigned char	*d = c->m->d;
	size_t			 n = c->m->n;

	h->found = 0;
	h->line = h->next = n;
	if (c->nb == 0)
		return;
	while (pos < n) {
		if (d[pos] == '-' && boundary_at(c, pos, h))
			return;
		pos = line_end(d, n, pos);
	}
}

/* A body ends before the line ending that precedes a boundary. */
static size_t
body_end(const unsigned char *d, size_t bstart, const struct hit *h,
    size_t n)
{
	if (!h->found)
		return n;
	return h->line - eol_len(d, bstart, h->line);
}

static uint32_t
new_part(struct imap_msg *m, uint32_t parent, uint32_t prev, size_t start)
{
	struct mpart	*p;

	if (m->np >= IMAP_MSG_PARTS_MAX)
		return NONE;
	if (m->np == m->cap) {
		m->cap = m->cap == 0 ? 8 : m->cap * 2;
		m->parts = xreallocarray(m->parts, m->cap, sizeof(*m->parts));
	}
	p = &m->parts[m->np];
	memset(p, 0, sizeof(*p));
	p->hstart = p->hend = p->bstart = p->bend = start;
	p->parent = parent;
	p->child = p->next = NONE;
	p->kind = K_LEAF;
	p->text = 1;
	if (parent != NONE) {
		p->depth = m->parts[parent].depth + 1;
		m->parts[parent].nchild++;
		if (prev == NONE)
			m->parts[parent].child = m->np;
		else
			m->parts[prev].next = m->np;
	}
	return m->np++;
}

static void	parse_part(struct pctx *, uint32_t, int, struct hit *);

static void
parse_multi(struct pctx *c, uint32_t pi, struct hit *h)
{
	struct imap_msg	*m = c->m;
	uint32_t	 ci, prev = NONE;

	c->b[c->nb].s = m->parts[pi].ci.boundary;
	c->b[c->nb].len = strlen(m->parts[pi].ci.boundary);
	c->b[c->nb].owner = pi;
	c->nb++;
	find_boundary(c, m->parts[pi].bstart, h);
	while (h->found && h->owner == pi && !h->close) {
		ci = new_part(m, pi, prev, h->next);
		if (ci == NONE) {
			/* IMAP_MSG_PARTS_MAX: the rest is left out */
			find_boundary(c, h->next, h);
			continue;
		}
		prev = ci;
		parse_part(c, ci, 1, h);
	}
	c->nb--;
	if (h->found && h->owner == pi)		/* the epilogue */
		find_boundary(c, h->next, h);
}

/*
 * Parse part pi from its header start; recursion depth is bounded by
 * IMAP_MSG_DEPTH_MAX (classify()).  *h: the boundary that ended it.
 */
static void
parse_part(struct pctx *c, uint32_t pi, int in_multi, struct hit *h)
{
	struct imap_msg	*m = c->m;
	size_t		 pos = m->parts[pi].hstart, e;
	uint32_t	 lf0;
	int		 hdr_hit = 0, empty;

	h->found = 0;
	while (pos < m->n) {
		if (c->nb > 0 && boundary_at(c, pos, h)) {
			/* no empty line: the part has no body */
			hdr_hit = 1;
			pos -= eol_len(m->d, m->parts[pi].hstart, pos);
			break;
		}
		e = line_end(m->d, m->n, pos);
		empty = e - pos == eol_len(m->d, pos, e);
		pos = e;
		if (empty)
			break;
	}
	m->parts[pi].hend = m->parts[pi].bstart = pos;
	parse_fields(m, pi, in_multi);
	classify(m, pi);
	lf0 = lf_at(c, pos);
	if (hdr_hit) {
		if (m->parts[pi].kind == K_MSG)
			(void)new_part(m, pi, NONE, pos);
		m->parts[pi].bend = pos;
		return;
	}
	switch (m->parts[pi].kind) {
	case K_MULTI:
		parse_multi(c, pi, h);
		break;
	case K_MSG:
		/* classify() left room for the child */
		parse_part(c, new_part(m, pi, NONE, pos), 0, h);
		break;
	default:
		find_boundary(c, pos, h);
	}
	m->parts[pi].bend = body_end(m->d, pos, h, m->n);
	m->parts[pi].lines = lf_at(c, m->parts[pi].bend) - lf0;
}

int
imap_msg_parse(struct imap_msg **out, const unsigned char *data, size_t len)
{
	struct imap_msg	*m;
	struct pctx	*c;
	struct hit	 h;

	m = xcalloc(1, sizeof(*m));
	/* never NULL: d + offset must stay defined for an empty message */
	m->d = data != NULL ? data : (const unsigned char *)"";
	m->n = data == NULL ? 0 : len;
	c = xcalloc(1, sizeof(*c));
	c->m = m;
	(void)new_part(m, NONE, NONE, 0);
	parse_part(c, 0, 0, &h);
	free(c);
	*out = m;
	return 0;
}

void
imap_msg_free(struct imap_msg **mp)
{
	struct imap_msg	*m = *mp;
	struct achunk	*c, *next;

	if (m == NULL)
		return;
	for (c = m->arena; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(m->parts);
	free(m);
	*mp = NULL;
}
