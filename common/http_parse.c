/*
 * http_parse.c -- resumable HTTP/1.1 request parser (see http_parse.h).
 *
 * Runs in: every process that serves HTTP (keyservice, docstore APIs).
 * Failure policy: every malformed or oversized request moves the parser
 * to a sticky error state carrying the HTTP status and a stable error
 * code; the caller answers and closes.  Out of memory is fatal (xmalloc).
 *
 * The head is read line by line with common/line (LINE_LF_OK); each line
 * gets a budget of the head bytes still allowed, so an oversized head is
 * reported at the first byte beyond max_header and never buffered.
 * Strings of the head live in one buffer (store) and are addressed by
 * offset, so growing the buffer never invalidates them.
 *
 * SECURITY: request smuggling defences: no folding, no bare CR, exactly
 * one framing (Content-Length xor chunked), no duplicate Content-Length,
 * chunked only as the sole coding; numbers are parsed with overflow
 * checks; the body limit is checked before body bytes are accepted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "common/http_field.h"
#include "common/http_parse.h"
#include "common/log.h"
#include "common/xmalloc.h"

enum {
	HP_START = 0,	/* before the request line (empty lines skipped) */
	HP_HEADERS,	/* header lines */
	HP_BODY,	/* Content-Length body */
	HP_CHUNK_SIZE,	/* chunk-size line */
	HP_CHUNK_DATA,	/* chunk data */
	HP_CHUNK_CRLF,	/* the line end after chunk data */
	HP_TRAILERS,	/* trailer lines, skipped */
	HP_DONE,	/* a complete request */
	HP_ERROR,	/* sticky failure */
};

#define HPF_HAS_CL	0x001
#define HPF_HAS_TE	0x002
#define HPF_CHUNKED	0x004
#define HPF_TE_BAD	0x008
#define HPF_CLOSE	0x010
#define HPF_KEEPALIVE	0x020
#define HPF_HOST	0x040
#define HPF_EXPECT	0x080
#define HPF_QUERY	0x100
#define HPF_HEAD_DONE	0x200

#define HP_NONE		((size_t)-1)

static const char *const hp_state_names[] = {
	"start", "headers", "body", "chunk-size", "chunk-data", "chunk-crlf",
	"trailers", "done", "error",
};

/* Every state change goes through here. */
static void
hp_enter(struct http_parser *p, int state)
{
	if (state < HP_START || state > HP_ERROR)
		fatalx("http parser: unknown state %d", state);
	log_trace("http parse state %s -> %s", hp_state_names[p->state],
	    hp_state_names[state]);
	p->state = state;
}

static int
hp_fail(struct http_parser *p, int status, const char *code, const char *msg)
{
	hp_enter(p, HP_ERROR);
	p->status = status;
	p->code = code;
	p->msg = msg;
	if (status == 413 || status == 414 || status == 431)
		p->err = ERR_TOOBIG;
	else
		p->err = ERR_PROTO;
	err_set(p->err, "http %d %s: %s", status, code, msg);
	return p->err;
}

static int
hp_bad(struct http_parser *p, const char *msg)
{
	return hp_fail(p, 400, "bad_request", msg);
}

/* RFC 9110 tchar. */
static int
hp_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void
http_parse_init(struct http_parser *p, size_t max_header, size_t max_body)
{
	size_t	lmax;

	memset(p, 0, sizeof(*p));
	if (max_header < 16)
		max_header = 16;
	if (max_header > HTTP_PARSE_HEADER_LIMIT)
		max_header = HTTP_PARSE_HEADER_LIMIT;
	p->max_header = max_header;
	p->max_body = max_body;
	lmax = max_header > HTTP_PARSE_CHUNK_LINE_MAX ? max_header :
	    HTTP_PARSE_CHUNK_LINE_MAX;
	line_reader_init(&p->lr, lmax + 2, LINE_LF_OK);
	/* raw head, decoded path and query, a NUL per string */
	buf_init(&p->store, 4 * max_header + 64);
	buf_init(&p->body, max_body);
	http_parse_reset(p);
}

