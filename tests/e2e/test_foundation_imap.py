"""
IMAP (foundation subset) with imaplib and raw sockets: greeting,
CAPABILITY, STARTTLS, implicit TLS, LOGIN refused before STARTTLS
(LOGINDISABLED) and working after it and over IMAPS, BAD, LOGOUT,
STARTTLS command injection.  The rest of IMAP: test_imap_*.py.
"""
import imaplib
import socket
import ssl

import pytest

from amanat_node import read_until_eof, recv_line
from smtp_util import ALICE, finish, start_mail_node

TIMEOUT = 15


@pytest.fixture(scope="module")
def mnode(tmp_path_factory):
    """A demo node (keyservice and mailsrv) with users who can log in."""
    n = start_mail_node(tmp_path_factory.mktemp("imapfound"))
    yield n
    finish(n)


def imap(node):
    return imaplib.IMAP4("127.0.0.1", node.port("imap"), timeout=TIMEOUT)


def imaps(node):
    return imaplib.IMAP4_SSL("127.0.0.1", node.port("imaps"),
                             ssl_context=node.ssl_context(), timeout=TIMEOUT)


class Raw:
    def __init__(self, node, pname="imap"):
        self.sock = socket.create_connection(("127.0.0.1", node.port(pname)),
                                             timeout=TIMEOUT)
        self.buf = bytearray()

    def line(self):
        return recv_line(self.sock, TIMEOUT, self.buf)

    def send(self, data):
        self.sock.sendall(data)

    def until_tag(self, tag):
        lines = []
        while True:
            l = self.line()
            assert l, "EOF before the %r completion; got %r" % (tag, lines)
            lines.append(l)
            if l.startswith(tag + b" "):
                return lines

    def rest(self):
        return bytes(self.buf) + read_until_eof(self.sock, TIMEOUT)

    def close(self):
        self.sock.close()


def test_greeting_capabilities(node):
    m = imap(node)
    try:
        assert m.welcome.startswith(b"* OK [CAPABILITY "), m.welcome
        assert b"IMAP4rev1" in m.welcome
        assert b"STARTTLS" in m.welcome
        assert b"LOGINDISABLED" in m.welcome
        assert "STARTTLS" in m.capabilities
        assert "LOGINDISABLED" in m.capabilities
        typ, data = m.capability()
        assert typ == "OK"
        caps = data[0].split()
        assert b"STARTTLS" in caps and b"LOGINDISABLED" in caps, data
        assert m.noop()[0] == "OK"
    finally:
        m.logout()


def test_starttls_then_capability_without_starttls(node):
    m = imap(node)
    try:
        typ, data = m.starttls(ssl_context=node.ssl_context())
        assert typ == "OK", data
        assert isinstance(m.sock, ssl.SSLSocket)
        assert m.sock.version() in ("TLSv1.2", "TLSv1.3")
        # imaplib asked CAPABILITY again over TLS: login is possible now
        assert "STARTTLS" not in m.capabilities, m.capabilities
        assert "LOGINDISABLED" not in m.capabilities, m.capabilities
        assert "AUTH=PLAIN" in m.capabilities, m.capabilities
        assert m.noop()[0] == "OK"
    finally:
        m.logout()


def test_imaps_implicit_tls(node):
    m = imaps(node)
    try:
        assert m.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert m.welcome.startswith(b"* OK"), m.welcome
        assert "STARTTLS" not in m.capabilities, m.capabilities
        assert m.noop()[0] == "OK"
    finally:
        typ, data = m.logout()
        assert typ == "BYE", (typ, data)


