/*
 * ks_load.c -- load generator for the keyservice data key API.
 *
 * Runs in: bench/run only; a single-threaded libevent loop.
 * Each of -c connections is a keep-alive mutual-TLS HTTP/1.1 connection
 * with one request in flight (no pipelining) that loops:
 *   POST /v1/keys/datakey {"key_id", "context": "bench:<conn>:<n>"}
 *   POST /v1/keys/unwrap  {"wrapped", "context"}  (same context)
 * and checks that the unwrapped plaintext equals the data key's.  After a
 * one second warm-up, completed pairs and requests are counted for -d
 * seconds; one op is one wrap plus one unwrap.  A failed request, a
 * mismatch or a lost connection is an error (the connection is opened
 * again after a short pause); the exit status is 1 when there were errors
 * or nothing completed.
 *
 * Responses are parsed strictly: a status line, headers up to
 * LOAD_HDR_MAX bytes, a Content-Length (chunked replies are refused) and
 * the body up to LOAD_BODY_MAX bytes.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define LOAD_HDR_MAX		(16 * 1024)
#define LOAD_BODY_MAX		(1024 * 1024)
#define LOAD_CONN_MAX		10000
#define LOAD_WARMUP_US		1000000ULL
#define LOAD_RETRY_MS		100

enum load_step {
	STEP_DATAKEY,
	STEP_UNWRAP
};

struct load_conn {
	struct load		*ld;
	struct bufferevent	*bev;
	struct event		*retry;
	int			 id;
	uint64_t		 seq;
	enum load_step		 step;
	int			 up;		/* TLS handshake done */
	int			 hdr_done;	/* the reply's head is parsed */
	int			 status;
	size_t			 clen;
	uint64_t		 t_sent;	/* us; the request in flight */
	char			 ctx[64];
	char			*plain;		/* the data key's plaintext */
	char			*wrapped;
};

struct load {
	struct event_base	*base;
	SSL_CTX			*ctx;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	const char		*host;
	const char		*key_id;
	int			 nconn;
	int			 seconds;
	struct load_conn	*conns;

	uint64_t		 t_start;	/* us */
	uint64_t		 t_begin;	/* measurement window */
	uint64_t		 t_end;
	int			 stopping;

	uint64_t		 pairs;		/* in the window */
	uint64_t		 requests;
	uint64_t		 errors;	/* at any time */
	uint32_t		*lat;		/* us, requests in the window */
	size_t			 nlat, caplat;
};

static void	conn_start(struct load_conn *);
static void	conn_send(struct load_conn *);

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	fprintf(stderr, "ks_load: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static void __attribute__((noreturn))
die_ssl(const char *what)
{
	unsigned long	e;
	char		b[256];

	fprintf(stderr, "ks_load: %s", what);
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, b, sizeof(b));
		fprintf(stderr, ": %s", b);
	}
	fprintf(stderr, "\n");
	exit(2);
}

static uint64_t
now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

static int
in_window(struct load *ld, uint64_t t)
{
	return t >= ld->t_begin && t < ld->t_end;
}

/* Report an error once per connection event; reconnect later. */
static void __attribute__((format(printf, 2, 3)))
conn_fail(struct load_conn *c, const char *fmt, ...)
{
	struct load	*ld = c->ld;
	struct timeval	 tv = { 0, LOAD_RETRY_MS * 1000 };
	va_list		 ap;

	if (!ld->stopping) {
		ld->errors++;
		if (ld->errors <= 10) {
			va_start(ap, fmt);
			fprintf(stderr, "ks_load: conn %d: ", c->id);
			vfprintf(stderr, fmt, ap);
			fprintf(stderr, "\n");
			va_end(ap);
		}
	}
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	c->up = 0;
	free(c->plain);
	free(c->wrapped);
	c->plain = c->wrapped = NULL;
	if (!ld->stopping)
		evtimer_add(c->retry, &tv);
}

static void
conn_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_start(arg);
}

/* Queue one POST with a JSON body; the reply is read by conn_read_cb. */
static void
conn_post(struct load_conn *c, const char *path, json_t *body)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	char		*s;
	size_t		 n;

	if ((s = json_dumps(body, JSON_COMPACT)) == NULL)
		die("json_dumps failed");
	json_decref(body);
	n = strlen(s);
	evbuffer_add_printf(out, "POST %s HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: %zu\r\n"
	    "\r\n", path, c->ld->host, n);
	evbuffer_add(out, s, n);
	free(s);
	c->hdr_done = 0;
	c->status = 0;
	c->clen = 0;
	c->t_sent = now_us();
}

