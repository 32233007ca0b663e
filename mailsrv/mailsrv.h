/*
 * mailsrv.h -- shared state of the mail daemon's modules.
 */
#ifndef MAILSRV_MAILSRV_H
#define MAILSRV_MAILSRV_H

#include <stdint.h>

#include "common/auditsvc.h"
#include "common/daemon.h"
#include "common/http.h"
#include "common/keyclient.h"
#include "common/net.h"
#include "common/worker.h"

enum smtp_service {
	SMTP_SVC_MX = 0,	/* port 25: inbound, STARTTLS optional */
	SMTP_SVC_SUBMISSION,	/* port 587: STARTTLS required before AUTH */
	SMTP_SVC_SUBMISSIONS,	/* port 465: implicit TLS */
};

struct queue;
struct store;

struct mailsrv {
	struct daemon		*d;
	char			*dir;		/* <datadir>/mailsrv */
	struct net_server	*smtp;
	struct net_server	*imap;
	struct keyclient	*kc;		/* keyservice, mTLS */
	struct worker_pool	*workers;
	struct queue		*queue;		/* NULL until the key is in */
	struct store		*store;
	char			**domains;	/* local domains (keyservice) */
	size_t			 ndomains;
	int			 domains_ok;	/* fetched at least once */
	struct event		*bootstrap_ev;
	struct event		*domains_ev;
	struct event		*sched_ev;
	struct event		*kick_ev;
	int			 delivering;	/* deliveries in flight */
	int			 stopping;
	SSL_CTX			*relay_ctx;	/* outbound SMTP */
	struct http_server	*api;		/* admin and audit API */
	SSL_CTX			*api_tls;	/* mutual TLS */
	struct auditsvc		*audit;
};

/* Connection limits of the SMTP (imap = 0) or IMAP (imap = 1) server. */
void	mailsrv_limits(struct net_limits *, const struct amanat_conf *, int);
/* 1 if the domain (lower-case) is one of the node's. */
int	mailsrv_local_domain(struct mailsrv *, const char *);
/*
 * A local user's address as the directory spells it, in place: keyservice
 * lower-cases addresses, and mailboxes and their keys are named by them.
 */
void	mailsrv_local_addr(char *);

/*
 * mailsrv.c: the keyservice client, local domains, queue key bootstrap
 * (asynchronous; retried until keyservice answers).
 */
int	mailsrv_link_start(struct mailsrv *);
void	mailsrv_link_stop(struct mailsrv *);

/* api.c: the HTTPS admin and audit API. */
int	mailsrv_api_start(struct mailsrv *);
void	mailsrv_api_stop(struct mailsrv *);
/* audit glue (mailsrv.c): open the log, sign checkpoints via keyservice. */
int	mailsrv_audit_start(struct mailsrv *);
void	mailsrv_audit_stop(struct mailsrv *);

int	smtp_server_start(struct mailsrv *);
int	imap_server_start(struct mailsrv *);
void	imap_server_stop(struct mailsrv *);
/*
 * The mailboxes of user addr changed (a delivery, another session): its
 * sessions in IDLE look now instead of at the next poll.  Loop thread.
 */
void	imap_notify_user(struct mailsrv *, const char *);

/* delivery.c: the queue runner (local delivery into the store). */
int	delivery_start(struct mailsrv *);
void	delivery_stop(struct mailsrv *);
/*
 * Keep queue id from being delivered (an admin change in progress):
 * 0, or ERR_EXISTS while a delivery of it runs.  Loop thread only.
 */
int	delivery_hold(struct mailsrv *, const char *);
void	delivery_release(struct mailsrv *, const char *);
/* Run due deliveries soon (after a commit). */
void	delivery_kick(struct mailsrv *);
/* Last, once workers and keyservice callbacks are done. */
void	delivery_close_store(struct mailsrv *);
/*
 * Direct delivery ([mailsrv] direct_delivery): store the message that
 * writer w holds in memory in the INBOX of each of env's recipients, in
 * the next delivery batch, without queueing it.  Returns -1 when it does
 * not apply (a recipient not local or asking NOTIFY=SUCCESS, a data key
 * not cached, the message not in memory, the knob off): queue it.  Else
 * 0, and cb(rc, id, arg) follows on the loop: rc 0 when every copy is
 * durable; else rc < 0, and the recipients stored are marked delivered
 * in env (queue the message for the others).  w and env must stay
 * untouched until then; env->id is set to the writer's id.
 */
struct queue_writer;
struct queue_env;
typedef void	(*delivery_direct_cb)(int, const char *, void *);
int	delivery_direct(struct mailsrv *, struct queue_writer *,
	    struct queue_env *, delivery_direct_cb, void *);

#endif
