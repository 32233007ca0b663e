/*
 * audit.c -- the audit log: storage, batched durable appends, reads,
 * proofs and queries (see audit.h for the contract and the format).
 *
 * Purpose: one append-only RFC 6962 Merkle log per daemon in LMDB, with
 * a writer thread that group-commits queued entries and reports back on
 * the event loop only once they are durable.
 * Runs in: every daemon that audits (keyservice, mailsrv, docstore); the
 * writer thread is ours; callbacks run on the loop thread of the base
 * given to audit_open().  The CLI opens logs with AUDIT_OPEN_VERIFY.
 * Failure policy: fail-closed.  An append that cannot be committed is
 * reported to its caller, which must then refuse the action.  A commit
 * that fails for any reason but a full map (ERR_TOOBIG: nothing was
 * written) leaves the environment in doubt, so the log turns "broken":
 * every later append fails with ERR_IO until the daemon restarts and
 * reopens it.  A log whose entries and nodes disagree does not open
 * (ERR_PROTO) except for verification.
 * SECURITY: entries are encoded (and strings repaired and bounded) before
 * they are queued; the queue is bounded (AUDIT_QUEUE_MAX, then
 * ERR_TOOBIG: the caller answers "busy"); one writer per log is enforced
 * with flock(2) on <dir>/writer.lock.
 *
 * Design.  A commit runs one LMDB write transaction that appends the
 * batch's entries and the tree nodes they complete (MDB_APPEND on both,
 * since indexes and merkle_node_seq() only grow), then fsyncs on commit:
 * after kill -9 the log is a prefix of the appends, nodes included, and
 * every callback that reported success has its entry.  The committed
 * frontier (merkle.h) in memory gives the current root without reads;
 * roots at older sizes and proofs read O(log n) nodes.  While one batch
 * commits, new appends queue up and form the next batch (group commit),
 * so the batch size follows the load.  Locking: see audit_int.h.
 */
#include <sys/file.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <lmdb.h>

#include "common/audit.h"
#include "common/audit_int.h"
#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/merkle.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define AUDIT_MAXDBS		4
#define AUDIT_LOCK_FILE		"writer.lock"

/* ------------------------------------------------------------ helpers */

void
audit__key(uint8_t *k, uint64_t v)
{
	int	i;

	for (i = 7; i >= 0; i--) {
		k[i] = (uint8_t)v;
		v >>= 8;
	}
}

uint64_t
audit__unkey(const MDB_val *v)
{
	const uint8_t	*p = v->mv_data;
	uint64_t	 r = 0;
	size_t		 i;

	if (v->mv_size != 8)
		return AUDIT_NO_MORE;
	for (i = 0; i < 8; i++)
		r = r << 8 | p[i];
	return r;
}

int64_t
audit__now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
audit_check(int rc, const char *what)
{
	if (rc != 0)
		fatalx("audit: %s: %s", what, strerror(rc));
}

void
audit__rdlock(struct audit_log *log)
{
	audit_check(pthread_rwlock_rdlock(&log->maplock), "rdlock");
}

void
audit__wrlock(struct audit_log *log)
{
	audit_check(pthread_rwlock_wrlock(&log->maplock), "wrlock");
}

void
audit__unlock_map(struct audit_log *log)
{
	audit_check(pthread_rwlock_unlock(&log->maplock), "rwunlock");
}

void
audit__lock(struct audit_log *log)
{
	audit_check(pthread_mutex_lock(&log->mu), "lock");
}

void
audit__unlock(struct audit_log *log)
{
	audit_check(pthread_mutex_unlock(&log->mu), "unlock");
}

int
audit__read(struct audit_log *log, db_txn_fn fn, void *arg)
{
	int	rc;

	audit__rdlock(log);
	rc = db_read(log->db, fn, arg);
	audit__unlock_map(log);
	return rc;
}

