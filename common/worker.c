/*
 * worker.c -- a fixed pool of threads for blocking work, with completion
 * back on the event loop.
 *
 * Purpose: run work(arg) off the event loop (Argon2, fsync batches,
 * libgit2 writes) and then done(arg) on the loop thread, so that done()
 * may touch sessions, buffers and libevent without locks.
 * Runs in: any daemon with an event_base; work() on pool threads, done()
 * and every worker_* call on the loop thread.
 * Failure policy: a full queue is ERR_TOOBIG (nothing runs; the caller
 * answers "busy"); OOM is fatal (xmalloc); a thread that cannot be
 * started fails worker_pool_new() with ERR_GENERIC.
 * SECURITY: the queue is bounded (max_queue), so a flood of requests
 * costs at most max_queue jobs of memory.  Pool threads block every
 * signal, so signals keep reaching the loop thread only.
 *
 * Design.  One mutex guards everything shared: the FIFO of queued jobs,
 * the FIFO of finished jobs (the done-list) and the counters.  Idle
 * threads sleep on one condition variable.  A thread that finishes a job
 * appends it to the done-list and, if no wake-up is pending yet, writes
 * to an eventfd that the loop watches with a persistent EV_READ event;
 * the loop callback reads the eventfd, takes the whole done-list under
 * the lock and calls done() for each job without the lock, in completion
 * order.  Because the only cross-thread signal is a write(2) to a file
 * descriptor, libevent needs no evthread locking.
 *
 * done() may call worker_submit() on the same pool; it must not call
 * worker_pool_free() on it (fatalx: a programmer bug).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#include <event2/event.h>

#include "common/err.h"
#include "common/log.h"
#include "common/wakeup.h"
#include "common/worker.h"
#include "common/xmalloc.h"

#define WORKER_THREADS_MAX	64

struct worker_job {
	worker_fn		 work;
	worker_fn		 done;
	void			*arg;
	struct worker_job	*next;
};

/* A singly linked FIFO. */
struct worker_fifo {
	struct worker_job	*head;
	struct worker_job	*tail;
};

struct worker_pool {
	struct event_base	*base;
	struct wakeup		 wake;		/* done-list -> loop */

	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;		/* work queued or stopping */
	struct worker_fifo	 queue;		/* submitted, not started */
	struct worker_fifo	 finished;	/* work done, done() not run */
	size_t			 nqueued;
	size_t			 max_queue;
	size_t			 pending;	/* submitted, done() not run */
	int			 stopping;
	int			 wake_pending;	/* woken, not yet drained */

	/* Touched by the loop thread only. */
	int			 draining;
	pthread_t		 threads[WORKER_THREADS_MAX];
	unsigned		 nthreads;
};

static void
worker_fifo_push(struct worker_fifo *f, struct worker_job *j)
{
	j->next = NULL;
	if (f->tail != NULL)
		f->tail->next = j;
	else
		f->head = j;
	f->tail = j;
}

static struct worker_job *
worker_fifo_pop(struct worker_fifo *f)
{
	struct worker_job	*j;

	if ((j = f->head) == NULL)
		return NULL;
	if ((f->head = j->next) == NULL)
		f->tail = NULL;
	j->next = NULL;
	return j;
}

static void
worker_lock(struct worker_pool *p)
{
	int	rc;

	if ((rc = pthread_mutex_lock(&p->mu)) != 0)
		fatalx("worker: pthread_mutex_lock: %s", strerror(rc));
}

static void
worker_unlock(struct worker_pool *p)
{
	int	rc;

	if ((rc = pthread_mutex_unlock(&p->mu)) != 0)
		fatalx("worker: pthread_mutex_unlock: %s", strerror(rc));
}

/* Tell the loop that the done-list is not empty. */
static void
worker_wake(struct worker_pool *p)
{
	wakeup_post(&p->wake);
}

static void *
worker_main(void *arg)
{
	struct worker_pool	*p = arg;
	struct worker_job	*j;
	int			 wake;

	for (;;) {
		worker_lock(p);
		while (p->queue.head == NULL && !p->stopping)
			pthread_cond_wait(&p->cv, &p->mu);
		if ((j = worker_fifo_pop(&p->queue)) == NULL) {
			/* stopping and the queue is drained */
			worker_unlock(p);
			break;
		}
		p->nqueued--;
		worker_unlock(p);

		j->work(j->arg);

		worker_lock(p);
		worker_fifo_push(&p->finished, j);
		wake = !p->wake_pending;
		p->wake_pending = 1;
		worker_unlock(p);
		if (wake)
			worker_wake(p);
	}
	return NULL;
}

/*
 * Run done() of every finished job, in completion order, on the calling
 * (loop) thread.  Jobs finished while this runs are left for the next
 * wake-up, so one callback cannot starve the loop.
 */
