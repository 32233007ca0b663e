"""
IMAP SEARCH with Python's imaplib (a stock client) over IMAPS: header
fields RFC 2047-decoded, bodies with their transfer encoding removed and
their charset converted, case-insensitive in every script with case
(Kazakh, Vietnamese, Greek, German sharp s: libunistring's full case
folding), CHARSET UTF-8 needles sent as literals, sizes, dates, flags,
NOT/OR, an unknown charset refused with [BADCHARSET], and one user's
search never reaching another user's messages.  ESEARCH (RFC 4731) and
SEARCHRES (RFC 5182) with the suite's own client, which parses their
responses.
"""
import imaplib
import time
import uuid

import pytest

from imap_util import ALICE, BOB, connect, pw, start_imap_node
from smtp_util import finish


@pytest.fixture(scope="module")
def snode(tmp_path_factory):
    n = start_imap_node(tmp_path_factory.mktemp("imapsearch"))
    yield n
    finish(n)


def imaps(node, user):
    c = imaplib.IMAP4_SSL("127.0.0.1", node.port("imaps"),
                          ssl_context=node.ssl_context())
    c.login(user, pw(node, user))
    return c


def crlf(s):
    return s.replace("\n", "\r\n").encode("utf-8")


def messages(tag):
    kz = ("Subject: =?utf-8?b?"
          "0prQsNC30LDSm9GB0YLQsNC9INOZ0LrRltC80LTRltCz0ZY=?=\n")
    return {
        # Subject: Қазақстан әкімдігі (RFC 2047), From: Äsel (encoded)
        "kz": crlf("From: =?utf-8?q?=C3=84sel?= <asel@finance.amanat.test>\n"
                   "To: alice@finance.amanat.test\n" + kz +
                   "X-Tag: " + tag + "\n"
                   "MIME-Version: 1.0\n"
                   "Content-Type: text/plain; charset=utf-8\n"
                   "Content-Transfer-Encoding: quoted-printable\n\n"
                   "Vi=E1=BB=87t Nam, Stra=C3=9Fe 7\n"),
        # a Latin-1 body, large
        "latin1": crlf("From: chef@example.org\nSubject: Menu\n"
                       "X-Tag: " + tag + "\n"
                       "MIME-Version: 1.0\n"
                       "Content-Type: text/plain; charset=iso-8859-1\n"
                       "Content-Transfer-Encoding: quoted-printable\n\n"
                       "Caf=E9 cr=E8me\n" + "filler line\n" * 1200),
        # the text in a base64 part of a multipart
        "greek": crlf("From: sofia@example.org\nSubject: Report\n"
                      "X-Tag: " + tag + "\n"
                      "MIME-Version: 1.0\n"
                      "Content-Type: multipart/mixed; boundary=b1\n\n"
                      "--b1\nContent-Type: text/plain; charset=utf-8\n"
                      "Content-Transfer-Encoding: base64\n\n"
                      "zqPOn86mzp/OoyByZXBvcnQ=\n"
                      "--b1\nContent-Type: application/octet-stream\n"
                      "Content-Transfer-Encoding: base64\n\n"
                      "AAECAw==\n--b1--\n"),
        # old, ASCII
        "old": crlf("From: archive@example.org\nSubject: Old minutes\n"
                    "X-Tag: " + tag + "\n\nNothing to see.\n"),
    }


@pytest.fixture(scope="module")
def box(snode):
    """alice's mailbox "Search" with the messages above: {name: uid}."""
    tag = uuid.uuid4().hex
    c = imaps(snode, ALICE)
    try:
        assert c.create("Search")[0] == "OK"
        uids = {}
        for name, msg in messages(tag).items():
            when = (imaplib.Time2Internaldate(time.mktime(
                (2020, 5, 1, 12, 0, 0, 0, 0, -1))) if name == "old"
                else None)
            flags = "(\\Seen)" if name == "old" else None
            typ, data = c.append("Search", flags, when, msg)
            assert typ == "OK", data
            # [APPENDUID uidvalidity uid]
            uids[name] = int(data[0].split(b"]")[0].split()[-1])
    finally:
        c.logout()
    return {"uids": uids, "tag": tag}


def search(c, *criteria, literal=None):
    """UID SEARCH; literal (str) goes last as a UTF-8 literal."""
    if literal is not None:
        c.literal = literal.encode("utf-8")
        typ, data = c.uid("SEARCH", "CHARSET", "UTF-8", *criteria)
    else:
        typ, data = c.uid("SEARCH", *criteria)
    assert typ == "OK", (criteria, typ, data)
    return sorted(int(x) for x in b" ".join(d for d in data if d).split())


def test_search_folds_every_script(snode, box):
    u = box["uids"]
    c = imaps(snode, ALICE)
    try:
        assert c.select("Search")[0] == "OK"
        # ҚАЗАҚСТАН (capitals) finds the RFC 2047 subject
        assert search(c, "SUBJECT",
                      literal="ҚАЗАҚСТАН") == [u["kz"]]
        assert search(c, "SUBJECT", literal="ӘКІМДІГІ") == [u["kz"]]
        assert search(c, "FROM", literal="äSEL") == [u["kz"]]
        # quoted-printable UTF-8 body; ß matches SS
        assert search(c, "BODY", literal="VIỆT NAM") == [u["kz"]]
        assert search(c, "TEXT", literal="STRASSE 7") == [u["kz"]]
        # a Latin-1 body, searched in UTF-8
        assert search(c, "BODY", literal="CAFÉ CRÈME") == [u["latin1"]]
        # a base64 text part of a multipart, final sigma
        assert search(c, "BODY", literal="σοφος") == [u["greek"]]
        # nothing that is not there
        assert search(c, "BODY", literal="Қазақстан") == []
        assert search(c, "TEXT", "nowhere-" + box["tag"]) == []
    finally:
        c.logout()


