"""
keyservice bad input end to end ([keyservice] max_body = 4K here): every
malformed request gets a JSON error with "error" and "message" and the
right status, nothing is stored, and the daemon stays up and answers.
"""
import json
import os
import re
import socket
import ssl

import pytest

from ks_client import KS, check_error, finish, mdb_json, start_ks_node

MAX_BODY = 4096
FIN = "finance.amanat.test"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = start_ks_node(tmp_path_factory.mktemp("ksbad"),
                      {"keyservice": {"max_body": "4K"}}, demo=False)
    r = KS(n, "admin").post("/v1/depts", {"name": "finance",
                                          "domains": [FIN]})
    assert r.status == 201, r
    yield n
    # the daemon survived everything: alive and answering
    assert n.alive("keyservice")
    assert KS(n, "admin").healthz().status == 200
    finish(n)


@pytest.fixture(scope="module")
def admin(node):
    return KS(node, "admin")


@pytest.fixture(autouse=True)
def still_alive(node):
    yield
    assert node.alive("keyservice"), node.log("keyservice")[-3000:]
    r = KS(node, "mailsrv").get("/healthz", fresh=True)
    assert r.status == 200 and r.json["status"] == "ok", r


def users_db(node):
    return mdb_json(os.path.join(node.dir, "keyservice", "db"), "users")


def padded(obj, size):
    """JSON text of obj padded with spaces to exactly size bytes."""
    text = json.dumps(obj).encode()
    assert len(text) <= size
    return text + b" " * (size - len(text))


@pytest.mark.parametrize("raw", [
    b"{", b"{bad", b'{"address": }', b"", b"nul\x00l", b'{"a": 1,}',
    b"\xff\xfe{}", b'{"address": "x@' + FIN.encode() + b'"} trailing',
])
def test_malformed_json(admin, raw):
    check_error(admin.post("/v1/users", raw=raw), 400, "bad_json")


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"42", b"null",
                                 b'{"address": "a@x.y", "address": "b@x.y"}'])
def test_json_not_a_plain_object(admin, raw):
    check_error(admin.post("/v1/users", raw=raw), 400, "bad_json")


def test_deeply_nested_json(admin):
    """Deep nesting within this node's 4K body limit (the 10,000-deep
    array is the next test, on a node with the default limit)."""
    raw = b"[" * 2000 + b"]" * 2000
    check_error(admin.post("/v1/users", raw=raw), 400, "bad_json")
    raw = b'{"address":' + b'{"a":' * 600 + b"1" + b"}" * 601
    assert len(raw) < MAX_BODY
    check_error(admin.post("/v1/users", raw=raw), 400, "bad_json")


def test_ten_thousand_deep_array(make_node):
    n = make_node(overrides={"keyservice": {"argon2_memory": "8M",
                                            "argon2_time": "1"}},
                  daemons=("keyservice",))
    ks = KS(n, "admin")
    raw = b"[" * 10000 + b"]" * 10000
    check_error(ks.post("/v1/depts", raw=raw), 400, "bad_json")
    raw = b'{"name":' + b"[" * 10000 + b"]" * 10000 + b"}"
    check_error(ks.post("/v1/depts", raw=raw), 400, "bad_json")
    assert ks.get("/v1/depts").json == {"depts": []}
    assert ks.healthz().status == 200 and n.alive("keyservice")


def test_body_limit(node, admin):
    body = {"key_id": "finance", "context": "mailbox:limit@" + FIN}
    # exactly max_body: accepted
    r = admin.post("/v1/keys/datakey", raw=padded(body, MAX_BODY))
    assert r.status == 200, r
    assert r.json["key_id"] == "finance"
    # one byte more: 413 with a JSON error
    j = check_error(admin.post("/v1/keys/datakey",
                               raw=padded(body, MAX_BODY + 1)), 413)
    assert j["error"] in ("body_too_large", "too_large"), j
    # much more, announced by Content-Length
    check_error(admin.post("/v1/keys/datakey",
                           raw=padded(body, 10 * MAX_BODY)), 413)
    # a user whose record would need more than the limit is not created
    big = {"address": "big@" + FIN, "password": "pw",
           "display_name": "x" * 100, "pad": "y" * MAX_BODY}
    check_error(admin.post("/v1/users", big), 413)
    assert "big@" + FIN not in users_db(node)


def test_chunked_body_over_limit(node):
    """A chunked body that grows past max_body is refused the same way."""
    ctx = ssl.create_default_context(cafile=node.ca)
    ctx.load_cert_chain(*node.client_cert("admin"))
    with socket.create_connection(("127.0.0.1", node.port("keyservice")),
                                  timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"POST /v1/keys/datakey HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b" " * 1024
            data = b""
            try:
                for _ in range(8):
                    s.sendall(b"400\r\n" + chunk + b"\r\n")
                s.sendall(b"0\r\n\r\n")
            except OSError:
                pass
            s.settimeout(10)
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    data += d
                    head, sep, body = data.partition(b"\r\n\r\n")
                    m = re.search(rb"(?i)content-length: *(\d+)", head)
                    if sep and m and len(body) >= int(m.group(1)):
                        break
            except (OSError, ssl.SSLError):
                pass
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), data[:300]
    assert b"application/json" in head.lower(), head
    j = json.loads(body.decode())
    assert j["error"] and j["message"], j


