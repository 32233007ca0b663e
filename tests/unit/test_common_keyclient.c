/*
 * test_common_keyclient.c -- end-to-end tests of common/keyclient against
 * a real HTTPS server (common/http) in the same process and event loop.
 *
 * Purpose: the pool (max_conns, keep-alive reuse, FIFO queue and its
 * limit), the retry rules (dropped connection: ERR_IO when not
 * idempotent, one retry when it is; closed while idle: a new connection),
 * the per-call timeout, keyclient_free with calls in flight, mutual TLS
 * (no client certificate, wrong server address), response handling
 * (non-JSON 2xx, JSON and non-JSON errors) and the API wrappers.
 * Runs in: the unit test binary; listens on 127.0.0.1 (random port).
 * A throwaway CA, server and client certificates (P-256) are made with
 * the OpenSSL API in a mkdtemp() directory removed at the end.
 * Failure policy: cmocka assertions; every wait has a safety timer that
 * fails the case instead of hanging.
 * SECURITY: checks that a client without a certificate and a server
 * whose certificate names another address are both refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netdb.h>
#include <netinet/in.h>

#include <cmocka.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/base64.h"
#include "common/err.h"
#include "common/http.h"
#include "common/keyclient.h"
#include "common/log.h"
#include "common/net.h"
#include "common/tls.h"
#include "common/xmalloc.h"

#define NCALLS		50
#define WAIT_MS		10000	/* safety limit of every wait */

static char	tmpdir[] = "/tmp/test_keyclient.XXXXXX";
static char	p_ca[256], p_srv[256], p_srvkey[256], p_cli[256],
		p_clikey[256], p_bad[256], p_badkey[256], p_name[256],
		p_namekey[256];

/* What the client saw of one call. */
struct rec {
	int	 count;		/* callback runs: must end at 1 */
	int	 status;
	int	 order;		/* position among completions */
	long	 n;		/* "n" of the answer, -1 if none */
	char	 text[128];	/* a string of the answer, or "" */
};

struct env {
	struct event_base	*base;
	struct http_server	*srv;
	SSL_CTX			*sctx;
	SSL_CTX			*cctx;
	struct keyclient	*kc;
	char			 addr[64];
	int			 expired;
	int			 ndone;
	/* server side */
	int			 hits;		/* /drop, /v1/auth/password */
	int			 drop_first;	/* /drop answers from hit 2 */
	int			 delayed;	/* /slow replies scheduled */
	int			 inflight, max_inflight;
	long			 arrivals[NCALLS];
	int			 narrivals;
	uint64_t		 conn_ids[NCALLS + 8];
	int			 nconn_ids;
	struct rec		 recs[NCALLS];
	/* chain test: calls issued from callbacks */
	int			 chain_left;
};

/* --------------------------------------------------- certificates */

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX	 ctx;
	X509_EXTENSION	*ext;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* A certificate for key; issuer NULL: self-signed CA. */
static X509 *
make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey,
    const char *eku, const char *san)
{
	static long	 serial = 1;
	X509		*x;
	X509_NAME	*name;

	assert_non_null(x = X509_new());
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x),
	    serial++), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : name), 1);
	if (issuer == NULL) {
		add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
		add_ext(x, x, NID_subject_key_identifier, "hash");
	} else {
		add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(x, issuer, NID_key_usage,
		    "critical,digitalSignature");
		add_ext(x, issuer, NID_ext_key_usage, eku);
		add_ext(x, issuer, NID_authority_key_identifier, "keyid");
		if (san != NULL)
			add_ext(x, issuer, NID_subject_alt_name, san);
	}
	assert_true(X509_sign(x, ikey != NULL ? ikey : key, EVP_sha256()) >
	    0);
	return x;
}

static void
write_pem(const char *path, X509 *x, EVP_PKEY *key)
{
	FILE	*fp;

	assert_non_null(fp = fopen(path, "w"));
	if (x != NULL)
		assert_int_equal(PEM_write_X509(fp, x), 1);
	else
		assert_int_equal(PEM_write_PrivateKey(fp, key, NULL, NULL, 0,
		    NULL, NULL), 1);
	assert_int_equal(fclose(fp), 0);
}

static void
make_leaf(const char *cpath, const char *kpath, const char *cn,
    X509 *ca, EVP_PKEY *cakey, const char *eku, const char *san)
{
	EVP_PKEY	*key;
	X509		*x;

	assert_non_null(key = EVP_EC_gen("P-256"));
	x = make_cert(key, cn, ca, cakey, eku, san);
	write_pem(cpath, x, NULL);
	write_pem(kpath, NULL, key);
	X509_free(x);
	EVP_PKEY_free(key);
}

