/*
 * imap_seqset.c -- IMAP sequence sets (RFC 9051 9, sequence-set):
 * "1:*", "*:4", "3,1:2,7:5" become a sorted array of merged ranges with
 * "*" resolved against the caller's largest number.
 *
 * Runs in: the mailsrv process, event loop thread; pure functions.
 * Failure policy: an invalid set is ERR_PROTO with err_set(); out of
 * memory is fatal (xmalloc).
 * SECURITY: numbers are checked against UINT32_MAX digit by digit (no
 * overflow), the range count is bounded by the input length (itself
 * bounded by the parser's line limit), and the input is validated
 * completely before anything is allocated.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/xmalloc.h"
#include "mailsrv/imap/imap_parser.h"

/* seq-number = nz-number / "*"; *star is set for "*". */
static int
seq_number(const char *s, size_t len, size_t *i, uint32_t *out, int *star)
{
	uint64_t	v = 0;

	*star = 0;
	*out = 0;
	if (*i < len && s[*i] == '*') {
		(*i)++;
		*star = 1;
		return 0;
	}
	if (*i >= len || s[*i] < '1' || s[*i] > '9')
		return -1;
	while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
		v = v * 10 + (uint64_t)(s[*i] - '0');
		if (v > UINT32_MAX)
			return -1;
		(*i)++;
	}
	*out = (uint32_t)v;
	return 0;
}

/*
 * Walk the set: *n_out is the number of ranges (with r == NULL: all of
 * them; else those stored in r, "*" resolved, dropped when star is 0).
 */
static int
walk(const char *s, size_t len, uint32_t star, struct imap_seq_range *r,
    size_t *n_out)
{
	size_t		i = 0, n = 0;
	uint32_t	a, b, t;
	int		sa, sb;

	if (len == 0)
		return -1;
	for (;;) {
		if (seq_number(s, len, &i, &a, &sa) < 0)
			return -1;
		b = a;
		sb = sa;
		if (i < len && s[i] == ':') {
			i++;
			if (seq_number(s, len, &i, &b, &sb) < 0)
				return -1;
		}
		if (r == NULL)
			n++;
		else if (!((sa || sb) && star == 0)) {
			a = sa ? star : a;
			b = sb ? star : b;
			if (a > b) {
				t = a;
				a = b;
				b = t;
			}
			r[n].lo = a;
			r[n].hi = b;
			n++;
		}
		if (i == len)
			break;
		if (s[i] != ',')
			return -1;
		i++;
	}
	*n_out = n;
	return 0;
}

static int
range_cmp(const void *x, const void *y)
{
	const struct imap_seq_range	*a = x, *b = y;

	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	if (a->hi != b->hi)
		return a->hi < b->hi ? -1 : 1;
	return 0;
}

int
imap_seqset_valid(const char *s, size_t len)
{
	size_t	n;

	return walk(s, len, 0, NULL, &n) == 0;
}

int
imap_seqset_parse(struct imap_seqset *out, const char *s, size_t len,
    uint32_t star)
{
	struct imap_seq_range	*r;
	size_t			 n, k, m;

	out->r = NULL;
	out->n = 0;
	if (walk(s, len, star, NULL, &n) < 0) {
		err_set(ERR_PROTO, "invalid sequence set");
		return ERR_PROTO;
	}
	r = xreallocarray(NULL, n, sizeof(*r));
	(void)walk(s, len, star, r, &n);
	if (n == 0) {
		free(r);
		return 0;
	}
	qsort(r, n, sizeof(*r), range_cmp);
	for (m = 0, k = 1; k < n; k++) {
		/* overlapping or adjacent (hi + 1 cannot wrap here) */
		if (r[k].lo <= r[m].hi ||
		    (r[m].hi != UINT32_MAX && r[k].lo == r[m].hi + 1)) {
			if (r[k].hi > r[m].hi)
				r[m].hi = r[k].hi;
		} else
			r[++m] = r[k];
	}
	out->r = r;
	out->n = m + 1;
	return 0;
}

void
imap_seqset_free(struct imap_seqset *set)
{
	free(set->r);
	set->r = NULL;
	set->n = 0;
}

int
imap_seqset_contains(const struct imap_seqset *set, uint32_t v)
{
	size_t	lo = 0, hi = set->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (v < set->r[mid].lo)
			hi = mid;
		else if (v > set->r[mid].hi)
			lo = mid + 1;
		else
			return 1;
	}
	return 0;
}

uint64_t
imap_seqset_count(const struct imap_seqset *set)
{
	uint64_t	total = 0;
	size_t		i;

	for (i = 0; i < set->n; i++)
		total += (uint64_t)set->r[i].hi - set->r[i].lo + 1;
	return total;
}

int
imap_arg_seqset(struct imap_seqset *out, const struct imap_arg *a,
    uint32_t star)
{
	out->r = NULL;
	out->n = 0;
	if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NUMBER) {
		err_set(ERR_PROTO, "expected sequence set");
		return ERR_PROTO;
	}
	return imap_seqset_parse(out, a->str, a->len, star);
}
