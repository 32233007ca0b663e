/*
 * merkle.h -- RFC 6962 Merkle tree hashing, proofs and their verification.
 *
 * Pure functions, no storage: the audit log (audit.h) keeps the hashes,
 * the offline verifier (the CLI) needs only these.
 *
 * Hashes (RFC 6962 section 2.1, SHA-256):
 *   leaf hash   SHA-256(0x00 || entry bytes)
 *   node hash   SHA-256(0x01 || left || right)
 *   MTH({})     SHA-256("")  (the empty tree)
 *   MTH(D[n])   for n > 1, with k the largest power of two < n:
 *               node(MTH(D[0:k]), MTH(D[k:n]))
 *
 * A tree of n leaves is held as its perfect subtrees: the node (level,
 * index) is the root of the perfect subtree over leaves [index << level,
 * (index + 1) << level); level 0 are the leaf hashes.  Proof generation
 * reads those nodes through a caller's merkle_get_fn and needs O(log n)
 * of them.  merkle_node_seq() numbers the nodes in the order appends
 * complete them (post-order), so a store keyed by it only ever appends.
 *
 * A frontier (compact range) is the list of the perfect subtree roots of
 * a tree of size n, one per set bit of n: enough to append a leaf and to
 * compute the current root without reading anything.
 *
 * Return values: 0, or ERR_PROTO when a proof does not verify, ERR_INVAL
 * for sizes or indexes out of range, ERR_GENERIC when OpenSSL fails; each
 * with err_set() context.
 */
#ifndef COMMON_MERKLE_H
#define COMMON_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#define MERKLE_HASH_LEN		32
#define MERKLE_HEX_LEN		(2 * MERKLE_HASH_LEN)
/* Longest proof of either kind for any size below MERKLE_SIZE_MAX. */
#define MERKLE_PROOF_MAX	66
/* Tree sizes are below 2^62, so level/index arithmetic cannot wrap. */
#define MERKLE_SIZE_MAX		(UINT64_C(1) << 62)
#define MERKLE_LEVELS		64

struct merkle_frontier {
	uint64_t	size;
	/* h[l] is valid when bit l of size is set */
	uint8_t		h[MERKLE_LEVELS][MERKLE_HASH_LEN];
};

/* Hash of the perfect subtree (level, index) into out. */
typedef int	(*merkle_get_fn)(void *, unsigned, uint64_t, uint8_t *);
/* A subtree (level, index) was completed with this hash. */
typedef int	(*merkle_put_fn)(void *, unsigned, uint64_t, const uint8_t *);

int	merkle_leaf_hash(uint8_t *, const void *, size_t);
int	merkle_node_hash(uint8_t *, const uint8_t *, const uint8_t *);
int	merkle_empty_root(uint8_t *);

/*
 * The storage position of node (level, index) in append order: every
 * node completed by the append of leaf i has a higher number than every
 * node completed before it.  The tree of size n has 2n - popcount(n)
 * nodes, numbered 0 .. 2n - popcount(n) - 1.
 */
uint64_t	merkle_node_seq(unsigned, uint64_t);
uint64_t	merkle_node_count(uint64_t);

void	merkle_frontier_init(struct merkle_frontier *);
/*
 * Append a leaf hash; put (may be NULL) is called for the leaf (level 0)
 * and every subtree the append completes, in merkle_node_seq() order.
 */
int	merkle_frontier_append(struct merkle_frontier *, const uint8_t *,
	    merkle_put_fn, void *);
int	merkle_frontier_root(uint8_t *, const struct merkle_frontier *);
/* Load the frontier of a tree of size n from its stored nodes. */
int	merkle_frontier_load(struct merkle_frontier *, uint64_t,
	    merkle_get_fn, void *);

/* MTH(D[0:size]) from the stored nodes: O(log size) reads. */
int	merkle_root(uint8_t *, uint64_t, merkle_get_fn, void *);
/*
 * RFC 6962 section 2.1.1 PATH(index, D[0:size]) into proof (room for
 * MERKLE_PROOF_MAX hashes), leaf to root; *n_out hashes.
 */
int	merkle_inclusion_proof(uint8_t (*)[MERKLE_HASH_LEN], size_t *,
	    uint64_t, uint64_t, merkle_get_fn, void *);
/*
 * RFC 6962 section 2.1.2 PROOF(size1, D[0:size2]), 0 <= size1 <= size2;
 * empty when size1 is 0 or size2.
 */
int	merkle_consistency_proof(uint8_t (*)[MERKLE_HASH_LEN], size_t *,
	    uint64_t, uint64_t, merkle_get_fn, void *);

/*
 * RFC 9162 section 2.1.3.2: leaf hash at index in a tree of size with
 * this root.  0 when the proof holds, else ERR_PROTO.
 */
int	merkle_verify_inclusion(const uint8_t *, uint64_t, uint64_t,
	    const uint8_t (*)[MERKLE_HASH_LEN], size_t, const uint8_t *);
/*
 * RFC 9162 section 2.1.4.2: the tree (size1, root1) is a prefix of
 * (size2, root2).  size1 == size2 needs an empty proof and equal roots;
 * size1 == 0 an empty proof and root1 == MTH({}).
 */
int	merkle_verify_consistency(uint64_t, uint64_t, const uint8_t *,
	    const uint8_t *, const uint8_t (*)[MERKLE_HASH_LEN], size_t);

/* Lower-case hex of a hash (out: MERKLE_HEX_LEN + 1 bytes). */
void	merkle_hex(char *, const uint8_t *);
/* Parse exactly MERKLE_HEX_LEN hex digits (either case): ERR_INVAL. */
int	merkle_unhex(uint8_t *, const char *);

#endif
