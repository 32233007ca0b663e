/*
 * test_common_db.c -- unit tests for the LMDB helpers.
 *
 * Purpose: open/close, put/get through db_write()/db_read(), map growth
 * inside one write transaction, ERR_TOOBIG at map_max, error translation
 * and db_last_rc(), abort on fn error, persistence across reopen.
 * Runs in: the unit test binary only; each test gets a mkdtemp()
 * directory that it removes.
 * Failure policy: cmocka assertions.
 * SECURITY: checks the environment's directory and files are private.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "tests/unit/testutil.h"

#define PAGE		4096
#define SMALL_MAP	(32 * PAGE)
#define MAP_MAX		(8 * 1024 * 1024)
#define VAL_SIZE	(32 * 1024)

struct kv {
	MDB_dbi		 dbi;
	const char	*key;
	const char	*val;
	size_t		 vlen;
	unsigned	 flags;	/* mdb_put flags */
	int		 calls;	/* how often fn ran */
	char		 got[64];
	size_t		 gotlen;
};

static int
setup_dir(void **state)
{
	char	tmpl[] = "/tmp/amanat-test-db.XXXXXX";

	if (mkdtemp(tmpl) == NULL)
		return -1;
	*state = xstrdup(tmpl);
	log_setlevel(LOG_LVL_INFO);
	return 0;
}

static int
teardown_dir(void **state)
{
	rm_tree(*state);
	free(*state);
	return 0;
}

static int
put_fn(MDB_txn *txn, void *arg)
{
	struct kv	*kv = arg;
	MDB_val		 k, v;
	int		 rc;

	kv->calls++;
	k.mv_data = (void *)kv->key;
	k.mv_size = strlen(kv->key);
	v.mv_data = (void *)kv->val;
	v.mv_size = kv->vlen;
	if ((rc = mdb_put(txn, kv->dbi, &k, &v, kv->flags)) != 0)
		return db_err(rc, "put");
	return 0;
}

static int
get_fn(MDB_txn *txn, void *arg)
{
	struct kv	*kv = arg;
	MDB_val		 k, v;
	int		 rc;

	k.mv_data = (void *)kv->key;
	k.mv_size = strlen(kv->key);
	if ((rc = mdb_get(txn, kv->dbi, &k, &v)) != 0)
		return db_err(rc, "get");
	kv->gotlen = v.mv_size;
	if (v.mv_size < sizeof(kv->got)) {
		memcpy(kv->got, v.mv_data, v.mv_size);
		kv->got[v.mv_size] = '\0';
	}
	return 0;
}

static int
db_put_str(struct db_env *db, MDB_dbi dbi, const char *key, const char *val)
{
	struct kv	kv;

	memset(&kv, 0, sizeof(kv));
	kv.dbi = dbi;
	kv.key = key;
	kv.val = val;
	kv.vlen = strlen(val);
	return db_write(db, put_fn, &kv);
}

static int
db_get_str(struct db_env *db, MDB_dbi dbi, const char *key, char *out,
    size_t outlen)
{
	struct kv	kv;
	int		rc;

	memset(&kv, 0, sizeof(kv));
	kv.dbi = dbi;
	kv.key = key;
	if ((rc = db_read(db, get_fn, &kv)) < 0)
		return rc;
	assert_true(kv.gotlen < outlen);
	memcpy(out, kv.got, kv.gotlen + 1);
	return 0;
}

/* Write n values of VAL_SIZE bytes, keys "k0000".., in one txn. */
struct bulk {
	MDB_dbi		 dbi;
	size_t		 n;
	char		*val;
	int		 calls;
};

static int
bulk_fn(MDB_txn *txn, void *arg)
{
	struct bulk	*b = arg;
	char		 key[32];
	MDB_val		 k, v;
	size_t		 i;
	int		 rc;

	b->calls++;
	for (i = 0; i < b->n; i++) {
		snprintf(key, sizeof(key), "k%04zu", i);
		k.mv_data = key;
		k.mv_size = strlen(key);
		v.mv_data = b->val;
		v.mv_size = VAL_SIZE;
		if ((rc = mdb_put(txn, b->dbi, &k, &v, 0)) != 0)
			return db_err(rc, "bulk put");
	}
	return 0;
}

static int
count_fn(MDB_txn *txn, void *arg)
{
	struct bulk	*b = arg;
	MDB_stat	 st;
	int		 rc;

	if ((rc = mdb_stat(txn, b->dbi, &st)) != 0)
		return db_err(rc, "stat");
	b->n = st.ms_entries;
	return 0;
}

static void
test_common_db__open_close(void **state)
{
	struct db_env	*db = NULL;
	struct stat	 st;
	char		*dir, *file;

	dir = path_join(*state, "sub/env");
	assert_int_equal(db_open(&db, dir, SMALL_MAP, MAP_MAX, 4), 0);
	assert_non_null(db);
	assert_non_null(db->env);
	assert_string_equal(db->path, dir);
	assert_true(db->map_size >= SMALL_MAP);
	assert_int_equal(db->map_max, MAP_MAX);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	file = path_join(dir, "data.mdb");
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0077, 0);
	free(file);
	db_close(&db);
	assert_null(db);
	db_close(&db);
	db_close(NULL);
	free(dir);
}

