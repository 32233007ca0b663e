/*
 * test_mailsrv_store_files.c -- unit tests for the mail store's files at
 * rest and its index under stress (mailsrv/store).
 *
 * Purpose: no plaintext anywhere under the store; a wrong key, moved,
 * renamed, flipped and truncated files refused; the message file's
 * bounds; old delivery-id records; corrupt index records; map growth;
 * 4 threads delivering at once.  The fixture is store_fx.c.
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

#define MARKER	"Zebra-Marker-7d1f3c"

static void
test_mailsrv_store__no_plaintext(void **state)
{
	struct fx	*f = *state;
	char		 msg[8192];
	int		 files = 0, hits = 0, i;

	snprintf(msg, sizeof(msg), "Subject: " MARKER "\r\nFrom: "
	    "someone@example.org\r\n\r\n");
	for (i = 0; i < 40; i++)
		strlcat(msg, MARKER " body line\r\n", sizeof(msg));
	for (i = 0; i < 5; i++)
		deliver(f, U1, i % 2 ? "Sent" : NULL, dek1, msg, NULL);
	/* level 0 stores deflate blocks uncompressed: still encrypted */
	reopen(f, &(struct store_opts){ .zlevel = 0 });
	deliver(f, U1, NULL, dek1, msg, NULL);
	store_close(&f->s);
	walk(f->dir, MARKER, &files, &hits);
	assert_true(files >= 7);	/* 6 blobs + data.mdb + lock.mdb */
	assert_int_equal(hits, 0);
	assert_int_equal(store_open(&f->s, f->dir, NULL), 0);
	read_eq(f, U1, NULL, 4, msg, strlen(msg));
}

static void
test_mailsrv_store__wrong_dek(void **state)
{
	struct fx	*f = *state;
	unsigned char	*got = NULL;
	size_t		 len = 0;
	uint32_t	 uid;

	deliver(f, U1, NULL, dek1, "Subject: hi\r\n\r\nbody\r\n", &uid);
	assert_int_equal(store_read(f->s, U1, NULL, uid, dek2, &got, &len),
	    ERR_PERM);
	assert_null(got);
	assert_int_equal(len, 0);
	assert_int_equal(store_read(f->s, U1, NULL, uid, NULL, &got, &len),
	    ERR_INVAL);
}

static void
copy_file(const char *from, const char *to)
{
	char	*data;
	size_t	 len;

	assert_int_equal(file_read_all(&data, &len, from, 1 << 30), 0);
	assert_int_equal(file_write_atomic(to, data, len, 0600), 0);
	free(data);
}

static void
test_mailsrv_store__moved_file(void **state)
{
	struct fx		*f = *state;
	unsigned char		*got = NULL;
	size_t			 len = 0;
	char			*pa, *pb, *pc;
	struct store_user	 u1;
	char			*dir1, *moved;

	assert_int_equal(store_user_create(f->s, U2, "wrapped-bob"), 0);
	deliver(f, U1, NULL, dek1, "message A", NULL);
	pa = only_blob(f, U1);
	assert_int_equal(store_mailbox_create(f->s, U1, "Other", 0), 0);
	deliver(f, U2, NULL, dek1, "message C", NULL);
	pc = only_blob(f, U2);
	/* B in a fresh user-dir listing: remove A's path from the walk */
	deliver(f, U1, "Other", dek1, "message B", NULL);
	read_eq(f, U1, "Other", 1, "message B", 9);

	/* find B's path: the file in U1's dir that is not A */
	assert_int_equal(store_user_get(f->s, U1, &u1), 0);
	xasprintf(&dir1, "%s/blobs/%.2s/%s", f->dir, u1.user_id, u1.user_id);
	{
		DIR		*d = opendir(dir1);
		struct dirent	*de;

		pb = NULL;
		assert_non_null(d);
		while ((de = readdir(d)) != NULL) {
			char	*p;

			if (de->d_name[0] == '.')
				continue;
			p = path_join(dir1, de->d_name);
			if (strcmp(p, pa) != 0)
				pb = p;
			else
				free(p);
		}
		closedir(d);
	}
	assert_non_null(pb);

	/* A's file under B's name: same user, other blob id */
	copy_file(pa, pb);
	assert_int_equal(store_read(f->s, U1, "Other", 1, dek1, &got, &len),
	    ERR_PERM);
	/* C (bob's, same key here) moved into alice's dir under B's name */
	copy_file(pc, pb);
	assert_int_equal(store_read(f->s, U1, "Other", 1, dek1, &got, &len),
	    ERR_PERM);
	/* bob's own file is fine; alice's A too */
	read_eq(f, U2, NULL, 1, "message C", 9);
	read_eq(f, U1, NULL, 1, "message A", 9);
	/* a missing file is ERR_IO (the index still names it) */
	assert_int_equal(unlink(pb), 0);
	assert_int_equal(store_read(f->s, U1, "Other", 1, dek1, &got, &len),
	    ERR_IO);
	/* a file renamed into another name in bob's dir */
	xasprintf(&moved, "%s.moved", pc);
	assert_int_equal(rename(pc, moved), 0);
	assert_int_equal(store_read(f->s, U2, NULL, 1, dek1, &got, &len),
	    ERR_IO);
	free(moved);
	store_user_clear(&u1);
	free(dir1);
	free(pa);
	free(pb);
	free(pc);
}

