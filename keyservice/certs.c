/*
 * certs.c -- keyservice API: S/MIME certificates for users (keys
 * escrowed under the department KEK), PKCS#12 export, client
 * certificates from CSRs, look-up, revocation, and the public CRL.
 *
 * Runs in: keyservice, event loop thread; RSA key generation and PKCS#12
 * encryption run on the worker pool.
 * Failure policy: JSON errors; a revocation re-issues the CRL before it
 * answers, so a 200 means the served CRL already lists the certificate.
 * SECURITY: private keys are generated here and stored only wrapped; an
 * export needs the admin, the user's dept-admin or the user, and a
 * passphrase; the PKCS#12 is encrypted (AES-256, PBKDF2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "common/base64.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "keyservice/api.h"

#define KS_RSA_BITS		3072
#define KS_PASSPHRASE_MAX	1024
#define KS_CSR_MAX		(16 * 1024)

/* ------------------------------------------------------------ S/MIME */

int
ks_smime_keygen(EVP_PKEY **sign, EVP_PKEY **enc)
{
	int	rc;

	*sign = *enc = NULL;
	if ((rc = ca_newkey_rsa(sign, KS_RSA_BITS)) < 0 ||
	    (rc = ca_newkey_rsa(enc, KS_RSA_BITS)) < 0) {
		EVP_PKEY_free(*sign);
		*sign = NULL;
	}
	return rc;
}

static int
ks_smime_one(struct keyservice *ks, enum ca_profile profile,
    const char *addr, const char *dept, EVP_PKEY *key, json_t **rec)
{
	char	ctx[DIR_ADDRESS_MAX + CA_SERIAL_HEX_MAX + 16];
	int	rc;

	if ((rc = ks_cert_issue(ks, profile, key, addr, addr, NULL, rec)) < 0)
		return rc;
	snprintf(ctx, sizeof(ctx), "smime:%s:%s", addr, json_string_value(
	    json_object_get(*rec, "serial")));
	return ks_escrow_key(ks, json_string_value(json_object_get(*rec,
	    "serial")), dept, ctx, key);
}

int
ks_smime_finish(struct keyservice *ks, const char *addr, const char *dept,
    EVP_PKEY *sign, EVP_PKEY *enc, json_t **out)
{
	json_t	*srec = NULL, *erec = NULL;
	int	 rc;

	if ((rc = ks_smime_one(ks, CA_PROFILE_SMIME_SIGN, addr, dept, sign,
	    &srec)) == 0)
		rc = ks_smime_one(ks, CA_PROFILE_SMIME_ENC, addr, dept, enc,
		    &erec);
	if (rc == 0 && out != NULL) {
		json_object_del(srec, "v");
		json_object_del(erec, "v");
		*out = json_pack("{s:O,s:O}", "signing", srec, "encryption",
		    erec);
	}
	json_decref(srec);
	json_decref(erec);
	return rc;
}

struct ks_certjob {
	struct keyservice	*ks;
	struct http_req		*req;
	char			 addr[DIR_ADDRESS_MAX + 1];
	char			 dept[DIR_DEPT_MAX + 1];
	char			 by[DIR_ADDRESS_MAX + 1];
	EVP_PKEY		*sign, *enc;
	X509			*scert, *ecert;
	char			*pass;
	unsigned char		*p12;
	size_t			 p12len;
	int			 rc;
	char			 err[ERR_MSG_MAX];
};

static void
ks_certjob_free(struct ks_certjob *j)
{
	EVP_PKEY_free(j->sign);
	EVP_PKEY_free(j->enc);
	X509_free(j->scert);
	X509_free(j->ecert);
	if (j->pass != NULL)
		xfreezero(j->pass, strlen(j->pass) + 1);
	if (j->p12 != NULL)
		xfreezero(j->p12, j->p12len);
	free(j);
}

static void
ks_certjob_submit(struct ks_certjob *j, worker_fn work, worker_fn done)
{
	if (worker_submit(j->ks->workers, work, done, j) < 0) {
		http_reply_error(j->req, 503, "busy", "too many key "
		    "operations in progress; try again");
		ks_certjob_free(j);
	}
}

static void
ks_work_keygen(void *arg)
{
	struct ks_certjob	*j = arg;

	if ((j->rc = ks_smime_keygen(&j->sign, &j->enc)) < 0)
		snprintf(j->err, sizeof(j->err), "%s", err_msg());
}

