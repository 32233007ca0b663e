"""
IMAP sessions: capabilities before and after TLS and login, LOGIN and
AUTHENTICATE PLAIN (SASL-IR and continuation), refused plaintext login,
failed logins (NO [AUTHENTICATIONFAILED]), department isolation, two
sessions on one mailbox (STORE, EXPUNGE, MOVE, APPEND seen by the other
at its next command, EXPUNGE never during FETCH), IDLE seeing an SMTP
delivery within 1 s, and the audit entries of an IMAP session.

Decision: AUTH=PLAIN and SASL-IR are required in the capabilities after
TLS and before login (RFC 9051 6.2.2/7.2.2; Dovecot announces no AUTH=
after login); every other capability of the issue after login.
"""
import json
import time
import uuid

import pytest

from imap_util import (ALICE, BOB, CAROL, DEFAULT_MAILBOXES, POSTAUTH_CAPS,
                       Client, Lit, appendlimit, connect, flagset, listing,
                       pw, small_message, start_imap_node, status_items)
from smtp_util import SOFIA, finish, send_data, submission


@pytest.fixture(scope="module")
def snode(tmp_path_factory):
    n = start_imap_node(tmp_path_factory.mktemp("imapsessions"))
    yield n
    finish(n)


def mk():
    return uuid.uuid4().hex[:12]


# ================================================================ caps

def test_plain_port_before_starttls_has_logindisabled_no_auth(snode):
    c = Client(snode, "plain")
    try:
        for caps in (c.caps, c.capability()):
            assert "STARTTLS" in caps and "LOGINDISABLED" in caps, caps
            assert "IMAP4REV1" in caps, caps
            assert not [x for x in caps if x.startswith("AUTH=")], caps
    finally:
        c.logout()


@pytest.mark.parametrize("mode", ["imaps", "starttls"])
def test_tls_before_login_offers_login_and_auth_plain(snode, mode):
    c = Client(snode, mode)
    try:
        caps = c.capability()
        assert "LOGINDISABLED" not in caps, caps
        assert "STARTTLS" not in caps, caps
        for want in ("IMAP4REV1", "AUTH=PLAIN", "SASL-IR"):
            assert want in caps, (want, caps)
    finally:
        c.logout()


@pytest.mark.parametrize("mode", ["imaps", "starttls"])
def test_capabilities_after_login(snode, mode):
    c = Client(snode, mode)
    try:
        r = c.login(ALICE)
        assert r.status == "OK", r
        caps = c.capability()
        missing = [x for x in POSTAUTH_CAPS if x not in caps]
        assert not missing, (missing, sorted(caps))
        assert "LITERAL+" in caps or "LITERAL-" in caps, caps
        n = appendlimit(caps)
        assert n is not None and n > 0, caps
        assert "LOGINDISABLED" not in caps and "STARTTLS" not in caps
        # a LOGIN answered with a CAPABILITY code gives the same list
        if r.code_name == "CAPABILITY":
            assert {str(x).upper() for x in r.code[1:]} == caps
    finally:
        c.logout()


# ================================================================ login

def test_plaintext_login_refused_then_starttls_login_works(snode):
    c = Client(snode, "plain")
    try:
        r = c.login(ALICE)          # the right password, in the clear
        assert r.status in ("NO", "BAD"), r
        assert r.text, r
        r = c.authenticate_plain(ALICE)
        assert r.status in ("NO", "BAD"), r
        c.ok("NOOP")
        c.starttls()
        r = c.login(ALICE)
        assert r.status == "OK", r
        c.select("INBOX")
    finally:
        c.logout()


@pytest.mark.parametrize("mode", ["imaps", "starttls"])
def test_login_then_select(snode, mode):
    c = connect(snode, ALICE, mode=mode)
    try:
        r = c.select("INBOX")
        assert r.one("EXISTS").num >= 0
    finally:
        c.logout()


def test_authenticate_plain_sasl_ir_and_continuation(snode):
    c = Client(snode)
    try:
        r = c.authenticate_plain(ALICE, ir=True)
        assert r.status == "OK", r
        c.select("INBOX")
    finally:
        c.logout()
    c = Client(snode)
    try:
        r = c.authenticate_plain(BOB, ir=False)
        assert r.status == "OK", r
        c.select("INBOX")
    finally:
        c.logout()
    # the client cancels the exchange with "*": BAD (RFC 9051 6.2.2)
    c = Client(snode)
    try:
        t = c.tag()
        c.send(t + " AUTHENTICATE PLAIN\r\n")
        assert c.read().tag == b"+"
        c.send("*\r\n")
        r = c.until_tagged(t)
        assert r.status == "BAD", r
        r = c.login(ALICE)
        assert r.status == "OK", r
    finally:
        c.logout()


