/*
 * imap_lexer.c -- the byte-level states of the IMAP command parser:
 * tag, command name, atoms, quoted strings, literal headers, lists,
 * sections with <partial>, and raw lines (contract in imap_parser.h,
 * state shared with imap_parser.c through imap_parser_int.h).
 *
 * Runs in: the mailsrv process, event loop thread; no I/O.
 * Failure policy: every refusal goes through imap__fail() with a
 * constant message; imap_parser.c then discards the rest of the command.
 * SECURITY: each step sees one byte that imap_parser.c has already
 * counted against the limits; nothing here recurses or allocates except
 * through imap__node_new() and the bounded arena.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/err.h"
#include "mailsrv/imap/imap_parser.h"
#include "mailsrv/imap/imap_parser_int.h"

static const char *const section_names[] = {
	"BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE",
};

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

/* ---------------------------------------------------------------- tokens */

static int
step_tag(struct imap_parser *p, int c)
{
	if (c == ' ' || c == '\r') {
		if (p->tag_len == 0)
			return imap__fail(p, ERR_PROTO, c == ' ' ?
			    "missing tag" : "empty command line", c);
		if (imap__putc(p, '\0') != S_NEXT)
			return S_ERR;
		p->has_tag = 1;
		p->name_off = p->arena.len;
		p->state = PS_NAME;
		return c == ' ' ? S_NEXT : S_REDO;
	}
	if (!tag_char(c))
		return imap__fail(p, ERR_PROTO, "invalid character in tag", c);
	if (p->tag_len >= IMAP_TAG_MAX)
		return imap__fail(p, ERR_PROTO, "tag too long", c);
	p->tag_len++;
	return imap__putc(p, c);
}

static int
step_name(struct imap_parser *p, int c)
{
	if (c == ' ' || c == '\r') {
		if (p->name_len == 0) {
			if (c == ' ')
				return S_NEXT;
			return imap__fail(p, ERR_PROTO,
			    "missing command name", c);
		}
		if (imap__putc(p, '\0') != S_NEXT)
			return S_ERR;
		p->state = PS_ARGS;
		p->need_sep = 0;
		return c == ' ' ? S_NEXT : S_REDO;
	}
	if (!imap_atom_char(c))
		return imap__fail(p, ERR_PROTO,
		    "invalid character in command name", c);
	p->name_len++;
	if (c >= 'a' && c <= 'z')
		c -= 'a' - 'A';
	return imap__putc(p, c);
}

static int
open_list(struct imap_parser *p, int c)
{
	size_t	id;

	if (p->depth >= p->lim.depth_max)
		return imap__fail(p, ERR_TOOBIG,
		    "parentheses nested too deeply", c);
	if ((id = imap__node_new(p, IMAP_ARG_LIST, c)) == NONE)
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
		return imap__fail(p, ERR_PROTO,
		    "missing space between arguments", c);
	switch (c) {
	case '(':
		return open_list(p, c);
	case '"':
		if (imap__node_new(p, IMAP_ARG_QUOTED, c) == NONE)
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
		return imap__fail(p, ERR_PROTO, c >= 0x80 ?
		    "8-bit character outside a string" :
		    "invalid character", c);
	if (imap__node_new(p, IMAP_ARG_ATOM, c) == NONE)
		return S_ERR;
	p->state = PS_ATOM;
	return imap__putc(p, c);
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
			return imap__fail(p, ERR_PROTO, in_section(p) ?
			    "missing ']'" : "missing ')'", c);
		p->state = PS_CR;
		return S_NEXT;
	case ')':
		if (p->cur == NONE || in_section(p))
			return imap__fail(p, ERR_PROTO, "unexpected ')'", c);
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
		if (imap__add_digit(&v, s[i]) < 0)
			break;
	if (i == len) {
		/* an overflowing number stays an ATOM (it is an astring) */
		n->type = IMAP_ARG_NUMBER;
		n->num = v;
	} else if (len == 3 && strncasecmp(s, "NIL", 3) == 0)
		n->type = IMAP_ARG_NIL;
	if (imap__end_text(p, p->tok, c) != S_NEXT)
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
		return imap__fail(p, ERR_TOOBIG,
		    "parentheses nested too deeply", c);
	if (imap__end_text(p, p->tok, c) != S_NEXT)
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
		return imap__putc(p, c);
	}
	if (c == ' ' || c == '\r' || c == ')' || c == ']')
		return end_atom(p, c);
	return imap__fail(p, ERR_PROTO, c >= 0x80 ? "8-bit character in atom" :
	    "invalid character in atom", c);
}

