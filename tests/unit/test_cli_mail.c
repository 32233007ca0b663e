/*
 * test_cli_mail.c -- unit tests for the pure parts of `amanat mail`.
 *
 * Purpose: the mail commands' arguments (three-word commands, two
 * positionals, "--" before a mailbox that starts with "-", the usage
 * errors and group help); the request targets (an address and a
 * mailbox name with spaces, "/" and non-ASCII percent-encoded as one
 * segment each, too long); recipient states in both of the API's forms
 * and their summary; IMAP flag names; and the text renderings of the
 * API's answers from JSON fixtures shaped as mailsrv serves them: the
 * queue list (sorted oldest first, the null sender, control characters
 * replaced, times in UTC), one envelope, mailboxes and messages, empty
 * answers, and answers of the wrong shape.
 * Runs in: the unit test binary only (no I/O).
 * Failure policy: cmocka assertions.
 * SECURITY: the encoding keeps a name from changing the route; the
 * renderings keep server text from driving the admin's terminal.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "keyservice/cli/cli.h"

#define PARSE(cmd, ...) do {						\
	char *argv_[] = { "amanat", __VA_ARGS__, NULL };		\
	rc = cli_parse((cmd), (int)(sizeof(argv_) / sizeof(argv_[0])) - 1, \
	    argv_);							\
} while (0)

/* GET /v1/queue as mailsrv serves it (queue_list: the stored records). */
static const char queue_fixture[] =
    "[{\"v\":1,\"id\":\"b0b0b0b0b0b0b0b0b0b0\",\"ret_full\":false,"
    "\"body_8bit\":false,\"smtputf8\":false,\"created\":1767225600,"
    "\"next_try\":1767229200,\"attempts\":3,\"size\":2048,"
    "\"sender\":\"alice@finance.amanat.test\",\"helo\":\"client\","
    "\"peer\":\"127.0.0.1\",\"auth\":\"alice@finance.amanat.test\","
    "\"rcpts\":[{\"notify\":0,\"local\":false,\"state\":0,"
    "\"addr\":\"x@remote.example\",\"status\":\"4.4.4 no route\"},"
    "{\"notify\":0,\"local\":true,\"state\":1,"
    "\"addr\":\"bob@finance.amanat.test\",\"status\":\"2.0.0 delivered\"},"
    "{\"notify\":0,\"local\":false,\"state\":0,"
    "\"addr\":\"y@remote.example\"}]},"
    "{\"v\":1,\"id\":\"a1a1a1a1a1a1a1a1a1a1\",\"ret_full\":false,"
    "\"body_8bit\":false,\"smtputf8\":false,\"created\":1767139200,"
    "\"next_try\":0,\"attempts\":0,\"size\":512,\"sender\":\"\","
    "\"helo\":\"localhost\",\"peer\":\"\",\"rcpts\":[{\"notify\":0,"
    "\"local\":false,\"state\":2,\"addr\":\"evil\\u001b[2J@x.example\","
    "\"status\":\"5.1.1 no\"}]}]";

static const char queue_table[] =
    "ID                    SENDER                     "
    "RECIPIENTS                  SIZE  ATTEMPTS  NEXT TRY (UTC)\n"
    "a1a1a1a1a1a1a1a1a1a1  <>                         "
    "1 (1 failed)                512   0         -\n"
    "b0b0b0b0b0b0b0b0b0b0  alice@finance.amanat.test  "
    "3 (2 pending, 1 delivered)  2048  3         "
    "2026-01-01T01:00:00Z\n";

/* GET /v1/queue/<id> (ms_env_json: states as words, "address"). */
static const char show_fixture[] =
    "{\"id\":\"b0b0b0b0b0b0b0b0b0b0\",\"sender\":\"alice@f.test\","
    "\"created\":1767225600,\"next_try\":1767229200,\"attempts\":2,"
    "\"size\":2048,\"rcpts\":[{\"address\":\"x@remote.example\","
    "\"local\":false,\"state\":\"pending\",\"status\":\"4.4.4 no route "
    "to domain\"},{\"address\":\"bob@f.test\",\"local\":true,"
    "\"state\":\"delivered\",\"status\":\"2.0.0 delivered\"}],"
    "\"auth\":\"alice@f.test\"}";

