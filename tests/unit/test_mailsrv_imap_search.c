/*
 * test_mailsrv_imap_search.c -- unit tests for mailsrv/imap/imap_search
 * (SEARCH / UID SEARCH keys, matching, SEARCH and ESEARCH responses).
 *
 * Runs in: the unit test runner (cmocka).
 * Failure policy: assertions abort the case.
 * SECURITY: covers both limits at exactly max and max+1 (nesting depth,
 * number of keys), every syntax error path, and the three-valued match
 * that lets the session skip loading messages.
 *
 * The commands go through the real command parser, so literals, quoted
 * strings and lists arrive exactly as from a client.  The mailbox is a
 * synthetic array of store_msginfo; content keys use real messages.
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
#include "mailsrv/imap/imap_msg.h"
#include "mailsrv/imap/imap_parser.h"
#include "mailsrv/imap/imap_search.h"
#include "mailsrv/store/store.h"

#define DAY	86400LL
#define D2024_01_01	19723LL
#define NMSGS	7

/*
 * The mailbox: seq, UID, flags, keywords (bit 0 $Forwarded, 1 Junk,
 * 2 work), internal date, size, MODSEQ.
 */
static const struct store_msginfo box[NMSGS] = {
	{ 3, STORE_F_SEEN, 0, D2024_01_01 * DAY, 100, 5, 0 },
	{ 4, STORE_F_SEEN | STORE_F_ANSWERED, 0x1,
	    D2024_01_01 * DAY + DAY - 1, 200, 6, 0 },
	{ 5, STORE_F_FLAGGED, 0x2, (D2024_01_01 + 1) * DAY, 300, 7, 0 },
	{ 7, STORE_F_DELETED, 0, (D2024_01_01 + 2) * DAY + 43200, 1000, 8,
	    0 },
	{ 10, STORE_F_DRAFT | STORE_F_SEEN, 0x4, D2024_01_01 * DAY - 1, 50, 9,
	    0 },
	{ 11, 0, 0x5, 0, 0, 10, 0 },
	{ 20, STORE_F_SEEN | STORE_F_FLAGGED | STORE_F_ANSWERED, 0,
	    19782 * DAY + 36000, 5000, 20, 0 },
};
static const uint32_t box_uids[NMSGS] = { 3, 4, 5, 7, 10, 11, 20 };
static char kw0[] = "$Forwarded", kw1[] = "Junk", kw2[] = "work";
static char *const box_kw[] = { kw0, kw1, kw2 };
static const uint32_t saved_uids[] = { 4, 11, 99 };

static struct imap_parser	*prs;

static struct imap_search_env
env_of(unsigned flags)
{
	struct imap_search_env	env;

	memset(&env, 0, sizeof(env));
	env.nmsgs = NMSGS;
	env.uids = box_uids;
	env.kw = box_kw;
	env.nkw = 3;
	env.saved = saved_uids;
	env.nsaved = 3;
	env.flags = flags;
	return env;
}

/* "a SEARCH <args>" through the real parser; valid until the next call. */
static const struct imap_cmd *
cmd_of(const char *args)
{
	struct imap_parser_limits	 lim;
	char				*text;
	size_t				 off = 0, used, len;
	int				 rc;

	imap_parser_free(&prs);
	imap_parser_limits_default(&lim, 1);
	prs = imap_parser_new(&lim, IMAP_PARSER_UTF8 |
	    IMAP_PARSER_LITERAL_PLUS);
	len = strlen(args) + 12;
	text = malloc(len + 1);
	assert_non_null(text);
	snprintf(text, len + 1, "a SEARCH %s\r\n", args);
	len = strlen(text);
	for (;;) {
		rc = imap_parser_feed(prs, text + off, len - off, &used);
		off += used;
		if (rc == IMAP_PARSE_CONTINUE)
			continue;
		assert_int_equal(rc, 0);
		break;
	}
	free(text);
	return imap_parser_cmd(prs);
}

static int
parse_env(struct imap_search **s, const char *args,
    const struct imap_search_env *env)
{
	const struct imap_cmd	*cmd = cmd_of(args);

	return imap_search_parse(s, cmd->args, cmd->nargs, env);
}

static int
parse_flags(struct imap_search **s, const char *args, unsigned flags)
{
	struct imap_search_env	env = env_of(flags);

	return parse_env(s, args, &env);
}

/*
 * The matching sequence numbers as "1 2 5" ("?3" for a message whose
 * result needs its content; msgs may be NULL).
 */
static void
run_msgs(char *out, size_t outlen, const struct imap_search *s,
    const struct store_msginfo *msgs, size_t n, struct imap_msg **content)
{
	size_t	i, off = 0;
	int	r;

	out[0] = '\0';
	for (i = 0; i < n; i++) {
		r = imap_search_match(s, (uint32_t)i + 1, &msgs[i],
		    content != NULL ? content[i] : NULL);
		assert_true(r == 0 || r == 1 || r == IMAP_SEARCH_NEEDMSG);
		if (r == 0)
			continue;
		off += (size_t)snprintf(out + off, outlen - off, "%s%s%zu",
		    off ? " " : "", r == 1 ? "" : "?", i + 1);
		assert_true(off < outlen);
	}
}

/* Parse args (must succeed) and return the matches in the box. */
static const char *
matches_flags(const char *args, unsigned flags)
{
	static char		 out[256];
	struct imap_search	*s = NULL;
	int			 rc;

	rc = parse_flags(&s, args, flags);
	if (rc != 0)
		fail_msg("parse \"%s\": %d %s", args, rc, err_msg());
	run_msgs(out, sizeof(out), s, box, NMSGS, NULL);
	imap_search_free(&s);
	return out;
}

