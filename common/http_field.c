/*
 * http_field.c -- header field syntax shared by both HTTP parsers.
 *
 * Runs in: any process (pure functions).
 * Failure policy: -1 with a reason; the parsers turn it into their
 * protocol error.
 * SECURITY: strict: folded lines, bad names, control characters and
 * Content-Length values that are not plain digits or overflow are
 * refused (request smuggling class).
 */
#include <string.h>
#include <strings.h>

#include "common/http_field.h"

int
http_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int
http_token(const char *s, size_t n)
{
	size_t	i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (!http_tchar((unsigned char)s[i]))
			return 0;
	return 1;
}

int
http_field_split(const char *s, size_t n, size_t *nlen_out, const char **v_out,
    size_t *vlen_out, const char **why)
{
	const char	*colon, *v;
	size_t		 nlen, vlen, i;

	if (n > 0 && (s[0] == ' ' || s[0] == '\t')) {
		*why = "header folding not allowed";
		return -1;
	}
	if ((colon = memchr(s, ':', n)) == NULL) {
		*why = "header line without colon";
		return -1;
	}
	nlen = (size_t)(colon - s);
	if (!http_token(s, nlen)) {
		*why = "invalid header name";
		return -1;
	}
	v = colon + 1;
	vlen = n - nlen - 1;
	while (vlen > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	for (i = 0; i < vlen; i++) {
		if (((unsigned char)v[i] < 0x20 && v[i] != '\t') ||
		    v[i] == 0x7f) {
			*why = "control character in header value";
			return -1;
		}
	}
	*nlen_out = nlen;
	*v_out = v;
	*vlen_out = vlen;
	return 0;
}

int
http_list_has(const char *v, const char *tok)
{
	size_t	len, toklen = strlen(tok);

	while (*v != '\0') {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		len = strcspn(v, ",");
		while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
			len--;
		if (len == toklen && strncasecmp(v, tok, len) == 0)
			return 1;
		v += strcspn(v, ",");
	}
	return 0;
}

int
http_content_length(const char *v, uint64_t *out)
{
	uint64_t	n = 0, d;

	if (*v == '\0')
		return -1;
	for (; *v != '\0'; v++) {
		if (*v < '0' || *v > '9')
			return -1;
		d = (uint64_t)(*v - '0');
		if (n > (UINT64_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	*out = n;
	return 0;
}
