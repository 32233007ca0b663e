/*
 * test_common_httpc.c -- unit tests for common/httpc (HTTP responses).
 *
 * Runs in: the unit test runner (cmocka).
 * Failure policy: assertions abort the case.
 * SECURITY: covers the framing rules the client relies on (Content-Length
 * required, duplicates and Transfer-Encoding refused, folding, bare CR)
 * and every limit at exactly max and max+1; every response is also fed
 * byte by byte and must give the same result.
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
#include "common/httpc.h"

#define MAXB	4096

/* A one-line digest of a parsed response, for comparisons. */
static void
digest(struct buf *b, const struct httpc_parser *p)
{
	const char	*body;
	size_t		 i, blen;

	(void)buf_printf(b, "%d v%d ka%d|", httpc_status(p), httpc_version(p),
	    httpc_keep_alive(p));
	for (i = 0; i < httpc_nheaders(p); i++)
		(void)buf_printf(b, "%s=%s;", httpc_header_name(p, i),
		    httpc_header_value(p, i));
	body = httpc_body(p, &blen);
	assert_int_equal(body[blen], '\0');
	(void)buf_printf(b, "|%zu:", blen);
	(void)buf_append(b, body, blen);
	(void)buf_printf(b, "\n");
}

/*
 * Parse a stream of responses in pieces of step bytes (0: all at once);
 * returns the digests of the complete responses, then "E<err>" if the
 * stream ended in an error, or "A" if more input was needed.
 */
static char *
parse_stream(const char *s, size_t len, size_t step, size_t maxb)
{
	struct httpc_parser	p;
	struct buf		out;
	size_t			off = 0, n, used;
	int			rc = ERR_AGAIN;

	buf_init(&out, 1 << 20);
	httpc_init(&p, maxb);
	while (off < len) {
		n = step == 0 || len - off < step ? len - off : step;
		rc = httpc_feed(&p, s + off, n, &used);
		assert_true(used <= n);
		off += used;
		if (rc == 0) {
			digest(&out, &p);
			httpc_reset(&p);
		} else if (rc != ERR_AGAIN) {
			assert_non_null(httpc_error(&p));
			(void)buf_printf(&out, "E%d\n", rc);
			break;
		} else
			assert_int_equal(used, n);
	}
	if (rc == ERR_AGAIN)
		(void)buf_printf(&out, "A\n");
	httpc_free(&p);
	return buf_steal(&out, NULL);
}

/* Parse at once and byte by byte: same result, which is returned. */
static char *
parse_both(const char *s, size_t maxb)
{
	char	*once, *bytes;

	once = parse_stream(s, strlen(s), 0, maxb);
	bytes = parse_stream(s, strlen(s), 1, maxb);
	assert_string_equal(once, bytes);
	free(bytes);
	return once;
}

static void
expect(const char *resp, const char *want)
{
	char	*got = parse_both(resp, MAXB);

	assert_string_equal(got, want);
	free(got);
}

