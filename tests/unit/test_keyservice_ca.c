/*
 * test_keyservice_ca.c -- unit tests for the CA (keyservice/ca.c and
 * keyservice/smime.c).
 *
 * Purpose: each certificate profile (extensions, SANs, chain and purpose
 * checks with an X509_STORE), input checks (e-mail, CRL URL, CN, days,
 * key types), CSRs (good, tampered, oversized), CRLs (a revoked serial is
 * refused with CRL checking, another accepted), PKCS#12 (bags, pairing,
 * algorithms, passphrase), CMS detached signatures, raw signatures, PEM
 * round trips and ca_load of written files.
 * Runs in: the unit test binary only; one CA in memory per run; files
 * only in a mkdtemp() directory that the test removes.
 * Failure policy: cmocka assertions.
 * SECURITY: encrypted PEM keys are refused without a prompt; S/MIME
 * addresses and CRL URLs cannot inject X509V3 configuration.
 */
#include <sys/stat.h>

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

#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>

#include "common/err.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "keyservice/ca.h"

#define ADDR		"alice@dept-a.example.gov"
#define CRL_URL		"http://ks.example.gov:8443/crl.der"
#define PASS		"correct horse battery staple"

struct fixture {
	struct ca	 ca;
	EVP_PKEY	*ec;	/* P-256 */
	EVP_PKEY	*rsa;	/* RSA-2048 (3072 in production: slower) */
	EVP_PKEY	*ed;	/* Ed25519 */
};

static int
group_setup(void **state)
{
	struct fixture	*f = xcalloc(1, sizeof(*f));

	if (ca_create(&f->ca, "Amanat Test CA") < 0 ||
	    ca_newkey_ec(&f->ec) < 0 || ca_newkey_rsa(&f->rsa, 2048) < 0 ||
	    ca_newkey_ed25519(&f->ed) < 0)
		return -1;
	*state = f;
	return 0;
}

static int
group_teardown(void **state)
{
	struct fixture	*f = *state;

	ca_free(&f->ca);
	EVP_PKEY_free(f->ec);
	EVP_PKEY_free(f->rsa);
	EVP_PKEY_free(f->ed);
	free(f);
	return 0;
}

/* X509_V_OK or the verification error; purpose 0 = none; crl optional. */
static int
verify_with(X509 *ca, X509 *cert, int purpose, X509_CRL *crl)
{
	X509_STORE	*store;
	X509_STORE_CTX	*ctx;
	int		 err;

	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	assert_non_null(store);
	assert_non_null(ctx);
	assert_int_equal(X509_STORE_add_cert(store, ca), 1);
	if (crl != NULL) {
		assert_int_equal(X509_STORE_add_crl(store, crl), 1);
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	}
	assert_int_equal(X509_STORE_CTX_init(ctx, store, cert, NULL), 1);
	if (purpose != 0)
		assert_int_equal(X509_STORE_CTX_set_purpose(ctx, purpose), 1);
	err = X509_verify_cert(ctx) == 1 ? X509_V_OK :
	    X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return err;
}

/* 1 critical, 0 not, -1 absent. */
static int
ext_critical(X509 *cert, int nid)
{
	int	i = X509_get_ext_by_NID(cert, nid, -1);

	return i < 0 ? -1 : X509_EXTENSION_get_critical(X509_get_ext(cert, i));
}

/* Count SAN entries of a type; with value, only those equal to it. */
static int
san_count(X509 *cert, int type, const char *value)
{
	GENERAL_NAMES	*gens;
	GENERAL_NAME	*g;
	ASN1_STRING	*s;
	int		 i, t, n = 0;

	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		s = GENERAL_NAME_get0_value(g, &t);
		if (t != type)
			continue;
		if (value == NULL || ((size_t)ASN1_STRING_length(s) ==
		    strlen(value) && memcmp(ASN1_STRING_get0_data(s), value,
		    strlen(value)) == 0))
			n++;
	}
	GENERAL_NAMES_free(gens);
	return n;
}

/* The first CRL distribution point URI into out ("" if none). */
static void
crldp_uri(char *out, size_t outlen, X509 *cert)
{
	STACK_OF(DIST_POINT)	*dps;
	DIST_POINT		*dp;
	GENERAL_NAME		*g;
	ASN1_STRING		*s;
	int			 t;

	out[0] = '\0';
	dps = X509_get_ext_d2i(cert, NID_crl_distribution_points, NULL, NULL);
	if (dps == NULL)
		return;
	dp = sk_DIST_POINT_value(dps, 0);
	if (dp != NULL && dp->distpoint != NULL && dp->distpoint->type == 0) {
		g = sk_GENERAL_NAME_value(dp->distpoint->name.fullname, 0);
		s = GENERAL_NAME_get0_value(g, &t);
		if (t == GEN_URI)
			(void)snprintf(out, outlen, "%.*s",
			    ASN1_STRING_length(s),
			    (const char *)ASN1_STRING_get0_data(s));
	}
	CRL_DIST_POINTS_free(dps);
}

static void
test_keyservice_ca__common_fields(void **state)
{
	struct fixture		*f = *state;
	X509			*cert = NULL;
	const ASN1_OCTET_STRING	*aki, *ski;
	char			 buf[128];
	int			 days, secs;

	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_SMIME_SIGN,
	    f->ec, "Alice", ADDR, CA_USER_CERT_DAYS, CRL_URL), 0);
	assert_int_equal(X509_get_version(cert), X509_VERSION_3);
	/* 128 random bits, positive */
	assert_int_equal(ASN1_STRING_length(X509_get0_serialNumber(cert)),
	    16);
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(cert),
	    X509_get_subject_name(f->ca.cert)), 0);
	assert_int_equal(X509_NAME_get_text_by_NID(
	    X509_get_subject_name(cert), NID_commonName, buf, sizeof(buf)), 5);
	assert_string_equal(buf, "Alice");
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
	    NID_organizationName, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "Amanat");
	/* notBefore one hour back, notAfter in CA_USER_CERT_DAYS */
	assert_int_equal(ASN1_TIME_diff(&days, &secs,
	    X509_get0_notBefore(cert), NULL), 1);
	assert_int_equal(days, 0);
	assert_in_range(secs, 3595, 3660);
	assert_int_equal(ASN1_TIME_diff(&days, &secs,
	    X509_get0_notBefore(cert), X509_get0_notAfter(cert)), 1);
	assert_int_equal(days, CA_USER_CERT_DAYS);
	/* basicConstraints critical CA:FALSE; keyUsage critical */
	assert_int_equal(ext_critical(cert, NID_basic_constraints), 1);
	assert_int_equal(X509_check_ca(cert), 0);
	assert_int_equal(ext_critical(cert, NID_key_usage), 1);
	assert_int_equal(ext_critical(cert, NID_ext_key_usage), 0);
	/* SKI of the key; AKI = the CA's SKI */
	ski = X509_get0_subject_key_id(cert);
	aki = X509_get0_authority_key_id(cert);
	assert_non_null(ski);
	assert_non_null(aki);
	assert_int_equal(ASN1_OCTET_STRING_cmp(aki,
	    X509_get0_subject_key_id(f->ca.cert)), 0);
	crldp_uri(buf, sizeof(buf), cert);
	assert_string_equal(buf, CRL_URL);
	assert_int_equal(X509_verify(cert, X509_get0_pubkey(f->ca.cert)), 1);
	X509_free(cert);

	/* no crl_url: no distribution point */
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_CLIENT,
	    f->ec, "mailsrv", NULL, 30, NULL), 0);
	assert_int_equal(X509_get_ext_by_NID(cert, NID_crl_distribution_points,
	    -1), -1);
	X509_free(cert);
}

