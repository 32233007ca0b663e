"""
test_audit_tamper.py -- someone with the disk edits keyservice's audit log
while the daemon is stopped (tests/tools/audit_tamper.c rewrites one
stored entry in the LMDB file; an older copy of the whole audit directory
is put back), and `amanat audit verify` finds it:

- one byte changed in one entry (the entry still JSON, or not) makes
  verify fail and name that entry, with a saved state or without one;
  the project's offline full check (audit_verify_all, through the tool)
  names it too; putting the byte back makes the log verify again;
- removing the newest entries (an older copy of the log restored, then
  even grown again past the removed part) is detected against the
  checkpoint a previous `amanat audit verify --state DIR` run saved,
  and by this test's own consistency check (test_audit_rfc6962.py).
"""
import json
import os
import shutil

import pytest

from test_audit_node import (amanat, api, audit_dir, audit_json, checkpoint,
                             datakeys, entries, finish, next_checkpoint,
                             start_audit_node, tamper, wait_checkpoint)
from test_audit_rfc6962 import (check_checkpoint, entry_leaf, root_of, unhex,
                                unhex_list, verify_consistency)

KS = ["--service", "keyservice"]


@pytest.fixture(scope="module")
def ks(tmp_path_factory):
    """A demo node running keyservice only, with 60 datakey entries and
    a signed checkpoint covering them."""
    node = start_audit_node(tmp_path_factory.mktemp("audit-tamper"),
                            daemons=("keyservice",))
    try:
        ok, errors = datakeys(node, 60, "pre")
        assert not errors, errors[:3]
        c = api(node, "keyservice")
        node.cp0 = wait_checkpoint(c, 60)
        c.reset()
        node.state = os.path.join(node.dir, "verifier-state")
    except BaseException:
        node.stop_all()
        raise
    yield node
    finish(node)


def verify(node, state=None, *more):
    """`amanat --json audit verify --service keyservice --state DIR
    [more...]` (a fresh state directory when None): (rc, report of
    keyservice, stderr)."""
    if state is None:
        state = os.path.join(node.dir, "fresh-%d" % len(os.listdir(
            node.dir)))
    r, out = audit_json(node, "verify", *KS, "--state", state, *more)
    assert isinstance(out, list) and len(out) == 1, (r.stdout, r.stderr)
    return r.returncode, out[0], r.stderr


def with_stopped(node, fn):
    """Run fn with keyservice stopped (SIGTERM, checked), then start it."""
    problems = node.stop("keyservice")[1]
    assert not problems, problems
    try:
        return fn()
    finally:
        node.start(("keyservice",))


def get_entry(node, idx):
    r = tamper(audit_dir(node), "get", str(idx))
    assert r.returncode == 0, r.stderr
    return r.stdout


def put_entry(node, idx, data):
    r = tamper(audit_dir(node), "put", str(idx), input=data)
    assert r.returncode == 0, r.stderr


def offline_check(node):
    """The tool's audit_verify_all() over the log: its stdout."""
    cert = os.path.join(node.dir, "sign-keyservice.pem")
    with open(cert, "w") as f:
        f.write(checkpoint(api(node, "keyservice"))["certificate"])
    r = tamper(audit_dir(node), "verify", "e2e", "keyservice", cert)
    return r.returncode, r.stdout.decode()


def flip_in_string(data, key):
    """data with one byte of the string value of key changed, still
    JSON: a letter or digit of the value XOR 1."""
    needle = b'"%s":"' % key.encode()
    i = data.index(needle) + len(needle)
    while not chr(data[i]).isalnum():
        i += 1
    out = data[:i] + bytes([data[i] ^ 1]) + data[i + 1:]
    json.loads(out)
    assert out != data
    return out


def test_verify_passes_and_saves_state(ks):
    rc, rep, err = verify(ks, ks.state)
    assert rc == 0, (rep, err)
    assert rep["ok"] is True and rep["bad_index"] is None, rep
    assert rep["checkpoint_size"] >= 60, rep
    saved = os.path.join(ks.state, "e2e", "keyservice.json")
    st = os.stat(saved)
    assert oct(st.st_mode & 0o777) == "0o600"
    with open(saved) as f:
        assert json.load(f)["checkpoint"]["size"] == rep["checkpoint_size"]
    rc, out = offline_check(ks)
    assert rc == 0 and out.startswith("ok "), out


@pytest.mark.parametrize("idx,how", [(5, "json"), (9, "not-json"),
                                     (0, "json")])