static const char show_text[] =
    "id:         b0b0b0b0b0b0b0b0b0b0\n"
    "sender:     alice@f.test\n"
    "auth:       alice@f.test\n"
    "created:    2026-01-01T00:00:00Z\n"
    "next try:   2026-01-01T01:00:00Z\n"
    "attempts:   2\n"
    "size:       2048\n"
    "recipients: 2 (1 pending, 1 delivered)\n"
    "\n"
    "RECIPIENT         LOCAL  STATE      LAST STATUS\n"
    "x@remote.example  no     pending    4.4.4 no route to domain\n"
    "bob@f.test        yes    delivered  2.0.0 delivered\n";

static json_t *
load(const char *text)
{
	json_error_t	 e;
	json_t		*v = json_loads(text, JSON_DECODE_ANY, &e);

	if (v == NULL)
		fail_msg("fixture: %s at %d", e.text, e.position);
	return v;
}

/* Render v with fmt; returns the text (b must be freed). */
static const char *
render(struct buf *b, int (*fmt)(struct buf *, const json_t *),
    const char *text)
{
	json_t	*v = load(text);

	buf_init(b, 1 << 20);
	assert_int_equal(fmt(b, v), 0);
	json_decref(v);
	assert_int_equal(buf_putc(b, '\0'), 0);
	return (const char *)b->data;
}

/* ------------------------------------------------------------ arguments */

static void
test_cli_mail__args_queue(void **state)
{
	struct cli_cmd	c;
	int		rc;

	PARSE(&c, "mail", "queue", "list");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_MAIL_QUEUE_LIST);
	assert_string_equal(c.group, "mail");
	assert_null(c.arg);

	PARSE(&c, "--json", "mail", "queue", "show", "0123456789abcdef0123");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_MAIL_QUEUE_SHOW);
	assert_string_equal(c.arg, "0123456789abcdef0123");
	assert_int_equal(c.json, 1);

	PARSE(&c, "mail", "queue", "retry", "ID1", "--json");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_MAIL_QUEUE_RETRY);
	assert_string_equal(c.arg, "ID1");
	assert_int_equal(c.json, 1);

	PARSE(&c, "--cert", "f.pem", "--key", "f.key", "mail", "queue",
	    "delete", "ID2");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_MAIL_QUEUE_DELETE);
	assert_string_equal(c.arg, "ID2");
	assert_string_equal(c.cert, "f.pem");

	PARSE(&c, "mail", "queue", "list", "extra");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "mail queue list: unexpected "
	    "argument 'extra'"));
	PARSE(&c, "mail", "queue", "show");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "mail queue show: missing ID"));
	PARSE(&c, "mail", "queue", "show", "");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "empty ID"));
	PARSE(&c, "mail", "queue", "retry", "x", "--dept", "d");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "unknown option"));
}

static void
test_cli_mail__args_mailboxes(void **state)
{
	struct cli_cmd	c;
	int		rc;

	PARSE(&c, "mail", "mailboxes", "alice@finance.amanat.test");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_MAIL_MAILBOXES);
	assert_string_equal(c.arg, "alice@finance.amanat.test");
	assert_null(c.arg2);

	PARSE(&c, "mail", "messages", "a@b.test", "Sent Items/2024");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_MAIL_MESSAGES);
	assert_string_equal(c.arg, "a@b.test");
	assert_string_equal(c.arg2, "Sent Items/2024");

	/* a mailbox that looks like an option, after "--" */
	PARSE(&c, "mail", "messages", "--json", "a@b.test", "--", "-odd");
	assert_int_equal(rc, 0);
	assert_string_equal(c.arg2, "-odd");
	assert_int_equal(c.json, 1);

	PARSE(&c, "mail", "messages", "a@b.test");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "mail messages: missing MAILBOX"));
	PARSE(&c, "mail", "messages");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "missing ADDRESS MAILBOX"));
	PARSE(&c, "mail", "messages", "a@b.test", "");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "empty MAILBOX"));
	PARSE(&c, "mail", "messages", "", "INBOX");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "empty ADDRESS"));
	PARSE(&c, "mail", "messages", "a@b.test", "INBOX", "more");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "unexpected argument 'more'"));
	PARSE(&c, "mail", "mailboxes", "a@b.test", "INBOX");
	assert_int_equal(rc, ERR_INVAL);
}

