/*
 * ca.c -- certificate issuance with OpenSSL 3 (EVP and X509 APIs only).
 *
 * Runs in: keyservice (node init and, later, the API).
 * Failure policy: every OpenSSL failure becomes one err_msg() line via
 * tls_error(); partially built objects are freed.
 * SECURITY: private keys are written 0600 through file_write_atomic; the
 * PEM buffer holding a key is wiped.  Serial numbers are 128 random bits.
 */
#include <arpa/inet.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/err.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "keyservice/ca.h"

#define CA_ROOT_DAYS	3650

static EVP_PKEY *
ca_newkey(void)
{
	return EVP_EC_gen("P-256");
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
	if (!X509_set_version(cert, 2) || ca_set_serial(cert) < 0 ||
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
	memset(ca, 0, sizeof(*ca));
	if ((ca->key = ca_newkey()) == NULL)
		return tls_error("CA key");
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

int
ca_load(struct ca *ca, const char *certfile, const char *keyfile)
{
	FILE	*fp;

	memset(ca, 0, sizeof(*ca));
	if ((fp = fopen(certfile, "r")) != NULL) {
		ca->cert = PEM_read_X509(fp, NULL, NULL, NULL);
		fclose(fp);
	}
	if ((fp = fopen(keyfile, "r")) != NULL) {
		ca->key = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
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
			if (!isalnum((unsigned char)tok[i]) &&
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

int
ca_issue(EVP_PKEY **key_out, X509 **cert_out, struct ca *ca,
    enum ca_profile profile, const char *cn, const char *names, int days)
{
	EVP_PKEY	*key = NULL;
	X509		*cert = NULL;
	char		 san[2048];
	int		 rc = ERR_GENERIC;

	*key_out = NULL;
	*cert_out = NULL;
	if (profile == CA_PROFILE_SERVER &&
	    (rc = ca_san_value(san, sizeof(san), names)) < 0)
		return rc;
	rc = ERR_GENERIC;
	if ((key = ca_newkey()) == NULL) {
		tls_error("key");
		goto fail;
	}
	if ((cert = ca_skeleton(key, cn, days)) == NULL ||
	    !X509_set_issuer_name(cert, X509_get_subject_name(ca->cert))) {
		tls_error("certificate");
		goto fail;
	}
	if (ca_add_ext(cert, ca->cert, NID_basic_constraints,
	    "critical,CA:FALSE") < 0 ||
	    ca_add_ext(cert, ca->cert, NID_key_usage,
	    "critical,digitalSignature,keyAgreement") < 0 ||
	    ca_add_ext(cert, ca->cert, NID_ext_key_usage,
	    profile == CA_PROFILE_SERVER ? "serverAuth" : "clientAuth") < 0 ||
	    ca_add_ext(cert, ca->cert, NID_subject_key_identifier,
	    "hash") < 0 ||
	    ca_add_ext(cert, ca->cert, NID_authority_key_identifier,
	    "keyid:always") < 0)
		goto fail;
	if (profile == CA_PROFILE_SERVER &&
	    ca_add_ext(cert, ca->cert, NID_subject_alt_name, san) < 0)
		goto fail;
	if (!X509_sign(cert, ca->key, EVP_sha256())) {
		tls_error("sign certificate");
		goto fail;
	}
	*key_out = key;
	*cert_out = cert;
	return 0;
fail:
	EVP_PKEY_free(key);
	X509_free(cert);
	return err_code() ? err_code() : rc;
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
