"""
test_audit_rfc6962.py -- the audit tests' own verifier, independent of the
project's C code: RFC 6962 Merkle tree hashing (SHA-256 from hashlib),
proof generation (RFC 6962 section 2.1.1 PATH, 2.1.2 PROOF), proof
verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2), the canonical entry
encoding (common/audit.h: Python's json.dumps with sorted keys, no
whitespace, ASCII only), checkpoint signatures (Ed25519, checked with the
openssl command line, since Python's stdlib has no Ed25519) and export
bundles (common/auditsvc.h).

The tests in this file check that code against the Certificate
Transparency reference vectors and against itself (every proof of every
small tree verifies, and nothing altered does), so that the end-to-end
tests (test_audit_*.py) can trust it when they check the daemons.
"""
import base64
import hashlib
import json
import os
import re
import subprocess
import tempfile

import pytest

CHECKPOINT_MAGIC = "amanat-audit-checkpoint-v1"
EXPORT_FORMAT = "amanat-audit-export-v1"


# ---------------------------------------------------------------- hashing

def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(data):
    """RFC 6962 section 2.1: SHA-256(0x00 || entry bytes)."""
    return sha256(b"\x00" + data)


def node_hash(left, right):
    """RFC 6962 section 2.1: SHA-256(0x01 || left || right)."""
    return sha256(b"\x01" + left + right)


EMPTY_ROOT = sha256(b"")


def split(n):
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def mth(leaves):
    """MTH(D[n]) over leaf hashes (RFC 6962 section 2.1), recursively."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = split(n)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def root_of(leaves):
    """MTH by a different route than mth(): the compact range (one
    perfect subtree per set bit), as a verifier streaming entries does.
    O(n) time, O(log n) memory."""
    stack = []          # (height, hash), heights strictly decreasing
    for h in leaves:
        node = (0, h)
        while stack and stack[-1][0] == node[0]:
            hl = stack.pop()
            node = (node[0] + 1, node_hash(hl[1], node[1]))
        stack.append(node)
    if not stack:
        return EMPTY_ROOT
    r = stack[-1][1]
    for _, h in reversed(stack[:-1]):
        r = node_hash(h, r)
    return r


def path(m, leaves):
    """RFC 6962 section 2.1.1 PATH(m, D[n]): the inclusion proof."""
    n = len(leaves)
    if n <= 1:
        return []
    k = split(n)
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def subproof(m, leaves, b):
    """RFC 6962 section 2.1.2 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if b else [mth(leaves)]
    k = split(n)
    if m <= k:
        return subproof(m, leaves[:k], b) + [mth(leaves[k:])]
    return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


def proof(m, leaves):
    """RFC 6962 section 2.1.2 PROOF(m, D[n]), 0 < m < n."""
    return subproof(m, leaves, True)


# ---------------------------------------------------------------- verify

def verify_inclusion(leaf, index, size, proof_hashes, root):
    """RFC 9162 section 2.1.3.2, step by step.  True or False."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof_hashes:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_hash, second_hash,
                       proof_hashes):
    """RFC 9162 section 2.1.4.2, step by step, plus the two trivial cases
    the RFC leaves to the caller: equal sizes (an empty proof, equal
    roots) and an empty first tree (an empty proof).  True or False."""
    if first > second:
        return False
    if first == second:
        return not proof_hashes and first_hash == second_hash
    if first == 0:
        return not proof_hashes and first_hash == EMPTY_ROOT
    path_ = list(proof_hashes)
    if not path_:
        return False                                    # step 1
    if first & (first - 1) == 0:                        # step 2
        path_.insert(0, first_hash)
    fn, sn = first - 1, second - 1                      # step 3
    while fn & 1:                                       # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path_[0]                                  # step 5
    for c in path_[1:]:                                 # step 6
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0   # step 7


# ---------------------------------------------------------------- entries

def canonical(entry):
    """The exact bytes an entry is stored, hashed and exported as."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode()


def entry_leaf(entry):
    return leaf_hash(canonical(entry))


def unhex(h):
    assert isinstance(h, str) and re.fullmatch(r"[0-9a-f]{64}", h), h
    return bytes.fromhex(h)


def unhex_list(hs):
    assert isinstance(hs, list), hs
    return [unhex(h) for h in hs]


# ---------------------------------------------------------------- checkpoints

def checkpoint_body(cp):
    """The exact bytes a checkpoint's signature covers (common/audit.h)."""
    return ("%s\n%s\n%d\n%s\n%d\n" % (CHECKPOINT_MAGIC, cp["origin"],
                                      cp["size"], cp["root"],
                                      cp["time"])).encode()


