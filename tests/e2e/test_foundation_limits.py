"""
Connection limits and idle timeouts (common/net): a flood of idle
connections never locks out a new client (the least recently active one is
evicted, with a goodbye), and idle sessions are closed.
"""
import imaplib
import os
import resource
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from amanat_node import closed_by_peer, read_until_eof, recv_line

FLOOD = 300
LIMIT = "50"
SERVED_WITHIN = 10.0    # seconds; generous for ASan builds
FLOOD_SECONDS_MAX = 30  # a flood of FLOOD connections takes less


@pytest.fixture(autouse=True)
def nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Flood:
    """n idle TCP connections to a port, kept open and never read."""

    def __init__(self, port, n):
        self.socks = []
        try:
            for _ in range(n):
                self.socks.append(socket.create_connection(
                    ("127.0.0.1", port), timeout=10))
        except BaseException:
            self.close()
            raise

    def close(self):
        for s in self.socks:
            s.close()
        self.socks = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def limited(*sections):
    """max_connections = LIMIT, and (these tests make every connection
    from 127.0.0.1) no per-address limit."""
    out = {s: {"max_connections": LIMIT} for s in sections}
    if "mailsrv" in out:
        out["mailsrv"].update({"smtp_max_connections_per_ip": "0",
                               "imap_max_connections_per_ip": "0"})
    return out


def still_open(sock, first_line_prefix=None, wait=0.5):
    """The connection is open: optional first line, then no EOF."""
    buf = bytearray()
    if first_line_prefix is not None:
        line = recv_line(sock, 10, buf)
        if not line.startswith(first_line_prefix):
            return False
    sock.settimeout(wait)
    try:
        data = sock.recv(4096)
    except socket.timeout:
        return True
    except ConnectionResetError:
        return False
    return data != b""


def test_smtp_flood_new_client_served(make_node):
    node = make_node(limited("mailsrv"), daemons=("mailsrv",))
    with Flood(node.port("smtp"), FLOOD) as fl:
        t0 = time.monotonic()
        s = smtplib.SMTP("127.0.0.1", node.port("smtp"), timeout=15)
        try:
            code, msg = s.ehlo("client.example.org")
            assert code == 250, msg
            elapsed = time.monotonic() - t0
            assert elapsed < SERVED_WITHIN, "served after %.1fs" % elapsed
            assert s.noop()[0] == 250
        finally:
            s.quit()
        # the oldest was evicted with a goodbye, the newest kept
        old = read_until_eof(fl.socks[0], 10)
        assert old.startswith(b"220 "), old
        assert b"421 4.7.0 " in old and b"Too many connections" in old, old
        assert still_open(fl.socks[-1], b"220 ")
        assert node.alive("mailsrv")
    assert "evicted" in node.log("mailsrv")


def test_smtp_flood_does_not_starve_imap(make_node):
    """SMTP and IMAP keep separate pools: an SMTP flood evicts no IMAP
    session."""
    node = make_node(limited("mailsrv"), daemons=("mailsrv",))
    m = imaplib.IMAP4("127.0.0.1", node.port("imap"), timeout=15)
    try:
        with Flood(node.port("smtp"), FLOOD):
            assert m.noop()[0] == "OK"
    finally:
        m.logout()


def test_imap_flood_new_client_served(make_node):
    node = make_node(limited("mailsrv"), daemons=("mailsrv",))
    with Flood(node.port("imap"), FLOOD) as fl:
        t0 = time.monotonic()
        m = imaplib.IMAP4("127.0.0.1", node.port("imap"), timeout=15)
        try:
            assert m.welcome.startswith(b"* OK"), m.welcome
            assert m.capability()[0] == "OK"
            elapsed = time.monotonic() - t0
            assert elapsed < SERVED_WITHIN, "served after %.1fs" % elapsed
        finally:
            m.logout()
        old = read_until_eof(fl.socks[0], 10)
        assert old.startswith(b"* OK"), old
        assert b"* BYE Too many connections" in old, old
        assert still_open(fl.socks[-1], b"* OK")
        assert node.alive("mailsrv")


@pytest.mark.parametrize("svc", ["keyservice", "docstore"])
def test_https_flood_new_client_served(make_node, svc):
    node = make_node(limited(svc), daemons=(svc,))
    with Flood(node.port(svc), FLOOD) as fl:
        t0 = time.monotonic()
        r = subprocess.run(
            ["curl", "-sS"] + node.curl_args(svc) + ["-m", "15", "-o",
             "/dev/null", "-w", "%{http_code}",
             "https://127.0.0.1:%d/healthz" % node.port(svc)],
            capture_output=True, text=True, timeout=30)
        elapsed = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "200"
        assert elapsed < SERVED_WITHIN, "served after %.1fs" % elapsed
        assert closed_by_peer(fl.socks[0], 10), "oldest was not evicted"
        assert still_open(fl.socks[-1])
        assert node.alive(svc)


