"""
keyservice access control end to end: no client certificate, or one from
another CA, is refused during the TLS handshake (Python ssl and curl); a
user-role caller gets 403 on admin endpoints; a department admin manages
her own department only; a suspended user's certificate is refused with
"suspended".  Every refusal is checked against the stored state too.
"""
import os
import subprocess

import pytest

from ks_client import (FINANCE, HEALTH, KS, check_error, finish,
                       issue_client, make_csr, mdb_json, need_tools,
                       openssl,
                       start_ks_node, tls_refused)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    need_tools("openssl", "curl")
    n = start_ks_node(tmp_path_factory.mktemp("ksacl"))
    yield n
    finish(n)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return str(tmp_path_factory.mktemp("ksacl-work"))


@pytest.fixture(scope="module")
def admin(node):
    return KS(node, "admin")


@pytest.fixture(scope="module")
def certs(admin, work):
    """Client certificates issued by the admin from CSRs made here."""
    out = {}
    for addr in ("alice@" + FINANCE, "fatima@" + FINANCE,
                 "sofia@" + FINANCE, "carol@" + HEALTH, "bob@" + FINANCE):
        cert, key, rec = issue_client(admin, work, addr)
        out[addr.split("@")[0]] = (cert, key, rec)
    return out


@pytest.fixture(scope="module")
def alice(node, certs):
    return KS(node, certs["alice"][:2])


@pytest.fixture(scope="module")
def fatima(node, certs):
    return KS(node, certs["fatima"][:2])


# curl exit codes when the server ends the handshake: 35 (handshake
# failed), 56 (TLS 1.3: the alert arrives on the first read) or 55 (the
# server closed before curl could send the request)
CURL_TLS_REFUSED = (35, 55, 56)


def db(node, name):
    return mdb_json(os.path.join(node.dir, "keyservice", "db"), name)