static int
group_setup(void **state)
{
	EVP_PKEY	*cakey;
	X509		*ca;

	log_setlevel(LOG_LVL_ERROR);
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	(void)snprintf(p_ca, sizeof(p_ca), "%s/ca.pem", tmpdir);
	(void)snprintf(p_srv, sizeof(p_srv), "%s/srv.pem", tmpdir);
	(void)snprintf(p_srvkey, sizeof(p_srvkey), "%s/srv.key", tmpdir);
	(void)snprintf(p_cli, sizeof(p_cli), "%s/cli.pem", tmpdir);
	(void)snprintf(p_clikey, sizeof(p_clikey), "%s/cli.key", tmpdir);
	(void)snprintf(p_bad, sizeof(p_bad), "%s/bad.pem", tmpdir);
	(void)snprintf(p_badkey, sizeof(p_badkey), "%s/bad.key", tmpdir);
	(void)snprintf(p_name, sizeof(p_name), "%s/name.pem", tmpdir);
	(void)snprintf(p_namekey, sizeof(p_namekey), "%s/name.key", tmpdir);
	if ((cakey = EVP_EC_gen("P-256")) == NULL)
		return -1;
	ca = make_cert(cakey, "test CA", NULL, NULL, NULL, NULL);
	write_pem(p_ca, ca, NULL);
	make_leaf(p_srv, p_srvkey, "keyservice", ca, cakey, "serverAuth",
	    "IP:127.0.0.1");
	make_leaf(p_cli, p_clikey, "mailsrv", ca, cakey, "clientAuth", NULL);
	/* a server certificate for another address */
	make_leaf(p_bad, p_badkey, "elsewhere", ca, cakey, "serverAuth",
	    "IP:127.0.0.9");
	/* a server certificate for a name only */
	make_leaf(p_name, p_namekey, "localhost", ca, cakey, "serverAuth",
	    "DNS:localhost");
	X509_free(ca);
	EVP_PKEY_free(cakey);
	return 0;
}

static int
group_teardown(void **state)
{
	const char	*files[] = { p_ca, p_srv, p_srvkey, p_cli, p_clikey,
			    p_bad, p_badkey, p_name, p_namekey };
	size_t		 i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		(void)unlink(files[i]);
	return rmdir(tmpdir);
}

/* ---------------------------------------------------------- server */

static void
note_conn(struct env *e, struct http_req *req)
{
	struct net_conn	*nc = http_req_conn(req);
	uint64_t	 id;
	int		 i;

	if (nc == NULL)
		return;
	id = net_conn_id(nc);
	for (i = 0; i < e->nconn_ids; i++)
		if (e->conn_ids[i] == id)
			return;
	if (e->nconn_ids < (int)(sizeof(e->conn_ids) / sizeof(e->conn_ids[0])))
		e->conn_ids[e->nconn_ids++] = id;
}

/* POST /v1/...: {"path", "echo": body, "ctype", "hits"} */
static void
h_echo(struct http_req *req, void *arg)
{
	struct env	*e = arg;
	const char	*ct = http_req_header(req, "Content-Type");
	json_t		*j;

	note_conn(e, req);
	e->hits++;
	if ((j = http_req_json(req)) == NULL)
		return;
	http_reply_json(req, 200, json_pack("{s:s, s:o, s:s, s:i}",
	    "path", http_req_path(req), "echo", j, "ctype",
	    ct != NULL ? ct : "", "hits", e->hits));
}

/* GET /v1/users/<address> */
static void
h_user(struct http_req *req, void *arg)
{
	note_conn(arg, req);
	http_reply_json(req, 200, json_pack("{s:s}", "address",
	    http_req_path_rest(req)));
}

struct slow {
	struct env	*e;
	struct http_req	*req;
	long		 n;
};

static void
slow_fire(evutil_socket_t fd, short what, void *arg)
{
	struct slow	*s = arg;

	s->e->inflight--;
	s->e->delayed--;
	http_reply_json(s->req, 200, json_pack("{s:i}", "n", (int)s->n));
	free(s);
}

/* POST /slow {"ms", "n"}: answer {"n"} after ms */
static void
h_slow(struct http_req *req, void *arg)
{
	struct env	*e = arg;
	struct slow	*s;
	struct timeval	 tv;
	json_t		*j;
	long		 ms;

	note_conn(e, req);
	if ((j = http_req_json(req)) == NULL)
		return;
	s = xcalloc(1, sizeof(*s));
	s->e = e;
	s->req = req;
	s->n = (long)json_integer_value(json_object_get(j, "n"));
	ms = (long)json_integer_value(json_object_get(j, "ms"));
	json_decref(j);
	if (e->narrivals < NCALLS)
		e->arrivals[e->narrivals++] = s->n;
	if (++e->inflight > e->max_inflight)
		e->max_inflight = e->inflight;
	e->delayed++;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	assert_int_equal(event_base_once(e->base, -1, EV_TIMEOUT, slow_fire,
	    s, &tv), 0);
}

