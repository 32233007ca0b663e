/*
 * ca.c -- certificate issuance with OpenSSL 3 (EVP and X509 APIs only).
 *
 * Purpose: the node root CA: keys, certificates for the four profiles
 * (TLS server, TLS client, S/MIME signing, S/MIME encryption), CSR
 * checks, CRLs, and PEM conversion.  PKCS#12, CMS and raw signatures
 * are in smime.c.
 * Runs in: keyservice (node init and the API).
 * Failure policy: every OpenSSL failure becomes one err_msg() line via
 * tls_error(); bad input (addresses, URLs, CSRs, key types) is ERR_INVAL
 * and oversized input ERR_TOOBIG; partially built objects are freed.
 * SECURITY: private keys are written 0600 through file_write_atomic and
 * pass through secure-memory BIOs only; caller-supplied strings that
 * reach an X509V3 configuration string (names, e-mail address, CRL URL)
 * are checked against a strict character set first.  Serial numbers are
 * 128 random bits.
 */
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/err.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "keyservice/ca.h"

#define CA_ROOT_DAYS		3650
#define CA_ISSUE_DAYS_MAX	3650
#define CA_CN_MAX		64	/* ub-common-name */
#define CA_EMAIL_MAX		254	/* RFC 5321 path limit */
#define CA_EMAIL_LOCAL_MAX	64
#define CA_DOMAIN_LABEL_MAX	63
#define CA_URL_MAX		512
#define CA_PEM_MAX		(16 * 1024)
#define CA_SERIAL_BYTES_MAX	20
#define CA_RSA_NEW_MIN		2048
#define CA_RSA_NEW_MAX		8192
#define CA_RSA_KEY_MAX		16384	/* largest RSA key of a CSR */
#define CA_CRL_DAYS_MAX		3650

/* What the key policy accepts (ca_key_kind). */
enum ca_keykind {
	CA_KEY_EC = 0,		/* P-256, P-384 */
	CA_KEY_RSA,		/* >= 2048 bits */
	CA_KEY_ED25519,
};

/* The message of the OpenSSL queue, but for bad input: ERR_INVAL. */
static int
ca_bad_input(const char *what)
{
	char	msg[ERR_MSG_MAX];

	(void)tls_error(what);
	(void)snprintf(msg, sizeof(msg), "%s", err_msg());
	err_set(ERR_INVAL, "%s", msg);
	return ERR_INVAL;
}

/* Key policy: EC P-256/P-384, Ed25519, RSA 2048..16384 bits. */
static int
ca_key_kind(EVP_PKEY *key)
{
	char	group[64];
	int	bits, nid;

	if (key == NULL)
		goto bad;
	if (EVP_PKEY_is_a(key, "ED25519"))
		return CA_KEY_ED25519;
	if (EVP_PKEY_is_a(key, "RSA")) {
		bits = EVP_PKEY_get_bits(key);
		if (bits >= CA_RSA_NEW_MIN && bits <= CA_RSA_KEY_MAX)
			return CA_KEY_RSA;
		goto bad;
	}
	if (EVP_PKEY_is_a(key, "EC") && EVP_PKEY_get_group_name(key, group,
	    sizeof(group), NULL) == 1) {
		nid = OBJ_sn2nid(group);
		if (nid == NID_X9_62_prime256v1 || nid == NID_secp384r1)
			return CA_KEY_EC;
	}
bad:
	ERR_clear_error();
	err_set(ERR_INVAL, "key type not allowed "
	    "(EC P-256/P-384, Ed25519 or RSA >= 2048 bits)");
	return ERR_INVAL;
}

/* The digest to sign with: none for Ed25519 (the algorithm has one). */
static const EVP_MD *
ca_md(EVP_PKEY *key)
{
	if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448"))
		return NULL;
	return EVP_sha256();
}

static int
ca_isalnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* Dot-separated labels of letters, digits and inner hyphens. */
static int
ca_domain_ok(const char *d)
{
	size_t	label = 0, len = strlen(d), i;

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		if (d[i] == '.') {
			if (label == 0 || d[i - 1] == '-')
				return 0;
			label = 0;
		} else if (ca_isalnum((unsigned char)d[i]) ||
		    (d[i] == '-' && label > 0)) {
			if (++label > CA_DOMAIN_LABEL_MAX)
				return 0;
		} else
			return 0;
	}
	return label > 0 && d[len - 1] != '-';
}

