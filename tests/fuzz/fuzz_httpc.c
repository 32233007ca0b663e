/*
 * fuzz_httpc.c -- libFuzzer target for common/httpc (HTTP responses).
 *
 * Runs in: the fuzzing harness only (make fuzz).
 * Failure policy: a crash, sanitizer report or abort() is a finding.
 * SECURITY: besides memory safety, checks the parser's contract: the
 * input split into pieces (piece size from the first byte) must give the
 * same responses and the same final error as the input fed at once, no
 * feed may consume more than it was given, and every complete response
 * respects the limits (headers, body size, a NUL after the body).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/httpc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_MAX_BODY	4096

/* Append what a client could see of the parsed response. */
static void
fuzz_digest(struct buf *b, const struct httpc_parser *p)
{
	const char	*body;
	size_t		 i, blen;

	if (httpc_status(p) < 200 || httpc_status(p) > 599 ||
	    httpc_nheaders(p) > HTTPC_MAX_HEADERS)
		abort();
	(void)buf_printf(b, "%d v%d ka%d\n", httpc_status(p),
	    httpc_version(p), httpc_keep_alive(p));
	for (i = 0; i < httpc_nheaders(p); i++)
		(void)buf_printf(b, "h %s: %s\n", httpc_header_name(p, i),
		    httpc_header_value(p, i));
	(void)httpc_header(p, "content-type");
	body = httpc_body(p, &blen);
	if (blen > FUZZ_MAX_BODY || body[blen] != '\0')
		abort();
	(void)buf_printf(b, "b %zu ", blen);
	(void)buf_append(b, body, blen);
	(void)buf_putc(b, '\n');
}

/* Parse data in pieces of step bytes (0: at once) into a digest. */
static char *
fuzz_run(const uint8_t *data, size_t len, size_t step)
{
	struct httpc_parser	p;
	struct buf		out;
	size_t			off = 0, n, used;
	int			rc = ERR_AGAIN;

	buf_init(&out, 1 << 24);
	httpc_init(&p, FUZZ_MAX_BODY);
	while (off < len) {
		n = step == 0 || len - off < step ? len - off : step;
		rc = httpc_feed(&p, data + off, n, &used);
		if (used > n)
			abort();
		off += used;
		if (rc == 0) {
			fuzz_digest(&out, &p);
			httpc_reset(&p);
		} else if (rc == ERR_AGAIN) {
			if (used != n)
				abort();
		} else {
			if ((rc != ERR_PROTO && rc != ERR_TOOBIG) ||
			    httpc_error(&p) == NULL)
				abort();
			(void)buf_printf(&out, "E%d %s\n", rc,
			    httpc_error(&p));
			break;
		}
	}
	if (rc == ERR_AGAIN)
		(void)buf_printf(&out, "again\n");
	httpc_free(&p);
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
