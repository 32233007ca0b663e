/*
 * net.c -- listeners and connections on libevent (see net.h).
 *
 * Runs in: every daemon, on its event loop thread only.
 * Failure policy: per-connection errors close that connection and never
 * the server; accept errors (EMFILE) pause accepting for a moment instead
 * of spinning.
 * SECURITY: the number of live connections, their idle time and their
 * queued output are bounded; STARTTLS discards plaintext pipelined after
 * the command.
 *
 * Lifetime: a conn is freed only from net's own event callbacks, never
 * while a protocol callback is on the stack: net_conn_close/abort and the
 * STARTTLS switch are deferred through conn->later, a zero-delay event.
 * Plaintext bufferevents do not own the fd (so STARTTLS can reuse it);
 * TLS bufferevents own fd and SSL (BEV_OPT_CLOSE_ON_FREE).
 *
 * Closing: output is flushed (at most NET_CLOSE_MS, by a timer on
 * conn->later, so a peer that never reads or never finishes its TLS
 * handshake cannot keep a conn), then TLS sends close_notify, the write
 * side is shut down and input is drained until the peer closes (at most
 * NET_LINGER_MS): closing with unread input would make the kernel send
 * a reset that can destroy the last reply in flight (a lingering close,
 * as Apache and nginx do).
 *
 * Eviction: live conns sit in an LRU list (touched on input).  At
 * max_conns a new accept evicts the head; conns that are closing are
 * off the list and do not count, their flush bounded by NET_CLOSE_MS.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>

#include "common/err.h"
#include "common/log.h"
#include "common/net.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define NET_CLOSE_MS		5000	/* flush budget of a closing conn */
#define NET_LINGER_MS		2000	/* reading what the peer still sends */
#define NET_ACCEPT_PAUSE_MS	100	/* after EMFILE/ENFILE */
#define NET_FD_RESERVE		64	/* fds kept for files, LMDB, logs */
#define NET_BACKLOG		1024

#define C_CLOSING	0x01	/* close after flush */
#define C_DEAD		0x02	/* free at next later event */
#define C_PAUSED	0x04
#define C_TLS		0x08
#define C_STARTTLS	0x10	/* switch to TLS once output is flushed */
#define C_RESUME	0x20	/* run on_read from later event */
#define C_LISTED	0x40	/* on the LRU list, counted */
#define C_LINGER	0x80	/* output done, write side shut, draining */

struct net_listener {
	struct net_server	*srv;
	struct evconnlistener	*evl;
	struct event		*pause_ev;
	int			 mode;
	int			 port;
	void			*arg;
};

struct net_conn {
	TAILQ_ENTRY(net_conn)	 lru;
	TAILQ_ENTRY(net_conn)	 all;
	struct net_server	*srv;
	struct net_listener	*l;
	struct bufferevent	*bev;
	struct event		*later;
	evutil_socket_t		 fd;
	uint64_t		 id;
	int			 flags;
	const char		*reason;
	void			*data;
	char			 peer[96];
	char			 peer_ip[64];
	char			 local[96];
};

TAILQ_HEAD(conn_list, net_conn);

struct net_server {
	struct event_base	*base;
	char			*name;
	struct net_limits	 lim;
	struct net_ops		 ops;
	void			*arg;
	SSL_CTX			*tls;
	struct net_listener	**listeners;
	size_t			 nlisteners;
	struct conn_list	 lru;	/* live, least recently active first */
	struct conn_list	 all;
	unsigned		 nlive;
};

static uint64_t	net_next_id = 1;

static void	conn_readcb(struct bufferevent *, void *);
static void	conn_writecb(struct bufferevent *, void *);
static void	conn_eventcb(struct bufferevent *, short, void *);
static void	conn_later(evutil_socket_t, short, void *);

/* ------------------------------------------------------------------ */

