/*
 * audit_entry.c -- audit entries: canonical encoding, parsing, keyed
 * hashes of sensitive values, query filters.
 *
 * Purpose: turn a struct audit_entry into the exact bytes that are
 * stored, hashed into the Merkle tree and exported (format v1, see
 * audit.h), and back into JSON.
 * Runs in: every daemon that writes an audit log (any thread), and the
 * CLI verifier.
 * Failure policy: bad details (not an object, a real, too deep) are
 * ERR_INVAL, too large ERR_TOOBIG; peer-supplied strings never fail (they
 * are cut and repaired, see below); OOM is fatal (xmalloc).
 * SECURITY: the encoder is our own rather than json_dumps(), so that the
 * bytes are pinned down exactly (Python's json.dumps with sort_keys,
 * compact separators and ensure_ascii): two encoders that disagree by one
 * escape would make honest entries fail verification.  Every string is
 * decoded as UTF-8 first: invalid sequences (and surrogates, overlong
 * forms, code points beyond U+10FFFF) become U+FFFD, so what is hashed
 * is always a valid string that any JSON parser reads back identically.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "common/audit.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/merkle.h"
#include "common/xmalloc.h"

#define AUDIT_CANON_DEPTH	32	/* audit_canon_json() nesting */
#define AUDIT_REPLACEMENT	0xfffd

static const char *const audit_outcomes[] = { "ok", "denied", "error" };

const char *
audit_outcome_name(int o)
{
	if (o < 0 || (size_t)o >= sizeof(audit_outcomes) /
	    sizeof(audit_outcomes[0]))
		return NULL;
	return audit_outcomes[o];
}

