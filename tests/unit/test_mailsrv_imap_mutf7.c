/*
 * test_mailsrv_imap_mutf7.c -- unit tests for mailsrv/imap/imap_mutf7
 * (modified UTF-7 mailbox names, LIST pattern matching).
 *
 * Runs in: the unit test runner (cmocka).
 * Failure policy: assertions abort the case.
 * SECURITY: covers every rejection of non-canonical or malformed names
 * (each wire name must denote exactly one mailbox), invalid UTF-8, and a
 * pathological LIST pattern against a long name in bounded time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/xmalloc.h"
#include "mailsrv/imap/imap_mutf7.h"

/* utf8 <-> mutf7 both ways, exactly. */
static void
both_ways(const char *utf8, const char *mutf7)
{
	char	*out = NULL;

	assert_int_equal(imap_utf8_to_mutf7(&out, utf8, strlen(utf8)), 0);
	assert_string_equal(out, mutf7);
	free(out);
	out = NULL;
	assert_int_equal(imap_mutf7_to_utf8(&out, mutf7, strlen(mutf7)), 0);
	assert_string_equal(out, utf8);
	free(out);
}

static void
bad_mutf7(const char *in, size_t len)
{
	char	*out = (char *)0x1;

	assert_int_equal(imap_mutf7_to_utf8(&out, in, len), ERR_PROTO);
	assert_ptr_equal(out, (char *)0x1);	/* untouched */
	assert_non_null(strstr(err_msg(), "modified UTF-7"));
}

static void
bad_utf8(const char *in, size_t len)
{
	char	*out = (char *)0x1;

	assert_int_equal(imap_utf8_to_mutf7(&out, in, len), ERR_PROTO);
	assert_ptr_equal(out, (char *)0x1);
}

static void
test_mailsrv_imap_mutf7__ascii(void **state)
{
	(void)state;
	both_ways("", "");
	both_ways("INBOX", "INBOX");
	both_ways("Sent Items/2024", "Sent Items/2024");
	both_ways("~peter/mail/x-y_z.{1}", "~peter/mail/x-y_z.{1}");
	both_ways("&", "&-");
	both_ways("a&b&&", "a&-b&-&-");
	both_ways(" !\"#$%'()*+,-./:;<=>?@[\\]^_`{|}~",
	    " !\"#$%'()*+,-./:;<=>?@[\\]^_`{|}~");
}

static void
test_mailsrv_imap_mutf7__rfc_example(void **state)
{
	(void)state;
	/* RFC 3501 5.1.3: "~peter/mail/台北/日本語" */
	both_ways("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/"
	    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	    "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	/* RFC 2060's example: "Entwürfe" */
	both_ways("Entw\xc3\xbcrfe", "Entw&APw-rfe");
}

static void
test_mailsrv_imap_mutf7__scripts(void **state)
{
	char	*a = NULL, *b = NULL;
	size_t	 i;
	static const char *const names[] = {
		("\xd0\x9e\xd1\x82\xd0\xbf\xd1\x80\xd0\xb0\xd0\xb2\xd0\xbb"
		"\xd0\xb5\xd0\xbd\xd0\xbd\xd1\x8b\xd0\xb5"),	/* Отправленные */
		"\xd8\xa7\xd9\x84\xd8\xa8\xd8\xb1\xd9\x8a\xd8\xaf",
		"\xe9\x83\xb5\xe4\xbb\xb6/\xe5\xb7\xb2\xe5\x8f\x91\xe9\x80\x81",
		"\xf0\x9f\x93\xa7 mail \xf0\x9f\x98\x80\xf0\x9f\x98\x80",
		"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",	/* U+10000, U+10FFFF */
		"caf\xc3\xa9&th\xc3\xa9",
		"\x01\x7f\x1f ctl",			/* encoded controls */
		"\xef\xbf\xbf\xee\x80\x80",		/* U+FFFF, U+E000 */
	};

	(void)state;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_int_equal(imap_utf8_to_mutf7(&a, names[i],
		    strlen(names[i])), 0);
		/* only printable ASCII on the wire */
		for (const char *p = a; *p != '\0'; p++)
			assert_true(*p >= 0x20 && *p <= 0x7e);
		assert_int_equal(imap_mutf7_to_utf8(&b, a, strlen(a)), 0);
		assert_string_equal(b, names[i]);
		FREE_AND_NULL(a);
		FREE_AND_NULL(b);
	}
	/* known encodings */
	both_ways("\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",
	    "&BB8EQAQ4BDIENQRC-");			/* Привет */
	both_ways("\xf0\x9f\x93\xa7", "&2D3c5w-");	/* U+1F4E7 */
	both_ways("\xc3\xa9&", "&AOk-&-");
	both_ways("\xc3\xa9\xc3\xa9", "&AOkA6Q-");
}

