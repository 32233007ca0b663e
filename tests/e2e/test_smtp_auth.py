"""
SMTP AUTH (PLAIN and LOGIN) on submission and smtps, verified by
keyservice: success, wrong password (535 after a delay), the throttle
(454 4.7.0), malformed exchanges, and what AUTH allows afterwards.

keyservice throttles per user and per source address, and every test
client is 127.0.0.1: the throttle test has its own node.
"""
import base64
import smtplib
import threading
import time

import pytest

from smtp_util import (ALICE, BOB, DAVE, Store, finish, password,
                       send_data, start_mail_node, submission, make_message)


@pytest.fixture(scope="module")
def mnode(tmp_path_factory):
    # every client is 127.0.0.1: keep this module's failures (a dozen)
    # under the per-source throttle; test_throttle_454 has its own node
    n = start_mail_node(tmp_path_factory.mktemp("smtpauth"), {
        "keyservice": {"login_free_failures": "100"}})
    yield n
    finish(n)


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def plain(user, pw, authz=""):
    return b64("%s\0%s\0%s" % (authz, user, pw))


def tls_session(node, pname="submission"):
    """smtplib after STARTTLS (or on smtps) and EHLO, not authenticated."""
    return submission(node, None, pname=pname)


@pytest.mark.parametrize("pname", ["submission", "smtps"])
def test_auth_plain_login_method(mnode, pname):
    s = tls_session(mnode, pname)
    try:
        code, msg = s.login(ALICE, password(mnode, ALICE))
        assert code == 235 and msg.startswith(b"2.7.0"), msg
        # no AUTH offered any more, and a second AUTH is refused
        s.ehlo("client.example.org")
        assert not s.has_extn("auth")
        code, msg = s.docmd("AUTH", "PLAIN " + plain(ALICE, "x"))
        assert code == 503, msg
        assert s.mail(ALICE)[0] == 250
        assert s.rset()[0] == 250
    finally:
        s.quit()


@pytest.mark.parametrize("initial", [True, False])
def test_auth_login_works(mnode, initial):
    s = tls_session(mnode)
    try:
        s.user, s.password = ALICE, password(mnode, ALICE)
        code, msg = s.auth("LOGIN", s.auth_login,
                           initial_response_ok=initial)
        assert code == 235, msg
        assert s.mail(ALICE)[0] == 250
    finally:
        s.quit()


def test_auth_login_raw_exchange(mnode):
    """LOGIN step by step: 334 Username:, 334 Password:, 235."""
    s = tls_session(mnode)
    try:
        code, msg = s.docmd("AUTH", "LOGIN")
        assert code == 334 and base64.b64decode(msg) == b"Username:", msg
        code, msg = s.docmd(b64(DAVE))
        assert code == 334 and base64.b64decode(msg) == b"Password:", msg
        code, msg = s.docmd(b64(password(mnode, DAVE)))
        assert code == 235, msg
        assert s.mail(DAVE)[0] == 250
    finally:
        s.quit()


def test_auth_plain_without_initial_response(mnode):
    s = tls_session(mnode)
    try:
        code, msg = s.docmd("AUTH", "PLAIN")
        assert code == 334, msg
        code, msg = s.docmd(plain(ALICE, password(mnode, ALICE)))
        assert code == 235, msg
    finally:
        s.quit()


def test_auth_user_case_insensitive_domain_sender_must_match(mnode):
    """The envelope sender must be the authenticated address."""
    s = tls_session(mnode)
    try:
        code, msg = s.login(ALICE, password(mnode, ALICE))
        assert code == 235, msg
        code, msg = s.mail(BOB)
        assert code == 553 and msg.startswith(b"5.7.1"), msg
        code, msg = s.mail("")
        assert code == 553, msg
        code, msg = s.mail("alice@FINANCE.amanat.test")
        assert code == 250, msg
    finally:
        s.quit()


def test_wrong_password_535_after_delay(mnode):
    s = tls_session(mnode)
    try:
        t0 = time.monotonic()
        code, msg = s.docmd("AUTH", "PLAIN " + plain(BOB, "wrong-password"))
        took = time.monotonic() - t0
        assert code == 535 and msg.startswith(b"5.7.8"), msg
        assert took >= 0.9, "535 came after only %.3fs" % took
        # not authenticated: MAIL needs AUTH
        assert s.docmd("MAIL FROM:<%s>" % BOB)[0] == 530
        # the right password still works on the same session
        code, msg = s.docmd("AUTH", "PLAIN " + plain(BOB, password(mnode,
                                                                   BOB)))
        assert code == 235, msg
    finally:
        s.quit()


