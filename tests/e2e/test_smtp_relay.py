"""
Relay between nodes end to end: two independent nodes (A: the demo
departments, cloned from the session's demo template; B: its own
`keyservice --init` and CA, with a department "bdept" for b.amanat.test
and a user bea made over B's admin API), each running keyservice and
mailsrv on loopback ports.  A routes b.amanat.test to B's MX port
([mailsrv] relay_routes) and requires verified STARTTLS for it
(relay_tls_domains); A's [tls] ca is a bundle of A's own CA (first: its
keyservice reads its CA certificate from there), B's CA and a test CA.

Acceptance (two nodes, two domains):
  - alice@finance (A) writes to bea@b.amanat.test: it arrives in bea's
    INBOX at B over verified TLS (B's Received header: ESMTPS, TLS);
  - with B's mailsrv stopped, A queues (250), defers with 4.x and
    retries; when B is back the message arrives, once;
  - mail to an unknown user at B bounces (550 5.1.1 at RCPT): the DSN
    (multipart/report, message/delivery-status naming the recipient,
    Action: failed, Status: 5.1.1) is in alice's INBOX at A.

More routes go to small fake SMTP servers (threads in this process)
that record what A's relay client sends: a certificate not signed by a
trusted CA or not naming the route's host, a server without STARTTLS
(TLS required: deferred, nothing sent), opportunistic TLS, plaintext,
DSN/SIZE/8BITMIME/SMTPUTF8 parameters, a STARTTLS response injection,
and a closed port.

Stored messages are read with tests/tools/store_dump (smtp_util.Store).
"""
import datetime
import email
import os
import re
import select
import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest

from amanat_node import Node
from ks_client import KS
from smtp_util import (ALICE, BOB, Store, clone_demo, demo_users,
                       mail_overrides, queued_id, start_mailsrv, submission,
                       without_return_path)

B_DOMAIN = "b.amanat.test"
BEA = "bea@" + B_DOMAIN
UNKNOWN_B = "unknown@" + B_DOMAIN

# fake peers: domain -> (TLS mode, TLS required by A, extensions, inject)
#   TLS mode: None (no STARTTLS), "self" (self-signed, untrusted),
#   "ca" (signed by the test CA in A's bundle, SAN IP:127.0.0.1),
#   "wrongname" (test CA, SAN DNS:mx.other.test only)
FAKES = {
    "untrusted.test": ("self", True, ("SIZE 10000000", "8BITMIME"), False),
    "wrongname.test": ("wrongname", True, ("8BITMIME",), False),
    "notls.test": (None, True, ("8BITMIME",), False),
    "opp.test": ("self", False, ("8BITMIME",), False),
    "plain.test": (None, False, (), False),
    "ext.test": ("ca", True, ("SIZE 10000000", "8BITMIME", "DSN",
                              "SMTPUTF8", "ENHANCEDSTATUSCODES"), False),
    "inject.test": ("ca", True, ("8BITMIME",), True),
}
CLOSED_DOMAIN = "closed.test"

DELIVERY_RE = re.compile(r'delivery id=([0-9a-f]+) to=<([^>]*)> '
                         r'state=(\w+) status="([^"]*)"')
RECEIVED_RE = re.compile(
    rb"^Received: from (?P<helo>[^ ]+) \((?P<ip>[0-9.]+)\)\r\n"
    rb"\tby (?P<by>[^ ]+) \(Amanat\) with (?P<with>[A-Z]+)"
    rb"(?: \((?P<tls>[^)]*)\))?\r\n\tfor <(?P<rcpt>[^>]+)>; [^\r\n]+\r\n")


def marker():
    return "RL" + uuid.uuid4().hex


def message(mk, to, body=None, headers=()):
    hdr = [("From", "Alice <%s>" % ALICE), ("To", "<%s>" % to),
           ("Subject", "relay %s" % mk)] + list(headers)
    text = "".join("%s: %s\r\n" % hv for hv in hdr) + "\r\n"
    if body is None:
        body = "Hello,\r\nthe relay word is %s.\r\n" % mk
    return text.encode("utf-8") + (body.encode("utf-8")
                                   if isinstance(body, str) else body)


# ---------------------------------------------------------------- certs

def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True,
                       timeout=60)
    assert r.returncode == 0, (args, r.stderr.decode("utf-8", "replace"))


def make_certs(d):
    """A test CA, two certificates it signs (SAN IP:127.0.0.1; SAN
    DNS:mx.other.test) and a self-signed one (SAN IP:127.0.0.1).
    Returns {mode: (cert, key)} and the CA file."""
    d = str(d)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ca, cak = os.path.join(d, "testca.pem"), os.path.join(d, "testca.key")
    openssl("req", "-x509", *ec, "-keyout", cak, "-out", ca, "-subj",
            "/CN=relay test CA", "-days", "2", "-addext",
            "basicConstraints=critical,CA:TRUE", "-addext",
            "keyUsage=critical,keyCertSign,cRLSign")
    out = {}
    for mode, san in (("ca", "IP:127.0.0.1"),
                      ("wrongname", "DNS:mx.other.test")):
        key, csr = os.path.join(d, mode + ".key"), os.path.join(d,
                                                                mode + ".csr")
        crt = os.path.join(d, mode + ".pem")
        ext = os.path.join(d, mode + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n"
                    "basicConstraints=CA:FALSE\n" % san)
        openssl("req", "-new", *ec, "-keyout", key, "-out", csr, "-subj",
                "/CN=fake mx " + mode)
        openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cak,
                "-CAcreateserial", "-out", crt, "-days", "2", "-extfile",
                ext)
        out[mode] = (crt, key)
    key, crt = os.path.join(d, "self.key"), os.path.join(d, "self.pem")
    openssl("req", "-x509", *ec, "-keyout", key, "-out", crt, "-subj",
            "/CN=fake mx self", "-days", "2", "-addext",
            "subjectAltName=IP:127.0.0.1")
    out["self"] = (crt, key)
    return out, ca


