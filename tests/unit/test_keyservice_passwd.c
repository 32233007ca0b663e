/*
 * test_keyservice_passwd.c -- unit tests for password hashing and login
 * throttling.
 *
 * Purpose: check passwd.h's contract: hash then verify, a wrong password
 * is ERR_PERM, limits at max and max + 1, hostile or foreign hash strings
 * are ERR_INVAL before any Argon2 work, generated passwords use the
 * alphabet only; the throttle's free failures, doubling and cap, window
 * expiry, success semantics and memory bound.
 * Runs in: the unit test binary only.
 * Failure policy: cmocka assertions.
 * SECURITY: these are the brute-force and hostile-hash defences.
 * Argon2 runs with m=1024 KiB, t=1, p=1 so the tests stay fast under ASan.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/err.h"
#include "keyservice/passwd.h"

static const struct passwd_params small = { 1024, 1, 1 };

/* A well-formed salt and digest, for hand-made hash strings. */
#define SALT_B64	"c29tZXNhbHRzb21lc2FsdA"
#define DIGEST_B64	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static uint64_t
mono_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
test_keyservice_passwd__hash_verify(void **state)
{
	char	h[PASSWD_HASH_MAX + 1];

	assert_int_equal(passwd_hash(h, sizeof(h), "correct horse", 13,
	    &small), 0);
	assert_true(strncmp(h, "$argon2id$v=19$m=", 17) == 0);
	assert_true(strncmp(h, "$argon2id$v=19$m=1024,t=1,p=1$", 30) == 0);
	assert_true(strlen(h) <= PASSWD_HASH_MAX);
	assert_int_equal(passwd_verify(h, "correct horse", 13), 0);
}

static void
test_keyservice_passwd__wrong_password(void **state)
{
	char	h[PASSWD_HASH_MAX + 1];

	assert_int_equal(passwd_hash(h, sizeof(h), "secret", 6, &small), 0);
	err_clear();
	assert_int_equal(passwd_verify(h, "Secret", 6), ERR_PERM);
	assert_int_equal(err_code(), ERR_PERM);
	assert_int_equal(passwd_verify(h, "secret!", 7), ERR_PERM);
	assert_int_equal(passwd_verify(h, "secre", 5), ERR_PERM);
	assert_int_equal(passwd_verify(h, "", 0), ERR_PERM);
}

static void
test_keyservice_passwd__salted(void **state)
{
	char	h1[PASSWD_HASH_MAX + 1], h2[PASSWD_HASH_MAX + 1];

	assert_int_equal(passwd_hash(h1, sizeof(h1), "same", 4, &small), 0);
	assert_int_equal(passwd_hash(h2, sizeof(h2), "same", 4, &small), 0);
	assert_string_not_equal(h1, h2);
	assert_int_equal(passwd_verify(h1, "same", 4), 0);
	assert_int_equal(passwd_verify(h2, "same", 4), 0);
}

static void
test_keyservice_passwd__empty_password(void **state)
{
	char	h[PASSWD_HASH_MAX + 1];

	err_clear();
	assert_int_equal(passwd_hash(h, sizeof(h), "", 0, &small), ERR_INVAL);
	assert_int_equal(err_code(), ERR_INVAL);
	assert_string_equal(h, "");
}

static void
test_keyservice_passwd__max_length(void **state)
{
	char	 h[PASSWD_HASH_MAX + 1];
	char	*pw;

	pw = malloc(PASSWD_MAX + 1);
	assert_non_null(pw);
	memset(pw, 'x', PASSWD_MAX + 1);
	assert_int_equal(passwd_hash(h, sizeof(h), pw, PASSWD_MAX, &small),
	    0);
	assert_int_equal(passwd_verify(h, pw, PASSWD_MAX), 0);
	assert_int_equal(passwd_hash(h, sizeof(h), pw, PASSWD_MAX + 1,
	    &small), ERR_INVAL);
	assert_int_equal(passwd_verify(h, pw, PASSWD_MAX + 1), ERR_INVAL);
	free(pw);
}

static void
test_keyservice_passwd__bad_params(void **state)
{
	char				h[PASSWD_HASH_MAX + 1];
	const struct passwd_params	bad[] = {
		{ 1048577, 1, 1 },	/* m above 1 GiB */
		{ 7, 1, 1 },		/* m below 8 * p */
		{ 1024, 0, 1 },
		{ 1024, 101, 1 },
		{ 1024, 1, 0 },
		{ 1024, 1, 65 },
	};
	size_t				i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(passwd_hash(h, sizeof(h), "pw", 2, &bad[i]),
		    ERR_INVAL);
	/* an output buffer too small for the PHC string */
	assert_int_equal(passwd_hash(h, 40, "pw", 2, &small), ERR_TOOBIG);
}

