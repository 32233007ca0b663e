/*
 * auditsvc.h -- what every daemon does with its audit log (common/audit):
 * open it under <datadir>/<service>/audit, record entries, sign
 * checkpoints on a timer, and serve the audit API to security officers.
 * keyservice, mailsrv and docstore use it as is.
 *
 * Signing: the daemon gives a sign function.  keyservice signs with its
 * own escrowed key; the others call keyservice (POST /v1/sign/raw, their
 * Ed25519 key).  Every AUDITSVC_TICK_MS the service checks
 * audit_checkpoint_due(); if due (and no signature is in flight) it
 * prepares a checkpoint, signs its body and stores it.  A failed
 * signature is logged and retried at the next tick; appends go on.
 *
 * The audit API (JSON, GET; every answer is itself audited as action
 * "audit.query" before it is sent — fail-closed: if that entry cannot be
 * written the answer is 503 {"error": "busy"}):
 *   /v1/audit/entries?actor=&dept=&object=&action=&outcome=&since=&until=
 *		&start=&limit=&order=asc|desc
 *	-> {"entries": [{"index", "entry"}], "next": index or null,
 *	    "size": tree size}
 *	since/until: unix milliseconds; limit 1..AUDIT_QUERY_LIMIT_MAX
 *	(default 100); order asc (default, from start or 0) or desc (from
 *	start or the newest); empty values are absent.
 *   /v1/audit/checkpoint	-> the latest signed checkpoint, and
 *	"certificate": the PEM certificate of the signing key (from the
 *	daemon's signer info), so the checkpoint verifies offline; 404
 *	not_found before the first one.
 *   /v1/audit/proof/inclusion?index=&size=	-> audit_inclusion_json()
 *	(size defaults to the current tree size)
 *   /v1/audit/proof/consistency?from=&to=	-> audit_consistency_json()
 *   /v1/audit/export?from=&to=[&checkpoint=]
 *	-> {"format": "amanat-audit-export-v1", "origin", "from", "to",
 *	    "checkpoint" (the latest signed one covering `to`, or the one
 *	    of tree size `checkpoint`, with its certificate),
 *	    "entries": [{"index", "entry", "proof": [hex...]}] for
 *	    from <= index < to, each with its inclusion proof against the
 *	    checkpoint's tree size}
 *	at most AUDITSVC_EXPORT_MAX entries and AUDITSVC_EXPORT_BYTES_MAX
 *	bytes per call (413 too_large beyond: ask for a smaller range and
 *	pin the checkpoint to join the pieces); 409 no_checkpoint when no
 *	signed checkpoint covers `to` yet (retry after the next one).
 * Every number is a decimal within bounds and every string at most
 * AUDIT_FIELD_MAX bytes, else 400 {"error": "invalid", "field"}; those
 * answers are audited too (outcome "error").  A path under /v1/audit/
 * that is none of the above is 404, before authorization.
 * Who may call: the daemon's authorize function decides (asynchronously:
 * mailsrv and docstore ask keyservice for the caller's roles); only the
 * security-officer role is allowed.  A refused call gets 403
 * {"error": "forbidden"} once its entry with outcome "denied" is durable
 * (still 403 if that entry cannot be written).
 * Lifetime: auditsvc_close() may run while a signature or an
 * authorization is in flight; their late callbacks find the service gone
 * and only free their own state (an orphaned request is answered 503).
 */
#ifndef COMMON_AUDITSVC_H
#define COMMON_AUDITSVC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/audit.h"
#include "common/daemon.h"
#include "common/http.h"

#define AUDITSVC_TICK_MS	5000
#define AUDITSVC_EXPORT_MAX	10000
/* Below the daemons' default output_limit (4M), so a bundle is sent. */
#define AUDITSVC_EXPORT_BYTES_MAX (3 * 1024 * 1024)
#define AUDITSVC_EXPORT_FORMAT	"amanat-audit-export-v1"

struct auditsvc;

/* Signature result: rc 0 with the signature bytes, or rc < 0. */
typedef void	(*auditsvc_signed_fn)(int, const void *, size_t,
		    const char *, const char *, void *);
/*
 * sign(body, len, done, arg, ctx): sign body (len bytes, valid during the
 * call only); call done(rc, sig, siglen, alg, key_id, arg) exactly once,
 * later or at once, on the loop thread.
 */
