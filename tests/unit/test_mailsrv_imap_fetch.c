/*
 * test_mailsrv_imap_fetch.c -- unit tests for mailsrv/imap/imap_fetch
 * (the FETCH attribute list, modifiers, and response rendering).
 *
 * Runs in: the unit test runner (cmocka).
 * Failure policy: assertions abort the case.
 * SECURITY: every refused form answers ERR_PROTO before any message is
 * read; the item, header-name and part-number limits are tested at the
 * limit and one past it; a failed rendering leaves the output as it
 * was (no half response on the wire).
 * The argument trees come from the real command parser, fed
 * "a FETCH 1 <att> [<mods>]".
 */
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
#include "common/xmalloc.h"
#include "mailsrv/imap/imap_fetch.h"
#include "mailsrv/imap/imap_msg.h"
#include "mailsrv/imap/imap_parser.h"
#include "mailsrv/store/store.h"

#define P_ALL	(IMAP_FETCH_P_CONDSTORE)

/* Parse "a FETCH 1 <args>\r\n"; the parser stays alive for the args. */
static const struct imap_cmd *
parse_cmd(struct imap_parser **pp, const char *args)
{
	struct imap_parser_limits	 l;
	struct buf			 b;
	size_t				 used, off;
	int				 rc;

	imap_parser_limits_default(&l, 1);
	*pp = imap_parser_new(&l, 0);
	buf_init(&b, SIZE_MAX / 2);
	(void)buf_printf(&b, "a FETCH 1 %s\r\n", args);
	for (off = 0;; off += used) {
		rc = imap_parser_feed(*pp, b.data + off, b.len - off, &used);
		if (rc != IMAP_PARSE_CONTINUE)
			break;
	}
	buf_free(&b);
	if (rc != 0)
		return NULL;
	return imap_parser_cmd(*pp);
}

/* imap_fetch_parse() of "<args>": its result code, *out on success. */
static int
fetch_parse(struct imap_fetch **out, const char *args, unsigned pflags)
{
	struct imap_parser	*p;
	const struct imap_cmd	*c;
	int			 rc;

	c = parse_cmd(&p, args);
	assert_non_null(c);
	assert_true(c->nargs == 2 || c->nargs == 3);
	rc = imap_fetch_parse(out, &c->args[1],
	    c->nargs == 3 ? &c->args[2] : NULL, pflags);
	imap_parser_free(&p);
	return rc;
}

static void
parse_ok(const char *args, unsigned pflags, int needs, int seen, int ms)
{
	struct imap_fetch	*f = NULL;

	if (fetch_parse(&f, args, pflags) != 0)
		fail_msg("refused: %s: %s", args, err_msg());
	assert_int_equal(imap_fetch_needs_msg(f), needs);
	assert_int_equal(imap_fetch_sets_seen(f), seen);
	assert_int_equal(imap_fetch_wants_modseq(f), ms);
	imap_fetch_free(&f);
	assert_null(f);
}

static void
parse_bad(const char *args, unsigned pflags, const char *why)
{
	struct imap_fetch	*f = (struct imap_fetch *)1;

	if (fetch_parse(&f, args, pflags) != ERR_PROTO)
		fail_msg("accepted: %s", args);
	assert_null(f);
	if (strstr(err_msg(), why) == NULL)
		fail_msg("%s: \"%s\" lacks \"%s\"", args, err_msg(), why);
}

