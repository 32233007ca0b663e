/*
 * ca.h -- the node's internal certificate authority.
 *
 * A root CA (ECDSA P-256, 10 years) issues: TLS server certificates for
 * the node's services, client certificates for services and the admin
 * CLI (mTLS to keyservice).  Later: user S/MIME certificates, CRLs.
 */
#ifndef KEYSERVICE_CA_H
#define KEYSERVICE_CA_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

enum ca_profile {
	CA_PROFILE_SERVER = 0,	/* serverAuth, SANs from names */
	CA_PROFILE_CLIENT,	/* clientAuth, CN = service or user */
	CA_PROFILE_SMIME_SIGN,	/* digitalSignature (+nonRepudiation),
				 * emailProtection, rfc822Name SAN */
	CA_PROFILE_SMIME_ENC,	/* keyEncipherment, emailProtection,
				 * rfc822Name SAN */
};

#define CA_SERIAL_HEX_MAX	41	/* 20 bytes in hex + NUL */
#define CA_USER_CERT_DAYS	730

/* One revoked certificate for a CRL. */
struct ca_revoked {
	const char	*serial_hex;	/* as ca_serial_hex() gives it */
	int64_t		 when;		/* unix seconds */
	int		 reason;	/* CRL_REASON_* of <openssl/x509v3.h> */
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

/*
 * Issue a certificate for an existing public key (a fresh S/MIME key, or
 * the key of a verified CSR).  cn: subject CN.  names: the server
 * profile's SAN list (as ca_issue), or the e-mail address for the S/MIME
 * and client profiles (rfc822Name SAN; a client cert for a user carries
 * it too; NULL for a service client cert).  crl_url: the CRL
 * distribution point to name, or NULL.
 */
int	ca_issue_for_key(X509 **, struct ca *, enum ca_profile, EVP_PKEY *,
	    const char *, const char *, int, const char *);
/* Fresh keys. */
int	ca_newkey_ec(EVP_PKEY **);		/* P-256 */
int	ca_newkey_rsa(EVP_PKEY **, int);	/* RSA-3072 for S/MIME */
int	ca_newkey_ed25519(EVP_PKEY **);		/* raw signatures */
/* Parse a PEM CSR and verify its self-signature; ERR_INVAL otherwise. */
int	ca_csr_parse(X509_REQ **, const char *, size_t);
/* Lower-case hex serial, no leading zeros, into CA_SERIAL_HEX_MAX bytes. */
void	ca_serial_hex(char *, X509 *);
/*
 * A CRL signed by the CA: the revoked list, crl_number, thisUpdate now,
 * nextUpdate in next_days.  PEM into *pem_out and DER into *der_out
 * (either may be NULL); caller frees.
 */
int	ca_crl(char **, size_t *, unsigned char **, size_t *, struct ca *,
	    const struct ca_revoked *, size_t, uint64_t, int);
/*
 * PKCS#12 with a passphrase holding the user's signing and encryption
 * keys and certificates (each key paired with its certificate by
 * localKeyID, friendlyName "<address> signing" / "<address> encryption")
 * and the CA certificate.  AES-256-CBC with PBKDF2 and a SHA-256 MAC.
 */
int	ca_pkcs12(unsigned char **, size_t *, const char *, EVP_PKEY *,
	    X509 *, EVP_PKEY *, X509 *, X509 *, const char *);
/*
 * CMS SignedData, detached, DER, over data with the signer's key and
 * certificate (certificate included; the CA certificate too).
 */
int	ca_cms_sign(unsigned char **, size_t *, X509 *, EVP_PKEY *, X509 *,
	    const void *, size_t);
/* Raw signature (Ed25519 for an Ed25519 key, ECDSA-SHA256 otherwise). */
int	ca_sign_raw(unsigned char **, size_t *, EVP_PKEY *, const void *,
	    size_t);
/* Private key <-> PEM (PKCS#8, unencrypted: callers wrap it with keys). */
int	ca_key_to_pem(char **, size_t *, EVP_PKEY *);
int	ca_key_from_pem(EVP_PKEY **, const char *, size_t);
int	ca_cert_to_pem(char **, size_t *, X509 *);
int	ca_cert_from_pem(X509 **, const char *, size_t);

/* PEM helpers: write key (0600) or certificate (0644) durably. */
int	ca_write_key(const char *, EVP_PKEY *);
int	ca_write_cert(const char *, X509 *, X509 *);

#endif
