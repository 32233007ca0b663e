/*
 * test_cli_args.c -- unit tests for the amanat command line parser.
 *
 * Purpose: global options, every command group, repeated options,
 * options after the positional argument, --client switching cert issue,
 * and the usage errors (unknown command or option, missing argument or
 * required option, extra argument, --cert without --key).
 * Runs in: the unit test binary only (no I/O).
 * Failure policy: cmocka assertions.
 * SECURITY: no option takes a secret: there is none to parse.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "keyservice/cli/cli.h"

#define PARSE(cmd, ...) do {						\
	char *argv_[] = { "amanat", __VA_ARGS__, NULL };		\
	rc = cli_parse((cmd), (int)(sizeof(argv_) / sizeof(argv_[0])) - 1, \
	    argv_);							\
} while (0)

static void
test_cli_args__global_options(void **state)
{
	struct cli_cmd	c;
	int		rc;

	PARSE(&c, "-c", "/tmp/x.conf", "--json", "--cert", "a.pem", "--key",
	    "a.key", "dept", "list");
	assert_int_equal(rc, 0);
	assert_string_equal(c.conf, "/tmp/x.conf");
	assert_int_equal(c.json, 1);
	assert_string_equal(c.cert, "a.pem");
	assert_string_equal(c.key, "a.key");
	assert_int_equal(c.verb, CLI_DEPT_LIST);
	assert_string_equal(c.group, "dept");

	PARSE(&c, "status");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_STATUS);
	assert_null(c.conf);
	assert_int_equal(c.json, 0);

	/* --json is also accepted after the command */
	PARSE(&c, "user", "list", "--json");
	assert_int_equal(rc, 0);
	assert_int_equal(c.json, 1);
}

static void
test_cli_args__unknown_command(void **state)
{
	struct cli_cmd	c;
	int		rc;

	PARSE(&c, "frobnicate");
	assert_int_equal(rc, ERR_INVAL);
	assert_null(c.group);
	assert_non_null(strstr(err_msg(), "unknown command"));

	PARSE(&c, "user", "frobnicate", "x@y");
	assert_int_equal(rc, ERR_INVAL);
	assert_string_equal(c.group, "user");
	assert_non_null(strstr(err_msg(), "unknown subcommand"));

	PARSE(&c, "user");
	assert_int_equal(rc, ERR_INVAL);
	assert_string_equal(c.group, "user");
	assert_non_null(strstr(err_msg(), "missing subcommand"));
}

static void
test_cli_args__missing_command(void **state)
{
	struct cli_cmd	c;
	int		rc;

	PARSE(&c, "--json");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "missing COMMAND"));

	PARSE(&c, "--help");
	assert_int_equal(rc, 0);
	assert_int_equal(c.help, 1);
}

static void
test_cli_args__missing_address(void **state)
{
	struct cli_cmd	c;
	int		rc;

	PARSE(&c, "user", "show");
	assert_int_equal(rc, ERR_INVAL);
	assert_string_equal(c.group, "user");
	assert_non_null(strstr(err_msg(), "missing ADDRESS"));

	PARSE(&c, "cert", "revoke", "--reason", "superseded");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "missing SERIAL"));

	PARSE(&c, "key", "rotate", "");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "empty KEY_ID"));
}

static void
test_cli_args__extra_argument(void **state)
{
	struct cli_cmd	c;
	int		rc;

	PARSE(&c, "user", "show", "a@b.example", "c@d.example");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "unexpected argument 'c@d"));

	PARSE(&c, "dept", "list", "finance");
	assert_int_equal(rc, ERR_INVAL);

	PARSE(&c, "status", "now");
	assert_int_equal(rc, ERR_INVAL);

	/* after "--" a dash-leading argument is positional */
	PARSE(&c, "cert", "show", "--", "-1");
	assert_int_equal(rc, 0);
	assert_string_equal(c.arg, "-1");
}

static void
test_cli_args__unknown_option(void **state)
{
	struct cli_cmd	c;
	int		rc;

	/* valid elsewhere, not for this command */
	PARSE(&c, "user", "list", "--domain", "x.example");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "unknown option '--domain'"));

	PARSE(&c, "user", "list", "--bogus");
	assert_int_equal(rc, ERR_INVAL);

	PARSE(&c, "--bogus", "status");
	assert_int_equal(rc, ERR_INVAL);

	PARSE(&c, "user", "list", "--dept");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "needs a value"));
}

static void
test_cli_args__dept_add(void **state)
{
	struct cli_cmd	c;
	int		rc;

	PARSE(&c, "dept", "add", "legal", "--domain", "legal.example",
	    "--domain", "law.example", "--display-name", "Legal Affairs");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_DEPT_ADD);
	assert_string_equal(c.arg, "legal");
	assert_int_equal(c.ndomains, 2);
	assert_string_equal(c.domains[0], "legal.example");
	assert_string_equal(c.domains[1], "law.example");
	assert_string_equal(c.display_name, "Legal Affairs");

	/* options before the name work too */
	PARSE(&c, "dept", "add", "--domain", "legal.example", "legal");
	assert_int_equal(rc, 0);
	assert_string_equal(c.arg, "legal");

	PARSE(&c, "dept", "add", "legal");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "missing --domain"));
}

