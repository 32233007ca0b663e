/*
 * queue_recover.c -- open-time recovery of the queue.
 *
 * Purpose: bring the queue directory and its index back to the state
 * queue.h promises after a crash (or a kill) at any moment:
 *	1. tmp/ is emptied: nothing there was ever acknowledged;
 *	2. the index is checked: an envelope that does not decode is
 *	   logged, its file moved to corrupt/ and the envelope dropped; an
 *	   envelope whose msg/ file is missing is logged and dropped; the
 *	   schedule gets exactly one entry per envelope (be64 next_try |
 *	   id), stale or malformed entries are deleted;
 *	3. a msg/ file without an envelope (crash between rename and index
 *	   commit, or between an index removal and the unlink) is removed;
 *	4. an envelope of an older version (JSON not sealed) is sealed
 *	   with the queue key (in the step 2 transaction).
 * Runs in: mailsrv, inside queue_open(), before the batch thread starts
 * (nothing else touches the queue yet).
 * Failure policy: negative enum err with err_set(): queue_open() fails
 * (the daemon does not start on a queue it cannot repair).  Bad records
 * are never fatal: they are logged and set aside.
 * SECURITY: index keys and directory entries are untrusted: only names
 * that pass queue_id_ok() become paths, all relative to the directory
 * fds, never following symlinks; peer-controlled names are escaped in
 * the log.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "mailsrv/queue/queue.h"

#define QR_SCHED_KEY	(8 + QUEUE_ID_LEN)

enum qr_op {
	QR_DEL_ENV,
	QR_DEL_SCHED,
	QR_PUT_SCHED,
	QR_PUT_ENV,	/* val: the envelope sealed */
};

struct qr_fix {
	int		 op;
	size_t		 len;
	unsigned char	*key;
	char		*val;		/* QR_PUT_ENV */
	size_t		 vlen;
};

typedef char	qr_id[QUEUE_ID_LEN + 1];

struct qr {
	struct db_env	*db;
	MDB_dbi		 env;
	MDB_dbi		 sched;
	int		 dirfd;
	int		 tmpfd;
	int		 msgfd;
	const unsigned char *qkey;	/* the queue key */
	size_t		 resealed;
	size_t		 sealed_ok;	/* envelopes that authenticate */
	size_t		 sealed_bad;	/* sealed ones that do not */

	struct qr_fix	*fix;		/* index repairs */
	size_t		 nfix;
	qr_id		*corrupt;	/* ids to move to corrupt/ */
	size_t		 ncorrupt;
	qr_id		*orphans;	/* msg/ files without envelope */
	size_t		 norphans;
	unsigned char	(*want)[QR_SCHED_KEY];	/* one per envelope */
	size_t		 nwant;
	size_t		 missing;	/* envelopes without a file */
};

static void
qr_add_fix(struct qr *r, int op, const void *key, size_t len)
{
	if (r->nfix % 64 == 0)
		r->fix = xreallocarray(r->fix, r->nfix + 64, sizeof(*r->fix));
	r->fix[r->nfix].op = op;
	r->fix[r->nfix].len = len;
	r->fix[r->nfix].key = xmemdup(key, len);
	r->fix[r->nfix].val = NULL;
	r->fix[r->nfix].vlen = 0;
	r->nfix++;
}

static void
qr_add_id(qr_id **list, size_t *n, const char *id)
{
	if (*n % 64 == 0)
		*list = xreallocarray(*list, *n + 64, sizeof(**list));
	memcpy((*list)[*n], id, sizeof(qr_id));
	(*n)++;
}

static void
qr_free(struct qr *r)
{
	size_t	i;

	for (i = 0; i < r->nfix; i++) {
		free(r->fix[i].key);
		free(r->fix[i].val);
	}
	free(r->fix);
	free(r->corrupt);
	free(r->orphans);
	free(r->want);
}

/* An open DIR on a fresh descriptor of dirfd (own offset). */
static DIR *
qr_opendir(int dirfd, const char *what)
{
	DIR	*d;
	int	 fd;

	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1 || (d = fdopendir(fd)) == NULL) {
		err_set(ERR_IO, "queue recovery: open %s: %s", what,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return NULL;
	}
	return d;
}

