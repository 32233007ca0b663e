/*
 * api_dir.c -- keyservice API: departments, users, passwords.
 *
 * Runs in: keyservice, event loop thread; Argon2 hashing and verification
 * run on the worker pool and finish back on the loop thread.
 * Failure policy: JSON errors (docs/keyservice-api.md); a full worker
 * queue answers 503 busy.
 * SECURITY: a dept-admin manages only its own department; passwords are
 * copied into a job, wiped when it ends, never logged; unknown users are
 * verified against a dummy hash so timing does not reveal who exists;
 * guessing is throttled per user and per source.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "keyservice/api.h"

#define KS_SOURCE_MAX	64

/* ------------------------------------------------------------ depts */

void
ks_h_dept_add(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	json_t			*body, *dept = NULL;
	const char		*name, *display;
	int			 bad = 0, rc;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if (!c.admin) {
		ks_forbid(req, "only the node administrator adds departments");
		return;
	}
	if ((body = http_req_json(req)) == NULL)
		return;
	name = ks_field(req, body, "name", DIR_DEPT_MAX, 1, &bad);
	display = ks_field(req, body, "display_name", DIR_DISPLAY_MAX, 0,
	    &bad);
	if (!bad && ks_reserved_name(name)) {
		http_reply_error(req, 400, "invalid", "name: %s is reserved",
		    name);
		bad = 1;
	}
	if (!bad) {
		rc = dir_dept_add(ks->dir, name, display,
		    json_object_get(body, "domains"), &dept);
		if (rc == 0 && (rc = keys_create(ks->keys, name)) ==
		    ERR_EXISTS)
			rc = 0;
		if (rc < 0)
			ks_reply_err(req, rc);
		else {
			json_object_del(dept, "v");
			log_info("keyservice dept added name=%s by=%s", name,
			    c.name);
			ks_audited(ks, req, c.name, c.dept, NULL, "dept.add",
			    name, AUDIT_OK, 201, dept);
		}
	}
	json_decref(body);
}

void
ks_h_dept_list(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	json_t			*all, *out, *d;
	size_t			 i;
	int			 rc;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if ((rc = dir_dept_list(ks->dir, &all)) < 0) {
		ks_reply_err(req, rc);
		return;
	}
	out = json_array();
	json_array_foreach(all, i, d) {
		const char *name = json_string_value(json_object_get(d,
		    "name"));

		if (c.admin || c.service || strcmp(name ?: "", c.dept) == 0) {
			json_object_del(d, "v");
			json_array_append(out, d);
		}
	}
	json_decref(all);
	http_reply_json(req, 200, json_pack("{s:o}", "depts", out));
}

void
ks_h_dept_get(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	const char		*name = http_req_path_rest(req);
	json_t			*d;
	int			 rc;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if (!c.admin && !c.service && strcmp(name, c.dept) != 0) {
		ks_forbid(req, "not your department");
		return;
	}
	if ((rc = dir_dept_get(ks->dir, name, &d)) < 0) {
		ks_reply_err(req, rc);
		return;
	}
	json_object_del(d, "v");
	http_reply_json(req, 200, d);
}

/* ------------------------------------------------------------ jobs */

/*
 * A password job: hash a new password, or verify one, on a worker.
 * Owns copies of everything it needs; wiped and freed in its done().
 */
struct ks_pwjob {
	struct keyservice	*ks;
	struct http_req		*req;
	char			 address[DIR_ADDRESS_MAX + 1];
	char			 source[KS_SOURCE_MAX + 1];
	char			 by[DIR_ADDRESS_MAX + 1];
	char			 by_service[DIR_ADDRESS_MAX + 1];
	char			*display;
	json_t			*roles;
	char			*password;
	size_t			 pwlen;
	int			 generated;
	char			 hash[PASSWD_HASH_MAX];
	int			 rc;
};

static struct ks_pwjob *
ks_pwjob_new(struct keyservice *ks, struct http_req *req, const char *pw)
{
	struct ks_pwjob	*j = xcalloc(1, sizeof(*j));

	j->ks = ks;
	j->req = req;
	if (pw == NULL) {
		j->password = xmalloc(PASSWD_GEN_LEN + 1);
		passwd_generate(j->password);
		j->generated = 1;
	} else
		j->password = xstrdup(pw);
	j->pwlen = strlen(j->password);
	return j;
}

static void
ks_pwjob_free(struct ks_pwjob *j)
{
	xfreezero(j->password, j->pwlen + 1);
	explicit_bzero(j->hash, sizeof(j->hash));
	free(j->display);
	json_decref(j->roles);
	free(j);
}

