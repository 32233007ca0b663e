/*
 * test_common_net.c -- unit tests for common/net: COMPRESS=DEFLATE and the
 * output-drain notification, over real loopback TCP (and STARTTLS).
 *
 * Runs in: the unit test runner (cmocka).  The server side is net.c on an
 * event loop in the main thread, speaking a tiny line protocol (tp_*); the
 * client is a blocking socket in a second thread doing what imaplib's
 * COMPRESS support does: raw deflate both ways (zlib windowBits -15),
 * one Z_SYNC_FLUSH per send.
 * Failure policy: the client thread records its first failure in cli_err
 * (cmocka assertions must stay on the main thread); the case asserts it
 * is empty.
 * SECURITY: covers compressed data pipelined after COMPRESS, the output
 * limit on compressed connections, and decompression bombs (bounded
 * inflated input, a protocol that never drains is timed out).
 */
#include <sys/socket.h>
#include <sys/time.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <zlib.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/net.h"
#include "common/xmalloc.h"

#define LINE_MAX_TP	100000		/* below NET_INFLATE_MAX */
#define FLOOD_CHUNK	32768
#define CLI_TIMEOUT_S	20
#define CLI_BUF_MAX	(64u * 1024 * 1024)
/* In the client thread, where cmocka must not be used: a bug in the test. */
#define XA(cond)	do { if (!(cond)) abort(); } while (0)

/* ------------------------------------------------------------ server */

struct env {
	struct event_base	*base;
	struct net_server	*srv;
	struct event		*tick;
	int			 port;
	atomic_int		 client_done;
	atomic_int		 drains;
	atomic_int		 closes;
	atomic_int		 opens;
	atomic_int		 timeouts;
	/* loop_until */
	atomic_int		*watch;
	int			 want;
	struct timespec		 deadline;
	/* loop thread only; read by the main thread after the client */
	int			 in_want;	/* inside net_conn_want_drain */
	int			 drain_in_call;
	size_t			 max_in;
	size_t			 flood_written;
	int			 flood_rc;
	size_t			 fill_outlen;
	size_t			 after_compress;	/* left in on_read's buffer */
	struct event		*turn;	/* zero timer: once per loop turn */
	size_t			 turn_bytes;	/* consumed in this turn */
	size_t			 turn_max;
	char			 reason[64];
};

/* A deterministic incompressible byte stream (xorshift32). */
struct gen {
	uint32_t	s;
};

#define GEN_SEED	0x9e3779b9u

static unsigned char
gen_byte(struct gen *g)
{
	g->s ^= g->s << 13;
	g->s ^= g->s >> 17;
	g->s ^= g->s << 5;
	return (unsigned char)(g->s >> 24);
}

enum { TM_LINES = 0, TM_HOLD };

struct tconn {
	struct env	*e;
	struct net_conn	*c;
	int		 mode;
	int		 done;		/* closed: parse no more */
	size_t		 sink_left;
	size_t		 stream_left;
	size_t		 slice;
	size_t		 low;
	int		 reply_drained;
	struct gen	 g;
};

