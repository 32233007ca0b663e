/*
 * kcauth.c -- resolve an API caller's client certificate through
 * keyservice (see kcauth.h).
 *
 * Runs in: mailsrv and docstore, event loop thread.
 * Failure policy: anything unclear is a refusal (ERR_PERM) or, if
 * keyservice cannot be reached, ERR_IO: never an acceptance.
 * SECURITY: the certificate chain was verified by TLS against the node
 * CA; here its serial must be on record as valid and its CN must name
 * the admin principal or an active user.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/x509.h>

#include "common/err.h"
#include "common/kcauth.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/xmalloc.h"

struct kcauth_job {
	struct keyclient	*kc;
	struct kcauth_caller	 c;
	kcauth_fn		 cb;
	void			*arg;
};

static void
kcauth_finish(struct kcauth_job *j, int rc, const char *why)
{
	if (rc < 0)
		err_set(rc, "%s", why);
	j->cb(rc, rc == 0 ? &j->c : NULL, j->arg);
	free(j);
}

static int
kcauth_has_role(json_t *user, const char *role)
{
	json_t	*r;
	size_t	 i;

	json_array_foreach(json_object_get(user, "roles"), i, r)
		if (json_is_string(r) && strcmp(json_string_value(r), role) == 0)
			return 1;
	return 0;
}

static void
kcauth_user_cb(int status, json_t *body, void *arg)
{
	struct kcauth_job	*j = arg;
	const char		*st = json_string_value(json_object_get(body,
	    "status"));
	const char		*dept = json_string_value(json_object_get(body,
	    "dept"));

	if (status < 0 || status >= 500) {
		kcauth_finish(j, ERR_IO, "keyservice unavailable");
		return;
	}
	if (status != 200 || st == NULL || strcmp(st, "active") != 0) {
		kcauth_finish(j, ERR_PERM, "user unknown or suspended");
		return;
	}
	snprintf(j->c.dept, sizeof(j->c.dept), "%s", dept ? dept : "");
	j->c.user = 1;
	j->c.dept_admin = kcauth_has_role(body, "dept-admin");
	j->c.security_officer = kcauth_has_role(body, "security-officer");
	kcauth_finish(j, 0, NULL);
}

static void
kcauth_cert_cb(int status, json_t *body, void *arg)
{
	struct kcauth_job	*j = arg;
	const char		*st = json_string_value(json_object_get(body,
	    "status"));

	if (status < 0 || status >= 500) {
		kcauth_finish(j, ERR_IO, "keyservice unavailable");
		return;
	}
	if (status != 200 || st == NULL || strcmp(st, "valid") != 0) {
		kcauth_finish(j, ERR_PERM, "client certificate is not valid");
		return;
	}
	if (strchr(j->c.name, '@') == NULL) {
		if (strcmp(j->c.name, "admin") != 0) {
			kcauth_finish(j, ERR_PERM, "unknown principal");
			return;
		}
		j->c.admin = 1;
		kcauth_finish(j, 0, NULL);
		return;
	}
	if (keyclient_user(j->kc, j->c.name, kcauth_user_cb, j) < 0)
		kcauth_finish(j, ERR_IO, "keyservice busy");
}

/* Lower-case hex serial without leading zeros, as keyservice keys it. */
static int
kcauth_serial(char *out, size_t outlen, X509 *cert)
{
	BIGNUM	*bn;
	char	*hex, *p;
	int	 rc = -1;

	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL)) ==
	    NULL)
		return -1;
	if ((hex = BN_bn2hex(bn)) != NULL) {
		for (p = hex; *p == '0' && p[1] != '\0'; p++)
			;
		if (strlen(p) < outlen) {
			size_t	i;

			for (i = 0; p[i] != '\0'; i++)
				out[i] = (char)tolower((unsigned char)p[i]);
			out[i] = '\0';
			rc = 0;
		}
		OPENSSL_free(hex);
	}
	BN_free(bn);
	return rc;
}

int
kcauth_resolve(struct keyclient *kc, SSL *ssl, kcauth_fn cb, void *arg)
{
	struct kcauth_job	*j;
	X509			*cert;
	char			 serial[64], path[96];
	size_t			 i;

	if (ssl == NULL || (cert = SSL_get0_peer_certificate(ssl)) == NULL ||
	    SSL_get_verify_result(ssl) != X509_V_OK) {
		err_set(ERR_PERM, "a client certificate is required");
		return ERR_PERM;
	}
	j = xcalloc(1, sizeof(*j));
	j->kc = kc;
	j->cb = cb;
	j->arg = arg;
	if (tls_peer_cn(j->c.name, sizeof(j->c.name), ssl) < 0 ||
	    kcauth_serial(serial, sizeof(serial), cert) < 0) {
		free(j);
		err_set(ERR_PERM, "unusable client certificate");
		return ERR_PERM;
	}
	if (strchr(j->c.name, '@') != NULL)	/* addresses: lower case */
		for (i = 0; j->c.name[i] != '\0'; i++)
			j->c.name[i] = (char)tolower((unsigned char)j->c.name[i]);
	snprintf(path, sizeof(path), "/v1/certs/%s", serial);
	if (keyclient_call(kc, "GET", path, NULL, KEYCLIENT_IDEMPOTENT,
	    kcauth_cert_cb, j) < 0) {
		free(j);
		err_set(ERR_IO, "keyservice busy");
		return ERR_IO;
	}
	return 0;
}

int
kcauth_client_new(struct keyclient **out, struct daemon *d, const char *cert,
    const char *key, unsigned conns)
{
	const struct amanat_conf	*cf = &d->conf;
	struct tls_opts			 o;
	SSL_CTX				*ctx;
	int				 rc;

	memset(&o, 0, sizeof(o));
	o.cert = cert;
	o.key = key;
	o.ca = cf->tls.ca;
	o.ciphers = cf->tls.ciphers;
	o.ciphersuites = cf->tls.ciphersuites;
	o.min_version = cf->tls.min_version;
	o.verify = TLS_VERIFY_REQUIRE;
	if ((rc = tls_client_ctx_new(&ctx, &o)) < 0)
		return rc;
	rc = keyclient_new(out, d->base, cf->keyservice.http.listen, ctx,
	    conns);
	SSL_CTX_free(ctx);
	return rc;
}