static void
test_mailsrv_imap_fetch__parse_ok(void **state)
{
	struct imap_fetch	*f;

	parse_ok("FAST", 0, 0, 0, 0);
	parse_ok("all", 0, 1, 0, 0);
	parse_ok("FULL", 0, 1, 0, 0);
	parse_ok("(FLAGS UID INTERNALDATE RFC822.SIZE)", 0, 0, 0, 0);
	parse_ok("(uid flags uid)", 0, 0, 0, 0);
	parse_ok("ENVELOPE", 0, 1, 0, 0);
	parse_ok("BODY", 0, 1, 0, 0);
	parse_ok("BODYSTRUCTURE", 0, 1, 0, 0);
	parse_ok("BODY[]", 0, 1, 1, 0);
	parse_ok("BODY.PEEK[]", 0, 1, 0, 0);
	parse_ok("(BODY.PEEK[HEADER.FIELDS (From \"Subject\" {4}\r\nDate)]"
	    " BINARY.SIZE[1])", 0, 1, 0, 0);
	parse_ok("body[1.2.3.MIME]<0.10>", 0, 1, 1, 0);
	parse_ok("BODY.PEEK[1.HEADER.FIELDS.NOT (X)]", 0, 1, 0, 0);
	parse_ok("BODY.PEEK[2.TEXT]", 0, 1, 0, 0);
	parse_ok("BODY[HEADER]", 0, 1, 1, 0);
	parse_ok("binary.peek[1]<5.7>", 0, 1, 0, 0);
	parse_ok("BINARY[]", 0, 1, 1, 0);
	parse_ok("BINARY[1.2]", 0, 1, 1, 0);
	parse_ok("RFC822", 0, 1, 1, 0);
	parse_ok("RFC822.HEADER", 0, 1, 0, 0);
	parse_ok("RFC822.TEXT", IMAP_FETCH_P_REV2, 1, 1, 0);
	parse_ok("(FLAGS MODSEQ)", P_ALL, 0, 0, 1);
	parse_ok("FLAGS (CHANGEDSINCE 12345)", P_ALL, 0, 0, 1);
	parse_ok("FLAGS (CHANGEDSINCE 0 VANISHED)", P_ALL, 0, 0, 1);
	/* the part-number limit */
	parse_ok("BODY[1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1"
	    ".1.1.1.1.1]", 0, 1, 1, 0);
	parse_ok("BODY[4294967295]", 0, 1, 1, 0);

	assert_int_equal(fetch_parse(&f, "UID (CHANGEDSINCE 77 VANISHED)",
	    P_ALL), 0);
	assert_int_equal(imap_fetch_changedsince(f), 77);
	assert_int_equal(imap_fetch_vanished(f), 1);
	imap_fetch_free(&f);
	assert_int_equal(fetch_parse(&f, "UID", 0), 0);
	assert_int_equal(imap_fetch_changedsince(f), 0);
	assert_int_equal(imap_fetch_vanished(f), 0);
	imap_fetch_free(&f);
	imap_fetch_free(&f);	/* NULL-safe */
}

static void
test_mailsrv_imap_fetch__parse_errors(void **state)
{
	parse_bad("FOO", 0, "unknown FETCH attribute");
	parse_bad("(FLAGS FOO)", 0, "unknown FETCH attribute");
	parse_bad("BODY.PEEK", 0, "unknown FETCH attribute");
	parse_bad("BINARY", 0, "unknown FETCH attribute");
	parse_bad("\"FLAGS\"", 0, "invalid FETCH attribute");
	parse_bad("42", 0, "invalid FETCH attribute");
	parse_bad("()", 0, "empty FETCH attribute list");
	parse_bad("((FLAGS))", 0, "invalid FETCH attribute");
	parse_bad("(FLAGS ALL)", 0, "FETCH macro inside a list");
	parse_bad("(FAST)", 0, "FETCH macro inside a list");
	parse_bad("BODY[HEADER.FIELDS]", 0, "needs a list of header names");
	parse_bad("BODY[HEADER.FIELDS ()]", 0, "needs a list of header names");
	parse_bad("BODY[HEADER.FIELDS.NOT FROM]", 0, "needs a list");
	parse_bad("BODY[HEADER.FIELDS ((From))]", 0, "invalid header name");
	parse_bad("BODY[MIME]", 0, "MIME needs a part number");
	parse_bad("BODY[0]", 0, "invalid section part number");
	parse_bad("BODY[01]", 0, "invalid section part number");
	parse_bad("BODY[4294967296]", 0, "invalid section part number");
	parse_bad("BODY[1.]", 0, "invalid section");
	parse_bad("BODY[.TEXT]", 0, "invalid section");
	parse_bad("BODY[1.FOO]", 0, "invalid section");
	parse_bad("BODY[1..2]", 0, "invalid section");
	parse_bad("BODY[HEADERS]", 0, "invalid section");
	parse_bad("BODY[TEXT (From)]", 0, "invalid section");
	parse_bad("BODY[\"TEXT\"]", 0, "invalid section");
	parse_bad("BODY[HEADER.FIELDS (A) (B)]", 0, "invalid section");
	parse_bad("BINARY[HEADER]", 0, "BINARY takes part numbers only");
	parse_bad("BINARY.PEEK[1.TEXT]", 0, "BINARY takes part numbers only");
	parse_bad("BINARY.SIZE[1.MIME]", 0, "BINARY takes part numbers only");
	parse_bad("BINARY.SIZE[1]<0.5>", 0, "BINARY.SIZE takes no partial");
	parse_bad("BODY[1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1"
	    ".1.1.1.1.1.1]", 0, "too many section part numbers");
	parse_bad("MODSEQ", 0, "MODSEQ needs CONDSTORE");
	parse_bad("FLAGS (CHANGEDSINCE 5)", 0, "CHANGEDSINCE needs CONDSTORE");
	parse_bad("FLAGS ()", P_ALL, "invalid FETCH modifiers");
	parse_bad("FLAGS CHANGEDSINCE", P_ALL, "invalid FETCH modifiers");
	parse_bad("FLAGS (CHANGEDSINCE)", P_ALL, "invalid CHANGEDSINCE value");
	parse_bad("FLAGS (CHANGEDSINCE x)", P_ALL, "invalid CHANGEDSINCE value");
	parse_bad("FLAGS (CHANGEDSINCE 9223372036854775808)", P_ALL,
	    "invalid CHANGEDSINCE value");
	parse_bad("FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)", P_ALL,
	    "CHANGEDSINCE given twice");
	parse_bad("FLAGS (CHANGEDSINCE 1 VANISHED VANISHED)", P_ALL,
	    "VANISHED given twice");
	parse_bad("FLAGS (VANISHED)", P_ALL, "VANISHED needs CHANGEDSINCE");
	parse_bad("FLAGS (FOO 1)", P_ALL, "unknown FETCH modifier");
}

