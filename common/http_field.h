/*
 * http_field.h -- HTTP/1.1 header field syntax shared by the request
 * parser (http_parse.c) and the response parser (httpc.c): tokens, the
 * "name: value" split, comma lists, Content-Length.
 */
#ifndef COMMON_HTTP_FIELD_H
#define COMMON_HTTP_FIELD_H

#include <stddef.h>
#include <stdint.h>

/* RFC 9110 tchar / token. */
int	http_tchar(unsigned char);
int	http_token(const char *, size_t);
/*
 * Split a field line "name: OWS value OWS" (s, n bytes) into the name's
 * length and the trimmed value (pointer and length).  0, or -1 with the
 * reason set (folding, no colon, bad name, control character).
 */
int	http_field_split(const char *, size_t, size_t *, const char **,
	    size_t *, const char **);
/* 1 if the comma-separated list v holds token tok (case-insensitive). */
int	http_list_has(const char *, const char *);
/* A Content-Length value: digits only, no overflow.  0 or -1. */
int	http_content_length(const char *, uint64_t *);

#endif
