/*
 * imap_idle.c -- IDLE, and the logged-in users of the IMAP server.
 *
 * Purpose: the tree of logged-in users and their sessions (the per-user
 * session limit; whom to tell of a change), IDLE (enter, DONE), and how
 * idle sessions learn of changes: imap_notify_user() marks a user (a
 * delivery, or a job of another session of the user that wrote to the
 * store); one job then reads the HIGHESTMODSEQ of that user's idle
 * sessions' mailboxes and only those that changed get a sync job.  A
 * poll every IMAP_IDLE_POLL_MS (when the store's generation moved, every
 * idle session whose view is older) is only the safety net.
 * Runs in: the mailsrv process, the loop thread (the batch of status
 * reads on a worker; its sessions are marked busy meanwhile).
 * Failure policy: a full worker pool skips a batch; the next notification
 * or poll looks again.
 * SECURITY: a user's sessions are found by the address they logged in
 * with (ASCII lower case); nothing crosses users.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/sys/tree.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mailsrv/imap/imap.h"
#include "mailsrv/imap/imap_parser.h"

static struct imap_session	*idlers;	/* sessions in IDLE */
static struct event		*idle_ev;	/* the safety poll */
static struct event		*notify_ev;	/* users to look at */

/*
 * Logged-in users, by address (lower case): their sessions, for the
 * per-user session limit and to tell their IDLE sessions of changes.
 */
struct imap_user {
	RB_ENTRY(imap_user)	 entry;
	char			 addr[STORE_ADDRESS_MAX + 1];
	struct imap_session	*sess;
	int			 dirty;		/* on the dirty list */
	struct imap_user	*dnext;
};

static int
imap_user_cmp(struct imap_user *a, struct imap_user *b)
{
	return strcmp(a->addr, b->addr);
}

RB_HEAD(imap_users, imap_user);
/* (libbsd defines __unused away: say it here) */
RB_GENERATE_INTERNAL(imap_users, imap_user, entry, imap_user_cmp,
    __attribute__((unused)) static)
static struct imap_users	 users = RB_INITIALIZER(&users);
static struct imap_user		*dirty;		/* users to look at */

static struct imap_user *
imap_user_find(const char *addr)
{
	struct imap_user	key;
	size_t			i;

	for (i = 0; addr[i] != '\0' && i < sizeof(key.addr) - 1; i++)
		key.addr[i] = (char)tolower((unsigned char)addr[i]);
	key.addr[i] = '\0';
	return RB_FIND(imap_users, &users, &key);
}

/* The session is logged in: it joins its user's sessions. */
void
imap_user_attach(struct imap_session *s)
{
	struct imap_user	*u;
	size_t			 i;

	if ((u = imap_user_find(s->user)) == NULL) {
		u = xcalloc(1, sizeof(*u));
		for (i = 0; s->user[i] != '\0'; i++)
			u->addr[i] = (char)tolower((unsigned char)s->user[i]);
		RB_INSERT(imap_users, &users, u);
	}
	s->u = u;
	s->uprev = NULL;
	if ((s->unext = u->sess) != NULL)
		u->sess->uprev = s;
	u->sess = s;
}

static void
imap_user_forget(struct imap_user *u)
{
	if (u->sess == NULL && !u->dirty) {
		RB_REMOVE(imap_users, &users, u);
		free(u);
	}
}

void
imap_user_detach(struct imap_session *s)
{
	struct imap_user	*u = s->u;

	if (u == NULL)
		return;
	if (s->uprev != NULL)
		s->uprev->unext = s->unext;
	else
		u->sess = s->unext;
	if (s->unext != NULL)
		s->unext->uprev = s->uprev;
	s->u = NULL;
	s->unext = s->uprev = NULL;
	imap_user_forget(u);
}

int
imap_user_sessions(const char *user)
{
	struct imap_user	*u = imap_user_find(user);
	struct imap_session	*s;
	int			 n = 0;

	for (s = u != NULL ? u->sess : NULL; s != NULL; s = s->unext)
		n += s->state == IMAP_S_AUTH || s->state == IMAP_S_SELECTED;
	return n;
}


