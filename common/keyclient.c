/*
 * keyclient.c -- asynchronous mTLS client of the keyservice API (see
 * keyclient.h).
 *
 * Runs in: mailsrv and docstore, on their event loop thread only.
 * Failure policy: a connection that fails, times out or answers garbage
 * is dropped and its call completed (or retried once, see keyclient.h);
 * the client itself never fails after keyclient_new().  Out of memory is
 * fatal (xmalloc).
 *
 * Structure: a call (struct kc_call) is queued (kc->queue, FIFO), then in
 * flight on a connection (conn->call), then done (kc->done) until its
 * callback runs.  Callbacks run only from kc->later, a zero-delay event
 * (or from keyclient_free()), never from keyclient_call() or from inside
 * a bufferevent callback, so no caller ever sees a callback re-enter it
 * and the pool is consistent whenever user code runs.  Connections are
 * on kc->conns; idle ones are also on kc->idle, reused last-in first-out
 * (the warmest connection, and the ones at the tail may be closed by the
 * server's idle timeout without costing anything).
 *
 * Each call has its own timer (event), armed at acceptance; a call that
 * times out in flight takes its connection down with it, because the
 * response may still arrive.
 *
 * SECURITY: the server certificate is always verified (SSL_VERIFY_PEER
 * on each SSL, whatever the context says) and matched against the
 * configured host (IP SAN or DNS name, with SNI for names).  Request
 * texts (passwords for auth) are handed to the output buffer by
 * reference and wiped once written (the call's own copy, kept for a
 * retry, when the call is freed); received bytes are wiped in the
 * input buffer once parsed, and the parser wipes its body buffer (key
 * material from unwrap and datakey).  Copies that jansson's parser makes
 * internally are not wiped (a jansson limitation).
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/base64.h"
#include "common/err.h"
#include "common/httpc.h"
#include "common/keyclient.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define KC_HOST_MAX	256

struct kc_conn;

/*
 * A call.  req is the whole request text (wiped when freed); retried is
 * set once its single retry is used; status/json hold the answer while
 * the call waits on kc->done.
 */
struct kc_call {
	TAILQ_ENTRY(kc_call)	 entry;		/* kc->queue or kc->done */
	struct keyclient	*kc;
	struct kc_conn		*conn;		/* while in flight */
	struct event		*timer;
	char			*req;
	size_t			 reqlen;
	unsigned		 timeout_ms;
	int			 flags;
	int			 retried;
	int			 status;
	json_t			*json;
	keyclient_cb		 cb;
	void			*arg;
};

/* A connection; connected: the TLS handshake finished. */
struct kc_conn {
	TAILQ_ENTRY(kc_conn)	 entry;		/* kc->conns */
	TAILQ_ENTRY(kc_conn)	 idle_entry;	/* kc->idle */
	struct keyclient	*kc;
	struct bufferevent	*bev;
	struct httpc_parser	 parser;
	struct kc_call		*call;
	int			 idle;
	int			 connected;
	uint64_t		 id;
};

TAILQ_HEAD(kc_calls, kc_call);
TAILQ_HEAD(kc_conns, kc_conn);

struct keyclient {
	struct event_base	*base;
	SSL_CTX			*ctx;
	char			 host[KC_HOST_MAX];	/* name or IP */
	char			 hosthdr[KC_HOST_MAX + 8]; /* as configured */
	int			 host_ip;
	struct sockaddr_storage	 ss;
	int			 sslen;
	unsigned		 max_conns;
	unsigned		 timeout_ms;
	struct kc_conns		 conns;
	struct kc_conns		 idle;		/* head: last used */
	size_t			 nconns;
	struct kc_calls		 queue;
	size_t			 nqueued;
	size_t			 ninflight;
	struct kc_calls		 done;
	size_t			 ndone;
	struct event		*later;
	int			 freeing;
	int			 in_cb;
};

static uint64_t	kc_next_conn_id = 1;

