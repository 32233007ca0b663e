"""
smtp_util.py -- helpers for the SMTP end-to-end tests (test_smtp_*.py):
a demo node running keyservice and mailsrv, SMTP clients (smtplib, raw
sockets, swaks) and a reader of the encrypted store and queue.

The store and the queue are encrypted at rest, so the tests read them
through tests/tools/store_dump.c, a small C program linked with the
build's libmailsrv.a and libcommon.a (built here on first use, with the
sanitizers when the libraries have them; or taken from
$AMANAT_BUILD/tools/store_dump when the Makefile made it).  The plain
data key of a user comes from keyservice (POST /v1/keys/unwrap of the
wrapped key the store keeps, with the admin client certificate).
"""
import atexit
import hashlib
import json
import os
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from amanat_node import (BUILD, REPO, Node, daemon_env, read_until_eof,
                         recv_line, sanitizer_lines)
from ks_client import KS, demo_users

TIMEOUT = 30

# Small Argon2 (the tests are not about hashing), quick delivery retries.
MAIL_FAST = {
    "keyservice": {"argon2_memory": "8M", "argon2_time": "1"},
    "mailsrv": {"retry_min": "1s", "retry_max": "2s"},
}

FINANCE = "finance.amanat.test"
HEALTH = "health.amanat.test"
ALICE = "alice@" + FINANCE
BOB = "bob@" + FINANCE
CAROL = "carol@" + HEALTH
DAVE = "dave@" + HEALTH
FATIMA = "fatima@" + FINANCE
SOFIA = "sofia@" + FINANCE
HAMID = "hamid@" + HEALTH

READY_MARKERS = ("mailsrv queue ready", "mailsrv local domains loaded")


def mail_overrides(*more):
    out = {s: dict(k) for s, k in MAIL_FAST.items()}
    for o in more:
        for sec, knobs in (o or {}).items():
            out.setdefault(sec, {}).update(knobs)
    return out


# ---------------------------------------------------------------- node

def wait_mailsrv_ready(node, offset=0, timeout=30.0):
    """Wait until mailsrv (started when its log had `offset` bytes) has
    its queue key and the local domains."""
    deadline = time.monotonic() + timeout
    while True:
        text = node.log("mailsrv")[offset:]
        if all(m in text for m in READY_MARKERS):
            return
        if time.monotonic() > deadline:
            pytest.fail("mailsrv not ready after %.0fs:\n%s" %
                        (timeout, text), pytrace=False)
        time.sleep(0.05)


def log_size(node, daemon="mailsrv"):
    try:
        return os.path.getsize(node.logpath(daemon))
    except FileNotFoundError:
        return 0


def start_mailsrv(node):
    """Start mailsrv and wait until it can accept mail."""
    off = len(node.log("mailsrv")) if os.path.exists(
        node.logpath("mailsrv")) else 0
    node.start(("mailsrv",))
    wait_mailsrv_ready(node, off)


_TEMPLATE = {}


def demo_template():
    """The directory of a node initialised once per test session with
    `keyservice --init --demo` (never started).  --demo makes S/MIME
    keys for nine users, which takes seconds (more under ASan), so the
    mail nodes start from copies of it."""
    with _TOOL_LOCK:
        if "dir" not in _TEMPLATE:
            d = tempfile.mkdtemp(prefix="amanat-demo-")
            atexit.register(shutil.rmtree, d, True)
            Node(d, mail_overrides()).init(demo=True)
            _TEMPLATE["dir"] = d
        return _TEMPLATE["dir"]


def clone_demo(node):
    """Give node (its config written, not initialised) the keys, CA,
    certificates, directory and demo users of the session's demo
    template.  The node keeps its own ports and datadir; only the
    certificates' CRL URL names the template's port (unused by mail)."""
    src = demo_template()
    for name in os.listdir(src):
        if name == "amanat.conf" or name.endswith(".log") or \
                name.endswith(".tmp"):
            continue
        s, d = os.path.join(src, name), os.path.join(node.dir, name)
        if os.path.isdir(s):
            shutil.copytree(s, d, symlinks=True)
        else:
            shutil.copy2(s, d)


