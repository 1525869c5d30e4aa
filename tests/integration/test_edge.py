# SPDX-License-Identifier: Apache-2.0
"""The edge (issue 13): Debian's real Varnish (deploy/varnish/vigil-edge.vcl)
and real nginx (deploy/nginx/vigil-edge.conf with ngx_cache_purge), started
by the tests on 127.0.0.1 in front of the real vigil-responder, which purges
them when the store changes or a CRL is published.

What each test shows:
- the headers: s-maxage and CDN-Cache-Control = min([edge] max_age, time to
  nextUpdate), max-age to nextUpdate, the tags, 304 on revalidation;
- a purge only once every worker answers from the new state (16 revocations
  raced against Varnish);
- a revocation and a new CRL through Varnish in under a second, the CRL
  through nginx in under a second, the revoked answer through nginx within
  max_age + 1 s (nginx cannot purge by tag);
- RFC 5019 clients (openssl ocsp, GnuTLS ocsptool, python3-cryptography)
  verify GET answers fetched through Varnish as they do direct ones;
- an edge that refuses, hangs or answers 4xx/5xx: answering goes on, the
  failure is logged and counted, and the purge is delivered when it is back;
- the responder killed with -9 between a commit and its purge: the purge is
  sent after the restart (the state file);
- purge_command: the tags on its standard input; one that fails or never
  exits is logged (and killed);
- [edge] keys out of range: a one-line refusal at start;
- a bulk revocation of 10,000 certificates by issuance window under wrk load
  through Varnish: no failed request, every cached answer revoked at the
  edge within 2 s, the number of purge requests printed.
"""
import base64
import datetime
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

import pki
from conftest import Runner, run, sanitized_build, write_config
from nginx_util import NGINX, Nginx
from responder_util import Responder, check_response, fake_cert, load_cert, make_request
from server_util import free_port, stop_all
from varnish_util import VARNISHD, XKEY, Varnish

pytestmark = pytest.mark.skipif(
    not (NGINX.exists() and VARNISHD.exists() and XKEY.exists()),
    reason="needs nginx, varnish and varnish-modules (deploy/setup.sh installs them)")

MAX_AGE = 3  # [edge] max_age of the main stack: short, so nginx's bound is testable
ORDER_RUNS = 16  # revocations raced against Varnish in test_purge_follows_the_workers


def ocsp_path(cert, issuer, nonce=None):
    der = make_request(cert, issuer, nonce=nonce)
    return "/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="")


def status(der, ca_cert):
    return check_response(der, ca_cert).certificate_status


def cc_value(cc, key):
    for part in cc.split(","):
        k, _, v = part.strip().partition("=")
        if k.lower() == key:
            return int(v)
    return None


