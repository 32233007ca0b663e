/*
 * test_cli_audit.c -- unit tests for the pure parts of `amanat audit`.
 *
 * Purpose: the audit commands' arguments; TIME parsing (unix seconds,
 * ISO 8601 UTC, impossible dates); merging several daemons' answers by
 * time with a limit; the offline check of export bundles built here with
 * common/audit and auditsvc_export_bundle() under a test CA made with
 * OpenSSL (a changed entry, a missing entry, another CA, another signer,
 * a changed root, a certificate valid when the checkpoint was signed but
 * expired since); and audit verify's core over a fake daemon that serves
 * a local log (first run, a consistent later run, a changed entry named
 * by its index, an edited old entry that only a full run finds, a
 * shrunken log, a damaged state, a state of another tree, a missing
 * entry, no checkpoint yet, a daemon that does not answer).
 * Runs in: the unit test binary only; a mkdtemp() directory is removed.
 * Failure policy: cmocka assertions.
 * SECURITY: these are what an officer relies on to detect tampering.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/audit.h"
#include "common/auditsvc.h"
#include "common/err.h"
#include "common/log.h"
#include "common/merkle.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "keyservice/cli/cli.h"
#include "tests/unit/testutil.h"

#define DAY	(24 * 3600L)

struct env {
	char			 dir[64];
	EVP_PKEY		*ca_key;
	X509			*ca;
	char			*ca_file;
	char			*other_ca_file;
	EVP_PKEY		*key;		/* the signing key */
	char			*cert;		/* sign:test, valid now */
	struct audit_log	*log;
	X509_STORE		*store;
};

/* ------------------------------------------------------------ helpers */

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX	 ctx;
	X509_EXTENSION	*ext;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	assert_non_null(ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value));
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* A certificate for key valid [nb, na] seconds from now; no issuer: CA. */
static X509 *
make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey,
    long nb, long na)
{
	static long	 serial = 1;
	X509		*x;

	assert_non_null(x = X509_new());
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), nb);
	X509_gmtime_adj(X509_getm_notAfter(x), na);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	assert_int_equal(X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : X509_get_subject_name(x)), 1);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	if (issuer == NULL) {
		add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(x, issuer, NID_ext_key_usage, "clientAuth");
	}
	assert_true(X509_sign(x, ikey != NULL ? ikey : key,
	    EVP_sha256()) > 0);
	return x;
}

static char *
pem_of(X509 *x)
{
	BIO	*bio;
	char	*p, *pem;
	long	 n;

	assert_non_null(bio = BIO_new(BIO_s_mem()));
	assert_int_equal(PEM_write_bio_X509(bio, x), 1);
	n = BIO_get_mem_data(bio, &p);
	pem = xstrndup(p, (size_t)n);
	BIO_free(bio);
	return pem;
}

/* A leaf for the signing key (PEM). */
static char *
leaf_pem(struct env *e, const char *cn, long nb, long na)
{
	X509	*x = make_cert(e->key, cn, e->ca, e->ca_key, nb, na);
	char	*pem = pem_of(x);

	X509_free(x);
	return pem;
}

static char *
write_file(struct env *e, const char *name, const char *data)
{
	char	*p = path_join(e->dir, name);

	assert_int_equal(file_write_atomic(p, data, strlen(data), 0644), 0);
	return p;
}

static void
append(struct env *e, int n)
{
	struct audit_entry	ent;
	char			actor[32];
	int			i;

	for (i = 0; i < n; i++) {
		memset(&ent, 0, sizeof(ent));
		snprintf(actor, sizeof(actor), "user%d@a.test", i);
		ent.actor = actor;
		ent.dept = "dept-a";
		ent.src = "192.0.2.9";
		ent.action = "doc.read";
		ent.object = "/docs/\xc3\xa9t\xc3\xa9\n";
		ent.outcome = AUDIT_OK;
		assert_int_equal(audit_append_sync(NULL, e->log, &ent), 0);
	}
}

