/*
 * imap_search.c -- SEARCH / UID SEARCH: parse the search keys into a
 * program, match messages against it, write SEARCH / ESEARCH responses.
 *
 * The program is an array of nodes in prefix order: a node's children
 * follow it, and node.end is the index just past its subtree.  Node 0
 * is the implicit AND of the top-level keys.  Everything the program
 * needs is copied out of the command and the environment at parse time
 * (strings, "$", "*" resolved), so it can outlive both.
 *
 * Runs in: the mailsrv process (the imap session; pure functions, no
 * I/O, so also fine on a worker thread).
 * Failure policy: bad syntax is ERR_PROTO (BAD), a limit ERR_TOOBIG,
 * an unknown charset IMAP_SEARCH_ERR_BADCHARSET; err_set() messages
 * are constant strings (no peer data).  Out of memory is fatal.
 * SECURITY: client-controlled nesting is capped (IMAP_SEARCH_DEPTH_MAX)
 * before every recursion step of the parser and the matcher, and the
 * number of keys (IMAP_SEARCH_KEYS_MAX) before every node is added, so
 * stack and memory per SEARCH are bounded whatever the command.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/xmalloc.h"
#include "mailsrv/imap/imap_format.h"
#include "mailsrv/imap/imap_msg.h"
#include "mailsrv/imap/imap_parser.h"
#include "mailsrv/imap/imap_search.h"
#include "mailsrv/store/store.h"

enum skey {
	SK_AND = 1,	/* children up to end */
	SK_OR,		/* two children */
	SK_NOT,		/* one child */
	SK_ALL,
	SK_NONE,
	SK_SEQ,		/* set: sequence numbers */
	SK_UID,		/* set: UIDs */
	SK_SAVED,	/* "$": UID in the saved result */
	SK_FLAGS_ON,	/* num: STORE_F_* bit set */
	SK_FLAGS_OFF,
	SK_KW_ON,	/* num: keyword bit set */
	SK_KW_OFF,
	SK_LARGER,	/* num: size */
	SK_SMALLER,
	SK_BEFORE,	/* day: internal date */
	SK_ON,
	SK_SINCE,
	SK_SENTBEFORE,	/* day: Date: header */
	SK_SENTON,
	SK_SENTSINCE,
	SK_HEADER,	/* field, str/len */
	SK_BODY,	/* str/len */
	SK_TEXT,
	SK_MODSEQ,	/* num: MODSEQ >= num */
};

/* What follows a key name. */
enum sarg {
	SA_NONE = 0,
	SA_STRING,	/* astring (header keys, BODY, TEXT) */
	SA_HEADER,	/* field-name astring */
	SA_DATE,
	SA_NUMBER,
	SA_SEQSET,	/* UID */
	SA_KEYWORD,
	SA_NOT,
	SA_OR,
	SA_MODSEQ,
};

struct snode {
	enum skey		 type;
	int			 heavy;	/* the subtree needs the message */
	size_t			 end;
	uint64_t		 num;
	int32_t			 day;
	struct imap_seqset	 set;
	char			*field;
	char			*str;
	size_t			 len;
};

/* RETURN options. */
#define R_MIN	0x01
#define R_MAX	0x02
#define R_ALL	0x04
#define R_COUNT	0x08
#define R_SAVE	0x10
#define R_DATA	(R_MIN | R_MAX | R_ALL | R_COUNT)

struct imap_search {
	struct snode	*n;
	size_t		 nn;
	size_t		 cap;
	uint32_t	*saved;
	size_t		 nsaved;
	unsigned	 ret;		/* R_*, R_ALL for RETURN () */
	int		 esearch;	/* answer with ESEARCH */
	int		 modseq;
};

struct keydef {
	const char	*name;
	enum skey	 type;
	enum sarg	 arg;
	uint64_t	 num;	/* flag bit; header field index */
};

static const char *const hdr_field[] = { "Bcc", "Cc", "From", "Subject",
    "To" };

