/*
 * api_keys.c -- keyservice API: data keys (datakey, unwrap, rewrap),
 * KEK rotation, and signing (CMS for users, raw for services).
 *
 * Runs in: keyservice, event loop thread (AES-GCM and signatures are
 * fast enough to run inline).
 * Failure policy: JSON errors; a wrapped key that does not authenticate
 * is 403 forbidden (never a hint of why beyond "wrong context or
 * tampered").
 * SECURITY: plaintext keys are wiped after they are encoded into the
 * reply; private signing keys are unwrapped per request and freed at
 * once; only services and admins handle data keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "common/base64.h"
#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "keyservice/api.h"

#define KS_SIGN_DATA_MAX	(16 * 1024 * 1024)	/* bytes signed */
#define KS_RAW_DATA_MAX		(64 * 1024)

static int
ks_key_caller(struct http_req *req, const struct ks_caller *c)
{
	if (c->service || c->admin)
		return 0;
	return ks_forbid(req, "only services and the node administrator use "
	    "data keys");
}

/*
 * Contexts of data keys handed to callers live in their own namespace:
 * the API prefixes every caller's context with "api:", which no key
 * keyservice wraps for itself (the CA key, signing keys, escrowed S/MIME
 * keys) ever uses, so a caller can never unwrap one of those.
 */
#define KS_API_CTX	"api:"

static char *
ks_api_context(const char *ctx)
{
	char	*out;

	xasprintf(&out, "%s%s", KS_API_CTX, ctx);
	return out;
}

/*
 * The node's own key id is for keyservice alone; a service's key id
 * ("mailsrv": its queue key) for that service (and the admin); every
 * department's key id for any service.
 */
static int
ks_key_id_ok(struct http_req *req, const struct ks_caller *c,
    const char *id)
{
	if (strcmp(id, KS_NODE_KEY_ID) == 0 || (ks_reserved_name(id) &&
	    !c->admin && !(c->service && strcmp(c->name, id) == 0))) {
		http_reply_error(req, 403, "forbidden", "key id %s is "
		    "reserved", id);
		return 0;
	}
	return 1;
}

static int
ks_wrapped_ok(struct http_req *req, const struct ks_caller *c,
    const char *wrapped)
{
	char	id[KEYS_ID_MAX + 1];

	if (keys_describe(wrapped, id, sizeof(id), NULL) < 0)
		return 1;	/* malformed: keys_unwrap says so */
	return ks_key_id_ok(req, c, id);
}

/* A secret into base64 for a reply, wiping the plaintext. */
static json_t *
ks_secret_b64(unsigned char *p, size_t n)
{
	char	*b = b64_encode(p, n);
	json_t	*v = json_string(b);

	explicit_bzero(b, strlen(b));
	free(b);
	explicit_bzero(p, n);
	return v;
}

void
ks_h_key_datakey(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	unsigned char		 dek[KEYS_DEK_LEN];
	json_t			*body;
	const char		*id, *ctx;
	char			*wrapped = NULL;
	uint32_t		 version;
	int			 bad = 0, rc;

	if (ks_auth(ks, req, &c) < 0 || ks_key_caller(req, &c) < 0)
		return;
	if ((body = http_req_json(req)) == NULL)
		return;
	id = ks_field(req, body, "key_id", KEYS_ID_MAX, 1, &bad);
	ctx = ks_field(req, body, "context", KEYS_CONTEXT_MAX, 1, &bad);
	if (!bad && ks_key_id_ok(req, &c, id)) {
		char *actx = ks_api_context(ctx);

		rc = keys_datakey(ks->keys, id, actx, dek, &wrapped, &version);
		free(actx);
		if (rc < 0)
			ks_reply_err(req, rc);
		else
			ks_audited(ks, req, c.name, c.dept, NULL, "key.datakey",
			    ctx, AUDIT_OK, 200, json_pack("{s:o,s:s,s:s,s:I}",
			    "plaintext", ks_secret_b64(dek, sizeof(dek)),
			    "wrapped", wrapped, "key_id", id, "version",
			    (json_int_t)version));
		free(wrapped);
	}
	explicit_bzero(dek, sizeof(dek));
	json_decref(body);
}

/*
 * The common start of unwrap and rewrap: the caller may use data keys,
 * the body has "wrapped" and "context", the key id is the caller's to
 * use.  Returns the body (the caller decrefs) with *actx the context in
 * the API's namespace (the caller frees), or NULL once answered.
 */
static json_t *
ks_wrapped_req(struct keyservice *ks, struct http_req *req,
    struct ks_caller *c, const char **w, const char **ctx, char **actx)
{
	json_t	*body;
	int	 bad = 0;

	if (ks_auth(ks, req, c) < 0 || ks_key_caller(req, c) < 0)
		return NULL;
	if ((body = http_req_json(req)) == NULL)
		return NULL;
	*w = ks_field(req, body, "wrapped", 0, 1, &bad);
	*ctx = ks_field(req, body, "context", KEYS_CONTEXT_MAX, 1, &bad);
	if (bad || !ks_wrapped_ok(req, c, *w)) {
		json_decref(body);
		return NULL;
	}
	*actx = ks_api_context(*ctx);
	return body;
}