# ---------------------------------------------------------------- fake MX

class LineIO:
    """CRLF lines over a plain or TLS socket, with our own buffer (so
    that data sent ahead of our reply is seen)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def readline(self, limit=1 << 20):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
            if len(self.buf) > limit:
                return None
        i = self.buf.index(b"\n") + 1
        line = bytes(self.buf[:i])
        del self.buf[:i]
        return line.rstrip(b"\r\n")

    def more(self, wait):
        """Did the peer send more (already buffered, or within wait)?"""
        if self.buf:
            return True
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        r, _, _ = select.select([self.sock], [], [], wait)
        if not r:
            return False
        try:
            chunk = self.sock.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            return False
        self.buf += chunk
        return bool(chunk)

    def send(self, data):
        self.sock.sendall(data)


class FakeMX:
    """A minimal ESMTP server on 127.0.0.1 that records sessions:
    {"tls", "tls_error", "cmds", "mails": [(mail, [rcpts], data)],
    "early"}.  No PIPELINING is advertised, so a command that arrives
    before the reply to the previous one is recorded in "early"."""

    def __init__(self, name, certkey=None, exts=(), inject=False):
        self.name = name
        self.certkey = certkey
        self.exts = list(exts)
        self.inject = inject
        self.sessions = []
        self.lock = threading.Lock()
        self.stopped = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True,
                                       name="fakemx-" + name)
        self.thread.start()

    def serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,),
                             daemon=True).start()

    def stop(self):
        self.stopped = True
        self.thread.join(5)
        self.sock.close()

    def snapshot(self):
        with self.lock:
            return [dict(s) for s in self.sessions]

    def ehlo_reply(self, tls):
        lines = ["fake-%s.test" % self.name] + list(self.exts)
        if self.certkey is not None and not tls:
            lines.append("STARTTLS")
        return "".join("250%s%s\r\n" % ("-" if i < len(lines) - 1 else " ",
                                        l) for i, l in enumerate(lines))

    def session(self, conn):
        s = {"tls": False, "tls_error": None, "cmds": [], "mails": [],
             "early": []}
        with self.lock:
            self.sessions.append(s)
        conn.settimeout(30)
        io = LineIO(conn)
        mail, rcpts = None, []
        try:
            io.send(b"220 fake-%s.test ESMTP\r\n" % self.name.encode())
            after_tls = False
            while True:
                line = io.readline()
                if line is None:
                    break
                cmd = line.decode("utf-8", "replace")
                s["cmds"].append(("tls " if s["tls"] else "") + cmd)
                # without PIPELINING every command waits for its reply;
                # after STARTTLS, look a little longer
                if io.more(0.5 if after_tls else 0.0):
                    s["early"].append(cmd)
                after_tls = False
                verb = cmd.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    io.send(self.ehlo_reply(s["tls"]).encode())
                    mail, rcpts = None, []
                elif verb == "STARTTLS" and self.certkey and not s["tls"]:
                    if self.inject:
                        io.send(b"220 2.0.0 Ready to start TLS\r\n"
                                b"250 injected-in-plaintext\r\n")
                    else:
                        io.send(b"220 2.0.0 Ready to start TLS\r\n")
                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                    ctx.load_cert_chain(*self.certkey)
                    try:
                        conn = ctx.wrap_socket(conn, server_side=True)
                    except (ssl.SSLError, OSError) as e:
                        s["tls_error"] = str(e)
                        return
                    s["tls"] = True
                    io = LineIO(conn)
                    after_tls = True
                    mail, rcpts = None, []
                elif verb == "MAIL":
                    mail, rcpts = cmd, []
                    io.send(b"250 2.1.0 Ok\r\n")
                elif verb == "RCPT":
                    if mail is None:
                        io.send(b"503 5.5.1 MAIL first\r\n")
                        continue
                    rcpts.append(cmd)
                    if "<reject@" in cmd.lower():
                        io.send(b"550 5.1.1 No such user here\r\n")
                    else:
                        io.send(b"250 2.1.5 Ok\r\n")
                elif verb == "DATA":
                    if not rcpts:
                        io.send(b"503 5.5.1 RCPT first\r\n")
                        continue
                    io.send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    data = bytearray()
                    while True:
                        l = io.readline()
                        if l is None:
                            return
                        if l == b".":
                            break
                        if l.startswith(b"."):
                            l = l[1:]
                        data += l + b"\r\n"
                    s["mails"].append((mail, rcpts, bytes(data)))
                    io.send(b"250 2.0.0 Ok: queued as FAKE%d\r\n" %
                            len(s["mails"]))
                    mail, rcpts = None, []
                elif verb == "RSET":
                    mail, rcpts = None, []
                    io.send(b"250 2.0.0 Ok\r\n")
                elif verb == "NOOP":
                    io.send(b"250 2.0.0 Ok\r\n")
                elif verb == "QUIT":
                    io.send(b"221 2.0.0 Bye\r\n")
                    if s["tls"]:
                        try:       # close_notify, as most MTAs send
                            conn.unwrap()
                        except (OSError, ValueError):
                            pass
                    break
                else:
                    io.send(b"502 5.5.2 Command not implemented\r\n")
        except (OSError, ssl.SSLError) as e:
            s["error"] = str(e)
        finally:
            try:
                conn.close()
            except OSError:
                pass


# ---------------------------------------------------------------- nodes

def start_node_b(d, domain=B_DOMAIN, overrides=None):
    """Node B: its own init (own CA), a department for domain
    (b.amanat.test) and the user bea@domain made with B's admin
    certificate, then mailsrv."""
    n = Node(d, mail_overrides(overrides), name="nodeb")
    n.init()
    try:
        n.start(("keyservice",))
        ks = KS(n, "admin")
        r = ks.post("/v1/depts", {"name": "bdept",
                                  "display_name": "B department",
                                  "domains": [domain]})
        assert r.status == 201, r
        r = ks.post("/v1/users", {"address": "bea@" + domain,
                                  "display_name": "Bea"})
        assert r.status == 201, r
        ks.reset()
        start_mailsrv(n)
    except BaseException:
        n.stop_all()
        raise
    return n


def start_node_a(d, b, fakes, closed_port, bundle_parts):
    routes = ["%s=127.0.0.1:%d" % (B_DOMAIN, b.port("smtp"))]
    routes += ["%s=127.0.0.1:%d" % (dom, f.port) for dom, f in fakes.items()]
    routes.append("%s=127.0.0.1:%d" % (CLOSED_DOMAIN, closed_port))
    required = [B_DOMAIN] + [dom for dom, v in FAKES.items() if v[1]]
    return start_demo_trusting(d, {
        "relay_routes": ",".join(routes),
        "relay_tls_domains": ",".join(required),
        "retry_min": "1s", "retry_max": "4s",
        "delay_warning": "2s"}, bundle_parts)


def start_demo_trusting(d, mailsrv_knobs, extra_cas):
    """Node A: the demo node (template copy) whose [tls] ca is a bundle of
    its own CA (first: its keyservice reads its CA certificate from
    there) and extra_cas, with these [mailsrv] knobs; keyservice and
    mailsrv started, node.users the demo users."""
    n = Node(d, mail_overrides({"tls": {"ca": "ca-bundle.pem"},
                                "mailsrv": mailsrv_knobs}))
    clone_demo(n)
    with open(os.path.join(n.dir, "ca-bundle.pem"), "wb") as out:
        for p in [n.ca] + list(extra_cas):
            with open(p, "rb") as f:
                out.write(f.read().rstrip(b"\n") + b"\n")
    try:
        n.start(("keyservice",))
        start_mailsrv(n)
    except BaseException:
        n.stop_all()
        raise
    n.users = demo_users(n)
    return n


class Pair:
    pass


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    base = tmp_path_factory.mktemp("relay")
    certs, testca = make_certs(base)
    fakes = {dom: FakeMX(dom.split(".")[0],
                         certs[mode] if mode else None, exts, inject)
             for dom, (mode, _, exts, inject) in FAKES.items()}
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))            # bound, never listening: refused
    closed_port = s.getsockname()[1]
    nodes = []
    try:
        (base / "b").mkdir()
        (base / "a").mkdir()
        b = start_node_b(base / "b")
        nodes.append(b)
        a = start_node_a(base / "a", b, fakes, closed_port, [b.ca, testca])
        nodes.append(a)
        p = Pair()
        p.a, p.b, p.fakes = a, b, fakes
        p.store_a, p.store_b = Store(a), Store(b)
        yield p
    finally:
        s.close()
        for f in fakes.values():
            f.stop()
        problems = []
        for n in reversed(nodes):
            problems += n.stop_all()
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


# ---------------------------------------------------------------- helpers

def send(a, rcpts, msg, mail_opts=(), rcpt_opts=()):
    """alice submits msg on A (STARTTLS + AUTH); returns the queue id."""
    s = submission(a, ALICE)
    try:
        code, text = s.mail(ALICE, list(mail_opts))
        assert code == 250, (code, text)
        for r in rcpts:
            opts = rcpt_opts.get(r, ()) if isinstance(rcpt_opts, dict) \
                else rcpt_opts
            code, text = s.rcpt(r, list(opts))
            assert code == 250, (r, code, text)
        code, text = s.data(msg)
        assert code == 250, (code, text)
        return queued_id(text)
    finally:
        s.quit()


def deliveries(node, qid):
    """[(rcpt, state, status)] of node's delivery log lines for qid."""
    return [(m.group(2), m.group(3), m.group(4))
            for m in DELIVERY_RE.finditer(node.log("mailsrv"))
            if m.group(1) == qid]


