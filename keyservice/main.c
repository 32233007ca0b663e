/*
 * main.c -- keyservice: the node's root of trust, an HTTPS JSON API.
 *
 * Runs in: the keyservice process (one event loop).
 * Implemented so far (foundation): node init (--init) and GET /healthz.
 * The directory, key hierarchy and CA API come with the keyservice issue.
 * Failure policy: a listener that cannot be bound fails the start.
 * SECURITY: TLS from common/tls; private keys never leave this process.
 */
#include <string.h>

#include <jansson.h>

#include "common/daemon.h"
#include "common/err.h"
#include "common/http.h"
#include "common/log.h"
#include "keyservice/keyservice.h"

static struct keyservice	ks;

static void
ks_healthz(struct http_req *req, void *arg)
{
	http_reply_json(req, 200, json_pack("{s:s, s:s}", "status", "ok",
	    "service", "keyservice"));
}

static const struct http_route ks_routes[] = {
	{ "GET", "/healthz", ks_healthz },
	{ NULL, NULL, NULL },
};

static void
ks_limits(struct http_limits *lim, const struct amanat_conf *cf)
{
	memset(lim, 0, sizeof(*lim));
	lim->net.max_conns = (unsigned)cf->keyservice.max_connections;
	lim->net.idle_ms = (unsigned)cf->keyservice.idle_timeout;
	lim->net.out_max = (size_t)cf->keyservice.output_limit;
	lim->max_header = HTTP_HEADER_MAX;
	lim->max_body = (size_t)cf->keyservice.max_body;
}

static int
ks_start(struct daemon *d)
{
	struct http_limits	lim;
	int			rc;

	ks.d = d;
	ks_limits(&lim, &d->conf);
	if ((rc = http_server_new(&ks.http, d->base, "keyservice", &lim,
	    ks_routes, &ks)) < 0)
		return rc;
	http_server_set_tls(ks.http, d->tls);
	return http_server_listen(ks.http, d->conf.keyservice.listen);
}

static int
ks_reload(struct daemon *d, const struct amanat_conf *ncf)
{
	struct http_limits	lim;

	ks_limits(&lim, ncf);
	http_server_set_limits(ks.http, &lim);
	http_server_set_tls(ks.http, d->tls);
	return 0;
}

static void
ks_stop(struct daemon *d)
{
	http_server_free(&ks.http);
}

static const struct daemon_ops ks_ops = {
	.name = "keyservice",
	.init = ks_node_init,
	.start = ks_start,
	.reload = ks_reload,
	.stop = ks_stop,
};

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, &ks_ops, &ks);
}
