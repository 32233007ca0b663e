/*
 * imap_fetch.h -- the FETCH attribute list (RFC 9051 6.4.5, RFC 3516
 * BINARY, RFC 7162 CONDSTORE/QRESYNC modifiers) and the rendering of
 * one message's FETCH response.
 *
 * imap_fetch_parse() checks everything that can be checked without a
 * message, so a FETCH is either refused (BAD) before any message is
 * read or rendered message by message.
 */
#ifndef MAILSRV_IMAP_FETCH_H
#define MAILSRV_IMAP_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "mailsrv/imap/imap_msg.h"
#include "mailsrv/imap/imap_parser.h"
#include "mailsrv/store/store.h"

/* Attributes in one FETCH (macros count as their expansion). */
#define IMAP_FETCH_ITEMS_MAX	256
/* Header names in one HEADER.FIELDS[.NOT] list. */
#define IMAP_FETCH_FIELDS_MAX	256

struct imap_fetch;

/* Parse flags. */
#define IMAP_FETCH_P_REV2	0x01	/* IMAP4rev2 enabled (RFC822* items
					 * stay accepted: RFC 9051 keeps them) */
#define IMAP_FETCH_P_UTF8	0x02	/* UTF-8 may be sent quoted */
#define IMAP_FETCH_P_UID	0x04	/* UID FETCH: UID always rendered */
#define IMAP_FETCH_P_CONDSTORE	0x08	/* CONDSTORE is offered: the MODSEQ
					 * item and CHANGEDSINCE are allowed
					 * (and enable it) */

/*
 * att: the FETCH attribute argument (an atom: a macro ALL/FAST/FULL or
 * an item; a SECTION; or a LIST of items and sections); mods: the
 * optional modifier list "(CHANGEDSINCE n [VANISHED])", or NULL.
 * Returns 0, or ERR_PROTO with err_set() text (answer BAD err_msg()):
 * unknown item, macro inside a list, empty list, bad section (part
 * numbers are nz-numbers, at most IMAP_SECT_DEPTH_MAX; HEADER.FIELDS
 * needs a non-empty list of astrings; MIME needs part numbers; BINARY
 * takes part numbers only), partial on BINARY.SIZE, MODSEQ or
 * CHANGEDSINCE without P_CONDSTORE, bad or repeated modifiers,
 * VANISHED without CHANGEDSINCE, over IMAP_FETCH_ITEMS_MAX /
 * IMAP_FETCH_FIELDS_MAX.  The result does not point into att or mods.
 */
int	imap_fetch_parse(struct imap_fetch **, const struct imap_arg *,
	    const struct imap_arg *, unsigned);
void	imap_fetch_free(struct imap_fetch **);

/* Needs the message bytes (envelope, structure, sections, BINARY). */
int	imap_fetch_needs_msg(const struct imap_fetch *);
/* Non-PEEK BODY[...], BINARY[...], RFC822, RFC822.TEXT. */
int	imap_fetch_sets_seen(const struct imap_fetch *);
/* The MODSEQ item or CHANGEDSINCE (both enable CONDSTORE). */
int	imap_fetch_wants_modseq(const struct imap_fetch *);
/* CHANGEDSINCE's value; 0: none (or CHANGEDSINCE 0). */
uint64_t imap_fetch_changedsince(const struct imap_fetch *);
/* VANISHED given (needs UID FETCH and QRESYNC: the server checks). */
int	imap_fetch_vanished(const struct imap_fetch *);

/* Render flags. */
#define IMAP_FETCH_R_FLAGS	0x01	/* also FLAGS (\Seen was just set) */
#define IMAP_FETCH_R_MODSEQ	0x02	/* also MODSEQ */

/*
 * Append "* <seq> FETCH (...)\r\n" for one message: UID first when
 * P_UID and not requested, then the items in the order requested (a
 * repeated plain item once), then FLAGS and MODSEQ when asked by rflags
 * (MODSEQ also after CHANGEDSINCE) and not already there.  Sections are
 * literals (NUL sent as 0x80); BINARY uses literal8 when the decoded
 * data holds NUL; a partial <o.l> answers "BODY[...]<o>" with the
 * substring; a missing part is "".  msg may be NULL only when
 * !imap_fetch_needs_msg().  On error nothing is appended: ERR_PROTO
 * for BINARY of an unknown transfer encoding (answer NO
 * [UNKNOWN-CTE]), ERR_TOOBIG when out is full, ERR_INVAL for msg NULL.
 */
int	imap_fetch_render(struct buf *, const struct imap_fetch *, uint32_t,
	    const struct store_msginfo *, char *const *, size_t,
	    const struct imap_msg *, unsigned);

#endif
