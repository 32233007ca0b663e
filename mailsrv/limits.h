/*
 * limits.h -- every protocol limit of mailsrv in one place.
 * Pre-authentication values are the tighter ones.
 */
#ifndef MAILSRV_LIMITS_H
#define MAILSRV_LIMITS_H

/* RFC 5321 4.5.3.1.4: a command line is at most 512 octets with CRLF. */
#define SMTP_CMD_LINE_MAX	512
/* RFC 4954 4: an AUTH line (and SASL responses) may be 12288 octets. */
#define SMTP_AUTH_LINE_MAX	12288
/*
 * A DATA text line.  RFC 5321 4.5.3.1.6 says 1000 octets, but real mail
 * (HTML from stock clients) exceeds it; like OpenSMTPD we accept up to
 * 64 KiB and refuse the message (554 5.6.0) beyond.
 */
#define SMTP_DATA_LINE_MAX	65536
/* The header section is buffered to add Received/Date/Message-ID. */
#define SMTP_HEADER_MAX		(1024 * 1024)
/* Errors in one session before "421" and disconnect. */
#define SMTP_MAX_ERRORS		10
/* Errors after which each further error reply is delayed (tarpit). */
#define SMTP_TARPIT_AFTER	3
#define SMTP_TARPIT_MS		1000
/* Commands and transactions per session. */
#define SMTP_MAX_COMMANDS	100000
#define SMTP_MAX_TX		1000
/* EHLO/HELO argument, paths and parameters. */
#define SMTP_HELO_MAX		255
#define SMTP_ADDR_MAX		320
#define SMTP_PARAM_MAX		512
/* AUTH failure: the reply waits this long (plus up to as much again). */
#define SMTP_AUTH_FAIL_MS	1000

/* One command line before authentication (no literals yet). */
#define IMAP_PREAUTH_LINE_MAX	8192
#define IMAP_TAG_MAX		64
#define IMAP_MAX_ERRORS		10

#endif
