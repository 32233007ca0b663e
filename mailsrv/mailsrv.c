/*
 * mailsrv.c -- mailsrv's link to keyservice: the client, the node's local
 * domains (refreshed), and the queue key bootstrap.
 *
 * Runs in: the mailsrv process, event loop thread.
 * Failure policy: keyservice being down is not fatal: mailsrv serves
 * greetings and answers transactions with 4xx until it has the queue key
 * and the domain list; it retries every few seconds.
 * SECURITY: the queue key is kept wrapped on disk (<dir>/queue.key, the
 * wrapped text from keyservice) and plain only in memory; mutual TLS with
 * the [mailsrv_client] certificate.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/auditkc.h"
#include "common/base64.h"
#include "common/err.h"
#include "common/kcauth.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mailsrv/mailsrv.h"
#include "mailsrv/queue/queue.h"

#define MS_RETRY_SEC		2
#define MS_DOMAINS_SEC		30
#define MS_KC_CONNS		8
#define MS_QUEUE_CONTEXT	"mailsrv-queue"

void
mailsrv_limits(struct net_limits *lim, const struct amanat_conf *cf,
    int imap)
{
	lim->max_conns = (unsigned)cf->mailsrv.max_connections;
	lim->max_per_ip = (unsigned)(imap ? cf->mailsrv.imap_max_per_ip :
	    cf->mailsrv.smtp_max_per_ip);
	if (imap)
		snprintf(lim->refuse, sizeof(lim->refuse), "* BYE Too many "
		    "connections from your address");
	else
		snprintf(lim->refuse, sizeof(lim->refuse), "421 4.7.0 %.64s "
		    "Too many connections from your address",
		    cf->mailsrv.hostname);
	lim->idle_ms = (unsigned)(imap ? cf->mailsrv.imap_idle_timeout :
	    cf->mailsrv.smtp_idle_timeout);
	lim->out_max = (size_t)cf->mailsrv.output_limit;
	/* IMAP writes a FETCH slice once the output is below IMAP_OUT_LOW;
	 * a slice may hold a whole message (twice: BODY[] and RFC822) */
	if (imap)
		lim->out_max += 2 * (size_t)cf->mailsrv.max_message_size;
}

int
mailsrv_local_domain(struct mailsrv *ms, const char *domain)
{
	size_t	i;

	for (i = 0; i < ms->ndomains; i++)
		if (strcasecmp(ms->domains[i], domain) == 0)
			return 1;
	return 0;
}

void
mailsrv_local_addr(char *addr)
{
	for (; *addr != '\0'; addr++)
		*addr = (char)tolower((unsigned char)*addr);
}

/* ------------------------------------------------------------ domains */

static void
ms_domains_free(struct mailsrv *ms)
{
	size_t	i;

	for (i = 0; i < ms->ndomains; i++)
		free(ms->domains[i]);
	free(ms->domains);
	ms->domains = NULL;
	ms->ndomains = 0;
}

static void
ms_domains_done(int status, json_t *body, void *arg)
{
	struct mailsrv	*ms = arg;
	struct timeval	 tv = { MS_DOMAINS_SEC, 0 };
	json_t		*d, *dom;
	size_t		 i, j, n = 0;

	if (status != 200) {
		log_warnx("mailsrv cannot list departments status=%d", status);
		tv.tv_sec = MS_RETRY_SEC;
		evtimer_add(ms->domains_ev, &tv);
		return;
	}
	ms_domains_free(ms);
	json_array_foreach(json_object_get(body, "depts"), i, d)
		n += json_array_size(json_object_get(d, "domains"));
	ms->domains = xcalloc(n + 1, sizeof(*ms->domains));
	json_array_foreach(json_object_get(body, "depts"), i, d)
		json_array_foreach(json_object_get(d, "domains"), j, dom)
			if (json_is_string(dom) && ms->ndomains < n)
				ms->domains[ms->ndomains++] =
				    xstrdup(json_string_value(dom));
	if (!ms->domains_ok)
		log_info("mailsrv local domains loaded count=%zu",
		    ms->ndomains);
	ms->domains_ok = 1;
	evtimer_add(ms->domains_ev, &tv);
}

static void
ms_domains_fetch(evutil_socket_t fd, short ev, void *arg)
{
	struct mailsrv	*ms = arg;
	struct timeval	 tv = { MS_RETRY_SEC, 0 };

	if (keyclient_call(ms->kc, "GET", "/v1/depts", NULL,
	    KEYCLIENT_IDEMPOTENT, ms_domains_done, ms) < 0)
		evtimer_add(ms->domains_ev, &tv);
}

/* ------------------------------------------------------------ queue key */

static char *
ms_queue_key_path(struct mailsrv *ms)
{
	return path_join(ms->dir, "queue.key");
}

static void	ms_bootstrap(evutil_socket_t, short, void *);

