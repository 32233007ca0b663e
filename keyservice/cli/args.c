/*
 * args.c -- the amanat command line: global options, the command table
 * and each command's options, parsed into struct cli_cmd.
 *
 *	amanat [-c FILE] [--json] [--cert FILE --key FILE] COMMAND ...
 *
 * Parsing is pure (no I/O, no exit) so the unit tests can drive it; the
 * caller prints err_msg() and cli_usage() for cmd->group on ERR_INVAL.
 *
 * Runs in: the admin's shell, before anything else.
 * Failure policy: every problem is a usage error (ERR_INVAL) naming the
 * command and what is wrong.
 * SECURITY: no secret is ever taken from argv (argv is visible in ps);
 * passwords and passphrases come from stdin or the terminal.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "keyservice/cli/cli.h"

/* Command options; a command lists the ones it accepts. */
#define O_DOMAIN	0x0001
#define O_NAME		0x0002	/* --name, --display-name */
#define O_ROLE		0x0004
#define O_PWSTDIN	0x0008
#define O_DEPT		0x0010
#define O_CLIENT	0x0020
#define O_OUTCERT	0x0040
#define O_OUTKEY	0x0080
#define O_OUT		0x0100
#define O_REASON	0x0200
#define O_PPSTDIN	0x0400
#define O_DEMO		0x0800
#define O_ACTOR		0x1000
#define O_OBJECT	0x2000
#define O_ACTION	0x4000
#define O_OUTCOME	0x8000
#define O_SINCE		0x10000
#define O_UNTIL		0x20000
#define O_LIMIT		0x40000
#define O_SERVICE	0x80000
#define O_STATE		0x100000
#define O_FROM		0x200000
#define O_TO		0x400000
#define O_CA		0x800000
#define O_QUICK		0x1000000

struct cli_spec {
	const char	*group;
	const char	*name;		/* NULL: a one-word command; words */
	enum cli_verb	 verb;
	int		 nargs;		/* positional arguments: 0 to 2 */
	const char	*argname;	/* what they are, one word each */
	unsigned	 opts;		/* accepted */
	unsigned	 required;	/* must be given */
	const char	*usage;
};

