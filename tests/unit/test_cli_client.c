/*
 * test_cli_client.c -- unit tests for the pure parts of the CLI's API
 * client: percent-encoding, request targets, address splitting and the
 * HTTP response parser.
 *
 * Purpose: status line, Content-Length (exact, duplicate, conflicting,
 * junk), body to EOF, truncated head and body, oversize head and body,
 * Transfer-Encoding refused, JSON bodies (required for 2xx, optional for
 * errors), and that feeding a response byte by byte gives ERR_AGAIN until
 * the last byte and then the same answer as feeding it whole.
 * Runs in: the unit test binary only (no network).
 * Failure policy: cmocka assertions.
 * SECURITY: the parser is the CLI's only input from the network; its
 * limits are what these tests pin down.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "keyservice/cli/cli.h"

#define BODY_MAX	1024

static int
parse(struct cli_resp *r, const char *s, int final)
{
	return cli_resp_parse(r, (const unsigned char *)s, strlen(s),
	    BODY_MAX, final);
}

static void
test_cli_client__pct_encode(void **state)
{
	char	out[64];

	assert_int_equal(cli_pct_encode(out, sizeof(out),
	    "fatima@finance.amanat.test"), 0);
	assert_string_equal(out, "fatima%40finance.amanat.test");
	assert_int_equal(cli_pct_encode(out, sizeof(out), "a b/c?d#e%f"), 0);
	assert_string_equal(out, "a%20b%2Fc%3Fd%23e%25f");
	assert_int_equal(cli_pct_encode(out, sizeof(out), "A-z_0.9~"), 0);
	assert_string_equal(out, "A-z_0.9~");
	assert_int_equal(cli_pct_encode(out, sizeof(out), "\xc3\xa9"), 0);
	assert_string_equal(out, "%C3%A9");
	assert_int_equal(cli_pct_encode(out, sizeof(out), ""), 0);
	assert_string_equal(out, "");

	/* exactly fits: 3 bytes + NUL */
	assert_int_equal(cli_pct_encode(out, 4, "@"), 0);
	assert_string_equal(out, "%40");
	assert_int_equal(cli_pct_encode(out, 3, "@"), ERR_TOOBIG);
	assert_int_equal(cli_pct_encode(out, 3, "abc"), ERR_TOOBIG);
	assert_int_equal(cli_pct_encode(out, 4, "abc"), 0);
}

static void
test_cli_client__target(void **state)
{
	char	out[64];

	assert_int_equal(cli_target(out, sizeof(out), "/v1/users/",
	    "a@b.example", "/password"), 0);
	assert_string_equal(out, "/v1/users/a%40b.example/password");
	assert_int_equal(cli_target(out, sizeof(out), "/v1/certs?address=",
	    "a+b@c", NULL), 0);
	assert_string_equal(out, "/v1/certs?address=a%2Bb%40c");
	assert_int_equal(cli_target(out, 20, "/v1/users/",
	    "a@b.example", NULL), ERR_TOOBIG);
	assert_int_equal(cli_target(out, 24, "/v1/keys/", "finance",
	    "/rotate"), 0);
	assert_int_equal(cli_target(out, 23, "/v1/keys/", "finance",
	    "/rotate"), ERR_TOOBIG);
}

