"""
test_audit_day.py -- the audit log after a scripted day on a demo node
(keyservice and mailsrv), read by the security officer
sofia@finance.amanat.test:

- `amanat audit query --actor alice --json` shows each of alice's actions
  with its outcome, `--outcome denied` the failed logins with their
  source addresses;
- a caller without the security-officer role gets 403 from both audit
  APIs, and each such attempt is in the log;
- every entry, inclusion proof, consistency proof and checkpoint
  signature is checked with the tests' own RFC 6962 code
  (test_audit_rfc6962.py) and openssl, not with the project's;
- `amanat audit export` then `amanat audit verify-export` with no config
  and no network; an edited bundle fails naming the entry.

docstore has no documents yet: the day has no document actions, the
node runs no docstore, and the CLI is pointed at keyservice and mailsrv
(--service).  The IMAP part of the day: alice reads her INBOX over IMAPS
(a login, a mailbox open, a body read) and fails one IMAP login.
"""
import base64
import collections
import copy
import imaplib
import json
import os
import shutil
import subprocess
import time

import pytest

from smtp_util import (ALICE, BOB, SOFIA, make_message, queued_id,
                       send_data, submission)
from test_audit_node import (SERVICES, amanat, api, audit_json, checkpoint,
                             client_cert, datakeys, entries, finish,
                             get_json, next_checkpoint, size_of,
                             start_audit_node, wait_checkpoint)
from test_audit_rfc6962 import (check_bundle, check_checkpoint, entry_leaf,
                                path, proof, root_of, unhex, unhex_list,
                                verify_consistency, verify_inclusion)

BOTH = ["--service", "keyservice", "--service", "mailsrv"]
WRONG = ("not-the-password-1", "not-the-password-2")


def now_ms():
    return int(time.time() * 1000)


def auth_plain(s, user, pw):
    """One AUTH PLAIN attempt (smtplib.login would try every mechanism)."""
    token = base64.b64encode(("\0%s\0%s" % (user, pw)).encode()).decode()
    return s.docmd("AUTH", "PLAIN " + token)


def imap_day(node):
    """alice reads message 1 of her INBOX; one IMAP login fails."""
    def connect():
        return imaplib.IMAP4_SSL("127.0.0.1", node.port("imaps"),
                                 ssl_context=node.ssl_context(), timeout=30)
    m = connect()
    with pytest.raises(imaplib.IMAP4.error):
        m.login(ALICE, WRONG[0])
    m.logout()
    m = connect()
    assert m.login(ALICE, node.users[ALICE][0])[0] == "OK"
    typ, data = m.select("INBOX")
    assert typ == "OK" and int(data[0]) >= 1, data
    typ, data = m.fetch("1", "(BODY[])")
    assert typ == "OK" and b"audit-day-bob-0" in data[0][1], data
    m.logout()


def wait_delivered(node, queue_ids, timeout=30.0):
    """Until mailsrv has a mail.deliver entry for every queue id."""
    c = api(node, "mailsrv")
    deadline = time.monotonic() + timeout
    while True:
        got = {e["details"].get("queue_id") for _, e in
               entries(c, query="&action=mail.deliver")}
        if set(queue_ids) <= got:
            return
        if time.monotonic() > deadline:
            pytest.fail("not delivered: %s; mailsrv log:\n%s" % (
                set(queue_ids) - got, node.log("mailsrv")[-3000:]),
                pytrace=False)
        time.sleep(0.2)


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """
    The scripted day: alice sends two messages and bob one (submission,
    STARTTLS, AUTH PLAIN), alice fails to log in twice (a wrong password
    each time), the admin rotates the finance KEK and suspends bob, bob
    then fails to log in.  Returns (node, record of what was done).
    """
    node = start_audit_node(tmp_path_factory.mktemp("audit-day"))
    rec = {"start": now_ms(), "queued": {ALICE: [], BOB: []}}
    try:
        for sender, rcpt, n in ((ALICE, BOB, 2), (BOB, ALICE, 1)):
            for i in range(n):
                s = submission(node, sender)
                code, text = send_data(s, sender, [rcpt], make_message(
                    "audit-day-%s-%d" % (sender.split("@")[0], i)))
                assert code == 250, (code, text)
                rec["queued"][sender].append(queued_id(text))
                s.quit()
        for pw in WRONG:
            s = submission(node)
            code, text = auth_plain(s, ALICE, pw)
            assert code == 535, (code, text)
            s.quit()
        r = amanat(node, "key", "rotate", "finance", cert=False)
        assert r.returncode == 0, (r.stdout, r.stderr)
        r = amanat(node, "user", "suspend", BOB, cert=False)
        assert r.returncode == 0, (r.stdout, r.stderr)
        s = submission(node)
        code, text = auth_plain(s, BOB, node.users[BOB][0])
        assert code == 535, (code, text)
        s.quit()
        wait_delivered(node, rec["queued"][ALICE] + rec["queued"][BOB])
        imap_day(node)
        rec["end"] = now_ms()
    except BaseException:
        node.stop_all()
        raise
    yield node, rec
    finish(node)


