/*
 * test_cli_output.c -- unit tests for the CLI's text output.
 *
 * Purpose: tables sized to their content (UTF-8 counted by code point,
 * empty cells as "-", no trailing blanks, control characters replaced),
 * value formatting (strings, numbers, booleans, arrays, times, null) and
 * the fixed time format.
 * Runs in: the unit test binary only.
 * Failure policy: cmocka assertions.
 * SECURITY: server text must not reach the terminal with control
 * characters in it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "keyservice/cli/cli.h"

static char *
format(struct cli_table *t, struct buf *b)
{
	buf_init(b, 1 << 20);
	assert_int_equal(cli_table_format(t, b), 0);
	return (char *)b->data;
}

static void
test_cli_output__table_widths(void **state)
{
	static const char *const hdr[] = { "NAME", "DOMAINS", "CREATED" };
	static const char *const r1[] = { "finance", "finance.example",
	    "2024" };
	static const char *const r2[] = { "hr", "a.example,b.example", "" };
	struct cli_table	*t = cli_table_new(3, hdr);
	struct buf		 b;

	cli_table_add(t, r1);
	cli_table_add(t, r2);
	assert_string_equal(format(t, &b),
	    "NAME     DOMAINS              CREATED\n"
	    "finance  finance.example      2024\n"
	    "hr       a.example,b.example  -\n");
	buf_free(&b);
	cli_table_free(&t);
	assert_null(t);
	cli_table_free(&t);	/* NULL-safe */
}

static void
test_cli_output__table_header_only(void **state)
{
	static const char *const hdr[] = { "SERIAL", "KIND" };
	struct cli_table	*t = cli_table_new(2, hdr);
	struct buf		 b;

	assert_string_equal(format(t, &b), "SERIAL  KIND\n");
	buf_free(&b);
	cli_table_free(&t);
}

static void
test_cli_output__table_utf8(void **state)
{
	static const char *const hdr[] = { "NAME", "X" };
	static const char *const r1[] = { "Zo\xc3\xab", "1" };	/* 3 chars */
	static const char *const r2[] = { "Bob", "2" };
	struct cli_table	*t = cli_table_new(2, hdr);
	struct buf		 b;

	cli_table_add(t, r1);
	cli_table_add(t, r2);
	assert_string_equal(format(t, &b),
	    "NAME  X\n"
	    "Zo\xc3\xab   1\n"
	    "Bob   2\n");
	buf_free(&b);
	cli_table_free(&t);
	assert_int_equal(cli_text_width("\xd9\x81\xd8\xa7"), 2);
	assert_int_equal(cli_text_width(""), 0);
}

static void
test_cli_output__table_controls(void **state)
{
	static const char *const hdr[] = { "A", "B" };
	static const char *const r1[] = { "evil\x1b[2Jname", "x\ny" };
	struct cli_table	*t = cli_table_new(2, hdr);
	struct buf		 b;

	cli_table_add(t, r1);
	assert_string_equal(format(t, &b),
	    "A             B\n"
	    "evil?[2Jname  x?y\n");
	buf_free(&b);
	cli_table_free(&t);
}

static void
test_cli_output__fmt_value(void **state)
{
	char	out[64];
	json_t	*v;

	v = json_pack("[s,s]", "user", "dept-admin");
	cli_fmt_value(out, sizeof(out), v, 0);
	assert_string_equal(out, "user,dept-admin");
	json_decref(v);

	v = json_integer(42);
	cli_fmt_value(out, sizeof(out), v, 0);
	assert_string_equal(out, "42");
	cli_fmt_value(out, sizeof(out), v, 1);
	assert_string_equal(out, "1970-01-01T00:00:42Z");
	json_decref(v);

	cli_fmt_value(out, sizeof(out), json_true(), 0);
	assert_string_equal(out, "yes");
	cli_fmt_value(out, sizeof(out), json_null(), 0);
	assert_string_equal(out, "-");
	cli_fmt_value(out, sizeof(out), NULL, 0);
	assert_string_equal(out, "-");

	v = json_string("tab\there");
	cli_fmt_value(out, sizeof(out), v, 0);
	assert_string_equal(out, "tab?here");
	json_decref(v);

	/* truncated, still terminated */
	v = json_pack("[s,s,s]", "aaaaaaaa", "bbbbbbbb", "cccccccc");
	cli_fmt_value(out, 12, v, 0);
	assert_true(strlen(out) < 12);
	assert_memory_equal(out, "aaaaaaaa,bb", strlen(out));
	json_decref(v);
}

static void
test_cli_output__fmt_time(void **state)
{
	char	out[32];

	cli_fmt_time(out, sizeof(out), 1700000000);
	assert_string_equal(out, "2023-11-14T22:13:20Z");
	cli_fmt_time(out, sizeof(out), 0);
	assert_string_equal(out, "-");
	cli_fmt_time(out, sizeof(out), -5);
	assert_string_equal(out, "-");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli_output__table_widths),
		cmocka_unit_test(test_cli_output__table_header_only),
		cmocka_unit_test(test_cli_output__table_utf8),
		cmocka_unit_test(test_cli_output__table_controls),
		cmocka_unit_test(test_cli_output__fmt_value),
		cmocka_unit_test(test_cli_output__fmt_time),
	};
	int	rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
