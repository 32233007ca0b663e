"""
SMTP (foundation subset) with smtplib, raw sockets and swaks: greeting,
EHLO and its extensions, STARTTLS, implicit TLS, mail commands while
keyservice is unreachable (4xx, never an acceptance), line limits, error
limit, STARTTLS command injection.  Delivery, AUTH, limits and crash
safety with keyservice: test_smtp_*.py.
"""
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from amanat_node import Node, read_until_eof, recv_line

TIMEOUT = 15


def smtp(node, pname="smtp"):
    return smtplib.SMTP("127.0.0.1", node.port(pname), timeout=TIMEOUT)


class Raw:
    """A line-oriented raw SMTP/IMAP client on a plain socket."""

    def __init__(self, node, pname):
        self.sock = socket.create_connection(("127.0.0.1", node.port(pname)),
                                             timeout=TIMEOUT)
        self.buf = bytearray()

    def line(self):
        return recv_line(self.sock, TIMEOUT, self.buf)

    def reply(self):
        """One SMTP reply (all lines of a multi-line reply)."""
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if len(l) < 4 or l[3:4] != b"-":
                return lines

    def send(self, data):
        self.sock.sendall(data)

    def rest(self):
        return bytes(self.buf) + read_until_eof(self.sock, TIMEOUT)

    def close(self):
        self.sock.close()


EXTENSIONS = ("pipelining", "size", "8bitmime", "smtputf8", "dsn",
              "chunking", "enhancedstatuscodes")


@pytest.mark.parametrize("pname", ["smtp", "submission"])
def test_greeting_and_ehlo_offer_starttls(node, pname):
    """Plain EHLO: STARTTLS and the ESMTP extensions; no AUTH before TLS
    (and never on MX)."""
    s = smtp(node, pname)
    try:
        code, msg = s.ehlo("client.example.org")
        assert code == 250, msg
        assert s.has_extn("starttls"), msg
        for ext in EXTENSIONS:
            assert s.has_extn(ext), (ext, msg)
        assert s.esmtp_features["size"].strip() == str(25 * 1024 * 1024), \
            msg
        assert not s.has_extn("auth"), msg
        assert s.noop()[0] == 250
    finally:
        s.quit()


@pytest.mark.parametrize("pname", ["smtp", "submission"])
def test_ehlo_after_starttls_auth_only_on_submission(node, pname):
    s = smtp(node, pname)
    try:
        s.ehlo("client.example.org")
        assert s.starttls(context=node.ssl_context())[0] == 220
        code, msg = s.ehlo("client.example.org")
        assert code == 250, msg
        for ext in EXTENSIONS:
            assert s.has_extn(ext), (ext, msg)
        if pname == "smtp":
            assert not s.has_extn("auth"), msg
        else:
            assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"], \
                msg
    finally:
        s.quit()


def test_smtps_ehlo_offers_auth(node):
    s = smtplib.SMTP_SSL("127.0.0.1", node.port("smtps"), timeout=TIMEOUT,
                         context=node.ssl_context())
    try:
        code, msg = s.ehlo("client.example.org")
        assert code == 250, msg
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"], msg
        for ext in EXTENSIONS:
            assert s.has_extn(ext), (ext, msg)
    finally:
        s.quit()


def test_greeting_line(node):
    r = Raw(node, "smtp")
    try:
        greet = r.line()
        assert greet.startswith(b"220 localhost ") and \
            greet.endswith(b"\r\n"), greet
    finally:
        r.close()


@pytest.mark.parametrize("pname", ["smtp", "submission"])
def test_starttls_then_ehlo_without_starttls(node, pname):
    s = smtp(node, pname)
    try:
        s.ehlo("client.example.org")
        code, msg = s.starttls(context=node.ssl_context())
        assert code == 220, msg
        assert isinstance(s.sock, ssl.SSLSocket)
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        code, msg = s.ehlo("client.example.org")
        assert code == 250, msg
        assert not s.has_extn("starttls"), msg
        # STARTTLS again inside TLS is an error
        code, msg = s.docmd("STARTTLS")
        assert code == 503, msg
        assert s.noop()[0] == 250
    finally:
        s.quit()


def test_smtps_implicit_tls(node):
    s = smtplib.SMTP_SSL("127.0.0.1", node.port("smtps"), timeout=TIMEOUT,
                         context=node.ssl_context())
    try:
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        code, msg = s.ehlo("client.example.org")
        assert code == 250, msg
        assert not s.has_extn("starttls"), msg
        assert s.noop()[0] == 250
    finally:
        code, msg = s.quit()
        assert code == 221, msg


@pytest.fixture(scope="module")
def lonely(tmp_path_factory):
    """A node running only mailsrv: keyservice (the queue key, the
    directory, passwords) is unreachable."""
    n = Node(tmp_path_factory.mktemp("lonely"))
    n.init()
    try:
        n.start(("mailsrv",))
    except BaseException:
        n.stop_all()
        raise
    yield n
    problems = n.stop_all()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.mark.parametrize("pname", ["smtp", "submission"])