/* /drop: close the connection without answering (from hit 2 answer). */
static void
h_drop(struct http_req *req, void *arg)
{
	struct env	*e = arg;

	note_conn(e, req);
	e->hits++;
	if (e->drop_first && e->hits > 1) {
		http_reply_json(req, 200, json_pack("{s:i}", "hits", e->hits));
		return;
	}
	net_conn_abort(http_req_conn(req), "test-drop");
	http_reply_error(req, 500, "internal_error", "dropped");
}

static void
h_text(struct http_req *req, void *arg)
{
	http_reply(req, 200, "text/plain", "hello", 5);
}

static void
h_err(struct http_req *req, void *arg)
{
	http_reply_error(req, 404, "not_found", "no such thing");
}

static void
h_errtext(struct http_req *req, void *arg)
{
	http_reply(req, 500, "text/plain", "oops", 4);
}

static const struct http_route routes[] = {
	{ "GET", "/v1/users/*", h_user },
	{ "POST", "/v1/*", h_echo },
	{ "POST", "/slow", h_slow },
	{ "POST", "/drop", h_drop },
	{ "GET", "/drop", h_drop },
	{ "GET", "/text", h_text },
	{ "GET", "/err", h_err },
	{ "GET", "/errtext", h_errtext },
	{ NULL, NULL, NULL },
};

/* ------------------------------------------------------------- env */

static void
safety(evutil_socket_t fd, short what, void *arg)
{
	struct env	*e = arg;

	e->expired = 1;
}

/* Run the loop until *counter >= want; fail after WAIT_MS. */
static void
wait_for(struct env *e, const int *counter, int want)
{
	struct timeval	 tv = { WAIT_MS / 1000, 0 };
	struct event	*t;

	t = evtimer_new(e->base, safety, e);
	evtimer_add(t, &tv);
	e->expired = 0;
	while (*counter < want && !e->expired)
		event_base_loop(e->base, EVLOOP_ONCE);
	event_free(t);
	assert_false(e->expired);
}

/* Run the loop for ms milliseconds. */
static void
wait_ms(struct env *e, unsigned ms)
{
	struct timeval	 tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event	*t;

	t = evtimer_new(e->base, safety, e);
	evtimer_add(t, &tv);
	e->expired = 0;
	while (!e->expired)
		event_base_loop(e->base, EVLOOP_ONCE);
	event_free(t);
}

/* Let every delayed server reply go out (they own requests). */
static void
drain_server(struct env *e)
{
	struct timeval	 tv = { WAIT_MS / 1000, 0 };
	struct event	*t;

	t = evtimer_new(e->base, safety, e);
	evtimer_add(t, &tv);
	e->expired = 0;
	while (e->delayed > 0 && !e->expired)
		event_base_loop(e->base, EVLOOP_ONCE);
	event_free(t);
	assert_int_equal(e->delayed, 0);
}

static SSL_CTX *
client_ctx(int with_cert)
{
	struct tls_opts	 o;
	SSL_CTX		*ctx;

	memset(&o, 0, sizeof(o));
	if (with_cert) {
		o.cert = p_cli;
		o.key = p_clikey;
	}
	o.ca = p_ca;
	o.verify = TLS_VERIFY_REQUIRE;
	assert_int_equal(tls_client_ctx_new(&ctx, &o), 0);
	return ctx;
}

enum { CERT_OK = 0, CERT_OTHER_IP, CERT_NAME };

/* A server (cert: CERT_*) with idle_ms, and a client with max conns. */
static struct env *
env_new(int cert, unsigned idle_ms, unsigned max_conns)
{
	struct env		*e;
	struct tls_opts		 o;
	struct http_limits	 lim;

	e = xcalloc(1, sizeof(*e));
	assert_non_null(e->base = event_base_new());
	memset(&o, 0, sizeof(o));
	o.cert = cert == CERT_OTHER_IP ? p_bad : cert == CERT_NAME ? p_name :
	    p_srv;
	o.key = cert == CERT_OTHER_IP ? p_badkey : cert == CERT_NAME ?
	    p_namekey : p_srvkey;
	o.ca = p_ca;
	o.verify = TLS_VERIFY_REQUIRE;
	assert_int_equal(tls_server_ctx_new(&e->sctx, &o), 0);
	memset(&lim, 0, sizeof(lim));
	lim.net.max_conns = 256;
	lim.net.idle_ms = idle_ms;
	lim.net.out_max = 1 << 20;
	lim.max_header = 8192;
	lim.max_body = 1 << 20;
	assert_int_equal(http_server_new(&e->srv, e->base, "test-ks", &lim,
	    routes, e), 0);
	http_server_set_tls(e->srv, e->sctx);
	/*
	 * No port: evutil_parse_sockaddr_port() refuses ":0" but reads a
	 * missing port as 0, so the kernel picks one.
	 */
	assert_int_equal(http_server_listen(e->srv, "127.0.0.1"), 0);
	(void)snprintf(e->addr, sizeof(e->addr), "127.0.0.1:%d",
	    net_server_port(http_server_net(e->srv), 0));
	e->cctx = client_ctx(1);
	assert_int_equal(keyclient_new(&e->kc, e->base, e->addr, e->cctx,
	    max_conns), 0);
	return e;
}

