/*
 * init.c -- node initialisation (keyservice --init [--demo]).
 *
 * Creates, under the node's data directory:
 *   - the 256-bit master key ([keyservice] master_key, 0600);
 *   - the LMDB store with the "node" key id (wraps node secrets);
 *   - the node root CA: certificate at [tls] ca, key escrowed (wrapped);
 *   - the TLS server certificate every daemon serves ([tls] cert, key)
 *     for [tls] server_names;
 *   - client certificates (mutual TLS to keyservice) for the admin CLI
 *     ([cli]) and the services ([mailsrv_client], [docstore_client]), and
 *     their principals in the directory;
 *   - an Ed25519 signing key per service (raw signatures: audit
 *     checkpoints), escrowed.
 * With --demo: two departments with a domain each, a security officer, a
 * department admin and two users per department with S/MIME
 * certificates; their addresses and generated passwords go to
 * <datadir>/demo-users.txt (0600).
 *
 * Runs in: keyservice, before any event loop, once per node.
 * Failure policy: refuses to run over an initialised node (ERR_EXISTS);
 * a failure part way leaves what was written (remove the data directory
 * and run again).
 * SECURITY: keys come from the OpenSSL DRBG; key files are written 0600
 * in 0700 directories; generated passwords are written only to the 0600
 * demo file and wiped from memory.
 */
#include <sys/stat.h>

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "keyservice/ca.h"
#include "keyservice/keyservice.h"

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

/* A fresh EC key, a certificate for it, both written to files. */
static int
ks_issue_files(struct keyservice *ks, enum ca_profile profile,
    const char *cn, const char *names, const char *certfile,
    const char *keyfile)
{
	EVP_PKEY	*key = NULL;
	X509		*cert = NULL;
	int		 rc;

	if ((rc = ca_newkey_ec(&key)) < 0)
		return rc;
	if ((rc = ks_cert_issue(ks, profile, key, cn, names, &cert,
	    NULL)) == 0 &&
	    (rc = ks_mkparent(keyfile)) == 0 &&
	    (rc = ca_write_key(keyfile, key)) == 0 &&
	    (rc = ks_mkparent(certfile)) == 0)
		rc = ca_write_cert(certfile, cert, NULL);
	EVP_PKEY_free(key);
	X509_free(cert);
	return rc;
}

/*
 * A principal's Ed25519 signing key (audit checkpoints), escrowed, and a
 * certificate for it (CN "sign:<principal>") so that anyone holding the
 * CA certificate can verify what it signed, offline.
 */
static int
ks_signing_key(struct keyservice *ks, const char *principal)
{
	EVP_PKEY	*key = NULL;
	char		 name[96], ctx[96];
	int		 rc;

	snprintf(name, sizeof(name), "sign-%s", principal);
	snprintf(ctx, sizeof(ctx), "sign:%s", principal);
	if ((rc = ca_newkey_ed25519(&key)) < 0)
		return rc;
	if ((rc = ks_escrow_key(ks, name, KS_NODE_KEY_ID, ctx, key)) == 0)
		rc = ks_cert_issue(ks, CA_PROFILE_CLIENT, key, ctx, NULL, NULL,
		    NULL);
	EVP_PKEY_free(key);
	return rc;
}

static int
ks_init_principals(struct keyservice *ks, const struct amanat_conf *cf)
{
	static const char *const services[] = { "mailsrv", "docstore" };
	const char	*certs[] = { cf->mailsrv_client.cert,
	    cf->docstore_client.cert };
	const char	*keys[] = { cf->mailsrv_client.key,
	    cf->docstore_client.key };
	size_t		 i;
	int		 rc;

	if ((rc = ks_issue_files(ks, CA_PROFILE_CLIENT, "admin", NULL,
	    cf->cli.cert, cf->cli.key)) < 0 ||
	    (rc = dir_principal_put(ks->dir, "admin", "admin")) < 0)
		return rc;
	for (i = 0; i < nitems(services); i++) {
		/* each service's own key id (mailsrv: its queue key) */
		if ((rc = keys_create(ks->keys, services[i])) < 0 ||
		    (rc = ks_issue_files(ks, CA_PROFILE_CLIENT, services[i],
		    NULL, certs[i], keys[i])) < 0 ||
		    (rc = dir_principal_put(ks->dir, services[i],
		    "service")) < 0 ||
		    (rc = ks_signing_key(ks, services[i])) < 0)
			return rc;
	}
	return ks_signing_key(ks, "keyservice");
}

/* ------------------------------------------------------------ demo */

struct ks_demo_user {
	const char	*address;
	const char	*display;
	const char	*roles;		/* comma-separated */
};

static const struct ks_demo_user ks_demo_users[] = {
	{ "alice@finance.amanat.test", "Alice Finance", "user" },
	{ "bob@finance.amanat.test", "Bob Finance", "user" },
	{ "fatima@finance.amanat.test", "Fatima (finance admin)",
	    "user,dept-admin" },
	{ "sofia@finance.amanat.test", "Sofia (security officer)",
	    "user,security-officer" },
	{ "postmaster@finance.amanat.test", "Postmaster (finance)", "user" },
	{ "carol@health.amanat.test", "Carol Health", "user" },
	{ "dave@health.amanat.test", "Dave Health", "user" },
	{ "hamid@health.amanat.test", "Hamid (health admin)",
	    "user,dept-admin" },
	{ "postmaster@health.amanat.test", "Postmaster (health)", "user" },
};