/*
 * local@domain: a dot-atom local part (letters, digits and RFC 5322
 * atext specials other than '$'), a hostname domain, <= 254 bytes.  The
 * address is pasted into "email:<address>", so no ',' ':' or space.
 */
static int
ca_email_ok(const char *addr)
{
	const char	*at, *p;
	size_t		 len;

	if (addr == NULL || (len = strlen(addr)) == 0 || len > CA_EMAIL_MAX)
		goto bad;
	if ((at = strchr(addr, '@')) == NULL || at == addr ||
	    (size_t)(at - addr) > CA_EMAIL_LOCAL_MAX)
		goto bad;
	if (addr[0] == '.' || at[-1] == '.')
		goto bad;
	for (p = addr; p < at; p++) {
		if (*p == '.' && p[1] == '.')
			goto bad;
		if (!ca_isalnum((unsigned char)*p) &&
		    strchr(".!#%&'*+-/=?^_`{|}~", *p) == NULL)
			goto bad;
	}
	if (!ca_domain_ok(at + 1))
		goto bad;
	return 0;
bad:
	err_set(ERR_INVAL, "bad e-mail address");
	return ERR_INVAL;
}

/* http(s)://host[:port]/path of letters, digits and "-._~:/?=&%+". */
static int
ca_url_ok(const char *url)
{
	size_t	len, i, skip;

	if (url == NULL)
		goto bad;
	len = strlen(url);
	if (strncmp(url, "http://", 7) == 0)
		skip = 7;
	else if (strncmp(url, "https://", 8) == 0)
		skip = 8;
	else
		goto bad;
	if (len <= skip || len > CA_URL_MAX || !ca_isalnum(url[skip]))
		goto bad;
	for (i = skip; i < len; i++)
		if (!ca_isalnum((unsigned char)url[i]) &&
		    strchr("-._~:/?=&%+", url[i]) == NULL)
			goto bad;
	return 0;
bad:
	err_set(ERR_INVAL, "bad CRL URL (http or https, plain characters)");
	return ERR_INVAL;
}

/* Subject CN: 1..64 bytes, no control characters. */
static int
ca_cn_ok(const char *cn)
{
	size_t	len, i;

	if (cn == NULL || (len = strlen(cn)) == 0 || len > CA_CN_MAX)
		goto bad;
	for (i = 0; i < len; i++)
		if ((unsigned char)cn[i] < 0x20 || cn[i] == 0x7f)
			goto bad;
	return 0;
bad:
	err_set(ERR_INVAL, "bad subject CN (1..%d bytes)", CA_CN_MAX);
	return ERR_INVAL;
}

static int
ca_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX	 ctx;
	X509_EXTENSION	*ext;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return tls_error("certificate extension");
	if (!X509_add_ext(cert, ext, -1)) {
		X509_EXTENSION_free(ext);
		return tls_error("add extension");
	}
	X509_EXTENSION_free(ext);
	return 0;
}

static int
ca_set_serial(X509 *cert)
{
	unsigned char	 raw[16];
	BIGNUM		*bn;
	int		 ok;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return tls_error("RAND_bytes");
	raw[0] &= 0x7f;		/* positive */
	raw[0] |= 0x01;		/* and 16 bytes long */
	if ((bn = BN_bin2bn(raw, sizeof(raw), NULL)) == NULL)
		return tls_error("serial");
	ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
	BN_free(bn);
	return ok ? 0 : tls_error("serial");
}

/* A certificate skeleton: version 3, serial, validity, subject, pubkey. */
static X509 *
ca_skeleton(EVP_PKEY *key, const char *cn, int days)
{
	X509		*cert;
	X509_NAME	*name;

	if ((cert = X509_new()) == NULL)
		return NULL;
	name = X509_get_subject_name(cert);
	if (!X509_set_version(cert, X509_VERSION_3) ||
	    ca_set_serial(cert) < 0 ||
	    X509_gmtime_adj(X509_getm_notBefore(cert), -3600) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, NULL) == NULL ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
	    (const unsigned char *)"Amanat", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) ||
	    !X509_set_pubkey(cert, key)) {
		X509_free(cert);
		return NULL;
	}
	return cert;
}

