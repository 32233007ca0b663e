/*
 * expunge.c -- EXPUNGE, COPY, MOVE, RENAME INBOX's message move, and the
 * change feeds (VANISHED, "what changed since MODSEQ") of the mail store.
 *
 * Runs in: mailsrv worker threads, through the store's locking.
 * Failure policy: each call is one write transaction; files whose last
 * reference went are unlinked only after it commits (a failed unlink is
 * logged and leaves an unreferenced, still encrypted file).
 * SECURITY: COPY and MOVE stay within one user: the shared file is bound
 * to its owner's user-id by its AAD, so it could not be shared across
 * users anyway.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/db.h"
#include "common/err.h"
#include "common/xmalloc.h"
#include "mailsrv/store/store_int.h"

struct st_mitem {
	uint32_t	uid;
	struct st_msg	m;
};

struct st_mlist {
	struct st_mitem	*v;
	size_t		 n, cap;
};

static void
st_mlist_add(struct st_mlist *l, uint32_t uid, const struct st_msg *m)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n].uid = uid;
	l->v[l->n].m = *m;
	l->n++;
}

/*
 * The messages of mb named by uids (missing ones skipped), or all of
 * them with all set, in UID order.
 */
static int
st_collect(MDB_txn *txn, struct st_ctx *c, const struct st_mbox *mb,
    const uint32_t *uids, size_t n, int all, struct st_mlist *out)
{
	unsigned char	 key[ST_MSGKEY_LEN];
	struct st_msg	 m;
	MDB_cursor	*cur;
	MDB_val		 k, v;
	size_t		 i;
	int		 rc = 0, mrc;

	out->n = 0;
	for (i = 0; !all && i < n; i++) {
		rc = store__msg_get(txn, c->s, &c->u, mb->id, uids[i], &m);
		if (rc == ERR_NOTFOUND)
			continue;
		if (rc < 0)
			return rc;
		st_mlist_add(out, uids[i], &m);
	}
	if (!all)
		return 0;
	store__msgkey(key, c->u.id, mb->id, 1);
	if ((mrc = mdb_cursor_open(txn, c->s->msgs, &cur)) != 0)
		return db_err(mrc, "cursor");
	k.mv_data = key;
	k.mv_size = sizeof(key);
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
	    mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != ST_MSGKEY_LEN ||
		    memcmp(k.mv_data, key, ST_ID_LEN + 4) != 0)
			break;
		if ((rc = store__msg_decode(&m, v.mv_data, v.mv_size)) < 0)
			break;
		st_mlist_add(out, store__get32((unsigned char *)k.mv_data +
		    ST_ID_LEN + 4), &m);
	}
	mdb_cursor_close(cur);
	if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
		rc = db_err(mrc, "cursor");
	return rc;
}

/*
 * Remove the listed messages from mb under one new MODSEQ, logged for
 * VANISHED.  unref: drop their blob references and quota (EXPUNGE);
 * otherwise they live on elsewhere (MOVE).
 */
static int
st_remove(MDB_txn *txn, struct st_ctx *c, struct st_mbox *mb,
    const struct st_mlist *l, int unref, struct st_uids *done)
{
	const struct st_msg	*m;
	size_t			 i;
	int			 rc;

	done->n = 0;
	if (l->n == 0)
		return 0;
	for (i = 0; i < l->n; i++) {
		m = &l->v[i].m;
		if ((rc = store__msg_del(txn, c->s, &c->u, mb->id,
		    l->v[i].uid, m)) < 0)
			return rc;
		store__mb_count(mb, m, -1);
		if (unref) {
			if ((rc = store__blob_ref(txn, c, m->blob, -1, 0)) < 0)
				return rc;
			c->u.quota_used -= m->size < c->u.quota_used ?
			    m->size : c->u.quota_used;
		}
		store__uids_add(done, l->v[i].uid);
	}
	mb->highestmodseq++;
	return store__exp_log(txn, c->s, &c->u, mb->id, mb->highestmodseq,
	    done->v, done->n);
}

/* ------------------------------------------------------------ expunge */

struct st_expop {
	struct st_ctx	 c;
	const uint32_t	*uids;
	size_t		 nuids;
	struct st_mlist	 l;
	struct st_uids	 out;
};

