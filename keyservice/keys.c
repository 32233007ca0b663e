/*
 * keys.c -- the key hierarchy: master key -> KEK versions -> wrapped keys
 * (see keys.h for the contract and the wrapped-key format).
 *
 * Runs in: keyservice, on its event loop thread only (no locking; all
 * state lives in struct keys).
 * Failure policy: negative enum err with err_set(); LMDB failures are
 * ERR_IO; stored records are untrusted and a malformed one is ERR_IO
 * naming the key id and version; a KEK that does not authenticate under
 * the master key, or a wrapped key under its KEK, is ERR_PERM.  A counter
 * reservation that cannot be written fails the wrap.
 * SECURITY: the master key and every unwrapped KEK live in mlock'ed,
 * MADV_DONTDUMP pages that keys_close() wipes; plaintext scratch buffers
 * are wiped before they are freed; nothing secret is logged.  Nonces of
 * a KEK version are fixed(4) || counter(8) and the counter is reserved
 * durably in blocks before use, so a nonce never repeats across crashes.
 *
 * Storage: named LMDB database "keks".  Record key: key id || NUL ||
 * be32 version, so a cursor walks one key id's versions oldest first.
 * Record value (KEYS_REC_LEN bytes):
 *	format (1) = 1 | created (be64) | fixed (be32) | limit (be64) |
 *	nonce (12) | wrapped KEK (32) | tag (16)
 * where the KEK is sealed under the master key with AES-256-GCM, random
 * nonce, AAD "amanat-kek-v1" || NUL || key id || NUL || be32 version, and
 * limit is the reserved counter bound: every nonce below it may have been
 * used.  The in-process cache holds each KEK version unwrapped at most
 * once, with the next counter and the reserved limit; when they meet, a
 * write transaction raises the stored limit by KEYS_COUNTER_BLOCK first.
 */
#include <sys/mman.h>

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/base64.h"
#include "common/db.h"
#include "common/err.h"
#include "common/gcm.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/xmalloc.h"
#include "keyservice/keys.h"

#define KEYS_IV_LEN	12
#define KEYS_TAG_LEN	16
#define KEYS_REC_FORMAT	1
#define KEYS_REC_LEN	(1 + 8 + 4 + 8 + KEYS_IV_LEN + KEYS_KEK_LEN + \
			    KEYS_TAG_LEN)
#define KEYS_DBKEY_MAX	(KEYS_ID_MAX + 1 + 4)

/* Wrapped blob: 'K' 0x01 | id_len | id | be32 version | nonce | ct | tag */
#define KEYS_MAGIC0	'K'
#define KEYS_MAGIC1	0x01
#define KEYS_HDR_MIN	(3 + 1 + 4 + KEYS_IV_LEN)
#define KEYS_HDR_MAX	(3 + KEYS_ID_MAX + 4 + KEYS_IV_LEN)
#define KEYS_BLOB_MAX	(KEYS_HDR_MAX + KEYS_PLAIN_MAX + KEYS_TAG_LEN)
#define KEYS_B64_LEN(n)	(((n) + 2) / 3 * 4)
#define KEYS_B64_MAX	KEYS_B64_LEN(KEYS_BLOB_MAX)

#define KEYS_CACHE_MIN	64	/* initial hash buckets */

static const char	keys_kek_label[] = "amanat-kek-v1";	/* + NUL */
static const char	keys_wrap_label[] = "amanat-wrap-v1";	/* + NUL */

/* One cached KEK version. */
struct keys_kek {
	struct keys_kek	*next;		/* hash chain */
	unsigned char	*key;		/* KEYS_KEK_LEN, in a locked page */
	uint64_t	 ctr;		/* next nonce counter */
	uint64_t	 limit;		/* reserved bound (stored) */
	uint32_t	 version;
	uint32_t	 fixed;		/* nonce fixed field */
	size_t		 idlen;
	char		 id[KEYS_ID_MAX + 1];
};

/* A page of locked memory carved into key-sized slots, never freed early. */
struct keys_page {
	struct keys_page	*next;
	unsigned char		*mem;
	size_t			 used;
};

struct keys {
	struct db_env		*db;
	MDB_dbi			 dbi;
	unsigned char		*master;	/* KEYS_MASTER_LEN, locked */
	struct keys_page	*pages;
	size_t			 pagesz;
	int			 mlock_warned;
	struct keys_kek		**buckets;
	size_t			 nbuckets;
	size_t			 nkeks;
};

/* A stored KEK record, decoded. */
struct keys_rec {
	uint64_t	created;
	uint64_t	limit;
	uint32_t	fixed;
	unsigned char	iv[KEYS_IV_LEN];
	unsigned char	ct[KEYS_KEK_LEN];
	unsigned char	tag[KEYS_TAG_LEN];
};

/* A parsed wrapped-key header; pointers into the decoded blob. */
struct keys_hdr {
	const unsigned char	*id;
	size_t			 idlen;
	uint32_t		 version;
	size_t			 hdrlen;	/* through the nonce */
};

_Static_assert(KEYS_IV_LEN == GCM_IV_LEN && KEYS_TAG_LEN == GCM_TAG_LEN,
    "keys records use common/gcm's sizes");

static void
keys_put32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static void
keys_put64(unsigned char *p, uint64_t v)
{
	keys_put32(p, (uint32_t)(v >> 32));
	keys_put32(p + 4, (uint32_t)v);
}

