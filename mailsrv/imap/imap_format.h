/*
 * imap_format.h -- IMAP output primitives and date parsing.
 *
 * Every imap_fmt_* function appends to a struct buf and returns 0 or a
 * negative enum err (ERR_TOOBIG when the buffer's max is reached; the
 * buffer may then hold part of the item: callers that need all or
 * nothing remember b->len and truncate).  Output follows RFC 9051 (and
 * RFC 3501 when utf8 is 0).
 */
#ifndef MAILSRV_IMAP_FORMAT_H
#define MAILSRV_IMAP_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* The longest string sent quoted; longer ones are literals. */
#define IMAP_FMT_QUOTED_MAX	1024

/*
 * string: "quoted" when every byte is printable ASCII (or, with
 * utf8 != 0, part of valid UTF-8), and len <= IMAP_FMT_QUOTED_MAX;
 * else a literal {n}\r\n<bytes>.  A literal may not hold NUL, so NUL
 * bytes are sent as 0x80 (as Dovecot does).
 */
int	imap_fmt_string(struct buf *, const char *, size_t, int);
/* nstring: NIL for a NULL pointer. */
int	imap_fmt_nstring(struct buf *, const char *, size_t, int);
/*
 * astring (mailbox names, header names): an atom when non-empty, made
 * of ASTRING-CHARs only and not "NIL" in any case; else a string.
 */
int	imap_fmt_astring(struct buf *, const char *, size_t, int);
/*
 * A literal {n}\r\n<bytes> whatever the bytes (NUL sent as 0x80); with
 * binary != 0 and a NUL inside, a literal8 ~{n}\r\n<bytes> unchanged.
 */
int	imap_fmt_literal(struct buf *, const void *, size_t, int);
/*
 * An ascending array of numbers as a compact sequence set: runs of
 * consecutive numbers as ranges ("1:3,7").  "" for none.
 */
int	imap_fmt_seqset(struct buf *, const uint32_t *, size_t);
/*
 * Flag list "(\Seen \Answered \Flagged \Deleted \Draft kw...)" from the
 * STORE_F_* bits and the keyword mask: bit i names kw[i] (bits at or
 * past nkw, and NULL names, are skipped).
 */
int	imap_fmt_flags(struct buf *, uint32_t, uint64_t, char *const *,
	    size_t);
/*
 * "dd-Mon-yyyy hh:mm:ss +0000", quoted, in UTC (INTERNALDATE).  Times
 * outside years 1970..9999 are clamped to that range.
 */
int	imap_fmt_datetime(struct buf *, int64_t);

/*
 * RFC 9051 date-time without its quotes ("17-Jul-1996 02:44:25 -0700",
 * the day may be " 7" or "07" or "7") -> unix seconds (UTC).
 * ERR_PROTO if invalid (field ranges are checked, Feb 30 included).
 */
int	imap_parse_datetime(const char *, size_t, int64_t *);
/*
 * RFC 9051 date without quotes ("1-Feb-1994") -> days since 1970-01-01
 * (negative before).  ERR_PROTO if invalid.
 */
int	imap_parse_date(const char *, size_t, int32_t *);

/*
 * Helpers shared with imap_msg_env.c, imap_msg_struct.c and imap_fetch.c.
 * imap_utf8_len: the length (1..4) of the valid UTF-8 sequence at s,
 * 0 if s[0..n) does not start with one (overlong forms, surrogates and
 * code points past U+10FFFF are invalid).
 * imap_days_from_civil: days since 1970-01-01 of a proleptic Gregorian
 * date (month 1..12).
 */
size_t	imap_utf8_len(const unsigned char *, size_t);
int64_t	imap_days_from_civil(int64_t, unsigned, unsigned);

#endif
