/*
 * test_mailsrv_queue.c -- unit tests for the durable mail queue.
 *
 * Purpose: check queue.h's contract: byte-exact round trips (empty,
 * 8-bit and NUL bytes, 1 MiB), no plaintext on disk, tampering and a
 * wrong key refused, group commit (200 commits in one loop turn make a
 * handful of batches, every callback once, never inside queue_commit),
 * both sync modes, recovery (tmp files, orphans, corrupt envelopes,
 * stale schedule entries), the schedule order, update and remove, the
 * size limit at max and max+1, envelope checks, the open lock, and a
 * SIGKILL at a random moment losing no acknowledged message.
 * Runs in: the unit test binary only; each test gets a mkdtemp()
 * directory that it removes.
 * Failure policy: cmocka assertions.
 * SECURITY: the tamper, wrong-key and plaintext tests are the point.
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

#define MANY		200
#define MARKER		"AMANAT-PLAINTEXT-MARKER-5f3a9c"

struct fx {
	char			*dir;
	struct event_base	*base;
	unsigned char		 key[QUEUE_KEY_LEN];
	struct queue		*q;
};

struct done {
	int		 calls;
	int		 rc;
	char		 id[QUEUE_ID_LEN + 1];
	int		*total;		/* incremented too, or NULL */
};

static int		in_commit;	/* set around queue_commit() */
static int		cb_inside;	/* a callback ran inside it */
static pthread_t	loop_thread;
static int		cb_off_loop;

/* ---------------------------------------------------------------- */

static void
rm_rf(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	char		*p;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		p = path_join(dir, de->d_name);
		if (unlink(p) < 0)
			rm_rf(p);
		free(p);
	}
	closedir(d);
	(void)rmdir(dir);
}

static int
setup(void **state)
{
	char		 tmpl[] = "/tmp/amanat-test-queue.XXXXXX";
	struct fx	*fx;

	if (mkdtemp(tmpl) == NULL)
		return -1;
	fx = xcalloc(1, sizeof(*fx));
	fx->dir = xstrdup(tmpl);
	if ((fx->base = event_base_new()) == NULL)
		return -1;
	memset(fx->key, 0x5a, sizeof(fx->key));
	loop_thread = pthread_self();
	log_setlevel(LOG_LVL_WARN);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*fx = *state;

	queue_close(&fx->q);
	event_base_free(fx->base);
	rm_rf(fx->dir);
	free(fx->dir);
	free(fx);
	return 0;
}

static void
fx_open(struct fx *fx)
{
	assert_int_equal(queue_open(&fx->q, fx->base, fx->dir, fx->key), 0);
}

static void
fx_reopen(struct fx *fx)
{
	queue_close(&fx->q);
	fx_open(fx);
}

static char *
fx_path(struct fx *fx, const char *sub, const char *name)
{
	char	*p;

	xasprintf(&p, "%s/%s/%s", fx->dir, sub, name);
	return p;
}

static int
fx_exists(struct fx *fx, const char *sub, const char *name)
{
	struct stat	 st;
	char		*p = fx_path(fx, sub, name);
	int		 rc;

	rc = lstat(p, &st) == 0;
	free(p);
	return rc;
}

/* Entries of dir/sub, "." and ".." excluded. */
static size_t
fx_count_files(struct fx *fx, const char *sub)
{
	struct dirent	*de;
	DIR		*d;
	char		*p;
	size_t		 n = 0;

	xasprintf(&p, "%s/%s", fx->dir, sub);
	d = opendir(p);
	free(p);
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Files in tmp/ other than the open queue's empty spares. */
static size_t
fx_count_tmp(struct fx *fx)
{
	size_t	n = fx_count_files(fx, "tmp");

	return fx->q != NULL ? n - queue_spares(fx->q) : n;
}

/* The bytes of every file in tmp/. */
static off_t
fx_tmp_bytes(struct fx *fx)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	char		*p;
	off_t		 n = 0;

	xasprintf(&p, "%s/tmp", fx->dir);
	d = opendir(p);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (fstatat(dirfd(d), de->d_name, &st, 0) == 0 &&
		    S_ISREG(st.st_mode))
			n += st.st_size;
	closedir(d);
	free(p);
	return n;
}

