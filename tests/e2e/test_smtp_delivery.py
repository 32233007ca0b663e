"""
SMTP delivery end to end: submission (STARTTLS + AUTH) and implicit-TLS
submission with smtplib, MX and submission with swaks, into the
encrypted store; the stored bytes, the headers mailsrv adds, and no
plaintext at rest.
"""
import re
import time
import uuid

import socket

import pytest

from smtp_util import (ALICE, BOB, CAROL, Store, finish, grep_tree,
                       make_message, password, queued_id, send_data,
                       start_mail_node, submission, swaks, swaks_replies,
                       without_return_path)


@pytest.fixture(scope="module")
def mnode(tmp_path_factory):
    # remote.invalid goes to a port that refuses: its mail stays queued
    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind(("127.0.0.1", 0))       # bound, never listening
    n = start_mail_node(tmp_path_factory.mktemp("smtpdeliv"), {
        "mailsrv": {"relay_routes": "remote.invalid=127.0.0.1:%d" %
                    closed.getsockname()[1]}})
    yield n
    finish(n)
    closed.close()


@pytest.fixture(scope="module")
def store(mnode):
    return Store(mnode)


def marker():
    return "MK" + uuid.uuid4().hex


RECEIVED_RE = re.compile(
    rb"^Received: from (?P<helo>[^ ]+) \((?P<ip>[0-9.]+)\)\r\n"
    rb"\tby localhost \(Amanat\) with (?P<with>[A-Z]+)(?P<tls> \([^)]*\))?"
    rb"\r\n\tfor <(?P<rcpt>[^>]+)>; (?P<date>[^\r\n]+)\r\n")
DATE_RE = rb"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000"


def split_added(stored, original, sender=ALICE):
    """stored = Return-Path + <headers added by mailsrv> + original;
    returns the added part after checking the Return-Path and Received
    headers, and the Received match."""
    assert stored.endswith(original), (stored[:600], original[:300])
    added = without_return_path(stored[:len(stored) - len(original)],
                                sender)
    m = RECEIVED_RE.match(added)
    assert m, added
    assert re.fullmatch(DATE_RE, m.group("date")), m.group("date")
    return added[m.end():], m


def test_submission_starttls_auth_plain_delivers(mnode, store):
    """alice -> bob over submission (STARTTLS, AUTH PLAIN via login());
    the message lands in bob's INBOX with the sent bytes, a Received
    header, and the Date and Message-ID that submission adds."""
    mk = marker()
    msg = make_message(mk)
    after = store.last_uid(BOB)
    s = submission(mnode, ALICE)
    try:
        assert s.has_extn("auth")
        assert "PLAIN" in s.esmtp_features["auth"].split()
        code, text = send_data(s, ALICE, [BOB], msg)
        assert code == 250, text
        assert text.startswith(b"2.0.0 "), text
        qid = queued_id(text)
        assert re.fullmatch(r"[0-9a-f]{20}", qid), qid
    finally:
        s.quit()
    (uid, stored), = store.wait_for(BOB, mk.encode(), after)
    assert uid > after
    added, m = split_added(stored, msg)
    assert m.group("helo") == b"client.example.org"
    assert m.group("ip") == b"127.0.0.1"
    assert m.group("with") == b"ESMTPSA", m.group(0)
    assert m.group("tls") and b"TLS" in m.group("tls"), m.group(0)
    assert m.group("rcpt") == BOB.encode()
    # submission added Date and Message-ID (the message had neither)
    mm = re.fullmatch(rb"Date: (" + DATE_RE + rb")\r\n"
                      rb"Message-ID: <[0-9a-f]{32}@localhost>\r\n", added)
    assert mm, added
    # the store's own view agrees (size, digest, Message-ID)
    info = [x for x in store.list(BOB) if x["uid"] == uid][0]
    assert info["size"] == len(stored)
    assert info["msgid"] == re.search(rb"Message-ID: (<[^>]+>)",
                                      added).group(1).decode()
    # delivered once
    assert len(store.find(BOB, mk.encode(), after)) == 1
    assert re.search(r"smtp (queued|delivered) id=%s " % qid,
                     mnode.log("mailsrv"))