/* Sorted by name (bsearch, ASCII case-insensitive). */
static const struct keydef keys[] = {
	{ "ALL",	SK_ALL,		SA_NONE,	0 },
	{ "ANSWERED",	SK_FLAGS_ON,	SA_NONE,	STORE_F_ANSWERED },
	{ "BCC",	SK_HEADER,	SA_STRING,	0 },
	{ "BEFORE",	SK_BEFORE,	SA_DATE,	0 },
	{ "BODY",	SK_BODY,	SA_STRING,	0 },
	{ "CC",		SK_HEADER,	SA_STRING,	1 },
	{ "DELETED",	SK_FLAGS_ON,	SA_NONE,	STORE_F_DELETED },
	{ "DRAFT",	SK_FLAGS_ON,	SA_NONE,	STORE_F_DRAFT },
	{ "FLAGGED",	SK_FLAGS_ON,	SA_NONE,	STORE_F_FLAGGED },
	{ "FROM",	SK_HEADER,	SA_STRING,	2 },
	{ "HEADER",	SK_HEADER,	SA_HEADER,	0 },
	{ "KEYWORD",	SK_KW_ON,	SA_KEYWORD,	0 },
	{ "LARGER",	SK_LARGER,	SA_NUMBER,	0 },
	{ "MODSEQ",	SK_MODSEQ,	SA_MODSEQ,	0 },
	{ "NEW",	SK_NONE,	SA_NONE,	0 },	/* RECENT UNSEEN */
	{ "NOT",	SK_NOT,		SA_NOT,		0 },
	{ "OLD",	SK_ALL,		SA_NONE,	0 },	/* NOT RECENT */
	{ "ON",		SK_ON,		SA_DATE,	0 },
	{ "OR",		SK_OR,		SA_OR,		0 },
	{ "RECENT",	SK_NONE,	SA_NONE,	0 },
	{ "SEEN",	SK_FLAGS_ON,	SA_NONE,	STORE_F_SEEN },
	{ "SENTBEFORE",	SK_SENTBEFORE,	SA_DATE,	0 },
	{ "SENTON",	SK_SENTON,	SA_DATE,	0 },
	{ "SENTSINCE",	SK_SENTSINCE,	SA_DATE,	0 },
	{ "SINCE",	SK_SINCE,	SA_DATE,	0 },
	{ "SMALLER",	SK_SMALLER,	SA_NUMBER,	0 },
	{ "SUBJECT",	SK_HEADER,	SA_STRING,	3 },
	{ "TEXT",	SK_TEXT,	SA_STRING,	0 },
	{ "TO",		SK_HEADER,	SA_STRING,	4 },
	{ "UID",	SK_UID,		SA_SEQSET,	0 },
	{ "UNANSWERED",	SK_FLAGS_OFF,	SA_NONE,	STORE_F_ANSWERED },
	{ "UNDELETED",	SK_FLAGS_OFF,	SA_NONE,	STORE_F_DELETED },
	{ "UNDRAFT",	SK_FLAGS_OFF,	SA_NONE,	STORE_F_DRAFT },
	{ "UNFLAGGED",	SK_FLAGS_OFF,	SA_NONE,	STORE_F_FLAGGED },
	{ "UNKEYWORD",	SK_KW_OFF,	SA_KEYWORD,	0 },
	{ "UNSEEN",	SK_FLAGS_OFF,	SA_NONE,	STORE_F_SEEN },
};

/* Parser state; the cursor walks one list (or the top level). */
struct sparse {
	struct imap_search		*s;
	const struct imap_search_env	*env;
};

struct cursor {
	const struct imap_arg	*a;
	size_t			 n;
	size_t			 i;
};

static int	parse_key(struct sparse *, struct cursor *, int);

static int
bad(const char *msg)
{
	err_set(ERR_PROTO, "%s", msg);
	return ERR_PROTO;
}

static int
keydef_cmp(const void *k, const void *e)
{
	return strcasecmp(k, ((const struct keydef *)e)->name);
}

