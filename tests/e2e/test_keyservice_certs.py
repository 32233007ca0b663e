"""
keyservice certificates end to end: every certificate the node issues
verifies with `openssl verify -CAfile ca.pem`; a revocation reaches the
CRL served at the URL named in the certificates' CRL distribution point
(fetched with curl) so that `openssl verify -crl_check` rejects the
revoked certificate and still accepts the others; the API refuses a
revoked client certificate on its next request.
"""
import os
import subprocess

import pytest

from ks_client import (FINANCE, KS, cert_crl_url, check_error, finish,
                       issue_client, make_csr, mdb_json, need_tools,
                       openssl, start_ks_node, verify, write)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    need_tools("openssl", "curl")
    n = start_ks_node(tmp_path_factory.mktemp("kscerts"))
    yield n
    finish(n)


@pytest.fixture(scope="module")
def admin(node):
    return KS(node, "admin")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return str(tmp_path_factory.mktemp("kscerts-work"))


def curl_get(url, out, timeout=30):
    r = subprocess.run(["curl", "-sS", "-f", "-m", str(timeout - 5), "-o",
                        out, "-w", "%{http_code}", url],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, "curl %s failed (rc=%d): %s" % (
        url, r.returncode, r.stderr)
    assert r.stdout.strip() == "200", r.stdout
    return out


def fetch_crl(certfile, work, name="crl"):
    """The CRL from the certificate's distribution point, as PEM."""
    url = cert_crl_url(certfile)
    der = curl_get(url, os.path.join(work, name + ".der"))
    pem = os.path.join(work, name + ".pem")
    openssl("crl", "-inform", "DER", "-in", der, "-out", pem)
    return pem


def crl_serials(pem):
    text = openssl("crl", "-in", pem, "-noout", "-text").stdout.decode()
    out = set()
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Serial Number:"):
            out.add(line.split(":", 1)[1].strip().lower())
    return out


def norm_serial(s):
    return s.lower().lstrip("0")


def test_init_certificates_verify(node):
    """The server certificate and the three client certificates made by
    --init chain to the node CA, each fit for its purpose."""
    ok, out = verify(node.ca, node.cert, purpose="sslserver")
    assert ok, out
    for who in ("admin", "mailsrv", "docstore"):
        cert, key = node.client_cert(who)
        ok, out = verify(node.ca, cert, purpose="sslclient")
        assert ok, "%s: %s" % (who, out)
        subj = openssl("x509", "-in", cert, "-noout", "-subject").stdout
        assert ("CN = %s" % who).encode() in subj or \
            ("CN=%s" % who).encode() in subj, subj
        assert os.stat(key).st_mode & 0o077 == 0, "%s key mode" % who


def test_certificates_name_this_nodes_crl(node, work):
    """The CRL distribution point of the issued certificates is the
    node's crl_url, which reaches its crl_listen."""
    url = cert_crl_url(node.client_cert("admin")[0])
    assert url == "http://127.0.0.1:%d/crl.der" % node.port(
        "keyservice_crl"), url
    pem = fetch_crl(node.client_cert("admin")[0], work, "crl-initial")
    # a CRL signed by the node CA
    r = openssl("crl", "-in", pem, "-noout", "-CAfile", node.ca)
    assert b"verify OK" in r.stdout + r.stderr
    # the CA certificate is served as is, /crl.pem matches /crl.der
    base = url.rsplit("/", 1)[0]
    capem = curl_get(base + "/ca.pem", os.path.join(work, "served-ca.pem"))
    with open(capem, "rb") as a, open(node.ca, "rb") as b:
        assert a.read() == b.read()
    crlpem = curl_get(base + "/crl.pem", os.path.join(work, "served.pem"))
    d1 = openssl("crl", "-in", crlpem, "-outform", "DER").stdout
    d2 = openssl("crl", "-in", pem, "-outform", "DER").stdout
    assert d1 == d2


def test_smime_certificates_verify(node, admin, work):
    """GET /v1/certs?address= lists the user's S/MIME signing and
    encryption certificates; both verify, for their purposes."""
    r = admin.get("/v1/certs?address=alice@" + FINANCE)
    assert r.status == 200, r
    certs = r.json["certs"]
    kinds = sorted(c["kind"] for c in certs)
    assert kinds == ["smime-enc", "smime-sign"], certs
    purpose = {"smime-sign": "smimesign", "smime-enc": "smimeencrypt"}
    for c in certs:
        assert c["status"] == "valid" and c["address"] == "alice@" + FINANCE
        f = write(os.path.join(work, "alice-%s.pem" % c["kind"]), c["pem"])
        ok, out = verify(node.ca, f)
        assert ok, out
        ok, out = verify(node.ca, f, purpose=purpose[c["kind"]])
        assert ok, "%s: %s" % (c["kind"], out)
        # the record's serial is the certificate's
        ser = openssl("x509", "-in", f, "-noout", "-serial").stdout.decode()
        assert norm_serial(ser.split("=", 1)[1].strip()) == \
            norm_serial(c["serial"])
        # GET /v1/certs/<serial> answers the same record
        g = admin.get("/v1/certs/" + c["serial"])
        assert g.status == 200 and g.json["pem"] == c["pem"], g
    # the same look-up is open to any caller (a service)
    r2 = KS(node, "mailsrv").get("/v1/certs?address=alice@" + FINANCE)
    assert r2.status == 200 and len(r2.json["certs"]) == 2


def test_client_certificate_from_csr(node, admin, work):
    """A CSR made by openssl gets a clientAuth certificate with the CN of
    the CSR; it verifies and works against the API."""
    cert, key, rec = issue_client(admin, work, "alice@" + FINANCE,
                                  "alice-csr")
    ok, out = verify(node.ca, cert)
    assert ok, out
    ok, out = verify(node.ca, cert, purpose="sslclient")
    assert ok, out
    text = openssl("x509", "-in", cert, "-noout", "-text").stdout.decode()
    assert "TLS Web Client Authentication" in text, text
    assert "CN = alice@" + FINANCE in text or "CN=alice@" + FINANCE in text
    # the issued certificate is for the CSR's key
    p1 = openssl("x509", "-in", cert, "-noout", "-pubkey").stdout
    p2 = openssl("pkey", "-in", key, "-pubout").stdout
    assert p1 == p2
    # on record, and usable
    g = admin.get("/v1/certs/" + rec["serial"])
    assert g.status == 200 and g.json["status"] == "valid", g
    me = KS(node, (cert, key)).get("/v1/users/alice@" + FINANCE)
    assert me.status == 200 and me.json["address"] == "alice@" + FINANCE
    stored = mdb_json(os.path.join(node.dir, "keyservice", "db"), "certs")
    rec_s = stored[rec["serial"]]
    assert rec_s["kind"] == "client" and rec_s["status"] == "valid"


def test_csr_without_cn_or_garbage_is_refused(node, admin, work):
    check_error(admin.post("/v1/certs/client", {"csr": "not a csr"}), 400)
    key = os.path.join(work, "nocn.key")
    csr = os.path.join(work, "nocn.csr")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/O=Nobody")
    with open(csr) as f:
        check_error(admin.post("/v1/certs/client", {"csr": f.read()}), 400)
    # a principal that does not exist
    _, csrpem = make_csr(work, "nosuchservice")
    check_error(admin.post("/v1/certs/client", {"csr": csrpem}), 404)


def test_revocation_reaches_crl_and_api(node, admin, work):
    """Revoke one of two client certificates: the CRL fetched from the
    certificate's distribution point makes openssl reject it and accept
    the other; the API refuses it (403) on its next request while the
    other keeps working."""
    c1, k1, r1 = issue_client(admin, work, "bob@" + FINANCE, "bob-1")
    c2, k2, r2 = issue_client(admin, work, "bob@" + FINANCE, "bob-2")
    bob1, bob2 = KS(node, (c1, k1)), KS(node, (c2, k2))
    assert bob1.get("/v1/users/bob@" + FINANCE).status == 200
    assert bob2.get("/v1/users/bob@" + FINANCE).status == 200

    before = fetch_crl(c1, work, "crl-before")
    ok, out = verify(node.ca, c1, crl=before)
    assert ok, out

    # a user may not revoke certificates
    r = bob1.post("/v1/certs/%s/revoke" % r1["serial"], {})
    check_error(r, 403, "forbidden")

    r = admin.post("/v1/certs/%s/revoke" % r1["serial"],
                   {"reason": "keyCompromise"})
    assert r.status == 200, r
    assert r.json["serial"] == r1["serial"]
    assert r.json["status"] == "revoked"
    assert r.json["reason"] == "keyCompromise"
    assert isinstance(r.json["revoked_at"], int)

    after = fetch_crl(c1, work, "crl-after")
    assert norm_serial(r1["serial"]) in {norm_serial(s) for s in
                                         crl_serials(after)}
    assert norm_serial(r2["serial"]) not in {norm_serial(s) for s in
                                             crl_serials(after)}
    ok, out = verify(node.ca, c1, crl=after)
    assert not ok and "certificate revoked" in out, out
    ok, out = verify(node.ca, c2, crl=after)
    assert ok, out
    # the server certificate still verifies against the new CRL too
    ok, out = verify(node.ca, node.cert, crl=after)
    assert ok, out
    text = openssl("crl", "-in", after, "-noout", "-text").stdout.decode()
    assert "Key Compromise" in text, text

    # the API: refused at once, the other certificate unaffected
    check_error(bob1.get("/v1/users/bob@" + FINANCE), 403, "forbidden")
    assert bob2.get("/v1/users/bob@" + FINANCE).status == 200
    # stored state and look-up
    g = admin.get("/v1/certs/" + r1["serial"])
    assert g.status == 200 and g.json["status"] == "revoked"
    stored = mdb_json(os.path.join(node.dir, "keyservice", "db"), "certs")
    rec_s = stored[r1["serial"]]
    assert rec_s["status"] == "revoked" and \
        rec_s["reason"] == "keyCompromise"
    # revoking twice is a conflict, an unknown serial is not found
    check_error(admin.post("/v1/certs/%s/revoke" % r1["serial"], {}), 409,
                "exists")
    check_error(admin.post("/v1/certs/00ff00ff/revoke", {}), 404,
                "not_found")
    check_error(admin.post("/v1/certs/%s/revoke" % r2["serial"],
                           {"reason": "bored"}), 400, "invalid")


def test_revoked_smime_certificate_leaves_lookup(node, admin, work):
    """A revoked S/MIME certificate is no longer listed as valid and the
    CRL rejects it."""
    r = admin.get("/v1/certs?address=dave@health.amanat.test")
    sign = [c for c in r.json["certs"] if c["kind"] == "smime-sign"][0]
    f = write(os.path.join(work, "dave-sign.pem"), sign["pem"])
    r = admin.post("/v1/certs/%s/revoke" % sign["serial"],
                   {"reason": "superseded"})
    assert r.status == 200 and r.json["status"] == "revoked", r
    r = admin.get("/v1/certs?address=dave@health.amanat.test")
    assert [c["kind"] for c in r.json["certs"]] == ["smime-enc"], r.json
    crl = fetch_crl(f, work, "crl-dave")
    ok, out = verify(node.ca, f, crl=crl)
    assert not ok and "certificate revoked" in out, out
    # signing as dave has no valid certificate now
    r = KS(node, "mailsrv").post("/v1/sign/cms", {
        "signer": "dave@health.amanat.test", "data": "aGVsbG8="})
    check_error(r, 404, "not_found")