/* Sign and store a checkpoint of the whole log, at time ms (0: now). */
static void
checkpoint(struct env *e, int64_t ms)
{
	struct audit_checkpoint	 cp;
	unsigned char		 sig[64];
	size_t			 slen = sizeof(sig), len;
	char			*body;
	EVP_MD_CTX		*md;

	assert_int_equal(audit_checkpoint_prepare(&cp, e->log), 0);
	if (ms != 0)
		cp.time_ms = ms;
	assert_int_equal(audit_checkpoint_body(&body, &len,
	    audit_origin(e->log), &cp), 0);
	assert_non_null(md = EVP_MD_CTX_new());
	assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, e->key), 1);
	assert_int_equal(EVP_DigestSign(md, sig, &slen,
	    (unsigned char *)body, len), 1);
	EVP_MD_CTX_free(md);
	free(body);
	assert_int_equal(audit_checkpoint_store(e->log, &cp, sig, slen,
	    "ed25519", "test"), 0);
}

static int
setup(void **state)
{
	struct env		*e = xcalloc(1, sizeof(*e));
	struct audit_opts	 o;
	EVP_PKEY		*ok;
	X509			*other;
	char			*pem, *adir;

	log_setlevel(LOG_LVL_ERROR);
	snprintf(e->dir, sizeof(e->dir), "/tmp/amanat-test-cli-audit.XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	assert_non_null(e->ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC",
	    "P-256"));
	e->ca = make_cert(e->ca_key, "Test CA", NULL, NULL, -DAY * 30,
	    DAY * 30);
	pem = pem_of(e->ca);
	e->ca_file = write_file(e, "ca.pem", pem);
	free(pem);
	assert_non_null(ok = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
	other = make_cert(ok, "Test CA", NULL, NULL, -DAY, DAY);
	pem = pem_of(other);
	e->other_ca_file = write_file(e, "other-ca.pem", pem);
	free(pem);
	X509_free(other);
	EVP_PKEY_free(ok);
	assert_non_null(e->key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
	e->cert = leaf_pem(e, "sign:test", -DAY, DAY);
	memset(&o, 0, sizeof(o));
	adir = path_join(e->dir, "audit");
	o.dir = adir;
	o.node = "node1";
	o.service = "test";
	o.map_size = 1 << 20;
	assert_int_equal(audit_open(&e->log, &o), 0);
	free(adir);
	assert_int_equal(cli_audit_store(&e->store, e->ca_file), 0);
	*state = e;
	return 0;
}

static int
teardown(void **state)
{
	struct env	*e = *state;

	audit_close(&e->log);
	X509_STORE_free(e->store);
	X509_free(e->ca);
	EVP_PKEY_free(e->ca_key);
	EVP_PKEY_free(e->key);
	free(e->cert);
	free(e->ca_file);
	free(e->other_ca_file);
	rm_tree(e->dir);
	free(e);
	return 0;
}

/* ------------------------------------------------------------ arguments */

#define PARSE(cmd, ...) do {						\
	char *argv_[] = { "amanat", __VA_ARGS__, NULL };		\
	rc = cli_parse((cmd), (int)(sizeof(argv_) / sizeof(argv_[0])) - 1, \
	    argv_);							\
} while (0)

static void
test_cli_audit__args(void **state)
{
	struct cli_cmd	c;
	int		rc;

	PARSE(&c, "--cert", "so.pem", "--key", "so.key", "audit", "query",
	    "--actor", "alice@a.test", "--dept", "dept-a", "--object", "/x",
	    "--action", "doc.read", "--outcome", "denied", "--since",
	    "2026-11-30", "--until", "1800000000", "--limit", "5",
	    "--service", "mailsrv", "--service", "docstore", "--json");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_AUDIT_QUERY);
	assert_string_equal(c.group, "audit");
	assert_string_equal(c.cert, "so.pem");
	assert_string_equal(c.actor, "alice@a.test");
	assert_string_equal(c.dept, "dept-a");
	assert_string_equal(c.object, "/x");
	assert_string_equal(c.action, "doc.read");
	assert_string_equal(c.outcome, "denied");
	assert_string_equal(c.since, "2026-11-30");
	assert_string_equal(c.until, "1800000000");
	assert_string_equal(c.limit, "5");
	assert_int_equal(c.nservices, 2);
	assert_string_equal(c.services[1], "docstore");
	assert_int_equal(c.json, 1);

	PARSE(&c, "audit", "verify", "--state", "/tmp/st", "--quick");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_AUDIT_VERIFY);
	assert_string_equal(c.state, "/tmp/st");
	assert_int_equal(c.quick, 1);
	PARSE(&c, "audit", "verify", "--actor", "x");
	assert_int_equal(rc, ERR_INVAL);

	PARSE(&c, "audit", "export", "--service", "mailsrv", "--from", "0",
	    "--to", "10", "--out", "x.json");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_AUDIT_EXPORT);
	assert_string_equal(c.from, "0");
	assert_string_equal(c.to, "10");
	assert_string_equal(c.out, "x.json");
	PARSE(&c, "audit", "export", "--service", "mailsrv", "--from", "0",
	    "--to", "10");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "--out"));

	PARSE(&c, "audit", "verify-export", "b.json", "--ca", "ca.pem");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_AUDIT_VERIFY_EXPORT);
	assert_string_equal(c.arg, "b.json");
	assert_string_equal(c.ca, "ca.pem");
	PARSE(&c, "audit", "verify-export", "--ca", "ca.pem");
	assert_int_equal(rc, ERR_INVAL);
	PARSE(&c, "audit", "verify-export", "b.json");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "--ca"));
	PARSE(&c, "audit", "nothing");
	assert_int_equal(rc, ERR_INVAL);
}