/* Append a node; the root does not count against the limit. */
static int
add_node(struct imap_search *s, enum skey type, size_t *idx)
{
	if (s->nn > IMAP_SEARCH_KEYS_MAX) {
		err_set(ERR_TOOBIG, "too many search keys");
		return ERR_TOOBIG;
	}
	if (s->nn == s->cap) {
		s->cap = s->cap == 0 ? 16 : s->cap * 2;
		s->n = xreallocarray(s->n, s->cap, sizeof(*s->n));
	}
	memset(&s->n[s->nn], 0, sizeof(s->n[s->nn]));
	s->n[s->nn].type = type;
	s->n[s->nn].end = s->nn + 1;
	*idx = s->nn++;
	return 0;
}

/* Mark node idx complete: its subtree is everything added since. */
static void
close_node(struct imap_search *s, size_t idx)
{
	size_t	k;

	s->n[idx].end = s->nn;
	for (k = idx + 1; k < s->nn; k++)
		if (s->n[k].heavy)
			s->n[idx].heavy = 1;
}

static int
next_arg(struct cursor *c, const struct imap_arg **out)
{
	if (c->i >= c->n)
		return bad("missing search argument");
	*out = &c->a[c->i++];
	return 0;
}

/* field-name (RFC 5322 3.6.8): printable US-ASCII except ":". */
static int
field_name_ok(const char *f, size_t len)
{
	size_t	i;

	if (len == 0 || len > 255)
		return 0;
	for (i = 0; i < len; i++)
		if (f[i] < 33 || f[i] > 126 || f[i] == ':')
			return 0;
	return 1;
}

static int
arg_string(struct snode *nd, const struct imap_arg *a)
{
	const char	*str;
	size_t		 len;

	if (imap_arg_astring(&str, &len, a) < 0)
		return bad("expected search string");
	nd->str = xmalloc(len + 1);
	memcpy(nd->str, str, len);
	nd->str[len] = '\0';
	nd->len = len;
	return 0;
}

static int
arg_date(struct snode *nd, const struct imap_arg *a)
{
	if ((a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_QUOTED) ||
	    imap_parse_date(a->str, a->len, &nd->day) < 0)
		return bad("invalid search date");
	return 0;
}

/* KEYWORD / UNKEYWORD: a keyword the mailbox lacks is a constant. */
static int
arg_keyword(struct snode *nd, const struct imap_arg *a,
    const struct imap_search_env *env)
{
	const char	*kw;
	size_t		 i;

	if (imap_arg_atom(&kw, a) < 0)
		return bad("invalid search keyword");
	for (i = 0; i < env->nkw && i < 64; i++)
		if (env->kw[i] != NULL && strcasecmp(env->kw[i], kw) == 0)
			break;
	if (i < env->nkw && i < 64)
		nd->num = (uint64_t)1 << i;
	else
		nd->type = nd->type == SK_KW_ON ? SK_NONE : SK_ALL;
	return 0;
}

/* MODSEQ ["/flags/<flag>" priv|shared|all] mod-sequence-valzer */
static int
arg_modseq(struct snode *nd, struct cursor *c)
{
	const struct imap_arg	*a;
	const char		*f;
	size_t			 i;
	int			 rc;

	if ((rc = next_arg(c, &a)) < 0)
		return rc;
	if (a->type == IMAP_ARG_QUOTED || a->type == IMAP_ARG_LITERAL) {
		if (a->len <= 7 || strncasecmp(a->str, "/flags/", 7) != 0)
			return bad("invalid MODSEQ entry name");
		f = a->str + 7;
		i = f[0] == '\\' ? 1 : 0;
		if (f[i] == '\0')
			return bad("invalid MODSEQ entry name");
		for (; f[i] != '\0'; i++)
			if (!imap_atom_char((unsigned char)f[i]))
				return bad("invalid MODSEQ entry name");
		if ((rc = next_arg(c, &a)) < 0)
			return rc;
		if (a->type != IMAP_ARG_ATOM ||
		    (strcasecmp(a->str, "priv") != 0 &&
		    strcasecmp(a->str, "shared") != 0 &&
		    strcasecmp(a->str, "all") != 0))
			return bad("invalid MODSEQ entry type");
		if ((rc = next_arg(c, &a)) < 0)
			return rc;
	}
	if (imap_arg_number(&nd->num, a) < 0 || nd->num > INT64_MAX)
		return bad("invalid MODSEQ value");
	return 0;
}

