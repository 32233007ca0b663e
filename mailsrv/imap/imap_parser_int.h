/*
 * imap_parser_int.h -- private to imap_parser.c and imap_lexer.c: the
 * parser's state and the helpers the two share.  Nothing else includes
 * this; the API is imap_parser.h.
 */
#ifndef MAILSRV_IMAP_PARSER_INT_H
#define MAILSRV_IMAP_PARSER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "mailsrv/imap/imap_parser.h"

#define NONE		SIZE_MAX

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

/* imap_parser.c */
int	imap__fail(struct imap_parser *, int, const char *, int);
int	imap__fatal(struct imap_parser *, const char *);
int	imap__put(struct imap_parser *, const void *, size_t, int);
int	imap__putc(struct imap_parser *, int);
int	imap__end_text(struct imap_parser *, size_t, int);
size_t	imap__node_new(struct imap_parser *, enum imap_arg_type, int);
int	imap__add_digit(uint64_t *, int);
void	imap__finish(struct imap_parser *);

/* imap_lexer.c: one byte of command text in the current state. */
int	imap__step(struct imap_parser *, int);

#endif