static void
test_keyservice_ca__server_profile(void **state)
{
	struct fixture	*f = *state;
	EVP_PKEY	*key = NULL;
	X509		*cert = NULL;

	/* ca_issue: a fresh P-256 key */
	assert_int_equal(ca_issue(&key, &cert, &f->ca, CA_PROFILE_SERVER,
	    "mail.example.gov", "mail.example.gov,localhost,127.0.0.1,::1",
	    825), 0);
	assert_int_equal(X509_check_private_key(cert, key), 1);
	assert_int_equal(X509_get_key_usage(cert),
	    KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT);
	assert_int_equal(X509_get_extended_key_usage(cert), XKU_SSL_SERVER);
	assert_int_equal(san_count(cert, GEN_DNS, "mail.example.gov"), 1);
	assert_int_equal(san_count(cert, GEN_DNS, "localhost"), 1);
	assert_int_equal(san_count(cert, GEN_IPADD, NULL), 2);
	assert_int_equal(san_count(cert, GEN_EMAIL, NULL), 0);
	assert_int_equal(verify_with(f->ca.cert, cert, X509_PURPOSE_SSL_SERVER,
	    NULL), X509_V_OK);
	assert_int_equal(verify_with(f->ca.cert, cert, X509_PURPOSE_SSL_CLIENT,
	    NULL), X509_V_ERR_INVALID_PURPOSE);
	assert_int_equal(X509_check_host(cert, "mail.example.gov", 0, 0, NULL),
	    1);
	X509_free(cert);
	EVP_PKEY_free(key);

	/* RSA: keyEncipherment instead of keyAgreement */
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_SERVER,
	    f->rsa, "www", "www.example.gov", 825, NULL), 0);
	assert_int_equal(X509_get_key_usage(cert),
	    KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
	assert_int_equal(verify_with(f->ca.cert, cert, X509_PURPOSE_SSL_SERVER,
	    NULL), X509_V_OK);
	X509_free(cert);

	/* names are required and checked */
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_SERVER,
	    f->ec, "www", NULL, 825, NULL), ERR_INVAL);
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_SERVER,
	    f->ec, "www", "a.example,b:c", 825, NULL), ERR_INVAL);
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_SERVER,
	    f->ec, "www", " , ", 825, NULL), ERR_INVAL);
	assert_null(cert);
}

static void
test_keyservice_ca__client_profile(void **state)
{
	struct fixture	*f = *state;
	X509		*cert = NULL;

	/* a service: no SAN */
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_CLIENT,
	    f->ec, "docstore", NULL, 730, NULL), 0);
	assert_int_equal(X509_get_key_usage(cert),
	    KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT);
	assert_int_equal(X509_get_extended_key_usage(cert), XKU_SSL_CLIENT);
	assert_int_equal(X509_get_ext_by_NID(cert, NID_subject_alt_name, -1),
	    -1);
	assert_int_equal(verify_with(f->ca.cert, cert, X509_PURPOSE_SSL_CLIENT,
	    NULL), X509_V_OK);
	assert_int_equal(verify_with(f->ca.cert, cert, X509_PURPOSE_SSL_SERVER,
	    NULL), X509_V_ERR_INVALID_PURPOSE);
	X509_free(cert);

	/* a user: rfc822Name; Ed25519 gets digitalSignature only */
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_CLIENT,
	    f->ed, "alice", ADDR, 730, CRL_URL), 0);
	assert_int_equal(X509_get_key_usage(cert), KU_DIGITAL_SIGNATURE);
	assert_int_equal(san_count(cert, GEN_EMAIL, ADDR), 1);
	assert_int_equal(verify_with(f->ca.cert, cert, X509_PURPOSE_SSL_CLIENT,
	    NULL), X509_V_OK);
	X509_free(cert);

	/* RSA */
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_CLIENT,
	    f->rsa, "bob", "bob@example.gov", 730, NULL), 0);
	assert_int_equal(X509_get_key_usage(cert), KU_DIGITAL_SIGNATURE);
	assert_int_equal(verify_with(f->ca.cert, cert, X509_PURPOSE_SSL_CLIENT,
	    NULL), X509_V_OK);
	X509_free(cert);
}

static void
test_keyservice_ca__smime_sign_profile(void **state)
{
	struct fixture	*f = *state;
	EVP_PKEY	*keys[3];
	X509		*cert = NULL;
	size_t		 i;

	keys[0] = f->ec;
	keys[1] = f->rsa;
	keys[2] = f->ed;
	for (i = 0; i < nitems(keys); i++) {
		assert_int_equal(ca_issue_for_key(&cert, &f->ca,
		    CA_PROFILE_SMIME_SIGN, keys[i], "Alice", ADDR,
		    CA_USER_CERT_DAYS, CRL_URL), 0);
		assert_int_equal(X509_get_key_usage(cert),
		    KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION);
		assert_int_equal(ext_critical(cert, NID_key_usage), 1);
		assert_int_equal(X509_get_extended_key_usage(cert), XKU_SMIME);
		assert_int_equal(san_count(cert, GEN_EMAIL, ADDR), 1);
		assert_int_equal(san_count(cert, GEN_EMAIL, NULL), 1);
		assert_int_equal(X509_check_email(cert, ADDR, 0, 0), 1);
		assert_int_equal(verify_with(f->ca.cert, cert,
		    X509_PURPOSE_SMIME_SIGN, NULL), X509_V_OK);
		assert_int_equal(verify_with(f->ca.cert, cert,
		    X509_PURPOSE_SMIME_ENCRYPT, NULL),
		    X509_V_ERR_INVALID_PURPOSE);
		assert_int_equal(verify_with(f->ca.cert, cert,
		    X509_PURPOSE_SSL_CLIENT, NULL), X509_V_ERR_INVALID_PURPOSE);
		X509_free(cert);
		cert = NULL;
	}
	/* an address is required */
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_SMIME_SIGN,
	    f->ec, "Alice", NULL, 730, NULL), ERR_INVAL);
	assert_null(cert);
}

