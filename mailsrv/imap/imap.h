/*
 * imap.h -- the IMAP server's session, shared by its modules:
 *   imap_session.c	connections, the parser loop, dispatch, jobs,
 *			authentication, IDLE, COMPRESS, STARTTLS
 *   imap_mbox.c	mailbox commands (LIST, STATUS, SELECT, APPEND...)
 *   imap_msgs.c	the selected mailbox: its view and its untagged
 *			updates, FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE
 *
 * Threads.  A session lives on the event loop thread.  Commands that
 * touch the store run as jobs on the worker pool (the store is
 * synchronous: LMDB and fsync), one job per session at a time; while a
 * job runs the loop does not read the session's input and does not
 * touch the session (if the peer goes away, s->dead is set and the job's
 * completion frees it).  A job writes its responses into s->out; the
 * loop sends them when the job ends.
 *
 * A command is either finished by its handler (imap_tagged() was
 * called: the loop writes the tagged line after the output) or continues
 * with s->cont, a loop function called once the output is flushed down
 * to IMAP_OUT_LOW (big FETCH responses go out in slices).
 */
#ifndef MAILSRV_IMAP_IMAP_H
#define MAILSRV_IMAP_IMAP_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "mailsrv/imap/imap_parser.h"
#include "mailsrv/mailsrv.h"
#include "mailsrv/store/store.h"

/* Output of one job before it yields (FETCH slices), and the low mark. */
#define IMAP_OUT_SLICE		(256 * 1024)
#define IMAP_OUT_LOW		(64 * 1024)
/* Messages of one FETCH slice at most (and bytes of message data). */
#define IMAP_FETCH_SLICE_MSGS	256
#define IMAP_FETCH_SLICE_BYTES	(1024 * 1024)
/* Failed logins of one connection before "* BYE". */
#define IMAP_LOGIN_FAILS_MAX	3
/* A failed login answers after this long (plus up to as much again). */
#define IMAP_AUTH_FAIL_MS	1000
/* Sessions of one user at once. */
#define IMAP_USER_SESSIONS_MAX	32
/* Commands per second of one session; more are slowed down, not refused. */
#define IMAP_CMDS_PER_SEC	2000
/*
 * IDLE sessions hear of changes to their user's mailboxes when they are
 * made (imap_notify_user, from delivery and from other sessions); this
 * poll of every IDLE session is only the safety net (ms).
 */
#define IMAP_IDLE_POLL_MS	2000
/* MULTIAPPEND: messages in one APPEND command. */
#define IMAP_APPEND_MSGS_MAX	1000
/* An ID parameter list: pairs, and bytes of each field. */
#define IMAP_ID_PAIRS_MAX	30
#define IMAP_ID_FIELD_MAX	1024

enum imap_state {
	IMAP_S_NOTAUTH = 0,
	IMAP_S_AUTH,
	IMAP_S_SELECTED,
	IMAP_S_LOGOUT,
};

/* ENABLEd extensions (s->enabled). */
#define IMAP_E_CONDSTORE	0x01
#define IMAP_E_QRESYNC		0x02
#define IMAP_E_REV2		0x04
#define IMAP_E_UTF8		0x08

/* The selected mailbox as the client knows it. */
struct imap_view {
	char		*name;		/* UTF-8 store name */
	int		 readonly;
	uint32_t	 uidvalidity;
	uint32_t	*uids;		/* sequence number i+1 -> UID */
	uint64_t	*sizes;		/* RFC822.SIZE of each */
	size_t		 n;
	size_t		 cap;
	uint32_t	 uidnext;	/* the client was told about < this */
	uint64_t	 modseq;	/* changes up to this were announced */
	uint64_t	 gen;		/* store_generation() at the last sync */
	/* expunged meanwhile, not announced yet (during FETCH/STORE/SEARCH) */
	uint32_t	*gone;
	size_t		 ngone;
	char		**kw;		/* the mailbox's keywords */
	size_t		 nkw;
};

struct imap_session;
typedef void	(*imap_fn)(struct imap_session *);

struct imap_session {
	struct mailsrv		*ms;
	struct net_conn		*c;
	uint64_t		 id;
	enum imap_state		 state;
	struct imap_parser	*p;
	int			 nerrors;
	int			 login_fails;
	int			 busy;		/* job or async call running */
	int			 dead;		/* closed while busy */
	unsigned		 enabled;	/* IMAP_E_* */
	int			 compressed;

	char			 user[STORE_ADDRESS_MAX + 1];
	char			 dept[256];
	unsigned char		 dek[STORE_DEK_LEN];
	int			 have_dek;

	/* the command in progress (valid while busy) */
	const struct imap_cmd	*cmd;
	const struct imap_arg	*args;		/* after UID for UID commands */
	size_t			 nargs;
	int			 uid;		/* a UID command */
	char			 tag[IMAP_TAG_MAX + 1];
	char			 cname[32];	/* for "X completed" texts */
	imap_fn			 work;		/* the job to run */
	imap_fn			 cont;		/* next step after the flush */
	void			*cstate;	/* command state (FETCH) */
	void			(*cstate_free)(void *);
	int			 sync_expunge;	/* announce EXPUNGE at the end */

	/* the tagged completion, set by imap_tagged() */
	const char		*tstatus;	/* "OK" "NO" "BAD", NULL: none */
	char			 ttext[512];

	struct buf		 out;		/* responses of the job */

