/*
 * test_common_http_parse.c -- unit tests for common/http_parse.
 *
 * Runs in: the unit test runner (cmocka).
 * Failure policy: assertions abort the case.
 * SECURITY: covers the smuggling and limit cases (folding, bare CR,
 * duplicate Content-Length, CL+TE, chunk size overflow) and every limit
 * at exactly max and max+1; every request is also fed byte by byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/http_parse.h"

#define MAXH	8192
#define MAXB	65536

/* Parse everything in one call. */
static int
feed_once(struct http_parser *p, const char *s, size_t len, size_t *used)
{
	return http_parse_feed(p, s, len, used);
}

/*
 * Feed one byte at a time: every byte before the last consumed one must
 * give ERR_AGAIN; returns the final code and bytes used in total.
 */
static int
feed_bytes(struct http_parser *p, const char *s, size_t len, size_t *used)
{
	size_t	i, n;
	int	rc = ERR_AGAIN;

	*used = 0;
	for (i = 0; i < len; i++) {
		rc = http_parse_feed(p, s + i, 1, &n);
		if (rc == ERR_AGAIN) {
			assert_int_equal(n, 1);
			continue;
		}
		*used = i + n;
		return rc;
	}
	*used = len;
	return rc;
}

/* A one-line digest of a parsed request, for comparisons. */
static void
digest(struct buf *b, const struct http_parser *p)
{
	const char	*body;
	size_t		 i, blen;

	(void)buf_printf(b, "%s|%s|%s|%s|v%d|ka%d|", http_parse_method(p),
	    http_parse_target(p), http_parse_path(p), http_parse_query_raw(p),
	    http_parse_version(p), http_parse_keep_alive(p));
	for (i = 0; i < http_parse_nheaders(p); i++)
		(void)buf_printf(b, "%s=%s;", http_parse_header_name(p, i),
		    http_parse_header_value(p, i));
	(void)buf_printf(b, "|");
	for (i = 0; i < http_parse_nparams(p); i++)
		(void)buf_printf(b, "%s=%s;", http_parse_param_key(p, i),
		    http_parse_param_value(p, i));
	body = http_parse_body(p, &blen);
	(void)buf_printf(b, "|%zu:", blen);
	(void)buf_append(b, body, blen);
	(void)buf_printf(b, "\n");
}

/*
 * Parse a stream of requests in chunks of step bytes (0: all at once);
 * returns the digests of the complete requests, then "E<status>" if the
 * stream ended in an error.
 */
static char *
parse_stream(const char *s, size_t len, size_t step, size_t maxh,
    size_t maxb)
{
	struct http_parser	p;
	struct buf		out;
	size_t			off = 0, n, used;
	int			rc;

	buf_init(&out, 1 << 20);
	http_parse_init(&p, maxh, maxb);
	while (off < len) {
		n = step == 0 || len - off < step ? len - off : step;
		rc = http_parse_feed(&p, s + off, n, &used);
		off += used;
		if (rc == 0) {
			digest(&out, &p);
			http_parse_reset(&p);
		} else if (rc != ERR_AGAIN) {
			(void)buf_printf(&out, "E%d %s\n",
			    http_parse_status(&p), http_parse_error_code(&p));
			break;
		} else
			assert_int_equal(used, n);
	}
	http_parse_free(&p);
	return buf_steal(&out, NULL);
}

/* Expect a parse failure with this status and code, at once and bytewise. */
static void
expect_error(const char *req, int status, const char *code)
{
	struct http_parser	p;
	size_t			used;
	int			rc, pass;

	for (pass = 0; pass < 2; pass++) {
		http_parse_init(&p, MAXH, MAXB);
		if (pass == 0)
			rc = feed_once(&p, req, strlen(req), &used);
		else
			rc = feed_bytes(&p, req, strlen(req), &used);
		assert_true(rc == ERR_PROTO || rc == ERR_TOOBIG);
		assert_int_equal(http_parse_status(&p), status);
		assert_string_equal(http_parse_error_code(&p), code);
		assert_non_null(http_parse_error_msg(&p));
		assert_int_equal(http_parse_keep_alive(&p), 0);
		/* sticky */
		assert_int_equal(http_parse_feed(&p, "x", 1, &used), rc);
		assert_int_equal(used, 0);
		http_parse_free(&p);
	}
}

