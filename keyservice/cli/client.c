/*
 * client.c -- the CLI's HTTPS client for the keyservice API: blocking
 * TCP connect with a timeout, TLS with the node CA and mutual
 * authentication, one HTTP/1.1 request per connection, and a bounded
 * response parser (status line, headers, Content-Length or EOF, JSON).
 *
 * Runs in: the admin's shell.
 * Failure policy: connect and TLS failures are ERR_IO / ERR_GENERIC with
 * one err_msg() line; a malformed, truncated or oversized response is
 * ERR_PROTO / ERR_TOOBIG; nothing is retried.
 * SECURITY: the server chain must verify against [tls] ca and its
 * certificate must name the host or IP connected to; every read is
 * bounded (CLI_HEAD_MAX, CLI_BODY_MAX) and timed out; request and
 * response buffers may hold passwords and are wiped when freed.
 */
#include <sys/socket.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/err.h"
#include "common/tls.h"
#include "common/util.h"
#include "keyservice/cli/cli.h"

#define CLI_READ_CHUNK	16384
#define CLI_PRESIZE	(4 * CLI_READ_CHUNK)	/* see cli__presize() */

/* ------------------------------------------------------------ encoding */

int
cli_pct_encode(char *out, size_t size, const char *s)
{
	static const char	hex[] = "0123456789ABCDEF";
	const unsigned char	*p;
	size_t			 n = 0;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL) {
			if (n + 1 >= size)
				goto toobig;
			out[n++] = (char)*p;
		} else {
			if (n + 3 >= size)
				goto toobig;
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 0x0f];
		}
	}
	if (size == 0)
		goto toobig;
	out[n] = '\0';
	return 0;
toobig:
	if (size > 0)
		out[0] = '\0';
	err_set(ERR_TOOBIG, "argument too long for a request");
	return ERR_TOOBIG;
}

int
cli_target(char *out, size_t size, const char *prefix, const char *arg,
    const char *suffix)
{
	size_t	n = strlen(prefix);
	int	rc;

	if (n >= size) {
		err_set(ERR_TOOBIG, "request target too long");
		return ERR_TOOBIG;
	}
	memcpy(out, prefix, n + 1);
	if ((rc = cli_pct_encode(out + n, size - n, arg)) < 0)
		return rc;
	n = strlen(out);
	if (suffix != NULL && (size_t)snprintf(out + n, size - n, "%s",
	    suffix) >= size - n) {
		err_set(ERR_TOOBIG, "request target too long");
		return ERR_TOOBIG;
	}
	return 0;
}

int
cli_addr_split(char *host, size_t hostlen, char *port, size_t portlen,
    const char *addr)
{
	const char	*colon, *h = addr;
	size_t		 hl;

	if (addr[0] == '[') {
		if ((colon = strstr(addr, "]:")) == NULL)
			goto bad;
		h = addr + 1;
		hl = (size_t)(colon - h);
		colon++;
	} else {
		if ((colon = strrchr(addr, ':')) == NULL ||
		    memchr(addr, ':', (size_t)(colon - addr)) != NULL)
			goto bad;
		hl = (size_t)(colon - addr);
	}
	if (hl == 0 || hl >= hostlen || colon[1] == '\0' ||
	    strlen(colon + 1) >= portlen ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1))
		goto bad;
	memcpy(host, h, hl);
	host[hl] = '\0';
	snprintf(port, portlen, "%s", colon + 1);
	return 0;
bad:
	err_set(ERR_INVAL, "bad address '%s' (want host:port or [v6]:port)",
	    addr);
	return ERR_INVAL;
}

/* ------------------------------------------------------------ response */

void
cli_resp_clear(struct cli_resp *r)
{
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

static int
cli__proto(const char *msg)
{
	err_set(ERR_PROTO, "bad response from keyservice: %s", msg);
	return ERR_PROTO;
}

/* "HTTP/1.x DDD[ reason]" */
static int
cli__status_line(struct cli_resp *r, const char *l, size_t n)
{
	if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 ||
	    (l[7] != '0' && l[7] != '1') || l[8] != ' ' ||
	    l[9] < '1' || l[9] > '5' || l[10] < '0' || l[10] > '9' ||
	    l[11] < '0' || l[11] > '9' || (n > 12 && l[12] != ' '))
		return cli__proto("bad status line");
	r->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	if (r->status < 200)
		return cli__proto("unexpected interim response");
	return 0;
}

