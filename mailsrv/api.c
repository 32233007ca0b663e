/*
 * api.c -- mailsrv's HTTPS API ([mailsrv] api_listen, mutual TLS):
 * queue and mailbox administration for the node admin (`amanat mail`),
 * and the audit log for security officers (`amanat audit`).
 *
 *   GET    /v1/queue			queued messages (envelopes)
 *   GET    /v1/queue/<id>		one envelope
 *   POST   /v1/queue/<id>/retry	deliver now
 *   DELETE /v1/queue/<id>		drop a message
 *   GET    /v1/mailboxes/<address>	a user's mailboxes with status
 *   GET    /v1/mailboxes/<address>/<mailbox>
 *					message list (no contents)
 *   GET    /v1/audit/...		common/auditsvc.h
 *
 * Runs in: the mailsrv process: the loop thread; the queue and store work
 * of a request on a worker thread.
 * Failure policy: JSON errors; keyservice unreachable is 503.
 * SECURITY: callers are resolved through keyservice (common/kcauth);
 * only the admin principal uses the administration routes, and every
 * use is logged and audited, fail-closed: a read is answered only once
 * its audit entry is durable; a change (retry, delete) is recorded
 * before it is made, with the message held from delivery meanwhile, and
 * a change that then fails gets a second entry with outcome "error".
 * Message contents are never served here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/auditsvc.h"
#include "common/err.h"
#include "common/kcauth.h"
#include "common/log.h"
#include "common/net.h"
#include "common/tls.h"
#include "common/xmalloc.h"
#include "common/worker.h"
#include "mailsrv/mailsrv.h"
#include "mailsrv/queue/queue.h"
#include "mailsrv/store/store.h"

typedef void	(*ms_admin_fn)(struct mailsrv *, struct http_req *,
		    json_t **, int *, char *, size_t);

struct ms_api_job {
	struct mailsrv		*ms;
	struct http_req		*req;
	ms_admin_fn		 fn;
	json_t			*body;
	int			 status;
	char			 actor[KCAUTH_NAME_MAX];
	char			 dept[KCAUTH_NAME_MAX];
	char			 object[STORE_ADDRESS_MAX + 600];
	char			 held[QUEUE_ID_LEN + 1];	/* from delivery */
	int			 mutating;
};

static void
ms_api_healthz(struct http_req *req, void *arg)
{
	http_reply_json(req, 200, json_pack("{s:s,s:s}", "status", "ok",
	    "service", "mailsrv"));
}

static json_t *
ms_env_json(const struct queue_env *e)
{
	json_t	*rcpts = json_array(), *o;
	size_t	 i;

	for (i = 0; i < e->nrcpts; i++)
		json_array_append_new(rcpts, json_pack("{s:s,s:b,s:s,s:s?}",
		    "address", e->rcpts[i].addr, "local", e->rcpts[i].local,
		    "state", e->rcpts[i].state == QUEUE_RCPT_DELIVERED ?
		    "delivered" : e->rcpts[i].state == QUEUE_RCPT_FAILED ?
		    "failed" : "pending", "status", e->rcpts[i].status));
	o = json_pack("{s:s,s:s,s:I,s:I,s:i,s:I,s:o}", "id", e->id, "sender",
	    e->sender, "created", (json_int_t)e->created, "next_try",
	    (json_int_t)e->next_try, "attempts", (int)e->attempts, "size",
	    (json_int_t)e->size, "rcpts", rcpts);
	if (e->auth != NULL)
		json_object_set_new(o, "auth", json_string(e->auth));
	return o;
}

/* ------------------------------------------------------------ handlers */

/* Every queued envelope, in the same shape as GET /v1/queue/<id>. */
static int
ms_queue_list(struct mailsrv *ms, json_t **out)
{
	json_t			*all, *e;
	struct queue_env	*env;
	size_t			 i;
	const char		*id;

	if (queue_list(ms->queue, &all) < 0)
		return -1;
	*out = json_array();
	json_array_foreach(all, i, e) {
		id = json_string_value(json_object_get(e, "id"));
		if (id != NULL && queue_get(ms->queue, id, &env) == 0) {
			json_array_append_new(*out, ms_env_json(env));
			queue_env_free(&env);
		}
	}
	json_decref(all);
	return 0;
}

/* The id in /v1/queue/<id>[/rest]; *rest gets what follows. */
static int
ms_queue_id(char *id, const char *path, const char **rest)
{
	const char	*p = path + strlen("/v1/queue/");
	size_t		 n = strcspn(p, "/");

	if (n != QUEUE_ID_LEN)
		return -1;
	memcpy(id, p, n);
	id[n] = '\0';
	*rest = p + n;
	return queue_id_ok(id) ? 0 : -1;
}

