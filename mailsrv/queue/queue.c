/*
 * queue.c -- the durable mail queue: open and close, ids, group commit
 * and the queue index (see queue.h for the contract; the file format is
 * in queue_file.c, the envelope record in queue_env.c, the open-time
 * recovery in queue_recover.c).
 *
 * Purpose: make messages durable with their envelopes before "250
 * queued", batching the syncs of every commit that arrives while a
 * batch runs, and keep the envelopes and the schedule in LMDB.
 * Runs in: mailsrv.  queue_writer_new and queue_commit on the event
 * loop thread; the batch on the queue's one worker thread; queue_read
 * and the index calls (get, due, update, remove, list, count) on any
 * thread.
 * Failure policy: negative enum err with err_set(); a failed batch step
 * fails the commits it concerns (cb(err, NULL, arg)) and their files
 * are removed; OOM is fatal (xmalloc).  The daemon keeps running.
 * SECURITY: ids are checked with queue_id_ok() before they become
 * paths, and every file access is relative to the tmp/ and msg/
 * directory fds with O_NOFOLLOW; index records are untrusted input
 * (queue_env.c).  The key is wiped at close.
 *
 * Group commit.  queue_commit() finishes the writer's file (no sync),
 * encodes the envelope and appends {id, fd, record, cb} to the pending
 * list (loop thread only), then activates the kick event.  The kick
 * callback, at the end of the loop turn, hands the whole pending list
 * to the worker as one batch, unless a batch is running: then the list
 * grows until that batch's completion, which starts the next batch
 * before it runs the callbacks.  So 200 commits in one loop turn make
 * one batch, and under load every batch takes what arrived during the
 * previous one.
 *
 * A batch, on the worker thread: FILE mode: fdatasync() each file,
 * rename tmp/<name> -> msg/<id> (RENAME_NOREPLACE), fsync(msg/) once.  FS
 * mode: rename all, then one syncfs().  Renaming before the data is
 * synced is safe because no envelope points at msg/<id> yet: after a
 * crash the file is an orphan that recovery removes.  AUTO (default)
 * uses FILE for a batch of one and FS for more: measured on ext4, 20
 * writers of 5 KiB, syncfs batches made 3.4-5.9k commits/s against
 * 1.0-1.9k for per-file fdatasync; alone, both ran 650-1000/s, but
 * under a concurrent buffered writer on the same filesystem a lone
 * commit took twice as long with syncfs (it flushes others' dirty
 * pages too), so one file keeps fdatasync.  Then one LMDB
 * write transaction stores every envelope in "env" (id -> record) and
 * its schedule key in "sched" (be64 next_try | id -> empty); LMDB syncs
 * it at commit.  Only then is the batch done and cb(0, id) called.
 *
 * Locking.  The pending list, the counters and the running flag are
 * the loop's; a batch belongs to the worker between submit and done.
 * LMDB's map may grow (remap) inside db_write(), which must not happen
 * while another thread holds a read transaction: dblock (a rwlock) is
 * held shared around every read transaction and exclusively around
 * every write (writer-preferring, never nested), so a read waits for a
 * batch's index write (a few ms) and index calls are safe from any
 * thread.  queue_update and queue_remove write (and sync) LMDB on the
 * calling thread: call them from a worker when latency matters.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <lmdb.h>
#include <openssl/rand.h>

#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/worker.h"
#include "common/xmalloc.h"
#include "mailsrv/queue/queue.h"

#define Q_MAP_SIZE	(16 * 1024 * 1024)
#define Q_MAP_MAX	((size_t)64 * 1024 * 1024 * 1024)
#define Q_SCHED_KEY	(8 + QUEUE_ID_LEN)
#define Q_ID_TRIES	16
#define Q_WORKER_QUEUE	4
/*
 * Empty tmp files created ahead by the batch thread, so that starting a
 * message costs the event loop no file creation (slow on some file
 * systems: ext4 without a journal scans recently freed inodes).
 */
#define Q_SPARES	128	/* at most, in tmp/, listed in struct queue */
/* the batch thread creates spares up to this; delivered messages' files
 * (emptied) fill the rest, so a steady flow frees and creates no inode */
#define Q_SPARES_MADE	32

struct queue_ent {
	char			 id[QUEUE_ID_LEN + 1];
	char			 tmpname[QUEUE_ID_LEN + 1];	/* in tmp/ */
	struct queue_writer	*w;		/* finished by the batch */
	int			 fd;		/* tmp/<tmpname>, -1 once closed */
	char			*rec;		/* encoded envelope */
	size_t			 reclen;
	int64_t			 next_try;
	queue_commit_cb		 cb;
	void			*arg;
	int			 rc;		/* this commit's result */
	int			 renamed;	/* now msg/<id> */
	struct queue_ent	*next;
};

struct queue_batch {
	struct queue		*q;
	struct queue_ent	*head;
	size_t			 n;
	int			 sync;		/* enum queue_sync, resolved */
	uint64_t		 ms;		/* time the work took */
};

