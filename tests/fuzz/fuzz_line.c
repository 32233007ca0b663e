/*
 * fuzz_line.c -- libFuzzer target for the bounded line reader.
 *
 * Purpose: for any input, feeding it to a line_reader (max 64, with and
 * without LINE_LF_OK) in two pieces split at a point chosen by the first
 * input byte, all at once, and byte by byte gives the same sequence of
 * non-AGAIN results (code, input offset, line bytes); the line never
 * exceeds max - 2 bytes and the buffer never max + 1.
 * Runs in: the fuzzer binary only (tests/fuzz/run).
 * Failure policy: abort() on any broken invariant, so libFuzzer keeps
 * the input as a crash artifact.
 * SECURITY: this is the check that a peer cannot desynchronise framing
 * (smuggling) or grow the buffer by choosing packet boundaries.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/line.h"

#define FUZZ_MAX	64

struct fres {
	int		rc;
	size_t		off;
	size_t		len;
	unsigned char	line[FUZZ_MAX];
};

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fail(const char *why)
{
	fprintf(stderr, "fuzz_line: %s\n", why);
	abort();
}

/*
 * Feed in[0..n): pieces of at most chunk bytes (0: no cap), the first
 * piece ending at split when 0 < split < n.  Returns the result count.
 */
static size_t
run(struct fres *res, size_t cap, const uint8_t *in, size_t n, int flags,
    size_t chunk, size_t split)
{
	struct line_reader	lr;
	size_t			off = 0, end, used, nres = 0;
	int			rc, stalls = 0;

	line_reader_init(&lr, FUZZ_MAX, flags);
	while (off < n) {
		end = n;
		if (split > 0 && split < n && off < split)
			end = split;
		if (chunk > 0 && end - off > chunk)
			end = off + chunk;
		used = (size_t)-1;
		rc = line_feed(&lr, in + off, end - off, &used);
		if (used > end - off)
			fail("used beyond the input");
		if (lr.line.len > FUZZ_MAX - 2)
			fail("line longer than max - 2");
		if (lr.line.cap > FUZZ_MAX + 1)
			fail("buffer larger than max + 1");
		if (rc == ERR_AGAIN && used != end - off)
			fail("ERR_AGAIN without consuming everything");
		if (rc != ERR_AGAIN && rc != 0 && rc != ERR_TOOBIG &&
		    rc != ERR_PROTO)
			fail("unexpected return code");
		/* only a call right after an error may consume nothing */
		if (used == 0 && ++stalls > 1)
			fail("no progress");
		if (used > 0)
			stalls = 0;
		off += used;
		if (rc == ERR_AGAIN)
			continue;
		if (nres >= cap)
			fail("more results than input bytes");
		res[nres].rc = rc;
		res[nres].off = off;
		res[nres].len = 0;
		if (rc == 0) {
			if (lr.line.data == NULL ||
			    lr.line.data[lr.line.len] != '\0')
				fail("line not NUL-terminated");
			res[nres].len = lr.line.len;
			memcpy(res[nres].line, lr.line.data, lr.line.len);
		}
		nres++;
	}
	line_reader_free(&lr);
	return nres;
}

static void
same(const struct fres *a, size_t na, const struct fres *b, size_t nb)
{
	size_t	i;

	if (na != nb)
		fail("result count differs");
	for (i = 0; i < na; i++) {
		if (a[i].rc != b[i].rc || a[i].off != b[i].off ||
		    a[i].len != b[i].len)
			fail("result differs");
		if (a[i].rc == 0 && memcmp(a[i].line, b[i].line, a[i].len))
			fail("line differs");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int	 flagsets[] = { 0, LINE_LF_OK };
	struct fres		*whole, *split, *bytes;
	const uint8_t		*in;
	size_t			 n, cut, nw, ns, nb, cap, i;

	if (size < 1)
		return 0;
	in = data + 1;
	n = size - 1;
	cut = n > 0 ? data[0] % (n + 1) : 0;
	cap = n + 1;
	whole = calloc(cap, sizeof(*whole));
	split = calloc(cap, sizeof(*split));
	bytes = calloc(cap, sizeof(*bytes));
	if (whole == NULL || split == NULL || bytes == NULL)
		fail("out of memory");
	for (i = 0; i < sizeof(flagsets) / sizeof(flagsets[0]); i++) {
		nw = run(whole, cap, in, n, flagsets[i], 0, 0);
		ns = run(split, cap, in, n, flagsets[i], 0, cut);
		nb = run(bytes, cap, in, n, flagsets[i], 1, 0);
		same(whole, nw, bytes, nb);
		same(whole, nw, split, ns);
	}
	free(whole);
	free(split);
	free(bytes);
	return 0;
}
