/*
 * test_mailsrv_store_mbox.c -- unit tests for the mail store's mailbox
 * operations (mailsrv/store/mailbox.c and RENAME INBOX in expunge.c).
 *
 * Purpose: the default mailboxes and their special-use attributes; LIST
 * with \HasChildren, \Noselect, subscriptions and \NonExistent; CREATE
 * with superiors; DELETE (INBOX refused, inferiors -> \Noselect, pruning
 * of empty \Noselect superiors, files released); RENAME with inferiors
 * and subscriptions, into itself, onto an existing name, over the
 * limits; RENAME INBOX; SUBSCRIBE/UNSUBSCRIBE; name validation and the
 * name, depth and mailbox-count limits at max and max+1.
 * Runs in: the unit test binary only; each test gets a mkdtemp() store
 * directory that it removes (the fixture is store_fx.c).
 * Failure policy: cmocka assertions.
 * SECURITY: mailbox names are untrusted: malformed UTF-8, controls and
 * wildcards must be refused.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mailsrv/store/store.h"
#include "tests/unit/store_fx.h"
#include "tests/unit/testutil.h"

/* The listing as "name:attrs:special" lines, for compact assertions. */
static char *
list(struct fx *f)
{
	struct store_mailbox	*v = NULL;
	size_t			 n = 0, i, len = 0, cap = 4096;
	char			*out = xmalloc(cap);

	out[0] = '\0';
	assert_int_equal(store_mailbox_list(f->s, U1, &v, &n), 0);
	for (i = 0; i < n; i++) {
		char	line[700];
		int	l;

		l = snprintf(line, sizeof(line), "%s:%s%s%s%s:%x\n", v[i].name,
		    v[i].attrs & STORE_MBOX_NOSELECT ? "N" : "",
		    v[i].attrs & STORE_MBOX_HASCHILDREN ? "C" : "",
		    v[i].attrs & STORE_MBOX_SUBSCRIBED ? "S" : "",
		    v[i].attrs & STORE_MBOX_NONEXISTENT ? "X" : "",
		    v[i].special);
		assert_true(l > 0 && (size_t)l < sizeof(line));
		if (len + (size_t)l + 1 > cap) {
			cap = cap * 2 + (size_t)l;
			out = xreallocarray(out, cap, 1);
		}
		memcpy(out + len, line, (size_t)l + 1);
		len += (size_t)l;
	}
	store_mailbox_list_free(&v, n);
	return out;
}

static void
list_eq(struct fx *f, const char *want)
{
	char	*got = list(f);

	assert_string_equal(got, want);
	free(got);
}

/* ------------------------------------------------------------ tests */

static void
test_mailsrv_store_mbox__defaults(void **state)
{
	struct fx		*f = *state;
	struct store_status	 st;

	list_eq(f,
	    "Archive:S:2\n"
	    "Drafts:S:4\n"
	    "INBOX:S:0\n"
	    "Junk:S:10\n"
	    "Sent:S:20\n"
	    "Trash:S:40\n");
	assert_int_equal(store_mailbox_status(f->s, U1, "inbox", &st), 0);
	assert_int_equal(store_mailbox_status(f->s, U1, "InBoX", &st), 0);
	assert_int_equal(store_mailbox_status(f->s, U1, "sent", &st),
	    ERR_NOTFOUND);
	assert_int_equal(store_mailbox_status(f->s, "x@y.z", NULL, &st),
	    ERR_NOTFOUND);
}

static void
test_mailsrv_store_mbox__create(void **state)
{
	struct fx		*f = *state;
	struct store_status	 st;

	assert_int_equal(store_mailbox_create(f->s, U1, "Work/Projects/2024",
	    0), 0);
	assert_int_equal(store_mailbox_create(f->s, U1, "Work/Projects", 0),
	    ERR_EXISTS);
	assert_int_equal(store_mailbox_create(f->s, U1, "inbox", 0),
	    ERR_EXISTS);
	assert_int_equal(store_mailbox_create(f->s, U1, "inbox/Sub", 0), 0);
	assert_int_equal(store_mailbox_create(f->s, U1,
	    "Donn\xc3\xa9" "es/\xe6\x97\xa5\xe6\x9c\xac",
	    STORE_SPECIAL_ARCHIVE), 0);
	assert_int_equal(store_mailbox_create(f->s, U1, NULL, 0), ERR_INVAL);
	list_eq(f,
	    "Archive:S:2\n"
	    "Donn\xc3\xa9" "es:C:0\n"
	    "Donn\xc3\xa9" "es/\xe6\x97\xa5\xe6\x9c\xac::2\n"
	    "Drafts:S:4\n"
	    "INBOX:CS:0\n"
	    "INBOX/Sub::0\n"
	    "Junk:S:10\n"
	    "Sent:S:20\n"
	    "Trash:S:40\n"
	    "Work:C:0\n"
	    "Work/Projects:C:0\n"
	    "Work/Projects/2024::0\n");
	/* superiors are real mailboxes */
	deliver(f, U1, "Work", dek1, "to a superior", NULL);
	assert_int_equal(store_mailbox_status(f->s, U1, "Work", &st), 0);
	assert_int_equal(st.messages, 1);
}

