"""
keyservice key hierarchy end to end: data keys wrap and unwrap to the same
bytes, bound to their context; rotation keeps old wrapped keys readable
and rewrap moves them to the newest version; everything survives a
SIGTERM restart and a kill -9 of keyservice, and no AES-GCM nonce is ever
handed out twice (the nonces of every wrapped key of this module are
collected and compared, across the crash too).
"""
import base64
import os
import struct
import time

import pytest

from ks_client import (KS, check_error, finish, issue_client, mdb_records,
                       start_ks_node, unb64, wrapped_parts)

FIN = "finance.amanat.test"
HEA = "health.amanat.test"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = start_ks_node(tmp_path_factory.mktemp("kskeys"), demo=False)
    admin = KS(n, "admin")
    for name, dom in (("finance", FIN), ("health", HEA)):
        r = admin.post("/v1/depts", {"name": name, "domains": [dom],
                                     "display_name": name.title()})
        assert r.status == 201, r
    yield n
    finish(n)


@pytest.fixture(scope="module")
def admin(node):
    return KS(node, "admin")


@pytest.fixture(scope="module")
def svc(node):
    return KS(node, "mailsrv")


class Wraps:
    """Every wrapped key seen in this module: (wrapped, context, plain)."""

    def __init__(self):
        self.all = []

    def add(self, wrapped, context, plain):
        wrapped_parts(wrapped)          # well formed
        self.all.append((wrapped, context, plain))
        return wrapped


@pytest.fixture(scope="module")
def wraps():
    return Wraps()


def datakey(ks, wraps, key_id, context):
    r = ks.post("/v1/keys/datakey", {"key_id": key_id, "context": context})
    assert r.status == 200, r
    j = r.json
    assert set(j) == {"plaintext", "wrapped", "key_id", "version"}, j
    assert j["key_id"] == key_id
    plain = unb64(j["plaintext"])
    assert len(plain) == 32
    kid, ver, _, _ = wrapped_parts(j["wrapped"])
    assert (kid, ver) == (key_id, j["version"])
    wraps.add(j["wrapped"], context, plain)
    return j


def unwrap(ks, wrapped, context):
    return ks.post("/v1/keys/unwrap", {"wrapped": wrapped,
                                       "context": context})


def rewrap(ks, wraps, wrapped, context, plain):
    r = ks.post("/v1/keys/rewrap", {"wrapped": wrapped, "context": context})
    assert r.status == 200, r
    assert set(r.json) == {"wrapped", "key_id", "version"}, r.json
    assert "plaintext" not in r.json
    wraps.add(r.json["wrapped"], context, plain)
    return r.json


def versions(ks, key_id):
    r = ks.get("/v1/keys/" + key_id)
    assert r.status == 200, r
    assert r.json["key_id"] == key_id
    return [v["version"] for v in r.json["versions"]], r.json["versions"]


def stored_keks(node):
    """{(key id, version): (fixed, limit)} from the "keks" database."""
    out = {}
    for k, v in mdb_records(os.path.join(node.dir, "keyservice", "db"),
                            "keks").items():
        kid, _, ver = k.partition(b"\0")
        (version,) = struct.unpack(">I", ver)
        assert v[0] == 1, "record format"
        fixed = v[9:13]
        (limit,) = struct.unpack(">Q", v[13:21])
        out[(kid.decode(), version)] = (fixed, limit)
    return out


def check_all_unwrap(ks, wraps):
    for wrapped, ctx, plain in wraps.all:
        r = unwrap(ks, wrapped, ctx)
        assert r.status == 200, (r, wrapped_parts(wrapped)[:2])
        assert unb64(r.json["plaintext"]) == plain


def test_datakey_unwrap_roundtrip(node, admin, svc, wraps):
    """Each service (and the admin) gets data keys that unwrap to the
    same bytes, by any service."""
    keys = []
    for who in ("mailsrv", "docstore", "admin"):
        ks = KS(node, who)
        for i in range(3):
            keys.append(datakey(ks, wraps, "finance",
                                "mailbox:user%d@%s" % (i, FIN)))
    assert len({k["plaintext"] for k in keys}) == len(keys)
    assert len({k["wrapped"] for k in keys}) == len(keys)
    for k, ctx in zip(keys, [c for _, c, _ in wraps.all[-len(keys):]]):
        for who in ("docstore", "mailsrv"):
            r = unwrap(KS(node, who), k["wrapped"], ctx)
            assert r.status == 200, r
            assert r.json["plaintext"] == k["plaintext"]


