/*
 * cmd_status.c -- the CLI's node-level commands.
 *
 *	status		connect to every service of the node over TLS,
 *			verifying the node CA ([tls] ca) and the name or IP
 *			connected to, and check that each answers its
 *			protocol: keyservice and docstore GET /healthz
 *			(keyservice with the client certificate, as it
 *			requires mutual TLS), the SMTP 220 and IMAP OK
 *			greetings.  Exit 0 when all are up, 1 otherwise.
 *	init [--demo]	run <dir of amanat>/keyservice -c FILE --init
 *			[--demo], the only local operation, and say what
 *			it created.
 *
 * Runs in: the admin's shell.
 * Failure policy: status reports every service, never stopping at the
 * first one down; init passes keyservice's own messages through and
 * fails (1) when it does.
 * SECURITY: status verifies every server as the API client does; init
 * runs the keyservice binary next to this one, never one from $PATH.
 */
#include <sys/wait.h>

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/err.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "keyservice/cli/cli.h"

#define CLI_GREETING_MAX	4096

enum probe_kind { PROBE_HTTPS, PROBE_SMTP, PROBE_IMAP };

struct probe {
	const char	*service;
	const char	*addr;
	enum probe_kind	 kind;
	SSL_CTX		*ctx;
	int		 ok;
	char		 detail[256];
};

/* Read until a blank line (HTTP) or a first line ends, or max bytes. */
static size_t
cli__greeting(SSL *ssl, char *buf, size_t max, int http)
{
	size_t	n = 0;
	int	r;

	buf[0] = '\0';
	while (n + 1 < max) {
		if ((r = SSL_read(ssl, buf + n, (int)(max - 1 - n))) <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
		if ((http && strstr(buf, "\r\n\r\n") != NULL) ||
		    (!http && strchr(buf, '\n') != NULL))
			break;
	}
	return n;
}

static void
cli__probe(struct probe *p)
{
	struct cli_conn	 c;
	struct buf	 req;
	char		 reply[CLI_GREETING_MAX];
	int		 http = p->kind == PROBE_HTTPS;

	if (p->ctx == NULL)
		return;		/* detail says why */
	if (cli_conn_open(&c, p->ctx, p->addr) < 0) {
		snprintf(p->detail, sizeof(p->detail), "%s", err_msg());
		return;
	}
	buf_init(&req, 1024);
	if (http && buf_printf(&req, "GET /healthz HTTP/1.1\r\nHost: %s\r\n"
	    "Connection: close\r\n\r\n", p->addr) == 0)
		(void)SSL_write(c.ssl, req.data, (int)req.len);
	buf_free(&req);
	cli__greeting(c.ssl, reply, sizeof(reply), http);
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
	    SSL_get_version(c.ssl), reply[0] ? reply : "(no reply)");
	cli_conn_close(&c);
}

static void
cli__status_print(const struct cli_cmd *cmd, struct probe *probes,
    size_t n)
{
	struct cli_table	*t;
	json_t			*arr;
	size_t			 i;
	static const char *const hdr[] = { "SERVICE", "ADDRESS", "UP",
	    "DETAIL" };

	if (cmd->json) {
		arr = json_array();
		for (i = 0; i < n; i++)
			json_array_append_new(arr, json_pack(
			    "{s:s,s:s,s:b,s:s}", "service", probes[i].service,
			    "address", probes[i].addr, "up", probes[i].ok,
			    "detail", probes[i].detail));
		cli_print_json(stdout, arr);
		json_decref(arr);
		return;
	}
	t = cli_table_new(4, hdr);
	for (i = 0; i < n; i++) {
		const char *row[] = { probes[i].service, probes[i].addr,
		    probes[i].ok ? "yes" : "no", probes[i].detail };

		cli_table_add(t, row);
	}
	cli_table_print(t, stdout);
	cli_table_free(&t);
}

