/*
 * record.c -- the store's LMDB keys and records: encoding, decoding and
 * single-record access (the layout is described at the top of store.c).
 *
 * Runs in: mailsrv, inside the store's LMDB transactions (any worker
 * thread).
 * Failure policy: a stored record is untrusted: a wrong version, length
 * or count is ERR_IO naming the record kind, never a crash or an
 * overread.  LMDB errors go through db_err().
 * SECURITY: every length read from a record is checked against the
 * bytes present and against the store's limits before use.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"
#include "common/err.h"
#include "common/xmalloc.h"
#include "mailsrv/store/store_int.h"

#define ST_USER_FIXED	55
#define ST_MBOX_FIXED	50
#define ST_MSG_LEN	61
#define ST_BLOB_LEN	13

/* ------------------------------------------------------------ bytes */

void
store__be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

void
store__be64(unsigned char *p, uint64_t v)
{
	store__be32(p, (uint32_t)(v >> 32));
	store__be32(p + 4, (uint32_t)v);
}

uint32_t
store__get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

uint64_t
store__get64(const unsigned char *p)
{
	return (uint64_t)store__get32(p) << 32 | store__get32(p + 4);
}

/* A bounded writer over a caller's buffer and a checked reader. */
struct st_w {
	unsigned char	*p;
	size_t		 len;
	size_t		 cap;
	int		 over;
};

struct st_r {
	const unsigned char	*p;
	size_t			 len;
	size_t			 off;
	int			 bad;
};

static void
w_bytes(struct st_w *w, const void *p, size_t n)
{
	if (w->over || n > w->cap - w->len) {
		w->over = 1;
		return;
	}
	memcpy(w->p + w->len, p, n);
	w->len += n;
}

static void
w_u8(struct st_w *w, unsigned v)
{
	unsigned char	b = (unsigned char)v;

	w_bytes(w, &b, 1);
}

static void
w_u32(struct st_w *w, uint32_t v)
{
	unsigned char	b[4];

	store__be32(b, v);
	w_bytes(w, b, 4);
}

static void
w_u64(struct st_w *w, uint64_t v)
{
	unsigned char	b[8];

	store__be64(b, v);
	w_bytes(w, b, 8);
}

static const unsigned char *
r_bytes(struct st_r *r, size_t n)
{
	const unsigned char	*p;

	if (r->bad || n > r->len - r->off) {
		r->bad = 1;
		return NULL;
	}
	p = r->p + r->off;
	r->off += n;
	return p;
}

static unsigned
r_u8(struct st_r *r)
{
	const unsigned char	*p = r_bytes(r, 1);

	return p != NULL ? p[0] : 0;
}

static uint32_t
r_u32(struct st_r *r)
{
	const unsigned char	*p = r_bytes(r, 4);

	return p != NULL ? store__get32(p) : 0;
}

static uint64_t
r_u64(struct st_r *r)
{
	const unsigned char	*p = r_bytes(r, 8);

	return p != NULL ? store__get64(p) : 0;
}

static int
r_corrupt(const char *what)
{
	err_set(ERR_IO, "stored %s record is corrupt", what);
	return ERR_IO;
}

static int
st_put(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen,
    const void *v, size_t vlen, unsigned flags, const char *what)
{
	MDB_val	key, val;
	int	mrc;

	key.mv_data = (void *)k;
	key.mv_size = klen;
	val.mv_data = (void *)v;
	val.mv_size = vlen;
	if ((mrc = mdb_put(txn, dbi, &key, &val, flags)) == MDB_KEYEXIST) {
		err_set(ERR_EXISTS, "%s already exists", what);
		return ERR_EXISTS;
	}
	return mrc ? db_err(mrc, what) : 0;
}

/* ERR_NOTFOUND (with a message) when absent. */
static int
st_get(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, MDB_val *val,
    const char *what)
{
	MDB_val	key;
	int	mrc;

	key.mv_data = (void *)k;
	key.mv_size = klen;
	if ((mrc = mdb_get(txn, dbi, &key, val)) == MDB_NOTFOUND) {
		err_set(ERR_NOTFOUND, "%s does not exist", what);
		return ERR_NOTFOUND;
	}
	return mrc ? db_err(mrc, what) : 0;
}

