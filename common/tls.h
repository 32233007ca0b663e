/*
 * tls.h -- OpenSSL contexts with the node's TLS policy.
 *
 * Policy lives here and only here: TLS 1.2 minimum (1.3 if configured),
 * AEAD ECDHE ciphers for 1.2, no compression, no renegotiation, server
 * cipher preference.  Certificate verification for mTLS: the peer must
 * chain to the configured CA.
 */
#ifndef COMMON_TLS_H
#define COMMON_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#define AMANAT_TLS_CIPHERS \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
#define AMANAT_TLS_CIPHERSUITES \
	"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:" \
	"TLS_AES_128_GCM_SHA256"

enum tls_verify {
	TLS_VERIFY_NONE = 0,	/* server: don't ask for a client cert */
	TLS_VERIFY_OPTIONAL,	/* server: ask; verify if one is sent */
	TLS_VERIFY_REQUIRE,	/* server: mTLS; client: verify server */
};

struct tls_opts {
	const char	*cert;		/* PEM chain; NULL for none */
	const char	*key;		/* PEM private key */
	const char	*ca;		/* PEM CA bundle for peer verification */
	const char	*ciphers;	/* NULL = AMANAT_TLS_CIPHERS */
	const char	*ciphersuites;	/* NULL = AMANAT_TLS_CIPHERSUITES */
	int		 min_version;	/* enum tls_min (common/conf.h) */
	int		 verify;	/* enum tls_verify */
};

/* Build a server or client context; ERR_INVAL/ERR_IO with err_msg(). */
int	tls_server_ctx_new(SSL_CTX **, const struct tls_opts *);
int	tls_client_ctx_new(SSL_CTX **, const struct tls_opts *);

/*
 * Drain the OpenSSL error queue into one err_set(ERR_GENERIC, ...) line
 * prefixed with what; returns ERR_GENERIC.
 */
int	tls_error(const char *);

/*
 * After a handshake with a verified peer certificate: copy the subject
 * CN into out (NUL-terminated).  ERR_NOTFOUND if no verified cert.
 */
int	tls_peer_cn(char *, size_t, SSL *);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for logs and Received headers. */
void	tls_describe(char *, size_t, SSL *);

#endif