/* Every 1..3 code point string of a mixed alphabet round-trips. */
static void
test_mailsrv_imap_mutf7__exhaustive_small(void **state)
{
	static const char *const cps[] = {
		"a", "&", "-", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80",
		"\x01", "/", ",", "+",
	};
	const size_t	n = sizeof(cps) / sizeof(cps[0]);
	char		in[64], *a = NULL, *b = NULL;
	size_t		i, j, k;

	(void)state;
	for (i = 0; i < n; i++)
		for (j = 0; j <= n; j++)
			for (k = 0; k <= n; k++) {
				snprintf(in, sizeof(in), "%s%s%s", cps[i],
				    j < n ? cps[j] : "", k < n ? cps[k] : "");
				assert_int_equal(imap_utf8_to_mutf7(&a, in,
				    strlen(in)), 0);
				assert_int_equal(imap_mutf7_to_utf8(&b, a,
				    strlen(a)), 0);
				assert_string_equal(b, in);
				FREE_AND_NULL(a);
				FREE_AND_NULL(b);
			}
}

static void
test_mailsrv_imap_mutf7__invalid_mutf7(void **state)
{
	(void)state;
	bad_mutf7("&", 1);			/* unterminated */
	bad_mutf7("abc&AOk", 7);
	bad_mutf7("&AOk-&", 6);
	bad_mutf7("&AGE-", 5);			/* "a", printable ASCII */
	bad_mutf7("&ACY-", 5);			/* "&" must be "&-" */
	bad_mutf7("&ACA-", 5);			/* space */
	bad_mutf7("&AH4-", 5);			/* '~' */
	bad_mutf7("&AOl-", 5);			/* padding bits not zero */
	bad_mutf7("&AOkA-", 6);			/* a dangling sextet */
	bad_mutf7("&AA-", 4);			/* no whole unit */
	bad_mutf7("&AOk=-", 6);			/* '=' is not modified b64 */
	bad_mutf7("&AO/-", 5);			/* '/' is ',' here */
	bad_mutf7("&AOk-&AOk-", 10);		/* must be one run */
	bad_mutf7("&AAA-", 5);			/* U+0000 */
	bad_mutf7("&2D0-", 5);			/* lone high surrogate */
	bad_mutf7("&3gA-", 5);			/* lone low surrogate */
	bad_mutf7("&2D0AYQ-", 8);		/* high + non-low */
	bad_mutf7("&2D3c5w-&3gA-", 13);		/* low in its own run */
	bad_mutf7("caf\xc3\xa9", 5);		/* 8-bit bytes */
	bad_mutf7("a\tb", 3);			/* control */
	bad_mutf7("a\x7f", 2);
	bad_mutf7("a\0b", 3);			/* NUL inside len */
}

static void
test_mailsrv_imap_mutf7__invalid_utf8(void **state)
{
	(void)state;
	bad_utf8("\x80", 1);			/* lone continuation */
	bad_utf8("\xc3", 1);			/* truncated */
	bad_utf8("ab\xe6\x97", 4);
	bad_utf8("\xf0\x9f\x98", 3);
	bad_utf8("\xc0\xaf", 2);		/* overlong '/' */
	bad_utf8("\xc1\xbf", 2);
	bad_utf8("\xe0\x80\xaf", 3);
	bad_utf8("\xf0\x80\x80\xaf", 4);
	bad_utf8("\xed\xa0\x80", 3);		/* U+D800 */
	bad_utf8("\xed\xbf\xbf", 3);		/* U+DFFF */
	bad_utf8("\xf4\x90\x80\x80", 4);	/* U+110000 */
	bad_utf8("\xf5\x80\x80\x80", 4);
	bad_utf8("\xff", 1);
	bad_utf8("\xc3\x28", 2);		/* bad continuation */
	bad_utf8("a\0b", 3);			/* U+0000 */
}

static void
test_mailsrv_imap_mutf7__list_basic(void **state)
{
	(void)state;
	assert_true(imap_list_match("*", "", '/'));
	assert_true(imap_list_match("*", "a/b/c", '/'));
	assert_true(imap_list_match("%", "abc", '/'));
	assert_false(imap_list_match("%", "a/b", '/'));
	assert_true(imap_list_match("%/%", "a/b", '/'));
	assert_false(imap_list_match("%/%", "a/b/c", '/'));
	assert_true(imap_list_match("a/*", "a/b/c", '/'));
	assert_true(imap_list_match("a/%", "a/b", '/'));
	assert_false(imap_list_match("a/%", "a/b/c", '/'));
	assert_true(imap_list_match("a/%", "a/", '/'));
	assert_true(imap_list_match("a%", "a", '/'));
	assert_true(imap_list_match("a%c", "abbbc", '/'));
	assert_false(imap_list_match("a%c", "ab/bc", '/'));
	assert_true(imap_list_match("a*c", "ab/bc", '/'));
	assert_true(imap_list_match("*a%", "a/ba", '/'));	/* '*' redo */
	assert_true(imap_list_match("%*", "x/y", '/'));
	assert_true(imap_list_match("*%x", "a/b/cx", '/'));
	assert_false(imap_list_match("%x", "a/x", '/'));
	assert_true(imap_list_match("abc", "abc", '/'));
	assert_false(imap_list_match("abc", "abcd", '/'));
	assert_false(imap_list_match("abcd", "abc", '/'));
	assert_false(imap_list_match("ABC", "abc", '/'));	/* exact */
	assert_false(imap_list_match("", "a", '/'));
	assert_true(imap_list_match("", "", '/'));
	/* another separator; and none (NIL): '%' is '*' */
	assert_true(imap_list_match("a.%", "a.b", '.'));
	assert_false(imap_list_match("a.%", "a.b.c", '.'));
	assert_true(imap_list_match("a.%", "a.b/c", '.'));
	assert_true(imap_list_match("%", "a.b/c", '\0'));
	/* names are mutf7: '&' is an ordinary byte */
	assert_true(imap_list_match("&U,BTFw-/%", "&U,BTFw-/&ZeVnLIqe-",
	    '/'));
	assert_false(imap_list_match("%", "&U,BTFw-/&ZeVnLIqe-", '/'));
}

