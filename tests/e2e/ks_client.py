"""
ks_client.py -- helpers for the keyservice end-to-end tests
(test_keyservice_*.py): a small mutual-TLS JSON client, client
certificates from CSRs, the demo users, openssl/curl wrappers, the wrapped
key format (keyservice/keys.h) and LMDB dumps (mdb_dump).

Stdlib only; the real tools (openssl, curl, mdb_dump) run as processes.
"""
import base64
import http.client
import json
import os
import re
import shutil
import ssl
import struct
import subprocess

import pytest

from amanat_node import Node

# Small Argon2 parameters: the tests are not about hashing cost.
FAST = {"keyservice": {"argon2_memory": "8M", "argon2_time": "1"}}

FINANCE = "finance.amanat.test"
HEALTH = "health.amanat.test"


def overrides(*more):
    """FAST merged with more {section: {key: value}} dicts."""
    out = {s: dict(k) for s, k in FAST.items()}
    for o in more:
        for sec, knobs in (o or {}).items():
            out.setdefault(sec, {}).update(knobs)
    return out


def start_ks_node(tmpdir, extra=None, demo=True):
    """A node running only keyservice, initialised (with --demo)."""
    node = Node(tmpdir, overrides(extra))
    node.init(demo=demo)
    try:
        node.start(("keyservice",))
    except BaseException:
        node.stop_all()
        raise
    return node


def finish(node):
    problems = node.stop_all()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# ---------------------------------------------------------------- client

class Reply:
    def __init__(self, status, body, headers):
        self.status = status
        self.raw = body
        self.headers = headers
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
        except ValueError:
            self.json = None

    @property
    def error(self):
        return (self.json or {}).get("error")

    def __repr__(self):
        return "<%d %s>" % (self.status, self.raw[:300])


