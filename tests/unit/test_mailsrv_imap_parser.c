/*
 * test_mailsrv_imap_parser.c -- unit tests for mailsrv/imap/imap_parser
 * (the command parser, argument helpers and sequence sets).
 *
 * Runs in: the unit test runner (cmocka).
 * Failure policy: assertions abort the case.
 * SECURITY: covers every limit at exactly max and max+1, literal
 * refusal and resynchronisation (no payload parsed as a command),
 * 10,000-deep parentheses, NUL, bare CR/LF, 8-bit, invalid UTF-8; a
 * corpus of commands is fed all at once, in chunks and byte by byte.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "mailsrv/imap/imap_parser.h"

#define S(lit)	lit, sizeof(lit) - 1

static const char *
code_name(int rc)
{
	switch (rc) {
	case ERR_PROTO:
		return "ERR_PROTO";
	case ERR_TOOBIG:
		return "ERR_TOOBIG";
	}
	return "unexpected";
}

/*
 * Feed in[0..len) in pieces of at most chunk bytes (0: all at once) and
 * write a transcript: one line per command (imap_cmd_dump), "+<n>s|n"
 * per literal announced (accepted, or refused when reject is set),
 * "ERR <code> <tag|*> <msg>" per error, "PENDING" if input ended inside
 * a command.
 */
static char *
transcript_ex(struct imap_parser *p, const char *in, size_t len,
    size_t chunk, int reject)
{
	struct buf			 out;
	const struct imap_parse_error	*e;
	struct imap_literal_info	 li;
	size_t				 off = 0, end, used;
	int				 rc;

	buf_init(&out, SIZE_MAX / 2);
	(void)buf_append(&out, "", 0);
	while (off < len) {
		end = chunk == 0 || len - off < chunk ? len : off + chunk;
		rc = imap_parser_feed(p, in + off, end - off, &used);
		assert_true(used <= end - off);
		off += used;
		if (rc == ERR_AGAIN) {
			assert_int_equal(used, end - off + used);
			continue;
		}
		if (rc == IMAP_PARSE_CONTINUE) {
			assert_int_equal(imap_parser_literal_info(p, &li), 0);
			(void)buf_printf(&out, "+%llu%s%s\n",
			    (unsigned long long)li.size, li.sync ? "s" : "n",
			    li.binary ? "8" : "");
			if (reject)
				assert_int_equal(
				    imap_parser_literal_reject(p), 0);
			continue;
		}
		if (rc == 0) {
			assert_non_null(imap_parser_cmd(p));
			(void)imap_cmd_dump(&out, imap_parser_cmd(p));
			(void)buf_putc(&out, '\n');
			continue;
		}
		e = imap_parser_error(p);
		assert_int_equal(rc, e->code);
		(void)buf_printf(&out, "ERR %s %s %s%s\n", code_name(rc),
		    e->has_tag ? e->tag : "*", e->msg,
		    e->fatal ? " FATAL" : "");
		if (e->fatal)
			return buf_steal(&out, NULL);
		assert_true(used > 0);
	}
	if (!imap_parser_idle(p))
		(void)buf_printf(&out, "PENDING\n");
	return buf_steal(&out, NULL);
}

/* The same through a fresh parser with these limits and flags. */
static char *
transcript(const char *in, size_t len, size_t chunk,
    const struct imap_parser_limits *l, unsigned flags)
{
	struct imap_parser	*p;
	char			*t;

	p = imap_parser_new(l, flags);
	t = transcript_ex(p, in, len, chunk, 0);
	imap_parser_free(&p);
	assert_null(p);
	return t;
}

/* At once, in 7-byte pieces and byte by byte: all equal to want. */
static void
check_all_ways(const char *in, size_t len,
    const struct imap_parser_limits *l, unsigned flags, const char *want)
{
	static const size_t	 chunks[] = { 0, 7, 1 };
	char			*t;
	size_t			 i;

	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		t = transcript(in, len, chunks[i], l, flags);
		if (strcmp(t, want) != 0)
			fprintf(stderr, "chunk %zu:\n--- got\n%s--- want\n%s",
			    chunks[i], t, want);
		assert_string_equal(t, want);
		free(t);
	}
}

static struct imap_parser_limits
auth_limits(void)
{
	struct imap_parser_limits	l;

	imap_parser_limits_default(&l, 1);
	return l;
}

/* ---------------------------------------------------------------- corpus */

