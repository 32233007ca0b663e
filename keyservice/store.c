/*
 * store.c -- keyservice state: the LMDB store, the key hierarchy, the CA
 * (its key escrowed under the node key id), certificate records, the CRL.
 *
 * Runs in: keyservice, event loop thread (and node init).
 * Failure policy: start-up fails on any error (a keyservice that cannot
 * read its master key or CA must not serve); later errors are returned.
 * SECURITY: the master key file must be 0600 and exactly 32 bytes; its
 * bytes are wiped after keys_open() copied them.  The CA private key is
 * stored only wrapped (AES-256-GCM under the node KEK) and lives in this
 * process's memory while it runs.
 */
#include <string.h>
#include <time.h>

#include <openssl/x509v3.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "keyservice/keyservice.h"

#define KS_MAP_GROWTH	64	/* map may grow to map_size * this */
#define KS_SERVER_DAYS	825
#define KS_CLIENT_DAYS	730

static const char *const ks_profile_kinds[] = {
	"server", "client", "smime-sign", "smime-enc",
};

static int
ks_read_master(unsigned char *out, const char *path)
{
	char	*data = NULL;
	size_t	 len = 0;
	int	 rc;

	if ((rc = file_check_secret(path)) < 0)
		return rc;
	if ((rc = file_read_all(&data, &len, path, 4096)) < 0)
		return rc;
	if (len != KS_MASTER_KEY_LEN) {
		xfreezero(data, len + 1);
		err_set(ERR_INVAL, "%s: a master key is exactly %d bytes",
		    path, KS_MASTER_KEY_LEN);
		return ERR_INVAL;
	}
	memcpy(out, data, KS_MASTER_KEY_LEN);
	xfreezero(data, len + 1);
	return 0;
}

int
ks_store_open_base(struct keyservice *ks, const struct amanat_conf *cf)
{
	unsigned char	 master[KS_MASTER_KEY_LEN];
	char		*dir;
	size_t		 map = (size_t)cf->keyservice.map_size;
	int		 rc;

	xasprintf(&dir, "%s/keyservice/db", cf->node.datadir);
	rc = db_open(&ks->env, dir, map, map * KS_MAP_GROWTH, KS_MAXDBS);
	free(dir);
	if (rc < 0)
		return rc;
	if ((rc = dir_open(&ks->dir, ks->env)) < 0)
		return rc;
	if ((rc = ks_read_master(master, cf->keyservice.master_key)) < 0)
		return rc;
	rc = keys_open(&ks->keys, ks->env, master);
	explicit_bzero(master, sizeof(master));
	return rc;
}

int
ks_escrow_key(struct keyservice *ks, const char *name, const char *key_id,
    const char *context, EVP_PKEY *key)
{
	char	*pem = NULL, *wrapped = NULL;
	size_t	 len = 0;
	int	 rc;

	if ((rc = ca_key_to_pem(&pem, &len, key)) < 0)
		return rc;
	rc = keys_wrap(ks->keys, key_id, context, pem, len, &wrapped, NULL);
	xfreezero(pem, len);
	if (rc < 0)
		return rc;
	rc = dir_escrow_put(ks->dir, name, wrapped);
	free(wrapped);
	return rc;
}

int
ks_escrow_load(struct keyservice *ks, const char *name, const char *context,
    EVP_PKEY **out)
{
	char		*wrapped = NULL;
	unsigned char	*pem = NULL;
	size_t		 len = 0;
	int		 rc;

	*out = NULL;
	if ((rc = dir_escrow_get(ks->dir, name, &wrapped)) < 0)
		return rc;
	rc = keys_unwrap(ks->keys, wrapped, context, &pem, &len);
	free(wrapped);
	if (rc < 0)
		return rc;
	rc = ca_key_from_pem(out, (const char *)pem, len);
	xfreezero(pem, len);
	return rc;
}

