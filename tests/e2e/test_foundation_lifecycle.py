"""
SIGHUP reload (valid and invalid config) and clean SIGTERM shutdown with
sessions open.  The fixture asserts exit code 0 and clean sanitizer logs.
"""
import http.client
import imaplib
import os
import signal
import smtplib
import socket
import time

import pytest

from amanat_node import DAEMONS, read_until_eof, recv_line


def smtp_ok(node):
    s = smtplib.SMTP("127.0.0.1", node.port("smtp"), timeout=15)
    try:
        assert s.ehlo("client.example.org")[0] == 250
        assert s.noop()[0] == 250
    finally:
        s.quit()


def https_ok(node, svc):
    c = http.client.HTTPSConnection("127.0.0.1", node.port(svc),
                                    context=node.tls_for(svc), timeout=15)
    try:
        c.request("GET", "/healthz")
        r = c.getresponse()
        r.read()
        assert r.status == 200
    finally:
        c.close()


def serving(node, daemon):
    if daemon == "mailsrv":
        smtp_ok(node)
        m = imaplib.IMAP4_SSL("127.0.0.1", node.port("imaps"),
                              ssl_context=node.ssl_context(), timeout=15)
        m.logout()
    else:
        https_ok(node, daemon)


def hup_and_wait(node, daemon, needle):
    before = node.log(daemon).count(needle)
    node.send_signal(daemon, signal.SIGHUP)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if node.log(daemon).count(needle) > before:
            return
        assert node.alive(daemon), node.log(daemon)
        time.sleep(0.1)
    pytest.fail("no %r in the %s log after SIGHUP:\n%s" %
                (needle, daemon, node.log(daemon)))


@pytest.mark.parametrize("daemon", DAEMONS)
def test_sighup_valid_config_reloads(make_node, daemon):
    node = make_node(daemons=(daemon,))
    serving(node, daemon)
    hup_and_wait(node, daemon, "reloaded")
    assert node.alive(daemon)
    serving(node, daemon)
    assert "reload refused" not in node.log(daemon)


def test_sighup_applies_new_smtp_idle_timeout(make_node):
    """A reloadable knob takes effect for new sessions after SIGHUP."""
    node = make_node(daemons=("mailsrv",))
    node.sections["mailsrv"]["smtp_idle_timeout"] = "2s"
    node.write_config()
    hup_and_wait(node, "mailsrv", "reloaded")
    with socket.create_connection(("127.0.0.1", node.port("smtp")),
                                  timeout=10) as s:
        buf = bytearray()
        assert recv_line(s, 10, buf).startswith(b"220 ")
        t0 = time.monotonic()
        bye = recv_line(s, 10, buf)
        assert bye.startswith(b"421 4.4.2 "), bye
        assert time.monotonic() - t0 <= 5.0


def test_sighup_applies_new_connection_limit(make_node):
    node = make_node(daemons=("mailsrv",))
    node.sections["mailsrv"]["max_connections"] = "2"
    node.write_config()
    hup_and_wait(node, "mailsrv", "reloaded")
    socks = [socket.create_connection(("127.0.0.1", node.port("smtp")),
                                      timeout=10) for _ in range(3)]
    try:
        old = read_until_eof(socks[0], 10)
        assert b"421 4.7.0 " in old, old
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("daemon", DAEMONS)
def test_sighup_invalid_config_refused(make_node, daemon):
    node = make_node(daemons=(daemon,))
    serving(node, daemon)
    good = dict(node.sections["mailsrv"])
    node.sections["mailsrv"]["no_such_knob"] = "1"
    node.sections["mailsrv"]["smtp_idle_timeout"] = "2s"
    node.write_config()
    hup_and_wait(node, daemon, "reload refused")
    assert node.alive(daemon)
    serving(node, daemon)
    if daemon == "mailsrv":
        # the old config is still in force: no 2 s idle timeout
        with socket.create_connection(("127.0.0.1", node.port("smtp")),
                                      timeout=10) as s:
            buf = bytearray()
            assert recv_line(s, 10, buf).startswith(b"220 ")
            s.settimeout(4)
            with pytest.raises(socket.timeout):
                s.recv(4096)
    # a later valid reload still works
    node.sections["mailsrv"] = good
    node.write_config()
    hup_and_wait(node, daemon, "reloaded")
    serving(node, daemon)


def test_sighup_world_readable_key_refused(make_node):
    node = make_node(daemons=("mailsrv",))
    os.chmod(node.key, 0o644)
    hup_and_wait(node, "mailsrv", "reload refused")
    assert node.alive("mailsrv")
    smtp_ok(node)
    os.chmod(node.key, 0o600)


def test_sigterm_with_sessions_open(make_node):
    """SIGTERM with SMTP, IMAP, STARTTLS'd and HTTPS keep-alive sessions
    open: every daemon exits 0 promptly (checked by stop())."""
    node = make_node()
    s1 = smtplib.SMTP("127.0.0.1", node.port("smtp"), timeout=15)
    s1.ehlo("client.example.org")
    s2 = smtplib.SMTP("127.0.0.1", node.port("submission"), timeout=15)
    s2.starttls(context=node.ssl_context())
    m = imaplib.IMAP4_SSL("127.0.0.1", node.port("imaps"),
                          ssl_context=node.ssl_context(), timeout=15)
    idle = socket.create_connection(("127.0.0.1", node.port("docstore")),
                                    timeout=10)
    hc = http.client.HTTPSConnection("127.0.0.1", node.port("keyservice"),
                                     context=node.tls_for("keyservice"),
                                     timeout=15)
    hc.request("GET", "/healthz")
    hc.getresponse().read()
    try:
        for d in DAEMONS:
            t0 = time.monotonic()
            rc, problems = node.stop(d)
            assert not problems, "\n".join(problems)
            assert rc == 0
            assert time.monotonic() - t0 < 10, "%s slow to stop" % d
            assert "stopped" in node.log(d)
    finally:
        for c in (s1, s2):
            c.close()
        m.shutdown()
        idle.close()
        hc.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exit_zero(make_node, sig):
    node = make_node(daemons=("mailsrv",))
    smtp_ok(node)
    rc, problems = node.stop("mailsrv", sig=sig)
    assert not problems, "\n".join(problems)
    assert rc == 0