static const char *
matches(const char *args)
{
	return matches_flags(args, IMAP_SEARCH_E_CONDSTORE);
}

static int
parse_rc(const char *args, unsigned flags)
{
	struct imap_search	*s = NULL;
	int			 rc;

	rc = parse_flags(&s, args, flags);
	if (rc == 0)
		assert_non_null(s);
	else
		assert_null(s);
	imap_search_free(&s);
	return rc;
}

#define BAD(args)	assert_int_equal(parse_rc(args, \
			    IMAP_SEARCH_E_CONDSTORE), ERR_PROTO)

static int
teardown(void **state)
{
	(void)state;
	imap_parser_free(&prs);
	return 0;
}

/* ------------------------------------------------------------ keys */

static void
test_mailsrv_imap_search__flags(void **state)
{
	(void)state;
	assert_string_equal(matches("ALL"), "1 2 3 4 5 6 7");
	assert_string_equal(matches("SEEN"), "1 2 5 7");
	assert_string_equal(matches("UNSEEN"), "3 4 6");
	assert_string_equal(matches("ANSWERED"), "2 7");
	assert_string_equal(matches("UNANSWERED"), "1 3 4 5 6");
	assert_string_equal(matches("FLAGGED"), "3 7");
	assert_string_equal(matches("UNFLAGGED"), "1 2 4 5 6");
	assert_string_equal(matches("DELETED"), "4");
	assert_string_equal(matches("UNDELETED"), "1 2 3 5 6 7");
	assert_string_equal(matches("DRAFT"), "5");
	assert_string_equal(matches("UNDRAFT"), "1 2 3 4 6 7");
	/* no \Recent */
	assert_string_equal(matches("RECENT"), "");
	assert_string_equal(matches("NEW"), "");
	assert_string_equal(matches("OLD"), "1 2 3 4 5 6 7");
	/* keys are case-insensitive; the top level is an AND */
	assert_string_equal(matches("seen Flagged"), "7");
	assert_string_equal(matches("SEEN UNSEEN"), "");
}

static void
test_mailsrv_imap_search__keywords(void **state)
{
	(void)state;
	assert_string_equal(matches("KEYWORD $Forwarded"), "2 6");
	assert_string_equal(matches("KEYWORD junk"), "3");
	assert_string_equal(matches("KEYWORD WORK"), "5 6");
	assert_string_equal(matches("UNKEYWORD $forwarded"), "1 3 4 5 7");
	/* not a keyword of this mailbox */
	assert_string_equal(matches("KEYWORD nosuch"), "");
	assert_string_equal(matches("UNKEYWORD nosuch"), "1 2 3 4 5 6 7");
	assert_string_equal(matches("NOT KEYWORD nosuch"), "1 2 3 4 5 6 7");
	/* flag-keyword is an atom: no system flags, no strings */
	BAD("KEYWORD \\Seen");
	BAD("KEYWORD \"Junk\"");
	BAD("KEYWORD");
}

static void
test_mailsrv_imap_search__sizes(void **state)
{
	(void)state;
	assert_string_equal(matches("LARGER 200"), "3 4 7");
	assert_string_equal(matches("LARGER 199"), "2 3 4 7");
	assert_string_equal(matches("SMALLER 100"), "5 6");
	assert_string_equal(matches("SMALLER 101"), "1 5 6");
	assert_string_equal(matches("LARGER 0"), "1 2 3 4 5 7");
	assert_string_equal(matches("SMALLER 0"), "");
	assert_string_equal(matches("LARGER 18446744073709551615"), "");
	BAD("LARGER");
	BAD("LARGER abc");
	BAD("SMALLER -1");
	BAD("SMALLER \"5\"");
}

/* BEFORE/ON/SINCE: the UTC day of the internal date, at its edges. */
static void
test_mailsrv_imap_search__internal_dates(void **state)
{
	(void)state;
	/* msg 1 at 2024-01-01 00:00:00, 2 at 23:59:59, 5 at 2023-12-31
	 * 23:59:59, 3 at 2024-01-02 00:00:00 */
	assert_string_equal(matches("ON 1-Jan-2024"), "1 2");
	assert_string_equal(matches("ON \"01-jan-2024\""), "1 2");
	assert_string_equal(matches("BEFORE 1-Jan-2024"), "5 6");
	assert_string_equal(matches("SINCE 1-Jan-2024"), "1 2 3 4 7");
	assert_string_equal(matches("SINCE 2-Jan-2024"), "3 4 7");
	assert_string_equal(matches("BEFORE 2-Jan-2024"), "1 2 5 6");
	assert_string_equal(matches("ON 31-Dec-2023"), "5");
	assert_string_equal(matches("ON 29-Feb-2024"), "7");
	assert_string_equal(matches("ON 1-Jan-1970"), "6");
	assert_string_equal(matches("SINCE 2-Jan-2024 BEFORE 3-Jan-2024"),
	    "3");
	/* internal-date keys never need the message */
	assert_string_equal(matches("NOT BEFORE 1-Jan-2024"), "1 2 3 4 7");
	BAD("BEFORE");
	BAD("BEFORE 32-Jan-2024");
	BAD("ON 1-Foo-2024");
	BAD("SINCE 2024-01-01");
	BAD("SINCE (1-Jan-2024)");
	BAD("SINCE {10+}\r\n1-Jan-2024");
}

