/*
 * http_parse.h -- a resumable HTTP/1.1 request parser.
 *
 * Independent of libevent and of sockets: the caller feeds bytes as they
 * arrive, in pieces of any size, and the parser keeps its position in
 * struct http_parser.  Feeding byte by byte gives exactly the same result
 * as feeding everything at once.  The feed consumes only the bytes that
 * belong to the current request, so pipelined requests stay with the
 * caller until http_parse_reset() has been called.
 *
 * Limits, all checked while bytes are still arriving:
 *   - request line + headers (+ chunked trailers) <= max_header bytes,
 *     line terminators included: 431, or 414 if the request line alone is
 *     too long;
 *   - at most HTTP_PARSE_MAX_HEADERS header fields: 431;
 *   - body <= max_body: 413, decided from Content-Length before any body
 *     byte is read, or from each chunk size as the decoded size grows;
 *   - a chunk-size line (with extensions) <= HTTP_PARSE_CHUNK_LINE_MAX: 400.
 *
 * Refused (400 unless noted): bare CR, header folding, header names that
 * are not tokens, control characters in values, duplicate or invalid
 * Content-Length, Content-Length with Transfer-Encoding, Transfer-Encoding
 * in HTTP/1.0, a Transfer-Encoding other than "chunked" (501), versions
 * other than HTTP/1.0 and HTTP/1.1 (505), a request target that is not
 * origin-form ("/..."), invalid or %00 percent escapes, control characters
 * or ".." segments in the decoded path, a missing or duplicate Host in
 * HTTP/1.1.  Bare LF line ends are accepted in the head.
 *
 * Strings returned by the accessors belong to the parser and stay valid
 * until http_parse_reset() or http_parse_free().
 */
#ifndef COMMON_HTTP_PARSE_H
#define COMMON_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/line.h"

/* == HTTP_MAX_HEADERS (http.h); http.c checks they agree */
#define HTTP_PARSE_MAX_HEADERS	64
/* longest chunk-size line, extensions included */
#define HTTP_PARSE_CHUNK_LINE_MAX	1024
/* max_header is clamped to this */
#define HTTP_PARSE_HEADER_LIMIT	(1024 * 1024)

/* Offsets into http_parser.store (NUL-terminated strings). */
struct http_parse_field {
	size_t	name;
	size_t	value;
};

/*
 * All members are private; use the functions below.  err is the sticky
 * negative enum err, status/code/msg describe it; head_len counts head
 * and trailer bytes, line_len the current chunk line; store holds the
 * head strings (NUL-separated), addressed by the offsets; left is what
 * remains of the body or of the current chunk.
 */
struct http_parser {
	size_t			 max_header;
	size_t			 max_body;
	int			 state;
	int			 err;
	int			 status;
	const char		*code;
	const char		*msg;
	struct line_reader	 lr;
	size_t			 head_len;
	size_t			 line_len;
	struct buf		 store;
	size_t			 method, target, path, query;
	int			 version;	/* 10 or 11 */
	unsigned		 flags;
	struct http_parse_field	 fields[HTTP_PARSE_MAX_HEADERS];
	size_t			 nfields;
	struct http_parse_field	*params;	/* decoded query pairs */
	size_t			 nparams, paramcap;
	uint64_t		 content_length;
	uint64_t		 left;
	struct buf		 body;		/* decoded body */
};

/* max_header is clamped to [16, HTTP_PARSE_HEADER_LIMIT]. */
void	http_parse_init(struct http_parser *, size_t, size_t);
/* Forget the request (after it was answered); keep allocations. */
void	http_parse_reset(struct http_parser *);
void	http_parse_free(struct http_parser *);

/*
 * http_parse_feed(p, data, len, used_out): consume input; *used_out is set
 * to the bytes that belong to the current request.  Returns:
 *   0           a complete request (head and body) is ready; bytes after
 *               *used_out belong to the next request.  Further feeds
 *               return 0 and consume nothing until http_parse_reset().
 *   ERR_AGAIN   all len bytes were consumed; more input is needed.
 *   ERR_TOOBIG  a limit was hit (413, 414, 431);
 *   ERR_PROTO   the request is malformed or unsupported (400, 501, 505).
 *               After an error the parser is stuck: every feed returns
 *               the same error; answer with http_parse_status() and close.
 */
int	http_parse_feed(struct http_parser *, const void *, size_t,
	    size_t *);

/* After an error: the HTTP status, a stable code and a message. */
int		 http_parse_status(const struct http_parser *); /* 0: ok */
const char	*http_parse_error_code(const struct http_parser *);
const char	*http_parse_error_msg(const struct http_parser *);

/*
 * 1 once the head is complete and valid (also while the body is still
 * being read); the accessors below are usable from then on.
 */
int	http_parse_head_done(const struct http_parser *);
/* 1 while the body is awaited after "Expect: 100-continue" (HTTP/1.1). */
int	http_parse_expect_continue(const struct http_parser *);

const char	*http_parse_method(const struct http_parser *);
/* Raw target; decoded path (no query); raw query or ""; 10 or 11. */
const char	*http_parse_target(const struct http_parser *);
const char	*http_parse_path(const struct http_parser *);
const char	*http_parse_query_raw(const struct http_parser *);
int		 http_parse_version(const struct http_parser *);
int		 http_parse_keep_alive(const struct http_parser *);

/* Headers, in arrival order; lookup is case-insensitive, first wins. */
size_t		 http_parse_nheaders(const struct http_parser *);
const char	*http_parse_header_name(const struct http_parser *, size_t);
const char	*http_parse_header_value(const struct http_parser *, size_t);
const char	*http_parse_header(const struct http_parser *, const char *);

/* Decoded query parameters ("+" is a space); lookup: first wins. */
size_t		 http_parse_nparams(const struct http_parser *);
const char	*http_parse_param_key(const struct http_parser *, size_t);
const char	*http_parse_param_value(const struct http_parser *, size_t);
const char	*http_parse_param(const struct http_parser *, const char *);

/* The decoded body (NUL-terminated, never NULL). */
const void	*http_parse_body(const struct http_parser *, size_t *);

#endif
