/*
 * imap_fetch.c -- FETCH: the attribute list, its modifiers, and one
 * message's "* n FETCH (...)" response.
 *
 * Runs in: the mailsrv process; parsing on the loop thread (the
 * arguments belong to the command parser), rendering on workers (a
 * parsed struct imap_fetch is read-only and owns copies of everything
 * it needs).
 * Failure policy: syntax errors are ERR_PROTO with a constant err_set()
 * text (no peer data), for a BAD; rendering appends all of a response
 * or nothing.
 * SECURITY: the attribute list is bounded (IMAP_FETCH_ITEMS_MAX,
 * IMAP_FETCH_FIELDS_MAX, IMAP_SECT_DEPTH_MAX part numbers) so a
 * command cannot make each message cost more than a fixed number of
 * renderings; partial offsets are clamped to the data.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/xmalloc.h"
#include "mailsrv/imap/imap_fetch.h"
#include "mailsrv/imap/imap_format.h"
#include "mailsrv/imap/imap_msg.h"
#include "mailsrv/imap/imap_parser.h"

enum item_kind {
	I_FLAGS,
	I_UID,
	I_INTERNALDATE,
	I_RFC822_SIZE,
	I_ENVELOPE,
	I_BODY,
	I_BODYSTRUCTURE,
	I_RFC822,
	I_RFC822_HEADER,
	I_RFC822_TEXT,
	I_MODSEQ,
	I_SECTION,		/* BODY[...], BODY.PEEK[...] */
	I_BINARY,		/* BINARY[...], BINARY.PEEK[...] */
	I_BINARY_SIZE,
};

struct fitem {
	int			 kind;
	int			 peek;
	int			 partial;
	uint64_t		 off, len;
	struct imap_section	 sect;	/* fields are owned copies */
	char			*name;	/* "BODY[1.TEXT]", "RFC822", ... */
};

struct imap_fetch {
	struct fitem	*items;
	size_t		 n;
	unsigned	 pflags;
	unsigned	 have;		/* 1 << kind of the plain items */
	int		 changedsince_set;
	int		 vanished;
	uint64_t	 changedsince;
};

static const struct {
	const char	*name;
	int		 kind;
} plain_items[] = {
	{ "FLAGS", I_FLAGS },
	{ "UID", I_UID },
	{ "INTERNALDATE", I_INTERNALDATE },
	{ "RFC822.SIZE", I_RFC822_SIZE },
	{ "ENVELOPE", I_ENVELOPE },
	{ "BODY", I_BODY },
	{ "BODYSTRUCTURE", I_BODYSTRUCTURE },
	{ "RFC822", I_RFC822 },
	{ "RFC822.HEADER", I_RFC822_HEADER },
	{ "RFC822.TEXT", I_RFC822_TEXT },
	{ "MODSEQ", I_MODSEQ },
};

static int
bad(const char *why)
{
	err_set(ERR_PROTO, "%s", why);
	return ERR_PROTO;
}

static struct fitem *
add_item(struct imap_fetch *f, int kind)
{
	struct fitem	*it;

	if (f->n == IMAP_FETCH_ITEMS_MAX)
		return NULL;
	if (f->n % 8 == 0)
		f->items = xreallocarray(f->items, f->n + 8, sizeof(*it));
	it = &f->items[f->n++];
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	return it;
}

/* A plain item (a repeated one is kept once). */
static int
add_plain(struct imap_fetch *f, int kind)
{
	struct fitem	*it;

	if (f->have & (1u << kind))
		return 0;
	if ((it = add_item(f, kind)) == NULL)
		return bad("too many FETCH attributes");
	f->have |= 1u << kind;
	switch (kind) {
	case I_RFC822:
		it->name = xstrdup("RFC822");
		it->sect.kind = IMAP_SECT_ALL;
		break;
	case I_RFC822_HEADER:
		it->name = xstrdup("RFC822.HEADER");
		it->sect.kind = IMAP_SECT_HEADER;
		it->peek = 1;
		break;
	case I_RFC822_TEXT:
		it->name = xstrdup("RFC822.TEXT");
		it->sect.kind = IMAP_SECT_TEXT;
		break;
	}
	return 0;
}