static void
tp_reply(struct tconn *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
tp_reply(struct tconn *t, const char *fmt, ...)
{
	char	line[256];
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	(void)net_conn_printf(t->c, "%s\r\n", line);
}

static int
tp_pattern(struct tconn *t, size_t n)
{
	unsigned char	*p = xmalloc(n);
	size_t		 i;
	int		 rc;

	for (i = 0; i < n; i++)
		p[i] = gen_byte(&t->g);
	rc = net_conn_write(t->c, p, n);
	free(p);
	return rc;
}

static void
tp_close(struct tconn *t, const char *reason)
{
	net_conn_close(t->c, reason);
	t->done = 1;
}

static void
tp_stream_next(struct tconn *t)
{
	size_t	n = t->stream_left < t->slice ? t->stream_left : t->slice;

	(void)tp_pattern(t, n);
	t->stream_left -= n;
	if (t->stream_left > 0)
		net_conn_want_drain(t->c, t->low);
	else
		tp_reply(t, "OK streamed");
}

static void
tp_command(struct tconn *t, const char *line, size_t len,
    struct evbuffer *in)
{
	struct env	*e = t->e;
	unsigned long	 a, b, c;
	int		 rc;

	if (strcmp(line, "HELLO") == 0) {
		tp_reply(t, "OK hello");
	} else if (strcmp(line, "COMPRESS") == 0) {
		tp_reply(t, "OK compress");
		if ((rc = net_conn_compress(t->c)) < 0)
			tp_reply(t, "NO active %d", rc);
		else
			e->after_compress = evbuffer_get_length(in);
	} else if (strcmp(line, "STARTTLS") == 0) {
		tp_reply(t, "OK tls");
		if ((rc = net_conn_starttls(t->c)) < 0)
			tp_reply(t, "NO tls %d", rc);
	} else if (strncmp(line, "ECHO ", 5) == 0) {
		(void)net_conn_write(t->c, line, len);
		(void)net_conn_write(t->c, "\r\n", 2);
	} else if (sscanf(line, "SINK %lu", &a) == 1) {
		t->sink_left = a;
	} else if (strcmp(line, "HOLD") == 0) {
		tp_reply(t, "OK hold");
		t->mode = TM_HOLD;
	} else if (strcmp(line, "FLOOD") == 0) {
		t->g.s = GEN_SEED;
		e->flood_written = 0;
		while ((rc = tp_pattern(t, FLOOD_CHUNK)) == 0)
			e->flood_written += FLOOD_CHUNK;
		e->flood_rc = rc;
		tp_close(t, "flood");
	} else if (sscanf(line, "STREAM %lu %lu %lu", &a, &b, &c) == 3) {
		t->g.s = GEN_SEED;
		t->stream_left = a;
		t->low = b;
		t->slice = c;
		tp_stream_next(t);
	} else if (sscanf(line, "FILL %lu %lu", &a, &b) == 2) {
		t->g.s = GEN_SEED;
		(void)tp_pattern(t, a);
		e->fill_outlen = net_conn_outlen(t->c);
		net_conn_want_drain(t->c, b);
	} else if (sscanf(line, "FILLCLOSE %lu", &a) == 1) {
		t->g.s = GEN_SEED;
		(void)tp_pattern(t, a);
		net_conn_want_drain(t->c, 0);
		tp_close(t, "fillclose");
	} else if (strcmp(line, "DRAINNOW") == 0) {
		t->reply_drained = 1;
		e->in_want = 1;
		net_conn_want_drain(t->c, 1 << 20);
		e->in_want = 0;
	} else if (strcmp(line, "DRAINCLOSE") == 0) {
		t->reply_drained = 1;
		net_conn_want_drain(t->c, 1 << 30);	/* due at once */
		tp_reply(t, "BYE");
		tp_close(t, "drainclose");
	} else if (strcmp(line, "QUIT") == 0) {
		tp_reply(t, "BYE");
		tp_close(t, "quit");
	} else {
		tp_reply(t, "ERR unknown");
	}
}

static void
tp_on_read(struct net_conn *c, struct evbuffer *in)
{
	struct tconn		*t = net_conn_get(c);
	struct evbuffer_ptr	 eol;
	size_t			 len, eol_len, n;
	char			*line;

	if ((len = evbuffer_get_length(in)) > t->e->max_in)
		t->e->max_in = len;
	while (!t->done && t->mode != TM_HOLD &&
	    (len = evbuffer_get_length(in)) > 0) {
		if (t->sink_left > 0) {
			n = len < t->sink_left ? len : t->sink_left;
			evbuffer_drain(in, n);
			t->e->turn_bytes += n;
			if ((t->sink_left -= n) == 0)
				tp_reply(t, "OK sunk");
			continue;
		}
		eol = evbuffer_search_eol(in, NULL, &eol_len,
		    EVBUFFER_EOL_CRLF_STRICT);
		if (eol.pos < 0 || (size_t)eol.pos > LINE_MAX_TP) {
			if (eol.pos >= 0 || len > LINE_MAX_TP) {
				tp_reply(t, "ERR too long");
				tp_close(t, "too-long");
			}
			break;
		}
		line = xmalloc((size_t)eol.pos + 1);
		(void)evbuffer_remove(in, line, (size_t)eol.pos);
		line[eol.pos] = '\0';
		evbuffer_drain(in, eol_len);
		tp_command(t, line, (size_t)eol.pos, in);
		free(line);
	}
}

static void
tp_on_drain(struct net_conn *c)
{
	struct tconn	*t = net_conn_get(c);

	atomic_fetch_add(&t->e->drains, 1);
	if (t->e->in_want)
		t->e->drain_in_call = 1;
	if (t->stream_left > 0)
		tp_stream_next(t);
	else if (t->reply_drained)
		tp_reply(t, "drained");
}

static void
tp_on_open(struct net_conn *c)
{
	struct tconn	*t = xcalloc(1, sizeof(*t));

	t->e = net_server_arg(net_conn_server(c));
	t->c = c;
	net_conn_set(c, t);
	atomic_fetch_add(&t->e->opens, 1);
	tp_reply(t, "HI");
}

static void
tp_on_timeout(struct net_conn *c)
{
	struct tconn	*t = net_conn_get(c);

	atomic_fetch_add(&t->e->timeouts, 1);
	tp_reply(t, "BYE timeout");
}

static void
tp_on_close(struct net_conn *c, const char *reason)
{
	struct env	*e = net_server_arg(net_conn_server(c));

	snprintf(e->reason, sizeof(e->reason), "%s", reason);
	free(net_conn_get(c));
	atomic_fetch_add(&e->closes, 1);
}

static const struct net_ops tp_ops = {
	.on_open = tp_on_open,
	.on_read = tp_on_read,
	.on_timeout = tp_on_timeout,
	.on_close = tp_on_close,
	.on_drain = tp_on_drain,
};

static SSL_CTX *
server_ctx(void)
{
	EVP_PKEY	*k;
	X509		*x;
	X509_NAME	*name;
	SSL_CTX		*ctx;

	assert_non_null(k = EVP_EC_gen("P-256"));
	assert_non_null(x = X509_new());
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	assert_int_equal(X509_set_pubkey(x, k), 1);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"localhost", -1, -1, 0);
	assert_int_equal(X509_set_issuer_name(x, name), 1);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	assert_non_null(ctx = SSL_CTX_new(TLS_server_method()));
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, k), 1);
	X509_free(x);
	EVP_PKEY_free(k);
	return ctx;
}

static void
tick_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct env	*e = arg;
	struct timespec	 now;

	(void)fd;
	(void)ev;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (atomic_load(e->watch) >= e->want ||
	    now.tv_sec > e->deadline.tv_sec ||
	    (now.tv_sec == e->deadline.tv_sec &&
	    now.tv_nsec >= e->deadline.tv_nsec))
		event_base_loopbreak(e->base);
}

static void
turn_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct env	*e = arg;
	struct timeval	 zero = { 0, 0 };

	(void)fd;
	(void)ev;
	if (e->turn_bytes > e->turn_max)
		e->turn_max = e->turn_bytes;
	e->turn_bytes = 0;
	event_add(e->turn, &zero);
}

/* Run the loop until *v >= want or ms passed; 1 if reached. */
static int
loop_until(struct env *e, atomic_int *v, int want, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, &e->deadline);
	e->deadline.tv_sec += ms / 1000;
	e->deadline.tv_nsec += (long)(ms % 1000) * 1000000;
	if (e->deadline.tv_nsec >= 1000000000) {
		e->deadline.tv_sec++;
		e->deadline.tv_nsec -= 1000000000;
	}
	e->watch = v;
	e->want = want;
	if (atomic_load(v) < want)
		(void)event_base_dispatch(e->base);
	return atomic_load(v) >= want;
}

