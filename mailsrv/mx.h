/*
 * mx.h -- DNS MX resolution for outbound relay (see mx.c).
 */
#ifndef MAILSRV_MX_H
#define MAILSRV_MX_H

#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <event2/event.h>

/* MX hosts used per domain: the best preferences, the rest ignored. */
#define MX_HOSTS_MAX		5
/* Addresses kept per MX host and per family (A, then AAAA). */
#define MX_HOST_ADDRS_MAX	2
/* Candidates (host, address) handed to the relay, in all. */
#define MX_ADDRS_MAX		10
/* A host or domain name in presentation form, without the final dot. */
#define MX_NAME_MAX		253
/* A name in wire form (RFC 1035 3.1), with the root label. */
#define MX_WIRE_MAX		255
#define MX_TEXT_MAX		300

enum mx_status {
	MX_OK = 0,	/* cands[0..ncands) */
	MX_TEMPFAIL,	/* try later: text is "4.4.3 ..." */
	MX_PERMFAIL,	/* the domain takes no mail: text is "5.x.x ..." */
};

/* One place to deliver to: connect to addr, check TLS against host. */
struct mx_cand {
	char		host[MX_NAME_MAX + 1];
	char		addr[INET6_ADDRSTRLEN];
	unsigned	pref;
};

struct mx_result {
	enum mx_status	status;
	char		text[MX_TEXT_MAX];	/* why, when not MX_OK */
	int		implicit;	/* no MX: the domain's own address */
	struct mx_cand	cands[MX_ADDRS_MAX];	/* best first */
	size_t		ncands;
};

/*
 * done(result, arg) runs exactly once per mx_resolve(), on the loop and
 * never from inside mx_resolve(); result is valid during the call only.
 */
typedef void	(*mx_done_fn)(const struct mx_result *, void *);

struct mx_resolver;

/*
 * A resolver on base.  forwarder: "" uses /etc/resolv.conf, else
 * "ip[@port]" (ERR_INVAL when malformed).  timeout_ms bounds a whole
 * lookup (MX, then the hosts' addresses).
 */
int	mx_resolver_new(struct mx_resolver **, struct event_base *,
	    const char *, int64_t);
/* Lookups still running end with MX_TEMPFAIL ("resolver stopped"). */
void	mx_resolver_free(struct mx_resolver **);
/* The candidates for mail to domain (a recipient's, checked here). */
void	mx_resolve(struct mx_resolver *, const char *, mx_done_fn, void *);

/* ---- the pure parts, exposed for the unit tests ---- */

/* One MX record, parsed. */
struct mx_host {
	char		name[MX_NAME_MAX + 1];	/* "" is the root (null MX) */
	unsigned	pref;
	uint32_t	tie;	/* random: the order among equal prefs */
};

/* The addresses found for one MX host (text form). */
struct mx_addrs {
	char		v4[MX_HOST_ADDRS_MAX][INET6_ADDRSTRLEN];
	char		v6[MX_HOST_ADDRS_MAX][INET6_ADDRSTRLEN];
	size_t		n4, n6;
};

/* 1 if s is a domain we may look up: LDH labels, 1-253 octets. */
int	mx_domain_ok(const char *);
/* 1 if s is "ip" or "ip@port" (the dns_resolver knob). */
int	mx_forwarder_ok(const char *);
/*
 * Decode an uncompressed wire-format name of exactly len octets into
 * out (outlen > MX_NAME_MAX): ERR_PROTO when truncated, with trailing
 * octets, a compression pointer or a byte outside letters, digits, '-'
 * and '_'; ERR_TOOBIG over MX_WIRE_MAX octets.
 */
int	mx_name_from_wire(char *, size_t, const unsigned char *, size_t);
/* One MX RDATA: 2-octet preference, then the exchange name. */
int	mx_parse_mx(struct mx_host *, const unsigned char *, size_t);
/*
 * The best MX_HOSTS_MAX hosts of an MX answer (data[] NULL-terminated,
 * len[] their lengths; data may be NULL), ordered by preference, equal
 * ones by rnd().  Malformed records are skipped.  0 with *n >= 1;
 * ERR_NOTFOUND: only null MX records (RFC 7505); ERR_PROTO: nothing
 * usable.
 */
int	mx_select(struct mx_host *, size_t *, char *const *, const int *,
	    uint32_t (*)(void));
/* One A (qtype 1) or AAAA (28) RDATA in text form; ERR_PROTO if bad. */
int	mx_parse_addr(char *, size_t, int, const unsigned char *, size_t);
/*
 * The candidates in order: each host's IPv4 addresses, then its IPv6
 * ones, hosts in order, at most max in all.  Returns how many.
 */
size_t	mx_candidates(struct mx_cand *, size_t, const struct mx_host *,
	    const struct mx_addrs *, size_t);

#endif
