/*
 * cmd_mail.c -- the CLI's mail commands: the node admin's view of
 * mailsrv's queue and of users' mailboxes.
 *
 *	mail queue list			queued messages: id, sender,
 *					recipients (count and states), size,
 *					attempts, next try (UTC), oldest first
 *	mail queue show ID		one envelope, with each recipient's
 *					state and last delivery status
 *	mail queue retry ID		make the message due now
 *	mail queue delete ID		drop the message (no report is sent)
 *	mail mailboxes ADDRESS		a user's mailboxes: messages, unseen,
 *					size
 *	mail messages ADDRESS MAILBOX	uid, flags, date and size of each
 *					message; never its contents
 *
 * Each is one request to mailsrv's HTTPS API at [mailsrv] api_listen
 * (mailsrv/api.c), mutual TLS with the [cli] certificate (or --cert and
 * --key).  mailsrv allows only the node admin (CN "admin") and logs and
 * audits every call, refused ones too (action mail.admin).  --json
 * prints the API's answer as it came.
 *
 * Runs in: the admin's shell.
 * Failure policy: one "amanat: ..." line on stderr and the CLI's exit
 * statuses: 1 the API refused (its message and HTTP status), 2 config,
 * certificate or key, 3 connection, TLS or an answer of the wrong shape,
 * 64 usage; nothing is retried.
 * SECURITY: addresses, ids and mailbox names are percent-encoded as one
 * path segment each, so none can change the route; server text is shown
 * with control characters replaced (cli_fmt_value, the table code); the
 * API serves no message contents and this file asks for none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "keyservice/cli/cli.h"

#define CLI_MAIL_OUT_MAX	((size_t)64 << 20)	/* rendered answer */

/*
 * The API's message flag word is mailsrv's store flag word
 * (mailsrv/store/store.h STORE_F_*); the CLI may not include it.
 */
static const struct {
	long long	 bit;
	const char	*name;
} cli_mail_flag_names[] = {
	{ 0x01, "\\Seen" },
	{ 0x02, "\\Answered" },
	{ 0x04, "\\Flagged" },
	{ 0x08, "\\Deleted" },
	{ 0x10, "\\Draft" },
};

/* Recipient states by number (mailsrv/queue/queue.h queue_rcpt_state). */
static const char *const cli_mail_states[] = { "pending", "delivered",
    "failed" };

/* ------------------------------------------------------------ pure parts */

const char *
cli_mail_rcpt_state(const json_t *r)
{
	const json_t	*st = json_object_get(r, "state");
	const char	*s;
	json_int_t	 n;
	size_t		 i;

	if (json_is_integer(st)) {
		n = json_integer_value(st);
		if (n >= 0 && (size_t)n < nitems(cli_mail_states))
			return cli_mail_states[n];
	} else if ((s = json_string_value(st)) != NULL) {
		for (i = 0; i < nitems(cli_mail_states); i++)
			if (strcmp(s, cli_mail_states[i]) == 0)
				return cli_mail_states[i];
	}
	return "?";
}

void
cli_mail_rcpts_summary(char *out, size_t size, const json_t *rcpts)
{
	size_t		 count[nitems(cli_mail_states) + 1], i, k, n;
	const json_t	*r;
	const char	*st;
	int		 first = 1;

	if (size == 0)
		return;
	memset(count, 0, sizeof(count));
	json_array_foreach(rcpts, i, r) {
		st = cli_mail_rcpt_state(r);
		for (k = 0; k < nitems(cli_mail_states); k++)
			if (st == cli_mail_states[k])
				break;
		count[k]++;
	}
	snprintf(out, size, "%zu", json_array_size(rcpts));
	for (k = 0; k <= nitems(cli_mail_states); k++) {
		if (count[k] == 0)
			continue;
		n = strlen(out);
		snprintf(out + n, size - n, "%s%zu %s", first ? " (" : ", ",
		    count[k], k < nitems(cli_mail_states) ?
		    cli_mail_states[k] : "unknown");
		first = 0;
	}
	n = strlen(out);
	if (!first)
		snprintf(out + n, size - n, ")");
}

void
cli_mail_flags(char *out, size_t size, long long flags)
{
	size_t	i, n;

	if (size == 0)
		return;
	out[0] = '\0';
	for (i = 0; i < nitems(cli_mail_flag_names); i++) {
		if ((flags & cli_mail_flag_names[i].bit) == 0)
			continue;
		n = strlen(out);
		snprintf(out + n, size - n, "%s%s", n > 0 ? " " : "",
		    cli_mail_flag_names[i].name);
	}
}

