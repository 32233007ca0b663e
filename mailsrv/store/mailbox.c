/*
 * mailbox.c -- mailbox names, keyword tables and the mailbox operations
 * (LIST, CREATE, DELETE, RENAME, SUBSCRIBE, STATUS) of the mail store.
 *
 * Runs in: mailsrv worker threads, through the store's locking
 * (store__read/store__write in store.c).
 * Failure policy: a bad name is ERR_INVAL, one over a limit ERR_TOOBIG;
 * each operation is one write transaction, so a failure leaves nothing
 * behind.
 * SECURITY: names are validated UTF-8 without controls before they
 * become keys; they never become paths.
 *
 * DELETE of a mailbox with inferiors follows RFC 3501 6.3.4: its
 * messages go and it stays as \Noselect; a \Noselect mailbox with
 * inferiors cannot be deleted.  A \Noselect superior is removed when its
 * last inferior goes (it would only clutter LIST).  SUBSCRIBE needs an
 * existing mailbox (RFC 3501 allows this check); subscriptions survive
 * DELETE and follow RENAME.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/db.h"
#include "common/err.h"
#include "common/xmalloc.h"
#include "mailsrv/store/store_int.h"

/* ------------------------------------------------------------ names */

/* Length of the UTF-8 sequence at p (0 if invalid); *cp the code point. */
static size_t
st_utf8(const unsigned char *p, size_t n, uint32_t *cp)
{
	size_t		len, i;
	uint32_t	c = p[0], min;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0) {
		len = 2;
		c &= 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3;
		c &= 0x0f;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4;
		c &= 0x07;
		min = 0x10000;
	} else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/*
 * Validate and canonicalise a mailbox name: UTF-8, no control
 * characters (C0, DEL, C1), no LIST wildcards, '/' separated levels that
 * are not empty, at most STORE_MAILBOX_NAME_MAX bytes and
 * STORE_MAILBOX_DEPTH_MAX levels.  A first level of "inbox" in any case
 * becomes "INBOX".  out has STORE_MAILBOX_NAME_MAX + 1 bytes.
 */
int
store__mbname_norm(char *out, size_t *lenp, const char *in)
{
	const unsigned char	*p = (const unsigned char *)in;
	size_t			 n = strlen(in), i, l;
	unsigned		 depth = 1;
	uint32_t		 cp;

	if (n == 0 || in[0] == '/' || in[n - 1] == '/')
		goto bad;
	if (n > STORE_MAILBOX_NAME_MAX) {
		err_set(ERR_TOOBIG, "mailbox name longer than %d bytes",
		    STORE_MAILBOX_NAME_MAX);
		return ERR_TOOBIG;
	}
	for (i = 0; i < n; i += l) {
		if ((l = st_utf8(p + i, n - i, &cp)) == 0 || cp < 0x20 ||
		    (cp >= 0x7f && cp <= 0x9f) || cp == '*' || cp == '%')
			goto bad;
		if (cp == '/') {
			if (p[i + 1] == '/')
				goto bad;
			depth++;
		}
	}
	if (depth > STORE_MAILBOX_DEPTH_MAX) {
		err_set(ERR_TOOBIG, "mailbox name deeper than %d levels",
		    STORE_MAILBOX_DEPTH_MAX);
		return ERR_TOOBIG;
	}
	memcpy(out, in, n + 1);
	if (n >= 5 && strncasecmp(out, "INBOX", 5) == 0 &&
	    (out[5] == '\0' || out[5] == '/'))
		memcpy(out, "INBOX", 5);
	*lenp = n;
	return 0;
bad:
	err_set(ERR_INVAL, "mailbox name: not valid (UTF-8, no controls or "
	    "wildcards, no empty levels)");
	return ERR_INVAL;
}

static int
st_is_inbox(const char *name, size_t n)
{
	return n == 5 && memcmp(name, "INBOX", 5) == 0;
}

/* ------------------------------------------------------------ keywords */

int
store__keyword_ok(const char *k)
{
	size_t	i, n = strlen(k);

	if (n == 0 || n > STORE_KEYWORD_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char	c = (unsigned char)k[i];

		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return 0;
	}
	return 1;
}