static void
test_mailsrv_imap_search__sequence_sets(void **state)
{
	struct imap_search_env	 env = env_of(0);
	struct imap_search	*s = NULL;
	char			 out[64];

	(void)state;
	assert_string_equal(matches("2:4"), "2 3 4");
	assert_string_equal(matches("4:2"), "2 3 4");
	assert_string_equal(matches("*"), "7");
	assert_string_equal(matches("5:*"), "5 6 7");
	assert_string_equal(matches("*:6"), "6 7");
	assert_string_equal(matches("1,3,7"), "1 3 7");
	assert_string_equal(matches("1,3 2:7"), "3");
	assert_string_equal(matches("100"), "");
	assert_string_equal(matches("6:100"), "6 7");
	assert_string_equal(matches("(1:2) (2:3)"), "2");
	BAD("0");
	BAD("1:0");
	BAD("1:");
	BAD(":1");
	BAD("1,,2");
	BAD("4294967296");
	BAD("*x");

	/* empty mailbox: "*" matches nothing; plain numbers still parse */
	env.nmsgs = 0;
	env.uids = NULL;
	assert_int_equal(parse_env(&s, "1:*", &env), 0);
	run_msgs(out, sizeof(out), s, box, NMSGS, NULL);
	assert_string_equal(out, "");
	imap_search_free(&s);
	assert_int_equal(parse_env(&s, "UID *", &env), 0);
	run_msgs(out, sizeof(out), s, box, NMSGS, NULL);
	assert_string_equal(out, "");
	imap_search_free(&s);
	assert_int_equal(parse_env(&s, "NOT *", &env), 0);
	run_msgs(out, sizeof(out), s, box, 2, NULL);
	assert_string_equal(out, "1 2");
	imap_search_free(&s);
}

static void
test_mailsrv_imap_search__uid_sets(void **state)
{
	(void)state;
	assert_string_equal(matches("UID 4:10"), "2 3 4 5");
	assert_string_equal(matches("UID *"), "7");
	/* "*" is the last UID: 25:* is 20:25 */
	assert_string_equal(matches("UID 25:*"), "7");
	assert_string_equal(matches("UID 1:2"), "");
	assert_string_equal(matches("UID 1:*"), "1 2 3 4 5 6 7");
	assert_string_equal(matches("UID 3,11,12:19"), "1 6");
	assert_string_equal(matches("uid 7 2:4"), "4");
	BAD("UID");
	BAD("UID 0");
	BAD("UID ALL");
	BAD("UID (1)");
	BAD("UID \"1\"");
}

/* "$" (SEARCHRES): the saved UIDs, as a key and after UID. */
static void
test_mailsrv_imap_search__saved(void **state)
{
	struct imap_search_env	 env = env_of(0);
	struct imap_search	*s = NULL;
	char			 out[64];

	(void)state;
	assert_string_equal(matches("$"), "2 6");
	assert_string_equal(matches("UID $"), "2 6");
	assert_string_equal(matches("NOT $"), "1 3 4 5 7");
	assert_string_equal(matches("$ SEEN"), "2");
	assert_string_equal(matches("OR $ 1"), "1 2 6");
	BAD("$,1");
	BAD("1,$");
	BAD("$:3");
	BAD("UID $$");

	/* nothing saved: "$" is a valid, empty set */
	env.saved = NULL;
	env.nsaved = 0;
	assert_int_equal(parse_env(&s, "$", &env), 0);
	run_msgs(out, sizeof(out), s, box, NMSGS, NULL);
	assert_string_equal(out, "");
	imap_search_free(&s);

	/* the search keeps its own copy of "$" */
	env = env_of(0);
	{
		uint32_t	tmp[1] = { 5 };

		env.saved = tmp;
		env.nsaved = 1;
		assert_int_equal(parse_env(&s, "$", &env), 0);
		tmp[0] = 3;
	}
	run_msgs(out, sizeof(out), s, box, NMSGS, NULL);
	assert_string_equal(out, "3");
	imap_search_free(&s);
}

static void
test_mailsrv_imap_search__or_not_lists(void **state)
{
	(void)state;
	assert_string_equal(matches("OR DELETED DRAFT"), "4 5");
	assert_string_equal(matches("OR DELETED OR DRAFT FLAGGED"), "3 4 5 7");
	assert_string_equal(matches("NOT SEEN"), "3 4 6");
	assert_string_equal(matches("NOT NOT SEEN"), "1 2 5 7");
	assert_string_equal(matches("NOT OR SEEN FLAGGED"), "4 6");
	assert_string_equal(matches("OR (SEEN ANSWERED) DELETED"), "2 4 7");
	assert_string_equal(matches("(SEEN (ANSWERED (FLAGGED)))"), "7");
	assert_string_equal(matches("OR NOT SEEN 1"), "1 3 4 6");
	assert_string_equal(matches("NOT (1:3 SEEN)"), "3 4 5 6 7");
	assert_string_equal(matches("OR (1) (2) 3"), "");
	assert_string_equal(matches("OR 1 2 OR 2 3"), "2");
	BAD("OR");
	BAD("OR SEEN");
	BAD("NOT");
	BAD("()");
	BAD("(SEEN) ()");
	BAD("(NOT)");
	BAD("(OR SEEN) FLAGGED");
}