void
http_parse_reset(struct http_parser *p)
{
	hp_enter(p, HP_START);
	p->err = 0;
	p->status = 0;
	p->code = NULL;
	p->msg = NULL;
	line_reader_reset(&p->lr);
	p->head_len = p->line_len = 0;
	buf_reset(&p->store);
	p->method = p->target = p->path = p->query = HP_NONE;
	p->version = 0;
	p->flags = 0;
	p->nfields = 0;
	p->nparams = 0;
	p->content_length = p->left = 0;
	/* a large body is not kept around on an idle connection */
	buf_free(&p->body);
}

void
http_parse_free(struct http_parser *p)
{
	line_reader_free(&p->lr);
	buf_free(&p->store);
	buf_free(&p->body);
	FREE_AND_NULL(p->params);
	p->nparams = p->paramcap = 0;
}

/* Append s[0..n) and a NUL to the store; *off_out is where it starts. */
static int
hp_store(struct http_parser *p, const char *s, size_t n, size_t *off_out)
{
	*off_out = p->store.len;
	if (buf_append(&p->store, s, n) < 0 || buf_putc(&p->store, 0) < 0)
		return hp_fail(p, 431, "header_too_large",
		    "request head too large");
	return 0;
}

/*
 * Percent-decode s[0..n) into the store ("+" is a space if plus).
 * 1 on an invalid escape or %00, else 0 or a hp_fail() code.
 */
static int
hp_store_decoded(struct http_parser *p, const char *s, size_t n, int plus,
    size_t *off_out)
{
	size_t	i;
	int	c, hi, lo;

	*off_out = p->store.len;
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '%') {
			if (n - i < 3)
				return 1;
			hi = hp_hexval((unsigned char)s[i + 1]);
			lo = hp_hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return 1;
			c = hi * 16 + lo;
			i += 2;
		} else if (plus && c == '+')
			c = ' ';
		if (buf_putc(&p->store, c) < 0)
			return hp_fail(p, 431, "header_too_large",
			    "request head too large");
	}
	if (buf_putc(&p->store, 0) < 0)
		return hp_fail(p, 431, "header_too_large",
		    "request head too large");
	return 0;
}

/* A decoded path: no control characters, no ".." segment. */
static int
hp_path_ok(const char *s)
{
	const char	*seg;
	size_t		 i;

	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	for (seg = s; seg != NULL; seg = strchr(seg + 1, '/'))
		if (strncmp(seg, "/..", 3) == 0 &&
		    (seg[3] == '/' || seg[3] == '\0'))
			return 0;
	return 1;
}

static int
hp_add_param(struct http_parser *p, const char *s, size_t n)
{
	struct http_parse_field	*f;
	const char		*eq;
	size_t			 klen;
	int			 rc;

	if (p->nparams == p->paramcap) {
		p->paramcap = p->paramcap ? p->paramcap * 2 : 8;
		p->params = xreallocarray(p->params, p->paramcap,
		    sizeof(*p->params));
	}
	f = &p->params[p->nparams];
	eq = memchr(s, '=', n);
	klen = eq != NULL ? (size_t)(eq - s) : n;
	if ((rc = hp_store_decoded(p, s, klen, 1, &f->name)) != 0)
		return rc;
	if (eq != NULL)
		rc = hp_store_decoded(p, eq + 1, n - klen - 1, 1, &f->value);
	else
		rc = hp_store(p, "", 0, &f->value);
	if (rc != 0)
		return rc;
	p->nparams++;
	return 0;
}