static void
fmt_addr(char *out, size_t outlen, char *ip, size_t iplen,
    const struct sockaddr *sa, socklen_t salen)
{
	char	host[64], serv[16];

	if (getnameinfo(sa, salen, host, sizeof(host), serv, sizeof(serv),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(out, outlen, "unknown");
		if (ip != NULL)
			snprintf(ip, iplen, "unknown");
		return;
	}
	if (sa->sa_family == AF_INET6)
		snprintf(out, outlen, "[%s]:%s", host, serv);
	else
		snprintf(out, outlen, "%s:%s", host, serv);
	if (ip != NULL)
		snprintf(ip, iplen, "%s", host);
}

static void
conn_set_timeouts(struct net_conn *c, unsigned ms)
{
	struct timeval	tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	bufferevent_set_timeouts(c->bev, &tv, &tv);
}

static void
conn_unlist(struct net_conn *c)
{
	if (c->flags & C_LISTED) {
		TAILQ_REMOVE(&c->srv->lru, c, lru);
		c->flags &= ~C_LISTED;
		c->srv->nlive--;
	}
}

static void
conn_free(struct net_conn *c, const char *reason)
{
	struct net_server	*srv = c->srv;

	conn_unlist(c);
	TAILQ_REMOVE(&srv->all, c, all);
	if (srv->ops.on_close != NULL)
		srv->ops.on_close(c, reason);
	log_debug("%016llx net closed peer=%s reason=%s",
	    (unsigned long long)c->id, c->peer, reason);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (!(c->flags & C_TLS) && c->fd >= 0)
		close(c->fd);
	event_free(c->later);
	free(c);
}

static void
conn_schedule(struct net_conn *c)
{
	event_active(c->later, 0, 0);
}

static void
conn_timer(struct net_conn *c, unsigned ms)
{
	struct timeval	tv = { ms / 1000, (ms % 1000) * 1000 };

	event_add(c->later, &tv);
}

/* Output is flushed: say goodbye at the TLS layer, then drain. */
static void
conn_linger(struct net_conn *c)
{
	SSL	*ssl;

	if (c->flags & C_LINGER)
		return;
	c->flags |= C_LINGER;
	if ((c->flags & C_TLS) && (ssl = bufferevent_openssl_get_ssl(c->bev))
	    != NULL && SSL_is_init_finished(ssl))
		(void)SSL_shutdown(ssl);	/* close_notify */
	(void)shutdown(c->fd, SHUT_WR);
	bufferevent_enable(c->bev, EV_READ);
	conn_timer(c, NET_LINGER_MS);
}

static int
conn_attach_bev(struct net_conn *c, SSL *ssl, int accepting)
{
	struct event_base	*base = c->srv->base;

	if (ssl == NULL) {
		c->bev = bufferevent_socket_new(base, c->fd, 0);
	} else {
		c->bev = bufferevent_openssl_socket_new(base, c->fd, ssl,
		    accepting ? BUFFEREVENT_SSL_ACCEPTING :
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		if (c->bev == NULL) {
			SSL_free(ssl);
		} else {
			bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
			c->flags |= C_TLS;
		}
	}
	if (c->bev == NULL) {
		err_set(ERR_GENERIC, "cannot create bufferevent");
		return ERR_GENERIC;
	}
	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	conn_set_timeouts(c, c->srv->lim.idle_ms);
	if (!(c->flags & C_PAUSED))
		bufferevent_enable(c->bev, EV_READ);
	bufferevent_enable(c->bev, EV_WRITE);
	return 0;
}

static SSL *
conn_new_ssl(struct net_conn *c)
{
	SSL	*ssl;

	if (c->srv->tls == NULL || (ssl = SSL_new(c->srv->tls)) == NULL)
		return NULL;
	return ssl;
}

/* ------------------------------------------------------------------ */

static void
server_evict_one(struct net_server *srv)
{
	struct net_conn	*victim = TAILQ_FIRST(&srv->lru);

	if (victim == NULL)
		return;
	log_info("%016llx net evicted peer=%s reason=connection-limit "
	    "limit=%u", (unsigned long long)victim->id, victim->peer,
	    srv->lim.max_conns);
	if (srv->ops.on_evict != NULL && !(victim->flags & C_CLOSING))
		srv->ops.on_evict(victim);
	net_conn_close(victim, "evicted");
}

static void
listener_resume(evutil_socket_t fd, short ev, void *arg)
{
	struct net_listener	*l = arg;

	evconnlistener_enable(l->evl);
}

static void
listener_errorcb(struct evconnlistener *evl, void *arg)
{
	struct net_listener	*l = arg;
	struct timeval		 tv = { 0, NET_ACCEPT_PAUSE_MS * 1000 };

	log_warn("net accept failed port=%d", l->port);
	evconnlistener_disable(evl);
	evtimer_add(l->pause_ev, &tv);
}

static void
listener_acceptcb(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct net_listener	*l = arg;
	struct net_server	*srv = l->srv;
	struct net_conn		*c;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);
	SSL			*ssl = NULL;
	int			 one = 1;

	while (srv->nlive >= srv->lim.max_conns && srv->nlive > 0)
		server_evict_one(srv);
	/* replies are whole; don't let them wait for a delayed ACK */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	c = xcalloc(1, sizeof(*c));
	c->srv = srv;
	c->l = l;
	c->fd = fd;
	c->id = net_next_id++;
	c->later = event_new(srv->base, -1, 0, conn_later, c);
	if (c->later == NULL)
		fatalx("event_new failed");
	fmt_addr(c->peer, sizeof(c->peer), c->peer_ip, sizeof(c->peer_ip),
	    sa, (socklen_t)salen);
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
		fmt_addr(c->local, sizeof(c->local), NULL, 0,
		    (struct sockaddr *)&ss, sslen);
	TAILQ_INSERT_TAIL(&srv->all, c, all);
	TAILQ_INSERT_TAIL(&srv->lru, c, lru);
	c->flags |= C_LISTED;
	srv->nlive++;

	if (l->mode == NET_TLS && (ssl = conn_new_ssl(c)) == NULL) {
		log_warnx("%016llx net no TLS context peer=%s",
		    (unsigned long long)c->id, c->peer);
		conn_free(c, "tls-unavailable");
		return;
	}
	if (conn_attach_bev(c, ssl, 1) < 0) {
		conn_free(c, "bufferevent");
		return;
	}
	log_debug("%016llx net accepted peer=%s local=%s tls=%d",
	    (unsigned long long)c->id, c->peer, c->local, l->mode == NET_TLS);
	if (srv->ops.on_open != NULL)
		srv->ops.on_open(c);
}

/* ------------------------------------------------------------------ */

static void
conn_dispatch_read(struct net_conn *c)
{
	struct evbuffer	*in = bufferevent_get_input(c->bev);

	if (c->flags & (C_CLOSING | C_DEAD | C_PAUSED | C_STARTTLS))
		return;
	if (evbuffer_get_length(in) == 0)
		return;
	c->srv->ops.on_read(c, in);
}

static void
conn_readcb(struct bufferevent *bev, void *arg)
{
	struct net_conn	*c = arg;

	if (c->flags & (C_CLOSING | C_DEAD)) {
		evbuffer_drain(bufferevent_get_input(bev),
		    evbuffer_get_length(bufferevent_get_input(bev)));
		return;
	}
	net_conn_touch(c);
	conn_dispatch_read(c);
}

static void
conn_do_starttls(struct net_conn *c)
{
	SSL	*ssl;

	c->flags &= ~C_STARTTLS;
	bufferevent_free(c->bev);
	c->bev = NULL;
	if ((ssl = conn_new_ssl(c)) == NULL || conn_attach_bev(c, ssl, 1) < 0) {
		c->flags |= C_DEAD;
		c->reason = "starttls-failed";
		conn_schedule(c);
		return;
	}
	log_debug("%016llx net starttls peer=%s", (unsigned long long)c->id,
	    c->peer);
}

static void
conn_writecb(struct bufferevent *bev, void *arg)
{
	struct net_conn	*c = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (c->flags & C_CLOSING) {
		conn_linger(c);
		return;
	}
	if (c->flags & C_STARTTLS)
		conn_do_starttls(c);
}

static void
conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct net_conn	*c = arg;
	const char	*reason;

	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_TIMEOUT) {
		if (c->flags & C_CLOSING) {
			conn_free(c, c->reason);
			return;
		}
		log_info("%016llx net timeout peer=%s",
		    (unsigned long long)c->id, c->peer);
		if (c->srv->ops.on_timeout != NULL)
			c->srv->ops.on_timeout(c);
		net_conn_close(c, "timeout");
		return;
	}
	if (what & BEV_EVENT_EOF) {
		reason = "peer-closed";
	} else {
		reason = (c->flags & C_TLS) ? "tls-error" : "io-error";
		if (c->flags & C_TLS) {
			unsigned long	e = bufferevent_get_openssl_error(bev);
			char		buf[160];

			if (e != 0) {
				ERR_error_string_n(e, buf, sizeof(buf));
				log_info("%016llx net tls error peer=%s "
				    "reason=\"%s\"", (unsigned long long)c->id,
				    c->peer, buf);
			}
			while (bufferevent_get_openssl_error(bev) != 0)
				;
		}
	}
	conn_free(c, c->flags & C_CLOSING ? c->reason : reason);
}