static void
env_free(struct env *e)
{
	keyclient_free(&e->kc);
	assert_null(e->kc);
	drain_server(e);
	http_server_free(&e->srv);
	SSL_CTX_free(e->sctx);
	SSL_CTX_free(e->cctx);
	/* runs libevent's pending finalizers (bufferevents) */
	event_base_free(e->base);
	free(e);
}

/* The callback of every call: arg is a struct rec of e->recs. */
static struct env	*cur;

static void
on_done(int status, json_t *json, void *arg)
{
	struct rec	*r = arg;
	json_t		*v;

	r->count++;
	r->status = status;
	r->order = cur->ndone++;
	r->n = -1;
	r->text[0] = '\0';
	if ((v = json_object_get(json, "n")) != NULL ||
	    (v = json_object_get(json, "hits")) != NULL)
		r->n = (long)json_integer_value(v);
	if ((v = json_object_get(json, "address")) != NULL ||
	    (v = json_object_get(json, "error")) != NULL ||
	    (v = json_object_get(json, "path")) != NULL)
		(void)snprintf(r->text, sizeof(r->text), "%s",
		    json_string_value(v));
	if (json != NULL && r->text[0] == '\0' && json_is_object(json))
		(void)snprintf(r->text, sizeof(r->text), "object");
}

static struct env *
setup(int cert, unsigned idle_ms, unsigned max_conns)
{
	cur = env_new(cert, idle_ms, max_conns);
	return cur;
}

/* POST /slow {"ms": ms, "n": n} */
static int
call_slow(struct env *e, long ms, long n, struct rec *r)
{
	return keyclient_call(e->kc, "POST", "/slow", json_pack("{s:i, s:i}",
	    "ms", (int)ms, "n", (int)n), KEYCLIENT_IDEMPOTENT, on_done, r);
}

/* ----------------------------------------------------------- tests */

static void
test_common_keyclient__auth_password(void **state)
{
	struct env	*e = setup(CERT_OK, 10000, 4);
	struct rec	*r = &e->recs[0];

	assert_int_equal(keyclient_auth_password(e->kc, "fatima@finance.test",
	    "s3cret \"pw\"", "imap", on_done, r), 0);
	/* never from inside the call */
	assert_int_equal(r->count, 0);
	assert_int_equal(keyclient_pending(e->kc), 1);
	wait_for(e, &e->ndone, 1);
	assert_int_equal(r->count, 1);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->text, "/v1/auth/password");
	assert_int_equal(e->hits, 1);
	assert_int_equal(keyclient_pending(e->kc), 0);
	assert_int_equal(keyclient_conns(e->kc), 1);
	env_free(e);
}

/* The echo body of the last answer, checked in a callback. */
static json_t	*last_echo;
static char	 last_ctype[64];

static void
on_echo(int status, json_t *json, void *arg)
{
	json_t	*ct;

	on_done(status, json, arg);
	json_decref(last_echo);
	last_echo = json_incref(json_object_get(json, "echo"));
	ct = json_object_get(json, "ctype");
	(void)snprintf(last_ctype, sizeof(last_ctype), "%s",
	    json_is_string(ct) ? json_string_value(ct) : "");
}