def test_authenticate_plain_as_another_user_refused(snode):
    """alice's credentials with authorization identity bob: NO."""
    c = Client(snode)
    try:
        r = c.authenticate_plain(ALICE, authz=BOB)
        assert r.status == "NO", r
        c.ok("NOOP")
    finally:
        c.logout()


def test_failed_logins_answer_authenticationfailed(snode):
    """Each failure on its own connection (a server may end a session
    after a few failures, as Dovecot does after 3)."""
    for user, secret in ((ALICE, "not-" + pw(snode, ALICE)),
                         (BOB, pw(snode, ALICE)),
                         ("nobody@finance.amanat.test", "whatever-pw")):
        c = Client(snode)
        try:
            r = c.login(user, secret)
            assert r.status == "NO", (user, r)
            assert r.code_name == "AUTHENTICATIONFAILED", (user, r)
            assert r.text.strip(), r
            c.ok("NOOP")
        finally:
            c.close()
    c = Client(snode)
    try:
        r = c.authenticate_plain(BOB, secret=pw(snode, CAROL))
        assert (r.status, r.code_name) == ("NO", "AUTHENTICATIONFAILED"), r
        # the session is still not authenticated, and still usable
        r = c.cmd("SELECT INBOX")
        assert r.status in ("NO", "BAD"), r
        r = c.login(BOB)
        assert r.status == "OK", r
        c.select("INBOX")
    finally:
        c.logout()


# ================================================================ isolation

def test_department_isolation(snode):
    tag = mk()
    secret_box = "BobSecret-" + tag
    b = connect(snode, BOB)
    cc = connect(snode, CAROL)
    a = connect(snode, ALICE)
    try:
        b.ok("CREATE " + secret_box)
        b.ok("APPEND %s " % secret_box, Lit(small_message(1, "bob" + tag)))
        b.ok("APPEND INBOX ", Lit(small_message(2, "bob" + tag)))
        cc.ok("CREATE CarolSecret-" + tag)
        # alice's namespace: personal only, no other users, no shared
        r = a.ok("NAMESPACE")
        ns = r.one("NAMESPACE").data
        assert ns[1] is None and ns[2] is None, ns
        assert [[bytes(x) if isinstance(x, bytes) else x for x in n]
                for n in ns[0]] == [[b"", b"/"]], ns
        names = listing(a.ok('LIST "" "*"'))
        assert not [n for n in names if tag in n], names
        for n in DEFAULT_MAILBOXES:
            assert n in names, names
        for name in (secret_box, "CarolSecret-" + tag, "bob/INBOX",
                     "bob/" + secret_box, BOB + "/INBOX", "user/bob",
                     "user/bob/" + secret_box, "~bob/INBOX", "#shared",
                     "Other Users/bob/INBOX", "../bob/INBOX",
                     "/" + BOB + "/INBOX"):
            # a connection per name: the server may answer BAD to odd
            # names, and too many BADs end a session
            x = connect(snode, ALICE)
            try:
                for cmd in ("SELECT", "EXAMINE", "STATUS"):
                    r = x.cmd(cmd, " ", '"%s"' % name,
                              " (MESSAGES)" if cmd == "STATUS" else "")
                    assert r.status in ("NO", "BAD"), (cmd, name, r)
                    assert not r.all("EXISTS") and not r.all("STATUS"), r
                r = x.cmd('APPEND "%s" ' % name, Lit(small_message(9, tag)))
                assert r.status in ("NO", "BAD"), (name, r)
            finally:
                x.logout()
        # nothing of bob's in alice's own INBOX, bob's box untouched
        a.select("INBOX")
        r = a.cmd("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert ("bob" + tag).encode() not in r.tagged.raw + b"".join(
            x.raw for x in r.untagged)
        st = status_items(b.ok("STATUS %s (MESSAGES)" % secret_box))
        assert st[secret_box]["MESSAGES"] == 1, st
        # and the other way: bob does not see alice's mailbox
        a.ok("CREATE AliceSecret-" + tag)
        names = listing(b.ok('LIST "" "*"'))
        assert not [n for n in names if "AliceSecret" in n], names
        r = b.cmd("SELECT AliceSecret-" + tag)
        assert r.status == "NO", r
    finally:
        for c in (a, b, cc):
            c.logout()


# ================================================================ sessions

def expunge_view(view, r):
    """Apply the "* n EXPUNGE" responses of r, in order, to a list of
    UIDs (sequence number n is index n-1)."""
    for x in r.untagged:
        if x.kind == "EXPUNGE":
            assert 1 <= x.num <= len(view), (x.raw, view)
            del view[x.num - 1]
    return view


def uids_of(c):
    r = c.fetch("1:*", "(UID)")
    return [a["UID"] for _, a in sorted(r.fetches())]