int
cli_mail_target(char *out, size_t size, const char *addr, const char *mbox)
{
	char	enc[CLI_PATH_MAX];
	size_t	n;
	int	rc;

	if ((rc = cli_target(out, size, "/v1/mailboxes/", addr, NULL)) < 0 ||
	    mbox == NULL)
		return rc;
	n = strlen(out);
	if ((rc = cli_pct_encode(enc, sizeof(enc), mbox)) < 0)
		return rc;
	if ((size_t)snprintf(out + n, size - n, "/%s", enc) >= size - n) {
		out[0] = '\0';
		err_set(ERR_TOOBIG, "argument too long for a request");
		return ERR_TOOBIG;
	}
	return 0;
}

/* A field of obj as a cell (times as UTC). */
static void
cli__cell(char *out, size_t size, const json_t *obj, const char *key,
    int is_time)
{
	cli_fmt_value(out, size, json_object_get(obj, key), is_time);
}

/* The sender as shown: "<>" for the null sender (bounces). */
static void
cli__sender(char *out, size_t size, const json_t *env)
{
	const char	*s = json_string_value(json_object_get(env, "sender"));

	if (s != NULL && *s == '\0')
		snprintf(out, size, "<>");
	else
		cli__cell(out, size, env, "sender", 0);
}

/* Oldest first, then by id. */
static int
cli__env_cmp(const void *a, const void *b)
{
	const json_t	*x = *(const json_t *const *)a;
	const json_t	*y = *(const json_t *const *)b;
	json_int_t	 cx, cy;
	const char	*ix, *iy;

	cx = json_integer_value(json_object_get(x, "created"));
	cy = json_integer_value(json_object_get(y, "created"));
	if (cx != cy)
		return cx < cy ? -1 : 1;
	ix = json_string_value(json_object_get(x, "id"));
	iy = json_string_value(json_object_get(y, "id"));
	return strcmp(ix != NULL ? ix : "", iy != NULL ? iy : "");
}

/* Format t into out and free it. */
static int
cli__table_done(struct cli_table **t, struct buf *out)
{
	int	rc = cli_table_format(*t, out);

	cli_table_free(t);
	return rc;
}

int
cli_mail_queue_format(struct buf *out, const json_t *list)
{
	static const char *const hdr[] = { "ID", "SENDER", "RECIPIENTS",
	    "SIZE", "ATTEMPTS", "NEXT TRY (UTC)" };
	struct cli_table	*t;
	const json_t		**envs, *e;
	char			 cells[6][512];
	const char		*row[6];
	size_t			 i, n, k;

	if (!json_is_array(list))
		return ERR_PROTO;
	if ((n = json_array_size(list)) == 0)
		return buf_printf(out, "the queue is empty\n");
	envs = xcalloc(n, sizeof(*envs));
	json_array_foreach(list, i, e) {
		if (!json_is_object(e)) {
			free(envs);
			return ERR_PROTO;
		}
		envs[i] = e;
	}
	qsort(envs, n, sizeof(*envs), cli__env_cmp);
	t = cli_table_new(6, hdr);
	for (i = 0; i < n; i++) {
		cli__cell(cells[0], sizeof(cells[0]), envs[i], "id", 0);
		cli__sender(cells[1], sizeof(cells[1]), envs[i]);
		cli_mail_rcpts_summary(cells[2], sizeof(cells[2]),
		    json_object_get(envs[i], "rcpts"));
		cli__cell(cells[3], sizeof(cells[3]), envs[i], "size", 0);
		cli__cell(cells[4], sizeof(cells[4]), envs[i], "attempts", 0);
		cli__cell(cells[5], sizeof(cells[5]), envs[i], "next_try", 1);
		for (k = 0; k < 6; k++)
			row[k] = cells[k];
		cli_table_add(t, row);
	}
	free(envs);
	return cli__table_done(&t, out);
}

