/*
 * http.c -- HTTP/1.1 server for JSON APIs on common/net (see http.h).
 *
 * Runs in: the API process of keyservice and docstore, on its event loop
 * thread only; handlers and http_reply*() run on that thread too.
 * Failure policy: a malformed request gets a JSON error with the status
 * from http_parse and the connection closes after the flush; a peer that
 * does not read its output (out_max) is closed; out of memory is fatal.
 *
 * Lifetime: each connection has a struct http_conn holding the parser.
 * One request at a time: while a handler has not replied, the net
 * connection is paused and pipelined bytes wait in its input buffer.
 * The request borrows its strings from the parser, so when the peer goes
 * away first the http_conn stays alive (nc == NULL) until the handler's
 * http_reply*(), which then frees both without writing.  The http_conn is
 * also kept while on_read is on the stack (busy).
 *
 * SECURITY: input limits and smuggling checks live in http_parse.c;
 * response headers added by handlers are checked for CR/LF and may not
 * override framing (Content-Length, Transfer-Encoding, Connection).
 * Paths are logged raw (percent-encoded, no query: queries may carry
 * tokens) and escaped.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/http.h"
#include "common/http_parse.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"

_Static_assert(HTTP_MAX_HEADERS == HTTP_PARSE_MAX_HEADERS,
    "http.h and http_parse.h disagree on the header count limit");

#define HTTP_BODY_MAX_DEFAULT	(1024 * 1024)	/* max_body 0 */
#define HTTP_RESP_HDRS_MAX	(8 * 1024)	/* http_add_header total */
#define HTTP_ERRMSG_MAX		512

struct http_server {
	struct net_server	*net;
	struct http_limits	 lim;
	const struct http_route	*routes;
	void			*arg;
};

/*
 * srv is invalid once nc is NULL (the server may be gone); req is the
 * request being handled; t0 the arrival of its first byte; busy counts
 * on_read frames on the stack; closing: the last response is queued;
 * continued: "100 Continue" was sent for this request.
 */
struct http_conn {
	struct http_server	*srv;
	struct net_conn		*nc;
	struct http_parser	 parser;
	struct http_req		*req;
	uint64_t		 t0;
	int			 busy;
	int			 closing;
	int			 continued;
	char			 peer[96];
};

struct http_req {
	struct http_conn	*hc;
	uint64_t		 id;
	const char		*rest;	/* path after a prefix route */
	struct buf		 hdrs;	/* "Name: value\r\n" added */
};

static uint64_t	http_next_id = 1;

static void	http_on_open(struct net_conn *);
static void	http_on_read(struct net_conn *, struct evbuffer *);
static void	http_on_close(struct net_conn *, const char *);

static const struct net_ops http_net_ops = {
	.on_open = http_on_open,
	.on_read = http_on_read,
	.on_timeout = NULL,	/* just close */
	.on_evict = NULL,	/* just close */
	.on_close = http_on_close,
};