/* Partial syntax (<o.l>, l >= 1) is the command parser's. */
static void
test_mailsrv_imap_fetch__bad_partial(void **state)
{
	static const char *const bad[] = {
		"BODY[]<0.0>", "BODY[]<5>", "BODY[]<.5>", "BODY[]<1.x>",
		"BODY[]<-1.5>",
	};
	struct imap_parser	*p;
	size_t			 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_null(parse_cmd(&p, bad[i]));
		assert_int_equal(imap_parser_error(p)->code, ERR_PROTO);
		imap_parser_free(&p);
	}
}

static void
test_mailsrv_imap_fetch__limits(void **state)
{
	struct imap_fetch	*f;
	struct buf		 b;
	size_t			 i;

	/* IMAP_FETCH_ITEMS_MAX sections, then one more */
	buf_init(&b, SIZE_MAX / 2);
	(void)buf_putc(&b, '(');
	for (i = 0; i < IMAP_FETCH_ITEMS_MAX; i++)
		(void)buf_printf(&b, "%sBODY[%zu]", i ? " " : "", i + 1);
	(void)buf_putc(&b, ')');
	assert_int_equal(fetch_parse(&f, (char *)b.data, 0), 0);
	imap_fetch_free(&f);
	b.len--;
	(void)buf_printf(&b, " FLAGS)");
	parse_bad((char *)b.data, 0, "too many FETCH attributes");
	/* repeated plain items are kept once, so they never add up */
	buf_reset(&b);
	(void)buf_putc(&b, '(');
	for (i = 0; i < 2 * IMAP_FETCH_ITEMS_MAX; i++)
		(void)buf_printf(&b, "%sFLAGS", i ? " " : "");
	(void)buf_putc(&b, ')');
	assert_int_equal(fetch_parse(&f, (char *)b.data, 0), 0);
	imap_fetch_free(&f);
	/* IMAP_FETCH_FIELDS_MAX header names, then one more */
	buf_reset(&b);
	(void)buf_printf(&b, "BODY[HEADER.FIELDS (");
	for (i = 0; i < IMAP_FETCH_FIELDS_MAX; i++)
		(void)buf_printf(&b, "%sX-%zu", i ? " " : "", i);
	(void)buf_printf(&b, ")]");
	assert_int_equal(fetch_parse(&f, (char *)b.data, 0), 0);
	imap_fetch_free(&f);
	b.len -= 2;
	(void)buf_printf(&b, " Y)]");
	parse_bad((char *)b.data, 0, "too many header names");
	buf_free(&b);
}