int
ca_create(struct ca *ca, const char *cn)
{
	int	rc;

	memset(ca, 0, sizeof(*ca));
	if ((rc = ca_cn_ok(cn)) < 0 || (rc = ca_newkey_ec(&ca->key)) < 0)
		return rc;
	if ((ca->cert = ca_skeleton(ca->key, cn, CA_ROOT_DAYS)) == NULL ||
	    !X509_set_issuer_name(ca->cert, X509_get_subject_name(ca->cert)))
		goto fail;
	if (ca_add_ext(ca->cert, ca->cert, NID_basic_constraints,
	    "critical,CA:TRUE") < 0 ||
	    ca_add_ext(ca->cert, ca->cert, NID_key_usage,
	    "critical,keyCertSign,cRLSign") < 0 ||
	    ca_add_ext(ca->cert, ca->cert, NID_subject_key_identifier,
	    "hash") < 0)
		goto fail;
	if (!X509_sign(ca->cert, ca->key, EVP_sha256()))
		goto fail;
	return 0;
fail:
	tls_error("CA certificate");
	ca_free(ca);
	return ERR_GENERIC;
}

/* Never prompt for a passphrase: an encrypted PEM is refused. */
static int
ca_no_pass(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

int
ca_load(struct ca *ca, const char *certfile, const char *keyfile)
{
	FILE	*fp;

	memset(ca, 0, sizeof(*ca));
	if ((fp = fopen(certfile, "r")) != NULL) {
		ca->cert = PEM_read_X509(fp, NULL, ca_no_pass, NULL);
		fclose(fp);
	}
	if ((fp = fopen(keyfile, "r")) != NULL) {
		ca->key = PEM_read_PrivateKey(fp, NULL, ca_no_pass, NULL);
		fclose(fp);
	}
	if (ca->cert == NULL || ca->key == NULL) {
		ca_free(ca);
		return tls_error("load CA");
	}
	if (!X509_check_private_key(ca->cert, ca->key)) {
		ca_free(ca);
		return tls_error("CA key does not match its certificate");
	}
	return 0;
}

void
ca_free(struct ca *ca)
{
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	ca->key = NULL;
	ca->cert = NULL;
}

/* "localhost,127.0.0.1" -> "DNS:localhost,IP:127.0.0.1" */
static int
ca_san_value(char *out, size_t outlen, const char *names)
{
	char		*copy = xstrdup(names), *tok, *save = NULL;
	unsigned char	 addr[16];
	size_t		 n = 0;
	int		 r, rc = 0;

	out[0] = '\0';
	for (tok = strtok_r(copy, ", ", &save); tok != NULL;
	    tok = strtok_r(NULL, ", ", &save)) {
		int ip = inet_pton(AF_INET, tok, addr) == 1 ||
		    inet_pton(AF_INET6, tok, addr) == 1;
		size_t i;

		for (i = 0; !ip && tok[i] != '\0'; i++) {
			if (!ca_isalnum((unsigned char)tok[i]) &&
			    tok[i] != '-' && tok[i] != '.' && tok[i] != '*') {
				err_set(ERR_INVAL, "bad server name '%s'", tok);
				rc = ERR_INVAL;
				goto done;
			}
		}
		r = snprintf(out + n, outlen - n, "%s%s:%s", n ? "," : "",
		    ip ? "IP" : "DNS", tok);
		if (r < 0 || (size_t)r >= outlen - n) {
			err_set(ERR_TOOBIG, "too many server names");
			rc = ERR_TOOBIG;
			goto done;
		}
		n += (size_t)r;
	}
	if (n == 0) {
		err_set(ERR_INVAL, "no server names");
		rc = ERR_INVAL;
	}
done:
	free(copy);
	return rc;
}

/* The subjectAltName configuration string of a profile ("" for none). */
static int
ca_san_for(char *out, size_t outlen, enum ca_profile profile,
    const char *names)
{
	int	rc;

	out[0] = '\0';
	if (profile == CA_PROFILE_SERVER) {
		if (names == NULL) {
			err_set(ERR_INVAL, "no server names");
			return ERR_INVAL;
		}
		return ca_san_value(out, outlen, names);
	}
	if (names == NULL) {
		if (profile == CA_PROFILE_CLIENT)
			return 0;	/* a service client certificate */
		err_set(ERR_INVAL, "S/MIME certificate without an address");
		return ERR_INVAL;
	}
	if ((rc = ca_email_ok(names)) < 0)
		return rc;
	(void)snprintf(out, outlen, "email:%s", names);
	return 0;
}

/* keyUsage and extendedKeyUsage of a profile for a kind of key. */
static int
ca_usage_for(const char **ku, const char **eku, enum ca_profile profile,
    int kind)
{
	switch (profile) {
	case CA_PROFILE_SERVER:
		*eku = "serverAuth";
		*ku = kind == CA_KEY_EC ?
		    "critical,digitalSignature,keyAgreement" :
		    kind == CA_KEY_RSA ?
		    "critical,digitalSignature,keyEncipherment" :
		    "critical,digitalSignature";
		return 0;
	case CA_PROFILE_CLIENT:
		*eku = "clientAuth";
		*ku = kind == CA_KEY_EC ?
		    "critical,digitalSignature,keyAgreement" :
		    "critical,digitalSignature";
		return 0;
	case CA_PROFILE_SMIME_SIGN:
		*eku = "emailProtection";
		*ku = "critical,digitalSignature,nonRepudiation";
		return 0;
	case CA_PROFILE_SMIME_ENC:
		*eku = "emailProtection";
		if (kind == CA_KEY_RSA) {
			*ku = "critical,keyEncipherment";
			return 0;
		}
		if (kind == CA_KEY_EC) {
			*ku = "critical,keyAgreement";
			return 0;
		}
		err_set(ERR_INVAL, "an encryption certificate needs an RSA "
		    "or EC key");
		return ERR_INVAL;
	}
	err_set(ERR_INVAL, "unknown certificate profile %d", (int)profile);
	return ERR_INVAL;
}

/* Everything ca_issue_for_key() checks before building anything. */
static int
ca_issue_check(const char **ku, const char **eku, char *san, size_t sanlen,
    struct ca *ca, enum ca_profile profile, EVP_PKEY *key, const char *cn,
    const char *names, int days, const char *crl_url)
{
	int	kind, rc;

	if (ca == NULL || ca->cert == NULL || ca->key == NULL) {
		err_set(ERR_INVAL, "no CA");
		return ERR_INVAL;
	}
	if (days < 1 || days > CA_ISSUE_DAYS_MAX) {
		err_set(ERR_INVAL, "validity of %d days out of 1..%d", days,
		    CA_ISSUE_DAYS_MAX);
		return ERR_INVAL;
	}
	if ((rc = ca_cn_ok(cn)) < 0 || (kind = rc = ca_key_kind(key)) < 0 ||
	    (rc = ca_usage_for(ku, eku, profile, kind)) < 0 ||
	    (rc = ca_san_for(san, sanlen, profile, names)) < 0)
		return rc;
	if (crl_url != NULL && (rc = ca_url_ok(crl_url)) < 0)
		return rc;
	return 0;
}

int
ca_issue_for_key(X509 **cert_out, struct ca *ca, enum ca_profile profile,
    EVP_PKEY *key, const char *cn, const char *names, int days,
    const char *crl_url)
{
	X509		*cert = NULL;
	const char	*ku = NULL, *eku = NULL;
	char		 san[2048], crldp[CA_URL_MAX + 8];
	int		 rc;

	*cert_out = NULL;
	if ((rc = ca_issue_check(&ku, &eku, san, sizeof(san), ca, profile,
	    key, cn, names, days, crl_url)) < 0)
		return rc;
	if ((cert = ca_skeleton(key, cn, days)) == NULL ||
	    !X509_set_issuer_name(cert, X509_get_subject_name(ca->cert))) {
		rc = tls_error("certificate");
		goto fail;
	}
	if ((rc = ca_add_ext(cert, ca->cert, NID_basic_constraints,
	    "critical,CA:FALSE")) < 0 ||
	    (rc = ca_add_ext(cert, ca->cert, NID_key_usage, ku)) < 0 ||
	    (rc = ca_add_ext(cert, ca->cert, NID_ext_key_usage, eku)) < 0 ||
	    (rc = ca_add_ext(cert, ca->cert, NID_subject_key_identifier,
	    "hash")) < 0 ||
	    (rc = ca_add_ext(cert, ca->cert, NID_authority_key_identifier,
	    "keyid:always")) < 0)
		goto fail;
	if (san[0] != '\0' && (rc = ca_add_ext(cert, ca->cert,
	    NID_subject_alt_name, san)) < 0)
		goto fail;
	if (crl_url != NULL) {
		(void)snprintf(crldp, sizeof(crldp), "URI:%s", crl_url);
		if ((rc = ca_add_ext(cert, ca->cert,
		    NID_crl_distribution_points, crldp)) < 0)
			goto fail;
	}
	if (!X509_sign(cert, ca->key, ca_md(ca->key))) {
		rc = tls_error("sign certificate");
		goto fail;
	}
	*cert_out = cert;
	return 0;
fail:
	X509_free(cert);
	return rc;
}

int
ca_issue(EVP_PKEY **key_out, X509 **cert_out, struct ca *ca,
    enum ca_profile profile, const char *cn, const char *names, int days)
{
	EVP_PKEY	*key = NULL;
	int		 rc;

	*key_out = NULL;
	*cert_out = NULL;
	if ((rc = ca_newkey_ec(&key)) < 0)
		return rc;
	if ((rc = ca_issue_for_key(cert_out, ca, profile, key, cn, names,
	    days, NULL)) < 0) {
		EVP_PKEY_free(key);
		return rc;
	}
	*key_out = key;
	return 0;
}

int
ca_newkey_ec(EVP_PKEY **out)
{
	if ((*out = EVP_EC_gen("P-256")) == NULL)
		return tls_error("EC key");
	return 0;
}

int
ca_newkey_rsa(EVP_PKEY **out, int bits)
{
	*out = NULL;
	if (bits < CA_RSA_NEW_MIN || bits > CA_RSA_NEW_MAX) {
		err_set(ERR_INVAL, "RSA key size %d out of %d..%d", bits,
		    CA_RSA_NEW_MIN, CA_RSA_NEW_MAX);
		return ERR_INVAL;
	}
	if ((*out = EVP_RSA_gen((unsigned int)bits)) == NULL)
		return tls_error("RSA key");
	return 0;
}

int
ca_newkey_ed25519(EVP_PKEY **out)
{
	if ((*out = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL)
		return tls_error("Ed25519 key");
	return 0;
}

/* A PEM input must be present and at most CA_PEM_MAX bytes. */
static int
ca_pem_in(BIO **bio_out, const char *pem, size_t len, const char *what)
{
	*bio_out = NULL;
	if (pem == NULL || len == 0) {
		err_set(ERR_INVAL, "empty %s", what);
		return ERR_INVAL;
	}
	if (len > CA_PEM_MAX) {
		err_set(ERR_TOOBIG, "%s of %zu bytes (limit %d)", what, len,
		    CA_PEM_MAX);
		return ERR_TOOBIG;
	}
	if ((*bio_out = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return tls_error("BIO");
	return 0;
}

int
ca_csr_parse(X509_REQ **out, const char *pem, size_t len)
{
	BIO		*bio = NULL;
	X509_REQ	*req = NULL;
	EVP_PKEY	*pub;
	int		 rc;

	*out = NULL;
	if ((rc = ca_pem_in(&bio, pem, len, "CSR")) < 0)
		return rc;
	if ((req = PEM_read_bio_X509_REQ(bio, NULL, ca_no_pass,
	    NULL)) == NULL) {
		rc = ca_bad_input("CSR");
		goto done;
	}
	if ((pub = X509_REQ_get0_pubkey(req)) == NULL ||
	    X509_REQ_verify(req, pub) != 1) {
		rc = ca_bad_input("CSR signature");
		goto done;
	}
	if ((rc = ca_key_kind(pub)) < 0)
		goto done;
	*out = req;
	req = NULL;
	rc = 0;
done:
	X509_REQ_free(req);
	BIO_free(bio);
	return rc;
}

void
ca_serial_hex(char *out, X509 *cert)
{
	static const char	 hex[] = "0123456789abcdef";
	const ASN1_INTEGER	*sn = X509_get0_serialNumber(cert);
	const unsigned char	*p = ASN1_STRING_get0_data(sn);
	int			 len = ASN1_STRING_length(sn), i;
	size_t			 n = 0;

	out[0] = '\0';
	/* RFC 5280 serials are positive and <= 20 bytes; others: "". */
	if (ASN1_STRING_type(sn) != V_ASN1_INTEGER || len < 0 ||
	    len > CA_SERIAL_BYTES_MAX)
		return;
	while (len > 0 && *p == 0) {
		p++;
		len--;
	}
	for (i = 0; i < len; i++) {
		if (i > 0 || (p[i] >> 4) != 0)
			out[n++] = hex[p[i] >> 4];
		out[n++] = hex[p[i] & 0x0f];
	}
	if (n == 0)
		out[n++] = '0';
	out[n] = '\0';
}

/* A serial as ca_serial_hex() writes it (either case) -> ASN1_INTEGER. */
static int
ca_serial_parse(ASN1_INTEGER **out, const char *s)
{
	BIGNUM	*bn = NULL;
	size_t	 len, i;

	*out = NULL;
	if (s == NULL || (len = strlen(s)) == 0 ||
	    len > 2 * CA_SERIAL_BYTES_MAX)
		goto bad;
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f') ||
		    (s[i] >= 'A' && s[i] <= 'F')))
			goto bad;
	if (BN_hex2bn(&bn, s) != (int)len) {
		BN_free(bn);
		return tls_error("serial");
	}
	*out = BN_to_ASN1_INTEGER(bn, NULL);
	BN_free(bn);
	return *out != NULL ? 0 : tls_error("serial");
bad:
	err_set(ERR_INVAL, "bad serial number");
	return ERR_INVAL;
}

/* One revoked entry: serial, date and (unless none) a reason code. */
static int
ca_crl_add_revoked(X509_CRL *crl, const struct ca_revoked *r)
{
	X509_REVOKED	*rev = NULL;
	ASN1_INTEGER	*serial = NULL;
	ASN1_TIME	*when = NULL;
	ASN1_ENUMERATED	*reason = NULL;
	int		 rc;

	/* 7 is unassigned; removeFromCRL is for delta CRLs only */
	if (r->reason < CRL_REASON_NONE ||
	    r->reason > CRL_REASON_AA_COMPROMISE || r->reason == 7 ||
	    r->reason == CRL_REASON_REMOVE_FROM_CRL || r->when < 0) {
		err_set(ERR_INVAL, "bad revocation reason or date");
		return ERR_INVAL;
	}
	if ((rc = ca_serial_parse(&serial, r->serial_hex)) < 0)
		return rc;
	rc = ERR_GENERIC;
	if ((rev = X509_REVOKED_new()) == NULL ||
	    !X509_REVOKED_set_serialNumber(rev, serial) ||
	    (when = ASN1_TIME_set(NULL, (time_t)r->when)) == NULL ||
	    !X509_REVOKED_set_revocationDate(rev, when))
		goto done;
	if (r->reason != CRL_REASON_NONE &&
	    ((reason = ASN1_ENUMERATED_new()) == NULL ||
	    !ASN1_ENUMERATED_set(reason, r->reason) ||
	    !X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, reason, 0, 0)))
		goto done;
	if (!X509_CRL_add0_revoked(crl, rev))
		goto done;
	rev = NULL;
	rc = 0;
done:
	if (rc < 0)
		rc = tls_error("revoked entry");
	X509_REVOKED_free(rev);
	ASN1_INTEGER_free(serial);
	ASN1_TIME_free(when);
	ASN1_ENUMERATED_free(reason);
	return rc;
}

/* crlNumber and authorityKeyIdentifier. */
static int
ca_crl_exts(X509_CRL *crl, X509 *issuer, uint64_t number)
{
	X509V3_CTX	 ctx;
	X509_EXTENSION	*ext = NULL;
	ASN1_INTEGER	*num;
	int		 ok;

	if ((num = ASN1_INTEGER_new()) == NULL)
		return tls_error("CRL number");
	ok = ASN1_INTEGER_set_uint64(num, number) &&
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0);
	ASN1_INTEGER_free(num);
	if (!ok)
		return tls_error("CRL number");
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, NULL, NULL, crl, 0);
	ok = (ext = X509V3_EXT_conf_nid(NULL, &ctx,
	    NID_authority_key_identifier, "keyid:always")) != NULL &&
	    X509_CRL_add_ext(crl, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : tls_error("CRL authorityKeyIdentifier");
}

