"""
Crash safety of the SMTP path: while 4 clients send 2,000 messages to a
local user over MX, mailsrv is killed with SIGKILL five times at random
moments and restarted.  Clients retry on connection errors and 4xx.  At
the end every message that got "250" is in the INBOX exactly once, no
message appears twice, every stored message reads back (authenticated)
with the exact body that was sent, and the queue is empty.

Each attempt has its own Message-ID (<dur.T.I.A.RUN@e2e.test>): an
attempt whose 250 was lost in a crash may legitimately be stored (the
client then sends a new attempt), but never twice.
"""
import os
import smtplib
import time
import uuid

import pytest

from crash_load import LoadClient, kill_during, new_progress
from smtp_util import (BOB, Store, finish, sha256, start_mail_node,
                       start_mailsrv)

THREADS = int(os.environ.get("AMANAT_DUR_THREADS", "4"))
PER_THREAD = int(os.environ.get("AMANAT_DUR_PER_THREAD", "500"))
KILLS = int(os.environ.get("AMANAT_DUR_KILLS", "5"))
SENDER = "load@example.org"
DEADLINE = 240.0    # seconds for the whole send phase (ASan is slow)


def body_for(msgid, t, i):
    lines = ["message %d of client %d, %s" % (i, t, msgid)]
    lines += ["filler %03d %s" % (k, "x" * ((t * 7 + i + k) % 60))
              for k in range(12)]
    return ("\r\n".join(lines) + "\r\n").encode()


def message(msgid, t, i):
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: durability %d/%d\r\n"
            "Message-ID: %s\r\n\r\n" % (SENDER, BOB, t, i, msgid)).encode()
    return head + body_for(msgid, t, i)


class Client(LoadClient):
    max_errors = 20

    def __init__(self, node, t, run, progress):
        super().__init__("client-%d" % t, PER_THREAD, progress)
        self.node, self.t, self.run_id = node, t, run
        self.ok = {}            # msgid -> expected body sha (got 250)
        self.unknown = {}       # msgid -> sha (no reply: maybe stored)
        self.refused = {}       # msgid -> reply (4xx after DATA)
        self.sent = {}          # every attempt: msgid -> sha
        self.reconnects = 0
        self.s = None

    def connect(self):
        while True:
            if time.monotonic() > self.progress["deadline"]:
                raise TimeoutError("send phase over its deadline")
            try:
                s = smtplib.SMTP("127.0.0.1", self.node.port("smtp"),
                                 timeout=20)
                code, msg = s.ehlo("load%d.example.org" % self.t)
                if code == 250:
                    self.s = s
                    return
                s.close()
            except (OSError, smtplib.SMTPException):
                pass
            self.reconnects += 1
            time.sleep(0.02)

    def drop(self):
        if self.s is not None:
            try:
                self.s.close()
            except OSError:
                pass
        self.s = None

    def attempt(self, i, a):
        """One try of message i; True when it got its 250."""
        msgid = "<dur.%d.%d.%d.%s@e2e.test>" % (self.t, i, a, self.run_id)
        msg = message(msgid, self.t, i)
        sha = sha256(body_for(msgid, self.t, i))
        if self.s is None:
            self.connect()
        s = self.s
        try:
            code, text = s.mail(SENDER)
            if code != 250:
                if 400 <= code < 500:       # not ready after a restart
                    s.rset()
                    time.sleep(0.02)
                    return False
                self.errors.append(("MAIL", code, text))
                return False
            code, text = s.rcpt(BOB)
            if code != 250:
                s.rset()
                if not 400 <= code < 500:
                    self.errors.append(("RCPT", code, text))
                time.sleep(0.02)
                return False
            self.sent[msgid] = sha
            code, text = s.data(msg)
        except (OSError, smtplib.SMTPException):
            if msgid in self.sent:
                self.unknown[msgid] = sha
            self.drop()
            return False
        if code == 250:
            self.ok[msgid] = sha
            return True
        if 400 <= code < 500:
            self.refused[msgid] = (code, text)
        else:
            self.errors.append(("DATA", code, text))
        return False

    def close(self):
        if self.s is not None:
            try:
                self.s.quit()
            except (OSError, smtplib.SMTPException):
                pass


@pytest.fixture
def dnode(tmp_path):
    n = start_mail_node(tmp_path, {"mailsrv": {"retry_min": "1s",
                                               "retry_max": "1s"}})
    yield n
    finish(n)


def test_sigkill_during_load_exactly_once(dnode):
    node = dnode
    store = Store(node)
    total = THREADS * PER_THREAD
    run_id = uuid.uuid4().hex[:8]
    progress = new_progress(DEADLINE)
    clients = [Client(node, t, run_id, progress) for t in range(THREADS)]
    t0 = time.monotonic()
    info = kill_during(node, clients, progress, total, KILLS, start_mailsrv)
    info += " send=%.1fs" % (time.monotonic() - t0)
    errors = [e for c in clients for e in c.errors]
    assert not errors, (info, errors[:10])
    assert not any(c.is_alive() for c in clients), info
    ok = {m: s for c in clients for m, s in c.ok.items()}
    unknown = {m: s for c in clients for m, s in c.unknown.items()}
    refused = {m: r for c in clients for m, r in c.refused.items()}
    sent = {m: s for c in clients for m, s in c.sent.items()}
    assert len(ok) == total, (info, len(ok))

    # every acknowledged message delivered (retries run every second)
    deadline = time.monotonic() + 90
    while True:
        listed = store.list(BOB)
        have = {m["msgid"] for m in listed}
        missing = [m for m in ok if m not in have]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    # a clean stop, then the queue (flock()ed while mailsrv runs)
    rc, problems = node.stop("mailsrv")
    assert not problems, problems
    queue = store.queue()
    listed = store.list(BOB)        # every message read and authenticated

    counts = {}
    for m in listed:
        counts[m["msgid"]] = counts.get(m["msgid"], 0) + 1
    dups = {m: n for m, n in counts.items() if n > 1}
    missing = sorted(m for m in ok if m not in counts)
    strangers = sorted(m for m in counts if m not in sent)
    bad_body = sorted(m["msgid"] for m in listed
                      if m["msgid"] in sent and
                      m["body_sha"] != sent[m["msgid"]])
    refused_stored = sorted(m for m in refused if m in counts)
    unknown_stored = sum(1 for m in unknown if m in counts)
    summary = ("%s; acked=%d stored=%d distinct=%d duplicates=%d "
               "(extra copies %d) missing=%d unknown-outcome=%d (stored %d) "
               "4xx-after-DATA=%d (stored %d) queue=%d reconnects=%d" % (
                   info, len(ok), len(listed), len(counts), len(dups),
                   sum(dups.values()) - len(dups), len(missing),
                   len(unknown), unknown_stored, len(refused),
                   len(refused_stored), len(queue),
                   sum(c.reconnects for c in clients)))
    print(summary)
    assert not missing, (summary, missing[:5])
    assert not dups, (summary, sorted(dups.items())[:5])
    assert not strangers, (summary, strangers[:5])
    assert not bad_body, (summary, bad_body[:5])
    assert not refused_stored, (summary, refused_stored[:5])
    assert queue == [], (summary, queue[:3])
    qdir = os.path.join(node.dir, "mailsrv", "queue")
    for sub in ("msg", "tmp"):
        left = os.listdir(os.path.join(qdir, sub))
        assert left == [], (sub, left[:5])
    corrupt = os.path.join(qdir, "corrupt")
    assert not os.path.isdir(corrupt) or os.listdir(corrupt) == [], \
        os.listdir(corrupt)
