/*
 * audit.h -- the tamper-evident audit log: an append-only RFC 6962 Merkle
 * log in LMDB, one per daemon, with batched durable appends, signed
 * checkpoints, queries, and inclusion and consistency proofs.
 *
 * Entry encoding (format v1).  An entry is stored, hashed and exported
 * as exactly these bytes: a JSON object with every key below, keys
 * sorted, no whitespace, only ASCII (non-ASCII as \uXXXX with lower-case
 * hex, UTF-16 surrogate pairs beyond U+FFFF; '"' '\\' \b \f \n \r \t as
 * two-character escapes; other bytes below 0x20 and 0x7f as \u00XX), no
 * floating-point numbers anywhere.  That is byte for byte Python's
 *   json.dumps(obj, sort_keys=True, separators=(",", ":"),
 *       ensure_ascii=True).encode()
 * so a verifier recomputes the leaf hash of an exported entry as
 *   sha256(b"\x00" + json.dumps(entry, ...same options...).encode()).
 * Keys: "action", "actor", "dept", "details" (an object), "node",
 * "object", "outcome" ("ok" | "denied" | "error"), "request_id",
 * "service", "src", "time" (unix milliseconds), "v" (1).  Absent strings
 * are "".  Strings are cut to AUDIT_FIELD_MAX bytes at a character
 * boundary, and bytes that are not UTF-8 become U+FFFD, so a peer cannot
 * make an entry unwritable; details are the caller's and must fit
 * AUDIT_DETAILS_MAX (ERR_TOOBIG) and hold no reals (ERR_INVAL).  Secret
 * values are never logged; sensitive ones go in as audit_hmac() values.
 *
 * Storage (one LMDB environment per daemon, in the directory given to
 * audit_open(); a writer.lock file held with flock(2) makes it one
 * writer):
 *   "entries"      be64 index -> entry bytes
 *   "nodes"        be64 merkle_node_seq(level, index) -> 32-byte hash of
 *                  every complete perfect subtree, leaves included, so
 *                  the root at any size and every proof are O(log n)
 *                  reads; both dbs are only ever appended to (MDB_APPEND)
 *   "checkpoints"  be64 tree size -> checkpoint JSON (below)
 *   "meta"         "version" -> "1", "origin" -> "<node>/<service>"
 * An append batch writes its entries and their nodes in one LMDB write
 * transaction, which is fsync'd on commit: after a crash the log is a
 * prefix of what was appended and every acknowledged entry is in it.
 *
 * Appends (fail-closed).  audit_append() encodes the entry at once and
 * queues it; a writer thread commits whatever is queued (group commit:
 * up to batch_max entries, optionally lingering batch_delay_us for more)
 * and only then runs the callback, on the event loop thread, with 0 and
 * the entry's index, or with an error: the caller performs or answers
 * the audited action only on 0.  audit_append_sync() blocks until its
 * entry is committed and may be called from any thread, the loop
 * included.  A commit failure other than a full map makes the log refuse
 * every later append (ERR_IO) until the daemon restarts.
 *
 * Checkpoints: the exact bytes that are signed (Ed25519 through
 * keyservice's POST /v1/sign/raw) are
 *   "amanat-audit-checkpoint-v1\n<origin>\n<size>\n<root hex>\n<time>\n"
 * and a stored or exported checkpoint is the JSON object
 *   {"alg", "key_id", "origin", "root" (hex), "signature" (base64),
 *    "size", "time" (unix ms)}.
 *
 * Threads: every function may be called from any thread, except that
 * audit_open() with a base and audit_close() belong to the loop thread
 * of that base.  Readers share an rwlock with the writer's commit (LMDB
 * remaps the file when it grows), so a read may wait for one commit.
 */
#ifndef COMMON_AUDIT_H
#define COMMON_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "common/merkle.h"

