# SPDX-License-Identifier: Apache-2.0
"""The Debian package (issue 17): built from the tree with debhelper's meson
support, lintian clean, installed with `dpkg --root` into a throw-away root
(its maintainer scripts run against that root: the vigil user, the
directories, the enabled units), and its units accepted by
`systemd-analyze verify` with every path they name present in the root.
Then, on a copy of this machine booted with systemd (machine_util), the
package as doc/install.md builds it, and every block of that guide run as
written: a deployment the tests check with independent clients; and the
restore of deploy/INCIDENT.md under the shipped units."""
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509

import machine_util
import pki

SRC = Path(__file__).resolve().parents[2]
TOOLS = ["dpkg-buildpackage", "dh", "lintian", "dpkg", "systemd-analyze", "git"]

pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                reason="needs " + ", ".join(TOOLS))


MASK = ["postgresql.service", "varnish.service", "varnishncsa.service", "openipmi.service"]
INSTALL = SRC / "doc" / "install.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
BASH = "set -eo pipefail\n"


def guide_blocks():
    return BLOCK.findall(INSTALL.read_text())


def copy_tree(dst):
    """The tracked files of the checkout, as a release would hold them."""
    files = subprocess.run(["git", "-C", str(SRC), "ls-files", "-z"], capture_output=True,
                           check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = SRC / f
        if src.is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    """A copy of this Debian 12 machine booted with systemd (machine_util),
    holding what doc/install.md starts from: the source tree in /root/vigil,
    a CA run with `openssl ca` in /srv/ca/issuing-1 with a few certificates
    issued, and DNS (/etc/hosts) naming this machine ocsp.example.com."""
    why = machine_util.available()
    if why:
        pytest.skip(why)
    m = machine_util.Machine(tmp_path_factory.mktemp("machine"), mask=MASK)
    copy_tree(m.path("/root/vigil"))
    ca = pki.CA(m.path("/srv/ca"), "issuing-1", keytype="ec")
    for i in range(3):
        ca.issue(f"leaf{i}.example.com")
    # The CA's configuration names its directory as the machine sees it.
    ca.cnf.write_text(ca.cnf.read_text().replace(str(ca.dir), "/srv/ca/issuing-1"))
    hosts = Path("/etc/hosts").read_text() + "127.0.0.1 ocsp.example.com\n"
    m.path("/etc/hosts").write_text(hosts)
    m.boot()
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture(scope="module")
def package(machine, tmp_path_factory):
    """The package as doc/install.md builds it: its first two blocks (the
    variables, the build), run as written in the machine."""
    top = tmp_path_factory.mktemp("deb")
    blocks = guide_blocks()
    machine.run(BASH + blocks[0] + "\n" + blocks[1], timeout=900)
    debs = list(machine.path("/root").glob("vigil_*.deb"))
    assert len(debs) == 1, list(machine.path("/root").iterdir())
    shutil.copy2(debs[0], top / debs[0].name)
    debs = [top / debs[0].name]
    # A throw-away root with an empty dpkg database and the host's users;
    # the maintainer scripts run outside a chroot with DPKG_ROOT set, as
    # debhelper's snippets (sysusers, tmpfiles, deb-systemd-helper) allow.
    root = top / "root"
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "etc", "var/log"):
        (root / d).mkdir(parents=True)
    for f in ("status", "available"):
        (root / "var/lib/dpkg" / f).touch()
    for f in ("passwd", "group", "shadow", "gshadow"):
        if Path("/etc", f).exists():
            shutil.copy2(Path("/etc", f), root / "etc" / f)
    r = subprocess.run(["dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends",
                        "--log=/dev/null", "-i", str(debs[0])], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return debs[0], root


def test_lintian_clean(package):
    deb, _ = package
    r = subprocess.run(["lintian", "--fail-on", "error,warning", str(deb)], capture_output=True,
                       text=True, timeout=300)
    tags = [ln for ln in r.stdout.splitlines() if re.match(r"[EW]: ", ln)]
    assert r.returncode == 0 and not tags, r.stdout + r.stderr


def test_installed_root(package):
    deb, root = package
    for f in ("usr/bin/vigil-store", "usr/bin/vigil-responder", "usr/bin/vigil-crlgen",
              "etc/vigil/vigil.conf.example", "usr/share/man/man5/vigil.conf.5.gz",
              "usr/share/doc/vigil/examples/nginx/vigil-edge.conf"):
        assert (root / f).exists(), f
    # The example configuration is a conffile: an operator's edits survive upgrades.
    status = (root / "var/lib/dpkg/status").read_text()
    assert re.search(r"Conffiles:\n /etc/vigil/vigil.conf.example [0-9a-f]{32}", status), status
    # sysusers made the user, tmpfiles its directories, owned by it.
    pw = [ln.split(":") for ln in (root / "etc/passwd").read_text().splitlines()]
    vigil = [p for p in pw if p[0] == "vigil"]
    assert vigil and vigil[0][5] == "/var/lib/vigil", vigil
    uid = int(vigil[0][2])
    for d, mode in (("var/lib/vigil", 0o755), ("var/lib/vigil/store", 0o2770),
                    ("var/lib/vigil/crl", 0o755)):
        st = (root / d).stat()
        assert st.st_uid == uid and (st.st_mode & 0o7777) == mode, (d, oct(st.st_mode))
    # Enabled, not started: the postinst never starts a unit (no store yet).
    for u in ("vigil-responder", "vigil-crlgen"):
        assert (root / "etc/systemd/system/multi-user.target.wants" / f"{u}.service").is_symlink()
    # The replicate daemons are the site's choice (issue 15): installed, not enabled.
    for u in ("vigil-replicate-publish", "vigil-replicate-follow"):
        assert (root / "lib/systemd/system" / f"{u}.service").exists()
        assert not (root / "etc/systemd/system/multi-user.target.wants" / f"{u}.service").exists()
    post = subprocess.run(["dpkg-deb", "-I", str(deb), "postinst"], capture_output=True,
                          text=True, check=True).stdout
    assert "deb-systemd-helper enable" in post and "deb-systemd-invoke start" not in post, post
    assert post.index("systemd-sysusers") < post.index("systemd-tmpfiles"), \
        "the user must exist before tmpfiles gives it its directories"


@pytest.mark.parametrize("name", ["vigil-responder", "vigil-crlgen"])
def test_units_verify_and_point_at_files_that_exist(package, tmp_path, name):
    _, root = package
    unit = (root / "lib/systemd/system" / f"{name}.service").read_text()
    paths = re.findall(r"^(?:ExecStart|ExecStartPre|ReadOnlyPaths|ReadWritePaths|"
                       r"ConditionPathExists)=-?(/\S+)", unit, re.M)
    assert len(paths) >= 4, unit
    for p in paths:
        if p.endswith(("/data.mdb", "/lock.mdb")):
            p = str(Path(p).parent)  # made by `vigil-store init`, not the package
        assert (root / p.lstrip("/")).exists(), f"{name}: {p} is not in the package's root"
    # verify wants the binaries at their paths: point them at the root's.
    p = tmp_path / f"{name}.service"
    p.write_text(unit.replace("/usr/bin/", f"{root}/usr/bin/"))
    r = subprocess.run(["systemd-analyze", "--man=no", "verify", str(p)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr


def prom(machine, path, query=None):
    q = f" --data-urlencode 'query={query}'" if query else ""
    r = machine.run(f"curl -fsS -G{q} http://127.0.0.1:9090/api/v1/{path}", timeout=30)
    return json.loads(r.stdout)["data"]


def run_install_guide(machine, timeout=300):
    """doc/install.md from its third block on, in order, each block in a root
    shell with the variables of the first; returns what step 10 printed."""
    blocks = guide_blocks()
    assert len(blocks) == 10, "doc/install.md: the test expects ten steps"
    for i, block in enumerate(blocks[2:], 3):
        r = machine.run(BASH + blocks[0] + "\n" + block, check=False, timeout=timeout)
        assert r.returncode == 0, f"doc/install.md block {i} failed (exit {r.returncode}):\n" \
            f"{block}\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"
    return r.stdout


def test_install_guide_runs_as_written(machine, package):
    """doc/install.md as written (run_install_guide): the package installed
    with apt, keys, the configuration, the store fed by vigil-import@.timer,
    the units started by systemd, nginx in front, Prometheus and
    node_exporter; then check_deployment."""
    check_deployment(machine, run_install_guide(machine))


def check_deployment(machine, tried):
    """What the install guide made, checked independently of what it printed:
    every unit active, OCSP through the public name with `openssl ocsp`, the
    CRL through the edge with python3-cryptography, Prometheus scraping both
    jobs with every alert rule evaluated without error and none firing, the
    watchdog and prune passing under their units, and no error line in the
    units' journal. Also run by tests/walkthrough/fresh_debian.py."""
    # Step 10 showed good, then revoked, then the serial in the edge's CRL.
    status = re.findall(r"^test\.pem: (good|revoked)$", tried, re.M)
    assert status == ["good", "revoked"], tried

    units = ["vigil-responder", "vigil-crlgen", "nginx", "prometheus",
             "prometheus-node-exporter", "vigil-import@issuing-1.timer",
             "vigil-crl-check.timer"]
    r = machine.run("systemctl is-active " + " ".join(units), check=False)
    assert r.stdout.split() == ["active"] * len(units), r.stdout

    # The test certificate, as an independent client sees it through the edge.
    test_pem = x509.load_pem_x509_certificate(machine.path("/root/test.pem").read_bytes())
    machine.run("curl -fsS -o /root/edge.crl http://ocsp.example.com/crl/issuing-1.crl")
    crl = x509.load_der_x509_crl(machine.path("/root/edge.crl").read_bytes())
    ca_cert = x509.load_pem_x509_certificate(machine.path("/srv/ca/issuing-1/ca.pem")
                                             .read_bytes())
    assert crl.is_signature_valid(ca_cert.public_key())
    assert crl.get_revoked_certificate_by_serial_number(test_pem.serial_number) is not None
    leaf = sorted(machine.path("/srv/ca/issuing-1/newcerts").glob("*.pem"))[1]
    r = machine.run(f"openssl ocsp -issuer /srv/ca/issuing-1/ca.pem -cert /srv/ca/issuing-1/"
                    f"newcerts/{leaf.name} -url http://ocsp.example.com/ "
                    f"-CAfile /srv/ca/issuing-1/ca.pem")
    assert f"newcerts/{leaf.name}: good" in r.stdout and "Response verify OK" in r.stderr, r

    # Monitored: both jobs scraped, the rules loaded and evaluated cleanly,
    # the import's and crlgen's metrics in Prometheus.
    deadline = time.monotonic() + 90
    want = ['vigil_store_import_last_success_seconds{ca="issuing-1"}',
            'vigil_crl_next_update_seconds{ca="issuing-1"}']
    while True:
        targets = prom(machine, "targets")["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        rules = [r for g in prom(machine, "rules")["groups"] for r in g["rules"]]
        found = [q for q in want if prom(machine, "query", q)["result"]]
        evaluated = rules and all(r.get("lastEvaluation", "").startswith("2") and
                                  not r["lastEvaluation"].startswith("0001") for r in rules)
        if health == {"vigil-responder": "up", "node": "up"} and evaluated \
                and found == want:
            break
        assert time.monotonic() < deadline, (health, found, rules[:2])
        time.sleep(2)
    assert len(rules) >= 15 and all(r["health"] == "ok" for r in rules), rules
    firing = [a for a in prom(machine, "alerts")["alerts"] if a["state"] == "firing"]
    assert not firing, firing

    # The watchdog (its timer's first run is minutes away) and the daily
    # prune, each in its shipped sandbox: both pass on this deployment.
    machine.run("systemctl start vigil-crl-check.service vigil-prune.service")
    check = machine.path("/var/lib/vigil/metrics/vigil-crl-check.prom").read_text()
    assert re.search(r'^vigil_crl_check_ok\{[^}]*ca="issuing-1"[^}]*\} 1$', check, re.M), check

    for u in ("vigil-responder", "vigil-crlgen", "vigil-import@issuing-1", "vigil-prune",
              "vigil-crl-check"):
        errors = [ln for ln in machine.journal(u).splitlines() if "level=error" in ln]
        assert not errors, (u, errors)


def unit_pid(machine, unit):
    r = machine.run(f"systemctl show -P MainPID {unit}")
    return int(r.stdout.strip())


def test_restore_under_systemd(machine, package):
    """deploy/INCIDENT.md's restore, under the shipped units and a real
    systemd, on the deployment the install guide made: the responder and
    crlgen, whose sandbox binds the replaced store, exit for a restart and
    systemd starts them on the restored store; crlgen refuses the CRL that
    would drop a revocation made after the backup and lists it; revoking it
    again as listed publishes it, and the edge serves it."""
    if not machine.path("/var/lib/vigil/crl/issuing-1.crl").exists():
        pytest.skip("needs the deployment of test_install_guide_runs_as_written")
    F = "-c /etc/vigil/vigil.conf"
    machine.run("install -d -o vigil -g vigil -m 750 /var/backups/vigil")
    machine.run(f"runuser -u vigil -- vigil-store {F} backup /var/backups/vigil/before")
    leaf = sorted(machine.path("/srv/ca/issuing-1/newcerts").glob("*.pem"))[2]
    serial = x509.load_pem_x509_certificate(leaf.read_bytes()).serial_number
    machine.run(f"vigil-store {F} revoke issuing-1 {serial:X} --reason keyCompromise")
    wait_listed(machine, "/var/lib/vigil/crl/issuing-1.crl", serial)  # published
    pids = {u: unit_pid(machine, u) for u in ("vigil-responder", "vigil-crlgen")}
    machine.run(f"runuser -u vigil -- vigil-store {F} restore /var/backups/vigil/before")
    deadline = time.monotonic() + 30
    while True:
        now = {u: unit_pid(machine, u) for u in pids}
        healthy = machine.run("curl -fsS http://127.0.0.1:8080/healthz", check=False)
        if all(now[u] not in (0, pids[u]) for u in pids) and healthy.returncode == 0 \
                and machine.path("/var/lib/vigil/crl/issuing-1.missing").exists():
            break
        assert time.monotonic() < deadline, (pids, now, healthy.stdout,
                                             machine.journal("vigil-responder")[-2000:])
        time.sleep(0.5)
    assert "event=store_reopen_failed" in machine.journal("vigil-responder")
    missing = machine.path("/var/lib/vigil/crl/issuing-1.missing").read_text()
    assert f"{serial:X}".lstrip("0") in missing.upper(), missing
    # INCIDENT.md's command, as written there, revokes it again.
    machine.run(f"sed 's/ #//' /var/lib/vigil/crl/issuing-1.missing | runuser -u vigil -- "
                f"xargs -L1 vigil-store {F} revoke issuing-1")
    wait_listed(machine, "http://ocsp.example.com/crl/issuing-1.crl", serial)


def wait_listed(machine, where, serial, timeout=30):
    """Until the CRL at |where| (a file of the machine, or a URL fetched
    there) lists |serial|."""
    deadline = time.monotonic() + timeout
    while True:
        if where.startswith("http"):
            machine.run(f"curl -fsS -o /root/fetched.crl {where}")
            where_now = machine.path("/root/fetched.crl")
        else:
            where_now = machine.path(where)
        crl = x509.load_der_x509_crl(where_now.read_bytes())
        if crl.get_revoked_certificate_by_serial_number(serial) is not None:
            return
        assert time.monotonic() < deadline, f"{where} never listed {serial:X}"
        time.sleep(0.5)


def section_blocks(doc, heading):
    text = doc.read_text()
    start = text.index("\n" + heading + "\n")
    end = text.find("\n## ", start + 1)
    return BLOCK.findall(text[start:end if end > 0 else None])


def test_hsm_guide_under_systemd(machine, package):
    """doc/hsm.md's "Under the shipped units", as written, on the deployment
    of the install guide: the CA key imported into SoftHSM2 and its file
    shredded, the PIN handed to vigil-crlgen as a systemd credential. Then a
    revocation reaches the edge's CRL, signed through the token (verified
    with the CA certificate by python3-cryptography), and the vigil user
    cannot read the PIN file."""
    if not machine.path("/var/lib/vigil/crl/issuing-1.crl").exists():
        pytest.skip("needs the deployment of test_install_guide_runs_as_written")
    heading = "## Under the shipped units: the CRL key into a token"
    blocks = section_blocks(SRC / "doc" / "hsm.md", heading)
    assert len(blocks) == 1, blocks
    r = machine.run(BASH + guide_blocks()[0] + "\n" + blocks[0], check=False, timeout=300)
    assert r.returncode == 0, f"doc/hsm.md: {heading} failed:\n{r.stdout}\n{r.stderr}"
    assert not machine.run("test -e /etc/vigil/issuing-1/ca.key", check=False).returncode == 0
    assert machine.run("runuser -u vigil -- cat /etc/vigil/token.pin", check=False).returncode
    started = machine.run("date -u +'%Y-%m-%d %H:%M:%S'").stdout.strip()
    leaf = sorted(machine.path("/srv/ca/issuing-1/newcerts").glob("*.pem"))[3]
    serial = x509.load_pem_x509_certificate(leaf.read_bytes()).serial_number
    machine.run(f"vigil-store -c /etc/vigil/vigil.conf revoke issuing-1 {serial:X} "
                f"--reason cessationOfOperation")
    wait_listed(machine, "http://ocsp.example.com/crl/issuing-1.crl", serial)
    crl = x509.load_der_x509_crl(machine.path("/root/fetched.crl").read_bytes())
    ca_cert = x509.load_pem_x509_certificate(machine.path("/srv/ca/issuing-1/ca.pem")
                                             .read_bytes())
    assert crl.is_signature_valid(ca_cert.public_key())
    log = machine.run(f"journalctl -u vigil-crlgen --since '{started}' --no-pager -o cat").stdout
    assert "event=crl_published" in log and "level=error" not in log, log


def test_crl_out_drop_in(machine, package):
    """doc/production.md's "Publishing CRLs elsewhere", as written: crlgen
    publishes into the new directory through its drop-in (its sandbox
    refuses any other), and the responder and the edge serve from it."""
    if not machine.path("/var/lib/vigil/crl/issuing-1.crl").exists():
        pytest.skip("needs the deployment of test_install_guide_runs_as_written")
    blocks = section_blocks(SRC / "doc" / "production.md", "### Publishing CRLs elsewhere")
    assert len(blocks) == 1, blocks
    r = machine.run(BASH + blocks[0], check=False, timeout=120)
    assert r.returncode == 0, f"doc/production.md: {r.stdout}\n{r.stderr}"
    serial = 0x7A7A7A  # from an investigation: never seen issued, revoked all the same
    machine.run(f"vigil-store -c /etc/vigil/vigil.conf revoke issuing-1 {serial:X} "
                f"--reason keyCompromise")
    wait_listed(machine, "/srv/crl/issuing-1.crl", serial)
    wait_listed(machine, "http://ocsp.example.com/crl/issuing-1.crl", serial)