static void
ks_work_hash(void *arg)
{
	struct ks_pwjob	*j = arg;

	j->rc = passwd_hash(j->hash, sizeof(j->hash), j->password, j->pwlen,
	    &j->ks->pw);
}

static void
ks_work_verify(void *arg)
{
	struct ks_pwjob	*j = arg;

	j->rc = passwd_verify(j->hash, j->password, j->pwlen);
}

static void
ks_submit(struct ks_pwjob *j, worker_fn work, worker_fn done)
{
	if (worker_submit(j->ks->workers, work, done, j) < 0) {
		http_reply_error(j->req, 503, "busy", "too many password "
		    "operations in progress; try again");
		ks_pwjob_free(j);
	}
}

static int
ks_password_ok(struct http_req *req, const char *pw)
{
	if (pw != NULL && (strlen(pw) == 0 || strlen(pw) > PASSWD_MAX)) {
		http_reply_error(req, 400, "invalid", "password: 1-%d bytes",
		    PASSWD_MAX);
		return 0;
	}
	return 1;
}

/* ------------------------------------------------------------ users */

static void
ks_user_add_done(void *arg)
{
	struct ks_pwjob	*j = arg;
	json_t		*user = NULL;
	int		 rc = j->rc;

	if (rc == 0)
		rc = dir_user_add(j->ks->dir, j->address, j->display, j->roles,
		    j->hash, &user);
	if (rc < 0)
		ks_reply_err(j->req, rc);
	else {
		log_info("keyservice user added address=%s by=%s", j->address,
		    j->by);
		if (j->generated)
			json_object_set_new(user, "password",
			    json_string(j->password));
		ks_audited(j->ks, j->req, j->by, "", NULL, "user.add",
		    j->address, AUDIT_OK, 201, user);
	}
	ks_pwjob_free(j);
}

void
ks_h_user_add(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	struct ks_pwjob		*j;
	json_t			*body;
	const char		*addr, *display, *pw;
	char			 dept[DIR_DEPT_MAX + 1];
	int			 bad = 0;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if ((body = http_req_json(req)) == NULL)
		return;
	addr = ks_field(req, body, "address", DIR_ADDRESS_MAX, 1, &bad);
	display = ks_field(req, body, "display_name", DIR_DISPLAY_MAX, 0,
	    &bad);
	pw = ks_field(req, body, "password", PASSWD_MAX, 0, &bad);
	if (bad || !ks_password_ok(req, pw) ||
	    ks_addr_dept(ks, req, addr, dept) < 0)
		goto done;
	if (!ks_may_manage(&c, dept)) {
		ks_forbid(req, "you do not manage this department");
		goto done;
	}
	j = ks_pwjob_new(ks, req, pw);
	snprintf(j->address, sizeof(j->address), "%s", addr);
	snprintf(j->by, sizeof(j->by), "%s", c.name);
	j->display = display ? xstrdup(display) : NULL;
	j->roles = json_incref(json_object_get(body, "roles"));
	ks_submit(j, ks_work_hash, ks_user_add_done);
done:
	json_decref(body);
}

void
ks_h_user_list(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	const char		*dept = http_req_query(req, "dept");
	json_t			*users;
	int			 rc;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if (!c.admin && !c.service) {
		if (!c.dept_admin && !c.security_officer) {
			ks_forbid(req, "listing users needs an admin role");
			return;
		}
		if (dept == NULL)
			dept = c.dept;
		if (strcmp(dept, c.dept) != 0) {
			ks_forbid(req, "not your department");
			return;
		}
	}
	if ((rc = dir_user_list(ks->dir, dept, &users)) < 0) {
		ks_reply_err(req, rc);
		return;
	}
	http_reply_json(req, 200, json_pack("{s:o}", "users", users));
}

/*
 * Load the user the path names; check that the caller may read it
 * (write: may change it).  Replies and returns NULL otherwise.
 */
static json_t *
ks_user_target(struct keyservice *ks, struct http_req *req,
    const struct ks_caller *c, const char *addr, int write)
{
	json_t		*user;
	const char	*dept;
	int		 rc;

	if ((rc = dir_user_get(ks->dir, addr, &user)) < 0) {
		ks_reply_err(req, rc);
		return NULL;
	}
	dept = json_string_value(json_object_get(user, "dept"));
	if (ks_may_manage(c, dept) || (!write && (c->service ||
	    (c->security_officer && strcmp(c->dept, dept ?: "") == 0))) ||
	    (c->user && strcmp(c->name, json_string_value(json_object_get(
	    user, "address")) ?: "") == 0 && !write))
		return user;
	json_decref(user);
	ks_forbid(req, "not a user you may manage");
	return NULL;
}

