/*
 * smtp_session.c -- the SMTP server: sessions, commands and policy.
 *
 * Runs in: the mailsrv process, event loop thread.
 * Services: MX (no AUTH; mail only for local users), submission (AUTH
 * after STARTTLS; relays for authenticated users), implicit-TLS
 * submission.  ESMTP: EHLO/HELO, STARTTLS, AUTH PLAIN/LOGIN, MAIL, RCPT,
 * DATA, BDAT (CHUNKING), RSET, NOOP, VRFY (252), HELP, QUIT; PIPELINING,
 * SIZE, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, DSN parameters.
 * Failure policy: protocol errors get 5xx replies; after SMTP_MAX_ERRORS
 * the session gets 421 and closes; after SMTP_TARPIT_AFTER errors every
 * error reply slows the client down.  Keyservice or the queue being
 * unavailable is a 4xx (try again), never an acceptance.
 * SECURITY: command lines are bounded while bytes arrive; plaintext
 * pipelined after STARTTLS is never acted upon; a client that pipelines
 * without having negotiated PIPELINING is disconnected; MX never relays;
 * the envelope sender of submission must be the authenticated user.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mailsrv/rcptcache.h"
#include "mailsrv/smtp/smtp.h"

static const char *const smtp_state_names[] = {
	"greeted", "helo", "mail", "data", "bdat", "auth", "quit",
};

void
smtp_enter_state(struct smtp_session *s, enum smtp_state st)
{
	if ((size_t)st >= nitems(smtp_state_names))
		fatalx("smtp: unknown state %d", (int)st);
	log_trace("%016llx smtp state %s -> %s",
	    (unsigned long long)net_conn_id(s->c), smtp_state_names[s->state],
	    smtp_state_names[st]);
	s->state = st;
}

void
smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	char	line[SMTP_CMD_LINE_MAX];
	va_list	ap;
	int	n;

	if (s->dead)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		fatalx("smtp reply too long");
	memcpy(line + n, "\r\n", 2);
	if (s->state != SMTP_S_QUIT &&
	    net_conn_write(s->c, line, (size_t)n + 2) < 0) {
		smtp_enter_state(s, SMTP_S_QUIT);
		net_conn_close(s->c, "output-limit");
	}
}

const char *
smtp_hostname(struct smtp_session *s)
{
	return s->ms->d->conf.mailsrv.hostname;
}

static void	smtp_session_free(struct smtp_session *);

void
smtp_async_begin(struct smtp_session *s)
{
	s->pending++;
	net_conn_pause(s->c);
}

int
smtp_async_end(struct smtp_session *s)
{
	s->pending--;
	if (s->dead) {
		if (s->pending == 0)
			smtp_session_free(s);
		return -1;
	}
	if (s->pending == 0 && s->delay_ev == NULL)
		net_conn_resume(s->c);
	return 0;
}

static void
smtp_delay_fire(evutil_socket_t fd, short ev, void *arg)
{
	struct smtp_session	*s = arg;
	char			*reply = s->delayed;

	event_free(s->delay_ev);
	s->delay_ev = NULL;
	s->delayed = NULL;
	if (reply != NULL) {
		smtp_reply(s, "%s", reply);
		free(reply);
	}
	smtp_async_end(s);
}

void
smtp_reply_later(struct smtp_session *s, unsigned ms, const char *reply)
{
	struct timeval	tv = { ms / 1000, (ms % 1000) * 1000 };

	if (s->delay_ev != NULL) {	/* already waiting: reply now */
		if (reply != NULL)
			smtp_reply(s, "%s", reply);
		return;
	}
	s->delayed = reply ? xstrdup(reply) : NULL;
	s->delay_ev = evtimer_new(s->ms->d->base, smtp_delay_fire, s);
	smtp_async_begin(s);
	evtimer_add(s->delay_ev, &tv);
}