static void
test_mailsrv_imap_search__modseq(void **state)
{
	struct imap_search	*s = NULL;

	(void)state;
	assert_string_equal(matches("MODSEQ 9"), "5 6 7");
	assert_string_equal(matches("MODSEQ 0"), "1 2 3 4 5 6 7");
	assert_string_equal(matches("modseq \"/flags/\\\\seen\" all 10"),
	    "6 7");
	assert_string_equal(matches("MODSEQ \"/flags/$Forwarded\" priv 20"),
	    "7");
	assert_string_equal(matches("MODSEQ \"/FLAGS/junk\" Shared 21"), "");
	assert_string_equal(matches("MODSEQ 9223372036854775807"), "");
	assert_string_equal(matches("NOT MODSEQ 7"), "1 2");
	BAD("MODSEQ");
	BAD("MODSEQ x");
	BAD("MODSEQ 9223372036854775808");
	BAD("MODSEQ \"/flags/\\\\seen\" 5");
	BAD("MODSEQ \"/flags/\\\\seen\" both 5");
	BAD("MODSEQ \"/flags/\" all 5");
	BAD("MODSEQ \"/other/x\" all 5");
	BAD("MODSEQ \"/flags/a b\" all 5");
	BAD("MODSEQ \"/flags/\\\\seen\" all");
	/* without CONDSTORE it is an unknown key */
	assert_int_equal(parse_rc("MODSEQ 5", 0), ERR_PROTO);

	assert_int_equal(parse_flags(&s, "NOT MODSEQ 5",
	    IMAP_SEARCH_E_CONDSTORE), 0);
	assert_true(imap_search_uses_modseq(s));
	imap_search_free(&s);
	assert_int_equal(parse_flags(&s, "SEEN", IMAP_SEARCH_E_CONDSTORE),
	    0);
	assert_false(imap_search_uses_modseq(s));
	imap_search_free(&s);
}

static void
test_mailsrv_imap_search__charset(void **state)
{
	const unsigned	utf8 = IMAP_SEARCH_E_UTF8;
	const unsigned	rev2 = IMAP_SEARCH_E_UTF8 | IMAP_SEARCH_E_REV2;

	(void)state;
	assert_int_equal(parse_rc("CHARSET UTF-8 SEEN", 0), 0);
	assert_int_equal(parse_rc("charset utf-8 SEEN", 0), 0);
	assert_int_equal(parse_rc("CHARSET US-ASCII SEEN", 0), 0);
	assert_int_equal(parse_rc("CHARSET \"us-ascii\" SEEN", 0), 0);
	assert_int_equal(parse_rc("RETURN (COUNT) CHARSET UTF-8 SEEN", 0), 0);
	assert_int_equal(parse_rc("CHARSET ISO-8859-1 SEEN", 0),
	    IMAP_SEARCH_ERR_BADCHARSET);
	assert_int_equal(parse_rc("CHARSET KOI8-R SEEN", rev2),
	    IMAP_SEARCH_ERR_BADCHARSET);
	/* UTF8=ACCEPT (RFC 6855 3): no CHARSET; IMAP4rev2 allows it */
	assert_int_equal(parse_rc("CHARSET UTF-8 SEEN", utf8), ERR_PROTO);
	assert_int_equal(parse_rc("CHARSET UTF-8 SEEN", rev2), 0);
	assert_int_equal(parse_rc("SEEN", utf8), 0);
	/* syntax */
	assert_int_equal(parse_rc("CHARSET", 0), ERR_PROTO);
	assert_int_equal(parse_rc("CHARSET UTF-8", 0), ERR_PROTO);
	assert_int_equal(parse_rc("CHARSET (UTF-8) SEEN", 0), ERR_PROTO);
	assert_int_equal(parse_rc("CHARSET {5+}\r\nUTF-8 SEEN", 0),
	    ERR_PROTO);
	/* CHARSET comes after RETURN and before the keys */
	assert_int_equal(parse_rc("SEEN CHARSET UTF-8", 0), ERR_PROTO);
	assert_int_equal(parse_rc("CHARSET UTF-8 RETURN (ALL) SEEN", 0),
	    ERR_PROTO);
}

static void
test_mailsrv_imap_search__syntax_errors(void **state)
{
	(void)state;
	BAD("");
	BAD("FOO");
	BAD("SEEN FOO");
	BAD("SUBJECT");
	BAD("HEADER");
	BAD("HEADER Subject");
	BAD("HEADER \"\" x");
	BAD("HEADER \"X:Y\" x");
	BAD("HEADER (a) x");
	BAD("BODY");
	BAD("BODY (x)");
	BAD("\"SEEN\"");
	BAD("{4+}\r\nSEEN");
	BAD("NIL");
	BAD("RETURN");
	BAD("RETURN ALL SEEN");
	BAD("RETURN (FOO) SEEN");
	BAD("RETURN (MIN (MAX)) SEEN");
	BAD("RETURN (PARTIAL 1:10) SEEN");
	BAD("RETURN (ALL)");
	BAD("RETURN () RETURN () SEEN");
	BAD("SEEN RETURN (ALL)");
	BAD("BODY[] x");
	assert_string_equal(err_msg(), "expected search key");
}

/* ------------------------------------------------------------ limits */

static char *
repeat(const char *unit, size_t n, const char *tail)
{
	size_t	ul = strlen(unit), tl = strlen(tail), i;
	char	*s = malloc(ul * n + tl + 1);

	assert_non_null(s);
	for (i = 0; i < n; i++)
		memcpy(s + i * ul, unit, ul);
	memcpy(s + n * ul, tail, tl + 1);
	return s;
}

