/*
 * delivery.c -- the queue runner: local delivery into the encrypted
 * store, with retries and exponential backoff.
 *
 * For each due message: the data key of every local recipient is made
 * ready on the loop (cache, or the store's wrapped key unwrapped by
 * keyservice, or a new key from keyservice for a first delivery), then a
 * worker reads the queued message, stores it in each INBOX (durable) and
 * records the results in the queue (durable), and the loop schedules the
 * next due messages.
 *
 * Runs in: the mailsrv process; the loop thread, and worker threads for
 * queue_read / store_deliver / queue_update.
 * Failure policy: a recipient that cannot be delivered now is retried
 * with backoff (retry_min doubling to retry_max); after queue_lifetime it
 * is failed.  Remote recipients wait for the relay (not implemented yet:
 * they stay queued, retried, and fail at queue_lifetime).
 * SECURITY: plain data keys live only in the cache (wiped on eviction and
 * at stop, DELIVERY_DEK_TTL at most) and in the job being run; the
 * message plaintext exists only in worker memory and is wiped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base64.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mailsrv/mailsrv.h"
#include "mailsrv/queue/queue.h"
#include "mailsrv/store/store.h"

#define DELIVERY_TICK_SEC	1
#define DELIVERY_INFLIGHT	8
#define DELIVERY_DEK_TTL	300	/* seconds */
#define DELIVERY_DEK_CACHE	256

struct dek_entry {
	char		addr[STORE_ADDRESS_MAX + 1];
	unsigned char	dek[STORE_DEK_LEN];
	time_t		expires;
};

static struct dek_entry	 dek_cache[DELIVERY_DEK_CACHE];

struct delivery_job {
	struct mailsrv		*ms;
	struct queue_env	*env;
	unsigned char		(*deks)[STORE_DEK_LEN];	/* per rcpt */
	int			*ready;			/* per rcpt */
	size_t			 waiting;	/* key lookups in flight */
	int			 failed_keys;
	int			 rc;
};

struct delivery_keyreq {
	struct delivery_job	*job;
	size_t			 i;
	int			 created;	/* new user: wrapped to store */
};

static char	**inflight;
static size_t	  ninflight;

/* ------------------------------------------------------------ key cache */

static struct dek_entry *
dek_lookup(const char *addr)
{
	time_t	now = time(NULL);
	size_t	i;

	for (i = 0; i < DELIVERY_DEK_CACHE; i++)
		if (dek_cache[i].expires > now &&
		    strcmp(dek_cache[i].addr, addr) == 0)
			return &dek_cache[i];
	return NULL;
}

static void
dek_put(const char *addr, const unsigned char *dek)
{
	time_t		 now = time(NULL);
	struct dek_entry *e = &dek_cache[0];
	size_t		 i;

	for (i = 0; i < DELIVERY_DEK_CACHE; i++) {
		if (dek_cache[i].expires <= now) {
			e = &dek_cache[i];
			break;
		}
		if (dek_cache[i].expires < e->expires)
			e = &dek_cache[i];
	}
	explicit_bzero(e, sizeof(*e));
	snprintf(e->addr, sizeof(e->addr), "%s", addr);
	memcpy(e->dek, dek, STORE_DEK_LEN);
	e->expires = now + DELIVERY_DEK_TTL;
}

static void
dek_wipe_all(void)
{
	explicit_bzero(dek_cache, sizeof(dek_cache));
}

static char *
delivery_context(const char *addr)
{
	char	*ctx;

	xasprintf(&ctx, "mailbox:%s", addr);
	return ctx;
}

/* ------------------------------------------------------------ jobs */

static void	delivery_submit(struct delivery_job *);

static void
inflight_remove(const char *id)
{
	size_t	i;

	for (i = 0; i < ninflight; i++) {
		if (strcmp(inflight[i], id) == 0) {
			free(inflight[i]);
			inflight[i] = inflight[--ninflight];
			return;
		}
	}
}

static int
inflight_has(const char *id)
{
	size_t	i;

	for (i = 0; i < ninflight; i++)
		if (strcmp(inflight[i], id) == 0)
			return 1;
	return 0;
}

static void
delivery_job_free(struct delivery_job *j)
{
	if (j->env != NULL)
		inflight_remove(j->env->id);
	if (j->deks != NULL)
		xfreezero(j->deks, j->env->nrcpts * STORE_DEK_LEN);
	free(j->ready);
	queue_env_free(&j->env);
	j->ms->delivering--;
	free(j);
}

/* A key lookup finished: run the job when all are in. */
static void
delivery_key_ready(struct delivery_job *j)
{
	if (--j->waiting > 0)
		return;
	delivery_submit(j);
}

