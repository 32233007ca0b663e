/*
 * ca.h -- the node's internal certificate authority.
 *
 * A root CA (ECDSA P-256, 10 years) issues: TLS server certificates for
 * the node's services, client certificates for services and the admin
 * CLI (mTLS to keyservice).  Later: user S/MIME certificates, CRLs.
 */
#ifndef KEYSERVICE_CA_H
#define KEYSERVICE_CA_H

#include <openssl/evp.h>
#include <openssl/x509.h>

enum ca_profile {
	CA_PROFILE_SERVER = 0,	/* serverAuth, SANs from names */
	CA_PROFILE_CLIENT,	/* clientAuth, CN = service or user */
};

struct ca {
	EVP_PKEY	*key;
	X509		*cert;
};

/* Create a new root: key and self-signed certificate with this CN. */
int	ca_create(struct ca *, const char *);
/* Load from PEM files. */
int	ca_load(struct ca *, const char *, const char *);
void	ca_free(struct ca *);

/*
 * Issue a certificate for a fresh P-256 key: cn is the subject CN;
 * names (server profile) is a comma-separated list of DNS names and IP
 * addresses for the subjectAltName.  days is the validity.
 */
int	ca_issue(EVP_PKEY **, X509 **, struct ca *, enum ca_profile,
	    const char *, const char *, int);

/* PEM helpers: write key (0600) or certificate (0644) durably. */
int	ca_write_key(const char *, EVP_PKEY *);
int	ca_write_cert(const char *, X509 *, X509 *);

#endif