void
imap_idle_unlink(struct imap_session *s)
{
	if (!s->idling)
		return;
	s->idling = 0;
	if (s->idle_prev != NULL)
		s->idle_prev->idle_next = s->idle_next;
	else
		idlers = s->idle_next;
	if (s->idle_next != NULL)
		s->idle_next->idle_prev = s->idle_prev;
	s->idle_next = s->idle_prev = NULL;
}

/*
 * IDLE polling.  When the store's generation moved, one job looks at the
 * HIGHESTMODSEQ of every idle session's mailbox (an O(1) read each) and
 * only the sessions whose mailbox changed get a sync job: a delivery to
 * one user does not cost every idle session a job.  The sessions of a
 * batch are marked busy meanwhile (a close frees them at its end).
 */
struct idle_batch {
	struct imap_session	**s;
	uint8_t			 *changed;
	size_t			  n;
	uint64_t		  gen;
};

static int	idle_batch_running;

static void
idle_batch_work(void *arg)
{
	struct idle_batch	*b = arg;
	struct store_status	 st;
	size_t			 i;

	for (i = 0; i < b->n; i++) {
		struct imap_session	*s = b->s[i];

		if (s->view == NULL)	/* stays while the session is busy */
			continue;
		if (s->view->ngone > 0 || store_mailbox_status(s->ms->store,
		    s->user, s->view->name, &st) < 0 ||
		    st.highestmodseq != s->view->modseq)
			b->changed[i] = 1;
		else
			s->view->gen = b->gen;	/* nothing new for it */
	}
}

static void
idle_batch_done(void *arg)
{
	struct idle_batch	*b = arg;
	size_t			 i;

	idle_batch_running = 0;
	for (i = 0; i < b->n; i++) {
		struct imap_session	*s = b->s[i];

		s->busy = 0;
		if (s->dead) {
			imap_session_free(s);
			continue;
		}
		if (b->changed[i] && s->idling && s->state == IMAP_S_SELECTED) {
			imap_submit(s, imap_cmd_idle_sync);
			s->tstatus = NULL;	/* a full pool: next poll */
		}
		imap_idle_recheck(s);
		if (!s->busy)
			imap_session_next(s);
	}
	free(b->s);
	free(b->changed);
	free(b);
	if (dirty != NULL)
		event_active(notify_ev, EV_TIMEOUT, 1);
}

/* An idle session a batch may look at now. */
static int
idle_ready(const struct imap_session *s)
{
	return s->idling && !s->busy && s->state == IMAP_S_SELECTED &&
	    s->view != NULL;
}

/* Look at these n sessions (marked busy here) on a worker. */
static void
idle_batch_submit(struct imap_session **v, size_t n, uint64_t gen)
{
	struct idle_batch	*b;
	size_t			 i;

	b = xcalloc(1, sizeof(*b));
	b->s = v;
	b->n = n;
	b->changed = xcalloc(n, 1);
	b->gen = gen;
	for (i = 0; i < n; i++)
		v[i]->busy = 1;
	idle_batch_running = 1;
	if (worker_submit(v[0]->ms->workers, idle_batch_work,
	    idle_batch_done, b) < 0)
		idle_batch_done(b);	/* nothing changed: poll again */
}

/* The safety net: every idle session whose view predates the store. */
static void
idle_poll(evutil_socket_t fd, short ev, void *arg)
{
	struct imap_session	*s, **v;
	uint64_t		 gen;
	size_t			 n = 0;

	if (idlers == NULL || idle_batch_running)
		return;
	gen = store_generation(idlers->ms->store);
	for (s = idlers; s != NULL; s = s->idle_next)
		if (idle_ready(s) && s->view->gen != gen)
			n++;
	if (n == 0)
		return;
	v = xcalloc(n, sizeof(*v));
	n = 0;
	for (s = idlers; s != NULL; s = s->idle_next)
		if (idle_ready(s) && s->view->gen != gen)
			v[n++] = s;
	idle_batch_submit(v, n, gen);
}

