# SPDX-License-Identifier: Apache-2.0
"""Helpers for the edge tests: run Debian's real varnishd (7.1, with
varnish-modules' xkey) on 127.0.0.1 with the shipped
deploy/varnish/vigil-edge.vcl, only its backend address substituted."""
import re
import subprocess
from pathlib import Path

from server_util import Server, free_port

VARNISHD = Path("/usr/sbin/varnishd")
EDGE_VCL = Path(__file__).resolve().parents[2] / "deploy" / "varnish" / "vigil-edge.vcl"
XKEY = Path("/usr/lib/x86_64-linux-gnu/varnish/vmods/libvmod_xkey.so")


def render_vcl(backend_port, src=EDGE_VCL):
    """The shipped VCL with the backend at 127.0.0.1:|backend_port|: the one
    line marked "<- set" in the backend, which must match exactly once."""
    text = Path(src).read_text()
    text, n = re.subn(r'^(\s*\.host = )"127\.0\.0\.1"; \.port = "8080";(\s*# <- set)',
                      rf'\1"127.0.0.1"; .port = "{backend_port}";\2', text, flags=re.M)
    assert n == 1, f"{src}: expected one backend line marked '<- set', found {n}"
    return text


class Varnish(Server):
    """varnishd in the foreground (-F), its working directory (-n) under
    |root|, no management port, run as the invoking user (-j none: as root it
    would otherwise switch to the varnish users, who cannot enter pytest's
    0700 directories). A context manager: always stopped (SIGTERM, then
    SIGKILL)."""

    name = "varnishd"
    stop_timeout = 15

    def __init__(self, root, backend_port, params=()):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.vcl = self.root / "vigil-edge.vcl"
        self.vcl.write_text(render_vcl(backend_port))
        self.log = self.root / "varnishd.log"
        self.params = list(params)
        self.proc = None

    def cmd(self):
        c = [str(VARNISHD), "-F", "-j", "none", "-n", str(self.root / "n"),
             "-a", f"127.0.0.1:{self.port}", "-T", "none", "-f", str(self.vcl),
             "-s", "malloc,64m", "-p", "default_grace=0"]
        for p in self.params:
            c += ["-p", p]
        return c

    def start(self, timeout=30):
        with open(self.log, "ab") as out:
            return self.spawn(self.cmd(), out, subprocess.STDOUT, timeout, "did not answer")

    def ready(self):
        try:
            st, _, _ = self.request("GET", "/metrics", timeout=2)
            return st == 404
        except OSError:
            return False

    def logs(self):
        return self.log.read_text(errors="replace")[-4000:]
