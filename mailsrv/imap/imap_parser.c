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
 * Design.  imap_parser_feed() hands each byte of command text to
 * text_byte() (line and command limits, and the literal-marker tracker
 * "tail" that the discarding states use) and then to imap__step() in
 * imap_lexer.c, the step of the current state; literal payloads are
 * copied in bulk.  Tokens become nodes in one flat array, each linked
 * to its parent list or section; at the final CRLF imap__finish() lays
 * them out breadth-first into struct imap_arg so that the children of
 * every list are contiguous.  All strings live in one arena (struct
 * buf) per command, NUL-terminated; arenas and node arrays over a
 * threshold are freed between commands.  This file holds the setup,
 * the storage, the limits, the discarding and the API; imap_lexer.c
 * the token grammar.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/xmalloc.h"
#include "mailsrv/imap/imap_parser.h"
#include "mailsrv/imap/imap_parser_int.h"

#define ARENA_KEEP	(64 * 1024)	/* bigger arenas freed after use */
#define NODES_KEEP	4096		/* likewise for node arrays */
#define TOKENS_LIMIT	(10 * 1000 * 1000)	/* tokens_max clamp */

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
	buf_free_secret(&p->arena);
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
	/* the last command may have held a password (LOGIN) or a message
	 * (APPEND): wipe it, not only forget it */
	if (p->arena.cap > ARENA_KEEP)
		buf_free_secret(&p->arena);
	else if (p->arena.data != NULL)
		explicit_bzero(p->arena.data, p->arena.len);
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
int
imap__fail(struct imap_parser *p, int code, const char *msg, int c)
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
int
imap__fatal(struct imap_parser *p, const char *msg)
{
	(void)imap__fail(p, ERR_PROTO, msg, 0);
	p->err.fatal = 1;
	p->state = PS_FATAL;
	return S_ERR;
}

/* ---------------------------------------------------------------- store */

int
imap__put(struct imap_parser *p, const void *data, size_t n, int c)
{
	if (buf_append(&p->arena, data, n) < 0)
		return imap__fail(p, ERR_TOOBIG, "command too large", c);
	return S_NEXT;
}

int
imap__putc(struct imap_parser *p, int c)
{
	unsigned char	ch = (unsigned char)c;

	return imap__put(p, &ch, 1, c);
}

/* End the text of node id at the arena's end: length, then a NUL. */
int
imap__end_text(struct imap_parser *p, size_t id, int c)
{
	p->nodes[id].len = p->arena.len - p->nodes[id].off;
	return imap__putc(p, '\0') == S_NEXT ? S_NEXT : S_ERR;
}

/* A new node, linked as the last child of the open list or section. */
size_t
imap__node_new(struct imap_parser *p, enum imap_arg_type type, int c)
{
	struct imap_node	*n, *parent;
	size_t			 id, ncap;

	if (p->nnodes >= p->lim.tokens_max) {
		(void)imap__fail(p, ERR_TOOBIG, "too many arguments", c);
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

/* n * 10 + d, or -1 past UINT64_MAX. */
int
imap__add_digit(uint64_t *n, int c)
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
		if (c >= '0' && c <= '9') {
			if (imap__add_digit(&p->tail_n, c) < 0)
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

/* ---------------------------------------------------------------- finish */

/* Lay the nodes out breadth-first: every list's children contiguous. */
void
imap__finish(struct imap_parser *p)
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

/* ---------------------------------------------------------------- feed */

/* A byte while discarding: only the line ends and literal markers count. */
static int
skip_byte(struct imap_parser *p, int c)
{
	int	ev = tail_step(p, c);

	if (c != '\n')
		return S_NEXT;
	if (p->state == PS_SKIP && ev == TAIL_NONSYNC) {
		if (p->tail_ovf)
			return imap__fatal(p, "literal size too large");
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
		return imap__fail(p, ERR_TOOBIG, "command line too long", c);
	if (p->line_len + p->lit_total >= p->lim.command_max)
		return imap__fail(p, ERR_TOOBIG, "command too large", c);
	p->line_len++;
	if (c == '\0')
		return imap__fail(p, ERR_PROTO, "NUL character", c);
	if (c == '\n' && p->state != PS_CR && p->state != PS_LIT_CR &&
	    p->state != PS_RAW_CR)
		return imap__fail(p, ERR_PROTO, "bare LF", c);
	do {
		r = imap__step(p, c);
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
		(void)imap__fail(p, ERR_PROTO, "NUL in literal", 0);
		p->skip_left = p->lit_left - *n_out;
		p->state = PS_SKIP_LIT;
		return S_ERR;
	}
	if (imap__put(p, d, n, 0) != S_NEXT) {
		p->skip_left = p->lit_left - n;
		p->state = PS_SKIP_LIT;
		return S_ERR;
	}
	p->lit_left -= n;
	if (p->lit_left > 0)
		return S_NEXT;
	if (imap__end_text(p, p->tok, 0) != S_NEXT)
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