static void
test_common_http_parse__simple_get(void **state)
{
	const char		*req = "GET /v1/keys HTTP/1.1\r\n"
				    "Host: example\r\n\r\n";
	struct http_parser	 p;
	size_t			 used, blen;

	http_parse_init(&p, MAXH, MAXB);
	assert_int_equal(http_parse_feed(&p, req, strlen(req), &used), 0);
	assert_int_equal(used, strlen(req));
	assert_true(http_parse_head_done(&p));
	assert_string_equal(http_parse_method(&p), "GET");
	assert_string_equal(http_parse_path(&p), "/v1/keys");
	assert_string_equal(http_parse_target(&p), "/v1/keys");
	assert_string_equal(http_parse_query_raw(&p), "");
	assert_int_equal(http_parse_version(&p), 11);
	assert_int_equal(http_parse_keep_alive(&p), 1);
	assert_int_equal(http_parse_nheaders(&p), 1);
	assert_int_equal(http_parse_status(&p), 0);
	assert_null(http_parse_error_code(&p));
	(void)http_parse_body(&p, &blen);
	assert_int_equal(blen, 0);
	/* complete: further input is not consumed until reset */
	assert_int_equal(http_parse_feed(&p, "GET", 3, &used), 0);
	assert_int_equal(used, 0);
	http_parse_free(&p);
}

static void
test_common_http_parse__headers_case_insensitive(void **state)
{
	const char		*req = "GET / HTTP/1.1\r\nhOsT: h\r\n"
				    "X-Thing:   spaced value \t\r\n"
				    "x-thing: second\r\n\r\n";
	struct http_parser	 p;
	size_t			 used;

	http_parse_init(&p, MAXH, MAXB);
	assert_int_equal(http_parse_feed(&p, req, strlen(req), &used), 0);
	assert_string_equal(http_parse_header(&p, "x-THING"), "spaced value");
	assert_string_equal(http_parse_header(&p, "HOST"), "h");
	assert_null(http_parse_header(&p, "Content-Length"));
	assert_string_equal(http_parse_header_value(&p, 2), "second");
	assert_string_equal(http_parse_header_name(&p, 0), "hOsT");
	assert_null(http_parse_header_name(&p, 3));
	http_parse_free(&p);
}

static void
test_common_http_parse__content_length_body(void **state)
{
	const char		*req = "POST /x HTTP/1.1\r\nHost: h\r\n"
				    "content-length: 11\r\n\r\nhello worldGET";
	struct http_parser	 p;
	const char		*body;
	size_t			 used, blen;

	http_parse_init(&p, MAXH, MAXB);
	assert_int_equal(http_parse_feed(&p, req, strlen(req), &used), 0);
	assert_int_equal(used, strlen(req) - 3);
	body = http_parse_body(&p, &blen);
	assert_int_equal(blen, 11);
	assert_memory_equal(body, "hello world", 11);
	assert_int_equal(body[11], '\0');
	http_parse_free(&p);
}

static void
test_common_http_parse__chunked_body(void **state)
{
	const char		*req = "POST /x HTTP/1.1\r\nHost: h\r\n"
				    "Transfer-Encoding: Chunked\r\n\r\n"
				    "5;ext=1\r\nhello\r\n"
				    "6 \r\n world\r\n"
				    "0\r\nX-Trailer: t\r\n\r\n";
	struct http_parser	 p;
	const char		*body;
	size_t			 used, blen;

	http_parse_init(&p, MAXH, MAXB);
	assert_int_equal(http_parse_feed(&p, req, strlen(req), &used), 0);
	assert_int_equal(used, strlen(req));
	body = http_parse_body(&p, &blen);
	assert_int_equal(blen, 11);
	assert_memory_equal(body, "hello world", 11);
	/* trailers are skipped, not added to the headers */
	assert_null(http_parse_header(&p, "X-Trailer"));
	http_parse_free(&p);
}