static void
test_cli_client__addr_split(void **state)
{
	char	host[64], port[8];

	assert_int_equal(cli_addr_split(host, sizeof(host), port,
	    sizeof(port), "127.0.0.1:8444"), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_string_equal(port, "8444");
	assert_int_equal(cli_addr_split(host, sizeof(host), port,
	    sizeof(port), "[::1]:8444"), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(cli_addr_split(host, sizeof(host), port,
	    sizeof(port), "node.example:443"), 0);
	assert_string_equal(host, "node.example");
	assert_int_equal(cli_addr_split(host, sizeof(host), port,
	    sizeof(port), "::1:8444"), ERR_INVAL);
	assert_int_equal(cli_addr_split(host, sizeof(host), port,
	    sizeof(port), "host"), ERR_INVAL);
	assert_int_equal(cli_addr_split(host, sizeof(host), port,
	    sizeof(port), ":8444"), ERR_INVAL);
	assert_int_equal(cli_addr_split(host, sizeof(host), port,
	    sizeof(port), "host:"), ERR_INVAL);
	assert_int_equal(cli_addr_split(host, sizeof(host), port,
	    sizeof(port), "host:84a"), ERR_INVAL);
}

static void
test_cli_client__status_line(void **state)
{
	struct cli_resp	r;

	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "\r\n{}", 0), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(r.json);
	assert_true(json_is_object(r.json));
	cli_resp_clear(&r);

	/* no reason phrase, HTTP/1.0, bare LF */
	assert_int_equal(parse(&r, "HTTP/1.0 404\nContent-Length: 0\n\n", 0),
	    0);
	assert_int_equal(r.status, 404);
	assert_null(r.json);
	cli_resp_clear(&r);

	assert_int_equal(parse(&r, "HTTP/2 200 OK\r\n\r\n", 1), ERR_PROTO);
	assert_int_equal(parse(&r, "HTTP/1.1 20 OK\r\n\r\n", 1), ERR_PROTO);
	assert_int_equal(parse(&r, "HTTP/1.1 2000 OK\r\n\r\n", 1), ERR_PROTO);
	assert_int_equal(parse(&r, "HTTP/1.1 600 X\r\n\r\n", 1), ERR_PROTO);
	assert_int_equal(parse(&r, "http/1.1 200 OK\r\n\r\n", 1), ERR_PROTO);
	assert_int_equal(parse(&r, "HTTP/1.1 100 Continue\r\n\r\n", 1),
	    ERR_PROTO);
	assert_int_equal(parse(&r, "SSH-2.0-OpenSSH\r\n", 1), ERR_PROTO);
}

static void
test_cli_client__content_length(void **state)
{
	struct cli_resp	r;

	/* exact */
	assert_int_equal(parse(&r, "HTTP/1.1 201 Created\r\n"
	    "content-length:  13 \r\nContent-Type: application/json\r\n\r\n"
	    "{\"a\": \"b c\"}\n", 0), 0);
	assert_int_equal(r.status, 201);
	assert_int_equal(r.has_length, 1);
	assert_int_equal(r.content_length, 13);
	assert_int_equal(r.body_len, 13);
	assert_string_equal(json_string_value(json_object_get(r.json, "a")),
	    "b c");
	cli_resp_clear(&r);

	/* same value twice is fine; different values are not */
	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "Content-Length: 2\r\n\r\n{}", 0), 0);
	cli_resp_clear(&r);
	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "Content-Length: 3\r\n\r\n{} ", 0), ERR_PROTO);
	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: -2\r\n"
	    "\r\n{}", 0), ERR_PROTO);
	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n"
	    "\r\n{}", 0), ERR_PROTO);
	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nContent-Length:\r\n"
	    "\r\n{}", 0), ERR_PROTO);
	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: "
	    "99999999999999999999\r\n\r\n", 0), ERR_PROTO);

	/* bytes beyond Content-Length are not part of the body */
	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "\r\n{}garbage", 0), 0);
	assert_int_equal(r.body_len, 2);
	cli_resp_clear(&r);
}

static void
test_cli_client__body_to_eof(void **state)
{
	struct cli_resp	r;
	const char	*s = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
	    "{\"users\": []}";

	assert_int_equal(parse(&r, s, 0), ERR_AGAIN);
	assert_int_equal(parse(&r, s, 1), 0);
	assert_int_equal(r.has_length, 0);
	assert_int_equal(r.body_len, 13);
	assert_true(json_is_array(json_object_get(r.json, "users")));
	cli_resp_clear(&r);
}

static void
test_cli_client__truncated(void **state)
{
	struct cli_resp	r;

	/* head cut short */
	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nContent-Le", 0),
	    ERR_AGAIN);
	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nContent-Le", 1),
	    ERR_PROTO);
	assert_int_equal(parse(&r, "", 1), ERR_PROTO);
	/* body shorter than Content-Length */
	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n"
	    "\r\n{\"a\":", 0), ERR_AGAIN);
	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n"
	    "\r\n{\"a\":", 1), ERR_PROTO);
	assert_non_null(strstr(err_msg(), "truncated body"));
}