static void
test_common_keyclient__wrappers(void **state)
{
	struct env		*e = setup(CERT_OK, 10000, 4);
	static const unsigned char data[] = { 0, 1, 2, 0xfe, 0xff };
	unsigned char		*dec;
	size_t			 declen;
	const char		*s;

	/* auth_password: the body as the server saw it */
	assert_int_equal(keyclient_auth_password(e->kc, "a@b.test", "pw",
	    "smtp", on_echo, &e->recs[0]), 0);
	wait_for(e, &e->ndone, 1);
	assert_int_equal(e->recs[0].status, 200);
	assert_string_equal(json_string_value(json_object_get(last_echo,
	    "address")), "a@b.test");
	assert_string_equal(json_string_value(json_object_get(last_echo,
	    "password")), "pw");
	assert_string_equal(json_string_value(json_object_get(last_echo,
	    "source")), "smtp");
	assert_string_equal(last_ctype, "application/json");

	assert_int_equal(keyclient_datakey(e->kc, "finance",
	    "mailbox:a@b.test", on_echo, &e->recs[1]), 0);
	wait_for(e, &e->ndone, 2);
	assert_string_equal(e->recs[1].text, "/v1/keys/datakey");
	assert_string_equal(json_string_value(json_object_get(last_echo,
	    "key_id")), "finance");
	assert_string_equal(json_string_value(json_object_get(last_echo,
	    "context")), "mailbox:a@b.test");

	assert_int_equal(keyclient_unwrap(e->kc, "v1.finance.1.xyz", "ctx",
	    on_echo, &e->recs[2]), 0);
	wait_for(e, &e->ndone, 3);
	assert_string_equal(e->recs[2].text, "/v1/keys/unwrap");
	assert_string_equal(json_string_value(json_object_get(last_echo,
	    "wrapped")), "v1.finance.1.xyz");

	assert_int_equal(keyclient_sign_raw(e->kc, data, sizeof(data),
	    on_echo, &e->recs[3]), 0);
	wait_for(e, &e->ndone, 4);
	assert_string_equal(e->recs[3].text, "/v1/sign/raw");
	s = json_string_value(json_object_get(last_echo, "data"));
	assert_non_null(s);
	assert_int_equal(b64_decode(&dec, &declen, s, strlen(s), 64), 0);
	assert_int_equal(declen, sizeof(data));
	assert_memory_equal(dec, data, sizeof(data));
	free(dec);

	/* the address is percent-encoded and decoded by the server */
	assert_int_equal(keyclient_user(e->kc, "a+b c/d@x.example",
	    on_done, &e->recs[4]), 0);
	wait_for(e, &e->ndone, 5);
	assert_int_equal(e->recs[4].status, 200);
	assert_string_equal(e->recs[4].text, "a+b c/d@x.example");

	/* all on one keep-alive connection */
	assert_int_equal(e->nconn_ids, 1);
	assert_int_equal(keyclient_conns(e->kc), 1);
	json_decref(last_echo);
	last_echo = NULL;
	env_free(e);
}

static void
test_common_keyclient__queue_fifo(void **state)
{
	struct env	*e = setup(CERT_OK, 10000, 2);
	int		 i;

	for (i = 0; i < NCALLS; i++) {
		assert_int_equal(call_slow(e, 20, i, &e->recs[i]), 0);
		assert_true(keyclient_conns(e->kc) <= 2);
	}
	assert_int_equal(keyclient_pending(e->kc), NCALLS);
	wait_for(e, &e->ndone, NCALLS);
	for (i = 0; i < NCALLS; i++) {
		assert_int_equal(e->recs[i].count, 1);
		assert_int_equal(e->recs[i].status, 200);
		assert_int_equal(e->recs[i].n, i);
		/* FIFO over two connections: never more than one apart */
		assert_true(labs(e->arrivals[i] - i) <= 1);
		assert_true(abs(e->recs[i].order - i) <= 1);
	}
	assert_int_equal(e->narrivals, NCALLS);
	assert_int_equal(e->max_inflight, 2);
	assert_int_equal(e->nconn_ids, 2);
	assert_int_equal(keyclient_conns(e->kc), 2);
	assert_int_equal(keyclient_pending(e->kc), 0);
	env_free(e);
}

static void
test_common_keyclient__drop_not_idempotent(void **state)
{
	struct env	*e = setup(CERT_OK, 10000, 4);

	assert_int_equal(keyclient_call(e->kc, "POST", "/drop",
	    json_pack("{s:s}", "a", "b"), 0, on_done, &e->recs[0]), 0);
	wait_for(e, &e->ndone, 1);
	assert_int_equal(e->recs[0].count, 1);
	assert_int_equal(e->recs[0].status, ERR_IO);
	assert_int_equal(e->hits, 1);
	assert_int_equal(keyclient_conns(e->kc), 0);
	env_free(e);
}

static void
test_common_keyclient__drop_idempotent_retry(void **state)
{
	struct env	*e = setup(CERT_OK, 10000, 4);

	/* first attempt dropped, the retry answered */
	e->drop_first = 1;
	assert_int_equal(keyclient_call(e->kc, "GET", "/drop", NULL,
	    KEYCLIENT_IDEMPOTENT, on_done, &e->recs[0]), 0);
	wait_for(e, &e->ndone, 1);
	assert_int_equal(e->recs[0].count, 1);
	assert_int_equal(e->recs[0].status, 200);
	assert_int_equal(e->recs[0].n, 2);
	assert_int_equal(e->hits, 2);
	assert_int_equal(e->nconn_ids, 2);

	/* always dropped: one retry only, then ERR_IO */
	e->drop_first = 0;
	e->hits = 0;
	assert_int_equal(keyclient_call(e->kc, "GET", "/drop", NULL,
	    KEYCLIENT_IDEMPOTENT, on_done, &e->recs[1]), 0);
	wait_for(e, &e->ndone, 2);
	assert_int_equal(e->recs[1].count, 1);
	assert_int_equal(e->recs[1].status, ERR_IO);
	assert_int_equal(e->hits, 2);
	env_free(e);
}