static void
conn_send(struct load_conn *c)
{
	json_t	*body;

	if (c->step == STEP_DATAKEY) {
		c->seq++;
		(void)snprintf(c->ctx, sizeof(c->ctx), "bench:%d:%llu", c->id,
		    (unsigned long long)c->seq);
		body = json_pack("{s:s,s:s}", "key_id", c->ld->key_id,
		    "context", c->ctx);
		if (body == NULL)
			die("json_pack failed");
		conn_post(c, "/v1/keys/datakey", body);
	} else {
		body = json_pack("{s:s,s:s}", "wrapped", c->wrapped,
		    "context", c->ctx);
		if (body == NULL)
			die("json_pack failed");
		conn_post(c, "/v1/keys/unwrap", body);
	}
}

/*
 * Parse the status line and headers (the block ends with CRLF CRLF and is
 * at most LOAD_HDR_MAX bytes).  0 done, 1 need more, -1 error.
 */
static int
conn_parse_head(struct load_conn *c, struct evbuffer *in)
{
	struct evbuffer_ptr	 p;
	char			*head, *line, *next, *v, *end;
	size_t			 n;
	unsigned long long	 ull;
	int			 have_len = 0, rc = -1;

	p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (p.pos < 0)
		return evbuffer_get_length(in) > LOAD_HDR_MAX ? -1 : 1;
	n = (size_t)p.pos + 4;
	if (n > LOAD_HDR_MAX)
		return -1;
	if ((head = malloc(n + 1)) == NULL)
		die("out of memory");
	if (evbuffer_remove(in, head, n) != (int)n)
		goto done;
	head[n] = '\0';

	line = head;
	if ((next = strstr(line, "\r\n")) == NULL)
		goto done;
	*next = '\0';
	if (strncmp(line, "HTTP/1.1 ", 9) != 0 ||
	    line[9] < '1' || line[9] > '5' || line[10] < '0' ||
	    line[10] > '9' || line[11] < '0' || line[11] > '9' ||
	    (line[12] != ' ' && line[12] != '\0'))
		goto done;
	c->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 +
	    (line[11] - '0');

	for (line = next + 2; *line != '\0' && strncmp(line, "\r\n", 2) != 0;
	    line = next + 2) {
		if ((next = strstr(line, "\r\n")) == NULL)
			goto done;
		*next = '\0';
		if ((v = strchr(line, ':')) == NULL)
			goto done;
		*v++ = '\0';
		v += strspn(v, " \t");
		if (strcasecmp(line, "Content-Length") == 0) {
			if (have_len || *v < '0' || *v > '9')
				goto done;
			errno = 0;
			ull = strtoull(v, &end, 10);
			end += strspn(end, " \t");
			if (errno != 0 || *end != '\0' || ull > LOAD_BODY_MAX)
				goto done;
			c->clen = (size_t)ull;
			have_len = 1;
		} else if (strcasecmp(line, "Transfer-Encoding") == 0)
			goto done;
		else if (strcasecmp(line, "Connection") == 0 &&
		    strcasestr(v, "close") != NULL)
			goto done;	/* keep-alive is what we measure */
	}
	if (!have_len)
		goto done;
	c->hdr_done = 1;
	rc = 0;
done:
	free(head);
	return rc;
}

