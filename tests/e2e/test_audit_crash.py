"""
test_audit_crash.py -- kill -9 of keyservice during a stream of audited
actions (datakey requests as mailsrv from 8 connections, each answered
200 only once its "key.datakey" entry is durable; the entry's object is
the request's own context string).  After the restart:

- the log is a prefix of the appends: indexes 0..size-1 without a gap,
  and `amanat audit verify` passes over every entry, as does the
  project's offline full check (tests/tools/audit_tamper verify) and
  this test's own rehash of every entry into the signed root;
- every request that was answered 200 has its entry.
"""
import os
import threading
import time

import pytest

from test_audit_node import (api, audit_dir, audit_json, datakeys, entries,
                             finish, next_checkpoint,
                             start_audit_node, tamper)
from test_audit_rfc6962 import (check_checkpoint, entry_leaf, root_of,
                                unhex, unhex_list, verify_consistency)

ROUNDS = 2
THREADS = 8
BEFORE_KILL = 1500      # answers seen before the kill


@pytest.fixture
def ks(tmp_path):
    d = tmp_path / "node"
    d.mkdir()
    node = start_audit_node(d, daemons=("keyservice",))
    yield node
    finish(node)


def stream_then_kill(node, prefix):
    """Run the datakey stream, kill -9 keyservice once BEFORE_KILL
    answers came (while requests are in flight); returns the contexts
    answered 200."""
    ok, errors = [], []
    stop = threading.Event()
    t = threading.Thread(target=datakeys, args=(node, 10 ** 6, prefix),
                         kwargs={"threads": THREADS, "stop": stop,
                                 "ok": ok, "errors": errors})
    t.start()
    try:
        deadline = time.monotonic() + 60
        while len(ok) < BEFORE_KILL and not errors and t.is_alive():
            assert time.monotonic() < deadline, "stream too slow"
            time.sleep(0.01)
        assert not errors, errors[:3]
        in_flight = len(ok)
        assert node.kill9("keyservice") == -9
    finally:
        stop.set()
        t.join(timeout=60)
    assert not t.is_alive()
    assert len(ok) >= in_flight
    return list(ok)


def test_kill9_during_appends_log_verifies_and_keeps_every_answer(ks,
                                                                 tmp_path):
    state = str(tmp_path / "state")
    answered = set()
    prev = None
    for rnd in range(ROUNDS):
        prefix = "crash%d" % rnd
        ok = stream_then_kill(ks, prefix)
        answered |= set(ok)
        ks.start(("keyservice",))
        c = api(ks, "keyservice")
        rows = entries(c)
        assert [i for i, _ in rows] == list(range(len(rows))), \
            "the log has a gap after kill -9"
        objs = {e["object"] for _, e in rows if e["action"] == "key.datakey"}
        lost = answered - objs
        assert not lost, "%d answered requests have no entry, e.g. %s" % (
            len(lost), sorted(lost)[:5])
        # the entries of requests whose answer was lost are whole too
        mine = [e for _, e in rows if e["object"].startswith(prefix + ":")]
        assert len(mine) >= len(ok)
        assert all(e["outcome"] == "ok" and e["actor"] == "mailsrv"
                   for e in mine)
        # a signed checkpoint over everything the crash left, verified
        cp = next_checkpoint(ks, c, "keyservice")
        assert cp["size"] >= len(rows)
        assert check_checkpoint(cp, ks.ca, "keyservice") == []
        r, rep = audit_json(ks, "verify", "--service", "keyservice",
                            "--state", state)
        assert r.returncode == 0 and rep[0]["ok"], (r.stdout, r.stderr)
        assert rep[0]["checkpoint_size"] >= cp["size"], rep
        # this test's own rehash of every entry into the signed root
        all_rows = entries(c, 0, cp["size"])
        leaves = [entry_leaf(e) for _, e in all_rows]
        assert root_of(leaves) == unhex(cp["root"])
        if prev is not None:
            v = c.get("/v1/audit/proof/consistency?from=%d&to=%d" % (
                prev["size"], cp["size"])).json
            assert verify_consistency(prev["size"], cp["size"],
                                      unhex(prev["root"]), unhex(cp["root"]),
                                      unhex_list(v["proof"]))
        prev = cp
        c.reset()
    # the project's own full check of the stored bytes (read-only, while
    # keyservice runs)
    cert = os.path.join(ks.dir, "sign-keyservice.pem")
    with open(cert, "w") as f:
        f.write(prev["certificate"])
    r = tamper(audit_dir(ks), "verify", "e2e", "keyservice", cert)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.decode().startswith("ok "), r.stdout
    r = tamper(audit_dir(ks), "count")
    assert int(r.stdout) >= prev["size"]
