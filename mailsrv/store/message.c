/*
 * message.c -- APPEND/delivery, reading a message, listing messages and
 * STORE (flags and keywords with CONDSTORE) in the mail store.
 *
 * Runs in: mailsrv worker threads; the LMDB part under the store's lock,
 * sealing and file I/O outside it.
 * Failure policy: an append writes its file durably, then commits the
 * index; if the commit fails the file is unlinked, so the caller's
 * failure means "not stored".  Reads return ERR_PERM for a file that
 * does not authenticate and ERR_IO for a malformed or missing one.
 * SECURITY: the data key is used for this call only and not copied;
 * plaintext exists only in the caller's buffers and in the one returned
 * by store_read().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "mailsrv/store/msgfile.h"
#include "mailsrv/store/store_int.h"

void
store__msginfo(struct store_msginfo *mi, uint32_t uid, const struct st_msg *m)
{
	mi->uid = uid;
	mi->flags = m->flags;
	mi->keywords = m->kw;
	mi->internaldate = m->internaldate;
	mi->size = m->size;
	mi->modseq = m->modseq;
	mi->saved = m->saved;
}

/* A growable msginfo array. */
struct st_infos {
	struct store_msginfo	*v;
	size_t			 n, cap;
};

static void
st_infos_add(struct st_infos *a, uint32_t uid, const struct st_msg *m)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 16;
		a->v = xreallocarray(a->v, a->cap, sizeof(*a->v));
	}
	store__msginfo(&a->v[a->n++], uid, m);
}