/* One "Name: value" line; only the framing headers matter here. */
static int
cli__header(struct cli_resp *r, const char *l, size_t n)
{
	const char	*colon = memchr(l, ':', n), *v;
	size_t		 nl, vl, i;
	uint64_t	 cl = 0;

	if (colon == NULL || colon == l)
		return cli__proto("bad header line");
	nl = (size_t)(colon - l);
	for (i = 0; i < nl; i++)
		if (l[i] <= ' ' || l[i] == 0x7f)
			return cli__proto("bad header name");
	for (v = colon + 1; v < l + n && (*v == ' ' || *v == '\t'); v++)
		;
	for (vl = (size_t)(l + n - v); vl > 0 && (v[vl - 1] == ' ' ||
	    v[vl - 1] == '\t'); vl--)
		;
	if (nl == 17 && strncasecmp(l, "Transfer-Encoding", nl) == 0)
		return cli__proto("Transfer-Encoding is not supported");
	if (nl != 14 || strncasecmp(l, "Content-Length", nl) != 0)
		return 0;
	if (vl == 0 || vl > 19)
		return cli__proto("bad Content-Length");
	for (i = 0; i < vl; i++) {
		if (v[i] < '0' || v[i] > '9')
			return cli__proto("bad Content-Length");
		cl = cl * 10 + (uint64_t)(v[i] - '0');
	}
	if (r->has_length && r->content_length != cl)
		return cli__proto("conflicting Content-Length");
	r->has_length = 1;
	r->content_length = cl;
	return 0;
}

/* Find the end of the head; parse the status line and headers. */
static int
cli__head(struct cli_resp *r, const unsigned char *data, size_t len,
    int final)
{
	const char	*s = (const char *)data, *nl;
	size_t		 off = 0, n, lineno = 0, scan;
	int		 rc;

	scan = len < CLI_HEAD_MAX ? len : CLI_HEAD_MAX;
	for (;;) {
		if ((nl = memchr(s + off, '\n', scan - off)) == NULL) {
			if (scan >= CLI_HEAD_MAX) {
				err_set(ERR_TOOBIG, "keyservice response "
				    "head over %d bytes", CLI_HEAD_MAX);
				return ERR_TOOBIG;
			}
			return final ? cli__proto("truncated head") :
			    ERR_AGAIN;
		}
		n = (size_t)(nl - (s + off));
		if (n > 0 && s[off + n - 1] == '\r')
			n--;
		if (memchr(s + off, '\0', n) != NULL ||
		    memchr(s + off, '\r', n) != NULL)
			return cli__proto("control character in head");
		if (lineno == 0)
			rc = cli__status_line(r, s + off, n);
		else if (n == 0) {
			r->head_len = (size_t)(nl - s) + 1;
			return 0;
		} else if (s[off] == ' ' || s[off] == '\t')
			rc = cli__proto("folded header");
		else if (lineno > CLI_HEADERS_MAX)
			rc = cli__proto("too many headers");
		else
			rc = cli__header(r, s + off, n);
		if (rc < 0)
			return rc;
		lineno++;
		off = (size_t)(nl - s) + 1;
	}
}

int
cli_resp_parse(struct cli_resp *r, const unsigned char *data, size_t len,
    size_t max, int final)
{
	json_error_t	jerr;
	size_t		 avail;
	int		 rc;

	memset(r, 0, sizeof(*r));
	if ((rc = cli__head(r, data, len, final)) < 0)
		return rc;
	avail = len - r->head_len;
	if (r->status == 204 || r->status == 304) {
		r->body_len = 0;
	} else if (r->has_length) {
		if (r->content_length > max)
			goto toobig;
		if (avail < r->content_length)
			return final ? cli__proto("truncated body") :
			    ERR_AGAIN;
		r->body_len = (size_t)r->content_length;
	} else {
		if (avail > max)
			goto toobig;
		if (!final)
			return ERR_AGAIN;
		r->body_len = avail;
	}
	r->body = data + r->head_len;
	if (r->body_len > 0 && (r->json = json_loadb((const char *)r->body,
	    r->body_len, 0, &jerr)) == NULL && r->status < 300) {
		err_set(ERR_PROTO, "bad response from keyservice: not JSON: "
		    "%s", jerr.text);
		return ERR_PROTO;
	}
	return 0;
toobig:
	err_set(ERR_TOOBIG, "keyservice response body over %zu bytes", max);
	return ERR_TOOBIG;
}

/* ------------------------------------------------------------ connect */

/* Non-blocking connect bounded by CLI_CONNECT_TIMEOUT_MS. */
static int
cli__connect_one(const struct addrinfo *ai)
{
	struct pollfd	pfd;
	struct timeval	tv = { CLI_IO_TIMEOUT_MS / 1000, 0 };
	socklen_t	sl = sizeof(int);
	int		fd, e = 0;

	if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, ai->ai_protocol)) < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS)
			goto fail;
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if ((e = poll(&pfd, 1, CLI_CONNECT_TIMEOUT_MS)) <= 0) {
			errno = e == 0 ? ETIMEDOUT : errno;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) < 0)
			goto fail;
		if (e != 0) {
			errno = e;
			goto fail;
		}
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		goto fail;
	return fd;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

