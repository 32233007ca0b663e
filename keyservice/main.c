/*
 * main.c -- keyservice: the node's root of trust, an HTTPS JSON API.
 *
 * Runs in: the keyservice process (one event loop).
 * Node init (--init [--demo]), the directory, the key hierarchy, the CA,
 * signing: see docs/keyservice-api.md.  The API requires mutual TLS; the
 * CRL and CA certificate are also served on a plain listener.
 * Failure policy: a listener that cannot be bound fails the start.
 * SECURITY: TLS from common/tls; private keys never leave this process.
 */
#include <string.h>

#include <jansson.h>

#include "common/daemon.h"
#include "common/err.h"
#include "common/http.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/xmalloc.h"
#include "keyservice/api.h"
#include "keyservice/keyservice.h"

static struct keyservice	ks;

#define KS_WORKER_QUEUE		1024
#define KS_CRL_REFRESH_SEC	(24 * 60 * 60)

static void
ks_crl_timer(evutil_socket_t fd, short ev, void *arg)
{
	if (ks_crl_refresh(&ks) < 0)
		log_warnx("keyservice crl refresh failed: %s", err_msg());
}

static int
ks_start(struct daemon *d)
{
	const struct amanat_conf	*cf = &d->conf;
	struct http_limits		 lim;
	struct timeval			 tv = { KS_CRL_REFRESH_SEC, 0 };
	char				 pw[PASSWD_GEN_LEN + 1];
	int				 rc;

	ks.d = d;
	ks_passwd_params(&ks.pw, cf);
	if ((rc = ks_store_open(&ks, cf)) < 0 ||
	    (rc = ks_audit_start(&ks)) < 0)
		return rc;
	if ((ks.throttle = ks_throttle_new(cf)) == NULL) {
		err_set(ERR_INVAL, "bad login throttle settings");
		return ERR_INVAL;
	}
	/* a hash to verify against for unknown users (equal timing) */
	passwd_generate(pw);
	rc = passwd_hash(ks.dummy_hash, sizeof(ks.dummy_hash), pw, strlen(pw),
	    &ks.pw);
	explicit_bzero(pw, sizeof(pw));
	if (rc < 0)
		return rc;
	if ((rc = worker_pool_new(&ks.workers, d->base,
	    (unsigned)cf->keyservice.workers, KS_WORKER_QUEUE)) < 0)
		return rc;
	if ((rc = daemon_http_start(&ks.http, d, &cf->keyservice.http,
	    ks_api_routes, &ks)) < 0)
		return rc;
	daemon_http_limits(&lim, &cf->keyservice.http);
	if ((rc = http_server_new(&ks.pub, d->base, "keyservice-crl", &lim,
	    ks_pub_routes, &ks)) < 0 ||
	    (rc = http_server_listen_plain(ks.pub, cf->keyservice.crl_listen)) < 0)
		return rc;
	ks.crl_timer = event_new(d->base, -1, EV_PERSIST, ks_crl_timer, NULL);
	event_add(ks.crl_timer, &tv);
	return 0;
}

static int
ks_reload(struct daemon *d, const struct amanat_conf *ncf)
{
	struct http_limits	lim;

	daemon_http_reload(ks.http, d, &ncf->keyservice.http);
	daemon_http_limits(&lim, &ncf->keyservice.http);
	http_server_set_limits(ks.pub, &lim);
	return 0;
}

static void
ks_stop(struct daemon *d)
{
	/* pending jobs answer their requests before the servers go */
	worker_pool_free(&ks.workers);
	http_server_free(&ks.http);
	http_server_free(&ks.pub);
	if (ks.crl_timer != NULL)
		event_free(ks.crl_timer);
	ks.crl_timer = NULL;
	throttle_free(&ks.throttle);
	auditsvc_close(&ks.audit);
	free(ks.sign_cert);
	ks.sign_cert = NULL;
	ks_store_close(&ks);
}

static const struct daemon_ops ks_ops = {
	.name = "keyservice",
	.tls_verify = TLS_VERIFY_REQUIRE,
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