class Proxy:
    """A TCP forwarder in front of an edge's purge address, to make the edge
    unreachable or misbehave on demand: mode "forward", "refuse" (accepts and
    closes at once), "hang" (accepts, never answers) or an HTTP status
    ("503"). Always stopped by its owner (close())."""

    def __init__(self, target_port):
        self.target = target_port
        self._mode = "forward"
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.open = []
        self.alive = True
        self.seen = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def mode(self):
        return self._mode

    @mode.setter
    def mode(self, m):
        """A new mode applies to connections kept open too: they are closed."""
        self._mode = m
        old, self.open = self.open, []
        for c in old:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    def _accept(self):
        while self.alive:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.seen += 1
            self.open.append(c)
            mode = self.mode
            if mode == "refuse":
                c.close()
            elif mode == "hang":
                pass
            elif mode == "forward":
                threading.Thread(target=self._forward, args=(c,), daemon=True).start()
            else:
                threading.Thread(target=self._status, args=(c, int(mode)), daemon=True).start()

    def _status(self, c, code):
        try:
            c.settimeout(5)
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            c.sendall(f"HTTP/1.1 {code} Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                      .encode())
        except OSError:
            pass
        finally:
            c.close()

    def _forward(self, c):
        try:
            u = socket.create_connection(("127.0.0.1", self.target), timeout=10)
        except OSError:
            c.close()
            return
        def pipe(a, b):
            try:
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    b.sendall(d)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        threading.Thread(target=pipe, args=(u, c), daemon=True).start()
        pipe(c, u)

    def close(self):
        self.alive = False
        self.sock.close()
        for c in self.open:
            try:
                c.close()
            except OSError:
                pass


class Stack:
    """One CA and store; the responder on a port chosen first; Varnish and
    nginx in front of it; the responder purging Varnish through a Proxy and
    nginx's purge server directly."""

    def __init__(self, root, name, max_age=MAX_AGE, leaves=(), extra_edge=None, workers=2,
                 ca_keys=None):
        self.root = Path(root)
        self.ca = pki.CA(self.root, name, "ec")
        self.ca_cert = load_cert(self.ca.cert)
        self.leaf = {n: self.ca.issue(f"{n}.example") for n in leaves}
        self.port = free_port()
        self.varnish = Varnish(self.root / "varnish", self.port)
        self.nginx = Nginx(self.root / "nginx", self.port)
        self.proxy = Proxy(self.varnish.port)
        self.edge_keys = {"max_age": max_age,
                          "purge_varnish": f"http://127.0.0.1:{self.proxy.port}/",
                          "purge_nginx": f"http://127.0.0.1:{self.nginx.purge_port}/",
                          **(extra_edge or {})}
        self.config = write_config(self.root / "vigil.conf", self.root / "store",
                                   [(self.ca, ca_keys or {})],
                                   workers=workers,
                                   responder={"listen": f"127.0.0.1:{self.port}",
                                              "access_log": self.root / "access.log"},
                                   edge=self.edge_keys)
        self.run = Runner(self.config)
        self.resp = None

    def start(self):
        self.run.seed(self.ca)
        self.run.crlgen("--once", timeout=60)
        self.varnish.start()
        self.nginx.start()
        self.resp = Responder(self.config).start()
        # Every CRL is purged once at start: let that pass before a test
        # fills the edges.
        for kind in ("varnish", "nginx"):
            ok, _ = poll_until(lambda: self.metric("vigil_edge_purges_sent_total", kind), 10)
            assert ok, f"no start-up purge of {kind}:\n" + "\n".join(self.resp.lines)
        return self

    def stop(self):
        """Everything stopped; the responder's exit checked last (its
        sanitizer reports in an ASan build)."""
        stop_all((self.varnish.stop, self.nginx.stop, self.proxy.close), self.resp)

    def path(self, name, nonce=None):
        return ocsp_path(load_cert(self.leaf[name][1]), self.ca_cert, nonce)

    def revoke(self, name, reason="keyCompromise"):
        self.run.store("revoke", self.ca.name, self.leaf[name][0], "--reason", reason)

    def crl_path(self):
        return f"/crl/{self.ca.name}.crl"

    def crl_file(self):
        return self.root / "crl" / f"{self.ca.name}.crl"

    def metric(self, name, kind):
        _, _, body = self.resp.request("GET", "/metrics")
        m = re.search(rf'^{name}{{edge="[^"]*",kind="{kind}"}} ([0-9.]+)$', body.decode(), re.M)
        return float(m.group(1)) if m else None

    def wait_purged(self, kind, timeout=10):
        """Until the responder's purger for |kind| has nothing pending and has
        acknowledged the store's counter."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.metric("vigil_edge_purges_pending", kind) == 0:
                return
            time.sleep(0.02)
        raise AssertionError(f"{kind} purges still pending:\n" + "\n".join(self.resp.lines[-20:]))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("edge"), "edge1",
              leaves=("hdr", "rev", "clients", "down", "hang", "bad", "kill", "post",
                      *(f"order{i}" for i in range(ORDER_RUNS))))
    try:
        yield s.start()
    finally:
        s.stop()


def poll_until(fn, timeout, step=0.01):
    """Call |fn| until it returns a true value or |timeout| seconds pass;
    returns (value, seconds taken)."""
    t0 = time.monotonic()
    while True:
        v = fn()
        if v or time.monotonic() - t0 > timeout:
            return v, time.monotonic() - t0
        time.sleep(step)


# ---- headers ------------------------------------------------------------------------------


def test_headers_bound_shared_caches_and_tag_answers(stack):
    s = stack
    # At start every CRL is purged once: nginx answers 404 for one it does
    # not hold, which is done, not a failure.
    for kind in ("nginx", "varnish"):
        sent, _ = poll_until(lambda: s.metric("vigil_edge_purges_sent_total", kind), 5)
        assert sent >= 1
        s.wait_purged(kind)
        assert s.metric("vigil_edge_purges_failed_total", kind) == 0
    st, h, der = s.resp.request("GET", s.path("hdr"))
    assert st == 200
    r = check_response(der, s.ca_cert)
    left = int((r.next_update - datetime.datetime.utcnow()).total_seconds())
    cc = h["cache-control"]
    # Browsers: up to nextUpdate (RFC 5019); shared caches: max_age (RFC 9213 too).
    assert abs(cc_value(cc, "max-age") - left) <= 2, (cc, left)
    assert cc_value(cc, "s-maxage") == MAX_AGE, cc
    assert h["cdn-cache-control"] == f"max-age={MAX_AGE}, must-revalidate"
    serial = s.leaf["hdr"][0].upper()
    serial = serial if len(serial) % 2 == 0 else "0" + serial
    assert h["xkey"].split(" ") == [f"vigil~{s.ca.name}", f"vigil~{s.ca.name}~{serial}"], h
    # Revalidation: 304 with the same lifetimes and tags, no body.
    st2, h2, b2 = s.resp.request("GET", s.path("hdr"), headers={"If-None-Match": h["etag"]})
    assert st2 == 304 and b2 == b"" and h2["xkey"] == h["xkey"]
    assert cc_value(h2["cache-control"], "s-maxage") == MAX_AGE
    # A CRL: the CA's tag and its own.
    st3, h3, _ = s.resp.request("GET", s.crl_path())
    assert st3 == 200 and h3["xkey"] == f"vigil~{s.ca.name} vigil~{s.ca.name}~crl"
    assert cc_value(h3["cache-control"], "s-maxage") == MAX_AGE
    st4, _, _ = s.resp.request("GET", s.crl_path(), headers={"If-None-Match": h3["etag"]})
    assert st4 == 304
    # Nonced and POST answers: never cached, no tags.
    st5, h5, _ = s.resp.request("GET", s.path("hdr", nonce=os.urandom(16)))
    assert st5 == 200 and h5["cache-control"] == "no-store" and "xkey" not in h5
    st6, h6, _ = s.resp.post(make_request(load_cert(s.leaf["hdr"][1]), s.ca_cert))
    assert st6 == 200 and h6["cache-control"] == "no-store" and "xkey" not in h6
    # Varnish: the second GET is a hit, the tags do not reach clients.
    p = s.path("hdr")
    s.varnish.request("GET", p)
    vs, vh, vb = s.varnish.request("GET", p)
    assert vs == 200 and vh["x-cache"] == "HIT" and "xkey" not in vh and vb == der
    # POST through Varnish is passed, never cached.
    for _ in range(2):
        ps, ph, _ = s.varnish.request("POST", "/", make_request(load_cert(s.leaf["post"][1]),
                                                                s.ca_cert),
                                      {"Content-Type": "application/ocsp-request"})
        assert ps == 200 and ph["x-cache"] == "MISS"


def test_max_age_zero_is_todays_behaviour(tmp_path):
    ca = pki.CA(tmp_path, "zero", "ec")
    leaf = ca.issue("z.example")
    cfg = write_config(tmp_path / "vigil.conf", tmp_path / "store", [ca],
                       edge={"max_age": 0, "tag_header": "Cache-Tag"})
    Runner(cfg).seed(ca)
    with Responder(cfg) as r:
        st, h, der = r.request("GET", ocsp_path(load_cert(leaf[1]), load_cert(ca.cert)))
        assert st == 200 and "s-maxage" not in h["cache-control"]
        assert "cdn-cache-control" not in h
        assert cc_value(h["cache-control"], "max-age") > 3600
        # Another header name, comma-separated tags (Cloudflare, Akamai).
        assert h["cache-tag"] == f"vigil~zero,vigil~zero~{leaf[0].upper().zfill(len(leaf[0]) + len(leaf[0]) % 2)}"


def test_s_maxage_never_past_next_update(tmp_path):
    """max_age longer than an answer's or a CRL's time to nextUpdate: shared
    caches get the time to nextUpdate, not max_age."""
    ca = pki.CA(tmp_path, "short", "ec")
    leaf = ca.issue("s.example")
    cfg = write_config(tmp_path / "vigil.conf", tmp_path / "store",
                       [(ca, {"ocsp_validity": "8h", "crl_validity": "1h"})],
                       edge={"max_age": 86400})
    run_ = Runner(cfg).seed(ca)
    run_.crlgen("--once", timeout=60)
    with Responder(cfg) as r:
        st, h, _ = r.request("GET", ocsp_path(load_cert(leaf[1]), load_cert(ca.cert)))
        left = cc_value(h["cache-control"], "max-age")
        assert st == 200 and 0 < left <= 8 * 3600
        assert cc_value(h["cache-control"], "s-maxage") == left
        assert h["cdn-cache-control"] == f"max-age={left}, must-revalidate"
        st, h, _ = r.request("GET", "/crl/short.crl")
        left = cc_value(h["cache-control"], "max-age")
        assert st == 200 and 0 < left <= 3600
        assert cc_value(h["cache-control"], "s-maxage") == left


def test_tags_of_an_answer_about_several_certificates(stack, tmp_path):
    """A GET request with several CertIDs (openssl ocsp -serial ...): up to 8
    serials, each tagged; more, the CA's tag only and s-maxage 0 (shared
    caches revalidate it every time)."""
    s = stack
    def get(serials):
        req = tmp_path / "req.der"
        args = ["openssl", "ocsp", "-issuer", s.ca.cert, "-no_nonce", "-reqout", req]
        for x in serials:
            args += ["-serial", f"0x{x}"]
        run(*args)
        p = "/" + urllib.parse.quote(base64.b64encode(req.read_bytes()).decode(), safe="")
        st, h, der = s.resp.request("GET", p)
        assert st == 200
        assert ocsp.load_der_ocsp_response(der).response_status == \
            ocsp.OCSPResponseStatus.SUCCESSFUL
        return h
    few = ["0A", "0B", "0C"]
    h = get(few)
    assert h["xkey"].split(" ") == [f"vigil~{s.ca.name}"] + [f"vigil~{s.ca.name}~{x}" for x in few]
    assert cc_value(h["cache-control"], "s-maxage") == MAX_AGE
    many = [f"{i:02X}" for i in range(16, 25)]  # 9 serials
    h = get(many)
    assert h["xkey"] == f"vigil~{s.ca.name}"
    assert cc_value(h["cache-control"], "s-maxage") == 0
    assert h["cdn-cache-control"] == "max-age=0, must-revalidate"


# ---- the purge flow through both edges ----------------------------------------------------------


def test_revocation_and_crl_reach_clients_through_both_edges(stack):
    s = stack
    p = s.path("rev")
    # Both edges serving hits: the good answer and the current CRL.
    for edge in (s.varnish, s.nginx):
        edge.request("GET", p)
        edge.request("GET", s.crl_path())
    vs, vh, vb = s.varnish.request("GET", p)
    assert vh["x-cache"] == "HIT" and status(vb, s.ca_cert) == ocsp.OCSPCertStatus.GOOD
    ns, nh, nb = s.nginx.request("GET", p)
    assert nh["x-cache-status"] == "HIT" and status(nb, s.ca_cert) == ocsp.OCSPCertStatus.GOOD
    old_crl = s.crl_file().read_bytes()
    for edge, hdr in ((s.varnish, "x-cache"), (s.nginx, "x-cache-status")):
        cs, ch, cb = edge.request("GET", s.crl_path())
        assert cs == 200 and ch[hdr] == "HIT" and cb == old_crl

    s.revoke("rev")
    t_rev = time.monotonic()

    def varnish_revoked():
        _, _, b = s.varnish.request("GET", p)
        return status(b, s.ca_cert) == ocsp.OCSPCertStatus.REVOKED
    # Asked every millisecond: a purge sent before every worker answers from
    # the new state would let Varnish fetch the old answer again, for max_age.
    ok, took = poll_until(varnish_revoked, 5, step=0.001)
    assert ok and took < 1.0, f"Varnish: revoked after {took:.3f}s"
    print(f"\nrevocation through Varnish: {took * 1000:.0f} ms after vigil-store returned")

    s.run.crlgen("--once", timeout=60)
    t_crl = time.monotonic()
    new_crl = s.crl_file().read_bytes()
    assert new_crl != old_crl
    crl = x509.load_der_x509_crl(new_crl)
    assert crl.get_revoked_certificate_by_serial_number(int(s.leaf["rev"][0], 16))
    for edge in (s.varnish, s.nginx):
        got, _ = poll_until(lambda: edge.request("GET", s.crl_path())[2] == new_crl, 5)
        took = time.monotonic() - t_crl
        assert got and took < 1.0, f"{type(edge).__name__}: new CRL after {took:.3f}s"
        print(f"new CRL through {type(edge).__name__}: {took * 1000:.0f} ms after crlgen --once")

    def nginx_revoked():
        _, _, b = s.nginx.request("GET", p)
        return status(b, s.ca_cert) == ocsp.OCSPCertStatus.REVOKED
    ok, _ = poll_until(nginx_revoked, MAX_AGE + 2, step=0.05)
    took = time.monotonic() - t_rev
    # nginx times entries in whole seconds (valid_sec = ngx_time() + s-maxage,
    # fresh while ngx_time() <= valid_sec): up to max_age + 1 s after the
    # fetch; the poll's step (50 ms) and the origin's tick come on top.
    assert ok and took <= MAX_AGE + 1 + 0.15, f"nginx: revoked after {took:.3f}s"
    print(f"revocation through nginx: {took:.2f} s (max_age {MAX_AGE})")


def test_purge_follows_the_workers(stack):
    """A purge sent before every worker answers from the new state lets the
    edge fetch the old answer again and keep it for max_age. Varnish is asked
    every millisecond after each of ORDER_RUNS revocations: each must show
    revoked well within max_age (a purge sent too early is caught with a
    probability of about a quarter per run, so 16 runs miss it about 1 % of
    the time)."""
    s = stack
    for i in range(ORDER_RUNS):
        p = s.path(f"order{i}")
        s.varnish.request("GET", p)
        assert s.varnish.request("GET", p)[1]["x-cache"] == "HIT"
        s.revoke(f"order{i}")
        ok, took = poll_until(lambda: status(s.varnish.request("GET", p)[2], s.ca_cert)
                              == ocsp.OCSPCertStatus.REVOKED, MAX_AGE + 2, step=0.001)
        assert ok and took < 1.0, f"run {i}: revoked at Varnish after {took:.3f}s"


def test_crl_shards_and_crl_url_purged_at_both_edges(tmp_path):
    """A sharded CA: its crl_url path and every shard's path are served, cached
    by both edges, and purged when crlgen publishes (nginx by URL, Varnish by
    the CA's CRL tag that each carries)."""
    keys = {"crl_url": "http://crl.example/crl/sh.crl", "crl_shards": 4,
            "crl_shard_url": "http://crl.example/crl/sh/%u.crl"}
    s = Stack(tmp_path, "sh", max_age=60, leaves=("a", "b", "c"), ca_keys=keys, workers=1)
    try:
        s.start()
        paths = ["/crl/sh.crl"] + [f"/crl/sh/{k}.crl" for k in range(1, 5)]
        for edge in (s.varnish, s.nginx):
            for p in paths:
                edge.request("GET", p)
        for p in paths:
            assert s.nginx.request("GET", p)[1]["x-cache-status"] == "HIT", p
            assert s.varnish.request("GET", p)[1]["x-cache"] == "HIT", p
        for name in ("a", "b", "c"):
            s.revoke(name)
        s.run.crlgen("--once", timeout=60)
        t0 = time.monotonic()
        # crlgen mirrors each URL's path under [crlgen] out.
        want = {p: (s.root / "crl" / p.lstrip("/")).read_bytes() for p in paths}
        for edge in (s.varnish, s.nginx):
            for p, body in want.items():
                ok, _ = poll_until(lambda: edge.request("GET", p)[2] == body, 5)
                took = time.monotonic() - t0
                assert ok and took < 1.0, f"{type(edge).__name__} {p}: after {took:.3f}s"
    finally:
        s.stop()


def test_rfc5019_clients_verify_answers_through_varnish(stack, tmp_path):
    s = stack
    p = s.path("clients")
    direct = s.resp.request("GET", p)[2]
    s.varnish.request("GET", p)
    vs, vh, edge = s.varnish.request("GET", p)
    assert vs == 200 and vh["x-cache"] == "HIT"
    for label, der in (("direct", direct), ("varnish", edge)):
        f = tmp_path / f"{label}.der"
        f.write_bytes(der)
        r = run("openssl", "ocsp", "-respin", f, "-issuer", s.ca.cert, "-cert",
                s.leaf["clients"][1], "-CAfile", s.ca.cert, "-no_nonce", check=False)
        assert r.returncode == 0 and "Response verify OK" in r.stderr + r.stdout, r
        assert f"{s.leaf['clients'][1]}: good" in r.stdout, r.stdout
        g = run("ocsptool", "-e", "--load-response", f, "--load-trust", s.ca.cert,
                check=False)
        assert "Verifying OCSP Response: Success" in g.stdout + g.stderr, g
        assert check_response(der, s.ca_cert).certificate_status == ocsp.OCSPCertStatus.GOOD


# ---- edges that misbehave ---------------------------------------------------------------------


def test_varnish_unreachable_then_back_gets_the_purge(stack):
    """The purge address refuses, then answers 503 and 403, then hangs: the
    responder keeps answering (and fast), says why in one line each, counts
    the failures, and delivers the purge when the edge is back."""
    s = stack
    p = s.path("down")
    s.varnish.request("GET", p)
    assert s.varnish.request("GET", p)[1]["x-cache"] == "HIT"
    failed0 = s.metric("vigil_edge_purges_failed_total", "varnish")
    n0 = s.resp.n_lines()
    s.proxy.mode = "refuse"
    s.revoke("down")
    # The origin answers the revocation within a tick, edge or no edge.
    ok, took = poll_until(lambda: status(s.resp.request("GET", p)[2], s.ca_cert)
                          == ocsp.OCSPCertStatus.REVOKED, 2)
    assert ok and took < 0.3, took
    s.resp.wait_log(r"event=edge_purge_failed edge=http://127\.0\.0\.1:\d+/ "
                    r"error=\"[^\"]*(closed|reset|Connection|Broken pipe)", 5, n0)
    for mode, rx in (("503", "answered 503"), ("403", "answered 403"), ("hang", "no answer")):
        n1 = s.resp.n_lines()
        s.proxy.mode = mode
        s.resp.wait_log(rf"event=edge_purge_failed .*{rx}", 25, n1)
        st, _, _ = s.resp.request("GET", "/healthz")
        assert st == 200
    assert s.metric("vigil_edge_purges_failed_total", "varnish") >= failed0 + 4
    assert s.metric("vigil_edge_purges_pending", "varnish") >= 1
    # The edge still serves its cached good answer (within max_age) ...
    # ... and once it is reachable again, the purge comes through.
    s.proxy.mode = "forward"
    # The back-off has reached its cap (10 s) by now, and the hanging
    # request's end counts as one more failure: up to two of them.
    s.resp.wait_log(r"event=edge_purged edge=http://127\.0\.0\.1:\d+/ .*tags=[1-9]", 25, n0)
    _, _, b = s.varnish.request("GET", p)
    assert status(b, s.ca_cert) == ocsp.OCSPCertStatus.REVOKED
    assert s.metric("vigil_edge_purges_pending", "varnish") == 0


def test_nginx_down_during_crl_publication_gets_the_purge(stack):
    s = stack
    s.nginx.request("GET", s.crl_path())
    assert s.nginx.request("GET", s.crl_path())[1]["x-cache-status"] == "HIT"
    s.nginx.stop()
    n0 = s.resp.n_lines()
    s.revoke("bad", "superseded")
    s.run.crlgen("--once", timeout=60)
    new_crl = s.crl_file().read_bytes()
    s.resp.wait_log(r"event=edge_purge_failed edge=http://127\.0\.0\.1:\d+/ .*cannot connect",
                    5, n0)
    s.nginx.start()  # the same cache directory: the old CRL is still in it
    got, took = poll_until(lambda: s.nginx.request("GET", s.crl_path())[2] == new_crl, 25)
    assert got, "nginx kept the old CRL after it came back"
    s.resp.wait_log(r"event=edge_purged edge=http://127\.0\.0\.1:\d+/ .*crls=1", 5, n0)


def test_kill_9_between_commit_and_purge(stack):
    """The revocation is committed and the responder answers it, but the edge
    refuses the purge; the responder is killed with -9; when it starts again
    (the edge reachable) it purges what the edge never acknowledged."""
    s = stack
    p = s.path("kill")
    s.varnish.request("GET", p)
    assert s.varnish.request("GET", p)[1]["x-cache"] == "HIT"
    s.proxy.mode = "refuse"
    n0 = s.resp.n_lines()
    s.revoke("kill")
    ok, _ = poll_until(lambda: status(s.resp.request("GET", p)[2], s.ca_cert)
                       == ocsp.OCSPCertStatus.REVOKED, 2)
    assert ok
    s.resp.wait_log(r"event=edge_purge_failed", 5, n0)
    s.resp.proc.send_signal(signal.SIGKILL)
    s.resp.proc.wait(10)
    s.proxy.mode = "forward"
    # Varnish kept the good answer (max_age was not reached, or it was fetched
    # again before the commit reached it): refresh it to be sure it is cached.
    s.resp = Responder(s.config).start()
    s.resp.wait_log(r"event=edge_state edge=http://127\.0\.0\.1:\d+/ acked=\d+", 5)
    s.resp.wait_log(r"event=edge_purged edge=http://127\.0\.0\.1:\d+/ .*tags=[1-9]", 10)
    _, h, b = s.varnish.request("GET", p)
    assert status(b, s.ca_cert) == ocsp.OCSPCertStatus.REVOKED


def test_kill_9_state_replays_the_purge_to_a_warm_edge(tmp_path):
    """As above, on a stack whose max_age (60 s) cannot explain the revoked
    answer at the edge: only the replayed purge can."""
    s = Stack(tmp_path, "kill9", max_age=60, leaves=("k",), workers=1)
    try:
        s.start()
        p = s.path("k")
        s.varnish.request("GET", p)
        assert s.varnish.request("GET", p)[1]["x-cache"] == "HIT"
        s.proxy.mode = "refuse"
        n0 = s.resp.n_lines()
        s.revoke("k")
        s.resp.wait_log(r"event=edge_purge_failed", 5, n0)
        s.resp.proc.send_signal(signal.SIGKILL)
        s.resp.proc.wait(10)
        vs, vh, vb = s.varnish.request("GET", p)
        assert vh["x-cache"] == "HIT" and status(vb, s.ca_cert) == ocsp.OCSPCertStatus.GOOD
        state = list((tmp_path / "edge").glob("varnish-*.state"))
        assert len(state) == 1 and "acked=" in state[0].read_text()
        s.proxy.mode = "forward"
        s.resp = Responder(s.config).start()
        s.resp.wait_log(r"event=edge_purged edge=http://127\.0\.0\.1:\d+/ .*tags=[1-9]", 10)
        vs, vh, vb = s.varnish.request("GET", p)
        assert vh["x-cache"] == "MISS" and status(vb, s.ca_cert) == ocsp.OCSPCertStatus.REVOKED
    finally:
        s.stop()


def test_store_restored_under_the_responder_purges_everything(tmp_path):
    """vigil-store restore puts another store under the running responder: once
    its workers answer from it, the purger reads it too and purges every CA,
    so that the edge serves what the restored store says (here the backup
    from before a revocation) rather than what the old store said."""
    s = Stack(tmp_path, "rst", max_age=60, leaves=("x",), workers=1)
    try:
        s.start()
        backup = tmp_path / "backup"
        s.run.store("backup", backup)
        n = s.resp.n_lines()
        s.revoke("x")
        s.resp.wait_log(r"event=edge_purged edge=http://127\.0\.0\.1:\d+/ .*tags=1", 5, n)
        p = s.path("x")
        # The revoked answer cached at Varnish, its purge long done.
        s.varnish.request("GET", p)
        _, h, b = s.varnish.request("GET", p)
        assert h["x-cache"] == "HIT" and status(b, s.ca_cert) == ocsp.OCSPCertStatus.REVOKED
        n = s.resp.n_lines()
        s.run.store("restore", backup)
        s.resp.wait_log(r"event=edge_store_replaced", 5, n)
        ok, took = poll_until(lambda: status(s.varnish.request("GET", p)[2], s.ca_cert)
                              == ocsp.OCSPCertStatus.GOOD, 10)
        assert ok and took < 3, f"Varnish still had the old store's answer after {took:.2f}s"
        s.resp.wait_log(r"event=edge_purged edge=http://127\.0\.0\.1:\d+/ .*tags=[1-9]", 5, n)
    finally:
        s.stop()


# ---- purge_command -------------------------------------------------------------------------------


def test_purge_command_gets_tags_fails_and_hangs(tmp_path):
    ca = pki.CA(tmp_path, "cmd1", "ec")
    leaf = ca.issue("c.example")
    out = tmp_path / "tags.txt"
    script = tmp_path / "purge.sh"
    mode = tmp_path / "mode"
    mode.write_text("ok")
    pidf = tmp_path / "pid"
    script.write_text(f"""#!/bin/sh
echo $$ > {pidf}
case "$(cat {mode})" in
ok) cat >> {out}; exit 0 ;;
fail) cat > /dev/null; echo "cdn api said no" >&2; exit 3 ;;
hang) exec sleep 1000 ;;
esac
""")
    script.chmod(0o755)
    cfg = write_config(tmp_path / "vigil.conf", tmp_path / "store", [ca],
                       edge={"purge_command": script, "purge_command_timeout": "1s"})
    run_ = Runner(cfg).seed(ca)
    with Responder(cfg) as r:
        r.wait_log(r"event=edge_purger kind=command", 5)
        run_.store("revoke", ca.name, leaf[0])
        r.wait_log(r"event=edge_purged edge=\S+purge\.sh counter=\d+ tags=1", 5)
        serial = leaf[0].upper().zfill(len(leaf[0]) + len(leaf[0]) % 2)
        assert f"vigil~cmd1~{serial}\n" in out.read_text()
        # A published CRL: its tag.
        n = r.n_lines()
        run_.crlgen("--once", timeout=60)
        r.wait_log(r"event=edge_purged edge=\S+purge\.sh .*crls=1", 5, n)
        assert "vigil~cmd1~crl\n" in out.read_text()
        # A failing program: logged with its exit status, retried.
        mode.write_text("fail")
        n = r.n_lines()
        run_.store("release", ca.name, leaf[0], check=False)
        run_.store("revoke", ca.name, leaf[0], "--reason", "keyCompromise")
        r.wait_log(r"event=edge_purge_failed .*exited 3", 5, n)
        # One that never exits: killed at its timeout, and gone.
        mode.write_text("hang")
        n = r.n_lines()
        r.wait_log(r"event=edge_purge_failed .*killed: still running at its timeout", 10, n)
        pid = int(pidf.read_text())
        time.sleep(0.1)
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        # Answering went on all along.
        st, _, der = r.request("GET", ocsp_path(load_cert(leaf[1]), load_cert(ca.cert)))
        assert st == 200 and status(der, load_cert(ca.cert)) == ocsp.OCSPCertStatus.REVOKED
        mode.write_text("ok")
        r.wait_log(r"event=edge_purged edge=\S+purge\.sh", 15, n)
        assert r.metric('vigil_edge_purges_failed_total{edge="%s",kind="command"}' % script) >= 2
        assert r.stop() == 0  # a clean exit (and, in an ASan build, no report)


def test_state_dir_unwritable_purges_go_on(tmp_path):
    """A state directory that cannot be made: one line says so, and purges
    are still sent (only their replay after a restart is lost)."""
    ca = pki.CA(tmp_path, "st1", "ec")
    leaf = ca.issue("s.example")
    out = tmp_path / "tags.txt"
    script = tmp_path / "purge.sh"
    script.write_text(f"#!/bin/sh\ncat >> {out}\n")
    script.chmod(0o755)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be\n")
    cfg = write_config(tmp_path / "vigil.conf", tmp_path / "store", [ca],
                       edge={"purge_command": script, "state_dir": blocker / "edge"})
    run_ = Runner(cfg).seed(ca)
    with Responder(cfg) as r:
        r.wait_log(r"event=edge_state_unwritable .*not-a-dir/edge", 5)
        run_.store("revoke", ca.name, leaf[0])
        r.wait_log(r"event=edge_purged edge=\S+purge\.sh counter=\d+ tags=1", 5)
        assert f"~{leaf[0].upper().zfill(len(leaf[0]) + len(leaf[0]) % 2)}" in out.read_text()
        assert r.stop() == 0


# ---- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize("key,value,says", [
    ("max_age", "86401", "[edge] max_age = 86401: expected 0 to 86400 seconds"),
    ("max_age", "-1", "[edge] max_age = -1: expected 0 to 86400 seconds"),
    ("max_age", "1.5", "[edge] max_age = 1.5: expected"),
    ("tag_header", "bad header", "[edge] tag_header = bad header: expected a header name"),
    ("purge_varnish", "https://cdn.example/", "https is not spoken"),
    ("purge_varnish", "http://h:99999/", "[edge] purge_varnish = http://h:99999/: expected"),
    ("purge_nginx", "ftp://x", "[edge] purge_nginx = ftp://x: expected"),
    ("purge_command", "/nonexistent/purge", "[edge] purge_command = /nonexistent/purge: No such"),
    ("purge_command_timeout", "0", "[edge] purge_command_timeout = 0: expected a duration"),
    ("purge_cdn", "x", "[edge]: unknown key 'purge_cdn'"),
])
def test_edge_keys_out_of_range_are_refused_in_one_line(tmp_path, key, value, says):
    ca = pki.CA(tmp_path, "conf1", "ec")
    cfg = write_config(tmp_path / "vigil.conf", tmp_path / "store", [ca], edge={key: value})
    r = Runner(cfg).run("vigil-responder", "--check", check=False)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and str(cfg) in lines[0], r.stderr


