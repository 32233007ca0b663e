"""
IMAP FETCH against an independent model of each message.

A corpus of varied messages (imap_util.corpus: multipart/alternative,
multipart/mixed with base64 attachments and file names, message/rfc822
enclosed twice, RFC 2047 headers, 8-bit and quoted-printable bodies,
multipart nesting four levels deep, group addresses, no Date/Subject) is
APPENDed to alice's "Corpus" mailbox, and two messages are delivered
to her INBOX over SMTP submission.  For every message, over IMAPS and
over STARTTLS, BODYSTRUCTURE, BODY, ENVELOPE, RFC822.SIZE, every BODY
section (whole, HEADER, HEADER.FIELDS[.NOT], TEXT, every part number,
n.MIME, n.HEADER/n.TEXT of message/rfc822 parts, partial <start.len>),
RFC822.HEADER, BINARY[n] and BINARY.SIZE[n] are compared with the values
imap_util.Part computes from the raw bytes with Python's email package
(structures compared, not text).  \\Seen: BODY.PEEK/BINARY.PEEK/
RFC822.HEADER leave it, BODY[]/BINARY[]/RFC822/RFC822.TEXT set it, and
nothing sets it in a mailbox opened with EXAMINE.  Last, no marker of
the corpus is readable anywhere in the node's data directory.

The first tests check the model itself against RFC 3501's own examples
and hand-written structures (they need no server).
"""
import uuid

import pytest

from imap_util import (ALICE, BOB, Lit, Part, Resp, body_diff, connect,
                       corpus, crlf, fetch_key, flagset, mutf7_decode,
                       mutf7_encode, norm_body, norm_envelope, parse_values,
                       response_key, small_message, start_imap_node,
                       submitted, tokenize, uidset_list, seqset, wait_until)
from smtp_util import (finish, grep_tree, send_data, submission,
                       without_return_path)

# ================================================================ model

RFC3501_FETCH = (
    b'* 12 FETCH (FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
    b'RFC822.SIZE 4286 ENVELOPE ("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" '
    b'"IMAP4rev1 WG mtg summary and minutes" '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    b'((NIL NIL "imap" "cac.washington.edu")) '
    b'((NIL NIL "minutes" "CNRI.Reston.VA.US") '
    b'("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
    b'"<B27397-0100000@cac.washington.edu>") '
    b'BODY ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 '
    b'92))')

RFC3501_BODYSTRUCTURE = (
    b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)'
    b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") '
    b'"<960723163407.20117h@cac.washington.edu>" "Compiler diff" '
    b'"BASE64" 4554 73) "MIXED")')


def test_parser_values_literals_lists_codes():
    vals, _ = tokenize(b'(FLAGS (\\Seen $Label) '
                       b'BODY[HEADER.FIELDS (A B)]<0> '
                       b'{5}\r\nab\r\nc "q\\"\\\\x" NIL nil 12 '
                       b'~{2}\r\n\x00\x01 (("a" NIL) ()))')
    assert vals == [["FLAGS", ["\\Seen", "$Label"],
                     "BODY[HEADER.FIELDS (A B)]<0>", b"ab\r\nc", b'q"\\x',
                     None, None, 12, b"\x00\x01", [[b"a", None], []]]]
    r = Resp(b"* OK [PERMANENTFLAGS (\\Seen \\*)] Limited")
    assert (r.tag, r.kind, r.code, r.text) == (
        b"*", "OK", ["PERMANENTFLAGS", ["\\Seen", "\\*"]], b"Limited")
    r = Resp(b"t3 NO [TOOBIG] too big")
    assert (r.kind, r.code_name, r.text) == ("NO", "TOOBIG", b"too big")
    r = Resp(b"* 7 FETCH (UID 9 BODY[1.mime] {2}\r\nxy BODY[]<5> NIL)")
    assert r.num == 7 and r.fetch() == {"UID": 9, "BODY[1.MIME]": b"xy",
                                        "BODY[]<5>": None}
    assert response_key("BODY.PEEK[HEADER.FIELDS ( Subject  From )]<4.10>") \
        == "BODY[HEADER.FIELDS (SUBJECT FROM)]<4>"
    assert fetch_key("binary.size[1]") == "BINARY.SIZE[1]"
    assert Resp(b"* 3 EXPUNGE").num == 3
    r = Resp(b"* VANISHED (EARLIER) 1:3,7")
    assert r.data == [["EARLIER"], "1:3,7"]
    assert uidset_list(r.data[1]) == [1, 2, 3, 7]
    assert seqset([7, 1, 2, 3, 9]) == "1:3,7,9"