static void	kc_readcb(struct bufferevent *, void *);
static void	kc_eventcb(struct bufferevent *, short, void *);
static void	kc_dispatch(struct keyclient *);

/* ------------------------------------------------------------ calls */

static void
kc_call_free(struct kc_call *call)
{
	if (call->timer != NULL)
		event_free(call->timer);
	xfreezero(call->req, call->reqlen);
	free(call);
}

/* The answer is known: the callback runs from kc->later. */
static void
kc_complete(struct kc_call *call, int status, json_t *json)
{
	struct keyclient	*kc = call->kc;

	event_del(call->timer);
	call->status = status;
	call->json = json;
	TAILQ_INSERT_TAIL(&kc->done, call, entry);
	kc->ndone++;
	event_active(kc->later, EV_TIMEOUT, 0);
}

static void
kc_run_callback(struct keyclient *kc, struct kc_call *call)
{
	kc->in_cb++;
	call->cb(call->status, call->json, call->arg);
	kc->in_cb--;
	json_decref(call->json);
	kc_call_free(call);
}

/* Run the callbacks of the calls done so far (not of later ones). */
static void
kc_later(evutil_socket_t fd, short what, void *arg)
{
	struct keyclient	*kc = arg;
	struct kc_calls		 now;
	struct kc_call		*call;

	TAILQ_INIT(&now);
	TAILQ_CONCAT(&now, &kc->done, entry);
	while ((call = TAILQ_FIRST(&now)) != NULL) {
		TAILQ_REMOVE(&now, call, entry);
		kc->ndone--;
		kc_run_callback(kc, call);
	}
}

static void
kc_dequeue(struct kc_call *call)
{
	TAILQ_REMOVE(&call->kc->queue, call, entry);
	call->kc->nqueued--;
}

/* ------------------------------------------------------ connections */

/* Detach the call in flight, if any. */
static struct kc_call *
kc_conn_take(struct kc_conn *conn)
{
	struct kc_call	*call = conn->call;

	if (call != NULL) {
		conn->call = NULL;
		call->conn = NULL;
		conn->kc->ninflight--;
	}
	return call;
}

/* Close and free a connection without a call in flight. */
static void
kc_conn_drop(struct kc_conn *conn, const char *reason, int graceful)
{
	struct keyclient	*kc = conn->kc;
	SSL			*ssl;

	if (conn->call != NULL)
		fatalx("keyclient: dropping a connection with a call");
	log_debug("keyclient conn=%llu closed host=%s reason=%s",
	    (unsigned long long)conn->id, kc->hosthdr, reason);
	TAILQ_REMOVE(&kc->conns, conn, entry);
	if (conn->idle)
		TAILQ_REMOVE(&kc->idle, conn, idle_entry);
	kc->nconns--;
	ssl = bufferevent_openssl_get_ssl(conn->bev);
	if (graceful && ssl != NULL && SSL_is_init_finished(ssl))
		(void)SSL_shutdown(ssl);	/* close_notify */
	/* frees the SSL and closes the socket (BEV_OPT_CLOSE_ON_FREE) */
	bufferevent_free(conn->bev);
	httpc_free(&conn->parser);
	free(conn);
	ERR_clear_error();
}

/*
 * The connection failed with its call in flight: retry the call once if
 * it was never sent or is idempotent, else complete it with ERR_IO.
 */
static void
kc_conn_fail(struct kc_conn *conn, const char *reason)
{
	struct keyclient	*kc = conn->kc;
	struct kc_call		*call;
	int			 sent = conn->connected;

	call = kc_conn_take(conn);
	kc_conn_drop(conn, reason, 0);
	if (call == NULL)
		return;
	if (!call->retried && !kc->freeing &&
	    (!sent || (call->flags & KEYCLIENT_IDEMPOTENT))) {
		call->retried = 1;
		TAILQ_INSERT_HEAD(&kc->queue, call, entry);
		kc->nqueued++;
		log_debug("keyclient retry host=%s reason=%s", kc->hosthdr,
		    reason);
	} else {
		log_info("keyclient call failed host=%s reason=%s",
		    kc->hosthdr, reason);
		err_set(ERR_IO, "keyservice %s: %s", kc->hosthdr, reason);
		kc_complete(call, ERR_IO, NULL);
	}
}