static uint32_t
keys_get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
keys_get64(const unsigned char *p)
{
	return (uint64_t)keys_get32(p) << 32 | keys_get32(p + 4);
}

/* 1 if p (n bytes) is a valid key id: 1..KEYS_ID_MAX of [a-z0-9._-]. */
static int
keys_id_valid(const void *p, size_t n)
{
	const unsigned char	*s = p;
	size_t			 i;

	if (n == 0 || n > KEYS_ID_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return 0;
	}
	return 1;
}

static int
keys_id_check(const char *id, size_t *len)
{
	size_t	n;

	if (id == NULL || (n = strnlen(id, KEYS_ID_MAX + 1)) == 0 ||
	    n > KEYS_ID_MAX || !keys_id_valid(id, n)) {
		err_set(ERR_INVAL, "key id must be 1-%d bytes of [a-z0-9._-]",
		    KEYS_ID_MAX);
		return ERR_INVAL;
	}
	*len = n;
	return 0;
}

static int
keys_ctx_check(const char *context, size_t *len)
{
	size_t	n;

	if (context == NULL ||
	    (n = strnlen(context, KEYS_CONTEXT_MAX + 1)) > KEYS_CONTEXT_MAX) {
		err_set(ERR_INVAL, "context must be at most %d bytes",
		    KEYS_CONTEXT_MAX);
		return ERR_INVAL;
	}
	*len = n;
	return 0;
}

/* LMDB record key for (id, version); returns its length. */
static size_t
keys_dbkey(unsigned char *out, const char *id, size_t idlen, uint32_t v)
{
	memcpy(out, id, idlen);
	out[idlen] = '\0';
	keys_put32(out + idlen + 1, v);
	return idlen + 5;
}

/* ---------------------------------------------------------- locked memory */

/* KEYS_KEK_LEN bytes of locked memory, valid until keys_close(). */
static unsigned char *
keys_secret_alloc(struct keys *k)
{
	struct keys_page	*pg = k->pages;
	void			*mem;

	if (pg == NULL || pg->used + KEYS_KEK_LEN > k->pagesz) {
		mem = mmap(NULL, k->pagesz, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED)
			fatal("keys: mmap of a key page");
		if (mlock(mem, k->pagesz) == -1 && !k->mlock_warned) {
			log_warn("keys mlock failed, keys may be swapped");
			k->mlock_warned = 1;
		}
#ifdef MADV_DONTDUMP
		(void)madvise(mem, k->pagesz, MADV_DONTDUMP);
#endif
		pg = xcalloc(1, sizeof(*pg));
		pg->mem = mem;
		pg->next = k->pages;
		k->pages = pg;
	}
	pg->used += KEYS_KEK_LEN;
	return pg->mem + pg->used - KEYS_KEK_LEN;
}

static void
keys_pages_free(struct keys *k)
{
	struct keys_page	*pg;

	while ((pg = k->pages) != NULL) {
		k->pages = pg->next;
		explicit_bzero(pg->mem, k->pagesz);
		(void)munlock(pg->mem, k->pagesz);
		(void)munmap(pg->mem, k->pagesz);
		free(pg);
	}
}

/* ---------------------------------------------------------------- cache */

static size_t
keys_hash(const char *id, size_t idlen, uint32_t v, size_t nbuckets)
{
	uint64_t	h = 1469598103934665603ULL;	/* FNV-1a */
	size_t		i;

	for (i = 0; i < idlen; i++)
		h = (h ^ (unsigned char)id[i]) * 1099511628211ULL;
	for (i = 0; i < 4; i++)
		h = (h ^ ((v >> (8 * i)) & 0xff)) * 1099511628211ULL;
	return (size_t)(h % nbuckets);
}

static struct keys_kek *
keys_cache_find(struct keys *k, const char *id, size_t idlen, uint32_t v)
{
	struct keys_kek	*e;

	e = k->buckets[keys_hash(id, idlen, v, k->nbuckets)];
	for (; e != NULL; e = e->next) {
		if (e->version == v && e->idlen == idlen &&
		    memcmp(e->id, id, idlen) == 0)
			return e;
	}
	return NULL;
}

static void
keys_cache_grow(struct keys *k)
{
	struct keys_kek	**nb, *e;
	size_t		  n = k->nbuckets * 2, i, h;

	nb = xcalloc(n, sizeof(*nb));
	for (i = 0; i < k->nbuckets; i++) {
		while ((e = k->buckets[i]) != NULL) {
			k->buckets[i] = e->next;
			h = keys_hash(e->id, e->idlen, e->version, n);
			e->next = nb[h];
			nb[h] = e;
		}
	}
	free(k->buckets);
	k->buckets = nb;
	k->nbuckets = n;
}

/*
 * Cache an unwrapped KEK (copied into locked memory).  The counter starts
 * at limit, so the first use reserves a fresh block.
 */
static struct keys_kek *
keys_cache_add(struct keys *k, const char *id, size_t idlen, uint32_t v,
    const struct keys_rec *rec, const unsigned char *kek)
{
	struct keys_kek	*e;
	size_t		 h;

	if (k->nkeks >= k->nbuckets)
		keys_cache_grow(k);
	e = xcalloc(1, sizeof(*e));
	e->key = keys_secret_alloc(k);
	memcpy(e->key, kek, KEYS_KEK_LEN);
	memcpy(e->id, id, idlen);
	e->idlen = idlen;
	e->version = v;
	e->fixed = rec->fixed;
	e->ctr = e->limit = rec->limit;
	h = keys_hash(id, idlen, v, k->nbuckets);
	e->next = k->buckets[h];
	k->buckets[h] = e;
	k->nkeks++;
	return e;
}

