/*
 * test_keyservice_keys.c -- unit tests for the key hierarchy (keys.c).
 *
 * Purpose: create/rotate/versions, datakey/wrap/unwrap/rewrap/describe
 * round trips, context binding, every single-byte tamper and every
 * truncation of a wrapped key, limits at max and max+1, base64 strictness,
 * nonce uniqueness across a counter block and across reopen, a wrong
 * master key, and tampered or malformed stored KEK records.
 * Runs in: the unit test binary only; each test gets a mkdtemp() LMDB
 * environment that it removes.
 * Failure policy: cmocka assertions.
 * SECURITY: checks that no wrapped key authenticates after any change and
 * that no nonce is handed out twice.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>
#include <openssl/evp.h>

#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "keyservice/keys.h"
#include "tests/unit/testutil.h"

#define SMALL_MAP	(64 * 1024)
#define MAP_MAX		(16 * 1024 * 1024)
#define REC_LIMIT_OFF	13	/* format(1) created(8) fixed(4) */
#define REC_LEN		81

static const unsigned char	master[KEYS_MASTER_LEN] = "0123456789abcdef"
				    "0123456789abcde";

struct fx {
	char		 dir[64];
	struct db_env	*db;
	struct keys	*k;
};

static int
fx_open(struct fx *f, const unsigned char *mk)
{
	int	rc;

	if ((rc = db_open(&f->db, f->dir, SMALL_MAP, MAP_MAX, 4)) < 0)
		return rc;
	return keys_open(&f->k, f->db, mk);
}

static void
fx_close(struct fx *f)
{
	keys_close(&f->k);
	db_close(&f->db);
}

static void
fx_reopen(struct fx *f)
{
	fx_close(f);
	assert_int_equal(fx_open(f, master), 0);
}

