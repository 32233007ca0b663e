/*
 * queue.h -- the durable mail queue of mailsrv.
 *
 * A message enters the queue while an SMTP client sends it: a
 * queue_writer streams it (zlib-compressed, then AES-256-GCM encrypted
 * with the node's queue key) into a tmp file.  queue_commit() makes it
 * durable together with its envelope and calls back on the event loop
 * only then, so "250 queued" means the message and envelope are on disk:
 * commits are batched (group commit): one worker thread takes every
 * commit that arrived since its last batch and makes the message files
 * durable in msg/ (a batch of one: fdatasync, rename, fsync of msg/;
 * more: rename them all, then one syncfs), then writes every envelope in
 * one LMDB transaction.
 *
 * Layout under the directory given to queue_open():
 *	tmp/<name>	being received, or empty spares that the batch
 *			thread makes ahead and delivered messages' files
 *			become (emptied), so that a new message costs the
 *			loop no file creation (all removed at open: never
 *			acknowledged).  A name is not a message id: each
 *			writer gets a new id, and its file becomes
 *			msg/<id> at commit; an aborted writer's empty
 *			file is a spare again under its name.
 *	msg/<id>	committed message files
 *	index/		LMDB: envelopes by id, and a schedule by next-try time
 *	corrupt/<id>	message files whose envelope did not load (kept
 *			for the operator, out of the queue)
 *	lock		flock()ed while open: one process per queue
 * A message file (v1, see queue_file.c): a 40-byte header "AMQ1" |
 * version | 12-byte nonce | message size | compressed size (both set at
 * commit), then the ciphertext of the deflate stream and of a 16-byte
 * trailer repeating both sizes, then the 16-byte GCM tag.  The AAD binds
 * the file to its id and to the header's fixed part; the sizes are
 * authenticated through the trailer.  No plaintext of a message touches
 * the disk.
 *
 * Recovery: at open, every committed envelope is in the schedule; tmp/
 * files are removed; a msg/ file without an envelope (crash between the
 * rename and the LMDB commit) is removed too (never acknowledged).  An
 * envelope that does not load is logged, its file moved to corrupt/ and
 * the envelope dropped; one whose file is missing is logged and dropped.
 *
 * Runs in: mailsrv; queue_open, queue_close, queue_writer_* and
 * queue_commit on the event loop thread (writes are buffered: the loop
 * does no fsync); the batch commit on the queue's own worker thread;
 * queue_read, queue_get, queue_due, queue_update, queue_remove,
 * queue_list and queue_count on any thread (queue_update and
 * queue_remove sync the index before they return: better off the loop).
 * Failure policy: negative enum err with err_set(); a failed batch fails
 * every commit in it (the SMTP layer answers 451).
 * SECURITY: ids are validated (queue_id_ok) before they become paths;
 * envelopes and files read back are untrusted input (bounded, checked).
 */
#ifndef MAILSRV_QUEUE_H
#define MAILSRV_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#define QUEUE_ID_LEN		20	/* hex chars */
#define QUEUE_KEY_LEN		32
#define QUEUE_MSG_MAX		(256 * 1024 * 1024)
#define QUEUE_RCPTS_MAX		10000
#define QUEUE_ADDR_MAX		512

enum queue_rcpt_state {
	QUEUE_RCPT_PENDING = 0,
	QUEUE_RCPT_DELIVERED,
	QUEUE_RCPT_FAILED,	/* permanent: a DSN is due */
};

/* DSN NOTIFY (RFC 3461) bits; 0 = not given (default: FAILURE). */
#define QUEUE_NOTIFY_NEVER	0x01
#define QUEUE_NOTIFY_SUCCESS	0x02
#define QUEUE_NOTIFY_FAILURE	0x04
#define QUEUE_NOTIFY_DELAY	0x08

struct queue_rcpt {
	char		*addr;		/* envelope recipient */
	char		*orcpt;		/* DSN ORCPT, or NULL */
	int		 notify;	/* QUEUE_NOTIFY_* */
	int		 local;		/* a user of this node */
	char		*dept;		/* local: the user's department */
	int		 state;		/* enum queue_rcpt_state */
	char		*status;	/* last result "5.1.1 ..." or NULL */
	int		 delayed;	/* a delay DSN was sent for it */
};