static void
test_keyservice_ca__smime_enc_profile(void **state)
{
	struct fixture	*f = *state;
	X509		*cert = NULL;

	/* RSA: keyEncipherment only */
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_SMIME_ENC,
	    f->rsa, "Alice", ADDR, CA_USER_CERT_DAYS, CRL_URL), 0);
	assert_int_equal(X509_get_key_usage(cert), KU_KEY_ENCIPHERMENT);
	assert_int_equal(ext_critical(cert, NID_key_usage), 1);
	assert_int_equal(X509_get_extended_key_usage(cert), XKU_SMIME);
	assert_int_equal(san_count(cert, GEN_EMAIL, ADDR), 1);
	assert_int_equal(verify_with(f->ca.cert, cert,
	    X509_PURPOSE_SMIME_ENCRYPT, NULL), X509_V_OK);
	assert_int_equal(verify_with(f->ca.cert, cert, X509_PURPOSE_SMIME_SIGN,
	    NULL), X509_V_ERR_INVALID_PURPOSE);
	X509_free(cert);

	/*
	 * EC: keyAgreement (ECDH).  OpenSSL's SMIME_ENCRYPT purpose wants
	 * keyEncipherment, so only the chain is checked here.
	 */
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_SMIME_ENC,
	    f->ec, "Alice", ADDR, CA_USER_CERT_DAYS, NULL), 0);
	assert_int_equal(X509_get_key_usage(cert), KU_KEY_AGREEMENT);
	assert_int_equal(verify_with(f->ca.cert, cert, 0, NULL), X509_V_OK);
	X509_free(cert);
	cert = NULL;

	/* Ed25519 cannot encrypt */
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_SMIME_ENC,
	    f->ed, "Alice", ADDR, CA_USER_CERT_DAYS, NULL), ERR_INVAL);
	assert_null(cert);
}

/* "x@aaa...a.aaa...z" of exactly total bytes, labels of 59. */
static void
make_addr(char *out, size_t total)
{
	size_t	i;

	memcpy(out, "x@", 2);
	for (i = 2; i < total; i++)
		out[i] = (i - 2) % 60 == 59 ? '.' : 'a';
	out[total - 1] = 'z';
	out[total] = '\0';
	assert_int_equal(strlen(out), total);
}

static void
test_keyservice_ca__bad_email(void **state)
{
	static const char *const bad[] = {
		"", "alice", "@example.gov", "alice@", "alice@@example.gov",
		"al ice@example.gov", "alice@example.gov ", "a,b@example.gov",
		"alice@example.gov,DNS:evil.example",
		"alice@example.gov,email:mallory@evil.example",
		"alice:x@example.gov", "alice@exa mple.gov", "alice@-ex.gov",
		"alice@ex-.gov", "alice@ex..gov", "alice@.gov", "alice@gov.",
		".alice@example.gov", "alice.@example.gov", "al..ice@ex.gov",
		"al\x01ice@example.gov", "al\xc3\xa9@example.gov",
		"alice@ex\xc3\xa9.gov", "copy", "alice@[127.0.0.1]",
		"al$ice@example.gov", "\"alice\"@example.gov", "al@ce@ex.gov",
	};
	static const char *const good[] = {
		"alice@example.gov", "a.b-c+tag@dept-a.example.gov",
		"x@localhost", "o'brien@example.gov", "A_1@EXAMPLE.GOV",
	};
	struct fixture	*f = *state;
	X509		*cert = NULL;
	char		 longaddr[300];
	size_t		 i;

	for (i = 0; i < nitems(bad); i++) {
		assert_int_equal(ca_issue_for_key(&cert, &f->ca,
		    CA_PROFILE_SMIME_SIGN, f->ec, "x", bad[i], 30, NULL),
		    ERR_INVAL);
		assert_int_equal(ca_issue_for_key(&cert, &f->ca,
		    CA_PROFILE_CLIENT, f->ec, "x", bad[i], 30, NULL),
		    ERR_INVAL);
		assert_null(cert);
	}
	for (i = 0; i < nitems(good); i++) {
		assert_int_equal(ca_issue_for_key(&cert, &f->ca,
		    CA_PROFILE_SMIME_SIGN, f->ec, "x", good[i], 30, NULL), 0);
		assert_int_equal(san_count(cert, GEN_EMAIL, good[i]), 1);
		assert_int_equal(san_count(cert, GEN_EMAIL, NULL), 1);
		X509_free(cert);
		cert = NULL;
	}
	/* 254 bytes is the limit; a 65-byte local part is too long */
	make_addr(longaddr, 254);
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_SMIME_SIGN,
	    f->ec, "x", longaddr, 30, NULL), 0);
	X509_free(cert);
	cert = NULL;
	make_addr(longaddr, 255);
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_SMIME_SIGN,
	    f->ec, "x", longaddr, 30, NULL), ERR_INVAL);
	memset(longaddr, 'a', 65);
	memcpy(longaddr + 65, "@example.gov", 13);
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_SMIME_SIGN,
	    f->ec, "x", longaddr, 30, NULL), ERR_INVAL);
	assert_null(cert);
}

static void
test_keyservice_ca__bad_crl_url(void **state)
{
	static const char *const bad[] = {
		"", "ftp://ks.example.gov/crl", "http://", "https://",
		"http:///crl", "http://ks.example.gov/a,URI:http://evil/",
		"http://ks.example.gov/a b", "javascript:alert(1)",
		"HTTP://ks.example.gov/crl", "http://ks.example.gov/\n",
		"http://ks.example.gov/$x", "http://user@evil/crl",
		"file:///etc/passwd", "ks.example.gov/crl",
	};
	static const char *const good[] = {
		"http://ks.example.gov/crl.der",
		"https://ks.example.gov:8443/v1/crl?fmt=der&x=%41",
		"http://127.0.0.1/crl",
	};
	struct fixture	*f = *state;
	X509		*cert = NULL;
	char		 uri[600];
	size_t		 i;

	for (i = 0; i < nitems(bad); i++) {
		assert_int_equal(ca_issue_for_key(&cert, &f->ca,
		    CA_PROFILE_SMIME_SIGN, f->ec, "x", ADDR, 30, bad[i]),
		    ERR_INVAL);
		assert_null(cert);
	}
	for (i = 0; i < nitems(good); i++) {
		assert_int_equal(ca_issue_for_key(&cert, &f->ca,
		    CA_PROFILE_SMIME_SIGN, f->ec, "x", ADDR, 30, good[i]), 0);
		crldp_uri(uri, sizeof(uri), cert);
		assert_string_equal(uri, good[i]);
		X509_free(cert);
		cert = NULL;
	}
	memset(uri, 'a', sizeof(uri));
	memcpy(uri, "http://", 7);
	uri[sizeof(uri) - 1] = '\0';
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_SMIME_SIGN,
	    f->ec, "x", ADDR, 30, uri), ERR_INVAL);
}

