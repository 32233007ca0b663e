/*
 * imap_parser.h -- the IMAP4rev1/IMAP4rev2 command parser.
 *
 * Independent of sockets: the caller feeds bytes as they arrive, in
 * pieces of any size, and gets one command at a time: the tag, the
 * command name (upper-cased) and a generic argument tree (RFC 3501 9,
 * RFC 9051 9).  Feeding byte by byte gives exactly the same results as
 * feeding everything at once.  A feed consumes only the bytes of the
 * current command, so pipelined commands and whatever follows STARTTLS,
 * COMPRESS or IDLE stay with the caller.  The grammar of each command
 * is checked later by the server (imap_args_check() and the imap_arg_*
 * helpers); the parser tokenizes:
 *
 *   atom      1*(ATOM-CHAR / "]" / "%" / "*"), optionally led by "\"
 *             (flags such as \Seen), so sequence sets ("1:*,5"), list
 *             patterns ("%", "*") and astrings with "]" are one atom.
 *             An atom of digits only that fits in 64 bits is a NUMBER,
 *             "NIL" (any case) is NIL; both keep their text.  8-bit
 *             and control characters are refused.
 *   quoted    "..." with \" and \\ escapes (no other escape), any
 *             TEXT-CHAR but CR and LF; 8-bit only with IMAP_PARSER_UTF8,
 *             and then valid UTF-8 only.
 *   literal   {n} (synchronizing), {n+} (non-synchronizing, RFC 7888),
 *             and ~{n} / ~{n+} (literal8, RFC 3516).  See LITERALS.
 *   list      "(" ... ")" nested at most depth_max deep (iteratively:
 *             no recursion anywhere in the parser).
 *   section   BODY[...], BODY.PEEK[...], BINARY[...], BINARY.PEEK[...]
 *             and BINARY.SIZE[...] (the prefix in any case): the prefix
 *             is the section's text, the tokens between the brackets
 *             (e.g. HEADER.FIELDS and a list of header names) are its
 *             children, and an optional <offset.length> follows "]".
 *             After any other atom "[" is an ordinary ATOM-CHAR.
 *
 * Runs of SP separate tokens; SP may be omitted only before ")" and "]"
 * and after "(" and "[".  Trailing SP before CRLF is accepted.
 *
 * Refused (BAD): NUL anywhere (literal8 payloads excepted), a bare CR
 * or bare LF, 8-bit outside quoted strings and literals, invalid UTF-8
 * in quoted strings, unbalanced "(" ")" or "[" "]", an invalid tag
 * (1*<ASTRING-CHAR except "+">, at most IMAP_TAG_MAX bytes) or command
 * name (1*ATOM-CHAR), and bytes after a literal's "}" other than CRLF.
 *
 * LIMITS, all checked while bytes arrive (struct imap_parser_limits):
 *   line_max     bytes of command text outside literal payloads, every
 *                CRLF of the command included;
 *   literal_max  the size of one literal, checked from its {n} before
 *                any payload byte is read;
 *   command_max  text plus all literal payloads of one command;
 *   depth_max    nesting of lists and sections (clamped to
 *                [1, IMAP_PARSER_DEPTH_LIMIT]);
 *   tokens_max   arguments, lists and sections of one command.
 * Exactly the limit is accepted, one more is ERR_TOOBIG.  Pre-auth
 * values are tighter (imap_parser_limits_default()).  Memory per
 * command is bounded by command_max + tokens_max (the arena) plus
 * tokens_max nodes.
 *
 * LITERALS.  At the CRLF after {n} the parser checks the limits, then
 * returns IMAP_PARSE_CONTINUE (for every literal, synchronizing or not)
 * before reading any payload byte; imap_parser_literal_info() describes
 * it.  The caller then either
 *   - accepts: for {n} it sends "+ ..." first; then it simply feeds on;
 *   - or refuses with imap_parser_literal_reject() and answers
 *     "<tag> NO|BAD [TOOBIG] ..." itself (e.g. over APPENDLIMIT).
 * Refused by the caller or by the parser's limits:
 *   - {n}: the client sends nothing more of this command (it waits for
 *     "+", then sees our tagged reply), so the next byte starts the
 *     next command;
 *   - {n+}: the client sends the n bytes anyway, so they are read and
 *     discarded, then the rest of the command is discarded as below.
 * With LITERAL- semantics (no IMAP_PARSER_LITERAL_PLUS) a {n+} over
 * IMAP_LITERAL_MINUS_MAX (4096, RFC 7888 4) is refused with ERR_TOOBIG
 * before any payload byte is read, and its bytes are discarded.
 * "{n-}" is not RFC 7888 syntax (LITERAL- also uses "+"); a client that
 * writes it sends the bytes without waiting, so it is read as {n+}:
 * parsing its payload as commands would be worse.
 *
 * RESYNCHRONISATION.  After an error the rest of the command is
 * discarded: up to the end of the line; when that line ends with {n+}
 * (or {n-}) the n payload bytes and the following line are discarded
 * too, and so on; a line ending with {n} ends the command (the client
 * waits for a "+" that never comes).  An error at an LF ends the
 * command there.  The only unrecoverable case is a {n+} whose size does
 * not fit in 64 bits: the error is fatal (answer "* BYE" and close) and
 * every later feed returns it again.
 *
 * RAW LINES.  imap_parser_set_raw(p, 1) makes the next commands single
 * raw lines (the DONE of IDLE, AUTHENTICATE responses): printable ASCII
 * and TAB only, at most line_max bytes with CRLF, returned in cmd->line.
 *
 * Limits, flags and the raw mode set by the caller take effect at the
 * start of the next command.
 *
 * Files: imap_parser.c (setup, limits, discarding, this API) and
 * imap_lexer.c (the token grammar) share imap_parser_int.h; helpers in
 * imap_args.c and imap_seqset.c.
 */
