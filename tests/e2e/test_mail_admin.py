"""
`amanat mail`: the node admin's queue and mailbox commands, against a
real demo node (keyservice and mailsrv, cloned from the session's demo
template) through mailsrv's HTTPS admin API ([mailsrv] api_listen,
mutual TLS).

Acceptance:
  - mail from alice to a remote domain whose route refuses connections
    stays queued ("4.4.1 connection ... failed"): `mail queue list
    --json` lists it, the table
    names it with its recipient count and state;
  - `mail queue show` gives the recipient, its state and last status;
  - `mail queue retry` makes it due at once: its attempts grow within
    seconds although the backoff ([mailsrv] retry_min 10m here) would
    wait minutes;
  - `mail queue delete` removes it: gone from the list, 404 for show,
    no msg/<id> file, and not among the envelopes store_dump reads from
    the queue (mailsrv stopped for that: the queue is locked);
  - `mail mailboxes` / `mail messages` of a user who received one message
    list INBOX with 1 message, its uid and size as stored, and never any
    of its text; a mailbox name with a space and a "/" reaches mailsrv
    as one name;
  - a dept-admin's, a security officer's or a user's certificate is
    refused: exit 1 and a 403 message, nothing on stdout;
  - every call is in mailsrv's audit log (action mail.admin), read by a
    security officer with `amanat audit query`: actor admin, object
    queue:<id>, outcome ok, and the refused attempt with outcome denied;
  - exit statuses: 64 usage, 2 unreadable certificate, 3 nothing
    listening at api_listen.

Run: /usr/bin/python3 -m pytest -q tests/e2e/test_mail_admin.py
(AMANAT_BUILD=build/asan for the sanitizer build).
"""
import json
import os
import socket
import time
import uuid

import pytest

from amanat_node import free_ports, sanitizer_lines
from smtp_util import (ALICE, CAROL, FATIMA, SOFIA, Store, finish,
                       make_message, queued_id, send_data, start_mail_node,
                       start_mailsrv, submission)

NOWHERE = "nobody@nowhere.example"      # its route refuses: stays queued
# A port bound but never listening: connections to it are refused.
_CLOSED = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
_CLOSED.bind(("127.0.0.1", 0))
# Retries far apart, so that only `mail queue retry` makes one soon.
SLOW_RETRY = {"mailsrv": {"retry_min": "10m", "retry_max": "1h",
                          "relay_routes": "nowhere.example=127.0.0.1:%d" %
                          _CLOSED.getsockname()[1]}}
DEFERRED = "4.4.1 connection to"
WAIT = 20.0     # generous: the daemons may be ASan builds


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = start_mail_node(tmp_path_factory.mktemp("mailadm"), SLOW_RETRY)
    yield n
    finish(n)


@pytest.fixture(scope="module")
def certs(node):
    """Client certificates issued by the admin: {who: (cert, key)}."""
    out = {}
    for who, addr in (("fatima", FATIMA), ("sofia", SOFIA),
                      ("alice", ALICE)):
        cert = os.path.join(node.dir, "%s-client.pem" % who)
        key = os.path.join(node.dir, "%s-client.key" % who)
        r = amanat(node, "cert", "issue", "--client", addr, "--out-cert",
                   cert, "--out-key", key)
        assert r.returncode == 0, r.stderr
        out[who] = (cert, key)
    return out


# ---------------------------------------------------------------- helpers

def amanat(node, *args, cert=None, conf=None):
    """Run the CLI with the node config (and another client certificate
    if cert=(cert, key)); checks for sanitizer reports."""
    pre = ["-c", conf or node.conf]
    if cert is not None:
        pre += ["--cert", cert[0], "--key", cert[1]]
    r = node.run("amanat", *(pre + list(args)))
    san = sanitizer_lines(r.stderr)
    assert not san, "amanat %s: sanitizer reports:\n%s" % (args, r.stderr)
    return r


def amanat_json(node, *args, cert=None):
    r = amanat(node, "--json", *args, cert=cert)
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    return json.loads(r.stdout)


def rcpt_addr(r):
    # GET /v1/queue serves the stored records ("addr"), GET
    # /v1/queue/<id> "address": accept either (see the report)
    return r.get("address", r.get("addr"))


