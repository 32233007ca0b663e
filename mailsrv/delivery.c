/*
 * delivery.c -- the queue runner: local delivery into the encrypted
 * store, with retries and exponential backoff.
 *
 * For each due message: the data key of every local recipient is made
 * ready on the loop (cache, or the store's wrapped key unwrapped by
 * keyservice, or a new key from keyservice for a first delivery); the
 * messages ready meanwhile then go to a worker as one batch, which reads
 * them, stores them in each INBOX (durable: one sync and one store
 * transaction for the batch) and records the results in the queue
 * (durable: one transaction); messages with remote recipients go on to
 * relay from the loop and record theirs after it.  The loop schedules
 * the next due messages.
 *
 * Runs in: the mailsrv process; the loop thread, and worker threads for
 * queue_read / store_deliver / queue_update.
 * Remote recipients go out through relay.c, one session per domain: over
 * its [mailsrv] relay_routes route if it has one, else to its mail
 * exchangers found in DNS (mx.c: MX, else the implicit MX, then A/AAAA;
 * port relay_port), tried in order (relay.c: the next takes over from
 * one that fails before any recipient had an answer).  A domain that does
 * not exist (5.1.2), has a null MX (5.1.10) or whose exchangers have no
 * address (5.4.4) fails its recipients; a DNS failure or timeout defers
 * them (4.4.3).
 * When a message leaves the queue with failed recipients (or ones that
 * asked NOTIFY=SUCCESS), one DSN (dsn.c) is queued to its sender from the
 * null sender.
 * Failure policy: a recipient that cannot be delivered now is retried
 * with backoff (retry_min doubling to retry_max); after queue_lifetime it
 * is failed.
 * SECURITY: plain data keys live only in the cache (wiped on eviction and
 * at stop, USERKEY_TTL at most) and in the job being run; the
 * message plaintext exists only in worker memory and is wiped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/base64.h"
#include "common/err.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mailsrv/mailsrv.h"
#include "mailsrv/dsn.h"
#include "mailsrv/mx.h"
#include "mailsrv/queue/queue.h"
#include "mailsrv/relay.h"
#include "mailsrv/store/store.h"
#include "mailsrv/userkey.h"

#define DELIVERY_TICK_SEC	1
#define DELIVERY_INFLIGHT	64	/* messages being delivered */
/* and their bytes (read into memory for the store and the relays) */
#define DELIVERY_INFLIGHT_BYTES	(256 * 1024 * 1024)
/*
 * The local part of deliveries runs in batches on one worker: one store
 * sync and transaction, one queue transaction for the messages of a
 * batch.  A batch takes jobs up to this many message bytes (at least
 * one job).
 */
#define DELIVERY_BATCH_BYTES	(32 * 1024 * 1024)
/*
 * Batches run on that many workers at once: the next one writes its
 * files while the last one waits for its sync and commit (the store's
 * and the queue's write transactions take turns).
 */
#define DELIVERY_BATCHES	2
/*
 * Delivery ids (the store's exactly-once records) are forgotten once
 * their message cannot be in the queue any more: queue_lifetime, plus a
 * day of margin.  Every DELIVERY_PRUNE_SEC, up to DELIVERY_PRUNE_MAX of
 * them are looked at (one store transaction).
 */
#define DELIVERY_PRUNE_SEC	10
#define DELIVERY_PRUNE_MAX	20000
#define DELIVERY_PRUNE_MARGIN	(24 * 3600)


struct delivery_job {
	struct mailsrv		*ms;
	struct queue_env	*env;
	unsigned char		(*deks)[STORE_DEK_LEN];	/* per rcpt */
	int			*ready;			/* per rcpt */
	int			*was;		/* states when picked up */
	size_t			 waiting;	/* key lookups in flight */
	int			 failed_keys;
	unsigned char		*msg;		/* the queued message */
	size_t			 len;
	int			 read_rc;
	size_t			 relays;	/* relay sessions in flight */
	char			*dsn;		/* a report to queue */
	size_t			 dsnlen;
	char			*dsn2;		/* and a success report */
	size_t			 dsn2len;
	int			 rc;
	int			 finished;	/* queue record written */
	/* delivery_direct(): env and msg are the SMTP session's */
	int			 direct;
	delivery_direct_cb	 dcb;
	void			*darg;
};

/* Jobs whose local part runs together on a worker. */
struct delivery_batch {
	struct mailsrv		 *ms;
	struct delivery_job	**jobs;
	size_t			  n;
};

/* The recipients of one remote domain: one relay session (and MX). */
struct delivery_relay {
	struct delivery_job	*job;
	size_t			*rcpts;
	size_t			 n;
	int			 tls;		/* relay_tls_domains */
};

struct delivery_keyreq {
	struct delivery_job	*job;
	size_t			 i;
};

static char	**inflight;
static size_t	  ninflight;
static uint64_t	  inflight_bytes;	/* of the jobs (not the holds) */
/* The delivery-id pruning: where it is, and whether a job runs. */
static struct store_prune_pos	 prune_pos;
static struct event		*prune_ev;
static int			 prune_running;

