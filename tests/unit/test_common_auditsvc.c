/*
 * test_common_auditsvc.c -- unit tests for the daemons' audit service.
 *
 * Purpose: a real event loop, a real HTTP server (plain, on 127.0.0.1)
 * routing /v1/audit/ to auditsvc_handle(), and a small client on the
 * same loop: recorded entries are found by queries; a refused caller
 * gets 403 and a "denied" entry; every allowed query is itself recorded
 * before it is answered; a checkpoint is signed within a tick (Ed25519,
 * with a failing signer retried and a wrong certificate refused); export
 * bundles and proofs verify against the signed checkpoint; bad
 * parameters are 400 JSON; auditsvc_close() with a signature or an
 * authorization in flight; the HMAC key file.
 * Runs in: the unit test binary only; each test gets a mkdtemp()
 * directory that it removes.
 * Failure policy: cmocka assertions; every wait has a safety limit.
 * SECURITY: these are the fail-closed and authorization guarantees of
 * the audit API.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/audit.h"
#include "common/auditsvc.h"
#include "common/base64.h"
#include "common/err.h"
#include "common/http.h"
#include "common/log.h"
#include "common/merkle.h"
#include "common/net.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "tests/unit/testutil.h"

#define WAIT_MS		10000	/* safety limit of every wait */
#define SERVICE		"testsvc"
#define OFFICER		"security-officer"

enum { SIGN_NOW = 0, SIGN_DEFER, SIGN_FAIL };

struct env {
	char			 dir[64];
	char			 node[16];
	struct event_base	*base;
	struct daemon_ops	 dops;
	struct daemon		 d;
	struct http_server	*srv;
	int			 port;
	struct auditsvc		*svc;
	EVP_PKEY		*key;		/* the signing key */
	char			*cert;		/* its certificate (PEM) */
	char			*other_cert;	/* another key's */
	int			 wrong_cert;	/* serve other_cert */
	int			 expired;
	/* signing */
	int			 sign_mode;
	int			 nsign;
	auditsvc_signed_fn	 sdone;		/* SIGN_DEFER */
	void			*sarg;
	char			*sbody;
	size_t			 slen;
	/* authorization */
	int			 authz_defer;
	struct http_req		*areq;
	auditsvc_authz_done_fn	 adone;
	void			*aarg;
	/* records */
	int			 nrec;
	int			 rec_rc;
	uint64_t		 rec_index;
};

/* One request of the test client. */
struct call {
	struct env	*e;
	int		 fd;
	struct event	*ev;
	char		 buf[1 << 22];
	size_t		 len;
	int		 eof;
};

/* ------------------------------------------------------------ helpers */

static void
safety(evutil_socket_t fd, short what, void *arg)
{
	((struct env *)arg)->expired = 1;
}

/* Run the loop until *flag >= want (or the safety limit). */
static void
wait_for(struct env *e, const int *flag, int want)
{
	struct timeval	 tv = { WAIT_MS / 1000, 0 };
	struct event	*t;

	t = evtimer_new(e->base, safety, e);
	evtimer_add(t, &tv);
	e->expired = 0;
	while (*flag < want && !e->expired)
		event_base_loop(e->base, EVLOOP_ONCE);
	event_free(t);
	assert_false(e->expired);
}

/* Run the loop for ms milliseconds. */
static void
spin(struct env *e, unsigned ms)
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

/* A self-signed certificate (PEM) for key with CN cn. */
static char *
make_cert_pem(EVP_PKEY *key, const char *cn)
{
	X509		*x;
	X509_NAME	*name;
	BIO		*bio;
	char		*p, *pem;
	long		 n;

	assert_non_null(x = X509_new());
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0);
	assert_int_equal(X509_set_issuer_name(x, name), 1);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	assert_true(X509_sign(x, key, NULL) > 0);
	assert_non_null(bio = BIO_new(BIO_s_mem()));
	assert_int_equal(PEM_write_bio_X509(bio, x), 1);
	n = BIO_get_mem_data(bio, &p);
	pem = xstrndup(p, (size_t)n);
	BIO_free(bio);
	X509_free(x);
	return pem;
}