static const struct {
	const char	*in;
	const char	*out;
} corpus[] = {
	{ "a1 LOGIN joe \"pa ss\\\"w\"\r\n", "a1 LOGIN joe \"pa ss\\\"w\"\n" },
	{ "a2 AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\n",
	  "a2 AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=\n" },
	{ "a3 SELECT INBOX (CONDSTORE)\r\n", "a3 SELECT INBOX (CONDSTORE)\n" },
	{ "a4 SELECT INBOX (QRESYNC (67890007 20050715194045000 1:10 "
	  "(1,3 5,6)))\r\n",
	  "a4 SELECT INBOX (QRESYNC (#67890007 #20050715194045000 1:10 "
	  "(1,3 5,6)))\n" },
	{ "a5 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From Subject)]"
	  "<0.100>) (CHANGEDSINCE 5)\r\n",
	  "a5 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From Subject)]"
	  "<0.100>) (CHANGEDSINCE #5)\n" },
	{ "a6 UID FETCH 1:*,5 (UID RFC822.SIZE BODY.PEEK[1.2.MIME]<0.2048> "
	  "BINARY.PEEK[1]<0.100> BINARY.SIZE[1] BODY[])\r\n",
	  "a6 UID FETCH 1:*,5 (UID RFC822.SIZE BODY.PEEK[1.2.MIME]<0.2048> "
	  "BINARY.PEEK[#1]<0.100> BINARY.SIZE[#1] BODY[])\n" },
	{ "a7 STORE 1:3 +FLAGS.SILENT (\\Seen \\Deleted $Junk)\r\n",
	  "a7 STORE 1:3 +FLAGS.SILENT (\\Seen \\Deleted $Junk)\n" },
	{ "a8 UID STORE 4 (UNCHANGEDSINCE 3) -FLAGS (\\Flagged)\r\n",
	  "a8 UID STORE #4 (UNCHANGEDSINCE #3) -FLAGS (\\Flagged)\n" },
	{ "a9 SEARCH CHARSET UTF-8 OR (FROM \"a\") NOT BODY \"x\"\r\n",
	  "a9 SEARCH CHARSET UTF-8 OR (FROM \"a\") NOT BODY \"x\"\n" },
	{ "b1 APPEND Drafts (\\Seen \\Draft) \"05-Jan-2024 10:00:00 +0100\" "
	  "{11}\r\nHi there!\r\n\r\n",
	  "+11s\nb1 APPEND Drafts (\\Seen \\Draft) "
	  "\"05-Jan-2024 10:00:00 +0100\" {11}\"Hi there!\\x0d\\x0a\"\n" },
	{ "b2 APPEND INBOX (\\Seen) {3+}\r\nabc (\\Flagged) {4+}\r\ndefg\r\n",
	  "+3n\n+4n\nb2 APPEND INBOX (\\Seen) {3}\"abc\" (\\Flagged) "
	  "{4}\"defg\"\n" },
	{ "b4 LIST \"\" \"*\" RETURN (CHILDREN SPECIAL-USE STATUS "
	  "(MESSAGES))\r\n",
	  "b4 LIST \"\" \"*\" RETURN (CHILDREN SPECIAL-USE STATUS "
	  "(MESSAGES))\n" },
	{ "b5 LIST (SUBSCRIBED) \"\" %\r\n", "b5 LIST (SUBSCRIBED) \"\" %\n" },
	{ "b6 STATUS INBOX (MESSAGES UIDNEXT SIZE)\r\n",
	  "b6 STATUS INBOX (MESSAGES UIDNEXT SIZE)\n" },
	{ "b7 COPY 1:2 \"Sent Items\"\r\n", "b7 COPY 1:2 \"Sent Items\"\n" },
	{ "b8 MOVE 3 Trash\r\n", "b8 MOVE #3 Trash\n" },
	{ "b9 UID EXPUNGE 1:3\r\n", "b9 UID EXPUNGE 1:3\n" },
	{ "c1 ENABLE QRESYNC IMAP4rev2\r\n", "c1 ENABLE QRESYNC IMAP4rev2\n" },
	{ "c2 ID (\"name\" \"x\" \"version\" NIL)\r\n",
	  "c2 ID (\"name\" \"x\" \"version\" NIL)\n" },
	{ "c3 IDLE\r\n", "c3 IDLE\n" },
	{ "c4 COMPRESS DEFLATE\r\n", "c4 COMPRESS DEFLATE\n" },
	{ "c5 NAMESPACE\r\n", "c5 NAMESPACE\n" },
	{ "c6 GETQUOTAROOT INBOX\r\n", "c6 GETQUOTAROOT INBOX\n" },
	{ "c7 capability\r\n", "c7 CAPABILITY\n" },
	{ "c8 NOOP \r\n", "c8 NOOP\n" },
	{ "c9 LOGOUT\r\n", "c9 LOGOUT\n" },
	{ "d1 STARTTLS\r\n", "d1 STARTTLS\n" },
	{ "d2 CREATE foo/bar (USE (\\Drafts))\r\n",
	  "d2 CREATE foo/bar (USE (\\Drafts))\n" },
	{ "d3 RENAME foo bar\r\n", "d3 RENAME foo bar\n" },
	{ "d4 LSUB \"\" *\r\n", "d4 LSUB \"\" *\n" },
	{ "d5 EXAMINE inbox\r\n", "d5 EXAMINE inbox\n" },
	{ "d6 UNSELECT\r\n", "d6 UNSELECT\n" },
	{ "d7 UID SEARCH RETURN (MIN MAX COUNT) UNDELETED SINCE "
	  "1-Feb-1994\r\n",
	  "d7 UID SEARCH RETURN (MIN MAX COUNT) UNDELETED SINCE "
	  "1-Feb-1994\n" },
	{ "d8 SORT (REVERSE DATE) UTF-8 ALL\r\n",
	  "d8 SORT (REVERSE DATE) UTF-8 ALL\n" },
	{ "d9 LOGIN {3}\r\njoe {6}\r\nsecret\r\n",
	  "+3s\n+6s\nd9 LOGIN {3}\"joe\" {6}\"secret\"\n" },
	{ "e1 SETQUOTA \"\" (STORAGE 512)\r\n",
	  "e1 SETQUOTA \"\" (STORAGE #512)\n" },
	{ "e2 SETMETADATA INBOX (/private/comment {5+}\r\nhello)\r\n",
	  "+5n\ne2 SETMETADATA INBOX (/private/comment {5}\"hello\")\n" },
	{ "e3 APPEND INBOX CATENATE (URL \"/INBOX;UID=1/;section=1\" "
	  "TEXT {3}\r\nabc)\r\n",
	  "+3s\ne3 APPEND INBOX CATENATE (URL \"/INBOX;UID=1/;section=1\" "
	  "TEXT {3}\"abc\")\n" },
	{ "e4 NOTIFY SET (SELECTED (MessageNew (UID "
	  "BODY.PEEK[HEADER.FIELDS (From To)]) MessageExpunge))\r\n",
	  "e4 NOTIFY SET (SELECTED (MessageNew (UID "
	  "BODY.PEEK[HEADER.FIELDS (From To)]) MessageExpunge))\n" },
	{ "e5 fetch 2 body[text]\r\n", "e5 FETCH #2 body[text]\n" },
	{ "e6 SEARCH SUBJECT [PATCH] HEADER X-Foo \"\"\r\n",
	  "e6 SEARCH SUBJECT [PATCH] HEADER X-Foo \"\"\n" },
	{ "e7 SETACL INBOX bob lrswi\r\n", "e7 SETACL INBOX bob lrswi\n" },
	{ "e8 UID MOVE 1:* Archive\r\n", "e8 UID MOVE 1:* Archive\n" },
	{ "e9 GETMETADATA (DEPTH 1) INBOX /private/comment\r\n",
	  "e9 GETMETADATA (DEPTH #1) INBOX /private/comment\n" },
	{ "f1 FETCH 1 (BODY[HEADER.FIELDS.NOT ({4}\r\nDate)])\r\n",
	  "+4s\nf1 FETCH #1 (BODY[HEADER.FIELDS.NOT ({4}\"Date\")])\n" },
	{ "f2 EXPUNGE\r\n", "f2 EXPUNGE\n" },
	{ "f3 CHECK\r\n", "f3 CHECK\n" },
	{ "f4 CLOSE\r\n", "f4 CLOSE\n" },
	{ "f5 SUBSCRIBE \"a b\"\r\n", "f5 SUBSCRIBE \"a b\"\n" },
	{ "f6 UNSUBSCRIBE ~x\r\n", "f6 UNSUBSCRIBE ~x\n" },
	{ "f7 DELETE {0}\r\n\r\n", "+0s\nf7 DELETE {0}\"\"\n" },
};

static void
test_mailsrv_imap_parser__corpus_each(void **state)
{
	struct imap_parser_limits	l = auth_limits();
	size_t				i;

	for (i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++)
		check_all_ways(corpus[i].in, strlen(corpus[i].in), &l, 0,
		    corpus[i].out);
}

/* All commands pipelined in one stream. */
static void
test_mailsrv_imap_parser__corpus_pipelined(void **state)
{
	struct imap_parser_limits	l = auth_limits();
	struct buf			in, want;
	size_t				i;

	buf_init(&in, SIZE_MAX / 2);
	buf_init(&want, SIZE_MAX / 2);
	for (i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
		(void)buf_printf(&in, "%s", corpus[i].in);
		(void)buf_printf(&want, "%s", corpus[i].out);
	}
	check_all_ways((char *)in.data, in.len, &l, 0, (char *)want.data);
	buf_free(&in);
	buf_free(&want);
}

/* ------------------------------------------------------------ token kinds */