static const struct cli_spec cli_specs[] = {
	{ "status", NULL, CLI_STATUS, 0, NULL, 0, 0, "status" },
	{ "init", NULL, CLI_INIT, 0, NULL, O_DEMO, 0, "init [--demo]" },
	{ "dept", "add", CLI_DEPT_ADD, 1, "NAME", O_DOMAIN | O_NAME,
	    O_DOMAIN, "dept add NAME --domain DOMAIN [--domain DOMAIN ...] "
	    "[--display-name TEXT]" },
	{ "dept", "list", CLI_DEPT_LIST, 0, NULL, 0, 0, "dept list" },
	{ "user", "add", CLI_USER_ADD, 1, "ADDRESS",
	    O_NAME | O_ROLE | O_PWSTDIN, 0, "user add ADDRESS [--name TEXT] "
	    "[--role ROLE ...] [--password-stdin]" },
	{ "user", "list", CLI_USER_LIST, 0, NULL, O_DEPT, 0,
	    "user list [--dept NAME]" },
	{ "user", "show", CLI_USER_SHOW, 1, "ADDRESS", 0, 0,
	    "user show ADDRESS" },
	{ "user", "passwd", CLI_USER_PASSWD, 1, "ADDRESS", O_PWSTDIN, 0,
	    "user passwd ADDRESS [--password-stdin]" },
	{ "user", "suspend", CLI_USER_SUSPEND, 1, "ADDRESS", 0, 0,
	    "user suspend ADDRESS" },
	{ "user", "activate", CLI_USER_ACTIVATE, 1, "ADDRESS", 0, 0,
	    "user activate ADDRESS" },
	{ "user", "delete", CLI_USER_DELETE, 1, "ADDRESS", 0, 0,
	    "user delete ADDRESS" },
	{ "cert", "issue", CLI_CERT_ISSUE, 1, "ADDRESS",
	    O_CLIENT | O_OUTCERT | O_OUTKEY, 0, "cert issue ADDRESS\n"
	    "       cert issue --client CN --out-cert FILE --out-key FILE" },
	{ "cert", "list", CLI_CERT_LIST, 1, "ADDRESS", 0, 0,
	    "cert list ADDRESS" },
	{ "cert", "show", CLI_CERT_SHOW, 1, "SERIAL", 0, 0,
	    "cert show SERIAL" },
	{ "cert", "revoke", CLI_CERT_REVOKE, 1, "SERIAL", O_REASON, 0,
	    "cert revoke SERIAL [--reason REASON]" },
	{ "cert", "export", CLI_CERT_EXPORT, 1, "ADDRESS",
	    O_OUT | O_PPSTDIN, O_OUT, "cert export ADDRESS --out FILE.p12 "
	    "[--passphrase-stdin]" },
	{ "key", "rotate", CLI_KEY_ROTATE, 1, "KEY_ID", 0, 0,
	    "key rotate KEY_ID" },
	{ "key", "show", CLI_KEY_SHOW, 1, "KEY_ID", 0, 0, "key show KEY_ID" },
	{ "audit", "query", CLI_AUDIT_QUERY, 0, NULL, O_ACTOR | O_DEPT |
	    O_OBJECT | O_ACTION | O_OUTCOME | O_SINCE | O_UNTIL | O_LIMIT |
	    O_SERVICE, 0, "audit query [--actor A] [--dept D] [--object O] "
	    "[--action X]\n"
	    "           [--outcome ok|denied|error] [--since TIME] "
	    "[--until TIME]\n"
	    "           [--limit N] [--service S ...]" },
	{ "audit", "verify", CLI_AUDIT_VERIFY, 0, NULL, O_SERVICE | O_STATE |
	    O_QUICK, 0, "audit verify [--service S ...] [--state DIR] "
	    "[--quick]" },
	{ "audit", "export", CLI_AUDIT_EXPORT, 0, NULL, O_SERVICE | O_FROM |
	    O_TO | O_OUT, O_SERVICE | O_FROM | O_TO | O_OUT,
	    "audit export --service S --from N --to M --out FILE" },
	{ "audit", "verify-export", CLI_AUDIT_VERIFY_EXPORT, 1, "FILE", O_CA,
	    O_CA, "audit verify-export FILE --ca CAFILE" },
	{ "mail", "queue list", CLI_MAIL_QUEUE_LIST, 0, NULL, 0, 0,
	    "mail queue list" },
	{ "mail", "queue show", CLI_MAIL_QUEUE_SHOW, 1, "ID", 0, 0,
	    "mail queue show ID" },
	{ "mail", "queue retry", CLI_MAIL_QUEUE_RETRY, 1, "ID", 0, 0,
	    "mail queue retry ID" },
	{ "mail", "queue delete", CLI_MAIL_QUEUE_DELETE, 1, "ID", 0, 0,
	    "mail queue delete ID" },
	{ "mail", "mailboxes", CLI_MAIL_MAILBOXES, 1, "ADDRESS", 0, 0,
	    "mail mailboxes ADDRESS" },
	{ "mail", "messages", CLI_MAIL_MESSAGES, 2, "ADDRESS MAILBOX", 0, 0,
	    "mail messages ADDRESS MAILBOX" },
};

/* getopt_long values of the command options (beyond any char). */
enum {
	OPT_DOMAIN = 256, OPT_NAME, OPT_ROLE, OPT_PWSTDIN, OPT_DEPT,
	OPT_CLIENT, OPT_OUTCERT, OPT_OUTKEY, OPT_OUT, OPT_REASON,
	OPT_PPSTDIN, OPT_DEMO, OPT_HELP, OPT_JSON, OPT_CERT, OPT_KEY,
	OPT_ACTOR, OPT_OBJECT, OPT_ACTION, OPT_OUTCOME, OPT_SINCE, OPT_UNTIL,
	OPT_LIMIT, OPT_SERVICE, OPT_STATE, OPT_FROM, OPT_TO, OPT_CA,
	OPT_QUICK,
};