static int
cli__tcp_connect(int *fd_out, const char *host, const char *port,
    const char *addr)
{
	struct addrinfo	 hints, *res = NULL, *ai;
	int		 rc, fd = -1, e = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		err_set(ERR_IO, "%s: %s", addr, gai_strerror(rc));
		return ERR_IO;
	}
	for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
		if ((fd = cli__connect_one(ai)) < 0)
			e = errno;
	freeaddrinfo(res);
	if (fd < 0) {
		err_set(ERR_IO, "cannot connect to %s: %s", addr, strerror(e));
		return ERR_IO;
	}
	*fd_out = fd;
	return 0;
}

/* A failed handshake: say why the certificate was refused if it was. */
static int
cli__tls_fail(SSL *ssl, const char *addr)
{
	long	v = SSL_get_verify_result(ssl);
	char	what[320];

	if (v != X509_V_OK) {
		ERR_clear_error();
		err_set(ERR_GENERIC, "%s: server certificate refused: %s",
		    addr, X509_verify_cert_error_string(v));
		return ERR_GENERIC;
	}
	snprintf(what, sizeof(what), "TLS handshake with %s", addr);
	if (ERR_peek_error() == 0) {
		err_set(ERR_GENERIC, "%s: connection closed (is our client "
		    "certificate accepted?)", what);
		return ERR_GENERIC;
	}
	return tls_error(what);
}

int
cli_conn_open(struct cli_conn *c, SSL_CTX *ctx, const char *addr)
{
	char	host[256], port[16];
	int	rc, ip;

	c->fd = -1;
	c->ssl = NULL;
	if ((rc = cli_addr_split(host, sizeof(host), port, sizeof(port),
	    addr)) < 0 ||
	    (rc = cli__tcp_connect(&c->fd, host, port, addr)) < 0)
		return rc;
	if ((c->ssl = SSL_new(ctx)) == NULL || !SSL_set_fd(c->ssl, c->fd)) {
		rc = tls_error("SSL_new");
		goto fail;
	}
	SSL_set_options(c->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* an IP address is checked against IP SANs, a name against DNS */
	ip = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host);
	if (!ip && (!SSL_set_tlsext_host_name(c->ssl, host) ||
	    !SSL_set1_host(c->ssl, host))) {
		rc = tls_error(host);
		goto fail;
	}
	ERR_clear_error();
	if (SSL_connect(c->ssl) != 1) {
		rc = cli__tls_fail(c->ssl, addr);
		goto fail;
	}
	return 0;
fail:
	cli_conn_close(c);
	return rc;
}

