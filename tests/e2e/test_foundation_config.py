"""
Configuration checking (-n) by every daemon: OK, unknown key, value out of
range, a private key file others may read; the start-up refuses the same.
"""
import os
import subprocess

import pytest

from amanat_node import DAEMONS, build_path, daemon_env, require_binaries


@pytest.fixture
def inited(make_node):
    """An initialised node (keys, CA, certificate), no daemon running."""
    return make_node(daemons=())


def check(node, daemon, path):
    require_binaries([daemon])
    return subprocess.run([build_path(daemon), "-n", "-c", path],
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, cwd=node.dir, env=daemon_env(),
                          timeout=60)


def assert_refused_at(r, path, line, *words):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    prefix = "%s:%d:" % (path, line)
    assert r.stderr.startswith(prefix), \
        "want stderr starting %r, got %r" % (prefix, r.stderr)
    assert "configuration OK" not in r.stdout
    low = r.stderr.lower()
    for w in words:
        assert w.lower() in low, r.stderr


@pytest.mark.parametrize("daemon", DAEMONS)
def test_valid_config_ok(inited, daemon):
    r = check(inited, daemon, inited.conf)
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stdout, r.stdout
    assert r.stderr.strip() == "" or "error" not in r.stderr.lower(), \
        r.stderr


@pytest.mark.parametrize("daemon", DAEMONS)
def test_unknown_key(inited, daemon):
    path = os.path.join(inited.dir, "unknown.conf")
    lines = inited.config_with({daemon: {"no_such_knob": "1"}}, path)
    r = check(inited, daemon, path)
    assert_refused_at(r, path, lines[(daemon, "no_such_knob")],
                      "no_such_knob")


@pytest.mark.parametrize("daemon", DAEMONS)
def test_unknown_key_in_other_section(inited, daemon):
    """Every daemon validates the whole file."""
    other = "mailsrv" if daemon != "mailsrv" else "docstore"
    path = os.path.join(inited.dir, "unknown2.conf")
    lines = inited.config_with({other: {"no_such_knob": "1"}}, path)
    r = check(inited, daemon, path)
    assert_refused_at(r, path, lines[(other, "no_such_knob")])


@pytest.mark.parametrize("daemon", DAEMONS)
def test_out_of_range(inited, daemon):
    path = os.path.join(inited.dir, "range.conf")
    lines = inited.config_with({daemon: {"max_connections": "0"}}, path)
    r = check(inited, daemon, path)
    assert_refused_at(r, path, lines[(daemon, "max_connections")], "range")


@pytest.mark.parametrize("daemon", DAEMONS)
def test_out_of_range_mailsrv_section(inited, daemon):
    path = os.path.join(inited.dir, "range2.conf")
    lines = inited.config_with({"mailsrv": {"max_connections": "0"}}, path)
    r = check(inited, daemon, path)
    assert_refused_at(r, path, lines[("mailsrv", "max_connections")])


@pytest.mark.parametrize("daemon", DAEMONS)
def test_world_readable_key(inited, daemon):
    assert inited.lines[("tls", "key")] > 0
    os.chmod(inited.key, 0o644)
    r = check(inited, daemon, inited.conf)
    assert_refused_at(r, inited.conf, inited.lines[("tls", "key")])


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_group_or_other_accessible_key(inited, mode):
    os.chmod(inited.key, mode)
    r = check(inited, "mailsrv", inited.conf)
    assert_refused_at(r, inited.conf, inited.lines[("tls", "key")])


def test_world_readable_master_key(inited):
    mk = os.path.join(inited.dir, "keys", "master.key")
    assert os.path.exists(mk)
    assert os.stat(mk).st_mode & 0o077 == 0, oct(os.stat(mk).st_mode)
    os.chmod(mk, 0o644)
    path = os.path.join(inited.dir, "mk.conf")
    lines = inited.config_with({"keyservice": {"master_key":
                                               "keys/master.key"}}, path)
    r = check(inited, "keyservice", path)
    assert_refused_at(r, path, lines[("keyservice", "master_key")])


def test_init_key_files_are_private(inited):
    for p in (inited.key, os.path.join(inited.dir, "keys", "master.key")):
        st = os.stat(p)
        assert st.st_mode & 0o077 == 0, "%s mode %o" % (p, st.st_mode)


def test_init_refuses_to_run_twice(inited):
    with open(inited.ca, "rb") as f:
        before = f.read()
    r = inited.run("keyservice", "-c", inited.conf, "--init")
    assert r.returncode != 0, r.stdout + r.stderr
    with open(inited.ca, "rb") as f:
        assert f.read() == before


@pytest.mark.parametrize("daemon", DAEMONS)
def test_start_refused_with_world_readable_key(inited, daemon):
    """Not only -n: the daemon itself refuses to start (exit 2)."""
    os.chmod(inited.key, 0o644)
    r = inited.run(daemon, "-c", inited.conf, timeout=20)
    assert_refused_at(r, inited.conf, inited.lines[("tls", "key")])
