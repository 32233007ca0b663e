/*
 * store.c -- the mail store: open/close, locking, users, blob references
 * and quota (mailbox.c: mailboxes; message.c: append, read, fetch,
 * flags; expunge.c: expunge, copy, move, vanished, changes).
 *
 * Runs in: mailsrv, on worker threads (never the event loop: commits and
 * file writes fsync).  Any number of threads may call in at once.
 * Failure policy: return a negative enum err with err_set() context;
 * nothing is half-applied: each call is one LMDB write transaction, and
 * message files are written before, and unlinked after, the transaction
 * that references or releases them.
 * SECURITY: no plaintext of bodies or headers reaches the disk (files
 * are sealed by msgfile.c); paths are built only from random hex ids,
 * never from addresses or mailbox names; directories are 0700 and files
 * 0600; every stored record is validated when read (record.c).
 */

/*
 * @defgroup store Storage design
 *
 * Layout under the store directory:
 *	index/			one LMDB environment for the node
 *	blobs/<xx>/<user-id>/<blob-id>	message files (msgfile.h), xx the
 *				first two hex digits of the user-id
 * user-id and blob-id are 128-bit random values in lower-case hex; the
 * user-id is assigned when the user record is created, so no path
 * reveals an address or a mailbox name.
 *
 * Named databases (keys are binary; integers big-endian so that cursors
 * iterate in numeric order; every value starts with a version byte, 1):
 *	users	 address (lower-cased)		-> user-id[16] created
 *		 quota_used quota_limit next_mbid last_uidvalidity
 *		 nmailboxes wrapped_dek (u16 length + bytes)
 *	mboxes	 user-id || name (UTF-8)	-> mailbox id, uidvalidity,
 *		 uidnext, highestmodseq, special-use, flags (\Noselect),
 *		 messages, unseen, deleted, size, keywords (u8 count, then
 *		 u8 length + bytes each; bit i of a message's mask = i-th)
 *	subs	 user-id || name		-> version only
 *	msgs	 user-id || mbid || uid		-> blob-id flags keywords
 *		 internaldate size modseq saved
 *	changes	 user-id || mbid || modseq || uid -> empty: the modseq
 *		 index (CONDSTORE CHANGEDSINCE and polling cost what changed)
 *	expunged user-id || mbid || modseq	-> version || uid[] (VANISHED)
 *	blobs	 user-id || blob-id		-> refcount size
 *	meta	 "format"			-> 1
 * Mailboxes are keyed by name but messages by the mailbox id, which is
 * never reused, so RENAME rewrites only mailbox records, and the
 * messages of a deleted mailbox can never reappear in a new one.
 *
 * Invariants kept by every write transaction:
 * - mailbox counters (messages, unseen, deleted, size) equal the sums
 *   over its messages, so STATUS is O(1);
 * - quota_used is the sum of sizes of all the user's messages (a COPY
 *   counts twice although it shares the file: RFC 9208 STORAGE);
 * - a blob record's refcount is the number of messages naming it, and
 *   its file exists while the record does;
 * - every message has exactly one changes entry, at its current modseq;
 * - MODSEQ grows per mailbox; each call that changes a mailbox takes
 *   highestmodseq + 1 once and gives it to everything it changed;
 * - UIDVALIDITY is max(now, last + 1) per user, so a name never sees a
 *   value twice; UIDs grow from 1 and are never reused;
 * - every superior of a mailbox exists (possibly as \Noselect).
 *
 * Durability order: a delivered message's file is written to a tmp name,
 * fsync'd, renamed and its directory fsync'd before the transaction that
 * references it commits; a file whose refcount dropped to zero is
 * unlinked after the commit.  A crash between leaves an unreferenced
 * (still encrypted) file, never a dangling reference.
 *
 * Locking: LMDB serialises writers, but db_write() may grow the map,
 * which remaps it and is allowed only while this process has no other
 * transaction open.  A rwlock therefore makes readers shared and write
 * transactions exclusive (writer-preferring, so deliveries are not
 * starved by readers).  Only the LMDB transaction runs under the lock:
 * compression, encryption and file I/O run outside it, in parallel.  An
 * atomic counter of committed writes (store_generation()) lets IMAP
 * sessions skip polls when nothing changed.
 *
 * Not done yet: the expunge log is never pruned (QRESYNC would then need
 * a "lowest remembered MODSEQ"); files left unreferenced by a crash are
 * not swept; users cannot be deleted.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mailsrv/store/store_int.h"

#define ST_MAP_SIZE	((size_t)64 * 1024 * 1024)
#define ST_MAP_MAX	((size_t)64 * 1024 * 1024 * 1024)
#define ST_MAXDBS	16
#define ST_FORMAT	1
#define ST_ZLEVEL	6

/* ------------------------------------------------------------ helpers */

