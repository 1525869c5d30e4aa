# SPDX-License-Identifier: Apache-2.0
"""The purge targets follow a reload (SIGHUP): Debian's real Varnish (with
xkey, deploy/varnish/vigil-edge.vcl) in front of the real vigil-responder,
its purge address behind test_edge's Proxy (which counts connections).

What each test shows:
- an edge added by SIGHUP to a responder started with none gets a purger:
  a revocation reaches Varnish through a purge (max_age 60 s cannot explain
  it), logged (event=edge_purged) and counted on /metrics; removed by
  SIGHUP, its thread is joined (one thread fewer in /proc, /metrics no longer
  names it) and no purge reaches it any more;
- an edge kept across a reload keeps its purger: no state file read again,
  no start-up purge (its acknowledged counter and sent count stay), while a
  purge_command added by the same reload starts as at start (the CRL tag
  once, nothing from before it); purge_command_timeout changed by SIGHUP
  kills the next run at the new timeout; removing a purge_command that hangs
  kills it (the purge in flight is abandoned); a bad configuration keeps the
  running edges; a changed state_dir says it needs a restart;
- an nginx edge (deploy/nginx, the cache_purge module) added by SIGHUP next to
  a kept Varnish edge purges nginx's cached answer on the next revocation.
"""
import re
import signal
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

import pki
from conftest import Runner, write_config
from nginx_util import NGINX, Nginx
from responder_util import Responder, load_cert
from server_util import free_port, stop_all
from test_edge import Proxy, ocsp_path, poll_until, status
from varnish_util import VARNISHD, XKEY, Varnish

pytestmark = pytest.mark.skipif(
    not (VARNISHD.exists() and XKEY.exists()),
    reason="needs varnish and varnish-modules (deploy/setup.sh installs them)")

MAX_AGE = 60  # longer than any test: only a purge explains a new answer at Varnish


class Site:
    """One CA, its store and CRL, the responder on a port chosen first,
    Varnish in front of it and a Proxy before Varnish's purge address.
    Always stopped by its owner (stop())."""

    def __init__(self, root, name, leaves):
        self.root = Path(root)
        self.ca = pki.CA(self.root, name, "ec")
        self.ca_cert = load_cert(self.ca.cert)
        self.leaf = {n: self.ca.issue(f"{n}.example") for n in leaves}
        self.port = free_port()
        self.varnish = Varnish(self.root / "varnish", self.port)
        self.proxy = Proxy(self.varnish.port)
        self.purge_url = f"http://127.0.0.1:{self.proxy.port}/"
        self.config = self.root / "vigil.conf"
        self.configure()
        self.run = Runner(self.config)
        self.resp = None

    def configure(self, **edge):
        write_config(self.config, self.root / "store", [self.ca], workers=2,
                     responder={"listen": f"127.0.0.1:{self.port}"},
                     edge={"max_age": MAX_AGE, "state_dir": self.root / "edge", **edge})

    def reload(self, **edge):
        """Rewrite [edge] and SIGHUP; returns the log index before it."""
        self.configure(**edge)
        n = self.resp.n_lines()
        self.resp.signal(signal.SIGHUP)
        self.resp.wait_log(r"event=(reloaded|reload_failed)", 5, n)
        return n

    def start(self):
        self.run.seed(self.ca)
        self.run.crlgen("--once", timeout=60)
        self.varnish.start()
        self.resp = Responder(self.config).start()
        return self

    def stop(self):
        stop_all((self.varnish.stop, self.proxy.close), self.resp)

    def path(self, name):
        return ocsp_path(load_cert(self.leaf[name][1]), self.ca_cert)

    def revoke(self, name):
        self.run.store("revoke", self.ca.name, self.leaf[name][0], "--reason", "keyCompromise")

    def cached_good(self, name):
        """Varnish holds |name|'s good answer (fetched, then a HIT)."""
        p = self.path(name)
        self.varnish.request("GET", p)
        _, h, b = self.varnish.request("GET", p)
        assert h["x-cache"] == "HIT" and status(b, self.ca_cert) == ocsp.OCSPCertStatus.GOOD

    def at_varnish(self, name):
        return status(self.varnish.request("GET", self.path(name))[2], self.ca_cert)

    def edge_metrics(self):
        """Every vigil_edge_* sample naming an edge: {(name, edge, kind): value}."""
        _, _, body = self.resp.request("GET", "/metrics")
        return {(m[0], m[1], m[2]): float(m[3]) for m in re.findall(
            r'^(vigil_edge_\w+)\{edge="([^"]*)",kind="(\w+)"\} ([0-9.]+)$', body.decode(), re.M)}

    def threads(self):
        return len(list(Path(f"/proc/{self.resp.proc.pid}/task").iterdir()))


