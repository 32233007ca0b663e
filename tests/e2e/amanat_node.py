"""
amanat_node.py -- a real Amanat node on 127.0.0.1 in a temp dir, for the
end-to-end tests (fixtures in conftest.py).

A Node writes a node configuration (INI, every listener on a free port of
127.0.0.1, datadir = its temp dir), runs `keyservice --init`, starts the
requested daemons and waits until their ports accept TCP.  Teardown sends
SIGTERM, requires exit code 0 within STOP_TIMEOUT and a log free of
sanitizer reports.

Build dir: $AMANAT_BUILD (default "build"), made absolute.  The daemons may
be ASan/UBSan builds: every timeout here is generous.
"""
import os
import re
import signal
import socket
import ssl
import subprocess
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.path.abspath(os.path.join(REPO, os.environ.get("AMANAT_BUILD",
                                                          "build")))

DAEMONS = ("keyservice", "mailsrv", "docstore")

# port name -> (daemon, config section, config key)
PORTS = {
    "smtp": ("mailsrv", "mailsrv", "smtp_listen"),
    "submission": ("mailsrv", "mailsrv", "submission_listen"),
    "smtps": ("mailsrv", "mailsrv", "smtps_listen"),
    "imap": ("mailsrv", "mailsrv", "imap_listen"),
    "imaps": ("mailsrv", "mailsrv", "imaps_listen"),
    "keyservice": ("keyservice", "keyservice", "listen"),
    "docstore": ("docstore", "docstore", "listen"),
}

# Ports that require a client certificate (mutual TLS), and whose.
MTLS_PORTS = {"keyservice": "admin"}
# client name -> config section of its certificate (issued by --init)
CLIENT_SECTIONS = {"admin": "cli", "mailsrv": "mailsrv_client",
                   "docstore": "docstore_client"}


def documented_listeners(path=os.path.join(REPO, "conf", "amanat.conf")):
    """(section, key) of every listen knob of the documented example, so
    that a listener added by a later change also gets a free port."""
    found, sec = [], None
    try:
        with open(path) as f:
            for line in f:
                m = re.match(r"\s*\[([a-z0-9_]+)\]", line)
                if m:
                    sec = m.group(1)
                    continue
                m = re.match(r"\s*([a-z0-9_]*listen)\s*=", line)
                if m and sec:
                    found.append((sec, m.group(1)))
    except FileNotFoundError:
        pass
    return found


for _sec, _key in documented_listeners():
    if any(v[1:] == (_sec, _key) for v in PORTS.values()):
        continue
    _name = _sec if _key == "listen" else \
        "%s_%s" % (_sec, _key[:-len("_listen")])
    PORTS[_name] = (_sec if _sec in DAEMONS else None, _sec, _key)

START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
INIT_TIMEOUT = 60.0
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")


def build_path(prog):
    return os.path.join(BUILD, prog)


def require_binaries(progs):
    missing = [p for p in progs if not os.access(build_path(p), os.X_OK)]
    if missing:
        pytest.fail("not built: %s (run make; AMANAT_BUILD=%s)" %
                    (", ".join(build_path(p) for p in missing), BUILD),
                    pytrace=False)


def daemon_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS",
                   "detect_leaks=1:abort_on_error=0:halt_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (sockets closed before use)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def render_config(sections):
    """
    sections: {section: {key: value}} (insertion ordered).  Returns
    (text, lines) where lines maps (section, key) to its 1-based line.
    """
    out = ["# amanat e2e test node (generated)"]
    lines = {}
    for sec, knobs in sections.items():
        out.append("")
        out.append("[%s]" % sec)
        for key, value in knobs.items():
            if value is None:
                continue
            out.append("%s = %s" % (key, value))
            lines[(sec, key)] = len(out)
    return "\n".join(out) + "\n", lines


def merge_overrides(base, overrides):
    """Copy base and apply {section: {key: value}}; value None removes."""
    merged = {sec: dict(knobs) for sec, knobs in base.items()}
    for sec, knobs in (overrides or {}).items():
        tgt = merged.setdefault(sec, {})
        for key, value in knobs.items():
            if value is None:
                tgt.pop(key, None)
            else:
                tgt[key] = value
    return merged


