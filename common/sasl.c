/*
 * sasl.c -- SASL PLAIN decoding.  See sasl.h.
 */
#include <string.h>
#include <strings.h>

#include "common/base64.h"
#include "common/err.h"
#include "common/sasl.h"
#include "common/xmalloc.h"

int
sasl_plain_decode(const char *b64, size_t len, char **user, char **pass,
    size_t user_max, size_t pass_max)
{
	unsigned char	*raw = NULL;
	size_t		 n = 0, alen, ulen, plen;
	const char	*authz, *u, *p;
	int		 rc = 0;

	*user = *pass = NULL;
	if (b64_decode(&raw, &n, b64, len, user_max * 2 + pass_max + 2) < 0) {
		err_set(ERR_PROTO, "invalid base64");
		return ERR_PROTO;
	}
	authz = (const char *)raw;
	alen = strnlen(authz, n);
	if (alen == n) {
		rc = ERR_PROTO;
		goto done;
	}
	u = authz + alen + 1;
	ulen = strnlen(u, n - alen - 1);
	if (alen + 1 + ulen == n) {
		rc = ERR_PROTO;
		goto done;
	}
	p = u + ulen + 1;
	plen = n - alen - ulen - 2;
	if (memchr(p, '\0', plen) != NULL) {
		rc = ERR_PROTO;
		goto done;
	}
	if (ulen > user_max || plen > pass_max) {
		rc = ERR_TOOBIG;
		goto done;
	}
	if (alen != 0 && (alen != ulen || strncasecmp(authz, u, ulen) != 0)) {
		rc = ERR_PERM;
		goto done;
	}
	*user = xstrndup(u, ulen);
	*pass = xstrndup(p, plen);
done:
	if (rc == ERR_PROTO)
		err_set(ERR_PROTO, "malformed PLAIN response");
	else if (rc == ERR_TOOBIG)
		err_set(ERR_TOOBIG, "user name or password too long");
	else if (rc == ERR_PERM)
		err_set(ERR_PERM, "authorization identity refused");
	xfreezero(raw, n + 1);
	return rc;
}

void
sasl_plain_free(char *user, char *pass)
{
	if (user != NULL)
		xfreezero(user, strlen(user) + 1);
	if (pass != NULL)
		xfreezero(pass, strlen(pass) + 1);
}