static void
conn_later(evutil_socket_t fd, short ev, void *arg)
{
	struct net_conn	*c = arg;

	if ((c->flags & C_DEAD) ||
	    ((c->flags & C_CLOSING) && (ev & EV_TIMEOUT))) {
		conn_free(c, c->reason);	/* abort, or time is up */
		return;
	}
	if ((c->flags & C_CLOSING) &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		conn_linger(c);
		return;
	}
	if ((c->flags & C_STARTTLS) &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		conn_do_starttls(c);
		return;
	}
	if (c->flags & C_RESUME) {
		c->flags &= ~C_RESUME;
		conn_dispatch_read(c);
	}
}

/* ------------------------------------------------------------------ */

int
net_server_new(struct net_server **out, struct event_base *base,
    const char *name, const struct net_limits *lim,
    const struct net_ops *ops, void *arg)
{
	struct net_server	*srv;

	srv = xcalloc(1, sizeof(*srv));
	srv->base = base;
	srv->name = xstrdup(name);
	srv->ops = *ops;
	srv->arg = arg;
	TAILQ_INIT(&srv->lru);
	TAILQ_INIT(&srv->all);
	net_server_set_limits(srv, lim);
	*out = srv;
	return 0;
}

void
net_server_set_limits(struct net_server *srv, const struct net_limits *lim)
{
	long	nofile = raise_nofile_limit();

	srv->lim = *lim;
	if (srv->lim.max_conns == 0)
		srv->lim.max_conns = 1;
	if (nofile > 0 && nofile < NET_FD_RESERVE * 2)
		nofile = NET_FD_RESERVE * 2;
	if (nofile > 0 && srv->lim.max_conns > (unsigned long)nofile -
	    NET_FD_RESERVE) {
		log_warnx("%s max_connections %u exceeds the open file limit; "
		    "using %ld", srv->name, srv->lim.max_conns,
		    nofile - NET_FD_RESERVE);
		srv->lim.max_conns = (unsigned)(nofile - NET_FD_RESERVE);
	}
}