def test_mutf7_rfc3501_example():
    assert mutf7_encode("~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e") == \
        "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert mutf7_decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-") == \
        "~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e"
    assert mutf7_encode("A&B \u00c4") == "A&-B &AMQ-"
    assert mutf7_decode("A&-B &AMQ-") == "A&B \u00c4"


def rfc3501_message():
    """The message of RFC 3501's FETCH example (7.4.2): 4286 octets, a
    3028-octet body of 92 lines."""
    hdr = crlf("Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\n"
               "From: Terry Gray <gray@cac.washington.edu>\n"
               "Subject: IMAP4rev1 WG mtg summary and minutes\n"
               "To: imap@cac.washington.edu\n"
               "cc: minutes@CNRI.Reston.VA.US, John Klensin "
               "<KLENSIN@MIT.EDU>\n"
               "Message-Id: <B27397-0100000@cac.washington.edu>\n"
               "MIME-Version: 1.0\n"
               "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n")
    body = b"".join(b"%-31s\r\n" % (b"line %d" % i) for i in range(91)) + \
        b"x" * 23 + b"\r\n"
    assert len(body) == 3028 and body.count(b"\n") == 92
    pad = 4286 - 3028 - len(hdr) - len(b"X-Pad: \r\n\r\n")
    assert pad > 0
    return hdr + b"X-Pad: " + b"p" * pad + b"\r\n\r\n" + body


def test_model_matches_rfc3501_fetch_example():
    raw = rfc3501_message()
    p = Part(raw)
    rfc = Resp(RFC3501_FETCH).fetch()
    assert rfc["RFC822.SIZE"] == len(raw) == 4286
    assert norm_envelope(p.envelope()) == norm_envelope(rfc["ENVELOPE"])
    assert norm_body(p.bodystructure(False), False) == \
        norm_body(rfc["BODY"], False)


def test_model_matches_rfc3501_bodystructure_example():
    text = b"".join(b"%-50s\r\n" % (b"text %d" % i) for i in range(22)) + \
        b"done!!\r\n"
    assert len(text) == 1152 and text.count(b"\n") == 23
    import base64
    b64 = base64.b64encode(bytes(range(256)) * 12 + bytes(234))
    assert len(b64) == 4408
    lines, pos = [], 0
    for n in [64] * 40 + [56] * 33:
        lines.append(b64[pos:pos + n] + b"\r\n")
        pos += n
    att = b"".join(lines)
    assert len(att) == 4554 and att.count(b"\n") == 73
    raw = crlf("From: a@example.org\nMIME-Version: 1.0\n"
               "Content-Type: MULTIPART/MIXED; BOUNDARY=\"b1\"\n\n--b1\n"
               "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n\n") + text + \
        crlf("\n--b1\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII; "
             "NAME=cc.diff\n"
             "Content-ID: <960723163407.20117h@cac.washington.edu>\n"
             "Content-Description: Compiler diff\n"
             "Content-Transfer-Encoding: BASE64\n\n") + att + \
        crlf("\n--b1--\n")
    p = Part(raw)
    rfc = parse_values(RFC3501_BODYSTRUCTURE)[0]
    assert norm_body(p.bodystructure(False), False) == norm_body(rfc, False)
    assert p.section("2") == att and p.section("1") == text


HAND = crlf(
    "From: a@example.org\n"
    "Subject: hand\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=XX\n"
    "\n"
    "--XX\n"
    "Content-Type: text/plain; charset=UTF-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "caf=C3=A9\n"
    "\n"
    "--XX\n"
    "Content-Type: application/pdf; name=r.pdf\n"
    "Content-Transfer-Encoding: base64\n"
    "Content-Disposition: attachment; filename=r.pdf\n"
    "Content-ID: <id1@x>\n"
    "Content-Description: the report\n"
    "\n"
    "AAAA\n"
    "\n"
    "--XX\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: \"In Ner\" <in@x.example>\n"
    "Subject: inner\n"
    "Date: Thu, 1 Jan 2004 00:00:00 +0000\n"
    "\n"
    "hi\n"
    "\n"
    "--XX--\n")

