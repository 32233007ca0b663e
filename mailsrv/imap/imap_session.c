/*
 * imap_session.c -- the IMAP server's session state machine.
 *
 * Runs in: the mailsrv process, event loop thread.
 * Implemented so far (foundation): greeting, CAPABILITY, NOOP, LOGOUT,
 * STARTTLS.  Login stays disabled (LOGINDISABLED is advertised, LOGIN and
 * AUTHENTICATE answer NO) until the IMAP issue brings authentication and
 * the mail store; nothing is advertised that is not implemented.
 * Failure policy: bad commands get BAD; after IMAP_MAX_ERRORS the session
 * gets "* BYE" and is closed.  Output over the limit closes it.
 * SECURITY: command lines are bounded while bytes arrive (pre-auth
 * limit), bare CR/LF refused, plaintext pipelined after STARTTLS discarded.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "common/line.h"
#include "common/log.h"
#include "common/net.h"
#include "common/xmalloc.h"
#include "mailsrv/limits.h"
#include "mailsrv/mailsrv.h"

enum imap_state {
	IMAP_S_NOTAUTH = 0,
	IMAP_S_LOGOUT,
};

struct imap_session {
	struct mailsrv		*ms;
	struct net_conn		*c;
	enum imap_state		 state;
	struct line_reader	 lr;
	int			 nerrors;
};

static void
imap_reply(struct imap_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
imap_reply(struct imap_session *s, const char *fmt, ...)
{
	char	line[1024];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		fatalx("imap reply too long");
	memcpy(line + n, "\r\n", 2);
	if (s->state != IMAP_S_LOGOUT &&
	    net_conn_write(s->c, line, (size_t)n + 2) < 0) {
		s->state = IMAP_S_LOGOUT;
		net_conn_close(s->c, "output-limit");
	}
}

static const char *
imap_capabilities(struct imap_session *s)
{
	return net_conn_is_tls(s->c) ? "IMAP4rev1 LOGINDISABLED" :
	    "IMAP4rev1 STARTTLS LOGINDISABLED";
}

static void
imap_bad(struct imap_session *s, const char *tag, const char *text)
{
	imap_reply(s, "%s BAD %s", tag, text);
	if (++s->nerrors >= IMAP_MAX_ERRORS) {
		imap_reply(s, "* BYE Too many errors");
		s->state = IMAP_S_LOGOUT;
		net_conn_close(s->c, "too-many-errors");
	}
}

/* RFC 3501 tag: 1*<any ASTRING-CHAR except "+"> */
static int
imap_tag_ok(const char *tag)
{
	size_t	n = strlen(tag), i;

	if (n == 0 || n > IMAP_TAG_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char	ch = (unsigned char)tag[i];

		if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"\\+", ch))
			return 0;
	}
	return 1;
}

static void
imap_cmd_starttls(struct imap_session *s, const char *tag,
    struct evbuffer *in)
{
	if (net_conn_is_tls(s->c)) {
		imap_bad(s, tag, "TLS is already active");
		return;
	}
	if (evbuffer_get_length(in) > 0) {
		imap_reply(s, "* BYE Data sent after STARTTLS");
		s->state = IMAP_S_LOGOUT;
		net_conn_close(s->c, "starttls-pipelined");
		return;
	}
	imap_reply(s, "%s OK Begin TLS negotiation now", tag);
	if (net_conn_starttls(s->c) < 0) {
		log_info("%016llx imap starttls refused: %s",
		    (unsigned long long)net_conn_id(s->c), err_msg());
		s->state = IMAP_S_LOGOUT;
		net_conn_close(s->c, "starttls-failed");
	}
}

