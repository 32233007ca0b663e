/*
 * test_mailsrv_store.c -- unit tests for the mail store's messages
 * (mailsrv/store: store.c, message.c, expunge.c, msgfile.c, record.c).
 *
 * Purpose: users; delivery and byte-exact reads (8-bit, NUL); batches
 * and delivery ids; reopen durability; UID, UIDVALIDITY and MODSEQ
 * rules; flags, keywords and CONDSTORE; expunge and VANISHED; the change
 * feed; copy and move with shared files and refcounts; quota; limits at
 * max and max+1.  (The files at rest, corrupt records and concurrency
 * are in test_mailsrv_store_files.c, mailbox operations in
 * test_mailsrv_store_mbox.c; the fixture is store_fx.c.)
 * Runs in: the unit test binary only; each test gets a mkdtemp() store
 * directory that it removes.
 * Failure policy: cmocka assertions.
 * SECURITY: checks that the files are private, bound to their owner and
 * name, and carry no plaintext.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cmocka.h>
#include <lmdb.h>

#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mailsrv/store/msgfile.h"
#include "mailsrv/store/store.h"
#include "tests/unit/store_fx.h"

/* ------------------------------------------------------------ users */

static void
test_mailsrv_store__users(void **state)
{
	struct fx		*f = *state;
	struct store_user	 u;
	char			 big[STORE_WRAPPED_DEK_MAX + 2];
	size_t			 i;

	assert_int_equal(store_user_get(f->s, "alice@EXAMPLE.org", &u), 0);
	assert_string_equal(u.wrapped_dek, "wrapped-dek-of-alice");
	assert_int_equal(strlen(u.user_id), STORE_ID_HEX);
	for (i = 0; i < STORE_ID_HEX; i++)
		assert_non_null(strchr("0123456789abcdef", u.user_id[i]));
	assert_int_equal(u.quota_used, 0);
	assert_int_equal(u.mailboxes, 6);
	store_user_clear(&u);

	assert_int_equal(store_user_create(f->s, "ALICE@example.org", "x"),
	    ERR_EXISTS);
	assert_int_equal(store_user_get(f->s, U2, &u), ERR_NOTFOUND);
	assert_null(u.wrapped_dek);
	assert_int_equal(store_user_create(f->s, "no-at-sign", "x"),
	    ERR_INVAL);
	assert_int_equal(store_user_create(f->s, "a b@c.d", "x"), ERR_INVAL);
	assert_int_equal(store_user_create(f->s, U2, ""), ERR_INVAL);
	memset(big, 'k', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(store_user_create(f->s, U2, big), ERR_TOOBIG);
	big[STORE_WRAPPED_DEK_MAX] = '\0';
	assert_int_equal(store_user_create(f->s, U2, big), 0);
	assert_int_equal(store_user_get(f->s, U2, &u), 0);
	assert_string_equal(u.wrapped_dek, big);
	store_user_clear(&u);

	assert_int_equal(store_user_set_dek(f->s, U2, "rewrapped"), 0);
	assert_int_equal(store_user_set_quota(f->s, U2, 12345), 0);
	assert_int_equal(store_user_get(f->s, U2, &u), 0);
	assert_string_equal(u.wrapped_dek, "rewrapped");
	assert_int_equal(u.quota_limit, 12345);
	store_user_clear(&u);
	assert_int_equal(store_user_set_dek(f->s, "nobody@x.org", "k"),
	    ERR_NOTFOUND);
}

/* ------------------------------------------------------------ files */

static void
test_mailsrv_store__roundtrip(void **state)
{
	struct fx	*f = *state;
	unsigned char	 msg[70000], *got = NULL;
	size_t		 i, len;
	uint32_t	 uv, uid, uv2, uid2;

	/* every byte value, NULs included, and an incompressible tail */
	for (i = 0; i < sizeof(msg); i++)
		msg[i] = i < 512 ? (unsigned char)i :
		    (unsigned char)((i * 2654435761u) >> 13);
	assert_int_equal(store_deliver(f->s, U1, NULL, dek1, msg, sizeof(msg),
	    STORE_F_SEEN, 1700000000, &uv, &uid), 0);
	assert_int_equal(uid, 1);
	assert_true(uv > 0);
	read_eq(f, U1, "INBOX", uid, msg, sizeof(msg));
	/* one byte */
	assert_int_equal(store_deliver(f->s, U1, "inbox", dek1, "\0", 1, 0, 0,
	    &uv2, &uid2), 0);
	assert_int_equal(uv2, uv);
	assert_int_equal(uid2, 2);
	read_eq(f, U1, NULL, 2, "\0", 1);
	/* empty is not a message */
	assert_int_equal(store_deliver(f->s, U1, NULL, dek1, "", 0, 0, 0,
	    &uv2, &uid2), ERR_INVAL);
	assert_int_equal(store_read(f->s, U1, NULL, 99, dek1, &got, &len),
	    ERR_NOTFOUND);
	assert_null(got);
	assert_int_equal(store_deliver(f->s, U1, "Nope", dek1, "x", 1, 0, 0,
	    &uv2, &uid2), ERR_NOTFOUND);
	assert_int_equal(store_deliver(f->s, U2, NULL, dek1, "x", 1, 0, 0,
	    &uv2, &uid2), ERR_NOTFOUND);
	assert_int_equal(blob_count(f), 2);
}

/* A delivery id makes a repeated delivery a no-op with the first UID. */
static void
test_mailsrv_store__deliver_once(void **state)
{
	struct fx		*f = *state;
	struct store_status	 st;
	uint32_t		 uv, uid, uv2, uid2;
	char			 longid[STORE_DEDUP_MAX + 2];

	assert_int_equal(store_deliver_once(f->s, U1, NULL, dek1, "hello", 5,
	    0, "q1:0", &uv, &uid), 0);
	assert_int_equal(uid, 1);
	/* the same id again: nothing stored, the first UID reported */
	assert_int_equal(store_deliver_once(f->s, U1, NULL, dek1, "hello", 5,
	    0, "q1:0", &uv2, &uid2), ERR_EXISTS);
	assert_int_equal(uv2, uv);
	assert_int_equal(uid2, 1);
	/* another id is another delivery */
	assert_int_equal(store_deliver_once(f->s, U1, NULL, dek1, "hello", 5,
	    0, "q1:1", &uv2, &uid2), 0);
	assert_int_equal(uid2, 2);
	assert_int_equal(store_mailbox_status(f->s, U1, "INBOX", &st), 0);
	assert_int_equal(st.messages, 2);
	assert_int_equal(blob_count(f), 2);
	/* ids are bounded: STORE_DEDUP_MAX ok, one more refused */
	memset(longid, 'a', sizeof(longid));
	longid[STORE_DEDUP_MAX] = '\0';
	assert_int_equal(store_deliver_once(f->s, U1, NULL, dek1, "x", 1, 0,
	    longid, &uv2, &uid2), 0);
	longid[STORE_DEDUP_MAX] = 'a';
	longid[STORE_DEDUP_MAX + 1] = '\0';
	assert_int_equal(store_deliver_once(f->s, U1, NULL, dek1, "x", 1, 0,
	    longid, &uv2, &uid2), ERR_INVAL);
	assert_int_equal(store_deliver_once(f->s, U1, NULL, dek1, "x", 1, 0,
	    "", &uv2, &uid2), ERR_INVAL);
}

/*
 * A batch: each item its own result (a missing user, a repeated delivery
 * id within the batch, the quota reached by the batch's own items), one
 * file per stored message and none for the others.
 */
static void
test_mailsrv_store__deliver_many(void **state)
{
	struct fx		*f = *state;
	struct store_delivery	 d[6];
	struct store_user	 u;
	static const char *const msgs[] = { "one", "x", "two", "one",
	    "12345678", "abcdefgh" };
	static const char *const ids[] = { "b:0", "b:1", "b:2", "b:0", "b:4",
	    "b:5" };
	static const char *const who[] = { U1, U2, U1, U1, U1, U1 };
	size_t			 i;

	/* room for "one", "two" and one of the 8-byte messages */
	assert_int_equal(store_user_set_quota(f->s, U1, 3 + 3 + 8), 0);
	memset(d, 0, sizeof(d));
	for (i = 0; i < nitems(d); i++) {
		d[i].addr = who[i];
		d[i].dek = dek1;
		d[i].msg = msgs[i];
		d[i].len = strlen(msgs[i]);
		d[i].dedup = ids[i];
	}
	assert_int_equal(store_deliver_many(f->s, d, nitems(d)), 0);
	assert_int_equal(d[0].rc, 0);
	assert_int_equal(d[0].uid, 1);
	assert_int_equal(d[1].rc, ERR_NOTFOUND);
	assert_int_equal(d[2].rc, 0);
	assert_int_equal(d[2].uid, 2);
	assert_int_equal(d[3].rc, ERR_EXISTS);	/* b:0 again: uid 1 */
	assert_int_equal(d[3].uid, 1);
	assert_int_equal(d[3].uidvalidity, d[0].uidvalidity);
	assert_int_equal(d[4].rc, 0);
	assert_int_equal(d[4].uid, 3);
	assert_int_equal(d[5].rc, ERR_TOOBIG);
	read_eq(f, U1, NULL, 1, "one", 3);
	read_eq(f, U1, NULL, 2, "two", 3);
	read_eq(f, U1, NULL, 3, "12345678", 8);
	assert_int_equal(blob_count(f), 3);
	assert_int_equal(store_user_get(f->s, U1, &u), 0);
	assert_int_equal(u.quota_used, 14);
	store_user_clear(&u);

	/* the same batch again: every delivery done already */
	assert_int_equal(store_deliver_many(f->s, d, 3), 0);
	assert_int_equal(d[0].rc, ERR_EXISTS);
	assert_int_equal(d[0].uid, 1);
	assert_int_equal(d[2].rc, ERR_EXISTS);
	assert_int_equal(blob_count(f), 3);
	/* a delivery id is required; the batch size is bounded */
	d[0].dedup = NULL;
	assert_int_equal(store_deliver_many(f->s, d, 1), 0);
	assert_int_equal(d[0].rc, ERR_INVAL);
	assert_int_equal(store_deliver_many(f->s, d, STORE_BATCH_MAX + 1),
	    ERR_INVAL);
	assert_int_equal(store_deliver_many(f->s, d, 0), 0);
}

/* One batch that outgrows a small map: the transaction is retried. */
static void
test_mailsrv_store__deliver_many_growth(void **state)
{
	struct fx		*f = *state;
	struct store_opts	 o = { 16 * 1024, 256 * 1024 * 1024, -1, 0, 0 };
	struct store		*s = NULL;
	struct store_delivery	*d;
	struct store_status	 st;
	char			*dir, (*ids)[16];
	size_t			 i;

	xasprintf(&dir, "%s/small", f->dir);
	assert_int_equal(store_open(&s, dir, &o), 0);
	assert_int_equal(store_user_create(s, U1, "wrapped"), 0);
	d = xcalloc(STORE_BATCH_MAX, sizeof(*d));
	ids = xcalloc(STORE_BATCH_MAX, sizeof(*ids));
	for (i = 0; i < STORE_BATCH_MAX; i++) {
		snprintf(ids[i], sizeof(ids[i]), "g:%zu", i);
		d[i].addr = U1;
		d[i].dek = dek1;
		d[i].msg = "grow";
		d[i].len = 4;
		d[i].dedup = ids[i];
	}
	assert_int_equal(store_deliver_many(s, d, STORE_BATCH_MAX), 0);
	for (i = 0; i < STORE_BATCH_MAX; i++) {
		assert_int_equal(d[i].rc, 0);
		assert_int_equal(d[i].uid, i + 1);
	}
	assert_int_equal(store_mailbox_status(s, U1, NULL, &st), 0);
	assert_int_equal(st.messages, STORE_BATCH_MAX);
	store_close(&s);
	free(ids);
	free(d);
	free(dir);
}

/*
 * Delivery ids are forgotten once old (by time), in passes that go on
 * where the last one stopped; a forgotten id stores a new copy.
 */
static void
test_mailsrv_store__dedup_prune(void **state)
{
	struct fx		*f = *state;
	struct store_prune_pos	 pos;
	uint32_t		 uv, uid;
	int64_t			 now = (int64_t)time(NULL);
	int			 i, n, total = 0;

	memset(&pos, 0, sizeof(pos));
	assert_int_equal(store_deliver_once(f->s, U1, NULL, dek1, "a", 1, 0,
	    "p:0", &uv, &uid), 0);
	assert_int_equal(store_deliver_once(f->s, U1, NULL, dek1, "b", 1, 0,
	    "p:1", &uv, &uid), 0);
	/* recorded just now: kept */
	assert_int_equal(store_dedup_prune(f->s, now - 60, 100, &pos), 0);
	assert_int_equal(store_deliver_once(f->s, U1, NULL, dek1, "a", 1, 0,
	    "p:0", &uv, &uid), ERR_EXISTS);
	assert_int_equal(uid, 1);
	/* one record per pass: the second pass goes on from the first */
	memset(&pos, 0, sizeof(pos));
	for (i = 0; i < 4 && total < 2; i++) {
		assert_true((n = store_dedup_prune(f->s, now + 60, 1,
		    &pos)) >= 0);
		assert_true(n <= 1);
		total += n;
	}
	assert_int_equal(total, 2);
	assert_int_equal(i, 2);
	assert_int_equal(pos.len, 0);		/* the end: starts over */
	assert_int_equal(store_dedup_prune(f->s, now + 60, 100, &pos), 0);
	/* forgotten: the same id is a new delivery */
	assert_int_equal(store_deliver_once(f->s, U1, NULL, dek1, "a", 1, 0,
	    "p:0", &uv, &uid), 0);
	assert_int_equal(uid, 3);
	read_eq(f, U1, NULL, 1, "a", 1);
	read_eq(f, U1, NULL, 3, "a", 1);
}

/* ------------------------------------------------------------ durability */

static void
test_mailsrv_store__reopen(void **state)
{
	struct fx		*f = *state;
	struct store_status	 st;
	struct store_msginfo	*mi = NULL;
	struct store_flagres	 fr;
	struct store_flagop	 op = { STORE_FLAGS_ADD, STORE_F_FLAGGED,
				    (const char *[]){ "$Work" }, 1, 0, 0 };
	uint32_t		 uids[] = { 2 };
	size_t			 n;
	int			 i;

	for (i = 0; i < 3; i++)
		deliver(f, U1, NULL, dek1, "persistent message", NULL);
	assert_int_equal(store_set_flags(f->s, U1, NULL, uids, 1, &op, &fr),
	    0);
	store_flagres_free(&fr);
	assert_int_equal(store_mailbox_create(f->s, U1, "Kept/Deep", 0), 0);
	reopen(f, NULL);
	assert_int_equal(store_mailbox_status(f->s, U1, NULL, &st), 0);
	assert_int_equal(st.messages, 3);
	assert_int_equal(st.uidnext, 4);
	assert_int_equal(store_messages(f->s, U1, NULL, 1, UINT32_MAX, 0, &mi,
	    &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(mi[1].flags, STORE_F_FLAGGED);
	assert_int_equal(mi[1].keywords, 1);
	store_msginfo_free(&mi);
	assert_int_equal(store_mailbox_status(f->s, U1, "Kept/Deep", &st), 0);
	read_eq(f, U1, NULL, 3, "persistent message", 18);
}

/* ------------------------------------------------------------ uid rules */

static void
test_mailsrv_store__uid_rules(void **state)
{
	struct fx		*f = *state;
	struct store_status	 st, st2;
	uint32_t		 uv, uid, uv_sent, uv_old;
	uint64_t		 hms;

	assert_int_equal(store_mailbox_status(f->s, U1, NULL, &st), 0);
	assert_int_equal(st.uidnext, 1);
	assert_int_equal(st.messages, 0);
	assert_int_equal(st.recent, 0);
	hms = st.highestmodseq;
	assert_int_equal(store_mailbox_status(f->s, U1, "Sent", &st2), 0);
	uv_sent = st2.uidvalidity;
	assert_int_not_equal(st.uidvalidity, uv_sent);
	assert_int_equal(st2.special, STORE_SPECIAL_SENT);

	assert_int_equal(store_deliver(f->s, U1, NULL, dek1, "a", 1, 0, 0,
	    &uv, &uid), 0);
	assert_int_equal(uv, st.uidvalidity);
	assert_int_equal(uid, 1);
	assert_int_equal(store_deliver(f->s, U1, NULL, dek1, "b", 1, 0, 0,
	    &uv, &uid), 0);
	assert_int_equal(uid, 2);
	assert_int_equal(store_mailbox_status(f->s, U1, NULL, &st), 0);
	assert_int_equal(st.uidnext, 3);
	assert_true(st.highestmodseq >= hms + 2);
	assert_int_equal(st.size, 2);

	/* UIDs are never reused after an expunge */
	{
		struct store_flagop	op = { STORE_FLAGS_ADD,
					    STORE_F_DELETED, NULL, 0, 0, 0 };
		struct store_flagres	fr;
		uint32_t		u2[] = { 2 }, *ex = NULL;
		size_t			nex;

		assert_int_equal(store_set_flags(f->s, U1, NULL, u2, 1, &op,
		    &fr), 0);
		store_flagres_free(&fr);
		assert_int_equal(store_expunge(f->s, U1, NULL, NULL, 0, &ex,
		    &nex), 0);
		assert_int_equal(nex, 1);
		free(ex);
	}
	assert_int_equal(store_deliver(f->s, U1, NULL, dek1, "c", 1, 0, 0,
	    &uv, &uid), 0);
	assert_int_equal(uid, 3);

	/* DELETE + CREATE of a name: a new, larger UIDVALIDITY, UIDs anew */
	uv_old = uv_sent;
	deliver(f, U1, "Sent", dek1, "sent one", NULL);
	assert_int_equal(store_mailbox_delete(f->s, U1, "Sent"), 0);
	assert_int_equal(store_mailbox_create(f->s, U1, "Sent",
	    STORE_SPECIAL_SENT), 0);
	assert_int_equal(store_mailbox_status(f->s, U1, "Sent", &st2), 0);
	assert_true(st2.uidvalidity > uv_old);
	assert_int_equal(st2.uidnext, 1);
	assert_int_equal(st2.messages, 0);
	assert_int_equal(store_deliver(f->s, U1, "Sent", dek1, "x", 1, 0, 0,
	    &uv, &uid), 0);
	assert_int_equal(uid, 1);
	assert_int_equal(uv, st2.uidvalidity);
}

/* ------------------------------------------------------------ flags */

static void
set_flags(struct fx *f, const uint32_t *uids, size_t n, int mode,
    uint32_t flags, const char *const *kw, size_t nkw,
    struct store_flagres *fr)
{
	struct store_flagop	op;

	memset(&op, 0, sizeof(op));
	op.mode = mode;
	op.flags = flags;
	op.keywords = kw;
	op.nkeywords = nkw;
	assert_int_equal(store_set_flags(f->s, U1, NULL, uids, n, &op, fr),
	    0);
}

static void
test_mailsrv_store__flags_keywords(void **state)
{
	struct fx		*f = *state;
	struct store_flagres	 fr;
	struct store_status	 st;
	const char		*kw1[] = { "$Junk", "work" };
	const char		*kw2[] = { "WORK" };
	char			**names = NULL;
	uint32_t		 all[] = { 1, 2, 3 }, one[] = { 2 }, gap[] = {
				    1, 7 };
	uint64_t		 m1;
	size_t			 n, i;

	for (i = 0; i < 3; i++)
		deliver(f, U1, NULL, dek1, "flag me", NULL);
	assert_int_equal(store_mailbox_status(f->s, U1, NULL, &st), 0);
	assert_int_equal(st.unseen, 3);

	set_flags(f, all, 3, STORE_FLAGS_ADD, STORE_F_SEEN, kw1, 2, &fr);
	assert_int_equal(fr.nmsgs, 3);
	assert_true(fr.modseq > 0);
	m1 = fr.modseq;
	for (i = 0; i < 3; i++) {
		assert_int_equal(fr.msgs[i].flags, STORE_F_SEEN);
		assert_int_equal(fr.msgs[i].keywords, 3);
		assert_int_equal(fr.msgs[i].modseq, m1);
	}
	store_flagres_free(&fr);
	assert_int_equal(store_mailbox_keywords(f->s, U1, NULL, &names, &n),
	    0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "$Junk");
	assert_string_equal(names[1], "work");
	store_keywords_free(&names, n);
	assert_int_equal(store_mailbox_status(f->s, U1, NULL, &st), 0);
	assert_int_equal(st.unseen, 0);
	assert_int_equal(st.highestmodseq, m1);

	/* no-op: no new modseq */
	set_flags(f, all, 3, STORE_FLAGS_ADD, STORE_F_SEEN, NULL, 0, &fr);
	assert_int_equal(fr.modseq, 0);
	assert_int_equal(fr.nmsgs, 3);
	assert_int_equal(fr.msgs[0].modseq, m1);
	store_flagres_free(&fr);
	/* keywords are case-insensitive; remove; unknown UIDs skipped */
	set_flags(f, gap, 2, STORE_FLAGS_REMOVE, STORE_F_SEEN, kw2, 1, &fr);
	assert_int_equal(fr.nmsgs, 1);
	assert_int_equal(fr.msgs[0].uid, 1);
	assert_int_equal(fr.msgs[0].flags, 0);
	assert_int_equal(fr.msgs[0].keywords, 1);
	assert_true(fr.modseq > m1);
	store_flagres_free(&fr);
	set_flags(f, one, 1, STORE_FLAGS_REPLACE, STORE_F_DELETED |
	    STORE_F_DRAFT | STORE_F_ANSWERED, NULL, 0, &fr);
	assert_int_equal(fr.msgs[0].flags, STORE_F_DELETED | STORE_F_DRAFT |
	    STORE_F_ANSWERED);
	assert_int_equal(fr.msgs[0].keywords, 0);
	store_flagres_free(&fr);
	assert_int_equal(store_mailbox_status(f->s, U1, NULL, &st), 0);
	assert_int_equal(st.unseen, 2);
	assert_int_equal(st.deleted, 1);
}

/* Deliver three messages and mark them \Seen; returns that MODSEQ. */
static uint64_t
three_seen(struct fx *f)
{
	struct store_flagres	fr;
	uint64_t		m;
	int			i;

	for (i = 0; i < 3; i++)
		deliver(f, U1, NULL, dek1, "flag me", NULL);
	set_flags(f, (uint32_t[]){ 1, 2, 3 }, 3, STORE_FLAGS_ADD, STORE_F_SEEN,
	    NULL, 0, &fr);
	m = fr.modseq;
	store_flagres_free(&fr);
	return m;
}

static void
test_mailsrv_store__condstore(void **state)
{
	struct fx		*f = *state;
	struct store_flagres	 fr;
	struct store_flagop	 op;
	struct store_msginfo	*mi = NULL;
	uint32_t		 all[] = { 1, 2, 3 };
	uint64_t		 m1 = three_seen(f);
	size_t			 n;

	set_flags(f, (uint32_t[]){ 1, 2 }, 2, STORE_FLAGS_REMOVE, STORE_F_SEEN,
	    NULL, 0, &fr);
	store_flagres_free(&fr);
	/* CONDSTORE: CHANGEDSINCE and UNCHANGEDSINCE */
	assert_int_equal(store_messages(f->s, U1, NULL, 1, UINT32_MAX, m1,
	    &mi, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(mi[0].uid, 1);
	assert_int_equal(mi[1].uid, 2);
	store_msginfo_free(&mi);
	assert_int_equal(store_messages(f->s, U1, NULL, 2, 2, m1, &mi, &n), 0);
	assert_int_equal(n, 1);
	store_msginfo_free(&mi);
	memset(&op, 0, sizeof(op));
	op.mode = STORE_FLAGS_ADD;
	op.flags = STORE_F_FLAGGED;
	op.conditional = 1;
	op.unchangedsince = m1;
	assert_int_equal(store_set_flags(f->s, U1, NULL, all, 3, &op, &fr), 0);
	assert_int_equal(fr.nmodified, 2);
	assert_int_equal(fr.modified[0], 1);
	assert_int_equal(fr.modified[1], 2);
	assert_int_equal(fr.nmsgs, 1);
	assert_int_equal(fr.msgs[0].uid, 3);
	assert_int_equal(fr.msgs[0].flags, STORE_F_SEEN | STORE_F_FLAGGED);
	assert_true(fr.modseq > m1);
	store_flagres_free(&fr);
	/* UNCHANGEDSINCE 0 fails for every message */
	op.unchangedsince = 0;
	assert_int_equal(store_set_flags(f->s, U1, NULL, all, 3, &op, &fr), 0);
	assert_int_equal(fr.nmodified, 3);
	assert_int_equal(fr.nmsgs, 0);
	assert_int_equal(fr.modseq, 0);
	store_flagres_free(&fr);
}

static void
test_mailsrv_store__keyword_limits(void **state)
{
	struct fx		*f = *state;
	struct store_flagres	 fr;
	struct store_flagop	 op;
	struct store_msginfo	*mi = NULL;
	char			**names = NULL, kbuf[16];
	const char		*kp[1] = { kbuf };
	uint32_t		 all[] = { 1, 2, 3 }, one[] = { 2 };
	size_t			 n, i;

	(void)three_seen(f);
	set_flags(f, one, 1, STORE_FLAGS_ADD, 0, (const char *[]){ "k0",
	    "k1" }, 2, &fr);
	store_flagres_free(&fr);
	memset(&op, 0, sizeof(op));
	op.mode = STORE_FLAGS_ADD;
	/* bad arguments */
	op.flags = 0x100;
	assert_int_equal(store_set_flags(f->s, U1, NULL, all, 3, &op, &fr),
	    ERR_INVAL);
	op.flags = 0;
	assert_int_equal(store_set_flags(f->s, U1, NULL, (uint32_t[]){ 2, 1 },
	    2, &op, &fr), ERR_INVAL);
	op.keywords = (const char *[]){ "\\Seen" };
	op.nkeywords = 1;
	assert_int_equal(store_set_flags(f->s, U1, NULL, all, 3, &op, &fr),
	    ERR_INVAL);
	op.keywords = (const char *[]){ "has space" };
	assert_int_equal(store_set_flags(f->s, U1, NULL, all, 3, &op, &fr),
	    ERR_INVAL);

	/* keyword table: exactly STORE_KEYWORDS_MAX, then ERR_TOOBIG */
	for (i = 2; i < STORE_KEYWORDS_MAX; i++) {
		snprintf(kbuf, sizeof(kbuf), "kw%zu", i);
		set_flags(f, one, 1, STORE_FLAGS_ADD, 0, kp, 1, &fr);
		store_flagres_free(&fr);
	}
	assert_int_equal(store_mailbox_keywords(f->s, U1, NULL, &names, &n),
	    0);
	assert_int_equal(n, STORE_KEYWORDS_MAX);
	store_keywords_free(&names, n);
	snprintf(kbuf, sizeof(kbuf), "one-too-many");
	op.keywords = kp;
	assert_int_equal(store_set_flags(f->s, U1, NULL, one, 1, &op, &fr),
	    ERR_TOOBIG);
	/* removing an unknown keyword is a no-op, not an error */
	op.mode = STORE_FLAGS_REMOVE;
	assert_int_equal(store_set_flags(f->s, U1, NULL, one, 1, &op, &fr), 0);
	assert_int_equal(fr.modseq, 0);
	store_flagres_free(&fr);
	assert_int_equal(store_messages(f->s, U1, NULL, 2, 2, 0, &mi, &n), 0);
	assert_int_equal(mi[0].keywords, UINT64_MAX);
	store_msginfo_free(&mi);
}

/* APPEND with flags, keywords and an internal date. */
static void
test_mailsrv_store__append(void **state)
{
	struct fx		*f = *state;
	struct store_append	 a;
	struct store_msginfo	*mi = NULL;
	struct store_status	 st;
	const char		*kw[] = { "$Forwarded" };
	uint32_t		 uv, uid;
	size_t			 n;

	memset(&a, 0, sizeof(a));
	a.msg = "Subject: draft\r\n\r\n";
	a.len = strlen(a.msg);
	a.flags = STORE_F_DRAFT | STORE_F_SEEN;
	a.keywords = kw;
	a.nkeywords = 1;
	a.internaldate = 1234567890;
	assert_int_equal(store_append(f->s, U1, "Drafts", dek1, &a, &uv, &uid),
	    0);
	assert_int_equal(store_messages(f->s, U1, "Drafts", 1, UINT32_MAX, 0,
	    &mi, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(mi[0].uid, uid);
	assert_int_equal(mi[0].flags, STORE_F_DRAFT | STORE_F_SEEN);
	assert_int_equal(mi[0].keywords, 1);
	assert_int_equal(mi[0].internaldate, 1234567890);
	assert_int_equal(mi[0].size, a.len);
	assert_true(mi[0].saved > 1600000000);
	store_msginfo_free(&mi);
	assert_int_equal(store_mailbox_status(f->s, U1, "Drafts", &st), 0);
	assert_int_equal(st.unseen, 0);
	a.flags = 0x80;
	assert_int_equal(store_append(f->s, U1, "Drafts", dek1, &a, &uv, &uid),
	    ERR_INVAL);
	a.flags = 0;
	kw[0] = "bad(atom";
	assert_int_equal(store_append(f->s, U1, "Drafts", dek1, &a, &uv, &uid),
	    ERR_INVAL);
	assert_int_equal(blob_count(f), 1);
}

/* ------------------------------------------------------------ expunge */

static void
test_mailsrv_store__expunge_vanished(void **state)
{
	struct fx		*f = *state;
	struct store_flagres	 fr;
	struct store_status	 st;
	struct store_changes	 ch;
	uint32_t		 del[] = { 2, 3, 5 }, sub[] = { 3, 4, 5 };
	uint32_t		*ex = NULL, *van = NULL;
	size_t			 nex, nvan, i;
	uint64_t		 m0, m1, gen;

	for (i = 0; i < 6; i++)
		deliver(f, U1, NULL, dek1, "expunge me", NULL);
	assert_int_equal(blob_count(f), 6);
	assert_int_equal(store_mailbox_status(f->s, U1, NULL, &st), 0);
	m0 = st.highestmodseq;
	set_flags(f, del, 3, STORE_FLAGS_ADD, STORE_F_DELETED, NULL, 0, &fr);
	store_flagres_free(&fr);

	/* UID EXPUNGE 3:5 removes only the \Deleted among them */
	assert_int_equal(store_expunge(f->s, U1, NULL, sub, 3, &ex, &nex), 0);
	assert_int_equal(nex, 2);
	assert_int_equal(ex[0], 3);
	assert_int_equal(ex[1], 5);
	free(ex);
	assert_int_equal(store_mailbox_status(f->s, U1, NULL, &st), 0);
	m1 = st.highestmodseq;
	assert_int_equal(st.messages, 4);
	assert_int_equal(st.deleted, 1);
	assert_int_equal(blob_count(f), 4);
	/* EXPUNGE takes the rest */
	assert_int_equal(store_expunge(f->s, U1, NULL, NULL, 0, &ex, &nex), 0);
	assert_int_equal(nex, 1);
	assert_int_equal(ex[0], 2);
	free(ex);
	assert_int_equal(store_expunge(f->s, U1, NULL, NULL, 0, &ex, &nex), 0);
	assert_int_equal(nex, 0);
	free(ex);

	assert_int_equal(store_vanished(f->s, U1, NULL, m0, &van, &nvan), 0);
	assert_int_equal(nvan, 3);
	assert_int_equal(van[0], 2);
	assert_int_equal(van[1], 3);
	assert_int_equal(van[2], 5);
	free(van);
	assert_int_equal(store_vanished(f->s, U1, NULL, m1, &van, &nvan), 0);
	assert_int_equal(nvan, 1);
	assert_int_equal(van[0], 2);
	free(van);

	/* the poll: nothing changed since the current HIGHESTMODSEQ */
	assert_int_equal(store_mailbox_status(f->s, U1, NULL, &st), 0);
	assert_int_equal(store_changes(f->s, U1, NULL, st.highestmodseq, &ch),
	    0);
	assert_int_equal(ch.nchanged, 0);
	assert_int_equal(ch.nvanished, 0);
	assert_int_equal(ch.status.messages, 3);
	store_changes_free(&ch);
	gen = store_generation(f->s);
	assert_int_equal(store_vanished(f->s, U1, NULL, 0, &van, &nvan), 0);
	free(van);
	assert_int_equal(store_generation(f->s), gen);
	deliver(f, U1, NULL, dek1, "new one", NULL);
	assert_true(store_generation(f->s) > gen);
	assert_int_equal(store_changes(f->s, U1, NULL, m1, &ch), 0);
	assert_int_equal(ch.nvanished, 1);
	assert_int_equal(ch.nchanged, 1);
	assert_int_equal(ch.changed[0].uid, 7);
	assert_int_equal(ch.status.messages, 4);
	assert_int_equal(ch.status.uidnext, 8);
	store_changes_free(&ch);
	assert_int_equal(store_expunge(f->s, U1, NULL, (uint32_t[]){ 0 }, 1,
	    &ex, &nex), ERR_INVAL);
	/* UID EXPUNGE of an empty set removes nothing */
	set_flags(f, (uint32_t[]){ 7 }, 1, STORE_FLAGS_ADD, STORE_F_DELETED,
	    NULL, 0, &fr);
	store_flagres_free(&fr);
	assert_int_equal(store_expunge(f->s, U1, NULL, (uint32_t[]){ 1 }, 0,
	    &ex, &nex), 0);
	assert_int_equal(nex, 0);
	free(ex);
	assert_int_equal(blob_count(f), 4);
}

/* ------------------------------------------------------------ copy, move */

static void
test_mailsrv_store__copy_move(void **state)
{
	struct fx		*f = *state;
	struct store_copyuid	 cu;
	struct store_flagres	 fr;
	struct store_status	 st;
	struct store_user	 u;
	struct store_msginfo	*mi = NULL;
	const char		*kw[] = { "$Label1" };
	uint32_t		*ex = NULL, *van = NULL;
	size_t			 nex, nvan, n;
	uint64_t		 hms;

	deliver(f, U1, NULL, dek1, "shared body one", NULL);
	deliver(f, U1, NULL, dek1, "shared body two", NULL);
	set_flags(f, (uint32_t[]){ 1 }, 1, STORE_FLAGS_ADD, STORE_F_FLAGGED,
	    kw, 1, &fr);
	store_flagres_free(&fr);

	/* COPY 1,2,9 -> Archive: 9 does not exist */
	assert_int_equal(store_copy(f->s, U1, NULL, "Archive",
	    (uint32_t[]){ 1, 2, 9 }, 3, &cu), 0);
	assert_int_equal(cu.n, 2);
	assert_int_equal(cu.src[0], 1);
	assert_int_equal(cu.src[1], 2);
	assert_int_equal(cu.dst[0], 1);
	assert_int_equal(cu.dst[1], 2);
	assert_int_equal(store_mailbox_status(f->s, U1, "Archive", &st), 0);
	assert_int_equal(cu.uidvalidity, st.uidvalidity);
	assert_int_equal(st.messages, 2);
	assert_int_equal(st.size, 30);
	store_copyuid_free(&cu);
	assert_int_equal(blob_count(f), 2);	/* shared */
	assert_int_equal(store_user_get(f->s, U1, &u), 0);
	assert_int_equal(u.quota_used, 60);	/* counted per message */
	store_user_clear(&u);
	assert_int_equal(store_messages(f->s, U1, "Archive", 1, 1, 0, &mi,
	    &n), 0);
	assert_int_equal(mi[0].flags, STORE_F_FLAGGED);
	assert_int_equal(mi[0].keywords, 1);
	store_msginfo_free(&mi);

	/* expunge the originals: the copies still read */
	set_flags(f, (uint32_t[]){ 1, 2 }, 2, STORE_FLAGS_ADD,
	    STORE_F_DELETED, NULL, 0, &fr);
	store_flagres_free(&fr);
	assert_int_equal(store_expunge(f->s, U1, NULL, NULL, 0, &ex, &nex), 0);
	free(ex);
	assert_int_equal(blob_count(f), 2);
	read_eq(f, U1, "Archive", 1, "shared body one", 15);

	/* MOVE Archive 1 -> Trash: COPYUID, VANISHED in the source */
	assert_int_equal(store_mailbox_status(f->s, U1, "Archive", &st), 0);
	hms = st.highestmodseq;
	assert_int_equal(store_move(f->s, U1, "Archive", "Trash",
	    (uint32_t[]){ 1 }, 1, &cu), 0);
	assert_int_equal(cu.n, 1);
	assert_int_equal(cu.dst[0], 1);
	store_copyuid_free(&cu);
	assert_int_equal(store_vanished(f->s, U1, "Archive", hms, &van, &nvan),
	    0);
	assert_int_equal(nvan, 1);
	assert_int_equal(van[0], 1);
	free(van);
	assert_int_equal(blob_count(f), 2);
	assert_int_equal(store_user_get(f->s, U1, &u), 0);
	assert_int_equal(u.quota_used, 30);
	store_user_clear(&u);
	read_eq(f, U1, "Trash", 1, "shared body one", 15);

	/* MOVE within a mailbox gives new UIDs */
	assert_int_equal(store_move(f->s, U1, "Trash", "trash",
	    (uint32_t[]){ 1 }, 1, &cu), ERR_NOTFOUND);
	assert_int_equal(store_move(f->s, U1, "Trash", "Trash",
	    (uint32_t[]){ 1 }, 1, &cu), 0);
	assert_int_equal(cu.dst[0], 2);
	store_copyuid_free(&cu);
	assert_int_equal(store_mailbox_status(f->s, U1, "Trash", &st), 0);
	assert_int_equal(st.messages, 1);

	/* the last references go: the files go */
	assert_int_equal(store_mailbox_delete(f->s, U1, "Trash"), 0);
	assert_int_equal(blob_count(f), 1);
	assert_int_equal(store_mailbox_delete(f->s, U1, "Archive"), 0);
	assert_int_equal(blob_count(f), 0);
	assert_int_equal(store_user_get(f->s, U1, &u), 0);
	assert_int_equal(u.quota_used, 0);
	store_user_clear(&u);
	assert_int_equal(store_copy(f->s, U1, NULL, "Nope",
	    (uint32_t[]){ 1 }, 1, &cu), ERR_NOTFOUND);
}

/* An empty set copies nothing (NULL is not "all"). */
static void
test_mailsrv_store__copy_empty(void **state)
{
	struct fx		*f = *state;
	struct store_copyuid	 cu;
	struct store_status	 st;

	deliver(f, U1, NULL, dek1, "stays put", NULL);
	assert_int_equal(store_copy(f->s, U1, NULL, "Sent", NULL, 0, &cu), 0);
	assert_int_equal(cu.n, 0);
	assert_true(cu.uidvalidity > 0);
	store_copyuid_free(&cu);
	assert_int_equal(store_mailbox_status(f->s, U1, "Sent", &st), 0);
	assert_int_equal(st.messages, 0);
	assert_int_equal(store_copy(f->s, U1, NULL, "Sent", NULL, 1, &cu),
	    ERR_INVAL);
}

/* ------------------------------------------------------------ quota */

static void
test_mailsrv_store__quota(void **state)
{
	struct fx		*f = *state;
	struct store_copyuid	 cu;
	struct store_flagres	 fr;
	struct store_user	 u;
	char			 msg[101];
	uint32_t		 uv, uid, *ex = NULL;
	size_t			 nex;
	int			 i;

	memset(msg, 'q', 100);
	msg[100] = '\0';
	assert_int_equal(store_user_set_quota(f->s, U1, 350), 0);
	for (i = 0; i < 3; i++)
		deliver(f, U1, NULL, dek1, msg, NULL);
	assert_int_equal(store_deliver(f->s, U1, NULL, dek1, msg, 100, 0, 0,
	    &uv, &uid), ERR_TOOBIG);
	assert_int_equal(blob_count(f), 3);	/* nothing left behind */
	/* exactly up to the limit is fine */
	assert_int_equal(store_deliver(f->s, U1, NULL, dek1, msg, 50, 0, 0,
	    &uv, &uid), 0);
	assert_int_equal(store_copy(f->s, U1, NULL, "Archive",
	    (uint32_t[]){ 1 }, 1, &cu), ERR_TOOBIG);
	/* MOVE does not change usage */
	assert_int_equal(store_move(f->s, U1, NULL, "Archive",
	    (uint32_t[]){ 1 }, 1, &cu), 0);
	store_copyuid_free(&cu);
	assert_int_equal(store_user_get(f->s, U1, &u), 0);
	assert_int_equal(u.quota_used, 350);
	assert_int_equal(u.quota_limit, 350);
	store_user_clear(&u);
	set_flags(f, (uint32_t[]){ 2 }, 1, STORE_FLAGS_ADD, STORE_F_DELETED,
	    NULL, 0, &fr);
	store_flagres_free(&fr);
	assert_int_equal(store_expunge(f->s, U1, NULL, NULL, 0, &ex, &nex), 0);
	free(ex);
	deliver(f, U1, NULL, dek1, msg, NULL);
	/* the store-wide default applies when the user has none */
	assert_int_equal(store_user_set_quota(f->s, U1, 0), 0);
	reopen(f, &(struct store_opts){ .quota = 100, .zlevel = -1 });
	assert_int_equal(store_deliver(f->s, U1, NULL, dek1, "x", 1, 0, 0,
	    &uv, &uid), ERR_TOOBIG);
	reopen(f, NULL);
	deliver(f, U1, NULL, dek1, "x", NULL);
}

/* ------------------------------------------------------------ limits */

static void
test_mailsrv_store__msg_limits(void **state)
{
	struct fx	*f = *state;
	unsigned char	*big, *got = NULL;
	size_t		 len = 0;
	uint32_t	 uv, uid;

	big = xmalloc(STORE_MSG_MAX + 1);
	memset(big, 'M', STORE_MSG_MAX + 1);
	big[0] = '\0';
	big[STORE_MSG_MAX - 1] = 0xff;
	assert_int_equal(store_deliver(f->s, U1, NULL, dek1, big,
	    STORE_MSG_MAX + 1, 0, 0, &uv, &uid), ERR_TOOBIG);
	assert_int_equal(store_deliver(f->s, U1, NULL, dek1, big,
	    STORE_MSG_MAX, 0, 0, &uv, &uid), 0);
	assert_int_equal(store_read(f->s, U1, NULL, uid, dek1, &got, &len), 0);
	assert_int_equal(len, STORE_MSG_MAX);
	assert_memory_equal(got, big, STORE_MSG_MAX);
	free(got);
	/* a lower per-store limit, exactly and one over */
	reopen(f, &(struct store_opts){ .msg_max = 1000, .zlevel = 1 });
	assert_int_equal(store_deliver(f->s, U1, NULL, dek1, big, 1001, 0, 0,
	    &uv, &uid), ERR_TOOBIG);
	assert_int_equal(store_deliver(f->s, U1, NULL, dek1, big, 1000, 0, 0,
	    &uv, &uid), 0);
	/* messages stored under a higher limit stay readable */
	assert_int_equal(store_read(f->s, U1, NULL, 1, dek1, &got, &len), 0);
	assert_int_equal(len, STORE_MSG_MAX);
	free(got);
	free(big);
	assert_int_equal(blob_count(f), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_mailsrv_store__users),
		T(test_mailsrv_store__roundtrip),
		T(test_mailsrv_store__deliver_once),
		T(test_mailsrv_store__deliver_many),
		T(test_mailsrv_store__deliver_many_growth),
		T(test_mailsrv_store__dedup_prune),
		T(test_mailsrv_store__reopen),
		T(test_mailsrv_store__uid_rules),
		T(test_mailsrv_store__flags_keywords),
		T(test_mailsrv_store__condstore),
		T(test_mailsrv_store__keyword_limits),
		T(test_mailsrv_store__append),
		T(test_mailsrv_store__expunge_vanished),
		T(test_mailsrv_store__copy_move),
		T(test_mailsrv_store__copy_empty),
		T(test_mailsrv_store__quota),
		T(test_mailsrv_store__msg_limits),
#undef T
	};
	int	rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