int
audit_outcome_parse(int *out, const char *s)
{
	size_t	i;

	for (i = 0; s != NULL && i < sizeof(audit_outcomes) /
	    sizeof(audit_outcomes[0]); i++) {
		if (strcmp(s, audit_outcomes[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	}
	err_set(ERR_INVAL, "outcome is ok, denied or error");
	return ERR_INVAL;
}

/*
 * Decode one UTF-8 character at s[0..n): its code point, or U+FFFD for
 * an invalid sequence, which then consumes one byte.  Returns the bytes
 * consumed (>= 1).
 */
static size_t
audit_utf8(uint32_t *cp, const unsigned char *s, size_t n)
{
	uint32_t	c = s[0], min;
	size_t		len, i;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		c &= 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		c &= 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		c &= 0x07;
		min = 0x10000;
	} else
		goto bad;
	if (len > n)
		goto bad;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			goto bad;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		goto bad;
	*cp = c;
	return len;
bad:
	*cp = AUDIT_REPLACEMENT;
	return 1;
}

static int
audit_put_u(struct buf *b, uint32_t u)
{
	static const char	hex[] = "0123456789abcdef";
	char			esc[6];

	esc[0] = '\\';
	esc[1] = 'u';
	esc[2] = hex[(u >> 12) & 0xf];
	esc[3] = hex[(u >> 8) & 0xf];
	esc[4] = hex[(u >> 4) & 0xf];
	esc[5] = hex[u & 0xf];
	return buf_append(b, esc, sizeof(esc));
}

/* Escape one code point the way Python's ensure_ascii encoder does. */
static int
audit_put_cp(struct buf *b, uint32_t cp)
{
	char	two[2] = { '\\', 0 };
	int	rc;

	switch (cp) {
	case '"':	two[1] = '"'; break;
	case '\\':	two[1] = '\\'; break;
	case '\b':	two[1] = 'b'; break;
	case '\f':	two[1] = 'f'; break;
	case '\n':	two[1] = 'n'; break;
	case '\r':	two[1] = 'r'; break;
	case '\t':	two[1] = 't'; break;
	default:	break;
	}
	if (two[1] != 0)
		return buf_append(b, two, 2);
	if (cp >= 0x20 && cp <= 0x7e)
		return buf_putc(b, (int)cp);
	if (cp < 0x10000)
		return audit_put_u(b, cp);
	cp -= 0x10000;
	if ((rc = audit_put_u(b, 0xd800 | (cp >> 10))) < 0)
		return rc;
	return audit_put_u(b, 0xdc00 | (cp & 0x3ff));
}

/*
 * A JSON string of s[0..n).  Beyond max input bytes it is cut, before a
 * character that would straddle the cut.  Runs of plain ASCII are copied
 * at once.
 */
static int
audit_put_str(struct buf *b, const char *s, size_t n, size_t max)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, run, cut, k;
	uint32_t		 cp;
	int			 rc;

	if (n > max) {
		cut = max;
		for (k = 0; k < 3 && cut > 0 && (p[cut] & 0xc0) == 0x80; k++)
			cut--;
		n = (p[cut] & 0xc0) == 0x80 ? max : cut;
	}
	if ((rc = buf_putc(b, '"')) < 0)
		return rc;
	while (i < n) {
		for (run = i; run < n && p[run] >= 0x20 && p[run] < 0x7f &&
		    p[run] != '"' && p[run] != '\\'; run++)
			;
		if (run > i) {
			if ((rc = buf_append(b, p + i, run - i)) < 0)
				return rc;
			i = run;
			continue;
		}
		i += audit_utf8(&cp, p + i, n - i);
		if ((rc = audit_put_cp(b, cp)) < 0)
			return rc;
	}
	return buf_putc(b, '"');
}

struct audit_kv {
	const char	*key;
	size_t		 len;
	json_t		*val;
};

static int
audit_kv_cmp(const void *a, const void *b)
{
	const struct audit_kv	*x = a, *y = b;
	size_t			 n = x->len < y->len ? x->len : y->len;
	int			 c;

	/* UTF-8 byte order is code point order, as Python sorts */
	if ((c = memcmp(x->key, y->key, n)) != 0)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

static int	audit_canon(struct buf *, const json_t *, int);

static int
audit_canon_object(struct buf *b, const json_t *o, int depth)
{
	struct audit_kv	*kv = NULL;
	const char	*key;
	size_t		 n, i = 0, klen;
	json_t		*val;
	int		 rc;

	if ((n = json_object_size(o)) == 0)
		return buf_append(b, "{}", 2);
	kv = xcalloc(n, sizeof(*kv));
	json_object_keylen_foreach((json_t *)o, key, klen, val) {
		if (i == n)
			break;
		kv[i].key = key;
		kv[i].len = klen;
		kv[i].val = val;
		i++;
	}
	qsort(kv, i, sizeof(*kv), audit_kv_cmp);
	rc = buf_putc(b, '{');
	for (n = 0; rc == 0 && n < i; n++) {
		if (n > 0 && (rc = buf_putc(b, ',')) < 0)
			break;
		if ((rc = audit_put_str(b, kv[n].key, kv[n].len,
		    SIZE_MAX)) < 0 || (rc = buf_putc(b, ':')) < 0)
			break;
		rc = audit_canon(b, kv[n].val, depth - 1);
	}
	if (rc == 0)
		rc = buf_putc(b, '}');
	free(kv);
	return rc;
}

static int
audit_canon(struct buf *b, const json_t *v, int depth)
{
	size_t	i;
	int	rc;

	if (depth <= 0) {
		err_set(ERR_INVAL, "audit: JSON nested too deep");
		return ERR_INVAL;
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return audit_canon_object(b, v, depth);
	case JSON_ARRAY:
		if ((rc = buf_putc(b, '[')) < 0)
			return rc;
		for (i = 0; i < json_array_size(v); i++) {
			if (i > 0 && (rc = buf_putc(b, ',')) < 0)
				return rc;
			if ((rc = audit_canon(b, json_array_get(v, i),
			    depth - 1)) < 0)
				return rc;
		}
		return buf_putc(b, ']');
	case JSON_STRING:
		return audit_put_str(b, json_string_value(v),
		    json_string_length(v), SIZE_MAX);
	case JSON_INTEGER:
		return buf_printf(b, "%lld", (long long)json_integer_value(v));
	case JSON_TRUE:
		return buf_append(b, "true", 4);
	case JSON_FALSE:
		return buf_append(b, "false", 5);
	case JSON_NULL:
		return buf_append(b, "null", 4);
	default:
		err_set(ERR_INVAL, "audit: no floating-point numbers");
		return ERR_INVAL;
	}
}

int
audit_canon_json(char **out, size_t *len, const json_t *v, size_t max)
{
	struct buf	b;
	int		rc;

	*out = NULL;
	buf_init(&b, max);
	if (v == NULL) {
		err_set(ERR_INVAL, "audit: no JSON value");
		return ERR_INVAL;
	}
	if ((rc = audit_canon(&b, v, AUDIT_CANON_DEPTH)) < 0) {
		buf_free(&b);
		return rc;
	}
	*out = buf_steal(&b, len);
	return 0;
}

static int64_t
audit_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "key":"value", after a comma unless first. */
static int
audit_put_field(struct buf *b, const char *key, const char *val, int first)
{
	int	rc;

	if ((rc = buf_printf(b, "%s\"%s\":", first ? "" : ",", key)) < 0)
		return rc;
	if (val == NULL)
		val = "";
	return audit_put_str(b, val, strnlen(val, AUDIT_FIELD_MAX + 1),
	    AUDIT_FIELD_MAX);
}

/* The details object's canonical bytes, within its own limits. */
static int
audit_details(struct buf *d, const json_t *details)
{
	if (details == NULL)
		return buf_append(d, "{}", 2);
	if (!json_is_object(details)) {
		err_set(ERR_INVAL, "audit: details must be a JSON object");
		return ERR_INVAL;
	}
	/* the details object itself is the first level */
	return audit_canon(d, details, AUDIT_DETAILS_DEPTH);
}

int
audit_entry_encode(char **out, size_t *len, const struct audit_entry *e,
    const char *node, const char *service)
{
	struct buf	 b, d;
	const char	*oc;
	int64_t		 t;
	int		 rc;

	*out = NULL;
	buf_init(&b, AUDIT_ENTRY_MAX);
	buf_init(&d, AUDIT_DETAILS_MAX);
	if ((oc = audit_outcome_name((int)e->outcome)) == NULL ||
	    e->time_ms < 0) {
		err_set(ERR_INVAL, "audit: bad outcome or time");
		rc = ERR_INVAL;
		goto done;
	}
	if ((rc = audit_details(&d, e->details)) < 0) {
		if (rc == ERR_TOOBIG)
			err_set(rc, "audit: details over %d bytes",
			    AUDIT_DETAILS_MAX);
		goto done;
	}
	t = e->time_ms != 0 ? e->time_ms : audit_now_ms();
	/* keys in sorted order */
	if ((rc = buf_putc(&b, '{')) < 0 ||
	    (rc = audit_put_field(&b, "action", e->action, 1)) < 0 ||
	    (rc = audit_put_field(&b, "actor", e->actor, 0)) < 0 ||
	    (rc = audit_put_field(&b, "dept", e->dept, 0)) < 0 ||
	    (rc = buf_append(&b, ",\"details\":", 11)) < 0 ||
	    (rc = buf_append(&b, d.data, d.len)) < 0 ||
	    (rc = audit_put_field(&b, "node", e->node != NULL ? e->node :
	    node, 0)) < 0 ||
	    (rc = audit_put_field(&b, "object", e->object, 0)) < 0 ||
	    (rc = audit_put_field(&b, "outcome", oc, 0)) < 0 ||
	    (rc = audit_put_field(&b, "request_id", e->request_id, 0)) < 0 ||
	    (rc = audit_put_field(&b, "service", e->service != NULL ?
	    e->service : service, 0)) < 0 ||
	    (rc = audit_put_field(&b, "src", e->src, 0)) < 0 ||
	    (rc = buf_printf(&b, ",\"time\":%lld,\"v\":%d}", (long long)t,
	    AUDIT_FORMAT_VERSION)) < 0)
		goto done;
	*out = buf_steal(&b, len);
done:
	buf_free(&b);
	buf_free(&d);
	return rc;
}

int
audit_entry_parse(json_t **out, const void *data, size_t len)
{
	json_error_t	 jerr;
	json_t		*v;

	*out = NULL;
	if (len > AUDIT_ENTRY_MAX) {
		err_set(ERR_TOOBIG, "audit: entry of %zu bytes", len);
		return ERR_TOOBIG;
	}
	v = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
	    &jerr);
	if (v == NULL || !json_is_object(v)) {
		json_decref(v);
		err_set(ERR_PROTO, "audit: entry is not a JSON object");
		return ERR_PROTO;
	}
	*out = v;
	return 0;
}

int
audit_hmac(char *out_hex, const void *key, size_t keylen, const char *value)
{
	uint8_t	mac[EVP_MAX_MD_SIZE];
	size_t	maclen = 0;

	out_hex[0] = '\0';
	if (key == NULL || keylen < AUDIT_HMAC_KEY_MIN || value == NULL) {
		err_set(ERR_INVAL, "audit_hmac: key of at least %d bytes",
		    AUDIT_HMAC_KEY_MIN);
		return ERR_INVAL;
	}
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen,
	    (const unsigned char *)value, strlen(value), mac, sizeof(mac),
	    &maclen) == NULL || maclen != MERKLE_HASH_LEN) {
		err_set(ERR_GENERIC, "audit_hmac: HMAC-SHA256 failed");
		return ERR_GENERIC;
	}
	merkle_hex(out_hex, mac);
	return 0;
}

static int
audit_str_is(const json_t *e, const char *key, const char *want)
{
	const char	*s;

	if (want == NULL)
		return 1;
	s = json_string_value(json_object_get(e, key));
	return s != NULL && strcmp(s, want) == 0;
}

int
audit_filter_match(const struct audit_filter *f, const json_t *e)
{
	json_t		*t;
	json_int_t	 ms;

	if (f == NULL)
		return 1;
	if (!audit_str_is(e, "actor", f->actor) ||
	    !audit_str_is(e, "dept", f->dept) ||
	    !audit_str_is(e, "object", f->object) ||
	    !audit_str_is(e, "action", f->action) ||
	    !audit_str_is(e, "outcome", f->outcome))
		return 0;
	if (f->since_ms != 0 || f->until_ms != 0) {
		if (!json_is_integer(t = json_object_get(e, "time")))
			return 0;
		ms = json_integer_value(t);
		if (f->since_ms != 0 && ms < f->since_ms)
			return 0;
		if (f->until_ms != 0 && ms >= f->until_ms)
			return 0;
	}
	return 1;
}
