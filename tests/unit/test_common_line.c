/*
 * test_common_line.c -- unit tests for the bounded line reader.
 *
 * Purpose: check line.h's contract: CRLF framing, byte-by-byte feeding
 * equals feeding at once (and any split), the length limit at exactly
 * max and max + 1 reported before the line end, bare CR/LF handling and
 * resynchronisation after an error.
 * Runs in: the unit test binary only.
 * Failure policy: cmocka assertions.
 * SECURITY: the oversized-line test checks the buffer never grows past
 * max, whatever the peer sends.
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
#include "common/line.h"
#include "common/util.h"

/* One non-AGAIN result of line_feed(). */
struct lres {
	int		 rc;
	size_t		 off;	/* input offset after the call */
	size_t		 len;	/* line length when rc == 0 */
	char		*line;	/* copy of the line when rc == 0 */
};

struct lrun {
	struct lres	*r;
	size_t		 n;
};

static void
lrun_add(struct lrun *run, struct line_reader *lr, int rc, size_t off)
{
	struct lres	*e;

	run->r = realloc(run->r, (run->n + 1) * sizeof(*run->r));
	assert_non_null(run->r);
	e = &run->r[run->n++];
	e->rc = rc;
	e->off = off;
	e->len = 0;
	e->line = NULL;
	if (rc == 0) {
		e->len = lr->line.len;
		e->line = malloc(lr->line.len + 1);
		assert_non_null(e->line);
		memcpy(e->line, lr->line.data, lr->line.len + 1);
	}
}

static void
lrun_free(struct lrun *run)
{
	size_t	i;

	for (i = 0; i < run->n; i++)
		free(run->r[i].line);
	free(run->r);
	run->r = NULL;
	run->n = 0;
}

/*
 * Feed in[0..n) in chunks of at most chunk bytes (0: all at once), first
 * cutting at split if split is in (0, n), looping on used as line.h
 * documents; record every result other than ERR_AGAIN.
 */
static void
feed_run(struct lrun *run, const char *in, size_t n, size_t max, int flags,
    size_t chunk, size_t split)
{
	struct line_reader	lr;
	size_t			off = 0, end, used, guard = 0;
	int			rc;

	memset(run, 0, sizeof(*run));
	line_reader_init(&lr, max, flags);
	while (off < n) {
		end = n;
		if (split > 0 && split < n && off < split)
			end = split;
		if (chunk > 0 && end - off > chunk)
			end = off + chunk;
		used = 12345;
		rc = line_feed(&lr, in + off, end - off, &used);
		assert_true(used <= end - off);
		assert_true(lr.line.len <= max - 2);
		if (rc == ERR_AGAIN)
			assert_int_equal(used, end - off);
		else
			assert_true(rc == 0 || rc == ERR_TOOBIG ||
			    rc == ERR_PROTO);
		off += used;
		if (rc != ERR_AGAIN)
			lrun_add(run, &lr, rc, off);
		/* every call but one right after an error consumes input */
		if (used == 0)
			assert_true(++guard < 2);
		else
			guard = 0;
	}
	line_reader_free(&lr);
}

static void
lrun_assert_equal(const struct lrun *a, const struct lrun *b)
{
	size_t	i;

	assert_int_equal(a->n, b->n);
	for (i = 0; i < a->n; i++) {
		assert_int_equal(a->r[i].rc, b->r[i].rc);
		assert_int_equal(a->r[i].off, b->r[i].off);
		assert_int_equal(a->r[i].len, b->r[i].len);
		if (a->r[i].rc == 0)
			assert_memory_equal(a->r[i].line, b->r[i].line,
			    a->r[i].len + 1);
	}
}

/*
 * Run the input at once, byte by byte and split at every point; all
 * must agree.  Returns the at-once results in *out.
 */
