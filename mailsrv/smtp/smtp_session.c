/*
 * smtp_session.c -- the SMTP server's session state machine.
 *
 * Runs in: the mailsrv process, event loop thread.
 * Implemented so far (foundation): greeting, EHLO/HELO, STARTTLS, NOOP,
 * RSET, VRFY (252), HELP, QUIT.  Mail transactions (MAIL, RCPT, DATA,
 * BDAT, AUTH) answer 502 until the SMTP issue lands; nothing is advertised
 * that is not implemented.
 * Failure policy: protocol errors get 5xx replies; after SMTP_MAX_ERRORS
 * the session gets 421 and is closed.  Output over the limit closes it.
 * SECURITY: command lines are bounded (SMTP_CMD_LINE_MAX) while bytes
 * arrive; bare CR/LF are refused; plaintext pipelined after STARTTLS is
 * discarded and the session closed; peer strings are escaped in logs.
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
#include "common/line.h"
#include "common/log.h"
#include "common/net.h"
#include "common/xmalloc.h"
#include "mailsrv/limits.h"
#include "mailsrv/mailsrv.h"

enum smtp_state {
	SMTP_S_GREETED = 0,	/* waiting for EHLO/HELO */
	SMTP_S_HELO,		/* EHLO/HELO done */
	SMTP_S_QUIT,		/* closing */
};

struct smtp_session {
	struct mailsrv		*ms;
	struct net_conn		*c;
	enum smtp_service	 svc;
	enum smtp_state		 state;
	struct line_reader	 lr;
	int			 nerrors;
	int			 esmtp;
	char			 helo[SMTP_HELO_MAX + 1];
};

static const char *const smtp_state_names[] = { "greeted", "helo", "quit" };

static void
smtp_enter_state(struct smtp_session *s, enum smtp_state st)
{
	if ((size_t)st >= sizeof(smtp_state_names) / sizeof(*smtp_state_names))
		fatalx("smtp: unknown state %d", (int)st);
	log_trace("%016llx smtp state %s -> %s",
	    (unsigned long long)net_conn_id(s->c), smtp_state_names[s->state],
	    smtp_state_names[st]);
	s->state = st;
}

static void
smtp_reply(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	char	line[SMTP_CMD_LINE_MAX];
	va_list	ap;
	int	n;

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

static const char *
smtp_hostname(struct smtp_session *s)
{
	return s->ms->d->conf.mailsrv.hostname;
}

/* An error reply that counts toward SMTP_MAX_ERRORS. */
static void
smtp_error(struct smtp_session *s, const char *reply)
{
	smtp_reply(s, "%s", reply);
	if (++s->nerrors >= SMTP_MAX_ERRORS) {
		smtp_reply(s, "421 4.7.0 %s Too many errors, closing",
		    smtp_hostname(s));
		smtp_enter_state(s, SMTP_S_QUIT);
		net_conn_close(s->c, "too-many-errors");
	}
}

static int
smtp_domain_ok(const char *arg)
{
	size_t	i, n = strlen(arg);

	if (n == 0 || n > SMTP_HELO_MAX)
		return 0;
	if (arg[0] == '[' && arg[n - 1] == ']')
		return 1;	/* address literal; checked when relaying */
	for (i = 0; i < n; i++) {
		if (!isalnum((unsigned char)arg[i]) && arg[i] != '-' &&
		    arg[i] != '.' && arg[i] != '_')
			return 0;
	}
	return 1;
}

static void
smtp_cmd_helo(struct smtp_session *s, const char *arg, int esmtp)
{
	if (!smtp_domain_ok(arg)) {
		smtp_error(s, "501 5.5.4 Syntax: EHLO hostname");
		return;
	}
	strlcpy(s->helo, arg, sizeof(s->helo));
	s->esmtp = esmtp;
	smtp_enter_state(s, SMTP_S_HELO);
	if (!esmtp) {
		smtp_reply(s, "250 %s", smtp_hostname(s));
		return;
	}
	smtp_reply(s, "250-%s Hello %s [%s]", smtp_hostname(s), s->helo,
	    net_conn_peer_ip(s->c));
	if (!net_conn_is_tls(s->c))
		smtp_reply(s, "250-STARTTLS");
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
		net_conn_close(s->c, "starttls-failed");
		return;
	}
	/* RFC 3207 4.2: forget everything learned before TLS */
	s->helo[0] = '\0';
	s->esmtp = 0;
	smtp_enter_state(s, SMTP_S_GREETED);
}

