/*
 * daemon.h -- what every Amanat daemon does the same way.
 *
 *	<daemon> [-d] [-n] [-c file] [--init [--demo]]
 *
 * -c the node configuration (default /etc/amanat/amanat.conf); -n check the
 * configuration and the files it names, print "configuration OK" and exit
 * 0, or print "file:line: message" and exit 2; -d log at debug level;
 * --init (daemons with an init hook) create what the node needs and exit;
 * --demo with it also creates the demo node's departments and users.
 *
 * daemon_main() loads the config, sets up logging, builds the server TLS
 * context from [tls], runs ops->start, then the event loop until SIGTERM
 * or SIGINT (clean shutdown: ops->stop, then exit 0).  SIGHUP reloads the
 * config: if the new file is valid, the TLS context and the reloadable
 * knobs are applied by ops->reload; listen addresses need a restart.
 */
#ifndef COMMON_DAEMON_H
#define COMMON_DAEMON_H

#include <event2/event.h>
#include <openssl/ssl.h>

#include "common/conf.h"
#include "common/http.h"

#define DAEMON_EXIT_CONFIG	2
#define DAEMON_EXIT_USAGE	64
#define DAEMON_DEFAULT_CONF	"/etc/amanat/amanat.conf"

struct daemon;

struct daemon_ops {
	const char	*name;
	/* enum tls_verify for its listeners: keyservice requires mTLS. */
	int		 tls_verify;
	/* Optional (--init): create keys, certificates, directories. */
	int		(*init)(struct daemon *);
	/* Bind listeners, open stores.  d->tls is ready. */
	int		(*start)(struct daemon *);
	/*
	 * Apply a new, valid config (d->conf still holds the old one and
	 * d->tls the new context).  Return < 0 to keep the old config.
	 */
	int		(*reload)(struct daemon *, const struct amanat_conf *);
	/* Close listeners and connections, flush stores. */
	void		(*stop)(struct daemon *);
};

struct daemon {
	const struct daemon_ops	*ops;
	struct event_base	*base;
	struct amanat_conf	 conf;
	SSL_CTX			*tls;	/* server context from [tls] */
	void			*arg;
	int			 debug;
	int			 demo;	/* --init --demo: demo directory */
	struct event		*sigev[3];
};

int	daemon_main(int, char **, const struct daemon_ops *, void *);
/* Build the [tls] server context; verify is enum tls_verify. */
int	daemon_tls_ctx(SSL_CTX **, const struct amanat_conf *, int);
/* Limits of an HTTPS API from its section's knobs. */
void	daemon_http_limits(struct http_limits *, const struct conf_httpd *);
/*
 * Create an HTTPS API server on the daemon's loop and TLS context,
 * listening per the section's knobs.
 */
int	daemon_http_start(struct http_server **, struct daemon *,
	    const struct conf_httpd *, const struct http_route *, void *);
/* SIGHUP: apply new limits and the new TLS context. */
void	daemon_http_reload(struct http_server *, struct daemon *,
	    const struct conf_httpd *);
/* Data directory of this daemon: <datadir>/<name>, created 0700. */
char	*daemon_datadir(struct daemon *);

#endif