struct queue {
	struct event_base	*base;
	char			*dir;
	int			 dirfd;		/* the queue directory */
	int			 lockfd;
	int			 tmpfd;		/* tmp/ */
	int			 msgfd;		/* msg/ */
	unsigned char		 key[QUEUE_KEY_LEN];
	uint64_t		 msg_max;
	struct db_env		*db;
	MDB_dbi			 dbi_env;
	MDB_dbi			 dbi_sched;
	pthread_rwlock_t	 dblock;
	struct worker_pool	*pool;
	struct event		*kick;
	struct queue_writer	*writers;	/* open, loop thread only */
	pthread_mutex_t		 spare_lock;
	struct {			/* empty tmp/ files, made ahead */
		int	fd;
		char	id[QUEUE_ID_LEN + 1];
	}			 spare[Q_SPARES];
	size_t			 nspare;

	/* loop thread only */
	struct queue_ent	*pend_head;
	struct queue_ent	**pend_tail;
	size_t			 npending;
	int			 running;	/* a batch is on the worker */
	int			 closing;
	int			 sync;		/* enum queue_sync */
	uint64_t		 nbatches;
	uint64_t		 ncommits;
};

/* ---------------------------------------------------------------- */

int
queue_id_ok(const char *id)
{
	size_t	i;

	if (id == NULL)
		return 0;
	for (i = 0; i < QUEUE_ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		    (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	return id[QUEUE_ID_LEN] == '\0';
}

/* 8 hex digits of unix seconds (time order), then 12 random ones. */
static int
queue_id_new(char *id)
{
	static const char	hex[] = "0123456789abcdef";
	unsigned char		rnd[(QUEUE_ID_LEN - 8) / 2];
	uint32_t		t = (uint32_t)time(NULL);
	size_t			i;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		err_set(ERR_GENERIC, "queue: RAND_bytes failed");
		return ERR_GENERIC;
	}
	for (i = 0; i < 8; i++)
		id[i] = hex[(t >> (28 - 4 * i)) & 0xf];
	for (i = 0; i < sizeof(rnd); i++) {
		id[8 + 2 * i] = hex[rnd[i] >> 4];
		id[9 + 2 * i] = hex[rnd[i] & 0xf];
	}
	id[QUEUE_ID_LEN] = '\0';
	return 0;
}

/* The schedule key of id: be64 next_try (negative: 0) | id. */
void
queue__sched_key(unsigned char *k, int64_t next_try, const char *id)
{
	uint64_t	t = next_try < 0 ? 0 : (uint64_t)next_try;
	int		i;

	for (i = 7; i >= 0; i--) {
		k[i] = t & 0xff;
		t >>= 8;
	}
	memcpy(k + 8, id, QUEUE_ID_LEN);
}

static void
queue_rdlock(struct queue *q)
{
	int	rc;

	if ((rc = pthread_rwlock_rdlock(&q->dblock)) != 0)
		fatalx("queue: pthread_rwlock_rdlock: %s", strerror(rc));
}

static void
queue_wrlock(struct queue *q)
{
	int	rc;

	if ((rc = pthread_rwlock_wrlock(&q->dblock)) != 0)
		fatalx("queue: pthread_rwlock_wrlock: %s", strerror(rc));
}

static void
queue_unlock(struct queue *q)
{
	pthread_rwlock_unlock(&q->dblock);
}

static int
queue_db_read(struct queue *q, db_txn_fn fn, void *arg)
{
	int	rc;

	queue_rdlock(q);
	rc = db_read(q->db, fn, arg);
	queue_unlock(q);
	return rc;
}

static int
queue_db_write(struct queue *q, db_txn_fn fn, void *arg)
{
	int	rc;

	queue_wrlock(q);
	rc = db_write(q->db, fn, arg);
	queue_unlock(q);
	return rc;
}

/* ---------------------------------------------------------------- */
/* The batch, on the worker thread. */

static void
queue_ent_free(struct queue_ent *e)
{
	queue_writer_abort(&e->w);	/* a batch that never ran */
	if (e->fd != -1)
		close(e->fd);
	free(e->rec);
	free(e);
}

/* Fail every entry still ok (or every renamed one) with rc. */
static void
queue_batch_fail(struct queue_batch *b, int rc, int renamed_only)
{
	struct queue_ent	*e;

	for (e = b->head; e != NULL; e = e->next)
		if (e->rc == 0 && (!renamed_only || e->renamed))
			e->rc = rc;
}

static int
queue_batch_rename(struct queue *q, struct queue_ent *e)
{
	if (renameat2(q->tmpfd, e->tmpname, q->msgfd, e->id,
	    RENAME_NOREPLACE) == -1) {
		log_warn("queue commit id=%s rename", e->id);
		return (e->rc = ERR_IO);
	}
	e->renamed = 1;
	return 0;
}

/* Sync, rename and sync: every entry left with rc 0 is in msg/, durable. */
static void
queue_batch_files(struct queue_batch *b)
{
	struct queue		*q = b->q;
	struct queue_ent	*e;
	int			 any = 0;

	for (e = b->head; e != NULL; e = e->next) {
		if (e->rc != 0)
			continue;
		if (b->sync == QUEUE_SYNC_FILE && fdatasync(e->fd) == -1) {
			log_warn("queue commit id=%s fdatasync", e->id);
			e->rc = ERR_IO;
			continue;
		}
		if (queue_batch_rename(q, e) == 0)
			any = 1;
	}
	if (!any)
		return;
	if (b->sync == QUEUE_SYNC_FILE && fsync(q->msgfd) == -1) {
		log_warn("queue commit fsync msg/");
		queue_batch_fail(b, ERR_IO, 1);
	} else if (b->sync == QUEUE_SYNC_FS && syncfs(q->msgfd) == -1) {
		log_warn("queue commit syncfs");
		queue_batch_fail(b, ERR_IO, 1);
	}
}

/* The index transaction: idempotent, LMDB writes only. */
static int
queue_batch_txn(MDB_txn *txn, void *arg)
{
	struct queue_batch	*b = arg;
	struct queue		*q = b->q;
	struct queue_ent	*e;
	unsigned char		 sk[Q_SCHED_KEY];
	MDB_val			 k, v;
	int			 mrc;

	for (e = b->head; e != NULL; e = e->next) {
		if (e->rc != 0)
			continue;
		k.mv_data = e->id;
		k.mv_size = QUEUE_ID_LEN;
		v.mv_data = e->rec;
		v.mv_size = e->reclen;
		if ((mrc = mdb_put(txn, q->dbi_env, &k, &v,
		    MDB_NOOVERWRITE)) != 0)
			return db_err(mrc, "queue env put");
		queue__sched_key(sk, e->next_try, e->id);
		k.mv_data = sk;
		k.mv_size = sizeof(sk);
		v.mv_data = NULL;
		v.mv_size = 0;
		if ((mrc = mdb_put(txn, q->dbi_sched, &k, &v, 0)) != 0)
			return db_err(mrc, "queue sched put");
	}
	return 0;
}

static void	queue_spares_fill(struct queue *);

static void
queue_batch_work(void *arg)
{
	struct queue_batch	*b = arg;
	struct queue		*q = b->q;
	struct queue_ent	*e;
	uint64_t		 t0 = now_ms();
	int			 rc, any = 0;

	/* compress, encrypt and write what the loop kept in memory */
	for (e = b->head; e != NULL; e = e->next)
		if ((rc = queue__writer_finish(&e->w, &e->fd)) < 0) {
			log_warnx("queue commit id=%s: %s", e->id, err_msg());
			e->rc = rc;	/* and its file is gone */
		}
	queue_batch_files(b);
	for (e = b->head; e != NULL; e = e->next) {
		close(e->fd);
		e->fd = -1;
		any |= e->rc == 0;
	}
	if (any && (rc = queue_db_write(q, queue_batch_txn, b)) < 0) {
		log_warnx("queue commit batch n=%zu index: %s", b->n,
		    err_msg());
		queue_batch_fail(b, rc, 0);
	}
	/* a failed commit leaves no file (or an orphan recovery removes) */
	for (e = b->head; e != NULL; e = e->next) {
		if (e->rc == 0)
			continue;
		if (unlinkat(e->renamed ? q->msgfd : q->tmpfd, e->renamed ?
		    e->id : e->tmpname, 0) == -1 && errno != ENOENT)
			log_warn("queue commit id=%s unlink", e->id);
	}
	b->ms = now_ms() - t0;
	queue_spares_fill(q);	/* off the loop, for the next messages */
}

static void	queue_batch_start(struct queue *);

/* Run the callbacks of a finished batch and free it (loop thread). */
static void
queue_batch_callbacks(struct queue *q, struct queue_batch *b)
{
	struct queue_ent	*e;

	while ((e = b->head) != NULL) {
		b->head = e->next;
		if (e->rc == 0)
			q->ncommits++;
		e->cb(e->rc, e->rc == 0 ? e->id : NULL, e->arg);
		queue_ent_free(e);
	}
	free(b);
	/* commits made by the callbacks wait for the end of this turn */
	if (!q->closing && !q->running && q->npending > 0)
		event_active(q->kick, EV_TIMEOUT, 1);
}

/* On the loop: the batch is durable (or failed). */
static void
queue_batch_done(void *arg)
{
	struct queue_batch	*b = arg;
	struct queue		*q = b->q;

	q->running = 0;
	q->nbatches++;
	log_debug("queue commit batch n=%zu sync=%s ms=%llu", b->n,
	    b->sync == QUEUE_SYNC_FILE ? "file" : "fs",
	    (unsigned long long)b->ms);
	/* the next batch syncs while these callbacks run */
	if (!q->closing)
		queue_batch_start(q);
	queue_batch_callbacks(q, b);
}

/* Take the whole pending list as one batch. */
static struct queue_batch *
queue_batch_take(struct queue *q)
{
	struct queue_batch	*b;

	b = xcalloc(1, sizeof(*b));
	b->q = q;
	b->head = q->pend_head;
	b->n = q->npending;
	b->sync = q->sync;
	if (b->sync == QUEUE_SYNC_AUTO)
		b->sync = b->n == 1 ? QUEUE_SYNC_FILE : QUEUE_SYNC_FS;
	q->pend_head = NULL;
	q->pend_tail = &q->pend_head;
	q->npending = 0;
	return b;
}

static void
queue_batch_start(struct queue *q)
{
	struct queue_batch	*b;
	struct queue_ent	*e;
	int			 rc;

	if (q->running || q->npending == 0)
		return;
	b = queue_batch_take(q);
	q->running = 1;
	if ((rc = worker_submit(q->pool, queue_batch_work, queue_batch_done,
	    b)) == 0)
		return;
	/* not from queue_commit: this runs from the kick or a completion */
	log_warnx("queue commit batch n=%zu: %s", b->n, err_msg());
	q->running = 0;
	for (e = b->head; e != NULL; e = e->next) {
		e->rc = rc;
		if (unlinkat(q->tmpfd, e->tmpname, 0) == -1 &&
		    errno != ENOENT)
			log_warn("queue commit id=%s unlink", e->id);
	}
	queue_batch_callbacks(q, b);
}

static void
queue_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue	*q = arg;

	if (!q->closing)
		queue_batch_start(q);
}