static int
st_expunge_fn(MDB_txn *txn, void *arg)
{
	struct st_expop	*op = arg;
	struct st_ctx	*c = &op->c;
	size_t		 i, j;
	int		 rc;

	op->out.n = 0;
	if ((rc = store__ctx_load(txn, c, 2)) < 0 ||
	    (rc = st_collect(txn, c, &c->mb, op->uids, op->nuids,
	    op->uids == NULL, &op->l)) < 0)
		return rc;
	for (i = j = 0; i < op->l.n; i++)
		if (op->l.v[i].m.flags & STORE_F_DELETED)
			op->l.v[j++] = op->l.v[i];
	op->l.n = j;
	if (j == 0)
		return 0;
	if ((rc = st_remove(txn, c, &c->mb, &op->l, 1, &op->out)) < 0 ||
	    (rc = store__mbox_put(txn, c->s, &c->u, &c->mb)) < 0)
		return rc;
	return store__user_put(txn, c->s, c->addr, c->addrlen, &c->u, 0);
}

int
store_expunge(struct store *s, const char *addr, const char *mailbox,
    const uint32_t *uids, size_t nuids, uint32_t **out, size_t *nout)
{
	struct st_expop	*op = xcalloc(1, sizeof(*op));
	int		 rc;

	*out = NULL;
	*nout = 0;
	op->uids = uids;
	op->nuids = nuids;
	if ((rc = store__uids_ok(uids, uids != NULL ? nuids : 0)) < 0 ||
	    (rc = store__ctx_init(&op->c, s, addr, mailbox)) < 0 ||
	    (rc = store__write(s, st_expunge_fn, op)) < 0)
		goto done;
	store__unlink_blobs(&op->c);
	*out = op->out.v;
	*nout = op->out.n;
	op->out.v = NULL;
done:
	free(op->out.v);
	free(op->l.v);
	store__ctx_done(&op->c);
	free(op);
	return rc;
}

/* ------------------------------------------------------------ copy, move */

/*
 * Copy (move: and remove) the listed messages of src into dst, which may
 * be the same mailbox.  The copies share the files, keep flags, keywords
 * and internal date, and get one new MODSEQ of dst.  Both mailbox
 * records are written; the user record is the caller's.
 */
static int
st_xfer(MDB_txn *txn, struct st_ctx *c, struct st_mbox *src,
    struct st_mbox *dst, const struct st_mlist *l, int move,
    struct st_uids *so, struct st_uids *dout)
{
	struct st_msg	m;
	uint64_t	total = 0, modseq;
	int64_t		now = (int64_t)time(NULL);
	size_t		i;
	int		rc;

	so->n = dout->n = 0;
	if (l->n == 0)
		return 0;
	for (i = 0; i < l->n; i++)
		total += l->v[i].m.size;
	if (!move && (rc = store__quota_add(c, total)) < 0)
		return rc;
	if (l->n > (size_t)(UINT32_MAX - dst->uidnext)) {
		err_set(ERR_TOOBIG, "mailbox UIDs exhausted");
		return ERR_TOOBIG;
	}
	modseq = ++dst->highestmodseq;
	for (i = 0; i < l->n; i++) {
		m = l->v[i].m;
		if ((rc = store__kw_remap(dst, src, l->v[i].m.kw, &m.kw)) < 0)
			return rc;
		m.modseq = modseq;
		m.saved = now;
		if ((rc = store__msg_put(txn, c->s, &c->u, dst->id,
		    dst->uidnext, &m, 0)) < 0)
			return rc;
		if (!move && (rc = store__blob_ref(txn, c, m.blob, 1,
		    m.size)) < 0)
			return rc;
		store__mb_count(dst, &m, 1);
		store__uids_add(so, l->v[i].uid);
		store__uids_add(dout, dst->uidnext++);
	}
	if (move) {
		struct st_uids	gone = { NULL, 0, 0 };

		rc = st_remove(txn, c, src, l, 0, &gone);
		free(gone.v);
		if (rc < 0)
			return rc;
	}
	if (src != dst && (rc = store__mbox_put(txn, c->s, &c->u, src)) < 0)
		return rc;
	return store__mbox_put(txn, c->s, &c->u, dst);
}

struct st_copyop {
	struct st_ctx	 c;
	struct st_mbox	 dst;
	size_t		 dstlen;
	char		 dstname[STORE_MAILBOX_NAME_MAX + 1];
	const uint32_t	*uids;
	size_t		 nuids;
	int		 move;
	struct st_mlist	 l;
	struct st_uids	 so, dout;
	uint32_t	 uidvalidity;
};

