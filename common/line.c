/*
 * line.c -- bounded line reader (see line.h for the contract).
 *
 * Runs in: any network-facing process.
 * Failure policy: limits and framing errors are returned to the caller,
 * which chooses the protocol reply; the reader then resynchronises on the
 * next line end.
 * SECURITY: the limit is enforced before bytes are copied, so a peer can
 * never make the buffer exceed max.  Bare CR/LF are refused to prevent
 * SMTP smuggling.
 */
#include <string.h>

#include "common/err.h"
#include "common/line.h"

enum {
	LR_TEXT = 0,	/* inside a line */
	LR_CR,		/* saw CR, want LF */
	LR_SKIP,	/* discarding the rest of a bad line */
	LR_DONE,	/* a line was returned; reset on next feed */
};

void
line_reader_init(struct line_reader *lr, size_t max, int flags)
{
	if (max < 3)
		max = 3;
	buf_init(&lr->line, max);
	lr->max = max;
	lr->flags = flags;
	lr->state = LR_TEXT;
}

void
line_reader_reset(struct line_reader *lr)
{
	buf_reset(&lr->line);
	lr->state = LR_TEXT;
}

void
line_reader_free(struct line_reader *lr)
{
	buf_free(&lr->line);
	lr->state = LR_TEXT;
}

/*
 * A line is complete: make sure .data is a valid C string even for an
 * empty first line (nothing was appended, so no buffer was allocated).
 */
static int
line_done(struct line_reader *lr)
{
	(void)buf_append(&lr->line, "", 0);
	lr->state = LR_DONE;
	return 0;
}

/* Index of the first CR or LF in p[0..n), or n. */
static size_t
scan_eol(const unsigned char *p, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (p[i] == '\r' || p[i] == '\n')
			break;
	return i;
}

int
line_feed(struct line_reader *lr, const void *data, size_t len,
    size_t *used_out)
{
	const unsigned char	*p = data;
	size_t			 i = 0, run, room;

	if (lr->state == LR_DONE) {
		buf_reset(&lr->line);
		lr->state = LR_TEXT;
	}
	while (i < len) {
		switch (lr->state) {
		case LR_SKIP:
			while (i < len && p[i] != '\n')
				i++;
			if (i < len) {
				i++;
				buf_reset(&lr->line);
				lr->state = LR_TEXT;
			}
			break;
		case LR_CR:
			if (p[i] != '\n') {
				/* bare CR: the CR was the bad byte; this one
				 * may end the line, let LR_SKIP decide */
				lr->state = LR_SKIP;
				*used_out = i;
				return ERR_PROTO;
			}
			i++;
			*used_out = i;
			return line_done(lr);
		case LR_TEXT:
			run = scan_eol(p + i, len - i);
			room = lr->max - 2 - lr->line.len;
			if (run > room) {
				/* the byte after room is one too many */
				i += room;
				lr->state = LR_SKIP;
				*used_out = i + 1;
				return ERR_TOOBIG;
			}
			if (run > 0)
				(void)buf_append(&lr->line, p + i, run);
			i += run;
			if (i == len)
				break;
			if (p[i] == '\r') {
				i++;
				lr->state = LR_CR;
				break;
			}
			/* bare LF */
			i++;
			*used_out = i;
			if (!(lr->flags & LINE_LF_OK)) {
				buf_reset(&lr->line);
				lr->state = LR_TEXT;
				return ERR_PROTO;
			}
			return line_done(lr);
		}
	}
	*used_out = i;
	return ERR_AGAIN;
}