def wait_port(port, proc, logpath, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            pytest.fail("daemon exited early (rc=%s) before port %d "
                        "accepted; log %s:\n%s" %
                        (proc.returncode, port, logpath, read_text(logpath)),
                        pytrace=False)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("port %d not accepting after %.0fs; log %s:\n%s" %
                        (port, timeout, logpath, read_text(logpath)),
                        pytrace=False)
        time.sleep(0.05)


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return "(no log)"


def sanitizer_lines(text):
    return [l for l in text.splitlines()
            if any(m in l for m in SANITIZER_MARKERS)]


class Node:
    """One Amanat node: config, keys, daemons, in its own directory."""

    def __init__(self, tmpdir, overrides=None, name="e2e"):
        self.dir = str(tmpdir)
        self.conf = os.path.join(self.dir, "amanat.conf")
        self.procs = {}
        self.stopped = {}       # daemon -> exit code (stopped by the test)
        ports = free_ports(len(PORTS))
        self.ports = dict(zip(PORTS, ports))
        self.base_sections = {
            "node": {"name": name, "datadir": self.dir,
                     "log_level": "info"},
            "tls": {"ca": "ca.pem", "cert": "tls/server.pem",
                    "key": "tls/server.key",
                    "server_names": "localhost,127.0.0.1"},
            "keyservice": {},
            # hermetic DNS: nothing answers on 127.0.0.1:9, so an MX
            # lookup fails at once as temporary (tests that resolve run
            # their own DNS server and override this)
            "mailsrv": {"hostname": "localhost",
                        "dns_resolver": "127.0.0.1@9"},
            "docstore": {},
        }
        for pname, (_, sec, key) in PORTS.items():
            self.base_sections.setdefault(sec, {})[key] = self.addr(pname)
        if "keyservice_crl" in self.ports:
            # certificates name the CRL of this node's own crl_listen
            self.base_sections["keyservice"]["crl_url"] = \
                "http://%s/crl.der" % self.addr("keyservice_crl")
        self.sections = merge_overrides(self.base_sections, overrides)
        self.lines = self.write_config()

    # ------------------------------------------------------------ config
    def addr(self, pname):
        return "127.0.0.1:%d" % self.ports[pname]

    def port(self, pname):
        return self.ports[pname]

    @property
    def ca(self):
        return os.path.join(self.dir, "ca.pem")

    @property
    def key(self):
        return os.path.join(self.dir, "tls", "server.key")

    @property
    def cert(self):
        return os.path.join(self.dir, "tls", "server.pem")

    def write_config(self, sections=None, path=None):
        """Write sections (default self.sections) to path (default the
        node config); returns {(section, key): line}."""
        text, lines = render_config(sections or self.sections)
        path = path or self.conf
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
        return lines

    def config_with(self, overrides, path):
        """A variant of this node's config at path; returns its lines."""
        return self.write_config(merge_overrides(self.sections, overrides),
                                 path)

    # ------------------------------------------------------------ life
    def logpath(self, daemon):
        return os.path.join(self.dir, daemon + ".log")

    def log(self, daemon):
        return read_text(self.logpath(daemon))

    def init(self, demo=False):
        """keyservice --init (with --demo: the demo departments and users,
        <datadir>/demo-users.txt)."""
        require_binaries(["keyservice"])
        logpath = os.path.join(self.dir, "init.log")
        with open(logpath, "wb") as log:
            r = subprocess.run([build_path("keyservice"), "-c", self.conf,
                                "--init"] + (["--demo"] if demo else []),
                               stdin=subprocess.DEVNULL,
                               stdout=log, stderr=subprocess.STDOUT,
                               cwd=self.dir, env=daemon_env(),
                               timeout=INIT_TIMEOUT)
        text = read_text(logpath)
        if r.returncode != 0 or sanitizer_lines(text):
            pytest.fail("keyservice --init failed (rc=%d):\n%s\nconfig:\n%s"
                        % (r.returncode, text, read_text(self.conf)),
                        pytrace=False)
        for p in (self.ca, self.cert, self.key):
            assert os.path.exists(p), "init did not create %s" % p

    def daemon_ports(self, daemon):
        return [self.ports[p] for p, (d, _, _) in PORTS.items()
                if d == daemon]

    def start(self, daemons=DAEMONS, args=()):
        require_binaries(daemons)
        for d in daemons:
            assert d not in self.procs, "%s already running" % d
            log = open(self.logpath(d), "ab")
            try:
                self.procs[d] = subprocess.Popen(
                    [build_path(d), "-c", self.conf] + list(args),
                    stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, cwd=self.dir,
                    env=daemon_env())
            finally:
                log.close()
        for d in daemons:
            for port in self.daemon_ports(d):
                wait_port(port, self.procs[d], self.logpath(d))

    def proc(self, daemon):
        return self.procs[daemon]

    def alive(self, daemon):
        return self.procs[daemon].poll() is None

    def send_signal(self, daemon, sig):
        self.procs[daemon].send_signal(sig)

    def stop(self, daemon, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Stop one daemon; returns (exit code, problems)."""
        p = self.procs.pop(daemon)
        problems = []
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                problems.append("%s did not exit within %.0fs of signal %d "
                                "(killed)" % (daemon, timeout, sig))
        rc = p.returncode
        if rc != 0 and not problems:
            problems.append("%s exited with %d" % (daemon, rc))
        san = sanitizer_lines(self.log(daemon))
        if san:
            problems.append("%s log has sanitizer reports:\n  %s" %
                            (daemon, "\n  ".join(san[:20])))
        if problems:
            problems.append("---- %s log ----\n%s" % (daemon,
                                                      self.log(daemon)))
        self.stopped[daemon] = rc
        return rc, problems

    def kill9(self, daemon, timeout=STOP_TIMEOUT):
        """SIGKILL one daemon (a crash: no cleanup runs) and reap it;
        returns its exit code (-9).  start([daemon]) runs it again."""
        p = self.procs.pop(daemon)
        if p.poll() is None:
            p.kill()
        p.wait(timeout=timeout)
        self.stopped[daemon] = p.returncode
        return p.returncode

    def restart(self, daemon, hard=False):
        """Stop one daemon (SIGTERM, checked: returns the problems; or
        with hard=True SIGKILL) and start it again."""
        problems = []
        if hard:
            self.kill9(daemon)
        else:
            problems = self.stop(daemon)[1]
        self.start([daemon])
        return problems

    def stop_all(self):
        problems = []
        for d in list(self.procs):
            problems += self.stop(d)[1]
        return problems

    # ------------------------------------------------------------ clients
    def client_cert(self, who="admin"):
        """(cert, key) of a client certificate made by --init: "admin"
        (the CLI's), "mailsrv" or "docstore"."""
        assert who in CLIENT_SECTIONS, who
        return (os.path.join(self.dir, "clients", who + ".pem"),
                os.path.join(self.dir, "clients", who + ".key"))

    def ssl_context(self, client=None):
        """Verifies the server against the node CA and its name/IP;
        presents the client certificate `client` if given."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                         cafile=self.ca)
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        if client is not None:
            ctx.load_cert_chain(*self.client_cert(client))
        return ctx

    def tls_for(self, pname):
        """ssl_context() fit for a port: with the admin client certificate
        where the port requires mutual TLS."""
        return self.ssl_context(MTLS_PORTS.get(pname))

    def curl_args(self, pname):
        """curl arguments: the node CA, plus a client certificate where
        the port requires mutual TLS."""
        args = ["--cacert", self.ca]
        if pname in MTLS_PORTS:
            cert, key = self.client_cert(MTLS_PORTS[pname])
            args += ["--cert", cert, "--key", key]
        return args

    def s_client_args(self, pname):
        args = ["-CAfile", self.ca]
        if pname in MTLS_PORTS:
            cert, key = self.client_cert(MTLS_PORTS[pname])
            args += ["-cert", cert, "-key", key]
        return args

    def run(self, prog, *args, timeout=60, **kw):
        """Run build/<prog> with args; returns CompletedProcess (text)."""
        require_binaries([prog])
        kw.setdefault("env", daemon_env())
        return subprocess.run([build_path(prog)] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, cwd=self.dir, timeout=timeout, **kw)


# ---------------------------------------------------------------- helpers

def recv_line(sock, timeout=10.0, buf=None):
    """Read one CRLF line from a plain or TLS socket; b"" on EOF."""
    sock.settimeout(timeout)
    data = bytearray() if buf is None else buf
    while b"\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            line = bytes(data)
            data.clear()
            return line
        data += chunk
    i = data.index(b"\n") + 1
    line = bytes(data[:i])
    del data[:i]
    return line


def read_until_eof(sock, timeout=10.0):
    """Everything the peer sends until it closes (or timeout: raises)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    data = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return bytes(data)
        if not chunk:
            return bytes(data)
        data += chunk
        if time.monotonic() > deadline:
            raise TimeoutError("peer did not close; got %r" % bytes(data))


def closed_by_peer(sock, timeout=10.0):
    """True if the peer closes (EOF or reset) within timeout."""
    try:
        read_until_eof(sock, timeout)
        return True
    except (socket.timeout, TimeoutError):
        return False


def wait_for_log(node, daemon, needle, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in node.log(daemon):
            return True
        time.sleep(0.1)
    return False