def start_mail_node(tmpdir, extra=None, fresh=False):
    """A demo node running keyservice and mailsrv, ready for mail: a copy
    of the session's demo template, or with fresh=True its own
    `keyservice --init --demo`."""
    node = Node(tmpdir, mail_overrides(extra))
    if fresh:
        node.init(demo=True)
    else:
        clone_demo(node)
    try:
        node.start(("keyservice",))
        start_mailsrv(node)
    except BaseException:
        node.stop_all()
        raise
    node.users = demo_users(node)
    return node


def finish(node):
    problems = node.stop_all()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def password(node, addr):
    return node.users[addr][0]


# ---------------------------------------------------------------- clients

def smtp(node, pname="smtp", helo="client.example.org"):
    """smtplib on a plain port, after EHLO."""
    s = smtplib.SMTP("127.0.0.1", node.port(pname), timeout=TIMEOUT)
    s.ehlo(helo)
    return s


def submission(node, user=None, pname="submission",
               helo="client.example.org"):
    """smtplib on submission (STARTTLS) or smtps (implicit TLS), after
    EHLO and, if user is given, AUTH with the user's demo password."""
    if pname == "smtps":
        s = smtplib.SMTP_SSL("127.0.0.1", node.port("smtps"),
                             timeout=TIMEOUT, context=node.ssl_context())
        s.ehlo(helo)
    else:
        s = smtplib.SMTP("127.0.0.1", node.port(pname), timeout=TIMEOUT)
        s.ehlo(helo)
        code, msg = s.starttls(context=node.ssl_context())
        assert code == 220, msg
        s.ehlo(helo)
    if user is not None:
        code, msg = s.login(user, password(node, user))
        assert code == 235, msg
    return s


def send_data(s, sender, rcpts, msg):
    """MAIL, RCPT..., DATA with smtplib's low-level calls (so the DATA
    reply is seen); returns the DATA reply (code, text)."""
    code, text = s.mail(sender)
    assert code == 250, (code, text)
    for r in rcpts:
        code, text = s.rcpt(r)
        assert code == 250, (r, code, text)
    return s.data(msg)


def without_return_path(stored, sender):
    """A message stored by a local delivery starts with "Return-Path:
    <envelope sender>" (RFC 5321 4.4; "<>" for a report): checks it and
    returns the rest."""
    want = b"Return-Path: <" + sender.encode() + b">\r\n"
    assert stored.startswith(want), (want, stored[:300])
    return stored[len(want):]


