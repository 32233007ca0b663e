/*
 * test_mailsrv_queue_recover.c -- unit tests for the durable mail queue:
 * what survives a crash or an attack.
 *
 * Purpose: tampered files and a wrong key refused (the queue does not
 * open with a key that opens none of the envelopes, and changes
 * nothing); recovery at open (tmp files, orphans, corrupt envelopes,
 * stale schedule entries, legacy plain envelopes sealed); the open lock;
 * a SIGKILL at a random moment losing no acknowledged message.  The
 * fixture is queue_fx.c.
 * Runs in: the unit test binary only; each test gets a mkdtemp()
 * directory that it removes.
 * Failure policy: cmocka assertions.
 * SECURITY: the tamper and wrong-key tests are the point.
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
		T(test_mailsrv_queue__env_legacy),
		T(test_mailsrv_queue__tamper),
		T(test_mailsrv_queue__wrong_key),
		T(test_mailsrv_queue__recovery),
		T(test_mailsrv_queue__recovery_index),
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