@pytest.fixture(scope="module")
def cps(day):
    """{service: (cp1, cp2)}: two signed checkpoints of each log, the
    second covering the whole day and at least 1000 entries more than
    the first."""
    node, _ = day
    out = {}
    for svc in SERVICES:
        c = api(node, svc)
        cp1 = wait_checkpoint(c, 1)
        cp2 = next_checkpoint(node, c, svc)
        while cp2["size"] - cp1["size"] < 1000:    # one of the 60 s ones
            cp2 = next_checkpoint(node, c, svc)
        out[svc] = (cp1, cp2)
        c.reset()
    return out


def day_entries(rows, rec):
    """The (service, entry) rows of the day (not the officer's reading)."""
    return [(x["service"], x["entry"]) for x in rows
            if rec["start"] <= x["entry"]["time"] <= rec["end"] and
            x["entry"]["action"] != "audit.query"]


# ---------------------------------------------------------------- query

def test_query_actor_shows_each_of_alices_actions(day):
    node, rec = day
    r, rows = audit_json(node, "query", "--actor", ALICE, "--limit", "1000",
                         *BOTH)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert isinstance(rows, list) and rows, r.stdout
    assert all(x["entry"]["actor"] == ALICE for x in rows), rows
    times = [x["entry"]["time"] for x in rows]
    assert times == sorted(times), "not merged by time"
    day_rows = day_entries(rows, rec)
    got = collections.Counter((s, e["action"], e["outcome"]) for s, e in
                              day_rows)
    assert got == collections.Counter({
        ("keyservice", "auth.password", "ok"): 3,
        ("mailsrv", "auth.smtp", "ok"): 2,
        ("mailsrv", "mail.accept", "ok"): 2,
        ("mailsrv", "mail.deliver", "ok"): 2,
        ("keyservice", "auth.password", "denied"): 3,
        ("mailsrv", "auth.smtp", "denied"): 2,
        ("mailsrv", "auth.imap", "ok"): 1,
        ("mailsrv", "auth.imap", "denied"): 1,
        ("mailsrv", "mail.open", "ok"): 1,
        ("mailsrv", "mail.read", "ok"): 1,
    }), json.dumps(day_rows, indent=1)
    for s, e in day_rows:
        assert e["node"] == "e2e" and e["service"] == s and e["v"] == 1, e
        if e["action"] in ("auth.password", "auth.smtp", "auth.imap",
                           "mail.accept", "mail.open", "mail.read"):
            assert e["src"] == "127.0.0.1", e
        if e["action"] in ("mail.open", "mail.read"):
            assert e["object"] == "INBOX" and e["dept"] == "finance", e
        if e["action"] == "mail.read":
            assert e["details"] == {"uids": "1"}, e
        if e["outcome"] == "ok" and e["action"].startswith("auth."):
            assert e["dept"] == "finance", e
    accepted = sorted(e["object"] for s, e in day_rows
                      if e["action"] == "mail.accept")
    assert accepted == sorted(rec["queued"][ALICE])
    for s, e in day_rows:
        if e["action"] == "mail.accept":
            assert e["details"]["from"] == ALICE, e
            assert e["details"]["service"] == "submission", e
        if e["action"] == "mail.deliver":
            assert e["object"] == BOB, e
            assert e["details"]["queue_id"] in rec["queued"][ALICE], e
    # nothing secret: no password in any of alice's entries
    assert node.users[ALICE][0] not in json.dumps(rows)
    assert not any(pw in json.dumps(rows) for pw in WRONG)


