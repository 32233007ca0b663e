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
 * Live conns are also counted per peer address, an IPv6 peer per /64
 * (net_peer_key; a hash table keyed with a random seed, so peers cannot
 * choose colliding addresses): a peer at max_per_ip is refused before
 * it can evict anyone else's connection.
 *
 * Drain notification: net_conn_want_drain() sets the bufferevent's write
 * low watermark, so libevent calls conn_writecb once queued output falls
 * to it; if it already has, conn->soon (a second zero-delay event, so the
 * close timer on conn->later is never cancelled by it) runs the check on
 * the next loop turn.  on_drain never runs from inside a protocol call.
 *
 * COMPRESS=DEFLATE (RFC 4978) is done here rather than with a
 * bufferevent_filter: one bufferevent keeps its timeouts, lingering close
 * and STARTTLS logic unchanged, and libevent 2.1 filters leave data stuck
 * in the underlying buffer when the filter's input is full (libevent
 * issues 362, 613), which is exactly the bounded case we need.
 *   - output: writes are staged in z->out (counted by net_conn_outlen and
 *     out_max) and deflated into the bufferevent's output by conn->soon at
 *     the end of the write burst, with Z_SYNC_FLUSH so the peer can act on
 *     every byte without waiting for more;
 *   - input: compressed bytes stay in the bufferevent's input (z->raw holds
 *     those read before the switch) and are inflated into z->in, which is
 *     what on_read sees, NET_INFLATE_CHUNK at a time and only while z->in
 *     holds less than NET_INFLATE_MAX.  While compressed input is waiting
 *     or z->in is full, socket reads are off ("held"): a decompression bomb
 *     costs at most NET_INFLATE_MAX + NET_INFLATE_CHUNK of memory, and
 *     its CPU is bounded by NET_INFLATE_BUDGET per turn of the loop (the
 *     rest waits for a zero timer, so other connections' I/O runs).  A
 *     hold that lasts idle_ms (the protocol never drained z->in) is an
 *     idle timeout.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <limits.h>
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
#include <openssl/rand.h>
#include <zlib.h>

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
#define NET_DEFLATE_LEVEL	6
#define NET_DEFLATE_MEMLEVEL	8	/* zlib's default */
#define NET_DEFLATE_CHUNK	16384	/* output reserved per deflate call */
#define NET_INFLATE_BUDGET	(1024 * 1024)	/* inflated per loop turn */

/* Replies up to this size are sent at once when nothing is queued. */
#define NET_SEND_NOW_MAX	4096
#define C_CLOSING	0x01	/* close after flush */
#define C_DEAD		0x02	/* free at next later event */
#define C_PAUSED	0x04
#define C_TLS		0x08
#define C_STARTTLS	0x10	/* switch to TLS once output is flushed */
#define C_RESUME	0x20	/* run on_read from later event */
#define C_LISTED	0x40	/* on the LRU list, counted */
#define C_LINGER	0x80	/* output done, write side shut, draining */
#define C_WANTDRAIN	0x100	/* on_drain armed (net_conn_want_drain) */
#define C_ZFLUSH	0x200	/* z->out to be deflated by conn->soon */
#define C_ZHOLD		0x400	/* compressed: socket reads held */

struct net_listener {
	struct net_server	*srv;
	struct evconnlistener	*evl;
	struct event		*pause_ev;
	int			 mode;
	int			 port;
	void			*arg;
};

/* COMPRESS=DEFLATE state; see the file header. */
struct net_z {
	z_stream		 def;
	z_stream		 inf;
	struct evbuffer		*in;	/* inflated input, given to on_read */
	struct evbuffer		*raw;	/* compressed, read before the switch */
	struct evbuffer		*out;	/* written since the last flush */
	struct event		*hold_ev;	/* idle timer while held */
};

/* Live conns of one peer address, or IPv6 /64 (max_per_ip). */
struct net_ipcount {
	struct net_ipcount	*next;
	unsigned		 n;
	char			 ip[64];
};

#define NET_IP_BUCKETS	1024

struct net_conn {
	TAILQ_ENTRY(net_conn)	 lru;
	TAILQ_ENTRY(net_conn)	 all;
	struct net_server	*srv;
	struct net_listener	*l;
	struct bufferevent	*bev;
	struct event		*later;
	struct event		*soon;	/* deflate flush, drain check */
	struct event		*qack;	/* TLS handshake: TCP_QUICKACK */
	struct net_z		*z;	/* NULL unless compressed */
	size_t			 drain_low;
	evutil_socket_t		 fd;
	uint64_t		 id;
	int			 flags;
	const char		*reason;
	void			*data;
	struct net_ipcount	*ipc;	/* counted while listed */
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
	uint32_t		 ipseed;
	struct net_ipcount	*ipc[NET_IP_BUCKETS];
	uint64_t		 refused_logged;	/* ms, last log line */
	unsigned long		 refused_quiet;	/* refused since, unlogged */
};

static uint64_t	net_next_id = 1;

static void	conn_readcb(struct bufferevent *, void *);
static void	conn_writecb(struct bufferevent *, void *);
static void	conn_eventcb(struct bufferevent *, short, void *);
static void	conn_later(evutil_socket_t, short, void *);
static void	conn_soon(evutil_socket_t, short, void *);
static void	z_flush(struct net_conn *);
static void	z_free(struct net_conn *);
static void	conn_qack_stop(struct net_conn *);

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

void
net_peer_key(char *out, size_t outlen, const struct sockaddr *sa,
    socklen_t salen)
{
	struct sockaddr_in6	s6;
	char			host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET6 && salen >= (socklen_t)sizeof(s6)) {
		memcpy(&s6, sa, sizeof(s6));
		if (!IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr)) {
			memset(&s6.sin6_addr.s6_addr[8], 0, 8);
			if (inet_ntop(AF_INET6, &s6.sin6_addr, host,
			    sizeof(host)) != NULL) {
				snprintf(out, outlen, "%s/64", host);
				return;
			}
		}
	}
	if (getnameinfo(sa, salen, host, sizeof(host), NULL, 0,
	    NI_NUMERICHOST) != 0)
		snprintf(host, sizeof(host), "unknown");
	snprintf(out, outlen, "%s", host);
}