def wait_delivery(node, qid, rcpt, states, count=1, timeout=30.0):
    """Wait until qid's delivery to rcpt was logged `count` times in one
    of states; returns the matching [(state, status)]."""
    if isinstance(states, str):
        states = (states,)
    deadline = time.monotonic() + timeout
    while True:
        p = node.procs.get("mailsrv")
        if p is not None and p.poll() is not None:
            pytest.fail("mailsrv died (rc=%s) waiting for id=%s to=<%s>; "
                        "log tail:\n%s" % (p.returncode, qid, rcpt,
                                           node.log("mailsrv")[-6000:]),
                        pytrace=False)
        got = [(st, status) for r, st, status in deliveries(node, qid)
               if r == rcpt and st in states]
        if len(got) >= count:
            return got
        if time.monotonic() > deadline:
            pytest.fail("no %d delivery line(s) id=%s to=<%s> state in %s "
                        "after %.0fs; lines: %r\nmailsrv log tail:\n%s" %
                        (count, qid, rcpt, states, timeout,
                         deliveries(node, qid),
                         node.log("mailsrv")[-3000:]), pytrace=False)
        time.sleep(0.1)


def wait_fake(fake, pred, timeout=20.0):
    """Wait until a session of fake satisfies pred; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        for s in fake.snapshot():
            if pred(s):
                return s
        if time.monotonic() > deadline:
            pytest.fail("fake %s: no matching session after %.0fs: %r" %
                        (fake.name, timeout, fake.snapshot()),
                        pytrace=False)
        time.sleep(0.1)


def fake_mails(fake, needle):
    """[(session, (mail, rcpts, data))] whose data contains needle."""
    return [(s, m) for s in fake.snapshot() for m in s["mails"]
            if needle in m[2]]


def dsn_parts(data):
    """(top message, [per-message fields, per-recipient fields...]) of a
    stored DSN, checked to be a multipart/report delivery-status."""
    msg = email.message_from_bytes(data)
    assert msg.get_content_type() == "multipart/report", msg.get(
        "Content-Type")
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert isinstance(parts, list) and len(parts) >= 2, parts
    st = [p for p in parts
          if p.get_content_type() == "message/delivery-status"]
    assert len(st) == 1, [p.get_content_type() for p in parts]
    blocks = st[0].get_payload()
    assert isinstance(blocks, list) and len(blocks) >= 2, blocks
    return msg, parts, blocks


def recipient_block(blocks, addr):
    found = [b for b in blocks[1:]
             if (b.get("Final-Recipient") or "").split(";")[-1].strip()
             .lower() == addr.lower()]
    assert len(found) == 1, [dict(b) for b in blocks]
    return found[0]


# ---------------------------------------------------------------- A <-> B

def test_relay_to_other_node_over_verified_tls(pair):
    """alice@finance (A) -> bea@b.amanat.test: A relays to B's MX with
    verified STARTTLS (b.amanat.test is in relay_tls_domains); the bytes
    land in bea's INBOX at B after B's Received header (ESMTPS, TLS)."""
    a, b = pair.a, pair.b
    mk = marker()
    msg = message(mk, BEA)
    after = pair.store_b.last_uid(BEA)
    qid = send(a, [BEA], msg)
    (_, status), = wait_delivery(a, qid, BEA, ("sent", "failed"))
    assert status.startswith("2.0.0"), status
    assert re.search(r"relay connecting host=127\.0\.0\.1:%d rcpts=1 "
                     r"tls_required=1" % b.port("smtp"), a.log("mailsrv"))
    # B's queue id in A's status names B's own log line for it
    m = re.search(r"queued as ([0-9a-f]+)", status)
    assert m, status
    assert "smtp queued id=%s from=<%s> rcpts=1" % (m.group(1), ALICE) in \
        b.log("mailsrv")
    (uid, stored), = pair.store_b.wait_for(BEA, mk.encode(), after)
    assert stored.endswith(msg), stored[:800]
    stored = without_return_path(stored, ALICE)
    r = RECEIVED_RE.match(stored)
    assert r, stored[:600]
    assert r.group("helo") == b"localhost"      # A's [mailsrv] hostname
    assert r.group("ip") == b"127.0.0.1"
    assert r.group("with") == b"ESMTPS", r.group(0)
    assert r.group("tls") and b"TLS" in r.group("tls"), r.group(0)
    assert r.group("rcpt") == BEA.encode()
    # next: A's own Received (alice's authenticated submission), then
    # the Date and Message-ID A's submission added; then the message
    rest = stored[r.end():len(stored) - len(msg)]
    r2 = RECEIVED_RE.match(rest)
    assert r2 and r2.group("with") == b"ESMTPSA", rest
    assert re.fullmatch(rb"Date: [^\r\n]+\r\nMessage-ID: <[^>]+>\r\n",
                        rest[r2.end():]), rest
    # delivered once, nothing bounced to alice
    time.sleep(1.5)
    assert len(pair.store_b.find(BEA, mk.encode(), after)) == 1
    assert [d for d in deliveries(a, qid)] == [(BEA, "sent", status)]
    assert pair.store_a.find(ALICE, mk.encode()) == []


def test_peer_down_queues_retries_delivers_when_back(pair):
    """B's mailsrv stopped: alice's message is still accepted (250) by
    A, deferred with 4.x and retried with backoff; when B's mailsrv is
    back the message arrives at B exactly once."""
    a, b = pair.a, pair.b
    rc, problems = b.stop("mailsrv")
    assert not problems, "\n".join(problems)
    started = False
    try:
        mk = marker()
        msg = message(mk, BEA)
        after = pair.store_b.last_uid(BEA)
        t0 = time.monotonic()
        qid = send(a, [BEA], msg)
        got = wait_delivery(a, qid, BEA, "deferred", count=2, timeout=20)
        t_two = time.monotonic() - t0
        for st, status in got:
            assert re.match(r"4\.\d+\.\d+ ", status), status
        assert "4.4.1 connection to 127.0.0.1:%d failed" % b.port("smtp") \
            in got[0][1], got
        assert not [d for d in deliveries(a, qid) if d[1] != "deferred"]
        # retry_min 1s: two attempts come within ~1-2 s, not all at once
        assert t_two >= 0.9, t_two
        assert pair.store_b.find(BEA, mk.encode(), after) == []
        start_mailsrv(b)
        started = True
        t1 = time.monotonic()
        (_, status), = wait_delivery(a, qid, BEA, ("sent", "failed"),
                                     timeout=30)
        assert status.startswith("2.0.0"), status
        # backoff is capped at retry_max = 4s (+1 s tick, + slack)
        assert time.monotonic() - t1 < 15
        (uid, stored), = pair.store_b.wait_for(BEA, mk.encode(), after)
        assert stored.endswith(msg)
        stored = without_return_path(stored, ALICE)
        r = RECEIVED_RE.match(stored)
        assert r and r.group("with") == b"ESMTPS" and r.group("tls"), \
            stored[:400]
        time.sleep(1.5)
        assert len(pair.store_b.find(BEA, mk.encode(), after)) == 1
        states = [d[1] for d in deliveries(a, qid)]
        assert states.count("sent") == 1 and states[-1] == "sent", states
        assert pair.store_a.find(ALICE, mk.encode()) == []
    finally:
        if not started and "mailsrv" not in b.procs:
            start_mailsrv(b)


def test_unknown_user_at_peer_bounces_dsn_in_sender_inbox(pair):
    """alice -> unknown@b.amanat.test: B refuses at RCPT (550 5.1.1), A
    fails the recipient and queues a DSN from the null sender to alice;
    it is in alice's INBOX at A: multipart/report with a
    message/delivery-status naming the recipient, Action: failed,
    Status: 5.1.1, and the original's header section."""
    a = pair.a
    mk = marker()
    msg = message(mk, UNKNOWN_B)
    after = pair.store_a.last_uid(ALICE)
    qid = send(a, [UNKNOWN_B], msg)
    (_, status), = wait_delivery(a, qid, UNKNOWN_B, ("failed", "sent"))
    assert status.startswith("5.1.1"), status
    assert "delivery report queued id=" in a.log("mailsrv")
    (uid, dsn), = pair.store_a.wait_for(ALICE, mk.encode(), after)
    top, parts, blocks = dsn_parts(dsn)
    assert re.search(r"<MAILER-DAEMON@localhost>", top["From"]), top["From"]
    assert top["To"] == "<%s>" % ALICE, top["To"]
    assert top["Auto-Submitted"] == "auto-replied"
    assert parts[0].get_content_type() == "text/plain"
    assert UNKNOWN_B in parts[0].get_payload(decode=True).decode()
    assert blocks[0]["Reporting-MTA"] == "dns; localhost", dict(blocks[0])
    assert blocks[0]["X-Amanat-Queue-ID"] == qid, dict(blocks[0])
    rb = recipient_block(blocks, UNKNOWN_B)
    assert rb["Action"] == "failed", dict(rb)
    assert rb["Status"] == "5.1.1", dict(rb)
    assert (rb["Final-Recipient"] or "").replace(" ", "") == \
        "rfc822;" + UNKNOWN_B, dict(rb)
    assert rb["Diagnostic-Code"] and \
        rb["Diagnostic-Code"].startswith("smtp;"), dict(rb)
    # without RET=FULL: the original's header section only
    orig = parts[2]
    assert orig.get_content_type() == "text/rfc822-headers", \
        orig.get_content_type()
    ohdr = orig.get_payload(decode=True)
    assert ("Subject: relay %s" % mk).encode() in ohdr
    assert b"relay word" not in ohdr
    # the DSN came from the null sender and went to alice's INBOX once
    time.sleep(1.0)
    assert len(pair.store_a.find(ALICE, mk.encode(), after)) == 1
    rep = [l for l in a.log("mailsrv").splitlines()
           if "delivery report queued id=" in l and ALICE in l]
    assert rep, a.log("mailsrv")[-2000:]