static void
test_common_httpc__parse(void **state)
{
	struct httpc_parser	 p;
	static const char	 r[] = "HTTP/1.1 201 Created\r\n"
				    "Content-Type: application/json\r\n"
				    "X-Empty:\r\n"
				    "content-length:  7 \r\n\r\n"
				    "{\"a\":1}";
	const char		*body;
	size_t			 used, blen;

	httpc_init(&p, MAXB);
	assert_int_equal(httpc_feed(&p, r, sizeof(r) - 1, &used), 0);
	assert_int_equal(used, sizeof(r) - 1);
	assert_int_equal(httpc_status(&p), 201);
	assert_int_equal(httpc_version(&p), 11);
	assert_int_equal(httpc_keep_alive(&p), 1);
	assert_int_equal(httpc_nheaders(&p), 3);
	assert_string_equal(httpc_header(&p, "CONTENT-TYPE"),
	    "application/json");
	assert_string_equal(httpc_header(&p, "x-empty"), "");
	assert_string_equal(httpc_header_name(&p, 2), "content-length");
	assert_string_equal(httpc_header_value(&p, 2), "7");
	assert_null(httpc_header(&p, "Content-Encoding"));
	assert_null(httpc_header_name(&p, 3));
	body = httpc_body(&p, &blen);
	assert_int_equal(blen, 7);
	assert_string_equal(body, "{\"a\":1}");
	assert_null(httpc_error(&p));
	/* complete: further feeds consume nothing */
	assert_int_equal(httpc_feed(&p, "HTTP", 4, &used), 0);
	assert_int_equal(used, 0);
	httpc_reset(&p);
	assert_int_equal(httpc_status(&p), 0);
	body = httpc_body(&p, &blen);
	assert_int_equal(blen, 0);
	assert_string_equal(body, "");
	httpc_free(&p);

	/* no reason phrase, empty body, HTTP/1.0 semantics */
	expect("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
	    "200 v11 ka1|Content-Length=0;|0:\n");
	expect("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
	    "200 v10 ka0|Content-Length=2;|2:ok\n");
	expect("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n"
	    "Content-Length: 0\r\n\r\n",
	    "200 v10 ka1|Connection=Keep-Alive;Content-Length=0;|0:\n");
	expect("HTTP/1.1 404 Not Found\r\nConnection: foo, close\r\n"
	    "Content-Length: 2\r\n\r\n{}",
	    "404 v11 ka0|Connection=foo, close;Content-Length=2;|2:{}\n");
	/* bare LF line ends are tolerated */
	expect("HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
	    "200 v11 ka1|Content-Length=1;|1:x\n");
}

static void
test_common_httpc__no_body_statuses(void **state)
{
	/* 204 and 304 never have a body, with or without Content-Length */
	expect("HTTP/1.1 204 No Content\r\n\r\n", "204 v11 ka1||0:\n");
	expect("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
	    "304 v11 ka1|Content-Length=10;|0:\n");
	/* interim responses are skipped, the final one is returned */
	expect("HTTP/1.1 100 Continue\r\nX-A: 1\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
	    "200 v11 ka1|Content-Length=1;|1:z\n");
	expect("HTTP/1.1 101 Switching Protocols\r\n\r\n", "E-6\n");
}

static void
test_common_httpc__bytewise(void **state)
{
	static const char	*const cases[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
		("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3"
		    "\r\n\r\nabc"),
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
		"HTTP/1.1 200 OK\r\nA:\rb\r\n\r\n",
	};
	struct httpc_parser	 p;
	const char		*s;
	size_t			 i, j, used, len;
	int			 rc;
	char			*r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = parse_both(cases[i], MAXB);
		free(r);
	}
	/* ERR_AGAIN for every byte but the last of a response */
	s = cases[0];
	len = strlen(s);
	httpc_init(&p, MAXB);
	for (j = 0; j < len; j++) {
		rc = httpc_feed(&p, s + j, 1, &used);
		assert_int_equal(used, 1);
		assert_int_equal(rc, j + 1 < len ? ERR_AGAIN : 0);
	}
	assert_int_equal(httpc_status(&p), 200);
	httpc_free(&p);
}

/* A head of exactly total bytes (CRLFs included), padded by X-Pad. */
static char *
head_of(size_t total)
{
	static const char	 pre[] = "HTTP/1.1 200 OK\r\nContent-Length: 0"
				    "\r\nX-Pad: ";
	struct buf		 b;

	buf_init(&b, total + 64);
	(void)buf_append(&b, pre, sizeof(pre) - 1);
	while (b.len < total - 4)
		(void)buf_putc(&b, 'v');
	(void)buf_printf(&b, "\r\n\r\n");
	return buf_steal(&b, NULL);
}