/* A two-recipient envelope (static strings; the queue copies). */
static void
env_init(struct queue_env *env, struct queue_rcpt *r)
{
	memset(env, 0, sizeof(*env));
	memset(r, 0, 2 * sizeof(*r));
	env->sender = "alice@example.org";
	env->helo = "client.example";
	env->peer = "192.0.2.1";
	env->envid = "env-1";
	env->body_8bit = 1;
	env->created = 1700000000;
	env->next_try = 1700000000;
	env->size = 12345;	/* overwritten by queue_commit */
	r[0].addr = "bob@example.org";
	r[0].local = 1;
	r[0].dept = "sales";
	r[1].addr = "carol@example.net";
	r[1].orcpt = "rfc822;carol@example.net";
	r[1].notify = QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY;
	env->rcpts = r;
	env->nrcpts = 2;
}

static void
commit_cb(int rc, const char *id, void *arg)
{
	struct done	*d = arg;

	if (in_commit)
		cb_inside = 1;
	if (!pthread_equal(pthread_self(), loop_thread))
		cb_off_loop = 1;
	d->calls++;
	d->rc = rc;
	if (rc == 0) {
		assert_true(queue_id_ok(id));
		memcpy(d->id, id, sizeof(d->id));
	} else
		assert_null(id);
	if (d->total != NULL)
		(*d->total)++;
}

/* Stream data in pieces of varying size (1 .. 8191 bytes). */
static void
write_pieces(struct queue_writer *w, const unsigned char *p, size_t len)
{
	size_t	n, step = 1;

	while (len > 0) {
		n = step < len ? step : len;
		assert_int_equal(queue_writer_write(w, p, n), 0);
		p += n;
		len -= n;
		step = (step * 7 + 3) % 8191 + 1;
	}
}

static int
start_commit(struct fx *fx, const void *data, size_t len,
    const struct queue_env *env, struct done *d)
{
	struct queue_writer	*w;
	int			 rc;

	assert_int_equal(queue_writer_new(fx->q, &w), 0);
	write_pieces(w, data, len);
	assert_int_equal(queue_writer_size(w), len);
	in_commit = 1;
	rc = queue_commit(&w, env, commit_cb, d);
	in_commit = 0;
	assert_null(w);
	return rc;
}

static void
run_until(struct fx *fx, int *counter, int target)
{
	while (*counter < target)
		assert_int_not_equal(event_base_loop(fx->base, EVLOOP_ONCE),
		    -1);
}

/* Commit one message and wait for it; returns the callback's rc. */
static int
commit_msg(struct fx *fx, const void *data, size_t len,
    const struct queue_env *env, char *id)
{
	struct done	d;

	memset(&d, 0, sizeof(d));
	assert_int_equal(start_commit(fx, data, len, env, &d), 0);
	assert_int_equal(d.calls, 0);
	run_until(fx, &d.calls, 1);
	assert_int_equal(d.calls, 1);
	if (id != NULL)
		memcpy(id, d.id, QUEUE_ID_LEN + 1);
	return d.rc;
}

static void
assert_read(struct fx *fx, const char *id, const void *data, size_t len)
{
	unsigned char	*out;
	size_t		 outlen;

	assert_int_equal(queue_read(fx->q, id, &out, &outlen), 0);
	assert_int_equal(outlen, len);
	if (len > 0)
		assert_memory_equal(out, data, len);
	free(out);
}

static unsigned char *
read_file(const char *path, size_t *len)
{
	char	*data;

	assert_int_equal(file_read_all(&data, len, path, 64 << 20), 0);
	return (unsigned char *)data;
}