static void
test_common_keyclient__timeout(void **state)
{
	struct env	*e = setup(CERT_OK, 10000, 1);

	keyclient_set_timeout(e->kc, 150);
	assert_int_equal(call_slow(e, 1000, 7, &e->recs[0]), 0);
	/* queued behind it: times out first, while waiting */
	keyclient_set_timeout(e->kc, 50);
	assert_int_equal(call_slow(e, 0, 8, &e->recs[1]), 0);
	wait_for(e, &e->ndone, 2);
	assert_int_equal(e->recs[0].status, ERR_IO);
	assert_int_equal(e->recs[1].status, ERR_IO);
	assert_int_equal(e->recs[1].order, 0);
	assert_int_equal(e->recs[0].order, 1);
	/* the connection went with the call */
	assert_int_equal(keyclient_conns(e->kc), 0);
	assert_int_equal(e->narrivals, 1);
	/* and the client still works */
	keyclient_set_timeout(e->kc, 0);
	assert_int_equal(call_slow(e, 0, 9, &e->recs[2]), 0);
	wait_for(e, &e->ndone, 3);
	assert_int_equal(e->recs[2].status, 200);
	assert_int_equal(e->recs[2].n, 9);
	assert_int_equal(e->recs[0].count + e->recs[1].count +
	    e->recs[2].count, 3);
	env_free(e);
}

static void
test_common_keyclient__queue_overflow(void **state)
{
	struct env	*e = setup(CERT_OK, 10000, 1);
	struct rec	*many, extra;
	int		 i;

	many = xcalloc(KEYCLIENT_QUEUE_MAX + 1, sizeof(*many));
	memset(&extra, 0, sizeof(extra));
	/* one in flight, then a full queue */
	for (i = 0; i <= KEYCLIENT_QUEUE_MAX; i++)
		assert_int_equal(call_slow(e, 50, i, &many[i]), 0);
	assert_int_equal(keyclient_pending(e->kc), KEYCLIENT_QUEUE_MAX + 1);
	assert_int_equal(call_slow(e, 50, -1, &extra), ERR_TOOBIG);
	assert_int_equal(keyclient_auth_password(e->kc, "a@b", "pw", NULL,
	    on_done, &extra), ERR_TOOBIG);
	/* every accepted call completes, once, inside keyclient_free */
	keyclient_free(&e->kc);
	assert_int_equal(e->ndone, KEYCLIENT_QUEUE_MAX + 1);
	for (i = 0; i <= KEYCLIENT_QUEUE_MAX; i++) {
		assert_int_equal(many[i].count, 1);
		assert_int_equal(many[i].status, ERR_IO);
	}
	assert_int_equal(extra.count, 0);
	free(many);
	env_free(e);
}

static void
test_common_keyclient__free_in_flight(void **state)
{
	struct env	*e = setup(CERT_OK, 10000, 2);
	int		 i;

	for (i = 0; i < 10; i++)
		assert_int_equal(call_slow(e, 300, i, &e->recs[i]), 0);
	/* let two reach the server */
	wait_for(e, &e->narrivals, 2);
	assert_int_equal(keyclient_conns(e->kc), 2);
	keyclient_free(&e->kc);
	assert_int_equal(e->ndone, 10);
	for (i = 0; i < 10; i++) {
		assert_int_equal(e->recs[i].count, 1);
		assert_int_equal(e->recs[i].status, ERR_IO);
	}
	env_free(e);
}

/* From the callback: the next call (callbacks may call again). */
static void
on_chain(int status, json_t *json, void *arg)
{
	struct rec	*r = arg;

	on_done(status, json, arg);
	if (cur->chain_left-- > 0)
		assert_int_equal(keyclient_auth_password(cur->kc, "c@d.test",
		    "pw", "test", on_chain, r + 1), 0);
}

static void
test_common_keyclient__reuse_from_callback(void **state)
{
	struct env	*e = setup(CERT_OK, 10000, 4);
	int		 i;

	e->chain_left = 4;
	assert_int_equal(keyclient_auth_password(e->kc, "c@d.test", "pw",
	    "test", on_chain, &e->recs[0]), 0);
	wait_for(e, &e->ndone, 5);
	for (i = 0; i < 5; i++) {
		assert_int_equal(e->recs[i].count, 1);
		assert_int_equal(e->recs[i].status, 200);
		assert_int_equal(e->recs[i].order, i);
	}
	assert_int_equal(e->hits, 5);
	assert_int_equal(e->nconn_ids, 1);
	assert_int_equal(keyclient_conns(e->kc), 1);
	env_free(e);
}