static const struct option cli_cmd_longopts[] = {
	{ "domain", required_argument, NULL, OPT_DOMAIN },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "display-name", required_argument, NULL, OPT_NAME },
	{ "role", required_argument, NULL, OPT_ROLE },
	{ "password-stdin", no_argument, NULL, OPT_PWSTDIN },
	{ "dept", required_argument, NULL, OPT_DEPT },
	{ "client", required_argument, NULL, OPT_CLIENT },
	{ "out-cert", required_argument, NULL, OPT_OUTCERT },
	{ "out-key", required_argument, NULL, OPT_OUTKEY },
	{ "out", required_argument, NULL, OPT_OUT },
	{ "reason", required_argument, NULL, OPT_REASON },
	{ "passphrase-stdin", no_argument, NULL, OPT_PPSTDIN },
	{ "demo", no_argument, NULL, OPT_DEMO },
	{ "actor", required_argument, NULL, OPT_ACTOR },
	{ "object", required_argument, NULL, OPT_OBJECT },
	{ "action", required_argument, NULL, OPT_ACTION },
	{ "outcome", required_argument, NULL, OPT_OUTCOME },
	{ "since", required_argument, NULL, OPT_SINCE },
	{ "until", required_argument, NULL, OPT_UNTIL },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "service", required_argument, NULL, OPT_SERVICE },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "from", required_argument, NULL, OPT_FROM },
	{ "to", required_argument, NULL, OPT_TO },
	{ "ca", required_argument, NULL, OPT_CA },
	{ "quick", no_argument, NULL, OPT_QUICK },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "json", no_argument, NULL, OPT_JSON },
	{ NULL, 0, NULL, 0 },
};

/* Option value -> its O_* bit. */
static unsigned
cli__opt_bit(int ch)
{
	static const struct { int ch; unsigned bit; } map[] = {
		{ OPT_DOMAIN, O_DOMAIN }, { OPT_NAME, O_NAME },
		{ OPT_ROLE, O_ROLE }, { OPT_PWSTDIN, O_PWSTDIN },
		{ OPT_DEPT, O_DEPT }, { OPT_CLIENT, O_CLIENT },
		{ OPT_OUTCERT, O_OUTCERT }, { OPT_OUTKEY, O_OUTKEY },
		{ OPT_OUT, O_OUT }, { OPT_REASON, O_REASON },
		{ OPT_PPSTDIN, O_PPSTDIN }, { OPT_DEMO, O_DEMO },
		{ OPT_ACTOR, O_ACTOR }, { OPT_OBJECT, O_OBJECT },
		{ OPT_ACTION, O_ACTION }, { OPT_OUTCOME, O_OUTCOME },
		{ OPT_SINCE, O_SINCE }, { OPT_UNTIL, O_UNTIL },
		{ OPT_LIMIT, O_LIMIT }, { OPT_SERVICE, O_SERVICE },
		{ OPT_STATE, O_STATE }, { OPT_FROM, O_FROM }, { OPT_TO, O_TO },
		{ OPT_CA, O_CA }, { OPT_QUICK, O_QUICK },
	};
	size_t	i;

	for (i = 0; i < nitems(map); i++)
		if (map[i].ch == ch)
			return map[i].bit;
	return 0;
}

static const char *
cli__opt_name(unsigned bit)
{
	size_t	i;

	for (i = 0; cli_cmd_longopts[i].name != NULL; i++)
		if (cli__opt_bit(cli_cmd_longopts[i].val) == bit)
			return cli_cmd_longopts[i].name;
	return "?";
}

