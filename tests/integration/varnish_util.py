# SPDX-License-Identifier: Apache-2.0
"""Helpers for the edge tests: run Debian's real varnishd (7.1, with
varnish-modules' xkey) on 127.0.0.1 with the shipped
deploy/varnish/vigil-edge.vcl, only its backend address substituted."""
import http.client
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from nginx_util import free_port
from responder_util import _die_with_parent

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


class Varnish:
    """varnishd in the foreground (-F), its working directory (-n) under
    |root|, no management port, run as the invoking user (-j none: as root it
    would otherwise switch to the varnish users, who cannot enter pytest's
    0700 directories). A context manager: always stopped (SIGTERM, then
    SIGKILL)."""

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
            self.proc = subprocess.Popen(self.cmd(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"varnishd exited {self.proc.returncode}:\n"
                                     + self.log.read_text(errors="replace")[-4000:])
            try:
                st, _, _ = self.request("GET", "/metrics", timeout=2)
                if st == 404:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise AssertionError("varnishd did not answer:\n" + self.log.read_text()[-4000:])

    def _children(self):
        try:
            t = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            return [int(x) for x in t.split()]
        except OSError:
            return []

    def stop(self, timeout=15):
        """SIGTERM to the manager, which stops its cache process; SIGKILL to
        both past |timeout|."""
        if self.proc is None or self.proc.poll() is not None:
            return
        children = self._children()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            for pid in children:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"varnishd did not stop within {timeout}s of SIGTERM")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def request(self, method, path, body=None, headers=None, timeout=15):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            h = {}
            for k, v in r.getheaders():
                h[k.lower()] = f"{h[k.lower()]}, {v}" if k.lower() in h else v
            return r.status, h, r.read()
        finally:
            c.close()