int
cli_mail_show_format(struct buf *out, const json_t *env)
{
	static const char *const hdr[] = { "RECIPIENT", "LOCAL", "STATE",
	    "LAST STATUS" };
	static const struct { const char *label, *key; int is_time; }
	    f[] = {
		{ "id", "id", 0 }, { "sender", NULL, 0 },
		{ "auth", "auth", 0 }, { "created", "created", 1 },
		{ "next try", "next_try", 1 }, { "attempts", "attempts", 0 },
		{ "size", "size", 0 }, { "recipients", NULL, 0 },
	};
	struct cli_table	*t;
	const json_t		*rcpts, *r, *a;
	char			 val[1024], cells[4][1024];
	const char		*row[4];
	size_t			 i;
	int			 rc = 0;

	rcpts = json_object_get(env, "rcpts");
	if (!json_is_object(env) || !json_is_array(rcpts))
		return ERR_PROTO;
	for (i = 0; i < nitems(f) && rc == 0; i++) {
		if (f[i].key != NULL)
			cli__cell(val, sizeof(val), env, f[i].key,
			    f[i].is_time);
		else if (strcmp(f[i].label, "sender") == 0)
			cli__sender(val, sizeof(val), env);
		else
			cli_mail_rcpts_summary(val, sizeof(val), rcpts);
		rc = buf_printf(out, "%s:%*s %s\n", f[i].label,
		    (int)(strlen("recipients") - strlen(f[i].label)), "", val);
	}
	if (rc < 0 || json_array_size(rcpts) == 0)
		return rc;
	if ((rc = buf_putc(out, '\n')) < 0)
		return rc;
	t = cli_table_new(4, hdr);
	json_array_foreach(rcpts, i, r) {
		/* "address" here, "addr" in the list's records */
		a = json_object_get(r, "address");
		cli_fmt_value(cells[0], sizeof(cells[0]), a != NULL ? a :
		    json_object_get(r, "addr"), 0);
		cli__cell(cells[1], sizeof(cells[1]), r, "local", 0);
		snprintf(cells[2], sizeof(cells[2]), "%s",
		    cli_mail_rcpt_state(r));
		cli__cell(cells[3], sizeof(cells[3]), r, "status", 0);
		row[0] = cells[0];
		row[1] = cells[1];
		row[2] = cells[2];
		row[3] = cells[3];
		cli_table_add(t, row);
	}
	return cli__table_done(&t, out);
}

int
cli_mail_mailboxes_format(struct buf *out, const json_t *answer)
{
	static const char *const hdr[] = { "MAILBOX", "MESSAGES", "UNSEEN",
	    "SIZE" };
	static const char *const keys[] = { "name", "messages", "unseen",
	    "size" };
	const json_t		*list = json_object_get(answer, "mailboxes"), *m;
	struct cli_table	*t;
	char			 cells[4][512];
	const char		*row[4];
	size_t			 i, k;

	if (!json_is_array(list))
		return ERR_PROTO;
	if (json_array_size(list) == 0)
		return buf_printf(out, "no mailboxes\n");
	t = cli_table_new(4, hdr);
	json_array_foreach(list, i, m) {
		for (k = 0; k < 4; k++) {
			cli__cell(cells[k], sizeof(cells[k]), m, keys[k], 0);
			row[k] = cells[k];
		}
		cli_table_add(t, row);
	}
	return cli__table_done(&t, out);
}

int
cli_mail_messages_format(struct buf *out, const json_t *answer)
{
	static const char *const hdr[] = { "UID", "FLAGS", "DATE (UTC)",
	    "SIZE" };
	const json_t		*list = json_object_get(answer, "messages"), *m;
	struct cli_table	*t;
	char			 cells[4][512];
	const char		*row[4];
	size_t			 i, k;

	if (!json_is_array(list))
		return ERR_PROTO;
	if (json_array_size(list) == 0)
		return buf_printf(out, "no messages\n");
	t = cli_table_new(4, hdr);
	json_array_foreach(list, i, m) {
		cli__cell(cells[0], sizeof(cells[0]), m, "uid", 0);
		cli_mail_flags(cells[1], sizeof(cells[1]), (long long)
		    json_integer_value(json_object_get(m, "flags")));
		cli__cell(cells[2], sizeof(cells[2]), m, "internaldate", 1);
		cli__cell(cells[3], sizeof(cells[3]), m, "size", 0);
		for (k = 0; k < 4; k++)
			row[k] = cells[k];
		cli_table_add(t, row);
	}
	return cli__table_done(&t, out);
}

/* ------------------------------------------------------------ commands */

typedef int	(*cli_mail_fmt)(struct buf *, const json_t *);