/* Index of keyword k in mb (case-insensitive); -1 if absent. */
static int
st_kw_find(const struct st_mbox *mb, const char *k)
{
	uint32_t	i;

	for (i = 0; i < mb->nkw; i++)
		if (strcasecmp(mb->kw[i], k) == 0)
			return (int)i;
	return -1;
}

static int
st_kw_add(struct st_mbox *mb, const char *k)
{
	if (mb->nkw >= STORE_KEYWORDS_MAX) {
		err_set(ERR_TOOBIG, "mailbox has %d keywords already",
		    STORE_KEYWORDS_MAX);
		return ERR_TOOBIG;
	}
	memcpy(mb->kw[mb->nkw], k, strlen(k) + 1);
	return (int)mb->nkw++;
}

/*
 * The mask of keywords names in mb.  add: unknown ones are added to the
 * mailbox (ERR_TOOBIG when full); otherwise they are ignored.
 */
int
store__kw_mask(struct st_mbox *mb, const char *const *names, size_t n,
    int add, uint64_t *mask)
{
	size_t	i;
	int	idx;

	*mask = 0;
	for (i = 0; i < n; i++) {
		if (names[i] == NULL || !store__keyword_ok(names[i])) {
			err_set(ERR_INVAL, "keyword: not a valid atom");
			return ERR_INVAL;
		}
		if ((idx = st_kw_find(mb, names[i])) < 0) {
			if (!add)
				continue;
			if ((idx = st_kw_add(mb, names[i])) < 0)
				return idx;
		}
		*mask |= (uint64_t)1 << idx;
	}
	return 0;
}

/* Translate a keyword mask of src into dst's table (adding names). */
int
store__kw_remap(struct st_mbox *dst, const struct st_mbox *src,
    uint64_t mask, uint64_t *out)
{
	uint32_t	i;
	int		idx;

	if (dst == src) {
		*out = mask;
		return 0;
	}
	*out = 0;
	for (i = 0; i < src->nkw; i++) {
		if (!(mask & ((uint64_t)1 << i)))
			continue;
		if ((idx = st_kw_find(dst, src->kw[i])) < 0 &&
		    (idx = st_kw_add(dst, src->kw[i])) < 0)
			return idx;
		*out |= (uint64_t)1 << idx;
	}
	return 0;
}

/* Add (sign > 0) or remove a message from the mailbox counters. */
void
store__mb_count(struct st_mbox *mb, const struct st_msg *m, int sign)
{
	int	unseen = !(m->flags & STORE_F_SEEN);
	int	del = (m->flags & STORE_F_DELETED) != 0;

	if (sign > 0) {
		mb->messages++;
		mb->unseen += (uint32_t)unseen;
		mb->deleted += (uint32_t)del;
		mb->size += m->size;
		return;
	}
	mb->messages -= mb->messages > 0;
	mb->unseen -= (uint32_t)(unseen && mb->unseen > 0);
	mb->deleted -= (uint32_t)(del && mb->deleted > 0);
	mb->size -= m->size < mb->size ? m->size : mb->size;
}

/* ------------------------------------------------------------ hierarchy */

/* 1 if some mailbox is an inferior of name, 0 if none. */
static int
st_has_children(MDB_txn *txn, struct store *s, const struct st_user *u,
    const char *name, size_t namelen)
{
	unsigned char	 key[ST_MBKEY_MAX + 1];
	MDB_cursor	*cur;
	MDB_val		 k, v;
	size_t		 klen = store__mbkey(key, u->id, name, namelen);
	int		 mrc;

	key[klen++] = '/';
	if ((mrc = mdb_cursor_open(txn, s->mboxes, &cur)) != 0)
		return db_err(mrc, "cursor");
	k.mv_data = key;
	k.mv_size = klen;
	mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	mdb_cursor_close(cur);
	if (mrc == MDB_NOTFOUND)
		return 0;
	if (mrc != 0)
		return db_err(mrc, "cursor");
	return k.mv_size > klen && memcmp(k.mv_data, key, klen) == 0;
}

