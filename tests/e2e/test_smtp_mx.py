"""
Relay by DNS MX end to end: node A has no relay_routes for B's domain;
it finds B through a tiny DNS server in this process ([mailsrv]
dns_resolver = 127.0.0.1@port), and reaches MX hosts on B's SMTP port
([mailsrv] relay_port; MX means port 25, which tests cannot bind).

  A (demo departments, cloned)  --MX lookup-->  TestDNS (UDP+TCP)
  A --SMTP, STARTTLS verified against the MX host name--> B (own init,
      own CA, department "bdept" for bnode.example, user bea; its server
      certificate names mx.bnode.example and bnode.example)

The zone is a dict the tests change as they go (TTL 0, so libunbound
does not cache answers; it does cache a SERVFAIL for a few seconds).
The names are under .example: libunbound answers .test and .invalid
itself (RFC 6761 local zones) with NXDOMAIN.

Acceptance:
  - mail to bea@bnode.example, found only by MX: the best preference
    (10, listed after the 20 in the answer) is used, TLS is verified
    against its name, the message is in bea's INBOX at B;
  - the best MX refuses connections (on its IPv4 and IPv6 address): the
    next one gets the mail, once;
  - the best MX greets with 220 but then answers EHLO with 421, does not
    offer STARTTLS (TLS required) or presents a certificate that does
    not verify: the next one gets the mail, once, and the first never
    saw a MAIL command;
  - no MX, but an address: the domain itself is the MX (RFC 5321 5.1);
  - an MX host whose certificate does not name it (TLS required):
    deferred 4.7.5, nothing sent;
  - NXDOMAIN: a DSN in alice's INBOX, Status 5.1.2; a null MX (RFC 7505):
    5.1.10; MX hosts without any address: 5.4.4;
  - SERVFAIL: the message stays queued (4.4.3, retried) and is delivered
    once DNS answers;
  - a server that does not answer: deferred after dns_timeout (4.4.3).
The relay's own behaviour (TLS policy, DSN parameters, bounces from the
peer) is tested over routes in test_smtp_relay.py, whose helpers this
file reuses.

Run: /usr/bin/python3 -m pytest -q tests/e2e/test_smtp_mx.py
(AMANAT_BUILD=build/asan for the sanitizer build).
"""
import re
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

from smtp_util import ALICE, Store, without_return_path
from test_smtp_relay import (RECEIVED_RE, deliveries, dsn_parts, marker,
                             message, recipient_block, send,
                             start_demo_trusting, wait_delivery)
from test_smtp_relay import start_node_b as relay_node_b

B_DOMAIN = "bnode.example"
BEA = "bea@" + B_DOMAIN
MX_NAME = "mx." + B_DOMAIN          # B's certificate names it
WRONG_DOMAIN = "wrongname.example"  # its MX is not in B's certificate
DOWN_V4 = "127.0.0.3"               # nothing listens there: refused
FLAKY_V4 = "127.0.0.2"              # FlakyMX listens there
FLAKY_NAME = "flaky." + B_DOMAIN

QTYPES = {1: "A", 15: "MX", 28: "AAAA"}


# ---------------------------------------------------------------- DNS

def wire_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def read_qname(msg, off):
    """The question name (uncompressed, as resolvers send it)."""
    labels = []
    while True:
        n = msg[off]
        off += 1
        if n == 0:
            return ".".join(labels), off
        if n > 63 or off + n > len(msg):
            raise ValueError("bad question name")
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n