static int
st_copy_fn(MDB_txn *txn, void *arg)
{
	struct st_copyop	*op = arg;
	struct st_ctx		*c = &op->c;
	struct st_mbox		*dst = &op->dst;
	int			 rc;

	if ((rc = store__ctx_load(txn, c, 2)) < 0)
		return rc;
	if (op->dstlen == c->namelen &&
	    memcmp(op->dstname, c->name, c->namelen) == 0)
		dst = &c->mb;
	else if ((rc = store__mbox_get(txn, c->s, &c->u, op->dstname,
	    op->dstlen, dst)) < 0)
		return rc;
	if (dst->mflags & ST_MB_NOSELECT) {
		err_set(ERR_PERM, "mailbox is \\Noselect");
		return ERR_PERM;
	}
	op->uidvalidity = dst->uidvalidity;
	if ((rc = st_collect(txn, c, &c->mb, op->uids, op->nuids, 0,
	    &op->l)) < 0 ||
	    (rc = st_xfer(txn, c, &c->mb, dst, &op->l, op->move, &op->so,
	    &op->dout)) < 0)
		return rc;
	if (op->l.n == 0)
		return 0;
	return store__user_put(txn, c->s, c->addr, c->addrlen, &c->u, 0);
}

static int
st_copy(struct store *s, const char *addr, const char *from, const char *to,
    const uint32_t *uids, size_t n, struct store_copyuid *out, int move)
{
	struct st_copyop	*op = xcalloc(1, sizeof(*op));
	int			 rc;

	memset(out, 0, sizeof(*out));
	op->uids = uids;
	op->nuids = n;
	op->move = move;
	if ((n > 0 && uids == NULL) || (rc = store__uids_ok(uids, n)) < 0) {
		err_set(ERR_INVAL, "copy: bad UID set");
		rc = ERR_INVAL;
		goto done;
	}
	if ((rc = store__mbname_norm(op->dstname, &op->dstlen,
	    to != NULL ? to : "INBOX")) < 0 ||
	    (rc = store__ctx_init(&op->c, s, addr, from)) < 0 ||
	    (rc = store__write(s, st_copy_fn, op)) < 0)
		goto done;
	out->uidvalidity = op->uidvalidity;
	out->src = op->so.v;
	out->dst = op->dout.v;
	out->n = op->so.n;
	op->so.v = op->dout.v = NULL;
done:
	free(op->so.v);
	free(op->dout.v);
	free(op->l.v);
	store__ctx_done(&op->c);
	free(op);
	return rc;
}

int
store_copy(struct store *s, const char *addr, const char *from,
    const char *to, const uint32_t *uids, size_t n,
    struct store_copyuid *out)
{
	return st_copy(s, addr, from, to, uids, n, out, 0);
}

int
store_move(struct store *s, const char *addr, const char *from,
    const char *to, const uint32_t *uids, size_t n,
    struct store_copyuid *out)
{
	return st_copy(s, addr, from, to, uids, n, out, 1);
}

void
store_copyuid_free(struct store_copyuid *c)
{
	if (c == NULL)
		return;
	free(c->src);
	free(c->dst);
	memset(c, 0, sizeof(*c));
}

/*
 * RENAME INBOX (RFC 3501 6.3.5): create newname and move every INBOX
 * message into it; c->mb is INBOX.  The user record is the caller's.
 */
int
store__rename_inbox(MDB_txn *txn, struct st_ctx *c, const char *newname,
    size_t newlen)
{
	struct st_mbox	*dst = xmalloc(sizeof(*dst));
	struct st_mlist	 l = { NULL, 0, 0 };
	struct st_uids	 so = { NULL, 0, 0 }, dout = { NULL, 0, 0 };
	int		 rc;

	rc = store__mbox_get(txn, c->s, &c->u, newname, newlen, dst);
	if (rc == 0) {
		err_set(ERR_EXISTS, "mailbox already exists");
		rc = ERR_EXISTS;
		goto done;
	}
	if (rc != ERR_NOTFOUND ||
	    (rc = store__mb_create(txn, c, newname, newlen, 0, 0)) < 0 ||
	    (rc = store__mbox_get(txn, c->s, &c->u, newname, newlen,
	    dst)) < 0 ||
	    (rc = st_collect(txn, c, &c->mb, NULL, 0, 1, &l)) < 0)
		goto done;
	rc = st_xfer(txn, c, &c->mb, dst, &l, 1, &so, &dout);
done:
	free(l.v);
	free(so.v);
	free(dout.v);
	free(dst);
	return rc;
}