static int
ca_crl_build(X509_CRL **out, struct ca *ca, const struct ca_revoked *revs,
    size_t nrevs, uint64_t number, int next_days)
{
	X509_CRL	*crl = NULL;
	ASN1_TIME	*last = NULL, *next = NULL;
	time_t		 now = time(NULL);
	size_t		 i;
	int		 rc = ERR_GENERIC;

	*out = NULL;
	if ((crl = X509_CRL_new()) == NULL ||
	    !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cert)) ||
	    (last = ASN1_TIME_set(NULL, now)) == NULL ||
	    (next = ASN1_TIME_adj(NULL, now, next_days, 0)) == NULL ||
	    !X509_CRL_set1_lastUpdate(crl, last) ||
	    !X509_CRL_set1_nextUpdate(crl, next)) {
		rc = tls_error("CRL");
		goto done;
	}
	for (i = 0; i < nrevs; i++)
		if ((rc = ca_crl_add_revoked(crl, &revs[i])) < 0)
			goto done;
	if ((rc = ca_crl_exts(crl, ca->cert, number)) < 0)
		goto done;
	if (!X509_CRL_sort(crl) ||
	    !X509_CRL_sign(crl, ca->key, ca_md(ca->key))) {
		rc = tls_error("sign CRL");
		goto done;
	}
	*out = crl;
	crl = NULL;
	rc = 0;