void
cli_conn_close(struct cli_conn *c)
{
	if (c->ssl != NULL) {
		if (SSL_is_init_finished(c->ssl))
			(void)SSL_shutdown(c->ssl);	/* close_notify */
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
	c->ssl = NULL;
	c->fd = -1;
}

/* ------------------------------------------------------------ requests */

int
cli_client_init(struct cli_client *cl, const char *addr, const char *ca,
    const char *cert, const char *key)
{
	struct tls_opts	o;

	memset(cl, 0, sizeof(*cl));
	memset(&o, 0, sizeof(o));
	if (ca == NULL) {
		err_set(ERR_INVAL, "[tls] ca is not set");
		return ERR_INVAL;
	}
	if (cert == NULL || key == NULL) {
		err_set(ERR_INVAL, "no client certificate: set [cli] cert "
		    "and key, or give --cert and --key");
		return ERR_INVAL;
	}
	o.ca = ca;
	o.cert = cert;
	o.key = key;
	o.verify = TLS_VERIFY_REQUIRE;
	cl->addr = addr;
	return tls_client_ctx_new(&cl->ctx, &o);
}

void
cli_client_free(struct cli_client *cl)
{
	SSL_CTX_free(cl->ctx);
	cl->ctx = NULL;
}

/*
 * Give b room for n bytes up front: growing a buffer reallocates, and
 * realloc() frees the old block unwiped, which must not happen to one
 * holding a password.  Requests and the answers that carry secrets fit.
 */
static void
cli__presize(struct buf *b, size_t n)
{
	static const unsigned char	zero[1024];

	while (b->len < n && buf_append(b, zero, sizeof(zero)) == 0)
		;
	buf_reset(b);
}

static int
cli__dump_cb(const char *p, size_t n, void *arg)
{
	return buf_append(arg, p, n) < 0 ? -1 : 0;
}

/* The request head and body, ready to send. */
static int
cli__build(struct buf *out, const char *addr, const char *method,
    const char *target, json_t *body)
{
	struct buf	b;
	int		rc = 0;

	buf_init(&b, CLI_BODY_MAX);
	cli__presize(&b, CLI_PRESIZE);
	if (body != NULL && json_dump_callback(body, cli__dump_cb, &b,
	    JSON_COMPACT) < 0) {
		err_set(ERR_TOOBIG, "request body too large");
		rc = ERR_TOOBIG;
		goto done;
	}
	if (buf_printf(out, "%s %s HTTP/1.1\r\nHost: %s\r\n"
	    "User-Agent: amanat\r\nAccept: application/json\r\n"
	    "Connection: close\r\n", method, target, addr) < 0 ||
	    (body != NULL && buf_printf(out, "Content-Type: "
	    "application/json\r\n") < 0) ||
	    ((body != NULL || strcmp(method, "GET") != 0) &&
	    buf_printf(out, "Content-Length: %zu\r\n", b.len) < 0) ||
	    buf_append(out, "\r\n", 2) < 0 ||
	    buf_append(out, b.data, b.len) < 0) {
		err_set(ERR_TOOBIG, "request too large");
		rc = ERR_TOOBIG;
	}
done:
	buf_free_secret(&b);
	return rc;
}

/*
 * A read or write failed.  With TLS 1.3 a server that refuses our client
 * certificate does so after the client's handshake has finished, so the
 * first read or write is where that shows: say so.
 */
static int
cli__io_error(SSL *ssl, int r, const char *what, const char *addr)
{
	static const char	hint[] = " (did the server refuse our client "
	    "certificate?)";
	int			e = SSL_get_error(ssl, r), saved = errno;
	char			ctx[128];

	if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
		err_set(ERR_IO, "%s %s: %s%s", what, addr, saved == EAGAIN ||
		    saved == EWOULDBLOCK ? "timed out" : strerror(saved),
		    saved == ECONNRESET || saved == EPIPE ? hint : "");
		return ERR_IO;
	}
	snprintf(ctx, sizeof(ctx), "%s %s%s", what, addr, hint);
	return tls_error(ctx);
}

/* Read until the response is complete or EOF; parse it. */
static int
cli__read(struct cli_resp *resp, struct cli_conn *c, struct buf *in,
    const char *addr)
{
	unsigned char	chunk[CLI_READ_CHUNK];
	int		r, rc;

	for (;;) {
		ERR_clear_error();
		r = SSL_read(c->ssl, chunk, sizeof(chunk));
		if (r <= 0) {
			if (SSL_get_error(c->ssl, r) != SSL_ERROR_ZERO_RETURN)
				rc = cli__io_error(c->ssl, r, "reading from",
				    addr);
			else
				rc = cli_resp_parse(resp, in->data, in->len,
				    CLI_BODY_MAX, 1);
			break;
		}
		if (buf_append(in, chunk, (size_t)r) < 0) {
			err_set(ERR_TOOBIG, "keyservice response too large");
			rc = ERR_TOOBIG;
			break;
		}
		if ((rc = cli_resp_parse(resp, in->data, in->len,
		    CLI_BODY_MAX, 0)) != ERR_AGAIN)
			break;
	}
	explicit_bzero(chunk, sizeof(chunk));
	return rc;
}

int
cli_request(struct cli_resp *resp, struct cli_client *cl,
    const char *method, const char *target, json_t *body)
{
	struct cli_conn	 c = { -1, NULL };
	struct buf	 out, in;
	size_t		 off = 0;
	int		 rc, r;

	memset(resp, 0, sizeof(*resp));
	buf_init(&out, CLI_BODY_MAX + CLI_HEAD_MAX);
	buf_init(&in, CLI_BODY_MAX + CLI_HEAD_MAX);
	cli__presize(&out, CLI_PRESIZE);
	cli__presize(&in, CLI_PRESIZE);
	if ((rc = cli__build(&out, cl->addr, method, target, body)) < 0 ||
	    (rc = cli_conn_open(&c, cl->ctx, cl->addr)) < 0)
		goto done;
	while (off < out.len) {
		ERR_clear_error();
		if ((r = SSL_write(c.ssl, out.data + off, (int)(out.len -
		    off))) <= 0) {
			rc = cli__io_error(c.ssl, r, "writing to", cl->addr);
			goto done;
		}
		off += (size_t)r;
	}
	rc = cli__read(resp, &c, &in, cl->addr);
	if (rc == 0) {
		/* the body points into in, which is about to go */
		resp->body = NULL;
		resp->body_len = 0;
	}
done:
	cli_conn_close(&c);
	buf_free_secret(&out);
	buf_free_secret(&in);
	if (rc < 0)
		cli_resp_clear(resp);
	return rc;
}