/* ------------------------------------------------------------ the daemon */

static void
sign_now(struct env *e, const void *body, size_t len, auditsvc_signed_fn done,
    void *arg)
{
	unsigned char	 sig[64];
	size_t		 slen = sizeof(sig);
	EVP_MD_CTX	*md;

	assert_non_null(md = EVP_MD_CTX_new());
	assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, e->key), 1);
	assert_int_equal(EVP_DigestSign(md, sig, &slen, body, len), 1);
	EVP_MD_CTX_free(md);
	done(0, sig, slen, "ed25519", SERVICE, arg);
}

static void
t_sign(const void *body, size_t len, auditsvc_signed_fn done, void *arg,
    void *ctx)
{
	struct env	*e = ctx;

	e->nsign++;
	switch (e->sign_mode) {
	case SIGN_FAIL:
		err_set(ERR_IO, "test signer is down");
		done(ERR_IO, NULL, 0, NULL, NULL, arg);
		break;
	case SIGN_DEFER:
		e->sdone = done;
		e->sarg = arg;
		e->sbody = xmemdup(body, len);
		e->slen = len;
		break;
	default:
		sign_now(e, body, len, done, arg);
		break;
	}
}

/* Allowed: X-Test-Role is the security officer's; actor X-Test-Actor. */
static void
t_authorize(struct http_req *req, auditsvc_authz_done_fn done, void *arg,
    void *ctx)
{
	struct env	*e = ctx;
	const char	*role = http_req_header(req, "X-Test-Role");
	const char	*actor = http_req_header(req, "X-Test-Actor");

	if (e->authz_defer) {
		e->areq = req;
		e->adone = done;
		e->aarg = arg;
		return;
	}
	done(req, role != NULL && strcmp(role, OFFICER) == 0,
	    actor != NULL ? actor : "officer@sec.test", "sec", arg);
}

static const char *
t_cert(void *ctx)
{
	struct env	*e = ctx;

	return e->wrong_cert ? e->other_cert : e->cert;
}

static void
t_handler(struct http_req *req, void *arg)
{
	struct env	*e = arg;

	auditsvc_handle(e->svc, req);
}

static const struct http_route routes[] = {
	{ "GET", "/v1/audit/*", t_handler },
	{ NULL, NULL, NULL },
};

static void
svc_open(struct env *e)
{
	struct auditsvc_ops	ops;

	memset(&ops, 0, sizeof(ops));
	ops.sign = t_sign;
	ops.authorize = t_authorize;
	ops.signer_cert = t_cert;
	ops.ctx = e;
	if (auditsvc_open(&e->svc, &e->d, &ops) != 0)
		fail_msg("auditsvc_open: %s", err_msg());
}

