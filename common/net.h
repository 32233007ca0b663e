/*
 * net.h -- libevent listeners and connections for every protocol server.
 *
 * A net_server owns any number of listeners (plain, implicit TLS) that
 * share one connection pool and one set of limits:
 *   - max_conns: at the limit a new connection evicts the connection idle
 *     the longest (the protocol's on_evict may say goodbye first), so a
 *     flood of idle connections can never lock out a new client (Dovecot's
 *     login process does the same);
 *   - idle_ms: a connection with no input for that long is closed
 *     (on_timeout may say goodbye first);
 *   - out_max: net_conn_write() refuses (ERR_TOOBIG) once this much output
 *     is queued for a peer that does not read; the protocol closes.
 *
 * Protocol modules see only struct net_conn and the callbacks below; they
 * never touch sockets.  All callbacks run on the event loop thread.
 *
 * COMPRESS=DEFLATE (RFC 4978, net_conn_compress) costs, per compressed
 * connection, about 300 KiB: zlib's deflate state at level 6, memLevel
 * 8, 32 KiB window is 268096 bytes, inflate 39928 bytes (7160 until the
 * first output), plus up to NET_INFLATE_MAX + NET_INFLATE_CHUNK of
 * inflated input the protocol has not consumed yet.  Budget for it when
 * choosing max_conns.
 */
#ifndef COMMON_NET_H
#define COMMON_NET_H

#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

/*
 * Compressed input is inflated NET_INFLATE_CHUNK at a time, and only while
 * the protocol holds less than NET_INFLATE_MAX of it unconsumed; beyond
 * that, reading from the socket stops until on_read drains.  A protocol
 * that needs more than NET_INFLATE_MAX buffered to make progress (a line
 * longer than that) stalls and is closed after idle_ms: keep every line
 * limit below it.
 */
#define NET_INFLATE_CHUNK	16384
#define NET_INFLATE_MAX		(128 * 1024)

struct net_server;
struct net_conn;

struct net_limits {
	unsigned	max_conns;	/* over all listeners of the server */
	unsigned	idle_ms;	/* no input for this long: close */
	size_t		out_max;	/* queued output limit per connection */
	/*
	 * Live connections from one peer address, 0: no limit.  One more is
	 * refused at once, before any eviction and before on_open: it gets
	 * the line "refuse" (CRLF added) on a plaintext listener, nothing
	 * on an implicit-TLS one, and is closed.
	 */
	unsigned	max_per_ip;
	char		refuse[128];
};

struct net_ops {
	/* A connection was accepted (TLS handshake may still be running). */
	void	(*on_open)(struct net_conn *);
	/*
	 * Input is available.  Consume what can be handled from in (drain
	 * it); leave the rest.  Called again when more arrives, or after
	 * net_conn_resume() if input is still buffered.
	 */
	void	(*on_read)(struct net_conn *, struct evbuffer *);
	/* Optional: idle timeout hit; write a goodbye.  The conn closes. */
	void	(*on_timeout)(struct net_conn *);
	/* Optional: evicted by a newer connection; write a goodbye. */
	void	(*on_evict)(struct net_conn *);
	/*
	 * The connection is gone (peer closed, error, timeout, eviction,
	 * net_conn_close, shutdown).  Free protocol state here; the conn is
	 * freed after this returns and must not be used again.
	 */
	void	(*on_close)(struct net_conn *, const char *);
	/*
	 * Optional: the output mark set by net_conn_want_drain() was
	 * reached.  Queue the next slice of a long response here.
	 */
	void	(*on_drain)(struct net_conn *);
};

enum net_tls_mode {
	NET_PLAIN = 0,		/* plaintext; STARTTLS may upgrade */
	NET_TLS,		/* implicit TLS from the first byte */
};

/*
 * What max_per_ip counts by, as text: an IPv4 address, or an IPv6
 * address's /64 ("2001:db8:1:2::/64": one subscriber's network; counting
 * IPv6 addresses one by one would give each client 2^64 of them).
 */
void	net_peer_key(char *, size_t, const struct sockaddr *, socklen_t);

int	net_server_new(struct net_server **, struct event_base *,
	    const char *, const struct net_limits *, const struct net_ops *,
	    void *);
/*
 * Listen on "host:port".  mode is enum net_tls_mode; listener_arg is
 * returned by net_conn_listener_arg() (e.g. which SMTP service).
 * ERR_IO with err_msg() if the address cannot be bound.
 */
