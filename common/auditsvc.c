/*
 * auditsvc.c -- a daemon's audit service (see auditsvc.h): its log under
 * <datadir>/<service>/audit, the HMAC key for sensitive values, signed
 * checkpoints on a timer, and the audit API for security officers.
 *
 * Runs in: every daemon (keyservice, mailsrv, docstore), on its event
 * loop thread; the log's writer thread is audit.c's own.
 * Failure policy: fail-closed.  An API answer leaves only once the
 * "audit.query" entry that records it is durable; if that entry cannot
 * be written the caller gets 503 "busy" instead.  A refused caller gets
 * 403 once its "denied" entry is durable, or at once if it cannot be
 * written (a refusal reveals nothing).  A checkpoint whose signature or
 * store fails is logged and tried again at the next tick (one that is
 * not back within AUDITSVC_SIGN_TIMEOUT_MS is given up); appends go on.
 * SECURITY: authorization comes before anything else about the log, even
 * parameter errors; only unknown paths are answered (404) before it.
 * Every parameter is a bounded decimal or a string of at most
 * AUDIT_FIELD_MAX bytes, and one call returns at most
 * AUDIT_QUERY_LIMIT_MAX entries or AUDITSVC_EXPORT_MAX exported ones.
 * A signature is checked against the signer's certificate before the
 * checkpoint is stored, so a misconfigured signer shows at once.  The
 * HMAC key never leaves this process and is wiped on close.
 *
 * Lifetimes.  A signature or an authorization may complete after
 * auditsvc_close(): each keeps a small heap record (struct auditsvc_sig,
 * struct auditsvc_call) whose svc pointer close sets to NULL; the late
 * callback then frees its record (and answers an orphaned request 503)
 * without touching the freed service.  Entries queued when close runs
 * are committed by audit_close(), which runs their callbacks first.
 */
#include <sys/queue.h>

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "common/audit.h"
#include "common/auditsvc.h"
#include "common/err.h"
#include "common/log.h"
#include "common/merkle.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define AUDITSVC_KEY_FILE	"audit.hmac.key"
#define AUDITSVC_KEY_LEN	32
#define AUDITSVC_LIMIT_DEF	100
/* Filter strings kept in an entry's details when all do not fit. */
#define AUDITSVC_DETAIL_CUT	48
#define AUDITSVC_ACTION		"audit.query"
#define AUDITSVC_INT_MAX	((long long)(MERKLE_SIZE_MAX - 1))
/* A signature not back after this long is given up (and asked again). */
#define AUDITSVC_SIGN_TIMEOUT_MS 60000

enum auditsvc_route {
	R_ENTRIES = 0,
	R_CHECKPOINT,
	R_INCLUSION,
	R_CONSISTENCY,
	R_EXPORT,
};

static const char *const auditsvc_paths[] = {
	"/v1/audit/entries",
	"/v1/audit/checkpoint",
	"/v1/audit/proof/inclusion",
	"/v1/audit/proof/consistency",
	"/v1/audit/export",
};

/* A checkpoint signature in flight; outlives the service if need be. */
struct auditsvc_sig {
	struct auditsvc		*svc;	/* NULL once the service closed */
	struct audit_checkpoint	 cp;
	char			*body;	/* what was signed */
	size_t			 len;
	uint64_t		 started;	/* now_ms() */
};

/* One API request, from authorization to its answer. */
struct auditsvc_call {
	struct auditsvc			*svc;	/* NULL once closed */
	TAILQ_ENTRY(auditsvc_call)	 entry;	/* while authorize runs */
	struct http_req			*req;
	int				 route;
	int				 denied;
	int				 status;
	char				*body;	/* the answer, serialized */
	size_t				 len;
	json_t				*details; /* the parameters seen */
};

TAILQ_HEAD(auditsvc_calls, auditsvc_call);

struct auditsvc {
	struct auditsvc_ops	 ops;
	struct audit_log	*log;
	struct event		*tick;
	unsigned		 tick_ms;
	struct auditsvc_sig	*sig;		/* in flight, or NULL */
	struct auditsvc_calls	 calls;		/* being authorized */
	unsigned char		 key[AUDITSVC_KEY_LEN];
};