done:
	X509_CRL_free(crl);
	ASN1_TIME_free(last);
	ASN1_TIME_free(next);
	return rc;
}

/* Copy a memory BIO out, NUL-terminated; the length excludes the NUL. */
static int
ca_bio_copy(char **out, size_t *len_out, BIO *bio)
{
	char	*data;
	long	 len;

	if ((len = BIO_get_mem_data(bio, &data)) <= 0)
		return tls_error("PEM output");
	*out = xmalloc((size_t)len + 1);
	memcpy(*out, data, (size_t)len);
	(*out)[len] = '\0';
	if (len_out != NULL)
		*len_out = (size_t)len;
	return 0;
}

int
ca_crl(char **pem_out, size_t *pem_len, unsigned char **der_out,
    size_t *der_len, struct ca *ca, const struct ca_revoked *revs,
    size_t nrevs, uint64_t number, int next_days)
{
	X509_CRL	*crl = NULL;
	BIO		*bio = NULL;
	unsigned char	*p;
	int		 len, rc;

	if (pem_out != NULL)
		*pem_out = NULL;
	if (der_out != NULL)
		*der_out = NULL;
	if (ca == NULL || ca->cert == NULL || ca->key == NULL ||
	    (nrevs > 0 && revs == NULL) || next_days < 1 ||
	    next_days > CA_CRL_DAYS_MAX) {
		err_set(ERR_INVAL, "bad CRL arguments");
		return ERR_INVAL;
	}
	if ((rc = ca_crl_build(&crl, ca, revs, nrevs, number, next_days)) < 0)
		return rc;
	if (pem_out != NULL) {
		if ((bio = BIO_new(BIO_s_mem())) == NULL ||
		    !PEM_write_bio_X509_CRL(bio, crl)) {
			rc = tls_error("PEM CRL");
			goto done;
		}
		if ((rc = ca_bio_copy(pem_out, pem_len, bio)) < 0)
			goto done;
	}
	if (der_out != NULL) {
		if ((len = i2d_X509_CRL(crl, NULL)) <= 0) {
			rc = tls_error("DER CRL");
			goto done;
		}
		p = *der_out = xmalloc((size_t)len);
		if (i2d_X509_CRL(crl, &p) != len) {
			rc = tls_error("DER CRL");
			goto done;
		}
		if (der_len != NULL)
			*der_len = (size_t)len;
	}
	rc = 0;
done:
	if (rc < 0) {
		if (pem_out != NULL)
			FREE_AND_NULL(*pem_out);
		if (der_out != NULL)
			FREE_AND_NULL(*der_out);
	}
	BIO_free(bio);
	X509_CRL_free(crl);
	return rc;
}