/* Step 1: empty tmp/. */
static int
qr_tmp(struct qr *r, size_t *removed)
{
	struct dirent	*de;
	DIR		*d;
	char		 esc[128];

	if ((d = qr_opendir(r->tmpfd, "tmp/")) == NULL)
		return ERR_IO;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(r->tmpfd, de->d_name, 0) == -1) {
			log_warn("queue recovery: unlink tmp/%s",
			    log_escape(esc, sizeof(esc), de->d_name,
			    strlen(de->d_name)));
			continue;
		}
		(*removed)++;
	}
	closedir(d);
	if (*removed > 0 && fsync(r->tmpfd) == -1) {
		err_set(ERR_IO, "queue recovery: fsync tmp/: %s",
		    strerror(errno));
		return ERR_IO;
	}
	return 0;
}

static int
qr_keycmp(const void *a, const void *b)
{
	return memcmp(a, b, QR_SCHED_KEY);
}

/*
 * A record that is not sealed: an envelope of an older version (plain
 * JSON) is decoded and its sealed form queued as a repair.
 */
static int
qr_reseal(struct qr *r, const char *id, const MDB_val *v,
    struct queue_env **env)
{
	char	*rec;
	size_t	 len;

	if (queue__env_decode_legacy(env, id, v->mv_data, v->mv_size) < 0)
		return -1;
	if (queue__env_encode(*env, r->qkey, &rec, &len) < 0) {
		queue_env_free(env);
		return -1;
	}
	qr_add_fix(r, QR_PUT_ENV, id, QUEUE_ID_LEN);
	r->fix[r->nfix - 1].val = rec;
	r->fix[r->nfix - 1].vlen = len;
	r->resealed++;
	return 0;
}

/* One envelope record: keep (want its schedule key) or repair. */
static void
qr_check_env(struct qr *r, const MDB_val *k, const MDB_val *v)
{
	struct queue_env	*env;
	struct stat		 st;
	char			 id[QUEUE_ID_LEN + 1];
	int			 rc;

	if (k->mv_size != QUEUE_ID_LEN) {
		log_warnx("queue recovery: index key of %zu bytes dropped",
		    k->mv_size);
		qr_add_fix(r, QR_DEL_ENV, k->mv_data, k->mv_size);
		return;
	}
	memcpy(id, k->mv_data, QUEUE_ID_LEN);
	id[QUEUE_ID_LEN] = '\0';
	if (!queue_id_ok(id)) {
		log_warnx("queue recovery: malformed index key dropped");
		qr_add_fix(r, QR_DEL_ENV, k->mv_data, k->mv_size);
		return;
	}
	if ((rc = queue__env_decode(&env, id, r->qkey, v->mv_data,
	    v->mv_size)) == 0)
		r->sealed_ok++;
	else if (rc == ERR_PERM)
		r->sealed_bad++;
	if (rc < 0 && (rc == ERR_PERM || qr_reseal(r, id, v, &env) < 0)) {
		log_warnx("queue recovery id=%s: corrupt envelope dropped, "
		    "file moved to corrupt/", id);
		qr_add_id(&r->corrupt, &r->ncorrupt, id);
		qr_add_fix(r, QR_DEL_ENV, id, QUEUE_ID_LEN);
		return;
	}
	if (fstatat(r->msgfd, id, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    !S_ISREG(st.st_mode)) {
		log_warnx("queue recovery id=%s: message file missing, "
		    "envelope dropped", id);
		r->missing++;
		qr_add_fix(r, QR_DEL_ENV, id, QUEUE_ID_LEN);
		queue_env_free(&env);
		return;
	}
	if (r->nwant % 256 == 0)
		r->want = xreallocarray(r->want, r->nwant + 256,
		    sizeof(*r->want));
	queue__sched_key(r->want[r->nwant++], env->next_try, id);
	queue_env_free(&env);
}

/* Step 2a: read the whole index, list its repairs. */
static int
qr_scan_fn(MDB_txn *txn, void *arg)
{
	struct qr	*r = arg;
	MDB_cursor	*c = NULL;
	MDB_val		 k, v;
	unsigned char	*seen = NULL, (*hit)[QR_SCHED_KEY];
	size_t		 i;
	int		 mrc, rc = 0;

	if ((mrc = mdb_cursor_open(txn, r->env, &c)) != 0)
		return db_err(mrc, "queue env cursor");
	for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0;
	    mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
		qr_check_env(r, &k, &v);
	mdb_cursor_close(c);
	if (mrc != MDB_NOTFOUND)
		return db_err(mrc, "queue env");

	if (r->nwant > 0) {
		qsort(r->want, r->nwant, QR_SCHED_KEY, qr_keycmp);
		seen = xcalloc(r->nwant, 1);
	}
	if ((mrc = mdb_cursor_open(txn, r->sched, &c)) != 0) {
		rc = db_err(mrc, "queue sched cursor");
		goto done;
	}
	for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0;
	    mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		hit = NULL;
		if (k.mv_size == QR_SCHED_KEY && r->nwant > 0)
			hit = bsearch(k.mv_data, r->want, r->nwant,
			    QR_SCHED_KEY, qr_keycmp);
		if (hit != NULL)
			seen[hit - r->want] = 1;
		else
			qr_add_fix(r, QR_DEL_SCHED, k.mv_data, k.mv_size);
	}
	mdb_cursor_close(c);
	if (mrc != MDB_NOTFOUND) {
		rc = db_err(mrc, "queue sched");
		goto done;
	}
	for (i = 0; i < r->nwant; i++)
		if (!seen[i])
			qr_add_fix(r, QR_PUT_SCHED, r->want[i], QR_SCHED_KEY);
done:
	free(seen);
	return rc;
}

