/*
 * db.h -- LMDB environment helpers.
 *
 * One environment per store, opened by its owning process after any fork,
 * one writer at a time, short transactions, no read transaction held
 * across event loop turns.  Writes go through db_write(), which grows the
 * map and retries the whole transaction on MDB_MAP_FULL, up to map_max.
 */
#ifndef COMMON_DB_H
#define COMMON_DB_H

#include <stddef.h>

#include <lmdb.h>

struct db_env {
	MDB_env		*env;
	char		*path;
	size_t		 map_size;
	size_t		 map_max;	/* growth stops here: ERR_TOOBIG */
};

/*
 * db_open(out, dir, map_size, map_max, maxdbs): open (creating the
 * directory 0700 if needed) an environment at dir with up to maxdbs named
 * databases.  map_size is the starting map size, map_max the growth cap;
 * both are rounded up to the page size, map_max is raised to map_size if
 * lower.  An existing environment keeps at least its used size.
 * db_close() is NULL-safe and sets *p to NULL.
 */
int	db_open(struct db_env **, const char *, size_t, size_t, unsigned);
void	db_close(struct db_env **);

/*
 * Translate an LMDB return code into enum err, with err_set() context
 * ("what: mdb_strerror(rc)").  MDB_NOTFOUND is ERR_NOTFOUND, MDB_KEYEXIST
 * ERR_EXISTS, MDB_MAP_FULL ERR_TOOBIG, anything else ERR_IO; 0 is 0.
 * The raw rc is also kept, per thread, for db_last_rc().
 */
int	db_err(int, const char *);
/*
 * The raw LMDB rc last given to db_err() on this thread (0 if none since
 * db_write()/db_read() began).  db_write() uses it to tell an
 * ERR_TOOBIG that came from MDB_MAP_FULL (grow and retry) from any
 * other ERR_TOOBIG fn may return (passed through).
 */
int	db_last_rc(void);

/* Open (create) a named database inside a write transaction. */
int	db_dbi(struct db_env *, const char *, unsigned, MDB_dbi *);

typedef int	(*db_txn_fn)(MDB_txn *, void *);

/*
 * Run fn in a write transaction and commit; fn returns 0 or a negative
 * enum err (then the txn is aborted and that code returned).  An
 * MDB_MAP_FULL from fn's puts (fn returns db_err(MDB_MAP_FULL, ...), so
 * that db_last_rc() is MDB_MAP_FULL) or from commit doubles the map and
 * runs fn again, so fn must be idempotent with respect to its own side
 * effects outside LMDB.  Growth stops at map_max: ERR_TOOBIG.
 *
 * Growing remaps the file, which LMDB allows only while this process
 * has no transaction open: no other thread may hold a read txn on the
 * same db_env while db_write() runs (one owner thread per environment).
 */
int	db_write(struct db_env *, db_txn_fn, void *);
/* Run fn in a read-only transaction. */
int	db_read(struct db_env *, db_txn_fn, void *);

#endif
