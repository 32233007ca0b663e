/*
 * msgfile.h -- the encrypted message file format (private to the store).
 *
 *	offset	size	field
 *	0	4	magic "AMS1"
 *	4	1	format version (1)
 *	5	1	flags: 0x01 = body is zlib (deflate) compressed
 *	6	2	reserved, zero
 *	8	12	AES-256-GCM nonce (random per file)
 *	20	8	uncompressed size, big-endian
 *	28	8	compressed size (= ciphertext size), big-endian
 *	36	csize	AES-256-GCM ciphertext of the compressed message
 *	36+csize 16	GCM tag
 *
 * AAD = "amanat-msg-v1" NUL user-id NUL blob-id header[0..36): the file
 * authenticates only under its own user directory and file name, with
 * its header intact.
 */
#ifndef MAILSRV_STORE_MSGFILE_H
#define MAILSRV_STORE_MSGFILE_H

#include <stddef.h>

#define MSGFILE_MAGIC		"AMS1"
#define MSGFILE_VERSION		1
#define MSGFILE_F_ZLIB		0x01
#define MSGFILE_HDR_LEN		36
#define MSGFILE_NONCE_LEN	12
#define MSGFILE_TAG_LEN		16
#define MSGFILE_KEY_LEN		32	/* AES-256 */
#define MSGFILE_AAD_LABEL	"amanat-msg-v1"

/*
 * Seal len bytes of msg for user_id/blob_id (hex, NUL-terminated) under
 * key: *out (caller frees) is the whole file, *outlen its size.
 * ERR_TOOBIG if len exceeds msg_max; ERR_GENERIC on a library failure.
 */
int	msgfile_seal(unsigned char **, size_t *, const char *, const char *,
	    const unsigned char *, const void *, size_t, int, size_t);
/*
 * Check and open a whole file (untrusted): ERR_IO if malformed (magic,
 * version, flags, sizes, bounds, zlib stream), ERR_PERM if the tag does
 * not verify.  *out (caller frees; plaintext) has exactly the sealed
 * bytes.  The file buffer is overwritten (decrypted in place).
 */
int	msgfile_open(unsigned char **, size_t *, const char *, const char *,
	    const unsigned char *, unsigned char *, size_t, size_t);

/*
 * Seal and write, mode 0600: durable (tmp, fsync, rename, fsync dir)
 * with MSGFILE_SYNC, else a new file written but not synced (the caller
 * syncs the filesystem once for a batch).
 */
#define MSGFILE_SYNC	0x01
int	msgfile_write(const char *, const char *, const char *,
	    const unsigned char *, const void *, size_t, int, size_t, int);
/* Read a file and open it; a missing file is ERR_NOTFOUND. */
int	msgfile_read(unsigned char **, size_t *, const char *, const char *,
	    const char *, const unsigned char *, size_t);

#endif
