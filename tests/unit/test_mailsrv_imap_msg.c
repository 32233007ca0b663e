/*
 * test_mailsrv_imap_msg.c -- unit tests for mailsrv/imap/imap_msg (MIME
 * tree, ENVELOPE, BODY/BODYSTRUCTURE, sections, BINARY, SEARCH
 * matching, Date:) and mailsrv/imap/imap_format.
 *
 * Runs in: the unit test runner (cmocka).
 * Failure policy: assertions abort the case.
 * SECURITY: covers the nesting and part-count limits at the limit and
 * one past it, a million nested comments, unterminated and missing
 * boundaries, NUL bytes and 8-bit text (literals unless UTF-8).
 * Expected strings were computed by hand against the RFC 9051 grammar;
 * the "dovecot" corpus is Dovecot's own test-imap-bodystructure.c
 * vectors (its LF messages given CRLF, which leaves its sizes as they
 * are since Dovecot counts LF as CRLF).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/xmalloc.h"
#include "mailsrv/imap/imap_format.h"
#include "mailsrv/imap/imap_msg.h"

/* s with every LF made CRLF (the store's line ends). */
static char *
crlf(const char *s)
{
	size_t	n = strlen(s), i, k = 0;
	char	*o = xmalloc(2 * n + 1);

	for (i = 0; i < n; i++) {
		if (s[i] == '\n')
			o[k++] = '\r';
		o[k++] = s[i];
	}
	o[k] = '\0';
	return o;
}

struct tmsg {
	char		*text;
	size_t		 len;
	struct imap_msg	*m;
};

static void
tmsg_open(struct tmsg *t, const char *lf_text)
{
	t->text = crlf(lf_text);
	t->len = strlen(t->text);
	assert_int_equal(imap_msg_parse(&t->m, (unsigned char *)t->text,
	    t->len), 0);
}

static void
tmsg_open_raw(struct tmsg *t, const char *text, size_t len)
{
	t->text = xmemdup(text, len + 1);
	t->len = len;
	assert_int_equal(imap_msg_parse(&t->m, (unsigned char *)t->text,
	    t->len), 0);
}

static void
tmsg_close(struct tmsg *t)
{
	imap_msg_free(&t->m);
	assert_null(t->m);
	free(t->text);
}

static char *
bodystructure(const struct imap_msg *m, int ext, int utf8)
{
	struct buf	b;

	buf_init(&b, SIZE_MAX / 2);
	assert_int_equal(imap_msg_bodystructure(&b, m, ext, utf8), 0);
	return buf_steal(&b, NULL);
}

static char *
envelope(const struct imap_msg *m, int utf8)
{
	struct buf	b;

	buf_init(&b, SIZE_MAX / 2);
	assert_int_equal(imap_msg_envelope(&b, m, utf8), 0);
	return buf_steal(&b, NULL);
}

static void
check_structure(const char *msg, const char *body, const char *bs)
{
	struct tmsg	 t;
	char		*s;

	tmsg_open(&t, msg);
	s = bodystructure(t.m, 0, 0);
	assert_string_equal(s, body);
	free(s);
	s = bodystructure(t.m, 1, 0);
	assert_string_equal(s, bs);
	free(s);
	tmsg_close(&t);
}

static void
check_envelope(const char *msg, int utf8, const char *env)
{
	struct tmsg	 t;
	char		*s;

	tmsg_open(&t, msg);
	s = envelope(t.m, utf8);
	assert_string_equal(s, env);
	free(s);
	tmsg_close(&t);
}

/* Section "1.2" style numbers and a kind; fields NULL-terminated. */
static char *
section(const struct imap_msg *m, const char *nums, enum imap_sect_kind k,
    const char **fields, size_t *len)
{
	struct imap_section	s;
	struct buf		b;
	const char		*p = nums;
	char			*end;

	memset(&s, 0, sizeof(s));
	while (*p != '\0') {
		assert_true(s.npart < IMAP_SECT_DEPTH_MAX);
		s.part[s.npart++] = (uint32_t)strtoul(p, &end, 10);
		assert_true(end > p && (*end == '.' || *end == '\0'));
		p = *end == '.' ? end + 1 : end;
	}
	s.kind = k;
	s.fields = fields;
	while (fields != NULL && fields[s.nfields] != NULL)
		s.nfields++;
	buf_init(&b, SIZE_MAX / 2);
	assert_int_equal(imap_msg_section(&b, m, &s), 0);
	(void)buf_append(&b, "", 0);
	return buf_steal(&b, len);
}

static void
check_section(const struct imap_msg *m, const char *nums,
    enum imap_sect_kind k, const char **fields, const char *lf_want)
{
	char	*got, *want = crlf(lf_want);
	size_t	 len;

	got = section(m, nums, k, fields, &len);
	assert_int_equal(len, strlen(want));
	assert_string_equal(got, want);
	free(got);
	free(want);
}

