/*
 * keyservice.h -- the node's root of trust: shared state of its modules.
 */
#ifndef KEYSERVICE_KEYSERVICE_H
#define KEYSERVICE_KEYSERVICE_H

#include <stddef.h>

#include "common/daemon.h"
#include "common/db.h"
#include "common/http.h"
#include "common/auditsvc.h"
#include "common/worker.h"
#include "keyservice/ca.h"
#include "keyservice/directory.h"
#include "keyservice/keys.h"
#include "keyservice/passwd.h"

#define KS_MASTER_KEY_LEN	32
#define KS_NODE_KEY_ID		"node"		/* wraps node-level secrets */
#define KS_CA_ESCROW		"node-ca"	/* escrow name of the CA key */
#define KS_CRL_DAYS		7
#define KS_MAXDBS		16

struct keyservice {
	struct daemon		*d;
	struct http_server	*http;		/* mTLS API */
	struct http_server	*pub;		/* plain: CRL, CA cert */
	struct db_env		*env;
	struct dir		*dir;
	struct keys		*keys;
	struct ca		 ca;
	struct worker_pool	*workers;
	struct throttle		*throttle;
	struct passwd_params	 pw;
	char			 dummy_hash[PASSWD_HASH_MAX];	/* timing */
	char			*ca_pem;
	size_t			 ca_pem_len;
	char			*crl_pem;
	size_t			 crl_pem_len;
	unsigned char		*crl_der;
	size_t			 crl_der_len;
	struct event		*crl_timer;
	struct auditsvc		*audit;
	char			*sign_cert;	/* PEM: checkpoint key */
};

/*
 * Key ids and names keyservice keeps for itself and the services: no
 * department may take one ("node", "mailsrv", "docstore", "keyservice",
 * "admin").
 */
int	ks_reserved_name(const char *);

/* store.c: open/close the LMDB store, the key hierarchy and the CA. */
int	ks_store_open(struct keyservice *, const struct amanat_conf *);
/* The store without the CA: what node init needs first. */
int	ks_store_open_base(struct keyservice *, const struct amanat_conf *);
void	ks_store_close(struct keyservice *);
/* Argon2 parameters and throttle settings from the config. */
void	ks_passwd_params(struct passwd_params *, const struct amanat_conf *);
struct throttle	*ks_throttle_new(const struct amanat_conf *);
/*
 * The PEM of the valid certificate whose subject CN is cn (e.g. the
 * signing key's "sign:<principal>"), as a new JSON string, or NULL.
 */
json_t	*ks_cert_pem_of(struct keyservice *, const char *);
/* CRL_REASON_* of a reason name ("keyCompromise", ...), or -1. */
int	ks_revoke_reason(const char *);
/* Revoke every valid certificate of an address, then re-issue the CRL. */
int	ks_revoke_all(struct keyservice *, const char *, const char *);
/* Re-issue the CRL from the revoked certificates. */
int	ks_crl_refresh(struct keyservice *);
/*
 * Issue a certificate for key, record it in the directory, and return
 * its record (a new reference).  address may be NULL.
 */
int	ks_cert_issue(struct keyservice *, enum ca_profile, EVP_PKEY *,
	    const char *, const char *, X509 **, json_t **);
/* Wrap a private key under key_id with context and escrow it as name. */
int	ks_escrow_key(struct keyservice *, const char *, const char *,
	    const char *, EVP_PKEY *);
/* Unwrap an escrowed private key. */
int	ks_escrow_load(struct keyservice *, const char *, const char *,
	    EVP_PKEY **);

/*
 * certs.c: a user's S/MIME pair.  keygen (two RSA-3072 keys) is slow and
 * runs on a worker; finish issues both certificates and escrows both keys
 * under the department's KEK, on the loop thread.  *out (may be NULL):
 * {"signing": cert, "encryption": cert}.
 */
int	ks_smime_keygen(EVP_PKEY **, EVP_PKEY **);
int	ks_smime_finish(struct keyservice *, const char *, const char *,
	    EVP_PKEY *, EVP_PKEY *, json_t **);

/* ks_audit.c: open the audit log (checkpoints signed locally). */
int	ks_audit_start(struct keyservice *);

/* init.c: node init (keyservice --init [--demo]). */
int	ks_node_init(struct daemon *);

/* api*.c: the HTTPS API (routes) and the public listener. */
extern const struct http_route	ks_api_routes[];
extern const struct http_route	ks_pub_routes[];

#endif