static int
st_sub_put(MDB_txn *txn, struct store *s, const struct st_user *u,
    const char *name, size_t namelen, int on)
{
	unsigned char	key[ST_MBKEY_MAX], ver = ST_REC_VERSION;
	MDB_val		k, v;
	int		mrc;

	k.mv_data = key;
	k.mv_size = store__mbkey(key, u->id, name, namelen);
	if (on) {
		v.mv_data = &ver;
		v.mv_size = 1;
		return db_err(mdb_put(txn, s->subs, &k, &v, 0), "subscribe");
	}
	if ((mrc = mdb_del(txn, s->subs, &k, NULL)) == MDB_NOTFOUND) {
		err_set(ERR_NOTFOUND, "not subscribed");
		return ERR_NOTFOUND;
	}
	return db_err(mrc, "unsubscribe");
}

/* Create the missing superiors of name as ordinary mailboxes. */
static int
st_superiors(MDB_txn *txn, struct st_ctx *c, const char *name,
    size_t namelen)
{
	struct st_mbox	*mb = xmalloc(sizeof(*mb));
	size_t		 l;
	int		 rc = 0;

	for (l = 1; l < namelen; l++) {
		if (name[l] != '/')
			continue;
		rc = store__mbox_get(txn, c->s, &c->u, name, l, mb);
		if (rc == 0)
			continue;
		if (rc != ERR_NOTFOUND)
			break;
		if (c->u.nmailboxes >= STORE_MAILBOXES_MAX) {
			err_set(ERR_TOOBIG, "more than %d mailboxes",
			    STORE_MAILBOXES_MAX);
			rc = ERR_TOOBIG;
			break;
		}
		if ((rc = store__mb_newid(c, mb, name, l, 0)) < 0 ||
		    (rc = store__mbox_put(txn, c->s, &c->u, mb)) < 0)
			break;
		c->u.nmailboxes++;
	}
	free(mb);
	return rc;
}

/*
 * Create name (and its missing superiors) in c's user, which the caller
 * writes back.  The name of a \Noselect placeholder becomes a mailbox.
 */
int
store__mb_create(MDB_txn *txn, struct st_ctx *c, const char *name,
    size_t namelen, unsigned special, int subscribe)
{
	struct st_mbox	*mb = xmalloc(sizeof(*mb));
	int		 rc, revive;

	if ((rc = st_superiors(txn, c, name, namelen)) < 0)
		goto done;
	rc = store__mbox_get(txn, c->s, &c->u, name, namelen, mb);
	if (rc < 0 && rc != ERR_NOTFOUND)
		goto done;
	revive = rc == 0;
	if (revive && !(mb->mflags & ST_MB_NOSELECT)) {
		err_set(ERR_EXISTS, "mailbox already exists");
		rc = ERR_EXISTS;
		goto done;
	}
	if (!revive && c->u.nmailboxes >= STORE_MAILBOXES_MAX) {
		err_set(ERR_TOOBIG, "more than %d mailboxes",
		    STORE_MAILBOXES_MAX);
		rc = ERR_TOOBIG;
		goto done;
	}
	if ((rc = store__mb_newid(c, mb, name, namelen, special)) < 0 ||
	    (rc = store__mbox_put(txn, c->s, &c->u, mb)) < 0)
		goto done;
	if (!revive)
		c->u.nmailboxes++;
	if (subscribe)
		rc = st_sub_put(txn, c->s, &c->u, name, namelen, 1);
done:
	free(mb);
	return rc;
}

/* Remove \Noselect superiors of name left without inferiors. */
static int
st_prune(MDB_txn *txn, struct st_ctx *c, const char *name, size_t namelen)
{
	struct st_mbox	*mb = xmalloc(sizeof(*mb));
	unsigned char	 key[ST_MBKEY_MAX];
	MDB_val		 k;
	int		 rc = 0, mrc;

	while (namelen > 0) {
		while (namelen > 0 && name[namelen - 1] != '/')
			namelen--;
		if (namelen == 0)
			break;
		namelen--;		/* the parent, without its '/' */
		if ((rc = store__mbox_get(txn, c->s, &c->u, name, namelen,
		    mb)) < 0 || !(mb->mflags & ST_MB_NOSELECT))
			break;
		if ((rc = st_has_children(txn, c->s, &c->u, name,
		    namelen)) != 0)
			break;
		k.mv_data = key;
		k.mv_size = store__mbkey(key, c->u.id, name, namelen);
		if ((mrc = mdb_del(txn, c->s->mboxes, &k, NULL)) != 0) {
			rc = db_err(mrc, "mailbox");
			break;
		}
		c->u.nmailboxes -= c->u.nmailboxes > 0;
	}
	free(mb);
	return rc == ERR_NOTFOUND || rc > 0 ? 0 : rc;
}

