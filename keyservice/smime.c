/*
 * smime.c -- the CA's S/MIME outputs: PKCS#12 bundles, detached CMS
 * signatures and raw signatures (declared in ca.h).
 *
 * Purpose: export a user's signing and encryption keys with their
 * certificates and the CA certificate as one PKCS#12 file; sign data as
 * CMS SignedData (detached, DER); sign bytes with Ed25519 or ECDSA/RSA
 * over SHA-256.
 * Runs in: keyservice (the signer side of the API).
 * Failure policy: OpenSSL failures become one err_msg() line through
 * tls_error(); bad arguments (a key that does not match its certificate,
 * an empty or oversized passphrase) are ERR_INVAL, oversized data
 * ERR_TOOBIG.  Nothing is returned on failure.
 * SECURITY: PKCS#12 keys and certificates are AES-256-CBC under PBKDF2
 * (>= 100000 iterations) and the file carries a SHA-256 MAC with the
 * same iteration count, so the MAC is no cheaper passphrase oracle than
 * the encryption.  The DER output holds only encrypted keys.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "common/err.h"
#include "common/tls.h"
#include "common/xmalloc.h"
#include "keyservice/ca.h"

#define SMIME_MIN_ITER		100000
#define SMIME_P12_ITER		(PKCS12_DEFAULT_ITER > SMIME_MIN_ITER ? \
				    PKCS12_DEFAULT_ITER : SMIME_MIN_ITER)
#define SMIME_PASS_MAX		1024
#define SMIME_ADDR_MAX		254

/* Printable ASCII with one '@' inside: enough for a friendlyName. */
static int
smime_addr_ok(const char *addr)
{
	size_t	len, i;

	if (addr == NULL || (len = strnlen(addr, SMIME_ADDR_MAX + 1)) == 0 ||
	    len > SMIME_ADDR_MAX || strchr(addr, '@') == NULL)
		goto bad;
	for (i = 0; i < len; i++)
		if (addr[i] <= 0x20 || addr[i] >= 0x7f || addr[i] == ',')
			goto bad;
	return 0;
bad:
	err_set(ERR_INVAL, "bad e-mail address");
	return ERR_INVAL;
}

static int
smime_key_matches(X509 *cert, EVP_PKEY *key, const char *what)
{
	if (cert != NULL && key != NULL && X509_check_private_key(cert, key))
		return 0;
	ERR_clear_error();
	err_set(ERR_INVAL, "%s key does not match its certificate", what);
	return ERR_INVAL;
}

/*
 * One key and its certificate: a shrouded key bag and a certificate bag
 * sharing friendlyName "<address> <use>" and localKeyID (the SHA-256 of
 * the certificate).
 */
static int
smime_p12_pair(STACK_OF(PKCS12_SAFEBAG) **certs,
    STACK_OF(PKCS12_SAFEBAG) **keys, EVP_PKEY *key, X509 *cert,
    const char *address, const char *use, const char *pass)
{
	PKCS12_SAFEBAG	*cbag, *kbag;
	unsigned char	 id[EVP_MAX_MD_SIZE];
	unsigned int	 idlen = 0;
	char		 name[SMIME_ADDR_MAX + 16];
	int		 rc;

	if ((rc = smime_key_matches(cert, key, use)) < 0)
		return rc;
	(void)snprintf(name, sizeof(name), "%s %s", address, use);
	if (!X509_digest(cert, EVP_sha256(), id, &idlen) ||
	    (cbag = PKCS12_add_cert(certs, cert)) == NULL ||
	    !PKCS12_add_friendlyname(cbag, name, -1) ||
	    !PKCS12_add_localkeyid(cbag, id, (int)idlen) ||
	    (kbag = PKCS12_add_key(keys, key, 0, SMIME_P12_ITER,
	    NID_aes_256_cbc, pass)) == NULL ||
	    !PKCS12_add_friendlyname(kbag, name, -1) ||
	    !PKCS12_add_localkeyid(kbag, id, (int)idlen))
		return tls_error("PKCS#12 bag");
	return 0;
}

/* Encode into a fresh buffer: i2d_PKCS12 / i2d_CMS_ContentInfo. */
static int
smime_der(unsigned char **out, size_t *len_out, PKCS12 *p12,
    CMS_ContentInfo *cms)
{
	unsigned char	*p;
	int		 len;

	len = p12 != NULL ? i2d_PKCS12(p12, NULL) :
	    i2d_CMS_ContentInfo(cms, NULL);
	if (len <= 0)
		return tls_error("DER");
	p = *out = xmalloc((size_t)len);
	if ((p12 != NULL ? i2d_PKCS12(p12, &p) :
	    i2d_CMS_ContentInfo(cms, &p)) != len) {
		FREE_AND_NULL(*out);
		return tls_error("DER");
	}
	*len_out = (size_t)len;
	return 0;
}

