/*
 * userkey.c -- users' mailbox data keys: cache, unwrap, first creation.
 * See userkey.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base64.h"
#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "mailsrv/userkey.h"

struct userkey_entry {
	char		addr[STORE_ADDRESS_MAX + 1];
	unsigned char	dek[STORE_DEK_LEN];
	time_t		expires;
};

struct userkey_req {
	struct mailsrv	*ms;
	char		*addr;
	char		*dept;
	int		 created;	/* asked for a new key */
	userkey_cb	 cb;
	void		*arg;
};

static struct userkey_entry	cache[USERKEY_CACHE];

static struct userkey_entry *
cache_lookup(const char *addr)
{
	time_t	now = time(NULL);
	size_t	i;

	for (i = 0; i < USERKEY_CACHE; i++)
		if (cache[i].expires > now && strcmp(cache[i].addr, addr) == 0)
			return &cache[i];
	return NULL;
}

static void
cache_put(const char *addr, const unsigned char *dek)
{
	time_t			 now = time(NULL);
	struct userkey_entry	*e = &cache[0];
	size_t			 i;

	for (i = 0; i < USERKEY_CACHE; i++) {
		if (cache[i].expires <= now) {
			e = &cache[i];
			break;
		}
		if (cache[i].expires < e->expires)
			e = &cache[i];
	}
	explicit_bzero(e, sizeof(*e));
	snprintf(e->addr, sizeof(e->addr), "%s", addr);
	memcpy(e->dek, dek, STORE_DEK_LEN);
	e->expires = now + USERKEY_TTL;
}

int
userkey_peek(const char *addr, unsigned char dek[STORE_DEK_LEN])
{
	struct userkey_entry	*e;

	if ((e = cache_lookup(addr)) == NULL)
		return 0;
	memcpy(dek, e->dek, STORE_DEK_LEN);
	return 1;
}

void
userkey_wipe(void)
{
	explicit_bzero(cache, sizeof(cache));
}

char *
userkey_context(const char *addr)
{
	char	*ctx;

	xasprintf(&ctx, "mailbox:%s", addr);
	return ctx;
}

static void
req_free(struct userkey_req *r)
{
	free(r->addr);
	free(r->dept);
	free(r);
}

static int	userkey_fetch(struct userkey_req *);

static void
userkey_done(int status, json_t *body, void *arg)
{
	struct userkey_req	*r = arg;
	const char		*b64 = json_string_value(json_object_get(body,
	    "plaintext"));
	const char		*wrapped = json_string_value(json_object_get(
	    body, "wrapped"));
	unsigned char		*dek = NULL;
	size_t			 len = 0;
	int			 rc;

	if (r->ms->stopping) {
		r->cb(ERR_IO, NULL, r->arg);
	} else if (status != 200 || b64 == NULL || b64_decode(&dek, &len, b64,
	    strlen(b64), STORE_DEK_LEN) < 0 || len != STORE_DEK_LEN) {
		log_warnx("mailbox key for %s unavailable status=%d", r->addr,
		    status);
		r->cb(ERR_IO, NULL, r->arg);
	} else if (r->created && (rc = store_user_create(r->ms->store,
	    r->addr, wrapped ? wrapped : "")) < 0) {
		if (rc == ERR_EXISTS) {
			/* created meanwhile by another caller: use its key */
			r->created = 0;
			if ((rc = userkey_fetch(r)) == 0) {
				xfreezero(dek, len + 1);
				return;
			}
		} else
			log_warnx("cannot create the mailbox of %s: %s",
			    r->addr, err_msg());
		r->cb(rc, NULL, r->arg);
	} else {
		cache_put(r->addr, dek);
		r->cb(0, dek, r->arg);
	}
	if (dek != NULL)
		xfreezero(dek, len + 1);
	req_free(r);
}

/* Start the keyservice call: 0, or a negative enum err. */
static int
userkey_fetch(struct userkey_req *r)
{
	struct store_user	 u;
	char			*ctx = userkey_context(r->addr);
	int			 rc;

	memset(&u, 0, sizeof(u));
	if ((rc = store_user_get(r->ms->store, r->addr, &u)) == 0)
		rc = keyclient_unwrap(r->ms->kc, u.wrapped_dek, ctx,
		    userkey_done, r);
	else if (rc == ERR_NOTFOUND && r->dept != NULL) {
		r->created = 1;
		rc = keyclient_datakey(r->ms->kc, r->dept, ctx, userkey_done,
		    r);
	}
	store_user_clear(&u);
	free(ctx);
	return rc < 0 ? rc : 0;
}

int
userkey_get(struct mailsrv *ms, const char *addr, const char *dept,
    unsigned char dek[STORE_DEK_LEN], userkey_cb cb, void *arg)
{
	struct userkey_entry	*e;
	struct userkey_req	*r;
	int			 rc;

	if (ms->store == NULL) {
		err_set(ERR_IO, "the mail store is not open");
		return ERR_IO;
	}
	if ((e = cache_lookup(addr)) != NULL) {
		memcpy(dek, e->dek, STORE_DEK_LEN);
		return 1;
	}
	r = xcalloc(1, sizeof(*r));
	r->ms = ms;
	r->addr = xstrdup(addr);
	r->dept = dept != NULL ? xstrdup(dept) : NULL;
	r->cb = cb;
	r->arg = arg;
	if ((rc = userkey_fetch(r)) < 0)
		req_free(r);
	return rc;
}
