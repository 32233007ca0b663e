/*
 * fuzz_audit_entry.c -- libFuzzer target for the audit entry encoding.
 *
 * Purpose: the canonical encoding must be a fixed point whatever the
 * input.  The first byte picks the mode:
 *   even: the rest is JSON; when audit_canon_json() accepts it, the
 *         output is printable ASCII, parses, and encodes to itself;
 *   odd:  the rest is up to eight NUL-separated raw strings used as the
 *         entry's fields (any bytes, any length): audit_entry_encode()
 *         must succeed (peer data never makes an entry unwritable), stay
 *         within AUDIT_ENTRY_MAX, and parse and re-encode to itself.
 * Runs in: the fuzzer binary only (tests/fuzz/run).
 * Failure policy: abort() on any broken invariant.
 * SECURITY: an entry that re-encodes differently would fail offline
 * verification; an entry that cannot be encoded would block an action.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/audit.h"
#include "common/err.h"

#define FUZZ_FIELDS	8

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fail(const char *why)
{
	fprintf(stderr, "fuzz_audit_entry: %s\n", why);
	abort();
}

/* bytes are printable ASCII, parse, and re-encode to the same bytes */
static void
fixed_point(const char *bytes, size_t len)
{
	json_error_t	 jerr;
	json_t		*j;
	char		*again;
	size_t		 alen, i;

	for (i = 0; i < len; i++)
		if (bytes[i] < 0x20 || bytes[i] > 0x7e)
			fail("non-printable byte in the encoding");
	if ((j = json_loadb(bytes, len, JSON_ALLOW_NUL | JSON_DECODE_ANY,
	    &jerr)) == NULL)
		fail("encoding does not parse");
	if (audit_canon_json(&again, &alen, j, len) != 0)
		fail("parsed encoding does not encode");
	if (alen != len || memcmp(again, bytes, len) != 0)
		fail("encoding is not a fixed point");
	free(again);
	json_decref(j);
}

static void
fuzz_json(const uint8_t *in, size_t n)
{
	json_error_t	 jerr;
	json_t		*j;
	char		*out;
	size_t		 len;

	if ((j = json_loadb((const char *)in, n, JSON_ALLOW_NUL |
	    JSON_DECODE_ANY, &jerr)) == NULL)
		return;
	if (audit_canon_json(&out, &len, j, AUDIT_ENTRY_MAX) == 0) {
		fixed_point(out, len);
		free(out);
	}
	json_decref(j);
}

static void
fuzz_fields(const uint8_t *in, size_t n)
{
	char			*f[FUZZ_FIELDS], *copy, *p, *out;
	struct audit_entry	 e;
	size_t			 i, len;

	copy = malloc(n + 1);
	if (copy == NULL)
		return;
	memcpy(copy, in, n);
	copy[n] = '\0';
	for (i = 0, p = copy; i < FUZZ_FIELDS; i++) {
		/* missing fields are "" (the final NUL) */
		f[i] = p;
		p += strlen(p);
		if (p < copy + n)
			p++;
	}
	memset(&e, 0, sizeof(e));
	e.time_ms = 1;
	e.actor = f[0];
	e.dept = f[1];
	e.src = f[2];
	e.action = f[3];
	e.object = f[4];
	e.request_id = f[5];
	e.node = f[6];
	e.service = f[7];
	e.outcome = n > 0 ? in[0] % 3 : AUDIT_OK;
	if (audit_entry_encode(&out, &len, &e, "n", "s") != 0)
		fail(err_msg());
	if (len > AUDIT_ENTRY_MAX)
		fail("entry over AUDIT_ENTRY_MAX");
	fixed_point(out, len);
	free(out);
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		fuzz_fields(data + 1, size - 1);
	else
		fuzz_json(data + 1, size - 1);
	return 0;
}