static void
test_mailsrv_imap_search__depth_limit(void **state)
{
	struct imap_search	*s = NULL;
	char			*args;
	char			 out[64];

	(void)state;
	/* a key inside IMAP_SEARCH_DEPTH_MAX NOTs: accepted */
	args = repeat("NOT ", IMAP_SEARCH_DEPTH_MAX, "SEEN");
	assert_int_equal(parse_flags(&s, args, 0), 0);
	run_msgs(out, sizeof(out), s, box, NMSGS, NULL);
	assert_string_equal(out, "1 2 5 7");	/* an even number of NOTs */
	imap_search_free(&s);
	free(args);
	args = repeat("NOT ", IMAP_SEARCH_DEPTH_MAX + 1, "SEEN");
	assert_int_equal(parse_rc(args, 0), ERR_TOOBIG);
	free(args);

	/* OR nests on its first argument too */
	args = repeat("OR ", IMAP_SEARCH_DEPTH_MAX,
	    "SEEN" " DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT"
	    " DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT"
	    " DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT"
	    " DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT"
	    " DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT"
	    " DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT"
	    " DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT"
	    " DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT DRAFT");
	assert_int_equal(parse_flags(&s, args, 0), 0);
	run_msgs(out, sizeof(out), s, box, NMSGS, NULL);
	assert_string_equal(out, "1 2 5 7");
	imap_search_free(&s);
	free(args);
	args = repeat("OR ", IMAP_SEARCH_DEPTH_MAX + 1, "SEEN");
	assert_int_equal(parse_rc(args, 0), ERR_TOOBIG);
	free(args);

	/* parentheses and NOT count together: 30 lists + 34 NOTs */
	args = repeat("(", 30, "");
	{
		char	*nots = repeat("NOT ", IMAP_SEARCH_DEPTH_MAX - 30,
			    "SEEN");
		char	*close = repeat(")", 30, "");
		size_t	 len = strlen(args) + strlen(nots) + strlen(close) + 8;
		char	*all = malloc(len);

		assert_non_null(all);
		snprintf(all, len, "%s%s%s", args, nots, close);
		assert_int_equal(parse_rc(all, 0), 0);
		snprintf(all, len, "%sNOT %s%s", args, nots, close);
		assert_int_equal(parse_rc(all, 0), ERR_TOOBIG);
		free(all);
		free(nots);
		free(close);
	}
	free(args);
}

static void
test_mailsrv_imap_search__keys_limit(void **state)
{
	char	*args;

	(void)state;
	args = repeat("SEEN ", IMAP_SEARCH_KEYS_MAX - 1, "SEEN");
	assert_int_equal(parse_rc(args, 0), 0);
	free(args);
	args = repeat("SEEN ", IMAP_SEARCH_KEYS_MAX, "SEEN");
	assert_int_equal(parse_rc(args, 0), ERR_TOOBIG);
	assert_string_equal(err_msg(), "too many search keys");
	free(args);
	/* NOT, OR and lists count as keys */
	args = repeat("NOT SEEN ", IMAP_SEARCH_KEYS_MAX / 2, "");
	assert_int_equal(parse_rc(args, 0), 0);
	free(args);
	args = repeat("NOT SEEN ", IMAP_SEARCH_KEYS_MAX / 2, "ALL");
	assert_int_equal(parse_rc(args, 0), ERR_TOOBIG);
	free(args);
	args = repeat("(SEEN) ", IMAP_SEARCH_KEYS_MAX / 2, "");
	assert_int_equal(parse_rc(args, 0), 0);
	free(args);
	args = repeat("(SEEN) ", IMAP_SEARCH_KEYS_MAX / 2, "1");
	assert_int_equal(parse_rc(args, 0), ERR_TOOBIG);
	free(args);
}

/* ---------------------------------------------- msg NULL: three-valued */

static void
test_mailsrv_imap_search__needs_msg(void **state)
{
	static const struct {
		const char	*args;
		int		 heavy;
		const char	*want;
	} t[] = {
		{ "SEEN", 0, "1 2 5 7" },
		{ "SUBJECT x", 1, "?1 ?2 ?3 ?4 ?5 ?6 ?7" },
		{ "SEEN FROM x", 1, "?1 ?2 ?5 ?7" },
		{ "FROM x SEEN", 1, "?1 ?2 ?5 ?7" },
		{ "OR SEEN TO x", 1, "1 2 ?3 ?4 5 ?6 7" },
		{ "OR CC x SEEN", 1, "1 2 ?3 ?4 5 ?6 7" },
		{ "NOT BCC x", 1, "?1 ?2 ?3 ?4 ?5 ?6 ?7" },
		{ "NOT (DELETED BODY x)", 1, "1 2 3 ?4 5 6 7" },
		{ "DELETED TEXT x", 1, "?4" },
		{ "HEADER X-Spam yes", 1, "?1 ?2 ?3 ?4 ?5 ?6 ?7" },
		{ "SENTON 1-Jan-2024 7", 1, "?7" },
		{ "SENTBEFORE 1-Jan-2024 1", 1, "?1" },
		{ "SENTSINCE 1-Jan-2024 2", 1, "?2" },
		{ "ON 1-Jan-2024", 0, "1 2" },
		{ "OR NOT SUBJECT a NOT SUBJECT b", 1,
		    "?1 ?2 ?3 ?4 ?5 ?6 ?7" },
		{ "OR 1 OR 2 SUBJECT x", 1, "1 2 ?3 ?4 ?5 ?6 ?7" },
		{ "KEYWORD nosuch SUBJECT x", 1, "" },
		{ "UNKEYWORD nosuch OR SUBJECT x ALL", 1,
		    "1 2 3 4 5 6 7" },
	};
	struct imap_search	*s = NULL;
	char			 out[64];
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(parse_flags(&s, t[i].args, 0), 0);
		assert_int_equal(imap_search_needs_msg(s), t[i].heavy);
		run_msgs(out, sizeof(out), s, box, NMSGS, NULL);
		if (strcmp(out, t[i].want) != 0)
			fail_msg("%s: got \"%s\" want \"%s\"", t[i].args, out,
			    t[i].want);
		imap_search_free(&s);
	}
}

