/*
 * test_mailsrv_mx.c -- unit tests for the MX resolution of mailsrv/mx.c.
 *
 * Purpose: the pure parts without a network: wire-format names in MX
 * RDATA (valid, at the MX_WIRE_MAX limit and one over, labels of 63 and
 * 64 octets, compression pointers including a self-loop, truncation,
 * trailing octets, unsafe bytes), MX RDATA, the choice and order of MX
 * hosts (preference, ties in rnd() order, null MX alone and beside real
 * records, malformed records skipped, MX_HOSTS_MAX at the limit and one
 * over, many records), address RDATA, the candidate order and its
 * limits (MX_HOST_ADDRS_MAX, MX_ADDRS_MAX at the limit and one over),
 * the domain and dns_resolver checks.  Then the loop plumbing with
 * libunbound against a local UDP socket that never answers: a bad
 * domain fails later (not from inside mx_resolve), a silent server hits
 * dns_timeout (4.4.3), and freeing the resolver ends pending lookups.
 * Runs in: the unit test binary only.
 * Failure policy: cmocka assertions.
 * SECURITY: the malformed-RDATA cases are the point: DNS answers are
 * attacker-controlled.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/event.h>

#include "common/err.h"
#include "mailsrv/mx.h"

/* ------------------------------------------------------------ helpers */

/* Wire form of a dotted name ("" is the root) into out; its length. */
static size_t
wire(unsigned char *out, const char *name)
{
	size_t		 n = 0, l;
	const char	*p = name, *dot;

	while (*p != '\0') {
		dot = strchr(p, '.');
		l = dot ? (size_t)(dot - p) : strlen(p);
		out[n++] = (unsigned char)l;
		memcpy(out + n, p, l);
		n += l;
		p += l + (dot ? 1 : 0);
	}
	out[n++] = 0;
	return n;
}

/* An MX RDATA for (pref, name) into out; its length. */
static size_t
mxrr(unsigned char *out, unsigned pref, const char *name)
{
	out[0] = (unsigned char)(pref >> 8);
	out[1] = (unsigned char)pref;
	return 2 + wire(out + 2, name);
}

/* A label of n 'a's followed by ".", n times over: a long name. */
static void
long_name(char *out, size_t labels, size_t lablen, size_t last)
{
	size_t	i, o = 0;

	for (i = 0; i < labels; i++) {
		memset(out + o, 'a' + (int)(i % 26), lablen);
		o += lablen;
		out[o++] = '.';
	}
	memset(out + o, 'z', last);
	o += last;
	out[o] = '\0';
}

/* rnd() for the tests: a fixed sequence. */
static uint32_t	seq[64];
static size_t	seqi;

static uint32_t
rnd_seq(void)
{
	return seq[seqi++ % 64];
}

static uint32_t
rnd_zero(void)
{
	return 0;
}

/* An answer of n MX records (pref[i], names[i]) for mx_select. */
struct answer {
	unsigned char	 rr[1200][270];
	char		*data[1201];
	int		 len[1201];
};

static struct answer *
answer_new(size_t n, const unsigned *pref, const char *const *names)
{
	struct answer	*a = calloc(1, sizeof(*a));
	size_t		 i;

	assert_non_null(a);
	for (i = 0; i < n; i++) {
		a->len[i] = (int)mxrr(a->rr[i], pref[i], names[i]);
		a->data[i] = (char *)a->rr[i];
	}
	a->data[n] = NULL;
	return a;
}

/* ------------------------------------------------------------ names */

static void
test_mailsrv_mx__name_valid(void **state)
{
	unsigned char	w[300];
	char		out[MX_NAME_MAX + 1];
	size_t		n;

	n = wire(w, "mx1.Example-Mail.org");
	assert_int_equal(mx_name_from_wire(out, sizeof(out), w, n), 0);
	assert_string_equal(out, "mx1.Example-Mail.org");
	n = wire(w, "_x.a1");
	assert_int_equal(mx_name_from_wire(out, sizeof(out), w, n), 0);
	assert_string_equal(out, "_x.a1");
	/* the root name */
	n = wire(w, "");
	assert_int_equal(n, 1);
	assert_int_equal(mx_name_from_wire(out, sizeof(out), w, n), 0);
	assert_string_equal(out, "");
}

