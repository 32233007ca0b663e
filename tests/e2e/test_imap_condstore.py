"""
CONDSTORE and QRESYNC (RFC 7162): HIGHESTMODSEQ in SELECT and STATUS,
per-message MODSEQ, FETCH (CHANGEDSINCE) giving exactly what another
session changed, STORE (UNCHANGEDSINCE) answering [MODIFIED ...],
SELECT (QRESYNC (uidvalidity modseq)) giving exactly the changed
messages' FETCH (with MODSEQ) and a VANISHED (EARLIER) of the expunged
UIDs, UID FETCH (CHANGEDSINCE m VANISHED), and VANISHED instead of
EXPUNGE in a QRESYNC session.
"""
import uuid

import pytest

from imap_util import (ALICE, Lit, connect, flagset, small_message,
                       start_imap_node, status_items, uidset_list)
from smtp_util import finish

N = 10


@pytest.fixture(scope="module")
def qnode(tmp_path_factory):
    n = start_imap_node(tmp_path_factory.mktemp("imapcond"))
    yield n
    finish(n)


@pytest.fixture
def box(qnode):
    """A fresh mailbox of alice with N messages: (name, [uids])."""
    name = "Cond-" + uuid.uuid4().hex[:8]
    c = connect(qnode, ALICE)
    try:
        c.ok("CREATE " + name)
        for i in range(N):
            c.ok("APPEND %s " % name, Lit(small_message(i, name)))
        c.select(name)
        uids = [a["UID"] for _, a in sorted(c.fetch("1:*", "(UID)")
                                            .fetches())]
    finally:
        c.logout()
    assert len(uids) == N
    return name, uids


def highest(r):
    code = r.code_of("HIGHESTMODSEQ")
    assert code, "no HIGHESTMODSEQ in %r" % r
    return code[1]


def modseq(attrs):
    v = attrs.get("MODSEQ")
    assert isinstance(v, list) and len(v) == 1 and isinstance(v[0], int), \
        attrs
    return v[0]


def status(c, name, items):
    return status_items(c.ok("STATUS %s (%s)" % (name, items)))[name]


def test_highestmodseq_select_status_and_modseq(qnode, box):
    name, uids = box
    c = connect(qnode, ALICE)
    try:
        st = status(c, name, "HIGHESTMODSEQ UIDVALIDITY")
        r = c.select(name, extra=" (CONDSTORE)")
        m0 = highest(r)
        assert m0 == st["HIGHESTMODSEQ"] and m0 > 0, (m0, st)
        r = c.fetch("1:*", "(UID MODSEQ)")
        ms = {a["UID"]: modseq(a) for _, a in r.fetches()}
        assert set(ms) == set(uids) and max(ms.values()) <= m0, ms
        r = c.ok("UID STORE %d +FLAGS (\\Flagged)" % uids[3])
        a = r.by_uid()[uids[3]]
        m1 = modseq(a)        # RFC 7162 3.1.4: MODSEQ with the FETCH
        assert m1 > m0 and "\\FLAGGED" in flagset(a["FLAGS"]), a
        r = c.fetch(str(uids[3]), "(MODSEQ)", uid=True)
        assert modseq(r.by_uid()[uids[3]]) == m1
        c.ok("UNSELECT")
        assert status(c, name, "HIGHESTMODSEQ")["HIGHESTMODSEQ"] == m1
        # selected again: the same HIGHESTMODSEQ
        r = c.select(name, extra=" (CONDSTORE)")
        assert highest(r) == m1
        # ENABLE CONDSTORE has the same effect as the SELECT parameter
        c.ok("UNSELECT")
        r = c.ok("ENABLE CONDSTORE")
        r = c.select(name)
        assert highest(r) == m1
    finally:
        c.logout()


def test_changedsince_gives_exactly_the_changes(qnode, box):
    name, uids = box
    a = connect(qnode, ALICE)
    b = connect(qnode, ALICE)
    try:
        m0 = highest(a.select(name, extra=" (CONDSTORE)"))
        b.select(name)
        b.ok("UID STORE %d +FLAGS.SILENT (\\Seen)" % uids[1])
        b.ok("UID STORE %d +FLAGS.SILENT (\\Answered $Work)" % uids[4])
        r = a.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % m0)
        got = r.by_uid()
        assert set(got) == {uids[1], uids[4]}, r
        assert "\\SEEN" in flagset(got[uids[1]]["FLAGS"])
        assert {"\\ANSWERED", "$WORK"} <= flagset(got[uids[4]]["FLAGS"])
        assert all(modseq(x) > m0 for x in got.values()), got
        m1 = max(modseq(x) for x in got.values())
        r = a.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % m1)
        assert r.by_uid() == {}, r
        # sequence-number FETCH with CHANGEDSINCE, too
        r = a.ok("FETCH 1:* (UID FLAGS) (CHANGEDSINCE %d)" % m0)
        assert {x["UID"]: s for s, x in r.fetches()} == {
            uids[1]: 2, uids[4]: 5}, r
    finally:
        a.logout()
        b.logout()