static void
test_mailsrv_store_mbox__names(void **state)
{
	struct fx	*f = *state;
	static const char *const bad[] = {
		"", "/a", "a/", "a//b", "a\x01z", "a\x7fz", "a\tb",
		"\xc3\x28", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
		"\xc2\x85", "a*b", "a%b", "\xe6\x97", "\xff",
	};
	char		 name[STORE_MAILBOX_NAME_MAX + 2];
	size_t		 i;

	for (i = 0; i < nitems(bad); i++)
		assert_int_equal(store_mailbox_create(f->s, U1, bad[i], 0),
		    ERR_INVAL);
	/* length: exactly the maximum, then one more */
	memset(name, 'n', sizeof(name));
	name[STORE_MAILBOX_NAME_MAX] = '\0';
	assert_int_equal(store_mailbox_create(f->s, U1, name, 0), 0);
	deliver(f, U1, name, dek1, "long name", NULL);
	name[STORE_MAILBOX_NAME_MAX] = 'n';
	name[STORE_MAILBOX_NAME_MAX + 1] = '\0';
	assert_int_equal(store_mailbox_create(f->s, U1, name, 0), ERR_TOOBIG);
	assert_int_equal(store_mailbox_status(f->s, U1, name, &(struct
	    store_status){ 0 }), ERR_TOOBIG);
	/* depth: exactly the maximum, then one more */
	name[0] = '\0';
	for (i = 0; i < STORE_MAILBOX_DEPTH_MAX; i++)
		strlcat(name, i ? "/d" : "d", sizeof(name));
	assert_int_equal(store_mailbox_create(f->s, U1, name, 0), 0);
	strlcat(name, "/d", sizeof(name));
	assert_int_equal(store_mailbox_create(f->s, U1, name, 0), ERR_TOOBIG);
}

static void
test_mailsrv_store_mbox__count_limit(void **state)
{
	struct fx		*f = *state;
	struct store_user	 u;
	char			 name[64];
	int			 i, rc;

	/* 16 mailboxes per call until the next chain does not fit */
	for (i = 0; ; i++) {
		snprintf(name, sizeof(name),
		    "c%d/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o", i);
		if ((rc = store_mailbox_create(f->s, U1, name, 0)) != 0)
			break;
	}
	assert_int_equal(rc, ERR_TOOBIG);
	assert_int_equal(store_user_get(f->s, U1, &u), 0);
	assert_true(u.mailboxes > STORE_MAILBOXES_MAX - 16);
	for (i = (int)u.mailboxes; i < STORE_MAILBOXES_MAX; i++) {
		snprintf(name, sizeof(name), "single%d", i);
		assert_int_equal(store_mailbox_create(f->s, U1, name, 0), 0);
	}
	store_user_clear(&u);
	assert_int_equal(store_mailbox_create(f->s, U1, "one-more", 0),
	    ERR_TOOBIG);
	assert_int_equal(store_user_get(f->s, U1, &u), 0);
	assert_int_equal(u.mailboxes, STORE_MAILBOXES_MAX);
	store_user_clear(&u);
	/* deleting makes room again */
	assert_int_equal(store_mailbox_delete(f->s, U1, "single4095"), 0);
	assert_int_equal(store_mailbox_create(f->s, U1, "one-more", 0), 0);
}