/* ---------------------------------------------------------------- */
/* Writers and commits, on the loop. */

/* Create <dirfd>/<id> for a fresh id: the fd, or -1 (errno). */
static int
queue_tmp_create(struct queue *q, int dirfd, char *id)
{
	struct stat	st;
	int		i, fd = -1;

	for (i = 0; i < Q_ID_TRIES && fd == -1; i++) {
		if (queue_id_new(id) < 0)
			return -1;
		/* never reuse the id of a committed message */
		if (fstatat(q->msgfd, id, &st, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		fd = openat(dirfd, id, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd == -1 && errno != EEXIST)
			return -1;
	}
	return fd;
}

/*
 * Remove the spare/ directory of an older version (empty files made
 * ahead, never used; spares are in tmp/ now).
 */
static void
queue_spares_legacy(struct queue *q)
{
	DIR		*d;
	struct dirent	*de;
	int		 fd;

	if ((fd = openat(q->dirfd, "spare", O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC)) == -1)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			(void)unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	(void)unlinkat(q->dirfd, "spare", AT_REMOVEDIR);
}

/*
 * Add the empty file tmp/<name> (open as fd) to the spares; when they are
 * full already, remove it and return -1.  Any thread.
 */
int
queue__spare_put(struct queue *q, int fd, const char *id)
{
	pthread_mutex_lock(&q->spare_lock);
	if (q->nspare == Q_SPARES) {
		pthread_mutex_unlock(&q->spare_lock);
		(void)unlinkat(q->tmpfd, id, 0);
		close(fd);
		return -1;
	}
	q->spare[q->nspare].fd = fd;
	memcpy(q->spare[q->nspare].id, id, QUEUE_ID_LEN + 1);
	q->nspare++;
	pthread_mutex_unlock(&q->spare_lock);
	return 0;
}

/* Top up the spare tmp files (any thread; the batch thread does it). */
static void
queue_spares_fill(struct queue *q)
{
	char	id[QUEUE_ID_LEN + 1];
	size_t	n;
	int	fd;

	pthread_mutex_lock(&q->spare_lock);
	n = q->nspare;
	pthread_mutex_unlock(&q->spare_lock);
	for (; n < Q_SPARES_MADE; n++) {
		if ((fd = queue_tmp_create(q, q->tmpfd, id)) == -1)
			return;
		if (queue__spare_put(q, fd, id) < 0)
			return;
	}
}

static void
queue_spares_drop(struct queue *q)
{
	while (q->nspare > 0) {
		q->nspare--;
		(void)unlinkat(q->tmpfd, q->spare[q->nspare].id, 0);
		close(q->spare[q->nspare].fd);
	}
}

int
queue_writer_new(struct queue *q, struct queue_writer **out)
{
	char		id[QUEUE_ID_LEN + 1], name[QUEUE_ID_LEN + 1];
	struct stat	st;
	int		i, fd = -1, rc = ERR_EXISTS;

	*out = NULL;
	if (q->closing) {
		err_set(ERR_GENERIC, "queue is closing");
		return ERR_GENERIC;
	}
	pthread_mutex_lock(&q->spare_lock);
	if (q->nspare > 0) {
		q->nspare--;
		fd = q->spare[q->nspare].fd;
		memcpy(name, q->spare[q->nspare].id, sizeof(name));
	}
	pthread_mutex_unlock(&q->spare_lock);
	/*
	 * A new id for every message (never a spare's name, which goes
	 * back to the spares when the writer is aborted), never the id of
	 * a committed one.  With a spare: no file creation on the loop.
	 */
	for (i = 0; i < Q_ID_TRIES && rc == ERR_EXISTS; i++) {
		if ((rc = queue_id_new(id)) < 0)
			break;
		if (fstatat(q->msgfd, id, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			rc = ERR_EXISTS;
			continue;
		}
		rc = queue__writer_open(out, &q->writers, fd, q, q->tmpfd, id,
		    fd != -1 ? name : id, q->key, q->msg_max);
	}
	if (rc < 0 && fd != -1)
		(void)queue__spare_put(q, fd, name);
	return rc;
}

int
queue_commit(struct queue_writer **wp, const struct queue_env *env,
    queue_commit_cb cb, void *arg)
{
	struct queue_writer	*w = *wp;
	struct queue		*q;
	struct queue_env	 tmp;
	struct queue_ent	*e = NULL;
	int			 rc;

	*wp = NULL;
	if (w == NULL || env == NULL || cb == NULL) {
		err_set(ERR_INVAL, "queue_commit: missing argument");
		rc = ERR_INVAL;
		goto fail;
	}
	if ((q = queue__writer_queue(w)) == NULL || q->closing) {
		err_set(ERR_GENERIC, "queue is closing");
		rc = ERR_GENERIC;
		goto fail;
	}
	e = xcalloc(1, sizeof(*e));
	e->fd = -1;
	memcpy(e->id, queue_writer_id(w), sizeof(e->id));
	memcpy(e->tmpname, queue__writer_tmpname(w), sizeof(e->tmpname));
	tmp = *env;
	memcpy(tmp.id, e->id, sizeof(tmp.id));
	tmp.size = queue_writer_size(w);
	if ((rc = queue__env_encode(&tmp, q->key, &e->rec, &e->reclen)) < 0)
		goto fail;
	if ((rc = queue__writer_failed(w)) < 0)
		goto fail;
	queue__writer_release(w);
	e->w = w;
	w = NULL;
	e->next_try = env->next_try;
	e->cb = cb;
	e->arg = arg;
	*q->pend_tail = e;
	q->pend_tail = &e->next;
	q->npending++;
	if (!q->running)
		event_active(q->kick, EV_TIMEOUT, 1);
	return 0;
fail:
	queue_writer_abort(&w);
	if (e != NULL)
		queue_ent_free(e);
	return rc;
}

void
queue_stats(struct queue *q, uint64_t *batches, uint64_t *commits)
{
	if (batches != NULL)
		*batches = q->nbatches;
	if (commits != NULL)
		*commits = q->ncommits;
}

size_t
queue_spares(struct queue *q)
{
	size_t	n;

	pthread_mutex_lock(&q->spare_lock);
	n = q->nspare;
	pthread_mutex_unlock(&q->spare_lock);
	return n;
}

void
queue_set_sync(struct queue *q, int mode)
{
	if (mode == QUEUE_SYNC_AUTO || mode == QUEUE_SYNC_FILE ||
	    mode == QUEUE_SYNC_FS)
		q->sync = mode;
}

void
queue_set_msg_max(struct queue *q, uint64_t max)
{
	q->msg_max = max < QUEUE_MSG_MAX ? max : QUEUE_MSG_MAX;
}

int
queue_read(struct queue *q, const char *id, unsigned char **out,
    size_t *outlen)
{
	*out = NULL;
	*outlen = 0;
	if (!queue_id_ok(id)) {
		err_set(ERR_INVAL, "queue: bad id");
		return ERR_INVAL;
	}
	return queue__file_read(q->msgfd, id, q->key, QUEUE_MSG_MAX, out,
	    outlen);
}

/* ---------------------------------------------------------------- */
/* The index, on the loop. */

struct queue_get_arg {
	struct queue		*q;
	const char		*id;
	struct queue_env	*env;
};

static int
queue_get_fn(MDB_txn *txn, void *arg)
{
	struct queue_get_arg	*a = arg;
	MDB_val			 k, v;
	int			 mrc;

	k.mv_data = (void *)a->id;
	k.mv_size = QUEUE_ID_LEN;
	if ((mrc = mdb_get(txn, a->q->dbi_env, &k, &v)) != 0)
		return db_err(mrc, "queue envelope");
	return queue__env_decode(&a->env, a->id, a->q->key, v.mv_data,
	    v.mv_size);
}

int
queue_get(struct queue *q, const char *id, struct queue_env **out)
{
	struct queue_get_arg	a;
	int			rc;

	*out = NULL;
	if (!queue_id_ok(id)) {
		err_set(ERR_INVAL, "queue: bad id");
		return ERR_INVAL;
	}
	a.q = q;
	a.id = id;
	a.env = NULL;
	if ((rc = queue_db_read(q, queue_get_fn, &a)) < 0)
		return rc;
	*out = a.env;
	return 0;
}

struct queue_due_arg {
	struct queue	*q;
	uint64_t	 now;
	size_t		 max;
	char		**ids;
	size_t		 n;
};

static int
queue_due_fn(MDB_txn *txn, void *arg)
{
	struct queue_due_arg	*a = arg;
	MDB_cursor		*c;
	MDB_val			 k, v;
	const unsigned char	*p;
	uint64_t		 t;
	char			 id[QUEUE_ID_LEN + 1];
	int			 mrc, i;

	if ((mrc = mdb_cursor_open(txn, a->q->dbi_sched, &c)) != 0)
		return db_err(mrc, "queue sched cursor");
	for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	    mrc == 0 && a->n < a->max;
	    mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != Q_SCHED_KEY)
			continue;	/* recovery removes it */
		p = k.mv_data;
		for (t = 0, i = 0; i < 8; i++)
			t = t << 8 | p[i];
		if (t > a->now)
			break;
		memcpy(id, p + 8, QUEUE_ID_LEN);
		id[QUEUE_ID_LEN] = '\0';
		if (!queue_id_ok(id))
			continue;
		if (a->n % 64 == 0)
			a->ids = xreallocarray(a->ids, a->n + 64,
			    sizeof(*a->ids));
		a->ids[a->n++] = xstrdup(id);
	}
	mdb_cursor_close(c);
	if (mrc != 0 && mrc != MDB_NOTFOUND)
		return db_err(mrc, "queue sched");
	return 0;
}

int
queue_due(struct queue *q, int64_t now, size_t max, char ***out,
    size_t *nout)
{
	struct queue_due_arg	a;
	size_t			i;
	int			rc;

	*out = NULL;
	*nout = 0;
	memset(&a, 0, sizeof(a));
	a.q = q;
	a.now = now < 0 ? 0 : (uint64_t)now;
	a.max = max;
	if ((rc = queue_db_read(q, queue_due_fn, &a)) < 0) {
		for (i = 0; i < a.n; i++)
			free(a.ids[i]);
		free(a.ids);
		return rc;
	}
	*out = a.ids;
	*nout = a.n;
	return 0;
}

/* Delete every schedule entry of id (its record did not decode). */
static int
queue_sched_del_id(MDB_txn *txn, struct queue *q, const char *id)
{
	MDB_cursor	*c;
	MDB_val		 k, v;
	int		 mrc;

	if ((mrc = mdb_cursor_open(txn, q->dbi_sched, &c)) != 0)
		return db_err(mrc, "queue sched cursor");
	for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0;
	    mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size == Q_SCHED_KEY &&
		    memcmp((char *)k.mv_data + 8, id, QUEUE_ID_LEN) == 0 &&
		    (mrc = mdb_cursor_del(c, 0)) != 0)
			break;
	}
	mdb_cursor_close(c);
	if (mrc != 0 && mrc != MDB_NOTFOUND)
		return db_err(mrc, "queue sched");
	return 0;
}

