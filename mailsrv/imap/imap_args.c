/*
 * imap_args.c -- typed access to the argument tree of a parsed IMAP
 * command: the RFC 9051 forms (atom, astring, string, nstring, number,
 * flag, mailbox, list-mailbox), a small signature checker for the top
 * level of a command, and a one-line rendering for tests.
 *
 * Runs in: the mailsrv process, event loop thread; pure functions.
 * Failure policy: a mismatch is ERR_PROTO with one line of context in
 * err_set() (no peer data in it); a bad signature is ERR_INVAL (a bug).
 * SECURITY: the tree walk in imap_cmd_dump() is iterative (parent
 * pointers), so nesting depth costs no stack.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/err.h"
#include "mailsrv/imap/imap_parser.h"

/* atom-specials other than SP, CTL and 8-bit (RFC 9051 9). */
static const char atom_specials[] = "(){%*\"\\]";

int
imap_atom_char(int c)
{
	return c > 0x20 && c < 0x7f && strchr(atom_specials, c) == NULL;
}

int
imap_astring_char(int c)
{
	return c == ']' || imap_atom_char(c);
}

/* list-char = ATOM-CHAR / list-wildcards / resp-specials */
static int
list_char(int c)
{
	return c == '%' || c == '*' || imap_astring_char(c);
}

static int
all_chars(const char *s, size_t len, int (*ok)(int))
{
	size_t	i;

	for (i = 0; i < len; i++)
		if (!ok((unsigned char)s[i]))
			return 0;
	return len > 0;
}

static int
is_atomish(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_NUMBER ||
	    a->type == IMAP_ARG_NIL;
}

static int
is_string(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_QUOTED || a->type == IMAP_ARG_LITERAL;
}

static int
mismatch(const char *what)
{
	err_set(ERR_PROTO, "expected %s", what);
	return ERR_PROTO;
}

int
imap_arg_atom(const char **out, const struct imap_arg *a)
{
	if (!is_atomish(a) || !all_chars(a->str, a->len, imap_atom_char))
		return mismatch("atom");
	*out = a->str;
	return 0;
}

int
imap_arg_astring(const char **out, size_t *len_out, const struct imap_arg *a)
{
	if (!is_string(a) && !(is_atomish(a) &&
	    all_chars(a->str, a->len, imap_astring_char)))
		return mismatch("astring");
	*out = a->str;
	*len_out = a->len;
	return 0;
}

int
imap_arg_string(const char **out, size_t *len_out, const struct imap_arg *a)
{
	if (!is_string(a))
		return mismatch("string");
	*out = a->str;
	*len_out = a->len;
	return 0;
}

int
imap_arg_nstring(const char **out, size_t *len_out,
    const struct imap_arg *a)
{
	if (a->type == IMAP_ARG_NIL) {
		*out = NULL;
		*len_out = 0;
		return 0;
	}
	if (!is_string(a))
		return mismatch("nstring");
	*out = a->str;
	*len_out = a->len;
	return 0;
}

int
imap_arg_number(uint64_t *out, const struct imap_arg *a)
{
	if (a->type != IMAP_ARG_NUMBER)
		return mismatch("number");
	*out = a->num;
	return 0;
}

int
imap_arg_flag(const char **out, const struct imap_arg *a)
{
	if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NIL)
		return mismatch("flag");
	if (a->str[0] == '\\') {
		if (!all_chars(a->str + 1, a->len - 1, imap_atom_char))
			return mismatch("flag");
	} else if (!all_chars(a->str, a->len, imap_atom_char))
		return mismatch("flag");
	*out = a->str;
	return 0;
}

/* Well-formed UTF-8 (RFC 3629) without C0/C1 controls or DEL. */
static int
utf8_text(const char *str, size_t len)
{
	const unsigned char	*s = (const unsigned char *)str;
	size_t			 i = 0, need, k;
	unsigned		 lo, hi;

	while (i < len) {
		if (s[i] < 0x20 || s[i] == 0x7f)
			return 0;
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		lo = 0x80;
		hi = 0xbf;
		if (s[i] >= 0xc2 && s[i] <= 0xdf)
			need = 1;
		else if (s[i] >= 0xe0 && s[i] <= 0xef) {
			need = 2;
			lo = s[i] == 0xe0 ? 0xa0 : lo;
			hi = s[i] == 0xed ? 0x9f : hi;
		} else if (s[i] >= 0xf0 && s[i] <= 0xf4) {
			need = 3;
			lo = s[i] == 0xf0 ? 0x90 : lo;
			hi = s[i] == 0xf4 ? 0x8f : hi;
		} else
			return 0;
		/* C1 controls: U+0080..U+009F are C2 80..C2 9F */
		if (s[i] == 0xc2 && i + 1 < len && s[i + 1] < 0xa0)
			return 0;
		for (k = 1; k <= need; k++) {
			if (i + k >= len || s[i + k] < lo || s[i + k] > hi)
				return 0;
			lo = 0x80;
			hi = 0xbf;
		}
		i += need + 1;
	}
	return 1;
}