static void
test_mailsrv_store__tamper(void **state)
{
	struct fx	*f = *state;
	unsigned char	*got = NULL;
	char		*p, *orig, *data;
	size_t		 olen, len, i;
	int		 rc;

	deliver(f, U1, NULL, dek1, "Subject: tamper\r\n\r\nline\r\n", NULL);
	p = only_blob(f, U1);
	assert_int_equal(file_read_all(&orig, &olen, p, 1 << 20), 0);
	data = xmalloc(olen);
	/* every single-byte change, header and tag included, fails */
	for (i = 0; i < olen; i++) {
		memcpy(data, orig, olen);
		data[i] ^= 0x01;
		assert_int_equal(file_write_atomic(p, data, olen, 0600), 0);
		rc = store_read(f->s, U1, NULL, 1, dek1, &got, &len);
		assert_true(rc == ERR_PERM || rc == ERR_IO);
		if (i >= MSGFILE_HDR_LEN)
			assert_int_equal(rc, ERR_PERM);
		assert_null(got);
	}
	/* every truncation, and one extra byte */
	for (i = 0; i < olen; i++) {
		assert_int_equal(file_write_atomic(p, orig, i, 0600), 0);
		rc = store_read(f->s, U1, NULL, 1, dek1, &got, &len);
		assert_true(rc == ERR_PERM || rc == ERR_IO);
	}
	memcpy(data, orig, olen);
	data = xreallocarray(data, olen + 1, 1);
	data[olen] = 'x';
	assert_int_equal(file_write_atomic(p, data, olen + 1, 0600), 0);
	assert_int_equal(store_read(f->s, U1, NULL, 1, dek1, &got, &len),
	    ERR_IO);
	assert_int_equal(file_write_atomic(p, orig, olen, 0600), 0);
	read_eq(f, U1, NULL, 1, "Subject: tamper\r\n\r\nline\r\n", 25);
	free(data);
	free(orig);
	free(p);
}

