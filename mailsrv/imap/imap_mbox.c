/*
 * imap_mbox.c -- IMAP mailbox commands: LIST (with LIST-EXTENDED,
 * LIST-STATUS, SPECIAL-USE), LSUB, CREATE, DELETE, RENAME, SUBSCRIBE,
 * UNSUBSCRIBE, STATUS, SELECT, EXAMINE (with CONDSTORE and QRESYNC),
 * APPEND (MULTIAPPEND, APPENDUID) and the QUOTA commands.
 *
 * Runs in: worker threads (jobs), except imap_cmd_select's first step
 * (the audit record of the mailbox open) on the loop.
 * Failure policy: store errors become NO with a response code
 * (imap_store_error); malformed arguments BAD.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "mailsrv/imap/imap.h"
#include "mailsrv/imap/imap_format.h"
#include "mailsrv/imap/imap_mutf7.h"

/* LIST patterns in one command. */
#define IMAP_LIST_PATTERNS_MAX	64

static const char *const special_names[] = {
	"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent",
	"\\Trash",
};

static void
out_special(struct buf *b, unsigned special)
{
	size_t	i;

	for (i = 0; i < sizeof(special_names) / sizeof(special_names[0]); i++)
		if (special & (1u << i))
			(void)buf_printf(b, "%s%s", b->len > 0 &&
			    b->data[b->len - 1] != '(' ? " " : "",
			    special_names[i]);
}

static int
parse_special(const char *flag, unsigned *out)
{
	size_t	i;

	for (i = 0; i < sizeof(special_names) / sizeof(special_names[0]); i++)
		if (strcasecmp(flag, special_names[i]) == 0) {
			*out |= 1u << i;
			return 0;
		}
	return ERR_PROTO;
}

/* Append the current output line of b as one response line. */
static void
out_line(struct imap_session *s, struct buf *b)
{
	imap_out(s, "%.*s", (int)b->len, (const char *)b->data);
	buf_reset(b);
}

/* ------------------------------------------------------------ STATUS */

#define ST_MESSAGES	0x001
#define ST_RECENT	0x002
#define ST_UIDNEXT	0x004
#define ST_UIDVALIDITY	0x008
#define ST_UNSEEN	0x010
#define ST_DELETED	0x020
#define ST_SIZE		0x040
#define ST_HIGHESTMODSEQ 0x080
#define ST_APPENDLIMIT	0x100

static const struct {
	const char	*name;
	unsigned	 bit;
} status_items[] = {
	{ "MESSAGES", ST_MESSAGES }, { "RECENT", ST_RECENT },
	{ "UIDNEXT", ST_UIDNEXT }, { "UIDVALIDITY", ST_UIDVALIDITY },
	{ "UNSEEN", ST_UNSEEN }, { "DELETED", ST_DELETED },
	{ "SIZE", ST_SIZE }, { "HIGHESTMODSEQ", ST_HIGHESTMODSEQ },
	{ "APPENDLIMIT", ST_APPENDLIMIT },
};

static int
status_parse(const struct imap_arg *list, unsigned *items)
{
	size_t	i, k;

	*items = 0;
	if (list->type != IMAP_ARG_LIST || list->nlist == 0) {
		err_set(ERR_PROTO, "STATUS needs a list of items");
		return ERR_PROTO;
	}
	for (i = 0; i < list->nlist; i++) {
		if (list->list[i].type != IMAP_ARG_ATOM)
			goto bad;
		for (k = 0; k < sizeof(status_items) /
		    sizeof(status_items[0]); k++)
			if (strcasecmp(list->list[i].str,
			    status_items[k].name) == 0)
				break;
		if (k == sizeof(status_items) / sizeof(status_items[0]))
			goto bad;
		*items |= status_items[k].bit;
	}
	return 0;
bad:
	err_set(ERR_PROTO, "unknown STATUS item");
	return ERR_PROTO;
}