static void
test_mailsrv_mx__name_wire_limit(void **state)
{
	unsigned char	w[300];
	char		name[300], out[MX_NAME_MAX + 1];
	size_t		n;

	/* 3 labels of 63 + one of 61: 4 * 1 + 63 * 3 + 61 + 1 = 255 */
	long_name(name, 3, 63, 61);
	n = wire(w, name);
	assert_int_equal(n, MX_WIRE_MAX);
	assert_int_equal(mx_name_from_wire(out, sizeof(out), w, n), 0);
	assert_int_equal(strlen(out), MX_NAME_MAX);
	assert_string_equal(out, name);
	/* one more octet: 256 */
	long_name(name, 3, 63, 62);
	n = wire(w, name);
	assert_int_equal(n, MX_WIRE_MAX + 1);
	assert_int_equal(mx_name_from_wire(out, sizeof(out), w, n),
	    ERR_TOOBIG);
	assert_string_equal(out, "");
	/* a valid name but too small an output buffer */
	n = wire(w, "abcdef.gh");
	assert_int_equal(mx_name_from_wire(out, 9, w, n), ERR_TOOBIG);
	assert_int_equal(mx_name_from_wire(out, 10, w, n), 0);
	assert_int_equal(mx_name_from_wire(out, 0, w, n), ERR_INVAL);
}

static void
test_mailsrv_mx__name_label_limit(void **state)
{
	unsigned char	w[300];
	char		name[100], out[MX_NAME_MAX + 1];
	size_t		n;

	memset(name, 'q', 63);
	memcpy(name + 63, ".org", 5);
	n = wire(w, name);
	assert_int_equal(mx_name_from_wire(out, sizeof(out), w, n), 0);
	assert_string_equal(out, name);
	/* a 64-octet label: 0x40, an extended label type */
	memset(name, 'q', 64);
	memcpy(name + 64, ".org", 5);
	n = wire(w, name);
	assert_int_equal(w[0], 0x40);
	assert_int_equal(mx_name_from_wire(out, sizeof(out), w, n),
	    ERR_PROTO);
}

static void
test_mailsrv_mx__name_pointers_refused(void **state)
{
	/* "mx" then a pointer back to offset 0: a loop if followed */
	static const unsigned char	loop[] = { 2, 'm', 'x', 0xc0, 0x00 };
	/* a pointer to itself */
	static const unsigned char	self[] = { 0xc0, 0x00 };
	/* the usual pointer to the question name */
	static const unsigned char	q[] = { 0xc0, 0x0c };
	/* 0x80: the reserved label type */
	static const unsigned char	r80[] = { 0x80, 'a', 0 };
	char				out[MX_NAME_MAX + 1];

	assert_int_equal(mx_name_from_wire(out, sizeof(out), loop,
	    sizeof(loop)), ERR_PROTO);
	assert_int_equal(mx_name_from_wire(out, sizeof(out), self,
	    sizeof(self)), ERR_PROTO);
	assert_int_equal(mx_name_from_wire(out, sizeof(out), q, sizeof(q)),
	    ERR_PROTO);
	assert_int_equal(mx_name_from_wire(out, sizeof(out), r80,
	    sizeof(r80)), ERR_PROTO);
}

static void
test_mailsrv_mx__name_truncated_or_trailing(void **state)
{
	static const unsigned char	nolab[] = { 5, 'a', 'b' };
	static const unsigned char	noroot[] = { 2, 'a', 'b' };
	static const unsigned char	trail[] = { 1, 'a', 0, 'x' };
	static const unsigned char	twice[] = { 0, 0 };
	char				out[MX_NAME_MAX + 1];

	assert_int_equal(mx_name_from_wire(out, sizeof(out), nolab,
	    sizeof(nolab)), ERR_PROTO);
	assert_int_equal(mx_name_from_wire(out, sizeof(out), noroot,
	    sizeof(noroot)), ERR_PROTO);
	assert_int_equal(mx_name_from_wire(out, sizeof(out), trail,
	    sizeof(trail)), ERR_PROTO);
	assert_int_equal(mx_name_from_wire(out, sizeof(out), twice,
	    sizeof(twice)), ERR_PROTO);
	assert_int_equal(mx_name_from_wire(out, sizeof(out), trail, 0),
	    ERR_PROTO);
	/* every prefix of a valid name is refused */
	{
		unsigned char	w[64];
		size_t		n = wire(w, "mail.example.org"), i;

		for (i = 0; i < n; i++)
			assert_int_equal(mx_name_from_wire(out, sizeof(out),
			    w, i), ERR_PROTO);
		assert_int_equal(mx_name_from_wire(out, sizeof(out), w, n),
		    0);
	}
}