/* Jobs ready for the next batch (loop thread), and whether one runs. */
static struct delivery_job	**ready_jobs;
static size_t			  nready_jobs;
static int			  batch_running;
/* MX lookups ([mailsrv] dns_resolver): one per process, like inflight. */
static struct mx_resolver	*resolver;

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
	if (j->env != NULL && !j->direct)
		inflight_remove(j->env->id);
	if (j->deks != NULL)
		xfreezero(j->deks, j->env->nrcpts * STORE_DEK_LEN);
	if (j->msg != NULL && !j->direct)
		xfreezero(j->msg, j->len);
	if (j->dsn != NULL)
		xfreezero(j->dsn, j->dsnlen);
	if (j->dsn2 != NULL)
		xfreezero(j->dsn2, j->dsn2len);
	free(j->ready);
	free(j->was);
	if (!j->direct) {
		if (j->env != NULL)
			inflight_bytes -= j->env->size;
		queue_env_free(&j->env);
		j->ms->delivering--;
	}
	free(j);
}

/*
 * A job that will not run (stopping, workers refused it): a direct one
 * tells its session, which queues the message or answers 451.
 */
static void
delivery_job_drop(struct delivery_job *j)
{
	delivery_direct_cb	 cb = j->dcb;
	void			*arg = j->darg;
	char			 id[QUEUE_ID_LEN + 1];
	int			 direct = j->direct;

	if (direct)
		snprintf(id, sizeof(id), "%s", j->env->id);
	delivery_job_free(j);
	if (direct) {
		err_set(ERR_IO, "delivery stopped");
		cb(ERR_IO, id, arg);
	}
}

static void	delivery_key_fetch(struct delivery_job *, size_t);

/* A key lookup finished: run the job when all are in. */
static void
delivery_key_ready(struct delivery_job *j)
{
	if (--j->waiting > 0)
		return;
	delivery_submit(j);
}

static void
delivery_key_cb(int rc, const unsigned char *dek, void *arg)
{
	struct delivery_keyreq	*kr = arg;
	struct delivery_job	*j = kr->job;

	if (rc < 0 || j->ms->stopping)
		j->failed_keys = 1;
	else {
		memcpy(j->deks[kr->i], dek, STORE_DEK_LEN);
		j->ready[kr->i] = 1;
	}
	free(kr);
	delivery_key_ready(j);
}