/* A hostile stored hash is refused by the parser: no Argon2 run. */
static void
test_keyservice_passwd__hostile_hash(void **state)
{
	const char	*hostile[] = {
		"$argon2id$v=19$m=4194304,t=1,p=1$" SALT_B64 "$" DIGEST_B64,
		"$argon2id$v=19$m=1048577,t=1,p=1$" SALT_B64 "$" DIGEST_B64,
		"$argon2id$v=19$m=1024,t=101,p=1$" SALT_B64 "$" DIGEST_B64,
		"$argon2id$v=19$m=1024,t=1000000,p=1$" SALT_B64 "$" DIGEST_B64,
		"$argon2id$v=19$m=1024,t=1,p=65$" SALT_B64 "$" DIGEST_B64,
		"$argon2id$v=19$m=99999999999,t=1,p=1$" SALT_B64 "$"
		    DIGEST_B64,
		"$argon2id$v=19$m=18446744073709551617,t=1,p=1$" SALT_B64
		    "$" DIGEST_B64,
	};
	uint64_t	 t0;
	size_t		 i;

	t0 = mono_ms();
	for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++)
		assert_int_equal(passwd_verify(hostile[i], "pw", 2),
		    ERR_INVAL);
	/* a 4 GiB Argon2 run would take seconds */
	assert_true(mono_ms() - t0 < 100);
}

#define LONG_PREFIX	"$argon2id$v=19$m=1024,t=1,p=1$" SALT_B64 "$"

static void
test_keyservice_passwd__foreign_hash(void **state)
{
	char		 longh[PASSWD_HASH_MAX + 2];
	const char	*bad[] = {
		"$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
		"$argon2i$v=19$m=1024,t=1,p=1$" SALT_B64 "$" DIGEST_B64,
		"$argon2d$v=19$m=1024,t=1,p=1$" SALT_B64 "$" DIGEST_B64,
		"$argon2id$v=16$m=1024,t=1,p=1$" SALT_B64 "$" DIGEST_B64,
		"$argon2id$m=1024,t=1,p=1$" SALT_B64 "$" DIGEST_B64,
		"$argon2id$v=19$m=01024,t=1,p=1$" SALT_B64 "$" DIGEST_B64,
		"$argon2id$v=19$m=+1024,t=1,p=1$" SALT_B64 "$" DIGEST_B64,
		"$argon2id$v=19$m=1024,p=1,t=1$" SALT_B64 "$" DIGEST_B64,
		"$argon2id$v=19$m=1024,t=1,p=1,keyid=abc$" SALT_B64 "$"
		    DIGEST_B64,
		"$argon2id$v=19$m=1024,t=1,p=1$" SALT_B64,
		"$argon2id$v=19$m=1024,t=1,p=1$" SALT_B64 "$",
		"$argon2id$v=19$m=1024,t=1,p=1$" SALT_B64 "$" DIGEST_B64 "$",
		"$argon2id$v=19$m=1024,t=1,p=1$" SALT_B64 "$" DIGEST_B64 "=",
		"$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$" DIGEST_B64,
		"$argon2id$v=19$m=1024,t=1,p=1$" SALT_B64 "$AAAAA",
		"$argon2id$v=19$m=1024,t=1,p=1$" SALT_B64 "$" DIGEST_B64 "\n",
		"",
		"password",
	};
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(passwd_verify(bad[i], "pw", 2), ERR_INVAL);
	/* one byte over PASSWD_HASH_MAX */
	memset(longh, 'A', sizeof(longh));
	memcpy(longh, LONG_PREFIX, strlen(LONG_PREFIX));
	longh[PASSWD_HASH_MAX + 1] = '\0';
	assert_int_equal(passwd_verify(longh, "pw", 2), ERR_INVAL);
	/* at PASSWD_HASH_MAX it parses, and libargon2 says mismatch */
	longh[PASSWD_HASH_MAX] = '\0';
	assert_int_equal(passwd_verify(longh, "pw", 2), ERR_PERM);
}

static void
test_keyservice_passwd__generate(void **state)
{
	const char	*alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	    "abcdefghijkmnpqrstuvwxyz23456789";
	char		 pw[200][PASSWD_GEN_LEN + 1];
	unsigned	 seen[256];
	size_t		 i, j;

	memset(seen, 0, sizeof(seen));
	for (i = 0; i < 200; i++) {
		passwd_generate(pw[i]);
		assert_int_equal(strlen(pw[i]), PASSWD_GEN_LEN);
		for (j = 0; j < PASSWD_GEN_LEN; j++) {
			assert_non_null(strchr(alphabet, pw[i][j]));
			seen[(unsigned char)pw[i][j]]++;
		}
		for (j = 0; j < i; j++)
			assert_string_not_equal(pw[i], pw[j]);
	}
	/* 4000 draws from 56 symbols: each one shows up */
	for (i = 0; alphabet[i] != '\0'; i++)
		assert_true(seen[(unsigned char)alphabet[i]] > 0);
	assert_int_equal(strlen(alphabet), 56);
}