def test_two_sessions_store_expunge_move_append(snode):
    box = "Shared-" + mk()
    a = connect(snode, ALICE)
    b = connect(snode, ALICE)
    try:
        a.ok("CREATE " + box)
        for i in range(8):
            a.ok("APPEND %s " % box, Lit(small_message(i, box)))
        a.select(box)
        rb = b.select(box)
        assert rb.one("EXISTS").num == 8, rb
        uids = uids_of(a)
        view_b = list(uids)
        assert uids_of(b) == view_b

        # STORE in A: B sees FETCH FLAGS for message 2 at its NOOP
        a.ok("STORE 2 +FLAGS (\\Flagged)")
        r = b.ok("NOOP")
        got = {seq: flagset(x.get("FLAGS")) for seq, x in r.fetches()}
        assert "\\FLAGGED" in got.get(2, set()), r

        # EXPUNGE of messages 3 and 5 in A; B's FETCH gets no EXPUNGE
        # (RFC 3501 7.4.1), its NOOP gets both, numbered as it goes
        a.ok("STORE 3,5 +FLAGS.SILENT (\\Deleted)")
        view_a = expunge_view(list(uids), a.ok("EXPUNGE"))
        gone = {uids[2], uids[4]}
        assert view_a == [u for u in uids if u not in gone], view_a
        r = b.ok("FETCH 1:* (FLAGS)")
        assert not r.all("EXPUNGE"), r
        r = b.ok("NOOP")
        expunge_view(view_b, r)
        assert view_b == view_a, (view_b, view_a, r)
        assert uids_of(b) == view_b

        # MOVE of message 1 in A: B sees "* 1 EXPUNGE"
        before = status_items(a.ok("STATUS Archive (MESSAGES)"))["Archive"]
        r = a.ok("MOVE 1 Archive")
        moved = view_a.pop(0)
        assert [x.num for x in r.all("EXPUNGE")] == [1], r
        r = b.ok("NOOP")
        assert [x.num for x in r.all("EXPUNGE")] == [1], r
        view_b.pop(0)
        assert uids_of(b) == view_b == view_a
        after = status_items(a.ok("STATUS Archive (MESSAGES)"))["Archive"]
        assert after["MESSAGES"] == before["MESSAGES"] + 1
        assert moved not in uids_of(b)

        # APPEND in A: B sees the new EXISTS
        a.ok("APPEND %s " % box, Lit(small_message(99, box)))
        r = b.ok("NOOP")
        ex = r.all("EXISTS")
        assert ex and ex[-1].num == len(view_b) + 1, r
        new = uids_of(b)
        assert new[:-1] == view_b and new[-1] > max(uids), new

        # flags changed by UID in A show up in B at its next command
        a.ok("UID STORE %d +FLAGS (\\Seen \\Answered)" % new[-1])
        r = b.ok("NOOP")
        got = {seq: flagset(x.get("FLAGS")) for seq, x in r.fetches()}
        assert {"\\SEEN", "\\ANSWERED"} <= got.get(len(new), set()), r
    finally:
        a.logout()
        b.logout()


def test_idle_sees_smtp_delivery_within_1s(snode):
    c = connect(snode, ALICE)
    try:
        r = c.select("INBOX")
        exists = r.one("EXISTS").num
        tag, early = c.idle_start()
        s = submission(snode, BOB)
        try:
            code, text = send_data(s, BOB, [ALICE],
                                   small_message(7, "idle-" + mk()))
            accepted = time.monotonic()
            assert code == 250, (code, text)
        finally:
            s.quit()
        seen = list(early)
        arrived = None
        while time.monotonic() < accepted + 10:
            x = c.poll(max(0.05, accepted + 10 - time.monotonic()))
            if x is None:
                break
            seen.append(x)
            if x.kind == "EXISTS" and x.num > exists:
                arrived = time.monotonic()
                break
        assert arrived is not None, "no EXISTS during IDLE: %r" % seen
        elapsed = arrived - accepted
        print("IDLE: EXISTS %.3f s after the SMTP 250" % elapsed)
        assert elapsed <= 1.0, "EXISTS %.3f s after delivery" % elapsed
        r = c.idle_done(tag)
        assert r.status == "OK", r
    finally:
        c.logout()


def idle_pair(snode, prefix):
    """Two sessions of alice on a new mailbox of three messages, both
    selected, the second in IDLE: (a, b, IDLE tag)."""
    box = prefix + mk()
    a = connect(snode, ALICE)
    b = connect(snode, ALICE)
    a.ok("CREATE " + box)
    for i in range(3):
        a.ok("APPEND %s " % box, Lit(small_message(i, box)))
    a.select(box)
    b.select(box)
    tag, _ = b.idle_start()
    return a, b, tag