static void
delivery_key_cb(int status, json_t *body, void *arg)
{
	struct delivery_keyreq	*kr = arg;
	struct delivery_job	*j = kr->job;
	struct queue_rcpt	*r = &j->env->rcpts[kr->i];
	const char		*b64 = json_string_value(json_object_get(body,
	    "plaintext"));
	const char		*wrapped = json_string_value(json_object_get(
	    body, "wrapped"));
	unsigned char		*dek = NULL;
	size_t			 len = 0;
	int			 rc;

	if (j->ms->stopping)
		j->failed_keys = 1;
	else if (status != 200 || b64 == NULL || b64_decode(&dek, &len, b64,
	    strlen(b64), STORE_DEK_LEN) < 0 || len != STORE_DEK_LEN) {
		log_warnx("delivery key for %s unavailable status=%d", r->addr,
		    status);
		j->failed_keys = 1;
	} else if (kr->created && (rc = store_user_create(j->ms->store,
	    r->addr, wrapped ? wrapped : "")) < 0) {
		/* ERR_EXISTS: another delivery created it; retry later */
		if (rc != ERR_EXISTS)
			log_warnx("delivery cannot create mailbox of %s: %s",
			    r->addr, err_msg());
		j->failed_keys = 1;
	} else {
		memcpy(j->deks[kr->i], dek, STORE_DEK_LEN);
		j->ready[kr->i] = 1;
		dek_put(r->addr, dek);
	}
	if (dek != NULL)
		xfreezero(dek, len + 1);
	free(kr);
	delivery_key_ready(j);
}

/* Start getting the data key of rcpt i. */
static void
delivery_key_fetch(struct delivery_job *j, size_t i)
{
	struct queue_rcpt	*r = &j->env->rcpts[i];
	struct dek_entry	*e;
	struct store_user	 u;
	struct delivery_keyreq	*kr;
	char			*ctx;
	int			 rc;

	if ((e = dek_lookup(r->addr)) != NULL) {
		memcpy(j->deks[i], e->dek, STORE_DEK_LEN);
		j->ready[i] = 1;
		return;
	}
	kr = xcalloc(1, sizeof(*kr));
	kr->job = j;
	kr->i = i;
	ctx = delivery_context(r->addr);
	memset(&u, 0, sizeof(u));
	if ((rc = store_user_get(j->ms->store, r->addr, &u)) == 0)
		rc = keyclient_unwrap(j->ms->kc, u.wrapped_dek, ctx,
		    delivery_key_cb, kr);
	else if (rc == ERR_NOTFOUND && r->dept != NULL) {
		kr->created = 1;
		rc = keyclient_datakey(j->ms->kc, r->dept, ctx,
		    delivery_key_cb, kr);
	}
	store_user_clear(&u);
	free(ctx);
	if (rc < 0) {
		free(kr);
		j->failed_keys = 1;
		return;
	}
	j->waiting++;
}

/* ------------------------------------------------------------ work */

static int64_t
delivery_backoff(const struct amanat_conf *cf, unsigned attempts)
{
	int64_t	ms = cf->mailsrv.retry_min;

	while (attempts-- > 1 && ms < cf->mailsrv.retry_max)
		ms *= 2;
	if (ms > cf->mailsrv.retry_max)
		ms = cf->mailsrv.retry_max;
	return (ms + 999) / 1000;
}

static void
delivery_set_status(struct queue_rcpt *r, const char *status)
{
	free(r->status);
	r->status = xstrdup(status);
}

/* Worker thread: deliver to every ready local recipient, record. */
static void
delivery_work(void *arg)
{
	struct delivery_job		*j = arg;
	struct mailsrv			*ms = j->ms;
	const struct amanat_conf	*cf = &ms->d->conf;
	struct queue_env		*env = j->env;
	unsigned char			*msg = NULL;
	size_t				 len = 0, i;
	uint32_t			 uidv, uid;
	int64_t				 now = (int64_t)time(NULL);
	int				 rc, pending = 0;

	rc = queue_read(ms->queue, env->id, &msg, &len);
	for (i = 0; i < env->nrcpts; i++) {
		struct queue_rcpt	*r = &env->rcpts[i];

		if (r->state != QUEUE_RCPT_PENDING)
			continue;
		if (r->local && j->ready[i] && rc == 0) {
			if (store_deliver(ms->store, r->addr, NULL, j->deks[i],
			    msg, len, 0, env->created, &uidv, &uid) == 0) {
				r->state = QUEUE_RCPT_DELIVERED;
				delivery_set_status(r, "2.0.0 delivered");
				continue;
			}
			delivery_set_status(r, err_code() == ERR_TOOBIG ?
			    "4.2.2 mailbox full" : "4.3.0 mailbox unavailable");
		} else if (!r->local)
			delivery_set_status(r, "4.4.0 remote delivery not "
			    "available yet");
		else if (rc < 0)
			delivery_set_status(r, "4.3.0 queued message unreadable");
		else
			delivery_set_status(r, "4.4.3 mailbox key unavailable");
		if (now - env->created >= cf->mailsrv.queue_lifetime / 1000) {
			r->state = QUEUE_RCPT_FAILED;
			delivery_set_status(r, "5.4.7 delivery time expired");
		} else
			pending = 1;
	}
	if (msg != NULL)
		xfreezero(msg, len);
	if (pending) {
		env->attempts++;
		env->next_try = now + delivery_backoff(cf, env->attempts);
	}
	j->rc = queue_update(ms->queue, env);
}

