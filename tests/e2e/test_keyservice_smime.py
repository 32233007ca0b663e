"""
keyservice S/MIME end to end with openssl: a user's PKCS#12 export opens
with its passphrase (and not without), its encryption key decrypts what
`openssl cms -encrypt` made for the user's encryption certificate; CMS
signatures made by POST /v1/sign/cms (as a service, or as the user with
her own client certificate) verify with `openssl cms -verify` and fail
for modified data.
"""
import os
import re

import pytest

from ks_client import (FINANCE, HEALTH, KS, b64, check_error, finish,
                       issue_client, need_tools, openssl, start_ks_node,
                       unb64, write)

ALICE = "alice@" + FINANCE
PASS = "correct horse battery staple"

# every byte value, CR LF and a line of text: -binary must keep them all
MESSAGE = (b"Subject: budget 2027\r\n\r\nThe numbers are final.\r\n" +
           bytes(range(256)) + b"\n.\r\n")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    need_tools("openssl")
    n = start_ks_node(tmp_path_factory.mktemp("kssmime"))
    yield n
    finish(n)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return str(tmp_path_factory.mktemp("kssmime-work"))


@pytest.fixture(scope="module")
def admin(node):
    return KS(node, "admin")


@pytest.fixture(scope="module")
def alice(node, admin, work):
    cert, key, _ = issue_client(admin, work, ALICE, "alice-client")
    return KS(node, (cert, key))


@pytest.fixture(scope="module")
def alice_certs(admin, work):
    """{"smime-sign": path, "smime-enc": path} from GET /v1/certs."""
    r = admin.get("/v1/certs?address=" + ALICE)
    assert r.status == 200, r
    out = {}
    for c in r.json["certs"]:
        out[c["kind"]] = write(os.path.join(work, "alice-%s.pem" %
                                            c["kind"]), c["pem"], 0o644)
    assert set(out) == {"smime-sign", "smime-enc"}, r.json
    return out


def export_p12(ks, addr, passphrase, path):
    r = ks.post("/v1/users/%s/export" % addr, {"passphrase": passphrase})
    assert r.status == 200, r
    assert set(r.json) == {"pkcs12"}, r.json
    return write(path, unb64(r.json["pkcs12"]))


def p12_bags(p12, passphrase, work, tag):
    """
    The keys and certificates of a PKCS#12 by friendlyName suffix
    ("signing"/"encryption"): {"signing": {"key": path, "cert": path}}.
    """
    r = openssl("pkcs12", "-in", p12, "-passin", "pass:" + passphrase,
                "-nodes")
    text = r.stdout.decode()
    bags = {}
    for m in re.finditer(r"Bag Attributes\n(.*?)(-----BEGIN ([A-Z ]+)-----\n"
                         r".*?-----END \3-----\n)", text, re.S):
        attrs, pem, kind = m.group(1), m.group(2), m.group(3)
        fn = re.search(r"friendlyName: (.*)", attrs)
        name = fn.group(1).strip() if fn else ""
        if name.endswith(" signing"):
            usage = "signing"
        elif name.endswith(" encryption"):
            usage = "encryption"
        else:
            usage = "other:" + name
        what = "key" if "PRIVATE KEY" in kind else "cert"
        path = os.path.join(work, "%s-%s.%s.pem" % (tag, usage, what))
        write(path, pem)
        bags.setdefault(usage, {}).setdefault(what, []).append(path)
    return bags


def pubkey_of_cert(path):
    return openssl("x509", "-in", path, "-noout", "-pubkey").stdout


def pubkey_of_key(path):
    return openssl("pkey", "-in", path, "-pubout").stdout