static void
test_common_httpc__head_limit(void **state)
{
	char	*h, *r;

	h = head_of(HTTPC_HEAD_MAX);
	assert_int_equal(strlen(h), HTTPC_HEAD_MAX);
	r = parse_both(h, MAXB);
	assert_int_equal(strncmp(r, "200 v11", 7), 0);
	free(r);
	free(h);

	h = head_of(HTTPC_HEAD_MAX + 1);
	assert_int_equal(strlen(h), HTTPC_HEAD_MAX + 1);
	r = parse_both(h, MAXB);
	assert_string_equal(r, "E-5\n");
	free(r);
	free(h);

	/* one line longer than the whole budget */
	h = head_of(HTTPC_HEAD_MAX * 2);
	r = parse_both(h, MAXB);
	assert_string_equal(r, "E-5\n");
	free(r);
	free(h);
}

static void
test_common_httpc__field_limit(void **state)
{
	struct buf	 b;
	size_t		 i;
	char		*r;

	/* Content-Length + 63 more = 64 fields: fine; one more is not */
	buf_init(&b, 1 << 16);
	(void)buf_printf(&b, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n");
	for (i = 1; i < HTTPC_MAX_HEADERS; i++)
		(void)buf_printf(&b, "X-%zu: v\r\n", i);
	(void)buf_printf(&b, "\r\n");
	r = parse_both((char *)b.data, MAXB);
	assert_int_equal(strncmp(r, "200 v11", 7), 0);
	free(r);
	b.len -= 2;
	(void)buf_printf(&b, "X-last: v\r\n\r\n");
	r = parse_both((char *)b.data, MAXB);
	assert_string_equal(r, "E-5\n");
	free(r);
	buf_free(&b);
}

static void
test_common_httpc__body_limit(void **state)
{
	struct buf	 b;
	size_t		 i;
	char		*r;

	buf_init(&b, 1 << 16);
	(void)buf_printf(&b, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
	    MAXB);
	for (i = 0; i < MAXB; i++)
		(void)buf_putc(&b, 'a' + (int)(i % 26));
	r = parse_both((char *)b.data, MAXB);
	assert_int_equal(strncmp(r, "200 v11 ka1|Content-Length=4096;|4096:abc",
	    41), 0);
	free(r);
	/* one more is refused from the header, before any body byte */
	buf_reset(&b);
	(void)buf_printf(&b, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
	    MAXB + 1);
	r = parse_both((char *)b.data, MAXB);
	assert_string_equal(r, "E-5\n");
	free(r);
	buf_free(&b);
	/* a length that does not fit in 64 bits */
	expect("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n"
	    "\r\n", "E-6\n");
	expect("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n"
	    "\r\n", "E-5\n");
}

static void
test_common_httpc__bad_status_line(void **state)
{
	static const char	*const bad[] = {
		"HTTP/1.2 200 OK\r\n",
		"HTTP/2 200 OK\r\n",
		"HTTP/1.1  200 OK\r\n",
		"HTTP/1.1 20 OK\r\n",
		"HTTP/1.1 2000 OK\r\n",
		"HTTP/1.1 099 OK\r\n",
		"HTTP/1.1 600 OK\r\n",
		"HTTP/1.1 2x0 OK\r\n",
		"HTTP/1.1 200OK\r\n",
		"http/1.1 200 OK\r\n",
		"HTTP/1.1 200 O\x01K\r\n",
		"\r\n",
		"SSH-2.0-OpenSSH\r\n",
	};
	size_t	i;
	char	*r;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = parse_both(bad[i], MAXB);
		assert_string_equal(r, "E-6\n");
		free(r);
	}
}