struct queue_env {
	char		 id[QUEUE_ID_LEN + 1];	/* set by queue_commit */
	char		*sender;	/* "" for the null sender (bounces) */
	char		*helo;
	char		*peer;		/* client address */
	char		*auth;		/* authenticated user or NULL */
	char		*envid;		/* DSN ENVID or NULL */
	int		 ret_full;	/* DSN RET=FULL (else HDRS) */
	int		 body_8bit;
	int		 smtputf8;
	int64_t		 created;	/* unix seconds */
	int64_t		 next_try;	/* unix seconds */
	unsigned	 attempts;
	uint64_t	 size;		/* message bytes */
	struct queue_rcpt *rcpts;
	size_t		 nrcpts;
};

struct queue;
struct queue_writer;

/*
 * Open the queue at dir with the queue key (copied; the caller wipes its
 * copy).  The batch thread and its completion event use base.  Runs the
 * recovery above.  ERR_LOCKED if another process has the queue open.
 */
int	queue_open(struct queue **, struct event_base *, const char *,
	    const unsigned char *);
/*
 * Finishes the batch in progress and every commit still waiting
 * (callbacks run, here), then frees; NULL-safe, sets *q = NULL.  Not
 * from inside a commit callback.  Writers still open lose their file:
 * their writes and commit fail, queue_writer_abort() still frees them.
 */
void	queue_close(struct queue **);
/* 1 if id is QUEUE_ID_LEN lowercase hex digits, else 0. */
int	queue_id_ok(const char *);

/* Start receiving a message. */
int	queue_writer_new(struct queue *, struct queue_writer **);
/*
 * Append message bytes (buffered, compressed, encrypted).  More than
 * QUEUE_MSG_MAX bytes in all is ERR_TOOBIG; any error sticks (later
 * writes and queue_commit return it: abort the writer).
 */
int	queue_writer_write(struct queue_writer *, const void *, size_t);
uint64_t	queue_writer_size(struct queue_writer *);
/*
 * Drop a message being received; NULL-safe, sets *w = NULL.  A file
 * nothing was written to yet goes back to the spares.
 */
void	queue_writer_abort(struct queue_writer **);
/* The writer's id: the one queue_commit() will give the message. */
const char	*queue_writer_id(const struct queue_writer *);
/*
 * The message so far, while the writer still holds it all in memory (up
 * to 256 KiB, nothing written to its file yet): 0 with *p and *len,
 * valid until the next write, commit or abort; else -1 (streaming to
 * its file, or failed).
 */
int	queue_writer_peek(const struct queue_writer *, const unsigned char **,
	    size_t *);

typedef void	(*queue_commit_cb)(int, const char *, void *);
/*
 * Finish the message and commit it with env (copied; its id and size
 * are set from the writer).  *w is consumed whatever happens.
 * Returns 0, then cb(0, id, arg) once durable, or cb(err, NULL, arg);
 * always later, on the loop thread, never from inside queue_commit().
 * Or returns a negative err at once (bad env: ERR_INVAL; writer error;
 * queue closing), and cb is never called.  Strings in env must be
 * valid UTF-8 (ERR_INVAL), addresses at most QUEUE_ADDR_MAX bytes, 1 to
 * QUEUE_RCPTS_MAX recipients.
 */
int	queue_commit(struct queue_writer **, const struct queue_env *,
	    queue_commit_cb, void *);

/*
 * The message of a committed id, decrypted and checked (caller frees).
 * ERR_INVAL bad id, ERR_NOTFOUND no file, ERR_PERM authentication
 * failed (tampered, or another key), ERR_IO malformed file.
 */