static void
test_mailsrv_store__msgfile_bounds(void **state)
{
	unsigned char	*file = NULL, *out = NULL;
	size_t		 flen = 0, olen = 0;
	const char	*uid = "00112233445566778899aabbccddeeff";
	const char	*bid = "ffeeddccbbaa99887766554433221100";

	(void)state;
	assert_int_equal(msgfile_seal(&file, &flen, uid, bid, dek1, "hello",
	    5, 6, 5), 0);
	assert_int_equal(memcmp(file, "AMS1", 4), 0);
	assert_int_equal(file[4], MSGFILE_VERSION);
	/* a file larger than the reader's limit is malformed */
	assert_int_equal(msgfile_open(&out, &olen, uid, bid, dek1, file, flen,
	    4), ERR_IO);
	free(file);
	assert_int_equal(msgfile_seal(&file, &flen, uid, bid, dek1, "hello",
	    5, 6, 4), ERR_TOOBIG);
	assert_null(file);
	assert_int_equal(msgfile_seal(&file, &flen, uid, bid, dek1, "hello",
	    5, 9, 5), 0);
	/* wrong blob id or user id in the AAD */
	assert_int_equal(msgfile_open(&out, &olen, bid, bid, dek1, file, flen,
	    5), ERR_PERM);
	free(file);
	assert_int_equal(msgfile_seal(&file, &flen, uid, bid, dek1, "hello",
	    5, 1, 5), 0);
	assert_int_equal(msgfile_open(&out, &olen, uid, uid, dek1, file, flen,
	    5), ERR_PERM);
	free(file);
	assert_int_equal(msgfile_seal(&file, &flen, uid, bid, dek1, "hello",
	    5, 0, 5), 0);
	assert_int_equal(msgfile_open(&out, &olen, uid, bid, dek1, file, flen,
	    5), 0);
	assert_int_equal(olen, 5);
	assert_memory_equal(out, "hello", 5);
	free(out);
	free(file);
}

/* ------------------------------------------------------------ corrupt index */

struct poke {
	MDB_dbi		 dbi;
	int		 mode;	/* 0: truncate every record, 1: bad version */
};

static int
poke_fn(MDB_txn *txn, void *arg)
{
	struct poke	*p = arg;
	MDB_cursor	*cur;
	MDB_val		 k, v;
	unsigned char	 keys[64][600], vals[64][8192];
	size_t		 klen[64], vlen[64], n = 0, i;
	int		 rc;

	/* copy first: k and v point into pages that a put may move */
	assert_int_equal(mdb_cursor_open(txn, p->dbi, &cur), 0);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		assert_true(n < 64 && k.mv_size <= sizeof(keys[0]) &&
		    v.mv_size <= sizeof(vals[0]) && v.mv_size > 1);
		memcpy(keys[n], k.mv_data, k.mv_size);
		memcpy(vals[n], v.mv_data, v.mv_size);
		klen[n] = k.mv_size;
		vlen[n] = v.mv_size;
		n++;
	}
	mdb_cursor_close(cur);
	for (i = 0; i < n; i++) {
		k.mv_data = keys[i];
		k.mv_size = klen[i];
		v.mv_data = vals[i];
		/* 0: one byte short; 2: the first 8 bytes (an older
		 * version's delivery id record) */
		v.mv_size = p->mode == 0 ? vlen[i] - 1 : p->mode == 2 ? 8 :
		    vlen[i];
		if (p->mode == 1)
			vals[i][0] = 9;
		assert_int_equal(mdb_put(txn, p->dbi, &k, &v, 0), 0);
	}
	return 0;
}

static void
poke_db(struct fx *f, const char *name, int mode)
{
	struct db_env	*env = NULL;
	struct poke	 p;
	char		*idx = path_join(f->dir, "index");

	store_close(&f->s);
	assert_int_equal(db_open(&env, idx, 1 << 20, 1 << 30, 16), 0);
	assert_int_equal(db_dbi(env, name, 0, &p.dbi), 0);
	p.mode = mode;
	assert_int_equal(db_write(env, poke_fn, &p), 0);
	db_close(&env);
	free(idx);
	assert_int_equal(store_open(&f->s, f->dir, NULL), 0);
}

