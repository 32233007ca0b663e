/*
 * relay.h -- outbound SMTP to other domains (see relay.c).
 */
#ifndef MAILSRV_RELAY_H
#define MAILSRV_RELAY_H

#include <stddef.h>

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
 * The route of a domain from [mailsrv] relay_routes: host, port and
 * whether TLS is required (relay_tls_domains).  ERR_NOTFOUND: no route.
 */
int	relay_route(char *, size_t, int *, int *, const struct amanat_conf *,
	    const char *);
/*
 * Deliver msg (len bytes) to env->rcpts[rcpts[i]] for i < nrcpts over
 * host:port.  env, msg and ctx must stay valid until done(results, n,
 * arg) runs (always later, on the loop); results are in rcpts[] order,
 * valid during the callback.
 */
int	relay_start(struct event_base *, SSL_CTX *, const char *, const char *,
	    int, int, const struct queue_env *, const size_t *, size_t,
	    const unsigned char *, size_t, relay_done_fn, void *);

#endif