static int
ks_demo_user(struct keyservice *ks, const struct ks_demo_user *u,
    struct buf *out)
{
	char		 pw[PASSWD_GEN_LEN + 1], hash[PASSWD_HASH_MAX];
	char		 rolebuf[64], *r, *save = NULL;
	char		 dept[DIR_DEPT_MAX + 1];
	EVP_PKEY	*sign = NULL, *enc = NULL;
	json_t		*roles = json_array();
	int		 rc;

	snprintf(rolebuf, sizeof(rolebuf), "%s", u->roles);
	for (r = strtok_r(rolebuf, ",", &save); r != NULL;
	    r = strtok_r(NULL, ",", &save))
		json_array_append_new(roles, json_string(r));
	passwd_generate(pw);
	rc = passwd_hash(hash, sizeof(hash), pw, strlen(pw), &ks->pw);
	if (rc == 0)
		rc = dir_user_add(ks->dir, u->address, u->display, roles, hash,
		    NULL);
	json_decref(roles);
	if (rc == 0)
		rc = dir_domain_dept(ks->dir, strchr(u->address, '@') + 1,
		    dept);
	if (rc == 0 && (rc = ks_smime_keygen(&sign, &enc)) == 0)
		rc = ks_smime_finish(ks, u->address, dept, sign, enc, NULL);
	EVP_PKEY_free(sign);
	EVP_PKEY_free(enc);
	if (rc == 0)
		rc = buf_printf(out, "%-30s %-24s %s\n", u->address, pw,
		    u->roles);
	explicit_bzero(pw, sizeof(pw));
	return rc;
}

static int
ks_init_demo(struct keyservice *ks, const struct amanat_conf *cf)
{
	static const char *const depts[][3] = {
		{ "finance", "Ministry of Finance", "finance.amanat.test" },
		{ "health", "Ministry of Health", "health.amanat.test" },
	};
	struct buf	 out;
	char		*path = path_join(cf->node.datadir, "demo-users.txt");
	size_t		 i;
	int		 rc = 0;

	buf_init(&out, 64 * 1024);
	(void)buf_printf(&out, "# Amanat demo node users (generated at init;"
	    " keep private)\n# %-28s %-24s %s\n", "address", "password",
	    "roles");
	for (i = 0; i < nitems(depts) && rc == 0; i++) {
		json_t	*doms = json_pack("[s]", depts[i][2]);

		rc = dir_dept_add(ks->dir, depts[i][0], depts[i][1], doms,
		    NULL);
		json_decref(doms);
		if (rc == 0)
			rc = keys_create(ks->keys, depts[i][0]);
	}
	for (i = 0; i < nitems(ks_demo_users) && rc == 0; i++)
		rc = ks_demo_user(ks, &ks_demo_users[i], &out);
	if (rc == 0)
		rc = file_write_atomic(path, out.data, out.len, 0600);
	if (rc == 0)
		log_info("keyservice demo users written path=%s", path);
	buf_free_secret(&out);
	free(path);
	return rc;
}

/* ------------------------------------------------------------ init */

int
ks_node_init(struct daemon *d)
{
	const struct amanat_conf	*cf = &d->conf;
	struct keyservice		 ks;
	int				 rc;

	memset(&ks, 0, sizeof(ks));
	ks.d = d;
	ks_passwd_params(&ks.pw, cf);
	if (access(cf->tls.ca, F_OK) == 0 ||
	    access(cf->keyservice.master_key, F_OK) == 0) {
		err_set(ERR_EXISTS, "node already initialised (%s exists)",
		    cf->tls.ca);
		return ERR_EXISTS;
	}
	if ((rc = mkdir_p(cf->node.datadir, 0755)) < 0 ||
	    (rc = ks_write_master_key(cf->keyservice.master_key)) < 0 ||
	    (rc = ks_store_open_base(&ks, cf)) < 0 ||
	    (rc = keys_create(ks.keys, KS_NODE_KEY_ID)) < 0)
		goto done;
	if ((rc = ca_create(&ks.ca, cf->node.name)) < 0 ||
	    (rc = ks_mkparent(cf->tls.ca)) < 0 ||
	    (rc = ca_write_cert(cf->tls.ca, ks.ca.cert, NULL)) < 0 ||
	    (rc = ks_escrow_key(&ks, KS_CA_ESCROW, KS_NODE_KEY_ID, "ca-key",
	    ks.ca.key)) < 0)
		goto done;
	if ((rc = ks_issue_files(&ks, CA_PROFILE_SERVER,
	    cf->mailsrv.hostname, cf->tls.server_names, cf->tls.cert,
	    cf->tls.key)) < 0 ||
	    (rc = ks_init_principals(&ks, cf)) < 0)
		goto done;
	if (d->demo && (rc = ks_init_demo(&ks, cf)) < 0)
		goto done;
	log_info("keyservice init done ca=%s cert=%s names=%s demo=%d",
	    cf->tls.ca, cf->tls.cert, cf->tls.server_names, d->demo);
done:
	ks_store_close(&ks);
	return rc;
}