static struct env *
env_new(void)
{
	struct env		*e = xcalloc(1, sizeof(*e));
	struct http_limits	 lim;
	EVP_PKEY		*other;

	snprintf(e->dir, sizeof(e->dir), "/tmp/amanat-test-auditsvc.XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->node, sizeof(e->node), "node1");
	assert_non_null(e->base = event_base_new());
	e->dops.name = SERVICE;
	e->d.ops = &e->dops;
	e->d.base = e->base;
	e->d.conf.node.name = e->node;
	e->d.conf.node.datadir = e->dir;
	assert_non_null(e->key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
	e->cert = make_cert_pem(e->key, "sign:" SERVICE);
	assert_non_null(other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
	e->other_cert = make_cert_pem(other, "sign:" SERVICE);
	EVP_PKEY_free(other);
	memset(&lim, 0, sizeof(lim));
	lim.net.max_conns = 64;
	lim.net.idle_ms = 10000;
	lim.net.out_max = 8 << 20;
	lim.max_header = 8192;
	lim.max_body = 1 << 16;
	assert_int_equal(http_server_new(&e->srv, e->base, "test-audit", &lim,
	    routes, e), 0);
	assert_int_equal(http_server_listen_plain(e->srv, "127.0.0.1"), 0);
	e->port = net_server_port(http_server_net(e->srv), 0);
	svc_open(e);
	return e;
}

static void
env_free(struct env *e)
{
	auditsvc_close(&e->svc);
	assert_null(e->svc);
	http_server_free(&e->srv);
	event_base_free(e->base);
	EVP_PKEY_free(e->key);
	free(e->cert);
	free(e->other_cert);
	free(e->sbody);
	rm_tree(e->dir);
	free(e);
}

static int
setup(void **state)
{
	log_setlevel(LOG_LVL_ERROR);
	*state = env_new();
	return 0;
}

static int
teardown(void **state)
{
	env_free(*state);
	return 0;
}

/* ------------------------------------------------------------ the client */

static void
call_read(evutil_socket_t fd, short what, void *arg)
{
	struct call	*c = arg;
	ssize_t		 n;

	n = recv(fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
	if (n > 0) {
		c->len += (size_t)n;
		if (c->len + 1 < sizeof(c->buf))
			return;
	} else if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	c->eof = 1;
	event_del(c->ev);
}

/* Send GET target as role (NULL: no role header). */
static struct call *
call_send(struct env *e, const char *target, const char *role)
{
	struct sockaddr_in	 sin;
	struct call		*c = xcalloc(1, sizeof(*c));
	char			 req[9000];
	int			 n;

	c->e = e;
	assert_true((c->fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)e->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sin,
	    sizeof(sin)), 0);
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: test\r\n"
	    "Connection: close\r\n%s%s%s\r\n", target, role ? "X-Test-Role: " :
	    "", role ? role : "", role ? "\r\n" : "");
	assert_true(n > 0 && (size_t)n < sizeof(req));
	assert_int_equal(send(c->fd, req, (size_t)n, 0), n);
	assert_int_equal(fcntl(c->fd, F_SETFL, O_NONBLOCK), 0);
	c->ev = event_new(e->base, c->fd, EV_READ | EV_PERSIST, call_read, c);
	event_add(c->ev, NULL);
	return c;
}

/* Wait for the answer: its status, and its JSON body in *out. */
static int
call_finish(struct call *c, json_t **out)
{
	char	*body;
	int	 status = 0;

	wait_for(c->e, &c->eof, 1);
	c->buf[c->len] = '\0';
	event_free(c->ev);
	close(c->fd);
	assert_true(c->len > 12);
	assert_int_equal(sscanf(c->buf, "HTTP/1.1 %d", &status), 1);
	assert_non_null(body = strstr(c->buf, "\r\n\r\n"));
	*out = json_loads(body + 4, 0, NULL);
	assert_non_null(*out);
	free(c);
	return status;
}

static int
get(struct env *e, const char *target, const char *role, json_t **out)
{
	return call_finish(call_send(e, target, role), out);
}

static void
on_record(void *arg, int rc, uint64_t index)
{
	struct env	*e = arg;

	e->nrec++;
	e->rec_rc = rc;
	e->rec_index = index;
}

/* Record one entry by actor and wait until it is durable. */
static void
record(struct env *e, const char *actor, const char *action, int outcome)
{
	int	want = e->nrec + 1;

	assert_int_equal(auditsvc_record(e->svc, actor, "dept-a",
	    "192.0.2.1:4000", action, "/docs/x", outcome, 42,
	    json_pack("{s:s}", "why", "test"), on_record, e), 0);
	wait_for(e, &e->nrec, want);
	assert_int_equal(e->rec_rc, 0);
}

/* Entry index as parsed JSON. */
static json_t *
entry_at(struct env *e, uint64_t i)
{
	char	*bytes;
	size_t	 len;
	json_t	*v;

	assert_int_equal(audit_get(&bytes, &len, auditsvc_log(e->svc), i), 0);
	assert_int_equal(audit_entry_parse(&v, bytes, len), 0);
	free(bytes);
	return v;
}

static const char *
str(const json_t *o, const char *k)
{
	const char	*s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : "";
}

/* Wait until the log holds a checkpoint covering at least size. */
static json_t *
wait_checkpoint(struct env *e, uint64_t size)
{
	json_t	*cp = NULL;
	int	 i;

	for (i = 0; i < WAIT_MS / 10; i++) {
		if (audit_checkpoint_latest(&cp, auditsvc_log(e->svc)) == 0 &&
		    (uint64_t)json_integer_value(json_object_get(cp, "size")) >=
		    size)
			return cp;
		json_decref(cp);
		cp = NULL;
		spin(e, 10);
	}
	fail_msg("no checkpoint of size %llu", (unsigned long long)size);
	return NULL;
}

/* The public key of the PEM certificate in cp's "certificate". */
static EVP_PKEY *
cert_key(const json_t *cp)
{
	const char	*pem = str(cp, "certificate");
	BIO		*bio;
	X509		*x;
	EVP_PKEY	*k;

	assert_non_null(bio = BIO_new_mem_buf(pem, -1));
	assert_non_null(x = PEM_read_bio_X509(bio, NULL, NULL, NULL));
	assert_non_null(k = X509_get_pubkey(x));
	X509_free(x);
	BIO_free(bio);
	return k;
}

/* ------------------------------------------------------------ tests */

static void
test_common_auditsvc__record_query(void **state)
{
	struct env	*e = *state;
	json_t		*v, *ent, *q;
	int		 st;

	record(e, "alice@a.test", "doc.read", AUDIT_OK);
	record(e, "bob@a.test", "doc.write", AUDIT_OK);
	assert_int_equal(e->rec_index, 1);
	st = get(e, "/v1/audit/entries?actor=alice%40a.test", OFFICER, &v);
	assert_int_equal(st, 200);
	assert_int_equal(json_array_size(json_object_get(v, "entries")), 1);
	ent = json_object_get(json_array_get(json_object_get(v, "entries"),
	    0), "entry");
	assert_string_equal(str(ent, "actor"), "alice@a.test");
	assert_string_equal(str(ent, "node"), "node1");
	assert_string_equal(str(ent, "service"), SERVICE);
	assert_string_equal(str(ent, "request_id"), "000000000000002a");
	assert_string_equal(str(json_object_get(ent, "details"), "why"),
	    "test");
	assert_true(json_is_null(json_object_get(v, "next")));
	assert_int_equal(json_integer_value(json_object_get(v, "size")), 2);
	json_decref(v);

	/* the query was recorded before the answer left */
	assert_int_equal(audit_size(auditsvc_log(e->svc)), 3);
	q = entry_at(e, 2);
	assert_string_equal(str(q, "action"), "audit.query");
	assert_string_equal(str(q, "actor"), "officer@sec.test");
	assert_string_equal(str(q, "object"), "/v1/audit/entries");
	assert_string_equal(str(q, "outcome"), "ok");
	assert_true(strncmp(str(q, "src"), "127.0.0.1:", 10) == 0);
	assert_string_equal(str(json_object_get(q, "details"), "actor"),
	    "alice@a.test");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(q,
	    "details"), "results")), 1);
	json_decref(q);

	/* newest first, one per page */
	st = get(e, "/v1/audit/entries?order=desc&limit=1", OFFICER, &v);
	assert_int_equal(st, 200);
	ent = json_array_get(json_object_get(v, "entries"), 0);
	assert_int_equal(json_integer_value(json_object_get(ent, "index")), 2);
	assert_int_equal(json_integer_value(json_object_get(v, "next")), 1);
	json_decref(v);
	st = get(e, "/v1/audit/entries?outcome=ok&action=doc.write&since=1",
	    OFFICER, &v);
	assert_int_equal(st, 200);
	assert_int_equal(json_array_size(json_object_get(v, "entries")), 1);
	json_decref(v);
}