/* A sequence set (or "$") as a key, or after UID. */
static int
arg_seqset(struct sparse *p, size_t idx, const struct imap_arg *a)
{
	struct imap_search		*s = p->s;
	const struct imap_search_env	*env = p->env;
	uint32_t			 star;

	if ((a->type == IMAP_ARG_ATOM) && strcmp(a->str, "$") == 0) {
		s->n[idx].type = SK_SAVED;
		if (s->saved == NULL && env->nsaved > 0) {
			s->saved = xreallocarray(NULL, env->nsaved,
			    sizeof(*s->saved));
			memcpy(s->saved, env->saved,
			    env->nsaved * sizeof(*s->saved));
			s->nsaved = env->nsaved;
		}
		return 0;
	}
	if (s->n[idx].type == SK_UID)
		star = env->nmsgs > 0 ? env->uids[env->nmsgs - 1] : 0;
	else
		star = env->nmsgs;
	if (imap_arg_seqset(&s->n[idx].set, a, star) < 0)
		return bad("invalid sequence set");
	return 0;
}

/* NOT key / OR key key / ( key ... ): children one level deeper. */
static int
parse_children(struct sparse *p, struct cursor *c, size_t idx, size_t nkids,
    int depth)
{
	size_t	k;
	int	rc;

	if (depth >= IMAP_SEARCH_DEPTH_MAX) {
		err_set(ERR_TOOBIG, "search keys nested too deeply");
		return ERR_TOOBIG;
	}
	for (k = 0; k < nkids || (nkids == 0 && c->i < c->n); k++)
		if ((rc = parse_key(p, c, depth + 1)) < 0)
			return rc;
	close_node(p->s, idx);
	return 0;
}

static int
parse_named(struct sparse *p, struct cursor *c, const struct keydef *kd,
    int depth)
{
	struct imap_search	*s = p->s;
	const struct imap_arg	*a = NULL;
	const char		*str;
	size_t			 idx, len;
	int			 rc;

	if ((rc = add_node(s, kd->type, &idx)) < 0)
		return rc;
	s->n[idx].num = kd->num;
	if (kd->arg == SA_NOT || kd->arg == SA_OR)
		return parse_children(p, c, idx, kd->arg == SA_NOT ? 1 : 2,
		    depth);
	if (kd->arg == SA_MODSEQ) {
		if (!(p->env->flags & IMAP_SEARCH_E_CONDSTORE))
			return bad("unknown search key");
		s->modseq = 1;
		return arg_modseq(&s->n[idx], c);
	}
	if (kd->arg != SA_NONE && (rc = next_arg(c, &a)) < 0)
		return rc;
	switch (kd->arg) {
	case SA_STRING:
		if (kd->type == SK_HEADER)
			s->n[idx].field = xstrdup(hdr_field[kd->num]);
		s->n[idx].heavy = 1;
		return arg_string(&s->n[idx], a);
	case SA_HEADER:
		if (imap_arg_astring(&str, &len, a) < 0 ||
		    !field_name_ok(str, len))
			return bad("invalid header field name");
		s->n[idx].field = xstrdup(str);
		s->n[idx].heavy = 1;
		if ((rc = next_arg(c, &a)) < 0)
			return rc;
		return arg_string(&s->n[idx], a);
	case SA_DATE:
		s->n[idx].heavy = kd->type == SK_SENTBEFORE ||
		    kd->type == SK_SENTON || kd->type == SK_SENTSINCE;
		return arg_date(&s->n[idx], a);
	case SA_NUMBER:
		if (imap_arg_number(&s->n[idx].num, a) < 0)
			return bad("invalid search number");
		return 0;
	case SA_SEQSET:
		return arg_seqset(p, idx, a);
	case SA_KEYWORD:
		return arg_keyword(&s->n[idx], a, p->env);
	default:
		return 0;
	}
}