/* ------------------------------------------------------------ time, merge */

static void
test_cli_audit__time(void **state)
{
	static const char *const bad[] = { "", "abc", "-5", "1.5",
	    "2026-13-01", "2026-02-30", "2026-11-30T10:00:00",
	    "2026-11-30T25:00:00Z", "2026-11-30T10:60Z", "2026-11-30T10Z",
	    "2026-11-30X10:00Z", "1969-12-31", "2026-1-01", "+2026-11-30",
	    "2026-11-30T10:00:00+01:00", "99999999999999999999" };
	int64_t	ms;
	size_t	i;

	assert_int_equal(cli_audit_time(&ms, "1700000000"), 0);
	assert_int_equal(ms, INT64_C(1700000000000));
	assert_int_equal(cli_audit_time(&ms, "0"), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(cli_audit_time(&ms, "2026-11-30T10:00:00Z"), 0);
	assert_int_equal(ms, INT64_C(1796032800000));
	assert_int_equal(cli_audit_time(&ms, "2026-11-30 10:00:00Z"), 0);
	assert_int_equal(ms, INT64_C(1796032800000));
	assert_int_equal(cli_audit_time(&ms, "2026-11-30"), 0);
	assert_int_equal(ms, INT64_C(1795996800000));
	assert_int_equal(cli_audit_time(&ms, "2026-11-30T10:07Z"), 0);
	assert_int_equal(ms, INT64_C(1796033220000));
	assert_int_equal(cli_audit_time(&ms, "2024-02-29T23:59:59Z"), 0);
	assert_int_equal(ms, INT64_C(1709251199000));
	for (i = 0; i < nitems(bad); i++)
		if (cli_audit_time(&ms, bad[i]) != ERR_INVAL)
			fail_msg("accepted '%s'", bad[i]);
	assert_int_equal(cli_audit_time(&ms, NULL), ERR_INVAL);
}

/* [{"index", "entry": {"time", "actor"}}] from (index, time) pairs. */
static json_t *
answer(const int64_t *pairs, size_t n)
{
	json_t	*a = json_array();
	size_t	 i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:I,s:{s:I,s:s}}", "index",
		    (json_int_t)pairs[2 * i], "entry", "time",
		    (json_int_t)pairs[2 * i + 1], "actor", "x"));
	return a;
}

static void
test_cli_audit__merge(void **state)
{
	static const int64_t	ks[] = { 9, 5000, 8, 3000, 7, 1000 };
	static const int64_t	ms[] = { 4, 4000, 3, 3000 };
	static const int64_t	ds[] = { 0, 2000 };
	static const char *const names[] = { "keyservice", "mailsrv",
	    "docstore" };
	static const char *const want_svc[] = { "keyservice", "docstore",
	    "keyservice", "mailsrv", "mailsrv", "keyservice" };
	static const int64_t	want_time[] = { 1000, 2000, 3000, 3000, 4000,
	    5000 };
	json_t	*lists[3], *m, *x;
	size_t	 i;

	lists[0] = answer(ks, 3);
	lists[1] = answer(ms, 2);
	lists[2] = answer(ds, 1);
	m = cli_audit_merge(names, lists, 3, 0);
	assert_int_equal(json_array_size(m), 6);
	json_array_foreach(m, i, x) {
		assert_string_equal(json_string_value(json_object_get(x,
		    "service")), want_svc[i]);
		assert_int_equal(json_integer_value(json_object_get(
		    json_object_get(x, "entry"), "time")), want_time[i]);
	}
	json_decref(m);
	/* the newest 2, oldest first */
	m = cli_audit_merge(names, lists, 3, 2);
	assert_int_equal(json_array_size(m), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(m,
	    0), "index")), 4);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(m,
	    1), "index")), 9);
	json_decref(m);
	m = cli_audit_merge(names, lists, 0, 10);
	assert_int_equal(json_array_size(m), 0);
	json_decref(m);
	for (i = 0; i < 3; i++)
		json_decref(lists[i]);
}