static void
test_mailsrv_mx__name_unsafe_bytes(void **state)
{
	static const char	bad[] = { ' ', '.', '\\', '"', '\0', '\n',
	    '\r', ';', '/', '@', (char)0x80, (char)0xff };
	unsigned char		w[16];
	char			out[MX_NAME_MAX + 1];
	size_t			i;

	for (i = 0; i < sizeof(bad); i++) {
		w[0] = 3;
		w[1] = 'a';
		w[2] = (unsigned char)bad[i];
		w[3] = 'b';
		w[4] = 0;
		assert_int_equal(mx_name_from_wire(out, sizeof(out), w, 5),
		    ERR_PROTO);
		assert_string_equal(out, "");
	}
}

/* ------------------------------------------------------------ MX RDATA */

static void
test_mailsrv_mx__parse_mx(void **state)
{
	unsigned char	rr[300];
	struct mx_host	h;
	size_t		n;

	n = mxrr(rr, 10, "mx.example.org");
	assert_int_equal(mx_parse_mx(&h, rr, n), 0);
	assert_int_equal(h.pref, 10);
	assert_string_equal(h.name, "mx.example.org");
	n = mxrr(rr, 65535, "a");
	assert_int_equal(mx_parse_mx(&h, rr, n), 0);
	assert_int_equal(h.pref, 65535);
	/* null MX */
	n = mxrr(rr, 0, "");
	assert_int_equal(n, 3);
	assert_int_equal(mx_parse_mx(&h, rr, n), 0);
	assert_string_equal(h.name, "");
	/* too short for a preference and a name */
	assert_int_equal(mx_parse_mx(&h, rr, 2), ERR_PROTO);
	assert_int_equal(mx_parse_mx(&h, rr, 0), ERR_PROTO);
	/* truncated name */
	n = mxrr(rr, 5, "mx.example.org");
	assert_int_equal(mx_parse_mx(&h, rr, n - 1), ERR_PROTO);
}

/* ------------------------------------------------------------ selection */

static void
test_mailsrv_mx__select_by_preference(void **state)
{
	static const unsigned		 pref[] = { 30, 10, 20 };
	static const char *const	 names[] = { "c.mx", "a.mx", "b.mx" };
	struct answer			*a = answer_new(3, pref, names);
	struct mx_host			 h[MX_HOSTS_MAX];
	size_t				 n;

	assert_int_equal(mx_select(h, &n, a->data, a->len, rnd_zero), 0);
	assert_int_equal(n, 3);
	assert_string_equal(h[0].name, "a.mx");
	assert_string_equal(h[1].name, "b.mx");
	assert_string_equal(h[2].name, "c.mx");
	assert_int_equal(h[0].pref, 10);
	free(a);
}

static void
test_mailsrv_mx__select_ties_random(void **state)
{
	static const unsigned		 pref[] = { 10, 10, 10, 5 };
	static const char *const	 names[] = { "x.mx", "y.mx", "z.mx",
	    "best.mx" };
	struct answer			*a = answer_new(4, pref, names);
	struct mx_host			 h[MX_HOSTS_MAX];
	size_t				 n;

	/* ties take the order of their random keys */
	seqi = 0;
	seq[0] = 300, seq[1] = 100, seq[2] = 200, seq[3] = 0;
	assert_int_equal(mx_select(h, &n, a->data, a->len, rnd_seq), 0);
	assert_int_equal(n, 4);
	assert_string_equal(h[0].name, "best.mx");
	assert_string_equal(h[1].name, "y.mx");
	assert_string_equal(h[2].name, "z.mx");
	assert_string_equal(h[3].name, "x.mx");
	seqi = 0;
	seq[0] = 1, seq[1] = 2, seq[2] = 3, seq[3] = 9;
	assert_int_equal(mx_select(h, &n, a->data, a->len, rnd_seq), 0);
	assert_string_equal(h[0].name, "best.mx");
	assert_string_equal(h[1].name, "x.mx");
	assert_string_equal(h[2].name, "y.mx");
	assert_string_equal(h[3].name, "z.mx");
	free(a);
}

