"""
End-to-end test fixtures (see amanat_node.py for the Node class).

    node        module-scoped node running all three daemons, defaults
    make_node   factory of function-scoped nodes with config overrides

Run: /usr/bin/python3 -m pytest -q tests/e2e   (AMANAT_BUILD=build/asan for
the sanitizer build).
"""
import shutil
import subprocess
import time

import pytest

from amanat_node import DAEMONS, Node, free_ports


def _finish(node):
    problems = node.stop_all()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def make_started_node(tmpdir, overrides=None, daemons=DAEMONS, init=True,
                      demo=False):
    node = Node(tmpdir, overrides)
    if init:
        node.init(demo=demo)
    try:
        if daemons:
            node.start(daemons)
    except BaseException:
        node.stop_all()
        raise
    return node


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A module-wide node running all three daemons with defaults."""
    n = make_started_node(tmp_path_factory.mktemp("node"))
    yield n
    _finish(n)


@pytest.fixture
def make_node(tmp_path):
    """
    Factory for function-scoped nodes:
        make_node(overrides={"mailsrv": {"max_connections": "50"}},
                  daemons=("mailsrv",))
    Every node made is stopped and checked at teardown.
    """
    made = []

    def factory(overrides=None, daemons=DAEMONS, init=True, demo=False):
        d = tmp_path / ("node%d" % len(made))
        d.mkdir()
        n = Node(d, overrides)
        made.append(n)
        if init:
            n.init(demo=demo)
        if daemons:
            n.start(daemons)
        return n

    yield factory
    problems = []
    for n in made:
        problems += n.stop_all()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)




@pytest.fixture(scope="session")
def tls11_client(tmp_path_factory):
    """
    The openssl s_client arguments that make the client offer only TLS 1.1
    (Debian's OpenSSL refuses it at the default security level).  Proven
    once against a local `openssl s_server -tls1_1`, so that a refusal seen
    from an Amanat port is the server's; skips if this OpenSSL cannot do
    TLS 1.1 at all.
    """
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls11")
    key, crt = str(d / "k.pem"), str(d / "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                    "-out", crt, "-subj", "/CN=localhost", "-days", "2"],
                   check=True, capture_output=True, timeout=60)
    args = ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]
    port = free_ports(1)[0]
    srv = subprocess.Popen(["openssl", "s_server", "-accept",
                            "127.0.0.1:%d" % port, "-cert", crt, "-key", key,
                            "-naccept", "1"] + args,
                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        out = ""
        for _ in range(100):
            r = subprocess.run(["openssl", "s_client", "-connect",
                                "127.0.0.1:%d" % port] + args,
                               stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=30)
            out = r.stdout + r.stderr
            if "Connection refused" not in out:
                break
            time.sleep(0.1)
    finally:
        srv.kill()
        srv.wait()
    if "Cipher is (NONE)" in out or "Protocol  : TLSv1.1" not in out:
        pytest.skip("this OpenSSL client cannot negotiate TLS 1.1 even at "
                    "SECLEVEL=0:\n" + out)
    return args
