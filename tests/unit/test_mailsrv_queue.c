/*
 * test_mailsrv_queue.c -- unit tests for the durable mail queue.
 *
 * Purpose: check queue.h's contract: byte-exact round trips (empty,
 * 8-bit and NUL bytes, 1 MiB), no plaintext on disk, sealed envelopes,
 * group commit (200 commits in one loop turn make a handful of batches,
 * every callback once, never inside queue_commit), both sync modes, the
 * schedule order, update and remove (files kept as spares), aborted
 * writers, the size limit at max and max+1, envelope checks, concurrent
 * readers.  Tampering, a wrong key, recovery, the open lock and SIGKILL
 * safety are in test_mailsrv_queue_recover.c; the fixture is queue_fx.c.
 * Runs in: the unit test binary only; each test gets a mkdtemp()
 * directory that it removes.
 * Failure policy: cmocka assertions.
 * SECURITY: the plaintext and sealed-envelope tests are the point.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <event2/event.h>
#include <jansson.h>
#include <lmdb.h>
#include <openssl/rand.h>

#include "common/db.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mailsrv/queue/queue.h"
#include "tests/unit/queue_fx.h"

#define MANY		200
#define MARKER		"AMANAT-PLAINTEXT-MARKER-5f3a9c"

static void
test_mailsrv_queue__id_ok(void **state)
{
	struct fx		*fx = *state;
	struct queue_writer	*w;
	char			 ids[64][QUEUE_ID_LEN + 1], now[9];
	int			 i, j;

	assert_true(queue_id_ok("0123456789abcdef0123"));
	assert_false(queue_id_ok("0123456789abcdef012"));
	assert_false(queue_id_ok("0123456789abcdef01234"));
	assert_false(queue_id_ok("0123456789ABCDEF0123"));
	assert_false(queue_id_ok("0123456789abcdef012g"));
	assert_false(queue_id_ok("../456789abcdef01234"));
	assert_false(queue_id_ok(""));
	assert_false(queue_id_ok(NULL));

	fx_open(fx);
	snprintf(now, sizeof(now), "%08x", (unsigned)time(NULL));
	for (i = 0; i < 64; i++) {
		struct queue_env	env;
		struct queue_rcpt	r[2];
		struct done		d;

		env_init(&env, r);
		memset(&d, 0, sizeof(d));
		assert_int_equal(queue_writer_new(fx->q, &w), 0);
		assert_int_equal(queue_commit(&w, &env, commit_cb, &d), 0);
		run_until(fx, &d.calls, 1);
		assert_int_equal(d.rc, 0);
		memcpy(ids[i], d.id, sizeof(ids[i]));
		/* time-ordered prefix (the clock may tick once) */
		assert_true(strncmp(ids[i], now, 8) >= 0);
		for (j = 0; j < i; j++)
			assert_string_not_equal(ids[i], ids[j]);
	}
}

static const unsigned char tkey[QUEUE_KEY_LEN] = { 0x42, 0x17 };

/*
 * Envelopes are sealed: no address in the record, bound to the key and
 * to their id, altered bytes refused.
 */
static void
test_mailsrv_queue__env_sealed(void **state)
{
	struct queue_env	 env, *got = NULL;
	struct queue_rcpt	 r[2];
	unsigned char		 other[QUEUE_KEY_LEN] = { 0x43 };
	char			*p = NULL;
	size_t			 n = 0, i;

	(void)state;
	env_init(&env, r);
	memcpy(env.id, "00000001aaaaaaaaaaaa", QUEUE_ID_LEN + 1);
	assert_int_equal(queue__env_encode(&env, tkey, &p, &n), 0);
	assert_null(memmem(p, n, env.sender, strlen(env.sender)));
	assert_null(memmem(p, n, r[0].addr, strlen(r[0].addr)));
	assert_int_equal(queue__env_decode(&got, env.id, tkey, p, n), 0);
	assert_string_equal(got->sender, env.sender);
	queue_env_free(&got);
	assert_int_equal(queue__env_decode(&got, env.id, other, p, n),
	    ERR_PERM);
	assert_int_equal(queue__env_decode(&got, "00000001aaaaaaaaaaab",
	    tkey, p, n), ERR_PERM);
	/* the magic fails the format check, anything else the tag */
	for (i = 0; i < n; i++) {
		p[i] ^= 0x01;
		assert_int_equal(queue__env_decode(&got, env.id, tkey, p, n),
		    i < 4 ? ERR_IO : ERR_PERM);
		assert_null(got);
		p[i] ^= 0x01;
	}
	assert_int_equal(queue__env_decode(&got, env.id, tkey, p, n - 1),
	    ERR_PERM);
	assert_int_equal(queue__env_decode(&got, env.id, tkey, p, 3),
	    ERR_IO);
	free(p);
	/* the plain JSON of older versions is not accepted as sealed */
	assert_int_equal(queue__env_encode_json(&env, &p, &n), 0);
	assert_int_equal(queue__env_decode(&got, env.id, tkey, p, n),
	    ERR_IO);
	assert_int_equal(queue__env_decode_legacy(&got, env.id, p, n), 0);
	queue_env_free(&got);
	free(p);
}

