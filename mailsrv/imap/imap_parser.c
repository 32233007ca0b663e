/*
 * imap_parser.c -- the resumable IMAP command parser (contract in
 * imap_parser.h).
 *
 * Runs in: the mailsrv process (pre-auth and post-auth IMAP sessions),
 * event loop thread; no I/O, no globals.
 * Failure policy: syntax errors and limits are returned to the caller
 * with a constant message and whether the tag was read; the parser then
 * discards the rest of the command and goes on with the next one.  Out
 * of memory is fatal (xmalloc).
 * SECURITY: every byte is checked as it arrives and every limit before
 * the bytes are stored; literal sizes are checked before any payload
 * byte is read; nesting is a parent index, never recursion; after an
 * error the rest of the command is discarded following the literal
 * framing, so the payload of a refused {n+} is never parsed as
 * commands (no command injection through literals).
 *
 * Design.  feed() hands each byte of command text to count_byte() (line
 * and command limits, and the literal-marker tracker "tail" that the
 * discarding states use) and then to the step function of the current
 * state; literal payloads are copied in bulk.  Tokens become nodes in
 * one flat array, each linked to its parent list or section; at the
 * final CRLF finish() lays them out breadth-first into struct imap_arg
 * so that the children of every list are contiguous.  All strings live
 * in one arena (struct buf) per command, NUL-terminated; arenas and
 * node arrays over a threshold are freed between commands.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/xmalloc.h"
#include "mailsrv/imap/imap_parser.h"

#define NONE		SIZE_MAX
#define ARENA_KEEP	(64 * 1024)	/* bigger arenas freed after use */
#define NODES_KEEP	4096		/* likewise for node arrays */
#define TOKENS_LIMIT	(10 * 1000 * 1000)	/* tokens_max clamp */

enum {
	PS_START = 0,	/* no byte of the next command yet */
	PS_TAG,
	PS_NAME,
	PS_ARGS,	/* between tokens */
	PS_ATOM,
	PS_TILDE,	/* "~" at a token start: literal8 or atom */
	PS_QUOTED,
	PS_QESC,	/* after "\" in a quoted string */
	PS_LIT_NUM,	/* after "{": the size */
	PS_LIT_PLUS,	/* after "+" or "-" */
	PS_LIT_CLOSE,	/* after "}": want CR */
	PS_LIT_CR,	/* want LF */
	PS_LIT_WAIT,	/* IMAP_PARSE_CONTINUE was returned */
	PS_LIT_DATA,	/* reading the payload */
	PS_SEC_END,	/* after the "]" of a section */
	PS_PART_OFF,	/* "<" digits */
	PS_PART_LEN,	/* "." digits ">" */
	PS_CR,		/* CR at the end of the command: want LF */
	PS_DONE,	/* a command was returned */
	PS_SKIP,	/* discarding the rest of a bad command */
	PS_SKIP_LIT,	/* discarding the payload of a refused {n+} */
	PS_RAW,
	PS_RAW_CR,
	PS_RAW_SKIP,	/* discarding the rest of a bad raw line */
	PS_FATAL,
};

/* What a step did with its byte. */
enum {
	S_NEXT = 0,	/* consumed */
	S_REDO,		/* not consumed: dispatch it again in the new state */
	S_DONE,		/* consumed; the command is complete */
	S_CONT,		/* consumed; a literal was announced */
	S_ERR,		/* consumed; p->err is set */
};

/* The literal-marker tracker: "{" 1*DIGIT ["+" / "-"] "}" CR LF. */
enum { T_NONE = 0, T_OPEN, T_NUM, T_PLUS, T_CLOSE, T_CR };
enum { TAIL_NONE = 0, TAIL_SYNC, TAIL_NONSYNC };

struct imap_node {
	enum imap_arg_type	 type;
	size_t			 off;	/* text in the arena */
	size_t			 len;
	uint64_t		 num;
	int			 partial;
	uint64_t		 part_off;
	uint64_t		 part_len;
	size_t			 parent;	/* NONE at the top level */
	size_t			 first;		/* children, NONE-linked */
	size_t			 last;
	size_t			 next;		/* next sibling */
	size_t			 nchild;
};

struct imap_parser {
	struct imap_parser_limits lim;	/* of the current command */
	struct imap_parser_limits next_lim;
	unsigned		 flags, next_flags;
	int			 raw, next_raw;
	int			 state;

	struct buf		 arena;
	struct imap_node	*nodes;
	size_t			 nnodes, nodecap;
	struct imap_arg		*args;		/* finish() output */
	size_t			*order;		/* node of each args[] */
	size_t			 argcap;
	size_t			 root_first, root_last, nroot;
	size_t			 cur;		/* open list or section */
	size_t			 depth;
	size_t			 tok;		/* node being read */
	int			 need_sep;	/* a token just ended */