int
cli_cmd_status(const struct cli_cmd *cmd, const struct amanat_conf *cf)
{
	struct probe	 probes[] = {
		{ "keyservice", cf->keyservice.http.listen, PROBE_HTTPS, NULL,
		    0, "" },
		{ "docstore", cf->docstore.http.listen, PROBE_HTTPS, NULL, 0,
		    "" },
		{ "smtps", cf->mailsrv.smtps_listen, PROBE_SMTP, NULL, 0, "" },
		{ "imaps", cf->mailsrv.imaps_listen, PROBE_IMAP, NULL, 0, "" },
	};
	struct cli_client cl;
	struct tls_opts	 o;
	SSL_CTX		*plain = NULL;
	size_t		 i;
	int		 all = 1;

	memset(&o, 0, sizeof(o));
	o.ca = cf->tls.ca;
	o.verify = TLS_VERIFY_REQUIRE;
	if (tls_client_ctx_new(&plain, &o) < 0) {
		fprintf(stderr, "amanat: %s\n", err_msg());
		return CLI_EXIT_CONFIG;
	}
	/* keyservice wants our client certificate */
	if (cli_client_init(&cl, cf->keyservice.http.listen, cf->tls.ca,
	    cmd->cert ? cmd->cert : cf->cli.cert,
	    cmd->key ? cmd->key : cf->cli.key) < 0)
		snprintf(probes[0].detail, sizeof(probes[0].detail),
		    "client certificate: %s", err_msg());
	probes[0].ctx = cl.ctx;
	for (i = 1; i < nitems(probes); i++)
		probes[i].ctx = plain;
	for (i = 0; i < nitems(probes); i++) {
		cli__probe(&probes[i]);
		all &= probes[i].ok;
	}
	cli__status_print(cmd, probes, nitems(probes));
	cli_client_free(&cl);
	SSL_CTX_free(plain);
	return all ? CLI_EXIT_OK : CLI_EXIT_API;
}

/* ------------------------------------------------------------ init */

/* <directory of this executable>/keyservice */
static int
cli__keyservice_path(char *out, size_t size)
{
	char	self[PATH_MAX];
	ssize_t	n;

	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) < 0) {
		err_set(ERR_IO, "/proc/self/exe: %s", strerror(errno));
		return ERR_IO;
	}
	self[n] = '\0';
	if ((size_t)snprintf(out, size, "%s/keyservice", dirname(self)) >=
	    size) {
		err_set(ERR_TOOBIG, "path of keyservice too long");
		return ERR_TOOBIG;
	}
	if (access(out, X_OK) < 0) {
		err_set(ERR_NOTFOUND, "%s: %s", out, strerror(errno));
		return ERR_NOTFOUND;
	}
	return 0;
}

static void
cli__init_report(const struct cli_cmd *cmd, const struct amanat_conf *cf)
{
	char	*demo = path_join(cf->node.datadir, "demo-users.txt");
	json_t	*o;

	o = json_pack("{s:b,s:s,s:s,s:s,s:s,s:s,s:s}", "initialised", 1,
	    "config", cf->path, "datadir", cf->node.datadir, "ca", cf->tls.ca,
	    "server_cert", cf->tls.cert, "admin_cert", cf->cli.cert,
	    "admin_key", cf->cli.key);
	if (cmd->demo)
		json_object_set_new(o, "demo_users", json_string(demo));
	if (cmd->json)
		cli_print_json(stdout, o);
	else {
		printf("node initialised in %s\n", cf->node.datadir);
		cli_print_fields(stdout, o, (const char *const[]){ "ca",
		    "server_cert", "admin_cert", "admin_key", "demo_users",
		    NULL });
		printf("next: start keyservice (and the other daemons), "
		    "then run: amanat -c %s status\n", cf->path);
	}
	json_decref(o);
	free(demo);
}

int
cli_cmd_init(const struct cli_cmd *cmd, const struct amanat_conf *cf)
{
	char	 ks[PATH_MAX];
	char	*argv[] = { ks, "-c", cf->path, "--init", "--demo", NULL };
	pid_t	 pid;
	int	 st;

	if (!cmd->demo)
		argv[4] = NULL;
	if (cli__keyservice_path(ks, sizeof(ks)) < 0) {
		fprintf(stderr, "amanat: %s\n", err_msg());
		return CLI_EXIT_CONFIG;
	}
	fprintf(stderr, "amanat: running %s -c %s --init%s\n", ks, cf->path,
	    cmd->demo ? " --demo" : "");
	fflush(NULL);
	if ((pid = fork()) < 0) {
		fprintf(stderr, "amanat: fork: %s\n", strerror(errno));
		return CLI_EXIT_API;
	}
	if (pid == 0) {
		execv(ks, argv);
		fprintf(stderr, "amanat: %s: %s\n", ks, strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			fprintf(stderr, "amanat: waitpid: %s\n",
			    strerror(errno));
			return CLI_EXIT_API;
		}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "amanat: keyservice --init failed (%s %d)\n",
		    WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ?
		    WEXITSTATUS(st) : WTERMSIG(st));
		return CLI_EXIT_API;
	}
	cli__init_report(cmd, cf);
	return CLI_EXIT_OK;
}