int
ca_pkcs12(unsigned char **out, size_t *len_out, const char *address,
    EVP_PKEY *sign_key, X509 *sign_cert, EVP_PKEY *enc_key, X509 *enc_cert,
    X509 *ca_cert, const char *pass)
{
	STACK_OF(PKCS12_SAFEBAG)	*certs = NULL, *keys = NULL;
	STACK_OF(PKCS7)			*safes = NULL;
	PKCS12				*p12 = NULL;
	size_t				 passlen;
	int				 rc;

	*out = NULL;
	if (pass == NULL || ca_cert == NULL ||
	    (passlen = strnlen(pass, SMIME_PASS_MAX + 1)) == 0 ||
	    passlen > SMIME_PASS_MAX) {
		err_set(ERR_INVAL, "PKCS#12 needs a passphrase of 1..%d bytes "
		    "and the CA certificate", SMIME_PASS_MAX);
		return ERR_INVAL;
	}
	if ((rc = smime_addr_ok(address)) < 0)
		return rc;
	if ((rc = smime_p12_pair(&certs, &keys, sign_key, sign_cert, address,
	    "signing", pass)) < 0 ||
	    (rc = smime_p12_pair(&certs, &keys, enc_key, enc_cert, address,
	    "encryption", pass)) < 0)
		goto done;
	rc = ERR_GENERIC;
	if (PKCS12_add_cert(&certs, ca_cert) == NULL ||
	    !PKCS12_add_safe(&safes, certs, NID_aes_256_cbc, SMIME_P12_ITER,
	    pass) ||
	    !PKCS12_add_safe(&safes, keys, -1, 0, NULL) ||
	    (p12 = PKCS12_add_safes(safes, 0)) == NULL ||
	    !PKCS12_set_mac(p12, pass, -1, NULL, 0, SMIME_P12_ITER,
	    EVP_sha256())) {
		rc = tls_error("PKCS#12");
		goto done;
	}
	rc = smime_der(out, len_out, p12, NULL);
done:
	sk_PKCS12_SAFEBAG_pop_free(certs, PKCS12_SAFEBAG_free);
	sk_PKCS12_SAFEBAG_pop_free(keys, PKCS12_SAFEBAG_free);
	sk_PKCS7_pop_free(safes, PKCS7_free);
	PKCS12_free(p12);
	return rc;
}

int
ca_cms_sign(unsigned char **out, size_t *len_out, X509 *signer,
    EVP_PKEY *key, X509 *ca_cert, const void *data, size_t len)
{
	const unsigned int	 flags = CMS_DETACHED | CMS_BINARY |
				    CMS_PARTIAL;
	CMS_ContentInfo		*cms = NULL;
	STACK_OF(X509)		*certs = NULL;
	BIO			*in = NULL;
	int			 rc;

	*out = NULL;
	if (data == NULL && len > 0) {
		err_set(ERR_INVAL, "no data to sign");
		return ERR_INVAL;
	}
	if (len > INT_MAX) {
		err_set(ERR_TOOBIG, "%zu bytes to sign", len);
		return ERR_TOOBIG;
	}
	if ((rc = smime_key_matches(signer, key, "signing")) < 0)
		return rc;
	/* the digest is the key's default: SHA-256, SHA-512 for Ed25519 */
	if ((in = BIO_new_mem_buf(len > 0 ? data : "", (int)len)) == NULL ||
	    (certs = sk_X509_new_null()) == NULL ||
	    (ca_cert != NULL && !sk_X509_push(certs, ca_cert)) ||
	    (cms = CMS_sign(NULL, NULL, certs, NULL, flags)) == NULL ||
	    CMS_add1_signer(cms, signer, key, NULL, flags) == NULL ||
	    !CMS_final(cms, in, NULL, flags)) {
		rc = tls_error("CMS sign");
		goto done;
	}
	rc = smime_der(out, len_out, NULL, cms);
done:
	sk_X509_free(certs);	/* borrowed: CMS_sign took its own refs */
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	return rc;
}

int
ca_sign_raw(unsigned char **out, size_t *len_out, EVP_PKEY *key,
    const void *data, size_t len)
{
	EVP_MD_CTX		*ctx = NULL;
	const EVP_MD		*md;
	const unsigned char	*tbs = len > 0 ? data : (const void *)"";
	unsigned char		*sig = NULL;
	size_t			 siglen = 0;
	int			 rc = ERR_GENERIC;

	*out = NULL;
	if (key == NULL || (data == NULL && len > 0)) {
		err_set(ERR_INVAL, "nothing to sign with or over");
		return ERR_INVAL;
	}
	/* Ed25519 is one-shot and hashes internally: no digest */
	md = EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448") ?
	    NULL : EVP_sha256();
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(ctx, NULL, md, NULL, key) != 1 ||
	    EVP_DigestSign(ctx, NULL, &siglen, tbs, len) != 1 ||
	    siglen == 0)
		goto done;
	sig = xmalloc(siglen);
	if (EVP_DigestSign(ctx, sig, &siglen, tbs, len) != 1)
		goto done;
	*out = sig;
	*len_out = siglen;
	sig = NULL;
	rc = 0;
done:
	if (rc < 0)
		rc = tls_error("sign");
	free(sig);
	EVP_MD_CTX_free(ctx);
	return rc;
}
