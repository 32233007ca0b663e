/*
 * auditkc.c -- the audit glue of a service that is not keyservice
 * (mailsrv, docstore): checkpoints signed with the service's Ed25519 key
 * through keyservice (POST /v1/sign/raw), its certificate fetched from
 * keyservice for offline verification, and audit API callers resolved
 * through keyservice (common/kcauth): security officers only.
 *
 * Runs in: mailsrv and docstore, event loop thread.
 * Failure policy: keyservice unreachable: no checkpoint this tick (retried),
 * audit API answered 403/503; appends go on regardless.
 * SECURITY: the signing key never leaves keyservice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/auditkc.h"
#include "common/base64.h"
#include "common/err.h"
#include "common/kcauth.h"
#include "common/log.h"
#include "common/net.h"
#include "common/tls.h"
#include "common/xmalloc.h"

/* One per process: a daemon has one audit log. */
struct akc {
	struct keyclient	*kc;
	char			*cert;	/* PEM of the signing key */
};

static struct akc	akc_state;

struct akc_sign_job {
	auditsvc_signed_fn	 done;
	void			*arg;
};

static void
akc_sign_cb(int status, json_t *body, void *arg)
{
	struct akc_sign_job	*j = arg;
	const char		*b64 = json_string_value(json_object_get(body,
	    "signature"));
	const char		*kid = json_string_value(json_object_get(body,
	    "key_id"));
	unsigned char		*sig = NULL;
	size_t			 len = 0;

	if (status != 200 || b64 == NULL || b64_decode(&sig, &len, b64,
	    strlen(b64), 1024) < 0)
		j->done(ERR_IO, NULL, 0, NULL, NULL, j->arg);
	else
		j->done(0, sig, len, "ed25519", kid ? kid : "service", j->arg);
	free(sig);
	free(j);
}

static void
akc_sign(const void *body, size_t len, auditsvc_signed_fn done,
    void *done_arg, void *ctx)
{
	struct akc		*a = ctx;
	struct akc_sign_job	*j = xcalloc(1, sizeof(*j));

	j->done = done;
	j->arg = done_arg;
	if (keyclient_sign_raw(a->kc, body, len, akc_sign_cb, j) < 0) {
		free(j);
		done(ERR_IO, NULL, 0, NULL, NULL, done_arg);
	}
}

struct akc_authz_job {
	struct http_req		*req;
	char			 cn[KCAUTH_NAME_MAX];	/* for the record */
	auditsvc_authz_done_fn	 done;
	void			*arg;
};

static void
akc_authz_cb(int rc, const struct kcauth_caller *c, void *arg)
{
	struct akc_authz_job	*j = arg;

	j->done(j->req, rc == ERR_IO ? -1 : rc == 0 && c->security_officer,
	    c ? c->name : j->cn, c ? c->dept : "", j->arg);
	free(j);
}

static void
akc_authz(struct http_req *req, auditsvc_authz_done_fn done,
    void *done_arg, void *ctx)
{
	struct akc		*a = ctx;
	struct net_conn		*nc = http_req_conn(req);
	struct akc_authz_job	*j = xcalloc(1, sizeof(*j));
	int			 rc;

	j->req = req;
	j->done = done;
	j->arg = done_arg;
	if (nc == NULL || net_conn_ssl(nc) == NULL ||
	    tls_peer_cn(j->cn, sizeof(j->cn), net_conn_ssl(nc)) < 0)
		snprintf(j->cn, sizeof(j->cn), "unknown");
	if ((rc = kcauth_resolve(a->kc, nc ? net_conn_ssl(nc) : NULL,
	    akc_authz_cb, j)) < 0) {
		done(req, rc == ERR_IO ? -1 : 0, j->cn, "", done_arg);
		free(j);
	}
}

static const char *
akc_signer_cert(void *ctx)
{
	return ((struct akc *)ctx)->cert;
}

static void
akc_cert_cb(int status, json_t *body, void *arg)
{
	struct akc	*a = arg;
	const char	*pem = json_string_value(json_object_get(body,
	    "certificate"));

	if (status == 200 && pem != NULL) {
		free(a->cert);
		a->cert = xstrdup(pem);
	} else
		log_warnx("audit signing certificate unavailable status=%d",
		    status);
}

int
auditkc_open(struct auditsvc **out, struct daemon *d, struct keyclient *kc)
{
	struct auditsvc_ops	ops;
	char			path[96];

	akc_state.kc = kc;
	memset(&ops, 0, sizeof(ops));
	ops.sign = akc_sign;
	ops.authorize = akc_authz;
	ops.signer_cert = akc_signer_cert;
	ops.ctx = &akc_state;
	snprintf(path, sizeof(path), "/v1/sign/keys/%s", d->ops->name);
	if (keyclient_call(kc, "GET", path, NULL, KEYCLIENT_IDEMPOTENT,
	    akc_cert_cb, &akc_state) < 0)
		log_warnx("audit: cannot ask for the signing certificate");
	return auditsvc_open(out, d, &ops);
}

void
auditkc_close(struct auditsvc **svc)
{
	auditsvc_close(svc);
	free(akc_state.cert);
	akc_state.cert = NULL;
	akc_state.kc = NULL;
}
