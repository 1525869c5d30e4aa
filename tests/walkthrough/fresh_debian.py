#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""doc/install.md on a fresh Debian 12, on demand (it downloads: never part
of the test suite, which runs the same guide on a copy of the CI machine in
integration.package).

  tests/walkthrough/fresh_debian.py [--keep] [--mirror URL] [--cache DIR]

1. debootstrap bookworm (minbase with systemd, what a cloud image boots)
   into DIR (default /var/cache/vigil-walkthrough/bookworm), once;
2. boots that tree with systemd (tests/integration/machine_util.py) sharing
   this machine's network, so that apt fetches what the guide installs from
   the mirror, as on a new machine, with this source tree in /root/vigil,
   the CA a guide reader starts from in /srv/ca/issuing-1 (`openssl ca`,
   three certificates), and the machine named ocsp.example.com;
3. runs steps 1 to 10 as written (step 2 builds the package there, with
   the build dependencies apt fetches), then the same independent checks as
   integration.package (check_deployment).
Root only; ports 80, 8080, 8081, 9090 and 9100 of this machine must be free.
Prints one line per step and exits 0 when the deployment passes."""
import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(SRC / "tests" / "integration"))

import conftest  # noqa: E402,F401  (pki's helpers)
import machine_util  # noqa: E402
import pki  # noqa: E402
import test_package as tp  # noqa: E402

# A minbase tree has no udev: the serial console's getty would wait forever.
MASK = ["serial-getty@ttyS0.service", "getty.target", "console-getty.service"]


def debootstrap(dest, mirror):
    if (dest / "lib/systemd/systemd").exists():
        return
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["debootstrap", "--variant=minbase", "--include=systemd,systemd-sysv,dbus",
                    "bookworm", str(dest), mirror], check=True, stdout=subprocess.DEVNULL)
    shutil.copy2("/etc/resolv.conf", dest / "etc/resolv.conf")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", default="http://deb.debian.org/debian")
    ap.add_argument("--cache", type=Path, default=Path("/var/cache/vigil-walkthrough/bookworm"))
    ap.add_argument("--keep", action="store_true", help="leave the machine running")
    a = ap.parse_args()
    t0 = time.monotonic()
    debootstrap(a.cache, a.mirror)
    print(f"walkthrough: step=debootstrap tree={a.cache} s={time.monotonic() - t0:.0f}")
    work = Path(tempfile.mkdtemp(prefix="vigil-walk-"))
    m = machine_util.Machine(work / "machine", mask=MASK, lower=a.cache, network=True)
    tp.copy_tree(m.path("/root/vigil"))
    ca = pki.CA(m.path("/srv/ca"), "issuing-1", keytype="ec")
    for i in range(3):
        ca.issue(f"leaf{i}.example.com")
    ca.cnf.write_text(ca.cnf.read_text().replace(str(ca.dir), "/srv/ca/issuing-1"))
    m.path("/etc/hosts").write_text("127.0.0.1 localhost\n127.0.0.1 ocsp.example.com\n")
    m.boot()
    try:
        blocks = tp.guide_blocks()
        m.run(tp.BASH + blocks[0] + "\n" + blocks[1], timeout=1800)
        print(f"walkthrough: step=build s={time.monotonic() - t0:.0f}")
        tried = tp.run_install_guide(m, timeout=1200)
        print(f"walkthrough: step=guide blocks=3-10 s={time.monotonic() - t0:.0f}")
        tp.check_deployment(m, tried)
        print(f"walkthrough: step=checks result=ok s={time.monotonic() - t0:.0f}")
    finally:
        if a.keep:
            print(f"walkthrough: machine pid={m.pid} (nsenter -t {m.pid} -a -r -w bash)")
        else:
            m.stop()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
