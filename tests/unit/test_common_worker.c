/*
 * test_common_worker.c -- unit tests for the worker pool.
 *
 * Purpose: check worker.h's contract: work() runs on a pool thread and
 * done() on the loop thread, done() in completion order, a full queue is
 * ERR_TOOBIG and runs nothing, worker_pool_free() runs the work and the
 * done() of queued jobs, and 10000 jobs on 4 threads complete exactly
 * once.
 * Runs in: the unit test binary only.
 * Failure policy: cmocka assertions.
 * SECURITY: the queue bound is what limits memory under a flood.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <event2/event.h>

#include "common/err.h"
#include "common/worker.h"

#define MANY_JOBS	10000

struct job {
	int		 id;
	pthread_t	 loop;		/* the loop thread */
	sem_t		*started;	/* posted when work() begins, or NULL */
	sem_t		*gate;		/* work() waits on it, or NULL */
	sem_t		*finished;	/* posted when work() ends, or NULL */
	unsigned	 sleep_us;	/* work() sleeps this long */
	atomic_int	 worked;	/* times work() ran */
	int		 done;		/* times done() ran */
	int		 work_on_loop;	/* work() ran on the loop thread */
	int		 done_off_loop;	/* done() ran elsewhere */
	int		*order;		/* done() appends id here */
	int		*norder;
};

static void
job_work(void *arg)
{
	struct job	*j = arg;

	if (pthread_equal(pthread_self(), j->loop))
		j->work_on_loop = 1;
	if (j->started != NULL)
		sem_post(j->started);
	if (j->gate != NULL)
		while (sem_wait(j->gate) == -1)
			;
	if (j->sleep_us > 0)
		usleep(j->sleep_us);
	atomic_fetch_add(&j->worked, 1);
	if (j->finished != NULL)
		sem_post(j->finished);
}

static void
job_done(void *arg)
{
	struct job	*j = arg;

	if (!pthread_equal(pthread_self(), j->loop))
		j->done_off_loop = 1;
	j->done++;
	if (j->order != NULL)
		j->order[(*j->norder)++] = j->id;
}

static void
job_init(struct job *jobs, int n, int *order, int *norder)
{
	int	i;

	memset(jobs, 0, sizeof(*jobs) * (size_t)n);
	for (i = 0; i < n; i++) {
		jobs[i].id = i;
		jobs[i].loop = pthread_self();
		atomic_init(&jobs[i].worked, 0);
		jobs[i].order = order;
		jobs[i].norder = norder;
	}
}

/* Run the loop until every job's done() has run. */
static void
loop_until_idle(struct event_base *base, struct worker_pool *p)
{
	while (worker_pending(p) > 0)
		assert_int_not_equal(event_base_loop(base, EVLOOP_ONCE), -1);
}

static void
test_common_worker__done_on_loop_thread(void **state)
{
	struct event_base	*base;
	struct worker_pool	*p = NULL;
	struct job		 jobs[8];
	int			 i;

	job_init(jobs, 8, NULL, NULL);
	assert_non_null(base = event_base_new());
	assert_int_equal(worker_pool_new(&p, base, 3, 16), 0);
	for (i = 0; i < 8; i++)
		assert_int_equal(worker_submit(p, job_work, job_done,
		    &jobs[i]), 0);
	assert_true(worker_pending(p) > 0);
	loop_until_idle(base, p);
	assert_int_equal(worker_pending(p), 0);
	for (i = 0; i < 8; i++) {
		assert_int_equal(atomic_load(&jobs[i].worked), 1);
		assert_int_equal(jobs[i].done, 1);
		assert_false(jobs[i].work_on_loop);
		assert_false(jobs[i].done_off_loop);
	}
	worker_pool_free(&p);
	assert_null(p);
	worker_pool_free(&p);
	event_base_free(base);
}

/*
 * Four jobs on four threads, released in reverse order; the loop runs
 * only after all have finished, so one drain sees all four and must
 * deliver them in completion order (3 2 1 0), not submission order.
 */
