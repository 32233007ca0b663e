/*
 * db.c -- LMDB environment helpers (see db.h for the contract).
 *
 * Runs in: the single owner process of each store (queue, docstore index,
 * keyservice directory), opened after any fork.
 * Failure policy: LMDB return codes are translated once, here, into enum
 * err with "what: mdb_strerror" context; a full map is grown (doubled, up
 * to map_max) and the whole write transaction retried, so callers only
 * see ERR_TOOBIG when the configured cap is reached.
 * SECURITY: the directory is created 0700 and the files 0600; values may
 * be untrusted peer data, so callers bound them before db_write().
 *
 * Design: one environment per store with MDB_NOTLS, because our threads
 * are our own and a read txn must not be tied to a thread's TLS slot.
 * One writer at a time (LMDB serialises them), short transactions.  The
 * map is remapped only from db_write() with no transaction of ours open;
 * an environment is therefore used from one thread at a time, or its
 * owner makes sure no reader is active while it writes.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"

/* Adopting a map grown by another process: give up after this many. */
#define DB_RESIZE_RETRIES	8

static _Thread_local int	db_last_mdb_rc;

int
db_last_rc(void)
{
	return db_last_mdb_rc;
}

int
db_err(int rc, const char *what)
{
	int	code;

	db_last_mdb_rc = rc;
	if (rc == MDB_SUCCESS)
		return 0;
	switch (rc) {
	case MDB_NOTFOUND:
		code = ERR_NOTFOUND;
		break;
	case MDB_KEYEXIST:
		code = ERR_EXISTS;
		break;
	case MDB_MAP_FULL:
		code = ERR_TOOBIG;
		break;
	default:
		code = ERR_IO;
		break;
	}
	err_set(code, "%s: %s", what != NULL ? what : "db", mdb_strerror(rc));
	return code;
}

/* Round n up to a multiple of the page size (at least one page). */
static size_t
db_round(size_t n)
{
	long	ps = sysconf(_SC_PAGESIZE);
	size_t	pg = ps > 0 ? (size_t)ps : 4096;

	if (n < pg)
		return pg;
	if (n % pg == 0)
		return n;
	if (n > SIZE_MAX - pg)
		return n - n % pg;
	return n + (pg - n % pg);
}

/* Read back the map size LMDB actually uses. */
static void
db_sync_size(struct db_env *db)
{
	MDB_envinfo	info;

	if (mdb_env_info(db->env, &info) == 0)
		db->map_size = info.me_mapsize;
	if (db->map_max < db->map_size)
		db->map_max = db->map_size;
}

int
db_open(struct db_env **out, const char *dir, size_t map_size,
    size_t map_max, unsigned maxdbs)
{
	struct db_env	*db = NULL;
	int		 rc, mrc;

	*out = NULL;
	if ((rc = mkdir_p(dir, 0700)) < 0)
		return rc;
	db = xcalloc(1, sizeof(*db));
	db->path = xstrdup(dir);
	db->map_size = db_round(map_size);
	db->map_max = db_round(map_max);
	if (db->map_max < db->map_size)
		db->map_max = db->map_size;

	if ((mrc = mdb_env_create(&db->env)) != 0) {
		db->env = NULL;
		rc = db_err(mrc, "mdb_env_create");
		goto fail;
	}
	if ((mrc = mdb_env_set_maxdbs(db->env, maxdbs)) != 0) {
		rc = db_err(mrc, "mdb_env_set_maxdbs");
		goto fail;
	}
	if ((mrc = mdb_env_set_mapsize(db->env, db->map_size)) != 0) {
		rc = db_err(mrc, "mdb_env_set_mapsize");
		goto fail;
	}
	if ((mrc = mdb_env_open(db->env, dir, MDB_NOTLS, 0600)) != 0) {
		rc = db_err(mrc, dir);
		goto fail;
	}
	db_sync_size(db);
	*out = db;
	return 0;
fail:
	db_close(&db);
	return rc;
}

