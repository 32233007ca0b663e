/*
 * imap_session.c -- the IMAP server: connections, the command parser
 * loop, dispatch, jobs on the worker pool, authentication (LOGIN,
 * AUTHENTICATE PLAIN with SASL-IR), ENABLE, ID, NAMESPACE,
 * COMPRESS=DEFLATE and STARTTLS (IDLE: imap_idle.c).  See imap.h for the threading rules.
 *
 * Runs in: the mailsrv process; the loop thread, and worker threads for
 * the jobs (the handlers in imap_mbox.c and imap_msgs.c).
 * Failure policy: bad commands get BAD; after IMAP_MAX_ERRORS the session
 * gets "* BYE" and is closed; a failed login answers NO after a delay,
 * IMAP_LOGIN_FAILS_MAX of them close the connection.  Output over the
 * connection's limit closes it.  Audited actions (login, mailbox open,
 * message read, expunge) do not happen if their entry cannot be written.
 * SECURITY: no login before TLS (LOGINDISABLED); literals and lines are
 * bounded while bytes arrive (tighter before login); plaintext pipelined
 * after STARTTLS is discarded; the user's data key lives in the session
 * only while it is logged in and is wiped at close.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "common/base64.h"
#include "common/err.h"
#include "common/log.h"
#include "common/net.h"
#include "common/sasl.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mailsrv/imap/imap.h"
#include "mailsrv/imap/imap_format.h"
#include "mailsrv/imap/imap_mutf7.h"
#include "mailsrv/limits.h"
#include "mailsrv/userkey.h"

#define ST_N	(1u << IMAP_S_NOTAUTH)
#define ST_A	(1u << IMAP_S_AUTH)
#define ST_S	(1u << IMAP_S_SELECTED)
#define ST_ANY	(ST_N | ST_A | ST_S)

#define F_LOOP	0x01	/* the handler runs on the loop (it may submit) */
#define F_UID	0x02	/* also as "UID <name>" */
#define F_NOEXP	0x04	/* no EXPUNGE responses (non-UID FETCH/STORE/SEARCH) */

#define AUTH_USER_MAX	STORE_ADDRESS_MAX
#define AUTH_PASS_MAX	1024

struct imap_cmddef {
	const char	*name;
	unsigned	 states;
	unsigned	 flags;
	const char	*sig;	/* imap_args_check(), NULL: the handler checks */
	imap_fn		 fn;
};

static void	cmd_authenticate(struct imap_session *);
static void	cmd_capability(struct imap_session *);
static void	cmd_compress(struct imap_session *);
static void	cmd_enable(struct imap_session *);
static void	cmd_id(struct imap_session *);
static void	cmd_login(struct imap_session *);
static void	cmd_logout(struct imap_session *);
static void	cmd_namespace(struct imap_session *);
static void	cmd_noop(struct imap_session *);
static void	cmd_setquota(struct imap_session *);
static void	cmd_starttls(struct imap_session *);

/* Sorted by name (bsearch). */
static const struct imap_cmddef imap_cmds[] = {
	{ "APPEND", ST_A | ST_S, 0, NULL, imap_cmd_append },
	{ "AUTHENTICATE", ST_N, F_LOOP, "atom atom?", cmd_authenticate },
	{ "CAPABILITY", ST_ANY, F_LOOP, "", cmd_capability },
	{ "CHECK", ST_S, F_LOOP, "", cmd_noop },
	{ "CLOSE", ST_S, F_LOOP, "", imap_cmd_close },
	{ "COMPRESS", ST_A | ST_S, F_LOOP, "atom", cmd_compress },
	{ "COPY", ST_S, F_UID, "any mailbox", imap_cmd_copy },
	{ "CREATE", ST_A | ST_S, 0, "mailbox list?", imap_cmd_create },
	{ "DELETE", ST_A | ST_S, 0, "mailbox", imap_cmd_delete },
	{ "ENABLE", ST_A | ST_S, F_LOOP, "atom ...", cmd_enable },
	{ "EXAMINE", ST_A | ST_S, F_LOOP, "mailbox list?", imap_cmd_select },
	{ "EXPUNGE", ST_S, F_LOOP | F_UID, NULL, imap_cmd_expunge },
	{ "FETCH", ST_S, F_LOOP | F_UID | F_NOEXP, "any any list?",
	    imap_cmd_fetch },
	{ "GETQUOTA", ST_A | ST_S, 0, "astring", imap_cmd_getquota },
	{ "GETQUOTAROOT", ST_A | ST_S, 0, "mailbox", imap_cmd_getquotaroot },
	{ "ID", ST_ANY, F_LOOP, "any", cmd_id },
	{ "IDLE", ST_A | ST_S, F_LOOP, "", imap_cmd_idle },
	{ "LIST", ST_A | ST_S, 0, NULL, imap_cmd_list },
	{ "LOGIN", ST_N, F_LOOP, "astring astring", cmd_login },
	{ "LOGOUT", ST_ANY, F_LOOP, "", cmd_logout },
	{ "LSUB", ST_A | ST_S, 0, "mailbox list-mailbox", imap_cmd_lsub },
	{ "MOVE", ST_S, F_UID, "any mailbox", imap_cmd_copy },
	{ "NAMESPACE", ST_A | ST_S, F_LOOP, "", cmd_namespace },
	{ "NOOP", ST_ANY, F_LOOP, "", cmd_noop },
	{ "RENAME", ST_A | ST_S, 0, "mailbox mailbox list?", imap_cmd_rename },
	{ "SEARCH", ST_S, F_UID | F_NOEXP, "any ...", imap_cmd_search },
	{ "SELECT", ST_A | ST_S, F_LOOP, "mailbox list?", imap_cmd_select },
	{ "SETQUOTA", ST_A | ST_S, F_LOOP, "any ...", cmd_setquota },
	{ "STARTTLS", ST_N, F_LOOP, "", cmd_starttls },
	{ "STATUS", ST_A | ST_S, 0, "mailbox list", imap_cmd_status },
	{ "STORE", ST_S, F_UID | F_NOEXP, "any any ...", imap_cmd_store },
	{ "SUBSCRIBE", ST_A | ST_S, 0, "mailbox", imap_cmd_subscribe },
	{ "UNSELECT", ST_S, F_LOOP, "", imap_cmd_close },
	{ "UNSUBSCRIBE", ST_A | ST_S, 0, "mailbox", imap_cmd_unsubscribe },
};