/* SNI and the certificate name check for the configured host. */
static int
kc_ssl_host(struct keyclient *kc, SSL *ssl)
{
	SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	if (kc->host_ip)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    kc->host) == 1 ? 0 : -1;
	if (SSL_set1_host(ssl, kc->host) != 1 ||
	    SSL_set_tlsext_host_name(ssl, kc->host) != 1)
		return -1;
	return 0;
}

/* Start a new connection (TLS handshake and all). */
static int
kc_conn_new(struct kc_conn **out, struct keyclient *kc)
{
	struct kc_conn	*conn;
	SSL		*ssl;
	int		 one = 1;

	*out = NULL;
	if ((ssl = SSL_new(kc->ctx)) == NULL) {
		(void)tls_error("SSL_new");
		return ERR_IO;
	}
	if (kc_ssl_host(kc, ssl) < 0) {
		SSL_free(ssl);
		(void)tls_error("certificate name check");
		return ERR_IO;
	}
	conn = xcalloc(1, sizeof(*conn));
	conn->kc = kc;
	conn->id = kc_next_conn_id++;
	conn->bev = bufferevent_openssl_socket_new(kc->base, -1, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (conn->bev == NULL) {
		SSL_free(ssl);
		free(conn);
		err_set(ERR_IO, "bufferevent_openssl_socket_new failed");
		return ERR_IO;
	}
	bufferevent_setcb(conn->bev, kc_readcb, NULL, kc_eventcb, conn);
	if (bufferevent_enable(conn->bev, EV_READ | EV_WRITE) < 0 ||
	    bufferevent_socket_connect(conn->bev,
	    (struct sockaddr *)&kc->ss, kc->sslen) < 0) {
		err_set(ERR_IO, "connect to %s: %s", kc->hosthdr,
		    strerror(errno));
		bufferevent_free(conn->bev);
		free(conn);
		return ERR_IO;
	}
	/*
	 * Whole requests are written at once: no Nagle delay behind the
	 * last handshake segment (40 ms with delayed ACKs).
	 */
	(void)setsockopt(bufferevent_getfd(conn->bev), IPPROTO_TCP,
	    TCP_NODELAY, &one, sizeof(one));
	httpc_init(&conn->parser, KEYCLIENT_BODY_MAX);
	TAILQ_INSERT_TAIL(&kc->conns, conn, entry);
	kc->nconns++;
	log_debug("keyclient conn=%llu connecting host=%s",
	    (unsigned long long)conn->id, kc->hosthdr);
	*out = conn;
	return 0;
}

/*
 * 1 if an idle connection is still usable: no input buffered, and the
 * socket has neither data (a TLS alert, close_notify) nor EOF pending.
 */
static int
kc_conn_alive(struct kc_conn *conn)
{
	evutil_socket_t	fd = bufferevent_getfd(conn->bev);
	char		c;
	ssize_t		n;

	if (fd < 0 ||
	    evbuffer_get_length(bufferevent_get_input(conn->bev)) != 0)
		return 0;
	n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* The last idle connection that is still alive, taken off the idle list. */
static struct kc_conn *
kc_conn_idle(struct keyclient *kc)
{
	struct kc_conn	*conn;

	while ((conn = TAILQ_FIRST(&kc->idle)) != NULL) {
		TAILQ_REMOVE(&kc->idle, conn, idle_entry);
		conn->idle = 0;
		if (kc_conn_alive(conn))
			return conn;
		kc_conn_drop(conn, "closed-while-idle", 0);
	}
	return NULL;
}

static void
kc_wipe_ref(const void *data, size_t len, void *arg)
{
	xfreezero((void *)data, len);
}

/*
 * Put the call on the connection.  The output buffer references a copy
 * of the request (kept by the call for a retry), wiped once written.
 */
static void
kc_send(struct kc_conn *conn, struct kc_call *call)
{
	struct evbuffer	*out = bufferevent_get_output(conn->bev);
	void		*copy;

	conn->call = call;
	call->conn = conn;
	conn->kc->ninflight++;
	copy = xmemdup(call->req, call->reqlen);
	if (evbuffer_add_reference(out, copy, call->reqlen, kc_wipe_ref,
	    NULL) < 0) {
		xfreezero(copy, call->reqlen);
		kc_conn_fail(conn, "output-error");
	}
}

/* Give waiting calls to idle connections, or to new ones. */
static void
kc_dispatch(struct keyclient *kc)
{
	struct kc_call	*call;
	struct kc_conn	*conn;

	while ((call = TAILQ_FIRST(&kc->queue)) != NULL) {
		if ((conn = kc_conn_idle(kc)) == NULL) {
			if (kc->nconns >= kc->max_conns)
				return;
			if (kc_conn_new(&conn, kc) < 0) {
				log_warnx("keyclient host=%s %s", kc->hosthdr,
				    err_msg());
				/* busy connections will take the queue */
				if (kc->nconns > 0)
					return;
				kc_dequeue(call);
				kc_complete(call, ERR_IO, NULL);
				continue;
			}
		}
		kc_dequeue(call);
		kc_send(conn, call);
	}
}

/* ------------------------------------------------------------ input */

/* A 2xx must carry JSON (or nothing, for 204/304). */
static int
kc_result(int status, json_t *json, size_t bodylen)
{
	if (status < 200 || status > 299 || json != NULL)
		return status;
	if (bodylen == 0 && (status == 204 || status == 304))
		return status;
	err_set(ERR_PROTO, "keyservice answered %d without a JSON body",
	    status);
	return ERR_PROTO;
}

/* A complete response: complete the call, keep or drop the connection. */
static void
kc_response(struct kc_conn *conn, int more)
{
	struct keyclient	*kc = conn->kc;
	struct httpc_parser	*p = &conn->parser;
	struct kc_call		*call;
	json_error_t		 jerr;
	json_t			*json = NULL;
	const void		*body;
	size_t			 len;
	int			 status, keep;

	status = httpc_status(p);
	body = httpc_body(p, &len);
	if (len > 0)
		json = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	status = kc_result(status, json, len);
	if (status < 0)
		log_info("keyclient response not JSON host=%s status=%d",
		    kc->hosthdr, httpc_status(p));
	/* nothing may follow a response: no request is outstanding */
	keep = httpc_keep_alive(p) && !more && !kc->freeing;
	httpc_reset(p);			/* wipes the body */
	call = kc_conn_take(conn);
	kc_complete(call, status, json);
	if (!keep) {
		kc_conn_drop(conn, more ? "unexpected-data" : "done", !more);
		return;
	}
	conn->idle = 1;
	TAILQ_INSERT_HEAD(&kc->idle, conn, idle_entry);
}

static void
kc_readcb(struct bufferevent *bev, void *arg)
{
	struct kc_conn		*conn = arg;
	struct keyclient	*kc = conn->kc;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_iovec	 v;
	size_t			 used;
	int			 rc;

	while (evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len > 0) {
		if (conn->call == NULL) {
			/* data on an idle connection: an error or goodbye */
			kc_conn_drop(conn, "unexpected-data", 0);
			break;
		}
		rc = httpc_feed(&conn->parser, v.iov_base, v.iov_len, &used);
		explicit_bzero(v.iov_base, used);
		evbuffer_drain(in, used);
		if (rc == ERR_AGAIN)
			continue;
		if (rc < 0) {
			log_info("keyclient bad response host=%s error=%s",
			    kc->hosthdr, httpc_error(&conn->parser));
			kc_complete(kc_conn_take(conn), rc, NULL);
			kc_conn_drop(conn, "bad-response", 0);
			break;
		}
		kc_response(conn, evbuffer_get_length(in) != 0);
		break;
	}
	kc_dispatch(kc);
}

static void
kc_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct kc_conn		*conn = arg;
	struct keyclient	*kc = conn->kc;
	unsigned long		 e;
	char			 reason[160];

	if (what & BEV_EVENT_CONNECTED) {
		conn->connected = 1;
		log_debug("keyclient conn=%llu connected host=%s",
		    (unsigned long long)conn->id, kc->hosthdr);
		return;
	}
	/* libevent may queue a bare SSL_ERROR_SYSCALL: not a library error */
	e = bufferevent_get_openssl_error(bev);
	if (what & BEV_EVENT_EOF)
		(void)snprintf(reason, sizeof(reason), "eof");
	else if (e != 0 && ERR_GET_LIB(e) != 0) {
		(void)snprintf(reason, sizeof(reason), "tls-error: ");
		ERR_error_string_n(e, reason + strlen(reason),
		    sizeof(reason) - strlen(reason));
	} else
		(void)snprintf(reason, sizeof(reason), "io-error: %s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	while (bufferevent_get_openssl_error(bev) != 0)
		continue;
	if (conn->call != NULL)
		kc_conn_fail(conn, reason);
	else
		kc_conn_drop(conn, reason, 0);
	kc_dispatch(kc);
}

static void
kc_call_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct kc_call		*call = arg;
	struct keyclient	*kc = call->kc;
	struct kc_conn		*conn = call->conn;

	log_info("keyclient call timed out host=%s after_ms=%u queued=%d",
	    kc->hosthdr, call->timeout_ms, conn == NULL);
	if (conn != NULL) {
		(void)kc_conn_take(conn);
		kc_conn_drop(conn, "timeout", 0);
	} else
		kc_dequeue(call);
	err_set(ERR_IO, "keyservice %s: timeout", kc->hosthdr);
	kc_complete(call, ERR_IO, NULL);
	kc_dispatch(kc);
}

/* ----------------------------------------------------------- client */

/*
 * Split "host:port" or "[v6]:port" into kc->host and the port, and
 * resolve it into kc->ss (numeric at once; a name with getaddrinfo).
 */
static int
kc_addr(struct keyclient *kc, const char *hostport)
{
	struct addrinfo	 hints, *res = NULL;
	const char	*port, *end;
	size_t		 hlen;
	long long	 pn;
	int		 rc, len = (int)sizeof(kc->ss);

	if (hostport[0] == '[') {
		end = strchr(hostport, ']');
		if (end == NULL || end[1] != ':')
			goto bad;
		hlen = (size_t)(end - hostport - 1);
		port = end + 2;
		hostport++;
	} else {
		if ((port = strrchr(hostport, ':')) == NULL ||
		    memchr(hostport, ':', (size_t)(port - hostport)) != NULL)
			goto bad;
		hlen = (size_t)(port - hostport);
		port++;
	}
	if (hlen == 0 || hlen >= sizeof(kc->host) ||
	    parse_ll(&pn, port, 1, 65535) < 0)
		goto bad;
	memcpy(kc->host, hostport, hlen);
	kc->host[hlen] = '\0';
	if (evutil_parse_sockaddr_port(kc->hosthdr, (struct sockaddr *)&kc->ss,
	    &len) == 0) {
		kc->sslen = len;
		kc->host_ip = 1;
		return 0;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(kc->host, port, &hints, &res)) != 0) {
		err_set(ERR_INVAL, "keyservice %s: %s", kc->hosthdr,
		    gai_strerror(rc));
		return ERR_INVAL;
	}
	memcpy(&kc->ss, res->ai_addr, res->ai_addrlen);
	kc->sslen = (int)res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
bad:
	err_set(ERR_INVAL, "keyservice address must be host:port: %.64s",
	    kc->hosthdr);
	return ERR_INVAL;
}

