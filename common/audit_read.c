/*
 * audit_read.c -- reading the audit log: roots, entries, proofs, queries
 * and export bundles (see audit.h).
 *
 * Purpose: everything a security officer's query, the HTTP API and the
 * offline verifier need from a log: the root at any size, inclusion and
 * consistency proofs, paged filtered queries, and self-contained JSON
 * bundles that can be checked without the log.
 * Runs in: the daemon that owns the log (any thread), and the CLI with
 * AUDIT_OPEN_VERIFY.
 * Failure policy: sizes beyond the committed log are ERR_INVAL, a missing
 * entry ERR_NOTFOUND, damaged storage ERR_PROTO; a bundle that does not
 * verify is ERR_PROTO.  A damaged entry met by a query is skipped with a
 * warning (audit_verify_all() is the tool that reports it).
 * SECURITY: every read runs in one short LMDB read transaction under the
 * shared map lock; queries examine at most AUDIT_QUERY_SCAN_MAX entries
 * and return at most AUDIT_QUERY_LIMIT_MAX per call, so one request
 * cannot pin the daemon.  Bundle verification recomputes the leaf hash
 * from the entry itself, never trusting the bundle's "leaf_hash".
 *
 * Queries scan linearly by index (forwards or backwards); a cheap byte
 * search for each quoted filter value skips most non-matching entries
 * before they are parsed.  There are no secondary indexes yet.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lmdb.h>

#include "common/audit.h"
#include "common/audit_int.h"
#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/merkle.h"
#include "common/xmalloc.h"


uint64_t
audit_size(struct audit_log *log)
{
	uint64_t	n;

	audit__lock(log);
	n = log->fr.size;
	audit__unlock(log);
	return n;
}

void
audit_stats(struct audit_stats *out, struct audit_log *log)
{
	audit__lock(log);
	out->size = log->fr.size;
	out->commits = log->n_commits;
	out->appended = log->n_appended;
	out->failed = log->n_failed;
	out->queued = log->queue.n;
	out->broken = log->broken;
	audit__unlock(log);
}

static int
audit_size_ok(struct audit_log *log, uint64_t size)
{
	uint64_t	n = audit_size(log);

	if (size > n) {
		err_set(ERR_INVAL, "audit: size %llu beyond the log's %llu "
		    "entries", (unsigned long long)size,
		    (unsigned long long)n);
		return 0;
	}
	return 1;
}

struct audit_proof_arg {
	struct audit_log	*log;
	uint64_t		 a, b;
	uint8_t			(*proof)[MERKLE_HASH_LEN];
	size_t			*n;
	uint8_t			*root;
	int			 kind;	/* 0 root, 1 inclusion, 2 consistency */
};

static int
audit_proof_fn(MDB_txn *txn, void *arg)
{
	struct audit_proof_arg	*pa = arg;
	struct audit_rtxn	 rt = { pa->log, txn };

	switch (pa->kind) {
	case 0:
		return merkle_root(pa->root, pa->b, audit__node_get, &rt);
	case 1:
		return merkle_inclusion_proof(pa->proof, pa->n, pa->a, pa->b,
		    audit__node_get, &rt);
	default:
		return merkle_consistency_proof(pa->proof, pa->n, pa->a,
		    pa->b, audit__node_get, &rt);
	}
}

int
audit_root(uint8_t *out, struct audit_log *log, uint64_t size)
{
	struct merkle_frontier	fr;
	struct audit_proof_arg	pa;

	audit__frontier(log, &fr);
	/* a log open for verification may be damaged: read the nodes */
	if (size == fr.size && !(log->flags & AUDIT_OPEN_VERIFY))
		return merkle_frontier_root(out, &fr);
	if (!audit_size_ok(log, size))
		return ERR_INVAL;
	memset(&pa, 0, sizeof(pa));
	pa.log = log;
	pa.b = size;
	pa.root = out;
	return audit__read(log, audit_proof_fn, &pa);
}

int
audit_inclusion_proof(uint8_t (*proof)[MERKLE_HASH_LEN], size_t *n,
    struct audit_log *log, uint64_t index, uint64_t size)
{
	struct audit_proof_arg	pa = { log, index, size, proof, n, NULL, 1 };

	*n = 0;
	if (!audit_size_ok(log, size))
		return ERR_INVAL;
	return audit__read(log, audit_proof_fn, &pa);
}