const char *
http_status_text(int status)
{
	static const struct {
		int		 code;
		const char	*text;
	} tab[] = {
		{ 100, "Continue" }, { 200, "OK" }, { 201, "Created" },
		{ 202, "Accepted" }, { 204, "No Content" },
		{ 206, "Partial Content" }, { 301, "Moved Permanently" },
		{ 302, "Found" }, { 303, "See Other" },
		{ 304, "Not Modified" }, { 307, "Temporary Redirect" },
		{ 308, "Permanent Redirect" }, { 400, "Bad Request" },
		{ 401, "Unauthorized" }, { 403, "Forbidden" },
		{ 404, "Not Found" }, { 405, "Method Not Allowed" },
		{ 406, "Not Acceptable" }, { 408, "Request Timeout" },
		{ 409, "Conflict" }, { 410, "Gone" },
		{ 411, "Length Required" }, { 412, "Precondition Failed" },
		{ 413, "Content Too Large" }, { 414, "URI Too Long" },
		{ 415, "Unsupported Media Type" },
		{ 416, "Range Not Satisfiable" },
		{ 417, "Expectation Failed" },
		{ 422, "Unprocessable Content" }, { 423, "Locked" },
		{ 428, "Precondition Required" },
		{ 429, "Too Many Requests" },
		{ 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" }, { 501, "Not Implemented" },
		{ 502, "Bad Gateway" }, { 503, "Service Unavailable" },
		{ 504, "Gateway Timeout" },
		{ 505, "HTTP Version Not Supported" },
		{ 507, "Insufficient Storage" },
	};
	size_t	i;

	for (i = 0; i < nitems(tab); i++)
		if (tab[i].code == status)
			return tab[i].text;
	return "Unknown";
}

/* ------------------------------------------------------------ server */

static void
http_limits_apply(struct http_server *srv, const struct http_limits *lim)
{
	srv->lim = *lim;
	if (srv->lim.max_header == 0)
		srv->lim.max_header = HTTP_HEADER_MAX;
	if (srv->lim.max_body == 0)
		srv->lim.max_body = HTTP_BODY_MAX_DEFAULT;
}

int
http_server_new(struct http_server **out, struct event_base *base,
    const char *name, const struct http_limits *lim,
    const struct http_route *routes, void *arg)
{
	struct http_server	*srv;
	int			 rc;

	*out = NULL;
	if (routes == NULL) {
		err_set(ERR_INVAL, "http server %s without routes", name);
		return ERR_INVAL;
	}
	srv = xcalloc(1, sizeof(*srv));
	srv->routes = routes;
	srv->arg = arg;
	http_limits_apply(srv, lim);
	if ((rc = net_server_new(&srv->net, base, name, &srv->lim.net,
	    &http_net_ops, srv)) < 0) {
		free(srv);
		return rc;
	}
	*out = srv;
	return 0;
}

int
http_server_listen(struct http_server *srv, const char *hostport)
{
	return net_server_listen(srv->net, hostport, NET_TLS, NULL);
}

int
http_server_listen_plain(struct http_server *srv, const char *hostport)
{
	return net_server_listen(srv->net, hostport, NET_PLAIN, NULL);
}

void
http_server_set_tls(struct http_server *srv, SSL_CTX *ctx)
{
	net_server_set_tls(srv->net, ctx);
}

/* Parser limits apply to connections accepted from now on. */
void
http_server_set_limits(struct http_server *srv, const struct http_limits *lim)
{
	http_limits_apply(srv, lim);
	net_server_set_limits(srv->net, &srv->lim.net);
}

struct net_server *
http_server_net(struct http_server *srv)
{
	return srv->net;
}

/*
 * Close every connection; requests still in handlers become orphans
 * that their http_reply*() frees.
 */
void
http_server_free(struct http_server **srvp)
{
	struct http_server	*srv = *srvp;

	if (srv == NULL)
		return;
	net_server_free(&srv->net);
	free(srv);
	*srvp = NULL;
}

/* -------------------------------------------------------- responses */

/* Free hc once nothing refers to it any more. */
static void
hc_release(struct http_conn *hc)
{
	if (hc->nc != NULL || hc->req != NULL || hc->busy > 0)
		return;
	http_parse_free(&hc->parser);
	free(hc);
}

/*
 * Queue one response.  No body (nor length) for 1xx, 204 and 304; no
 * body bytes for HEAD.  ERR_TOOBIG when the output limit is reached.
 */
static int
hc_send(struct http_conn *hc, int status, const char *ctype,
    const void *body, size_t len, const struct buf *hdrs, int keep)
{
	struct evbuffer	*out;
	const char	*method = http_parse_method(&hc->parser);
	int		 nobody, rc;

	nobody = status < 200 || status == 204 || status == 304;
	if ((out = evbuffer_new()) == NULL)
		fatalx("evbuffer_new failed");
	if (ctype == NULL || strpbrk(ctype, "\r\n") != NULL)
		ctype = "application/octet-stream";
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status,
	    http_status_text(status));
	if (!nobody)
		evbuffer_add_printf(out, "Content-Type: %s\r\n"
		    "Content-Length: %zu\r\n", ctype, len);
	if (hdrs != NULL && hdrs->len > 0)
		evbuffer_add(out, hdrs->data, hdrs->len);
	if (!keep)
		evbuffer_add_printf(out, "Connection: close\r\n");
	else if (http_parse_version(&hc->parser) == 10)
		evbuffer_add_printf(out, "Connection: keep-alive\r\n");
	evbuffer_add(out, "\r\n", 2);
	if (!nobody && len > 0 && (method == NULL ||
	    strcmp(method, "HEAD") != 0))
		evbuffer_add(out, body, len);
	rc = net_conn_write_buffer(hc->nc, out);
	evbuffer_free(out);
	return rc;
}

