/*
 * line.h -- a bounded, resumable line reader.
 *
 * Input arrives in pieces of any size; the reader returns one line at a
 * time.  Feeding byte by byte gives exactly the same results as feeding
 * all at once.  The length limit is checked as bytes arrive, so an
 * oversized line is reported before its end is seen and never buffered.
 *
 * Lines end in CRLF.  A bare CR is always a protocol error; a bare LF is
 * one unless LINE_LF_OK is set (HTTP tolerates it, SMTP and IMAP do not).
 */
#ifndef COMMON_LINE_H
#define COMMON_LINE_H

#include <stddef.h>

#include "common/buf.h"

#define LINE_LF_OK	0x01	/* a bare LF ends a line too */

struct line_reader {
	struct buf	 line;	/* the current line, without terminator */
	size_t		 max;	/* longest line accepted, CRLF included */
	int		 flags;
	int		 state;
};

void	line_reader_init(struct line_reader *, size_t, int);
void	line_reader_reset(struct line_reader *);
void	line_reader_free(struct line_reader *);

/*
 * line_feed(lr, data, len, used_out): consume input up to and including
 * the end of at most one line; *used_out is set to the bytes consumed.
 * Returns:
 *   0           a complete line is in lr->line (.data NUL-terminated,
 *               .len bytes); valid until the next call.
 *   ERR_AGAIN   every byte was consumed and no line is complete yet.
 *   ERR_TOOBIG  the line is longer than max - 2 bytes: reported at the
 *               first byte beyond; the rest of that line, up to its end,
 *               is discarded by the next calls.
 *   ERR_PROTO   bare CR, or bare LF without LINE_LF_OK: reported at that
 *               byte; the rest of that line is discarded likewise.
 */
int	line_feed(struct line_reader *, const void *, size_t, size_t *);

#endif