int	net_server_listen(struct net_server *, const char *, int, void *);
/* The port actually bound by the i-th listener (for logs). */
int	net_server_port(struct net_server *, size_t);
/*
 * Replace the TLS context used for new handshakes (SIGHUP reload).  The
 * server takes a reference; connections keep the context they started
 * with.
 */
void	net_server_set_tls(struct net_server *, SSL_CTX *);
void	net_server_set_limits(struct net_server *, const struct net_limits *);
unsigned	net_server_nconns(struct net_server *);
void	*net_server_arg(struct net_server *);
/* Stop listening; close every connection (reason "shutdown"); free. */
void	net_server_free(struct net_server **);

/* Connection accessors. */
void		*net_conn_get(struct net_conn *);
void		 net_conn_set(struct net_conn *, void *);
void		*net_conn_listener_arg(struct net_conn *);
struct net_server *net_conn_server(struct net_conn *);
uint64_t	 net_conn_id(struct net_conn *);	/* unique per process */
const char	*net_conn_peer(struct net_conn *);	/* "ip:port" */
const char	*net_conn_peer_ip(struct net_conn *);	/* "ip" */
const char	*net_conn_local(struct net_conn *);	/* "ip:port" */
int		 net_conn_is_tls(struct net_conn *);
SSL		*net_conn_ssl(struct net_conn *);	/* NULL if plain */
/*
 * Output queued and not yet handed to the kernel: with compression, the
 * plaintext written in this loop turn (not deflated yet) plus the
 * compressed bytes waiting; with TLS, before encryption.
 */
size_t		 net_conn_outlen(struct net_conn *);

/*
 * Queue output.  ERR_TOOBIG when out_max would be exceeded: nothing is
 * queued and the caller should net_conn_close().
 */
int	net_conn_write(struct net_conn *, const void *, size_t);
int	net_conn_printf(struct net_conn *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
/* Move a whole evbuffer into the output (same limit). */
int	net_conn_write_buffer(struct net_conn *, struct evbuffer *);

/*
 * One-shot: once net_conn_outlen() is <= low, run ops.on_drain once, on
 * the loop thread.  If it already is, on_drain runs right after the
 * current callback returns, never from inside this call.  A later call
 * replaces the mark; closing (or aborting) the connection cancels it, and
 * on_drain never runs once the connection is closing.  Used to stream a
 * long response in slices without holding it all in the output queue.
 */
void	net_conn_want_drain(struct net_conn *, size_t);

/*
 * COMPRESS=DEFLATE (RFC 4978): call after queueing the tagged OK, which
 * goes out uncompressed.  From then on, output is raw deflate (zlib
 * windowBits -15, level 6) flushed with Z_SYNC_FLUSH at the end of each
 * write burst (right after the callback that wrote returns), so the peer
 * never waits for more; input is inflated before on_read sees it (in
 * a different evbuffer than before the call).  Input already buffered
 * after the command is compressed data: it is moved out of on_read's
 * buffer (so the caller's parse loop ends) and inflated on the next loop
 * turn.  Works over plaintext and TLS; STARTTLS is refused afterwards.
 * A corrupt stream, or one the peer ends, closes the connection
 * ("compress-error").  ERR_INVAL if already compressed (the server
 * answers NO [COMPRESSIONACTIVE]) or closing.  Memory: see above.
 */
int	net_conn_compress(struct net_conn *);

/*
 * STARTTLS: start a server-side TLS handshake on this plaintext connection
 * once queued output (the "220 ready" reply) is flushed.  Input buffered
 * after the STARTTLS command is discarded and ERR_PROTO returned (the
 * protocol must not act on plaintext sent before the handshake; CVE-2011-
 * 0411 class).  ERR_INVAL if already TLS, compressed, or no TLS context.
 */
int	net_conn_starttls(struct net_conn *);

/* Stop reading (work in progress); resume re-runs on_read if needed. */
void	net_conn_pause(struct net_conn *);
void	net_conn_resume(struct net_conn *);
/* Mark activity for eviction order (reads do this automatically). */
void	net_conn_touch(struct net_conn *);

/*
 * Close after queued output is flushed (bounded by a short write
 * timeout); on_close runs with reason.  Reads stop at once.
 */
void	net_conn_close(struct net_conn *, const char *);
/* Close now, discarding queued output. */
void	net_conn_abort(struct net_conn *, const char *);

#endif