def test_query_table_lists_the_same_actions(day):
    node, rec = day
    r = amanat(node, "audit", "query", "--actor", ALICE, *BOTH)
    assert r.returncode == 0, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["TIME", "(UTC)", "SERVICE"], lines[0]
    rows = [l.split() for l in lines[1:]]
    for action in ("auth.password", "auth.smtp", "mail.accept",
                   "mail.deliver"):
        assert any(action in row and ALICE in row for row in rows), \
            (action, r.stdout)
    assert any("denied" in row and "127.0.0.1" in row and
               "auth.smtp" in row for row in rows), r.stdout


def test_query_outcome_denied_shows_failed_logins_with_sources(day):
    node, rec = day
    r, rows = audit_json(node, "query", "--outcome", "denied", "--limit",
                         "1000", *BOTH)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert all(x["entry"]["outcome"] == "denied" for x in rows), rows
    day_rows = day_entries(rows, rec)
    alice = [(s, e) for s, e in day_rows if e["actor"] == ALICE]
    got = collections.Counter((s, e["action"], e["src"]) for s, e in alice)
    assert got == collections.Counter({
        ("keyservice", "auth.password", "127.0.0.1"): 3,
        ("mailsrv", "auth.smtp", "127.0.0.1"): 2,
        ("mailsrv", "auth.imap", "127.0.0.1"): 1}), alice
    for s, e in alice:
        if s == "mailsrv":
            assert e["details"] == {"status": 401}, e
        else:
            assert e["object"] == "mailsrv", e     # the asking service
    # bob, suspended, gave the right password: refused all the same
    bob = [(s, e) for s, e in day_rows if e["actor"] == BOB]
    assert ("mailsrv", "auth.smtp") in [(s, e["action"]) for s, e in bob], \
        day_rows
    for s, e in bob:
        if s == "mailsrv":
            assert e["src"] == "127.0.0.1" and e["details"] == \
                {"status": 403}, e


def test_query_admin_actions_key_rotation_and_suspension(day):
    node, rec = day
    r, rows = audit_json(node, "query", "--actor", "admin", "--limit",
                         "1000", *BOTH)
    assert r.returncode == 0, (r.stdout, r.stderr)
    acts = [(x["service"], x["entry"]["action"], x["entry"]["object"],
             x["entry"]["outcome"]) for x in rows
            if rec["start"] <= x["entry"]["time"] <= rec["end"]]
    assert ("keyservice", "key.rotate", "finance", "ok") in acts, acts
    assert ("keyservice", "user.status", BOB, "ok") in acts, acts
    # the suspension is found by its object too
    r, rows = audit_json(node, "query", "--object", BOB, "--action",
                         "user.status", *BOTH)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert [x["entry"]["actor"] for x in rows] == ["admin"], rows