int
net_server_listen(struct net_server *srv, const char *hostport, int mode,
    void *arg)
{
	struct sockaddr_storage	 ss;
	int			 sslen = sizeof(ss);
	struct net_listener	*l;
	struct sockaddr_storage	 bound;
	socklen_t		 blen = sizeof(bound);
	char			 addr[128];

	if (evutil_parse_sockaddr_port(hostport, (struct sockaddr *)&ss,
	    &sslen) < 0) {
		err_set(ERR_INVAL, "bad listen address '%s'", hostport);
		return ERR_INVAL;
	}
	l = xcalloc(1, sizeof(*l));
	l->srv = srv;
	l->mode = mode;
	l->arg = arg;
	l->evl = evconnlistener_new_bind(srv->base, listener_acceptcb, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    NET_BACKLOG, (struct sockaddr *)&ss, sslen);
	if (l->evl == NULL) {
		err_set(ERR_IO, "listen on %s: %s", hostport, strerror(errno));
		free(l);
		return ERR_IO;
	}
	evconnlistener_set_error_cb(l->evl, listener_errorcb);
	l->pause_ev = evtimer_new(srv->base, listener_resume, l);
	if (getsockname(evconnlistener_get_fd(l->evl),
	    (struct sockaddr *)&bound, &blen) == 0) {
		fmt_addr(addr, sizeof(addr), NULL, 0,
		    (struct sockaddr *)&bound, blen);
		l->port = ((struct sockaddr *)&bound)->sa_family == AF_INET6 ?
		    ntohs(((struct sockaddr_in6 *)&bound)->sin6_port) :
		    ntohs(((struct sockaddr_in *)&bound)->sin_port);
	}
	srv->listeners = xreallocarray(srv->listeners, srv->nlisteners + 1,
	    sizeof(*srv->listeners));
	srv->listeners[srv->nlisteners++] = l;
	log_info("%s listening addr=%s tls=%s", srv->name, hostport,
	    mode == NET_TLS ? "implicit" : "plain");
	return 0;
}