def test_mail_without_keyservice_4xx(lonely, pname):
    """MAIL gets 4xx "try again" (the queue key is unavailable), never an
    acceptance; RCPT and DATA then have no transaction (503)."""
    s = smtp(lonely, pname)
    try:
        s.ehlo("client.example.org")
        if pname == "submission":
            # MAIL needs AUTH on submission, before anything else
            code, msg = s.docmd("MAIL FROM:<a@example.org>")
            assert code == 530, msg
            return
        code, msg = s.docmd("MAIL FROM:<a@example.org>")
        assert 400 <= code < 500, (code, msg)
        assert msg.startswith(b"4."), msg
        for cmd in ("RCPT TO:<b@example.org>", "DATA"):
            code, msg = s.docmd(cmd)
            assert code == 503, (cmd, code, msg)
        assert s.noop()[0] == 250
    finally:
        s.quit()


def test_mail_via_smtplib_without_keyservice_4xx(lonely):
    s = smtp(lonely)
    try:
        s.ehlo("client.example.org")
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("a@example.org", ["b@example.org"], b"Subject: x\r\n"
                       b"\r\nbody\r\n")
        assert 400 <= e.value.smtp_code < 500, e.value
        assert s.noop()[0] == 250
    finally:
        s.quit()


def test_auth_without_keyservice_454(lonely):
    """AUTH on submission after STARTTLS with keyservice unreachable is a
    temporary failure (454), never a success."""
    s = smtp(lonely, "submission")
    try:
        s.ehlo("client.example.org")
        assert s.starttls(context=lonely.ssl_context())[0] == 220
        s.ehlo("client.example.org")
        code, msg = s.docmd("AUTH", "PLAIN AGFAZXhhbXBsZS5vcmcAcHc=")
        assert code == 454, (code, msg)
        assert msg.startswith(b"4.7.0"), msg
        assert s.noop()[0] == 250
    finally:
        s.quit()


@pytest.mark.parametrize("pname", ["smtp", "submission"])
def test_bdat_without_transaction_503(lonely, pname):
    """BDAT without a transaction: the chunk is read and discarded (the
    session stays in sync), then 503."""
    r = Raw(lonely, pname)
    try:
        assert r.line().startswith(b"220 ")
        r.send(b"EHLO client.example.org\r\n")
        assert r.reply()[-1].startswith(b"250 ")
        r.send(b"BDAT 10 LAST\r\n0123456789")
        reply = r.line()
        assert reply.startswith(b"503 5.5.1 "), reply
        r.send(b"NOOP\r\n")
        assert r.line().startswith(b"250 ")
    finally:
        r.close()


def test_auth_on_mx_503(node):
    s = smtp(node)
    try:
        s.ehlo("client.example.org")
        code, msg = s.docmd("AUTH", "PLAIN")
        assert code == 503, msg
        assert s.noop()[0] == 250
    finally:
        s.quit()


def test_mx_relay_refused_without_auth(node):
    """With keyservice up (no demo domains), MX takes MAIL but refuses a
    recipient that is not local: it never relays."""
    s = smtp(node)
    try:
        s.ehlo("client.example.org")
        deadline = time.monotonic() + 20
        while True:
            # mailsrv may still be fetching its queue key (MAIL 451) or
            # the local domains (RCPT 451) from keyservice
            code, msg = s.docmd("MAIL FROM:<a@example.org>")
            if code == 250:
                code, msg = s.docmd("RCPT TO:<b@example.org>")
                if code != 451:
                    break
                s.rset()
            assert code == 451, msg
            assert time.monotonic() < deadline, msg
            time.sleep(0.1)
        assert code in (550, 554), msg
        assert msg.startswith(b"5.7.1"), msg
        code, msg = s.docmd("DATA")
        assert code in (503, 554), msg
        assert s.rset()[0] == 250
    finally:
        s.quit()


def test_other_commands(node):
    s = smtp(node)
    try:
        assert s.helo("client.example.org")[0] == 250
        assert s.rset()[0] == 250
        assert s.verify("someone")[0] == 252
        assert s.expn("staff")[0] == 502
        assert s.docmd("HELP")[0] == 214
        assert s.docmd("XYZZY")[0] == 500
        assert s.docmd("EHLO", "bad host!")[0] == 501
    finally:
        code, msg = s.quit()
        assert code == 221, msg


def test_long_line_500_and_session_continues(node):
    s = smtp(node)
    try:
        s.ehlo("client.example.org")
        code, msg = s.docmd("NOOP " + "x" * 600)
        assert code == 500, msg
        assert b"too long" in msg.lower(), msg
        # exactly one reply for the long line: the next one is the NOOP's
        code, msg = s.noop()
        assert code == 250, msg
    finally:
        s.quit()


def test_line_of_exactly_512_bytes_accepted(node):
    """RFC 5321 4.5.3.1.4: 512 octets including CRLF is allowed."""
    r = Raw(node, "smtp")
    try:
        r.line()
        cmd = b"NOOP " + b"x" * (512 - 2 - 5)
        assert len(cmd) + 2 == 512
        r.send(cmd + b"\r\n")
        assert r.line().startswith(b"250 "), "512-byte line refused"
        r.send(cmd + b"x\r\n")
        assert r.line().startswith(b"500 ")
        r.send(b"NOOP\r\n")
        assert r.line().startswith(b"250 ")
    finally:
        r.close()