static void
test_common_keyclient__closed_while_idle(void **state)
{
	struct env	*e = setup(CERT_OK, 100, 4);

	assert_int_equal(keyclient_auth_password(e->kc, "a@b.test", "pw",
	    "test", on_done, &e->recs[0]), 0);
	wait_for(e, &e->ndone, 1);
	assert_int_equal(keyclient_conns(e->kc), 1);
	/* the server's idle timeout closes it; the client notices */
	wait_ms(e, 400);
	assert_int_equal(keyclient_conns(e->kc), 0);
	/* not idempotent, and still fine: a new connection */
	assert_int_equal(keyclient_auth_password(e->kc, "a@b.test", "pw",
	    "test", on_done, &e->recs[1]), 0);
	wait_for(e, &e->ndone, 2);
	assert_int_equal(e->recs[1].status, 200);
	assert_int_equal(e->hits, 2);
	assert_int_equal(e->nconn_ids, 2);
	env_free(e);
}

static void
test_common_keyclient__no_client_cert(void **state)
{
	struct env	*e = setup(CERT_OK, 10000, 4);
	SSL_CTX		*anon = client_ctx(0);

	keyclient_free(&e->kc);
	assert_int_equal(keyclient_new(&e->kc, e->base, e->addr, anon, 2), 0);
	SSL_CTX_free(anon);	/* the client keeps its own reference */
	assert_int_equal(keyclient_auth_password(e->kc, "a@b.test", "pw",
	    "test", on_done, &e->recs[0]), 0);
	assert_int_equal(keyclient_user(e->kc, "a@b.test", on_done,
	    &e->recs[1]), 0);
	wait_for(e, &e->ndone, 2);
	assert_int_equal(e->recs[0].status, ERR_IO);
	assert_int_equal(e->recs[1].status, ERR_IO);
	assert_int_equal(e->recs[0].count + e->recs[1].count, 2);
	assert_int_equal(e->hits, 0);
	env_free(e);
}

static void
test_common_keyclient__wrong_server_name(void **state)
{
	struct env	*e = setup(CERT_OTHER_IP, 10000, 4);

	assert_int_equal(keyclient_auth_password(e->kc, "a@b.test", "pw",
	    "test", on_done, &e->recs[0]), 0);
	wait_for(e, &e->ndone, 1);
	assert_int_equal(e->recs[0].status, ERR_IO);
	assert_int_equal(e->hits, 0);
	env_free(e);
}