static void
test_cli_mail__args_group(void **state)
{
	struct cli_cmd	c;
	int		rc;

	PARSE(&c, "mail");
	assert_int_equal(rc, ERR_INVAL);
	assert_string_equal(c.group, "mail");
	assert_non_null(strstr(err_msg(), "missing subcommand"));
	PARSE(&c, "mail", "queue");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "missing subcommand"));
	PARSE(&c, "mail", "queue", "flush");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "unknown subcommand"));
	PARSE(&c, "mail", "list");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "unknown subcommand"));
	/* "queue" alone is not a command word of its own */
	PARSE(&c, "mail", "queuelist");
	assert_int_equal(rc, ERR_INVAL);

	PARSE(&c, "mail", "--help");
	assert_int_equal(rc, 0);
	assert_int_equal(c.help, 1);
	PARSE(&c, "mail", "queue", "--help");
	assert_int_equal(rc, 0);
	assert_int_equal(c.help, 1);
	PARSE(&c, "mail", "queue", "show", "--help");
	assert_int_equal(rc, 0);
	assert_int_equal(c.help, 1);

	/* other groups keep their two-word commands */
	PARSE(&c, "user", "show", "a@b.test");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_USER_SHOW);
	assert_null(c.arg2);
}

/* ------------------------------------------------------------ targets */

static void
test_cli_mail__targets(void **state)
{
	char	t[CLI_PATH_MAX], small[32], longname[3000];
	int	rc;

	assert_int_equal(cli_mail_target(t, sizeof(t), "alice@finance.test",
	    NULL), 0);
	assert_string_equal(t, "/v1/mailboxes/alice%40finance.test");
	assert_int_equal(cli_mail_target(t, sizeof(t), "alice@finance.test",
	    "INBOX"), 0);
	assert_string_equal(t, "/v1/mailboxes/alice%40finance.test/INBOX");
	assert_int_equal(cli_mail_target(t, sizeof(t), "a@b.test",
	    "Sent Items/2024"), 0);
	assert_string_equal(t, "/v1/mailboxes/a%40b.test/Sent%20Items%2F2024");
	/* "?", "#", "%" and UTF-8 stay inside the segment */
	assert_int_equal(cli_mail_target(t, sizeof(t), "a@b.test",
	    "r\xc3\xa9" "f?x#1%"), 0);
	assert_string_equal(t, "/v1/mailboxes/a%40b.test/r%C3%A9f%3Fx%231%25");
	assert_int_equal(cli_target(t, sizeof(t), "/v1/queue/", "../x",
	    "/retry"), 0);
	assert_string_equal(t, "/v1/queue/..%2Fx/retry");

	rc = cli_mail_target(small, sizeof(small), "a@b.test",
	    "a mailbox name too long");
	assert_int_equal(rc, ERR_TOOBIG);
	assert_string_equal(small, "");
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(cli_mail_target(t, sizeof(t), "a@b.test", longname),
	    ERR_TOOBIG);
	assert_int_equal(cli_mail_target(t, sizeof(t), longname, NULL),
	    ERR_TOOBIG);
}

/* ------------------------------------------------------------ states, flags */