static struct imap_session	*sessions;	/* every session */


/* ------------------------------------------------------------ output */

static void	imap_vout(struct buf *, const char *, va_list)
		    __attribute__((format(printf, 2, 0)));

static void
imap_vout(struct buf *b, const char *fmt, va_list ap)
{
	if (buf_vprintf(b, fmt, ap) < 0 || buf_append(b, "\r\n", 2) < 0)
		fatalx("imap output buffer full");
}

void
imap_out(struct imap_session *s, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	imap_vout(&s->out, fmt, ap);
	va_end(ap);
}

void
imap_tagged(struct imap_session *s, const char *status, const char *fmt,
    ...)
{
	va_list	ap;

	s->tstatus = status;
	va_start(ap, fmt);
	(void)vsnprintf(s->ttext, sizeof(s->ttext), fmt, ap);
	va_end(ap);
}

void
imap_bad_args(struct imap_session *s)
{
	const char	*why = err_msg();

	imap_tagged(s, "BAD", "Invalid arguments%s%s", why && *why ? ": " :
	    "", why ? why : "");
}

/* Send s->out (and nothing else) to the peer. */
static void
imap_flush(struct imap_session *s)
{
	if (s->out.len == 0)
		return;
	if (s->state != IMAP_S_LOGOUT &&
	    net_conn_write(s->c, s->out.data, s->out.len) < 0) {
		s->state = IMAP_S_LOGOUT;
		net_conn_close(s->c, "output-limit");
	}
	buf_reset(&s->out);
	if (s->out.cap > IMAP_OUT_SLICE * 4) {	/* after a big message */
		size_t	max = s->out.max;

		buf_free_secret(&s->out);
		buf_init(&s->out, max);
	}
}

void
imap_send(struct imap_session *s, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	imap_vout(&s->out, fmt, ap);
	va_end(ap);
	imap_flush(s);
}

static void
imap_bye(struct imap_session *s, const char *text, const char *reason)
{
	imap_send(s, "* BYE %s", text);
	s->state = IMAP_S_LOGOUT;
	net_conn_close(s->c, reason);
}

/* An error counted against the session (BAD, failed syntax). */
static void
imap_count_error(struct imap_session *s)
{
	if (++s->nerrors >= IMAP_MAX_ERRORS)
		imap_bye(s, "Too many errors", "too-many-errors");
}

int
imap_utf8(const struct imap_session *s)
{
	return (s->enabled & (IMAP_E_UTF8 | IMAP_E_REV2)) != 0;
}

const char *
imap_capabilities(struct imap_session *s)
{
	static char	caps[1024];

	if (s->state == IMAP_S_NOTAUTH) {
		if (!net_conn_is_tls(s->c))
			return "IMAP4rev1 IMAP4rev2 STARTTLS LOGINDISABLED "
			    "LITERAL- SASL-IR ID ENABLE";
		return "IMAP4rev1 IMAP4rev2 AUTH=PLAIN SASL-IR LITERAL- ID "
		    "ENABLE";
	}
	snprintf(caps, sizeof(caps), "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR "
	    "ID ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN "
	    "SPECIAL-USE CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS "
	    "CONDSTORE QRESYNC ESEARCH SEARCHRES STATUS=SIZE "
	    "APPENDLIMIT=%lld MULTIAPPEND UTF8=ACCEPT QUOTA "
	    "QUOTA=RES-STORAGE BINARY%s",
	    (long long)s->ms->d->conf.mailsrv.max_message_size,
	    s->compressed ? "" : " COMPRESS=DEFLATE");
	return caps;
}

/* ------------------------------------------------------------ names */

int
imap_mailbox_arg(struct imap_session *s, const struct imap_arg *a,
    char **out)
{
	const char	*name;
	size_t		 len;

	if (imap_arg_mailbox(&name, &len, a) < 0)
		return ERR_PROTO;
	if (imap_utf8(s)) {
		*out = xstrndup(name, len);
		return 0;
	}
	if (imap_mutf7_to_utf8(out, name, len) < 0) {
		err_set(ERR_PROTO, "mailbox name is not valid modified UTF-7");
		return ERR_PROTO;
	}
	return 0;
}