/* ------------------------------------------------------- rendering */

static const char test_msg[] =
	"From: Fred <fred@example.com>\r\n"
	"To: joe@example.com\r\n"
	"Subject: caf\xc3\xa9\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=B\r\n"
	"\r\n"
	"--B\r\n"
	"Content-Type: text/plain\r\n"
	"Content-Transfer-Encoding: x-foo\r\n"
	"\r\n"
	"odd\r\n"
	"--B\r\n"
	"Content-Type: application/octet-stream\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"AAEC\r\n"
	"--B--\r\n";

struct fx {
	struct imap_msg		*m;
	struct store_msginfo	 info;
	struct buf		 out;
};

static int
fx_setup(void **state)
{
	struct fx	*fx = xcalloc(1, sizeof(*fx));

	assert_int_equal(imap_msg_parse(&fx->m,
	    (const unsigned char *)test_msg, sizeof(test_msg) - 1), 0);
	fx->info.uid = 42;
	fx->info.flags = STORE_F_SEEN | STORE_F_FLAGGED;
	fx->info.keywords = 2;
	fx->info.internaldate = 837596665;
	fx->info.size = sizeof(test_msg) - 1;
	fx->info.modseq = 9000;
	buf_init(&fx->out, SIZE_MAX / 2);
	*state = fx;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx	*fx = *state;

	imap_msg_free(&fx->m);
	buf_free(&fx->out);
	free(fx);
	return 0;
}

static char *const kw[] = { "$Junk", "Work" };

/* Render <args> for message 7; the response, or NULL with *rc. */
static void
render(struct fx *fx, const char *args, unsigned pflags, unsigned rflags,
    const char *want, size_t wlen)
{
	struct imap_fetch	*f;

	buf_reset(&fx->out);
	if (fetch_parse(&f, args, pflags) != 0)
		fail_msg("refused: %s: %s", args, err_msg());
	assert_int_equal(imap_fetch_render(&fx->out, f, 7, &fx->info, kw, 2,
	    fx->m, rflags), 0);
	imap_fetch_free(&f);
	if (fx->out.len != wlen || memcmp(fx->out.data, want, wlen) != 0)
		fail_msg("%s:\n got: %.*s\nwant: %.*s", args,
		    (int)fx->out.len, (char *)fx->out.data, (int)wlen, want);
}

#define RENDER(fx, args, pf, rf, want) \
	render(fx, args, pf, rf, want, sizeof(want) - 1)

static void
test_mailsrv_imap_fetch__render_plain(void **state)
{
	struct fx	*fx = *state;

	RENDER(fx, "FAST", 0, 0, "* 7 FETCH (FLAGS (\\Seen \\Flagged Work)"
	    " INTERNALDATE \"17-Jul-1996 09:44:25 +0000\" RFC822.SIZE 299)\r\n");
	/* UID FETCH: UID first unless asked for, then where asked */
	RENDER(fx, "FLAGS", IMAP_FETCH_P_UID, 0,
	    "* 7 FETCH (UID 42 FLAGS (\\Seen \\Flagged Work))\r\n");
	RENDER(fx, "(FLAGS UID)", IMAP_FETCH_P_UID, 0,
	    "* 7 FETCH (FLAGS (\\Seen \\Flagged Work) UID 42)\r\n");
	RENDER(fx, "(uid FLAGS uid flags)", 0, 0,
	    "* 7 FETCH (UID 42 FLAGS (\\Seen \\Flagged Work))\r\n");
	/* FLAGS and MODSEQ added by the caller's request */
	RENDER(fx, "UID", 0, IMAP_FETCH_R_FLAGS | IMAP_FETCH_R_MODSEQ,
	    "* 7 FETCH (UID 42 FLAGS (\\Seen \\Flagged Work) MODSEQ (9000))"
	    "\r\n");
	RENDER(fx, "(FLAGS MODSEQ)", P_ALL,
	    IMAP_FETCH_R_FLAGS | IMAP_FETCH_R_MODSEQ,
	    "* 7 FETCH (FLAGS (\\Seen \\Flagged Work) MODSEQ (9000))\r\n");
	/* CHANGEDSINCE: MODSEQ is always sent (RFC 7162 3.1.4.1) */
	RENDER(fx, "FLAGS (CHANGEDSINCE 1)", P_ALL | IMAP_FETCH_P_UID, 0,
	    "* 7 FETCH (UID 42 FLAGS (\\Seen \\Flagged Work) MODSEQ (9000))"
	    "\r\n");
}