static void
test_common_auditsvc__refused(void **state)
{
	struct env	*e = *state;
	json_t		*v, *d;
	int		 st;

	record(e, "alice@a.test", "doc.read", AUDIT_OK);
	st = get(e, "/v1/audit/entries", "user", &v);
	assert_int_equal(st, 403);
	assert_string_equal(str(v, "error"), "forbidden");
	assert_null(json_object_get(v, "entries"));
	json_decref(v);
	/* no role at all, and parameter junk: still 403, nothing leaks */
	st = get(e, "/v1/audit/export?from=junk", NULL, &v);
	assert_int_equal(st, 403);
	json_decref(v);
	assert_int_equal(audit_size(auditsvc_log(e->svc)), 3);
	d = entry_at(e, 1);
	assert_string_equal(str(d, "action"), "audit.query");
	assert_string_equal(str(d, "outcome"), "denied");
	assert_string_equal(str(d, "object"), "/v1/audit/entries");
	assert_string_equal(str(d, "actor"), "officer@sec.test");
	json_decref(d);
	d = entry_at(e, 2);
	assert_string_equal(str(d, "object"), "/v1/audit/export");
	assert_string_equal(str(d, "outcome"), "denied");
	json_decref(d);
}

static void
test_common_auditsvc__checkpoint_tick(void **state)
{
	struct env	*e = *state;
	json_t		*cp, *v;
	EVP_PKEY	*pub;
	int		 st;

	/* nothing to sign yet */
	st = get(e, "/v1/audit/checkpoint", OFFICER, &v);
	assert_int_equal(st, 404);
	assert_string_equal(str(v, "error"), "not_found");
	json_decref(v);
	auditsvc_set_tick(e->svc, 20);
	record(e, "alice@a.test", "doc.read", AUDIT_OK);
	cp = wait_checkpoint(e, 1);
	json_decref(cp);
	st = get(e, "/v1/audit/checkpoint", OFFICER, &v);
	assert_int_equal(st, 200);
	assert_string_equal(str(v, "origin"), "node1/" SERVICE);
	assert_string_equal(str(v, "key_id"), SERVICE);
	assert_string_equal(str(v, "alg"), "ed25519");
	assert_true(json_integer_value(json_object_get(v, "size")) >= 1);
	pub = cert_key(v);
	assert_int_equal(audit_checkpoint_verify(v, pub), 0);
	assert_int_equal(audit_checkpoint_check(auditsvc_log(e->svc), v,
	    pub), 0);
	EVP_PKEY_free(pub);
	json_decref(v);
}