def test_smtp_thousand_idle_default_limit(make_node):
    node = make_node({"mailsrv": {"smtp_max_connections_per_ip": "0"}},
                     daemons=("mailsrv",))
    with Flood(node.port("smtp"), 1000) as fl:
        t0 = time.monotonic()
        s = smtplib.SMTP("127.0.0.1", node.port("smtp"), timeout=15)
        try:
            code, msg = s.ehlo("client.example.org")
            assert code == 250, msg
            elapsed = time.monotonic() - t0
            assert elapsed < SERVED_WITHIN, "served after %.1fs" % elapsed
        finally:
            s.quit()
        # under the default limit (10000) nobody was evicted
        assert still_open(fl.socks[0], b"220 ")
        assert still_open(fl.socks[-1], b"220 ")
        assert node.alive("mailsrv")
    assert "evicted" not in node.log("mailsrv")


def connect_from(port, src):
    s = socket.socket()
    s.settimeout(10)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def greeted(port, greeting, src="127.0.0.1"):
    """A connection from src that got its greeting.  Just after start the
    daemon may still count the ports' readiness probes from 127.0.0.1 for
    a moment: a refusal then is retried."""
    end = time.monotonic() + 10
    while True:
        c = connect_from(port, src)
        line = recv_line(c, 10, bytearray())
        if line.startswith(greeting):
            return c
        c.close()
        assert b"Too many connections" in line and \
            time.monotonic() < end, line
        time.sleep(0.1)


@pytest.mark.parametrize("pname,greeting,refusal", [
    ("smtp", b"220 ", b"421 4.7.0 localhost Too many connections from "
     b"your address\r\n"),
    ("submission", b"220 ", b"421 4.7.0 localhost Too many connections "
     b"from your address\r\n"),
    ("imap", b"* OK", b"* BYE Too many connections from your address\r\n"),
])
def test_per_address_limit(make_node, pname, greeting, refusal):
    """One address gets [mailsrv] smtp|imap_max_connections_per_ip
    connections (SMTP's listeners share the count); one more gets the
    refusal and is closed; another address is not affected; a closed one
    frees its place."""
    node = make_node({"mailsrv": {"smtp_max_connections_per_ip": "3",
                                  "imap_max_connections_per_ip": "3"}},
                     daemons=("mailsrv",))
    port = node.port(pname)
    first = []
    try:
        while len(first) < 3:
            first.append(greeted(port, greeting))
        extra = connect_from(port, "127.0.0.1")
        assert read_until_eof(extra, 10) == refusal
        extra.close()
        if pname != "imap":     # MX and submission count together
            other = connect_from(node.port("smtp" if pname == "submission"
                                           else "submission"), "127.0.0.1")
            assert read_until_eof(other, 10) == refusal
            other.close()
        greeted(port, greeting, "127.0.0.2").close()
        for c in first:
            assert still_open(c)
        first.pop().close()
        first.append(greeted(port, greeting))
    finally:
        for c in first:
            c.close()
    assert "reason=per-ip-limit limit=3" in node.log("mailsrv")


def test_smtps_per_address_limit_closes_before_tls(make_node):
    node = make_node({"mailsrv": {"smtp_max_connections_per_ip": "1"}},
                     daemons=("mailsrv",))
    keep = greeted(node.port("smtp"), b"220 ")
    try:
        with pytest.raises((ssl.SSLError, OSError)):
            smtplib.SMTP_SSL("127.0.0.1", node.port("smtps"), timeout=10,
                             context=node.ssl_context())
    finally:
        keep.close()


def test_flood_from_one_address_evicts_no_one_else(make_node):
    """At max_connections a new connection evicts the least recently
    active one; with a per-address limit below it, a flood from one
    address fills only its share and evicts nobody else's session."""
    node = make_node({"mailsrv": {"max_connections": LIMIT,
                                  "smtp_max_connections_per_ip": "20"}},
                     daemons=("mailsrv",))
    mine = greeted(node.port("smtp"), b"220 ", "127.0.0.2")
    try:
        with Flood(node.port("smtp"), FLOOD):
            assert still_open(mine)
            mine.sendall(b"NOOP\r\n")
            assert recv_line(mine, 10, bytearray()).startswith(b"250 ")
    finally:
        mine.close()
    log = node.log("mailsrv")
    assert "evicted" not in log
    # 280 refusals, but a log line a second at most, with the count
    lines = [l for l in log.splitlines() if "reason=per-ip-limit" in l]
    assert 1 <= len(lines) <= 1 + FLOOD_SECONDS_MAX, lines
    quiet = sum(int(l.split("(and ")[1].split()[0]) for l in lines[1:])
    assert len(lines) + quiet <= FLOOD, lines