@pytest.mark.parametrize("user", ["nobody@finance.amanat.test",
                                  "alice@example.org", "not-an-address"])
def test_unknown_user_535(mnode, user):
    s = tls_session(mnode)
    try:
        code, msg = s.docmd("AUTH", "PLAIN " + plain(user, "whatever123"))
        assert code == 535, msg
    finally:
        s.quit()


def test_smtplib_login_wrong_password_raises(mnode):
    s = tls_session(mnode, "smtps")
    try:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(ALICE, "not-the-password")
        assert e.value.smtp_code == 535
    finally:
        s.close()


@pytest.mark.parametrize("arg,code", [
    ("CRAM-MD5", 504), ("XOAUTH2 abc", 504), ("", 504),
    ("PLAIN !!!notbase64", 501),
    ("PLAIN " + b64("no-nul-at-all"), 501),
    ("PLAIN " + b64("\0only-user"), 501),
])
def test_auth_malformed(mnode, arg, code):
    s = tls_session(mnode)
    try:
        got, msg = s.docmd(("AUTH " + arg).rstrip())
        assert got == code, (got, msg)
        assert s.noop()[0] == 250
    finally:
        s.quit()


def test_auth_authzid_other_user_refused(mnode):
    s = tls_session(mnode)
    try:
        code, msg = s.docmd("AUTH", "PLAIN " + plain(
            ALICE, password(mnode, ALICE), authz=BOB))
        assert code == 535, msg
        code, msg = s.docmd("AUTH", "PLAIN " + plain(
            ALICE, password(mnode, ALICE), authz=ALICE))
        assert code == 235, msg
    finally:
        s.quit()


def test_auth_cancelled(mnode):
    s = tls_session(mnode)
    try:
        assert s.docmd("AUTH", "LOGIN")[0] == 334
        code, msg = s.docmd("*")
        assert code == 501, msg
        assert s.noop()[0] == 250
        assert s.login(ALICE, password(mnode, ALICE))[0] == 235
    finally:
        s.quit()


def test_auth_before_ehlo_or_after_helo_503(mnode):
    s = smtplib.SMTP_SSL("127.0.0.1", mnode.port("smtps"), timeout=30,
                         context=mnode.ssl_context())
    try:
        code, msg = s.docmd("AUTH", "PLAIN " + plain(ALICE, "x"))
        assert code == 503, msg      # EHLO first
        s.ehlo("client.example.org")
        assert s.docmd("HELO", "client.example.org")[0] == 250
        code, msg = s.docmd("AUTH", "PLAIN " + plain(ALICE, "x"))
        assert code == 503, msg      # HELO is not ESMTP
    finally:
        s.quit()


def test_auth_then_deliver(mnode):
    mk = "AUTHDELIV" + str(time.time_ns())
    store = Store(mnode)
    after = store.last_uid(BOB)
    s = submission(mnode, DAVE)
    try:
        code, text = send_data(s, DAVE, [BOB], make_message(mk))
        assert code == 250, text
    finally:
        s.quit()
    (_, data), = store.wait_for(BOB, mk.encode(), after)
    assert b" with ESMTPSA " in data


def test_throttle_454(tmp_path):
    """After login_free_failures (5) wrong passwords, the next attempt
    (even with the right password) gets 454 4.7.0 while the delay
    (login_delay, 60s here) runs; mailsrv stays healthy."""
    node = start_mail_node(tmp_path, {"keyservice": {
        "login_free_failures": "5", "login_delay": "60s"}})
    try:
        # five failures at once (each reply is delayed ~1-2s)
        codes = []

        def fail_once():
            s = tls_session(node)
            try:
                codes.append(s.docmd("AUTH", "PLAIN " + plain(
                    ALICE, "wrong-%d" % threading.get_ident()))[0])
            finally:
                s.close()
        ts = [threading.Thread(target=fail_once) for _ in range(5)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert codes == [535] * 5, codes
        s = tls_session(node)
        try:
            code, msg = s.docmd("AUTH", "PLAIN " + plain(
                ALICE, password(node, ALICE)))
            assert code == 454 and msg.startswith(b"4.7.0"), (code, msg)
            # the source is throttled too: another user from 127.0.0.1
            code, msg = s.docmd("AUTH", "PLAIN " + plain(
                BOB, password(node, BOB)))
            assert code == 454, (code, msg)
            assert s.docmd("MAIL FROM:<%s>" % ALICE)[0] == 530
            assert s.noop()[0] == 250
        finally:
            s.quit()
        assert any("smtp auth" in l and ("throttled" in l or "429" in l)
                   for l in node.log("mailsrv").splitlines())
    finally:
        finish(node)