static void
test_mailsrv_store_mbox__delete(void **state)
{
	struct fx		*f = *state;
	struct store_status	 st;
	struct store_user	 u;
	uint32_t		 uv, uid, old_uv;

	assert_int_equal(store_mailbox_delete(f->s, U1, "INBOX"), ERR_PERM);
	assert_int_equal(store_mailbox_delete(f->s, U1, "inbox"), ERR_PERM);
	assert_int_equal(store_mailbox_delete(f->s, U1, NULL), ERR_PERM);
	assert_int_equal(store_mailbox_delete(f->s, U1, "Nope"), ERR_NOTFOUND);

	/* a leaf with messages: gone with its files, quota released */
	deliver(f, U1, "Junk", dek1, "spam one", NULL);
	deliver(f, U1, "Junk", dek1, "spam two", NULL);
	assert_int_equal(blob_count(f), 2);
	assert_int_equal(store_mailbox_delete(f->s, U1, "Junk"), 0);
	assert_int_equal(blob_count(f), 0);
	assert_int_equal(store_user_get(f->s, U1, &u), 0);
	assert_int_equal(u.quota_used, 0);
	assert_int_equal(u.mailboxes, 5);
	store_user_clear(&u);

	/* with inferiors: \Noselect, messages gone */
	assert_int_equal(store_mailbox_create(f->s, U1, "Work/Projects/2024",
	    0), 0);
	deliver(f, U1, "Work", dek1, "work mail", NULL);
	assert_int_equal(store_mailbox_status(f->s, U1, "Work", &st), 0);
	old_uv = st.uidvalidity;
	assert_int_equal(store_mailbox_delete(f->s, U1, "Work"), 0);
	assert_int_equal(blob_count(f), 0);
	assert_int_equal(store_mailbox_status(f->s, U1, "Work", &st),
	    ERR_PERM);
	assert_int_equal(store_deliver(f->s, U1, "Work", dek1, "x", 1, 0, 0,
	    &uv, &uid), ERR_PERM);
	assert_int_equal(store_mailbox_delete(f->s, U1, "Work"), ERR_EXISTS);
	list_eq(f,
	    "Archive:S:2\n"
	    "Drafts:S:4\n"
	    "INBOX:S:0\n"
	    "Junk:SX:0\n"
	    "Sent:S:20\n"
	    "Trash:S:40\n"
	    "Work:NC:0\n"
	    "Work/Projects:C:0\n"
	    "Work/Projects/2024::0\n");

	/* CREATE on the \Noselect name: a mailbox again, new UIDVALIDITY */
	assert_int_equal(store_mailbox_create(f->s, U1, "Work", 0), 0);
	assert_int_equal(store_mailbox_status(f->s, U1, "Work", &st), 0);
	assert_true(st.uidvalidity > old_uv);
	assert_int_equal(st.messages, 0);
	assert_int_equal(st.uidnext, 1);
	assert_int_equal(store_mailbox_delete(f->s, U1, "Work"), 0);

	/* the last inferior goes: the empty \Noselect superior goes too */
	assert_int_equal(store_mailbox_delete(f->s, U1, "Work/Projects/2024"),
	    0);
	list_eq(f,
	    "Archive:S:2\n"
	    "Drafts:S:4\n"
	    "INBOX:S:0\n"
	    "Junk:SX:0\n"
	    "Sent:S:20\n"
	    "Trash:S:40\n"
	    "Work:NC:0\n"
	    "Work/Projects::0\n");
	assert_int_equal(store_mailbox_delete(f->s, U1, "Work/Projects"), 0);
	list_eq(f,
	    "Archive:S:2\n"
	    "Drafts:S:4\n"
	    "INBOX:S:0\n"
	    "Junk:SX:0\n"
	    "Sent:S:20\n"
	    "Trash:S:40\n");
	assert_int_equal(store_user_get(f->s, U1, &u), 0);
	assert_int_equal(u.mailboxes, 5);
	store_user_clear(&u);
}