struct queue_upd_arg {
	struct queue	*q;
	const char	*id;
	const char	*rec;		/* new record, NULL: remove */
	size_t		 reclen;
	int64_t		 next_try;
};

/* Replace (or remove) the record of id and its schedule entry. */
static int
queue_upd_fn(MDB_txn *txn, void *arg)
{
	struct queue_upd_arg	*a = arg;
	struct queue		*q = a->q;
	struct queue_env	*old = NULL;
	unsigned char		 sk[Q_SCHED_KEY];
	MDB_val			 k, v, sv;
	int			 mrc, rc;

	k.mv_data = (void *)a->id;
	k.mv_size = QUEUE_ID_LEN;
	if ((mrc = mdb_get(txn, q->dbi_env, &k, &v)) != 0)
		return db_err(mrc, "queue envelope");
	sv.mv_data = sk;
	sv.mv_size = sizeof(sk);
	if (queue__env_decode(&old, a->id, q->key, v.mv_data, v.mv_size) == 0) {
		queue__sched_key(sk, old->next_try, a->id);
		queue_env_free(&old);
		if ((mrc = mdb_del(txn, q->dbi_sched, &sv, NULL)) != 0 &&
		    mrc != MDB_NOTFOUND)
			return db_err(mrc, "queue sched del");
	} else if ((rc = queue_sched_del_id(txn, q, a->id)) < 0)
		return rc;
	if (a->rec == NULL) {
		if ((mrc = mdb_del(txn, q->dbi_env, &k, NULL)) != 0)
			return db_err(mrc, "queue env del");
		return 0;
	}
	v.mv_data = (void *)a->rec;
	v.mv_size = a->reclen;
	if ((mrc = mdb_put(txn, q->dbi_env, &k, &v, 0)) != 0)
		return db_err(mrc, "queue env put");
	queue__sched_key(sk, a->next_try, a->id);
	v.mv_data = NULL;
	v.mv_size = 0;
	if ((mrc = mdb_put(txn, q->dbi_sched, &sv, &v, 0)) != 0)
		return db_err(mrc, "queue sched put");
	return 0;
}

