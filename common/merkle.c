/*
 * merkle.c -- RFC 6962 Merkle tree math (see merkle.h for the contract).
 *
 * Purpose: leaf and node hashing, the tree head of any size from stored
 * perfect-subtree hashes, inclusion and consistency proofs (RFC 6962
 * section 2.1) and their verification (RFC 9162 sections 2.1.3.2 and
 * 2.1.4.2).
 * Runs in: every daemon that writes an audit log, and the CLI verifier;
 * any thread (no shared state but the fetched SHA-256 method).
 * Failure policy: an OpenSSL failure is ERR_GENERIC; a proof that does
 * not verify is ERR_PROTO; out-of-range arguments are ERR_INVAL.
 * SECURITY: verification follows RFC 9162 to the letter: it consumes
 * the whole proof and checks that the walk ends at the root (sn == 0),
 * so a proof for another index or size, or with extra hashes, fails.
 * Hashes are public, so comparing them with memcmp is fine.
 *
 * Design: the tree is never materialised.  Every subtree a proof needs
 * is either perfect (one stored node) or the right edge of the tree,
 * whose hash is folded from O(log n) perfect subtrees; recursion follows
 * the RFC's definitions and is at most 64 deep.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/err.h"
#include "common/log.h"
#include "common/merkle.h"

static EVP_MD		*merkle_md;
static pthread_once_t	 merkle_md_once = PTHREAD_ONCE_INIT;

/* Fetch SHA-256 once: an implicit fetch per hash costs a lock each time. */
static void
merkle_md_init(void)
{
	merkle_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *
merkle_sha256(void)
{
	pthread_once(&merkle_md_once, merkle_md_init);
	return merkle_md;
}

/* SHA-256(prefix || a || b); b may be NULL. */
static int
merkle_hash3(uint8_t *out, uint8_t prefix, const void *a, size_t alen,
    const void *b, size_t blen)
{
	const EVP_MD	*md;
	EVP_MD_CTX	*ctx = NULL;
	unsigned int	 olen = 0;
	int		 rc = ERR_GENERIC;

	if ((md = merkle_sha256()) == NULL ||
	    (ctx = EVP_MD_CTX_new()) == NULL)
		goto done;
	if (EVP_DigestInit_ex(ctx, md, NULL) != 1 ||
	    EVP_DigestUpdate(ctx, &prefix, 1) != 1 ||
	    (alen > 0 && EVP_DigestUpdate(ctx, a, alen) != 1) ||
	    (b != NULL && EVP_DigestUpdate(ctx, b, blen) != 1) ||
	    EVP_DigestFinal_ex(ctx, out, &olen) != 1 ||
	    olen != MERKLE_HASH_LEN)
		goto done;
	rc = 0;
done:
	EVP_MD_CTX_free(ctx);
	if (rc < 0)
		err_set(rc, "merkle: SHA-256 failed");
	return rc;
}

int
merkle_leaf_hash(uint8_t *out, const void *data, size_t len)
{
	return merkle_hash3(out, 0x00, data, len, NULL, 0);
}

int
merkle_node_hash(uint8_t *out, const uint8_t *left, const uint8_t *right)
{
	return merkle_hash3(out, 0x01, left, MERKLE_HASH_LEN, right,
	    MERKLE_HASH_LEN);
}

int
merkle_empty_root(uint8_t *out)
{
	const EVP_MD	*md;
	unsigned int	 olen = 0;

	if ((md = merkle_sha256()) == NULL ||
	    EVP_Digest("", 0, out, &olen, md, NULL) != 1 ||
	    olen != MERKLE_HASH_LEN) {
		err_set(ERR_GENERIC, "merkle: SHA-256 failed");
		return ERR_GENERIC;
	}
	return 0;
}

uint64_t
merkle_node_count(uint64_t n)
{
	return 2 * n - (uint64_t)__builtin_popcountll(n);
}

/*
 * Node (level, index) is completed by the append of leaf n - 1 with
 * n = (index + 1) << level, after the 2(n-1) - popcount(n-1) nodes of
 * the tree of size n - 1 and the nodes of levels 0 .. level - 1 that the
 * same append completed.
 */
uint64_t
merkle_node_seq(unsigned level, uint64_t index)
{
	uint64_t	n = (index + 1) << level;

	return merkle_node_count(n - 1) + level;
}

/* Largest power of two strictly below n (n >= 2). */
static uint64_t
merkle_split(uint64_t n)
{
	uint64_t	k = UINT64_C(1) << (63 - __builtin_clzll(n - 1));

	return k;
}

void
merkle_frontier_init(struct merkle_frontier *f)
{
	memset(f, 0, sizeof(*f));
}

int
merkle_frontier_append(struct merkle_frontier *f, const uint8_t *leaf,
    merkle_put_fn put, void *arg)
{
	uint8_t		h[MERKLE_HASH_LEN];
	uint64_t	n = f->size;
	unsigned	l = 0;
	int		rc;

	if (n >= MERKLE_SIZE_MAX - 1) {
		err_set(ERR_TOOBIG, "merkle: tree full");
		return ERR_TOOBIG;
	}
	memcpy(h, leaf, sizeof(h));
	if (put != NULL && (rc = put(arg, 0, n, h)) < 0)
		return rc;
	/* binary addition: each carry completes a subtree one level up */
	while ((n >> l) & 1) {
		if ((rc = merkle_node_hash(h, f->h[l], h)) < 0)
			return rc;
		l++;
		if (put != NULL &&
		    (rc = put(arg, l, ((n + 1) >> l) - 1, h)) < 0)
			return rc;
	}
	memcpy(f->h[l], h, sizeof(h));
	f->size = n + 1;
	return 0;
}

int
merkle_frontier_root(uint8_t *out, const struct merkle_frontier *f)
{
	uint8_t		r[MERKLE_HASH_LEN];
	unsigned	l;
	int		have = 0, rc;

	if (f->size == 0)
		return merkle_empty_root(out);
	/* fold the perfect subtrees from the smallest (rightmost) up */
	for (l = 0; l < MERKLE_LEVELS; l++) {
		if (((f->size >> l) & 1) == 0)
			continue;
		if (!have) {
			memcpy(r, f->h[l], sizeof(r));
			have = 1;
		} else if ((rc = merkle_node_hash(r, f->h[l], r)) < 0)
			return rc;
	}
	memcpy(out, r, sizeof(r));
	return 0;
}

int
merkle_frontier_load(struct merkle_frontier *f, uint64_t n,
    merkle_get_fn get, void *arg)
{
	uint64_t	start = 0;
	int		l, rc;

	merkle_frontier_init(f);
	if (n >= MERKLE_SIZE_MAX) {
		err_set(ERR_INVAL, "merkle: size %llu out of range",
		    (unsigned long long)n);
		return ERR_INVAL;
	}
	/* the leftmost (largest) perfect subtree first */
	for (l = MERKLE_LEVELS - 1; l >= 0; l--) {
		if (((n >> l) & 1) == 0)
			continue;
		if ((rc = get(arg, (unsigned)l, start >> l, f->h[l])) < 0)
			return rc;
		start += UINT64_C(1) << l;
	}
	f->size = n;
	return 0;
}

/* MTH(D[start:end]) for end > start, as the RFC recursion visits it. */
static int
merkle_range(uint8_t *out, uint64_t start, uint64_t end, merkle_get_fn get,
    void *arg)
{
	uint8_t		l[MERKLE_HASH_LEN], r[MERKLE_HASH_LEN];
	uint64_t	n = end - start, k;
	int		rc;

	if ((n & (n - 1)) == 0 && (start & (n - 1)) == 0)
		return get(arg, (unsigned)__builtin_ctzll(n), start /
		    n, out);
	k = merkle_split(n);
	if ((rc = merkle_range(l, start, start + k, get, arg)) < 0 ||
	    (rc = merkle_range(r, start + k, end, get, arg)) < 0)
		return rc;
	return merkle_node_hash(out, l, r);
}

int
merkle_root(uint8_t *out, uint64_t size, merkle_get_fn get, void *arg)
{
	if (size == 0)
		return merkle_empty_root(out);
	if (size >= MERKLE_SIZE_MAX) {
		err_set(ERR_INVAL, "merkle: size out of range");
		return ERR_INVAL;
	}
	return merkle_range(out, 0, size, get, arg);
}

struct merkle_proof {
	uint8_t		(*h)[MERKLE_HASH_LEN];
	size_t		  n;
	merkle_get_fn	  get;
	void		 *arg;
};

/* Append MTH(D[start:end]) to the proof. */
static int
merkle_proof_add(struct merkle_proof *p, uint64_t start, uint64_t end)
{
	if (p->n >= MERKLE_PROOF_MAX) {
		err_set(ERR_GENERIC, "merkle: proof too long (bug)");
		return ERR_GENERIC;
	}
	return merkle_range(p->h[p->n++], start, end, p->get, p->arg);
}

/* PATH(m, D[start:end]) */
static int
merkle_path(struct merkle_proof *p, uint64_t m, uint64_t start,
    uint64_t end)
{
	uint64_t	k;
	int		rc;

	if (end - start <= 1)
		return 0;
	k = merkle_split(end - start);
	if (m < start + k) {
		if ((rc = merkle_path(p, m, start, start + k)) < 0)
			return rc;
		return merkle_proof_add(p, start + k, end);
	}
	if ((rc = merkle_path(p, m, start + k, end)) < 0)
		return rc;
	return merkle_proof_add(p, start, start + k);
}

int
merkle_inclusion_proof(uint8_t (*proof)[MERKLE_HASH_LEN], size_t *n_out,
    uint64_t index, uint64_t size, merkle_get_fn get, void *arg)
{
	struct merkle_proof	p = { proof, 0, get, arg };
	int			rc;

	*n_out = 0;
	if (size >= MERKLE_SIZE_MAX || index >= size) {
		err_set(ERR_INVAL, "merkle: index %llu not in a tree of %llu",
		    (unsigned long long)index, (unsigned long long)size);
		return ERR_INVAL;
	}
	if ((rc = merkle_path(&p, index, 0, size)) < 0)
		return rc;
	*n_out = p.n;
	return 0;
}

/* SUBPROOF(m, D[start:end], complete); m is absolute, start < m <= end. */
static int
merkle_subproof(struct merkle_proof *p, uint64_t m, uint64_t start,
    uint64_t end, int complete)
{
	uint64_t	k;
	int		rc;

	if (m == end)
		return complete ? 0 : merkle_proof_add(p, start, end);
	k = merkle_split(end - start);
	if (m - start <= k) {
		if ((rc = merkle_subproof(p, m, start, start + k,
		    complete)) < 0)
			return rc;
		return merkle_proof_add(p, start + k, end);
	}
	if ((rc = merkle_subproof(p, m, start + k, end, 0)) < 0)
		return rc;
	return merkle_proof_add(p, start, start + k);
}

int
merkle_consistency_proof(uint8_t (*proof)[MERKLE_HASH_LEN], size_t *n_out,
    uint64_t size1, uint64_t size2, merkle_get_fn get, void *arg)
{
	struct merkle_proof	p = { proof, 0, get, arg };
	int			rc;

	*n_out = 0;
	if (size2 >= MERKLE_SIZE_MAX || size1 > size2) {
		err_set(ERR_INVAL, "merkle: no consistency from %llu to %llu",
		    (unsigned long long)size1, (unsigned long long)size2);
		return ERR_INVAL;
	}
	if (size1 == 0 || size1 == size2)
		return 0;
	if ((rc = merkle_subproof(&p, size1, 0, size2, 1)) < 0)
		return rc;
	*n_out = p.n;
	return 0;
}

static int
merkle_bad(const char *what)
{
	err_set(ERR_PROTO, "merkle: %s", what);
	return ERR_PROTO;
}

int
merkle_verify_inclusion(const uint8_t *leaf, uint64_t index, uint64_t size,
    const uint8_t (*proof)[MERKLE_HASH_LEN], size_t n, const uint8_t *root)
{
	uint8_t		r[MERKLE_HASH_LEN];
	uint64_t	fn, sn;
	size_t		i;
	int		rc;

	if (index >= size)
		return merkle_bad("inclusion: index beyond the tree size");
	fn = index;
	sn = size - 1;
	memcpy(r, leaf, sizeof(r));
	for (i = 0; i < n; i++) {
		if (sn == 0)
			return merkle_bad("inclusion: proof too long");
		if ((fn & 1) || fn == sn) {
			if ((rc = merkle_node_hash(r, proof[i], r)) < 0)
				return rc;
			while ((fn & 1) == 0 && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else if ((rc = merkle_node_hash(r, r, proof[i])) < 0)
			return rc;
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0)
		return merkle_bad("inclusion: proof too short");
	if (memcmp(r, root, sizeof(r)) != 0)
		return merkle_bad("inclusion: root mismatch");
	return 0;
}

/* RFC 9162 2.1.4.2 steps 2 to 7, for 0 < size1 < size2. */
static int
merkle_consistency_walk(uint64_t size1, uint64_t size2, const uint8_t *root1,
    const uint8_t *root2, const uint8_t (*proof)[MERKLE_HASH_LEN], size_t n)
{
	uint8_t		fr[MERKLE_HASH_LEN], sr[MERKLE_HASH_LEN];
	uint64_t	fn = size1 - 1, sn = size2 - 1;
	size_t		i = 0;
	int		rc;

	/* a power-of-two first tree is itself the first path element */
	if ((size1 & (size1 - 1)) == 0)
		memcpy(fr, root1, sizeof(fr));
	else
		memcpy(fr, proof[i++], sizeof(fr));
	memcpy(sr, fr, sizeof(sr));
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	for (; i < n; i++) {
		if (sn == 0)
			return merkle_bad("consistency: proof too long");
		if ((fn & 1) || fn == sn) {
			if ((rc = merkle_node_hash(fr, proof[i], fr)) < 0 ||
			    (rc = merkle_node_hash(sr, proof[i], sr)) < 0)
				return rc;
			while ((fn & 1) == 0 && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else if ((rc = merkle_node_hash(sr, sr, proof[i])) < 0)
			return rc;
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0)
		return merkle_bad("consistency: proof too short");
	if (memcmp(fr, root1, sizeof(fr)) != 0)
		return merkle_bad("consistency: first root mismatch");
	if (memcmp(sr, root2, sizeof(sr)) != 0)
		return merkle_bad("consistency: second root mismatch");
	return 0;
}

int
merkle_verify_consistency(uint64_t size1, uint64_t size2,
    const uint8_t *root1, const uint8_t *root2,
    const uint8_t (*proof)[MERKLE_HASH_LEN], size_t n)
{
	uint8_t	empty[MERKLE_HASH_LEN];
	int	rc;

	if (size1 > size2)
		return merkle_bad("consistency: first tree is larger");
	if (size1 == size2) {
		if (n != 0)
			return merkle_bad("consistency: same size, non-empty "
			    "proof");
		if (memcmp(root1, root2, MERKLE_HASH_LEN) != 0)
			return merkle_bad("consistency: same size, roots "
			    "differ");
		return 0;
	}
	if (size1 == 0) {
		if ((rc = merkle_empty_root(empty)) < 0)
			return rc;
		if (n != 0 || memcmp(root1, empty, sizeof(empty)) != 0)
			return merkle_bad("consistency: bad empty tree");
		return 0;
	}
	if (n == 0)
		return merkle_bad("consistency: empty proof");
	return merkle_consistency_walk(size1, size2, root1, root2, proof, n);
}

void
merkle_hex(char *out, const uint8_t *h)
{
	static const char	digits[] = "0123456789abcdef";
	size_t			i;

	for (i = 0; i < MERKLE_HASH_LEN; i++) {
		out[2 * i] = digits[h[i] >> 4];
		out[2 * i + 1] = digits[h[i] & 0x0f];
	}
	out[MERKLE_HEX_LEN] = '\0';
}

static int
merkle_nibble(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
merkle_unhex(uint8_t *out, const char *hex)
{
	size_t	i;
	int	hi, lo;

	if (hex == NULL || strlen(hex) != MERKLE_HEX_LEN)
		goto bad;
	for (i = 0; i < MERKLE_HASH_LEN; i++) {
		hi = merkle_nibble((unsigned char)hex[2 * i]);
		lo = merkle_nibble((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			goto bad;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
bad:
	err_set(ERR_INVAL, "not a %d-digit hex hash", MERKLE_HEX_LEN);
	return ERR_INVAL;
}