/* A complete reply body: check it and move on.  -1 on error. */
static int
conn_reply(struct load_conn *c, const char *body, size_t len)
{
	struct load	*ld = c->ld;
	json_t		*j;
	json_error_t	 je;
	const char	*plain = NULL, *wrapped = NULL;
	uint64_t	 t = now_us();
	int		 rc = -1;

	if (c->status != 200) {
		while (len > 0 && (body[len - 1] == '\n' ||
		    body[len - 1] == '\r'))
			len--;
		conn_fail(c, "%s: HTTP %d: %.*s", c->step == STEP_DATAKEY ?
		    "datakey" : "unwrap", c->status, (int)(len > 200 ? 200 :
		    len), body);
		return -1;
	}
	if ((j = json_loadb(body, len, 0, &je)) == NULL) {
		conn_fail(c, "bad JSON reply: %s", je.text);
		return -1;
	}
	if (json_unpack(j, "{s:s}", "plaintext", &plain) != 0)
		goto bad;
	if (c->step == STEP_DATAKEY) {
		if (json_unpack(j, "{s:s}", "wrapped", &wrapped) != 0)
			goto bad;
		free(c->plain);
		free(c->wrapped);
		if ((c->plain = strdup(plain)) == NULL ||
		    (c->wrapped = strdup(wrapped)) == NULL)
			die("out of memory");
		c->step = STEP_UNWRAP;
	} else {
		if (c->plain == NULL || strcmp(plain, c->plain) != 0) {
			json_decref(j);
			conn_fail(c, "unwrapped plaintext differs (context %s)",
			    c->ctx);
			return -1;
		}
		if (in_window(ld, t))
			ld->pairs++;
		c->step = STEP_DATAKEY;
	}
	if (in_window(ld, t)) {
		ld->requests++;
		if (ld->nlat == ld->caplat) {
			ld->caplat = ld->caplat ? ld->caplat * 2 : 65536;
			ld->lat = reallocarray(ld->lat, ld->caplat,
			    sizeof(*ld->lat));
			if (ld->lat == NULL)
				die("out of memory");
		}
		ld->lat[ld->nlat++] = (uint32_t)(t - c->t_sent > UINT32_MAX ?
		    UINT32_MAX : t - c->t_sent);
	}
	rc = 0;
	json_decref(j);
	return rc;
bad:
	json_decref(j);
	conn_fail(c, "reply lacks a string field");
	return rc;
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct load_conn	*c = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	char			*body;
	int			 rc;

	if (!c->hdr_done) {
		if ((rc = conn_parse_head(c, in)) > 0)
			return;
		if (rc < 0) {
			conn_fail(c, "malformed reply head");
			return;
		}
	}
	if (evbuffer_get_length(in) < c->clen)
		return;
	if (evbuffer_get_length(in) > c->clen) {
		conn_fail(c, "bytes after the reply (not pipelining)");
		return;
	}
	if ((body = malloc(c->clen + 1)) == NULL)
		die("out of memory");
	if (evbuffer_remove(in, body, c->clen) != (int)c->clen) {
		free(body);
		conn_fail(c, "evbuffer_remove failed");
		return;
	}
	body[c->clen] = '\0';
	rc = conn_reply(c, body, c->clen);
	free(body);
	if (rc < 0 || c->ld->stopping)
		return;
	conn_send(c);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct load_conn	*c = arg;
	unsigned long		 e;
	char			 b[256];
	int			 fd, one = 1;

	if (what & BEV_EVENT_CONNECTED) {
		fd = bufferevent_getfd(bev);
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		c->up = 1;
		c->step = STEP_DATAKEY;
		conn_send(c);
		return;
	}
	e = bufferevent_get_openssl_error(bev);
	if (e != 0 && ERR_GET_LIB(e) != 0) {
		ERR_error_string_n(e, b, sizeof(b));
		conn_fail(c, "TLS error: %s", b);
	} else if (e != 0 || (what & BEV_EVENT_ERROR))
		conn_fail(c, "connection error: %s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	else if ((what & BEV_EVENT_EOF) && c->up)
		conn_fail(c, "connection closed by the server");
	else if (what & BEV_EVENT_EOF)
		conn_fail(c, "connection refused or closed before the "
		    "handshake ended");
	else
		conn_fail(c, "connection event %#x", (unsigned)what);
}

static void
conn_start(struct load_conn *c)
{
	struct load	*ld = c->ld;
	SSL		*ssl;
	struct in6_addr	 a6;
	struct in_addr	 a4;
	X509_VERIFY_PARAM *vp;

	if (ld->stopping)
		return;
	if ((ssl = SSL_new(ld->ctx)) == NULL)
		die_ssl("SSL_new");
	vp = SSL_get0_param(ssl);
	if (inet_pton(AF_INET, ld->host, &a4) == 1 ||
	    inet_pton(AF_INET6, ld->host, &a6) == 1) {
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, ld->host) != 1)
			die_ssl("X509_VERIFY_PARAM_set1_ip_asc");
	} else {
		if (SSL_set_tlsext_host_name(ssl, ld->host) != 1 ||
		    SSL_set1_host(ssl, ld->host) != 1)
			die_ssl("SSL_set1_host");
	}
	c->bev = bufferevent_openssl_socket_new(ld->base, -1, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		die("bufferevent_openssl_socket_new failed");
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, LOAD_HDR_MAX +
	    LOAD_BODY_MAX);
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) != 0)
		die("bufferevent_enable failed");
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ld->ss,
	    (int)ld->sslen) != 0)
		conn_fail(c, "connect failed");
}

static void
load_end_cb(evutil_socket_t fd, short what, void *arg)
{
	struct load	*ld = arg;

	ld->stopping = 1;
	event_base_loopbreak(ld->base);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct_ms(const uint32_t *v, size_t n, double p)
{
	size_t	i;

	if (n == 0)
		return 0.0;
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i] / 1000.0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: ks_load -h host -p port --ca CA --cert CERT "
	    "--key KEY\n"
	    "               [-c connections] [-d seconds] -k key_id\n");
	exit(2);
}