def test_login_refused_before_starttls_works_after(mnode):
    """The right password in the clear before STARTTLS: refused by the
    server (raw socket, so that no client-side LOGINDISABLED check is
    involved), the session goes on; after STARTTLS the same LOGIN
    works."""
    pw = mnode.users[ALICE][0]
    r = Raw(mnode)
    try:
        greeting = r.line()
        assert b"LOGINDISABLED" in greeting, greeting
        r.send(b'a1 LOGIN "%s" "%s"\r\n' % (ALICE.encode(), pw.encode()))
        last = r.until_tag(b"a1")[-1]
        assert last.startswith((b"a1 NO ", b"a1 BAD ")), last
        r.send(b"a2 SELECT INBOX\r\n")      # not logged in
        last = r.until_tag(b"a2")[-1]
        assert last.startswith((b"a2 NO ", b"a2 BAD ")), last
        r.send(b"a3 NOOP\r\n")
        assert r.until_tag(b"a3")[-1].startswith(b"a3 OK ")
    finally:
        r.close()
    m = imap(mnode)
    try:
        typ, data = m.starttls(ssl_context=mnode.ssl_context())
        assert typ == "OK", data
        typ, data = m.login(ALICE, pw)
        assert typ == "OK", data
        typ, data = m.select("INBOX")
        assert typ == "OK", data
    finally:
        m.logout()


def test_login_over_imaps(mnode):
    m = imaps(mnode)
    try:
        typ, data = m.login(ALICE, mnode.users[ALICE][0])
        assert typ == "OK", data
        assert m.noop()[0] == "OK"
    finally:
        m.logout()


def test_login_wrong_password_refused_over_tls(mnode):
    m = imaps(mnode)
    try:
        with pytest.raises(imaplib.IMAP4.error) as ei:
            m.login(ALICE, "not-the-password")
        assert "AUTHENTICATIONFAILED" in str(ei.value), str(ei.value)
        assert m.noop()[0] == "OK"     # the session goes on
    finally:
        m.logout()


def test_login_answers_tagged_no(node):
    r = Raw(node)
    try:
        assert r.line().startswith(b"* OK")
        r.send(b"a1 LOGIN alice secret\r\n")
        lines = r.until_tag(b"a1")
        assert lines[-1].startswith(b"a1 NO "), lines
        r.send(b"a2 AUTHENTICATE PLAIN\r\n")
        lines = r.until_tag(b"a2")
        assert lines[-1].startswith(b"a2 NO "), lines
    finally:
        r.close()


def test_unknown_command_bad(node):
    m = imap(node)
    try:
        with pytest.raises(imaplib.IMAP4.error) as ei:
            m.xatom("FROBNICATE")
        assert "BAD" in str(ei.value), str(ei.value)
        assert m.noop()[0] == "OK"
    finally:
        m.logout()


def test_unknown_command_tagged_bad_raw(node):
    r = Raw(node)
    try:
        assert r.line().startswith(b"* OK")
        r.send(b"a1 FROBNICATE\r\n")
        assert r.until_tag(b"a1")[-1].startswith(b"a1 BAD ")
        r.send(b"a2 SELECT INBOX\r\n")     # not in this state: BAD or NO
        last = r.until_tag(b"a2")[-1]
        assert last.startswith((b"a2 BAD ", b"a2 NO ")), last
        r.send(b"a3 NOOP\r\n")
        assert r.until_tag(b"a3")[-1].startswith(b"a3 OK ")
    finally:
        r.close()


def test_logout(node):
    m = imap(node)
    typ, data = m.logout()
    assert typ == "BYE", (typ, data)


def test_logout_raw_bye_ok_then_close(node):
    r = Raw(node)
    try:
        assert r.line().startswith(b"* OK")
        r.send(b"a1 LOGOUT\r\n")
        lines = r.until_tag(b"a1")
        assert lines[0].startswith(b"* BYE"), lines
        assert lines[-1].startswith(b"a1 OK "), lines
        assert r.rest() == b""
    finally:
        r.close()


def test_starttls_pipelined_plaintext_not_acted_upon(node):
    r = Raw(node)
    try:
        assert r.line().startswith(b"* OK")
        r.send(b"a1 STARTTLS\r\na2 NOOP\r\n")
        data = r.rest()
        assert b"a2 OK" not in data, data
    finally:
        r.close()


def test_bare_lf_refused(node):
    r = Raw(node)
    try:
        assert r.line().startswith(b"* OK")
        r.send(b"a1 NOOP\n")
        reply = r.line()
        assert b"BAD" in reply and not reply.startswith(b"a1 OK"), reply
        r.send(b"a2 NOOP\r\n")
        assert r.until_tag(b"a2")[-1].startswith(b"a2 OK ")
    finally:
        r.close()