static int
parse_key(struct sparse *p, struct cursor *c, int depth)
{
	const struct imap_arg	*a;
	const struct keydef	*kd;
	struct cursor		 sub;
	size_t			 idx;
	int			 rc;

	if ((rc = next_arg(c, &a)) < 0)
		return rc;
	if (a->type == IMAP_ARG_LIST) {
		if (a->nlist == 0)
			return bad("empty search key list");
		if ((rc = add_node(p->s, SK_AND, &idx)) < 0)
			return rc;
		sub.a = a->list;
		sub.n = a->nlist;
		sub.i = 0;
		return parse_children(p, &sub, idx, 0, depth);
	}
	if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NUMBER)
		return bad("expected search key");
	if (a->str[0] == '$' || a->str[0] == '*' ||
	    (a->str[0] >= '0' && a->str[0] <= '9')) {
		if ((rc = add_node(p->s, SK_SEQ, &idx)) < 0)
			return rc;
		return arg_seqset(p, idx, a);
	}
	kd = bsearch(a->str, keys, sizeof(keys) / sizeof(keys[0]),
	    sizeof(keys[0]), keydef_cmp);
	if (kd == NULL)
		return bad("unknown search key");
	return parse_named(p, c, kd, depth);
}

/* [RETURN (opts)] */
static int
parse_return(struct imap_search *s, struct cursor *c)
{
	static const struct { const char *name; unsigned bit; } opts[] = {
		{ "MIN", R_MIN }, { "MAX", R_MAX }, { "ALL", R_ALL },
		{ "COUNT", R_COUNT }, { "SAVE", R_SAVE },
	};
	const struct imap_arg	*a, *o;
	size_t			 i, k;

	if (c->i >= c->n || c->a[c->i].type != IMAP_ARG_ATOM ||
	    strcasecmp(c->a[c->i].str, "RETURN") != 0)
		return 0;
	c->i++;
	if (c->i >= c->n || c->a[c->i].type != IMAP_ARG_LIST)
		return bad("expected RETURN options");
	a = &c->a[c->i++];
	s->esearch = 1;
	for (i = 0; i < a->nlist; i++) {
		o = &a->list[i];
		for (k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
			if (o->type == IMAP_ARG_ATOM &&
			    strcasecmp(o->str, opts[k].name) == 0)
				break;
		if (k == sizeof(opts) / sizeof(opts[0]))
			return bad("unknown RETURN option");
		s->ret |= opts[k].bit;
	}
	if ((s->ret & R_DATA) == 0 && !(s->ret & R_SAVE))
		s->ret = R_ALL;		/* RETURN () */
	return 0;
}

/* [CHARSET name] */
static int
parse_charset(struct cursor *c, const struct imap_search_env *env)
{
	const struct imap_arg	*a;
	const char		*cs;
	size_t			 len;

	if (c->i >= c->n || c->a[c->i].type != IMAP_ARG_ATOM ||
	    strcasecmp(c->a[c->i].str, "CHARSET") != 0)
		return 0;
	c->i++;
	if (c->i >= c->n)
		return bad("missing charset");
	a = &c->a[c->i++];
	if ((a->type != IMAP_ARG_QUOTED && imap_arg_atom(&cs, a) < 0) ||
	    imap_arg_astring(&cs, &len, a) < 0)
		return bad("invalid charset");
	if ((env->flags & IMAP_SEARCH_E_UTF8) &&
	    !(env->flags & IMAP_SEARCH_E_REV2))
		return bad("CHARSET not allowed with UTF8=ACCEPT");
	if (strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "US-ASCII") != 0) {
		err_set(IMAP_SEARCH_ERR_BADCHARSET, "unsupported charset");
		return IMAP_SEARCH_ERR_BADCHARSET;
	}
	return 0;
}

