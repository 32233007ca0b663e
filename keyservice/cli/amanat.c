/*
 * amanat.c -- the node's admin CLI.
 *
 *	amanat [-c file] [--json] status
 *
 * status: connects to every service of the node over TLS, verifying the
 * node CA ([tls] ca), and reports whether each answers its protocol
 * (HTTPS GET /healthz, the SMTP 220 greeting, the IMAP OK greeting).
 * Exit 0 when all are up, 1 otherwise, 2 on a bad config, 64 on usage.
 *
 * Directory, certificate, key and audit commands come with their issues;
 * they talk to the running daemons' APIs, never to their files.
 *
 * Runs in: the admin's shell.
 * Failure policy: every failure is reported per service; nothing retried.
 * SECURITY: the server chain is verified against the node CA and the
 * certificate name is checked against the host connected to.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/conf.h"
#include "common/err.h"
#include "common/tls.h"
#include "common/util.h"

#define CLI_EXIT_FAIL	1
#define CLI_EXIT_CONFIG	2
#define CLI_EXIT_USAGE	64
#define CLI_REPLY_MAX	4096

enum probe_kind { PROBE_HTTPS, PROBE_SMTP, PROBE_IMAP };

struct probe {
	const char	*service;
	const char	*addr;
	enum probe_kind	 kind;
	int		 ok;
	char		 detail[256];
};

static void
usage(void)
{
	fprintf(stderr, "usage: amanat [-c file] [--json] status\n");
	exit(CLI_EXIT_USAGE);
}

/* Read until a line ending arrives or max bytes; returns bytes read. */
static int
read_some(BIO *b, char *buf, size_t max)
{
	size_t	n = 0;
	int	r;

	while (n + 1 < max) {
		r = BIO_read(b, buf + n, (int)(max - 1 - n));
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL ||
		    (buf[0] != 'H' && strchr(buf, '\n') != NULL))
			break;
	}
	buf[n] = '\0';
	return (int)n;
}

static void
probe_run(struct probe *p, SSL_CTX *ctx)
{
	BIO	*b = NULL;
	SSL	*ssl = NULL;
	char	 host[256], reply[CLI_REPLY_MAX], *colon;
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n"
	    "Connection: close\r\n\r\n";

	snprintf(host, sizeof(host), "%s", p->addr);
	if ((colon = strrchr(host, ':')) != NULL)
		*colon = '\0';
	if ((b = BIO_new_ssl_connect(ctx)) == NULL)
		goto tlsfail;
	BIO_get_ssl(b, &ssl);
	SSL_set_tlsext_host_name(ssl, host);
	/* an IP address is checked against IP SANs, a name against DNS */
	if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host))
		SSL_set1_host(ssl, host);
	BIO_set_conn_hostname(b, p->addr);
	if (BIO_do_connect(b) <= 0 || BIO_do_handshake(b) <= 0)
		goto tlsfail;
	if (p->kind == PROBE_HTTPS)
		BIO_write(b, req, sizeof(req) - 1);
	read_some(b, reply, sizeof(reply));
	reply[strcspn(reply, "\r\n")] = '\0';
	switch (p->kind) {
	case PROBE_HTTPS:
		p->ok = strncmp(reply, "HTTP/1.1 200", 12) == 0;
		break;
	case PROBE_SMTP:
		p->ok = strncmp(reply, "220 ", 4) == 0;
		break;
	case PROBE_IMAP:
		p->ok = strncmp(reply, "* OK", 4) == 0;
		break;
	}
	snprintf(p->detail, sizeof(p->detail), "%s: %.120s",
	    SSL_get_version(ssl), reply[0] ? reply : "(no reply)");
	BIO_free_all(b);
	return;
tlsfail:
	tls_error(p->addr);
	snprintf(p->detail, sizeof(p->detail), "%s", err_msg());
	BIO_free_all(b);
}

static int
cmd_status(const struct amanat_conf *cf, int json)
{
	struct probe	 probes[] = {
		{ "keyservice", cf->keyservice.http.listen, PROBE_HTTPS, 0, "" },
		{ "docstore", cf->docstore.http.listen, PROBE_HTTPS, 0, "" },
		{ "smtps", cf->mailsrv.smtps_listen, PROBE_SMTP, 0, "" },
		{ "imaps", cf->mailsrv.imaps_listen, PROBE_IMAP, 0, "" },
	};
	struct tls_opts	 o;
	SSL_CTX		*ctx;
	json_t		*arr;
	size_t		 i;
	int		 all = 1;

	memset(&o, 0, sizeof(o));
	o.ca = cf->tls.ca;
	o.verify = TLS_VERIFY_REQUIRE;
	if (tls_client_ctx_new(&ctx, &o) < 0) {
		fprintf(stderr, "amanat: %s\n", err_msg());
		return CLI_EXIT_FAIL;
	}
	for (i = 0; i < nitems(probes); i++) {
		probe_run(&probes[i], ctx);
		all &= probes[i].ok;
	}
	SSL_CTX_free(ctx);
	if (json) {
		arr = json_array();
		for (i = 0; i < nitems(probes); i++)
			json_array_append_new(arr, json_pack("{s:s,s:s,s:b,s:s}",
			    "service", probes[i].service, "address",
			    probes[i].addr, "up", probes[i].ok, "detail",
			    probes[i].detail));
		json_dumpf(arr, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(arr);
	} else {
		printf("%-12s %-22s %-5s %s\n", "SERVICE", "ADDRESS", "UP",
		    "DETAIL");
		for (i = 0; i < nitems(probes); i++)
			printf("%-12s %-22s %-5s %s\n", probes[i].service,
			    probes[i].addr, probes[i].ok ? "yes" : "no",
			    probes[i].detail);
	}
	return all ? 0 : CLI_EXIT_FAIL;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct amanat_conf	 cf;
	const char		*path = getenv("AMANAT_CONF");
	int			 ch, json = 0, rc;

	if (path == NULL)
		path = "/etc/amanat/amanat.conf";
	while ((ch = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'j':
			json = 1;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 1 || strcmp(argv[0], "status") != 0)
		usage();
	if (conf_load(&cf, path) < 0) {
		fprintf(stderr, "%s\n", err_msg());
		return CLI_EXIT_CONFIG;
	}
	rc = cmd_status(&cf, json);
	conf_free(&cf);
	return rc;
}