/*
 * The envelope is gone (committed): the file is not needed any more.  It
 * is emptied and renamed to tmp/ under a fresh id, a spare for a later
 * message: freeing an inode and allocating another costs far more than
 * a truncate and a rename on some filesystems (ext4 without a journal
 * scans the recently freed inodes).  When the spares are full it is
 * removed.  No sync either way: a file that a crash leaves in msg/ has no
 * envelope and recovery removes it, and tmp/ is cleared at open.
 */
static void
queue_release_msg(struct queue *q, const char *id)
{
	char	nid[QUEUE_ID_LEN + 1];
	int	fd, full;

	pthread_mutex_lock(&q->spare_lock);
	full = q->nspare >= Q_SPARES;
	pthread_mutex_unlock(&q->spare_lock);
	if (!full && (fd = openat(q->msgfd, id, O_WRONLY | O_NOFOLLOW |
	    O_CLOEXEC)) != -1) {
		if (ftruncate(fd, 0) == 0 && queue_id_new(nid) == 0 &&
		    renameat2(q->msgfd, id, q->tmpfd, nid,
		    RENAME_NOREPLACE) == 0) {
			queue__spare_put(q, fd, nid);
			return;
		}
		close(fd);
	}
	if (unlinkat(q->msgfd, id, 0) == -1 && errno != ENOENT)
		log_warn("queue remove id=%s unlink", id);
}