static int
st_del(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen,
    const char *what)
{
	MDB_val	key;
	int	mrc;

	key.mv_data = (void *)k;
	key.mv_size = klen;
	if ((mrc = mdb_del(txn, dbi, &key, NULL)) == MDB_NOTFOUND)
		return 0;
	return mrc ? db_err(mrc, what) : 0;
}

/* ------------------------------------------------------------ users */

int
store__addr_norm(char *out, size_t *lenp, const char *in)
{
	const char	*at;
	size_t		 i, n = strlen(in);

	if (n < 3 || n > STORE_ADDRESS_MAX || (at = strrchr(in, '@')) ==
	    NULL || at == in || at[1] == '\0')
		goto bad;
	for (i = 0; i < n; i++) {
		unsigned char	c = (unsigned char)in[i];

		if (c <= 0x20 || c == 0x7f)
			goto bad;
		out[i] = (char)tolower(c);
	}
	out[n] = '\0';
	*lenp = n;
	return 0;
bad:
	err_set(ERR_INVAL, "address: not a valid address");
	return ERR_INVAL;
}

int
store__user_get(MDB_txn *txn, struct store *s, const char *addr,
    size_t addrlen, struct st_user *u)
{
	const unsigned char	*p;
	struct st_r		 r;
	MDB_val			 v;
	int			 rc;

	if ((rc = st_get(txn, s->users, addr, addrlen, &v, "user")) < 0)
		return rc;
	memset(&r, 0, sizeof(r));
	r.p = v.mv_data;
	r.len = v.mv_size;
	if (r_u8(&r) != ST_REC_VERSION || (p = r_bytes(&r, ST_ID_LEN)) ==
	    NULL)
		return r_corrupt("user");
	memcpy(u->id, p, ST_ID_LEN);
	store__hex(u->idhex, u->id, ST_ID_LEN);
	u->created = (int64_t)r_u64(&r);
	u->quota_used = r_u64(&r);
	u->quota_limit = r_u64(&r);
	u->next_mbid = r_u32(&r);
	u->last_uidvalidity = r_u32(&r);
	u->nmailboxes = r_u32(&r);
	u->wrapped_len = (size_t)r_u8(&r) << 8;
	u->wrapped_len |= r_u8(&r);
	if (r.bad || u->wrapped_len == 0 ||
	    u->wrapped_len > STORE_WRAPPED_DEK_MAX ||
	    (p = r_bytes(&r, u->wrapped_len)) == NULL || r.off != r.len ||
	    memchr(p, '\0', u->wrapped_len) != NULL)
		return r_corrupt("user");
	memcpy(u->wrapped, p, u->wrapped_len);
	u->wrapped[u->wrapped_len] = '\0';
	return 0;
}

int
store__user_put(MDB_txn *txn, struct store *s, const char *addr,
    size_t addrlen, const struct st_user *u, unsigned flags)
{
	unsigned char	buf[ST_USER_FIXED + STORE_WRAPPED_DEK_MAX];
	struct st_w	w = { buf, 0, sizeof(buf), 0 };

	w_u8(&w, ST_REC_VERSION);
	w_bytes(&w, u->id, ST_ID_LEN);
	w_u64(&w, (uint64_t)u->created);
	w_u64(&w, u->quota_used);
	w_u64(&w, u->quota_limit);
	w_u32(&w, u->next_mbid);
	w_u32(&w, u->last_uidvalidity);
	w_u32(&w, u->nmailboxes);
	w_u8(&w, (unsigned)(u->wrapped_len >> 8));
	w_u8(&w, (unsigned)(u->wrapped_len & 0xff));
	w_bytes(&w, u->wrapped, u->wrapped_len);
	if (w.over) {
		err_set(ERR_TOOBIG, "user record too large");
		return ERR_TOOBIG;
	}
	return st_put(txn, s->users, addr, addrlen, buf, w.len, flags, "user");
}

/* ------------------------------------------------------------ mailboxes */

