/*
 * conf.c -- the node configuration parser (the schema is in nodeconf.c).
 *
 * The file is read whole (at most CONF_FILE_MAX bytes) and fed byte by
 * byte to a small state machine; the parser keeps its whole state in
 * struct conf_parser, so it could equally be fed in pieces.  Grammar:
 *
 *	line    = blank* ( comment | section | setting )? blank* comment?
 *	comment = ( "#" | ";" ) any*
 *	section = "[" name "]"
 *	setting = name blank* "=" blank* ( quoted | bare )?
 *	name    = [a-z0-9_]+
 *	quoted  = '"' ( [^"\\] | '\"' | '\\' )* '"'
 *	bare    = anything; a "#" or ";" that follows a blank starts a
 *		  comment; trailing blanks are trimmed; a value cannot start
 *		  with "#", ";" or '"' (quote it)
 *
 * Lines are at most CONF_LINE_MAX bytes, the newline not counted.  Every
 * control character but tab and newline is refused (NUL, CR, DEL too).
 * A section may appear several times (its settings merge); a key may be
 * set only once.  The first error stops the parse.
 *
 * Paths: [node] datadir is joined to the directory holding the file,
 * every other CONF_PATH / CONF_SECRET knob to datadir, once the whole
 * file is parsed.  conf_check_files() wants every CONF_PATH knob but
 * datadir to name a readable regular file (tls.ca, tls.cert) and every
 * CONF_SECRET knob to name a private regular file.
 *
 * Runs in: every daemon and the CLI, once at start-up (and for -n).
 * Failure policy: bad input is ERR_INVAL with err_msg() "file:line: msg";
 * the struct is then freed and zeroed.  A default that does not parse or
 * an unsorted knob table is a programmer bug: fatalx().
 * SECURITY: the file is untrusted text: every token is bounded by the
 * line limit and every byte is checked; values echoed in messages are
 * escaped.  Secret knobs hold paths, never key material.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define CONF_NAME_MAX	64	/* longest section or key name */
#define CONF_HOST_MAX	253	/* longest host in an address */
#define CONF_SHOW_MAX	64	/* value excerpt in messages */

enum conf_state {
	ST_BOL,		/* blanks before anything */
	ST_COMMENT,	/* to the end of the line */
	ST_SECT,	/* inside [ ] */
	ST_SECT_END,	/* after ] */
	ST_KEY,		/* reading a key */
	ST_KEY_END,	/* blanks between key and = */
	ST_VAL_START,	/* blanks after = */
	ST_VAL,		/* bare value */
	ST_QUOTE,	/* inside "" */
	ST_QUOTE_ESC,	/* after a backslash inside "" */
	ST_QUOTE_END,	/* after the closing quote */
};

struct conf_parser {
	struct amanat_conf		*cf;
	const char			*path;	/* for messages */
	int				 line;
	size_t				 col;	/* bytes on this line */
	enum conf_state			 st;
	const struct conf_section	*sec;	/* current section */
	const struct conf_knob		*knob;	/* key of this line */
	int				 have_val;
	int				 blank;	/* last value byte a blank */
	char				 name[CONF_NAME_MAX + 1];
	size_t				 nlen;
	char				 val[CONF_LINE_MAX + 1];
	size_t				 vlen;
	size_t				 vtrim;	/* vlen without blanks */
};

static int	conf_err(struct conf_parser *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------ helpers */

static int
conf_errf(const char *path, int line, int code, const char *what,
    const char *msg)
{
	if (line > 0)
		err_set(code, "%s:%d: %s%s%s", path, line, what,
		    what[0] != '\0' ? ": " : "", msg);
	else
		err_set(code, "%s: %s%s%s", path, what,
		    what[0] != '\0' ? ": " : "", msg);
	return code;
}

static int
conf_err(struct conf_parser *p, const char *fmt, ...)
{
	char	msg[ERR_MSG_MAX];
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return conf_errf(p->path, p->line, ERR_INVAL, "", msg);
}

/* Quote s for a message: escaped and cut to CONF_SHOW_MAX. */
static const char *
conf_show(char *dst, size_t dstlen, const char *s)
{
	return log_escape(dst, dstlen, s, strlen(s));
}

static char **
knob_str(void *base, const struct conf_knob *k)
{
	return (char **)((char *)base + k->offset);
}

static long long *
knob_ll(void *base, const struct conf_knob *k)
{
	return (long long *)((char *)base + k->offset);
}

static int *
knob_int(void *base, const struct conf_knob *k)
{
	return (int *)((char *)base + k->offset);
}

static int
knob_is_string(const struct conf_knob *k)
{
	return k->type == CONF_STR || k->type == CONF_ADDR ||
	    k->type == CONF_PATH || k->type == CONF_SECRET;
}

static int
knob_is_datadir(const struct conf_knob *k)
{
	return k->offset == offsetof(struct amanat_conf, node.datadir);
}

static int
knob_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct conf_knob *)elem)->name);
}

