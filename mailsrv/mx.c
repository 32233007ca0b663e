/*
 * mx.c -- where mail for a remote domain goes: asynchronous DNS MX
 * resolution (RFC 5321 5.1) with libunbound, on the event loop.
 *
 * A lookup asks for the domain's MX records and keeps the MX_HOSTS_MAX
 * best (lowest preference first, random order among equal ones), then
 * asks for the A and AAAA records of those hosts, all in parallel, and
 * hands the caller an ordered list of (host, address) candidates: per
 * host at most MX_HOST_ADDRS_MAX IPv4 then as many IPv6 addresses, at
 * most MX_ADDRS_MAX in all.  Outcomes:
 *   - MX records: their hosts, as above;
 *   - no MX records (NOERROR, no data): the domain itself is the
 *     implicit MX (preference 0);
 *   - NXDOMAIN: permanent, 5.1.2;
 *   - only a null MX ("0 .", RFC 7505): permanent, 5.1.10 (a root name
 *     beside real MX records is ignored);
 *   - every host has definitely no address (NXDOMAIN or no data):
 *     permanent, 5.4.4;
 *   - SERVFAIL, REFUSED, a malformed answer, a resolver error, or no
 *     answer within [mailsrv] dns_timeout for the whole lookup:
 *     temporary, 4.4.3 (addresses that did arrive are still used).
 *
 * libunbound resolves in a thread of its own (ub_ctx_async); answers
 * come back through its pipe (ub_fd), which the loop watches to call
 * ub_process().  Our libunbound callbacks only record the answer and
 * wake the lookup's step event, so the state machine and the caller's
 * done() run on the loop, outside libunbound.  ub_resolve_event() would
 * need libunbound's libevent build and hands back raw packets; this way
 * libunbound parses the packet and we parse only RDATA.  The resolver
 * is [mailsrv] dns_resolver ("ip[@port]", a forwarder) or else the
 * nameservers of /etc/resolv.conf; libunbound caches answers (TTL) and
 * SERVFAILs (a few seconds).
 *
 * Runs in: the mailsrv process, event loop thread (libunbound adds one
 * thread of its own, which only does DNS).
 * Failure policy: every DNS failure goes back to the caller as
 * MX_TEMPFAIL or MX_PERMFAIL with an RFC 3463 status text; nothing is
 * retried here (the queue retries deferred recipients).
 * SECURITY: DNS answers are untrusted.  RDATA is parsed with bounds
 * checks: names uncompressed (as libunbound returns them: a pointer is
 * an error), at most MX_WIRE_MAX octets, letters, digits, '-' and '_'
 * only, so a name is safe in log lines, SNI and certificate checks;
 * record counts are capped (MX_HOSTS_MAX, MX_HOST_ADDRS_MAX,
 * MX_ADDRS_MAX).  There is NO DNSSEC validation (no trust anchor:
 * nodes may run offline), so an answer is only as trustworthy as the
 * path to the resolver: a forged MX can redirect mail to a domain that
 * does not require TLS.  relay_tls_domains (STARTTLS required, the
 * certificate verified against [tls] ca and the MX host name) is what
 * protects mail to domains that need it.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unbound.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "mailsrv/mx.h"

#define MX_QUERIES_MAX	(1 + 2 * MX_HOSTS_MAX)	/* MX, then A + AAAA */
#define MX_FWD_MAX	64			/* "ip@port" */
#define MX_WHY_MAX	64

#define RR_A		1
#define RR_MX		15
#define RR_AAAA		28
#define RR_CLASS_IN	1
#define RCODE_NXDOMAIN	3

enum mx_ans {		/* the outcome of one query */
	ANS_PENDING = 0,
	ANS_DATA,
	ANS_NODATA,
	ANS_NXDOMAIN,
	ANS_TEMP,
};

struct mx_req;

/* One ub_resolve_async() in flight. */
struct mx_query {
	struct mx_resolver	*res;
	struct mx_query		*prev, *next;	/* res->queries */
	struct mx_req		*req;	/* NULL: abandoned, freed on answer */
	int			 id;	/* libunbound's async id */
	int			 slot;	/* 0: MX; 1 + 2h: A, 2 + 2h: AAAA */
};