/* ------------------------------------------------------------ open */

/* Load the HMAC key, or make it on first use. */
static int
auditsvc__key(struct auditsvc *svc, const char *dir)
{
	char	*path, *data = NULL;
	size_t	 len = 0;
	int	 rc;

	path = path_join(dir, AUDITSVC_KEY_FILE);
	if ((rc = file_check_secret(path)) == ERR_NOTFOUND) {
		if (RAND_priv_bytes(svc->key, sizeof(svc->key)) != 1) {
			err_set(ERR_GENERIC, "%s: no random bytes", path);
			rc = ERR_GENERIC;
		} else if ((rc = file_write_atomic(path, svc->key,
		    sizeof(svc->key), 0600)) == 0)
			log_info("auditsvc hmac key created path=%s", path);
	} else if (rc == 0 && (rc = file_read_all(&data, &len, path,
	    4 * AUDITSVC_KEY_LEN)) == 0) {
		if (len != AUDITSVC_KEY_LEN) {
			err_set(ERR_INVAL, "%s: %zu bytes, not %d", path, len,
			    AUDITSVC_KEY_LEN);
			rc = ERR_INVAL;
		} else
			memcpy(svc->key, data, len);
		xfreezero(data, len);
	}
	free(path);
	return rc;
}

static void	auditsvc__tick_cb(evutil_socket_t, short, void *);

static void
auditsvc__arm(struct auditsvc *svc, unsigned ms)
{
	struct timeval	tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(svc->tick, &tv);
}

int
auditsvc_open(struct auditsvc **out, struct daemon *d,
    const struct auditsvc_ops *ops)
{
	struct auditsvc		*svc;
	struct audit_opts	 o;
	char			*sdir = NULL, *adir = NULL;
	int			 rc;

	*out = NULL;
	if (d == NULL || d->ops == NULL || d->ops->name == NULL ||
	    d->base == NULL || d->conf.node.datadir == NULL || ops == NULL ||
	    ops->sign == NULL || ops->authorize == NULL) {
		err_set(ERR_INVAL, "auditsvc: a daemon with a loop, a datadir "
		    "and a name, and sign and authorize functions");
		return ERR_INVAL;
	}
	svc = xcalloc(1, sizeof(*svc));
	svc->ops = *ops;
	svc->tick_ms = AUDITSVC_TICK_MS;
	TAILQ_INIT(&svc->calls);
	xasprintf(&sdir, "%s/%s", d->conf.node.datadir, d->ops->name);
	adir = path_join(sdir, "audit");
	memset(&o, 0, sizeof(o));
	o.dir = adir;
	o.node = d->conf.node.name;
	o.service = d->ops->name;
	o.base = d->base;
	if ((rc = mkdir_p(adir, 0700)) < 0 ||
	    (rc = audit_open(&svc->log, &o)) < 0 ||
	    (rc = auditsvc__key(svc, sdir)) < 0)
		goto fail;
	if ((svc->tick = evtimer_new(d->base, auditsvc__tick_cb, svc)) ==
	    NULL) {
		err_set(ERR_GENERIC, "auditsvc: evtimer_new failed");
		rc = ERR_GENERIC;
		goto fail;
	}
	auditsvc__arm(svc, 0);	/* sign at once if due */
	free(sdir);
	free(adir);
	*out = svc;
	return 0;
fail:
	free(sdir);
	free(adir);
	auditsvc_close(&svc);
	return rc;
}

void
auditsvc_close(struct auditsvc **pp)
{
	struct auditsvc		*svc;
	struct auditsvc_call	*c;

	if (pp == NULL || (svc = *pp) == NULL)
		return;
	if (svc->tick != NULL)
		event_free(svc->tick);
	if (svc->sig != NULL)
		svc->sig->svc = NULL;	/* its callback frees it */
	while ((c = TAILQ_FIRST(&svc->calls)) != NULL) {
		TAILQ_REMOVE(&svc->calls, c, entry);
		c->svc = NULL;		/* answered 503 when authorized */
	}
	audit_close(&svc->log);
	explicit_bzero(svc->key, sizeof(svc->key));
	free(svc);
	*pp = NULL;
}

struct audit_log *
auditsvc_log(struct auditsvc *svc)
{
	return svc->log;
}