static void
conn_set_timeouts(struct net_conn *c, unsigned ms)
{
	struct timeval	tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	bufferevent_set_timeouts(c->bev, &tv, &tv);
}

/* Where ip's count is, or would go: a pointer to a chain link. */
static struct net_ipcount **
ipcount_slot(struct net_server *srv, const char *ip)
{
	struct net_ipcount	**pp;
	const unsigned char	 *p;
	uint32_t		  h = 2166136261u ^ srv->ipseed;

	for (p = (const unsigned char *)ip; *p != '\0'; p++)
		h = (h ^ *p) * 16777619u;		/* FNV-1a */
	for (pp = &srv->ipc[h % NET_IP_BUCKETS]; *pp != NULL;
	    pp = &(*pp)->next)
		if (strcmp((*pp)->ip, ip) == 0)
			break;
	return pp;
}

static unsigned
ipcount_get(struct net_server *srv, const char *ip)
{
	struct net_ipcount	*e = *ipcount_slot(srv, ip);

	return e != NULL ? e->n : 0;
}

static void
ipcount_add(struct net_conn *c, const char *key)
{
	struct net_ipcount	**pp = ipcount_slot(c->srv, key);

	if (*pp == NULL) {
		*pp = xcalloc(1, sizeof(**pp));
		snprintf((*pp)->ip, sizeof((*pp)->ip), "%s", key);
	}
	(*pp)->n++;
	c->ipc = *pp;
}

static void
ipcount_remove(struct net_conn *c)
{
	struct net_ipcount	**pp, *e = c->ipc;

	c->ipc = NULL;
	if (e == NULL || --e->n > 0)
		return;
	pp = ipcount_slot(c->srv, e->ip);
	*pp = e->next;
	free(e);
}

