/*
 * passwd.c -- Argon2id password hashes, generated passwords and login
 * throttling.
 *
 * Runs in: keyservice (user db and password checks); passwd_hash() and
 * passwd_verify() block for the whole Argon2 run, so daemons call them
 * from a worker pool thread (common/worker.h), never on the event loop.
 * The throttle is not locked: use it from the loop thread only.
 * Failure policy: bad input or a hash we do not accept is ERR_INVAL, a
 * wrong password ERR_PERM, a failing RNG or allocation inside libargon2
 * ERR_GENERIC.  passwd_generate() and the throttle cannot fail (OOM and a
 * broken RNG are fatal).
 * SECURITY: a stored hash is untrusted input.  Its parameter section is
 * parsed strictly here and bounded (m <= 1 GiB, t <= 100, p <= 64) before
 * libargon2 sees it, so a planted hash cannot make one check cost
 * gigabytes or minutes.  The digest comparison is libargon2's constant
 * time one.  Passwords are never logged or copied.  The throttle table is
 * keyed with SipHash-2-4 under a random key (no hash flooding) and holds
 * at most max_entries entries (least recently failed evicted first); only
 * failures create entries, so checks cannot fill it.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/err.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/xmalloc.h"
#include "keyservice/passwd.h"

#define PASSWD_SALT_LEN		16
#define PASSWD_DIGEST_LEN	32
#define PASSWD_PREFIX		"$argon2id$v=19$m="

/* Bounds on parameters, for new hashes and for stored ones. */
#define PASSWD_M_MAX		1048576U	/* KiB: 1 GiB */
#define PASSWD_T_MAX		100U
#define PASSWD_P_MAX		64U
#define PASSWD_NUM_DIGITS	10		/* enough for any uint32_t */
#define PASSWD_SALT_B64_MIN	11		/* 8 bytes: libargon2's min */
#define PASSWD_DIGEST_B64_MIN	6		/* 4 bytes */

/* [A-Za-z0-9] without 0 O o 1 l I: 56 characters. */
static const char passwd_alphabet[] =
    "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
#define PASSWD_ALPHABET_LEN	(sizeof(passwd_alphabet) - 1)

static int
passwd_params_ok(uint32_t m, uint32_t t, uint32_t p)
{
	if (t < 1 || t > PASSWD_T_MAX || p < 1 || p > PASSWD_P_MAX ||
	    m > PASSWD_M_MAX || m < 8 * p)
		return 0;
	return 1;
}

int
passwd_hash(char *out, size_t outlen, const char *pw, size_t pwlen,
    const struct passwd_params *pp)
{
	unsigned char	salt[PASSWD_SALT_LEN];
	size_t		need;
	int		rc;

	if (outlen > 0)
		out[0] = '\0';
	if (pwlen == 0 || pwlen > PASSWD_MAX) {
		err_set(ERR_INVAL, "password length %zu not in 1..%d", pwlen,
		    PASSWD_MAX);
		return ERR_INVAL;
	}
	if (!passwd_params_ok(pp->memory_kib, pp->time_cost, pp->lanes)) {
		err_set(ERR_INVAL, "argon2 parameters m=%u t=%u p=%u out of "
		    "bounds", pp->memory_kib, pp->time_cost, pp->lanes);
		return ERR_INVAL;
	}
	need = argon2_encodedlen(pp->time_cost, pp->memory_kib, pp->lanes,
	    PASSWD_SALT_LEN, PASSWD_DIGEST_LEN, Argon2_id);
	if (need > outlen || need > PASSWD_HASH_MAX + 1) {
		err_set(ERR_TOOBIG, "hash needs %zu bytes, have %zu", need,
		    outlen);
		return ERR_TOOBIG;
	}
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return tls_error("RAND_bytes");
	rc = argon2id_hash_encoded(pp->time_cost, pp->memory_kib, pp->lanes,
	    pw, pwlen, salt, sizeof(salt), PASSWD_DIGEST_LEN, out, outlen);
	if (rc != ARGON2_OK) {
		out[0] = '\0';
		err_set(ERR_GENERIC, "argon2id: %s", argon2_error_message(rc));
		return ERR_GENERIC;
	}
	return 0;
}

/*
 * A decimal in 1..PASSWD_NUM_DIGITS digits without a leading zero,
 * followed by end; advances *sp past it.
 */