static void
test_common_http_parse__pipelined(void **state)
{
	const char		*req = "POST /a HTTP/1.1\r\nHost: h\r\n"
				    "Content-Length: 3\r\n\r\nabc"
				    "GET /b?x=1 HTTP/1.1\r\nHost: h\r\n"
				    "Connection: close\r\n\r\n";
	struct http_parser	 p;
	size_t			 used, off, blen;

	http_parse_init(&p, MAXH, MAXB);
	assert_int_equal(http_parse_feed(&p, req, strlen(req), &used), 0);
	assert_string_equal(http_parse_path(&p), "/a");
	assert_memory_equal(http_parse_body(&p, &blen), "abc", 3);
	off = used;
	http_parse_reset(&p);
	assert_int_equal(http_parse_feed(&p, req + off, strlen(req) - off,
	    &used), 0);
	assert_int_equal(off + used, strlen(req));
	assert_string_equal(http_parse_method(&p), "GET");
	assert_string_equal(http_parse_path(&p), "/b");
	assert_string_equal(http_parse_param(&p, "x"), "1");
	assert_int_equal(http_parse_keep_alive(&p), 0);
	(void)http_parse_body(&p, &blen);
	assert_int_equal(blen, 0);
	http_parse_free(&p);
}

static void
test_common_http_parse__byte_by_byte(void **state)
{
	static const char	*streams[] = {
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
		"POST /p%20q?a=b+c&d=%41&e&&f= HTTP/1.1\nHost: a\n"
		"Content-Length: 4\n\nbody"
		"\r\n"
		"PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
		"\r\n3\r\nabc\r\na;x=y\r\n0123456789\r\n0\r\nT: 1\r\n\r\n"
		"GET /d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: a\r\n\r\nGET /y HTTP/1.1\r\n"
		"Host: a\r\nBad Name: v\r\n\r\n",
		"POST /z HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
		"\r\n4\nabcd\n0\n\n",
	};
	size_t			 i, step;
	char			*ref, *got;

	for (i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
		ref = parse_stream(streams[i], strlen(streams[i]), 0, MAXH,
		    MAXB);
		for (step = 1; step <= 7; step++) {
			got = parse_stream(streams[i], strlen(streams[i]),
			    step, MAXH, MAXB);
			assert_string_equal(ref, got);
			free(got);
		}
		if (i == 0) {
			assert_non_null(strstr(ref, "|/p q|a=b+c&d=%41&e&&f=|"
			    "v11|ka1|"));
			assert_non_null(strstr(ref, "|a=b c;d=A;e=;f=;|"));
			assert_non_null(strstr(ref, "|13:abc0123456789\n"));
			assert_non_null(strstr(ref, "|v10|ka1|"));
		}
		if (i == 1)
			assert_non_null(strstr(ref, "E400 bad_request"));
		free(ref);
	}
}

/* A request whose head is exactly len bytes (len >= 40). */
static char *
head_of_size(size_t len, const char *extra)
{
	const char	*pre = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
	size_t		 fixed = strlen(pre) + 4 + strlen(extra), pad, o;
	char		*s;

	assert_true(len > fixed);
	pad = len - fixed;
	s = malloc(len + strlen(extra) + 1);
	assert_non_null(s);
	o = strlen(pre);
	memcpy(s, pre, o);
	memset(s + o, 'a', pad);
	o += pad;
	memcpy(s + o, "\r\n\r\n", 4);
	o += 4;
	memcpy(s + o, extra, strlen(extra) + 1);
	return s;
}

static void
test_common_http_parse__max_header_exact(void **state)
{
	struct http_parser	 p;
	char			*req = head_of_size(256, "");
	size_t			 used;

	assert_int_equal(strlen(req), 256);
	http_parse_init(&p, 256, MAXB);
	assert_int_equal(feed_bytes(&p, req, 256, &used), 0);
	assert_int_equal(used, 256);
	assert_int_equal(strlen(http_parse_header(&p, "X-Pad")), 256 - 36);
	http_parse_free(&p);
	free(req);
}

