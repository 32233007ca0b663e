/*
 * smtp_auth.c -- SMTP AUTH (RFC 4954) with the PLAIN and LOGIN
 * mechanisms, verified by keyservice.
 *
 * Runs in: the mailsrv process, event loop thread.
 * Failure policy: a wrong password is 535 after a delay; keyservice
 * throttling is 454 (try later); keyservice unreachable is 454.
 * SECURITY: only on the submission services and only over TLS (530
 * before STARTTLS); never on MX.  Passwords are decoded into buffers that
 * are wiped as soon as the verification request is built, and never
 * logged; a failure reply is delayed (SMTP_AUTH_FAIL_MS plus jitter).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "common/base64.h"
#include "common/err.h"
#include "common/log.h"
#include "common/sasl.h"
#include "common/xmalloc.h"
#include "mailsrv/smtp/smtp.h"

#define AUTH_MECH_PLAIN	1
#define AUTH_MECH_LOGIN	2
#define AUTH_PASS_MAX	1024

struct smtp_auth_job {
	struct smtp_session	*s;
	char			 user[SMTP_ADDR_MAX + 1];
};

static void
smtp_auth_fail(struct smtp_session *s, const char *reply)
{
	unsigned char	r;

	RAND_bytes(&r, 1);
	s->nerrors++;
	smtp_reply_later(s, SMTP_AUTH_FAIL_MS + (unsigned)r * 4, reply);
}

static void
smtp_auth_audited(void *arg, int rc, uint64_t index)
{
	struct smtp_auth_job	*j = arg;
	struct smtp_session	*s = j->s;

	if (smtp_async_end(s) == 0) {
		if (rc < 0) {
			/* fail-closed: no session without its record */
			smtp_reply(s, "454 4.7.0 Temporary authentication "
			    "failure");
		} else {
			snprintf(s->user, sizeof(s->user), "%s", j->user);
			s->authenticated = 1;
			log_info("%016llx smtp auth ok user=%s",
			    (unsigned long long)net_conn_id(s->c), s->user);
			smtp_reply(s, "235 2.7.0 Authentication successful");
		}
	}
	free(j);
}

static void
smtp_auth_done(int status, json_t *body, void *arg)
{
	struct smtp_auth_job	*j = arg;
	struct smtp_session	*s = j->s;
	struct auditsvc		*audit = s->ms->audit;
	const char		*addr;

	if (s->dead || audit == NULL) {
		if (smtp_async_end(s) == 0)
			smtp_reply(s, "454 4.7.0 Temporary authentication "
			    "failure");
		free(j);
		return;
	}
	smtp_enter_state(s, SMTP_S_HELO);
	if (status == 200) {
		/* the directory's spelling of the address (lower case) */
		if ((addr = json_string_value(json_object_get(
		    json_object_get(body, "user"), "address"))) != NULL &&
		    strlen(addr) < sizeof(j->user))
			snprintf(j->user, sizeof(j->user), "%s", addr);
		/* the session starts once its record is durable */
		if (auditsvc_record(audit, j->user, json_string_value(
		    json_object_get(json_object_get(body, "user"), "dept")),
		    net_conn_peer_ip(s->c), "auth.smtp", "smtp", AUDIT_OK,
		    net_conn_id(s->c), NULL, smtp_auth_audited, j) < 0)
			smtp_auth_audited(j, ERR_IO, 0);
		return;
	}
	if (smtp_async_end(s) < 0) {
		free(j);
		return;
	}
	if (status == 401 || status == 403 || status == 429) {
		log_info("%016llx smtp auth failed user=%s status=%d",
		    (unsigned long long)net_conn_id(s->c), j->user, status);
		(void)auditsvc_record(audit, j->user, "",
		    net_conn_peer_ip(s->c), "auth.smtp", "smtp", AUDIT_DENIED,
		    net_conn_id(s->c), json_pack("{s:i}", "status", status),
		    NULL, NULL);
	}
	if (status == 401 || status == 403)
		smtp_auth_fail(s, "535 5.7.8 Authentication credentials "
		    "invalid");
	else if (status == 429)
		smtp_reply(s, "454 4.7.0 Too many failed attempts, try again "
		    "later");
	else {
		log_warnx("%016llx smtp auth unavailable status=%d",
		    (unsigned long long)net_conn_id(s->c), status);
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
	}
	free(j);
}