static void
test_common_httpc__framing(void **state)
{
	/* Content-Length is required */
	expect("HTTP/1.1 200 OK\r\n\r\n{}", "E-6\n");
	expect("HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\n", "E-6\n");
	/* chunked, or any transfer coding, is refused */
	expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "2\r\n{}\r\n0\r\n\r\n", "E-6\n");
	expect("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "Transfer-Encoding: gzip\r\n\r\n{}", "E-6\n");
	/* duplicate or junk Content-Length */
	expect("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "Content-Length: 2\r\n\r\n{}", "E-6\n");
	expect("HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n{}", "E-6\n");
	expect("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n{}",
	    "E-6\n");
	expect("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", "E-6\n");
	/* folding, bad names, control characters, bare CR */
	expect("HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\n\r\n", "E-6\n");
	expect("HTTP/1.1 200 OK\r\nX A: 1\r\n\r\n", "E-6\n");
	expect("HTTP/1.1 200 OK\r\n: 1\r\n\r\n", "E-6\n");
	expect("HTTP/1.1 200 OK\r\nX-A 1\r\n\r\n", "E-6\n");
	expect("HTTP/1.1 200 OK\r\nX-A: 1\x7f\r\n\r\n", "E-6\n");
	expect("HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n", "E-6\n");
	/* a truncated response needs more input */
	expect("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", "A\n");
}

static void
test_common_httpc__keep_alive_stream(void **state)
{
	static const char	r[] =
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
	    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 16\r\n\r\n"
	    "{\"error\":\"deny\"}"
	    "HTTP/1.1 204 No Content\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n"
	    "\r\n1";
	struct httpc_parser	p;
	size_t			used, off;
	char			*got;

	got = parse_both(r, MAXB);
	assert_string_equal(got,
	    "200 v11 ka1|Content-Length=2;|2:{}\n"
	    "401 v11 ka1|Content-Length=16;|16:{\"error\":\"deny\"}\n"
	    "204 v11 ka1||0:\n"
	    "200 v11 ka0|Connection=close;Content-Length=1;|1:1\n");
	free(got);
	/* in every piece size the same four responses */
	for (off = 2; off < 40; off++) {
		got = parse_stream(r, sizeof(r) - 1, off, MAXB);
		assert_int_equal(strncmp(got, "200 v11 ka1|", 12), 0);
		assert_non_null(strstr(got, "204 v11 ka1||0:\n200 v11 ka0|"));
		free(got);
	}
	/* the first feed stops exactly at the end of the first response */
	httpc_init(&p, MAXB);
	assert_int_equal(httpc_feed(&p, r, sizeof(r) - 1, &used), 0);
	assert_int_equal(used, strlen("HTTP/1.1 200 OK\r\nContent-Length: 2"
	    "\r\n\r\n{}"));
	httpc_free(&p);
}

static void
test_common_httpc__sticky_error(void **state)
{
	struct httpc_parser	p;
	size_t			used;

	httpc_init(&p, MAXB);
	assert_int_equal(httpc_feed(&p, "HTTP/9", 6, &used), ERR_AGAIN);
	assert_int_equal(httpc_feed(&p, ".9 200\r\n", 9, &used), ERR_PROTO);
	assert_non_null(httpc_error(&p));
	assert_int_equal(httpc_feed(&p, "HTTP/1.1", 8, &used), ERR_PROTO);
	assert_int_equal(used, 0);
	assert_int_equal(httpc_status(&p), 0);
	assert_int_equal(httpc_keep_alive(&p), 0);
	/* reset recovers */
	httpc_reset(&p);
	assert_null(httpc_error(&p));
	assert_int_equal(httpc_feed(&p, "HTTP/1.1 204 x\r\n\r\n", 19, &used),
	    0);
	assert_int_equal(httpc_status(&p), 204);
	httpc_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_common_httpc__parse),
		cmocka_unit_test(test_common_httpc__no_body_statuses),
		cmocka_unit_test(test_common_httpc__bytewise),
		cmocka_unit_test(test_common_httpc__head_limit),
		cmocka_unit_test(test_common_httpc__field_limit),
		cmocka_unit_test(test_common_httpc__body_limit),
		cmocka_unit_test(test_common_httpc__bad_status_line),
		cmocka_unit_test(test_common_httpc__framing),
		cmocka_unit_test(test_common_httpc__keep_alive_stream),
		cmocka_unit_test(test_common_httpc__sticky_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
