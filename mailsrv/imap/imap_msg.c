/*
 * imap_msg.c -- a message's MIME tree and what IMAP derives from it:
 * ENVELOPE, BODY/BODYSTRUCTURE, sections, BINARY and SEARCH matching.
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
 * can be; the only errors are a full output buffer (ERR_TOOBIG), an
 * unknown transfer encoding for BINARY (ERR_PROTO) and caller bugs
 * (ERR_INVAL).  Allocation failure is fatal (xmalloc).
 * SECURITY: the message is peer data.  Recursion (parsing, rendering)
 * is bounded by IMAP_MSG_DEPTH_MAX; parts by IMAP_MSG_PARTS_MAX,
 * parameters and addresses by their limits; every scan is bounded by
 * the message length; line counts are kept while scanning so nested
 * parts never rescan their bodies.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libetpan/charconv.h>
#include <libetpan/mailmime_decode.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/xmalloc.h"
#include "mailsrv/imap/imap_format.h"
#include "mailsrv/imap/imap_msg.h"

#define NONE		UINT32_MAX
#define ARENA_CHUNK	8192
#define SCRATCH_MAX	(SIZE_MAX / 4)
#define LANG_MAX	64

enum part_kind {
	K_LEAF,		/* a body */
	K_MULTI,	/* multipart/<x> with a boundary */
	K_MSG,		/* message/rfc822 or message/global: one child */
	K_OPAQUE,	/* too deep or too many parts: not split */
};

enum cte {
	CTE_7BIT,	/* also: absent or unparsable */
	CTE_8BIT,
	CTE_BINARY,
	CTE_QP,
	CTE_B64,
	CTE_OTHER,
};

struct mparam {
	const char	*name;
	const char	*value;
};

/* What the Content-* fields say (all NULL/0 when they do not count). */
struct minfo {
	const char	*type, *subtype;	/* NULL: the default */
	const char	*boundary;		/* K_MULTI */
	struct mparam	*params, *dparams;
	const char	*id, *desc, *enc, *md5, *loc, *disp;
	const char	**lang;
	uint8_t		 nparams, ndparams, nlang;
	uint8_t		 cte;			/* enum cte */
};

struct mpart {
	size_t		 hstart, hend;	/* header, with its blank line */
	size_t		 bstart, bend;	/* body */
	uint32_t	 lines;		/* LFs in the body */
	uint32_t	 parent, child, next, nchild;
	uint16_t	 depth;
	uint8_t		 kind;		/* enum part_kind */
	uint8_t		 text;		/* text/<x> (default included) */
	struct minfo	 ci;
};

struct achunk {
	struct achunk	*next;
	size_t		 used, cap;
	_Alignas(16) unsigned char data[];
};

struct imap_msg {
	const unsigned char	*d;
	size_t			 n;
	struct mpart		*parts;
	uint32_t		 np, cap;
	struct achunk		*arena;
};

/* One header field: raw bytes [start, end), line endings included. */
struct hfield {
	size_t	start, end;
	size_t	name_len;	/* the name at start; 0: no ':' */
	size_t	vstart, vend;	/* the value, without the last line end */
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

static int
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/*
 * The next field of the header section [*pos, end): 1, or 0 at the
 * empty line that ends it or at end.
 */
static int
hdr_next(const unsigned char *d, size_t end, size_t *pos, struct hfield *f)
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

static int
field_is(const unsigned char *d, const struct hfield *f, const char *name)
{
	size_t	len = strlen(name);

	return f->name_len == len &&
	    strncasecmp((const char *)d + f->start, name, len) == 0;
}

/*
 * The value [s, e) unfolded: CR and LF dropped (the white space after
 * them kept), leading white space skipped.
 */
static int
unfold(struct buf *b, const unsigned char *d, size_t s, size_t e)
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

struct lex {
	const char	*s;
	size_t		 i, n;
};

/* Skip white space, line breaks and (nested) comments, iteratively. */
static void
lex_cfws(struct lex *x)
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

static int
lex_is(struct lex *x, char c)
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