int
audit_consistency_proof(uint8_t (*proof)[MERKLE_HASH_LEN], size_t *n,
    struct audit_log *log, uint64_t size1, uint64_t size2)
{
	struct audit_proof_arg	pa = { log, size1, size2, proof, n, NULL, 2 };

	*n = 0;
	if (!audit_size_ok(log, size2))
		return ERR_INVAL;
	return audit__read(log, audit_proof_fn, &pa);
}

int
audit_verify_inclusion(const uint8_t *leaf, uint64_t index, uint64_t size,
    const uint8_t (*proof)[MERKLE_HASH_LEN], size_t n, const uint8_t *root)
{
	return merkle_verify_inclusion(leaf, index, size, proof, n, root);
}

int
audit_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t *root1,
    const uint8_t *root2, const uint8_t (*proof)[MERKLE_HASH_LEN], size_t n)
{
	return merkle_verify_consistency(size1, size2, root1, root2, proof,
	    n);
}

struct audit_get_arg {
	struct audit_log	*log;
	uint64_t		 index;
	char			*data;
	size_t			 len;
};

static int
audit_get_fn(MDB_txn *txn, void *arg)
{
	struct audit_get_arg	*ga = arg;
	uint8_t			 kb[8];
	MDB_val			 k, v;
	int			 mrc;

	audit__key(kb, ga->index);
	k.mv_data = kb;
	k.mv_size = sizeof(kb);
	if ((mrc = mdb_get(txn, ga->log->entries, &k, &v)) != 0)
		return db_err(mrc, "audit entry");
	ga->data = xmalloc(v.mv_size + 1);
	memcpy(ga->data, v.mv_data, v.mv_size);
	ga->data[v.mv_size] = '\0';
	ga->len = v.mv_size;
	return 0;
}

int
audit_get(char **out, size_t *len, struct audit_log *log, uint64_t index)
{
	struct audit_get_arg	ga = { log, index, NULL, 0 };
	int			rc;

	*out = NULL;
	*len = 0;
	if ((rc = audit__read(log, audit_get_fn, &ga)) < 0)
		return rc;
	*out = ga.data;
	*len = ga.len;
	return 0;
}

/* ------------------------------------------------------------ queries */

#define AUDIT_NEEDLES	5

struct audit_q {
	struct audit_log		*log;
	const struct audit_filter	*f;
	uint64_t			 start;
	size_t				 limit;
	json_t				*arr;
	uint64_t			 next;
	char				*needle[AUDIT_NEEDLES];
	size_t				 nlen[AUDIT_NEEDLES];
};

/*
 * "value" with its quotes, when the canonical encoding leaves it as is
 * (printable ASCII without '"' or '\\'): then every matching entry holds
 * these bytes.  NULL when the value cannot be searched for that way.
 */
static char *
audit_needle(const char *val, size_t *len)
{
	const char	*s;
	char		*n;

	if (val == NULL || strlen(val) > AUDIT_FIELD_MAX)
		return NULL;
	for (s = val; *s != '\0'; s++)
		if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
			return NULL;
	*len = (size_t)xasprintf(&n, "\"%s\"", val);
	return n;
}

static void
audit_q_match(struct audit_q *q, uint64_t idx, const MDB_val *v)
{
	json_t	*e = NULL;
	size_t	 i;

	for (i = 0; i < AUDIT_NEEDLES; i++)
		if (q->needle[i] != NULL && memmem(v->mv_data, v->mv_size,
		    q->needle[i], q->nlen[i]) == NULL)
			return;
	if (audit_entry_parse(&e, v->mv_data, v->mv_size) < 0) {
		log_warnx("audit query origin=%s entry=%llu damaged: %s",
		    q->log->origin, (unsigned long long)idx, err_msg());
		return;
	}
	if (audit_filter_match(q->f, e))
		json_array_append_new(q->arr, json_pack("{s:I,s:o}", "index",
		    (json_int_t)idx, "entry", e));
	else
		json_decref(e);
}