/* ------------------------------------------------------------ content */

/*
 * Real messages for box[0..3]: 1 has a Date: late on 1 Jan in
 * -0200 (2 Jan in UTC), 2 has no Date: (its internal date is 1 Jan
 * 23:59:59 UTC), 3 is early on 2 Jan in +0100 (1 Jan in UTC); 4 for
 * box[3].
 */
static const char *const msg_text[4] = {
	"Date: Mon, 1 Jan 2024 23:30:00 -0200\r\n"
	"From: Alice Example <alice@example.org>\r\n"
	"To: bob@example.com\r\n"
	"Cc: carol@example.net\r\n"
	"Bcc: dave@example.com\r\n"
	"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= from Alice\r\n"
	"X-Spam: yes\r\n"
	"Content-Type: text/plain; charset=us-ascii\r\n"
	"\r\n"
	"Hello Bob, the Quarterly report is attached.\r\n",

	"From: bob@example.com\r\n"
	"To: alice@example.org\r\n"
	"Subject: Re: report\r\n"
	"\r\n"
	"Thanks!\r\n",

	"Date: Tue, 2 Jan 2024 00:30:00 +0100\r\n"
	"From: Carol <carol@example.net>\r\n"
	"To: Zoe <zoe@example.org>\r\n"
	"Subject: quarterly numbers\r\n"
	"\r\n"
	"Nothing to see.\r\n",

	/* an unusable Date: counts as none (internal date 3 Jan 12:00) */
	"Date: the day after tomorrow\r\n"
	"Subject: late\r\n"
	"\r\n"
	"x\r\n",
};

static void
test_mailsrv_imap_search__content(void **state)
{
	static const struct {
		const char	*args;
		const char	*want;
	} t[] = {
		{ "SUBJECT \"gr\xc3\xbc\xc3\x9f" "e\"", "1" },
		{ "SUBJECT REPORT", "2" },
		{ "SUBJECT quarterly", "3" },
		{ "SUBJECT \"\"", "1 2 3 4" },
		{ "FROM alice", "1" },
		{ "FROM \"Carol <\"", "3" },
		{ "FROM example", "1 2 3" },
		{ "TO example.org", "2 3" },
		{ "CC carol", "1" },
		{ "BCC DAVE", "1" },
		{ "NOT BCC dave", "2 3 4" },
		{ "HEADER X-Spam yes", "1" },
		{ "HEADER x-spam \"\"", "1" },
		{ "HEADER Date \"\"", "1 3 4" },
		{ "HEADER X-Nothing \"\"", "" },
		{ "BODY quarterly", "1" },
		{ "BODY {7+}\r\nThanks!", "2" },
		{ "BODY alice", "" },
		{ "TEXT quarterly", "1 3" },
		{ "TEXT alice", "1 2" },
		{ "OR SUBJECT report BODY nothing", "2 3" },
		{ "SEEN TEXT quarterly", "1" },
		/* SENT*: the Date: day in its own zone, else the internal
		 * date's */
		{ "SENTON 1-Jan-2024", "1 2" },
		{ "SENTON 2-Jan-2024", "3" },
		{ "SENTBEFORE 2-Jan-2024", "1 2" },
		{ "SENTSINCE 2-Jan-2024", "3 4" },
		{ "SENTSINCE 1-Jan-2024", "1 2 3 4" },
		{ "SENTBEFORE 1-Jan-2024", "" },
		{ "ON 1-Jan-2024", "1 2" },
		{ "SENTON 3-Jan-2024", "4" },
		{ "SENTSINCE 3-Jan-2024", "4" },
		{ "HEADER DATE day", "4" },
	};
	struct imap_msg		*msgs[4] = { NULL, NULL, NULL, NULL };
	struct imap_search	*s = NULL;
	char			 out[64];
	size_t			 i;
	int			 r;

	(void)state;
	for (i = 0; i < 4; i++)
		assert_int_equal(imap_msg_parse(&msgs[i],
		    (const unsigned char *)msg_text[i], strlen(msg_text[i])),
		    0);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(parse_flags(&s, t[i].args, 0), 0);
		run_msgs(out, sizeof(out), s, box, 4, msgs);
		if (strcmp(out, t[i].want) != 0)
			fail_msg("%s: got \"%s\" want \"%s\"", t[i].args, out,
			    t[i].want);
		imap_search_free(&s);
	}
	/* the session may first try without the message */
	assert_int_equal(parse_flags(&s, "SEEN SUBJECT report", 0), 0);
	assert_int_equal(imap_search_match(s, 3, &box[2], NULL), 0);
	r = imap_search_match(s, 2, &box[1], NULL);
	assert_int_equal(r, IMAP_SEARCH_NEEDMSG);
	assert_int_equal(imap_search_match(s, 2, &box[1], msgs[1]), 1);
	assert_int_equal(imap_search_match(s, 1, &box[0], msgs[0]), 0);
	imap_search_free(&s);
	for (i = 0; i < 4; i++)
		imap_msg_free(&msgs[i]);
}

/* ------------------------------------------------------------ results */

static char *
result(const char *args, unsigned flags, int uid, const uint32_t *m,
    size_t n, uint64_t modseq)
{
	static char		 out[512];
	struct imap_search	*s = NULL;
	struct buf		 b;

	assert_int_equal(parse_flags(&s, args, flags), 0);
	buf_init(&b, 4096);
	assert_int_equal(imap_search_result(&b, s, "A282", uid, m, n,
	    modseq), 0);
	snprintf(out, sizeof(out), "%.*s", (int)b.len,
	    b.data != NULL ? (const char *)b.data : "");
	buf_free(&b);
	imap_search_free(&s);
	return out;
}

