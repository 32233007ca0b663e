/*
 * queue.h -- the durable mail queue of mailsrv.
 *
 * A message enters the queue while an SMTP client sends it: a
 * queue_writer streams it (zlib-compressed, then AES-256-GCM encrypted
 * with the node's queue key) into a tmp file.  queue_commit() makes it
 * durable together with its envelope and calls back on the event loop
 * only then, so "250 queued" means the message and envelope are on disk:
 * commits are batched (group commit): one worker thread takes every
 * commit that arrived since its last batch, syncs the message files
 * (syncfs for a batch, fdatasync for one), renames them into msg/, syncs
 * the directory once and writes every envelope in one LMDB transaction.
 *
 * Layout under the directory given to queue_open():
 *	tmp/<id>	being received (removed at open: never acknowledged)
 *	msg/<id>	committed message files
 *	index/		LMDB: envelopes by id, and a schedule by next-try time
 * A message file: "AMQ1" | version | 12-byte nonce | compressed size
 * (set at commit) ... then ciphertext and the 16-byte tag; AAD binds it to
 * its id.  No plaintext of a message touches the disk.
 *
 * Recovery: at open, every committed envelope is in the schedule; tmp/
 * files are removed; a msg/ file without an envelope (crash between the
 * rename and the LMDB commit) is removed too (never acknowledged).
 *
 * Runs in: mailsrv; queue_writer_* and queue_commit on the event loop
 * thread (writes are buffered: the loop does no fsync); the batch commit
 * on the queue's own worker thread; queue_read on any thread.
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
 * copy).  The batch thread and its completion event use base.
 */
int	queue_open(struct queue **, struct event_base *, const char *,
	    const unsigned char *);
/* Finishes the batch in progress (callbacks run), then frees. */
void	queue_close(struct queue **);
int	queue_id_ok(const char *);

/* Start receiving a message. */
int	queue_writer_new(struct queue *, struct queue_writer **);
/* Append message bytes (buffered, compressed, encrypted). */
int	queue_writer_write(struct queue_writer *, const void *, size_t);
uint64_t	queue_writer_size(struct queue_writer *);
/* Drop a message being received; NULL-safe, sets *w = NULL. */
void	queue_writer_abort(struct queue_writer **);

typedef void	(*queue_commit_cb)(int, const char *, void *);
/*
 * Finish the message and commit it with env (copied).  *w is consumed.
 * cb(0, id, arg) once durable, or cb(err, NULL, arg); always later, on
 * the loop thread, never from inside queue_commit().
 */
int	queue_commit(struct queue_writer **, const struct queue_env *,
	    queue_commit_cb, void *);

/* The message of a committed id, decrypted (caller frees). */
int	queue_read(struct queue *, const char *, unsigned char **, size_t *);
/* A committed envelope (caller frees with queue_env_free). */
int	queue_get(struct queue *, const char *, struct queue_env **);
void	queue_env_free(struct queue_env **);
/*
 * Ids due at or before now (oldest first), at most max; caller frees the
 * array and its strings.
 */
int	queue_due(struct queue *, int64_t, size_t, char ***, size_t *);
/*
 * Record delivery results: env as read with queue_get and updated by
 * the caller (rcpt states, statuses, attempts, next_try).  If no
 * recipient is pending any more the message is removed (file and
 * envelope).  Durable when it returns 0.
 */
int	queue_update(struct queue *, const struct queue_env *);
/* Remove a message whatever its state (admin delete). */
int	queue_remove(struct queue *, const char *);
/* All envelopes as JSON (admin list), without message contents. */
int	queue_list(struct queue *, json_t **);
size_t	queue_count(struct queue *);

#endif