	size_t			 tag_off, tag_len;
	size_t			 name_off, name_len;
	int			 has_tag;
	size_t			 line_len;	/* text bytes so far */
	uint64_t		 lit_total;	/* literal bytes announced */

	uint64_t		 lit_n;		/* literal header */
	int			 lit_digits, lit_ovf, lit_sync, lit_bin;
	uint64_t		 lit_left;	/* payload still to read */

	int			 u8_need;	/* UTF-8 in quoted strings */
	int			 u8_lo, u8_hi;
	uint64_t		 pnum;		/* <partial> */
	int			 pdigits;

	int			 tail;		/* literal-marker tracker */
	uint64_t		 tail_n;
	int			 tail_ovf, tail_sync;
	uint64_t		 skip_left;

	struct imap_cmd		 cmd;
	struct imap_parse_error	 err;
};

static const char *const section_names[] = {
	"BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE",
};

/* ---------------------------------------------------------------- setup */

void
imap_parser_limits_default(struct imap_parser_limits *l, int authenticated)
{
	if (authenticated) {
		l->line_max = IMAP_PARSER_LINE_MAX;
		l->literal_max = IMAP_PARSER_LITERAL_MAX;
		l->depth_max = IMAP_PARSER_DEPTH_MAX;
		l->tokens_max = IMAP_PARSER_TOKENS_MAX;
		l->command_max = IMAP_PARSER_LITERAL_MAX + IMAP_PARSER_LINE_MAX;
	} else {
		l->line_max = IMAP_PARSER_PREAUTH_LINE_MAX;
		l->literal_max = IMAP_PARSER_PREAUTH_LITERAL_MAX;
		l->depth_max = IMAP_PARSER_PREAUTH_DEPTH_MAX;
		l->tokens_max = IMAP_PARSER_PREAUTH_TOKENS_MAX;
		/* LOGIN with user and password both as literals */
		l->command_max = IMAP_PARSER_PREAUTH_LINE_MAX +
		    2 * IMAP_PARSER_PREAUTH_LITERAL_MAX;
	}
}

void
imap_parser_set_limits(struct imap_parser *p,
    const struct imap_parser_limits *l)
{
	struct imap_parser_limits	n = *l;

	if (n.line_max < 8)
		n.line_max = 8;
	if (n.line_max > SIZE_MAX / 4)
		n.line_max = SIZE_MAX / 4;
	if (n.literal_max > SIZE_MAX / 4)
		n.literal_max = SIZE_MAX / 4;
	if (n.command_max > SIZE_MAX / 4)
		n.command_max = SIZE_MAX / 4;
	if (n.depth_max < 1)
		n.depth_max = 1;
	if (n.depth_max > IMAP_PARSER_DEPTH_LIMIT)
		n.depth_max = IMAP_PARSER_DEPTH_LIMIT;
	if (n.tokens_max < 1)
		n.tokens_max = 1;
	if (n.tokens_max > TOKENS_LIMIT)
		n.tokens_max = TOKENS_LIMIT;
	p->next_lim = n;
}

void
imap_parser_set_flags(struct imap_parser *p, unsigned flags)
{
	p->next_flags = flags;
}

void
imap_parser_set_raw(struct imap_parser *p, int on)
{
	p->next_raw = on != 0;
}

struct imap_parser *
imap_parser_new(const struct imap_parser_limits *l, unsigned flags)
{
	struct imap_parser		*p;
	struct imap_parser_limits	 def;

	p = xcalloc(1, sizeof(*p));
	if (l == NULL) {
		imap_parser_limits_default(&def, 0);
		l = &def;
	}
	imap_parser_set_limits(p, l);
	p->lim = p->next_lim;
	p->next_flags = p->flags = flags;
	buf_init(&p->arena, 0);
	p->state = PS_START;
	return p;
}

void
imap_parser_free(struct imap_parser **pp)
{
	struct imap_parser	*p;

	if (pp == NULL || (p = *pp) == NULL)
		return;
	buf_free(&p->arena);
	free(p->nodes);
	free(p->args);
	free(p->order);
	free(p);
	*pp = NULL;
}