/*
 * Remove every message of mb (blob references, quota) and the mailbox
 * id's modseq index and expunge log.  mb's counters are zeroed.
 */
static int
st_purge(MDB_txn *txn, struct st_ctx *c, struct st_mbox *mb)
{
	unsigned char	pfx[ST_ID_LEN + 4];
	struct st_msg	m;
	MDB_cursor	*cur = NULL;
	MDB_val		 k, v;
	int		 rc = 0, mrc;

	memcpy(pfx, c->u.id, ST_ID_LEN);
	store__be32(pfx + ST_ID_LEN, mb->id);
	/* blob and quota first; the message records go by prefix below */
	if ((mrc = mdb_cursor_open(txn, c->s->msgs, &cur)) != 0)
		return db_err(mrc, "cursor");
	k.mv_data = pfx;
	k.mv_size = sizeof(pfx);
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
	    mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != ST_MSGKEY_LEN ||
		    memcmp(k.mv_data, pfx, sizeof(pfx)) != 0)
			break;
		if ((rc = store__msg_decode(&m, v.mv_data, v.mv_size)) < 0 ||
		    (rc = store__blob_ref(txn, c, m.blob, -1, 0)) < 0)
			break;
		c->u.quota_used -= m.size < c->u.quota_used ? m.size :
		    c->u.quota_used;
	}
	mdb_cursor_close(cur);
	if (rc < 0)
		return rc;
	if (mrc != 0 && mrc != MDB_NOTFOUND)
		return db_err(mrc, "cursor");
	if ((rc = store__del_prefix(txn, c->s->msgs, pfx, sizeof(pfx))) < 0 ||
	    (rc = store__del_prefix(txn, c->s->changes, pfx,
	    sizeof(pfx))) < 0 ||
	    (rc = store__del_prefix(txn, c->s->expunged, pfx,
	    sizeof(pfx))) < 0)
		return rc;
	mb->messages = mb->unseen = mb->deleted = 0;
	mb->size = 0;
	return 0;
}

/* ------------------------------------------------------------ list */

struct st_list {
	struct st_ctx		 c;
	struct store_mailbox	*v;
	size_t			 n, cap;
};

static void
st_list_add(struct st_list *l, const void *name, size_t n, unsigned special,
    unsigned attrs)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n].name = xstrndup(name, n);
	l->v[l->n].special = special;
	l->v[l->n].attrs = attrs;
	l->n++;
}

/* Position cur at the first key of the user's range; 0 when past it. */
static int
st_user_next(MDB_cursor *cur, const struct st_user *u, MDB_val *k,
    MDB_val *v, MDB_cursor_op op)
{
	int	mrc;

	if (op == MDB_SET_RANGE) {
		k->mv_data = (void *)u->id;
		k->mv_size = ST_ID_LEN;
	}
	mrc = mdb_cursor_get(cur, k, v, op);
	if (mrc == MDB_NOTFOUND || (mrc == 0 && (k->mv_size <= ST_ID_LEN ||
	    memcmp(k->mv_data, u->id, ST_ID_LEN) != 0)))
		return 0;
	return mrc ? db_err(mrc, "cursor") : 1;
}