struct mx_req {
	struct mx_resolver	*res;
	struct mx_req		*prev, *next;	/* res->reqs */
	char			 domain[MX_NAME_MAX + 1];
	mx_done_fn		 done;
	void			*arg;
	struct event		*step_ev;	/* a phase is complete */
	struct event		*timer;		/* dns_timeout */
	int			 phase;		/* 0 MX, 1 addresses, 2 over */
	int			 expired;	/* the timer fired */
	struct mx_query		*q[MX_QUERIES_MAX];
	enum mx_ans		 ans[MX_QUERIES_MAX];
	size_t			 outstanding;
	char			 why[MX_WHY_MAX];	/* 1st temp. failure */
	int			 select_rc;	/* mx_select() of the answer */
	struct mx_host		 hosts[MX_HOSTS_MAX];
	size_t			 nhosts;
	struct mx_addrs		 addrs[MX_HOSTS_MAX];
	struct mx_result	 result;
};

struct mx_resolver {
	struct event_base	*base;
	struct ub_ctx		*ub;
	struct event		*ev;		/* ub_fd() readable */
	int64_t			 timeout_ms;
	struct mx_req		*reqs;		/* lookups in progress */
	struct mx_query		*queries;	/* queries in flight */
};

/* ------------------------------------------------------------ parsing */

static int
mx_name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int
mx_domain_ok(const char *s)
{
	size_t	i, lab = 0, n = strlen(s);

	if (n == 0 || n > MX_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (lab == 0)
				return 0;	/* empty label */
			lab = 0;
		} else if (!mx_name_char((unsigned char)s[i]) || ++lab > 63)
			return 0;
	}
	return lab > 0;
}

int
mx_forwarder_ok(const char *s)
{
	char		 ip[MX_FWD_MAX];
	const char	*at;
	unsigned char	 bin[sizeof(struct in6_addr)];
	long long	 port;
	size_t		 n;

	if (strlen(s) >= MX_FWD_MAX)
		return 0;
	at = strchr(s, '@');
	n = at != NULL ? (size_t)(at - s) : strlen(s);
	memcpy(ip, s, n);
	ip[n] = '\0';
	if (inet_pton(AF_INET, ip, bin) != 1 &&
	    inet_pton(AF_INET6, ip, bin) != 1)
		return 0;
	return at == NULL || parse_ll(&port, at + 1, 1, 65535) == 0;
}

static int
mx_wire_decode(char *out, size_t outlen, const unsigned char *p,
    size_t len)
{
	size_t	off = 0, o = 0, lab, i;

	for (;;) {
		if (off >= len)
			return ERR_PROTO;	/* no root label */
		lab = p[off++];
		if (lab == 0)
			break;
		/* 0xc0: a compression pointer, 0x40/0x80: extended label
		 * types; neither belongs in uncompressed RDATA */
		if (lab > 63)
			return ERR_PROTO;
		if (lab > len - off)
			return ERR_PROTO;	/* truncated */
		/* the wire name so far, this label and the root label */
		if (off + lab + 1 > MX_WIRE_MAX)
			return ERR_TOOBIG;
		if (o + 1 + lab >= outlen)
			return ERR_TOOBIG;
		if (o > 0)
			out[o++] = '.';
		for (i = 0; i < lab; i++) {
			if (!mx_name_char(p[off + i]))
				return ERR_PROTO;
			out[o++] = (char)p[off + i];
		}
		off += lab;
	}
	if (off != len)
		return ERR_PROTO;		/* bytes after the name */
	out[o] = '\0';
	return 0;
}

int
mx_name_from_wire(char *out, size_t outlen, const unsigned char *p,
    size_t len)
{
	int	rc;

	if (outlen == 0)
		return ERR_INVAL;
	if ((rc = mx_wire_decode(out, outlen, p, len)) < 0)
		out[0] = '\0';
	return rc;
}

int
mx_parse_mx(struct mx_host *h, const unsigned char *p, size_t len)
{
	memset(h, 0, sizeof(*h));
	if (len < 3)
		return ERR_PROTO;
	h->pref = (unsigned)p[0] << 8 | p[1];
	return mx_name_from_wire(h->name, sizeof(h->name), p + 2, len - 2);
}

static int
mx_before(const struct mx_host *a, const struct mx_host *b)
{
	return a->pref < b->pref || (a->pref == b->pref && a->tie < b->tie);
}