/* Split the raw target into the decoded path and query parameters. */
static int
hp_target(struct http_parser *p, const char *t, size_t n)
{
	const char	*q, *amp, *end;
	size_t		 plen;
	int		 rc;

	q = memchr(t, '?', n);
	plen = q != NULL ? (size_t)(q - t) : n;
	if ((rc = hp_store_decoded(p, t, plen, 0, &p->path)) != 0)
		return rc < 0 ? rc : hp_bad(p, "bad percent escape in path");
	if (!hp_path_ok((char *)p->store.data + p->path))
		return hp_bad(p, "bad characters or segment in path");
	if (q == NULL)
		return 0;
	p->flags |= HPF_QUERY;
	q++;
	end = t + n;
	if ((rc = hp_store(p, q, (size_t)(end - q), &p->query)) < 0)
		return rc;
	while (q < end) {
		amp = memchr(q, '&', (size_t)(end - q));
		if (amp == NULL)
			amp = end;
		if (amp > q &&
		    (rc = hp_add_param(p, q, (size_t)(amp - q))) != 0)
			return rc < 0 ? rc : hp_bad(p,
			    "bad percent escape in query");
		q = amp + 1;
	}
	return 0;
}

/* "METHOD SP origin-form SP HTTP/x.y" */
static int
hp_request_line(struct http_parser *p, const char *s, size_t n)
{
	const char	*sp1, *sp2, *t, *v;
	size_t		 mlen, tlen, vlen, i;
	int		 rc;

	if ((sp1 = memchr(s, ' ', n)) == NULL)
		return hp_bad(p, "malformed request line");
	mlen = (size_t)(sp1 - s);
	t = sp1 + 1;
	if ((sp2 = memchr(t, ' ', n - mlen - 1)) == NULL)
		return hp_bad(p, "malformed request line");
	tlen = (size_t)(sp2 - t);
	v = sp2 + 1;
	vlen = n - mlen - tlen - 2;
	if (!http_token(s, mlen))
		return hp_bad(p, "bad method");
	if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' ||
	    v[5] > '9' || v[6] != '.' || v[7] < '0' || v[7] > '9')
		return hp_bad(p, "malformed HTTP version");
	if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
		return hp_fail(p, 505, "version_not_supported",
		    "only HTTP/1.0 and HTTP/1.1 are supported");
	p->version = v[7] == '1' ? 11 : 10;
	if (tlen == 0 || t[0] != '/')
		return hp_bad(p, "request target must start with /");
	for (i = 0; i < tlen; i++)
		if ((unsigned char)t[i] <= 0x20 ||
		    (unsigned char)t[i] >= 0x7f || t[i] == '#')
			return hp_bad(p, "bad character in request target");
	if ((rc = hp_store(p, s, mlen, &p->method)) < 0 ||
	    (rc = hp_store(p, t, tlen, &p->target)) < 0)
		return rc;
	if ((rc = hp_target(p, t, tlen)) < 0)
		return rc;
	hp_enter(p, HP_HEADERS);
	return 0;
}

/* Headers that change framing or connection handling. */
static int
hp_header_meaning(struct http_parser *p, const char *name, const char *v)
{
	uint64_t	n = 0;

	if (strcasecmp(name, "Content-Length") == 0) {
		if (p->flags & HPF_HAS_CL)
			return hp_bad(p, "duplicate Content-Length");
		if (http_content_length(v, &n) < 0)
			return hp_bad(p, "invalid Content-Length");
		p->flags |= HPF_HAS_CL;
		p->content_length = n;
	} else if (strcasecmp(name, "Transfer-Encoding") == 0) {
		if (p->flags & HPF_HAS_TE)
			return hp_bad(p, "duplicate Transfer-Encoding");
		p->flags |= HPF_HAS_TE;
		if (strcasecmp(v, "chunked") == 0)
			p->flags |= HPF_CHUNKED;
		else
			p->flags |= HPF_TE_BAD;
	} else if (strcasecmp(name, "Host") == 0) {
		if (p->flags & HPF_HOST)
			return hp_bad(p, "duplicate Host");
		p->flags |= HPF_HOST;
	} else if (strcasecmp(name, "Connection") == 0) {
		if (http_list_has(v, "close"))
			p->flags |= HPF_CLOSE;
		if (http_list_has(v, "keep-alive"))
			p->flags |= HPF_KEEPALIVE;
	} else if (strcasecmp(name, "Expect") == 0) {
		if (strcasecmp(v, "100-continue") == 0)
			p->flags |= HPF_EXPECT;
	}
	return 0;
}