int
keyclient_new(struct keyclient **out, struct event_base *base,
    const char *hostport, SSL_CTX *ctx, unsigned max_conns)
{
	struct keyclient	*kc;
	int			 rc;

	*out = NULL;
	if (max_conns == 0 || ctx == NULL) {
		err_set(ERR_INVAL, "keyclient needs a TLS context and "
		    "max_conns >= 1");
		return ERR_INVAL;
	}
	kc = xcalloc(1, sizeof(*kc));
	if ((size_t)snprintf(kc->hosthdr, sizeof(kc->hosthdr), "%s",
	    hostport) >= sizeof(kc->hosthdr)) {
		free(kc);
		err_set(ERR_INVAL, "keyservice address too long");
		return ERR_INVAL;
	}
	if ((rc = kc_addr(kc, hostport)) < 0) {
		free(kc);
		return rc;
	}
	kc->base = base;
	kc->max_conns = max_conns;
	kc->timeout_ms = KEYCLIENT_TIMEOUT_MS;
	TAILQ_INIT(&kc->conns);
	TAILQ_INIT(&kc->idle);
	TAILQ_INIT(&kc->queue);
	TAILQ_INIT(&kc->done);
	if ((kc->later = event_new(base, -1, 0, kc_later, kc)) == NULL)
		fatalx("keyclient: event_new failed");
	SSL_CTX_up_ref(ctx);
	kc->ctx = ctx;
	*out = kc;
	return 0;
}