static void
smtp_command(struct smtp_session *s, char *line, struct evbuffer *in)
{
	char	*verb = line, *arg;
	char	 esc[128];

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

	if (strcasecmp(verb, "EHLO") == 0 || strcasecmp(verb, "HELO") == 0)
		smtp_cmd_helo(s, arg, toupper((unsigned char)verb[0]) == 'E');
	else if (strcasecmp(verb, "STARTTLS") == 0)
		smtp_cmd_starttls(s, arg, in);
	else if (strcasecmp(verb, "NOOP") == 0)
		smtp_reply(s, "250 2.0.0 OK");
	else if (strcasecmp(verb, "RSET") == 0)
		smtp_reply(s, "250 2.0.0 OK");
	else if (strcasecmp(verb, "VRFY") == 0)
		smtp_reply(s, "252 2.5.0 Cannot VRFY user, but will accept "
		    "message and attempt delivery");
	else if (strcasecmp(verb, "HELP") == 0)
		smtp_reply(s, "214 2.0.0 See RFC 5321");
	else if (strcasecmp(verb, "QUIT") == 0) {
		smtp_reply(s, "221 2.0.0 %s Bye", smtp_hostname(s));
		smtp_enter_state(s, SMTP_S_QUIT);
		net_conn_close(s->c, "quit");
	} else if (strcasecmp(verb, "MAIL") == 0 ||
	    strcasecmp(verb, "RCPT") == 0 || strcasecmp(verb, "DATA") == 0 ||
	    strcasecmp(verb, "BDAT") == 0 || strcasecmp(verb, "AUTH") == 0)
		smtp_error(s, "502 5.5.1 Command not implemented");
	else
		smtp_error(s, "500 5.5.2 Command unrecognized");
}

static void
smtp_on_read(struct net_conn *c, struct evbuffer *in)
{
	struct smtp_session	*s = net_conn_get(c);
	struct evbuffer_iovec	 v;
	size_t			 used;
	int			 rc;

	while (s->state != SMTP_S_QUIT && evbuffer_peek(in, -1, NULL, &v, 1) > 0) {
		rc = line_feed(&s->lr, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (rc == ERR_AGAIN)
			continue;
		if (rc == ERR_TOOBIG)
			smtp_error(s, "500 5.5.2 Line too long");
		else if (rc == ERR_PROTO)
			smtp_error(s, "500 5.5.2 Bare CR or LF not allowed");
		else
			smtp_command(s, (char *)s->lr.line.data, in);
	}
}

static void
smtp_on_open(struct net_conn *c)
{
	struct net_server	*srv = net_conn_server(c);
	struct smtp_session	*s;

	s = xcalloc(1, sizeof(*s));
	s->ms = net_server_arg(srv);
	s->c = c;
	s->svc = (enum smtp_service)(uintptr_t)net_conn_listener_arg(c);
	line_reader_init(&s->lr, SMTP_CMD_LINE_MAX, 0);
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
smtp_on_close(struct net_conn *c, const char *reason)
{
	struct smtp_session	*s = net_conn_get(c);

	log_info("%016llx smtp disconnected reason=%s",
	    (unsigned long long)net_conn_id(c), reason);
	if (s == NULL)
		return;
	line_reader_free(&s->lr);
	free(s);
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