/* The per-recipient "delay report sent" mark survives encoding. */
static void
test_mailsrv_queue__delayed_mark(void **state)
{
	struct queue_env	 env, *got = NULL;
	struct queue_rcpt	 r[2];
	char			*p = NULL;
	size_t			 n = 0;

	env_init(&env, r);
	memcpy(env.id, "00000001aaaaaaaaaaaa", QUEUE_ID_LEN + 1);
	assert_int_equal(queue__env_encode_json(&env, &p, &n), 0);
	assert_null(strstr(p, "delayed"));	/* absent when unset */
	free(p);
	assert_int_equal(queue__env_encode(&env, tkey, &p, &n), 0);
	assert_int_equal(queue__env_decode(&got, env.id, tkey, p, n), 0);
	assert_int_equal(got->rcpts[1].delayed, 0);
	queue_env_free(&got);
	free(p);
	r[1].delayed = 1;
	assert_int_equal(queue__env_encode(&env, tkey, &p, &n), 0);
	assert_int_equal(queue__env_decode(&got, env.id, tkey, p, n), 0);
	assert_int_equal(got->rcpts[0].delayed, 0);
	assert_int_equal(got->rcpts[1].delayed, 1);
	queue_env_free(&got);
	free(p);
}

static void
test_mailsrv_queue__roundtrip(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env, *got = NULL;
	struct queue_rcpt	 r[2];
	static const unsigned char bin[] = "x\0y\r\n\xff\xfe\x80\0\0.\r\n";
	unsigned char		*big;
	char			 id0[QUEUE_ID_LEN + 1], id1[QUEUE_ID_LEN + 1];
	char			 id2[QUEUE_ID_LEN + 1], id3[QUEUE_ID_LEN + 1];
	char			 id4[QUEUE_ID_LEN + 1], id5[QUEUE_ID_LEN + 1];
	size_t			 biglen = 1024 * 1024, i;

	fx_open(fx);
	env_init(&env, r);
	big = xmalloc(biglen);
	assert_int_equal(RAND_bytes(big, (int)(biglen / 2)), 1);
	for (i = biglen / 2; i < biglen; i++)	/* half random, half text */
		big[i] = "Subject: \0\xe9t\xe9\r\n"[i % 16];

	assert_int_equal(commit_msg(fx, "", 0, &env, id0), 0);
	assert_int_equal(commit_msg(fx, "Z", 1, &env, id1), 0);
	assert_int_equal(commit_msg(fx, bin, sizeof(bin), &env, id2), 0);
	assert_int_equal(commit_msg(fx, big, biglen, &env, id3), 0);
	/* kept in memory up to 256 KiB, streamed to the file beyond */
	assert_int_equal(commit_msg(fx, big, 256 * 1024, &env, id4), 0);
	assert_int_equal(commit_msg(fx, big, 256 * 1024 + 1, &env, id5), 0);
	assert_read(fx, id4, big, 256 * 1024);
	assert_read(fx, id5, big, 256 * 1024 + 1);
	assert_false(cb_inside);
	assert_false(cb_off_loop);
	assert_read(fx, id0, "", 0);
	assert_read(fx, id1, "Z", 1);
	assert_read(fx, id2, bin, sizeof(bin));
	assert_read(fx, id3, big, biglen);

	assert_int_equal(queue_get(fx->q, id3, &got), 0);
	assert_string_equal(got->id, id3);
	assert_string_equal(got->sender, "alice@example.org");
	assert_string_equal(got->helo, "client.example");
	assert_string_equal(got->peer, "192.0.2.1");
	assert_null(got->auth);
	assert_string_equal(got->envid, "env-1");
	assert_int_equal(got->body_8bit, 1);
	assert_int_equal(got->ret_full, 0);
	assert_int_equal(got->created, 1700000000);
	assert_int_equal(got->next_try, 1700000000);
	assert_int_equal(got->size, biglen);
	assert_int_equal(got->nrcpts, 2);
	assert_string_equal(got->rcpts[0].addr, "bob@example.org");
	assert_int_equal(got->rcpts[0].local, 1);
	assert_string_equal(got->rcpts[0].dept, "sales");
	assert_null(got->rcpts[0].orcpt);
	assert_string_equal(got->rcpts[1].orcpt, "rfc822;carol@example.net");
	assert_int_equal(got->rcpts[1].notify,
	    QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY);
	assert_int_equal(got->rcpts[1].state, QUEUE_RCPT_PENDING);
	queue_env_free(&got);
	assert_null(got);
	queue_env_free(&got);

	/* and after a reopen */
	fx_reopen(fx);
	assert_int_equal(queue_count(fx->q), 6);
	assert_read(fx, id2, bin, sizeof(bin));
	assert_read(fx, id3, big, biglen);
	assert_int_equal(fx_count_tmp(fx), 0);
	free(big);
}

