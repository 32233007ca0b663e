/*
 * dsn.h -- delivery status notifications (bounces) of mailsrv.
 *
 * A pure builder: from a queue envelope and the queued message it makes
 * one RFC 3464 DSN, a multipart/report (RFC 6522) with a human part, a
 * message/delivery-status part and the original (RFC 3461 RET).  The
 * queue runner queues the result from the null sender (RFC 3461 6.2:
 * never with a non-empty MAIL FROM) to env->sender.
 */
#ifndef MAILSRV_DSN_H
#define MAILSRV_DSN_H

#include <stddef.h>
#include <stdint.h>

#include "mailsrv/queue/queue.h"

/*
 * The original is returned whole (RET=FULL) only up to this size, else
 * only its header section (also capped at this size).
 */
#define DSN_ORIG_MAX	(1024 * 1024)
/* A whole DSN; 10000 recipients with every field at its cap fit. */
#define DSN_MSG_MAX	(64 * 1024 * 1024)

enum dsn_kind {
	DSN_FAILURE,	/* Action: failed */
	DSN_DELAY,	/* Action: delayed */
	DSN_SUCCESS,	/* Action: delivered */
};

/*
 * The recipients a DSN of this kind reports, counted:
 *   DSN_FAILURE  state FAILED, NOTIFY FAILURE or not given (0: the
 *                RFC 3461 default, taken as FAILURE only), not NEVER;
 *   DSN_SUCCESS  state DELIVERED with NOTIFY=SUCCESS;
 *   DSN_DELAY    state PENDING with NOTIFY=DELAY, not yet reported.
 * 0 for a NULL env.
 */
size_t	dsn_count(const struct queue_env *, enum dsn_kind);

/*
 * Build the DSN of this kind for env into *out (NUL-terminated, caller
 * frees), *len bytes: a complete RFC 5322 message, CRLF line endings,
 * every line at most 998 octets.
 *   reporting_mta  our host name (From: MAILER-DAEMON@, Reporting-MTA,
 *                  Message-ID); letters, digits, '.', '-', '_' only;
 *   now            unix time of the Date header;
 *   orig, orig_len the queued message (header section + body).
 * With env->ret_full the original is returned as message/rfc822 when it
 * is at most DSN_ORIG_MAX bytes and MIME-safe (no NUL, no bare CR or LF,
 * no line over 998 octets); otherwise, and without RET=FULL, only its
 * header section, as text/rfc822-headers (line ends normalised to CRLF,
 * over-long lines split as continuation lines).  When env->smtputf8 and
 * the report holds UTF-8, the RFC 6533 types are used
 * (message/global-delivery-status, message/global[-headers]).  When any
 * part holds 8-bit data the message carries Content-Transfer-Encoding:
 * 8bit at the top level (send it with BODY=8BITMIME).
 * Strings of env (addresses, ORCPT and ENVID, xtext-decoded, statuses)
 * are untrusted: control characters become spaces, runs of white space
 * one space, bytes that are not allowed become '?', each is capped.
 * ERR_INVAL: NULL arguments, an empty or NULL env->sender (never bounce
 * a bounce), no recipient for this kind, a bad reporting_mta or now;
 * ERR_TOOBIG over DSN_MSG_MAX; ERR_GENERIC if the RNG fails.  On error
 * *out is NULL and *len 0.
 */
int	dsn_build(char **, size_t *, const struct queue_env *, enum dsn_kind,
	    const char *, int64_t, const void *, size_t);

#endif