/*
 * Complete every call with ERR_IO (answers already in keep theirs) and
 * run the callbacks here; then free.  Callbacks may not free kc.
 */
void
keyclient_free(struct keyclient **kcp)
{
	struct keyclient	*kc = *kcp;
	struct kc_conn		*conn;
	struct kc_call		*call;

	if (kc == NULL)
		return;
	if (kc->in_cb)
		fatalx("keyclient_free called from a keyclient callback");
	kc->freeing = 1;
	err_set(ERR_IO, "keyservice client shut down");
	while ((conn = TAILQ_FIRST(&kc->conns)) != NULL) {
		call = kc_conn_take(conn);
		kc_conn_drop(conn, "shutdown", call == NULL);
		if (call != NULL)
			kc_complete(call, ERR_IO, NULL);
	}
	while ((call = TAILQ_FIRST(&kc->queue)) != NULL) {
		kc_dequeue(call);
		kc_complete(call, ERR_IO, NULL);
	}
	while ((call = TAILQ_FIRST(&kc->done)) != NULL) {
		TAILQ_REMOVE(&kc->done, call, entry);
		kc->ndone--;
		kc_run_callback(kc, call);
	}
	event_free(kc->later);
	SSL_CTX_free(kc->ctx);
	free(kc);
	*kcp = NULL;
}