/* 1 if needle occurs in any file under dir. */
static int
grep_tree(const char *dir, const char *needle)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	char		*p, *data;
	size_t		 len, nlen = strlen(needle);
	int		 found = 0;

	if ((d = opendir(dir)) == NULL)
		return 0;
	while (!found && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		p = path_join(dir, de->d_name);
		if (lstat(p, &st) == -1)
			fail_msg("lstat %s", p);
		if (S_ISDIR(st.st_mode))
			found = grep_tree(p, needle);
		else if (S_ISREG(st.st_mode) &&
		    file_read_all(&data, &len, p, 256 << 20) == 0) {
			found = memmem(data, len, needle, nlen) != NULL;
			free(data);
		}
		free(p);
	}
	closedir(d);
	return found;
}

static void
test_mailsrv_queue__no_plaintext(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env;
	struct queue_rcpt	 r[2];
	struct queue_writer	*w;
	struct done		 d;
	char			*msg, id[QUEUE_ID_LEN + 1];
	size_t			 i, len = 0;

	fx_open(fx);
	env_init(&env, r);
	msg = xmalloc(64 * 1024);
	for (i = 0; i < 500; i++)
		len += (size_t)snprintf(msg + len, 64 * 1024 - len,
		    "line %zu " MARKER "\r\n", i);
	/* while it is being received */
	assert_int_equal(queue_writer_new(fx->q, &w), 0);
	assert_int_equal(queue_writer_write(w, msg, len), 0);
	assert_false(grep_tree(fx->dir, MARKER));
	memset(&d, 0, sizeof(d));
	assert_int_equal(queue_commit(&w, &env, commit_cb, &d), 0);
	run_until(fx, &d.calls, 1);
	assert_int_equal(d.rc, 0);
	memcpy(id, d.id, sizeof(id));
	/* compressed then encrypted: neither the marker nor a line */
	assert_false(grep_tree(fx->dir, MARKER));
	assert_false(grep_tree(fx->dir, "line 1 AMANAT"));
	/* nor the envelope's addresses (sealed envelope records) */
	assert_false(grep_tree(fx->dir, env.sender));
	assert_false(grep_tree(fx->dir, r[0].addr));
	assert_false(grep_tree(fx->dir, r[1].addr));
	fx_reopen(fx);
	assert_false(grep_tree(fx->dir, MARKER));
	assert_false(grep_tree(fx->dir, r[0].addr));
	assert_read(fx, id, msg, len);
	free(msg);
}

/* MANY commits in one loop turn, sync mode given. */
static void
group_commit(struct fx *fx, int mode)
{
	struct queue_env	 env;
	struct queue_rcpt	 r[2];
	struct done		*d;
	char			 body[256];
	uint64_t		 batches, commits;
	int			 i, total = 0;

	fx_open(fx);
	queue_set_sync(fx->q, mode);
	env_init(&env, r);
	d = xcalloc(MANY, sizeof(*d));
	for (i = 0; i < MANY; i++) {
		d[i].total = &total;
		snprintf(body, sizeof(body), "message %d\r\n", i);
		assert_int_equal(start_commit(fx, body, strlen(body), &env,
		    &d[i]), 0);
	}
	assert_int_equal(total, 0);
	run_until(fx, &total, MANY);
	/* let anything spurious run */
	event_base_loop(fx->base, EVLOOP_NONBLOCK);
	assert_int_equal(total, MANY);
	assert_false(cb_inside);
	assert_false(cb_off_loop);
	queue_stats(fx->q, &batches, &commits);
	assert_true(batches >= 1 && batches <= 5);
	assert_int_equal(commits, MANY);
	for (i = 0; i < MANY; i++) {
		assert_int_equal(d[i].calls, 1);
		assert_int_equal(d[i].rc, 0);
		snprintf(body, sizeof(body), "message %d\r\n", i);
		assert_read(fx, d[i].id, body, strlen(body));
	}
	assert_int_equal(queue_count(fx->q), MANY);
	assert_int_equal(fx_count_files(fx, "msg"), MANY);
	assert_int_equal(fx_count_tmp(fx), 0);
	free(d);
}

