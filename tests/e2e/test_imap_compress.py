"""
COMPRESS=DEFLATE (RFC 4978) over IMAPS: after login, "COMPRESS DEFLATE"
gets OK and both directions turn into raw deflate (the client here uses
zlib with wbits=-15 and a Z_SYNC_FLUSH after each command); SELECT,
FETCH of a 2 MB message (bytes and BODYSTRUCTURE checked against the
model) and APPEND of a 1 MB one run through it, and the server's side
is really compressed.  A second COMPRESS is refused (COMPRESSIONACTIVE)
and so is one before login.
"""
import random
import uuid

import pytest

from imap_util import (ALICE, Client, Lit, Part, b64lines, connect, crlf,
                       norm_body, sized_message, start_imap_node)
from smtp_util import finish


@pytest.fixture(scope="module")
def znode(tmp_path_factory):
    n = start_imap_node(tmp_path_factory.mktemp("imapzip"))
    yield n
    finish(n)


def big_message(mk):
    """~2 MB: compressible text and a base64 attachment of random
    bytes (which deflate cannot shrink much)."""
    text = "".join("line %06d of the big message %s, compressible\n" % (
        i, mk) for i in range(24000))
    blob = random.Random(7).randbytes(300 * 1024)
    return crlf(
        "From: Alice <%s>\nTo: Alice <%s>\nSubject: big %s\n"
        "Message-ID: <big-%s@e2e.test>\nMIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=BIG\n\n"
        "--BIG\nContent-Type: text/plain; charset=us-ascii\n\n"
        % (ALICE, ALICE, mk, mk) + text +
        "\n--BIG\nContent-Type: application/octet-stream\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-Disposition: attachment; filename=blob.bin\n\n") + \
        b64lines(blob) + crlf("\n--BIG--\n")


def test_compress_deflate_select_fetch_append(znode):
    mk = uuid.uuid4().hex
    big = big_message(mk)
    assert len(big) > 1500000
    box = "Big-" + mk[:8]
    c = connect(znode, ALICE)
    try:
        assert "COMPRESS=DEFLATE" in c.caps, c.caps
        c.ok("CREATE " + box)
        c.ok("APPEND %s " % box, Lit(big))
        r = c.compress()
        assert r.status == "OK", r
        start_in, start_out = c.wire_in, c.wire_out
        r = c.select(box)
        assert r.one("EXISTS").num == 1
        r = c.fetch("1", "(UID RFC822.SIZE BODYSTRUCTURE BODY.PEEK[])")
        (_, a), = r.fetches()
        assert a["RFC822.SIZE"] == len(big)
        assert a["BODY[]"] == big
        assert norm_body(a["BODYSTRUCTURE"]) == \
            norm_body(Part(big).bodystructure())
        # what came over the wire was compressed: far less than the
        # message (about a quarter of it is base64 of random bytes)
        got = c.wire_in - start_in
        assert got < len(big) * 0.6, (got, len(big))
        # and the upload direction: APPEND through the deflate stream
        up = sized_message(1024 * 1024, mk)
        r = c.ok("APPEND %s " % box, Lit(up, sync=False)
                 if "LITERAL+" in c.caps else Lit(up))
        assert c.wire_out - start_out < len(up) / 4, c.wire_out
        r = c.fetch("2", "(BODY.PEEK[] RFC822.SIZE)")
        (_, a), = r.fetches()
        assert a["BODY[]"] == up and a["RFC822.SIZE"] == len(up)
        # RFC 4978 3: a second COMPRESS is refused, the stream goes on
        r = c.cmd("COMPRESS DEFLATE")
        assert r.status == "NO", r
        assert r.code_name == "COMPRESSIONACTIVE", r
        c.ok("NOOP")
        r = c.fetch("1", "(BODY.PEEK[TEXT]<0.100>)")
        assert r.fetches()[0][1]["BODY[TEXT]<0>"] == \
            big.split(b"\r\n\r\n", 1)[1][:100]
    finally:
        c.logout()


def test_compress_before_login_refused(znode):
    c = Client(znode)
    try:
        r = c.cmd("COMPRESS DEFLATE")
        assert r.status in ("NO", "BAD"), r
        # still plain IMAP on this connection
        c.ok("NOOP")
        r = c.login(ALICE)
        assert r.status == "OK", r
    finally:
        c.logout()


def test_compress_unknown_mechanism_refused(znode):
    c = connect(znode, ALICE)
    try:
        r = c.cmd("COMPRESS LZMA")
        assert r.status in ("NO", "BAD"), r
        c.ok("NOOP")
        r = c.compress()
        assert r.status == "OK", r
        c.ok("NOOP")
    finally:
        c.logout()