int
mx_select(struct mx_host *hosts, size_t *n_out, char *const *data,
    const int *len, uint32_t (*rnd)(void))
{
	struct mx_host	h;
	size_t		i, k, n = 0;
	int		nnull = 0, nbad = 0;

	for (i = 0; data != NULL && data[i] != NULL; i++) {
		if (len[i] < 0 || mx_parse_mx(&h, (const unsigned char *)
		    data[i], (size_t)len[i]) < 0) {
			nbad++;
			continue;
		}
		if (h.name[0] == '\0') {
			nnull++;		/* "." : no mail here */
			continue;
		}
		h.tie = rnd();
		/* keep the best MX_HOSTS_MAX, sorted: insertion */
		for (k = n; k > 0 && mx_before(&h, &hosts[k - 1]); k--)
			;
		if (k >= MX_HOSTS_MAX)
			continue;
		if (n < MX_HOSTS_MAX)
			n++;
		memmove(&hosts[k + 1], &hosts[k], (n - 1 - k) *
		    sizeof(*hosts));
		hosts[k] = h;
	}
	*n_out = n;
	if (n > 0)
		return 0;
	return nnull > 0 && nbad == 0 ? ERR_NOTFOUND : ERR_PROTO;
}

int
mx_parse_addr(char *out, size_t outlen, int qtype, const unsigned char *p,
    size_t len)
{
	static const unsigned char	zero[16];
	int				af;

	if (qtype == RR_A && len == 4)
		af = AF_INET;
	else if (qtype == RR_AAAA && len == 16)
		af = AF_INET6;
	else
		return ERR_PROTO;
	/* the unspecified address would reach this host */
	if (memcmp(p, zero, len) == 0)
		return ERR_PROTO;
	if (inet_ntop(af, p, out, (socklen_t)outlen) == NULL)
		return ERR_PROTO;
	return 0;
}

static void
mx_cand_set(struct mx_cand *c, const struct mx_host *h, const char *addr)
{
	snprintf(c->host, sizeof(c->host), "%s", h->name);
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	c->pref = h->pref;
}

size_t
mx_candidates(struct mx_cand *out, size_t max, const struct mx_host *hosts,
    const struct mx_addrs *addrs, size_t nhosts)
{
	size_t	h, i, n = 0;

	for (h = 0; h < nhosts && n < max; h++) {
		for (i = 0; i < addrs[h].n4 && i < MX_HOST_ADDRS_MAX &&
		    n < max; i++)
			mx_cand_set(&out[n++], &hosts[h], addrs[h].v4[i]);
		for (i = 0; i < addrs[h].n6 && i < MX_HOST_ADDRS_MAX &&
		    n < max; i++)
			mx_cand_set(&out[n++], &hosts[h], addrs[h].v6[i]);
	}
	return n;
}

/* ------------------------------------------------------------ queries */

