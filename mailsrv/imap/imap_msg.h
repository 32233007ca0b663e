/*
 * imap_msg.h -- one message as the IMAP server sees it: its MIME tree,
 * ENVELOPE, BODY/BODYSTRUCTURE, body sections, BINARY decoding and the
 * SEARCH text matchers.
 *
 * The MIME structure follows Dovecot's message parser (the reference
 * for what clients expect):
 *   - a boundary line is "--" + boundary at the start of a line, with
 *     anything after it; the line ending before it belongs to the
 *     boundary, not to the part; the boundaries of every enclosing
 *     multipart are recognised (the innermost first), so an outer
 *     boundary also ends unterminated inner multiparts;
 *   - a part's header ends at the first empty line, or at a boundary
 *     line (the part then has no body), or at the end of the message;
 *   - Content-* fields of a message (the top level, or one enclosed in
 *     message/rfc822) count only when it has MIME-Version or
 *     Content-Type; the parts of a multipart always count;
 *   - a missing or invalid Content-Type is text/plain (message/rfc822
 *     inside multipart/digest); a multipart without a usable boundary
 *     is text/plain too;
 *   - sizes are octets of the part as stored (CRLF or bare LF kept),
 *     lines are the LFs in the part's body.
 * Limits: a part IMAP_MSG_DEPTH_MAX levels below the top (or more) is
 * not split: it becomes an opaque leaf, shown as application/
 * octet-stream; at most IMAP_MSG_PARTS_MAX parts are made, further
 * parts of a multipart are left out of its structure.  Parsing is
 * linear in the message size (times the nesting for boundary checks)
 * and its recursion is bounded by IMAP_MSG_DEPTH_MAX.
 *
 * Only RFC 2047 decoding and charset conversion (SEARCH) use libetpan;
 * its MIME and RFC 5322 parsers recurse without a bound on nesting (of
 * parts and of comments), so the structure and header parsing here are
 * our own.
 */
#ifndef MAILSRV_IMAP_MSG_H
#define MAILSRV_IMAP_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define IMAP_MSG_DEPTH_MAX	64	/* nesting of multipart / message */
#define IMAP_MSG_PARTS_MAX	10000	/* parts per message (Dovecot's) */
#define IMAP_MSG_BOUNDARY_MAX	200	/* RFC 2046 says 70 */
#define IMAP_MSG_PARAMS_MAX	64	/* parameters per header field */
#define IMAP_MSG_ADDR_MAX	5000	/* addresses per ENVELOPE field */

struct imap_msg;

/*
 * Parse data[0..len).  data must stay valid and unchanged until
 * imap_msg_free() (it is not copied).  Never fails on malformed mail
 * (allocation failure is fatal, xmalloc); returns 0.
 */
int	imap_msg_parse(struct imap_msg **, const unsigned char *, size_t);
void	imap_msg_free(struct imap_msg **);

/*
 * ENVELOPE (RFC 9051 7.5.2): the parenthesised list, no leading space.
 * Header values are raw (RFC 2047 words not decoded), unfolded, first
 * occurrence of each field.  Addresses are (name adl mailbox host);
 * group syntax gives (NIL NIL group NIL) ... (NIL NIL NIL NIL); a
 * missing local part or domain is "MISSING_MAILBOX" / "MISSING_DOMAIN"
 * (Dovecot), a comment stands in for a missing display name.  Sender
 * and Reply-To default to From when absent or empty.  utf8 != 0: 8-bit
 * text may be sent quoted (IMAP4rev2 / UTF8=ACCEPT), else literals.
 */
int	imap_msg_envelope(struct buf *, const struct imap_msg *, int);
/*
 * BODY (extended 0) or BODYSTRUCTURE (extended 1), parenthesised, no
 * leading space, as Dovecot writes it: types, subtypes and parameters
 * as sent; text parts get ("charset" "us-ascii") when they name none;
 * the extension data is md5 (Content-MD5), disposition, language (a
 * list) and location; RFC 2231 continuations are merged.
 */
int	imap_msg_bodystructure(struct buf *, const struct imap_msg *, int,
	    int);
/*
 * The Date: header as unix time (UTC) and its zone offset in minutes
 * (RFC 5322 with the obsolete forms).  ERR_NOTFOUND if absent or
 * unparsable.
 */
int	imap_msg_date(const struct imap_msg *, int64_t *, int *);

/*
 * SEARCH helpers: case-insensitive (ASCII and Latin/Greek/Cyrillic
 * UTF-8) substring match of a UTF-8 needle.  Return 1 match, 0 not.
 * header_match: in the RFC 2047-decoded value of every top-level
 * header field named field (case-insensitive; NULL: any field); an
 * empty needle matches when such a field exists.
 * text_match: with_headers 0 is SEARCH BODY (the text/any parts and the
 * headers of enclosed messages, transfer encoding removed and charset
 * converted to UTF-8 where iconv can), 1 is SEARCH TEXT (the top-level
 * header too).
 */
int	imap_msg_header_match(const struct imap_msg *, const char *,
	    const char *, size_t);
int	imap_msg_text_match(const struct imap_msg *, const char *, size_t,
	    int);

/* Sections (RFC 9051 6.4.5): part numbers, then one of these. */
enum imap_sect_kind {
	IMAP_SECT_ALL,
	IMAP_SECT_HEADER,
	IMAP_SECT_HEADER_FIELDS,
	IMAP_SECT_HEADER_FIELDS_NOT,
	IMAP_SECT_TEXT,
	IMAP_SECT_MIME,
};

#define IMAP_SECT_DEPTH_MAX	32

struct imap_section {
	uint32_t		 part[IMAP_SECT_DEPTH_MAX];
	size_t			 npart;
	enum imap_sect_kind	 kind;
	const char		**fields;	/* HEADER.FIELDS[.NOT] */
	size_t			 nfields;
};

/*
 * Append the bytes of a section.  HEADER includes the blank line;
 * HEADER.FIELDS[.NOT] gives the (non-)matching fields in message order
 * and a CRLF; with part numbers, HEADER* and TEXT apply to the message
 * enclosed in a message/rfc822 part (on another part they are empty);
 * part 1 of a non-multipart is its body; MIME is the part's own header
 * with its blank line.  A part that does not exist is empty (not an
 * error).  ERR_INVAL for MIME without part numbers or npart past
 * IMAP_SECT_DEPTH_MAX (caller bugs), ERR_TOOBIG when out is full.
 */
int	imap_msg_section(struct buf *, const struct imap_msg *,
	    const struct imap_section *);
/*
 * BINARY[part] (RFC 3516): the part's body with its Content-Transfer-
 * Encoding removed (base64, quoted-printable; 7bit/8bit/binary as is).
 * No part numbers: the whole message unchanged.  Only part numbers are
 * used (kind is ignored).  A missing part is empty.  ERR_PROTO (with
 * err_set()) for an unknown encoding: the server answers NO
 * [UNKNOWN-CTE].
 */
int	imap_msg_binary(struct buf *, const struct imap_msg *,
	    const struct imap_section *);

#endif