static void
test_mailsrv_mx__select_ties_arc4random_vary(void **state)
{
	static const unsigned		 pref[] = { 10, 10 };
	static const char *const	 names[] = { "p.mx", "q.mx" };
	struct answer			*a = answer_new(2, pref, names);
	struct mx_host			 h[MX_HOSTS_MAX];
	size_t				 n, i, pfirst = 0;

	/* both orders show up over 200 draws (fails with p < 2^-199) */
	for (i = 0; i < 200; i++) {
		assert_int_equal(mx_select(h, &n, a->data, a->len,
		    arc4random), 0);
		assert_int_equal(n, 2);
		pfirst += strcmp(h[0].name, "p.mx") == 0;
	}
	assert_true(pfirst > 0 && pfirst < 200);
	free(a);
}

static void
test_mailsrv_mx__select_null_mx(void **state)
{
	static const unsigned		 p1[] = { 0 };
	static const char *const	 n1[] = { "" };
	static const unsigned		 p2[] = { 0, 10 };
	static const char *const	 n2[] = { "", "real.mx" };
	struct answer			*a;
	struct mx_host			 h[MX_HOSTS_MAX];
	size_t				 n;

	a = answer_new(1, p1, n1);
	assert_int_equal(mx_select(h, &n, a->data, a->len, rnd_zero),
	    ERR_NOTFOUND);
	assert_int_equal(n, 0);
	free(a);
	/* beside a real MX, "." is ignored */
	a = answer_new(2, p2, n2);
	assert_int_equal(mx_select(h, &n, a->data, a->len, rnd_zero), 0);
	assert_int_equal(n, 1);
	assert_string_equal(h[0].name, "real.mx");
	/* a null MX with a malformed record is not a clean null MX */
	a->len[1] = 2;
	assert_int_equal(mx_select(h, &n, a->data, a->len, rnd_zero),
	    ERR_PROTO);
	free(a);
}

static void
test_mailsrv_mx__select_malformed_skipped(void **state)
{
	static const unsigned		 pref[] = { 1, 2, 3 };
	static const char *const	 names[] = { "bad.mx", "good.mx",
	    "neg.mx" };
	struct answer			*a = answer_new(3, pref, names);
	struct mx_host			 h[MX_HOSTS_MAX];
	size_t				 n;

	a->rr[0][2] = 0xc0;	/* a compression pointer */
	a->len[2] = -1;
	assert_int_equal(mx_select(h, &n, a->data, a->len, rnd_zero), 0);
	assert_int_equal(n, 1);
	assert_string_equal(h[0].name, "good.mx");
	/* nothing usable */
	a->len[1] = 1;
	assert_int_equal(mx_select(h, &n, a->data, a->len, rnd_zero),
	    ERR_PROTO);
	assert_int_equal(n, 0);
	/* no records at all */
	a->data[0] = NULL;
	assert_int_equal(mx_select(h, &n, a->data, a->len, rnd_zero),
	    ERR_PROTO);
	assert_int_equal(mx_select(h, &n, NULL, NULL, rnd_zero), ERR_PROTO);
	free(a);
}