static void
mx_query_unlink(struct mx_query *q)
{
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		q->res->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

static void
mx_why(struct mx_req *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Keep the first reason a query failed temporarily. */
static void
mx_why(struct mx_req *req, const char *fmt, ...)
{
	va_list	ap;

	if (req->why[0] != '\0')
		return;
	va_start(ap, fmt);
	(void)vsnprintf(req->why, sizeof(req->why), fmt, ap);
	va_end(ap);
}

static const char *
mx_rcode_name(int rcode)
{
	switch (rcode) {
	case 1:
		return "FORMERR";
	case 2:
		return "SERVFAIL";
	case 4:
		return "NOTIMP";
	case 5:
		return "REFUSED";
	default:
		return "error";
	}
}

/* Record the answer of query slot in req. */
static void
mx_record(struct mx_req *req, int slot, int err, struct ub_result *ur)
{
	struct mx_addrs	*a;
	char		 text[INET6_ADDRSTRLEN];
	int		 i, v6, parsed = 0;

	if (err != 0 || ur == NULL) {
		req->ans[slot] = ANS_TEMP;
		mx_why(req, "%s", ub_strerror(err));
		return;
	}
	if (ur->rcode == RCODE_NXDOMAIN || ur->nxdomain) {
		req->ans[slot] = ANS_NXDOMAIN;
		return;
	}
	if (ur->rcode != 0 || ur->bogus) {
		req->ans[slot] = ANS_TEMP;
		mx_why(req, "%s", ur->bogus ? "DNSSEC bogus" :
		    mx_rcode_name(ur->rcode));
		return;
	}
	/* data may be NULL (not only data[0]) when there is none */
	if (!ur->havedata || ur->data == NULL || ur->data[0] == NULL) {
		req->ans[slot] = ANS_NODATA;
		return;
	}
	req->ans[slot] = ANS_DATA;
	if (slot == 0) {
		req->select_rc = mx_select(req->hosts, &req->nhosts, ur->data,
		    ur->len, arc4random);
		return;
	}
	a = &req->addrs[(slot - 1) / 2];
	v6 = (slot - 1) % 2;
	for (i = 0; ur->data[i] != NULL; i++) {
		if ((v6 ? a->n6 : a->n4) >= MX_HOST_ADDRS_MAX)
			break;
		if (ur->len[i] < 0 || mx_parse_addr(text, sizeof(text),
		    v6 ? RR_AAAA : RR_A, (const unsigned char *)ur->data[i],
		    (size_t)ur->len[i]) < 0)
			continue;
		if (v6)
			snprintf(a->v6[a->n6++], sizeof(a->v6[0]), "%s", text);
		else
			snprintf(a->v4[a->n4++], sizeof(a->v4[0]), "%s", text);
		parsed++;
	}
	if (parsed == 0) {
		req->ans[slot] = ANS_TEMP;
		mx_why(req, "malformed address answer");
	}
}

/* libunbound, from ub_process() on the loop. */
static void
mx_ub_cb(void *arg, int err, struct ub_result *ur)
{
	struct mx_query	*q = arg;
	struct mx_req	*req = q->req;

	mx_query_unlink(q);
	if (req != NULL) {
		req->q[q->slot] = NULL;
		mx_record(req, q->slot, err, ur);
		if (--req->outstanding == 0)
			event_active(req->step_ev, EV_TIMEOUT, 0);
	}
	free(q);
	if (ur != NULL)
		ub_resolve_free(ur);
}

/*
 * Ask for (name, type) as query slot of req.  libunbound never calls
 * back from inside ub_resolve_async() (answers come via ub_process()).
 */
static void
mx_query_start(struct mx_req *req, int slot, const char *name, int type)
{
	struct mx_resolver	*res = req->res;
	struct mx_query		*q;
	int			 rc;

	q = xcalloc(1, sizeof(*q));
	q->res = res;
	q->req = req;
	q->slot = slot;
	rc = ub_resolve_async(res->ub, name, type, RR_CLASS_IN, q, mx_ub_cb,
	    &q->id);
	if (rc != 0) {
		free(q);
		req->ans[slot] = ANS_TEMP;
		mx_why(req, "%s", ub_strerror(rc));
		return;
	}
	q->next = res->queries;
	if (q->next != NULL)
		q->next->prev = q;
	res->queries = q;
	req->q[slot] = q;
	req->ans[slot] = ANS_PENDING;
	req->outstanding++;
}

/* Stop waiting for the queries of req still in flight. */
static void
mx_req_abandon(struct mx_req *req)
{
	struct mx_query	*q;
	int		 slot;

	for (slot = 0; slot < MX_QUERIES_MAX; slot++) {
		if ((q = req->q[slot]) == NULL)
			continue;
		req->q[slot] = NULL;
		req->outstanding--;
		if (req->res->ub != NULL &&
		    ub_cancel(req->res->ub, q->id) != 0) {
			/* the answer is on its way: mx_ub_cb frees q */
			q->req = NULL;
			continue;
		}
		mx_query_unlink(q);
		free(q);
	}
}

/* ------------------------------------------------------------ lookups */

static void
mx_req_unlink(struct mx_req *req)
{
	if (req->prev != NULL)
		req->prev->next = req->next;
	else
		req->res->reqs = req->next;
	if (req->next != NULL)
		req->next->prev = req->prev;
	req->prev = req->next = NULL;
}

static void
mx_finish(struct mx_req *req, enum mx_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Report the result to the caller and free req. */
static void
mx_finish(struct mx_req *req, enum mx_status st, const char *fmt, ...)
{
	struct mx_result	*r = &req->result;
	va_list			 ap;

	mx_req_abandon(req);
	mx_req_unlink(req);
	r->status = st;
	if (fmt != NULL) {
		va_start(ap, fmt);
		(void)vsnprintf(r->text, sizeof(r->text), fmt, ap);
		va_end(ap);
	}
	if (st == MX_OK)
		log_info("mx lookup domain=%s result=ok implicit=%d hosts=%zu "
		    "candidates=%zu first=%s[%s]", req->domain, r->implicit,
		    req->nhosts, r->ncands, r->cands[0].host, r->cands[0].addr);
	else
		log_info("mx lookup domain=%s result=%s status=\"%s\"",
		    req->domain, st == MX_TEMPFAIL ? "tempfail" : "permfail",
		    r->text);
	event_free(req->step_ev);
	event_free(req->timer);
	req->done(r, req->arg);
	free(req);
}

/* The MX answer is in (or timed out): on to the hosts' addresses. */
static void
mx_after_mx(struct mx_req *req)
{
	size_t	h;

	switch (req->ans[0]) {
	case ANS_NXDOMAIN:
		mx_finish(req, MX_PERMFAIL, "5.1.2 domain %s does not exist "
		    "(DNS: NXDOMAIN)", req->domain);
		return;
	case ANS_NODATA:
		/* RFC 5321 5.1: the domain is its own (implicit) MX */
		snprintf(req->hosts[0].name, sizeof(req->hosts[0].name), "%s",
		    req->domain);
		req->hosts[0].pref = 0;
		req->nhosts = 1;
		req->result.implicit = 1;
		break;
	case ANS_DATA:
		if (req->select_rc == ERR_NOTFOUND) {
			mx_finish(req, MX_PERMFAIL, "5.1.10 domain %s accepts "
			    "no mail (null MX, RFC 7505)", req->domain);
			return;
		}
		if (req->select_rc < 0) {
			mx_finish(req, MX_TEMPFAIL, "4.4.3 malformed MX answer "
			    "for %s", req->domain);
			return;
		}
		break;
	default:
		mx_finish(req, MX_TEMPFAIL, "4.4.3 DNS lookup of the MX of %s "
		    "failed: %s", req->domain, req->why[0] ? req->why :
		    "timed out");
		return;
	}
	if (req->expired) {
		/* answered in the loop turn the timer fired in */
		mx_finish(req, MX_TEMPFAIL, "4.4.3 DNS lookup of the MX of %s "
		    "failed: timed out", req->domain);
		return;
	}
	req->phase = 1;
	for (h = 0; h < req->nhosts; h++) {
		mx_query_start(req, 1 + 2 * (int)h, req->hosts[h].name, RR_A);
		mx_query_start(req, 2 + 2 * (int)h, req->hosts[h].name,
		    RR_AAAA);
	}
	if (req->outstanding == 0)
		event_active(req->step_ev, EV_TIMEOUT, 0);
}

/* Every address query is answered (or timed out). */
static void
mx_after_addrs(struct mx_req *req)
{
	struct mx_result	*r = &req->result;
	size_t			 slot;
	int			 temp = 0;

	r->ncands = mx_candidates(r->cands, MX_ADDRS_MAX, req->hosts,
	    req->addrs, req->nhosts);
	if (r->ncands > 0) {
		mx_finish(req, MX_OK, NULL);
		return;
	}
	for (slot = 1; slot < 1 + 2 * req->nhosts; slot++)
		if (req->ans[slot] == ANS_TEMP ||
		    req->ans[slot] == ANS_PENDING)
			temp = 1;
	if (temp)
		mx_finish(req, MX_TEMPFAIL, "4.4.3 no address for the mail "
		    "exchangers of %s yet: %s", req->domain, req->why[0] ?
		    req->why : "timed out");
	else if (req->result.implicit)
		mx_finish(req, MX_PERMFAIL, "5.4.4 domain %s has no MX and no "
		    "address records", req->domain);
	else
		mx_finish(req, MX_PERMFAIL, "5.4.4 no mail exchanger of %s "
		    "has an address", req->domain);
}

static void
mx_step(evutil_socket_t fd, short what, void *arg)
{
	struct mx_req	*req = arg;

	switch (req->phase) {
	case 0:
		mx_after_mx(req);
		break;
	case 1:
		mx_after_addrs(req);
		break;
	default:
		mx_finish(req, MX_PERMFAIL, "5.1.2 bad destination domain "
		    "name");
		break;
	}
}

static void
mx_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct mx_req	*req = arg;
	int		 slot;

	for (slot = 0; slot < MX_QUERIES_MAX; slot++)
		if (req->q[slot] != NULL)
			req->ans[slot] = ANS_TEMP;
	mx_why(req, "timed out");
	req->expired = 1;
	mx_req_abandon(req);
	event_del(req->step_ev);
	mx_step(-1, 0, req);
}

void
mx_resolve(struct mx_resolver *res, const char *domain, mx_done_fn done,
    void *arg)
{
	struct mx_req	*req;
	struct timeval	 tv;

	req = xcalloc(1, sizeof(*req));
	req->res = res;
	req->done = done;
	req->arg = arg;
	req->step_ev = event_new(res->base, -1, 0, mx_step, req);
	req->timer = evtimer_new(res->base, mx_timeout, req);
	if (req->step_ev == NULL || req->timer == NULL)
		fatalx("mx: event_new");
	req->next = res->reqs;
	if (req->next != NULL)
		req->next->prev = req;
	res->reqs = req;
	if (!mx_domain_ok(domain)) {
		snprintf(req->domain, sizeof(req->domain), "(invalid)");
		req->phase = 2;
		event_active(req->step_ev, EV_TIMEOUT, 0);
		return;
	}
	snprintf(req->domain, sizeof(req->domain), "%s", domain);
	tv.tv_sec = res->timeout_ms / 1000;
	tv.tv_usec = (res->timeout_ms % 1000) * 1000;
	evtimer_add(req->timer, &tv);
	mx_query_start(req, 0, req->domain, RR_MX);
	if (req->outstanding == 0)
		event_active(req->step_ev, EV_TIMEOUT, 0);
}

/* ------------------------------------------------------------ resolver */

static void
mx_ub_readable(evutil_socket_t fd, short what, void *arg)
{
	struct mx_resolver	*res = arg;
	int			 rc;

	if ((rc = ub_process(res->ub)) != 0)
		log_warnx("mx: ub_process: %s", ub_strerror(rc));
}

int
mx_resolver_new(struct mx_resolver **out, struct event_base *base,
    const char *forwarder, int64_t timeout_ms)
{
	struct mx_resolver	*res;
	int			 rc, fd;

	*out = NULL;
	if (forwarder[0] != '\0' && !mx_forwarder_ok(forwarder)) {
		err_set(ERR_INVAL, "[mailsrv] dns_resolver: want ip or "
		    "ip@port, not \"%.*s\"", MX_FWD_MAX, forwarder);
		return ERR_INVAL;
	}
	res = xcalloc(1, sizeof(*res));
	res->base = base;
	res->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
	if ((res->ub = ub_ctx_create()) == NULL) {
		err_set(ERR_GENERIC, "mx: ub_ctx_create failed");
		goto fail;
	}
	/* a thread, not libunbound's default forked process: we hold
	 * LMDB environments and worker threads */
	if ((rc = ub_ctx_async(res->ub, 1)) != 0) {
		err_set(ERR_GENERIC, "mx: ub_ctx_async: %s", ub_strerror(rc));
		goto fail;
	}
	if (forwarder[0] != '\0') {
		if ((rc = ub_ctx_set_fwd(res->ub, forwarder)) != 0) {
			err_set(ERR_INVAL, "[mailsrv] dns_resolver %s: %s",
			    forwarder, ub_strerror(rc));
			goto fail;
		}
	} else if ((rc = ub_ctx_resolvconf(res->ub, NULL)) != 0)
		log_warnx("mx: /etc/resolv.conf unusable (%s): resolving "
		    "from the root servers", ub_strerror(rc));
	if ((fd = ub_fd(res->ub)) < 0) {
		err_set(ERR_GENERIC, "mx: ub_fd failed");
		goto fail;
	}
	res->ev = event_new(base, fd, EV_READ | EV_PERSIST, mx_ub_readable,
	    res);
	if (res->ev == NULL || event_add(res->ev, NULL) < 0) {
		err_set(ERR_GENERIC, "mx: cannot watch the resolver");
		goto fail;
	}
	log_info("mx resolver ready forwarder=%s timeout_ms=%lld",
	    forwarder[0] != '\0' ? forwarder : "resolv.conf",
	    (long long)res->timeout_ms);
	*out = res;
	return 0;
fail:
	mx_resolver_free(&res);
	return err_code() < 0 ? err_code() : ERR_GENERIC;
}

void
mx_resolver_free(struct mx_resolver **resp)
{
	struct mx_resolver	*res = *resp;
	struct mx_query		*q;

	if (res == NULL)
		return;
	*resp = NULL;
	if (res->ev != NULL)
		event_free(res->ev);
	/* after this no libunbound callback runs */
	if (res->ub != NULL)
		ub_ctx_delete(res->ub);
	res->ub = NULL;
	while ((q = res->queries) != NULL) {
		if (q->req != NULL) {
			q->req->q[q->slot] = NULL;
			q->req->outstanding--;
		}
		mx_query_unlink(q);
		free(q);
	}
	while (res->reqs != NULL)
		mx_finish(res->reqs, MX_TEMPFAIL, "4.4.3 DNS resolver "
		    "stopped");
	free(res);
}