/* ------------------------------------------------------------ bundles */

static json_t *
bundle(struct env *e, uint64_t from, uint64_t to, const char *cert)
{
	json_t	*b;

	if (auditsvc_export_bundle(&b, e->log, from, to, 0, cert) != 0)
		fail_msg("export: %s", err_msg());
	return b;
}

static void
test_cli_audit__bundle_ok(void **state)
{
	struct env			*e = *state;
	struct cli_audit_summary	 s;
	json_t				*b;
	char				*txt, *path;
	json_error_t			 jerr;

	append(e, 30);
	checkpoint(e, 0);
	b = bundle(e, 5, 15, e->cert);
	assert_int_equal(cli_audit_bundle_verify(&s, b, e->store), 0);
	assert_string_equal(s.origin, "node1/test");
	assert_string_equal(s.signer, "sign:test");
	assert_int_equal(s.from, 5);
	assert_int_equal(s.count, 10);
	assert_int_equal(s.cp_size, 30);
	assert_true(s.bad_index == UINT64_MAX);
	/* through a file, as verify-export reads it */
	txt = json_dumps(b, JSON_COMPACT);
	path = write_file(e, "b.json", txt);
	json_decref(b);
	assert_non_null(b = json_load_file(path, 0, &jerr));
	assert_int_equal(cli_audit_bundle_verify(&s, b, e->store), 0);
	json_decref(b);
	free(txt);
	free(path);
	/* the whole log, and a single entry */
	b = bundle(e, 0, 30, e->cert);
	assert_int_equal(cli_audit_bundle_verify(&s, b, e->store), 0);
	json_decref(b);
	b = bundle(e, 29, 30, e->cert);
	assert_int_equal(cli_audit_bundle_verify(&s, b, e->store), 0);
	json_decref(b);
}

static void
test_cli_audit__bundle_tampered(void **state)
{
	struct env			*e = *state;
	struct cli_audit_summary	 s;
	json_t				*b, *arr, *ent;

	append(e, 30);
	checkpoint(e, 0);
	/* a changed entry is named */
	b = bundle(e, 5, 15, e->cert);
	ent = json_object_get(json_array_get(json_object_get(b, "entries"),
	    3), "entry");
	json_object_set_new(ent, "actor", json_string("mallory@a.test"));
	assert_int_equal(cli_audit_bundle_verify(&s, b, e->store), ERR_PROTO);
	assert_int_equal(s.bad_index, 8);
	assert_non_null(strstr(err_msg(), "entry 8 does not match"));
	json_decref(b);
	/* a removed one too */
	b = bundle(e, 5, 15, e->cert);
	arr = json_object_get(b, "entries");
	assert_int_equal(json_array_remove(arr, 4), 0);
	assert_int_equal(cli_audit_bundle_verify(&s, b, e->store), ERR_PROTO);
	assert_int_equal(s.bad_index, 9);
	assert_non_null(strstr(err_msg(), "entry 9 is missing"));
	json_decref(b);
	/* the last ones */
	b = bundle(e, 5, 15, e->cert);
	arr = json_object_get(b, "entries");
	assert_int_equal(json_array_remove(arr, 9), 0);
	assert_int_equal(cli_audit_bundle_verify(&s, b, e->store), ERR_PROTO);
	assert_int_equal(s.bad_index, 14);
	json_decref(b);
	/* a changed root: the signature no longer holds */
	b = bundle(e, 5, 15, e->cert);
	json_object_set_new(json_object_get(b, "checkpoint"), "root",
	    json_string("00000000000000000000000000000000"
	    "00000000000000000000000000000000"));
	assert_int_equal(cli_audit_bundle_verify(&s, b, e->store), ERR_PROTO);
	assert_non_null(strstr(err_msg(), "signature"));
	json_decref(b);
	/* another format */
	b = bundle(e, 5, 15, e->cert);
	json_object_set_new(b, "format", json_string("something-else"));
	assert_int_equal(cli_audit_bundle_verify(&s, b, e->store), ERR_INVAL);
	json_decref(b);
}

