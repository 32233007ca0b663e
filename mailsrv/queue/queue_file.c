/*
 * queue_file.c -- the queue's message file: streamed in compressed and
 * encrypted, read back checked.
 *
 * Purpose: queue_writer_* (deflate, then AES-256-GCM, buffered writes
 * into its tmp/ file) and queue__file_read (decrypt, inflate, verify).  The
 * queue lists its open writers, so that queue_close() can remove their
 * files and leave them inert.
 * Runs in: mailsrv; writers on the event loop thread; reads on any
 * thread (nothing shared but the key, read-only).
 * Failure policy: negative enum err with err_set(); a writer error is
 * sticky (every later call returns it); OOM is fatal (xmalloc).
 * SECURITY: a file read back is untrusted: its sizes are bounded
 * (message <= max, compressed <= compressBound), the file size must
 * match them exactly, inflate never writes past the announced size, and
 * nothing is returned before the GCM tag has been verified.  Plaintext
 * lives only in memory.
 *
 * File format v1 (all integers big-endian):
 *	 0  4	"AMQ1"
 *	 4  1	version (1)
 *	 5  3	zero
 *	 8 12	nonce (random per file)
 *	20  4	zero
 *	24  8	message size (set at commit)
 *	32  8	compressed size Z (set at commit)
 *	40  Z	ciphertext of the zlib stream of the message
 *	    16	ciphertext of the trailer: message size | Z
 *	    16	GCM tag
 * AAD = "amanat-queue-v1" NUL | id | header bytes 0..24.  The sizes in
 * the header are written (pwrite) after the tag, so they cannot be in
 * the AAD; the encrypted trailer authenticates them, and the reader
 * compares both.  A random 96-bit nonce per file under one queue key
 * bounds a key to about 2^32 messages (NIST SP 800-38D); the queue key
 * is rotated long before that.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ZLIB_CONST
#include <zlib.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mailsrv/queue/queue.h"

#define QF_MAGIC	"AMQ1"
#define QF_VERSION	1
#define QF_HDR_LEN	40
#define QF_HDR_FIXED	24		/* the part in the AAD */
#define QF_NONCE_OFF	8
#define QF_NONCE_LEN	12
#define QF_SIZES_OFF	24
#define QF_TRAILER_LEN	16
#define QF_TAG_LEN	16
#define QF_BUF		(64 * 1024)
#define QF_ZLEVEL	1		/* transient: speed over size */
#define QF_AAD_PREFIX	"amanat-queue-v1"	/* + its NUL */
/*
 * A message up to this size stays in memory (plaintext, wiped after use)
 * until it is committed; the queue's batch thread then compresses,
 * encrypts and writes it, so the event loop does none of that.  A bigger
 * one is streamed to its file from this size on, as it arrives.
 */
#define QF_MEM_MAX	(256 * 1024)
#define QF_MEM_FIRST	(16 * 1024)
/* Give zlib at most this much input per call (avail_in is a uInt). */
#define QF_ZCHUNK	(1024 * 1024 * 1024)

/* The reader inflates a whole message with one avail_out (a uInt). */
_Static_assert(QUEUE_MSG_MAX <= UINT_MAX, "QUEUE_MSG_MAX fits a uInt");

struct queue_writer {
	struct queue	*q;
	char		 id[QUEUE_ID_LEN + 1];
	char		 tmpname[QUEUE_ID_LEN + 1];	/* its file in tmp/ */
	int		 dirfd;		/* tmp/, borrowed from the queue */
	int		 fd;
	uint64_t	 max;
	uint64_t	 plen;		/* message bytes taken */
	uint64_t	 zlen;		/* compressed bytes written */
	int		 failed;	/* sticky enum err, 0 if none */
	const unsigned char *key;	/* the queue's, borrowed */
	unsigned char	*mem;		/* plaintext not streamed yet */
	size_t		 memcap;
	int		 started;	/* the file stream has begun */
	int		 zinit;
	z_stream	 zs;
	EVP_CIPHER_CTX	*ctx;
	unsigned char	*buf;		/* deflate output, encrypted in place */
	size_t		 used;
	size_t		 bufhw;		/* most of buf ever used: to wipe */
	/* the queue's list of open writers (loop thread only) */
	struct queue_writer	 *next;
	struct queue_writer	**prevp;
};

