/*
 * cmd_cert.c -- the CLI's certificate commands.
 *
 *	cert issue ADDRESS		new S/MIME pair (signing, encryption)
 *	cert issue --client CN --out-cert FILE --out-key FILE
 *					a P-256 key made here, a CSR for CN,
 *					the client certificate written back
 *	cert list ADDRESS		valid S/MIME certificates
 *	cert show SERIAL
 *	cert revoke SERIAL [--reason REASON]
 *	cert export ADDRESS --out FILE.p12 [--passphrase-stdin]
 *
 * Runs in: the admin's shell.
 * Failure policy: API refusals exit 1 with the API's message; a local
 * file that cannot be written exits 1 after saying so (the server side
 * has happened: the certificate exists, the export was logged).
 * SECURITY: the client private key is generated here and never sent;
 * it is written 0600 (durably, tmp + fsync + rename) and an existing
 * --out-cert/--out-key is never overwritten.  The PKCS#12 passphrase
 * comes from stdin or the terminal (echo off), never argv, and is
 * wiped; the .p12 is written 0600.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/base64.h"
#include "common/err.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "keyservice/cli/cli.h"

static const char *const cli_cert_fields[] = { "serial", "kind",
    "subject", "address", "not_before", "not_after", "status",
    "revoked_at", "reason", NULL };

static int
cli__fail(int status)
{
	fprintf(stderr, "amanat: %s\n", err_msg());
	return status;
}

/* A table of certificate records. */
static void
cli__cert_table(const json_t *const *recs, size_t n)
{
	static const char *const hdr[] = { "SERIAL", "KIND", "SUBJECT",
	    "NOT AFTER", "STATUS" };
	static const char *const fields[] = { "serial", "kind", "subject",
	    "not_after", "status" };
	struct cli_table	*t = cli_table_new(5, hdr);
	char			 cells[5][512];
	const char		*row[5];
	size_t			 i, k;

	for (i = 0; i < n; i++) {
		for (k = 0; k < 5; k++) {
			cli_fmt_value(cells[k], sizeof(cells[k]),
			    json_object_get(recs[i], fields[k]), k == 3);
			row[k] = cells[k];
		}
		cli_table_add(t, row);
	}
	cli_table_print(t, stdout);
	cli_table_free(&t);
}

static int
cli__smime(struct cli_ctx *ctx)
{
	char		 target[CLI_PATH_MAX];
	json_t		*out;
	const json_t	*recs[2];
	int		 rc;

	if (cli_target(target, sizeof(target), "/v1/users/", ctx->cmd->arg,
	    "/smime") < 0)
		return cli__fail(CLI_EXIT_USAGE);
	if ((rc = cli_call(&out, ctx, "POST", target, NULL)) != 0)
		return rc;
	if (ctx->cmd->json)
		cli_print_json(stdout, out);
	else {
		recs[0] = json_object_get(out, "signing");
		recs[1] = json_object_get(out, "encryption");
		cli__cert_table(recs, 2);
	}
	json_decref(out);
	return CLI_EXIT_OK;
}

/* ------------------------------------------------------------ client */

/* A P-256 key and a CSR (PEM) naming cn. */
static int
cli__csr(EVP_PKEY **key_out, char **pem_out, const char *cn)
{
	EVP_PKEY	*key = NULL;
	X509_REQ	*req = NULL;
	BIO		*mem = NULL;
	char		*p;
	long		 n;
	int		 rc = ERR_GENERIC;

	*key_out = NULL;
	*pem_out = NULL;
	if ((key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL) {
		tls_error("P-256 key generation");
		goto done;
	}
	if ((req = X509_REQ_new()) == NULL ||
	    !X509_REQ_set_version(req, 0) ||
	    !X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
	    MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) ||
	    !X509_REQ_set_pubkey(req, key) ||
	    X509_REQ_sign(req, key, EVP_sha256()) <= 0 ||
	    (mem = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_X509_REQ(mem, req) ||
	    (n = BIO_get_mem_data(mem, &p)) <= 0) {
		tls_error("CSR for the CN (at most 64 characters)");
		goto done;
	}
	*pem_out = xstrndup(p, (size_t)n);
	*key_out = key;
	key = NULL;
	rc = 0;
done:
	BIO_free(mem);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return rc;
}

/* The private key, PKCS#8 PEM, to path 0600. */
static int
cli__write_key(const char *path, EVP_PKEY *key)
{
	BIO	*mem;
	char	*p;
	long	 n;
	int	 rc;

	if ((mem = BIO_new(BIO_s_secmem())) == NULL ||
	    !PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL, NULL) ||
	    (n = BIO_get_mem_data(mem, &p)) <= 0) {
		BIO_free(mem);
		return tls_error("encoding the private key");
	}
	rc = file_write_atomic(path, p, (size_t)n, 0600);
	BIO_free(mem);		/* secure memory: cleared */
	return rc;
}

