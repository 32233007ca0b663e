/*
 * test_common_merkle.c -- unit tests for the RFC 6962 Merkle math.
 *
 * Purpose: known answers (the empty tree, RFC 6962's 8-leaf reference
 * tree), then every tree of 0..64 leaves against a naive recursive MTH
 * written here with EVP SHA-256, every inclusion proof (index, size) and
 * every consistency proof (size1, size2) up to 64 leaves against naive
 * PATH/PROOF and through the verifiers, which must also refuse every
 * proof with one changed hash, a wrong index or size, or a hash too many
 * or too few.  The node numbering (merkle_node_seq) must be the append
 * order.
 * Runs in: the unit test binary only.
 * Failure policy: cmocka assertions.
 * SECURITY: the verifiers are what the offline audit check trusts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "common/err.h"
#include "common/merkle.h"

#define MAXN		64
#define HL		MERKLE_HASH_LEN

typedef uint8_t	hash_t[HL];

/* Every node of a tree of up to MAXN leaves, stored by merkle_node_seq. */
struct memtree {
	hash_t		nodes[2 * MAXN];
	uint64_t	count;
	int		bad_order;
};

static void
sha(uint8_t *out, const void *a, size_t alen, const void *b, size_t blen)
{
	EVP_MD_CTX	*ctx = EVP_MD_CTX_new();
	unsigned int	 n = 0;

	assert_non_null(ctx);
	assert_int_equal(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, a, alen), 1);
	if (blen > 0)
		assert_int_equal(EVP_DigestUpdate(ctx, b, blen), 1);
	assert_int_equal(EVP_DigestFinal_ex(ctx, out, &n), 1);
	assert_int_equal(n, HL);
	EVP_MD_CTX_free(ctx);
}

static void
naive_leaf(uint8_t *out, const void *data, size_t len)
{
	uint8_t	buf[256];

	assert_true(len < sizeof(buf));
	buf[0] = 0x00;
	memcpy(buf + 1, data, len);
	sha(out, buf, len + 1, NULL, 0);
}

static void
naive_node(uint8_t *out, const uint8_t *l, const uint8_t *r)
{
	uint8_t	buf[1 + 2 * HL];

	buf[0] = 0x01;
	memcpy(buf + 1, l, HL);
	memcpy(buf + 1 + HL, r, HL);
	sha(out, buf, sizeof(buf), NULL, 0);
}

static uint64_t
split(uint64_t n)
{
	uint64_t	k = 1;

	while (k * 2 < n)
		k *= 2;
	return k;
}

/* MTH(D[0:n]) over leaf hashes, straight from RFC 6962 section 2.1. */
static void
naive_mth(uint8_t *out, const hash_t *leaf, uint64_t n)
{
	hash_t		l, r;
	uint64_t	k;

	if (n == 0) {
		sha(out, "", 0, NULL, 0);
		return;
	}
	if (n == 1) {
		memcpy(out, leaf[0], HL);
		return;
	}
	k = split(n);
	naive_mth(l, leaf, k);
	naive_mth(r, leaf + k, n - k);
	naive_node(out, l, r);
}

static void
naive_path(hash_t *out, size_t *cnt, uint64_t m, const hash_t *leaf,
    uint64_t n)
{
	uint64_t	k;

	if (n <= 1)
		return;
	k = split(n);
	if (m < k) {
		naive_path(out, cnt, m, leaf, k);
		naive_mth(out[(*cnt)++], leaf + k, n - k);
	} else {
		naive_path(out, cnt, m - k, leaf + k, n - k);
		naive_mth(out[(*cnt)++], leaf, k);
	}
}

