/*
 * daemon.c -- argument parsing, config, logging, signals, event loop.
 *
 * Runs in: each daemon's main thread.
 * Failure policy: a bad config exits 2 with "file:line: message"; a start
 * failure exits 1; a bad config on SIGHUP is logged and the old one kept.
 * SECURITY: secret files named by the config are checked (0600) before
 * anything is opened; SIGPIPE is ignored.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/daemon.h"
#include "common/err.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/xmalloc.h"

/*
 * glibc's allocator defaults cost a busy daemon's worker threads dearly:
 * a thread arena gives its free top back with madvise(MADV_DONTNEED) as
 * soon as it passes the trim threshold, so the next zlib stream or
 * message buffer (a few hundred KiB, allocated and freed per message)
 * faults in and zeroes fresh pages each time; measured on the SMTP
 * accept path, page faults, madvise and the zeroing took about a fifth
 * of mailsrv's CPU.  Memory freed below DAEMON_TRIM stays with the
 * process for the next message; blocks from DAEMON_MMAP up (big
 * messages) are still mapped and unmapped on their own.
 */
#define DAEMON_TRIM	(64 * 1024 * 1024)
#define DAEMON_MMAP	(4 * 1024 * 1024)

static void
daemon_malloc_tune(void)
{
	/* only an optimization: another allocator (a sanitizer's) says no */
	(void)mallopt(M_TRIM_THRESHOLD, DAEMON_TRIM);
	(void)mallopt(M_MMAP_THRESHOLD, DAEMON_MMAP);
}

static void
usage(const char *name, int init)
{
	fprintf(stderr, "usage: %s [-d] [-n] [-c file]%s\n", name,
	    init ? " [--init [--demo]]" : "");
	exit(DAEMON_EXIT_USAGE);
}

int
daemon_tls_ctx(SSL_CTX **out, const struct amanat_conf *cf, int verify)
{
	struct tls_opts	o;

	memset(&o, 0, sizeof(o));
	o.cert = cf->tls.cert;
	o.key = cf->tls.key;
	o.ca = cf->tls.ca;
	o.ciphers = cf->tls.ciphers;
	o.ciphersuites = cf->tls.ciphersuites;
	o.min_version = cf->tls.min_version;
	o.verify = verify;
	return tls_server_ctx_new(out, &o);
}

void
daemon_http_limits(struct http_limits *lim, const struct conf_httpd *h)
{
	memset(lim, 0, sizeof(*lim));
	lim->net.max_conns = (unsigned)h->max_connections;
	lim->net.idle_ms = (unsigned)h->idle_timeout;
	lim->net.out_max = (size_t)h->output_limit;
	lim->max_header = HTTP_HEADER_MAX;
	lim->max_body = (size_t)h->max_body;
}

int
daemon_http_start(struct http_server **out, struct daemon *d,
    const struct conf_httpd *h, const struct http_route *routes, void *arg)
{
	struct http_limits	lim;
	int			rc;

	daemon_http_limits(&lim, h);
	if ((rc = http_server_new(out, d->base, d->ops->name, &lim, routes,
	    arg)) < 0)
		return rc;
	http_server_set_tls(*out, d->tls);
	return http_server_listen(*out, h->listen);
}

void
daemon_http_reload(struct http_server *srv, struct daemon *d,
    const struct conf_httpd *h)
{
	struct http_limits	lim;

	daemon_http_limits(&lim, h);
	http_server_set_limits(srv, &lim);
	http_server_set_tls(srv, d->tls);
}

char *
daemon_datadir(struct daemon *d)
{
	char	*dir;

	xasprintf(&dir, "%s/%s", d->conf.node.datadir, d->ops->name);
	if (mkdir_p(dir, 0700) < 0) {
		log_warnx("%s", err_msg());
		free(dir);
		return NULL;
	}
	return dir;
}