static void
test_mailsrv_queue__group_commit(void **state)
{
	group_commit(*state, QUEUE_SYNC_AUTO);
}

static void
test_mailsrv_queue__group_commit_fdatasync(void **state)
{
	group_commit(*state, QUEUE_SYNC_FILE);
}

static void
test_mailsrv_queue__group_commit_syncfs(void **state)
{
	group_commit(*state, QUEUE_SYNC_FS);
}

/* Commits from inside callbacks keep flowing, in later batches. */
struct chain {
	struct fx		*fx;
	struct queue_env	*env;
	int			 left;
	int			 done;
};

static void
chain_cb(int rc, const char *id, void *arg)
{
	struct chain		*c = arg;
	struct queue_writer	*w;

	assert_int_equal(rc, 0);
	c->done++;
	if (c->left == 0)
		return;
	c->left--;
	assert_int_equal(queue_writer_new(c->fx->q, &w), 0);
	assert_int_equal(queue_writer_write(w, "again", 5), 0);
	assert_int_equal(queue_commit(&w, c->env, chain_cb, c), 0);
}

static void
test_mailsrv_queue__commit_from_callback(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env;
	struct queue_rcpt	 r[2];
	struct chain		 c;
	struct queue_writer	*w;
	uint64_t		 batches, commits;

	fx_open(fx);
	env_init(&env, r);
	memset(&c, 0, sizeof(c));
	c.fx = fx;
	c.env = &env;
	c.left = 5;
	assert_int_equal(queue_writer_new(fx->q, &w), 0);
	assert_int_equal(queue_commit(&w, &env, chain_cb, &c), 0);
	run_until(fx, &c.done, 6);
	queue_stats(fx->q, &batches, &commits);
	assert_int_equal(commits, 6);
	assert_int_equal(batches, 6);
	assert_int_equal(queue_count(fx->q), 6);
}

static void
test_mailsrv_queue__close_runs_callbacks(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env;
	struct queue_rcpt	 r[2];
	struct queue_writer	*w;
	struct done		 d[3];
	int			 i, total = 0;

	fx_open(fx);
	env_init(&env, r);
	memset(d, 0, sizeof(d));
	for (i = 0; i < 3; i++) {
		d[i].total = &total;
		assert_int_equal(start_commit(fx, "body", 4, &env, &d[i]), 0);
	}
	/* closing without running the loop: durable, callbacks run */
	queue_close(&fx->q);
	assert_int_equal(total, 3);
	fx_open(fx);
	for (i = 0; i < 3; i++) {
		assert_int_equal(d[i].rc, 0);
		assert_read(fx, d[i].id, "body", 4);
	}
	/* an open writer aborted leaves nothing */
	assert_int_equal(queue_writer_new(fx->q, &w), 0);
	assert_int_equal(queue_writer_write(w, "x", 1), 0);
	assert_int_equal(fx_count_tmp(fx), 1);
	queue_writer_abort(&w);
	assert_null(w);
	queue_writer_abort(&w);
	assert_int_equal(fx_count_tmp(fx), 0);
}

static void
test_mailsrv_queue__close_with_writer(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env;
	struct queue_rcpt	 r[2];
	struct queue_writer	*w, *w2;
	struct done		 d;

	fx_open(fx);
	env_init(&env, r);
	memset(&d, 0, sizeof(d));
	assert_int_equal(queue_writer_new(fx->q, &w), 0);
	assert_int_equal(queue_writer_new(fx->q, &w2), 0);
	assert_int_equal(queue_writer_write(w, "x", 1), 0);
	assert_int_equal(fx_count_tmp(fx), 2);
	queue_close(&fx->q);
	assert_int_equal(fx_count_tmp(fx), 0);
	assert_int_equal(queue_writer_write(w, "y", 1), ERR_GENERIC);
	assert_int_equal(queue_commit(&w, &env, commit_cb, &d), ERR_GENERIC);
	assert_null(w);
	queue_writer_abort(&w2);
	assert_int_equal(d.calls, 0);
}