def test_pkcs12_export_and_cms_decrypt_roundtrip(node, admin, work,
                                                 alice_certs):
    p12 = export_p12(admin, ALICE, PASS, os.path.join(work, "alice.p12"))
    bags = p12_bags(p12, PASS, work, "alice")
    assert set(bags) == {"signing", "encryption"}, bags
    enc_key = bags["encryption"]["key"][0]
    sign_key = bags["signing"]["key"][0]
    # the PKCS#12 holds the keys of the directory's certificates
    assert pubkey_of_key(enc_key) == pubkey_of_cert(alice_certs["smime-enc"])
    assert pubkey_of_key(sign_key) == \
        pubkey_of_cert(alice_certs["smime-sign"])
    assert pubkey_of_key(enc_key) != pubkey_of_key(sign_key)
    # RSA-3072 per the API doc
    text = openssl("pkey", "-in", enc_key, "-noout", "-text").stdout
    assert b"3072 bit" in text, text[:200]

    msg = write(os.path.join(work, "msg.bin"), MESSAGE)
    env = os.path.join(work, "msg.p7m")
    openssl("cms", "-encrypt", "-binary", "-aes256", "-in", msg,
            "-outform", "DER", "-out", env, alice_certs["smime-enc"])
    out = os.path.join(work, "msg.out")
    openssl("cms", "-decrypt", "-binary", "-inform", "DER", "-in", env,
            "-recip", alice_certs["smime-enc"], "-inkey", enc_key,
            "-out", out)
    with open(out, "rb") as f:
        assert f.read() == MESSAGE
    # the signing key is not the one that decrypts
    r = openssl("cms", "-decrypt", "-binary", "-inform", "DER", "-in", env,
                "-inkey", sign_key, "-out", out + ".2", check=False)
    assert r.returncode != 0


def test_pkcs12_wrong_passphrase_fails(node, admin, work):
    p12 = export_p12(admin, ALICE, PASS, os.path.join(work, "alice2.p12"))
    r = openssl("pkcs12", "-in", p12, "-passin", "pass:" + PASS + "x",
                "-nodes", check=False)
    assert r.returncode != 0
    assert b"PRIVATE KEY" not in r.stdout
    # and without any passphrase
    r = openssl("pkcs12", "-in", p12, "-passin", "pass:", "-nodes",
                check=False)
    assert r.returncode != 0
    assert b"PRIVATE KEY" not in r.stdout


def test_export_rules(node, admin, alice, work):
    """Self and the node admin may export; another user or a service may
    not; the passphrase is required."""
    p12 = export_p12(alice, ALICE, "mine", os.path.join(work, "self.p12"))
    r = openssl("pkcs12", "-in", p12, "-passin", "pass:mine", "-nodes",
                "-nocerts")
    assert r.stdout.count(b"PRIVATE KEY-----") == 4   # 2 keys, BEGIN+END
    cert, key, _ = issue_client(admin, work, "bob@" + FINANCE, "bob-client")
    bob = KS(node, (cert, key))
    check_error(bob.post("/v1/users/%s/export" % ALICE,
                         {"passphrase": "x"}), 403, "forbidden")
    check_error(KS(node, "mailsrv").post("/v1/users/%s/export" % ALICE,
                                         {"passphrase": "x"}), 403)
    check_error(admin.post("/v1/users/%s/export" % ALICE,
                           {"passphrase": ""}), 400)
    check_error(admin.post("/v1/users/%s/export" % ALICE, {}), 400)
    check_error(admin.post("/v1/users/nobody@%s/export" % FINANCE,
                           {"passphrase": "x"}), 404)


def cms_verify(node, sig, data, purpose="smimesign", signer_out=None):
    args = ["cms", "-verify", "-binary", "-inform", "DER", "-in", sig,
            "-content", data, "-CAfile", node.ca, "-out", os.devnull]
    if purpose:
        args += ["-purpose", purpose]
    if signer_out:
        args += ["-signer", signer_out]
    r = openssl(*args, check=False)
    return r.returncode == 0, (r.stdout + r.stderr).decode("utf-8",
                                                           "replace")