/* A delivery id of an older version (no time) ages from the first pass. */
static void
test_mailsrv_store__dedup_prune_old(void **state)
{
	struct fx		*f = *state;
	struct store_prune_pos	 pos;
	uint32_t		 uv, uid;
	int64_t			 now = (int64_t)time(NULL);

	assert_int_equal(store_deliver_once(f->s, U1, NULL, dek1, "o", 1, 0,
	    "old:0", &uv, &uid), 0);
	poke_db(f, "dedup", 2);
	assert_int_equal(store_deliver_once(f->s, U1, NULL, dek1, "o", 1, 0,
	    "old:0", &uv, &uid), ERR_EXISTS);
	assert_int_equal(uid, 1);
	memset(&pos, 0, sizeof(pos));
	assert_int_equal(store_dedup_prune(f->s, now + 60, 100, &pos), 0);
	assert_int_equal(store_deliver_once(f->s, U1, NULL, dek1, "o", 1, 0,
	    "old:0", &uv, &uid), ERR_EXISTS);
	assert_int_equal(store_dedup_prune(f->s, now + 60, 100, &pos), 1);
}

static void
test_mailsrv_store__corrupt_index(void **state)
{
	struct fx		*f = *state;
	struct store_msginfo	*mi = NULL;
	struct store_status	 st;
	struct store_user	 u;
	unsigned char		*got = NULL;
	size_t			 n, len;

	deliver(f, U1, NULL, dek1, "index me", NULL);
	poke_db(f, "msgs", 0);
	assert_int_equal(store_messages(f->s, U1, NULL, 1, UINT32_MAX, 0, &mi,
	    &n), ERR_IO);
	assert_null(mi);
	assert_int_equal(store_read(f->s, U1, NULL, 1, dek1, &got, &len),
	    ERR_IO);
	poke_db(f, "mboxes", 1);
	assert_int_equal(store_mailbox_status(f->s, U1, NULL, &st), ERR_IO);
	poke_db(f, "mboxes", 0);
	assert_int_equal(store_mailbox_status(f->s, U1, NULL, &st), ERR_IO);
	poke_db(f, "users", 0);
	assert_int_equal(store_user_get(f->s, U1, &u), ERR_IO);
	assert_null(u.wrapped_dek);
}

/*
 * A map that starts tiny: db_write() grows it and reruns transactions,
 * which must then give the same results (callbacks are idempotent).
 */
static void
test_mailsrv_store__map_growth(void **state)
{
	struct fx		*f = *state;
	struct store_opts	 o = { 16 * 1024, 256 * 1024 * 1024, -1, 0, 0 };
	struct store		*s = NULL;
	struct store_status	 st;
	struct store_user	 u;
	struct store_copyuid	 cu;
	struct stat		 sb;
	uint32_t		 uids[300], uv, *ex = NULL;
	char			*dir, *data, name[32];
	size_t			 i, nex;

	xasprintf(&dir, "%s/small", f->dir);
	assert_int_equal(store_open(&s, dir, &o), 0);
	assert_int_equal(store_user_create(s, U1, "wrapped"), 0);
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "Folder/%03zu", i);
		assert_int_equal(store_mailbox_create(s, U1, name, 0), 0);
	}
	for (i = 0; i < nitems(uids); i++)
		assert_int_equal(store_deliver(s, U1, NULL, dek1, "grow", 4,
		    STORE_F_DELETED, 0, &uv, &uids[i]), 0);
	assert_int_equal(store_copy(s, U1, NULL, "Folder/007", uids,
	    nitems(uids), &cu), 0);
	assert_int_equal(cu.n, nitems(uids));
	store_copyuid_free(&cu);
	assert_int_equal(store_expunge(s, U1, NULL, NULL, 0, &ex, &nex), 0);
	assert_int_equal(nex, nitems(uids));
	free(ex);
	assert_int_equal(store_mailbox_status(s, U1, "Folder/007", &st), 0);
	assert_int_equal(st.messages, nitems(uids));
	assert_int_equal(st.deleted, nitems(uids));
	assert_int_equal(st.size, 4 * nitems(uids));
	assert_int_equal(store_user_get(s, U1, &u), 0);
	assert_int_equal(u.quota_used, 4 * nitems(uids));
	assert_int_equal(u.mailboxes, 6 + 1 + 100);
	store_user_clear(&u);
	store_close(&s);
	xasprintf(&data, "%s/index/data.mdb", dir);
	assert_int_equal(stat(data, &sb), 0);
	assert_true(sb.st_size > 16 * 1024);
	free(data);
	free(dir);
}