static void
test_common_worker__done_in_completion_order(void **state)
{
	struct event_base	*base;
	struct worker_pool	*p = NULL;
	struct job		 jobs[4];
	sem_t			 started, finished, gate[4];
	int			 order[4], norder = 0, i;

	job_init(jobs, 4, order, &norder);
	assert_int_equal(sem_init(&started, 0, 0), 0);
	assert_int_equal(sem_init(&finished, 0, 0), 0);
	assert_non_null(base = event_base_new());
	assert_int_equal(worker_pool_new(&p, base, 4, 4), 0);
	for (i = 0; i < 4; i++) {
		assert_int_equal(sem_init(&gate[i], 0, 0), 0);
		jobs[i].started = &started;
		jobs[i].gate = &gate[i];
		jobs[i].finished = &finished;
		assert_int_equal(worker_submit(p, job_work, job_done,
		    &jobs[i]), 0);
	}
	for (i = 0; i < 4; i++)
		assert_int_equal(sem_wait(&started), 0);
	for (i = 3; i >= 0; i--) {
		sem_post(&gate[i]);
		assert_int_equal(sem_wait(&finished), 0);
		/* let the pool thread queue it before the next one ends */
		usleep(20000);
	}
	assert_int_equal(worker_pending(p), 4);
	loop_until_idle(base, p);
	assert_int_equal(norder, 4);
	for (i = 0; i < 4; i++)
		assert_int_equal(order[i], 3 - i);
	worker_pool_free(&p);
	event_base_free(base);
	for (i = 0; i < 4; i++)
		sem_destroy(&gate[i]);
	sem_destroy(&started);
	sem_destroy(&finished);
}

/* One thread busy, a queue of two: the fourth job is refused. */
static void
test_common_worker__queue_full(void **state)
{
	struct event_base	*base;
	struct worker_pool	*p = NULL;
	struct job		 jobs[4];
	sem_t			 started, gate;
	int			 i;

	job_init(jobs, 4, NULL, NULL);
	assert_int_equal(sem_init(&started, 0, 0), 0);
	assert_int_equal(sem_init(&gate, 0, 0), 0);
	assert_non_null(base = event_base_new());
	assert_int_equal(worker_pool_new(&p, base, 1, 2), 0);
	jobs[0].started = &started;
	jobs[0].gate = &gate;
	assert_int_equal(worker_submit(p, job_work, job_done, &jobs[0]), 0);
	assert_int_equal(sem_wait(&started), 0);
	assert_int_equal(worker_submit(p, job_work, job_done, &jobs[1]), 0);
	assert_int_equal(worker_submit(p, job_work, job_done, &jobs[2]), 0);
	err_clear();
	assert_int_equal(worker_submit(p, job_work, job_done, &jobs[3]),
	    ERR_TOOBIG);
	assert_int_equal(err_code(), ERR_TOOBIG);
	assert_int_equal(worker_pending(p), 3);
	sem_post(&gate);
	loop_until_idle(base, p);
	for (i = 0; i < 3; i++) {
		assert_int_equal(atomic_load(&jobs[i].worked), 1);
		assert_int_equal(jobs[i].done, 1);
	}
	assert_int_equal(atomic_load(&jobs[3].worked), 0);
	assert_int_equal(jobs[3].done, 0);
	/* room again */
	assert_int_equal(worker_submit(p, job_work, job_done, &jobs[3]), 0);
	loop_until_idle(base, p);
	assert_int_equal(jobs[3].done, 1);
	worker_pool_free(&p);
	event_base_free(base);
	sem_destroy(&started);
	sem_destroy(&gate);
}

/* Free with jobs still queued: their work and done run, in order. */
static void
test_common_worker__free_runs_queued(void **state)
{
	struct event_base	*base;
	struct worker_pool	*p = NULL;
	struct job		 jobs[6];
	sem_t			 started;
	int			 order[6], norder = 0, i;

	job_init(jobs, 6, order, &norder);
	assert_int_equal(sem_init(&started, 0, 0), 0);
	assert_non_null(base = event_base_new());
	assert_int_equal(worker_pool_new(&p, base, 1, 8), 0);
	jobs[0].started = &started;
	jobs[0].sleep_us = 50000;
	for (i = 0; i < 6; i++)
		assert_int_equal(worker_submit(p, job_work, job_done,
		    &jobs[i]), 0);
	assert_int_equal(sem_wait(&started), 0);
	assert_int_equal(worker_pending(p), 6);
	worker_pool_free(&p);		/* the loop never ran */
	assert_null(p);
	assert_int_equal(norder, 6);
	for (i = 0; i < 6; i++) {
		assert_int_equal(atomic_load(&jobs[i].worked), 1);
		assert_int_equal(jobs[i].done, 1);
		assert_false(jobs[i].done_off_loop);
		assert_int_equal(order[i], i);	/* one thread: FIFO */
	}
	event_base_free(base);
	sem_destroy(&started);
}

