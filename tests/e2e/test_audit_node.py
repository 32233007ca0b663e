"""
test_audit_node.py -- helpers of the audit end-to-end tests
(test_audit_*.py); no tests of its own.

A demo node (a copy of the session's `keyservice --init --demo` template,
smtp_util.demo_template) runs keyservice and mailsrv.  The security
officer of the demo directory, sofia@finance.amanat.test, gets a client
certificate from the admin (`amanat cert issue --client`), and reads the
audit API (common/auditsvc.h) of keyservice (its API port) and mailsrv
([mailsrv] api_listen) with it, over ks_client.KS connections.

Entries are made in volume with POST /v1/keys/datakey as mailsrv's client
certificate (each answered 200 only once its "key.datakey" entry, whose
object is the request's context, is durable), which is also how the tests
get a second checkpoint quickly: one is due every 1000 entries (or 60 s),
checked every AUDITSVC_TICK_MS (5 s).

The tamper tool tests/tools/audit_tamper.c is built here on first use,
like smtp_util.store_dump_tool (or taken from $AMANAT_BUILD/tools/ when
the Makefile's tools target made it).
"""
import atexit
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from amanat_node import BUILD, REPO, Node, daemon_env, sanitizer_lines
from ks_client import KS, demo_users
from smtp_util import SOFIA, clone_demo, mail_overrides, start_mailsrv

TICK = 5.0                      # AUDITSVC_TICK_MS
CP_ENTRIES = 1000               # AUDIT_CHECKPOINT_ENTRIES
PAGE = 1000                     # AUDIT_QUERY_LIMIT_MAX
SERVICES = ("keyservice", "mailsrv")
API_PORT = {"keyservice": "keyservice", "mailsrv": "mailsrv_api"}


# ---------------------------------------------------------------- node

def start_audit_node(tmpdir, daemons=("keyservice", "mailsrv")):
    """A demo node (template copy) running daemons; node.users holds the
    demo users and node.officer sofia's (cert, key)."""
    node = Node(tmpdir, mail_overrides())
    clone_demo(node)
    try:
        node.start(("keyservice",))
        if "mailsrv" in daemons:
            start_mailsrv(node)
        node.users = demo_users(node)
        node.officer = client_cert(node, SOFIA)
    except BaseException:
        node.stop_all()
        raise
    return node


def finish(node):
    problems = node.stop_all()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def client_cert(node, cn):
    """A client certificate for cn issued by the admin through the CLI
    (`amanat cert issue --client`); (cert, key) paths in the node dir."""
    d = os.path.join(node.dir, "clients")
    name = cn.replace("@", "_at_")
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    if not os.path.exists(cert):
        r = node.run("amanat", "-c", node.conf, "cert", "issue", "--client",
                     cn, "--out-cert", cert, "--out-key", key)
        assert r.returncode == 0, (r.stdout, r.stderr)
    return cert, key


def amanat(node, *args, cert=None, timeout=120, env=None):
    """Run the CLI with the node config, as the officer by default."""
    cert = node.officer if cert is None else cert
    pre = ["-c", node.conf]
    if cert:
        pre += ["--cert", cert[0], "--key", cert[1]]
    r = node.run("amanat", *(pre + list(args)), timeout=timeout,
                 env=env or daemon_env())
    san = sanitizer_lines(r.stderr)
    assert not san, "amanat %s: sanitizer reports:\n%s" % (args, r.stderr)
    return r


def audit_json(node, *args, **kw):
    """`amanat --json audit ...` as the officer: (CompletedProcess, JSON)."""
    r = amanat(node, "--json", "audit", *args, **kw)
    try:
        out = json.loads(r.stdout) if r.stdout.strip() else None
    except ValueError:
        out = None
    return r, out


# ---------------------------------------------------------------- API

def api(node, service, who=None):
    """A KS client of the service's audit API (sofia by default)."""
    c = KS(node, who or node.officer)
    c.port = node.port(API_PORT[service])
    return c


def get_json(c, target):
    r = c.get(target)
    assert r.status == 200, (target, r)
    return r.json


def checkpoint(c):
    """The latest checkpoint, or None before the first one."""
    r = c.get("/v1/audit/checkpoint")
    if r.status == 404:
        return None
    assert r.status == 200, r
    return r.json


def wait_checkpoint(c, min_size=1, timeout=3 * TICK + 10):
    """Poll (every second: each poll is itself an entry) until the
    latest checkpoint covers min_size entries."""
    deadline = time.monotonic() + timeout
    while True:
        cp = checkpoint(c)
        if cp is not None and cp["size"] >= min_size:
            return cp
        if time.monotonic() > deadline:
            pytest.fail("no checkpoint of size >= %d after %.0fs (latest "
                        "%r)" % (min_size, timeout, cp), pytrace=False)
        time.sleep(1.0)


def size_of(c):
    return get_json(c, "/v1/audit/entries?limit=1&order=desc")["size"]


def entries(c, start=0, stop=None, query=""):
    """[(index, entry)] of [start, stop) (stop None: to the end), in
    pages of PAGE, in index order; query: more "&name=value"."""
    out = []
    k = start
    while stop is None or k < stop:
        lim = PAGE if stop is None else min(PAGE, stop - k)
        v = get_json(c, "/v1/audit/entries?order=asc&start=%d&limit=%d%s"
                     % (k, lim, query))
        for x in v["entries"]:
            if stop is not None and x["index"] >= stop:
                break
            out.append((x["index"], x["entry"]))
        if v["next"] is None:
            break
        k = v["next"]
    return out


