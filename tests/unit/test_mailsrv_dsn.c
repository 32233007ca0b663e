/*
 * test_mailsrv_dsn.c -- unit tests for the DSN (bounce) builder.
 *
 * Purpose: check dsn.h's contract: which recipients each kind reports
 * (NOTIFY rules), the RFC 6522 structure (parsed here: boundary, three
 * parts, their headers), the RFC 3464 fields, RET=HDRS/FULL and the
 * size and safety fallbacks to headers only, xtext decoding of ORCPT
 * and ENVID, the status code split, the RFC 6533 types for SMTPUTF8,
 * refusal of the null sender, and output hygiene (CRLF only, lines <=
 * 998 octets, no header injection, a boundary absent from the parts).
 * Runs in: the unit test binary only.
 * Failure policy: cmocka assertions.
 * SECURITY: the injection and line-length tests are the point: envelope
 * and status strings are attacker-controlled.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/xmalloc.h"
#include "mailsrv/dsn.h"
#include "mailsrv/queue/queue.h"

#define MTA	"mx.example.org"
#define NOW	1700000000	/* Tue, 14 Nov 2023 22:13:20 +0000 */

static const char ORIG[] =
    "Received: from client.example.com by mx.example.org;\r\n"
    "\tTue, 14 Nov 2023 22:00:00 +0000\r\n"
    "From: <alice@example.com>\r\n"
    "To: <bob@example.net>\r\n"
    "Subject: hello\r\n"
    "Message-ID: <m1@example.com>\r\n"
    "\r\n"
    "Body line one BODYMARKER\r\n"
    "--not-our-boundary\r\n"
    "last line\r\n";
/* The header section of ORIG, up to the CRLF before the empty line. */
#define ORIG_HDRS_LEN	orig_hdrs_len()

#define CT_REPORT	"\r\nContent-Type: multipart/report; " \
			"report-type=delivery-status;"

struct part {
	const char	*hdr;		/* header section, with its CRLFs */
	size_t		 hdr_len;
	const char	*body;		/* content */
	size_t		 body_len;
};

struct parsed {
	char		 boundary[128];
	const char	*top;
	size_t		 top_len;
	struct part	 p[3];
};

static size_t
orig_hdrs_len(void)
{
	return (size_t)(strstr(ORIG, "\r\n\r\n") - ORIG) + 2;
}

/* Every line ends in CRLF, no bare CR or LF, at most 998 octets. */
static void
check_lines(const char *m, size_t n)
{
	size_t	i, col = 0;

	assert_true(n >= 2);
	assert_memory_equal(m + n - 2, "\r\n", 2);
	for (i = 0; i < n; i++) {
		if (m[i] == '\r') {
			assert_true(i + 1 < n);
			assert_int_equal(m[i + 1], '\n');
			i++;
			col = 0;
			continue;
		}
		assert_int_not_equal(m[i], '\n');
		assert_int_not_equal(m[i], '\0');
		col++;
		assert_true(col <= 998);
	}
}

static size_t
count_str(const char *m, size_t n, const char *s)
{
	size_t		 c = 0, sl = strlen(s);
	const char	*p = m, *q;

	while ((q = memmem(p, n - (size_t)(p - m), s, sl)) != NULL) {
		c++;
		p = q + 1;
	}
	return c;
}

/* Lines (in m, n bytes) that start with prefix. */
static size_t
count_lines(const char *m, size_t n, const char *prefix)
{
	size_t	c = 0, i, pl = strlen(prefix);

	for (i = 0; i < n; i++) {
		if ((i == 0 || m[i - 1] == '\n') && n - i >= pl &&
		    memcmp(m + i, prefix, pl) == 0)
			c++;
	}
	return c;
}

/*
 * The region unfolded (CRLF before SP/TAB removed), with a CRLF put in
 * front so "\r\nName: value\r\n" finds a whole field.  Caller frees.
 */
static char *
unfold(const char *m, size_t n)
{
	char	*r = xmalloc(n + 3);
	size_t	 i, o = 0;

	r[o++] = '\r';
	r[o++] = '\n';
	for (i = 0; i < n; i++) {
		if (m[i] == '\r' && i + 2 < n && m[i + 1] == '\n' &&
		    (m[i + 2] == ' ' || m[i + 2] == '\t')) {
			i++;
			continue;
		}
		r[o++] = m[i];
	}
	r[o] = '\0';
	return r;
}

/* 1 if the unfolded region holds the field line exactly. */
static int
has_field(const char *m, size_t n, const char *field)
{
	char	*u = unfold(m, n), *want;
	int	 found;

	xasprintf(&want, "\r\n%s\r\n", field);
	found = strstr(u, want) != NULL;
	free(want);
	free(u);
	return found;
}

/* 1 if the region holds the line exactly (no unfolding: text parts). */
static int
has_line(const char *m, size_t n, const char *line)
{
	char	*want;
	int	 found;

	xasprintf(&want, "%s\r\n", line);
	found = count_lines(m, n, want) > 0;
	free(want);
	return found;
}