/* "name: OWS value OWS" */
static int
hp_header_line(struct http_parser *p, const char *s, size_t n)
{
	struct http_parse_field	*f;
	const char		*v, *why;
	size_t			 nlen, vlen;
	int			 rc;

	if (n > 0 && (s[0] == ' ' || s[0] == '\t'))
		return hp_bad(p, "header folding not allowed");
	if (p->nfields == HTTP_PARSE_MAX_HEADERS)
		return hp_fail(p, 431, "too_many_headers",
		    "too many header fields");
	if (http_field_split(s, n, &nlen, &v, &vlen, &why) < 0)
		return hp_bad(p, why);
	f = &p->fields[p->nfields];
	if ((rc = hp_store(p, s, nlen, &f->name)) < 0 ||
	    (rc = hp_store(p, v, vlen, &f->value)) < 0)
		return rc;
	p->nfields++;
	return hp_header_meaning(p, (char *)p->store.data + f->name,
	    (char *)p->store.data + f->value);
}

/* The empty line after the headers: decide framing. */
static int
hp_head_end(struct http_parser *p)
{
	if ((p->flags & HPF_HAS_CL) && (p->flags & HPF_HAS_TE))
		return hp_bad(p, "both Content-Length and Transfer-Encoding");
	if ((p->flags & HPF_HAS_TE) && p->version == 10)
		return hp_bad(p, "Transfer-Encoding in HTTP/1.0");
	if (p->flags & HPF_TE_BAD)
		return hp_fail(p, 501, "unsupported_transfer_encoding",
		    "only chunked transfer coding is supported");
	if (p->version == 11 && !(p->flags & HPF_HOST))
		return hp_bad(p, "missing Host header");
	if (p->flags & HPF_HAS_CL && p->content_length > p->max_body)
		return hp_fail(p, 413, "body_too_large",
		    "request body too large");
	p->flags |= HPF_HEAD_DONE;
	if (p->flags & HPF_CHUNKED)
		hp_enter(p, HP_CHUNK_SIZE);
	else if (p->content_length > 0) {
		p->left = p->content_length;
		hp_enter(p, HP_BODY);
	} else
		hp_enter(p, HP_DONE);
	return 0;
}

/*
 * Run the line reader over at most budget more bytes.  0: a line is in
 * p->lr.line; ERR_AGAIN: all of len consumed; ERR_TOOBIG: the line needs
 * more than budget bytes; ERR_PROTO: bare CR.
 */
static int
hp_line(struct http_parser *p, const unsigned char *d, size_t len,
    size_t budget, size_t *used)
{
	size_t	n = len < budget ? len : budget;
	int	rc;

	rc = line_feed(&p->lr, d, n, used);
	if (rc == ERR_AGAIN && n < len)
		return ERR_TOOBIG;
	return rc;
}

/* Request line, header and trailer lines, counted against max_header. */
static int
hp_feed_head(struct http_parser *p, const unsigned char *d, size_t len,
    size_t *used)
{
	const char	*s;
	size_t		 n;
	int		 rc;

	rc = hp_line(p, d, len, p->max_header - p->head_len, used);
	p->head_len += *used;
	if (rc == ERR_AGAIN)
		return rc;
	if (rc == ERR_TOOBIG) {
		if (p->state == HP_START)
			return hp_fail(p, 414, "uri_too_long",
			    "request line too long");
		return hp_fail(p, 431, "header_too_large",
		    "request head too large");
	}
	if (rc < 0)
		return hp_bad(p, "bare CR");
	s = (const char *)p->lr.line.data;
	n = p->lr.line.len;
	switch (p->state) {
	case HP_START:
		if (n == 0)
			return 0;	/* empty lines before a request */
		return hp_request_line(p, s, n);
	case HP_HEADERS:
		if (n == 0)
			return hp_head_end(p);
		return hp_header_line(p, s, n);
	default:		/* HP_TRAILERS: skipped */
		if (n == 0)
			hp_enter(p, HP_DONE);
		return 0;
	}
}