static const struct imap_cmd *
parse_one(struct imap_parser *p, const char *in, size_t len)
{
	size_t	used;
	int	rc;

	rc = imap_parser_feed(p, in, len, &used);
	while (rc == IMAP_PARSE_CONTINUE) {
		in += used;
		len -= used;
		rc = imap_parser_feed(p, in, len, &used);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(used, len);
	return imap_parser_cmd(p);
}

static void
test_mailsrv_imap_parser__token_kinds(void **state)
{
	static const char	 in[] = "t1 X atom \\Seen 42 nIl \"q\\\\\\\"\" "
	    "{2}\r\nab ~{3}\r\nx\0y (a (b) ()) BODY[1.MIME]<5.10> "
	    "18446744073709551615 18446744073709551616 007 1:*,5 %\r\n";
	struct imap_parser_limits l = auth_limits();
	struct imap_parser	*p = imap_parser_new(&l, 0);
	const struct imap_cmd	*c;
	const struct imap_arg	*a;

	c = parse_one(p, in, sizeof(in) - 1);
	assert_string_equal(c->tag, "t1");
	assert_string_equal(c->name, "X");
	assert_int_equal(c->nargs, 14);
	a = c->args;
	assert_int_equal(a[0].type, IMAP_ARG_ATOM);
	assert_string_equal(a[0].str, "atom");
	assert_int_equal(a[1].type, IMAP_ARG_ATOM);
	assert_string_equal(a[1].str, "\\Seen");
	assert_int_equal(a[2].type, IMAP_ARG_NUMBER);
	assert_int_equal(a[2].num, 42);
	assert_string_equal(a[2].str, "42");
	assert_int_equal(a[3].type, IMAP_ARG_NIL);
	assert_string_equal(a[3].str, "nIl");
	assert_int_equal(a[4].type, IMAP_ARG_QUOTED);
	assert_string_equal(a[4].str, "q\\\"");
	assert_int_equal(a[5].type, IMAP_ARG_LITERAL);
	assert_int_equal(a[5].len, 2);
	assert_string_equal(a[5].str, "ab");
	assert_int_equal(a[6].type, IMAP_ARG_LITERAL8);
	assert_int_equal(a[6].len, 3);
	assert_memory_equal(a[6].str, "x\0y", 3);
	/* (a (b) ()) */
	assert_int_equal(a[7].type, IMAP_ARG_LIST);
	assert_int_equal(a[7].nlist, 3);
	assert_null(a[7].parent);
	assert_string_equal(a[7].list[0].str, "a");
	assert_ptr_equal(a[7].list[0].parent, &a[7]);
	assert_int_equal(a[7].list[1].type, IMAP_ARG_LIST);
	assert_int_equal(a[7].list[1].nlist, 1);
	assert_string_equal(a[7].list[1].list[0].str, "b");
	assert_ptr_equal(a[7].list[1].list[0].parent, &a[7].list[1]);
	assert_int_equal(a[7].list[2].type, IMAP_ARG_LIST);
	assert_int_equal(a[7].list[2].nlist, 0);
	assert_null(a[7].list[2].list);
	/* BODY[1.MIME]<5.10> */
	assert_int_equal(a[8].type, IMAP_ARG_SECTION);
	assert_string_equal(a[8].str, "BODY");
	assert_int_equal(a[8].nlist, 1);
	assert_string_equal(a[8].list[0].str, "1.MIME");
	assert_int_equal(a[8].partial, 1);
	assert_int_equal(a[8].part_off, 5);
	assert_int_equal(a[8].part_len, 10);
	assert_int_equal(a[9].type, IMAP_ARG_NUMBER);
	assert_true(a[9].num == UINT64_MAX);
	/* an overflowing number stays an atom (it may be a password) */
	assert_int_equal(a[10].type, IMAP_ARG_ATOM);
	assert_int_equal(a[11].type, IMAP_ARG_NUMBER);
	assert_int_equal(a[11].num, 7);
	assert_int_equal(a[12].type, IMAP_ARG_ATOM);
	assert_string_equal(a[12].str, "1:*,5");
	assert_int_equal(a[13].type, IMAP_ARG_ATOM);
	assert_string_equal(a[13].str, "%");
	imap_parser_free(&p);
	imap_parser_free(&p);	/* NULL-safe */
}

static void
test_mailsrv_imap_parser__quoted_escapes(void **state)
{
	struct imap_parser_limits	l = auth_limits();

	check_all_ways(S("a X \"a\\\\b\\\"c\" \"\"\r\n"), &l, 0,
	    "a X \"a\\\\b\\\"c\" \"\"\n");
	check_all_ways(S("a X \"a\\nb\"\r\nb NOOP\r\n"), &l, 0,
	    "ERR ERR_PROTO a invalid escape in quoted string\nb NOOP\n");
	check_all_ways(S("a X \"ab\r\nb NOOP\r\n"), &l, 0,
	    "ERR ERR_PROTO a CR in quoted string\nb NOOP\n");
	check_all_ways(S("a X \"tab\there\"\r\n"), &l, 0,
	    "a X \"tab\\x09here\"\n");
}

static void
test_mailsrv_imap_parser__spacing(void **state)
{
	struct imap_parser_limits	l = auth_limits();

	check_all_ways(S("a  X  (a  b )  c \r\n"), &l, 0, "a X (a b) c\n");
	check_all_ways(S("a X (a)(b)\r\nb X \"a\"\"b\"\r\nc X a\"b\"\r\n"),
	    &l, 0,
	    "ERR ERR_PROTO a missing space between arguments\n"
	    "ERR ERR_PROTO b missing space between arguments\n"
	    "ERR ERR_PROTO c invalid character in atom\n");
	check_all_ways(S("a X BODY[]x\r\nb X {1}x\r\n"), &l, 0,
	    "ERR ERR_PROTO a missing space between arguments\n"
	    "ERR ERR_PROTO b literal must end the line\n");
}

static void
test_mailsrv_imap_parser__sections(void **state)
{
	struct imap_parser_limits	l = auth_limits();

	check_all_ways(S("a FETCH 1 (BODY[] BINARY[1.2] body.peek[HEADER] "
	    "BINARY.SIZE[3])\r\n"), &l, 0,
	    "a FETCH #1 (BODY[] BINARY[1.2] body.peek[HEADER] "
	    "BINARY.SIZE[#3])\n");
	/* not a FETCH item: "[" and "]" are atom characters */
	check_all_ways(S("a X FOO[1] [a] a]b\r\n"), &l, 0,
	    "a X FOO[1] [a] a]b\n");
	check_all_ways(S("a X BODY[]<0>\r\nb X BODY[]<0.0>\r\n"
	    "c X BODY[]<.5>\r\nd X BODY[]<1.5\r\n"), &l, 0,
	    "ERR ERR_PROTO a invalid partial\n"
	    "ERR ERR_PROTO b invalid partial\n"
	    "ERR ERR_PROTO c invalid partial\n"
	    "ERR ERR_PROTO d invalid partial\n");
	check_all_ways(S("a X BODY[]<18446744073709551616.1>\r\n"), &l, 0,
	    "ERR ERR_PROTO a partial too large\n");
	/* ")" inside a section, nesting sections */
	check_all_ways(S("a X BODY[1)]\r\nb X BODY[BODY[1]]\r\n"), &l, 0,
	    "ERR ERR_PROTO a unexpected ')'\n"
	    "ERR ERR_PROTO b missing space between arguments\n");
}

/* --------------------------------------------------------- bad input */

static void
test_mailsrv_imap_parser__unbalanced_parens(void **state)
{
	struct imap_parser_limits	l = auth_limits();

	check_all_ways(S("a FETCH 1 (FLAGS\r\nb FETCH 1 FLAGS)\r\n"
	    "c FETCH 1 BODY[TEXT\r\nd FETCH 1 ((a)\r\ne NOOP\r\n"), &l, 0,
	    "ERR ERR_PROTO a missing ')'\n"
	    "ERR ERR_PROTO b unexpected ')'\n"
	    "ERR ERR_PROTO c missing ']'\n"
	    "ERR ERR_PROTO d missing ')'\n"
	    "e NOOP\n");
}

static void
test_mailsrv_imap_parser__deep_parens_refused(void **state)
{
	struct imap_parser_limits	 l = auth_limits();
	struct imap_parser		*p = imap_parser_new(&l, 0);
	struct buf			 in;
	size_t				 i, used;
	int				 rc;

	buf_init(&in, SIZE_MAX / 2);
	(void)buf_printf(&in, "a X ");
	for (i = 0; i < 10000; i++)
		(void)buf_putc(&in, '(');
	(void)buf_printf(&in, "\r\nb NOOP\r\n");
	rc = imap_parser_feed(p, in.data, in.len, &used);
	assert_int_equal(rc, ERR_TOOBIG);
	/* refused at the first "(" beyond the limit */
	assert_int_equal(used, 4 + IMAP_PARSER_DEPTH_MAX + 1);
	assert_true(imap_parser_error(p)->has_tag);
	assert_string_equal(imap_parser_error(p)->resp_code, "TOOBIG");
	rc = imap_parser_feed(p, in.data + used, in.len - used, &i);
	assert_int_equal(rc, 0);
	assert_string_equal(imap_parser_cmd(p)->tag, "b");
	imap_parser_free(&p);
	buf_free(&in);
}

/*
 * Parse and dump 1000-deep lists (and refuse 10,000-deep ones) on a
 * 64 KiB stack: nothing may recurse per nesting level.
 */
static void *
deep_worker(void *arg)
{
	struct imap_parser_limits	 l = auth_limits();
	struct imap_parser		*p;
	struct buf			 in, out;
	const struct imap_arg		*a;
	size_t				 i, used, depth = 1000;
	int				*ok = arg;

	l.depth_max = IMAP_PARSER_DEPTH_LIMIT;
	p = imap_parser_new(&l, 0);
	buf_init(&in, SIZE_MAX / 2);
	buf_init(&out, SIZE_MAX / 2);
	(void)buf_printf(&in, "a X ");
	for (i = 0; i < depth; i++)
		(void)buf_putc(&in, '(');
	(void)buf_putc(&in, 'z');
	for (i = 0; i < depth; i++)
		(void)buf_putc(&in, ')');
	(void)buf_printf(&in, " 1\r\n");
	if (imap_parser_feed(p, in.data, in.len, &used) != 0 ||
	    used != in.len)
		goto done;
	(void)imap_cmd_dump(&out, imap_parser_cmd(p));
	/* "a X ((..z..)) #1": the input without CRLF, "#" added */
	if (out.len != in.len - 1 || memcmp(out.data, in.data,
	    in.len - 4) != 0 || memcmp(out.data + in.len - 4, " #1", 3))
		goto done;
	a = &imap_parser_cmd(p)->args[0];
	for (i = 1; i < depth; i++)
		a = &a->list[0];
	if (a->list[0].type != IMAP_ARG_ATOM || a->list[0].parent != a)
		goto done;
	buf_reset(&in);
	(void)buf_printf(&in, "b X ");
	for (i = 0; i < 10000; i++)
		(void)buf_putc(&in, '(');
	(void)buf_printf(&in, "\r\n");
	if (imap_parser_feed(p, in.data, in.len, &used) != ERR_TOOBIG ||
	    used != 4 + IMAP_PARSER_DEPTH_LIMIT + 1)
		goto done;
	*ok = 1;
done:
	imap_parser_free(&p);
	buf_free(&in);
	buf_free(&out);
	return NULL;
}

static void
test_mailsrv_imap_parser__deep_nesting_small_stack(void **state)
{
	pthread_attr_t	attr;
	pthread_t	t;
	int		ok = 0;

	assert_int_equal(pthread_attr_init(&attr), 0);
	assert_int_equal(pthread_attr_setstacksize(&attr, 64 * 1024), 0);
	assert_int_equal(pthread_create(&t, &attr, deep_worker, &ok), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	pthread_attr_destroy(&attr);
	assert_true(ok);
}

static void
test_mailsrv_imap_parser__eightbit_atom_refused(void **state)
{
	struct imap_parser_limits	l = auth_limits();

	check_all_ways(S("a LOGIN j\xc3\xb6" "e x\r\nb NOOP\r\n"), &l,
	    IMAP_PARSER_UTF8,
	    "ERR ERR_PROTO a 8-bit character in atom\nb NOOP\n");
	check_all_ways(S("a LOGIN \xc3\xb6 x\r\nb NOOP\r\n"), &l,
	    IMAP_PARSER_UTF8,
	    "ERR ERR_PROTO a 8-bit character outside a string\nb NOOP\n");
	check_all_ways(S("\xc3 NOOP\r\nb N\xc3OOP\r\nc NOOP\r\n"), &l, 0,
	    "ERR ERR_PROTO * invalid character in tag\n"
	    "ERR ERR_PROTO b invalid character in command name\n"
	    "c NOOP\n");
}

static void
test_mailsrv_imap_parser__utf8_quoted(void **state)
{
	struct imap_parser_limits	l = auth_limits();

	check_all_ways(S("a SELECT \"Caf\xc3\xa9 \xe2\x82\xac "
	    "\xf0\x9f\x98\x80\"\r\n"), &l, IMAP_PARSER_UTF8,
	    "a SELECT \"Caf\\xc3\\xa9 \\xe2\\x82\\xac "
	    "\\xf0\\x9f\\x98\\x80\"\n");
	check_all_ways(S("a SELECT \"Caf\xc3\xa9\"\r\nb NOOP\r\n"), &l, 0,
	    "ERR ERR_PROTO a 8-bit character in quoted string\nb NOOP\n");
	/* overlong, surrogate, truncated, beyond U+10FFFF, stray */
	check_all_ways(S("a X \"\xc0\x80\"\r\nb X \"\xed\xa0\x80\"\r\n"
	    "c X \"\xc3\"\r\nd X \"\xf4\x90\x80\x80\"\r\ne X \"\x80\"\r\n"
	    "f X \"\xe0\x80\x80\"\r\ng NOOP\r\n"), &l, IMAP_PARSER_UTF8,
	    "ERR ERR_PROTO a invalid UTF-8\nERR ERR_PROTO b invalid UTF-8\n"
	    "ERR ERR_PROTO c invalid UTF-8\nERR ERR_PROTO d invalid UTF-8\n"
	    "ERR ERR_PROTO e invalid UTF-8\nERR ERR_PROTO f invalid UTF-8\n"
	    "g NOOP\n");
	/* literals are CHAR8: 8-bit passes without the flag */
	check_all_ways(S("a X {2}\r\n\xc3\xa9\r\n"), &l, 0,
	    "+2s\na X {2}\"\\xc3\\xa9\"\n");
}

static void
test_mailsrv_imap_parser__nul_refused(void **state)
{
	struct imap_parser_limits	l = auth_limits();

	check_all_ways(S("a X a\0b\r\nb X \"a\0\"\r\nc\0 NOOP\r\nd NOOP\r\n"),
	    &l, 0,
	    "ERR ERR_PROTO a NUL character\nERR ERR_PROTO b NUL character\n"
	    "ERR ERR_PROTO * NUL character\nd NOOP\n");
	/* NUL in a {n} payload: the rest of the payload is discarded */
	check_all_ways(S("a X {4}\r\na\0b\r\r\nb NOOP\r\n"), &l, 0,
	    "+4s\nERR ERR_PROTO a NUL in literal\nb NOOP\n");
	/* a literal8 may hold NUL */
	check_all_ways(S("a X ~{1+}\r\n\0\r\n"), &l, 0,
	    "+1n8\na X ~{1}\"\\x00\"\n");
}

static void
test_mailsrv_imap_parser__bare_cr_lf(void **state)
{
	struct imap_parser_limits	l = auth_limits();

	/* a bare LF ends the bad line; the next line is a command */
	check_all_ways(S("a NOOP\nb NOOP\r\n"), &l, 0,
	    "ERR ERR_PROTO a bare LF\nb NOOP\n");
	/* a bare CR: everything up to the next LF is discarded */
	check_all_ways(S("a NOOP\rb NOOP\r\nc NOOP\r\n"), &l, 0,
	    "ERR ERR_PROTO a bare CR\nc NOOP\n");
	check_all_ways(S("a X \"x\ny\"\r\nb X {1}\r\r\nc X {1}\n"
	    "d NOOP\r\n"), &l, 0,
	    "ERR ERR_PROTO a bare LF\n"
	    "ERR ERR_PROTO * invalid character in tag\n"
	    "ERR ERR_PROTO b bare CR\nERR ERR_PROTO c bare LF\nd NOOP\n");
}

static void
test_mailsrv_imap_parser__tag_errors(void **state)
{
	struct imap_parser_limits	l = auth_limits();
	char				in[256];
	char				want[256];

	check_all_ways(S("\r\n+a NOOP\r\n* NOOP\r\nabc\r\nabc \r\n"
	    " NOOP\r\nz NOOP\r\n"), &l, 0,
	    "ERR ERR_PROTO * empty command line\n"
	    "ERR ERR_PROTO * invalid character in tag\n"
	    "ERR ERR_PROTO * invalid character in tag\n"
	    "ERR ERR_PROTO abc missing command name\n"
	    "ERR ERR_PROTO abc missing command name\n"
	    "ERR ERR_PROTO * missing tag\nz NOOP\n");
	/* IMAP_TAG_MAX bytes: fine; one more: no tag */
	memset(in, 'T', IMAP_TAG_MAX);
	snprintf(in + IMAP_TAG_MAX, sizeof(in) - IMAP_TAG_MAX, " NOOP\r\n");
	memcpy(want, in, IMAP_TAG_MAX);
	snprintf(want + IMAP_TAG_MAX, sizeof(want) - IMAP_TAG_MAX,
	    " NOOP\n");
	check_all_ways(in, strlen(in), &l, 0, want);
	memset(in, 'T', IMAP_TAG_MAX + 1);
	snprintf(in + IMAP_TAG_MAX + 1, sizeof(in) - IMAP_TAG_MAX - 1,
	    " NOOP\r\n");
	check_all_ways(in, strlen(in), &l, 0,
	    "ERR ERR_PROTO * tag too long\n");
}

/* ----------------------------------------------------------------- limits */

/* "a X " + n 'x' + "\r\n": a command of exactly n + 6 bytes. */
static char *
long_line(size_t n, const char *tail)
{
	struct buf	b;
	size_t		i;

	buf_init(&b, SIZE_MAX / 2);
	(void)buf_printf(&b, "a X ");
	for (i = 0; i < n; i++)
		(void)buf_putc(&b, 'x');
	(void)buf_printf(&b, "\r\n%s", tail);
	return buf_steal(&b, NULL);
}

static void
test_mailsrv_imap_parser__line_limit(void **state)
{
	struct imap_parser_limits	 l;
	struct imap_parser		*p;
	char				*in, *t;
	size_t				 used;

	imap_parser_limits_default(&l, 0);
	assert_int_equal(l.line_max, IMAP_PREAUTH_LINE_MAX);
	/* exactly line_max bytes, CRLF included */
	in = long_line(l.line_max - 6, "");
	t = transcript(in, strlen(in), 0, &l, 0);
	assert_int_equal(strlen(t), l.line_max - 6 + 5);
	assert_string_equal(t + strlen(t) - 1, "\n");
	assert_null(strstr(t, "ERR"));
	free(t);
	free(in);
	/* one more: refused at the byte beyond, before the line ends */
	in = long_line(l.line_max - 5, "b NOOP\r\n");
	p = imap_parser_new(&l, 0);
	assert_int_equal(imap_parser_feed(p, in, strlen(in), &used),
	    ERR_TOOBIG);
	assert_int_equal(used, l.line_max + 1);
	assert_string_equal(imap_parser_error(p)->msg,
	    "command line too long");
	imap_parser_free(&p);
	t = transcript(in, strlen(in), 1, &l, 0);
	assert_string_equal(t, "ERR ERR_TOOBIG a command line too long\n"
	    "b NOOP\n");
	free(t);
	free(in);
	/* the limit counts the text of all lines of a command */
	l.line_max = 20;
	check_all_ways(S("a X {1}\r\nx 34567890\r\n"), &l, 0,
	    "+1s\na X {1}\"x\" #34567890\n");
	check_all_ways(S("a X {1}\r\nx 345678901\r\nb NOOP\r\n"), &l, 0,
	    "+1s\nERR ERR_TOOBIG a command line too long\nb NOOP\n");
}

static void
test_mailsrv_imap_parser__literal_limit(void **state)
{
	struct imap_parser_limits	l = auth_limits();

	l.literal_max = 10;
	check_all_ways(S("a X {10}\r\n0123456789\r\n"), &l, 0,
	    "+10s\na X {10}\"0123456789\"\n");
	/* {n} over the limit: the client sends nothing more */
	check_all_ways(S("a X {11}\r\nb NOOP\r\n"), &l, 0,
	    "ERR ERR_TOOBIG a literal too large\nb NOOP\n");
	/* {n+} over the limit: the payload comes and is discarded */
	check_all_ways(S("a X {11+}\r\nb NOOP\r\nxyz\r\nc NOOP\r\n"), &l,
	    IMAP_PARSER_LITERAL_PLUS,
	    "ERR ERR_TOOBIG a literal too large\nc NOOP\n");
	/* an unreadable {n} size is refused like a big one */
	check_all_ways(S("a X {99999999999999999999}\r\nb NOOP\r\n"), &l, 0,
	    "ERR ERR_TOOBIG a literal too large\nb NOOP\n");
}

static void
test_mailsrv_imap_parser__literal_minus(void **state)
{
	struct imap_parser_limits	 l = auth_limits();
	struct buf			 in;
	char				*t;
	size_t				 i;

	/* 4096 bytes non-synchronizing: fine under LITERAL- */
	buf_init(&in, SIZE_MAX / 2);
	(void)buf_printf(&in, "a APPEND INBOX {4096+}\r\n");
	for (i = 0; i < 4096; i++)
		(void)buf_putc(&in, 'm');
	(void)buf_printf(&in, "\r\n");
	t = transcript((char *)in.data, in.len, 0, &l, 0);
	assert_non_null(strstr(t, "+4096n\na APPEND INBOX {4096}"));
	free(t);
	buf_reset(&in);
	/* 4097: BAD [TOOBIG] before reading, payload discarded */
	(void)buf_printf(&in, "a APPEND INBOX {4097+}\r\n");
	for (i = 0; i < 4097; i++)
		(void)buf_putc(&in, i % 64 == 0 ? '\n' : 'm');
	(void)buf_printf(&in, "\r\nb NOOP\r\n");
	check_all_ways((char *)in.data, in.len, &l, 0,
	    "ERR ERR_TOOBIG a non-synchronizing literal too large "
	    "(LITERAL-)\nb NOOP\n");
	/* with LITERAL+ it is accepted */
	t = transcript((char *)in.data, in.len, 0, &l,
	    IMAP_PARSER_LITERAL_PLUS);
	assert_non_null(strstr(t, "+4097n\na APPEND INBOX {4097}"));
	free(t);
	buf_free(&in);
	/* {n-} is read as {n+} */
	check_all_ways(S("a X {3-}\r\nabc\r\n"), &l, 0,
	    "+3n\na X {3}\"abc\"\n");
}

static void
test_mailsrv_imap_parser__depth_limit(void **state)
{
	struct imap_parser_limits	l = auth_limits();

	l.depth_max = 3;
	check_all_ways(S("a X (((a)))\r\n"), &l, 0, "a X (((a)))\n");
	check_all_ways(S("a X ((((a))))\r\nb NOOP\r\n"), &l, 0,
	    "ERR ERR_TOOBIG a parentheses nested too deeply\nb NOOP\n");
	/* a section counts as a level */
	check_all_ways(S("a X (BODY[HEADER.FIELDS (A)])\r\n"), &l, 0,
	    "a X (BODY[HEADER.FIELDS (A)])\n");
	check_all_ways(S("a X ((BODY[HEADER.FIELDS (A)]))\r\n"), &l, 0,
	    "ERR ERR_TOOBIG a parentheses nested too deeply\n");
}

static void
test_mailsrv_imap_parser__tokens_limit(void **state)
{
	struct imap_parser_limits	l = auth_limits();

	l.tokens_max = 4;	/* a list and its children count */
	check_all_ways(S("a X 1 (2 3)\r\n"), &l, 0, "a X #1 (#2 #3)\n");
	check_all_ways(S("a X 1 (2 3) 4\r\nb NOOP\r\n"), &l, 0,
	    "ERR ERR_TOOBIG a too many arguments\nb NOOP\n");
	check_all_ways(S("a X 1 (2 3) {1+}\r\nxb NOOP\r\n"), &l,
	    IMAP_PARSER_LITERAL_PLUS,
	    "ERR ERR_TOOBIG a too many arguments\n");
}

static void
test_mailsrv_imap_parser__command_limit(void **state)
{
	struct imap_parser_limits	l = auth_limits();

	/* text 9 + 10 and a 4-byte payload: 23 */
	l.command_max = 9 + 10 + 4;
	check_all_ways(S("a X {4}\r\nabcd 1234567\r\n"), &l, 0,
	    "+4s\na X {4}\"abcd\" #1234567\n");
	check_all_ways(S("a X {4}\r\nabcd 12345678\r\nb NOOP\r\n"), &l, 0,
	    "+4s\nERR ERR_TOOBIG a command too large\nb NOOP\n");
	check_all_ways(S("a X 12345678 {10}\r\nb NOOP\r\n"), &l, 0,
	    "ERR ERR_TOOBIG a command too large\nb NOOP\n");
}

/* ------------------------------------------------------------- literals */

static void
test_mailsrv_imap_parser__continue_info(void **state)
{
	static const char		 in[] = "t7 append INBOX (a {2}\r\n";
	struct imap_parser		*p = imap_parser_new(NULL, 0);
	struct imap_literal_info	 li;
	size_t				 used;

	assert_int_equal(imap_parser_literal_info(p, &li), ERR_INVAL);
	assert_int_equal(imap_parser_literal_reject(p), ERR_INVAL);
	assert_int_equal(imap_parser_feed(p, S(in), &used),
	    IMAP_PARSE_CONTINUE);
	assert_int_equal(used, sizeof(in) - 1);
	assert_int_equal(imap_parser_literal_info(p, &li), 0);
	assert_int_equal(li.size, 2);
	assert_true(li.sync);
	assert_false(li.binary);
	assert_int_equal(li.argc, 1);
	assert_int_equal(li.depth, 1);
	assert_string_equal(li.tag, "t7");
	assert_string_equal(li.name, "APPEND");
	assert_false(imap_parser_idle(p));
	assert_int_equal(imap_parser_feed(p, S("xy)\r\n"), &used), 0);
	assert_true(imap_parser_idle(p));
	imap_parser_free(&p);
}

static void
test_mailsrv_imap_parser__sync_literal_rejected(void **state)
{
	struct imap_parser_limits	 l = auth_limits();
	struct imap_parser		*p = imap_parser_new(&l, 0);
	char				*t;

	/* the client does not send the payload: the next line is a command */
	t = transcript_ex(p, S("a APPEND INBOX {100}\r\nb NOOP\r\n"), 0, 1);
	assert_string_equal(t, "+100s\nb NOOP\n");
	free(t);
	t = transcript_ex(p, S("a APPEND INBOX {100}\r\nb NOOP\r\n"), 1, 1);
	assert_string_equal(t, "+100s\nb NOOP\n");
	free(t);
	imap_parser_free(&p);
}

static void
test_mailsrv_imap_parser__nonsync_literal_rejected(void **state)
{
	struct imap_parser_limits	 l = auth_limits();
	struct imap_parser		*p = imap_parser_new(&l, 0);
	static const char		 in[] =
	    "a APPEND INBOX {10+}\r\nx NOOP\r\nyz (\\Seen) {8+}\r\n"
	    "c NOOP\r\n\r\nb NOOP\r\n";
	char				*t;

	/* its payload (and that of the next {n+}) is read and discarded */
	t = transcript_ex(p, S(in), 0, 1);
	assert_string_equal(t, "+10n\nb NOOP\n");
	free(t);
	t = transcript_ex(p, S(in), 1, 1);
	assert_string_equal(t, "+10n\nb NOOP\n");
	free(t);
	imap_parser_free(&p);
}

/* After an error the discarding follows literal framing: no injection. */
static void
test_mailsrv_imap_parser__resync_follows_literals(void **state)
{
	struct imap_parser_limits	l = auth_limits();

	check_all_ways(S("a LOGIN \x80 {8+}\r\nb DELETE\r\nc NOOP\r\n"), &l,
	    0, "ERR ERR_PROTO a 8-bit character outside a string\nc NOOP\n");
	check_all_ways(S("a LOGIN \x80 {8}\r\nb DELETE\r\nc NOOP\r\n"), &l,
	    0, "ERR ERR_PROTO a 8-bit character outside a string\n"
	    "b DELETE\nc NOOP\n");
	/* the error byte itself completes the marker */
	l.line_max = 9;
	check_all_ways(S("a X 1 {5+}\r\nb X 1\r\nc NOOP\r\n"), &l, 0,
	    "ERR ERR_TOOBIG a command line too long\nc NOOP\n");
}

static void
test_mailsrv_imap_parser__fatal_literal_size(void **state)
{
	struct imap_parser_limits	 l = auth_limits();
	struct imap_parser		*p;
	size_t				 used;

	check_all_ways(S("a X {99999999999999999999+}\r\nb NOOP\r\n"), &l,
	    0, "ERR ERR_PROTO a literal size too large FATAL\n");
	check_all_ways(S("a X ( {99999999999999999999+}\r\nb NOOP\r\n"), &l,
	    0, "ERR ERR_PROTO a literal size too large FATAL\n");
	check_all_ways(S("a X \x01 {99999999999999999999+}\r\nb NOOP\r\n"),
	    &l, 0, "ERR ERR_PROTO a invalid character\n"
	    "ERR ERR_PROTO a literal size too large FATAL\n");
	p = imap_parser_new(&l, 0);
	assert_int_equal(imap_parser_feed(p,
	    S("a X {99999999999999999999+}\r\n"), &used), ERR_PROTO);
	assert_true(imap_parser_error(p)->fatal);
	assert_int_equal(imap_parser_feed(p, S("b NOOP\r\n"), &used),
	    ERR_PROTO);
	assert_int_equal(used, 0);
	imap_parser_free(&p);
}

static void
test_mailsrv_imap_parser__big_literal(void **state)
{
	struct imap_parser_limits	 l = auth_limits();
	struct imap_parser		*p = imap_parser_new(&l, 0);
	const struct imap_cmd		*c;
	struct buf			 in;
	size_t				 n = 1024 * 1024, i;

	buf_init(&in, SIZE_MAX / 2);
	(void)buf_printf(&in, "a APPEND INBOX {%zu}\r\n", n);
	for (i = 0; i < n; i++)
		(void)buf_putc(&in, "ab\r\n"[i % 4]);
	(void)buf_printf(&in, "\r\n");
	c = parse_one(p, (char *)in.data, in.len);
	assert_int_equal(c->nargs, 2);
	assert_int_equal(c->args[1].type, IMAP_ARG_LITERAL);
	assert_int_equal(c->args[1].len, n);
	assert_memory_equal(c->args[1].str, in.data + in.len - n - 2, n);
	/* the next command reuses the parser (big arena released) */
	c = parse_one(p, S("b NOOP\r\n"));
	assert_string_equal(c->name, "NOOP");
	imap_parser_free(&p);
	buf_free(&in);
}

/* ------------------------------------------------------------ modes */

static void
test_mailsrv_imap_parser__raw_line_idle_done(void **state)
{
	struct imap_parser_limits	 l = auth_limits();
	struct imap_parser		*p = imap_parser_new(&l, 0);
	static const char		 in[] = "a IDLE\r\nDONE\r\nb NOOP\r\n";
	const struct imap_cmd		*c;
	size_t				 off = 0, used;

	assert_int_equal(imap_parser_feed(p, S(in), &used), 0);
	assert_string_equal(imap_parser_cmd(p)->name, "IDLE");
	off += used;
	imap_parser_set_raw(p, 1);
	assert_int_equal(imap_parser_feed(p, in + off, sizeof(in) - 1 - off,
	    &used), 0);
	c = imap_parser_cmd(p);
	assert_null(c->tag);
	assert_null(c->name);
	assert_int_equal(c->linelen, 4);
	assert_string_equal(c->line, "DONE");
	off += used;
	imap_parser_set_raw(p, 0);
	assert_int_equal(imap_parser_feed(p, in + off, sizeof(in) - 1 - off,
	    &used), 0);
	assert_string_equal(imap_parser_cmd(p)->name, "NOOP");
	imap_parser_free(&p);
}

static void
test_mailsrv_imap_parser__raw_line_errors(void **state)
{
	struct imap_parser_limits	 l = auth_limits();
	struct imap_parser		*p;
	char				*t;

	l.line_max = 10;
	p = imap_parser_new(&l, 0);
	imap_parser_set_raw(p, 1);
	t = transcript_ex(p, S("dGVzdA==\r\n*\r\nab\x80\r\n{5+}\r\n"
	    "12345678901\r\nx\ny\r\nDONE\r\n"), 1, 0);
	assert_string_equal(t, "RAW \"dGVzdA==\"\nRAW \"*\"\n"
	    "ERR ERR_PROTO * invalid character in line\nRAW \"{5+}\"\n"
	    "ERR ERR_TOOBIG * command line too long\n"
	    "ERR ERR_PROTO * bare LF\nRAW \"y\"\nRAW \"DONE\"\n");
	free(t);
	imap_parser_free(&p);
}

static void
test_mailsrv_imap_parser__limits_apply_next_command(void **state)
{
	struct imap_parser_limits	 pre, post;
	struct imap_parser		*p;
	struct buf			 in;
	size_t				 used, i;

	imap_parser_limits_default(&pre, 0);
	imap_parser_limits_default(&post, 1);
	assert_true(pre.line_max < post.line_max);
	assert_true(pre.literal_max < post.literal_max);
	assert_true(pre.depth_max < post.depth_max);
	assert_true(pre.tokens_max < post.tokens_max);
	p = imap_parser_new(NULL, 0);
	buf_init(&in, SIZE_MAX / 2);
	(void)buf_printf(&in, "b X ");
	for (i = 0; i < pre.line_max; i++)
		(void)buf_putc(&in, 'x');
	(void)buf_printf(&in, "\r\n");
	assert_int_equal(imap_parser_feed(p, S("a LOGIN u {5}\r\n"), &used),
	    IMAP_PARSE_CONTINUE);
	imap_parser_set_limits(p, &post);	/* not for this command */
	assert_int_equal(imap_parser_feed(p, S("12345\r\n"), &used), 0);
	assert_int_equal(imap_parser_feed(p, in.data, in.len, &used), 0);
	assert_int_equal(imap_parser_cmd(p)->args[0].len, pre.line_max);
	imap_parser_free(&p);
	buf_free(&in);
}

/* ------------------------------------------------------------ helpers */

static void
test_mailsrv_imap_parser__args_check(void **state)
{
	struct imap_parser_limits l = auth_limits();
	struct imap_parser	*p = imap_parser_new(&l, 0);
	const struct imap_cmd	*c;

	c = parse_one(p, S("a LOGIN joe \"x y\"\r\n"));
	assert_int_equal(imap_args_check(c->args, c->nargs,
	    "astring astring"), 0);
	assert_int_equal(imap_args_check(c->args, c->nargs, "astring"),
	    ERR_PROTO);
	assert_int_equal(imap_args_check(c->args, c->nargs,
	    "astring astring astring"), ERR_PROTO);
	assert_int_equal(imap_args_check(c->args, c->nargs,
	    "astring astring list?"), 0);
	assert_int_equal(imap_args_check(c->args, c->nargs, "atom ..."), 0);
	assert_int_equal(imap_args_check(c->args, c->nargs,
	    "astring atom"), ERR_PROTO);
	assert_int_equal(imap_args_check(c->args, c->nargs, "bogus astring"),
	    ERR_INVAL);
	assert_int_equal(imap_args_check(c->args, c->nargs,
	    "astring? astring"), ERR_INVAL);
	c = parse_one(p, S("a LOGIN (x) y\r\n"));
	assert_int_equal(imap_args_check(c->args, c->nargs,
	    "astring astring"), ERR_PROTO);
	c = parse_one(p, S("a FETCH 1:*,3 (FLAGS) (CHANGEDSINCE 5)\r\n"));
	assert_int_equal(imap_args_check(c->args, c->nargs,
	    "seqset any list?"), 0);
	c = parse_one(p, S("a FETCH 1:*,,3 FLAGS\r\n"));
	assert_int_equal(imap_args_check(c->args, c->nargs,
	    "seqset any list?"), ERR_PROTO);
	c = parse_one(p, S("a STORE 1 +FLAGS \\Seen $Junk 0 BODY[]\r\n"));
	assert_int_equal(imap_args_check(c->args, c->nargs,
	    "nz-number atom flag flag number section"), 0);
	assert_int_equal(imap_args_check(c->args, c->nargs,
	    "nz-number atom flag flag nz-number section"), ERR_PROTO);
	c = parse_one(p, S("a X NIL \"s\" {1}\r\nl\r\n"));
	assert_int_equal(imap_args_check(c->args, c->nargs,
	    "nstring nstring nstring"), 0);
	assert_int_equal(imap_args_check(c->args, c->nargs,
	    "string string string"), ERR_PROTO);
	imap_parser_free(&p);
}

static void
test_mailsrv_imap_parser__astring_mailbox(void **state)
{
	struct imap_parser_limits l = auth_limits();
	struct imap_parser	*p = imap_parser_new(&l, IMAP_PARSER_UTF8);
	const struct imap_cmd	*c;
	const char		*s;
	size_t			 len;
	uint64_t		 n;

	c = parse_one(p, S("a X inbox a]b \\Seen % \"In\xc3\xa9\" {3}\r\n"
	    "a\x01z 12 NIL \"\"\r\n"));
	assert_int_equal(imap_arg_mailbox(&s, &len, &c->args[0]), 0);
	assert_string_equal(s, "INBOX");
	assert_int_equal(imap_arg_astring(&s, &len, &c->args[0]), 0);
	assert_string_equal(s, "inbox");
	assert_int_equal(imap_arg_astring(&s, &len, &c->args[1]), 0);
	assert_string_equal(s, "a]b");
	assert_int_equal(imap_arg_atom(&s, &c->args[1]), ERR_PROTO);
	assert_int_equal(imap_arg_astring(&s, &len, &c->args[2]), ERR_PROTO);
	assert_int_equal(imap_arg_flag(&s, &c->args[2]), 0);
	assert_int_equal(imap_arg_astring(&s, &len, &c->args[3]), ERR_PROTO);
	assert_int_equal(imap_arg_mailbox(&s, &len, &c->args[3]), ERR_PROTO);
	assert_int_equal(imap_arg_list_mailbox(&s, &len, &c->args[3]), 0);
	assert_int_equal(imap_arg_mailbox(&s, &len, &c->args[4]), 0);
	assert_int_equal(len, 4);
	/* a control character in a literal: astring yes, mailbox no */
	assert_int_equal(imap_arg_astring(&s, &len, &c->args[5]), 0);
	assert_int_equal(imap_arg_mailbox(&s, &len, &c->args[5]), ERR_PROTO);
	assert_int_equal(imap_arg_number(&n, &c->args[6]), 0);
	assert_int_equal(n, 12);
	assert_int_equal(imap_arg_mailbox(&s, &len, &c->args[6]), 0);
	assert_int_equal(imap_arg_number(&n, &c->args[5]), ERR_PROTO);
	assert_int_equal(imap_arg_nstring(&s, &len, &c->args[7]), 0);
	assert_null(s);
	assert_int_equal(imap_arg_string(&s, &len, &c->args[8]), 0);
	assert_int_equal(len, 0);
	assert_int_equal(imap_arg_atom(&s, &c->args[7]), 0);
	assert_true(imap_atom_char('a'));
	assert_false(imap_atom_char(']'));
	assert_true(imap_astring_char(']'));
	assert_false(imap_astring_char('%'));
	assert_false(imap_astring_char(0x80));
	imap_parser_free(&p);
}

static void
test_mailsrv_imap_parser__seqset_valid(void **state)
{
	struct imap_seqset	s;

	assert_int_equal(imap_seqset_parse(&s, S("1:*"), 10), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.r[0].lo, 1);
	assert_int_equal(s.r[0].hi, 10);
	imap_seqset_free(&s);
	assert_int_equal(imap_seqset_parse(&s, S("*:4"), 3), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.r[0].lo, 3);
	assert_int_equal(s.r[0].hi, 4);
	imap_seqset_free(&s);
	assert_int_equal(imap_seqset_parse(&s, S("3,1:2"), 9), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.r[0].lo, 1);
	assert_int_equal(s.r[0].hi, 3);
	imap_seqset_free(&s);
	assert_int_equal(imap_seqset_parse(&s, S("11,5:3,10,2,20:30,25"), 9),
	    0);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.r[0].lo, 2);
	assert_int_equal(s.r[0].hi, 5);
	assert_int_equal(s.r[1].lo, 10);
	assert_int_equal(s.r[1].hi, 11);
	assert_int_equal(s.r[2].lo, 20);
	assert_int_equal(s.r[2].hi, 30);
	assert_true(imap_seqset_contains(&s, 4));
	assert_true(imap_seqset_contains(&s, 30));
	assert_false(imap_seqset_contains(&s, 6));
	assert_false(imap_seqset_contains(&s, 1));
	assert_int_equal(imap_seqset_count(&s), 4 + 2 + 11);
	imap_seqset_free(&s);
	/* the largest numbers: no overflow when merging or counting */
	assert_int_equal(imap_seqset_parse(&s,
	    S("4294967295,1:4294967294,*"), 4294967295U), 0);
	assert_int_equal(s.n, 1);
	assert_true(s.r[0].hi == UINT32_MAX);
	assert_true(imap_seqset_count(&s) == UINT32_MAX);
	imap_seqset_free(&s);
	/* empty mailbox: ranges with "*" match nothing */
	assert_int_equal(imap_seqset_parse(&s, S("1:*"), 0), 0);
	assert_int_equal(s.n, 0);
	assert_null(s.r);
	assert_false(imap_seqset_contains(&s, 1));
	imap_seqset_free(&s);
	assert_int_equal(imap_seqset_parse(&s, S("5,*"), 0), 0);
	assert_int_equal(s.n, 1);
	imap_seqset_free(&s);
}

static void
test_mailsrv_imap_parser__seqset_invalid(void **state)
{
	static const char *const bad[] = {
		"", "0", "0:5", "1:", ":1", "1,,2", ",1", "1,", "1:2:3",
		"4294967296", "99999999999999999999", "a", "01", "1 2",
		"*:", "**", "1:*x", "-1", "+1", "$",
	};
	struct imap_seqset	s;
	size_t			i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(imap_seqset_parse(&s, bad[i], strlen(bad[i]),
		    10), ERR_PROTO);
		assert_null(s.r);
		assert_false(imap_seqset_valid(bad[i], strlen(bad[i])));
	}
	assert_true(imap_seqset_valid(S("4294967295")));
}