	if (lex_is(x, '"')) {
		p = arena_alloc(m, x->n - x->i + 1);
		while (x->i < x->n && x->s[x->i] != '"') {
			if (x->s[x->i] == '\\' && x->i + 1 < x->n)
				x->i++;
			p[k++] = x->s[x->i++];
		}
		(void)lex_is(x, '"');
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
		lex_cfws(x);
		if (x->i >= x->n)
			break;
		if (!lex_is(x, ';')) {
			x->i++;		/* junk */
			continue;
		}
		lex_cfws(x);
		if (!lex_token(x, &s, &len))
			continue;
		lex_cfws(x);
		if (!lex_is(x, '='))
			continue;
		lex_cfws(x);
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

	lex_cfws(&x);
	if (!lex_token(&x, &t, &tl))
		return;
	lex_cfws(&x);
	if (!lex_is(&x, '/'))
		return;
	lex_cfws(&x);
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

	lex_cfws(&x);
	if (!lex_token(&x, &t, &tl))
		return;
	lex_cfws(&x);
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

	lex_cfws(&x);
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
		lex_cfws(&x);
		if (n == LANG_MAX || !lex_token(&x, &t, &tl))
			break;
		tags[n++] = arena_strndup(m, t, tl);
		lex_cfws(&x);
		if (!lex_is(&x, ','))
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

	while (hdr_next(m->d, end, &pos, &f)) {
		if (field_is(m->d, &f, "MIME-Version")) {
			mime = 1;
			continue;
		}
		if (f.name_len <= 8 ||
		    strncasecmp((const char *)m->d + f.start, "Content-", 8))
			continue;
		v = NULL;
		if (field_is(m->d, &f, "Content-Type") && !seen_ct) {
			seen_ct = mime = 1;
			parse_ctype(m, ci, arena_unfold(m, f.vstart, f.vend));
		} else if (field_is(m->d, &f, "Content-Transfer-Encoding") &&
		    !seen_cte) {
			seen_cte = 1;
			parse_cte(m, ci, arena_unfold(m, f.vstart, f.vend));
		} else if (field_is(m->d, &f, "Content-Disposition") &&
		    !seen_dsp) {
			seen_dsp = 1;
			parse_disp(m, ci, arena_unfold(m, f.vstart, f.vend));
		} else if (field_is(m->d, &f, "Content-Language") &&
		    !seen_lang) {
			seen_lang = 1;
			parse_lang(m, ci, arena_unfold(m, f.vstart, f.vend));
		} else if ((field_is(m->d, &f, "Content-ID") && !ci->id) ||
		    (field_is(m->d, &f, "Content-Description") && !ci->desc) ||
		    (field_is(m->d, &f, "Content-MD5") && !ci->md5) ||
		    (field_is(m->d, &f, "Content-Location") && !ci->loc))
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

static const char *
param_get(const struct mparam *p, size_t n, const char *name)
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
		b = param_get(ci->params, ci->nparams, "boundary");
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
	if ((rc = unfold(tmp, m->d, f->vstart, f->vend)) < 0 ||
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
	if ((rc = unfold(tmp, m->d, f->vstart, f->vend)) < 0)
		return rc;
	return imap_fmt_string(b, tmp->len ? (char *)tmp->data : "",
	    tmp->len, utf8);
}

/* The ENVELOPE of the header [hs, he). */
static int
write_envelope(struct buf *out, const struct imap_msg *m, size_t hs,
    size_t he, int utf8)
{
	struct hfield	 f, fld[E_N];
	struct hfield	*have[E_N] = { NULL };
	struct buf	 tmp, from, one;
	size_t		 pos = hs, i, n, nfrom;
	int		 rc;

	while (hdr_next(m->d, he, &pos, &f))
		for (i = 0; i < E_N; i++)
			if (have[i] == NULL && field_is(m->d, &f, env_names[i])) {
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
	return write_envelope(out, m, m->parts[0].hstart, m->parts[0].hend,
	    utf8);
}

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

	if (charset && param_get(p, n, "charset") != NULL)
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
		    (rc = write_envelope(b, m, m->parts[p->child].hstart,
		    m->parts[p->child].hend, utf8)) < 0 ||
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
		if (field_is(d, f, names[i]))
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

	while (hdr_next(m->d, p->hend, &pos, &f)) {
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

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

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
		if ((v = b64_value(s[i])) < 0)
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
static int
decode_body(struct buf *out, const struct imap_msg *m, const struct mpart *p)
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
	return decode_body(out, m, &m->parts[pi]);
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

	lex_cfws(&x);
	if (date_word(&x, w, sizeof(w)) > 0) {
		lex_cfws(&x);
		(void)lex_is(&x, ',');
		lex_cfws(&x);
	}
	if (!date_num(&x, 1, 2, &day))
		return -1;
	lex_cfws(&x);
	if (date_word(&x, w, sizeof(w)) < 3)
		return -1;
	w[3] = '\0';
	for (p = mons; *p != '\0' && strncasecmp(p, w, 3) != 0; p += 3)
		;
	if (*p == '\0')
		return -1;
	mon = (int)(p - mons) / 3 + 1;
	lex_cfws(&x);
	if (!date_num(&x, 2, 4, &year))
		return -1;
	if (year < 50)
		year += 2000;
	else if (year < 1000)
		year += 1900;		/* 2 and 3 digits: RFC 5322 4.3 */
	lex_cfws(&x);
	if (!date_num(&x, 1, 2, &hh) || (lex_cfws(&x), !lex_is(&x, ':')) ||
	    (lex_cfws(&x), !date_num(&x, 1, 2, &mm)))
		return -1;
	lex_cfws(&x);
	if (lex_is(&x, ':')) {
		lex_cfws(&x);
		if (!date_num(&x, 1, 2, &ss))
			return -1;
		lex_cfws(&x);
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

	while (hdr_next(m->d, m->parts[0].hend, &pos, &f))
		if (field_is(m->d, &f, "Date"))
			break;
	if (pos > m->parts[0].hend || !field_is(m->d, &f, "Date"))
		return ERR_NOTFOUND;
	buf_init(&v, SCRATCH_MAX);
	if (unfold(&v, m->d, f.vstart, f.vend) == 0 && v.len > 0 &&
	    parse_date((const char *)v.data, v.len, t, tzoff) == 0)
		rc = 0;
	buf_free(&v);
	return rc;
}

/* ------------------------------------------------------------ SEARCH */

/* Simple case folding of 2-byte UTF-8 code points (same length). */
static uint32_t
fold_cp(uint32_t cp)
{
	if (cp >= 0xc0 && cp <= 0xde && cp != 0xd7)
		return cp + 0x20;		/* Latin-1 */
	if ((cp >= 0x100 && cp <= 0x12f) || (cp >= 0x132 && cp <= 0x137) ||
	    (cp >= 0x14a && cp <= 0x177))
		return cp | 1;			/* Latin Extended-A pairs */
	if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17e))
		return (cp & 1) ? cp + 1 : cp;
	if (cp == 0x178)
		return 0xff;
	if (cp >= 0x391 && cp <= 0x3ab && cp != 0x3a2)
		return cp + 0x20;		/* Greek */
	if (cp >= 0x410 && cp <= 0x42f)
		return cp + 0x20;		/* Cyrillic */
	if (cp >= 0x400 && cp <= 0x40f)
		return cp + 0x50;
	return cp;
}

static void
fold(unsigned char *s, size_t n)
{
	uint32_t	cp, lc;
	size_t		i;

	for (i = 0; i < n; i++) {
		if (s[i] >= 'A' && s[i] <= 'Z') {
			s[i] += 'a' - 'A';
			continue;
		}
		if (s[i] < 0xc2 || s[i] > 0xdf || i + 1 >= n ||
		    (s[i + 1] & 0xc0) != 0x80)
			continue;
		cp = (uint32_t)(s[i] & 0x1f) << 6 | (s[i + 1] & 0x3f);
		if ((lc = fold_cp(cp)) != cp) {
			s[i] = (unsigned char)(0xc0 | lc >> 6);
			s[i + 1] = (unsigned char)(0x80 | (lc & 0x3f));
		}
		i++;
	}
}

/* Fold b in place and look for the (folded) needle. */
static int
found_in(struct buf *b, const struct buf *needle)
{
	if (b->len < needle->len)
		return 0;
	fold(b->data, b->len);
	return memmem(b->data, b->len, needle->data, needle->len) != NULL;
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
	if ((rc = unfold(&raw, m->d, f->vstart, f->vend)) < 0 || raw.len == 0)
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

	while (hdr_next(m->d, p->hend, &pos, &f)) {
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
	if (decode_body(tmp, m, p) < 0) {
		buf_reset(tmp);
		if (buf_append(tmp, m->d + p->bstart, p->bend - p->bstart) < 0)
			return 0;
	}
	cs = param_get(p->ci.params, p->ci.nparams, "charset");
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
	(void)buf_append(b, needle, len);
	fold(b->data, b->len);
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
	while (!hit && hdr_next(m->d, m->parts[0].hend, &pos, &f)) {
		if (field != NULL && !field_is(m->d, &f, field))
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