static void
ks_smime_done(void *arg)
{
	struct ks_certjob	*j = arg;
	json_t			*out = NULL;
	int			 rc = j->rc;

	if (rc < 0)
		err_set(rc, "%s", j->err);
	else
		rc = ks_smime_finish(j->ks, j->addr, j->dept, j->sign, j->enc,
		    &out);
	if (rc < 0)
		ks_reply_err(j->req, rc);
	else {
		log_info("keyservice smime issued address=%s by=%s", j->addr,
		    j->by);
		ks_audited(j->ks, j->req, j->by, "", NULL, "cert.issue",
		    j->addr, AUDIT_OK, 201, out);
	}
	ks_certjob_free(j);
}

/* Check the target user exists and the caller manages it. */
static int
ks_cert_target(struct keyservice *ks, struct http_req *req,
    const struct ks_caller *c, const char *addr, int self_ok, char *dept)
{
	json_t	*user;
	int	 rc;

	if ((rc = dir_user_get(ks->dir, addr, &user)) < 0) {
		ks_reply_err(req, rc);
		return -1;
	}
	snprintf(dept, DIR_DEPT_MAX + 1, "%s", json_string_value(
	    json_object_get(user, "dept")) ?: "");
	json_decref(user);
	if (ks_may_manage(c, dept) || (self_ok && c->user &&
	    strcmp(c->name, addr) == 0))
		return 0;
	return ks_forbid(req, "not a user you may manage");
}

void
ks_user_smime(struct keyservice *ks, struct http_req *req,
    const struct ks_caller *c, const char *addr)
{
	struct ks_certjob	*j;
	char			 dept[DIR_DEPT_MAX + 1];

	if (ks_cert_target(ks, req, c, addr, 0, dept) < 0)
		return;
	j = xcalloc(1, sizeof(*j));
	j->ks = ks;
	j->req = req;
	snprintf(j->addr, sizeof(j->addr), "%s", addr);
	snprintf(j->dept, sizeof(j->dept), "%s", dept);
	snprintf(j->by, sizeof(j->by), "%s", c->name);
	ks_certjob_submit(j, ks_work_keygen, ks_smime_done);
}

/* ------------------------------------------------------------ export */

/* The newest valid certificate of a kind and its escrowed key. */
static int
ks_load_pair(struct keyservice *ks, const char *addr, const char *kind,
    X509 **cert, EVP_PKEY **key)
{
	json_t		*certs, *rec, *best = NULL;
	const char	*pem, *serial;
	char		 ctx[DIR_ADDRESS_MAX + CA_SERIAL_HEX_MAX + 16];
	size_t		 i;
	int		 rc;

	if ((rc = dir_cert_list(ks->dir, addr, &certs)) < 0)
		return rc;
	json_array_foreach(certs, i, rec)
		if (strcmp(json_string_value(json_object_get(rec, "kind")) ?:
		    "", kind) == 0 && strcmp(json_string_value(
		    json_object_get(rec, "status")) ?: "", "valid") == 0)
			best = rec;
	if (best == NULL) {
		json_decref(certs);
		err_set(ERR_NOTFOUND, "%s has no valid %s certificate", addr,
		    kind);
		return ERR_NOTFOUND;
	}
	pem = json_string_value(json_object_get(best, "pem"));
	serial = json_string_value(json_object_get(best, "serial"));
	snprintf(ctx, sizeof(ctx), "smime:%s:%s", addr, serial);
	if ((rc = ca_cert_from_pem(cert, pem, strlen(pem))) == 0)
		rc = ks_escrow_load(ks, serial, ctx, key);
	json_decref(certs);
	return rc;
}

static void
ks_work_p12(void *arg)
{
	struct ks_certjob	*j = arg;

	if ((j->rc = ca_pkcs12(&j->p12, &j->p12len, j->addr, j->sign,
	    j->scert, j->enc, j->ecert, j->ks->ca.cert, j->pass)) < 0)
		snprintf(j->err, sizeof(j->err), "%s", err_msg());
}

static void
ks_export_done(void *arg)
{
	struct ks_certjob	*j = arg;
	char			*b;

	if (j->rc < 0) {
		err_set(j->rc, "%s", j->err);
		ks_reply_err(j->req, j->rc);
	} else {
		log_info("keyservice keys exported address=%s by=%s", j->addr,
		    j->by);
		b = b64_encode(j->p12, j->p12len);
		ks_audited(j->ks, j->req, j->by, "", NULL, "cert.export",
		    j->addr, AUDIT_OK, 200, json_pack("{s:s}", "pkcs12", b));
		explicit_bzero(b, strlen(b));
		free(b);
	}
	ks_certjob_free(j);
}