/* Forget the previous command; apply the caller's pending settings. */
static void
begin(struct imap_parser *p)
{
	uint64_t	max;

	p->lim = p->next_lim;
	p->flags = p->next_flags;
	p->raw = p->next_raw;
	if (p->arena.cap > ARENA_KEEP)
		buf_free(&p->arena);
	buf_reset(&p->arena);
	/* every stored byte comes from a distinct input byte, plus NULs */
	max = p->lim.command_max + p->lim.tokens_max + 16;
	p->arena.max = (size_t)max;
	if (p->nodecap > NODES_KEEP) {
		FREE_AND_NULL(p->nodes);
		p->nodecap = 0;
	}
	if (p->argcap > NODES_KEEP) {
		FREE_AND_NULL(p->args);
		FREE_AND_NULL(p->order);
		p->argcap = 0;
	}
	p->nnodes = p->nroot = 0;
	p->root_first = p->root_last = p->cur = NONE;
	p->depth = 0;
	p->need_sep = 0;
	p->tag_off = p->tag_len = p->name_off = p->name_len = 0;
	p->has_tag = 0;
	p->line_len = 0;
	p->lit_total = 0;
	p->tail = T_NONE;
	memset(&p->cmd, 0, sizeof(p->cmd));
	memset(&p->err, 0, sizeof(p->err));
	p->state = p->raw ? PS_RAW : PS_TAG;
}

/* ---------------------------------------------------------------- errors */

/*
 * Record an error found at byte c (consumed).  An LF ends the command
 * there; any other byte starts the discarding of its rest.
 */
static int
fail(struct imap_parser *p, int code, const char *msg, int c)
{
	p->err.code = code;
	p->err.fatal = 0;
	p->err.has_tag = p->has_tag;
	p->err.tag[0] = '\0';
	if (p->has_tag)
		memcpy(p->err.tag, p->arena.data + p->tag_off,
		    p->tag_len + 1);
	p->err.resp_code = code == ERR_TOOBIG ? "TOOBIG" : NULL;
	p->err.msg = msg;
	if (c == '\n')
		p->state = PS_START;
	else
		p->state = p->raw ? PS_RAW_SKIP : PS_SKIP;
	return S_ERR;
}

/* The stream cannot be resynchronised; every later feed says so. */
static int
fatal(struct imap_parser *p, const char *msg)
{
	(void)fail(p, ERR_PROTO, msg, 0);
	p->err.fatal = 1;
	p->state = PS_FATAL;
	return S_ERR;
}

/* ---------------------------------------------------------------- store */

static int
put(struct imap_parser *p, const void *data, size_t n, int c)
{
	if (buf_append(&p->arena, data, n) < 0)
		return fail(p, ERR_TOOBIG, "command too large", c);
	return S_NEXT;
}

static int
putc1(struct imap_parser *p, int c)
{
	unsigned char	ch = (unsigned char)c;

	return put(p, &ch, 1, c);
}

/* End the text of node id at the arena's end: length, then a NUL. */
static int
end_text(struct imap_parser *p, size_t id, int c)
{
	p->nodes[id].len = p->arena.len - p->nodes[id].off;
	return putc1(p, '\0') == S_NEXT ? S_NEXT : S_ERR;
}

/* A new node, linked as the last child of the open list or section. */
static size_t
node_new(struct imap_parser *p, enum imap_arg_type type, int c)
{
	struct imap_node	*n, *parent;
	size_t			 id, ncap;

	if (p->nnodes >= p->lim.tokens_max) {
		(void)fail(p, ERR_TOOBIG, "too many arguments", c);
		return NONE;
	}
	if (p->nnodes == p->nodecap) {
		ncap = p->nodecap ? p->nodecap * 2 : 64;
		if (ncap > p->lim.tokens_max)
			ncap = p->lim.tokens_max;
		p->nodes = xreallocarray(p->nodes, ncap, sizeof(*p->nodes));
		p->nodecap = ncap;
	}
	id = p->nnodes++;
	n = &p->nodes[id];
	memset(n, 0, sizeof(*n));
	n->type = type;
	n->off = p->arena.len;
	n->parent = p->cur;
	n->first = n->last = n->next = NONE;
	if (p->cur == NONE) {
		if (p->root_last == NONE)
			p->root_first = id;
		else
			p->nodes[p->root_last].next = id;
		p->root_last = id;
		p->nroot++;
	} else {
		parent = &p->nodes[p->cur];
		if (parent->last == NONE)
			parent->first = id;
		else
			p->nodes[parent->last].next = id;
		parent->last = id;
		parent->nchild++;
	}
	p->tok = id;
	return id;
}

/* ------------------------------------------------------------ characters */

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* tag = 1*<any ASTRING-CHAR except "+"> */
static int
tag_char(int c)
{
	return c != '+' && imap_astring_char(c);
}

/* What may follow the first byte of an atom token. */
static int
atom_cont(int c)
{
	return imap_atom_char(c) || c == ']' || c == '%' || c == '*';
}

static int
in_section(const struct imap_parser *p)
{
	return p->cur != NONE && p->nodes[p->cur].type == IMAP_ARG_SECTION;
}

/* n * 10 + d, or -1 past UINT64_MAX. */
static int
add_digit(uint64_t *n, int c)
{
	unsigned	d = (unsigned)(c - '0');

	if (*n > (UINT64_MAX - d) / 10)
		return -1;
	*n = *n * 10 + d;
	return 0;
}