/* Merge two sorted cursors: mailboxes and subscriptions. */
static int
st_list_fn(MDB_txn *txn, void *arg)
{
	struct st_list	*l = arg;
	struct st_ctx	*c = &l->c;
	struct st_mbox	*mb = &c->mb;
	MDB_cursor	*mc = NULL, *sc = NULL;
	MDB_val		 mk, mv, sk, sv;
	size_t		 i, ml, sl;
	int		 rc, hm, hs, cmp;
	unsigned	 attrs;

	store_mailbox_list_free(&l->v, l->n);
	l->n = l->cap = 0;
	if ((rc = store__ctx_load(txn, c, 0)) < 0)
		return rc;
	if ((rc = db_err(mdb_cursor_open(txn, c->s->mboxes, &mc),
	    "cursor")) < 0 ||
	    (rc = db_err(mdb_cursor_open(txn, c->s->subs, &sc),
	    "cursor")) < 0)
		goto done;
	hm = st_user_next(mc, &c->u, &mk, &mv, MDB_SET_RANGE);
	hs = st_user_next(sc, &c->u, &sk, &sv, MDB_SET_RANGE);
	while (hm > 0 || hs > 0) {
		ml = hm > 0 ? mk.mv_size - ST_ID_LEN : 0;
		sl = hs > 0 ? sk.mv_size - ST_ID_LEN : 0;
		if (hm <= 0)
			cmp = 1;
		else if (hs <= 0)
			cmp = -1;
		else if ((cmp = memcmp((char *)mk.mv_data + ST_ID_LEN,
		    (char *)sk.mv_data + ST_ID_LEN, ml < sl ? ml : sl)) == 0)
			cmp = ml < sl ? -1 : ml > sl;
		if (cmp > 0) {
			st_list_add(l, (char *)sk.mv_data + ST_ID_LEN, sl, 0,
			    STORE_MBOX_SUBSCRIBED | STORE_MBOX_NONEXISTENT);
			hs = st_user_next(sc, &c->u, &sk, &sv, MDB_NEXT);
			continue;
		}
		if ((rc = store__mbox_decode(mb, mv.mv_data, mv.mv_size)) < 0)
			goto done;
		attrs = (mb->mflags & ST_MB_NOSELECT) ? STORE_MBOX_NOSELECT :
		    0;
		if (cmp == 0) {
			attrs |= STORE_MBOX_SUBSCRIBED;
			hs = st_user_next(sc, &c->u, &sk, &sv, MDB_NEXT);
		}
		st_list_add(l, (char *)mk.mv_data + ST_ID_LEN, ml, mb->special,
		    attrs);
		hm = st_user_next(mc, &c->u, &mk, &mv, MDB_NEXT);
	}
	rc = hm < 0 ? hm : hs < 0 ? hs : 0;
	for (i = 0; rc == 0 && i < l->n; i++) {
		if (l->v[i].attrs & STORE_MBOX_NONEXISTENT)
			continue;
		if ((rc = st_has_children(txn, c->s, &c->u, l->v[i].name,
		    strlen(l->v[i].name))) > 0)
			l->v[i].attrs |= STORE_MBOX_HASCHILDREN;
		rc = rc > 0 ? 0 : rc;
	}
done:
	mdb_cursor_close(mc);
	mdb_cursor_close(sc);
	return rc;
}

int
store_mailbox_list(struct store *s, const char *addr,
    struct store_mailbox **out, size_t *nout)
{
	struct st_list	*l = xcalloc(1, sizeof(*l));
	int		 rc;

	*out = NULL;
	*nout = 0;
	if ((rc = store__ctx_init(&l->c, s, addr, NULL)) == 0 &&
	    (rc = store__read(s, st_list_fn, l)) == 0) {
		*out = l->v;
		*nout = l->n;
		l->v = NULL;
		l->n = 0;
	}
	store_mailbox_list_free(&l->v, l->n);
	store__ctx_done(&l->c);
	free(l);
	return rc;
}

void
store_mailbox_list_free(struct store_mailbox **vp, size_t n)
{
	size_t	i;

	if (vp == NULL || *vp == NULL)
		return;
	for (i = 0; i < n; i++)
		free((*vp)[i].name);
	FREE_AND_NULL(*vp);
}

/* ------------------------------------------------ create, delete */

struct st_mbop {
	struct st_ctx	 c;
	unsigned	 special;
	int		 on;
	size_t		 newlen;
	char		 newname[STORE_MAILBOX_NAME_MAX + 1];
	char		 (*names)[STORE_MAILBOX_NAME_MAX + 1];
	size_t		 nnames;
};