static void
test_keyservice_ca__bad_args(void **state)
{
	struct fixture	*f = *state;
	X509		*cert = NULL;
	EVP_PKEY	*weak, *p521;
	struct ca	 empty;
	char		 cn[70];

	memset(cn, 'c', sizeof(cn));
	cn[65] = '\0';
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_CLIENT,
	    f->ec, cn, NULL, 30, NULL), ERR_INVAL);
	cn[64] = '\0';
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_CLIENT,
	    f->ec, cn, NULL, 30, NULL), 0);
	X509_free(cert);
	cert = NULL;
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_CLIENT,
	    f->ec, "", NULL, 30, NULL), ERR_INVAL);
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_CLIENT,
	    f->ec, "a\nb", NULL, 30, NULL), ERR_INVAL);
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_CLIENT,
	    f->ec, "x", NULL, 0, NULL), ERR_INVAL);
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_CLIENT,
	    f->ec, "x", NULL, 3651, NULL), ERR_INVAL);
	assert_int_equal(ca_issue_for_key(&cert, &f->ca,
	    (enum ca_profile)99, f->ec, "x", NULL, 30, NULL), ERR_INVAL);
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_CLIENT,
	    NULL, "x", NULL, 30, NULL), ERR_INVAL);
	memset(&empty, 0, sizeof(empty));
	assert_int_equal(ca_issue_for_key(&cert, &empty, CA_PROFILE_CLIENT,
	    f->ec, "x", NULL, 30, NULL), ERR_INVAL);
	/* weak or unlisted key types */
	weak = EVP_RSA_gen(1024);
	p521 = EVP_EC_gen("P-521");
	assert_non_null(weak);
	assert_non_null(p521);
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_CLIENT,
	    weak, "x", NULL, 30, NULL), ERR_INVAL);
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_CLIENT,
	    p521, "x", NULL, 30, NULL), ERR_INVAL);
	assert_null(cert);
	EVP_PKEY_free(weak);
	EVP_PKEY_free(p521);
}

static void
test_keyservice_ca__newkey(void **state)
{
	struct fixture	*f = *state;
	EVP_PKEY	*key = NULL;
	char		 group[32];

	assert_int_equal(ca_newkey_rsa(&key, 1024), ERR_INVAL);
	assert_null(key);
	assert_int_equal(ca_newkey_rsa(&key, 2047), ERR_INVAL);
	assert_int_equal(ca_newkey_rsa(&key, 8193), ERR_INVAL);
	assert_true(EVP_PKEY_is_a(f->rsa, "RSA"));
	assert_int_equal(EVP_PKEY_get_bits(f->rsa), 2048);
	assert_true(EVP_PKEY_is_a(f->ed, "ED25519"));
	assert_true(EVP_PKEY_is_a(f->ec, "EC"));
	assert_int_equal(EVP_PKEY_get_group_name(f->ec, group, sizeof(group),
	    NULL), 1);
	assert_string_equal(group, "prime256v1");
}

static void
test_keyservice_ca__serial_hex(void **state)
{
	struct fixture	*f = *state;
	X509		*cert = NULL;
	BIGNUM		*bn;
	char		 hex[CA_SERIAL_HEX_MAX], *want, *p;

	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_CLIENT,
	    f->ec, "x", NULL, 30, NULL), 0);
	ca_serial_hex(hex, cert);
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	want = BN_bn2hex(bn);
	for (p = want; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	p = want;
	while (*p == '0' && p[1] != '\0')
		p++;
	assert_string_equal(hex, p);
	assert_true(strlen(hex) == 31 || strlen(hex) == 32);
	OPENSSL_free(want);
	BN_free(bn);

	/* leading zero nibble dropped; zero is "0"; 20 bytes fit */
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(cert), 0x0a0b),
	    1);
	ca_serial_hex(hex, cert);
	assert_string_equal(hex, "a0b");
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(cert), 0), 1);
	ca_serial_hex(hex, cert);
	assert_string_equal(hex, "0");
	bn = NULL;
	assert_int_equal(BN_hex2bn(&bn,
	    "FFEEDDCCBBAA99887766554433221100FFEEDDCC"), 40);
	assert_non_null(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)));
	ca_serial_hex(hex, cert);
	assert_string_equal(hex, "ffeeddccbbaa99887766554433221100ffeeddcc");
	BN_free(bn);
	X509_free(cert);
}

static ASN1_ENUMERATED *
revoked_reason(X509_CRL *crl, X509 *cert, int *crit)
{
	X509_REVOKED	*rev = NULL;

	if (X509_CRL_get0_by_cert(crl, &rev, cert) != 1)
		return NULL;
	return X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, crit, NULL);
}

