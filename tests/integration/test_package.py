# SPDX-License-Identifier: Apache-2.0
"""The Debian package (issue 17): built from the tree with debhelper's meson
support, lintian clean, installed with `dpkg --root` into a throw-away root
(its maintainer scripts run against that root: the vigil user, the
directories, the enabled units), and its units accepted by
`systemd-analyze verify` with every path they name present in the root."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2]
TOOLS = ["dpkg-buildpackage", "dh", "lintian", "dpkg", "systemd-analyze", "git"]

pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                reason="needs " + ", ".join(TOOLS))


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
def package(tmp_path_factory):
    top = tmp_path_factory.mktemp("deb")
    tree = top / "vigil"
    copy_tree(tree)
    env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck parallel=2")
    r = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    debs = [p for p in top.glob("vigil_*.deb")]
    assert len(debs) == 1, list(top.iterdir())
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
    for d, mode in (("var/lib/vigil", 0o750), ("var/lib/vigil/store", 0o2770),
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