static void
ms_admin_queue(struct mailsrv *ms, struct http_req *req, json_t **out,
    int *status, char *object, size_t objlen)
{
	const char		*path = http_req_path(req), *rest = "";
	const char		*method = http_req_method(req);
	char			 id[QUEUE_ID_LEN + 1];
	struct queue_env	*env = NULL;
	int			 rc;

	snprintf(object, objlen, "queue");
	if (ms->queue == NULL) {
		*status = 503;
		*out = json_pack("{s:s,s:s}", "error", "busy", "message",
		    "the queue is not open yet");
		return;
	}
	if (strcmp(path, "/v1/queue") == 0) {
		*status = ms_queue_list(ms, out) == 0 ? 200 : 500;
		return;
	}
	if (ms_queue_id(id, path, &rest) < 0) {
		*status = 404;
		return;
	}
	snprintf(object, objlen, "queue:%s", id);
	if ((rc = queue_get(ms->queue, id, &env)) < 0) {
		*status = rc == ERR_NOTFOUND ? 404 : 500;
		return;
	}
	if (strcmp(method, "GET") == 0 && *rest == '\0') {
		*out = ms_env_json(env);
		*status = 200;
	} else if (strcmp(method, "POST") == 0 && strcmp(rest, "/retry") == 0) {
		env->next_try = (int64_t)time(NULL);
		rc = queue_update(ms->queue, env);
		*status = rc == 0 ? 200 : 500;
		*out = rc == 0 ? json_pack("{s:s,s:s}", "id", id, "retry",
		    "now") : NULL;
	} else if (strcmp(method, "DELETE") == 0 && *rest == '\0') {
		rc = queue_remove(ms->queue, id);
		*status = rc == 0 ? 200 : 500;
		*out = rc == 0 ? json_pack("{s:s}", "deleted", id) : NULL;
	} else
		*status = 404;
	queue_env_free(&env);
}

static void
ms_admin_mailboxes(struct mailsrv *ms, struct http_req *req, json_t **out,
    int *status, char *object, size_t objlen)
{
	const char		*p = http_req_path(req) + strlen("/v1/mailboxes/");
	char			 addr[STORE_ADDRESS_MAX + 1];
	const char		*mbox;
	struct store_mailbox	*list = NULL;
	struct store_msginfo	*msgs = NULL;
	struct store_status	 st;
	size_t			 n = 0, i, alen = strcspn(p, "/");
	json_t			*arr;

	if (alen == 0 || alen > STORE_ADDRESS_MAX) {
		*status = 404;
		return;
	}
	memcpy(addr, p, alen);
	addr[alen] = '\0';
	mailsrv_local_addr(addr);
	mbox = p[alen] == '/' ? p + alen + 1 : NULL;
	snprintf(object, objlen, "mailbox:%s%s%s", addr, mbox ? "/" : "",
	    mbox ? mbox : "");
	arr = json_array();
	if (mbox == NULL) {
		if (store_mailbox_list(ms->store, addr, &list, &n) < 0)
			goto err;
		for (i = 0; i < n; i++) {
			memset(&st, 0, sizeof(st));
			(void)store_mailbox_status(ms->store, addr,
			    list[i].name, &st);
			json_array_append_new(arr, json_pack("{s:s,s:i,s:i,"
			    "s:I}", "name", list[i].name, "messages",
			    (int)st.messages, "unseen", (int)st.unseen, "size",
			    (json_int_t)st.size));
		}
		store_mailbox_list_free(&list, n);
		*out = json_pack("{s:s,s:o}", "address", addr, "mailboxes",
		    arr);
	} else {
		if (store_messages(ms->store, addr, mbox, 1, UINT32_MAX, 0,
		    &msgs, &n) < 0)
			goto err;
		for (i = 0; i < n; i++)
			json_array_append_new(arr, json_pack("{s:i,s:i,s:I,"
			    "s:I}", "uid", (int)msgs[i].uid, "flags",
			    (int)msgs[i].flags, "internaldate",
			    (json_int_t)msgs[i].internaldate, "size",
			    (json_int_t)msgs[i].size));
		store_msginfo_free(&msgs);
		*out = json_pack("{s:s,s:s,s:o}", "address", addr, "mailbox",
		    mbox, "messages", arr);
	}
	*status = 200;
	return;
err:
	json_decref(arr);
	*status = err_code() == ERR_NOTFOUND ? 404 : 500;
}