static void
conn_unlist(struct net_conn *c)
{
	if (c->flags & C_LISTED) {
		TAILQ_REMOVE(&c->srv->lru, c, lru);
		c->flags &= ~C_LISTED;
		c->srv->nlive--;
		ipcount_remove(c);
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
	conn_qack_stop(c);	/* before the bufferevent closes the fd */
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (!(c->flags & C_TLS) && c->fd >= 0)
		close(c->fd);
	z_free(c);
	event_free(c->later);
	event_free(c->soon);
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

/*
 * During a server-side TLS handshake, ask for an immediate ACK of what
 * the client sent before each read.  Some clients (GnuTLS) hold their
 * Finished until their ChangeCipherSpec is ACKed, and Linux delays that
 * ACK (about 40 ms) once it takes the exchange for interactive traffic;
 * Dovecot's login processes do the same.  TCP_QUICKACK is not sticky,
 * hence an event that re-arms it whenever input is waiting.
 */
static void
conn_qackcb(evutil_socket_t fd, short ev, void *arg)
{
	int	one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

static void
conn_qack_stop(struct net_conn *c)
{
	if (c->qack != NULL) {
		event_free(c->qack);
		c->qack = NULL;
	}
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
			if (accepting && c->qack == NULL &&
			    (c->qack = event_new(base, c->fd, EV_READ |
			    EV_PERSIST, conn_qackcb, c)) != NULL)
				event_add(c->qack, NULL);
		}
	}
	if (c->bev == NULL) {
		err_set(ERR_GENERIC, "cannot create bufferevent");
		return ERR_GENERIC;
	}
	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	if (c->flags & C_WANTDRAIN)
		bufferevent_setwatermark(c->bev, EV_WRITE, c->drain_low, 0);
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
	char			 peer[96], ip[64], key[64];
	char			 line[sizeof(srv->lim.refuse) + 2];
	int			 one = 1;

	fmt_addr(peer, sizeof(peer), ip, sizeof(ip), sa, (socklen_t)salen);
	net_peer_key(key, sizeof(key), sa, (socklen_t)salen);
	if (srv->lim.max_per_ip > 0 &&
	    ipcount_get(srv, key) >= srv->lim.max_per_ip) {
		/* a flood must not flood the log: a line a second at most */
		if (now_ms() - srv->refused_logged >= 1000) {
			log_info("net refused peer=%s reason=per-ip-limit "
			    "limit=%u (and %lu more since the last line)",
			    peer, srv->lim.max_per_ip, srv->refused_quiet);
			srv->refused_logged = now_ms();
			srv->refused_quiet = 0;
		} else
			srv->refused_quiet++;
		/* nothing was read yet: the line goes out before the FIN */
		if (l->mode != NET_TLS && srv->lim.refuse[0] != '\0') {
			snprintf(line, sizeof(line), "%s\r\n", srv->lim.refuse);
			(void)send(fd, line, strlen(line),
			    MSG_DONTWAIT | MSG_NOSIGNAL);
		}
		evutil_closesocket(fd);
		return;
	}
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
	c->soon = event_new(srv->base, -1, 0, conn_soon, c);
	if (c->later == NULL || c->soon == NULL)
		fatalx("event_new failed");
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	snprintf(c->peer_ip, sizeof(c->peer_ip), "%s", ip);
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
		fmt_addr(c->local, sizeof(c->local), NULL, 0,
		    (struct sockaddr *)&ss, sslen);
	TAILQ_INSERT_TAIL(&srv->all, c, all);
	TAILQ_INSERT_TAIL(&srv->lru, c, lru);
	c->flags |= C_LISTED;
	srv->nlive++;
	ipcount_add(c, key);

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

/* The input on_read sees: inflated if compressed. */
static struct evbuffer *
conn_input(struct net_conn *c)
{
	return c->z != NULL ? c->z->in : bufferevent_get_input(c->bev);
}

/* Compressed input not yet inflated. */
static size_t
z_srclen(struct net_conn *c)
{
	return evbuffer_get_length(c->z->raw) +
	    evbuffer_get_length(bufferevent_get_input(c->bev));
}

static int
conn_has_input(struct net_conn *c)
{
	if (c->bev == NULL)
		return 0;
	return evbuffer_get_length(conn_input(c)) > 0 ||
	    (c->z != NULL && z_srclen(c) > 0);
}

static void
conn_idle_timeout(struct net_conn *c)
{
	log_info("%016llx net timeout peer=%s", (unsigned long long)c->id,
	    c->peer);
	if (c->srv->ops.on_timeout != NULL)
		c->srv->ops.on_timeout(c);
	net_conn_close(c, "timeout");
}

/*
 * Inflate into z->in, NET_INFLATE_CHUNK at a time, until it holds
 * NET_INFLATE_MAX or the compressed input is used up.  *made: bytes added.
 * ERR_PROTO if the stream is corrupt or was ended by the peer (RFC 4978
 * has no way to stop compressing).
 */
static int
z_inflate(struct net_conn *c, size_t *made)
{
	struct net_z		*z = c->z;
	struct evbuffer		*src;
	struct evbuffer_iovec	 iv, ov;
	size_t			 inlen, used, got;
	int			 zr;

	*made = 0;
	while (evbuffer_get_length(z->in) < NET_INFLATE_MAX) {
		src = evbuffer_get_length(z->raw) > 0 ? z->raw :
		    bufferevent_get_input(c->bev);
		if (evbuffer_peek(src, -1, NULL, &iv, 1) < 1 ||
		    iv.iov_len == 0)
			break;
		if (evbuffer_reserve_space(z->in, NET_INFLATE_CHUNK, &ov,
		    1) < 1)
			fatalx("evbuffer_reserve_space failed");
		inlen = iv.iov_len > UINT_MAX ? UINT_MAX : iv.iov_len;
		z->inf.next_in = iv.iov_base;
		z->inf.avail_in = (uInt)inlen;
		z->inf.next_out = ov.iov_base;
		z->inf.avail_out = NET_INFLATE_CHUNK;
		zr = inflate(&z->inf, Z_SYNC_FLUSH);
		used = inlen - z->inf.avail_in;
		got = NET_INFLATE_CHUNK - z->inf.avail_out;
		if (got > 0) {
			ov.iov_len = got;
			if (evbuffer_commit_space(z->in, &ov, 1) < 0)
				fatalx("evbuffer_commit_space failed");
		}
		evbuffer_drain(src, used);
		*made += got;
		if (zr == Z_STREAM_END) {
			err_set(ERR_PROTO, "peer ended the deflate stream");
			return ERR_PROTO;
		}
		if (zr != Z_OK && zr != Z_BUF_ERROR) {
			err_set(ERR_PROTO, "inflate: %s", z->inf.msg != NULL ?
			    z->inf.msg : "error");
			return ERR_PROTO;
		}
		if (used == 0 && got == 0)
			break;
	}
	return 0;
}

/*
 * Reads stay off while compressed input waits or z->in is full; a hold
 * that is not a mere yield (C_RESUME) is timed like idle input.
 */
static void
z_hold_update(struct net_conn *c)
{
	struct net_z	*z = c->z;
	struct timeval	 tv;

	if (z_srclen(c) > 0 || evbuffer_get_length(z->in) >= NET_INFLATE_MAX) {
		c->flags |= C_ZHOLD;
		bufferevent_disable(c->bev, EV_READ);
		if (!(c->flags & C_RESUME) &&
		    !evtimer_pending(z->hold_ev, NULL)) {
			tv.tv_sec = c->srv->lim.idle_ms / 1000;
			tv.tv_usec = (c->srv->lim.idle_ms % 1000) * 1000;
			evtimer_add(z->hold_ev, &tv);
		}
	} else if (c->flags & C_ZHOLD) {
		c->flags &= ~C_ZHOLD;
		evtimer_del(z->hold_ev);
		if (!(c->flags & (C_PAUSED | C_CLOSING | C_DEAD)))
			bufferevent_enable(c->bev, EV_READ);
	}
}

static void
z_holdcb(evutil_socket_t fd, short ev, void *arg)
{
	struct net_conn	*c = arg;

	if (!(c->flags & C_ZHOLD) || (c->flags & (C_PAUSED | C_CLOSING |
	    C_DEAD)))
		return;
	conn_idle_timeout(c);
}

/*
 * Inflate a bounded amount and hand it to on_read, again while the
 * protocol makes progress and compressed input remains; after
 * NET_INFLATE_BUDGET yield to other connections.
 */
static void
conn_dispatch_zread(struct net_conn *c)
{
	struct net_z	*z = c->z;
	size_t		 made, before, spent = 0;

	for (;;) {
		if (z_inflate(c, &made) < 0) {
			log_info("%016llx net compress error peer=%s: %s",
			    (unsigned long long)c->id, c->peer, err_msg());
			net_conn_abort(c, "compress-error");
			return;
		}
		spent += made;
		if ((before = evbuffer_get_length(z->in)) == 0)
			break;
		c->srv->ops.on_read(c, z->in);
		if (c->flags & (C_CLOSING | C_DEAD | C_PAUSED))
			return;
		if (evbuffer_get_length(z->in) >= before || z_srclen(c) == 0)
			break;
		if (spent >= NET_INFLATE_BUDGET) {
			/*
			 * A timer, not event_active(): libevent runs events
			 * activated now in this same pass, before any I/O.
			 */
			c->flags |= C_RESUME;
			conn_timer(c, 0);
			break;
		}
	}
	z_hold_update(c);
}

static void
conn_dispatch_read(struct net_conn *c)
{
	struct evbuffer	*in;

	if (c->flags & (C_CLOSING | C_DEAD | C_PAUSED | C_STARTTLS))
		return;
	if (c->z != NULL) {
		conn_dispatch_zread(c);
		return;
	}
	in = bufferevent_get_input(c->bev);
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

/* Run on_drain if armed and output is down to the mark (one-shot). */
static void
conn_check_drain(struct net_conn *c)
{
	if (!(c->flags & C_WANTDRAIN) || (c->flags & (C_CLOSING | C_DEAD)) ||
	    net_conn_outlen(c) > c->drain_low)
		return;
	c->flags &= ~C_WANTDRAIN;
	if (c->bev != NULL)
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	if (c->srv->ops.on_drain != NULL)
		c->srv->ops.on_drain(c);
}

static void
conn_writecb(struct bufferevent *bev, void *arg)
{
	struct net_conn	*c = arg;

	conn_check_drain(c);
	if ((c->flags & C_DEAD) || net_conn_outlen(c) != 0)
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

	if (what & BEV_EVENT_CONNECTED) {
		conn_qack_stop(c);	/* the handshake is done */
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (c->flags & C_CLOSING) {
			conn_free(c, c->reason);
			return;
		}
		conn_idle_timeout(c);
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
	if ((c->flags & C_CLOSING) && net_conn_outlen(c) == 0) {
		conn_linger(c);
		return;
	}
	if ((c->flags & C_STARTTLS) && net_conn_outlen(c) == 0) {
		conn_do_starttls(c);
		return;
	}
	if (c->flags & C_RESUME) {
		c->flags &= ~C_RESUME;
		conn_dispatch_read(c);
	}
}

/* End of a write burst (deflate flush), and the deferred drain check. */
static void
conn_soon(evutil_socket_t fd, short ev, void *arg)
{
	struct net_conn	*c = arg;

	if (c->flags & C_DEAD)
		return;
	if (c->flags & C_ZFLUSH)
		z_flush(c);
	conn_check_drain(c);
}

/* ------------------------------------------------------------------ */

static void *
z_zalloc(void *opaque, uInt items, uInt size)
{
	(void)opaque;
	return xreallocarray(NULL, items, size);
}

static void
z_zfree(void *opaque, void *p)
{
	(void)opaque;
	free(p);
}

static void
z_free(struct net_conn *c)
{
	struct net_z	*z = c->z;

	if (z == NULL)
		return;
	(void)deflateEnd(&z->def);
	(void)inflateEnd(&z->inf);
	evbuffer_free(z->in);
	evbuffer_free(z->raw);
	evbuffer_free(z->out);
	event_free(z->hold_ev);
	free(z);
	c->z = NULL;
}

/*
 * Deflate everything staged in z->out into the bufferevent's output,
 * ending with Z_SYNC_FLUSH (the peer can inflate every byte now).
 */
static void
z_flush(struct net_conn *c)
{
	struct net_z		*z = c->z;
	struct evbuffer		*out;
	struct evbuffer_iovec	 iv, ov;
	size_t			 left, inlen;
	int			 mode;

	c->flags &= ~C_ZFLUSH;
	if (z == NULL || c->bev == NULL || (c->flags & C_DEAD))
		return;
	out = bufferevent_get_output(c->bev);
	while ((left = evbuffer_get_length(z->out)) > 0) {
		if (evbuffer_peek(z->out, -1, NULL, &iv, 1) < 1)
			break;
		inlen = iv.iov_len > UINT_MAX ? UINT_MAX : iv.iov_len;
		mode = inlen == left ? Z_SYNC_FLUSH : Z_NO_FLUSH;
		z->def.next_in = iv.iov_base;
		z->def.avail_in = (uInt)inlen;
		do {
			if (evbuffer_reserve_space(out, NET_DEFLATE_CHUNK,
			    &ov, 1) < 1)
				fatalx("evbuffer_reserve_space failed");
			z->def.next_out = ov.iov_base;
			z->def.avail_out = NET_DEFLATE_CHUNK;
			/* only Z_STREAM_ERROR (a bug) or Z_BUF_ERROR */
			if (deflate(&z->def, mode) == Z_STREAM_ERROR)
				fatalx("deflate: stream error");
			ov.iov_len = NET_DEFLATE_CHUNK - z->def.avail_out;
			if (ov.iov_len > 0 &&
			    evbuffer_commit_space(out, &ov, 1) < 0)
				fatalx("evbuffer_commit_space failed");
		} while (z->def.avail_out == 0);
		evbuffer_drain(z->out, inlen);
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
	if (RAND_bytes((unsigned char *)&srv->ipseed,
	    sizeof(srv->ipseed)) != 1)
		fatalx("RAND_bytes failed");
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
	size_t	n;

	n = c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
	if (c->z != NULL)
		n += evbuffer_get_length(c->z->out);
	return n;
}

/* May n more bytes be queued?  0, ERR_IO (dead) or ERR_TOOBIG. */
static int
conn_room(struct net_conn *c, size_t n)
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
	return 0;
}

/* Compressed output was staged: deflate it at the end of this burst. */
static void
z_staged(struct net_conn *c)
{
	if (!(c->flags & C_ZFLUSH)) {
		c->flags |= C_ZFLUSH;
		event_active(c->soon, 0, 0);
	}
}

/*
 * A short reply on a plain connection with nothing queued: send it now,
 * without arming EV_WRITE (two epoll_ctl and a loop turn per reply
 * saved); returns the bytes sent.  Whatever is left, or any error, goes
 * through the bufferevent as before (it reports errors).  Bulk output
 * always queues, so the output limit (out_max) keeps counting it.
 */
static size_t
conn_send_now(struct net_conn *c, const void *p, size_t n)
{
	ssize_t	w;

	if ((c->flags & (C_TLS | C_STARTTLS | C_CLOSING | C_DEAD)) ||
	    c->bev == NULL || n == 0 || n > NET_SEND_NOW_MAX ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) != 0)
		return 0;
	do {
		w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (w == -1 && errno == EINTR);
	return w > 0 ? (size_t)w : 0;
}

int
net_conn_write(struct net_conn *c, const void *p, size_t n)
{
	size_t	sent;
	int	rc;

	if ((rc = conn_room(c, n)) < 0)
		return rc;
	if (c->z != NULL) {
		if (evbuffer_add(c->z->out, p, n) < 0)
			goto fail;
		z_staged(c);
		return 0;
	}
	sent = conn_send_now(c, p, n);
	if (sent == n)
		return 0;
	if (bufferevent_write(c->bev, (const char *)p + sent, n - sent) < 0)
		goto fail;
	return 0;
fail:
	err_set(ERR_IO, "cannot queue output");
	return ERR_IO;
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
	int	rc;

	if ((rc = conn_room(c, evbuffer_get_length(b))) < 0)
		return rc;
	if (c->z != NULL) {
		if (evbuffer_add_buffer(c->z->out, b) < 0)
			return ERR_IO;
		z_staged(c);
		return 0;
	}
	return bufferevent_write_buffer(c->bev, b) < 0 ? ERR_IO : 0;
}

void
net_conn_want_drain(struct net_conn *c, size_t low)
{
	if (c->flags & (C_CLOSING | C_DEAD) || c->bev == NULL)
		return;
	c->flags |= C_WANTDRAIN;
	c->drain_low = low;
	bufferevent_setwatermark(c->bev, EV_WRITE, low, 0);
	if (net_conn_outlen(c) <= low)
		event_active(c->soon, 0, 0);
}

int
net_conn_compress(struct net_conn *c)
{
	struct net_z	*z;
	struct evbuffer	*in;

	if (c->z != NULL) {
		err_set(ERR_INVAL, "compression already active");
		return ERR_INVAL;
	}
	if (c->bev == NULL || (c->flags & (C_STARTTLS | C_CLOSING | C_DEAD))) {
		err_set(ERR_INVAL, "connection is closing or switching to TLS");
		return ERR_INVAL;
	}
	z = xcalloc(1, sizeof(*z));
	z->def.zalloc = z->inf.zalloc = z_zalloc;
	z->def.zfree = z->inf.zfree = z_zfree;
	if (deflateInit2(&z->def, NET_DEFLATE_LEVEL, Z_DEFLATED, -15,
	    NET_DEFLATE_MEMLEVEL, Z_DEFAULT_STRATEGY) != Z_OK)
		fatalx("deflateInit2 failed");
	if (inflateInit2(&z->inf, -15) != Z_OK)
		fatalx("inflateInit2 failed");
	if ((z->in = evbuffer_new()) == NULL ||
	    (z->raw = evbuffer_new()) == NULL ||
	    (z->out = evbuffer_new()) == NULL ||
	    (z->hold_ev = evtimer_new(c->srv->base, z_holdcb, c)) == NULL)
		fatalx("cannot allocate compression buffers");
	c->z = z;
	/*
	 * What follows the command in this read is compressed already: take
	 * it out of the caller's buffer (its parse loop ends) and inflate it
	 * on the next loop turn.
	 */
	in = bufferevent_get_input(c->bev);
	if (evbuffer_get_length(in) > 0) {
		evbuffer_add_buffer(z->raw, in);
		c->flags |= C_RESUME;
		conn_schedule(c);
	}
	log_debug("%016llx net compress peer=%s", (unsigned long long)c->id,
	    c->peer);
	return 0;
}

int
net_conn_starttls(struct net_conn *c)
{
	struct evbuffer	*in;
	size_t		 pending;

	if ((c->flags & (C_TLS | C_STARTTLS)) || c->srv->tls == NULL ||
	    c->z != NULL) {
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
	/* a pause during on_read left the hold as it was: look again */
	if (c->z != NULL)
		z_hold_update(c);
	if (!(c->flags & C_ZHOLD))
		bufferevent_enable(c->bev, EV_READ);
	if (conn_has_input(c)) {
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
	c->flags &= ~C_WANTDRAIN;
	c->reason = reason;
	conn_unlist(c);
	if (c->flags & C_ZFLUSH)
		z_flush(c);	/* so outlen is what the socket must send */
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
	c->flags &= ~C_WANTDRAIN;
	conn_unlist(c);
	if (c->bev != NULL)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	conn_schedule(c);
}