static int
st_info_cmp(const void *a, const void *b)
{
	uint32_t	x = ((const struct store_msginfo *)a)->uid;
	uint32_t	y = ((const struct store_msginfo *)b)->uid;

	return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------ append */

struct st_append {
	struct st_ctx			 c;
	const struct store_append	*a;
	unsigned char			 uid_id[ST_ID_LEN];	/* pre-check */
	unsigned char			 blob[ST_ID_LEN];
	int				 precheck;
	uint32_t			 uidvalidity, uid;
};

/*
 * key: user id || delivery id; value: uidvalidity, uid (uint32, host
 * order), then when it was recorded (int64 unix seconds), which
 * store_dedup_prune() uses.  Records of older versions have no time.
 */
#define ST_DEDUP_OLD	8
#define ST_DEDUP_VAL	16

static int
st_dedup(MDB_txn *txn, struct st_append *op, int put)
{
	unsigned char	 key[ST_ID_LEN + STORE_DEDUP_MAX];
	unsigned char	 val[ST_DEDUP_VAL];
	uint32_t	 v[2];
	int64_t		 now;
	size_t		 n = strlen(op->a->dedup);
	MDB_val		 k, d;
	int		 rc;

	memcpy(key, op->c.u.id, ST_ID_LEN);
	memcpy(key + ST_ID_LEN, op->a->dedup, n);
	k.mv_data = key;
	k.mv_size = ST_ID_LEN + n;
	if (put) {
		v[0] = op->uidvalidity;
		v[1] = op->uid;
		now = (int64_t)time(NULL);
		memcpy(val, v, sizeof(v));
		memcpy(val + sizeof(v), &now, sizeof(now));
		d.mv_data = val;
		d.mv_size = sizeof(val);
		rc = mdb_put(txn, op->c.s->dedup, &k, &d, 0);
		return rc ? db_err(rc, "store dedup") : 0;
	}
	if ((rc = mdb_get(txn, op->c.s->dedup, &k, &d)) == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return db_err(rc, "store dedup");
	if (d.mv_size == ST_DEDUP_OLD || d.mv_size == ST_DEDUP_VAL) {
		memcpy(v, d.mv_data, sizeof(v));
		op->uidvalidity = v[0];
		op->uid = v[1];
	}
	err_set(ERR_EXISTS, "already delivered (%s)", op->a->dedup);
	return ERR_EXISTS;
}

/*
 * The checks of an append, in txn: ERR_EXISTS (delivered before), the
 * quota, keywords, UIDs.  Nothing is written; m gets the keyword mask.
 * A precheck (before the file is written) stops after the quota.
 */
static int
st_append_checks(MDB_txn *txn, struct st_append *op, struct st_msg *m)
{
	struct st_ctx		*c = &op->c;
	int			 rc;

	if ((rc = store__ctx_load(txn, c, 2)) < 0)
		return rc;
	if (op->a->dedup != NULL && (rc = st_dedup(txn, op, 0)) < 0)
		return rc;
	if (op->precheck) {
		/* no blob yet: just the checks that would waste the write */
		memcpy(op->uid_id, c->u.id, ST_ID_LEN);
		return store__quota_add(c, op->a->len);
	}
	if (memcmp(op->uid_id, c->u.id, ST_ID_LEN) != 0) {
		err_set(ERR_NOTFOUND, "user was replaced during delivery");
		return ERR_NOTFOUND;
	}
	if ((rc = store__quota_add(c, op->a->len)) < 0 ||
	    (rc = store__kw_mask(&c->mb, op->a->keywords, op->a->nkeywords, 1,
	    &m->kw)) < 0)
		return rc;
	if (c->mb.uidnext == UINT32_MAX) {
		err_set(ERR_TOOBIG, "mailbox UIDs exhausted");
		return ERR_TOOBIG;
	}
	return 0;
}

/* The writes of an append whose checks passed. */
static int
st_append_puts(MDB_txn *txn, struct st_append *op, struct st_msg *m)
{
	struct st_ctx		*c = &op->c;
	int			 rc;

	memcpy(m->blob, op->blob, ST_ID_LEN);
	m->flags = op->a->flags;
	m->size = op->a->len;
	m->saved = (int64_t)time(NULL);
	m->internaldate = op->a->internaldate ? op->a->internaldate :
	    m->saved;
	m->modseq = ++c->mb.highestmodseq;
	op->uid = c->mb.uidnext++;
	op->uidvalidity = c->mb.uidvalidity;
	store__mb_count(&c->mb, m, 1);
	if ((rc = store__msg_put(txn, c->s, &c->u, c->mb.id, op->uid, m,
	    0)) < 0 ||
	    (rc = store__blob_ref(txn, c, m->blob, 1, m->size)) < 0 ||
	    (rc = store__mbox_put(txn, c->s, &c->u, &c->mb)) < 0 ||
	    (op->a->dedup != NULL && (rc = st_dedup(txn, op, 1)) < 0))
		return rc;
	return store__user_put(txn, c->s, c->addr, c->addrlen, &c->u, 0);
}

static int
st_append_fn(MDB_txn *txn, void *arg)
{
	struct st_append	*op = arg;
	struct st_msg		 m;
	int			 rc;

	if ((rc = st_append_checks(txn, op, &m)) < 0 || op->precheck)
		return rc;
	return st_append_puts(txn, op, &m);
}

static int
st_append_check(struct store *s, const unsigned char *dek,
    const struct store_append *a)
{
	size_t	i;

	if (dek == NULL || a == NULL || a->msg == NULL || a->len == 0 ||
	    (a->flags & ~(uint32_t)STORE_F_ALL) != 0 ||
	    (a->nkeywords > 0 && a->keywords == NULL)) {
		err_set(ERR_INVAL, "append: missing key or message, or "
		    "unknown flags");
		return ERR_INVAL;
	}
	if (a->dedup != NULL && (a->dedup[0] == '\0' ||
	    strlen(a->dedup) > STORE_DEDUP_MAX)) {
		err_set(ERR_INVAL, "append: bad delivery id");
		return ERR_INVAL;
	}
	if (a->len > s->msg_max) {
		err_set(ERR_TOOBIG, "message of %zu bytes (limit %zu)", a->len,
		    s->msg_max);
		return ERR_TOOBIG;
	}
	for (i = 0; i < a->nkeywords; i++) {
		if (a->keywords[i] == NULL || !store__keyword_ok(
		    a->keywords[i])) {
			err_set(ERR_INVAL, "keyword: not a valid atom");
			return ERR_INVAL;
		}
	}
	return 0;
}

int
store_append(struct store *s, const char *addr, const char *mailbox,
    const unsigned char *dek, const struct store_append *a,
    uint32_t *uidvalidity_out, uint32_t *uid_out)
{
	struct st_append	*op = xcalloc(1, sizeof(*op));
	char			 bh[STORE_ID_HEX + 1];
	char			*path = NULL;
	int			 rc;

	*uidvalidity_out = *uid_out = 0;
	op->a = a;
	op->precheck = 1;
	if ((rc = st_append_check(s, dek, a)) < 0 ||
	    (rc = store__ctx_init(&op->c, s, addr, mailbox)) < 0 ||
	    (rc = store__read(s, st_append_fn, op)) < 0 ||
	    (rc = store__random_id(op->blob)) < 0)
		goto done;
	store__hex(bh, op->blob, ST_ID_LEN);
	path = store__blob_path(s, op->c.u.idhex, op->blob);
	if ((rc = store__user_dir(s, op->c.u.idhex)) < 0 ||
	    (rc = msgfile_write(path, op->c.u.idhex, bh, dek, a->msg, a->len,
	    s->zlevel, s->msg_max, MSGFILE_SYNC)) < 0)
		goto done;
	op->precheck = 0;
	if ((rc = store__write(s, st_append_fn, op)) < 0) {
		if (unlink(path) < 0)
			log_warn("store unlink-failed blob=%s", path);
		goto done;
	}
	*uidvalidity_out = op->uidvalidity;
	*uid_out = op->uid;
done:
	if (rc == ERR_EXISTS && a->dedup != NULL) {
		*uidvalidity_out = op->uidvalidity;
		*uid_out = op->uid;
	}
	free(path);
	store__ctx_done(&op->c);
	free(op);
	return rc;
}

static int
st_deliver(struct store *s, const char *addr, const char *mailbox,
    const unsigned char *dek, const void *msg, size_t len, uint32_t flags,
    int64_t internaldate, const char *dedup, uint32_t *uidvalidity_out,
    uint32_t *uid_out)
{
	struct store_append	a;

	memset(&a, 0, sizeof(a));
	a.msg = msg;
	a.len = len;
	a.flags = flags;
	a.internaldate = internaldate;
	a.dedup = dedup;
	return store_append(s, addr, mailbox, dek, &a, uidvalidity_out,
	    uid_out);
}

int
store_deliver(struct store *s, const char *addr, const char *mailbox,
    const unsigned char *dek, const void *msg, size_t len, uint32_t flags,
    int64_t internaldate, uint32_t *uidvalidity_out, uint32_t *uid_out)
{
	return st_deliver(s, addr, mailbox, dek, msg, len, flags,
	    internaldate, NULL, uidvalidity_out, uid_out);
}

/* ------------------------------------------------------- batch delivery */

struct st_batch {
	struct store_delivery	*d;
	struct st_append	*ops;
	int			*written;	/* file written, index to do */
	size_t			 n;
};

/* The index of every written item; an item's failed check is its own. */
static int
st_batch_fn(MDB_txn *txn, void *arg)
{
	struct st_batch		*b = arg;
	struct st_append	*op;
	struct st_msg		 m;
	size_t			 i;
	int			 rc;

	for (i = 0; i < b->n; i++) {
		if (!b->written[i])
			continue;
		op = &b->ops[i];
		op->precheck = 0;
		/* checks write nothing: a failed one leaves the txn clean */
		if ((rc = st_append_checks(txn, op, &m)) < 0) {
			b->d[i].rc = rc;
			b->d[i].uidvalidity = op->uidvalidity;
			b->d[i].uid = op->uid;
			continue;
		}
		if ((rc = st_append_puts(txn, op, &m)) < 0)
			return rc;	/* the whole batch (or a retry) */
		b->d[i].rc = 0;
		b->d[i].uidvalidity = op->uidvalidity;
		b->d[i].uid = op->uid;
	}
	return 0;
}

/* Item i up to its file, written but not synced: 0 or its error. */
static int
st_batch_prepare(struct store *s, struct st_batch *b, size_t i,
    struct store_append *a, char **path)
{
	struct store_delivery	*d = &b->d[i];
	struct st_append	*op = &b->ops[i];
	char			 bh[STORE_ID_HEX + 1];
	int			 rc;

	memset(a, 0, sizeof(*a));
	a->msg = d->msg;
	a->len = d->len;
	a->internaldate = d->internaldate;
	a->dedup = d->dedup;
	op->a = a;
	op->precheck = 1;
	if (d->dedup == NULL) {
		err_set(ERR_INVAL, "batch delivery without a delivery id");
		return ERR_INVAL;
	}
	if ((rc = st_append_check(s, d->dek, a)) < 0 ||
	    (rc = store__ctx_init(&op->c, s, d->addr, NULL)) < 0 ||
	    (rc = store__read(s, st_append_fn, op)) < 0 ||
	    (rc = store__random_id(op->blob)) < 0)
		return rc;
	store__hex(bh, op->blob, ST_ID_LEN);
	*path = store__blob_path(s, op->c.u.idhex, op->blob);
	if ((rc = store__user_dir(s, op->c.u.idhex)) < 0)
		return rc;
	return msgfile_write(*path, op->c.u.idhex, bh, d->dek, a->msg, a->len,
	    s->zlevel, s->msg_max, 0);
}

int
store_deliver_many(struct store *s, struct store_delivery *d, size_t n)
{
	struct st_batch		 b;
	struct store_append	*as;
	char			**paths;
	size_t			 i, live = 0;
	int			 rc = 0, fd = -1;

	if (n > STORE_BATCH_MAX) {
		err_set(ERR_INVAL, "batch of %zu deliveries (limit %d)", n,
		    STORE_BATCH_MAX);
		return ERR_INVAL;
	}
	b.d = d;
	b.n = n;
	b.ops = xcalloc(n ? n : 1, sizeof(*b.ops));
	b.written = xcalloc(n ? n : 1, sizeof(*b.written));
	as = xcalloc(n ? n : 1, sizeof(*as));
	paths = xcalloc(n ? n : 1, sizeof(*paths));
	for (i = 0; i < n; i++) {
		d[i].uidvalidity = d[i].uid = 0;
		d[i].rc = st_batch_prepare(s, &b, i, &as[i], &paths[i]);
		if (d[i].rc == ERR_EXISTS) {
			d[i].uidvalidity = b.ops[i].uidvalidity;
			d[i].uid = b.ops[i].uid;
		}
		if (d[i].rc == 0) {
			b.written[i] = 1;
			live++;
		}
	}
	if (live > 0) {
		/* one sync for every file and directory written above */
		if ((fd = open(s->blobdir, O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC)) == -1 || syncfs(fd) == -1) {
			err_set(ERR_IO, "store syncfs: %s", strerror(errno));
			rc = ERR_IO;
		}
		if (fd != -1)
			close(fd);
		if (rc == 0)
			rc = store__write(s, st_batch_fn, &b);
	}
	for (i = 0; i < n; i++) {
		if (!b.written[i])
			continue;
		if (rc < 0)
			d[i].rc = rc;
		if (d[i].rc < 0 && unlink(paths[i]) < 0)
			log_warn("store unlink-failed blob=%s", paths[i]);
	}
	for (i = 0; i < n; i++) {
		free(paths[i]);
		store__ctx_done(&b.ops[i].c);
	}
	free(paths);
	free(as);
	free(b.written);
	free(b.ops);
	return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------- delivery ids */

_Static_assert(sizeof(((struct store_prune_pos *)0)->key) ==
    ST_ID_LEN + STORE_DEDUP_MAX, "a prune position holds any dedup key");

struct st_prune {
	int64_t			 before;
	int64_t			 now;
	size_t			 max;
	struct store_prune_pos	*pos;		/* where to start */
	struct store_prune_pos	 next;		/* where the next call starts */
	size_t			 removed;
};

static int
st_prune_fn(MDB_txn *txn, void *arg)
{
	struct st_prune	*p = arg;
	struct store	*s = p->pos->store;
	MDB_cursor	*c;
	MDB_val		 k, v;
	unsigned char	 val[ST_DEDUP_VAL];
	int64_t		 saved;
	size_t		 seen = 0;
	int		 mrc;

	p->removed = 0;
	if ((mrc = mdb_cursor_open(txn, s->dedup, &c)) != 0)
		return db_err(mrc, "store dedup cursor");
	k.mv_data = p->pos->key;
	k.mv_size = p->pos->len;
	mrc = p->pos->len > 0 ? mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) :
	    mdb_cursor_get(c, &k, &v, MDB_FIRST);
	for (; mrc == 0 && seen < p->max; seen++) {
		if (v.mv_size == ST_DEDUP_OLD) {
			/* an older record: its age counts from now */
			memcpy(val, v.mv_data, ST_DEDUP_OLD);
			memcpy(val + ST_DEDUP_OLD, &p->now, sizeof(p->now));
			v.mv_data = val;
			v.mv_size = sizeof(val);
			if ((mrc = mdb_cursor_put(c, &k, &v, MDB_CURRENT)) != 0)
				break;
		} else if (v.mv_size == ST_DEDUP_VAL) {
			memcpy(&saved, (unsigned char *)v.mv_data + ST_DEDUP_OLD,
			    sizeof(saved));
			if (saved < p->before) {
				if ((mrc = mdb_cursor_del(c, 0)) != 0)
					break;
				p->removed++;
			}
		}
		mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	p->next.store = s;
	p->next.len = 0;
	if (mrc == 0 && k.mv_size <= sizeof(p->next.key)) {
		memcpy(p->next.key, k.mv_data, k.mv_size);
		p->next.len = k.mv_size;
	} else if (mrc != 0 && mrc != MDB_NOTFOUND) {
		mdb_cursor_close(c);
		return db_err(mrc, "store dedup prune");
	}
	mdb_cursor_close(c);
	return 0;
}

int
store_dedup_prune(struct store *s, int64_t before, size_t max,
    struct store_prune_pos *pos)
{
	struct st_prune	p;
	int		rc;

	memset(&p, 0, sizeof(p));
	if (pos->store != s)
		pos->len = 0;	/* a position in another store */
	pos->store = s;
	p.before = before;
	p.now = (int64_t)time(NULL);
	p.max = max;
	p.pos = pos;
	if ((rc = store__write(s, st_prune_fn, &p)) < 0)
		return rc;
	*pos = p.next;
	return (int)(p.removed > INT32_MAX ? INT32_MAX : p.removed);
}

/* ------------------------------------------------------------ read */

struct st_readop {
	struct st_ctx	c;
	uint32_t	uid;
	struct st_msg	m;
};

static int
st_read_fn(MDB_txn *txn, void *arg)
{
	struct st_readop	*op = arg;
	int			 rc;

	if ((rc = store__ctx_load(txn, &op->c, 2)) < 0)
		return rc;
	return store__msg_get(txn, op->c.s, &op->c.u, op->c.mb.id, op->uid,
	    &op->m);
}

int
store_read(struct store *s, const char *addr, const char *mailbox,
    uint32_t uid, const unsigned char *dek, unsigned char **out,
    size_t *len)
{
	struct st_readop	*op = xcalloc(1, sizeof(*op));
	char			 bh[STORE_ID_HEX + 1];
	char			*path = NULL;
	int			 rc;

	*out = NULL;
	*len = 0;
	op->uid = uid;
	if (dek == NULL) {
		err_set(ERR_INVAL, "read: missing key");
		rc = ERR_INVAL;
		goto done;
	}
	if ((rc = store__ctx_init(&op->c, s, addr, mailbox)) < 0 ||
	    (rc = store__read(s, st_read_fn, op)) < 0)
		goto done;
	store__hex(bh, op->m.blob, ST_ID_LEN);
	path = store__blob_path(s, op->c.u.idhex, op->m.blob);
	rc = msgfile_read(out, len, path, op->c.u.idhex, bh, dek,
	    STORE_MSG_MAX);
	if (rc == ERR_NOTFOUND) {
		/* expunged meanwhile (file unlinked), or lost: tell apart */
		if ((rc = store__read(s, st_read_fn, op)) == 0) {
			err_set(ERR_IO, "message file is missing");
			rc = ERR_IO;
		}
		goto done;
	}
	if (rc == 0 && *len != op->m.size) {
		xfreezero(*out, *len);
		*out = NULL;
		*len = 0;
		err_set(ERR_IO, "message file size differs from the index");
		rc = ERR_IO;
	}
done:
	free(path);
	store__ctx_done(&op->c);
	free(op);
	return rc;
}

/* ------------------------------------------------------------ messages */

/*
 * Messages of c->mb with lo <= UID <= hi and MODSEQ > since, through
 * the modseq index, sorted by UID.
 */
int
store__changed_scan(MDB_txn *txn, struct st_ctx *c, uint32_t lo, uint32_t hi,
    uint64_t since, struct store_msginfo **out, size_t *nout)
{
	unsigned char	 key[ST_CHGKEY_LEN];
	struct st_infos	 a = { NULL, 0, 0 };
	struct st_msg	 m;
	MDB_cursor	*cur = NULL;
	MDB_val		 k, v;
	uint32_t	 uid;
	int		 rc = 0, mrc;

	*out = NULL;
	*nout = 0;
	if (since >= c->mb.highestmodseq)
		return 0;
	memcpy(key, c->u.id, ST_ID_LEN);
	store__be32(key + ST_ID_LEN, c->mb.id);
	store__be64(key + ST_ID_LEN + 4, since + 1);
	if ((mrc = mdb_cursor_open(txn, c->s->changes, &cur)) != 0)
		return db_err(mrc, "cursor");
	k.mv_data = key;
	k.mv_size = ST_ID_LEN + 12;
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
	    mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != ST_CHGKEY_LEN ||
		    memcmp(k.mv_data, key, ST_ID_LEN + 4) != 0)
			break;
		uid = store__get32((unsigned char *)k.mv_data + ST_ID_LEN +
		    12);
		if (uid < lo || uid > hi)
			continue;
		if ((rc = store__msg_get(txn, c->s, &c->u, c->mb.id, uid,
		    &m)) < 0)
			break;
		st_infos_add(&a, uid, &m);
	}
	mdb_cursor_close(cur);
	if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
		rc = db_err(mrc, "cursor");
	if (rc < 0) {
		free(a.v);
		return rc;
	}
	if (a.n > 1)
		qsort(a.v, a.n, sizeof(*a.v), st_info_cmp);
	*out = a.v;
	*nout = a.n;
	return 0;
}

struct st_list_msgs {
	struct st_ctx		 c;
	uint32_t		 lo, hi;
	uint64_t		 since;
	struct store_msginfo	*v;
	size_t			 n;
};

static int
st_messages_fn(MDB_txn *txn, void *arg)
{
	struct st_list_msgs	*op = arg;
	struct st_ctx		*c = &op->c;
	struct st_infos		 a = { NULL, 0, 0 };
	unsigned char		 key[ST_MSGKEY_LEN];
	struct st_msg		 m;
	MDB_cursor		*cur = NULL;
	MDB_val			 k, v;
	uint32_t		 uid;
	int			 rc = 0, mrc;

	if ((rc = store__ctx_load(txn, c, 2)) < 0)
		return rc;
	if (op->since > 0)
		return store__changed_scan(txn, c, op->lo, op->hi, op->since,
		    &op->v, &op->n);
	store__msgkey(key, c->u.id, c->mb.id, op->lo);
	if ((mrc = mdb_cursor_open(txn, c->s->msgs, &cur)) != 0)
		return db_err(mrc, "cursor");
	k.mv_data = key;
	k.mv_size = sizeof(key);
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
	    mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != ST_MSGKEY_LEN ||
		    memcmp(k.mv_data, key, ST_ID_LEN + 4) != 0)
			break;
		uid = store__get32((unsigned char *)k.mv_data + ST_ID_LEN + 4);
		if (uid > op->hi)
			break;
		if ((rc = store__msg_decode(&m, v.mv_data, v.mv_size)) < 0)
			break;
		st_infos_add(&a, uid, &m);
	}
	mdb_cursor_close(cur);
	if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
		rc = db_err(mrc, "cursor");
	if (rc < 0) {
		free(a.v);
		return rc;
	}
	op->v = a.v;
	op->n = a.n;
	return 0;
}

