/*
 * audit_bench.c -- benchmark of the audit log (common/audit.h).
 *
 * Runs in: bench/run or by hand; a single-threaded libevent loop plus
 * the audit log's own writer thread, on logs in a temporary directory
 * (under $TMPDIR or /tmp) that is removed at the end.
 * Measures:
 *   1. durable appends per second: -n entries (default 100000) through
 *      audit_append() with -w appends in flight (default 8192), each
 *      counted when its callback reports it committed (fsync'd);
 *   2. a log of -N entries (default 1000000) built the same way, then
 *      the mean time of -p inclusion proofs (default 1000) for random
 *      indexes at the full size and of their verification, a
 *      consistency proof, and optionally (-V) a full audit_verify_all().
 * Prints one line per figure, e.g.
 *   audit durable appends: 123456/s (batch 512.3)
 *   audit inclusion proof at 1000000 entries: 12.3 us (proof 20 hashes)
 * Exit status 1 on any failure.
 *
 * Build (with every common/ source file, i.e. common/<star>.c):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -pthread -I. bench/audit_bench.c
 *   common/<star>.c $(pkg-config --cflags --libs openssl lmdb jansson
 *   libevent libevent_openssl libevent_pthreads libbsd libargon2 zlib)
 *   -lpthread -o audit_bench
 */
#include <dirent.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "common/audit.h"
#include "common/err.h"
#include "common/log.h"
#include "common/merkle.h"
#include "common/util.h"

struct bench {
	struct event_base	*base;
	struct audit_log	*log;
	uint64_t		 total;		/* appends to make */
	uint64_t		 submitted;
	uint64_t		 done;
	uint64_t		 failed;
	unsigned		 window;
};

static double
now_s(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void	bench_submit(struct bench *);

static void
bench_cb(void *arg, int rc, uint64_t index)
{
	struct bench	*b = arg;

	b->done++;
	if (rc != 0) {
		if (b->failed++ == 0)
			fprintf(stderr, "audit_bench: append: %s\n", err_msg());
	}
	bench_submit(b);
}

/* Keep window appends in flight until total are submitted. */
static void
bench_submit(struct bench *b)
{
	struct audit_entry	e;
	char			req[32], obj[48];

	while (b->submitted < b->total &&
	    b->submitted - b->done < b->window) {
		snprintf(req, sizeof(req), "req-%llu",
		    (unsigned long long)b->submitted);
		snprintf(obj, sizeof(obj), "/spaces/bench/doc-%llu.txt",
		    (unsigned long long)(b->submitted % 1000));
		memset(&e, 0, sizeof(e));
		e.actor = "alice@dept-a.example";
		e.dept = "dept-a";
		e.src = "192.0.2.10";
		e.action = "doc.write";
		e.object = obj;
		e.outcome = AUDIT_OK;
		e.request_id = req;
		if (audit_append(b->log, &e, bench_cb, b) != 0) {
			fprintf(stderr, "audit_bench: queue: %s\n", err_msg());
			b->failed++;
			b->done++;
		}
		b->submitted++;
	}
}

/* Append total entries; returns the wall time in seconds. */
static double
bench_fill(struct bench *b, uint64_t total)
{
	double	t0;

	b->total = total;
	b->submitted = b->done = 0;
	t0 = now_s();
	bench_submit(b);
	while (b->done < b->total)
		event_base_loop(b->base, EVLOOP_ONCE);
	return now_s() - t0;
}

static int
bench_open(struct bench *b, const char *dir)
{
	struct audit_opts	o;

	memset(&o, 0, sizeof(o));
	o.dir = dir;
	o.node = "bench";
	o.service = "bench";
	o.map_size = 256UL * 1024 * 1024;
	o.base = b->base;
	if (audit_open(&b->log, &o) != 0) {
		fprintf(stderr, "audit_bench: open %s: %s\n", dir, err_msg());
		return -1;
	}
	return 0;
}

static void
rm_dir(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	char		*p;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		p = path_join(dir, de->d_name);
		(void)unlink(p);
		free(p);
	}
	closedir(d);
	(void)rmdir(dir);
}

static int
bench_appends(struct bench *b, const char *dir, uint64_t n)
{
	struct audit_stats	st;
	double			secs;

	if (bench_open(b, dir) < 0)
		return -1;
	secs = bench_fill(b, n);
	audit_stats(&st, b->log);
	audit_close(&b->log);
	if (b->failed > 0)
		return -1;
	printf("audit durable appends: %.0f/s (batch %.1f; %llu entries in "
	    "%.2f s, %llu commits, %u in flight)\n", (double)n / secs,
	    st.commits ? (double)st.appended / (double)st.commits : 0.0,
	    (unsigned long long)n, secs, (unsigned long long)st.commits,
	    b->window);
	return 0;
}

static uint64_t
rand_below(uint64_t n)
{
	uint64_t	r;

	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint64_t)random();
	return r % n;
}

