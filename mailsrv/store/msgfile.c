/*
 * msgfile.c -- seal and open message files (format in msgfile.h).
 *
 * Runs in: mailsrv, on the worker threads that call the store; pure
 * functions of their arguments apart from msgfile_write/msgfile_read,
 * which touch one file.
 * Failure policy: a file is untrusted input.  Anything that does not
 * parse is ERR_IO, an authentication failure ERR_PERM; nothing is
 * returned from a file that did not authenticate, and plaintext buffers
 * are wiped on every path.
 * SECURITY: compress then encrypt (AES-256-GCM, random 96-bit nonce per
 * file); the AAD binds the ciphertext to the owner's user-id, the blob
 * name and the header, so a file cannot be swapped, moved to another
 * user or have its sizes altered.  No plaintext reaches the disk: the
 * only buffer written is ciphertext.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <zlib.h>

#include "common/err.h"
#include "common/gcm.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mailsrv/store/msgfile.h"
#include "mailsrv/store/store.h"

static void
put_be64(unsigned char *p, uint64_t v)
{
	int	i;

	for (i = 7; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

static uint64_t
get_be64(const unsigned char *p)
{
	uint64_t	v = 0;
	int		i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Largest compressed size we write (and accept) for msg_max bytes. */
static size_t
msgfile_cmax(size_t msg_max)
{
	return (size_t)compressBound((uLong)msg_max);
}

/*
 * AES-256-GCM over buf in place.  enc: tag is written; otherwise it is
 * checked (ERR_PERM on mismatch, buf wiped).
 */
_Static_assert(MSGFILE_NONCE_LEN == GCM_IV_LEN &&
    MSGFILE_TAG_LEN == GCM_TAG_LEN, "message files use common/gcm's sizes");

static int
msgfile_gcm(int enc, const unsigned char *key, const unsigned char *hdr,
    const char *user_id, const char *blob_id, unsigned char *buf, size_t n,
    unsigned char *tag)
{
	static const char	 label[] = MSGFILE_AAD_LABEL;
	/* label NUL user-id NUL blob-id header: each part length-fixed */
	const struct gcm_aad	 aad[] = {
		{ label, sizeof(label) },
		{ user_id, strlen(user_id) + 1 },
		{ blob_id, strlen(blob_id) },
		{ hdr, MSGFILE_HDR_LEN },
	};
	int			 rc;

	rc = gcm_crypt(enc, key, hdr + 8, aad, sizeof(aad) / sizeof(aad[0]),
	    buf, n, buf, tag);
	if (rc == ERR_PERM)
		err_set(ERR_PERM, "message file does not authenticate");
	return rc;
}

int
msgfile_seal(unsigned char **out, size_t *outlen, const char *user_id,
    const char *blob_id, const unsigned char *key, const void *msg,
    size_t len, int zlevel, size_t msg_max)
{
	unsigned char	*file = NULL;
	uLongf		 clen;
	size_t		 cap;
	int		 rc = ERR_GENERIC, zrc;

	*out = NULL;
	*outlen = 0;
	if (len == 0) {
		err_set(ERR_INVAL, "empty message");
		return ERR_INVAL;
	}
	if (len > msg_max || len > STORE_MSG_MAX) {
		err_set(ERR_TOOBIG, "message of %zu bytes (limit %zu)", len,
		    msg_max);
		return ERR_TOOBIG;
	}
	if (zlevel < 0 || zlevel > 9)
		zlevel = Z_DEFAULT_COMPRESSION;
	cap = MSGFILE_HDR_LEN + msgfile_cmax(len) + MSGFILE_TAG_LEN;
	file = xmalloc(cap);
	clen = (uLongf)msgfile_cmax(len);
	zrc = compress2(file + MSGFILE_HDR_LEN, &clen, msg, (uLong)len,
	    zlevel);
	if (zrc != Z_OK) {
		err_set(ERR_GENERIC, "compress2: zlib error %d", zrc);
		goto fail;
	}
	memcpy(file, MSGFILE_MAGIC, 4);
	file[4] = MSGFILE_VERSION;
	file[5] = MSGFILE_F_ZLIB;
	file[6] = file[7] = 0;
	if (RAND_bytes(file + 8, MSGFILE_NONCE_LEN) != 1) {
		rc = tls_error("RAND_bytes");
		goto fail;
	}
	put_be64(file + 20, (uint64_t)len);
	put_be64(file + 28, (uint64_t)clen);
	if ((rc = msgfile_gcm(1, key, file, user_id, blob_id,
	    file + MSGFILE_HDR_LEN, clen, file + MSGFILE_HDR_LEN + clen)) < 0)
		goto fail;
	*out = file;
	*outlen = MSGFILE_HDR_LEN + clen + MSGFILE_TAG_LEN;
	return 0;
fail:
	xfreezero(file, cap);
	return rc;
}