static int
mailbox_common(const char **out, size_t *len_out, const struct imap_arg *a,
    int (*atom_ok)(int), const char *what)
{
	if (!is_string(a) && !(is_atomish(a) &&
	    all_chars(a->str, a->len, atom_ok)))
		return mismatch(what);
	if (!utf8_text(a->str, a->len))
		return mismatch(what);
	if (a->len == 5 && strncasecmp(a->str, "INBOX", 5) == 0) {
		*out = "INBOX";
		*len_out = 5;
		return 0;
	}
	*out = a->str;
	*len_out = a->len;
	return 0;
}

int
imap_arg_mailbox(const char **out, size_t *len_out, const struct imap_arg *a)
{
	return mailbox_common(out, len_out, a, imap_astring_char, "mailbox");
}

int
imap_arg_list_mailbox(const char **out, size_t *len_out,
    const struct imap_arg *a)
{
	return mailbox_common(out, len_out, a, list_char, "list-mailbox");
}

/* ------------------------------------------------------------ signatures */

static int
sig_any(const struct imap_arg *a)
{
	return 1;
}

static int
sig_atom(const struct imap_arg *a)
{
	const char	*s;

	return imap_arg_atom(&s, a) == 0;
}

static int
sig_astring(const struct imap_arg *a)
{
	const char	*s;
	size_t		 len;

	return imap_arg_astring(&s, &len, a) == 0;
}

static int
sig_string(const struct imap_arg *a)
{
	return is_string(a);
}

static int
sig_nstring(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_NIL || is_string(a);
}

static int
sig_number(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_NUMBER;
}

static int
sig_nz_number(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_NUMBER && a->num > 0;
}

static int
sig_flag(const struct imap_arg *a)
{
	const char	*s;

	return imap_arg_flag(&s, a) == 0;
}

static int
sig_mailbox(const struct imap_arg *a)
{
	const char	*s;
	size_t		 len;

	return imap_arg_mailbox(&s, &len, a) == 0;
}

static int
sig_list_mailbox(const struct imap_arg *a)
{
	const char	*s;
	size_t		 len;

	return imap_arg_list_mailbox(&s, &len, a) == 0;
}

static int
sig_seqset(const struct imap_arg *a)
{
	return is_atomish(a) && imap_seqset_valid(a->str, a->len);
}

static int
sig_list(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_LIST;
}

static int
sig_section(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_SECTION;
}

static const struct {
	const char	*word;
	int		(*ok)(const struct imap_arg *);
} sig_words[] = {
	{ "any", sig_any },
	{ "atom", sig_atom },
	{ "astring", sig_astring },
	{ "string", sig_string },
	{ "nstring", sig_nstring },
	{ "number", sig_number },
	{ "nz-number", sig_nz_number },
	{ "flag", sig_flag },
	{ "mailbox", sig_mailbox },
	{ "list-mailbox", sig_list_mailbox },
	{ "seqset", sig_seqset },
	{ "list", sig_list },
	{ "section", sig_section },
};

/* The checker of signature word w (wlen bytes, without "?"), or -1. */
static int
sig_lookup(const char *w, size_t wlen)
{
	size_t	i;

	for (i = 0; i < sizeof(sig_words) / sizeof(sig_words[0]); i++)
		if (strlen(sig_words[i].word) == wlen &&
		    memcmp(sig_words[i].word, w, wlen) == 0)
			return (int)i;
	err_set(ERR_INVAL, "signature: unknown word");
	return -1;
}