static void
check_equiv(struct lrun *out, const char *in, size_t n, size_t max,
    int flags)
{
	struct lrun	bytes, other;
	size_t		split;

	feed_run(out, in, n, max, flags, 0, 0);
	feed_run(&bytes, in, n, max, flags, 1, 0);
	lrun_assert_equal(out, &bytes);
	lrun_free(&bytes);
	for (split = 1; split < n; split++) {
		feed_run(&other, in, n, max, flags, 0, split);
		lrun_assert_equal(out, &other);
		lrun_free(&other);
	}
}

static void
assert_res(const struct lrun *run, size_t i, int rc, size_t off,
    const char *line)
{
	assert_true(i < run->n);
	assert_int_equal(run->r[i].rc, rc);
	assert_int_equal(run->r[i].off, off);
	if (line != NULL) {
		assert_int_equal(run->r[i].len, strlen(line));
		assert_string_equal(run->r[i].line, line);
	}
}

#define S(lit)	(lit), sizeof(lit) - 1

static void
test_common_line__crlf(void **state)
{
	struct lrun	run;

	check_equiv(&run, S("HELO a\r\n\r\nQUIT\r\npartial"), 100, 0);
	assert_int_equal(run.n, 3);
	assert_res(&run, 0, 0, 8, "HELO a");
	assert_res(&run, 1, 0, 10, "");
	assert_res(&run, 2, 0, 16, "QUIT");
	lrun_free(&run);
}

static void
test_common_line__line_valid_until_next_call(void **state)
{
	struct line_reader	lr;
	size_t			used;

	line_reader_init(&lr, 100, 0);
	assert_int_equal(line_feed(&lr, "ab\r\ncd", 6, &used), 0);
	assert_int_equal(used, 4);
	assert_int_equal(lr.line.len, 2);
	assert_string_equal((char *)lr.line.data, "ab");
	assert_int_equal(line_feed(&lr, "cd", 2, &used), ERR_AGAIN);
	assert_int_equal(used, 2);
	assert_int_equal(line_feed(&lr, "\r", 1, &used), ERR_AGAIN);
	assert_int_equal(line_feed(&lr, "\n", 1, &used), 0);
	assert_int_equal(used, 1);
	assert_string_equal((char *)lr.line.data, "cd");
	/* reset drops a partial line */
	assert_int_equal(line_feed(&lr, "xyz", 3, &used), ERR_AGAIN);
	line_reader_reset(&lr);
	assert_int_equal(line_feed(&lr, "q\r\n", 3, &used), 0);
	assert_string_equal((char *)lr.line.data, "q");
	line_reader_free(&lr);
	line_reader_free(&lr);
}

/* An empty first line must still give a C string, not NULL. */
static void
test_common_line__empty_first_line(void **state)
{
	struct line_reader	lr;
	size_t			used;

	line_reader_init(&lr, 100, 0);
	assert_int_equal(line_feed(&lr, "\r\n", 2, &used), 0);
	assert_int_equal(lr.line.len, 0);
	assert_non_null(lr.line.data);
	assert_string_equal((char *)lr.line.data, "");
	line_reader_free(&lr);

	line_reader_init(&lr, 100, LINE_LF_OK);
	assert_int_equal(line_feed(&lr, "\n", 1, &used), 0);
	assert_non_null(lr.line.data);
	assert_string_equal((char *)lr.line.data, "");
	line_reader_free(&lr);
}

static void
test_common_line__empty_feed(void **state)
{
	struct line_reader	lr;
	size_t			used = 99;

	line_reader_init(&lr, 10, 0);
	assert_int_equal(line_feed(&lr, "", 0, &used), ERR_AGAIN);
	assert_int_equal(used, 0);
	line_reader_free(&lr);
}

