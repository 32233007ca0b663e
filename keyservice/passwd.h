/*
 * passwd.h -- password hashing (Argon2id, libargon2) and login throttling.
 *
 * Hashes are PHC strings "$argon2id$v=19$m=...,t=...,p=...$salt$hash",
 * parameters from config ([keyservice] argon2_memory, argon2_time,
 * argon2_lanes); verification uses the parameters stored in the hash,
 * so a parameter change applies to new passwords only.
 *
 * Throttling (in memory, per process): failures are counted per user and
 * per source address over a sliding window.  After `free_failures`
 * failures, each further attempt is refused until a delay has passed
 * that doubles with each failure (base_delay_ms, capped at max_delay_ms).
 * A success clears the user's counter (not the source's).
 */
#ifndef KEYSERVICE_PASSWD_H
#define KEYSERVICE_PASSWD_H

#include <stddef.h>
#include <stdint.h>

#define PASSWD_MAX		1024	/* bytes of a password */
#define PASSWD_HASH_MAX		256	/* bytes of a PHC string */
#define PASSWD_GEN_LEN		20	/* characters of a generated password */

struct passwd_params {
	uint32_t	memory_kib;	/* m */
	uint32_t	time_cost;	/* t */
	uint32_t	lanes;		/* p */
};

/*
 * Hash pw (pwlen bytes) with a fresh 16-byte salt into out (NUL-
 * terminated PHC string).  ERR_INVAL if pwlen is 0 or > PASSWD_MAX.
 */
int	passwd_hash(char *, size_t, const char *, size_t,
	    const struct passwd_params *);
/*
 * 0 if pw matches the PHC string hash, ERR_PERM if not, ERR_INVAL if the
 * hash is not an argon2id PHC string.  Constant time in the comparison.
 */
int	passwd_verify(const char *, const char *, size_t);
/* A random password of PASSWD_GEN_LEN characters from [A-Za-z0-9] minus
 * look-alikes, NUL-terminated; out must hold PASSWD_GEN_LEN + 1. */
void	passwd_generate(char *);

struct throttle;

struct throttle_params {
	unsigned	free_failures;	/* failures before any delay */
	unsigned	window_ms;	/* failures older than this are forgotten */
	unsigned	base_delay_ms;
	unsigned	max_delay_ms;
	size_t		max_entries;	/* memory bound: oldest entries evicted */
};

/*
 * NULL (ERR_INVAL in err_msg()) unless 1 <= max_entries <= 4M and
 * window_ms > 0.
 */
struct throttle	*throttle_new(const struct throttle_params *);
void		 throttle_free(struct throttle **);
/*
 * May user (may be NULL) from source try now (at now_ms)?  0 if yes,
 * else the milliseconds to wait (> 0).  The stricter of the user's and
 * the source's state applies.
 */
uint64_t	 throttle_check(struct throttle *, const char *, const char *,
		    uint64_t);
void		 throttle_fail(struct throttle *, const char *, const char *,
		    uint64_t);
void		 throttle_success(struct throttle *, const char *, uint64_t);
/* Entries held (users and sources); for tests and metrics. */
size_t		 throttle_size(struct throttle *);

#endif