static int
st_create_fn(MDB_txn *txn, void *arg)
{
	struct st_mbop	*op = arg;
	int		 rc;

	if ((rc = store__ctx_load(txn, &op->c, 0)) < 0 ||
	    (rc = store__mb_create(txn, &op->c, op->c.name, op->c.namelen,
	    op->special, 0)) < 0)
		return rc;
	return store__user_put(txn, op->c.s, op->c.addr, op->c.addrlen,
	    &op->c.u, 0);
}

static int
st_delete_fn(MDB_txn *txn, void *arg)
{
	struct st_mbop	*op = arg;
	struct st_ctx	*c = &op->c;
	unsigned char	 key[ST_MBKEY_MAX];
	MDB_val		 k;
	int		 rc, kids;

	if ((rc = store__ctx_load(txn, c, 1)) < 0)
		return rc;
	if (st_is_inbox(c->name, c->namelen)) {
		err_set(ERR_PERM, "INBOX cannot be deleted");
		return ERR_PERM;
	}
	if ((kids = st_has_children(txn, c->s, &c->u, c->name,
	    c->namelen)) < 0)
		return kids;
	if (kids && (c->mb.mflags & ST_MB_NOSELECT)) {
		err_set(ERR_EXISTS, "\\Noselect mailbox has inferiors");
		return ERR_EXISTS;
	}
	if ((rc = st_purge(txn, c, &c->mb)) < 0)
		return rc;
	if (kids) {
		c->mb.mflags |= ST_MB_NOSELECT;
		c->mb.nkw = 0;
		rc = store__mbox_put(txn, c->s, &c->u, &c->mb);
	} else {
		k.mv_data = key;
		k.mv_size = store__mbkey(key, c->u.id, c->name, c->namelen);
		if ((rc = db_err(mdb_del(txn, c->s->mboxes, &k, NULL),
		    "mailbox")) == 0) {
			c->u.nmailboxes -= c->u.nmailboxes > 0;
			rc = st_prune(txn, c, c->name, c->namelen);
		}
	}
	if (rc < 0)
		return rc;
	return store__user_put(txn, c->s, c->addr, c->addrlen, &c->u, 0);
}

static int
st_mbop_run(struct store *s, const char *addr, const char *name,
    struct st_mbop *op, db_txn_fn fn, int write)
{
	int	rc;

	if ((rc = store__ctx_init(&op->c, s, addr, name)) == 0) {
		rc = write ? store__write(s, fn, op) : store__read(s, fn, op);
		if (rc == 0)
			store__unlink_blobs(&op->c);
	}
	store__ctx_done(&op->c);
	free(op->names);
	free(op);
	return rc;
}

int
store_mailbox_create(struct store *s, const char *addr, const char *name,
    unsigned special)
{
	struct st_mbop	*op = xcalloc(1, sizeof(*op));

	if (name == NULL) {
		free(op);
		err_set(ERR_INVAL, "mailbox name: missing");
		return ERR_INVAL;
	}
	op->special = special;
	return st_mbop_run(s, addr, name, op, st_create_fn, 1);
}

int
store_mailbox_delete(struct store *s, const char *addr, const char *name)
{
	struct st_mbop	*op = xcalloc(1, sizeof(*op));

	if (name == NULL) {
		free(op);
		err_set(ERR_PERM, "INBOX cannot be deleted");
		return ERR_PERM;
	}
	return st_mbop_run(s, addr, name, op, st_delete_fn, 1);
}

/* ------------------------------------------------------------ rename */

