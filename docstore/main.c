/*
 * main.c -- docstore: the versioned document store, an HTTPS JSON API.
 *
 * Runs in: the docstore process (one event loop).
 * Implemented so far (foundation): GET /healthz.
 * Document spaces on libgit2 come with the docstore issue.
 * Failure policy: a listener that cannot be bound fails the start.
 * SECURITY: TLS from common/tls; documents are only reachable over TLS.
 */
#include <jansson.h>

#include "common/daemon.h"
#include "common/err.h"
#include "common/http.h"
#include "common/log.h"
#include "docstore/docstore.h"

static struct docstore	ds;

static void
ds_healthz(struct http_req *req, void *arg)
{
	http_reply_json(req, 200, json_pack("{s:s, s:s}", "status", "ok",
	    "service", "docstore"));
}

static const struct http_route ds_routes[] = {
	{ "GET", "/healthz", ds_healthz },
	{ NULL, NULL, NULL },
};

static int
ds_start(struct daemon *d)
{
	ds.d = d;
	return daemon_http_start(&ds.http, d, &d->conf.docstore.http,
	    ds_routes, &ds);
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
}

static const struct daemon_ops ds_ops = {
	.name = "docstore",
	.start = ds_start,
	.reload = ds_reload,
	.stop = ds_stop,
};

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, &ds_ops, &ds);
}