static void
test_keyservice_ca__crl_revokes(void **state)
{
	struct fixture		*f = *state;
	X509			*bad = NULL, *good = NULL;
	X509_CRL		*crl, *crl2;
	BIO			*bio;
	ASN1_ENUMERATED		*reason;
	ASN1_INTEGER		*num;
	struct ca_revoked	 rev[2];
	char			 s1[CA_SERIAL_HEX_MAX], s2[] = "7f01";
	char			*pem = NULL;
	unsigned char		*der = NULL, *der2;
	const unsigned char	*p;
	size_t			 pemlen = 0, derlen = 0;
	int			 days, secs, crit;

	assert_int_equal(ca_issue_for_key(&bad, &f->ca, CA_PROFILE_SMIME_SIGN,
	    f->ec, "Mallory", "mallory@example.gov", 30, CRL_URL), 0);
	assert_int_equal(ca_issue_for_key(&good, &f->ca, CA_PROFILE_SMIME_SIGN,
	    f->ec, "Alice", ADDR, 30, CRL_URL), 0);
	ca_serial_hex(s1, bad);
	rev[0].serial_hex = s1;
	rev[0].when = (int64_t)time(NULL) - 60;
	rev[0].reason = CRL_REASON_KEY_COMPROMISE;
	rev[1].serial_hex = s2;
	rev[1].when = (int64_t)time(NULL) - 3600;
	rev[1].reason = CRL_REASON_NONE;
	assert_int_equal(ca_crl(&pem, &pemlen, &der, &derlen, &f->ca, rev, 2,
	    42, 7), 0);
	assert_int_equal(strlen(pem), pemlen);
	assert_non_null(strstr(pem, "-----BEGIN X509 CRL-----"));

	p = der;
	crl = d2i_X509_CRL(NULL, &p, (long)derlen);
	assert_non_null(crl);
	bio = BIO_new_mem_buf(pem, (int)pemlen);
	crl2 = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
	assert_non_null(crl2);
	der2 = NULL;
	assert_int_equal(i2d_X509_CRL(crl2, &der2), (int)derlen);
	assert_memory_equal(der2, der, derlen);
	OPENSSL_free(der2);
	assert_int_equal(X509_CRL_get_version(crl), X509_CRL_VERSION_2);
	assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(f->ca.cert)),
	    1);
	assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 2);
	assert_int_equal(ASN1_TIME_diff(&days, &secs,
	    X509_CRL_get0_lastUpdate(crl), X509_CRL_get0_nextUpdate(crl)), 1);
	assert_int_equal(days, 7);
	num = X509_CRL_get_ext_d2i(crl, NID_crl_number, &crit, NULL);
	assert_non_null(num);
	assert_int_equal(ASN1_INTEGER_get(num), 42);
	ASN1_INTEGER_free(num);
	assert_true(X509_CRL_get_ext_by_NID(crl, NID_authority_key_identifier,
	    -1) >= 0);
	reason = revoked_reason(crl, bad, &crit);
	assert_non_null(reason);
	assert_int_equal(ASN1_ENUMERATED_get(reason),
	    CRL_REASON_KEY_COMPROMISE);
	ASN1_ENUMERATED_free(reason);
	assert_null(revoked_reason(crl, good, &crit));

	/* the store with CRL checking refuses the revoked one only */
	assert_int_equal(verify_with(f->ca.cert, bad, X509_PURPOSE_SMIME_SIGN,
	    crl), X509_V_ERR_CERT_REVOKED);
	assert_int_equal(verify_with(f->ca.cert, good, X509_PURPOSE_SMIME_SIGN,
	    crl), X509_V_OK);
	assert_int_equal(verify_with(f->ca.cert, bad, X509_PURPOSE_SMIME_SIGN,
	    NULL), X509_V_OK);

	BIO_free(bio);
	X509_CRL_free(crl);
	X509_CRL_free(crl2);
	free(pem);
	free(der);
	X509_free(bad);
	X509_free(good);
}

static void
test_keyservice_ca__crl_bad_input(void **state)
{
	static const char *const serials[] = {
		"", "xyz", "-1", "0x10", "12 34",
		"123456789012345678901234567890123456789012",
	};
	struct fixture		*f = *state;
	struct ca_revoked	 rev;
	struct ca		 empty;
	char			*pem = NULL;
	unsigned char		*der = NULL;
	size_t			 len = 0, i;

	rev.when = 1700000000;
	rev.reason = CRL_REASON_SUPERSEDED;
	for (i = 0; i < nitems(serials); i++) {
		rev.serial_hex = serials[i];
		assert_int_equal(ca_crl(&pem, &len, &der, &len, &f->ca, &rev, 1,
		    1, 7), ERR_INVAL);
		assert_null(pem);
		assert_null(der);
	}
	rev.serial_hex = NULL;
	assert_int_equal(ca_crl(&pem, &len, NULL, NULL, &f->ca, &rev, 1, 1, 7),
	    ERR_INVAL);
	rev.serial_hex = "ABCDEF0123";
	rev.reason = 7;
	assert_int_equal(ca_crl(&pem, &len, NULL, NULL, &f->ca, &rev, 1, 1, 7),
	    ERR_INVAL);
	rev.reason = 11;
	assert_int_equal(ca_crl(&pem, &len, NULL, NULL, &f->ca, &rev, 1, 1, 7),
	    ERR_INVAL);
	rev.reason = CRL_REASON_CESSATION_OF_OPERATION;
	assert_int_equal(ca_crl(&pem, &len, NULL, NULL, &f->ca, &rev, 1, 1, 0),
	    ERR_INVAL);
	memset(&empty, 0, sizeof(empty));
	assert_int_equal(ca_crl(&pem, &len, NULL, NULL, &empty, &rev, 1, 1, 7),
	    ERR_INVAL);
	assert_null(pem);
	/* DER only, and an empty CRL */
	assert_int_equal(ca_crl(NULL, NULL, &der, &len, &f->ca, NULL, 0,
	    UINT64_MAX, 1), 0);
	assert_non_null(der);
	assert_true(len > 100);
	free(der);
}

/* PBES2 with AES-256-CBC (and PBKDF2, the only PBES2 KDF). */
static void
assert_pbes2_aes(const X509_ALGOR *alg)
{
	PBE2PARAM	*pbe2;

	assert_int_equal(OBJ_obj2nid(alg->algorithm), NID_pbes2);
	pbe2 = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM),
	    alg->parameter);
	assert_non_null(pbe2);
	assert_int_equal(OBJ_obj2nid(pbe2->keyfunc->algorithm), NID_id_pbkdf2);
	assert_int_equal(OBJ_obj2nid(pbe2->encryption->algorithm),
	    NID_aes_256_cbc);
	PBE2PARAM_free(pbe2);
}