int
imap_search_parse(struct imap_search **out, const struct imap_arg *args,
    size_t nargs, const struct imap_search_env *env)
{
	struct imap_search	*s;
	struct sparse		 p;
	struct cursor		 c;
	size_t			 root;
	int			 rc;

	*out = NULL;
	s = xcalloc(1, sizeof(*s));
	s->esearch = (env->flags & IMAP_SEARCH_E_REV2) != 0;
	p.s = s;
	p.env = env;
	c.a = args;
	c.n = nargs;
	c.i = 0;
	if ((rc = parse_return(s, &c)) < 0 ||
	    (rc = parse_charset(&c, env)) < 0)
		goto done;
	if (s->esearch && s->ret == 0)
		s->ret = R_ALL;		/* IMAP4rev2 without RETURN */
	if (c.i >= c.n) {
		rc = bad("missing search key");
		goto done;
	}
	(void)add_node(s, SK_AND, &root);
	while (c.i < c.n)
		if ((rc = parse_key(&p, &c, 0)) < 0)
			goto done;
	close_node(s, root);
	*out = s;
	s = NULL;
done:
	imap_search_free(&s);
	return rc;
}

void
imap_search_free(struct imap_search **sp)
{
	struct imap_search	*s = *sp;
	size_t			 i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nn; i++) {
		imap_seqset_free(&s->n[i].set);
		free(s->n[i].field);
		free(s->n[i].str);
	}
	free(s->n);
	free(s->saved);
	free(s);
	*sp = NULL;
}

int
imap_search_needs_msg(const struct imap_search *s)
{
	return s->nn > 0 && s->n[0].heavy;
}

int
imap_search_uses_modseq(const struct imap_search *s)
{
	return s->modseq;
}

int
imap_search_saves(const struct imap_search *s)
{
	return (s->ret & R_SAVE) != 0;
}

/* ------------------------------------------------------------ matching */

struct smatch {
	uint32_t			 seq;
	const struct store_msginfo	*info;
	const struct imap_msg		*msg;
};

static int64_t
floordiv(int64_t a, int64_t b)
{
	int64_t	q = a / b;

	return a % b < 0 ? q - 1 : q;
}

/*
 * The day of instant t in a zone tzoff_min minutes east of UTC, as
 * days since the epoch, without overflow for any t (RFC 5322 zones are
 * within +-99:59).
 */
static int64_t
day_of(int64_t t, int tzoff_min)
{
	int64_t	r = t % 86400;

	if (r < 0)
		r += 86400;
	if (tzoff_min < -(99 * 60 + 59) || tzoff_min > 99 * 60 + 59)
		tzoff_min = 0;
	return floordiv(t, 86400) + floordiv(r + (int64_t)tzoff_min * 60,
	    86400);
}

static int
day_cmp(enum skey k, int64_t day, int32_t want)
{
	switch (k) {
	case SK_BEFORE:
	case SK_SENTBEFORE:
		return day < want;
	case SK_ON:
	case SK_SENTON:
		return day == want;
	default:
		return day >= want;
	}
}