#ifndef MAILSRV_IMAP_PARSER_H
#define MAILSRV_IMAP_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "mailsrv/limits.h"

/* After authentication. */
#define IMAP_PARSER_LINE_MAX		(64 * 1024)
#define IMAP_PARSER_LITERAL_MAX		(64ULL * 1024 * 1024) /* APPENDLIMIT */
#define IMAP_PARSER_DEPTH_MAX		32
#define IMAP_PARSER_TOKENS_MAX		100000
/* Before authentication (LOGIN may send user and password as literals). */
#define IMAP_PARSER_PREAUTH_LINE_MAX	IMAP_PREAUTH_LINE_MAX
#define IMAP_PARSER_PREAUTH_LITERAL_MAX	4096
#define IMAP_PARSER_PREAUTH_DEPTH_MAX	8
#define IMAP_PARSER_PREAUTH_TOKENS_MAX	256
/* RFC 7888 4: the largest {n+} a LITERAL- server must accept. */
#define IMAP_LITERAL_MINUS_MAX		4096
/* depth_max is clamped to this. */
#define IMAP_PARSER_DEPTH_LIMIT		1024

/* Flags (imap_parser_new(), imap_parser_set_flags()). */
#define IMAP_PARSER_UTF8	0x01	/* UTF-8 in quoted strings (IMAP4rev2,
					 * ENABLE UTF8=ACCEPT) */
#define IMAP_PARSER_LITERAL_PLUS 0x02	/* LITERAL+ advertised: {n+} up to
					 * literal_max, else LITERAL- rules */

/* imap_parser_feed(): a literal header was read (see LITERALS). */
#define IMAP_PARSE_CONTINUE	1

struct imap_parser_limits {
	size_t		line_max;
	uint64_t	literal_max;
	uint64_t	command_max;
	size_t		depth_max;
	size_t		tokens_max;
};

enum imap_arg_type {
	IMAP_ARG_ATOM = 1,
	IMAP_ARG_NUMBER,	/* digits only, value in num */
	IMAP_ARG_NIL,
	IMAP_ARG_QUOTED,	/* str is unescaped */
	IMAP_ARG_LITERAL,	/* {n}: no NUL inside */
	IMAP_ARG_LITERAL8,	/* ~{n}: any octet */
	IMAP_ARG_LIST,
	IMAP_ARG_SECTION,	/* str: "BODY.PEEK" etc., list: inside [] */
};