#define AUDIT_FORMAT_VERSION	1
#define AUDIT_FIELD_MAX		1024	/* bytes of a string field */
#define AUDIT_DETAILS_MAX	4096	/* canonical JSON of details */
#define AUDIT_DETAILS_DEPTH	8	/* nesting inside details */
#define AUDIT_ENTRY_MAX		(64 * 1024)	/* one encoded entry */
#define AUDIT_NAME_MAX		64	/* node and service names */
#define AUDIT_BATCH_MAX		1024	/* entries per commit */
#define AUDIT_QUEUE_MAX		65536	/* queued appends: ERR_TOOBIG */
#define AUDIT_QUERY_LIMIT_MAX	1000	/* results per query page */
#define AUDIT_QUERY_SCAN_MAX	100000	/* entries examined per call */
#define AUDIT_SIG_MAX		1024	/* checkpoint signature bytes */
#define AUDIT_KEY_ID_MAX	128
#define AUDIT_HMAC_KEY_MIN	16
#define AUDIT_HMAC_HEX_LEN	64
#define AUDIT_NO_MORE		UINT64_MAX
/* Defaults for audit_opts fields left 0. */
#define AUDIT_MAP_SIZE		(64UL * 1024 * 1024)
#define AUDIT_MAP_MAX		(16UL * 1024 * 1024 * 1024)
#define AUDIT_CHECKPOINT_ENTRIES 1000
#define AUDIT_CHECKPOINT_MS	60000

#define AUDIT_CHECKPOINT_MAGIC	"amanat-audit-checkpoint-v1"

enum audit_outcome {
	AUDIT_OK = 0,
	AUDIT_DENIED,
	AUDIT_ERROR,
};

/*
 * One event.  Every pointer is borrowed for the duration of the call
 * only (the entry is encoded before audit_append returns); NULL strings
 * are "".  details, if not NULL, is a JSON object (its reference count
 * is touched, so do not share it with another thread meanwhile).
 */
struct audit_entry {
	int64_t			 time_ms;	/* 0: now */
	const char		*node;		/* NULL: the log's node */
	const char		*service;	/* NULL: the log's service */
	const char		*actor;		/* principal or user address */
	const char		*dept;		/* actor's department */
	const char		*src;		/* source address */
	const char		*action;	/* e.g. "doc.write" */
	const char		*object;	/* e.g. a path or message id */
	enum audit_outcome	 outcome;
	const char		*request_id;
	const json_t		*details;
};

/* Query filter: NULL and 0 fields match anything; all zero is "all". */
struct audit_filter {
	const char	*actor;		/* exact match */
	const char	*dept;
	const char	*object;
	const char	*action;
	const char	*outcome;	/* "ok", "denied", "error" */
	int64_t		 since_ms;	/* time >= since_ms (0: none) */
	int64_t		 until_ms;	/* time < until_ms (0: none) */
	int		 backward;	/* scan from start towards 0 */
};

#define AUDIT_OPEN_VERIFY	0x01	/* tools: no writer, no lock,
					   tolerate a damaged log */

struct audit_opts {
	const char		*dir;		/* LMDB environment directory */
	const char		*node;		/* [A-Za-z0-9._-]{1,64} */
	const char		*service;	/* same */
	size_t			 map_size;	/* 0: AUDIT_MAP_SIZE */
	size_t			 map_max;	/* 0: AUDIT_MAP_MAX */
	struct event_base	*base;		/* NULL: audit_append_sync only */
	unsigned		 batch_max;	/* 0: AUDIT_BATCH_MAX */
	unsigned		 batch_delay_us; /* linger for more; 0: none */
	uint64_t		 checkpoint_entries; /* 0: default */
	uint64_t		 checkpoint_ms;	/* 0: default */
	int			 flags;		/* AUDIT_OPEN_* */
};

struct audit_checkpoint {
	uint64_t	size;
	uint8_t		root[MERKLE_HASH_LEN];
	int64_t		time_ms;
};

struct audit_verify {
	uint64_t	size;		/* entries checked */
	uint64_t	checkpoints;	/* checkpoints checked */
	uint64_t	bad_index;	/* first bad entry, or AUDIT_NO_MORE */
};