static void
ms_bootstrap_retry(struct mailsrv *ms)
{
	struct timeval	tv = { MS_RETRY_SEC, 0 };

	evtimer_add(ms->bootstrap_ev, &tv);
}

/* The plain queue key arrived (base64 in body "plaintext"). */
static void
ms_queue_open(struct mailsrv *ms, json_t *body)
{
	const char	*b64 = json_string_value(json_object_get(body,
	    "plaintext"));
	unsigned char	*key = NULL;
	size_t		 len = 0;
	char		*qdir = path_join(ms->dir, "queue");
	int		 rc;

	if (b64 == NULL || b64_decode(&key, &len, b64, strlen(b64),
	    QUEUE_KEY_LEN) < 0 || len != QUEUE_KEY_LEN) {
		log_warnx("mailsrv queue key: bad answer from keyservice");
		ms_bootstrap_retry(ms);
		goto done;
	}
	if ((rc = queue_open(&ms->queue, ms->d->base, qdir, key)) < 0) {
		log_error("mailsrv queue open failed: %s", err_msg());
		ms_bootstrap_retry(ms);
		goto done;
	}
	log_info("mailsrv queue ready dir=%s messages=%zu", qdir,
	    queue_count(ms->queue));
	delivery_kick(ms);
done:
	if (key != NULL)
		xfreezero(key, len + 1);
	free(qdir);
}

static void
ms_key_unwrapped(int status, json_t *body, void *arg)
{
	struct mailsrv	*ms = arg;

	if (status != 200) {
		log_warnx("mailsrv queue key unwrap failed status=%d", status);
		ms_bootstrap_retry(ms);
		return;
	}
	ms_queue_open(ms, body);
}

static void
ms_key_created(int status, json_t *body, void *arg)
{
	struct mailsrv	*ms = arg;
	const char	*wrapped = json_string_value(json_object_get(body,
	    "wrapped"));
	char		*path = ms_queue_key_path(ms);

	if (status != 200 || wrapped == NULL) {
		log_warnx("mailsrv queue key creation failed status=%d",
		    status);
		ms_bootstrap_retry(ms);
	} else if (file_write_atomic(path, wrapped, strlen(wrapped),
	    0600) < 0) {
		log_error("mailsrv %s", err_msg());
		ms_bootstrap_retry(ms);
	} else
		ms_queue_open(ms, body);
	free(path);
}

static void
ms_bootstrap(evutil_socket_t fd, short ev, void *arg)
{
	struct mailsrv	*ms = arg;
	char		*path = ms_queue_key_path(ms), *wrapped = NULL;
	int		 rc;

	rc = file_read_all(&wrapped, NULL, path, 64 * 1024);
	if (rc == ERR_NOTFOUND)
		rc = keyclient_datakey(ms->kc, "mailsrv", MS_QUEUE_CONTEXT,
		    ms_key_created, ms);
	else if (rc == 0)
		rc = keyclient_unwrap(ms->kc, wrapped, MS_QUEUE_CONTEXT,
		    ms_key_unwrapped, ms);
	if (rc < 0) {
		log_warnx("mailsrv queue key: %s", err_msg());
		ms_bootstrap_retry(ms);
	}
	free(wrapped);
	free(path);
}

/* ------------------------------------------------------------ start/stop */

int
mailsrv_link_start(struct mailsrv *ms)
{
	const struct amanat_conf	*cf = &ms->d->conf;
	int				 rc;

	if ((rc = kcauth_client_new(&ms->kc, ms->d, cf->mailsrv_client.cert,
	    cf->mailsrv_client.key, MS_KC_CONNS)) < 0)
		return rc;
	ms->bootstrap_ev = evtimer_new(ms->d->base, ms_bootstrap, ms);
	ms->domains_ev = evtimer_new(ms->d->base, ms_domains_fetch, ms);
	event_active(ms->bootstrap_ev, EV_TIMEOUT, 0);
	event_active(ms->domains_ev, EV_TIMEOUT, 0);
	return 0;
}

void
mailsrv_link_stop(struct mailsrv *ms)
{
	/* first: its pending callbacks still re-arm these timers */
	keyclient_free(&ms->kc);
	if (ms->bootstrap_ev != NULL)
		event_free(ms->bootstrap_ev);
	if (ms->domains_ev != NULL)
		event_free(ms->domains_ev);
	ms->bootstrap_ev = ms->domains_ev = NULL;
	queue_close(&ms->queue);
	ms_domains_free(ms);
}

/* ------------------------------------------------------------ audit */

int
mailsrv_audit_start(struct mailsrv *ms)
{
	return auditkc_open(&ms->audit, ms->d, ms->kc);
}

void
mailsrv_audit_stop(struct mailsrv *ms)
{
	auditkc_close(&ms->audit);
}
