"""
The amanat admin CLI: `amanat -c conf [--json] status` probes every
service over verified TLS.
"""
import json

from amanat_node import daemon_env

PROBES = {"keyservice", "docstore", "smtps", "imaps"}


def table(stdout):
    """{service: up?} from the text table."""
    rows = {}
    for line in stdout.splitlines()[1:]:
        f = line.split()
        if len(f) >= 3:
            rows[f[0]] = f[2]
    return rows


def test_status_all_up(node):
    r = node.run("amanat", "-c", node.conf, "status")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0].split()[:3] == ["SERVICE", "ADDRESS",
                                                    "UP"], r.stdout
    rows = table(r.stdout)
    assert set(rows) == PROBES, r.stdout
    assert all(v == "yes" for v in rows.values()), r.stdout
    for pname in PROBES:
        assert node.addr(pname) in r.stdout, r.stdout


def test_status_json_all_up(node):
    r = node.run("amanat", "-c", node.conf, "--json", "status")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert isinstance(doc, list)
    assert {p["service"] for p in doc} == PROBES, doc
    for p in doc:
        assert p["up"] is True, p
        assert p["address"] == node.addr(p["service"]), p
        assert p["detail"].startswith(("TLSv1.2", "TLSv1.3")), p


def test_status_conf_from_environment(node):
    r = node.run("amanat", "status",
                 env=dict(daemon_env(), AMANAT_CONF=node.conf))
    assert r.returncode == 0, r.stdout + r.stderr


def test_status_docstore_down(make_node):
    node = make_node(daemons=("keyservice", "mailsrv"))
    r = node.run("amanat", "-c", node.conf, "status")
    assert r.returncode == 1, r.stdout + r.stderr
    rows = table(r.stdout)
    assert rows.get("docstore") == "no", r.stdout
    assert all(rows[s] == "yes" for s in PROBES - {"docstore"}), r.stdout

    r = node.run("amanat", "-c", node.conf, "--json", "status")
    assert r.returncode == 1, r.stdout + r.stderr
    doc = {p["service"]: p for p in json.loads(r.stdout)}
    assert doc["docstore"]["up"] is False, doc
    assert doc["docstore"]["detail"], doc
    assert all(doc[s]["up"] is True for s in PROBES - {"docstore"}), doc


def test_status_wrong_ca_reports_down(make_node, tmp_path):
    """The CLI verifies the node CA: a node checked against another
    node's CA is reported down, not up."""
    a = make_node(daemons=("keyservice",))
    b = make_node(daemons=(), init=True)
    path = str(tmp_path / "other-ca.conf")
    a.config_with({"tls": {"ca": b.ca}}, path)
    r = a.run("amanat", "-c", path, "--json", "status")
    assert r.returncode == 1, r.stdout + r.stderr
    doc = {p["service"]: p for p in json.loads(r.stdout)}
    assert doc["keyservice"]["up"] is False, doc


def test_bad_config_exit_2(node, tmp_path):
    path = str(tmp_path / "bad.conf")
    with open(path, "w") as f:
        f.write("[node]\nno_such_knob = 1\n")
    r = node.run("amanat", "-c", path, "status")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "%s:2:" % path in r.stderr, r.stderr


def test_usage_exit_64(node):
    r = node.run("amanat", "-c", node.conf, "frobnicate")
    assert r.returncode == 64, r.stdout + r.stderr