int	queue_read(struct queue *, const char *, unsigned char **, size_t *);
/* A committed envelope (caller frees with queue_env_free); ERR_NOTFOUND. */
int	queue_get(struct queue *, const char *, struct queue_env **);
void	queue_env_free(struct queue_env **);
/*
 * Ids due at or before now (oldest next_try first, then by id), at most
 * max; caller frees the array and its strings (the array is NULL when
 * none is due).
 */
int	queue_due(struct queue *, int64_t, size_t, char ***, size_t *);
/*
 * Record delivery results: env as read with queue_get and updated by
 * the caller (rcpt states, statuses, attempts, next_try).  If no
 * recipient is pending any more the message is removed (file and
 * envelope).  Durable when it returns 0.  ERR_NOTFOUND if env->id is not
 * in the queue; ERR_INVAL for an envelope queue_commit would refuse.
 */
int	queue_update(struct queue *, const struct queue_env *);
/*
 * queue_update() of n envelopes in one index transaction (one sync);
 * rcs[i] gets each one's result (ERR_NOTFOUND: removed meanwhile).
 * Returns 0, or the error that failed the transaction (then in every
 * rcs[i] too).
 */
int	queue_update_many(struct queue *, struct queue_env *const *, size_t,
	    int *);
/* Remove a message whatever its state (admin delete); ERR_NOTFOUND. */
int	queue_remove(struct queue *, const char *);
/*
 * All envelopes as a JSON array of objects (admin list), without message
 * contents; the fields are those of struct queue_env, rcpts an array.
 */
int	queue_list(struct queue *, json_t **);
/* Committed envelopes (0 if the index cannot be read). */
size_t	queue_count(struct queue *);

/* Batches run and messages committed since open (tests, metrics). */
void	queue_stats(struct queue *, uint64_t *, uint64_t *);
/* The empty spare files ready in tmp/ (any thread; tests and stats). */
size_t	queue_spares(struct queue *);

/*
 * How a batch makes its message files durable.  AUTO: fdatasync() for a
 * batch of one, one syncfs() for more (the measured default); FILE:
 * always fdatasync() each file then fsync() msg/; FS: always one
 * syncfs().  For benchmarks and tests.
 */
enum queue_sync {
	QUEUE_SYNC_AUTO = 0,
	QUEUE_SYNC_FILE,
	QUEUE_SYNC_FS,
};
void	queue_set_sync(struct queue *, int);
/* Test hook: lower the message size limit (at most QUEUE_MSG_MAX). */
void	queue_set_msg_max(struct queue *, uint64_t);

/*
 * Private to the .c files of mailsrv/queue/ (queue__*): the message
 * file format (queue_file.c), the envelope encoding (queue_env.c) and
 * the open-time recovery (queue_recover.c; the dbis are MDB_dbi).  Not
 * for other modules.
 */
struct db_env;
int	queue__writer_open(struct queue_writer **, struct queue_writer **,
	    int, struct queue *, int, const char *, const char *,
	    const unsigned char *, uint64_t);
const char	*queue__writer_tmpname(const struct queue_writer *);
void	queue__writers_detach(struct queue_writer **);
struct queue	*queue__writer_queue(const struct queue_writer *);
int	queue__spare_put(struct queue *, int, const char *);
int	queue__writer_finish(struct queue_writer **, int *);
void	queue__writer_release(struct queue_writer *);
int	queue__writer_failed(const struct queue_writer *);
int	queue__file_read(int, const char *, const unsigned char *, uint64_t,
	    unsigned char **, size_t *);
int	queue__env_encode(const struct queue_env *, const unsigned char *,
	    char **, size_t *);
/* ERR_PERM: a sealed record that does not authenticate (key, id). */
int	queue__env_decode(struct queue_env **, const char *,
	    const unsigned char *, const void *, size_t);
int	queue__env_decode_legacy(struct queue_env **, const char *,
	    const void *, size_t);
int	queue__env_encode_json(const struct queue_env *, char **, size_t *);
json_t	*queue__env_json(const struct queue_env *);
void	queue__sched_key(unsigned char *, int64_t, const char *);
int	queue__recover(struct db_env *, unsigned, unsigned, int, int, int,
	    const unsigned char *, size_t *);

#endif