/* Start getting the data key of rcpt i. */
static void
delivery_key_fetch(struct delivery_job *j, size_t i)
{
	struct queue_rcpt	*r = &j->env->rcpts[i];
	struct delivery_keyreq	*kr;
	int			 rc;

	kr = xcalloc(1, sizeof(*kr));
	kr->job = j;
	kr->i = i;
	rc = userkey_get(j->ms, r->addr, r->dept, j->deks[i],
	    delivery_key_cb, kr);
	if (rc == 1)
		j->ready[i] = 1;
	if (rc != 0) {
		free(kr);
		if (rc < 0) {
			log_warnx("delivery key for %s: %s", r->addr,
			    err_msg());
			j->failed_keys = 1;
		}
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

/*
 * The message as a mailbox stores it: "Return-Path: <sender>" first
 * (RFC 5321 4.4: the final delivery records the envelope sender; "<>"
 * for a report), then the message as queued.
 */
static unsigned char *
delivery_with_return_path(const struct delivery_job *j, size_t *len)
{
	unsigned char	*out;
	int		 n;

	n = snprintf(NULL, 0, "Return-Path: <%s>\r\n", j->env->sender);
	out = xmalloc((size_t)n + 1 + j->len);
	(void)snprintf((char *)out, (size_t)n + 1, "Return-Path: <%s>\r\n",
	    j->env->sender);
	memcpy(out + n, j->msg, j->len);
	*len = (size_t)n + j->len;
	return out;
}

/*
 * Worker: deliver the local recipients of every job of the batch (each
 * message stored in each INBOX exactly once: the delivery id (queue id,
 * recipient) makes a retry after a crash between the store's commit and
 * the queue's a no-op), STORE_BATCH_MAX at a time.
 */
static void
delivery_batch_local(struct delivery_batch *b)
{
	struct store_delivery	*d = NULL;
	char			(*dedup)[STORE_DEDUP_MAX + 1] = NULL;
	struct queue_rcpt	**who = NULL;
	unsigned char		**stored;	/* per job, with Return-Path */
	size_t			 *storedlen;
	size_t			 k, i, n, at, total = 0, cap = 0;

	stored = xcalloc(b->n ? b->n : 1, sizeof(*stored));
	storedlen = xcalloc(b->n ? b->n : 1, sizeof(*storedlen));
	/* every local recipient to store, in (job, recipient) order */
	for (k = 0; k < b->n; k++) {
		struct delivery_job	*j = b->jobs[k];

		for (i = 0; i < j->env->nrcpts; i++) {
			struct queue_rcpt	*r = &j->env->rcpts[i];

			if (r->state != QUEUE_RCPT_PENDING || !r->local)
				continue;
			if (j->read_rc < 0) {
				delivery_set_status(r,
				    "4.3.0 queued message unreadable");
				continue;
			}
			if (!j->ready[i]) {
				delivery_set_status(r,
				    "4.4.3 mailbox key unavailable");
				continue;
			}
			if (total == cap) {
				cap = cap ? cap * 2 : 64;
				d = xreallocarray(d, cap, sizeof(*d));
				who = xreallocarray(who, cap, sizeof(*who));
				dedup = xreallocarray(dedup, cap,
				    sizeof(*dedup));
			}
			if (stored[k] == NULL)
				stored[k] = delivery_with_return_path(j,
				    &storedlen[k]);
			memset(&d[total], 0, sizeof(d[total]));
			d[total].addr = r->addr;
			d[total].dek = j->deks[i];
			d[total].msg = stored[k];
			d[total].len = storedlen[k];
			d[total].internaldate = j->env->created;
			/* the delivery id: (queue id, recipient) */
			snprintf(dedup[total], sizeof(dedup[total]), "%s:%zu",
			    j->env->id, i);
			who[total++] = r;
		}
	}
	for (at = 0; at < total; at++)	/* dedup moves no more */
		d[at].dedup = dedup[at];
	for (at = 0; at < total; at += n) {
		n = total - at < STORE_BATCH_MAX ? total - at :
		    STORE_BATCH_MAX;
		if (store_deliver_many(b->ms->store, d + at, n) < 0)
			log_warnx("delivery batch: %s", err_msg());
		for (i = at; i < at + n; i++) {
			if (d[i].rc == 0 || d[i].rc == ERR_EXISTS) {
				who[i]->state = QUEUE_RCPT_DELIVERED;
				delivery_set_status(who[i], "2.0.0 delivered");
			} else
				delivery_set_status(who[i],
				    d[i].rc == ERR_TOOBIG ?
				    "4.2.2 mailbox full" :
				    "4.3.0 mailbox unavailable");
		}
	}
	for (k = 0; k < b->n; k++)
		free(stored[k]);
	free(stored);
	free(storedlen);
	free(dedup);
	free(who);
	free(d);
}

/*
 * Build a report of this kind into the job's first free slot.  A delay
 * report marks its recipients, so each is reported delayed once; the
 * queue update that follows makes the mark durable.
 */
static void
delivery_report(struct delivery_job *j, enum dsn_kind kind, int64_t now)
{
	struct queue_env	*env = j->env;
	char			**out = j->dsn == NULL ? &j->dsn : &j->dsn2;
	size_t			 *len = j->dsn == NULL ? &j->dsnlen : &j->dsn2len;
	size_t			 i;

	if (dsn_build(out, len, env, kind, j->ms->d->conf.mailsrv.hostname,
	    now, j->msg, j->len) < 0) {
		log_warnx("delivery %s: no report: %s", env->id, err_msg());
		return;
	}
	if (kind == DSN_DELAY)
		for (i = 0; i < env->nrcpts; i++)
			if (env->rcpts[i].state == QUEUE_RCPT_PENDING &&
			    (env->rcpts[i].notify & QUEUE_NOTIFY_DELAY))
				env->rcpts[i].delayed = 1;
}

/* Worker thread: retries, expiry and the reports (not yet recorded). */
static void
delivery_finish_prepare(struct delivery_job *j)
{
	struct mailsrv			*ms = j->ms;
	const struct amanat_conf	*cf = &ms->d->conf;
	struct queue_env		*env = j->env;
	int64_t				 now = (int64_t)time(NULL);
	size_t				 i;
	int				 pending = 0;

	for (i = 0; i < env->nrcpts; i++) {
		struct queue_rcpt	*r = &env->rcpts[i];

		if (r->state != QUEUE_RCPT_PENDING)
			continue;
		if (now - env->created >= cf->mailsrv.queue_lifetime / 1000) {
			r->state = QUEUE_RCPT_FAILED;
			delivery_set_status(r, "5.4.7 delivery time expired");
		} else
			pending = 1;
	}
	if (pending) {
		env->attempts++;
		/* next_try has whole seconds: +1 so the wait is never
		 * shorter than the backoff, whatever the fraction of now */
		env->next_try = now + delivery_backoff(cf, env->attempts) + 1;
		if (cf->mailsrv.delay_warning > 0 && env->sender[0] != '\0' &&
		    j->read_rc == 0 && now - env->created >=
		    cf->mailsrv.delay_warning / 1000 &&
		    dsn_count(env, DSN_DELAY) > 0)
			delivery_report(j, DSN_DELAY, now);
	} else if (env->sender[0] != '\0' && j->read_rc == 0) {
		/* the message leaves the queue: failures and successes */
		if (dsn_count(env, DSN_FAILURE) > 0)
			delivery_report(j, DSN_FAILURE, now);
		if (dsn_count(env, DSN_SUCCESS) > 0)
			delivery_report(j, DSN_SUCCESS, now);
	}
}

/* Worker thread: the above, and the queue record. */
static void
delivery_work_finish(void *arg)
{
	struct delivery_job	*j = arg;

	delivery_finish_prepare(j);
	j->rc = queue_update(j->ms->queue, j->env);
	j->finished = 1;
}

static void	delivery_done(void *);

static void
delivery_finish(struct delivery_job *j)
{
	if (j->ms->stopping ||
	    worker_submit(j->ms->workers, delivery_work_finish,
	    delivery_done, j) < 0)
		delivery_job_free(j);
}

/* A domain's session (or lookup) is over: the job may be finished. */
static void
delivery_relay_end(struct delivery_relay *dr)
{
	struct delivery_job	*j = dr->job;

	free(dr->rcpts);
	free(dr);
	if (--j->relays == 0)
		delivery_finish(j);
}

static void
delivery_relay_done(struct relay_result *res, size_t n, void *arg)
{
	struct delivery_relay	*dr = arg;
	struct delivery_job	*j = dr->job;
	size_t			 i;

	for (i = 0; i < n; i++) {
		struct queue_rcpt *r = &j->env->rcpts[dr->rcpts[i]];

		r->state = res[i].state;
		delivery_set_status(r, res[i].status);
	}
	delivery_relay_end(dr);
}

static void
delivery_relay_go(struct delivery_relay *dr, const struct relay_target *t,
    size_t nt)
{
	struct delivery_job	*j = dr->job;

	if (relay_start(j->ms->d->base, j->ms->relay_ctx,
	    j->ms->d->conf.mailsrv.hostname, t, nt, dr->tls, j->env,
	    dr->rcpts, dr->n, j->msg, j->len, delivery_relay_done, dr) < 0) {
		log_warnx("delivery %s: %s", j->env->id, err_msg());
		delivery_relay_end(dr);
	}
}

/* The domain's mail exchangers (or why there are none). */
static void
delivery_mx_done(const struct mx_result *res, void *arg)
{
	struct delivery_relay	*dr = arg;
	struct delivery_job	*j = dr->job;
	struct relay_target	*t;
	size_t			 i;

	if (j->ms->stopping) {
		delivery_relay_end(dr);
		return;
	}
	if (res->status != MX_OK) {
		for (i = 0; i < dr->n; i++) {
			struct queue_rcpt *r = &j->env->rcpts[dr->rcpts[i]];

			if (res->status == MX_PERMFAIL)
				r->state = QUEUE_RCPT_FAILED;
			delivery_set_status(r, res->text);
		}
		delivery_relay_end(dr);
		return;
	}
	t = xcalloc(res->ncands, sizeof(*t));
	for (i = 0; i < res->ncands; i++) {
		snprintf(t[i].host, sizeof(t[i].host), "%s",
		    res->cands[i].host);
		snprintf(t[i].addr, sizeof(t[i].addr), "%s",
		    res->cands[i].addr);
		t[i].port = (int)j->ms->d->conf.mailsrv.relay_port;
	}
	delivery_relay_go(dr, t, res->ncands);
	free(t);
}

/*
 * Loop: one relay session per remote domain, over its route, else to
 * the mail exchangers an MX lookup finds.
 */
static void
delivery_relay(struct delivery_job *j)
{
	const struct amanat_conf	*cf = &j->ms->d->conf;
	struct queue_env		*env = j->env;
	struct delivery_relay		*dr;
	struct relay_target		 t;
	const char			*dom;
	size_t				 i, k;
	int				*done;

	done = xcalloc(env->nrcpts ? env->nrcpts : 1, sizeof(int));
	j->relays = 1;		/* held until every session is started */
	for (i = 0; i < env->nrcpts && j->read_rc == 0; i++) {
		if (done[i] || env->rcpts[i].local ||
		    env->rcpts[i].state != QUEUE_RCPT_PENDING)
			continue;
		dom = strrchr(env->rcpts[i].addr, '@') + 1;
		dr = xcalloc(1, sizeof(*dr));
		dr->job = j;
		dr->rcpts = xcalloc(env->nrcpts, sizeof(size_t));
		for (k = i; k < env->nrcpts; k++) {
			const char *d2 = strrchr(env->rcpts[k].addr, '@') + 1;

			if (!done[k] && !env->rcpts[k].local &&
			    env->rcpts[k].state == QUEUE_RCPT_PENDING &&
			    strcasecmp(d2, dom) == 0) {
				done[k] = 1;
				dr->rcpts[dr->n++] = k;
			}
		}
		j->relays++;
		memset(&t, 0, sizeof(t));
		if (relay_route(t.host, sizeof(t.host), &t.port, &dr->tls, cf,
		    dom) == 0) {
			delivery_relay_go(dr, &t, 1);
			continue;
		}
		dr->tls = relay_tls_required(cf, dom);
		if (resolver == NULL) {
			for (k = 0; k < dr->n; k++)
				delivery_set_status(&env->rcpts[dr->rcpts[k]],
				    "4.4.3 no DNS resolver");
			delivery_relay_end(dr);
			continue;
		}
		mx_resolve(resolver, dom, delivery_mx_done, dr);
	}
	free(done);
	if (--j->relays == 0)
		delivery_finish(j);
}

static void	delivery_queue_dsn(struct delivery_job *, char **, size_t *);
static void	delivery_done(void *);

static void	delivery_direct_done(struct delivery_job *);

/*
 * Loop: log recipient i's state; when it changed durably (the queue's
 * record written, or stored by a direct delivery), audit it, and for a
 * new message tell the user's IDLE sessions to look now.
 */
static void
delivery_announce(struct delivery_job *j, size_t i)
{
	struct mailsrv		*ms = j->ms;
	struct queue_rcpt	*r = &j->env->rcpts[i];
	int			 durable = j->direct || j->rc == 0;

	log_info("delivery id=%s to=<%s> state=%s status=\"%s\"%s",
	    j->env->id, r->addr, r->state == QUEUE_RCPT_DELIVERED ? "sent" :
	    r->state == QUEUE_RCPT_FAILED ? "failed" : "deferred",
	    r->status ? r->status : "", j->direct ? " direct=yes" : "");
	if (!durable || r->state == j->was[i])
		return;
	if (r->local && r->state == QUEUE_RCPT_DELIVERED)
		imap_notify_user(ms, r->addr);
	if (ms->audit != NULL)
		(void)auditsvc_record(ms->audit, j->env->sender, "", "",
		    r->state == QUEUE_RCPT_FAILED ? "mail.bounce" : r->local ?
		    "mail.deliver" : "mail.relay", r->addr, r->state ==
		    QUEUE_RCPT_FAILED ? AUDIT_ERROR : AUDIT_OK, 0,
		    json_pack("{s:s,s:s?}", "queue_id", j->env->id, "status",
		    r->status), NULL, NULL);
}

static void
delivery_done(void *arg)
{
	struct delivery_job	*j = arg;
	struct mailsrv		*ms = j->ms;
	size_t			 i;

	if (j->direct) {
		delivery_direct_done(j);
		return;
	}
	if (j->rc < 0)
		log_warnx("delivery %s: queue update failed: %s", j->env->id,
		    err_msg());
	for (i = 0; i < j->env->nrcpts; i++)
		delivery_announce(j, i);
	if (j->rc == 0 && !ms->stopping) {
		if (j->dsn != NULL)
			delivery_queue_dsn(j, &j->dsn, &j->dsnlen);
		if (j->dsn2 != NULL)
			delivery_queue_dsn(j, &j->dsn2, &j->dsn2len);
	}
	delivery_job_free(j);
	delivery_kick(ms);
}

/* ------------------------------------------------------ direct delivery */

/*
 * Loop: a direct delivery ran.  The copies stored are announced as the
 * queue's deliveries are (after the session's mail.accept record, which
 * was started before the delivery); then the session hears: it answers,
 * or queues the message for the recipients not stored (and may free
 * env).
 */
static void
delivery_direct_done(struct delivery_job *j)
{
	delivery_direct_cb	 cb = j->dcb;
	void			*arg = j->darg;
	char			 id[QUEUE_ID_LEN + 1];
	size_t			 i;
	int			 rc = j->rc;

	for (i = 0; i < j->env->nrcpts; i++)
		if (j->env->rcpts[i].state == QUEUE_RCPT_DELIVERED)
			delivery_announce(j, i);
	snprintf(id, sizeof(id), "%s", j->env->id);
	delivery_job_free(j);
	if (rc < 0)
		err_set(rc, "not every mailbox took the message");
	cb(rc, id, arg);
}

int
delivery_direct(struct mailsrv *ms, struct queue_writer *w,
    struct queue_env *env, delivery_direct_cb cb, void *arg)
{
	struct delivery_job	*j;
	const unsigned char	*msg;
	size_t			 len, i;

	if (!ms->d->conf.mailsrv.direct_delivery || ms->store == NULL ||
	    ms->stopping || env->nrcpts == 0 ||
	    queue_writer_peek(w, &msg, &len) < 0 || len == 0)
		return -1;
	for (i = 0; i < env->nrcpts; i++)
		if (!env->rcpts[i].local ||
		    env->rcpts[i].state != QUEUE_RCPT_PENDING ||
		    (env->rcpts[i].notify & QUEUE_NOTIFY_SUCCESS))
			return -1;	/* relay, or a success report */
	j = xcalloc(1, sizeof(*j));
	j->ms = ms;
	j->env = env;
	j->direct = 1;
	j->dcb = cb;
	j->darg = arg;
	j->deks = xcalloc(env->nrcpts, STORE_DEK_LEN);
	j->ready = xcalloc(env->nrcpts, sizeof(int));
	j->was = xcalloc(env->nrcpts, sizeof(int));
	for (i = 0; i < env->nrcpts; i++) {
		/* no keyservice round trip here: the queue does that */
		if (!userkey_peek(env->rcpts[i].addr, j->deks[i])) {
			delivery_job_free(j);
			return -1;
		}
		j->ready[i] = 1;
	}
	snprintf(env->id, sizeof(env->id), "%s", queue_writer_id(w));
	/* borrowed: never written, and not freed by delivery_job_free */
	j->msg = (unsigned char *)(uintptr_t)msg;
	j->len = len;
	delivery_submit(j);
	return 0;
}

/* ------------------------------------------------------------ bounces */

struct delivery_dsn {
	struct mailsrv	*ms;
	char		*msg;
	size_t		 len;
	char		*rcpt;
};

static void
delivery_dsn_free(struct delivery_dsn *d)
{
	xfreezero(d->msg, d->len);
	free(d->rcpt);
	free(d);
}

static void
delivery_dsn_committed(int rc, const char *id, void *arg)
{
	struct delivery_dsn	*d = arg;

	if (rc < 0)
		log_warnx("delivery report to <%s> not queued: %s", d->rcpt,
		    err_msg());
	else {
		log_info("delivery report queued id=%s to=<%s>", id, d->rcpt);
		delivery_kick(d->ms);
	}
	delivery_dsn_free(d);
}

/* Queue the report from the null sender; dept NULL: a remote sender. */
static void
delivery_dsn_commit(struct delivery_dsn *d, const char *dept)
{
	struct queue_writer	*w = NULL;
	struct queue_env	 env;
	struct queue_rcpt	 r;

	memset(&env, 0, sizeof(env));
	memset(&r, 0, sizeof(r));
	if (d->ms->queue == NULL || queue_writer_new(d->ms->queue, &w) < 0 ||
	    queue_writer_write(w, d->msg, d->len) < 0) {
		log_warnx("delivery report to <%s> not queued: %s", d->rcpt,
		    err_msg());
		queue_writer_abort(&w);
		delivery_dsn_free(d);
		return;
	}
	r.addr = d->rcpt;
	r.local = dept != NULL;
	r.dept = (char *)dept;
	r.notify = QUEUE_NOTIFY_NEVER;	/* never report on a report */
	env.sender = "";
	env.helo = d->ms->d->conf.mailsrv.hostname;
	env.peer = "localhost";
	env.body_8bit = 1;	/* a report may carry 8-bit parts */
	env.created = env.next_try = (int64_t)time(NULL);
	env.rcpts = &r;
	env.nrcpts = 1;
	if (queue_commit(&w, &env, delivery_dsn_committed, d) < 0) {
		log_warnx("delivery report to <%s> not queued: %s", d->rcpt,
		    err_msg());
		delivery_dsn_free(d);
	}
}

static void
delivery_dsn_lookup(int status, json_t *body, void *arg)
{
	struct delivery_dsn	*d = arg;
	const char		*dept = json_string_value(json_object_get(body,
	    "dept"));

	if (status != 200 || dept == NULL || d->ms->stopping) {
		log_warnx("delivery report to <%s> dropped: sender unknown "
		    "(status %d)", d->rcpt, status);
		delivery_dsn_free(d);
		return;
	}
	delivery_dsn_commit(d, dept);
}

static void
delivery_queue_dsn(struct delivery_job *j, char **msg, size_t *len)
{
	struct delivery_dsn	*d = xcalloc(1, sizeof(*d));
	const char		*dom = strrchr(j->env->sender, '@');

	d->ms = j->ms;
	d->msg = *msg;
	d->len = *len;
	d->rcpt = xstrdup(j->env->sender);
	*msg = NULL;
	if (dom != NULL && mailsrv_local_domain(j->ms, dom + 1)) {
		mailsrv_local_addr(d->rcpt);
		if (keyclient_user(j->ms->kc, d->rcpt, delivery_dsn_lookup,
		    d) < 0)
			delivery_dsn_free(d);
		return;
	}
	delivery_dsn_commit(d, NULL);
}

/*
 * Worker: read each message, store the local recipients' copies, and
 * finish the jobs with no remote recipient left (their queue records in
 * one transaction).  The others go on to relay from the loop.
 */
static void
delivery_batch_work(void *arg)
{
	struct delivery_batch	 *b = arg;
	struct queue_env	**envs;
	int			 *rcs;
	size_t			  k, i, n = 0;

	for (k = 0; k < b->n; k++)
		if (!b->jobs[k]->direct)
			b->jobs[k]->read_rc = queue_read(b->ms->queue,
			    b->jobs[k]->env->id, &b->jobs[k]->msg,
			    &b->jobs[k]->len);
	delivery_batch_local(b);
	envs = xcalloc(b->n, sizeof(*envs));
	rcs = xcalloc(b->n, sizeof(*rcs));
	for (k = 0; k < b->n; k++) {
		struct delivery_job	*j = b->jobs[k];
		int			 remote = 0;

		if (j->direct) {
			/* every copy durable, or the queue takes it */
			j->rc = 0;
			for (i = 0; i < j->env->nrcpts; i++)
				if (j->env->rcpts[i].state !=
				    QUEUE_RCPT_DELIVERED)
					j->rc = ERR_IO;
			j->finished = 1;
			continue;
		}
		for (i = 0; i < j->env->nrcpts && j->read_rc == 0; i++)
			if (!j->env->rcpts[i].local &&
			    j->env->rcpts[i].state == QUEUE_RCPT_PENDING)
				remote = 1;
		if (remote)
			continue;
		delivery_finish_prepare(j);
		envs[n++] = j->env;
	}
	if (n > 0 && queue_update_many(b->ms->queue, envs, n, rcs) < 0)
		log_warnx("delivery batch: queue update: %s", err_msg());
	for (k = 0, i = 0; k < b->n && i < n; k++) {
		if (b->jobs[k]->env != envs[i])
			continue;
		b->jobs[k]->rc = rcs[i++];
		b->jobs[k]->finished = 1;
	}
	free(rcs);
	free(envs);
}

static void	delivery_batch_start(struct mailsrv *);

/* Loop: finished jobs are done; the others relay, then finish. */
static void
delivery_batch_done(void *arg)
{
	struct delivery_batch	*b = arg;
	struct mailsrv		*ms = b->ms;
	size_t			 k;

	batch_running--;
	for (k = 0; k < b->n; k++) {
		if (b->jobs[k]->finished)
			delivery_done(b->jobs[k]);
		else if (ms->stopping)
			delivery_job_free(b->jobs[k]);
		else
			delivery_relay(b->jobs[k]);
	}
	free(b->jobs);
	free(b);
	delivery_batch_start(ms);
}

/* Loop: the ready jobs (up to DELIVERY_BATCH_BYTES) as one batch. */
static void
delivery_batch_start(struct mailsrv *ms)
{
	struct delivery_batch	*b;
	uint64_t		 bytes = 0;
	size_t			 n = 0, k;

	if (batch_running >= DELIVERY_BATCHES || nready_jobs == 0 ||
	    ms->stopping)
		return;
	while (n < nready_jobs && (n == 0 || bytes + ready_jobs[n]->env->size
	    <= DELIVERY_BATCH_BYTES))
		bytes += ready_jobs[n++]->env->size;
	b = xcalloc(1, sizeof(*b));
	b->ms = ms;
	b->n = n;
	b->jobs = xreallocarray(NULL, n, sizeof(*b->jobs));
	memcpy(b->jobs, ready_jobs, n * sizeof(*b->jobs));
	memmove(ready_jobs, ready_jobs + n, (nready_jobs - n) *
	    sizeof(*ready_jobs));
	nready_jobs -= n;
	if (worker_submit(ms->workers, delivery_batch_work,
	    delivery_batch_done, b) == 0) {
		batch_running++;
		return;
	}
	for (k = 0; k < n; k++) {
		log_warnx("delivery %s: workers busy", b->jobs[k]->env->id);
		delivery_job_drop(b->jobs[k]);
	}
	free(b->jobs);
	free(b);
}

/* Loop: the job's keys are in; it joins the next batch. */
static void
delivery_submit(struct delivery_job *j)
{
	if (j->ms->stopping) {
		delivery_job_drop(j);
		return;
	}
	ready_jobs = xreallocarray(ready_jobs, nready_jobs + 1,
	    sizeof(*ready_jobs));
	ready_jobs[nready_jobs++] = j;
	delivery_batch_start(j->ms);
}

/* Start delivering id; -1 when it must wait for bytes in flight. */
static int
delivery_start_one(struct mailsrv *ms, const char *id)
{
	struct delivery_job	*j;
	size_t			 i;

	j = xcalloc(1, sizeof(*j));
	j->ms = ms;
	if (queue_get(ms->queue, id, &j->env) < 0) {
		log_warnx("delivery %s: %s", id, err_msg());
		free(j);
		return 0;
	}
	if (ms->delivering > 0 && inflight_bytes + j->env->size >
	    DELIVERY_INFLIGHT_BYTES) {
		queue_env_free(&j->env);
		free(j);
		return -1;
	}
	inflight_bytes += j->env->size;
	ms->delivering++;
	inflight = xreallocarray(inflight, ninflight + 1, sizeof(*inflight));
	inflight[ninflight++] = xstrdup(id);
	j->deks = xcalloc(j->env->nrcpts ? j->env->nrcpts : 1,
	    STORE_DEK_LEN);
	j->ready = xcalloc(j->env->nrcpts ? j->env->nrcpts : 1, sizeof(int));
	j->was = xcalloc(j->env->nrcpts ? j->env->nrcpts : 1, sizeof(int));
	for (i = 0; i < j->env->nrcpts; i++)
		j->was[i] = j->env->rcpts[i].state;
	j->waiting = 1;		/* held until every fetch is started */
	for (i = 0; i < j->env->nrcpts; i++)
		if (j->env->rcpts[i].local &&
		    j->env->rcpts[i].state == QUEUE_RCPT_PENDING)
			delivery_key_fetch(j, i);
	delivery_key_ready(j);
	return 0;
}

static void
delivery_run(struct mailsrv *ms)
{
	char	**ids = NULL;
	size_t	  n = 0, i;
	int	  full = 0;

	if (ms->queue == NULL || ms->store == NULL ||
	    ms->delivering >= DELIVERY_INFLIGHT)
		return;
	if (queue_due(ms->queue, (int64_t)time(NULL), DELIVERY_INFLIGHT * 2,
	    &ids, &n) < 0) {
		log_warnx("delivery: %s", err_msg());
		return;
	}
	for (i = 0; i < n; i++) {
		if (!full && ms->delivering < DELIVERY_INFLIGHT &&
		    !inflight_has(ids[i]) && delivery_start_one(ms, ids[i]) < 0)
			full = 1;	/* a finished job starts more */
		free(ids[i]);
	}
	free(ids);
}

static void
delivery_tick(evutil_socket_t fd, short ev, void *arg)
{
	delivery_run(arg);
}

struct delivery_prune {
	struct mailsrv	*ms;
	int64_t		 before;
	int		 removed;
};

static void
delivery_prune_work(void *arg)
{
	struct delivery_prune	*p = arg;

	p->removed = store_dedup_prune(p->ms->store, p->before,
	    DELIVERY_PRUNE_MAX, &prune_pos);
	if (p->removed < 0)
		log_warnx("delivery ids prune: %s", err_msg());
}

static void
delivery_prune_done(void *arg)
{
	struct delivery_prune	*p = arg;

	if (p->removed > 0)
		log_info("delivery ids pruned=%d", p->removed);
	prune_running = 0;
	free(p);
}

static void
delivery_prune_tick(evutil_socket_t fd, short ev, void *arg)
{
	struct mailsrv		*ms = arg;
	struct delivery_prune	*p;

	if (prune_running || ms->stopping || ms->store == NULL)
		return;
	p = xcalloc(1, sizeof(*p));
	p->ms = ms;
	p->before = (int64_t)time(NULL) -
	    ms->d->conf.mailsrv.queue_lifetime / 1000 - DELIVERY_PRUNE_MARGIN;
	prune_running = 1;
	if (worker_submit(ms->workers, delivery_prune_work,
	    delivery_prune_done, p) < 0) {
		prune_running = 0;
		free(p);
	}
}

/*
 * A one-shot event, apart from the periodic tick: activating a persistent
 * timer by hand would push its next expiry back each time.
 */
int
delivery_hold(struct mailsrv *ms, const char *id)
{
	if (inflight_has(id))
		return ERR_EXISTS;
	inflight = xreallocarray(inflight, ninflight + 1, sizeof(*inflight));
	inflight[ninflight++] = xstrdup(id);
	return 0;
}

void
delivery_release(struct mailsrv *ms, const char *id)
{
	inflight_remove(id);
}

void
delivery_kick(struct mailsrv *ms)
{
	if (ms->kick_ev != NULL)
		event_active(ms->kick_ev, EV_TIMEOUT, 0);
}

int
delivery_start(struct mailsrv *ms)
{
	struct timeval		 tv = { DELIVERY_TICK_SEC, 0 };
	struct timeval		 ptv = { DELIVERY_PRUNE_SEC, 0 };
	struct store_opts	 so;
	struct tls_opts		 o;
	char			*dir = path_join(ms->dir, "store");
	int			 rc;

	memset(&so, 0, sizeof(so));
	so.map_size = (size_t)ms->d->conf.mailsrv.map_size;
	so.zlevel = -1;
	so.quota = (uint64_t)ms->d->conf.mailsrv.quota;
	so.msg_max = (size_t)ms->d->conf.mailsrv.max_message_size +
	    64 * 1024;	/* our added headers */
	rc = store_open(&ms->store, dir, &so);
	free(dir);
	if (rc < 0)
		return rc;
	memset(&o, 0, sizeof(o));
	o.ca = ms->d->conf.tls.ca;
	o.min_version = ms->d->conf.tls.min_version;
	o.verify = TLS_VERIFY_NONE;	/* per connection: relay.c */
	if ((rc = tls_client_ctx_new(&ms->relay_ctx, &o)) < 0)
		return rc;
	if ((rc = mx_resolver_new(&resolver, ms->d->base,
	    ms->d->conf.mailsrv.dns_resolver,
	    ms->d->conf.mailsrv.dns_timeout)) < 0)
		return rc;
	ms->sched_ev = event_new(ms->d->base, -1, EV_PERSIST, delivery_tick,
	    ms);
	ms->kick_ev = event_new(ms->d->base, -1, 0, delivery_tick, ms);
	event_add(ms->sched_ev, &tv);
	prune_ev = event_new(ms->d->base, -1, EV_PERSIST, delivery_prune_tick,
	    ms);
	event_add(prune_ev, &ptv);
	return 0;
}

void
delivery_stop(struct mailsrv *ms)
{
	ms->stopping = 1;
	if (ms->sched_ev != NULL)
		event_free(ms->sched_ev);
	if (ms->kick_ev != NULL)
		event_free(ms->kick_ev);
	ms->sched_ev = ms->kick_ev = NULL;
	if (prune_ev != NULL)
		event_free(prune_ev);
	prune_ev = NULL;
	/* lookups in flight end now (their jobs are freed: stopping) */
	mx_resolver_free(&resolver);
	/* jobs waiting for a batch (one running ends on its own) */
	while (nready_jobs > 0)
		delivery_job_drop(ready_jobs[--nready_jobs]);
	free(ready_jobs);
	ready_jobs = NULL;
	userkey_wipe();
}

void
delivery_close_store(struct mailsrv *ms)
{
	store_close(&ms->store);
	SSL_CTX_free(ms->relay_ctx);
	ms->relay_ctx = NULL;
}