static void
test_common_auditsvc__checkpoint_retry(void **state)
{
	struct env	*e = *state;
	json_t		*cp = NULL;

	e->sign_mode = SIGN_FAIL;
	auditsvc_set_tick(e->svc, 10);
	record(e, "alice@a.test", "doc.read", AUDIT_OK);
	wait_for(e, &e->nsign, 3);
	assert_int_equal(audit_checkpoint_latest(&cp, auditsvc_log(e->svc)),
	    ERR_NOTFOUND);
	/* appends go on meanwhile */
	record(e, "bob@a.test", "doc.read", AUDIT_OK);
	/* a signature that does not match the served certificate */
	e->sign_mode = SIGN_NOW;
	e->wrong_cert = 1;
	wait_for(e, &e->nsign, 5);
	assert_int_equal(audit_checkpoint_latest(&cp, auditsvc_log(e->svc)),
	    ERR_NOTFOUND);
	e->wrong_cert = 0;
	cp = wait_checkpoint(e, 2);
	json_decref(cp);
}

/* Check a bundle the way an offline verifier does. */
static void
check_bundle(const json_t *b, uint64_t from, uint64_t to)
{
	uint8_t		 proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	uint8_t		 leaf[MERKLE_HASH_LEN];
	struct audit_checkpoint	cp;
	char		 origin[160], *bytes;
	size_t		 len, i, k;
	const json_t	*x, *p;
	EVP_PKEY	*pub;

	assert_string_equal(str(b, "format"), AUDITSVC_EXPORT_FORMAT);
	assert_string_equal(str(b, "origin"), "node1/" SERVICE);
	pub = cert_key(json_object_get(b, "checkpoint"));
	assert_int_equal(audit_checkpoint_verify(json_object_get(b,
	    "checkpoint"), pub), 0);
	EVP_PKEY_free(pub);
	assert_int_equal(audit_checkpoint_from_json(&cp, origin,
	    sizeof(origin), json_object_get(b, "checkpoint")), 0);
	assert_true(cp.size >= to);
	assert_int_equal(json_array_size(json_object_get(b, "entries")),
	    to - from);
	json_array_foreach(json_object_get(b, "entries"), i, x) {
		assert_int_equal(json_integer_value(json_object_get(x,
		    "index")), from + i);
		assert_int_equal(audit_canon_json(&bytes, &len,
		    json_object_get(x, "entry"), AUDIT_ENTRY_MAX), 0);
		assert_int_equal(merkle_leaf_hash(leaf, bytes, len), 0);
		free(bytes);
		json_array_foreach(json_object_get(x, "proof"), k, p)
			assert_int_equal(merkle_unhex(proof[k],
			    json_string_value(p)), 0);
		assert_int_equal(audit_verify_inclusion(leaf, from + i,
		    cp.size, (const uint8_t (*)[MERKLE_HASH_LEN])proof,
		    json_array_size(json_object_get(x, "proof")), cp.root),
		    0);
	}
}