void
store__hex(char *out, const unsigned char *p, size_t n)
{
	static const char	hx[] = "0123456789abcdef";
	size_t			i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hx[p[i] >> 4];
		out[2 * i + 1] = hx[p[i] & 0xf];
	}
	out[2 * n] = '\0';
}

int
store__random_id(unsigned char *id)
{
	if (RAND_bytes(id, ST_ID_LEN) != 1)
		return tls_error("RAND_bytes");
	return 0;
}

char *
store__blob_path(struct store *s, const char *userhex,
    const unsigned char *blob)
{
	char	bh[STORE_ID_HEX + 1], *p;

	store__hex(bh, blob, ST_ID_LEN);
	xasprintf(&p, "%s/%.2s/%s/%s", s->blobdir, userhex, userhex, bh);
	return p;
}

int
store__uids_ok(const uint32_t *uids, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		if (uids[i] == 0 || (i > 0 && uids[i] <= uids[i - 1])) {
			err_set(ERR_INVAL, "UID set is not strictly ascending");
			return ERR_INVAL;
		}
	}
	return 0;
}

void
store__uids_add(struct st_uids *a, uint32_t uid)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 16;
		a->v = xreallocarray(a->v, a->cap, sizeof(*a->v));
	}
	a->v[a->n++] = uid;
}

