/*
 * relay.c -- outbound SMTP: deliver a queued message to the recipients
 * of one remote domain, over a route from [mailsrv] relay_routes or to
 * the domain's mail exchangers found in DNS (mx.c, via delivery.c).
 *
 * The caller gives an ordered list of targets (one for a route; the MX
 * candidates, best first, otherwise).  A target that fails before any
 * part of the transaction was answered passes the turn to the next one
 * (RFC 5321 5.1, as Postfix does): it refuses the connection, times out
 * (RELAY_CONNECT_SEC to connect), closes, greets with other than 220,
 * answers EHLO or MAIL with a 4xx, does not offer STARTTLS where TLS is
 * required, or its TLS handshake or certificate fails.  A 5xx to MAIL
 * is the answer for the recipients; once a recipient has had an answer
 * the session's outcome is final for this attempt (no second copy).
 *
 * One relay session per (message, domain): connect, EHLO, STARTTLS
 * (mandatory and verified for relay_tls_domains, opportunistic
 * otherwise), MAIL FROM (SIZE, RET/ENVID when the peer has DSN), RCPT TO
 * per recipient (NOTIFY/ORCPT when it has DSN), DATA with dot-stuffing,
 * QUIT.  Each recipient's result is 2xx delivered, 5xx failed
 * (permanent) or deferred; the caller records them in the queue.
 *
 * Runs in: the mailsrv process, event loop thread.
 * Failure policy: every failure (refused connection, timeout, TLS
 * refused, unexpected reply) defers the recipients that have no answer
 * yet; nothing is marked delivered before the server's 2xx to DATA.
 * SECURITY: replies are bounded (RELAY_REPLY_MAX); the peer certificate
 * is verified against the node CA and the target's host name (the
 * route's host or IP, or the MX host name, never the address DNS gave)
 * when TLS is required; the message is sent from memory and wiped by
 * the caller.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mailsrv/relay.h"

#define RELAY_REPLY_MAX		(64 * 1024)
#define RELAY_LINE_MAX		4096
#define RELAY_TIMEOUT_SEC	300
#define RELAY_CONNECT_SEC	30	/* then the next target */
#define RELAY_PEER_MAX		320	/* "host[addr]:port" */

enum relay_state {
	R_GREETING, R_EHLO, R_STARTTLS, R_EHLO2, R_MAIL, R_RCPT, R_DATA,
	R_DOT, R_QUIT, R_DONE,
};

struct relay {
	struct event_base	*base;
	struct bufferevent	*bev;
	SSL_CTX			*ctx;
	enum relay_state	 state;
	struct relay_target	*targets;
	size_t			 ntargets;
	size_t			 cur;		/* the target being tried */
	char			 host[256];	/* of targets[cur] */
	char			 addr[INET6_ADDRSTRLEN];
	int			 port;
	int			 tls_required;
	int			 tls;
	int			 has_dsn, has_size, has_starttls;
	int			 has_8bit, has_utf8;
	int			 in_cb;		/* readcb on the stack */
	const char		*helo;
	const struct queue_env	*env;
	size_t			*rcpts;		/* indices into env->rcpts */
	size_t			 nrcpts;
	size_t			 next_rcpt;	/* RCPT being answered */
	size_t			 accepted;
	struct relay_result	*res;		/* per rcpts[] entry */
	const unsigned char	*msg;
	size_t			 len;
	struct buf		 reply;		/* multi-line reply */
	relay_done_fn		 done;
	void			*arg;
};

static void	relay_finish(struct relay *, const char *);
static int	relay_try_next(struct relay *, const char *);

/* Relay failed: the next target if it may take over, else finish. */
static void
relay_fail(struct relay *rl, const char *why)
{
	if (!relay_try_next(rl, why))
		relay_finish(rl, why);
}

