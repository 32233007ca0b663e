"""
Crash safety of IMAP writes ("OK APPEND" means on disk): while two
imaplib clients APPEND messages, mailsrv is killed with SIGKILL three
times at random moments and restarted; the clients reconnect.  Then a
STORE and a UID EXPUNGE, each answered OK, are followed at once by
another SIGKILL.  After the last restart every APPEND that got OK is in
the mailbox exactly once with the exact bytes sent (read back through
the store, authenticated), an APPEND whose answer was lost is there at
most once, the flags that were set are still set, and the expunged
messages are gone.
"""
import imaplib
import ssl
import time
import uuid

import pytest

from crash_load import LoadClient, kill_during, new_progress
from imap_util import ALICE, pw, start_imap_node
from smtp_util import Store, finish, sha256, start_mailsrv

THREADS = 2
PER_THREAD = 150
KILLS = 3
BOX = "Durable"
DEADLINE = 240.0    # seconds for the append phase (ASan is slow)


def message(msgid, t, i):
    body = ("append %d of client %d, %s\r\n" % (i, t, msgid) +
            "".join("filler %03d %s\r\n" % (k, "y" * ((t * 5 + i + k) % 70))
                    for k in range(10))).encode()
    head = ("From: <%s>\r\nSubject: durable %d/%d\r\nMessage-ID: %s\r\n"
            "\r\n" % (ALICE, t, i, msgid)).encode()
    return head + body, sha256(body)


def imaps(node):
    c = imaplib.IMAP4_SSL("127.0.0.1", node.port("imaps"),
                          ssl_context=node.ssl_context(), timeout=20)
    c.login(ALICE, pw(node, ALICE))
    return c


class Appender(LoadClient):
    def __init__(self, node, t, run, progress):
        super().__init__("appender-%d" % t, PER_THREAD, progress)
        self.node, self.t, self.run_id = node, t, run
        self.ok = {}        # msgid -> body sha (tagged OK)
        self.unknown = {}   # msgid -> sha (no answer: maybe stored)
        self.c = None

    def connect(self):
        while self.c is None:
            if time.monotonic() > self.progress["deadline"]:
                raise TimeoutError("append phase over its deadline")
            try:
                self.c = imaps(self.node)
            except (OSError, ssl.SSLError, imaplib.IMAP4.error):
                time.sleep(0.05)

    def attempt(self, i, a):
        msgid = "<imapdur.%d.%d.%d.%s@e2e.test>" % (self.t, i, a,
                                                    self.run_id)
        msg, sha = message(msgid, self.t, i)
        self.connect()
        try:
            typ, data = self.c.append(BOX, None, None, msg)
        except (OSError, ssl.SSLError, imaplib.IMAP4.abort):
            self.unknown[msgid] = sha
            self.c = None
            return False
        if typ == "OK":
            self.ok[msgid] = sha
            return True
        # NO (say, the store not ready after a restart): not stored
        if typ != "NO":
            self.errors.append((msgid, typ, data))
        time.sleep(0.05)
        return False

    def close(self):
        if self.c is not None:
            try:
                self.c.logout()
            except (OSError, ssl.SSLError, imaplib.IMAP4.error):
                pass


@pytest.fixture
def dnode(tmp_path):
    n = start_imap_node(tmp_path)
    c = imaps(n)
    try:
        assert c.create(BOX)[0] == "OK"
    finally:
        c.logout()
    yield n
    finish(n)


def uids_and_flags(c):
    typ, data = c.uid("FETCH", "1:*", "(FLAGS)")
    assert typ == "OK", data
    out = {}
    for d in data:
        if d is None:
            continue
        s = d.decode() if isinstance(d, bytes) else d[0].decode()
        uid = int(s.split("UID ")[1].split()[0].rstrip(")"))
        out[uid] = s.split("FLAGS (")[1].split(")")[0].split()
    return out


def test_sigkill_during_appends_and_after_store_expunge(dnode):
    node = dnode
    store = Store(node)
    total = THREADS * PER_THREAD
    run_id = uuid.uuid4().hex[:8]
    progress = new_progress(DEADLINE)
    clients = [Appender(node, t, run_id, progress) for t in range(THREADS)]
    info = kill_during(node, clients, progress, total, KILLS, start_mailsrv)
    errors = [e for c in clients for e in c.errors]
    assert not errors, (info, errors[:10])
    assert not any(c.is_alive() for c in clients), info
    ok = {m: s for c in clients for m, s in c.ok.items()}
    unknown = {m: s for c in clients for m, s in c.unknown.items()}
    assert len(ok) == total, (info, len(ok))

    # a STORE and an EXPUNGE, each acknowledged, then SIGKILL at once
    listed = store.list(ALICE, BOX)
    by_msgid = {m["msgid"]: m["uid"] for m in listed}
    acked_uids = sorted(by_msgid[m] for m in ok)
    flagged = acked_uids[0:40:2]
    expunged = acked_uids[1:40:2]
    c = imaps(node)
    assert c.select(BOX)[0] == "OK"
    typ, data = c.uid("STORE", ",".join(map(str, flagged)), "+FLAGS",
                      "(\\Flagged $Durable)")
    assert typ == "OK", data
    assert node.kill9("mailsrv") == -9
    start_mailsrv(node)
    c = imaps(node)
    assert c.select(BOX)[0] == "OK"
    typ, data = c.uid("STORE", ",".join(map(str, expunged)), "+FLAGS",
                      "(\\Deleted)")
    assert typ == "OK", data
    typ, data = c.uid("EXPUNGE", ",".join(map(str, expunged)))
    assert typ == "OK", data
    assert node.kill9("mailsrv") == -9
    start_mailsrv(node)

    c = imaps(node)
    try:
        assert c.select(BOX)[0] == "OK"
        flags = uids_and_flags(c)
    finally:
        c.logout()
    for u in flagged:
        assert "\\Flagged" in flags[u] and "$Durable" in flags[u], \
            (info, u, flags.get(u))
    assert not set(expunged) & set(flags), (info, sorted(flags)[:10])

    listed = store.list(ALICE, BOX)
    counts = {}
    for m in listed:
        counts[m["msgid"]] = counts.get(m["msgid"], 0) + 1
    gone = {m for m, u in by_msgid.items() if u in expunged}
    dups = {m: n for m, n in counts.items() if n > 1}
    missing = sorted(m for m in ok if m not in counts and m not in gone)
    strangers = sorted(m for m in counts if m not in ok and m not in unknown)
    bad = sorted(m["msgid"] for m in listed
                 if m["body_sha"] != ok.get(m["msgid"],
                                            unknown.get(m["msgid"])))
    summary = "%s; acked=%d unknown=%d stored=%d" % (
        info, len(ok), len(unknown), len(listed))
    print(summary)
    assert not missing, (summary, missing[:5])
    assert not dups, (summary, sorted(dups.items())[:5])
    assert not strangers, (summary, strangers[:5])
    assert not bad, (summary, bad[:5])
    assert set(flags) == {m["uid"] for m in listed}, summary
