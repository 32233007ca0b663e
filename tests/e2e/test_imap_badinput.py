"""
IMAP bad input: literals over the pre-auth limit or over APPENDLIMIT are
refused before any payload byte is read (a tagged NO/BAD [TOOBIG] and
no "+"), unknown commands, commands in the wrong state, unbalanced and
10,000-deep parentheses, invalid sequence sets, 8-bit bytes in atoms and
tags, NUL: each gets BAD or NO with a text; the same connection then
works (where the protocol allows) and a second connection works.

No connection here gets more than 9 BAD answers: the server may end a
session after 10 (IMAP_MAX_ERRORS).
"""
import uuid

import pytest

from imap_util import (ALICE, Client, Lit, appendlimit, connect,
                       small_message, start_imap_node, status_items)
from smtp_util import finish

PREAUTH_LITERAL_MAX = 4096          # mailsrv/imap/imap_parser.h
PREAUTH_LINE_MAX = 8192             # mailsrv/limits.h


@pytest.fixture(scope="module")
def bnode(tmp_path_factory):
    n = start_imap_node(tmp_path_factory.mktemp("imapbad"))
    c = connect(n, ALICE)
    try:
        c.ok("CREATE Bad")
        for i in range(3):
            c.ok("APPEND Bad ", Lit(small_message(i, "bad")))
    finally:
        c.logout()
    yield n
    finish(n)


def refused(r, what=""):
    assert r.status in ("BAD", "NO"), (what, r)
    assert r.text.strip(), ("no text", what, r)
    return r


def still_serving(node):
    """A second connection greets, logs in and answers NOOP."""
    c = connect(node, ALICE)
    try:
        c.ok("NOOP")
    finally:
        c.logout()


def raw_cmd(c, data, tag):
    """Send raw bytes; the responses up to the tagged one (tag bytes),
    or up to a BAD untagged answer when the tag itself is bad."""
    c.send(data)
    untagged = []
    while True:
        r = c.read()
        if r.tag == tag:
            return r, untagged
        if r.tag == b"*" and r.kind == "BAD":
            return r, untagged
        assert r.tag != b"+", "continuation for %r: %r" % (data[:60], r)
        untagged.append(r)


# ================================================================ literals

def test_preauth_literal_over_limit_refused_before_read(bnode):
    c = Client(bnode)
    try:
        c.send(b"t1 LOGIN {%d}\r\n" % (PREAUTH_LITERAL_MAX + 1))
        r = c.read()
        assert r.tag == b"t1", "want the tagged refusal, not %r" % r.raw
        assert r.kind in ("NO", "BAD") and r.code_name == "TOOBIG", r
        assert r.text.strip()
        c.ok("NOOP")
        # literals within the limit are fine before login
        r = c.cmd("LOGIN ", Lit(ALICE.encode()), " ",
                  Lit(bnode.users[ALICE][0].encode()))
        assert r.status == "OK", r
        c.ok("NOOP")
    finally:
        c.logout()
    still_serving(bnode)


def test_preauth_literal_on_plain_port_no_continuation(bnode):
    c = Client(bnode, "plain")
    try:
        c.send(b"t1 LOGIN {%d}\r\n" % (PREAUTH_LITERAL_MAX + 1))
        r = c.read()
        assert r.tag == b"t1" and r.kind in ("NO", "BAD"), r.raw
        c.ok("NOOP")
    finally:
        c.logout()


def test_preauth_nonsync_literal_over_limit_discarded(bnode):
    c = Client(bnode)
    try:
        n = PREAUTH_LITERAL_MAX + 904
        c.send(b"t1 LOGIN {%d+}\r\n" % n + b"x" * n + b" secret\r\n")
        r = c.read()
        assert r.tag == b"t1", r.raw
        assert r.kind in ("NO", "BAD") and r.code_name == "TOOBIG", r
        c.ok("NOOP")
        r = c.login(ALICE)
        assert r.status == "OK", r
    finally:
        c.logout()
    still_serving(bnode)


def test_preauth_line_too_long(bnode):
    c = Client(bnode)
    try:
        c.send(b"t1 LOGIN " + b"a" * (PREAUTH_LINE_MAX + 100) + b" b\r\n")
        r = c.read()
        assert r.kind == "BAD" and r.tag in (b"t1", b"*"), r
        assert r.text.strip()
        c.ok("NOOP")
    finally:
        c.logout()


def test_append_over_appendlimit_refused_before_read(bnode):
    c = connect(bnode, ALICE)
    try:
        limit = appendlimit(c.caps)
        assert limit, c.caps
        before = status_items(c.ok("STATUS Bad (MESSAGES)"))["Bad"]
        for head in (b"t1 APPEND Bad {%d}\r\n",
                     b"t2 APPEND Bad (\\Seen) {%d}\r\n"):
            tag = head.split(b" ", 1)[0]
            c.send(head % (limit + 1))
            r = c.read()
            assert r.tag == tag, "want a tagged refusal, not %r" % r.raw
            assert r.kind in ("NO", "BAD") and r.code_name == "TOOBIG", r
            assert r.text.strip()
            c.ok("NOOP")
        after = status_items(c.ok("STATUS Bad (MESSAGES)"))["Bad"]
        assert after == before
        # a message within the limit still goes in
        c.ok("APPEND Bad ", Lit(small_message(9, "ok")))
    finally:
        c.logout()
    still_serving(bnode)