static int
st_cmp_u32(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Sort ascending and drop duplicates. */
void
store__uids_sort(struct st_uids *a)
{
	size_t	i, j;

	if (a->n < 2)
		return;
	qsort(a->v, a->n, sizeof(*a->v), st_cmp_u32);
	for (i = 1, j = 1; i < a->n; i++)
		if (a->v[i] != a->v[j - 1])
			a->v[j++] = a->v[i];
	a->n = j;
}

/* ------------------------------------------------------------ locking */

int
store__read(struct store *s, db_txn_fn fn, void *arg)
{
	int	rc;

	if (pthread_rwlock_rdlock(&s->lock) != 0)
		fatalx("store: rwlock rdlock");
	rc = db_read(s->env, fn, arg);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

int
store__write(struct store *s, db_txn_fn fn, void *arg)
{
	int	rc;

	if (pthread_rwlock_wrlock(&s->lock) != 0)
		fatalx("store: rwlock wrlock");
	rc = db_write(s->env, fn, arg);
	if (rc == 0)
		atomic_fetch_add(&s->generation, 1);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

uint64_t
store_generation(struct store *s)
{
	return atomic_load(&s->generation);
}

/* ------------------------------------------------------------ context */

int
store__ctx_init(struct st_ctx *c, struct store *s, const char *addr,
    const char *mailbox)
{
	int	rc;

	memset(c, 0, sizeof(*c));
	c->s = s;
	if (addr == NULL) {
		err_set(ERR_INVAL, "address: missing");
		return ERR_INVAL;
	}
	if ((rc = store__addr_norm(c->addr, &c->addrlen, addr)) < 0)
		return rc;
	return store__mbname_norm(c->name, &c->namelen,
	    mailbox != NULL ? mailbox : "INBOX");
}

/*
 * At the start of every transaction callback (which db_write() may run
 * more than once): forget earlier runs' results, load the user and,
 * with want >= 1, the mailbox; want 2 also requires it selectable.
 */
int
store__ctx_load(MDB_txn *txn, struct st_ctx *c, int want)
{
	int	rc;

	c->unl.n = 0;
	if ((rc = store__user_get(txn, c->s, c->addr, c->addrlen, &c->u)) < 0)
		return rc;
	if (want < 1)
		return 0;
	if ((rc = store__mbox_get(txn, c->s, &c->u, c->name, c->namelen,
	    &c->mb)) < 0)
		return rc;
	if (want >= 2 && (c->mb.mflags & ST_MB_NOSELECT)) {
		err_set(ERR_PERM, "mailbox is \\Noselect");
		return ERR_PERM;
	}
	return 0;
}

void
store__ctx_done(struct st_ctx *c)
{
	FREE_AND_NULL(c->unl.ids);
	c->unl.n = c->unl.cap = 0;
	explicit_bzero(c->u.wrapped, sizeof(c->u.wrapped));
}

/* After a commit: remove the files whose last reference went. */
void
store__unlink_blobs(struct st_ctx *c)
{
	char	*path;
	size_t	 i;

	for (i = 0; i < c->unl.n; i++) {
		path = store__blob_path(c->s, c->u.idhex, c->unl.ids[i]);
		if (unlink(path) < 0 && errno != ENOENT)
			log_warn("store unlink-failed blob=%s", path);
		free(path);
	}
	c->unl.n = 0;
}

/* ------------------------------------------------------------ blobs */

/*
 * Add delta (+1 / -1) to a blob's refcount; +1 on a missing record
 * creates it with size.  At zero the record goes and the file is queued
 * for unlinking after the commit.
 */
int
store__blob_ref(MDB_txn *txn, struct st_ctx *c, const unsigned char *blob,
    int delta, uint64_t size)
{
	uint32_t	refs = 0;
	uint64_t	bsize = size;
	int		rc;

	rc = store__blob_get(txn, c->s, c->u.id, blob, &refs, &bsize);
	if (rc == ERR_NOTFOUND && delta < 0) {
		/* damaged index: let the message go; the file stays */
		log_warn("store blob-record-missing user=%s", c->u.idhex);
		return 0;
	}
	if (rc < 0 && rc != ERR_NOTFOUND)
		return rc;
	if (delta > 0) {
		if (refs == UINT32_MAX) {
			err_set(ERR_TOOBIG, "blob reference count");
			return ERR_TOOBIG;
		}
		return store__blob_put(txn, c->s, c->u.id, blob, refs + 1,
		    bsize);
	}
	if (refs == 0)
		return store__blob_put(txn, c->s, c->u.id, blob, 0, 0);
	if (refs > 1)
		return store__blob_put(txn, c->s, c->u.id, blob, refs - 1,
		    bsize);
	if ((rc = store__blob_put(txn, c->s, c->u.id, blob, 0, 0)) < 0)
		return rc;
	if (c->unl.n == c->unl.cap) {
		c->unl.cap = c->unl.cap ? c->unl.cap * 2 : 8;
		c->unl.ids = xreallocarray(c->unl.ids, c->unl.cap,
		    sizeof(*c->unl.ids));
	}
	memcpy(c->unl.ids[c->unl.n++], blob, ST_ID_LEN);
	return 0;
}

/* Charge add bytes to the user's quota (ERR_TOOBIG over the limit). */
int
store__quota_add(struct st_ctx *c, uint64_t add)
{
	uint64_t	limit = c->u.quota_limit ? c->u.quota_limit :
			    c->s->quota;

	if (limit != 0 && (c->u.quota_used > limit ||
	    add > limit - c->u.quota_used)) {
		err_set(ERR_TOOBIG, "over quota (%llu of %llu bytes used)",
		    (unsigned long long)c->u.quota_used,
		    (unsigned long long)limit);
		return ERR_TOOBIG;
	}
	c->u.quota_used += add;
	return 0;
}

/* A fresh mailbox record (new id and UIDVALIDITY) for name; updates c->u. */
int
store__mb_newid(struct st_ctx *c, struct st_mbox *mb, const char *name,
    size_t namelen, unsigned special)
{
	time_t		now = time(NULL);
	uint32_t	uv;

	if (c->u.next_mbid == UINT32_MAX || c->u.last_uidvalidity ==
	    UINT32_MAX) {
		err_set(ERR_TOOBIG, "mailbox ids exhausted");
		return ERR_TOOBIG;
	}
	uv = now > 0 && (uint64_t)now < UINT32_MAX ? (uint32_t)now : 1;
	if (uv <= c->u.last_uidvalidity)
		uv = c->u.last_uidvalidity + 1;
	memset(mb, 0, sizeof(*mb));
	memcpy(mb->name, name, namelen);
	mb->name[namelen] = '\0';
	mb->namelen = namelen;
	mb->id = c->u.next_mbid++;
	mb->uidvalidity = uv;
	mb->uidnext = 1;
	mb->highestmodseq = 1;
	mb->special = special & STORE_SPECIAL_MASK;
	c->u.last_uidvalidity = uv;
	return 0;
}

/* ------------------------------------------------------------ open */

static int
st_meta_fn(MDB_txn *txn, void *arg)
{
	struct store	*s = arg;
	unsigned char	 want = ST_FORMAT;
	MDB_val		 k = { 6, (void *)"format" }, v;
	int		 mrc;

	if ((mrc = mdb_get(txn, s->meta, &k, &v)) == MDB_NOTFOUND) {
		v.mv_size = 1;
		v.mv_data = &want;
		return db_err(mdb_put(txn, s->meta, &k, &v, 0), "meta");
	}
	if (mrc != 0)
		return db_err(mrc, "meta");
	if (v.mv_size != 1 || *(unsigned char *)v.mv_data != ST_FORMAT) {
		err_set(ERR_IO, "mail store: unknown index format");
		return ERR_IO;
	}
	return 0;
}

static int
st_open_dbs(struct store *s)
{
	int	rc;

	if ((rc = db_dbi(s->env, "users", MDB_CREATE, &s->users)) < 0 ||
	    (rc = db_dbi(s->env, "mboxes", MDB_CREATE, &s->mboxes)) < 0 ||
	    (rc = db_dbi(s->env, "subs", MDB_CREATE, &s->subs)) < 0 ||
	    (rc = db_dbi(s->env, "msgs", MDB_CREATE, &s->msgs)) < 0 ||
	    (rc = db_dbi(s->env, "changes", MDB_CREATE, &s->changes)) < 0 ||
	    (rc = db_dbi(s->env, "expunged", MDB_CREATE, &s->expunged)) < 0 ||
	    (rc = db_dbi(s->env, "blobs", MDB_CREATE, &s->blobs)) < 0 ||
	    (rc = db_dbi(s->env, "meta", MDB_CREATE, &s->meta)) < 0 ||
	    (rc = db_dbi(s->env, "dedup", MDB_CREATE, &s->dedup)) < 0)
		return rc;
	return db_write(s->env, st_meta_fn, s);
}

int
store_open(struct store **out, const char *dir, const struct store_opts *o)
{
	struct store_opts	 def;
	pthread_rwlockattr_t	 attr;
	struct store		*s;
	char			*idx = NULL;
	int			 rc;

	*out = NULL;
	memset(&def, 0, sizeof(def));
	def.zlevel = -1;
	if (o == NULL)
		o = &def;
	if ((rc = mkdir_p(dir, 0700)) < 0)
		return rc;
	s = xcalloc(1, sizeof(*s));
	s->dir = xstrdup(dir);
	s->blobdir = path_join(dir, "blobs");
	s->zlevel = o->zlevel >= 0 && o->zlevel <= 9 ? o->zlevel : ST_ZLEVEL;
	s->quota = o->quota;
	s->msg_max = o->msg_max > 0 && o->msg_max < STORE_MSG_MAX ?
	    o->msg_max : STORE_MSG_MAX;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr,
	    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	rc = pthread_rwlock_init(&s->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (rc != 0)
		fatalx("store: pthread_rwlock_init");
	idx = path_join(dir, "index");
	if ((rc = mkdir_p(s->blobdir, 0700)) < 0 ||
	    (rc = db_open(&s->env, idx, o->map_size ? o->map_size :
	    ST_MAP_SIZE, o->map_max ? o->map_max : ST_MAP_MAX,
	    ST_MAXDBS)) < 0 ||
	    (rc = st_open_dbs(s)) < 0) {
		free(idx);
		store_close(&s);
		return rc;
	}
	free(idx);
	*out = s;
	return 0;
}

void
store_close(struct store **sp)
{
	struct store	*s;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	db_close(&s->env);
	pthread_rwlock_destroy(&s->lock);
	free(s->dir);
	free(s->blobdir);
	free(s);
	*sp = NULL;
}

/* ------------------------------------------------------------ users */

static const struct {
	const char	*name;
	unsigned	 special;
} st_default_mboxes[] = {
	{ "INBOX", 0 },
	{ "Sent", STORE_SPECIAL_SENT },
	{ "Drafts", STORE_SPECIAL_DRAFTS },
	{ "Trash", STORE_SPECIAL_TRASH },
	{ "Junk", STORE_SPECIAL_JUNK },
	{ "Archive", STORE_SPECIAL_ARCHIVE },
};

struct st_user_op {
	struct st_ctx	 c;
	unsigned char	 id[ST_ID_LEN];
	const char	*dek;
	uint64_t	 quota;
	int		 what;		/* 0 create, 1 set dek, 2 set quota */
};

static int
st_user_create_fn(MDB_txn *txn, void *arg)
{
	struct st_user_op	*op = arg;
	struct st_ctx		*c = &op->c;
	size_t			 i;
	int			 rc;

	memset(&c->u, 0, sizeof(c->u));
	memcpy(c->u.id, op->id, ST_ID_LEN);
	store__hex(c->u.idhex, c->u.id, ST_ID_LEN);
	c->u.created = (int64_t)time(NULL);
	c->u.next_mbid = 1;
	c->u.wrapped_len = strlen(op->dek);
	memcpy(c->u.wrapped, op->dek, c->u.wrapped_len);
	for (i = 0; i < nitems(st_default_mboxes); i++) {
		const char	*n = st_default_mboxes[i].name;

		if ((rc = store__mb_create(txn, c, n, strlen(n),
		    st_default_mboxes[i].special, 1)) < 0)
			return rc;
	}
	return store__user_put(txn, c->s, c->addr, c->addrlen, &c->u,
	    MDB_NOOVERWRITE);
}

static int
st_user_update_fn(MDB_txn *txn, void *arg)
{
	struct st_user_op	*op = arg;
	int			 rc;

	if ((rc = store__ctx_load(txn, &op->c, 0)) < 0)
		return rc;
	if (op->what == 1) {
		op->c.u.wrapped_len = strlen(op->dek);
		memcpy(op->c.u.wrapped, op->dek, op->c.u.wrapped_len);
	} else
		op->c.u.quota_limit = op->quota;
	return store__user_put(txn, op->c.s, op->c.addr, op->c.addrlen,
	    &op->c.u, 0);
}

static int
st_dek_ok(const char *dek)
{
	size_t	n = dek != NULL ? strlen(dek) : 0;

	if (n == 0 || n > STORE_WRAPPED_DEK_MAX) {
		err_set(n ? ERR_TOOBIG : ERR_INVAL, "wrapped key: %zu bytes "
		    "(1..%d)", n, STORE_WRAPPED_DEK_MAX);
		return n ? ERR_TOOBIG : ERR_INVAL;
	}
	return 0;
}

/*
 * Create blobs/<xx>/<user-id>/ if missing and make the new entries
 * durable.
 */
int
store__user_dir(struct store *s, const char *idhex)
{
	struct stat	 st;
	char		*dir;
	int		 rc;

	xasprintf(&dir, "%s/%.2s/%s", s->blobdir, idhex, idhex);
	if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
		free(dir);
		return 0;
	}
	if ((rc = mkdir_p(dir, 0700)) == 0 &&
	    (rc = fsync_dir_of(dir)) == 0) {
		/* the <xx> level may be new too */
		dir[strlen(dir) - STORE_ID_HEX - 1] = '\0';
		rc = fsync_dir_of(dir);
	}
	free(dir);
	return rc;
}

int
store_user_create(struct store *s, const char *addr, const char *dek)
{
	struct st_user_op	*op;
	int			 rc;

	op = xcalloc(1, sizeof(*op));
	if ((rc = store__ctx_init(&op->c, s, addr, NULL)) < 0 ||
	    (rc = st_dek_ok(dek)) < 0 ||
	    (rc = store__random_id(op->id)) < 0)
		goto done;
	op->dek = dek;
	if ((rc = store__write(s, st_user_create_fn, op)) < 0) {
		if (rc == ERR_EXISTS)
			err_set(ERR_EXISTS, "user already exists");
		goto done;
	}
	rc = store__user_dir(s, op->c.u.idhex);
	log_info("store user-created id=%s", op->c.u.idhex);
done:
	store__ctx_done(&op->c);
	free(op);
	return rc;
}

static int
st_user_update(struct store *s, const char *addr, int what, const char *dek,
    uint64_t quota)
{
	struct st_user_op	*op;
	int			 rc;

	op = xcalloc(1, sizeof(*op));
	if ((rc = store__ctx_init(&op->c, s, addr, NULL)) < 0 ||
	    (what == 1 && (rc = st_dek_ok(dek)) < 0))
		goto done;
	op->what = what;
	op->dek = dek;
	op->quota = quota;
	rc = store__write(s, st_user_update_fn, op);
done:
	store__ctx_done(&op->c);
	free(op);
	return rc;
}

int
store_user_set_dek(struct store *s, const char *addr, const char *dek)
{
	return st_user_update(s, addr, 1, dek, 0);
}

int
store_user_set_quota(struct store *s, const char *addr, uint64_t quota)
{
	return st_user_update(s, addr, 2, NULL, quota);
}

static int
st_user_get_fn(MDB_txn *txn, void *arg)
{
	return store__ctx_load(txn, arg, 0);
}

int
store_user_get(struct store *s, const char *addr, struct store_user *out)
{
	struct st_ctx	*c;
	int		 rc;

	memset(out, 0, sizeof(*out));
	c = xmalloc(sizeof(*c));
	if ((rc = store__ctx_init(c, s, addr, NULL)) < 0 ||
	    (rc = store__read(s, st_user_get_fn, c)) < 0)
		goto done;
	memcpy(out->user_id, c->u.idhex, sizeof(out->user_id));
	out->wrapped_dek = xstrdup(c->u.wrapped);
	out->created = c->u.created;
	out->quota_used = c->u.quota_used;
	out->quota_limit = c->u.quota_limit ? c->u.quota_limit : s->quota;
	out->mailboxes = c->u.nmailboxes;
done:
	store__ctx_done(c);
	free(c);
	return rc;
}

void
store_user_clear(struct store_user *u)
{
	if (u == NULL)
		return;
	free(u->wrapped_dek);
	memset(u, 0, sizeof(*u));
}