def rcpt_state(r):
    st = r.get("state")
    return {0: "pending", 1: "delivered", 2: "failed"}.get(st, st)


def queue_entry(node, qid):
    for e in amanat_json(node, "mail", "queue", "list"):
        if e["id"] == qid:
            return e
    return None


def queue_remote(node, mk):
    """alice -> NOWHERE; returns the queue id once the first delivery
    attempt has recorded DEFERRED."""
    s = submission(node, ALICE)
    try:
        code, text = send_data(s, ALICE, [NOWHERE],
                               make_message(mk, [("To", NOWHERE)]))
    finally:
        s.quit()
    assert code == 250, text
    qid = queued_id(text)
    deadline = time.monotonic() + WAIT
    while True:
        env = amanat_json(node, "mail", "queue", "show", qid)
        if env["attempts"] >= 1 and \
                (env["rcpts"][0].get("status") or "").startswith(DEFERRED):
            return qid
        if time.monotonic() > deadline:
            pytest.fail("no first attempt for %s: %r\n%s" %
                        (qid, env, node.log("mailsrv")[-3000:]),
                        pytrace=False)
        time.sleep(0.2)


def marker():
    return "MA" + uuid.uuid4().hex


# ---------------------------------------------------------------- queue

def test_queue_list_shows_unrouted_message(node):
    qid = queue_remote(node, marker())
    e = queue_entry(node, qid)
    assert e is not None, "queued message %s not listed" % qid
    assert e["sender"] == ALICE
    assert [rcpt_addr(r) for r in e["rcpts"]] == [NOWHERE]
    assert rcpt_state(e["rcpts"][0]) == "pending"
    assert e["rcpts"][0]["status"].startswith(DEFERRED)
    assert e["attempts"] >= 1 and e["size"] > 0

    r = amanat(node, "mail", "queue", "list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "SENDER", "RECIPIENTS", "SIZE",
                                "ATTEMPTS", "NEXT", "TRY", "(UTC)"]
    row = [l for l in lines if l.startswith(qid)]
    assert len(row) == 1, r.stdout
    assert ALICE in row[0] and "1 (1 pending)" in row[0], row[0]
    assert row[0].rstrip().endswith("Z"), row[0]    # next try, UTC


def test_queue_show_recipient_and_status(node):
    qid = queue_remote(node, marker())
    env = amanat_json(node, "mail", "queue", "show", qid)
    assert env["id"] == qid and env["sender"] == ALICE
    assert env.get("auth") == ALICE
    (rc,) = env["rcpts"]
    assert rcpt_addr(rc) == NOWHERE and rcpt_state(rc) == "pending"
    assert rc["local"] is False
    assert rc["status"].startswith(DEFERRED), rc

    r = amanat(node, "mail", "queue", "show", qid)
    assert r.returncode == 0, r.stderr
    assert "id:         %s" % qid in r.stdout
    assert "recipients: 1 (1 pending)" in r.stdout
    row = [l for l in r.stdout.splitlines() if l.startswith(NOWHERE)]
    assert len(row) == 1 and "pending" in row[0] and \
        DEFERRED in row[0], r.stdout

    r = amanat(node, "mail", "queue", "show", "0" * 20)
    assert r.returncode == 1 and "HTTP 404" in r.stderr, r.stderr


def test_queue_retry_attempts_increase(node):
    qid = queue_remote(node, marker())
    env = amanat_json(node, "mail", "queue", "show", qid)
    before = env["attempts"]
    # the backoff alone would wait ten minutes
    assert env["next_try"] > time.time() + 60, env

    r = amanat(node, "mail", "queue", "retry", qid)
    assert r.returncode == 0, r.stderr
    assert qid in r.stdout and "due now" in r.stdout, r.stdout
    deadline = time.monotonic() + 5.0
    while True:
        env = amanat_json(node, "mail", "queue", "show", qid)
        if env["attempts"] > before:
            break
        assert time.monotonic() < deadline, \
            "attempts still %d after retry: %r" % (before, env)
        time.sleep(0.1)
    assert env["rcpts"][0]["status"].startswith(DEFERRED), env
    assert env["next_try"] > time.time() + 60, env   # backoff again

    out = amanat_json(node, "mail", "queue", "retry", qid)
    assert out == {"id": qid, "retry": "now"}
    r = amanat(node, "mail", "queue", "retry", "f" * 20)
    assert r.returncode == 1 and "HTTP 404" in r.stderr, r.stderr


