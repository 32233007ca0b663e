/*
 * api.c -- keyservice API: routes, caller authentication and the helpers
 * every handler shares.  The handlers are in api_dir.c (directory,
 * passwords), api_keys.c (key hierarchy, signing) and certs.c.
 *
 * Runs in: keyservice, event loop thread.
 * Failure policy: every error is a JSON reply with a stable code (see
 * docs/keyservice-api.md); the connection stays usable.
 * SECURITY: the TLS layer only lets in certificates of the node CA; here
 * the certificate must also be on record and not revoked, and its CN
 * must name an active user or a known principal.  Authorization is
 * checked by every handler against struct ks_caller.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/x509v3.h>

#include "common/auditsvc.h"
#include "common/base64.h"
#include "common/err.h"
#include "common/log.h"
#include "common/net.h"
#include "common/tls.h"
#include "common/xmalloc.h"
#include "keyservice/api.h"

const struct http_route ks_api_routes[] = {
	{ "GET", "/healthz", ks_h_healthz },
	{ "POST", "/v1/depts", ks_h_dept_add },
	{ "GET", "/v1/depts", ks_h_dept_list },
	{ "GET", "/v1/depts/*", ks_h_dept_get },
	{ "POST", "/v1/users", ks_h_user_add },
	{ "GET", "/v1/users", ks_h_user_list },
	{ "GET", "/v1/users/*", ks_h_user_get },
	{ "PATCH", "/v1/users/*", ks_h_user_patch },
	{ "DELETE", "/v1/users/*", ks_h_user_delete },
	{ "POST", "/v1/users/*", ks_h_user_post },
	{ "POST", "/v1/auth/password", ks_h_auth_password },
	{ "POST", "/v1/keys/datakey", ks_h_key_datakey },
	{ "POST", "/v1/keys/unwrap", ks_h_key_unwrap },
	{ "POST", "/v1/keys/rewrap", ks_h_key_rewrap },
	{ "GET", "/v1/keys/*", ks_h_key_get },
	{ "POST", "/v1/keys/*", ks_h_key_post },
	{ "POST", "/v1/sign/cms", ks_h_sign_cms },
	{ "POST", "/v1/sign/raw", ks_h_sign_raw },
	{ "GET", "/v1/sign/keys/*", ks_h_sign_key },
	{ "POST", "/v1/certs/client", ks_h_cert_client },
	{ "GET", "/v1/certs", ks_h_cert_list },
	{ "GET", "/v1/certs/*", ks_h_cert_get },
	{ "POST", "/v1/certs/*", ks_h_cert_post },
	{ "GET", "/v1/audit/*", ks_h_audit },
	{ NULL, NULL, NULL },
};

const struct http_route ks_pub_routes[] = {
	{ "GET", "/crl.pem", ks_h_pub_crl_pem },
	{ "GET", "/crl.der", ks_h_pub_crl_der },
	{ "GET", "/ca.pem", ks_h_pub_ca },
	{ NULL, NULL, NULL },
};

long long
ks_now(void)
{
	return (long long)time(NULL);
}

int
ks_forbid(struct http_req *req, const char *msg)
{
	http_reply_error(req, 403, "forbidden", "%s", msg);
	return -1;
}

void
ks_reply_err(struct http_req *req, int rc)
{
	switch (rc) {
	case ERR_INVAL:
		http_reply_error(req, 400, "invalid", "%s", err_msg());
		break;
	case ERR_NOTFOUND:
		http_reply_error(req, 404, "not_found", "%s", err_msg());
		break;
	case ERR_EXISTS:
		http_reply_error(req, 409, "exists", "%s", err_msg());
		break;
	case ERR_PERM:
		http_reply_error(req, 403, "forbidden", "%s", err_msg());
		break;
	case ERR_TOOBIG:
		http_reply_error(req, 413, "too_large", "%s", err_msg());
		break;
	default:
		log_warnx("%016llx keyservice error: %s",
		    (unsigned long long)http_req_id(req), err_msg());
		http_reply_error(req, 500, "internal_error",
		    "internal error; see the keyservice log");
		break;
	}
}

/* ------------------------------------------------------------ audit */

struct ks_audited_reply {
	struct http_req	*req;
	int		 status;
	json_t		*body;
};

