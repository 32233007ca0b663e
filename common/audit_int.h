/*
 * audit_int.h -- internals shared by audit.c and audit_cp.c only.
 *
 * Locking: mu guards the queue, the done-list, the committed frontier
 * and the checkpoint bookkeeping; maplock is held shared around every
 * LMDB read transaction and exclusively around every write transaction
 * (db_write() may grow, i.e. remap, the environment, which LMDB allows
 * only with no transaction open in the process).  Lock order: maplock,
 * then mu.  commit_mu serialises commits (the writer thread, or the
 * callers of audit_append_sync without a writer).
 */
#ifndef COMMON_AUDIT_INT_H
#define COMMON_AUDIT_INT_H

#include <pthread.h>
#include <stdint.h>

#include <lmdb.h>

#include "common/audit.h"
#include "common/wakeup.h"
#include "common/db.h"
#include "common/merkle.h"

struct audit_pend {
	struct audit_pend	*next;
	char			*bytes;		/* encoded entry */
	size_t			 len;
	uint8_t			 leaf[MERKLE_HASH_LEN];
	audit_done_fn		 done;
	void			*arg;
	int			 sync;		/* a waiter owns it */
	int			 finished;	/* sync: result is set */
	int			 rc;
	uint64_t		 index;
	char			*errmsg;	/* failure context, or NULL */
};

struct audit_fifo {
	struct audit_pend	*head;
	struct audit_pend	*tail;
	size_t			 n;
};

struct audit_log {
	struct db_env		*db;
	MDB_dbi			 entries;
	MDB_dbi			 nodes;
	MDB_dbi			 cps;
	MDB_dbi			 meta;
	char			 node[AUDIT_NAME_MAX + 1];
	char			 service[AUDIT_NAME_MAX + 1];
	char			 origin[2 * AUDIT_NAME_MAX + 2];
	unsigned		 batch_max;
	unsigned		 batch_delay_us;
	uint64_t		 cp_entries;
	uint64_t		 cp_ms;
	int			 flags;
	int			 lockfd;

	pthread_rwlock_t	 maplock;
	pthread_mutex_t		 commit_mu;
	pthread_mutex_t		 mu;
	pthread_cond_t		 wcv;		/* writer: work or stop */
	pthread_cond_t		 scv;		/* sync waiters: a batch ended */

	/* under mu */
	struct audit_fifo	 queue;
	struct audit_fifo	 done;
	struct merkle_frontier	 fr;		/* committed tree */
	uint64_t		 cp_size;	/* newest checkpoint */
	int64_t			 cp_time;
	int			 broken;	/* sticky commit failure */
	uint64_t		 n_commits;
	uint64_t		 n_appended;
	uint64_t		 n_failed;
	int			 stopping;
	int			 wake_pending;

	/* the loop side */
	struct event_base	*base;
	struct wakeup		 wake;	/* writer -> loop */
	int			 has_writer;
	int			 draining;	/* running callbacks */
	pthread_t		 writer;
};

/* A read transaction on the log, for merkle_get_fn. */
struct audit_rtxn {
	struct audit_log	*log;
	MDB_txn			*txn;
};

void	audit__key(uint8_t *, uint64_t);
uint64_t	audit__unkey(const MDB_val *);
int64_t	audit__now_ms(void);
void	audit__rdlock(struct audit_log *);
void	audit__wrlock(struct audit_log *);
void	audit__unlock_map(struct audit_log *);
void	audit__lock(struct audit_log *);
void	audit__unlock(struct audit_log *);
/* db_read() under the shared map lock. */
int	audit__read(struct audit_log *, db_txn_fn, void *);
/* db_write() under the exclusive map lock. */
int	audit__write(struct audit_log *, db_txn_fn, void *);
/* merkle_get_fn over the "nodes" db; arg is a struct audit_rtxn. */
int	audit__node_get(void *, unsigned, uint64_t, uint8_t *);
/* The committed frontier, copied under mu. */
void	audit__frontier(struct audit_log *, struct merkle_frontier *);
/* Tree size and checkpoint time of the newest stored checkpoint. */
int	audit__cp_load(struct audit_log *, MDB_txn *);

#endif
