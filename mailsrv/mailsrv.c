/*
 * mailsrv.c -- helpers shared by the SMTP and IMAP servers.
 *
 * Runs in: the mailsrv process.
 * Failure policy: none (pure functions of the config).
 * SECURITY: limits come from validated config knobs only.
 */
#include "mailsrv/mailsrv.h"

void
mailsrv_limits(struct net_limits *lim, const struct amanat_conf *cf,
    int imap)
{
	lim->max_conns = (unsigned)cf->mailsrv.max_connections;
	lim->idle_ms = (unsigned)(imap ? cf->mailsrv.imap_idle_timeout :
	    cf->mailsrv.smtp_idle_timeout);
	lim->out_max = (size_t)cf->mailsrv.output_limit;
}