static int
queue_upd(struct queue *q, struct queue_upd_arg *a)
{
	int	rc;

	if ((rc = queue_db_write(q, queue_upd_fn, a)) < 0)
		return rc;
	if (a->rec == NULL) {
		queue_release_msg(q, a->id);
		log_info("queue removed id=%s", a->id);
	}
	return 0;
}

int
queue_update(struct queue *q, const struct queue_env *env)
{
	struct queue_upd_arg	 a;
	char			*rec = NULL;
	size_t			 reclen, i;
	int			 rc, pending = 0;

	if ((rc = queue__env_encode(env, q->key, &rec, &reclen)) < 0)
		return rc;
	for (i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].state == QUEUE_RCPT_PENDING)
			pending = 1;
	memset(&a, 0, sizeof(a));
	a.q = q;
	a.id = env->id;
	a.next_try = env->next_try;
	if (pending) {
		a.rec = rec;
		a.reclen = reclen;
	}
	rc = queue_upd(q, &a);
	free(rec);
	return rc;
}

struct queue_upd_many {
	struct queue_upd_arg	*a;
	int			*rcs;
	size_t			 n;
	MDB_dbi			 q_dbi;		/* envelopes */
};

static int
queue_upd_many_fn(MDB_txn *txn, void *arg)
{
	struct queue_upd_many	*m = arg;
	MDB_val			 k, v;
	size_t			 i;
	int			 mrc, rc;

	for (i = 0; i < m->n; i++) {
		k.mv_data = (void *)m->a[i].id;
		k.mv_size = QUEUE_ID_LEN;
		if ((mrc = mdb_get(txn, m->q_dbi, &k, &v)) == MDB_NOTFOUND) {
			err_set(ERR_NOTFOUND, "queue: %s is gone",
			    m->a[i].id);
			m->rcs[i] = ERR_NOTFOUND;
			continue;
		}
		if ((rc = queue_upd_fn(txn, &m->a[i])) < 0)
			return rc;
		m->rcs[i] = 0;
	}
	return 0;
}

