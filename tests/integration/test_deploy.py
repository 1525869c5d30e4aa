# SPDX-License-Identifier: Apache-2.0
"""Deployment files (issue 6): `meson install` puts binaries, units, tmpfiles,
sysusers and the example configuration where a packager expects them, with
prefix, sysconfdir and localstatedir honoured, and `systemd-analyze verify`
accepts the units."""
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD

SRC = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A separate build with meson's defaults (the project's prefix /usr,
    so /etc and /var: where the documents say), installed into a DESTDIR."""
    root = tmp_path_factory.mktemp("install")
    bdir = root / "build"
    dest = root / "dest"
    subprocess.run(["meson", "setup", str(bdir), str(SRC), "-Dunit_tests=disabled",
                    "-Dintegration_tests=disabled"], check=True, capture_output=True)
    subprocess.run(["meson", "compile", "-C", str(bdir)], check=True, capture_output=True)
    r = subprocess.run(["meson", "install", "-C", str(bdir), "--destdir", str(dest)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return dest


def unit_path(root, name, kind="service"):
    """systemd's own unit directory for prefix /usr: /usr/lib/systemd/system
    (or /lib/systemd/system where /lib is not merged)."""
    for d in ("usr/lib/systemd/system", "lib/systemd/system"):
        if (root / d / f"{name}.{kind}").exists():
            return root / d / f"{name}.{kind}"
    raise AssertionError(f"{name}.{kind} not installed")


def test_layout(installed):
    for f in ["usr/bin/vigil-store", "usr/bin/vigil-responder", "usr/bin/vigil-crlgen",
              "usr/lib/tmpfiles.d/vigil.conf", "usr/lib/sysusers.d/vigil.conf",
              "etc/vigil/vigil.conf.example",
              "usr/share/man/man8/vigil-store.8", "usr/share/man/man8/vigil-responder.8",
              "usr/share/man/man8/vigil-crlgen.8", "usr/share/man/man5/vigil.conf.5"]:
        assert (installed / f).exists(), f
    unit = unit_path(installed, "vigil-responder").read_text()
    assert "ExecStart=/usr/bin/vigil-responder -c /etc/vigil/vigil.conf" in unit
    assert "ReadOnlyPaths=/var/lib/vigil/store" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    tmpf = (installed / "usr/lib/tmpfiles.d/vigil.conf").read_text()
    assert "/var/lib/vigil/store" in tmpf and "/var/lib/vigil/crl" in tmpf


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("name", ["vigil-responder", "vigil-crlgen", "vigil-import@",
                                  "vigil-crl-check", "vigil-prune",
                                  "vigil-replicate-publish", "vigil-replicate-follow"])
def test_systemd_analyze_verify(installed, tmp_path, name):
    # verify wants the ExecStart binaries at their paths: point them at the
    # DESTDIR copies, which are the same files; a template as one instance.
    unit = unit_path(installed, name).read_text()
    unit = unit.replace("/usr/bin/", f"{installed}/usr/bin/")
    if name.endswith("@"):
        env = tmp_path / "import.env"
        env.write_text("INDEX=/srv/ca/index.txt\nCERTS=/srv/ca/newcerts\n")
        unit = unit.replace("/etc/vigil/import/%i.env", str(env))
        name += "issuing-1"
        timer = unit_path(installed, "vigil-import@", "timer").read_text()
        (tmp_path / f"{name}.timer").write_text(timer)
    elif name == "vigil-prune":
        timer = unit_path(installed, "vigil-prune", "timer").read_text()
        (tmp_path / f"{name}.timer").write_text(timer)
    p = tmp_path / f"{name}.service"
    p.write_text(unit)
    files = [str(p)] + [str(t) for t in tmp_path.glob("*.timer")]
    r = subprocess.run(["systemd-analyze", "--man=no", "verify", *files], capture_output=True,
                       text=True)
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr


def test_crl_check_timer(installed, tmp_path):
    """The watchdog (vigil-crlgen --check) runs every 5 minutes from a timer;
    its service writes the node_exporter textfile atomically."""
    d = unit_path(installed, "vigil-crl-check").parent
    timer = (d / "vigil-crl-check.timer").read_text()
    assert "OnUnitActiveSec=5min" in timer and "WantedBy=timers.target" in timer
    svc = (d / "vigil-crl-check.service").read_text()
    assert "/usr/bin/vigil-crlgen -c /etc/vigil/vigil.conf --check" in svc
    assert "ReadWritePaths=/var/lib/vigil/metrics" in svc
    tmpf = (installed / "usr/lib/tmpfiles.d/vigil.conf").read_text()
    assert "/var/lib/vigil/metrics" in tmpf
    if shutil.which("systemd-analyze") is None:
        return
    for name in ("vigil-crl-check.service", "vigil-crl-check.timer"):
        (tmp_path / name).write_text((d / name).read_text().replace(
            "/usr/bin/", f"{installed}/usr/bin/"))
    r = subprocess.run(["systemd-analyze", "--man=no", "verify",
                        str(tmp_path / "vigil-crl-check.timer")], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr


def conf_values(text):
    """{(section, key): value} of an INI text, comments left out."""
    out, sec = {}, None
    for ln in text.splitlines():
        ln = ln.split(";", 1)[0].strip()
        if ln.startswith("["):
            sec = ln.strip("[]")
        elif "=" in ln and sec:
            k, v = (x.strip() for x in ln.split("=", 1))
            out[(sec, k)] = v
    return out


def test_shipped_files_agree(installed):
    """The example configuration, the units and the edge file describe one
    deployment (issue 17): the edge's upstream is the responder's listen
    address, the store and CRL paths are those the units open, the access
    log's directory is the responder's LogsDirectory, and the units only
    start once the store exists."""
    ex = conf_values((installed / "etc/vigil/vigil.conf.example").read_text())
    resp = unit_path(installed, "vigil-responder").read_text()
    crlg = unit_path(installed, "vigil-crlgen").read_text()
    store, out = ex[("store", "path")], ex[("crlgen", "out")]
    for unit in (resp, crlg):
        assert f"ReadOnlyPaths={store}\n" in unit
        assert f"ReadWritePaths=-{store}/lock.mdb\n" in unit
        assert f"ConditionPathExists={store}/data.mdb\n" in unit
    assert f"ReadWritePaths={out}\n" in crlg
    tmpf = (installed / "usr/lib/tmpfiles.d/vigil.conf").read_text()
    assert f" {store} " in tmpf and f" {out} " in tmpf
    # access_log, commented out in the example, goes to the LogsDirectory.
    ex_text = (installed / "etc/vigil/vigil.conf.example").read_text()
    log = [ln for ln in ex_text.splitlines() if "access_log" in ln][0]
    assert "/var/log/vigil/" in log and "LogsDirectory=vigil\n" in resp
    # The edge file's upstream is the example's listen address.
    edge = (installed / "usr/share/doc/vigil/examples/nginx/vigil-edge.conf").read_text()
    listen = ex[("responder", "listen")]
    assert f"server {listen};" in edge, (listen, "upstream of vigil-edge.conf")
    # Every path the example names for keys and certificates is under /etc/vigil.
    for (sec, k), v in ex.items():
        if k in ("cert", "ocsp_cert", "ocsp_key", "crl_key"):
            assert v.startswith("/etc/vigil/"), (sec, k, v)
