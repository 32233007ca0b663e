/*
 * limits.h -- every protocol limit of mailsrv in one place.
 * Pre-authentication values are the tighter ones.
 */
#ifndef MAILSRV_LIMITS_H
#define MAILSRV_LIMITS_H

/* RFC 5321 4.5.3.1.4: a command line is at most 512 octets with CRLF. */
#define SMTP_CMD_LINE_MAX	512
/* Errors in one session before "421" and disconnect. */
#define SMTP_MAX_ERRORS		10
/* EHLO/HELO argument. */
#define SMTP_HELO_MAX		255

/* One command line before authentication (no literals yet). */
#define IMAP_PREAUTH_LINE_MAX	8192
#define IMAP_TAG_MAX		64
#define IMAP_MAX_ERRORS		10

#endif