static void
ks_audited_cb(void *arg, int rc, uint64_t index)
{
	struct ks_audited_reply	*r = arg;

	if (rc < 0) {
		/* fail-closed: nothing is handed out without its record */
		json_decref(r->body);
		http_reply_error(r->req, 503, "busy", "audit log unavailable");
	} else
		http_reply_json(r->req, r->status, r->body);
	free(r);
}

void
ks_audited(struct keyservice *ks, struct http_req *req, const char *actor,
    const char *dept, const char *src, const char *action,
    const char *object, int outcome, int status, json_t *body)
{
	struct ks_audited_reply	*r = xcalloc(1, sizeof(*r));

	r->req = req;
	r->status = status;
	r->body = body;
	if (ks->audit == NULL || auditsvc_record(ks->audit, actor, dept,
	    src ? src : http_req_peer(req), action, object, outcome,
	    http_req_id(req), NULL, ks_audited_cb, r) < 0)
		ks_audited_cb(r, ERR_IO, 0);
}

void
ks_h_healthz(struct http_req *req, void *arg)
{
	http_reply_json(req, 200, json_pack("{s:s, s:s}", "status", "ok",
	    "service", "keyservice"));
}

/* Refuse (403) if reply is set; -1 either way. */
static int
ks_deny(struct http_req *req, int reply, const char *code, const char *msg)
{
	if (reply)
		http_reply_error(req, 403, code, "%s", msg);
	return -1;
}

static int
ks_auth_user(struct keyservice *ks, struct http_req *req,
    struct ks_caller *c, int reply)
{
	json_t		*user;
	const char	*status;

	if (dir_user_get(ks->dir, c->name, &user) < 0)
		return ks_deny(req, reply, "forbidden",
		    "certificate names no known user");
	status = json_string_value(json_object_get(user, "status"));
	if (status == NULL || strcmp(status, "active") != 0) {
		json_decref(user);
		return ks_deny(req, reply, "suspended", "user is suspended");
	}
	c->user = 1;
	c->dept_admin = dir_user_has_role(user, "dept-admin");
	c->security_officer = dir_user_has_role(user, "security-officer");
	snprintf(c->dept, sizeof(c->dept), "%s", json_string_value(
	    json_object_get(user, "dept")) ?: "");
	json_decref(user);
	return 0;
}

/*
 * Resolved callers by certificate serial, valid while the directory's
 * epoch is unchanged (any write invalidates all): the hot path (data key
 * requests from services) then costs no LMDB reads.
 */
#define KS_AUTH_CACHE	256

struct ks_auth_entry {
	uint64_t		epoch;	/* 0: empty */
	struct ks_caller	caller;
};

static struct ks_auth_entry	ks_auth_cache[KS_AUTH_CACHE];

static struct ks_auth_entry *
ks_auth_slot(const char *serial)
{
	uint32_t	h = 2166136261u;

	while (*serial != '\0')
		h = (h ^ (unsigned char)*serial++) * 16777619u;
	return &ks_auth_cache[h % KS_AUTH_CACHE];
}

static int	ks_auth_resolve(struct keyservice *, struct http_req *,
		    struct ks_caller *, int);
static int	ks_auth_any(struct keyservice *, struct http_req *,
		    struct ks_caller *, int);

int
ks_auth(struct keyservice *ks, struct http_req *req, struct ks_caller *c)
{
	return ks_auth_any(ks, req, c, 1);
}

int
ks_auth_quiet(struct keyservice *ks, struct http_req *req,
    struct ks_caller *c)
{
	return ks_auth_any(ks, req, c, 0);
}

static int
ks_auth_any(struct keyservice *ks, struct http_req *req, struct ks_caller *c,
    int reply)
{
	struct net_conn		*nc = http_req_conn(req);
	SSL			*ssl = nc ? net_conn_ssl(nc) : NULL;
	X509			*cert;
	struct ks_auth_entry	*e;
	char			 serial[CA_SERIAL_HEX_MAX];
	uint64_t		 epoch = dir_epoch(ks->dir) + 1;

	if (ssl == NULL || (cert = SSL_get0_peer_certificate(ssl)) == NULL)
		return ks_deny(req, reply, "forbidden",
		    "a client certificate is required");
	ca_serial_hex(serial, cert);
	e = ks_auth_slot(serial);
	if (e->epoch == epoch && strcmp(e->caller.serial, serial) == 0) {
		*c = e->caller;
		return 0;
	}
	if (ks_auth_resolve(ks, req, c, reply) < 0)
		return -1;
	e->epoch = epoch;
	e->caller = *c;
	return 0;
}