static void
test_mailsrv_imap_search__result_search(void **state)
{
	static const uint32_t	m[] = { 2, 5, 9 };
	const unsigned		cs = IMAP_SEARCH_E_CONDSTORE;

	(void)state;
	assert_string_equal(result("SEEN", 0, 0, m, 3, 0),
	    "* SEARCH 2 5 9\r\n");
	assert_string_equal(result("SEEN", 0, 1, m, 3, 0),
	    "* SEARCH 2 5 9\r\n");
	assert_string_equal(result("SEEN", 0, 0, m, 0, 0), "* SEARCH\r\n");
	/* RFC 7162 3.1.5 */
	assert_string_equal(result("MODSEQ 5", cs, 0, m, 3, 917162500),
	    "* SEARCH 2 5 9 (MODSEQ 917162500)\r\n");
	assert_string_equal(result("MODSEQ 5", cs, 0, m, 0, 0),
	    "* SEARCH\r\n");
	assert_string_equal(result("SEEN", cs, 0, m, 3, 7),
	    "* SEARCH 2 5 9\r\n");
	/* UTF8=ACCEPT alone does not change the response */
	assert_string_equal(result("SEEN", IMAP_SEARCH_E_UTF8, 0, m, 1, 0),
	    "* SEARCH 2\r\n");
}

static void
test_mailsrv_imap_search__result_esearch(void **state)
{
	static const uint32_t	m[] = { 1, 2, 3, 4, 5, 8, 10, 11, 20 };
	static const uint32_t	big[] = { 4294967294U, 4294967295U };
	const unsigned		rev2 = IMAP_SEARCH_E_UTF8 | IMAP_SEARCH_E_REV2;
	const unsigned		cs = IMAP_SEARCH_E_CONDSTORE;

	(void)state;
	/* RFC 4731 3.1 examples */
	assert_string_equal(result("RETURN (MIN COUNT) FLAGGED", 0, 0,
	    (const uint32_t []){ 2, 10, 11 }, 3, 0),
	    "* ESEARCH (TAG \"A282\") MIN 2 COUNT 3\r\n");
	assert_string_equal(result("RETURN () FLAGGED", 0, 0,
	    (const uint32_t []){ 2, 10, 11 }, 3, 0),
	    "* ESEARCH (TAG \"A282\") ALL 2,10:11\r\n");
	assert_string_equal(result("RETURN (MIN MAX COUNT ALL) SEEN", 0, 0,
	    m, 9, 0), "* ESEARCH (TAG \"A282\") MIN 1 MAX 20 COUNT 9 "
	    "ALL 1:5,8,10:11,20\r\n");
	assert_string_equal(result("RETURN (all max) SEEN", 0, 1, m, 9, 0),
	    "* ESEARCH (TAG \"A282\") UID MAX 20 ALL 1:5,8,10:11,20\r\n");
	assert_string_equal(result("RETURN (ALL) SEEN", 0, 1, big, 2, 0),
	    "* ESEARCH (TAG \"A282\") UID ALL 4294967294:4294967295\r\n");
	assert_string_equal(result("RETURN (ALL) SEEN", 0, 0, m + 5, 1, 0),
	    "* ESEARCH (TAG \"A282\") ALL 8\r\n");
	/* empty: no MIN/MAX/ALL, COUNT 0 (RFC 4731 3.1) */
	assert_string_equal(result("RETURN (MIN MAX ALL COUNT) SEEN", 0, 0,
	    m, 0, 0), "* ESEARCH (TAG \"A282\") COUNT 0\r\n");
	assert_string_equal(result("RETURN (MIN MAX ALL) SEEN", 0, 1, m, 0,
	    0), "* ESEARCH (TAG \"A282\") UID\r\n");
	assert_string_equal(result("RETURN () SEEN", 0, 0, m, 0, 0),
	    "* ESEARCH (TAG \"A282\")\r\n");
	/* IMAP4rev2: always ESEARCH, no RETURN means ALL */
	assert_string_equal(result("SEEN", rev2, 0, m, 3, 0),
	    "* ESEARCH (TAG \"A282\") ALL 1:3\r\n");
	assert_string_equal(result("SEEN", rev2, 1, m, 0, 0),
	    "* ESEARCH (TAG \"A282\") UID\r\n");
	assert_string_equal(result("RETURN (COUNT) SEEN", rev2, 0, m, 3, 0),
	    "* ESEARCH (TAG \"A282\") COUNT 3\r\n");
	/* SAVE alone: no ESEARCH; with others, theirs */
	assert_string_equal(result("RETURN (SAVE) SEEN", 0, 0, m, 3, 0), "");
	assert_string_equal(result("RETURN (SAVE) SEEN", rev2, 1, m, 3, 0),
	    "");
	assert_string_equal(result("RETURN (SAVE MIN) SEEN", 0, 0, m, 3, 0),
	    "* ESEARCH (TAG \"A282\") MIN 1\r\n");
	/* MODSEQ (RFC 4731 3.2): last, only with matches */
	assert_string_equal(result("RETURN (ALL) MODSEQ 5", cs, 1, m, 3,
	    1236), "* ESEARCH (TAG \"A282\") UID ALL 1:3 MODSEQ 1236\r\n");
	assert_string_equal(result("RETURN (COUNT) MODSEQ 5", cs, 0, m, 0,
	    0), "* ESEARCH (TAG \"A282\") COUNT 0\r\n");
	assert_string_equal(result("RETURN (SAVE) MODSEQ 5", cs, 0, m, 3, 9),
	    "");
}