class TestDNS:
    """An authoritative-looking DNS server on 127.0.0.1 (UDP and TCP,
    one random port) for the names in self.zone:
        {name: {"MX": [(pref, host)], "A": [...], "AAAA": [...]}}
    ("." as an MX host is a null MX).  Other names: NXDOMAIN; names in
    self.servfail: SERVFAIL; names in self.drop: no answer at all.
    Every question is recorded in self.queries as (name, type)."""

    __test__ = False        # not a test class for pytest

    def __init__(self):
        self.zone = {}
        self.servfail = set()
        self.drop = set()
        self.queries = []
        self.lock = threading.Lock()
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                tcp.bind(("127.0.0.1", port))
                break
            except OSError:
                udp.close()
                tcp.close()
        else:
            raise RuntimeError("no port free for both UDP and TCP")
        tcp.listen(16)
        self.udp, self.tcp, self.port = udp, tcp, port
        self.stopped = False
        for target in (self.serve_udp, self.serve_tcp):
            threading.Thread(target=target, daemon=True).start()

    def set_zone(self, zone, servfail=(), drop=()):
        with self.lock:
            self.zone = {k.lower(): v for k, v in zone.items()}
            self.servfail = set(servfail)
            self.drop = set(drop)

    def asked(self, name, qtype):
        with self.lock:
            return sum(1 for q in self.queries if q == (name, qtype))

    def answer(self, q):
        if len(q) < 12:
            return None
        qid, flags, qd = struct.unpack(">HHH", q[:6])
        if qd != 1 or flags & 0x8000:
            return None
        name, off = read_qname(q, 12)
        qtype, _ = struct.unpack(">HH", q[off:off + 4])
        question = q[12:off + 4]
        key = name.lower().rstrip(".")
        with self.lock:
            self.queries.append((key, QTYPES.get(qtype, str(qtype))))
            if key in self.drop:
                return None
            servfail = key in self.servfail
            rec = self.zone.get(key)
        answers, rcode = [], 0
        if servfail:
            rcode = 2
        elif rec is None:
            rcode = 3
        elif qtype == 15:
            for pref, host in rec.get("MX", []):
                answers.append(struct.pack(">H", pref) + wire_name(host))
        elif qtype == 1:
            answers = [socket.inet_aton(a) for a in rec.get("A", [])]
        elif qtype == 28:
            answers = [socket.inet_pton(socket.AF_INET6, a)
                       for a in rec.get("AAAA", [])]
        # QR, opcode 0, AA, RD copied, RA
        hflags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
        auth = []
        if rcode in (0, 3) and not answers:
            # an SOA with minimum 0: negative answers are not cached
            soa = (wire_name("ns.example") + wire_name("hostmaster.example")
                   + struct.pack(">IIIII", 1, 60, 60, 60, 0))
            auth.append(wire_name("example") +
                        struct.pack(">HHIH", 6, 1, 0, len(soa)) + soa)
        out = struct.pack(">HHHHHH", qid, hflags, 1, len(answers),
                          len(auth), 0) + question
        for rd in answers:
            out += b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 0,
                                             len(rd)) + rd
        return out + b"".join(auth)

    def serve_udp(self):
        while not self.stopped:
            try:
                q, peer = self.udp.recvfrom(4096)
            except OSError:
                return
            try:
                r = self.answer(q)
            except (ValueError, struct.error):
                r = None
            if r is not None:
                self.udp.sendto(r, peer)

    def serve_tcp(self):
        while not self.stopped:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self.tcp_session, args=(conn,),
                             daemon=True).start()

    def tcp_session(self, conn):
        conn.settimeout(10)
        buf = b""
        try:
            while True:
                while len(buf) < 2 or len(buf) < 2 + struct.unpack(
                        ">H", buf[:2])[0]:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                n = struct.unpack(">H", buf[:2])[0]
                q, buf = buf[2:2 + n], buf[2 + n:]
                try:
                    r = self.answer(q)
                except (ValueError, struct.error):
                    r = None
                if r is not None:
                    conn.sendall(struct.pack(">H", len(r)) + r)
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self):
        self.stopped = True
        self.udp.close()
        self.tcp.close()


def query(port, name, qtype, tcp=False):
    """One question to the test server: (rcode, answer count)."""
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + \
        wire_name(name) + struct.pack(">HH", qtype, 1)
    if tcp:
        with socket.create_connection(("127.0.0.1", port), 5) as s:
            s.sendall(struct.pack(">H", len(q)) + q)
            n = struct.unpack(">H", s.recv(2))[0]
            r = b""
            while len(r) < n:
                r += s.recv(n - len(r))
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(q, ("127.0.0.1", port))
            r = s.recv(4096)
    _, flags, _, an = struct.unpack(">HHHH", r[:8])
    return flags & 0xf, an


# ---------------------------------------------------------------- nodes