/* The names of old and its inferiors, old first. */
static int
st_rename_collect(MDB_txn *txn, struct st_mbop *op)
{
	struct st_ctx	*c = &op->c;
	unsigned char	 key[ST_MBKEY_MAX + 1];
	MDB_cursor	*cur;
	MDB_val		 k, v;
	size_t		 klen, n, cap = 16;
	int		 mrc;

	op->names = xreallocarray(op->names, cap, sizeof(*op->names));
	memcpy(op->names[0], c->name, c->namelen + 1);
	op->nnames = 1;
	klen = store__mbkey(key, c->u.id, c->name, c->namelen);
	key[klen++] = '/';
	if ((mrc = mdb_cursor_open(txn, c->s->mboxes, &cur)) != 0)
		return db_err(mrc, "cursor");
	k.mv_data = key;
	k.mv_size = klen;
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
	    mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size <= klen || memcmp(k.mv_data, key, klen) != 0)
			break;
		n = k.mv_size - ST_ID_LEN;
		if (n > STORE_MAILBOX_NAME_MAX)
			continue;	/* cannot be: keys are validated */
		if (op->nnames == cap) {
			cap *= 2;
			op->names = xreallocarray(op->names, cap,
			    sizeof(*op->names));
		}
		memcpy(op->names[op->nnames], (char *)k.mv_data + ST_ID_LEN,
		    n);
		op->names[op->nnames++][n] = '\0';
	}
	mdb_cursor_close(cur);
	return mrc == 0 || mrc == MDB_NOTFOUND ? 0 : db_err(mrc, "cursor");
}

/* Move one mailbox record (and its subscription) to a new name. */
static int
st_rename_one(MDB_txn *txn, struct st_ctx *c, const char *from,
    const char *to, size_t tolen)
{
	struct st_mbox	*mb = &c->mb;
	unsigned char	 key[ST_MBKEY_MAX];
	MDB_val		 k;
	size_t		 fl = strlen(from);
	int		 rc;

	if ((rc = store__mbox_get(txn, c->s, &c->u, to, tolen, mb)) !=
	    ERR_NOTFOUND) {
		if (rc == 0) {
			err_set(ERR_EXISTS, "mailbox already exists");
			rc = ERR_EXISTS;
		}
		return rc;
	}
	if ((rc = store__mbox_get(txn, c->s, &c->u, from, fl, mb)) < 0)
		return rc;
	k.mv_data = key;
	k.mv_size = store__mbkey(key, c->u.id, from, fl);
	if ((rc = db_err(mdb_del(txn, c->s->mboxes, &k, NULL),
	    "mailbox")) < 0)
		return rc;
	memcpy(mb->name, to, tolen + 1);
	mb->namelen = tolen;
	if ((rc = store__mbox_put(txn, c->s, &c->u, mb)) < 0)
		return rc;
	rc = st_sub_put(txn, c->s, &c->u, from, fl, 0);
	if (rc == ERR_NOTFOUND)
		return 0;
	if (rc < 0)
		return rc;
	return st_sub_put(txn, c->s, &c->u, to, tolen, 1);
}

static int
st_rename_fn(MDB_txn *txn, void *arg)
{
	struct st_mbop	*op = arg;
	struct st_ctx	*c = &op->c;
	char		 to[STORE_MAILBOX_NAME_MAX + 1];
	size_t		 i, sl;
	unsigned	 depth;
	int		 rc;

	if ((rc = store__ctx_load(txn, c, 1)) < 0)
		return rc;
	if (c->namelen == op->newlen &&
	    memcmp(c->name, op->newname, op->newlen) == 0) {
		err_set(ERR_EXISTS, "mailbox already exists");
		return ERR_EXISTS;
	}
	if (st_is_inbox(c->name, c->namelen)) {
		if ((rc = store__rename_inbox(txn, c, op->newname,
		    op->newlen)) < 0)
			return rc;
		return store__user_put(txn, c->s, c->addr, c->addrlen,
		    &c->u, 0);
	}
	if (op->newlen > c->namelen && op->newname[c->namelen] == '/' &&
	    memcmp(op->newname, c->name, c->namelen) == 0) {
		err_set(ERR_INVAL, "cannot rename a mailbox into itself");
		return ERR_INVAL;
	}
	if ((rc = st_rename_collect(txn, op)) < 0 ||
	    (rc = st_superiors(txn, c, op->newname, op->newlen)) < 0)
		return rc;
	for (i = 0; i < op->nnames; i++) {
		sl = strlen(op->names[i]) - c->namelen;
		depth = 1;
		if (op->newlen + sl > STORE_MAILBOX_NAME_MAX) {
			err_set(ERR_TOOBIG, "renamed inferior name too long");
			return ERR_TOOBIG;
		}
		memcpy(to, op->newname, op->newlen);
		memcpy(to + op->newlen, op->names[i] + c->namelen, sl + 1);
		for (sl = 0; to[sl] != '\0'; sl++)
			depth += to[sl] == '/';
		if (depth > STORE_MAILBOX_DEPTH_MAX) {
			err_set(ERR_TOOBIG, "renamed inferior too deep");
			return ERR_TOOBIG;
		}
		if ((rc = st_rename_one(txn, c, op->names[i], to, sl)) < 0)
			return rc;
	}
	if ((rc = st_prune(txn, c, c->name, c->namelen)) < 0)
		return rc;
	return store__user_put(txn, c->s, c->addr, c->addrlen, &c->u, 0);
}