static const struct throttle_params tparams = {
	.free_failures = 3,
	.window_ms = 60000,
	.base_delay_ms = 1000,
	.max_delay_ms = 8000,
	.max_entries = 100,
};

static void
test_keyservice_passwd__throttle_doubling(void **state)
{
	struct throttle	*t;
	uint64_t	 now = 1000000;
	const uint64_t	 want[] = { 1000, 2000, 4000, 8000, 8000, 8000 };
	size_t		 i;

	assert_non_null(t = throttle_new(&tparams));
	assert_int_equal(throttle_check(t, "alice", "10.0.0.1", now), 0);
	/* the first free_failures - 1 failures leave no delay */
	for (i = 0; i < 2; i++) {
		throttle_fail(t, "alice", "10.0.0.1", now);
		assert_int_equal(throttle_check(t, "alice", "10.0.0.1", now),
		    0);
	}
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		throttle_fail(t, "alice", "10.0.0.1", now);
		assert_int_equal(throttle_check(t, "alice", "10.0.0.1", now),
		    want[i]);
		/* the wait counts down and ends */
		assert_int_equal(throttle_check(t, "alice", "10.0.0.1",
		    now + 500), want[i] - 500);
		now += want[i];
		assert_int_equal(throttle_check(t, "alice", "10.0.0.1", now),
		    0);
	}
	/* the user's state applies from any source, and vice versa */
	throttle_fail(t, "alice", "10.0.0.1", now);
	assert_int_equal(throttle_check(t, "alice", "10.9.9.9", now), 8000);
	assert_int_equal(throttle_check(t, "bob", "10.0.0.1", now), 8000);
	assert_int_equal(throttle_check(t, NULL, "10.0.0.1", now), 8000);
	assert_int_equal(throttle_check(t, "bob", "10.9.9.9", now), 0);
	assert_int_equal(throttle_size(t), 2);
	throttle_free(&t);
	assert_null(t);
	throttle_free(&t);
}

/* A huge shift must cap, not overflow. */
static void
test_keyservice_passwd__throttle_cap_no_overflow(void **state)
{
	struct throttle_params	 p = tparams;
	struct throttle		*t;
	int			 i;

	p.free_failures = 0;
	p.base_delay_ms = 3000000000U;
	p.max_delay_ms = 3600000;
	assert_non_null(t = throttle_new(&p));
	for (i = 0; i < 200; i++) {
		throttle_fail(t, "u", NULL, 5000);
		assert_int_equal(throttle_check(t, "u", NULL, 5000), 3600000);
	}
	throttle_free(&t);
}

static void
test_keyservice_passwd__throttle_window(void **state)
{
	struct throttle	*t;
	uint64_t	 now = 50;
	int		 i;

	assert_non_null(t = throttle_new(&tparams));
	for (i = 0; i < 5; i++)
		throttle_fail(t, "alice", "10.0.0.1", now);
	assert_int_equal(throttle_check(t, "alice", "10.0.0.1", now), 4000);
	/* just before the window ends: still counted */
	throttle_fail(t, "alice", NULL, now + 59999);
	assert_int_equal(throttle_check(t, "alice", NULL, now + 59999),
	    8000);
	/* a whole window without failures: forgotten */
	now += 59999 + 60000;
	assert_int_equal(throttle_check(t, "alice", "10.0.0.1", now), 0);
	throttle_fail(t, "alice", "10.0.0.1", now);
	assert_int_equal(throttle_check(t, "alice", "10.0.0.1", now), 0);
	throttle_fail(t, "alice", "10.0.0.1", now);
	assert_int_equal(throttle_check(t, "alice", "10.0.0.1", now), 0);
	throttle_fail(t, "alice", "10.0.0.1", now);
	assert_int_equal(throttle_check(t, "alice", "10.0.0.1", now), 1000);
	throttle_free(&t);
}