/* "host:port", or "host[addr]:port" when DNS gave the address. */
static const char *
relay_peer(struct relay *rl, char *out, size_t outlen)
{
	if (rl->addr[0] != '\0')
		snprintf(out, outlen, "%s[%s]:%d", rl->host, rl->addr,
		    rl->port);
	else
		snprintf(out, outlen, "%s:%d", rl->host, rl->port);
	return out;
}

static void
relay_set(struct relay_result *r, int state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
relay_set(struct relay_result *r, int state, const char *fmt, ...)
{
	va_list	ap;

	r->state = state;
	va_start(ap, fmt);
	(void)vsnprintf(r->status, sizeof(r->status), fmt, ap);
	va_end(ap);
}

static void
relay_send(struct relay *rl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
relay_send(struct relay *rl, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(rl->bev), fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(rl->bev), "\r\n", 2);
}

static void
relay_send_rcpt(struct relay *rl)
{
	const struct queue_rcpt	*r = &rl->env->rcpts[rl->rcpts[rl->next_rcpt]];
	char			 notify[64] = "", orcpt[1100] = "";

	if (rl->has_dsn && r->notify != 0) {
		if (r->notify & QUEUE_NOTIFY_NEVER)
			snprintf(notify, sizeof(notify), " NOTIFY=NEVER");
		else
			snprintf(notify, sizeof(notify), " NOTIFY=%s%s%s",
			    r->notify & QUEUE_NOTIFY_SUCCESS ? "SUCCESS," : "",
			    r->notify & QUEUE_NOTIFY_FAILURE ? "FAILURE," : "",
			    r->notify & QUEUE_NOTIFY_DELAY ? "DELAY," : "");
		notify[strlen(notify) - (notify[strlen(notify) - 1] == ','
		    ? 1 : 0)] = '\0';
	}
	if (rl->has_dsn && r->orcpt != NULL)
		snprintf(orcpt, sizeof(orcpt), " ORCPT=%s", r->orcpt);
	relay_send(rl, "RCPT TO:<%s>%s%s", r->addr, notify, orcpt);
	rl->state = R_RCPT;
}

static void
relay_send_mail(struct relay *rl)
{
	char	extra[512] = "", envid[300];
	size_t	n = 0;

	if (rl->has_size)
		n += (size_t)snprintf(extra + n, sizeof(extra) - n,
		    " SIZE=%zu", rl->len);
	/* RFC 6152: BODY only to a peer that offers 8BITMIME */
	if (rl->env->body_8bit && rl->has_8bit && n < sizeof(extra))
		n += (size_t)snprintf(extra + n, sizeof(extra) - n,
		    " BODY=8BITMIME");
	if (rl->env->smtputf8 && n < sizeof(extra))
		n += (size_t)snprintf(extra + n, sizeof(extra) - n,
		    " SMTPUTF8");
	if (rl->has_dsn && n < sizeof(extra)) {
		n += (size_t)snprintf(extra + n, sizeof(extra) - n, " RET=%s",
		    rl->env->ret_full ? "FULL" : "HDRS");
		/* ENVID is kept as received: already xtext */
		if (rl->env->envid != NULL && n < sizeof(extra)) {
			snprintf(envid, sizeof(envid), "%s", rl->env->envid);
			snprintf(extra + n, sizeof(extra) - n, " ENVID=%s",
			    envid);
		}
	}
	relay_send(rl, "MAIL FROM:<%s>%s", rl->env->sender, extra);
	rl->state = R_MAIL;
}

/* Send the message, dot-stuffed, lines ending in CRLF, then ".". */
static void
relay_send_data(struct relay *rl)
{
	struct evbuffer		*out = bufferevent_get_output(rl->bev);
	const unsigned char	*p = rl->msg, *end = rl->msg + rl->len, *nl;
	size_t			 n;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = (size_t)((nl ? nl : end) - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n > 0 && p[0] == '.')
			evbuffer_add(out, ".", 1);
		evbuffer_add(out, p, n);
		evbuffer_add(out, "\r\n", 2);
		p = nl ? nl + 1 : end;
	}
	evbuffer_add(out, ".\r\n", 3);
	rl->state = R_DOT;
}