def test_mixed_recipients_one_relayed_one_bounced(pair):
    """One transaction to bea and to unknown@b: bea gets the message,
    alice gets one DSN that reports only unknown@b."""
    a = pair.a
    mk = marker()
    msg = message(mk, BEA)
    after_a, after_b = (pair.store_a.last_uid(ALICE),
                        pair.store_b.last_uid(BEA))
    qid = send(a, [BEA, UNKNOWN_B], msg)
    (_, s1), = wait_delivery(a, qid, BEA, ("sent", "failed"))
    (_, s2), = wait_delivery(a, qid, UNKNOWN_B, ("failed", "sent"))
    assert s1.startswith("2.0.0") and s2.startswith("5.1.1"), (s1, s2)
    (_, stored), = pair.store_b.wait_for(BEA, mk.encode(), after_b)
    assert stored.endswith(msg)
    stored = without_return_path(stored, ALICE)
    r = RECEIVED_RE.match(stored)
    assert r and r.group("rcpt") == BEA.encode(), stored[:300]
    (_, dsn), = pair.store_a.wait_for(ALICE, mk.encode(), after_a)
    assert dsn.startswith(b"Return-Path: <>\r\n"), dsn[:200]  # a report
    _, _, blocks = dsn_parts(dsn)
    assert len(blocks) == 2, [dict(b) for b in blocks]
    rb = recipient_block(blocks, UNKNOWN_B)
    assert rb["Action"] == "failed" and rb["Status"] == "5.1.1", dict(rb)