/*
 * The tracker sees every byte of command text (never payloads) and
 * returns TAIL_SYNC / TAIL_NONSYNC at an LF that ends "{n}\r" or
 * "{n+}\r", with the size in tail_n (tail_ovf if it did not fit).
 */
static int
tail_step(struct imap_parser *p, int c)
{
	switch (p->tail) {
	case T_CR:
		p->tail = T_NONE;
		if (c == '\n')
			return p->tail_sync ? TAIL_SYNC : TAIL_NONSYNC;
		break;
	case T_CLOSE:
		if (c == '\r') {
			p->tail = T_CR;
			return TAIL_NONE;
		}
		break;
	case T_OPEN:
	case T_NUM:
		if (is_digit(c)) {
			if (add_digit(&p->tail_n, c) < 0)
				p->tail_ovf = 1;
			p->tail = T_NUM;
			return TAIL_NONE;
		}
		if (p->tail == T_NUM && (c == '+' || c == '-')) {
			p->tail = T_PLUS;
			return TAIL_NONE;
		}
		if (p->tail == T_NUM && c == '}') {
			p->tail = T_CLOSE;
			p->tail_sync = 1;
			return TAIL_NONE;
		}
		break;
	case T_PLUS:
		if (c == '}') {
			p->tail = T_CLOSE;
			p->tail_sync = 0;
			return TAIL_NONE;
		}
		break;
	}
	p->tail = T_NONE;
	if (c == '{') {
		p->tail = T_OPEN;
		p->tail_n = 0;
		p->tail_ovf = 0;
	}
	return TAIL_NONE;
}

/* ---------------------------------------------------------------- tokens */

static int
step_tag(struct imap_parser *p, int c)
{
	if (c == ' ' || c == '\r') {
		if (p->tag_len == 0)
			return fail(p, ERR_PROTO, c == ' ' ? "missing tag" :
			    "empty command line", c);
		if (putc1(p, '\0') != S_NEXT)
			return S_ERR;
		p->has_tag = 1;
		p->name_off = p->arena.len;
		p->state = PS_NAME;
		return c == ' ' ? S_NEXT : S_REDO;
	}
	if (!tag_char(c))
		return fail(p, ERR_PROTO, "invalid character in tag", c);
	if (p->tag_len >= IMAP_TAG_MAX)
		return fail(p, ERR_PROTO, "tag too long", c);
	p->tag_len++;
	return putc1(p, c);
}

static int
step_name(struct imap_parser *p, int c)
{
	if (c == ' ' || c == '\r') {
		if (p->name_len == 0) {
			if (c == ' ')
				return S_NEXT;
			return fail(p, ERR_PROTO, "missing command name", c);
		}
		if (putc1(p, '\0') != S_NEXT)
			return S_ERR;
		p->state = PS_ARGS;
		p->need_sep = 0;
		return c == ' ' ? S_NEXT : S_REDO;
	}
	if (!imap_atom_char(c))
		return fail(p, ERR_PROTO, "invalid character in command name",
		    c);
	p->name_len++;
	if (c >= 'a' && c <= 'z')
		c -= 'a' - 'A';
	return putc1(p, c);
}

static int
open_list(struct imap_parser *p, int c)
{
	size_t	id;

	if (p->depth >= p->lim.depth_max)
		return fail(p, ERR_TOOBIG, "parentheses nested too deeply", c);
	if ((id = node_new(p, IMAP_ARG_LIST, c)) == NONE)
		return S_ERR;
	p->cur = id;
	p->depth++;
	p->need_sep = 0;
	return S_NEXT;
}

/* ")" or the "]" of a section. */
static void
close_group(struct imap_parser *p)
{
	p->tok = p->cur;
	p->cur = p->nodes[p->cur].parent;
	p->depth--;
	p->need_sep = 1;
}

/* Start a token whose first byte is c. */
static int
start_token(struct imap_parser *p, int c)
{
	if (p->need_sep)
		return fail(p, ERR_PROTO, "missing space between arguments",
		    c);
	switch (c) {
	case '(':
		return open_list(p, c);
	case '"':
		if (node_new(p, IMAP_ARG_QUOTED, c) == NONE)
			return S_ERR;
		p->u8_need = 0;
		p->state = PS_QUOTED;
		return S_NEXT;
	case '~':
		p->state = PS_TILDE;
		return S_NEXT;
	case '{':
		p->lit_bin = 0;
		p->lit_n = 0;
		p->lit_digits = p->lit_ovf = 0;
		p->state = PS_LIT_NUM;
		return S_NEXT;
	}
	if (c != '\\' && !atom_cont(c))
		return fail(p, ERR_PROTO, c >= 0x80 ?
		    "8-bit character outside a string" :
		    "invalid character", c);
	if (node_new(p, IMAP_ARG_ATOM, c) == NONE)
		return S_ERR;
	p->state = PS_ATOM;
	return putc1(p, c);
}