static void
keys_cache_free(struct keys *k)
{
	struct keys_kek	*e;
	size_t		 i;

	for (i = 0; k->buckets != NULL && i < k->nbuckets; i++) {
		while ((e = k->buckets[i]) != NULL) {
			k->buckets[i] = e->next;
			free(e);	/* e->key is wiped with its page */
		}
	}
	free(k->buckets);
	k->buckets = NULL;
}

/* ---------------------------------------------------------------- crypto */

/* Seal (enc) or open a KEK record's key under the master key. */
static int
keys_kek_crypt(struct keys *k, int enc, const char *id, size_t idlen,
    uint32_t v, struct keys_rec *rec, unsigned char *kek)
{
	struct gcm_aad	aad[4];
	unsigned char	zero = 0, be[4];
	int		rc;

	keys_put32(be, v);
	aad[0].p = keys_kek_label;
	aad[0].n = sizeof(keys_kek_label);	/* with its NUL */
	aad[1].p = id;
	aad[1].n = idlen;
	aad[2].p = &zero;
	aad[2].n = 1;
	aad[3].p = be;
	aad[3].n = sizeof(be);
	if (enc)
		return gcm_crypt(1, k->master, rec->iv, aad, 4, kek,
		    KEYS_KEK_LEN, rec->ct, rec->tag);
	rc = gcm_crypt(0, k->master, rec->iv, aad, 4, rec->ct,
	    KEYS_KEK_LEN, kek, rec->tag);
	if (rc == ERR_PERM)
		err_set(ERR_PERM, "KEK %.*s v%u does not authenticate under "
		    "this master key (wrong master key or tampered store)",
		    (int)idlen, id, v);
	return rc;
}

/* ------------------------------------------------------------- records */

static void
keys_rec_encode(unsigned char *out, const struct keys_rec *rec)
{
	unsigned char	*p = out;

	*p++ = KEYS_REC_FORMAT;
	keys_put64(p, rec->created);
	p += 8;
	keys_put32(p, rec->fixed);
	p += 4;
	keys_put64(p, rec->limit);
	p += 8;
	memcpy(p, rec->iv, KEYS_IV_LEN);
	p += KEYS_IV_LEN;
	memcpy(p, rec->ct, KEYS_KEK_LEN);
	p += KEYS_KEK_LEN;
	memcpy(p, rec->tag, KEYS_TAG_LEN);
}

static int
keys_rec_decode(struct keys_rec *rec, const MDB_val *val, const char *id,
    size_t idlen, uint32_t v)
{
	const unsigned char	*p = val->mv_data;

	if (val->mv_size != KEYS_REC_LEN || p[0] != KEYS_REC_FORMAT) {
		err_set(ERR_IO, "keks record %.*s v%u malformed (%zu bytes)",
		    (int)idlen, id, v, val->mv_size);
		return ERR_IO;
	}
	p++;
	rec->created = keys_get64(p);
	p += 8;
	rec->fixed = keys_get32(p);
	p += 4;
	rec->limit = keys_get64(p);
	p += 8;
	memcpy(rec->iv, p, KEYS_IV_LEN);
	p += KEYS_IV_LEN;
	memcpy(rec->ct, p, KEYS_KEK_LEN);
	p += KEYS_KEK_LEN;
	memcpy(rec->tag, p, KEYS_TAG_LEN);
	return 0;
}

/*
 * Parse a record key into id (pointer into the key) and version; ERR_IO
 * for anything we would not have written.
 */
static int
keys_dbkey_parse(const MDB_val *key, const char **id, size_t *idlen,
    uint32_t *v)
{
	const unsigned char	*p = key->mv_data;
	size_t			 n = key->mv_size;

	if (n < 6 || n > KEYS_DBKEY_MAX || p[n - 5] != '\0' ||
	    !keys_id_valid(p, n - 5) || (*v = keys_get32(p + n - 4)) == 0 ||
	    *v > KEYS_VERSION_MAX) {
		err_set(ERR_IO, "keks: malformed record key (%zu bytes)", n);
		return ERR_IO;
	}
	*id = (const char *)p;
	*idlen = n - 5;
	return 0;
}

/*
 * The newest version of id in this txn, with its value: ERR_NOTFOUND if
 * id has none.
 */