class KS:
    """
    A keyservice API client presenting a client certificate: who is
    "admin", "mailsrv", "docstore" (made by --init), a (cert, key) pair of
    paths, or None (no certificate).

    Requests share one keep-alive connection (a new TLS connection costs
    a delayed-ACK round, ~40 ms, on the first request); fresh=True uses a
    new connection for one request.  After keyservice restarts, call
    reset() (a request on the dead connection fails: no silent retry).
    """

    def __init__(self, node, who="admin", timeout=60):
        self.node = node
        self.port = node.port("keyservice")
        self.timeout = timeout
        self.conn = None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                         cafile=node.ca)
        ctx.check_hostname = True
        if who is None:
            pass
        elif isinstance(who, str):
            ctx.load_cert_chain(*node.client_cert(who))
        else:
            ctx.load_cert_chain(*who)
        self.ctx = ctx

    def connect(self):
        return http.client.HTTPSConnection("127.0.0.1", self.port,
                                           context=self.ctx,
                                           timeout=self.timeout)

    def reset(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def request(self, method, path, body=None, raw=None,
                ctype="application/json", headers=None, fresh=False):
        """body: a JSON value (encoded); raw: bytes sent as is."""
        if body is not None:
            raw = json.dumps(body).encode()
        hdrs = dict(headers or {})
        if raw is not None and ctype is not None:
            hdrs["Content-Type"] = ctype
        if fresh:
            conn = self.connect()
        else:
            if self.conn is None:
                self.conn = self.connect()
            conn = self.conn
        try:
            conn.request(method, path, body=raw, headers=hdrs)
            r = conn.getresponse()
            reply = Reply(r.status, r.read(), dict(r.getheaders()))
            if r.will_close:
                conn.close()
            return reply
        except BaseException:
            conn.close()
            raise
        finally:
            if fresh:
                conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        if body is None and "raw" not in kw:
            body = {}
        return self.request("POST", path, body, **kw)

    def patch(self, path, body, **kw):
        return self.request("PATCH", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def healthz(self):
        return self.get("/healthz")


def check_error(r, status, code=None):
    """r is an error reply with status, JSON {"error", "message"}."""
    assert r.status == status, r
    assert r.headers.get("Content-Type", "").startswith(
        "application/json"), r.headers
    assert isinstance(r.json, dict), r
    assert isinstance(r.json.get("error"), str) and r.json["error"], r
    assert isinstance(r.json.get("message"), str) and r.json["message"], r
    if code is not None:
        assert r.json["error"] == code, r
    return r.json


def b64(data):
    return base64.b64encode(data).decode()


def unb64(text):
    return base64.b64decode(text, validate=True)


# ---------------------------------------------------------------- tools

def run(args, input=None, check=True, timeout=60):
    """Run a tool (bytes in/out); returns CompletedProcess."""
    r = subprocess.run(args, input=input, capture_output=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (rc=%d):\n%s\n%s" % (
            " ".join(args), r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace")))
    return r


def openssl(*args, input=None, check=True):
    return run(["openssl"] + list(args), input=input, check=check)


def need_tools(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail("tools not installed: %s" % ", ".join(missing),
                    pytrace=False)


def write(path, data, mode=0o600):
    if isinstance(data, str):
        data = data.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def make_csr(workdir, cn, name=None):
    """A P-256 key and CSR for /CN=cn made by openssl; (key, csr PEM)."""
    name = name or re.sub(r"[^a-z0-9]+", "_", cn.lower())
    key = os.path.join(workdir, name + ".key")
    csr = os.path.join(workdir, name + ".csr")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=" + cn)
    with open(csr) as f:
        return key, f.read()


def issue_client(ks, workdir, cn, name=None):
    """
    A client certificate for cn issued by the caller ks (admin or a
    dept-admin) from a CSR made here.  Returns (cert path, key path,
    cert record).
    """
    key, csr = make_csr(workdir, cn, name)
    r = ks.post("/v1/certs/client", {"csr": csr})
    assert r.status == 201, r
    rec = r.json
    assert rec["kind"] == "client" and rec["subject"] == cn, rec
    assert rec["status"] == "valid", rec
    cert = write(key[:-len(".key")] + ".pem", rec["pem"], 0o644)
    return cert, key, rec


def demo_users(node):
    """{address: (password, [roles])} from <datadir>/demo-users.txt."""
    out = {}
    with open(os.path.join(node.dir, "demo-users.txt")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            addr, pw, roles = line.split()
            out[addr] = (pw, roles.split(","))
    return out


def datapath(node, *parts):
    return os.path.join(node.dir, *parts)


def cert_crl_url(certfile):
    """The URI of the certificate's CRL distribution point."""
    r = openssl("x509", "-in", certfile, "-noout", "-ext",
                "crlDistributionPoints")
    m = re.search(r"URI:(\S+)", r.stdout.decode())
    assert m, "no CRL distribution point URI in %s:\n%s" % (
        certfile, r.stdout.decode())
    return m.group(1)


def verify(ca, cert, crl=None, purpose=None):
    """openssl verify; returns (ok, output)."""
    args = ["verify", "-CAfile", ca]
    if crl is not None:
        args += ["-crl_check", "-CRLfile", crl]
    if purpose is not None:
        args += ["-purpose", purpose]
    r = openssl(*(args + [cert]), check=False)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    return r.returncode == 0 and ": OK" in out, out


# ---------------------------------------------------------------- keys

def wrapped_parts(wrapped):
    """
    Decode a wrapped key (keys.h): 'K' 0x01 | id_len | id | version (be32)
    | nonce (12) | ciphertext | tag (16).  Returns (id, version, nonce,
    ciphertext+tag).
    """
    blob = unb64(wrapped)
    assert blob[:2] == b"K\x01", blob[:8]
    n = blob[2]
    kid = blob[3:3 + n].decode()
    (version,) = struct.unpack(">I", blob[3 + n:7 + n])
    nonce = blob[7 + n:19 + n]
    assert len(nonce) == 12
    body = blob[19 + n:]
    assert len(body) >= 16
    return kid, version, nonce, body


# ---------------------------------------------------------------- lmdb

def mdb_records(dbdir, name):
    """
    {key: value} (bytes) of a named LMDB database, read with mdb_dump
    (hex "bytevalue" format: unambiguous, unlike -p, whose output this
    mdb_dump does not escape backslashes in).  LMDB allows this reader
    while keyservice runs.
    """
    need_tools("mdb_dump")
    r = run(["mdb_dump", "-s", name, dbdir])
    return parse_mdb_dump(r.stdout)


def parse_mdb_dump(text):
    lines = text.split(b"\n")
    i = 0
    while i < len(lines) and lines[i] != b"HEADER=END":
        i += 1
    assert i < len(lines), text[:500]
    i += 1
    items, pending = {}, []
    while i < len(lines) and lines[i] != b"DATA=END":
        pending.append(bytes.fromhex(lines[i].strip().decode()))
        if len(pending) == 2:
            items[pending[0]] = pending[1]
            pending = []
        i += 1
    assert i < len(lines), "no DATA=END"
    return items


def mdb_json(dbdir, name):
    """{key text: parsed JSON} of a database of JSON records."""
    return {k.decode(): json.loads(v.decode())
            for k, v in mdb_records(dbdir, name).items()}


# ---------------------------------------------------------------- tls

def tls_refused(node, certkey=None, timeout=20):
    """
    Try one API request presenting certkey ((cert, key) or None).
    Returns a description of how the TLS layer refused it, or raises
    AssertionError if an HTTP answer came back.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=node.ca)
    if certkey is not None:
        ctx.load_cert_chain(*certkey)
    conn = http.client.HTTPSConnection("127.0.0.1", node.port("keyservice"),
                                       context=ctx, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        body = r.read()
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError,
            http.client.RemoteDisconnected) as e:
        return "%s: %s" % (type(e).__name__, e)
    finally:
        conn.close()
    raise AssertionError("the TLS layer let the request through: %d %r" %
                         (r.status, body))