size_t
store__mbkey(unsigned char *key, const unsigned char *uid, const char *name,
    size_t namelen)
{
	memcpy(key, uid, ST_ID_LEN);
	memcpy(key + ST_ID_LEN, name, namelen);
	return ST_ID_LEN + namelen;
}

int
store__mbox_decode(struct st_mbox *mb, const void *data, size_t len)
{
	const unsigned char	*p;
	struct st_r		 r = { data, len, 0, 0 };
	unsigned		 kl;
	uint32_t		 i;

	if (r_u8(&r) != ST_REC_VERSION)
		return r_corrupt("mailbox");
	mb->id = r_u32(&r);
	mb->uidvalidity = r_u32(&r);
	mb->uidnext = r_u32(&r);
	mb->highestmodseq = r_u64(&r);
	mb->special = r_u32(&r);
	mb->mflags = r_u32(&r);
	mb->messages = r_u32(&r);
	mb->unseen = r_u32(&r);
	mb->deleted = r_u32(&r);
	mb->size = r_u64(&r);
	mb->nkw = r_u8(&r);
	if (r.bad || mb->nkw > STORE_KEYWORDS_MAX || mb->uidnext == 0)
		return r_corrupt("mailbox");
	for (i = 0; i < mb->nkw; i++) {
		kl = r_u8(&r);
		if (kl == 0 || kl > STORE_KEYWORD_MAX ||
		    (p = r_bytes(&r, kl)) == NULL)
			return r_corrupt("mailbox");
		memcpy(mb->kw[i], p, kl);
		mb->kw[i][kl] = '\0';
	}
	if (r.off != r.len)
		return r_corrupt("mailbox");
	return 0;
}

int
store__mbox_get(MDB_txn *txn, struct store *s, const struct st_user *u,
    const char *name, size_t namelen, struct st_mbox *mb)
{
	unsigned char	key[ST_MBKEY_MAX];
	size_t		klen = store__mbkey(key, u->id, name, namelen);
	MDB_val		v;
	int		rc;

	if ((rc = st_get(txn, s->mboxes, key, klen, &v, "mailbox")) < 0)
		return rc;
	if ((rc = store__mbox_decode(mb, v.mv_data, v.mv_size)) < 0)
		return rc;
	memcpy(mb->name, name, namelen);
	mb->name[namelen] = '\0';
	mb->namelen = namelen;
	return 0;
}

int
store__mbox_put(MDB_txn *txn, struct store *s, const struct st_user *u,
    const struct st_mbox *mb)
{
	unsigned char	key[ST_MBKEY_MAX];
	unsigned char	buf[ST_MBOX_FIXED +
			    STORE_KEYWORDS_MAX * (1 + STORE_KEYWORD_MAX)];
	struct st_w	w = { buf, 0, sizeof(buf), 0 };
	size_t		klen = store__mbkey(key, u->id, mb->name, mb->namelen);
	uint32_t	i;
	size_t		kl;

	w_u8(&w, ST_REC_VERSION);
	w_u32(&w, mb->id);
	w_u32(&w, mb->uidvalidity);
	w_u32(&w, mb->uidnext);
	w_u64(&w, mb->highestmodseq);
	w_u32(&w, mb->special);
	w_u32(&w, mb->mflags);
	w_u32(&w, mb->messages);
	w_u32(&w, mb->unseen);
	w_u32(&w, mb->deleted);
	w_u64(&w, mb->size);
	w_u8(&w, mb->nkw);
	for (i = 0; i < mb->nkw; i++) {
		kl = strlen(mb->kw[i]);
		w_u8(&w, (unsigned)kl);
		w_bytes(&w, mb->kw[i], kl);
	}
	if (w.over) {
		err_set(ERR_TOOBIG, "mailbox record too large");
		return ERR_TOOBIG;
	}
	return st_put(txn, s->mboxes, key, klen, buf, w.len, 0, "mailbox");
}

/* ------------------------------------------------------------ messages */

void
store__msgkey(unsigned char *key, const unsigned char *uid, uint32_t mbid,
    uint32_t muid)
{
	memcpy(key, uid, ST_ID_LEN);
	store__be32(key + ST_ID_LEN, mbid);
	store__be32(key + ST_ID_LEN + 4, muid);
}