static int
setup(void **state)
{
	struct fx	*f;

	f = xcalloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/amanat-test-keys.XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	log_setlevel(LOG_LVL_WARN);
	if (fx_open(f, master) < 0) {
		rm_tree(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*f = *state;

	fx_close(f);
	rm_tree(f->dir);
	free(f);
	return 0;
}

/* Decode test base64 (valid input only); caller frees. */
static unsigned char *
b64_dec(const char *s, size_t *len)
{
	size_t		 n = strlen(s), pad = 0;
	unsigned char	*out;

	out = xmalloc(n / 4 * 3 + 1);
	assert_int_equal(EVP_DecodeBlock(out, (const unsigned char *)s,
	    (int)n), (int)(n / 4 * 3));
	if (n > 0 && s[n - 1] == '=')
		pad++;
	if (n > 1 && s[n - 2] == '=')
		pad++;
	*len = n / 4 * 3 - pad;
	return out;
}

static char *
b64_enc(const unsigned char *p, size_t n)
{
	char	*s;

	s = xmalloc((n + 2) / 3 * 4 + 1);
	EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	return s;
}

/* The 12-byte nonce of a wrapped key. */
static void
nonce_of(const char *wrapped, unsigned char *nonce)
{
	unsigned char	*raw;
	size_t		 n;

	raw = b64_dec(wrapped, &n);
	assert_true(n > 3u + raw[2] + 4 + 12);
	memcpy(nonce, raw + 3 + raw[2] + 4, 12);
	free(raw);
}

static uint64_t
counter_of(const char *wrapped)
{
	unsigned char	nonce[12];
	uint64_t	c = 0;
	int		i;

	nonce_of(wrapped, nonce);
	for (i = 4; i < 12; i++)
		c = c << 8 | nonce[i];
	return c;
}

static int
cmp_nonce(const void *a, const void *b)
{
	return memcmp(a, b, 12);
}

static uint64_t
uses_of(struct keys *k, const char *id, uint32_t version)
{
	struct keys_version	*v = NULL;
	size_t			 n = 0, i;
	uint64_t		 uses = UINT64_MAX;

	assert_int_equal(keys_versions(k, id, &v, &n), 0);
	for (i = 0; i < n; i++) {
		if (v[i].version == version)
			uses = v[i].uses;
	}
	free(v);
	assert_true(uses != UINT64_MAX);
	return uses;
}

static void
unwrap_expect(struct keys *k, const char *wrapped, const char *context,
    const void *want, size_t wantlen)
{
	unsigned char	*plain = NULL;
	size_t		 n = 0;

	assert_int_equal(keys_unwrap(k, wrapped, context, &plain, &n), 0);
	assert_int_equal(n, wantlen);
	assert_memory_equal(plain, want, wantlen);
	xfreezero(plain, n);
}

/* ---------------------------------------------- stored record surgery */

struct patch {
	MDB_dbi		 dbi;
	unsigned char	 key[KEYS_ID_MAX + 5];
	size_t		 keylen;
	unsigned char	 val[128];
	size_t		 vallen;	/* in: new length; 0 = read only */
};

static int
patch_get_fn(MDB_txn *txn, void *arg)
{
	struct patch	*p = arg;
	MDB_val		 k, v;
	int		 mrc;

	k.mv_data = p->key;
	k.mv_size = p->keylen;
	if ((mrc = mdb_get(txn, p->dbi, &k, &v)) != 0)
		return db_err(mrc, "patch get");
	assert_true(v.mv_size <= sizeof(p->val));
	memcpy(p->val, v.mv_data, v.mv_size);
	p->vallen = v.mv_size;
	return 0;
}

static int
patch_put_fn(MDB_txn *txn, void *arg)
{
	struct patch	*p = arg;
	MDB_val		 k, v;
	int		 mrc;

	k.mv_data = p->key;
	k.mv_size = p->keylen;
	v.mv_data = p->val;
	v.mv_size = p->vallen;
	if ((mrc = mdb_put(txn, p->dbi, &k, &v, 0)) != 0)
		return db_err(mrc, "patch put");
	return 0;
}

static void
patch_key(struct patch *p, struct db_env *db, const char *id, uint32_t v)
{
	size_t	n = strlen(id);

	memset(p, 0, sizeof(*p));
	assert_int_equal(db_dbi(db, "keks", 0, &p->dbi), 0);
	memcpy(p->key, id, n);
	p->key[n] = '\0';
	p->key[n + 1] = v >> 24;
	p->key[n + 2] = v >> 16;
	p->key[n + 3] = v >> 8;
	p->key[n + 4] = v;
	p->keylen = n + 5;
}

/* ---------------------------------------------------------------- tests */

static void
test_keyservice_keys__create_exists(void **state)
{
	struct fx		*f = *state;
	struct keys_version	*v = NULL;
	size_t			 n = 0;
	time_t			 now = time(NULL);

	assert_int_equal(keys_create(f->k, "dept-a"), 0);
	assert_int_equal(keys_create(f->k, "dept-a"), ERR_EXISTS);
	assert_non_null(strstr(err_msg(), "exists"));
	assert_int_equal(keys_create(f->k, "dept-b"), 0);
	assert_int_equal(keys_versions(f->k, "dept-a", &v, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].version, 1);
	assert_true(v[0].created >= (uint64_t)now - 5 &&
	    v[0].created <= (uint64_t)now + 5);
	assert_int_equal(v[0].uses, 0);
	free(v);
	/* "dept-a" must not see "dept-a.x" or "dept-" */
	assert_int_equal(keys_create(f->k, "dept-a.x"), 0);
	assert_int_equal(keys_versions(f->k, "dept-a", &v, &n), 0);
	assert_int_equal(n, 1);
	free(v);
	assert_int_equal(keys_versions(f->k, "dept-", &v, &n), ERR_NOTFOUND);
	assert_null(v);
	/* survives reopen */
	fx_reopen(f);
	assert_int_equal(keys_create(f->k, "dept-a"), ERR_EXISTS);
}

static void
test_keyservice_keys__datakey_unwrap(void **state)
{
	struct fx	*f = *state;
	unsigned char	 dek[KEYS_DEK_LEN], dek2[KEYS_DEK_LEN];
	char		*w = NULL, *w2 = NULL, id[KEYS_ID_MAX + 1];
	uint32_t	 ver = 0;

	assert_int_equal(keys_create(f->k, "dept-a"), 0);
	assert_int_equal(keys_datakey(f->k, "dept-a", "mailbox:alice", dek,
	    &w, &ver), 0);
	assert_int_equal(ver, 1);
	assert_non_null(w);
	unwrap_expect(f->k, w, "mailbox:alice", dek, sizeof(dek));
	assert_int_equal(keys_describe(w, id, sizeof(id), &ver), 0);
	assert_string_equal(id, "dept-a");
	assert_int_equal(ver, 1);
	/* a second data key differs, and so does its wrapping */
	assert_int_equal(keys_datakey(f->k, "dept-a", "mailbox:alice", dek2,
	    &w2, NULL), 0);
	assert_memory_not_equal(dek, dek2, sizeof(dek));
	assert_string_not_equal(w, w2);
	free(w2);
	w2 = NULL;
	assert_int_equal(keys_datakey(f->k, "nope", "x", dek2, &w2, NULL),
	    ERR_NOTFOUND);
	assert_null(w2);
	free(w);
	explicit_bzero(dek, sizeof(dek));
	explicit_bzero(dek2, sizeof(dek2));
}

static void
test_keyservice_keys__wrong_context(void **state)
{
	struct fx	*f = *state;
	unsigned char	 dek[KEYS_DEK_LEN], *plain = NULL;
	char		*w = NULL;
	size_t		 n = 0;

	assert_int_equal(keys_create(f->k, "dept-a"), 0);
	assert_int_equal(keys_datakey(f->k, "dept-a", "mailbox:alice", dek,
	    &w, NULL), 0);
	assert_int_equal(keys_unwrap(f->k, w, "mailbox:bob", &plain, &n),
	    ERR_PERM);
	assert_non_null(strstr(err_msg(), "does not authenticate"));
	assert_null(plain);
	assert_int_equal(n, 0);
	assert_int_equal(keys_unwrap(f->k, w, "", &plain, &n), ERR_PERM);
	assert_int_equal(keys_unwrap(f->k, w, "mailbox:alicex", &plain, &n),
	    ERR_PERM);
	assert_int_equal(keys_unwrap(f->k, w, NULL, &plain, &n), ERR_INVAL);
	free(w);
	explicit_bzero(dek, sizeof(dek));
}

static void
tamper_expect_fail(struct keys *k, const unsigned char *raw, size_t n)
{
	unsigned char	*plain = NULL;
	size_t		 len = 0;
	char		*s;
	int		 rc;

	s = b64_enc(raw, n);
	rc = keys_unwrap(k, s, "ctx", &plain, &len);
	if (rc != ERR_PERM && rc != ERR_INVAL && rc != ERR_NOTFOUND)
		fail_msg("unwrap of a changed blob (%zu bytes) returned %d",
		    n, rc);
	assert_null(plain);
	free(s);
}

static void
test_keyservice_keys__tamper_every_byte(void **state)
{
	struct fx	*f = *state;
	unsigned char	*raw, secret[40];
	char		*w = NULL;
	size_t		 n, i;
	int		 bit;

	memset(secret, 0x5a, sizeof(secret));
	assert_int_equal(keys_create(f->k, "dept-a"), 0);
	assert_int_equal(keys_create(f->k, "dept-b"), 0);
	assert_int_equal(keys_rotate(f->k, "dept-a", NULL), 0);
	assert_int_equal(keys_wrap(f->k, "dept-a", "ctx", secret,
	    sizeof(secret), &w, NULL), 0);
	raw = b64_dec(w, &n);
	assert_int_equal(n, 3 + 6 + 4 + 12 + sizeof(secret) + 16);
	for (i = 0; i < n; i++) {
		for (bit = 0; bit < 8; bit++) {
			raw[i] ^= 1u << bit;
			tamper_expect_fail(f->k, raw, n);
			raw[i] ^= 1u << bit;
		}
	}
	/* every truncation, and one byte too many */
	for (i = 1; i < n; i++)
		tamper_expect_fail(f->k, raw, i);
	raw = xreallocarray(raw, n + 1, 1);
	raw[n] = 0;
	tamper_expect_fail(f->k, raw, n + 1);
	/* the original still unwraps */
	unwrap_expect(f->k, w, "ctx", secret, sizeof(secret));
	free(raw);
	free(w);
}

static void
test_keyservice_keys__rotate_rewrap(void **state)
{
	struct fx		*f = *state;
	struct keys_version	*v = NULL;
	unsigned char		 dek[KEYS_DEK_LEN];
	char			*w1 = NULL, *w2 = NULL, *w3 = NULL;
	char			 id[KEYS_ID_MAX + 1];
	uint32_t		 ver = 0;
	size_t			 n = 0;

	assert_int_equal(keys_rotate(f->k, "dept-a", &ver), ERR_NOTFOUND);
	assert_int_equal(keys_create(f->k, "dept-a"), 0);
	assert_int_equal(keys_datakey(f->k, "dept-a", "space:a/docs", dek,
	    &w1, &ver), 0);
	assert_int_equal(ver, 1);
	assert_int_equal(keys_rotate(f->k, "dept-a", &ver), 0);
	assert_int_equal(ver, 2);
	unwrap_expect(f->k, w1, "space:a/docs", dek, sizeof(dek));
	assert_int_equal(keys_rewrap(f->k, w1, "space:a/docs", &w2, &ver), 0);
	assert_int_equal(ver, 2);
	assert_int_equal(keys_describe(w2, id, sizeof(id), &ver), 0);
	assert_string_equal(id, "dept-a");
	assert_int_equal(ver, 2);
	unwrap_expect(f->k, w2, "space:a/docs", dek, sizeof(dek));
	/* rewrap needs the right context too */
	assert_int_equal(keys_rewrap(f->k, w1, "space:a/other", &w3, &ver),
	    ERR_PERM);
	assert_null(w3);
	/* new wraps use the newest */
	assert_int_equal(keys_rotate(f->k, "dept-a", &ver), 0);
	assert_int_equal(ver, 3);
	assert_int_equal(keys_wrap(f->k, "dept-a", "c", dek, 1, &w3, &ver),
	    0);
	assert_int_equal(ver, 3);
	assert_int_equal(keys_versions(f->k, "dept-a", &v, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(v[0].version, 1);
	assert_int_equal(v[1].version, 2);
	assert_int_equal(v[2].version, 3);
	assert_int_equal(v[0].uses, 1);
	assert_int_equal(v[1].uses, 1);
	assert_int_equal(v[2].uses, 1);
	free(v);
	/* after reopen the old versions still unwrap */
	fx_reopen(f);
	unwrap_expect(f->k, w1, "space:a/docs", dek, sizeof(dek));
	unwrap_expect(f->k, w2, "space:a/docs", dek, sizeof(dek));
	unwrap_expect(f->k, w3, "c", dek, 1);
	free(w1);
	free(w2);
	free(w3);
	explicit_bzero(dek, sizeof(dek));
}

static void
test_keyservice_keys__describe(void **state)
{
	struct fx	*f = *state;
	char		*w = NULL, id[KEYS_ID_MAX + 1], small[7];
	char		 longid[KEYS_ID_MAX + 1];
	uint32_t	 ver = 0;

	memset(longid, 'z', KEYS_ID_MAX);
	longid[KEYS_ID_MAX] = '\0';
	assert_int_equal(keys_create(f->k, longid), 0);
	assert_int_equal(keys_wrap(f->k, longid, "", "s", 1, &w, NULL), 0);
	assert_int_equal(keys_describe(w, id, sizeof(id), &ver), 0);
	assert_string_equal(id, longid);
	assert_int_equal(ver, 1);
	assert_int_equal(keys_describe(w, NULL, 0, NULL), 0);
	assert_int_equal(keys_describe(w, small, sizeof(small), &ver),
	    ERR_TOOBIG);
	free(w);
	assert_int_equal(keys_create(f->k, "dept-a"), 0);
	assert_int_equal(keys_wrap(f->k, "dept-a", "", "s", 1, &w, NULL), 0);
	/* "dept-a" needs 7 bytes with its NUL */
	assert_int_equal(keys_describe(w, small, 6, &ver), ERR_TOOBIG);
	assert_int_equal(keys_describe(w, small, sizeof(small), &ver), 0);
	assert_string_equal(small, "dept-a");
	w[strlen(w) - 8] = '\0';	/* cut into the tag */
	assert_int_equal(keys_describe(w, id, sizeof(id), &ver), ERR_INVAL);
	assert_int_equal(keys_describe("", id, sizeof(id), &ver), ERR_INVAL);
	assert_int_equal(keys_describe("S2V5", id, sizeof(id), &ver),
	    ERR_INVAL);
	assert_int_equal(keys_describe(NULL, id, sizeof(id), &ver),
	    ERR_INVAL);
	free(w);
}

static void
test_keyservice_keys__reopen_nonces(void **state)
{
	struct fx	*f = *state;
	unsigned char	 nonces[8][12], dek[8][KEYS_DEK_LEN];
	char		*w[8];
	uint64_t	 before;
	size_t		 i;

	assert_int_equal(keys_create(f->k, "dept-a"), 0);
	for (i = 0; i < 4; i++) {
		assert_int_equal(keys_datakey(f->k, "dept-a", "ctx", dek[i],
		    &w[i], NULL), 0);
		assert_int_equal(counter_of(w[i]), i);
	}
	assert_int_equal(uses_of(f->k, "dept-a", 1), 4);
	fx_reopen(f);
	/* uncached: the stored (reserved) limit */
	before = uses_of(f->k, "dept-a", 1);
	assert_int_equal(before, KEYS_COUNTER_BLOCK);
	for (i = 4; i < 8; i++) {
		assert_int_equal(keys_datakey(f->k, "dept-a", "ctx", dek[i],
		    &w[i], NULL), 0);
		assert_int_equal(counter_of(w[i]), before + (i - 4));
	}
	assert_int_equal(uses_of(f->k, "dept-a", 1), before + 4);
	/* a crash loses the rest of the block: resume past it */
	fx_reopen(f);
	assert_int_equal(uses_of(f->k, "dept-a", 1), 2 * KEYS_COUNTER_BLOCK);
	for (i = 0; i < 8; i++) {
		nonce_of(w[i], nonces[i]);
		unwrap_expect(f->k, w[i], "ctx", dek[i], KEYS_DEK_LEN);
	}
	qsort(nonces, 8, 12, cmp_nonce);
	for (i = 1; i < 8; i++)
		assert_memory_not_equal(nonces[i - 1], nonces[i], 12);
	for (i = 0; i < 8; i++)
		free(w[i]);
	explicit_bzero(dek, sizeof(dek));
}

static void
test_keyservice_keys__counter_block(void **state)
{
	struct fx	*f = *state;
	char		*w = NULL, *first = NULL;
	uint64_t	 i;

	/* cross one reservation boundary in process: strictly sequential */
	assert_int_equal(keys_create(f->k, "dept-a"), 0);
	for (i = 0; i < KEYS_COUNTER_BLOCK + 2; i++) {
		assert_int_equal(keys_wrap(f->k, "dept-a", "c", "x", 1, &w,
		    NULL), 0);
		if (counter_of(w) != i)
			fail_msg("wrap %llu got counter %llu",
			    (unsigned long long)i,
			    (unsigned long long)counter_of(w));
		if (i == 0)
			first = w;
		else
			free(w);
	}
	fx_reopen(f);
	assert_int_equal(uses_of(f->k, "dept-a", 1), 2 * KEYS_COUNTER_BLOCK);
	unwrap_expect(f->k, first, "c", "x", 1);
	free(first);
}

static void
test_keyservice_keys__counter_exhausted(void **state)
{
	struct fx	*f = *state;
	struct patch	 p;
	char		*w = NULL;
	uint64_t	 lim;
	int		 i;

	assert_int_equal(keys_create(f->k, "dept-a"), 0);
	patch_key(&p, f->db, "dept-a", 1);
	assert_int_equal(db_read(f->db, patch_get_fn, &p), 0);
	assert_int_equal(p.vallen, REC_LEN);
	/* stored limit: no room for one more block */
	lim = UINT64_MAX - KEYS_COUNTER_BLOCK + 1;
	for (i = 0; i < 8; i++)
		p.val[REC_LIMIT_OFF + i] = (unsigned char)(lim >> (56 - 8 * i));
	assert_int_equal(db_write(f->db, patch_put_fn, &p), 0);
	fx_reopen(f);
	assert_int_equal(keys_wrap(f->k, "dept-a", "c", "x", 1, &w, NULL),
	    ERR_TOOBIG);
	assert_null(w);
	assert_non_null(strstr(err_msg(), "exhausted"));
}

static void
test_keyservice_keys__wrong_master(void **state)
{
	struct fx	*f = *state;
	unsigned char	 other[KEYS_MASTER_LEN];
	char		*w = NULL;

	assert_int_equal(keys_create(f->k, "dept-a"), 0);
	assert_int_equal(keys_wrap(f->k, "dept-a", "c", "x", 1, &w, NULL), 0);
	fx_close(f);
	memcpy(other, master, sizeof(other));
	other[0] ^= 1;
	assert_int_equal(fx_open(f, other), ERR_PERM);
	assert_null(f->k);
	assert_non_null(strstr(err_msg(), "master key does not match"));
	db_close(&f->db);
	assert_int_equal(fx_open(f, master), 0);
	unwrap_expect(f->k, w, "c", "x", 1);
	free(w);
}

static void
test_keyservice_keys__bad_kek_record(void **state)
{
	struct fx	*f = *state;
	struct patch	 p;
	struct keys_version *v = NULL;
	unsigned char	*plain = NULL;
	char		*w = NULL, *wc = NULL;
	size_t		 n = 0;

	assert_int_equal(keys_create(f->k, "dept-a"), 0);
	assert_int_equal(keys_create(f->k, "dept-b"), 0);
	assert_int_equal(keys_create(f->k, "dept-c"), 0);
	assert_int_equal(keys_wrap(f->k, "dept-b", "c", "x", 1, &w, NULL), 0);
	assert_int_equal(keys_wrap(f->k, "dept-c", "c", "x", 1, &wc, NULL),
	    0);
	/* flip a bit of dept-b's sealed KEK */
	patch_key(&p, f->db, "dept-b", 1);
	assert_int_equal(db_read(f->db, patch_get_fn, &p), 0);
	p.val[REC_LEN - 20] ^= 0x01;
	assert_int_equal(db_write(f->db, patch_put_fn, &p), 0);
	/* truncate dept-c's record */
	patch_key(&p, f->db, "dept-c", 1);
	assert_int_equal(db_read(f->db, patch_get_fn, &p), 0);
	p.vallen = 10;
	assert_int_equal(db_write(f->db, patch_put_fn, &p), 0);
	fx_reopen(f);
	assert_int_equal(keys_unwrap(f->k, w, "c", &plain, &n), ERR_PERM);
	assert_non_null(strstr(err_msg(), "dept-b v1"));
	assert_non_null(strstr(err_msg(), "master key"));
	assert_int_equal(keys_unwrap(f->k, wc, "c", &plain, &n), ERR_IO);
	assert_non_null(strstr(err_msg(), "dept-c v1 malformed"));
	assert_int_equal(keys_versions(f->k, "dept-c", &v, &n), ERR_IO);
	assert_null(v);
	assert_int_equal(keys_rotate(f->k, "dept-a", NULL), 0);
	free(w);
	free(wc);
}

static void
test_keyservice_keys__version_limit(void **state)
{
	struct fx	*f = *state;
	struct patch	 p;
	uint32_t	 ver = 0;

	assert_int_equal(keys_create(f->k, "dept-a"), 0);
	patch_key(&p, f->db, "dept-a", 1);
	assert_int_equal(db_read(f->db, patch_get_fn, &p), 0);
	/* plant a record at the last allowed version */
	patch_key(&p, f->db, "dept-a", KEYS_VERSION_MAX);
	assert_int_equal(db_write(f->db, patch_put_fn, &p), 0);
	assert_int_equal(keys_rotate(f->k, "dept-a", &ver), ERR_TOOBIG);
	/* and one past it is a malformed store */
	patch_key(&p, f->db, "dept-a", KEYS_VERSION_MAX + 1);
	assert_int_equal(db_write(f->db, patch_put_fn, &p), 0);
	assert_int_equal(keys_rotate(f->k, "dept-a", &ver), ERR_IO);
}

static void
test_keyservice_keys__bad_ids(void **state)
{
	struct fx	*f = *state;
	const char	*bad[] = { "", "A", "dept a", "dept/a", "dépt",
	    "dept\na", "dept:a" };
	char		 longid[KEYS_ID_MAX + 2], *w = NULL;
	struct keys_version *v = NULL;
	size_t		 i, n = 0;

	for (i = 0; i < nitems(bad); i++) {
		assert_int_equal(keys_create(f->k, bad[i]), ERR_INVAL);
		assert_int_equal(keys_rotate(f->k, bad[i], NULL), ERR_INVAL);
		assert_int_equal(keys_wrap(f->k, bad[i], "", "x", 1, &w, NULL),
		    ERR_INVAL);
		assert_int_equal(keys_versions(f->k, bad[i], &v, &n),
		    ERR_INVAL);
	}
	assert_int_equal(keys_create(f->k, NULL), ERR_INVAL);
	memset(longid, 'a', sizeof(longid));
	longid[KEYS_ID_MAX + 1] = '\0';
	assert_int_equal(keys_create(f->k, longid), ERR_INVAL);
	longid[KEYS_ID_MAX] = '\0';
	assert_int_equal(keys_create(f->k, longid), 0);
	assert_int_equal(keys_create(f->k, "a.b_c-0.9"), 0);
	/* valid but unknown */
	assert_int_equal(keys_wrap(f->k, "dept-z", "", "x", 1, &w, NULL),
	    ERR_NOTFOUND);
	assert_null(w);
	assert_int_equal(keys_versions(f->k, "dept-z", &v, &n),
	    ERR_NOTFOUND);
	assert_int_equal(keys_rotate(f->k, "dept-z", NULL), ERR_NOTFOUND);
}

static void
test_keyservice_keys__context_limit(void **state)
{
	struct fx	*f = *state;
	char		 ctx[KEYS_CONTEXT_MAX + 2], *w = NULL;
	unsigned char	*plain = NULL;
	size_t		 n = 0;

	assert_int_equal(keys_create(f->k, "dept-a"), 0);
	memset(ctx, 'c', sizeof(ctx));
	ctx[KEYS_CONTEXT_MAX] = '\0';
	assert_int_equal(keys_wrap(f->k, "dept-a", ctx, "x", 1, &w, NULL), 0);
	unwrap_expect(f->k, w, ctx, "x", 1);
	ctx[KEYS_CONTEXT_MAX] = 'c';
	ctx[KEYS_CONTEXT_MAX + 1] = '\0';
	assert_int_equal(keys_unwrap(f->k, w, ctx, &plain, &n), ERR_INVAL);
	free(w);
	w = NULL;
	assert_int_equal(keys_wrap(f->k, "dept-a", ctx, "x", 1, &w, NULL),
	    ERR_INVAL);
	assert_null(w);
	assert_int_equal(keys_wrap(f->k, "dept-a", NULL, "x", 1, &w, NULL),
	    ERR_INVAL);
	assert_int_equal(keys_wrap(f->k, "dept-a", "", "x", 1, &w, NULL), 0);
	unwrap_expect(f->k, w, "", "x", 1);
	free(w);
}

static void
test_keyservice_keys__plain_limit(void **state)
{
	struct fx	*f = *state;
	unsigned char	*big;
	char		*w = NULL, longid[KEYS_ID_MAX + 1];

	big = xmalloc(KEYS_PLAIN_MAX + 1);
	memset(big, 0xa5, KEYS_PLAIN_MAX + 1);
	memset(longid, 'q', KEYS_ID_MAX);
	longid[KEYS_ID_MAX] = '\0';
	assert_int_equal(keys_create(f->k, longid), 0);
	/* the longest blob: longest id, KEYS_PLAIN_MAX bytes */
	assert_int_equal(keys_wrap(f->k, longid, "c", big, KEYS_PLAIN_MAX,
	    &w, NULL), 0);
	unwrap_expect(f->k, w, "c", big, KEYS_PLAIN_MAX);
	free(w);
	w = NULL;
	assert_int_equal(keys_wrap(f->k, longid, "c", big,
	    KEYS_PLAIN_MAX + 1, &w, NULL), ERR_INVAL);
	assert_null(w);
	assert_int_equal(keys_wrap(f->k, longid, "c", big, 0, &w, NULL),
	    ERR_INVAL);
	free(big);
}

static void
test_keyservice_keys__malformed_base64(void **state)
{
	struct fx	*f = *state;
	const char	*bad[] = { "", "A", "AB", "ABC", "A===", "====",
	    "AB=C", "AB C", " ABC", "ABCD\n", "AB\nCD", "AB-_", "ABCD====",
	    "AAAAAA==", "AAAAAAB=", "ABCD=", "S2V5" };
	const char	*b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char	*plain = NULL;
	char		*w = NULL, *big, *s;
	size_t		 i, n = 0, len;

	assert_int_equal(keys_create(f->k, "dept-a"), 0);
	for (i = 0; i < nitems(bad); i++) {
		if (keys_unwrap(f->k, bad[i], "c", &plain, &n) != ERR_INVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	assert_int_equal(keys_unwrap(f->k, NULL, "c", &plain, &n), ERR_INVAL);
	/* non-canonical trailing bits (a 43-byte blob ends in "x==") */
	assert_int_equal(keys_wrap(f->k, "dept-a", "c", "xy", 2, &w, NULL),
	    0);
	len = strlen(w);
	assert_true(len > 3 && w[len - 1] == '=' && w[len - 2] == '=');
	s = xstrdup(w);
	s[len - 3] = b64[(strchr(b64, s[len - 3]) - b64) | 1];
	assert_int_equal(keys_unwrap(f->k, s, "c", &plain, &n), ERR_INVAL);
	free(s);
	/* whitespace inside an otherwise valid key */
	s = xmalloc(len + 2);
	memcpy(s, w, 8);
	s[8] = '\n';
	memcpy(s + 9, w + 8, len - 8 + 1);
	assert_int_equal(keys_unwrap(f->k, s, "c", &plain, &n), ERR_INVAL);
	free(s);
	free(w);
	/* far over the longest valid blob: refused before decoding */
	big = xmalloc(4 * 1024 * 1024 + 1);
	memset(big, 'A', 4 * 1024 * 1024);
	big[4 * 1024 * 1024] = '\0';
	assert_int_equal(keys_unwrap(f->k, big, "c", &plain, &n), ERR_INVAL);
	assert_int_equal(keys_describe(big, NULL, 0, NULL), ERR_INVAL);
	free(big);
	assert_null(plain);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name)	cmocka_unit_test_setup_teardown(test_keyservice_keys__##name, \
		    setup, teardown)
		T(create_exists),
		T(datakey_unwrap),
		T(wrong_context),
		T(tamper_every_byte),
		T(rotate_rewrap),
		T(describe),
		T(reopen_nonces),
		T(counter_block),
		T(counter_exhausted),
		T(wrong_master),
		T(bad_kek_record),
		T(version_limit),
		T(bad_ids),
		T(context_limit),
		T(plain_limit),
		T(malformed_base64),
#undef T
	};
	int	rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
