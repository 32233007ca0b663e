/*
 * worker.h -- a small thread pool for work that blocks (Argon2, fsync
 * batches, libgit2 writes), with completion back on the event loop.
 *
 * worker_submit(pool, work, done, arg): work(arg) runs on a pool thread;
 * then done(arg) runs on the event loop thread of the pool's base.  At
 * most max_queue jobs wait; beyond that worker_submit returns ERR_TOOBIG
 * (the caller answers "busy": 503 / 451 / NO) and nothing runs.
 * worker_pool_free() waits for running jobs, runs done() of every job
 * (finished or not: queued ones get their work() run first), then joins.
 */
#ifndef COMMON_WORKER_H
#define COMMON_WORKER_H

#include <stddef.h>

#include <event2/event.h>

struct worker_pool;

typedef void	(*worker_fn)(void *);

int	worker_pool_new(struct worker_pool **, struct event_base *, unsigned,
	    size_t);
int	worker_submit(struct worker_pool *, worker_fn, worker_fn, void *);
/* Jobs submitted whose done() has not returned yet. */
size_t	worker_pending(struct worker_pool *);
void	worker_pool_free(struct worker_pool **);

#endif
