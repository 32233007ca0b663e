/*
 * main.c -- keyservice: the node's root of trust, an HTTPS JSON API.
 *
 * Runs in: the keyservice process (one event loop).
 * Implemented so far (foundation): node init (--init) and GET /healthz.
 * The directory, key hierarchy and CA API come with the keyservice issue.
 * Failure policy: a listener that cannot be bound fails the start.
 * SECURITY: TLS from common/tls; private keys never leave this process.
 */
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

static int
ks_start(struct daemon *d)
{
	ks.d = d;
	return daemon_http_start(&ks.http, d, &d->conf.keyservice.http,
	    ks_routes, &ks);
}

static int
ks_reload(struct daemon *d, const struct amanat_conf *ncf)
{
	daemon_http_reload(ks.http, d, &ncf->keyservice.http);
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