/* 1 if "localhost" resolves to 127.0.0.1 first (as keyclient uses it). */
static int
localhost_is_v4(void)
{
	struct addrinfo	 hints, *res;
	int		 ok;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo("localhost", "80", &hints, &res) != 0)
		return 0;
	ok = res->ai_family == AF_INET &&
	    ((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr ==
	    htonl(INADDR_LOOPBACK);
	freeaddrinfo(res);
	return ok;
}

static void
test_common_keyclient__server_dns_name(void **state)
{
	struct env	*e;
	char		 addr[64];

	if (!localhost_is_v4())
		skip();
	e = setup(CERT_NAME, 10000, 4);
	/* by IP: the certificate names only "localhost" */
	assert_int_equal(keyclient_auth_password(e->kc, "a@b.test", "pw",
	    "test", on_done, &e->recs[0]), 0);
	wait_for(e, &e->ndone, 1);
	assert_int_equal(e->recs[0].status, ERR_IO);
	assert_int_equal(e->hits, 0);
	/* by name: SNI and the DNS name check */
	keyclient_free(&e->kc);
	(void)snprintf(addr, sizeof(addr), "localhost:%d",
	    net_server_port(http_server_net(e->srv), 0));
	assert_int_equal(keyclient_new(&e->kc, e->base, addr, e->cctx, 2), 0);
	assert_int_equal(keyclient_auth_password(e->kc, "a@b.test", "pw",
	    "test", on_done, &e->recs[1]), 0);
	wait_for(e, &e->ndone, 2);
	assert_int_equal(e->recs[1].status, 200);
	assert_int_equal(e->hits, 1);
	env_free(e);
}

static void
test_common_keyclient__responses(void **state)
{
	struct env	*e = setup(CERT_OK, 10000, 4);

	/* a 2xx must be JSON */
	assert_int_equal(keyclient_call(e->kc, "GET", "/text", NULL, 0,
	    on_done, &e->recs[0]), 0);
	/* an error status passes its JSON body */
	assert_int_equal(keyclient_call(e->kc, "GET", "/err", NULL, 0,
	    on_done, &e->recs[1]), 0);
	/* or NULL if it is not JSON */
	assert_int_equal(keyclient_call(e->kc, "GET", "/errtext", NULL, 0,
	    on_done, &e->recs[2]), 0);
	/* the server's own 404 for an unknown path */
	assert_int_equal(keyclient_call(e->kc, "GET", "/nowhere", NULL, 0,
	    on_done, &e->recs[3]), 0);
	wait_for(e, &e->ndone, 4);
	assert_int_equal(e->recs[0].status, ERR_PROTO);
	assert_int_equal(e->recs[1].status, 404);
	assert_string_equal(e->recs[1].text, "not_found");
	assert_int_equal(e->recs[2].status, 500);
	assert_string_equal(e->recs[2].text, "");
	assert_int_equal(e->recs[3].status, 404);
	assert_string_equal(e->recs[3].text, "not_found");
	env_free(e);
}

static void
test_common_keyclient__unreachable(void **state)
{
	struct env	*e = setup(CERT_OK, 10000, 4);
	char		 addr[64];
	int		 port = net_server_port(http_server_net(e->srv), 0);

	/* nothing listens there once the server is gone */
	keyclient_free(&e->kc);
	http_server_free(&e->srv);
	(void)snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	assert_int_equal(keyclient_new(&e->kc, e->base, addr, e->cctx, 2), 0);
	assert_int_equal(keyclient_auth_password(e->kc, "a@b.test", "pw",
	    "test", on_done, &e->recs[0]), 0);
	wait_for(e, &e->ndone, 1);
	assert_int_equal(e->recs[0].count, 1);
	assert_int_equal(e->recs[0].status, ERR_IO);
	assert_int_equal(keyclient_conns(e->kc), 0);
	env_free(e);
}

static void
test_common_keyclient__bad_args(void **state)
{
	struct env		*e = setup(CERT_OK, 10000, 4);
	struct keyclient	*kc = NULL;
	static const char	*const bad_addrs[] = {
		"127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", ":8444",
		"[::1]8444", "::1:8444", "127.0.0.1:84x",
	};
	size_t			 i;

	for (i = 0; i < sizeof(bad_addrs) / sizeof(bad_addrs[0]); i++) {
		assert_int_equal(keyclient_new(&kc, e->base, bad_addrs[i],
		    e->cctx, 2), ERR_INVAL);
		assert_null(kc);
	}
	assert_int_equal(keyclient_new(&kc, e->base, "127.0.0.1:8444",
	    e->cctx, 0), ERR_INVAL);
	assert_int_equal(keyclient_new(&kc, e->base, "[::1]:8444", e->cctx,
	    1), 0);
	keyclient_free(&kc);
	keyclient_free(&kc);	/* NULL-safe */

	assert_int_equal(keyclient_call(e->kc, "GET", "v1/x", NULL, 0,
	    on_done, &e->recs[0]), ERR_INVAL);
	assert_int_equal(keyclient_call(e->kc, "GET", "/a b", NULL, 0,
	    on_done, &e->recs[0]), ERR_INVAL);
	assert_int_equal(keyclient_call(e->kc, "GE T", "/a", NULL, 0,
	    on_done, &e->recs[0]), ERR_INVAL);
	assert_int_equal(keyclient_call(e->kc, "GET", "/a\r\nX: y", NULL, 0,
	    on_done, &e->recs[0]), ERR_INVAL);
	assert_int_equal(keyclient_call(e->kc, "POST", "/a",
	    json_pack("{s:i}", "a", 1), 0, NULL, NULL), ERR_INVAL);
	assert_int_equal(keyclient_auth_password(e->kc, "a@b", NULL, NULL,
	    on_done, &e->recs[0]), ERR_INVAL);
	assert_int_equal(keyclient_auth_password(e->kc, "a@b", "\xff", NULL,
	    on_done, &e->recs[0]), ERR_INVAL);
	assert_int_equal(keyclient_user(e->kc, "", on_done, &e->recs[0]),
	    ERR_INVAL);
	assert_int_equal(keyclient_pending(e->kc), 0);
	wait_ms(e, 20);
	assert_int_equal(e->recs[0].count, 0);
	env_free(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_common_keyclient__auth_password),
		cmocka_unit_test(test_common_keyclient__wrappers),
		cmocka_unit_test(test_common_keyclient__queue_fifo),
		cmocka_unit_test(test_common_keyclient__drop_not_idempotent),
		cmocka_unit_test(test_common_keyclient__drop_idempotent_retry),
		cmocka_unit_test(test_common_keyclient__timeout),
		cmocka_unit_test(test_common_keyclient__queue_overflow),
		cmocka_unit_test(test_common_keyclient__free_in_flight),
		cmocka_unit_test(test_common_keyclient__reuse_from_callback),
		cmocka_unit_test(test_common_keyclient__closed_while_idle),
		cmocka_unit_test(test_common_keyclient__no_client_cert),
		cmocka_unit_test(test_common_keyclient__wrong_server_name),
		cmocka_unit_test(test_common_keyclient__server_dns_name),
		cmocka_unit_test(test_common_keyclient__responses),
		cmocka_unit_test(test_common_keyclient__unreachable),
		cmocka_unit_test(test_common_keyclient__bad_args),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
