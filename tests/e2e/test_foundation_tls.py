"""
TLS policy on every TLS port of a running node: a verified TLS 1.2+
handshake against the node CA (openssl s_client and Python ssl), and TLS
1.1 refused by the server, on implicit-TLS ports and after STARTTLS.
"""
import re
import socket
import ssl
import subprocess
import warnings

import pytest

from amanat_node import recv_line

IMPLICIT = ["smtps", "imaps", "keyservice", "docstore"]
STARTTLS = [("smtp", "smtp"), ("submission", "smtp"), ("imap", "imap")]

# What each implicit-TLS port is sent after the handshake so that the
# server answers and closes (s_client -brief ignores stdin EOF).
GOODBYE = {
    "smtps": "QUIT\r\n",
    "imaps": "a1 LOGOUT\r\n",
    "keyservice": "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Connection: close\r\n\r\n",
    "docstore": "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Connection: close\r\n\r\n",
}
# The first line each port answers with.
FIRST_LINE = {
    "smtps": "220 ",
    "imaps": "* OK",
    "keyservice": "HTTP/1.1 200",
    "docstore": "HTTP/1.1 200",
}


def s_client(node, pname, *args, stdin="", timeout=30):
    return subprocess.run(
        ["openssl", "s_client", "-connect", "127.0.0.1:%d" % node.port(pname)]
        + node.s_client_args(pname) + list(args),
        input=stdin, capture_output=True, text=True, timeout=timeout)


def assert_verified_session(r):
    """s_client -brief: a verified TLS 1.2/1.3 session was established.
    (Its exit code also reflects how the server closed: see
    test_server_sends_close_notify.)"""
    err = r.stderr
    assert "CONNECTION ESTABLISHED" in err, err + r.stdout
    assert "Verification: OK" in err, err
    assert "verify error" not in err, err
    m = re.search(r"Protocol version: (\S+)", err)
    assert m and m.group(1) in ("TLSv1.2", "TLSv1.3"), err


@pytest.mark.parametrize("pname", IMPLICIT)
def test_s_client_verified_handshake(node, pname):
    r = s_client(node, pname, "-verify_return_error", "-brief",
                 "-ign_eof", "-verify_ip", "127.0.0.1",
                 "-servername", "localhost", stdin=GOODBYE[pname])
    assert_verified_session(r)
    assert r.stdout.startswith(FIRST_LINE[pname]), \
        "first application line: %r" % r.stdout[:200]


@pytest.mark.parametrize("pname", IMPLICIT)
def test_server_sends_close_notify(node, pname):
    """RFC 8446 6.1: the server sends close_notify before closing its
    side, so a client can tell a complete reply from a truncation."""
    ctx = node.tls_for(pname)
    # Python sets OP_IGNORE_UNEXPECTED_EOF by default: clear it so that a
    # TCP close without close_notify is seen as the error it is
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    with socket.create_connection(("127.0.0.1", node.port(pname)),
                                  timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1",
                             suppress_ragged_eofs=False) as s:
            s.sendall(GOODBYE[pname].encode())
            data = b""
            s.settimeout(10)
            while True:
                try:
                    chunk = s.recv(65536)
                except ssl.SSLError as e:
                    if "EOF" not in str(e).upper():
                        raise
                    pytest.fail("server closed TCP without close_notify "
                                "after %r: %s" % (data[:80], e))
                if not chunk:
                    break
                data += chunk
    assert data.startswith(FIRST_LINE[pname].encode()), data

@pytest.mark.parametrize("pname", IMPLICIT)
def test_python_ssl_handshake_verified(node, pname):
    ctx = node.tls_for(pname)
    with socket.create_connection(("127.0.0.1", node.port(pname)),
                                  timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert s.version() in ("TLSv1.2", "TLSv1.3")
            cert = s.getpeercert()
            sans = cert.get("subjectAltName", ())
            assert ("IP Address", "127.0.0.1") in sans, sans
            assert ("DNS", "localhost") in sans, sans
            cipher = s.cipher()[0]
            if s.version() == "TLSv1.2":
                assert "ECDHE" in cipher and ("GCM" in cipher or
                                              "CHACHA20" in cipher), cipher


@pytest.mark.parametrize("pname", IMPLICIT)
def test_wrong_hostname_is_rejected_by_client(node, pname):
    """The served certificate is for localhost/127.0.0.1 only."""
    ctx = node.tls_for(pname)
    with socket.create_connection(("127.0.0.1", node.port(pname)),
                                  timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="mail.example.org")


def assert_server_refused_tls11(r):
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    # s_client prints the protocol it attempted even when nothing was
    # negotiated; "Cipher is (NONE)" says no session was established and
    # alert 70 (protocol_version) says it was the server that refused.
    assert "Cipher is (NONE)" in r.stdout, out
    assert not re.search(r"New, TLSv1\.[0-3], Cipher is", r.stdout), out
    assert "alert protocol version" in r.stderr, out


@pytest.mark.parametrize("pname", IMPLICIT)
def test_s_client_tls11_refused(node, tls11_client, pname):
    r = s_client(node, pname, *tls11_client)
    assert_server_refused_tls11(r)


@pytest.mark.parametrize("pname,proto", STARTTLS)
def test_s_client_tls11_refused_after_starttls(node, tls11_client, pname,
                                               proto):
    r = s_client(node, pname, "-starttls", proto, *tls11_client)
    assert_server_refused_tls11(r)


@pytest.mark.parametrize("pname,proto", STARTTLS)
def test_s_client_starttls_verified(node, pname, proto):
    r = s_client(node, pname, "-starttls", proto,
                 "-verify_return_error", "-brief", "-ign_eof",
                 "-verify_ip", "127.0.0.1",
                 stdin="QUIT\r\n" if proto == "smtp" else "a1 LOGOUT\r\n")
    assert_verified_session(r)
    bye = "221 " if proto == "smtp" else "a1 OK"
    assert bye in r.stdout, r.stdout


@pytest.mark.parametrize("pname", IMPLICIT)
def test_python_ssl_tls11_refused(node, tls11_client, pname):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(node.ca)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", node.port(pname)),
                                  timeout=10) as raw:
        with pytest.raises(ssl.SSLError) as ei:
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    # the server's alert, not a client-side "no protocols available"
    assert "PROTOCOL_VERSION" in str(ei.value).upper(), str(ei.value)


def test_python_ssl_tls11_refused_after_smtp_starttls(node, tls11_client):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(node.ca)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", node.port("smtp")),
                                  timeout=10) as raw:
        buf = bytearray()
        assert recv_line(raw, buf=buf).startswith(b"220 ")
        raw.sendall(b"STARTTLS\r\n")
        assert recv_line(raw, buf=buf).startswith(b"220 ")
        with pytest.raises(ssl.SSLError) as ei:
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    assert "PROTOCOL_VERSION" in str(ei.value).upper(), str(ei.value)


@pytest.mark.parametrize("pname", IMPLICIT)
def test_plaintext_on_tls_port_gets_no_plaintext_answer(node, pname):
    """Speaking plaintext to an implicit-TLS port never yields a
    plaintext protocol reply."""
    with socket.create_connection(("127.0.0.1", node.port(pname)),
                                  timeout=10) as s:
        s.sendall(b"EHLO x\r\nGET / HTTP/1.0\r\n\r\n")
        s.settimeout(10)
        try:
            data = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            data = b""
        assert not data.startswith((b"220", b"250", b"* OK", b"HTTP/")), data
    assert node.alive(node_daemon(pname))


def node_daemon(pname):
    from amanat_node import PORTS
    return PORTS[pname][0]