static void
delivery_done(void *arg)
{
	struct delivery_job	*j = arg;
	struct mailsrv		*ms = j->ms;
	size_t			 i;

	if (j->rc < 0)
		log_warnx("delivery %s: queue update failed: %s", j->env->id,
		    err_msg());
	for (i = 0; i < j->env->nrcpts; i++)
		log_info("delivery id=%s to=<%s> state=%s status=\"%s\"",
		    j->env->id, j->env->rcpts[i].addr,
		    j->env->rcpts[i].state == QUEUE_RCPT_DELIVERED ? "sent" :
		    j->env->rcpts[i].state == QUEUE_RCPT_FAILED ? "failed" :
		    "deferred", j->env->rcpts[i].status ?
		    j->env->rcpts[i].status : "");
	delivery_job_free(j);
	delivery_kick(ms);
}

static void
delivery_submit(struct delivery_job *j)
{
	if (j->ms->stopping) {
		delivery_job_free(j);
		return;
	}
	if (worker_submit(j->ms->workers, delivery_work, delivery_done,
	    j) < 0) {
		log_warnx("delivery %s: workers busy", j->env->id);
		delivery_job_free(j);
	}
}

static void
delivery_start_one(struct mailsrv *ms, const char *id)
{
	struct delivery_job	*j;
	size_t			 i;

	j = xcalloc(1, sizeof(*j));
	j->ms = ms;
	if (queue_get(ms->queue, id, &j->env) < 0) {
		log_warnx("delivery %s: %s", id, err_msg());
		free(j);
		return;
	}
	ms->delivering++;
	inflight = xreallocarray(inflight, ninflight + 1, sizeof(*inflight));
	inflight[ninflight++] = xstrdup(id);
	j->deks = xcalloc(j->env->nrcpts ? j->env->nrcpts : 1,
	    STORE_DEK_LEN);
	j->ready = xcalloc(j->env->nrcpts ? j->env->nrcpts : 1, sizeof(int));
	j->waiting = 1;		/* held until every fetch is started */
	for (i = 0; i < j->env->nrcpts; i++)
		if (j->env->rcpts[i].local &&
		    j->env->rcpts[i].state == QUEUE_RCPT_PENDING)
			delivery_key_fetch(j, i);
	delivery_key_ready(j);
}

static void
delivery_run(struct mailsrv *ms)
{
	char	**ids = NULL;
	size_t	  n = 0, i;

	if (ms->queue == NULL || ms->store == NULL ||
	    ms->delivering >= DELIVERY_INFLIGHT)
		return;
	if (queue_due(ms->queue, (int64_t)time(NULL), DELIVERY_INFLIGHT * 2,
	    &ids, &n) < 0) {
		log_warnx("delivery: %s", err_msg());
		return;
	}
	for (i = 0; i < n; i++) {
		if (ms->delivering < DELIVERY_INFLIGHT && !inflight_has(ids[i]))
			delivery_start_one(ms, ids[i]);
		free(ids[i]);
	}
	free(ids);
}

static void
delivery_tick(evutil_socket_t fd, short ev, void *arg)
{
	delivery_run(arg);
}

void
delivery_kick(struct mailsrv *ms)
{
	if (ms->sched_ev != NULL)
		event_active(ms->sched_ev, EV_TIMEOUT, 0);
}

int
delivery_start(struct mailsrv *ms)
{
	struct timeval		 tv = { DELIVERY_TICK_SEC, 0 };
	struct store_opts	 so;
	char			*dir = path_join(ms->dir, "store");
	int			 rc;

	memset(&so, 0, sizeof(so));
	so.map_size = (size_t)ms->d->conf.mailsrv.map_size;
	so.zlevel = -1;
	so.msg_max = (size_t)ms->d->conf.mailsrv.max_message_size +
	    64 * 1024;	/* our added headers */
	rc = store_open(&ms->store, dir, &so);
	free(dir);
	if (rc < 0)
		return rc;
	ms->sched_ev = event_new(ms->d->base, -1, EV_PERSIST, delivery_tick,
	    ms);
	event_add(ms->sched_ev, &tv);
	return 0;
}

void
delivery_stop(struct mailsrv *ms)
{
	ms->stopping = 1;
	if (ms->sched_ev != NULL)
		event_free(ms->sched_ev);
	ms->sched_ev = NULL;
	dek_wipe_all();
}

void
delivery_close_store(struct mailsrv *ms)
{
	store_close(&ms->store);
}