def test_smtp_idle_timeout(make_node):
    node = make_node({"mailsrv": {"smtp_idle_timeout": "2s"}},
                     daemons=("mailsrv",))
    with socket.create_connection(("127.0.0.1", node.port("smtp")),
                                  timeout=10) as s:
        buf = bytearray()
        assert recv_line(s, 10, buf).startswith(b"220 ")
        t0 = time.monotonic()
        bye = recv_line(s, 10, buf)
        elapsed = time.monotonic() - t0
        assert bye.startswith(b"421 4.4.2 "), bye
        assert 1.5 <= elapsed <= 5.0, "timeout after %.1fs" % elapsed
        assert bytes(buf) + read_until_eof(s, 5) == b""


def test_smtp_activity_resets_idle_timer(make_node):
    node = make_node({"mailsrv": {"smtp_idle_timeout": "2s"}},
                     daemons=("mailsrv",))
    with socket.create_connection(("127.0.0.1", node.port("smtp")),
                                  timeout=10) as s:
        buf = bytearray()
        assert recv_line(s, 10, buf).startswith(b"220 ")
        for _ in range(5):          # 5 s of activity, every second
            time.sleep(1.0)
            s.sendall(b"NOOP\r\n")
            assert recv_line(s, 10, buf).startswith(b"250 ")
        assert recv_line(s, 10, buf).startswith(b"421 4.4.2 ")


def test_smtps_idle_timeout_before_handshake(make_node):
    """A TLS port connection that never starts its handshake is closed
    by the idle timeout too."""
    node = make_node({"mailsrv": {"smtp_idle_timeout": "2s"}},
                     daemons=("mailsrv",))
    with socket.create_connection(("127.0.0.1", node.port("smtps")),
                                  timeout=10) as s:
        t0 = time.monotonic()
        assert closed_by_peer(s, 10)
        assert time.monotonic() - t0 <= 6.0


@pytest.mark.parametrize("svc", ["keyservice", "docstore"])
def test_https_idle_timeout(make_node, svc):
    node = make_node({svc: {"idle_timeout": "2s"}}, daemons=(svc,))
    ctx = node.tls_for(svc)
    with socket.create_connection(("127.0.0.1", node.port(svc)),
                                  timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            t0 = time.monotonic()
            s.settimeout(10)
            try:
                data = s.recv(4096)
            except socket.timeout:
                pytest.fail("idle TLS connection still open after 10s")
            except OSError:         # reset, or TLS EOF without close_notify
                data = b""
            assert data == b"", data
            elapsed = time.monotonic() - t0
            assert 1.5 <= elapsed <= 6.0, "closed after %.1fs" % elapsed


def daemon_fds(node, daemon):
    return len(os.listdir("/proc/%d/fd" % node.proc(daemon).pid))


def settled_fds(node, daemon, quiet=1.0, timeout=15.0):
    """The daemon's fd count once it has not changed for `quiet` seconds
    (start-up may still be opening files and retrying keyservice)."""
    deadline = time.monotonic() + timeout
    n, since = daemon_fds(node, daemon), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        m = daemon_fds(node, daemon)
        if m != n:
            n, since = m, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return n


def wait_fds_at_most(node, daemon, limit, timeout=12.0):
    deadline = time.monotonic() + timeout
    while True:
        n = daemon_fds(node, daemon)
        if n <= limit or time.monotonic() > deadline:
            return n
        time.sleep(0.2)


@pytest.mark.parametrize("pname,daemon,section", [
    ("smtps", "mailsrv", "mailsrv"),
    ("imaps", "mailsrv", "mailsrv"),
    ("smtp", "mailsrv", "mailsrv"),
    ("keyservice", "keyservice", "keyservice"),
    ("docstore", "docstore", "docstore"),
])
def test_flood_keeps_daemon_fds_bounded(make_node, pname, daemon, section):
    """max_connections bounds the daemon's sockets, not only its live
    sessions: evicted connections (a TLS port's ones never handshake) are
    released, and nothing is left behind once the clients go away."""
    node = make_node(limited(section), daemons=(daemon,))
    base = settled_fds(node, daemon)
    with Flood(node.port(pname), FLOOD):
        during = wait_fds_at_most(node, daemon, base + int(LIMIT) + 5)
        assert during <= base + int(LIMIT) + 5, \
            "%d fds open with max_connections %s (baseline %d)" % (
                during, LIMIT, base)
    after = wait_fds_at_most(node, daemon, base + 2)
    assert after <= base + 2, \
        "%d fds still open after every client left (baseline %d)" % (
            after, base)
