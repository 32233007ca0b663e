/*
 * main.c -- mailsrv: SMTP (MX, submission, implicit-TLS submission) and
 * IMAP (STARTTLS, implicit TLS) for the node's users.
 *
 * Runs in: the mailsrv process (one event loop).
 * Failure policy: listeners that cannot be bound fail the start (exit 1).
 * SECURITY: every listener shares the node TLS policy (common/tls) and the
 * connection limits of common/net.
 */
#include <stdlib.h>

#include "common/daemon.h"
#include "common/err.h"
#include "common/log.h"
#include "mailsrv/mailsrv.h"

static struct mailsrv	ms;

static int
mailsrv_start(struct daemon *d)
{
	int	rc;

	ms.d = d;
	if ((ms.dir = daemon_datadir(d)) == NULL)
		return ERR_IO;
	if ((rc = worker_pool_new(&ms.workers, d->base,
	    (unsigned)d->conf.mailsrv.workers, 4096)) < 0 ||
	    (rc = smtp_server_start(&ms)) < 0 ||
	    (rc = imap_server_start(&ms)) < 0 ||
	    (rc = mailsrv_link_start(&ms)) < 0 ||
	    (rc = mailsrv_audit_start(&ms)) < 0 ||
	    (rc = mailsrv_api_start(&ms)) < 0)
		return rc;
	return delivery_start(&ms);
}

static int
mailsrv_reload(struct daemon *d, const struct amanat_conf *ncf)
{
	struct net_limits	lim;

	mailsrv_limits(&lim, ncf, 0);
	net_server_set_limits(ms.smtp, &lim);
	net_server_set_tls(ms.smtp, d->tls);
	mailsrv_limits(&lim, ncf, 1);
	net_server_set_limits(ms.imap, &lim);
	net_server_set_tls(ms.imap, d->tls);
	/* the API keeps its mutual-TLS context until a restart */
	return 0;
}

static void
mailsrv_stop(struct daemon *d)
{
	delivery_stop(&ms);
	/* sessions waiting on keyservice or the queue are freed by the
	 * callbacks that keyclient_free and queue_close run */
	net_server_free(&ms.smtp);
	net_server_free(&ms.imap);
	imap_server_stop(&ms);
	mailsrv_api_stop(&ms);
	worker_pool_free(&ms.workers);
	mailsrv_link_stop(&ms);
	mailsrv_audit_stop(&ms);
	delivery_close_store(&ms);
	free(ms.dir);
	ms.dir = NULL;
}

static const struct daemon_ops mailsrv_ops = {
	.name = "mailsrv",
	.start = mailsrv_start,
	.reload = mailsrv_reload,
	.stop = mailsrv_stop,
};

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, &mailsrv_ops, &ms);
}