static void
test_mailsrv_imap_fetch__render_structure(void **state)
{
	struct fx	*fx = *state;

	RENDER(fx, "ENVELOPE", 0, 0, "* 7 FETCH (ENVELOPE (NIL {5}\r\n"
	    "caf\xc3\xa9 ((\"Fred\" NIL \"fred\" \"example.com\")) ((\"Fred\" NIL"
	    " \"fred\" \"example.com\")) ((\"Fred\" NIL \"fred\" \"example.com\"))"
	    " ((NIL NIL \"joe\" \"example.com\")) NIL NIL NIL NIL))\r\n");
	RENDER(fx, "ENVELOPE", IMAP_FETCH_P_UTF8, 0, "* 7 FETCH (ENVELOPE (NIL"
	    " \"caf\xc3\xa9\" ((\"Fred\" NIL \"fred\" \"example.com\")) ((\"Fred\""
	    " NIL \"fred\" \"example.com\")) ((\"Fred\" NIL \"fred\""
	    " \"example.com\")) ((NIL NIL \"joe\" \"example.com\")) NIL NIL NIL"
	    " NIL))\r\n");
	RENDER(fx, "BODY", 0, 0, "* 7 FETCH (BODY ((\"text\" \"plain\""
	    " (\"charset\" \"us-ascii\") NIL NIL \"x-foo\" 3 0)(\"application\""
	    " \"octet-stream\" NIL NIL NIL \"base64\" 4) \"mixed\"))\r\n");
	RENDER(fx, "BODYSTRUCTURE", 0, 0, "* 7 FETCH (BODYSTRUCTURE ((\"text\""
	    " \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"x-foo\" 3 0 NIL NIL"
	    " NIL NIL)(\"application\" \"octet-stream\" NIL NIL NIL \"base64\" 4"
	    " NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"B\") NIL NIL NIL))\r\n");
}

static void
test_mailsrv_imap_fetch__render_sections(void **state)
{
	struct fx	*fx = *state;

	RENDER(fx, "BODY.PEEK[HEADER.FIELDS (subject \"From\" \"X Y\")]", 0, 0,
	    "* 7 FETCH (BODY[HEADER.FIELDS (subject From \"X Y\")] {49}\r\n"
	    "From: Fred <fred@example.com>\r\nSubject: caf\xc3\xa9\r\n\r\n)\r\n");
	RENDER(fx, "BODY[1]", 0, 0, "* 7 FETCH (BODY[1] {3}\r\nodd)\r\n");
	RENDER(fx, "BODY[1.MIME]", 0, 0, "* 7 FETCH (BODY[1.MIME] {62}\r\n"
	    "Content-Type: text/plain\r\nContent-Transfer-Encoding: x-foo\r\n"
	    "\r\n)\r\n");
	RENDER(fx, "BODY[9]", 0, 0, "* 7 FETCH (BODY[9] \"\")\r\n");
	/* partial: the origin in the name, the substring, clamped */
	RENDER(fx, "BODY.PEEK[]<6.5>", 0, 0,
	    "* 7 FETCH (BODY[]<6> {5}\r\nFred )\r\n");
	RENDER(fx, "BODY.PEEK[1]<1.100>", 0, 0,
	    "* 7 FETCH (BODY[1]<1> {2}\r\ndd)\r\n");
	RENDER(fx, "BODY.PEEK[TEXT]<1000.10>", 0, 0,
	    "* 7 FETCH (BODY[TEXT]<1000> \"\")\r\n");
	RENDER(fx, "RFC822.HEADER", 0, 0, "* 7 FETCH (RFC822.HEADER {132}\r\n"
	    "From: Fred <fred@example.com>\r\nTo: joe@example.com\r\n"
	    "Subject: caf\xc3\xa9\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=B\r\n\r\n)\r\n");
	/* BINARY: literal8 when there is a NUL; sizes decoded */
	RENDER(fx, "(BINARY.PEEK[2] BINARY.SIZE[2])", 0, 0,
	    "* 7 FETCH (BINARY[2] ~{3}\r\n\0\1\2 BINARY.SIZE[2] 3)\r\n");
	RENDER(fx, "BINARY[2]<1.1>", 0, 0,
	    "* 7 FETCH (BINARY[2]<1> {1}\r\n\1)\r\n");
	RENDER(fx, "BINARY.SIZE[3]", 0, 0,
	    "* 7 FETCH (BINARY.SIZE[3] 0)\r\n");
}