static int
relay_starttls(struct relay *rl)
{
	struct bufferevent	*tbev;
	SSL			*ssl;

	if ((ssl = SSL_new(rl->ctx)) == NULL)
		return -1;
	SSL_set_tlsext_host_name(ssl, rl->host);
	if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), rl->host))
		SSL_set1_host(ssl, rl->host);
	SSL_set_verify(ssl, rl->tls_required ? SSL_VERIFY_PEER :
	    SSL_VERIFY_NONE, NULL);
	tbev = bufferevent_openssl_filter_new(rl->base, rl->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tbev == NULL) {
		SSL_free(ssl);
		return -1;
	}
	rl->bev = tbev;
	rl->tls = 1;
	return 0;
}

/* ------------------------------------------------------------ replies */

static void	relay_readcb(struct bufferevent *, void *);
static void	relay_eventcb(struct bufferevent *, short, void *);

static void
relay_defer_rest(struct relay *rl, const char *why)
{
	size_t	i;

	for (i = 0; i < rl->nrcpts; i++)
		if (rl->res[i].state == QUEUE_RCPT_PENDING &&
		    rl->res[i].status[0] == '\0')
			relay_set(&rl->res[i], QUEUE_RCPT_PENDING, "%s", why);
}

/* The whole reply is in rl->reply: act on it. */
static void
relay_reply(struct relay *rl, int code, const char *text)
{
	size_t	i;

	switch (rl->state) {
	case R_GREETING:
		if (code != 220 && relay_try_next(rl, text))
			return;
		if (code != 220)
			goto bad;
		relay_send(rl, "EHLO %s", rl->helo);
		rl->state = R_EHLO;
		break;
	case R_EHLO:
	case R_EHLO2:
		if (code != 250)
			goto bad;
		rl->has_dsn = strcasestr(text, "\nDSN") != NULL;
		rl->has_size = strcasestr(text, "\nSIZE") != NULL;
		rl->has_starttls = strcasestr(text, "\nSTARTTLS") != NULL;
		rl->has_8bit = strcasestr(text, "\n8BITMIME") != NULL;
		rl->has_utf8 = strcasestr(text, "\nSMTPUTF8") != NULL;
		if (rl->state == R_EHLO && rl->has_starttls) {
			relay_send(rl, "STARTTLS");
			rl->state = R_STARTTLS;
		} else if (rl->state == R_EHLO && rl->tls_required) {
			relay_fail(rl, "4.7.5 TLS required but not offered");
			return;
		} else if (rl->env->smtputf8 && !rl->has_utf8) {
			/* RFC 6531 3.4: cannot be downgraded here */
			for (i = 0; i < rl->nrcpts; i++)
				relay_set(&rl->res[i], QUEUE_RCPT_FAILED,
				    "5.6.7 the receiving server does not "
				    "support SMTPUTF8");
			relay_finish(rl, NULL);
			return;
		} else
			relay_send_mail(rl);
		break;
	case R_STARTTLS:
		if (code != 220) {
			if (rl->tls_required)
				goto bad;
			relay_send_mail(rl);
			break;
		}
		/* bytes after the 220 were sent in plaintext: never use
		 * them as replies over TLS (response injection) */
		evbuffer_drain(bufferevent_get_input(rl->bev),
		    evbuffer_get_length(bufferevent_get_input(rl->bev)));
		if (relay_starttls(rl) < 0) {
			relay_fail(rl, "4.7.5 TLS setup failed");
			return;
		}
		bufferevent_setcb(rl->bev, relay_readcb, NULL, relay_eventcb,
		    rl);
		bufferevent_enable(rl->bev, EV_READ | EV_WRITE);
		relay_send(rl, "EHLO %s", rl->helo);
		rl->state = R_EHLO2;
		break;
	case R_MAIL:
		if (code / 100 != 2)
			goto bad;
		rl->next_rcpt = 0;
		relay_send_rcpt(rl);
		break;
	case R_RCPT:
		i = rl->next_rcpt++;
		if (code / 100 == 2) {
			rl->accepted++;
			rl->res[i].status[0] = '\0';
		} else
			relay_set(&rl->res[i], code / 100 == 5 ?
			    QUEUE_RCPT_FAILED : QUEUE_RCPT_PENDING, "%s",
			    text);
		if (rl->next_rcpt < rl->nrcpts)
			relay_send_rcpt(rl);
		else if (rl->accepted == 0) {
			relay_send(rl, "QUIT");
			rl->state = R_QUIT;
		} else {
			relay_send(rl, "DATA");
			rl->state = R_DATA;
		}
		break;
	case R_DATA:
		if (code != 354)
			goto bad;
		relay_send_data(rl);
		break;
	case R_DOT:
		for (i = 0; i < rl->nrcpts; i++)
			if (rl->res[i].state == QUEUE_RCPT_PENDING &&
			    rl->res[i].status[0] == '\0')
				relay_set(&rl->res[i], code / 100 == 2 ?
				    QUEUE_RCPT_DELIVERED : code / 100 == 5 ?
				    QUEUE_RCPT_FAILED : QUEUE_RCPT_PENDING,
				    "%s", text);
		relay_send(rl, "QUIT");
		rl->state = R_QUIT;
		break;
	case R_QUIT:
		relay_finish(rl, NULL);
		return;
	default:
		break;
	}
	return;
bad:
	/* a temporary refusal before the recipients: another MX may not */
	if ((code / 100 != 5 || rl->state == R_STARTTLS) &&
	    relay_try_next(rl, text))
		return;
	if (code / 100 == 5 && rl->state != R_STARTTLS) {
		for (i = 0; i < rl->nrcpts; i++)
			if (rl->res[i].state == QUEUE_RCPT_PENDING &&
			    rl->res[i].status[0] == '\0')
				relay_set(&rl->res[i], QUEUE_RCPT_FAILED, "%s",
				    text);
	}
	relay_finish(rl, text);
}

