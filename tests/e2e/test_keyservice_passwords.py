"""
keyservice passwords end to end: POST /v1/auth/password for the
services; the guessing throttle per user and per source address
(login_free_failures = 3, login_delay = 2s here); Argon2id hashes at rest
(read from LMDB with mdb_dump) and no plaintext password anywhere in the
data directory but the 0600 demo-users.txt.
"""
import os
import subprocess
import time

import pytest

from ks_client import (FINANCE, HEALTH, KS, check_error, demo_users, finish,
                       issue_client, mdb_json, need_tools, start_ks_node)

FREE = 3
DELAY_MS = 2000
WRONG = "wr0ng-Guess-417"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = start_ks_node(tmp_path_factory.mktemp("kspw"), {
        "keyservice": {"login_free_failures": str(FREE),
                       "login_delay": "2s"}})
    yield n
    finish(n)


@pytest.fixture(scope="module")
def users(node):
    u = demo_users(node)
    assert len(u) == 9, u
    return u


@pytest.fixture(scope="module")
def svc(node):
    return KS(node, "mailsrv")


@pytest.fixture(scope="module")
def admin(node):
    return KS(node, "admin")


def auth(ks, address, password, source):
    return ks.post("/v1/auth/password", {"address": address,
                                         "password": password,
                                         "source": source})


def test_right_password_ok(svc, users):
    for addr, (pw, roles) in users.items():
        r = auth(svc, addr, pw, "192.0.2.1")
        assert r.status == 200, (addr, r)
        assert r.json["ok"] is True
        u = r.json["user"]
        assert u["address"] == addr and u["roles"] == roles
        assert "password" not in u
    # docstore and the admin may verify passwords too
    addr = "alice@" + FINANCE
    for who in ("docstore", "admin"):
        r = auth(KS(svc.node, who), addr, users[addr][0], "192.0.2.1")
        assert r.status == 200, (who, r)
    # addresses are case-insensitive
    r = auth(svc, addr.upper(), users[addr][0], "192.0.2.1")
    assert r.status == 200, r


def test_wrong_password_denied(svc, users):
    """Wrong passwords are 401 denied (each from its own source and at
    most login_free_failures - 1 per user: the throttle is tested
    below)."""
    addr = "bob@" + FINANCE
    pw = users[addr][0]
    for i, bad in enumerate((pw + "x", pw[:-1])):
        j = check_error(auth(svc, addr, bad, "192.0.2.%d" % (10 + i)), 401,
                        "denied")
        assert "user" not in j and "ok" not in j
    assert auth(svc, addr, pw, "192.0.2.12").status == 200
    for i, bad in enumerate((pw.lower(),)):
        check_error(auth(svc, addr, bad, "192.0.2.%d" % (13 + i)), 401,
                    "denied")
    # an unknown user gets the same answer as a wrong password
    j = check_error(auth(svc, "nobody@" + FINANCE, pw, "192.0.2.15"), 401,
                    "denied")
    j2 = check_error(auth(svc, addr, WRONG, "192.0.2.16"), 401, "denied")
    assert j["message"] == j2["message"]
    check_error(auth(svc, "not-an-address", "x", "192.0.2.17"), 401,
                "denied")
    assert auth(svc, addr, pw, "192.0.2.18").status == 200


def test_password_field_rules(svc, users):
    addr = "carol@" + HEALTH
    check_error(svc.post("/v1/auth/password", {"address": addr,
                                               "source": "x"}), 400)
    check_error(auth(svc, addr, "", "192.0.2.3"), 400, "invalid")
    check_error(auth(svc, addr, "p" * 1025, "192.0.2.3"), 400, "invalid")
    check_error(svc.post("/v1/auth/password", {"address": addr,
                                               "password": "x"}), 400)
    check_error(svc.post("/v1/auth/password", {"address": addr,
                                               "password": 5,
                                               "source": "s"}), 400)