static void
naive_subproof(hash_t *out, size_t *cnt, uint64_t m, const hash_t *leaf,
    uint64_t n, int b)
{
	uint64_t	k;

	if (m == n) {
		if (!b)
			naive_mth(out[(*cnt)++], leaf, n);
		return;
	}
	k = split(n);
	if (m <= k) {
		naive_subproof(out, cnt, m, leaf, k, b);
		naive_mth(out[(*cnt)++], leaf + k, n - k);
	} else {
		naive_subproof(out, cnt, m - k, leaf + k, n - k, 0);
		naive_mth(out[(*cnt)++], leaf, k);
	}
}

static int
mem_put(void *arg, unsigned level, uint64_t index, const uint8_t *h)
{
	struct memtree	*t = arg;
	uint64_t	 seq = merkle_node_seq(level, index);

	if (seq != t->count)
		t->bad_order = 1;
	assert_true(seq < 2 * MAXN);
	memcpy(t->nodes[seq], h, HL);
	t->count++;
	return 0;
}

static int
mem_get(void *arg, unsigned level, uint64_t index, uint8_t *out)
{
	struct memtree	*t = arg;
	uint64_t	 seq = merkle_node_seq(level, index);

	if (seq >= t->count)
		return ERR_NOTFOUND;
	memcpy(out, t->nodes[seq], HL);
	return 0;
}

/* Leaves "leaf <i>" appended to a frontier that stores every node. */
static void
build(struct memtree *t, struct merkle_frontier *f, hash_t *leaf)
{
	char	buf[32];
	int	i, n;

	memset(t, 0, sizeof(*t));
	merkle_frontier_init(f);
	for (i = 0; i < MAXN; i++) {
		n = snprintf(buf, sizeof(buf), "leaf %d", i);
		naive_leaf(leaf[i], buf, (size_t)n);
		assert_int_equal(merkle_frontier_append(f, leaf[i], mem_put,
		    t), 0);
	}
	assert_false(t->bad_order);
	assert_int_equal(t->count, merkle_node_count(MAXN));
}

static void
hex_is(const uint8_t *h, const char *want)
{
	char	hex[MERKLE_HEX_LEN + 1];

	merkle_hex(hex, h);
	assert_string_equal(hex, want);
}