/* "250-x\r\n250 y" -> code 250, text "2.0.0 y" (enhanced code kept). */
static void
relay_readcb(struct bufferevent *bev, void *arg)
{
	struct relay	*rl = arg;
	char		*line;
	size_t		 n;
	char		 text[RELAY_REPLY_MAX];

	rl->in_cb++;
	while (rl->state != R_DONE && bev == rl->bev &&
	    (line = evbuffer_readln(bufferevent_get_input(bev), &n,
	    EVBUFFER_EOL_CRLF)) != NULL) {
		if (n < 3 || n > RELAY_LINE_MAX ||
		    !isdigit((unsigned char)line[0]) ||
		    !isdigit((unsigned char)line[1]) ||
		    !isdigit((unsigned char)line[2]) ||
		    (n > 3 && line[3] != ' ' && line[3] != '-')) {
			free(line);
			relay_finish(rl, "4.5.0 bad reply from the remote server");
			break;
		}
		if (buf_printf(&rl->reply, "\n%s", n > 4 ? line + 4 : "") < 0) {
			free(line);
			relay_finish(rl, "4.5.0 reply too long");
			break;
		}
		if (n == 3 || line[3] == ' ') {
			int code = (line[0] - '0') * 100 +
			    (line[1] - '0') * 10 + (line[2] - '0');

			snprintf(text, sizeof(text), "%d %s", code,
			    (char *)rl->reply.data + 1);
			for (n = 0; text[n] != '\0'; n++)
				if (text[n] == '\n')
					text[n] = ' ';
			/* keep the multi-line form for EHLO keywords */
			if (rl->state == R_EHLO || rl->state == R_EHLO2)
				snprintf(text, sizeof(text), "%s",
				    (char *)rl->reply.data);
			buf_reset(&rl->reply);
			free(line);
			relay_reply(rl, code, rl->state == R_EHLO ||
			    rl->state == R_EHLO2 ? text : text + 4);
			continue;
		}
		free(line);
	}
	if (rl->state != R_DONE && bev == rl->bev &&
	    evbuffer_get_length(bufferevent_get_input(bev)) > RELAY_LINE_MAX)
		relay_finish(rl, "4.5.0 reply line too long");
	if (--rl->in_cb == 0 && rl->state == R_DONE)
		free(rl);
}