void
ks_h_key_unwrap(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	unsigned char		*plain = NULL;
	size_t			 len = 0;
	json_t			*body;
	const char		*w, *ctx;
	char			*actx;
	int			 rc;

	if ((body = ks_wrapped_req(ks, req, &c, &w, &ctx, &actx)) == NULL)
		return;
	if ((rc = keys_unwrap(ks->keys, w, actx, &plain, &len)) < 0)
		ks_reply_err(req, rc);
	else
		ks_audited(ks, req, c.name, c.dept, NULL, "key.unwrap", ctx,
		    AUDIT_OK, 200, json_pack("{s:o}", "plaintext",
		    ks_secret_b64(plain, len)));
	xfreezero(plain, len);
	free(actx);
	json_decref(body);
}

void
ks_h_key_rewrap(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	json_t			*body;
	const char		*w, *ctx;
	char			*actx, *nw = NULL, id[KEYS_ID_MAX + 1];
	uint32_t		 version;
	int			 rc;

	if ((body = ks_wrapped_req(ks, req, &c, &w, &ctx, &actx)) == NULL)
		return;
	if ((rc = keys_rewrap(ks->keys, w, actx, &nw, &version)) < 0 ||
	    (rc = keys_describe(nw, id, sizeof(id), NULL)) < 0)
		ks_reply_err(req, rc);
	else
		ks_audited(ks, req, c.name, c.dept, NULL, "key.rewrap", ctx,
		    AUDIT_OK, 200, json_pack("{s:s,s:s,s:I}", "wrapped", nw,
		    "key_id", id, "version", (json_int_t)version));
	free(nw);
	free(actx);
	json_decref(body);
}

void
ks_h_key_get(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	const char		*id = http_req_path_rest(req);
	struct keys_version	*v = NULL;
	size_t			 n = 0, i;
	json_t			*arr;
	int			 rc;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if (!c.service && !ks_may_manage(&c, id)) {
		ks_forbid(req, "not a key you manage");
		return;
	}
	if ((rc = keys_versions(ks->keys, id, &v, &n)) < 0) {
		ks_reply_err(req, rc);
		return;
	}
	arr = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:I,s:I,s:I}",
		    "version", (json_int_t)v[i].version, "created",
		    (json_int_t)v[i].created, "uses", (json_int_t)v[i].uses));
	free(v);
	http_reply_json(req, 200, json_pack("{s:s,s:o}", "key_id", id,
	    "versions", arr));
}

void
ks_h_key_post(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	const char		*rest = http_req_path_rest(req), *slash;
	char			 id[KEYS_ID_MAX + 1];
	uint32_t		 version;
	int			 rc;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if ((slash = strchr(rest, '/')) == NULL ||
	    strcmp(slash, "/rotate") != 0 ||
	    (size_t)(slash - rest) > KEYS_ID_MAX) {
		http_reply_error(req, 404, "not_found", "no such resource");
		return;
	}
	snprintf(id, sizeof(id), "%.*s", (int)(slash - rest), rest);
	if (!ks_may_manage(&c, id) || strcmp(id, KS_NODE_KEY_ID) == 0) {
		ks_forbid(req, "not a key you may rotate");
		return;
	}
	if ((rc = keys_rotate(ks->keys, id, &version)) < 0) {
		ks_reply_err(req, rc);
		return;
	}
	log_info("keyservice key rotated key_id=%s version=%u by=%s", id,
	    version, c.name);
	ks_audited(ks, req, c.name, c.dept, NULL, "key.rotate", id, AUDIT_OK,
	    200, json_pack("{s:s,s:I}", "key_id", id, "version",
	    (json_int_t)version));
}

/* ------------------------------------------------------------ signing */

/* The user's valid S/MIME signing certificate record, or NULL. */
static json_t *
ks_signing_cert(struct keyservice *ks, const char *addr)
{
	json_t		*certs, *rec, *best = NULL;
	size_t		 i;

	if (dir_cert_list(ks->dir, addr, &certs) < 0)
		return NULL;
	json_array_foreach(certs, i, rec) {
		if (strcmp(json_string_value(json_object_get(rec, "kind")) ?:
		    "", "smime-sign") == 0 && strcmp(json_string_value(
		    json_object_get(rec, "status")) ?: "", "valid") == 0)
			best = rec;	/* the newest issued is last */
	}
	json_incref(best);
	json_decref(certs);
	return best;
}