/* Count key and certificate bags; check their pairing and algorithms. */
static void
p12_bags(PKCS12 *p12, const char *pass, int *nkeys, int *ncerts)
{
	STACK_OF(PKCS7)			*safes;
	STACK_OF(PKCS12_SAFEBAG)	*bags;
	PKCS12_SAFEBAG			*bag;
	PKCS7				*p7;
	const X509_ALGOR		*alg;
	const ASN1_OCTET_STRING		*digest;
	char				*name;
	int				 i, j, nid;

	*nkeys = *ncerts = 0;
	safes = PKCS12_unpack_authsafes(p12);
	assert_non_null(safes);
	for (i = 0; i < sk_PKCS7_num(safes); i++) {
		p7 = sk_PKCS7_value(safes, i);
		nid = OBJ_obj2nid(p7->type);
		if (nid == NID_pkcs7_encrypted) {
			assert_pbes2_aes(p7->d.encrypted->enc_data->algorithm);
			bags = PKCS12_unpack_p7encdata(p7, pass, -1);
		} else
			bags = PKCS12_unpack_p7data(p7);
		assert_non_null(bags);
		for (j = 0; j < sk_PKCS12_SAFEBAG_num(bags); j++) {
			bag = sk_PKCS12_SAFEBAG_value(bags, j);
			name = PKCS12_get_friendlyname(bag);
			if (PKCS12_SAFEBAG_get_nid(bag) ==
			    NID_pkcs8ShroudedKeyBag) {
				(*nkeys)++;
				X509_SIG_get0(PKCS12_SAFEBAG_get0_pkcs8(bag),
				    &alg, &digest);
				assert_pbes2_aes(alg);
				assert_non_null(PKCS12_SAFEBAG_get0_attr(bag,
				    NID_localKeyID));
				assert_non_null(name);
			} else if (PKCS12_SAFEBAG_get_nid(bag) == NID_certBag)
				(*ncerts)++;
			if (name != NULL)
				assert_true(strcmp(name, ADDR " signing") ==
				    0 || strcmp(name, ADDR " encryption") == 0);
			OPENSSL_free(name);
		}
		sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
	}
	sk_PKCS7_pop_free(safes, PKCS7_free);
}

static void
test_keyservice_ca__pkcs12(void **state)
{
	struct fixture		*f = *state;
	X509			*scert = NULL, *ecert = NULL, *cert = NULL;
	EVP_PKEY		*key = NULL;
	STACK_OF(X509)		*extra = NULL;
	PKCS12			*p12;
	const ASN1_OCTET_STRING	*salt;
	const ASN1_INTEGER	*iter;
	const X509_ALGOR	*macalg;
	const ASN1_OBJECT	*macoid;
	unsigned char		*der = NULL;
	const unsigned char	*p;
	char			 longpass[1100];
	size_t			 len = 0;
	int			 nkeys, ncerts;

	assert_int_equal(ca_issue_for_key(&scert, &f->ca,
	    CA_PROFILE_SMIME_SIGN, f->ec, "Alice", ADDR, 730, NULL), 0);
	assert_int_equal(ca_issue_for_key(&ecert, &f->ca,
	    CA_PROFILE_SMIME_ENC, f->rsa, "Alice", ADDR, 730, NULL), 0);
	assert_int_equal(ca_pkcs12(&der, &len, ADDR, f->ec, scert, f->rsa,
	    ecert, f->ca.cert, PASS), 0);
	p = der;
	p12 = d2i_PKCS12(NULL, &p, (long)len);
	assert_non_null(p12);

	/* SHA-256 MAC, >= 100000 iterations; wrong passphrase refused */
	assert_int_equal(PKCS12_verify_mac(p12, PASS, -1), 1);
	assert_int_equal(PKCS12_verify_mac(p12, "wrong", -1), 0);
	PKCS12_get0_mac(NULL, &macalg, &salt, &iter, p12);
	X509_ALGOR_get0(&macoid, NULL, NULL, macalg);
	assert_int_equal(OBJ_obj2nid(macoid), NID_sha256);
	assert_true(ASN1_INTEGER_get(iter) >= 100000);

	p12_bags(p12, PASS, &nkeys, &ncerts);
	assert_int_equal(nkeys, 2);
	assert_int_equal(ncerts, 3);

	/* PKCS12_parse pairs the first key with its certificate */
	assert_int_equal(PKCS12_parse(p12, PASS, &key, &cert, &extra), 1);
	assert_non_null(key);
	assert_non_null(cert);
	assert_int_equal(X509_check_private_key(cert, key), 1);
	assert_int_equal(sk_X509_num(extra), 2);
	EVP_PKEY_free(key);
	X509_free(cert);
	sk_X509_pop_free(extra, X509_free);
	key = NULL;
	cert = NULL;
	extra = NULL;
	ERR_clear_error();
	assert_int_equal(PKCS12_parse(p12, "wrong", &key, &cert, &extra), 0);
	assert_null(key);
	ERR_clear_error();
	PKCS12_free(p12);
	free(der);
	der = NULL;

	/* passphrase required and bounded; keys must match */
	assert_int_equal(ca_pkcs12(&der, &len, ADDR, f->ec, scert, f->rsa,
	    ecert, f->ca.cert, ""), ERR_INVAL);
	assert_int_equal(ca_pkcs12(&der, &len, ADDR, f->ec, scert, f->rsa,
	    ecert, f->ca.cert, NULL), ERR_INVAL);
	memset(longpass, 'p', sizeof(longpass));
	longpass[1025] = '\0';
	assert_int_equal(ca_pkcs12(&der, &len, ADDR, f->ec, scert, f->rsa,
	    ecert, f->ca.cert, longpass), ERR_INVAL);
	assert_int_equal(ca_pkcs12(&der, &len, ADDR, f->rsa, scert, f->ec,
	    ecert, f->ca.cert, PASS), ERR_INVAL);
	assert_int_equal(ca_pkcs12(&der, &len, "no address", f->ec, scert,
	    f->rsa, ecert, f->ca.cert, PASS), ERR_INVAL);
	assert_null(der);
	X509_free(scert);
	X509_free(ecert);
}

static int
cms_verify_data(X509 *ca, const unsigned char *sig, size_t siglen,
    const void *data, size_t len)
{
	CMS_ContentInfo		*cms;
	X509_STORE		*store;
	BIO			*dcont;
	STACK_OF(X509)		*certs;
	const unsigned char	*p = sig;
	int			 ok;

	cms = d2i_CMS_ContentInfo(NULL, &p, (long)siglen);
	assert_non_null(cms);
	assert_int_equal(CMS_is_detached(cms), 1);
	certs = CMS_get1_certs(cms);
	assert_int_equal(sk_X509_num(certs), 2);
	sk_X509_pop_free(certs, X509_free);
	store = X509_STORE_new();
	assert_int_equal(X509_STORE_add_cert(store, ca), 1);
	dcont = BIO_new_mem_buf(data, (int)len);
	ok = CMS_verify(cms, NULL, store, dcont, NULL, CMS_BINARY);
	ERR_clear_error();
	BIO_free(dcont);
	X509_STORE_free(store);
	CMS_ContentInfo_free(cms);
	return ok;
}