static void
relay_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct relay	*rl = arg;
	char		 why[512], peer[RELAY_PEER_MAX];
	unsigned long	 e;
	struct timeval	 tv = { RELAY_TIMEOUT_SEC, 0 };

	if (what & BEV_EVENT_CONNECTED) {
		/* RELAY_CONNECT_SEC was for the connect only */
		bufferevent_set_timeouts(bev, &tv, &tv);
		return;
	}
	if (rl->state == R_QUIT && (what & BEV_EVENT_EOF)) {
		relay_finish(rl, NULL);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(why, sizeof(why), "4.4.2 timeout talking to %s",
		    rl->host);
	else if (rl->tls && (e = bufferevent_get_openssl_error(bev)) != 0) {
		char	reason[120];

		ERR_error_string_n(e, reason, sizeof(reason));
		snprintf(why, sizeof(why), "4.7.5 TLS with %s failed: %s",
		    rl->host, reason);
	} else
		snprintf(why, sizeof(why), "4.4.1 connection to %s failed",
		    relay_peer(rl, peer, sizeof(peer)));
	relay_fail(rl, why);
}

static void
relay_finish(struct relay *rl, const char *why)
{
	if (rl->state == R_DONE)
		return;
	rl->state = R_DONE;
	if (why != NULL)
		relay_defer_rest(rl, why);
	if (rl->bev != NULL)
		bufferevent_free(rl->bev);
	rl->bev = NULL;
	buf_free(&rl->reply);
	rl->done(rl->res, rl->nrcpts, rl->arg);
	free(rl->rcpts);
	free(rl->res);
	free(rl->targets);
	rl->rcpts = NULL;
	rl->res = NULL;
	rl->targets = NULL;
	if (rl->in_cb == 0)
		free(rl);	/* else relay_readcb frees it on its way out */
}

/* ------------------------------------------------------------ routes */

int
relay_route(char *host, size_t hostlen, int *port, int *tls_required,
    const struct amanat_conf *cf, const char *domain)
{
	char		*copy = xstrdup(cf->mailsrv.relay_routes), *tok, *save;
	char		*eq, *colon;
	long long	 p;
	int		 rc = ERR_NOTFOUND;

	save = NULL;
	for (tok = strtok_r(copy, ", ", &save); tok != NULL;
	    tok = strtok_r(NULL, ", ", &save)) {
		if ((eq = strchr(tok, '=')) == NULL)
			continue;
		*eq = '\0';
		if (strcasecmp(tok, domain) != 0 ||
		    (colon = strrchr(eq + 1, ':')) == NULL)
			continue;
		*colon = '\0';
		if (parse_ll(&p, colon + 1, 1, 65535) < 0)
			continue;
		snprintf(host, hostlen, "%s", eq + 1);
		*port = (int)p;
		rc = 0;
		break;
	}
	free(copy);
	*tls_required = rc == 0 && relay_tls_required(cf, domain);
	return rc;
}

int
relay_tls_required(const struct amanat_conf *cf, const char *domain)
{
	char	*copy = xstrdup(cf->mailsrv.relay_tls_domains), *tok, *save;
	int	 required = 0;

	save = NULL;
	for (tok = strtok_r(copy, ", ", &save); tok != NULL;
	    tok = strtok_r(NULL, ", ", &save))
		if (strcasecmp(tok, domain) == 0)
			required = 1;
	free(copy);
	return required;
}

