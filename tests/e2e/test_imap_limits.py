"""
IMAP per-user and per-connection limits: sessions of one user
(IMAP_USER_SESSIONS_MAX, mailsrv/imap/imap.h) and failed logins on one
connection (IMAP_LOGIN_FAILS_MAX): exactly the limit works, one more is
refused with a clear answer, and other users and connections go on.
"""
import pytest

from imap_util import ALICE, BOB, Client, connect, start_imap_node
from smtp_util import finish

USER_SESSIONS_MAX = 32      # IMAP_USER_SESSIONS_MAX
LOGIN_FAILS_MAX = 3         # IMAP_LOGIN_FAILS_MAX


@pytest.fixture(scope="module")
def lnode(tmp_path_factory):
    n = start_imap_node(tmp_path_factory.mktemp("imaplimits"))
    yield n
    finish(n)


def test_sessions_per_user(lnode):
    held = []
    try:
        for _ in range(USER_SESSIONS_MAX):
            held.append(connect(lnode, ALICE))
        extra = Client(lnode)
        r = extra.cmd('LOGIN "%s" "%s"' % (ALICE, lnode.users[ALICE][0]))
        assert r.status == "NO" and r.code_name == "LIMIT", r
        # another user is not affected; the refused connection may retry
        other = connect(lnode, BOB)
        other.logout()
        held.pop().logout()
        r = extra.cmd('LOGIN "%s" "%s"' % (ALICE, lnode.users[ALICE][0]))
        assert r.status == "OK", r
        extra.logout()
    finally:
        for c in held:
            c.close()


def test_failed_logins_close_the_connection(lnode):
    c = Client(lnode)
    for i in range(LOGIN_FAILS_MAX - 1):
        r = c.cmd('LOGIN "%s" "wrong-%d"' % (ALICE, i))
        assert r.status == "NO" and r.code_name == "AUTHENTICATIONFAILED", r
    r = c.cmd('LOGIN "%s" "wrong-last"' % ALICE)
    assert r.status == "NO", r
    assert c.eof(10.0), "still open after %d failures" % LOGIN_FAILS_MAX
    # a fresh connection logs in
    connect(lnode, ALICE).logout()