def _openssl(args, input=None):
    return subprocess.run(["openssl"] + args, input=input,
                          capture_output=True, timeout=60)


def cert_subject_cn(pem):
    r = _openssl(["x509", "-noout", "-subject", "-nameopt", "RFC2253"],
                 input=pem.encode())
    assert r.returncode == 0, r.stderr
    m = re.search(r"CN=([^,\n]+)", r.stdout.decode())
    return m.group(1) if m else None


def check_checkpoint(cp, ca, service=None):
    """
    Check a checkpoint JSON (with its "certificate") with openssl only:
    the certificate chains to the CA (as of the checkpoint's time), is
    named sign:<service>, holds an Ed25519 key, and that key's signature
    over checkpoint_body(cp) verifies.  Returns a list of problems
    (empty: good).
    """
    problems = []
    for k in ("origin", "size", "root", "time", "signature",
              "certificate"):
        if k not in cp:
            return ["checkpoint has no %r" % k]
    svc = cp["origin"].rsplit("/", 1)[-1]
    if service is not None and svc != service:
        problems.append("origin %s is not of %s" % (cp["origin"], service))
    pem = cp["certificate"]
    cn = cert_subject_cn(pem)
    if cn != "sign:" + svc:
        problems.append("signed by %r, not sign:%s" % (cn, svc))
    with tempfile.TemporaryDirectory(prefix="amanat-cp-") as d:
        cert = os.path.join(d, "cert.pem")
        pub = os.path.join(d, "pub.pem")
        body = os.path.join(d, "body")
        sig = os.path.join(d, "sig")
        with open(cert, "w") as f:
            f.write(pem)
        with open(body, "wb") as f:
            f.write(checkpoint_body(cp))
        with open(sig, "wb") as f:
            f.write(base64.b64decode(cp["signature"], validate=True))
        r = _openssl(["verify", "-CAfile", ca, "-attime",
                      str(cp["time"] // 1000), cert])
        if r.returncode != 0:
            problems.append("certificate does not chain to the CA: %s" %
                            (r.stdout + r.stderr).decode())
        r = _openssl(["x509", "-in", cert, "-noout", "-pubkey", "-out",
                      pub])
        if r.returncode != 0:
            problems.append("no public key: %s" % r.stderr.decode())
            return problems
        r = _openssl(["pkey", "-pubin", "-in", pub, "-noout", "-text"])
        if b"ED25519" not in (r.stdout + r.stderr).upper():
            problems.append("not an Ed25519 key: %s" % r.stdout.decode())
        r = _openssl(["pkeyutl", "-verify", "-pubin", "-inkey", pub,
                      "-rawin", "-in", body, "-sigfile", sig])
        if r.returncode != 0 or b"Signature Verified Successfully" not in \
                r.stdout:
            problems.append("signature does not verify: %s" %
                            (r.stdout + r.stderr).decode())
    return problems


# ---------------------------------------------------------------- bundles

def check_bundle(b, ca):
    """
    Verify an export bundle (common/auditsvc.h) with this file's code:
    the checkpoint (check_checkpoint), then every entry's canonical bytes
    and inclusion proof against the checkpoint's root, indexes from
    "from" to "to" - 1 without a gap.  Returns (problems, first bad
    index or None).
    """
    if b.get("format") != EXPORT_FORMAT:
        return ["format %r" % b.get("format")], None
    cp = b.get("checkpoint") or {}
    problems = check_checkpoint(cp, ca)
    if problems:
        return problems, None
    if b.get("origin") != cp["origin"]:
        return ["origin %r is not the checkpoint's" % b.get("origin")], None
    root, size = unhex(cp["root"]), cp["size"]
    want = b["from"]
    for x in b["entries"]:
        if x.get("index") != want:
            return ["entry %d is missing (found %r)" %
                    (want, x.get("index"))], want
        if want >= size or not verify_inclusion(
                entry_leaf(x["entry"]), want, size,
                unhex_list(x["proof"]), root):
            return ["entry %d does not match the checkpoint" % want], want
        want += 1
    if want != b["to"]:
        return ["entries %d..%d are missing" % (want, b["to"] - 1)], want
    return [], None


# ---------------------------------------------------------------- self-tests

# Certificate Transparency's reference leaves and tree heads.
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")]
CT_INCLUSION = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}


def test_rfc6962_reference_roots():
    leaves = [leaf_hash(d) for d in CT_LEAVES]
    assert mth([]).hex() == \
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    for n in range(1, 9):
        assert mth(leaves[:n]) == CT_ROOTS[n - 1], n
        assert root_of(leaves[:n]) == CT_ROOTS[n - 1], n


def test_rfc6962_reference_inclusion_proofs():
    leaves = [leaf_hash(d) for d in CT_LEAVES]
    for (m, n), want in CT_INCLUSION.items():
        got = path(m, leaves[:n])
        assert [h.hex() for h in got] == want
        assert verify_inclusion(leaves[m], m, n, got, CT_ROOTS[n - 1])


def _flip(h):
    return bytes([h[0] ^ 1]) + h[1:]


def test_rfc9162_inclusion_every_leaf_every_size():
    """Every PATH of every tree up to 40 leaves verifies; the wrong leaf,
    index, size, root, a changed, missing or extra hash do not."""
    leaves = [leaf_hash(b"entry %d" % i) for i in range(40)]
    for n in range(1, len(leaves) + 1):
        root = mth(leaves[:n])
        assert root_of(leaves[:n]) == root
        for m in range(n):
            p = path(m, leaves[:n])
            assert verify_inclusion(leaves[m], m, n, p, root), (m, n)
            assert not verify_inclusion(_flip(leaves[m]), m, n, p, root)
            assert not verify_inclusion(leaves[m], m, n, p, _flip(root))
            assert not verify_inclusion(leaves[m], n, n, p, root)
            if n > 1:
                other = (m + 1) % n
                assert not verify_inclusion(leaves[other], m, n, p, root)
                assert not verify_inclusion(leaves[m], other, n, p, root) \
                    or leaves[m] == leaves[other]
            for i in range(len(p)):
                bad = list(p)
                bad[i] = _flip(bad[i])
                assert not verify_inclusion(leaves[m], m, n, bad, root)
            if p:
                assert not verify_inclusion(leaves[m], m, n, p[:-1], root)
            assert not verify_inclusion(leaves[m], m, n, p + [root], root)


def test_rfc9162_consistency_every_pair():
    """Every PROOF(m, D[n]) for 0 < m < n <= 40 verifies; wrong roots,
    sizes and changed, missing or extra hashes do not."""
    leaves = [leaf_hash(b"entry %d" % i) for i in range(40)]
    roots = [mth(leaves[:n]) for n in range(len(leaves) + 1)]
    for n in range(1, len(leaves) + 1):
        assert verify_consistency(n, n, roots[n], roots[n], [])
        assert verify_consistency(0, n, EMPTY_ROOT, roots[n], [])
        assert not verify_consistency(n, n, roots[n], _flip(roots[n]), [])
        for m in range(1, n):
            p = proof(m, leaves[:n])
            assert verify_consistency(m, n, roots[m], roots[n], p), (m, n)
            assert not verify_consistency(m, n, _flip(roots[m]), roots[n],
                                          p)
            assert not verify_consistency(m, n, roots[m], _flip(roots[n]),
                                          p)
            assert not verify_consistency(n, m, roots[n], roots[m], p)
            if m + 1 < n:
                assert not verify_consistency(m + 1, n, roots[m + 1],
                                              roots[n], p)
            for i in range(len(p)):
                bad = list(p)
                bad[i] = _flip(bad[i])
                assert not verify_consistency(m, n, roots[m], roots[n], bad)
            assert not verify_consistency(m, n, roots[m], roots[n], p[:-1])
            assert not verify_consistency(m, n, roots[m], roots[n],
                                          p + [roots[n]])
    # a tree that is not an extension: same size, one leaf changed
    changed = list(leaves)
    changed[3] = leaf_hash(b"edited")
    for n in range(5, 20):
        p = proof(4, changed[:n])
        assert not verify_consistency(4, n, roots[4], mth(changed[:n]), p)


def test_canonical_encoding_is_the_documented_one():
    """common/audit.h: sorted keys, no whitespace, ASCII with lower-case
    \\uXXXX escapes, surrogate pairs beyond U+FFFF."""
    e = {"v": 1, "actor": "d\u00e9j\u00e0 \U0001F600", "a": {"z": [1, "\n"],
         "b": "\"\\\x7f\x01"}}
    assert canonical(e) == (
        b'{"a":{"b":"\\"\\\\\\u007f\\u0001","z":[1,"\\n"]},'
        b'"actor":"d\\u00e9j\\u00e0 \\ud83d\\ude00","v":1}')


@pytest.mark.parametrize("size", [1, 2, 7, 1000, 1001, 1024, 65537])
def test_streaming_root_matches_recursive_root(size):
    leaves = [leaf_hash(b"%d" % i) for i in range(size)]
    if size <= 1024:
        assert root_of(leaves) == mth(leaves)
    else:
        # mth() recursion is slow for 65537; compare through the split
        k = split(size)
        assert root_of(leaves) == node_hash(root_of(leaves[:k]),
                                            root_of(leaves[k:]))