static void
test_cli_mail__states(void **state)
{
	json_t	*r;
	char	 s[128];

	r = load("[{\"state\":0},{\"state\":\"pending\"},{\"state\":1},"
	    "{\"state\":\"delivered\"},{\"state\":2},{\"state\":\"failed\"},"
	    "{\"state\":7},{\"state\":\"gone\"},{}]");
	assert_string_equal(cli_mail_rcpt_state(json_array_get(r, 0)),
	    "pending");
	assert_string_equal(cli_mail_rcpt_state(json_array_get(r, 1)),
	    "pending");
	assert_string_equal(cli_mail_rcpt_state(json_array_get(r, 2)),
	    "delivered");
	assert_string_equal(cli_mail_rcpt_state(json_array_get(r, 3)),
	    "delivered");
	assert_string_equal(cli_mail_rcpt_state(json_array_get(r, 4)),
	    "failed");
	assert_string_equal(cli_mail_rcpt_state(json_array_get(r, 5)),
	    "failed");
	assert_string_equal(cli_mail_rcpt_state(json_array_get(r, 6)), "?");
	assert_string_equal(cli_mail_rcpt_state(json_array_get(r, 7)), "?");
	assert_string_equal(cli_mail_rcpt_state(json_array_get(r, 8)), "?");

	cli_mail_rcpts_summary(s, sizeof(s), r);
	assert_string_equal(s, "9 (2 pending, 2 delivered, 2 failed, "
	    "3 unknown)");
	json_decref(r);

	r = json_array();
	cli_mail_rcpts_summary(s, sizeof(s), r);
	assert_string_equal(s, "0");
	cli_mail_rcpts_summary(s, sizeof(s), NULL);
	assert_string_equal(s, "0");
	json_decref(r);
	/* a small buffer truncates, never overflows */
	r = load("[{\"state\":0},{\"state\":1}]");
	cli_mail_rcpts_summary(s, 8, r);
	assert_string_equal(s, "2 (1 pe");
	json_decref(r);
}

static void
test_cli_mail__flags(void **state)
{
	char	f[128];

	cli_mail_flags(f, sizeof(f), 0);
	assert_string_equal(f, "");
	cli_mail_flags(f, sizeof(f), 0x01);
	assert_string_equal(f, "\\Seen");
	cli_mail_flags(f, sizeof(f), 0x01 | 0x04);
	assert_string_equal(f, "\\Seen \\Flagged");
	cli_mail_flags(f, sizeof(f), 0x1f);
	assert_string_equal(f, "\\Seen \\Answered \\Flagged \\Deleted "
	    "\\Draft");
	cli_mail_flags(f, sizeof(f), 0x100 | 0x10);	/* unknown bits */
	assert_string_equal(f, "\\Draft");
	cli_mail_flags(f, 6, 0x03);
	assert_string_equal(f, "\\Seen");
}

/* ------------------------------------------------------------ renderings */

static void
test_cli_mail__queue_table(void **state)
{
	struct buf	 b;
	const char	*out;

	out = render(&b, cli_mail_queue_format, queue_fixture);
	assert_string_equal(out, queue_table);
	buf_free(&b);

	out = render(&b, cli_mail_queue_format, "[]");
	assert_string_equal(out, "the queue is empty\n");
	buf_free(&b);
}

static void
test_cli_mail__queue_sanitized(void **state)
{
	struct buf	 b;
	const char	*out;

	/* an ESC in a sender never reaches the terminal */
	out = render(&b, cli_mail_queue_format, "[{\"id\":\"c\",\"sender\":"
	    "\"a\\u001b]0;x\\u0007@b\",\"created\":1,\"rcpts\":[]}]");
	assert_null(strchr(out, 0x1b));
	assert_null(strchr(out, 0x07));
	assert_non_null(strstr(out, "a?]0;x?@b"));
	buf_free(&b);
}