/* Mean time of p inclusion proofs at size n, and of their checks. */
static int
bench_proofs(struct bench *b, uint64_t n, unsigned p)
{
	uint8_t		proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	uint8_t		root[MERKLE_HASH_LEN], leaf[MERKLE_HASH_LEN];
	double		tp = 0, tv = 0, t0;
	uint64_t	idx;
	size_t		np = 0, len, hashes = 0;
	char		*bytes;
	unsigned	i;

	if (audit_root(root, b->log, n) != 0)
		return -1;
	for (i = 0; i < p; i++) {
		idx = rand_below(n);
		t0 = now_s();
		if (audit_inclusion_proof(proof, &np, b->log, idx, n) != 0)
			return -1;
		tp += now_s() - t0;
		hashes += np;
		if (audit_get(&bytes, &len, b->log, idx) != 0 ||
		    merkle_leaf_hash(leaf, bytes, len) != 0)
			return -1;
		free(bytes);
		t0 = now_s();
		if (audit_verify_inclusion(leaf, idx, n,
		    (const uint8_t (*)[MERKLE_HASH_LEN])proof, np, root) != 0)
			return -1;
		tv += now_s() - t0;
	}
	printf("audit inclusion proof at %llu entries: %.1f us (proof %.1f "
	    "hashes, mean of %u)\n", (unsigned long long)n, tp / p * 1e6,
	    (double)hashes / p, p);
	printf("audit inclusion verify at %llu entries: %.1f us\n",
	    (unsigned long long)n, tv / p * 1e6);
	return 0;
}

static int
bench_consistency(struct bench *b, uint64_t n)
{
	uint8_t		proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	uint8_t		r1[MERKLE_HASH_LEN], r2[MERKLE_HASH_LEN];
	uint64_t	m = n / 3 + 17;
	size_t		np;
	double		t0, tp, tr;

	t0 = now_s();
	if (audit_root(r1, b->log, m) != 0)
		return -1;
	tr = now_s() - t0;
	t0 = now_s();
	if (audit_consistency_proof(proof, &np, b->log, m, n) != 0)
		return -1;
	tp = now_s() - t0;
	if (audit_root(r2, b->log, n) != 0 ||
	    audit_verify_consistency(m, n, r1, r2,
	    (const uint8_t (*)[MERKLE_HASH_LEN])proof, np) != 0)
		return -1;
	printf("audit root at size %llu: %.1f us; consistency proof %llu -> "
	    "%llu: %.1f us (%zu hashes)\n", (unsigned long long)m, tr * 1e6,
	    (unsigned long long)m, (unsigned long long)n, tp * 1e6, np);
	return 0;
}

static int
bench_big(struct bench *b, const char *dir, uint64_t n, unsigned p,
    int verify)
{
	struct audit_verify	v;
	double			secs;
	int			rc = -1;

	if (bench_open(b, dir) < 0)
		return -1;
	secs = bench_fill(b, n);
	if (b->failed > 0)
		goto done;
	printf("audit log of %llu entries built in %.1f s (%.0f/s)\n",
	    (unsigned long long)n, secs, (double)n / secs);
	if (bench_proofs(b, n, p) < 0 || bench_consistency(b, n) < 0)
		goto done;
	if (verify) {
		secs = now_s();
		if (audit_verify_all(&v, b->log, NULL) != 0)
			goto done;
		printf("audit verify_all at %llu entries: %.2f s\n",
		    (unsigned long long)v.size, now_s() - secs);
	}
	rc = 0;
done:
	if (rc < 0)
		fprintf(stderr, "audit_bench: %s\n", err_msg());
	audit_close(&b->log);
	return rc;
}

static void
usage(void)
{
	fprintf(stderr, "usage: audit_bench [-V] [-n appends] [-N entries] "
	    "[-p proofs] [-w in-flight]\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	struct bench	 b;
	long long	 v;
	uint64_t	 n = 100000, big = 1000000;
	unsigned	 proofs = 1000;
	char		 tmpl[512], *d1, *d2;
	const char	*tmp;
	int		 ch, verify = 0, rc = 1;

	memset(&b, 0, sizeof(b));
	b.window = 8192;
	while ((ch = getopt(argc, argv, "n:N:p:w:V")) != -1) {
		if (ch == 'V') {
			verify = 1;
			continue;
		}
		if (ch == '?' || parse_ll(&v, optarg, 0, 1LL << 40) < 0)
			usage();
		if (ch == 'n')
			n = (uint64_t)v;
		else if (ch == 'N')
			big = (uint64_t)v;
		else if (ch == 'p' && v > 0 && v < 1000000)
			proofs = (unsigned)v;
		else if (ch == 'w' && v > 0 && v <= AUDIT_QUEUE_MAX)
			b.window = (unsigned)v;
		else
			usage();
	}
	log_init("audit_bench", LOG_LVL_WARN, LOG_TO_STDERR);
	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = "/tmp";
	snprintf(tmpl, sizeof(tmpl), "%s/amanat-audit-bench.XXXXXX", tmp);
	if (mkdtemp(tmpl) == NULL || (b.base = event_base_new()) == NULL) {
		perror("audit_bench: setup");
		return 1;
	}
	d1 = path_join(tmpl, "appends");
	d2 = path_join(tmpl, "big");
	if ((n == 0 || bench_appends(&b, d1, n) == 0) &&
	    (big == 0 || bench_big(&b, d2, big, proofs, verify) == 0))
		rc = 0;
	rm_dir(d1);
	rm_dir(d2);
	(void)rmdir(tmpl);
	free(d1);
	free(d2);
	event_base_free(b.base);
	return rc;
}
