/*
 * mailsrv.h -- shared state of the mail daemon's modules.
 */
#ifndef MAILSRV_MAILSRV_H
#define MAILSRV_MAILSRV_H

#include "common/daemon.h"
#include "common/net.h"

enum smtp_service {
	SMTP_SVC_MX = 0,	/* port 25: inbound, STARTTLS optional */
	SMTP_SVC_SUBMISSION,	/* port 587: STARTTLS required before AUTH */
	SMTP_SVC_SUBMISSIONS,	/* port 465: implicit TLS */
};

struct mailsrv {
	struct daemon		*d;
	struct net_server	*smtp;
	struct net_server	*imap;
};

/* Connection limits of the SMTP (imap = 0) or IMAP (imap = 1) server. */
void	mailsrv_limits(struct net_limits *, const struct amanat_conf *, int);

int	smtp_server_start(struct mailsrv *);
int	imap_server_start(struct mailsrv *);

#endif
