/*
 * store_fx.c -- the store message tests' fixture and helpers
 * (store_fx.h).
 * Runs in: the unit test binaries only.
 * Failure policy: cmocka assertions.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cmocka.h>
#include <lmdb.h>

#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mailsrv/store/msgfile.h"
#include "mailsrv/store/store.h"
#include "tests/unit/store_fx.h"
#include "tests/unit/testutil.h"

const unsigned char	dek1[STORE_DEK_LEN] =
			    "0123456789abcdef0123456789abcde";
const unsigned char	dek2[STORE_DEK_LEN] =
			    "fedcba9876543210fedcba987654321";

/*
 * Walk dir: count regular files, check modes (dirs 0700, files 0600),
 * and count files containing needle (if not NULL).
 */
void
walk(const char *dir, const char *needle, int *files, int *hits)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	char		*p, *data;
	size_t		 len;

	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		/* no path component names the user */
		assert_null(strcasestr(de->d_name, "alice"));
		p = path_join(dir, de->d_name);
		assert_int_equal(lstat(p, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			assert_int_equal(st.st_mode & 0777, 0700);
			walk(p, needle, files, hits);
		} else {
			assert_true(S_ISREG(st.st_mode));
			assert_int_equal(st.st_mode & 077, 0);
			(*files)++;
			if (needle != NULL) {
				assert_int_equal(file_read_all(&data, &len, p,
				    1 << 30), 0);
				if (memmem(data, len, needle,
				    strlen(needle)) != NULL)
					(*hits)++;
				free(data);
			}
		}
		free(p);
	}
	closedir(d);
}

int
blob_count(struct fx *f)
{
	char	*p = path_join(f->dir, "blobs");
	int	 files = 0, hits = 0;

	walk(p, NULL, &files, &hits);
	free(p);
	return files;
}

/* Path of the user's only message file. */
char *
only_blob(struct fx *f, const char *user)
{
	struct store_user	 u;
	char			*dir, *p = NULL;
	DIR			*d;
	struct dirent		*de;
	int			 n = 0;

	assert_int_equal(store_user_get(f->s, user, &u), 0);
	xasprintf(&dir, "%s/blobs/%.2s/%s", f->dir, u.user_id, u.user_id);
	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		free(p);
		p = path_join(dir, de->d_name);
		n++;
	}
	closedir(d);
	free(dir);
	store_user_clear(&u);
	assert_int_equal(n, 1);		/* callers make sure of this */
	return p;
}

void
deliver(struct fx *f, const char *user, const char *mbox,
    const unsigned char *dek, const char *msg, uint32_t *uid)
{
	uint32_t	uv, u;

	assert_int_equal(store_deliver(f->s, user, mbox, dek, msg,
	    strlen(msg), 0, 0, &uv, &u), 0);
	if (uid != NULL)
		*uid = u;
}

void
read_eq(struct fx *f, const char *user, const char *mbox, uint32_t uid,
    const void *want, size_t wlen)
{
	unsigned char	*got = NULL;
	size_t		 len = 0;

	assert_int_equal(store_read(f->s, user, mbox, uid, dek1, &got, &len),
	    0);
	assert_int_equal(len, wlen);
	assert_memory_equal(got, want, wlen);
	xfreezero(got, len);
}

int
setup(void **state)
{
	struct fx	*f = xcalloc(1, sizeof(*f));

	log_setlevel(LOG_LVL_WARN);
	snprintf(f->dir, sizeof(f->dir), "/tmp/amanat-test-store.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	if (store_open(&f->s, f->dir, NULL) < 0 ||
	    store_user_create(f->s, U1, "wrapped-dek-of-alice") < 0)
		return -1;
	*state = f;
	return 0;
}

int
teardown(void **state)
{
	struct fx	*f = *state;

	store_close(&f->s);
	rm_tree(f->dir);
	free(f);
	return 0;
}

void
reopen(struct fx *f, const struct store_opts *o)
{
	store_close(&f->s);
	assert_null(f->s);
	assert_int_equal(store_open(&f->s, f->dir, o), 0);
}
