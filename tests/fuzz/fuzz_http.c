/*
 * fuzz_http.c -- libFuzzer target for common/http_parse.
 *
 * Runs in: the fuzzing harness only (make fuzz).
 * Failure policy: a crash, sanitizer report or abort() is a finding.
 * SECURITY: besides memory safety, checks the parser's contract: the
 * input split into pieces (piece size from the first byte) must give the
 * same requests and the same final error as the input fed at once, and
 * no parse may consume more than it was given.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/http_parse.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_MAX_HEADER	1024
#define FUZZ_MAX_BODY	4096

/* Append what a handler could see of the parsed request. */
static void
fuzz_digest(struct buf *b, const struct http_parser *p)
{
	const char	*body;
	size_t		 i, blen;

	(void)buf_printf(b, "%s %s %s ?%s v%d ka%d ec%d\n",
	    http_parse_method(p), http_parse_target(p), http_parse_path(p),
	    http_parse_query_raw(p), http_parse_version(p),
	    http_parse_keep_alive(p), http_parse_expect_continue(p));
	for (i = 0; i < http_parse_nheaders(p); i++)
		(void)buf_printf(b, "h %s: %s\n", http_parse_header_name(p, i),
		    http_parse_header_value(p, i));
	for (i = 0; i < http_parse_nparams(p); i++)
		(void)buf_printf(b, "p %s=%s\n", http_parse_param_key(p, i),
		    http_parse_param_value(p, i));
	(void)http_parse_header(p, "content-type");
	(void)http_parse_param(p, "a");
	body = http_parse_body(p, &blen);
	if (body[blen] != '\0')
		abort();
	(void)buf_printf(b, "b %zu ", blen);
	(void)buf_append(b, body, blen);
	(void)buf_putc(b, '\n');
}

/* Parse data in pieces of step bytes (0: at once) into a digest. */
static char *
fuzz_run(const uint8_t *data, size_t len, size_t step)
{
	struct http_parser	p;
	struct buf		out;
	size_t			off = 0, n, used;
	int			rc;

	buf_init(&out, 1 << 24);
	http_parse_init(&p, FUZZ_MAX_HEADER, FUZZ_MAX_BODY);
	while (off < len) {
		n = step == 0 || len - off < step ? len - off : step;
		rc = http_parse_feed(&p, data + off, n, &used);
		if (used > n)
			abort();
		off += used;
		if (rc == 0) {
			if (!http_parse_head_done(&p))
				abort();
			fuzz_digest(&out, &p);
			http_parse_reset(&p);
		} else if (rc == ERR_AGAIN) {
			if (used != n)
				abort();
		} else {
			if (http_parse_status(&p) < 400 ||
			    http_parse_error_code(&p) == NULL)
				abort();
			(void)buf_printf(&out, "E%d %s\n",
			    http_parse_status(&p), http_parse_error_code(&p));
			break;
		}
	}
	http_parse_free(&p);
	return buf_steal(&out, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char	*once, *split;
	size_t	 step;

	if (len < 1)
		return 0;
	step = (size_t)data[0] % 16 + 1;
	data++;
	len--;
	once = fuzz_run(data, len, 0);
	split = fuzz_run(data, len, step);
	if (strcmp(once, split) != 0)
		abort();
	free(once);
	free(split);
	return 0;
}