/*
 * One argument.  str/len: the text (ATOM, NUMBER, NIL as sent, QUOTED
 * unescaped, LITERAL payload, SECTION prefix; "" for LIST), always
 * NUL-terminated (a LITERAL8 may hold NULs: use len).  list/nlist: the
 * children of a LIST or SECTION, contiguous; parent: the enclosing LIST
 * or SECTION, NULL at the top level.  partial is 1 when a SECTION has
 * <part_off.part_len> (part_len >= 1).
 */
struct imap_arg {
	enum imap_arg_type	 type;
	const char		*str;
	size_t			 len;
	uint64_t		 num;
	const struct imap_arg	*list;
	size_t			 nlist;
	const struct imap_arg	*parent;
	int			 partial;
	uint64_t		 part_off;
	uint64_t		 part_len;
};

/*
 * A parsed command, owned by the parser, valid until the next
 * imap_parser_feed() or imap_parser_free().  In raw mode tag and name
 * are NULL, nargs is 0 and line/linelen hold the line without CRLF.
 */
struct imap_cmd {
	const char		*tag;
	const char		*name;	/* upper case */
	const struct imap_arg	*args;
	size_t			 nargs;
	const char		*line;
	size_t			 linelen;
};

/* Valid after IMAP_PARSE_CONTINUE, until the next feed or reject. */
struct imap_literal_info {
	uint64_t	 size;
	int		 sync;		/* 1: {n}: send "+ ..." first */
	int		 binary;	/* 1: ~{n} (literal8) */
	size_t		 argc;		/* top-level argument it belongs to */
	size_t		 depth;		/* 0: it is a top-level argument */
	const char	*tag;
	const char	*name;
};

/*
 * After an error return, until the next feed.  msg is a constant string
 * without peer data.  has_tag: the tag was complete, answer
 * "<tag> BAD ..." (else "* BAD ...").  resp_code is "TOOBIG" for limits
 * (else NULL).  fatal: the stream cannot be resynchronised; answer
 * "* BYE" and close.
 */
struct imap_parse_error {
	int		 code;		/* ERR_PROTO or ERR_TOOBIG */
	int		 fatal;
	int		 has_tag;
	char		 tag[IMAP_TAG_MAX + 1];
	const char	*resp_code;
	const char	*msg;
};

struct imap_parser;

/* The default limits after (authenticated != 0) or before login. */
void	imap_parser_limits_default(struct imap_parser_limits *, int);

/* NULL limits: the pre-auth defaults.  Never fails (xmalloc). */
struct imap_parser	*imap_parser_new(const struct imap_parser_limits *,
			    unsigned);
void	imap_parser_free(struct imap_parser **);
/* These take effect at the start of the next command. */
void	imap_parser_set_limits(struct imap_parser *,
	    const struct imap_parser_limits *);
void	imap_parser_set_flags(struct imap_parser *, unsigned);
void	imap_parser_set_raw(struct imap_parser *, int);

/*
 * imap_parser_feed(p, data, len, used_out): consume input up to the end
 * of at most one command (or literal header); *used_out is set to the
 * bytes consumed.  Returns:
 *   0                    a command is complete: imap_parser_cmd();
 *                        bytes after *used_out belong to the next one.
 *   IMAP_PARSE_CONTINUE  a literal header was read; see LITERALS and
 *                        imap_parser_literal_info().
 *   ERR_AGAIN            all len bytes were consumed, more are needed.
 *   ERR_PROTO            syntax error (BAD), reported at the offending
 *                        byte, which is consumed;
 *   ERR_TOOBIG           a limit was reached (BAD [TOOBIG]).
 *                        After either error see imap_parser_error();
 *                        later feeds discard the rest of the command
 *                        (RESYNCHRONISATION) and go on with the next.
 */
int	imap_parser_feed(struct imap_parser *, const void *, size_t,
	    size_t *);

/* The command after feed returned 0, else NULL. */
const struct imap_cmd	*imap_parser_cmd(const struct imap_parser *);
/* After IMAP_PARSE_CONTINUE: 0, else ERR_INVAL. */
int	imap_parser_literal_info(const struct imap_parser *,
	    struct imap_literal_info *);
