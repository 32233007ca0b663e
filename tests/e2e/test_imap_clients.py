"""
Real IMAP clients against the server: curl (imaps:// and imap:// with
--ssl-reqd) and mbsync (isync 1.4) syncing a 1,000-message mailbox both
ways with a local Maildir.

mbsync checks a server certificate's names against its Host by DNS
name only (an IP address SAN is not looked at), and a bare Debian root
may have no /etc/hosts to resolve "localhost"; so its Host is 127.0.0.1
and its CertificateFile is the node's server certificate itself, which
isync trusts as an explicitly listed certificate (any other certificate
fails: the chain is not trusted and the name does not match).  Its protocol trace (-Dn) tells which commands each run
sent: the third run must send no APPEND, no STORE and fetch no message.
"""
import os
import random
import re
import shutil
import subprocess
import uuid

import pytest

from imap_util import (ALICE, BOB, DEFAULT_MAILBOXES, Lit, append_many,
                       connect, flagset, pw, small_message, start_imap_node,
                       status_items)
from smtp_util import finish

N_SYNC = 1000


@pytest.fixture(scope="module")
def cnode(tmp_path_factory):
    n = start_imap_node(tmp_path_factory.mktemp("imapclients"))
    yield n
    finish(n)


# ================================================================ curl

def curl(node, url, *args, user=ALICE, secret=None, timeout=60):
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed", pytrace=False)
    secret = pw(node, user) if secret is None else secret
    r = subprocess.run(["curl", "-sS", "--max-time", "30", "--cacert",
                        node.ca, "-u", "%s:%s" % (user, secret)] +
                       list(args) + [url], capture_output=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return r


@pytest.fixture(scope="module")
def curlbox(cnode):
    """alice's "CurlBox" with three messages: {uid: bytes}."""
    mk = uuid.uuid4().hex
    msgs = [small_message(i, mk, size=300 * (i + 1)) for i in range(3)]
    c = connect(cnode, ALICE)
    try:
        c.ok("CREATE CurlBox")
        for m in msgs:
            c.ok("APPEND CurlBox ", Lit(m))
        c.select("CurlBox")
        r = c.fetch("1:*", "(UID)")
        uids = [a["UID"] for _, a in sorted(r.fetches())]
    finally:
        c.logout()
    return dict(zip(uids, msgs))


def test_curl_lists_mailboxes_imaps(cnode, curlbox):
    r = curl(cnode, "imaps://127.0.0.1:%d/" % cnode.port("imaps"))
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, (r.returncode, out, r.stderr)
    names = set()
    for line in out.splitlines():
        m = re.match(r'\* LIST \(([^)]*)\) (?:"/"|NIL) "?([^"]*)"?\s*$',
                     line)
        if m:
            names.add(m.group(2))
    for want in DEFAULT_MAILBOXES + ["CurlBox"]:
        assert want in names, (want, out)


def test_curl_fetches_message_by_uid_imaps(cnode, curlbox):
    for uid, msg in curlbox.items():
        r = curl(cnode, "imaps://127.0.0.1:%d/CurlBox;UID=%d" % (
            cnode.port("imaps"), uid))
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert r.stdout == msg, (uid, r.stdout[:300], msg[:300])


def test_curl_starttls_fetch_and_section(cnode, curlbox):
    uid, msg = sorted(curlbox.items())[1]
    r = curl(cnode, "imap://127.0.0.1:%d/CurlBox;UID=%d" % (
        cnode.port("imap"), uid), "--ssl-reqd")
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert r.stdout == msg
    r = curl(cnode, "imap://127.0.0.1:%d/CurlBox;UID=%d;SECTION=TEXT" % (
        cnode.port("imap"), uid), "--ssl-reqd")
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert r.stdout == msg.split(b"\r\n\r\n", 1)[1]


def test_curl_wrong_password_is_login_denied(cnode):
    r = curl(cnode, "imaps://127.0.0.1:%d/" % cnode.port("imaps"),
             secret="not-the-password")
    assert r.returncode == 67, (r.returncode, r.stdout, r.stderr)
    # bob's password does not open alice's mailboxes either
    r = curl(cnode, "imaps://127.0.0.1:%d/" % cnode.port("imaps"),
             secret=pw(cnode, BOB))
    assert r.returncode == 67, (r.returncode, r.stdout, r.stderr)


# ================================================================ mbsync

MAILDIR_FLAGS = {"S": "\\SEEN", "F": "\\FLAGGED", "R": "\\ANSWERED",
                 "T": "\\DELETED", "D": "\\DRAFT"}


class Sync:
    """An mbsync set-up in its own directory: config, Maildir, runs."""

    def __init__(self, node, d, box):
        self.node = node
        self.dir = str(d)
        self.box = box
        self.maildir = os.path.join(self.dir, "mail")
        os.makedirs(self.maildir, exist_ok=True)
        self.rc = os.path.join(self.dir, "mbsyncrc")
        with open(self.rc, "w") as f:
            f.write(
                "IMAPAccount amanat\n"
                "Host 127.0.0.1\n"
                "Port %d\n"
                "User %s\n"
                "Pass \"%s\"\n"
                "SSLType IMAPS\n"
                "CertificateFile %s\n"
                "\n"
                "IMAPStore remote\n"
                "Account amanat\n"
                "\n"
                "MaildirStore local\n"
                "Path %s/\n"
                "Inbox %s/INBOX\n"
                "SubFolders Verbatim\n"
                "\n"
                "Channel sync\n"
                "Far :remote:\n"
                "Near :local:\n"
                "Patterns %s\n"
                "Create Near\n"
                "Sync All\n"
                "Expunge None\n"
                "SyncState *\n" % (
                    node.port("imaps"), ALICE, pw(node, ALICE),
                    os.path.join(node.dir, "tls", "server.pem"),
                    self.maildir, self.maildir, box))
        self.runs = []

    def run(self):
        if shutil.which("mbsync") is None:
            pytest.fail("mbsync (isync) is not installed", pytrace=False)
        r = subprocess.run(["mbsync", "-V", "-Dn", "-c", self.rc, "sync"],
                           capture_output=True, timeout=600,
                           stdin=subprocess.DEVNULL)
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        self.runs.append(out)
        assert r.returncode == 0, "mbsync failed (rc=%d):\n%s" % (
            r.returncode, out[-6000:])
        return out

    def boxdir(self):
        return os.path.join(self.maildir, self.box)

    def files(self):
        """{path: (index from Message-ID, set of IMAP flags)}."""
        out = {}
        for sub in ("new", "cur"):
            d = os.path.join(self.boxdir(), sub)
            for name in os.listdir(d):
                p = os.path.join(d, name)
                with open(p, "rb") as f:
                    data = f.read()
                m = re.search(rb"^Message-ID: <(\d+)\.", data, re.M | re.I)
                assert m, (p, data[:300])
                flags = set()
                if ":2," in name:
                    flags = {MAILDIR_FLAGS[ch] for ch in
                             name.split(":2,", 1)[1] if ch in MAILDIR_FLAGS}
                out[p] = (int(m.group(1)), flags)
        return out

    def set_flags(self, path, add):
        """Add Maildir flag letters to a message (rename into cur/ with
        the flags sorted, as the Maildir spec wants)."""
        d, name = os.path.split(path)
        base, _, flags = name.partition(":2,")
        flags = "".join(sorted(set(flags) | set(add)))
        new = os.path.join(os.path.dirname(d), "cur", base + ":2," + flags)
        os.rename(path, new)
        return new


def client_commands(trace):
    """What a protocol trace shows of message transfers: APPENDs, STOREs
    and message fetches (counted over the whole trace)."""
    return {"append": len(re.findall(r"\bAPPEND\b", trace)),
            "store": len(re.findall(r"\bSTORE\b", trace)),
            "fetch_body": len(re.findall(
                r"BODY(?:\.PEEK)?\[\]|BINARY(?:\.PEEK)?\[\]|"
                r"\bRFC822(?![.\w])", trace))}


def imap_state(node, box):
    """{index: flags} of the IMAP mailbox, and its STATUS."""
    c = connect(node, ALICE)
    try:
        st = status_items(c.ok("STATUS %s (MESSAGES UIDNEXT UIDVALIDITY "
                               "HIGHESTMODSEQ)" % box))[box]
        c.select(box, examine=True)
        r = c.fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS "
                    "(MESSAGE-ID)])")
        out = {}
        for _, a in r.fetches():
            m = re.search(rb"<(\d+)\.", a["BODY[HEADER.FIELDS (MESSAGE-ID)]"])
            assert m, a
            out[int(m.group(1))] = flagset(a["FLAGS"]) - {"\\RECENT"}
        return out, st
    finally:
        c.logout()


