/*
 * amanat.c -- the node's admin CLI: main, configuration and dispatch.
 *
 *	amanat [-c FILE] [--json] [--cert FILE --key FILE] COMMAND ...
 *
 * -c names the node config (default $AMANAT_CONF, else
 * /etc/amanat/amanat.conf): [keyservice] listen is the API address,
 * [tls] ca verifies the server, and [cli] cert/key is the client
 * certificate presented unless --cert/--key name another (a dept-admin
 * uses their own).  The commands (args.c lists them) are clients of the
 * keyservice HTTPS API (docs/keyservice-api.md), except status (probes
 * every service), init (runs keyservice --init next to this binary),
 * audit (every daemon's audit API; audit verify-export reads a file and
 * needs no config at all) and mail (mailsrv's admin API at [mailsrv]
 * api_listen).
 *
 * Exit: 0 success; 1 the API refused (4xx/5xx) or a service is down;
 * 2 configuration, certificate or key error; 3 cannot connect, TLS
 * failure or bad response; 64 usage.
 *
 * Runs in: the admin's shell.
 * Failure policy: one "amanat: ..." line on stderr, then the exit status
 * above; nothing is retried.
 * SECURITY: talks to the APIs only, never to the daemons' files; JSON
 * memory is wiped when freed because it may hold passwords.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"
#include "common/err.h"
#include "keyservice/cli/cli.h"

static int
cli__api(const struct cli_cmd *cmd, const struct amanat_conf *cf)
{
	struct cli_ctx	ctx;
	int		rc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.cmd = cmd;
	ctx.cf = cf;
	if (cli_client_init(&ctx.client, cf->keyservice.http.listen,
	    cf->tls.ca, cmd->cert ? cmd->cert : cf->cli.cert,
	    cmd->key ? cmd->key : cf->cli.key) < 0) {
		fprintf(stderr, "amanat: %s\n", err_msg());
		return CLI_EXIT_CONFIG;
	}
	switch (cmd->verb) {
	case CLI_DEPT_ADD:
	case CLI_DEPT_LIST:
		rc = cli_cmd_dept(&ctx);
		break;
	case CLI_KEY_ROTATE:
	case CLI_KEY_SHOW:
		rc = cli_cmd_key(&ctx);
		break;
	default:
		if (strcmp(cmd->group, "user") == 0)
			rc = cli_cmd_user(&ctx);
		else if (strcmp(cmd->group, "cert") == 0)
			rc = cli_cmd_cert(&ctx);
		else
			rc = CLI_EXIT_USAGE;
		break;
	}
	cli_client_free(&ctx.client);
	return rc;
}

int
main(int argc, char **argv)
{
	struct cli_cmd		 cmd;
	struct amanat_conf	 cf;
	const char		*path;
	int			 rc;

	if (cli_parse(&cmd, argc, argv) < 0) {
		fprintf(stderr, "amanat: %s\n", err_msg());
		cli_usage(stderr, cmd.group);
		return CLI_EXIT_USAGE;
	}
	if (cmd.help) {
		cli_usage(stdout, cmd.group);
		return CLI_EXIT_OK;
	}
	cli_json_wiping_alloc();
	signal(SIGPIPE, SIG_IGN);
	if (cmd.verb == CLI_AUDIT_VERIFY_EXPORT) {	/* offline */
		rc = cli_cmd_audit_verify_export(&cmd);
		if (fflush(stdout) != 0 && rc == CLI_EXIT_OK)
			rc = CLI_EXIT_API;
		return rc;
	}
	if ((path = cmd.conf) == NULL && (path = getenv("AMANAT_CONF")) ==
	    NULL)
		path = CLI_DEFAULT_CONF;
	if (conf_load(&cf, path) < 0) {
		fprintf(stderr, "amanat: %s\n", err_msg());
		return CLI_EXIT_CONFIG;
	}
	if (cmd.verb == CLI_STATUS)
		rc = cli_cmd_status(&cmd, &cf);
	else if (cmd.verb == CLI_INIT)
		rc = cli_cmd_init(&cmd, &cf);
	else if (strcmp(cmd.group, "audit") == 0)
		rc = cli_cmd_audit(&cmd, &cf);
	else if (strcmp(cmd.group, "mail") == 0)
		rc = cli_cmd_mail(&cmd, &cf);
	else
		rc = cli__api(&cmd, &cf);
	conf_free(&cf);
	if (fflush(stdout) != 0 && rc == CLI_EXIT_OK)
		rc = CLI_EXIT_API;
	return rc;
}