int
net_server_port(struct net_server *srv, size_t i)
{
	return i < srv->nlisteners ? srv->listeners[i]->port : -1;
}

void
net_server_set_tls(struct net_server *srv, SSL_CTX *ctx)
{
	if (ctx != NULL)
		SSL_CTX_up_ref(ctx);
	SSL_CTX_free(srv->tls);
	srv->tls = ctx;
}

unsigned
net_server_nconns(struct net_server *srv)
{
	return srv->nlive;
}

void *
net_server_arg(struct net_server *srv)
{
	return srv->arg;
}

void
net_server_free(struct net_server **srvp)
{
	struct net_server	*srv = *srvp;
	struct net_conn		*c;
	size_t			 i;

	if (srv == NULL)
		return;
	for (i = 0; i < srv->nlisteners; i++) {
		evconnlistener_free(srv->listeners[i]->evl);
		event_free(srv->listeners[i]->pause_ev);
		free(srv->listeners[i]);
	}
	free(srv->listeners);
	while ((c = TAILQ_FIRST(&srv->all)) != NULL) {
		SSL	*ssl = net_conn_ssl(c);

		if (ssl != NULL && !(c->flags & (C_LINGER | C_DEAD)) &&
		    SSL_is_init_finished(ssl))
			(void)SSL_shutdown(ssl);	/* close_notify */
		conn_free(c, "shutdown");
	}
	SSL_CTX_free(srv->tls);
	free(srv->name);
	free(srv);
	*srvp = NULL;
}

/* ------------------------------------------------------------------ */

void *
net_conn_get(struct net_conn *c)
{
	return c->data;
}

void
net_conn_set(struct net_conn *c, void *data)
{
	c->data = data;
}

void *
net_conn_listener_arg(struct net_conn *c)
{
	return c->l->arg;
}

struct net_server *
net_conn_server(struct net_conn *c)
{
	return c->srv;
}

uint64_t
net_conn_id(struct net_conn *c)
{
	return c->id;
}

const char *
net_conn_peer(struct net_conn *c)
{
	return c->peer;
}

const char *
net_conn_peer_ip(struct net_conn *c)
{
	return c->peer_ip;
}

const char *
net_conn_local(struct net_conn *c)
{
	return c->local;
}

int
net_conn_is_tls(struct net_conn *c)
{
	return (c->flags & C_TLS) != 0;
}

SSL *
net_conn_ssl(struct net_conn *c)
{
	return (c->flags & C_TLS) && c->bev ? bufferevent_openssl_get_ssl(c->bev) :
	    NULL;
}

size_t
net_conn_outlen(struct net_conn *c)
{
	return c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}

int
net_conn_write(struct net_conn *c, const void *p, size_t n)
{
	size_t	queued;

	if (c->flags & C_DEAD || c->bev == NULL)
		return ERR_IO;
	queued = net_conn_outlen(c);
	if (queued > c->srv->lim.out_max || n > c->srv->lim.out_max - queued) {
		err_set(ERR_TOOBIG, "output limit of %zu bytes reached",
		    c->srv->lim.out_max);
		return ERR_TOOBIG;
	}
	if (bufferevent_write(c->bev, p, n) < 0) {
		err_set(ERR_IO, "bufferevent_write failed");
		return ERR_IO;
	}
	return 0;
}