int
queue_update_many(struct queue *q, struct queue_env *const *envs, size_t n,
    int *rcs)
{
	struct queue_upd_many	 m;
	char			**recs;
	size_t			 i, j;
	int			 rc = 0;

	m.a = xcalloc(n ? n : 1, sizeof(*m.a));
	m.rcs = rcs;
	m.n = n;
	m.q_dbi = q->dbi_env;
	recs = xcalloc(n ? n : 1, sizeof(*recs));
	for (i = 0; i < n && rc == 0; i++) {
		m.a[i].q = q;
		m.a[i].id = envs[i]->id;
		m.a[i].next_try = envs[i]->next_try;
		rc = queue__env_encode(envs[i], q->key, &recs[i],
		    &m.a[i].reclen);
		for (j = 0; j < envs[i]->nrcpts; j++)
			if (envs[i]->rcpts[j].state == QUEUE_RCPT_PENDING)
				m.a[i].rec = recs[i];
	}
	if (rc == 0)
		rc = queue_db_write(q, queue_upd_many_fn, &m);
	for (i = 0; i < n; i++) {
		if (rc < 0)
			rcs[i] = rc;
		else if (rcs[i] == 0 && m.a[i].rec == NULL) {
			queue_release_msg(q, m.a[i].id);
			log_info("queue removed id=%s", m.a[i].id);
		}
		free(recs[i]);
	}
	free(recs);
	free(m.a);
	return rc;
}

int
queue_remove(struct queue *q, const char *id)
{
	struct queue_upd_arg	a;

	if (!queue_id_ok(id)) {
		err_set(ERR_INVAL, "queue: bad id");
		return ERR_INVAL;
	}
	memset(&a, 0, sizeof(a));
	a.q = q;
	a.id = id;
	return queue_upd(q, &a);
}

struct queue_list_arg {
	struct queue	*q;
	json_t		*list;
};

static int
queue_list_fn(MDB_txn *txn, void *arg)
{
	struct queue_list_arg	*a = arg;
	struct queue_env	*env;
	MDB_cursor		*c;
	MDB_val			 k, v;
	json_t			*o;
	char			 id[QUEUE_ID_LEN + 1];
	int			 mrc;

	if ((mrc = mdb_cursor_open(txn, a->q->dbi_env, &c)) != 0)
		return db_err(mrc, "queue env cursor");
	for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0;
	    mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != QUEUE_ID_LEN)
			continue;
		memcpy(id, k.mv_data, QUEUE_ID_LEN);
		id[QUEUE_ID_LEN] = '\0';
		if (queue__env_decode(&env, id, a->q->key, v.mv_data,
		    v.mv_size) < 0) {
			log_warnx("queue list: %s", err_msg());
			continue;
		}
		o = queue__env_json(env);
		queue_env_free(&env);
		if (o == NULL || json_array_append_new(a->list, o) == -1)
			fatalx("queue list: out of memory");
	}
	mdb_cursor_close(c);
	if (mrc != MDB_NOTFOUND)
		return db_err(mrc, "queue env");
	return 0;
}

int
queue_list(struct queue *q, json_t **out)
{
	struct queue_list_arg	a;
	int			rc;

	*out = NULL;
	a.q = q;
	if ((a.list = json_array()) == NULL)
		fatalx("queue list: out of memory");
	if ((rc = queue_db_read(q, queue_list_fn, &a)) < 0) {
		json_decref(a.list);
		return rc;
	}
	*out = a.list;
	return 0;
}

struct queue_count_arg {
	struct queue	*q;
	size_t		 n;
};

static int
queue_count_fn(MDB_txn *txn, void *arg)
{
	struct queue_count_arg	*a = arg;
	MDB_stat		 st;
	int			 mrc;

	if ((mrc = mdb_stat(txn, a->q->dbi_env, &st)) != 0)
		return db_err(mrc, "queue env stat");
	a->n = st.ms_entries;
	return 0;
}

size_t
queue_count(struct queue *q)
{
	struct queue_count_arg	a;

	a.q = q;
	a.n = 0;
	if (queue_db_read(q, queue_count_fn, &a) < 0)
		return 0;
	return a.n;
}

/* ---------------------------------------------------------------- */
/* Open and close. */