static void
test_mailsrv_imap_search__result_misc(void **state)
{
	static const uint32_t	 m[] = { 1, 2, 3 };
	struct imap_search	*s = NULL;
	struct buf		 b;

	(void)state;
	assert_int_equal(parse_flags(&s, "RETURN (ALL) SEEN", 0), 0);
	/* a tag is an astring: quote-escape whatever it holds */
	buf_init(&b, 4096);
	assert_int_equal(imap_search_result(&b, s, "a\"b\\", 0, m, 1, 0), 0);
	assert_string_equal((const char *)b.data,
	    "* ESEARCH (TAG \"a\\\"b\\\\\") ALL 1\r\n");
	buf_free(&b);
	/* over the buffer's max: ERR_TOOBIG, nothing appended */
	buf_init(&b, 40);
	assert_int_equal(buf_append(&b, "x", 1), 0);
	assert_int_equal(imap_search_result(&b, s, "A1", 0, m, 3, 0), 0);
	assert_int_equal(imap_search_result(&b, s, "A1", 0, m, 3, 0),
	    ERR_TOOBIG);
	assert_string_equal((const char *)b.data,
	    "x* ESEARCH (TAG \"A1\") ALL 1:3\r\n");
	buf_free(&b);
	imap_search_free(&s);
	imap_search_free(&s);	/* NULL-safe */
}

static void
test_mailsrv_imap_search__save_and_modseq(void **state)
{
	static const uint32_t	m[] = { 3, 5, 9 };
	static const uint64_t	ms[] = { 40, 70, 20 };
	static const struct {
		const char	*args;
		int		 saves;
		size_t		 n;
		uint32_t	 want[3];
		uint64_t	 modseq;
	} t[] = {
		{ "SEEN", 0, 3, { 3, 5, 9 }, 70 },
		{ "RETURN (SAVE) SEEN", 1, 3, { 3, 5, 9 }, 70 },
		{ "RETURN (SAVE ALL) SEEN", 1, 3, { 3, 5, 9 }, 70 },
		{ "RETURN (SAVE COUNT) SEEN", 1, 3, { 3, 5, 9 }, 70 },
		{ "RETURN (SAVE MIN) SEEN", 1, 1, { 3 }, 40 },
		{ "RETURN (SAVE MAX) SEEN", 1, 1, { 9 }, 20 },
		{ "RETURN (SAVE MIN MAX) SEEN", 1, 2, { 3, 9 }, 40 },
		{ "RETURN (SAVE MIN COUNT) SEEN", 1, 3, { 3, 5, 9 }, 70 },
		{ "RETURN (MIN) SEEN", 0, 1, { 3 }, 40 },
	};
	struct imap_search	*s = NULL;
	uint32_t		 out[3];
	size_t			 i, n;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(parse_flags(&s, t[i].args, 0), 0);
		assert_int_equal(imap_search_saves(s), t[i].saves);
		n = imap_search_save_pick(s, m, 3, out);
		assert_int_equal(n, t[i].n);
		assert_memory_equal(out, t[i].want, n * sizeof(out[0]));
		assert_int_equal(imap_search_modseq(s, ms, 3), t[i].modseq);
		assert_int_equal(imap_search_modseq(s, ms, 0), 0);
		assert_int_equal(imap_search_save_pick(s, m, 0, out), 0);
		imap_search_free(&s);
	}
	/* MIN and MAX of a single match are one message */
	assert_int_equal(parse_flags(&s, "RETURN (SAVE MIN MAX) SEEN", 0), 0);
	assert_int_equal(imap_search_save_pick(s, m, 1, out), 1);
	assert_int_equal(out[0], 3);
	imap_search_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_mailsrv_imap_search__flags,
		    teardown),
		cmocka_unit_test_teardown(test_mailsrv_imap_search__keywords,
		    teardown),
		cmocka_unit_test_teardown(test_mailsrv_imap_search__sizes,
		    teardown),
		cmocka_unit_test_teardown(
		    test_mailsrv_imap_search__internal_dates, teardown),
		cmocka_unit_test_teardown(
		    test_mailsrv_imap_search__sequence_sets, teardown),
		cmocka_unit_test_teardown(test_mailsrv_imap_search__uid_sets,
		    teardown),
		cmocka_unit_test_teardown(test_mailsrv_imap_search__saved,
		    teardown),
		cmocka_unit_test_teardown(
		    test_mailsrv_imap_search__or_not_lists, teardown),
		cmocka_unit_test_teardown(test_mailsrv_imap_search__modseq,
		    teardown),
		cmocka_unit_test_teardown(test_mailsrv_imap_search__charset,
		    teardown),
		cmocka_unit_test_teardown(
		    test_mailsrv_imap_search__syntax_errors, teardown),
		cmocka_unit_test_teardown(
		    test_mailsrv_imap_search__depth_limit, teardown),
		cmocka_unit_test_teardown(
		    test_mailsrv_imap_search__keys_limit, teardown),
		cmocka_unit_test_teardown(
		    test_mailsrv_imap_search__needs_msg, teardown),
		cmocka_unit_test_teardown(test_mailsrv_imap_search__content,
		    teardown),
		cmocka_unit_test_teardown(
		    test_mailsrv_imap_search__result_search, teardown),
		cmocka_unit_test_teardown(
		    test_mailsrv_imap_search__result_esearch, teardown),
		cmocka_unit_test_teardown(
		    test_mailsrv_imap_search__result_misc, teardown),
		cmocka_unit_test_teardown(
		    test_mailsrv_imap_search__save_and_modseq, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
