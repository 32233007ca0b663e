/*
 * cmd_dir.c -- the CLI's directory commands: departments and users.
 *
 *	dept add NAME --domain D [--domain D ...] [--display-name TEXT]
 *	dept list
 *	user add ADDRESS [--name TEXT] [--role ROLE ...] [--password-stdin]
 *	user list [--dept NAME]
 *	user show ADDRESS
 *	user passwd ADDRESS [--password-stdin]
 *	user suspend ADDRESS | user activate ADDRESS
 *	user delete ADDRESS
 *
 * Each is one request to the keyservice API (docs/keyservice-api.md);
 * the answer is printed as a table or record, or as JSON with --json.
 *
 * Runs in: the admin's shell.
 * Failure policy: API refusals are reported with the API's message and
 * exit 1; nothing is retried.
 * SECURITY: a password given with --password-stdin is read from stdin,
 * never argv; a generated one is printed once, on stdout, and every
 * copy the CLI holds is wiped (the JSON allocator wipes on free).
 */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "keyservice/cli/cli.h"

static const char *const cli_user_fields[] = { "address", "dept",
    "display_name", "roles", "status", "created", "updated", NULL };
static const char *const cli_dept_fields[] = { "name", "display_name",
    "domains", "created", NULL };

/* Print a JSON record: the API's JSON, or its fields. */
static void
cli__record(const struct cli_ctx *ctx, const json_t *v,
    const char *const *fields)
{
	if (ctx->cmd->json)
		cli_print_json(stdout, v);
	else
		cli_print_fields(stdout, v, fields);
}

static int
cli__bad_target(void)
{
	fprintf(stderr, "amanat: %s\n", err_msg());
	return CLI_EXIT_USAGE;
}

/* A table of the named fields of each element of arr. */
static void
cli__list(const json_t *arr, const char *const *hdr,
    const char *const *fields, size_t n)
{
	struct cli_table	*t = cli_table_new(n, hdr);
	char			 cells[8][512];
	const char		*row[8];
	const json_t		*e;
	size_t			 i, k;

	json_array_foreach(arr, i, e) {
		for (k = 0; k < n && k < 8; k++) {
			cli_fmt_value(cells[k], sizeof(cells[k]),
			    json_object_get(e, fields[k]),
			    strcmp(fields[k], "created") == 0);
			row[k] = cells[k];
		}
		cli_table_add(t, row);
	}
	cli_table_print(t, stdout);
	cli_table_free(&t);
}

/* ------------------------------------------------------------ depts */

static int
cli__dept_add(struct cli_ctx *ctx)
{
	const struct cli_cmd	*cmd = ctx->cmd;
	json_t			*body, *doms, *out;
	size_t			 i;
	int			 rc;

	doms = json_array();
	for (i = 0; i < cmd->ndomains; i++)
		json_array_append_new(doms, json_string(cmd->domains[i]));
	body = json_pack("{s:s,s:o}", "name", cmd->arg, "domains", doms);
	if (body == NULL) {
		fprintf(stderr, "amanat: arguments must be UTF-8\n");
		return CLI_EXIT_USAGE;
	}
	if (cmd->display_name != NULL)
		json_object_set_new(body, "display_name",
		    json_string(cmd->display_name));
	rc = cli_call(&out, ctx, "POST", "/v1/depts", body);
	json_decref(body);
	if (rc != 0)
		return rc;
	cli__record(ctx, out, cli_dept_fields);
	json_decref(out);
	return CLI_EXIT_OK;
}

static int
cli__dept_list(struct cli_ctx *ctx)
{
	static const char *const hdr[] = { "NAME", "DISPLAY NAME", "DOMAINS",
	    "CREATED" };
	json_t	*out;
	int	 rc;

	if ((rc = cli_call(&out, ctx, "GET", "/v1/depts", NULL)) != 0)
		return rc;
	if (ctx->cmd->json)
		cli_print_json(stdout, out);
	else
		cli__list(json_object_get(out, "depts"), hdr,
		    cli_dept_fields, 4);
	json_decref(out);
	return CLI_EXIT_OK;
}

int
cli_cmd_dept(struct cli_ctx *ctx)
{
	switch (ctx->cmd->verb) {
	case CLI_DEPT_ADD:
		return cli__dept_add(ctx);
	case CLI_DEPT_LIST:
		return cli__dept_list(ctx);
	default:
		return CLI_EXIT_USAGE;
	}
}

/* ------------------------------------------------------------ users */

/*
 * Put the password from stdin (or the terminal) into body, if the
 * command asked for one; the generated-password case sends none.
 */
static int
cli__password(json_t *body, const struct cli_cmd *cmd)
{
	char	pw[CLI_SECRET_MAX + 2];
	json_t	*v;
	int	 rc;

	if (!cmd->password_stdin)
		return 0;
	if ((rc = cli_read_secret(pw, sizeof(pw), 1, "password", 1)) < 0) {
		fprintf(stderr, "amanat: %s\n", err_msg());
		return CLI_EXIT_USAGE;
	}
	v = json_string(pw);
	explicit_bzero(pw, sizeof(pw));
	if (v == NULL) {
		fprintf(stderr, "amanat: the password must be UTF-8\n");
		return CLI_EXIT_USAGE;
	}
	json_object_set_new(body, "password", v);
	return 0;
}