def test_queue_delete_removes_message(node):
    qid = queue_remote(node, marker())
    msgfile = os.path.join(node.dir, "mailsrv", "queue", "msg", qid)
    assert os.path.exists(msgfile), msgfile

    r = amanat(node, "mail", "queue", "delete", qid)
    assert r.returncode == 0, r.stderr
    assert qid in r.stdout and "deleted" in r.stdout, r.stdout
    assert queue_entry(node, qid) is None
    assert not os.path.exists(msgfile), "%s still there" % msgfile
    r = amanat(node, "mail", "queue", "show", qid)
    assert r.returncode == 1 and "HTTP 404" in r.stderr, r.stderr
    r = amanat(node, "mail", "queue", "delete", qid)
    assert r.returncode == 1 and "HTTP 404" in r.stderr, r.stderr

    # what is on disk, read with the queue key (mailsrv holds the lock)
    rc, problems = node.stop("mailsrv")
    assert not problems, "\n".join(problems)
    try:
        ids = [e["id"] for e in Store(node).queue()]
        assert qid not in ids, ids
        assert qid not in os.listdir(os.path.dirname(msgfile))
    finally:
        start_mailsrv(node)


def test_queue_list_empty_after_deleting_all(node):
    for e in amanat_json(node, "mail", "queue", "list"):
        r = amanat(node, "mail", "queue", "delete", e["id"])
        assert r.returncode == 0, r.stderr
    assert amanat_json(node, "mail", "queue", "list") == []
    r = amanat(node, "mail", "queue", "list")
    assert r.returncode == 0 and r.stdout == "the queue is empty\n", r


# ---------------------------------------------------------------- mailboxes

def test_mailboxes_and_messages_without_contents(node):
    mk = marker()
    msg = make_message(mk, [("To", CAROL)])
    s = submission(node, ALICE)
    try:
        code, text = send_data(s, ALICE, [CAROL], msg)
    finally:
        s.quit()
    assert code == 250, text
    stored = Store(node).wait_for(CAROL, mk.encode())
    (uid, data), = stored

    boxes = amanat_json(node, "mail", "mailboxes", CAROL)
    assert boxes["address"] == CAROL
    # the address as the directory spells it, whatever the admin typed
    assert amanat_json(node, "mail", "mailboxes", CAROL.upper()) == boxes
    inbox = [b for b in boxes["mailboxes"] if b["name"] == "INBOX"]
    assert inbox == [{"name": "INBOX", "messages": 1, "unseen": 1,
                      "size": len(data)}], boxes
    msgs = amanat_json(node, "mail", "messages", CAROL, "INBOX")
    assert msgs["mailbox"] == "INBOX"
    (m,) = msgs["messages"]
    assert m["uid"] == uid and m["size"] == len(data) and m["flags"] == 0
    assert abs(m["internaldate"] - time.time()) < 300

    outs = []
    for args in (("mailboxes", CAROL), ("messages", CAROL, "INBOX")):
        for js in ((), ("--json",)):
            r = amanat(node, *(js + ("mail",) + args))
            assert r.returncode == 0, r.stderr
            outs.append(r.stdout + r.stderr)
    table = outs[2].splitlines()
    assert table[0].split() == ["UID", "FLAGS", "DATE", "(UTC)", "SIZE"]
    assert table[1].split()[0] == str(uid) and \
        table[1].split()[-1] == str(len(data)), outs[2]
    assert [l.split()[:2] for l in outs[0].splitlines()
            if l.startswith("INBOX")] == [["INBOX", "1"]], outs[0]
    for o in outs:      # neither the subject nor the body
        assert mk not in o and "secret word" not in o, o

    # an empty default mailbox, and names that are not there
    r = amanat(node, "mail", "messages", CAROL, "Archive")
    assert r.returncode == 0 and r.stdout == "no messages\n", r
    r = amanat(node, "mail", "messages", CAROL, "Old Mail/2024 x")
    assert r.returncode == 1 and "HTTP 404" in r.stderr, r.stderr
    assert "/v1/mailboxes/%s/Old Mail/2024 x " % CAROL in \
        node.log("mailsrv"), "the name did not arrive as one"