static int
cli__refuse_existing(const char *path)
{
	struct stat	st;

	if (lstat(path, &st) == 0) {
		err_set(ERR_EXISTS, "%s exists; remove it or choose another "
		    "file", path);
		return ERR_EXISTS;
	}
	return 0;
}

static void
cli__client_report(const struct cli_ctx *ctx, const json_t *out)
{
	if (ctx->cmd->json) {
		cli_print_json(stdout, out);
		return;
	}
	cli_print_fields(stdout, out, cli_cert_fields);
	printf("key:        %s (0600)\ncert:       %s\n", ctx->cmd->out_key,
	    ctx->cmd->out_cert);
}

static int
cli__client(struct cli_ctx *ctx)
{
	const struct cli_cmd	*cmd = ctx->cmd;
	EVP_PKEY		*key = NULL;
	char			*csr = NULL;
	const char		*pem;
	json_t			*out = NULL, *body;
	int			 rc;

	if (cli__refuse_existing(cmd->out_key) < 0 ||
	    cli__refuse_existing(cmd->out_cert) < 0)
		return cli__fail(CLI_EXIT_API);
	if (cli__csr(&key, &csr, cmd->arg) < 0)
		return cli__fail(CLI_EXIT_API);
	body = json_pack("{s:s}", "csr", csr);
	rc = cli_call(&out, ctx, "POST", "/v1/certs/client", body);
	json_decref(body);
	if (rc != 0)
		goto done;
	if ((pem = json_string_value(json_object_get(out, "pem"))) == NULL) {
		fprintf(stderr, "amanat: the answer holds no certificate\n");
		rc = CLI_EXIT_CONNECT;
		goto done;
	}
	if (cli__write_key(cmd->out_key, key) < 0 ||
	    file_write_atomic(cmd->out_cert, pem, strlen(pem), 0644) < 0) {
		rc = cli__fail(CLI_EXIT_API);
		goto done;
	}
	cli__client_report(ctx, out);
done:
	json_decref(out);
	EVP_PKEY_free(key);
	free(csr);
	return rc;
}

/* ------------------------------------------------------------ others */

static int
cli__list(struct cli_ctx *ctx)
{
	char		 target[CLI_PATH_MAX];
	json_t		*out, *certs;
	const json_t	**recs;
	size_t		 i, n;
	int		 rc;

	if (cli_target(target, sizeof(target), "/v1/certs?address=",
	    ctx->cmd->arg, NULL) < 0)
		return cli__fail(CLI_EXIT_USAGE);
	if ((rc = cli_call(&out, ctx, "GET", target, NULL)) != 0)
		return rc;
	certs = json_object_get(out, "certs");
	if (ctx->cmd->json)
		cli_print_json(stdout, out);
	else if ((n = json_array_size(certs)) == 0)
		printf("no valid certificates for %s\n", ctx->cmd->arg);
	else {
		recs = xcalloc(n, sizeof(*recs));
		for (i = 0; i < n; i++)
			recs[i] = json_array_get(certs, i);
		cli__cert_table(recs, n);
		free(recs);
	}
	json_decref(out);
	return CLI_EXIT_OK;
}

