/*
 * keyclient.h -- the asynchronous client of the keyservice API, for the
 * daemons (mailsrv, docstore), on their libevent loop.
 *
 * Mutual TLS with the daemon's client certificate ([mailsrv_client] /
 * [docstore_client]), the node CA, keep-alive connections in a small pool
 * (at most max_conns), one request in flight per connection, requests
 * queued FIFO when every connection is busy (at most KEYCLIENT_QUEUE_MAX
 * waiting: beyond that ERR_TOOBIG at once).  Every call completes exactly
 * once through its callback, on the loop thread, never from inside
 * keyclient_call() itself: with the HTTP status and the parsed JSON body
 * (borrowed: valid during the callback), or status < 0 (an enum err) if
 * the service could not be reached or answered garbage, or the call timed
 * out (KEYCLIENT_TIMEOUT_MS).  A connection that fails is retried once on
 * a fresh connection for idempotent calls only (the caller says so).
 *
 * keyclient_free() completes every pending call with ERR_IO before
 * returning, so callers can rely on their callback for cleanup.
 */
#ifndef COMMON_KEYCLIENT_H
#define COMMON_KEYCLIENT_H

#include <stddef.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/ssl.h>

#define KEYCLIENT_QUEUE_MAX	4096
#define KEYCLIENT_TIMEOUT_MS	30000
#define KEYCLIENT_BODY_MAX	(16 * 1024 * 1024)

struct keyclient;

typedef void	(*keyclient_cb)(int, json_t *, void *);

/*
 * hostport: keyservice's [keyservice] listen; ctx: a client context
 * (tls_client_ctx_new with cert, key, ca, TLS_VERIFY_REQUIRE); the
 * server certificate is checked against the host part (IP or name).
 */
int	keyclient_new(struct keyclient **, struct event_base *, const char *,
	    SSL_CTX *, unsigned);
void	keyclient_free(struct keyclient **);

#define KEYCLIENT_IDEMPOTENT	0x01

/*
 * method "GET"/"POST"/..., path (already percent-encoded), body (a
 * reference is stolen; NULL for none).  0 or ERR_TOOBIG (queue full; the
 * callback is then not called).
 */
int	keyclient_call(struct keyclient *, const char *, const char *,
	    json_t *, int, keyclient_cb, void *);

/* Convenience wrappers over keyclient_call (docs/keyservice-api.md). */
int	keyclient_auth_password(struct keyclient *, const char *,
	    const char *, const char *, keyclient_cb, void *);
int	keyclient_datakey(struct keyclient *, const char *, const char *,
	    keyclient_cb, void *);
int	keyclient_unwrap(struct keyclient *, const char *, const char *,
	    keyclient_cb, void *);
int	keyclient_user(struct keyclient *, const char *, keyclient_cb,
	    void *);
int	keyclient_sign_raw(struct keyclient *, const void *, size_t,
	    keyclient_cb, void *);

/* Connections open and requests waiting, for stats and tests. */
size_t	keyclient_pending(struct keyclient *);

#endif
