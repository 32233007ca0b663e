/*
 * init.c -- node initialisation (keyservice --init).
 *
 * Creates, under the node's data directory: the 256-bit master key
 * ([keyservice] master_key, 0600), the node root CA (certificate at
 * [tls] ca, key in keyservice/ca.key, 0600) and the TLS server certificate
 * the services present ([tls] cert and key), for the names in
 * [tls] server_names.
 *
 * Runs in: keyservice, before the event loop, once per node.
 * Failure policy: refuses to run over an initialised node (ERR_EXISTS);
 * a failure part way leaves the files written so far, and a re-run
 * refuses until they are removed (the demo script starts from scratch).
 * SECURITY: keys come from the OpenSSL DRBG (RAND_priv_bytes), are
 * written 0600 in 0700 directories, and wiped from memory after use.
 */
#include <sys/stat.h>

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "common/err.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "keyservice/ca.h"
#include "keyservice/keyservice.h"

#define KS_SERVER_CERT_DAYS	825

static int
ks_mkparent(const char *path)
{
	char	*copy = xstrdup(path);
	int	 rc = mkdir_p(dirname(copy), 0700);

	free(copy);
	return rc;
}

static int
ks_write_master_key(const char *path)
{
	unsigned char	key[KS_MASTER_KEY_LEN];
	int		rc;

	if ((rc = ks_mkparent(path)) < 0)
		return rc;
	if (RAND_priv_bytes(key, sizeof(key)) != 1)
		return tls_error("RAND_priv_bytes");
	rc = file_write_atomic(path, key, sizeof(key), 0600);
	explicit_bzero(key, sizeof(key));
	return rc;
}

int
ks_node_init(struct daemon *d)
{
	const struct amanat_conf	*cf = &d->conf;
	struct ca			 ca;
	EVP_PKEY			*key = NULL;
	X509				*cert = NULL;
	char				*dir = NULL, *cakey = NULL;
	int				 rc;

	memset(&ca, 0, sizeof(ca));
	if (access(cf->tls.ca, F_OK) == 0 ||
	    access(cf->keyservice.master_key, F_OK) == 0) {
		err_set(ERR_EXISTS, "node already initialised (%s exists)",
		    cf->tls.ca);
		return ERR_EXISTS;
	}
	if ((rc = mkdir_p(cf->node.datadir, 0755)) < 0 ||
	    (dir = daemon_datadir(d)) == NULL) {
		rc = rc < 0 ? rc : ERR_IO;
		goto done;
	}
	cakey = path_join(dir, "ca.key");
	if ((rc = ks_write_master_key(cf->keyservice.master_key)) < 0)
		goto done;
	if ((rc = ca_create(&ca, cf->node.name)) < 0 ||
	    (rc = ca_write_key(cakey, ca.key)) < 0 ||
	    (rc = ks_mkparent(cf->tls.ca)) < 0 ||
	    (rc = ca_write_cert(cf->tls.ca, ca.cert, NULL)) < 0)
		goto done;
	if ((rc = ca_issue(&key, &cert, &ca, CA_PROFILE_SERVER,
	    cf->mailsrv.hostname, cf->tls.server_names,
	    KS_SERVER_CERT_DAYS)) < 0 ||
	    (rc = ks_mkparent(cf->tls.key)) < 0 ||
	    (rc = ca_write_key(cf->tls.key, key)) < 0 ||
	    (rc = ks_mkparent(cf->tls.cert)) < 0 ||
	    (rc = ca_write_cert(cf->tls.cert, cert, NULL)) < 0)
		goto done;
	log_info("keyservice init done ca=%s cert=%s names=%s", cf->tls.ca,
	    cf->tls.cert, cf->tls.server_names);
done:
	EVP_PKEY_free(key);
	X509_free(cert);
	ca_free(&ca);
	free(cakey);
	free(dir);
	return rc;
}