/* An error reply that counts toward the limits. */
void
smtp_error(struct smtp_session *s, const char *reply)
{
	if (++s->nerrors >= SMTP_MAX_ERRORS) {
		smtp_reply(s, "%s", reply);
		smtp_reply(s, "421 4.7.0 %s Too many errors, closing",
		    smtp_hostname(s));
		smtp_enter_state(s, SMTP_S_QUIT);
		net_conn_close(s->c, "too-many-errors");
	} else if (s->nerrors > SMTP_TARPIT_AFTER) {
		smtp_reply_later(s, SMTP_TARPIT_MS, reply);
	} else
		smtp_reply(s, "%s", reply);
}

void
smtp_tx_free(struct smtp_tx **txp)
{
	struct smtp_tx	*tx = *txp;
	size_t		 i;

	if (tx == NULL)
		return;
	queue_writer_abort(&tx->w);
	for (i = 0; i < tx->env.nrcpts; i++) {
		free(tx->env.rcpts[i].addr);
		free(tx->env.rcpts[i].orcpt);
		free(tx->env.rcpts[i].dept);
		free(tx->env.rcpts[i].status);	/* direct delivery's */
	}
	free(tx->env.rcpts);
	free(tx->env.sender);
	free(tx->env.envid);
	line_reader_free(&tx->dlr);
	buf_free(&tx->hdr);
	free(tx);
	*txp = NULL;
}

static void
smtp_tx_reset(struct smtp_session *s)
{
	smtp_tx_free(&s->tx);
	if (s->state == SMTP_S_MAIL || s->state == SMTP_S_DATA ||
	    s->state == SMTP_S_BDAT)
		smtp_enter_state(s, SMTP_S_HELO);
}

/* ------------------------------------------------------------ parsing */

/*
 * Parse "<path>" (after "FROM:" or "TO:"), lower-casing the domain, into
 * out; *rest points after the '>'.  0, or -1 for a syntax error.
 */
int
smtp_parse_path(char *out, size_t outlen, const char *p, const char **rest)
{
	const char	*end;
	size_t		 n, i;
	char		*at;

	while (*p == ' ')
		p++;
	if (*p != '<' || (end = strchr(p, '>')) == NULL)
		return -1;
	p++;
	n = (size_t)(end - p);
	if (n >= outlen || n > SMTP_ADDR_MAX)
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	for (i = 0; i < n; i++)
		if ((unsigned char)out[i] <= ' ' || out[i] == '<' ||
		    out[i] == '"' || out[i] == '\\')
			return -1;
	if (out[0] == '@') {		/* source route: drop it */
		char *colon = strchr(out, ':');

		if (colon == NULL)
			return -1;
		memmove(out, colon + 1, strlen(colon + 1) + 1);
	}
	if (out[0] != '\0') {
		if ((at = strrchr(out, '@')) == NULL || at == out ||
		    at[1] == '\0')
			return -1;
		for (at++; *at != '\0'; at++)
			*at = (char)tolower((unsigned char)*at);
	}
	*rest = end + 1;
	return 0;
}

/* Next " KEY=VALUE" or " KEY" parameter; 0 at the end, -1 on error. */
static int
smtp_next_param(const char **p, char *key, size_t klen, char *val,
    size_t vlen)
{
	const char	*q = *p, *eq, *sp;
	size_t		 n;

	while (*q == ' ')
		q++;
	if (*q == '\0')
		return 0;
	sp = q + strcspn(q, " ");
	eq = memchr(q, '=', (size_t)(sp - q));
	n = (size_t)((eq ? eq : sp) - q);
	if (n == 0 || n >= klen)
		return -1;
	memcpy(key, q, n);
	key[n] = '\0';
	val[0] = '\0';
	if (eq != NULL) {
		n = (size_t)(sp - eq - 1);
		if (n >= vlen)
			return -1;
		memcpy(val, eq + 1, n);
		val[n] = '\0';
	}
	*p = sp;
	return 1;
}

/* ------------------------------------------------------------ commands */