def stable_threads(site):
    """The responder's thread count once it stays the same for 300 ms."""
    last, since = site.threads(), time.monotonic()
    deadline = since + 5
    while time.monotonic() < deadline:
        time.sleep(0.05)
        n = site.threads()
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= 0.3:
            return n
    return last


def test_edge_added_then_removed_by_sighup(tmp_path):
    s = Site(tmp_path, "rl1", ("a", "b"))
    try:
        s.start()
        assert s.edge_metrics() == {}
        threads0 = stable_threads(s)
        s.cached_good("a")
        assert s.proxy.seen == 0

        # Added by SIGHUP: a purger, which purges the CRL once as at start.
        n = s.reload(purge_varnish=s.purge_url)
        s.resp.wait_log(r"event=edge_reloaded kept=0 added=1 removed=0", 5, n)
        s.resp.wait_log(rf"event=edge_purger kind=varnish edge={re.escape(s.purge_url)}", 5, n)
        s.resp.wait_log(rf"event=edge_purged edge={re.escape(s.purge_url)} .*crls=1", 5, n)
        assert stable_threads(s) == threads0 + 1
        # Its state began at the store's counter then: the revocation before
        # nothing, so "a" is still cached good.
        assert s.at_varnish("a") == ocsp.OCSPCertStatus.GOOD

        n = s.resp.n_lines()
        s.revoke("a")
        ok, took = poll_until(lambda: s.at_varnish("a") == ocsp.OCSPCertStatus.REVOKED, 5)
        assert ok and took < 2, f"Varnish still served the good answer after {took:.2f}s"
        line = s.resp.wait_log(rf"event=edge_purged edge={re.escape(s.purge_url)} "
                               r"counter=(\d+) tags=1", 5, n)
        counter = int(re.search(r"counter=(\d+)", line).group(1))
        m = s.edge_metrics()
        key = (s.purge_url, "varnish")
        assert m[("vigil_edge_acked_counter", *key)] == counter
        assert m[("vigil_edge_tags_purged_total", *key)] >= 2  # the CRL's tag, then "a"'s
        assert m[("vigil_edge_purges_sent_total", *key)] >= 2
        assert m[("vigil_edge_purges_pending", *key)] == 0

        # Removed by SIGHUP: joined, gone from /metrics, never purged again.
        s.cached_good("b")
        n = s.reload()
        s.resp.wait_log(rf"event=edge_purger_stopped kind=varnish edge={re.escape(s.purge_url)} "
                        rf"acked={counter}", 5, n)
        s.resp.wait_log(r"event=edge_reloaded kept=0 added=0 removed=1", 5, n)
        assert s.edge_metrics() == {}
        assert stable_threads(s) == threads0
        seen = s.proxy.seen
        n = s.resp.n_lines()
        s.revoke("b")
        # The responder answers revoked within a tick; Varnish keeps its copy.
        ok, _ = poll_until(lambda: status(s.resp.request("GET", s.path("b"))[2], s.ca_cert)
                           == ocsp.OCSPCertStatus.REVOKED, 2)
        assert ok
        time.sleep(1.0)
        assert s.at_varnish("b") == ocsp.OCSPCertStatus.GOOD
        assert s.proxy.seen == seen
        assert not [l for l in s.resp.lines[n:] if "event=edge_purged" in l]
        assert s.resp.stop() == 0  # and, in an ASan build, no leak report
    finally:
        s.stop()


