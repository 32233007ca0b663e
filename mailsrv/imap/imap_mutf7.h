/*
 * imap_mutf7.h -- IMAP mailbox names: modified UTF-7 (RFC 3501 5.1.3) and
 * LIST/LSUB pattern matching (RFC 3501 6.3.8).
 *
 * Conversions allocate *out (NUL-terminated, caller frees) and leave it
 * untouched on error.  Only canonical modified UTF-7 is accepted, so each
 * mailbox name has exactly one wire form: base64 must not encode
 * printable ASCII ("&AGE-"), adjacent encoded runs must be one run,
 * padding bits must be zero.  U+0000 is refused both ways.
 */
#ifndef MAILSRV_IMAP_MUTF7_H
#define MAILSRV_IMAP_MUTF7_H

#include <stddef.h>

/*
 * Modified UTF-7 -> UTF-8.  ERR_PROTO (with err_msg()) for invalid input:
 * bad base64, non-canonical encodings, unterminated "&", bytes outside
 * printable ASCII, unpaired surrogates.
 */
int	imap_mutf7_to_utf8(char **, const char *, size_t);
/*
 * UTF-8 -> modified UTF-7.  ERR_PROTO for invalid UTF-8 (overlong forms,
 * surrogates, code points above U+10FFFF, truncated sequences) or U+0000.
 */
int	imap_utf8_to_mutf7(char **, const char *, size_t);
/*
 * LIST/LSUB pattern match: '*' matches anything, '%' anything but the
 * hierarchy separator sep (sep '\0': no hierarchy, '%' is '*').  Other
 * bytes match exactly, except that when the name's first component is
 * INBOX in any case, a pattern whose first five bytes spell INBOX in any
 * case matches it.  1 match, 0 no.  Runs in O(len(pattern) * len(name))
 * time whatever the pattern (no backtracking).
 */
int	imap_list_match(const char *, const char *, char);

#endif
