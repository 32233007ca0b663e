/*
 * http.h -- a small HTTP/1.1 server for JSON APIs, on common/net.
 *
 * Why not evhttp: libevent 2.1's evhttp answers its own errors (400, 413,
 * 431) with HTML bodies, has no connection limit and no eviction; the
 * project wants JSON errors for every 4xx and the same connection limits,
 * idle timeouts, output limits and TLS policy as SMTP and IMAP.  See
 * docs/architecture.md.
 *
 * Requests: request line and headers together at most max_header bytes,
 * at most HTTP_MAX_HEADERS header fields; bodies by Content-Length up to
 * max_body (413 before the body is read), or chunked (same limit on the
 * decoded size).  Keep-alive is the default for HTTP/1.1, requests on one
 * connection are answered in order, one at a time.  Header folding,
 * duplicate Content-Length, Content-Length with chunked, bare CR are 400.
 *
 * Handlers may answer at once or later (after a worker finishes): a
 * request stays valid until http_reply*() is called on it.  If the peer
 * goes away meanwhile the reply is discarded and the request freed.
 */
#ifndef COMMON_HTTP_H
#define COMMON_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/net.h"

#define HTTP_MAX_HEADERS	64
#define HTTP_HEADER_MAX		(8 * 1024)	/* default max_header */
#define HTTP_JSON_DEPTH_MAX	32

struct http_server;
struct http_req;

typedef void	(*http_handler_fn)(struct http_req *, void *);

/*
 * A route: method ("GET", ...) and path.  A path ending in a slash
 * and "*" matches any path with that prefix (the rest is
 * http_req_path_rest()).  The first matching route wins.  A path that matches with another method
 * gets 405; no match 404.  The table ends with a NULL method.
 */
struct http_route {
	const char	*method;
	const char	*path;
	http_handler_fn	 fn;
};

struct http_limits {
	struct net_limits	net;
	size_t			max_header;	/* request line + headers */
	size_t			max_body;
};

int	http_server_new(struct http_server **, struct event_base *,
	    const char *, const struct http_limits *,
	    const struct http_route *, void *);
/* Listen with implicit TLS (the only mode; ctx via http_server_set_tls). */
int	http_server_listen(struct http_server *, const char *);
/*
 * Listen without TLS: only for public data that carries its own
 * signature (the CRL and the CA certificate), never for an API.
 */
int	http_server_listen_plain(struct http_server *, const char *);
void	http_server_set_tls(struct http_server *, SSL_CTX *);
void	http_server_set_limits(struct http_server *, const struct http_limits *);
struct net_server *http_server_net(struct http_server *);
void	http_server_free(struct http_server **);

/* Request accessors; strings are valid until the reply. */
const char	*http_req_method(struct http_req *);
const char	*http_req_path(struct http_req *);	/* decoded, no query */
const char	*http_req_path_rest(struct http_req *);	/* after prefix */
const char	*http_req_query(struct http_req *, const char *); /* decoded */
const char	*http_req_header(struct http_req *, const char *); /* case-ins. */
const void	*http_req_body(struct http_req *, size_t *);
const char	*http_req_peer(struct http_req *);	/* "ip:port" */
struct net_conn	*http_req_conn(struct http_req *);	/* NULL if gone */
uint64_t	 http_req_id(struct http_req *);	/* for logs/audit */
/*
 * Parse the body as a JSON object.  On failure replies 400
 * {"error":"bad_json",...} (415 if Content-Type is not JSON) and returns
 * NULL: the handler must then return without replying.
 */
json_t		*http_req_json(struct http_req *);

/* Add a response header before replying (name and value copied). */
void	http_add_header(struct http_req *, const char *, const char *);
/* Reply with a JSON value (reference stolen); frees the request. */
void	http_reply_json(struct http_req *, int, json_t *);
/* Reply with raw bytes and a content type; frees the request. */
void	http_reply(struct http_req *, int, const char *, const void *, size_t);
/*
 * Reply {"error": code, "message": text}; frees the request.  code is a
 * stable machine-readable string ("not_found", "forbidden", ...).
 */
void	http_reply_error(struct http_req *, int, const char *, const char *,
	    ...) __attribute__((format(printf, 4, 5)));

const char	*http_status_text(int);

#endif