/* nz-number (no leading zero, 32 bits) at s[*i]. */
static int
part_number(const char *s, size_t len, size_t *i, uint32_t *out)
{
	uint64_t	v = 0;
	size_t		start = *i;

	if (*i >= len || s[*i] < '1' || s[*i] > '9')
		return -1;
	while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
		v = v * 10 + (uint64_t)(s[*i] - '0');
		if (v > UINT32_MAX || *i - start >= 10)
			return -1;
		(*i)++;
	}
	*out = (uint32_t)v;
	return 0;
}

/* section-part ["." section-text], or section-text alone. */
static int
parse_spec(struct fitem *it, const char *s, size_t len, int binary)
{
	static const struct {
		const char	*name;
		int		 kind;
	} texts[] = {
		{ "HEADER", IMAP_SECT_HEADER },
		{ "HEADER.FIELDS", IMAP_SECT_HEADER_FIELDS },
		{ "HEADER.FIELDS.NOT", IMAP_SECT_HEADER_FIELDS_NOT },
		{ "TEXT", IMAP_SECT_TEXT },
		{ "MIME", IMAP_SECT_MIME },
	};
	size_t	i = 0, k;

	while (i < len && s[i] >= '0' && s[i] <= '9') {
		if (it->sect.npart == IMAP_SECT_DEPTH_MAX)
			return bad("too many section part numbers");
		if (part_number(s, len, &i, &it->sect.part[it->sect.npart++]))
			return bad("invalid section part number");
		if (i == len)
			return 0;
		if (s[i++] != '.' || i == len)
			return bad("invalid section");
	}
	if (binary)
		return bad("BINARY takes part numbers only");
	for (k = 0; k < sizeof(texts) / sizeof(texts[0]); k++)
		if (strlen(texts[k].name) == len - i &&
		    strncasecmp(s + i, texts[k].name, len - i) == 0)
			break;
	if (k == sizeof(texts) / sizeof(texts[0]))
		return bad("invalid section");
	it->sect.kind = (enum imap_sect_kind)texts[k].kind;
	if (it->sect.kind == IMAP_SECT_MIME && it->sect.npart == 0)
		return bad("MIME needs a part number");
	return 0;
}

/* The header-list of HEADER.FIELDS[.NOT]: copies of the names. */
static int
parse_fields(struct fitem *it, const struct imap_arg *list)
{
	const char	*s;
	size_t		 len, i;

	if (list == NULL || list->type != IMAP_ARG_LIST || list->nlist == 0)
		return bad("HEADER.FIELDS needs a list of header names");
	if (list->nlist > IMAP_FETCH_FIELDS_MAX)
		return bad("too many header names");
	it->sect.fields = xcalloc(list->nlist, sizeof(*it->sect.fields));
	for (i = 0; i < list->nlist; i++) {
		if (imap_arg_astring(&s, &len, &list->list[i]) < 0)
			return bad("invalid header name");
		it->sect.fields[it->sect.nfields++] = xstrndup(s, len);
	}
	return 0;
}

/* The response name: PREFIX[spec], the header names as astrings. */
static int
section_name(struct fitem *it, const char *prefix)
{
	static const char *const kw[] = {
		"", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT",
		"MIME",
	};
	struct buf	b;
	size_t		i;
	int		rc = 0;

	buf_init(&b, SIZE_MAX / 2);
	(void)buf_printf(&b, "%s[", prefix);
	for (i = 0; i < it->sect.npart; i++)
		(void)buf_printf(&b, "%s%u", i ? "." : "", it->sect.part[i]);
	if (it->sect.kind != IMAP_SECT_ALL)
		(void)buf_printf(&b, "%s%s", it->sect.npart ? "." : "",
		    kw[it->sect.kind]);
	for (i = 0; i < it->sect.nfields && rc == 0; i++) {
		(void)buf_append(&b, i == 0 ? " (" : " ", i == 0 ? 2 : 1);
		rc = imap_fmt_astring(&b, it->sect.fields[i],
		    strlen(it->sect.fields[i]), 0);
	}
	if (it->sect.nfields > 0)
		(void)buf_putc(&b, ')');
	(void)buf_putc(&b, ']');
	it->name = buf_steal(&b, NULL);
	return rc;
}

