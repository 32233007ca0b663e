"""
The HTTPS JSON APIs of keyservice and docstore (foundation: GET /healthz
and JSON errors), with curl and http.client.
"""
import http.client
import json
import os
import socket
import ssl
import subprocess

import pytest

SERVICES = ["keyservice", "docstore"]


def curl(node, pname, path, *args, timeout=30):
    """curl over verified TLS; returns (status, headers dict, body text)."""
    d = node.dir
    hdr = os.path.join(d, "curl.headers")
    body = os.path.join(d, "curl.body")
    for p in (hdr, body):
        if os.path.exists(p):
            os.unlink(p)
    r = subprocess.run(
        ["curl", "-sS"] + node.curl_args(pname) + ["-m", str(timeout - 5),
         "-D", hdr, "-o", body, "-w", "%{http_code}",
         "https://127.0.0.1:%d%s" % (node.port(pname), path)] + list(args),
        capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, "curl failed (rc=%d): %s" % (r.returncode,
                                                          r.stderr)
    headers = {}
    with open(hdr) as f:
        for line in f:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
    with open(body, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    return int(r.stdout.strip()), headers, text


def assert_json_error(headers, body):
    assert headers.get("content-type", "").startswith("application/json"), \
        headers
    doc = json.loads(body)
    assert isinstance(doc, dict), body
    assert isinstance(doc.get("error"), str) and doc["error"], body
    assert isinstance(doc.get("message"), str) and doc["message"], body
    return doc


@pytest.mark.parametrize("svc", SERVICES)
def test_healthz(node, svc):
    status, headers, body = curl(node, svc, "/healthz")
    assert status == 200, body
    assert headers.get("content-type", "").startswith("application/json"), \
        headers
    assert json.loads(body) == {"status": "ok", "service": svc}


@pytest.mark.parametrize("svc", SERVICES)
def test_healthz_http_client_keepalive(node, svc):
    """Two requests on one HTTP/1.1 connection, verified TLS."""
    c = http.client.HTTPSConnection("127.0.0.1", node.port(svc),
                                    context=node.tls_for(svc), timeout=10)
    try:
        for _ in range(2):
            c.request("GET", "/healthz")
            r = c.getresponse()
            body = r.read()
            assert r.status == 200, body
            assert json.loads(body) == {"status": "ok", "service": svc}
    finally:
        c.close()


@pytest.mark.parametrize("svc", SERVICES)
def test_unknown_path_404_json(node, svc):
    status, headers, body = curl(node, svc, "/no/such/path")
    assert status == 404, body
    assert_json_error(headers, body)


@pytest.mark.parametrize("svc", SERVICES)
def test_post_healthz_405_json(node, svc):
    status, headers, body = curl(node, svc, "/healthz", "-X", "POST",
                                 "-H", "Content-Type: application/json",
                                 "--data", "{}")
    assert status == 405, body
    assert_json_error(headers, body)


@pytest.mark.parametrize("svc", SERVICES)
def test_405_lists_allowed_methods(node, svc):
    """RFC 9110 15.5.6: a 405 response MUST carry an Allow header."""
    status, headers, body = curl(node, svc, "/healthz", "-X", "DELETE")
    assert status == 405, body
    assert "GET" in headers.get("allow", ""), headers


@pytest.mark.parametrize("svc", SERVICES)
def test_huge_header_431_json_then_still_serving(node, svc):
    big = "X-Big: " + "a" * (20 * 1024)
    status, headers, body = curl(node, svc, "/healthz", "-H", big)
    assert status == 431, body
    assert_json_error(headers, body)
    status, _, body = curl(node, svc, "/healthz")
    assert status == 200, body
    assert node.alive(svc)


@pytest.mark.parametrize("svc", SERVICES)
def test_huge_header_431_reaches_client_every_time(node, svc):
    """The 431 must not be lost: closing with the rest of the request
    unread makes the kernel send RST, which can destroy the queued
    response before the client reads it (a lingering close is needed).
    Repeated because the race is lost only some of the time."""
    big = "X-Big: " + "a" * (20 * 1024)
    tries, lost = 30, []
    for _ in range(tries):
        r = subprocess.run(
            ["curl", "-sS"] + node.curl_args(svc) + ["-m", "10", "-o",
             "/dev/null", "-w", "%{http_code}", "-H", big,
             "https://127.0.0.1:%d/healthz" % node.port(svc)],
            capture_output=True, text=True, timeout=30)
        if r.stdout.strip() != "431":
            lost.append("%s %s" % (r.stdout.strip(), r.stderr.strip()))
    assert not lost, "%d of %d 431 replies lost: %s" % (len(lost), tries,
                                                        lost[:3])


def keyservice_request(node, ctx):
    """GET /healthz on keyservice with ctx; the first response line, or
    the ssl.SSLError raised during the handshake or the first read."""
    with socket.create_connection(("127.0.0.1", node.port("keyservice")),
                                  timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Connection: close\r\n\r\n")
                s.settimeout(10)
                return s.recv(4096).split(b"\r\n", 1)[0]
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
            return e


def test_keyservice_requires_client_certificate(node):
    """docs/keyservice-api.md: a connection without a client certificate
    is refused during the TLS handshake."""
    got = keyservice_request(node, node.ssl_context())
    assert isinstance(got, Exception), "answered without a client " \
        "certificate: %r" % got


def test_keyservice_refuses_foreign_client_certificate(node, make_node):
    other = make_node(daemons=())       # another node's CA and admin cert
    ctx = node.ssl_context()
    ctx.load_cert_chain(*other.client_cert("admin"))
    got = keyservice_request(node, ctx)
    assert isinstance(got, Exception), "answered a certificate of " \
        "another CA: %r" % got


@pytest.mark.parametrize("who", ["admin", "mailsrv", "docstore"])
def test_keyservice_accepts_node_client_certificates(node, who):
    got = keyservice_request(node, node.ssl_context(who))
    assert got == b"HTTP/1.1 200 OK", got


def test_keyservice_curl_without_client_certificate_fails(node):
    r = subprocess.run(
        ["curl", "-sS", "--cacert", node.ca, "-m", "10", "-o", "/dev/null",
         "-w", "%{http_code}",
         "https://127.0.0.1:%d/healthz" % node.port("keyservice")],
        capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and r.stdout.strip() in ("000", ""), \
        (r.returncode, r.stdout, r.stderr)