void
imap_out_mailbox(struct imap_session *s, struct buf *b, const char *name)
{
	char	*m = NULL;
	int	 rc;

	if (strcasecmp(name, "INBOX") == 0)
		rc = buf_append(b, "INBOX", 5);
	else if (imap_utf8(s))
		rc = imap_fmt_astring(b, name, strlen(name), 1);
	else if (imap_utf8_to_mutf7(&m, name, strlen(name)) == 0)
		rc = imap_fmt_astring(b, m, strlen(m), 0);
	else
		rc = imap_fmt_astring(b, name, strlen(name), 0);
	free(m);
	if (rc < 0)
		fatalx("imap output buffer full");
}

void
imap_store_error(struct imap_session *s, int rc, const char *what)
{
	switch (rc) {
	case ERR_NOTFOUND:
		imap_tagged(s, "NO", "[NONEXISTENT] %s: no such mailbox",
		    what);
		break;
	case ERR_EXISTS:
		imap_tagged(s, "NO", "[ALREADYEXISTS] %s: already exists",
		    what);
		break;
	case ERR_TOOBIG:
		imap_tagged(s, "NO", "[OVERQUOTA] %s: %s", what, err_msg());
		break;
	case ERR_INVAL:
		imap_tagged(s, "NO", "[CANNOT] %s: %s", what, err_msg());
		break;
	case ERR_PERM:
		imap_tagged(s, "NO", "[CANNOT] %s: not allowed", what);
		break;
	default:
		log_warnx("%016llx imap %s: %s", (unsigned long long)s->id,
		    what, err_msg());
		imap_tagged(s, "NO", "[SERVERBUG] %s failed; try again later",
		    what);
		break;
	}
}

/* ------------------------------------------------------------ jobs */

static void
job_work(void *arg)
{
	struct imap_session	*s = arg;

	s->work(s);
	if (s->tstatus != NULL && s->state == IMAP_S_SELECTED &&
	    s->view != NULL && !s->dead)
		imap_view_sync(s, s->sync_expunge);
}

static void
job_done(void *arg)
{
	struct imap_session	*s = arg;

	s->busy = 0;
	/* it wrote (or another writer did meanwhile): tell the others */
	if (s->u != NULL && store_generation(s->ms->store) != s->job_gen)
		imap_notify_user(s->ms, s->user);
	if (s->dead) {
		imap_session_free(s);
		return;
	}
	imap_idle_recheck(s);
	imap_session_next(s);
}

void
imap_submit(struct imap_session *s, imap_fn fn)
{
	s->work = fn;
	s->busy = 1;
	s->job_gen = store_generation(s->ms->store);
	if (worker_submit(s->ms->workers, job_work, job_done, s) < 0) {
		s->busy = 0;
		imap_tagged(s, "NO", "[UNAVAILABLE] Server busy, try again");
		if (s->cstate_free != NULL)
			s->cstate_free(s->cstate);
		s->cstate = NULL;
		s->cstate_free = NULL;
		s->cont = NULL;
	}
}

struct imap_audit_req {
	struct imap_session	*s;
	imap_audit_fn		 fn;
};

static void
imap_audited(void *arg, int rc, uint64_t index)
{
	struct imap_audit_req	*r = arg;
	struct imap_session	*s = r->s;
	imap_audit_fn		 fn = r->fn;

	(void)index;
	free(r);
	s->busy = 0;
	if (s->dead) {
		imap_session_free(s);
		return;
	}
	if (rc < 0)
		log_warnx("%016llx imap audit record failed",
		    (unsigned long long)s->id);
	fn(s, rc);
	if (!s->busy)
		imap_session_next(s);
}

void
imap_audit(struct imap_session *s, const char *action, const char *object,
    int outcome, json_t *details, imap_audit_fn fn)
{
	struct imap_audit_req	*r;

	if (s->ms->audit == NULL) {
		json_decref(details);
		fn(s, ERR_IO);
		return;
	}
	r = xcalloc(1, sizeof(*r));
	r->s = s;
	r->fn = fn;
	s->busy = 1;
	if (auditsvc_record(s->ms->audit, s->user, s->dept,
	    net_conn_peer_ip(s->c), action, object, outcome, s->id, details,
	    imap_audited, r) < 0) {
		free(r);
		s->busy = 0;
		fn(s, ERR_IO);
	}
}

/*
 * After a handler, a job or an audit record: send the output, then the
 * tagged line, or go on with the command's next step once the output
 * has drained, or read the next command.
 */