def test_local_and_remote_recipients_in_one_message(pair):
    """One transaction to bob (local to A) and bea (at B): bob's copy is
    stored by A's delivery batch, bea's goes out by relay after it; each
    gets exactly one copy and both are logged sent once."""
    a = pair.a
    mk = marker()
    msg = message(mk, BEA)
    after_a, after_b = (pair.store_a.last_uid(BOB),
                        pair.store_b.last_uid(BEA))
    qid = send(a, [BOB, BEA], msg)
    (_, s1), = wait_delivery(a, qid, BOB, ("sent", "failed"))
    (_, s2), = wait_delivery(a, qid, BEA, ("sent", "failed"))
    assert s1.startswith("2.0.0") and s2.startswith("2.0.0"), (s1, s2)
    (_, local), = pair.store_a.wait_for(BOB, mk.encode(), after_a)
    (_, remote), = pair.store_b.wait_for(BEA, mk.encode(), after_b)
    assert local.endswith(msg) and remote.endswith(msg)
    time.sleep(1.0)
    assert len(pair.store_a.find(BOB, mk.encode(), after_a)) == 1
    assert len(pair.store_b.find(BEA, mk.encode(), after_b)) == 1
    states = sorted((r, st) for r, st, _ in deliveries(a, qid))
    assert states == sorted([(BOB, "sent"), (BEA, "sent")]), states