static void
test_common_auditsvc__export_verifies(void **state)
{
	struct env	*e = *state;
	json_t		*v, *cp;
	char		 target[128];
	int		 i, st;

	for (i = 0; i < 10; i++)
		record(e, i % 2 ? "alice@a.test" : "bob@a.test", "doc.read",
		    AUDIT_OK);
	/* none covers entry 7 yet */
	st = get(e, "/v1/audit/export?from=2&to=8", OFFICER, &v);
	assert_int_equal(st, 409);
	assert_string_equal(str(v, "error"), "no_checkpoint");
	assert_non_null(strstr(str(v, "message"), "retry after the next"));
	json_decref(v);
	assert_int_equal(auditsvc_checkpoint(e->svc), 0);
	cp = wait_checkpoint(e, 11);	/* 10 + the 409 query */
	json_decref(cp);
	assert_int_equal(auditsvc_checkpoint(e->svc), ERR_EXISTS);
	st = get(e, "/v1/audit/export?from=2&to=8", OFFICER, &v);
	assert_int_equal(st, 200);
	check_bundle(v, 2, 8);
	json_decref(v);
	/* pinned to the checkpoint of size 11 after a newer one */
	assert_int_equal(auditsvc_checkpoint(e->svc), 0);
	cp = wait_checkpoint(e, 12);
	json_decref(cp);
	snprintf(target, sizeof(target), "/v1/audit/export?from=0&to=11&"
	    "checkpoint=11");
	st = get(e, target, OFFICER, &v);
	assert_int_equal(st, 200);
	check_bundle(v, 0, 11);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(v,
	    "checkpoint"), "size")), 11);
	json_decref(v);
	st = get(e, "/v1/audit/export?from=0&to=5&checkpoint=4", OFFICER, &v);
	assert_int_equal(st, 409);
	json_decref(v);
}

static void
test_common_auditsvc__proofs(void **state)
{
	struct env	*e = *state;
	json_t		*v;
	int		 i, st;

	for (i = 0; i < 7; i++)
		record(e, "alice@a.test", "doc.read", AUDIT_OK);
	st = get(e, "/v1/audit/proof/inclusion?index=3&size=7", OFFICER, &v);
	assert_int_equal(st, 200);
	assert_int_equal(audit_inclusion_json_verify(v), 0);
	assert_int_equal(json_integer_value(json_object_get(v, "tree_size")),
	    7);
	json_decref(v);
	/* size defaults to the whole log (8 now: the query above) */
	st = get(e, "/v1/audit/proof/inclusion?index=0", OFFICER, &v);
	assert_int_equal(st, 200);
	assert_int_equal(json_integer_value(json_object_get(v, "tree_size")),
	    8);
	assert_int_equal(audit_inclusion_json_verify(v), 0);
	json_decref(v);
	st = get(e, "/v1/audit/proof/consistency?from=3&to=9", OFFICER, &v);
	assert_int_equal(st, 200);
	assert_int_equal(audit_consistency_json_verify(v), 0);
	json_decref(v);
	/* beyond the log */
	st = get(e, "/v1/audit/proof/consistency?from=3&to=900", OFFICER, &v);
	assert_int_equal(st, 400);
	assert_string_equal(str(v, "error"), "invalid");
	json_decref(v);
}