static int
ks_auth_resolve(struct keyservice *ks, struct http_req *req,
    struct ks_caller *c, int reply)
{
	struct net_conn	*nc = http_req_conn(req);
	SSL		*ssl = nc ? net_conn_ssl(nc) : NULL;
	X509		*cert;
	json_t		*rec = NULL;
	const char	*s;
	int		 ok;

	memset(c, 0, sizeof(*c));
	if (ssl == NULL || (cert = SSL_get0_peer_certificate(ssl)) == NULL ||
	    tls_peer_cn(c->name, sizeof(c->name), ssl) < 0)
		return ks_deny(req, reply, "forbidden", "a client certificate is required");
	ca_serial_hex(c->serial, cert);
	if (dir_cert_get(ks->dir, c->serial, &rec) < 0)
		return ks_deny(req, reply, "forbidden", "client certificate is not on record");
	s = json_string_value(json_object_get(rec, "status"));
	ok = s != NULL && strcmp(s, "valid") == 0;
	json_decref(rec);
	if (!ok)
		return ks_deny(req, reply, "forbidden", "client certificate is revoked");
	if (strchr(c->name, '@') != NULL) {
		char	norm[DIR_ADDRESS_MAX + 1];

		if (dir_address_norm(norm, c->name, NULL) < 0)
			return ks_deny(req, reply, "forbidden", "certificate names no valid "
			    "address");
		snprintf(c->name, sizeof(c->name), "%s", norm);
		return ks_auth_user(ks, req, c, reply);
	}
	if (dir_principal_get(ks->dir, c->name, &rec) < 0)
		return ks_deny(req, reply, "forbidden", "certificate names no known principal");
	s = json_string_value(json_object_get(rec, "role"));
	c->admin = s != NULL && strcmp(s, "admin") == 0;
	c->service = s != NULL && strcmp(s, "service") == 0;
	json_decref(rec);
	return 0;
}

int
ks_may_manage(const struct ks_caller *c, const char *dept)
{
	return c->admin || (c->dept_admin && dept != NULL &&
	    strcmp(c->dept, dept) == 0);
}

const char *
ks_field(struct http_req *req, json_t *body, const char *name, size_t max,
    int required, int *bad)
{
	json_t		*v;
	const char	*s;

	if (*bad)
		return NULL;
	if (max == 0)
		max = KS_FIELD_MAX;
	if ((v = json_object_get(body, name)) == NULL || json_is_null(v)) {
		if (required) {
			http_reply_error(req, 400, "invalid",
			    "%s: required", name);
			*bad = 1;
		}
		return NULL;
	}
	if (!json_is_string(v) || json_string_length(v) > max ||
	    strlen(s = json_string_value(v)) != json_string_length(v)) {
		http_reply_error(req, 400, "invalid", "%s: a string of at "
		    "most %zu bytes", name, max);
		*bad = 1;
		return NULL;
	}
	return s;
}

unsigned char *
ks_field_b64(struct http_req *req, json_t *body, const char *name,
    size_t max, size_t *len_out, int *bad)
{
	const char	*s;
	unsigned char	*out;
	int		 rc;

	*len_out = 0;
	if ((s = ks_field(req, body, name, (max + 2) / 3 * 4, 1, bad)) ==
	    NULL)
		return NULL;
	if ((rc = b64_decode(&out, len_out, s, strlen(s), max)) < 0) {
		http_reply_error(req, rc == ERR_TOOBIG ? 413 : 400, "invalid",
		    "%s: %s", name, err_msg());
		*bad = 1;
		return NULL;
	}
	return out;
}

int
ks_addr_dept(struct keyservice *ks, struct http_req *req, const char *addr,
    char *dept)
{
	char		 norm[DIR_ADDRESS_MAX + 1];
	const char	*domain;
	int		 rc;

	if ((rc = dir_address_norm(norm, addr, &domain)) < 0 ||
	    (rc = dir_domain_dept(ks->dir, domain, dept)) < 0) {
		if (rc == ERR_NOTFOUND)
			http_reply_error(req, 404, "not_found", "%s", err_msg());
		else
			ks_reply_err(req, rc);
		return -1;
	}
	return 0;
}