void
ks_user_export(struct keyservice *ks, struct http_req *req,
    const struct ks_caller *c, const char *addr)
{
	struct ks_certjob	*j;
	char			 dept[DIR_DEPT_MAX + 1];
	const char		*pass;
	json_t			*body;
	int			 bad = 0, rc;

	if (ks_cert_target(ks, req, c, addr, 1, dept) < 0)
		return;
	if ((body = http_req_json(req)) == NULL)
		return;
	pass = ks_field(req, body, "passphrase", KS_PASSPHRASE_MAX, 1, &bad);
	if (!bad && strlen(pass) == 0) {
		http_reply_error(req, 400, "invalid", "passphrase: required");
		bad = 1;
	}
	if (bad) {
		json_decref(body);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->ks = ks;
	j->req = req;
	j->pass = xstrdup(pass);
	json_decref(body);
	snprintf(j->addr, sizeof(j->addr), "%s", addr);
	snprintf(j->by, sizeof(j->by), "%s", c->name);
	if ((rc = ks_load_pair(ks, addr, "smime-sign", &j->scert,
	    &j->sign)) < 0 ||
	    (rc = ks_load_pair(ks, addr, "smime-enc", &j->ecert, &j->enc)) < 0) {
		ks_reply_err(req, rc);
		ks_certjob_free(j);
		return;
	}
	ks_certjob_submit(j, ks_work_p12, ks_export_done);
}

/* ------------------------------------------------------------ certs */

void
ks_h_cert_client(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	json_t			*body, *rec = NULL, *who;
	const char		*csrpem;
	char			 cn[DIR_ADDRESS_MAX + 1], dept[DIR_DEPT_MAX + 1];
	X509_REQ		*csr = NULL;
	EVP_PKEY		*pub;
	int			 bad = 0, rc, n;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if ((body = http_req_json(req)) == NULL)
		return;
	csrpem = ks_field(req, body, "csr", KS_CSR_MAX, 1, &bad);
	if (bad)
		goto done;
	if ((rc = ca_csr_parse(&csr, csrpem, strlen(csrpem))) < 0) {
		ks_reply_err(req, rc);
		goto done;
	}
	n = X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(csr),
	    NID_commonName, cn, sizeof(cn));
	if (n <= 0 || (size_t)n >= sizeof(cn) || strlen(cn) != (size_t)n) {
		http_reply_error(req, 400, "invalid", "csr: needs a CN");
		goto done;
	}
	if (strchr(cn, '@') != NULL) {
		/* the certificate names the canonical (lower-case) address */
		char	norm[DIR_ADDRESS_MAX + 1];

		if (dir_address_norm(norm, cn, NULL) < 0) {
			http_reply_error(req, 400, "invalid", "csr: CN is not "
			    "a valid address");
			goto done;
		}
		snprintf(cn, sizeof(cn), "%s", norm);
		if (ks_cert_target(ks, req, &c, cn, 0, dept) < 0)
			goto done;
	} else if (!c.admin) {
		ks_forbid(req, "only the node administrator certifies "
		    "principals");
		goto done;
	} else if (dir_principal_get(ks->dir, cn, &who) < 0) {
		http_reply_error(req, 404, "not_found", "no principal %s", cn);
		goto done;
	} else
		json_decref(who);
	pub = X509_REQ_get0_pubkey(csr);
	if ((rc = ks_cert_issue(ks, CA_PROFILE_CLIENT, pub, cn,
	    strchr(cn, '@') ? cn : NULL, NULL, &rec)) < 0) {
		ks_reply_err(req, rc);
		goto done;
	}
	json_object_del(rec, "v");
	log_info("keyservice client cert issued subject=%s by=%s", cn, c.name);
	ks_audited(ks, req, c.name, c.dept, NULL, "cert.issue", cn, AUDIT_OK,
	    201, rec);
done:
	X509_REQ_free(csr);
	json_decref(body);
}