static int
parse_section(struct imap_fetch *f, const struct imap_arg *a)
{
	static const struct {
		const char	*prefix;
		const char	*reply;
		int		 kind;
		int		 peek;
	} prefixes[] = {
		{ "BODY", "BODY", I_SECTION, 0 },
		{ "BODY.PEEK", "BODY", I_SECTION, 1 },
		{ "BINARY", "BINARY", I_BINARY, 0 },
		{ "BINARY.PEEK", "BINARY", I_BINARY, 1 },
		{ "BINARY.SIZE", "BINARY.SIZE", I_BINARY_SIZE, 1 },
	};
	const struct imap_arg	*spec;
	struct fitem		*it;
	size_t			 k;
	int			 rc, fields;

	for (k = 0; k < sizeof(prefixes) / sizeof(prefixes[0]); k++)
		if (strcasecmp(a->str, prefixes[k].prefix) == 0)
			break;
	if (k == sizeof(prefixes) / sizeof(prefixes[0]))
		return bad("unknown FETCH attribute");
	if ((it = add_item(f, prefixes[k].kind)) == NULL)
		return bad("too many FETCH attributes");
	it->peek = prefixes[k].peek;
	it->sect.kind = IMAP_SECT_ALL;
	if (a->nlist > 0) {
		spec = &a->list[0];
		if (spec->type != IMAP_ARG_ATOM && spec->type != IMAP_ARG_NUMBER)
			return bad("invalid section");
		if ((rc = parse_spec(it, spec->str, spec->len,
		    it->kind != I_SECTION)) < 0)
			return rc;
	}
	fields = it->sect.kind == IMAP_SECT_HEADER_FIELDS ||
	    it->sect.kind == IMAP_SECT_HEADER_FIELDS_NOT;
	if (fields && (rc = parse_fields(it,
	    a->nlist >= 2 ? &a->list[1] : NULL)) < 0)
		return rc;
	if (a->nlist > (fields ? 2u : 1u))
		return bad("invalid section");
	if (a->partial) {
		if (it->kind == I_BINARY_SIZE)
			return bad("BINARY.SIZE takes no partial");
		it->partial = 1;
		it->off = a->part_off;
		it->len = a->part_len;
	}
	return section_name(it, prefixes[k].reply);
}

static int
parse_att(struct imap_fetch *f, const struct imap_arg *a, int top)
{
	static const int all[] = {
		I_FLAGS, I_INTERNALDATE, I_RFC822_SIZE, I_ENVELOPE, I_BODY,
	};
	size_t	i, n = 0;
	int	rc;

	if (a->type == IMAP_ARG_SECTION)
		return parse_section(f, a);
	if (a->type != IMAP_ARG_ATOM)
		return bad("invalid FETCH attribute");
	if (strcasecmp(a->str, "FAST") == 0)
		n = 3;
	else if (strcasecmp(a->str, "ALL") == 0)
		n = 4;
	else if (strcasecmp(a->str, "FULL") == 0)
		n = 5;
	if (n > 0) {
		if (!top)
			return bad("FETCH macro inside a list");
		for (i = 0; i < n; i++)
			if ((rc = add_plain(f, all[i])) < 0)
				return rc;
		return 0;
	}
	for (i = 0; i < sizeof(plain_items) / sizeof(plain_items[0]); i++)
		if (strcasecmp(a->str, plain_items[i].name) == 0)
			break;
	if (i == sizeof(plain_items) / sizeof(plain_items[0]))
		return bad("unknown FETCH attribute");
	if (plain_items[i].kind == I_MODSEQ &&
	    (f->pflags & IMAP_FETCH_P_CONDSTORE) == 0)
		return bad("MODSEQ needs CONDSTORE");
	return add_plain(f, plain_items[i].kind);
}