static void
test_common_auditsvc__bad_params(void **state)
{
	static const char *const bad[] = {
		"/v1/audit/entries?limit=0",
		"/v1/audit/entries?limit=1001",
		"/v1/audit/entries?limit=abc",
		"/v1/audit/entries?since=-1",
		"/v1/audit/entries?until=12x",
		"/v1/audit/entries?start=99999999999999999999",
		"/v1/audit/entries?outcome=maybe",
		"/v1/audit/entries?order=sideways",
		"/v1/audit/proof/inclusion",
		"/v1/audit/proof/inclusion?index=0&size=0",
		"/v1/audit/proof/consistency?from=1",
		"/v1/audit/export?to=3",
		"/v1/audit/export?from=3&to=3",
		"/v1/audit/export?from=0&to=20000",
	};
	struct env	*e = *state;
	json_t		*v, *q;
	char		 target[2048];
	size_t		 i;
	uint64_t	 n;
	int		 st;

	record(e, "alice@a.test", "doc.read", AUDIT_OK);
	for (i = 0; i < nitems(bad); i++) {
		n = audit_size(auditsvc_log(e->svc));
		st = get(e, bad[i], OFFICER, &v);
		if (st != 400)
			fail_msg("%s: %d", bad[i], st);
		assert_string_equal(str(v, "error"), "invalid");
		assert_non_null(json_object_get(v, "message"));
		json_decref(v);
		/* recorded as an error, with what was asked */
		assert_int_equal(audit_size(auditsvc_log(e->svc)), n + 1);
		q = entry_at(e, n);
		assert_string_equal(str(q, "outcome"), "error");
		assert_int_equal(json_integer_value(json_object_get(
		    json_object_get(q, "details"), "status")), 400);
		json_decref(q);
	}
	/* a string over AUDIT_FIELD_MAX */
	memcpy(target, "/v1/audit/entries?actor=", 24);
	memset(target + 24, 'a', AUDIT_FIELD_MAX + 1);
	target[24 + AUDIT_FIELD_MAX + 1] = '\0';
	st = get(e, target, OFFICER, &v);
	assert_int_equal(st, 400);
	assert_string_equal(str(v, "field"), "actor");
	json_decref(v);
	/* unknown resource: 404 JSON, before authorization */
	n = audit_size(auditsvc_log(e->svc));
	st = get(e, "/v1/audit/nothing", NULL, &v);
	assert_int_equal(st, 404);
	assert_string_equal(str(v, "error"), "not_found");
	json_decref(v);
	assert_int_equal(audit_size(auditsvc_log(e->svc)), n);
}

/* Long filter strings still fit the entry's details (cut). */
static void
test_common_auditsvc__long_details(void **state)
{
	struct env	*e = *state;
	json_t		*v, *q, *d;
	char		 target[8192];
	char		 val[9 * 200 + 1];
	size_t		 i;
	int		 st;

	/* 200 U+20AC each: 600 bytes, 1200 once escaped; four of them */
	for (i = 0; i < 200; i++)
		memcpy(val + i * 9, "%E2%82%AC", 9);
	val[sizeof(val) - 1] = '\0';
	snprintf(target, sizeof(target), "/v1/audit/entries?actor=%s&"
	    "dept=%s&object=%s&action=%s", val, val, val, val);
	st = get(e, target, OFFICER, &v);
	assert_int_equal(st, 200);
	json_decref(v);
	q = entry_at(e, 0);
	d = json_object_get(q, "details");
	assert_true(json_is_true(json_object_get(d, "cut")));
	assert_int_equal(json_string_length(json_object_get(d, "actor")), 48);
	assert_int_equal(json_integer_value(json_object_get(d, "results")), 0);
	json_decref(q);
}

