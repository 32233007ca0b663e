/*
 * queue_env.c -- the queue envelope: checks, JSON encoding, decoding.
 *
 * Purpose: turn a struct queue_env into the versioned JSON record kept
 * in the queue index, sealed with the queue key, and back; the JSON
 * alone for queue_list.
 * Runs in: mailsrv, any thread (no shared state).
 * Failure policy: ERR_INVAL for an envelope the caller built wrong
 * (limits, missing fields, strings that are not UTF-8), ERR_TOOBIG for
 * a record over QE_JSON_MAX, ERR_IO for a stored record that does not
 * decode (corrupt); OOM is fatal (xmalloc).
 * SECURITY: a stored record is untrusted input: size-bounded before
 * parsing, duplicate keys refused, every field type- and range-checked,
 * strings bounded and free of NUL bytes.
 *
 * Record v1: {"v":1, "id", "sender", "helo"?, "peer"?, "auth"?,
 * "envid"?, "ret_full", "body_8bit", "smtputf8" (booleans), "created",
 * "next_try", "attempts", "size" (integers), "rcpts": [{"addr",
 * "orcpt"?, "notify", "local", "dept"?, "state", "status"?}]}; a member
 * marked ? is absent when the field is NULL.
 *
 * Stored (sealed) record: "AQE1" | 12-byte random nonce | AES-256-GCM
 * ciphertext of the JSON | 16-byte tag, under the queue key, with AAD
 * "amanat-queue-env-v1" NUL | id: addresses, HELO names and client
 * addresses are not readable on disk, and a record cannot be altered or
 * moved to another id.  Records of older versions were the JSON alone:
 * queue__env_decode_legacy() reads them once, for recovery to seal them.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "common/err.h"
#include "common/gcm.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "mailsrv/queue/queue.h"

#define QE_VERSION	1
#define QE_MAGIC	"AQE1"
#define QE_NONCE_LEN	GCM_IV_LEN
#define QE_TAG_LEN	GCM_TAG_LEN
#define QE_SEAL_OVER	(4 + QE_NONCE_LEN + QE_TAG_LEN)
#define QE_AAD_PREFIX	"amanat-queue-env-v1"	/* + its NUL */
/* HELO, peer, auth, ENVID, department and status strings. */
#define QE_STR_MAX	1024
/* A stored record; 10000 recipients with every field full fit. */
#define QE_JSON_MAX	(64 * 1024 * 1024)

#define QE_NOTIFY_ALL	(QUEUE_NOTIFY_NEVER | QUEUE_NOTIFY_SUCCESS | \
			 QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY)

static int
qe_str_ok(const char *s, size_t max, int required)
{
	if (s == NULL)
		return !required;
	return strlen(s) <= max;
}

static int
qe_check_rcpt(const struct queue_rcpt *r, size_t i)
{
	if (r->addr == NULL || r->addr[0] == '\0' ||
	    !qe_str_ok(r->addr, QUEUE_ADDR_MAX, 1) ||
	    !qe_str_ok(r->orcpt, QUEUE_ADDR_MAX, 0) ||
	    !qe_str_ok(r->dept, QE_STR_MAX, 0) ||
	    !qe_str_ok(r->status, QE_STR_MAX, 0)) {
		err_set(ERR_INVAL, "queue envelope: recipient %zu: missing or "
		    "too long field", i);
		return ERR_INVAL;
	}
	if ((r->notify & ~QE_NOTIFY_ALL) != 0 ||
	    r->state < QUEUE_RCPT_PENDING || r->state > QUEUE_RCPT_FAILED) {
		err_set(ERR_INVAL, "queue envelope: recipient %zu: bad notify "
		    "or state", i);
		return ERR_INVAL;
	}
	return 0;
}

/* The limits of struct queue_env (queue.h). */
static int
qe_check(const struct queue_env *env)
{
	size_t	i;
	int	rc;

	if (!qe_str_ok(env->sender, QUEUE_ADDR_MAX, 1) ||
	    !qe_str_ok(env->helo, QE_STR_MAX, 0) ||
	    !qe_str_ok(env->peer, QE_STR_MAX, 0) ||
	    !qe_str_ok(env->auth, QE_STR_MAX, 0) ||
	    !qe_str_ok(env->envid, QE_STR_MAX, 0)) {
		err_set(ERR_INVAL, "queue envelope: missing or too long field");
		return ERR_INVAL;
	}
	if (env->nrcpts < 1 || env->nrcpts > QUEUE_RCPTS_MAX ||
	    env->rcpts == NULL) {
		err_set(ERR_INVAL, "queue envelope: %zu recipients (1..%d)",
		    env->nrcpts, QUEUE_RCPTS_MAX);
		return ERR_INVAL;
	}
	if (env->size > QUEUE_MSG_MAX) {
		err_set(ERR_INVAL, "queue envelope: size over QUEUE_MSG_MAX");
		return ERR_INVAL;
	}
	for (i = 0; i < env->nrcpts; i++)
		if ((rc = qe_check_rcpt(&env->rcpts[i], i)) < 0)
			return rc;
	return 0;
}