def test_unknown_user_mailboxes(node):
    r = amanat(node, "mail", "mailboxes", "nobody@finance.amanat.test")
    assert r.returncode == 1 and "HTTP 404" in r.stderr, r.stderr


# ---------------------------------------------------------------- access

@pytest.mark.parametrize("who", ["fatima", "sofia", "alice"])
def test_non_admin_certificate_refused(node, certs, who):
    for args in (("queue", "list"), ("queue", "show", "0" * 20),
                 ("queue", "delete", "0" * 20),
                 ("mailboxes", FATIMA), ("messages", CAROL, "INBOX")):
        r = amanat(node, "mail", *args, cert=certs[who])
        assert r.returncode == 1, (who, args, r.returncode, r.stderr)
        assert "HTTP 403" in r.stderr and "administrator" in r.stderr, \
            r.stderr
        assert r.stdout == "", r.stdout


def test_admin_calls_audited(node, certs):
    qid = queue_remote(node, marker())
    assert amanat(node, "mail", "queue", "list").returncode == 0
    for verb in ("show", "retry", "delete"):
        r = amanat(node, "mail", "queue", verb, qid)
        assert r.returncode == 0, (verb, r.stderr)
    r = amanat(node, "mail", "queue", "show", qid, cert=certs["fatima"])
    assert r.returncode == 1 and "HTTP 403" in r.stderr, r.stderr
    r = amanat(node, "mail", "messages", CAROL, "Sent")
    assert r.returncode in (0, 1), r.stderr  # 404 if carol has no mail

    q = ("audit", "query", "--service", "mailsrv", "--action", "mail.admin",
         "--limit", "1000")
    # an admin may not read the audit log: only security officers
    r = amanat(node, *q)
    assert r.returncode == 1, r
    got = amanat_json(node, *q, cert=certs["sofia"])
    entries = [x["entry"] for x in got if x["service"] == "mailsrv"]
    assert all(e["action"] == "mail.admin" for e in entries)

    mine = [e for e in entries if e["object"] == "queue:" + qid]
    # queue_remote's show polls, then show, retry, delete
    assert len(mine) >= 4, entries
    assert all(e["actor"] == "admin" and e["outcome"] == "ok"
               for e in mine), mine
    methods = [e["details"]["method"] for e in mine]
    assert methods[-3:] == ["GET", "POST", "DELETE"], methods
    assert any(e["object"] == "queue" and e["actor"] == "admin"
               for e in entries), entries

    assert any(e["object"] == "mailbox:%s/Sent" % CAROL and
               e["actor"] == "admin" for e in entries), entries

    denied = [e for e in entries if e["outcome"] == "denied" and
              e["object"] == "/v1/queue/" + qid]
    assert len(denied) == 1, entries
    assert denied[0]["actor"] == FATIMA, denied


# ---------------------------------------------------------------- errors

def test_usage_config_and_connection_errors(node, tmp_path):
    r = amanat(node, "mail", "queue", "show")
    assert r.returncode == 64 and "missing ID" in r.stderr, r.stderr
    r = amanat(node, "mail", "messages", CAROL)
    assert r.returncode == 64 and "missing MAILBOX" in r.stderr, r.stderr
    r = amanat(node, "mail", "queue", "list",
               cert=(str(tmp_path / "none.pem"), str(tmp_path / "none.key")))
    assert r.returncode == 2, (r.returncode, r.stderr)

    closed = str(tmp_path / "closed.conf")
    node.config_with({"mailsrv": {"api_listen": "127.0.0.1:%d" %
                                  free_ports(1)[0]}}, closed)
    r = amanat(node, "mail", "queue", "list", conf=closed)
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert r.stderr.startswith("amanat: "), r.stderr