static void
test_common_http_parse__max_header_plus_one(void **state)
{
	struct http_parser	 p;
	char			*req = head_of_size(257, "");
	size_t			 used;

	http_parse_init(&p, 256, MAXB);
	/* reported at byte 257, before the end of the head is seen */
	assert_int_equal(http_parse_feed(&p, req, 256, &used), ERR_AGAIN);
	assert_int_equal(http_parse_feed(&p, req + 256, 1, &used),
	    ERR_TOOBIG);
	assert_int_equal(http_parse_status(&p), 431);
	assert_string_equal(http_parse_error_code(&p), "header_too_large");
	http_parse_free(&p);

	http_parse_init(&p, 256, MAXB);
	assert_int_equal(http_parse_feed(&p, req, 257, &used), ERR_TOOBIG);
	assert_int_equal(http_parse_status(&p), 431);
	http_parse_free(&p);
	free(req);
}

static void
test_common_http_parse__request_line_too_long(void **state)
{
	struct http_parser	 p;
	char			 line[300];
	size_t			 used;

	memset(line, 'a', sizeof(line));
	memcpy(line, "GET /", 5);
	http_parse_init(&p, 256, MAXB);
	assert_int_equal(http_parse_feed(&p, line, 256, &used), ERR_AGAIN);
	assert_int_equal(http_parse_feed(&p, line + 256, 44, &used),
	    ERR_TOOBIG);
	assert_int_equal(http_parse_status(&p), 414);
	assert_string_equal(http_parse_error_code(&p), "uri_too_long");
	http_parse_free(&p);
}

static void
test_common_http_parse__max_body_exact(void **state)
{
	const char		*cl = "POST / HTTP/1.1\r\nHost: h\r\n"
				    "Content-Length: 16\r\n\r\n"
				    "0123456789abcdef";
	const char		*ch = "POST / HTTP/1.1\r\nHost: h\r\n"
				    "Transfer-Encoding: chunked\r\n\r\n"
				    "a\r\n0123456789\r\n6\r\nabcdef\r\n"
				    "0\r\n\r\n";
	struct http_parser	 p;
	size_t			 used, blen;

	http_parse_init(&p, MAXH, 16);
	assert_int_equal(feed_bytes(&p, cl, strlen(cl), &used), 0);
	(void)http_parse_body(&p, &blen);
	assert_int_equal(blen, 16);
	http_parse_reset(&p);
	assert_int_equal(feed_bytes(&p, ch, strlen(ch), &used), 0);
	assert_memory_equal(http_parse_body(&p, &blen), "0123456789abcdef",
	    16);
	http_parse_free(&p);
}

static void
test_common_http_parse__max_body_plus_one(void **state)
{
	const char		*cl = "POST / HTTP/1.1\r\nHost: h\r\n"
				    "Content-Length: 17\r\n\r\n";
	const char		*ch = "POST / HTTP/1.1\r\nHost: h\r\n"
				    "Transfer-Encoding: chunked\r\n\r\n"
				    "a\r\n0123456789\r\n7\r\n";
	struct http_parser	 p;
	size_t			 used;

	/* decided from the head alone, before any body byte */
	http_parse_init(&p, MAXH, 16);
	assert_int_equal(http_parse_feed(&p, cl, strlen(cl), &used),
	    ERR_TOOBIG);
	assert_int_equal(used, strlen(cl));
	assert_int_equal(http_parse_status(&p), 413);
	assert_string_equal(http_parse_error_code(&p), "body_too_large");
	http_parse_free(&p);

	/* chunked: at the chunk size that would pass the limit */
	http_parse_init(&p, MAXH, 16);
	assert_int_equal(http_parse_feed(&p, ch, strlen(ch), &used),
	    ERR_TOOBIG);
	assert_int_equal(used, strlen(ch));
	assert_int_equal(http_parse_status(&p), 413);
	http_parse_free(&p);
}