# Written out by hand from RFC 3501 7.4.2 (sizes counted by hand: the
# enclosed message is 31 + 16 + 38 + 2 + 4 = 91 octets in 5 lines).
HAND_BODYSTRUCTURE = (
    b'(("text" "plain" ("charset" "UTF-8") NIL NIL "quoted-printable" 11 1 '
    b'NIL NIL NIL NIL)'
    b'("application" "pdf" ("name" "r.pdf") "<id1@x>" "the report" "base64" '
    b'6 NIL ("attachment" ("filename" "r.pdf")) NIL NIL)'
    b'("message" "rfc822" NIL NIL NIL "7bit" 91 '
    b'("Thu, 1 Jan 2004 00:00:00 +0000" "inner" (("In Ner" NIL "in" '
    b'"x.example")) (("In Ner" NIL "in" "x.example")) (("In Ner" NIL "in" '
    b'"x.example")) NIL NIL NIL NIL NIL) '
    b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 1 NIL NIL NIL '
    b'NIL) 5 NIL NIL NIL NIL) '
    b'"mixed" ("boundary" "XX") NIL NIL NIL)')
HAND_BODY = (
    b'(("text" "plain" ("charset" "UTF-8") NIL NIL "quoted-printable" 11 1)'
    b'("application" "pdf" ("name" "r.pdf") "<id1@x>" "the report" "base64" '
    b'6)("message" "rfc822" NIL NIL NIL "7bit" 91 '
    b'("Thu, 1 Jan 2004 00:00:00 +0000" "inner" (("In Ner" NIL "in" '
    b'"x.example")) (("In Ner" NIL "in" "x.example")) (("In Ner" NIL "in" '
    b'"x.example")) NIL NIL NIL NIL NIL) '
    b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 1) 5) "mixed")')


def test_model_matches_hand_written_structures():
    p = Part(HAND)
    want = parse_values(HAND_BODYSTRUCTURE)[0]
    # exactly, before any normalization
    assert p.bodystructure() == want
    assert p.bodystructure(False) == parse_values(HAND_BODY)[0]
    # a server's spelling that differs only where RFC 2045 says case does
    # not matter, or that leaves out trailing NIL extension fields, is the
    # same structure; another size or disposition is not
    server = parse_values(HAND_BODYSTRUCTURE.replace(b'"text" "plain"',
                                                     b'"TEXT" "PLAIN"')
                          .replace(b'"UTF-8"', b'"utf-8"'))[0]
    assert norm_body(server) == norm_body(want)
    short = parse_values(HAND_BODYSTRUCTURE.replace(
        b'6 NIL ("attachment" ("filename" "r.pdf")) NIL NIL)',
        b'6 NIL ("attachment" ("filename" "r.pdf")))'))[0]
    assert norm_body(short) == norm_body(want)
    wrong = parse_values(HAND_BODYSTRUCTURE.replace(b" 91 ", b" 92 "))[0]
    assert body_diff(norm_body(want), norm_body(wrong))
    wrong = parse_values(HAND_BODYSTRUCTURE.replace(b'"attachment"',
                                                    b'"inline"'))[0]
    assert body_diff(norm_body(want), norm_body(wrong))


def test_model_sections_by_hand():
    p = Part(HAND)
    assert p.section("1") == b"caf=C3=A9\r\n"
    assert p.section("1.MIME") == crlf(
        "Content-Type: text/plain; charset=UTF-8\n"
        "Content-Transfer-Encoding: quoted-printable\n\n")
    assert p.binary("1") == "caf\u00e9\r\n".encode()
    assert p.section("2") == b"AAAA\r\n" and p.binary("2") == b"\0\0\0"
    assert p.section("3.HEADER") == crlf(
        "From: \"In Ner\" <in@x.example>\nSubject: inner\n"
        "Date: Thu, 1 Jan 2004 00:00:00 +0000\n\n")
    assert p.section("3.TEXT") == b"hi\r\n" == p.section("3.1")
    assert p.section("3.HEADER.FIELDS (date)") == crlf(
        "Date: Thu, 1 Jan 2004 00:00:00 +0000\n\n")
    assert p.section("HEADER.FIELDS (Subject X-None)") == \
        b"Subject: hand\r\n\r\n"
    assert p.section("HEADER.FIELDS.NOT (Subject MIME-Version From)") == \
        b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
    assert p.section("TEXT").startswith(b"--XX\r\n") and \
        p.section("TEXT").endswith(b"--XX--\r\n")
    assert p.section("") == HAND
    assert [n for n, _, _ in p.part_numbers()] == ["1", "2", "3", "3.1"]