static void
test_cli_mail__show(void **state)
{
	struct buf	 b;
	const char	*out;

	out = render(&b, cli_mail_show_format, show_fixture);
	assert_string_equal(out, show_text);
	buf_free(&b);

	/* the list's record form shows too (addr, numeric state) */
	out = render(&b, cli_mail_show_format, "{\"id\":\"a\",\"sender\":\"\","
	    "\"rcpts\":[{\"addr\":\"z@y.test\",\"local\":false,\"state\":2,"
	    "\"status\":\"5.1.1 no\"}]}");
	assert_non_null(strstr(out, "sender:     <>\n"));
	assert_non_null(strstr(out, "auth:       -\n"));
	assert_non_null(strstr(out, "z@y.test   no     failed  5.1.1 no\n"));
	buf_free(&b);
}

static void
test_cli_mail__mailboxes_messages(void **state)
{
	struct buf	 b;
	const char	*out;

	out = render(&b, cli_mail_mailboxes_format, "{\"address\":\"a@b\","
	    "\"mailboxes\":[{\"name\":\"INBOX\",\"messages\":1,\"unseen\":1,"
	    "\"size\":1234},{\"name\":\"Sent Items/2024\",\"messages\":0,"
	    "\"unseen\":0,\"size\":0}]}");
	assert_string_equal(out,
	    "MAILBOX          MESSAGES  UNSEEN  SIZE\n"
	    "INBOX            1         1       1234\n"
	    "Sent Items/2024  0         0       0\n");
	buf_free(&b);

	out = render(&b, cli_mail_messages_format, "{\"address\":\"a@b\","
	    "\"mailbox\":\"INBOX\",\"messages\":[{\"uid\":1,\"flags\":0,"
	    "\"internaldate\":1767225600,\"size\":812},{\"uid\":7,"
	    "\"flags\":5,\"internaldate\":1767229200,\"size\":90}]}");
	assert_string_equal(out,
	    "UID  FLAGS           DATE (UTC)            SIZE\n"
	    "1    -               2026-01-01T00:00:00Z  812\n"
	    "7    \\Seen \\Flagged  2026-01-01T01:00:00Z  90\n");
	buf_free(&b);

	out = render(&b, cli_mail_messages_format, "{\"messages\":[]}");
	assert_string_equal(out, "no messages\n");
	buf_free(&b);
	out = render(&b, cli_mail_mailboxes_format, "{\"mailboxes\":[]}");
	assert_string_equal(out, "no mailboxes\n");
	buf_free(&b);
}

static void
test_cli_mail__bad_shapes(void **state)
{
	static const char *const bad[] = { "{}", "{\"messages\":{}}", "[]",
	    "\"x\"" };
	struct buf	 b;
	json_t		*v;
	size_t		 i;

	buf_init(&b, 1 << 20);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = load(bad[i]);
		assert_int_equal(cli_mail_mailboxes_format(&b, v), ERR_PROTO);
		assert_int_equal(cli_mail_messages_format(&b, v), ERR_PROTO);
		assert_int_equal(cli_mail_show_format(&b, v), ERR_PROTO);
		json_decref(v);
	}
	v = load("{\"queue\":[]}");
	assert_int_equal(cli_mail_queue_format(&b, v), ERR_PROTO);
	json_decref(v);
	v = load("[{\"id\":\"a\"},3]");
	assert_int_equal(cli_mail_queue_format(&b, v), ERR_PROTO);
	json_decref(v);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli_mail__args_queue),
		cmocka_unit_test(test_cli_mail__args_mailboxes),
		cmocka_unit_test(test_cli_mail__args_group),
		cmocka_unit_test(test_cli_mail__targets),
		cmocka_unit_test(test_cli_mail__states),
		cmocka_unit_test(test_cli_mail__flags),
		cmocka_unit_test(test_cli_mail__queue_table),
		cmocka_unit_test(test_cli_mail__queue_sanitized),
		cmocka_unit_test(test_cli_mail__show),
		cmocka_unit_test(test_cli_mail__mailboxes_messages),
		cmocka_unit_test(test_cli_mail__bad_shapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
