/*
 * main.c -- docstore: the versioned document store, an HTTPS JSON API.
 *
 * Runs in: the docstore process (one event loop).
 * Implemented so far: GET /healthz and the audit API (common/auditsvc;
 * nothing is recorded yet but the queries themselves).  Document spaces
 * on libgit2 come with the docstore issue.
 * Failure policy: a listener that cannot be bound fails the start.
 * SECURITY: TLS from common/tls; documents are only reachable over TLS.
 */
#include <jansson.h>

#include "common/auditkc.h"
#include "common/daemon.h"
#include "common/err.h"
#include "common/http.h"
#include "common/kcauth.h"
#include "common/log.h"
#include "common/tls.h"
#include "docstore/docstore.h"

static struct docstore	ds;

#define DS_KC_CONNS	4

static void
ds_healthz(struct http_req *req, void *arg)
{
	http_reply_json(req, 200, json_pack("{s:s, s:s}", "status", "ok",
	    "service", "docstore"));
}

static void
ds_audit(struct http_req *req, void *arg)
{
	auditsvc_handle(ds.audit, req);
}

static const struct http_route ds_routes[] = {
	{ "GET", "/healthz", ds_healthz },
	{ "GET", "/v1/audit/*", ds_audit },
	{ NULL, NULL, NULL },
};

static int
ds_start(struct daemon *d)
{
	const struct amanat_conf	*cf = &d->conf;
	int				 rc;

	ds.d = d;
	if ((rc = kcauth_client_new(&ds.kc, d, cf->docstore_client.cert,
	    cf->docstore_client.key, DS_KC_CONNS)) < 0 ||
	    (rc = auditkc_open(&ds.audit, d, ds.kc)) < 0)
		return rc;
	return daemon_http_start(&ds.http, d, &cf->docstore.http, ds_routes,
	    &ds);
}

static int
ds_reload(struct daemon *d, const struct amanat_conf *ncf)
{
	daemon_http_reload(ds.http, d, &ncf->docstore.http);
	return 0;
}

static void
ds_stop(struct daemon *d)
{
	http_server_free(&ds.http);
	keyclient_free(&ds.kc);
	auditkc_close(&ds.audit);
}

static const struct daemon_ops ds_ops = {
	.name = "docstore",
	/* a client certificate is asked for (the audit API), not required:
	 * GET /healthz answers anyone */
	.tls_verify = TLS_VERIFY_OPTIONAL,
	.start = ds_start,
	.reload = ds_reload,
	.stop = ds_stop,
};

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, &ds_ops, &ds);
}