/* A request with n header fields (Host included). */
static char *
request_with_headers(size_t n)
{
	struct buf	b;
	size_t		i;

	buf_init(&b, 1 << 16);
	(void)buf_printf(&b, "GET / HTTP/1.1\r\nHost: h\r\n");
	for (i = 1; i < n; i++)
		(void)buf_printf(&b, "X-H%zu: %zu\r\n", i, i);
	(void)buf_printf(&b, "\r\n");
	return buf_steal(&b, NULL);
}

static void
test_common_http_parse__max_headers_exact(void **state)
{
	struct http_parser	 p;
	char			*req = request_with_headers(
				    HTTP_PARSE_MAX_HEADERS);
	size_t			 used;

	http_parse_init(&p, MAXH, MAXB);
	assert_int_equal(feed_once(&p, req, strlen(req), &used), 0);
	assert_int_equal(http_parse_nheaders(&p), HTTP_PARSE_MAX_HEADERS);
	http_parse_free(&p);
	free(req);
}

static void
test_common_http_parse__max_headers_plus_one(void **state)
{
	char	*req = request_with_headers(HTTP_PARSE_MAX_HEADERS + 1);

	expect_error(req, 431, "too_many_headers");
	free(req);
}

static void
test_common_http_parse__obs_fold(void **state)
{
	expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n",
	    400, "bad_request");
	expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\tb\r\n\r\n",
	    400, "bad_request");
}

static void
test_common_http_parse__bare_cr(void **state)
{
	expect_error("GET / HTTP/1.1\rHost: h\r\n\r\n", 400, "bad_request");
	expect_error("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400,
	    "bad_request");
}

static void
test_common_http_parse__duplicate_content_length(void **state)
{
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
	    "content-length: 1\r\n\r\nx", 400, "bad_request");
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n"
	    "\r\nx", 400, "bad_request");
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n"
	    "\r\nx", 400, "bad_request");
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: "
	    "99999999999999999999999\r\n\r\n", 400, "bad_request");
}

static void
test_common_http_parse__cl_and_te(void **state)
{
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
	    "bad_request");
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
	    "chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400,
	    "bad_request");
}

static void
test_common_http_parse__bad_chunk_size(void **state)
{
	static const char	*pre = "POST / HTTP/1.1\r\nHost: h\r\n"
				    "Transfer-Encoding: chunked\r\n\r\n";
	static const char	*bodies[] = {
		"g\r\n", "\r\n", "0x5\r\nhello\r\n0\r\n\r\n", " 5\r\n",
		"-1\r\n", "5\r\nhelloXX\r\n",
	};
	char			 req[256];
	size_t			 i;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		(void)snprintf(req, sizeof(req), "%s%s", pre, bodies[i]);
		expect_error(req, 400, "bad_request");
	}
}

static void
test_common_http_parse__chunk_size_overflow(void **state)
{
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
	    "chunked\r\n\r\n10000000000000001\r\n", 400, "bad_request");
	/* fits in 64 bits, but over max_body */
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
	    "chunked\r\n\r\nffffffffffffffff\r\n", 413, "body_too_large");
}

static void
test_common_http_parse__te_gzip(void **state)
{
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
	    "gzip\r\n\r\n", 501, "unsupported_transfer_encoding");
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
	    "gzip, chunked\r\n\r\n", 501, "unsupported_transfer_encoding");
}

static void
test_common_http_parse__http2(void **state)
{
	expect_error("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505,
	    "version_not_supported");
	expect_error("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505,
	    "version_not_supported");
	expect_error("GET / HTTP/1.1x\r\nHost: h\r\n\r\n", 400,
	    "bad_request");
	expect_error("GET /\r\n\r\n", 400, "bad_request");
}

static void
test_common_http_parse__bad_percent_escape(void **state)
{
	expect_error("GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad_request");
	expect_error("GET /a%4 HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad_request");
	expect_error("GET /a?x=%g1 HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad_request");
	expect_error("GET /a/%2e%2E/b HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad_request");
	expect_error("GET /a%0a HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad_request");
}

static void
test_common_http_parse__percent_nul(void **state)
{
	expect_error("GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad_request");
	expect_error("GET /a?k=%00 HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad_request");
}