/* Set key to a string (skipped if s is NULL); -1 if not UTF-8. */
static int
qe_set_str(json_t *o, const char *key, const char *s)
{
	json_t	*v;

	if (s == NULL)
		return 0;
	if ((v = json_string(s)) == NULL)
		return -1;
	return json_object_set_new(o, key, v);
}

static json_t *
qe_rcpt_json(const struct queue_rcpt *r)
{
	json_t	*o;

	o = json_pack("{s:i, s:b, s:i}", "notify", r->notify,
	    "local", r->local != 0, "state", r->state);
	if (o == NULL)
		return NULL;
	if (qe_set_str(o, "addr", r->addr) == -1 ||
	    qe_set_str(o, "orcpt", r->orcpt) == -1 ||
	    qe_set_str(o, "dept", r->dept) == -1 ||
	    qe_set_str(o, "status", r->status) == -1 ||
	    (r->delayed && json_object_set_new(o, "delayed",
	    json_true()) == -1)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/*
 * The JSON form of env (not checked against the limits here); NULL if
 * a string is not valid UTF-8.  Caller decrefs.
 */
json_t *
queue__env_json(const struct queue_env *env)
{
	json_t	*o, *a, *r;
	size_t	 i;

	o = json_pack("{s:i, s:s, s:b, s:b, s:b, s:I, s:I, s:I, s:I}",
	    "v", QE_VERSION, "id", env->id, "ret_full", env->ret_full != 0,
	    "body_8bit", env->body_8bit != 0, "smtputf8", env->smtputf8 != 0,
	    "created", (json_int_t)env->created,
	    "next_try", (json_int_t)env->next_try,
	    "attempts", (json_int_t)env->attempts,
	    "size", (json_int_t)env->size);
	if (o == NULL)
		return NULL;
	if (qe_set_str(o, "sender", env->sender) == -1 ||
	    qe_set_str(o, "helo", env->helo) == -1 ||
	    qe_set_str(o, "peer", env->peer) == -1 ||
	    qe_set_str(o, "auth", env->auth) == -1 ||
	    qe_set_str(o, "envid", env->envid) == -1)
		goto fail;
	if ((a = json_array()) == NULL ||
	    json_object_set_new(o, "rcpts", a) == -1)
		goto fail;
	for (i = 0; i < env->nrcpts; i++)
		if ((r = qe_rcpt_json(&env->rcpts[i])) == NULL ||
		    json_array_append_new(a, r) == -1)
			goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

static int
qe_encode_json(const struct queue_env *env, char **out, size_t *outlen)
{
	json_t	*o;
	char	*s;
	int	 rc;

	*out = NULL;
	*outlen = 0;
	if (!queue_id_ok(env->id)) {
		err_set(ERR_INVAL, "queue envelope: bad id");
		return ERR_INVAL;
	}
	if ((rc = qe_check(env)) < 0)
		return rc;
	if ((o = queue__env_json(env)) == NULL) {
		err_set(ERR_INVAL, "queue envelope: a string is not UTF-8");
		return ERR_INVAL;
	}
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		fatalx("queue: json_dumps");
	if (strlen(s) > QE_JSON_MAX) {
		free(s);
		err_set(ERR_TOOBIG, "queue envelope over %d bytes",
		    QE_JSON_MAX);
		return ERR_TOOBIG;
	}
	*outlen = strlen(s);
	*out = s;
	return 0;
}

/*
 * A string member: absent or null gives NULL (ERR_IO if required),
 * otherwise a string without NUL of at most max bytes, copied.
 */
static int
qe_get_str(json_t *o, const char *key, size_t max, int required,
    char **out)
{
	json_t	*v = json_object_get(o, key);
	size_t	 len;

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return required ? ERR_IO : 0;
	if (!json_is_string(v))
		return ERR_IO;
	len = json_string_length(v);
	if (len > max || strlen(json_string_value(v)) != len)
		return ERR_IO;
	*out = xstrdup(json_string_value(v));
	return 0;
}

static int
qe_get_int(json_t *o, const char *key, json_int_t min, json_int_t max,
    json_int_t *out)
{
	json_t	*v = json_object_get(o, key);

	if (!json_is_integer(v))
		return ERR_IO;
	*out = json_integer_value(v);
	return *out < min || *out > max ? ERR_IO : 0;
}

static int
qe_get_bool(json_t *o, const char *key, int *out)
{
	json_t	*v = json_object_get(o, key);

	if (!json_is_boolean(v))
		return ERR_IO;
	*out = json_is_true(v);
	return 0;
}

static int
qe_decode_rcpt(json_t *o, struct queue_rcpt *r)
{
	json_int_t	v;

	if (!json_is_object(o) ||
	    qe_get_str(o, "addr", QUEUE_ADDR_MAX, 1, &r->addr) < 0 ||
	    r->addr[0] == '\0' ||
	    qe_get_str(o, "orcpt", QUEUE_ADDR_MAX, 0, &r->orcpt) < 0 ||
	    qe_get_str(o, "dept", QE_STR_MAX, 0, &r->dept) < 0 ||
	    qe_get_str(o, "status", QE_STR_MAX, 0, &r->status) < 0 ||
	    qe_get_bool(o, "local", &r->local) < 0)
		return ERR_IO;
	if (qe_get_int(o, "notify", 0, QE_NOTIFY_ALL, &v) < 0)
		return ERR_IO;
	r->notify = (int)v;
	/* optional (absent before delay reports existed) */
	if (json_object_get(o, "delayed") != NULL &&
	    qe_get_bool(o, "delayed", &r->delayed) < 0)
		return ERR_IO;
	if (qe_get_int(o, "state", QUEUE_RCPT_PENDING, QUEUE_RCPT_FAILED,
	    &v) < 0)
		return ERR_IO;
	r->state = (int)v;
	return 0;
}

/* The members of a v1 record other than id and rcpts. */
static int
qe_decode_fields(json_t *o, struct queue_env *env)
{
	json_int_t	v;

	if (qe_get_str(o, "sender", QUEUE_ADDR_MAX, 1, &env->sender) < 0 ||
	    qe_get_str(o, "helo", QE_STR_MAX, 0, &env->helo) < 0 ||
	    qe_get_str(o, "peer", QE_STR_MAX, 0, &env->peer) < 0 ||
	    qe_get_str(o, "auth", QE_STR_MAX, 0, &env->auth) < 0 ||
	    qe_get_str(o, "envid", QE_STR_MAX, 0, &env->envid) < 0 ||
	    qe_get_bool(o, "ret_full", &env->ret_full) < 0 ||
	    qe_get_bool(o, "body_8bit", &env->body_8bit) < 0 ||
	    qe_get_bool(o, "smtputf8", &env->smtputf8) < 0)
		return ERR_IO;
	if (qe_get_int(o, "created", INT64_MIN, INT64_MAX, &v) < 0)
		return ERR_IO;
	env->created = v;
	if (qe_get_int(o, "next_try", INT64_MIN, INT64_MAX, &v) < 0)
		return ERR_IO;
	env->next_try = v;
	if (qe_get_int(o, "attempts", 0, UINT_MAX, &v) < 0)
		return ERR_IO;
	env->attempts = (unsigned)v;
	if (qe_get_int(o, "size", 0, QUEUE_MSG_MAX, &v) < 0)
		return ERR_IO;
	env->size = (uint64_t)v;
	return 0;
}

/*
 * Decode the stored record of id.  ERR_IO (with the id in the message)
 * if it is not a well-formed v1 record of that id.
 */
static int
qe_decode_json(struct queue_env **out, const char *id, const void *data,
    size_t len)
{
	struct queue_env	*env = NULL;
	json_error_t		 jerr;
	json_t			*o = NULL, *a, *v;
	size_t			 i, n;
	int			 rc = ERR_IO;

	*out = NULL;
	if (len > QE_JSON_MAX || !queue_id_ok(id))
		goto done;
	o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL || !json_is_object(o))
		goto done;
	v = json_object_get(o, "v");
	if (!json_is_integer(v) || json_integer_value(v) != QE_VERSION)
		goto done;
	v = json_object_get(o, "id");
	if (!json_is_string(v) || strcmp(json_string_value(v), id) != 0)
		goto done;
	a = json_object_get(o, "rcpts");
	if (!json_is_array(a) || (n = json_array_size(a)) < 1 ||
	    n > QUEUE_RCPTS_MAX)
		goto done;
	env = xcalloc(1, sizeof(*env));
	memcpy(env->id, id, QUEUE_ID_LEN + 1);
	if (qe_decode_fields(o, env) < 0)
		goto done;
	env->rcpts = xcalloc(n, sizeof(*env->rcpts));
	env->nrcpts = n;
	for (i = 0; i < n; i++)
		if (qe_decode_rcpt(json_array_get(a, i), &env->rcpts[i]) < 0)
			goto done;
	*out = env;
	env = NULL;
	rc = 0;
done:
	if (rc < 0)
		err_set(ERR_IO, "queue envelope %s: corrupt record",
		    queue_id_ok(id) ? id : "(bad id)");
	queue_env_free(&env);
	json_decref(o);
	return rc;
}

void
queue_env_free(struct queue_env **p)
{
	struct queue_env	*env;
	size_t			 i;

	if (p == NULL || (env = *p) == NULL)
		return;
	for (i = 0; env->rcpts != NULL && i < env->nrcpts; i++) {
		free(env->rcpts[i].addr);
		free(env->rcpts[i].orcpt);
		free(env->rcpts[i].dept);
		free(env->rcpts[i].status);
	}
	free(env->rcpts);
	free(env->sender);
	free(env->helo);
	free(env->peer);
	free(env->auth);
	free(env->envid);
	free(env);
	*p = NULL;
}

/* AES-256-GCM over len bytes from in to out, AAD prefix | id. */
static int
qe_gcm(int enc, const unsigned char *key, const char *id,
    const unsigned char *nonce, const unsigned char *in, size_t len,
    unsigned char *out, unsigned char *tag)
{
	static const char	 prefix[] = QE_AAD_PREFIX;
	const struct gcm_aad	 aad[] = {
		{ prefix, sizeof(prefix) },
		{ id, QUEUE_ID_LEN },
	};

	return gcm_crypt(enc, key, nonce, aad, 2, in, len, out, tag);
}

int
queue__env_encode(const struct queue_env *env, const unsigned char *key,
    char **out, size_t *outlen)
{
	unsigned char	*rec;
	char		*json;
	size_t		 len;
	int		 rc;

	*out = NULL;
	*outlen = 0;
	if ((rc = qe_encode_json(env, &json, &len)) < 0)
		return rc;
	rec = xmalloc(len + QE_SEAL_OVER);
	memcpy(rec, QE_MAGIC, 4);
	if (RAND_bytes(rec + 4, QE_NONCE_LEN) != 1 ||
	    qe_gcm(1, key, env->id, rec + 4, (unsigned char *)json, len,
	    rec + 4 + QE_NONCE_LEN, rec + 4 + QE_NONCE_LEN + len) < 0) {
		xfreezero(json, len);
		free(rec);
		err_set(ERR_GENERIC, "queue envelope: sealing failed");
		return ERR_GENERIC;
	}
	xfreezero(json, len);
	*out = (char *)rec;
	*outlen = len + QE_SEAL_OVER;
	return 0;
}

int
queue__env_decode(struct queue_env **out, const char *id,
    const unsigned char *key, const void *data, size_t len)
{
	const unsigned char	*p = data;
	unsigned char		*json, tag[QE_TAG_LEN];
	size_t			 n;
	int			 rc;

	*out = NULL;
	if (len < QE_SEAL_OVER || len - QE_SEAL_OVER > QE_JSON_MAX ||
	    memcmp(p, QE_MAGIC, 4) != 0 || !queue_id_ok(id)) {
		err_set(ERR_IO, "queue envelope %s: not a sealed record",
		    queue_id_ok(id) ? id : "(bad id)");
		return ERR_IO;
	}
	n = len - QE_SEAL_OVER;
	memcpy(tag, p + 4 + QE_NONCE_LEN + n, QE_TAG_LEN);
	json = xmalloc(n + 1);
	if (qe_gcm(0, key, id, p + 4, p + 4 + QE_NONCE_LEN, n, json,
	    tag) < 0) {
		xfreezero(json, n + 1);
		err_set(ERR_PERM, "queue envelope %s: does not authenticate",
		    id);
		return ERR_PERM;
	}
	rc = qe_decode_json(out, id, json, n);
	xfreezero(json, n + 1);
	return rc;
}

int
queue__env_decode_legacy(struct queue_env **out, const char *id,
    const void *data, size_t len)
{
	*out = NULL;
	if (len == 0 || ((const char *)data)[0] != '{') {
		err_set(ERR_IO, "queue envelope %s: not a JSON record",
		    queue_id_ok(id) ? id : "(bad id)");
		return ERR_IO;
	}
	return qe_decode_json(out, id, data, len);
}

/* The JSON record alone (tests). */
int
queue__env_encode_json(const struct queue_env *env, char **out,
    size_t *outlen)
{
	return qe_encode_json(env, out, outlen);
}
