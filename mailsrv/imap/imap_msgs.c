/*
 * imap_msgs.c -- the selected mailbox: the session's view of it and the
 * untagged updates that keep the client's view right (EXISTS, EXPUNGE or
 * VANISHED, FETCH FLAGS), and the commands on its messages: FETCH (in
 * slices), STORE (with UNCHANGEDSINCE), SEARCH (ESEARCH, SEARCHRES),
 * COPY and MOVE (COPYUID), EXPUNGE, UID EXPUNGE, CLOSE, UNSELECT.
 *
 * Runs in: worker threads (jobs), except the loop steps named so.
 * Failure policy: a message expunged by another session meanwhile is
 * left out of FETCH results; sequence numbers out of range are BAD.
 * SECURITY: message plaintext exists only in the job's memory, wiped
 * after rendering; every FETCH slice that reads message content is
 * audited ("mail.read", its UIDs) before it is read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "mailsrv/imap/imap.h"
#include "mailsrv/imap/imap_fetch.h"
#include "mailsrv/imap/imap_format.h"
#include "mailsrv/imap/imap_msg.h"
#include "mailsrv/imap/imap_search.h"

/* ------------------------------------------------------------ helpers */

uint32_t
imap_view_seq(const struct imap_view *v, uint32_t uid)
{
	size_t	lo = 0, hi = v->n;

	while (lo < hi) {
		size_t	mid = lo + (hi - lo) / 2;

		if (v->uids[mid] == uid)
			return (uint32_t)mid + 1;
		if (v->uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

static void
view_kw_free(struct imap_view *v)
{
	store_keywords_free(&v->kw, v->nkw);
	v->nkw = 0;
}

void
imap_view_free(struct imap_view **vp)
{
	struct imap_view	*v = *vp;

	if (v == NULL)
		return;
	free(v->name);
	free(v->uids);
	free(v->sizes);
	free(v->gone);
	view_kw_free(v);
	free(v);
	*vp = NULL;
}

/* Remove sequence number seq (1-based) from the view. */
static void
view_remove(struct imap_view *v, uint32_t seq)
{
	size_t	i = seq - 1;

	memmove(&v->uids[i], &v->uids[i + 1], (v->n - i - 1) *
	    sizeof(*v->uids));
	memmove(&v->sizes[i], &v->sizes[i + 1], (v->n - i - 1) *
	    sizeof(*v->sizes));
	v->n--;
}

static void
view_add(struct imap_view *v, uint32_t uid, uint64_t size)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 64;
		v->uids = xreallocarray(v->uids, v->cap, sizeof(*v->uids));
		v->sizes = xreallocarray(v->sizes, v->cap, sizeof(*v->sizes));
	}
	v->uids[v->n] = uid;
	v->sizes[v->n] = size;
	v->n++;
	if (uid >= v->uidnext)
		v->uidnext = uid + 1;
}

/*
 * Announce the removal of these UIDs (ascending) that the view holds:
 * VANISHED with QRESYNC, else one EXPUNGE each (highest first, so no
 * renumbering is needed between them).
 */
static void
view_expunged(struct imap_session *s, const uint32_t *uids, size_t n)
{
	struct imap_view	*v = s->view;
	struct buf		 b;
	uint32_t		*in = xcalloc(n ? n : 1, sizeof(*in));
	size_t			 k = 0, i;

	for (i = 0; i < n; i++)
		if (imap_view_seq(v, uids[i]) != 0)
			in[k++] = uids[i];
	if (k > 0 && (s->enabled & IMAP_E_QRESYNC)) {
		buf_init(&b, SIZE_MAX - 1);
		(void)imap_fmt_seqset(&b, in, k);
		imap_out(s, "* VANISHED %s", (char *)b.data);
		buf_free(&b);
		for (i = 0; i < k; i++)
			view_remove(v, imap_view_seq(v, in[i]));
	} else {
		for (i = k; i-- > 0;) {
			uint32_t	seq = imap_view_seq(v, in[i]);

			imap_out(s, "* %u EXPUNGE", seq);
			view_remove(v, seq);
		}
	}
	free(in);
}

/* Re-read the mailbox's keywords when a message uses an unknown one. */
static void
view_refresh_kw(struct imap_session *s, const struct store_msginfo *m,
    size_t n)
{
	struct imap_view	*v = s->view;
	struct buf		 b;
	size_t			 i, old = v->nkw;

	for (i = 0; i < n; i++)
		if (m[i].keywords & ~imap_kw_all(v->nkw))
			break;
	if (i == n)
		return;
	view_kw_free(v);
	if (store_mailbox_keywords(s->ms->store, s->user, v->name, &v->kw,
	    &v->nkw) < 0 || v->nkw == old)
		return;
	buf_init(&b, SIZE_MAX - 1);
	(void)buf_printf(&b, "* FLAGS ");
	(void)imap_fmt_flags(&b, STORE_F_ALL, imap_kw_all(v->nkw), v->kw, v->nkw);
	imap_out(s, "%s", (char *)b.data);
	if (!v->readonly) {
		buf_reset(&b);
		(void)imap_fmt_flags(&b, STORE_F_ALL, imap_kw_all(v->nkw), v->kw,
		    v->nkw);
		b.data[--b.len] = '\0';		/* the ")" */
		imap_out(s, "* OK [PERMANENTFLAGS %s \\*)] Flags permitted",
		    (char *)b.data);
	}
	buf_free(&b);
}

/* "* seq FETCH (FLAGS (...) [UID u] [MODSEQ (m)])" */
static void
out_flags(struct imap_session *s, uint32_t seq, const struct store_msginfo *m,
    int with_uid)
{
	struct imap_view	*v = s->view;
	struct buf		 b;

	buf_init(&b, SIZE_MAX - 1);
	(void)buf_printf(&b, "* %u FETCH (", seq);
	if (with_uid)
		(void)buf_printf(&b, "UID %u ", m->uid);
	(void)buf_printf(&b, "FLAGS ");
	(void)imap_fmt_flags(&b, m->flags, m->keywords, v->kw, v->nkw);
	if (s->enabled & IMAP_E_CONDSTORE)
		(void)buf_printf(&b, " MODSEQ (%llu)",
		    (unsigned long long)m->modseq);
	(void)buf_putc(&b, ')');
	imap_out(s, "%s", (char *)b.data);
	buf_free(&b);
}

void
imap_view_sync(struct imap_session *s, int allow_expunge)
{
	struct imap_view	*v = s->view;
	struct store_changes	 ch;
	uint64_t		 gen = store_generation(s->ms->store);
	size_t			 i, nnew = 0;

	if (v == NULL || (gen == v->gen && (v->ngone == 0 || !allow_expunge)))
		return;
	memset(&ch, 0, sizeof(ch));
	if (store_changes(s->ms->store, s->user, v->name, v->modseq,
	    &ch) < 0) {
		log_info("%016llx imap sync of %s: %s",
		    (unsigned long long)s->id, v->name, err_msg());
		v->gen = gen;
		return;
	}
	v->gen = gen;
	for (i = 0; i < ch.nvanished; i++) {
		if (imap_view_seq(v, ch.vanished[i]) == 0)
			continue;
		v->gone = xreallocarray(v->gone, v->ngone + 1,
		    sizeof(*v->gone));
		v->gone[v->ngone++] = ch.vanished[i];
	}
	if (allow_expunge && v->ngone > 0) {
		/* ascending for view_expunged */
		for (i = 1; i < v->ngone; i++) {
			uint32_t	u = v->gone[i];
			size_t		j = i;

			while (j > 0 && v->gone[j - 1] > u) {
				v->gone[j] = v->gone[j - 1];
				j--;
			}
			v->gone[j] = u;
		}
		view_expunged(s, v->gone, v->ngone);
		free(v->gone);
		v->gone = NULL;
		v->ngone = 0;
	}
	view_refresh_kw(s, ch.changed, ch.nchanged);
	for (i = 0; i < ch.nchanged; i++) {
		if (ch.changed[i].uid >= v->uidnext &&
		    imap_view_seq(v, ch.changed[i].uid) == 0) {
			view_add(v, ch.changed[i].uid, ch.changed[i].size);
			nnew++;
		}
	}
	if (nnew > 0)
		imap_out(s, "* %zu EXISTS", v->n);
	for (i = 0; i < ch.nchanged; i++) {
		uint32_t	seq = imap_view_seq(v, ch.changed[i].uid);

		if (seq == 0 || (size_t)seq > v->n - nnew)
			continue;
		out_flags(s, seq, &ch.changed[i],
		    (s->enabled & IMAP_E_QRESYNC) || s->uid);
	}
	if (ch.status.highestmodseq > v->modseq)
		v->modseq = ch.status.highestmodseq;
	store_changes_free(&ch);
}

/* Our own change got MODSEQ m: if nothing else happened, it is seen. */
static void
view_own_change(struct imap_view *v, uint64_t m)
{
	if (m == v->modseq + 1)
		v->modseq = m;
}

int
imap_set_uids(struct imap_session *s, const struct imap_arg *a, int uid,
    uint32_t **out, size_t *nout)
{
	struct imap_view	*v = s->view;
	struct imap_seqset	 set;
	uint32_t		*u = NULL, star;
	size_t			 n = 0, i, r;

	*out = NULL;
	*nout = 0;
	if (a->type == IMAP_ARG_ATOM && strcmp(a->str, "$") == 0) {
		u = xcalloc(s->nsaved ? s->nsaved : 1, sizeof(*u));
		for (i = 0; i < s->nsaved; i++)
			if (imap_view_seq(v, s->saved[i]) != 0)
				u[n++] = s->saved[i];
		*out = u;
		*nout = n;
		return 0;
	}
	star = uid ? (v->n ? v->uids[v->n - 1] : 0) : (uint32_t)v->n;
	if (imap_arg_seqset(&set, a, star) < 0) {
		err_set(ERR_PROTO, "invalid %s set", uid ? "UID" :
		    "sequence");
		return ERR_PROTO;
	}
	if (!uid) {
		for (r = 0; r < set.n; r++)
			if (set.r[r].hi > v->n) {
				imap_seqset_free(&set);
				err_set(ERR_PROTO, "message sequence number "
				    "out of range (the mailbox has %zu)", v->n);
				return ERR_PROTO;
			}
		n = (size_t)imap_seqset_count(&set);
		u = xcalloc(n ? n : 1, sizeof(*u));
		n = 0;
		for (r = 0; r < set.n; r++)
			for (i = set.r[r].lo; i <= set.r[r].hi; i++)
				u[n++] = v->uids[i - 1];
	} else {
		u = xcalloc(v->n ? v->n : 1, sizeof(*u));
		for (i = 0, r = 0; i < v->n && r < set.n; ) {
			if (v->uids[i] < set.r[r].lo)
				i++;
			else if (v->uids[i] > set.r[r].hi)
				r++;
			else
				u[n++] = v->uids[i++];
		}
	}
	imap_seqset_free(&set);
	*out = u;
	*nout = n;
	return 0;
}

int
imap_flags_arg(const struct imap_arg *a, size_t n, uint32_t *flags,
    const char ***kw, size_t *nkw)
{
	static const struct {
		const char	*name;
		uint32_t	 bit;
	} sys[] = {
		{ "\\Seen", STORE_F_SEEN }, { "\\Answered", STORE_F_ANSWERED },
		{ "\\Flagged", STORE_F_FLAGGED },
		{ "\\Deleted", STORE_F_DELETED }, { "\\Draft", STORE_F_DRAFT },
	};
	const char	*f;
	size_t		 i, k;

	*flags = 0;
	*kw = NULL;
	*nkw = 0;
	if (n > 0)
		*kw = xcalloc(n, sizeof(**kw));
	for (i = 0; i < n; i++) {
		if (imap_arg_flag(&f, &a[i]) < 0)
			goto bad;
		if (f[0] == '\\') {
			for (k = 0; k < sizeof(sys) / sizeof(sys[0]); k++)
				if (strcasecmp(f, sys[k].name) == 0)
					break;
			if (k == sizeof(sys) / sizeof(sys[0])) {
				if (strcasecmp(f, "\\Recent") == 0)
					continue;
				err_set(ERR_PROTO, "unknown system flag");
				goto bad;
			}
			*flags |= sys[k].bit;
		} else {
			if (strlen(f) > STORE_KEYWORD_MAX) {
				err_set(ERR_PROTO, "keyword too long");
				goto bad;
			}
			(*kw)[(*nkw)++] = f;
		}
	}
	return 0;
bad:
	free(*kw);
	*kw = NULL;
	*nkw = 0;
	return ERR_PROTO;
}

/* ------------------------------------------------------------ NOOP */

void
imap_cmd_noop(struct imap_session *s)
{
	imap_tagged(s, "OK", "%s completed", s->cname);
}

void
imap_cmd_idle_sync(struct imap_session *s)
{
	imap_view_sync(s, 1);
}

/* ------------------------------------------------------------ FETCH */

struct fetch_state {
	struct imap_fetch	*f;
	uint32_t		*uids;
	size_t			 n;
	size_t			 next;	/* first UID not sent yet */
	size_t			 hi;	/* end of the current slice */
	unsigned		 rflags;
	int			 vanished_done;
	struct imap_seqset	 vset;	/* the UID set as asked (VANISHED) */
};

static void
fetch_state_free(void *arg)
{
	struct fetch_state	*fs = arg;

	if (fs == NULL)
		return;
	imap_fetch_free(&fs->f);
	imap_seqset_free(&fs->vset);
	free(fs->uids);
	free(fs);
}

static void	fetch_next(struct imap_session *);

static void	fetch_vanished(struct imap_session *, struct fetch_state *);

static void
fetch_end(struct imap_session *s)
{
	fetch_vanished(s, s->cstate);
	imap_tagged(s, "OK", "%s completed", s->cname);
}

/* VANISHED (EARLIER) for UID FETCH ... (CHANGEDSINCE m VANISHED). */
static void
fetch_vanished(struct imap_session *s, struct fetch_state *fs)
{
	struct imap_view	*v = s->view;
	uint32_t		*gone = NULL;
	size_t			 ngone = 0, i, k = 0;
	struct buf		 b;

	if (fs->vanished_done || !imap_fetch_vanished(fs->f))
		return;
	fs->vanished_done = 1;
	if (store_vanished(s->ms->store, s->user, v->name,
	    imap_fetch_changedsince(fs->f), &gone, &ngone) < 0 || ngone == 0) {
		free(gone);
		return;
	}
	/* the UIDs of the set as asked (RFC 7162 3.2.6) */
	for (i = 0; i < ngone; i++)
		if (imap_seqset_contains(&fs->vset, gone[i]))
			gone[k++] = gone[i];
	if (k > 0) {
		buf_init(&b, SIZE_MAX - 1);
		(void)imap_fmt_seqset(&b, gone, k);
		imap_out(s, "* VANISHED (EARLIER) %s", (char *)b.data);
		buf_free(&b);
	}
	free(gone);
}

static void
fetch_slice(struct imap_session *s)
{
	struct fetch_state	*fs = s->cstate;
	struct imap_view	*v = s->view;
	struct store_msginfo	*m = NULL;
	size_t			 nm = 0, i, j, k, nseen = 0;
	uint32_t		*seen = NULL;
	uint8_t			*setseen = NULL;
	int			 rc;

	fetch_vanished(s, fs);
	if ((rc = store_messages(s->ms->store, s->user, v->name,
	    fs->uids[fs->next], fs->uids[fs->hi - 1],
	    imap_fetch_changedsince(fs->f), &m, &nm)) < 0) {
		imap_store_error(s, rc, "FETCH");
		return;
	}
	/* keep the slice's UIDs only */
	for (i = 0, j = fs->next, k = 0; i < nm; i++) {
		while (j < fs->hi && fs->uids[j] < m[i].uid)
			j++;
		if (j < fs->hi && fs->uids[j] == m[i].uid)
			m[k++] = m[i];
	}
	nm = k;
	view_refresh_kw(s, m, nm);
	setseen = xcalloc(nm ? nm : 1, 1);
	if (imap_fetch_sets_seen(fs->f) && !v->readonly) {
		struct store_flagop	op;
		struct store_flagres	res;

		seen = xcalloc(nm ? nm : 1, sizeof(*seen));
		for (i = 0; i < nm; i++)
			if (!(m[i].flags & STORE_F_SEEN))
				seen[nseen++] = m[i].uid;
		memset(&op, 0, sizeof(op));
		op.mode = STORE_FLAGS_ADD;
		op.flags = STORE_F_SEEN;
		memset(&res, 0, sizeof(res));
		if (nseen > 0 && store_set_flags(s->ms->store, s->user,
		    v->name, seen, nseen, &op, &res) == 0) {
			for (i = 0, j = 0; i < res.nmsgs; i++) {
				while (j < nm && m[j].uid < res.msgs[i].uid)
					j++;
				if (j < nm && m[j].uid == res.msgs[i].uid) {
					m[j] = res.msgs[i];
					setseen[j] = 1;
				}
			}
			view_own_change(v, res.modseq);
		}
		store_flagres_free(&res);
		free(seen);
	}
	for (i = 0; i < nm; i++) {
		unsigned char		*data = NULL;
		size_t			 len = 0;
		struct imap_msg		*msg = NULL;
		uint32_t		 seq = imap_view_seq(v, m[i].uid);
		unsigned		 rf = fs->rflags;

		if (seq == 0)
			continue;
		if (imap_fetch_needs_msg(fs->f)) {
			rc = store_read(s->ms->store, s->user, v->name,
			    m[i].uid, s->dek, &data, &len);
			if (rc == ERR_NOTFOUND)
				continue;	/* expunged meanwhile */
			if (rc < 0) {
				log_warnx("%016llx imap read uid %u: %s",
				    (unsigned long long)s->id, m[i].uid,
				    err_msg());
				imap_tagged(s, "NO", "[SERVERBUG] A message "
				    "cannot be read");
				break;
			}
			if (imap_msg_parse(&msg, data, len) < 0) {
				xfreezero(data, len);
				imap_tagged(s, "NO", "[SERVERBUG] A message "
				    "cannot be parsed");
				break;
			}
		}
		if (setseen[i])
			rf |= IMAP_FETCH_R_FLAGS;
		if (imap_fetch_render(&s->out, fs->f, seq, &m[i], v->kw,
		    v->nkw, msg, rf) < 0) {
			imap_msg_free(&msg);
			if (data != NULL)
				xfreezero(data, len);
			imap_tagged(s, "NO", "[UNKNOWN-CTE] %s", err_msg());
			break;
		}
		imap_msg_free(&msg);
		if (data != NULL)
			xfreezero(data, len);
	}
	free(setseen);
	store_msginfo_free(&m);
	fs->next = fs->hi;
	if (s->tstatus != NULL)
		return;
	if (fs->next >= fs->n)
		fetch_end(s);		/* the last slice: no round trip more */
	else
		s->cont = fetch_next;
}

static void
fetch_audited(struct imap_session *s, int rc)
{
	if (rc < 0) {
		imap_tagged(s, "NO", "[UNAVAILABLE] The read cannot be "
		    "recorded; try again later");
		return;
	}
	imap_submit(s, fetch_slice);
}

/* Loop: the next slice, audited when it reads message content. */
static void
fetch_next(struct imap_session *s)
{
	struct fetch_state	*fs = s->cstate;
	struct imap_view	*v = s->view;
	uint64_t		 bytes = 0;
	size_t			 hi;
	struct buf		 b;

	if (fs->next >= fs->n) {
		imap_submit(s, fetch_end);
		return;
	}
	for (hi = fs->next; hi < fs->n && hi - fs->next <
	    IMAP_FETCH_SLICE_MSGS && (hi == fs->next ||
	    bytes < IMAP_FETCH_SLICE_BYTES); hi++) {
		uint32_t	seq = imap_view_seq(v, fs->uids[hi]);

		if (seq != 0)
			bytes += v->sizes[seq - 1];
	}
	fs->hi = hi;
	if (!imap_fetch_needs_msg(fs->f)) {
		imap_submit(s, fetch_slice);
		return;
	}
	buf_init(&b, SIZE_MAX - 1);
	(void)imap_fmt_seqset(&b, fs->uids + fs->next, fs->hi - fs->next);
	imap_audit(s, "mail.read", v->name, AUDIT_OK, json_pack("{s:s}",
	    "uids", (char *)b.data), fetch_audited);
	buf_free(&b);
}

void
imap_cmd_fetch(struct imap_session *s)
{
	struct fetch_state	*fs;
	unsigned		 pf = 0;

	fs = xcalloc(1, sizeof(*fs));
	if (s->enabled & IMAP_E_REV2)
		pf |= IMAP_FETCH_P_REV2;
	if (imap_utf8(s))
		pf |= IMAP_FETCH_P_UTF8;
	if (s->uid)
		pf |= IMAP_FETCH_P_UID;
	pf |= IMAP_FETCH_P_CONDSTORE;	/* MODSEQ enables it */
	if (imap_set_uids(s, &s->args[0], s->uid, &fs->uids, &fs->n) < 0 ||
	    imap_fetch_parse(&fs->f, &s->args[1], s->nargs == 3 ?
	    &s->args[2] : NULL, pf) < 0) {
		fetch_state_free(fs);
		imap_bad_args(s);
		return;
	}
	if (imap_fetch_vanished(fs->f) && (!s->uid ||
	    !(s->enabled & IMAP_E_QRESYNC))) {
		fetch_state_free(fs);
		imap_tagged(s, "BAD", "VANISHED needs UID FETCH and QRESYNC");
		return;
	}
	if (imap_fetch_vanished(fs->f) && (s->args[0].type != IMAP_ARG_ATOM ||
	    strcmp(s->args[0].str, "$") != 0) &&
	    imap_arg_seqset(&fs->vset, &s->args[0], UINT32_MAX) < 0) {
		fetch_state_free(fs);
		imap_bad_args(s);
		return;
	}
	if (imap_fetch_wants_modseq(fs->f))
		s->enabled |= IMAP_E_CONDSTORE;
	if (s->enabled & IMAP_E_CONDSTORE)
		fs->rflags |= IMAP_FETCH_R_MODSEQ;
	s->cstate = fs;
	s->cstate_free = fetch_state_free;
	fetch_next(s);
}

/* ------------------------------------------------------------ STORE */

void
imap_cmd_store(struct imap_session *s)
{
	const struct imap_arg	*a = s->args;
	struct imap_view	*v = s->view;
	struct store_flagop	 op;
	struct store_flagres	 res;
	const char		*item, **kw = NULL;
	uint32_t		*uids = NULL, *mod = NULL;
	size_t			 n = 0, i = 1, nkw = 0, k;
	int			 silent = 0, rc;
	struct buf		 b;

	memset(&op, 0, sizeof(op));
	memset(&res, 0, sizeof(res));
	if (imap_set_uids(s, &a[0], s->uid, &uids, &n) < 0)
		goto bad;
	if (a[i].type == IMAP_ARG_LIST) {	/* (UNCHANGEDSINCE m) */
		if (a[i].nlist != 2 || a[i].list[0].type != IMAP_ARG_ATOM ||
		    strcasecmp(a[i].list[0].str, "UNCHANGEDSINCE") != 0 ||
		    imap_arg_number(&op.unchangedsince, &a[i].list[1]) < 0) {
			err_set(ERR_PROTO, "invalid STORE modifier");
			goto bad;
		}
		op.conditional = 1;
		s->enabled |= IMAP_E_CONDSTORE;
		i++;
	}
	if (i >= s->nargs || a[i].type != IMAP_ARG_ATOM) {
		err_set(ERR_PROTO, "STORE needs FLAGS, +FLAGS or -FLAGS");
		goto bad;
	}
	item = a[i].str;
	op.mode = STORE_FLAGS_REPLACE;
	if (item[0] == '+' || item[0] == '-') {
		op.mode = item[0] == '+' ? STORE_FLAGS_ADD :
		    STORE_FLAGS_REMOVE;
		item++;
	}
	if (strcasecmp(item, "FLAGS.SILENT") == 0)
		silent = 1;
	else if (strcasecmp(item, "FLAGS") != 0) {
		err_set(ERR_PROTO, "STORE needs FLAGS, +FLAGS or -FLAGS");
		goto bad;
	}
	i++;
	if (i + 1 == s->nargs && a[i].type == IMAP_ARG_LIST)
		rc = imap_flags_arg(a[i].list, a[i].nlist, &op.flags, &kw,
		    &nkw);
	else
		rc = imap_flags_arg(a + i, s->nargs - i, &op.flags, &kw,
		    &nkw);
	if (rc < 0)
		goto bad;
	if (v->readonly) {
		imap_tagged(s, "NO", "[READ-ONLY] The mailbox is read-only");
		goto done;
	}
	op.keywords = kw;
	op.nkeywords = nkw;
	if (n > 0 && (rc = store_set_flags(s->ms->store, s->user, v->name,
	    uids, n, &op, &res)) < 0) {
		if (rc == ERR_TOOBIG)
			imap_tagged(s, "NO", "[LIMIT] Too many keywords in "
			    "this mailbox");
		else
			imap_store_error(s, rc, "STORE");
		goto done;
	}
	view_refresh_kw(s, res.msgs, res.nmsgs);
	for (k = 0; k < res.nmsgs; k++) {
		uint32_t	seq = imap_view_seq(v, res.msgs[k].uid);
		size_t		j;

		if (seq == 0)
			continue;
		for (j = 0; j < res.nmodified; j++)
			if (res.modified[j] == res.msgs[k].uid)
				break;
		if (j < res.nmodified)
			continue;
		if (!silent)
			out_flags(s, seq, &res.msgs[k], s->uid);
	}
	view_own_change(v, res.modseq);
	if (res.nmodified > 0) {
		mod = xcalloc(res.nmodified, sizeof(*mod));
		for (k = 0; k < res.nmodified; k++)
			mod[k] = s->uid ? res.modified[k] :
			    imap_view_seq(v, res.modified[k]);
		buf_init(&b, SIZE_MAX - 1);
		(void)imap_fmt_seqset(&b, mod, res.nmodified);
		if (b.len + 64 < sizeof(s->ttext))
			imap_tagged(s, "OK", "[MODIFIED %s] Conditional STORE "
			    "failed", (char *)b.data);
		else
			imap_tagged(s, "NO", "Too many conditional STORE "
			    "failures to list");
		buf_free(&b);
		free(mod);
	} else
		imap_tagged(s, "OK", "%s completed", s->cname);
	goto done;
bad:
	imap_bad_args(s);
done:
	store_flagres_free(&res);
	free(kw);
	free(uids);
}

/* ------------------------------------------------------------ SEARCH */

void
imap_cmd_search(struct imap_session *s)
{
	struct imap_view	*v = s->view;
	struct imap_search_env	 env;
	struct imap_search	*q = NULL;
	struct store_msginfo	*m = NULL;
	uint32_t		*hit = NULL;
	uint64_t		*mods = NULL;
	size_t			 nm = 0, nhit = 0, i;
	struct buf		 b;
	int			 rc;

	view_kw_free(v);
	(void)store_mailbox_keywords(s->ms->store, s->user, v->name, &v->kw,
	    &v->nkw);
	memset(&env, 0, sizeof(env));
	env.nmsgs = (uint32_t)v->n;
	env.uids = v->uids;
	env.kw = v->kw;
	env.nkw = v->nkw;
	env.saved = s->saved;
	env.nsaved = s->nsaved;
	if (imap_utf8(s))
		env.flags |= IMAP_SEARCH_E_UTF8;
	if (s->enabled & IMAP_E_REV2)
		env.flags |= IMAP_SEARCH_E_REV2;
	env.flags |= IMAP_SEARCH_E_CONDSTORE;
	if ((rc = imap_search_parse(&q, s->args, s->nargs, &env)) < 0) {
		if (rc == IMAP_SEARCH_ERR_BADCHARSET)
			imap_tagged(s, "NO", "[BADCHARSET (UTF-8 US-ASCII)] "
			    "Unsupported charset");
		else if (rc == ERR_TOOBIG)
			imap_tagged(s, "NO", "[LIMIT] %s", err_msg());
		else
			imap_bad_args(s);
		return;
	}
	if (imap_search_uses_modseq(q))
		s->enabled |= IMAP_E_CONDSTORE;
	if ((rc = store_messages(s->ms->store, s->user, v->name, 1,
	    UINT32_MAX, 0, &m, &nm)) < 0) {
		imap_search_free(&q);
		imap_store_error(s, rc, "SEARCH");
		return;
	}
	hit = xcalloc(nm ? nm : 1, sizeof(*hit));
	mods = xcalloc(nm ? nm : 1, sizeof(*mods));
	for (i = 0; i < nm; i++) {
		uint32_t	 seq = imap_view_seq(v, m[i].uid);
		unsigned char	*data = NULL;
		size_t		 len = 0;
		struct imap_msg	*msg = NULL;

		if (seq == 0)
			continue;
		/* cheap keys first: decrypt only when the content decides */
		rc = imap_search_match(q, seq, &m[i], NULL);
		if (rc == IMAP_SEARCH_NEEDMSG) {
			if (store_read(s->ms->store, s->user, v->name,
			    m[i].uid, s->dek, &data, &len) < 0)
				continue;
			if (imap_msg_parse(&msg, data, len) < 0) {
				xfreezero(data, len);
				continue;
			}
			rc = imap_search_match(q, seq, &m[i], msg);
			imap_msg_free(&msg);
			xfreezero(data, len);
		}
		if (rc == 1) {
			mods[nhit] = m[i].modseq;
			hit[nhit++] = s->uid ? m[i].uid : seq;
		}
	}
	buf_init(&b, SIZE_MAX - 1);
	(void)imap_search_result(&b, q, s->tag, s->uid, hit, nhit,
	    imap_search_modseq(q, mods, nhit));
	if (b.len >= 2 && b.data[b.len - 2] == '\r')
		b.len -= 2;
	if (b.len > 0)
		imap_out(s, "%.*s", (int)b.len, (char *)b.data);
	buf_free(&b);
	if (imap_search_saves(q)) {
		free(s->saved);
		s->saved = xcalloc(nhit ? nhit : 1, sizeof(*s->saved));
		s->nsaved = imap_search_save_pick(q, hit, nhit, s->saved);
		if (!s->uid)
			for (i = 0; i < s->nsaved; i++)
				s->saved[i] = v->uids[s->saved[i] - 1];
	}
	free(mods);
	free(hit);
	store_msginfo_free(&m);
	imap_search_free(&q);
	imap_tagged(s, "OK", "%s completed", s->cname);
}

/* ------------------------------------------------------------ COPY/MOVE */

void
imap_cmd_copy(struct imap_session *s)
{
	struct imap_view	*v = s->view;
	struct store_copyuid	 cu;
	struct buf		 b1, b2;
	char			*dest = NULL;
	uint32_t		*uids = NULL;
	size_t			 n = 0;
	int			 move = strstr(s->cname, "MOVE") != NULL, rc;

	memset(&cu, 0, sizeof(cu));
	if (imap_set_uids(s, &s->args[0], s->uid, &uids, &n) < 0 ||
	    imap_mailbox_arg(s, &s->args[1], &dest) < 0) {
		imap_bad_args(s);
		goto done;
	}
	if (move && v->readonly) {
		imap_tagged(s, "NO", "[READ-ONLY] The mailbox is read-only");
		goto done;
	}
	if (n == 0) {
		imap_tagged(s, "OK", "No messages to %s", move ? "move" :
		    "copy");
		goto done;
	}
	rc = move ? store_move(s->ms->store, s->user, v->name, dest, uids, n,
	    &cu) : store_copy(s->ms->store, s->user, v->name, dest, uids, n,
	    &cu);
	if (rc == ERR_NOTFOUND) {
		imap_tagged(s, "NO", "[TRYCREATE] No such mailbox");
		goto done;
	}
	if (rc < 0) {
		imap_store_error(s, rc, s->cname);
		goto done;
	}
	buf_init(&b1, SIZE_MAX - 1);
	buf_init(&b2, SIZE_MAX - 1);
	(void)imap_fmt_seqset(&b1, cu.src, cu.n);
	(void)imap_fmt_seqset(&b2, cu.dst, cu.n);
	if (move) {
		if (cu.n > 0)
			imap_out(s, "* OK [COPYUID %u %s %s] Moved",
			    cu.uidvalidity, (char *)b1.data, (char *)b2.data);
		view_expunged(s, cu.src, cu.n);
		imap_tagged(s, "OK", "%s completed", s->cname);
	} else if (cu.n > 0 && b1.len + b2.len + 64 < sizeof(s->ttext))
		imap_tagged(s, "OK", "[COPYUID %u %s %s] %s completed",
		    cu.uidvalidity, (char *)b1.data, (char *)b2.data,
		    s->cname);
	else
		imap_tagged(s, "OK", "%s completed", s->cname);
	buf_free(&b1);
	buf_free(&b2);
done:
	store_copyuid_free(&cu);
	free(uids);
	free(dest);
}

/* ------------------------------------------------------------ EXPUNGE */

static void
expunge_work(struct imap_session *s)
{
	struct imap_view	*v = s->view;
	uint32_t		*only = s->cstate, *out = NULL;
	size_t			 nonly = 0, nout = 0;
	int			 rc;

	if (only != NULL)
		nonly = (size_t)only[0];
	rc = store_expunge(s->ms->store, s->user, v->name,
	    only ? only + 1 : NULL, nonly, &out, &nout);
	if (rc < 0) {
		imap_store_error(s, rc, s->cname);
		return;
	}
	/* the next sync sees these UIDs vanished, no longer in the view */
	if (nout > 0)
		view_expunged(s, out, nout);
	free(out);
	imap_tagged(s, "OK", "%s completed", s->cname);
}

static void
expunge_audited(struct imap_session *s, int rc)
{
	if (rc < 0) {
		imap_tagged(s, "NO", "[UNAVAILABLE] The expunge cannot be "
		    "recorded; try again later");
		return;
	}
	imap_submit(s, expunge_work);
}

/* Loop: record the expunge (fail-closed), then run it. */
void
imap_cmd_expunge(struct imap_session *s)
{
	struct imap_view	*v = s->view;
	uint32_t		*uids = NULL, *only;
	size_t			 n = 0;
	struct buf		 b;
	json_t			*details;

	if (v->readonly) {
		imap_tagged(s, "NO", "[READ-ONLY] The mailbox is read-only");
		return;
	}
	if (s->uid) {
		if (imap_set_uids(s, &s->args[0], 1, &uids, &n) < 0) {
			imap_bad_args(s);
			return;
		}
		if (n == 0) {
			free(uids);
			imap_tagged(s, "OK", "UID EXPUNGE completed");
			return;
		}
		only = xcalloc(n + 1, sizeof(*only));
		only[0] = (uint32_t)n;
		memcpy(only + 1, uids, n * sizeof(*uids));
		buf_init(&b, SIZE_MAX - 1);
		(void)imap_fmt_seqset(&b, uids, n);
		details = json_pack("{s:s}", "uids", (char *)b.data);
		buf_free(&b);
		free(uids);
		s->cstate = only;
		s->cstate_free = free;
	} else
		details = json_pack("{s:s}", "uids", "all \\Deleted");
	imap_audit(s, "mail.expunge", v->name, AUDIT_OK, details,
	    expunge_audited);
}

/* ------------------------------------------------------------ CLOSE */

static void
close_work(struct imap_session *s)
{
	uint32_t	*out = NULL;
	size_t		 nout = 0;

	if (strcmp(s->cname, "CLOSE") == 0 && !s->view->readonly)
		(void)store_expunge(s->ms->store, s->user, s->view->name, NULL,
		    0, &out, &nout);	/* silently (RFC 3501 6.4.2) */
	free(out);
	imap_view_free(&s->view);
	free(s->saved);
	s->saved = NULL;
	s->nsaved = 0;
	s->state = IMAP_S_AUTH;
	imap_tagged(s, "OK", "%s completed", s->cname);
}

static void
close_audited(struct imap_session *s, int rc)
{
	if (rc < 0) {
		imap_tagged(s, "NO", "[UNAVAILABLE] The expunge cannot be "
		    "recorded; try again later");
		return;
	}
	imap_submit(s, close_work);
}

/* Loop: CLOSE expunges, so it is recorded first; UNSELECT is not. */
void
imap_cmd_close(struct imap_session *s)
{
	if (strcmp(s->cname, "CLOSE") == 0 && !s->view->readonly)
		imap_audit(s, "mail.expunge", s->view->name, AUDIT_OK,
		    json_pack("{s:s}", "uids", "all \\Deleted (CLOSE)"),
		    close_audited);
	else
		imap_submit(s, close_work);
}
