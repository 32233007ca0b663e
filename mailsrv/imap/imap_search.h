/*
 * imap_search.h -- SEARCH and UID SEARCH: the search program and its
 * responses (RFC 3501 6.4.4, RFC 9051 6.4.4, ESEARCH RFC 4731,
 * SEARCHRES RFC 5182, CONDSTORE MODSEQ RFC 7162 3.1.5).
 *
 * The session parses the arguments once (imap_search_parse()), runs
 * imap_search_match() on every message of the selected mailbox, collects
 * the matches and has imap_search_result() write the untagged response.
 *
 * Keys: sequence-set, "$", ALL, ANSWERED, BCC, BEFORE, BODY, CC, DELETED,
 * DRAFT, FLAGGED, FROM, HEADER, KEYWORD, LARGER, MODSEQ (with
 * IMAP_SEARCH_E_CONDSTORE), NEW, NOT, OLD, ON, OR, RECENT, SEEN,
 * SENTBEFORE, SENTON, SENTSINCE, SINCE, SMALLER, SUBJECT, TEXT, TO, UID,
 * UNANSWERED, UNDELETED, UNDRAFT, UNFLAGGED, UNKEYWORD, UNSEEN and
 * parenthesised lists (AND).  There is no \Recent: RECENT and NEW never
 * match, OLD always does.  BEFORE/ON/SINCE compare the UTC day of the
 * internal date; SENT* the day of the Date: header in its own zone, or
 * the internal date's when there is no usable Date: header.  A keyword
 * the mailbox does not know: KEYWORD never matches, UNKEYWORD always.
 * Sequence sets resolve "*" against the mailbox as it was at parse time
 * (an empty mailbox: ranges with "*" match nothing); numbers past the
 * end simply match nothing.  "$" (plain or after UID) is the saved
 * result (UIDs).
 *
 * LIMITS: IMAP_SEARCH_DEPTH_MAX nested NOT/OR/parentheses (a key inside
 * 64 of them is accepted, 65 is ERR_TOOBIG) and IMAP_SEARCH_KEYS_MAX
 * keys (every key, NOT, OR and list counts).  Parsing and matching
 * recurse at most IMAP_SEARCH_DEPTH_MAX + 1 levels.
 */
#ifndef MAILSRV_IMAP_SEARCH_H
#define MAILSRV_IMAP_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "mailsrv/imap/imap_parser.h"

#define IMAP_SEARCH_DEPTH_MAX	64
#define IMAP_SEARCH_KEYS_MAX	1024

/*
 * imap_search_parse() for an unsupported CHARSET: answer
 * "NO [BADCHARSET (UTF-8 US-ASCII)]".  common/err.h has no ERR_NOTSUP,
 * so it is ERR_NOTFOUND (no other failure of the parse uses that).
 */
#define IMAP_SEARCH_ERR_BADCHARSET	ERR_NOTFOUND

/* imap_search_match() with msg NULL when the result needs the message. */
#define IMAP_SEARCH_NEEDMSG	2

struct imap_msg;
struct store_msginfo;
struct imap_search;

/*
 * The selected mailbox as the search sees it.  Everything is copied
 * that the search keeps: the env need not outlive imap_search_parse().
 */
struct imap_search_env {
	uint32_t	 nmsgs;		/* messages in the selected mailbox */
	const uint32_t	*uids;		/* UID of sequence number i+1, ascending */
	char *const	*kw;		/* bit i of store_msginfo.keywords is kw[i] */
	size_t		 nkw;
	const uint32_t	*saved;		/* SEARCHRES "$": saved UIDs, ascending */
	size_t		 nsaved;
	unsigned	 flags;		/* IMAP_SEARCH_E_* */
};

#define IMAP_SEARCH_E_UTF8	0x01	/* IMAP4rev2 or UTF8=ACCEPT */
#define IMAP_SEARCH_E_REV2	0x02	/* IMAP4rev2: results are ESEARCH */
#define IMAP_SEARCH_E_CONDSTORE	0x04	/* MODSEQ key allowed */

