/*
 * audit_cp.c -- audit log checkpoints and full verification.
 *
 * Purpose: decide when a checkpoint is due, give the exact bytes to sign,
 * store signed checkpoints, check their signatures and check a saved
 * checkpoint against the log (truncation, rewriting); audit_verify_all()
 * recomputes the whole tree from the stored entry bytes.
 * Runs in: the daemon that owns the log (checkpoints are signed through
 * keyservice by the caller), and the CLI with AUDIT_OPEN_VERIFY.
 * Failure policy: a check that fails is ERR_PROTO with a message that
 * names what is wrong (the entry index, the checkpoint size); malformed
 * checkpoint JSON is ERR_INVAL; storage errors pass through.
 * SECURITY: audit_checkpoint_store() refuses a root that does not match
 * the log, so a stored checkpoint never vouches for another tree.  The
 * log never holds a private key: signing happens in keyservice, and only
 * signature checks (with a public key from the caller) happen here.
 * Verification reads in chunks of AUDIT_VERIFY_CHUNK entries, one short
 * read transaction each, so appends can go on meanwhile.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lmdb.h>
#include <openssl/evp.h>

#include "common/audit.h"
#include "common/audit_int.h"
#include "common/base64.h"
#include "common/db.h"
#include "common/err.h"
#include "common/merkle.h"
#include "common/xmalloc.h"

#define AUDIT_VERIFY_CHUNK	4096
#define AUDIT_CP_JSON_MAX	4096
#define AUDIT_ORIGIN_MAX	(2 * AUDIT_NAME_MAX + 2)

/* ------------------------------------------------------------ storage */

static int
audit_cp_parse(json_t **out, const MDB_val *v)
{
	json_error_t	jerr;

	*out = NULL;
	if (v->mv_size > AUDIT_CP_JSON_MAX ||
	    (*out = json_loadb(v->mv_data, v->mv_size, JSON_REJECT_DUPLICATES,
	    &jerr)) == NULL || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		err_set(ERR_PROTO, "audit: stored checkpoint is not JSON");
		return ERR_PROTO;
	}
	return 0;
}

int
audit__cp_load(struct audit_log *log, MDB_txn *txn)
{
	MDB_cursor	*cur = NULL;
	MDB_val		 k, v;
	json_t		*j = NULL;
	int		 mrc;

	log->cp_size = 0;
	log->cp_time = 0;
	if ((mrc = mdb_cursor_open(txn, log->cps, &cur)) != 0)
		return db_err(mrc, "audit checkpoints");
	mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	if (mrc == 0) {
		log->cp_size = audit__unkey(&k);
		/* a damaged one is reported by audit_verify_all() */
		if (audit_cp_parse(&j, &v) == 0)
			log->cp_time = json_integer_value(json_object_get(j,
			    "time"));
		json_decref(j);
	}
	mdb_cursor_close(cur);
	if (mrc != 0 && mrc != MDB_NOTFOUND)
		return db_err(mrc, "audit checkpoints");
	return 0;
}

int
audit_checkpoint_due(struct audit_log *log)
{
	uint64_t	n, cs;
	int64_t		ct;

	audit__lock(log);
	n = log->fr.size;
	cs = log->cp_size;
	ct = log->cp_time;
	audit__unlock(log);
	if (n == 0 || n <= cs)
		return 0;
	if (n - cs >= log->cp_entries)
		return 1;
	return audit__now_ms() - ct >= (int64_t)log->cp_ms;
}

int
audit_checkpoint_prepare(struct audit_checkpoint *cp, struct audit_log *log)
{
	struct merkle_frontier	fr;

	audit__frontier(log, &fr);
	memset(cp, 0, sizeof(*cp));
	cp->size = fr.size;
	cp->time_ms = audit__now_ms();
	return merkle_frontier_root(cp->root, &fr);
}