# ================================================================ commands

def test_unknown_and_wrong_state_commands_preauth(bnode):
    c = Client(bnode)
    try:
        for cmd in ("FROBNICATE", "SELECT INBOX", "FETCH 1 (FLAGS)",
                    "CREATE Foo", "IDLE", "STATUS INBOX (MESSAGES)"):
            refused(c.cmd(cmd), cmd)
        c.ok("NOOP")
        r = c.login(ALICE)
        assert r.status == "OK", r
    finally:
        c.logout()
    still_serving(bnode)


def test_wrong_state_commands_authenticated(bnode):
    c = connect(bnode, ALICE)
    try:
        for cmd in ("FETCH 1 (FLAGS)", "STORE 1 +FLAGS (\\Seen)",
                    "EXPUNGE", "CLOSE", "UID FETCH 1 (FLAGS)",
                    "LOGIN %s x" % ALICE, "AUTHENTICATE PLAIN AGFsaWNl",
                    "FROBNICATE"):
            refused(c.cmd(cmd), cmd)
        c.ok("NOOP")
        c.select("Bad")
    finally:
        c.logout()
    still_serving(bnode)


def test_unbalanced_and_deep_parentheses(bnode):
    c = connect(bnode, ALICE)
    try:
        c.select("Bad")
        for cmd in ("FETCH 1 (FLAGS", "FETCH 1 FLAGS)", "FETCH 1 (FLAGS))",
                    "FETCH 1 ((FLAGS)"):
            refused(c.cmd(cmd), cmd)
            c.ok("NOOP")
        deep = "FETCH 1 " + "(" * 10000 + "FLAGS" + ")" * 10000
        refused(c.cmd(deep), "10000 deep")
        c.ok("NOOP")
        refused(c.cmd("FETCH 1 " + "(" * 10000), "10000 open")
        c.ok("NOOP")
        r = c.fetch("1", "(FLAGS)")
        assert r.fetches(), r
    finally:
        c.logout()
    # before login too (the tighter limits)
    c = Client(bnode)
    try:
        r, _ = raw_cmd(c, b"t1 LOGIN " + b"(" * 10000 + b"\r\n", b"t1")
        assert r.kind == "BAD", r
        c.ok("NOOP")
    finally:
        c.logout()
    still_serving(bnode)


def test_invalid_sequence_sets(bnode):
    c = connect(bnode, ALICE)
    try:
        c.select("Bad")
        for cmd in ("FETCH 0 (FLAGS)", "FETCH 1: (FLAGS)", "FETCH a (FLAGS)",
                    "FETCH 1,,2 (FLAGS)", "FETCH 4294967296 (FLAGS)",
                    "UID FETCH 0 (FLAGS)", "STORE 0 +FLAGS (\\Seen)",
                    "FETCH :1 (FLAGS)"):
            r = refused(c.cmd(cmd), cmd)
            assert not r.fetches(), (cmd, r)
        c.ok("NOOP")
        r = c.fetch("1:*", "(FLAGS)")
        assert len(r.fetches()) >= 3, r
    finally:
        c.logout()
    still_serving(bnode)


def test_8bit_and_nul_in_atoms_and_tags(bnode):
    c = connect(bnode, ALICE)
    try:
        r, _ = raw_cmd(c, b"t1 SELECT INB\xc3\x96X\r\n", b"t1")
        assert r.kind == "BAD" and r.text.strip(), r
        c.ok("NOOP")
        r, _ = raw_cmd(c, b"t2 FETCH 1 (FL\xe4GS)\r\n", b"t2")
        assert r.kind == "BAD", r
        r, _ = raw_cmd(c, b"t\xff3 NOOP\r\n", b"t\xff3")
        assert r.kind == "BAD", r
        r, _ = raw_cmd(c, b"t4 NO\x00OP\r\n", b"t4")
        assert r.kind == "BAD", r
        r, _ = raw_cmd(c, b"t5 CREATE Caf\xe9\r\n", b"t5")
        assert r.kind == "BAD", r
        c.ok("NOOP")
        r = c.cmd("SELECT Bad")
        assert r.status == "OK", r
    finally:
        c.logout()
    c = Client(bnode)
    try:
        r, _ = raw_cmd(c, b"t1 LOGIN \xe4lice secret\r\n", b"t1")
        assert r.kind == "BAD", r
        c.ok("NOOP")
    finally:
        c.logout()
    still_serving(bnode)


def test_errors_in_one_session_do_not_disturb_another(bnode):
    """A session busy failing while another works on the same mailbox."""
    good = connect(bnode, ALICE)
    bad = connect(bnode, ALICE)
    try:
        good.select("Bad")
        bad.select("Bad")
        for i in range(5):
            refused(bad.cmd("FETCH 0 (FLAGS)"))
            r = good.fetch("1:*", "(UID)")
            assert len(r.fetches()) >= 3, r
        box = "Fine-" + uuid.uuid4().hex[:6]
        good.ok("CREATE " + box)
    finally:
        good.logout()
        bad.close()