static struct env *
env_new(size_t out_max, unsigned idle_ms, int tls)
{
	struct net_limits	 lim = { 16, idle_ms, out_max, 0, "" };
	struct timeval		 tv = { 0, 2000 };
	struct env		*e = xcalloc(1, sizeof(*e));
	SSL_CTX			*ctx;

	assert_non_null(e->base = event_base_new());
	assert_int_equal(net_server_new(&e->srv, e->base, "test", &lim,
	    &tp_ops, e), 0);
	assert_int_equal(net_server_listen(e->srv, "127.0.0.1", NET_PLAIN,
	    NULL), 0);
	e->port = net_server_port(e->srv, 0);
	assert_true(e->port > 0);
	if (tls) {
		ctx = server_ctx();
		net_server_set_tls(e->srv, ctx);
		SSL_CTX_free(ctx);
	}
	e->tick = event_new(e->base, -1, EV_PERSIST, tick_cb, e);
	assert_non_null(e->tick);
	event_add(e->tick, &tv);
	return e;
}

static void
env_free(struct env *e)
{
	net_server_free(&e->srv);
	if (e->turn != NULL)
		event_free(e->turn);
	event_free(e->tick);
	event_base_free(e->base);
	free(e);
}

/* ------------------------------------------------------------ client */

static char	cli_err[1024];

struct cli {
	int		 fd;
	SSL_CTX		*ctx;
	SSL		*ssl;
	int		 zout;		/* deflating what we send */
	int		 zin;		/* inflating what we receive */
	z_stream	 def;
	z_stream	 inf;
	struct buf	 in;		/* received plaintext, unconsumed */
	int		 eof;
};

static int
cli_fail(int line, const char *what)
{
	if (cli_err[0] == '\0')
		snprintf(cli_err, sizeof(cli_err), "line %d: %s", line, what);
	return -1;
}

#define CFAIL(what)	cli_fail(__LINE__, (what))
/* In scenarios: check, or record and give up. */
#define CK(cond)	do { if (!(cond)) { (void)CFAIL(#cond); return; } \
			} while (0)