def test_users_may_not_verify_passwords(node, admin, users, tmp_path):
    cert, key, _ = issue_client(admin, str(tmp_path), "sofia@" + FINANCE)
    sofia = KS(node, (cert, key))
    addr = "alice@" + FINANCE
    check_error(auth(sofia, addr, users[addr][0], "192.0.2.4"), 403,
                "forbidden")


def test_throttle_per_user_and_per_source(svc, users):
    """
    After login_free_failures failures, further attempts are refused
    (429 throttled, retry_after_ms) until login_delay passed -- even with
    the right password -- and the delay doubles with each further
    failure.  The counters are per user (any source) and per source (any
    user).
    """
    f, s = "fatima@" + FINANCE, "sofia@" + FINANCE
    d, c = "dave@" + HEALTH, "carol@" + HEALTH
    S1, S2, S3, S4 = "198.51.100.1", "198.51.100.2", "198.51.100.3", \
        "198.51.100.4"
    for _ in range(FREE):
        check_error(auth(svc, f, WRONG, S1), 401, "denied")
    t0 = time.monotonic()

    # the user is throttled, right password or not, from any source
    j = check_error(auth(svc, f, users[f][0], S1), 429, "throttled")
    wait = j["retry_after_ms"]
    assert isinstance(wait, int) and 0 < wait <= DELAY_MS, j
    j = check_error(auth(svc, f, users[f][0], S2), 429, "throttled")
    assert 0 < j["retry_after_ms"] <= DELAY_MS
    check_error(auth(svc, f, WRONG, S3), 429, "throttled")
    # the source is throttled for any user
    j = check_error(auth(svc, s, users[s][0], S1), 429, "throttled")
    assert 0 < j["retry_after_ms"] <= DELAY_MS
    # other users from other sources are not affected
    assert auth(svc, s, users[s][0], S4).status == 200

    # once the delay passed, the right password works (from S2)
    time.sleep(max(0.0, DELAY_MS / 1000.0 - (time.monotonic() - t0)) + 0.3)
    r = auth(svc, f, users[f][0], S2)
    assert r.status == 200, r
    # success cleared the user's counter: one failure is free again
    check_error(auth(svc, f, WRONG, S3), 401, "denied")
    assert auth(svc, f, users[f][0], S3).status == 200

    # S1 kept its count: its next failure (the 4th) doubles the delay
    check_error(auth(svc, d, WRONG, S1), 401, "denied")
    j = check_error(auth(svc, d, users[d][0], S1), 429, "throttled")
    assert DELAY_MS < j["retry_after_ms"] <= 2 * DELAY_MS, j
    j = check_error(auth(svc, c, users[c][0], S1), 429, "throttled")
    assert DELAY_MS < j["retry_after_ms"] <= 2 * DELAY_MS, j
    # dave himself has one failure only: fine from elsewhere
    assert auth(svc, d, users[d][0], S4).status == 200


def test_throttle_counts_unknown_users_per_source(svc, users):
    src = "203.0.113.9"
    for i in range(FREE):
        check_error(auth(svc, "ghost%d@%s" % (i, FINANCE), "pw", src), 401)
    addr = "bob@" + FINANCE
    check_error(auth(svc, addr, users[addr][0], src), 429, "throttled")
    assert auth(svc, addr, users[addr][0], "203.0.113.10").status == 200


def test_suspended_user_cannot_log_in(svc, admin, users):
    addr = "dave@" + HEALTH
    r = admin.patch("/v1/users/" + addr, {"status": "suspended"})
    assert r.status == 200 and r.json["status"] == "suspended", r
    check_error(auth(svc, addr, users[addr][0], "192.0.2.50"), 403,
                "suspended")
    # a wrong password for a suspended user is still just denied
    check_error(auth(svc, addr, WRONG, "192.0.2.51"), 401, "denied")
    r = admin.patch("/v1/users/" + addr, {"status": "active"})
    assert r.status == 200
    assert auth(svc, addr, users[addr][0], "192.0.2.52").status == 200