static void
imap_command(struct imap_session *s, char *line, struct evbuffer *in)
{
	char	*tag = line, *cmd, *args;

	if (strlen(line) != s->lr.line.len) {
		imap_reply(s, "* BAD NUL byte in command");
		return;
	}
	cmd = line + strcspn(line, " ");
	if (*cmd != '\0')
		*cmd++ = '\0';
	if (!imap_tag_ok(tag)) {
		imap_bad(s, "*", "Invalid tag");
		return;
	}
	args = cmd + strcspn(cmd, " ");
	if (*args != '\0')
		*args++ = '\0';
	if (*cmd == '\0') {
		imap_bad(s, tag, "Missing command");
	} else if (strcasecmp(cmd, "CAPABILITY") == 0 && *args == '\0') {
		imap_reply(s, "* CAPABILITY %s", imap_capabilities(s));
		imap_reply(s, "%s OK CAPABILITY completed", tag);
	} else if (strcasecmp(cmd, "NOOP") == 0 && *args == '\0') {
		imap_reply(s, "%s OK NOOP completed", tag);
	} else if (strcasecmp(cmd, "LOGOUT") == 0 && *args == '\0') {
		imap_reply(s, "* BYE Logging out");
		imap_reply(s, "%s OK LOGOUT completed", tag);
		s->state = IMAP_S_LOGOUT;
		net_conn_close(s->c, "logout");
	} else if (strcasecmp(cmd, "STARTTLS") == 0 && *args == '\0') {
		imap_cmd_starttls(s, tag, in);
	} else if (strcasecmp(cmd, "LOGIN") == 0 ||
	    strcasecmp(cmd, "AUTHENTICATE") == 0) {
		imap_reply(s, "%s NO [UNAVAILABLE] Login is not available on "
		    "this server yet", tag);
	} else {
		imap_bad(s, tag, "Unknown command or wrong arguments");
	}
}

static void
imap_on_read(struct net_conn *c, struct evbuffer *in)
{
	struct imap_session	*s = net_conn_get(c);
	struct evbuffer_iovec	 v;
	size_t			 used;
	int			 rc;

	while (s->state != IMAP_S_LOGOUT &&
	    evbuffer_peek(in, -1, NULL, &v, 1) > 0) {
		rc = line_feed(&s->lr, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (rc == ERR_AGAIN)
			continue;
		if (rc == ERR_TOOBIG)
			imap_bad(s, "*", "Command line too long");
		else if (rc == ERR_PROTO)
			imap_bad(s, "*", "Bare CR or LF in command");
		else
			imap_command(s, (char *)s->lr.line.data, in);
	}
}

static void
imap_on_open(struct net_conn *c)
{
	struct imap_session	*s;

	s = xcalloc(1, sizeof(*s));
	s->ms = net_server_arg(net_conn_server(c));
	s->c = c;
	line_reader_init(&s->lr, IMAP_PREAUTH_LINE_MAX, 0);
	net_conn_set(c, s);
	log_info("%016llx imap connected peer=%s tls=%d",
	    (unsigned long long)net_conn_id(c), net_conn_peer(c),
	    net_conn_is_tls(c));
	imap_reply(s, "* OK [CAPABILITY %s] Amanat IMAP ready",
	    imap_capabilities(s));
}

static void
imap_on_timeout(struct net_conn *c)
{
	imap_reply(net_conn_get(c), "* BYE Autologout; idle for too long");
}

static void
imap_on_evict(struct net_conn *c)
{
	imap_reply(net_conn_get(c), "* BYE Too many connections");
}

static void
imap_on_close(struct net_conn *c, const char *reason)
{
	struct imap_session	*s = net_conn_get(c);

	log_info("%016llx imap disconnected reason=%s",
	    (unsigned long long)net_conn_id(c), reason);
	if (s == NULL)
		return;
	line_reader_free(&s->lr);
	free(s);
}

static const struct net_ops imap_ops = {
	.on_open = imap_on_open,
	.on_read = imap_on_read,
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
	net_server_new(&ms->imap, ms->d->base, "imap", &lim, &imap_ops, ms);
	net_server_set_tls(ms->imap, ms->d->tls);
	if ((rc = net_server_listen(ms->imap, cf->mailsrv.imap_listen,
	    NET_PLAIN, NULL)) < 0 ||
	    (rc = net_server_listen(ms->imap, cf->mailsrv.imaps_listen,
	    NET_TLS, NULL)) < 0)
		return rc;
	return 0;
}