static int
part_is(const struct part *p, const char *ctype)
{
	char	*f;
	int	 r;

	xasprintf(&f, "Content-Type: %s", ctype);
	r = has_field(p->hdr, p->hdr_len, f);
	free(f);
	return r;
}

/*
 * Minimal RFC 2046 check of the whole message: the top header section,
 * its multipart/report type and boundary, a preamble, exactly three
 * parts each with a header section, the close delimiter at the end.
 */
static void
parse(const char *m, size_t n, struct parsed *ps)
{
	const char	*hend, *b, *q, *start, *next, *end = m + n, *x;
	char		 delim[160];
	size_t		 dl, i;

	memset(ps, 0, sizeof(*ps));
	check_lines(m, n);
	hend = memmem(m, n, "\r\n\r\n", 4);
	assert_non_null(hend);
	ps->top = m;
	ps->top_len = (size_t)(hend + 2 - m);
	assert_true(has_field(m, ps->top_len, "MIME-Version: 1.0"));
	b = memmem(m, ps->top_len, CT_REPORT, strlen(CT_REPORT));
	assert_non_null(b);
	b = memmem(b, ps->top_len - (size_t)(b - m), "boundary=\"", 10);
	assert_non_null(b);
	b += 10;
	q = memchr(b, '"', ps->top_len - (size_t)(b - m));
	assert_non_null(q);
	assert_true(q > b && (size_t)(q - b) < sizeof(ps->boundary));
	memcpy(ps->boundary, b, (size_t)(q - b));
	dl = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", ps->boundary);
	/* exactly four delimiter lines: three parts and the close */
	assert_int_equal(count_str(m, n, delim + 2), 4);
	q = memmem(hend, (size_t)(end - hend), delim, dl);
	assert_non_null(q);
	assert_true(q > hend + 2);	/* a preamble */
	for (i = 0; i < 3; i++) {
		assert_memory_equal(q + dl, "\r\n", 2);
		start = q + dl + 2;
		next = memmem(start, (size_t)(end - start), delim, dl);
		assert_non_null(next);
		x = memmem(start, (size_t)(next - start) + 2, "\r\n\r\n", 4);
		assert_non_null(x);
		ps->p[i].hdr = start;
		ps->p[i].hdr_len = (size_t)(x + 2 - start);
		ps->p[i].body = x + 4;
		ps->p[i].body_len = next >= x + 4 ? (size_t)(next - x - 4) :
		    0;
		q = next;
	}
	assert_true((size_t)(end - q) == dl + 4);
	assert_memory_equal(q + dl, "--\r\n", 4);
}

static void
rcpt(struct queue_rcpt *r, const char *addr, int notify, int state,
    const char *status)
{
	memset(r, 0, sizeof(*r));
	r->addr = (char *)addr;
	r->notify = notify;
	r->state = state;
	r->status = (char *)status;
}

static void
env_init(struct queue_env *env, struct queue_rcpt *rcpts, size_t n)
{
	memset(env, 0, sizeof(*env));
	memcpy(env->id, "0123456789abcdef0123", QUEUE_ID_LEN + 1);
	env->sender = (char *)"alice@example.com";
	env->created = NOW - 3600;
	env->rcpts = rcpts;
	env->nrcpts = n;
}

static char *
build(const struct queue_env *env, enum dsn_kind kind, const void *orig,
    size_t olen, size_t *len)
{
	char	*out = NULL;
	int	 rc;

	rc = dsn_build(&out, len, env, kind, MTA, NOW, orig, olen);
	assert_int_equal(rc, 0);
	assert_non_null(out);
	assert_int_equal(strlen(out), *len);
	return out;
}

static void
test_mailsrv_dsn__failure_reports_failed_only(void **state)
{
	struct queue_rcpt	r[3];
	struct queue_env	env;
	struct parsed		ps;
	const struct part	*st;
	char			*m;
	size_t			 n;

	rcpt(&r[0], "bob@example.net", 0, QUEUE_RCPT_FAILED,
	    "5.1.1 user unknown");
	rcpt(&r[1], "carol@example.net", QUEUE_NOTIFY_FAILURE,
	    QUEUE_RCPT_FAILED, "5.2.2 mailbox full");
	rcpt(&r[2], "dave@example.net", 0, QUEUE_RCPT_DELIVERED,
	    "2.0.0 ok");
	env_init(&env, r, 3);
	assert_int_equal(dsn_count(&env, DSN_FAILURE), 2);
	m = build(&env, DSN_FAILURE, ORIG, sizeof(ORIG) - 1, &n);
	parse(m, n, &ps);
	assert_true(part_is(&ps.p[0], "text/plain; charset=us-ascii"));
	assert_true(part_is(&ps.p[1], "message/delivery-status"));
	st = &ps.p[1];
	assert_true(has_field(st->body, st->body_len,
	    "Reporting-MTA: dns; " MTA));
	assert_true(has_field(st->body, st->body_len,
	    "X-Amanat-Queue-ID: 0123456789abcdef0123"));
	assert_true(has_field(st->body, st->body_len,
	    "Arrival-Date: Tue, 14 Nov 2023 21:13:20 +0000"));
	assert_true(has_field(st->body, st->body_len,
	    "Final-Recipient: rfc822; bob@example.net"));
	assert_true(has_field(st->body, st->body_len,
	    "Final-Recipient: rfc822; carol@example.net"));
	assert_int_equal(count_str(m, n, "dave@"), 0);
	assert_int_equal(count_lines(st->body, st->body_len,
	    "Action: failed\r\n"), 2);
	assert_true(has_field(st->body, st->body_len, "Status: 5.1.1"));
	assert_true(has_field(st->body, st->body_len,
	    "Diagnostic-Code: smtp; user unknown"));
	assert_true(has_field(st->body, st->body_len, "Status: 5.2.2"));
	assert_true(has_field(st->body, st->body_len,
	    "Diagnostic-Code: smtp; mailbox full"));
	/* per-message block, then one block per recipient */
	assert_int_equal(count_str(st->body, st->body_len, "\r\n\r\n"), 2);
	assert_true(has_line(ps.p[0].body, ps.p[0].body_len,
	    "  <bob@example.net>: 5.1.1 user unknown"));
	assert_true(has_line(ps.p[0].body, ps.p[0].body_len,
	    "  <carol@example.net>: 5.2.2 mailbox full"));
	free(m);
}

