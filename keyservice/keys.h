/*
 * keys.h -- the key hierarchy: master key -> key-encryption keys (KEKs,
 * one versioned series per key id, e.g. per department) -> data keys.
 *
 * - The master key (32 bytes, from the 0600 key file) wraps each KEK
 *   version with AES-256-GCM, random nonce, AAD "amanat-kek-v1" || key id
 *   || version.  Wrapped KEKs live in LMDB (named db "keks").
 * - A KEK version wraps data keys (and escrowed private keys) with
 *   AES-256-GCM.  Its nonces are deterministic and never repeat: a 32-bit
 *   field fixed per KEK version (random at creation) || a 64-bit use
 *   counter (NIST SP 800-38D 8.2.1).  The counter is reserved in blocks of
 *   KEYS_COUNTER_BLOCK, durably, before any nonce of the block is used;
 *   after a crash the series resumes at the reserved limit, so a nonce is
 *   never reused even if uses are lost.  The counter is the version's use
 *   count.
 * - A wrapped key is self-describing text (base64 of a binary blob):
 *     'K' 0x01 | id_len (1) | id | version (be32) | nonce (12) |
 *     ciphertext | tag (16)
 *   AAD = "amanat-wrap-v1" || NUL || every header byte through the nonce
 *   || the caller's context (e.g. "mailbox:alice@dept-a.gov").  Unwrapping
 *   with another context, key id or version fails (ERR_PERM).
 * - rotate adds a version; wrapping uses the newest, unwrapping any;
 *   rewrap decrypts with the old version and encrypts with the newest
 *   without returning plaintext to the caller.
 *
 * Runs in: keyservice, on its event loop thread only (no locking).
 * Failure policy: negative enum err with err_set(); LMDB failures are
 *   ERR_IO; a counter reservation that cannot be written fails the wrap.
 * SECURITY: unwrapped KEKs and the master key are kept in mlock'ed memory
 *   and wiped at keys_close(); plaintext outputs are the caller's to wipe
 *   (xfreezero).  Tags are checked by OpenSSL (constant time).
 */
#ifndef KEYSERVICE_KEYS_H
#define KEYSERVICE_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "common/db.h"

#define KEYS_MASTER_LEN		32
#define KEYS_KEK_LEN		32
#define KEYS_DEK_LEN		32
#define KEYS_ID_MAX		64	/* [a-z0-9._-], 1-64 bytes */
#define KEYS_CONTEXT_MAX	512	/* bytes of associated data */
#define KEYS_PLAIN_MAX		(64 * 1024)	/* keys_wrap payload */
#define KEYS_COUNTER_BLOCK	65536
#define KEYS_VERSION_MAX	100000	/* rotations per key id */

struct keys;

struct keys_version {
	uint32_t	version;
	uint64_t	created;	/* unix seconds */
	uint64_t	uses;		/* nonces handed out (reserved bound) */
};

/*
 * Open over an LMDB environment owned by the caller (the keyservice
 * store), with the master key (copied; the caller wipes its copy).
 */
int	keys_open(struct keys **, struct db_env *, const unsigned char *);
void	keys_close(struct keys **);

/* Create version 1 of a key id.  ERR_EXISTS if it exists. */
int	keys_create(struct keys *, const char *);
/* Add a version; *version_out is the new newest.  ERR_NOTFOUND. */
int	keys_rotate(struct keys *, const char *, uint32_t *);
/* Versions of a key id, oldest first; caller frees *out.  ERR_NOTFOUND. */
int	keys_versions(struct keys *, const char *, struct keys_version **,
	    size_t *);

/*
 * A new random data key, returned plain (KEYS_DEK_LEN bytes into dek) and
 * wrapped (*wrapped_out, NUL-terminated base64, caller frees).
 */
int	keys_datakey(struct keys *, const char *, const char *,
	    unsigned char *, char **, uint32_t *);
/* Wrap any secret of 1..KEYS_PLAIN_MAX bytes (escrow of private keys). */
int	keys_wrap(struct keys *, const char *, const char *, const void *,
	    size_t, char **, uint32_t *);
/*
 * Unwrap: *plain_out (caller xfreezero()s it) and its length.  ERR_INVAL
 * malformed; ERR_NOTFOUND unknown key id or version; ERR_PERM wrong
 * context or tampered.
 */
int	keys_unwrap(struct keys *, const char *, const char *,
	    unsigned char **, size_t *);
/* Unwrap and wrap again under the newest version of the same key id. */
int	keys_rewrap(struct keys *, const char *, const char *, char **,
	    uint32_t *);
/* Key id and version of a wrapped key without unwrapping it. */
int	keys_describe(const char *, char *, size_t, uint32_t *);

#endif