int
ca_key_to_pem(char **out, size_t *len_out, EVP_PKEY *key)
{
	BIO	*bio;
	int	 rc;

	*out = NULL;
	if ((bio = BIO_new(BIO_s_secmem())) == NULL)
		return tls_error("BIO");
	/* PKCS#8 PrivateKeyInfo, "BEGIN PRIVATE KEY" */
	if (!PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
		rc = tls_error("PEM key");
	else
		rc = ca_bio_copy(out, len_out, bio);
	BIO_free(bio);	/* secure memory BIO: wiped on free */
	return rc;
}

int
ca_key_from_pem(EVP_PKEY **out, const char *pem, size_t len)
{
	BIO		*bio = NULL;
	EVP_PKEY	*key = NULL;
	int		 rc;

	*out = NULL;
	if ((rc = ca_pem_in(&bio, pem, len, "private key")) < 0)
		return rc;
	if ((key = PEM_read_bio_PrivateKey(bio, NULL, ca_no_pass,
	    NULL)) == NULL) {
		rc = ca_bad_input("private key");
		goto done;
	}
	if ((rc = ca_key_kind(key)) < 0)
		goto done;
	*out = key;
	key = NULL;
	rc = 0;
done:
	EVP_PKEY_free(key);
	BIO_free(bio);
	return rc;
}

int
ca_cert_to_pem(char **out, size_t *len_out, X509 *cert)
{
	BIO	*bio;
	int	 rc;

	*out = NULL;
	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return tls_error("BIO");
	if (!PEM_write_bio_X509(bio, cert))
		rc = tls_error("PEM certificate");
	else
		rc = ca_bio_copy(out, len_out, bio);
	BIO_free(bio);
	return rc;
}

int
ca_cert_from_pem(X509 **out, const char *pem, size_t len)
{
	BIO	*bio = NULL;
	int	 rc;

	*out = NULL;
	if ((rc = ca_pem_in(&bio, pem, len, "certificate")) < 0)
		return rc;
	if ((*out = PEM_read_bio_X509(bio, NULL, ca_no_pass, NULL)) == NULL)
		rc = ca_bad_input("certificate");
	BIO_free(bio);
	return rc;
}

int
ca_write_key(const char *path, EVP_PKEY *key)
{
	BIO	*bio;
	char	*data;
	long	 len;
	int	 rc;

	if ((bio = BIO_new(BIO_s_secmem())) == NULL)
		return tls_error("BIO");
	if (!PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)) {
		BIO_free(bio);
		return tls_error("PEM key");
	}
	len = BIO_get_mem_data(bio, &data);
	rc = file_write_atomic(path, data, (size_t)len, 0600);
	BIO_free(bio);	/* secure memory BIO: wiped on free */
	return rc;
}

int
ca_write_cert(const char *path, X509 *cert, X509 *chain)
{
	BIO	*bio;
	char	*data;
	long	 len;
	int	 rc;

	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return tls_error("BIO");
	if (!PEM_write_bio_X509(bio, cert) ||
	    (chain != NULL && !PEM_write_bio_X509(bio, chain))) {
		BIO_free(bio);
		return tls_error("PEM certificate");
	}
	len = BIO_get_mem_data(bio, &data);
	rc = file_write_atomic(path, data, (size_t)len, 0644);
	BIO_free(bio);
	return rc;
}