static int
hp_chunk_size(struct http_parser *p, const char *s, size_t n)
{
	uint64_t	v = 0;
	size_t		i;
	int		h;

	for (i = 0; i < n && (h = hp_hexval((unsigned char)s[i])) >= 0; i++) {
		if (v > (UINT64_MAX >> 4))
			return hp_bad(p, "chunk size overflow");
		v = (v << 4) | (uint64_t)h;
	}
	if (i == 0)
		return hp_bad(p, "bad chunk size");
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i < n && s[i] != ';')
		return hp_bad(p, "bad chunk size");
	if (v > p->max_body - p->body.len)
		return hp_fail(p, 413, "body_too_large",
		    "request body too large");
	if (v == 0)
		hp_enter(p, HP_TRAILERS);
	else {
		p->left = v;
		hp_enter(p, HP_CHUNK_DATA);
	}
	return 0;
}

/* Chunk-size lines and the line end after chunk data. */
static int
hp_feed_chunk_line(struct http_parser *p, const unsigned char *d,
    size_t len, size_t *used)
{
	size_t	max;
	int	rc;

	max = p->state == HP_CHUNK_SIZE ? HTTP_PARSE_CHUNK_LINE_MAX : 2;
	rc = hp_line(p, d, len, max - p->line_len, used);
	p->line_len += *used;
	if (rc == ERR_AGAIN)
		return rc;
	if (rc == ERR_TOOBIG)
		return hp_bad(p, p->state == HP_CHUNK_SIZE ?
		    "chunk size line too long" : "missing CRLF after chunk");
	if (rc < 0)
		return hp_bad(p, "bare CR");
	p->line_len = 0;
	if (p->state == HP_CHUNK_SIZE)
		return hp_chunk_size(p, (const char *)p->lr.line.data,
		    p->lr.line.len);
	if (p->lr.line.len != 0)
		return hp_bad(p, "missing CRLF after chunk");
	hp_enter(p, HP_CHUNK_SIZE);
	return 0;
}

/* Body bytes: Content-Length body or chunk data. */
static int
hp_feed_body(struct http_parser *p, const unsigned char *d, size_t len,
    size_t *used)
{
	size_t	n = len;

	if ((uint64_t)n > p->left)
		n = (size_t)p->left;
	if (buf_append(&p->body, d, n) < 0)	/* limit checked before */
		return hp_fail(p, 413, "body_too_large",
		    "request body too large");
	p->left -= n;
	*used = n;
	if (p->left == 0)
		hp_enter(p, p->state == HP_BODY ? HP_DONE : HP_CHUNK_CRLF);
	return 0;
}

int
http_parse_feed(struct http_parser *p, const void *data, size_t len,
    size_t *used_out)
{
	const unsigned char	*d = data;
	size_t			 off = 0, n;
	int			 rc = 0;

	*used_out = 0;
	if (p->state == HP_ERROR)
		return p->err;
	while (p->state != HP_DONE && off < len) {
		n = 0;
		switch (p->state) {
		case HP_START:
		case HP_HEADERS:
		case HP_TRAILERS:
			rc = hp_feed_head(p, d + off, len - off, &n);
			break;
		case HP_CHUNK_SIZE:
		case HP_CHUNK_CRLF:
			rc = hp_feed_chunk_line(p, d + off, len - off, &n);
			break;
		case HP_BODY:
		case HP_CHUNK_DATA:
			rc = hp_feed_body(p, d + off, len - off, &n);
			break;
		default:
			fatalx("http parser: feed in state %d", p->state);
		}
		off += n;
		if (rc < 0 && rc != ERR_AGAIN) {
			*used_out = off;
			return rc;
		}
	}
	*used_out = off;
	return p->state == HP_DONE ? 0 : ERR_AGAIN;
}