int
ks_store_open(struct keyservice *ks, const struct amanat_conf *cf)
{
	X509	*cert = NULL;
	int	 rc;

	if ((rc = ks_store_open_base(ks, cf)) < 0)
		return rc;
	if ((rc = file_read_all(&ks->ca_pem, &ks->ca_pem_len, cf->tls.ca,
	    1024 * 1024)) < 0 ||
	    (rc = ca_cert_from_pem(&cert, ks->ca_pem, ks->ca_pem_len)) < 0)
		return rc;
	ks->ca.cert = cert;
	if ((rc = ks_escrow_load(ks, KS_CA_ESCROW, "ca-key", &ks->ca.key)) < 0)
		return rc;
	if (!X509_check_private_key(ks->ca.cert, ks->ca.key)) {
		err_set(ERR_INVAL, "%s does not match the escrowed CA key",
		    cf->tls.ca);
		return ERR_INVAL;
	}
	return ks_crl_refresh(ks);
}

void
ks_store_close(struct keyservice *ks)
{
	ca_free(&ks->ca);
	keys_close(&ks->keys);
	dir_close(&ks->dir);
	db_close(&ks->env);
	free(ks->ca_pem);
	free(ks->crl_pem);
	free(ks->crl_der);
	ks->ca_pem = ks->crl_pem = NULL;
	ks->crl_der = NULL;
}

int
ks_reserved_name(const char *name)
{
	static const char *const reserved[] = {
		KS_NODE_KEY_ID, "mailsrv", "docstore", "keyservice", "admin",
	};
	size_t	i;

	for (i = 0; i < nitems(reserved); i++)
		if (strcmp(name, reserved[i]) == 0)
			return 1;
	return 0;
}

void
ks_passwd_params(struct passwd_params *pw, const struct amanat_conf *cf)
{
	pw->memory_kib = (uint32_t)(cf->keyservice.argon2_memory / 1024);
	pw->time_cost = (uint32_t)cf->keyservice.argon2_time;
	pw->lanes = (uint32_t)cf->keyservice.argon2_lanes;
}

struct throttle *
ks_throttle_new(const struct amanat_conf *cf)
{
	struct throttle_params	tp;

	memset(&tp, 0, sizeof(tp));
	tp.free_failures = (unsigned)cf->keyservice.login_free_failures;
	tp.window_ms = (unsigned)cf->keyservice.login_window;
	tp.base_delay_ms = (unsigned)cf->keyservice.login_delay;
	tp.max_delay_ms = (unsigned)cf->keyservice.login_max_delay;
	tp.max_entries = 100000;
	return throttle_new(&tp);
}