int
audit_checkpoint_body(char **out, size_t *len, const char *origin,
    const struct audit_checkpoint *cp)
{
	char	hex[MERKLE_HEX_LEN + 1];
	int	n;

	*out = NULL;
	if (origin == NULL || *origin == '\0' || strlen(origin) >=
	    AUDIT_ORIGIN_MAX || strchr(origin, '\n') != NULL) {
		err_set(ERR_INVAL, "audit: bad checkpoint origin");
		return ERR_INVAL;
	}
	merkle_hex(hex, cp->root);
	n = xasprintf(out, "%s\n%s\n%llu\n%s\n%lld\n", AUDIT_CHECKPOINT_MAGIC,
	    origin, (unsigned long long)cp->size, hex,
	    (long long)cp->time_ms);
	*len = (size_t)n;
	return 0;
}

struct audit_cp_put {
	struct audit_log	*log;
	uint64_t		 size;
	const char		*json;
	size_t			 len;
};

static int
audit_cp_put_fn(MDB_txn *txn, void *arg)
{
	struct audit_cp_put	*cp = arg;
	uint8_t			 kb[8];
	MDB_val			 k, v;
	int			 mrc;

	audit__key(kb, cp->size);
	k.mv_data = kb;
	k.mv_size = sizeof(kb);
	v.mv_data = (void *)cp->json;
	v.mv_size = cp->len;
	if ((mrc = mdb_put(txn, cp->log->cps, &k, &v, MDB_NOOVERWRITE)) != 0)
		return db_err(mrc, "audit checkpoint");
	return 0;
}

static int
audit_label_ok(const char *s)
{
	size_t	i, n;

	if (s == NULL || (n = strlen(s)) == 0 || n > AUDIT_KEY_ID_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '"' ||
		    s[i] == '\\')
			return 0;
	return 1;
}

int
audit_checkpoint_store(struct audit_log *log,
    const struct audit_checkpoint *cp, const void *sig, size_t siglen,
    const char *alg, const char *key_id)
{
	struct audit_cp_put	 put = { log, cp->size, NULL, 0 };
	uint8_t			 root[MERKLE_HASH_LEN];
	char			 hex[MERKLE_HEX_LEN + 1], *b64 = NULL;
	char			*json = NULL;
	json_t			*j = NULL;
	int			 rc;

	if (sig == NULL || siglen == 0 || siglen > AUDIT_SIG_MAX ||
	    !audit_label_ok(alg) || !audit_label_ok(key_id)) {
		err_set(ERR_INVAL, "audit checkpoint: signature of 1..%d "
		    "bytes, alg and key id of printable ASCII", AUDIT_SIG_MAX);
		return ERR_INVAL;
	}
	if ((rc = audit_root(root, log, cp->size)) < 0)
		return rc;
	if (memcmp(root, cp->root, sizeof(root)) != 0) {
		err_set(ERR_INVAL, "audit checkpoint: root does not match the "
		    "log at size %llu", (unsigned long long)cp->size);
		return ERR_INVAL;
	}
	merkle_hex(hex, cp->root);
	b64 = b64_encode(sig, siglen);
	j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "alg", alg, "key_id",
	    key_id, "origin", log->origin, "root", hex, "signature", b64,
	    "size", (json_int_t)cp->size, "time", (json_int_t)cp->time_ms);
	if (j == NULL) {
		err_set(ERR_GENERIC, "audit checkpoint: JSON");
		rc = ERR_GENERIC;
		goto done;
	}
	if ((rc = audit_canon_json(&json, &put.len, j, AUDIT_CP_JSON_MAX)) < 0)
		goto done;
	put.json = json;
	if ((rc = audit__write(log, audit_cp_put_fn, &put)) < 0)
		goto done;
	audit__lock(log);
	if (cp->size >= log->cp_size) {
		log->cp_size = cp->size;
		log->cp_time = cp->time_ms;
	}
	audit__unlock(log);
done:
	free(b64);
	free(json);
	json_decref(j);
	return rc;
}

struct audit_cp_get {
	struct audit_log	*log;
	uint64_t		 size;	/* AUDIT_NO_MORE: the newest */
	json_t			*out;
};

static int
audit_cp_get_fn(MDB_txn *txn, void *arg)
{
	struct audit_cp_get	*g = arg;
	MDB_cursor		*cur = NULL;
	uint8_t			 kb[8];
	MDB_val			 k, v;
	int			 mrc;

	if ((mrc = mdb_cursor_open(txn, g->log->cps, &cur)) != 0)
		return db_err(mrc, "audit checkpoints");
	if (g->size == AUDIT_NO_MORE)
		mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	else {
		audit__key(kb, g->size);
		k.mv_data = kb;
		k.mv_size = sizeof(kb);
		mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
	}
	mdb_cursor_close(cur);
	if (mrc != 0)
		return db_err(mrc, "audit checkpoint");
	return audit_cp_parse(&g->out, &v);
}