int
audit__write(struct audit_log *log, db_txn_fn fn, void *arg)
{
	int	rc;

	audit__wrlock(log);
	rc = db_write(log->db, fn, arg);
	audit__unlock_map(log);
	return rc;
}

int
audit__node_get(void *arg, unsigned level, uint64_t index, uint8_t *out)
{
	struct audit_rtxn	*rt = arg;
	uint8_t			 kb[8];
	MDB_val			 k, v;
	int			 mrc;

	audit__key(kb, merkle_node_seq(level, index));
	k.mv_data = kb;
	k.mv_size = sizeof(kb);
	if ((mrc = mdb_get(rt->txn, rt->log->nodes, &k, &v)) != 0) {
		db_err(mrc, "audit nodes");
		err_set(ERR_PROTO, "audit: tree node (%u, %llu) missing", level,
		    (unsigned long long)index);
		return ERR_PROTO;
	}
	if (v.mv_size != MERKLE_HASH_LEN) {
		err_set(ERR_PROTO, "audit: tree node (%u, %llu) damaged", level,
		    (unsigned long long)index);
		return ERR_PROTO;
	}
	memcpy(out, v.mv_data, MERKLE_HASH_LEN);
	return 0;
}

void
audit__frontier(struct audit_log *log, struct merkle_frontier *out)
{
	audit__lock(log);
	*out = log->fr;
	audit__unlock(log);
}

const char *
audit_origin(const struct audit_log *log)
{
	return log->origin;
}

static void
audit_fifo_push(struct audit_fifo *f, struct audit_pend *p)
{
	p->next = NULL;
	if (f->tail != NULL)
		f->tail->next = p;
	else
		f->head = p;
	f->tail = p;
	f->n++;
}

static struct audit_pend *
audit_fifo_pop(struct audit_fifo *f)
{
	struct audit_pend	*p;

	if ((p = f->head) == NULL)
		return NULL;
	if ((f->head = p->next) == NULL)
		f->tail = NULL;
	f->n--;
	p->next = NULL;
	return p;
}

static void
audit_pend_free(struct audit_pend *p)
{
	free(p->bytes);
	free(p->errmsg);
	free(p);
}

/* ------------------------------------------------------------ commit */

struct audit_commit {
	struct audit_log	*log;
	struct audit_fifo	*batch;
	MDB_txn			*txn;
	struct merkle_frontier	 fr;
};

static int
audit_put_node(void *arg, unsigned level, uint64_t index, const uint8_t *h)
{
	struct audit_commit	*c = arg;
	uint8_t			 kb[8];
	MDB_val			 k, v;
	int			 mrc;

	audit__key(kb, merkle_node_seq(level, index));
	k.mv_data = kb;
	k.mv_size = sizeof(kb);
	v.mv_data = (void *)h;
	v.mv_size = MERKLE_HASH_LEN;
	if ((mrc = mdb_put(c->txn, c->log->nodes, &k, &v, MDB_APPEND)) != 0)
		return db_err(mrc, "audit nodes");
	return 0;
}

/* The write transaction of one batch; runs again after a map growth. */
static int
audit_commit_fn(MDB_txn *txn, void *arg)
{
	struct audit_commit	*c = arg;
	struct audit_pend	*p;
	uint8_t			 kb[8];
	MDB_val			 k, v;
	int			 mrc, rc;

	c->txn = txn;
	c->fr = c->log->fr;	/* only committers change it */
	for (p = c->batch->head; p != NULL; p = p->next) {
		p->index = c->fr.size;
		audit__key(kb, p->index);
		k.mv_data = kb;
		k.mv_size = sizeof(kb);
		v.mv_data = p->bytes;
		v.mv_size = p->len;
		if ((mrc = mdb_put(txn, c->log->entries, &k, &v,
		    MDB_APPEND)) != 0)
			return db_err(mrc, "audit entries");
		if ((rc = merkle_frontier_append(&c->fr, p->leaf,
		    audit_put_node, c)) < 0)
			return rc;
	}
	return 0;
}