	struct imap_view	*view;		/* SELECTED */
	uint32_t		*saved;		/* SEARCHRES "$" (UIDs) */
	size_t			 nsaved;

	struct evbuffer		*in;		/* input (during on_read) */

	/* IDLE, AUTHENTICATE: the next line is raw */
	int			 idling;
	int			 authing;
	struct imap_session	*idle_next;
	struct imap_session	*idle_prev;

	/* the user's sessions (logged in), for limits and notifications */
	struct imap_user	*u;
	struct imap_session	*unext;
	struct imap_session	*uprev;
	uint64_t		 job_gen;	/* store generation at submit */
	int			 idle_recheck;	/* told of a change while busy */

	/* throttles */
	uint64_t		 rate_sec;
	unsigned		 rate_n;
	struct event		*rate_ev;
	struct event		*later_ev;	/* delayed reply */
	char			*later_line;

	struct imap_session	*next;		/* all sessions */
	struct imap_session	*prev;
};

/* The keyword mask with the first n keywords. */
static inline uint64_t
imap_kw_all(size_t n)
{
	return n >= 64 ? ~0ULL : (1ULL << n) - 1;
}

/* ------------------------------------------------ imap_session.c */

/* Append a response line (CRLF added) to s->out. */
void	imap_out(struct imap_session *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
/* Set the tagged completion: status "OK" / "NO" / "BAD". */
void	imap_tagged(struct imap_session *, const char *, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
/* BAD for this command's arguments, with err_msg() when set. */
void	imap_bad_args(struct imap_session *);
/* Run fn on a worker; ends the command with NO when the pool is full. */
void	imap_submit(struct imap_session *, imap_fn);
/* Record an audit entry, then call fn on the loop (rc < 0: refused). */
typedef void	(*imap_audit_fn)(struct imap_session *, int);
void	imap_audit(struct imap_session *, const char *, const char *, int,
	    json_t *, imap_audit_fn);
/* NO text for a store error. */
void	imap_store_error(struct imap_session *, int, const char *);
/* Mailbox name argument -> store name (mUTF-7 decoded for rev1). */
int	imap_mailbox_arg(struct imap_session *, const struct imap_arg *,
	    char **);
/* Store name -> the form this client uses, appended as an astring. */
void	imap_out_mailbox(struct imap_session *, struct buf *, const char *);
int	imap_utf8(const struct imap_session *);
const char *imap_capabilities(struct imap_session *);

/* Write a line now (loop thread, nothing else buffered). */
void	imap_send(struct imap_session *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
/* Read and run the next command(s) if the session is free. */
void	imap_session_next(struct imap_session *);
/* Free a session (closed, and not busy). */
void	imap_session_free(struct imap_session *);

/* ------------------------------------------------ imap_idle.c */

int	imap_idle_start(struct mailsrv *);
void	imap_idle_stop(struct mailsrv *);
void	imap_cmd_idle(struct imap_session *);		/* loop */
/* The line that ends IDLE ("DONE"). */
void	imap_idle_line(struct imap_session *, const struct imap_cmd *);
void	imap_idle_unlink(struct imap_session *);
/* A session told of a change while busy looks once it is free. */
void	imap_idle_recheck(struct imap_session *);
/* The logged-in session joins (leaves) its user's sessions. */
void	imap_user_attach(struct imap_session *);
void	imap_user_detach(struct imap_session *);
/* Sessions of user (any case) logged in now. */
int	imap_user_sessions(const char *);

/* ------------------------------------------------ imap_mbox.c */

void	imap_cmd_list(struct imap_session *);
void	imap_cmd_lsub(struct imap_session *);
void	imap_cmd_create(struct imap_session *);
void	imap_cmd_delete(struct imap_session *);
void	imap_cmd_rename(struct imap_session *);
void	imap_cmd_subscribe(struct imap_session *);
void	imap_cmd_unsubscribe(struct imap_session *);
void	imap_cmd_status(struct imap_session *);
void	imap_cmd_select(struct imap_session *);	/* and EXAMINE */
void	imap_cmd_append(struct imap_session *);
void	imap_cmd_getquota(struct imap_session *);
void	imap_cmd_getquotaroot(struct imap_session *);

/* ------------------------------------------------ imap_msgs.c */

void	imap_view_free(struct imap_view **);
/* Announce what changed in the selected mailbox (worker thread). */
void	imap_view_sync(struct imap_session *, int);
/* The sequence number of uid in the view, 0 if none. */
uint32_t imap_view_seq(const struct imap_view *, uint32_t);
/* A sequence set or UID set argument -> ascending UIDs in the view. */
int	imap_set_uids(struct imap_session *, const struct imap_arg *, int,
	    uint32_t **, size_t *);
/* Flags as sent -> STORE_F_* and keyword atoms (pointers into args). */
int	imap_flags_arg(const struct imap_arg *, size_t, uint32_t *,
	    const char ***, size_t *);

void	imap_cmd_noop(struct imap_session *);	/* NOOP/CHECK selected */
void	imap_cmd_fetch(struct imap_session *);	/* loop */
void	imap_cmd_store(struct imap_session *);
void	imap_cmd_search(struct imap_session *);
void	imap_cmd_copy(struct imap_session *);	/* COPY and MOVE */
void	imap_cmd_expunge(struct imap_session *);	/* loop: audited */
void	imap_cmd_close(struct imap_session *);	/* CLOSE/UNSELECT */
void	imap_cmd_idle_sync(struct imap_session *);

#endif
