/*
 * main.c -- docstore: the versioned document store, an HTTPS JSON API.
 *
 * Runs in: the docstore process (one event loop).
 * Implemented so far (foundation): GET /healthz.
 * Document spaces on libgit2 come with the docstore issue.
 * Failure policy: a listener that cannot be bound fails the start.
 * SECURITY: TLS from common/tls; documents are only reachable over TLS.
 */
#include <string.h>

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

static void
ds_limits(struct http_limits *lim, const struct amanat_conf *cf)
{
	memset(lim, 0, sizeof(*lim));
	lim->net.max_conns = (unsigned)cf->docstore.max_connections;
	lim->net.idle_ms = (unsigned)cf->docstore.idle_timeout;
	lim->net.out_max = (size_t)cf->docstore.output_limit;
	lim->max_header = HTTP_HEADER_MAX;
	lim->max_body = (size_t)cf->docstore.max_body;
}

static int
ds_start(struct daemon *d)
{
	struct http_limits	lim;
	int			rc;

	ds.d = d;
	ds_limits(&lim, &d->conf);
	if ((rc = http_server_new(&ds.http, d->base, "docstore", &lim,
	    ds_routes, &ds)) < 0)
		return rc;
	http_server_set_tls(ds.http, d->tls);
	return http_server_listen(ds.http, d->conf.docstore.listen);
}

static int
ds_reload(struct daemon *d, const struct amanat_conf *ncf)
{
	struct http_limits	lim;

	ds_limits(&lim, ncf);
	http_server_set_limits(ds.http, &lim);
	http_server_set_tls(ds.http, d->tls);
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