static void
test_mailsrv_store_mbox__rename(void **state)
{
	struct fx		*f = *state;
	struct store_status	 st, st2;
	unsigned char		*got = NULL;
	size_t			 len = 0;
	char			 longname[STORE_MAILBOX_NAME_MAX + 1];

	assert_int_equal(store_mailbox_create(f->s, U1, "Proj/a/b", 0), 0);
	assert_int_equal(store_mailbox_subscribe(f->s, U1, "Proj/a", 1), 0);
	deliver(f, U1, "Proj/a", dek1, "project mail", NULL);
	assert_int_equal(store_mailbox_status(f->s, U1, "Proj/a", &st), 0);

	assert_int_equal(store_mailbox_rename(f->s, U1, "Proj", "Sent"),
	    ERR_EXISTS);
	assert_int_equal(store_mailbox_rename(f->s, U1, "Proj", "Proj"),
	    ERR_EXISTS);
	assert_int_equal(store_mailbox_rename(f->s, U1, "Proj", "Proj/a/x"),
	    ERR_INVAL);
	assert_int_equal(store_mailbox_rename(f->s, U1, "Nope", "Other"),
	    ERR_NOTFOUND);
	assert_int_equal(store_mailbox_rename(f->s, U1, "Proj", "a//b"),
	    ERR_INVAL);
	assert_int_equal(store_mailbox_rename(f->s, U1, "Proj", NULL),
	    ERR_INVAL);

	assert_int_equal(store_mailbox_rename(f->s, U1, "Proj", "Old/Proj2"),
	    0);
	list_eq(f,
	    "Archive:S:2\n"
	    "Drafts:S:4\n"
	    "INBOX:S:0\n"
	    "Junk:S:10\n"
	    "Old:C:0\n"
	    "Old/Proj2:C:0\n"
	    "Old/Proj2/a:CS:0\n"
	    "Old/Proj2/a/b::0\n"
	    "Sent:S:20\n"
	    "Trash:S:40\n");
	assert_int_equal(store_mailbox_status(f->s, U1, "Old/Proj2/a", &st2),
	    0);
	assert_int_equal(st2.uidvalidity, st.uidvalidity);
	assert_int_equal(st2.messages, 1);
	assert_int_equal(store_read(f->s, U1, "Old/Proj2/a", 1, dek1, &got,
	    &len), 0);
	assert_int_equal(len, 12);
	assert_memory_equal(got, "project mail", 12);
	free(got);

	/* renaming away the last inferior of a \Noselect prunes it */
	assert_int_equal(store_mailbox_delete(f->s, U1, "Old"), 0);
	assert_int_equal(store_mailbox_rename(f->s, U1, "Old/Proj2", "P2"), 0);
	list_eq(f,
	    "Archive:S:2\n"
	    "Drafts:S:4\n"
	    "INBOX:S:0\n"
	    "Junk:S:10\n"
	    "P2:C:0\n"
	    "P2/a:CS:0\n"
	    "P2/a/b::0\n"
	    "Sent:S:20\n"
	    "Trash:S:40\n");

	/* an inferior that would grow past the name limit: nothing moves */
	memset(longname, 'L', sizeof(longname));
	longname[STORE_MAILBOX_NAME_MAX - 2] = '\0';
	assert_int_equal(store_mailbox_rename(f->s, U1, "P2", longname),
	    ERR_TOOBIG);
	assert_int_equal(store_mailbox_status(f->s, U1, "P2/a/b", &st2), 0);
}

