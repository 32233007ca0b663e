"""
keyservice --init --demo outputs: file modes (demo-users.txt, the master
key and every private key 0600 in 0700 directories), no CA private key on
disk, and keyservice refusing to start (exit 2, "file:line: message") when
the master key is readable by others.
"""
import hashlib
import os
import stat
import subprocess

import pytest

from amanat_node import Node, build_path, daemon_env
from ks_client import KS, demo_users, finish, overrides

# the master key named in the config, so that errors carry its line
MASTER = {"keyservice": {"master_key": "keys/master.key"}}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = Node(tmp_path_factory.mktemp("ksinit"), overrides(MASTER))
    n.init(demo=True)
    yield n
    finish(n)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def run_keyservice(node, *args, timeout=60):
    return subprocess.run([build_path("keyservice"), "-c", node.conf] +
                          list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, cwd=node.dir,
                          env=daemon_env(), timeout=timeout)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_secret_files_are_private(node):
    d = node.dir
    for rel in ("demo-users.txt", "keys/master.key", "tls/server.key",
                "clients/admin.key", "clients/mailsrv.key",
                "clients/docstore.key"):
        p = os.path.join(d, rel)
        assert os.path.isfile(p), rel
        assert mode(p) == 0o600, "%s is %03o" % (rel, mode(p))
    for rel in ("keys", "tls", "clients", "keyservice", "keyservice/db"):
        assert mode(os.path.join(d, rel)) & 0o077 == 0, rel
    for f in os.listdir(os.path.join(d, "keyservice", "db")):
        p = os.path.join(d, "keyservice", "db", f)
        assert mode(p) & 0o077 == 0, "%s is %03o" % (f, mode(p))
    assert os.path.getsize(os.path.join(d, "keys", "master.key")) == 32
    # public files are readable
    for rel in ("ca.pem", "tls/server.pem", "clients/admin.pem"):
        assert mode(os.path.join(d, rel)) & 0o444, rel


def test_demo_users_file(node):
    users = demo_users(node)
    assert sorted(users) == sorted([
        "alice@finance.amanat.test", "bob@finance.amanat.test",
        "fatima@finance.amanat.test", "sofia@finance.amanat.test",
        "postmaster@finance.amanat.test",
        "carol@health.amanat.test", "dave@health.amanat.test",
        "hamid@health.amanat.test", "postmaster@health.amanat.test"])
    assert "dept-admin" in users["fatima@finance.amanat.test"][1]
    assert "dept-admin" in users["hamid@health.amanat.test"][1]
    assert "security-officer" in users["sofia@finance.amanat.test"][1]
    pws = [pw for pw, _ in users.values()]
    assert len(set(pws)) == len(pws)
    assert all(len(pw) >= 16 for pw in pws)


def test_only_expected_private_keys_on_disk(node):
    """The CA key (and every user key) is stored wrapped only: the PEM
    private keys on disk are the server's and the three clients'."""
    r = subprocess.run(["grep", "-r", "-l", "-a", "PRIVATE KEY", node.dir],
                       capture_output=True, text=True, timeout=60)
    found = sorted(os.path.relpath(p, node.dir)
                   for p in r.stdout.split())
    assert found == ["clients/admin.key", "clients/docstore.key",
                     "clients/mailsrv.key", "tls/server.key"], found
    with open(node.ca) as f:
        assert "PRIVATE" not in f.read()


def test_init_refuses_to_run_twice(node):
    before = sha(os.path.join(node.dir, "keys", "master.key"))
    ca = sha(node.ca)
    r = run_keyservice(node, "--init", "--demo")
    assert r.returncode != 0
    assert "already initialised" in r.stdout + r.stderr
    assert sha(os.path.join(node.dir, "keys", "master.key")) == before
    assert sha(node.ca) == ca


def test_demo_needs_init(node):
    r = run_keyservice(node, "--demo")
    assert r.returncode != 0
    assert "usage" in (r.stdout + r.stderr).lower()


@pytest.mark.parametrize("bad_mode", [0o644, 0o640, 0o604])
def test_refuses_exposed_master_key(node, bad_mode):
    key = os.path.join(node.dir, "keys", "master.key")
    line = node.lines[("keyservice", "master_key")]
    os.chmod(key, bad_mode)
    try:
        r = run_keyservice(node)
    finally:
        os.chmod(key, 0o600)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    err = r.stderr
    assert "%s:%d:" % (node.conf, line) in err or \
        "amanat.conf:%d:" % line in err, err
    assert "master_key" in err and "master.key" in err, err
    assert "%03o" % bad_mode in err, err
    # no listener was opened
    assert "listening" not in r.stdout + r.stderr


def test_refuses_exposed_master_key_default_path(node, tmp_path):
    """Without master_key in the config (the default path) the message
    still names the knob and the file."""
    conf = str(tmp_path / "default.conf")
    sections = {s: dict(k) for s, k in node.sections.items()}
    sections["keyservice"].pop("master_key")
    node.write_config(sections, conf)
    key = os.path.join(node.dir, "keys", "master.key")
    os.chmod(key, 0o644)
    try:
        r = subprocess.run([build_path("keyservice"), "-c", conf],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, cwd=node.dir, env=daemon_env(),
                           timeout=60)
    finally:
        os.chmod(key, 0o600)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "master_key" in r.stderr and "chmod 600" in r.stderr, r.stderr


def test_starts_with_private_master_key(node):
    """After all the refusals, with 0600 the node starts and serves."""
    assert mode(os.path.join(node.dir, "keys", "master.key")) == 0o600
    node.start(("keyservice",))
    r = KS(node, "admin").get("/v1/depts")
    assert r.status == 200, r
    assert sorted(d["name"] for d in r.json["depts"]) == ["finance",
                                                          "health"]