def test_model_envelope_groups_and_encoded_words():
    raw = [m for n, m in corpus("MK") if n == "rfc2047"][0]
    env = Part(raw).envelope()
    assert env[2] == [[b"=?ISO-8859-1?Q?Andr=E9?= Pirard", None, b"PIRARD",
                       b"vm1.ulg.ac.be.example"]]
    assert env[3] == [[b"Secretary", None, b"secretary", b"example.org"]]
    assert env[4] == [[None, None, b"replies", b"example.org"]]
    assert env[5] == [[None, None, b"Team", None],
                      [None, None, b"anna", b"example.org"],
                      [b"Ben B.", None, b"ben", b"example.org"],
                      [None, None, None, None],
                      [None, None, b"solo", b"example.org"]]
    assert env[6] == [[None, None, b"undisclosed-recipients", None],
                      [None, None, None, None]]
    assert env[1] == b"=?UTF-8?B?w6TDtsO8IEdyw7zDn2U=?= MK"
    nodate = Part([m for n, m in corpus("MK")
                   if n == "nodate-nosubject"][0]).envelope()
    assert nodate[0] is None and nodate[1] is None and nodate[9] is None
    assert nodate[3] == nodate[4] == nodate[2]


# ================================================================ server

N_SMTP = 2


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """The node, the corpus in alice's "Corpus" mailbox (UIDs in corpus
    order), two messages delivered to her INBOX over SMTP, and six
    copies of a small message in "SeenTest"."""
    node = start_imap_node(tmp_path_factory.mktemp("imapfetch"))
    mk = "MK" + uuid.uuid4().hex
    try:
        msgs = corpus(mk)
        c = connect(node, ALICE)
        c.ok("CREATE Corpus")
        for _, raw in msgs:
            c.ok("APPEND Corpus ", Lit(raw))
        c.ok("CREATE SeenTest")
        for i in range(6):
            c.ok("APPEND SeenTest ", Lit(small_message(i, mk)))
        c.select("Corpus")
        r = c.fetch("1:*", "(UID)")
        uids = [a["UID"] for _, a in sorted(r.fetches())]
        assert len(uids) == len(msgs), r
        sent = submitted(mk, N_SMTP)
        s = submission(node, BOB)
        try:
            for m in sent:
                code, text = send_data(s, BOB, [ALICE], m)
                assert code == 250, (code, text)
        finally:
            s.quit()
        c.select("INBOX")

        def delivered():
            c.ok("NOOP")
            r = c.cmd("FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            got = {}
            for _, a in r.fetches():
                for i in range(N_SMTP):
                    if ("delivered %d %s" % (i, mk)).encode() in \
                            a.get("BODY[HEADER.FIELDS (SUBJECT)]", b""):
                        got[i] = a["UID"]
            return got if len(got) == N_SMTP else None
        got = wait_until(delivered, 30, 0.2, "SMTP delivery to INBOX")
        c.logout()
    except BaseException:
        node.stop_all()
        raise
    yield {"node": node, "mk": mk, "msgs": msgs, "uids": uids,
           "sent": sent, "smtp_uids": [got[i] for i in range(N_SMTP)]}
    finish(node)


def part_items(p):
    """FETCH item groups for a message model: (name, [items])."""
    size = len(p.raw)
    whole = ["BODY.PEEK[]", "BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]",
             "BODY.PEEK[HEADER.FIELDS (Subject From X-Not-There)]",
             "BODY.PEEK[HEADER.FIELDS.NOT (Subject From Received)]",
             "RFC822.HEADER",
             "BODY.PEEK[]<0.10>", "BODY.PEEK[]<7.100>",
             "BODY.PEEK[TEXT]<3.17>", "BODY.PEEK[]<%d.10>" % (size - 3),
             "BODY.PEEK[]<%d.5>" % (size + 10), "BODY.PEEK[1]<2.5>"]
    parts, binary = [], []
    for num, part, kind in p.part_numbers():
        parts.append("BODY.PEEK[%s]" % num)
        if kind == "part":
            parts.append("BODY.PEEK[%s.MIME]" % num)
            if part.enclosed is not None:
                parts += ["BODY.PEEK[%s.HEADER]" % num,
                          "BODY.PEEK[%s.TEXT]" % num,
                          "BODY.PEEK[%s.HEADER.FIELDS (SUBJECT)]" % num]
        if part.children is None and part.enclosed is None:
            binary += ["BINARY.PEEK[%s]" % num, "BINARY.SIZE[%s]" % num]
    return [("structure", ["UID", "FLAGS", "RFC822.SIZE", "ENVELOPE",
                           "BODYSTRUCTURE", "BODY"]),
            ("whole", whole), ("parts", parts), ("binary", binary)]


def expected(p, item):
    """The model's value of one FETCH item."""
    k = fetch_key(item)
    if k == "RFC822.SIZE":
        return len(p.raw)
    if k == "RFC822.HEADER":
        return p.header
    import re
    m = re.match(r"^(BODY|BINARY)(\.PEEK|\.SIZE)?\[(.*)\](?:<(\d+)\.(\d+)>)?$",
                 k)
    assert m, item
    kind, mod, spec, start, ln = m.groups()
    if kind == "BINARY":
        data = p.binary(spec)
        return len(data) if mod == ".SIZE" else data
    data = p.section(spec)
    if start is not None:
        data = data[int(start):int(start) + int(ln)]
    return data


def check_message(c, uid, p, name, problems):
    """FETCH every item of the model for one message; append the
    differences to problems."""
    for group, items in part_items(p):
        if not items:
            continue
        r = c.cmd("UID FETCH %d (%s)" % (uid, " ".join(items)))
        if r.status != "OK":
            problems.append("%s %s: %r" % (name, group, r))
            continue
        got = r.by_uid().get(uid)
        if got is None:
            problems.append("%s %s: no FETCH for UID %d: %r" % (
                name, group, uid, r))
            continue
        for item in items:
            key = response_key(item)
            if key == "UID":
                continue
            if key not in got:
                problems.append("%s: no %s in the response (keys %s)" % (
                    name, key, sorted(got)))
                continue
            v = got[key]
            if key == "FLAGS":
                if "\\SEEN" in flagset(v):
                    problems.append("%s: \\Seen set before any non-PEEK "
                                    "fetch: %r" % (name, v))
                continue
            if key == "ENVELOPE":
                d = body_diff(norm_envelope(p.envelope()), norm_envelope(v),
                              "ENVELOPE")
            elif key == "BODYSTRUCTURE":
                d = body_diff(norm_body(p.bodystructure()), norm_body(v),
                              "BODYSTRUCTURE")
            elif key == "BODY":
                d = body_diff(norm_body(p.bodystructure(False), False),
                              norm_body(v, False), "BODY")
            else:
                want = expected(p, item)
                if v is None and want == b"":
                    v = b""       # NIL for an empty partial is no harm
                d = [] if v == want else ["%s: got %r, want %r" % (
                    key, v if not isinstance(v, bytes) else v[:300],
                    want if not isinstance(want, bytes) else want[:300])]
            problems += ["%s (UID %d) %s" % (name, uid, x) for x in d]


@pytest.mark.parametrize("mode", ["imaps", "starttls"])
def test_corpus_fetch_matches_model(fx, mode):
    c = connect(fx["node"], ALICE, mode=mode)
    try:
        r = c.select("Corpus")
        assert r.code_name in ("READ-WRITE", None), r
        problems = []
        for (name, raw), uid in zip(fx["msgs"], fx["uids"]):
            check_message(c, uid, Part(raw), name, problems)
        r = c.fetch("1:*", "(UID FLAGS)")
        for _, a in r.fetches():
            if "\\SEEN" in flagset(a["FLAGS"]):
                problems.append("UID %d: \\Seen after PEEK fetches only: %r"
                                % (a["UID"], a["FLAGS"]))
        assert not problems, "\n".join(problems[:60])
    finally:
        c.logout()


def test_smtp_delivered_fetch_matches_model(fx):
    """The delivered messages: BODY[] is the sent message behind the
    headers mailsrv adds (Return-Path, then Received); every item then
    matches the model of the stored bytes."""
    c = connect(fx["node"], ALICE)
    try:
        c.select("INBOX")
        problems = []
        for i, (uid, sent) in enumerate(zip(fx["smtp_uids"], fx["sent"])):
            r = c.fetch(str(uid), "(BODY.PEEK[])", uid=True)
            stored = r.by_uid()[uid]["BODY[]"]
            assert stored.endswith(sent), (stored[:500], sent[:200])
            added = stored[:len(stored) - len(sent)]
            assert without_return_path(added, BOB).startswith(
                b"Received: "), added
            assert added.endswith(b"\r\n") and b"\r\n\r\n" not in added, \
                added
            check_message(c, uid, Part(stored), "smtp%d" % i, problems)
        assert not problems, "\n".join(problems[:60])
    finally:
        c.logout()


def seen_of(c, uid):
    r = c.fetch(str(uid), "(FLAGS)", uid=True)
    return "\\SEEN" in flagset(r.by_uid()[uid]["FLAGS"])


def fetch_sets_seen(c, uid, item, want_key, want):
    """UID FETCH uid (item): returns (value, flags in the responses of
    this command, \\Seen afterwards)."""
    r = c.fetch(str(uid), "(%s)" % item, uid=True)
    got = r.by_uid()[uid]
    assert got.get(want_key) == want, (item, got.get(want_key), want)
    flags_seen = [flagset(a["FLAGS"]) for _, a in r.fetches() if "FLAGS" in a]
    return flags_seen, seen_of(c, uid)


def test_peek_keeps_and_body_sets_seen(fx):
    c = connect(fx["node"], ALICE)
    try:
        c.select("SeenTest")
        r = c.fetch("1:*", "(UID BODY.PEEK[])")
        msgs = {a["UID"]: a["BODY[]"] for _, a in r.fetches()}
        u = sorted(msgs)
        assert len(u) == 6, msgs
        for uid in u:
            assert not seen_of(c, uid), "PEEK set \\Seen on UID %d" % uid
        header, text = msgs[u[0]].split(b"\r\n\r\n", 1)
        header += b"\r\n\r\n"
        cases = [
            (u[0], "BODY.PEEK[TEXT]", "BODY[TEXT]", text, False),
            (u[0], "RFC822.HEADER", "RFC822.HEADER", header, False),
            (u[0], "BINARY.PEEK[1]", "BINARY[1]", text, False),
            (u[0], "BODY[]", "BODY[]", msgs[u[0]], True),
            (u[1], "BODY[TEXT]", "BODY[TEXT]", text, True),
            (u[2], "RFC822.TEXT", "RFC822.TEXT", text, True),
            (u[3], "RFC822", "RFC822", msgs[u[3]], True),
            (u[4], "BINARY[1]", "BINARY[1]", text, True),
        ]
        for uid, item, key, want, sets in cases:
            text_u = msgs[uid].split(b"\r\n\r\n", 1)[1]
            if key in ("BODY[TEXT]", "RFC822.TEXT", "BINARY[1]"):
                want = text_u
            flags, seen = fetch_sets_seen(c, uid, item, key, want)
            assert seen == sets, (item, uid, seen)
            if sets:
                # RFC 3501 6.4.5: the changed flags SHOULD come with the
                # FETCH (Dovecot sends them)
                assert any("\\SEEN" in f for f in flags), (item, flags)
    finally:
        c.logout()


def test_examine_fetch_body_does_not_set_seen(fx):
    c = connect(fx["node"], ALICE)
    try:
        r = c.select("SeenTest", examine=True)
        assert r.code_name == "READ-ONLY", r
        r = c.fetch("6", "(UID BODY[] RFC822.TEXT)")
        (uid, a), = r.by_uid().items()
        assert a["BODY[]"].endswith(a["RFC822.TEXT"]), a
        assert not any("\\SEEN" in flagset(x.get("FLAGS"))
                       for _, x in r.fetches()), r
        c.ok("CLOSE")
        c.select("SeenTest")
        assert not seen_of(c, uid)
    finally:
        c.logout()


def test_fetch_body_of_missing_part_is_refused_or_empty(fx):
    """A part number that does not exist: Dovecot answers with NIL or an
    empty string (RFC 3501 leaves it open); never another part's data,
    and the session goes on."""
    c = connect(fx["node"], ALICE)
    try:
        c.select("Corpus")
        uid = fx["uids"][0]
        r = c.cmd("UID FETCH %d (BODY.PEEK[9.9])" % uid)
        if r.status == "OK":
            v = r.by_uid()[uid].get("BODY[9.9]")
            assert v in (None, b""), r
        else:
            assert r.status in ("NO", "BAD"), r
        c.ok("NOOP")
    finally:
        c.logout()


def test_zz_no_plaintext_at_rest(fx):
    """After every other test of this file: the corpus marker (in each
    Subject and text body) is nowhere in the node's data directory, the
    logs included."""
    node = fx["node"]
    c = connect(node, ALICE)
    try:
        c.select("Corpus")
        r = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert fx["mk"].encode() in r.fetches()[0][1][
            "BODY[HEADER.FIELDS (SUBJECT)]"]
    finally:
        c.logout()
    found = grep_tree(node.dir, [fx["mk"].encode()])
    assert found == [], "marker %s readable in %s" % (fx["mk"], found)