int
store_messages(struct store *s, const char *addr, const char *mailbox,
    uint32_t lo, uint32_t hi, uint64_t since, struct store_msginfo **out,
    size_t *nout)
{
	struct st_list_msgs	*op = xcalloc(1, sizeof(*op));
	int			 rc;

	*out = NULL;
	*nout = 0;
	op->lo = lo ? lo : 1;
	op->hi = hi;
	op->since = since;
	if ((rc = store__ctx_init(&op->c, s, addr, mailbox)) == 0 &&
	    (rc = store__read(s, st_messages_fn, op)) == 0) {
		*out = op->v;
		*nout = op->n;
	}
	store__ctx_done(&op->c);
	free(op);
	return rc;
}

void
store_msginfo_free(struct store_msginfo **p)
{
	if (p != NULL)
		FREE_AND_NULL(*p);
}

/* ------------------------------------------------------------ flags */

struct st_flagop {
	struct st_ctx			 c;
	const uint32_t			*uids;
	size_t				 nuids;
	const struct store_flagop	*f;
	struct st_infos			 msgs;
	struct st_uids			 modified;
	uint64_t			 modseq;
};

static void
st_flags_apply(const struct store_flagop *f, uint64_t mask,
    const struct st_msg *m, uint32_t *nf, uint64_t *nk)
{
	switch (f->mode) {
	case STORE_FLAGS_ADD:
		*nf = m->flags | f->flags;
		*nk = m->kw | mask;
		break;
	case STORE_FLAGS_REMOVE:
		*nf = m->flags & ~f->flags;
		*nk = m->kw & ~mask;
		break;
	default:
		*nf = f->flags;
		*nk = mask;
		break;
	}
}