def test_unwrap_with_another_context_is_forbidden(svc, wraps):
    j = datakey(svc, wraps, "finance", "mailbox:alice@" + FIN)
    for ctx in ("mailbox:bob@" + FIN, "mailbox:alice@" + FIN + " ",
                "", "MAILBOX:alice@" + FIN):
        r = unwrap(svc, j["wrapped"], ctx)
        if ctx == "":
            assert r.status in (400, 403), r
            check_error(r, r.status)
        else:
            check_error(r, 403, "forbidden")
        assert "plaintext" not in (r.json or {})
    # rewrap checks the context too
    check_error(svc.post("/v1/keys/rewrap", {"wrapped": j["wrapped"],
                                             "context": "mailbox:x"}),
                403, "forbidden")


def test_tampered_wrapped_key_is_refused(svc, wraps):
    ctx = "doc:42"
    j = datakey(svc, wraps, "health", ctx)
    blob = bytearray(unb64(j["wrapped"]))
    for pos in (len(blob) - 1, len(blob) - 20, 3 + len("health") + 5):
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        r = unwrap(svc, base64.b64encode(bytes(bad)).decode(), ctx)
        check_error(r, 403, "forbidden")
    # the header names another key id: refused (not found or forbidden)
    other = bytearray(blob)
    other[3:3 + len("health")] = b"financ"   # same length, other id
    r = unwrap(svc, base64.b64encode(bytes(other)).decode(), ctx)
    assert r.status in (403, 404), r
    check_error(r, r.status)
    # not a wrapped key at all
    check_error(unwrap(svc, "bm90IGEga2V5", ctx), 400)
    check_error(unwrap(svc, "***", ctx), 400)
    # the original still unwraps
    assert unwrap(svc, j["wrapped"], ctx).json["plaintext"] == j["plaintext"]


def test_unknown_key_id_and_bad_fields(svc):
    check_error(svc.post("/v1/keys/datakey", {"key_id": "nosuch",
                                              "context": "c"}), 404)
    check_error(svc.post("/v1/keys/datakey", {"key_id": "finance"}), 400)
    check_error(svc.post("/v1/keys/datakey", {"key_id": "finance",
                                              "context": "x" * 513}), 400)
    check_error(svc.get("/v1/keys/nosuch"), 404)
    check_error(KS(svc.node, "admin").post("/v1/keys/nosuch/rotate"), 404)
    check_error(KS(svc.node, "admin").post("/v1/keys/node/rotate"), 403)


def test_rotate_then_rewrap(node, admin, svc, wraps):
    ctx = "mailbox:carol@" + FIN
    old = datakey(svc, wraps, "finance", ctx)
    assert old["version"] == 1
    before, _ = versions(admin, "finance")
    assert before == [1]

    r = admin.post("/v1/keys/finance/rotate")
    assert r.status == 200, r
    assert r.json == {"key_id": "finance", "version": 2}

    vs, detail = versions(admin, "finance")
    assert vs == [1, 2]
    assert all(isinstance(v["created"], int) and v["created"] > 0
               for v in detail)
    # services may look, too
    assert versions(svc, "finance")[0] == [1, 2]

    # the old wrapped key (and every earlier one) still unwraps
    r = unwrap(svc, old["wrapped"], ctx)
    assert r.status == 200 and r.json["plaintext"] == old["plaintext"]
    check_all_unwrap(svc, wraps)

    # rewrap moves it to version 2, same bytes, and the new one unwraps
    rw = rewrap(svc, wraps, old["wrapped"], ctx, unb64(old["plaintext"]))
    assert rw["key_id"] == "finance" and rw["version"] == 2
    assert wrapped_parts(rw["wrapped"])[:2] == ("finance", 2)
    r = unwrap(svc, rw["wrapped"], ctx)
    assert r.status == 200 and r.json["plaintext"] == old["plaintext"]
    check_error(unwrap(svc, rw["wrapped"], ctx + "x"), 403, "forbidden")
    # new data keys use version 2
    assert datakey(svc, wraps, "finance", ctx)["version"] == 2
    # stored: two KEK versions of finance, distinct fixed nonce fields
    keks = stored_keks(node)
    assert (("finance", 1) in keks) and (("finance", 2) in keks)
    assert ("finance", 3) not in keks
    assert keks[("finance", 1)][0] != keks[("finance", 2)][0]


