/*
 * util.c -- numbers, constant-time compare, durable file helpers.
 *
 * Runs in: every process.
 * Failure policy: return a negative enum err with err_set() context.
 * SECURITY: ct_memeq() is constant time (CRYPTO_memcmp); file_check_secret()
 * refuses group/other access to secrets.
 */
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/err.h"
#include "common/util.h"
#include "common/xmalloc.h"

int
parse_ll(long long *out, const char *s, long long min, long long max)
{
	char		*end;
	long long	 v;

	if (s == NULL || *s == '\0' || (*s != '-' && (*s < '0' || *s > '9'))) {
		err_set(ERR_INVAL, "not a number");
		return ERR_INVAL;
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0') {
		err_set(ERR_INVAL, "not a number");
		return ERR_INVAL;
	}
	if (errno == ERANGE || v < min || v > max) {
		err_set(ERR_INVAL, "out of range [%lld, %lld]", min, max);
		return ERR_INVAL;
	}
	*out = v;
	return 0;
}

int
ct_memeq(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

int
fsync_dir_of(const char *path)
{
	char	*copy = xstrdup(path);
	int	 fd, rc = 0;

	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fsync(fd) < 0) {
		err_set(ERR_IO, "fsync directory of %s: %s", path,
		    strerror(errno));
		rc = ERR_IO;
	}
	if (fd >= 0)
		close(fd);
	free(copy);
	return rc;
}

int
fd_write_all(int fd, const void *data, size_t len)
{
	const char	*p = data;
	ssize_t		 n;

	while (len > 0) {
		if ((n = write(fd, p, len)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
file_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char		*tmp = NULL;
	int		 fd = -1, rc = ERR_IO;

	xasprintf(&tmp, "%s.tmp.%d", path, (int)getpid());
	/* a stale tmp of ours may exist after a crash; never follow links */
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, mode)) < 0)
		goto fail;
	if (fchmod(fd, mode) < 0 || fd_write_all(fd, data, len) < 0)
		goto fail;
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	free(tmp);
	return fsync_dir_of(path);
fail:
	err_set(ERR_IO, "write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	(void)unlink(tmp);
	free(tmp);
	return rc;
}

int
file_write_new(const char *path, const void *data, size_t len, mode_t mode)
{
	int		 fd, rc;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, mode)) < 0) {
		rc = errno == EEXIST ? ERR_EXISTS : ERR_IO;
		err_set(rc, "create %s: %s", path, strerror(errno));
		return rc;
	}
	if (fd_write_all(fd, data, len) < 0)
		goto fail;
	if (close(fd) == 0)
		return 0;
	fd = -1;
fail:
	err_set(ERR_IO, "write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	(void)unlink(path);
	return ERR_IO;
}

int
file_read_all(char **out, size_t *len_out, const char *path, size_t max)
{
	struct stat	 st;
	char		*data = NULL;
	size_t		 got = 0;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		err_set(errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "open %s: %s",
		    path, strerror(errno));
		return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err_set(ERR_IO, "%s: not a regular file", path);
		close(fd);
		return ERR_IO;
	}
	if ((size_t)st.st_size > max) {
		err_set(ERR_TOOBIG, "%s: larger than %zu bytes", path, max);
		close(fd);
		return ERR_TOOBIG;
	}
	data = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		n = read(fd, data + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got != (size_t)st.st_size) {
		err_set(ERR_IO, "read %s: short read", path);
		free(data);
		return ERR_IO;
	}
	data[got] = '\0';
	*out = data;
	if (len_out != NULL)
		*len_out = got;
	return 0;
}

/*
 * Create path and its missing parents.  An existing component must be a
 * directory (EEXIST alone would accept a regular file).
 */
int
mkdir_p(const char *path, mode_t mode)
{
	struct stat	 st;
	char		*copy, *p, c;
	int		 rc = 0;

	if (path[0] == '\0') {
		err_set(ERR_INVAL, "mkdir: empty path");
		return ERR_INVAL;
	}
	copy = xstrdup(path);
	for (p = copy + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		c = *p;
		*p = '\0';
		if (mkdir(copy, mode) < 0) {
			if (errno != EEXIST) {
				err_set(ERR_IO, "mkdir %s: %s", copy,
				    strerror(errno));
				rc = ERR_IO;
				break;
			}
			if (stat(copy, &st) < 0 || !S_ISDIR(st.st_mode)) {
				err_set(ERR_IO, "mkdir %s: %s", copy,
				    strerror(ENOTDIR));
				rc = ERR_IO;
				break;
			}
		}
		*p = c;
		if (c == '\0')
			break;
	}
	free(copy);
	return rc;
}

int
file_check_secret(const char *path)
{
	struct stat	st;

	if (stat(path, &st) < 0) {
		err_set(errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s",
		    path, strerror(errno));
		return errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(ERR_PERM, "%s: not a regular file", path);
		return ERR_PERM;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		err_set(ERR_PERM, "%s: secret file is accessible by group or "
		    "others (mode %03o); chmod 600 it", path,
		    (unsigned)(st.st_mode & 0777));
		return ERR_PERM;
	}
	return 0;
}

char *
path_join(const char *dir, const char *rel)
{
	char	*p;

	if (rel[0] == '/' || dir == NULL || dir[0] == '\0')
		return xstrdup(rel);
	xasprintf(&p, "%s/%s", dir, rel);
	return p;
}

long
raise_nofile_limit(void)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur == RLIM_INFINITY ? LONG_MAX : (long)rl.rlim_cur;
}

uint64_t
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