static int
st_flags_fn(MDB_txn *txn, void *arg)
{
	struct st_flagop	*op = arg;
	struct st_ctx		*c = &op->c;
	struct st_msg		 m;
	uint64_t		 mask, nk, modseq, old;
	uint32_t		 nf;
	size_t			 i;
	int			 rc;

	op->msgs.n = op->modified.n = 0;
	op->modseq = 0;
	if ((rc = store__ctx_load(txn, c, 2)) < 0 ||
	    (rc = store__kw_mask(&c->mb, op->f->keywords, op->f->nkeywords,
	    op->f->mode != STORE_FLAGS_REMOVE, &mask)) < 0)
		return rc;
	modseq = c->mb.highestmodseq + 1;
	for (i = 0; i < op->nuids; i++) {
		rc = store__msg_get(txn, c->s, &c->u, c->mb.id, op->uids[i],
		    &m);
		if (rc == ERR_NOTFOUND)
			continue;
		if (rc < 0)
			return rc;
		if (op->f->conditional && m.modseq > op->f->unchangedsince) {
			store__uids_add(&op->modified, op->uids[i]);
			continue;
		}
		st_flags_apply(op->f, mask, &m, &nf, &nk);
		if (nf != m.flags || nk != m.kw) {
			store__mb_count(&c->mb, &m, -1);
			old = m.modseq;
			m.flags = nf;
			m.kw = nk;
			m.modseq = modseq;
			store__mb_count(&c->mb, &m, 1);
			if ((rc = store__msg_put(txn, c->s, &c->u, c->mb.id,
			    op->uids[i], &m, old)) < 0)
				return rc;
			op->modseq = modseq;
		}
		st_infos_add(&op->msgs, op->uids[i], &m);
	}
	if (op->modseq != 0)
		c->mb.highestmodseq = modseq;
	return store__mbox_put(txn, c->s, &c->u, &c->mb);
}