/* ------------------------------------------------------------ vanished */

/* UIDs of c->mb expunged with MODSEQ > since (unsorted). */
int
store__vanished_scan(MDB_txn *txn, struct st_ctx *c, uint64_t since,
    struct st_uids *out)
{
	unsigned char		 key[ST_EXPKEY_LEN];
	const unsigned char	*p;
	MDB_cursor		*cur;
	MDB_val			 k, v;
	size_t			 i;
	int			 rc = 0, mrc;

	if (since >= c->mb.highestmodseq)
		return 0;
	memcpy(key, c->u.id, ST_ID_LEN);
	store__be32(key + ST_ID_LEN, c->mb.id);
	store__be64(key + ST_ID_LEN + 4, since + 1);
	if ((mrc = mdb_cursor_open(txn, c->s->expunged, &cur)) != 0)
		return db_err(mrc, "cursor");
	k.mv_data = key;
	k.mv_size = sizeof(key);
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
	    mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != ST_EXPKEY_LEN ||
		    memcmp(k.mv_data, key, ST_ID_LEN + 4) != 0)
			break;
		p = v.mv_data;
		if (v.mv_size < 1 || (v.mv_size - 1) % 4 != 0 ||
		    p[0] != ST_REC_VERSION) {
			err_set(ERR_IO, "stored expunge log record is corrupt");
			rc = ERR_IO;
			break;
		}
		for (i = 1; i < v.mv_size; i += 4)
			store__uids_add(out, store__get32(p + i));
	}
	mdb_cursor_close(cur);
	if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
		rc = db_err(mrc, "cursor");
	return rc;
}

struct st_feedop {
	struct st_ctx		 c;
	uint64_t		 since;
	int			 full;	/* store_changes(): also messages */
	struct store_status	 st;
	struct st_uids		 van;
	struct store_msginfo	*v;
	size_t			 n;
};

static int
st_feed_fn(MDB_txn *txn, void *arg)
{
	struct st_feedop	*op = arg;
	struct st_ctx		*c = &op->c;
	int			 rc;

	op->van.n = 0;
	store_msginfo_free(&op->v);
	op->n = 0;
	if ((rc = store__ctx_load(txn, c, 2)) < 0)
		return rc;
	store__status_fill(&op->st, &c->mb);
	if ((rc = store__vanished_scan(txn, c, op->since, &op->van)) < 0)
		return rc;
	if (!op->full)
		return 0;
	return store__changed_scan(txn, c, 1, UINT32_MAX, op->since, &op->v,
	    &op->n);
}

static int
st_feed(struct store *s, const char *addr, const char *mailbox,
    struct st_feedop *op)
{
	int	rc;

	if ((rc = store__ctx_init(&op->c, s, addr, mailbox)) == 0 &&
	    (rc = store__read(s, st_feed_fn, op)) == 0)
		store__uids_sort(&op->van);
	store__ctx_done(&op->c);
	return rc;
}

int
store_vanished(struct store *s, const char *addr, const char *mailbox,
    uint64_t since, uint32_t **out, size_t *nout)
{
	struct st_feedop	*op = xcalloc(1, sizeof(*op));
	int			 rc;

	*out = NULL;
	*nout = 0;
	op->since = since;
	if ((rc = st_feed(s, addr, mailbox, op)) == 0) {
		*out = op->van.v;
		*nout = op->van.n;
		op->van.v = NULL;
	}
	free(op->van.v);
	free(op);
	return rc;
}

int
store_changes(struct store *s, const char *addr, const char *mailbox,
    uint64_t since, struct store_changes *out)
{
	struct st_feedop	*op = xcalloc(1, sizeof(*op));
	int			 rc;

	memset(out, 0, sizeof(*out));
	op->since = since;
	op->full = 1;
	if ((rc = st_feed(s, addr, mailbox, op)) == 0) {
		out->status = op->st;
		out->changed = op->v;
		out->nchanged = op->n;
		out->vanished = op->van.v;
		out->nvanished = op->van.n;
		op->v = NULL;
		op->van.v = NULL;
	}
	free(op->v);
	free(op->van.v);
	free(op);
	return rc;
}

void
store_changes_free(struct store_changes *ch)
{
	if (ch == NULL)
		return;
	free(ch->changed);
	free(ch->vanished);
	memset(ch, 0, sizeof(*ch));
}