static int
contains_u32(const uint32_t *v, size_t n, uint32_t x)
{
	size_t	lo = 0, hi = n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (v[mid] == x)
			return 1;
		if (v[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* A key that needs the message; msg is not NULL. */
static int
match_msg(const struct snode *nd, const struct smatch *m)
{
	int64_t	t;
	int	tz, rc;

	switch (nd->type) {
	case SK_HEADER:
		rc = imap_msg_header_match(m->msg, nd->field, nd->str,
		    nd->len);
		return rc == 1;
	case SK_BODY:
	case SK_TEXT:
		rc = imap_msg_text_match(m->msg, nd->str, nd->len,
		    nd->type == SK_TEXT);
		return rc == 1;
	default:
		if (imap_msg_date(m->msg, &t, &tz) < 0)
			return day_cmp(nd->type,
			    day_of(m->info->internaldate, 0), nd->day);
		return day_cmp(nd->type, day_of(t, tz), nd->day);
	}
}

static int
match_leaf(const struct snode *nd, const struct smatch *m,
    const struct imap_search *s)
{
	const struct store_msginfo	*in = m->info;

	if (nd->heavy)
		return m->msg == NULL ? IMAP_SEARCH_NEEDMSG :
		    match_msg(nd, m);
	switch (nd->type) {
	case SK_ALL:
		return 1;
	case SK_SEQ:
		return imap_seqset_contains(&nd->set, m->seq);
	case SK_UID:
		return imap_seqset_contains(&nd->set, in->uid);
	case SK_SAVED:
		return contains_u32(s->saved, s->nsaved, in->uid);
	case SK_FLAGS_ON:
		return (in->flags & nd->num) != 0;
	case SK_FLAGS_OFF:
		return (in->flags & nd->num) == 0;
	case SK_KW_ON:
		return (in->keywords & nd->num) != 0;
	case SK_KW_OFF:
		return (in->keywords & nd->num) == 0;
	case SK_LARGER:
		return in->size > nd->num;
	case SK_SMALLER:
		return in->size < nd->num;
	case SK_BEFORE:
	case SK_ON:
	case SK_SINCE:
		return day_cmp(nd->type, day_of(in->internaldate, 0),
		    nd->day);
	case SK_MODSEQ:
		return in->modseq >= nd->num;
	default:
		return 0;	/* SK_NONE */
	}
}

/*
 * Three-valued: 0, 1 or IMAP_SEARCH_NEEDMSG (unknown without the
 * message).  An AND tries its cheap children first, so the message is
 * consulted only when they all match.  Depth is capped by the parser;
 * the check here keeps the recursion bounded even so.
 */
static int
eval(const struct imap_search *s, size_t i, const struct smatch *m,
    int depth)
{
	const struct snode	*nd = &s->n[i];
	size_t			 k;
	int			 r, pass, unknown = 0;

	if (depth > IMAP_SEARCH_DEPTH_MAX + 1)
		return 0;
	switch (nd->type) {
	case SK_NOT:
		r = eval(s, i + 1, m, depth + 1);
		return r == IMAP_SEARCH_NEEDMSG ? r : !r;
	case SK_OR:
		k = s->n[i + 1].end;
		if ((r = eval(s, i + 1, m, depth + 1)) == 1)
			return 1;
		unknown = r == IMAP_SEARCH_NEEDMSG;
		if ((r = eval(s, k, m, depth + 1)) == 1)
			return 1;
		return unknown || r == IMAP_SEARCH_NEEDMSG ?
		    IMAP_SEARCH_NEEDMSG : 0;
	case SK_AND:
		for (pass = 0; pass < 2; pass++)
			for (k = i + 1; k < nd->end; k = s->n[k].end) {
				if (s->n[k].heavy != pass)
					continue;
				if ((r = eval(s, k, m, depth + 1)) == 0)
					return 0;
				if (r == IMAP_SEARCH_NEEDMSG)
					unknown = 1;
			}
		return unknown ? IMAP_SEARCH_NEEDMSG : 1;
	default:
		return match_leaf(nd, m, s);
	}
}

int
imap_search_match(const struct imap_search *s, uint32_t seq,
    const struct store_msginfo *info, const struct imap_msg *msg)
{
	struct smatch	m;

	if (s->nn == 0)
		return 0;
	m.seq = seq;
	m.info = info;
	m.msg = msg;
	return eval(s, 0, &m, 0);
}

/* ------------------------------------------------------------ results */

/* Only MIN and/or MAX asked for (SAVE aside). */
static int
minmax_only(const struct imap_search *s)
{
	return s->esearch && (s->ret & (R_MIN | R_MAX)) != 0 &&
	    (s->ret & (R_ALL | R_COUNT)) == 0;
}

uint64_t
imap_search_modseq(const struct imap_search *s, const uint64_t *modseqs,
    size_t n)
{
	uint64_t	best = 0;
	size_t		i;

	if (n == 0)
		return 0;
	if (minmax_only(s)) {
		if (s->ret & R_MIN)
			best = modseqs[0];
		if ((s->ret & R_MAX) && modseqs[n - 1] > best)
			best = modseqs[n - 1];
		return best;
	}
	for (i = 0; i < n; i++)
		if (modseqs[i] > best)
			best = modseqs[i];
	return best;
}

size_t
imap_search_save_pick(const struct imap_search *s, const uint32_t *matched,
    size_t n, uint32_t *out)
{
	size_t	k = 0;

	if (n == 0)
		return 0;
	if (!minmax_only(s)) {
		memcpy(out, matched, n * sizeof(*out));
		return n;
	}
	if (s->ret & R_MIN)
		out[k++] = matched[0];
	if ((s->ret & R_MAX) && (k == 0 || n > 1))
		out[k++] = matched[n - 1];
	return k;
}

static int
put_esearch(struct buf *b, const struct imap_search *s, const char *tag,
    int uid, const uint32_t *m, size_t n, uint64_t modseq)
{
	const char	*t;
	int		 rc;

	if ((rc = buf_printf(b, "* ESEARCH")) < 0)
		return rc;
	if (tag != NULL) {
		/* tag-string is a string; tags have no '"' or '\\' anyway */
		if ((rc = buf_printf(b, " (TAG \"")) < 0)
			return rc;
		for (t = tag; *t != '\0'; t++) {
			if ((*t == '"' || *t == '\\') &&
			    (rc = buf_putc(b, '\\')) < 0)
				return rc;
			if ((rc = buf_putc(b, (unsigned char)*t)) < 0)
				return rc;
		}
		if ((rc = buf_printf(b, "\")")) < 0)
			return rc;
	}
	if (uid && (rc = buf_printf(b, " UID")) < 0)
		return rc;
	if (n > 0 && (s->ret & R_MIN) &&
	    (rc = buf_printf(b, " MIN %u", m[0])) < 0)
		return rc;
	if (n > 0 && (s->ret & R_MAX) &&
	    (rc = buf_printf(b, " MAX %u", m[n - 1])) < 0)
		return rc;
	if ((s->ret & R_COUNT) &&
	    (rc = buf_printf(b, " COUNT %zu", n)) < 0)
		return rc;
	if (n > 0 && (s->ret & R_ALL) &&
	    ((rc = buf_printf(b, " ALL ")) < 0 ||
	    (rc = imap_fmt_seqset(b, m, n)) < 0))
		return rc;
	if (n > 0 && s->modseq &&
	    (rc = buf_printf(b, " MODSEQ %llu", (unsigned long long)modseq)) < 0)
		return rc;
	return buf_printf(b, "\r\n");
}

static int
put_search(struct buf *b, const struct imap_search *s, const uint32_t *m,
    size_t n, uint64_t modseq)
{
	size_t	i;
	int	rc;

	if ((rc = buf_printf(b, "* SEARCH")) < 0)
		return rc;
	for (i = 0; i < n; i++)
		if ((rc = buf_printf(b, " %u", m[i])) < 0)
			return rc;
	if (n > 0 && s->modseq &&
	    (rc = buf_printf(b, " (MODSEQ %llu)",
	    (unsigned long long)modseq)) < 0)
		return rc;
	return buf_printf(b, "\r\n");
}

int
imap_search_result(struct buf *b, const struct imap_search *s,
    const char *tag, int uid, const uint32_t *matched, size_t n,
    uint64_t modseq)
{
	size_t	start = b->len;
	int	rc;

	if (!s->esearch)
		rc = put_search(b, s, matched, n, modseq);
	else if ((s->ret & R_DATA) == 0)
		return 0;	/* RETURN (SAVE): no ESEARCH */
	else
		rc = put_esearch(b, s, tag, uid, matched, n, modseq);
	if (rc < 0) {
		b->len = start;
		if (b->data != NULL)
			b->data[start] = '\0';
	}
	return rc;
}