static void
test_mailsrv_mx__select_hosts_limit(void **state)
{
	unsigned	 pref[MX_HOSTS_MAX + 1];
	char		 nbuf[MX_HOSTS_MAX + 1][16];
	const char	*names[MX_HOSTS_MAX + 1];
	struct answer	*a;
	struct mx_host	 h[MX_HOSTS_MAX + 1];
	size_t		 n, i;

	/* descending preference: the best comes last */
	for (i = 0; i < MX_HOSTS_MAX + 1; i++) {
		pref[i] = (unsigned)(100 - i);
		snprintf(nbuf[i], sizeof(nbuf[i]), "h%zu.mx", i);
		names[i] = nbuf[i];
	}
	memset(h, 0xa5, sizeof(h));
	/* at the limit: all kept */
	a = answer_new(MX_HOSTS_MAX, pref, names);
	assert_int_equal(mx_select(h, &n, a->data, a->len, rnd_zero), 0);
	assert_int_equal(n, MX_HOSTS_MAX);
	for (i = 0; i < MX_HOSTS_MAX; i++)
		assert_int_equal(h[i].pref, 100 - (MX_HOSTS_MAX - 1) + i);
	free(a);
	/* one over: the worst (the first record, pref 100) is dropped */
	a = answer_new(MX_HOSTS_MAX + 1, pref, names);
	memset(h, 0xa5, sizeof(h));
	assert_int_equal(mx_select(h, &n, a->data, a->len, rnd_zero), 0);
	assert_int_equal(n, MX_HOSTS_MAX);
	assert_int_equal(h[0].pref, 100 - MX_HOSTS_MAX);
	for (i = 0; i < MX_HOSTS_MAX; i++)
		assert_string_not_equal(h[i].name, "h0.mx");
	/* nothing written past MX_HOSTS_MAX */
	assert_int_equal(((unsigned char *)&h[MX_HOSTS_MAX])[0], 0xa5);
	free(a);
}

static void
test_mailsrv_mx__select_many_records(void **state)
{
	static unsigned		 pref[1200];
	static char		 nbuf[1200][16];
	static const char	*names[1200];
	struct answer		*a;
	struct mx_host		 h[MX_HOSTS_MAX];
	size_t			 n, i;

	for (i = 0; i < 1200; i++) {
		pref[i] = (unsigned)((i * 7919) % 1200);
		snprintf(nbuf[i], sizeof(nbuf[i]), "m%zu.mx", i);
		names[i] = nbuf[i];
	}
	a = answer_new(1200, pref, names);
	assert_int_equal(mx_select(h, &n, a->data, a->len, arc4random), 0);
	assert_int_equal(n, MX_HOSTS_MAX);
	for (i = 0; i < MX_HOSTS_MAX; i++)
		assert_int_equal(h[i].pref, i);
	free(a);
}

/* ------------------------------------------------------------ addresses */

static void
test_mailsrv_mx__parse_addr(void **state)
{
	static const unsigned char	v4[] = { 192, 0, 2, 7 };
	static const unsigned char	v6[16] = { 0x20, 0x01, 0x0d, 0xb8,
	    [15] = 1 };
	static const unsigned char	zero[16];
	char				out[INET6_ADDRSTRLEN];

	assert_int_equal(mx_parse_addr(out, sizeof(out), 1, v4, 4), 0);
	assert_string_equal(out, "192.0.2.7");
	assert_int_equal(mx_parse_addr(out, sizeof(out), 28, v6, 16), 0);
	assert_string_equal(out, "2001:db8::1");
	/* wrong lengths for the type */
	assert_int_equal(mx_parse_addr(out, sizeof(out), 1, v4, 3),
	    ERR_PROTO);
	assert_int_equal(mx_parse_addr(out, sizeof(out), 1, v6, 16),
	    ERR_PROTO);
	assert_int_equal(mx_parse_addr(out, sizeof(out), 28, v4, 4),
	    ERR_PROTO);
	assert_int_equal(mx_parse_addr(out, sizeof(out), 28, v6, 17),
	    ERR_PROTO);
	assert_int_equal(mx_parse_addr(out, sizeof(out), 15, v4, 4),
	    ERR_PROTO);
	/* the unspecified addresses */
	assert_int_equal(mx_parse_addr(out, sizeof(out), 1, zero, 4),
	    ERR_PROTO);
	assert_int_equal(mx_parse_addr(out, sizeof(out), 28, zero, 16),
	    ERR_PROTO);
}