/* "* STATUS name (...)" for one mailbox; returns the store's result. */
static int
status_out(struct imap_session *s, const char *name, unsigned items)
{
	struct store_status	st;
	struct buf		b;
	int			rc;

	if ((rc = store_mailbox_status(s->ms->store, s->user, name,
	    &st)) < 0)
		return rc;
	if (items & ST_HIGHESTMODSEQ)
		s->enabled |= IMAP_E_CONDSTORE;
	buf_init(&b, 64 * 1024);
	(void)buf_printf(&b, "* STATUS ");
	imap_out_mailbox(s, &b, name);
	(void)buf_printf(&b, " (");
	if (items & ST_MESSAGES)
		(void)buf_printf(&b, "MESSAGES %u ", st.messages);
	if (items & ST_RECENT)
		(void)buf_printf(&b, "RECENT 0 ");
	if (items & ST_UIDNEXT)
		(void)buf_printf(&b, "UIDNEXT %u ", st.uidnext);
	if (items & ST_UIDVALIDITY)
		(void)buf_printf(&b, "UIDVALIDITY %u ", st.uidvalidity);
	if (items & ST_UNSEEN)
		(void)buf_printf(&b, "UNSEEN %u ", st.unseen);
	if (items & ST_DELETED)
		(void)buf_printf(&b, "DELETED %u ", st.deleted);
	if (items & ST_SIZE)
		(void)buf_printf(&b, "SIZE %llu ",
		    (unsigned long long)st.size);
	if (items & ST_HIGHESTMODSEQ)
		(void)buf_printf(&b, "HIGHESTMODSEQ %llu ",
		    (unsigned long long)st.highestmodseq);
	if (items & ST_APPENDLIMIT)
		(void)buf_printf(&b, "APPENDLIMIT %lld ",
		    (long long)s->ms->d->conf.mailsrv.max_message_size);
	if (b.data[b.len - 1] == ' ')
		b.len--;
	(void)buf_putc(&b, ')');
	out_line(s, &b);
	buf_free(&b);
	return 0;
}

void
imap_cmd_status(struct imap_session *s)
{
	char		*name = NULL;
	unsigned	 items;
	int		 rc;

	if (imap_mailbox_arg(s, &s->args[0], &name) < 0 ||
	    status_parse(&s->args[1], &items) < 0) {
		imap_bad_args(s);
		goto done;
	}
	if ((rc = status_out(s, name, items)) < 0)
		imap_store_error(s, rc, "STATUS");
	else
		imap_tagged(s, "OK", "STATUS completed");
done:
	free(name);
}

/* ------------------------------------------------------------ LIST */

#define SEL_SUBSCRIBED	0x01
#define SEL_SPECIALUSE	0x02
#define SEL_RECURSIVE	0x04
#define RET_SUBSCRIBED	0x01
#define RET_CHILDREN	0x02
#define RET_SPECIALUSE	0x04
#define RET_STATUS	0x08

struct list_req {
	unsigned	 sel;
	unsigned	 ret;
	unsigned	 status;	/* ST_* */
	char		*patterns[IMAP_LIST_PATTERNS_MAX];
	size_t		 npatterns;
	int		 lsub;
};

static void
list_req_clear(struct list_req *r)
{
	size_t	i;

	for (i = 0; i < r->npatterns; i++)
		free(r->patterns[i]);
	r->npatterns = 0;
}

static int
list_opts(const struct imap_arg *a, int ret, struct list_req *r)
{
	size_t	i;

	if (a->type != IMAP_ARG_LIST)
		goto bad;
	for (i = 0; i < a->nlist; i++) {
		const char	*o = a->list[i].str;

		if (a->list[i].type != IMAP_ARG_ATOM)
			goto bad;
		if (!ret && strcasecmp(o, "SUBSCRIBED") == 0)
			r->sel |= SEL_SUBSCRIBED;
		else if (!ret && strcasecmp(o, "REMOTE") == 0)
			;
		else if (!ret && strcasecmp(o, "RECURSIVEMATCH") == 0)
			r->sel |= SEL_RECURSIVE;
		else if (!ret && strcasecmp(o, "SPECIAL-USE") == 0)
			r->sel |= SEL_SPECIALUSE;
		else if (ret && strcasecmp(o, "SUBSCRIBED") == 0)
			r->ret |= RET_SUBSCRIBED;
		else if (ret && strcasecmp(o, "CHILDREN") == 0)
			r->ret |= RET_CHILDREN;
		else if (ret && strcasecmp(o, "SPECIAL-USE") == 0)
			r->ret |= RET_SPECIALUSE;
		else if (ret && strcasecmp(o, "STATUS") == 0 &&
		    i + 1 < a->nlist) {
			if (status_parse(&a->list[++i], &r->status) < 0)
				return ERR_PROTO;
			r->ret |= RET_STATUS;
		} else
			goto bad;
	}
	if ((r->sel & SEL_RECURSIVE) && !(r->sel & ~SEL_RECURSIVE))
		goto bad;	/* RFC 5258 3: not alone */
	return 0;
bad:
	err_set(ERR_PROTO, "invalid LIST options");
	return ERR_PROTO;
}