def test_idle_sees_flags_and_expunge_of_another_session(snode):
    a, b, tag = idle_pair(snode, "Idle-")
    try:
        a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        a.ok("EXPUNGE")
        seen = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            x = b.poll(0.5)
            if x is not None:
                seen.append(x)
                if x.kind == "EXPUNGE":
                    break
        assert [x.num for x in seen if x.kind == "EXPUNGE"] == [2], seen
        r = b.idle_done(tag)
        assert r.status == "OK", r
    finally:
        a.logout()
        b.logout()


def test_idle_hears_other_sessions_at_once(snode):
    """IDLE sessions are told of a change when it is made, not at the
    next poll (every 2 s, the safety net): three flag changes in one
    session each reach the other, in IDLE, within 0.5 s."""
    a, b, tag = idle_pair(snode, "Hear-")
    try:
        for seq in (1, 2, 3):
            a.ok("STORE %d +FLAGS.SILENT (\\Flagged)" % seq)
            done = time.monotonic()
            got = None
            while time.monotonic() < done + 5:
                x = b.poll(0.1)
                if x is not None and x.kind == "FETCH" and x.num == seq:
                    got = time.monotonic() - done
                    break
            assert got is not None, "no FETCH %d in IDLE" % seq
            assert got <= 0.5, "FETCH %d %.3f s after the STORE" % (seq,
                                                                     got)
        assert b.idle_done(tag).status == "OK"
    finally:
        a.logout()
        b.logout()


def test_idle_of_many_users_each_sees_only_its_own_mail(snode):
    """Three users idle at once: a delivery to one wakes that one (EXISTS
    within 1 s) and sends nothing to the others; the next delivery, to
    another of them, reaches it too."""
    users = [ALICE, BOB, CAROL]
    conns, tags, exists = {}, {}, {}
    try:
        for u in users:
            c = connect(snode, u)
            exists[u] = c.select("INBOX").one("EXISTS").num
            tags[u], _ = c.idle_start()
            conns[u] = c
        for target in (BOB, ALICE):
            s = submission(snode, CAROL)
            try:
                code, text = send_data(s, CAROL, [target],
                                       small_message(9, "many-" + mk()))
                assert code == 250, (code, text)
            finally:
                s.quit()
            accepted = time.monotonic()
            got = None
            while time.monotonic() < accepted + 5:
                x = conns[target].poll(0.2)
                if x is not None and x.kind == "EXISTS":
                    got = time.monotonic()
                    exists[target] = x.num
                    break
            assert got is not None and got - accepted <= 1.0, \
                (target, got and got - accepted)
            for other in users:
                if other != target:
                    x = conns[other].poll(0.3)
                    assert x is None, (other, x)
        for u in users:
            assert conns[u].idle_done(tags[u]).status == "OK"
    finally:
        for c in conns.values():
            c.logout()


# ================================================================ audit

def test_audit_shows_imap_login_open_read_and_denied_login(snode):
    from test_audit_node import audit_json, client_cert
    officer = client_cert(snode, SOFIA)
    start = int(time.time() * 1000) - 1000
    c = connect(snode, ALICE)
    try:
        c.ok("APPEND INBOX ", Lit(small_message(1, "audit")))
        c.select("INBOX")
        r = c.fetch("1", "(BODY[])")
        assert r.fetches()[0][1]["BODY[]"]
    finally:
        c.logout()
    bad = Client(snode)
    try:
        wrong = "wrong-" + mk()
        r = bad.login(ALICE, wrong)
        assert r.status == "NO", r
    finally:
        bad.close()

    def entries():
        out, rows = audit_json(snode, "query", "--actor", ALICE,
                               "--service", "mailsrv", "--limit", "1000",
                               cert=officer)
        assert out.returncode == 0, (out.stdout, out.stderr)
        return [x["entry"] for x in rows or []
                if x["entry"].get("time", 0) >= start]

    def verdict(es):
        acts = [(e.get("action", ""), e.get("outcome"), e.get("src"))
                for e in es]
        imap_ok = [a for a in acts if "imap" in a[0].lower() and
                   a[1] == "ok" and ("auth" in a[0] or "login" in a[0])]
        opened = [a for a in acts if any(w in a[0].lower() for w in (
            "select", "open", "mailbox", "examine"))]
        read = [a for a in acts if any(w in a[0].lower() for w in (
            "read", "fetch"))]
        denied = [a for a in acts if "imap" in a[0].lower() and
                  a[1] == "denied" and a[2] == "127.0.0.1"]
        return imap_ok and opened and read and denied
    deadline = time.monotonic() + 20
    es = entries()
    while not verdict(es) and time.monotonic() < deadline:
        time.sleep(0.5)
        es = entries()
    assert verdict(es), "audit entries of alice since the test began:\n" + \
        json.dumps(es, indent=1)
    dump = json.dumps(es)
    assert pw(snode, ALICE) not in dump and wrong not in dump