void
keyclient_set_timeout(struct keyclient *kc, unsigned ms)
{
	kc->timeout_ms = ms != 0 ? ms : KEYCLIENT_TIMEOUT_MS;
}

size_t
keyclient_pending(struct keyclient *kc)
{
	return kc->nqueued + kc->ninflight + kc->ndone;
}

size_t
keyclient_conns(struct keyclient *kc)
{
	return kc->nconns;
}

/* A method is a token; a path is "/" and visible ASCII. */
static int
kc_target_ok(const char *method, const char *path)
{
	static const char	tchar[] = "!#$%&'*+-.^_`|~0123456789"
				    "abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
	const unsigned char	*s;

	if (method == NULL || *method == '\0' ||
	    method[strspn(method, tchar)] != '\0')
		return 0;
	if (path == NULL || path[0] != '/')
		return 0;
	for (s = (const unsigned char *)path; *s != '\0'; s++)
		if (*s <= 0x20 || *s >= 0x7f)
			return 0;
	return 1;
}

/* Accept a call whose body (bodylen bytes, may be 0) is serialized. */
static int
kc_submit(struct keyclient *kc, const char *method, const char *path,
    const char *body, size_t bodylen, int flags, keyclient_cb cb, void *arg)
{
	struct kc_call	*call;
	struct timeval	 tv;
	char		*head;
	int		 hlen;

	if (kc->freeing) {
		err_set(ERR_IO, "keyservice client is shutting down");
		return ERR_IO;
	}
	if (cb == NULL || !kc_target_ok(method, path)) {
		err_set(ERR_INVAL, "keyclient: bad method, path or callback");
		return ERR_INVAL;
	}
	if (kc->nqueued >= KEYCLIENT_QUEUE_MAX) {
		err_set(ERR_TOOBIG, "keyservice queue full (%d calls)",
		    KEYCLIENT_QUEUE_MAX);
		return ERR_TOOBIG;
	}
	hlen = xasprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\n%s"
	    "Content-Length: %zu\r\n\r\n", method, path, kc->hosthdr,
	    bodylen > 0 ? "Content-Type: application/json\r\n" : "",
	    bodylen);
	call = xcalloc(1, sizeof(*call));
	call->kc = kc;
	call->reqlen = (size_t)hlen + bodylen;
	call->req = xmalloc(call->reqlen);
	memcpy(call->req, head, (size_t)hlen);
	if (bodylen > 0)
		memcpy(call->req + hlen, body, bodylen);
	free(head);
	call->flags = flags;
	call->cb = cb;
	call->arg = arg;
	if ((call->timer = evtimer_new(kc->base, kc_call_timeout,
	    call)) == NULL)
		fatalx("keyclient: evtimer_new failed");
	call->timeout_ms = kc->timeout_ms;
	tv.tv_sec = call->timeout_ms / 1000;
	tv.tv_usec = (call->timeout_ms % 1000) * 1000;
	evtimer_add(call->timer, &tv);
	TAILQ_INSERT_TAIL(&kc->queue, call, entry);
	kc->nqueued++;
	kc_dispatch(kc);
	return 0;
}