/* reference + pattern, mUTF-7 decoded for rev1 clients. */
static int
list_add_pattern(struct imap_session *s, struct list_req *r,
    const char *ref, size_t reflen, const struct imap_arg *a)
{
	const char	*pat;
	size_t		 plen;
	char		*joined, *dec;

	if (imap_arg_list_mailbox(&pat, &plen, a) < 0)
		return ERR_PROTO;
	if (r->npatterns == IMAP_LIST_PATTERNS_MAX) {
		err_set(ERR_PROTO, "too many patterns");
		return ERR_PROTO;
	}
	/* a pattern starting with the separator ignores the reference */
	if (plen > 0 && pat[0] == '/')
		reflen = 0;
	xasprintf(&joined, "%.*s%.*s", (int)reflen, ref, (int)plen, pat);
	if (!imap_utf8(s)) {
		if (imap_mutf7_to_utf8(&dec, joined, strlen(joined)) < 0) {
			free(joined);
			err_set(ERR_PROTO, "pattern is not valid modified "
			    "UTF-7");
			return ERR_PROTO;
		}
		free(joined);
		joined = dec;
	}
	r->patterns[r->npatterns++] = joined;
	return 0;
}

static int
list_match_any(const struct list_req *r, const char *name)
{
	size_t	i;

	for (i = 0; i < r->npatterns; i++)
		if (imap_list_match(r->patterns[i], name, '/'))
			return 1;
	return 0;
}

/* Does any subscribed mailbox below name exist (RECURSIVEMATCH)? */
static int
list_child_subscribed(const struct store_mailbox *mb, size_t n,
    const char *name)
{
	size_t	len = strlen(name), i;

	for (i = 0; i < n; i++)
		if ((mb[i].attrs & STORE_MBOX_SUBSCRIBED) &&
		    strncmp(mb[i].name, name, len) == 0 &&
		    mb[i].name[len] == '/')
			return 1;
	return 0;
}