static void
worker_drain(struct worker_pool *p)
{
	struct worker_fifo	 batch;
	struct worker_job	*j;

	worker_lock(p);
	batch = p->finished;
	p->finished.head = p->finished.tail = NULL;
	p->wake_pending = 0;
	worker_unlock(p);

	p->draining = 1;
	while ((j = worker_fifo_pop(&batch)) != NULL) {
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
		worker_lock(p);
		p->pending--;
		worker_unlock(p);
	}
	p->draining = 0;
}

static void
worker_drain_cb(void *arg)
{
	worker_drain(arg);
}

/* Stop and join the threads; the queue is drained first. */
static void
worker_stop(struct worker_pool *p)
{
	unsigned	i;

	worker_lock(p);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cv);
	worker_unlock(p);
	for (i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	p->nthreads = 0;
}

/* Start n threads with every signal blocked (they inherit the mask). */
static int
worker_start(struct worker_pool *p, unsigned n)
{
	sigset_t	all, old;
	int		rc, ret = 0;

	sigfillset(&all);
	if ((rc = pthread_sigmask(SIG_SETMASK, &all, &old)) != 0) {
		err_set(ERR_GENERIC, "pthread_sigmask: %s", strerror(rc));
		return ERR_GENERIC;
	}
	while (p->nthreads < n) {
		rc = pthread_create(&p->threads[p->nthreads], NULL,
		    worker_main, p);
		if (rc != 0) {
			err_set(ERR_GENERIC, "worker thread %u of %u: %s",
			    p->nthreads + 1, n, strerror(rc));
			ret = ERR_GENERIC;
			break;
		}
		p->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

int
worker_pool_new(struct worker_pool **out, struct event_base *base,
    unsigned nthreads, size_t max_queue)
{
	struct worker_pool	*p = NULL;
	int			 rc;

	*out = NULL;
	if (base == NULL || nthreads < 1 || nthreads > WORKER_THREADS_MAX ||
	    max_queue < 1) {
		err_set(ERR_INVAL, "worker pool: threads %u (1..%d), "
		    "queue %zu (>= 1)", nthreads, WORKER_THREADS_MAX,
		    max_queue);
		return ERR_INVAL;
	}
	p = xcalloc(1, sizeof(*p));
	p->base = base;
	p->max_queue = max_queue;
	p->wake.fd = -1;
	if ((rc = pthread_mutex_init(&p->mu, NULL)) != 0)
		fatalx("worker: pthread_mutex_init: %s", strerror(rc));
	if ((rc = pthread_cond_init(&p->cv, NULL)) != 0)
		fatalx("worker: pthread_cond_init: %s", strerror(rc));

	if ((rc = wakeup_init(&p->wake, base, worker_drain_cb, p)) < 0)
		goto fail;
	if ((rc = worker_start(p, nthreads)) < 0)
		goto fail;
	*out = p;
	return 0;

fail:
	worker_pool_free(&p);
	return rc;
}

int
worker_submit(struct worker_pool *p, worker_fn work, worker_fn done,
    void *arg)
{
	struct worker_job	*j;

	if (work == NULL) {
		err_set(ERR_INVAL, "worker_submit: no work function");
		return ERR_INVAL;
	}
	j = xcalloc(1, sizeof(*j));
	j->work = work;
	j->done = done;
	j->arg = arg;

	worker_lock(p);
	if (p->stopping) {
		worker_unlock(p);
		free(j);
		err_set(ERR_GENERIC, "worker pool is shutting down");
		return ERR_GENERIC;
	}
	if (p->nqueued >= p->max_queue) {
		worker_unlock(p);
		free(j);
		err_set(ERR_TOOBIG, "worker queue full (%zu jobs)",
		    p->max_queue);
		return ERR_TOOBIG;
	}
	worker_fifo_push(&p->queue, j);
	p->nqueued++;
	p->pending++;
	pthread_cond_signal(&p->cv);
	worker_unlock(p);
	return 0;
}

size_t
worker_pending(struct worker_pool *p)
{
	size_t	n;

	worker_lock(p);
	n = p->pending;
	worker_unlock(p);
	return n;
}

/*
 * Stop accepting jobs, let the threads run every queued job, join them,
 * then run the remaining done() callbacks here, in completion order.
 * Must be called on the loop thread, outside of any done() of this pool.
 */
void
worker_pool_free(struct worker_pool **pp)
{
	struct worker_pool	*p;

	if (pp == NULL || (p = *pp) == NULL)
		return;
	if (p->draining)
		fatalx("worker_pool_free called from a done callback");
	worker_stop(p);
	if (p->wake.fd != -1)
		worker_drain(p);
	wakeup_free(&p->wake);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
	*pp = NULL;
}