int
imap_args_check(const struct imap_arg *args, size_t nargs, const char *sig)
{
	const char	*w = sig;
	size_t		 wlen, i = 0;
	int		 opt, seen_opt = 0, k;

	for (;;) {
		while (*w == ' ')
			w++;
		if (*w == '\0')
			break;
		wlen = strcspn(w, " ");
		if (wlen == 3 && memcmp(w, "...", 3) == 0) {
			if (w[3] == '\0')
				return 0;
			err_set(ERR_INVAL, "signature: words after ...");
			return ERR_INVAL;
		}
		opt = w[wlen - 1] == '?';
		if (seen_opt && !opt) {
			err_set(ERR_INVAL,
			    "signature: required word after optional");
			return ERR_INVAL;
		}
		seen_opt |= opt;
		if ((k = sig_lookup(w, wlen - opt)) < 0)
			return ERR_INVAL;
		if (i < nargs) {
			if (!sig_words[k].ok(&args[i])) {
				err_set(ERR_PROTO, "argument %zu: expected %s",
				    i + 1, sig_words[k].word);
				return ERR_PROTO;
			}
			i++;
		} else if (!opt) {
			err_set(ERR_PROTO, "missing argument %zu", i + 1);
			return ERR_PROTO;
		}
		w += wlen;
	}
	if (i < nargs) {
		err_set(ERR_PROTO, "too many arguments");
		return ERR_PROTO;
	}
	return 0;
}

/* ---------------------------------------------------------------- dump */

static void
dump_bytes(struct buf *b, const char *s, size_t len)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i;

	(void)buf_putc(b, '"');
	for (i = 0; i < len; i++) {
		if (u[i] == '"' || u[i] == '\\')
			(void)buf_printf(b, "\\%c", u[i]);
		else if (u[i] < 0x20 || u[i] >= 0x7f)
			(void)buf_printf(b, "\\x%02x", u[i]);
		else
			(void)buf_putc(b, u[i]);
	}
	(void)buf_putc(b, '"');
}

/* The opening part of a (before its children, if any). */
static void
dump_open(struct buf *b, const struct imap_arg *a)
{
	switch (a->type) {
	case IMAP_ARG_NUMBER:
		(void)buf_printf(b, "#%llu", (unsigned long long)a->num);
		break;
	case IMAP_ARG_NIL:
		(void)buf_printf(b, "NIL");
		break;
	case IMAP_ARG_QUOTED:
		dump_bytes(b, a->str, a->len);
		break;
	case IMAP_ARG_LITERAL:
	case IMAP_ARG_LITERAL8:
		(void)buf_printf(b, "%s{%zu}",
		    a->type == IMAP_ARG_LITERAL8 ? "~" : "", a->len);
		dump_bytes(b, a->str, a->len);
		break;
	case IMAP_ARG_LIST:
		(void)buf_putc(b, '(');
		break;
	case IMAP_ARG_SECTION:
		(void)buf_printf(b, "%s[", a->str);
		break;
	default:
		(void)buf_append(b, a->str, a->len);
		break;
	}
}

static void
dump_close(struct buf *b, const struct imap_arg *a)
{
	if (a->type == IMAP_ARG_LIST) {
		(void)buf_putc(b, ')');
	} else if (a->type == IMAP_ARG_SECTION) {
		(void)buf_putc(b, ']');
		if (a->partial)
			(void)buf_printf(b, "<%llu.%llu>",
			    (unsigned long long)a->part_off,
			    (unsigned long long)a->part_len);
	}
}

int
imap_cmd_dump(struct buf *b, const struct imap_cmd *cmd)
{
	const struct imap_arg	*a, *end;

	if (cmd->tag == NULL) {
		(void)buf_printf(b, "RAW ");
		dump_bytes(b, cmd->line, cmd->linelen);
		return 0;
	}
	(void)buf_printf(b, "%s %s", cmd->tag, cmd->name);
	a = cmd->nargs > 0 ? cmd->args : NULL;
	while (a != NULL) {
		if (a->parent == NULL || a != a->parent->list)
			(void)buf_putc(b, ' ');
		dump_open(b, a);
		if ((a->type == IMAP_ARG_LIST || a->type == IMAP_ARG_SECTION) &&
		    a->nlist > 0) {
			a = a->list;
			continue;
		}
		dump_close(b, a);
		/* next sibling, climbing out of finished lists */
		for (;;) {
			end = a->parent != NULL ?
			    a->parent->list + a->parent->nlist :
			    cmd->args + cmd->nargs;
			if (a + 1 < end) {
				a++;
				break;
			}
			if ((a = a->parent) == NULL)
				break;
			dump_close(b, a);
		}
	}
	return 0;
}
