/*
 * gcm.h -- AES-256-GCM in one call, with the associated data in pieces:
 * the sealing of keyservice's keys, of the store's message files and of
 * the queue's envelopes.  (The queue's message files, written as they
 * arrive, stream through their own context in mailsrv/queue.)
 *
 * SECURITY: a decryption that does not authenticate returns ERR_PERM and
 * leaves nothing of the plaintext in out (wiped); so does any failure.
 */
#ifndef COMMON_GCM_H
#define COMMON_GCM_H

#include <stddef.h>

#define GCM_KEY_LEN	32
#define GCM_IV_LEN	12
#define GCM_TAG_LEN	16

struct gcm_aad {
	const void	*p;
	size_t		 n;
};

/*
 * AES-256-GCM of in (n bytes) into out (which may be in) under key and
 * iv, with the AAD pieces in order.  Encrypting (enc = 1) writes tag;
 * decrypting checks it: ERR_PERM on mismatch.  ERR_TOOBIG over INT_MAX
 * bytes; other OpenSSL failures ERR_GENERIC.  Any thread.
 */
int	gcm_crypt(int, const unsigned char *, const unsigned char *,
	    const struct gcm_aad *, size_t, const unsigned char *, size_t,
	    unsigned char *, unsigned char *);

#endif