static int
step_args(struct imap_parser *p, int c)
{
	switch (c) {
	case ' ':
		p->need_sep = 0;
		return S_NEXT;
	case '\r':
		if (p->cur != NONE)
			return fail(p, ERR_PROTO, in_section(p) ?
			    "missing ']'" : "missing ')'", c);
		p->state = PS_CR;
		return S_NEXT;
	case ')':
		if (p->cur == NONE || in_section(p))
			return fail(p, ERR_PROTO, "unexpected ')'", c);
		close_group(p);
		return S_NEXT;
	case ']':
		if (!in_section(p))
			break;
		close_group(p);
		p->state = PS_SEC_END;
		return S_NEXT;
	}
	return start_token(p, c);
}

/* An atom ended: NUMBER, NIL or ATOM. */
static int
end_atom(struct imap_parser *p, int c)
{
	struct imap_node	*n = &p->nodes[p->tok];
	const char		*s = (const char *)p->arena.data + n->off;
	size_t			 len = p->arena.len - n->off, i;
	uint64_t		 v = 0;

	for (i = 0; i < len && is_digit(s[i]); i++)
		if (add_digit(&v, s[i]) < 0)
			break;
	if (i == len) {
		/* an overflowing number stays an ATOM (it is an astring) */
		n->type = IMAP_ARG_NUMBER;
		n->num = v;
	} else if (len == 3 && strncasecmp(s, "NIL", 3) == 0)
		n->type = IMAP_ARG_NIL;
	if (end_text(p, p->tok, c) != S_NEXT)
		return S_ERR;
	p->need_sep = 1;
	p->state = PS_ARGS;
	return S_REDO;
}

/* "[" after an atom: a section if the atom names a FETCH item. */
static int
section_prefix(const struct imap_parser *p)
{
	const struct imap_node	*n = &p->nodes[p->tok];
	const char		*s = (const char *)p->arena.data + n->off;
	size_t			 len = p->arena.len - n->off, i;

	if (in_section(p))
		return 0;
	for (i = 0; i < sizeof(section_names) / sizeof(section_names[0]);
	    i++)
		if (strlen(section_names[i]) == len &&
		    strncasecmp(s, section_names[i], len) == 0)
			return 1;
	return 0;
}

static int
open_section(struct imap_parser *p, int c)
{
	if (p->depth >= p->lim.depth_max)
		return fail(p, ERR_TOOBIG, "parentheses nested too deeply", c);
	if (end_text(p, p->tok, c) != S_NEXT)
		return S_ERR;
	p->nodes[p->tok].type = IMAP_ARG_SECTION;
	p->cur = p->tok;
	p->depth++;
	p->need_sep = 0;
	p->state = PS_ARGS;
	return S_NEXT;
}

static int
step_atom(struct imap_parser *p, int c)
{
	if (atom_cont(c) && !(c == ']' && in_section(p))) {
		if (c == '[' && section_prefix(p))
			return open_section(p, c);
		return putc1(p, c);
	}
	if (c == ' ' || c == '\r' || c == ')' || c == ']')
		return end_atom(p, c);
	return fail(p, ERR_PROTO, c >= 0x80 ? "8-bit character in atom" :
	    "invalid character in atom", c);
}

/* A byte of a UTF-8 sequence in a quoted string (RFC 3629 table). */
static int
quoted_utf8(struct imap_parser *p, int c)
{
	if (!(p->flags & IMAP_PARSER_UTF8))
		return fail(p, ERR_PROTO, "8-bit character in quoted string",
		    c);
	if (p->u8_need > 0) {
		if (c < p->u8_lo || c > p->u8_hi)
			return fail(p, ERR_PROTO, "invalid UTF-8", c);
		p->u8_need--;
		p->u8_lo = 0x80;
		p->u8_hi = 0xbf;
		return putc1(p, c);
	}
	p->u8_lo = 0x80;
	p->u8_hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf)
		p->u8_need = 1;
	else if (c >= 0xe0 && c <= 0xef) {
		p->u8_need = 2;
		if (c == 0xe0)
			p->u8_lo = 0xa0;	/* overlong */
		else if (c == 0xed)
			p->u8_hi = 0x9f;	/* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		p->u8_need = 3;
		if (c == 0xf0)
			p->u8_lo = 0x90;	/* overlong */
		else if (c == 0xf4)
			p->u8_hi = 0x8f;	/* > U+10FFFF */
	} else
		return fail(p, ERR_PROTO, "invalid UTF-8", c);
	return putc1(p, c);
}