/* One log line per request; the path is raw, without the query. */
static void
hc_log(struct http_conn *hc, uint64_t id, int status, size_t bytes,
    const char *error)
{
	const char	*method = http_parse_method(&hc->parser);
	const char	*target = http_parse_target(&hc->parser);
	char		 path[256];
	uint64_t	 ms = hc->t0 != 0 ? now_ms() - hc->t0 : 0;

	if (target != NULL)
		(void)log_escape(path, sizeof(path), target,
		    strcspn(target, "?"));
	else
		(void)snprintf(path, sizeof(path), "-");
	log_info("%016llx http request method=%s path=%s status=%d "
	    "bytes=%zu peer=%s ms=%llu%s%s%s", (unsigned long long)id,
	    method != NULL ? method : "-", path, status, bytes, hc->peer,
	    (unsigned long long)ms, error != NULL ? " error=" : "",
	    error != NULL ? error : "", hc->nc == NULL ? " gone=1" : "");
}

/* A JSON string for peer-influenced text (jansson wants UTF-8). */
static json_t *
http_json_text(const char *s)
{
	json_t	*v;
	char	 esc[HTTP_ERRMSG_MAX];

	if ((v = json_string(s)) != NULL)
		return v;
	(void)log_escape(esc, sizeof(esc), s, strlen(s));
	return json_string(esc);
}

/* {"error": code, "message": msg} as a JSON text ending in "\n". */
static char *
http_error_body(const char *code, const char *msg, size_t *len_out)
{
	json_t	*o;
	char	*s, *body;

	if ((o = json_object()) == NULL)
		fatalx("json_object failed");
	(void)json_object_set_new(o, "error", http_json_text(code));
	(void)json_object_set_new(o, "message", http_json_text(msg));
	if ((s = json_dumps(o, JSON_COMPACT)) == NULL)
		fatalx("json_dumps failed");
	json_decref(o);
	*len_out = (size_t)xasprintf(&body, "%s\n", s);
	free(s);
	return body;
}

/* The request is complete: write, log, then next request or close. */
static void
http_finish(struct http_req *req, int status, const char *ctype,
    const void *body, size_t len)
{
	struct http_conn	*hc = req->hc;
	int			 keep, rc = 0;

	if (hc->req != req)
		fatalx("http reply to a request that is not pending");
	if (status < 100 || status > 599)
		status = 500;
	keep = hc->nc != NULL && !hc->closing &&
	    http_parse_keep_alive(&hc->parser);
	if (hc->nc != NULL)
		rc = hc_send(hc, status, ctype, body, len, &req->hdrs, keep);
	hc_log(hc, req->id, status, len, NULL);
	hc->req = NULL;
	buf_free(&req->hdrs);
	free(req);
	if (hc->nc == NULL) {
		hc_release(hc);
		return;
	}
	if (rc < 0 || !keep) {
		hc->closing = 1;
		net_conn_close(hc->nc, rc < 0 ? "output-limit" : "done");
		return;
	}
	http_parse_reset(&hc->parser);
	hc->t0 = 0;
	hc->continued = 0;
	/* inside on_read the loop goes on; otherwise input was paused */
	if (hc->busy == 0)
		net_conn_resume(hc->nc);
}

void
http_reply(struct http_req *req, int status, const char *ctype,
    const void *body, size_t len)
{
	http_finish(req, status, ctype, body, len);
}

void
http_reply_json(struct http_req *req, int status, json_t *v)
{
	char	*s = NULL, *body;
	size_t	 len;

	if (v != NULL)
		s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(v);
	if (s == NULL) {
		log_warnx("%016llx http cannot serialize response status=%d",
		    (unsigned long long)req->id, status);
		body = http_error_body("internal_error",
		    "cannot serialize response", &len);
		status = 500;
	} else {
		len = (size_t)xasprintf(&body, "%s\n", s);
		free(s);
	}
	http_finish(req, status, "application/json", body, len);
	free(body);
}

void
http_reply_error(struct http_req *req, int status, const char *code,
    const char *fmt, ...)
{
	va_list	 ap;
	char	 msg[HTTP_ERRMSG_MAX], *body;
	size_t	 len;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	body = http_error_body(code, msg, &len);
	http_finish(req, status, "application/json", body, len);
	free(body);
}

/* 1 if name is a token (RFC 9110). */
static int
http_token_ok(const char *s)
{
	static const char	tchar[] = "!#$%&'*+-.^_`|~0123456789"
				    "abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

	return *s != '\0' && s[strspn(s, tchar)] == '\0';
}