static int64_t
ks_asn1_time(const ASN1_TIME *t)
{
	struct tm	tm;

	memset(&tm, 0, sizeof(tm));
	if (!ASN1_TIME_to_tm(t, &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

int
ks_cert_issue(struct keyservice *ks, enum ca_profile profile, EVP_PKEY *key,
    const char *cn, const char *names, X509 **cert_out, json_t **rec_out)
{
	const struct amanat_conf	*cf = &ks->d->conf;
	X509				*cert = NULL;
	json_t				*rec;
	char				 serial[CA_SERIAL_HEX_MAX], *pem = NULL;
	size_t				 len;
	int				 rc, days;

	days = profile == CA_PROFILE_SERVER ? KS_SERVER_DAYS :
	    profile == CA_PROFILE_CLIENT ? KS_CLIENT_DAYS : CA_USER_CERT_DAYS;
	if ((rc = ca_issue_for_key(&cert, &ks->ca, profile, key, cn, names,
	    days, cf->keyservice.crl_url)) < 0)
		return rc;
	if ((rc = ca_cert_to_pem(&pem, &len, cert)) < 0) {
		X509_free(cert);
		return rc;
	}
	ca_serial_hex(serial, cert);
	rec = json_pack("{s:i,s:s,s:s,s:s,s:I,s:I,s:s,s:s%}", "v", 1,
	    "serial", serial, "kind", ks_profile_kinds[profile], "subject",
	    cn, "not_before", (json_int_t)ks_asn1_time(X509_get0_notBefore(
	    cert)), "not_after", (json_int_t)ks_asn1_time(X509_get0_notAfter(
	    cert)), "status", "valid", "pem", pem, len);
	free(pem);
	if (names != NULL && profile != CA_PROFILE_SERVER)
		json_object_set_new(rec, "address", json_string(names));
	if ((rc = dir_cert_put(ks->dir, rec)) < 0) {
		json_decref(rec);
		X509_free(cert);
		return rc;
	}
	log_info("keyservice cert issued serial=%s kind=%s subject=%s",
	    serial, ks_profile_kinds[profile], cn);
	if (cert_out != NULL)
		*cert_out = cert;
	else
		X509_free(cert);
	if (rec_out != NULL)
		*rec_out = rec;
	else
		json_decref(rec);
	return 0;
}

json_t *
ks_cert_pem_of(struct keyservice *ks, const char *cn)
{
	json_t		*all, *rec, *pem = NULL;
	size_t		 i;

	if (dir_cert_by_subject(ks->dir, cn, &all) < 0)
		return NULL;
	json_array_foreach(all, i, rec)
		if (strcmp(json_string_value(json_object_get(rec, "status")) ?:
		    "", "valid") == 0)
			pem = json_object_get(rec, "pem");
	json_incref(pem);
	json_decref(all);
	return pem;
}

int
ks_revoke_reason(const char *reason)
{
	static const struct { const char *name; int code; } map[] = {
		{ "unspecified", CRL_REASON_UNSPECIFIED },
		{ "keyCompromise", CRL_REASON_KEY_COMPROMISE },
		{ "affiliationChanged", CRL_REASON_AFFILIATION_CHANGED },
		{ "superseded", CRL_REASON_SUPERSEDED },
		{ "cessationOfOperation", CRL_REASON_CESSATION_OF_OPERATION },
	};
	size_t	i;

	for (i = 0; reason != NULL && i < nitems(map); i++)
		if (strcmp(reason, map[i].name) == 0)
			return map[i].code;
	return -1;
}

int
ks_revoke_all(struct keyservice *ks, const char *addr, const char *reason)
{
	char		 norm[DIR_ADDRESS_MAX + 1];
	json_t		*certs, *rec;
	const char	*status;
	size_t		 i, n = 0;
	int		 rc;

	if ((rc = dir_address_norm(norm, addr, NULL)) < 0 ||
	    (rc = dir_cert_list(ks->dir, norm, &certs)) < 0)
		return rc;
	json_array_foreach(certs, i, rec) {
		status = json_string_value(json_object_get(rec, "status"));
		if (status == NULL || strcmp(status, "valid") != 0)
			continue;
		if ((rc = dir_cert_revoke(ks->dir, json_string_value(
		    json_object_get(rec, "serial")), reason, (int64_t)time(NULL),
		    NULL)) < 0)
			break;
		n++;
	}
	json_decref(certs);
	if (rc == 0 && n > 0) {
		log_info("keyservice certs revoked address=%s count=%zu "
		    "reason=%s", norm, n, reason);
		rc = ks_crl_refresh(ks);
	}
	return rc;
}

int
ks_crl_refresh(struct keyservice *ks)
{
	struct ca_revoked	*list = NULL;
	json_t			*revoked, *rec;
	uint64_t		 number;
	size_t			 i, n;
	char			*pem = NULL;
	unsigned char		*der = NULL;
	size_t			 pemlen = 0, derlen = 0;
	int			 rc;

	if ((rc = dir_cert_revoked(ks->dir, &revoked)) < 0)
		return rc;
	n = json_array_size(revoked);
	if (n > 0)
		list = xcalloc(n, sizeof(*list));
	json_array_foreach(revoked, i, rec) {
		list[i].serial_hex = json_string_value(json_object_get(rec,
		    "serial"));
		list[i].when = json_integer_value(json_object_get(rec,
		    "revoked_at"));
		if ((list[i].reason = ks_revoke_reason(json_string_value(
		    json_object_get(rec, "reason")))) < 0)
			list[i].reason = CRL_REASON_UNSPECIFIED;
	}
	if ((rc = dir_counter_next(ks->dir, "crl_number", &number)) == 0)
		rc = ca_crl(&pem, &pemlen, &der, &derlen, &ks->ca, list, n,
		    number, KS_CRL_DAYS);
	free(list);
	json_decref(revoked);
	if (rc < 0)
		return rc;
	free(ks->crl_pem);
	free(ks->crl_der);
	ks->crl_pem = pem;
	ks->crl_pem_len = pemlen;
	ks->crl_der = der;
	ks->crl_der_len = derlen;
	log_info("keyservice crl issued number=%llu revoked=%zu",
	    (unsigned long long)number, n);
	return 0;
}
