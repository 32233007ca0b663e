/*
 * sasl.h -- SASL PLAIN (RFC 4616) responses, shared by SMTP AUTH and
 * IMAP AUTHENTICATE.
 *
 * SECURITY: the decoded password is in memory the caller must release
 * with sasl_plain_free() (wiped).
 */
#ifndef COMMON_SASL_H
#define COMMON_SASL_H

#include <stddef.h>

/*
 * Decode base64 "[authzid] NUL authcid NUL passwd".  An authzid other
 * than the authcid (ASCII case-insensitive) is refused: ERR_PERM.
 * ERR_PROTO for bad base64 or shape, ERR_TOOBIG when user or password
 * exceed user_max / pass_max bytes.  On success *user and *pass are
 * NUL-terminated copies (the password may be empty).
 */
int	sasl_plain_decode(const char *, size_t, char **, char **, size_t,
	    size_t);
void	sasl_plain_free(char *, char *);

#endif