static int	cli__usage_err(const char *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

static int
cli__usage_err(const char *what, const char *fmt, ...)
{
	char	msg[256];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (what == NULL)
		err_set(ERR_INVAL, "%s", msg);
	else
		err_set(ERR_INVAL, "%s: %s", what, msg);
	return ERR_INVAL;
}

static int
cli__push(const char **arr, size_t *n, const char *v, const char *what)
{
	if (*n >= CLI_MULTI_MAX)
		return cli__usage_err(what, "too many --%s options", what);
	arr[(*n)++] = v;
	return 0;
}

/* The audit options: 1 if ch is one (stored), else 0. */
static int
cli__opt_audit(struct cli_cmd *cmd, int ch, const char *v)
{
	const char	**slot;

	switch (ch) {
	case OPT_ACTOR:		slot = &cmd->actor; break;
	case OPT_OBJECT:	slot = &cmd->object; break;
	case OPT_ACTION:	slot = &cmd->action; break;
	case OPT_OUTCOME:	slot = &cmd->outcome; break;
	case OPT_SINCE:		slot = &cmd->since; break;
	case OPT_UNTIL:		slot = &cmd->until; break;
	case OPT_LIMIT:		slot = &cmd->limit; break;
	case OPT_STATE:		slot = &cmd->state; break;
	case OPT_FROM:		slot = &cmd->from; break;
	case OPT_TO:		slot = &cmd->to; break;
	case OPT_CA:		slot = &cmd->ca; break;
	default:		return 0;
	}
	*slot = v;
	return 1;
}

/* Store one command option's value. */
static int
cli__opt_set(struct cli_cmd *cmd, int ch, const char *v)
{
	if (cli__opt_audit(cmd, ch, v))
		return 0;
	switch (ch) {
	case OPT_SERVICE:
		return cli__push(cmd->services, &cmd->nservices, v,
		    "service");
	case OPT_QUICK:
		cmd->quick = 1;
		break;
	case OPT_DOMAIN:
		return cli__push(cmd->domains, &cmd->ndomains, v, "domain");
	case OPT_ROLE:
		return cli__push(cmd->roles, &cmd->nroles, v, "role");
	case OPT_NAME:
		cmd->display_name = v;
		break;
	case OPT_PWSTDIN:
		cmd->password_stdin = 1;
		break;
	case OPT_DEPT:
		cmd->dept = v;
		break;
	case OPT_CLIENT:
		cmd->arg = v;
		cmd->verb = CLI_CERT_CLIENT;
		break;
	case OPT_OUTCERT:
		cmd->out_cert = v;
		break;
	case OPT_OUTKEY:
		cmd->out_key = v;
		break;
	case OPT_OUT:
		cmd->out = v;
		break;
	case OPT_REASON:
		cmd->reason = v;
		break;
	case OPT_PPSTDIN:
		cmd->passphrase_stdin = 1;
		break;
	case OPT_DEMO:
		cmd->demo = 1;
		break;
	}
	return 0;
}

/* The names of s's positionals from the i-th on ("ADDRESS MAILBOX"). */
static const char *
cli__argname(const struct cli_spec *s, size_t i)
{
	const char	*p = s->argname;

	while (i-- > 0 && strchr(p, ' ') != NULL)
		p = strchr(p, ' ') + 1;
	return p;
}

/* Store positional number i (from 0). */
static int
cli__positional(struct cli_cmd *cmd, const struct cli_spec *s, size_t i,
    const char *v, const char *what)
{
	if (i >= (size_t)s->nargs)
		return cli__usage_err(what, "unexpected argument '%s'", v);
	if (i == 0)
		cmd->arg = v;
	else
		cmd->arg2 = v;
	return 0;
}

/* Check what a command requires once its options are known. */
static int
cli__check(struct cli_cmd *cmd, const struct cli_spec *s, unsigned seen,
    size_t npos, const char *what)
{
	unsigned	missing = s->required & ~seen;

	if (cmd->verb == CLI_CERT_CLIENT) {
		if (npos > 0)
			return cli__usage_err(what, "%s", "--client takes no "
			    "ADDRESS");
		if (cmd->arg[0] == '\0')
			return cli__usage_err(what, "%s", "empty --client CN");
		missing |= (O_OUTCERT | O_OUTKEY) & ~seen;
	} else {
		if (seen & (O_OUTCERT | O_OUTKEY))
			return cli__usage_err(what, "%s", "--out-cert and "
			    "--out-key go with --client");
		if (npos < (size_t)s->nargs)
			return cli__usage_err(what, "missing %s",
			    cli__argname(s, npos));
		if (s->nargs > 0 && cmd->arg[0] == '\0')
			return cli__usage_err(what, "empty %.*s",
			    (int)strcspn(s->argname, " "), s->argname);
		if (s->nargs > 1 && cmd->arg2[0] == '\0')
			return cli__usage_err(what, "empty %s",
			    cli__argname(s, 1));
	}
	if (missing != 0) {
		/* the lowest missing bit names the option */
		return cli__usage_err(what, "missing --%s",
		    cli__opt_name(missing & -missing));
	}
	return 0;
}

/* Parse argv[0] (the last command word) onwards for spec s. */
static int
cli__parse_cmd(struct cli_cmd *cmd, const struct cli_spec *s, int argc,
    char **argv)
{
	char		 what[64];
	unsigned	 seen = 0, bit;
	size_t		 npos = 0;
	int		 ch, rc;

	snprintf(what, sizeof(what), "%s%s%s", s->group, s->name ? " " : "",
	    s->name ? s->name : "");
	opterr = 0;
	optind = 0;	/* full re-initialisation (glibc) */
	while ((ch = getopt_long(argc, argv, "-:", cli_cmd_longopts,
	    NULL)) != -1) {
		if (ch == 1) {
			if (cli__positional(cmd, s, npos++, optarg, what) < 0)
				return ERR_INVAL;
			continue;
		}
		if (ch == OPT_HELP) {
			cmd->help = 1;
			return 0;
		}
		if (ch == OPT_JSON) {	/* global, accepted here too */
			cmd->json = 1;
			continue;
		}
		if (ch == ':')
			return cli__usage_err(what, "%s needs a value",
			    argv[optind - 1]);
		if (ch == '?')
			return cli__usage_err(what, "unknown option '%s'",
			    argv[optind - 1]);
		if (((bit = cli__opt_bit(ch)) & s->opts) == 0)
			return cli__usage_err(what, "unknown option '--%s'",
			    cli__opt_name(bit));
		seen |= bit;
		if ((rc = cli__opt_set(cmd, ch, optarg)) < 0)
			return rc;
	}
	for (; optind < argc; optind++)		/* after "--" */
		if (cli__positional(cmd, s, npos++, argv[optind], what) < 0)
			return ERR_INVAL;
	return cli__check(cmd, s, seen, npos, what);
}

/*
 * How many words of a command name ("queue list") argv[at + 1 ...]
 * spells; 0 if it does not.
 */
static int
cli__words(const char *name, int argc, char **argv, int at)
{
	size_t	len;
	int	n = 0;

	for (;;) {
		len = strcspn(name, " ");
		if (at + 1 + n >= argc || strlen(argv[at + 1 + n]) != len ||
		    strncmp(argv[at + 1 + n], name, len) != 0)
			return 0;
		n++;
		if (name[len] == '\0')
			return n;
		name += len + 1;
	}
}

/* w is the first of a command name's several words in group. */
static int
cli__first_word(const char *group, const char *w)
{
	size_t	i, len = strlen(w);

	for (i = 0; i < nitems(cli_specs); i++)
		if (strcmp(cli_specs[i].group, group) == 0 &&
		    cli_specs[i].name != NULL &&
		    strncmp(cli_specs[i].name, w, len) == 0 &&
		    cli_specs[i].name[len] == ' ')
			return 1;
	return 0;
}

static int
cli__is_help(const char *w)
{
	return strcmp(w, "--help") == 0 || strcmp(w, "help") == 0;
}

/* The global options; *next is the index of the command word. */
static int
cli__parse_global(struct cli_cmd *cmd, int argc, char **argv, int *next)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "cert", required_argument, NULL, OPT_CERT },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int	ch;

	opterr = 0;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "+:c:h", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'c':
			cmd->conf = optarg;
			break;
		case OPT_JSON:
			cmd->json = 1;
			break;
		case OPT_CERT:
			cmd->cert = optarg;
			break;
		case OPT_KEY:
			cmd->key = optarg;
			break;
		case 'h':
			cmd->help = 1;
			break;
		case ':':
			return cli__usage_err(NULL, "%s needs a value",
			    argv[optind - 1]);
		default:
			return cli__usage_err(NULL, "unknown option '%s'",
			    argv[optind - 1]);
		}
	}
	if ((cmd->cert == NULL) != (cmd->key == NULL))
		return cli__usage_err(NULL, "%s", "--cert and --key go "
		    "together");
	*next = optind;
	return 0;
}

