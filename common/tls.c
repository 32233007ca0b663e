/*
 * tls.c -- OpenSSL server and client contexts with the node's policy.
 *
 * Runs in: every daemon and the CLI.
 * Failure policy: context construction returns ERR_INVAL/ERR_IO with one
 * err_msg() line holding OpenSSL's reasons; nothing is half-configured.
 * SECURITY: TLS 1.2 minimum, AEAD-only ECDHE suites for 1.2, compression
 * and renegotiation off; client contexts always verify the server chain.
 * Private keys are loaded by OpenSSL directly from their (0600) files.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/conf.h"
#include "common/err.h"
#include "common/tls.h"

int
tls_error(const char *what)
{
	char		 reasons[ERR_MSG_MAX];
	char		 one[256];
	unsigned long	 e;
	size_t		 n = 0;

	reasons[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, one, sizeof(one));
		if (n + strlen(one) + 3 < sizeof(reasons)) {
			n += (size_t)snprintf(reasons + n, sizeof(reasons) - n,
			    "%s%s", n ? "; " : "", one);
		}
	}
	err_set(ERR_GENERIC, "%s: %s", what, n ? reasons : "unknown TLS error");
	return ERR_GENERIC;
}

static int
tls_ctx_common(SSL_CTX *ctx, const struct tls_opts *o)
{
	int	minv = o->min_version == TLS_MIN_1_3 ? TLS1_3_VERSION :
	    TLS1_2_VERSION;

	if (!SSL_CTX_set_min_proto_version(ctx, minv))
		return tls_error("set minimum TLS version");
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* idle connections keep no read/write buffers */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (!SSL_CTX_set_cipher_list(ctx, o->ciphers ? o->ciphers :
	    AMANAT_TLS_CIPHERS))
		return tls_error("cipher list");
	if (!SSL_CTX_set_ciphersuites(ctx, o->ciphersuites ?
	    o->ciphersuites : AMANAT_TLS_CIPHERSUITES))
		return tls_error("TLS 1.3 ciphersuites");
	if (o->cert != NULL) {
		if (!SSL_CTX_use_certificate_chain_file(ctx, o->cert))
			return tls_error(o->cert);
		if (!SSL_CTX_use_PrivateKey_file(ctx, o->key,
		    SSL_FILETYPE_PEM))
			return tls_error(o->key);
		if (!SSL_CTX_check_private_key(ctx))
			return tls_error("certificate and key do not match");
	}
	if (o->ca != NULL && !SSL_CTX_load_verify_locations(ctx, o->ca, NULL))
		return tls_error(o->ca);
	return 0;
}

int
tls_server_ctx_new(SSL_CTX **out, const struct tls_opts *o)
{
	SSL_CTX			*ctx;
	STACK_OF(X509_NAME)	*names;
	static const unsigned char sid[] = "amanat";

	*out = NULL;
	if (o->cert == NULL || o->key == NULL) {
		err_set(ERR_INVAL, "a TLS server needs a certificate and key");
		return ERR_INVAL;
	}
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		return tls_error("SSL_CTX_new");
	if (tls_ctx_common(ctx, o) < 0)
		goto fail;
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	if (o->verify != TLS_VERIFY_NONE) {
		if (o->ca == NULL) {
			err_set(ERR_INVAL, "client verification needs a CA");
			goto fail;
		}
		if ((names = SSL_load_client_CA_file(o->ca)) == NULL) {
			tls_error(o->ca);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
		    (o->verify == TLS_VERIFY_REQUIRE ?
		    SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
	}
	*out = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return err_code() ? err_code() : ERR_GENERIC;
}

int
tls_client_ctx_new(SSL_CTX **out, const struct tls_opts *o)
{
	SSL_CTX	*ctx;

	*out = NULL;
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return tls_error("SSL_CTX_new");
	if (tls_ctx_common(ctx, o) < 0)
		goto fail;
	if (o->verify != TLS_VERIFY_NONE) {
		if (o->ca == NULL && !SSL_CTX_set_default_verify_paths(ctx)) {
			tls_error("default CA paths");
			goto fail;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	*out = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return err_code() ? err_code() : ERR_GENERIC;
}

int
tls_peer_cn(char *out, size_t outlen, SSL *ssl)
{
	X509		*cert;
	X509_NAME	*name;
	int		 n;

	if (outlen > 0)
		out[0] = '\0';
	if (ssl == NULL || SSL_get_verify_result(ssl) != X509_V_OK ||
	    (cert = SSL_get0_peer_certificate(ssl)) == NULL) {
		err_set(ERR_NOTFOUND, "no verified peer certificate");
		return ERR_NOTFOUND;
	}
	name = X509_get_subject_name(cert);
	n = X509_NAME_get_text_by_NID(name, NID_commonName, out, (int)outlen);
	if (n < 0 || (size_t)n >= outlen || strlen(out) != (size_t)n) {
		err_set(ERR_NOTFOUND, "peer certificate has no usable CN");
		if (outlen > 0)
			out[0] = '\0';
		return ERR_NOTFOUND;
	}
	return 0;
}

void
tls_describe(char *out, size_t outlen, SSL *ssl)
{
	if (ssl == NULL) {
		snprintf(out, outlen, "none");
		return;
	}
	snprintf(out, outlen, "%s %s", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl));
}