static const struct conf_section *
conf_find_section(const char *name)
{
	size_t	i;

	for (i = 0; i < conf_nsections; i++)
		if (strcmp(conf_sections[i].name, name) == 0)
			return &conf_sections[i];
	return NULL;
}

static void
conf_set_str(void *base, const struct conf_knob *k, const char *s)
{
	char	**dst = knob_str(base, k);

	free(*dst);
	*dst = xstrdup(s);
}

/* ------------------------------------------------------------ values */

/*
 * Digits then an optional suffix from units[] (names[i] multiplies by
 * units[i]); bare digits multiply by bare.  Overflow-checked.
 */
static int
parse_scaled(long long *out, const char *s, const char *const *names,
    const long long *units, long long bare)
{
	long long	 v = 0, mult = bare;
	const char	*p = s;
	size_t		 i;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (LLONG_MAX - (*p - '0')) / 10)
			return -1;
		v = v * 10 + (*p - '0');
	}
	if (*p != '\0') {
		for (i = 0; names[i] != NULL; i++)
			if (strcmp(p, names[i]) == 0)
				break;
		if (names[i] == NULL)
			return -1;
		mult = units[i];
	}
	if (v > LLONG_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

/* Print v with the largest unit it is a whole multiple of. */
static void
fmt_scaled(char *dst, size_t len, long long v, const char *const *names,
    const long long *units, size_t nunits)
{
	size_t	i;

	for (i = nunits; i-- > 0; ) {
		if (v != 0 && units[i] > 1 && v % units[i] == 0) {
			(void)snprintf(dst, len, "%lld%s", v / units[i],
			    names[i]);
			return;
		}
	}
	(void)snprintf(dst, len, "%lld%s", v, nunits > 0 && units[0] == 1 ?
	    names[0] : "");
}

static const char *const size_names[] = { "K", "M", "G", "k", "m", "g",
    NULL };
static const long long size_units[] = { 1LL << 10, 1LL << 20, 1LL << 30,
    1LL << 10, 1LL << 20, 1LL << 30 };
static const char *const dur_names[] = { "ms", "s", "m", "h", "d", NULL };
static const long long dur_units[] = { 1, 1000, 60000, 3600000, 86400000 };

static int
parse_number(void *base, const struct conf_knob *k, const char *s)
{
	char		 show[CONF_SHOW_MAX], lo[32], hi[32], got[32];
	long long	 v;
	int		 rc;

	if (k->type == CONF_INT) {
		rc = parse_ll(&v, s, LLONG_MIN, LLONG_MAX);
		(void)snprintf(lo, sizeof(lo), "%lld", k->min);
		(void)snprintf(hi, sizeof(hi), "%lld", k->max);
		(void)snprintf(got, sizeof(got), "%lld", rc == 0 ? v : 0);
	} else if (k->type == CONF_SIZE) {
		rc = parse_scaled(&v, s, size_names, size_units, 1);
		fmt_scaled(lo, sizeof(lo), k->min, size_names, size_units, 3);
		fmt_scaled(hi, sizeof(hi), k->max, size_names, size_units, 3);
		(void)snprintf(got, sizeof(got), "%s", s);
	} else {
		rc = parse_scaled(&v, s, dur_names, dur_units, 1000);
		fmt_scaled(lo, sizeof(lo), k->min, dur_names, dur_units, 5);
		fmt_scaled(hi, sizeof(hi), k->max, dur_names, dur_units, 5);
		(void)snprintf(got, sizeof(got), "%s", s);
	}
	if (rc != 0) {
		err_set(ERR_INVAL, "'%s' is not %s", conf_show(show,
		    sizeof(show), s), k->type == CONF_INT ? "an integer" :
		    k->type == CONF_SIZE ? "a size (integer with optional "
		    "K, M or G suffix)" : "a duration (integer with optional "
		    "ms, s, m, h or d suffix; bare is seconds)");
		return ERR_INVAL;
	}
	if (v < k->min || v > k->max) {
		err_set(ERR_INVAL, "%s is out of range [%s, %s]", got, lo, hi);
		return ERR_INVAL;
	}
	*knob_ll(base, k) = v;
	return 0;
}

static int
parse_bool(void *base, const struct conf_knob *k, const char *s)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	char	show[CONF_SHOW_MAX];
	size_t	i;

	for (i = 0; i < nitems(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*knob_int(base, k) = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*knob_int(base, k) = 0;
			return 0;
		}
	}
	err_set(ERR_INVAL, "'%s' is not a boolean (yes/no, true/false, "
	    "on/off, 1/0)", conf_show(show, sizeof(show), s));
	return ERR_INVAL;
}