void
ks_h_user_get(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	const char		*addr = http_req_path_rest(req);
	json_t			*user;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if (strchr(addr, '/') != NULL) {
		http_reply_error(req, 404, "not_found", "no such resource");
		return;
	}
	if ((user = ks_user_target(ks, req, &c, addr, 0)) == NULL)
		return;
	http_reply_json(req, 200, dir_user_public(user));
	json_decref(user);
}

void
ks_h_user_patch(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	const char		*addr = http_req_path_rest(req);
	json_t			*user, *body, *out = NULL;
	int			 rc;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if ((user = ks_user_target(ks, req, &c, addr, 1)) == NULL)
		return;
	json_decref(user);
	if ((body = http_req_json(req)) == NULL)
		return;
	if (json_object_get(body, "password") != NULL) {
		http_reply_error(req, 400, "invalid", "password: use POST "
		    "/v1/users/<address>/password");
	} else if ((rc = dir_user_update(ks->dir, addr, body, &out)) < 0) {
		ks_reply_err(req, rc);
	} else {
		log_info("keyservice user updated address=%s by=%s", addr,
		    c.name);
		ks_audited(ks, req, c.name, c.dept, NULL, json_object_get(body,
		    "status") ? "user.status" : "user.update", addr, AUDIT_OK,
		    200, out);
	}
	json_decref(body);
}

void
ks_h_user_delete(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	const char		*addr = http_req_path_rest(req);
	json_t			*user;
	int			 rc;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if ((user = ks_user_target(ks, req, &c, addr, 1)) == NULL)
		return;
	json_decref(user);
	/* a later user of the same address must not inherit certificates */
	if ((rc = ks_revoke_all(ks, addr, "affiliationChanged")) < 0 ||
	    (rc = dir_user_delete(ks->dir, addr)) < 0) {
		ks_reply_err(req, rc);
		return;
	}
	log_info("keyservice user deleted address=%s by=%s", addr, c.name);
	ks_audited(ks, req, c.name, c.dept, NULL, "user.delete", addr,
	    AUDIT_OK, 200, json_pack("{s:s}", "deleted", addr));
}

static void
ks_passwd_done(void *arg)
{
	struct ks_pwjob	*j = arg;
	json_t		*patch;
	int		 rc = j->rc;

	if (rc == 0) {
		patch = json_pack("{s:s}", "password", j->hash);
		rc = dir_user_update(j->ks->dir, j->address, patch, NULL);
		json_decref(patch);
	}
	if (rc < 0)
		ks_reply_err(j->req, rc);
	else {
		log_info("keyservice password set address=%s by=%s",
		    j->address, j->by);
		ks_audited(j->ks, j->req, j->by, "", NULL, "user.password",
		    j->address, AUDIT_OK, 200, j->generated ?
		    json_pack("{s:s}", "password", j->password) :
		    json_pack("{s:b}", "changed", 1));
	}
	ks_pwjob_free(j);
}

static void
ks_user_password(struct keyservice *ks, struct http_req *req,
    const struct ks_caller *c, const char *addr)
{
	struct ks_pwjob	*j;
	json_t		*user, *body;
	const char	*pw;
	int		 bad = 0, self = c->user && strcmp(c->name, addr) == 0;

	if (!self && (user = ks_user_target(ks, req, c, addr, 1)) == NULL)
		return;
	if (!self)
		json_decref(user);
	if ((body = http_req_json(req)) == NULL)
		return;
	pw = ks_field(req, body, "password", PASSWD_MAX, 0, &bad);
	if (!bad && ks_password_ok(req, pw)) {
		j = ks_pwjob_new(ks, req, pw);
		snprintf(j->address, sizeof(j->address), "%s", addr);
		snprintf(j->by, sizeof(j->by), "%s", c->name);
		ks_submit(j, ks_work_hash, ks_passwd_done);
	}
	json_decref(body);
}

void
ks_h_user_post(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	const char		*rest = http_req_path_rest(req), *slash;
	char			 raw[DIR_ADDRESS_MAX + 1];
	char			 addr[DIR_ADDRESS_MAX + 1];
	size_t			 n;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if ((slash = strchr(rest, '/')) == NULL ||
	    (n = (size_t)(slash - rest)) > DIR_ADDRESS_MAX)
		goto notfound;
	memcpy(raw, rest, n);
	raw[n] = '\0';
	if (dir_address_norm(addr, raw, NULL) < 0)
		goto notfound;
	if (strcmp(slash, "/password") == 0)
		ks_user_password(ks, req, &c, addr);
	else if (strcmp(slash, "/smime") == 0)
		ks_user_smime(ks, req, &c, addr);
	else if (strcmp(slash, "/export") == 0)
		ks_user_export(ks, req, &c, addr);
	else
		goto notfound;
	return;
notfound:
	http_reply_error(req, 404, "not_found", "no such resource");
}

