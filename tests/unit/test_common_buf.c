/*
 * test_common_buf.c -- unit tests for bounded byte buffers.
 *
 * Purpose: check buf.h's contract: appends up to max succeed, max + 1 is
 * ERR_TOOBIG with the buffer unchanged, the data stays NUL-terminated,
 * the capacity never exceeds max + 1; printf, consume and steal.
 * Runs in: the unit test binary only.
 * Failure policy: cmocka assertions.
 * SECURITY: the limit is what bounds peer-controlled memory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"

static void
test_common_buf__append_to_max(void **state)
{
	struct buf	b;

	buf_init(&b, 10);
	assert_int_equal(buf_append(&b, "12345", 5), 0);
	assert_int_equal(buf_append(&b, "67890", 5), 0);
	assert_int_equal(b.len, 10);
	assert_string_equal((char *)b.data, "1234567890");
	assert_true(b.cap <= b.max + 1);
	/* one more byte: refused, unchanged */
	assert_int_equal(buf_append(&b, "x", 1), ERR_TOOBIG);
	assert_int_equal(err_code(), ERR_TOOBIG);
	assert_int_equal(b.len, 10);
	assert_string_equal((char *)b.data, "1234567890");
	assert_int_equal(buf_putc(&b, 'x'), ERR_TOOBIG);
	assert_int_equal(b.len, 10);
	/* appending nothing at max is fine */
	assert_int_equal(buf_append(&b, "", 0), 0);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void
test_common_buf__max_plus_one_unchanged(void **state)
{
	struct buf	b;

	buf_init(&b, 8);
	assert_int_equal(buf_append(&b, "abc", 3), 0);
	assert_int_equal(buf_append(&b, "123456", 6), ERR_TOOBIG);
	assert_int_equal(b.len, 3);
	assert_string_equal((char *)b.data, "abc");
	/* a huge n must not wrap the size check */
	assert_int_equal(buf_append(&b, "x", SIZE_MAX), ERR_TOOBIG);
	assert_int_equal(buf_append(&b, "x", SIZE_MAX - 1), ERR_TOOBIG);
	assert_int_equal(b.len, 3);
	buf_free(&b);
}

static void
test_common_buf__cap_bounded(void **state)
{
	struct buf	b;
	size_t		max, i;

	for (max = 0; max < 300; max += 7) {
		buf_init(&b, max);
		for (i = 0; i < max; i++) {
			assert_int_equal(buf_putc(&b, 'a'), 0);
			assert_true(b.cap <= max + 1);
		}
		assert_int_equal(buf_putc(&b, 'a'), ERR_TOOBIG);
		assert_int_equal(b.len, max);
		buf_free(&b);
	}
}

static void
test_common_buf__unbounded_max(void **state)
{
	struct buf	b;
	size_t		i;

	/* max == SIZE_MAX means "no limit" and must not wrap */
	buf_init(&b, SIZE_MAX);
	for (i = 0; i < 1000; i++)
		assert_int_equal(buf_append(&b, "0123456789", 10), 0);
	assert_int_equal(b.len, 10000);
	assert_int_equal(buf_append(&b, "x", SIZE_MAX - 10000),
	    ERR_TOOBIG);
	buf_free(&b);
}

static void
test_common_buf__printf(void **state)
{
	struct buf	b;

	buf_init(&b, 16);
	assert_int_equal(buf_printf(&b, "%s=%d", "n", 42), 0);
	assert_string_equal((char *)b.data, "n=42");
	assert_int_equal(buf_printf(&b, " %s", "more"), 0);
	assert_string_equal((char *)b.data, "n=42 more");
	assert_int_equal(b.len, 9);
	/* 9 + 8 > 16: refused, unchanged */
	assert_int_equal(buf_printf(&b, "%08d", 1), ERR_TOOBIG);
	assert_int_equal(b.len, 9);
	assert_string_equal((char *)b.data, "n=42 more");
	/* exactly to max */
	assert_int_equal(buf_printf(&b, "%07d", 7), 0);
	assert_int_equal(b.len, 16);
	assert_string_equal((char *)b.data, "n=42 more0000007");
	assert_int_equal(buf_printf(&b, "%s", ""), 0);
	assert_int_equal(b.len, 16);
	buf_free(&b);
}

static void
test_common_buf__consume(void **state)
{
	struct buf	b;

	buf_init(&b, 64);
	buf_consume(&b, 5);	/* empty, no data: harmless */
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_append(&b, "hello world", 11), 0);
	buf_consume(&b, 0);
	assert_string_equal((char *)b.data, "hello world");
	buf_consume(&b, 6);
	assert_int_equal(b.len, 5);
	assert_string_equal((char *)b.data, "world");
	buf_consume(&b, 100);
	assert_int_equal(b.len, 0);
	assert_string_equal((char *)b.data, "");
	/* room is available again after consuming */
	assert_int_equal(buf_append(&b, "x", 1), 0);
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal((char *)b.data, "");
	buf_free(&b);
}

static void
test_common_buf__steal(void **state)
{
	struct buf	 b;
	char		*s;
	size_t		 len = 99;

	buf_init(&b, 64);
	assert_int_equal(buf_append(&b, "secret", 6), 0);
	s = buf_steal(&b, &len);
	assert_non_null(s);
	assert_int_equal(len, 6);
	assert_string_equal(s, "secret");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	free(s);

	/* an empty buffer yields "" (never NULL); len_out may be NULL */
	s = buf_steal(&b, NULL);
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);
	/* the buffer is reusable afterwards */
	assert_int_equal(buf_append(&b, "ab", 2), 0);
	assert_string_equal((char *)b.data, "ab");
	buf_free_secret(&b);
	assert_null(b.data);
	buf_free_secret(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_common_buf__append_to_max),
		cmocka_unit_test(test_common_buf__max_plus_one_unchanged),
		cmocka_unit_test(test_common_buf__cap_bounded),
		cmocka_unit_test(test_common_buf__unbounded_max),
		cmocka_unit_test(test_common_buf__printf),
		cmocka_unit_test(test_common_buf__consume),
		cmocka_unit_test(test_common_buf__steal),
	};
	int	rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