static void
test_mailsrv_imap_mutf7__list_inbox(void **state)
{
	(void)state;
	assert_true(imap_list_match("INBOX", "INBOX", '/'));
	assert_true(imap_list_match("inbox", "INBOX", '/'));
	assert_true(imap_list_match("InBoX", "INBOX", '/'));
	assert_true(imap_list_match("inbox/%", "INBOX/Sub", '/'));
	assert_true(imap_list_match("inbox/*", "INBOX/a/b", '/'));
	assert_true(imap_list_match("INBOX*", "INBOX", '/'));
	assert_true(imap_list_match("inbox*", "INBOX/x", '/'));
	/* only INBOX is case-insensitive, not what follows */
	assert_false(imap_list_match("inbox/sub", "INBOX/Sub", '/'));
	/* a first component that merely starts with INBOX is exact */
	assert_false(imap_list_match("inboxes", "INBOXES", '/'));
	assert_false(imap_list_match("inbox*", "INBOXES", '/'));
	assert_true(imap_list_match("INBOX*", "INBOXES", '/'));
	/* INBOX must be spelled: wildcards match bytes exactly */
	assert_false(imap_list_match("inb%", "INBOX", '/'));
	assert_true(imap_list_match("IN%", "INBOX", '/'));
	assert_false(imap_list_match("x/inbox", "x/INBOX", '/'));
	assert_false(imap_list_match("inbox", "INBOX/x", '/'));
}

/* "*a*a*...*b" against "aaaa...": exponential for naive recursion. */
static void
test_mailsrv_imap_mutf7__list_pathological(void **state)
{
	char		*name, *pat;
	size_t		 nlen = 20000, i;
	clock_t		 t0;
	double		 secs;

	(void)state;
	name = xmalloc(nlen + 2);
	memset(name, 'a', nlen);
	name[nlen] = '\0';
	pat = xmalloc(64);
	snprintf(pat, 64, "*a*a*a*a*a*a*a*a*a*a*a*a*b");
	t0 = clock();
	assert_false(imap_list_match(pat, name, '/'));
	snprintf(pat, 64, "%%a%%a%%a%%a%%a%%a%%a%%a%%a%%a%%b");
	assert_false(imap_list_match(pat, name, '/'));
	snprintf(pat, 64, "*a%%a*a%%a*a%%a*a%%a*a%%b");
	assert_false(imap_list_match(pat, name, '/'));
	name[nlen] = 'b';
	name[nlen + 1] = '\0';
	snprintf(pat, 64, "*a*a*a*a*a*a*a*a*a*a*a*a*b");
	assert_true(imap_list_match(pat, name, '/'));
	/* separators every 10 bytes: '%' cannot cross them */
	for (i = 10; i < nlen; i += 11)
		name[i] = '/';
	snprintf(pat, 64, "%%a%%a%%a%%a%%b");
	assert_false(imap_list_match(pat, name, '/'));
	snprintf(pat, 64, "*%%a%%a%%b");
	assert_true(imap_list_match(pat, name, '/'));
	secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	assert_true(secs < 1.0);
	/* a long pattern (heap states) */
	free(pat);
	pat = xmalloc(4001);
	for (i = 0; i < 4000; i += 2) {
		pat[i] = '*';
		pat[i + 1] = 'a';
	}
	pat[4000] = '\0';
	memset(name, 'a', nlen);
	name[nlen] = '\0';
	assert_true(imap_list_match(pat, name, '/'));
	name[1999] = '\0';
	assert_false(imap_list_match(pat, name, '/'));
	free(pat);
	free(name);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mailsrv_imap_mutf7__ascii),
		cmocka_unit_test(test_mailsrv_imap_mutf7__rfc_example),
		cmocka_unit_test(test_mailsrv_imap_mutf7__scripts),
		cmocka_unit_test(test_mailsrv_imap_mutf7__exhaustive_small),
		cmocka_unit_test(test_mailsrv_imap_mutf7__invalid_mutf7),
		cmocka_unit_test(test_mailsrv_imap_mutf7__invalid_utf8),
		cmocka_unit_test(test_mailsrv_imap_mutf7__list_basic),
		cmocka_unit_test(test_mailsrv_imap_mutf7__list_inbox),
		cmocka_unit_test(test_mailsrv_imap_mutf7__list_pathological),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
