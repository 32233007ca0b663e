/*
 * httpc.c -- resumable HTTP/1.1 response parser (see httpc.h).
 *
 * Runs in: every process that calls an HTTP API (mailsrv and docstore
 * through keyclient), on its event loop thread.
 * Failure policy: a malformed or oversized response moves the parser to a
 * sticky error state (ERR_PROTO or ERR_TOOBIG with a static message); the
 * caller drops the connection.  Out of memory is fatal (xmalloc).
 *
 * The head is read line by line with common/line (LINE_LF_OK); each line
 * gets the budget of head bytes still allowed, so an oversized head is
 * reported at the first byte beyond HTTPC_HEAD_MAX and never buffered.
 * Header strings live in one buffer (store), addressed by offset.
 *
 * SECURITY: the response comes from a peer that could be compromised or
 * impersonated before verification: exactly one framing (Content-Length,
 * no Transfer-Encoding, no duplicates), numbers parsed with overflow
 * checks, the body limit checked before a body byte is accepted.  The
 * body buffer is allocated once and wiped on reset (key material).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "common/http_field.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/xmalloc.h"

enum {
	HC_START = 0,	/* the status line */
	HC_HEADERS,	/* header lines */
	HC_BODY,	/* Content-Length body */
	HC_DONE,	/* a complete response */
	HC_ERROR,	/* sticky failure */
};

#define HCF_HAS_CL	0x01
#define HCF_CLOSE	0x02
#define HCF_KEEPALIVE	0x04

static const char *const hc_state_names[] = {
	"start", "headers", "body", "done", "error",
};

/* Every state change goes through here. */
static void
hc_enter(struct httpc_parser *p, int state)
{
	if (state < HC_START || state > HC_ERROR)
		fatalx("httpc: unknown state %d", state);
	log_trace("httpc state %s -> %s", hc_state_names[p->state],
	    hc_state_names[state]);
	p->state = state;
}

static int
hc_fail(struct httpc_parser *p, int err, const char *msg)
{
	hc_enter(p, HC_ERROR);
	p->err = err;
	p->msg = msg;
	err_set(err, "http response: %s", msg);
	return err;
}

/* RFC 9110 tchar. */
/* Wipe and free the body. */
static void
hc_body_free(struct httpc_parser *p)
{
	if (p->body != NULL)
		xfreezero(p->body, (size_t)p->content_length + 1);
	p->body = NULL;
	p->body_len = 0;
}

/* Forget the head of a response (also after a 1xx). */
static void
hc_head_reset(struct httpc_parser *p)
{
	buf_reset(&p->store);
	p->nfields = 0;
	p->flags = 0;
	p->status = 0;
	p->version = 0;
	p->content_length = 0;
}

void
httpc_init(struct httpc_parser *p, size_t max_body)
{
	memset(p, 0, sizeof(*p));
	p->max_body = max_body;
	line_reader_init(&p->lr, HTTPC_HEAD_MAX + 2, LINE_LF_OK);
	/* name, value and two NULs never exceed the line they came from */
	buf_init(&p->store, HTTPC_HEAD_MAX + 16);
	httpc_reset(p);
}

void
httpc_reset(struct httpc_parser *p)
{
	hc_body_free(p);
	hc_enter(p, HC_START);
	p->err = 0;
	p->msg = NULL;
	line_reader_reset(&p->lr);
	p->head_len = 0;
	hc_head_reset(p);
}

void
httpc_free(struct httpc_parser *p)
{
	hc_body_free(p);
	line_reader_free(&p->lr);
	buf_free(&p->store);
}

