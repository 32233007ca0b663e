/*
 * queue_fx.c -- the queue unit tests' fixture and helpers (queue_fx.h).
 * Runs in: the unit test binaries only.
 * Failure policy: cmocka assertions.
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
#include "tests/unit/testutil.h"

int		in_commit;	/* set around queue_commit() */
int		cb_inside;	/* a callback ran inside it */
pthread_t	loop_thread;
int		cb_off_loop;

int
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

int
teardown(void **state)
{
	struct fx	*fx = *state;

	queue_close(&fx->q);
	event_base_free(fx->base);
	rm_tree(fx->dir);
	free(fx->dir);
	free(fx);
	return 0;
}

void
fx_open(struct fx *fx)
{
	assert_int_equal(queue_open(&fx->q, fx->base, fx->dir, fx->key), 0);
}

void
fx_reopen(struct fx *fx)
{
	queue_close(&fx->q);
	fx_open(fx);
}

char *
fx_path(struct fx *fx, const char *sub, const char *name)
{
	char	*p;

	xasprintf(&p, "%s/%s/%s", fx->dir, sub, name);
	return p;
}

int
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
size_t
fx_count_files(struct fx *fx, const char *sub)
{
	char	*p;
	size_t	 n;

	xasprintf(&p, "%s/%s", fx->dir, sub);
	n = dir_entries(p);
	free(p);
	return n == (size_t)-1 ? 0 : n;
}

/* Files in tmp/ other than the open queue's empty spares. */
size_t
fx_count_tmp(struct fx *fx)
{
	size_t	n = fx_count_files(fx, "tmp");

	return fx->q != NULL ? n - queue_spares(fx->q) : n;
}

/* The bytes of every file in tmp/. */
off_t
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
void
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

void
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
void
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

int
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

void
run_until(struct fx *fx, int *counter, int target)
{
	while (*counter < target)
		assert_int_not_equal(event_base_loop(fx->base, EVLOOP_ONCE),
		    -1);
}

/* Commit one message and wait for it; returns the callback's rc. */
int
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

void
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

unsigned char *
read_file(const char *path, size_t *len)
{
	char	*data;

	assert_int_equal(file_read_all(&data, len, path, 64 << 20), 0);
	return (unsigned char *)data;
}

void
write_file(const char *path, const void *data, size_t len)
{
	int	fd;

	assert_true((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >=
	    0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* ---------------------------------------------------------------- */