void
imap_session_next(struct imap_session *s)
{
	imap_flush(s);
	if (s->busy || s->state == IMAP_S_LOGOUT)
		return;
	if (s->cmd != NULL) {
		if (s->tstatus != NULL) {
			if (s->cstate_free != NULL)
				s->cstate_free(s->cstate);
			s->cstate = NULL;
			s->cstate_free = NULL;
			s->cont = NULL;
			imap_send(s, "%s %s %s", s->tag, s->tstatus,
			    s->ttext);
			if (strcmp(s->tstatus, "BAD") == 0)
				imap_count_error(s);
			s->tstatus = NULL;
		} else if (s->cont != NULL) {
			net_conn_want_drain(s->c, IMAP_OUT_LOW);
			return;
		} else {
			log_warnx("%016llx imap %s ended without a reply",
			    (unsigned long long)s->id, s->cname);
			imap_send(s, "%s NO [SERVERBUG] Internal error",
			    s->tag);
		}
		s->cmd = NULL;
	}
	s->tstatus = NULL;
	if (s->state != IMAP_S_LOGOUT)
		net_conn_resume(s->c);
}

static void
imap_on_drain(struct net_conn *c)
{
	struct imap_session	*s = net_conn_get(c);
	imap_fn			 fn;

	if (s == NULL || s->busy || s->cont == NULL ||
	    s->state == IMAP_S_LOGOUT)
		return;
	fn = s->cont;
	s->cont = NULL;
	fn(s);
	if (!s->busy)
		imap_session_next(s);
}

/* ------------------------------------------------------------ dispatch */

static int
cmddef_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct imap_cmddef *)elem)->name);
}

static const struct imap_cmddef *
cmddef_find(const char *name)
{
	return bsearch(name, imap_cmds, sizeof(imap_cmds) /
	    sizeof(imap_cmds[0]), sizeof(imap_cmds[0]), cmddef_cmp);
}

