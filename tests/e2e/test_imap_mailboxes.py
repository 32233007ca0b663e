"""
IMAP mailbox management, as alice on a demo node: the default mailboxes
and their special use, CREATE (with hierarchy), DELETE (with inferiors
-> \\Noselect), RENAME (hierarchy; INBOX), SUBSCRIBE/UNSUBSCRIBE/LSUB,
LIST patterns, LIST-EXTENDED with RETURN (CHILDREN SPECIAL-USE STATUS),
STATUS items, SELECT/EXAMINE, APPEND with flags and date (APPENDUID),
MULTIAPPEND, COPY/MOVE (COPYUID), EXPUNGE, UID EXPUNGE, CLOSE, UNSELECT,
non-ASCII names (modified UTF-7 for IMAP4rev1, UTF-8 after ENABLE
UTF8=ACCEPT or IMAP4rev2) and QUOTA.

Decisions: superiors made by CREATE "a/b/c" must be listed (selectable
or \\Noselect: RFC 3501 leaves it open); QUOTA STORAGE counts RFC822.SIZE
in KiB (RFC 9208 5.1); when conf/amanat.conf documents a [mailsrv]
quota knob, the node sets it to 10M and the limit must be 10240.
"""
import datetime
import uuid

import pytest

from imap_util import (ALICE, DEFAULT_MAILBOXES, SPECIAL_USE, Lit,
                       appenduid, connect, find_knob, flagset, internaldate,
                       listing, mutf7_encode, small_message, start_imap_node,
                       sized_message, status_items, uidset_list, astr)
from smtp_util import finish

QUOTA_KNOB = find_knob("mailsrv", "quota")


@pytest.fixture(scope="module")
def mnode(tmp_path_factory):
    extra = {"mailsrv": {QUOTA_KNOB: "10M"}} if QUOTA_KNOB else None
    n = start_imap_node(tmp_path_factory.mktemp("imapmbox"), extra)
    yield n
    finish(n)


@pytest.fixture
def c(mnode):
    x = connect(mnode, ALICE)
    yield x
    x.logout()