int
http_parse_status(const struct http_parser *p)
{
	return p->state == HP_ERROR ? p->status : 0;
}

const char *
http_parse_error_code(const struct http_parser *p)
{
	return p->state == HP_ERROR ? p->code : NULL;
}

const char *
http_parse_error_msg(const struct http_parser *p)
{
	return p->state == HP_ERROR ? p->msg : NULL;
}

int
http_parse_head_done(const struct http_parser *p)
{
	return p->state != HP_ERROR && (p->flags & HPF_HEAD_DONE) != 0;
}

int
http_parse_expect_continue(const struct http_parser *p)
{
	return p->version == 11 && (p->flags & HPF_EXPECT) &&
	    (p->state == HP_BODY || p->state == HP_CHUNK_SIZE ||
	    p->state == HP_CHUNK_DATA || p->state == HP_CHUNK_CRLF);
}

/* A string of the store, or def when unset. */
static const char *
hp_str(const struct http_parser *p, size_t off, const char *def)
{
	if (off == HP_NONE || p->store.data == NULL)
		return def;
	return (const char *)p->store.data + off;
}

const char *
http_parse_method(const struct http_parser *p)
{
	return hp_str(p, p->method, NULL);
}

const char *
http_parse_target(const struct http_parser *p)
{
	return hp_str(p, p->target, NULL);
}

const char *
http_parse_path(const struct http_parser *p)
{
	return hp_str(p, p->path, NULL);
}

const char *
http_parse_query_raw(const struct http_parser *p)
{
	return hp_str(p, p->query, "");
}

int
http_parse_version(const struct http_parser *p)
{
	return p->version;
}

int
http_parse_keep_alive(const struct http_parser *p)
{
	if (p->state == HP_ERROR || p->version == 0)
		return 0;
	if (p->flags & HPF_CLOSE)
		return 0;
	return p->version == 11 || (p->flags & HPF_KEEPALIVE) != 0;
}

size_t
http_parse_nheaders(const struct http_parser *p)
{
	return p->nfields;
}

const char *
http_parse_header_name(const struct http_parser *p, size_t i)
{
	return i < p->nfields ? hp_str(p, p->fields[i].name, NULL) : NULL;
}

const char *
http_parse_header_value(const struct http_parser *p, size_t i)
{
	return i < p->nfields ? hp_str(p, p->fields[i].value, NULL) : NULL;
}

const char *
http_parse_header(const struct http_parser *p, const char *name)
{
	size_t	i;

	for (i = 0; i < p->nfields; i++)
		if (strcasecmp(hp_str(p, p->fields[i].name, ""), name) == 0)
			return hp_str(p, p->fields[i].value, NULL);
	return NULL;
}

size_t
http_parse_nparams(const struct http_parser *p)
{
	return p->nparams;
}

const char *
http_parse_param_key(const struct http_parser *p, size_t i)
{
	return i < p->nparams ? hp_str(p, p->params[i].name, NULL) : NULL;
}

const char *
http_parse_param_value(const struct http_parser *p, size_t i)
{
	return i < p->nparams ? hp_str(p, p->params[i].value, NULL) : NULL;
}

const char *
http_parse_param(const struct http_parser *p, const char *key)
{
	size_t	i;

	for (i = 0; i < p->nparams; i++)
		if (strcmp(hp_str(p, p->params[i].name, ""), key) == 0)
			return hp_str(p, p->params[i].value, NULL);
	return NULL;
}

const void *
http_parse_body(const struct http_parser *p, size_t *len_out)
{
	if (len_out != NULL)
		*len_out = p->body.len;
	return p->body.data != NULL ? (const void *)p->body.data : "";
}
