/*
 * test_common_base64.c -- unit tests for common/base64.
 *
 * Purpose: RFC 4648 section 10 test vectors both ways; strict decoding
 * (length, characters, padding only at the end, NUL inside) refused with
 * ERR_INVAL; the caller's bound at max and max+1 (ERR_TOOBIG, checked
 * before decoding); the character values of both alphabets, the MIME one
 * and IMAP's modified UTF-7 one (',' for '/').
 * Runs in: the unit test binary only.
 * Failure policy: cmocka assertions.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/base64.h"
#include "common/err.h"

static const struct {
	const char	*plain;
	const char	*b64;
} vectors[] = {		/* RFC 4648, section 10 */
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

static void
test_common_base64__vectors(void **state)
{
	unsigned char	*out;
	char		*enc;
	size_t		 i, len;

	(void)state;
	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		enc = b64_encode(vectors[i].plain, strlen(vectors[i].plain));
		assert_string_equal(enc, vectors[i].b64);
		free(enc);
		assert_int_equal(b64_decode(&out, &len, vectors[i].b64,
		    strlen(vectors[i].b64), 100), 0);
		assert_int_equal(len, strlen(vectors[i].plain));
		assert_memory_equal(out, vectors[i].plain, len);
		assert_int_equal(out[len], '\0');
		free(out);
	}
}

static void
test_common_base64__strict(void **state)
{
	static const char	*bad[] = {
		"Zm9",		/* length */
		"Zm9v\n",	/* whitespace */
		"Zm=v",		/* padding inside */
		"Z===",		/* too much padding */
		"Zm9-",		/* URL-safe alphabet */
		"Zm9,",		/* modified UTF-7's */
		"Zg=A",		/* data after padding */
	};
	unsigned char		*out = (unsigned char *)"x";
	size_t			 i, len = 9;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(b64_decode(&out, &len, bad[i], strlen(bad[i]),
		    100), ERR_INVAL);
		assert_null(out);
		assert_int_equal(len, 0);
	}
	/* a NUL inside */
	assert_int_equal(b64_decode(&out, &len, "Zm\0v", 4, 100), ERR_INVAL);
}

static void
test_common_base64__bound(void **state)
{
	unsigned char	*out;
	size_t		 len;

	(void)state;
	/* "foobar": 6 bytes; max 6 takes it, max 5 does not */
	assert_int_equal(b64_decode(&out, &len, "Zm9vYmFy", 8, 6), 0);
	assert_int_equal(len, 6);
	free(out);
	assert_int_equal(b64_decode(&out, &len, "Zm9vYmFy", 8, 5), ERR_TOOBIG);
	assert_null(out);
	/* padded: "fooba" is 5 bytes */
	assert_int_equal(b64_decode(&out, &len, "Zm9vYmE=", 8, 5), 0);
	assert_int_equal(len, 5);
	free(out);
	assert_int_equal(b64_decode(&out, &len, "Zm9vYmE=", 8, 4), ERR_TOOBIG);
	/* far over the bound: refused on the length alone */
	assert_int_equal(b64_decode(&out, &len, "Zm9vYmFyZm9vYmFy", 16, 2),
	    ERR_TOOBIG);
}

static void
test_common_base64__char_value(void **state)
{
	static const char	alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned		c;
	int			i;

	(void)state;
	for (i = 0; i < 62; i++) {
		assert_int_equal(b64_char_value((unsigned char)alpha[i], '+',
		    '/'), i);
		assert_int_equal(b64_char_value((unsigned char)alpha[i], '+',
		    ','), i);
	}
	assert_int_equal(b64_char_value('+', '+', '/'), 62);
	assert_int_equal(b64_char_value('/', '+', '/'), 63);
	assert_int_equal(b64_char_value(',', '+', ','), 63);
	assert_int_equal(b64_char_value(',', '+', '/'), -1);
	assert_int_equal(b64_char_value('/', '+', ','), -1);
	/* nothing else has a value, 8-bit bytes included */
	for (c = 0; c < 256; c++) {
		if (strchr(alpha, (int)c) != NULL && c != 0)
			continue;
		if (c == '+' || c == '/')
			continue;
		assert_int_equal(b64_char_value((unsigned char)c, '+', '/'),
		    -1);
	}
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_common_base64__vectors),
		cmocka_unit_test(test_common_base64__strict),
		cmocka_unit_test(test_common_base64__bound),
		cmocka_unit_test(test_common_base64__char_value),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
