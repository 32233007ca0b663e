"""
SMTP bad input against a node with keyservice: bare CR/LF in DATA (and
an SMTP smuggling attempt), huge command lines, too many recipients,
messages over SIZE, commands out of order, pipelining when it was not
negotiated, BDAT (CHUNKING).  After each case the server still serves
other clients, and nothing accepted earlier is lost (last test).

The node runs with [mailsrv] max_recipients = 5 and max_message_size =
10K to keep the limits cheap to reach.
"""
import smtplib
import uuid

import pytest

from smtp_util import (ALICE, BOB, CAROL, DAVE, FATIMA, HAMID, SOFIA, Raw,
                       Store, finish, make_message, queued_id, send_data,
                       smtp, start_mail_node, submission, without_return_path)

MAX_RCPTS = 5
MAX_SIZE = 10 * 1024
SENDER = "sender@example.org"

# (recipient, marker) of every message this module got a 250 for
ACCEPTED = []


@pytest.fixture(scope="module")
def mnode(tmp_path_factory):
    n = start_mail_node(tmp_path_factory.mktemp("smtpbad"), {
        "mailsrv": {"max_recipients": str(MAX_RCPTS),
                    "max_message_size": "10K"}})
    yield n
    finish(n)


@pytest.fixture(scope="module")
def store(mnode):
    return Store(mnode)


def marker():
    return "BAD" + uuid.uuid4().hex


def still_serves(node):
    """Another client gets a normal session and a message through."""
    mk = marker()
    s = smtp(node)
    try:
        code, text = send_data(s, SENDER, [BOB], make_message(mk))
        assert code == 250, text
        ACCEPTED.append((BOB, mk))
    finally:
        s.quit()
    return mk


def raw_tx(node, rcpts=(BOB,), ehlo=True):
    """A raw MX session in a transaction with rcpts."""
    r = Raw(node, "smtp")
    assert r.code()[0] == 220
    if ehlo:
        assert r.cmd("EHLO client.example.org")[0] == 250
    else:
        assert r.cmd("HELO client.example.org")[0] == 250
    assert r.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
    for rc in rcpts:
        code, line = r.cmd("RCPT TO:<%s>" % rc)
        assert code == 250, line
    return r


# ---------------------------------------------------------------- DATA