static int
parse_int(const char *s, int lo, int hi, const char *what)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		die("%s must be %d-%d", what, lo, hi);
	return (int)v;
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "ca", required_argument, NULL, 'A' },
		{ "cert", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, '?' },
		{ NULL, 0, NULL, 0 }
	};
	struct load		 ld;
	struct addrinfo		 hints, *res = NULL;
	struct event		*ev_end;
	struct timeval		 tv;
	const char		*port = NULL, *ca = NULL, *cert = NULL;
	const char		*key = NULL;
	double			 secs;
	int			 ch, i, gai;

	memset(&ld, 0, sizeof(ld));
	ld.nconn = 32;
	ld.seconds = 10;
	while ((ch = getopt_long(argc, argv, "h:p:c:d:k:", opts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			ld.host = optarg;
			break;
		case 'p':
			(void)parse_int(optarg, 1, 65535, "port");
			port = optarg;
			break;
		case 'c':
			ld.nconn = parse_int(optarg, 1, LOAD_CONN_MAX,
			    "connections");
			break;
		case 'd':
			ld.seconds = parse_int(optarg, 1, 3600, "seconds");
			break;
		case 'k':
			ld.key_id = optarg;
			break;
		case 'A':
			ca = optarg;
			break;
		case 'C':
			cert = optarg;
			break;
		case 'K':
			key = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || ld.host == NULL || port == NULL || ca == NULL ||
	    cert == NULL || key == NULL || ld.key_id == NULL)
		usage();
	signal(SIGPIPE, SIG_IGN);

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((gai = getaddrinfo(ld.host, port, &hints, &res)) != 0)
		die("%s: %s", ld.host, gai_strerror(gai));
	memcpy(&ld.ss, res->ai_addr, res->ai_addrlen);
	ld.sslen = res->ai_addrlen;
	freeaddrinfo(res);

	if ((ld.ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		die_ssl("SSL_CTX_new");
	SSL_CTX_set_min_proto_version(ld.ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ld.ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_load_verify_locations(ld.ctx, ca, NULL) != 1)
		die_ssl(ca);
	if (SSL_CTX_use_certificate_chain_file(ld.ctx, cert) != 1)
		die_ssl(cert);
	if (SSL_CTX_use_PrivateKey_file(ld.ctx, key, SSL_FILETYPE_PEM) != 1)
		die_ssl(key);
	if (SSL_CTX_check_private_key(ld.ctx) != 1)
		die_ssl("certificate and key differ");

	if ((ld.base = event_base_new()) == NULL)
		die("event_base_new failed");
	ld.t_start = now_us();
	ld.t_begin = ld.t_start + LOAD_WARMUP_US;
	ld.t_end = ld.t_begin + (uint64_t)ld.seconds * 1000000ULL;

	ld.conns = calloc((size_t)ld.nconn, sizeof(*ld.conns));
	if (ld.conns == NULL)
		die("out of memory");
	for (i = 0; i < ld.nconn; i++) {
		ld.conns[i].ld = &ld;
		ld.conns[i].id = i;
		ld.conns[i].retry = evtimer_new(ld.base, conn_retry_cb,
		    &ld.conns[i]);
		if (ld.conns[i].retry == NULL)
			die("evtimer_new failed");
		conn_start(&ld.conns[i]);
	}

	/* The window [t_begin, t_end) is fixed above; stop at its end. */
	if ((ev_end = evtimer_new(ld.base, load_end_cb, &ld)) == NULL)
		die("evtimer_new failed");
	tv.tv_sec = (time_t)(LOAD_WARMUP_US / 1000000ULL) + ld.seconds;
	tv.tv_usec = 0;
	evtimer_add(ev_end, &tv);
	if (event_base_dispatch(ld.base) < 0)
		die("event_base_dispatch failed");

	/* close_notify (best effort, non-blocking), so the server sees a
	 * clean close rather than a truncated connection */
	for (i = 0; i < ld.nconn; i++) {
		if (ld.conns[i].bev != NULL) {
			(void)SSL_shutdown(bufferevent_openssl_get_ssl(
			    ld.conns[i].bev));
			bufferevent_free(ld.conns[i].bev);
		}
		event_free(ld.conns[i].retry);
		free(ld.conns[i].plain);
		free(ld.conns[i].wrapped);
	}
	free(ld.conns);
	event_free(ev_end);
	event_base_free(ld.base);
	SSL_CTX_free(ld.ctx);

	secs = (double)ld.seconds;
	qsort(ld.lat, ld.nlat, sizeof(*ld.lat), cmp_u32);
	printf("keyservice wrap+unwrap: %.0f ops/s (%d connections, %d s, "
	    "mTLS keep-alive, errors %llu)\n", (double)ld.pairs / secs,
	    ld.nconn, ld.seconds, (unsigned long long)ld.errors);
	printf("keyservice requests: %.0f req/s\n",
	    (double)ld.requests / secs);
	printf("keyservice latency: p50 %.2f ms, p99 %.2f ms (single "
	    "requests)\n", pct_ms(ld.lat, ld.nlat, 0.50),
	    pct_ms(ld.lat, ld.nlat, 0.99));
	free(ld.lat);
	return ld.errors > 0 || ld.pairs == 0 ? 1 : 0;
}