static void
test_mailsrv_dsn__top_headers(void **state)
{
	struct queue_rcpt	r[1];
	struct queue_env	env;
	struct parsed		ps;
	char			*m;
	size_t			 n;

	rcpt(&r[0], "bob@example.net", 0, QUEUE_RCPT_FAILED,
	    "5.1.1 user unknown");
	env_init(&env, r, 1);
	m = build(&env, DSN_FAILURE, ORIG, sizeof(ORIG) - 1, &n);
	parse(m, n, &ps);
	assert_true(has_field(ps.top, ps.top_len,
	    "From: \"Mail Delivery System\" <MAILER-DAEMON@" MTA ">"));
	assert_true(has_field(ps.top, ps.top_len,
	    "To: <alice@example.com>"));
	assert_true(has_field(ps.top, ps.top_len,
	    "Subject: Undelivered Mail Returned to Sender"));
	assert_true(has_field(ps.top, ps.top_len,
	    "Date: Tue, 14 Nov 2023 22:13:20 +0000"));
	assert_true(has_field(ps.top, ps.top_len,
	    "Auto-Submitted: auto-replied"));
	assert_int_equal(count_lines(ps.top, ps.top_len, "Message-ID: <"),
	    1);
	assert_non_null(memmem(ps.top, ps.top_len, "@" MTA ">\r\n",
	    strlen("@" MTA ">\r\n")));
	/* all 7-bit: no transfer encoding declared anywhere */
	assert_int_equal(count_str(m, n, "Content-Transfer-Encoding"), 0);
	free(m);
}

static void
test_mailsrv_dsn__notify_rules(void **state)
{
	struct queue_rcpt	r[6];
	struct queue_env	env;

	rcpt(&r[0], "a@x", QUEUE_NOTIFY_NEVER, QUEUE_RCPT_FAILED, "5.1.1 x");
	rcpt(&r[1], "b@x", QUEUE_NOTIFY_SUCCESS, QUEUE_RCPT_FAILED, "5.1.1 x");
	rcpt(&r[2], "c@x", 0, QUEUE_RCPT_FAILED, "5.1.1 x");
	rcpt(&r[3], "d@x", QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY,
	    QUEUE_RCPT_PENDING, "4.4.1 no answer");
	rcpt(&r[4], "e@x", 0, QUEUE_RCPT_PENDING, "4.4.1 no answer");
	rcpt(&r[5], "f@x", QUEUE_NOTIFY_SUCCESS, QUEUE_RCPT_DELIVERED, NULL);
	env_init(&env, r, 6);
	assert_int_equal(dsn_count(&env, DSN_FAILURE), 1);	/* c */
	assert_int_equal(dsn_count(&env, DSN_DELAY), 1);	/* d */
	assert_int_equal(dsn_count(&env, DSN_SUCCESS), 1);	/* f */
	assert_int_equal(dsn_count(NULL, DSN_FAILURE), 0);
	/* a recipient reported delayed once is not reported again */
	r[3].delayed = 1;
	assert_int_equal(dsn_count(&env, DSN_DELAY), 0);
}

static void
test_mailsrv_dsn__notify_never_excluded(void **state)
{
	struct queue_rcpt	r[2];
	struct queue_env	env;
	struct parsed		ps;
	char			*m;
	size_t			 n;

	rcpt(&r[0], "never@example.net", QUEUE_NOTIFY_NEVER,
	    QUEUE_RCPT_FAILED, "5.1.1 user unknown");
	rcpt(&r[1], "bob@example.net", 0, QUEUE_RCPT_FAILED,
	    "5.1.1 user unknown");
	env_init(&env, r, 2);
	m = build(&env, DSN_FAILURE, ORIG, sizeof(ORIG) - 1, &n);
	parse(m, n, &ps);
	assert_int_equal(count_str(m, n, "never@"), 0);
	assert_int_equal(count_str(m, n, "Final-Recipient:"), 1);
	free(m);
	/* only NEVER left: nothing to report */
	env.nrcpts = 1;
	m = (char *)0x1;
	assert_int_equal(dsn_build(&m, &n, &env, DSN_FAILURE, MTA, NOW, ORIG,
	    sizeof(ORIG) - 1), ERR_INVAL);
	assert_null(m);
	assert_int_equal(n, 0);
}