static void
test_common_merkle__known_answers(void **state)
{
	static const char *const in[8] = { "", "00", "10", "2021", "3031",
	    "40414243", "5051525354555657",
	    "606162636465666768696a6b6c6d6e6f" };
	static const char *const roots[8] = {
	    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328" };
	struct merkle_frontier	f;
	struct memtree		t;
	uint8_t			data[16], h[HL], r[HL];
	size_t			i, j, len;
	unsigned		b;

	(void)state;
	assert_int_equal(merkle_empty_root(h), 0);
	hex_is(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"
	    "7852b855");
	memset(&t, 0, sizeof(t));
	merkle_frontier_init(&f);
	assert_int_equal(merkle_frontier_root(r, &f), 0);
	assert_memory_equal(r, h, HL);
	for (i = 0; i < 8; i++) {
		len = strlen(in[i]) / 2;
		for (j = 0; j < len; j++) {
			assert_int_equal(sscanf(in[i] + 2 * j, "%2x", &b), 1);
			data[j] = (uint8_t)b;
		}
		assert_int_equal(merkle_leaf_hash(h, data, len), 0);
		assert_int_equal(merkle_frontier_append(&f, h, mem_put, &t), 0);
		assert_int_equal(merkle_frontier_root(r, &f), 0);
		hex_is(r, roots[i]);
		assert_int_equal(merkle_root(r, i + 1, mem_get, &t), 0);
		hex_is(r, roots[i]);
	}
}

static void
test_common_merkle__roots_match_naive(void **state)
{
	struct merkle_frontier	f, g, loaded;
	struct memtree		t;
	hash_t			leaf[MAXN];
	uint8_t			want[HL], got[HL];
	uint64_t		n, i;

	(void)state;
	build(&t, &f, leaf);
	merkle_frontier_init(&g);
	for (n = 0; n <= MAXN; n++) {
		naive_mth(want, leaf, n);
		assert_int_equal(merkle_root(got, n, mem_get, &t), 0);
		assert_memory_equal(got, want, HL);
		assert_int_equal(merkle_frontier_root(got, &g), 0);
		assert_memory_equal(got, want, HL);
		assert_int_equal(merkle_frontier_load(&loaded, n, mem_get, &t),
		    0);
		assert_int_equal(merkle_frontier_root(got, &loaded), 0);
		assert_memory_equal(got, want, HL);
		assert_int_equal(merkle_node_count(n), 2 * n -
		    (uint64_t)__builtin_popcountll(n));
		if (n < MAXN)
			assert_int_equal(merkle_frontier_append(&g, leaf[n],
			    NULL, NULL), 0);
	}
	/* node numbering: leaf i's own node comes after the tree of size i */
	for (i = 0; i < MAXN; i++)
		assert_int_equal(merkle_node_seq(0, i), merkle_node_count(i));
	assert_int_equal(merkle_root(got, MAXN + 1, mem_get, &t),
	    ERR_NOTFOUND);
}

/* One proof that must hold, then each way of breaking it. */
static void
check_inclusion(const hash_t *leaf, uint64_t m, uint64_t n,
    hash_t *proof, size_t cnt, const uint8_t *root)
{
	size_t	i;

	assert_int_equal(merkle_verify_inclusion(leaf[m], m, n,
	    (const hash_t *)proof, cnt, root), 0);
	for (i = 0; i < cnt; i++) {
		proof[i][i % HL] ^= 0x01;
		assert_int_equal(merkle_verify_inclusion(leaf[m], m, n,
		    (const hash_t *)proof, cnt, root), ERR_PROTO);
		proof[i][i % HL] ^= 0x01;
	}
	if (cnt > 0)
		assert_int_equal(merkle_verify_inclusion(leaf[m], m, n,
		    (const hash_t *)proof, cnt - 1, root), ERR_PROTO);
	memcpy(proof[cnt], root, HL);
	assert_int_equal(merkle_verify_inclusion(leaf[m], m, n,
	    (const hash_t *)proof, cnt + 1, root), ERR_PROTO);
	assert_int_equal(merkle_verify_inclusion(leaf[m], m, m,
	    (const hash_t *)proof, cnt, root), ERR_PROTO);
	if (n > 1)
		assert_int_equal(merkle_verify_inclusion(leaf[(m + 1) % n],
		    (m + 1) % n, n, (const hash_t *)proof, cnt, root),
		    ERR_PROTO);
}

static void
test_common_merkle__inclusion_all(void **state)
{
	struct merkle_frontier	f;
	struct memtree		t;
	hash_t			leaf[MAXN], want[MERKLE_PROOF_MAX];
	hash_t			got[MERKLE_PROOF_MAX + 1];
	uint8_t			root[HL];
	uint64_t		n, m;
	size_t			nw, ng;

	(void)state;
	build(&t, &f, leaf);
	for (n = 1; n <= MAXN; n++) {
		naive_mth(root, leaf, n);
		for (m = 0; m < n; m++) {
			nw = 0;
			naive_path(want, &nw, m, leaf, n);
			assert_int_equal(merkle_inclusion_proof(got, &ng, m, n,
			    mem_get, &t), 0);
			assert_int_equal(ng, nw);
			assert_memory_equal(got, want, nw * HL);
			check_inclusion(leaf, m, n, got, ng, root);
		}
		assert_int_equal(merkle_inclusion_proof(got, &ng, n, n,
		    mem_get, &t), ERR_INVAL);
	}
}

static void
check_consistency(uint64_t a, uint64_t b, const uint8_t *r1,
    const uint8_t *r2, hash_t *proof, size_t cnt)
{
	size_t	i;

	assert_int_equal(merkle_verify_consistency(a, b, r1, r2,
	    (const hash_t *)proof, cnt), 0);
	for (i = 0; i < cnt; i++) {
		proof[i][(i + 7) % HL] ^= 0x80;
		assert_int_equal(merkle_verify_consistency(a, b, r1, r2,
		    (const hash_t *)proof, cnt), ERR_PROTO);
		proof[i][(i + 7) % HL] ^= 0x80;
	}
	if (cnt > 0) {
		assert_int_equal(merkle_verify_consistency(a, b, r1, r2,
		    (const hash_t *)proof, cnt - 1), ERR_PROTO);
		/*
		 * The roots swapped.  (The same hashes may well prove
		 * (a, b + 1) for a different root2: a proof binds the
		 * sizes only together with signed tree heads.)
		 */
		assert_int_equal(merkle_verify_consistency(a, b, r2, r1,
		    (const hash_t *)proof, cnt), ERR_PROTO);
	}
	memcpy(proof[cnt], r1, HL);
	assert_int_equal(merkle_verify_consistency(a, b, r1, r2,
	    (const hash_t *)proof, cnt + 1), ERR_PROTO);
}

static void
test_common_merkle__consistency_all(void **state)
{
	struct merkle_frontier	f;
	struct memtree		t;
	hash_t			leaf[MAXN], want[MERKLE_PROOF_MAX];
	hash_t			got[MERKLE_PROOF_MAX + 1];
	uint8_t			r1[HL], r2[HL];
	uint64_t		a, b;
	size_t			nw, ng;

	(void)state;
	build(&t, &f, leaf);
	for (b = 0; b <= MAXN; b++) {
		naive_mth(r2, leaf, b);
		for (a = 0; a <= b; a++) {
			naive_mth(r1, leaf, a);
			nw = 0;
			if (a > 0 && a < b)
				naive_subproof(want, &nw, a, leaf, b, 1);
			assert_int_equal(merkle_consistency_proof(got, &ng, a,
			    b, mem_get, &t), 0);
			assert_int_equal(ng, nw);
			assert_memory_equal(got, want, nw * HL);
			check_consistency(a, b, r1, r2, got, ng);
		}
		assert_int_equal(merkle_consistency_proof(got, &ng, b + 1, b,
		    mem_get, &t), ERR_INVAL);
	}
	/* a bigger first tree never verifies */
	naive_mth(r1, leaf, 5);
	naive_mth(r2, leaf, 4);
	assert_int_equal(merkle_verify_consistency(5, 4, r1, r2,
	    (const hash_t *)got, 0), ERR_PROTO);
	/* the empty tree is a prefix of all, with an empty proof only */
	naive_mth(r1, leaf, 0);
	assert_int_equal(merkle_verify_consistency(0, 4, r1, r2,
	    (const hash_t *)got, 0), 0);
	assert_int_equal(merkle_verify_consistency(0, 4, r2, r2,
	    (const hash_t *)got, 0), ERR_PROTO);
}

static void
test_common_merkle__hex(void **state)
{
	uint8_t	h[HL], g[HL];
	char	hex[MERKLE_HEX_LEN + 1];
	size_t	i;

	(void)state;
	for (i = 0; i < HL; i++)
		h[i] = (uint8_t)(i * 37 + 5);
	merkle_hex(hex, h);
	assert_int_equal(strlen(hex), MERKLE_HEX_LEN);
	assert_int_equal(merkle_unhex(g, hex), 0);
	assert_memory_equal(g, h, HL);
	hex[3] = 'G';
	assert_int_equal(merkle_unhex(g, hex), ERR_INVAL);
	hex[MERKLE_HEX_LEN - 1] = '\0';
	assert_int_equal(merkle_unhex(g, hex), ERR_INVAL);
	assert_int_equal(merkle_unhex(g, NULL), ERR_INVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_common_merkle__known_answers),
		cmocka_unit_test(test_common_merkle__roots_match_naive),
		cmocka_unit_test(test_common_merkle__inclusion_all),
		cmocka_unit_test(test_common_merkle__consistency_all),
		cmocka_unit_test(test_common_merkle__hex),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