/* Verify user/password (both NUL-terminated; pass is wiped by caller). */
static void
smtp_auth_check(struct smtp_session *s, const char *user, const char *pass)
{
	struct smtp_auth_job	*j;

	if (user[0] == '\0' || strlen(user) > SMTP_ADDR_MAX || pass[0] == '\0') {
		smtp_enter_state(s, SMTP_S_HELO);
		smtp_auth_fail(s, "535 5.7.8 Authentication credentials "
		    "invalid");
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->s = s;
	snprintf(j->user, sizeof(j->user), "%s", user);
	if (keyclient_auth_password(s->ms->kc, user, pass,
	    net_conn_peer_ip(s->c), smtp_auth_done, j) < 0) {
		free(j);
		smtp_enter_state(s, SMTP_S_HELO);
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	smtp_async_begin(s);
}

/* SASL PLAIN: [authzid] NUL authcid NUL passwd (RFC 4616). */
static void
smtp_auth_plain(struct smtp_session *s, const char *b64)
{
	char	*user, *pass;
	int	 rc;

	rc = sasl_plain_decode(b64, strlen(b64), &user, &pass, SMTP_ADDR_MAX,
	    AUTH_PASS_MAX);
	if (rc < 0)
		smtp_enter_state(s, SMTP_S_HELO);
	if (rc == ERR_PERM)
		smtp_auth_fail(s, "535 5.7.8 Authorization identity refused");
	else if (rc == ERR_TOOBIG)
		smtp_auth_fail(s, "535 5.7.8 Authentication credentials "
		    "invalid");
	else if (rc < 0)
		smtp_error(s, "501 5.5.2 Invalid PLAIN response");
	else
		smtp_auth_check(s, user, pass);
	sasl_plain_free(user, pass);
}

void
smtp_auth_line(struct smtp_session *s, const char *line)
{
	unsigned char	*raw = NULL;
	size_t		 len = 0;

	if (strcmp(line, "*") == 0) {
		smtp_enter_state(s, SMTP_S_HELO);
		smtp_error(s, "501 5.0.0 Authentication cancelled");
		goto done;
	}
	if (s->auth_mech == AUTH_MECH_PLAIN) {
		smtp_auth_plain(s, line);
		goto done;
	}
	if (b64_decode(&raw, &len, line, strlen(line), AUTH_PASS_MAX) < 0 ||
	    memchr(raw, '\0', len) != NULL) {
		smtp_enter_state(s, SMTP_S_HELO);
		smtp_error(s, "501 5.5.2 Invalid base64 response");
		goto done;
	}
	if (s->auth_login == NULL) {		/* LOGIN: the user name */
		s->auth_login = (char *)raw;
		raw = NULL;
		smtp_reply(s, "334 UGFzc3dvcmQ6");	/* "Password:" */
		return;
	}
	smtp_auth_check(s, s->auth_login, (char *)raw);
done:
	if (raw != NULL)
		xfreezero(raw, len + 1);
	if (s->auth_login != NULL) {
		xfreezero(s->auth_login, strlen(s->auth_login) + 1);
		s->auth_login = NULL;
	}
}

void
smtp_cmd_auth(struct smtp_session *s, const char *arg)
{
	const char	*sp = arg + strcspn(arg, " ");
	const char	*initial = *sp == ' ' ? sp + 1 : NULL;
	size_t		 mlen = (size_t)(sp - arg);

	if (s->svc == SMTP_SVC_MX) {
		smtp_error(s, "503 5.5.1 AUTH not available on this service");
		return;
	}
	if (!net_conn_is_tls(s->c)) {
		smtp_error(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (!s->esmtp) {
		smtp_error(s, "503 5.5.1 Send EHLO first");
		return;
	}
	if (s->authenticated) {
		smtp_error(s, "503 5.5.1 Already authenticated");
		return;
	}
	if (s->tx != NULL) {
		smtp_error(s, "503 5.5.1 AUTH not permitted during a mail "
		    "transaction");
		return;
	}
	if (mlen == 5 && strncasecmp(arg, "PLAIN", 5) == 0)
		s->auth_mech = AUTH_MECH_PLAIN;
	else if (mlen == 5 && strncasecmp(arg, "LOGIN", 5) == 0)
		s->auth_mech = AUTH_MECH_LOGIN;
	else {
		smtp_error(s, "504 5.5.4 Unrecognized authentication type");
		return;
	}
	smtp_enter_state(s, SMTP_S_AUTH);
	if (s->auth_mech == AUTH_MECH_PLAIN) {
		if (initial == NULL)
			smtp_reply(s, "334 ");
		else
			smtp_auth_plain(s, strcmp(initial, "=") == 0 ? "" :
			    initial);
		return;
	}
	if (initial != NULL)		/* LOGIN with the user name */
		smtp_auth_line(s, initial);
	else
		smtp_reply(s, "334 VXNlcm5hbWU6");	/* "Username:" */
}