def test_store_unchangedsince_answers_modified(qnode, box):
    name, uids = box
    a = connect(qnode, ALICE)
    b = connect(qnode, ALICE)
    try:
        m0 = highest(a.select(name, extra=" (CONDSTORE)"))
        b.select(name)
        b.ok("UID STORE %d +FLAGS.SILENT (\\Flagged)" % uids[3])
        r = a.ok("UID STORE %d,%d (UNCHANGEDSINCE %d) +FLAGS (\\Answered)"
                 % (uids[2], uids[3], m0))
        code = r.code_of("MODIFIED")
        assert code and uidset_list(code[1]) == [uids[3]], r
        r = a.ok("UID FETCH %d,%d (FLAGS MODSEQ)" % (uids[2], uids[3]))
        got = r.by_uid()
        assert "\\ANSWERED" in flagset(got[uids[2]]["FLAGS"]), got
        assert "\\ANSWERED" not in flagset(got[uids[3]]["FLAGS"]), got
        assert "\\FLAGGED" in flagset(got[uids[3]]["FLAGS"]), got
        # sequence-number STORE: MODIFIED names sequence numbers
        r = a.ok("STORE 4,5 (UNCHANGEDSINCE %d) +FLAGS (\\Draft)" % m0)
        code = r.code_of("MODIFIED")
        assert code and uidset_list(code[1]) == [4], r
        # UNCHANGEDSINCE 0 always fails (RFC 7162 3.1.3)
        r = a.ok("UID STORE %d (UNCHANGEDSINCE 0) +FLAGS (\\Seen)"
                 % uids[6])
        code = r.code_of("MODIFIED")
        assert code and uidset_list(code[1]) == [uids[6]], r
        r = a.fetch(str(uids[6]), "(FLAGS)", uid=True)
        assert "\\SEEN" not in flagset(r.by_uid()[uids[6]]["FLAGS"])
    finally:
        a.logout()
        b.logout()


def test_qresync_select_gives_changes_and_vanished(qnode, box):
    name, uids = box
    a = connect(qnode, ALICE)
    try:
        r = a.ok("ENABLE QRESYNC")
        assert "QRESYNC" in {str(x).upper() for x in
                             r.one("ENABLED").data}, r
        r = a.select(name)
        m0 = highest(r)
        v = r.code_of("UIDVALIDITY")[1]
    finally:
        a.logout()
    # another session changes flags of two messages and expunges two
    b = connect(qnode, ALICE)
    try:
        b.select(name)
        b.ok("UID STORE %d +FLAGS.SILENT (\\Seen)" % uids[0])
        b.ok("UID STORE %d +FLAGS.SILENT (\\Flagged)" % uids[5])
        b.ok("UID STORE %d,%d +FLAGS.SILENT (\\Deleted)" % (uids[1],
                                                            uids[6]))
        b.ok("UID EXPUNGE %d,%d" % (uids[1], uids[6]))
    finally:
        b.logout()
    left = [u for u in uids if u not in (uids[1], uids[6])]
    c = connect(qnode, ALICE)
    try:
        c.ok("ENABLE QRESYNC")
        r = c.select(name, extra=" (QRESYNC (%d %d))" % (v, m0))
        assert r.one("EXISTS").num == N - 2
        vanished = r.all("VANISHED")
        assert len(vanished) == 1, r
        assert [str(x).upper() for x in vanished[0].data[0]] == \
            ["EARLIER"], vanished[0]
        assert uidset_list(vanished[0].data[1]) == sorted(
            [uids[1], uids[6]]), vanished[0]
        got = {}
        for seq, x in r.fetches():
            assert "UID" in x and "FLAGS" in x, x
            assert modseq(x) > m0, x
            assert left.index(x["UID"]) + 1 == seq, (seq, x, left)
            got[x["UID"]] = flagset(x["FLAGS"])
        assert set(got) == {uids[0], uids[5]}, r
        assert "\\SEEN" in got[uids[0]] and "\\FLAGGED" in got[uids[5]]
        assert highest(r) > m0

        # UID FETCH (CHANGEDSINCE m VANISHED): the same picture
        r = c.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % m0)
        (van,) = r.all("VANISHED")
        assert [str(x).upper() for x in van.data[0]] == ["EARLIER"], van
        assert uidset_list(van.data[1]) == sorted([uids[1], uids[6]]), van
        assert set(r.by_uid()) == {uids[0], uids[5]}, r

        # an expunge by another session now: VANISHED, never EXPUNGE;
        # a flag change: FETCH with MODSEQ (RFC 7162 3.2.10, 3.1.4)
        d = connect(qnode, ALICE)
        try:
            d.select(name)
            d.ok("UID STORE %d +FLAGS.SILENT (\\Deleted)" % uids[2])
            d.ok("UID EXPUNGE %d" % uids[2])
            d.ok("UID STORE %d +FLAGS.SILENT (\\Answered)" % uids[3])
        finally:
            d.logout()
        r = c.ok("NOOP")
        assert not r.all("EXPUNGE"), r
        van = r.all("VANISHED")
        assert van and all(not isinstance(x.data[0], list) for x in van), r
        assert sum((uidset_list(x.data[0]) for x in van), []) == \
            [uids[2]], r
        ch = {x["UID"]: x for _, x in r.fetches() if "UID" in x}
        assert uids[3] in ch and modseq(ch[uids[3]]) > m0, r
        assert "\\ANSWERED" in flagset(ch[uids[3]]["FLAGS"])
        r = c.ok("NOOP")
        assert not r.all("VANISHED") and not r.all("EXPUNGE"), r
    finally:
        c.logout()


def test_qresync_select_with_current_modseq_reports_nothing(qnode, box):
    name, uids = box
    c = connect(qnode, ALICE)
    try:
        c.ok("ENABLE QRESYNC")
        r = c.select(name)
        m, v = highest(r), r.code_of("UIDVALIDITY")[1]
        c.ok("UNSELECT")
        r = c.select(name, extra=" (QRESYNC (%d %d))" % (v, m))
        assert not r.all("VANISHED") and not r.fetches(), r
        assert highest(r) == m
        # another UIDVALIDITY: the server ignores the remembered state
        c.ok("UNSELECT")
        r = c.select(name, extra=" (QRESYNC (%d 1))" % (v + 1))
        assert not r.all("VANISHED") and not r.fetches(), r
    finally:
        c.logout()