int
net_conn_printf(struct net_conn *c, const char *fmt, ...)
{
	char	 small[512], *p = small;
	va_list	 ap;
	int	 n, rc;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return ERR_INVAL;
	if ((size_t)n >= sizeof(small)) {
		p = xmalloc((size_t)n + 1);
		va_start(ap, fmt);
		(void)vsnprintf(p, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	rc = net_conn_write(c, p, (size_t)n);
	if (p != small)
		free(p);
	return rc;
}

int
net_conn_write_buffer(struct net_conn *c, struct evbuffer *b)
{
	size_t	n = evbuffer_get_length(b), queued;

	if (c->flags & C_DEAD || c->bev == NULL)
		return ERR_IO;
	queued = net_conn_outlen(c);
	if (queued > c->srv->lim.out_max || n > c->srv->lim.out_max - queued) {
		err_set(ERR_TOOBIG, "output limit of %zu bytes reached",
		    c->srv->lim.out_max);
		return ERR_TOOBIG;
	}
	return bufferevent_write_buffer(c->bev, b) < 0 ? ERR_IO : 0;
}

int
net_conn_starttls(struct net_conn *c)
{
	struct evbuffer	*in;
	size_t		 pending;

	if ((c->flags & (C_TLS | C_STARTTLS)) || c->srv->tls == NULL) {
		err_set(ERR_INVAL, "TLS already active or unavailable");
		return ERR_INVAL;
	}
	in = bufferevent_get_input(c->bev);
	if ((pending = evbuffer_get_length(in)) > 0) {
		evbuffer_drain(in, pending);
		err_set(ERR_PROTO, "%zu bytes of plaintext pipelined after "
		    "STARTTLS", pending);
		return ERR_PROTO;
	}
	c->flags |= C_STARTTLS;
	bufferevent_disable(c->bev, EV_READ);
	if (net_conn_outlen(c) == 0)
		conn_schedule(c);
	return 0;
}

void
net_conn_pause(struct net_conn *c)
{
	c->flags |= C_PAUSED;
	/* work in progress is activity: not the first to be evicted */
	net_conn_touch(c);
	if (c->bev != NULL)
		bufferevent_disable(c->bev, EV_READ);
}

void
net_conn_resume(struct net_conn *c)
{
	if (!(c->flags & C_PAUSED))
		return;
	c->flags &= ~C_PAUSED;
	if (c->flags & (C_CLOSING | C_DEAD | C_STARTTLS) || c->bev == NULL)
		return;
	bufferevent_enable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		c->flags |= C_RESUME;
		conn_schedule(c);
	}
}

void
net_conn_touch(struct net_conn *c)
{
	if (c->flags & C_LISTED) {
		TAILQ_REMOVE(&c->srv->lru, c, lru);
		TAILQ_INSERT_TAIL(&c->srv->lru, c, lru);
	}
}

void
net_conn_close(struct net_conn *c, const char *reason)
{
	SSL	*ssl;

	if (c->flags & (C_CLOSING | C_DEAD))
		return;
	/* before the TLS handshake is done, output can never be sent */
	if ((ssl = net_conn_ssl(c)) != NULL && !SSL_is_init_finished(ssl)) {
		net_conn_abort(c, reason);
		return;
	}
	c->flags |= C_CLOSING;
	c->reason = reason;
	conn_unlist(c);
	if (c->bev == NULL) {
		c->flags |= C_DEAD;
		conn_schedule(c);
		return;
	}
	bufferevent_disable(c->bev, EV_READ);
	conn_set_timeouts(c, NET_CLOSE_MS);
	conn_timer(c, NET_CLOSE_MS);
	if (net_conn_outlen(c) == 0)
		conn_schedule(c);
}

void
net_conn_abort(struct net_conn *c, const char *reason)
{
	if (c->flags & C_DEAD)
		return;
	if (!(c->flags & C_CLOSING))
		c->reason = reason;
	c->flags |= C_DEAD | C_CLOSING;
	conn_unlist(c);
	if (c->bev != NULL)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	conn_schedule(c);
}