static void
imap_dispatch(struct imap_session *s, const struct imap_cmd *cmd)
{
	const struct imap_cmddef	*def;
	const char			*name = cmd->name;

	snprintf(s->tag, sizeof(s->tag), "%s", cmd->tag);
	s->cmd = cmd;
	s->args = cmd->args;
	s->nargs = cmd->nargs;
	s->uid = 0;
	s->tstatus = NULL;
	if (strcmp(name, "UID") == 0) {
		if (cmd->nargs == 0 || cmd->args[0].type != IMAP_ARG_ATOM) {
			imap_tagged(s, "BAD", "UID needs a command");
			goto done;
		}
		name = cmd->args[0].str;
		s->args = cmd->args + 1;
		s->nargs = cmd->nargs - 1;
		s->uid = 1;
	}
	snprintf(s->cname, sizeof(s->cname), "%s%s", s->uid ? "UID " : "",
	    name);
	for (char *p = s->cname; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	def = cmddef_find(s->cname + (s->uid ? 4 : 0));
	if (def == NULL || (s->uid && !(def->flags & F_UID))) {
		imap_tagged(s, "BAD", "Unknown command %s", s->uid ?
		    "after UID" : "");
		goto done;
	}
	if (!(def->states & (1u << s->state))) {
		imap_tagged(s, "BAD", "%s is not allowed %s", s->cname,
		    s->state == IMAP_S_NOTAUTH ? "before login" :
		    s->state == IMAP_S_AUTH ? "without a selected mailbox" :
		    "after login");
		goto done;
	}
	err_clear();
	if (def->sig != NULL &&
	    imap_args_check(s->args, s->nargs, def->sig) < 0) {
		imap_bad_args(s);
		goto done;
	}
	if (s->uid && strcmp(def->name, "EXPUNGE") == 0 &&
	    imap_args_check(s->args, s->nargs, "any") < 0) {
		imap_bad_args(s);
		goto done;
	}
	if (!s->uid && strcmp(def->name, "EXPUNGE") == 0 && s->nargs != 0) {
		imap_tagged(s, "BAD", "EXPUNGE takes no arguments");
		goto done;
	}
	s->sync_expunge = !(def->flags & F_NOEXP) || s->uid;
	if (def->flags & F_LOOP)
		def->fn(s);
	else
		imap_submit(s, def->fn);
done:
	if (!s->busy)
		imap_session_next(s);
}

/* ------------------------------------------------------------ commands */

static void
cmd_capability(struct imap_session *s)
{
	imap_out(s, "* CAPABILITY %s", imap_capabilities(s));
	imap_tagged(s, "OK", "CAPABILITY completed");
}

/*
 * NOOP and CHECK: when nothing was written to the store since the
 * session's last look (the generation counter), there is nothing to
 * announce and no job is needed.
 */
static void
cmd_noop(struct imap_session *s)
{
	if (s->state == IMAP_S_SELECTED && (s->view->ngone > 0 ||
	    store_generation(s->ms->store) != s->view->gen))
		imap_submit(s, imap_cmd_noop);
	else
		imap_tagged(s, "OK", "%s completed", s->cname);
}

static void
cmd_logout(struct imap_session *s)
{
	imap_out(s, "* BYE Logging out");
	imap_flush(s);
	imap_send(s, "%s OK LOGOUT completed", s->tag);
	s->cmd = NULL;
	s->state = IMAP_S_LOGOUT;
	net_conn_close(s->c, "logout");
}

static void
cmd_namespace(struct imap_session *s)
{
	imap_out(s, "* NAMESPACE ((\"\" \"/\")) NIL NIL");
	imap_tagged(s, "OK", "NAMESPACE completed");
}

static void
cmd_setquota(struct imap_session *s)
{
	imap_tagged(s, "NO", "[NOPERM] Quotas are set by the administrator");
}

/* ID (RFC 2971): check the list, log nothing of it, answer our name. */
static void
cmd_id(struct imap_session *s)
{
	const struct imap_arg	*a = &s->args[0];
	size_t			 i;

	if (a->type == IMAP_ARG_LIST) {
		if (a->nlist % 2 != 0 || a->nlist / 2 > IMAP_ID_PAIRS_MAX) {
			imap_tagged(s, "BAD", "ID takes at most %d field-value "
			    "pairs", IMAP_ID_PAIRS_MAX);
			return;
		}
		for (i = 0; i < a->nlist; i++) {
			const char	*v;
			size_t		 n;

			if ((i % 2 == 0 ? imap_arg_string(&v, &n,
			    &a->list[i]) : imap_arg_nstring(&v, &n,
			    &a->list[i])) < 0 || n > IMAP_ID_FIELD_MAX) {
				imap_tagged(s, "BAD", "Invalid ID field");
				return;
			}
		}
	} else if (a->type != IMAP_ARG_NIL) {
		imap_tagged(s, "BAD", "ID takes a list or NIL");
		return;
	}
	imap_out(s, "* ID (\"name\" \"Amanat\" \"vendor\" \"Amanat\")");
	imap_tagged(s, "OK", "ID completed");
}

static void
cmd_enable(struct imap_session *s)
{
	struct buf	 b;
	size_t		 i;
	unsigned	 before = s->enabled, add = 0, bit, key;

	buf_init(&b, 4096);
	for (i = 0; i < s->nargs; i++) {
		const char	*e = s->args[i].str;

		if (strcasecmp(e, "CONDSTORE") == 0)
			key = bit = IMAP_E_CONDSTORE;
		else if (strcasecmp(e, "QRESYNC") == 0) {
			key = IMAP_E_QRESYNC;
			bit = IMAP_E_QRESYNC | IMAP_E_CONDSTORE;
		} else if (strcasecmp(e, "IMAP4rev2") == 0)
			key = bit = IMAP_E_REV2;
		else if (strcasecmp(e, "UTF8=ACCEPT") == 0)
			key = bit = IMAP_E_UTF8;
		else
			continue;	/* RFC 5161: unknown ones are ignored */
		if (!(before & key) && !(add & key))
			(void)buf_printf(&b, " %s", e);
		add |= bit;
	}
	s->enabled |= add;
	if (imap_utf8(s))
		imap_parser_set_flags(s->p, IMAP_PARSER_UTF8 |
		    IMAP_PARSER_LITERAL_PLUS);
	imap_out(s, "* ENABLED%s", b.len ? (char *)b.data : "");
	buf_free(&b);
	imap_tagged(s, "OK", "ENABLE completed");
}

static void
cmd_starttls(struct imap_session *s)
{
	if (net_conn_is_tls(s->c)) {
		imap_tagged(s, "BAD", "TLS is already active");
		return;
	}
	if (!imap_parser_idle(s->p) || evbuffer_get_length(s->in) > 0) {
		imap_bye(s, "Data sent after STARTTLS", "starttls-pipelined");
		return;
	}
	imap_send(s, "%s OK Begin TLS negotiation now", s->tag);
	s->cmd = NULL;
	if (net_conn_starttls(s->c) < 0) {
		log_info("%016llx imap starttls refused: %s",
		    (unsigned long long)s->id, err_msg());
		s->state = IMAP_S_LOGOUT;
		net_conn_close(s->c, "starttls-failed");
	}
}

static void
cmd_compress(struct imap_session *s)
{
	if (strcasecmp(s->args[0].str, "DEFLATE") != 0) {
		imap_tagged(s, "BAD", "Unknown compression mechanism");
		return;
	}
	if (s->compressed) {
		imap_tagged(s, "NO", "[COMPRESSIONACTIVE] Already compressed");
		return;
	}
	imap_send(s, "%s OK DEFLATE active", s->tag);
	s->cmd = NULL;
	if (net_conn_compress(s->c) < 0) {
		log_warnx("%016llx imap compress: %s",
		    (unsigned long long)s->id, err_msg());
		s->state = IMAP_S_LOGOUT;
		net_conn_close(s->c, "compress-failed");
		return;
	}
	s->compressed = 1;
}

/* ------------------------------------------------------------ IDLE */

/* ------------------------------------------------------------ login */

static void
later_fire(evutil_socket_t fd, short ev, void *arg)
{
	struct imap_session	*s = arg;

	event_free(s->later_ev);
	s->later_ev = NULL;
	s->busy = 0;
	imap_tagged(s, "NO", "%s", s->later_line);
	free(s->later_line);
	s->later_line = NULL;
	imap_session_next(s);
	if (s->login_fails >= IMAP_LOGIN_FAILS_MAX && s->state != IMAP_S_LOGOUT)
		imap_bye(s, "Too many failed logins", "auth-failures");
}

static void
login_fail_later(struct imap_session *s, const char *text)
{
	struct timeval	tv;
	unsigned char	r;
	unsigned	ms;

	RAND_bytes(&r, 1);
	ms = IMAP_AUTH_FAIL_MS + (unsigned)r * 4;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	s->login_fails++;
	s->later_line = xstrdup(text);
	s->later_ev = evtimer_new(s->ms->d->base, later_fire, s);
	evtimer_add(s->later_ev, &tv);
	s->busy = 1;
}

static void
login_audited(struct imap_session *s, int rc)
{
	struct imap_parser_limits	lim;

	if (rc < 0) {
		explicit_bzero(s->dek, sizeof(s->dek));
		imap_tagged(s, "NO", "[UNAVAILABLE] Login cannot be recorded; "
		    "try again later");
		return;
	}
	s->have_dek = 1;
	s->state = IMAP_S_AUTH;
	imap_user_attach(s);
	imap_parser_limits_default(&lim, 1);
	lim.literal_max = (uint64_t)s->ms->d->conf.mailsrv.max_message_size;
	if (lim.command_max < lim.literal_max + 65536)
		lim.command_max = lim.literal_max + 65536;
	imap_parser_set_limits(s->p, &lim);
	imap_parser_set_flags(s->p, IMAP_PARSER_LITERAL_PLUS |
	    (imap_utf8(s) ? IMAP_PARSER_UTF8 : 0));
	log_info("%016llx imap login user=%s", (unsigned long long)s->id,
	    s->user);
	imap_tagged(s, "OK", "[CAPABILITY %s] Logged in",
	    imap_capabilities(s));
}

static void
login_keyed(int rc, const unsigned char *dek, void *arg)
{
	struct imap_session	*s = arg;

	s->busy = 0;
	if (s->dead) {
		imap_session_free(s);
		return;
	}
	if (rc < 0) {
		imap_tagged(s, "NO", "[UNAVAILABLE] Mailbox key unavailable; "
		    "try again later");
		imap_session_next(s);
		return;
	}
	memcpy(s->dek, dek, STORE_DEK_LEN);
	imap_audit(s, "auth.imap", "imap", AUDIT_OK, NULL, login_audited);
	if (!s->busy)
		imap_session_next(s);
}

static void
login_key(struct imap_session *s)
{
	int	rc;

	rc = userkey_get(s->ms, s->user, s->dept[0] ? s->dept : NULL, s->dek,
	    login_keyed, s);
	if (rc == 1) {
		imap_audit(s, "auth.imap", "imap", AUDIT_OK, NULL,
		    login_audited);
	} else if (rc == 0) {
		s->busy = 1;
	} else {
		log_warnx("%016llx imap mailbox key of %s: %s",
		    (unsigned long long)s->id, s->user, err_msg());
		imap_tagged(s, "NO", "[UNAVAILABLE] Mailbox key unavailable; "
		    "try again later");
	}
}

static void
login_done(int status, json_t *body, void *arg)
{
	struct imap_session	*s = arg;
	json_t			*u = json_object_get(body, "user");
	const char		*addr = json_string_value(json_object_get(u,
	    "address"));
	const char		*dept = json_string_value(json_object_get(u,
	    "dept"));

	s->busy = 0;
	if (s->dead) {
		imap_session_free(s);
		return;
	}
	if (status == 200) {
		if (addr != NULL && strlen(addr) < sizeof(s->user))
			snprintf(s->user, sizeof(s->user), "%s", addr);
		snprintf(s->dept, sizeof(s->dept), "%s", dept ? dept : "");
		if (imap_user_sessions(s->user) >= IMAP_USER_SESSIONS_MAX) {
			imap_tagged(s, "NO", "[LIMIT] Too many sessions of "
			    "this user");
			s->user[0] = '\0';
		} else
			login_key(s);
	} else if (status == 401 || status == 403) {
		log_info("%016llx imap login failed user=%s status=%d",
		    (unsigned long long)s->id, s->user, status);
		if (s->ms->audit != NULL)
			(void)auditsvc_record(s->ms->audit, s->user, "",
			    net_conn_peer_ip(s->c), "auth.imap", "imap",
			    AUDIT_DENIED, s->id, json_pack("{s:i}", "status",
			    status), NULL, NULL);
		s->user[0] = '\0';
		login_fail_later(s, "[AUTHENTICATIONFAILED] Authentication "
		    "failed");
	} else if (status == 429) {
		s->user[0] = '\0';
		imap_tagged(s, "NO", "[UNAVAILABLE] Too many failed attempts; "
		    "try again later");
	} else {
		log_warnx("%016llx imap login unavailable status=%d",
		    (unsigned long long)s->id, status);
		s->user[0] = '\0';
		imap_tagged(s, "NO", "[UNAVAILABLE] Authentication is "
		    "unavailable; try again later");
	}
	if (!s->busy)
		imap_session_next(s);
}

/* Check user/password (NUL-terminated); the caller wipes pass. */
static void
login_check(struct imap_session *s, const char *user, size_t ulen,
    const char *pass, size_t plen)
{
	char	*p;

	if (ulen == 0 || ulen > AUTH_USER_MAX || memchr(user, '\0', ulen) ||
	    plen == 0 || plen > AUTH_PASS_MAX || memchr(pass, '\0', plen)) {
		login_fail_later(s, "[AUTHENTICATIONFAILED] Authentication "
		    "failed");
		return;
	}
	snprintf(s->user, sizeof(s->user), "%.*s", (int)ulen, user);
	p = xstrndup(pass, plen);
	if (keyclient_auth_password(s->ms->kc, s->user, p,
	    net_conn_peer_ip(s->c), login_done, s) < 0) {
		s->user[0] = '\0';
		imap_tagged(s, "NO", "[UNAVAILABLE] Authentication is "
		    "unavailable; try again later");
	} else
		s->busy = 1;
	xfreezero(p, plen + 1);
}

static void
cmd_login(struct imap_session *s)
{
	const char	*user, *pass;
	size_t		 ulen, plen;

	if (!net_conn_is_tls(s->c)) {
		imap_tagged(s, "NO", "[PRIVACYREQUIRED] LOGIN is disabled "
		    "before STARTTLS");
		return;
	}
	(void)imap_arg_astring(&user, &ulen, &s->args[0]);
	(void)imap_arg_astring(&pass, &plen, &s->args[1]);
	login_check(s, user, ulen, pass, plen);
}

static void
auth_plain(struct imap_session *s, const char *b64, size_t len)
{
	char	*user = NULL, *pass = NULL;
	int	 rc;

	rc = sasl_plain_decode(b64, len, &user, &pass, AUTH_USER_MAX,
	    AUTH_PASS_MAX);
	if (rc == ERR_PERM || rc == ERR_TOOBIG) {
		login_fail_later(s, rc == ERR_PERM ? "[AUTHORIZATIONFAILED] "
		    "Authorization identity refused" : "[AUTHENTICATIONFAILED] "
		    "Authentication failed");
		return;
	}
	if (rc < 0) {
		imap_tagged(s, "BAD", "Invalid PLAIN response");
		return;
	}
	login_check(s, user, strlen(user), pass, strlen(pass));
	sasl_plain_free(user, pass);
}

/* The client's response line to "+ " after AUTHENTICATE PLAIN. */
static void
auth_line(struct imap_session *s, const struct imap_cmd *cmd)
{
	imap_parser_set_raw(s->p, 0);
	s->authing = 0;
	s->cmd = cmd;
	if (cmd->linelen == 1 && cmd->line[0] == '*')
		imap_tagged(s, "BAD", "Authentication cancelled");
	else
		auth_plain(s, cmd->line, cmd->linelen);
	if (!s->busy)
		imap_session_next(s);
}

static void
cmd_authenticate(struct imap_session *s)
{
	const char	*ir;

	if (strcasecmp(s->args[0].str, "PLAIN") != 0) {
		imap_tagged(s, "NO", "Unsupported authentication mechanism");
		return;
	}
	if (!net_conn_is_tls(s->c)) {
		imap_tagged(s, "NO", "[PRIVACYREQUIRED] Authentication is "
		    "disabled before STARTTLS");
		return;
	}
	if (s->nargs == 2) {		/* SASL-IR (RFC 4959) */
		ir = s->args[1].str;
		if (strcmp(ir, "=") == 0)
			auth_plain(s, "", 0);
		else
			auth_plain(s, ir, s->args[1].len);
		return;
	}
	imap_send(s, "+ ");
	s->cmd = NULL;		/* the response arrives as a raw line */
	s->authing = 1;
	imap_parser_set_raw(s->p, 1);
}

/* ------------------------------------------------------------ input */

static void
imap_parse_failed(struct imap_session *s)
{
	const struct imap_parse_error	*e = imap_parser_error(s->p);

	if (e->fatal) {
		imap_bye(s, e->msg, "parse-fatal");
		return;
	}
	imap_send(s, "%s BAD %s%s%s%s", e->has_tag ? e->tag : "*",
	    e->resp_code ? "[" : "", e->resp_code ? e->resp_code : "",
	    e->resp_code ? "] " : "", e->msg);
	imap_count_error(s);
}

/* A literal header: accept it ("+" for {n}) or refuse it. */
static void
imap_literal(struct imap_session *s)
{
	struct imap_literal_info	li;
	uint64_t			limit;

	if (imap_parser_literal_info(s->p, &li) < 0)
		return;
	limit = (uint64_t)s->ms->d->conf.mailsrv.max_message_size;
	if (s->state != IMAP_S_NOTAUTH && li.name != NULL &&
	    strcmp(li.name, "APPEND") == 0 && li.size > limit) {
		(void)imap_parser_literal_reject(s->p);
		imap_send(s, "%s NO [TOOBIG] The message is larger than "
		    "APPENDLIMIT=%llu", li.tag, (unsigned long long)limit);
		return;
	}
	if (li.sync)
		imap_send(s, "+ Ready for literal data");
}

/* Rate limit: at most IMAP_CMDS_PER_SEC commands in one second. */
static void
rate_resume(evutil_socket_t fd, short ev, void *arg)
{
	struct imap_session	*s = arg;

	net_conn_resume(s->c);
}

static int
imap_rate_ok(struct imap_session *s)
{
	uint64_t	sec = now_ms() / 1000;
	struct timeval	tv = { 0, 100 * 1000 };

	if (sec != s->rate_sec) {
		s->rate_sec = sec;
		s->rate_n = 0;
	}
	if (++s->rate_n <= IMAP_CMDS_PER_SEC)
		return 1;
	s->rate_n--;
	net_conn_pause(s->c);
	if (s->rate_ev == NULL)
		s->rate_ev = evtimer_new(s->ms->d->base, rate_resume, s);
	evtimer_add(s->rate_ev, &tv);
	return 0;
}

static void
imap_process_input(struct imap_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec	 v;
	const struct imap_cmd	*cmd;
	size_t			 used;
	int			 rc;

	while (!s->busy && s->cmd == NULL && s->state != IMAP_S_LOGOUT &&
	    evbuffer_peek(in, -1, NULL, &v, 1) > 0) {
		if (imap_parser_idle(s->p) && !imap_rate_ok(s))
			return;
		rc = imap_parser_feed(s->p, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (rc == ERR_AGAIN)
			continue;
		if (rc == IMAP_PARSE_CONTINUE) {
			imap_literal(s);
			continue;
		}
		if (rc < 0) {
			imap_parse_failed(s);
			continue;
		}
		cmd = imap_parser_cmd(s->p);
		if (cmd->tag == NULL) {		/* a raw line */
			if (s->idling)
				imap_idle_line(s, cmd);
			else
				auth_line(s, cmd);
			continue;
		}
		imap_dispatch(s, cmd);
	}
	if (s->busy || s->cmd != NULL)
		net_conn_pause(s->c);
}

static void
imap_on_read(struct net_conn *c, struct evbuffer *in)
{
	struct imap_session	*s = net_conn_get(c);

	s->in = in;
	imap_process_input(s, in);
}

static void
imap_on_open(struct net_conn *c)
{
	struct imap_session	*s;

	s = xcalloc(1, sizeof(*s));
	s->ms = net_server_arg(net_conn_server(c));
	s->c = c;
	s->id = net_conn_id(c);
	s->p = imap_parser_new(NULL, 0);
	buf_init(&s->out, (size_t)s->ms->d->conf.mailsrv.max_message_size * 3 +
	    16 * 1024 * 1024);
	s->next = sessions;
	if (sessions != NULL)
		sessions->prev = s;
	sessions = s;
	net_conn_set(c, s);
	log_info("%016llx imap connected peer=%s tls=%d",
	    (unsigned long long)s->id, net_conn_peer(c), net_conn_is_tls(c));
	imap_send(s, "* OK [CAPABILITY %s] Amanat IMAP ready",
	    imap_capabilities(s));
}

static void
imap_on_timeout(struct net_conn *c)
{
	struct imap_session	*s = net_conn_get(c);

	if (!s->busy)
		imap_send(s, "* BYE Autologout; idle for too long");
}

static void
imap_on_evict(struct net_conn *c)
{
	struct imap_session	*s = net_conn_get(c);

	if (!s->busy)
		imap_send(s, "* BYE Too many connections");
}

void
imap_session_free(struct imap_session *s)
{
	imap_user_detach(s);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else if (sessions == s)
		sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	if (s->cstate_free != NULL)
		s->cstate_free(s->cstate);
	imap_view_free(&s->view);
	free(s->saved);
	imap_parser_free(&s->p);
	buf_free_secret(&s->out);
	if (s->rate_ev != NULL)
		event_free(s->rate_ev);
	free(s->later_line);
	explicit_bzero(s->dek, sizeof(s->dek));
	free(s);
}

static void
imap_on_close(struct net_conn *c, const char *reason)
{
	struct imap_session	*s = net_conn_get(c);

	log_info("%016llx imap disconnected reason=%s",
	    (unsigned long long)net_conn_id(c), reason);
	if (s == NULL)
		return;
	imap_idle_unlink(s);
	if (s->later_ev != NULL) {
		event_free(s->later_ev);
		s->later_ev = NULL;
		s->busy = 0;
	}
	if (s->rate_ev != NULL) {
		event_free(s->rate_ev);
		s->rate_ev = NULL;
	}
	s->state = IMAP_S_LOGOUT;
	s->c = NULL;
	if (s->busy) {
		s->dead = 1;	/* the job's or the call's end frees it */
		return;
	}
	imap_session_free(s);
}

static const struct net_ops imap_ops = {
	.on_open = imap_on_open,
	.on_read = imap_on_read,
	.on_drain = imap_on_drain,
	.on_timeout = imap_on_timeout,
	.on_evict = imap_on_evict,
	.on_close = imap_on_close,
};

int
imap_server_start(struct mailsrv *ms)
{
	const struct amanat_conf	*cf = &ms->d->conf;
	struct net_limits		 lim;
	int				 rc;

	mailsrv_limits(&lim, cf, 1);
	if ((rc = imap_idle_start(ms)) < 0)
		return rc;
	net_server_new(&ms->imap, ms->d->base, "imap", &lim, &imap_ops, ms);
	net_server_set_tls(ms->imap, ms->d->tls);
	if ((rc = net_server_listen(ms->imap, cf->mailsrv.imap_listen,
	    NET_PLAIN, NULL)) < 0 ||
	    (rc = net_server_listen(ms->imap, cf->mailsrv.imaps_listen,
	    NET_TLS, NULL)) < 0)
		return rc;
	return 0;
}

void
imap_server_stop(struct mailsrv *ms)
{
	imap_idle_stop(ms);
}