static void
test_cli_audit__bundle_certificates(void **state)
{
	struct env			*e = *state;
	struct cli_audit_summary	 s;
	X509_STORE			*other;
	json_t				*b;
	char				*cert;

	append(e, 10);
	checkpoint(e, 0);
	/* another CA */
	assert_int_equal(cli_audit_store(&other, e->other_ca_file), 0);
	b = bundle(e, 0, 10, e->cert);
	assert_int_equal(cli_audit_bundle_verify(&s, b, other), ERR_PROTO);
	assert_non_null(strstr(err_msg(), "does not verify against the CA"));
	json_decref(b);
	X509_STORE_free(other);
	/* another service's signing certificate */
	cert = leaf_pem(e, "sign:mailsrv", -DAY, DAY);
	b = bundle(e, 0, 10, cert);
	assert_int_equal(cli_audit_bundle_verify(&s, b, e->store), ERR_PROTO);
	assert_non_null(strstr(err_msg(), "sign:mailsrv"));
	json_decref(b);
	free(cert);
	/* no certificate */
	b = bundle(e, 0, 10, NULL);
	assert_int_equal(cli_audit_bundle_verify(&s, b, e->store), ERR_PROTO);
	json_decref(b);
	/* the CA certificate itself in place of the signer's */
	cert = pem_of(e->ca);
	b = bundle(e, 0, 10, cert);
	assert_int_equal(cli_audit_bundle_verify(&s, b, e->store), ERR_PROTO);
	json_decref(b);
	free(cert);
}

/* A certificate expired since is fine for what it signed back then. */
static void
test_cli_audit__bundle_old_certificate(void **state)
{
	struct env			*e = *state;
	struct cli_audit_summary	 s;
	json_t				*b;
	char				*cert;

	cert = leaf_pem(e, "sign:test", -10 * DAY, -5 * DAY);
	append(e, 5);
	checkpoint(e, ((int64_t)time(NULL) - 7 * DAY) * 1000);
	b = bundle(e, 0, 5, cert);
	assert_int_equal(cli_audit_bundle_verify(&s, b, e->store), 0);
	json_decref(b);
	/* but not for a checkpoint signed after it expired */
	append(e, 1);
	checkpoint(e, 0);
	b = bundle(e, 0, 6, cert);
	assert_int_equal(cli_audit_bundle_verify(&s, b, e->store), ERR_PROTO);
	assert_non_null(strstr(err_msg(), "expired"));
	json_decref(b);
	free(cert);
}

/* ------------------------------------------------------------ verify */

/* A daemon that serves a local log, optionally lying. */
struct fake {
	struct env	*e;
	uint64_t	 cp_size;	/* serve this checkpoint (0: newest) */
	uint64_t	 tamper;	/* serve this entry changed */
	uint64_t	 skip;		/* leave this entry out */
	int		 down;
	int		 nreq;
};

static void
fake_entries(struct fake *f, json_t **out, uint64_t start, uint64_t limit)
{
	json_t		*arr, *x;
	uint64_t	 next;
	size_t		 i;

	assert_int_equal(audit_query(&arr, &next, f->e->log, NULL, start,
	    (size_t)limit), 0);
	for (i = 0; i < json_array_size(arr); i++) {
		x = json_array_get(arr, i);
		if ((uint64_t)json_integer_value(json_object_get(x, "index")) ==
		    f->skip)
			json_array_remove(arr, i--);
		else if ((uint64_t)json_integer_value(json_object_get(x,
		    "index")) == f->tamper)
			json_object_set_new(json_object_get(x, "entry"),
			    "outcome", json_string("denied"));
	}
	*out = json_pack("{s:o,s:o,s:I}", "entries", arr, "next",
	    next == AUDIT_NO_MORE ? json_null() :
	    json_integer((json_int_t)next), "size",
	    (json_int_t)audit_size(f->e->log));
}