/* Commit a batch and set every entry's rc (and errmsg on failure). */
static void
audit_commit(struct audit_log *log, struct audit_fifo *batch)
{
	struct audit_commit	 c;
	struct audit_pend	*p;
	int			 rc;

	memset(&c, 0, sizeof(c));
	c.log = log;
	c.batch = batch;
	audit_check(pthread_mutex_lock(&log->commit_mu), "commit lock");
	audit__lock(log);
	rc = log->broken;
	audit__unlock(log);
	if (rc < 0)
		err_set(ERR_IO, "audit log %s unusable after a failed commit "
		    "(%s); restart the daemon", log->origin, err_name(rc));
	else {
		audit__wrlock(log);
		rc = db_write(log->db, audit_commit_fn, &c);
		audit__lock(log);
		if (rc == 0) {
			log->fr = c.fr;
			log->n_commits++;
			log->n_appended += batch->n;
		} else if (rc != ERR_TOOBIG)
			log->broken = rc;
		audit__unlock(log);
		audit__unlock_map(log);
		if (rc < 0)
			log_warnx("audit commit failed origin=%s entries=%zu: "
			    "%s", log->origin, batch->n, err_msg());
	}
	if (rc < 0 && rc != ERR_TOOBIG)
		rc = ERR_IO;
	if (rc < 0) {
		audit__lock(log);
		log->n_failed += batch->n;
		audit__unlock(log);
	}
	for (p = batch->head; p != NULL; p = p->next) {
		p->rc = rc;
		if (rc < 0)
			p->errmsg = xstrdup(err_msg());
	}
	audit_check(pthread_mutex_unlock(&log->commit_mu), "commit unlock");
}

/* Wake the loop: the done-list is not empty. */
static void
audit_wake(struct audit_log *log)
{
	wakeup_post(&log->wake);
}

/* Hand results over: sync waiters are woken, callbacks go to the loop. */
static void
audit_finish(struct audit_log *log, struct audit_fifo *batch)
{
	struct audit_pend	*p;
	int			 wake = 0, sync = 0;

	audit__lock(log);
	while ((p = audit_fifo_pop(batch)) != NULL) {
		if (p->sync) {
			p->finished = 1;	/* the waiter owns p now */
			sync = 1;
		} else
			audit_fifo_push(&log->done, p);
	}
	if (log->done.n > 0 && !log->wake_pending)
		wake = log->wake_pending = 1;
	if (sync)
		pthread_cond_broadcast(&log->scv);
	audit__unlock(log);
	if (wake)
		audit_wake(log);
}

/* With mu held: wait up to batch_delay_us for a fuller batch. */
static void
audit_linger(struct audit_log *log)
{
	struct timespec	ts;
	long		ns;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ns = ts.tv_nsec + (long)log->batch_delay_us * 1000;
	ts.tv_sec += ns / 1000000000L;
	ts.tv_nsec = ns % 1000000000L;
	while (log->queue.n < log->batch_max && !log->stopping)
		if (pthread_cond_timedwait(&log->wcv, &log->mu, &ts) ==
		    ETIMEDOUT)
			break;
}

static void *
audit_writer_main(void *arg)
{
	struct audit_log	*log = arg;
	struct audit_fifo	 batch;
	struct audit_pend	*p;

	for (;;) {
		audit__lock(log);
		while (log->queue.n == 0 && !log->stopping)
			pthread_cond_wait(&log->wcv, &log->mu);
		if (log->queue.n == 0) {
			/* stopping, and everything queued is committed */
			audit__unlock(log);
			break;
		}
		if (log->batch_delay_us > 0)
			audit_linger(log);
		memset(&batch, 0, sizeof(batch));
		while (batch.n < log->batch_max &&
		    (p = audit_fifo_pop(&log->queue)) != NULL)
			audit_fifo_push(&batch, p);
		audit__unlock(log);
		audit_commit(log, &batch);
		audit_finish(log, &batch);
	}
	return NULL;
}