def test_smtps_implicit_tls_delivers(mnode, store):
    """alice -> bob over implicit TLS (SMTP_SSL); the message has its own
    Date and Message-ID, which are kept (nothing added but Received)."""
    mk = marker()
    mid = "<%s@client.example.org>" % mk
    msg = make_message(mk, headers=[
        ("Date", "Mon, 30 Nov 2026 02:30:00 +0000"), ("Message-ID", mid)],
        extra_lines=200)
    after = store.last_uid(BOB)
    s = submission(mnode, ALICE, pname="smtps")
    try:
        code, text = send_data(s, ALICE, [BOB], msg)
        assert code == 250, text
    finally:
        s.quit()
    (uid, stored), = store.wait_for(BOB, mk.encode(), after)
    added, m = split_added(stored, msg)
    assert added == b"", added
    assert m.group("with") == b"ESMTPSA"
    info = [x for x in store.list(BOB) if x["uid"] == uid][0]
    assert info["msgid"] == mid


def test_submission_two_recipients_two_departments(mnode, store):
    """One transaction to bob (finance) and carol (health): each INBOX
    gets the message once; Received names no single recipient."""
    mk = marker()
    msg = make_message(mk)
    after_b, after_c = store.last_uid(BOB), store.last_uid(CAROL)
    s = submission(mnode, ALICE)
    try:
        code, text = send_data(s, ALICE, [BOB, CAROL], msg)
        assert code == 250, text
    finally:
        s.quit()
    (_, sb), = store.wait_for(BOB, mk.encode(), after_b)
    (_, sc), = store.wait_for(CAROL, mk.encode(), after_c)
    assert sb == sc
    added, m = split_added(sb, msg)
    assert m.group("rcpt") == b"multiple"


def test_smtplib_sendmail_dot_stuffing(mnode, store):
    """Lines starting with '.' survive (dot-stuffed by smtplib, unstuffed
    by mailsrv); a body ending without CRLF gets one."""
    mk = marker()
    body = ".leading dot %s\r\n..two dots\r\n.\r\nlast line" % mk
    msg = make_message(mk, body=body)
    after = store.last_uid(BOB)
    s = submission(mnode, ALICE)
    try:
        assert s.sendmail(ALICE, [BOB], msg) == {}
    finally:
        s.quit()
    (_, stored), = store.wait_for(BOB, mk.encode(), after)
    split_added(stored, msg + b"\r\n")


def test_no_plaintext_at_rest(mnode, store):
    """A marker in the subject and the body of a delivered message (store)
    and of a message still queued (a remote recipient whose route
    refuses connections) is nowhere under the datadir."""
    import os
    mk = marker()
    msg = make_message(mk, extra_lines=50)
    after = store.last_uid(BOB)
    s = submission(mnode, ALICE)
    try:
        code, text = send_data(s, ALICE, [BOB], msg)
        assert code == 250, text
        code, text = send_data(s, ALICE, ["someone@remote.invalid"], msg)
        assert code == 250, text
    finally:
        s.quit()
    store.wait_for(BOB, mk.encode(), after)
    qmsg = os.path.join(mnode.dir, "mailsrv", "queue", "msg")
    assert os.listdir(qmsg), "the remote message is not in the queue"
    hits = grep_tree(mnode.dir, [mk.encode(), ("e2e " + mk).encode()])
    assert hits == [], hits


# ---------------------------------------------------------------- swaks

def test_swaks_mx_local_recipient_delivered(mnode, store):
    mk = marker()
    after = store.last_uid(BOB)
    rc, out = swaks(mnode, "--from", "sender@example.org", "--to", BOB,
                    "--header", "Subject: swaks %s" % mk,
                    "--body", "swaks body %s" % mk)
    assert rc == 0, out
    replies = swaks_replies(out)
    assert any(re.match(r"250 2\.0\.0 Ok: (queued|delivered) as ", r)
               for r in replies), out
    (_, stored), = store.wait_for(BOB, mk.encode(), after)
    m = RECEIVED_RE.match(without_return_path(stored, "sender@example.org"))
    assert m and m.group("with") == b"ESMTP", stored[:400]
    assert b"swaks body " + mk.encode() in stored