static void
test_mailsrv_store_mbox__rename_inbox(void **state)
{
	struct fx		*f = *state;
	struct store_status	 st, st2;
	struct store_msginfo	*mi = NULL;
	struct store_flagop	 op = { STORE_FLAGS_ADD, STORE_F_SEEN,
				    (const char *[]){ "$Important" }, 1, 0, 0 };
	struct store_flagres	 fr;
	struct store_user	 u;
	uint32_t		*van = NULL;
	unsigned char		*got = NULL;
	size_t			 n, len;
	uint64_t		 quota;

	deliver(f, U1, NULL, dek1, "first", NULL);
	deliver(f, U1, NULL, dek1, "second", NULL);
	deliver(f, U1, NULL, dek1, "third", NULL);
	assert_int_equal(store_set_flags(f->s, U1, NULL, (uint32_t[]){ 2 }, 1,
	    &op, &fr), 0);
	store_flagres_free(&fr);
	assert_int_equal(store_mailbox_create(f->s, U1, "INBOX/Child", 0), 0);
	assert_int_equal(store_mailbox_status(f->s, U1, NULL, &st), 0);
	assert_int_equal(store_user_get(f->s, U1, &u), 0);
	quota = u.quota_used;
	store_user_clear(&u);

	assert_int_equal(store_mailbox_rename(f->s, U1, "inbox", "Sent"),
	    ERR_EXISTS);
	assert_int_equal(store_mailbox_rename(f->s, U1, "inbox", "Old Mail"),
	    0);
	/* INBOX: still there, empty, same UIDVALIDITY, UIDs not reused */
	assert_int_equal(store_mailbox_status(f->s, U1, NULL, &st2), 0);
	assert_int_equal(st2.messages, 0);
	assert_int_equal(st2.unseen, 0);
	assert_int_equal(st2.size, 0);
	assert_int_equal(st2.uidvalidity, st.uidvalidity);
	assert_int_equal(st2.uidnext, 4);
	assert_int_equal(store_vanished(f->s, U1, NULL, st.highestmodseq,
	    &van, &n), 0);
	assert_int_equal(n, 3);
	free(van);
	/* the new mailbox has the messages, flags and keywords */
	assert_int_equal(store_mailbox_status(f->s, U1, "Old Mail", &st2), 0);
	assert_int_equal(st2.messages, 3);
	assert_int_equal(st2.unseen, 2);
	assert_true(st2.uidvalidity > st.uidvalidity);
	assert_int_equal(store_messages(f->s, U1, "Old Mail", 1, UINT32_MAX,
	    0, &mi, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(mi[1].uid, 2);
	assert_int_equal(mi[1].flags, STORE_F_SEEN);
	assert_int_equal(mi[1].keywords, 1);
	store_msginfo_free(&mi);
	assert_int_equal(store_read(f->s, U1, "Old Mail", 3, dek1, &got, &len),
	    0);
	assert_int_equal(len, 5);
	assert_memory_equal(got, "third", 5);
	free(got);
	assert_int_equal(blob_count(f), 3);
	assert_int_equal(store_user_get(f->s, U1, &u), 0);
	assert_int_equal(u.quota_used, quota);
	store_user_clear(&u);
	/* INBOX's inferiors stay; new mail goes on at UID 4 */
	assert_int_equal(store_mailbox_status(f->s, U1, "INBOX/Child", &st2),
	    0);
	deliver(f, U1, NULL, dek1, "fourth", NULL);
	assert_int_equal(store_messages(f->s, U1, NULL, 1, UINT32_MAX, 0, &mi,
	    &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(mi[0].uid, 4);
	store_msginfo_free(&mi);
}

static void
test_mailsrv_store_mbox__subscribe(void **state)
{
	struct fx	*f = *state;

	assert_int_equal(store_mailbox_subscribe(f->s, U1, "Nope", 1),
	    ERR_NOTFOUND);
	assert_int_equal(store_mailbox_subscribe(f->s, U1, "Junk", 0), 0);
	assert_int_equal(store_mailbox_subscribe(f->s, U1, "Junk", 0),
	    ERR_NOTFOUND);
	assert_int_equal(store_mailbox_subscribe(f->s, U1, "Sent", 1), 0);
	assert_int_equal(store_mailbox_create(f->s, U1, "Lists/dev", 0), 0);
	assert_int_equal(store_mailbox_subscribe(f->s, U1, "Lists/dev", 1), 0);
	list_eq(f,
	    "Archive:S:2\n"
	    "Drafts:S:4\n"
	    "INBOX:S:0\n"
	    "Junk::10\n"
	    "Lists:C:0\n"
	    "Lists/dev:S:0\n"
	    "Sent:S:20\n"
	    "Trash:S:40\n");
	assert_int_equal(store_mailbox_delete(f->s, U1, "Lists/dev"), 0);
	list_eq(f,
	    "Archive:S:2\n"
	    "Drafts:S:4\n"
	    "INBOX:S:0\n"
	    "Junk::10\n"
	    "Lists::0\n"
	    "Lists/dev:SX:0\n"
	    "Sent:S:20\n"
	    "Trash:S:40\n");
	assert_int_equal(store_mailbox_subscribe(f->s, U1, "Lists/dev", 0), 0);
	assert_int_equal(store_mailbox_subscribe(f->s, U1, "inbox", 0), 0);
	assert_int_equal(store_mailbox_subscribe(f->s, U1, "INBOX", 1), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_mailsrv_store_mbox__defaults),
		T(test_mailsrv_store_mbox__create),
		T(test_mailsrv_store_mbox__names),
		T(test_mailsrv_store_mbox__count_limit),
		T(test_mailsrv_store_mbox__delete),
		T(test_mailsrv_store_mbox__rename),
		T(test_mailsrv_store_mbox__rename_inbox),
		T(test_mailsrv_store_mbox__subscribe),
#undef T
	};
	int	rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
