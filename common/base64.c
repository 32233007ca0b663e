/*
 * base64.c -- strict base64 on OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock.
 *
 * Runs in: any process.
 * Failure policy: ERR_INVAL for anything not canonical base64, ERR_TOOBIG
 * over the caller's bound (checked before decoding).
 * SECURITY: input length is bounded before allocation; output buffers are
 * the caller's to wipe when they hold secrets.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/base64.h"
#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"

char *
b64_encode(const void *p, size_t n)
{
	char	*out;

	if (n > (SIZE_MAX / 4) * 3 - 3 || n > INT32_MAX)
		fatalx("b64_encode: %zu bytes is too long", n);
	out = xmalloc((n + 2) / 3 * 4 + 1);
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

int
b64_char_value(unsigned char c, char c62, char c63)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (unsigned char)c62)
		return 62;
	if (c == (unsigned char)c63)
		return 63;
	return -1;
}

int
b64_decode(unsigned char **out, size_t *len_out, const char *s, size_t slen,
    size_t max)
{
	static const char	 alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char		*buf;
	size_t			 i, pad = 0, n;
	int			 r;

	*out = NULL;
	*len_out = 0;
	if (slen % 4 != 0) {
		err_set(ERR_INVAL, "not base64 (length)");
		return ERR_INVAL;
	}
	if (slen / 4 * 3 > max + 2) {
		err_set(ERR_TOOBIG, "decoded value longer than %zu bytes", max);
		return ERR_TOOBIG;
	}
	if (slen > INT32_MAX) {
		err_set(ERR_TOOBIG, "base64 value too long");
		return ERR_TOOBIG;
	}
	for (i = 0; i < slen; i++) {
		if (s[i] == '=' && i >= slen - 2) {
			pad++;
			continue;
		}
		if (s[i] == '\0' || pad > 0 || strchr(alpha, s[i]) == NULL) {
			err_set(ERR_INVAL, "not base64");
			return ERR_INVAL;
		}
	}
	if (pad == 1 && s[slen - 1] != '=') {
		err_set(ERR_INVAL, "not base64 (padding)");
		return ERR_INVAL;
	}
	n = slen / 4 * 3;
	if (n - pad > max) {
		err_set(ERR_TOOBIG, "decoded value longer than %zu bytes", max);
		return ERR_TOOBIG;
	}
	buf = xmalloc(n + 1);
	if ((r = EVP_DecodeBlock(buf, (const unsigned char *)s,
	    (int)slen)) < 0 || (size_t)r != n) {
		xfreezero(buf, n + 1);
		err_set(ERR_INVAL, "not base64");
		return ERR_INVAL;
	}
	buf[n - pad] = '\0';
	*out = buf;
	*len_out = n - pad;
	return 0;
}