/* Refuse the literal just announced: 0, or ERR_INVAL if none. */
int	imap_parser_literal_reject(struct imap_parser *);
const struct imap_parse_error	*imap_parser_error(
				    const struct imap_parser *);
/* 1 when no part of a command is buffered (between commands). */
int	imap_parser_idle(const struct imap_parser *);

/*
 * Argument helpers (imap_args.c).  Each returns 0 when the argument has
 * the named RFC 9051 form, ERR_PROTO otherwise (err_set() says why).
 * Out-strings point into the command (or are static) and are
 * NUL-terminated.
 */
int	imap_atom_char(int);		/* ATOM-CHAR */
int	imap_astring_char(int);		/* ASTRING-CHAR */
/* atom: ATOM, NUMBER or NIL made of ATOM-CHARs. */
int	imap_arg_atom(const char **, const struct imap_arg *);
/* astring: an atom of ASTRING-CHARs, a quoted string or a literal. */
int	imap_arg_astring(const char **, size_t *, const struct imap_arg *);
/* string: quoted or literal. */
int	imap_arg_string(const char **, size_t *, const struct imap_arg *);
/* nstring: NIL (*out = NULL, *len = 0) or string. */
int	imap_arg_nstring(const char **, size_t *, const struct imap_arg *);
/* number: up to 2^64-1 (callers check their own range). */
int	imap_arg_number(uint64_t *, const struct imap_arg *);
/* flag: "\" atom or atom (keyword). */
int	imap_arg_flag(const char **, const struct imap_arg *);
/*
 * mailbox: an astring that is valid UTF-8 without control characters;
 * any case of "INBOX" is returned as the static "INBOX".
 */
int	imap_arg_mailbox(const char **, size_t *, const struct imap_arg *);
/* list-mailbox: like mailbox, wildcards "%" and "*" allowed in atoms. */
int	imap_arg_list_mailbox(const char **, size_t *,
	    const struct imap_arg *);
/*
 * imap_args_check(args, nargs, sig): check the top-level shape.  sig is
 * space-separated words: atom astring string nstring number nz-number
 * flag mailbox list-mailbox seqset list section any; a word ending in
 * "?" is optional (only at the end); a last word "..." accepts any
 * further arguments.  E.g. LOGIN "astring astring", SELECT
 * "mailbox list?", FETCH "seqset any list?".  Returns 0, ERR_PROTO
 * (err_set() names the argument) or ERR_INVAL for a bad signature.
 */
int	imap_args_check(const struct imap_arg *, size_t, const char *);
/*
 * A one-line rendering for tests and trace logs: ATOM as is, NUMBER
 * "#n", NIL, "quoted" and {n}"literal" / ~{n}"literal8" escaped
 * (\" \\ \xHH), (lists), PREFIX[...]<o.l>.  It shows literal payloads
 * and LOGIN passwords: never log it for LOGIN or AUTHENTICATE.
 */
int	imap_cmd_dump(struct buf *, const struct imap_cmd *);

/*
 * Sequence sets (imap_seqset.c).  nz-numbers are 1..UINT32_MAX; "*" is
 * replaced by star (the largest sequence number or UID); with star 0
 * (empty mailbox) the ranges that use "*" are dropped.  The result is
 * sorted, overlapping and adjacent ranges merged.  "$" (SEARCHRES) is
 * not a sequence set here: the server checks for it first.
 */
struct imap_seq_range {
	uint32_t	lo;
	uint32_t	hi;
};

struct imap_seqset {
	struct imap_seq_range	*r;	/* NULL when n == 0 */
	size_t			 n;
};

/* 0, or ERR_PROTO for an invalid set ("0", "1:", ",", 2^32 ...). */
int	imap_seqset_parse(struct imap_seqset *, const char *, size_t,
	    uint32_t);
int	imap_seqset_valid(const char *, size_t);	/* 1 or 0 */
void	imap_seqset_free(struct imap_seqset *);
int	imap_seqset_contains(const struct imap_seqset *, uint32_t);
uint64_t imap_seqset_count(const struct imap_seqset *);
/* The argument (ATOM or NUMBER) as a sequence set. */
int	imap_arg_seqset(struct imap_seqset *, const struct imap_arg *,
	    uint32_t);

#endif