static int
step_quoted(struct imap_parser *p, int c)
{
	if (p->state == PS_QESC) {
		if (c != '"' && c != '\\')
			return fail(p, ERR_PROTO,
			    "invalid escape in quoted string", c);
		p->state = PS_QUOTED;
		return putc1(p, c);
	}
	if (c >= 0x80 || p->u8_need > 0)
		return quoted_utf8(p, c);
	switch (c) {
	case '"':
		if (end_text(p, p->tok, c) != S_NEXT)
			return S_ERR;
		p->need_sep = 1;
		p->state = PS_ARGS;
		return S_NEXT;
	case '\\':
		p->state = PS_QESC;
		return S_NEXT;
	case '\r':
		return fail(p, ERR_PROTO, "CR in quoted string", c);
	}
	return putc1(p, c);
}

/*
 * The CRLF after a literal header: check the limits, then announce the
 * literal.  A refused {n} ends the command (the client sends no
 * payload); a refused {n+} payload is discarded, then the rest.
 */
static int
lit_accept(struct imap_parser *p)
{
	const char	*why = NULL;
	uint64_t	 used = p->line_len + p->lit_total;

	if (p->lit_ovf) {
		if (!p->lit_sync)
			return fatal(p, "literal size too large");
		why = "literal too large";
	} else if (p->lit_n > p->lim.literal_max)
		why = "literal too large";
	else if (!p->lit_sync && !(p->flags & IMAP_PARSER_LITERAL_PLUS) &&
	    p->lit_n > IMAP_LITERAL_MINUS_MAX)
		why = "non-synchronizing literal too large (LITERAL-)";
	else if (used > p->lim.command_max ||
	    p->lit_n > p->lim.command_max - used)
		why = "command too large";
	else if (p->nnodes >= p->lim.tokens_max)
		why = "too many arguments";
	if (why != NULL) {
		(void)fail(p, ERR_TOOBIG, why, '\n');
		if (!p->lit_sync) {
			p->skip_left = p->lit_n;
			p->state = PS_SKIP_LIT;
		}
		return S_ERR;
	}
	(void)node_new(p, p->lit_bin ? IMAP_ARG_LITERAL8 : IMAP_ARG_LITERAL,
	    '\n');
	p->lit_left = p->lit_n;
	p->lit_total += p->lit_n;
	p->state = PS_LIT_WAIT;
	return S_CONT;
}

static int
step_literal(struct imap_parser *p, int c)
{
	switch (p->state) {
	case PS_TILDE:
		if (c == '{') {
			p->lit_bin = 1;
			p->lit_n = 0;
			p->lit_digits = p->lit_ovf = 0;
			p->state = PS_LIT_NUM;
			return S_NEXT;
		}
		if (node_new(p, IMAP_ARG_ATOM, c) == NONE)
			return S_ERR;
		p->state = PS_ATOM;
		return putc1(p, '~') == S_NEXT ? S_REDO : S_ERR;
	case PS_LIT_NUM:
		if (is_digit(c)) {
			if (add_digit(&p->lit_n, c) < 0)
				p->lit_ovf = 1;
			p->lit_digits++;
			return S_NEXT;
		}
		if (p->lit_digits > 0 && (c == '+' || c == '-' || c == '}')) {
			p->lit_sync = c == '}';
			p->state = c == '}' ? PS_LIT_CLOSE : PS_LIT_PLUS;
			return S_NEXT;
		}
		return fail(p, ERR_PROTO, "invalid literal", c);
	case PS_LIT_PLUS:
		if (c != '}')
			return fail(p, ERR_PROTO, "invalid literal", c);
		p->state = PS_LIT_CLOSE;
		return S_NEXT;
	case PS_LIT_CLOSE:
		if (c != '\r')
			return fail(p, ERR_PROTO, "literal must end the line",
			    c);
		p->state = PS_LIT_CR;
		return S_NEXT;
	default:	/* PS_LIT_CR */
		if (c != '\n')
			return fail(p, ERR_PROTO, "bare CR", c);
		return lit_accept(p);
	}
}

/* After the "]" of a section: <offset.length> (length >= 1), or end. */
static int
step_partial(struct imap_parser *p, int c)
{
	struct imap_node	*n = &p->nodes[p->tok];

	if (p->state == PS_SEC_END) {
		if (c != '<') {
			p->state = PS_ARGS;
			return S_REDO;
		}
		p->pnum = 0;
		p->pdigits = 0;
		p->state = PS_PART_OFF;
		return S_NEXT;
	}
	if (is_digit(c)) {
		if (add_digit(&p->pnum, c) < 0)
			return fail(p, ERR_PROTO, "partial too large", c);
		p->pdigits++;
		return S_NEXT;
	}
	if (p->state == PS_PART_OFF && c == '.' && p->pdigits > 0) {
		n->part_off = p->pnum;
		p->pnum = 0;
		p->pdigits = 0;
		p->state = PS_PART_LEN;
		return S_NEXT;
	}
	if (p->state == PS_PART_LEN && c == '>' && p->pdigits > 0 &&
	    p->pnum > 0) {
		n->part_len = p->pnum;
		n->partial = 1;
		p->state = PS_ARGS;
		return S_NEXT;
	}
	return fail(p, ERR_PROTO, "invalid partial", c);
}