static int
passwd_parse_num(const char **sp, char end, uint32_t *out)
{
	const char	*s = *sp;
	uint64_t	 v = 0;
	int		 n = 0;

	if (*s == '0')
		return -1;
	while (*s >= '0' && *s <= '9') {
		if (++n > PASSWD_NUM_DIGITS)
			return -1;
		v = v * 10 + (uint64_t)(*s++ - '0');
	}
	if (n == 0 || *s != end || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	*sp = s + 1;
	return 0;
}

/* Unpadded base64 of at least min characters, ending at end. */
static int
passwd_parse_b64(const char **sp, char end, size_t min)
{
	const char	*s = *sp;
	size_t		 n;

	n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789+/");
	if (n < min || n % 4 == 1 || s[n] != end)
		return -1;
	*sp = s + n + 1;
	return 0;
}

/*
 * Exactly "$argon2id$v=19$m=M,t=T,p=P$SALT$DIGEST" with bounded M, T, P
 * (no keyid or data fields, no other version).
 */
static int
passwd_parse_phc(const char *s)
{
	uint32_t	m, t, p;

	if (strncmp(s, PASSWD_PREFIX, strlen(PASSWD_PREFIX)) != 0)
		return -1;
	s += strlen(PASSWD_PREFIX);
	if (passwd_parse_num(&s, ',', &m) == -1 || *s++ != 't' ||
	    *s++ != '=' || passwd_parse_num(&s, ',', &t) == -1 ||
	    *s++ != 'p' || *s++ != '=' ||
	    passwd_parse_num(&s, '$', &p) == -1)
		return -1;
	if (!passwd_params_ok(m, t, p))
		return -1;
	if (passwd_parse_b64(&s, '$', PASSWD_SALT_B64_MIN) == -1 ||
	    passwd_parse_b64(&s, '\0', PASSWD_DIGEST_B64_MIN) == -1)
		return -1;
	return 0;
}

int
passwd_verify(const char *hash, const char *pw, size_t pwlen)
{
	int	rc;

	if (pwlen > PASSWD_MAX) {
		err_set(ERR_INVAL, "password longer than %d bytes",
		    PASSWD_MAX);
		return ERR_INVAL;
	}
	if (strnlen(hash, PASSWD_HASH_MAX + 1) > PASSWD_HASH_MAX ||
	    passwd_parse_phc(hash) == -1) {
		err_set(ERR_INVAL, "not an accepted argon2id hash");
		return ERR_INVAL;
	}
	/* We never hash an empty password, so none can match. */
	if (pwlen == 0) {
		err_set(ERR_PERM, "password mismatch");
		return ERR_PERM;
	}
	rc = argon2id_verify(hash, pw, pwlen);
	switch (rc) {
	case ARGON2_OK:
		return 0;
	case ARGON2_VERIFY_MISMATCH:
		err_set(ERR_PERM, "password mismatch");
		return ERR_PERM;
	case ARGON2_MEMORY_ALLOCATION_ERROR:
	case ARGON2_THREAD_FAIL:
		err_set(ERR_GENERIC, "argon2id: %s", argon2_error_message(rc));
		return ERR_GENERIC;
	default:
		err_set(ERR_INVAL, "argon2id: %s", argon2_error_message(rc));
		return ERR_INVAL;
	}
}

/*
 * Rejection sampling: bytes >= 224 (= 4 * 56) are dropped, so every
 * character of the alphabet is equally likely.
 */
void
passwd_generate(char *out)
{
	unsigned char	rnd[64];
	size_t		i = 0, k = sizeof(rnd);
	unsigned	c;
	const unsigned	lim = 256 - 256 % PASSWD_ALPHABET_LEN;

	while (i < PASSWD_GEN_LEN) {
		if (k == sizeof(rnd)) {
			if (RAND_bytes(rnd, sizeof(rnd)) != 1)
				fatalx("passwd_generate: RAND_bytes failed");
			k = 0;
		}
		c = rnd[k++];
		if (c < lim)
			out[i++] = passwd_alphabet[c % PASSWD_ALPHABET_LEN];
	}
	out[i] = '\0';
	OPENSSL_cleanse(rnd, sizeof(rnd));
}

/* ---------------------------------------------------------------- throttle */

#define THROTTLE_NAME_MAX	255		/* longer names are cut */
#define THROTTLE_ENTRIES_MAX	((size_t)1 << 22)

struct throttle_entry {
	struct throttle_entry	*hnext;		/* bucket chain */
	struct throttle_entry	*lprev;		/* LRU: toward more recent */
	struct throttle_entry	*lnext;		/* LRU: toward older */
	uint64_t		 hash;
	uint64_t		 last_failure_ms;
	uint64_t		 next_allowed_ms;
	unsigned		 failures;
	size_t			 keylen;
	char			 key[];		/* "u:name" or "s:addr" */
};

struct throttle {
	struct throttle_params	  p;
	struct throttle_entry	**buckets;
	size_t			  mask;		/* nbuckets - 1 */
	struct throttle_entry	 *lru_head;	/* most recent failure */
	struct throttle_entry	 *lru_tail;	/* evicted first */
	size_t			  nentries;
	uint64_t		  k0, k1;	/* SipHash key */
};

#define ROTL64(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(v0, v1, v2, v3) do {					\
	v0 += v1; v1 = ROTL64(v1, 13); v1 ^= v0; v0 = ROTL64(v0, 32);	\
	v2 += v3; v3 = ROTL64(v3, 16); v3 ^= v2;			\
	v0 += v3; v3 = ROTL64(v3, 21); v3 ^= v0;			\
	v2 += v1; v1 = ROTL64(v1, 17); v1 ^= v2; v2 = ROTL64(v2, 32);	\
} while (0)