static void
test_mailsrv_dsn__success_only_notify_success(void **state)
{
	struct queue_rcpt	r[3];
	struct queue_env	env;
	struct parsed		ps;
	const struct part	*st;
	char			*m;
	size_t			 n;

	rcpt(&r[0], "yes@example.net", QUEUE_NOTIFY_SUCCESS |
	    QUEUE_NOTIFY_FAILURE, QUEUE_RCPT_DELIVERED, NULL);
	rcpt(&r[1], "no@example.net", 0, QUEUE_RCPT_DELIVERED, "2.0.0 ok");
	rcpt(&r[2], "fail@example.net", QUEUE_NOTIFY_SUCCESS,
	    QUEUE_RCPT_FAILED, "5.1.1 user unknown");
	env_init(&env, r, 3);
	m = build(&env, DSN_SUCCESS, ORIG, sizeof(ORIG) - 1, &n);
	parse(m, n, &ps);
	st = &ps.p[1];
	assert_true(has_field(ps.top, ps.top_len,
	    "Subject: Successful Mail Delivery Report"));
	assert_true(has_field(st->body, st->body_len,
	    "Final-Recipient: rfc822; yes@example.net"));
	assert_true(has_field(st->body, st->body_len, "Action: delivered"));
	assert_true(has_field(st->body, st->body_len, "Status: 2.0.0"));
	assert_int_equal(count_str(m, n, "Diagnostic-Code"), 0);
	assert_int_equal(count_str(m, n, "no@example"), 0);
	assert_int_equal(count_str(m, n, "fail@example"), 0);
	assert_int_equal(count_str(m, n, "Final-Recipient:"), 1);
	free(m);
}

static void
test_mailsrv_dsn__delay_only_notify_delay(void **state)
{
	struct queue_rcpt	r[2];
	struct queue_env	env;
	struct parsed		ps;
	const struct part	*st;
	char			*m;
	size_t			 n;

	rcpt(&r[0], "slow@example.net", QUEUE_NOTIFY_DELAY,
	    QUEUE_RCPT_PENDING, "4.4.1 connection timed out");
	rcpt(&r[1], "quiet@example.net", 0, QUEUE_RCPT_PENDING,
	    "4.4.1 connection timed out");
	env_init(&env, r, 2);
	m = build(&env, DSN_DELAY, ORIG, sizeof(ORIG) - 1, &n);
	parse(m, n, &ps);
	st = &ps.p[1];
	assert_true(has_field(ps.top, ps.top_len,
	    "Subject: Delayed Mail (still being retried)"));
	assert_true(has_field(st->body, st->body_len, "Action: delayed"));
	assert_true(has_field(st->body, st->body_len, "Status: 4.4.1"));
	assert_true(has_field(st->body, st->body_len,
	    "Diagnostic-Code: smtp; connection timed out"));
	assert_int_equal(count_str(m, n, "quiet@"), 0);
	free(m);
}

static void
test_mailsrv_dsn__status_code_split(void **state)
{
	struct queue_rcpt	r[4];
	struct queue_env	env;
	struct parsed		ps;
	const struct part	*st;
	char			*m;
	size_t			 n;

	rcpt(&r[0], "a@x.example", 0, QUEUE_RCPT_FAILED, NULL);
	rcpt(&r[1], "b@x.example", 0, QUEUE_RCPT_FAILED, "no code here");
	rcpt(&r[2], "c@x.example", 0, QUEUE_RCPT_FAILED,
	    "2.0.0 class does not fit");
	rcpt(&r[3], "d@x.example", 0, QUEUE_RCPT_FAILED,
	    "4.4.7 delivery time expired");
	env_init(&env, r, 4);
	m = build(&env, DSN_FAILURE, ORIG, sizeof(ORIG) - 1, &n);
	parse(m, n, &ps);
	st = &ps.p[1];
	assert_int_equal(count_lines(st->body, st->body_len,
	    "Status: 5.0.0\r\n"), 3);
	assert_int_equal(count_lines(st->body, st->body_len,
	    "Status: 4.4.7\r\n"), 1);
	assert_int_equal(count_str(st->body, st->body_len,
	    "Diagnostic-Code:"), 3);
	assert_true(has_field(st->body, st->body_len,
	    "Diagnostic-Code: smtp; no code here"));
	assert_true(has_field(st->body, st->body_len,
	    "Diagnostic-Code: smtp; 2.0.0 class does not fit"));
	assert_true(has_field(st->body, st->body_len,
	    "Diagnostic-Code: smtp; delivery time expired"));
	assert_true(has_line(ps.p[0].body, ps.p[0].body_len,
	    "  <a@x.example>: failed"));
	free(m);
}