/* show and revoke: one certificate record back. */
static int
cli__one(struct cli_ctx *ctx)
{
	const struct cli_cmd	*cmd = ctx->cmd;
	char			 target[CLI_PATH_MAX];
	json_t			*out, *body = NULL;
	const char		*pem;
	int			 rc, revoke = cmd->verb == CLI_CERT_REVOKE;

	if (cli_target(target, sizeof(target), "/v1/certs/", cmd->arg,
	    revoke ? "/revoke" : NULL) < 0)
		return cli__fail(CLI_EXIT_USAGE);
	if (revoke && cmd->reason != NULL)
		body = json_pack("{s:s}", "reason", cmd->reason);
	rc = cli_call(&out, ctx, revoke ? "POST" : "GET", target, body);
	json_decref(body);
	if (rc != 0)
		return rc;
	if (cmd->json)
		cli_print_json(stdout, out);
	else {
		cli_print_fields(stdout, out, cli_cert_fields);
		pem = json_string_value(json_object_get(out, "pem"));
		if (!revoke && pem != NULL)
			printf("\n%s", pem);
		if (revoke)
			printf("the CRL has been re-issued\n");
	}
	json_decref(out);
	return CLI_EXIT_OK;
}

/* Decode the answer's PKCS#12 and write it 0600. */
static int
cli__write_p12(const struct cli_ctx *ctx, const json_t *out)
{
	const char	*b = json_string_value(json_object_get(out, "pkcs12"));
	unsigned char	*der = NULL;
	size_t		 len = 0;
	json_t		*o;

	if (b == NULL || b64_decode(&der, &len, b, strlen(b),
	    CLI_BODY_MAX) < 0) {
		fprintf(stderr, "amanat: the answer holds no PKCS#12\n");
		return CLI_EXIT_CONNECT;
	}
	if (file_write_atomic(ctx->cmd->out, der, len, 0600) < 0) {
		xfreezero(der, len);
		return cli__fail(CLI_EXIT_API);
	}
	xfreezero(der, len);
	if (ctx->cmd->json) {
		o = json_pack("{s:s,s:s,s:I}", "address", ctx->cmd->arg, "out",
		    ctx->cmd->out, "bytes", (json_int_t)len);
		cli_print_json(stdout, o);
		json_decref(o);
	} else
		printf("wrote %s (%zu bytes, mode 0600): the S/MIME keys and "
		    "certificates of %s\n", ctx->cmd->out, len, ctx->cmd->arg);
	return CLI_EXIT_OK;
}

static int
cli__export(struct cli_ctx *ctx)
{
	const struct cli_cmd	*cmd = ctx->cmd;
	char			 target[CLI_PATH_MAX];
	char			 pass[CLI_SECRET_MAX + 2];
	json_t			*body, *out;
	int			 rc;

	if (cli_target(target, sizeof(target), "/v1/users/", cmd->arg,
	    "/export") < 0)
		return cli__fail(CLI_EXIT_USAGE);
	if (cli_read_secret(pass, sizeof(pass), cmd->passphrase_stdin,
	    "passphrase", 1) < 0)
		return cli__fail(CLI_EXIT_USAGE);
	body = json_pack("{s:s}", "passphrase", pass);
	explicit_bzero(pass, sizeof(pass));
	if (body == NULL) {
		fprintf(stderr, "amanat: the passphrase must be UTF-8\n");
		return CLI_EXIT_USAGE;
	}
	rc = cli_call(&out, ctx, "POST", target, body);
	json_decref(body);
	if (rc != 0)
		return rc;
	rc = cli__write_p12(ctx, out);
	json_decref(out);
	return rc;
}

int
cli_cmd_cert(struct cli_ctx *ctx)
{
	switch (ctx->cmd->verb) {
	case CLI_CERT_ISSUE:
		return cli__smime(ctx);
	case CLI_CERT_CLIENT:
		return cli__client(ctx);
	case CLI_CERT_LIST:
		return cli__list(ctx);
	case CLI_CERT_SHOW:
	case CLI_CERT_REVOKE:
		return cli__one(ctx);
	case CLI_CERT_EXPORT:
		return cli__export(ctx);
	default:
		return CLI_EXIT_USAGE;
	}
}
