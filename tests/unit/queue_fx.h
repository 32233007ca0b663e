/*
 * queue_fx.h -- the fixture shared by the queue's unit tests
 * (test_mailsrv_queue.c, test_mailsrv_queue_recover.c): a temporary
 * queue directory with an event base and a key, and helpers to commit,
 * read back and look at the files.
 * Runs in: the unit test binaries only.
 */
#ifndef TESTS_UNIT_QUEUE_FX_H
#define TESTS_UNIT_QUEUE_FX_H

#include <sys/types.h>

#include <pthread.h>
#include <stddef.h>

#include <event2/event.h>

#include "mailsrv/queue/queue.h"

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

extern int		in_commit;	/* set around queue_commit() */
extern int		cb_inside;	/* a callback ran inside it */
extern pthread_t	loop_thread;
extern int		cb_off_loop;

/* cmocka setup/teardown: a fresh directory, base and key; all removed. */
int		 setup(void **);
int		 teardown(void **);
void		 fx_open(struct fx *);
void		 fx_reopen(struct fx *);
/* dir/sub/name (caller frees), and whether it exists. */
char		*fx_path(struct fx *, const char *, const char *);
int		 fx_exists(struct fx *, const char *, const char *);
size_t		 fx_count_files(struct fx *, const char *);
/* tmp/ files that are not spares, and the bytes in tmp/. */
size_t		 fx_count_tmp(struct fx *);
off_t		 fx_tmp_bytes(struct fx *);
/* Two recipients in r, one envelope in env. */
void		 env_init(struct queue_env *, struct queue_rcpt *);
/* queue_commit_cb filling a struct done. */
void		 commit_cb(int, const char *, void *);
void		 write_pieces(struct queue_writer *, const unsigned char *,
		    size_t);
int		 start_commit(struct fx *, const void *, size_t,
		    const struct queue_env *, struct done *);
/* Run the loop until *counter reaches target (bounded). */
void		 run_until(struct fx *, int *, int);
/* Commit one message and wait: its rc, the id in id. */
int		 commit_msg(struct fx *, const void *, size_t,
		    const struct queue_env *, char *);
void		 assert_read(struct fx *, const char *, const void *, size_t);
unsigned char	*read_file(const char *, size_t *);
void		 write_file(const char *, const void *, size_t);

#endif