static void
test_keyservice_passwd__throttle_success(void **state)
{
	struct throttle	*t;
	int		 i;

	assert_non_null(t = throttle_new(&tparams));
	for (i = 0; i < 4; i++)
		throttle_fail(t, "alice", "10.0.0.1", 100);
	assert_int_equal(throttle_check(t, "alice", "10.0.0.2", 100), 2000);
	throttle_success(t, "alice", 100);
	assert_int_equal(throttle_check(t, "alice", "10.0.0.2", 100), 0);
	/* the source keeps its count */
	assert_int_equal(throttle_check(t, "alice", "10.0.0.1", 100), 2000);
	assert_int_equal(throttle_check(t, "bob", "10.0.0.1", 100), 2000);
	/* the user starts from zero again */
	throttle_fail(t, "alice", "10.0.0.2", 100);
	assert_int_equal(throttle_check(t, "alice", "10.0.0.2", 100), 0);
	throttle_success(t, "nobody", 100);
	throttle_success(t, NULL, 100);
	throttle_free(&t);
}

/* "u:" and "s:" keys never collide: a user named like an address. */
static void
test_keyservice_passwd__throttle_prefixes(void **state)
{
	struct throttle	*t;
	int		 i;

	assert_non_null(t = throttle_new(&tparams));
	for (i = 0; i < 4; i++)
		throttle_fail(t, NULL, "10.0.0.1", 100);
	assert_int_equal(throttle_size(t), 1);
	assert_int_equal(throttle_check(t, "10.0.0.1", "10.0.0.2", 100), 0);
	throttle_free(&t);
}

static void
test_keyservice_passwd__throttle_bounded(void **state)
{
	struct throttle	*t;
	char		 user[32], src[32];
	int		 i;

	assert_non_null(t = throttle_new(&tparams));
	for (i = 0; i < 1000; i++) {
		snprintf(user, sizeof(user), "user%d", i);
		snprintf(src, sizeof(src), "10.1.%d.%d", i / 256, i % 256);
		throttle_fail(t, user, src, 1000 + (uint64_t)i);
		throttle_fail(t, user, src, 1000 + (uint64_t)i);
		throttle_fail(t, user, src, 1000 + (uint64_t)i);
		assert_true(throttle_size(t) <= tparams.max_entries);
	}
	assert_int_equal(throttle_size(t), tparams.max_entries);
	/* the most recent failures are kept, the oldest evicted */
	assert_int_equal(throttle_check(t, "user999", NULL, 1999), 1000);
	assert_int_equal(throttle_check(t, NULL, "10.1.3.231", 1999), 1000);
	assert_int_equal(throttle_check(t, "user0", NULL, 1999), 0);
	throttle_free(&t);
}

/* Names are cut at 255 bytes: longer ones share an entry. */
static void
test_keyservice_passwd__throttle_long_name(void **state)
{
	struct throttle	*t;
	char		 name[1000];
	int		 i;

	assert_non_null(t = throttle_new(&tparams));
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	for (i = 0; i < 3; i++) {
		name[900] = (char)('b' + i);	/* past the cut */
		throttle_fail(t, name, NULL, 100);
	}
	assert_int_equal(throttle_size(t), 1);
	assert_int_equal(throttle_check(t, name, NULL, 100), 1000);
	name[100] = 'z';			/* before the cut */
	assert_int_equal(throttle_check(t, name, NULL, 100), 0);
	throttle_free(&t);
}

static void
test_keyservice_passwd__throttle_bad_params(void **state)
{
	struct throttle_params	p = tparams;

	p.max_entries = 0;
	assert_null(throttle_new(&p));
	p = tparams;
	p.window_ms = 0;
	assert_null(throttle_new(&p));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keyservice_passwd__hash_verify),
		cmocka_unit_test(test_keyservice_passwd__wrong_password),
		cmocka_unit_test(test_keyservice_passwd__salted),
		cmocka_unit_test(test_keyservice_passwd__empty_password),
		cmocka_unit_test(test_keyservice_passwd__max_length),
		cmocka_unit_test(test_keyservice_passwd__bad_params),
		cmocka_unit_test(test_keyservice_passwd__hostile_hash),
		cmocka_unit_test(test_keyservice_passwd__foreign_hash),
		cmocka_unit_test(test_keyservice_passwd__generate),
		cmocka_unit_test(test_keyservice_passwd__throttle_doubling),
		cmocka_unit_test(
		    test_keyservice_passwd__throttle_cap_no_overflow),
		cmocka_unit_test(test_keyservice_passwd__throttle_window),
		cmocka_unit_test(test_keyservice_passwd__throttle_success),
		cmocka_unit_test(test_keyservice_passwd__throttle_prefixes),
		cmocka_unit_test(test_keyservice_passwd__throttle_bounded),
		cmocka_unit_test(test_keyservice_passwd__throttle_long_name),
		cmocka_unit_test(test_keyservice_passwd__throttle_bad_params),
	};
	int	rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