static int
keys_txn_newest(MDB_txn *txn, MDB_dbi dbi, const char *id, size_t idlen,
    uint32_t *v, MDB_val *val)
{
	MDB_cursor	*cur = NULL;
	MDB_val		 key;
	unsigned char	 kb[KEYS_ID_MAX + 1];
	const char	*kid;
	size_t		 kidlen;
	int		 rc, mrc;

	if ((mrc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return db_err(mrc, "keks cursor");
	/* id || 0x01 sorts after every id || NUL || version */
	memcpy(kb, id, idlen);
	kb[idlen] = 0x01;
	key.mv_data = kb;
	key.mv_size = idlen + 1;
	mrc = mdb_cursor_get(cur, &key, val, MDB_SET_RANGE);
	if (mrc == 0)
		mrc = mdb_cursor_get(cur, &key, val, MDB_PREV);
	else if (mrc == MDB_NOTFOUND)
		mrc = mdb_cursor_get(cur, &key, val, MDB_LAST);
	if (mrc == MDB_NOTFOUND || (mrc == 0 && (key.mv_size != idlen + 5 ||
	    memcmp(key.mv_data, kb, idlen) != 0 ||
	    ((unsigned char *)key.mv_data)[idlen] != '\0'))) {
		err_set(ERR_NOTFOUND, "no key id %.*s", (int)idlen, id);
		rc = ERR_NOTFOUND;
		goto done;
	}
	if (mrc != 0) {
		rc = db_err(mrc, "keks cursor");
		goto done;
	}
	rc = keys_dbkey_parse(&key, &kid, &kidlen, v);
done:
	mdb_cursor_close(cur);
	return rc;
}

/* --------------------------------------------------- db transactions */

/* Read one record (version 0: the newest). */
struct keys_fetch {
	MDB_dbi		 dbi;
	const char	*id;
	size_t		 idlen;
	uint32_t	 version;	/* in: wanted or 0; out: found */
	struct keys_rec	 rec;
};

static int
keys_fetch_fn(MDB_txn *txn, void *arg)
{
	struct keys_fetch	*f = arg;
	unsigned char		 kb[KEYS_DBKEY_MAX];
	MDB_val			 key, val;
	int			 rc, mrc;

	if (f->version == 0) {
		if ((rc = keys_txn_newest(txn, f->dbi, f->id, f->idlen,
		    &f->version, &val)) < 0)
			return rc;
	} else {
		key.mv_data = kb;
		key.mv_size = keys_dbkey(kb, f->id, f->idlen, f->version);
		if ((mrc = mdb_get(txn, f->dbi, &key, &val)) == MDB_NOTFOUND) {
			err_set(ERR_NOTFOUND, "no key %.*s version %u",
			    (int)f->idlen, f->id, f->version);
			return ERR_NOTFOUND;
		}
		if (mrc != 0)
			return db_err(mrc, "keks get");
	}
	return keys_rec_decode(&f->rec, &val, f->id, f->idlen, f->version);
}

/*
 * The cached KEK for (id, version), unwrapping it on first use; version 0
 * means the newest (always looked up in the store, so a rotation by
 * another opener is seen).
 */
static int
keys_kek_get(struct keys *k, const char *id, size_t idlen, uint32_t v,
    struct keys_kek **out)
{
	struct keys_fetch	 f;
	unsigned char		 kek[KEYS_KEK_LEN];
	int			 rc;

	if (v != 0 && (*out = keys_cache_find(k, id, idlen, v)) != NULL)
		return 0;
	memset(&f, 0, sizeof(f));
	f.dbi = k->dbi;
	f.id = id;
	f.idlen = idlen;
	f.version = v;
	if ((rc = db_read(k->db, keys_fetch_fn, &f)) < 0)
		return rc;
	if ((*out = keys_cache_find(k, id, idlen, f.version)) != NULL)
		return 0;
	if ((rc = keys_kek_crypt(k, 0, id, idlen, f.version, &f.rec,
	    kek)) < 0)
		return rc;
	*out = keys_cache_add(k, id, idlen, f.version, &f.rec, kek);
	explicit_bzero(kek, sizeof(kek));
	return 0;
}

/* Durably reserve the next counter block of a version. */
struct keys_resv {
	MDB_dbi		 dbi;
	const char	*id;
	size_t		 idlen;
	uint32_t	 version;
	uint32_t	 fixed;
	uint64_t	 start;		/* out: first counter of the block */
	uint64_t	 limit;		/* out: new stored limit */
};

static int
keys_resv_fn(MDB_txn *txn, void *arg)
{
	struct keys_resv	*r = arg;
	struct keys_rec		 rec;
	unsigned char		 kb[KEYS_DBKEY_MAX], vb[KEYS_REC_LEN];
	MDB_val			 key, val;
	int			 rc, mrc;

	key.mv_data = kb;
	key.mv_size = keys_dbkey(kb, r->id, r->idlen, r->version);
	if ((mrc = mdb_get(txn, r->dbi, &key, &val)) == MDB_NOTFOUND) {
		err_set(ERR_NOTFOUND, "key %.*s version %u vanished from the "
		    "store", (int)r->idlen, r->id, r->version);
		return ERR_NOTFOUND;
	}
	if (mrc != 0)
		return db_err(mrc, "keks get");
	if ((rc = keys_rec_decode(&rec, &val, r->id, r->idlen,
	    r->version)) < 0)
		return rc;
	if (rec.fixed != r->fixed) {
		err_set(ERR_IO, "keks record %.*s v%u changed under us",
		    (int)r->idlen, r->id, r->version);
		return ERR_IO;
	}
	if (rec.limit > UINT64_MAX - KEYS_COUNTER_BLOCK) {
		err_set(ERR_TOOBIG, "key %.*s v%u: nonce counter exhausted",
		    (int)r->idlen, r->id, r->version);
		return ERR_TOOBIG;
	}
	r->start = rec.limit;
	r->limit = rec.limit + KEYS_COUNTER_BLOCK;
	rec.limit = r->limit;
	keys_rec_encode(vb, &rec);
	val.mv_data = vb;
	val.mv_size = sizeof(vb);
	if ((mrc = mdb_put(txn, r->dbi, &key, &val, 0)) != 0)
		return db_err(mrc, "keks reserve");
	return 0;
}

/* The next nonce of a KEK version, reserving a block first if needed. */
static int
keys_nonce(struct keys *k, struct keys_kek *e, unsigned char *nonce)
{
	struct keys_resv	r;
	int			rc;

	if (e->ctr >= e->limit) {
		memset(&r, 0, sizeof(r));
		r.dbi = k->dbi;
		r.id = e->id;
		r.idlen = e->idlen;
		r.version = e->version;
		r.fixed = e->fixed;
		if ((rc = db_write(k->db, keys_resv_fn, &r)) < 0)
			return rc;
		if (r.start < e->limit) {
			/* the store went back in time: never reuse a nonce */
			err_set(ERR_IO, "key %s v%u: stored counter went back "
			    "from %llu to %llu", e->id, e->version,
			    (unsigned long long)e->limit,
			    (unsigned long long)r.start);
			return ERR_IO;
		}
		e->ctr = r.start;
		e->limit = r.limit;
		log_debug("keys reserve id=%s version=%u limit=%llu", e->id,
		    e->version, (unsigned long long)e->limit);
	}
	keys_put32(nonce, e->fixed);
	keys_put64(nonce + 4, e->ctr);
	e->ctr++;
	return 0;
}

/* Add a version: 1 (create) or newest + 1 (rotate). */
struct keys_add {
	struct keys	*k;
	const char	*id;
	size_t		 idlen;
	int		 rotate;
	unsigned char	*kek;		/* plaintext, the caller wipes it */
	struct keys_rec	 rec;		/* created, fixed, limit, iv set */
	uint32_t	 version;	/* out */
};

static int
keys_add_fn(MDB_txn *txn, void *arg)
{
	struct keys_add	*a = arg;
	unsigned char	 kb[KEYS_DBKEY_MAX], vb[KEYS_REC_LEN];
	MDB_val		 key, val;
	int		 rc, mrc;

	a->version = 1;
	if (a->rotate) {
		if ((rc = keys_txn_newest(txn, a->k->dbi, a->id, a->idlen,
		    &a->version, &val)) < 0)
			return rc;
		if (a->version >= KEYS_VERSION_MAX) {
			err_set(ERR_TOOBIG, "key %.*s has %d versions",
			    (int)a->idlen, a->id, KEYS_VERSION_MAX);
			return ERR_TOOBIG;
		}
		a->version++;
	}
	if ((rc = keys_kek_crypt(a->k, 1, a->id, a->idlen, a->version,
	    &a->rec, a->kek)) < 0)
		return rc;
	keys_rec_encode(vb, &a->rec);
	key.mv_data = kb;
	key.mv_size = keys_dbkey(kb, a->id, a->idlen, a->version);
	val.mv_data = vb;
	val.mv_size = sizeof(vb);
	if ((mrc = mdb_put(txn, a->k->dbi, &key, &val, MDB_NOOVERWRITE)) ==
	    MDB_KEYEXIST) {
		err_set(ERR_EXISTS, "key %.*s version %u exists",
		    (int)a->idlen, a->id, a->version);
		return ERR_EXISTS;
	}
	if (mrc != 0)
		return db_err(mrc, "keks put");
	return 0;
}

/*
 * Create (rotate = 0) or rotate a key id.  The new KEK reserves its first
 * counter block in the same record and goes straight into the cache.
 */
static int
keys_add(struct keys *k, const char *id, int rotate, uint32_t *version_out)
{
	struct keys_add	 a;
	struct keys_kek	*e;
	unsigned char	 kek[KEYS_KEK_LEN], fixed[4];
	int		 rc;

	memset(&a, 0, sizeof(a));
	if ((rc = keys_id_check(id, &a.idlen)) < 0)
		return rc;
	if (RAND_priv_bytes(kek, sizeof(kek)) != 1 ||
	    RAND_bytes(fixed, sizeof(fixed)) != 1 ||
	    RAND_bytes(a.rec.iv, sizeof(a.rec.iv)) != 1) {
		rc = tls_error("random bytes for a new KEK");
		goto done;
	}
	a.k = k;
	a.id = id;
	a.rotate = rotate;
	a.kek = kek;
	a.rec.created = (uint64_t)time(NULL);
	a.rec.fixed = keys_get32(fixed);
	a.rec.limit = KEYS_COUNTER_BLOCK;
	if ((rc = db_write(k->db, keys_add_fn, &a)) < 0)
		goto done;
	e = keys_cache_add(k, id, a.idlen, a.version, &a.rec, kek);
	e->ctr = 0;		/* [0, limit) was reserved by the insert */
	if (version_out != NULL)
		*version_out = a.version;
	log_info("keys %s id=%s version=%u", rotate ? "rotate" : "create",
	    id, a.version);
done:
	explicit_bzero(kek, sizeof(kek));
	return rc;
}

/* ------------------------------------------------------------- base64 */

/*
 * Check that s is canonical padded base64 of at most KEYS_B64_MAX
 * characters; *len is its length, *rawlen the decoded length.
 */
static int
keys_b64_check(const char *s, size_t *len, size_t *rawlen)
{
	size_t	n, pad = 0, i;

	if (s == NULL || (n = strnlen(s, KEYS_B64_MAX + 1)) == 0 ||
	    n > KEYS_B64_MAX || n % 4 != 0)
		goto bad;
	if (s[n - 1] == '=')
		pad = s[n - 2] == '=' ? 2 : 1;
	for (i = 0; i < n - pad; i++) {
		if (b64_char_value((unsigned char)s[i], '+', '/') < 0)
			goto bad;
	}
	/* the bits below the last full byte must be zero */
	if ((pad == 2 &&
	    (b64_char_value((unsigned char)s[n - 3], '+', '/') & 0x0f) != 0) ||
	    (pad == 1 &&
	    (b64_char_value((unsigned char)s[n - 2], '+', '/') & 0x03) != 0))
		goto bad;
	*len = n;
	*rawlen = n / 4 * 3 - pad;
	return 0;
bad:
	err_set(ERR_INVAL, "wrapped key is not valid base64");
	return ERR_INVAL;
}

/* Decode the first n characters (a multiple of 4) of checked base64. */
static size_t
keys_b64_decode(unsigned char *out, const char *s, size_t n)
{
	int	r;

	r = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
	return r < 0 ? 0 : (size_t)r;
}

/*
 * Parse a wrapped-key header from raw (n bytes available, total the
 * whole blob's length); ERR_INVAL if malformed.
 */
static int
keys_hdr_parse(struct keys_hdr *h, const unsigned char *raw, size_t n,
    size_t total)
{
	size_t	ctlen;

	if (n < KEYS_HDR_MIN || raw[0] != KEYS_MAGIC0 ||
	    raw[1] != KEYS_MAGIC1 || raw[2] == 0 || raw[2] > KEYS_ID_MAX)
		goto bad;
	h->idlen = raw[2];
	h->id = raw + 3;
	h->hdrlen = 3 + h->idlen + 4 + KEYS_IV_LEN;
	if (n < h->hdrlen || !keys_id_valid(h->id, h->idlen))
		goto bad;
	h->version = keys_get32(raw + 3 + h->idlen);
	if (h->version == 0 || h->version > KEYS_VERSION_MAX)
		goto bad;
	if (total < h->hdrlen + 1 + KEYS_TAG_LEN)
		goto bad;
	ctlen = total - h->hdrlen - KEYS_TAG_LEN;
	if (ctlen > KEYS_PLAIN_MAX)
		goto bad;
	return 0;
bad:
	err_set(ERR_INVAL, "wrapped key is malformed");
	return ERR_INVAL;
}

/* ---------------------------------------------------------- wrap/unwrap */

/* AAD of a wrapped key: label || NUL || header || context. */
static void
keys_wrap_aad(struct gcm_aad *aad, const unsigned char *hdr, size_t hdrlen,
    const char *context, size_t ctxlen)
{
	aad[0].p = keys_wrap_label;
	aad[0].n = sizeof(keys_wrap_label);	/* with its NUL */
	aad[1].p = hdr;
	aad[1].n = hdrlen;
	aad[2].p = context;
	aad[2].n = ctxlen;
}

/* Wrap plain under the newest version of id (both already checked). */
static int
keys_wrap_newest(struct keys *k, const char *id, size_t idlen,
    const char *context, size_t ctxlen, const void *plain, size_t n,
    char **out, uint32_t *version_out)
{
	struct keys_kek	*e;
	struct gcm_aad	 aad[3];
	unsigned char	*blob = NULL, *p;
	size_t		 hdrlen = 3 + idlen + 4 + KEYS_IV_LEN, total;
	int		 rc;

	*out = NULL;
	if ((rc = keys_kek_get(k, id, idlen, 0, &e)) < 0)
		return rc;
	total = hdrlen + n + KEYS_TAG_LEN;
	blob = xmalloc(total);
	p = blob;
	*p++ = KEYS_MAGIC0;
	*p++ = KEYS_MAGIC1;
	*p++ = (unsigned char)idlen;
	memcpy(p, id, idlen);
	p += idlen;
	keys_put32(p, e->version);
	p += 4;
	if ((rc = keys_nonce(k, e, p)) < 0)
		goto done;
	keys_wrap_aad(aad, blob, hdrlen, context, ctxlen);
	if ((rc = gcm_crypt(1, e->key, p, aad, 3, plain, n, blob + hdrlen,
	    blob + hdrlen + n)) < 0)
		goto done;
	*out = xmalloc(KEYS_B64_LEN(total) + 1);
	(void)EVP_EncodeBlock((unsigned char *)*out, blob, (int)total);
	if (version_out != NULL)
		*version_out = e->version;
done:
	free(blob);	/* header and ciphertext only */
	return rc;
}

/*
 * Decode, parse and decrypt a wrapped key.  *plain_out (*len bytes, at
 * least one) is the caller's to xfreezero(); on success the header's key
 * id is copied into id_out (KEYS_ID_MAX + 1 bytes) if non-NULL.
 */
static int
keys_unwrap_raw(struct keys *k, const char *wrapped, const char *context,
    unsigned char **plain_out, size_t *len, char *id_out)
{
	struct keys_hdr	 h;
	struct keys_kek	*e;
	struct gcm_aad	 aad[3];
	unsigned char	*raw = NULL, *plain = NULL;
	size_t		 slen, rawlen, ctxlen, ctlen = 0;
	char		 id[KEYS_ID_MAX + 1];
	int		 rc;

	*plain_out = NULL;
	*len = 0;
	if ((rc = keys_ctx_check(context, &ctxlen)) < 0 ||
	    (rc = keys_b64_check(wrapped, &slen, &rawlen)) < 0)
		return rc;
	raw = xmalloc(slen / 4 * 3);
	if (keys_b64_decode(raw, wrapped, slen) != slen / 4 * 3) {
		err_set(ERR_INVAL, "wrapped key is not valid base64");
		rc = ERR_INVAL;
		goto done;
	}
	if ((rc = keys_hdr_parse(&h, raw, rawlen, rawlen)) < 0)
		goto done;
	memcpy(id, h.id, h.idlen);
	id[h.idlen] = '\0';
	if ((rc = keys_kek_get(k, id, h.idlen, h.version, &e)) < 0)
		goto done;
	ctlen = rawlen - h.hdrlen - KEYS_TAG_LEN;
	plain = xmalloc(ctlen);
	keys_wrap_aad(aad, raw, h.hdrlen, context, ctxlen);
	if ((rc = gcm_crypt(0, e->key, raw + h.hdrlen - KEYS_IV_LEN, aad,
	    3, raw + h.hdrlen, ctlen, plain, raw + h.hdrlen + ctlen)) < 0) {
		if (rc == ERR_PERM)
			err_set(ERR_PERM, "wrapped key does not authenticate "
			    "(wrong context or tampered)");
		goto done;
	}
	if (id_out != NULL)
		memcpy(id_out, id, h.idlen + 1);
	*plain_out = plain;
	*len = ctlen;
	plain = NULL;
done:
	xfreezero(plain, ctlen);
	free(raw);
	return rc;
}

/* Every version of one key id, oldest first. */
struct keys_list {
	MDB_dbi			 dbi;
	const char		*id;
	size_t			 idlen;
	struct keys_version	*v;
	size_t			 n;
	size_t			 cap;
};

static int
keys_list_fn(MDB_txn *txn, void *arg)
{
	struct keys_list	*l = arg;
	MDB_cursor		*cur = NULL;
	MDB_val			 key, val;
	struct keys_rec		 rec;
	unsigned char		 kb[KEYS_DBKEY_MAX];
	const char		*kid;
	size_t			 kidlen;
	uint32_t		 v;
	int			 rc = 0, mrc, op = MDB_SET_RANGE;

	if ((mrc = mdb_cursor_open(txn, l->dbi, &cur)) != 0)
		return db_err(mrc, "keks cursor");
	key.mv_data = kb;
	key.mv_size = keys_dbkey(kb, l->id, l->idlen, 0);
	for (;; op = MDB_NEXT) {
		if ((mrc = mdb_cursor_get(cur, &key, &val, op)) ==
		    MDB_NOTFOUND)
			break;
		if (mrc != 0) {
			rc = db_err(mrc, "keks cursor");
			goto done;
		}
		/* past this id's records? (id || NUL prefix) */
		if (key.mv_size < l->idlen + 1 ||
		    memcmp(key.mv_data, l->id, l->idlen) != 0 ||
		    ((unsigned char *)key.mv_data)[l->idlen] != '\0')
			break;
		if ((rc = keys_dbkey_parse(&key, &kid, &kidlen, &v)) < 0 ||
		    (rc = keys_rec_decode(&rec, &val, l->id, l->idlen,
		    v)) < 0)
			goto done;
		if (l->n == l->cap) {
			l->cap = l->cap ? l->cap * 2 : 4;
			l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
		}
		l->v[l->n].version = v;
		l->v[l->n].created = rec.created;
		l->v[l->n].uses = rec.limit;
		l->n++;
	}
done:
	mdb_cursor_close(cur);
	return rc;
}

/* The first record's key id and version, if any. */
struct keys_first {
	MDB_dbi		 dbi;
	int		 found;
	size_t		 idlen;
	uint32_t	 version;
	char		 id[KEYS_ID_MAX + 1];
};

static int
keys_first_fn(MDB_txn *txn, void *arg)
{
	struct keys_first	*f = arg;
	MDB_cursor		*cur = NULL;
	MDB_val			 key, val;
	const char		*id;
	int			 rc, mrc;

	if ((mrc = mdb_cursor_open(txn, f->dbi, &cur)) != 0)
		return db_err(mrc, "keks cursor");
	mrc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	if (mrc == MDB_NOTFOUND) {
		rc = 0;
		goto done;
	}
	if (mrc != 0) {
		rc = db_err(mrc, "keks cursor");
		goto done;
	}
	if ((rc = keys_dbkey_parse(&key, &id, &f->idlen, &f->version)) < 0)
		goto done;
	memcpy(f->id, id, f->idlen);
	f->id[f->idlen] = '\0';
	f->found = 1;
done:
	mdb_cursor_close(cur);
	return rc;
}

/*
 * Check the master key against the first stored KEK (which stays
 * cached), so that a wrong key file stops keyservice at start instead of
 * failing every request.
 */
static int
keys_check_master(struct keys *k)
{
	struct keys_first	 f;
	struct keys_kek		*e;
	int			 rc;

	memset(&f, 0, sizeof(f));
	f.dbi = k->dbi;
	if ((rc = db_read(k->db, keys_first_fn, &f)) < 0 || !f.found)
		return rc;
	if ((rc = keys_kek_get(k, f.id, f.idlen, f.version, &e)) == ERR_PERM)
		err_set(ERR_PERM, "master key does not match the key store "
		    "(KEK %s v%u does not authenticate)", f.id, f.version);
	return rc;
}

/* ---------------------------------------------------------------- API */

int
keys_open(struct keys **out, struct db_env *db, const unsigned char *master)
{
	struct keys	*k;
	long		 ps;
	int		 rc;

	*out = NULL;
	k = xcalloc(1, sizeof(*k));
	k->db = db;
	ps = sysconf(_SC_PAGESIZE);
	k->pagesz = ps > 0 ? (size_t)ps : 4096;
	k->nbuckets = KEYS_CACHE_MIN;
	k->buckets = xcalloc(k->nbuckets, sizeof(*k->buckets));
	k->master = keys_secret_alloc(k);
	memcpy(k->master, master, KEYS_MASTER_LEN);
	if ((rc = db_dbi(db, "keks", 0, &k->dbi)) < 0)
		goto fail;
	if ((rc = keys_check_master(k)) < 0)
		goto fail;
	*out = k;
	return 0;
fail:
	keys_close(&k);
	return rc;
}

void
keys_close(struct keys **p)
{
	struct keys	*k;

	if (p == NULL || (k = *p) == NULL)
		return;
	keys_cache_free(k);
	keys_pages_free(k);
	free(k);
	*p = NULL;
}

int
keys_create(struct keys *k, const char *id)
{
	return keys_add(k, id, 0, NULL);
}

int
keys_rotate(struct keys *k, const char *id, uint32_t *version_out)
{
	return keys_add(k, id, 1, version_out);
}

int
keys_versions(struct keys *k, const char *id, struct keys_version **out,
    size_t *n_out)
{
	struct keys_list	 l;
	struct keys_kek		*e;
	size_t			 i;
	int			 rc;

	*out = NULL;
	*n_out = 0;
	memset(&l, 0, sizeof(l));
	if ((rc = keys_id_check(id, &l.idlen)) < 0)
		return rc;
	l.dbi = k->dbi;
	l.id = id;
	if ((rc = db_read(k->db, keys_list_fn, &l)) < 0) {
		free(l.v);
		return rc;
	}
	if (l.n == 0) {
		err_set(ERR_NOTFOUND, "no key id %s", id);
		return ERR_NOTFOUND;
	}
	/* a cached version's position is ahead of its stored limit */
	for (i = 0; i < l.n; i++) {
		if ((e = keys_cache_find(k, id, l.idlen, l.v[i].version)) !=
		    NULL)
			l.v[i].uses = e->ctr;
	}
	*out = l.v;
	*n_out = l.n;
	return 0;
}

int
keys_datakey(struct keys *k, const char *id, const char *context,
    unsigned char *dek, char **wrapped_out, uint32_t *version_out)
{
	int	rc;

	*wrapped_out = NULL;
	if (RAND_priv_bytes(dek, KEYS_DEK_LEN) != 1)
		rc = tls_error("random data key");
	else
		rc = keys_wrap(k, id, context, dek, KEYS_DEK_LEN, wrapped_out,
		    version_out);
	if (rc < 0)
		explicit_bzero(dek, KEYS_DEK_LEN);
	return rc;
}

int
keys_wrap(struct keys *k, const char *id, const char *context,
    const void *plain, size_t n, char **wrapped_out, uint32_t *version_out)
{
	size_t	idlen, ctxlen;
	int	rc;

	*wrapped_out = NULL;
	if ((rc = keys_id_check(id, &idlen)) < 0 ||
	    (rc = keys_ctx_check(context, &ctxlen)) < 0)
		return rc;
	if (plain == NULL || n == 0 || n > KEYS_PLAIN_MAX) {
		err_set(ERR_INVAL, "wrapped secret must be 1-%d bytes",
		    KEYS_PLAIN_MAX);
		return ERR_INVAL;
	}
	return keys_wrap_newest(k, id, idlen, context, ctxlen, plain, n,
	    wrapped_out, version_out);
}

int
keys_unwrap(struct keys *k, const char *wrapped, const char *context,
    unsigned char **plain_out, size_t *len_out)
{
	return keys_unwrap_raw(k, wrapped, context, plain_out, len_out, NULL);
}

int
keys_rewrap(struct keys *k, const char *wrapped, const char *context,
    char **wrapped_out, uint32_t *version_out)
{
	unsigned char	*plain = NULL;
	size_t		 n = 0;
	char		 id[KEYS_ID_MAX + 1];
	int		 rc;

	*wrapped_out = NULL;
	if ((rc = keys_unwrap_raw(k, wrapped, context, &plain, &n, id)) < 0)
		return rc;
	rc = keys_wrap_newest(k, id, strlen(id), context, strlen(context),
	    plain, n, wrapped_out, version_out);
	xfreezero(plain, n);
	return rc;
}

int
keys_describe(const char *wrapped, char *id_out, size_t id_out_len,
    uint32_t *version_out)
{
	struct keys_hdr	h;
	unsigned char	raw[KEYS_B64_LEN(KEYS_HDR_MAX) / 4 * 3];
	size_t		slen, rawlen, n;
	int		rc;

	if ((rc = keys_b64_check(wrapped, &slen, &rawlen)) < 0)
		return rc;
	/* only the chunk that can hold the header */
	n = slen < KEYS_B64_LEN(KEYS_HDR_MAX) ? slen :
	    KEYS_B64_LEN(KEYS_HDR_MAX);
	n = keys_b64_decode(raw, wrapped, n);
	if ((rc = keys_hdr_parse(&h, raw, n < rawlen ? n : rawlen,
	    rawlen)) < 0)
		return rc;
	if (id_out != NULL) {
		if (id_out_len <= h.idlen) {
			err_set(ERR_TOOBIG, "key id does not fit");
			return ERR_TOOBIG;
		}
		memcpy(id_out, h.id, h.idlen);
		id_out[h.idlen] = '\0';
	}
	if (version_out != NULL)
		*version_out = h.version;
	return 0;
}