def test_bare_lf_refused(node):
    r = Raw(node, "smtp")
    try:
        assert r.line().startswith(b"220 ")
        r.send(b"NOOP\n")
        reply = r.line()
        assert reply.startswith(b"500 "), reply
        r.send(b"NOOP\r\n")
        assert r.line().startswith(b"250 ")
    finally:
        r.close()


def test_bare_cr_refused(node):
    r = Raw(node, "smtp")
    try:
        assert r.line().startswith(b"220 ")
        r.send(b"NOOP\rRSET\r\n")
        reply = r.line()
        assert reply.startswith(b"500 "), reply
        r.send(b"NOOP\r\n")
        assert r.line().startswith(b"250 ")
    finally:
        r.close()


def test_ten_errors_421_and_close(node):
    r = Raw(node, "smtp")
    try:
        assert r.line().startswith(b"220 ")
        for i in range(9):
            r.send(b"BOGUS%d\r\n" % i)
            assert r.line().startswith(b"500 ")
        r.send(b"BOGUS9\r\n")
        assert r.line().startswith(b"500 ")
        bye = r.line()
        assert bye.startswith(b"421 4.7.0 "), bye
        rest = r.rest()
        assert rest == b"", rest
    finally:
        r.close()


def test_ten_pipelined_errors_421_and_close(node):
    r = Raw(node, "smtp")
    try:
        assert r.line().startswith(b"220 ")
        r.send(b"EHLO client.example.org\r\n")     # PIPELINING
        assert r.reply()[-1].startswith(b"250 ")
        r.send(b"".join(b"BOGUS%d\r\n" % i for i in range(12)))
        data = r.rest()
        lines = data.split(b"\r\n")[:-1]
        assert [l[:4] for l in lines] == [b"500 "] * 10 + [b"421 "], data
    finally:
        r.close()


@pytest.mark.parametrize("greet", [b"", b"HELO client.example.org\r\n"])
def test_pipelining_not_negotiated_554_and_close(node, greet):
    """Without EHLO (no PIPELINING) a client that sends a command before
    the previous reply is disconnected: 554 5.5.0 (RFC 2920)."""
    r = Raw(node, "smtp")
    try:
        assert r.line().startswith(b"220 ")
        if greet:
            r.send(greet)
            assert r.line().startswith(b"250 ")
        r.send(b"NOOP\r\nNOOP\r\nNOOP\r\n")
        data = r.rest()
        lines = data.split(b"\r\n")[:-1]
        assert lines[-1].startswith(b"554 5.5.0 "), data
        assert len(lines) <= 2, data
    finally:
        r.close()


def test_starttls_pipelined_plaintext_not_acted_upon(node):
    r = Raw(node, "smtp")
    try:
        assert r.line().startswith(b"220 ")
        r.send(b"EHLO client.example.org\r\n")
        assert r.reply()[-1].startswith(b"250 ")
        r.send(b"STARTTLS\r\nNOOP\r\n")
        data = r.rest()
        assert b"\r\n250" not in b"\r\n" + data, data
    finally:
        r.close()


def test_starttls_pipelined_plaintext_not_acted_upon_smtplib(node):
    """The same with smtplib's socket: the NOOP never gets its 250."""
    s = smtp(node)
    try:
        s.ehlo("client.example.org")
        s.send("STARTTLS\r\nNOOP\r\n")
        code, msg = s.getreply()
        assert code != 250, msg
        with pytest.raises(smtplib.SMTPServerDisconnected):
            while True:
                code, msg = s.getreply()
                assert code != 250, msg
    finally:
        s.close()


def need_swaks_tls():
    if shutil.which("swaks") is None:
        pytest.skip("swaks is not installed")
    r = subprocess.run(["swaks", "--support"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    out = r.stdout + r.stderr
    if "TLS not available" in out:
        pytest.skip("swaks has no TLS support (Debian: install "
                    "libnet-ssleay-perl): " + [l for l in out.splitlines()
                                               if "TLS" in l][0].strip())


def test_swaks_submission_starttls_verified(node):
    need_swaks_tls()
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1:%d" % node.port("submission"),
         "--tls", "--tls-verify", "--tls-ca-path", node.ca,
         "--ehlo", "client.example.org", "--from", "a@example.org",
         "--to", "b@example.org", "--quit-after", "EHLO"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "TLS started" in out, out
    # the EHLO after TLS no longer offers STARTTLS
    assert "STARTTLS" not in out.split("TLS started", 1)[1], out
    assert "<~  221 " in out, out


def test_swaks_smtps_implicit_tls(node):
    need_swaks_tls()
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1:%d" % node.port("smtps"),
         "--tlsc", "--tls-verify", "--tls-ca-path", node.ca,
         "--ehlo", "client.example.org", "--from", "a@example.org",
         "--to", "b@example.org", "--quit-after", "EHLO"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "<~  220 " in out and "<~  221 " in out, out