def curl_rc(node, *args):
    r = subprocess.run(["curl", "-sS", "-m", "20", "--cacert", node.ca] +
                       list(args) + ["https://127.0.0.1:%d/healthz" %
                                     node.port("keyservice")],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def test_healthz_with_certificate(node, admin):
    r = admin.get("/healthz")
    assert r.status == 200 and r.json["status"] == "ok", r
    rc, out, err = curl_rc(node, "--cert", node.client_cert("admin")[0],
                           "--key", node.client_cert("admin")[1])
    assert rc == 0 and '"ok"' in out, (rc, out, err)


def test_no_client_certificate_is_refused_in_tls(node):
    how = tls_refused(node, None)
    assert "SSL" in how or "Reset" in how or "Disconnected" in how, how
    rc, out, err = curl_rc(node)
    assert rc in CURL_TLS_REFUSED, (rc, out, err)
    assert "ok" not in out


def test_foreign_ca_certificate_is_refused_in_tls(node, work):
    """A client certificate of another CA (even with CN=admin, and with
    that CA's chain) never reaches the API."""
    d = os.path.join(work, "evil")
    os.makedirs(d)
    ca_key, ca_pem = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key, "-out",
            ca_pem, "-subj", "/O=Amanat/CN=e2e", "-days", "2",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    key, csr = os.path.join(d, "admin.key"), os.path.join(d, "admin.csr")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=admin")
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    cert = os.path.join(d, "admin.pem")
    openssl("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
            "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext)
    chain = os.path.join(d, "chain.pem")
    with open(chain, "w") as f:
        f.write(open(cert).read() + open(ca_pem).read())
    for c in (cert, chain):
        how = tls_refused(node, (c, key))
        assert "SSL" in how or "Reset" in how or "Disconnected" in how, how
        rc, out, err = curl_rc(node, "--cert", c, "--key", key)
        assert rc in CURL_TLS_REFUSED, (rc, out, err)
    # a self-signed certificate with CN=admin, too
    ss_key, ss = os.path.join(d, "ss.key"), os.path.join(d, "ss.pem")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", ss_key, "-out",
            ss, "-subj", "/CN=admin", "-days", "2")
    tls_refused(node, (ss, ss_key))
    # the node is fine afterwards
    assert KS(node, "admin").get("/healthz").status == 200


def test_user_role_forbidden_on_admin_endpoints(node, admin, alice):
    me = "alice@" + FINANCE
    assert alice.get("/v1/users/" + me).status == 200
    calls = [
        ("POST", "/v1/depts", {"name": "evil", "domains": ["evil.test"]}),
        ("GET", "/v1/users", None),
        ("GET", "/v1/users?dept=finance", None),
        ("POST", "/v1/keys/datakey", {"key_id": "finance", "context": "c"}),
        ("POST", "/v1/keys/unwrap", {"wrapped": "SwE=", "context": "c"}),
        ("POST", "/v1/keys/finance/rotate", {}),
        ("GET", "/v1/keys/finance", None),
        ("POST", "/v1/users", {"address": "mallory@" + FINANCE,
                               "password": "m-pw-1"}),
        ("PATCH", "/v1/users/" + me, {"roles": ["user", "dept-admin"]}),
        ("PATCH", "/v1/users/bob@" + FINANCE, {"status": "suspended"}),
        ("DELETE", "/v1/users/bob@" + FINANCE, None),
        ("GET", "/v1/users/bob@" + FINANCE, None),
        ("POST", "/v1/users/bob@%s/password" % FINANCE, {"password": "x"}),
        ("POST", "/v1/users/bob@%s/export" % FINANCE, {"passphrase": "x"}),
        ("POST", "/v1/users/%s/smime" % me, {}),
        ("POST", "/v1/auth/password", {"address": me, "password": "x",
                                       "source": "s"}),
        ("POST", "/v1/sign/raw", {"data": "aGk="}),
        ("POST", "/v1/sign/cms", {"signer": "bob@" + FINANCE,
                                  "data": "aGk="}),
    ]
    for method, path, body in calls:
        r = alice.request(method, path, body)
        check_error(r, 403, "forbidden")
    # a client certificate for someone else, or for a principal
    for cn in ("bob@" + FINANCE, "admin", me):
        _, csr = make_csr(os.path.dirname(node.ca), cn, "alice-req")
        check_error(alice.post("/v1/certs/client", {"csr": csr}), 403,
                    "forbidden")
    # nothing changed
    assert admin.get("/v1/depts/evil").status == 404
    users = db(node, "users")
    assert "mallory@" + FINANCE not in users
    assert users[me]["roles"] == ["user"]
    assert users["bob@" + FINANCE]["status"] == "active"
    r = admin.get("/v1/keys/finance")
    assert [v["version"] for v in r.json["versions"]] == [1]
    # what a user may do: own record, own department, public look-ups
    assert alice.get("/v1/depts").json["depts"][0]["name"] == "finance"
    assert len(alice.get("/v1/depts").json["depts"]) == 1
    assert alice.get("/v1/depts/finance").status == 200
    check_error(alice.get("/v1/depts/health"), 403, "forbidden")
    assert alice.get("/v1/certs?address=carol@" + HEALTH).status == 200
    assert alice.get("/v1/sign/keys/mailsrv").status == 200


def test_dept_admin_manages_own_department(node, admin, fatima, work):
    new = "nadia@" + FINANCE
    r = fatima.post("/v1/users", {"address": new, "display_name": "Nadia",
                                  "password": "nadia-pw-1"})
    assert r.status == 201, r
    assert r.json["dept"] == "finance" and r.json["roles"] == ["user"]
    assert db(node, "users")[new]["dept"] == "finance"
    r = fatima.get("/v1/users?dept=finance")
    assert r.status == 200 and new in [u["address"]
                                       for u in r.json["users"]], r
    # without ?dept= a dept-admin sees her own department
    r = fatima.get("/v1/users")
    assert r.status == 200
    assert {u["dept"] for u in r.json["users"]} == {"finance"}, r.json
    r = fatima.patch("/v1/users/" + new, {"display_name": "Nadia F."})
    assert r.status == 200 and r.json["display_name"] == "Nadia F."
    # a client certificate for a user of her department, from a CSR
    cert, key, rec = issue_client(fatima, work, new, "nadia-by-fatima")
    assert KS(node, (cert, key)).get("/v1/users/" + new).status == 200
    # revoke it again, rotate her department's key
    r = fatima.post("/v1/certs/%s/revoke" % rec["serial"], {})
    assert r.status == 200 and r.json["status"] == "revoked", r
    r = fatima.post("/v1/keys/finance/rotate")
    assert r.status == 200 and r.json["version"] == 2, r
    assert fatima.get("/v1/keys/finance").status == 200
    r = fatima.delete("/v1/users/" + new)
    assert r.status == 200 and r.json == {"deleted": new}, r
    assert new not in db(node, "users")
    # departments are the node admin's
    check_error(fatima.post("/v1/depts", {"name": "fin2",
                                          "domains": ["fin2.test"]}), 403)


def test_dept_admin_refused_for_other_department(node, admin, fatima,
                                                 certs, work):
    carol = "carol@" + HEALTH
    before_users = db(node, "users")
    before_certs = db(node, "certs")
    carol_cert = certs["carol"][2]["serial"]
    smime = [c["serial"] for c in
             admin.get("/v1/certs?address=" + carol).json["certs"]]
    assert len(smime) == 2

    check_error(fatima.post("/v1/users", {"address": "carol2@" + HEALTH,
                                          "password": "c2-pw"}),
                403, "forbidden")
    check_error(fatima.patch("/v1/users/" + carol,
                             {"status": "suspended"}), 403, "forbidden")
    check_error(fatima.patch("/v1/users/" + carol,
                             {"roles": ["user", "dept-admin"]}), 403)
    check_error(fatima.delete("/v1/users/" + carol), 403, "forbidden")
    check_error(fatima.post("/v1/keys/health/rotate"), 403, "forbidden")
    check_error(fatima.get("/v1/keys/health"), 403, "forbidden")
    check_error(fatima.post("/v1/certs/%s/revoke" % carol_cert, {}), 403,
                "forbidden")
    for s in smime:
        check_error(fatima.post("/v1/certs/%s/revoke" % s, {}), 403)
    check_error(fatima.post("/v1/users/%s/export" % carol,
                            {"passphrase": "steal"}), 403, "forbidden")
    check_error(fatima.post("/v1/users/%s/password" % carol,
                            {"password": "steal"}), 403, "forbidden")
    check_error(fatima.post("/v1/users/%s/smime" % carol, {}), 403)
    check_error(fatima.get("/v1/users?dept=health"), 403, "forbidden")
    check_error(fatima.get("/v1/users/" + carol), 403, "forbidden")
    _, csr = make_csr(work, carol, "carol-by-fatima")
    check_error(fatima.post("/v1/certs/client", {"csr": csr}), 403)
    # nothing changed for health
    after_users = db(node, "users")
    assert "carol2@" + HEALTH not in after_users
    assert after_users[carol] == before_users[carol]
    after_certs = db(node, "certs")
    for s in smime + [carol_cert]:
        assert after_certs[s]["status"] == "valid", s
        assert after_certs[s] == before_certs[s]
    r = admin.get("/v1/keys/health")
    assert [v["version"] for v in r.json["versions"]] == [1]
    assert KS(node, certs["carol"][:2]).get("/v1/users/" + carol).status \
        == 200
    # and hamid, health's admin, may
    hcert, hkey, _ = issue_client(admin, work, "hamid@" + HEALTH)
    hamid = KS(node, (hcert, hkey))
    r = hamid.get("/v1/users?dept=health")
    assert r.status == 200 and carol in [u["address"]
                                         for u in r.json["users"]]
    check_error(hamid.get("/v1/users?dept=finance"), 403)


def test_suspended_user_certificate_is_refused(node, admin, certs):
    bob = KS(node, certs["bob"][:2])
    me = "bob@" + FINANCE
    assert bob.get("/v1/users/" + me).status == 200
    r = admin.patch("/v1/users/" + me, {"status": "suspended"})
    assert r.status == 200 and r.json["status"] == "suspended"
    assert db(node, "users")[me]["status"] == "suspended"
    # on the same connection and on a new one
    check_error(bob.get("/v1/users/" + me), 403, "suspended")
    check_error(bob.get("/v1/users/" + me, fresh=True), 403, "suspended")
    check_error(bob.post("/v1/sign/cms", {"signer": me, "data": "aGk="}),
                403, "suspended")
    r = admin.patch("/v1/users/" + me, {"status": "active"})
    assert r.status == 200
    assert bob.get("/v1/users/" + me).status == 200
    # deleting the user revokes every certificate of the address first,
    # so that a later user of the same address inherits none
    serials = [certs["bob"][2]["serial"]] + [
        c["serial"] for c in admin.get("/v1/certs?address=" + me).json[
            "certs"]]
    assert len(serials) == 3
    r = admin.delete("/v1/users/" + me)
    assert r.status == 200 and r.json == {"deleted": me}, r
    check_error(bob.get("/v1/users/" + me), 403, "forbidden")
    stored = db(node, "certs")
    for s in serials:
        assert stored[s]["status"] == "revoked", s
        assert stored[s]["reason"] == "affiliationChanged", s
    assert admin.get("/v1/certs?address=" + me).json["certs"] == []
    r = admin.post("/v1/users", {"address": me, "password": "new-bob-pw"})
    assert r.status == 201, r
    j = check_error(bob.get("/v1/users/" + me, fresh=True), 403,
                    "forbidden")
    assert "revoked" in j["message"], j


def test_revoked_certificate_refused_on_open_connection(node, admin, certs):
    """The revocation takes effect on the next request, even on a
    connection that was already authorised."""
    sofia = KS(node, certs["sofia"][:2])
    me = "sofia@" + FINANCE
    assert sofia.get("/v1/users/" + me).status == 200
    r = admin.post("/v1/certs/%s/revoke" % certs["sofia"][2]["serial"],
                   {"reason": "affiliationChanged"})
    assert r.status == 200
    j = check_error(sofia.get("/v1/users/" + me), 403, "forbidden")
    assert "revoked" in j["message"]
    check_error(sofia.get("/v1/users/" + me, fresh=True), 403, "forbidden")


def test_deleted_users_mixed_case_certificate_is_not_inherited(node, admin,
                                                               work):
    addr = "una@" + FINANCE
    assert admin.post("/v1/users", {"address": addr,
                                    "password": "una-pw-1"}).status == 201
    key, csr = make_csr(work, addr.upper(), "una-upper")
    r = admin.post("/v1/certs/client", {"csr": csr})
    if r.status != 201:             # refusing such a CN is a fix too
        check_error(r, 400)
        return
    cert = os.path.join(work, "una-upper.pem")
    with open(cert, "w") as f:
        f.write(r.json["pem"])
    old = KS(node, (cert, key))
    assert admin.delete("/v1/users/" + addr).status == 200
    assert admin.post("/v1/users", {"address": addr, "roles": [
        "user", "dept-admin"], "password": "una-pw-2"}).status == 201
    r = old.get("/v1/depts", fresh=True)
    assert r.status == 403, ("the deleted user's certificate still works "
                             "for the new user", r)