static void
test_cli_args__user_add(void **state)
{
	struct cli_cmd	c;
	int		rc;

	PARSE(&c, "user", "add", "zoe@legal.example", "--name", "Zoe",
	    "--role", "user", "--role", "dept-admin", "--password-stdin");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_USER_ADD);
	assert_string_equal(c.arg, "zoe@legal.example");
	assert_string_equal(c.display_name, "Zoe");
	assert_int_equal(c.nroles, 2);
	assert_string_equal(c.roles[1], "dept-admin");
	assert_int_equal(c.password_stdin, 1);

	PARSE(&c, "user", "list", "--dept", "health");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_USER_LIST);
	assert_string_equal(c.dept, "health");

	PARSE(&c, "user", "suspend", "a@b.example");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_USER_SUSPEND);
	PARSE(&c, "user", "activate", "a@b.example");
	assert_int_equal(c.verb, CLI_USER_ACTIVATE);
	PARSE(&c, "user", "delete", "a@b.example");
	assert_int_equal(c.verb, CLI_USER_DELETE);
	PARSE(&c, "user", "passwd", "a@b.example");
	assert_int_equal(c.verb, CLI_USER_PASSWD);
	assert_int_equal(c.password_stdin, 0);
}

static void
test_cli_args__too_many_roles(void **state)
{
	struct cli_cmd	c;
	char		*argv[4 + 2 * (CLI_MULTI_MAX + 1) + 1];
	int		 i, n = 0, rc;

	argv[n++] = "amanat";
	argv[n++] = "user";
	argv[n++] = "add";
	argv[n++] = "a@b.example";
	for (i = 0; i <= CLI_MULTI_MAX; i++) {
		argv[n++] = "--role";
		argv[n++] = "user";
	}
	argv[n] = NULL;
	rc = cli_parse(&c, n, argv);
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "too many --role"));
}

static void
test_cli_args__cert_issue_client(void **state)
{
	struct cli_cmd	c;
	int		rc;

	PARSE(&c, "cert", "issue", "alice@finance.example");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_CERT_ISSUE);
	assert_string_equal(c.arg, "alice@finance.example");

	PARSE(&c, "cert", "issue", "--client", "fatima@finance.example",
	    "--out-cert", "f.pem", "--out-key", "f.key");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_CERT_CLIENT);
	assert_string_equal(c.arg, "fatima@finance.example");
	assert_string_equal(c.out_cert, "f.pem");
	assert_string_equal(c.out_key, "f.key");

	PARSE(&c, "cert", "issue", "--client", "admin", "--out-cert", "f.pem");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "missing --out-key"));

	PARSE(&c, "cert", "issue", "a@b.example", "--client", "admin",
	    "--out-cert", "f.pem", "--out-key", "f.key");
	assert_int_equal(rc, ERR_INVAL);

	PARSE(&c, "cert", "issue", "a@b.example", "--out-key", "f.key");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "go with --client"));

	PARSE(&c, "cert", "issue");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "missing ADDRESS"));
}

static void
test_cli_args__cert_export(void **state)
{
	struct cli_cmd	c;
	int		rc;

	PARSE(&c, "cert", "export", "a@b.example", "--out", "a.p12",
	    "--passphrase-stdin");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_CERT_EXPORT);
	assert_string_equal(c.out, "a.p12");
	assert_int_equal(c.passphrase_stdin, 1);

	PARSE(&c, "cert", "export", "a@b.example");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "missing --out"));

	PARSE(&c, "cert", "revoke", "0a1b", "--reason", "keyCompromise");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_CERT_REVOKE);
	assert_string_equal(c.reason, "keyCompromise");
}

static void
test_cli_args__cert_key_pairing(void **state)
{
	struct cli_cmd	c;
	int		rc;

	PARSE(&c, "--cert", "a.pem", "dept", "list");
	assert_int_equal(rc, ERR_INVAL);
	assert_non_null(strstr(err_msg(), "--cert and --key"));

	PARSE(&c, "--key", "a.key", "dept", "list");
	assert_int_equal(rc, ERR_INVAL);
}

static void
test_cli_args__init_and_key(void **state)
{
	struct cli_cmd	c;
	int		rc;

	PARSE(&c, "init", "--demo");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_INIT);
	assert_int_equal(c.demo, 1);

	PARSE(&c, "init");
	assert_int_equal(rc, 0);
	assert_int_equal(c.demo, 0);

	PARSE(&c, "key", "rotate", "finance");
	assert_int_equal(rc, 0);
	assert_int_equal(c.verb, CLI_KEY_ROTATE);
	assert_string_equal(c.arg, "finance");

	PARSE(&c, "key", "show", "finance", "--demo");
	assert_int_equal(rc, ERR_INVAL);

	PARSE(&c, "key", "--help");
	assert_int_equal(rc, 0);
	assert_int_equal(c.help, 1);
	assert_string_equal(c.group, "key");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli_args__global_options),
		cmocka_unit_test(test_cli_args__unknown_command),
		cmocka_unit_test(test_cli_args__missing_command),
		cmocka_unit_test(test_cli_args__missing_address),
		cmocka_unit_test(test_cli_args__extra_argument),
		cmocka_unit_test(test_cli_args__unknown_option),
		cmocka_unit_test(test_cli_args__dept_add),
		cmocka_unit_test(test_cli_args__user_add),
		cmocka_unit_test(test_cli_args__too_many_roles),
		cmocka_unit_test(test_cli_args__cert_issue_client),
		cmocka_unit_test(test_cli_args__cert_export),
		cmocka_unit_test(test_cli_args__cert_key_pairing),
		cmocka_unit_test(test_cli_args__init_and_key),
	};
	int	rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
