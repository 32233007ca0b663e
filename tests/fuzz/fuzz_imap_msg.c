/*
 * fuzz_imap_msg.c -- libFuzzer target for the IMAP message model
 * (mailsrv/imap/imap_msg*.c): MIME tree, ENVELOPE, BODY/BODYSTRUCTURE,
 * sections, BINARY, Date: and the SEARCH matchers.
 *
 * Purpose: for any message, parsing terminates within the limits and
 * every rendering is well-framed IMAP: parentheses balance outside
 * quoted strings and literals, quoted strings hold no CR, LF or NUL,
 * literal counts match, and 8-bit appears only inside literals unless
 * UTF-8 output was asked for.  Sections of every kind are fetched for
 * part paths taken from the input.
 * Input: byte 0 picks flags (bit 0 UTF-8 output), bytes 1..8 four part
 * paths (each byte: up to 3 part numbers 1..4), then the message.
 * Runs in: the fuzzer binary only (tests/fuzz/run, which links the
 * common sources, the Makefile's PKGS and libetpan); the IMAP sources
 * are included here.
 * Failure policy: abort() on any broken invariant.
 * SECURITY: the message is the most attacker-controlled input the IMAP
 * server parses; this is the check that no nesting, boundary or header
 * trick escapes the output framing or the recursion bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"

#include "mailsrv/imap/imap_args.c"
#include "mailsrv/imap/imap_seqset.c"
#include "mailsrv/imap/imap_format.c"
#include "mailsrv/imap/imap_msg.c"
#include "mailsrv/imap/imap_msg_env.c"
#include "mailsrv/imap/imap_msg_struct.c"
#include "mailsrv/imap/imap_msg_search.c"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
die(const char *why)
{
	fprintf(stderr, "fuzz_imap_msg: %s\n", why);
	abort();
}

/* IMAP framing of a rendered item (see Purpose). */
static void
check_framing(const struct buf *b, int utf8)
{
	const unsigned char	*d = b->data;
	size_t			 i = 0, n = b->len, lit;
	long			 depth = 0;

	while (i < n) {
		if (d[i] == '"') {
			for (i++; i < n && d[i] != '"'; i++) {
				if (d[i] == '\\')
					i++;
				if (i >= n || d[i] == '\r' || d[i] == '\n' ||
				    d[i] == '\0' || (d[i] >= 0x80 && !utf8))
					die("bad quoted string");
			}
			if (i++ >= n)
				die("unterminated quoted string");
		} else if (d[i] == '{' || (d[i] == '~' && i + 1 < n &&
		    d[i + 1] == '{')) {
			i += d[i] == '~' ? 2 : 1;
			for (lit = 0; i < n && d[i] >= '0' && d[i] <= '9'; i++)
				lit = lit * 10 + (size_t)(d[i] - '0');
			if (n - i < 3 || memcmp(d + i, "}\r\n", 3) != 0 ||
			    n - i - 3 < lit)
				die("bad literal");
			i += 3 + lit;
		} else {
			if (d[i] == '(')
				depth++;
			else if (d[i] == ')' && --depth < 0)
				die("unbalanced )");
			else if (d[i] >= 0x80 || d[i] < 0x20)
				die("raw byte outside a string");
			i++;
		}
	}
	if (depth != 0)
		die("unbalanced (");
}

static void
fetch_sections(const struct imap_msg *m, const uint8_t *paths)
{
	static const char	*fields[] = { "From", "subject", "X" };
	struct imap_section	 s;
	struct buf		 b;
	size_t			 p, k;
	int			 kind, rc;

	buf_init(&b, SIZE_MAX / 2);
	for (p = 0; p < 8; p++) {
		memset(&s, 0, sizeof(s));
		for (k = 0; k < 3 && ((paths[p] >> (2 * k)) & 3) != 0; k++)
			s.part[s.npart++] = (paths[p] >> (2 * k)) & 3;
		s.fields = fields;
		s.nfields = 3;
		for (kind = IMAP_SECT_ALL; kind <= IMAP_SECT_MIME; kind++) {
			s.kind = (enum imap_sect_kind)kind;
			buf_reset(&b);
			rc = imap_msg_section(&b, m, &s);
			if (rc != 0 && !(rc == ERR_INVAL && s.npart == 0))
				die("section failed");
		}
		buf_reset(&b);
		rc = imap_msg_binary(&b, m, &s);
		if (rc != 0 && rc != ERR_PROTO)
			die("binary failed");
	}
	buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_msg	*m;
	struct buf	 b;
	int64_t		 t;
	int		 tz, utf8, ext;

	if (size < 9)
		return 0;
	utf8 = data[0] & 1;
	if (imap_msg_parse(&m, data + 9, size - 9) != 0)
		die("parse failed");
	buf_init(&b, SIZE_MAX / 2);
	if (imap_msg_envelope(&b, m, utf8) != 0)
		die("envelope failed");
	check_framing(&b, utf8);
	for (ext = 0; ext <= 1; ext++) {
		buf_reset(&b);
		if (imap_msg_bodystructure(&b, m, ext, utf8) != 0)
			die("bodystructure failed");
		check_framing(&b, utf8);
	}
	buf_free(&b);
	fetch_sections(m, data + 1);
	(void)imap_msg_date(m, &t, &tz);
	(void)imap_msg_header_match(m, "subject", "a", 1);
	(void)imap_msg_header_match(m, NULL, "", 0);
	(void)imap_msg_text_match(m, "=\r\n", 3, data[0] & 2);
	imap_msg_free(&m);
	return 0;
}