/* ------------------------------------------------------------ auth */

static void
ms_api_audited(void *arg, int rc, uint64_t index)
{
	struct ms_api_job	*j = arg;

	if (rc < 0) {
		json_decref(j->body);
		http_reply_error(j->req, 503, "busy", "audit log unavailable; "
		    "nothing was done");
	} else if (j->status == 200 && j->body != NULL)
		http_reply_json(j->req, 200, j->body);
	else {
		json_decref(j->body);
		if (j->status == 403)
			http_reply_error(j->req, 403, "forbidden", "only the "
			    "node administrator may do this");
		else if (j->status == 409)
			http_reply_error(j->req, 409, "busy", "the message is "
			    "being delivered; try again in a moment");
		else if (j->status == 404)
			http_reply_error(j->req, 404, "not_found",
			    "no such resource");
		else if (j->status == 503)
			http_reply_error(j->req, 503, "busy", "the queue or the "
			    "workers are not available; try again later");
		else
			http_reply_error(j->req, j->status, "internal_error",
			    "%s", err_msg());
	}
	free(j);
}

static void
ms_api_record(struct ms_api_job *j, int outcome, audit_done_fn cb)
{
	if (j->ms->audit == NULL || auditsvc_record(j->ms->audit, j->actor,
	    j->dept, http_req_peer(j->req), "mail.admin", j->object, outcome,
	    http_req_id(j->req), json_pack("{s:s}", "method",
	    http_req_method(j->req)), cb, j) < 0) {
		if (cb != NULL)
			cb(j, ERR_IO, 0);
	}
}

static void
ms_api_release(struct ms_api_job *j)
{
	if (j->held[0] != '\0') {
		delivery_release(j->ms, j->held);
		j->held[0] = '\0';
	}
}

/* Worker: the request's queue or store work. */
static void
ms_api_work(void *arg)
{
	struct ms_api_job	*j = arg;
	char			 object[sizeof(j->object)];

	object[0] = '\0';
	j->fn(j->ms, j->req, &j->body, &j->status, object, sizeof(object));
	if (!j->mutating)
		snprintf(j->object, sizeof(j->object), "%s", object);
}

/* Loop: a change was made (or failed); answer. */
static void
ms_api_changed(void *arg)
{
	struct ms_api_job	*j = arg;

	ms_api_release(j);
	log_info("mailsrv api %s %s by=%s status=%d", http_req_method(j->req),
	    http_req_path(j->req), j->actor, j->status);
	if (j->status == 200 && strcmp(http_req_method(j->req), "POST") == 0)
		delivery_kick(j->ms);
	if (j->status != 200)	/* the entry before said "ok": how it ended */
		ms_api_record(j, AUDIT_ERROR, NULL);
	ms_api_audited(j, 0, 0);
}

/* Loop: a read was done; record it, then answer. */
static void
ms_api_read(void *arg)
{
	struct ms_api_job	*j = arg;

	log_info("mailsrv api %s %s by=%s status=%d", http_req_method(j->req),
	    http_req_path(j->req), j->actor, j->status);
	ms_api_record(j, j->status == 200 ? AUDIT_OK : AUDIT_ERROR,
	    ms_api_audited);
}

/* Loop: the change's entry is durable (or not): make it, or refuse. */
static void
ms_api_recorded(void *arg, int rc, uint64_t index)
{
	struct ms_api_job	*j = arg;

	(void)index;
	if (rc < 0) {
		ms_api_release(j);
		http_reply_error(j->req, 503, "busy", "audit log unavailable; "
		    "nothing was done");
		free(j);
		return;
	}
	if (worker_submit(j->ms->workers, ms_api_work, ms_api_changed,
	    j) < 0) {
		j->status = 503;
		ms_api_changed(j);
	}
}

/*
 * Loop: before a change to a queued message: it must exist in form and
 * not be in delivery (which would overwrite the change); it is then held
 * from delivery until the change is done.  0 to go on, else the status.
 */
static int
ms_api_prepare_change(struct ms_api_job *j)
{
	const char	*p = http_req_path(j->req);
	const char	*id = p + strlen("/v1/queue/");
	size_t		 n = strcspn(id, "/");

	snprintf(j->object, sizeof(j->object), "%s", p);
	if (strncmp(p, "/v1/queue/", 10) != 0 || n != QUEUE_ID_LEN)
		return 404;
	snprintf(j->held, sizeof(j->held), "%.*s", (int)n, id);
	snprintf(j->object, sizeof(j->object), "queue:%s", j->held);
	if (!queue_id_ok(j->held)) {
		j->held[0] = '\0';
		return 404;
	}
	if (j->ms->queue == NULL) {
		j->held[0] = '\0';
		return 503;
	}
	if (delivery_hold(j->ms, j->held) < 0) {
		j->held[0] = '\0';
		return 409;
	}
	return 0;
}