/* Inputs exercising every state and transition. */
static const char *const equiv_inputs[] = {
	"",
	"\r\n",
	"a\r\nb\r\n",
	"abc\r\n\r\n\r\ndef",
	"abc\n",
	"abc\ndef\r\n",
	"\n\n\n",
	"a\rb\r\n",
	"a\r\r\nok\r\n",
	"\r\r\r\n",
	"\r",
	"a\r",
	"12345678\r\n",
	"123456789\r\nok\r\n",
	"1234567890123\r\nok\r\n",
	"123456789\nok\n",
	"123456789\rX\r\nok\r\n",
	"12345678\rX\nok\r\n",
	"12345678\n",
	"a\r\nb\rc\nd\r\n",
	"toolongtoolongtoolong",
	"x\r\n123456789012345\r\n\r\n\n",
};

static void
test_common_line__bytewise_equals_whole(void **state)
{
	static const int	 flagsets[] = { 0, LINE_LF_OK };
	static const size_t	 maxes[] = { 3, 4, 10, 11, 100 };
	struct lrun		 run;
	size_t			 i, j, k;

	for (i = 0; i < nitems(equiv_inputs); i++)
		for (j = 0; j < nitems(flagsets); j++)
			for (k = 0; k < nitems(maxes); k++) {
				check_equiv(&run, equiv_inputs[i],
				    strlen(equiv_inputs[i]), maxes[k],
				    flagsets[j]);
				lrun_free(&run);
			}
}

/* Pseudo-random inputs over a small alphabet; a fixed seed. */
static void
test_common_line__bytewise_random(void **state)
{
	static const char	 alpha[] = "ab\r\n";
	char			 in[40];
	struct lrun		 run;
	uint32_t		 x = 2463534242u;
	size_t			 i, n, round;

	for (round = 0; round < 2000; round++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		n = x % sizeof(in);
		for (i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			in[i] = alpha[x % 4];
		}
		check_equiv(&run, in, n, 3 + round % 8,
		    (round & 1) ? LINE_LF_OK : 0);
		lrun_free(&run);
	}
}

static void
test_common_line__limit_exact(void **state)
{
	struct lrun	run;

	/* max 10: 8 content bytes + CRLF is exactly the limit */
	check_equiv(&run, S("12345678\r\n"), 10, 0);
	assert_int_equal(run.n, 1);
	assert_res(&run, 0, 0, 10, "12345678");
	lrun_free(&run);
}

static void
test_common_line__limit_plus_one(void **state)
{
	struct line_reader	lr;
	struct lrun		run;
	size_t			used;

	/* 9 content bytes: ERR_TOOBIG at the 9th byte, then resync */
	check_equiv(&run, S("123456789\r\nok\r\n"), 10, 0);
	assert_int_equal(run.n, 2);
	assert_res(&run, 0, ERR_TOOBIG, 9, NULL);
	assert_res(&run, 1, 0, 15, "ok");
	lrun_free(&run);

	/* reported before the line end has arrived */
	line_reader_init(&lr, 10, 0);
	assert_int_equal(line_feed(&lr, "12345678", 8, &used), ERR_AGAIN);
	assert_int_equal(line_feed(&lr, "9", 1, &used), ERR_TOOBIG);
	assert_int_equal(used, 1);
	/* the rest of the line is discarded */
	assert_int_equal(line_feed(&lr, "abc", 3, &used), ERR_AGAIN);
	assert_int_equal(used, 3);
	assert_int_equal(line_feed(&lr, "\r\nnext\r\n", 8, &used), 0);
	assert_int_equal(used, 8);
	assert_string_equal((char *)lr.line.data, "next");
	line_reader_free(&lr);
}

static void
test_common_line__bare_lf(void **state)
{
	struct lrun	run;

	check_equiv(&run, S("abc\ndef\r\n"), 100, 0);
	assert_int_equal(run.n, 2);
	assert_res(&run, 0, ERR_PROTO, 4, NULL);
	assert_res(&run, 1, 0, 9, "def");
	lrun_free(&run);

	check_equiv(&run, S("abc\ndef\r\n\n"), 100, LINE_LF_OK);
	assert_int_equal(run.n, 3);
	assert_res(&run, 0, 0, 4, "abc");
	assert_res(&run, 1, 0, 9, "def");
	assert_res(&run, 2, 0, 10, "");
	lrun_free(&run);
}