static void
st_chgkey(unsigned char *key, const unsigned char *uid, uint32_t mbid,
    uint64_t modseq, uint32_t muid)
{
	memcpy(key, uid, ST_ID_LEN);
	store__be32(key + ST_ID_LEN, mbid);
	store__be64(key + ST_ID_LEN + 4, modseq);
	store__be32(key + ST_ID_LEN + 12, muid);
}

int
store__msg_decode(struct st_msg *m, const void *data, size_t len)
{
	const unsigned char	*p = data;

	if (len != ST_MSG_LEN || p[0] != ST_REC_VERSION)
		return r_corrupt("message");
	memcpy(m->blob, p + 1, ST_ID_LEN);
	p += 1 + ST_ID_LEN;
	m->flags = store__get32(p);
	m->kw = store__get64(p + 4);
	m->internaldate = (int64_t)store__get64(p + 12);
	m->size = store__get64(p + 20);
	m->modseq = store__get64(p + 28);
	m->saved = (int64_t)store__get64(p + 36);
	if ((m->flags & ~(uint32_t)STORE_F_ALL) != 0 || m->size == 0 ||
	    m->size > STORE_MSG_MAX || m->modseq == 0)
		return r_corrupt("message");
	return 0;
}

int
store__msg_get(MDB_txn *txn, struct store *s, const struct st_user *u,
    uint32_t mbid, uint32_t muid, struct st_msg *m)
{
	unsigned char	key[ST_MSGKEY_LEN];
	MDB_val		v;
	int		rc;

	store__msgkey(key, u->id, mbid, muid);
	if ((rc = st_get(txn, s->msgs, key, sizeof(key), &v, "message")) < 0)
		return rc;
	return store__msg_decode(m, v.mv_data, v.mv_size);
}

/*
 * Write a message record and keep the modseq index in step: oldmodseq
 * is the record's previous MODSEQ (0 for a new message).
 */
int
store__msg_put(MDB_txn *txn, struct store *s, const struct st_user *u,
    uint32_t mbid, uint32_t muid, const struct st_msg *m, uint64_t oldmodseq)
{
	unsigned char	key[ST_MSGKEY_LEN], ck[ST_CHGKEY_LEN], buf[ST_MSG_LEN];
	unsigned char	*p = buf;
	int		rc;

	p[0] = ST_REC_VERSION;
	memcpy(p + 1, m->blob, ST_ID_LEN);
	p += 1 + ST_ID_LEN;
	store__be32(p, m->flags);
	store__be64(p + 4, m->kw);
	store__be64(p + 12, (uint64_t)m->internaldate);
	store__be64(p + 20, m->size);
	store__be64(p + 28, m->modseq);
	store__be64(p + 36, (uint64_t)m->saved);
	store__msgkey(key, u->id, mbid, muid);
	if ((rc = st_put(txn, s->msgs, key, sizeof(key), buf, sizeof(buf), 0,
	    "message")) < 0)
		return rc;
	if (oldmodseq == m->modseq)
		return 0;
	if (oldmodseq != 0) {
		st_chgkey(ck, u->id, mbid, oldmodseq, muid);
		if ((rc = st_del(txn, s->changes, ck, sizeof(ck),
		    "modseq index")) < 0)
			return rc;
	}
	st_chgkey(ck, u->id, mbid, m->modseq, muid);
	return st_put(txn, s->changes, ck, sizeof(ck), "", 0, 0,
	    "modseq index");
}

int
store__msg_del(MDB_txn *txn, struct store *s, const struct st_user *u,
    uint32_t mbid, uint32_t muid, const struct st_msg *m)
{
	unsigned char	key[ST_MSGKEY_LEN], ck[ST_CHGKEY_LEN];
	int		rc;

	store__msgkey(key, u->id, mbid, muid);
	if ((rc = st_del(txn, s->msgs, key, sizeof(key), "message")) < 0)
		return rc;
	st_chgkey(ck, u->id, mbid, m->modseq, muid);
	return st_del(txn, s->changes, ck, sizeof(ck), "modseq index");
}