def test_local_part_case_is_the_directorys(mnode, store):
    """Bob@ and BOB@ are bob (the directory's addresses are lower case):
    the message is in bob's own INBOX, not in a mailbox of its own; a
    login as Alice@ is alice@."""
    mk = marker()
    after = store.last_uid(BOB)
    rc, out = swaks(mnode, "--from", "sender@example.org", "--to",
                    "Bob@Finance.Amanat.Test", "--header",
                    "Subject: case %s" % mk)
    assert rc == 0, out
    store.wait_for(BOB, mk.encode(), after)
    mk2 = marker()
    after = store.last_uid(BOB)
    s = submission(mnode)
    try:
        code, msg = s.login(ALICE.capitalize(), password(mnode, ALICE))
        assert code == 235, msg
        code, text = send_data(s, ALICE, ["BOB@finance.amanat.test"],
                               make_message(mk2))
        assert code == 250, text
    finally:
        s.quit()
    store.wait_for(BOB, mk2.encode(), after)
    assert "smtp auth ok user=%s" % ALICE in mnode.log("mailsrv")
    # a report to the sender spelt Alice@ reaches alice's INBOX
    mk3 = marker()
    alice_after = store.last_uid(ALICE)
    s = submission(mnode, ALICE)
    try:
        assert s.mail(ALICE.capitalize())[0] == 250
        assert s.rcpt(BOB, ["NOTIFY=SUCCESS"])[0] == 250
        code, text = s.data(make_message(mk3))
        assert code == 250, text
    finally:
        s.quit()
    (_, report), = store.wait_for(ALICE, mk3.encode(), alice_after)
    assert b"multipart/report" in report, report[:600]


def test_swaks_mx_starttls_local_recipient_delivered(mnode, store):
    mk = marker()
    after = store.last_uid(BOB)
    rc, out = swaks(mnode, "--tls", "--tls-verify", "--tls-ca-path",
                    mnode.ca, "--from", "sender@example.org", "--to", BOB,
                    "--header", "Subject: swaks %s" % mk,
                    "--body", "swaks tls body %s" % mk)
    assert rc == 0, out
    (_, stored), = store.wait_for(BOB, mk.encode(), after)
    m = RECEIVED_RE.match(without_return_path(stored, "sender@example.org"))
    assert m and m.group("with") == b"ESMTPS", stored[:400]


@pytest.mark.parametrize("rcpt", ["someone@example.org",
                                  "bob@finance.amanat.test.evil.org",
                                  "bob@amanat.test"])
def test_swaks_mx_nonlocal_recipient_refused(mnode, rcpt):
    rc, out = swaks(mnode, "--from", "sender@example.org", "--to", rcpt)
    assert rc != 0, out
    replies = swaks_replies(out)
    rcpt_reply = [r for r in replies if r[:3] in ("550", "554")]
    assert rcpt_reply, out
    assert rcpt_reply[0].startswith(("554 5.7.1", "550 5.7.1")), out
    assert not any(r.startswith("354") or "queued" in r for r in replies), \
        out


def test_swaks_mx_unknown_local_user_550(mnode):
    rc, out = swaks(mnode, "--from", "sender@example.org", "--to",
                    "nosuchuser@finance.amanat.test")
    assert rc != 0, out
    assert any(r.startswith("550 5.1.1 ") for r in swaks_replies(out)), out
    assert "354" not in out, out