def queued_id(text):
    """The message id from "2.0.0 Ok: queued as <id>" (or "delivered as
    <id>": stored in the local INBOXes at once, [mailsrv] direct_delivery)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    m = re.search(r"(?:queued|delivered) as ([0-9a-f]+)\s*$", text)
    assert m, text
    return m.group(1)


class Raw:
    """A line-oriented raw SMTP client on a plain socket."""

    def __init__(self, node, pname="smtp", timeout=TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", node.port(pname)),
                                             timeout=timeout)
        self.timeout = timeout
        self.buf = bytearray()

    def line(self):
        return recv_line(self.sock, self.timeout, self.buf)

    def reply(self):
        """One SMTP reply: its lines (a multi-line reply in full)."""
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if len(l) < 4 or l[3:4] != b"-":
                return lines

    def code(self):
        """The code of the next reply (and its last line)."""
        r = self.reply()
        last = r[-1]
        return (int(last[:3]) if last[:3].isdigit() else None), last

    def cmd(self, line):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.code()

    def send(self, data):
        self.sock.sendall(data)

    def rest(self):
        return bytes(self.buf) + read_until_eof(self.sock, self.timeout)

    def close(self):
        self.sock.close()


def swaks(node, *args, pname="smtp", timeout=60):
    """Run swaks against a port; (returncode, output)."""
    if shutil.which("swaks") is None:
        pytest.fail("swaks is not installed", pytrace=False)
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" %
                        node.port(pname), "--ehlo", "client.example.org"] +
                       list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def swaks_replies(out):
    """The server reply lines swaks printed ("<-  250 ..." / "<~  ..."
    / "<** 550 ...")."""
    out_lines = []
    for l in out.splitlines():
        if l[:3] in ("<- ", "<~ ", "<**", "<~*"):
            out_lines.append(l[3:].strip())
    return out_lines


def make_message(marker, headers=(), body=None, extra_lines=0):
    """An RFC 5322 message (CRLF) naming marker in the Subject and the
    body; headers: extra (name, value) pairs."""
    hdr = [("From", "Alice <%s>" % ALICE), ("To", "Bob <%s>" % BOB),
           ("Subject", "e2e %s" % marker)] + list(headers)
    text = "".join("%s: %s\r\n" % hv for hv in hdr) + "\r\n"
    if body is None:
        body = "Hello Bob,\r\nthe secret word is %s.\r\n" % marker
        body += "".join("line %d of %s\r\n" % (i, marker)
                        for i in range(extra_lines))
    return (text + body).encode()


def body_of(msg):
    i = msg.find(b"\r\n\r\n")
    return msg[i + 4:] if i >= 0 else b""


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- store

_TOOL = {}
_TOOL_LOCK = threading.Lock()
PKGS = ["openssl", "libevent", "libevent_openssl", "libevent_pthreads",
        "jansson", "lmdb", "libargon2", "zlib", "libbsd"]


def _sanitized(lib):
    with open(lib, "rb") as f:
        return b"__asan_" in f.read()


def store_dump_tool():
    """Path of the store_dump test tool for this build (built once)."""
    with _TOOL_LOCK:
        if "path" in _TOOL:
            return _TOOL["path"]
        src = os.path.join(REPO, "tests", "tools", "store_dump.c")
        libs = [os.path.join(BUILD, "libmailsrv.a"),
                os.path.join(BUILD, "libcommon.a")]
        for lib in libs:
            if not os.path.exists(lib):
                pytest.fail("not built: %s (run make)" % lib, pytrace=False)
        made = os.path.join(BUILD, "tools", "store_dump")
        newest = max(os.path.getmtime(p) for p in libs + [src])
        if os.access(made, os.X_OK) and os.path.getmtime(made) >= newest:
            _TOOL["path"] = made
            return made
        tmp = tempfile.mkdtemp(prefix="amanat-tools-")
        atexit.register(shutil.rmtree, tmp, True)
        out = os.path.join(tmp, "store_dump")
        pc = subprocess.run(["pkg-config", "--cflags", "--libs"] + PKGS,
                            capture_output=True, text=True, check=True)
        flags = ["-std=c11", "-D_GNU_SOURCE", "-g", "-O1", "-pthread",
                 "-I" + REPO]
        if _sanitized(libs[1]):
            flags += ["-fsanitize=address,undefined",
                      "-fno-omit-frame-pointer"]
        cc = os.environ.get("CC", "cc")
        r = subprocess.run([cc] + flags + [src, "-o", out] + libs +
                           pc.stdout.split() + ["-lpthread"],
                           capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            pytest.fail("cannot build store_dump:\n%s%s" %
                        (r.stdout, r.stderr), pytrace=False)
        _TOOL["path"] = out
        return out


class StoreError(AssertionError):
    pass


class Store:
    """The node's mail store (and queue), read with store_dump; data
    keys unwrapped by keyservice with the admin certificate."""

    def __init__(self, node):
        self.node = node
        self.tool = store_dump_tool()
        self.ks = KS(node, "admin")
        self.deks = {}
        self.dir = os.path.join(node.dir, "mailsrv", "store")

    def run(self, *args, check=True):
        r = subprocess.run([self.tool] + list(args), capture_output=True,
                           env=daemon_env(), timeout=120,
                           stdin=subprocess.DEVNULL)
        err = r.stderr.decode("utf-8", "replace")
        san = sanitizer_lines(err)
        if san:
            raise StoreError("store_dump %s: sanitizer reports:\n%s" %
                             (args[:3], err))
        if check and r.returncode != 0:
            raise StoreError("store_dump %s failed (rc=%d):\n%s\n%s" % (
                " ".join(args[:4]), r.returncode,
                r.stdout.decode("utf-8", "replace"), err))
        return r

    def wrapped(self, addr):
        """The user's wrapped data key, or None if no mailbox yet."""
        r = self.run(self.dir, "user", addr, check=False)
        if r.returncode == 3:
            return None
        if r.returncode != 0:
            raise StoreError("store_dump user %s: rc=%d %s" % (
                addr, r.returncode, r.stderr.decode("utf-8", "replace")))
        for line in r.stdout.decode().splitlines():
            if line.startswith("wrapped="):
                return line[len("wrapped="):]
        raise StoreError("no wrapped key: %r" % r.stdout)

    def unwrap(self, wrapped, context):
        r = self.ks.post("/v1/keys/unwrap", {"wrapped": wrapped,
                                              "context": context})
        assert r.status == 200, r
        return r.json["plaintext"]

    def dek(self, addr):
        if addr not in self.deks:
            w = self.wrapped(addr)
            if w is None:
                return None
            self.deks[addr] = self.unwrap(w, "mailbox:" + addr)
        return self.deks[addr]

    def list(self, addr, mailbox="-"):
        """[{uid, size, sha, body_sha, msgid}] of a mailbox (every message
        read and authenticated); [] if the user has no mailbox yet."""
        dek = self.dek(addr)
        if dek is None:
            return []
        r = self.run(self.dir, "list", addr, mailbox, dek)
        out = []
        for line in r.stdout.decode("utf-8", "replace").splitlines():
            uid, size, sha, bsha, mid = line.split(" ", 4)
            out.append({"uid": int(uid), "size": int(size), "sha": sha,
                        "body_sha": bsha, "msgid": mid})
        return out

    def read(self, addr, uid, mailbox="-"):
        return self.run(self.dir, "read", addr, mailbox, str(uid),
                        self.dek(addr)).stdout

    def find(self, addr, needle, after_uid=0):
        """The stored messages (uid, bytes) of addr's INBOX with UID >
        after_uid that contain needle (bytes)."""
        found = []
        for m in self.list(addr):
            if m["uid"] <= after_uid:
                continue
            data = self.read(addr, m["uid"])
            if needle in data:
                found.append((m["uid"], data))
        return found

    def last_uid(self, addr):
        ms = self.list(addr)
        return ms[-1]["uid"] if ms else 0

    def wait_for(self, addr, needle, after_uid=0, count=1, timeout=30.0):
        """Wait until `count` messages containing needle are in addr's
        INBOX (UID > after_uid); returns them [(uid, bytes)]."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(addr, needle, after_uid)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                pytest.fail("%d message(s) with %r not delivered to %s "
                            "after %.0fs (found %d); mailsrv log tail:\n%s"
                            % (count, needle, addr, timeout, len(found),
                               self.node.log("mailsrv")[-4000:]),
                            pytrace=False)
            time.sleep(0.1)

    def queue(self):
        """Every envelope of the queue (mailsrv must be stopped: the
        queue is flock()ed while open)."""
        with open(os.path.join(self.node.dir, "mailsrv", "queue.key")) as f:
            wrapped = f.read().strip()
        key = self.unwrap(wrapped, "mailsrv-queue")
        r = self.run(os.path.join(self.node.dir, "mailsrv", "queue"),
                     "queue", key)
        return json.loads(r.stdout.decode())


def grep_tree(root, needles):
    """`grep -r` for each needle (bytes) over root: the files that contain
    it (grep exits 1 when nothing matches)."""
    args = ["grep", "-r", "-l", "-a", "-F"]
    for n in needles:
        args += ["-e", n.decode()]
    r = subprocess.run(args + [root], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode in (0, 1), r.stderr
    return r.stdout.split()