/* Check the header against the file size and the limits. */
static int
msgfile_check(const unsigned char *file, size_t flen, size_t msg_max,
    uint64_t *usize, uint64_t *csize)
{
	if (flen < MSGFILE_HDR_LEN + MSGFILE_TAG_LEN ||
	    memcmp(file, MSGFILE_MAGIC, 4) != 0) {
		err_set(ERR_IO, "message file: bad magic or too short");
		return ERR_IO;
	}
	if (file[4] != MSGFILE_VERSION || file[5] != MSGFILE_F_ZLIB ||
	    file[6] != 0 || file[7] != 0) {
		err_set(ERR_IO, "message file: unknown version %u or flags "
		    "0x%02x", file[4], file[5]);
		return ERR_IO;
	}
	*usize = get_be64(file + 20);
	*csize = get_be64(file + 28);
	if (*usize == 0 || *usize > msg_max ||
	    *csize > msgfile_cmax((size_t)*usize) ||
	    *csize != flen - MSGFILE_HDR_LEN - MSGFILE_TAG_LEN) {
		err_set(ERR_IO, "message file: sizes out of bounds");
		return ERR_IO;
	}
	return 0;
}

int
msgfile_open(unsigned char **out, size_t *outlen, const char *user_id,
    const char *blob_id, const unsigned char *key, unsigned char *file,
    size_t flen, size_t msg_max)
{
	unsigned char	*msg = NULL;
	uint64_t	 usize = 0, csize = 0;
	uLongf		 dlen;
	uLong		 slen;
	int		 rc, zrc;

	*out = NULL;
	*outlen = 0;
	if (msg_max > STORE_MSG_MAX)
		msg_max = STORE_MSG_MAX;
	if ((rc = msgfile_check(file, flen, msg_max, &usize, &csize)) < 0)
		return rc;
	if ((rc = msgfile_gcm(0, key, file, user_id, blob_id,
	    file + MSGFILE_HDR_LEN, (size_t)csize,
	    file + MSGFILE_HDR_LEN + csize)) < 0)
		return rc;
	msg = xmalloc((size_t)usize);
	dlen = (uLongf)usize;
	slen = (uLong)csize;
	zrc = uncompress2(msg, &dlen, file + MSGFILE_HDR_LEN, &slen);
	explicit_bzero(file + MSGFILE_HDR_LEN, (size_t)csize);
	if (zrc != Z_OK || dlen != usize || slen != csize) {
		/* authentic, so written by a key holder: still refuse it */
		xfreezero(msg, (size_t)usize);
		err_set(ERR_IO, "message file: bad zlib stream (%d)", zrc);
		return ERR_IO;
	}
	*out = msg;
	*outlen = (size_t)usize;
	return 0;
}

int
msgfile_write(const char *path, const char *user_id, const char *blob_id,
    const unsigned char *key, const void *msg, size_t len, int zlevel,
    size_t msg_max, int flags)
{
	unsigned char	*file = NULL;
	size_t		 flen = 0;
	int		 rc;

	if ((rc = msgfile_seal(&file, &flen, user_id, blob_id, key, msg, len,
	    zlevel, msg_max)) < 0)
		return rc;
	rc = (flags & MSGFILE_SYNC) ? file_write_atomic(path, file, flen,
	    0600) : file_write_new(path, file, flen, 0600);
	free(file);
	return rc;
}

int
msgfile_read(unsigned char **out, size_t *outlen, const char *path,
    const char *user_id, const char *blob_id, const unsigned char *key,
    size_t msg_max)
{
	char	*file = NULL;
	size_t	 flen = 0, fmax;
	int	 rc;

	*out = NULL;
	*outlen = 0;
	if (msg_max > STORE_MSG_MAX)
		msg_max = STORE_MSG_MAX;
	fmax = MSGFILE_HDR_LEN + msgfile_cmax(msg_max) + MSGFILE_TAG_LEN;
	if ((rc = file_read_all(&file, &flen, path, fmax)) < 0) {
		if (rc == ERR_TOOBIG) {
			err_set(ERR_IO, "message file: larger than the limit");
			rc = ERR_IO;
		}
		return rc;
	}
	rc = msgfile_open(out, outlen, user_id, blob_id, key,
	    (unsigned char *)file, flen, msg_max);
	xfreezero(file, flen + 1);
	return rc;
}