static void
test_mailsrv_imap_fetch__render_rfc822(void **state)
{
	struct fx	*fx = *state;
	struct buf	 want;

	buf_init(&want, SIZE_MAX / 2);
	(void)buf_printf(&want, "* 7 FETCH (RFC822.SIZE 299 RFC822 {299}\r\n"
	    "%s RFC822.TEXT {%zu}\r\n%s)\r\n", test_msg,
	    strlen(strstr(test_msg, "--B")), strstr(test_msg, "--B"));
	render(fx, "(RFC822.SIZE RFC822 RFC822.TEXT)", 0, 0,
	    (char *)want.data, want.len);
	buf_free(&want);
}

static void
test_mailsrv_imap_fetch__render_errors(void **state)
{
	struct fx		*fx = *state;
	struct imap_fetch	*f;
	struct buf		 small;

	/* an unknown transfer encoding: nothing appended */
	buf_reset(&fx->out);
	(void)buf_append(&fx->out, "before", 6);
	assert_int_equal(fetch_parse(&f, "(UID BINARY[1])", 0), 0);
	assert_int_equal(imap_fetch_render(&fx->out, f, 1, &fx->info, kw, 2,
	    fx->m, 0), ERR_PROTO);
	assert_int_equal(fx->out.len, 6);
	assert_string_equal(fx->out.data, "before");
	imap_fetch_free(&f);
	/* BINARY.SIZE needs the decoding too */
	assert_int_equal(fetch_parse(&f, "BINARY.SIZE[1]", 0), 0);
	assert_int_equal(imap_fetch_render(&fx->out, f, 1, &fx->info, kw, 2,
	    fx->m, 0), ERR_PROTO);
	imap_fetch_free(&f);
	/* no message where one is needed */
	assert_int_equal(fetch_parse(&f, "ENVELOPE", 0), 0);
	assert_int_equal(imap_fetch_render(&fx->out, f, 1, &fx->info, kw, 2,
	    NULL, 0), ERR_INVAL);
	imap_fetch_free(&f);
	/* none needed: NULL is fine */
	assert_int_equal(fetch_parse(&f, "FAST", 0), 0);
	assert_int_equal(imap_fetch_render(&fx->out, f, 1, &fx->info, kw, 2,
	    NULL, 0), 0);
	imap_fetch_free(&f);
	/* a full buffer: nothing appended */
	buf_init(&small, 40);
	(void)buf_append(&small, "x", 1);
	assert_int_equal(fetch_parse(&f, "BODY[]", 0), 0);
	assert_int_equal(imap_fetch_render(&small, f, 1, &fx->info, kw, 2,
	    fx->m, 0), ERR_TOOBIG);
	assert_int_equal(small.len, 1);
	assert_string_equal(small.data, "x");
	imap_fetch_free(&f);
	buf_free(&small);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mailsrv_imap_fetch__parse_ok),
		cmocka_unit_test(test_mailsrv_imap_fetch__parse_errors),
		cmocka_unit_test(test_mailsrv_imap_fetch__bad_partial),
		cmocka_unit_test(test_mailsrv_imap_fetch__limits),
		cmocka_unit_test_setup_teardown(
		    test_mailsrv_imap_fetch__render_plain, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(
		    test_mailsrv_imap_fetch__render_structure, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(
		    test_mailsrv_imap_fetch__render_sections, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(
		    test_mailsrv_imap_fetch__render_rfc822, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(
		    test_mailsrv_imap_fetch__render_errors, fx_setup,
		    fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