/* A byte of a UTF-8 sequence in a quoted string (RFC 3629 table). */
static int
quoted_utf8(struct imap_parser *p, int c)
{
	if (!(p->flags & IMAP_PARSER_UTF8))
		return imap__fail(p, ERR_PROTO,
		    "8-bit character in quoted string", c);
	if (p->u8_need > 0) {
		if (c < p->u8_lo || c > p->u8_hi)
			return imap__fail(p, ERR_PROTO, "invalid UTF-8", c);
		p->u8_need--;
		p->u8_lo = 0x80;
		p->u8_hi = 0xbf;
		return imap__putc(p, c);
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
		return imap__fail(p, ERR_PROTO, "invalid UTF-8", c);
	return imap__putc(p, c);
}

static int
step_quoted(struct imap_parser *p, int c)
{
	if (p->state == PS_QESC) {
		if (c != '"' && c != '\\')
			return imap__fail(p, ERR_PROTO,
			    "invalid escape in quoted string", c);
		p->state = PS_QUOTED;
		return imap__putc(p, c);
	}
	if (c >= 0x80 || p->u8_need > 0)
		return quoted_utf8(p, c);
	switch (c) {
	case '"':
		if (imap__end_text(p, p->tok, c) != S_NEXT)
			return S_ERR;
		p->need_sep = 1;
		p->state = PS_ARGS;
		return S_NEXT;
	case '\\':
		p->state = PS_QESC;
		return S_NEXT;
	case '\r':
		return imap__fail(p, ERR_PROTO, "CR in quoted string", c);
	}
	return imap__putc(p, c);
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
			return imap__fatal(p, "literal size too large");
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
		(void)imap__fail(p, ERR_TOOBIG, why, '\n');
		if (!p->lit_sync) {
			p->skip_left = p->lit_n;
			p->state = PS_SKIP_LIT;
		}
		return S_ERR;
	}
	(void)imap__node_new(p, p->lit_bin ? IMAP_ARG_LITERAL8 :
	    IMAP_ARG_LITERAL, '\n');
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
		if (imap__node_new(p, IMAP_ARG_ATOM, c) == NONE)
			return S_ERR;
		p->state = PS_ATOM;
		return imap__putc(p, '~') == S_NEXT ? S_REDO : S_ERR;
	case PS_LIT_NUM:
		if (is_digit(c)) {
			if (imap__add_digit(&p->lit_n, c) < 0)
				p->lit_ovf = 1;
			p->lit_digits++;
			return S_NEXT;
		}
		if (p->lit_digits > 0 && (c == '+' || c == '-' || c == '}')) {
			p->lit_sync = c == '}';
			p->state = c == '}' ? PS_LIT_CLOSE : PS_LIT_PLUS;
			return S_NEXT;
		}
		return imap__fail(p, ERR_PROTO, "invalid literal", c);
	case PS_LIT_PLUS:
		if (c != '}')
			return imap__fail(p, ERR_PROTO, "invalid literal", c);
		p->state = PS_LIT_CLOSE;
		return S_NEXT;
	case PS_LIT_CLOSE:
		if (c != '\r')
			return imap__fail(p, ERR_PROTO,
			    "literal must end the line", c);
		p->state = PS_LIT_CR;
		return S_NEXT;
	default:	/* PS_LIT_CR */
		if (c != '\n')
			return imap__fail(p, ERR_PROTO, "bare CR", c);
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
		if (imap__add_digit(&p->pnum, c) < 0)
			return imap__fail(p, ERR_PROTO, "partial too large", c);
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
	return imap__fail(p, ERR_PROTO, "invalid partial", c);
}

static int
step_raw(struct imap_parser *p, int c)
{
	if (p->state == PS_RAW_CR) {
		if (c != '\n')
			return imap__fail(p, ERR_PROTO, "bare CR", c);
		if (imap__putc(p, '\0') != S_NEXT)
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
		return imap__fail(p, ERR_PROTO, "invalid character in line",
		    c);
	return imap__putc(p, c);
}

/* One byte of command text, already counted by imap_parser.c. */
int
imap__step(struct imap_parser *p, int c)
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
			return imap__fail(p, ERR_PROTO, "bare CR", c);
		imap__finish(p);
		return S_DONE;
	case PS_RAW:
	case PS_RAW_CR:
		return step_raw(p, c);
	}
	/* unreachable: the other states never see text bytes */
	return imap__fatal(p, "parser state error");
}