static void
test_mailsrv_dsn__ret_hdrs_headers_only(void **state)
{
	struct queue_rcpt	r[1];
	struct queue_env	env;
	struct parsed		ps;
	char			*m;
	size_t			 n;

	rcpt(&r[0], "bob@example.net", 0, QUEUE_RCPT_FAILED, "5.1.1 x");
	env_init(&env, r, 1);
	env.ret_full = 0;
	m = build(&env, DSN_FAILURE, ORIG, sizeof(ORIG) - 1, &n);
	parse(m, n, &ps);
	assert_true(part_is(&ps.p[2], "text/rfc822-headers"));
	assert_int_equal(ps.p[2].body_len, ORIG_HDRS_LEN);
	assert_memory_equal(ps.p[2].body, ORIG, ORIG_HDRS_LEN);
	assert_int_equal(count_str(m, n, "BODYMARKER"), 0);
	free(m);
}

static void
test_mailsrv_dsn__ret_full_whole_original(void **state)
{
	struct queue_rcpt	r[1];
	struct queue_env	env;
	struct parsed		ps;
	char			*m;
	size_t			 n;

	rcpt(&r[0], "bob@example.net", 0, QUEUE_RCPT_FAILED, "5.1.1 x");
	env_init(&env, r, 1);
	env.ret_full = 1;
	m = build(&env, DSN_FAILURE, ORIG, sizeof(ORIG) - 1, &n);
	parse(m, n, &ps);
	assert_true(part_is(&ps.p[2], "message/rfc822"));
	assert_int_equal(ps.p[2].body_len, sizeof(ORIG) - 1);
	assert_memory_equal(ps.p[2].body, ORIG, sizeof(ORIG) - 1);
	free(m);
	/* without a final CRLF: still byte exact */
	m = build(&env, DSN_FAILURE, ORIG, sizeof(ORIG) - 3, &n);
	parse(m, n, &ps);
	assert_int_equal(ps.p[2].body_len, sizeof(ORIG) - 3);
	assert_memory_equal(ps.p[2].body, ORIG, sizeof(ORIG) - 3);
	free(m);
}

/* RET=FULL of an original over DSN_ORIG_MAX: only its headers. */
static void
test_mailsrv_dsn__huge_original_headers_only(void **state)
{
	struct queue_rcpt	 r[1];
	struct queue_env	 env;
	struct parsed		 ps;
	char			*big, *m;
	size_t			 blen, n, i, k, hl = ORIG_HDRS_LEN + 2;

	blen = DSN_ORIG_MAX + 1;
	big = xmalloc(blen);
	memcpy(big, ORIG, hl);
	/* 80-octet CRLF lines ending exactly at DSN_ORIG_MAX */
	for (i = hl; i < DSN_ORIG_MAX; i++) {
		k = (DSN_ORIG_MAX - 1 - i) % 80;
		big[i] = k == 0 ? '\n' : k == 1 ? '\r' : 'B';
	}
	if (big[hl] == '\n')
		big[hl] = 'B';
	big[DSN_ORIG_MAX] = 'B';
	rcpt(&r[0], "bob@example.net", 0, QUEUE_RCPT_FAILED, "5.1.1 x");
	env_init(&env, r, 1);
	env.ret_full = 1;
	m = build(&env, DSN_FAILURE, big, blen, &n);
	parse(m, n, &ps);
	assert_true(part_is(&ps.p[2], "text/rfc822-headers"));
	assert_int_equal(ps.p[2].body_len, ORIG_HDRS_LEN);
	assert_memory_equal(ps.p[2].body, ORIG, ORIG_HDRS_LEN);
	assert_true(n < 64 * 1024);
	assert_non_null(strstr(ps.p[0].body, "too"));
	free(m);
	/* exactly DSN_ORIG_MAX: returned whole */
	m = build(&env, DSN_FAILURE, big, DSN_ORIG_MAX, &n);
	parse(m, n, &ps);
	assert_true(part_is(&ps.p[2], "message/rfc822"));
	assert_int_equal(ps.p[2].body_len, DSN_ORIG_MAX);
	free(m);
	free(big);
}

/* A header section with no end, over DSN_ORIG_MAX: cut on a line. */
static void
test_mailsrv_dsn__huge_header_section_cut(void **state)
{
	struct queue_rcpt	 r[1];
	struct queue_env	 env;
	struct parsed		 ps;
	char			*big, *m;
	size_t			 blen = 2 * DSN_ORIG_MAX, n, i;

	big = xmalloc(blen);
	for (i = 0; i < blen; i++)
		big[i] = (i % 100 == 98) ? '\r' : (i % 100 == 99) ? '\n' :
		    (i % 100 == 0) ? 'X' : (i % 100 == 1) ? ':' : 'h';
	rcpt(&r[0], "bob@example.net", 0, QUEUE_RCPT_FAILED, "5.1.1 x");
	env_init(&env, r, 1);
	m = build(&env, DSN_FAILURE, big, blen, &n);
	parse(m, n, &ps);
	assert_true(part_is(&ps.p[2], "text/rfc822-headers"));
	assert_true(ps.p[2].body_len <= DSN_ORIG_MAX);
	assert_true(ps.p[2].body_len > DSN_ORIG_MAX - 100);
	assert_int_equal(ps.p[2].body_len % 100, 0);
	assert_memory_equal(ps.p[2].body, big, ps.p[2].body_len);
	free(m);
	free(big);
}