int
store_set_flags(struct store *s, const char *addr, const char *mailbox,
    const uint32_t *uids, size_t nuids, const struct store_flagop *f,
    struct store_flagres *res)
{
	struct st_flagop	*op = xcalloc(1, sizeof(*op));
	int			 rc;

	memset(res, 0, sizeof(*res));
	if (f == NULL || (nuids > 0 && uids == NULL) ||
	    (f->flags & ~(uint32_t)STORE_F_ALL) != 0 ||
	    f->mode < STORE_FLAGS_ADD || f->mode > STORE_FLAGS_REPLACE ||
	    (f->nkeywords > 0 && f->keywords == NULL)) {
		err_set(ERR_INVAL, "store flags: bad arguments");
		rc = ERR_INVAL;
		goto done;
	}
	op->uids = uids;
	op->nuids = nuids;
	op->f = f;
	if ((rc = store__uids_ok(uids, nuids)) < 0 ||
	    (rc = store__ctx_init(&op->c, s, addr, mailbox)) < 0 ||
	    (rc = store__write(s, st_flags_fn, op)) < 0)
		goto done;
	res->msgs = op->msgs.v;
	res->nmsgs = op->msgs.n;
	res->modified = op->modified.v;
	res->nmodified = op->modified.n;
	res->modseq = op->modseq;
	op->msgs.v = NULL;
	op->modified.v = NULL;
done:
	free(op->msgs.v);
	free(op->modified.v);
	store__ctx_done(&op->c);
	free(op);
	return rc;
}

void
store_flagres_free(struct store_flagres *r)
{
	if (r == NULL)
		return;
	free(r->msgs);
	free(r->modified);
	memset(r, 0, sizeof(*r));
}

int
store_deliver_once(struct store *s, const char *addr, const char *mailbox,
    const unsigned char *dek, const void *msg, size_t len,
    int64_t internaldate, const char *dedup, uint32_t *uidvalidity_out,
    uint32_t *uid_out)
{
	return st_deliver(s, addr, mailbox, dek, msg, len, 0, internaldate,
	    dedup, uidvalidity_out, uid_out);
}