static int
audit_query_fn(MDB_txn *txn, void *arg)
{
	struct audit_q	*q = arg;
	MDB_cursor	*cur = NULL;
	MDB_cursor_op	 step = q->f->backward ? MDB_PREV : MDB_NEXT;
	uint8_t		 kb[8];
	MDB_val		 k, v;
	size_t		 scanned = 0;
	int		 mrc;

	if ((mrc = mdb_cursor_open(txn, q->log->entries, &cur)) != 0)
		return db_err(mrc, "audit entries");
	audit__key(kb, q->start);
	k.mv_data = kb;
	k.mv_size = sizeof(kb);
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY); mrc == 0;
	    mrc = mdb_cursor_get(cur, &k, &v, step)) {
		if (scanned == AUDIT_QUERY_SCAN_MAX ||
		    json_array_size(q->arr) >= q->limit) {
			q->next = audit__unkey(&k);
			break;
		}
		scanned++;
		audit_q_match(q, audit__unkey(&k), &v);
	}
	mdb_cursor_close(cur);
	if (mrc == MDB_NOTFOUND)
		q->next = AUDIT_NO_MORE;
	else if (mrc != 0)
		return db_err(mrc, "audit entries");
	return 0;
}

int
audit_query(json_t **out, uint64_t *next_out, struct audit_log *log,
    const struct audit_filter *f, uint64_t start, size_t limit)
{
	struct audit_filter	 any;
	struct audit_q		 q;
	uint64_t		 n = audit_size(log);
	size_t			 i;
	int			 rc = 0;

	*out = NULL;
	*next_out = AUDIT_NO_MORE;
	if (limit == 0 || limit > AUDIT_QUERY_LIMIT_MAX) {
		err_set(ERR_INVAL, "audit query: limit 1..%d",
		    AUDIT_QUERY_LIMIT_MAX);
		return ERR_INVAL;
	}
	if (f == NULL) {
		memset(&any, 0, sizeof(any));
		f = &any;
	}
	memset(&q, 0, sizeof(q));
	q.log = log;
	q.f = f;
	q.limit = limit;
	q.arr = json_array();
	q.next = AUDIT_NO_MORE;
	q.start = f->backward && start >= n ? n - 1 : start;
	q.needle[0] = audit_needle(f->actor, &q.nlen[0]);
	q.needle[1] = audit_needle(f->dept, &q.nlen[1]);
	q.needle[2] = audit_needle(f->object, &q.nlen[2]);
	q.needle[3] = audit_needle(f->action, &q.nlen[3]);
	q.needle[4] = audit_needle(f->outcome, &q.nlen[4]);
	if (n > 0 && q.start < n)
		rc = audit__read(log, audit_query_fn, &q);
	for (i = 0; i < AUDIT_NEEDLES; i++)
		free(q.needle[i]);
	if (rc < 0) {
		json_decref(q.arr);
		return rc;
	}
	*out = q.arr;
	*next_out = q.next;
	return 0;
}

/* ------------------------------------------------------------ bundles */

static json_t *
audit_hex_json(const uint8_t *h)
{
	char	hex[MERKLE_HEX_LEN + 1];

	merkle_hex(hex, h);
	return json_string(hex);
}

static json_t *
audit_proof_array(const uint8_t (*proof)[MERKLE_HASH_LEN], size_t n)
{
	json_t	*a = json_array();
	size_t	 i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, audit_hex_json(proof[i]));
	return a;
}

int
audit_inclusion_json(json_t **out, struct audit_log *log, uint64_t index,
    uint64_t size)
{
	uint8_t		 proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	uint8_t		 leaf[MERKLE_HASH_LEN], root[MERKLE_HASH_LEN];
	char		*bytes = NULL;
	size_t		 len, n;
	json_t		*e = NULL;
	int		 rc;

	*out = NULL;
	if ((rc = audit_inclusion_proof(proof, &n, log, index, size)) < 0 ||
	    (rc = audit_root(root, log, size)) < 0 ||
	    (rc = audit_get(&bytes, &len, log, index)) < 0 ||
	    (rc = merkle_leaf_hash(leaf, bytes, len)) < 0 ||
	    (rc = audit_entry_parse(&e, bytes, len)) < 0)
		goto done;
	*out = json_pack("{s:I,s:I,s:o,s:o,s:o,s:o}", "index",
	    (json_int_t)index, "tree_size", (json_int_t)size, "leaf_hash",
	    audit_hex_json(leaf), "root", audit_hex_json(root), "proof",
	    audit_proof_array((const uint8_t (*)[MERKLE_HASH_LEN])proof, n),
	    "entry", e);
	e = NULL;
done:
	free(bytes);
	json_decref(e);
	return rc;
}