/* Step 2b: move the files of corrupt envelopes out of msg/. */
static int
qr_quarantine(struct qr *r)
{
	size_t	i;
	int	cfd, rc = 0;

	if (r->ncorrupt == 0)
		return 0;
	if (mkdirat(r->dirfd, "corrupt", 0700) == -1 && errno != EEXIST) {
		err_set(ERR_IO, "queue recovery: mkdir corrupt/: %s",
		    strerror(errno));
		return ERR_IO;
	}
	if ((cfd = openat(r->dirfd, "corrupt", O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC)) == -1) {
		err_set(ERR_IO, "queue recovery: open corrupt/: %s",
		    strerror(errno));
		return ERR_IO;
	}
	for (i = 0; i < r->ncorrupt && rc == 0; i++) {
		if (renameat(r->msgfd, r->corrupt[i], cfd, r->corrupt[i]) ==
		    -1 && errno != ENOENT) {
			err_set(ERR_IO, "queue recovery: move msg/%s to "
			    "corrupt/: %s", r->corrupt[i], strerror(errno));
			rc = ERR_IO;
		}
	}
	if (rc == 0 && (fsync(cfd) == -1 || fsync(r->msgfd) == -1)) {
		err_set(ERR_IO, "queue recovery: fsync corrupt/: %s",
		    strerror(errno));
		rc = ERR_IO;
	}
	close(cfd);
	return rc;
}

/* Step 2c: apply the repairs in one transaction (idempotent). */
static int
qr_fix_fn(MDB_txn *txn, void *arg)
{
	struct qr	*r = arg;
	MDB_val		 k, v;
	size_t		 i;
	int		 mrc;

	for (i = 0; i < r->nfix; i++) {
		k.mv_data = r->fix[i].key;
		k.mv_size = r->fix[i].len;
		v.mv_data = NULL;
		v.mv_size = 0;
		switch (r->fix[i].op) {
		case QR_DEL_ENV:
			mrc = mdb_del(txn, r->env, &k, NULL);
			break;
		case QR_DEL_SCHED:
			mrc = mdb_del(txn, r->sched, &k, NULL);
			break;
		case QR_PUT_ENV:
			v.mv_data = r->fix[i].val;
			v.mv_size = r->fix[i].vlen;
			mrc = mdb_put(txn, r->env, &k, &v, 0);
			break;
		default:
			mrc = mdb_put(txn, r->sched, &k, &v, 0);
			break;
		}
		if (mrc != 0 && mrc != MDB_NOTFOUND)
			return db_err(mrc, "queue recovery");
	}
	return 0;
}