/* ---------------------------------------------------------------- finish */

/* Lay the nodes out breadth-first: every list's children contiguous. */
static void
finish(struct imap_parser *p)
{
	struct imap_node	*n;
	struct imap_arg		*a;
	size_t			 k, x, placed = 0;

	if (p->nnodes > p->argcap) {
		p->args = xreallocarray(p->args, p->nnodes, sizeof(*p->args));
		p->order = xreallocarray(p->order, p->nnodes,
		    sizeof(*p->order));
		p->argcap = p->nnodes;
	}
	for (x = p->root_first; x != NONE; x = p->nodes[x].next) {
		p->order[placed] = x;
		p->args[placed++].parent = NULL;
	}
	for (k = 0; k < placed; k++) {
		n = &p->nodes[p->order[k]];
		a = &p->args[k];
		a->type = n->type;
		a->str = n->type == IMAP_ARG_LIST ? "" :
		    (const char *)p->arena.data + n->off;
		a->len = n->len;
		a->num = n->num;
		a->partial = n->partial;
		a->part_off = n->part_off;
		a->part_len = n->part_len;
		a->nlist = n->nchild;
		a->list = n->nchild > 0 ? &p->args[placed] : NULL;
		for (x = n->first; x != NONE; x = p->nodes[x].next) {
			p->order[placed] = x;
			p->args[placed++].parent = a;
		}
	}
	memset(&p->cmd, 0, sizeof(p->cmd));
	p->cmd.tag = (const char *)p->arena.data + p->tag_off;
	p->cmd.name = (const char *)p->arena.data + p->name_off;
	p->cmd.args = p->nroot > 0 ? p->args : NULL;
	p->cmd.nargs = p->nroot;
}

static int
step_raw(struct imap_parser *p, int c)
{
	if (p->state == PS_RAW_CR) {
		if (c != '\n')
			return fail(p, ERR_PROTO, "bare CR", c);
		if (putc1(p, '\0') != S_NEXT)
			return S_ERR;
		memset(&p->cmd, 0, sizeof(p->cmd));
		p->cmd.line = (const char *)p->arena.data;
		p->cmd.linelen = p->arena.len - 1;
		return S_DONE;
	}
	if (c == '\r') {
		p->state = PS_RAW_CR;
		return S_NEXT;
	}
	if ((c < 0x20 && c != '\t') || c >= 0x7f)
		return fail(p, ERR_PROTO, "invalid character in line", c);
	return putc1(p, c);
}

/* ---------------------------------------------------------------- feed */

static int
step(struct imap_parser *p, int c)
{
	switch (p->state) {
	case PS_TAG:
		return step_tag(p, c);
	case PS_NAME:
		return step_name(p, c);
	case PS_ARGS:
		return step_args(p, c);
	case PS_ATOM:
		return step_atom(p, c);
	case PS_QUOTED:
	case PS_QESC:
		return step_quoted(p, c);
	case PS_TILDE:
	case PS_LIT_NUM:
	case PS_LIT_PLUS:
	case PS_LIT_CLOSE:
	case PS_LIT_CR:
		return step_literal(p, c);
	case PS_SEC_END:
	case PS_PART_OFF:
	case PS_PART_LEN:
		return step_partial(p, c);
	case PS_CR:
		if (c != '\n')
			return fail(p, ERR_PROTO, "bare CR", c);
		finish(p);
		return S_DONE;
	case PS_RAW:
	case PS_RAW_CR:
		return step_raw(p, c);
	}
	/* unreachable: the other states never see text bytes */
	return fatal(p, "parser state error");
}

/* A byte while discarding: only the line ends and literal markers count. */
static int
skip_byte(struct imap_parser *p, int c)
{
	int	ev = tail_step(p, c);

	if (c != '\n')
		return S_NEXT;
	if (p->state == PS_SKIP && ev == TAIL_NONSYNC) {
		if (p->tail_ovf)
			return fatal(p, "literal size too large");
		p->skip_left = p->tail_n;
		p->state = PS_SKIP_LIT;
		return S_NEXT;
	}
	p->state = PS_START;
	return S_NEXT;
}