BAD_BODIES = {
    "bare-lf": b"Subject: %s\r\n\r\nline one\nline two\r\n",
    "bare-cr": b"Subject: %s\r\n\r\nline one\rline two\r\n",
    "bare-lf-header": b"Subject: %s\nX-A: b\r\n\r\nbody\r\n",
    # SMTP smuggling: a bare-LF "end of data" followed by a second
    # transaction; must be one (refused) message, never two
    "smuggle-lf-dot-lf": b"Subject: %s\r\n\r\nbody\n.\nMAIL FROM:<evil@"
                         b"example.org>\r\nRCPT TO:<bob@finance.amanat.test>"
                         b"\r\nDATA\r\nSubject: smuggled %s\r\n\r\nevil\r\n",
    "smuggle-crlf-dot-lf": b"Subject: %s\r\n\r\nbody\r\n.\nMAIL FROM:<evil"
                           b"@example.org>\r\nRCPT TO:<bob@finance.amanat."
                           b"test>\r\nDATA\r\nSubject: smuggled %s\r\n\r\n"
                           b"evil\r\n",
    "smuggle-cr-dot-cr": b"Subject: %s\r\n\r\nbody\r.\rMAIL FROM:<evil@"
                         b"example.org>\r\nRCPT TO:<bob@finance.amanat.test>"
                         b"\r\nDATA\r\nSubject: smuggled %s\r\n\r\nevil\r\n",
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bare_cr_lf_in_data_554_not_delivered(mnode, store, case):
    mk = marker()
    body = BAD_BODIES[case].replace(b"%s", mk.encode())
    after = store.last_uid(BOB)
    r = raw_tx(mnode)
    try:
        code, line = r.cmd("DATA")
        assert code == 354, line
        r.send(body + b".\r\n")
        code, line = r.code()
        assert code == 554 and line.startswith(b"554 5.6.0 "), line
        # exactly one reply for the whole thing; the session goes on
        assert r.cmd("NOOP")[0] == 250
        # the same session can send a good message afterwards
        good = marker()
        assert r.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
        assert r.cmd("RCPT TO:<%s>" % BOB)[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(make_message(good) + b".\r\n")
        code, line = r.code()
        assert code == 250, line
        ACCEPTED.append((BOB, good))
        assert r.cmd("QUIT")[0] == 221
    finally:
        r.close()
    store.wait_for(BOB, good.encode(), after)
    assert store.find(BOB, mk.encode(), after) == [], \
        "a refused message was delivered"


def test_data_line_over_64k_554(mnode, store):
    mk = marker()
    after = store.last_uid(BOB)
    r = raw_tx(mnode)
    try:
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: " + mk.encode() + b"\r\n\r\n" + b"x" * 70000 +
               b"\r\n.\r\n")
        code, line = r.code()
        assert code in (552, 554), line
        assert r.cmd("NOOP")[0] == 250
    finally:
        r.close()
    still_serves(mnode)
    assert store.find(BOB, mk.encode(), after) == []


# ---------------------------------------------------------------- lines

@pytest.mark.parametrize("state", ["helo", "mail"])
def test_100k_command_line_500(mnode, state):
    """A 100 KB command line: one 500, then the session goes on (or
    closes cleanly with a 4xx/5xx)."""
    r = Raw(mnode, "smtp")
    try:
        assert r.code()[0] == 220
        assert r.cmd("EHLO client.example.org")[0] == 250
        if state == "mail":
            assert r.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
        r.send(b"RCPT TO:<" + b"x" * (100 * 1024) + b"@example.org>\r\n")
        code, line = r.code()
        assert code == 500, line
        code, line = r.cmd("NOOP")
        assert code == 250, line
        if state == "mail":   # the transaction survived
            assert r.cmd("RCPT TO:<%s>" % BOB)[0] == 250
            assert r.cmd("RSET")[0] == 250
    finally:
        r.close()
    still_serves(mnode)


def test_100k_auth_line_on_mx(mnode):
    """AUTH lines may be longer than 512 bytes (SASL), but not 100 KB;
    MX has no AUTH anyway."""
    r = Raw(mnode, "smtp")
    try:
        assert r.code()[0] == 220
        assert r.cmd("EHLO client.example.org")[0] == 250
        r.send(b"AUTH PLAIN " + b"A" * (100 * 1024) + b"\r\n")
        code, line = r.code()
        assert code == 500, line
        assert r.cmd("AUTH PLAIN " + "A" * 2000)[0] == 503
        assert r.cmd("NOOP")[0] == 250
    finally:
        r.close()


# ---------------------------------------------------------------- RCPT

def test_recipient_limit_and_10000_recipients(mnode, store):
    """max_recipients (5) are accepted, the 6th and every further one of
    a 10,000-recipient transaction get 452 4.5.3; the message goes to
    the first five only."""
    first = [BOB, CAROL, DAVE, FATIMA, SOFIA]
    assert len(first) == MAX_RCPTS
    mk = marker()
    afters = {a: store.last_uid(a) for a in first + [HAMID]}
    r = raw_tx(mnode, rcpts=first)
    try:
        code, line = r.cmd("RCPT TO:<%s>" % HAMID)      # limit + 1
        assert code == 452 and line.startswith(b"452 4.5.3 "), line
        n = 10000 - MAX_RCPTS - 1
        r.send(b"".join(b"RCPT TO:<u%d@finance.amanat.test>\r\n" % i
                        for i in range(n)))
        codes = {}
        for _ in range(n):
            code, line = r.code()
            codes[code] = codes.get(code, 0) + 1
        assert codes == {452: n}, codes
        assert r.cmd("DATA")[0] == 354
        r.send(make_message(mk) + b".\r\n")
        code, line = r.code()
        assert code == 250, line
        assert r.cmd("QUIT")[0] == 221
    finally:
        r.close()
    for a in first:
        ACCEPTED.append((a, mk))
        (_, data), = store.wait_for(a, mk.encode(), afters[a])
        assert b"\tfor <multiple>; " in data
    assert store.find(HAMID, mk.encode(), afters[HAMID]) == []


# ---------------------------------------------------------------- SIZE

def test_ehlo_advertises_size_limit(mnode):
    s = smtp(mnode)
    try:
        assert s.esmtp_features["size"].strip() == str(MAX_SIZE)
    finally:
        s.quit()


@pytest.mark.parametrize("size,code", [(20000, 552), (MAX_SIZE + 1, 552),
                                       (MAX_SIZE, 250), (1, 250)])
def test_mail_size_parameter(mnode, size, code):
    s = smtp(mnode)
    try:
        got, msg = s.docmd("MAIL FROM:<%s> SIZE=%d" % (SENDER, size))
        assert got == code, msg
        if code == 552:
            assert msg.startswith(b"5.3.4"), msg
        assert s.noop()[0] == 250
    finally:
        s.quit()


def sized_message(mk, size):
    """A message of exactly size bytes (CRLF lines, no leading dots)."""
    head = b"Subject: " + mk.encode() + b"\r\n\r\n"
    n = size - len(head)
    line = b"y" * 98 + b"\r\n"
    body = line * (n // len(line))
    rest = n - len(body)
    if rest:
        assert rest >= 2
        body += b"z" * (rest - 2) + b"\r\n"
    msg = head + body
    assert len(msg) == size
    return msg


@pytest.mark.parametrize("size", [MAX_SIZE, MAX_SIZE + 1])
def test_data_size_limit(mnode, store, size):
    """DATA of exactly max_message_size bytes is accepted and stored byte
    for byte; one byte more is 552 and not delivered."""
    mk = marker()
    msg = sized_message(mk, size)
    after = store.last_uid(BOB)
    s = smtp(mnode)
    try:
        code, text = send_data(s, SENDER, [BOB], msg)
        if size > MAX_SIZE:
            assert code == 552, text
            assert text.startswith(b"5.3.4"), text
            assert s.noop()[0] == 250
        else:
            assert code == 250, text
            ACCEPTED.append((BOB, mk))
    finally:
        s.quit()
    if size > MAX_SIZE:
        still_serves(mnode)
        assert store.find(BOB, mk.encode(), after) == []
    else:
        (_, data), = store.wait_for(BOB, mk.encode(), after)
        assert data.endswith(msg)
        assert without_return_path(data, SENDER).startswith(b"Received: ")


@pytest.mark.parametrize("last", [True, False])
def test_bdat_over_size_552(mnode, store, last):
    mk = marker()
    chunk = sized_message(mk, MAX_SIZE + 1)
    after = store.last_uid(BOB)
    r = raw_tx(mnode)
    try:
        r.send(b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") +
               chunk)
        code, line = r.code()
        assert code == 552, line
        # the transaction is over: a further chunk is discarded, 503
        r.send(b"BDAT 1 LAST\r\nx")
        code, line = r.code()
        assert code == 503, line
        assert r.cmd("NOOP")[0] == 250
    finally:
        r.close()
    still_serves(mnode)
    assert store.find(BOB, mk.encode(), after) == []


# ---------------------------------------------------------------- order

def test_commands_out_of_order_503(mnode):
    r = Raw(mnode, "smtp")
    try:
        assert r.code()[0] == 220
        code, line = r.cmd("MAIL FROM:<%s>" % SENDER)   # before EHLO
        assert code == 503, line
        assert r.cmd("EHLO client.example.org")[0] == 250
        code, line = r.cmd("RCPT TO:<%s>" % BOB)        # before MAIL
        assert code == 503 and line.startswith(b"503 5.5.1 "), line
        code, line = r.cmd("DATA")                      # before MAIL
        assert code == 503 and line.startswith(b"503 5.5.1 "), line
        assert r.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
        code, line = r.cmd("MAIL FROM:<%s>" % SENDER)   # nested
        assert code == 503, line
        # DATA before any RCPT: RFC 5321 3.3 allows 503 or 554
        code, line = r.cmd("DATA")
        assert code in (503, 554) and line[4:10] == b"5.5.1 ", line
        assert r.cmd("RCPT TO:<%s>" % BOB)[0] == 250
        assert r.cmd("RSET")[0] == 250
        code, line = r.cmd("RCPT TO:<%s>" % BOB)        # after RSET
        assert code == 503, line
        assert r.cmd("NOOP")[0] == 250
    finally:
        r.close()


def test_data_after_bdat_503(mnode, store):
    r = raw_tx(mnode)
    try:
        r.send(b"BDAT 9\r\nSubject: ")
        assert r.code()[0] == 250
        code, line = r.cmd("DATA")
        assert code == 503, line
        r.send(b"BDAT 0 LAST\r\n")
        code, line = r.code()
        # the message "Subject: " has no header end: accepted as is or
        # refused, but the session stays in sync
        assert code in (250, 554), line
        assert r.cmd("NOOP")[0] == 250
    finally:
        r.close()


def test_pipelining_not_negotiated_554_and_close(mnode, store):
    """After HELO (no PIPELINING), MAIL and RCPT in one packet: 554 5.5.0
    and the connection closes; nothing is queued."""
    r = Raw(mnode, "smtp")
    try:
        assert r.code()[0] == 220
        assert r.cmd("HELO client.example.org")[0] == 250
        r.send(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n" % (SENDER.encode(),
                                                       BOB.encode()))
        data = r.rest()
        lines = data.split(b"\r\n")[:-1]
        assert lines and lines[-1].startswith(b"554 5.5.0 "), data
        assert not any(l.startswith(b"250 2.1.5") for l in lines), data
    finally:
        r.close()
    still_serves(mnode)


def test_helo_without_pipelining_one_at_a_time_works(mnode, store):
    """HELO and lock-step commands: a message goes through."""
    mk = marker()
    after = store.last_uid(BOB)
    r = raw_tx(mnode, ehlo=False)
    try:
        assert r.cmd("DATA")[0] == 354
        r.send(make_message(mk) + b".\r\n")
        code, line = r.code()
        assert code == 250, line
        ACCEPTED.append((BOB, mk))
    finally:
        r.close()
    (_, data), = store.wait_for(BOB, mk.encode(), after)
    assert b" with SMTP\r\n" in data


# ---------------------------------------------------------------- BDAT

def bdat(s, chunk, last=False):
    s.putcmd("BDAT", "%d%s" % (len(chunk), " LAST" if last else ""))
    s.send(chunk)
    return s.getreply()


@pytest.mark.parametrize("splits", [[40], [0], [1, 2, 3], [-1]])
def test_bdat_chunks_deliver(mnode, store, splits):
    """BDAT n ... BDAT m LAST (smtplib raw commands) delivers the
    concatenated chunks byte for byte (MX adds only Received)."""
    mk = marker()
    msg = make_message(mk, extra_lines=30)
    cuts = [c if c >= 0 else len(msg) + c for c in splits]
    chunks, prev = [], 0
    for c in cuts:
        chunks.append(msg[prev:c])
        prev = c
    chunks.append(msg[prev:])
    after = store.last_uid(BOB)
    s = smtp(mnode)
    try:
        assert s.has_extn("chunking")
        assert s.mail(SENDER)[0] == 250
        assert s.rcpt(BOB)[0] == 250
        for c in chunks[:-1]:
            code, text = bdat(s, c)
            assert code == 250, text
        code, text = bdat(s, chunks[-1], last=True)
        assert code == 250, text
        queued_id(text)
        ACCEPTED.append((BOB, mk))
    finally:
        s.quit()
    (_, data), = store.wait_for(BOB, mk.encode(), after)
    assert without_return_path(data, SENDER).startswith(b"Received: ") \
        and data.endswith(msg), data[:500]
    assert data.count(b"\r\nSubject: ") == 1


def test_bdat_submission_header_split_adds_msgid_once(mnode, store):
    """BDAT on submission, the blank line that ends the headers split
    across chunks: Date and Message-ID are added once, before the
    original headers, and the bytes are kept."""
    mk = marker()
    msg = make_message(mk)
    end = msg.index(b"\r\n\r\n")
    chunks = [msg[:end + 1], msg[end + 1:end + 3], msg[end + 3:]]
    after = store.last_uid(BOB)
    s = submission(mnode, ALICE)
    try:
        assert s.mail(ALICE)[0] == 250
        assert s.rcpt(BOB)[0] == 250
        for c in chunks[:-1]:
            assert bdat(s, c)[0] == 250
        code, text = bdat(s, chunks[-1], last=True)
        assert code == 250, text
        ACCEPTED.append((BOB, mk))
    finally:
        s.quit()
    (_, data), = store.wait_for(BOB, mk.encode(), after)
    assert data.endswith(msg), data[:600]
    added = data[:len(data) - len(msg)]
    assert added.count(b"\r\nDate: ") == 1, added
    assert added.count(b"\r\nMessage-ID: ") == 1, added


def test_bdat_without_rcpt_discarded_554(mnode):
    r = Raw(mnode, "smtp")
    try:
        assert r.code()[0] == 220
        assert r.cmd("EHLO client.example.org")[0] == 250
        assert r.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
        r.send(b"BDAT 5 LAST\r\nQUIT\r")    # "QUIT\r" is chunk data
        code, line = r.code()
        assert code in (503, 554), line
        assert r.cmd("NOOP")[0] == 250
    finally:
        r.close()


@pytest.mark.parametrize("setup", ["none", "mail"])
def test_bdat_zero_without_recipients_replies(mnode, setup):
    """BDAT 0 LAST without a transaction (or without a recipient) has no
    chunk to read: its 503/554 must come at once, not when the client
    sends something else."""
    r = Raw(mnode, "smtp", timeout=5)
    try:
        assert r.code()[0] == 220
        assert r.cmd("EHLO client.example.org")[0] == 250
        if setup == "mail":
            assert r.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
        r.send(b"BDAT 0 LAST\r\n")
        try:
            code, line = r.code()
        except OSError as e:
            pytest.fail("no reply to BDAT 0 LAST within 5s (%s)" % e)
        assert code in (503, 554), line
        assert r.cmd("NOOP")[0] == 250
    finally:
        r.close()


@pytest.mark.parametrize("arg", ["", "x", "-1", "10 MORE", "99999999999999"
                                 "99999999999"])
def test_bdat_bad_syntax_501(mnode, arg):
    r = raw_tx(mnode)
    try:
        code, line = r.cmd(("BDAT " + arg).rstrip())
        assert code == 501, line
        assert r.cmd("NOOP")[0] == 250
    finally:
        r.close()


# ---------------------------------------------------------------- end

def test_everything_accepted_is_delivered_once(mnode, store):
    """Every message of this module that got 250 is in its recipient's
    INBOX exactly once, in spite of the bad input in between."""
    assert len(ACCEPTED) > 10
    by_addr = {}
    for addr, mk in ACCEPTED:
        by_addr.setdefault(addr, []).append(mk)
    for addr, mks in by_addr.items():
        for mk in mks:
            store.wait_for(addr, mk.encode())
        msgs = [store.read(addr, m["uid"]) for m in store.list(addr)]
        for mk in mks:
            n = sum(1 for d in msgs if mk.encode() in d)
            assert n == 1, (addr, mk, n)
        assert not any(b"smuggled" in d for d in msgs)