int
audit_checkpoint_get(json_t **out, struct audit_log *log, uint64_t size)
{
	struct audit_cp_get	g = { log, size, NULL };
	int			rc;

	*out = NULL;
	if ((rc = audit__read(log, audit_cp_get_fn, &g)) < 0)
		return rc;
	*out = g.out;
	return 0;
}

int
audit_checkpoint_latest(json_t **out, struct audit_log *log)
{
	return audit_checkpoint_get(out, log, AUDIT_NO_MORE);
}

/* ------------------------------------------------------------ checks */

int
audit_checkpoint_from_json(struct audit_checkpoint *cp, char *origin,
    size_t olen, const json_t *j)
{
	json_t		*size, *time;
	const char	*o, *root;

	memset(cp, 0, sizeof(*cp));
	size = json_object_get(j, "size");
	time = json_object_get(j, "time");
	o = json_string_value(json_object_get(j, "origin"));
	root = json_string_value(json_object_get(j, "root"));
	if (!json_is_integer(size) || json_integer_value(size) < 0 ||
	    (uint64_t)json_integer_value(size) >= MERKLE_SIZE_MAX ||
	    !json_is_integer(time) || o == NULL || strlen(o) >= olen ||
	    strlen(o) >= AUDIT_ORIGIN_MAX || root == NULL ||
	    merkle_unhex(cp->root, root) < 0) {
		err_set(ERR_INVAL, "audit: malformed checkpoint (size, time, "
		    "origin, root)");
		return ERR_INVAL;
	}
	cp->size = (uint64_t)json_integer_value(size);
	cp->time_ms = json_integer_value(time);
	snprintf(origin, olen, "%s", o);
	return 0;
}

static int
audit_bad(const char *what)
{
	err_set(ERR_PROTO, "audit checkpoint: %s", what);
	return ERR_PROTO;
}

int
audit_checkpoint_verify(const json_t *j, EVP_PKEY *pub)
{
	struct audit_checkpoint	 cp;
	char			 origin[AUDIT_ORIGIN_MAX], *body = NULL;
	const char		*sig64, *md;
	unsigned char		*sig = NULL;
	size_t			 blen, slen;
	EVP_MD_CTX		*ctx = NULL;
	int			 rc;

	if ((rc = audit_checkpoint_from_json(&cp, origin, sizeof(origin),
	    j)) < 0)
		return rc;
	if ((sig64 = json_string_value(json_object_get(j, "signature"))) ==
	    NULL || pub == NULL) {
		err_set(ERR_INVAL, "audit checkpoint: no signature or key");
		return ERR_INVAL;
	}
	if ((rc = b64_decode(&sig, &slen, sig64, strlen(sig64),
	    AUDIT_SIG_MAX)) < 0 ||
	    (rc = audit_checkpoint_body(&body, &blen, origin, &cp)) < 0)
		goto done;
	/* Ed25519/Ed448 hash internally; ECDSA and RSA sign SHA-256 */
	md = EVP_PKEY_is_a(pub, "ED25519") || EVP_PKEY_is_a(pub, "ED448") ?
	    NULL : "SHA256";
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit_ex(ctx, NULL, md, NULL, NULL, pub,
	    NULL) != 1) {
		err_set(ERR_GENERIC, "audit checkpoint: verify init failed");
		rc = ERR_GENERIC;
		goto done;
	}
	rc = EVP_DigestVerify(ctx, sig, slen, (unsigned char *)body,
	    blen) == 1 ? 0 : audit_bad("bad signature");
done:
	EVP_MD_CTX_free(ctx);
	free(sig);
	free(body);
	return rc;
}