static int
smtp_domain_ok(const char *arg)
{
	size_t	i, n = strlen(arg);

	if (n == 0 || n > SMTP_HELO_MAX)
		return 0;
	if (arg[0] == '[' && arg[n - 1] == ']')
		return 1;	/* address literal */
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)arg[i]) && arg[i] != '-' &&
		    arg[i] != '.' && arg[i] != '_')
			return 0;
	return 1;
}

static int
smtp_auth_offered(struct smtp_session *s)
{
	return s->svc != SMTP_SVC_MX && net_conn_is_tls(s->c) &&
	    !s->authenticated;
}

static void
smtp_cmd_helo(struct smtp_session *s, const char *arg, int esmtp)
{
	const struct amanat_conf	*cf = &s->ms->d->conf;

	if (!smtp_domain_ok(arg)) {
		smtp_error(s, "501 5.5.4 Syntax: EHLO hostname");
		return;
	}
	smtp_tx_reset(s);
	strlcpy(s->helo, arg, sizeof(s->helo));
	s->esmtp = esmtp;
	smtp_enter_state(s, SMTP_S_HELO);
	if (!esmtp) {
		smtp_reply(s, "250 %s", smtp_hostname(s));
		return;
	}
	smtp_reply(s, "250-%s Hello %s [%s]", smtp_hostname(s), s->helo,
	    net_conn_peer_ip(s->c));
	smtp_reply(s, "250-PIPELINING");
	smtp_reply(s, "250-SIZE %lld", cf->mailsrv.max_message_size);
	if (!net_conn_is_tls(s->c))
		smtp_reply(s, "250-STARTTLS");
	if (smtp_auth_offered(s))
		smtp_reply(s, "250-AUTH PLAIN LOGIN");
	smtp_reply(s, "250-8BITMIME");
	smtp_reply(s, "250-SMTPUTF8");
	smtp_reply(s, "250-DSN");
	smtp_reply(s, "250-CHUNKING");
	smtp_reply(s, "250 ENHANCEDSTATUSCODES");
}