/* One byte of command text (not of a literal payload). */
static int
text_byte(struct imap_parser *p, int c)
{
	int	r;

	if (p->state == PS_SKIP || p->state == PS_RAW_SKIP)
		return skip_byte(p, c);
	(void)tail_step(p, c);
	if (p->line_len >= p->lim.line_max)
		return fail(p, ERR_TOOBIG, "command line too long", c);
	if (p->line_len + p->lit_total >= p->lim.command_max)
		return fail(p, ERR_TOOBIG, "command too large", c);
	p->line_len++;
	if (c == '\0')
		return fail(p, ERR_PROTO, "NUL character", c);
	if (c == '\n' && p->state != PS_CR && p->state != PS_LIT_CR &&
	    p->state != PS_RAW_CR)
		return fail(p, ERR_PROTO, "bare LF", c);
	do {
		r = step(p, c);
	} while (r == S_REDO);
	return r;
}

/* Up to avail payload bytes of the literal being read or discarded. */
static int
payload(struct imap_parser *p, const unsigned char *d, size_t avail,
    size_t *n_out)
{
	const unsigned char	*z;
	size_t			 n;

	if (p->state == PS_SKIP_LIT) {
		n = avail < p->skip_left ? avail : (size_t)p->skip_left;
		p->skip_left -= n;
		*n_out = n;
		if (p->skip_left == 0) {
			p->state = PS_SKIP;
			p->tail = T_NONE;
		}
		return S_NEXT;
	}
	n = avail < p->lit_left ? avail : (size_t)p->lit_left;
	*n_out = n;
	if (!p->lit_bin && n > 0 && (z = memchr(d, '\0', n)) != NULL) {
		*n_out = (size_t)(z - d) + 1;
		(void)fail(p, ERR_PROTO, "NUL in literal", 0);
		p->skip_left = p->lit_left - *n_out;
		p->state = PS_SKIP_LIT;
		return S_ERR;
	}
	if (put(p, d, n, 0) != S_NEXT) {
		p->skip_left = p->lit_left - n;
		p->state = PS_SKIP_LIT;
		return S_ERR;
	}
	p->lit_left -= n;
	if (p->lit_left > 0)
		return S_NEXT;
	if (end_text(p, p->tok, 0) != S_NEXT)
		return S_ERR;
	p->need_sep = 1;
	p->tail = T_NONE;
	p->state = PS_ARGS;
	return S_NEXT;
}

int
imap_parser_feed(struct imap_parser *p, const void *data, size_t len,
    size_t *used_out)
{
	const unsigned char	*d = data;
	size_t			 i = 0, n;
	int			 r = S_NEXT;

	*used_out = 0;
	if (p->state == PS_FATAL) {
		err_set(p->err.code, "imap: %s", p->err.msg);
		return p->err.code;
	}
	if (p->state == PS_DONE)
		p->state = PS_START;
	else if (p->state == PS_LIT_WAIT)
		p->state = PS_LIT_DATA;		/* the caller accepted it */
	while (r == S_NEXT) {
		if (p->state == PS_LIT_DATA || p->state == PS_SKIP_LIT) {
			if (i == len && (p->state == PS_LIT_DATA ?
			    p->lit_left : p->skip_left) > 0)
				break;
			r = payload(p, d + i, len - i, &n);
			i += n;
			continue;
		}
		if (i == len)
			break;
		if (p->state == PS_START)
			begin(p);
		r = text_byte(p, d[i++]);
	}
	*used_out = i;
	switch (r) {
	case S_NEXT:
		return ERR_AGAIN;
	case S_DONE:
		p->state = PS_DONE;
		return 0;
	case S_CONT:
		return IMAP_PARSE_CONTINUE;
	}
	err_set(p->err.code, "imap: %s", p->err.msg);
	return p->err.code;
}

/* ---------------------------------------------------------------- access */

const struct imap_cmd *
imap_parser_cmd(const struct imap_parser *p)
{
	return p->state == PS_DONE ? &p->cmd : NULL;
}

int
imap_parser_literal_info(const struct imap_parser *p,
    struct imap_literal_info *out)
{
	if (p->state != PS_LIT_WAIT)
		return ERR_INVAL;
	out->size = p->lit_n;
	out->sync = p->lit_sync;
	out->binary = p->lit_bin;
	out->argc = p->nroot - 1;
	out->depth = p->depth;
	out->tag = (const char *)p->arena.data + p->tag_off;
	out->name = (const char *)p->arena.data + p->name_off;
	return 0;
}

int
imap_parser_literal_reject(struct imap_parser *p)
{
	if (p->state != PS_LIT_WAIT)
		return ERR_INVAL;
	if (p->lit_sync) {
		p->state = PS_START;
	} else {
		p->skip_left = p->lit_n;
		p->state = PS_SKIP_LIT;
	}
	return 0;
}

const struct imap_parse_error *
imap_parser_error(const struct imap_parser *p)
{
	return &p->err;
}

int
imap_parser_idle(const struct imap_parser *p)
{
	return p->state == PS_START || p->state == PS_DONE;
}