def test_edge_key_refused_at_start_and_reload(tmp_path):
    """A bad [edge] key stops a start (one line, exit 1); at a reload it is
    refused and the old configuration keeps serving. max_age, tag_header and
    the purge targets follow a reload (test_edge_reload.py for the targets)."""
    ca = pki.CA(tmp_path, "rel1", "ec")
    leaf = ca.issue("r.example")
    cfg = write_config(tmp_path / "vigil.conf", tmp_path / "store", [ca])
    Runner(cfg).seed(ca)
    # Every program reads [edge]: vigil-store refuses it too.
    write_config(cfg, tmp_path / "store", [ca], edge={"max_age": "99999"})
    r = Runner(cfg).store("status", ca.name, leaf[0], check=False)
    assert r.returncode != 0 and "[edge] max_age = 99999" in r.stderr
    r = Runner(cfg).run("vigil-responder", check=False, timeout=20)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "[edge] max_age = 99999: expected 0 to 86400 seconds" in r.stderr
    write_config(cfg, tmp_path / "store", [ca], edge={"max_age": 30})
    p = ocsp_path(load_cert(leaf[1]), load_cert(ca.cert))
    with Responder(cfg) as resp:
        assert cc_value(resp.request("GET", p)[1]["cache-control"], "s-maxage") == 30
        n = resp.n_lines()
        write_config(cfg, tmp_path / "store", [ca], edge={"max_age": "1d1s"})
        resp.signal(signal.SIGHUP)
        resp.wait_log(r"event=reload_failed .*\[edge\] max_age = 1d1s", 5, n)
        assert cc_value(resp.request("GET", p)[1]["cache-control"], "s-maxage") == 30
        n = resp.n_lines()
        write_config(cfg, tmp_path / "store", [ca],
                     edge={"max_age": 10, "tag_header": "Surrogate-Key",
                           "purge_varnish": "http://127.0.0.1:9/"})
        resp.signal(signal.SIGHUP)
        resp.wait_log(r"event=edge_purger kind=varnish edge=http://127\.0\.0\.1:9/", 5, n)
        resp.wait_log(r"event=reloaded", 5, n)
        h = resp.request("GET", p)[1]
        assert cc_value(h["cache-control"], "s-maxage") == 10 and "surrogate-key" in h
        assert resp.stop() == 0