static void
write_file(const char *path, const void *data, size_t len)
{
	int	fd;

	assert_true((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >=
	    0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* ---------------------------------------------------------------- */

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

static void
test_mailsrv_queue__tamper(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env;
	struct queue_rcpt	 r[2];
	unsigned char		*file, *out;
	char			 id[QUEUE_ID_LEN + 1], *path;
	const char		*msg = "Subject: hi\r\n\r\nsecret body\r\n";
	size_t			 len, outlen, i;
	int			 rc;

	fx_open(fx);
	env_init(&env, r);
	assert_int_equal(commit_msg(fx, msg, strlen(msg), &env, id), 0);
	path = fx_path(fx, "msg", id);
	file = read_file(path, &len);
	assert_true(len > 72);

	/* every single flipped byte is refused, never returned */
	for (i = 0; i < len; i++) {
		file[i] ^= 0x01;
		write_file(path, file, len);
		rc = queue_read(fx->q, id, &out, &outlen);
		assert_true(rc == ERR_PERM || rc == ERR_IO);
		assert_null(out);
		/*
		 * The nonce, the data, the trailer and the tag fail the
		 * authentication; magic, version, reserved bytes and sizes
		 * fail the format checks first.
		 */
		if ((i >= 8 && i < 20) || i >= 40)
			assert_int_equal(rc, ERR_PERM);
		else
			assert_int_equal(rc, ERR_IO);
		file[i] ^= 0x01;
	}
	/* truncated, extended */
	write_file(path, file, len - 1);
	assert_int_equal(queue_read(fx->q, id, &out, &outlen), ERR_IO);
	file = xreallocarray(file, len + 1, 1);
	file[len] = 0;
	write_file(path, file, len + 1);
	assert_int_equal(queue_read(fx->q, id, &out, &outlen), ERR_IO);
	write_file(path, file, len);
	assert_read(fx, id, msg, strlen(msg));

	/* bad ids never become paths */
	assert_int_equal(queue_read(fx->q, "../lock", &out, &outlen),
	    ERR_INVAL);
	assert_int_equal(queue_read(fx->q, "0123456789abcdef0123", &out,
	    &outlen), ERR_NOTFOUND);
	free(file);
	free(path);
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

static void
test_mailsrv_queue__recovery(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env;
	struct queue_rcpt	 r[2];
	char			 id[QUEUE_ID_LEN + 1], *p;
	const char		*orphan = "00000001aaaaaaaaaaaa";

	fx_open(fx);
	env_init(&env, r);
	assert_int_equal(commit_msg(fx, "kept", 4, &env, id), 0);
	queue_close(&fx->q);
	/* messages being received when the process died */
	p = fx_path(fx, "tmp", "ffffffff000000000000");
	write_file(p, "junk", 4);
	free(p);
	p = fx_path(fx, "tmp", "whatever");
	write_file(p, "junk", 4);
	free(p);
	/* renamed, but the index commit never happened */
	p = fx_path(fx, "msg", orphan);
	write_file(p, "orphan", 6);
	free(p);
	/* not a queue file at all: left alone */
	p = fx_path(fx, "msg", "README");
	write_file(p, "x", 1);
	free(p);

	fx_open(fx);
	assert_int_equal(fx_count_tmp(fx), 0);
	assert_false(fx_exists(fx, "msg", orphan));
	assert_true(fx_exists(fx, "msg", "README"));
	assert_int_equal(queue_count(fx->q), 1);
	assert_read(fx, id, "kept", 4);
}

/* Write raw records into the index (queue closed). */
struct raw_put {
	MDB_dbi		 dbi;
	const void	*k;
	size_t		 klen;
	const void	*v;
	size_t		 vlen;
};

static int
raw_put_fn(MDB_txn *txn, void *arg)
{
	struct raw_put	*a = arg;
	MDB_val		 k, v;
	int		 mrc;

	k.mv_data = (void *)a->k;
	k.mv_size = a->klen;
	v.mv_data = (void *)a->v;
	v.mv_size = a->vlen;
	if ((mrc = mdb_put(txn, a->dbi, &k, &v, 0)) != 0)
		return db_err(mrc, "put");
	return 0;
}

static void
raw_put(struct fx *fx, const char *db, const void *k, size_t klen,
    const void *v, size_t vlen)
{
	struct db_env	*env;
	struct raw_put	 a;
	char		*p;

	xasprintf(&p, "%s/index", fx->dir);
	assert_int_equal(db_open(&env, p, 1 << 20, 1 << 30, 4), 0);
	free(p);
	assert_int_equal(db_dbi(env, db, 0, &a.dbi), 0);
	a.k = k;
	a.klen = klen;
	a.v = v;
	a.vlen = vlen;
	assert_int_equal(db_write(env, raw_put_fn, &a), 0);
	db_close(&env);
}

static void
test_mailsrv_queue__recovery_index(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env;
	struct queue_rcpt	 r[2];
	char			 id[QUEUE_ID_LEN + 1], id2[QUEUE_ID_LEN + 1];
	char			 **ids;
	unsigned char		 sk[8 + QUEUE_ID_LEN];
	const char		*bad = "00000002bbbbbbbbbbbb";
	const char		*gone = "00000003cccccccccccc";
	size_t			 n;
	json_t			*list;
	char			*p;

	fx_open(fx);
	env_init(&env, r);
	env.next_try = 100;
	assert_int_equal(commit_msg(fx, "good", 4, &env, id), 0);
	assert_int_equal(commit_msg(fx, "good2", 5, &env, id2), 0);
	queue_close(&fx->q);

	/* a corrupt envelope with its file */
	raw_put(fx, "env", bad, QUEUE_ID_LEN, "{\"v\":1,", 7);
	p = fx_path(fx, "msg", bad);
	write_file(p, "whatever", 8);
	free(p);
	/* an envelope whose file is gone */
	memcpy(env.id, gone, sizeof(env.id));
	assert_int_equal(queue__env_encode(&env, fx->key, &p, &n), 0);
	raw_put(fx, "env", gone, QUEUE_ID_LEN, p, n);
	free(p);
	/* records that are not v1 envelopes of their key */
	raw_put(fx, "env", "00000005eeeeeeeeeeee", QUEUE_ID_LEN, p = xstrdup(
	    "{\"v\":2}"), 7);
	free(p);
	/* a stale schedule entry, a malformed one, a lost one */
	queue__sched_key(sk, 5, "00000004dddddddddddd");
	raw_put(fx, "sched", sk, sizeof(sk), "", 0);
	raw_put(fx, "sched", "x", 1, "", 0);
	queue__sched_key(sk, 1, id);	/* id's real entry is at 100 */
	raw_put(fx, "sched", sk, sizeof(sk), "", 0);

	fx_open(fx);
	assert_int_equal(queue_count(fx->q), 2);
	assert_true(fx_exists(fx, "corrupt", bad));
	assert_false(fx_exists(fx, "msg", bad));
	assert_int_equal(queue_due(fx->q, 1000, 10, &ids, &n), 0);
	assert_int_equal(n, 2);
	assert_true(strcmp(ids[0], id) == 0 || strcmp(ids[1], id) == 0);
	assert_true(strcmp(ids[0], id2) == 0 || strcmp(ids[1], id2) == 0);
	free(ids[0]);
	free(ids[1]);
	free(ids);
	assert_int_equal(queue_due(fx->q, 99, 10, &ids, &n), 0);
	assert_int_equal(n, 0);
	free(ids);
	assert_int_equal(queue_list(fx->q, &list), 0);
	assert_int_equal(json_array_size(list), 2);
	json_decref(list);
	assert_read(fx, id, "good", 4);
}

/* An envelope of an older version (JSON, not sealed) is sealed at open. */
static void
test_mailsrv_queue__env_legacy(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env, *got = NULL;
	struct queue_rcpt	 r[2];
	char			 id[QUEUE_ID_LEN + 1], *p;
	size_t			 n;

	fx_open(fx);
	env_init(&env, r);
	assert_int_equal(commit_msg(fx, "old", 3, &env, id), 0);
	queue_close(&fx->q);
	memcpy(env.id, id, sizeof(env.id));
	assert_int_equal(queue__env_encode_json(&env, &p, &n), 0);
	raw_put(fx, "env", id, QUEUE_ID_LEN, p, n);
	free(p);
	/* and the spare/ directory of that version, with a spare in it */
	p = fx_path(fx, "spare", "");
	assert_int_equal(mkdir(p, 0700), 0);
	free(p);
	p = fx_path(fx, "spare", "00000001bbbbbbbbbbbb");
	write_file(p, "", 0);
	free(p);
	fx_open(fx);
	assert_false(fx_exists(fx, "spare", ""));
	assert_int_equal(queue_count(fx->q), 1);
	assert_int_equal(queue_get(fx->q, id, &got), 0);
	assert_string_equal(got->sender, env.sender);
	queue_env_free(&got);
	assert_read(fx, id, "old", 3);
	/* stored sealed now: a second open reads it without the fallback */
	fx_reopen(fx);
	assert_int_equal(queue_get(fx->q, id, &got), 0);
	queue_env_free(&got);
	assert_int_equal(queue_remove(fx->q, id), 0);
}

static void
test_mailsrv_queue__wrong_key(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env, *got;
	struct queue_rcpt	 r[2];
	unsigned char		*out, *file;
	char			 id[QUEUE_ID_LEN + 1], id2[QUEUE_ID_LEN + 1];
	char			*p, *p2;
	size_t			 outlen, len;

	fx_open(fx);
	env_init(&env, r);
	assert_int_equal(commit_msg(fx, "hello", 5, &env, id), 0);
	queue_close(&fx->q);
	fx->key[7] ^= 0x80;
	/* no envelope opens: the queue refuses to open, changing nothing */
	assert_int_equal(queue_open(&fx->q, fx->base, fx->dir, fx->key),
	    ERR_PERM);
	assert_null(fx->q);
	assert_true(fx_exists(fx, "msg", id));
	fx->key[7] ^= 0x80;
	fx_open(fx);
	assert_int_equal(queue_get(fx->q, id, &got), 0);
	queue_env_free(&got);
	assert_read(fx, id, "hello", 5);
	/* the message file under another key: ERR_PERM, never returned */
	assert_int_equal(commit_msg(fx, "other", 5, &env, id2), 0);
	queue_close(&fx->q);
	p = fx_path(fx, "msg", id2);
	p2 = fx_path(fx, "msg", id);
	file = read_file(p, &len);
	write_file(p2, file, len);
	free(file);
	free(p);
	free(p2);
	fx_open(fx);
	assert_int_equal(queue_read(fx->q, id, &out, &outlen), ERR_PERM);
	assert_null(out);
	/* one envelope sealed under another key, the other fine: only
	 * that one is set aside */
	queue_close(&fx->q);
	fx->key[7] ^= 0x80;
	memcpy(env.id, id, sizeof(env.id));
	assert_int_equal(queue__env_encode(&env, fx->key, &p, &len), 0);
	fx->key[7] ^= 0x80;
	raw_put(fx, "env", id, QUEUE_ID_LEN, p, len);
	free(p);
	fx_open(fx);
	assert_int_equal(queue_count(fx->q), 1);
	assert_true(fx_exists(fx, "corrupt", id));
	assert_read(fx, id2, "other", 5);
}

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
 * An aborted writer: its file, still empty, is a spare again under a new
 * id (an id names one message only: direct delivery stores a message
 * under its writer's id and aborts the writer); one that wrote to its
 * file is removed.  The peek at an in-memory message.
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

static void
test_mailsrv_queue__lock(void **state)
{
	struct fx	*fx = *state;
	struct queue	*q2;

	fx_open(fx);
	assert_int_equal(queue_open(&q2, fx->base, fx->dir, fx->key),
	    ERR_LOCKED);
	assert_null(q2);
}

/* ---------------------------------------------------------------- */
/* Kill safety: a child commits in a loop and is SIGKILLed. */

#define KILL_INFLIGHT	8
#define KILL_ROUNDS	3

struct child {
	struct queue		*q;
	int			 pipefd;
	unsigned		 seq;
};

static void child_commit(struct child *);

/* Body of message seq: "seq=<n>\n" then seq-dependent filler. */
static size_t
kill_body(unsigned seq, char *buf, size_t size)
{
	size_t	len, i, want = 64 + (seq * 997) % 8000;

	len = (size_t)snprintf(buf, size, "seq=%u\n", seq);
	for (i = len; i < want && i < size; i++)
		buf[i] = (char)('a' + (seq + i) % 26);
	return i;
}

static void
child_cb(int rc, const char *id, void *arg)
{
	struct child	*c = arg;
	char		 line[QUEUE_ID_LEN + 1];

	if (rc == 0) {
		/* acknowledged: the parent may rely on it now */
		memcpy(line, id, QUEUE_ID_LEN);
		line[QUEUE_ID_LEN] = '\n';
		if (write(c->pipefd, line, sizeof(line)) != sizeof(line))
			_exit(3);
	}
	child_commit(c);
}

static void
child_commit(struct child *c)
{
	struct queue_writer	*w;
	struct queue_env	 env;
	struct queue_rcpt	 r[2];
	char			 body[8192], envid[32];
	size_t			 len;

	env_init(&env, r);
	snprintf(envid, sizeof(envid), "seq-%u", c->seq);
	env.envid = envid;
	len = kill_body(c->seq, body, sizeof(body));
	c->seq++;
	if (queue_writer_new(c->q, &w) < 0 ||
	    queue_writer_write(w, body, len) < 0 ||
	    queue_commit(&w, &env, child_cb, c) < 0)
		_exit(4);
}

static void
child_main(const char *dir, const unsigned char *key, int pipefd,
    unsigned seq0)
{
	struct event_base	*base;
	struct child		 c;
	int			 i;

	if ((base = event_base_new()) == NULL)
		_exit(5);
	memset(&c, 0, sizeof(c));
	c.pipefd = pipefd;
	c.seq = seq0;
	if (queue_open(&c.q, base, dir, key) < 0)
		_exit(6);
	for (i = 0; i < KILL_INFLIGHT; i++)
		child_commit(&c);
	event_base_dispatch(base);
	_exit(7);
}

/* Check one acknowledged id: readable, and body matches envelope. */
static void
kill_check(struct fx *fx, const char *id)
{
	struct queue_env	*env;
	unsigned char		*out;
	char			 body[8192];
	unsigned		 seq;
	size_t			 outlen, len;

	assert_int_equal(queue_get(fx->q, id, &env), 0);
	assert_int_equal(sscanf(env->envid, "seq-%u", &seq), 1);
	assert_int_equal(queue_read(fx->q, id, &out, &outlen), 0);
	len = kill_body(seq, body, sizeof(body));
	assert_int_equal(outlen, len);
	assert_memory_equal(out, body, len);
	assert_int_equal(env->size, len);
	free(out);
	queue_env_free(&env);
}

/*
 * One round: returns the number of acknowledged ids checked; *ntmp and
 * *nmsg are the files found in tmp/ and msg/ before recovery.
 */
static size_t
kill_round(struct fx *fx, unsigned seq0, unsigned delay_ms, size_t *ntmp,
    size_t *nmsg)
{
	struct pollfd	 pfd;
	char		*buf = NULL, id[QUEUE_ID_LEN + 1];
	size_t		 len = 0, cap = 0, i;
	uint64_t	 end;
	ssize_t		 n;
	pid_t		 pid;
	int		 p[2], status;

	assert_int_equal(pipe(p), 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		child_main(fx->dir, fx->key, p[1], seq0);
	}
	assert_true(pid > 0);
	close(p[1]);
	end = now_ms() + delay_ms;
	for (;;) {
		pfd.fd = p[0];
		pfd.events = POLLIN;
		if (now_ms() >= end) {
			kill(pid, SIGKILL);
			end = UINT64_MAX;
		}
		if (poll(&pfd, 1, end == UINT64_MAX ? -1 : 5) <= 0)
			continue;
		if (cap - len < 4096)
			buf = xreallocarray(buf, cap += 65536, 1);
		if ((n = read(p[0], buf + len, cap - len)) <= 0)
			break;	/* the child is gone */
		len += (size_t)n;
	}
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	*ntmp = fx_count_files(fx, "tmp");
	*nmsg = fx_count_files(fx, "msg");
	fx_open(fx);
	assert_int_equal(fx_count_tmp(fx), 0);
	assert_int_equal(fx_count_files(fx, "msg"), queue_count(fx->q));
	for (i = 0; i + QUEUE_ID_LEN + 1 <= len; i += QUEUE_ID_LEN + 1) {
		memcpy(id, buf + i, QUEUE_ID_LEN);
		id[QUEUE_ID_LEN] = '\0';
		assert_int_equal(buf[i + QUEUE_ID_LEN], '\n');
		kill_check(fx, id);
	}
	queue_close(&fx->q);
	free(buf);
	return len / (QUEUE_ID_LEN + 1);
}

static void
test_mailsrv_queue__kill_safety(void **state)
{
	struct fx	*fx = *state;
	unsigned	 seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	unsigned	 round, delay;
	size_t		 acked, ntmp, nmsg;

	srand(seed);
	for (round = 0; round < KILL_ROUNDS; round++) {
		delay = 50 + (unsigned)rand() % 400;
		acked = kill_round(fx, round * 1000000, delay, &ntmp, &nmsg);
		print_message("kill round %u: seed %u, killed after %u ms, "
		    "%zu acknowledged (all readable), found tmp/ %zu msg/ "
		    "%zu\n", round, seed, delay, acked, ntmp, nmsg);
	}
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
		T(test_mailsrv_queue__env_legacy),
		T(test_mailsrv_queue__no_plaintext),
		T(test_mailsrv_queue__tamper),
		T(test_mailsrv_queue__wrong_key),
		T(test_mailsrv_queue__group_commit),
		T(test_mailsrv_queue__group_commit_fdatasync),
		T(test_mailsrv_queue__group_commit_syncfs),
		T(test_mailsrv_queue__commit_from_callback),
		T(test_mailsrv_queue__close_runs_callbacks),
		T(test_mailsrv_queue__close_with_writer),
		T(test_mailsrv_queue__recovery),
		T(test_mailsrv_queue__recovery_index),
		T(test_mailsrv_queue__due_order),
		T(test_mailsrv_queue__update),
		T(test_mailsrv_queue__remove),
		T(test_mailsrv_queue__abort_recycles),
		T(test_mailsrv_queue__toobig),
		T(test_mailsrv_queue__bad_envelope),
		T(test_mailsrv_queue__big_envelope),
		T(test_mailsrv_queue__concurrent_readers),
		T(test_mailsrv_queue__lock),
		T(test_mailsrv_queue__kill_safety),
#undef T
	};
	int	rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