/* Counters since audit_open(), for status pages and benchmarks. */
struct audit_stats {
	uint64_t	size;		/* committed entries */
	uint64_t	commits;	/* write transactions that committed */
	uint64_t	appended;	/* entries they held */
	uint64_t	failed;		/* entries whose commit failed */
	uint64_t	queued;		/* waiting for the writer now */
	int		broken;		/* the sticky failure, or 0 */
};

struct audit_log;

/* Called on the loop thread: rc 0 and the entry's index, or an error. */
typedef void	(*audit_done_fn)(void *, int, uint64_t);

/*
 * Open (creating) the log.  ERR_LOCKED when another process writes it,
 * ERR_INVAL for bad options or a log of another origin, ERR_PROTO when
 * the stored log is inconsistent (entries and nodes disagree: run
 * audit_verify_all() with AUDIT_OPEN_VERIFY).  audit_close() commits
 * what is queued, runs the remaining callbacks and sets *p to NULL; call
 * it on the loop thread, outside any audit callback (fatalx), once no
 * other thread uses the log.
 */
int	audit_open(struct audit_log **, const struct audit_opts *);
void	audit_close(struct audit_log **);
const char	*audit_origin(const struct audit_log *);

/* ---- entries (audit_entry.c) */
const char	*audit_outcome_name(int);
int	audit_outcome_parse(int *, const char *);
/* Encode an entry (node and service default to the given ones). */
int	audit_entry_encode(char **, size_t *, const struct audit_entry *,
	    const char *, const char *);
/* Parse stored or exported entry bytes into a JSON object. */
int	audit_entry_parse(json_t **, const void *, size_t);
/* The canonical bytes of any JSON value (no reals), at most max bytes. */
int	audit_canon_json(char **, size_t *, const json_t *, size_t);
/* HMAC-SHA256(key, value) as 64 lower-case hex digits (+ NUL). */
int	audit_hmac(char *, const void *, size_t, const char *);
/* 1 if the parsed entry matches the filter. */
int	audit_filter_match(const struct audit_filter *, const json_t *);

/* ---- appends */
/*
 * Queue an entry; done(arg, rc, index) runs on the loop thread once it
 * is durable (or failed).  Returns ERR_TOOBIG when AUDIT_QUEUE_MAX are
 * queued, ERR_INVAL for bad details (done does not run then), ERR_IO
 * once the log is unusable.  Needs a log opened with a base.
 */
int	audit_append(struct audit_log *, const struct audit_entry *,
	    audit_done_fn, void *);
/* Append and wait until durable; *index_out (may be NULL). */
int	audit_append_sync(uint64_t *, struct audit_log *,
	    const struct audit_entry *);

/* ---- reads */
/* Entries durably committed (what proofs and roots can cover). */
uint64_t	audit_size(struct audit_log *);
void	audit_stats(struct audit_stats *, struct audit_log *);
/* MTH of the first size entries, size <= audit_size(). */
int	audit_root(uint8_t *, struct audit_log *, uint64_t);
/* The stored bytes of entry index (caller frees); ERR_NOTFOUND. */
int	audit_get(char **, size_t *, struct audit_log *, uint64_t);
/* PATH(index, D[0:size]) into proof[MERKLE_PROOF_MAX]; *n hashes. */
int	audit_inclusion_proof(uint8_t (*)[MERKLE_HASH_LEN], size_t *,
	    struct audit_log *, uint64_t, uint64_t);
/* PROOF(size1, D[0:size2]) into proof[MERKLE_PROOF_MAX]. */
int	audit_consistency_proof(uint8_t (*)[MERKLE_HASH_LEN], size_t *,
	    struct audit_log *, uint64_t, uint64_t);
/* Pure checks (merkle_verify_*), for the offline verifier too. */
int	audit_verify_inclusion(const uint8_t *, uint64_t, uint64_t,
	    const uint8_t (*)[MERKLE_HASH_LEN], size_t, const uint8_t *);