/* The users told of changes: look at their idle sessions now. */
static void
idle_notified(evutil_socket_t fd, short ev, void *arg)
{
	struct imap_user	*u;
	struct imap_session	*s, **v = NULL;
	size_t			 n = 0, cap = 0;
	uint64_t		 gen;

	if (idle_batch_running || dirty == NULL)
		return;		/* the batch's end looks again */
	gen = store_generation(((struct mailsrv *)arg)->store);
	while ((u = dirty) != NULL) {
		dirty = u->dnext;
		u->dirty = 0;
		u->dnext = NULL;
		for (s = u->sess; s != NULL; s = s->unext) {
			if (s->idling && s->busy)
				s->idle_recheck = 1;
			if (!idle_ready(s))
				continue;
			if (n == cap)
				v = xreallocarray(v, cap = cap ? cap * 2 : 16,
				    sizeof(*v));
			v[n++] = s;
		}
		imap_user_forget(u);
	}
	if (n > 0)
		idle_batch_submit(v, n, gen);
	else
		free(v);
}

/* Put u on the dirty list: its idle sessions are looked at soon. */
static void
idle_mark_dirty(struct imap_user *u)
{
	if (u->dirty || notify_ev == NULL)
		return;
	u->dirty = 1;
	u->dnext = dirty;
	dirty = u;
	event_active(notify_ev, EV_TIMEOUT, 1);
}

/* A session told of a change while busy looks once it is free. */
void
imap_idle_recheck(struct imap_session *s)
{
	if (!s->idle_recheck || s->busy)
		return;
	s->idle_recheck = 0;
	if (s->u != NULL && s->idling)
		idle_mark_dirty(s->u);
}

void
imap_notify_user(struct mailsrv *ms, const char *addr)
{
	struct imap_user	*u;
	struct imap_session	*s;

	if (notify_ev == NULL || (u = imap_user_find(addr)) == NULL ||
	    u->dirty)
		return;
	for (s = u->sess; s != NULL && !s->idling; s = s->unext)
		;
	if (s == NULL)
		return;		/* none of its sessions is in IDLE */
	idle_mark_dirty(u);
	(void)ms;
}

void
imap_cmd_idle(struct imap_session *s)
{
	struct timeval	tv = { IMAP_IDLE_POLL_MS / 1000,
	    (IMAP_IDLE_POLL_MS % 1000) * 1000 };

	imap_send(s, "+ idling");
	s->cmd = NULL;		/* DONE arrives as a raw line */
	s->idling = 1;
	s->idle_prev = NULL;
	s->idle_next = idlers;
	if (idlers != NULL)
		idlers->idle_prev = s;
	idlers = s;
	imap_parser_set_raw(s->p, 1);
	if (idle_ev == NULL) {
		idle_ev = event_new(s->ms->d->base, -1, EV_PERSIST, idle_poll,
		    NULL);
		event_add(idle_ev, &tv);
	}
}

static void
idle_done_work(struct imap_session *s)
{
	imap_tagged(s, "OK", "IDLE terminated");
}

/* The line that ends IDLE. */
void
imap_idle_line(struct imap_session *s, const struct imap_cmd *cmd)
{
	imap_idle_unlink(s);
	imap_parser_set_raw(s->p, 0);
	s->cmd = cmd;
	if (cmd->linelen != 4 || strncasecmp(cmd->line, "DONE", 4) != 0)
		imap_tagged(s, "BAD", "Expected DONE");
	else if (s->state == IMAP_S_SELECTED)
		imap_submit(s, idle_done_work);
	else
		imap_tagged(s, "OK", "IDLE terminated");
	if (!s->busy)
		imap_session_next(s);
}

int
imap_idle_start(struct mailsrv *ms)
{
	if ((notify_ev = event_new(ms->d->base, -1, 0, idle_notified,
	    ms)) == NULL) {
		err_set(ERR_GENERIC, "imap: event_new failed");
		return ERR_GENERIC;
	}
	return 0;
}

void
imap_idle_stop(struct mailsrv *ms)
{
	struct imap_user	*u;

	if (idle_ev != NULL)
		event_free(idle_ev);
	idle_ev = NULL;
	if (notify_ev != NULL)
		event_free(notify_ev);
	notify_ev = NULL;
	while ((u = dirty) != NULL) {
		dirty = u->dnext;
		u->dirty = 0;
		imap_user_forget(u);
	}
	(void)ms;
}