static void
qf_put64(unsigned char *p, uint64_t v)
{
	int	i;

	for (i = 7; i >= 0; i--) {
		p[i] = v & 0xff;
		v >>= 8;
	}
}

static uint64_t
qf_get64(const unsigned char *p)
{
	uint64_t	v = 0;
	int		i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static int
qf_write_full(int fd, const void *data, size_t len)
{
	if (fd_write_all(fd, data, len) < 0) {
		err_set(ERR_IO, "queue file write: %s", strerror(errno));
		return ERR_IO;
	}
	return 0;
}

/* Read exactly len bytes; a short file is ERR_IO. */
static int
qf_read_full(int fd, void *data, size_t len)
{
	unsigned char	*p = data;
	ssize_t		 n;

	while (len > 0) {
		if ((n = read(fd, p, len)) < 0) {
			if (errno == EINTR)
				continue;
			err_set(ERR_IO, "queue file read: %s", strerror(errno));
			return ERR_IO;
		}
		if (n == 0) {
			err_set(ERR_IO, "queue file: truncated");
			return ERR_IO;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Start a GCM context (encrypt or decrypt) and feed the AAD. */
static int
qf_gcm_init(EVP_CIPHER_CTX *ctx, int enc, const unsigned char *key,
    const char *id, const unsigned char *hdr)
{
	static const char	prefix[] = QF_AAD_PREFIX;
	const unsigned char	*nonce = hdr + QF_NONCE_OFF;
	int			 outl;

	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL,
	    enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, QF_NONCE_LEN,
	    NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1 ||
	    EVP_CipherUpdate(ctx, NULL, &outl, (const unsigned char *)prefix,
	    sizeof(prefix)) != 1 ||
	    EVP_CipherUpdate(ctx, NULL, &outl, (const unsigned char *)id,
	    QUEUE_ID_LEN) != 1 ||
	    EVP_CipherUpdate(ctx, NULL, &outl, hdr, QF_HDR_FIXED) != 1) {
		err_set(ERR_GENERIC, "queue file: AES-256-GCM init failed");
		return ERR_GENERIC;
	}
	return 0;
}

/* Encrypt the buffered compressed bytes in place and write them out. */
static int
qf_emit(struct queue_writer *w)
{
	int	outl, rc;

	if (w->used == 0)
		return 0;
	if (EVP_EncryptUpdate(w->ctx, w->buf, &outl, w->buf,
	    (int)w->used) != 1 || (size_t)outl != w->used) {
		err_set(ERR_GENERIC, "queue file: encryption failed");
		return ERR_GENERIC;
	}
	if ((rc = qf_write_full(w->fd, w->buf, w->used)) < 0)
		return rc;
	w->zlen += w->used;
	w->used = 0;
	return 0;
}

/*
 * Run deflate over the pending input (zs.next_in) into the buffer,
 * writing the buffer out whenever it is full.  Z_FINISH also flushes
 * the last partial buffer.
 */
static int
qf_deflate(struct queue_writer *w, int flush)
{
	int	zrc, rc;

	for (;;) {
		w->zs.next_out = w->buf + w->used;
		w->zs.avail_out = (uInt)(QF_BUF - w->used);
		zrc = deflate(&w->zs, flush);
		if (zrc == Z_STREAM_ERROR) {
			err_set(ERR_GENERIC, "queue file: deflate failed");
			return ERR_GENERIC;
		}
		w->used = QF_BUF - w->zs.avail_out;
		if (w->used > w->bufhw)
			w->bufhw = w->used;
		if (w->used == QF_BUF) {
			if ((rc = qf_emit(w)) < 0)
				return rc;
			continue;
		}
		/* room left: every input byte was taken */
		if (flush != Z_FINISH)
			return 0;
		if (zrc != Z_STREAM_END) {
			err_set(ERR_GENERIC, "queue file: deflate did not end");
			return ERR_GENERIC;
		}
		return qf_emit(w);
	}
}

static void
qf_link(struct queue_writer *w, struct queue_writer **list)
{
	if ((w->next = *list) != NULL)
		w->next->prevp = &w->next;
	*list = w;
	w->prevp = list;
}

static void
qf_unlink(struct queue_writer *w)
{
	if (w->prevp == NULL)
		return;
	if ((*w->prevp = w->next) != NULL)
		w->next->prevp = w->prevp;
	w->next = NULL;
	w->prevp = NULL;
}

/*
 * A writer for message id: its file is tmp/<name> in dirfd, created now,
 * or fd when it is not -1 (a spare made ahead, empty); it becomes
 * msg/<id> at commit.  The writer joins *list until it is finished or
 * aborted.  ERR_EXISTS if tmp/<name> exists.
 */
int
queue__writer_open(struct queue_writer **out, struct queue_writer **list,
    int fd, struct queue *q, int dirfd, const char *id, const char *name,
    const unsigned char *key, uint64_t max)
{
	struct queue_writer	*w;
	int			 rc;

	*out = NULL;
	w = xcalloc(1, sizeof(*w));
	w->q = q;
	w->dirfd = dirfd;
	w->max = max;
	w->key = key;
	/* both validated by the caller */
	memcpy(w->id, id, QUEUE_ID_LEN);
	w->id[QUEUE_ID_LEN] = '\0';
	memcpy(w->tmpname, name, QUEUE_ID_LEN);
	w->tmpname[QUEUE_ID_LEN] = '\0';
	w->fd = fd != -1 ? fd : openat(dirfd, name, O_WRONLY | O_CREAT |
	    O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (w->fd == -1) {
		rc = errno == EEXIST ? ERR_EXISTS : ERR_IO;
		err_set(rc, "queue tmp/%s: %s", name, strerror(errno));
		free(w);
		return rc;
	}
	qf_link(w, list);
	*out = w;
	return 0;
}

/* Feed len plaintext bytes to the stream. */
static int
qf_feed(struct queue_writer *w, const unsigned char *p, size_t len)
{
	size_t	n;
	int	rc;

	while (len > 0) {
		n = len > QF_ZCHUNK ? QF_ZCHUNK : len;
		w->zs.next_in = p;
		w->zs.avail_in = (uInt)n;
		if ((rc = qf_deflate(w, Z_NO_FLUSH)) < 0)
			return rc;
		p += n;
		len -= n;
	}
	return 0;
}

/*
 * Begin the file: header, cipher and zlib stream, then what was kept in
 * memory (wiped and freed).
 */
static int
qf_start(struct queue_writer *w)
{
	unsigned char	hdr[QF_HDR_LEN];
	int		rc;

	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, QF_MAGIC, 4);
	hdr[4] = QF_VERSION;
	if (RAND_bytes(hdr + QF_NONCE_OFF, QF_NONCE_LEN) != 1) {
		err_set(ERR_GENERIC, "queue file: RAND_bytes failed");
		return ERR_GENERIC;
	}
	w->started = 1;
	if ((w->ctx = EVP_CIPHER_CTX_new()) == NULL)
		fatalx("queue: EVP_CIPHER_CTX_new");
	if ((rc = qf_gcm_init(w->ctx, 1, w->key, w->id, hdr)) < 0)
		return rc;
	if (deflateInit(&w->zs, QF_ZLEVEL) != Z_OK) {
		err_set(ERR_GENERIC, "queue file: deflateInit failed");
		return ERR_GENERIC;
	}
	w->zinit = 1;
	w->buf = xmalloc(QF_BUF);
	if ((rc = qf_write_full(w->fd, hdr, sizeof(hdr))) < 0)
		return rc;
	rc = qf_feed(w, w->mem, w->plen);
	if (w->mem != NULL)
		xfreezero(w->mem, w->memcap);
	w->mem = NULL;
	w->memcap = 0;
	return rc;
}

/* Keep len more bytes in memory (the total stays within QF_MEM_MAX). */
static void
qf_keep(struct queue_writer *w, const unsigned char *p, size_t len)
{
	unsigned char	*m;
	size_t		 cap = w->memcap ? w->memcap : QF_MEM_FIRST;

	while (cap < w->plen + len)
		cap *= 2;
	if (cap > QF_MEM_MAX)
		cap = QF_MEM_MAX;
	if (cap != w->memcap) {
		/* by hand, not realloc: no plaintext left in freed memory */
		m = xmalloc(cap);
		if (w->plen > 0)
			memcpy(m, w->mem, w->plen);
		if (w->mem != NULL)
			xfreezero(w->mem, w->memcap);
		w->mem = m;
		w->memcap = cap;
	}
	memcpy(w->mem + w->plen, p, len);
}

int
queue_writer_write(struct queue_writer *w, const void *data, size_t len)
{
	const unsigned char	*p = data;
	int			 rc;

	if (w->failed) {
		if (w->q == NULL)
			err_set(ERR_GENERIC, "queue closed");
		return w->failed;
	}
	if (len == 0)
		return 0;
	if (w->plen > w->max || len > w->max - w->plen) {
		err_set(ERR_TOOBIG, "queue: message over %llu bytes",
		    (unsigned long long)w->max);
		return (w->failed = ERR_TOOBIG);
	}
	if (!w->started && w->plen + len <= QF_MEM_MAX) {
		qf_keep(w, p, len);
		w->plen += len;
		return 0;
	}
	if (!w->started && (rc = qf_start(w)) < 0)
		return (w->failed = rc);
	if ((rc = qf_feed(w, p, len)) < 0)
		return (w->failed = rc);
	w->plen += len;
	return 0;
}

uint64_t
queue_writer_size(struct queue_writer *w)
{
	return w->plen;
}

struct queue *
queue__writer_queue(const struct queue_writer *w)
{
	return w->q;
}

const char *
queue_writer_id(const struct queue_writer *w)
{
	return w->id;
}

const char *
queue__writer_tmpname(const struct queue_writer *w)
{
	return w->tmpname;
}

int
queue_writer_peek(const struct queue_writer *w, const unsigned char **p,
    size_t *len)
{
	if (w->failed || w->started)
		return -1;
	*p = w->mem;
	*len = (size_t)w->plen;
	return 0;
}

/* Release everything; the tmp file stays (the caller decides). */
static void
qf_writer_free(struct queue_writer *w)
{
	qf_unlink(w);
	if (w->zinit)
		deflateEnd(&w->zs);
	EVP_CIPHER_CTX_free(w->ctx);
	if (w->buf != NULL) {
		explicit_bzero(w->buf, w->bufhw);
		free(w->buf);
	}
	if (w->mem != NULL)
		xfreezero(w->mem, w->memcap);
	explicit_bzero(w, sizeof(*w));
	free(w);
}

void
queue_writer_abort(struct queue_writer **wp)
{
	struct queue_writer	*w;

	if (wp == NULL || (w = *wp) == NULL)
		return;
	if (w->fd != -1 && w->q != NULL && !w->started) {
		/* still empty: a spare again (or removed if they are full);
		 * its name was never a message id */
		(void)queue__spare_put(w->q, w->fd, w->tmpname);
	} else if (w->fd != -1) {
		close(w->fd);
		if (unlinkat(w->dirfd, w->tmpname, 0) == -1 && errno != ENOENT)
			log_warn("queue unlink tmp/%s", w->tmpname);
	}
	qf_writer_free(w);
	*wp = NULL;
}

/*
 * The queue closes with writers still open: remove their files and
 * leave them failed (writes fail, commit fails, abort only frees).
 */
void
queue__writers_detach(struct queue_writer **list)
{
	struct queue_writer	*w;

	while ((w = *list) != NULL) {
		qf_unlink(w);
		if (w->fd != -1) {
			close(w->fd);
			if (unlinkat(w->dirfd, w->tmpname, 0) == -1 &&
			    errno != ENOENT)
				log_warn("queue unlink tmp/%s", w->tmpname);
		}
		w->fd = -1;
		w->dirfd = -1;
		w->q = NULL;
		w->failed = ERR_GENERIC;
	}
}

/*
 * The writer leaves the queue's list (loop thread): committed, it is
 * finished by the batch thread, and queue_close() no longer sees it.
 */
/* The writer's sticky error (with its message set again), or 0. */
int
queue__writer_failed(const struct queue_writer *w)
{
	if (w->failed < 0)
		err_set(w->failed, "queue: the message was not written");
	return w->failed;
}

void
queue__writer_release(struct queue_writer *w)
{
	qf_unlink(w);
}

/*
 * Finish the file (any thread, once released): begin it if it was still
 * in memory, end the zlib stream, write the trailer and the tag,
 * then the sizes into the header.  Consumes *wp: on success the open fd
 * of its tmp/ file moves to *fd_out (the caller syncs and closes it); on
 * failure the tmp file is removed.  Nothing is synced here.
 */
int
queue__writer_finish(struct queue_writer **wp, int *fd_out)
{
	struct queue_writer	*w = *wp;
	unsigned char		 tail[QF_TRAILER_LEN + QF_TAG_LEN];
	unsigned char		 sizes[16];
	int			 outl, rc;

	*fd_out = -1;
	if ((rc = w->failed) < 0)
		goto fail;
	if (!w->started && (rc = qf_start(w)) < 0)
		goto fail;
	w->zs.next_in = NULL;
	w->zs.avail_in = 0;
	if ((rc = qf_deflate(w, Z_FINISH)) < 0)
		goto fail;
	qf_put64(sizes, w->plen);
	qf_put64(sizes + 8, w->zlen);
	if (EVP_EncryptUpdate(w->ctx, tail, &outl, sizes, sizeof(sizes)) != 1 ||
	    outl != QF_TRAILER_LEN ||
	    EVP_EncryptFinal_ex(w->ctx, tail + QF_TRAILER_LEN, &outl) != 1 ||
	    outl != 0 ||
	    EVP_CIPHER_CTX_ctrl(w->ctx, EVP_CTRL_GCM_GET_TAG, QF_TAG_LEN,
	    tail + QF_TRAILER_LEN) != 1) {
		err_set(ERR_GENERIC, "queue file: encryption failed");
		rc = ERR_GENERIC;
		goto fail;
	}
	if ((rc = qf_write_full(w->fd, tail, sizeof(tail))) < 0)
		goto fail;
	if (pwrite(w->fd, sizes, sizeof(sizes), QF_SIZES_OFF) !=
	    (ssize_t)sizeof(sizes)) {
		err_set(ERR_IO, "queue tmp/%s: pwrite: %s", w->id,
		    strerror(errno));
		rc = ERR_IO;
		goto fail;
	}
	*fd_out = w->fd;
	w->fd = -1;
	qf_writer_free(w);
	*wp = NULL;
	return 0;
fail:
	queue_writer_abort(wp);
	return rc;
}

/* Check the header of a file of st_size bytes; get its sizes. */
static int
qf_check_header(const unsigned char *hdr, off_t st_size, uint64_t max,
    uint64_t *plen, uint64_t *zlen)
{
	static const unsigned char	zero[4];

	if (memcmp(hdr, QF_MAGIC, 4) != 0 || hdr[4] != QF_VERSION ||
	    memcmp(hdr + 5, zero, 3) != 0 || memcmp(hdr + 20, zero, 4) != 0) {
		err_set(ERR_IO, "queue file: bad header");
		return ERR_IO;
	}
	*plen = qf_get64(hdr + QF_SIZES_OFF);
	*zlen = qf_get64(hdr + QF_SIZES_OFF + 8);
	if (*plen > max || *plen > SIZE_MAX - 1 ||
	    *zlen > compressBound((uLong)*plen) ||
	    st_size < 0 || (uint64_t)st_size != QF_HDR_LEN + *zlen +
	    QF_TRAILER_LEN + QF_TAG_LEN) {
		err_set(ERR_IO, "queue file: sizes do not match (message %llu "
		    "compressed %llu file %lld)", (unsigned long long)*plen,
		    (unsigned long long)*zlen, (long long)st_size);
		return ERR_IO;
	}
	return 0;
}

struct qf_reader {
	int		 fd;
	EVP_CIPHER_CTX	*ctx;
	z_stream	 zs;
	int		 zinit;
	int		 zbad;		/* inflate failed: keep decrypting */
	int		 zend;		/* Z_STREAM_END seen */
	unsigned char	*buf;
};

/* Inflate one decrypted chunk into the output, never past its end. */
static void
qf_inflate(struct qf_reader *r, const unsigned char *p, size_t n)
{
	int	zrc;

	if (r->zbad)
		return;
	if (r->zend) {
		r->zbad = 1;	/* data after the end of the stream */
		return;
	}
	r->zs.next_in = p;
	r->zs.avail_in = (uInt)n;
	zrc = inflate(&r->zs, Z_NO_FLUSH);
	if (zrc == Z_STREAM_END)
		r->zend = 1;
	else if (zrc != Z_OK)
		r->zbad = 1;	/* Z_BUF_ERROR: more output than announced */
	if (r->zs.avail_in != 0)
		r->zbad = 1;
}

/*
 * Decrypt the Z compressed bytes, inflate them into out (plen bytes),
 * then the trailer and the tag.  Authentication is decided first:
 * ERR_PERM whatever else went wrong, then ERR_IO for a stream that does
 * not match its sizes.
 */
static int
qf_decrypt(struct qf_reader *r, uint64_t plen, uint64_t zlen)
{
	unsigned char	tail[QF_TRAILER_LEN + QF_TAG_LEN], sizes[16];
	uint64_t	left = zlen;
	size_t		n;
	int		outl, rc;

	while (left > 0) {
		n = left > QF_BUF ? QF_BUF : (size_t)left;
		if ((rc = qf_read_full(r->fd, r->buf, n)) < 0)
			return rc;
		if (EVP_DecryptUpdate(r->ctx, r->buf, &outl, r->buf,
		    (int)n) != 1 || (size_t)outl != n) {
			err_set(ERR_GENERIC, "queue file: decryption failed");
			return ERR_GENERIC;
		}
		qf_inflate(r, r->buf, n);
		left -= n;
	}
	if ((rc = qf_read_full(r->fd, tail, sizeof(tail))) < 0)
		return rc;
	if (EVP_DecryptUpdate(r->ctx, sizes, &outl, tail,
	    QF_TRAILER_LEN) != 1 || outl != QF_TRAILER_LEN ||
	    EVP_CIPHER_CTX_ctrl(r->ctx, EVP_CTRL_GCM_SET_TAG, QF_TAG_LEN,
	    tail + QF_TRAILER_LEN) != 1) {
		err_set(ERR_GENERIC, "queue file: decryption failed");
		return ERR_GENERIC;
	}
	if (EVP_DecryptFinal_ex(r->ctx, r->buf, &outl) != 1) {
		err_set(ERR_PERM, "queue file: authentication failed");
		return ERR_PERM;
	}
	if (r->zbad || !r->zend || r->zs.total_out != plen ||
	    qf_get64(sizes) != plen || qf_get64(sizes + 8) != zlen) {
		err_set(ERR_IO, "queue file: content does not match its sizes");
		return ERR_IO;
	}
	return 0;
}

int
queue__file_read(int dirfd, const char *id, const unsigned char *key,
    uint64_t max, unsigned char **out, size_t *outlen)
{
	struct qf_reader	 r;
	struct stat		 st;
	unsigned char		 hdr[QF_HDR_LEN];
	unsigned char		*msg = NULL;
	uint64_t		 plen, zlen;
	int			 rc;

	*out = NULL;
	*outlen = 0;
	memset(&r, 0, sizeof(r));
	if ((r.fd = openat(dirfd, id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) ==
	    -1) {
		rc = errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
		err_set(rc, "queue msg/%s: %s", id, strerror(errno));
		return rc;
	}
	if (fstat(r.fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		err_set(ERR_IO, "queue msg/%s: not a regular file", id);
		rc = ERR_IO;
		goto done;
	}
	if ((rc = qf_read_full(r.fd, hdr, sizeof(hdr))) < 0 ||
	    (rc = qf_check_header(hdr, st.st_size, max, &plen, &zlen)) < 0)
		goto done;
	if ((r.ctx = EVP_CIPHER_CTX_new()) == NULL)
		fatalx("queue: EVP_CIPHER_CTX_new");
	if ((rc = qf_gcm_init(r.ctx, 0, key, id, hdr)) < 0)
		goto done;
	if (inflateInit(&r.zs) != Z_OK) {
		err_set(ERR_GENERIC, "queue file: inflateInit failed");
		rc = ERR_GENERIC;
		goto done;
	}
	r.zinit = 1;
	/* never more than the bounded size announced by the header */
	msg = xmalloc(plen > 0 ? (size_t)plen : 1);
	r.zs.next_out = msg;
	r.zs.avail_out = (uInt)plen;
	r.buf = xmalloc(QF_BUF);
	if ((rc = qf_decrypt(&r, plen, zlen)) < 0)
		goto done;
	*out = msg;
	*outlen = (size_t)plen;
	msg = NULL;
done:
	if (msg != NULL)
		xfreezero(msg, plen > 0 ? (size_t)plen : 1);
	if (r.buf != NULL)
		xfreezero(r.buf, QF_BUF);
	if (r.zinit)
		inflateEnd(&r.zs);
	EVP_CIPHER_CTX_free(r.ctx);
	close(r.fd);
	return rc;
}