/* RET=FULL of a message that is not MIME-safe: headers, normalised. */
static void
test_mailsrv_dsn__unsafe_original_headers_only(void **state)
{
	static const char	 bad[] = "Subject: a\nX-Bare: cr\rhere\r\n"
	    "\r\nbody\0with NUL\r\n";
	struct queue_rcpt	 r[1];
	struct queue_env	 env;
	struct parsed		 ps;
	char			*big, *m;
	size_t			 n, blen = 5000;

	rcpt(&r[0], "bob@example.net", 0, QUEUE_RCPT_FAILED, "5.1.1 x");
	env_init(&env, r, 1);
	env.ret_full = 1;
	m = build(&env, DSN_FAILURE, bad, sizeof(bad) - 1, &n);
	parse(m, n, &ps);
	assert_true(part_is(&ps.p[2], "text/rfc822-headers"));
	assert_int_equal(ps.p[2].body_len,
	    strlen("Subject: a\r\nX-Bare: cr\r\nhere\r\n"));
	assert_memory_equal(ps.p[2].body,
	    "Subject: a\r\nX-Bare: cr\r\nhere\r\n", ps.p[2].body_len);
	free(m);
	/* a 5000-octet header line: split into continuation lines */
	big = xmalloc(blen);
	memset(big, 'v', blen);
	memcpy(big, "X-Long: ", 8);
	memcpy(big + blen - 4, "\r\n\r\n", 4);
	m = build(&env, DSN_FAILURE, big, blen, &n);
	parse(m, n, &ps);	/* checks every line <= 998 */
	assert_true(part_is(&ps.p[2], "text/rfc822-headers"));
	assert_true(count_lines(ps.p[2].body, ps.p[2].body_len, "\t") >= 5);
	free(m);
	free(big);
}

static void
test_mailsrv_dsn__null_sender_inval(void **state)
{
	struct queue_rcpt	r[1];
	struct queue_env	env;
	char			*m;
	size_t			 n;

	rcpt(&r[0], "bob@example.net", 0, QUEUE_RCPT_FAILED, "5.1.1 x");
	env_init(&env, r, 1);
	env.sender = (char *)"";
	m = (char *)0x1;
	n = 7;
	assert_int_equal(dsn_build(&m, &n, &env, DSN_FAILURE, MTA, NOW, ORIG,
	    sizeof(ORIG) - 1), ERR_INVAL);
	assert_null(m);
	assert_int_equal(n, 0);
	env.sender = NULL;
	assert_int_equal(dsn_build(&m, &n, &env, DSN_FAILURE, MTA, NOW, ORIG,
	    sizeof(ORIG) - 1), ERR_INVAL);
	env.sender = (char *)"\r\n\t ";
	assert_int_equal(dsn_build(&m, &n, &env, DSN_FAILURE, MTA, NOW, ORIG,
	    sizeof(ORIG) - 1), ERR_INVAL);
	assert_null(m);
}

static void
test_mailsrv_dsn__bad_arguments_inval(void **state)
{
	struct queue_rcpt	r[1];
	struct queue_env	env;
	char			*m;
	size_t			 n;

	rcpt(&r[0], "bob@example.net", 0, QUEUE_RCPT_FAILED, "5.1.1 x");
	env_init(&env, r, 1);
	assert_int_equal(dsn_build(&m, &n, NULL, DSN_FAILURE, MTA, NOW, ORIG,
	    sizeof(ORIG) - 1), ERR_INVAL);
	assert_int_equal(dsn_build(&m, &n, &env, DSN_FAILURE, "bad\r\nmta",
	    NOW, ORIG, sizeof(ORIG) - 1), ERR_INVAL);
	assert_int_equal(dsn_build(&m, &n, &env, DSN_FAILURE, "", NOW, ORIG,
	    sizeof(ORIG) - 1), ERR_INVAL);
	assert_int_equal(dsn_build(&m, &n, &env, DSN_FAILURE, NULL, NOW,
	    ORIG, sizeof(ORIG) - 1), ERR_INVAL);
	assert_int_equal(dsn_build(&m, &n, &env, DSN_FAILURE, MTA, NOW, NULL,
	    10), ERR_INVAL);
	assert_int_equal(dsn_build(&m, &n, &env, (enum dsn_kind)7, MTA, NOW,
	    ORIG, sizeof(ORIG) - 1), ERR_INVAL);
	assert_int_equal(dsn_build(&m, &n, &env, DSN_FAILURE, MTA,
	    INT64_MAX, ORIG, sizeof(ORIG) - 1), ERR_INVAL);
	assert_int_equal(dsn_build(&m, &n, &env, DSN_SUCCESS, MTA, NOW,
	    ORIG, sizeof(ORIG) - 1), ERR_INVAL);
	assert_int_equal(dsn_build(NULL, &n, &env, DSN_FAILURE, MTA, NOW,
	    ORIG, sizeof(ORIG) - 1), ERR_INVAL);
	/* an empty original is fine: an empty header section */
	m = build(&env, DSN_FAILURE, NULL, 0, &n);
	free(m);
}