void
ks_h_cert_list(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	const char		*q = http_req_query(req, "address");
	char			 addr[DIR_ADDRESS_MAX + 1];
	json_t			*all, *out, *rec;
	const char		*kind, *status;
	size_t			 i;
	int			 rc;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if (q == NULL || dir_address_norm(addr, q, NULL) < 0) {
		http_reply_error(req, 400, "invalid", "address: required");
		return;
	}
	if ((rc = dir_cert_list(ks->dir, addr, &all)) < 0) {
		ks_reply_err(req, rc);
		return;
	}
	out = json_array();
	json_array_foreach(all, i, rec) {
		kind = json_string_value(json_object_get(rec, "kind"));
		status = json_string_value(json_object_get(rec, "status"));
		if (kind != NULL && strncmp(kind, "smime-", 6) == 0 &&
		    status != NULL && strcmp(status, "valid") == 0) {
			json_object_del(rec, "v");
			json_array_append(out, rec);
		}
	}
	json_decref(all);
	http_reply_json(req, 200, json_pack("{s:o}", "certs", out));
}

void
ks_h_cert_get(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	json_t			*rec;
	int			 rc;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if ((rc = dir_cert_get(ks->dir, http_req_path_rest(req), &rec)) < 0) {
		ks_reply_err(req, rc);
		return;
	}
	json_object_del(rec, "v");
	http_reply_json(req, 200, rec);
}

/* May the caller revoke this certificate? */
static int
ks_may_revoke(struct keyservice *ks, const struct ks_caller *c, json_t *rec)
{
	const char	*addr = json_string_value(json_object_get(rec,
	    "address"));
	char		 dept[DIR_DEPT_MAX + 1];
	const char	*domain;
	char		 norm[DIR_ADDRESS_MAX + 1];

	if (c->admin)
		return 1;
	if (addr == NULL || !c->dept_admin ||
	    dir_address_norm(norm, addr, &domain) < 0 ||
	    dir_domain_dept(ks->dir, domain, dept) < 0)
		return 0;
	return strcmp(dept, c->dept) == 0;
}

void
ks_h_cert_post(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	const char		*rest = http_req_path_rest(req), *slash;
	const char		*reason = "unspecified";
	char			 serial[CA_SERIAL_HEX_MAX];
	json_t			*body = NULL, *rec = NULL, *out = NULL;
	size_t			 i;
	int			 bad = 0, rc;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if ((slash = strchr(rest, '/')) == NULL ||
	    strcmp(slash, "/revoke") != 0 ||
	    (size_t)(slash - rest) >= sizeof(serial)) {
		http_reply_error(req, 404, "not_found", "no such resource");
		return;
	}
	snprintf(serial, sizeof(serial), "%.*s", (int)(slash - rest), rest);
	if ((rc = dir_cert_get(ks->dir, serial, &rec)) < 0) {
		ks_reply_err(req, rc);
		return;
	}
	if (!ks_may_revoke(ks, &c, rec)) {
		ks_forbid(req, "not a certificate you may revoke");
		goto done;
	}
	if (http_req_body(req, &i) != NULL && i > 0) {
		if ((body = http_req_json(req)) == NULL)
			goto done;
		if ((reason = ks_field(req, body, "reason", 64, 0, &bad)) ==
		    NULL)
			reason = "unspecified";
		if (bad)
			goto done;
	}
	if (ks_revoke_reason(reason) < 0) {
		http_reply_error(req, 400, "invalid", "reason: one of "
		    "unspecified, keyCompromise, affiliationChanged, "
		    "superseded, cessationOfOperation");
		goto done;
	}
	if ((rc = dir_cert_revoke(ks->dir, serial, reason, ks_now(),
	    &out)) < 0 || (rc = ks_crl_refresh(ks)) < 0) {
		ks_reply_err(req, rc);
		goto done;
	}
	log_info("keyservice cert revoked serial=%s reason=%s by=%s", serial,
	    reason, c.name);
	json_object_del(out, "v");
	ks_audited(ks, req, c.name, c.dept, NULL, "cert.revoke", serial,
	    AUDIT_OK, 200, out);
	out = NULL;
done:
	json_decref(out);
	json_decref(rec);
	json_decref(body);
}

/* ------------------------------------------------------------ public */

void
ks_h_pub_crl_pem(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;

	http_reply(req, 200, "application/x-pem-file", ks->crl_pem,
	    ks->crl_pem_len);
}

void
ks_h_pub_crl_der(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;

	http_reply(req, 200, "application/pkix-crl", ks->crl_der,
	    ks->crl_der_len);
}

void
ks_h_pub_ca(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;

	http_reply(req, 200, "application/x-pem-file", ks->ca_pem,
	    ks->ca_pem_len);
}