static void
ms_api_resolved(int rc, const struct kcauth_caller *c, void *arg)
{
	struct ms_api_job	*j = arg;
	int			 st;

	if (rc == ERR_IO) {
		http_reply_error(j->req, 503, "busy", "keyservice unavailable");
		free(j);
		return;
	}
	snprintf(j->actor, sizeof(j->actor), "%s", c ? c->name : "unknown");
	snprintf(j->dept, sizeof(j->dept), "%s", c ? c->dept : "");
	if (rc < 0 || !c->admin) {
		j->status = 403;
		snprintf(j->object, sizeof(j->object), "%s",
		    http_req_path(j->req));
		log_info("mailsrv api %s %s by=%s status=403",
		    http_req_method(j->req), http_req_path(j->req), j->actor);
		ms_api_record(j, AUDIT_DENIED, ms_api_audited);
		return;
	}
	j->mutating = strcmp(http_req_method(j->req), "GET") != 0;
	if (!j->mutating) {
		if (worker_submit(j->ms->workers, ms_api_work, ms_api_read,
		    j) < 0) {
			j->status = 503;
			ms_api_read(j);
		}
		return;
	}
	if ((st = ms_api_prepare_change(j)) != 0) {
		j->status = st;
		ms_api_read(j);		/* recorded as an error, answered */
		return;
	}
	/* fail-closed: the change is recorded before it is made */
	ms_api_record(j, AUDIT_OK, ms_api_recorded);
}

static void
ms_api_admin(struct http_req *req, struct mailsrv *ms, ms_admin_fn fn)
{
	struct ms_api_job	*j = xcalloc(1, sizeof(*j));
	struct net_conn		*nc = http_req_conn(req);

	j->ms = ms;
	j->req = req;
	j->fn = fn;
	if (kcauth_resolve(ms->kc, nc ? net_conn_ssl(nc) : NULL,
	    ms_api_resolved, j) < 0) {
		http_reply_error(req, err_code() == ERR_IO ? 503 : 403,
		    err_code() == ERR_IO ? "busy" : "forbidden", "%s",
		    err_msg());
		free(j);
	}
}

static void
ms_api_queue(struct http_req *req, void *arg)
{
	ms_api_admin(req, arg, ms_admin_queue);
}

static void
ms_api_mailboxes(struct http_req *req, void *arg)
{
	ms_api_admin(req, arg, ms_admin_mailboxes);
}

static void
ms_api_audit(struct http_req *req, void *arg)
{
	struct mailsrv	*ms = arg;

	auditsvc_handle(ms->audit, req);
}

static const struct http_route ms_api_routes[] = {
	{ "GET", "/healthz", ms_api_healthz },
	{ "GET", "/v1/queue", ms_api_queue },
	{ "GET", "/v1/queue/*", ms_api_queue },
	{ "POST", "/v1/queue/*", ms_api_queue },
	{ "DELETE", "/v1/queue/*", ms_api_queue },
	{ "GET", "/v1/mailboxes/*", ms_api_mailboxes },
	{ "GET", "/v1/audit/*", ms_api_audit },
	{ NULL, NULL, NULL },
};

int
mailsrv_api_start(struct mailsrv *ms)
{
	const struct amanat_conf	*cf = &ms->d->conf;
	struct conf_httpd		 h;
	struct http_limits		 lim;
	int				 rc;

	memset(&h, 0, sizeof(h));
	h.listen = cf->mailsrv.api_listen;
	h.max_connections = 1024;
	h.idle_timeout = 60000;
	h.max_body = 64 * 1024;
	h.output_limit = cf->mailsrv.output_limit;
	daemon_http_limits(&lim, &h);
	if ((rc = daemon_tls_ctx(&ms->api_tls, cf, TLS_VERIFY_REQUIRE)) < 0 ||
	    (rc = http_server_new(&ms->api, ms->d->base, "mailsrv-api", &lim,
	    ms_api_routes, ms)) < 0)
		return rc;
	http_server_set_tls(ms->api, ms->api_tls);
	return http_server_listen(ms->api, h.listen);
}

void
mailsrv_api_stop(struct mailsrv *ms)
{
	http_server_free(&ms->api);
	SSL_CTX_free(ms->api_tls);
	ms->api_tls = NULL;
}