static int
parse_enum(void *base, const struct conf_knob *k, const char *s)
{
	char	show[CONF_SHOW_MAX], list[256];
	size_t	i, off = 0;
	int	n;

	for (i = 0; k->enums[i] != NULL; i++) {
		if (strcmp(s, k->enums[i]) == 0) {
			*knob_int(base, k) = (int)i;
			return 0;
		}
	}
	list[0] = '\0';
	for (i = 0; k->enums[i] != NULL && off < sizeof(list); i++) {
		n = snprintf(list + off, sizeof(list) - off, "%s%s",
		    i > 0 ? ", " : "", k->enums[i]);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	err_set(ERR_INVAL, "'%s' is not one of: %s",
	    conf_show(show, sizeof(show), s), list);
	return ERR_INVAL;
}

/* "host:port" or "[v6]:port"; 0 if well formed. */
static int
addr_ok(const char *s)
{
	struct in6_addr	 a6;
	char		 host[CONF_HOST_MAX + 1];
	const char	*colon, *port;
	long long	 v;
	size_t		 hlen, i;

	if (s[0] == '[') {
		if ((colon = strstr(s, "]:")) == NULL)
			return -1;
		hlen = (size_t)(colon - s - 1);
		port = colon + 2;
		if (hlen == 0 || hlen > CONF_HOST_MAX)
			return -1;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return -1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return -1;
		hlen = (size_t)(colon - s);
		port = colon + 1;
		if (hlen == 0 || hlen > CONF_HOST_MAX)
			return -1;
		for (i = 0; i < hlen; i++)
			if (strchr("abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-",
			    s[i]) == NULL)
				return -1;
	}
	if (*port < '0' || *port > '9')
		return -1;
	return parse_ll(&v, port, 1, 65535) == 0 ? 0 : -1;
}

static int
parse_string(void *base, const struct conf_knob *k, const char *s)
{
	char	show[CONF_SHOW_MAX];
	size_t	len = strlen(s), max;

	switch (k->type) {
	case CONF_STR:
		max = k->max > 0 ? (size_t)k->max : CONF_LINE_MAX;
		if (len < (size_t)k->min || len > max) {
			err_set(ERR_INVAL, "length %zu is out of range "
			    "[%lld, %zu]", len, k->min, max);
			return ERR_INVAL;
		}
		break;
	case CONF_ADDR:
		if (addr_ok(s) != 0) {
			err_set(ERR_INVAL, "'%s' is not an address "
			    "(host:port or [v6addr]:port, port 1-65535)",
			    conf_show(show, sizeof(show), s));
			return ERR_INVAL;
		}
		break;
	default:
		if (len == 0 || len >= PATH_MAX) {
			err_set(ERR_INVAL, "expected a path of 1 to %d bytes",
			    PATH_MAX - 1);
			return ERR_INVAL;
		}
		break;
	}
	conf_set_str(base, k, s);
	return 0;
}

/*
 * base is the struct that k->offset points into (a struct amanat_conf
 * for the node schema).  On error the field is left unchanged and
 * err_msg() says what is wrong with the value, without file or knob.
 */
int
conf_parse_value(void *base, const struct conf_knob *k, const char *s)
{
	switch (k->type) {
	case CONF_INT:
	case CONF_SIZE:
	case CONF_DURATION:
		return parse_number(base, k, s);
	case CONF_BOOL:
		return parse_bool(base, k, s);
	case CONF_ENUM:
		return parse_enum(base, k, s);
	case CONF_STR:
	case CONF_ADDR:
	case CONF_PATH:
	case CONF_SECRET:
		return parse_string(base, k, s);
	}
	fatalx("conf: knob %s has unknown type %d", k->name, (int)k->type);
}

/* ------------------------------------------------------------ origins */

static void
conf_add_origin(struct amanat_conf *cf, const struct conf_section *sec,
    const struct conf_knob *k, int line)
{
	char	*key;

	xasprintf(&key, "%s.%s", sec->name, k->name);
	cf->origins = xreallocarray(cf->origins, cf->norigins + 1,
	    sizeof(*cf->origins));
	cf->origins[cf->norigins].key = key;
	cf->origins[cf->norigins].line = line;
	cf->norigins++;
}

int
conf_line(const struct amanat_conf *cf, const char *key)
{
	size_t	i;

	for (i = 0; i < cf->norigins; i++)
		if (strcmp(cf->origins[i].key, key) == 0)
			return cf->origins[i].line;
	return 0;
}

static int
knob_line(const struct amanat_conf *cf, const struct conf_section *sec,
    const struct conf_knob *k)
{
	char	key[2 * CONF_NAME_MAX + 2];

	(void)snprintf(key, sizeof(key), "%s.%s", sec->name, k->name);
	return conf_line(cf, key);
}

/* ------------------------------------------------------------ lexer */

static int
is_name_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static int
is_blank(int c)
{
	return c == ' ' || c == '\t';
}

static int
bad_char(struct conf_parser *p, int c, const char *where)
{
	if (c > 0x20 && c < 0x7f)
		return conf_err(p, "unexpected '%c' %s", c, where);
	return conf_err(p, "unexpected byte 0x%02x %s", c, where);
}

static int
name_putc(struct conf_parser *p, int c)
{
	if (p->nlen >= CONF_NAME_MAX)
		return conf_err(p, "%s longer than %d bytes",
		    p->st == ST_SECT ? "section name" : "key", CONF_NAME_MAX);
	p->name[p->nlen++] = (char)c;
	p->name[p->nlen] = '\0';
	return 0;
}

static void
val_putc(struct conf_parser *p, int c, int trim)
{
	/* The line limit keeps vlen <= CONF_LINE_MAX; this is a backstop. */
	if (p->vlen >= CONF_LINE_MAX)
		return;
	p->val[p->vlen++] = (char)c;
	if (!trim)
		p->vtrim = p->vlen;
}

static int
conf_enter_section(struct conf_parser *p)
{
	if (p->nlen == 0)
		return conf_err(p, "empty section name");
	if ((p->sec = conf_find_section(p->name)) == NULL)
		return conf_err(p, "unknown section [%s]", p->name);
	return 0;
}

/* The key of this line is complete (an = follows). */
static int
conf_enter_key(struct conf_parser *p)
{
	int	line;

	if (p->sec == NULL)
		return conf_err(p, "key '%s' outside any [section]", p->name);
	p->knob = bsearch(p->name, p->sec->knobs, p->sec->nknobs,
	    sizeof(*p->sec->knobs), knob_cmp);
	if (p->knob == NULL)
		return conf_err(p, "unknown key '%s' in [%s]", p->name,
		    p->sec->name);
	if ((line = knob_line(p->cf, p->sec, p->knob)) != 0)
		return conf_err(p, "duplicate key '%s' in [%s] (first set "
		    "on line %d)", p->name, p->sec->name, line);
	p->have_val = 1;
	p->vlen = p->vtrim = 0;
	return 0;
}

static int
conf_apply(struct conf_parser *p)
{
	char	msg[ERR_MSG_MAX];
	int	rc;

	p->val[p->vtrim] = '\0';
	if ((rc = conf_parse_value(p->cf, p->knob, p->val)) < 0) {
		(void)snprintf(msg, sizeof(msg), "%s", err_msg());
		return conf_err(p, "%s.%s: %s", p->sec->name, p->knob->name,
		    msg);
	}
	conf_add_origin(p->cf, p->sec, p->knob, p->line);
	return 0;
}

/* End of line (or of file): finish the line and reset for the next. */
static int
conf_eol(struct conf_parser *p)
{
	int	rc = 0;

	switch (p->st) {
	case ST_SECT:
		return conf_err(p, "unterminated section header");
	case ST_KEY:
	case ST_KEY_END:
		return conf_err(p, "expected '=' after key '%s'", p->name);
	case ST_QUOTE:
	case ST_QUOTE_ESC:
		return conf_err(p, "unterminated quoted value");
	default:
		break;
	}
	if (p->have_val)
		rc = conf_apply(p);
	p->st = ST_BOL;
	p->line++;
	p->col = 0;
	p->have_val = 0;
	p->blank = 0;
	p->nlen = p->vlen = p->vtrim = 0;
	return rc;
}

static int
conf_feed_head(struct conf_parser *p, int c)
{
	switch (p->st) {
	case ST_BOL:
		if (is_blank(c))
			return 0;
		if (c == '#' || c == ';')
			p->st = ST_COMMENT;
		else if (c == '[') {
			p->st = ST_SECT;
			p->nlen = 0;
		} else if (is_name_char(c)) {
			p->st = ST_KEY;
			p->nlen = 0;
			return name_putc(p, c);
		} else
			return bad_char(p, c, "at start of line");
		return 0;
	case ST_SECT:
		if (is_name_char(c))
			return name_putc(p, c);
		if (c != ']')
			return bad_char(p, c, "in section name");
		p->st = ST_SECT_END;
		return conf_enter_section(p);
	case ST_SECT_END:
		if (c == '#' || c == ';')
			p->st = ST_COMMENT;
		else if (!is_blank(c))
			return bad_char(p, c, "after section header");
		return 0;
	case ST_KEY:
		if (is_name_char(c))
			return name_putc(p, c);
		if (!is_blank(c) && c != '=')
			return bad_char(p, c, "in key (keys are [a-z0-9_])");
		p->st = c == '=' ? ST_VAL_START : ST_KEY_END;
		return c == '=' ? conf_enter_key(p) : 0;
	case ST_KEY_END:
		if (is_blank(c))
			return 0;
		if (c != '=')
			return conf_err(p, "expected '=' after key '%s'",
			    p->name);
		p->st = ST_VAL_START;
		return conf_enter_key(p);
	default:
		fatalx("conf: bad parser state %d", (int)p->st);
	}
}

static int
conf_feed_value(struct conf_parser *p, int c)
{
	switch (p->st) {
	case ST_VAL_START:
		if (is_blank(c))
			return 0;
		if (c == '#' || c == ';')
			p->st = ST_COMMENT;
		else if (c == '"')
			p->st = ST_QUOTE;
		else {
			p->st = ST_VAL;
			val_putc(p, c, 0);
		}
		return 0;
	case ST_VAL:
		if ((c == '#' || c == ';') && p->blank)
			p->st = ST_COMMENT;
		else
			val_putc(p, c, is_blank(c));
		p->blank = is_blank(c);
		return 0;
	case ST_QUOTE:
		if (c == '\\')
			p->st = ST_QUOTE_ESC;
		else if (c == '"')
			p->st = ST_QUOTE_END;
		else
			val_putc(p, c, 0);
		return 0;
	case ST_QUOTE_ESC:
		if (c != '"' && c != '\\')
			return bad_char(p, c, "after \\ (only \\\" and \\\\ "
			    "are escapes)");
		val_putc(p, c, 0);
		p->st = ST_QUOTE;
		return 0;
	case ST_QUOTE_END:
		if (c == '#' || c == ';')
			p->st = ST_COMMENT;
		else if (!is_blank(c))
			return bad_char(p, c, "after closing quote");
		return 0;
	default:
		fatalx("conf: bad parser state %d", (int)p->st);
	}
}

/* Feed one byte of the file. */
static int
conf_feed(struct conf_parser *p, unsigned char c)
{
	if (c == '\n')
		return conf_eol(p);
	if (++p->col > CONF_LINE_MAX)
		return conf_err(p, "line longer than %d bytes", CONF_LINE_MAX);
	if ((c < 0x20 && c != '\t') || c == 0x7f)
		return conf_err(p, "control character 0x%02x", c);
	switch (p->st) {
	case ST_COMMENT:
		return 0;
	case ST_BOL:
	case ST_SECT:
	case ST_SECT_END:
	case ST_KEY:
	case ST_KEY_END:
		return conf_feed_head(p, c);
	default:
		return conf_feed_value(p, c);
	}
}

/* ------------------------------------------------------------ loading */

static void
conf_defaults(struct amanat_conf *cf)
{
	const struct conf_section	*sec;
	const struct conf_knob		*k;
	size_t				 i, j;

	for (i = 0; i < conf_nsections; i++) {
		sec = &conf_sections[i];
		for (j = 0; j < sec->nknobs; j++) {
			k = &sec->knobs[j];
			if (j > 0 && strcmp(sec->knobs[j - 1].name,
			    k->name) >= 0)
				fatalx("conf: [%s] knobs not sorted at %s",
				    sec->name, k->name);
			if (k->def != NULL &&
			    conf_parse_value(cf, k, k->def) < 0)
				fatalx("conf: bad default for %s.%s: %s",
				    sec->name, k->name, err_msg());
		}
	}
}

/* Join rel to base unless it is absolute; "." and "./x" are tidied. */
static char *
conf_join(const char *base, const char *rel)
{
	size_t	blen = strlen(base);
	char	*p;

	while (rel[0] == '.' && rel[1] == '/')
		for (rel += 2; *rel == '/'; rel++)
			;
	if (rel[0] == '/')
		return xstrdup(rel);
	if (rel[0] == '\0' || strcmp(rel, ".") == 0)
		return xstrdup(base);
	if (blen > 0 && base[blen - 1] == '/') {
		xasprintf(&p, "%s%s", base, rel);
		return p;
	}
	return path_join(base, rel);
}

static int
conf_resolve_one(struct amanat_conf *cf, const struct conf_section *sec,
    const struct conf_knob *k, const char *base)
{
	char	**v = knob_str(cf, k), *joined;

	if (*v == NULL)
		return 0;
	joined = conf_join(base, *v);
	free(*v);
	*v = joined;
	if (strlen(joined) >= PATH_MAX)
		return conf_errf(cf->path, knob_line(cf, sec, k), ERR_INVAL,
		    "", "path longer than PATH_MAX once joined");
	return 0;
}

/* Make datadir absolute, then every other path relative to it. */
static int
conf_resolve(struct amanat_conf *cf)
{
	const struct conf_section	*sec;
	const struct conf_knob		*k;
	const char			*base;
	size_t				 i, j;
	int				 rc, pass;

	for (pass = 0; pass < 2; pass++) {
		base = pass == 0 || cf->node.datadir == NULL ? cf->dir :
		    cf->node.datadir;
		for (i = 0; i < conf_nsections; i++) {
			sec = &conf_sections[i];
			for (j = 0; j < sec->nknobs; j++) {
				k = &sec->knobs[j];
				if ((k->type != CONF_PATH &&
				    k->type != CONF_SECRET) ||
				    knob_is_datadir(k) != (pass == 0))
					continue;
				if ((rc = conf_resolve_one(cf, sec, k,
				    base)) < 0)
					return rc;
			}
		}
	}
	return 0;
}

static int
conf_set_dir(struct amanat_conf *cf, const char *path)
{
	char	*copy, *real;
	int	 rc;

	copy = xstrdup(path);
	real = realpath(dirname(copy), NULL);
	free(copy);
	if (real == NULL) {
		rc = errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
		err_set(rc, "%s: directory: %s", path, strerror(errno));
		return rc;
	}
	cf->dir = xstrdup(real);
	free(real);
	return 0;
}

int
conf_load_buffer(struct amanat_conf *cf, const char *path, const char *data,
    size_t len)
{
	struct conf_parser	*p = NULL;
	size_t			 i;
	int			 rc;

	memset(cf, 0, sizeof(*cf));
	cf->path = xstrdup(path);
	if (len > CONF_FILE_MAX) {
		rc = conf_errf(path, 0, ERR_INVAL, "", "file larger than "
		    "CONF_FILE_MAX bytes");
		goto fail;
	}
	if ((rc = conf_set_dir(cf, path)) < 0)
		goto fail;
	conf_defaults(cf);
	p = xcalloc(1, sizeof(*p));
	p->cf = cf;
	p->path = path;
	p->line = 1;
	p->st = ST_BOL;
	for (i = 0; i < len; i++)
		if ((rc = conf_feed(p, (unsigned char)data[i])) < 0)
			goto fail;
	if (p->col > 0 && (rc = conf_eol(p)) < 0)
		goto fail;
	if ((rc = conf_resolve(cf)) < 0)
		goto fail;
	free(p);
	return 0;
fail:
	free(p);
	conf_free(cf);
	return rc;
}

int
conf_load(struct amanat_conf *cf, const char *path)
{
	char	*data = NULL;
	size_t	 len = 0;
	int	 rc;

	memset(cf, 0, sizeof(*cf));
	rc = file_read_all(&data, &len, path, CONF_FILE_MAX);
	if (rc == ERR_TOOBIG) {
		err_set(ERR_INVAL, "%s: file larger than %d bytes", path,
		    CONF_FILE_MAX);
		return ERR_INVAL;
	}
	if (rc < 0)
		return rc;
	rc = conf_load_buffer(cf, path, data, len);
	free(data);
	return rc;
}

/* ------------------------------------------------------------ files */

/* A CONF_PATH file (not datadir) must be a readable regular file. */
static int
check_readable(const char *path)
{
	struct stat	st;
	int		rc;

	if (stat(path, &st) < 0 || access(path, R_OK) < 0) {
		rc = errno == ENOENT ? ERR_NOTFOUND : errno == EACCES ?
		    ERR_PERM : ERR_IO;
		err_set(rc, "%s: %s", path, strerror(errno));
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(ERR_PERM, "%s: not a regular file", path);
		return ERR_PERM;
	}
	return 0;
}

int
conf_check_files(const struct amanat_conf *cf)
{
	const struct conf_section	*sec;
	const struct conf_knob		*k;
	const char			*v;
	char				 what[2 * CONF_NAME_MAX + 2];
	char				 msg[ERR_MSG_MAX];
	size_t				 i, j;
	int				 rc;

	for (i = 0; i < conf_nsections; i++) {
		sec = &conf_sections[i];
		for (j = 0; j < sec->nknobs; j++) {
			k = &sec->knobs[j];
			if ((k->type != CONF_SECRET && k->type != CONF_PATH) ||
			    knob_is_datadir(k) ||
			    (v = *knob_str((void *)cf, k)) == NULL)
				continue;
			if (k->type == CONF_SECRET)
				rc = file_check_secret(v);
			else
				rc = check_readable(v);
			if (rc == 0)
				continue;
			(void)snprintf(msg, sizeof(msg), "%s", err_msg());
			(void)snprintf(what, sizeof(what), "%s.%s", sec->name,
			    k->name);
			return conf_errf(cf->path, knob_line(cf, sec, k), rc,
			    what, msg);
		}
	}
	return 0;
}

void
conf_free(struct amanat_conf *cf)
{
	const struct conf_section	*sec;
	size_t				 i, j;

	if (cf == NULL)
		return;
	for (i = 0; i < conf_nsections; i++) {
		sec = &conf_sections[i];
		for (j = 0; j < sec->nknobs; j++)
			if (knob_is_string(&sec->knobs[j]))
				free(*knob_str(cf, &sec->knobs[j]));
	}
	/* conf owns the origin keys; they are const only to readers. */
	for (i = 0; i < cf->norigins; i++)
		free((char *)cf->origins[i].key);
	free(cf->origins);
	free(cf->path);
	free(cf->dir);
	memset(cf, 0, sizeof(*cf));
}
