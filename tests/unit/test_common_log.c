/*
 * test_common_log.c -- unit tests for log_escape() and level parsing.
 *
 * Purpose: peer data must come out of log_escape() as one printable line:
 * control bytes as \xNN, quote and backslash escaped, truncation marked
 * with "..." and always NUL-terminated; level names parse both ways.
 * Runs in: the unit test binary only.
 * Failure policy: cmocka assertions.
 * SECURITY: log_escape() is what stops log injection (forged lines).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"

#define S(lit)	(lit), sizeof(lit) - 1

static void
test_common_log__escape_printable(void **state)
{
	char	out[64];

	assert_string_equal(log_escape(out, sizeof(out), S("a b=c~!")),
	    "a b=c~!");
	assert_string_equal(log_escape(out, sizeof(out), "", 0), "");
}

static void
test_common_log__escape_control(void **state)
{
	char	out[64];

	assert_string_equal(log_escape(out, sizeof(out),
	    S("a\r\nb\tc\x01\x1f")), "a\\x0d\\x0ab\\x09c\\x01\\x1f");
	/* a forged log line stays on one line */
	log_escape(out, sizeof(out), S("x\n2024 amanat[1] info: forged"));
	assert_null(strchr(out, '\n'));
	/* NUL, DEL and high bytes */
	assert_string_equal(log_escape(out, sizeof(out), S("\0\x7f\x80\xff")),
	    "\\x00\\x7f\\x80\\xff");
}

static void
test_common_log__escape_quote_backslash(void **state)
{
	char	out[64];

	assert_string_equal(log_escape(out, sizeof(out), S("say \"hi\"")),
	    "say \\\"hi\\\"");
	assert_string_equal(log_escape(out, sizeof(out), S("a\\b")),
	    "a\\\\b");
}

static void
test_common_log__escape_truncate(void **state)
{
	char	out[16], big[200];
	size_t	i;

	memset(big, 'z', sizeof(big));
	log_escape(out, sizeof(out), big, sizeof(big));
	assert_true(strlen(out) < sizeof(out));
	assert_true(strlen(out) > 3);
	assert_string_equal(out + strlen(out) - 3, "...");
	for (i = 0; i < strlen(out) - 3; i++)
		assert_int_equal(out[i], 'z');

	/* an escape is never cut in half */
	memset(big, '\n', sizeof(big));
	log_escape(out, sizeof(out), big, sizeof(big));
	assert_true(strlen(out) < sizeof(out));
	assert_string_equal(out + strlen(out) - 3, "...");
	assert_int_equal((strlen(out) - 3) % 4, 0);

	/* tiny destinations stay NUL-terminated */
	out[0] = 'q';
	log_escape(out, 1, S("abc"));
	assert_string_equal(out, "");
	out[0] = 'q';
	assert_true(log_escape(out, 0, S("abc")) == out);
	assert_int_equal(out[0], 'q');
}

static void
test_common_log__level_parse(void **state)
{
	int	lvl = -42;

	assert_int_equal(log_level_parse("error", &lvl), 0);
	assert_int_equal(lvl, LOG_LVL_ERROR);
	assert_int_equal(log_level_parse("warn", &lvl), 0);
	assert_int_equal(lvl, LOG_LVL_WARN);
	assert_int_equal(log_level_parse("info", &lvl), 0);
	assert_int_equal(lvl, LOG_LVL_INFO);
	assert_int_equal(log_level_parse("DEBUG", &lvl), 0);
	assert_int_equal(lvl, LOG_LVL_DEBUG);
	assert_int_equal(log_level_parse("Trace", &lvl), 0);
	assert_int_equal(lvl, LOG_LVL_TRACE);
	lvl = -42;
	assert_true(log_level_parse("verbose", &lvl) < 0);
	assert_true(log_level_parse("", &lvl) < 0);
	assert_true(log_level_parse("info ", &lvl) < 0);
	assert_int_equal(lvl, -42);
}

static void
test_common_log__setlevel(void **state)
{
	int	old = log_getlevel();

	log_setlevel(LOG_LVL_DEBUG);
	assert_int_equal(log_getlevel(), LOG_LVL_DEBUG);
	log_setlevel(old);
	assert_int_equal(log_getlevel(), old);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_common_log__escape_printable),
		cmocka_unit_test(test_common_log__escape_control),
		cmocka_unit_test(test_common_log__escape_quote_backslash),
		cmocka_unit_test(test_common_log__escape_truncate),
		cmocka_unit_test(test_common_log__level_parse),
		cmocka_unit_test(test_common_log__setlevel),
	};
	int	rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
