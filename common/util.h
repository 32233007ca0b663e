/*
 * util.h -- small helpers: numbers, constant-time compare, durable files.
 */
#ifndef COMMON_UTIL_H
#define COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/* Parse a decimal integer in [min, max]; no sign games, no trailing junk. */
int	parse_ll(long long *, const char *, long long, long long);

/* 1 if equal.  Constant time in n; use for every secret. */
int	ct_memeq(const void *, const void *, size_t);

/*
 * Durable write: path.tmp.<pid> -> write -> fsync -> rename -> fsync(dir).
 * The tmp file is removed on failure.  mode applies to the new file.
 */
/* All of len bytes to fd (short writes and EINTR retried): 0, or -1
 * with errno. */
int	fd_write_all(int, const void *, size_t);
int	file_write_atomic(const char *, const void *, size_t, mode_t);
/*
 * A new file (ERR_EXISTS if path exists; links never followed) written
 * and closed, not synced: the caller makes it durable (syncfs of its
 * filesystem, for many files at once) before relying on it.  Removed on
 * failure.
 */
int	file_write_new(const char *, const void *, size_t, mode_t);
/* Read a whole regular file of at most max bytes (NUL-terminated). */
int	file_read_all(char **, size_t *, const char *, size_t);
int	fsync_dir_of(const char *);
int	mkdir_p(const char *, mode_t);
/*
 * Refuse a secret file (key, password list) that group or others may
 * read or write, or that is not a regular file: ERR_PERM with a message.
 */
int	file_check_secret(const char *);

/* Join dir and rel unless rel is absolute; caller frees. */
char	*path_join(const char *, const char *);

/* Raise RLIMIT_NOFILE's soft limit to its hard limit; returns the new soft. */
long	raise_nofile_limit(void);

/* Monotonic clock in milliseconds. */
uint64_t	now_ms(void);

#endif