static void
list_run(struct imap_session *s, struct list_req *r)
{
	struct store_mailbox	*mb = NULL;
	struct buf		 b;
	size_t			 n = 0, i;
	int			 rc, childinfo;

	if ((rc = store_mailbox_list(s->ms->store, s->user, &mb, &n)) < 0) {
		imap_store_error(s, rc, r->lsub ? "LSUB" : "LIST");
		return;
	}
	buf_init(&b, 64 * 1024);
	for (i = 0; i < n; i++) {
		unsigned	 a = mb[i].attrs;
		int		 subscribed = (a & STORE_MBOX_SUBSCRIBED) != 0;

		if (!list_match_any(r, mb[i].name))
			continue;
		childinfo = 0;
		if ((r->sel & SEL_SUBSCRIBED) || r->lsub) {
			if (!subscribed) {
				if (!(r->sel & SEL_RECURSIVE) ||
				    !list_child_subscribed(mb, n,
				    mb[i].name))
					continue;
				childinfo = 1;
			}
		} else if (a & STORE_MBOX_NONEXISTENT)
			continue;
		if ((r->sel & SEL_SPECIALUSE) && mb[i].special == 0)
			continue;
		(void)buf_printf(&b, "* %s (", r->lsub ? "LSUB" : "LIST");
		if (a & STORE_MBOX_NONEXISTENT)
			(void)buf_printf(&b, r->lsub ? "\\Noselect" :
			    "\\NonExistent");
		else if (a & STORE_MBOX_NOSELECT)
			(void)buf_printf(&b, "\\Noselect");
		if (!r->lsub && !(a & STORE_MBOX_NONEXISTENT))
			(void)buf_printf(&b, "%s%s", b.data[b.len - 1] == '(' ?
			    "" : " ", (a & STORE_MBOX_HASCHILDREN) ?
			    "\\HasChildren" : "\\HasNoChildren");
		if (!r->lsub && subscribed &&
		    ((r->ret & RET_SUBSCRIBED) || (r->sel & SEL_SUBSCRIBED)))
			(void)buf_printf(&b, "%s\\Subscribed",
			    b.data[b.len - 1] == '(' ? "" : " ");
		if (!r->lsub)
			out_special(&b, mb[i].special);
		(void)buf_printf(&b, ") \"/\" ");
		imap_out_mailbox(s, &b, mb[i].name);
		if (childinfo)
			(void)buf_printf(&b, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
		out_line(s, &b);
		if ((r->ret & RET_STATUS) && !(a & (STORE_MBOX_NOSELECT |
		    STORE_MBOX_NONEXISTENT)))
			(void)status_out(s, mb[i].name, r->status);
	}
	buf_free(&b);
	store_mailbox_list_free(&mb, n);
	imap_tagged(s, "OK", "%s completed", r->lsub ? "LSUB" : "LIST");
}

void
imap_cmd_list(struct imap_session *s)
{
	struct list_req		 r;
	const struct imap_arg	*a = s->args;
	size_t			 n = s->nargs, i = 0;
	const char		*ref;
	size_t			 reflen;

	memset(&r, 0, sizeof(r));
	if (n > 0 && a[0].type == IMAP_ARG_LIST) {
		if (list_opts(&a[0], 0, &r) < 0)
			goto bad;
		i++;
	}
	if (i + 2 > n || imap_arg_mailbox(&ref, &reflen, &a[i]) < 0)
		goto bad;
	i++;
	if (a[i].type == IMAP_ARG_LIST) {
		size_t	k;

		if (a[i].nlist == 0)
			goto bad;
		for (k = 0; k < a[i].nlist; k++)
			if (list_add_pattern(s, &r, ref, reflen,
			    &a[i].list[k]) < 0)
				goto bad;
	} else if (list_add_pattern(s, &r, ref, reflen, &a[i]) < 0)
		goto bad;
	i++;
	if (i < n) {
		if (i + 2 != n || a[i].type != IMAP_ARG_ATOM ||
		    strcasecmp(a[i].str, "RETURN") != 0 ||
		    list_opts(&a[i + 1], 1, &r) < 0)
			goto bad;
	}
	if (r.npatterns == 1 && r.patterns[0][0] == '\0' &&
	    !(r.sel & SEL_SUBSCRIBED)) {
		/* RFC 3501 6.3.8: the hierarchy delimiter and root */
		imap_out(s, "* LIST (\\Noselect) \"/\" \"\"");
		imap_tagged(s, "OK", "LIST completed");
	} else
		list_run(s, &r);
	list_req_clear(&r);
	return;
bad:
	list_req_clear(&r);
	imap_bad_args(s);
}

void
imap_cmd_lsub(struct imap_session *s)
{
	struct list_req	 r;
	const char	*ref;
	size_t		 reflen;

	memset(&r, 0, sizeof(r));
	r.lsub = 1;
	if (imap_arg_mailbox(&ref, &reflen, &s->args[0]) < 0 ||
	    list_add_pattern(s, &r, ref, reflen, &s->args[1]) < 0) {
		list_req_clear(&r);
		imap_bad_args(s);
		return;
	}
	list_run(s, &r);
	list_req_clear(&r);
}

/* ------------------------------------------------------------ CREATE ... */

void
imap_cmd_create(struct imap_session *s)
{
	char		*name = NULL;
	unsigned	 special = 0;
	size_t		 len, i;
	int		 rc;

	if (imap_mailbox_arg(s, &s->args[0], &name) < 0)
		goto bad;
	if (s->nargs == 2) {	/* RFC 6154 (USE (\Sent ...)) */
		const struct imap_arg	*p = &s->args[1];

		if (p->nlist != 2 || p->list[0].type != IMAP_ARG_ATOM ||
		    strcasecmp(p->list[0].str, "USE") != 0 ||
		    p->list[1].type != IMAP_ARG_LIST)
			goto bad;
		for (i = 0; i < p->list[1].nlist; i++)
			if (p->list[1].list[i].type != IMAP_ARG_ATOM ||
			    parse_special(p->list[1].list[i].str,
			    &special) < 0) {
				free(name);
				imap_tagged(s, "NO", "[USEATTR] Unsupported "
				    "special-use attribute");
				return;
			}
	}
	len = strlen(name);
	while (len > 1 && name[len - 1] == '/')	/* "foo/" creates foo */
		name[--len] = '\0';
	if (strcasecmp(name, "INBOX") == 0) {
		free(name);
		imap_tagged(s, "NO", "[ALREADYEXISTS] INBOX always exists");
		return;
	}
	if ((rc = store_mailbox_create(s->ms->store, s->user, name,
	    special)) < 0)
		imap_store_error(s, rc, "CREATE");
	else
		imap_tagged(s, "OK", "CREATE completed");
	free(name);
	return;
bad:
	free(name);
	imap_bad_args(s);
}

void
imap_cmd_delete(struct imap_session *s)
{
	char	*name = NULL;
	int	 rc;

	if (imap_mailbox_arg(s, &s->args[0], &name) < 0) {
		imap_bad_args(s);
		return;
	}
	if (s->view != NULL && strcmp(s->view->name, name) == 0) {
		/* like Dovecot: the selected mailbox cannot be deleted */
		imap_tagged(s, "NO", "[INUSE] Cannot delete the selected "
		    "mailbox");
	} else if ((rc = store_mailbox_delete(s->ms->store, s->user,
	    name)) < 0) {
		if (rc == ERR_EXISTS)
			imap_tagged(s, "NO", "[INUSE] The mailbox has "
			    "inferiors and no messages to delete");
		else
			imap_store_error(s, rc, "DELETE");
	} else
		imap_tagged(s, "OK", "DELETE completed");
	free(name);
}

void
imap_cmd_rename(struct imap_session *s)
{
	char	*from = NULL, *to = NULL;
	int	 rc;

	if (imap_mailbox_arg(s, &s->args[0], &from) < 0 ||
	    imap_mailbox_arg(s, &s->args[1], &to) < 0) {
		imap_bad_args(s);
		goto done;
	}
	if ((rc = store_mailbox_rename(s->ms->store, s->user, from,
	    to)) < 0) {
		if (rc == ERR_NOTFOUND)
			imap_tagged(s, "NO", "[NONEXISTENT] No such mailbox");
		else
			imap_store_error(s, rc, "RENAME");
	} else {
		if (s->view != NULL && strcmp(s->view->name, from) == 0 &&
		    strcasecmp(from, "INBOX") != 0) {
			free(s->view->name);
			s->view->name = xstrdup(to);
		}
		imap_tagged(s, "OK", "RENAME completed");
	}
done:
	free(from);
	free(to);
}

static void
subscribe(struct imap_session *s, int on)
{
	char	*name = NULL;
	int	 rc;

	if (imap_mailbox_arg(s, &s->args[0], &name) < 0) {
		imap_bad_args(s);
		return;
	}
	if ((rc = store_mailbox_subscribe(s->ms->store, s->user, name,
	    on)) < 0 && !(rc == ERR_NOTFOUND && !on))
		imap_store_error(s, rc, on ? "SUBSCRIBE" : "UNSUBSCRIBE");
	else
		imap_tagged(s, "OK", "%s completed", on ? "SUBSCRIBE" :
		    "UNSUBSCRIBE");
	free(name);
}

void
imap_cmd_subscribe(struct imap_session *s)
{
	subscribe(s, 1);
}

void
imap_cmd_unsubscribe(struct imap_session *s)
{
	subscribe(s, 0);
}

/* ------------------------------------------------------------ QUOTA */

static void
quota_out(struct imap_session *s)
{
	struct store_user	u;
	int			rc;

	memset(&u, 0, sizeof(u));
	if ((rc = store_user_get(s->ms->store, s->user, &u)) < 0) {
		imap_store_error(s, rc, "GETQUOTA");
		return;
	}
	if (u.quota_limit > 0)
		imap_out(s, "* QUOTA \"\" (STORAGE %llu %llu)",
		    (unsigned long long)((u.quota_used + 1023) / 1024),
		    (unsigned long long)(u.quota_limit / 1024));
	else
		imap_out(s, "* QUOTA \"\" ()");
	store_user_clear(&u);
	imap_tagged(s, "OK", "Quota completed");
}

void
imap_cmd_getquota(struct imap_session *s)
{
	const char	*root;
	size_t		 len;

	(void)imap_arg_astring(&root, &len, &s->args[0]);
	if (len != 0) {
		imap_tagged(s, "NO", "[NONEXISTENT] No such quota root");
		return;
	}
	quota_out(s);
}

void
imap_cmd_getquotaroot(struct imap_session *s)
{
	struct store_status	 st;
	char			*name = NULL;
	struct buf		 b;
	int			 rc;

	if (imap_mailbox_arg(s, &s->args[0], &name) < 0) {
		imap_bad_args(s);
		return;
	}
	if ((rc = store_mailbox_status(s->ms->store, s->user, name,
	    &st)) < 0 && rc != ERR_PERM) {
		imap_store_error(s, rc, "GETQUOTAROOT");
		free(name);
		return;
	}
	buf_init(&b, 64 * 1024);
	(void)buf_printf(&b, "* QUOTAROOT ");
	imap_out_mailbox(s, &b, name);
	(void)buf_printf(&b, " \"\"");
	out_line(s, &b);
	buf_free(&b);
	free(name);
	quota_out(s);
}

/* ------------------------------------------------------------ SELECT */

struct select_req {
	char		*name;
	int		 readonly;
	int		 qresync;
	uint32_t	 q_uidvalidity;
	uint64_t	 q_modseq;
	struct imap_seqset q_known;	/* known UIDs, n == 0: all */
};

static void
select_req_free(void *arg)
{
	struct select_req	*r = arg;

	if (r == NULL)
		return;
	free(r->name);
	imap_seqset_free(&r->q_known);
	free(r);
}

/* (CONDSTORE) or (QRESYNC (uidvalidity modseq [known-uids [...]])) */
static int
select_params(struct imap_session *s, const struct imap_arg *p,
    struct select_req *r)
{
	size_t			 i;
	const struct imap_arg	*q;
	uint64_t		 v;

	for (i = 0; i < p->nlist; i++) {
		if (p->list[i].type != IMAP_ARG_ATOM)
			goto bad;
		if (strcasecmp(p->list[i].str, "CONDSTORE") == 0) {
			s->enabled |= IMAP_E_CONDSTORE;
			continue;
		}
		if (strcasecmp(p->list[i].str, "QRESYNC") != 0 ||
		    i + 1 >= p->nlist)
			goto bad;
		if (!(s->enabled & IMAP_E_QRESYNC)) {
			err_set(ERR_PROTO, "QRESYNC is not enabled");
			return ERR_PROTO;
		}
		q = &p->list[++i];
		if (q->type != IMAP_ARG_LIST || q->nlist < 2 ||
		    q->nlist > 4 || imap_arg_number(&v, &q->list[0]) < 0 ||
		    v == 0 || v > UINT32_MAX)
			goto bad;
		r->q_uidvalidity = (uint32_t)v;
		if (imap_arg_number(&r->q_modseq, &q->list[1]) < 0 ||
		    r->q_modseq == 0)
			goto bad;
		if (q->nlist >= 3 && q->list[2].type != IMAP_ARG_LIST &&
		    imap_arg_seqset(&r->q_known, &q->list[2],
		    UINT32_MAX) < 0)
			goto bad;
		/* the sequence match data (4th) is only an optimisation */
		r->qresync = 1;
	}
	return 0;
bad:
	err_set(ERR_PROTO, "invalid SELECT parameters");
	return ERR_PROTO;
}

static void
select_work(struct imap_session *s)
{
	struct select_req	*r = s->cstate;
	struct imap_view	*v;
	struct store_status	 st;
	struct store_msginfo	*m = NULL;
	struct buf		 b;
	uint32_t		*gone = NULL;
	size_t			 n = 0, ngone = 0, i, k;
	uint32_t		 unseen = 0;
	int			 rc;

	v = xcalloc(1, sizeof(*v));
	v->name = xstrdup(r->name);
	v->readonly = r->readonly;
	v->gen = store_generation(s->ms->store);
	if ((rc = store_mailbox_status(s->ms->store, s->user, r->name,
	    &st)) < 0 ||
	    (rc = store_messages(s->ms->store, s->user, r->name, 1,
	    UINT32_MAX, 0, &m, &n)) < 0 ||
	    (rc = store_mailbox_keywords(s->ms->store, s->user, r->name,
	    &v->kw, &v->nkw)) < 0) {
		imap_view_free(&v);
		store_msginfo_free(&m);
		if (rc == ERR_PERM)
			imap_tagged(s, "NO", "[CANNOT] The mailbox cannot be "
			    "selected");
		else
			imap_store_error(s, rc, "SELECT");
		return;
	}
	v->uidvalidity = st.uidvalidity;
	v->modseq = st.highestmodseq;
	v->uidnext = st.uidnext;
	v->cap = n > 0 ? n : 1;
	v->uids = xcalloc(v->cap, sizeof(*v->uids));
	v->sizes = xcalloc(v->cap, sizeof(*v->sizes));
	for (i = 0; i < n; i++) {
		v->uids[i] = m[i].uid;
		v->sizes[i] = m[i].size;
		if (!(m[i].flags & STORE_F_SEEN) && unseen == 0)
			unseen = (uint32_t)i + 1;
		if (m[i].uid >= v->uidnext)
			v->uidnext = m[i].uid + 1;
		if (m[i].modseq > v->modseq)
			v->modseq = m[i].modseq;
	}
	v->n = n;
	store_msginfo_free(&m);

	buf_init(&b, 1024 * 1024);
	(void)buf_printf(&b, "* FLAGS ");
	(void)imap_fmt_flags(&b, STORE_F_ALL, imap_kw_all(v->nkw), v->kw,
	    v->nkw);
	out_line(s, &b);
	if (v->readonly)
		imap_out(s, "* OK [PERMANENTFLAGS ()] Read-only mailbox");
	else {
		(void)buf_printf(&b, "* OK [PERMANENTFLAGS ");
		(void)imap_fmt_flags(&b, STORE_F_ALL, imap_kw_all(v->nkw),
		    v->kw, v->nkw);
		if (b.len > 0 && b.data[b.len - 1] == ')') {
			b.len--;
			(void)buf_printf(&b, "%s\\*)] Flags permitted",
			    b.data[b.len - 1] == '(' ? "" : " ");
		}
		out_line(s, &b);
	}
	imap_out(s, "* %zu EXISTS", v->n);
	if (!(s->enabled & IMAP_E_REV2)) {
		imap_out(s, "* 0 RECENT");
		if (unseen)
			imap_out(s, "* OK [UNSEEN %u] First unseen", unseen);
	}
	imap_out(s, "* OK [UIDVALIDITY %u] UIDs valid", v->uidvalidity);
	imap_out(s, "* OK [UIDNEXT %u] Predicted next UID", v->uidnext);
	imap_out(s, "* OK [HIGHESTMODSEQ %llu] Highest",
	    (unsigned long long)v->modseq);
	if (s->enabled & IMAP_E_REV2) {
		(void)buf_printf(&b, "* LIST () \"/\" ");
		imap_out_mailbox(s, &b, v->name);
		out_line(s, &b);
	}
	s->view = v;
	s->state = IMAP_S_SELECTED;

	/* QRESYNC (RFC 7162 3.2.5): what changed since the client's state */
	if (r->qresync && r->q_uidvalidity == v->uidvalidity) {
		if (store_vanished(s->ms->store, s->user, v->name,
		    r->q_modseq, &gone, &ngone) == 0 && ngone > 0) {
			(void)buf_printf(&b, "* VANISHED (EARLIER) ");
			for (i = 0, k = 0; i < ngone; i++) {
				if (r->q_known.n > 0 &&
				    !imap_seqset_contains(&r->q_known,
				    gone[i]))
					continue;
				gone[k++] = gone[i];
			}
			if (k > 0) {
				(void)imap_fmt_seqset(&b, gone, k);
				out_line(s, &b);
			} else
				buf_reset(&b);
		}
		free(gone);
		if (store_messages(s->ms->store, s->user, v->name, 1,
		    UINT32_MAX, r->q_modseq, &m, &n) == 0) {
			for (i = 0; i < n; i++) {
				uint32_t seq = imap_view_seq(v, m[i].uid);

				if (seq == 0)
					continue;
				(void)buf_printf(&b, "* %u FETCH (UID %u "
				    "FLAGS ", seq, m[i].uid);
				(void)imap_fmt_flags(&b, m[i].flags,
				    m[i].keywords, v->kw, v->nkw);
				(void)buf_printf(&b, " MODSEQ (%llu))",
				    (unsigned long long)m[i].modseq);
				out_line(s, &b);
			}
			store_msginfo_free(&m);
		}
	}
	buf_free(&b);
	imap_tagged(s, "OK", "[%s] %s completed", v->readonly ? "READ-ONLY" :
	    "READ-WRITE", v->readonly ? "EXAMINE" : "SELECT");
}

static void
select_audited(struct imap_session *s, int rc)
{
	if (rc < 0) {
		imap_tagged(s, "NO", "[UNAVAILABLE] The mailbox open cannot "
		    "be recorded; try again later");
		return;
	}
	imap_submit(s, select_work);
}

/* Loop: deselect, record the open (fail-closed), then the job. */
void
imap_cmd_select(struct imap_session *s)
{
	struct select_req	*r;

	r = xcalloc(1, sizeof(*r));
	r->readonly = strcmp(s->cname, "EXAMINE") == 0;
	if (imap_mailbox_arg(s, &s->args[0], &r->name) < 0 ||
	    (s->nargs == 2 && select_params(s, &s->args[1], r) < 0)) {
		select_req_free(r);
		imap_bad_args(s);
		return;
	}
	if (s->state == IMAP_S_SELECTED) {
		imap_view_free(&s->view);
		s->state = IMAP_S_AUTH;
		free(s->saved);
		s->saved = NULL;
		s->nsaved = 0;
		if (s->enabled & (IMAP_E_QRESYNC | IMAP_E_REV2))
			imap_out(s, "* OK [CLOSED] Previous mailbox closed");
	}
	s->cstate = r;
	s->cstate_free = select_req_free;
	imap_audit(s, "mail.open", r->name, AUDIT_OK, json_pack("{s:s}",
	    "mode", r->readonly ? "examine" : "select"), select_audited);
}

/* ------------------------------------------------------------ APPEND */

struct append_msg {
	uint32_t		 flags;
	const char		**kw;
	size_t			 nkw;
	int64_t			 date;
	const char		*data;
	size_t			 len;
};

static void
append_msgs_free(struct append_msg *m, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(m[i].kw);
	free(m);
}

/* Parse "[flags] [date] literal" groups from args[i...]. */
static int
append_parse(const struct imap_arg *a, size_t n, struct append_msg **out,
    size_t *nout)
{
	struct append_msg	*m = NULL;
	size_t			 nm = 0, i = 0;

	*out = NULL;
	*nout = 0;
	while (i < n) {
		struct append_msg	cur;

		if (nm == IMAP_APPEND_MSGS_MAX) {
			err_set(ERR_PROTO, "too many messages in one APPEND");
			goto bad;
		}
		memset(&cur, 0, sizeof(cur));
		if (a[i].type == IMAP_ARG_LIST) {
			if (imap_flags_arg(a[i].list, a[i].nlist, &cur.flags,
			    &cur.kw, &cur.nkw) < 0)
				goto bad;
			i++;
		}
		if (i < n && a[i].type == IMAP_ARG_QUOTED) {
			if (imap_parse_datetime(a[i].str, a[i].len,
			    &cur.date) < 0) {
				free(cur.kw);
				err_set(ERR_PROTO, "invalid date-time");
				goto bad;
			}
			i++;
		}
		if (i < n && a[i].type == IMAP_ARG_ATOM &&
		    strcasecmp(a[i].str, "UTF8") == 0 && i + 1 < n &&
		    a[i + 1].type == IMAP_ARG_LIST &&
		    a[i + 1].nlist == 1 &&
		    a[i + 1].list[0].type == IMAP_ARG_LITERAL8) {
			cur.data = a[i + 1].list[0].str;
			cur.len = a[i + 1].list[0].len;
			i += 2;
		} else if (i < n && (a[i].type == IMAP_ARG_LITERAL ||
		    a[i].type == IMAP_ARG_LITERAL8)) {
			cur.data = a[i].str;
			cur.len = a[i].len;
			i++;
		} else {
			free(cur.kw);
			err_set(ERR_PROTO, "APPEND needs the message as a "
			    "literal");
			goto bad;
		}
		m = xreallocarray(m, nm + 1, sizeof(*m));
		m[nm++] = cur;
	}
	if (nm == 0) {
		err_set(ERR_PROTO, "APPEND needs a message");
		goto bad;
	}
	*out = m;
	*nout = nm;
	return 0;
bad:
	append_msgs_free(m, nm);
	return ERR_PROTO;
}

void
imap_cmd_append(struct imap_session *s)
{
	struct append_msg	*m = NULL;
	struct store_append	 ap;
	struct buf		 b;
	char			*name = NULL;
	uint32_t		*uids = NULL, uidvalidity = 0;
	size_t			 nm = 0, i, done = 0;
	int			 rc = 0;

	if (s->nargs < 2 || imap_mailbox_arg(s, &s->args[0], &name) < 0 ||
	    append_parse(s->args + 1, s->nargs - 1, &m, &nm) < 0) {
		free(name);
		imap_bad_args(s);
		return;
	}
	uids = xcalloc(nm, sizeof(*uids));
	for (i = 0; i < nm; i++) {
		if (m[i].len == 0) {
			rc = ERR_INVAL;
			err_set(ERR_INVAL, "empty message");
			break;
		}
		memset(&ap, 0, sizeof(ap));
		ap.msg = m[i].data;
		ap.len = m[i].len;
		ap.flags = m[i].flags;
		ap.keywords = m[i].kw;
		ap.nkeywords = m[i].nkw;
		ap.internaldate = m[i].date;
		if ((rc = store_append(s->ms->store, s->user, name, s->dek,
		    &ap, &uidvalidity, &uids[i])) < 0)
			break;
		done++;
	}
	if (rc < 0 && done > 0) {
		/* MULTIAPPEND is all or nothing (RFC 3502): take back the
		 * messages of this command already stored */
		struct store_flagop	op;
		struct store_flagres	res;
		uint32_t		*ex = NULL;
		size_t			 nex = 0;

		memset(&op, 0, sizeof(op));
		op.mode = STORE_FLAGS_ADD;
		op.flags = STORE_F_DELETED;
		memset(&res, 0, sizeof(res));
		if (store_set_flags(s->ms->store, s->user, name, uids, done,
		    &op, &res) == 0)
			(void)store_expunge(s->ms->store, s->user, name, uids,
			    done, &ex, &nex);
		store_flagres_free(&res);
		free(ex);
	}
	if (rc == ERR_NOTFOUND)
		imap_tagged(s, "NO", "[TRYCREATE] No such mailbox");
	else if (rc == ERR_TOOBIG)
		imap_tagged(s, "NO", "[OVERQUOTA] %s", err_msg());
	else if (rc < 0)
		imap_store_error(s, rc, "APPEND");
	else {
		buf_init(&b, 1024 * 1024);
		(void)imap_fmt_seqset(&b, uids, nm);
		imap_tagged(s, "OK", "[APPENDUID %u %s] APPEND completed",
		    uidvalidity, (char *)b.data);
		if (strlen(s->ttext) + 1 >= sizeof(s->ttext))
			/* a very long, unordered set: say less */
			imap_tagged(s, "OK", "APPEND completed");
		buf_free(&b);
	}
	free(uids);
	append_msgs_free(m, nm);
	free(name);
}