/* ------------------------------------------------------------ blobs */

int
store__blob_get(MDB_txn *txn, struct store *s, const unsigned char *uid,
    const unsigned char *blob, uint32_t *refs, uint64_t *size)
{
	unsigned char		 key[ST_BLOBKEY_LEN];
	const unsigned char	*p;
	MDB_val			 v;
	int			 rc;

	memcpy(key, uid, ST_ID_LEN);
	memcpy(key + ST_ID_LEN, blob, ST_ID_LEN);
	if ((rc = st_get(txn, s->blobs, key, sizeof(key), &v, "blob")) < 0)
		return rc;
	p = v.mv_data;
	if (v.mv_size != ST_BLOB_LEN || p[0] != ST_REC_VERSION)
		return r_corrupt("blob");
	*refs = store__get32(p + 1);
	*size = store__get64(p + 5);
	return 0;
}

/* refs 0 deletes the record. */
int
store__blob_put(MDB_txn *txn, struct store *s, const unsigned char *uid,
    const unsigned char *blob, uint32_t refs, uint64_t size)
{
	unsigned char	key[ST_BLOBKEY_LEN], buf[ST_BLOB_LEN];

	memcpy(key, uid, ST_ID_LEN);
	memcpy(key + ST_ID_LEN, blob, ST_ID_LEN);
	if (refs == 0)
		return st_del(txn, s->blobs, key, sizeof(key), "blob");
	buf[0] = ST_REC_VERSION;
	store__be32(buf + 1, refs);
	store__be64(buf + 5, size);
	return st_put(txn, s->blobs, key, sizeof(key), buf, sizeof(buf), 0,
	    "blob");
}

/* ------------------------------------------------------------ expunge log */

/* Append uids to the log entry of (mailbox, modseq). */
int
store__exp_log(MDB_txn *txn, struct store *s, const struct st_user *u,
    uint32_t mbid, uint64_t modseq, const uint32_t *uids, size_t n)
{
	unsigned char	 key[ST_EXPKEY_LEN], *buf;
	MDB_val		 v;
	size_t		 old = 0, len, i;
	int		 rc;

	if (n == 0)
		return 0;
	memcpy(key, u->id, ST_ID_LEN);
	store__be32(key + ST_ID_LEN, mbid);
	store__be64(key + ST_ID_LEN + 4, modseq);
	rc = st_get(txn, s->expunged, key, sizeof(key), &v, "expunge log");
	if (rc < 0 && rc != ERR_NOTFOUND)
		return rc;
	if (rc == 0) {
		if (v.mv_size < 1 || (v.mv_size - 1) % 4 != 0 ||
		    ((unsigned char *)v.mv_data)[0] != ST_REC_VERSION)
			return r_corrupt("expunge log");
		old = v.mv_size - 1;
	}
	len = 1 + old + 4 * n;
	buf = xmalloc(len);
	buf[0] = ST_REC_VERSION;
	if (old > 0)
		memcpy(buf + 1, (unsigned char *)v.mv_data + 1, old);
	for (i = 0; i < n; i++)
		store__be32(buf + 1 + old + 4 * i, uids[i]);
	rc = st_put(txn, s->expunged, key, sizeof(key), buf, len, 0,
	    "expunge log");
	free(buf);
	return rc;
}

/* Delete every key that starts with prefix. */
int
store__del_prefix(MDB_txn *txn, MDB_dbi dbi, const void *prefix, size_t plen)
{
	MDB_cursor	*cur = NULL;
	MDB_val		 k, v;
	int		 mrc, rc = 0;

	if ((mrc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return db_err(mrc, "cursor");
	for (;;) {
		k.mv_data = (void *)prefix;
		k.mv_size = plen;
		mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (mrc == MDB_NOTFOUND || (mrc == 0 && (k.mv_size < plen ||
		    memcmp(k.mv_data, prefix, plen) != 0)))
			break;
		if (mrc != 0 || (mrc = mdb_cursor_del(cur, 0)) != 0) {
			rc = db_err(mrc, "delete range");
			break;
		}
	}
	mdb_cursor_close(cur);
	return rc;
}