static void
test_common_db__open_fails(void **state)
{
	struct db_env	*db = (struct db_env *)1;
	char		*file;

	file = path_join(*state, "plainfile");
	assert_int_equal(file_write_atomic(file, "x", 1, 0600), 0);
	assert_true(db_open(&db, file, SMALL_MAP, MAP_MAX, 4) < 0);
	assert_null(db);
	free(file);
}

static void
test_common_db__put_get(void **state)
{
	struct db_env	*db = NULL;
	MDB_dbi		 dbi, dbi2;
	char		 got[64];

	assert_int_equal(db_open(&db, *state, SMALL_MAP, MAP_MAX, 4), 0);
	assert_int_equal(db_dbi(db, "things", 0, &dbi), 0);
	assert_int_equal(db_put_str(db, dbi, "alpha", "one"), 0);
	assert_int_equal(db_put_str(db, dbi, "beta", "two"), 0);
	assert_int_equal(db_get_str(db, dbi, "alpha", got, sizeof(got)), 0);
	assert_string_equal(got, "one");
	assert_int_equal(db_get_str(db, dbi, "beta", got, sizeof(got)), 0);
	assert_string_equal(got, "two");
	assert_int_equal(db_get_str(db, dbi, "gamma", got, sizeof(got)),
	    ERR_NOTFOUND);
	assert_int_equal(db_last_rc(), MDB_NOTFOUND);
	assert_non_null(strstr(err_msg(), "get: "));
	/* the same name opens the same database */
	assert_int_equal(db_dbi(db, "things", 0, &dbi2), 0);
	assert_int_equal(dbi, dbi2);
	db_close(&db);

	/* persisted across reopen */
	assert_int_equal(db_open(&db, *state, SMALL_MAP, MAP_MAX, 4), 0);
	assert_int_equal(db_dbi(db, "things", 0, &dbi), 0);
	assert_int_equal(db_get_str(db, dbi, "beta", got, sizeof(got)), 0);
	assert_string_equal(got, "two");
	db_close(&db);
}

static void
test_common_db__fn_error_aborts(void **state)
{
	struct db_env	*db = NULL;
	struct kv	 kv;
	MDB_dbi		 dbi;
	char		 got[64];

	assert_int_equal(db_open(&db, *state, SMALL_MAP, MAP_MAX, 4), 0);
	assert_int_equal(db_dbi(db, "t", 0, &dbi), 0);
	assert_int_equal(db_put_str(db, dbi, "k", "v1"), 0);

	/* KEYEXIST is ERR_EXISTS, and nothing is written */
	memset(&kv, 0, sizeof(kv));
	kv.dbi = dbi;
	kv.key = "k";
	kv.val = "v2";
	kv.vlen = 2;
	kv.flags = MDB_NOOVERWRITE;
	assert_int_equal(db_write(db, put_fn, &kv), ERR_EXISTS);
	assert_int_equal(kv.calls, 1);
	assert_int_equal(db_last_rc(), MDB_KEYEXIST);
	assert_int_equal(db_get_str(db, dbi, "k", got, sizeof(got)), 0);
	assert_string_equal(got, "v1");
	db_close(&db);
}

static int
put_then_fail_fn(MDB_txn *txn, void *arg)
{
	int	rc;

	if ((rc = put_fn(txn, arg)) < 0)
		return rc;
	/* an application limit, not a full map: must not retry */
	err_set(ERR_TOOBIG, "app limit");
	return ERR_TOOBIG;
}

static void
test_common_db__fn_toobig_not_retried(void **state)
{
	struct db_env	*db = NULL;
	struct kv	 kv;
	MDB_dbi		 dbi;
	char		 got[64];
	size_t		 before;

	assert_int_equal(db_open(&db, *state, SMALL_MAP, MAP_MAX, 4), 0);
	assert_int_equal(db_dbi(db, "t", 0, &dbi), 0);
	before = db->map_size;
	memset(&kv, 0, sizeof(kv));
	kv.dbi = dbi;
	kv.key = "k";
	kv.val = "v";
	kv.vlen = 1;
	assert_int_equal(db_write(db, put_then_fail_fn, &kv), ERR_TOOBIG);
	assert_int_equal(kv.calls, 1);
	assert_int_equal(db->map_size, before);
	assert_int_equal(db_get_str(db, dbi, "k", got, sizeof(got)),
	    ERR_NOTFOUND);
	db_close(&db);
}