int
audit_checkpoint_check(struct audit_log *log, const json_t *j,
    EVP_PKEY *pub)
{
	struct audit_checkpoint	cp;
	char			origin[AUDIT_ORIGIN_MAX];
	uint8_t			root[MERKLE_HASH_LEN];
	uint64_t		n;
	int			rc;

	if (pub != NULL && (rc = audit_checkpoint_verify(j, pub)) < 0)
		return rc;
	if ((rc = audit_checkpoint_from_json(&cp, origin, sizeof(origin),
	    j)) < 0)
		return rc;
	if (strcmp(origin, log->origin) != 0) {
		err_set(ERR_PROTO, "audit checkpoint of %s, not of %s",
		    origin, log->origin);
		return ERR_PROTO;
	}
	if (cp.size > (n = audit_size(log))) {
		err_set(ERR_PROTO, "audit log %s has %llu entries but a "
		    "checkpoint covers %llu: the newest entries were removed",
		    log->origin, (unsigned long long)n,
		    (unsigned long long)cp.size);
		return ERR_PROTO;
	}
	if ((rc = audit_root(root, log, cp.size)) < 0)
		return rc;
	if (memcmp(root, cp.root, sizeof(root)) != 0) {
		err_set(ERR_PROTO, "audit log %s: the root at size %llu "
		    "differs from the checkpoint's: entries before %llu were "
		    "changed", log->origin, (unsigned long long)cp.size,
		    (unsigned long long)cp.size);
		return ERR_PROTO;
	}
	return 0;
}

/* ------------------------------------------------------------ verify */

struct audit_va {
	struct audit_log	*log;
	struct audit_rtxn	 rt;
	struct merkle_frontier	 fr;		/* rebuilt from the entries */
	uint64_t		 next;		/* next entry to check */
	uint64_t		 end;		/* entries to check */
	uint64_t		 bad;
	uint64_t		 ncp;
	EVP_PKEY		*pub;
};

/* A subtree the rebuild completed must equal the stored node. */
static int
audit_va_put(void *arg, unsigned level, uint64_t index, const uint8_t *h)
{
	struct audit_va	*va = arg;
	uint8_t		 stored[MERKLE_HASH_LEN];
	uint64_t	 first = index << level;
	int		 rc;

	if ((rc = audit__node_get(&va->rt, level, index, stored)) < 0) {
		va->bad = first;
		return rc;
	}
	if (memcmp(stored, h, sizeof(stored)) == 0)
		return 0;
	va->bad = first;
	if (level == 0)
		err_set(ERR_PROTO, "audit log %s: entry %llu does not match "
		    "its leaf hash: the entry was changed", va->log->origin,
		    (unsigned long long)index);
	else
		err_set(ERR_PROTO, "audit log %s: entries %llu..%llu do not "
		    "match the stored tree: entries or tree nodes were "
		    "changed", va->log->origin, (unsigned long long)first,
		    (unsigned long long)(first + (UINT64_C(1) << level) - 1));
	return ERR_PROTO;
}