/* Connect to targets[cur] (or, if that fails at once, a later one). */
static void
relay_connect(struct relay *rl)
{
	const struct relay_target	*t = &rl->targets[rl->cur];
	struct timeval			 rtv = { RELAY_TIMEOUT_SEC, 0 };
	struct timeval			 ctv = { RELAY_CONNECT_SEC, 0 };
	char				 peer[RELAY_PEER_MAX], why[400];

	snprintf(rl->host, sizeof(rl->host), "%s", t->host);
	snprintf(rl->addr, sizeof(rl->addr), "%s", t->addr);
	rl->port = t->port;
	rl->state = R_GREETING;
	rl->tls = 0;
	rl->bev = bufferevent_socket_new(rl->base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(rl->bev, relay_readcb, NULL, relay_eventcb, rl);
	/* while connecting, the write timeout is the connect timeout */
	bufferevent_set_timeouts(rl->bev, &rtv, &ctv);
	bufferevent_enable(rl->bev, EV_READ | EV_WRITE);
	if (rl->addr[0] != '\0')
		log_info("relay connecting host=%s:%d addr=%s rcpts=%zu "
		    "tls_required=%d", rl->host, rl->port, rl->addr,
		    rl->nrcpts, rl->tls_required);
	else
		log_info("relay connecting host=%s:%d rcpts=%zu "
		    "tls_required=%d", rl->host, rl->port, rl->nrcpts,
		    rl->tls_required);
	if (bufferevent_socket_connect_hostname(rl->bev, NULL, AF_UNSPEC,
	    rl->addr[0] != '\0' ? rl->addr : rl->host, rl->port) < 0) {
		snprintf(why, sizeof(why), "4.4.1 cannot connect to %s",
		    relay_peer(rl, peer, sizeof(peer)));
		relay_fail(rl, why);
	}
}

/*
 * The current target failed before any recipient had an answer (up to
 * the reply to MAIL): 1 if the next one is being tried, 0 if there is
 * none or it is too late (the caller finishes).
 */
static int
relay_try_next(struct relay *rl, const char *why)
{
	char	peer[RELAY_PEER_MAX];

	if (rl->state > R_MAIL || rl->cur + 1 >= rl->ntargets)
		return 0;
	log_info("relay target failed host=%s reason=\"%s\" next=%zu/%zu",
	    relay_peer(rl, peer, sizeof(peer)), why, rl->cur + 2,
	    rl->ntargets);
	if (rl->bev != NULL)
		bufferevent_free(rl->bev);
	rl->bev = NULL;
	buf_reset(&rl->reply);
	rl->has_dsn = rl->has_size = rl->has_starttls = 0;
	rl->has_8bit = rl->has_utf8 = 0;
	rl->accepted = 0;
	rl->next_rcpt = 0;
	rl->cur++;
	relay_connect(rl);
	return 1;
}

int
relay_start(struct event_base *base, SSL_CTX *ctx, const char *helo,
    const struct relay_target *targets, size_t ntargets, int tls_required,
    const struct queue_env *env, const size_t *rcpts, size_t nrcpts,
    const unsigned char *msg, size_t len, relay_done_fn done, void *arg)
{
	struct relay	*rl;

	if (ntargets == 0 || nrcpts == 0) {
		err_set(ERR_INVAL, "relay_start: no target or no recipient");
		return ERR_INVAL;
	}
	rl = xcalloc(1, sizeof(*rl));
	rl->base = base;
	rl->ctx = ctx;
	rl->targets = xcalloc(ntargets, sizeof(*targets));
	memcpy(rl->targets, targets, ntargets * sizeof(*targets));
	rl->ntargets = ntargets;
	rl->tls_required = tls_required;
	rl->helo = helo;
	rl->env = env;
	rl->rcpts = xmemdup(rcpts, nrcpts * sizeof(*rcpts));
	rl->nrcpts = nrcpts;
	rl->res = xcalloc(nrcpts, sizeof(*rl->res));
	rl->msg = msg;
	rl->len = len;
	rl->done = done;
	rl->arg = arg;
	buf_init(&rl->reply, RELAY_REPLY_MAX);
	relay_connect(rl);
	return 0;
}
