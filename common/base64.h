/*
 * base64.h -- standard base64 (RFC 4648 section 4, with padding) for JSON
 * APIs.  Decoding is strict: no whitespace, padding only at the end, the
 * decoded length bounded by the caller before any allocation.
 */
#ifndef COMMON_BASE64_H
#define COMMON_BASE64_H

#include <stddef.h>

/* Encode; returns a NUL-terminated string (caller frees). */
char	*b64_encode(const void *, size_t);
/*
 * Decode s (slen bytes) into *out (caller frees; xfreezero for secrets),
 * at most max bytes: ERR_TOOBIG beyond, ERR_INVAL if not base64.
 */
int	b64_decode(unsigned char **, size_t *, const char *, size_t, size_t);

/*
 * The 6-bit value of base64 character c in an alphabet whose last two
 * characters are c62 and c63 ('+' '/' in RFC 4648 and MIME, '+' ',' in
 * IMAP's modified UTF-7), or -1.
 */
int	b64_char_value(unsigned char c, char c62, char c63);

#endif