def sign(ks, signer, data):
    return ks.post("/v1/sign/cms", {"signer": signer, "data": b64(data)})


@pytest.mark.parametrize("who", ["mailsrv", "docstore", "self"])
def test_sign_cms_verifies(node, alice, alice_certs, work, who):
    ks = alice if who == "self" else KS(node, who)
    r = sign(ks, ALICE, MESSAGE)
    assert r.status == 200, r
    sig = write(os.path.join(work, "sig-%s.der" % who), unb64(r.json["cms"]))
    data = write(os.path.join(work, "data-%s" % who), MESSAGE)
    signer = os.path.join(work, "signer-%s.pem" % who)
    ok, out = cms_verify(node, sig, data, signer_out=signer)
    assert ok, out
    assert "Verification successful" in out
    # signed by alice's S/MIME signing certificate
    assert pubkey_of_cert(signer) == pubkey_of_cert(alice_certs["smime-sign"])
    # detached: the signature does not carry the content
    with open(sig, "rb") as f:
        assert MESSAGE[:40] not in f.read()
    # modified data fails
    bad = bytearray(MESSAGE)
    bad[30] ^= 1
    bad_path = write(os.path.join(work, "bad-%s" % who), bytes(bad))
    ok, out = cms_verify(node, sig, bad_path)
    assert not ok, out
    ok, out = cms_verify(node, sig, write(os.path.join(
        work, "short-%s" % who), MESSAGE[:-1]))
    assert not ok, out


def test_sign_cms_rules(node, admin, alice, work):
    """A user signs only as herself; the admin is not a signer for users;
    unknown or bad signers and bad data are errors."""
    check_error(sign(alice, "bob@" + FINANCE, b"x"), 403, "forbidden")
    check_error(sign(alice, "carol@" + HEALTH, b"x"), 403, "forbidden")
    check_error(sign(admin, ALICE, b"x"), 403, "forbidden")
    svc = KS(node, "mailsrv")
    check_error(sign(svc, "nobody@" + FINANCE, b"x"), 404, "not_found")
    check_error(sign(svc, "not-an-address", b"x"), 400, "invalid")
    check_error(svc.post("/v1/sign/cms", {"signer": ALICE,
                                          "data": "!!not base64!!"}), 400)
    check_error(svc.post("/v1/sign/cms", {"signer": ALICE}), 400)
    # signing empty data is fine or refused cleanly, never a 5xx
    r = sign(svc, ALICE, b"")
    assert r.status in (200, 400), r


def test_new_smime_pair_via_api(node, admin, work):
    """POST /v1/users/<a>/smime issues a new pair; signing then uses the
    newest certificate and it verifies."""
    r = admin.post("/v1/users", {"address": "erin@" + FINANCE,
                                 "password": "erin-pw-1"})
    assert r.status == 201, r
    r = admin.post("/v1/users/erin@%s/smime" % FINANCE, {})
    assert r.status == 201, r
    assert r.json["signing"]["kind"] == "smime-sign"
    assert r.json["encryption"]["kind"] == "smime-enc"
    spem = write(os.path.join(work, "erin-sign.pem"),
                 r.json["signing"]["pem"])
    s = sign(KS(node, "mailsrv"), "erin@" + FINANCE, MESSAGE)
    assert s.status == 200, s
    assert s.json.get("serial", r.json["signing"]["serial"]) == \
        r.json["signing"]["serial"]
    sig = write(os.path.join(work, "erin.der"), unb64(s.json["cms"]))
    data = write(os.path.join(work, "erin.data"), MESSAGE)
    signer = os.path.join(work, "erin-signer.pem")
    ok, out = cms_verify(node, sig, data, signer_out=signer)
    assert ok, out
    assert pubkey_of_cert(signer) == pubkey_of_cert(spem)
    # no such user
    check_error(admin.post("/v1/users/nobody@%s/smime" % FINANCE, {}), 404)