def test_swaks_submission_auth_not_offered_before_starttls(mnode):
    """Before STARTTLS submission offers no AUTH (swaks cannot even try),
    and MAIL without AUTH is 530."""
    rc, out = swaks(mnode, "--from", ALICE, "--to", BOB, "--auth", "PLAIN",
                    "--auth-user", ALICE, "--auth-password",
                    password(mnode, ALICE), pname="submission")
    assert rc != 0, out
    assert "did not advertise authentication" in out, out
    assert "AUTH" not in out.split("EHLO", 1)[1].split("\n ->", 1)[0], out
    rc, out = swaks(mnode, "--from", ALICE, "--to", BOB, "--auth-optional",
                    "PLAIN", "--auth-user", ALICE, "--auth-password",
                    password(mnode, ALICE), pname="submission")
    assert rc != 0, out
    assert any(r.startswith("530 5.7.0") for r in swaks_replies(out)), out
    assert "354" not in out, out


def test_raw_auth_before_starttls_530(mnode):
    from smtp_util import Raw
    import base64
    r = Raw(mnode, "submission")
    try:
        assert r.code()[0] == 220
        assert r.cmd("EHLO client.example.org")[0] == 250
        tok = base64.b64encode(b"\0" + ALICE.encode() + b"\0" +
                               password(mnode, ALICE).encode()).decode()
        code, line = r.cmd("AUTH PLAIN " + tok)
        assert code in (530, 538), line
        assert line.startswith((b"530 5.7.0", b"538 5.7.11")), line
        code, line = r.cmd("MAIL FROM:<%s>" % ALICE)
        assert code == 530, line
        assert r.cmd("NOOP")[0] == 250
    finally:
        r.close()


def test_swaks_submission_auth_delivers(mnode, store):
    mk = marker()
    after = store.last_uid(BOB)
    rc, out = swaks(mnode, "--tls", "--tls-verify", "--tls-ca-path",
                    mnode.ca, "--from", ALICE, "--to", BOB, "--auth",
                    "LOGIN", "--auth-user", ALICE, "--auth-password",
                    password(mnode, ALICE), "--header",
                    "Subject: swaks %s" % mk, pname="submission")
    assert rc == 0, out
    assert any(r.startswith("235 ") for r in swaks_replies(out)), out
    store.wait_for(BOB, mk.encode(), after)


def test_swaks_mail_from_not_owned_553(mnode):
    rc, out = swaks(mnode, "--tls", "--tls-verify", "--tls-ca-path",
                    mnode.ca, "--from", BOB, "--to", BOB, "--auth", "PLAIN",
                    "--auth-user", ALICE, "--auth-password",
                    password(mnode, ALICE), pname="submission")
    assert rc != 0, out
    replies = swaks_replies(out)
    assert any(r.startswith("235 ") for r in replies), out
    assert any(r.startswith("553 5.7.1") for r in replies), out
    assert "354" not in out, out


def test_swaks_smtps_auth_delivers(mnode, store):
    mk = marker()
    after = store.last_uid(CAROL)
    rc, out = swaks(mnode, "--tlsc", "--tls-verify", "--tls-ca-path",
                    mnode.ca, "--from", ALICE, "--to", CAROL, "--auth",
                    "PLAIN", "--auth-user", ALICE, "--auth-password",
                    password(mnode, ALICE), "--header",
                    "Subject: swaks %s" % mk, pname="smtps")
    assert rc == 0, out
    store.wait_for(CAROL, mk.encode(), after)


def test_submission_unknown_local_user_550(mnode):
    s = submission(mnode, ALICE)
    try:
        assert s.mail(ALICE)[0] == 250
        code, text = s.rcpt("nobody@health.amanat.test")
        assert code == 550 and text.startswith(b"5.1.1"), (code, text)
        assert s.rcpt(BOB)[0] == 250
        assert s.rset()[0] == 250
    finally:
        s.quit()


def test_everything_accepted_is_stored_once(mnode, store):
    """Every message this module got 250 for is in an INBOX exactly once
    and reads back (authenticated) from the store."""
    time.sleep(0.5)
    for addr in (BOB, CAROL):
        ms = store.list(addr)
        assert ms, addr
        uids = [m["uid"] for m in ms]
        assert uids == sorted(set(uids))
        ids = [m["msgid"] for m in ms if m["msgid"] != "-"]
        assert len(ids) == len(set(ids)), ids