def test_query_filters_by_action_and_time(day):
    node, rec = day
    since = str(rec["start"] // 1000)
    until = str(rec["end"] // 1000 + 1)
    r, rows = audit_json(node, "query", "--action", "mail.accept",
                         "--since", since, "--until", until, *BOTH)
    assert r.returncode == 0, (r.stdout, r.stderr)
    objs = sorted(x["entry"]["object"] for x in rows)
    assert objs == sorted(rec["queued"][ALICE] + rec["queued"][BOB]), rows
    r, rows = audit_json(node, "query", "--action", "mail.accept",
                         "--until", str(rec["start"] // 1000 - 60), *BOTH)
    assert r.returncode == 0 and rows == [], (r.stdout, r.stderr)


def test_suspended_login_is_recorded_by_keyservice_too(day):
    """Every authentication failure is recorded where it is decided:
    keyservice refuses bob's right password because he is suspended
    (403 to mailsrv), and its own log must say so, as it does for a
    wrong password."""
    node, rec = day
    c = api(node, "keyservice")
    rows = [e for _, e in entries(c, query="&actor=%s&action=auth.password"
                                  % BOB)
            if rec["start"] <= e["time"] <= rec["end"]]
    assert [e["outcome"] for e in rows].count("denied") == 1, rows


# ---------------------------------------------------------------- 403

ROUTES = ("/v1/audit/entries", "/v1/audit/checkpoint",
          "/v1/audit/proof/inclusion?index=0",
          "/v1/audit/proof/consistency?from=0&to=1",
          "/v1/audit/export?from=0&to=1")


def test_non_officer_gets_403_and_the_attempt_is_logged(day):
    node, _ = day
    alice = client_cert(node, ALICE)
    t0 = now_ms()
    for svc in SERVICES:
        for route in ROUTES:
            r = api(node, svc, alice).get(route, fresh=True)
            assert r.status == 403, (svc, route, r)
            assert r.json["error"] == "forbidden", r
            assert b'"entries"' not in r.raw and b'"root"' not in r.raw
        # the admin runs the node but is no security officer
        r = api(node, svc, "admin").get("/v1/audit/entries", fresh=True)
        assert r.status == 403, (svc, r)
    # the CLI with alice's certificate is refused the same way
    r = amanat(node, "audit", "query", *BOTH, cert=alice)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "HTTP 403" in r.stderr, r.stderr
    assert "auth." not in r.stdout
    # sofia sees each refused attempt, on the service that refused it
    r, rows = audit_json(node, "query", "--actor", ALICE, "--action",
                         "audit.query", "--limit", "1000", *BOTH)
    assert r.returncode == 0, (r.stdout, r.stderr)
    rows = [x for x in rows if x["entry"]["time"] >= t0]
    for svc in SERVICES:
        mine = [x["entry"] for x in rows if x["service"] == svc]
        assert len(mine) == len(ROUTES) + 1, (svc, mine)
        assert all(e["outcome"] == "denied" for e in mine), mine
        assert all(e["src"].startswith("127.0.0.1") for e in mine), mine
        assert {e["object"] for e in mine} == \
            {r.split("?")[0] for r in ROUTES}, mine
    r, rows = audit_json(node, "query", "--actor", "admin", "--action",
                         "audit.query", "--outcome", "denied", *BOTH)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert sorted(x["service"] for x in rows
                  if x["entry"]["time"] >= t0) == sorted(SERVICES), rows


def test_officer_queries_are_logged_too(day):
    node, _ = day
    c = api(node, "mailsrv")
    t0 = now_ms()
    get_json(c, "/v1/audit/entries?actor=%s&limit=5" % ALICE)
    r = c.get("/v1/audit/entries?limit=0")
    assert r.status == 400, r
    rows = [e for _, e in entries(c, query="&actor=%s&action=audit.query"
                                  % SOFIA) if e["time"] >= t0]
    ok = [e for e in rows if e["outcome"] == "ok"]
    err = [e for e in rows if e["outcome"] == "error"]
    assert any(e["details"].get("actor") == ALICE for e in ok), rows
    assert any(e["details"].get("status") == 400 for e in err), rows


# ---------------------------------------------------------------- proofs

@pytest.mark.parametrize("svc", SERVICES)
def test_checkpoints_are_signed_by_the_service_key(day, cps, svc):
    node, _ = day
    for cp in cps[svc]:
        assert cp["origin"] == "e2e/" + svc, cp
        assert check_checkpoint(cp, node.ca, svc) == [], cp
        forged = dict(cp, root="%064x" % 1)
        assert check_checkpoint(forged, node.ca, svc), "forged root passed"
        forged = dict(cp, size=cp["size"] - 1)
        assert check_checkpoint(forged, node.ca, svc), "forged size passed"
    # the other service's certificate does not pass for this one
    other = [s for s in SERVICES if s != svc][0]
    swapped = dict(cps[svc][1], certificate=cps[other][1]["certificate"])
    assert check_checkpoint(swapped, node.ca, svc)


@pytest.mark.parametrize("svc", SERVICES)
def test_inclusion_proofs_verify_with_own_code(day, cps, svc):
    """Every entry up to the signed checkpoint is rehashed here into the
    signed root; inclusion proofs of the day's entries (and others)
    verify with RFC 9162 2.1.3.2 against that root."""
    node, rec = day
    c = api(node, svc)
    cp = cps[svc][1]
    size, root = cp["size"], unhex(cp["root"])
    rows = entries(c, 0, size)
    assert [i for i, _ in rows] == list(range(size))
    leaves = [entry_leaf(e) for _, e in rows]
    assert root_of(leaves) == root, "the entries do not give the root"
    day_idx = [i for i, e in rows if rec["start"] <= e["time"] <= rec["end"]]
    assert day_idx
    picks = sorted(set(day_idx) | {0, 1, size // 2, size - 2, size - 1})
    for i in picks:
        v = get_json(c, "/v1/audit/proof/inclusion?index=%d&size=%d" %
                     (i, size))
        assert v["index"] == i and v["tree_size"] == size, v
        assert v["entry"] == rows[i][1], (i, v)
        assert unhex(v["leaf_hash"]) == leaves[i]
        assert unhex(v["root"]) == root
        p = unhex_list(v["proof"])
        assert p == path(i, leaves), "not RFC 6962's PATH(%d, D[%d])" % (
            i, size)
        assert verify_inclusion(leaves[i], i, size, p, root), i
        # an edited entry, or the proof of another, does not verify
        edited = dict(rows[i][1], actor="mallory@example.org")
        assert not verify_inclusion(entry_leaf(edited), i, size, p, root)
        assert not verify_inclusion(leaves[i], i ^ 1, size, p, root) or \
            size == 1
    # alice's accepted mail, proved
    if svc == "mailsrv":
        acc = [i for i, e in rows if e["action"] == "mail.accept" and
               e["actor"] == ALICE]
        assert len(acc) == 2 and set(acc) <= set(picks)
    # the default size is the whole log now
    v = get_json(c, "/v1/audit/proof/inclusion?index=0")
    assert v["tree_size"] >= size
    assert verify_inclusion(leaves[0], 0, v["tree_size"],
                            unhex_list(v["proof"]), unhex(v["root"]))


@pytest.mark.parametrize("svc", SERVICES)
def test_consistency_between_two_checkpoints_with_own_code(day, cps, svc):
    """RFC 9162 2.1.4.2 between the two signed checkpoints, and between
    sizes whose roots this test computed itself."""
    node, _ = day
    c = api(node, svc)
    cp1, cp2 = cps[svc]
    m, n = cp1["size"], cp2["size"]
    assert n - m >= 1000, (m, n)
    leaves = [entry_leaf(e) for _, e in entries(c, 0, n)]
    r1, r2 = unhex(cp1["root"]), unhex(cp2["root"])
    assert root_of(leaves[:m]) == r1
    assert root_of(leaves) == r2
    v = get_json(c, "/v1/audit/proof/consistency?from=%d&to=%d" % (m, n))
    assert (v["size1"], v["size2"]) == (m, n), v
    assert (unhex(v["root1"]), unhex(v["root2"])) == (r1, r2), v
    p = unhex_list(v["proof"])
    assert p == proof(m, leaves), "not RFC 6962's PROOF(%d, D[%d])" % (m, n)
    assert verify_consistency(m, n, r1, r2, p)
    assert not verify_consistency(m, n, r1, bytes(32), p)
    assert not verify_consistency(m, n, bytes(32), r2, p)
    assert not verify_consistency(m, n, r1, r2, p[:-1])
    # other sizes, roots computed here from the entries
    for a, b in ((1, n), (m // 2 or 1, m), (m, m + 1), (m + 1, n - 1),
                 (n - 1, n), (n, n)):
        v = get_json(c, "/v1/audit/proof/consistency?from=%d&to=%d" %
                     (a, b))
        ra, rb = root_of(leaves[:a]), root_of(leaves[:b])
        assert (unhex(v["root1"]), unhex(v["root2"])) == (ra, rb), (a, b)
        assert verify_consistency(a, b, ra, rb, unhex_list(v["proof"])), \
            (a, b)
    # beyond the log: refused
    big = size_of(c) + 10
    r = c.get("/v1/audit/proof/consistency?from=1&to=%d" % big)
    assert r.status == 400, r


# ---------------------------------------------------------------- export

def offline_env(tmp_path):
    """No config, no HOME state: only PATH and the sanitizer options."""
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LANG")}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1")
    env["HOME"] = str(tmp_path)
    return env


def verify_export(node, bundle, tmp_path, as_json=True):
    """`amanat [--json] audit verify-export FILE --ca CA` without a
    config, from an empty directory, in a network namespace of its own
    (no network at all) when unshare(1) allows it."""
    from amanat_node import build_path, sanitizer_lines
    cwd = tmp_path / "offline"
    cwd.mkdir(exist_ok=True)
    ca = str(cwd / "ca.pem")
    shutil.copy(node.ca, ca)
    args = [build_path("amanat")] + (["--json"] if as_json else []) + \
        ["audit", "verify-export", str(bundle), "--ca", ca]
    pre = []
    if shutil.which("unshare") and subprocess.run(
            ["unshare", "-n", "true"], capture_output=True).returncode == 0:
        pre = ["unshare", "-n"]
    r = subprocess.run(pre + args, capture_output=True, text=True,
                       cwd=str(cwd), env=offline_env(tmp_path), timeout=120,
                       stdin=subprocess.DEVNULL)
    assert not sanitizer_lines(r.stderr), r.stderr
    out = None
    if as_json and r.stdout.strip():
        out = json.loads(r.stdout)
    return r, out


def export(node, svc, frm, to, out):
    r = amanat(node, "audit", "export", "--service", svc, "--from",
               str(frm), "--to", str(to), "--out", str(out))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert oct(os.stat(out).st_mode & 0o777) == "0o600"
    with open(out) as f:
        return json.load(f)


def write_bundle(path, b):
    with open(path, "w") as f:
        json.dump(b, f)
    return path


def test_export_verifies_offline_and_with_own_code(day, cps, tmp_path):
    node, _ = day
    n = cps["keyservice"][1]["size"]
    assert n > 1000     # exported in pieces, pinned to one checkpoint
    f = tmp_path / "ks.json"
    b = export(node, "keyservice", 0, n, f)
    assert b["format"] == "amanat-audit-export-v1"
    assert (b["from"], b["to"], len(b["entries"])) == (0, n, n)
    assert b["checkpoint"]["size"] >= n
    r, out = verify_export(node, f, tmp_path)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert out["ok"] is True and out["count"] == n and \
        out["bad_index"] is None, out
    assert out["signer"] == "sign:keyservice", out
    r, _ = verify_export(node, f, tmp_path, as_json=False)
    assert r.returncode == 0 and "ok, %d entries" % n in r.stdout, r.stdout
    assert check_bundle(b, node.ca) == ([], None)
    # the entries are those the API serves
    c = api(node, "keyservice")
    assert [x["entry"] for x in b["entries"][:50]] == \
        [e for _, e in entries(c, 0, 50)]
    # a part of a log, of mailsrv
    m = cps["mailsrv"][1]["size"]
    f2 = tmp_path / "ms.json"
    b2 = export(node, "mailsrv", 1, m - 1, f2)
    r, out = verify_export(node, f2, tmp_path)
    assert r.returncode == 0 and out["ok"], (r.stdout, r.stderr)
    assert out["signer"] == "sign:mailsrv" and out["from"] == 1
    assert check_bundle(b2, node.ca) == ([], None)
    # the CLI does not overwrite a file
    r = amanat(node, "audit", "export", "--service", "mailsrv", "--from",
               "0", "--to", "1", "--out", str(f2))
    assert r.returncode != 0 and "exists" in r.stderr, r.stderr


def test_export_edited_fails_naming_the_entry(day, cps, tmp_path):
    node, _ = day
    n = min(cps["keyservice"][1]["size"], 200)
    orig = export(node, "keyservice", 10, n, tmp_path / "orig.json")

    def expect_bad(b, idx, name, words):
        f = write_bundle(tmp_path / (name + ".json"), b)
        r, out = verify_export(node, f, tmp_path)
        assert r.returncode == 1, (name, r.stdout, r.stderr)
        assert out["ok"] is False and out["bad_index"] == idx, (name, out)
        r, _ = verify_export(node, f, tmp_path, as_json=False)
        assert r.returncode == 1
        for w in words:
            assert w in r.stderr, (name, r.stderr)
        probs, bad = check_bundle(b, node.ca)
        assert probs and bad == idx, (name, probs, bad)

    # one entry's actor changed
    b = copy.deepcopy(orig)
    b["entries"][5]["entry"]["actor"] = "mallory@example.org"
    expect_bad(b, 15, "actor", ["entry 15"])
    # one character of one entry's object
    b = copy.deepcopy(orig)
    k = next(k for k in range(40, len(b["entries"]))
             if b["entries"][k]["entry"]["object"])
    e = b["entries"][k]["entry"]
    e["object"] = e["object"][:-1] + chr(ord(e["object"][-1]) ^ 1)
    expect_bad(b, 10 + k, "object", ["entry %d" % (10 + k)])
    # one entry's outcome
    b = copy.deepcopy(orig)
    b["entries"][0]["entry"]["outcome"] = "denied" if \
        b["entries"][0]["entry"]["outcome"] == "ok" else "ok"
    expect_bad(b, 10, "outcome", ["entry 10"])
    # an entry removed from the middle
    b = copy.deepcopy(orig)
    del b["entries"][20]
    expect_bad(b, 30, "removed", ["entry 30"])
    # the last entry removed ("to" still says it is there)
    b = copy.deepcopy(orig)
    del b["entries"][-1]
    expect_bad(b, n - 1, "truncated", ["%d" % (n - 1)])
    # a proof hash changed
    b = copy.deepcopy(orig)
    pr = b["entries"][7]["proof"]
    pr[0] = ("0" if pr[0][0] != "0" else "1") + pr[0][1:]
    expect_bad(b, 17, "proof", ["entry 17"])

    # the checkpoint itself: root or time changed, or another signature
    for name, edit in (("root", lambda cp: cp.update(root="%064x" % 7)),
                       ("time", lambda cp: cp.update(time=cp["time"] + 1)),
                       ("sig", lambda cp: cp.update(
                           signature=base64.b64encode(bytes(64)).decode()))):
        b = copy.deepcopy(orig)
        edit(b["checkpoint"])
        f = write_bundle(tmp_path / ("cp-%s.json" % name), b)
        r, out = verify_export(node, f, tmp_path)
        assert r.returncode == 1 and out["ok"] is False, (name, r.stdout)
        assert check_bundle(b, node.ca)[0], name
    # a bundle with the entries of one log but the checkpoint of the other
    b = copy.deepcopy(orig)
    b["checkpoint"] = checkpoint(api(node, "mailsrv"))
    f = write_bundle(tmp_path / "swapped.json", b)
    r, out = verify_export(node, f, tmp_path)
    assert r.returncode == 1 and out["ok"] is False, r.stdout
    # the untouched bundle still passes (nothing above was shared)
    f = write_bundle(tmp_path / "again.json", orig)
    r, out = verify_export(node, f, tmp_path)
    assert r.returncode == 0 and out["ok"], (r.stdout, r.stderr)


def test_export_against_another_ca_fails(day, cps, tmp_path):
    """The bundle's checkpoint must chain to the CA given: a CA made here
    does not vouch for it."""
    node, _ = day
    f = tmp_path / "b.json"
    export(node, "keyservice", 0, 5, f)
    other = tmp_path / "other-ca.pem"
    key = tmp_path / "other-ca.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ed25519",
                    "-nodes", "-keyout", str(key), "-out", str(other),
                    "-subj", "/CN=Other CA", "-days", "2"], check=True,
                   capture_output=True, timeout=60)
    from amanat_node import build_path
    r = subprocess.run([build_path("amanat"), "audit", "verify-export",
                        str(f), "--ca", str(other)], capture_output=True,
                       text=True, env=offline_env(tmp_path), timeout=60)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "CA" in r.stderr, r.stderr
    with open(f) as fh:
        probs, _ = check_bundle(json.load(fh), str(other))
    assert probs


def test_datakeys_helper_entries_are_in_the_log(day):
    """The volume generator the tests rely on: each 200 has its entry
    (object = the request's context)."""
    node, _ = day
    ok, errors = datakeys(node, 40, "helper")
    assert not errors and len(ok) == 40, errors
    c = api(node, "keyservice")
    got = {e["object"] for _, e in entries(
        c, max(0, size_of(c) - 200), None, "&action=key.datakey")}
    assert set(ok) <= got