static void
test_common_db__map_growth(void **state)
{
	struct db_env	*db = NULL;
	struct bulk	 b;
	MDB_dbi		 dbi;
	size_t		 start;

	assert_int_equal(db_open(&db, *state, SMALL_MAP, MAP_MAX, 4), 0);
	start = db->map_size;
	assert_int_equal(start, SMALL_MAP);
	assert_int_equal(db_dbi(db, "bulk", 0, &dbi), 0);

	/* 2 MiB in one transaction into a 128 KiB map */
	memset(&b, 0, sizeof(b));
	b.dbi = dbi;
	b.n = (2 * 1024 * 1024) / VAL_SIZE;
	b.val = xmalloc(VAL_SIZE);
	memset(b.val, 'v', VAL_SIZE);
	assert_int_equal(db_write(db, bulk_fn, &b), 0);
	assert_true(b.calls > 1);
	assert_true(db->map_size > start);
	assert_true(db->map_size >= 2 * 1024 * 1024);
	assert_true(db->map_size <= MAP_MAX);

	b.n = 0;
	assert_int_equal(db_read(db, count_fn, &b), 0);
	assert_int_equal(b.n, (2 * 1024 * 1024) / VAL_SIZE);
	free(b.val);
	db_close(&db);

	/* reopened with the small size, the data is still all there */
	assert_int_equal(db_open(&db, *state, SMALL_MAP, MAP_MAX, 4), 0);
	assert_true(db->map_size >= 2 * 1024 * 1024);
	assert_int_equal(db_dbi(db, "bulk", 0, &dbi), 0);
	memset(&b, 0, sizeof(b));
	b.dbi = dbi;
	assert_int_equal(db_read(db, count_fn, &b), 0);
	assert_int_equal(b.n, (2 * 1024 * 1024) / VAL_SIZE);
	db_close(&db);
}

static void
test_common_db__map_max_toobig(void **state)
{
	struct db_env	*db = NULL;
	struct bulk	 b;
	MDB_dbi		 dbi;
	char		 got[64];

	/* the cap is 256 KiB: 2 MiB cannot fit */
	assert_int_equal(db_open(&db, *state, SMALL_MAP, 2 * SMALL_MAP, 4),
	    0);
	assert_int_equal(db_dbi(db, "bulk", 0, &dbi), 0);
	memset(&b, 0, sizeof(b));
	b.dbi = dbi;
	b.n = (2 * 1024 * 1024) / VAL_SIZE;
	b.val = xmalloc(VAL_SIZE);
	memset(b.val, 'v', VAL_SIZE);
	assert_int_equal(db_write(db, bulk_fn, &b), ERR_TOOBIG);
	assert_int_equal(err_code(), ERR_TOOBIG);
	assert_non_null(strstr(err_msg(), "map_max"));
	assert_int_equal(b.calls, 2);
	assert_int_equal(db->map_size, 2 * SMALL_MAP);
	free(b.val);

	/* nothing was committed, and the env still works */
	memset(&b, 0, sizeof(b));
	b.dbi = dbi;
	assert_int_equal(db_read(db, count_fn, &b), 0);
	assert_int_equal(b.n, 0);
	assert_int_equal(db_put_str(db, dbi, "small", "ok"), 0);
	assert_int_equal(db_get_str(db, dbi, "small", got, sizeof(got)), 0);
	assert_string_equal(got, "ok");
	db_close(&db);
}

static void
test_common_db__map_max_below_size(void **state)
{
	struct db_env	*db = NULL;

	/* map_max below map_size is raised: no growth, but it opens */
	assert_int_equal(db_open(&db, *state, SMALL_MAP, PAGE, 4), 0);
	assert_int_equal(db->map_max, db->map_size);
	db_close(&db);
}

static void
test_common_db__err_translation(void **state)
{
	assert_int_equal(db_err(0, "x"), 0);
	assert_int_equal(db_last_rc(), 0);
	assert_int_equal(db_err(MDB_NOTFOUND, "lookup"), ERR_NOTFOUND);
	assert_int_equal(err_code(), ERR_NOTFOUND);
	assert_int_equal(db_last_rc(), MDB_NOTFOUND);
	assert_non_null(strstr(err_msg(), "lookup: "));
	assert_non_null(strstr(err_msg(), mdb_strerror(MDB_NOTFOUND)));
	assert_int_equal(db_err(MDB_KEYEXIST, "put"), ERR_EXISTS);
	assert_int_equal(db_last_rc(), MDB_KEYEXIST);
	assert_int_equal(db_err(MDB_MAP_FULL, "put"), ERR_TOOBIG);
	assert_int_equal(db_last_rc(), MDB_MAP_FULL);
	assert_int_equal(db_err(MDB_CORRUPTED, "get"), ERR_IO);
	assert_int_equal(db_err(MDB_READERS_FULL, "begin"), ERR_IO);
	assert_int_equal(db_err(EACCES, "open"), ERR_IO);
	assert_non_null(strstr(err_msg(), "open: "));
	assert_int_equal(db_last_rc(), EACCES);
	assert_int_equal(db_err(MDB_NOTFOUND, NULL), ERR_NOTFOUND);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_common_db__open_close,
		    setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_common_db__open_fails,
		    setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_common_db__put_get,
		    setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(
		    test_common_db__fn_error_aborts, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(
		    test_common_db__fn_toobig_not_retried, setup_dir,
		    teardown_dir),
		cmocka_unit_test_setup_teardown(test_common_db__map_growth,
		    setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(
		    test_common_db__map_max_toobig, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(
		    test_common_db__map_max_below_size, setup_dir,
		    teardown_dir),
		cmocka_unit_test(test_common_db__err_translation),
	};
	int	rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