/* mkdir dir/name 0700 if needed; open it, refusing a symlink. */
static int
queue_subdir(int dirfd, const char *name, int *out)
{
	if (mkdirat(dirfd, name, 0700) == -1 && errno != EEXIST) {
		err_set(ERR_IO, "queue: mkdir %s: %s", name, strerror(errno));
		return ERR_IO;
	}
	if ((*out = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		err_set(ERR_IO, "queue: open %s/: %s", name, strerror(errno));
		return ERR_IO;
	}
	return 0;
}

/* The directory, its lock, tmp/ and msg/. */
static int
queue_open_dirs(struct queue *q)
{
	int	rc;

	if ((rc = mkdir_p(q->dir, 0700)) < 0)
		return rc;
	if ((q->dirfd = open(q->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1) {
		err_set(ERR_IO, "queue: open %s: %s", q->dir, strerror(errno));
		return ERR_IO;
	}
	if ((q->lockfd = openat(q->dirfd, "lock", O_RDWR | O_CREAT |
	    O_NOFOLLOW | O_CLOEXEC, 0600)) == -1) {
		err_set(ERR_IO, "queue: open %s/lock: %s", q->dir,
		    strerror(errno));
		return ERR_IO;
	}
	if (flock(q->lockfd, LOCK_EX | LOCK_NB) == -1) {
		rc = errno == EWOULDBLOCK ? ERR_LOCKED : ERR_IO;
		err_set(rc, "queue: lock %s: %s", q->dir, strerror(errno));
		return rc;
	}
	if ((rc = queue_subdir(q->dirfd, "tmp", &q->tmpfd)) < 0 ||
	    (rc = queue_subdir(q->dirfd, "msg", &q->msgfd)) < 0)
		return rc;
	queue_spares_legacy(q);
	return 0;
}

static int
queue_open_index(struct queue *q)
{
	char	*path;
	int	 rc;

	path = path_join(q->dir, "index");
	rc = db_open(&q->db, path, Q_MAP_SIZE, Q_MAP_MAX, 4);
	free(path);
	if (rc < 0)
		return rc;
	if ((rc = db_dbi(q->db, "env", 0, &q->dbi_env)) < 0 ||
	    (rc = db_dbi(q->db, "sched", 0, &q->dbi_sched)) < 0)
		return rc;
	return 0;
}

int
queue_open(struct queue **out, struct event_base *base, const char *dir,
    const unsigned char *key)
{
	pthread_rwlockattr_t	 attr;
	struct queue		*q;
	size_t			 n;
	int			 rc;

	*out = NULL;
	if (base == NULL || dir == NULL || key == NULL) {
		err_set(ERR_INVAL, "queue_open: missing argument");
		return ERR_INVAL;
	}
	q = xcalloc(1, sizeof(*q));
	q->base = base;
	q->dir = xstrdup(dir);
	q->dirfd = q->lockfd = q->tmpfd = q->msgfd = -1;
	memcpy(q->key, key, QUEUE_KEY_LEN);
	q->msg_max = QUEUE_MSG_MAX;
	q->pend_tail = &q->pend_head;
	/* writers first: a stream of readers must not starve the batch */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr,
	    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	if ((rc = pthread_rwlock_init(&q->dblock, &attr)) != 0)
		fatalx("queue: pthread_rwlock_init: %s", strerror(rc));
	pthread_rwlockattr_destroy(&attr);
	if ((rc = pthread_mutex_init(&q->spare_lock, NULL)) != 0)
		fatalx("queue: pthread_mutex_init: %s", strerror(rc));
	if ((rc = queue_open_dirs(q)) < 0 || (rc = queue_open_index(q)) < 0 ||
	    (rc = queue__recover(q->db, q->dbi_env, q->dbi_sched, q->dirfd,
	    q->tmpfd, q->msgfd, q->key, &n)) < 0 ||
	    (rc = worker_pool_new(&q->pool, base, 1, Q_WORKER_QUEUE)) < 0)
		goto fail;
	if ((q->kick = event_new(base, -1, 0, queue_kick_cb, q)) == NULL) {
		err_set(ERR_GENERIC, "queue: event_new failed");
		rc = ERR_GENERIC;
		goto fail;
	}
	queue_spares_fill(q);
	*out = q;
	return 0;
fail:
	queue_close(&q);
	return rc;
}

void
queue_close(struct queue **qp)
{
	struct queue		*q;
	struct queue_batch	*b;

	if (qp == NULL || (q = *qp) == NULL)
		return;
	q->closing = 1;
	queue__writers_detach(&q->writers);
	/* the batch in progress finishes and its callbacks run */
	worker_pool_free(&q->pool);
	/* then what waited for it, here (commits are refused by now) */
	while (q->npending > 0) {
		b = queue_batch_take(q);
		q->running = 1;
		queue_batch_work(b);
		queue_batch_done(b);
	}
	if (q->kick != NULL)
		event_free(q->kick);
	if (q->tmpfd != -1)
		queue_spares_drop(q);
	db_close(&q->db);
	if (q->msgfd != -1)
		close(q->msgfd);
	if (q->tmpfd != -1)
		close(q->tmpfd);
	if (q->lockfd != -1)
		close(q->lockfd);	/* releases the flock */
	if (q->dirfd != -1)
		close(q->dirfd);
	pthread_rwlock_destroy(&q->dblock);
	pthread_mutex_destroy(&q->spare_lock);
	explicit_bzero(q->key, sizeof(q->key));
	free(q->dir);
	free(q);
	*qp = NULL;
}
