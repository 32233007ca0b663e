/*
 * output.c -- what the CLI prints: aligned tables sized to their
 * content, "key: value" records, pretty JSON (--json), and the one-line
 * error reports for refused requests and transport failures.  Also
 * cli_call(), the request-and-check step every command uses.
 *
 * Runs in: the admin's shell.
 * Failure policy: output is best effort (stdout errors are not fatal);
 * cli_call() turns failures into the documented exit statuses.
 * SECURITY: text from the server is shown with control characters
 * replaced, so a record cannot drive the admin's terminal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/xmalloc.h"
#include "keyservice/cli/cli.h"

#define CLI_CELL_MAX	1024	/* longest table cell, bytes */

struct cli_table {
	size_t	  ncols;
	size_t	  nrows;	/* the header included */
	size_t	  cap;
	char	**cells;	/* nrows * ncols */
};

/* Replace control characters (and DEL) in place. */
static void
cli__sanitize(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

size_t
cli_text_width(const char *s)
{
	size_t	n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

struct cli_table *
cli_table_new(size_t ncols, const char *const *headers)
{
	struct cli_table	*t = xcalloc(1, sizeof(*t));

	t->ncols = ncols;
	cli_table_add(t, headers);
	return t;
}

void
cli_table_add(struct cli_table *t, const char *const *row)
{
	size_t	i;
	char	*c;

	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 8;
		t->cells = xreallocarray(t->cells, t->cap, t->ncols *
		    sizeof(*t->cells));
	}
	for (i = 0; i < t->ncols; i++) {
		c = xstrndup(row[i] != NULL && row[i][0] != '\0' ? row[i] :
		    "-", CLI_CELL_MAX);
		cli__sanitize(c);
		t->cells[t->nrows * t->ncols + i] = c;
	}
	t->nrows++;
}

int
cli_table_format(const struct cli_table *t, struct buf *out)
{
	size_t		*w, r, i, cw, pad;
	const char	*c;
	int		 rc = 0;

	w = xcalloc(t->ncols, sizeof(*w));
	for (r = 0; r < t->nrows; r++)
		for (i = 0; i < t->ncols; i++) {
			cw = cli_text_width(t->cells[r * t->ncols + i]);
			if (cw > w[i])
				w[i] = cw;
		}
	for (r = 0; r < t->nrows && rc == 0; r++) {
		for (i = 0; i < t->ncols && rc == 0; i++) {
			c = t->cells[r * t->ncols + i];
			rc = buf_printf(out, "%s", c);
			if (i + 1 == t->ncols)
				break;
			for (pad = cli_text_width(c); pad < w[i] + 2 &&
			    rc == 0; pad++)
				rc = buf_putc(out, ' ');
		}
		if (rc == 0)
			rc = buf_putc(out, '\n');
	}
	free(w);
	return rc;
}

void
cli_table_print(const struct cli_table *t, FILE *fp)
{
	struct buf	b;

	buf_init(&b, (size_t)64 << 20);
	if (cli_table_format(t, &b) == 0 && b.len > 0)
		fwrite(b.data, 1, b.len, fp);
	buf_free(&b);
}

void
cli_table_free(struct cli_table **tp)
{
	struct cli_table	*t = *tp;
	size_t			 i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
	*tp = NULL;
}

void
cli_fmt_time(char *out, size_t size, long long t)
{
	struct tm	tm;
	time_t		tt = (time_t)t;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, size, "-");
}

void
cli_fmt_value(char *out, size_t size, const json_t *v, int is_time)
{
	const json_t	*e;
	size_t		 i, n;

	if (size == 0)
		return;
	out[0] = '\0';
	if (v == NULL || json_is_null(v))
		snprintf(out, size, "-");
	else if (json_is_string(v))
		snprintf(out, size, "%s", json_string_value(v));
	else if (json_is_integer(v) && is_time)
		cli_fmt_time(out, size, (long long)json_integer_value(v));
	else if (json_is_integer(v))
		snprintf(out, size, "%lld", (long long)json_integer_value(v));
	else if (json_is_boolean(v))
		snprintf(out, size, "%s", json_is_true(v) ? "yes" : "no");
	else if (json_is_array(v)) {
		json_array_foreach(v, i, e) {
			n = strlen(out);
			if (n + 2 >= size)
				break;
			if (i > 0) {
				out[n++] = ',';
				out[n] = '\0';
			}
			cli_fmt_value(out + n, size - n, e, is_time);
		}
	} else
		snprintf(out, size, "%s", json_is_object(v) ? "{...}" : "?");
	cli__sanitize(out);
}

/* Fields shown as times. */
static int
cli__is_time(const char *name)
{
	static const char *const names[] = { "created", "updated",
	    "not_before", "not_after", "revoked_at", NULL };
	size_t	i;

	for (i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], name) == 0)
			return 1;
	return 0;
}

void
cli_print_json(FILE *fp, const json_t *v)
{
	json_dumpf(v, fp, JSON_INDENT(2));
	fputc('\n', fp);
}

void
cli_print_fields(FILE *fp, const json_t *obj, const char *const *names)
{
	char	val[4096];
	size_t	i, w = 0, n;

	for (i = 0; names[i] != NULL; i++)
		if (json_object_get(obj, names[i]) != NULL &&
		    (n = strlen(names[i])) > w)
			w = n;
	for (i = 0; names[i] != NULL; i++) {
		if (json_object_get(obj, names[i]) == NULL)
			continue;
		cli_fmt_value(val, sizeof(val), json_object_get(obj,
		    names[i]), cli__is_time(names[i]));
		if (val[0] == '\0')
			snprintf(val, sizeof(val), "-");
		fprintf(fp, "%s:%*s %s\n", names[i], (int)(w - strlen(
		    names[i])), "", val);
	}
}

int
cli_api_error(const struct cli_resp *r)
{
	char		 msg[512];
	const char	*m, *code;

	m = json_string_value(json_object_get(r->json, "message"));
	code = json_string_value(json_object_get(r->json, "error"));
	snprintf(msg, sizeof(msg), "%s", m != NULL ? m : code != NULL ?
	    code : "request refused");
	cli__sanitize(msg);
	fprintf(stderr, "amanat: %s (HTTP %d)\n", msg, r->status);
	return CLI_EXIT_API;
}

int
cli_transport_error(int rc)
{
	char	msg[ERR_MSG_MAX];

	snprintf(msg, sizeof(msg), "%s", err_msg());
	cli__sanitize(msg);
	fprintf(stderr, "amanat: %s\n", msg);
	return CLI_EXIT_CONNECT;
}

int
cli_call(json_t **out, struct cli_ctx *ctx, const char *method,
    const char *target, json_t *body)
{
	struct cli_resp	r;
	int		rc;

	*out = NULL;
	if ((rc = cli_request(&r, &ctx->client, method, target, body)) < 0)
		return cli_transport_error(rc);
	if (r.status < 200 || r.status > 299) {
		rc = cli_api_error(&r);
		cli_resp_clear(&r);
		return rc;
	}
	if (r.json == NULL) {
		fprintf(stderr, "amanat: empty answer from the server "
		    "(HTTP %d)\n", r.status);
		return CLI_EXIT_CONNECT;
	}
	*out = r.json;
	return 0;
}