def test_delay_report_sent_once(pair):
    """NOTIFY=DELAY to a route nobody answers: after delay_warning (2 s
    here) alice gets one DSN, Action: delayed, Status 4.x, for that
    recipient; later retries send no second one."""
    a = pair.a
    mk = marker()
    rcpt = "late@" + CLOSED_DOMAIN
    after = pair.store_a.last_uid(ALICE)
    qid = send(a, [rcpt], message(mk, rcpt),
               rcpt_opts=["NOTIFY=DELAY,FAILURE"])
    (_, dsn), = pair.store_a.wait_for(ALICE, mk.encode(), after)
    top, parts, blocks = dsn_parts(dsn)
    assert "Delayed" in top["Subject"], top["Subject"]
    rb = recipient_block(blocks, rcpt)
    assert rb["Action"] == "delayed", dict(rb)
    assert rb["Status"].startswith("4."), dict(rb)
    # two more attempts (retry_max 4 s): still one report
    wait_delivery(a, qid, rcpt, "deferred", count=4, timeout=30.0)
    assert len(pair.store_a.find(ALICE, mk.encode(), after)) == 1
    assert a.log("mailsrv").count("delivery report queued id=") >= 1


def test_failure_and_success_reports_both_sent(pair):
    """bea asked NOTIFY=SUCCESS, unknown@b fails: alice gets a failure
    report for unknown@b and a success report for bea."""
    a = pair.a
    mk = marker()
    after = pair.store_a.last_uid(ALICE)
    qid = send(a, [BEA, UNKNOWN_B], message(mk, BEA),
               rcpt_opts={BEA: ["NOTIFY=SUCCESS"], UNKNOWN_B: []})
    wait_delivery(a, qid, BEA, ("sent", "failed"))
    wait_delivery(a, qid, UNKNOWN_B, ("failed", "sent"))
    got = pair.store_a.wait_for(ALICE, mk.encode(), after, count=2)
    actions = {}
    for _, dsn in got:
        _, _, blocks = dsn_parts(dsn)
        for b in blocks[1:]:
            addr = (b.get("Final-Recipient") or "").split(";")[-1].strip()
            actions[addr.lower()] = b["Action"]
    assert actions == {UNKNOWN_B: "failed", BEA: "delivered"}, actions


# ---------------------------------------------------------------- TLS policy

def check_deferred_nothing_sent(pair, dom, expect):
    a, fake = pair.a, pair.fakes[dom]
    mk = marker()
    rcpt = "someone@" + dom
    qid = send(a, [rcpt], message(mk, rcpt))
    got = wait_delivery(a, qid, rcpt, ("deferred", "sent", "failed"))
    assert got[0][0] == "deferred", got
    assert got[0][1].startswith(expect), got
    for s in fake.snapshot():
        assert not s["mails"], s
        cmds = [c[4:] if c.startswith("tls ") else c for c in s["cmds"]]
        assert not [c for c in cmds
                    if c.upper().startswith(("MAIL", "RCPT", "DATA"))], s
    return qid, got


def test_required_tls_untrusted_certificate_defers(pair):
    """A certificate from a CA not in [tls] ca: the handshake fails,
    the message is deferred (4.7.5) and no MAIL is sent."""
    qid, got = check_deferred_nothing_sent(pair, "untrusted.test", "4.7.5")
    fake = pair.fakes["untrusted.test"]
    s = wait_fake(fake, lambda s: s["tls_error"] is not None)
    assert not s["tls"], s


def test_required_tls_wrong_name_defers(pair):
    """A trusted certificate that does not name the route's host
    (127.0.0.1): verification fails, deferred, nothing sent."""
    check_deferred_nothing_sent(pair, "wrongname.test", "4.7.5")
    s = wait_fake(pair.fakes["wrongname.test"],
                  lambda s: s["tls_error"] is not None)
    assert not s["tls"], s