static int
audit_va_chunk(MDB_txn *txn, void *arg)
{
	struct audit_va	*va = arg;
	MDB_cursor	*cur = NULL;
	uint8_t		 kb[8], leaf[MERKLE_HASH_LEN];
	MDB_val		 k, v;
	unsigned	 i;
	int		 mrc, rc = 0;

	va->rt.txn = txn;
	if ((mrc = mdb_cursor_open(txn, va->log->entries, &cur)) != 0)
		return db_err(mrc, "audit entries");
	audit__key(kb, va->next);
	k.mv_data = kb;
	k.mv_size = sizeof(kb);
	mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
	for (i = 0; i < AUDIT_VERIFY_CHUNK && va->next < va->end; i++) {
		if (mrc != 0 || audit__unkey(&k) != va->next) {
			va->bad = va->next;
			err_set(ERR_PROTO, "audit log %s: entry %llu is "
			    "missing", va->log->origin,
			    (unsigned long long)va->next);
			rc = ERR_PROTO;
			break;
		}
		if ((rc = merkle_leaf_hash(leaf, v.mv_data, v.mv_size)) < 0 ||
		    (rc = merkle_frontier_append(&va->fr, leaf, audit_va_put,
		    va)) < 0)
			break;
		va->next++;
		mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return rc;
}

/* Stored counts agree: 2n - popcount(n) nodes for n entries. */
static int
audit_va_counts(MDB_txn *txn, void *arg)
{
	struct audit_va	*va = arg;
	MDB_stat	 se, sn;
	int		 mrc;

	if ((mrc = mdb_stat(txn, va->log->entries, &se)) != 0 ||
	    (mrc = mdb_stat(txn, va->log->nodes, &sn)) != 0)
		return db_err(mrc, "audit stat");
	if (sn.ms_entries == merkle_node_count(se.ms_entries))
		return 0;
	va->bad = se.ms_entries;
	err_set(ERR_PROTO, "audit log %s: %zu tree nodes for %zu entries "
	    "(%llu expected): entries after %zu were removed or nodes "
	    "changed", va->log->origin, sn.ms_entries, se.ms_entries,
	    (unsigned long long)merkle_node_count(se.ms_entries),
	    se.ms_entries);
	return ERR_PROTO;
}

/* One stored checkpoint against the rebuilt (and equal stored) tree. */
static int
audit_va_cp(struct audit_va *va, uint64_t size, const MDB_val *v)
{
	struct audit_checkpoint	 cp;
	char			 origin[AUDIT_ORIGIN_MAX];
	uint8_t			 root[MERKLE_HASH_LEN];
	json_t			*j = NULL;
	int			 rc;

	if ((rc = audit_cp_parse(&j, v)) < 0 ||
	    (rc = audit_checkpoint_from_json(&cp, origin, sizeof(origin),
	    j)) < 0 || cp.size != size || strcmp(origin,
	    va->log->origin) != 0) {
		err_set(ERR_PROTO, "audit log %s: checkpoint %llu damaged",
		    va->log->origin, (unsigned long long)size);
		rc = ERR_PROTO;
	} else if (size > va->end) {
		va->bad = va->end;
		err_set(ERR_PROTO, "audit log %s has %llu entries but a "
		    "checkpoint covers %llu: the newest entries were removed",
		    va->log->origin, (unsigned long long)va->end,
		    (unsigned long long)size);
		rc = ERR_PROTO;
	} else if ((rc = merkle_root(root, size, audit__node_get,
	    &va->rt)) < 0)
		;
	else if (memcmp(root, cp.root, sizeof(root)) != 0) {
		err_set(ERR_PROTO, "audit log %s: checkpoint %llu does not "
		    "match the entries", va->log->origin,
		    (unsigned long long)size);
		rc = ERR_PROTO;
	} else if (va->pub != NULL && (rc = audit_checkpoint_verify(j,
	    va->pub)) < 0)
		err_set(rc, "audit log %s: checkpoint %llu: %s",
		    va->log->origin, (unsigned long long)size, "bad signature");
	json_decref(j);
	return rc;
}

static int
audit_va_cps(MDB_txn *txn, void *arg)
{
	struct audit_va	*va = arg;
	MDB_cursor	*cur = NULL;
	MDB_val		 k, v;
	int		 mrc, rc = 0;

	va->rt.txn = txn;
	if ((mrc = mdb_cursor_open(txn, va->log->cps, &cur)) != 0)
		return db_err(mrc, "audit checkpoints");
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	    mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if ((rc = audit_va_cp(va, audit__unkey(&k), &v)) < 0)
			break;
		va->ncp++;
	}
	mdb_cursor_close(cur);
	if (rc == 0 && mrc != MDB_NOTFOUND)
		rc = db_err(mrc, "audit checkpoints");
	return rc;
}

int
audit_verify_all(struct audit_verify *out, struct audit_log *log,
    EVP_PKEY *pub)
{
	struct audit_va	*va;
	int		 rc;

	memset(out, 0, sizeof(*out));
	out->bad_index = AUDIT_NO_MORE;
	va = xcalloc(1, sizeof(*va));
	va->log = log;
	va->rt.log = log;
	va->end = audit_size(log);
	va->bad = AUDIT_NO_MORE;
	va->pub = pub;
	merkle_frontier_init(&va->fr);
	/* entries first, so that a changed entry is what gets named */
	while (va->next < va->end)
		if ((rc = audit__read(log, audit_va_chunk, va)) < 0)
			goto done;
	if ((rc = audit__read(log, audit_va_counts, va)) < 0)
		goto done;
	rc = audit__read(log, audit_va_cps, va);
done:
	out->size = va->next;
	out->checkpoints = va->ncp;
	out->bad_index = va->bad;
	free(va);
	return rc;
}
