/*
 * test_common_util.c -- unit tests for numbers, compare and file helpers.
 *
 * Purpose: parse_ll bounds and junk, ct_memeq, fd_write_all,
 * file_write_atomic (mode, no tmp file left), file_read_all,
 * file_check_secret, path_join, mkdir_p.
 * Runs in: the unit test binary only; files go to a mkdtemp() directory
 * that each test removes.
 * Failure policy: cmocka assertions.
 * SECURITY: file_check_secret must refuse group/other access.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "tests/unit/testutil.h"

static int
setup_dir(void **state)
{
	char	tmpl[] = "/tmp/amanat-test-util.XXXXXX";

	if (mkdtemp(tmpl) == NULL)
		return -1;
	*state = xstrdup(tmpl);
	return 0;
}

static int
teardown_dir(void **state)
{
	rm_tree(*state);
	free(*state);
	return 0;
}


static void
test_common_util__parse_ll_bounds(void **state)
{
	long long	v = 0;

	assert_int_equal(parse_ll(&v, "0", 0, 10), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_ll(&v, "10", 0, 10), 0);
	assert_int_equal(v, 10);
	assert_int_equal(parse_ll(&v, "-5", -5, 5), 0);
	assert_int_equal(v, -5);
	v = 77;
	assert_int_equal(parse_ll(&v, "11", 0, 10), ERR_INVAL);
	assert_int_equal(parse_ll(&v, "-1", 0, 10), ERR_INVAL);
	assert_int_equal(parse_ll(&v, "-6", -5, 5), ERR_INVAL);
	assert_int_equal(v, 77);	/* untouched on error */
	assert_int_equal(parse_ll(&v, "9223372036854775807", 0, LLONG_MAX),
	    0);
	assert_true(v == LLONG_MAX);
	assert_int_equal(parse_ll(&v, "9223372036854775808", 0, LLONG_MAX),
	    ERR_INVAL);
	assert_int_equal(parse_ll(&v, "-9223372036854775809", LLONG_MIN, 0),
	    ERR_INVAL);
}

static void
test_common_util__parse_ll_junk(void **state)
{
	static const char *const bad[] = {
		"", " 1", "1 ", "+1", "1x", "x1", "0x10", "1.5", "--1", "-",
		"1e3", "\t1", "\xd9\xa1",
	};
	long long	v = 3;
	size_t		i;

	for (i = 0; i < nitems(bad); i++) {
		assert_int_equal(parse_ll(&v, bad[i], LLONG_MIN, LLONG_MAX),
		    ERR_INVAL);
		assert_int_equal(v, 3);
	}
	assert_int_equal(parse_ll(&v, NULL, 0, 1), ERR_INVAL);
	/* leading zeros are still decimal */
	assert_int_equal(parse_ll(&v, "010", 0, 100), 0);
	assert_int_equal(v, 10);
}

static void
test_common_util__ct_memeq(void **state)
{
	assert_true(ct_memeq("abcdef", "abcdef", 6));
	assert_false(ct_memeq("abcdef", "abcdeg", 6));
	assert_false(ct_memeq("xbcdef", "abcdef", 6));
	assert_true(ct_memeq("abc", "abd", 2));
	assert_true(ct_memeq("a", "b", 0));
}

/* fd_write_all: everything through a pipe in one call; a bad fd fails. */
static void
test_common_util__fd_write_all(void **state)
{
	static char	data[200000], got[sizeof(data)];
	size_t		i, n = 0;
	ssize_t		r;
	int		p[2];
	pid_t		pid;

	(void)state;
	for (i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 31 + 7);
	assert_int_equal(pipe(p), 0);
	/* more than a pipe holds: a reader drains it meanwhile */
	if ((pid = fork()) == 0) {
		close(p[0]);
		_exit(fd_write_all(p[1], data, sizeof(data)) == 0 ? 0 : 1);
	}
	assert_true(pid > 0);
	close(p[1]);
	while ((r = read(p[0], got + n, sizeof(got) - n)) > 0)
		n += (size_t)r;
	close(p[0]);
	assert_int_equal(n, sizeof(data));
	assert_memory_equal(got, data, sizeof(data));
	assert_int_equal(waitpid(pid, &p[0], 0), pid);
	assert_true(WIFEXITED(p[0]) && WEXITSTATUS(p[0]) == 0);
	assert_int_equal(fd_write_all(-1, "x", 1), -1);
	assert_int_equal(fd_write_all(-1, "", 0), 0);	/* nothing to do */
}