class FlakyMX:
    """An SMTP server on FLAKY_V4 that greets with 220 and then fails the
    way it is told: "ehlo-421" (421 to EHLO, then closes), "no-starttls"
    (EHLO without STARTTLS), "bad-cert" (STARTTLS with a self-signed
    certificate).  It records the commands it got."""

    def __init__(self, port, mode, certdir):
        self.mode = mode
        self.commands = []
        self.sessions = 0
        self.ctx = None
        if mode == "bad-cert":
            key, crt = certdir / "flaky.key", certdir / "flaky.crt"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                            "-nodes", "-keyout", str(key), "-out", str(crt),
                            "-days", "1", "-subj", "/CN=" + FLAKY_NAME,
                            "-addext", "subjectAltName=DNS:" + FLAKY_NAME],
                           check=True, capture_output=True)
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(str(crt), str(key))
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((FLAKY_V4, port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.done = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.done:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.sessions += 1
            try:
                self.session(conn)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def session(self, conn):
        conn.settimeout(10)
        f = conn.makefile("rwb")
        f.write(b"220 " + FLAKY_NAME.encode() + b" ESMTP\r\n")
        f.flush()
        for line in f:
            cmd = line.strip().decode("ascii", "replace")
            self.commands.append(cmd)
            verb = cmd.split(" ")[0].upper()
            if verb == "EHLO" and self.mode == "ehlo-421":
                f.write(b"421 4.3.2 going away\r\n")
                f.flush()
                return
            if verb == "EHLO":
                f.write(b"250-" + FLAKY_NAME.encode() + b"\r\n")
                if self.mode == "bad-cert":
                    f.write(b"250-STARTTLS\r\n")
                f.write(b"250 8BITMIME\r\n")
            elif verb == "STARTTLS" and self.ctx is not None:
                f.write(b"220 2.0.0 go ahead\r\n")
                f.flush()
                tls = self.ctx.wrap_socket(conn, server_side=True)
                tls.recv(1)     # the client gives up on the certificate
                return
            elif verb == "QUIT":
                f.write(b"221 2.0.0 bye\r\n")
                f.flush()
                return
            else:
                f.write(b"503 5.5.1 not now\r\n")
            f.flush()

    def stop(self):
        self.done = True
        self.sock.close()
        self.thread.join(5)


def good_zone():
    """bnode.example: MX 20 backup (listed first), MX 10 mx."""
    return {
        B_DOMAIN: {"MX": [(20, "backup." + B_DOMAIN), (10, MX_NAME)]},
        MX_NAME: {"A": ["127.0.0.1"]},
        "backup." + B_DOMAIN: {"A": [DOWN_V4]},
        WRONG_DOMAIN: {"MX": [(10, "alias." + B_DOMAIN)]},
        "alias." + B_DOMAIN: {"A": ["127.0.0.1"]},
    }


def start_node_b(d):
    return relay_node_b(d, B_DOMAIN, {"tls": {
        "server_names": "localhost,127.0.0.1,::1,%s,%s" % (MX_NAME,
                                                          B_DOMAIN)}})


def start_node_a(d, b, dns):
    return start_demo_trusting(d, {
        "dns_resolver": "127.0.0.1@%d" % dns.port,
        "dns_timeout": "1s",     # the least
        "relay_port": str(b.port("smtp")),
        "relay_tls_domains": "%s,%s" % (B_DOMAIN, WRONG_DOMAIN),
        "retry_min": "1s", "retry_max": "2s"}, [b.ca])


class Env:
    pass


@pytest.fixture(scope="module")
def mx(tmp_path_factory):
    base = tmp_path_factory.mktemp("mx")
    dns = TestDNS()
    nodes = []
    try:
        (base / "b").mkdir()
        (base / "a").mkdir()
        b = start_node_b(base / "b")
        nodes.append(b)
        a = start_node_a(base / "a", b, dns)
        nodes.append(a)
        e = Env()
        e.a, e.b, e.dns = a, b, dns
        e.store_a, e.store_b = Store(a), Store(b)
        yield e
    finally:
        dns.stop()
        problems = []
        for n in reversed(nodes):
            problems += n.stop_all()
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


def connects(node, since=0):
    """(host, port, addr) of the relay's connection attempts to DNS-found
    hosts logged after offset `since`."""
    return re.findall(r"relay connecting host=([^: ]+):(\d+) addr=(\S+) ",
                      node.log("mailsrv")[since:])


def log_len(node):
    return len(node.log("mailsrv"))


def send_to_bea(mx):
    """alice on A writes to bea; returns once A logged it sent (2.0.0):
    (marker, message, bea's last UID before, A's log offset before,
    queue id)."""
    a = mx.a
    mk = marker()
    msg = message(mk, BEA)
    after = mx.store_b.last_uid(BEA)
    since = log_len(a)
    qid = send(a, [BEA], msg)
    (_, status), = wait_delivery(a, qid, BEA, ("sent", "failed"))
    assert status.startswith("2.0.0"), status
    return mk, msg, after, since, qid


def stored_once(mx, mk, msg, after, qid):
    """bea's INBOX at B has the message once (still after a second), and
    A logged one delivery; returns the stored bytes."""
    (_, stored), = mx.store_b.wait_for(BEA, mk.encode(), after)
    assert stored.endswith(msg)
    time.sleep(1.0)
    assert len(mx.store_b.find(BEA, mk.encode(), after)) == 1
    assert [d[1] for d in deliveries(mx.a, qid)] == ["sent"]
    return stored


# ---------------------------------------------------------------- tests

def test_dns_server_answers(mx):
    """The test server itself: MX over UDP and TCP, NXDOMAIN, SERVFAIL."""
    mx.dns.set_zone(good_zone(), servfail=["sf.example"])
    assert query(mx.dns.port, B_DOMAIN, 15) == (0, 2)
    assert query(mx.dns.port, B_DOMAIN, 15, tcp=True) == (0, 2)
    assert query(mx.dns.port, MX_NAME, 28) == (0, 0)
    assert query(mx.dns.port, "nope.example", 1) == (3, 0)
    assert query(mx.dns.port, "sf.example", 15) == (2, 0)


def test_mx_best_preference_delivers_over_verified_tls(mx):
    """No route for bnode.example: A asks DNS; the MX of preference 10
    (listed after the 20) is tried first and takes the mail over
    STARTTLS verified against its name; the backup is never tried."""
    a, b = mx.a, mx.b
    mx.dns.set_zone(good_zone())
    mk, msg, after, since, qid = send_to_bea(mx)
    assert connects(a, since) == [(MX_NAME, str(b.port("smtp")),
                                   "127.0.0.1")], a.log("mailsrv")[since:]
    assert "relay connecting host=%s:%d addr=127.0.0.1 rcpts=1 " \
        "tls_required=1" % (MX_NAME, b.port("smtp")) in a.log("mailsrv")
    assert re.search(r"mx lookup domain=%s result=ok implicit=0 hosts=2 "
                     r"candidates=2 first=%s\[127\.0\.0\.1\]" %
                     (re.escape(B_DOMAIN), re.escape(MX_NAME)),
                     a.log("mailsrv")[since:])
    assert mx.dns.asked(B_DOMAIN, "MX") >= 1
    assert mx.dns.asked(MX_NAME, "A") >= 1
    stored = stored_once(mx, mk, msg, after, qid)
    stored = without_return_path(stored, ALICE)
    r = RECEIVED_RE.match(stored)
    assert r and r.group("with") == b"ESMTPS" and r.group("tls"), \
        stored[:400]
    assert mx.store_a.find(ALICE, mk.encode()) == []


def test_best_mx_refuses_next_one_gets_the_mail(mx):
    """The best MX (preference 5) refuses connections on its IPv4 and
    IPv6 addresses: A tries them in that order, then the next MX
    (preference 10), which takes the mail."""
    a, b = mx.a, mx.b
    zone = good_zone()
    zone[B_DOMAIN]["MX"].append((5, "down." + B_DOMAIN))
    zone["down." + B_DOMAIN] = {"A": [DOWN_V4], "AAAA": ["::1"]}
    mx.dns.set_zone(zone)
    mk, msg, after, since, qid = send_to_bea(mx)
    port = str(b.port("smtp"))
    assert connects(a, since) == [("down." + B_DOMAIN, port, DOWN_V4),
                                  ("down." + B_DOMAIN, port, "::1"),
                                  (MX_NAME, port, "127.0.0.1")], \
        a.log("mailsrv")[since:]
    assert "relay target failed host=down.%s[%s]:%s" % (
        B_DOMAIN, DOWN_V4, port) in a.log("mailsrv")[since:]
    stored_once(mx, mk, msg, after, qid)


@pytest.mark.parametrize("mode", ["ehlo-421", "no-starttls", "bad-cert"])
def test_best_mx_fails_after_greeting_next_one_gets_the_mail(
        mx, mode, tmp_path):
    """The best MX (preference 5) greets with 220, then fails before any
    recipient had an answer: 421 to EHLO, no STARTTLS for a domain that
    requires TLS, or a certificate the node CA did not sign.  A passes
    the turn to the next MX (preference 10), which takes the mail, once;
    the flaky one never saw MAIL FROM."""
    a, b = mx.a, mx.b
    port = b.port("smtp")
    flaky = FlakyMX(port, mode, tmp_path)
    try:
        zone = good_zone()
        zone[B_DOMAIN]["MX"].append((5, FLAKY_NAME))
        zone[FLAKY_NAME] = {"A": [FLAKY_V4]}
        mx.dns.set_zone(zone)
        mk, msg, after, since, qid = send_to_bea(mx)
        assert connects(a, since) == [(FLAKY_NAME, str(port), FLAKY_V4),
                                      (MX_NAME, str(port), "127.0.0.1")], \
            a.log("mailsrv")[since:]
        assert "relay target failed host=%s[%s]:%d" % (
            FLAKY_NAME, FLAKY_V4, port) in a.log("mailsrv")[since:]
        assert flaky.sessions == 1
        assert flaky.commands and flaky.commands[0].startswith("EHLO ")
        assert not [c for c in flaky.commands
                    if c.upper().startswith(("MAIL", "RCPT", "DATA"))], \
            flaky.commands
        stored_once(mx, mk, msg, after, qid)
    finally:
        flaky.stop()


def test_no_mx_implicit_mx_is_the_domain(mx):
    """No MX records, but an A record: the domain is its own MX, and
    TLS is verified against the domain's name."""
    a, b = mx.a, mx.b
    mx.dns.set_zone({B_DOMAIN: {"A": ["127.0.0.1"]}})
    mk, msg, after, since, qid = send_to_bea(mx)
    assert connects(a, since) == [(B_DOMAIN, str(b.port("smtp")),
                                   "127.0.0.1")]
    assert "mx lookup domain=%s result=ok implicit=1" % B_DOMAIN in \
        a.log("mailsrv")[since:]
    (_, stored), = mx.store_b.wait_for(BEA, mk.encode(), after)
    assert stored.endswith(msg)


def test_mx_host_not_in_certificate_defers(mx):
    """wrongname.example requires TLS; its MX alias.bnode.example is B,
    whose certificate does not name it: deferred 4.7.5, nothing sent."""
    a = mx.a
    mx.dns.set_zone(good_zone())
    rcpt = "bea@" + WRONG_DOMAIN
    since = log_len(a)
    qid = send(a, [rcpt], message(marker(), rcpt))
    got = wait_delivery(a, qid, rcpt, ("deferred", "sent", "failed"))
    assert got[0][0] == "deferred" and got[0][1].startswith("4.7.5"), got
    assert connects(a, since)[0] == ("alias." + B_DOMAIN,
                                     str(mx.b.port("smtp")), "127.0.0.1")
    assert rcpt not in mx.b.log("mailsrv")


def check_bounce(mx, rcpts_status):
    """alice -> rcpts: each fails with its status; one DSN in alice's
    INBOX reports them all."""
    a = mx.a
    mk = marker()
    rcpts = list(rcpts_status)
    after = mx.store_a.last_uid(ALICE)
    qid = send(a, rcpts, message(mk, rcpts[0]))
    for rcpt, want in rcpts_status.items():
        (st, status), = wait_delivery(a, qid, rcpt, ("failed", "sent"))
        assert st == "failed" and status.startswith(want + " "), status
    (_, dsn), = mx.store_a.wait_for(ALICE, mk.encode(), after)
    top, parts, blocks = dsn_parts(dsn)
    assert top["To"] == "<%s>" % ALICE, top["To"]
    assert len(blocks) == 1 + len(rcpts), [dict(b) for b in blocks]
    for rcpt, want in rcpts_status.items():
        rb = recipient_block(blocks, rcpt)
        assert rb["Action"] == "failed", dict(rb)
        assert rb["Status"] == want, dict(rb)
    # failed at once: one attempt, no retry
    assert [d[1] for d in deliveries(a, qid)] == ["failed"] * len(rcpts)
    return dsn


def test_nxdomain_bounces_5_1_2(mx):
    mx.dns.set_zone(good_zone())
    rcpt = "someone@nowhere-mx.example"
    check_bounce(mx, {rcpt: "5.1.2"})
    assert mx.dns.asked("nowhere-mx.example", "MX") >= 1


def test_null_mx_and_no_address_bounce(mx):
    """A null MX ("0 .", RFC 7505): 5.1.10.  MX hosts that do not exist
    (NXDOMAIN for their A and AAAA): 5.4.4."""
    zone = good_zone()
    zone["nullmx.example"] = {"MX": [(0, ".")]}
    zone["ghostmx.example"] = {"MX": [(10, "ghost1.ghostmx.example"),
                                      (20, "ghost2.ghostmx.example")]}
    mx.dns.set_zone(zone)
    dsn = check_bounce(mx, {"x@nullmx.example": "5.1.10",
                            "y@ghostmx.example": "5.4.4"})
    assert b"null MX" in dsn
    assert mx.dns.asked("ghost2.ghostmx.example", "AAAA") >= 1


def test_servfail_defers_then_delivers(mx):
    """SERVFAIL for bnode.example: the message stays queued (4.4.3,
    retried with backoff) and nothing reaches B; once DNS answers, it
    is delivered, once."""
    a = mx.a
    mx.dns.set_zone(good_zone(), servfail=[B_DOMAIN])
    mk = marker()
    msg = message(mk, BEA)
    after = mx.store_b.last_uid(BEA)
    qid = send(a, [BEA], msg)
    got = wait_delivery(a, qid, BEA, "deferred", count=2, timeout=20)
    for st, status in got:
        assert status.startswith("4.4.3 ") and "SERVFAIL" in status, got
    assert not [d for d in deliveries(a, qid) if d[1] != "deferred"]
    assert mx.store_b.find(BEA, mk.encode(), after) == []
    mx.dns.set_zone(good_zone())
    # libunbound keeps the SERVFAIL a few seconds; retry_max is 2 s
    (_, status), = wait_delivery(a, qid, BEA, ("sent", "failed"),
                                 timeout=30)
    assert status.startswith("2.0.0"), status
    (_, stored), = mx.store_b.wait_for(BEA, mk.encode(), after)
    assert stored.endswith(msg)
    time.sleep(1.0)
    assert len(mx.store_b.find(BEA, mk.encode(), after)) == 1
    states = [d[1] for d in deliveries(a, qid)]
    assert states.count("sent") == 1 and states[-1] == "sent", states
    assert mx.store_a.find(ALICE, mk.encode()) == []


def test_silent_dns_defers_after_dns_timeout(mx):
    """The server drops the questions: after dns_timeout (1 s; libunbound
    itself gives up after about 2 s here) the recipient is deferred with
    4.4.3 "timed out".  (Last in this file: libunbound then keeps the
    server as slow for a while.)"""
    a = mx.a
    rcpt = "bea@silent.example"
    mx.dns.set_zone(good_zone(), drop=["silent.example"])
    t0 = time.monotonic()
    qid = send(a, [rcpt], message(marker(), rcpt))
    (st, status), = wait_delivery(a, qid, rcpt, ("deferred", "sent",
                                                 "failed"), timeout=30)
    assert st == "deferred", status
    assert status.startswith("4.4.3 ") and "timed out" in status, status
    assert time.monotonic() - t0 >= 0.9
    assert "mx lookup domain=silent.example result=tempfail" in \
        a.log("mailsrv")

