/*
 * gcm.c -- AES-256-GCM in one call (see gcm.h).
 *
 * Purpose: one place for the seal/open of small records and files.
 * Runs in: any thread; the cipher is fetched from OpenSSL once per
 * process (pthread_once), which spares each call the implicit fetch.
 * Failure policy: negative enum err with err_set() (tls_error() for
 * OpenSSL's own failures).
 * SECURITY: out is wiped on every failure, so a caller never sees
 * unauthenticated plaintext nor a half-encrypted buffer.
 */
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "common/err.h"
#include "common/gcm.h"
#include "common/tls.h"

static pthread_once_t	 gcm_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER	*gcm_cipher;

static void
gcm_fetch(void)
{
	gcm_cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

int
gcm_crypt(int enc, const unsigned char *key, const unsigned char *iv,
    const struct gcm_aad *aad, size_t naad, const unsigned char *in,
    size_t n, unsigned char *out, unsigned char *tag)
{
	EVP_CIPHER_CTX	*c = NULL;
	int		 rc = ERR_GENERIC, outl;
	size_t		 i;

	if (n > INT_MAX) {
		err_set(ERR_TOOBIG, "AES-256-GCM input of %zu bytes", n);
		return ERR_TOOBIG;
	}
	pthread_once(&gcm_once, gcm_fetch);
	if (gcm_cipher == NULL) {
		rc = tls_error("fetch AES-256-GCM");
		goto done;
	}
	if ((c = EVP_CIPHER_CTX_new()) == NULL) {
		rc = tls_error("EVP_CIPHER_CTX_new");
		goto done;
	}
	if (!EVP_CipherInit_ex2(c, gcm_cipher, key, iv, enc, NULL)) {
		rc = tls_error("AES-256-GCM init");
		goto done;
	}
	for (i = 0; i < naad; i++) {
		if (aad[i].n == 0)
			continue;
		if (aad[i].n > INT_MAX || !EVP_CipherUpdate(c, NULL, &outl,
		    aad[i].p, (int)aad[i].n)) {
			rc = tls_error("AES-256-GCM aad");
			goto done;
		}
	}
	if (!EVP_CipherUpdate(c, out, &outl, in, (int)n)) {
		rc = tls_error("AES-256-GCM update");
		goto done;
	}
	if (!enc && !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG,
	    GCM_TAG_LEN, tag)) {
		rc = tls_error("AES-256-GCM set tag");
		goto done;
	}
	if (!EVP_CipherFinal_ex(c, out + outl, &outl)) {
		if (enc) {
			rc = tls_error("AES-256-GCM final");
			goto done;
		}
		ERR_clear_error();
		err_set(ERR_PERM, "does not authenticate");
		rc = ERR_PERM;
		goto done;
	}
	if (enc && !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG,
	    GCM_TAG_LEN, tag)) {
		rc = tls_error("AES-256-GCM get tag");
		goto done;
	}
	rc = 0;
done:
	EVP_CIPHER_CTX_free(c);
	if (rc < 0)
		explicit_bzero(out, n);
	return rc;
}