static void
test_mailsrv_mx__candidates_order(void **state)
{
	struct mx_host	h[2];
	struct mx_addrs	a[2];
	struct mx_cand	c[MX_ADDRS_MAX];
	size_t		n;

	memset(h, 0, sizeof(h));
	memset(a, 0, sizeof(a));
	snprintf(h[0].name, sizeof(h[0].name), "one.mx");
	h[0].pref = 5;
	snprintf(h[1].name, sizeof(h[1].name), "two.mx");
	h[1].pref = 9;
	snprintf(a[0].v6[0], sizeof(a[0].v6[0]), "2001:db8::1");
	a[0].n6 = 1;
	snprintf(a[0].v4[0], sizeof(a[0].v4[0]), "192.0.2.1");
	snprintf(a[0].v4[1], sizeof(a[0].v4[1]), "192.0.2.2");
	a[0].n4 = 2;
	snprintf(a[1].v4[0], sizeof(a[1].v4[0]), "198.51.100.1");
	a[1].n4 = 1;
	n = mx_candidates(c, MX_ADDRS_MAX, h, a, 2);
	assert_int_equal(n, 4);
	assert_string_equal(c[0].addr, "192.0.2.1");
	assert_string_equal(c[1].addr, "192.0.2.2");
	assert_string_equal(c[2].addr, "2001:db8::1");
	assert_string_equal(c[3].addr, "198.51.100.1");
	assert_string_equal(c[0].host, "one.mx");
	assert_string_equal(c[2].host, "one.mx");
	assert_string_equal(c[3].host, "two.mx");
	assert_int_equal(c[3].pref, 9);
	/* a host without addresses is skipped */
	a[0].n4 = a[0].n6 = 0;
	n = mx_candidates(c, MX_ADDRS_MAX, h, a, 2);
	assert_int_equal(n, 1);
	assert_string_equal(c[0].host, "two.mx");
	/* counts over MX_HOST_ADDRS_MAX are not trusted */
	a[1].n4 = 1000;
	n = mx_candidates(c, MX_ADDRS_MAX, h, a, 2);
	assert_int_equal(n, MX_HOST_ADDRS_MAX);
}

static void
test_mailsrv_mx__candidates_limit(void **state)
{
	struct mx_host	h[MX_HOSTS_MAX];
	struct mx_addrs	a[MX_HOSTS_MAX];
	struct mx_cand	c[MX_ADDRS_MAX + 1];
	size_t		n, i, k;

	/* MX_HOSTS_MAX hosts with MX_HOST_ADDRS_MAX IPv4 addresses each:
	 * exactly MX_ADDRS_MAX */
	assert_int_equal(MX_HOSTS_MAX * MX_HOST_ADDRS_MAX, MX_ADDRS_MAX);
	memset(h, 0, sizeof(h));
	memset(a, 0, sizeof(a));
	for (i = 0; i < MX_HOSTS_MAX; i++) {
		snprintf(h[i].name, sizeof(h[i].name), "h%zu.mx", i);
		for (k = 0; k < MX_HOST_ADDRS_MAX; k++)
			snprintf(a[i].v4[k], sizeof(a[i].v4[k]),
			    "10.0.%zu.%zu", i, k);
		a[i].n4 = MX_HOST_ADDRS_MAX;
	}
	memset(c, 0, sizeof(c));
	n = mx_candidates(c, MX_ADDRS_MAX, h, a, MX_HOSTS_MAX);
	assert_int_equal(n, MX_ADDRS_MAX);
	assert_string_equal(c[0].addr, "10.0.0.0");
	assert_string_equal(c[MX_ADDRS_MAX - 1].host, "h4.mx");
	assert_string_equal(c[MX_ADDRS_MAX - 1].addr, "10.0.4.1");
	/* one more (an IPv6 address of the last host): cut */
	snprintf(a[MX_HOSTS_MAX - 1].v6[0], INET6_ADDRSTRLEN, "fd00::1");
	a[MX_HOSTS_MAX - 1].n6 = 1;
	memset(c, 0, sizeof(c));
	n = mx_candidates(c, MX_ADDRS_MAX, h, a, MX_HOSTS_MAX);
	assert_int_equal(n, MX_ADDRS_MAX);
	assert_string_equal(c[MX_ADDRS_MAX - 1].addr, "10.0.4.1");
	assert_string_equal(c[MX_ADDRS_MAX].addr, "");
	/* with room for it, it comes last */
	n = mx_candidates(c, MX_ADDRS_MAX + 1, h, a, MX_HOSTS_MAX);
	assert_int_equal(n, MX_ADDRS_MAX + 1);
	assert_string_equal(c[MX_ADDRS_MAX].addr, "fd00::1");
}