static size_t
count(const char *hay, const char *needle)
{
	size_t	n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

/* ------------------------------------------------- Dovecot's vectors */

static const struct {
	const char	*msg, *body, *bs;
} dovecot[] = {
	{ "From: user@domain.org\n"
	  "Date: Sat, 24 Mar 2017 23:00:00 +0200\n"
	  "Mime-Version: 1.0\n"
	  "Content-Type: text/plain; charset=us-ascii\n"
	  "\n"
	  "body\n",
	  "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1)",
	  "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1"
	  " NIL NIL NIL NIL)" },
	{ "From: user@domain.org\n"
	  "Date: Sat, 24 Mar 2017 23:00:00 +0200\n"
	  "Mime-Version: 1.0\n"
	  "Content-Type: text/plain; charset=utf-8\n"
	  "Content-Transfer-Encoding: 8bit\n"
	  "\n"
	  "body\n"
	  "\n",
	  "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"8bit\" 8 2)",
	  "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"8bit\" 8 2"
	  " NIL NIL NIL NIL)" },
	{ "From: user@domain.org\n"
	  "Date: Sat, 24 Mar 2007 23:00:00 +0200\n"
	  "Mime-Version: 1.0\n"
	  "Content-Type: multipart/mixed; boundary=\"foo\n"
	  " bar\"\n"
	  "\n"
	  "--foo bar\n"
	  "Content-Type: text/x-myown; charset=us-ascii\n"
	  "\n"
	  "hello\n"
	  "\n"
	  "--foo bar--\n"
	  "\n",
	  "((\"text\" \"x-myown\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 1)"
	  " \"mixed\")",
	  "((\"text\" \"x-myown\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 1"
	  " NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"foo bar\") NIL NIL NIL)" },
	{ "From: user@domain.org\n"
	  "Date: Sat, 24 Mar 2017 23:00:00 +0200\n"
	  "Mime-Version: 1.0\n"
	  "Content-Type: multipart/mixed; boundary=\"foo bar\"\n"
	  "\n"
	  "--foo bar\n"
	  "Content-Type: text/plain; charset=us-ascii\n"
	  "Content-ID: <A.frop.example.com>\n"
	  "Content-Description: Container message\n"
	  "\n"
	  "See attached...\n"
	  "\n"
	  "--foo bar\n"
	  "Content-Type: message/rfc822\n"
	  "Content-ID: <B.frop.example.com>\n"
	  "Content-Description: Forwarded\n"
	  "\n"
	  "From: user@domain.org\n"
	  "Date: Sat, 24 Mar 2017 23:00:00 +0200\n"
	  "Mime-Version: 1.0\n"
	  "Content-Type: text/plain; charset=us-ascii\n"
	  "\n"
	  "body\n"
	  "\n"
	  "--foo bar--\n",
	  "((\"text\" \"plain\" (\"charset\" \"us-ascii\") \"<A.frop.example.com>\""
	  " \"Container message\" \"7bit\" 17 1)(\"message\" \"rfc822\" NIL"
	  " \"<B.frop.example.com>\" \"Forwarded\" \"7bit\" 133"
	  " (\"Sat, 24 Mar 2017 23:00:00 +0200\" NIL ((NIL NIL \"user\""
	  " \"domain.org\")) ((NIL NIL \"user\" \"domain.org\")) ((NIL NIL"
	  " \"user\" \"domain.org\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\""
	  " (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1) 6) \"mixed\")",
	  "((\"text\" \"plain\" (\"charset\" \"us-ascii\") \"<A.frop.example.com>\""
	  " \"Container message\" \"7bit\" 17 1 NIL NIL NIL NIL)(\"message\""
	  " \"rfc822\" NIL \"<B.frop.example.com>\" \"Forwarded\" \"7bit\" 133"
	  " (\"Sat, 24 Mar 2017 23:00:00 +0200\" NIL ((NIL NIL \"user\""
	  " \"domain.org\")) ((NIL NIL \"user\" \"domain.org\")) ((NIL NIL"
	  " \"user\" \"domain.org\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\""
	  " (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 NIL NIL NIL NIL) 6"
	  " NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"foo bar\") NIL NIL NIL)" },
	{ "From: user@domain.org\n"
	  "Date: Sat, 24 Mar 2017 23:00:00 +0200\n"
	  "Mime-Version: 1.0\n"
	  "Content-Type: multipart/mixed; boundary=\"foo bar\"\n"
	  "\n"
	  "--foo bar\n"
	  "Content-Type: text/plain; charset=us-ascii; format=\"flowed\";\n"
	  "  delsp=\"no\"\n"
	  "Content-Language: la\n"
	  "\n"
	  "Lorem ipsum\n"
	  "\n"
	  "--foo bar\n"
	  "Content-Type: image/png\n"
	  "Content-Transfer-Encoding: base64\n"
	  "Content-Disposition: attachment; filename=\"pigeon.png\"\n"
	  "\n"
	  "iVBORw0KGgo=\n"
	  "--foo bar--\n",
	  "((\"text\" \"plain\" (\"charset\" \"us-ascii\" \"format\" \"flowed\""
	  " \"delsp\" \"no\") NIL NIL \"7bit\" 13 1)(\"image\" \"png\" NIL NIL"
	  " NIL \"base64\" 12) \"mixed\")",
	  "((\"text\" \"plain\" (\"charset\" \"us-ascii\" \"format\" \"flowed\""
	  " \"delsp\" \"no\") NIL NIL \"7bit\" 13 1 NIL NIL (\"la\") NIL)"
	  "(\"image\" \"png\" NIL NIL NIL \"base64\" 12 NIL (\"attachment\""
	  " (\"filename\" \"pigeon.png\")) NIL NIL) \"mixed\" (\"boundary\""
	  " \"foo bar\") NIL NIL NIL)" },
	{ "Content-Type: multipart/mixed; boundary=\"foo\"\n"
	  "\n",
	  "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
	  " \"mixed\")",
	  "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0"
	  " NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"foo\") NIL NIL NIL)" },
};

static void
test_mailsrv_imap_msg__dovecot_vectors(void **state)
{
	size_t	i;

	for (i = 0; i < sizeof(dovecot) / sizeof(dovecot[0]); i++)
		check_structure(dovecot[i].msg, dovecot[i].body, dovecot[i].bs);
}

/* Dovecot's biggest vector: prologue, epilogues, invalid CTE, nesting. */
static const char nested_msg[] =
	"From: user@domain.org\n"
	"Date: Sat, 24 Mar 2007 23:00:00 +0200\n"
	"Mime-Version: 1.0\n"
	"Content-Type: multipart/mixed; boundary=\"foo\n"
	" bar\"\n"
	"\n"
	"Root MIME prologue\n"
	"\n"
	"--foo bar\n"
	"Content-Type: text/x-myown; charset=us-ascii; foo=\"quoted\\\"string\"\n"
	"Content-ID: <foo@example.com>\n"
	"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
	"Content-Disposition: inline; foo=bar\n"
	"Content-Description: hellodescription\n"
	"Content-Language: en, fi, se\n"
	"Content-Location: http://example.com/test.txt\n"
	"\n"
	"hello\n"
	"\n"
	"--foo bar\n"
	"Content-Type: message/rfc822\n"
	"\n"
	"From: sub@domain.org\n"
	"To: sub-to1@domain.org, sub-to2@domain.org\n"
	"Date: Sun, 12 Aug 2012 12:34:56 +0300\n"
	"Subject: submsg\n"
	"Content-Type: multipart/alternative; boundary=\"sub1\"\n"
	"\n"
	"Sub MIME prologue\n"
	"--sub1\n"
	"Content-Type: text/html\n"
	"Content-Transfer-Encoding: 8bit\n"
	"\n"
	"<p>Hello world</p>\n"
	"\n"
	"--sub1\n"
	"Content-Type: text/plain\n"
	"Content-Transfer-Encoding: ?invalid\n"
	"\n"
	"Hello another world\n"
	"\n"
	"--sub1--\n"
	"Sub MIME epilogue\n"
	"\n"
	"--foo bar--\n"
	"Root MIME epilogue\n";

static void
test_mailsrv_imap_msg__dovecot_nested(void **state)
{
	struct tmsg	t;

	check_structure(nested_msg,
	    "((\"text\" \"x-myown\" (\"charset\" \"us-ascii\" \"foo\""
	    " \"quoted\\\"string\") \"<foo@example.com>\" \"hellodescription\""
	    " \"7bit\" 7 1)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 412"
	    " (\"Sun, 12 Aug 2012 12:34:56 +0300\" \"submsg\" ((NIL NIL \"sub\""
	    " \"domain.org\")) ((NIL NIL \"sub\" \"domain.org\")) ((NIL NIL"
	    " \"sub\" \"domain.org\")) ((NIL NIL \"sub-to1\" \"domain.org\")"
	    "(NIL NIL \"sub-to2\" \"domain.org\")) NIL NIL NIL NIL) ((\"text\""
	    " \"html\" (\"charset\" \"us-ascii\") NIL NIL \"8bit\" 20 1)"
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 21"
	    " 1) \"alternative\") 21) \"mixed\")",
	    "((\"text\" \"x-myown\" (\"charset\" \"us-ascii\" \"foo\""
	    " \"quoted\\\"string\") \"<foo@example.com>\" \"hellodescription\""
	    " \"7bit\" 7 1 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" (\"inline\" (\"foo\""
	    " \"bar\")) (\"en\" \"fi\" \"se\") \"http://example.com/test.txt\")"
	    "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 412 (\"Sun, 12 Aug"
	    " 2012 12:34:56 +0300\" \"submsg\" ((NIL NIL \"sub\""
	    " \"domain.org\")) ((NIL NIL \"sub\" \"domain.org\")) ((NIL NIL"
	    " \"sub\" \"domain.org\")) ((NIL NIL \"sub-to1\" \"domain.org\")"
	    "(NIL NIL \"sub-to2\" \"domain.org\")) NIL NIL NIL NIL) ((\"text\""
	    " \"html\" (\"charset\" \"us-ascii\") NIL NIL \"8bit\" 20 1 NIL NIL"
	    " NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL"
	    " \"7bit\" 21 1 NIL NIL NIL NIL) \"alternative\" (\"boundary\""
	    " \"sub1\") NIL NIL NIL) 21 NIL NIL NIL NIL) \"mixed\""
	    " (\"boundary\" \"foo bar\") NIL NIL NIL)");
	/* sections inside the enclosed multipart */
	tmsg_open(&t, nested_msg);
	check_section(t.m, "2.1", IMAP_SECT_ALL, NULL,
	    "<p>Hello world</p>\n");
	check_section(t.m, "2.2", IMAP_SECT_ALL, NULL,
	    "Hello another world\n");
	check_section(t.m, "2.2", IMAP_SECT_MIME, NULL,
	    "Content-Type: text/plain\n"
	    "Content-Transfer-Encoding: ?invalid\n\n");
	check_section(t.m, "2", IMAP_SECT_HEADER_FIELDS,
	    (const char *[]){ "subject", "FROM", NULL },
	    "From: sub@domain.org\nSubject: submsg\n\n");
	check_section(t.m, "2.3", IMAP_SECT_ALL, NULL, "");
	check_section(t.m, "1", IMAP_SECT_ALL, NULL, "hello\n");
	tmsg_close(&t);
}

/* --------------------------------------------------- simple message */

/* RFC 5322 A.1.2, with a folded Subject. */
static const char simple_msg[] =
	"From: \"Joe Q. Public\" <john.q.public@example.com>\n"
	"To: Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>\n"
	"Cc: <boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>\n"
	"Date: Tue, 1 Jul 2003 10:52:37 +0200\n"
	"Message-ID: <5678.21-Nov-1997@example.com>\n"
	"Subject: Hello\n"
	" world\n"
	"\n"
	"Hi everyone.\n";

static void
test_mailsrv_imap_msg__simple(void **state)
{
	struct tmsg	t;

	check_envelope(simple_msg, 0,
	    "(\"Tue, 1 Jul 2003 10:52:37 +0200\" \"Hello world\""
	    " ((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\"))"
	    " ((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\"))"
	    " ((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\"))"
	    " ((\"Mary Smith\" NIL \"mary\" \"x.test\")(NIL NIL \"jdoe\""
	    " \"example.org\")(\"Who?\" NIL \"one\" \"y.test\"))"
	    " ((NIL NIL \"boss\" \"nil.test\")(\"Giant; \\\"Big\\\" Box\" NIL"
	    " \"sysservices\" \"example.net\")) NIL NIL"
	    " \"<5678.21-Nov-1997@example.com>\")");
	/* no MIME-Version, no Content-Type: text/plain us-ascii */
	check_structure(simple_msg,
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\""
	    " 14 1)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\""
	    " 14 1 NIL NIL NIL NIL)");

	tmsg_open(&t, simple_msg);
	check_section(t.m, "", IMAP_SECT_HEADER, NULL,
	    "From: \"Joe Q. Public\" <john.q.public@example.com>\n"
	    "To: Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>\n"
	    "Cc: <boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>\n"
	    "Date: Tue, 1 Jul 2003 10:52:37 +0200\n"
	    "Message-ID: <5678.21-Nov-1997@example.com>\n"
	    "Subject: Hello\n"
	    " world\n"
	    "\n");
	check_section(t.m, "", IMAP_SECT_TEXT, NULL, "Hi everyone.\n");
	check_section(t.m, "", IMAP_SECT_ALL, NULL, simple_msg);
	/* message order, not request order; folded field whole */
	check_section(t.m, "", IMAP_SECT_HEADER_FIELDS,
	    (const char *[]){ "subject", "FROM", "X-None", NULL },
	    "From: \"Joe Q. Public\" <john.q.public@example.com>\n"
	    "Subject: Hello\n world\n\n");
	check_section(t.m, "", IMAP_SECT_HEADER_FIELDS_NOT,
	    (const char *[]){ "To", "cc", "Date", "Message-Id", NULL },
	    "From: \"Joe Q. Public\" <john.q.public@example.com>\n"
	    "Subject: Hello\n world\n\n");
	check_section(t.m, "", IMAP_SECT_HEADER_FIELDS,
	    (const char *[]){ "X-None", NULL }, "\n");
	/* part 1 of a non-multipart is its body; 1.MIME its header */
	check_section(t.m, "1", IMAP_SECT_ALL, NULL, "Hi everyone.\n");
	check_section(t.m, "2", IMAP_SECT_ALL, NULL, "");
	check_section(t.m, "1.1", IMAP_SECT_ALL, NULL, "");
	check_section(t.m, "1", IMAP_SECT_HEADER, NULL, "");
	check_section(t.m, "1", IMAP_SECT_TEXT, NULL, "");
	check_section(t.m, "0", IMAP_SECT_ALL, NULL, "");
	tmsg_close(&t);
}

static void
test_mailsrv_imap_msg__section_errors(void **state)
{
	struct imap_section	s;
	struct tmsg		t;
	struct buf		b;

	tmsg_open(&t, simple_msg);
	buf_init(&b, 64);
	memset(&s, 0, sizeof(s));
	s.kind = IMAP_SECT_MIME;
	assert_int_equal(imap_msg_section(&b, t.m, &s), ERR_INVAL);
	s.kind = IMAP_SECT_ALL;
	s.npart = IMAP_SECT_DEPTH_MAX + 1;
	assert_int_equal(imap_msg_section(&b, t.m, &s), ERR_INVAL);
	assert_int_equal(imap_msg_binary(&b, t.m, &s), ERR_INVAL);
	/* the buffer's max */
	s.npart = 0;
	assert_int_equal(imap_msg_section(&b, t.m, &s), ERR_TOOBIG);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	tmsg_close(&t);
}

/* ------------------------------------------ multipart with attachments */

static const char mixed_msg[] =
	"From: a@example.com\n"
	"To: b@example.com\n"
	"Subject: mixed\n"
	"MIME-Version: 1.0\n"
	"Content-Type: multipart/mixed; boundary=\"XX\"\n"
	"\n"
	"preamble\n"
	"--XX\n"
	"Content-Type: multipart/alternative; boundary=YY\n"
	"\n"
	"--YY\n"
	"Content-Type: text/plain; charset=utf-8\n"
	"Content-Transfer-Encoding: quoted-printable\n"
	"\n"
	"caf=C3=A9 au lait, soft=\n"
	" break\n"
	"--YY\n"
	"Content-Type: text/html; charset=utf-8\n"
	"\n"
	"<b>caf&eacute;</b>\n"
	"--YY--\n"
	"--XX\n"
	"Content-Type: application/pdf; name=\"r.pdf\"\n"
	"Content-Transfer-Encoding: base64\n"
	"Content-Disposition: attachment; filename*0=\"very long \";"
	" filename*1=\"name.pdf\"\n"
	"\n"
	"SGVsbG8sIFBERiEA\n"
	"AQI=\n"
	"--XX\n"
	"Content-Type: text/plain; name*=utf-8''%E2%82%AC.txt\n"
	"Content-Disposition: attachment; filename*=utf-8''%E2%82%AC.txt\n"
	"Content-Transfer-Encoding: base64\n"
	"\n"
	"RXVybyB0ZXh0IGJvZHk=\n"
	"--XX--\n"
	"epilogue\n";

static void
test_mailsrv_imap_msg__multipart_mixed(void **state)
{
	struct tmsg	t;

	check_structure(mixed_msg,
	    "(((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL"
	    " \"quoted-printable\" 32 1)(\"text\" \"html\" (\"charset\""
	    " \"utf-8\") NIL NIL \"7bit\" 18 0) \"alternative\")"
	    "(\"application\" \"pdf\" (\"name\" \"r.pdf\") NIL NIL \"base64\""
	    " 22)(\"text\" \"plain\" (\"name*\" \"utf-8''%E2%82%AC.txt\""
	    " \"charset\" \"us-ascii\") NIL NIL \"base64\" 20 0) \"mixed\")",
	    "(((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL"
	    " \"quoted-printable\" 32 1 NIL NIL NIL NIL)(\"text\" \"html\""
	    " (\"charset\" \"utf-8\") NIL NIL \"7bit\" 18 0 NIL NIL NIL NIL)"
	    " \"alternative\" (\"boundary\" \"YY\") NIL NIL NIL)"
	    "(\"application\" \"pdf\" (\"name\" \"r.pdf\") NIL NIL \"base64\""
	    " 22 NIL (\"attachment\" (\"filename\" \"very long name.pdf\"))"
	    " NIL NIL)(\"text\" \"plain\" (\"name*\""
	    " \"utf-8''%E2%82%AC.txt\" \"charset\" \"us-ascii\") NIL NIL"
	    " \"base64\" 20 0 NIL (\"attachment\" (\"filename*\""
	    " \"utf-8''%E2%82%AC.txt\")) NIL NIL) \"mixed\" (\"boundary\""
	    " \"XX\") NIL NIL NIL)");
	tmsg_open(&t, mixed_msg);
	check_section(t.m, "1", IMAP_SECT_ALL, NULL,
	    "--YY\n"
	    "Content-Type: text/plain; charset=utf-8\n"
	    "Content-Transfer-Encoding: quoted-printable\n"
	    "\n"
	    "caf=C3=A9 au lait, soft=\n"
	    " break\n"
	    "--YY\n"
	    "Content-Type: text/html; charset=utf-8\n"
	    "\n"
	    "<b>caf&eacute;</b>\n"
	    "--YY--");
	check_section(t.m, "1.1", IMAP_SECT_ALL, NULL,
	    "caf=C3=A9 au lait, soft=\n break");
	check_section(t.m, "1.2", IMAP_SECT_ALL, NULL, "<b>caf&eacute;</b>");
	check_section(t.m, "1.2", IMAP_SECT_MIME, NULL,
	    "Content-Type: text/html; charset=utf-8\n\n");
	check_section(t.m, "1", IMAP_SECT_MIME, NULL,
	    "Content-Type: multipart/alternative; boundary=YY\n\n");
	check_section(t.m, "3", IMAP_SECT_ALL, NULL, "RXVybyB0ZXh0IGJvZHk=");
	check_section(t.m, "1.3", IMAP_SECT_ALL, NULL, "");
	check_section(t.m, "4", IMAP_SECT_ALL, NULL, "");
	/* part 1 of a leaf is the leaf (Dovecot) */
	check_section(t.m, "2.1", IMAP_SECT_ALL, NULL, "SGVsbG8sIFBERiEA\nAQI=");
	check_section(t.m, "2.2", IMAP_SECT_ALL, NULL, "");
	check_section(t.m, "", IMAP_SECT_TEXT, NULL,
	    strstr(mixed_msg, "preamble"));
	tmsg_close(&t);
}

static char *
binary(const struct imap_msg *m, const char *nums, size_t *len, int *rc)
{
	struct imap_section	s;
	struct buf		b;
	const char		*p = nums;
	char			*end;

	memset(&s, 0, sizeof(s));
	while (*p != '\0') {
		s.part[s.npart++] = (uint32_t)strtoul(p, &end, 10);
		p = *end == '.' ? end + 1 : end;
	}
	buf_init(&b, SIZE_MAX / 2);
	*rc = imap_msg_binary(&b, m, &s);
	(void)buf_append(&b, "", 0);
	return buf_steal(&b, len);
}

static void
test_mailsrv_imap_msg__binary(void **state)
{
	struct tmsg	 t;
	size_t		 len;
	char		*s;
	int		 rc;

	tmsg_open(&t, mixed_msg);
	s = binary(t.m, "1.1", &len, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(s, "caf\xc3\xa9 au lait, soft break");
	free(s);
	s = binary(t.m, "2", &len, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(len, 14);
	assert_memory_equal(s, "Hello, PDF!\0\x01\x02", 14);
	free(s);
	s = binary(t.m, "3", &len, &rc);
	assert_string_equal(s, "Euro text body");
	free(s);
	s = binary(t.m, "1.2", &len, &rc);
	assert_string_equal(s, "<b>caf&eacute;</b>");
	free(s);
	s = binary(t.m, "9", &len, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(len, 0);
	free(s);
	s = binary(t.m, "", &len, &rc);
	assert_int_equal(len, t.len);
	free(s);
	tmsg_close(&t);

	tmsg_open(&t, "Content-Type: text/plain\n"
	    "Content-Transfer-Encoding: x-uuencode\n\nbegin 644 x\n");
	s = binary(t.m, "1", &len, &rc);
	assert_int_equal(rc, ERR_PROTO);
	free(s);
	tmsg_close(&t);

	/* QP: trailing white space dropped, "=" kept when not an escape */
	tmsg_open(&t, "Content-Type: text/plain\n"
	    "Content-Transfer-Encoding: Quoted-Printable\n\n"
	    "a = b=3D  \nc=20\nd=  \n=4x=\n");
	s = binary(t.m, "1", &len, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(s, "a = b=\r\nc \r\nd=4x");
	free(s);
	tmsg_close(&t);
}

/* ---------------------------------------- message/rfc822, RFC 2047 */

static const char fwd_msg[] =
	"From: outer@example.com\n"
	"Subject: fwd\n"
	"MIME-Version: 1.0\n"
	"Content-Type: multipart/mixed; boundary=b1\n"
	"\n"
	"--b1\n"
	"Content-Type: text/plain\n"
	"\n"
	"see attached\n"
	"--b1\n"
	"Content-Type: message/rfc822\n"
	"Content-Description: forwarded\n"
	"\n"
	"From: =?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>\n"
	"To: undisclosed-recipients:;\n"
	"Subject: =?utf-8?B?w6l0w6k=?=\n"
	"Date: 2 Jan 2020 03:04:05 -0000\n"
	"\n"
	"inner body\n"
	"--b1--\n";

static void
test_mailsrv_imap_msg__message_rfc822(void **state)
{
	struct tmsg	t;

	check_structure(fwd_msg,
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\""
	    " 12 0)(\"message\" \"rfc822\" NIL NIL \"forwarded\" \"7bit\" 167"
	    " (\"2 Jan 2020 03:04:05 -0000\" \"=?utf-8?B?w6l0w6k=?=\""
	    " ((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\" NIL \"keld\""
	    " \"dkuug.dk\")) ((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\" NIL"
	    " \"keld\" \"dkuug.dk\")) ((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\""
	    " NIL \"keld\" \"dkuug.dk\")) ((NIL NIL \"undisclosed-recipients\""
	    " NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL) (\"text\" \"plain\""
	    " (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0) 5) \"mixed\")",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\""
	    " 12 0 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL"
	    " \"forwarded\" \"7bit\" 167 (\"2 Jan 2020 03:04:05 -0000\""
	    " \"=?utf-8?B?w6l0w6k=?=\" ((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\""
	    " NIL \"keld\" \"dkuug.dk\")) ((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\""
	    " NIL \"keld\" \"dkuug.dk\")) ((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\""
	    " NIL \"keld\" \"dkuug.dk\")) ((NIL NIL \"undisclosed-recipients\""
	    " NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL) (\"text\" \"plain\""
	    " (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0 NIL NIL NIL NIL)"
	    " 5 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b1\") NIL NIL NIL)");
	tmsg_open(&t, fwd_msg);
	check_section(t.m, "2", IMAP_SECT_HEADER, NULL,
	    "From: =?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>\n"
	    "To: undisclosed-recipients:;\n"
	    "Subject: =?utf-8?B?w6l0w6k=?=\n"
	    "Date: 2 Jan 2020 03:04:05 -0000\n"
	    "\n");
	check_section(t.m, "2", IMAP_SECT_TEXT, NULL, "inner body");
	check_section(t.m, "2.1", IMAP_SECT_ALL, NULL, "inner body");
	check_section(t.m, "2.1.1", IMAP_SECT_ALL, NULL, "");
	check_section(t.m, "2", IMAP_SECT_ALL, NULL,
	    "From: =?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>\n"
	    "To: undisclosed-recipients:;\n"
	    "Subject: =?utf-8?B?w6l0w6k=?=\n"
	    "Date: 2 Jan 2020 03:04:05 -0000\n"
	    "\n"
	    "inner body");
	check_section(t.m, "2", IMAP_SECT_MIME, NULL,
	    "Content-Type: message/rfc822\n"
	    "Content-Description: forwarded\n\n");
	check_section(t.m, "2", IMAP_SECT_HEADER_FIELDS_NOT,
	    (const char *[]){ "From", "To", "Date", NULL },
	    "Subject: =?utf-8?B?w6l0w6k=?=\n\n");
	check_section(t.m, "1", IMAP_SECT_HEADER, NULL, "");
	check_section(t.m, "1", IMAP_SECT_TEXT, NULL, "");
	tmsg_close(&t);
}

/* RFC 2047 8 examples: raw in ENVELOPE, decoded for SEARCH. */
static const char rfc2047_msg[] =
	"From: =?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>\n"
	"To: =?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>\n"
	"CC: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>\n"
	"Subject: =?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\n"
	" =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=\n"
	"X-Mixed: caf\xc3\xa9 =?utf-8?q?CR=C3=88ME?=\n"
	"\n"
	"plain body\n";

static void
test_mailsrv_imap_msg__rfc2047(void **state)
{
	struct tmsg	t;

	check_envelope(rfc2047_msg, 0,
	    "(NIL \"=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?="
	    " =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=\""
	    " ((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\" NIL \"keld\""
	    " \"dkuug.dk\")) ((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\" NIL"
	    " \"keld\" \"dkuug.dk\")) ((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\""
	    " NIL \"keld\" \"dkuug.dk\")) ((\"=?US-ASCII?Q?Keith_Moore?=\" NIL"
	    " \"moore\" \"cs.utk.edu\")) ((\"=?ISO-8859-1?Q?Andr=E9?= Pirard\""
	    " NIL \"PIRARD\" \"vm1.ulg.ac.be\")) NIL NIL NIL)");
	tmsg_open(&t, rfc2047_msg);
	assert_int_equal(imap_msg_header_match(t.m, "subject",
	    "YOU UNDERSTAND", 14), 1);
	assert_int_equal(imap_msg_header_match(t.m, "Subject", "SWYg", 4), 0);
	assert_int_equal(imap_msg_header_match(t.m, "From",
	    "J\xc3\x98RN", 5), 1);			/* Ø folds to ø */
	assert_int_equal(imap_msg_header_match(t.m, "cc", "andr\xc3\xa9", 6),
	    1);
	assert_int_equal(imap_msg_header_match(t.m, "X-Mixed",
	    "CAF\xc3\x89 cr\xc3\xa8me", 12), 1);
	assert_int_equal(imap_msg_header_match(t.m, "To", "", 0), 1);
	assert_int_equal(imap_msg_header_match(t.m, "Bcc", "", 0), 0);
	assert_int_equal(imap_msg_header_match(t.m, "From", "moore", 5), 0);
	assert_int_equal(imap_msg_header_match(t.m, NULL, "moore", 5), 1);
	assert_int_equal(imap_msg_text_match(t.m, "keith moore", 11, 1), 1);
	assert_int_equal(imap_msg_text_match(t.m, "keith moore", 11, 0), 0);
	assert_int_equal(imap_msg_text_match(t.m, "PLAIN BODY", 10, 0), 1);
	tmsg_close(&t);
}

/* ------------------------------------------------ 8-bit, literals */

static const char eightbit_msg[] =
	"From: J\xc3\xb6rg <j@x.de>\n"
	"Subject: Gr\xc3\xbc\xc3\x9f" "e\n"
	"MIME-Version: 1.0\n"
	"Content-Type: text/plain; charset=utf-8\n"
	"Content-Transfer-Encoding: 8bit\n"
	"\n"
	"Gr\xc3\xb6\xc3\x9f" "e\n";

static void
test_mailsrv_imap_msg__eightbit(void **state)
{
	struct tmsg	t;

	check_envelope(eightbit_msg, 0,
	    "(NIL {7}\r\nGr\xc3\xbc\xc3\x9f" "e (({5}\r\nJ\xc3\xb6rg NIL \"j\""
	    " \"x.de\")) (({5}\r\nJ\xc3\xb6rg NIL \"j\" \"x.de\")) (({5}\r\n"
	    "J\xc3\xb6rg NIL \"j\" \"x.de\")) NIL NIL NIL NIL NIL)");
	check_envelope(eightbit_msg, 1,
	    "(NIL \"Gr\xc3\xbc\xc3\x9f" "e\" ((\"J\xc3\xb6rg\" NIL \"j\""
	    " \"x.de\")) ((\"J\xc3\xb6rg\" NIL \"j\" \"x.de\")) ((\"J\xc3\xb6rg\""
	    " NIL \"j\" \"x.de\")) NIL NIL NIL NIL NIL)");
	check_structure(eightbit_msg,
	    "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"8bit\" 9 1)",
	    "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"8bit\" 9 1"
	    " NIL NIL NIL NIL)");
	tmsg_open(&t, eightbit_msg);
	assert_int_equal(imap_msg_text_match(t.m, "GR\xc3\x96\xc3\x9f", 6, 0),
	    1);
	assert_int_equal(imap_msg_text_match(t.m, "gr\xc3\xbc", 4, 0), 0);
	assert_int_equal(imap_msg_text_match(t.m, "gr\xc3\xbc", 4, 1), 1);
	tmsg_close(&t);

	/* invalid UTF-8 is a literal even with utf8 */
	check_envelope("Subject: a\xff" "b\n\n", 1,
	    "(NIL {3}\r\na\xff" "b NIL NIL NIL NIL NIL NIL NIL NIL)");
}

/* ------------------------------------------------- case folding */

/*
 * Kazakh (Cyrillic Extended: Қ Ә), Vietnamese (3-byte Latin Extended
 * Additional: Ệ), Armenian, Greek final sigma, German sharp s, and a
 * letter written precomposed in the text but decomposed in the needle.
 */
static const char casefold_msg[] =
	"Subject: \xd2\x9a\xd0\xb0\xd0\xb7\xd0\xb0\xd2\x9b\xd1\x81\xd1\x82\xd0\xb0"
	    "\xd0\xbd \xd3\x99\xd0\xba\xd1\x96\xd0\xbc\xd0\xb4\xd1\x96\xd0\xb3\xd1\x96\n"
	"MIME-Version: 1.0\n"
	"Content-Type: text/plain; charset=utf-8\n"
	"Content-Transfer-Encoding: 8bit\n"
	"\n"
	"Vi\xe1\xbb\x87t Nam, \xd5\x80\xd5\xa1\xd5\xb5\xd5\xa1\xd5\xbd\xd5\xbf\xd5\xa1\xd5\xb6,"
	    " \xcf\x83\xce\xbf\xcf\x86\xce\xbf\xcf\x82, Stra\xc3\x9f" "e, caf\xc3\xa9\n";

static void
test_mailsrv_imap_msg__casefold(void **state)
{
	struct tmsg	t;

	tmsg_open(&t, casefold_msg);
	/* ҚАЗАҚСТАН in capitals finds Қазақстан */
	assert_int_equal(imap_msg_header_match(t.m, "Subject",
	    "\xd2\x9a\xd0\x90\xd0\x97\xd0\x90\xd2\x9a\xd0\xa1\xd0\xa2\xd0\x90\xd0\x9d",
	    18), 1);
	/* ӘКІМДІГІ finds әкімдігі */
	assert_int_equal(imap_msg_header_match(t.m, "Subject",
	    "\xd3\x98\xd0\x9a\xd0\x86\xd0\x9c\xd0\x94\xd0\x86\xd0\x93\xd0\x86", 16), 1);
	/* VIỆT finds Việt */
	assert_int_equal(imap_msg_text_match(t.m, "VI\xe1\xbb\x86T", 6, 0), 1);
	/* ՀԱՅԱՍՏԱՆ finds Հայաստան */
	assert_int_equal(imap_msg_text_match(t.m,
	    "\xd5\x80\xd4\xb1\xd5\x85\xd4\xb1\xd5\x8d\xd5\x8f\xd4\xb1\xd5\x86", 16, 0),
	    1);
	/* ΣΟΦΟΣ finds σοφος with a final sigma */
	assert_int_equal(imap_msg_text_match(t.m,
	    "\xce\xa3\xce\x9f\xce\xa6\xce\x9f\xce\xa3", 10, 0), 1);
	/* STRASSE finds Straße; CAFE + combining acute finds café */
	assert_int_equal(imap_msg_text_match(t.m, "STRASSE", 7, 0), 1);
	assert_int_equal(imap_msg_text_match(t.m, "CAFE\xcc\x81", 6, 0), 1);
	/* and what is not there is not found */
	assert_int_equal(imap_msg_text_match(t.m, "VIET NAM", 8, 0), 0);
	assert_int_equal(imap_msg_text_match(t.m, "\xd2\x9a\xd0\x90\xd0\x97", 6, 0),
	    0);			/* ҚАЗ: header only, with_headers 0 */
	assert_int_equal(imap_msg_text_match(t.m, "\xd2\x9a\xd0\x90\xd0\x97", 6, 1),
	    1);
	tmsg_close(&t);

	/*
	 * Folded in pieces (runs of 16 ASCII bytes and more apart): a
	 * needle across the seams, and an accent after a long ASCII run.
	 */
	tmsg_open(&t, "Subject: \xc3\x9c 0123456789abcdefXYZ \xc3\x96"
	    " 0123456789abcdefe\xcc\x81\n\nx\n");
	assert_int_equal(imap_msg_header_match(t.m, "Subject",
	    "\xc3\xbc 0123456789ABCDEFxyz \xc3\xb6 0123", 30), 1);
	assert_int_equal(imap_msg_header_match(t.m, "Subject",
	    "CDEF\xc3\xa9", 6), 1);	/* É: e + U+0301 */
	assert_int_equal(imap_msg_header_match(t.m, "Subject",
	    "\xc3\xbc 0123456789ABCDEFxyz \xc3\xbc", 25), 0);
	tmsg_close(&t);
}

/* ------------------------------------------- QP and charset search */

static void
test_mailsrv_imap_msg__search_text(void **state)
{
	struct tmsg	t;

	tmsg_open(&t, mixed_msg);
	assert_int_equal(imap_msg_text_match(t.m, "CAF\xc3\x89 AU", 8, 0), 1);
	assert_int_equal(imap_msg_text_match(t.m, "soft break", 10, 0), 1);
	assert_int_equal(imap_msg_text_match(t.m, "euro TEXT", 9, 0), 1);
	/* application/pdf is not text; the preamble is no part */
	assert_int_equal(imap_msg_text_match(t.m, "Hello, PDF", 10, 0), 0);
	assert_int_equal(imap_msg_text_match(t.m, "preamble", 8, 0), 0);
	assert_int_equal(imap_msg_text_match(t.m, "mixed", 5, 0), 0);
	assert_int_equal(imap_msg_text_match(t.m, "Subject: MIXED", 14, 1), 1);
	assert_int_equal(imap_msg_text_match(t.m, "", 0, 0), 1);
	assert_int_equal(imap_msg_header_match(t.m, "Subject", "", 0), 1);
	tmsg_close(&t);

	tmsg_open(&t, "MIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=iso-8859-1\n"
	    "Content-Transfer-Encoding: quoted-printable\n\n"
	    "na=EFve caf=E9\n");
	assert_int_equal(imap_msg_text_match(t.m, "NA\xc3\x8fVE CAF\xc3\x89",
	    12, 0), 1);
	assert_int_equal(imap_msg_text_match(t.m, "=EF", 3, 0), 0);
	tmsg_close(&t);

	/* the enclosed message's header is body text */
	tmsg_open(&t, fwd_msg);
	assert_int_equal(imap_msg_text_match(t.m, "\xc3\x89T\xc3\x89", 5, 0),
	    1);
	assert_int_equal(imap_msg_text_match(t.m, "inner body", 10, 0), 1);
	assert_int_equal(imap_msg_header_match(t.m, "Subject", "fwd", 3), 1);
	assert_int_equal(imap_msg_header_match(t.m, "Subject", "\xc3\xa9t", 3),
	    0);
	tmsg_close(&t);
}

/* ---------------------------------------------------- deep nesting */

static const char deep_msg[] =
	"Content-Type: multipart/mixed; boundary=L1\n"
	"\n"
	"--L1\n"
	"Content-Type: multipart/alternative; boundary=L2\n"
	"\n"
	"--L2\n"
	"Content-Type: multipart/related; boundary=L3\n"
	"\n"
	"--L3\n"
	"Content-Type: text/html\n"
	"\n"
	"<img src=cid:x>\n"
	"--L3\n"
	"Content-Type: image/gif\n"
	"Content-ID: <x>\n"
	"Content-Transfer-Encoding: base64\n"
	"\n"
	"R0lGOA==\n"
	"--L3--\n"
	"--L2\n"
	"Content-Type: text/plain\n"
	"\n"
	"plain\n"
	"--L2--\n"
	"--L1\n"
	"\n"
	"default part\n"
	"--L1--\n";

static void
test_mailsrv_imap_msg__deep_nesting(void **state)
{
	struct tmsg	t;

	check_structure(deep_msg,
	    "((((\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15"
	    " 0)(\"image\" \"gif\" NIL \"<x>\" NIL \"base64\" 8) \"related\")"
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0)"
	    " \"alternative\")(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL"
	    " NIL \"7bit\" 12 0) \"mixed\")",
	    "((((\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15"
	    " 0 NIL NIL NIL NIL)(\"image\" \"gif\" NIL \"<x>\" NIL \"base64\" 8"
	    " NIL NIL NIL NIL) \"related\" (\"boundary\" \"L3\") NIL NIL NIL)"
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0"
	    " NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"L2\") NIL NIL NIL)"
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 12 0"
	    " NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"L1\") NIL NIL NIL)");
	tmsg_open(&t, deep_msg);
	check_section(t.m, "1.1.1", IMAP_SECT_ALL, NULL, "<img src=cid:x>");
	check_section(t.m, "1.1.2", IMAP_SECT_ALL, NULL, "R0lGOA==");
	check_section(t.m, "1.1.2", IMAP_SECT_MIME, NULL,
	    "Content-Type: image/gif\nContent-ID: <x>\n"
	    "Content-Transfer-Encoding: base64\n\n");
	check_section(t.m, "1.2", IMAP_SECT_ALL, NULL, "plain");
	check_section(t.m, "2", IMAP_SECT_ALL, NULL, "default part");
	check_section(t.m, "2", IMAP_SECT_MIME, NULL, "\n");
	check_section(t.m, "1.1.3", IMAP_SECT_ALL, NULL, "");
	check_section(t.m, "1.1.1.1", IMAP_SECT_ALL, NULL, "<img src=cid:x>");
	check_section(t.m, "1.1.1.2", IMAP_SECT_ALL, NULL, "");
	tmsg_close(&t);
}

/* n nested multiparts (boundaries b000...), a text leaf inside. */
static char *
nested_multiparts(size_t n)
{
	struct buf	b;
	size_t		i;

	buf_init(&b, SIZE_MAX / 2);
	for (i = 0; i < n; i++)
		(void)buf_printf(&b, "Content-Type: multipart/mixed;"
		    " boundary=b%03zu\r\n\r\n--b%03zu\r\n", i, i);
	(void)buf_printf(&b, "Content-Type: text/plain\r\n\r\nleaf\r\n");
	for (i = n; i-- > 0;)
		(void)buf_printf(&b, "--b%03zu--\r\n", i);
	return buf_steal(&b, NULL);
}

/* n nested message/rfc822, a text message inside. */
static char *
nested_messages(size_t n)
{
	struct buf	b;
	size_t		i;

	buf_init(&b, SIZE_MAX / 2);
	for (i = 0; i < n; i++)
		(void)buf_printf(&b, "Content-Type: message/rfc822\r\n\r\n");
	(void)buf_printf(&b, "Subject: in\r\n\r\nleaf\r\n");
	return buf_steal(&b, NULL);
}

static void
check_depth(char *text, const char *kind, size_t nkind, int opaque)
{
	struct tmsg	 t;
	char		*s;

	tmsg_open_raw(&t, text, strlen(text));
	free(text);
	s = bodystructure(t.m, 1, 0);
	assert_int_equal(count(s, kind), nkind);
	assert_int_equal(count(s, "\"application\" \"octet-stream\""),
	    opaque);
	assert_int_equal(count(s, "\"text\" \"plain\""), opaque ? 0 : 1);
	free(s);
	tmsg_close(&t);
}

static void
test_mailsrv_imap_msg__depth_limit(void **state)
{
	/* IMAP_MSG_DEPTH_MAX multiparts: all split, the leaf below */
	check_depth(nested_multiparts(IMAP_MSG_DEPTH_MAX), "\"mixed\"",
	    IMAP_MSG_DEPTH_MAX, 0);
	/* one more: the deepest is an opaque leaf */
	check_depth(nested_multiparts(IMAP_MSG_DEPTH_MAX + 1), "\"mixed\"",
	    IMAP_MSG_DEPTH_MAX, 1);
	check_depth(nested_messages(IMAP_MSG_DEPTH_MAX), "\"rfc822\"",
	    IMAP_MSG_DEPTH_MAX, 0);
	check_depth(nested_messages(IMAP_MSG_DEPTH_MAX + 1), "\"rfc822\"",
	    IMAP_MSG_DEPTH_MAX, 1);
}

static void
check_parts(size_t children, size_t want)
{
	struct tmsg	 t;
	struct buf	 b;
	char		*s;
	size_t		 i;

	buf_init(&b, SIZE_MAX / 2);
	(void)buf_printf(&b, "Content-Type: multipart/mixed; boundary=z\r\n"
	    "\r\n");
	for (i = 0; i < children; i++)
		(void)buf_printf(&b, "--z\r\n\r\n%zu\r\n", i);
	(void)buf_printf(&b, "--z--\r\n");
	tmsg_open_raw(&t, (char *)b.data, b.len);
	buf_free(&b);
	s = bodystructure(t.m, 0, 0);
	assert_int_equal(count(s, "(\"text\" \"plain\""), want);
	free(s);
	tmsg_close(&t);
}

static void
test_mailsrv_imap_msg__parts_limit(void **state)
{
	/* the root counts as a part */
	check_parts(IMAP_MSG_PARTS_MAX - 1, IMAP_MSG_PARTS_MAX - 1);
	check_parts(IMAP_MSG_PARTS_MAX, IMAP_MSG_PARTS_MAX - 1);
}

/* ------------------------------------------------ envelope details */

static void
test_mailsrv_imap_msg__envelope_groups(void **state)
{
	check_envelope("From: Pete <pete@silly.example>\n"
	    "To: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;\n"
	    "Cc: Undisclosed recipients:;\n"
	    "Bcc: (hidden) x@y (X Y), z@w.test\n"
	    "Reply-To:\n"
	    "\n", 0,
	    "(NIL NIL ((\"Pete\" NIL \"pete\" \"silly.example\"))"
	    " ((\"Pete\" NIL \"pete\" \"silly.example\"))"
	    " ((\"Pete\" NIL \"pete\" \"silly.example\"))"
	    " ((NIL NIL \"A Group\" NIL)(\"Ed Jones\" NIL \"c\" \"a.test\")"
	    "(NIL NIL \"joe\" \"where.test\")(\"John\" NIL \"jdoe\" \"one.test\")"
	    "(NIL NIL NIL NIL)) ((NIL NIL \"Undisclosed recipients\" NIL)"
	    "(NIL NIL NIL NIL)) ((\"X Y\" NIL \"x\" \"y\")"
	    "(NIL NIL \"z\" \"w.test\")) NIL NIL)");
	/* routes, missing parts, a group never closed, nested comments */
	check_envelope("From: <@a.test,@b.test:u@c.test>\n"
	    "Sender: nodomain, <>, @only.test\n"
	    "To: g: a@b.test\n"
	    "Cc: \"q\\\"x\" (c1 (nested) c2) <\"l p\"@[1.2.3.4]>\n"
	    "\n", 0,
	    "(NIL NIL ((NIL \"@a.test,@b.test\" \"u\" \"c.test\"))"
	    " ((NIL NIL \"nodomain\" \"MISSING_DOMAIN\")(NIL NIL"
	    " \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")(NIL NIL \"MISSING_MAILBOX\""
	    " \"only.test\")) ((NIL \"@a.test,@b.test\""
	    " \"u\" \"c.test\")) ((NIL NIL \"g\" NIL)(NIL NIL \"a\" \"b.test\")"
	    "(NIL NIL NIL NIL)) ((\"q\\\"x\" NIL \"l p\" \"[1.2.3.4]\")) NIL NIL"
	    " NIL)");
}

static void
test_mailsrv_imap_msg__envelope_missing(void **state)
{
	/* no Date, no Subject, no From: all NIL, Sender/Reply-To too */
	check_envelope("To: a@b.test\nIn-Reply-To: <x@y>\n\nbody\n", 0,
	    "(NIL NIL NIL NIL NIL ((NIL NIL \"a\" \"b.test\")) NIL NIL"
	    " \"<x@y>\" NIL)");
	/* empty values are empty strings; first occurrence wins */
	check_envelope("Subject:\nSubject: second\nDate: \n\n", 0,
	    "(\"\" \"\" NIL NIL NIL NIL NIL NIL NIL NIL)");
	/* no header at all, no message at all */
	check_envelope("", 0, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	{
		struct imap_msg	*m;
		char		*s;

		assert_int_equal(imap_msg_parse(&m, NULL, 0), 0);
		s = bodystructure(m, 1, 0);
		assert_string_equal(s, "(\"text\" \"plain\" (\"charset\""
		    " \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)");
		free(s);
		assert_int_equal(imap_msg_text_match(m, "x", 1, 1), 0);
		imap_msg_free(&m);
	}
	check_envelope("\nbody only\n", 0,
	    "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	/* a CR or LF never reaches a quoted string */
	check_envelope("Subject: a\rb\n\n", 0,
	    "(NIL \"ab\" NIL NIL NIL NIL NIL NIL NIL NIL)");
}

static void
test_mailsrv_imap_msg__comment_bomb(void **state)
{
	struct tmsg	 t;
	struct buf	 b;
	char		*s;
	size_t		 i;

	/* a million nested comments: iterative, no stack growth */
	buf_init(&b, SIZE_MAX / 2);
	(void)buf_printf(&b, "From: ");
	for (i = 0; i < 1000000; i++)
		(void)buf_putc(&b, '(');
	(void)buf_printf(&b, "x@y\r\nContent-Type: text/plain; (");
	for (i = 0; i < 1000000; i++)
		(void)buf_putc(&b, '(');
	(void)buf_printf(&b, "\r\nDate: (((((((\r\n\r\nbody\r\n");
	tmsg_open_raw(&t, (char *)b.data, b.len);
	buf_free(&b);
	s = envelope(t.m, 0);
	assert_string_equal(s, "(\"(((((((\" NIL NIL NIL NIL NIL NIL NIL NIL"
	    " NIL)");
	free(s);
	s = bodystructure(t.m, 1, 0);
	assert_string_equal(s, "(\"text\" \"plain\" (\"charset\" \"us-ascii\")"
	    " NIL NIL \"7bit\" 6 1 NIL NIL NIL NIL)");
	free(s);
	tmsg_close(&t);
}

/* ---------------------------------------------------- malformed MIME */

static void
test_mailsrv_imap_msg__malformed(void **state)
{
	struct tmsg	 t;
	char		*s;
	size_t		 len;

	/* no close delimiter: the last part runs to the end */
	check_structure("Content-Type: multipart/mixed; boundary=zz\n\n"
	    "--zz\nContent-Type: text/plain\n\none\n"
	    "--zz\nContent-Type: text/plain\n\ntwo (no close)\n",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3"
	    " 0)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\""
	    " 16 1) \"mixed\")",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3"
	    " 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\")"
	    " NIL NIL \"7bit\" 16 1 NIL NIL NIL NIL) \"mixed\" (\"boundary\""
	    " \"zz\") NIL NIL NIL)");
	/* the boundary never appears: one empty text part */
	check_structure("Content-Type: multipart/mixed; boundary=zz\n\n"
	    "--other\nno parts\n",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0"
	    " 0) \"mixed\")",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0"
	    " 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"zz\") NIL NIL NIL)");
	/* multipart without boundary, unparsable type: text/plain */
	check_structure("Content-Type: multipart/mixed\n\n--x\nbody\n",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11"
	    " 2)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11"
	    " 2 NIL NIL NIL NIL)");
	check_structure("Content-Type: garbage; charset=x\n"
	    "Content-Transfer-Encoding: base64 junk\n\nabc",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3"
	    " 0)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3"
	    " 0 NIL NIL NIL NIL)");
	/* a part whose header meets the next boundary; an outer boundary
	 * closing an unterminated inner multipart */
	check_structure("Content-Type: multipart/mixed; boundary=o\n\n"
	    "--o\nContent-Type: text/html\n--o\n"
	    "Content-Type: multipart/alternative; boundary=i\n\n"
	    "--i\n\ninner\n--o\n\nlast\n--o--\n",
	    "((\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5"
	    " 0) \"alternative\")(\"text\" \"plain\" (\"charset\" \"us-ascii\")"
	    " NIL NIL \"7bit\" 4 0) \"mixed\")",
	    "((\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0"
	    " NIL NIL NIL NIL)((\"text\" \"plain\" (\"charset\" \"us-ascii\")"
	    " NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL) \"alternative\""
	    " (\"boundary\" \"i\") NIL NIL NIL)(\"text\" \"plain\" (\"charset\""
	    " \"us-ascii\") NIL NIL \"7bit\" 4 0 NIL NIL NIL NIL) \"mixed\""
	    " (\"boundary\" \"o\") NIL NIL NIL)");
	/* Content-* without MIME-Version or Content-Type do not count */
	check_structure("Content-Transfer-Encoding: base64\n"
	    "Content-Disposition: inline\n\nabc\n",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5"
	    " 1)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5"
	    " 1 NIL NIL NIL NIL)");
	/* multipart/digest: parts default to message/rfc822 */
	check_structure("Content-Type: multipart/digest; boundary=d\n\n"
	    "--d\n\nSubject: one\n\nbody\n--d--\n",
	    "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 20 (NIL \"one\" NIL"
	    " NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\""
	    " \"us-ascii\") NIL NIL \"7bit\" 4 0) 2) \"digest\")",
	    "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 20 (NIL \"one\" NIL"
	    " NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\""
	    " \"us-ascii\") NIL NIL \"7bit\" 4 0 NIL NIL NIL NIL) 2 NIL NIL NIL"
	    " NIL) \"digest\" (\"boundary\" \"d\") NIL NIL NIL)");

	/* all header, no blank line */
	tmsg_open(&t, "Subject: only a header\n");
	check_section(t.m, "", IMAP_SECT_HEADER, NULL,
	    "Subject: only a header\n");
	check_section(t.m, "", IMAP_SECT_TEXT, NULL, "");
	check_section(t.m, "", IMAP_SECT_HEADER_FIELDS,
	    (const char *[]){ "subject", NULL },
	    "Subject: only a header\n\n");
	tmsg_close(&t);

	/* NUL bytes and a last line without LF */
	tmsg_open_raw(&t, "Subject: a\0b\r\n\r\nx\0y", 19);
	s = section(t.m, "1", IMAP_SECT_ALL, NULL, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(s, "x\0y", 3);
	free(s);
	s = envelope(t.m, 0);
	assert_string_equal(s, "(NIL {3}\r\na\x80" "b NIL NIL NIL NIL NIL NIL"
	    " NIL NIL)");
	free(s);
	tmsg_close(&t);
}

/* Bare LF line ends: sizes are of the bytes as stored. */
static void
test_mailsrv_imap_msg__bare_lf(void **state)
{
	static const char lf[] =
	    "Content-Type: multipart/mixed; boundary=q\n\n"
	    "--q\nContent-Type: text/plain\n\nline1\nline2\n\n"
	    "--q--\n";
	struct tmsg	 t;
	char		*s;

	tmsg_open_raw(&t, lf, strlen(lf));
	s = bodystructure(t.m, 0, 0);
	assert_string_equal(s, "((\"text\" \"plain\" (\"charset\" \"us-ascii\")"
	    " NIL NIL \"7bit\" 12 2) \"mixed\")");
	free(s);
	tmsg_close(&t);
}

/* ---------------------------------------------------------- Date: */

static void
check_date(const char *hdr, int rc, int64_t want, int tz)
{
	struct tmsg	t;
	int64_t		got = 0;
	int		gtz = 0;

	tmsg_open(&t, hdr);
	assert_int_equal(imap_msg_date(t.m, &got, &gtz), rc);
	if (rc == 0) {
		assert_int_equal(got, want);
		assert_int_equal(gtz, tz);
	}
	tmsg_close(&t);
}

static void
test_mailsrv_imap_msg__date(void **state)
{
	check_date("Date: Tue, 1 Jul 2003 10:52:37 +0200\n\n", 0,
	    1057049557, 120);
	check_date("Date: 1 Jul 2003 08:52:37 GMT\n\n", 0, 1057049557, 0);
	/* RFC 5322 A.5: folded, comments, a half-hour zone */
	check_date("Date: Thu,\n      13\n        Feb\n          1969\n"
	    "      23:32\n               -0330 (Newfoundland Time)\n\n", 0,
	    -27723480, -210);
	/* obsolete: 2-digit year, named zone */
	check_date("Date: Fri, 21 Nov 97 09:55:06 GMT\n\n", 0, 880106106, 0);
	check_date("Date: 17 Jul 1996 02:44:25 PDT\n\n", 0, 837596665, -420);
	check_date("Subject: x\n\n", ERR_NOTFOUND, 0, 0);
	check_date("Date: yesterday\n\n", ERR_NOTFOUND, 0, 0);
	check_date("Date: 30 Feb 2001 00:00:00 +0000\n\n", ERR_NOTFOUND, 0, 0);
	check_date("Date: 1 Jan 2001 24:00:00 +0000\n\n", ERR_NOTFOUND, 0, 0);
	check_date("Date: 1 Jan 2001 10:00:00 +0099\n\n", ERR_NOTFOUND, 0, 0);
}

/* --------------------------------------------------- imap_format */

static void
check_fmt(int (*fn)(struct buf *, const char *, size_t, int),
    const char *in, size_t len, int utf8, const char *want, size_t wlen)
{
	struct buf	b;

	buf_init(&b, SIZE_MAX / 2);
	assert_int_equal(fn(&b, in, len, utf8), 0);
	assert_int_equal(b.len, wlen);
	assert_memory_equal(b.data, want, wlen);
	buf_free(&b);
}

#define FMT(fn, lit, u, want)	check_fmt(fn, lit, sizeof(lit) - 1, u, \
				    want, sizeof(want) - 1)

static void
test_mailsrv_imap_msg__format_strings(void **state)
{
	char	big[IMAP_FMT_QUOTED_MAX + 1];
	struct buf	b;

	FMT(imap_fmt_string, "plain", 0, "\"plain\"");
	FMT(imap_fmt_string, "", 0, "\"\"");
	FMT(imap_fmt_string, "a\"b\\c", 0, "\"a\\\"b\\\\c\"");
	FMT(imap_fmt_string, "tab\there", 0, "{8}\r\ntab\there");
	FMT(imap_fmt_string, "cr\rlf\n", 0, "{6}\r\ncr\rlf\n");
	FMT(imap_fmt_string, "nul\0x", 0, "{5}\r\nnul\x80x");
	FMT(imap_fmt_string, "\xc3\xa9t\xc3\xa9", 0, "{5}\r\n\xc3\xa9t\xc3\xa9");
	FMT(imap_fmt_string, "\xc3\xa9t\xc3\xa9", 1, "\"\xc3\xa9t\xc3\xa9\"");
	FMT(imap_fmt_string, "\xc3", 1, "{1}\r\n\xc3");
	FMT(imap_fmt_string, "\xed\xa0\x80", 1, "{3}\r\n\xed\xa0\x80");
	FMT(imap_fmt_string, "\xf0\x9f\x98\x80", 1, "\"\xf0\x9f\x98\x80\"");
	FMT(imap_fmt_string, "\xc0\xaf", 1, "{2}\r\n\xc0\xaf");
	FMT(imap_fmt_astring, "INBOX", 0, "INBOX");
	FMT(imap_fmt_astring, "a]b", 0, "a]b");
	FMT(imap_fmt_astring, "nil", 0, "\"nil\"");
	FMT(imap_fmt_astring, "", 0, "\"\"");
	FMT(imap_fmt_astring, "two words", 0, "\"two words\"");
	FMT(imap_fmt_astring, "a(b", 0, "\"a(b\"");
	FMT(imap_fmt_astring, "Entw\xc3\xbc" "rfe", 1, "\"Entw\xc3\xbc" "rfe\"");
	FMT(imap_fmt_nstring, "x", 0, "\"x\"");
	/* the quoted-string length limit and one past it */
	memset(big, 'a', sizeof(big));
	buf_init(&b, SIZE_MAX / 2);
	assert_int_equal(imap_fmt_string(&b, big, IMAP_FMT_QUOTED_MAX, 0), 0);
	assert_int_equal(b.len, IMAP_FMT_QUOTED_MAX + 2);
	buf_reset(&b);
	assert_int_equal(imap_fmt_string(&b, big, sizeof(big), 0), 0);
	assert_memory_equal(b.data, "{1025}\r\n", 8);
	buf_reset(&b);
	assert_int_equal(imap_fmt_nstring(&b, NULL, 0, 0), 0);
	assert_string_equal(b.data, "NIL");
	buf_reset(&b);
	assert_int_equal(imap_fmt_literal(&b, "a\0b", 3, 1), 0);
	assert_memory_equal(b.data, "~{3}\r\na\0b", 9);
	buf_reset(&b);
	assert_int_equal(imap_fmt_literal(&b, "ab", 2, 1), 0);
	assert_string_equal(b.data, "{2}\r\nab");
	buf_free(&b);
	/* a full buffer */
	buf_init(&b, 4);
	assert_int_equal(imap_fmt_string(&b, "long text", 9, 0), ERR_TOOBIG);
	buf_free(&b);
}

static void
test_mailsrv_imap_msg__format_flags_dates(void **state)
{
	char *const	 kw[] = { "$Forwarded", NULL, "Work" };
	struct buf	 b;
	int64_t		 t;
	int32_t		 d;

	buf_init(&b, SIZE_MAX / 2);
	assert_int_equal(imap_fmt_flags(&b, 0, 0, NULL, 0), 0);
	assert_string_equal(b.data, "()");
	buf_reset(&b);
	assert_int_equal(imap_fmt_flags(&b, 0x1f, 0xf, kw, 3), 0);
	assert_string_equal(b.data, "(\\Seen \\Answered \\Flagged \\Deleted"
	    " \\Draft $Forwarded Work)");
	buf_reset(&b);
	assert_int_equal(imap_fmt_flags(&b, 0x08, 0x4, kw, 3), 0);
	assert_string_equal(b.data, "(\\Deleted Work)");
	buf_reset(&b);
	assert_int_equal(imap_fmt_datetime(&b, 837596665), 0);
	assert_string_equal(b.data, "\"17-Jul-1996 09:44:25 +0000\"");
	buf_reset(&b);
	assert_int_equal(imap_fmt_datetime(&b, 0), 0);
	assert_string_equal(b.data, "\"01-Jan-1970 00:00:00 +0000\"");
	buf_reset(&b);
	assert_int_equal(imap_fmt_datetime(&b, -5), 0);
	assert_string_equal(b.data, "\"01-Jan-1970 00:00:00 +0000\"");
	buf_reset(&b);
	assert_int_equal(imap_fmt_datetime(&b, INT64_MAX), 0);
	assert_string_equal(b.data, "\"31-Dec-9999 23:59:59 +0000\"");
	buf_free(&b);

	assert_int_equal(imap_parse_datetime("17-Jul-1996 02:44:25 -0700",
	    26, &t), 0);
	assert_int_equal(t, 837596665);
	assert_int_equal(imap_parse_datetime(" 7-jul-1996 02:44:25 +0000",
	    26, &t), 0);
	assert_int_equal(imap_parse_datetime("7-Jul-1996 02:44:25 +0000",
	    25, &t), 0);
	assert_int_equal(imap_parse_datetime("29-Feb-2000 00:00:00 +0000",
	    26, &t), 0);
	assert_int_equal(t, 951782400);
	assert_int_equal(imap_parse_datetime("29-Feb-1900 00:00:00 +0000",
	    26, &t), ERR_PROTO);
	assert_int_equal(imap_parse_datetime("17-Jul-1996 24:00:00 +0000",
	    26, &t), ERR_PROTO);
	assert_int_equal(imap_parse_datetime("17-Jul-1996 02:44:25 +0060",
	    26, &t), ERR_PROTO);
	assert_int_equal(imap_parse_datetime("17-Jul-1996 02:44:25", 20, &t),
	    ERR_PROTO);
	assert_int_equal(imap_parse_datetime("17-Jux-1996 02:44:25 +0000",
	    26, &t), ERR_PROTO);
	assert_int_equal(imap_parse_datetime("17-Jul-1996  02:44:25 +0000",
	    27, &t), ERR_PROTO);
	assert_int_equal(imap_parse_date("1-Feb-1994", 10, &d), 0);
	assert_int_equal(d, 8797);
	assert_int_equal(imap_parse_date("01-Jan-1970", 11, &d), 0);
	assert_int_equal(d, 0);
	assert_int_equal(imap_parse_date("31-Dec-1969", 11, &d), 0);
	assert_int_equal(d, -1);
	assert_int_equal(imap_parse_date("32-Jan-1970", 11, &d), ERR_PROTO);
	assert_int_equal(imap_parse_date("1-Feb-94", 8, &d), ERR_PROTO);
	assert_int_equal(imap_parse_date("1-Feb-1994x", 11, &d), ERR_PROTO);
	assert_int_equal(imap_parse_date("", 0, &d), ERR_PROTO);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mailsrv_imap_msg__dovecot_vectors),
		cmocka_unit_test(test_mailsrv_imap_msg__dovecot_nested),
		cmocka_unit_test(test_mailsrv_imap_msg__simple),
		cmocka_unit_test(test_mailsrv_imap_msg__section_errors),
		cmocka_unit_test(test_mailsrv_imap_msg__multipart_mixed),
		cmocka_unit_test(test_mailsrv_imap_msg__binary),
		cmocka_unit_test(test_mailsrv_imap_msg__message_rfc822),
		cmocka_unit_test(test_mailsrv_imap_msg__rfc2047),
		cmocka_unit_test(test_mailsrv_imap_msg__eightbit),
		cmocka_unit_test(test_mailsrv_imap_msg__casefold),
		cmocka_unit_test(test_mailsrv_imap_msg__search_text),
		cmocka_unit_test(test_mailsrv_imap_msg__deep_nesting),
		cmocka_unit_test(test_mailsrv_imap_msg__depth_limit),
		cmocka_unit_test(test_mailsrv_imap_msg__parts_limit),
		cmocka_unit_test(test_mailsrv_imap_msg__envelope_groups),
		cmocka_unit_test(test_mailsrv_imap_msg__envelope_missing),
		cmocka_unit_test(test_mailsrv_imap_msg__comment_bomb),
		cmocka_unit_test(test_mailsrv_imap_msg__malformed),
		cmocka_unit_test(test_mailsrv_imap_msg__bare_lf),
		cmocka_unit_test(test_mailsrv_imap_msg__date),
		cmocka_unit_test(test_mailsrv_imap_msg__format_strings),
		cmocka_unit_test(test_mailsrv_imap_msg__format_flags_dates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