static void
test_mailsrv_dsn__orcpt_envid_xtext(void **state)
{
	struct queue_rcpt	r[3];
	struct queue_env	env;
	struct parsed		ps;
	const struct part	*st;
	char			*m;
	size_t			 n;

	rcpt(&r[0], "a+b@x.example", 0, QUEUE_RCPT_FAILED, "5.1.1 x");
	r[0].orcpt = (char *)"rfc822;a+2Bb@x";
	rcpt(&r[1], "c@x.example", 0, QUEUE_RCPT_FAILED, "5.1.1 x");
	r[1].orcpt = (char *)"rfc822;c+3Dd+zz+2@x";	/* bad escapes kept */
	rcpt(&r[2], "e@x.example", 0, QUEUE_RCPT_FAILED, "5.1.1 x");
	r[2].orcpt = (char *)"no-type-here";		/* not reported */
	env_init(&env, r, 3);
	env.envid = (char *)"QQ+2Bid+3D1";
	m = build(&env, DSN_FAILURE, ORIG, sizeof(ORIG) - 1, &n);
	parse(m, n, &ps);
	st = &ps.p[1];
	assert_true(has_field(st->body, st->body_len,
	    "Original-Recipient: rfc822;a+b@x"));
	assert_true(has_field(st->body, st->body_len,
	    "Original-Recipient: rfc822;c=d+zz+2@x"));
	assert_int_equal(count_str(m, n, "Original-Recipient:"), 2);
	assert_true(has_field(st->body, st->body_len,
	    "Original-Envelope-Id: QQ+id=1"));
	free(m);
}

static void
test_mailsrv_dsn__header_injection_sanitized(void **state)
{
	struct queue_rcpt	r[2];
	struct queue_env	env;
	struct parsed		ps;
	const struct part	*st;
	char			*m;
	size_t			 n;

	rcpt(&r[0], "bob@example.net", 0, QUEUE_RCPT_FAILED,
	    "5.1.1 x\r\nBcc: evil");
	r[0].orcpt = (char *)"rfc822;o@x+0D+0ABcc:+20evil2";
	rcpt(&r[1], "c@x\r\nBcc: evil3", 0, QUEUE_RCPT_FAILED,
	    "5.1.1\nBcc: evil4\r\n\r\nbody");
	env_init(&env, r, 2);
	env.sender = (char *)"alice@example.com>\r\nBcc: evil5";
	env.envid = (char *)"id+0D+0ABcc:+20evil6";
	m = build(&env, DSN_FAILURE, ORIG, sizeof(ORIG) - 1, &n);
	parse(m, n, &ps);
	assert_int_equal(count_lines(m, n, "Bcc:"), 0);
	assert_int_equal(count_lines(m, n, "body"), 0);
	st = &ps.p[1];
	assert_true(has_field(st->body, st->body_len,
	    "Diagnostic-Code: smtp; x Bcc: evil"));
	assert_true(has_field(st->body, st->body_len,
	    "Original-Recipient: rfc822;o@x Bcc: evil2"));
	assert_true(has_field(st->body, st->body_len,
	    "Final-Recipient: rfc822; c@x Bcc: evil3"));
	assert_true(has_field(st->body, st->body_len,
	    "Diagnostic-Code: smtp; Bcc: evil4 body"));
	assert_true(has_field(ps.top, ps.top_len,
	    "To: <alice@example.com> Bcc: evil5>"));
	/* the per-message block and two recipient blocks, no more */
	assert_int_equal(count_str(st->body, st->body_len, "\r\n\r\n"), 2);
	free(m);
}

/* Long and many strings: CRLF everywhere, no line over 998 octets. */
static void
test_mailsrv_dsn__lines_crlf_bounded(void **state)
{
	struct queue_rcpt	 r[50];
	struct queue_env	 env;
	struct parsed		 ps;
	char			 addr[50][600], *status, *m;
	size_t			 n, i;

	status = xmalloc(5001);
	memcpy(status, "5.1.1 ", 6);
	for (i = 6; i < 5000; i++)
		status[i] = (i > 3000 || i % 7 != 0) ? 'w' : ' ';
	status[5000] = '\0';
	for (i = 0; i < 50; i++) {
		memset(addr[i], 'a' + (int)(i % 26), sizeof(addr[i]) - 1);
		addr[i][sizeof(addr[i]) - 1] = '\0';
		addr[i][300] = '@';
		rcpt(&r[i], addr[i], 0, QUEUE_RCPT_FAILED, status);
		r[i].orcpt = addr[i];
	}
	env_init(&env, r, 50);
	env.sender = addr[0];
	env.envid = status;
	m = build(&env, DSN_FAILURE, ORIG, sizeof(ORIG) - 1, &n);
	parse(m, n, &ps);	/* check_lines() inside */
	assert_int_equal(count_str(m, n, "Final-Recipient:"), 50);
	free(m);
	free(status);
}