@pytest.mark.parametrize("addr,status", [
    ("no-at-sign", 400), ("a@b", 400), ("@" + FIN, 400), ("a@", 400),
    ("a b@" + FIN, 400), ("a..b@" + FIN, 400), ("x" * 65 + "@" + FIN, 400),
    ("x@unknown-domain.test", 404),
])
def test_invalid_addresses(node, admin, addr, status):
    j = check_error(admin.post("/v1/users", {"address": addr,
                                             "password": "pw-123"}), status)
    msg = j["message"].lower()
    assert "address" in msg or "domain" in msg, j
    assert addr.lower() not in users_db(node)


def test_wrong_field_types(admin):
    check_error(admin.post("/v1/users", {"address": 42}), 400, "invalid")
    check_error(admin.post("/v1/users", {}), 400, "invalid")
    check_error(admin.post("/v1/users", {"address": "t@" + FIN,
                                         "roles": ["king"]}), 400)
    check_error(admin.post("/v1/users", {"address": "t@" + FIN,
                                         "roles": "user"}), 400)
    check_error(admin.post("/v1/users", {"address": "t@" + FIN,
                                         "password": ""}), 400)
    check_error(admin.post("/v1/users", {"address": "t@" + FIN,
                                         "password": "p" * 1025}), 400)
    check_error(admin.post("/v1/users", {"address": "t@" + FIN,
                                         "display_name": "d" * 129}), 400)
    check_error(admin.post("/v1/users", {"address": "t\u0000x@" + FIN}),
                400)
    check_error(admin.post("/v1/keys/datakey", {"key_id": "finance",
                                                "context": "c" * 513}), 400)
    check_error(admin.post("/v1/keys/datakey", {"key_id": ["finance"],
                                                "context": "c"}), 400)
    check_error(admin.post("/v1/keys/unwrap", {"wrapped": "!!",
                                               "context": "c"}), 400)
    check_error(admin.patch("/v1/users/nobody@" + FIN,
                            {"status": "gone"}), 404)


def test_departments(node, admin):
    check_error(admin.get("/v1/depts/nope"), 404, "not_found")
    check_error(admin.post("/v1/depts", {"name": "finance2",
                                         "domains": [FIN]}), 409, "exists")
    check_error(admin.post("/v1/depts", {"name": "finance",
                                         "domains": ["other.test"]}),
                409, "exists")
    for bad in ({"name": "Bad Name", "domains": ["b.test"]},
                {"name": "-x", "domains": ["b.test"]},
                {"name": "x" * 33, "domains": ["b.test"]},
                {"name": "ok", "domains": "b.test"},
                {"name": "ok", "domains": ["not a domain"]},
                {"name": "ok", "domains": [5]},
                {"domains": ["b.test"]}):
        check_error(admin.post("/v1/depts", bad), 400)
    r = admin.get("/v1/depts")
    assert [d["name"] for d in r.json["depts"]] == ["finance"], r.json
    check_error(admin.get("/v1/keys/ok"), 404)


def test_content_type(admin):
    body = json.dumps({"address": "ct@" + FIN}).encode()
    for ct in ("text/plain", "application/x-www-form-urlencoded",
               "application/jsonx", None):
        j = check_error(admin.post("/v1/users", raw=body, ctype=ct), 415)
        assert "application/json" in j["message"]
    # parameters and case are fine
    r = admin.post("/v1/keys/datakey", raw=json.dumps(
        {"key_id": "finance", "context": "c"}).encode(),
        ctype="Application/JSON; charset=utf-8")
    assert r.status == 200, r


def test_unknown_routes_and_methods(admin):
    check_error(admin.get("/v1/nothing"), 404)
    check_error(admin.get("/v1/users/x@%s/export" % FIN), 404)
    check_error(admin.post("/v1/users/x@%s/nothing" % FIN, {}), 404)
    check_error(admin.post("/v1/keys/finance/explode"), 404)
    check_error(admin.post("/v1/certs/abc/unrevoke", {}), 404)
    r = admin.request("PUT", "/v1/users", {"address": "p@" + FIN})
    assert r.status in (404, 405), r
    check_error(r, r.status)
    check_error(admin.get("/v1/certs"), 400)
    check_error(admin.get("/v1/certs?address=not-an-address"), 400)
    check_error(admin.get("/v1/certs/ffff"), 404)
    check_error(admin.get("/v1/sign/keys/nobody"), 404)


def test_errors_leave_state_unchanged(node, admin):
    """After all of the above: only what the valid requests made."""
    assert users_db(node) == {}
    r = admin.get("/v1/users")
    assert r.status == 200 and r.json == {"users": []}, r