/* ------------------------------------------------------------ threads */

#define NTHREADS	4
#define PER_THREAD	250

struct worker {
	struct store	*s;
	int		 id;
	int		 fails;
	uint32_t	 uids[PER_THREAD];
};

static void *
deliver_thread(void *arg)
{
	struct worker	*w = arg;
	char		 msg[128];
	uint32_t	 uv;
	int		 i, n;

	for (i = 0; i < PER_THREAD; i++) {
		n = snprintf(msg, sizeof(msg), "From: t%d\r\n\r\nmsg %d\r\n",
		    w->id, i);
		if (store_deliver(w->s, U1, NULL, dek1, msg, (size_t)n, 0, 0,
		    &uv, &w->uids[i]) != 0)
			w->fails++;
	}
	return NULL;
}

static void *
poll_thread(void *arg)
{
	struct worker		*w = arg;
	struct store_changes	 ch;
	uint64_t		 since = 0;
	int			 i;

	for (i = 0; i < 200; i++) {
		if (store_changes(w->s, U1, NULL, since, &ch) != 0) {
			w->fails++;
			break;
		}
		since = ch.status.highestmodseq;
		store_changes_free(&ch);
	}
	return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void
test_mailsrv_store__concurrent_deliver(void **state)
{
	struct fx		*f = *state;
	struct worker		 w[NTHREADS + 1];
	pthread_t		 th[NTHREADS + 1];
	uint32_t		 all[NTHREADS * PER_THREAD];
	struct store_status	 st;
	struct store_user	 u;
	struct store_msginfo	*mi = NULL;
	uint64_t		 size = 0;
	size_t			 i, n;
	int			 t;

	memset(w, 0, sizeof(w));
	for (t = 0; t <= NTHREADS; t++) {
		w[t].s = f->s;
		w[t].id = t;
		assert_int_equal(pthread_create(&th[t], NULL, t < NTHREADS ?
		    deliver_thread : poll_thread, &w[t]), 0);
	}
	for (t = 0; t <= NTHREADS; t++) {
		assert_int_equal(pthread_join(th[t], NULL), 0);
		assert_int_equal(w[t].fails, 0);
	}
	for (t = 0; t < NTHREADS; t++)
		memcpy(all + t * PER_THREAD, w[t].uids, sizeof(w[t].uids));
	qsort(all, nitems(all), sizeof(all[0]), cmp_u32);
	for (i = 0; i < nitems(all); i++)
		assert_int_equal(all[i], i + 1);
	assert_int_equal(store_mailbox_status(f->s, U1, NULL, &st), 0);
	assert_int_equal(st.messages, NTHREADS * PER_THREAD);
	assert_int_equal(st.unseen, NTHREADS * PER_THREAD);
	assert_int_equal(st.uidnext, NTHREADS * PER_THREAD + 1);
	assert_int_equal(store_messages(f->s, U1, NULL, 1, UINT32_MAX, 0, &mi,
	    &n), 0);
	assert_int_equal(n, NTHREADS * PER_THREAD);
	for (i = 0; i < n; i++) {
		assert_int_equal(mi[i].uid, i + 1);
		size += mi[i].size;
	}
	store_msginfo_free(&mi);
	assert_int_equal(st.size, size);
	assert_int_equal(store_user_get(f->s, U1, &u), 0);
	assert_int_equal(u.quota_used, size);
	store_user_clear(&u);
	assert_int_equal(blob_count(f), NTHREADS * PER_THREAD);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_mailsrv_store__dedup_prune_old),
		T(test_mailsrv_store__no_plaintext),
		T(test_mailsrv_store__wrong_dek),
		T(test_mailsrv_store__moved_file),
		T(test_mailsrv_store__tamper),
		cmocka_unit_test(test_mailsrv_store__msgfile_bounds),
		T(test_mailsrv_store__corrupt_index),
		T(test_mailsrv_store__map_growth),
		T(test_mailsrv_store__concurrent_deliver),
#undef T
	};
	int	rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