def test_mbsync_two_way_sync_1000_messages(cnode, tmp_path):
    box = "Sync"
    mk = uuid.uuid4().hex
    msgs = {i: small_message(i, mk) for i in range(N_SYNC)}
    c = connect(cnode, ALICE)
    try:
        c.ok("CREATE " + box)
        append_many(c, box, [msgs[i] for i in range(N_SYNC)])
        st = status_items(c.ok("STATUS %s (MESSAGES)" % box))[box]
        assert st["MESSAGES"] == N_SYNC, st
    finally:
        c.logout()

    s = Sync(cnode, tmp_path, box)
    # ---- first run: everything comes down
    trace1 = s.run()
    assert client_commands(trace1)["fetch_body"] >= 1, trace1[-3000:]
    files = s.files()
    assert sorted(i for i, _ in files.values()) == list(range(N_SYNC))
    assert all(not fl for _, fl in files.values()), "flags from nowhere"
    for p, (i, _) in random.Random(1).sample(sorted(files.items()), 25):
        with open(p, "rb") as f:
            got = f.read()
        # mbsync stores Maildir messages with LF line ends, and may add
        # its X-TUID header (its own tracking of messages in flight)
        got = re.sub(rb"(?m)^X-TUID: [^\n]*\n", b"", got)
        assert got.replace(b"\r\n", b"\n") == \
            msgs[i].replace(b"\r\n", b"\n"), (p, got[:300])

    # ---- changes on both sides
    want = {i: set() for i in range(N_SYNC)}
    c = connect(cnode, ALICE)
    try:
        c.select(box)
        r = c.fetch("1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        uid_of = {}
        for _, a in r.fetches():
            i = int(re.search(rb"<(\d+)\.",
                              a["BODY[HEADER.FIELDS (MESSAGE-ID)]"]).group(1))
            uid_of[i] = a["UID"]
        for i in range(0, 50):
            want[i].add("\\SEEN")
        for i in range(50, 60):
            want[i].add("\\FLAGGED")
        c.ok("UID STORE %s +FLAGS.SILENT (\\Seen)" % ",".join(
            str(uid_of[i]) for i in range(0, 50)))
        c.ok("UID STORE %s +FLAGS.SILENT (\\Flagged)" % ",".join(
            str(uid_of[i]) for i in range(50, 60)))
    finally:
        c.logout()
    by_index = {i: p for p, (i, _) in s.files().items()}
    for i in range(100, 130):
        s.set_flags(by_index[i], "S")
        want[i].add("\\SEEN")
    for i in range(130, 140):
        s.set_flags(by_index[i], "FS")
        want[i] |= {"\\FLAGGED", "\\SEEN"}
    # and two new messages in the Maildir, to go up
    for i in (N_SYNC, N_SYNC + 1):
        msgs[i] = small_message(i, mk)
        name = "1700000000.e2e_%d.localhost" % i
        with open(os.path.join(s.boxdir(), "new", name), "wb") as f:
            f.write(msgs[i].replace(b"\r\n", b"\n"))
        want[i] = set()

    # ---- second run: both ways (the trace shows it: the regexes that
    # find nothing in the third run find these)
    trace2 = s.run()
    cc2 = client_commands(trace2)
    assert cc2["append"] >= 2 and cc2["store"] >= 1, (cc2, trace2[-3000:])
    imap, st2 = imap_state(cnode, box)
    local = {}
    for p, (i, fl) in s.files().items():
        assert i not in local, "index %d twice in the Maildir" % i
        local[i] = fl
    bad_imap = {i: (imap.get(i), w) for i, w in want.items()
                if imap.get(i) != w}
    bad_local = {i: (local.get(i), w) for i, w in want.items()
                 if local.get(i) != w}
    assert not bad_imap and not bad_local, (
        "IMAP side (got, want): %s\nMaildir side: %s\ntrace tail:\n%s" % (
            dict(list(bad_imap.items())[:10]),
            dict(list(bad_local.items())[:10]), trace2[-3000:]))
    assert st2["MESSAGES"] == N_SYNC + 2, st2

    # ---- third run: nothing to do
    before = sorted(s.files())
    trace3 = s.run()
    imap3, st3 = imap_state(cnode, box)
    assert client_commands(trace3) == {"append": 0, "store": 0,
                                       "fetch_body": 0}, trace3[-4000:]
    assert sorted(s.files()) == before, "Maildir changed in the third run"
    assert imap3 == imap
    for k in ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "HIGHESTMODSEQ"):
        assert st3[k] == st2[k], (k, st2, st3)