/* Print an answer: as JSON, or rendered by fmt. */
static int
cli__emit(const struct cli_ctx *ctx, const json_t *v, cli_mail_fmt fmt)
{
	struct buf	b;
	int		rc;

	if (ctx->cmd->json) {
		cli_print_json(stdout, v);
		return CLI_EXIT_OK;
	}
	buf_init(&b, CLI_MAIL_OUT_MAX);
	if ((rc = fmt(&b, v)) == 0 && b.len > 0)
		fwrite(b.data, 1, b.len, stdout);
	buf_free(&b);
	if (rc == ERR_PROTO) {
		fprintf(stderr, "amanat: mailsrv: unexpected answer\n");
		return CLI_EXIT_CONNECT;
	}
	if (rc < 0) {
		fprintf(stderr, "amanat: mailsrv: answer too large to show "
		    "(try --json)\n");
		return CLI_EXIT_API;
	}
	return CLI_EXIT_OK;
}

static int
cli__bad_arg(void)
{
	fprintf(stderr, "amanat: %s\n", err_msg());
	return CLI_EXIT_USAGE;
}

/* show, retry, delete: one request about one queued message. */
static int
cli__queue_one(struct cli_ctx *ctx)
{
	const struct cli_cmd	*cmd = ctx->cmd;
	char			 target[CLI_PATH_MAX], id[256];
	const char		*method = "GET", *suffix = NULL;
	json_t			*out;
	int			 rc;

	if (cmd->verb == CLI_MAIL_QUEUE_RETRY) {
		method = "POST";
		suffix = "/retry";
	} else if (cmd->verb == CLI_MAIL_QUEUE_DELETE)
		method = "DELETE";
	if (cli_target(target, sizeof(target), "/v1/queue/", cmd->arg,
	    suffix) < 0)
		return cli__bad_arg();
	if ((rc = cli_call(&out, ctx, method, target, NULL)) != 0)
		return rc;
	if (cmd->verb == CLI_MAIL_QUEUE_SHOW || cmd->json) {
		rc = cli__emit(ctx, out, cli_mail_show_format);
		json_decref(out);
		return rc;
	}
	cli__cell(id, sizeof(id), out, cmd->verb == CLI_MAIL_QUEUE_RETRY ?
	    "id" : "deleted", 0);
	if (cmd->verb == CLI_MAIL_QUEUE_RETRY)
		printf("%s: due now; mailsrv retries it at once\n", id);
	else
		printf("%s: deleted from the queue\n", id);
	json_decref(out);
	return CLI_EXIT_OK;
}

static int
cli__get(struct cli_ctx *ctx, const char *target, cli_mail_fmt fmt)
{
	json_t	*out;
	int	 rc;

	if ((rc = cli_call(&out, ctx, "GET", target, NULL)) != 0)
		return rc;
	rc = cli__emit(ctx, out, fmt);
	json_decref(out);
	return rc;
}

static int
cli__mail(struct cli_ctx *ctx)
{
	const struct cli_cmd	*cmd = ctx->cmd;
	char			 target[CLI_PATH_MAX];

	switch (cmd->verb) {
	case CLI_MAIL_QUEUE_LIST:
		return cli__get(ctx, "/v1/queue", cli_mail_queue_format);
	case CLI_MAIL_QUEUE_SHOW:
	case CLI_MAIL_QUEUE_RETRY:
	case CLI_MAIL_QUEUE_DELETE:
		return cli__queue_one(ctx);
	case CLI_MAIL_MAILBOXES:
		if (cli_mail_target(target, sizeof(target), cmd->arg,
		    NULL) < 0)
			return cli__bad_arg();
		return cli__get(ctx, target, cli_mail_mailboxes_format);
	case CLI_MAIL_MESSAGES:
		if (cli_mail_target(target, sizeof(target), cmd->arg,
		    cmd->arg2) < 0)
			return cli__bad_arg();
		return cli__get(ctx, target, cli_mail_messages_format);
	default:
		return CLI_EXIT_USAGE;
	}
}

int
cli_cmd_mail(const struct cli_cmd *cmd, const struct amanat_conf *cf)
{
	struct cli_ctx	ctx;
	const char	*addr = cf->mailsrv.api_listen;
	int		rc;

	if (addr == NULL || *addr == '\0') {
		fprintf(stderr, "amanat: no [mailsrv] api_listen in the "
		    "config\n");
		return CLI_EXIT_CONFIG;
	}
	memset(&ctx, 0, sizeof(ctx));
	ctx.cmd = cmd;
	ctx.cf = cf;
	if (cli_client_init(&ctx.client, addr, cf->tls.ca, cmd->cert ?
	    cmd->cert : cf->cli.cert, cmd->key ? cmd->key : cf->cli.key) < 0) {
		fprintf(stderr, "amanat: %s\n", err_msg());
		return CLI_EXIT_CONFIG;
	}
	rc = cli__mail(&ctx);
	cli_client_free(&ctx.client);
	return rc;
}