static void
test_cli_client__oversize(void **state)
{
	struct cli_resp	 r;
	char		 hdr[128];
	unsigned char	*big;
	size_t		 n;

	/* announced too large: refused before the body arrives */
	snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Length: %d"
	    "\r\n\r\n", BODY_MAX + 1);
	assert_int_equal(parse(&r, hdr, 0), ERR_TOOBIG);

	/* no Content-Length, body grows past the limit */
	n = strlen("HTTP/1.1 200 OK\r\n\r\n") + BODY_MAX + 1;
	big = calloc(1, n);
	assert_non_null(big);
	memcpy(big, "HTTP/1.1 200 OK\r\n\r\n", 19);
	memset(big + 19, ' ', n - 19);
	assert_int_equal(cli_resp_parse(&r, big, n, BODY_MAX, 0), ERR_TOOBIG);
	assert_int_equal(cli_resp_parse(&r, big, n - 1, BODY_MAX, 0),
	    ERR_AGAIN);
	free(big);

	/* a head that never ends */
	n = CLI_HEAD_MAX + 10;
	big = calloc(1, n);
	assert_non_null(big);
	memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
	memset(big + 20, 'a', n - 20);
	assert_int_equal(cli_resp_parse(&r, big, n, BODY_MAX, 0), ERR_TOOBIG);
	free(big);
}

static void
test_cli_client__bad_headers(void **state)
{
	struct cli_resp	r;

	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
	    "chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 1), ERR_PROTO);
	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", 1),
	    ERR_PROTO);
	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n"
	    "\r\n", 1), ERR_PROTO);
	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nBad Name: a\r\n\r\n",
	    1), ERR_PROTO);
	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", 1),
	    ERR_PROTO);
}

static void
test_cli_client__json_body(void **state)
{
	struct cli_resp	r;

	/* a 2xx answer must be JSON */
	assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	    "\r\nhello", 0), ERR_PROTO);
	/* an error answer may not be: the status still tells */
	assert_int_equal(parse(&r, "HTTP/1.1 502 Bad Gateway\r\n"
	    "Content-Length: 5\r\n\r\nhello", 0), 0);
	assert_int_equal(r.status, 502);
	assert_null(r.json);
	cli_resp_clear(&r);
	/* the API's error shape */
	assert_int_equal(parse(&r, "HTTP/1.1 403 Forbidden\r\n"
	    "Content-Length: 47\r\n\r\n{\"error\":\"forbidden\",\"message\":"
	    "\"not your dept\"}", 0), 0);
	assert_int_equal(r.status, 403);
	assert_string_equal(json_string_value(json_object_get(r.json,
	    "message")), "not your dept");
	cli_resp_clear(&r);
	/* 204: no body even without a length */
	assert_int_equal(parse(&r, "HTTP/1.1 204 No Content\r\n\r\n", 0), 0);
	assert_int_equal(r.body_len, 0);
	cli_resp_clear(&r);
}

static void
test_cli_client__byte_by_byte(void **state)
{
	static const char	 s[] = "HTTP/1.1 200 OK\r\nContent-Type: "
	    "application/json\r\nContent-Length: 26\r\n\r\n"
	    "{\"key_id\":\"x\",\"version\":2}";
	struct cli_resp		 r;
	size_t			 n, len = sizeof(s) - 1;

	for (n = 0; n < len; n++)
		assert_int_equal(cli_resp_parse(&r, (const unsigned char *)s,
		    n, BODY_MAX, 0), ERR_AGAIN);
	assert_int_equal(cli_resp_parse(&r, (const unsigned char *)s, len,
	    BODY_MAX, 0), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_integer_value(json_object_get(r.json,
	    "version")), 2);
	cli_resp_clear(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli_client__pct_encode),
		cmocka_unit_test(test_cli_client__target),
		cmocka_unit_test(test_cli_client__addr_split),
		cmocka_unit_test(test_cli_client__status_line),
		cmocka_unit_test(test_cli_client__content_length),
		cmocka_unit_test(test_cli_client__body_to_eof),
		cmocka_unit_test(test_cli_client__truncated),
		cmocka_unit_test(test_cli_client__oversize),
		cmocka_unit_test(test_cli_client__bad_headers),
		cmocka_unit_test(test_cli_client__json_body),
		cmocka_unit_test(test_cli_client__byte_by_byte),
	};
	int	rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
