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
 *
 * Details of the contract:
 *   - a callback may call keyclient_call() again, but never
 *     keyclient_free() on its own client (a bug: fatalx);
 *   - the timeout runs from keyclient_call(), waiting in the queue
 *     included; when it fires the call completes with ERR_IO and its
 *     connection, if any, is dropped;
 *   - retries (at most one per call, on a new connection): a call whose
 *     connection failed before the TLS handshake finished was never sent
 *     and is always retried; after that only KEYCLIENT_IDEMPOTENT calls
 *     are retried, others complete with ERR_IO.  Idle connections are
 *     checked before reuse, and one the server has closed is discarded
 *     without counting as a try;
 *   - status < 0: ERR_IO (unreachable, TLS failure, connection lost,
 *     timeout), ERR_PROTO (malformed response, or a 2xx body that is
 *     not JSON), ERR_TOOBIG (response beyond KEYCLIENT_BODY_MAX or the
 *     head limits of common/httpc.h);
 *   - json: the parsed body, NULL for an empty body (204) or an error
 *     status whose body is not JSON; the caller may json_incref() it.
 *
 * SECURITY: request texts are wiped once written; response bytes are
 * wiped in the receive buffers after parsing.  Key material in the json
 * passed to callbacks is the caller's to wipe.
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
 * (tls_client_ctx_new with cert, key, ca, TLS_VERIFY_REQUIRE; the
 * client takes its own reference); the server certificate is always
 * verified, and checked against the host part (IP or name).  A name is
 * resolved once, here (blocking: call at start-up).  max_conns >= 1.
 * ERR_INVAL with err_msg() on a bad address.
 */
int	keyclient_new(struct keyclient **, struct event_base *, const char *,
	    SSL_CTX *, unsigned);
void	keyclient_free(struct keyclient **);

#define KEYCLIENT_IDEMPOTENT	0x01

/*
 * method "GET"/"POST"/..., path (already percent-encoded), body (a
 * reference is stolen, also on failure; NULL for none), flags
 * (KEYCLIENT_IDEMPOTENT).  0, or the callback is not called and:
 * ERR_TOOBIG (queue full), ERR_INVAL (bad method, path or body),
 * ERR_IO (from a callback run by keyclient_free()).
 */
int	keyclient_call(struct keyclient *, const char *, const char *,
	    json_t *, int, keyclient_cb, void *);

/*
 * Convenience wrappers over keyclient_call (docs/keyservice-api.md):
 *   auth_password(address, password, source): POST /v1/auth/password,
 *     not idempotent (it counts toward throttling); the request text is
 *     wiped after sending; source may be NULL;
 *   datakey(key_id, context): POST /v1/keys/datakey, idempotent;
 *   unwrap(wrapped, context): POST /v1/keys/unwrap, idempotent;
 *   user(address): GET /v1/users/<address percent-encoded>, idempotent;
 *   sign_raw(data, len): POST /v1/sign/raw {"data": base64}, idempotent.
 * Same returns as keyclient_call.
 */
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

/* Calls accepted whose callback has not run yet (stats, tests). */
size_t	keyclient_pending(struct keyclient *);
/* Connections open (connecting, busy or idle; <= max_conns). */
size_t	keyclient_conns(struct keyclient *);

/*
 * Timeout of the calls accepted from now on, in milliseconds (0: back
 * to KEYCLIENT_TIMEOUT_MS).  For tests and operators' knobs.
 */
void	keyclient_set_timeout(struct keyclient *, unsigned);

#endif
