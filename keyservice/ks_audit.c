/*
 * ks_audit.c -- keyservice's audit log: checkpoints signed with its own
 * escrowed Ed25519 key, the audit API for security officers.
 *
 * Runs in: keyservice, event loop thread.
 * Failure policy: a checkpoint that cannot be signed is retried at the
 * next tick (common/auditsvc); the log itself is fail-closed for every
 * audited action (keyservice/api.c ks_audited).
 * SECURITY: only callers with the security-officer role read the log;
 * their queries are recorded too.
 */
#include <stdlib.h>
#include <string.h>

#include "common/auditsvc.h"
#include "common/xmalloc.h"
#include "keyservice/api.h"
#include "keyservice/keyservice.h"

static void
ks_audit_sign(const void *body, size_t len, auditsvc_signed_fn done,
    void *done_arg, void *ctx)
{
	struct keyservice	*k = ctx;
	EVP_PKEY		*key = NULL;
	unsigned char		*sig = NULL;
	size_t			 siglen = 0;
	int			 rc;

	if ((rc = ks_escrow_load(k, "sign-keyservice", "sign:keyservice",
	    &key)) == 0)
		rc = ca_sign_raw(&sig, &siglen, key, body, len);
	done(rc, sig, siglen, "ed25519", "keyservice", done_arg);
	free(sig);
	EVP_PKEY_free(key);
}

static void
ks_audit_authz(struct http_req *req, auditsvc_authz_done_fn done,
    void *done_arg, void *ctx)
{
	struct ks_caller	c;

	if (ks_auth_quiet(ctx, req, &c) < 0)
		done(req, 0, c.name[0] ? c.name : "unknown", "", done_arg);
	else
		done(req, c.security_officer, c.name, c.dept, done_arg);
}

static const char *
ks_signer_cert(void *ctx)
{
	return ((struct keyservice *)ctx)->sign_cert;
}

int
ks_audit_start(struct keyservice *k)
{
	static struct auditsvc_ops	ops;
	json_t				*pem;

	if ((pem = ks_cert_pem_of(k, "sign:keyservice")) != NULL) {
		free(k->sign_cert);
		k->sign_cert = xstrdup(json_string_value(pem));
		json_decref(pem);
	}
	ops.sign = ks_audit_sign;
	ops.authorize = ks_audit_authz;
	ops.signer_cert = ks_signer_cert;
	ops.ctx = k;
	return auditsvc_open(&k->audit, k->d, &ops);
}

void
ks_h_audit(struct http_req *req, void *arg)
{
	auditsvc_handle(((struct keyservice *)arg)->audit, req);
}

