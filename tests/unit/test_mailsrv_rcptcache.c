/*
 * test_mailsrv_rcptcache.c -- unit tests for mailsrv/rcptcache (directory
 * answers for RCPT TO).
 *
 * Runs in: the unit test runner (cmocka).
 * Failure policy: assertions abort the case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mailsrv/rcptcache.h"
#include "mailsrv/store/store.h"

static int
setup(void **state)
{
	rcptcache_clear();
	return 0;
}

static void
test_miss_then_hit(void **state)
{
	char	dept[RCPT_CACHE_DEPT_MAX + 1];

	assert_int_equal(rcptcache_get("bob@finance.test", dept,
	    sizeof(dept)), 0);
	rcptcache_put("bob@finance.test", RCPT_ACTIVE, "finance");
	assert_int_equal(rcptcache_get("bob@finance.test", dept,
	    sizeof(dept)), RCPT_ACTIVE);
	assert_string_equal(dept, "finance");
	/* addresses are case-insensitive */
	assert_int_equal(rcptcache_get("Bob@Finance.TEST", dept,
	    sizeof(dept)), RCPT_ACTIVE);
	assert_int_equal(rcptcache_get("carol@finance.test", NULL, 0), 0);
}

static void
test_answers_replace(void **state)
{
	rcptcache_put("eve@x.test", RCPT_UNKNOWN, NULL);
	assert_int_equal(rcptcache_get("eve@x.test", NULL, 0), RCPT_UNKNOWN);
	rcptcache_put("eve@x.test", RCPT_DISABLED, "x");
	assert_int_equal(rcptcache_get("eve@x.test", NULL, 0),
	    RCPT_DISABLED);
}

static void
test_collisions_never_answer_for_another(void **state)
{
	char	addr[64];
	int	i, hits = 0;

	/* more addresses than slots: each lookup is its own or a miss */
	for (i = 0; i < RCPT_CACHE_SLOTS * 2; i++) {
		snprintf(addr, sizeof(addr), "u%d@x.test", i);
		rcptcache_put(addr, (i % 2) ? RCPT_ACTIVE : RCPT_UNKNOWN,
		    "x");
	}
	for (i = 0; i < RCPT_CACHE_SLOTS * 2; i++) {
		int	a;

		snprintf(addr, sizeof(addr), "u%d@x.test", i);
		a = rcptcache_get(addr, NULL, 0);
		if (a != 0) {
			assert_int_equal(a, (i % 2) ? RCPT_ACTIVE :
			    RCPT_UNKNOWN);
			hits++;
		}
	}
	assert_true(hits > 0);
}

static void
test_limits(void **state)
{
	char	addr[STORE_ADDRESS_MAX + 2];
	char	dept[RCPT_CACHE_DEPT_MAX + 2];

	memset(addr, 'a', sizeof(addr) - 1);
	addr[sizeof(addr) - 1] = '\0';
	addr[10] = '@';
	rcptcache_put(addr, RCPT_ACTIVE, "d");		/* limit + 1: skipped */
	assert_int_equal(rcptcache_get(addr, NULL, 0), 0);
	addr[sizeof(addr) - 2] = '\0';			/* at the limit */
	rcptcache_put(addr, RCPT_ACTIVE, "d");
	assert_int_equal(rcptcache_get(addr, NULL, 0), RCPT_ACTIVE);

	memset(dept, 'd', sizeof(dept) - 1);
	dept[sizeof(dept) - 1] = '\0';
	rcptcache_put("z@x.test", RCPT_ACTIVE, dept);	/* limit + 1 */
	assert_int_equal(rcptcache_get("z@x.test", NULL, 0), 0);
	dept[sizeof(dept) - 2] = '\0';
	rcptcache_put("z@x.test", RCPT_ACTIVE, dept);
	assert_int_equal(rcptcache_get("z@x.test", NULL, 0), RCPT_ACTIVE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_miss_then_hit, setup),
		cmocka_unit_test_setup(test_answers_replace, setup),
		cmocka_unit_test_setup(test_collisions_never_answer_for_another,
		    setup),
		cmocka_unit_test_setup(test_limits, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