int
store_mailbox_rename(struct store *s, const char *addr, const char *from,
    const char *to)
{
	struct st_mbop	*op = xcalloc(1, sizeof(*op));
	int		 rc;

	if (to == NULL) {
		free(op);
		err_set(ERR_INVAL, "mailbox name: missing");
		return ERR_INVAL;
	}
	if ((rc = store__mbname_norm(op->newname, &op->newlen, to)) < 0) {
		free(op);
		return rc;
	}
	return st_mbop_run(s, addr, from, op, st_rename_fn, 1);
}

/* ---------------------------------------------- subscribe, status */

static int
st_subscribe_fn(MDB_txn *txn, void *arg)
{
	struct st_mbop	*op = arg;
	int		 rc;

	if ((rc = store__ctx_load(txn, &op->c, op->on ? 1 : 0)) < 0)
		return rc;
	return st_sub_put(txn, op->c.s, &op->c.u, op->c.name, op->c.namelen,
	    op->on);
}

int
store_mailbox_subscribe(struct store *s, const char *addr, const char *name,
    int on)
{
	struct st_mbop	*op = xcalloc(1, sizeof(*op));

	op->on = on;
	return st_mbop_run(s, addr, name, op, st_subscribe_fn, 1);
}

void
store__status_fill(struct store_status *st, const struct st_mbox *mb)
{
	memset(st, 0, sizeof(*st));
	st->messages = mb->messages;
	st->unseen = mb->unseen;
	st->deleted = mb->deleted;
	st->uidnext = mb->uidnext;
	st->uidvalidity = mb->uidvalidity;
	st->highestmodseq = mb->highestmodseq;
	st->size = mb->size;
	st->special = mb->special;
}

static int
st_load_fn(MDB_txn *txn, void *arg)
{
	struct st_mbop	*op = arg;

	return store__ctx_load(txn, &op->c, 2);
}

int
store_mailbox_status(struct store *s, const char *addr, const char *name,
    struct store_status *out)
{
	struct st_mbop	*op = xcalloc(1, sizeof(*op));
	int		 rc;

	memset(out, 0, sizeof(*out));
	if ((rc = store__ctx_init(&op->c, s, addr, name)) == 0 &&
	    (rc = store__read(s, st_load_fn, op)) == 0)
		store__status_fill(out, &op->c.mb);
	store__ctx_done(&op->c);
	free(op);
	return rc;
}

int
store_mailbox_keywords(struct store *s, const char *addr, const char *name,
    char ***out, size_t *nout)
{
	struct st_mbop	*op = xcalloc(1, sizeof(*op));
	uint32_t	 i;
	int		 rc;

	*out = NULL;
	*nout = 0;
	if ((rc = store__ctx_init(&op->c, s, addr, name)) == 0 &&
	    (rc = store__read(s, st_load_fn, op)) == 0 && op->c.mb.nkw > 0) {
		*out = xcalloc(op->c.mb.nkw, sizeof(**out));
		for (i = 0; i < op->c.mb.nkw; i++)
			(*out)[i] = xstrdup(op->c.mb.kw[i]);
		*nout = op->c.mb.nkw;
	}
	store__ctx_done(&op->c);
	free(op);
	return rc;
}

void
store_keywords_free(char ***vp, size_t n)
{
	size_t	i;

	if (vp == NULL || *vp == NULL)
		return;
	for (i = 0; i < n; i++)
		free((*vp)[i]);
	FREE_AND_NULL(*vp);
}