/* done() may submit more work to the same pool. */
static struct worker_pool	*resubmit_pool;
static int			 resubmit_left;
static atomic_int		 resubmit_worked;

static void
resubmit_work(void *arg)
{
	atomic_fetch_add(&resubmit_worked, 1);
}

static void
resubmit_done(void *arg)
{
	if (resubmit_left > 0) {
		resubmit_left--;
		assert_int_equal(worker_submit(resubmit_pool, resubmit_work,
		    resubmit_done, NULL), 0);
	}
}

static void
test_common_worker__submit_from_done(void **state)
{
	struct event_base	*base;

	assert_non_null(base = event_base_new());
	assert_int_equal(worker_pool_new(&resubmit_pool, base, 2, 1), 0);
	atomic_init(&resubmit_worked, 0);
	resubmit_left = 9;
	assert_int_equal(worker_submit(resubmit_pool, resubmit_work,
	    resubmit_done, NULL), 0);
	loop_until_idle(base, resubmit_pool);
	assert_int_equal(atomic_load(&resubmit_worked), 10);
	assert_int_equal(resubmit_left, 0);
	worker_pool_free(&resubmit_pool);
	event_base_free(base);
}

static void
test_common_worker__many_jobs(void **state)
{
	struct event_base	*base;
	struct worker_pool	*p = NULL;
	struct job		*jobs;
	int			 i;

	jobs = calloc(MANY_JOBS, sizeof(*jobs));
	assert_non_null(jobs);
	job_init(jobs, MANY_JOBS, NULL, NULL);
	assert_non_null(base = event_base_new());
	assert_int_equal(worker_pool_new(&p, base, 4, MANY_JOBS), 0);
	for (i = 0; i < MANY_JOBS; i++)
		assert_int_equal(worker_submit(p, job_work, job_done,
		    &jobs[i]), 0);
	loop_until_idle(base, p);
	for (i = 0; i < MANY_JOBS; i++) {
		assert_int_equal(atomic_load(&jobs[i].worked), 1);
		assert_int_equal(jobs[i].done, 1);
		assert_false(jobs[i].work_on_loop);
		assert_false(jobs[i].done_off_loop);
	}
	worker_pool_free(&p);
	event_base_free(base);
	free(jobs);
}

static void
test_common_worker__bad_params(void **state)
{
	struct event_base	*base;
	struct worker_pool	*p = NULL;

	assert_non_null(base = event_base_new());
	assert_int_equal(worker_pool_new(&p, base, 0, 1), ERR_INVAL);
	assert_null(p);
	assert_int_equal(worker_pool_new(&p, base, 65, 1), ERR_INVAL);
	assert_int_equal(worker_pool_new(&p, base, 1, 0), ERR_INVAL);
	assert_int_equal(worker_pool_new(&p, NULL, 1, 1), ERR_INVAL);
	assert_null(p);
	assert_int_equal(worker_pool_new(&p, base, 64, 1), 0);
	assert_int_equal(worker_submit(p, NULL, job_done, NULL), ERR_INVAL);
	assert_int_equal(worker_pending(p), 0);
	worker_pool_free(&p);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_common_worker__done_on_loop_thread),
		cmocka_unit_test(test_common_worker__done_in_completion_order),
		cmocka_unit_test(test_common_worker__queue_full),
		cmocka_unit_test(test_common_worker__free_runs_queued),
		cmocka_unit_test(test_common_worker__submit_from_done),
		cmocka_unit_test(test_common_worker__many_jobs),
		cmocka_unit_test(test_common_worker__bad_params),
	};
	int	rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