static void
test_mailsrv_imap_parser__arg_seqset(void **state)
{
	struct imap_parser_limits l = auth_limits();
	struct imap_parser	*p = imap_parser_new(&l, 0);
	const struct imap_cmd	*c;
	struct imap_seqset	 s;

	c = parse_one(p, S("a FETCH 7 x 1:3,* \"1\"\r\n"));
	assert_int_equal(imap_arg_seqset(&s, &c->args[0], 9), 0);
	assert_int_equal(s.n, 1);
	imap_seqset_free(&s);
	assert_int_equal(imap_arg_seqset(&s, &c->args[1], 9), ERR_PROTO);
	assert_int_equal(imap_arg_seqset(&s, &c->args[2], 9), 0);
	assert_int_equal(s.n, 2);
	imap_seqset_free(&s);
	assert_int_equal(imap_arg_seqset(&s, &c->args[3], 9), ERR_PROTO);
	imap_parser_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mailsrv_imap_parser__corpus_each),
		cmocka_unit_test(test_mailsrv_imap_parser__corpus_pipelined),
		cmocka_unit_test(test_mailsrv_imap_parser__token_kinds),
		cmocka_unit_test(test_mailsrv_imap_parser__quoted_escapes),
		cmocka_unit_test(test_mailsrv_imap_parser__spacing),
		cmocka_unit_test(test_mailsrv_imap_parser__sections),
		cmocka_unit_test(test_mailsrv_imap_parser__unbalanced_parens),
		cmocka_unit_test(test_mailsrv_imap_parser__deep_parens_refused),
		cmocka_unit_test(
		    test_mailsrv_imap_parser__deep_nesting_small_stack),
		cmocka_unit_test(
		    test_mailsrv_imap_parser__eightbit_atom_refused),
		cmocka_unit_test(test_mailsrv_imap_parser__utf8_quoted),
		cmocka_unit_test(test_mailsrv_imap_parser__nul_refused),
		cmocka_unit_test(test_mailsrv_imap_parser__bare_cr_lf),
		cmocka_unit_test(test_mailsrv_imap_parser__tag_errors),
		cmocka_unit_test(test_mailsrv_imap_parser__line_limit),
		cmocka_unit_test(test_mailsrv_imap_parser__literal_limit),
		cmocka_unit_test(test_mailsrv_imap_parser__literal_minus),
		cmocka_unit_test(test_mailsrv_imap_parser__depth_limit),
		cmocka_unit_test(test_mailsrv_imap_parser__tokens_limit),
		cmocka_unit_test(test_mailsrv_imap_parser__command_limit),
		cmocka_unit_test(test_mailsrv_imap_parser__continue_info),
		cmocka_unit_test(
		    test_mailsrv_imap_parser__sync_literal_rejected),
		cmocka_unit_test(
		    test_mailsrv_imap_parser__nonsync_literal_rejected),
		cmocka_unit_test(
		    test_mailsrv_imap_parser__resync_follows_literals),
		cmocka_unit_test(test_mailsrv_imap_parser__fatal_literal_size),
		cmocka_unit_test(test_mailsrv_imap_parser__big_literal),
		cmocka_unit_test(test_mailsrv_imap_parser__raw_line_idle_done),
		cmocka_unit_test(test_mailsrv_imap_parser__raw_line_errors),
		cmocka_unit_test(
		    test_mailsrv_imap_parser__limits_apply_next_command),
		cmocka_unit_test(test_mailsrv_imap_parser__args_check),
		cmocka_unit_test(test_mailsrv_imap_parser__astring_mailbox),
		cmocka_unit_test(test_mailsrv_imap_parser__seqset_valid),
		cmocka_unit_test(test_mailsrv_imap_parser__seqset_invalid),
		cmocka_unit_test(test_mailsrv_imap_parser__arg_seqset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