/* ------------------------------------------------------------ checks */

static void
test_mailsrv_mx__domain_ok(void **state)
{
	char	name[300];

	assert_true(mx_domain_ok("example.org"));
	assert_true(mx_domain_ok("b.amanat.test"));
	assert_true(mx_domain_ok("localhost"));
	assert_false(mx_domain_ok(""));
	assert_false(mx_domain_ok("."));
	assert_false(mx_domain_ok("example.org."));
	assert_false(mx_domain_ok(".example.org"));
	assert_false(mx_domain_ok("a..b"));
	assert_false(mx_domain_ok("[192.0.2.1]"));
	assert_false(mx_domain_ok("ex ample.org"));
	assert_false(mx_domain_ok("b\xc3\xbc" "cher.de"));
	long_name(name, 3, 63, 61);
	assert_int_equal(strlen(name), MX_NAME_MAX);
	assert_true(mx_domain_ok(name));
	long_name(name, 3, 63, 62);
	assert_false(mx_domain_ok(name));
	memset(name, 'a', 64);
	memcpy(name + 64, ".org", 5);
	assert_false(mx_domain_ok(name));
	memcpy(name + 63, ".org", 5);
	assert_true(mx_domain_ok(name));
}

static void
test_mailsrv_mx__forwarder_ok(void **state)
{
	char	big[100];

	assert_true(mx_forwarder_ok("127.0.0.1"));
	assert_true(mx_forwarder_ok("127.0.0.1@5353"));
	assert_true(mx_forwarder_ok("::1@53"));
	assert_true(mx_forwarder_ok("2001:db8::53"));
	assert_false(mx_forwarder_ok(""));
	assert_false(mx_forwarder_ok("@53"));
	assert_false(mx_forwarder_ok("dns.example.org"));
	assert_false(mx_forwarder_ok("dns.example.org@53"));
	assert_false(mx_forwarder_ok("127.0.0.1@0"));
	assert_false(mx_forwarder_ok("127.0.0.1@65536"));
	assert_false(mx_forwarder_ok("127.0.0.1@"));
	assert_false(mx_forwarder_ok("127.0.0.1:53"));
	assert_false(mx_forwarder_ok("127.0.0.1@53@53"));
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_false(mx_forwarder_ok(big));
}

/* ------------------------------------------------------------ the loop */

struct done_rec {
	int			calls;
	enum mx_status		status;
	char			text[MX_TEXT_MAX];
	struct event_base	*base;
};

static void
done_cb(const struct mx_result *r, void *arg)
{
	struct done_rec	*d = arg;

	d->calls++;
	d->status = r->status;
	snprintf(d->text, sizeof(d->text), "%s", r->text);
	if (d->base != NULL)
		event_base_loopbreak(d->base);
}

/* A UDP socket on 127.0.0.1 that never answers: "127.0.0.1@port". */
static int
silent_server(char *fwd, size_t len)
{
	struct sockaddr_in	sin;
	socklen_t		sl = sizeof(sin);
	int			fd;

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	snprintf(fwd, len, "127.0.0.1@%u", ntohs(sin.sin_port));
	return fd;
}

static void
test_mailsrv_mx__resolver_bad_arguments(void **state)
{
	struct event_base	*base = event_base_new();
	struct mx_resolver	*r = (struct mx_resolver *)&r;

	assert_int_equal(mx_resolver_new(&r, base, "dns.example.org", 1000),
	    ERR_INVAL);
	assert_null(r);
	mx_resolver_free(&r);
	event_base_free(base);
}