/* The generated password, shown once. */
static void
cli__show_password(const json_t *out, const char *addr)
{
	const char	*pw = json_string_value(json_object_get(out,
	    "password"));

	if (pw == NULL)
		return;
	printf("password:     %s\n", pw);
	fprintf(stderr, "amanat: the generated password for %s is shown "
	    "once; hand it over securely\n", addr);
}

static int
cli__user_add(struct cli_ctx *ctx)
{
	const struct cli_cmd	*cmd = ctx->cmd;
	json_t			*body, *roles, *out;
	size_t			 i;
	int			 rc;

	if ((body = json_pack("{s:s}", "address", cmd->arg)) == NULL) {
		fprintf(stderr, "amanat: arguments must be UTF-8\n");
		return CLI_EXIT_USAGE;
	}
	if (cmd->display_name != NULL)
		json_object_set_new(body, "display_name",
		    json_string(cmd->display_name));
	if (cmd->nroles > 0) {
		roles = json_array();
		for (i = 0; i < cmd->nroles; i++)
			json_array_append_new(roles,
			    json_string(cmd->roles[i]));
		json_object_set_new(body, "roles", roles);
	}
	if ((rc = cli__password(body, cmd)) == 0)
		rc = cli_call(&out, ctx, "POST", "/v1/users", body);
	json_decref(body);
	if (rc != 0)
		return rc;
	if (cmd->json)
		cli_print_json(stdout, out);
	else {
		cli_print_fields(stdout, out, cli_user_fields);
		cli__show_password(out, cmd->arg);
	}
	json_decref(out);
	return CLI_EXIT_OK;
}

static int
cli__user_list(struct cli_ctx *ctx)
{
	static const char *const hdr[] = { "ADDRESS", "DEPT", "NAME",
	    "ROLES", "STATUS", "CREATED" };
	static const char *const fields[] = { "address", "dept",
	    "display_name", "roles", "status", "created" };
	char	 target[CLI_PATH_MAX];
	json_t	*out;
	int	 rc;

	if (ctx->cmd->dept == NULL)
		snprintf(target, sizeof(target), "/v1/users");
	else if (cli_target(target, sizeof(target), "/v1/users?dept=",
	    ctx->cmd->dept, NULL) < 0)
		return cli__bad_target();
	if ((rc = cli_call(&out, ctx, "GET", target, NULL)) != 0)
		return rc;
	if (ctx->cmd->json)
		cli_print_json(stdout, out);
	else
		cli__list(json_object_get(out, "users"), hdr, fields, 6);
	json_decref(out);
	return CLI_EXIT_OK;
}

static int
cli__user_passwd(struct cli_ctx *ctx, const char *target)
{
	const struct cli_cmd	*cmd = ctx->cmd;
	json_t			*body = json_object(), *out;
	int			 rc;

	if ((rc = cli__password(body, cmd)) == 0)
		rc = cli_call(&out, ctx, "POST", target, body);
	json_decref(body);
	if (rc != 0)
		return rc;
	if (cmd->json)
		cli_print_json(stdout, out);
	else if (json_object_get(out, "password") != NULL) {
		printf("address:      %s\n", cmd->arg);
		cli__show_password(out, cmd->arg);
	} else
		printf("password changed for %s\n", cmd->arg);
	json_decref(out);
	return CLI_EXIT_OK;
}

/* show, suspend, activate, delete: one request about one user. */
static int
cli__user_one(struct cli_ctx *ctx, const char *method, const char *target,
    json_t *body)
{
	const struct cli_cmd	*cmd = ctx->cmd;
	json_t			*out;
	int			 rc;

	rc = cli_call(&out, ctx, method, target, body);
	json_decref(body);
	if (rc != 0)
		return rc;
	if (cmd->json)
		cli_print_json(stdout, out);
	else if (cmd->verb == CLI_USER_DELETE)
		printf("deleted %s\n", json_string_value(json_object_get(out,
		    "deleted")) ?: cmd->arg);
	else
		cli_print_fields(stdout, out, cli_user_fields);
	json_decref(out);
	return CLI_EXIT_OK;
}

int
cli_cmd_user(struct cli_ctx *ctx)
{
	const struct cli_cmd	*cmd = ctx->cmd;
	char			 target[CLI_PATH_MAX];

	if (cmd->verb == CLI_USER_ADD)
		return cli__user_add(ctx);
	if (cmd->verb == CLI_USER_LIST)
		return cli__user_list(ctx);
	if (cli_target(target, sizeof(target), "/v1/users/", cmd->arg,
	    cmd->verb == CLI_USER_PASSWD ? "/password" : NULL) < 0)
		return cli__bad_target();
	switch (cmd->verb) {
	case CLI_USER_SHOW:
		return cli__user_one(ctx, "GET", target, NULL);
	case CLI_USER_PASSWD:
		return cli__user_passwd(ctx, target);
	case CLI_USER_SUSPEND:
		return cli__user_one(ctx, "PATCH", target,
		    json_pack("{s:s}", "status", "suspended"));
	case CLI_USER_ACTIVATE:
		return cli__user_one(ctx, "PATCH", target,
		    json_pack("{s:s}", "status", "active"));
	case CLI_USER_DELETE:
		return cli__user_one(ctx, "DELETE", target, NULL);
	default:
		return CLI_EXIT_USAGE;
	}
}