int
cli_parse(struct cli_cmd *cmd, int argc, char **argv)
{
	const struct cli_spec	*s;
	size_t			 i;
	int			 rc, at = 0, group_known = 0, words, prefix;

	memset(cmd, 0, sizeof(*cmd));
	if ((rc = cli__parse_global(cmd, argc, argv, &at)) < 0)
		return rc;
	if (at >= argc) {
		if (cmd->help)
			return 0;
		return cli__usage_err(NULL, "%s", "missing COMMAND");
	}
	for (i = 0; i < nitems(cli_specs); i++) {
		s = &cli_specs[i];
		if (strcmp(s->group, argv[at]) != 0)
			continue;
		group_known = 1;
		cmd->group = s->group;
		if (s->name == NULL)
			break;
		if ((words = cli__words(s->name, argc, argv, at)) > 0) {
			at += words;
			break;
		}
	}
	if (!group_known)
		return cli__usage_err(NULL, "unknown command '%s'",
		    argv[at]);
	if (i == nitems(cli_specs)) {
		/* "mail queue --help", "mail queue" */
		prefix = at + 1 < argc && cli__first_word(cmd->group,
		    argv[at + 1]);
		if ((at + 1 < argc && cli__is_help(argv[at + 1])) ||
		    (prefix && at + 2 < argc && cli__is_help(argv[at + 2]))) {
			cmd->help = 1;
			return 0;
		}
		return cli__usage_err(cmd->group, "%s", at + 1 < argc &&
		    (!prefix || at + 2 < argc) ? "unknown subcommand" :
		    "missing subcommand");
	}
	cmd->verb = s->verb;
	return cli__parse_cmd(cmd, s, argc - at, argv + at);
}