void
auditsvc_set_tick(struct auditsvc *svc, unsigned ms)
{
	svc->tick_ms = ms > 0 ? ms : 1;
	evtimer_del(svc->tick);
	auditsvc__arm(svc, svc->tick_ms);
}

/* ------------------------------------------------------------ records */

static void
auditsvc__record_done(void *arg, int rc, uint64_t index)
{
	if (rc < 0)
		log_warnx("auditsvc record failed: %s", err_msg());
}

int
auditsvc_record(struct auditsvc *svc, const char *actor, const char *dept,
    const char *src, const char *action, const char *object, int outcome,
    uint64_t request_id, json_t *details, audit_done_fn cb, void *arg)
{
	struct audit_entry	e;
	char			rid[24] = "";
	int			rc;

	if (audit_outcome_name(outcome) == NULL) {
		json_decref(details);
		err_set(ERR_INVAL, "auditsvc: bad outcome %d", outcome);
		return ERR_INVAL;
	}
	if (request_id != 0)
		snprintf(rid, sizeof(rid), "%016llx",
		    (unsigned long long)request_id);
	memset(&e, 0, sizeof(e));
	e.actor = actor;
	e.dept = dept;
	e.src = src;
	e.action = action;
	e.object = object;
	e.outcome = (enum audit_outcome)outcome;
	e.request_id = rid;
	e.details = details;
	rc = audit_append(svc->log, &e, cb != NULL ? cb :
	    auditsvc__record_done, arg);
	json_decref(details);
	return rc;
}

void
auditsvc_hmac(struct auditsvc *svc, char *out, const char *value)
{
	if (audit_hmac(out, svc->key, sizeof(svc->key), value) < 0) {
		log_warnx("auditsvc hmac: %s", err_msg());
		out[0] = '\0';
	}
}

/* ------------------------------------------------------------ signing */