static void
test_keyservice_ca__cms_sign(void **state)
{
	struct fixture	*f = *state;
	X509		*cert = NULL, *other = NULL;
	unsigned char	*sig = NULL;
	char		 data[] = "To: bob@example.gov\r\n\r\nhello\r\n";
	size_t		 len = 0;

	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_SMIME_SIGN,
	    f->ec, "Alice", ADDR, 730, NULL), 0);
	assert_int_equal(ca_cms_sign(&sig, &len, cert, f->ec, f->ca.cert,
	    data, strlen(data)), 0);
	assert_int_equal(cms_verify_data(f->ca.cert, sig, len, data,
	    strlen(data)), 1);
	data[0] = 't';
	assert_int_equal(cms_verify_data(f->ca.cert, sig, len, data,
	    strlen(data)), 0);
	free(sig);
	sig = NULL;

	/* a key that is not the certificate's */
	assert_int_equal(ca_cms_sign(&sig, &len, cert, f->rsa, f->ca.cert,
	    data, strlen(data)), ERR_INVAL);
	assert_null(sig);

	/* RSA signer; and a certificate without emailProtection fails */
	assert_int_equal(ca_issue_for_key(&other, &f->ca,
	    CA_PROFILE_SMIME_SIGN, f->rsa, "Alice", ADDR, 730, NULL), 0);
	assert_int_equal(ca_cms_sign(&sig, &len, other, f->rsa, f->ca.cert,
	    data, strlen(data)), 0);
	assert_int_equal(cms_verify_data(f->ca.cert, sig, len, data,
	    strlen(data)), 1);
	free(sig);
	sig = NULL;
	X509_free(other);
	assert_int_equal(ca_issue_for_key(&other, &f->ca, CA_PROFILE_CLIENT,
	    f->ec, "svc", NULL, 730, NULL), 0);
	assert_int_equal(ca_cms_sign(&sig, &len, other, f->ec, f->ca.cert,
	    data, strlen(data)), 0);
	assert_int_equal(cms_verify_data(f->ca.cert, sig, len, data,
	    strlen(data)), 0);
	free(sig);
	X509_free(other);
	X509_free(cert);
}

static int
raw_verify(EVP_PKEY *key, const unsigned char *sig, size_t siglen,
    const void *data, size_t len)
{
	EVP_MD_CTX	*ctx = EVP_MD_CTX_new();
	int		 ok;

	assert_non_null(ctx);
	assert_int_equal(EVP_DigestVerifyInit(ctx, NULL,
	    EVP_PKEY_is_a(key, "ED25519") ? NULL : EVP_sha256(), NULL, key),
	    1);
	ok = EVP_DigestVerify(ctx, sig, siglen, data, len);
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

static void
test_keyservice_ca__sign_raw(void **state)
{
	struct fixture	*f = *state;
	EVP_PKEY	*keys[3];
	unsigned char	*sig = NULL;
	char		 data[] = "commit 4b825dc642cb6eb9a060e54bf8d6";
	size_t		 len = 0, i;

	keys[0] = f->ed;
	keys[1] = f->ec;
	keys[2] = f->rsa;
	for (i = 0; i < nitems(keys); i++) {
		assert_int_equal(ca_sign_raw(&sig, &len, keys[i], data,
		    strlen(data)), 0);
		if (i == 0)
			assert_int_equal(len, 64);
		assert_int_equal(raw_verify(keys[i], sig, len, data,
		    strlen(data)), 1);
		data[0] ^= 1;
		assert_int_equal(raw_verify(keys[i], sig, len, data,
		    strlen(data)), 0);
		data[0] ^= 1;
		free(sig);
		sig = NULL;
	}
	/* empty input is fine; no key is not */
	assert_int_equal(ca_sign_raw(&sig, &len, f->ed, NULL, 0), 0);
	assert_int_equal(raw_verify(f->ed, sig, len, "", 0), 1);
	free(sig);
	sig = NULL;
	assert_int_equal(ca_sign_raw(&sig, &len, NULL, data, 4), ERR_INVAL);
	assert_null(sig);
}

/* A PEM CSR for key with subject CN=cn; *der_out gets its DER too. */
static char *
make_csr(EVP_PKEY *key, const char *cn, unsigned char **der_out,
    int *derlen)
{
	X509_REQ	*req = X509_REQ_new();
	BIO		*bio = BIO_new(BIO_s_mem());
	char		*data, *pem;
	long		 n;

	assert_non_null(req);
	assert_int_equal(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(
	    req), "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0),
	    1);
	assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
	assert_true(X509_REQ_sign(req, key, EVP_PKEY_is_a(key, "ED25519") ?
	    NULL : EVP_sha256()) > 0);
	assert_int_equal(PEM_write_bio_X509_REQ(bio, req), 1);
	n = BIO_get_mem_data(bio, &data);
	pem = xstrndup(data, (size_t)n);
	if (der_out != NULL) {
		*der_out = NULL;
		*derlen = i2d_X509_REQ(req, der_out);
		assert_true(*derlen > 0);
	}
	BIO_free(bio);
	X509_REQ_free(req);
	return pem;
}

static void
test_keyservice_ca__csr_parse(void **state)
{
	struct fixture	*f = *state;
	X509_REQ	*req = NULL;
	X509		*cert = NULL;
	EVP_PKEY	*weak;
	BIO		*bio;
	unsigned char	*der = NULL, *hit;
	char		*pem, *data, *big;
	long		 n;
	int		 derlen = 0;

	/* good: EC and Ed25519; the key can be certified */
	pem = make_csr(f->ec, "csr-subject", &der, &derlen);
	assert_int_equal(ca_csr_parse(&req, pem, strlen(pem)), 0);
	assert_non_null(req);
	assert_int_equal(ca_issue_for_key(&cert, &f->ca, CA_PROFILE_SMIME_SIGN,
	    X509_REQ_get0_pubkey(req), "csr-subject", ADDR, 730, NULL), 0);
	assert_int_equal(X509_check_private_key(cert, f->ec), 1);
	X509_free(cert);
	X509_REQ_free(req);
	req = NULL;
	free(pem);
	pem = make_csr(f->ed, "ed", NULL, NULL);
	assert_int_equal(ca_csr_parse(&req, pem, strlen(pem)), 0);
	X509_REQ_free(req);
	req = NULL;
	/* the length bounds the parse */
	assert_int_equal(ca_csr_parse(&req, pem, strlen(pem) / 2), ERR_INVAL);
	free(pem);

	/* tampered: one byte of the subject after signing */
	hit = memmem(der, (size_t)derlen, "csr-subject", 11);
	assert_non_null(hit);
	hit[0] = 'd';
	bio = BIO_new(BIO_s_mem());
	assert_true(PEM_write_bio(bio, "CERTIFICATE REQUEST", "", der,
	    derlen) > 0);
	n = BIO_get_mem_data(bio, &data);
	assert_int_equal(ca_csr_parse(&req, data, (size_t)n), ERR_INVAL);
	assert_null(req);
	assert_non_null(strstr(err_msg(), "CSR signature"));
	BIO_free(bio);
	OPENSSL_free(der);

	/* weak key, garbage, empty, oversized */
	weak = EVP_RSA_gen(1024);
	assert_non_null(weak);
	pem = make_csr(weak, "weak", NULL, NULL);
	assert_int_equal(ca_csr_parse(&req, pem, strlen(pem)), ERR_INVAL);
	free(pem);
	EVP_PKEY_free(weak);
	assert_int_equal(ca_csr_parse(&req, "garbage", 7), ERR_INVAL);
	assert_int_equal(ca_csr_parse(&req, "", 0), ERR_INVAL);
	big = xmalloc(16 * 1024 + 1);
	memset(big, 'A', 16 * 1024 + 1);
	assert_int_equal(ca_csr_parse(&req, big, 16 * 1024 + 1), ERR_TOOBIG);
	assert_int_equal(ca_csr_parse(&req, big, 16 * 1024), ERR_INVAL);
	assert_null(req);
	free(big);
}

static void
test_keyservice_ca__pem_roundtrip(void **state)
{
	struct fixture	*f = *state;
	EVP_PKEY	*keys[3], *back = NULL;
	X509		*cert = NULL, *cback = NULL;
	BIO		*bio;
	char		*pem = NULL, *data;
	size_t		 len = 0, i;
	long		 n;

	keys[0] = f->ec;
	keys[1] = f->rsa;
	keys[2] = f->ed;
	for (i = 0; i < nitems(keys); i++) {
		assert_int_equal(ca_key_to_pem(&pem, &len, keys[i]), 0);
		assert_int_equal(strlen(pem), len);
		assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
		assert_int_equal(ca_key_from_pem(&back, pem, len), 0);
		assert_int_equal(EVP_PKEY_eq(back, keys[i]), 1);
		EVP_PKEY_free(back);
		back = NULL;
		xfreezero(pem, len);
		pem = NULL;
	}
	assert_int_equal(ca_cert_to_pem(&pem, &len, f->ca.cert), 0);
	assert_non_null(strstr(pem, "-----BEGIN CERTIFICATE-----"));
	assert_int_equal(ca_cert_from_pem(&cback, pem, len), 0);
	assert_int_equal(X509_cmp(cback, f->ca.cert), 0);
	X509_free(cback);
	cback = NULL;
	/* a certificate is not a key, and vice versa */
	assert_int_equal(ca_key_from_pem(&back, pem, len), ERR_INVAL);
	free(pem);
	pem = NULL;

	/* an encrypted key is refused without asking for a passphrase */
	bio = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, f->ec,
	    EVP_aes_256_cbc(), NULL, 0, NULL, (void *)"secret"), 1);
	n = BIO_get_mem_data(bio, &data);
	assert_int_equal(ca_key_from_pem(&back, data, (size_t)n), ERR_INVAL);
	assert_null(back);
	BIO_free(bio);

	assert_int_equal(ca_key_from_pem(&back, "x", 1), ERR_INVAL);
	assert_int_equal(ca_cert_from_pem(&cert, "x", 1), ERR_INVAL);
	assert_int_equal(ca_cert_from_pem(&cert, NULL, 0), ERR_INVAL);
	data = xcalloc(1, 16 * 1024 + 2);
	memset(data, '-', 16 * 1024 + 1);
	assert_int_equal(ca_key_from_pem(&back, data, 16 * 1024 + 1),
	    ERR_TOOBIG);
	assert_int_equal(ca_cert_from_pem(&cert, data, 16 * 1024 + 1),
	    ERR_TOOBIG);
	assert_null(back);
	assert_null(cert);
	free(data);
}