/* "HTTP/1.x NNN[ reason]" */
static int
hc_status_line(struct httpc_parser *p, const char *s, size_t n)
{
	size_t	i;
	int	st;

	if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 ||
	    (s[7] != '0' && s[7] != '1') || s[8] != ' ')
		return hc_fail(p, ERR_PROTO, "malformed status line");
	for (i = 9, st = 0; i < 12; i++) {
		if (s[i] < '0' || s[i] > '9')
			return hc_fail(p, ERR_PROTO, "malformed status code");
		st = st * 10 + (s[i] - '0');
	}
	if (st < 100 || st > 599)
		return hc_fail(p, ERR_PROTO, "status code out of range");
	if (n > 12 && s[12] != ' ')
		return hc_fail(p, ERR_PROTO, "malformed status line");
	for (i = 12; i < n; i++)
		if (((unsigned char)s[i] < 0x20 && s[i] != '\t') ||
		    s[i] == 0x7f)
			return hc_fail(p, ERR_PROTO,
			    "control character in reason phrase");
	p->version = s[7] == '1' ? 11 : 10;
	p->status = st;
	hc_enter(p, HC_HEADERS);
	return 0;
}

/* Headers that change framing or connection handling. */
static int
hc_header_meaning(struct httpc_parser *p, const char *name, const char *v)
{
	uint64_t	n = 0;

	if (strcasecmp(name, "Content-Length") == 0) {
		if (p->flags & HCF_HAS_CL)
			return hc_fail(p, ERR_PROTO,
			    "duplicate Content-Length");
		if (http_content_length(v, &n) < 0)
			return hc_fail(p, ERR_PROTO, "invalid Content-Length");
		p->flags |= HCF_HAS_CL;
		p->content_length = n;
	} else if (strcasecmp(name, "Transfer-Encoding") == 0) {
		return hc_fail(p, ERR_PROTO,
		    "Transfer-Encoding is not supported");
	} else if (strcasecmp(name, "Connection") == 0) {
		if (http_list_has(v, "close"))
			p->flags |= HCF_CLOSE;
		if (http_list_has(v, "keep-alive"))
			p->flags |= HCF_KEEPALIVE;
	}
	return 0;
}

/* Append s[0..n) and a NUL to the store; *off_out is where it starts. */
static int
hc_store(struct httpc_parser *p, const char *s, size_t n, size_t *off_out)
{
	*off_out = p->store.len;
	if (buf_append(&p->store, s, n) < 0 || buf_putc(&p->store, 0) < 0)
		return hc_fail(p, ERR_TOOBIG, "response head too large");
	return 0;
}

/* "name: OWS value OWS" */
static int
hc_header_line(struct httpc_parser *p, const char *s, size_t n)
{
	struct httpc_field	*f;
	const char		*v, *why;
	size_t			 nlen, vlen;
	int			 rc;

	if (n > 0 && (s[0] == ' ' || s[0] == '\t'))
		return hc_fail(p, ERR_PROTO, "header folding not allowed");
	if (p->nfields == HTTPC_MAX_HEADERS)
		return hc_fail(p, ERR_TOOBIG, "too many header fields");
	if (http_field_split(s, n, &nlen, &v, &vlen, &why) < 0)
		return hc_fail(p, ERR_PROTO, why);
	f = &p->fields[p->nfields];
	if ((rc = hc_store(p, s, nlen, &f->name)) < 0 ||
	    (rc = hc_store(p, v, vlen, &f->value)) < 0)
		return rc;
	p->nfields++;
	return hc_header_meaning(p, (char *)p->store.data + f->name,
	    (char *)p->store.data + f->value);
}

/* The empty line after the headers: decide framing. */
static int
hc_head_end(struct httpc_parser *p)
{
	if (p->status == 101)
		return hc_fail(p, ERR_PROTO, "protocol upgrade refused");
	if (p->status < 200) {
		/* interim response: the final one follows */
		hc_head_reset(p);
		hc_enter(p, HC_START);
		return 0;
	}
	if (p->status == 204 || p->status == 304) {
		p->content_length = 0;	/* never a body */
		hc_enter(p, HC_DONE);
		return 0;
	}
	if (!(p->flags & HCF_HAS_CL))
		return hc_fail(p, ERR_PROTO, "missing Content-Length");
	if (p->content_length > p->max_body)
		return hc_fail(p, ERR_TOOBIG, "response body too large");
	if (p->content_length == 0) {
		hc_enter(p, HC_DONE);
		return 0;
	}
	/* final size at once: a secret body is never copied by realloc */
	p->body = xmalloc((size_t)p->content_length + 1);
	p->body_len = 0;
	hc_enter(p, HC_BODY);
	return 0;
}