/* Run the callbacks of finished appends, on the calling (loop) thread. */
static void
audit_drain(struct audit_log *log)
{
	struct audit_fifo	 list;
	struct audit_pend	*p;

	audit__lock(log);
	list = log->done;
	memset(&log->done, 0, sizeof(log->done));
	log->wake_pending = 0;
	audit__unlock(log);
	log->draining = 1;
	while ((p = audit_fifo_pop(&list)) != NULL) {
		if (p->rc < 0)
			err_set(p->rc, "%s", p->errmsg != NULL ? p->errmsg :
			    "audit append failed");
		p->done(p->arg, p->rc, p->index);
		audit_pend_free(p);
	}
	log->draining = 0;
}

static void
audit_drain_cb(void *arg)
{
	audit_drain(arg);
}

/* ------------------------------------------------------------ appends */

/* Encode the entry into a new pending append. */
static int
audit_pend_new(struct audit_pend **out, struct audit_log *log,
    const struct audit_entry *e)
{
	struct audit_pend	*p;
	int			 rc;

	*out = NULL;
	if (log->flags & AUDIT_OPEN_VERIFY) {
		err_set(ERR_PERM, "audit log %s is open for verification only",
		    log->origin);
		return ERR_PERM;
	}
	p = xcalloc(1, sizeof(*p));
	if ((rc = audit_entry_encode(&p->bytes, &p->len, e, log->node,
	    log->service)) < 0 ||
	    (rc = merkle_leaf_hash(p->leaf, p->bytes, p->len)) < 0) {
		audit_pend_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

static int
audit_enqueue(struct audit_log *log, struct audit_pend *p)
{
	int	rc = 0;

	audit__lock(log);
	if (log->stopping) {
		err_set(ERR_GENERIC, "audit log %s is closing", log->origin);
		rc = ERR_GENERIC;
	} else if (log->broken < 0) {
		err_set(ERR_IO, "audit log %s unusable after a failed commit "
		    "(%s); restart the daemon", log->origin,
		    err_name(log->broken));
		rc = ERR_IO;
	} else if (log->queue.n >= AUDIT_QUEUE_MAX) {
		err_set(ERR_TOOBIG, "audit queue full (%d entries)",
		    AUDIT_QUEUE_MAX);
		rc = ERR_TOOBIG;
	} else {
		audit_fifo_push(&log->queue, p);
		pthread_cond_signal(&log->wcv);
	}
	audit__unlock(log);
	return rc;
}

int
audit_append(struct audit_log *log, const struct audit_entry *e,
    audit_done_fn done, void *arg)
{
	struct audit_pend	*p;
	int			 rc;

	if (!log->has_writer || done == NULL) {
		err_set(ERR_INVAL, "audit_append needs a log opened with an "
		    "event base, and a callback");
		return ERR_INVAL;
	}
	if ((rc = audit_pend_new(&p, log, e)) < 0)
		return rc;
	p->done = done;
	p->arg = arg;
	if ((rc = audit_enqueue(log, p)) < 0)
		audit_pend_free(p);
	return rc;
}

int
audit_append_sync(uint64_t *index_out, struct audit_log *log,
    const struct audit_entry *e)
{
	struct audit_fifo	 batch;
	struct audit_pend	*p;
	int			 rc;

	if ((rc = audit_pend_new(&p, log, e)) < 0)
		return rc;
	p->sync = 1;
	if (log->has_writer) {
		if ((rc = audit_enqueue(log, p)) < 0)
			goto done;
		audit__lock(log);
		while (!p->finished)
			pthread_cond_wait(&log->scv, &log->mu);
		audit__unlock(log);
	} else {
		memset(&batch, 0, sizeof(batch));
		audit_fifo_push(&batch, p);
		audit_commit(log, &batch);
	}
	if ((rc = p->rc) < 0)
		err_set(rc, "%s", p->errmsg != NULL ? p->errmsg :
		    "audit append failed");
	else if (index_out != NULL)
		*index_out = p->index;
done:
	audit_pend_free(p);
	return rc;
}

/* ------------------------------------------------------------ open */

static int
audit_name_ok(const char *s)
{
	size_t	i, n;

	if (s == NULL || (n = strlen(s)) == 0 || n > AUDIT_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

static int
audit_meta_get(MDB_txn *txn, MDB_dbi dbi, const char *key, MDB_val *v)
{
	MDB_val	k;

	k.mv_data = (void *)key;
	k.mv_size = strlen(key);
	return mdb_get(txn, dbi, &k, v);
}

static int
audit_meta_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const char *val)
{
	MDB_val	k, v;
	int	mrc;

	k.mv_data = (void *)key;
	k.mv_size = strlen(key);
	v.mv_data = (void *)val;
	v.mv_size = strlen(val);
	if ((mrc = mdb_put(txn, dbi, &k, &v, 0)) != 0)
		return db_err(mrc, "audit meta");
	return 0;
}

/* Stamp a new log with version and origin; check those of an old one. */
static int
audit_meta_fn(MDB_txn *txn, void *arg)
{
	struct audit_log	*log = arg;
	char			 ver[16];
	MDB_val			 v;
	int			 mrc, rc;

	snprintf(ver, sizeof(ver), "%d", AUDIT_FORMAT_VERSION);
	mrc = audit_meta_get(txn, log->meta, "version", &v);
	if (mrc == MDB_NOTFOUND) {
		if ((rc = audit_meta_put(txn, log->meta, "version", ver)) < 0)
			return rc;
		return audit_meta_put(txn, log->meta, "origin", log->origin);
	}
	if (mrc != 0)
		return db_err(mrc, "audit meta");
	if (v.mv_size != strlen(ver) || memcmp(v.mv_data, ver, v.mv_size)) {
		err_set(ERR_INVAL, "audit log format %.*s, not %s",
		    (int)(v.mv_size < 16 ? v.mv_size : 16),
		    (char *)v.mv_data, ver);
		return ERR_INVAL;
	}
	if ((mrc = audit_meta_get(txn, log->meta, "origin", &v)) != 0)
		return db_err(mrc, "audit meta origin");
	if (v.mv_size != strlen(log->origin) ||
	    memcmp(v.mv_data, log->origin, v.mv_size) != 0) {
		err_set(ERR_INVAL, "audit log belongs to %.*s, not %s",
		    (int)(v.mv_size < 140 ? v.mv_size : 140),
		    (char *)v.mv_data, log->origin);
		return ERR_INVAL;
	}
	return 0;
}

/* First and last key of a db (count 0: neither). */
static int
audit_ends(MDB_txn *txn, MDB_dbi dbi, uint64_t *count, uint64_t *first,
    uint64_t *last)
{
	MDB_cursor	*cur = NULL;
	MDB_stat	 st;
	MDB_val		 k, v;
	int		 mrc;

	*first = *last = 0;
	if ((mrc = mdb_stat(txn, dbi, &st)) != 0)
		return db_err(mrc, "audit stat");
	*count = st.ms_entries;
	if (st.ms_entries == 0)
		return 0;
	if ((mrc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return db_err(mrc, "audit cursor");
	if ((mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
		*first = audit__unkey(&k);
		if ((mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST)) == 0)
			*last = audit__unkey(&k);
	}
	mdb_cursor_close(cur);
	return mrc != 0 ? db_err(mrc, "audit cursor") : 0;
}

/* Load the committed tree; check entries and nodes agree. */
static int
audit_load_fn(MDB_txn *txn, void *arg)
{
	struct audit_log	*log = arg;
	struct audit_rtxn	 rt = { log, txn };
	uint64_t		 n, first, last, nn, nf, nl;
	int			 rc;

	if ((rc = audit_ends(txn, log->entries, &n, &first, &last)) < 0 ||
	    (rc = audit_ends(txn, log->nodes, &nn, &nf, &nl)) < 0)
		return rc;
	if (n >= MERKLE_SIZE_MAX || (n > 0 && (first != 0 ||
	    last != n - 1)) || nn != merkle_node_count(n) ||
	    (nn > 0 && (nf != 0 || nl != nn - 1))) {
		err_set(ERR_PROTO, "audit log %s damaged: %llu entries "
		    "(%llu..%llu), %llu tree nodes (%llu expected)",
		    log->origin, (unsigned long long)n,
		    (unsigned long long)first, (unsigned long long)last,
		    (unsigned long long)nn,
		    (unsigned long long)merkle_node_count(n));
		/* for verification, go on: audit_verify_all() reports */
		if (!(log->flags & AUDIT_OPEN_VERIFY))
			return ERR_PROTO;
	} else if ((rc = merkle_frontier_load(&log->fr, n, audit__node_get,
	    &rt)) < 0 && !(log->flags & AUDIT_OPEN_VERIFY))
		return rc;
	log->fr.size = n;
	return audit__cp_load(log, txn);
}

/* One writer per log, across processes. */
static int
audit_lock_dir(struct audit_log *log, const char *dir)
{
	char	*path;
	int	 rc;

	if ((rc = mkdir_p(dir, 0700)) < 0)
		return rc;
	path = path_join(dir, AUDIT_LOCK_FILE);
	log->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (log->lockfd == -1) {
		err_set(ERR_IO, "%s: %s", path, strerror(errno));
		rc = ERR_IO;
	} else if (flock(log->lockfd, LOCK_EX | LOCK_NB) == -1) {
		rc = errno == EWOULDBLOCK ? ERR_LOCKED : ERR_IO;
		err_set(rc, "%s: %s%s", path, strerror(errno), rc ==
		    ERR_LOCKED ? " (another process writes this audit log)" :
		    "");
	}
	free(path);
	return rc;
}

static void
audit_init_sync(struct audit_log *log)
{
	pthread_rwlockattr_t	ra;
	pthread_condattr_t	ca;

	audit_check(pthread_rwlockattr_init(&ra), "rwlockattr");
	/* a stream of readers must not starve the committer */
	audit_check(pthread_rwlockattr_setkind_np(&ra,
	    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP), "rwlockattr");
	audit_check(pthread_rwlock_init(&log->maplock, &ra), "rwlock");
	pthread_rwlockattr_destroy(&ra);
	audit_check(pthread_mutex_init(&log->mu, NULL), "mutex");
	audit_check(pthread_mutex_init(&log->commit_mu, NULL), "mutex");
	audit_check(pthread_condattr_init(&ca), "condattr");
	audit_check(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC),
	    "condattr");
	audit_check(pthread_cond_init(&log->wcv, &ca), "cond");
	pthread_condattr_destroy(&ca);
	audit_check(pthread_cond_init(&log->scv, NULL), "cond");
}

/* The event that runs callbacks, and the writer thread. */
static int
audit_start(struct audit_log *log, struct event_base *base)
{
	sigset_t	all, old;
	int		rc;

	log->base = base;
	if ((rc = wakeup_init(&log->wake, base, audit_drain_cb, log)) < 0)
		return rc;
	/* the thread inherits a mask blocking every signal */
	sigfillset(&all);
	audit_check(pthread_sigmask(SIG_SETMASK, &all, &old), "sigmask");
	rc = pthread_create(&log->writer, NULL, audit_writer_main, log);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		err_set(ERR_GENERIC, "audit writer thread: %s", strerror(rc));
		return ERR_GENERIC;
	}
	log->has_writer = 1;
	return 0;
}

static int
audit_opts_ok(const struct audit_opts *o)
{
	if (o == NULL || o->dir == NULL || *o->dir == '\0' ||
	    !audit_name_ok(o->node) || !audit_name_ok(o->service)) {
		err_set(ERR_INVAL, "audit: a directory, and node and service "
		    "names of 1..%d of [A-Za-z0-9._-]", AUDIT_NAME_MAX);
		return 0;
	}
	if (o->batch_max > AUDIT_QUEUE_MAX || o->batch_delay_us > 1000000) {
		err_set(ERR_INVAL, "audit: batch_max <= %d, batch_delay_us "
		    "<= 1 s", AUDIT_QUEUE_MAX);
		return 0;
	}
	return 1;
}

int
audit_open(struct audit_log **out, const struct audit_opts *o)
{
	struct audit_log	*log;
	int			 rc;

	*out = NULL;
	if (!audit_opts_ok(o))
		return ERR_INVAL;
	log = xcalloc(1, sizeof(*log));
	log->lockfd = log->wake.fd = -1;
	audit_init_sync(log);
	snprintf(log->node, sizeof(log->node), "%s", o->node);
	snprintf(log->service, sizeof(log->service), "%s", o->service);
	snprintf(log->origin, sizeof(log->origin), "%s/%s", o->node,
	    o->service);
	log->batch_max = o->batch_max ? o->batch_max : AUDIT_BATCH_MAX;
	log->batch_delay_us = o->batch_delay_us;
	log->cp_entries = o->checkpoint_entries ? o->checkpoint_entries :
	    AUDIT_CHECKPOINT_ENTRIES;
	log->cp_ms = o->checkpoint_ms ? o->checkpoint_ms : AUDIT_CHECKPOINT_MS;
	log->flags = o->flags;

	if (!(log->flags & AUDIT_OPEN_VERIFY) &&
	    (rc = audit_lock_dir(log, o->dir)) < 0)
		goto fail;
	if ((rc = db_open(&log->db, o->dir, o->map_size ? o->map_size :
	    AUDIT_MAP_SIZE, o->map_max ? o->map_max : AUDIT_MAP_MAX,
	    AUDIT_MAXDBS)) < 0 ||
	    (rc = db_dbi(log->db, "entries", 0, &log->entries)) < 0 ||
	    (rc = db_dbi(log->db, "nodes", 0, &log->nodes)) < 0 ||
	    (rc = db_dbi(log->db, "checkpoints", 0, &log->cps)) < 0 ||
	    (rc = db_dbi(log->db, "meta", 0, &log->meta)) < 0 ||
	    (rc = db_write(log->db, audit_meta_fn, log)) < 0 ||
	    (rc = db_read(log->db, audit_load_fn, log)) < 0)
		goto fail;
	if (o->base != NULL && !(log->flags & AUDIT_OPEN_VERIFY) &&
	    (rc = audit_start(log, o->base)) < 0)
		goto fail;
	log_info("audit open origin=%s dir=%s size=%llu checkpoint=%llu",
	    log->origin, o->dir, (unsigned long long)log->fr.size,
	    (unsigned long long)log->cp_size);
	*out = log;
	return 0;
fail:
	audit_close(&log);
	return rc;
}

void
audit_close(struct audit_log **pp)
{
	struct audit_log	*log;

	if (pp == NULL || (log = *pp) == NULL)
		return;
	if (log->draining)
		fatalx("audit_close called from an audit callback");
	if (log->has_writer) {
		audit__lock(log);
		log->stopping = 1;
		pthread_cond_broadcast(&log->wcv);
		audit__unlock(log);
		pthread_join(log->writer, NULL);
	}
	audit_drain(log);
	wakeup_free(&log->wake);
	db_close(&log->db);
	if (log->lockfd != -1)
		close(log->lockfd);
	pthread_cond_destroy(&log->scv);
	pthread_cond_destroy(&log->wcv);
	pthread_mutex_destroy(&log->commit_mu);
	pthread_mutex_destroy(&log->mu);
	pthread_rwlock_destroy(&log->maplock);
	free(log);
	*pp = NULL;
}