int	audit_verify_consistency(uint64_t, uint64_t, const uint8_t *,
	    const uint8_t *, const uint8_t (*)[MERKLE_HASH_LEN], size_t);
/*
 * One page of matching entries as a JSON array of {"index", "entry"}.
 * Forward: indexes start, start + 1, ...; backward (filter->backward):
 * start, start - 1, ... (start AUDIT_NO_MORE or beyond the end: the
 * newest).  At most limit (<= AUDIT_QUERY_LIMIT_MAX) results and
 * AUDIT_QUERY_SCAN_MAX entries examined (a linear scan; a selective
 * filter may return a short or empty page that is not the end);
 * *next_out is where the next page starts, AUDIT_NO_MORE at the end.
 */
int	audit_query(json_t **, uint64_t *, struct audit_log *,
	    const struct audit_filter *, uint64_t, size_t);
/*
 * Export bundles (audit_read.c), verifiable offline:
 *   inclusion   {"index", "tree_size", "leaf_hash", "root", "proof": [hex],
 *                "entry": {...}}
 *   consistency {"size1", "size2", "root1", "root2", "proof": [hex]}
 * audit_*_json_verify() check a bundle alone (the entry's canonical bytes
 * against leaf_hash, the proof against the roots); compare the roots with
 * a signed checkpoint (audit_checkpoint_verify) to trust them.
 */
int	audit_inclusion_json(json_t **, struct audit_log *, uint64_t,
	    uint64_t);
int	audit_consistency_json(json_t **, struct audit_log *, uint64_t,
	    uint64_t);
int	audit_inclusion_json_verify(const json_t *);
int	audit_consistency_json_verify(const json_t *);

/* ---- checkpoints (audit_cp.c) */
/* 1 if a checkpoint is due (N entries or T ms since the last), else 0. */
int	audit_checkpoint_due(struct audit_log *);
/* Snapshot the current size, root and time to be signed. */
int	audit_checkpoint_prepare(struct audit_checkpoint *,
	    struct audit_log *);
/* The exact bytes to sign (caller frees; NUL-terminated). */
int	audit_checkpoint_body(char **, size_t *, const char *,
	    const struct audit_checkpoint *);
/*
 * Store a signed checkpoint.  The root must match the log at that size
 * (ERR_INVAL); one checkpoint per size (ERR_EXISTS).  The signature is
 * not verified here (the log has no public key).
 */
int	audit_checkpoint_store(struct audit_log *,
	    const struct audit_checkpoint *, const void *, size_t,
	    const char *, const char *);
/* The newest stored checkpoint, or the one at size; ERR_NOTFOUND. */
int	audit_checkpoint_latest(json_t **, struct audit_log *);
int	audit_checkpoint_get(json_t **, struct audit_log *, uint64_t);
/* Parse the checkpoint JSON's fields (origin copied into origin[]). */
int	audit_checkpoint_from_json(struct audit_checkpoint *, char *, size_t,
	    const json_t *);
/* Check the signature of a checkpoint JSON with pub: 0 or ERR_PROTO. */
int	audit_checkpoint_verify(const json_t *, EVP_PKEY *);
/*
 * Check a saved checkpoint against this log: its origin, size <= the
 * log's (else the newest entries were removed) and the root at its size;
 * the signature too when pub is not NULL.  0 or ERR_PROTO.
 */
int	audit_checkpoint_check(struct audit_log *, const json_t *,
	    EVP_PKEY *);
/*
 * Recompute every leaf hash from the stored entry bytes, rebuild the
 * tree, and compare with every stored node and every stored checkpoint
 * (and its signature when pub is not NULL).  0 when intact; ERR_PROTO
 * naming the first bad entry in err_msg() and out->bad_index.
 */
int	audit_verify_all(struct audit_verify *, struct audit_log *,
	    EVP_PKEY *);

#endif