/* Serialize body (reference stolen), submit, wipe the text. */
static int
kc_submit_json(struct keyclient *kc, const char *method, const char *path,
    json_t *body, int flags, keyclient_cb cb, void *arg)
{
	char	*text = NULL;
	size_t	 len = 0;
	int	 rc;

	if (body != NULL) {
		text = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		if (text == NULL) {
			err_set(ERR_INVAL, "keyclient: body not serializable");
			return ERR_INVAL;
		}
		len = strlen(text);
	}
	rc = kc_submit(kc, method, path, text, len, flags, cb, arg);
	if (text != NULL)
		xfreezero(text, len + 1);
	return rc;
}

int
keyclient_call(struct keyclient *kc, const char *method, const char *path,
    json_t *body, int flags, keyclient_cb cb, void *arg)
{
	return kc_submit_json(kc, method, path, body, flags, cb, arg);
}

/* ---------------------------------------------------------- wrappers */

/* A JSON string member; 0, or ERR_INVAL (NULL or not UTF-8). */
static int
kc_set_str(json_t *o, const char *key, const char *value)
{
	json_t	*v;

	if (value == NULL || (v = json_string(value)) == NULL) {
		err_set(ERR_INVAL, "keyclient: %s missing or not UTF-8", key);
		return ERR_INVAL;
	}
	return json_object_set_new(o, key, v) == 0 ? 0 : ERR_INVAL;
}

/* Wipe a string member in place before the object is freed. */
static void
kc_wipe_str(json_t *o, const char *key)
{
	json_t	*v = json_object_get(o, key);

	if (json_is_string(v))
		explicit_bzero((char *)json_string_value(v),
		    json_string_length(v));
}