static void
daemon_reload(struct daemon *d)
{
	struct amanat_conf	 ncf;
	SSL_CTX			*nctx = NULL, *octx;

	log_info("%s reload path=%s", d->ops->name, d->conf.path);
	if (conf_load(&ncf, d->conf.path) < 0 || conf_check_files(&ncf) < 0) {
		log_warnx("%s reload refused: %s", d->ops->name, err_msg());
		conf_free(&ncf);
		return;
	}
	if (daemon_tls_ctx(&nctx, &ncf, d->ops->tls_verify) < 0) {
		log_warnx("%s reload refused: %s", d->ops->name, err_msg());
		conf_free(&ncf);
		return;
	}
	octx = d->tls;
	d->tls = nctx;
	if (d->ops->reload != NULL && d->ops->reload(d, &ncf) < 0) {
		log_warnx("%s reload refused: %s", d->ops->name, err_msg());
		d->tls = octx;
		SSL_CTX_free(nctx);
		conf_free(&ncf);
		return;
	}
	SSL_CTX_free(octx);
	conf_free(&d->conf);
	d->conf = ncf;
	log_setlevel(d->debug ? LOG_LVL_DEBUG : d->conf.node.log_level);
	log_info("%s reloaded", d->ops->name);
}

static void
daemon_signal(evutil_socket_t sig, short ev, void *arg)
{
	struct daemon	*d = arg;

	switch (sig) {
	case SIGHUP:
		daemon_reload(d);
		break;
	default:
		log_info("%s stopping signal=%d", d->ops->name, (int)sig);
		event_base_loopbreak(d->base);
		break;
	}
}

static int
daemon_load(struct daemon *d, const char *path, int check_files)
{
	if (conf_load(&d->conf, path) < 0 ||
	    (check_files && conf_check_files(&d->conf) < 0)) {
		fprintf(stderr, "%s\n", err_msg());
		conf_free(&d->conf);
		return -1;
	}
	return 0;
}

int
daemon_main(int argc, char **argv, const struct daemon_ops *ops, void *arg)
{
	static const struct option longopts[] = {
		{ "init", no_argument, NULL, 'I' },
		{ "demo", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const int	 sigs[] = { SIGTERM, SIGINT, SIGHUP };
	struct daemon		 d;
	const char		*path = DAEMON_DEFAULT_CONF;
	int			 ch, check = 0, init = 0, rc;
	size_t			 i;

	memset(&d, 0, sizeof(d));
	d.ops = ops;
	d.arg = arg;
	daemon_malloc_tune();
	while ((ch = getopt_long(argc, argv, "c:dnh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'd':
			d.debug = 1;
			break;
		case 'n':
			check = 1;
			break;
		case 'I':
			if (ops->init == NULL)
				usage(ops->name, 0);
			init = 1;
			break;
		case 'D':
			d.demo = 1;
			break;
		default:
			usage(ops->name, ops->init != NULL);
		}
	}
	if (optind != argc || (d.demo && !init))
		usage(ops->name, ops->init != NULL);

	signal(SIGPIPE, SIG_IGN);
	log_init(ops->name, LOG_LVL_INFO, LOG_TO_STDERR);
	if (daemon_load(&d, path, !init) < 0)
		return DAEMON_EXIT_CONFIG;
	if (check) {
		printf("%s: configuration OK\n", path);
		conf_free(&d.conf);
		return 0;
	}
	log_init(ops->name, d.debug ? LOG_LVL_DEBUG : d.conf.node.log_level,
	    LOG_TO_STDERR | (d.conf.node.log_syslog ? LOG_TO_SYSLOG : 0));
	if (init) {
		rc = ops->init(&d);
		conf_free(&d.conf);
		if (rc < 0)
			log_error("%s init failed: %s", ops->name, err_msg());
		return rc < 0 ? 1 : 0;
	}

	if ((d.base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	if (daemon_tls_ctx(&d.tls, &d.conf, ops->tls_verify) < 0) {
		log_error("%s tls: %s", ops->name, err_msg());
		return 1;
	}
	for (i = 0; i < nitems(sigs); i++) {
		d.sigev[i] = evsignal_new(d.base, sigs[i], daemon_signal, &d);
		evsignal_add(d.sigev[i], NULL);
	}
	if (ops->start(&d) < 0) {
		log_error("%s start failed: %s", ops->name, err_msg());
		if (ops->stop != NULL)
			ops->stop(&d);
		rc = 1;
		goto done;
	}
	log_info("%s started node=%s datadir=%s pid=%d", ops->name,
	    d.conf.node.name, d.conf.node.datadir, (int)getpid());
	event_base_dispatch(d.base);
	rc = 0;
	if (ops->stop != NULL)
		ops->stop(&d);
	log_info("%s stopped", ops->name);
done:
	for (i = 0; i < nitems(sigs); i++)
		event_free(d.sigev[i]);
	SSL_CTX_free(d.tls);
	event_base_free(d.base);
	conf_free(&d.conf);
	return rc;
}