typedef void	(*auditsvc_sign_fn)(const void *, size_t, auditsvc_signed_fn,
		    void *, void *);

/*
 * authorize(req, done, arg, ctx): decide on the caller of an audit API
 * request; call done(req, allowed, actor, dept, arg) exactly once, later
 * or at once, on the loop thread.  allowed: 1 security officer,
 * 0 refused (403), -1 cannot tell now (503: e.g. keyservice is down).
 * actor/dept are recorded in the audit entry.
 */
typedef void	(*auditsvc_authz_done_fn)(struct http_req *, int,
		    const char *, const char *, void *);
typedef void	(*auditsvc_authz_fn)(struct http_req *,
		    auditsvc_authz_done_fn, void *, void *);

struct auditsvc_ops {
	auditsvc_sign_fn	 sign;
	auditsvc_authz_fn	 authorize;
	/* PEM certificate of the checkpoint signing key, or NULL. */
	const char		*(*signer_cert)(void *);
	void			*ctx;		/* passed to the three above */
};

/*
 * Open <datadir>/<service>/audit (node d->conf.node.name, service
 * d->ops->name, loop d->base), and the HMAC key <datadir>/<service>/
 * audit.hmac.key (32 random bytes made 0600 on first use; refused if
 * group or others may read it).  ops is copied.  The first checkpoint
 * check runs on the first loop turn, then every AUDITSVC_TICK_MS.
 * Errors of audit_open(), ERR_PERM/ERR_IO/ERR_INVAL for the key.
 */
int	auditsvc_open(struct auditsvc **, struct daemon *,
	    const struct auditsvc_ops *);
/*
 * Stop the timer, commit what is queued (running those callbacks) and
 * close the log; not from inside an audit callback.  NULL-safe.
 */
void	auditsvc_close(struct auditsvc **);
struct audit_log	*auditsvc_log(struct auditsvc *);
/* Check for a due checkpoint every ms milliseconds (tests; >= 1). */
void	auditsvc_set_tick(struct auditsvc *, unsigned);
/*
 * Sign a checkpoint of the current tree now, due or not: 0 once asked
 * (the result is logged), ERR_AGAIN while a signature is in flight,
 * ERR_EXISTS when the newest checkpoint already covers the whole log.
 */
int	auditsvc_checkpoint(struct auditsvc *);

/*
 * auditsvc_record(svc, actor, dept, src, action, object, outcome,
 * request_id, details, cb, arg): record an entry (node, service and time
 * filled in; NULL strings are ""; outcome an enum audit_outcome;
 * request_id the http_req_id(), written as 16 hex digits, 0 for none);
 * details (may be NULL) is stolen.  cb(arg, rc, index) runs once the
 * entry is durable, or with an error (the caller must then refuse the
 * action); cb may be NULL for a fire-and-forget record (the error is
 * logged).  0, or a negative enum err at once (then cb is not called):
 * ERR_TOOBIG when the queue is full, ERR_IO once the log is unusable,
 * ERR_INVAL for bad details.
 */
int	auditsvc_record(struct auditsvc *, const char *, const char *,
	    const char *, const char *, const char *, int, uint64_t,
	    json_t *, audit_done_fn, void *);
/*
 * auditsvc_hmac(svc, out, value): HMAC-SHA256 of a sensitive value under
 * the service's audit key, as lower-case hex into out (AUDIT_HMAC_HEX_LEN
 * + 1 bytes); "" if that fails (logged).
 */
void	auditsvc_hmac(struct auditsvc *, char *, const char *);

/* The audit API: each daemon routes GET /v1/audit/<name> here. */
void	auditsvc_handle(struct auditsvc *, struct http_req *);

/*
 * The export bundle of entries [from, to) of log (the format above):
 * against the checkpoint of tree size cp_size, or the newest one when
 * cp_size is 0; cert (may be NULL) goes in as its "certificate".
 * ERR_INVAL for a bad range (empty, beyond the log, over
 * AUDITSVC_EXPORT_MAX), ERR_NOTFOUND when no such checkpoint covers to.
 */
int	auditsvc_export_bundle(json_t **, struct audit_log *, uint64_t,
	    uint64_t, uint64_t, const char *);

#endif