static void
smtp_cmd_starttls(struct smtp_session *s, const char *arg,
    struct evbuffer *in)
{
	if (net_conn_is_tls(s->c)) {
		smtp_error(s, "503 5.5.1 TLS already active");
		return;
	}
	if (*arg != '\0') {
		smtp_error(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (evbuffer_get_length(in) > 0) {
		/* plaintext pipelined after STARTTLS: never act on it */
		smtp_reply(s, "554 5.5.1 Data sent after STARTTLS, closing");
		smtp_enter_state(s, SMTP_S_QUIT);
		net_conn_close(s->c, "starttls-pipelined");
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	if (net_conn_starttls(s->c) < 0) {
		log_info("%016llx smtp starttls refused: %s",
		    (unsigned long long)net_conn_id(s->c), err_msg());
		smtp_enter_state(s, SMTP_S_QUIT);
		net_conn_close(s->c, "starttls-failed");
		return;
	}
	/* RFC 3207 4.2: forget everything learned before TLS */
	smtp_tx_reset(s);
	s->helo[0] = '\0';
	s->esmtp = 0;
	smtp_enter_state(s, SMTP_S_GREETED);
}

static int
smtp_mail_params(struct smtp_session *s, struct smtp_tx *tx, const char *p)
{
	char		key[32], val[SMTP_PARAM_MAX];
	long long	size;
	int		r;

	while ((r = smtp_next_param(&p, key, sizeof(key), val,
	    sizeof(val))) > 0) {
		if (strcasecmp(key, "SIZE") == 0) {
			if (parse_ll(&size, val, 0, INT64_MAX) < 0) {
				smtp_error(s, "501 5.5.4 Bad SIZE parameter");
				return -1;
			}
			if (size > s->ms->d->conf.mailsrv.max_message_size) {
				smtp_error(s, "552 5.3.4 Message size exceeds "
				    "fixed maximum message size");
				return -1;
			}
		} else if (strcasecmp(key, "BODY") == 0) {
			if (strcasecmp(val, "8BITMIME") == 0)
				tx->env.body_8bit = 1;
			else if (strcasecmp(val, "7BIT") != 0) {
				smtp_error(s, "501 5.5.4 Bad BODY parameter");
				return -1;
			}
		} else if (strcasecmp(key, "SMTPUTF8") == 0 && val[0] == '\0') {
			tx->env.smtputf8 = 1;
		} else if (strcasecmp(key, "RET") == 0) {
			if (strcasecmp(val, "FULL") == 0)
				tx->env.ret_full = 1;
			else if (strcasecmp(val, "HDRS") != 0) {
				smtp_error(s, "501 5.5.4 Bad RET parameter");
				return -1;
			}
		} else if (strcasecmp(key, "ENVID") == 0 && val[0] != '\0' &&
		    strlen(val) <= 100) {
			free(tx->env.envid);
			tx->env.envid = xstrdup(val);
		} else if (strcasecmp(key, "AUTH") == 0) {
			/* RFC 4954 5: accepted, not trusted */
		} else {
			smtp_error(s, "555 5.5.4 Unsupported MAIL parameter");
			return -1;
		}
	}
	if (r < 0) {
		smtp_error(s, "501 5.5.4 Syntax error in parameters");
		return -1;
	}
	return 0;
}

static void
smtp_cmd_mail(struct smtp_session *s, const char *arg)
{
	char		 addr[SMTP_ADDR_MAX + 1];
	const char	*rest;
	struct smtp_tx	*tx;

	if (s->state == SMTP_S_GREETED) {
		smtp_error(s, "503 5.5.1 Send EHLO first");
		return;
	}
	if (s->tx != NULL) {
		smtp_error(s, "503 5.5.1 Nested MAIL command");
		return;
	}
	if (s->svc != SMTP_SVC_MX && !s->authenticated) {
		smtp_error(s, "530 5.7.0 Authentication required");
		return;
	}
	if (strncasecmp(arg, "FROM:", 5) != 0 ||
	    smtp_parse_path(addr, sizeof(addr), arg + 5, &rest) < 0) {
		smtp_error(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	if (s->ms->queue == NULL) {
		smtp_reply(s, "451 4.3.0 Mail system not ready, try again "
		    "later");
		return;
	}
	if (s->ntx >= SMTP_MAX_TX) {
		smtp_reply(s, "421 4.7.0 %s Too many transactions, closing",
		    smtp_hostname(s));
		smtp_enter_state(s, SMTP_S_QUIT);
		net_conn_close(s->c, "too-many-transactions");
		return;
	}
	if (s->authenticated && strcasecmp(addr, s->user) != 0) {
		smtp_error(s, "553 5.7.1 Sender address rejected: not owned "
		    "by the authenticated user");
		return;
	}
	tx = xcalloc(1, sizeof(*tx));
	tx->env.sender = xstrdup(addr);
	if (smtp_mail_params(s, tx, rest) < 0) {
		smtp_tx_free(&tx);
		return;
	}
	s->tx = tx;
	s->ntx++;
	smtp_enter_state(s, SMTP_S_MAIL);
	smtp_reply(s, "250 2.1.0 Ok");
}

/* ------------------------------------------------------------ RCPT */

struct smtp_rcpt_job {
	struct smtp_session	*s;
	struct queue_rcpt	 r;
};

static void
smtp_rcpt_add(struct smtp_session *s, struct queue_rcpt *r)
{
	struct smtp_tx	*tx = s->tx;

	if (tx->env.nrcpts == tx->rcpts_cap) {
		tx->rcpts_cap = tx->rcpts_cap ? tx->rcpts_cap * 2 : 8;
		tx->env.rcpts = xreallocarray(tx->env.rcpts, tx->rcpts_cap,
		    sizeof(*tx->env.rcpts));
	}
	tx->env.rcpts[tx->env.nrcpts++] = *r;
	memset(r, 0, sizeof(*r));
	smtp_reply(s, "250 2.1.5 Ok");
}

static void
smtp_rcpt_job_free(struct smtp_rcpt_job *j)
{
	free(j->r.addr);
	free(j->r.orcpt);
	free(j->r.dept);
	free(j);
}

/* The directory's answer for a local recipient (cached or fresh). */
static void
smtp_rcpt_answer(struct smtp_session *s, struct queue_rcpt *r, int answer,
    const char *dept)
{
	if (answer == RCPT_ACTIVE) {
		r->dept = xstrdup(dept);
		smtp_rcpt_add(s, r);
	} else if (answer == RCPT_DISABLED)
		smtp_error(s, "550 5.2.1 Mailbox disabled");
	else
		smtp_error(s, "550 5.1.1 Recipient address rejected: user "
		    "unknown");
}

static void
smtp_rcpt_lookup_done(int status, json_t *body, void *arg)
{
	struct smtp_rcpt_job	*j = arg;
	struct smtp_session	*s = j->s;
	const char		*st, *dept;
	int			 answer = 0;

	st = json_string_value(json_object_get(body, "status"));
	dept = json_string_value(json_object_get(body, "dept"));
	if (status == 200 && dept != NULL && st != NULL &&
	    strcmp(st, "active") == 0)
		answer = RCPT_ACTIVE;
	else if (status == 200)
		answer = RCPT_DISABLED;
	else if (status == 404)
		answer = RCPT_UNKNOWN;
	if (answer != 0)
		rcptcache_put(j->r.addr, answer, dept);
	if (smtp_async_end(s) < 0 || s->tx == NULL) {
		smtp_rcpt_job_free(j);
		return;
	}
	if (answer != 0)
		smtp_rcpt_answer(s, &j->r, answer, dept);
	else {
		log_warnx("%016llx smtp recipient lookup failed status=%d",
		    (unsigned long long)net_conn_id(s->c), status);
		smtp_reply(s, "451 4.4.3 Directory unavailable, try again "
		    "later");
	}
	smtp_rcpt_job_free(j);
}

static int
smtp_rcpt_params(struct smtp_session *s, struct queue_rcpt *r, const char *p)
{
	char	key[32], val[SMTP_PARAM_MAX], *tok, *save = NULL;
	int	rc;

	while ((rc = smtp_next_param(&p, key, sizeof(key), val,
	    sizeof(val))) > 0) {
		if (strcasecmp(key, "NOTIFY") == 0) {
			for (tok = strtok_r(val, ",", &save); tok != NULL;
			    tok = strtok_r(NULL, ",", &save)) {
				if (strcasecmp(tok, "NEVER") == 0)
					r->notify |= QUEUE_NOTIFY_NEVER;
				else if (strcasecmp(tok, "SUCCESS") == 0)
					r->notify |= QUEUE_NOTIFY_SUCCESS;
				else if (strcasecmp(tok, "FAILURE") == 0)
					r->notify |= QUEUE_NOTIFY_FAILURE;
				else if (strcasecmp(tok, "DELAY") == 0)
					r->notify |= QUEUE_NOTIFY_DELAY;
				else
					return -1;
			}
			if ((r->notify & QUEUE_NOTIFY_NEVER) &&
			    r->notify != QUEUE_NOTIFY_NEVER)
				return -1;
		} else if (strcasecmp(key, "ORCPT") == 0 && val[0] != '\0' &&
		    strlen(val) <= 500) {
			free(r->orcpt);
			r->orcpt = xstrdup(val);
		} else
			return -1;
	}
	return rc;
}

/*
 * "TO:<Postmaster>" with no domain, in any case (RFC 5321 4.1.1.3: every
 * SMTP server must accept it): 1, with the [mailsrv] postmaster address
 * in addr (-1 if none is configured or it is not an address) and *rest
 * after the '>'; 0 if arg is anything else.
 */
static int
smtp_bare_postmaster(struct smtp_session *s, const char *arg, char *addr,
    size_t addrlen, const char **rest)
{
	const char	*pm = s->ms->d->conf.mailsrv.postmaster, *r;
	char		 path[SMTP_ADDR_MAX + 3];

	arg += 3;
	while (*arg == ' ')
		arg++;
	if (strncasecmp(arg, "<postmaster>", 12) != 0)
		return 0;
	*rest = arg + 12;
	snprintf(path, sizeof(path), "<%s>", pm);
	if (pm[0] == '\0' || smtp_parse_path(addr, addrlen, path, &r) < 0 ||
	    addr[0] == '\0' || *r != '\0')
		return -1;
	return 1;
}

static void
smtp_cmd_rcpt(struct smtp_session *s, const char *arg)
{
	char			 addr[SMTP_ADDR_MAX + 1];
	char			 dept[RCPT_CACHE_DEPT_MAX + 1];
	const char		*rest, *domain;
	struct queue_rcpt	 r;
	struct smtp_rcpt_job	*j;
	int			 answer, pm;

	if (s->tx == NULL) {
		smtp_error(s, "503 5.5.1 Need MAIL before RCPT");
		return;
	}
	if (strncasecmp(arg, "TO:", 3) != 0) {
		smtp_error(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if ((pm = smtp_bare_postmaster(s, arg, addr, sizeof(addr),
	    &rest)) < 0) {
		smtp_error(s, "550 5.1.1 <postmaster>: no postmaster address "
		    "here");
		return;
	}
	if (pm == 0 && (smtp_parse_path(addr, sizeof(addr), arg + 3,
	    &rest) < 0 || addr[0] == '\0')) {
		smtp_error(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if (s->tx->env.nrcpts >=
	    (size_t)s->ms->d->conf.mailsrv.max_recipients) {
		smtp_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	memset(&r, 0, sizeof(r));
	if (smtp_rcpt_params(s, &r, rest) < 0) {
		free(r.orcpt);
		smtp_error(s, "555 5.5.4 Unsupported RCPT parameter");
		return;
	}
	r.addr = xstrdup(addr);
	domain = strrchr(addr, '@') + 1;
	if (!s->ms->domains_ok) {
		smtp_reply(s, "451 4.4.3 Directory unavailable, try again "
		    "later");
		goto drop;
	}
	if (!mailsrv_local_domain(s->ms, domain)) {
		if (pm) {
			log_warnx("[mailsrv] postmaster %s is not a local "
			    "address", addr);
			smtp_error(s, "550 5.1.1 <postmaster>: no postmaster "
			    "address here");
			goto drop;
		}
		if (!s->authenticated) {
			smtp_error(s, "554 5.7.1 Relay access denied");
			goto drop;
		}
		smtp_rcpt_add(s, &r);	/* relay for an authenticated user */
		return;
	}
	r.local = 1;
	mailsrv_local_addr(r.addr);	/* Bob@ is bob@ */
	mailsrv_local_addr(addr);
	if ((answer = rcptcache_get(addr, dept, sizeof(dept))) != 0) {
		smtp_rcpt_answer(s, &r, answer, dept);
		if (answer == RCPT_ACTIVE)
			return;		/* r belongs to the transaction */
		goto drop;
	}
	j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->r = r;
	if (keyclient_user(s->ms->kc, addr, smtp_rcpt_lookup_done, j) < 0) {
		smtp_rcpt_job_free(j);
		smtp_reply(s, "451 4.3.2 System busy, try again later");
		return;
	}
	smtp_async_begin(s);
	return;
drop:
	free(r.addr);
	free(r.orcpt);
}

/* ------------------------------------------------------------ dispatch */

static void
smtp_command(struct smtp_session *s, char *line, struct evbuffer *in)
{
	char	*verb = line, *arg;
	char	 esc[64];
	int	 long_line = s->lr.line.len > SMTP_CMD_LINE_MAX - 2;

	if (strlen(line) != s->lr.line.len) {
		smtp_error(s, "500 5.5.2 NUL byte in command");
		return;
	}
	arg = line + strcspn(line, " ");
	if (*arg != '\0')
		*arg++ = '\0';
	log_debug("%016llx smtp command verb=%s",
	    (unsigned long long)net_conn_id(s->c),
	    log_escape(esc, sizeof(esc), verb, strlen(verb)));
	if (long_line && strcasecmp(verb, "AUTH") != 0) {
		smtp_error(s, "500 5.5.2 Line too long");
		return;
	}
	if (++s->ncommands > SMTP_MAX_COMMANDS) {
		smtp_reply(s, "421 4.7.0 %s Too many commands, closing",
		    smtp_hostname(s));
		smtp_enter_state(s, SMTP_S_QUIT);
		net_conn_close(s->c, "too-many-commands");
		return;
	}
	if (strcasecmp(verb, "EHLO") == 0 || strcasecmp(verb, "HELO") == 0)
		smtp_cmd_helo(s, arg, toupper((unsigned char)verb[0]) == 'E');
	else if (strcasecmp(verb, "STARTTLS") == 0)
		smtp_cmd_starttls(s, arg, in);
	else if (strcasecmp(verb, "AUTH") == 0)
		smtp_cmd_auth(s, arg);
	else if (strcasecmp(verb, "MAIL") == 0)
		smtp_cmd_mail(s, arg);
	else if (strcasecmp(verb, "RCPT") == 0)
		smtp_cmd_rcpt(s, arg);
	else if (strcasecmp(verb, "DATA") == 0)
		smtp_data_begin(s);
	else if (strcasecmp(verb, "BDAT") == 0)
		smtp_cmd_bdat(s, arg);
	else if (strcasecmp(verb, "RSET") == 0) {
		smtp_tx_reset(s);
		smtp_reply(s, "250 2.0.0 Ok");
	} else if (strcasecmp(verb, "NOOP") == 0)
		smtp_reply(s, "250 2.0.0 Ok");
	else if (strcasecmp(verb, "VRFY") == 0)
		smtp_reply(s, "252 2.5.0 Cannot VRFY user, but will accept "
		    "message and attempt delivery");
	else if (strcasecmp(verb, "EXPN") == 0)
		smtp_error(s, "502 5.5.1 EXPN not available");
	else if (strcasecmp(verb, "HELP") == 0)
		smtp_reply(s, "214 2.0.0 See RFC 5321");
	else if (strcasecmp(verb, "QUIT") == 0) {
		smtp_reply(s, "221 2.0.0 %s Bye", smtp_hostname(s));
		smtp_enter_state(s, SMTP_S_QUIT);
		net_conn_close(s->c, "quit");
	} else
		smtp_error(s, "500 5.5.2 Command unrecognized");
}

static void
smtp_command_input(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec	v;
	size_t			used;
	int			rc;

	if (evbuffer_peek(in, -1, NULL, &v, 1) <= 0)
		return;
	rc = line_feed(&s->lr, v.iov_base, v.iov_len, &used);
	evbuffer_drain(in, used);
	if (rc == ERR_AGAIN)
		return;
	if (rc == ERR_TOOBIG)
		smtp_error(s, "500 5.5.2 Line too long");
	else if (rc == ERR_PROTO)
		smtp_error(s, "500 5.5.2 Bare CR or LF not allowed");
	else if (s->state == SMTP_S_AUTH)
		smtp_auth_line(s, (char *)s->lr.line.data);
	else {
		smtp_command(s, (char *)s->lr.line.data, in);
		/* RFC 2920: without PIPELINING the client must wait */
		if (!s->esmtp && s->state != SMTP_S_QUIT && !s->dead &&
		    s->pending == 0 && evbuffer_get_length(in) > 0 &&
		    s->state != SMTP_S_DATA && s->state != SMTP_S_BDAT) {
			smtp_reply(s, "554 5.5.0 Error: SMTP protocol "
			    "synchronization (pipelining not negotiated)");
			smtp_enter_state(s, SMTP_S_QUIT);
			net_conn_close(s->c, "unsynchronized-pipelining");
		}
	}
}

static void
smtp_on_read(struct net_conn *c, struct evbuffer *in)
{
	struct smtp_session	*s = net_conn_get(c);

	while (s->state != SMTP_S_QUIT && s->pending == 0 &&
	    evbuffer_get_length(in) > 0) {
		if (s->state == SMTP_S_DATA)
			smtp_data_read(s, in);
		else if (s->state == SMTP_S_BDAT)
			smtp_bdat_read(s, in);
		else
			smtp_command_input(s, in);
	}
}

/* ------------------------------------------------------------ lifecycle */

static void
smtp_on_open(struct net_conn *c)
{
	struct smtp_session	*s;

	s = xcalloc(1, sizeof(*s));
	s->ms = net_server_arg(net_conn_server(c));
	s->c = c;
	s->svc = (enum smtp_service)(uintptr_t)net_conn_listener_arg(c);
	line_reader_init(&s->lr, SMTP_AUTH_LINE_MAX, 0);
	net_conn_set(c, s);
	log_info("%016llx smtp connected peer=%s service=%d",
	    (unsigned long long)net_conn_id(c), net_conn_peer(c), (int)s->svc);
	smtp_reply(s, "220 %s ESMTP Amanat", smtp_hostname(s));
}

static void
smtp_on_timeout(struct net_conn *c)
{
	struct smtp_session	*s = net_conn_get(c);

	smtp_reply(s, "421 4.4.2 %s Timeout, closing", smtp_hostname(s));
}

static void
smtp_on_evict(struct net_conn *c)
{
	struct smtp_session	*s = net_conn_get(c);

	smtp_reply(s, "421 4.7.0 %s Too many connections, closing",
	    smtp_hostname(s));
}

static void
smtp_session_free(struct smtp_session *s)
{
	smtp_tx_free(&s->tx);
	line_reader_free(&s->lr);
	if (s->auth_login != NULL)
		xfreezero(s->auth_login, strlen(s->auth_login) + 1);
	free(s->delayed);
	free(s);
}

static void
smtp_on_close(struct net_conn *c, const char *reason)
{
	struct smtp_session	*s = net_conn_get(c);

	log_info("%016llx smtp disconnected reason=%s",
	    (unsigned long long)net_conn_id(c), reason);
	if (s == NULL)
		return;
	net_conn_set(c, NULL);
	s->dead = 1;
	if (s->delay_ev != NULL) {
		event_free(s->delay_ev);
		s->delay_ev = NULL;
		s->pending--;
	}
	if (s->pending == 0)
		smtp_session_free(s);
	/* else: the pending callback frees it (smtp_async_end) */
}

static const struct net_ops smtp_ops = {
	.on_open = smtp_on_open,
	.on_read = smtp_on_read,
	.on_timeout = smtp_on_timeout,
	.on_evict = smtp_on_evict,
	.on_close = smtp_on_close,
};

int
smtp_server_start(struct mailsrv *ms)
{
	const struct amanat_conf	*cf = &ms->d->conf;
	struct net_limits		 lim;
	int				 rc;

	mailsrv_limits(&lim, cf, 0);
	net_server_new(&ms->smtp, ms->d->base, "smtp", &lim, &smtp_ops, ms);
	net_server_set_tls(ms->smtp, ms->d->tls);
	if ((rc = net_server_listen(ms->smtp, cf->mailsrv.smtp_listen,
	    NET_PLAIN, (void *)(uintptr_t)SMTP_SVC_MX)) < 0 ||
	    (rc = net_server_listen(ms->smtp, cf->mailsrv.submission_listen,
	    NET_PLAIN, (void *)(uintptr_t)SMTP_SVC_SUBMISSION)) < 0 ||
	    (rc = net_server_listen(ms->smtp, cf->mailsrv.smtps_listen,
	    NET_TLS, (void *)(uintptr_t)SMTP_SVC_SUBMISSIONS)) < 0)
		return rc;
	return 0;
}