def test_search_sizes_dates_flags_and_logic(snode, box):
    u = box["uids"]
    every = sorted(u.values())
    c = imaps(snode, ALICE)
    try:
        assert c.select("Search")[0] == "OK"
        assert search(c, "ALL") == every
        assert search(c, "HEADER", "X-Tag", box["tag"]) == every
        assert search(c, "LARGER", "10000") == [u["latin1"]]
        assert search(c, "SMALLER", "10000") == sorted(
            v for k, v in u.items() if k != "latin1")
        assert search(c, "BEFORE", "1-Jan-2021") == [u["old"]]
        assert search(c, "SINCE", "1-Jan-2021") == sorted(
            v for k, v in u.items() if k != "old")
        assert search(c, "SEEN") == [u["old"]]
        assert search(c, "UNSEEN") == sorted(
            v for k, v in u.items() if k != "old")
        assert search(c, "OR", "SUBJECT", "menu", "SUBJECT",
                      "report") == sorted([u["latin1"], u["greek"]])
        assert search(c, "NOT", "SUBJECT", "menu", "UNSEEN") == sorted(
            [u["kz"], u["greek"]])
        assert search(c, "UID", "%d:%d" % (u["latin1"], u["greek"]),
                      "SUBJECT", "report") == [u["greek"]]
        # an unknown charset: NO [BADCHARSET], the session goes on
        c.literal = "x".encode()
        typ, data = c.uid("SEARCH", "CHARSET", "X-UNKNOWN-CS", "BODY")
        assert typ == "NO", data
        assert b"BADCHARSET" in data[0], data
        assert search(c, "SUBJECT", "menu") == [u["latin1"]]
    finally:
        c.logout()


def test_search_stays_in_the_users_mailboxes(snode, box):
    c = imaps(snode, BOB)
    try:
        typ, data = c.select("Search")
        assert typ == "NO", data
        assert c.select("INBOX")[0] == "OK"
        assert search(c, "HEADER", "X-Tag", box["tag"]) == []
        assert search(c, "SUBJECT", literal="ҚАЗАҚСТАН") == []
    finally:
        c.logout()


def esearch(r):
    """{name: value} of the one ESEARCH response of r (without the TAG
    correlator; "UID": True when present)."""
    vals = list(r.one("ESEARCH").data)
    out = {}
    if vals and isinstance(vals[0], list):
        assert str(vals[0][0]).upper() == "TAG", vals
        vals = vals[1:]
    while vals:
        name = str(vals.pop(0)).upper()
        out[name] = True if name == "UID" else vals.pop(0)
    return out


def uidset(*uids):
    return ",".join(str(u) for u in sorted(uids))


def test_esearch_and_searchres(snode, box):
    u = box["uids"]
    c = connect(snode, ALICE)
    try:
        c.ok("SELECT Search")
        tag = box["tag"]
        r = c.ok("UID SEARCH RETURN (MIN MAX COUNT ALL) HEADER X-Tag " + tag)
        got = esearch(r)
        assert got["UID"] is True, got
        assert int(got["MIN"]) == min(u.values()), got
        assert int(got["MAX"]) == max(u.values()), got
        assert int(got["COUNT"]) == 4, got
        every = set()
        for part in str(got["ALL"]).split(","):
            a, _, b = part.partition(":")
            every.update(range(int(a), int(b or a) + 1))
        assert every == set(u.values()), got
        # nothing found: COUNT 0, no MIN, MAX or ALL
        r = c.ok("UID SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT nowhere-"
                 + tag)
        assert esearch(r) == {"UID": True, "COUNT": 0}, r
        # SAVE: $ is the result, for FETCH and for a later SEARCH
        r = c.ok("UID SEARCH RETURN (SAVE) OR SUBJECT menu SUBJECT report")
        assert r.all("ESEARCH") == [] and r.all("SEARCH") == [], r
        r = c.ok("UID FETCH $ (UID)")
        assert sorted(r.by_uid()) == sorted([u["latin1"], u["greek"]]), r
        r = c.ok("UID SEARCH RETURN (COUNT) UID $ LARGER 10000")
        assert esearch(r)["COUNT"] == 1, r
        # SAVE with MIN alone saves just the minimum (RFC 5182 2.4)
        r = c.ok("UID SEARCH RETURN (SAVE MIN) HEADER X-Tag " + tag)
        assert int(esearch(r)["MIN"]) == min(u.values()), r
        r = c.ok("UID FETCH $ (UID)")
        assert sorted(r.by_uid()) == [min(u.values())], r
        # a new selection forgets $: an empty set, not an error
        c.ok("SELECT Search")
        r = c.ok("UID FETCH $ (UID)")
        assert r.by_uid() == {}, r
    finally:
        c.close()