void
http_add_header(struct http_req *req, const char *name, const char *value)
{
	static const char *const	 framing[] = {
		"Content-Length", "Content-Type", "Transfer-Encoding",
		"Connection",
	};
	const unsigned char		*v;
	size_t				 i;

	if (!http_token_ok(name))
		goto bad;
	for (i = 0; i < nitems(framing); i++)
		if (strcasecmp(name, framing[i]) == 0)
			goto bad;
	for (v = (const unsigned char *)value; *v != '\0'; v++)
		if ((*v < 0x20 && *v != '\t') || *v == 0x7f)
			goto bad;
	if (buf_printf(&req->hdrs, "%s: %s\r\n", name, value) < 0)
		goto bad;
	return;
bad:
	log_warnx("%016llx http response header refused name=%.64s",
	    (unsigned long long)req->id, http_token_ok(name) ? name : "?");
}

/* --------------------------------------------------------- requests */

const char *
http_req_method(struct http_req *req)
{
	return http_parse_method(&req->hc->parser);
}

const char *
http_req_path(struct http_req *req)
{
	return http_parse_path(&req->hc->parser);
}

const char *
http_req_path_rest(struct http_req *req)
{
	return req->rest;
}

const char *
http_req_query(struct http_req *req, const char *key)
{
	return http_parse_param(&req->hc->parser, key);
}

const char *
http_req_header(struct http_req *req, const char *name)
{
	return http_parse_header(&req->hc->parser, name);
}

const void *
http_req_body(struct http_req *req, size_t *len_out)
{
	return http_parse_body(&req->hc->parser, len_out);
}

const char *
http_req_peer(struct http_req *req)
{
	return req->hc->peer;
}

struct net_conn *
http_req_conn(struct http_req *req)
{
	return req->hc->nc;
}

uint64_t
http_req_id(struct http_req *req)
{
	return req->id;
}

/* "application/json" with optional parameters, case-insensitive. */
static int
http_ctype_json(const char *ct)
{
	size_t	n;

	if (ct == NULL)
		return 0;
	n = strcspn(ct, ";");
	while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	return n == strlen("application/json") &&
	    strncasecmp(ct, "application/json", n) == 0;
}

/* 1 if a container in v sits deeper than HTTP_JSON_DEPTH_MAX. */
static int
http_json_too_deep(json_t *v, int depth)
{
	const char	*key;
	json_t		*e;
	size_t		 i;

	if (!json_is_object(v) && !json_is_array(v))
		return 0;
	if (depth > HTTP_JSON_DEPTH_MAX)
		return 1;
	if (json_is_object(v)) {
		json_object_foreach(v, key, e)
			if (http_json_too_deep(e, depth + 1))
				return 1;
	} else {
		json_array_foreach(v, i, e)
			if (http_json_too_deep(e, depth + 1))
				return 1;
	}
	return 0;
}

/* A new reference the caller owns, or NULL after an error reply. */
json_t *
http_req_json(struct http_req *req)
{
	json_error_t	 jerr;
	json_t		*v;
	const void	*body;
	size_t		 len;

	if (!http_ctype_json(http_req_header(req, "Content-Type"))) {
		http_reply_error(req, 415, "unsupported_media_type",
		    "Content-Type must be application/json");
		return NULL;
	}
	body = http_req_body(req, &len);
	if ((v = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr)) ==
	    NULL) {
		http_reply_error(req, 400, "bad_json", "%s", jerr.text);
		return NULL;
	}
	if (http_json_too_deep(v, 1)) {
		json_decref(v);
		http_reply_error(req, 400, "bad_json",
		    "JSON nested deeper than %d levels", HTTP_JSON_DEPTH_MAX);
		return NULL;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		http_reply_error(req, 400, "bad_json",
		    "expected a JSON object");
		return NULL;
	}
	return v;
}

/* ---------------------------------------------------------- routing */

/* Match path against "/exact" or "/prefix/" + "*"; *rest: what follows. */
static int
http_route_match(const char *pat, const char *path, const char **rest)
{
	size_t	n = strlen(pat);

	if (n >= 2 && pat[n - 2] == '/' && pat[n - 1] == '*') {
		if (strncmp(path, pat, n - 1) != 0)
			return 0;
		*rest = path + n - 1;
		return 1;
	}
	if (strcmp(pat, path) != 0)
		return 0;
	*rest = path + strlen(path);
	return 1;
}

