"""
postmaster (RFC 5321 4.5.1 and 4.1.1.3): "RCPT TO:<Postmaster>" with no
domain, in any case, is accepted on the MX port and delivered to the
address in [mailsrv] postmaster; postmaster@<domain> reaches that
department's own postmaster user (the demo has one per department), and
never another department's.  With no postmaster configured, or one that
is not a local address, the bare form gets 550 5.1.1 and the session goes
on.
"""
import uuid

import pytest

from smtp_util import (FINANCE, HEALTH, Store, finish, make_message, smtp,
                       start_mail_node)

PM_FINANCE = "postmaster@" + FINANCE
PM_HEALTH = "postmaster@" + HEALTH


@pytest.fixture(scope="module")
def pnode(tmp_path_factory):
    n = start_mail_node(tmp_path_factory.mktemp("postmaster"),
                        {"mailsrv": {"postmaster": PM_FINANCE}})
    yield n
    finish(n)


def marker():
    return "MK" + uuid.uuid4().hex


def mx_send(node, rcpt_arg, msg):
    """MAIL from outside, "RCPT TO:" + rcpt_arg as given, DATA; returns
    the RCPT reply and the DATA reply (None if RCPT failed)."""
    s = smtp(node)
    try:
        assert s.mail("someone@example.org")[0] == 250
        code, text = s.docmd("RCPT TO:" + rcpt_arg)
        if code != 250:
            assert s.rset()[0] == 250
            assert s.noop()[0] == 250
            return (code, text), None
        return (code, text), s.data(msg)
    finally:
        s.quit()


@pytest.mark.parametrize("form", ["<postmaster>", "<Postmaster>",
                                  " <POSTMASTER> NOTIFY=NEVER"])
def test_bare_postmaster_goes_to_the_configured_address(pnode, form):
    store = Store(pnode)
    mk = marker()
    after = store.last_uid(PM_FINANCE)
    rcpt, data = mx_send(pnode, form, make_message(mk))
    assert rcpt[0] == 250, rcpt
    assert data[0] == 250, data
    store.wait_for(PM_FINANCE, mk.encode(), after)


def test_each_domain_has_its_own_postmaster(pnode):
    store = Store(pnode)
    mk = marker()
    fin_after = store.last_uid(PM_FINANCE)
    rcpt, data = mx_send(pnode, "<POSTMASTER@health.amanat.test>",
                         make_message(mk))
    assert rcpt[0] == 250 and data[0] == 250, (rcpt, data)
    store.wait_for(PM_HEALTH, mk.encode())
    assert store.find(PM_FINANCE, mk.encode(), fin_after) == []


def test_not_postmaster_is_still_a_syntax_error(pnode):
    for arg in ("<postmasters>", "<postmaster@>", "<postmaster"):
        rcpt, data = mx_send(pnode, arg, b"")
        assert rcpt[0] == 501, (arg, rcpt)


@pytest.mark.parametrize("value", ["", "noc@example.org", "not an address"])
def test_no_local_postmaster_550(tmp_path_factory, value):
    n = start_mail_node(tmp_path_factory.mktemp("nopm"),
                        {"mailsrv": {"postmaster": '"%s"' % value}})
    try:
        rcpt, data = mx_send(n, "<postmaster>", b"")
        assert rcpt[0] == 550, rcpt
        assert rcpt[1].startswith(b"5.1.1 <postmaster>"), rcpt
        # postmaster@domain is unaffected
        mk = marker()
        rcpt, data = mx_send(n, "<%s>" % PM_FINANCE, make_message(mk))
        assert rcpt[0] == 250 and data[0] == 250, (rcpt, data)
        Store(n).wait_for(PM_FINANCE, mk.encode())
        if value == "noc@example.org":
            assert ("[mailsrv] postmaster noc@example.org is not a local "
                    "address") in n.log("mailsrv")
    finally:
        finish(n)