static void
test_common_auditsvc__close_sign_in_flight(void **state)
{
	struct env	*e = *state;
	unsigned char	 sig[64] = { 1 };

	e->sign_mode = SIGN_DEFER;
	auditsvc_set_tick(e->svc, 10);
	record(e, "alice@a.test", "doc.read", AUDIT_OK);
	wait_for(e, &e->nsign, 1);
	spin(e, 50);
	assert_int_equal(e->nsign, 1);	/* one at a time */
	auditsvc_close(&e->svc);
	/* the late answer must not touch the closed service */
	e->sdone(0, sig, sizeof(sig), "ed25519", SERVICE, e->sarg);
	/* reopen: the entry is there, no checkpoint */
	e->sign_mode = SIGN_NOW;
	svc_open(e);
	assert_int_equal(audit_size(auditsvc_log(e->svc)), 1);
	json_decref(wait_checkpoint(e, 1));
}

static void
test_common_auditsvc__close_authz_in_flight(void **state)
{
	struct env	*e = *state;
	struct call	*c;
	json_t		*v;
	int		 st;

	e->authz_defer = 1;
	c = call_send(e, "/v1/audit/entries", OFFICER);
	while (e->adone == NULL)
		spin(e, 5);
	auditsvc_close(&e->svc);
	e->adone(e->areq, 1, "officer@sec.test", "sec", e->aarg);
	st = call_finish(c, &v);
	assert_int_equal(st, 503);
	assert_string_equal(str(v, "error"), "busy");
	json_decref(v);
	e->authz_defer = 0;
	svc_open(e);
	assert_int_equal(audit_size(auditsvc_log(e->svc)), 0);
}

static void
test_common_auditsvc__hmac_key(void **state)
{
	struct env	*e = *state;
	char		 a[AUDIT_HMAC_HEX_LEN + 1], b[AUDIT_HMAC_HEX_LEN + 1];
	char		 c[AUDIT_HMAC_HEX_LEN + 1], *path;
	struct stat	 st;
	struct auditsvc_ops ops;
	struct auditsvc	*svc = NULL;

	auditsvc_hmac(e->svc, a, "secret@a.test");
	auditsvc_hmac(e->svc, c, "other@a.test");
	assert_int_equal(strlen(a), AUDIT_HMAC_HEX_LEN);
	assert_string_not_equal(a, c);
	xasprintf(&path, "%s/%s/audit.hmac.key", e->dir, SERVICE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 32);
	/* the same key after a reopen */
	auditsvc_close(&e->svc);
	svc_open(e);
	auditsvc_hmac(e->svc, b, "secret@a.test");
	assert_string_equal(a, b);
	auditsvc_close(&e->svc);
	/* refused once others may read it */
	assert_int_equal(chmod(path, 0644), 0);
	memset(&ops, 0, sizeof(ops));
	ops.sign = t_sign;
	ops.authorize = t_authorize;
	ops.ctx = e;
	assert_int_equal(auditsvc_open(&svc, &e->d, &ops), ERR_PERM);
	assert_null(svc);
	assert_int_equal(chmod(path, 0600), 0);
	free(path);
	svc_open(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_common_auditsvc__record_query, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_common_auditsvc__refused, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_common_auditsvc__checkpoint_tick, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_common_auditsvc__checkpoint_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_common_auditsvc__export_verifies, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_common_auditsvc__proofs, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_common_auditsvc__bad_params, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_common_auditsvc__long_details, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_common_auditsvc__close_sign_in_flight, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_common_auditsvc__close_authz_in_flight, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_common_auditsvc__hmac_key, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