void
db_close(struct db_env **p)
{
	struct db_env	*db;

	if (p == NULL || (db = *p) == NULL)
		return;
	if (db->env != NULL)
		mdb_env_close(db->env);
	free(db->path);
	free(db);
	*p = NULL;
}

/* Double the map, capped at map_max.  No txn of ours may be open. */
static int
db_grow(struct db_env *db)
{
	size_t	old = db->map_size, nsize;
	int	mrc;

	if (old >= db->map_max) {
		err_set(ERR_TOOBIG, "%s: database full at map_max %zu bytes",
		    db->path, db->map_max);
		return ERR_TOOBIG;
	}
	nsize = old > db->map_max / 2 ? db->map_max : old * 2;
	if ((mrc = mdb_env_set_mapsize(db->env, nsize)) != 0)
		return db_err(mrc, "mdb_env_set_mapsize");
	db_sync_size(db);
	log_info("db grow path=%s map_size=%zu old=%zu max=%zu", db->path,
	    db->map_size, old, db->map_max);
	return 0;
}

/*
 * Begin a transaction, adopting a map that another process grew
 * (MDB_MAP_RESIZED) a bounded number of times.
 */
static int
db_begin(struct db_env *db, unsigned flags, MDB_txn **txn)
{
	int	mrc, tries;

	for (tries = 0; ; tries++) {
		mrc = mdb_txn_begin(db->env, NULL, flags, txn);
		if (mrc != MDB_MAP_RESIZED || tries >= DB_RESIZE_RETRIES)
			break;
		if ((mrc = mdb_env_set_mapsize(db->env, 0)) != 0)
			break;
		db_sync_size(db);
	}
	if (mrc != 0) {
		*txn = NULL;
		return db_err(mrc, "mdb_txn_begin");
	}
	return 0;
}

int
db_write(struct db_env *db, db_txn_fn fn, void *arg)
{
	MDB_txn	*txn;
	int	 rc, mrc;

	for (;;) {
		db_last_mdb_rc = 0;
		if ((rc = db_begin(db, 0, &txn)) < 0)
			return rc;
		rc = fn(txn, arg);
		if (rc < 0) {
			mdb_txn_abort(txn);
			if (rc != ERR_TOOBIG || db_last_mdb_rc != MDB_MAP_FULL)
				return rc;
		} else {
			/* commit frees txn whatever it returns */
			if ((mrc = mdb_txn_commit(txn)) == 0)
				return 0;
			if (mrc != MDB_MAP_FULL)
				return db_err(mrc, "mdb_txn_commit");
		}
		if ((rc = db_grow(db)) < 0)
			return rc;
	}
}

int
db_read(struct db_env *db, db_txn_fn fn, void *arg)
{
	MDB_txn	*txn;
	int	 rc;

	db_last_mdb_rc = 0;
	if ((rc = db_begin(db, MDB_RDONLY, &txn)) < 0)
		return rc;
	rc = fn(txn, arg);
	mdb_txn_abort(txn);
	return rc < 0 ? rc : 0;
}

struct db_dbi_arg {
	const char	*name;
	unsigned	 flags;
	MDB_dbi		 dbi;
};

static int
db_dbi_fn(MDB_txn *txn, void *arg)
{
	struct db_dbi_arg	*a = arg;
	int			 mrc;

	if ((mrc = mdb_dbi_open(txn, a->name, a->flags | MDB_CREATE,
	    &a->dbi)) != 0)
		return db_err(mrc, a->name != NULL ? a->name : "main db");
	return 0;
}

int
db_dbi(struct db_env *db, const char *name, unsigned flags, MDB_dbi *out)
{
	struct db_dbi_arg	a;
	int			rc;

	a.name = name;
	a.flags = flags;
	a.dbi = 0;
	/* the handle is valid for the environment once the txn commits */
	if ((rc = db_write(db, db_dbi_fn, &a)) < 0)
		return rc;
	*out = a.dbi;
	return 0;
}