/* "(" CHANGEDSINCE mod-sequence-valzer [VANISHED] ")" (RFC 7162). */
static int
parse_mods(struct imap_fetch *f, const struct imap_arg *mods)
{
	const struct imap_arg	*a;
	size_t			 i;

	if (mods->type != IMAP_ARG_LIST || mods->nlist == 0)
		return bad("invalid FETCH modifiers");
	for (i = 0; i < mods->nlist; i++) {
		a = &mods->list[i];
		if (a->type == IMAP_ARG_ATOM &&
		    strcasecmp(a->str, "CHANGEDSINCE") == 0) {
			if (f->changedsince_set)
				return bad("CHANGEDSINCE given twice");
			if (i + 1 == mods->nlist ||
			    mods->list[i + 1].type != IMAP_ARG_NUMBER ||
			    mods->list[i + 1].num > INT64_MAX)
				return bad("invalid CHANGEDSINCE value");
			f->changedsince = mods->list[++i].num;
			f->changedsince_set = 1;
		} else if (a->type == IMAP_ARG_ATOM &&
		    strcasecmp(a->str, "VANISHED") == 0) {
			if (f->vanished)
				return bad("VANISHED given twice");
			f->vanished = 1;
		} else
			return bad("unknown FETCH modifier");
	}
	if (f->vanished && !f->changedsince_set)
		return bad("VANISHED needs CHANGEDSINCE");
	if ((f->pflags & IMAP_FETCH_P_CONDSTORE) == 0)
		return bad("CHANGEDSINCE needs CONDSTORE");
	return 0;
}

void
imap_fetch_free(struct imap_fetch **fp)
{
	struct imap_fetch	*f = *fp;
	size_t			 i, j;

	if (f == NULL)
		return;
	for (i = 0; i < f->n; i++) {
		for (j = 0; j < f->items[i].sect.nfields; j++)
			free((char *)f->items[i].sect.fields[j]);
		free(f->items[i].sect.fields);
		free(f->items[i].name);
	}
	free(f->items);
	free(f);
	*fp = NULL;
}

int
imap_fetch_parse(struct imap_fetch **out, const struct imap_arg *att,
    const struct imap_arg *mods, unsigned pflags)
{
	struct imap_fetch	*f;
	size_t			 i;
	int			 rc = 0;

	*out = NULL;
	f = xcalloc(1, sizeof(*f));
	f->pflags = pflags;
	if (att->type == IMAP_ARG_LIST) {
		if (att->nlist == 0)
			rc = bad("empty FETCH attribute list");
		for (i = 0; i < att->nlist && rc == 0; i++)
			rc = parse_att(f, &att->list[i], 0);
	} else
		rc = parse_att(f, att, 1);
	if (rc == 0 && mods != NULL)
		rc = parse_mods(f, mods);
	if (rc < 0) {
		imap_fetch_free(&f);
		return rc;
	}
	*out = f;
	return 0;
}

int
imap_fetch_needs_msg(const struct imap_fetch *f)
{
	size_t	i;

	for (i = 0; i < f->n; i++)
		switch (f->items[i].kind) {
		case I_FLAGS:
		case I_UID:
		case I_INTERNALDATE:
		case I_RFC822_SIZE:
		case I_MODSEQ:
			break;
		default:
			return 1;
		}
	return 0;
}

int
imap_fetch_sets_seen(const struct imap_fetch *f)
{
	size_t	i;

	for (i = 0; i < f->n; i++)
		switch (f->items[i].kind) {
		case I_SECTION:
		case I_BINARY:
		case I_RFC822:
		case I_RFC822_TEXT:
			if (!f->items[i].peek)
				return 1;
			break;
		}
	return 0;
}

int
imap_fetch_wants_modseq(const struct imap_fetch *f)
{
	return (f->have & (1u << I_MODSEQ)) != 0 || f->changedsince_set;
}

uint64_t
imap_fetch_changedsince(const struct imap_fetch *f)
{
	return f->changedsince;
}

int
imap_fetch_vanished(const struct imap_fetch *f)
{
	return f->vanished;
}