void
ks_h_sign_cms(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	json_t			*body, *rec = NULL;
	const char		*signer, *pem;
	char			 addr[DIR_ADDRESS_MAX + 1], ctx[384];
	unsigned char		*data = NULL, *cms = NULL;
	size_t			 len = 0, cmslen = 0;
	X509			*cert = NULL;
	EVP_PKEY		*key = NULL;
	int			 bad = 0, rc;
	char			*b;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if ((body = http_req_json(req)) == NULL)
		return;
	signer = ks_field(req, body, "signer", DIR_ADDRESS_MAX, 1, &bad);
	data = ks_field_b64(req, body, "data", KS_SIGN_DATA_MAX, &len, &bad);
	if (bad)
		goto done;
	if (dir_address_norm(addr, signer, NULL) < 0) {
		http_reply_error(req, 400, "invalid", "signer: not an address");
		goto done;
	}
	if (!c.service && !(c.user && strcmp(c.name, addr) == 0)) {
		ks_forbid(req, "you may sign only as yourself");
		goto done;
	}
	if ((rec = ks_signing_cert(ks, addr)) == NULL) {
		http_reply_error(req, 404, "not_found", "%s has no valid "
		    "signing certificate", addr);
		goto done;
	}
	pem = json_string_value(json_object_get(rec, "pem"));
	snprintf(ctx, sizeof(ctx), "smime:%s:%s", addr, json_string_value(
	    json_object_get(rec, "serial")));
	if ((rc = ca_cert_from_pem(&cert, pem, strlen(pem))) < 0 ||
	    (rc = ks_escrow_load(ks, json_string_value(json_object_get(rec,
	    "serial")), ctx, &key)) < 0 ||
	    (rc = ca_cms_sign(&cms, &cmslen, cert, key, ks->ca.cert, data,
	    len)) < 0) {
		ks_reply_err(req, rc);
		goto done;
	}
	log_info("keyservice cms signed signer=%s bytes=%zu by=%s", addr, len,
	    c.name);
	b = b64_encode(cms, cmslen);
	ks_audited(ks, req, c.name, c.dept, NULL, "sign.cms", addr, AUDIT_OK,
	    200, json_pack("{s:s,s:s}", "cms", b, "serial",
	    json_string_value(json_object_get(rec, "serial"))));
	free(b);
done:
	free(data);
	free(cms);
	X509_free(cert);
	EVP_PKEY_free(key);
	json_decref(rec);
	json_decref(body);
}

void
ks_h_sign_raw(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	json_t			*body;
	unsigned char		*data = NULL, *sig = NULL;
	size_t			 len = 0, siglen = 0;
	char			 name[DIR_ADDRESS_MAX + 8], ctx[DIR_ADDRESS_MAX + 8];
	char			*b;
	EVP_PKEY		*key = NULL;
	int			 bad = 0, rc;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if (!c.service && !c.admin) {
		ks_forbid(req, "only services sign raw data");
		return;
	}
	if ((body = http_req_json(req)) == NULL)
		return;
	data = ks_field_b64(req, body, "data", KS_RAW_DATA_MAX, &len, &bad);
	if (!bad) {
		snprintf(name, sizeof(name), "sign-%s", c.admin ?
		    "keyservice" : c.name);
		snprintf(ctx, sizeof(ctx), "sign:%s", c.admin ? "keyservice" :
		    c.name);
		if ((rc = ks_escrow_load(ks, name, ctx, &key)) < 0 ||
		    (rc = ca_sign_raw(&sig, &siglen, key, data, len)) < 0)
			ks_reply_err(req, rc);
		else {
			b = b64_encode(sig, siglen);
			ks_audited(ks, req, c.name, c.dept, NULL, "sign.raw",
			    name + 5, AUDIT_OK, 200, json_pack("{s:s,s:s,s:s}",
			    "signature", b, "alg", "ed25519", "key_id",
			    name + 5));
			free(b);
		}
	}
	free(data);
	free(sig);
	EVP_PKEY_free(key);
	json_decref(body);
}

void
ks_h_sign_key(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	const char		*who = http_req_path_rest(req);
	char			 name[DIR_ADDRESS_MAX + 8], ctx[DIR_ADDRESS_MAX + 8];
	char			*pem;
	EVP_PKEY		*key = NULL;
	BIO			*bio;
	json_t			*out, *cert;
	long			 n;
	int			 rc;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if (strlen(who) == 0 || strlen(who) > DIR_PRINCIPAL_MAX ||
	    strchr(who, '/') != NULL) {
		http_reply_error(req, 404, "not_found", "no such key");
		return;
	}
	snprintf(name, sizeof(name), "sign-%s", who);
	snprintf(ctx, sizeof(ctx), "sign:%s", who);
	if ((rc = ks_escrow_load(ks, name, ctx, &key)) < 0) {
		ks_reply_err(req, rc);
		return;
	}
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_PUBKEY(bio, key)) {
		BIO_free(bio);
		EVP_PKEY_free(key);
		http_reply_error(req, 500, "internal_error", "PEM encoding");
		return;
	}
	n = BIO_get_mem_data(bio, &pem);
	out = json_pack("{s:s,s:s,s:s%}", "key_id", who, "alg", "ed25519",
	    "public_key", pem, (size_t)n);
	if ((cert = ks_cert_pem_of(ks, ctx)) != NULL)
		json_object_set_new(out, "certificate", cert);
	http_reply_json(req, 200, out);
	BIO_free(bio);
	EVP_PKEY_free(key);
}