/* Status and header lines, counted against HTTPC_HEAD_MAX. */
static int
hc_feed_head(struct httpc_parser *p, const unsigned char *d, size_t len,
    size_t *used)
{
	const char	*s;
	size_t		 budget, n;
	int		 rc;

	budget = HTTPC_HEAD_MAX - p->head_len;
	n = len < budget ? len : budget;
	rc = line_feed(&p->lr, d, n, used);
	p->head_len += *used;
	if (rc == ERR_AGAIN && n < len)
		rc = ERR_TOOBIG;
	if (rc == ERR_AGAIN)
		return rc;
	if (rc == ERR_TOOBIG) {
		/* report the first byte beyond the limit as consumed */
		if (*used < len)
			(*used)++;
		return hc_fail(p, ERR_TOOBIG, "response head too large");
	}
	if (rc < 0)
		return hc_fail(p, ERR_PROTO, "bare CR");
	s = (const char *)p->lr.line.data;
	n = p->lr.line.len;
	if (p->state == HC_START)
		return hc_status_line(p, s, n);
	if (n == 0)
		return hc_head_end(p);
	return hc_header_line(p, s, n);
}

static int
hc_feed_body(struct httpc_parser *p, const unsigned char *d, size_t len,
    size_t *used)
{
	size_t	left = (size_t)p->content_length - p->body_len;
	size_t	n = len < left ? len : left;

	memcpy(p->body + p->body_len, d, n);
	p->body_len += n;
	p->body[p->body_len] = '\0';
	*used = n;
	if (p->body_len == p->content_length)
		hc_enter(p, HC_DONE);
	return 0;
}

int
httpc_feed(struct httpc_parser *p, const void *data, size_t len,
    size_t *used_out)
{
	const unsigned char	*d = data;
	size_t			 off = 0, n;
	int			 rc = 0;

	*used_out = 0;
	if (p->state == HC_ERROR)
		return p->err;
	while (p->state != HC_DONE && off < len) {
		n = 0;
		switch (p->state) {
		case HC_START:
		case HC_HEADERS:
			rc = hc_feed_head(p, d + off, len - off, &n);
			break;
		case HC_BODY:
			rc = hc_feed_body(p, d + off, len - off, &n);
			break;
		default:
			fatalx("httpc: feed in state %d", p->state);
		}
		off += n;
		if (rc < 0 && rc != ERR_AGAIN) {
			*used_out = off;
			return rc;
		}
	}
	*used_out = off;
	return p->state == HC_DONE ? 0 : ERR_AGAIN;
}

const char *
httpc_error(const struct httpc_parser *p)
{
	return p->state == HC_ERROR ? p->msg : NULL;
}

int
httpc_status(const struct httpc_parser *p)
{
	return p->state == HC_DONE ? p->status : 0;
}

int
httpc_version(const struct httpc_parser *p)
{
	return p->version;
}

int
httpc_keep_alive(const struct httpc_parser *p)
{
	if (p->state != HC_DONE || (p->flags & HCF_CLOSE))
		return 0;
	return p->version == 11 || (p->flags & HCF_KEEPALIVE) != 0;
}

size_t
httpc_nheaders(const struct httpc_parser *p)
{
	return p->nfields;
}

const char *
httpc_header_name(const struct httpc_parser *p, size_t i)
{
	if (i >= p->nfields)
		return NULL;
	return (const char *)p->store.data + p->fields[i].name;
}

const char *
httpc_header_value(const struct httpc_parser *p, size_t i)
{
	if (i >= p->nfields)
		return NULL;
	return (const char *)p->store.data + p->fields[i].value;
}

const char *
httpc_header(const struct httpc_parser *p, const char *name)
{
	size_t	i;

	for (i = 0; i < p->nfields; i++)
		if (strcasecmp(httpc_header_name(p, i), name) == 0)
			return httpc_header_value(p, i);
	return NULL;
}

const void *
httpc_body(const struct httpc_parser *p, size_t *len_out)
{
	if (len_out != NULL)
		*len_out = p->body != NULL ? p->body_len : 0;
	return p->body != NULL ? (const void *)p->body : "";
}