/* name[<o>] SP data, for sections, RFC822* and BINARY. */
static int
render_data(struct buf *out, const struct fitem *it,
    const struct imap_msg *msg)
{
	struct buf		 data;
	const unsigned char	*s;
	size_t			 n;
	int			 rc;

	buf_init(&data, out->max);
	if (it->kind == I_BINARY || it->kind == I_BINARY_SIZE)
		rc = imap_msg_binary(&data, msg, &it->sect);
	else
		rc = imap_msg_section(&data, msg, &it->sect);
	if (rc < 0)
		goto done;
	if (it->kind == I_BINARY_SIZE) {
		rc = buf_printf(out, "%s %zu", it->name, data.len);
		goto done;
	}
	s = data.data;
	n = data.len;
	if (it->partial) {
		if (it->off >= n)
			n = 0;
		else {
			s += it->off;
			n -= (size_t)it->off;
			if (it->len < n)
				n = (size_t)it->len;
		}
		rc = buf_printf(out, "%s<%llu> ", it->name,
		    (unsigned long long)it->off);
	} else
		rc = buf_printf(out, "%s ", it->name);
	if (rc < 0)
		goto done;
	if (n == 0)
		rc = buf_append(out, "\"\"", 2);
	else
		rc = imap_fmt_literal(out, s, n, it->kind == I_BINARY);
done:
	buf_free(&data);
	return rc;
}

static int
render_item(struct buf *out, const struct imap_fetch *f,
    const struct fitem *it, const struct store_msginfo *info,
    char *const *kw, size_t nkw, const struct imap_msg *msg)
{
	int	utf8 = (f->pflags & IMAP_FETCH_P_UTF8) != 0, rc;

	switch (it->kind) {
	case I_FLAGS:
		if ((rc = buf_append(out, "FLAGS ", 6)) < 0)
			return rc;
		return imap_fmt_flags(out, info->flags, info->keywords, kw,
		    nkw);
	case I_UID:
		return buf_printf(out, "UID %u", info->uid);
	case I_INTERNALDATE:
		if ((rc = buf_append(out, "INTERNALDATE ", 13)) < 0)
			return rc;
		return imap_fmt_datetime(out, info->internaldate);
	case I_RFC822_SIZE:
		return buf_printf(out, "RFC822.SIZE %llu",
		    (unsigned long long)info->size);
	case I_MODSEQ:
		return buf_printf(out, "MODSEQ (%llu)",
		    (unsigned long long)info->modseq);
	case I_ENVELOPE:
		if ((rc = buf_append(out, "ENVELOPE ", 9)) < 0)
			return rc;
		return imap_msg_envelope(out, msg, utf8);
	case I_BODY:
	case I_BODYSTRUCTURE:
		if ((rc = buf_printf(out, "%s ", it->kind == I_BODY ? "BODY" :
		    "BODYSTRUCTURE")) < 0)
			return rc;
		return imap_msg_bodystructure(out, msg,
		    it->kind == I_BODYSTRUCTURE, utf8);
	default:
		return render_data(out, it, msg);
	}
}

int
imap_fetch_render(struct buf *out, const struct imap_fetch *f, uint32_t seq,
    const struct store_msginfo *info, char *const *kw, size_t nkw,
    const struct imap_msg *msg, unsigned rflags)
{
	static const struct fitem	 uid = { .kind = I_UID };
	static const struct fitem	 flags = { .kind = I_FLAGS };
	static const struct fitem	 modseq = { .kind = I_MODSEQ };
	const struct fitem		*list[IMAP_FETCH_ITEMS_MAX + 3];
	size_t				 start = out->len, i, n = 0;
	int				 rc;

	if (msg == NULL && imap_fetch_needs_msg(f)) {
		err_set(ERR_INVAL, "FETCH needs the message");
		return ERR_INVAL;
	}
	if ((f->pflags & IMAP_FETCH_P_UID) && (f->have & (1u << I_UID)) == 0)
		list[n++] = &uid;
	for (i = 0; i < f->n; i++)
		list[n++] = &f->items[i];
	if ((rflags & IMAP_FETCH_R_FLAGS) && (f->have & (1u << I_FLAGS)) == 0)
		list[n++] = &flags;
	if (((rflags & IMAP_FETCH_R_MODSEQ) || f->changedsince_set) &&
	    (f->have & (1u << I_MODSEQ)) == 0)
		list[n++] = &modseq;
	if ((rc = buf_printf(out, "* %u FETCH (", seq)) < 0)
		goto fail;
	for (i = 0; i < n; i++)
		if ((i > 0 && (rc = buf_putc(out, ' ')) < 0) ||
		    (rc = render_item(out, f, list[i], info, kw, nkw,
		    msg)) < 0)
			goto fail;
	if ((rc = buf_append(out, ")\r\n", 3)) == 0)
		return 0;
fail:
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return rc;
}