def test_durable_across_sigterm_restart_and_kill9(node, admin, svc, wraps,
                                                  tmp_path):
    state = {"user": "lena@legal.amanat.test",
             "user2": "max@legal.amanat.test"}
    r = admin.post("/v1/depts", {"name": "legal",
                                 "domains": ["legal.amanat.test"]})
    assert r.status == 201, r
    r = admin.post("/v1/users", {"address": state["user"],
                                 "display_name": "Lena"})
    assert r.status == 201 and "password" in r.json, r
    r = admin.patch("/v1/users/" + state["user"],
                    {"display_name": "Lena Legal", "status": "suspended"})
    assert r.status == 200, r
    r = admin.post("/v1/users", {"address": state["user2"],
                                 "password": "lex-2027"})
    assert r.status == 201, r
    r = admin.post("/v1/users", {"address": "gone@legal.amanat.test"})
    assert r.status == 201, r
    assert admin.delete("/v1/users/gone@legal.amanat.test").status == 200
    # a client certificate of max, revoked
    _, _, rec = issue_client(admin, str(tmp_path), state["user2"])
    assert admin.post("/v1/certs/%s/revoke" % rec["serial"]).status == 200
    state["revoked"] = rec["serial"]
    for _ in range(2):
        assert admin.post("/v1/keys/legal/rotate").status == 200
    for i in range(20):
        datakey(svc, wraps, ("finance", "legal", "health")[i % 3],
                "pre-restart:%d" % i)
    def listing_ok():
        r = admin.get("/v1/users?dept=legal")
        return sorted(u["address"] for u in r.json["users"]) == \
            sorted([state["user"], state["user2"]])

    assert listing_ok()
    state["versions"] = {kid: versions(admin, kid)[0]
                         for kid in ("finance", "health", "legal")}
    assert state["versions"]["legal"] == [1, 2, 3]
    keks_before = stored_keks(node)

    # ---- clean restart
    problems = node.restart("keyservice")
    assert not problems, "\n".join(problems)
    admin.reset()
    svc.reset()
    check_durable_all(node, admin, svc, wraps, state, listing_ok)

    # ---- crash: kill -9 in the middle of work, then restart
    for i in range(10):
        datakey(svc, wraps, "finance", "pre-crash:%d" % i)
    assert node.kill9("keyservice") == -9
    node.start(["keyservice"])
    admin.reset()
    svc.reset()
    check_durable_all(node, admin, svc, wraps, state, listing_ok)
    for i in range(10):
        datakey(svc, wraps, "finance", "post-crash:%d" % i)
    check_all_unwrap(svc, wraps)

    # stored counter bounds only grow, and cover every nonce handed out
    keks_after = stored_keks(node)
    for kv, (fixed, limit) in keks_before.items():
        assert keks_after[kv][0] == fixed
        assert keks_after[kv][1] >= limit
    for wrapped, _, _ in wraps.all:
        kid, ver, nonce, _ = wrapped_parts(wrapped)
        fixed, limit = keks_after[(kid, ver)]
        assert nonce[:4] == fixed, (kid, ver)
        (ctr,) = struct.unpack(">Q", nonce[4:])
        assert ctr < limit, (kid, ver, ctr, limit)
    # GET /v1/keys reports uses at least the counters handed out
    _, detail = versions(admin, "finance")
    newest = detail[-1]["version"]
    top = max(struct.unpack(">Q", wrapped_parts(w)[2][4:])[0]
              for w, _, _ in wraps.all if wrapped_parts(w)[:2] ==
              ("finance", newest))
    assert detail[-1]["uses"] > top


def check_durable_all(node, admin, svc, wraps, state, listing_ok):
    check_all_unwrap(svc, wraps)
    for kid, vs in state["versions"].items():
        assert versions(admin, kid)[0] == vs, kid
    r = admin.get("/v1/depts/legal")
    assert r.status == 200 and r.json["domains"] == ["legal.amanat.test"]
    r = admin.get("/v1/users/" + state["user"])
    assert r.status == 200, r
    assert r.json["display_name"] == "Lena Legal"
    assert r.json["status"] == "suspended"
    assert listing_ok()
    assert admin.get("/v1/users/gone@legal.amanat.test").status == 404
    r = svc.post("/v1/auth/password", {"address": state["user2"],
                                       "password": "lex-2027",
                                       "source": "127.0.0.1"})
    assert r.status == 200, r
    r = admin.get("/v1/certs/" + state["revoked"])
    assert r.json["status"] == "revoked"
    for kid, vs in state["versions"].items():
        ctx = "after-restart:%s:%f" % (kid, time.time())
        j = datakey(svc, wraps, kid, ctx)
        assert j["version"] == vs[-1]
        r = unwrap(svc, j["wrapped"], ctx)
        assert r.json["plaintext"] == j["plaintext"]