int
audit_consistency_json(json_t **out, struct audit_log *log, uint64_t size1,
    uint64_t size2)
{
	uint8_t	proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	uint8_t	r1[MERKLE_HASH_LEN], r2[MERKLE_HASH_LEN];
	size_t	n;
	int	rc;

	*out = NULL;
	if ((rc = audit_consistency_proof(proof, &n, log, size1, size2)) < 0 ||
	    (rc = audit_root(r1, log, size1)) < 0 ||
	    (rc = audit_root(r2, log, size2)) < 0)
		return rc;
	*out = json_pack("{s:I,s:I,s:o,s:o,s:o}", "size1", (json_int_t)size1,
	    "size2", (json_int_t)size2, "root1", audit_hex_json(r1), "root2",
	    audit_hex_json(r2), "proof",
	    audit_proof_array((const uint8_t (*)[MERKLE_HASH_LEN])proof, n));
	return 0;
}

static int
audit_bundle_bad(const char *what)
{
	err_set(ERR_INVAL, "audit bundle: %s", what);
	return ERR_INVAL;
}

/* A non-negative size or index below MERKLE_SIZE_MAX. */
static int
audit_bundle_u64(uint64_t *out, const json_t *j, const char *key)
{
	json_t	*v = json_object_get(j, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) >= MERKLE_SIZE_MAX)
		return audit_bundle_bad(key);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int
audit_bundle_hash(uint8_t *out, const json_t *j, const char *key)
{
	if (merkle_unhex(out, json_string_value(json_object_get(j, key))) < 0)
		return audit_bundle_bad(key);
	return 0;
}

static int
audit_bundle_proof(uint8_t (*proof)[MERKLE_HASH_LEN], size_t *n,
    const json_t *j)
{
	json_t	*a = json_object_get(j, "proof");
	size_t	 i;

	if (!json_is_array(a) || json_array_size(a) > MERKLE_PROOF_MAX)
		return audit_bundle_bad("proof");
	for (i = 0; i < json_array_size(a); i++)
		if (merkle_unhex(proof[i],
		    json_string_value(json_array_get(a, i))) < 0)
			return audit_bundle_bad("proof");
	*n = i;
	return 0;
}

int
audit_inclusion_json_verify(const json_t *j)
{
	uint8_t	 proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	uint8_t	 leaf[MERKLE_HASH_LEN], claimed[MERKLE_HASH_LEN];
	uint8_t	 root[MERKLE_HASH_LEN];
	uint64_t index, size;
	char	*bytes = NULL;
	size_t	 len, n;
	json_t	*e = json_object_get(j, "entry");
	int	 rc;

	if (!json_is_object(e))
		return audit_bundle_bad("entry");
	if ((rc = audit_bundle_u64(&index, j, "index")) < 0 ||
	    (rc = audit_bundle_u64(&size, j, "tree_size")) < 0 ||
	    (rc = audit_bundle_hash(root, j, "root")) < 0 ||
	    (rc = audit_bundle_proof(proof, &n, j)) < 0 ||
	    (rc = audit_canon_json(&bytes, &len, e, AUDIT_ENTRY_MAX)) < 0 ||
	    (rc = merkle_leaf_hash(leaf, bytes, len)) < 0)
		goto done;
	if (json_object_get(j, "leaf_hash") != NULL &&
	    ((rc = audit_bundle_hash(claimed, j, "leaf_hash")) < 0 ||
	    memcmp(claimed, leaf, sizeof(leaf)) != 0)) {
		err_set(ERR_PROTO, "audit bundle: the entry does not match "
		    "leaf_hash");
		rc = ERR_PROTO;
		goto done;
	}
	rc = merkle_verify_inclusion(leaf, index, size,
	    (const uint8_t (*)[MERKLE_HASH_LEN])proof, n, root);
done:
	free(bytes);
	return rc;
}

int
audit_consistency_json_verify(const json_t *j)
{
	uint8_t		proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	uint8_t		r1[MERKLE_HASH_LEN], r2[MERKLE_HASH_LEN];
	uint64_t	s1, s2;
	size_t		n;
	int		rc;

	if ((rc = audit_bundle_u64(&s1, j, "size1")) < 0 ||
	    (rc = audit_bundle_u64(&s2, j, "size2")) < 0 ||
	    (rc = audit_bundle_hash(r1, j, "root1")) < 0 ||
	    (rc = audit_bundle_hash(r2, j, "root2")) < 0 ||
	    (rc = audit_bundle_proof(proof, &n, j)) < 0)
		return rc;
	return merkle_verify_consistency(s1, s2, r1, r2,
	    (const uint8_t (*)[MERKLE_HASH_LEN])proof, n);
}