/* Add method to the ", "-separated list unless it is there already. */
static void
http_allow_add(char *list, size_t size, const char *method)
{
	const char	*p = list;
	size_t		 n, mlen = strlen(method), used = strlen(list);

	while (*p != '\0') {
		n = strcspn(p, ",");
		if (n == mlen && strncmp(p, method, n) == 0)
			return;
		p += n;
		p += strspn(p, ", ");
	}
	if (used + mlen + 3 > size)
		return;
	(void)snprintf(list + used, size - used, "%s%s",
	    used > 0 ? ", " : "", method);
}

static void
hc_dispatch(struct http_conn *hc)
{
	struct http_server	*srv = hc->srv;
	const struct http_route	*r;
	struct http_req		*req;
	const char		*method, *path, *rest;
	char			 allow[128] = "";

	req = xcalloc(1, sizeof(*req));
	req->hc = hc;
	req->id = http_next_id++;
	buf_init(&req->hdrs, HTTP_RESP_HDRS_MAX);
	hc->req = req;
	method = http_parse_method(&hc->parser);
	path = http_parse_path(&hc->parser);
	for (r = srv->routes; r->method != NULL; r++) {
		if (!http_route_match(r->path, path, &rest))
			continue;
		if (strcmp(r->method, method) == 0) {
			req->rest = rest;
			r->fn(req, srv->arg);
			return;
		}
		http_allow_add(allow, sizeof(allow), r->method);
	}
	req->rest = "";
	if (allow[0] != '\0') {
		http_add_header(req, "Allow", allow);
		http_reply_error(req, 405, "method_not_allowed",
		    "method not allowed for this resource");
	} else
		http_reply_error(req, 404, "not_found", "no such resource");
}

/* ------------------------------------------------------- connection */

static void
hc_parse_error(struct http_conn *hc)
{
	const struct http_parser	*p = &hc->parser;
	int				 status = http_parse_status(p);
	char				*body;
	size_t				 len;

	body = http_error_body(http_parse_error_code(p),
	    http_parse_error_msg(p), &len);
	hc->closing = 1;
	(void)hc_send(hc, status, "application/json", body, len, NULL, 0);
	hc_log(hc, http_next_id++, status, len, http_parse_error_code(p));
	free(body);
	net_conn_close(hc->nc, "http-error");
}

static void
http_on_open(struct net_conn *nc)
{
	struct http_server	*srv = net_server_arg(net_conn_server(nc));
	struct http_conn	*hc;

	hc = xcalloc(1, sizeof(*hc));
	hc->srv = srv;
	hc->nc = nc;
	http_parse_init(&hc->parser, srv->lim.max_header, srv->lim.max_body);
	(void)snprintf(hc->peer, sizeof(hc->peer), "%s", net_conn_peer(nc));
	net_conn_set(nc, hc);
}

static void
http_on_read(struct net_conn *nc, struct evbuffer *in)
{
	struct http_conn	*hc = net_conn_get(nc);
	struct evbuffer_iovec	 v;
	size_t			 used;
	int			 rc;

	if (hc == NULL || hc->closing) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	hc->busy++;
	while (hc->nc != NULL && !hc->closing && hc->req == NULL &&
	    evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len > 0) {
		if (hc->t0 == 0)
			hc->t0 = now_ms();
		rc = http_parse_feed(&hc->parser, v.iov_base, v.iov_len,
		    &used);
		evbuffer_drain(in, used);
		if (rc == ERR_AGAIN) {
			if (!hc->continued &&
			    http_parse_expect_continue(&hc->parser)) {
				hc->continued = 1;
				(void)net_conn_printf(nc,
				    "HTTP/1.1 100 Continue\r\n\r\n");
			}
			continue;
		}
		if (rc < 0) {
			hc_parse_error(hc);
			break;
		}
		hc_dispatch(hc);
		if (hc->req != NULL && hc->nc != NULL)
			net_conn_pause(hc->nc);
	}
	hc->busy--;
	hc_release(hc);
}

static void
http_on_close(struct net_conn *nc, const char *reason)
{
	struct http_conn	*hc = net_conn_get(nc);

	if (hc == NULL)
		return;
	net_conn_set(nc, NULL);
	hc->nc = NULL;
	if (hc->req != NULL)
		log_debug("%016llx http request orphaned reason=%s",
		    (unsigned long long)hc->req->id, reason);
	hc_release(hc);
}