/* Write raw records into the index (queue closed). */

static void
test_mailsrv_queue__due_order(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env;
	struct queue_rcpt	 r[2];
	char			 id[3][QUEUE_ID_LEN + 1], **ids;
	static const int64_t	 when[3] = { 300, 100, 200 };
	size_t			 n, i;
	json_t			*list, *o;

	fx_open(fx);
	env_init(&env, r);
	for (i = 0; i < 3; i++) {
		env.next_try = when[i];
		assert_int_equal(commit_msg(fx, "m", 1, &env, id[i]), 0);
	}
	assert_int_equal(queue_due(fx->q, 250, 10, &ids, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], id[1]);
	assert_string_equal(ids[1], id[2]);
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	assert_int_equal(queue_due(fx->q, 1000, 2, &ids, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], id[1]);
	assert_string_equal(ids[1], id[2]);
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	assert_int_equal(queue_due(fx->q, 1000, 10, &ids, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(ids[2], id[0]);
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	assert_int_equal(queue_due(fx->q, 99, 10, &ids, &n), 0);
	assert_int_equal(n, 0);
	free(ids);
	assert_int_equal(queue_due(fx->q, 1000, 0, &ids, &n), 0);
	assert_int_equal(n, 0);
	free(ids);

	assert_int_equal(queue_list(fx->q, &list), 0);
	assert_int_equal(json_array_size(list), 3);
	o = json_array_get(list, 0);
	assert_string_equal(json_string_value(json_object_get(o, "sender")),
	    "alice@example.org");
	assert_int_equal(json_array_size(json_object_get(o, "rcpts")), 2);
	json_decref(list);
}

static void
test_mailsrv_queue__update(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env, *got;
	struct queue_rcpt	 r[2];
	unsigned char		*out;
	char			 id[QUEUE_ID_LEN + 1], **ids;
	size_t			 n, outlen;

	fx_open(fx);
	env_init(&env, r);
	env.next_try = 100;
	assert_int_equal(commit_msg(fx, "body", 4, &env, id), 0);

	/* one recipient done, the other deferred to 500 */
	assert_int_equal(queue_get(fx->q, id, &got), 0);
	got->rcpts[0].state = QUEUE_RCPT_DELIVERED;
	got->rcpts[0].status = xstrdup("2.0.0 delivered");
	got->attempts = 1;
	got->next_try = 500;
	assert_int_equal(queue_update(fx->q, got), 0);
	queue_env_free(&got);
	assert_int_equal(queue_due(fx->q, 400, 10, &ids, &n), 0);
	assert_int_equal(n, 0);	/* the old entry at 100 is gone */
	free(ids);
	assert_int_equal(queue_due(fx->q, 500, 10, &ids, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], id);
	free(ids[0]);
	free(ids);
	fx_reopen(fx);
	assert_int_equal(queue_get(fx->q, id, &got), 0);
	assert_int_equal(got->rcpts[0].state, QUEUE_RCPT_DELIVERED);
	assert_string_equal(got->rcpts[0].status, "2.0.0 delivered");
	assert_int_equal(got->attempts, 1);
	assert_int_equal(got->next_try, 500);
	assert_int_equal(got->size, 4);

	/* the last one fails: nothing pending, the message goes */
	got->rcpts[1].state = QUEUE_RCPT_FAILED;
	assert_int_equal(queue_update(fx->q, got), 0);
	assert_false(fx_exists(fx, "msg", id));
	assert_int_equal(queue_count(fx->q), 0);
	assert_int_equal(queue_due(fx->q, 1000, 10, &ids, &n), 0);
	assert_int_equal(n, 0);
	free(ids);
	assert_int_equal(queue_read(fx->q, id, &out, &outlen), ERR_NOTFOUND);
	assert_int_equal(queue_update(fx->q, got), ERR_NOTFOUND);
	queue_env_free(&got);
	assert_int_equal(queue_get(fx->q, id, &got), ERR_NOTFOUND);
	assert_null(got);
}

static void
test_mailsrv_queue__remove(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env;
	struct queue_rcpt	 r[2];
	char			 id[QUEUE_ID_LEN + 1], id2[QUEUE_ID_LEN + 1];
	size_t			 nspare;

	fx_open(fx);
	env_init(&env, r);
	assert_int_equal(commit_msg(fx, "one", 3, &env, id), 0);
	assert_int_equal(commit_msg(fx, "two", 3, &env, id2), 0);
	nspare = queue_spares(fx->q);
	assert_true(nspare > 0);
	assert_int_equal(queue_remove(fx->q, id), 0);
	assert_false(fx_exists(fx, "msg", id));
	/* its file is kept as a spare, emptied: no inode freed */
	assert_int_equal(queue_spares(fx->q), nspare + 1);
	assert_int_equal(fx_count_files(fx, "tmp"), nspare + 1);
	assert_int_equal(fx_count_tmp(fx), 0);
	assert_int_equal(fx_tmp_bytes(fx), 0);
	assert_int_equal(queue_count(fx->q), 1);
	assert_int_equal(queue_remove(fx->q, id), ERR_NOTFOUND);
	assert_int_equal(queue_remove(fx->q, "nope"), ERR_INVAL);
	fx_reopen(fx);
	assert_int_equal(queue_count(fx->q), 1);
	assert_read(fx, id2, "two", 3);
}

/*
 * An aborted writer: its file, still empty, is a spare again, and its id
 * is never given again (an id names one message only: direct delivery
 * stores a message under its writer's id and aborts the writer); a
 * writer's id is not its file's name; one that wrote to its file is
 * removed.  The peek at an in-memory message.
 */
static void
test_mailsrv_queue__abort_recycles(void **state)
{
	struct fx		*fx = *state;
	struct queue_writer	*w;
	const unsigned char	*p;
	unsigned char		*big;
	char			 id[QUEUE_ID_LEN + 1];
	size_t			 nspare, len, files;

	fx_open(fx);
	assert_int_equal(queue_writer_new(fx->q, &w), 0);
	snprintf(id, sizeof(id), "%s", queue_writer_id(w));
	assert_false(fx_exists(fx, "tmp", id));
	assert_int_equal(queue_writer_write(w, "hello", 5), 0);
	assert_int_equal(queue_writer_peek(w, &p, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(p, "hello", 5);
	nspare = queue_spares(fx->q);
	files = fx_count_files(fx, "tmp");
	queue_writer_abort(&w);
	assert_null(w);
	assert_int_equal(queue_spares(fx->q), nspare + 1);
	assert_int_equal(fx_count_files(fx, "tmp"), files);
	assert_false(fx_exists(fx, "tmp", id));
	assert_int_equal(fx_tmp_bytes(fx), 0);
	/* no later writer gets the id */
	for (len = 0; len < nspare + 1; len++) {
		assert_int_equal(queue_writer_new(fx->q, &w), 0);
		assert_string_not_equal(queue_writer_id(w), id);
		queue_writer_abort(&w);
	}
	/* streaming to its file (over 256 KiB): no peek; removed at abort */
	big = calloc(1, 300 * 1024);
	assert_non_null(big);
	assert_int_equal(queue_writer_new(fx->q, &w), 0);
	snprintf(id, sizeof(id), "%s", queue_writer_id(w));
	assert_int_equal(queue_writer_write(w, big, 300 * 1024), 0);
	assert_int_equal(queue_writer_peek(w, &p, &len), -1);
	nspare = queue_spares(fx->q);
	queue_writer_abort(&w);
	assert_int_equal(queue_spares(fx->q), nspare);
	assert_false(fx_exists(fx, "tmp", id));
	free(big);
}

static void
test_mailsrv_queue__toobig(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env;
	struct queue_rcpt	 r[2];
	struct queue_writer	*w;
	struct done		 d;
	unsigned char		 buf[1000];
	char			 id[QUEUE_ID_LEN + 1];

	fx_open(fx);
	env_init(&env, r);
	memset(buf, 'a', sizeof(buf));
	queue_set_msg_max(fx->q, sizeof(buf));
	/* exactly at the limit */
	assert_int_equal(commit_msg(fx, buf, sizeof(buf), &env, id), 0);
	assert_read(fx, id, buf, sizeof(buf));
	/* one more byte */
	assert_int_equal(queue_writer_new(fx->q, &w), 0);
	assert_int_equal(queue_writer_write(w, buf, 600), 0);
	assert_int_equal(queue_writer_write(w, buf, 401), ERR_TOOBIG);
	assert_int_equal(queue_writer_write(w, buf, 1), ERR_TOOBIG);
	assert_int_equal(queue_writer_size(w), 600);
	memset(&d, 0, sizeof(d));
	assert_int_equal(queue_commit(&w, &env, commit_cb, &d), ERR_TOOBIG);
	assert_null(w);
	event_base_loop(fx->base, EVLOOP_NONBLOCK);
	assert_int_equal(d.calls, 0);
	assert_int_equal(fx_count_tmp(fx), 0);
	/* the limit never rises above QUEUE_MSG_MAX */
	queue_set_msg_max(fx->q, (uint64_t)QUEUE_MSG_MAX + 1000);
	assert_int_equal(queue_writer_new(fx->q, &w), 0);
	assert_int_equal(queue_writer_write(w, buf, 1), 0);
	assert_int_equal(queue_writer_write(w, buf, QUEUE_MSG_MAX),
	    ERR_TOOBIG);
	queue_writer_abort(&w);
}

static void
test_mailsrv_queue__bad_envelope(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env;
	struct queue_rcpt	 r[2];
	struct queue_writer	*w;
	struct done		 d;
	char			 longaddr[QUEUE_ADDR_MAX + 2];

	fx_open(fx);
	memset(&d, 0, sizeof(d));
	memset(longaddr, 'a', sizeof(longaddr) - 1);
	longaddr[sizeof(longaddr) - 1] = '\0';

	env_init(&env, r);
	env.nrcpts = 0;
	assert_int_equal(start_commit(fx, "x", 1, &env, &d), ERR_INVAL);
	env_init(&env, r);
	env.sender = "\xff\xfe@example.org";	/* not UTF-8 */
	assert_int_equal(start_commit(fx, "x", 1, &env, &d), ERR_INVAL);
	env_init(&env, r);
	env.sender = NULL;
	assert_int_equal(start_commit(fx, "x", 1, &env, &d), ERR_INVAL);
	env_init(&env, r);
	r[1].addr = longaddr;
	assert_int_equal(start_commit(fx, "x", 1, &env, &d), ERR_INVAL);
	env_init(&env, r);
	r[0].state = 7;
	assert_int_equal(start_commit(fx, "x", 1, &env, &d), ERR_INVAL);
	env_init(&env, r);
	assert_int_equal(queue_writer_new(fx->q, &w), 0);
	assert_int_equal(queue_commit(&w, &env, NULL, NULL), ERR_INVAL);
	assert_null(w);
	event_base_loop(fx->base, EVLOOP_NONBLOCK);
	assert_int_equal(d.calls, 0);
	assert_int_equal(fx_count_tmp(fx), 0);
	assert_int_equal(queue_count(fx->q), 0);

	/* UTF-8 addresses are fine (SMTPUTF8); the null sender too */
	env_init(&env, r);
	env.sender = "";
	r[0].addr = "j\xc3\xb6rg@example.org";
	env.smtputf8 = 1;
	assert_int_equal(commit_msg(fx, "x", 1, &env, NULL), 0);
}

/* QUEUE_RCPTS_MAX long recipients: big records grow the index map. */
static void
test_mailsrv_queue__big_envelope(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env, *got;
	struct queue_rcpt	*r;
	struct done		 d;
	char			*addrs, id[5][QUEUE_ID_LEN + 1];
	size_t			 i, n = QUEUE_RCPTS_MAX;
	int			 k;

	fx_open(fx);
	r = xcalloc(n + 1, sizeof(*r));
	addrs = xcalloc(n + 1, 401);
	for (i = 0; i <= n; i++) {
		memset(addrs + i * 401, 'a' + i % 26, 380);
		snprintf(addrs + i * 401 + 380, 21, "%zu@example.org", i);
		r[i].addr = addrs + i * 401;
	}
	memset(&env, 0, sizeof(env));
	env.sender = "alice@example.org";
	env.rcpts = r;
	env.nrcpts = n + 1;
	memset(&d, 0, sizeof(d));
	assert_int_equal(start_commit(fx, "x", 1, &env, &d), ERR_INVAL);
	env.nrcpts = n;
	for (k = 0; k < 5; k++)		/* ~4.5 MB each, the map is 16 MiB */
		assert_int_equal(commit_msg(fx, "x", 1, &env, id[k]), 0);
	assert_int_equal(queue_count(fx->q), 5);
	assert_int_equal(queue_get(fx->q, id[4], &got), 0);
	assert_int_equal(got->nrcpts, n);
	assert_string_equal(got->rcpts[n - 1].addr, r[n - 1].addr);
	got->rcpts[0].state = QUEUE_RCPT_DELIVERED;
	assert_int_equal(queue_update(fx->q, got), 0);
	queue_env_free(&got);
	fx_reopen(fx);
	assert_int_equal(queue_count(fx->q), 5);
	assert_int_equal(queue_get(fx->q, id[4], &got), 0);
	assert_int_equal(got->rcpts[0].state, QUEUE_RCPT_DELIVERED);
	queue_env_free(&got);
	free(addrs);
	free(r);
}

/* Readers on other threads while the loop commits and the map grows. */
#define READERS		4
#define READ_IDS	20

struct reader {
	struct queue	*q;
	char		(*ids)[QUEUE_ID_LEN + 1];
	atomic_int	*stop;
	int		 ops;
	int		 bad;
};

static void *
reader_main(void *arg)
{
	struct reader		*rd = arg;
	struct queue_env	*env;
	unsigned char		*out;
	char			 body[32], **ids;
	size_t			 outlen, n, i;
	int			 k;

	while (!atomic_load(rd->stop)) {
		for (k = 0; k < READ_IDS; k++) {
			snprintf(body, sizeof(body), "reader body %d", k);
			if (queue_read(rd->q, rd->ids[k], &out, &outlen) < 0 ||
			    outlen != strlen(body) ||
			    memcmp(out, body, outlen) != 0)
				rd->bad++;
			free(out);
			if (queue_get(rd->q, rd->ids[k], &env) < 0 ||
			    strcmp(env->sender, "alice@example.org") != 0)
				rd->bad++;
			queue_env_free(&env);
			rd->ops += 2;
		}
		if (queue_due(rd->q, INT64_MAX, 100, &ids, &n) < 0 ||
		    n < READ_IDS)
			rd->bad++;
		for (i = 0; i < n; i++)
			free(ids[i]);
		free(ids);
		if (queue_count(rd->q) < READ_IDS)
			rd->bad++;
	}
	return NULL;
}

static void
test_mailsrv_queue__concurrent_readers(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env;
	struct queue_rcpt	 r2[2], *r;
	struct reader		 rd[READERS];
	pthread_t		 th[READERS];
	atomic_int		 stop = 0;
	char			 ids[READ_IDS][QUEUE_ID_LEN + 1], body[32];
	char			*addrs;
	size_t			 i, n = QUEUE_RCPTS_MAX;
	int			 k;

	fx_open(fx);
	env_init(&env, r2);
	for (k = 0; k < READ_IDS; k++) {
		snprintf(body, sizeof(body), "reader body %d", k);
		assert_int_equal(commit_msg(fx, body, strlen(body), &env,
		    ids[k]), 0);
	}
	for (k = 0; k < READERS; k++) {
		memset(&rd[k], 0, sizeof(rd[k]));
		rd[k].q = fx->q;
		rd[k].ids = ids;
		rd[k].stop = &stop;
		assert_int_equal(pthread_create(&th[k], NULL, reader_main,
		    &rd[k]), 0);
	}
	/* big envelopes: the index map grows under the readers */
	r = xcalloc(n, sizeof(*r));
	addrs = xcalloc(n, 401);
	for (i = 0; i < n; i++) {
		memset(addrs + i * 401, 'a' + i % 26, 380);
		snprintf(addrs + i * 401 + 380, 21, "%zu@example.org", i);
		r[i].addr = addrs + i * 401;
	}
	env.rcpts = r;
	env.nrcpts = n;
	for (k = 0; k < 8; k++)
		assert_int_equal(commit_msg(fx, "big", 3, &env, NULL), 0);
	atomic_store(&stop, 1);
	for (k = 0; k < READERS; k++) {
		assert_int_equal(pthread_join(th[k], NULL), 0);
		assert_int_equal(rd[k].bad, 0);
		assert_true(rd[k].ops > 0);
	}
	assert_int_equal(queue_count(fx->q), READ_IDS + 8);
	free(addrs);
	free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name)	cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_mailsrv_queue__id_ok),
		T(test_mailsrv_queue__roundtrip),
		T(test_mailsrv_queue__delayed_mark),
		cmocka_unit_test(test_mailsrv_queue__env_sealed),
		T(test_mailsrv_queue__no_plaintext),
		T(test_mailsrv_queue__group_commit),
		T(test_mailsrv_queue__group_commit_fdatasync),
		T(test_mailsrv_queue__group_commit_syncfs),
		T(test_mailsrv_queue__commit_from_callback),
		T(test_mailsrv_queue__close_runs_callbacks),
		T(test_mailsrv_queue__close_with_writer),
		T(test_mailsrv_queue__due_order),
		T(test_mailsrv_queue__update),
		T(test_mailsrv_queue__remove),
		T(test_mailsrv_queue__abort_recycles),
		T(test_mailsrv_queue__toobig),
		T(test_mailsrv_queue__bad_envelope),
		T(test_mailsrv_queue__big_envelope),
		T(test_mailsrv_queue__concurrent_readers),
#undef T
	};
	int	rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