/* Step 3a: list the msg/ files that have no envelope. */
static int
qr_orphans_fn(MDB_txn *txn, void *arg)
{
	struct qr	*r = arg;
	struct dirent	*de;
	MDB_val		 k, v;
	DIR		*d;
	char		 esc[128];
	int		 mrc, rc = 0;

	if ((d = qr_opendir(r->msgfd, "msg/")) == NULL)
		return ERR_IO;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (!queue_id_ok(de->d_name)) {
			log_warnx("queue recovery: unexpected file msg/%s left "
			    "alone", log_escape(esc, sizeof(esc), de->d_name,
			    strlen(de->d_name)));
			continue;
		}
		k.mv_data = de->d_name;
		k.mv_size = QUEUE_ID_LEN;
		if ((mrc = mdb_get(txn, r->env, &k, &v)) == MDB_NOTFOUND)
			qr_add_id(&r->orphans, &r->norphans, de->d_name);
		else if (mrc != 0)
			rc = db_err(mrc, "queue envelope");
	}
	closedir(d);
	return rc;
}

/* Step 3b: remove them. */
static int
qr_orphans(struct qr *r)
{
	size_t	i;

	for (i = 0; i < r->norphans; i++) {
		if (unlinkat(r->msgfd, r->orphans[i], 0) == -1 &&
		    errno != ENOENT) {
			err_set(ERR_IO, "queue recovery: unlink msg/%s: %s",
			    r->orphans[i], strerror(errno));
			return ERR_IO;
		}
		log_info("queue recovery id=%s: uncommitted file removed",
		    r->orphans[i]);
	}
	if (r->norphans > 0 && fsync(r->msgfd) == -1) {
		err_set(ERR_IO, "queue recovery: fsync msg/: %s",
		    strerror(errno));
		return ERR_IO;
	}
	return 0;
}

int
queue__recover(struct db_env *db, unsigned dbi_env, unsigned dbi_sched,
    int dirfd, int tmpfd, int msgfd, const unsigned char *qkey,
    size_t *nmsgs)
{
	struct qr	r;
	size_t		ntmp = 0;
	int		rc;

	*nmsgs = 0;
	memset(&r, 0, sizeof(r));
	r.db = db;
	r.env = dbi_env;
	r.sched = dbi_sched;
	r.dirfd = dirfd;
	r.tmpfd = tmpfd;
	r.msgfd = msgfd;
	r.qkey = qkey;
	if ((rc = qr_tmp(&r, &ntmp)) < 0 ||
	    (rc = db_read(db, qr_scan_fn, &r)) < 0)
		goto done;
	/*
	 * Not one envelope authenticates: the key is wrong, not the queue.
	 * Change nothing (a right key reads it all again).
	 */
	if (r.sealed_bad > 0 && r.sealed_ok == 0) {
		err_set(ERR_PERM, "queue: the queue key opens none of its "
		    "%zu envelopes (wrong key?)", r.sealed_bad);
		rc = ERR_PERM;
		goto done;
	}
	if ((rc = qr_quarantine(&r)) < 0)
		goto done;
	if (r.nfix > 0 && (rc = db_write(db, qr_fix_fn, &r)) < 0)
		goto done;
	if ((rc = db_read(db, qr_orphans_fn, &r)) < 0 ||
	    (rc = qr_orphans(&r)) < 0)
		goto done;
	*nmsgs = r.nwant;
	log_info("queue recovered messages=%zu tmp_removed=%zu "
	    "orphans_removed=%zu corrupt=%zu missing=%zu resealed=%zu "
	    "index_fixes=%zu",
	    r.nwant, ntmp, r.norphans, r.ncorrupt, r.missing, r.resealed, r.nfix);
done:
	qr_free(&r);
	return rc;
}