def test_edge_kept_across_reload_is_not_purged_again(tmp_path):
    s = Site(tmp_path, "rl2", ("a", "b"))
    tags = tmp_path / "tags.txt"
    mode = tmp_path / "mode"
    mode.write_text("ok")
    pidf = tmp_path / "pid"
    script = tmp_path / "purge.sh"
    script.write_text(f"""#!/bin/sh
echo $$ > {pidf}
case "$(cat {mode})" in
ok) cat >> {tags}; exit 0 ;;
hang) exec sleep 1000 ;;
esac
""")
    script.chmod(0o755)
    s.configure(purge_varnish=s.purge_url)
    try:
        s.start()
        key = (s.purge_url, "varnish")
        s.resp.wait_log(rf"event=edge_purged edge={re.escape(s.purge_url)} .*crls=1", 10)
        n = s.resp.n_lines()
        s.revoke("a")
        s.resp.wait_log(rf"event=edge_purged edge={re.escape(s.purge_url)} .*tags=1", 5, n)
        m0 = s.edge_metrics()
        acked = m0[("vigil_edge_acked_counter", *key)]
        state = next((tmp_path / "edge").glob("varnish-*.state"))
        assert f"acked={int(acked)}\n" in state.read_text()

        # Kept, and a purge_command added: only the new one purges (the CRL
        # tag once, nothing from before it).
        n = s.reload(purge_varnish=s.purge_url, purge_command=script)
        s.resp.wait_log(r"event=edge_reloaded kept=1 added=1 removed=0", 5, n)
        s.resp.wait_log(r"event=edge_purged edge=\S+purge\.sh .*tags=1 crls=1", 5, n)
        time.sleep(0.5)
        after = s.resp.lines[n:]
        assert not [l for l in after if f"edge={s.purge_url}" in l and
                    re.search(r"event=edge_(purged|state|purger) ", l)], after
        m1 = s.edge_metrics()
        for k in ("vigil_edge_acked_counter", "vigil_edge_purges_sent_total",
                  "vigil_edge_tags_purged_total"):
            assert m1[(k, *key)] == m0[(k, *key)], k
        assert tags.read_text() == f"vigil~{s.ca.name}~crl\n"

        # A bad configuration: refused, both edges run on and purge.
        s.configure(purge_varnish="ftp://x")
        n = s.resp.n_lines()
        s.resp.signal(signal.SIGHUP)
        s.resp.wait_log(r"event=reload_failed .*\[edge\] purge_varnish = ftp://x", 5, n)
        assert {k[1] for k in s.edge_metrics()} == {s.purge_url, str(script)}
        # (vigil-store refuses the bad file too: the good one back, no SIGHUP.)
        s.configure(purge_varnish=s.purge_url, purge_command=script)
        s.cached_good("b")
        s.revoke("b")
        for pat in (rf"edge={re.escape(s.purge_url)} .*tags=1", r"edge=\S+purge\.sh .*tags=1"):
            s.resp.wait_log(r"event=edge_purged " + pat, 5, n)
        assert s.at_varnish("b") == ocsp.OCSPCertStatus.REVOKED
        serial_b = s.leaf["b"][0].upper().zfill(len(s.leaf["b"][0]) + len(s.leaf["b"][0]) % 2)
        assert tags.read_text().splitlines() == [f"vigil~{s.ca.name}~crl",
                                                 f"vigil~{s.ca.name}~{serial_b}"]

        # purge_command_timeout follows a reload: a hung run is killed at 1 s.
        mode.write_text("hang")
        n = s.reload(purge_varnish=s.purge_url, purge_command=script,
                     purge_command_timeout="1s", state_dir=tmp_path / "elsewhere")
        s.resp.wait_log(r"event=reload_ignored key=edge\.state_dir reason=needs_restart", 5, n)
        s.resp.wait_log(r"event=edge_reloaded kept=2 added=0 removed=0", 5, n)
        t0 = time.monotonic()
        s.run.crlgen("--once", timeout=60)
        s.resp.wait_log(r"event=edge_purge_failed edge=\S+purge\.sh .*killed: still running "
                        r"at its timeout", 10, n)
        assert time.monotonic() - t0 < 8

        # Back to 1 h: the next run (started after a failed one) hangs on;
        # removed meanwhile, it is killed and the thread joined.
        n = s.reload(purge_varnish=s.purge_url, purge_command=script,
                     purge_command_timeout="1h")

        def hanging_past_1s():
            """The pid of a run that outlives 1 s with no failure logged: one
            started under the 1 h timeout (None until there is one)."""
            pid, k = pidf.read_text(), s.resp.n_lines()
            time.sleep(1.3)
            failed = [l for l in s.resp.lines[k:] if "event=edge_purge_failed" in l]
            alive = Path(f"/proc/{int(pid)}").exists()
            return int(pid) if pidf.read_text() == pid and not failed and alive else None
        pid, _ = poll_until(hanging_past_1s, 10, 0)
        assert pid
        n = s.reload(purge_varnish=s.purge_url, purge_command_timeout="1h")
        s.resp.wait_log(r"event=edge_purger_stopped kind=command edge=\S+purge\.sh", 5, n)
        s.resp.wait_log(r"event=edge_reloaded kept=1 added=0 removed=1", 5, n)
        gone, _ = poll_until(lambda: not Path(f"/proc/{pid}").exists() or
                             Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", 2, 0.05)
        assert gone
        assert {k[1] for k in s.edge_metrics()} == {s.purge_url}
        assert not list((tmp_path / "elsewhere").glob("*.state"))
        assert s.resp.stop() == 0
    finally:
        s.stop()


@pytest.mark.skipif(not NGINX.exists(), reason="needs nginx (deploy/setup.sh installs it)")
def test_nginx_edge_added_by_sighup(tmp_path):
    """An nginx edge (deploy/nginx/vigil-edge.conf, the cache_purge module)
    added by SIGHUP next to a running Varnish edge gets its own purger: it
    purges the CRL nginx holds once, as at start, then each new CRL as it is
    published (nginx purges URLs, not tags: its OCSP answers rely on max_age),
    while the kept Varnish edge is not purged again."""
    s = Site(tmp_path, "rl4", ("a",))
    ng = Nginx(tmp_path / "nginx", s.port)
    nurl = f"http://127.0.0.1:{ng.purge_port}/"
    crl = f"/crl/{s.ca.name}.crl"
    s.configure(purge_varnish=s.purge_url)

    def at_nginx():
        """nginx's cache decision and the CRL's number and revoked serials."""
        st, h, b = ng.request("GET", crl)
        assert st == 200
        c = x509.load_der_x509_crl(b)
        return (h["x-cache-status"], c.extensions.get_extension_for_class(x509.CRLNumber).value
                .crl_number, {r.serial_number for r in c})

    try:
        ng.start()
        s.start()
        s.resp.wait_log(rf"event=edge_purged edge={re.escape(s.purge_url)} .*crls=1", 10)
        _, number, _ = at_nginx()
        assert at_nginx() == ("HIT", number, set())
        sent = s.edge_metrics()[("vigil_edge_purges_sent_total", s.purge_url, "varnish")]

        n = s.reload(purge_varnish=s.purge_url, purge_nginx=nurl)
        s.resp.wait_log(r"event=edge_reloaded kept=1 added=1 removed=0", 5, n)
        s.resp.wait_log(rf"event=edge_purger kind=nginx edge={re.escape(nurl)}", 5, n)
        s.resp.wait_log(rf"event=edge_purged edge={re.escape(nurl)} .*crls=1", 5, n)
        # The start-up purge took nginx's copy; the kept Varnish edge was not
        # purged again.
        assert at_nginx()[0] == "MISS"
        assert at_nginx()[0] == "HIT"
        assert s.edge_metrics()[("vigil_edge_purges_sent_total", s.purge_url, "varnish")] == sent

        # A revocation and the CRL that lists it: nginx serves the new CRL.
        n = s.resp.n_lines()
        s.revoke("a")
        s.run.crlgen("--once", timeout=60)
        serial_a = int(s.leaf["a"][0], 16)
        ok, took = poll_until(lambda: serial_a in at_nginx()[2], 5)
        assert ok and took < 2, f"nginx still served CRL {number} after {took:.2f}s"
        s.resp.wait_log(rf"event=edge_purged edge={re.escape(nurl)} counter=\d+ tags=\d+ crls=1",
                        5, n)
        assert at_nginx()[1] > number
        m = s.edge_metrics()
        assert m[("vigil_edge_purges_pending", nurl, "nginx")] == 0
        assert s.resp.stop() == 0
    finally:
        stop_all((s.varnish.stop, ng.stop, s.proxy.close), s.resp)
