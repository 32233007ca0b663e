/*
 * relay.h -- outbound SMTP to other domains (see relay.c).
 */
#ifndef MAILSRV_RELAY_H
#define MAILSRV_RELAY_H

#include <stddef.h>

#include <netinet/in.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "common/conf.h"
#include "mailsrv/queue/queue.h"

/* One recipient's outcome: a QUEUE_RCPT_* state and "code text". */
struct relay_result {
	int	state;
	char	status[512];
};

typedef void	(*relay_done_fn)(struct relay_result *, size_t, void *);

/*
 * One server to try.  host is the name TLS checks (SNI, and the
 * certificate when TLS is required) and logs show; addr, when not
 * empty, is the numeric address to connect to (else host is).
 */
struct relay_target {
	char	host[256];
	char	addr[INET6_ADDRSTRLEN];
	int	port;
};

/*
 * The route of a domain from [mailsrv] relay_routes: host, port and
 * whether TLS is required (relay_tls_domains).  ERR_NOTFOUND: no route.
 */
int	relay_route(char *, size_t, int *, int *, const struct amanat_conf *,
	    const char *);
/* 1 if mail to domain requires verified TLS (relay_tls_domains). */
int	relay_tls_required(const struct amanat_conf *, const char *);
/*
 * Deliver msg (len bytes) to env->rcpts[rcpts[i]] for i < nrcpts via
 * the first of targets[0..ntargets) (copied) that answers: a target
 * that refuses the connection, times out or closes before a 220
 * greeting, or greets with anything else, passes the turn to the next
 * (RFC 5321 5.1); after a 220 the session's outcome is final.  env, msg
 * and ctx must stay valid until done(results, n, arg) runs (on the
 * loop); results are in rcpts[] order, valid during the callback.
 */
int	relay_start(struct event_base *, SSL_CTX *, const char *,
	    const struct relay_target *, size_t, int,
	    const struct queue_env *, const size_t *, size_t,
	    const unsigned char *, size_t, relay_done_fn, void *);

#endif