static void
test_common_line__bare_cr(void **state)
{
	static const int	flagsets[] = { 0, LINE_LF_OK };
	struct lrun		run;
	size_t			j;

	for (j = 0; j < nitems(flagsets); j++) {
		/* reported at the byte after the CR; the line is skipped */
		check_equiv(&run, S("a\rb\r\nok\r\n"), 100, flagsets[j]);
		assert_int_equal(run.n, 2);
		assert_res(&run, 0, ERR_PROTO, 2, NULL);
		assert_res(&run, 1, 0, 9, "ok");
		lrun_free(&run);

		check_equiv(&run, S("\r\r\nok\r\n"), 100, flagsets[j]);
		assert_int_equal(run.n, 2);
		assert_res(&run, 0, ERR_PROTO, 1, NULL);
		assert_res(&run, 1, 0, 7, "ok");
		lrun_free(&run);
	}
}

static void
test_common_line__huge_line_bounded(void **state)
{
	struct line_reader	 lr;
	const size_t		 big = 100 * 1024, max = 1000;
	char			*in;
	size_t			 off = 0, used, n;
	int			 rc, toobig = 0, lines = 0;

	in = malloc(big + 16);
	assert_non_null(in);
	memset(in, 'x', big);
	memcpy(in + big, "\r\nnext\r\n", 8);
	n = big + 8;

	line_reader_init(&lr, max, 0);
	while (off < n) {
		rc = line_feed(&lr, in + off,
		    n - off < 4096 ? n - off : 4096, &used);
		assert_true(lr.line.len <= max - 2);
		assert_true(lr.line.cap <= max + 1);
		if (rc == ERR_TOOBIG) {
			assert_int_equal(off + used, max - 1);
			toobig++;
		} else if (rc == 0) {
			assert_string_equal((char *)lr.line.data, "next");
			lines++;
		} else
			assert_int_equal(rc, ERR_AGAIN);
		off += used;
	}
	assert_int_equal(toobig, 1);
	assert_int_equal(lines, 1);
	line_reader_free(&lr);

	/* all at once: same outcome */
	line_reader_init(&lr, max, 0);
	assert_int_equal(line_feed(&lr, in, n, &used), ERR_TOOBIG);
	assert_int_equal(used, max - 1);
	assert_true(lr.line.cap <= max + 1);
	off = used;
	assert_int_equal(line_feed(&lr, in + off, n - off, &used), 0);
	assert_string_equal((char *)lr.line.data, "next");
	line_reader_free(&lr);
	free(in);
}

static void
test_common_line__small_max_cap(void **state)
{
	struct line_reader	lr;
	size_t			used;

	line_reader_init(&lr, 10, 0);
	assert_int_equal(line_feed(&lr, "12345678\r\n", 10, &used), 0);
	assert_true(lr.line.cap <= 11);
	line_reader_free(&lr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_common_line__crlf),
		cmocka_unit_test(test_common_line__line_valid_until_next_call),
		cmocka_unit_test(test_common_line__empty_first_line),
		cmocka_unit_test(test_common_line__empty_feed),
		cmocka_unit_test(test_common_line__bytewise_equals_whole),
		cmocka_unit_test(test_common_line__bytewise_random),
		cmocka_unit_test(test_common_line__limit_exact),
		cmocka_unit_test(test_common_line__limit_plus_one),
		cmocka_unit_test(test_common_line__bare_lf),
		cmocka_unit_test(test_common_line__bare_cr),
		cmocka_unit_test(test_common_line__huge_line_bounded),
		cmocka_unit_test(test_common_line__small_max_cap),
	};
	int	rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