void
cli_usage(FILE *fp, const char *group)
{
	size_t	i;
	int	first = 1;

	fprintf(fp, "usage: amanat [-c FILE] [--json] [--cert FILE --key "
	    "FILE] COMMAND ...\n");
	for (i = 0; i < nitems(cli_specs); i++) {
		if (group != NULL && strcmp(group, cli_specs[i].group) != 0)
			continue;
		fprintf(fp, "%s%s\n", first ? "commands:\n       " :
		    "       ", cli_specs[i].usage);
		first = 0;
	}
	if (group == NULL || strcmp(group, "audit") == 0)
		fprintf(fp, "audit: S is keyservice, mailsrv or docstore (all "
		    "by default); TIME is unix\n"
		    "       seconds or UTC 2026-11-30T10:00:00Z.  query, verify "
		    "and export need\n"
		    "       a security officer's client certificate (amanat "
		    "--cert FILE --key\n"
		    "       FILE audit ...); verify keeps the checkpoints it "
		    "verified in\n"
		    "       ~/.amanat/audit-state/<node>/ (or --state DIR) and "
		    "rereads every\n"
		    "       entry (--quick: only those since the last run); "
		    "verify-export needs\n"
		    "       no config and no network, only the node CA "
		    "certificate.\n");
	if (group == NULL || strcmp(group, "mail") == 0)
		fprintf(fp, "mail: mailsrv's admin API at [mailsrv] api_listen; "
		    "only the node admin's\n"
		    "       certificate ([cli] cert) is allowed, and every call "
		    "is audited.\n"
		    "       ID is a queue id (mail queue list); MAILBOX a name "
		    "such as INBOX\n"
		    "       (quote names with spaces).  Message contents are "
		    "never shown.\n");
}
