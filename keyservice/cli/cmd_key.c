/*
 * cmd_key.c -- the CLI's key commands (key ids are department names).
 *
 *	key rotate KEY_ID	new KEK version; data keys wrapped under
 *				older versions still unwrap
 *	key show KEY_ID		the versions, when each was made, its uses
 *
 * Runs in: the admin's shell.
 * Failure policy: API refusals exit 1 with the API's message.
 * SECURITY: no key material passes through here, only ids and versions.
 */
#include <stdio.h>

#include "common/err.h"
#include "keyservice/cli/cli.h"

static void
cli__versions(const json_t *out)
{
	static const char *const hdr[] = { "VERSION", "CREATED", "USES" };
	struct cli_table	*t = cli_table_new(3, hdr);
	const json_t		*v;
	char			 ver[32], created[64], uses[32];
	const char		*row[] = { ver, created, uses };
	size_t			 i;

	json_array_foreach(json_object_get(out, "versions"), i, v) {
		cli_fmt_value(ver, sizeof(ver), json_object_get(v, "version"),
		    0);
		cli_fmt_value(created, sizeof(created), json_object_get(v,
		    "created"), 1);
		cli_fmt_value(uses, sizeof(uses), json_object_get(v, "uses"),
		    0);
		cli_table_add(t, row);
	}
	printf("key %s\n", json_string_value(json_object_get(out,
	    "key_id")) ?: "?");
	cli_table_print(t, stdout);
	cli_table_free(&t);
}

int
cli_cmd_key(struct cli_ctx *ctx)
{
	const struct cli_cmd	*cmd = ctx->cmd;
	char			 target[CLI_PATH_MAX];
	json_t			*out;
	int			 rc, rotate = cmd->verb == CLI_KEY_ROTATE;

	if (cli_target(target, sizeof(target), "/v1/keys/", cmd->arg,
	    rotate ? "/rotate" : NULL) < 0) {
		fprintf(stderr, "amanat: %s\n", err_msg());
		return CLI_EXIT_USAGE;
	}
	if ((rc = cli_call(&out, ctx, rotate ? "POST" : "GET", target,
	    NULL)) != 0)
		return rc;
	if (cmd->json)
		cli_print_json(stdout, out);
	else if (rotate)
		printf("key %s rotated: new version %lld\n", cmd->arg,
		    (long long)json_integer_value(json_object_get(out,
		    "version")));
	else
		cli__versions(out);
	json_decref(out);
	return CLI_EXIT_OK;
}