/* SipHash-2-4 (Aumasson, Bernstein) of n bytes under (k0, k1). */
static uint64_t
throttle_siphash(uint64_t k0, uint64_t k1, const void *data, size_t n)
{
	const unsigned char	*s = data;
	uint64_t		 v0, v1, v2, v3, m, b;
	size_t			 i, left;
	int			 r;

	v0 = k0 ^ 0x736f6d6570736575ULL;
	v1 = k1 ^ 0x646f72616e646f6dULL;
	v2 = k0 ^ 0x6c7967656e657261ULL;
	v3 = k1 ^ 0x7465646279746573ULL;
	b = (uint64_t)n << 56;
	for (; n >= 8; n -= 8, s += 8) {
		for (m = 0, i = 0; i < 8; i++)
			m |= (uint64_t)s[i] << (8 * i);
		v3 ^= m;
		SIPROUND(v0, v1, v2, v3);
		SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	for (left = n, i = 0; i < left; i++)
		b |= (uint64_t)s[i] << (8 * i);
	v3 ^= b;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	for (r = 0; r < 4; r++)
		SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

struct throttle *
throttle_new(const struct throttle_params *tp)
{
	struct throttle	*t;
	unsigned char	 key[16];
	size_t		 nb = 16;
	int		 i;

	if (tp->max_entries < 1 || tp->max_entries > THROTTLE_ENTRIES_MAX ||
	    tp->window_ms < 1) {
		err_set(ERR_INVAL, "throttle: max_entries %zu not in 1..%zu "
		    "or window_ms 0", tp->max_entries, THROTTLE_ENTRIES_MAX);
		return NULL;
	}
	while (nb < tp->max_entries)
		nb *= 2;
	t = xcalloc(1, sizeof(*t));
	t->p = *tp;
	t->buckets = xcalloc(nb, sizeof(*t->buckets));
	t->mask = nb - 1;
	if (RAND_bytes(key, sizeof(key)) != 1)
		fatalx("throttle_new: RAND_bytes failed");
	for (i = 0; i < 8; i++) {
		t->k0 |= (uint64_t)key[i] << (8 * i);
		t->k1 |= (uint64_t)key[8 + i] << (8 * i);
	}
	OPENSSL_cleanse(key, sizeof(key));
	return t;
}

void
throttle_free(struct throttle **tp)
{
	struct throttle		*t;
	struct throttle_entry	*e, *next;

	if (tp == NULL || (t = *tp) == NULL)
		return;
	for (e = t->lru_head; e != NULL; e = next) {
		next = e->lnext;
		free(e);
	}
	free(t->buckets);
	free(t);
	*tp = NULL;
}

size_t
throttle_size(struct throttle *t)
{
	return t->nentries;
}

/* Build "<prefix>:<name>" (name cut at THROTTLE_NAME_MAX) into buf. */
static size_t
throttle_key(char *buf, char prefix, const char *name)
{
	size_t	n;

	n = strnlen(name, THROTTLE_NAME_MAX);
	buf[0] = prefix;
	buf[1] = ':';
	memcpy(buf + 2, name, n);
	buf[n + 2] = '\0';
	return n + 2;
}

static struct throttle_entry *
throttle_find(struct throttle *t, const char *key, size_t keylen,
    uint64_t h)
{
	struct throttle_entry	*e;

	for (e = t->buckets[h & t->mask]; e != NULL; e = e->hnext)
		if (e->hash == h && e->keylen == keylen &&
		    memcmp(e->key, key, keylen) == 0)
			return e;
	return NULL;
}

static void
throttle_lru_unlink(struct throttle *t, struct throttle_entry *e)
{
	if (e->lprev != NULL)
		e->lprev->lnext = e->lnext;
	else
		t->lru_head = e->lnext;
	if (e->lnext != NULL)
		e->lnext->lprev = e->lprev;
	else
		t->lru_tail = e->lprev;
	e->lprev = e->lnext = NULL;
}

static void
throttle_lru_push(struct throttle *t, struct throttle_entry *e)
{
	e->lprev = NULL;
	e->lnext = t->lru_head;
	if (t->lru_head != NULL)
		t->lru_head->lprev = e;
	else
		t->lru_tail = e;
	t->lru_head = e;
}

static void
throttle_remove(struct throttle *t, struct throttle_entry *e)
{
	struct throttle_entry	**pp;

	for (pp = &t->buckets[e->hash & t->mask]; *pp != e;
	    pp = &(*pp)->hnext)
		;
	*pp = e->hnext;
	throttle_lru_unlink(t, e);
	t->nentries--;
	free(e);
}

/* Milliseconds since the entry's last failure; 0 if the clock went back. */
static uint64_t
throttle_age(const struct throttle_entry *e, uint64_t now)
{
	return now > e->last_failure_ms ? now - e->last_failure_ms : 0;
}

/* The wait imposed by one key; an expired entry is dropped. */
static uint64_t
throttle_wait(struct throttle *t, char prefix, const char *name,
    uint64_t now)
{
	char			 key[THROTTLE_NAME_MAX + 3];
	struct throttle_entry	*e;
	size_t			 n;

	if (name == NULL)
		return 0;
	n = throttle_key(key, prefix, name);
	e = throttle_find(t, key, n, throttle_siphash(t->k0, t->k1, key, n));
	if (e == NULL)
		return 0;
	if (throttle_age(e, now) >= t->p.window_ms) {
		throttle_remove(t, e);
		return 0;
	}
	return e->next_allowed_ms > now ? e->next_allowed_ms - now : 0;
}

uint64_t
throttle_check(struct throttle *t, const char *user, const char *source,
    uint64_t now)
{
	uint64_t	wu, ws;

	wu = throttle_wait(t, 'u', user, now);
	ws = throttle_wait(t, 's', source, now);
	return wu > ws ? wu : ws;
}

/* base << (failures - free), capped; 0 while failures < free. */
static uint64_t
throttle_delay(const struct throttle_params *p, unsigned failures)
{
	uint64_t	d;
	unsigned	shift;

	if (failures < p->free_failures)
		return 0;
	shift = failures - p->free_failures;
	if (shift >= 32)
		return p->max_delay_ms;
	d = (uint64_t)p->base_delay_ms << shift;
	return d < p->max_delay_ms ? d : p->max_delay_ms;
}

static void
throttle_fail_one(struct throttle *t, char prefix, const char *name,
    uint64_t now)
{
	char			 key[THROTTLE_NAME_MAX + 3];
	struct throttle_entry	*e;
	size_t			 n;
	uint64_t		 h;

	if (name == NULL)
		return;
	n = throttle_key(key, prefix, name);
	h = throttle_siphash(t->k0, t->k1, key, n);
	if ((e = throttle_find(t, key, n, h)) != NULL) {
		throttle_lru_unlink(t, e);
		if (throttle_age(e, now) >= t->p.window_ms)
			e->failures = 0;
	} else {
		if (t->nentries >= t->p.max_entries)
			throttle_remove(t, t->lru_tail);
		e = xcalloc(1, sizeof(*e) + n + 1);
		memcpy(e->key, key, n + 1);
		e->keylen = n;
		e->hash = h;
		e->hnext = t->buckets[h & t->mask];
		t->buckets[h & t->mask] = e;
		t->nentries++;
	}
	if (e->failures < UINT_MAX)
		e->failures++;
	e->last_failure_ms = now;
	e->next_allowed_ms = now + throttle_delay(&t->p, e->failures);
	throttle_lru_push(t, e);
}

void
throttle_fail(struct throttle *t, const char *user, const char *source,
    uint64_t now)
{
	throttle_fail_one(t, 'u', user, now);
	throttle_fail_one(t, 's', source, now);
}

void
throttle_success(struct throttle *t, const char *user, uint64_t now)
{
	char			 key[THROTTLE_NAME_MAX + 3];
	struct throttle_entry	*e;
	size_t			 n;

	if (user == NULL)
		return;
	n = throttle_key(key, 'u', user);
	e = throttle_find(t, key, n, throttle_siphash(t->k0, t->k1, key, n));
	if (e != NULL)
		throttle_remove(t, e);
}