/* ------------------------------------------------------------ auth */

static void
ks_auth_done(void *arg)
{
	struct ks_pwjob	*j = arg;
	struct keyservice *ks = j->ks;
	json_t		*user = NULL;
	const char	*status;
	uint64_t	 now = now_ms();

	if (j->rc == 0 && j->address[0] != '\0' &&
	    dir_user_get(ks->dir, j->address, &user) == 0) {
		throttle_success(ks->throttle, j->address, now);
		status = json_string_value(json_object_get(user, "status"));
		if (status == NULL || strcmp(status, "active") != 0) {
			log_info("keyservice auth refused address=%s "
			    "source=%s reason=suspended", j->address,
			    j->source);
			ks_audited(ks, j->req, j->address, json_string_value(
			    json_object_get(user, "dept")), j->source,
			    "auth.password", j->by_service, AUDIT_DENIED, 403,
			    json_pack("{s:s,s:s}", "error", "suspended",
			    "message", "account is suspended"));
		} else {
			log_info("keyservice auth ok address=%s source=%s",
			    j->address, j->source);
			ks_audited(ks, j->req, j->address, json_string_value(
			    json_object_get(user, "dept")), j->source,
			    "auth.password", j->by_service, AUDIT_OK, 200,
			    json_pack("{s:b,s:o}", "ok", 1, "user",
			    dir_user_public(user)));
		}
		json_decref(user);
	} else {
		throttle_fail(ks->throttle, j->address[0] ? j->address : NULL,
		    j->source, now);
		log_info("keyservice auth denied address=%s source=%s",
		    j->address[0] ? j->address : j->by, j->source);
		ks_audited(ks, j->req, j->address[0] ? j->address : j->by, "",
		    j->source, "auth.password", j->by_service, AUDIT_DENIED,
		    401, json_pack("{s:s,s:s}", "error", "denied", "message",
		    "wrong address or password"));
	}
	ks_pwjob_free(j);
}

void
ks_h_auth_password(struct http_req *req, void *arg)
{
	struct keyservice	*ks = arg;
	struct ks_caller	 c;
	struct ks_pwjob		*j;
	json_t			*body, *user = NULL;
	const char		*addr, *pw, *src;
	char			 norm[DIR_ADDRESS_MAX + 1];
	uint64_t		 wait;
	int			 bad = 0;

	if (ks_auth(ks, req, &c) < 0)
		return;
	if (!c.service && !c.admin) {
		ks_forbid(req, "only services verify passwords");
		return;
	}
	if ((body = http_req_json(req)) == NULL)
		return;
	addr = ks_field(req, body, "address", DIR_ADDRESS_MAX, 1, &bad);
	pw = ks_field(req, body, "password", PASSWD_MAX, 1, &bad);
	src = ks_field(req, body, "source", KS_SOURCE_MAX, 1, &bad);
	if (bad || !ks_password_ok(req, pw))
		goto done;
	if (dir_address_norm(norm, addr, NULL) < 0)
		snprintf(norm, sizeof(norm), "%s", "invalid");
	if ((wait = throttle_check(ks->throttle, norm, src, now_ms())) > 0) {
		log_info("keyservice auth throttled address=%s source=%s "
		    "wait_ms=%llu", norm, src, (unsigned long long)wait);
		http_reply_json(req, 429, json_pack("{s:s,s:s,s:I}", "error",
		    "throttled", "message", "too many failed attempts; try "
		    "later", "retry_after_ms", (json_int_t)wait));
		goto done;
	}
	j = ks_pwjob_new(ks, req, pw);
	snprintf(j->source, sizeof(j->source), "%s", src);
	snprintf(j->by_service, sizeof(j->by_service), "%s", c.name);
	snprintf(j->by, sizeof(j->by), "%s", norm);
	if (dir_user_get(ks->dir, norm, &user) == 0) {
		snprintf(j->address, sizeof(j->address), "%s", norm);
		snprintf(j->hash, sizeof(j->hash), "%s", json_string_value(
		    json_object_get(user, "password")) ?: "");
		json_decref(user);
	} else		/* same work for an unknown user */
		snprintf(j->hash, sizeof(j->hash), "%s", ks->dummy_hash);
	ks_submit(j, ks_work_verify, ks_auth_done);
done:
	json_decref(body);
}