def test_set_and_generated_passwords(node, svc, admin, users, tmp_path):
    """Passwords given to POST /v1/users are never echoed; generated ones
    are returned once; changes through /password take effect at once;
    a user may change her own."""
    a = "paul@" + FINANCE
    r = admin.post("/v1/users", {"address": a, "password": "Paul-1-pw"})
    assert r.status == 201 and "password" not in r.json, r
    assert auth(svc, a, "Paul-1-pw", "192.0.2.60").status == 200
    g = "gina@" + FINANCE
    r = admin.post("/v1/users", {"address": g})
    assert r.status == 201, r
    gen = r.json["password"]
    assert isinstance(gen, str) and len(gen) >= 16
    assert auth(svc, g, gen, "192.0.2.60").status == 200
    assert "password" not in admin.get("/v1/users/" + g).json
    # admin sets paul's password
    r = admin.post("/v1/users/%s/password" % a, {"password": "Paul-2-pw"})
    assert r.status == 200 and "password" not in r.json, r
    check_error(auth(svc, a, "Paul-1-pw", "192.0.2.61"), 401)
    assert auth(svc, a, "Paul-2-pw", "192.0.2.61").status == 200
    # generated by the admin
    r = admin.post("/v1/users/%s/password" % a, {})
    assert r.status == 200, r
    gen2 = r.json["password"]
    assert auth(svc, a, gen2, "192.0.2.61").status == 200
    # paul changes his own with his client certificate
    cert, key, _ = issue_client(admin, str(tmp_path), a)
    paul = KS(node, (cert, key))
    r = paul.post("/v1/users/%s/password" % a, {"password": "Paul-3-pw"})
    assert r.status == 200, r
    assert auth(svc, a, "Paul-3-pw", "192.0.2.62").status == 200
    # but not alice's
    check_error(paul.post("/v1/users/alice@%s/password" % FINANCE,
                          {"password": "x"}), 403)
    # and a service may not set passwords
    check_error(svc.post("/v1/users/%s/password" % a, {"password": "x"}),
                403)
    # remember them for the at-rest checks
    users["paul@" + FINANCE] = ("Paul-3-pw", ["user"])
    users["gina@" + FINANCE] = (gen, ["user"])
    users["_old"] = ("Paul-1-pw", [])
    users["_old2"] = ("Paul-2-pw", [])
    users["_gen2"] = (gen2, [])


def test_stored_hashes_are_argon2id(node, users):
    recs = mdb_json(os.path.join(node.dir, "keyservice", "db"), "users")
    assert set(a for a in users if not a.startswith("_")) <= set(recs)
    for addr, rec in recs.items():
        h = rec["password"]
        assert h.startswith("$argon2id$v=19$"), (addr, h)
        # the parameters of this node's config
        assert "$m=8192,t=1,p=1$" in h, (addr, h)
        assert h.count("$") == 5, h
        assert addr in users, addr
    # the hashes are salted: no two alike
    assert len({r["password"] for r in recs.values()}) == len(recs)


def test_no_plaintext_password_in_datadir(node, users):
    need_tools("grep")
    dd = node.dir
    demo = os.path.join(dd, "demo-users.txt")
    assert os.stat(demo).st_mode & 0o777 == 0o600
    pws = sorted({pw for pw, _ in users.values()})
    assert len(pws) >= 7
    # the demo file has them (sanity of the search)
    with open(demo) as f:
        text = f.read()
    for addr, (pw, _) in users.items():
        if addr.endswith(("amanat.test",)) and addr in text:
            assert pw in text
    args = ["grep", "-r", "-a", "-l", "-F", "--exclude=demo-users.txt"]
    for pw in pws:
        args += ["-e", pw]
    r = subprocess.run(args + [dd], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1, "plaintext passwords found in: %s %s" % (
        r.stdout, r.stderr)
    # nor the wrong guesses of this module in the logs
    r = subprocess.run(["grep", "-r", "-a", "-l", "-F", "-e", WRONG, dd],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, "wrong guesses found in: %s %s" % (
        r.stdout, r.stderr)
