/*
 * httpc.h -- a resumable HTTP/1.1 response parser, for API clients.
 *
 * The client side of http_parse.h: independent of libevent and sockets,
 * the caller feeds bytes as they arrive, in pieces of any size, and the
 * parser keeps its position in struct httpc_parser.  Feeding byte by byte
 * gives exactly the same result as feeding everything at once.  A feed
 * consumes only the bytes of the current response, so the caller sees
 * what follows it (on keep-alive connections: nothing, or garbage).
 *
 * Accepted: "HTTP/1.1 NNN reason" (or HTTP/1.0), status 100-599; 1xx
 * interim responses other than 101 are skipped (their heads count toward
 * the head limit); header fields "name: value" with a token name; bodies
 * framed by Content-Length, required except for 204 and 304, which never
 * have a body.  The parser assumes the request was not HEAD.
 *
 * Limits, checked while bytes arrive:
 *   - status line + header lines + the empty line <= HTTPC_HEAD_MAX
 *     bytes, line terminators included: ERR_TOOBIG;
 *   - at most HTTPC_MAX_HEADERS header fields: ERR_TOOBIG;
 *   - Content-Length <= max_body: ERR_TOOBIG, decided from the header
 *     before any body byte is read.
 *
 * Refused with ERR_PROTO: any other version or a malformed status line,
 * 101, bare CR, header folding, bad names, control characters in values,
 * a missing, invalid or duplicate Content-Length, Transfer-Encoding (no
 * chunked: the keyservice never sends it).  Bare LF line ends are
 * accepted in the head.
 *
 * SECURITY: bodies may hold key material: the body buffer is allocated
 * once at its final size (never reallocated, so never copied) and wiped
 * by httpc_reset() and httpc_free().
 */
#ifndef COMMON_HTTPC_H
#define COMMON_HTTPC_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/line.h"

#define HTTPC_HEAD_MAX		(16 * 1024)
#define HTTPC_MAX_HEADERS	64

/* Offsets into httpc_parser.store (NUL-terminated strings). */
struct httpc_field {
	size_t	name;
	size_t	value;
};

/*
 * All members are private; use the functions below.  err is the sticky
 * negative enum err and msg says why; head_len counts head bytes (1xx
 * heads included); store holds the header strings; body has exactly
 * content_length + 1 bytes once the head is done.
 */
struct httpc_parser {
	size_t			 max_body;
	int			 state;
	int			 err;
	const char		*msg;
	int			 status;
	int			 version;	/* 10 or 11 */
	unsigned		 flags;
	struct line_reader	 lr;
	size_t			 head_len;
	struct buf		 store;
	struct httpc_field	 fields[HTTPC_MAX_HEADERS];
	size_t			 nfields;
	uint64_t		 content_length;
	unsigned char		*body;
	size_t			 body_len;
};

void	httpc_init(struct httpc_parser *, size_t);
/* Forget the response (wiping its body) to read the next one. */
void	httpc_reset(struct httpc_parser *);
void	httpc_free(struct httpc_parser *);

/*
 * httpc_feed(p, data, len, used_out): consume input; *used_out is set to
 * the bytes that belong to the current response.  Returns:
 *   0           a complete response is ready; bytes after *used_out are
 *               not its own.  Further feeds return 0 and consume nothing
 *               until httpc_reset().
 *   ERR_AGAIN   all len bytes were consumed; more input is needed.
 *   ERR_TOOBIG  a limit was hit;
 *   ERR_PROTO   the response is malformed or unsupported.
 *               After an error the parser is stuck: every feed returns
 *               the same error (httpc_error() says why); close.
 */
int	httpc_feed(struct httpc_parser *, const void *, size_t, size_t *);

/* After an error: a static description; NULL otherwise. */
const char	*httpc_error(const struct httpc_parser *);

/* Once complete (0 from httpc_feed): */
int		 httpc_status(const struct httpc_parser *);
int		 httpc_version(const struct httpc_parser *);	/* 10, 11 */
/* 1 if the connection may carry another request. */
int		 httpc_keep_alive(const struct httpc_parser *);

/* Headers, in arrival order; lookup is case-insensitive, first wins. */
size_t		 httpc_nheaders(const struct httpc_parser *);
const char	*httpc_header_name(const struct httpc_parser *, size_t);
const char	*httpc_header_value(const struct httpc_parser *, size_t);
const char	*httpc_header(const struct httpc_parser *, const char *);

/* The body (NUL-terminated, never NULL); valid until httpc_reset(). */
const void	*httpc_body(const struct httpc_parser *, size_t *);

#endif