static void
test_common_http_parse__bad_syntax(void **state)
{
	expect_error("GET / HTTP/1.1\r\nHost: h\r\nBad Name: v\r\n\r\n", 400,
	    "bad_request");
	expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-A : v\r\n\r\n", 400,
	    "bad_request");
	expect_error("GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400,
	    "bad_request");
	expect_error("GET / HTTP/1.1\r\nHost: h\r\nnocolon\r\n\r\n", 400,
	    "bad_request");
	expect_error("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad_request");
	expect_error("GET http://x/ HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad_request");
	expect_error("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	    "bad_request");
	expect_error("GET / HTTP/1.1\r\n\r\n", 400, "bad_request");
	expect_error("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400,
	    "bad_request");
	expect_error("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
	    400, "bad_request");
}

static void
test_common_http_parse__keep_alive(void **state)
{
	static const struct {
		const char	*req;
		int		 ka;
	} cases[] = {
		{ "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1 },
		{ "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: h\r\nConnection: x, Close\r\n\r\n",
		  0 },
		{ "GET / HTTP/1.0\r\n\r\n", 0 },
		{ "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1 },
	};
	struct http_parser	p;
	size_t			i, used;

	http_parse_init(&p, MAXH, MAXB);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(http_parse_feed(&p, cases[i].req,
		    strlen(cases[i].req), &used), 0);
		assert_int_equal(http_parse_keep_alive(&p), cases[i].ka);
		http_parse_reset(&p);
	}
	http_parse_free(&p);
}

static void
test_common_http_parse__expect_continue(void **state)
{
	const char		*req = "POST / HTTP/1.1\r\nHost: h\r\n"
				    "Expect: 100-continue\r\n"
				    "Content-Length: 2\r\n\r\n";
	struct http_parser	 p;
	size_t			 used;

	http_parse_init(&p, MAXH, MAXB);
	assert_int_equal(http_parse_feed(&p, req, strlen(req), &used),
	    ERR_AGAIN);
	assert_true(http_parse_head_done(&p));
	assert_true(http_parse_expect_continue(&p));
	assert_int_equal(http_parse_feed(&p, "ok", 2, &used), 0);
	assert_false(http_parse_expect_continue(&p));
	http_parse_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_common_http_parse__simple_get),
		cmocka_unit_test(
		    test_common_http_parse__headers_case_insensitive),
		cmocka_unit_test(test_common_http_parse__content_length_body),
		cmocka_unit_test(test_common_http_parse__chunked_body),
		cmocka_unit_test(test_common_http_parse__pipelined),
		cmocka_unit_test(test_common_http_parse__byte_by_byte),
		cmocka_unit_test(test_common_http_parse__max_header_exact),
		cmocka_unit_test(test_common_http_parse__max_header_plus_one),
		cmocka_unit_test(
		    test_common_http_parse__request_line_too_long),
		cmocka_unit_test(test_common_http_parse__max_body_exact),
		cmocka_unit_test(test_common_http_parse__max_body_plus_one),
		cmocka_unit_test(test_common_http_parse__max_headers_exact),
		cmocka_unit_test(
		    test_common_http_parse__max_headers_plus_one),
		cmocka_unit_test(test_common_http_parse__obs_fold),
		cmocka_unit_test(test_common_http_parse__bare_cr),
		cmocka_unit_test(
		    test_common_http_parse__duplicate_content_length),
		cmocka_unit_test(test_common_http_parse__cl_and_te),
		cmocka_unit_test(test_common_http_parse__bad_chunk_size),
		cmocka_unit_test(test_common_http_parse__chunk_size_overflow),
		cmocka_unit_test(test_common_http_parse__te_gzip),
		cmocka_unit_test(test_common_http_parse__http2),
		cmocka_unit_test(test_common_http_parse__bad_percent_escape),
		cmocka_unit_test(test_common_http_parse__percent_nul),
		cmocka_unit_test(test_common_http_parse__bad_syntax),
		cmocka_unit_test(test_common_http_parse__keep_alive),
		cmocka_unit_test(test_common_http_parse__expect_continue),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