int
keyclient_auth_password(struct keyclient *kc, const char *address,
    const char *password, const char *source, keyclient_cb cb, void *arg)
{
	json_t	*o;
	char	*text = NULL;
	size_t	 len = 0;
	int	 rc;

	if ((o = json_object()) == NULL)
		fatalx("keyclient: json_object failed");
	if ((rc = kc_set_str(o, "address", address)) < 0 ||
	    (rc = kc_set_str(o, "password", password)) < 0 ||
	    (source != NULL && (rc = kc_set_str(o, "source", source)) < 0))
		goto done;
	if ((text = json_dumps(o, JSON_COMPACT)) == NULL) {
		rc = ERR_INVAL;
		goto done;
	}
	len = strlen(text);
	rc = kc_submit(kc, "POST", "/v1/auth/password", text, len, 0, cb,
	    arg);
done:
	if (text != NULL)
		xfreezero(text, len + 1);
	kc_wipe_str(o, "password");
	json_decref(o);
	return rc;
}

/* POST path {k1: v1, k2: v2}, idempotent. */
static int
kc_post2(struct keyclient *kc, const char *path, const char *k1,
    const char *v1, const char *k2, const char *v2, keyclient_cb cb,
    void *arg)
{
	json_t	*o;
	int	 rc;

	if ((o = json_object()) == NULL)
		fatalx("keyclient: json_object failed");
	if ((rc = kc_set_str(o, k1, v1)) < 0 ||
	    (k2 != NULL && (rc = kc_set_str(o, k2, v2)) < 0)) {
		json_decref(o);
		return rc;
	}
	return kc_submit_json(kc, "POST", path, o, KEYCLIENT_IDEMPOTENT, cb,
	    arg);
}

int
keyclient_datakey(struct keyclient *kc, const char *key_id,
    const char *context, keyclient_cb cb, void *arg)
{
	return kc_post2(kc, "/v1/keys/datakey", "key_id", key_id, "context",
	    context, cb, arg);
}

int
keyclient_unwrap(struct keyclient *kc, const char *wrapped,
    const char *context, keyclient_cb cb, void *arg)
{
	return kc_post2(kc, "/v1/keys/unwrap", "wrapped", wrapped, "context",
	    context, cb, arg);
}

int
keyclient_user(struct keyclient *kc, const char *address, keyclient_cb cb,
    void *arg)
{
	static const char	 prefix[] = "/v1/users/";
	static const char	 hex[] = "0123456789ABCDEF";
	const unsigned char	*s;
	char			*path, *p;
	int			 rc;

	if (address == NULL || *address == '\0') {
		err_set(ERR_INVAL, "keyclient: empty address");
		return ERR_INVAL;
	}
	/* RFC 3986 unreserved characters stay, all else is %XX */
	path = xreallocarray(NULL, strlen(address) + 1, 3 + sizeof(prefix));
	memcpy(path, prefix, sizeof(prefix) - 1);
	p = path + sizeof(prefix) - 1;
	for (s = (const unsigned char *)address; *s != '\0'; s++) {
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || strchr("-._~", *s) != NULL)
			*p++ = (char)*s;
		else {
			*p++ = '%';
			*p++ = hex[*s >> 4];
			*p++ = hex[*s & 0x0f];
		}
	}
	*p = '\0';
	rc = kc_submit(kc, "GET", path, NULL, 0, KEYCLIENT_IDEMPOTENT, cb,
	    arg);
	free(path);
	return rc;
}

int
keyclient_sign_raw(struct keyclient *kc, const void *data, size_t len,
    keyclient_cb cb, void *arg)
{
	char	*b64;
	int	 rc;

	if (data == NULL && len > 0) {
		err_set(ERR_INVAL, "keyclient: no data to sign");
		return ERR_INVAL;
	}
	b64 = b64_encode(data != NULL ? data : "", len);
	rc = kc_post2(kc, "/v1/sign/raw", "data", b64, NULL, NULL, cb, arg);
	free(b64);
	return rc;
}
