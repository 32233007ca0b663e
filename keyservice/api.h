/*
 * api.h -- helpers shared by the keyservice API handlers (api*.c).
 */
#ifndef KEYSERVICE_API_H
#define KEYSERVICE_API_H

#include "common/http.h"
#include "keyservice/keyservice.h"

/* Who is calling: resolved from the verified client certificate. */
struct ks_caller {
	char	name[DIR_ADDRESS_MAX + 1];	/* certificate CN */
	char	serial[CA_SERIAL_HEX_MAX];
	int	admin;		/* node administrator */
	int	service;	/* mailsrv, docstore */
	int	user;		/* a directory user */
	int	dept_admin;
	int	security_officer;
	char	dept[DIR_DEPT_MAX + 1];		/* users only */
};

#define KS_FIELD_MAX	4096	/* default bound of a string field */

/*
 * Resolve the caller; on failure the reply (403) is sent and -1
 * returned: the handler returns at once.
 */
int	ks_auth(struct keyservice *, struct http_req *, struct ks_caller *);
/* The same without a reply on failure (the caller answers). */
int	ks_auth_quiet(struct keyservice *, struct http_req *,
	    struct ks_caller *);
/* May the caller manage department dept (admin, or its dept-admin)? */
int	ks_may_manage(const struct ks_caller *, const char *);
/*
 * Record the action in the audit log, then reply status with body (a
 * reference is stolen) once the record is durable; 503 if it cannot be
 * written (fail-closed).  src NULL: the connection's peer.
 */
void	ks_audited(struct keyservice *, struct http_req *, const char *,
	    const char *, const char *, const char *, const char *, int, int,
	    json_t *);
/* Reply 403 forbidden with a message; returns -1. */
int	ks_forbid(struct http_req *, const char *);
/* Reply with the HTTP error for an enum err, with err_msg(). */
void	ks_reply_err(struct http_req *, int);
/*
 * A string member of a JSON body, at most max bytes (KS_FIELD_MAX if
 * 0), no NUL.  Missing: NULL (if required, replies 400 and sets *bad).
 * Wrong type or too long: replies 400 and sets *bad.  Once *bad is set
 * later calls do nothing and return NULL.
 */
const char	*ks_field(struct http_req *, json_t *, const char *, size_t,
		    int, int *);
/* A base64 member decoded (at most max bytes), same rules. */
unsigned char	*ks_field_b64(struct http_req *, json_t *, const char *,
		    size_t, size_t *, int *);
/* The department of an address's domain, or reply 400/404 and -1. */
int	ks_addr_dept(struct keyservice *, struct http_req *, const char *,
	    char *);
/* Seconds since the epoch. */
long long	ks_now(void);

/* Handlers (api_dir.c, api_keys.c, certs.c). */
void	ks_h_healthz(struct http_req *, void *);
void	ks_h_dept_add(struct http_req *, void *);
void	ks_h_dept_list(struct http_req *, void *);
void	ks_h_dept_get(struct http_req *, void *);
void	ks_h_user_add(struct http_req *, void *);
void	ks_h_user_list(struct http_req *, void *);
void	ks_h_user_get(struct http_req *, void *);
void	ks_h_user_patch(struct http_req *, void *);
void	ks_h_user_delete(struct http_req *, void *);
void	ks_h_user_post(struct http_req *, void *);	/* /password etc. */
void	ks_h_auth_password(struct http_req *, void *);
void	ks_h_key_datakey(struct http_req *, void *);
void	ks_h_key_unwrap(struct http_req *, void *);
void	ks_h_key_rewrap(struct http_req *, void *);
void	ks_h_key_get(struct http_req *, void *);
void	ks_h_key_post(struct http_req *, void *);	/* /rotate */
void	ks_h_sign_cms(struct http_req *, void *);
void	ks_h_sign_raw(struct http_req *, void *);
void	ks_h_sign_key(struct http_req *, void *);
void	ks_h_cert_client(struct http_req *, void *);
void	ks_h_cert_list(struct http_req *, void *);
void	ks_h_cert_get(struct http_req *, void *);
void	ks_h_cert_post(struct http_req *, void *);	/* /revoke */
void	ks_user_smime(struct keyservice *, struct http_req *,
	    const struct ks_caller *, const char *);
void	ks_user_export(struct keyservice *, struct http_req *,
	    const struct ks_caller *, const char *);
void	ks_h_audit(struct http_req *, void *);	/* ks_audit.c */
void	ks_h_pub_crl_pem(struct http_req *, void *);
void	ks_h_pub_crl_der(struct http_req *, void *);
void	ks_h_pub_ca(struct http_req *, void *);

#endif