static void
test_keyservice_ca__load_files(void **state)
{
	struct fixture	*f = *state;
	struct ca	 loaded;
	struct stat	 st;
	char		 dir[] = "/tmp/amanat-test-ca.XXXXXX";
	char		*cert, *key;
	FILE		*fp;

	assert_non_null(mkdtemp(dir));
	cert = path_join(dir, "ca.pem");
	key = path_join(dir, "ca.key");
	assert_int_equal(ca_write_cert(cert, f->ca.cert, NULL), 0);
	assert_int_equal(ca_write_key(key, f->ca.key), 0);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(ca_load(&loaded, cert, key), 0);
	assert_int_equal(X509_cmp(loaded.cert, f->ca.cert), 0);
	assert_int_equal(EVP_PKEY_eq(loaded.key, f->ca.key), 1);
	ca_free(&loaded);

	/* an encrypted key file is refused, not prompted for */
	fp = fopen(key, "w");
	assert_non_null(fp);
	assert_int_equal(PEM_write_PKCS8PrivateKey(fp, f->ca.key,
	    EVP_aes_256_cbc(), NULL, 0, NULL, (void *)"secret"), 1);
	fclose(fp);
	assert_true(ca_load(&loaded, cert, key) < 0);
	assert_null(loaded.key);
	/* a key of another certificate is refused */
	assert_int_equal(ca_write_key(key, f->ec), 0);
	assert_true(ca_load(&loaded, cert, key) < 0);
	assert_null(loaded.cert);

	assert_int_equal(unlink(cert), 0);
	assert_int_equal(unlink(key), 0);
	assert_int_equal(rmdir(dir), 0);
	free(cert);
	free(key);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keyservice_ca__common_fields),
		cmocka_unit_test(test_keyservice_ca__server_profile),
		cmocka_unit_test(test_keyservice_ca__client_profile),
		cmocka_unit_test(test_keyservice_ca__smime_sign_profile),
		cmocka_unit_test(test_keyservice_ca__smime_enc_profile),
		cmocka_unit_test(test_keyservice_ca__bad_email),
		cmocka_unit_test(test_keyservice_ca__bad_crl_url),
		cmocka_unit_test(test_keyservice_ca__bad_args),
		cmocka_unit_test(test_keyservice_ca__newkey),
		cmocka_unit_test(test_keyservice_ca__serial_hex),
		cmocka_unit_test(test_keyservice_ca__crl_revokes),
		cmocka_unit_test(test_keyservice_ca__crl_bad_input),
		cmocka_unit_test(test_keyservice_ca__pkcs12),
		cmocka_unit_test(test_keyservice_ca__cms_sign),
		cmocka_unit_test(test_keyservice_ca__sign_raw),
		cmocka_unit_test(test_keyservice_ca__csr_parse),
		cmocka_unit_test(test_keyservice_ca__pem_roundtrip),
		cmocka_unit_test(test_keyservice_ca__load_files),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