def test_opportunistic_tls_unverified_certificate_delivers(pair):
    """A domain not in relay_tls_domains whose peer offers STARTTLS with
    a self-signed certificate: TLS is used, unverified, and the message
    is delivered (dot-stuffed on the wire, the same bytes after)."""
    a, fake = pair.a, pair.fakes["opp.test"]
    mk = marker()
    rcpt = "x@opp.test"
    body = ".leading dot %s\r\n..two\r\n.\r\nend\r\n" % mk
    msg = message(mk, rcpt, body=body)
    qid = send(a, [rcpt], msg)
    (_, status), = wait_delivery(a, qid, rcpt, ("sent", "failed"))
    assert status.startswith("2.0.0 Ok: queued as FAKE"), status
    (s, (mail, rcpts, data)), = fake_mails(fake, mk.encode())
    assert s["tls"], s
    assert mail.startswith("MAIL FROM:<%s>" % ALICE), mail
    assert rcpts == ["RCPT TO:<%s>" % rcpt], rcpts
    assert data.endswith(msg), data[-400:]
    assert not s["early"], s


def test_closed_port_defers_with_4xx(pair):
    """A route to a port nobody listens on: deferred (4.4.1)."""
    a = pair.a
    mk = marker()
    rcpt = "x@" + CLOSED_DOMAIN
    qid = send(a, [rcpt], message(mk, rcpt))
    (st, status), = wait_delivery(a, qid, rcpt,
                                  ("deferred", "sent", "failed"))
    assert st == "deferred" and status.startswith(
        "4.4.1 connection to 127.0.0.1:"), status


def delivery_times(node, qid, rcpt):
    """[(seconds since the epoch, state, status)] of qid's delivery log
    lines for rcpt (the log's own UTC timestamps)."""
    out = []
    for line in node.log("mailsrv").splitlines():
        m = DELIVERY_RE.search(line)
        if m and m.group(1) == qid and m.group(2) == rcpt:
            ts = datetime.datetime.strptime(line[:23],
                                            "%Y-%m-%dT%H:%M:%S.%f")
            out.append((ts.replace(tzinfo=datetime.timezone.utc)
                        .timestamp(), m.group(3), m.group(4)))
    return out


def test_retry_schedule_not_delayed_by_other_mail(pair):
    """retry_min 1s doubling to retry_max 4s: a deferred message is
    retried about 1, 2 and 4 s after its attempts, also when other mail
    was just delivered (each delivery and each submission wakes the
    queue runner; that must not postpone the periodic retries)."""
    a = pair.a
    s = submission(a, ALICE)
    try:
        qids = []
        for i in range(12):
            code, text = s.mail(ALICE)
            assert code == 250, text
            code, text = s.rcpt(BOB)
            assert code == 250, text
            code, text = s.data(message(marker(), BOB))
            assert code == 250, text
            qids.append(queued_id(text))
    finally:
        s.quit()
    for q in qids:
        wait_delivery(a, q, BOB, ("sent", "failed"))
    mk = marker()
    rcpt = "y@" + CLOSED_DOMAIN
    qid = send(a, [rcpt], message(mk, rcpt))
    t0 = time.monotonic()
    deadline = t0 + 14
    while time.monotonic() < deadline:
        times = delivery_times(a, qid, rcpt)
        if len(times) >= 4:
            break
        time.sleep(0.2)
    times = delivery_times(a, qid, rcpt)
    assert all(st == "deferred" for _, st, _ in times), times
    gaps = [round(b[0] - a_[0], 2) for a_, b in zip(times, times[1:])]
    # attempts at +0, ~+1, ~+2, ~+4 s (1 s queue tick): 4 attempts in ~8 s
    assert len(times) >= 4, (
        "only %d attempt(s) in %.0f s (gaps %s); retry_min=1s, "
        "retry_max=4s" % (len(times), time.monotonic() - t0, gaps))
    assert all(g <= 6.5 for g in gaps), gaps


# ---------------------------------------------------------------- parameters

def test_dsn_and_size_parameters_to_dsn_peer(pair):
    """A peer with SIZE and DSN (verified TLS): MAIL carries SIZE, RET and
    ENVID; RCPT carries NOTIFY and ORCPT as the submission gave them; a
    refused recipient (550) bounces to alice."""
    a, fake = pair.a, pair.fakes["ext.test"]
    mk = marker()
    rcpt, bad = "x@ext.test", "reject@ext.test"
    msg = message(mk, rcpt)
    after = pair.store_a.last_uid(ALICE)
    qid = send(a, [rcpt, bad], msg,
               mail_opts=["RET=HDRS", "ENVID=env+2B" + mk],
               rcpt_opts={rcpt: ["NOTIFY=FAILURE,DELAY",
                                 "ORCPT=rfc822;orig+2B" + rcpt]})
    (_, status), = wait_delivery(a, qid, rcpt, ("sent", "failed"))
    assert status.startswith("2.0.0"), status
    (_, st2), = wait_delivery(a, qid, bad, ("failed", "sent"))
    assert st2.startswith("5.1.1"), st2
    (s, (mail, rcpts, data)), = fake_mails(fake, mk.encode())
    assert s["tls"], s
    m = re.fullmatch(r"MAIL FROM:<%s>(?P<params>.*)" % re.escape(ALICE),
                     mail)
    assert m, mail
    params = m.group("params").split()
    size = [p for p in params if p.startswith("SIZE=")]
    assert size and int(size[0][5:]) >= len(msg), params
    assert "RET=HDRS" in params, params
    assert "ENVID=env+2B" + mk in params, params
    r1 = [r for r in rcpts if r.startswith("RCPT TO:<%s>" % rcpt)]
    assert len(r1) == 1, rcpts
    assert "NOTIFY=FAILURE,DELAY" in r1[0].split(), r1
    assert "ORCPT=rfc822;orig+2B" + rcpt in r1[0].split(), r1
    assert rcpts == [r1[0], "RCPT TO:<%s>" % bad], rcpts
    assert data.endswith(msg)
    (_, dsn), = pair.store_a.wait_for(ALICE, mk.encode(), after)
    _, _, blocks = dsn_parts(dsn)
    assert blocks[0]["Original-Envelope-Id"] == "env+" + mk, dict(blocks[0])
    rb = recipient_block(blocks, bad)
    assert rb["Action"] == "failed" and rb["Status"] == "5.1.1", dict(rb)
    assert len(blocks) == 2, [dict(b) for b in blocks]