# ---------------------------------------------------------------- volume

def datakeys(node, n, prefix, threads=4, key_id="finance", stop=None,
             ok=None, errors=None):
    """
    n datakey requests (fewer when stop, a threading.Event, is set) as
    mailsrv, context "<prefix>:<thread>:<i>", over `threads` keep-alive
    connections.  Returns (contexts answered 200, errors), the lists ok
    and errors if given (appended to as answers come): an error ends its
    thread (a killed daemon).
    """
    ok = [] if ok is None else ok
    errors = [] if errors is None else errors
    lock = threading.Lock()

    def worker(t):
        c = KS(node, "mailsrv", timeout=30)
        try:
            for i in range(t, n, threads):
                if stop is not None and stop.is_set():
                    return
                ctx = "%s:%d:%d" % (prefix, t, i)
                try:
                    r = c.post("/v1/keys/datakey", {"key_id": key_id,
                                                    "context": ctx})
                except Exception as e:  # noqa: BLE001 (a killed daemon)
                    with lock:
                        errors.append("%s: %s" % (ctx, e))
                    return
                with lock:
                    if r.status == 200:
                        ok.append(ctx)
                    else:
                        errors.append("%s: %r" % (ctx, r))
                if r.status != 200:
                    return
        finally:
            c.reset()

    ts = [threading.Thread(target=worker, args=(t,)) for t in
          range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return ok, errors


def queries(node, service, n, threads=4):
    """n audit API calls (GET /v1/audit/checkpoint) as the officer: n
    "audit.query" entries in the service's log."""
    errors = []

    def worker(t):
        c = api(node, service)
        try:
            for _ in range(t, n, threads):
                r = c.get("/v1/audit/checkpoint")
                if r.status not in (200, 404):
                    errors.append(repr(r))
                    return
        finally:
            c.reset()

    ts = [threading.Thread(target=worker, args=(t,)) for t in
          range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:5]


def next_checkpoint(node, c, service):
    """A checkpoint covering every entry of now: 1000 more entries
    (datakeys for keyservice, audit queries for mailsrv) make one due,
    then the next tick signs it."""
    size = size_of(c)
    cp = checkpoint(c)
    if cp is None or cp["size"] < size:
        if service == "keyservice":
            ok, errors = datakeys(node, CP_ENTRIES, "filler-%d" % size)
            assert not errors, errors[:5]
        else:
            queries(node, service, CP_ENTRIES)
    return wait_checkpoint(c, size)


# ---------------------------------------------------------------- tool

_TOOL = {}
_TOOL_LOCK = threading.Lock()
PKGS = ["openssl", "libevent", "libevent_openssl", "libevent_pthreads",
        "jansson", "lmdb", "libargon2", "zlib", "libbsd"]


def tamper_tool():
    """Path of tests/tools/audit_tamper for this build (built once)."""
    with _TOOL_LOCK:
        if "path" in _TOOL:
            return _TOOL["path"]
        src = os.path.join(REPO, "tests", "tools", "audit_tamper.c")
        lib = os.path.join(BUILD, "libcommon.a")
        if not os.path.exists(lib):
            pytest.fail("not built: %s (run make)" % lib, pytrace=False)
        made = os.path.join(BUILD, "tools", "audit_tamper")
        if os.access(made, os.X_OK) and os.path.getmtime(made) >= max(
                os.path.getmtime(lib), os.path.getmtime(src)):
            _TOOL["path"] = made
            return made
        tmp = tempfile.mkdtemp(prefix="amanat-tools-")
        atexit.register(shutil.rmtree, tmp, True)
        out = os.path.join(tmp, "audit_tamper")
        pc = subprocess.run(["pkg-config", "--cflags", "--libs"] + PKGS,
                            capture_output=True, text=True, check=True)
        flags = ["-std=c11", "-D_GNU_SOURCE", "-g", "-O1", "-pthread",
                 "-I" + REPO]
        with open(lib, "rb") as f:
            if b"__asan_" in f.read():
                flags += ["-fsanitize=address,undefined",
                          "-fno-omit-frame-pointer"]
        cc = os.environ.get("CC", "cc")
        r = subprocess.run([cc] + flags + [src, "-o", out, lib] +
                           pc.stdout.split() + ["-lpthread"],
                           capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            pytest.fail("cannot build audit_tamper:\n%s%s" %
                        (r.stdout, r.stderr), pytrace=False)
        _TOOL["path"] = out
        return out


def tamper(*args, input=None):
    """Run audit_tamper; CompletedProcess (bytes)."""
    r = subprocess.run([tamper_tool()] + list(args), input=input,
                       capture_output=True, env=daemon_env(), timeout=120)
    san = sanitizer_lines(r.stderr.decode("utf-8", "replace"))
    assert not san, "audit_tamper %s: sanitizer reports:\n%s" % (
        args, r.stderr.decode("utf-8", "replace"))
    return r


def audit_dir(node, service="keyservice"):
    return os.path.join(node.dir, service, "audit")