static void
test_mailsrv_dsn__boundary_not_in_original(void **state)
{
	static const char	 orig[] = "Subject: =_amanat_dsn_\r\n\r\n"
	    "--=_amanat_dsn_\r\n--=_amanat_dsn_0123456789abcdef--\r\n";
	struct queue_rcpt	 r[1];
	struct queue_env	 env;
	struct parsed		 ps;
	char			*m, first[128] = "";
	size_t			 n;
	int			 i;

	rcpt(&r[0], "bob@example.net", 0, QUEUE_RCPT_FAILED,
	    "5.1.1 --=_amanat_dsn_ in a status");
	env_init(&env, r, 1);
	env.ret_full = 1;
	for (i = 0; i < 50; i++) {
		m = build(&env, DSN_FAILURE, orig, sizeof(orig) - 1, &n);
		parse(m, n, &ps);
		assert_null(memmem(orig, sizeof(orig) - 1, ps.boundary,
		    strlen(ps.boundary)));
		assert_int_equal(ps.p[2].body_len, sizeof(orig) - 1);
		/* random: never the same twice */
		assert_string_not_equal(first, ps.boundary);
		if (i == 0)
			memcpy(first, ps.boundary, sizeof(ps.boundary));
		free(m);
	}
}

/* SMTPUTF8: UTF-8 kept, RFC 6533 types; else '?' and plain types. */
static void
test_mailsrv_dsn__smtputf8_global_types(void **state)
{
	static const char	 orig[] = "Subject: h\xc3\xa9llo\r\n\r\nb\r\n";
	struct queue_rcpt	 r[1];
	struct queue_env	 env;
	struct parsed		 ps;
	char			*m;
	size_t			 n;

	rcpt(&r[0], "j\xc3\xb6rg@example.net", 0, QUEUE_RCPT_FAILED,
	    "5.1.1 unknown \xff\xc3 user");
	env_init(&env, r, 1);
	env.smtputf8 = 1;
	env.ret_full = 1;
	m = build(&env, DSN_FAILURE, orig, sizeof(orig) - 1, &n);
	parse(m, n, &ps);
	assert_true(has_field(ps.top, ps.top_len,
	    "Content-Transfer-Encoding: 8bit"));
	assert_true(part_is(&ps.p[0], "text/plain; charset=utf-8"));
	assert_true(part_is(&ps.p[1], "message/global-delivery-status"));
	assert_true(part_is(&ps.p[2], "message/global"));
	assert_true(has_field(ps.p[1].body, ps.p[1].body_len,
	    "Final-Recipient: utf-8; j\xc3\xb6rg@example.net"));
	assert_true(has_field(ps.p[1].body, ps.p[1].body_len,
	    "Diagnostic-Code: smtp; unknown ?? user"));
	free(m);
	/* the same without SMTPUTF8: ASCII report, 8-bit original */
	env.smtputf8 = 0;
	m = build(&env, DSN_FAILURE, orig, sizeof(orig) - 1, &n);
	parse(m, n, &ps);
	assert_true(part_is(&ps.p[0], "text/plain; charset=us-ascii"));
	assert_true(part_is(&ps.p[1], "message/delivery-status"));
	assert_true(part_is(&ps.p[2], "message/rfc822"));
	assert_true(has_field(ps.p[2].hdr, ps.p[2].hdr_len,
	    "Content-Transfer-Encoding: 8bit"));
	assert_true(has_field(ps.p[1].body, ps.p[1].body_len,
	    "Final-Recipient: rfc822; j??rg@example.net"));
	assert_int_equal(count_str(ps.p[1].body, ps.p[1].body_len,
	    "\xc3"), 0);
	free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mailsrv_dsn__failure_reports_failed_only),
		cmocka_unit_test(test_mailsrv_dsn__top_headers),
		cmocka_unit_test(test_mailsrv_dsn__notify_rules),
		cmocka_unit_test(test_mailsrv_dsn__notify_never_excluded),
		cmocka_unit_test(test_mailsrv_dsn__success_only_notify_success),
		cmocka_unit_test(test_mailsrv_dsn__delay_only_notify_delay),
		cmocka_unit_test(test_mailsrv_dsn__status_code_split),
		cmocka_unit_test(test_mailsrv_dsn__ret_hdrs_headers_only),
		cmocka_unit_test(test_mailsrv_dsn__ret_full_whole_original),
		cmocka_unit_test(test_mailsrv_dsn__huge_original_headers_only),
		cmocka_unit_test(test_mailsrv_dsn__huge_header_section_cut),
		cmocka_unit_test(
		    test_mailsrv_dsn__unsafe_original_headers_only),
		cmocka_unit_test(test_mailsrv_dsn__null_sender_inval),
		cmocka_unit_test(test_mailsrv_dsn__bad_arguments_inval),
		cmocka_unit_test(test_mailsrv_dsn__orcpt_envid_xtext),
		cmocka_unit_test(test_mailsrv_dsn__header_injection_sanitized),
		cmocka_unit_test(test_mailsrv_dsn__lines_crlf_bounded),
		cmocka_unit_test(test_mailsrv_dsn__boundary_not_in_original),
		cmocka_unit_test(test_mailsrv_dsn__smtputf8_global_types),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
