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
 * Open (creating the directory 0700 if needed) an environment at dir with
 * up to maxdbs named databases.  map_size is the starting map size.
 */
int	db_open(struct db_env **, const char *, size_t, size_t, unsigned);
void	db_close(struct db_env **);

/* Translate an LMDB return code into enum err, with err_set() context. */
int	db_err(int, const char *);

/* Open (create) a named database inside a write transaction. */
int	db_dbi(struct db_env *, const char *, unsigned, MDB_dbi *);

typedef int	(*db_txn_fn)(MDB_txn *, void *);

/*
 * Run fn in a write transaction and commit; fn returns 0 or a negative
 * enum err (then the txn is aborted and that code returned).  An
 * MDB_MAP_FULL from fn's puts (fn returns db_err(MDB_MAP_FULL)) or from
 * commit doubles the map and runs fn again, so fn must be idempotent
 * with respect to its own side effects outside LMDB.
 */
int	db_write(struct db_env *, db_txn_fn, void *);
/* Run fn in a read-only transaction. */
int	db_read(struct db_env *, db_txn_fn, void *);

#endif