static int
fake_get(json_t **out, int *status, void *arg, const char *target)
{
	struct fake		*f = arg;
	unsigned long long	 a, b;
	int			 rc;

	f->nreq++;
	*status = 200;
	if (f->down) {
		err_set(ERR_IO, "cannot connect to the fake");
		return ERR_IO;
	}
	if (strcmp(target, "/v1/audit/checkpoint") == 0) {
		rc = f->cp_size ? audit_checkpoint_get(out, f->e->log,
		    f->cp_size) : audit_checkpoint_latest(out, f->e->log);
		if (rc == ERR_NOTFOUND) {
			*status = 404;
			*out = json_pack("{s:s,s:s}", "error", "not_found",
			    "message", "no signed checkpoint yet");
			return 0;
		}
		assert_int_equal(rc, 0);
		json_object_set_new(*out, "certificate",
		    json_string(f->e->cert));
	} else if (sscanf(target, "/v1/audit/proof/consistency?from=%llu&"
	    "to=%llu", &a, &b) == 2)
		assert_int_equal(audit_consistency_json(out, f->e->log, a, b),
		    0);
	else if (sscanf(target, "/v1/audit/entries?start=%llu&limit=%llu",
	    &a, &b) == 2)
		fake_entries(f, out, a, b);
	else
		fail_msg("unexpected target %s", target);
	return 0;
}

static int
verify_flags(struct fake *f, struct cli_audit_check *c, json_t **next,
    const json_t *state, int flags)
{
	struct cli_audit_src	src = { fake_get, f };

	return cli_audit_verify_log(c, next, &src, "node1/test", state,
	    f->e->store, flags);
}

static int
verify(struct fake *f, struct cli_audit_check *c, json_t **next,
    const json_t *state)
{
	return verify_flags(f, c, next, state, CLI_AUDIT_QUICK);
}

static void
test_cli_audit__verify_log(void **state)
{
	struct env		*e = *state;
	struct fake		 f = { e, 0, UINT64_MAX, UINT64_MAX, 0, 0 };
	struct cli_audit_check	 c;
	json_t			*s1 = NULL, *s2 = NULL, *next = NULL;

	/* nothing signed yet: nothing to verify, no state */
	assert_int_equal(verify(&f, &c, &s1, NULL), 0);
	assert_int_equal(c.no_checkpoint, 1);
	assert_null(s1);
	append(e, 30);
	checkpoint(e, 0);
	append(e, 3);		/* beyond the checkpoint: not needed */
	assert_int_equal(verify(&f, &c, &s1, NULL), 0);
	assert_non_null(s1);
	assert_int_equal(c.cp_size, 30);
	assert_int_equal(c.size, 33);
	assert_int_equal(c.prev_size, 0);
	assert_string_equal(c.signer, "sign:test");
	assert_true(c.bad_index == UINT64_MAX);
	/* later: consistent with the saved state, only new entries read */
	append(e, 1200);
	checkpoint(e, 0);
	f.nreq = 0;
	assert_int_equal(verify(&f, &c, &s2, s1), 0);
	assert_int_equal(c.prev_size, 30);
	assert_int_equal(c.cp_size, 1233);
	assert_int_equal(f.nreq, 1 + 1 + 2);	/* cp, proof, 2 pages */
	/* nothing new since: one page read for the size */
	assert_int_equal(verify(&f, &c, &next, s2), 0);
	json_decref(next);
	/* a changed entry after the saved checkpoint is named */
	f.tamper = 777;
	assert_int_equal(verify(&f, &c, &next, s1), ERR_PROTO);
	assert_null(next);
	assert_int_equal(c.bad_index, 777);
	assert_non_null(strstr(err_msg(), "entry 777 does not match"));
	/* and before it, without a state */
	f.tamper = 3;
	assert_int_equal(verify(&f, &c, &next, NULL), ERR_PROTO);
	assert_int_equal(c.bad_index, 3);
	f.tamper = 0;
	assert_int_equal(verify(&f, &c, &next, NULL), ERR_PROTO);
	assert_int_equal(c.bad_index, 0);
	f.tamper = 1232;
	assert_int_equal(verify(&f, &c, &next, s1), ERR_PROTO);
	assert_int_equal(c.bad_index, 1232);
	/* an edited old entry: a quick run trusts what it verified... */
	f.tamper = 12;
	assert_int_equal(verify(&f, &c, &next, s1), 0);
	json_decref(next);
	/* ...a full one (the default) rereads everything */
	f.nreq = 0;
	assert_int_equal(verify_flags(&f, &c, &next, s1, 0), ERR_PROTO);
	assert_int_equal(c.bad_index, 12);
	assert_int_equal(c.prev_size, 30);
	assert_null(next);
	f.tamper = UINT64_MAX;
	assert_int_equal(verify_flags(&f, &c, &next, s2, 0), 0);
	assert_int_equal(c.prev_size, 1233);
	json_decref(next);
	f.tamper = UINT64_MAX;
	/* a missing one */
	f.skip = 500;
	assert_int_equal(verify(&f, &c, &next, s1), ERR_PROTO);
	assert_int_equal(c.bad_index, 500);
	assert_non_null(strstr(err_msg(), "entry 500 is missing"));
	f.skip = UINT64_MAX;
	/* an older checkpoint than the one verified before */
	f.cp_size = 30;
	assert_int_equal(verify(&f, &c, &next, s2), ERR_PROTO);
	assert_non_null(strstr(err_msg(), "shrank from 1233 to 30"));
	f.cp_size = 0;
	json_decref(s1);
	json_decref(s2);
}

