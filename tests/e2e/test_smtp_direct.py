"""
Direct delivery ([mailsrv] direct_delivery): a message whose recipients
are all local users, with their mailbox keys cached, is in their INBOXes
when the 250 comes ("Ok: delivered as ID") and never enters the queue;
anything else is queued ("Ok: queued as ID").  When one mailbox refuses
the message (over quota), the queue takes it for that recipient only:
the others keep their one copy.  With direct_delivery = no every message
is queued; when the queue cannot commit, the client gets 451 and the
audit log a mail.accept record with outcome error after the ok one.
"""
import json
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest

from amanat_node import sanitizer_lines
from smtp_util import (ALICE, BOB, CAROL, SOFIA, Store, finish,
                       make_message, send_data, start_mail_node, submission)

QUOTA = 300 * 1024


@pytest.fixture(scope="module")
def dnode(tmp_path_factory):
    n = start_mail_node(tmp_path_factory.mktemp("direct"), {
        "mailsrv": {"quota": "%dK" % (QUOTA // 1024),
                    "retry_min": "1s", "retry_max": "1s"}})
    yield n
    finish(n)


@pytest.fixture(scope="module")
def store(dnode):
    return Store(dnode)


def marker():
    return "MK" + uuid.uuid4().hex


def send(node, rcpts, msg):
    """Submit msg as alice; returns ("queued"|"delivered", id)."""
    s = submission(node, ALICE)
    try:
        code, text = send_data(s, ALICE, rcpts, msg)
    finally:
        s.quit()
    assert code == 250, text
    m = re.fullmatch(rb"2\.0\.0 Ok: (queued|delivered) as ([0-9a-f]{20})",
                     text)
    assert m, text
    return m.group(1).decode(), m.group(2).decode()


def amanat_json(node, *args, cert=None):
    pre = ["-c", node.conf, "--json"]
    if cert is not None:
        pre += ["--cert", cert[0], "--key", cert[1]]
    r = node.run("amanat", *(pre + list(args)))
    assert not sanitizer_lines(r.stderr), r.stderr
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    return json.loads(r.stdout)


def officer_cert(node):
    cert = os.path.join(node.dir, "sofia-client.pem")
    key = os.path.join(node.dir, "sofia-client.key")
    if not os.path.exists(cert):
        r = node.run("amanat", "-c", node.conf, "cert", "issue", "--client",
                     SOFIA, "--out-cert", cert, "--out-key", key)
        assert r.returncode == 0, r.stderr
    return cert, key


def queue_files(node):
    return os.listdir(os.path.join(node.dir, "mailsrv", "queue", "msg"))


def big_message(mk, size):
    """A message of about size bytes that does not compress."""
    lines = [os.urandom(38).hex() for _ in range(size // 78)]
    return make_message(mk, body="\r\n".join(lines))


def test_first_message_queued_then_direct(dnode, store):
    """No key in the cache: queued (the queue fetches the key); the next
    message to the same user is stored before its 250, once, without a
    queue file, with its delivery logged and audited like the queue's."""
    mk1 = marker()
    after = store.last_uid(BOB)
    how, qid = send(dnode, [BOB], make_message(mk1))
    assert how == "queued", qid
    store.wait_for(BOB, mk1.encode(), after)

    mk2 = marker()
    after = store.last_uid(BOB)
    how, did = send(dnode, [BOB], make_message(mk2))
    assert how == "delivered", did
    assert did != qid
    # in the INBOX when the 250 came: no waiting
    assert len(store.find(BOB, mk2.encode(), after)) == 1
    assert queue_files(dnode) == []
    log = dnode.log("mailsrv")
    assert "smtp delivered id=%s " % did in log
    assert ("delivery id=%s to=<%s> state=sent" % (did, BOB)) in log
    # the audit log has the accept, then the delivery
    got = amanat_json(dnode, "audit", "query", "--service", "mailsrv",
                      "--limit", "1000", cert=officer_cert(dnode))
    mine = [x["entry"] for x in got
            if x["entry"]["object"] == did or
            (x["entry"].get("details") or {}).get("queue_id") == did]
    assert [(e["action"], e["object"]) for e in mine] == [
        ("mail.accept", did), ("mail.deliver", BOB)], mine


def test_ids_unique_across_direct_and_queued(dnode, store):
    """A direct delivery's id never names a later queued message (the
    writer's file goes back to the spares under a new id): a message to
    a local and a first-time recipient right after a direct one reaches
    both, and the first recipient does not lose it as a "repeat"."""
    mk = marker()
    after = store.last_uid(BOB)
    how, did = send(dnode, [BOB], make_message(mk))
    assert how == "delivered"
    mk2 = marker()
    after2 = store.last_uid(BOB)
    # alice's key is not cached yet: the queue takes this one
    how2, qid = send(dnode, [BOB, ALICE], make_message(mk2))
    assert how2 == "queued", qid
    assert qid != did
    store.wait_for(BOB, mk2.encode(), after2)
    store.wait_for(ALICE, mk2.encode())
    assert len(store.find(BOB, mk.encode(), after)) == 1


def test_one_mailbox_full_the_queue_takes_it_for_that_one(dnode, store):
    """bob's mailbox is nearly full, carol's is not: a message to both
    is stored for carol at once, bob's copy is left to the queue (4.2.2,
    retried), and carol never gets a second copy from the queue."""
    # carol's key into the cache (a queued first delivery)
    mk0 = marker()
    send(dnode, [CAROL], make_message(mk0))
    store.wait_for(CAROL, mk0.encode())
    # fill bob's mailbox to within 100 KiB of the quota
    used = sum(x["size"] for x in store.list(BOB))
    fill = QUOTA - used - 90 * 1024
    assert fill > 10 * 1024, used
    mkf = marker()
    send(dnode, [BOB], big_message(mkf, fill))
    store.wait_for(BOB, mkf.encode())

    mk = marker()
    carol_after = store.last_uid(CAROL)
    how, qid = send(dnode, [BOB, CAROL], big_message(mk, 120 * 1024))
    assert how == "queued", qid
    assert len(store.find(CAROL, mk.encode(), carol_after)) == 1
    log_re = re.compile(r"delivery id=%s to=<%s> state=deferred "
                        r"status=\"4\.2\.2 mailbox full\"" % (qid, BOB))
    # the queue tries bob (twice: retry_min 1s) and leaves carol alone
    end = time.monotonic() + 20
    while len(log_re.findall(dnode.log("mailsrv"))) < 2:
        assert time.monotonic() < end, dnode.log("mailsrv")[-3000:]
        time.sleep(0.2)
    assert len(store.find(CAROL, mk.encode(), carol_after)) == 1
    assert store.find(BOB, mk.encode()) == []
    log = dnode.log("mailsrv")
    assert "smtp direct delivery id=%s" % qid in log
    # stored by the direct attempt (the queue's runs list carol as sent
    # again, from the envelope, without storing)
    assert len(re.findall(r"delivery id=%s to=<%s> state=sent .* "
                          r"direct=yes" % (qid, CAROL), log)) == 1
    # the admin sees it queued, carol's part done
    q = amanat_json(dnode, "mail", "queue", "show", qid)
    states = {r.get("address", r.get("addr")): r["state"]
              for r in q["rcpts"]}
    assert states in ({BOB: 0, CAROL: 1},
                      {BOB: "pending", CAROL: "delivered"}), q


@pytest.fixture(scope="module")
def qnode(tmp_path_factory):
    n = start_mail_node(tmp_path_factory.mktemp("nodirect"), {
        "mailsrv": {"direct_delivery": "no"}})
    yield n
    finish(n)


def test_direct_delivery_off_queues_everything(qnode):
    store = Store(qnode)
    for _ in range(3):
        mk = marker()
        after = store.last_uid(BOB)
        how, qid = send(qnode, [BOB], make_message(mk))
        assert how == "queued", qid
        store.wait_for(BOB, mk.encode(), after)
    assert "smtp delivered id=" not in qnode.log("mailsrv")


def set_immutable(path, on):
    """chattr +i / -i: even root can then add no entry to the directory
    (a real commit failure: the queue's rename into msg/ gets EPERM)."""
    return subprocess.run(["chattr", "+i" if on else "-i", path],
                          capture_output=True, text=True)


def test_commit_failure_451_and_not_stored_record(qnode):
    """The queue cannot commit (msg/ is immutable): the client gets 451,
    the session goes on, the accept record that was written beside the
    commit is followed by one with outcome error ("not stored"), and the
    message is in no mailbox; once the queue can write again the next
    message on the same connection is accepted and delivered."""
    store = Store(qnode)
    msgdir = os.path.join(qnode.dir, "mailsrv", "queue", "msg")
    mk0 = marker()
    how, qid0 = send(qnode, [BOB], make_message(mk0))
    store.wait_for(BOB, mk0.encode())
    end = time.monotonic() + 20
    while queue_files(qnode):
        assert time.monotonic() < end, queue_files(qnode)
        time.sleep(0.1)

    if shutil.which("chattr") is None:
        pytest.skip("no chattr (Debian's e2fsprogs)")
    r = set_immutable(msgdir, True)
    if r.returncode != 0:
        pytest.skip("chattr +i not supported here: " + r.stderr.strip())
    mk1, mk2 = marker(), marker()
    s = submission(qnode, ALICE)
    try:
        try:
            code, text = send_data(s, ALICE, [BOB], make_message(mk1))
        finally:
            assert set_immutable(msgdir, False).returncode == 0
        assert code == 451, (code, text)
        assert text.startswith(b"4.3.0 "), text
        # the same session is still served, and the queue works again
        code, text = send_data(s, ALICE, [BOB], make_message(mk2))
        assert code == 250, (code, text)
    finally:
        s.quit()
    store.wait_for(BOB, mk2.encode())
    assert store.find(BOB, mk1.encode()) == []

    got = amanat_json(qnode, "audit", "query", "--service", "mailsrv",
                      "--action", "mail.accept", "--limit", "1000",
                      cert=officer_cert(qnode))
    rows = [x["entry"] for x in got]
    failed = [e for e in rows if e["outcome"] != "ok"]
    assert len(failed) == 1, rows
    bad = failed[0]
    assert bad["details"] == {"reason": "not stored"}, bad
    assert bad["actor"] == ALICE, bad
    # its accept record came first, with the same id; nothing delivered
    same = [e for e in rows if e["object"] == bad["object"]]
    assert [e["outcome"] for e in same] == ["ok", bad["outcome"]], same
    assert same[0]["details"]["from"] == ALICE, same
    deliveries = amanat_json(qnode, "audit", "query", "--service",
                             "mailsrv", "--action", "mail.deliver",
                             "--limit", "1000", cert=officer_cert(qnode))
    assert [x for x in deliveries
            if x["entry"]["details"].get("queue_id") == bad["object"]] == []
    assert "smtp queue commit failed" in qnode.log("mailsrv")