def test_smtputf8_message_relayed_with_smtputf8(pair):
    """RFC 6531: a message submitted with SMTPUTF8 (UTF-8 in its header)
    is relayed to a peer that advertises SMTPUTF8 with the SMTPUTF8
    parameter on MAIL."""
    a, fake = pair.a, pair.fakes["ext.test"]
    mk = marker()
    rcpt = "u@ext.test"
    msg = message(mk, rcpt, headers=[("X-Greeting", "\u0645\u0631\u062d"
                                                    "\u0628\u0627")],
                  body="\u0633\u0644\u0627\u0645 %s\r\n" % mk)
    qid = send(a, [rcpt], msg, mail_opts=["SMTPUTF8", "BODY=8BITMIME"])
    (_, status), = wait_delivery(a, qid, rcpt, ("sent", "failed"))
    (s, (mail, rcpts, data)), = fake_mails(fake, mk.encode())
    params = mail.upper().split()[2:]
    assert "BODY=8BITMIME" in params, mail
    assert "SMTPUTF8" in params, \
        "SMTPUTF8 message relayed without SMTPUTF8: %r" % mail
    assert data.endswith(msg)


# ---------------------------------------------------------------- plaintext

def test_required_tls_not_offered_defers(pair):
    """A peer that does not offer STARTTLS: deferred with "TLS required
    but not offered", no MAIL in plaintext."""
    qid, got = check_deferred_nothing_sent(pair, "notls.test", "4.7.5")
    assert "TLS required" in got[0][1], got


def test_opportunistic_plaintext_without_starttls(pair):
    """A peer that offers neither STARTTLS nor extensions: plaintext
    delivery (the domain does not require TLS)."""
    a, fake = pair.a, pair.fakes["plain.test"]
    mk = marker()
    rcpt = "x@plain.test"
    msg = message(mk, rcpt)
    qid = send(a, [rcpt], msg)
    (_, status), = wait_delivery(a, qid, rcpt, ("sent", "failed"))
    assert status.startswith("2.0.0"), status
    (s, (mail, rcpts, data)), = fake_mails(fake, mk.encode())
    assert not s["tls"], s
    assert data.endswith(msg)


def test_no_body_8bitmime_parameter_to_peer_without_8bitmime(pair):
    """RFC 6152: BODY=8BITMIME only to a server that advertised 8BITMIME.
    An 8-bit message (BODY=8BITMIME at submission) to a peer without
    the extension must not be sent with the parameter (a strict server
    refuses the MAIL with 555 and the message would bounce)."""
    a, fake = pair.a, pair.fakes["plain.test"]
    mk = marker()
    rcpt = "y@plain.test"
    msg = message(mk, rcpt, body="Gr\u00fc\u00dfe %s\r\n" % mk)
    qid = send(a, [rcpt], msg, mail_opts=["BODY=8BITMIME"])
    wait_delivery(a, qid, rcpt, ("sent", "failed", "deferred"))
    cmds = [c for s in fake.snapshot() for c in s["cmds"]
            if c.upper().startswith("MAIL FROM:<%s>" % ALICE.upper())]
    assert cmds, fake.snapshot()
    for c in cmds:
        assert "BODY=" not in c.upper(), \
            "MAIL with BODY= to a peer without 8BITMIME: %r" % c


# ---------------------------------------------------------------- injection

def test_starttls_response_injection_ignored(pair):
    """A peer (or a man in the middle) sends "220 ready" and, in the same
    plaintext packet, "250 injected" before the TLS handshake.  Data
    received before the handshake must be discarded (CVE-2011-0411
    class): the relay must not take the plaintext "250" as the reply to
    its EHLO over TLS and must not send MAIL before the real reply (the
    peer offers no PIPELINING)."""
    a, fake = pair.a, pair.fakes["inject.test"]
    mk = marker()
    rcpt = "x@inject.test"
    msg = message(mk, rcpt)
    qid = send(a, [rcpt], msg)
    got = wait_delivery(a, qid, rcpt, ("sent", "failed", "deferred"),
                        timeout=15)
    wait_fake(fake, lambda s: s["tls"] and len(s["cmds"]) >= 3)
    time.sleep(1.0)
    sessions = [x for x in fake.snapshot() if x["tls"]]
    assert sessions, fake.snapshot()
    for x in sessions:
        assert not x["early"], (
            "relay sent %r before the reply to its EHLO over TLS: the "
            "plaintext injected after 220 was taken as that reply; "
            "commands: %r" % (x["early"], x["cmds"]))
    # and so the message is delivered normally
    assert got[0][0] == "sent", got
    assert len(fake_mails(fake, mk.encode())) == 1