static void
test_mailsrv_mx__bad_domain_fails_later(void **state)
{
	struct event_base	*base = event_base_new();
	struct mx_resolver	*r = NULL;
	struct done_rec		 d;
	char			 fwd[64];
	int			 fd = silent_server(fwd, sizeof(fwd));

	memset(&d, 0, sizeof(d));
	d.base = base;
	assert_int_equal(mx_resolver_new(&r, base, fwd, 5000), 0);
	mx_resolve(r, "bad..domain", done_cb, &d);
	assert_int_equal(d.calls, 0);		/* never from inside */
	event_base_dispatch(base);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.status, MX_PERMFAIL);
	assert_true(strncmp(d.text, "5.1.2 ", 6) == 0);
	mx_resolver_free(&r);
	assert_int_equal(d.calls, 1);
	event_base_free(base);
	close(fd);
}

static void
test_mailsrv_mx__silent_server_times_out(void **state)
{
	struct event_base	*base = event_base_new();
	struct mx_resolver	*r = NULL;
	struct done_rec		 d;
	char			 fwd[64];
	int			 fd = silent_server(fwd, sizeof(fwd));

	memset(&d, 0, sizeof(d));
	d.base = base;
	assert_int_equal(mx_resolver_new(&r, base, fwd, 300), 0);
	mx_resolve(r, "silent.example", done_cb, &d);
	event_base_dispatch(base);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.status, MX_TEMPFAIL);
	assert_true(strncmp(d.text, "4.4.3 ", 6) == 0);
	assert_non_null(strstr(d.text, "timed out"));
	mx_resolver_free(&r);
	event_base_free(base);
	close(fd);
}

static void
test_mailsrv_mx__free_ends_pending(void **state)
{
	struct event_base	*base = event_base_new();
	struct mx_resolver	*r = NULL;
	struct done_rec		 d1, d2;
	char			 fwd[64];
	int			 fd = silent_server(fwd, sizeof(fwd));

	memset(&d1, 0, sizeof(d1));
	memset(&d2, 0, sizeof(d2));
	assert_int_equal(mx_resolver_new(&r, base, fwd, 60000), 0);
	mx_resolve(r, "one.example", done_cb, &d1);
	mx_resolve(r, "two.example", done_cb, &d2);
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(d1.calls + d2.calls, 0);
	mx_resolver_free(&r);
	assert_null(r);
	assert_int_equal(d1.calls, 1);
	assert_int_equal(d2.calls, 1);
	assert_int_equal(d1.status, MX_TEMPFAIL);
	assert_non_null(strstr(d2.text, "stopped"));
	event_base_free(base);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mailsrv_mx__name_valid),
		cmocka_unit_test(test_mailsrv_mx__name_wire_limit),
		cmocka_unit_test(test_mailsrv_mx__name_label_limit),
		cmocka_unit_test(test_mailsrv_mx__name_pointers_refused),
		cmocka_unit_test(test_mailsrv_mx__name_truncated_or_trailing),
		cmocka_unit_test(test_mailsrv_mx__name_unsafe_bytes),
		cmocka_unit_test(test_mailsrv_mx__parse_mx),
		cmocka_unit_test(test_mailsrv_mx__select_by_preference),
		cmocka_unit_test(test_mailsrv_mx__select_ties_random),
		cmocka_unit_test(test_mailsrv_mx__select_ties_arc4random_vary),
		cmocka_unit_test(test_mailsrv_mx__select_null_mx),
		cmocka_unit_test(test_mailsrv_mx__select_malformed_skipped),
		cmocka_unit_test(test_mailsrv_mx__select_hosts_limit),
		cmocka_unit_test(test_mailsrv_mx__select_many_records),
		cmocka_unit_test(test_mailsrv_mx__parse_addr),
		cmocka_unit_test(test_mailsrv_mx__candidates_order),
		cmocka_unit_test(test_mailsrv_mx__candidates_limit),
		cmocka_unit_test(test_mailsrv_mx__domain_ok),
		cmocka_unit_test(test_mailsrv_mx__forwarder_ok),
		cmocka_unit_test(test_mailsrv_mx__resolver_bad_arguments),
		cmocka_unit_test(test_mailsrv_mx__bad_domain_fails_later),
		cmocka_unit_test(test_mailsrv_mx__silent_server_times_out),
		cmocka_unit_test(test_mailsrv_mx__free_ends_pending),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