# ---- bulk under load ---------------------------------------------------------------------------


def test_bulk_revocation_of_10000_under_wrk_load(tmp_path):
    from test_crash import window_certs
    if not shutil.which("wrk"):
        pytest.skip("wrk is not installed")
    if sanitized_build():
        pytest.skip("timed under load: the plain build only")
    s = Stack(tmp_path, "bulk1", max_age=60, workers=2)
    rng = random.Random(13)
    certdir = tmp_path / "certs"
    certdir.mkdir()
    text, nb = window_certs(rng, 10_000, certdir)
    text = "\n".join(l.replace("R\t301231235959Z\t250301000000Z,certificateHold", "V\t301231235959Z\t")
                     for l in text.splitlines()) + "\n"
    idx = tmp_path / "bulk-index.txt"
    idx.write_text(text)
    try:
        s.start()
        s.run.store("import-index", s.ca.name, idx, "--certs", certdir)
        serials = sorted(nb)
        warm = rng.sample(serials, 1000)
        paths = {hx: ocsp_path(fake_cert(int(hx, 16), s.ca_cert), s.ca_cert) for hx in warm}
        for hx, p in paths.items():
            st, _, b = s.varnish.request("GET", p)
            assert st == 200 and status(b, s.ca_cert) == ocsp.OCSPCertStatus.GOOD
        lua = tmp_path / "paths.lua"
        lua.write_text("local p = {" + ",".join(f'"{p}"' for p in list(paths.values())[:300])
                       + "}\nlocal i = 0\nrequest = function()\n  i = i + 1\n"
                       "  return wrk.format(\"GET\", p[(i % #p) + 1])\nend\n")
        sent0 = s.metric("vigil_edge_purges_sent_total", "varnish")
        wrk = subprocess.Popen(["wrk", "-t2", "-c32", "-d8s", "-s", str(lua),
                                f"http://127.0.0.1:{s.varnish.port}/"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        n0 = s.resp.n_lines()
        try:
            time.sleep(2)
            tr = time.monotonic()
            r = s.run.store("revoke", s.ca.name, "--issued-after", "2025-01-01T00:00:00Z",
                            "--reason", "keyCompromise")
            # From vigil-store's return, as the assertion says: the command's
            # own time (its commit's fsync, on a machine under wrk) is not the
            # purge's, and was seen to swing from 0.2 s to 5 s here.
            t0 = time.monotonic()
            revoke_s = t0 - tr
            out = next(l for l in (r.stdout + r.stderr).splitlines() if "revoked=" in l)
            # The purge's acknowledgement, then every cached answer checked
            # once: after it, a good answer at the edge would be a bug.
            s.resp.wait_log(r"event=edge_purged edge=http://127\.0\.0\.1:\d+/ .*tags=10000", 5, n0)
            acked = time.monotonic() - t0
            good = [hx for hx, p in paths.items()
                    if status(s.varnish.request("GET", p)[2], s.ca_cert)
                    != ocsp.OCSPCertStatus.REVOKED]
            took = time.monotonic() - t0
        finally:
            wout, _ = wrk.communicate(timeout=60)
        assert not good, f"{len(good)} answers still good at the edge after the purge"
        assert acked < 2.0, f"purge acknowledged {acked:.2f}s after vigil-store returned"
        s.wait_purged("varnish")
        sent = s.metric("vigil_edge_purges_sent_total", "varnish") - sent0
        m = re.search(r"(\d+) requests in", wout)
        assert m and int(m.group(1)) > 1000, wout
        assert "Non-2xx" not in wout and "Socket errors" not in wout, wout
        line = s.resp.wait_log(r"event=edge_purged .*tags=10000", 1, n0)
        print(f"\nbulk revocation of 10,000 ({out.strip()}, {revoke_s:.2f} s): purge "
              f"acknowledged after {acked:.3f} s, the 1,000 answers cached at Varnish all revoked when checked "
              f"({took:.2f} s); {int(sent)} purge requests ({line.split('requests=')[1]});"
              f" wrk: {m.group(1)} requests through Varnish, 0 failed")
    finally:
        s.stop()