/* The signature over sig->body, checked with the signer's certificate. */
static int
auditsvc__sig_check(struct auditsvc *svc, const struct auditsvc_sig *sig,
    const void *s, size_t slen)
{
	const char	*pem;
	BIO		*bio = NULL;
	X509		*x = NULL;
	EVP_PKEY	*pub;
	EVP_MD_CTX	*md = NULL;
	int		 rc = ERR_PROTO;

	if (svc->ops.signer_cert == NULL ||
	    (pem = svc->ops.signer_cert(svc->ops.ctx)) == NULL)
		return 0;	/* nothing to check against */
	if ((bio = BIO_new_mem_buf(pem, -1)) == NULL ||
	    (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL ||
	    (pub = X509_get0_pubkey(x)) == NULL ||
	    (md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit_ex(md, NULL, EVP_PKEY_is_a(pub, "ED25519") ||
	    EVP_PKEY_is_a(pub, "ED448") ? NULL : "SHA256", NULL, NULL, pub,
	    NULL) != 1)
		err_set(ERR_PROTO, "the signer's certificate is unusable");
	else if (EVP_DigestVerify(md, s, slen, (const unsigned char *)
	    sig->body, sig->len) != 1)
		err_set(ERR_PROTO, "the signature does not verify with the "
		    "signer's certificate");
	else
		rc = 0;
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	X509_free(x);
	BIO_free(bio);
	return rc;
}

static void
auditsvc__signed(int rc, const void *s, size_t slen, const char *alg,
    const char *key_id, void *arg)
{
	struct auditsvc_sig	*sig = arg;
	struct auditsvc		*svc = sig->svc;

	if (svc == NULL)
		goto done;	/* closed meanwhile */
	svc->sig = NULL;
	if (rc < 0)
		log_warnx("auditsvc checkpoint origin=%s size=%llu not signed "
		    "(retry next tick): %s", audit_origin(svc->log),
		    (unsigned long long)sig->cp.size, err_msg());
	else if ((rc = auditsvc__sig_check(svc, sig, s, slen)) < 0 ||
	    (rc = audit_checkpoint_store(svc->log, &sig->cp, s, slen, alg,
	    key_id)) < 0)
		log_warnx("auditsvc checkpoint origin=%s size=%llu not stored "
		    "(retry next tick): %s", audit_origin(svc->log),
		    (unsigned long long)sig->cp.size, err_msg());
	else
		log_info("auditsvc checkpoint origin=%s size=%llu key=%s",
		    audit_origin(svc->log), (unsigned long long)sig->cp.size,
		    key_id);
done:
	free(sig->body);
	free(sig);
}

/* Prepare a checkpoint of the whole tree and ask for its signature. */
static int
auditsvc__sign(struct auditsvc *svc)
{
	struct auditsvc_sig	*sig;
	void			*copy;
	size_t			 len;
	int			 rc;

	if (svc->sig != NULL)
		return ERR_AGAIN;
	sig = xcalloc(1, sizeof(*sig));
	sig->svc = svc;
	if ((rc = audit_checkpoint_prepare(&sig->cp, svc->log)) < 0 ||
	    (rc = audit_checkpoint_body(&sig->body, &sig->len,
	    audit_origin(svc->log), &sig->cp)) < 0) {
		log_warnx("auditsvc checkpoint origin=%s: %s",
		    audit_origin(svc->log), err_msg());
		free(sig->body);
		free(sig);
		return rc;
	}
	sig->started = now_ms();
	svc->sig = sig;
	/* done may run at once and free sig: sign a copy */
	len = sig->len;
	copy = xmemdup(sig->body, len);
	svc->ops.sign(copy, len, auditsvc__signed, sig, svc->ops.ctx);
	free(copy);
	return 0;
}

static void
auditsvc__tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auditsvc	*svc = arg;

	if (svc->sig != NULL && now_ms() - svc->sig->started >
	    AUDITSVC_SIGN_TIMEOUT_MS) {
		log_warnx("auditsvc checkpoint origin=%s size=%llu: no "
		    "signature after %d ms; asking again",
		    audit_origin(svc->log),
		    (unsigned long long)svc->sig->cp.size,
		    AUDITSVC_SIGN_TIMEOUT_MS);
		svc->sig->svc = NULL;	/* a late answer only frees it */
		svc->sig = NULL;
	}
	if (svc->sig == NULL && audit_checkpoint_due(svc->log))
		(void)auditsvc__sign(svc);
	auditsvc__arm(svc, svc->tick_ms);
}

int
auditsvc_checkpoint(struct auditsvc *svc)
{
	json_t		*cp = NULL;
	uint64_t	 size = 0;
	int		 rc;

	if (svc->sig != NULL) {
		err_set(ERR_AGAIN, "a checkpoint signature is in flight");
		return ERR_AGAIN;
	}
	if ((rc = audit_checkpoint_latest(&cp, svc->log)) == 0)
		size = (uint64_t)json_integer_value(json_object_get(cp,
		    "size"));
	json_decref(cp);
	if (rc < 0 && rc != ERR_NOTFOUND)
		return rc;
	if (audit_size(svc->log) <= size) {
		err_set(ERR_EXISTS, "the newest checkpoint covers the log");
		return ERR_EXISTS;
	}
	return auditsvc__sign(svc);
}

/* ------------------------------------------------------------ bundles */

static json_t *
auditsvc__proof_json(const uint8_t (*proof)[MERKLE_HASH_LEN], size_t n)
{
	char	hex[MERKLE_HEX_LEN + 1];
	json_t	*a = json_array();
	size_t	 i;

	for (i = 0; i < n; i++) {
		merkle_hex(hex, proof[i]);
		json_array_append_new(a, json_string(hex));
	}
	return a;
}

/* {"index", "entry", "proof"} of entry i against tree size size. */
static int
auditsvc__export_one(json_t *arr, struct audit_log *log, uint64_t i,
    uint64_t size)
{
	uint8_t	 proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	char	*bytes = NULL;
	size_t	 len, n;
	json_t	*e = NULL;
	int	 rc;

	if ((rc = audit_inclusion_proof(proof, &n, log, i, size)) < 0 ||
	    (rc = audit_get(&bytes, &len, log, i)) < 0 ||
	    (rc = audit_entry_parse(&e, bytes, len)) < 0) {
		free(bytes);
		return rc;
	}
	free(bytes);
	json_array_append_new(arr, json_pack("{s:I,s:o,s:o}", "index",
	    (json_int_t)i, "entry", e, "proof", auditsvc__proof_json(
	    (const uint8_t (*)[MERKLE_HASH_LEN])proof, n)));
	return 0;
}

int
auditsvc_export_bundle(json_t **out, struct audit_log *log, uint64_t from,
    uint64_t to, uint64_t cp_size, const char *cert)
{
	json_t		*cp = NULL, *arr = NULL;
	uint64_t	 size = 0, i;
	int		 rc;

	*out = NULL;
	if (from >= to || to > audit_size(log) || to - from >
	    AUDITSVC_EXPORT_MAX) {
		err_set(ERR_INVAL, "export: want from < to <= %llu (the log's "
		    "size), at most %d entries", (unsigned long long)
		    audit_size(log), AUDITSVC_EXPORT_MAX);
		return ERR_INVAL;
	}
	rc = cp_size == 0 ? audit_checkpoint_latest(&cp, log) :
	    audit_checkpoint_get(&cp, log, cp_size);
	if (rc == ERR_NOTFOUND || (rc == 0 && (size = (uint64_t)
	    json_integer_value(json_object_get(cp, "size"))) < to)) {
		err_set(ERR_NOTFOUND, "no signed checkpoint%s covers entry "
		    "%llu; retry after the next checkpoint", cp_size != 0 ?
		    " of that size" : "", (unsigned long long)(to - 1));
		rc = ERR_NOTFOUND;
	}
	if (rc < 0)
		goto done;
	arr = json_array();
	for (i = from; i < to; i++)
		if ((rc = auditsvc__export_one(arr, log, i, size)) < 0)
			goto done;
	if (cert != NULL)
		json_object_set_new(cp, "certificate", json_string(cert));
	*out = json_pack("{s:s,s:s,s:I,s:I,s:O,s:O}", "format",
	    AUDITSVC_EXPORT_FORMAT, "origin", audit_origin(log), "from",
	    (json_int_t)from, "to", (json_int_t)to, "checkpoint", cp,
	    "entries", arr);
done:
	json_decref(cp);
	json_decref(arr);
	return rc;
}

/* ------------------------------------------------------------ answers */

/* The answer: status and JSON (stolen), serialized for later. */
static void
auditsvc__set(struct auditsvc_call *c, int status, json_t *v)
{
	char	*s;

	free(c->body);
	c->body = NULL;
	c->status = status;
	if ((s = json_dumps(v, JSON_COMPACT)) == NULL) {
		c->status = 500;
		s = xstrdup("{\"error\":\"internal_error\",\"message\":"
		    "\"cannot serialize the answer\"}");
	}
	c->len = (size_t)xasprintf(&c->body, "%s\n", s);
	free(s);
	json_decref(v);
}

static void
auditsvc__error(struct auditsvc_call *c, int status, const char *code,
    const char *field, const char *msg)
{
	json_t	*v;

	v = json_pack("{s:s,s:s}", "error", code, "message", msg);
	if (v == NULL)
		v = json_pack("{s:s,s:s}", "error", code, "message", "?");
	if (field != NULL)
		json_object_set_new(v, "field", json_string(field));
	auditsvc__set(c, status, v);
}

/* An error of the log as an answer. */
static void
auditsvc__log_error(struct auditsvc_call *c, int rc)
{
	if (rc == ERR_INVAL)
		auditsvc__error(c, 400, "invalid", NULL, err_msg());
	else if (rc == ERR_NOTFOUND)
		auditsvc__error(c, 404, "not_found", NULL, err_msg());
	else {
		log_warnx("auditsvc %s: %s", auditsvc_paths[c->route],
		    err_msg());
		auditsvc__error(c, 500, "internal_error", NULL,
		    "the audit log cannot be read");
	}
}

/*
 * A string parameter: NULL when absent or empty.  Kept in the details
 * (as received); longer than AUDIT_FIELD_MAX is 400 (returns -1).
 */
static int
auditsvc__str(const char **out, struct auditsvc_call *c, const char *name)
{
	const char	*v = http_req_query(c->req, name);

	*out = NULL;
	if (v == NULL || *v == '\0')
		return 0;
	json_object_set_new(c->details, name, json_stringn_nocheck(v,
	    strnlen(v, AUDIT_FIELD_MAX + 1)));
	if (strlen(v) > AUDIT_FIELD_MAX) {
		auditsvc__error(c, 400, "invalid", name, "too long");
		return -1;
	}
	*out = v;
	return 0;
}

/* A decimal parameter in [min, max]; def when absent (-1: required). */
static int
auditsvc__num(long long *out, struct auditsvc_call *c, const char *name,
    long long min, long long max, long long def)
{
	const char	*v;
	char		 msg[128];

	if (auditsvc__str(&v, c, name) < 0)
		return -1;
	if (v == NULL) {
		if (def < 0) {
			snprintf(msg, sizeof(msg), "%s is required", name);
			auditsvc__error(c, 400, "invalid", name, msg);
			return -1;
		}
		*out = def;
		return 0;
	}
	if (parse_ll(out, v, min, max) < 0) {
		snprintf(msg, sizeof(msg), "%s: %s", name, err_msg());
		auditsvc__error(c, 400, "invalid", name, msg);
		return -1;
	}
	return 0;
}

/* The filter of /v1/audit/entries; -1 with a 400 answer set. */
static int
auditsvc__filter(struct audit_filter *f, uint64_t *start, size_t *limit,
    struct auditsvc_call *c)
{
	const char	*order;
	long long	 since, until, st, lim;
	int		 o;

	memset(f, 0, sizeof(*f));
	if (auditsvc__str(&f->actor, c, "actor") < 0 ||
	    auditsvc__str(&f->dept, c, "dept") < 0 ||
	    auditsvc__str(&f->object, c, "object") < 0 ||
	    auditsvc__str(&f->action, c, "action") < 0 ||
	    auditsvc__str(&f->outcome, c, "outcome") < 0 ||
	    auditsvc__str(&order, c, "order") < 0 ||
	    auditsvc__num(&since, c, "since", 0, INT64_MAX, 0) < 0 ||
	    auditsvc__num(&until, c, "until", 0, INT64_MAX, 0) < 0 ||
	    auditsvc__num(&st, c, "start", 0, AUDITSVC_INT_MAX,
	    LLONG_MAX) < 0 ||
	    auditsvc__num(&lim, c, "limit", 1, AUDIT_QUERY_LIMIT_MAX,
	    AUDITSVC_LIMIT_DEF) < 0)
		return -1;
	if (f->outcome != NULL && audit_outcome_parse(&o, f->outcome) < 0) {
		auditsvc__error(c, 400, "invalid", "outcome", "outcome is ok, "
		    "denied or error");
		return -1;
	}
	if (order != NULL && strcmp(order, "asc") != 0 &&
	    strcmp(order, "desc") != 0) {
		auditsvc__error(c, 400, "invalid", "order", "order is asc or "
		    "desc");
		return -1;
	}
	f->backward = order != NULL && strcmp(order, "desc") == 0;
	f->since_ms = since;
	f->until_ms = until;
	/* no start: from the oldest (asc) or the newest (desc) */
	if (st == LLONG_MAX)
		*start = f->backward ? AUDIT_NO_MORE : 0;
	else
		*start = (uint64_t)st;
	*limit = (size_t)lim;
	return 0;
}

static void
auditsvc__entries(struct auditsvc *svc, struct auditsvc_call *c)
{
	struct audit_filter	 f;
	uint64_t		 start, next, size;
	size_t			 limit;
	json_t			*arr;
	int			 rc;

	if (auditsvc__filter(&f, &start, &limit, c) < 0)
		return;
	size = audit_size(svc->log);
	if ((rc = audit_query(&arr, &next, svc->log, &f, start, limit)) < 0) {
		auditsvc__log_error(c, rc);
		return;
	}
	json_object_set_new(c->details, "results", json_integer(
	    (json_int_t)json_array_size(arr)));
	auditsvc__set(c, 200, json_pack("{s:o,s:o,s:I}", "entries", arr,
	    "next", next == AUDIT_NO_MORE ? json_null() :
	    json_integer((json_int_t)next), "size", (json_int_t)size));
}

static void
auditsvc__checkpoint(struct auditsvc *svc, struct auditsvc_call *c)
{
	const char	*pem = NULL;
	json_t		*cp;
	int		 rc;

	if ((rc = audit_checkpoint_latest(&cp, svc->log)) == ERR_NOTFOUND) {
		auditsvc__error(c, 404, "not_found", NULL, "no signed "
		    "checkpoint yet");
		return;
	}
	if (rc < 0) {
		auditsvc__log_error(c, rc);
		return;
	}
	if (svc->ops.signer_cert != NULL)
		pem = svc->ops.signer_cert(svc->ops.ctx);
	if (pem != NULL)
		json_object_set_new(cp, "certificate", json_string(pem));
	auditsvc__set(c, 200, cp);
}

static void
auditsvc__proof(struct auditsvc *svc, struct auditsvc_call *c)
{
	long long	 a, b;
	json_t		*v;
	int		 rc;

	if (c->route == R_INCLUSION) {
		if (auditsvc__num(&a, c, "index", 0, AUDITSVC_INT_MAX,
		    -1) < 0 || auditsvc__num(&b, c, "size", 1,
		    AUDITSVC_INT_MAX, (long long)audit_size(svc->log)) < 0)
			return;
		rc = audit_inclusion_json(&v, svc->log, (uint64_t)a,
		    (uint64_t)b);
	} else {
		if (auditsvc__num(&a, c, "from", 0, AUDITSVC_INT_MAX,
		    -1) < 0 || auditsvc__num(&b, c, "to", 0,
		    AUDITSVC_INT_MAX, -1) < 0)
			return;
		rc = audit_consistency_json(&v, svc->log, (uint64_t)a,
		    (uint64_t)b);
	}
	if (rc < 0)
		auditsvc__log_error(c, rc);
	else
		auditsvc__set(c, 200, v);
}

static void
auditsvc__export(struct auditsvc *svc, struct auditsvc_call *c)
{
	long long	 from, to, cps;
	const char	*pem = NULL;
	char		 msg[160];
	json_t		*v;
	int		 rc;

	if (auditsvc__num(&from, c, "from", 0, AUDITSVC_INT_MAX, -1) < 0 ||
	    auditsvc__num(&to, c, "to", 0, AUDITSVC_INT_MAX, -1) < 0 ||
	    auditsvc__num(&cps, c, "checkpoint", 1, AUDITSVC_INT_MAX, 0) < 0)
		return;
	if (svc->ops.signer_cert != NULL)
		pem = svc->ops.signer_cert(svc->ops.ctx);
	rc = auditsvc_export_bundle(&v, svc->log, (uint64_t)from,
	    (uint64_t)to, (uint64_t)cps, pem);
	if (rc == ERR_NOTFOUND) {
		auditsvc__error(c, 409, "no_checkpoint", NULL, err_msg());
		return;
	}
	if (rc < 0) {
		auditsvc__log_error(c, rc);
		return;
	}
	auditsvc__set(c, 200, v);
	if (c->len > AUDITSVC_EXPORT_BYTES_MAX) {
		snprintf(msg, sizeof(msg), "the export is %zu bytes, over %d: "
		    "ask for fewer entries", c->len, AUDITSVC_EXPORT_BYTES_MAX);
		auditsvc__error(c, 413, "too_large", NULL, msg);
	}
}

/* ------------------------------------------------------------ requests */

static void
auditsvc__call_free(struct auditsvc_call *c)
{
	json_decref(c->details);
	free(c->body);
	free(c);
}

/* The record of the answer is durable (or failed): answer. */
static void
auditsvc__recorded(void *arg, int rc, uint64_t index)
{
	struct auditsvc_call	*c = arg;

	if (rc < 0 && !c->denied) {
		log_warnx("%016llx auditsvc answer withheld: %s",
		    (unsigned long long)http_req_id(c->req), err_msg());
		http_reply_error(c->req, 503, "busy", "the audit log cannot "
		    "record this query; try again later");
	} else
		http_reply(c->req, c->status, "application/json", c->body,
		    c->len);
	auditsvc__call_free(c);
}

/*
 * Details that fit AUDIT_DETAILS_MAX: as received if they do, else with
 * every string cut to AUDITSVC_DETAIL_CUT bytes (a cut character becomes
 * U+FFFD) and "cut": true.
 */
static json_t *
auditsvc__details(json_t *d)
{
	const char	*k;
	json_t		*v;
	char		*s = NULL;
	size_t		 n;

	if (json_object_size(d) == 0)
		return NULL;
	if (audit_canon_json(&s, &n, d, AUDIT_DETAILS_MAX) == 0) {
		free(s);
		return json_incref(d);
	}
	json_object_foreach(d, k, v)
		if (json_is_string(v) && json_string_length(v) >
		    AUDITSVC_DETAIL_CUT)
			json_string_setn_nocheck(v, json_string_value(v),
			    AUDITSVC_DETAIL_CUT);
	json_object_set_new(d, "cut", json_true());
	return json_incref(d);
}

/* Compute the answer, record the query, answer once it is durable. */
static void
auditsvc__allowed(struct auditsvc *svc, struct auditsvc_call *c,
    const char *actor, const char *dept)
{
	int	rc;

	switch (c->route) {
	case R_ENTRIES:
		auditsvc__entries(svc, c);
		break;
	case R_CHECKPOINT:
		auditsvc__checkpoint(svc, c);
		break;
	case R_EXPORT:
		auditsvc__export(svc, c);
		break;
	default:
		auditsvc__proof(svc, c);
		break;
	}
	if (c->status != 200)
		json_object_set_new(c->details, "status",
		    json_integer(c->status));
	rc = auditsvc_record(svc, actor, dept, http_req_peer(c->req),
	    AUDITSVC_ACTION, auditsvc_paths[c->route], c->status == 200 ?
	    AUDIT_OK : AUDIT_ERROR, http_req_id(c->req),
	    auditsvc__details(c->details), auditsvc__recorded, c);
	if (rc < 0)
		auditsvc__recorded(c, rc, 0);
}

static void
auditsvc__authorized(struct http_req *req, int allowed, const char *actor,
    const char *dept, void *arg)
{
	struct auditsvc_call	*c = arg;
	struct auditsvc		*svc = c->svc;
	int			 rc;

	if (svc == NULL) {
		http_reply_error(req, 503, "busy", "the service is shutting "
		    "down");
		auditsvc__call_free(c);
		return;
	}
	TAILQ_REMOVE(&svc->calls, c, entry);
	c->svc = NULL;
	if (allowed == 1) {
		auditsvc__allowed(svc, c, actor, dept);
		return;
	}
	c->denied = 1;
	if (allowed < 0)	/* the caller could not be resolved now */
		auditsvc__error(c, 503, "busy", NULL, "cannot check the "
		    "caller's roles now; try again");
	else
		auditsvc__error(c, 403, "forbidden", NULL, "the audit log is "
		    "for security officers");
	rc = auditsvc_record(svc, actor, dept, http_req_peer(req),
	    AUDITSVC_ACTION, auditsvc_paths[c->route], allowed < 0 ?
	    AUDIT_ERROR : AUDIT_DENIED, http_req_id(req), NULL,
	    auditsvc__recorded, c);
	if (rc < 0) {
		log_warnx("%016llx auditsvc denied entry not recorded: %s",
		    (unsigned long long)http_req_id(req), err_msg());
		auditsvc__recorded(c, rc, 0);
	}
}

void
auditsvc_handle(struct auditsvc *svc, struct http_req *req)
{
	struct auditsvc_call	*c;
	const char		*path = http_req_path(req);
	size_t			 i;

	for (i = 0; i < nitems(auditsvc_paths); i++)
		if (path != NULL && strcmp(path, auditsvc_paths[i]) == 0)
			break;
	if (i == nitems(auditsvc_paths)) {
		http_reply_error(req, 404, "not_found", "no such audit "
		    "resource");
		return;
	}
	if (strcmp(http_req_method(req), "GET") != 0) {
		http_reply_error(req, 405, "method_not_allowed", "the audit "
		    "API is read-only (GET)");
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->svc = svc;
	c->req = req;
	c->route = (int)i;
	c->details = json_object();
	TAILQ_INSERT_TAIL(&svc->calls, c, entry);
	svc->ops.authorize(req, auditsvc__authorized, c, svc->ops.ctx);
}