/*
 * args/nargs: the arguments after SEARCH (or UID SEARCH):
 * [RETURN (opts)] [CHARSET name] 1*search-key.  RETURN options: MIN MAX
 * ALL COUNT SAVE.  CHARSET: UTF-8 or US-ASCII; with IMAP_SEARCH_E_UTF8
 * but not IMAP_SEARCH_E_REV2 (ENABLE UTF8=ACCEPT) a CHARSET is BAD
 * (RFC 6855 3).  Strings are copied: args may go after the call.
 * Returns 0, ERR_PROTO (BAD; err_msg() says why, without peer data),
 * ERR_TOOBIG (a limit above; answer BAD or NO [LIMIT]) or
 * IMAP_SEARCH_ERR_BADCHARSET.
 */
int	imap_search_parse(struct imap_search **, const struct imap_arg *,
	    size_t, const struct imap_search_env *);
void	imap_search_free(struct imap_search **);

/* A key needs the message: HEADER BODY TEXT SUBJECT FROM TO CC BCC SENT*. */
int	imap_search_needs_msg(const struct imap_search *);
/* A MODSEQ key is present: the response carries MODSEQ. */
int	imap_search_uses_modseq(const struct imap_search *);
/* RETURN (SAVE): the session replaces "$" (imap_search_save_pick()). */
int	imap_search_saves(const struct imap_search *);

/*
 * 1: the message with sequence number seq (info->uid its UID) matches,
 * 0: it does not.  msg may be NULL: then keys that need the message are
 * unknown, and the result is IMAP_SEARCH_NEEDMSG when it depends on
 * them (load the message and call again); a search with no such key
 * never returns it.  So a session can skip loading messages that
 * cheaper keys already rule out.
 */
int	imap_search_match(const struct imap_search *, uint32_t,
	    const struct store_msginfo *, const struct imap_msg *);

/*
 * The MODSEQ to report (RFC 4731 3.2): modseqs[i] is the MODSEQ of the
 * i-th match (ascending order, as given to imap_search_result()).  With
 * only MIN and/or MAX requested it is that of the MIN/MAX message(s),
 * else the highest of all; 0 when n is 0.
 */
uint64_t	imap_search_modseq(const struct imap_search *, const uint64_t *,
		    size_t);

/*
 * The result to save for RETURN (SAVE) (RFC 5182 2.4, RFC 9051 6.4.4.1):
 * all matches, or only the MIN and/or MAX one when those are the only
 * other options.  Writes into out (room for n) and returns the count.
 * The saved result is UIDs: after a SEARCH (not UID SEARCH) the session
 * maps the sequence numbers to UIDs.
 */
size_t	imap_search_save_pick(const struct imap_search *, const uint32_t *,
	    size_t, uint32_t *);

/*
 * Append the untagged response, CRLF included:
 *   "* SEARCH 2 5 9[ (MODSEQ m)]"  (IMAP4rev1 without RETURN)
 *   "* ESEARCH (TAG "t")[ UID][ MIN a][ MAX b][ COUNT c][ ALL set]
 *   [ MODSEQ m]"  (with RETURN, or always with IMAP_SEARCH_E_REV2;
 *   RETURN () and no RETURN mean ALL).
 * An empty result has no MIN/MAX/ALL/MODSEQ (RFC 4731 3.1); RETURN
 * (SAVE) alone writes nothing (RFC 9051 6.4.4).  uid: it was UID SEARCH.
 * matched: the matching sequence numbers or UIDs, ascending; ALL is a
 * compact set ("1:5,8").  modseq: see imap_search_modseq().  Returns 0
 * or ERR_TOOBIG (buf's max; nothing is appended then).
 */
int	imap_search_result(struct buf *, const struct imap_search *,
	    const char *, int, const uint32_t *, size_t, uint64_t);

#endif