def test_one_byte_changed_is_named(ks, idx, how):
    """One byte of entry idx changed on disk, daemon stopped: verify
    fails naming idx (with the saved state and without), so does the
    offline full check; the byte put back, all verify again."""
    assert idx < ks.cp0["size"]
    orig = {}

    def edit():
        data = get_entry(ks, idx)
        orig["data"] = data
        if how == "json":
            new = flip_in_string(data, "object" if idx else "action")
        else:
            # the closing brace becomes a bracket: no longer JSON
            assert data.endswith(b"}")
            new = data[:-1] + b"]"
            with pytest.raises(ValueError):
                json.loads(new)
        assert len(new) == len(data) and sum(
            a != b for a, b in zip(new, data)) == 1
        put_entry(ks, idx, new)
        assert get_entry(ks, idx) == new

    with_stopped(ks, edit)
    for state in (ks.state, None):
        rc, rep, err = verify(ks, state)
        assert rc == 1, (rep, err)
        assert rep["ok"] is False and rep["bad_index"] == idx, rep
        assert "entry %d " % idx in rep["message"], rep
    # the table output says so too
    r = amanat(ks, "audit", "verify", *KS, "--state",
               os.path.join(ks.dir, "fresh-table"))
    assert r.returncode == 1 and "FAILED" in r.stdout and \
        "entry %d " % idx in r.stdout, (r.stdout, r.stderr)
    rc, out = offline_check(ks)
    assert rc == 5 and out.startswith("bad_index=%d " % idx), out
    # the byte put back: the log is whole again
    with_stopped(ks, lambda: put_entry(ks, idx, orig["data"]))
    rc, rep, err = verify(ks, ks.state)
    assert rc == 0 and rep["ok"], (rep, err)
    rc, out = offline_check(ks)
    assert rc == 0, out


def test_removed_newest_entries_detected_against_saved_checkpoint(ks):
    """An older copy of the log put back (the newest entries removed):
    verify with the saved state fails, and still fails once the log has
    grown past the removed part with a newly signed checkpoint."""
    c = api(ks, "keyservice")
    rc, rep, err = verify(ks, ks.state)
    assert rc == 0, (rep, err)
    old = os.path.join(ks.dir, "audit-copy")

    def take_copy():
        shutil.copytree(audit_dir(ks), old)

    with_stopped(ks, take_copy)
    c.reset()
    cp_b = next_checkpoint(ks, c, "keyservice")
    rc, rep, err = verify(ks, ks.state)
    assert rc == 0 and rep["previous_size"] > 0, (rep, err)
    saved_size = rep["checkpoint_size"]
    assert saved_size >= cp_b["size"]
    with open(os.path.join(ks.state, "e2e", "keyservice.json")) as f:
        saved = json.load(f)["checkpoint"]

    def restore():
        shutil.rmtree(audit_dir(ks))
        shutil.copytree(old, audit_dir(ks))

    with_stopped(ks, restore)
    c.reset()
    cp_now = checkpoint(c)
    assert cp_now["size"] < saved_size, cp_now
    for more in ((), ("--quick",)):
        rc, rep, err = verify(ks, ks.state, *more)
        assert rc == 1 and rep["ok"] is False, (more, rep, err)
        assert "removed" in rep["message"], rep
        assert "%d" % saved_size in rep["message"], rep

    # the intruder appends until a new checkpoint is past the old size
    while True:
        cp_c = next_checkpoint(ks, c, "keyservice")
        if cp_c["size"] > saved_size:
            break
        ok, errors = datakeys(ks, 1000, "grow-%d" % cp_c["size"])
        assert not errors
    assert check_checkpoint(cp_c, ks.ca, "keyservice") == []
    for more in ((), ("--quick",)):
        rc, rep, err = verify(ks, ks.state, *more)
        assert rc == 1 and rep["ok"] is False, (more, rep, err)
        assert "removed" in rep["message"] and \
            "not a prefix" in rep["message"], rep
    # this test's own check: the server's consistency proof from the
    # saved size does not lead from the saved root to the new one
    v = c.get("/v1/audit/proof/consistency?from=%d&to=%d" %
              (saved["size"], cp_c["size"])).json
    assert not verify_consistency(saved["size"], cp_c["size"],
                                  unhex(saved["root"]), unhex(cp_c["root"]),
                                  unhex_list(v["proof"]))
    # the saved state was not overwritten by the failures
    with open(os.path.join(ks.state, "e2e", "keyservice.json")) as f:
        assert json.load(f)["checkpoint"] == saved
    # a verifier with no memory sees a whole (shorter) log: the saved
    # checkpoint is what catches the removal
    rc, rep, err = verify(ks, None)
    assert rc == 0, (rep, err)
    rows = entries(c, 0, cp_c["size"])
    assert root_of([entry_leaf(e) for _, e in rows]) == unhex(cp_c["root"])