/* A state whose frontier and root are consistent but of another tree. */
static void
other_tree(json_t *st)
{
	struct merkle_frontier	 fr;
	uint8_t			 root[MERKLE_HASH_LEN];
	char			 hex[MERKLE_HEX_LEN + 1];
	json_t			*fa = json_object_get(st, "frontier");
	size_t			 k = 0;
	unsigned		 l;

	merkle_frontier_init(&fr);
	fr.size = (uint64_t)json_integer_value(json_object_get(
	    json_object_get(st, "checkpoint"), "size"));
	for (l = 0; l < MERKLE_LEVELS; l++)
		if (fr.size >> l & 1)
			assert_int_equal(merkle_unhex(fr.h[l],
			    json_string_value(json_array_get(fa, k++))), 0);
	fr.h[0][0] ^= 1;	/* size 21: bit 0 is set */
	merkle_hex(hex, fr.h[0]);
	json_array_set_new(fa, 0, json_string(hex));
	assert_int_equal(merkle_frontier_root(root, &fr), 0);
	merkle_hex(hex, root);
	json_object_set_new(json_object_get(st, "checkpoint"), "root",
	    json_string(hex));
}

static void
test_cli_audit__verify_state(void **state)
{
	struct env		*e = *state;
	struct fake		 f = { e, 0, UINT64_MAX, UINT64_MAX, 0, 0 };
	struct cli_audit_check	 c;
	json_t			*s1 = NULL, *bad, *next = NULL;
	const char		*h;
	char			 hex[MERKLE_HEX_LEN + 1];

	append(e, 21);
	checkpoint(e, 0);
	assert_int_equal(verify(&f, &c, &s1, NULL), 0);
	/* a frontier that does not give its root */
	bad = json_deep_copy(s1);
	h = json_string_value(json_array_get(json_object_get(bad,
	    "frontier"), 0));
	snprintf(hex, sizeof(hex), "%s", h);
	hex[0] = hex[0] == '0' ? '1' : '0';
	json_array_set_new(json_object_get(bad, "frontier"), 0,
	    json_string(hex));
	assert_int_equal(verify(&f, &c, &next, bad), ERR_INVAL);
	json_decref(bad);
	/* a state of another log */
	bad = json_deep_copy(s1);
	json_object_set_new(json_object_get(bad, "checkpoint"), "origin",
	    json_string("node1/other"));
	assert_int_equal(verify(&f, &c, &next, bad), ERR_INVAL);
	json_decref(bad);
	/* a saved tree the log does not extend: entries were changed */
	bad = json_deep_copy(s1);
	append(e, 5);
	checkpoint(e, 0);
	other_tree(bad);
	assert_int_equal(verify(&f, &c, &next, bad), ERR_PROTO);
	assert_non_null(strstr(err_msg(), "removed or changed"));
	json_decref(bad);
	/* no checkpoint served, but one was verified before */
	f.cp_size = 9999;
	assert_int_equal(verify(&f, &c, &next, s1), ERR_PROTO);
	assert_non_null(strstr(err_msg(), "verified before"));
	f.cp_size = 0;
	/* a daemon that does not answer */
	f.down = 1;
	assert_int_equal(verify(&f, &c, &next, s1), ERR_IO);
	assert_null(next);
	f.down = 0;
	json_decref(s1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli_audit__args),
		cmocka_unit_test(test_cli_audit__time),
		cmocka_unit_test(test_cli_audit__merge),
		cmocka_unit_test_setup_teardown(test_cli_audit__bundle_ok,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_cli_audit__bundle_tampered, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_cli_audit__bundle_certificates, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_cli_audit__bundle_old_certificate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_audit__verify_log,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_audit__verify_state,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