static void
test_common_util__file_write_atomic(void **state)
{
	struct stat	 st;
	char		*path, *data = NULL;
	size_t		 len;
	mode_t		 old;

	old = umask(022);
	path = path_join(*state, "f");
	assert_int_equal(file_write_atomic(path, "hello", 5, 0640), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(dir_entries(*state), 1);
	assert_int_equal(file_read_all(&data, &len, path, 100), 0);
	assert_int_equal(len, 5);
	assert_string_equal(data, "hello");
	free(data);

	/* replace: new content and the new mode, still no tmp file */
	assert_int_equal(file_write_atomic(path, "", 0, 0600), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(dir_entries(*state), 1);
	free(path);

	/* failure: no such directory, nothing left behind */
	path = path_join(*state, "nodir/f");
	assert_int_equal(file_write_atomic(path, "x", 1, 0600), ERR_IO);
	assert_int_equal(dir_entries(*state), 1);
	free(path);
	umask(old);
}

static void
test_common_util__file_read_all(void **state)
{
	char	*path, *data = NULL;
	size_t	 len;

	path = path_join(*state, "r");
	assert_int_equal(file_read_all(&data, &len, path, 10), ERR_NOTFOUND);
	assert_int_equal(file_write_atomic(path, "0123456789", 10, 0600), 0);
	assert_int_equal(file_read_all(&data, &len, path, 10), 0);
	assert_int_equal(len, 10);
	free(data);
	assert_int_equal(file_read_all(&data, NULL, path, 9), ERR_TOOBIG);
	assert_int_equal(file_read_all(&data, &len, *state, 10), ERR_IO);
	free(path);
}

static void
test_common_util__file_check_secret(void **state)
{
	char	*path, *dir;

	path = path_join(*state, "key");
	assert_int_equal(file_check_secret(path), ERR_NOTFOUND);
	assert_int_equal(file_write_atomic(path, "k", 1, 0600), 0);
	assert_int_equal(file_check_secret(path), 0);
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(file_check_secret(path), 0);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(file_check_secret(path), ERR_PERM);
	assert_int_equal(err_code(), ERR_PERM);
	assert_non_null(strstr(err_msg(), path));
	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(file_check_secret(path), ERR_PERM);
	assert_int_equal(chmod(path, 0602), 0);
	assert_int_equal(file_check_secret(path), ERR_PERM);
	assert_int_equal(chmod(path, 0610), 0);
	assert_int_equal(file_check_secret(path), ERR_PERM);
	free(path);

	/* a directory is not a secret file */
	dir = path_join(*state, "d");
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(file_check_secret(dir), ERR_PERM);
	free(dir);
}

static void
test_common_util__path_join(void **state)
{
	char	*p;

	p = path_join("/etc", "amanat.conf");
	assert_string_equal(p, "/etc/amanat.conf");
	free(p);
	p = path_join("/etc", "/abs/file");
	assert_string_equal(p, "/abs/file");
	free(p);
	p = path_join(NULL, "rel");
	assert_string_equal(p, "rel");
	free(p);
	p = path_join("", "rel");
	assert_string_equal(p, "rel");
	free(p);
	p = path_join("a/b", "c/d");
	assert_string_equal(p, "a/b/c/d");
	free(p);
}

static void
test_common_util__mkdir_p(void **state)
{
	struct stat	 st;
	char		*deep, *file, *under;

	deep = path_join(*state, "a/b/c");
	assert_int_equal(mkdir_p(deep, 0700), 0);
	assert_int_equal(stat(deep, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* existing: fine; trailing and doubled slashes too */
	assert_int_equal(mkdir_p(deep, 0700), 0);
	free(deep);
	deep = path_join(*state, "a//b/c/");
	assert_int_equal(mkdir_p(deep, 0700), 0);
	free(deep);

	/* a regular file in the way is an error, not success */
	file = path_join(*state, "file");
	assert_int_equal(file_write_atomic(file, "x", 1, 0600), 0);
	assert_int_equal(mkdir_p(file, 0700), ERR_IO);
	under = path_join(file, "sub");
	assert_int_equal(mkdir_p(under, 0700), ERR_IO);
	free(under);
	free(file);

	assert_int_equal(mkdir_p("", 0700), ERR_INVAL);
	assert_int_equal(mkdir_p("/", 0700), 0);
}

static void
test_common_util__now_ms_monotonic(void **state)
{
	uint64_t	a, b;

	a = now_ms();
	b = now_ms();
	assert_true(b >= a);
	assert_true(raise_nofile_limit() > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_common_util__parse_ll_bounds),
		cmocka_unit_test(test_common_util__parse_ll_junk),
		cmocka_unit_test(test_common_util__ct_memeq),
		cmocka_unit_test(test_common_util__fd_write_all),
		cmocka_unit_test_setup_teardown(
		    test_common_util__file_write_atomic, setup_dir,
		    teardown_dir),
		cmocka_unit_test_setup_teardown(
		    test_common_util__file_read_all, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(
		    test_common_util__file_check_secret, setup_dir,
		    teardown_dir),
		cmocka_unit_test(test_common_util__path_join),
		cmocka_unit_test_setup_teardown(test_common_util__mkdir_p,
		    setup_dir, teardown_dir),
		cmocka_unit_test(test_common_util__now_ms_monotonic),
	};
	int	rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