def uniq(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def names(c, ref, pat, extra=""):
    return listing(c.ok('LIST "%s" "%s"%s' % (ref, pat, extra)))


def status(c, box, items="MESSAGES"):
    return status_items(c.ok('STATUS "%s" (%s)' % (box, items)))[box]


def fill(c, box, n, flags=None, mk=""):
    out = []
    for i in range(n):
        msg = small_message(i, mk or box)
        r = c.ok('APPEND "%s" %s' % (box, "(%s) " % flags if flags else ""),
                 Lit(msg))
        out.append((appenduid(r), msg))
    return out


# ================================================================ LIST

def test_default_mailboxes_special_use_and_separator(c):
    got = names(c, "", "*", " RETURN (SPECIAL-USE)")
    for name in DEFAULT_MAILBOXES:
        assert name in got, (name, got)
        assert got[name][1] == "/", got[name]
    for name, use in SPECIAL_USE.items():
        assert use.upper() in got[name][0], (name, got[name])
    assert not {a for a in got["INBOX"][0]} & {
        u.upper() for u in SPECIAL_USE.values()}
    # the SPECIAL-USE selection option lists exactly these five
    only = listing(c.ok('LIST (SPECIAL-USE) "" "*"'))
    assert set(only) == set(SPECIAL_USE), only
    for name, use in SPECIAL_USE.items():
        assert use.upper() in only[name][0]
    # LIST "" "" gives the separator and the root
    r = c.ok('LIST "" ""')
    (x,) = r.all("LIST")
    assert astr(x.data[1]) == b"/" and astr(x.data[2]) == b"", x
    assert "\\NOSELECT" in {str(a).upper() for a in x.data[0]}, x


def test_create_with_hierarchy_and_patterns(c):
    top = uniq("Projects")
    c.ok('CREATE "%s/2024/Q1"' % top)
    got = names(c, "", top + "*")
    assert set(got) == {top, top + "/2024", top + "/2024/Q1"}, got
    assert "\\HASCHILDREN" in got[top][0] and \
        "\\HASCHILDREN" in got[top + "/2024"][0], got
    assert "\\HASNOCHILDREN" in got[top + "/2024/Q1"][0], got
    assert set(names(c, "", top + "/%")) == {top + "/2024"}
    assert set(names(c, top + "/", "%")) == {top + "/2024"}
    assert set(names(c, "", top + "/*")) == {top + "/2024",
                                             top + "/2024/Q1"}
    assert not [n for n in names(c, "", "%") if "/" in n]
    assert top in names(c, "", "%")
    c.select(top + "/2024/Q1")
    # CREATE of an existing name, INBOX in any case, and a special one
    for existing in ("INBOX", "inbox", "Sent", top + "/2024/Q1"):
        r = c.cmd('CREATE "%s"' % existing)
        assert r.status == "NO", (existing, r)
    r = c.cmd('CREATE "%s"' % (top + "/2024/Q1"))
    assert r.code_name == "ALREADYEXISTS", r


def test_delete_with_inferiors_leaves_noselect(c):
    par = uniq("Par")
    c.ok('CREATE "%s"' % par)
    fill(c, par, 2)
    c.ok('CREATE "%s/Kid"' % par)
    fill(c, par + "/Kid", 1)
    c.ok('DELETE "%s"' % par)
    got = names(c, "", par + "*")
    assert par in got and "\\NOSELECT" in got[par][0], got
    assert "\\HASCHILDREN" in got[par][0], got
    assert status(c, par + "/Kid")["MESSAGES"] == 1
    r = c.cmd('SELECT "%s"' % par)
    assert r.status == "NO", r
    # a \Noselect name with inferiors cannot be deleted (RFC 3501 6.3.4)
    r = c.cmd('DELETE "%s"' % par)
    assert r.status == "NO", r
    c.ok('DELETE "%s/Kid"' % par)
    r = c.cmd('DELETE "%s"' % par)           # gone already, or now
    assert r.status in ("OK", "NO"), r
    assert names(c, "", par + "*") == {}
    # deleted and re-created: empty, and UIDs never reused
    c.ok('CREATE "%s"' % par)
    st = status(c, par, "MESSAGES UIDNEXT UIDVALIDITY")
    assert st["MESSAGES"] == 0, st


def test_delete_refusals(c):
    r = c.cmd("DELETE INBOX")
    assert r.status == "NO", r
    r = c.cmd('DELETE "%s"' % uniq("Nope"))
    assert r.status == "NO", r
    assert r.code_name == "NONEXISTENT", r


def test_delete_recreate_new_uidvalidity_or_higher_uids(c):
    box = uniq("Again")
    c.ok('CREATE "%s"' % box)
    fill(c, box, 3)
    st1 = status(c, box, "UIDNEXT UIDVALIDITY")
    c.ok('DELETE "%s"' % box)
    c.ok('CREATE "%s"' % box)
    st2 = status(c, box, "MESSAGES UIDNEXT UIDVALIDITY")
    assert st2["MESSAGES"] == 0
    assert st2["UIDVALIDITY"] != st1["UIDVALIDITY"] or \
        st2["UIDNEXT"] >= st1["UIDNEXT"], (st1, st2)


def test_rename_moves_hierarchy(c):
    old, new = uniq("Old"), uniq("New")
    c.ok('CREATE "%s/Sub/Deep"' % old)
    fill(c, old + "/Sub", 2)
    c.ok('RENAME "%s" "%s"' % (old, new))
    assert names(c, "", old + "*") == {}
    assert set(names(c, "", new + "*")) == {new, new + "/Sub",
                                            new + "/Sub/Deep"}
    assert status(c, new + "/Sub")["MESSAGES"] == 2
    r = c.cmd('RENAME "%s" "Sent"' % new)
    assert r.status == "NO", r
    r = c.cmd('RENAME "%s" "%s"' % (old, uniq("X")))
    assert r.status == "NO", r


def test_rename_inbox_moves_messages_and_leaves_it_empty(c):
    sent = fill(c, "INBOX", 2, mk=uniq("inbox"))
    n = status(c, "INBOX")["MESSAGES"]
    assert n >= 2
    dest = uniq("OldInbox")
    c.ok('RENAME INBOX "%s"' % dest)
    assert status(c, dest)["MESSAGES"] == n
    assert status(c, "INBOX")["MESSAGES"] == 0
    r = c.select("INBOX")
    assert r.one("EXISTS").num == 0
    c.select(dest)
    r = c.fetch("%d:*" % (n - 1), "(BODY.PEEK[])")
    got = [a["BODY[]"] for _, a in sorted(r.fetches())]
    assert got == [m for _, m in sent], got
    assert "INBOX" in names(c, "", "INBOX")


# ================================================================ subscribe

def test_subscribe_unsubscribe_lsub(c):
    box = uniq("Sub")
    c.ok('CREATE "%s"' % box)
    c.ok('SUBSCRIBE "%s"' % box)
    assert box in listing(c.ok('LSUB "" "*"'))
    got = listing(c.ok('LIST (SUBSCRIBED) "" "*"'))
    assert "\\SUBSCRIBED" in got[box][0], got
    # deleting does not unsubscribe (RFC 3501 6.3.6); the name is then
    # \NonExistent in a SUBSCRIBED listing (RFC 5258)
    c.ok('DELETE "%s"' % box)
    assert box in listing(c.ok('LSUB "" "*"'))
    got = listing(c.ok('LIST (SUBSCRIBED) "" "%s"' % box))
    assert "\\NONEXISTENT" in got[box][0], got
    c.ok('UNSUBSCRIBE "%s"' % box)
    assert box not in listing(c.ok('LSUB "" "*"'))
    assert box not in listing(c.ok('LIST (SUBSCRIBED) "" "*"'))


def test_list_extended_return_children_special_use_status(c):
    top = uniq("LE")
    c.ok('CREATE "%s"' % top)
    c.ok('CREATE "%s/kid"' % top)
    fill(c, top, 2)
    fill(c, top, 1, flags="\\Seen")
    c.ok('SUBSCRIBE "%s"' % top)
    r = c.ok('LIST (SUBSCRIBED) "" "%s*" RETURN (CHILDREN SPECIAL-USE '
             'STATUS (MESSAGES UNSEEN))' % top)
    got = listing(r)
    assert set(got) == {top}, got
    assert {"\\SUBSCRIBED", "\\HASCHILDREN"} <= got[top][0], got
    assert status_items(r)[top] == {"MESSAGES": 3, "UNSEEN": 2}, r
    r = c.ok('LIST "" "%s*" RETURN (CHILDREN STATUS (MESSAGES UNSEEN))'
             % top)
    got = listing(r)
    assert "\\HASNOCHILDREN" in got[top + "/kid"][0], got
    st = status_items(r)
    assert st == {top: {"MESSAGES": 3, "UNSEEN": 2},
                  top + "/kid": {"MESSAGES": 0, "UNSEEN": 0}}, r
    # RFC 5819: each STATUS follows the LIST of its mailbox
    last = None
    for x in r.untagged:
        if x.kind == "LIST":
            last = astr(x.data[2])
        elif x.kind == "STATUS":
            assert astr(x.data[0]) == last, r
    r = c.ok('LIST "" "*" RETURN (SPECIAL-USE STATUS (MESSAGES))')
    got, st = listing(r), status_items(r)
    for name, use in SPECIAL_USE.items():
        assert use.upper() in got[name][0]
        assert "MESSAGES" in st[name], st
    assert "INBOX" in st


# ================================================================ STATUS

def test_status_items(mnode, c):
    box = uniq("Stat")
    c.ok('CREATE "%s"' % box)
    msgs = fill(c, box, 2) + fill(c, box, 1, flags="\\Seen")
    items = "MESSAGES UIDNEXT UIDVALIDITY UNSEEN SIZE HIGHESTMODSEQ DELETED"
    st = status(c, box, items)
    assert st["MESSAGES"] == 3 and st["UNSEEN"] == 2, st
    assert st["SIZE"] == sum(len(m) for _, m in msgs), (st, msgs)
    assert st["DELETED"] == 0, st
    assert st["UIDVALIDITY"] > 0 and st["HIGHESTMODSEQ"] > 0, st
    uids = [u for u, _ in msgs]
    assert all(isinstance(u, int) for u in uids), uids
    assert st["UIDNEXT"] > max(uids), st
    c.select(box)
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("UNSELECT")
    st2 = status(c, box, items)
    assert st2["DELETED"] == 1 and st2["MESSAGES"] == 3, st2
    assert st2["HIGHESTMODSEQ"] > st["HIGHESTMODSEQ"], (st, st2)
    assert st2["UIDVALIDITY"] == st["UIDVALIDITY"]
    r = c.cmd('STATUS "%s" (MESSAGES)' % uniq("Missing"))
    assert r.status == "NO", r


# ================================================================ SELECT

def test_select_and_examine(c):
    box = uniq("Sel")
    c.ok('CREATE "%s"' % box)
    fill(c, box, 3)
    r = c.select(box)
    assert r.one("EXISTS").num == 3
    assert r.code_name == "READ-WRITE", r
    assert r.one("FLAGS").data, r
    codes = {str(x[0]).upper(): x for x in r.codes()}
    for k in ("UIDVALIDITY", "UIDNEXT", "PERMANENTFLAGS"):
        assert k in codes, (k, r)
    assert "\\*" in [str(f) for f in codes["PERMANENTFLAGS"][1]], r
    assert codes["UIDVALIDITY"][1] == status(c, box, "UIDVALIDITY")[
        "UIDVALIDITY"]
    r = c.select(box, examine=True)
    assert r.code_name == "READ-ONLY", r
    assert r.one("EXISTS").num == 3
    for cmd in ("STORE 1 +FLAGS (\\Seen)", "EXPUNGE",
                "STORE 1:* +FLAGS (\\Deleted)"):
        r = c.cmd(cmd)
        assert r.status == "NO", (cmd, r)
    c.ok("CLOSE")       # leaves EXAMINE without expunging anything
    assert status(c, box)["MESSAGES"] == 3
    r = c.cmd('SELECT "%s"' % uniq("Missing"))
    assert r.status == "NO", r


# ================================================================ APPEND

def test_append_flags_date_appenduid(c):
    box = uniq("App")
    c.ok('CREATE "%s"' % box)
    msg = small_message(1, box)
    r = c.ok('APPEND "%s" (\\Flagged $Label1) "05-Jan-2023 10:20:30 +0100" '
             % box, Lit(msg))
    code = r.code_of("APPENDUID")
    assert code, r
    assert code[1] == status(c, box, "UIDVALIDITY")["UIDVALIDITY"]
    uid = uidset_list(code[2])
    assert len(uid) == 1, code
    c.select(box)
    r = c.fetch(str(uid[0]), "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])",
                uid=True)
    a = r.by_uid()[uid[0]]
    assert {"\\FLAGGED", "$LABEL1"} <= flagset(a["FLAGS"]), a
    assert "\\SEEN" not in flagset(a["FLAGS"])
    assert internaldate(a["INTERNALDATE"]) == datetime.datetime(
        2023, 1, 5, 10, 20, 30,
        tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert a["RFC822.SIZE"] == len(msg) and a["BODY[]"] == msg
    r = c.cmd('APPEND "%s" ' % uniq("Missing"), Lit(msg))
    assert (r.status, r.code_name) == ("NO", "TRYCREATE"), r


def test_multiappend(c):
    box = uniq("Multi")
    c.ok('CREATE "%s"' % box)
    msgs = [small_message(i, box) for i in range(3)]
    r = c.ok('APPEND "%s" (\\Seen) ' % box, Lit(msgs[0]),
             ' (\\Draft) "01-Feb-2022 01:02:03 +0000" ', Lit(msgs[1]),
             " ", Lit(msgs[2]))
    code = r.code_of("APPENDUID")
    assert code, r
    uids = uidset_list(code[2])
    assert len(uids) == 3, code
    c.select(box)
    r = c.fetch(",".join(map(str, uids)), "(FLAGS BODY.PEEK[])", uid=True)
    got = r.by_uid()
    assert [got[u]["BODY[]"] for u in uids] == msgs
    assert "\\SEEN" in flagset(got[uids[0]]["FLAGS"])
    assert "\\DRAFT" in flagset(got[uids[1]]["FLAGS"])
    assert not flagset(got[uids[2]]["FLAGS"]) & {"\\SEEN", "\\DRAFT"}
    assert status(c, box)["MESSAGES"] == 3


# ================================================================ COPY/MOVE

def copyuid_map(r):
    code = r.code_of("COPYUID")
    assert code, r
    src, dst = uidset_list(code[2]), uidset_list(code[3])
    assert len(src) == len(dst), code
    return code[1], dict(zip(src, dst))


def test_copy_and_move_with_copyuid(c):
    src, dst = uniq("Src"), uniq("Dst")
    c.ok('CREATE "%s"' % src)
    c.ok('CREATE "%s"' % dst)
    msgs = dict(fill(c, src, 4))
    u = sorted(msgs)
    c.select(src)
    c.ok("UID STORE %d +FLAGS (\\Flagged)" % u[0])
    r = c.ok('UID COPY %d,%d "%s"' % (u[0], u[1], dst))
    v, m = copyuid_map(r)
    assert sorted(m) == [u[0], u[1]], m
    assert v == status(c, dst, "UIDVALIDITY")["UIDVALIDITY"]
    r = c.ok('UID MOVE %d "%s"' % (u[2], dst))
    _, m2 = copyuid_map(r)
    assert list(m2) == [u[2]], m2
    assert [x.num for x in r.all("EXPUNGE")] == [3], r
    m.update(m2)
    assert [a["UID"] for _, a in c.fetch("1:*", "(UID)").fetches()] == \
        [u[0], u[1], u[3]]
    c.select(dst)
    r = c.fetch(",".join(str(x) for x in m.values()), "(FLAGS BODY.PEEK[])",
                uid=True)
    got = r.by_uid()
    for s_uid, d_uid in m.items():
        assert got[d_uid]["BODY[]"] == msgs[s_uid], (s_uid, d_uid)
    assert "\\FLAGGED" in flagset(got[m[u[0]]]["FLAGS"])
    c.select(src)
    r = c.cmd('COPY 1 "%s"' % uniq("Missing"))
    assert (r.status, r.code_name) == ("NO", "TRYCREATE"), r
    r = c.cmd('MOVE 1 "%s"' % uniq("Missing"))
    assert (r.status, r.code_name) == ("NO", "TRYCREATE"), r


# ================================================================ EXPUNGE

def test_expunge_uid_expunge_close_unselect(c):
    box = uniq("Exp")
    c.ok('CREATE "%s"' % box)
    u = [x for x, _ in fill(c, box, 6)]
    c.select(box)
    c.ok("STORE 1,2,4 +FLAGS.SILENT (\\Deleted)")
    r = c.ok("UID EXPUNGE %d" % u[1])
    assert [x.num for x in r.all("EXPUNGE")] == [2], r
    assert status(c, box, "MESSAGES DELETED") == {"MESSAGES": 5,
                                                  "DELETED": 2}
    # UNSELECT leaves \Deleted messages alone
    c.ok("UNSELECT")
    assert status(c, box)["MESSAGES"] == 5
    # CLOSE expunges them silently
    c.select(box)
    r = c.ok("CLOSE")
    assert not r.all("EXPUNGE"), r
    assert status(c, box)["MESSAGES"] == 3
    c.select(box)
    assert [a["UID"] for _, a in c.fetch("1:*", "(UID)").fetches()] == \
        [u[2], u[4], u[5]]
    c.ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    r = c.ok("EXPUNGE")
    nums = [x.num for x in r.all("EXPUNGE")]
    assert nums in ([3, 1], [1, 2]), r      # either order, renumbered
    assert [a["UID"] for _, a in c.fetch("1:*", "(UID)").fetches()] == \
        [u[4]]
    # commands that need a selected mailbox fail after CLOSE
    c.ok("CLOSE")
    r = c.cmd("EXPUNGE")
    assert r.status in ("NO", "BAD"), r


# ================================================================ names

def test_non_ascii_names_mutf7_and_utf8(mnode, c):
    tag = uuid.uuid4().hex[:6]
    name1 = "\u00c4rger-" + tag                       # "Ärger-..."
    name2 = "\u53f0\u5317-" + tag + "/\u65e5\u672c\u8a9e"
    m1, m2 = mutf7_encode(name1), mutf7_encode(name2)
    assert m1 == "&AMQ-rger-" + tag
    # IMAP4rev1: modified UTF-7 both ways
    c.ok('CREATE "%s"' % m1)
    c.ok('CREATE "%s"' % m2)
    got = names(c, "", "*" + tag + "*")
    assert m1 in got and m2 in got, got
    assert status(c, m1)["MESSAGES"] == 0
    r = c.cmd('CREATE "&Jjo!-%s"' % tag)
    assert r.status in ("NO", "BAD"), r
    # UTF8=ACCEPT: UTF-8 both ways, in this session only
    u = connect(mnode, ALICE)
    try:
        r = u.ok("ENABLE UTF8=ACCEPT")
        assert "UTF8=ACCEPT" in {str(x).upper() for x in
                                 r.one("ENABLED").data}, r
        got = names(u, "", "*" + tag + "*")
        assert name1 in got and name2 in got, got
        name3 = "\u00dcn\u00efc\u00f6de-" + tag
        u.ok('CREATE "%s"' % name3)
        u.select(name1)
        assert status(u, name3)["MESSAGES"] == 0
    finally:
        u.logout()
    got = names(c, "", "*" + tag + "*")
    assert mutf7_encode(name3) in got and name3 not in got, got
    # IMAP4rev2 (RFC 9051 5.1): UTF-8 names as well
    v = connect(mnode, ALICE)
    try:
        r = v.ok("ENABLE IMAP4rev2")
        assert "IMAP4REV2" in {str(x).upper() for x in
                               r.one("ENABLED").data}, r
        got = names(v, "", "*" + tag + "*")
        assert {name1, name2, name3} <= set(got), got
        v.select(name2)
    finally:
        v.logout()


# ================================================================ QUOTA

def quota(c, root):
    r = c.ok('GETQUOTA "%s"' % root)
    (q,) = [x for x in r.all("QUOTA") if astr(x.data[0]).decode() == root]
    res = q.data[1]
    out = {}
    for i in range(0, len(res), 3):
        out[str(res[i]).upper()] = (res[i + 1], res[i + 2])
    return out


def test_quota_getquotaroot_inbox(c):
    r = c.ok("GETQUOTAROOT INBOX")
    qr = r.one("QUOTAROOT").data
    assert astr(qr[0]).upper() == b"INBOX" and len(qr) >= 2, r
    root = astr(qr[1]).decode()
    qs = {astr(x.data[0]).decode(): x.data[1] for x in r.all("QUOTA")}
    assert root in qs, r
    usage, limit = quota(c, root)["STORAGE"]
    assert limit > 0, (usage, limit)
    if QUOTA_KNOB:
        assert limit == 10 * 1024, (QUOTA_KNOB, limit)
    big = sized_message(200 * 1024, "quota")
    c.ok("APPEND INBOX ", Lit(big))
    usage2, limit2 = quota(c, root)["STORAGE"]
    assert limit2 == limit
    assert 199 <= usage2 - usage <= 201, (usage, usage2)
