/*
 * smtp_data.c -- message content: DATA (dot-stuffed lines), BDAT chunks
 * (RFC 3030), the trace and submission headers, and the durable commit
 * (direct delivery into local INBOXes, else the queue) and audit record
 * that precede "250".
 *
 * Runs in: the mailsrv process, event loop thread.
 * Failure policy: a message that breaks a rule (size, bare CR/LF, line
 * length) is read to its end and refused then (the session stays in
 * sync); a queue failure is 451 (try again).  Nothing is acknowledged
 * before the store or the queue says it is on disk and its mail.accept
 * record is written.
 * SECURITY: only CRLF.CRLF ends DATA; a bare LF or CR anywhere in DATA
 * fails the message (SMTP smuggling); the header section buffered to add
 * headers is bounded (SMTP_HEADER_MAX); BDAT sizes are checked against
 * the limit before any byte is read.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "common/err.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mailsrv/smtp/smtp.h"

/* RFC 5322 date of now, "Mon, 30 Nov 2026 02:30:00 +0000". */
static void
smtp_date(char *out, size_t len)
{
	time_t		now = time(NULL);
	struct tm	tm;

	gmtime_r(&now, &tm);
	strftime(out, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

static int
smtp_tx_open(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;

	if (tx->w != NULL)
		return 0;
	if (queue_writer_new(s->ms->queue, &tx->w) < 0) {
		log_warnx("%016llx smtp queue: %s",
		    (unsigned long long)net_conn_id(s->c), err_msg());
		return -1;
	}
	line_reader_init(&tx->dlr, SMTP_DATA_LINE_MAX, 0);
	buf_init(&tx->hdr, SMTP_HEADER_MAX);
	return 0;
}

static void
smtp_tx_write(struct smtp_tx *tx, const void *p, size_t n)
{
	if (tx->fail == SMTP_FAIL_NONE && queue_writer_write(tx->w, p, n) < 0)
		tx->fail = SMTP_FAIL_IO;
}

/* Look for Message-ID and Date in the buffered header section. */
static void
smtp_hdr_scan(struct smtp_tx *tx)
{
	const char	*p = (const char *)tx->hdr.data;
	const char	*end = p + tx->hdr.len, *nl;
	size_t		 n;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = (size_t)((nl ? nl : end) - p);
		if (n == 0 || (n == 1 && p[0] == '\r'))
			break;			/* end of the header section */
		if (n >= 11 && strncasecmp(p, "Message-ID:", 11) == 0)
			tx->has_msgid = 1;
		else if (n >= 5 && strncasecmp(p, "Date:", 5) == 0)
			tx->has_date = 1;
		if (nl == NULL)
			break;
		p = nl + 1;
	}
}

/*
 * The header section is complete (or too big to keep): write the trace
 * header, the submission fix-ups, then the buffered header section.
 */
static void
smtp_hdr_flush(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;
	char		 date[64], tls[160], id[33], line[1024];
	unsigned char	 rnd[16];
	const char	*with;
	size_t		 i;
	int		 n;

	tx->in_body = 1;
	if (tx->hdr.data != NULL)
		smtp_hdr_scan(tx);
	smtp_date(date, sizeof(date));
	tls_describe(tls, sizeof(tls), net_conn_ssl(s->c));
	with = s->authenticated ? (net_conn_is_tls(s->c) ? "ESMTPSA" :
	    "ESMTPA") : net_conn_is_tls(s->c) ? "ESMTPS" : s->esmtp ? "ESMTP" :
	    "SMTP";
	n = snprintf(line, sizeof(line), "Received: from %s (%s)\r\n"
	    "\tby %s (Amanat) with %s%s%s%s\r\n\tfor <%s>; %s\r\n",
	    s->helo[0] ? s->helo : "unknown", net_conn_peer_ip(s->c),
	    smtp_hostname(s), with, net_conn_is_tls(s->c) ? " (" : "",
	    net_conn_is_tls(s->c) ? tls : "", net_conn_is_tls(s->c) ? ")" : "",
	    tx->env.nrcpts == 1 ? tx->env.rcpts[0].addr : "multiple", date);
	if (n > 0 && (size_t)n < sizeof(line))
		smtp_tx_write(tx, line, (size_t)n);
	if (s->svc != SMTP_SVC_MX && !tx->has_date) {
		n = snprintf(line, sizeof(line), "Date: %s\r\n", date);
		smtp_tx_write(tx, line, (size_t)n);
	}
	if (s->svc != SMTP_SVC_MX && !tx->has_msgid) {
		RAND_bytes(rnd, sizeof(rnd));
		for (i = 0; i < sizeof(rnd); i++)
			snprintf(id + 2 * i, 3, "%02x", rnd[i]);
		n = snprintf(line, sizeof(line), "Message-ID: <%s@%s>\r\n", id,
		    smtp_hostname(s));
		smtp_tx_write(tx, line, (size_t)n);
	}
	smtp_tx_write(tx, tx->hdr.data, tx->hdr.len);
	buf_free(&tx->hdr);
}

/*
 * One line of message content (without its CRLF, after dot-unstuffing)
 * or, for BDAT, any run of bytes (line = 0).
 */
static void
smtp_content(struct smtp_session *s, const char *p, size_t n, int line)
{
	struct smtp_tx	*tx = s->tx;
	uint64_t	 max = (uint64_t)s->ms->d->conf.mailsrv.max_message_size;
	size_t		 from;

	tx->size += n + (line ? 2 : 0);
	if (tx->size > max && tx->fail == SMTP_FAIL_NONE) {
		tx->fail = SMTP_FAIL_SIZE;
		queue_writer_abort(&tx->w);
	}
	if (tx->fail != SMTP_FAIL_NONE)
		return;
	if (tx->in_body) {
		smtp_tx_write(tx, p, n);
		if (line)
			smtp_tx_write(tx, "\r\n", 2);
		return;
	}
	if (line) {
		if (n == 0) {			/* end of the header section */
			smtp_hdr_flush(s);
			smtp_tx_write(tx, "\r\n", 2);
			return;
		}
		if (buf_append(&tx->hdr, p, n) < 0 ||
		    buf_append(&tx->hdr, "\r\n", 2) < 0)
			smtp_hdr_flush(s);	/* too big: stop buffering */
		return;
	}
	/* BDAT: buffer until the blank line that ends the headers */
	from = tx->hdr.len >= 3 ? tx->hdr.len - 3 : 0;
	if (buf_append(&tx->hdr, p, n) < 0) {
		smtp_hdr_flush(s);
		smtp_tx_write(tx, p, n);
	} else if (memmem(tx->hdr.data + from, tx->hdr.len - from,
	    "\r\n\r\n", 4) != NULL)
		smtp_hdr_flush(s);	/* writes the body bytes too */
}

/* ------------------------------------------------------------ commit */

static void
smtp_accept_reply(struct smtp_session *s, int rc, const char *id)
{
	if (rc < 0) {
		log_warnx("%016llx smtp queue commit failed: %s",
		    (unsigned long long)net_conn_id(s->c), err_msg());
		smtp_reply(s, "451 4.3.0 Queue write failed, try again later");
	} else {
		const char	*how = s->tx->direct ? "delivered" : "queued";

		log_info("%016llx smtp %s id=%s from=<%s> rcpts=%zu "
		    "size=%llu", (unsigned long long)net_conn_id(s->c), how,
		    id, s->tx->env.sender, s->tx->env.nrcpts,
		    (unsigned long long)s->tx->size);
		smtp_reply(s, "250 2.0.0 Ok: %s as %s", how, id);
		if (!s->tx->direct)
			delivery_kick(s->ms);
	}
	smtp_tx_free(&s->tx);
	smtp_enter_state(s, SMTP_S_HELO);
}

/*
 * An accept in progress: the commit (direct delivery, else the queue)
 * and the mail.accept audit record run at the same time; the session
 * answers once both are done: 250 when both succeeded, else 451 (a
 * commit without its record is not acknowledged: fail-closed).  A record
 * whose commit then failed is followed by one with outcome error.
 */
struct smtp_accept {
	struct smtp_session	*s;
	char			 id[QUEUE_ID_LEN + 1];
	int			 waiting;	/* the commit, the record */
	int			 stored;	/* the commit's rc */
	int			 recorded;	/* the record's rc (0: none due) */
	uint64_t		 conn;
	char			 actor[SMTP_ADDR_MAX + 1];
	char			 peer[64];
};

static void
smtp_accept_step(struct smtp_accept *a)
{
	struct smtp_session	*s = a->s;

	if (--a->waiting > 0)
		return;
	if (a->stored < 0 && s->ms->audit != NULL && a->recorded == 0)
		(void)auditsvc_record(s->ms->audit, a->actor, "", a->peer,
		    "mail.accept", a->id, AUDIT_ERROR, a->conn,
		    json_pack("{s:s}", "reason", "not stored"), NULL, NULL);
	if (smtp_async_end(s) == 0) {
		if (a->stored < 0)
			smtp_accept_reply(s, a->stored, NULL);
		else if (a->recorded < 0)
			smtp_accept_reply(s, ERR_IO, NULL);
		else
			smtp_accept_reply(s, 0, a->id);
	}
	free(a);
}

static void
smtp_accept_audited(void *arg, int rc, uint64_t index)
{
	struct smtp_accept	*a = arg;

	a->recorded = rc;
	if (rc < 0)
		err_set(rc, "audit record failed");
	smtp_accept_step(a);
}

static void
smtp_stored(int rc, const char *id, void *arg)
{
	struct smtp_accept	*a = arg;

	a->stored = rc;
	smtp_accept_step(a);
}

/*
 * A direct delivery ran: every INBOX has the message (the writer's empty
 * file goes back to the spares), or the queue takes it for the
 * recipients still pending.
 */
static void
smtp_direct_done(int rc, const char *id, void *arg)
{
	struct smtp_accept	*a = arg;
	struct smtp_tx		*tx = a->s->tx;

	if (rc == 0) {
		tx->direct = 1;
		queue_writer_abort(&tx->w);
		smtp_stored(0, id, a);
		return;
	}
	log_info("smtp direct delivery id=%s: %s; queueing it", id,
	    err_msg());
	if ((rc = queue_commit(&tx->w, &tx->env, smtp_stored, a)) < 0)
		smtp_stored(rc, NULL, a);
}

/* Commit the message and record its accept, both at once. */
static void
smtp_accept_start(struct smtp_session *s)
{
	struct smtp_tx		*tx = s->tx;
	struct smtp_accept	*a;
	json_t			*details;
	int			 rc;

	a = xcalloc(1, sizeof(*a));
	a->s = s;
	snprintf(a->id, sizeof(a->id), "%s", queue_writer_id(tx->w));
	snprintf(a->actor, sizeof(a->actor), "%s", s->authenticated ?
	    s->user : tx->env.sender);
	snprintf(a->peer, sizeof(a->peer), "%s", net_conn_peer_ip(s->c));
	a->conn = net_conn_id(s->c);
	a->waiting = 1;
	smtp_async_begin(s);
	if (s->ms->audit != NULL) {
		details = json_pack("{s:s,s:I,s:i,s:s}", "from",
		    tx->env.sender, "size", (json_int_t)tx->size, "rcpts",
		    (int)tx->env.nrcpts, "service", s->svc == SMTP_SVC_MX ?
		    "mx" : "submission");
		if (auditsvc_record(s->ms->audit, a->actor, "", a->peer,
		    "mail.accept", a->id, AUDIT_OK, a->conn, details,
		    smtp_accept_audited, a) == 0)
			a->waiting++;
		else
			a->recorded = ERR_IO;
	}
	if (delivery_direct(s->ms, tx->w, &tx->env, smtp_direct_done, a) == 0)
		return;
	if ((rc = queue_commit(&tx->w, &tx->env, smtp_stored, a)) < 0)
		smtp_stored(rc, NULL, a);
}

/* The message is complete: refuse it, or commit it durably. */
static void
smtp_finish(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;

	if (tx->fail == SMTP_FAIL_NONE && !tx->in_body)
		smtp_hdr_flush(s);	/* no body: headers only */
	switch (tx->fail) {
	case SMTP_FAIL_NONE:
		break;
	case SMTP_FAIL_SIZE:
		smtp_error(s, "552 5.3.4 Message size exceeds fixed maximum "
		    "message size");
		goto refused;
	case SMTP_FAIL_BARE:
		smtp_error(s, "554 5.6.0 Message refused: bare CR or LF in "
		    "message content");
		goto refused;
	case SMTP_FAIL_LINE:
		smtp_error(s, "554 5.6.0 Message refused: line too long");
		goto refused;
	case SMTP_FAIL_IO:
		smtp_reply(s, "451 4.3.0 Queue write failed, try again later");
		goto refused;
	}
	tx->env.peer = (char *)net_conn_peer_ip(s->c);
	tx->env.helo = s->helo;
	tx->env.auth = s->authenticated ? s->user : NULL;
	tx->env.created = (int64_t)time(NULL);
	tx->env.next_try = tx->env.created;
	tx->env.size = tx->size;
	smtp_accept_start(s);
	return;
refused:
	smtp_tx_free(&s->tx);
	smtp_enter_state(s, SMTP_S_HELO);
}

/* ------------------------------------------------------------ DATA */

int
smtp_data_begin(struct smtp_session *s)
{
	if (s->tx == NULL) {
		smtp_error(s, "503 5.5.1 Need MAIL command");
		return -1;
	}
	if (s->tx->env.nrcpts == 0) {
		smtp_error(s, "554 5.5.1 No valid recipients");
		return -1;
	}
	if (s->tx->chunking) {
		smtp_error(s, "503 5.5.1 DATA after BDAT");
		return -1;
	}
	if (smtp_tx_open(s) < 0) {
		smtp_reply(s, "451 4.3.0 Queue unavailable, try again later");
		return -1;
	}
	smtp_enter_state(s, SMTP_S_DATA);
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	return 0;
}

void
smtp_data_read(struct smtp_session *s, struct evbuffer *in)
{
	struct smtp_tx		*tx = s->tx;
	struct evbuffer_iovec	 v;
	const char		*line;
	size_t			 used, n;
	int			 rc;

	while (s->state == SMTP_S_DATA &&
	    evbuffer_peek(in, -1, NULL, &v, 1) > 0) {
		rc = line_feed(&tx->dlr, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (rc == ERR_AGAIN)
			continue;
		if (rc == ERR_PROTO || rc == ERR_TOOBIG) {
			if (tx->fail == SMTP_FAIL_NONE)
				tx->fail = rc == ERR_PROTO ? SMTP_FAIL_BARE :
				    SMTP_FAIL_LINE;
			queue_writer_abort(&tx->w);
			continue;
		}
		line = (const char *)tx->dlr.line.data;
		n = tx->dlr.line.len;
		if (n == 1 && line[0] == '.') {
			smtp_finish(s);
			return;
		}
		if (n > 0 && line[0] == '.') {	/* dot-stuffing */
			line++;
			n--;
		}
		smtp_content(s, line, n, 1);
	}
}

/* ------------------------------------------------------------ BDAT */

void
smtp_cmd_bdat(struct smtp_session *s, const char *arg)
{
	struct smtp_tx	*tx = s->tx;
	long long	 n;
	char		 num[32];
	const char	*sp = arg + strcspn(arg, " ");
	size_t		 len = (size_t)(sp - arg);

	if (len == 0 || len >= sizeof(num)) {
		smtp_error(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		return;
	}
	memcpy(num, arg, len);
	num[len] = '\0';
	if (parse_ll(&n, num, 0, INT64_MAX) < 0 ||
	    (*sp != '\0' && strcasecmp(sp, " LAST") != 0)) {
		smtp_error(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		return;
	}
	s->bdat_left = (uint64_t)n;
	if (tx == NULL || tx->env.nrcpts == 0)
		/* RFC 3030: the chunk still follows; it must be discarded */
		s->bdat_last = -1;
	else if (smtp_tx_open(s) < 0)
		s->bdat_last = -2;
	else {
		tx->chunking = 1;
		s->bdat_last = *sp != '\0';
	}
	smtp_enter_state(s, SMTP_S_BDAT);
	if (n == 0)
		smtp_bdat_read(s, NULL);
}

void
smtp_bdat_read(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec	v;
	size_t			n;

	while (s->bdat_left > 0 && in != NULL &&
	    evbuffer_peek(in, -1, NULL, &v, 1) > 0) {
		n = v.iov_len < s->bdat_left ? v.iov_len : (size_t)s->bdat_left;
		if (s->bdat_last >= 0)
			smtp_content(s, v.iov_base, n, 0);
		evbuffer_drain(in, n);
		s->bdat_left -= n;
	}
	if (s->bdat_left > 0)
		return;
	if (s->bdat_last == -1) {
		smtp_enter_state(s, s->tx ? SMTP_S_MAIL : SMTP_S_HELO);
		smtp_error(s, s->tx ? "554 5.5.1 No valid recipients" :
		    "503 5.5.1 Need MAIL command");
		return;
	}
	if (s->bdat_last == -2) {
		smtp_enter_state(s, SMTP_S_MAIL);
		smtp_reply(s, "451 4.3.0 Queue unavailable, try again later");
		return;
	}
	if (s->bdat_last) {
		smtp_enter_state(s, SMTP_S_MAIL);
		smtp_finish(s);
		return;
	}
	smtp_enter_state(s, SMTP_S_MAIL);
	if (s->tx->fail == SMTP_FAIL_SIZE) {
		/* RFC 3030 3: a failed chunk ends the transaction */
		smtp_finish(s);
		return;
	}
	smtp_reply(s, "250 2.0.0 %llu octets received",
	    (unsigned long long)s->tx->size);
}