/* Connect to 127.0.0.1:port from src (an address of lo), or any. */
static int
cli_open_from(struct cli *cl, int port, int rcvbuf, const char *src)
{
	struct sockaddr_in	sin;
	struct timeval		tv = { CLI_TIMEOUT_S, 0 };
	int			one = 1;

	memset(cl, 0, sizeof(*cl));
	buf_init(&cl->in, CLI_BUF_MAX);
	if ((cl->fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return CFAIL("socket");
	if (rcvbuf > 0)
		(void)setsockopt(cl->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
		    sizeof(rcvbuf));
	(void)setsockopt(cl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(cl->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	(void)setsockopt(cl->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (src != NULL && (inet_pton(AF_INET, src, &sin.sin_addr) != 1 ||
	    bind(cl->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0))
		return CFAIL("bind");
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(cl->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		return CFAIL("connect");
	return 0;
}

static int
cli_open(struct cli *cl, int port, int rcvbuf)
{
	return cli_open_from(cl, port, rcvbuf, NULL);
}

static void
cli_close(struct cli *cl)
{
	if (cl->ssl != NULL)
		SSL_free(cl->ssl);
	SSL_CTX_free(cl->ctx);
	if (cl->zout)
		(void)deflateEnd(&cl->def);
	if (cl->zin)
		(void)inflateEnd(&cl->inf);
	if (cl->fd >= 0)
		close(cl->fd);
	buf_free(&cl->in);
}

static int
cli_send_raw(struct cli *cl, const void *p, size_t n)
{
	const char	*s = p;
	ssize_t		 w;
	int		 r;

	while (n > 0) {
		if (cl->ssl != NULL) {
			r = SSL_write(cl->ssl, s, n > INT32_MAX ? INT32_MAX :
			    (int)n);
			w = r;
		} else
			w = send(cl->fd, s, n, MSG_NOSIGNAL);
		if (w <= 0)
			return CFAIL("send");
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Deflate with one Z_SYNC_FLUSH at the end (what imaplib does). */
static void
cli_deflate(struct cli *cl, struct buf *out, const void *p, size_t n,
    int flush)
{
	unsigned char	chunk[65536];

	cl->def.next_in = (unsigned char *)(uintptr_t)p;
	cl->def.avail_in = (uInt)n;
	do {
		cl->def.next_out = chunk;
		cl->def.avail_out = sizeof(chunk);
		XA(deflate(&cl->def, flush) != Z_STREAM_ERROR);
		XA(buf_append(out, chunk, sizeof(chunk) -
		    cl->def.avail_out) == 0);
	} while (cl->def.avail_out == 0);
}

static int
cli_send(struct cli *cl, const void *p, size_t n)
{
	struct buf	b;
	int		rc;

	if (!cl->zout)
		return cli_send_raw(cl, p, n);
	buf_init(&b, CLI_BUF_MAX);
	cli_deflate(cl, &b, p, n, Z_SYNC_FLUSH);
	rc = cli_send_raw(cl, b.data, b.len);
	buf_free(&b);
	return rc;
}

static int
cli_cmd(struct cli *cl, const char *cmd)
{
	char	line[256];

	snprintf(line, sizeof(line), "%s\r\n", cmd);
	return cli_send(cl, line, strlen(line));
}

static void
cli_zinit(struct cli *cl)
{
	XA(deflateInit2(&cl->def, 6, Z_DEFLATED, -15, 8,
	    Z_DEFAULT_STRATEGY) == Z_OK);
	XA(inflateInit2(&cl->inf, -15) == Z_OK);
	cl->zout = cl->zin = 1;
}

static int
cli_absorb(struct cli *cl, const unsigned char *p, size_t n)
{
	unsigned char	chunk[65536];
	int		zr;

	if (!cl->zin)
		return buf_append(&cl->in, p, n) == 0 ? 0 : CFAIL("too much");
	cl->inf.next_in = (unsigned char *)(uintptr_t)p;
	cl->inf.avail_in = (uInt)n;
	do {
		cl->inf.next_out = chunk;
		cl->inf.avail_out = sizeof(chunk);
		zr = inflate(&cl->inf, Z_SYNC_FLUSH);
		if (zr != Z_OK && zr != Z_BUF_ERROR)
			return CFAIL("client inflate");
		if (buf_append(&cl->in, chunk, sizeof(chunk) -
		    cl->inf.avail_out) != 0)
			return CFAIL("too much");
	} while (cl->inf.avail_out == 0 || cl->inf.avail_in > 0);
	return 0;
}

/* Read once; 0 at EOF (cl->eof), -1 on error. */
static int
cli_fill(struct cli *cl)
{
	unsigned char	raw[65536];
	ssize_t		r;
	int		e;

	if (cl->ssl != NULL) {
		r = SSL_read(cl->ssl, raw, sizeof(raw));
		if (r <= 0) {
			e = SSL_get_error(cl->ssl, (int)r);
			if (e == SSL_ERROR_ZERO_RETURN ||
			    (e == SSL_ERROR_SYSCALL && errno == 0))
				r = 0;
			else
				r = -1;
		}
	} else
		r = recv(cl->fd, raw, sizeof(raw), 0);
	if (r < 0)
		return CFAIL("recv (timeout?)");
	if (r == 0) {
		cl->eof = 1;
		return 0;
	}
	return cli_absorb(cl, raw, (size_t)r) < 0 ? -1 : 1;
}

/* The next CRLF line into out (without CRLF). */
static int
cli_line(struct cli *cl, char *out, size_t outlen)
{
	unsigned char	*nl;
	size_t		 n;

	for (;;) {
		if (cl->in.len > 0 && (nl = memchr(cl->in.data, '\n',
		    cl->in.len)) != NULL) {
			n = (size_t)(nl - cl->in.data);
			if (n == 0 || nl[-1] != '\r' || n - 1 >= outlen)
				return CFAIL("bad line");
			memcpy(out, cl->in.data, n - 1);
			out[n - 1] = '\0';
			buf_consume(&cl->in, n + 1);
			return 0;
		}
		if (cli_fill(cl) <= 0)
			return CFAIL("eof before line");
	}
}

static int
cli_expect(struct cli *cl, const char *want)
{
	char	line[512], msg[600];

	if (cli_line(cl, line, sizeof(line)) < 0)
		return -1;
	if (strcmp(line, want) != 0) {
		snprintf(msg, sizeof(msg), "got '%s' want '%s'", line, want);
		return CFAIL(msg);
	}
	return 0;
}

/* Read n bytes of the GEN_SEED stream, checking every byte. */
static int
cli_pattern(struct cli *cl, size_t n, size_t chunk_sleep_us)
{
	struct gen	g = { GEN_SEED };
	size_t		i, k;

	while (n > 0) {
		if (cl->in.len == 0) {
			if (chunk_sleep_us > 0)
				usleep((useconds_t)chunk_sleep_us);
			if (cli_fill(cl) <= 0)
				return CFAIL("eof in pattern");
		}
		k = cl->in.len < n ? cl->in.len : n;
		for (i = 0; i < k; i++)
			if (cl->in.data[i] != gen_byte(&g))
				return CFAIL("pattern mismatch");
		buf_consume(&cl->in, k);
		n -= k;
	}
	return 0;
}

/* Everything until EOF; its length in *n. */
static int
cli_until_eof(struct cli *cl, size_t *n)
{
	*n = 0;
	for (;;) {
		*n += cl->in.len;
		buf_reset(&cl->in);
		if (cl->eof)
			return 0;
		if (cli_fill(cl) < 0)
			return -1;
	}
}

/* Everything until EOF must be the GEN_SEED stream; *n bytes. */
static int
cli_pattern_eof(struct cli *cl, size_t *n)
{
	struct gen	g = { GEN_SEED };
	size_t		i;

	*n = 0;
	for (;;) {
		for (i = 0; i < cl->in.len; i++)
			if (cl->in.data[i] != gen_byte(&g))
				return CFAIL("pattern mismatch");
		*n += cl->in.len;
		buf_reset(&cl->in);
		if (cl->eof)
			return 0;
		if (cli_fill(cl) < 0)
			return -1;
	}
}

static int
cli_starttls(struct cli *cl)
{
	if (cl->in.len != 0)
		return CFAIL("data pipelined before TLS");
	cl->ctx = SSL_CTX_new(TLS_client_method());
	cl->ssl = SSL_new(cl->ctx);
	SSL_set_fd(cl->ssl, cl->fd);
	if (SSL_connect(cl->ssl) != 1)
		return CFAIL("SSL_connect");
	return 0;
}

/*
 * Send COMPRESS (optionally with compressed commands in the same
 * segment), read the plaintext OK, then inflate whatever followed it.
 */
static int
cli_compress(struct cli *cl, const char *pipelined)
{
	struct buf	b;
	int		rc;

	cli_zinit(cl);
	buf_init(&b, CLI_BUF_MAX);
	XA(buf_append(&b, "COMPRESS\r\n", 10) == 0);
	if (pipelined != NULL)
		cli_deflate(cl, &b, pipelined, strlen(pipelined),
		    Z_SYNC_FLUSH);
	rc = cli_send_raw(cl, b.data, b.len);
	buf_free(&b);
	if (rc < 0)
		return -1;
	cl->zin = 0;
	if (cli_expect(cl, "OK compress") < 0)
		return -1;
	cl->zin = 1;
	buf_init(&b, CLI_BUF_MAX);
	XA(buf_append(&b, cl->in.data, cl->in.len) == 0);
	buf_reset(&cl->in);
	rc = cli_absorb(cl, b.data, b.len);
	buf_free(&b);
	return rc;
}

/* ------------------------------------------------------------ runner */

typedef void	scenario_fn(struct env *);

struct run {
	struct env	*e;
	scenario_fn	*fn;
};

static void *
client_main(void *arg)
{
	struct run	*r = arg;

	r->fn(r->e);
	atomic_store(&r->e->client_done, 1);
	return NULL;
}

static void
run_client(struct env *e, scenario_fn *fn)
{
	struct run	r = { e, fn };
	pthread_t	th;

	cli_err[0] = '\0';
	atomic_store(&e->client_done, 0);
	assert_int_equal(pthread_create(&th, NULL, client_main, &r), 0);
	while (!loop_until(e, &e->client_done, 1, 1000))
		;
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_string_equal(cli_err, "");
}

static int
wait_atomic(atomic_int *v, int want, unsigned ms)
{
	while (atomic_load(v) < want && ms-- > 0)
		usleep(1000);
	return atomic_load(v) >= want;
}

/* A line "ECHO " + n bytes of letters. */
static char *
echo_line(size_t n, size_t *len)
{
	char	*p = xmalloc(n + 8);
	size_t	 i;

	memcpy(p, "ECHO ", 5);
	for (i = 0; i < n; i++)
		p[5 + i] = (char)('a' + (i * 7 + i / 13) % 26);
	p[5 + n] = '\0';
	*len = 5 + n;
	return p;
}

static int
cli_echo(struct cli *cl, size_t n)
{
	char	*p;
	size_t	 len;
	int	 rc = -1;

	p = echo_line(n, &len);
	memcpy(p + len, "\r\n", 2);
	if (cli_send(cl, p, len + 2) < 0)
		goto done;
	while (cl->in.len < len + 2)
		if (cli_fill(cl) <= 0) {
			(void)CFAIL("eof in echo");
			goto done;
		}
	if (memcmp(cl->in.data, p, len + 2) != 0) {
		(void)CFAIL("echo differs");
		goto done;
	}
	buf_consume(&cl->in, len + 2);
	rc = 0;
done:
	free(p);
	return rc;
}

/* ---------------------------------------------------- compress cases */

static int	scen_tls;

static void
scen_compress(struct env *e)
{
	struct cli	 cl;
	const char	*split = "ECHO split across many segments\r\n";
	struct buf	 b;
	size_t		 i, n;
	char		 want[64];

	if (cli_open(&cl, e->port, 0) < 0)
		return;
	CK(cli_expect(&cl, "HI") == 0);
	if (scen_tls) {
		CK(cli_cmd(&cl, "STARTTLS") == 0);
		CK(cli_expect(&cl, "OK tls") == 0);
		CK(cli_starttls(&cl) == 0);
	}
	CK(cli_cmd(&cl, "HELLO") == 0);
	CK(cli_expect(&cl, "OK hello") == 0);
	/* compressed commands in the same segment as COMPRESS */
	CK(cli_compress(&cl, "HELLO\r\nECHO abc\r\n") == 0);
	CK(cli_expect(&cl, "OK hello") == 0);
	CK(cli_expect(&cl, "ECHO abc") == 0);
	/* small and big, both ways */
	CK(cli_echo(&cl, 1) == 0);
	CK(cli_echo(&cl, 1000) == 0);
	CK(cli_echo(&cl, 60000) == 0);
	CK(cli_echo(&cl, LINE_MAX_TP - 5) == 0);
	CK(cli_echo(&cl, 7) == 0);
	/* one deflate block split into single-byte segments */
	buf_init(&b, 4096);
	cli_deflate(&cl, &b, split, strlen(split), Z_SYNC_FLUSH);
	for (i = 0; i < b.len; i++) {
		CK(cli_send_raw(&cl, b.data + i, 1) == 0);
		usleep(500);
	}
	buf_free(&b);
	CK(cli_expect(&cl, "ECHO split across many segments") == 0);
	/* COMPRESS again: ERR_INVAL; STARTTLS now: refused */
	CK(cli_cmd(&cl, "COMPRESS") == 0);
	CK(cli_expect(&cl, "OK compress") == 0);
	snprintf(want, sizeof(want), "NO active %d", ERR_INVAL);
	CK(cli_expect(&cl, want) == 0);
	CK(cli_cmd(&cl, "STARTTLS") == 0);
	CK(cli_expect(&cl, "OK tls") == 0);
	snprintf(want, sizeof(want), "NO tls %d", ERR_INVAL);
	CK(cli_expect(&cl, want) == 0);
	CK(cli_cmd(&cl, "QUIT") == 0);
	CK(cli_expect(&cl, "BYE") == 0);
	CK(cli_until_eof(&cl, &n) == 0);
	CK(n == 0);
	cli_close(&cl);
}

static void
test_common_net__compress_plain(void **state)
{
	struct env	*e = env_new(1 << 20, 10000, 1);

	(void)state;
	scen_tls = 0;
	e->after_compress = 1;
	run_client(e, scen_compress);
	/* pipelined compressed bytes were not left for the line parser */
	assert_int_equal(e->after_compress, 0);
	assert_true(loop_until(e, &e->closes, 1, 5000));
	assert_string_equal(e->reason, "quit");
	env_free(e);
}

static void
test_common_net__compress_starttls(void **state)
{
	struct env	*e = env_new(1 << 20, 10000, 1);

	(void)state;
	scen_tls = 1;
	e->after_compress = 1;
	run_client(e, scen_compress);
	assert_int_equal(e->after_compress, 0);
	assert_true(loop_until(e, &e->closes, 1, 5000));
	assert_string_equal(e->reason, "quit");
	env_free(e);
}

static size_t	flood_got;
static int	flood_z;

static void
scen_flood(struct env *e)
{
	struct cli	cl;

	if (cli_open(&cl, e->port, 0) < 0)
		return;
	CK(cli_expect(&cl, "HI") == 0);
	if (flood_z)
		CK(cli_compress(&cl, NULL) == 0);
	CK(cli_cmd(&cl, "FLOOD") == 0);
	CK(cli_pattern_eof(&cl, &flood_got) == 0);
	cli_close(&cl);
}

static void
flood_case(int z)
{
	size_t		 out_max = 300000;
	struct env	*e = env_new(out_max, 10000, 0);

	flood_z = z;
	flood_got = 0;
	run_client(e, scen_flood);
	assert_true(loop_until(e, &e->closes, 1, 5000));
	assert_int_equal(e->flood_rc, ERR_TOOBIG);
	assert_true(e->flood_written <= out_max);
	assert_true(e->flood_written > out_max - FLOOD_CHUNK - 64);
	assert_int_equal(flood_got, e->flood_written);
	assert_string_equal(e->reason, "flood");
	env_free(e);
}

static void
test_common_net__compress_out_limit(void **state)
{
	(void)state;
	flood_case(0);
	flood_case(1);
}

/* Send n bytes of c compressed, in 1 MiB pieces; one sync flush. */
static int
cli_send_bomb(struct cli *cl, const char *prefix, int c, size_t n)
{
	static char	piece[1 << 20];
	struct buf	b;
	size_t		k;
	int		rc = 0;

	memset(piece, c, sizeof(piece));
	buf_init(&b, CLI_BUF_MAX);
	cli_deflate(cl, &b, prefix, strlen(prefix), Z_NO_FLUSH);
	while (n > 0 && rc == 0) {
		k = n < sizeof(piece) ? n : sizeof(piece);
		n -= k;
		cli_deflate(cl, &b, piece, k, n == 0 ? Z_SYNC_FLUSH :
		    Z_NO_FLUSH);
		if (b.len > 65536 || n == 0) {
			rc = cli_send_raw(cl, b.data, b.len);
			buf_reset(&b);
		}
	}
	buf_free(&b);
	return rc;
}

static void
scen_bomb(struct env *e)
{
	struct cli	cl;
	size_t		n;

	if (cli_open(&cl, e->port, 0) < 0)
		return;
	CK(cli_expect(&cl, "HI") == 0);
	CK(cli_compress(&cl, NULL) == 0);
	/* 64 MiB without CRLF: about 64 KiB compressed */
	(void)cli_send_bomb(&cl, "ECHO ", 'A', 64u << 20);
	cli_err[0] = '\0';	/* the server may close while we send */
	CK(cli_expect(&cl, "ERR too long") == 0);
	CK(cli_until_eof(&cl, &n) == 0);
	cli_close(&cl);
}

static void
test_common_net__compress_bomb(void **state)
{
	struct env	*e = env_new(1 << 20, 10000, 0);

	(void)state;
	run_client(e, scen_bomb);
	assert_true(loop_until(e, &e->closes, 1, 5000));
	assert_string_equal(e->reason, "too-long");
	assert_true(e->max_in > LINE_MAX_TP);
	assert_true(e->max_in <= NET_INFLATE_MAX + NET_INFLATE_CHUNK);
	env_free(e);
}

static void
scen_hold(struct env *e)
{
	struct cli	cl;
	size_t		n;

	if (cli_open(&cl, e->port, 0) < 0)
		return;
	CK(cli_expect(&cl, "HI") == 0);
	CK(cli_compress(&cl, NULL) == 0);
	CK(cli_cmd(&cl, "HOLD") == 0);
	CK(cli_expect(&cl, "OK hold") == 0);
	(void)cli_send_bomb(&cl, "", 'B', 16u << 20);
	cli_err[0] = '\0';
	CK(cli_expect(&cl, "BYE timeout") == 0);
	CK(cli_until_eof(&cl, &n) == 0);
	cli_close(&cl);
}

/* A protocol that never drains: memory stays bounded, idle_ms closes. */
static void
test_common_net__compress_stall_timeout(void **state)
{
	struct env	*e = env_new(1 << 20, 400, 0);

	(void)state;
	run_client(e, scen_hold);
	assert_true(loop_until(e, &e->closes, 1, 5000));
	assert_string_equal(e->reason, "timeout");
	assert_int_equal(atomic_load(&e->timeouts), 1);
	assert_true(e->max_in <= NET_INFLATE_MAX + NET_INFLATE_CHUNK);
	env_free(e);
}

static void
scen_sink(struct env *e)
{
	struct cli	cl;

	if (cli_open(&cl, e->port, 0) < 0)
		return;
	CK(cli_expect(&cl, "HI") == 0);
	CK(cli_compress(&cl, NULL) == 0);
	CK(cli_cmd(&cl, "SINK 50000000") == 0);
	CK(cli_send_bomb(&cl, "", 0, 50000000) == 0);
	CK(cli_cmd(&cl, "ECHO after") == 0);
	CK(cli_expect(&cl, "OK sunk") == 0);
	CK(cli_expect(&cl, "ECHO after") == 0);
	CK(cli_cmd(&cl, "QUIT") == 0);
	CK(cli_expect(&cl, "BYE") == 0);
	cli_close(&cl);
}

/*
 * A protocol that drains everything: 50 MB are inflated in bounded
 * turns of the loop (other connections get their I/O in between).
 */
static void
test_common_net__compress_sink(void **state)
{
	struct env	*e = env_new(1 << 20, 10000, 0);
	struct timeval	 zero = { 0, 0 };

	(void)state;
	e->turn = evtimer_new(e->base, turn_cb, e);
	event_add(e->turn, &zero);
	run_client(e, scen_sink);
	assert_true(loop_until(e, &e->closes, 1, 5000));
	assert_true(e->max_in <= NET_INFLATE_MAX + NET_INFLATE_CHUNK);
	assert_true(e->turn_max > 0);
	assert_true(e->turn_max <= 2 * (1024 * 1024 + NET_INFLATE_MAX +
	    NET_INFLATE_CHUNK));
	env_free(e);
}

static void
scen_corrupt(struct env *e)
{
	struct cli	cl;
	size_t		n;

	if (cli_open(&cl, e->port, 0) < 0)
		return;
	CK(cli_expect(&cl, "HI") == 0);
	CK(cli_compress(&cl, NULL) == 0);
	CK(cli_cmd(&cl, "HELLO") == 0);
	CK(cli_expect(&cl, "OK hello") == 0);
	/* a deflate block of the reserved type 3 */
	CK(cli_send_raw(&cl, "\xff\xff\xff\xff", 4) == 0);
	(void)cli_until_eof(&cl, &n);	/* EOF or reset */
	cli_err[0] = '\0';
	cli_close(&cl);
}

/* A corrupt compressed stream closes the connection. */
static void
test_common_net__compress_corrupt(void **state)
{
	struct env	*e = env_new(1 << 20, 10000, 0);

	(void)state;
	run_client(e, scen_corrupt);
	assert_true(loop_until(e, &e->closes, 1, 5000));
	assert_string_equal(e->reason, "compress-error");
	env_free(e);
}

/* ------------------------------------------------------- drain cases */

static int	drain_z;

static void
scen_stream(struct env *e)
{
	struct cli	cl;

	if (cli_open(&cl, e->port, 65536) < 0)
		return;
	CK(cli_expect(&cl, "HI") == 0);
	if (drain_z)
		CK(cli_compress(&cl, NULL) == 0);
	CK(cli_cmd(&cl, "STREAM 2000000 16384 65536") == 0);
	CK(cli_pattern(&cl, 2000000, 0) == 0);
	CK(cli_expect(&cl, "OK streamed") == 0);
	CK(cli_cmd(&cl, "QUIT") == 0);
	CK(cli_expect(&cl, "BYE") == 0);
	cli_close(&cl);
}

/* A long response sent in slices from on_drain. */
static void
test_common_net__drain_stream(void **state)
{
	struct env	*e;
	int		 z;

	(void)state;
	for (z = 0; z < 2; z++) {
		e = env_new(1 << 20, 10000, 0);
		drain_z = z;
		run_client(e, scen_stream);
		assert_true(atomic_load(&e->drains) >= 2000000 / 65536);
		assert_true(loop_until(e, &e->closes, 1, 5000));
		env_free(e);
	}
}

/* ------------------------------------------------ per-address limit */

static void
scen_per_ip(struct env *e)
{
	struct cli	a, b, c, d, f;
	size_t		n;
	int		closes;

	CK(cli_open(&a, e->port, 0) == 0);
	CK(cli_expect(&a, "HI") == 0);
	CK(cli_open(&b, e->port, 0) == 0);
	CK(cli_expect(&b, "HI") == 0);
	/* the third from 127.0.0.1: the refusal line, then EOF */
	CK(cli_open(&c, e->port, 0) == 0);
	CK(cli_expect(&c, "NO too many") == 0);
	CK(cli_until_eof(&c, &n) == 0 && n == 0);
	cli_close(&c);
	/* another address is not affected */
	CK(cli_open_from(&d, e->port, 0, "127.0.0.2") == 0);
	CK(cli_expect(&d, "HI") == 0);
	/* the first two still work; once one is gone, a new one is let in */
	CK(cli_cmd(&a, "HELLO") == 0);
	CK(cli_expect(&a, "OK hello") == 0);
	closes = atomic_load(&e->closes);
	CK(cli_cmd(&b, "QUIT") == 0);
	CK(cli_expect(&b, "BYE") == 0);
	cli_close(&b);
	CK(wait_atomic(&e->closes, closes + 1, 5000));
	CK(cli_open(&f, e->port, 0) == 0);
	CK(cli_expect(&f, "HI") == 0);
	cli_close(&f);
	cli_close(&d);
	cli_close(&a);
}

static void
key_of(char *out, size_t outlen, int family, const char *addr)
{
	struct sockaddr_in	s4;
	struct sockaddr_in6	s6;

	if (family == AF_INET) {
		memset(&s4, 0, sizeof(s4));
		s4.sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, addr, &s4.sin_addr), 1);
		net_peer_key(out, outlen, (struct sockaddr *)&s4, sizeof(s4));
	} else {
		memset(&s6, 0, sizeof(s6));
		s6.sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, addr, &s6.sin6_addr), 1);
		net_peer_key(out, outlen, (struct sockaddr *)&s6, sizeof(s6));
	}
}

/* IPv4 addresses count one by one, IPv6 ones by /64, mapped IPv4 as v4. */
static void
test_common_net__peer_key(void **state)
{
	char	k[64];

	(void)state;
	key_of(k, sizeof(k), AF_INET, "192.0.2.7");
	assert_string_equal(k, "192.0.2.7");
	key_of(k, sizeof(k), AF_INET6, "2001:db8:1:2:aaaa:bbbb:cccc:1");
	assert_string_equal(k, "2001:db8:1:2::/64");
	key_of(k, sizeof(k), AF_INET6, "2001:db8:1:2::ffff");
	assert_string_equal(k, "2001:db8:1:2::/64");
	key_of(k, sizeof(k), AF_INET6, "2001:db8:1:3::1");
	assert_string_equal(k, "2001:db8:1:3::/64");
	key_of(k, sizeof(k), AF_INET6, "::1");
	assert_string_equal(k, "::/64");
	key_of(k, sizeof(k), AF_INET6, "::ffff:192.0.2.7");
	assert_string_equal(k, "::ffff:192.0.2.7");
}

/*
 * max_per_ip: at the limit a peer address is refused with the refuse
 * line before on_open (and so before it could evict anything); other
 * addresses and later connections are counted apart.
 */
static void
test_common_net__per_ip_limit(void **state)
{
	struct env		*e;
	struct net_limits	 lim = { 16, 10000, 1 << 20, 2, "NO too many" };

	(void)state;
	e = env_new(1 << 20, 10000, 0);
	net_server_set_limits(e->srv, &lim);
	run_client(e, scen_per_ip);
	assert_int_equal(atomic_load(&e->opens), 4);
	env_free(e);
}

#define FILL_N	8000000

static void
scen_fill(struct env *e)
{
	struct cli	cl;

	if (cli_open(&cl, e->port, 32768) < 0)
		return;
	CK(cli_expect(&cl, "HI") == 0);
	if (drain_z)
		CK(cli_compress(&cl, NULL) == 0);
	CK(cli_cmd(&cl, "FILL 8000000 1024") == 0);
	usleep(300 * 1000);
	/* nothing read: output is above the mark, no call */
	CK(atomic_load(&e->drains) == 0);
	CK(cli_pattern(&cl, FILL_N, 0) == 0);
	CK(wait_atomic(&e->drains, 1, 5000));
	CK(cli_cmd(&cl, "HELLO") == 0);
	CK(cli_expect(&cl, "OK hello") == 0);
	usleep(100 * 1000);
	CK(atomic_load(&e->drains) == 1);	/* one-shot */
	CK(cli_cmd(&cl, "QUIT") == 0);
	CK(cli_expect(&cl, "BYE") == 0);
	cli_close(&cl);
}

/* on_drain: not while above the mark, once at or below it, once only. */
static void
test_common_net__drain_once(void **state)
{
	struct env	*e;
	int		 z;

	(void)state;
	for (z = 0; z < 2; z++) {
		e = env_new(16u << 20, 10000, 0);
		drain_z = z;
		run_client(e, scen_fill);
		assert_true(e->fill_outlen > 1024);
		assert_int_equal(atomic_load(&e->drains), 1);
		assert_true(loop_until(e, &e->closes, 1, 5000));
		env_free(e);
	}
}

static void
scen_drainnow(struct env *e)
{
	struct cli	cl;

	(void)e;
	if (cli_open(&cl, e->port, 0) < 0)
		return;
	CK(cli_expect(&cl, "HI") == 0);
	if (drain_z)
		CK(cli_compress(&cl, NULL) == 0);
	CK(cli_cmd(&cl, "DRAINNOW") == 0);
	CK(cli_expect(&cl, "drained") == 0);
	CK(cli_cmd(&cl, "QUIT") == 0);
	CK(cli_expect(&cl, "BYE") == 0);
	cli_close(&cl);
}

/* Already below the mark: deferred to the loop, never from the call. */
static void
test_common_net__drain_deferred(void **state)
{
	struct env	*e;
	int		 z;

	(void)state;
	for (z = 0; z < 2; z++) {
		e = env_new(1 << 20, 10000, 0);
		drain_z = z;
		run_client(e, scen_drainnow);
		assert_int_equal(e->drain_in_call, 0);
		assert_int_equal(atomic_load(&e->drains), 1);
		assert_true(loop_until(e, &e->closes, 1, 5000));
		env_free(e);
	}
}

static void
scen_drainclose(struct env *e)
{
	struct cli	cl;
	size_t		n;

	if (cli_open(&cl, e->port, 0) < 0)
		return;
	CK(cli_expect(&cl, "HI") == 0);
	if (drain_z)
		CK(cli_compress(&cl, NULL) == 0);
	CK(cli_cmd(&cl, "DRAINCLOSE") == 0);
	CK(cli_expect(&cl, "BYE") == 0);
	CK(cli_until_eof(&cl, &n) == 0);
	CK(n == 0);
	cli_close(&cl);
	if (cli_open(&cl, e->port, 32768) < 0)
		return;
	CK(cli_expect(&cl, "HI") == 0);
	if (drain_z)
		CK(cli_compress(&cl, NULL) == 0);
	CK(cli_cmd(&cl, "FILLCLOSE 4000000") == 0);
	usleep(200 * 1000);
	CK(cli_pattern_eof(&cl, &n) == 0);
	CK(n == 4000000);
	cli_close(&cl);
}

/* Closing cancels a pending on_drain (due now, or due at the mark). */
static void
test_common_net__drain_close(void **state)
{
	struct env	*e;
	int		 z;

	(void)state;
	for (z = 0; z < 2; z++) {
		e = env_new(16u << 20, 10000, 0);
		drain_z = z;
		run_client(e, scen_drainclose);
		assert_true(loop_until(e, &e->closes, 2, 5000));
		assert_int_equal(atomic_load(&e->drains), 0);
		assert_string_equal(e->reason, "fillclose");
		env_free(e);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_common_net__compress_plain),
		cmocka_unit_test(test_common_net__compress_starttls),
		cmocka_unit_test(test_common_net__compress_out_limit),
		cmocka_unit_test(test_common_net__compress_bomb),
		cmocka_unit_test(test_common_net__compress_stall_timeout),
		cmocka_unit_test(test_common_net__compress_sink),
		cmocka_unit_test(test_common_net__compress_corrupt),
		cmocka_unit_test(test_common_net__drain_stream),
		cmocka_unit_test(test_common_net__drain_once),
		cmocka_unit_test(test_common_net__drain_deferred),
		cmocka_unit_test(test_common_net__drain_close),
		cmocka_unit_test(test_common_net__per_ip_limit),
		cmocka_unit_test(test_common_net__peer_key),
	};

	signal(SIGPIPE, SIG_IGN);
	log_setlevel(LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