def test_users_cannot_use_data_keys(node, admin, svc, wraps, tmp_path):
    r = admin.post("/v1/users", {"address": "ula@" + FIN,
                                 "password": "ula-pw"})
    assert r.status == 201, r
    cert, key, _ = issue_client(admin, str(tmp_path), "ula@" + FIN)
    ula = KS(node, (cert, key))
    j = datakey(svc, wraps, "finance", "mailbox:ula@" + FIN)
    check_error(ula.post("/v1/keys/datakey", {"key_id": "finance",
                                              "context": "c"}), 403)
    check_error(unwrap(ula, j["wrapped"], "mailbox:ula@" + FIN), 403)
    check_error(ula.post("/v1/keys/rewrap", {
        "wrapped": j["wrapped"], "context": "mailbox:ula@" + FIN}), 403)
    check_error(ula.post("/v1/keys/finance/rotate"), 403)
    check_error(ula.get("/v1/keys/finance"), 403)


def test_kill9_under_concurrent_load(node, admin, svc, wraps):
    """kill -9 while several clients request data keys: every key handed
    out before the crash still unwraps after the restart, and the nonces
    of the keys handed out after it are fresh (checked, with all the
    others, by test_nonces_never_repeat)."""
    import threading
    got, errors, bad, stop = [], [], [], threading.Event()
    lock = threading.Lock()

    def worker(n):
        ks = KS(node, ("mailsrv", "docstore")[n % 2], timeout=20)
        i = 0
        while not stop.is_set():
            ctx = "load:%d:%d" % (n, i)
            i += 1
            try:
                r = ks.post("/v1/keys/datakey", {"key_id": "finance",
                                                 "context": ctx})
            except OSError as e:      # the crash
                errors.append(repr(e))
                return
            if r.status != 200:
                bad.append(repr(r))
                return
            with lock:
                got.append((r.json["wrapped"], ctx,
                            unb64(r.json["plaintext"])))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(got) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert node.kill9("keyservice") == -9
    stop.set()
    for t in threads:
        t.join(30)
    assert len(got) >= 40, (len(got), errors)
    assert not bad, bad      # every answer before the crash was a key
    node.start(["keyservice"])
    admin.reset()
    svc.reset()
    for w, ctx, plain in got:
        wraps.add(w, ctx, plain)
        r = unwrap(svc, w, ctx)
        assert r.status == 200 and unb64(r.json["plaintext"]) == plain
    for i in range(10):
        datakey(svc, wraps, "finance", "after-load-crash:%d" % i)


def test_services_cannot_unwrap_escrowed_private_keys(node, svc):
    escrow = mdb_records(os.path.join(node.dir, "keyservice", "db"),
                         "escrow")
    leaks = []
    for name, ctx in ((b"node-ca", "ca-key"),
                      (b"sign-docstore", "sign:docstore"),
                      (b"sign-keyservice", "sign:keyservice")):
        r = unwrap(svc, escrow[name].decode(), ctx)
        if r.status == 200:
            leaks.append((name, unb64(r.json["plaintext"])[:27]))
    r = svc.post("/v1/keys/datakey", {"key_id": "node", "context": "x"})
    if r.status == 200:
        leaks.append(("datakey under the node KEK", r.json["version"]))
    assert not leaks, leaks


def test_department_cannot_take_the_node_key_id(admin):
    r = admin.post("/v1/depts", {"name": "node",
                                 "domains": ["node.amanat.test"]})
    assert r.status in (400, 403, 409), r


def test_nonces_never_repeat(wraps):
    """Across every wrap of this module (datakeys and rewraps, before and
    after the SIGTERM restart and the kill -9): all nonces distinct, and
    all wrapped keys distinct."""
    assert len(wraps.all) >= 60, len(wraps.all)
    nonces = [wrapped_parts(w)[2] for w, _, _ in wraps.all]
    dup = {n.hex() for n in nonces if nonces.count(n) > 1}
    assert not dup, "nonce reuse: %s" % sorted(dup)
    assert len({w for w, _, _ in wraps.all}) == len(wraps.all)
