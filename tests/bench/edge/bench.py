#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The edge (issue 13), on demand: real Varnish and nginx in front of the real
vigil-responder, as tests/integration/test_edge.py starts them.

    tests/bench/edge/bench.py [--build DIR] [--singles N] [--bulk N]
                              [--duration S] [--urls U] [--skip-bulk] [--skip-origin]

Figures:
 1. commit-to-edge latency of a single revocation through Varnish: N times
    (default 50), from `vigil-store revoke` returning to Varnish serving the
    revoked answer (it was a cache hit with s-maxage 60 before), p50 and p99;
    and nginx's CRL after `vigil-crlgen --once` for comparison.
 2. a bulk revocation by issuance window of --bulk certificates (default
    100,000) through Varnish: from `vigil-store revoke` returning to the
    purge's acknowledgement (event=edge_purged), the purge requests sent, and
    a sample of 2,000 answers cached at Varnish checked revoked afterwards;
    meanwhile wrk measures the origin's own answer latency (GET of cached
    answers straight to the responder), compared with the same wrk run just
    before without a purge: p99 "must not move".
 3. the origin's request rate and CPU behind nginx with [edge] max_age 60
    against max_age 0, under the same steady wrk load through nginx on U
    answers (default 2,000) for S seconds (default 70, longer than max_age so
    that every answer is revalidated once): requests reaching the responder
    (its access log), 304s among them, and its CPU seconds (/proc).

Prints a table and the commands' figures; the README rows come from here.
"""
import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--build", default=str(ROOT / "build"))
ap.add_argument("--singles", type=int, default=50)
ap.add_argument("--bulk", type=int, default=100_000)
ap.add_argument("--duration", type=int, default=70)
ap.add_argument("--urls", type=int, default=2000)
ap.add_argument("--skip-singles", action="store_true")
ap.add_argument("--skip-bulk", action="store_true")
ap.add_argument("--skip-origin", action="store_true")
args = ap.parse_args()
os.environ["VIGIL_BUILD"] = str(Path(args.build).resolve())

from cryptography.x509 import ocsp  # noqa: E402

from responder_util import fake_cert  # noqa: E402
from test_crash import window_certs  # noqa: E402
from test_edge import Stack, ocsp_path, poll_until, status  # noqa: E402


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def cpu_seconds(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url, lua, duration, conns=32, threads=2):
    r = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency",
                        "-s", str(lua), url], capture_output=True, text=True,
                       timeout=duration + 60)
    out = r.stdout
    n = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    return {"requests": n, "non2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": sock.group(1) if sock else "", "raw": out,
            "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else None,
            "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}


def lua_for(paths, path):
    path.write_text("local p = {" + ",".join(f'"{p}"' for p in paths) + "}\nlocal i = 0\n"
                    "request = function()\n  i = i + 1\n"
                    "  return wrk.format(\"GET\", p[(i % #p) + 1])\nend\n")
    return path


def seed_window(s, rng, n, work):
    certdir = work / "certs"
    certdir.mkdir()
    text, nb = window_certs(rng, n, certdir)
    text = "\n".join(l.replace("R\t301231235959Z\t250301000000Z,certificateHold",
                               "V\t301231235959Z\t") for l in text.splitlines()) + "\n"
    (work / "index.txt").write_text(text)
    s.run.store("import-index", s.ca.name, work / "index.txt", "--certs", certdir, timeout=1200)
    return sorted(nb)


def bench_singles(work):
    s = Stack(work, "single", max_age=60, leaves=[f"l{i}" for i in range(args.singles)],
              workers=2)
    lat, crl_v, crl_n = [], [], []
    try:
        s.start()
        for i in range(args.singles):
            p = s.path(f"l{i}")
            s.varnish.request("GET", p)
            assert s.varnish.request("GET", p)[1]["x-cache"] == "HIT"
            t0 = time.monotonic()
            s.revoke(f"l{i}")
            t1 = time.monotonic()
            ok, took = poll_until(lambda: status(s.varnish.request("GET", p)[2], s.ca_cert)
                                  == ocsp.OCSPCertStatus.REVOKED, 5, step=0.002)
            assert ok
            lat.append(took)
            if i % 10 == 0:
                for e in (s.varnish, s.nginx):
                    e.request("GET", s.crl_path())
                s.run.crlgen("--once", timeout=60)
                new = s.crl_file().read_bytes()
                for e, acc in ((s.varnish, crl_v), (s.nginx, crl_n)):
                    ok, took = poll_until(lambda: e.request("GET", s.crl_path())[2] == new, 5,
                                          step=0.002)
                    assert ok
                    acc.append(took)
    finally:
        s.stop()
    return lat, crl_v, crl_n


def bench_bulk(work, purge=True):
    """The bulk revocation, with the Varnish purger (|purge|) or, for
    comparison, with no edge configured: the origin's p99 under both."""
    work.mkdir(parents=True)
    s = Stack(work, "bulk", max_age=60, workers=2,
              extra_edge=None if purge else {"purge_varnish": None, "purge_nginx": None})
    rng = random.Random(13)
    res = {}
    try:
        s.start()
        t = time.monotonic()
        serials = seed_window(s, rng, args.bulk, work)
        res["seed_s"] = time.monotonic() - t
        sample = rng.sample(serials, 2000)
        paths = [ocsp_path(fake_cert(int(hx, 16), s.ca_cert), s.ca_cert) for hx in sample]
        for p in paths:
            s.varnish.request("GET", p)
        # The origin's own latency: cached answers of other certificates (the
        # leaves of a second CA section would do; here: answers for serials
        # outside the store, "unknown", cached all the same).
        other = [ocsp_path(fake_cert(rng.getrandbits(100), s.ca_cert), s.ca_cert)
                 for _ in range(500)]
        for p in other:
            s.resp.request("GET", p)
        lua = lua_for(other, work / "origin.lua")
        url = f"http://127.0.0.1:{s.resp.port}/"
        res["baseline"] = wrk(url, lua, 8, conns=16, threads=1)
        n0 = s.resp.n_lines()
        proc = subprocess.Popen(["wrk", "-t1", "-c16", "-d8s", "--latency", "-s", str(lua),
                                 url], stdout=subprocess.PIPE, text=True)
        time.sleep(2)
        t0 = time.monotonic()
        s.run.store("revoke", s.ca.name, "--issued-after", "2025-01-01T00:00:00Z",
                    "--reason", "keyCompromise", timeout=600)
        t1 = time.monotonic()
        if not purge:
            out, _ = proc.communicate(timeout=120)
            m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
            res["during_p99_ms"] = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
            res["during_rate"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
            res["commit_s"] = t1 - t0
            return res
        # The revocation commits in batches of 50,000 (VG_TXN_MAX_CHANGES):
        # wait until the Varnish purger has acknowledged tags for all of them.
        rx = re.compile(r"event=edge_purged edge=http://127\.0\.0\.1:(\d+)/ .*tags=(\d+) "
                        r"crls=\d+ requests=(\d+)")
        deadline = time.monotonic() + 120
        while True:
            ms = [rx.search(l) for l in s.resp.lines[n0:]]
            ms = [m for m in ms if m and int(m.group(1)) == s.proxy.port]
            tags = sum(int(m.group(2)) for m in ms)
            if tags >= args.bulk or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        t2 = time.monotonic()
        res["tags"] = tags
        res["requests"] = sum(int(m.group(3)) for m in ms)
        res["batches"] = len(ms)
        line = " / ".join(m.group(0).split("event=")[1] for m in ms)
        out, _ = proc.communicate(timeout=120)
        m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
        res["during_p99_ms"] = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
        res["during_rate"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        res["commit_s"] = t1 - t0
        res["ack_after_commit_s"] = t2 - t1
        res["line"] = line
        good = [p for p in paths
                if status(s.varnish.request("GET", p)[2], s.ca_cert) != ocsp.OCSPCertStatus.REVOKED]
        res["still_good"] = len(good)
    finally:
        s.stop()
    return res


def bench_origin(work, max_age):
    d = work / f"origin-{max_age}"
    d.mkdir()
    s = Stack(d, f"o{max_age}", max_age=max_age, workers=1)
    rng = random.Random(7)
    try:
        s.start()
        paths = [ocsp_path(fake_cert(rng.getrandbits(100), s.ca_cert), s.ca_cert)
                 for _ in range(args.urls)]
        for p in paths:  # every answer in the edge once
            s.nginx.request("GET", p)
        log = d / "access.log"
        before = log.read_text().count("\n")
        cpu0 = cpu_seconds(s.resp.proc.pid)
        r = wrk(f"http://127.0.0.1:{s.nginx.port}/", lua_for(paths, d / "p.lua"),
                args.duration)
        cpu = cpu_seconds(s.resp.proc.pid) - cpu0
        lines = log.read_text().splitlines()[before:]
        return {"wrk": r, "origin": len(lines), "origin_304": sum(" status=304 " in l for l in lines),
                "cpu": cpu}
    finally:
        s.stop()


work = Path(tempfile.mkdtemp(prefix="vigil-bench-edge-"))
print(f"work directory: {work}")
if not args.skip_singles:
    lat, crl_v, crl_n = bench_singles(work / "singles")
    print(f"\nsingle revocation -> Varnish ({len(lat)} runs): p50 {pct(lat, 50) * 1000:.0f} ms, "
          f"p99 {pct(lat, 99) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms")
    print(f"new CRL -> Varnish ({len(crl_v)}): p50 {pct(crl_v, 50) * 1000:.0f} ms, max "
          f"{max(crl_v) * 1000:.0f} ms; -> nginx: p50 {pct(crl_n, 50) * 1000:.0f} ms, max "
          f"{max(crl_n) * 1000:.0f} ms")
if not args.skip_bulk:
    nb = bench_bulk(work / "bulk-no-edge", purge=False)
    b = bench_bulk(work / "bulk")
    print(f"\nbulk revocation of {args.bulk} by window (seeded in {b['seed_s']:.0f} s): "
          f"vigil-store revoke took {b['commit_s']:.2f} s; purge acknowledged "
          f"{b['ack_after_commit_s']:.2f} s after it returned: {b['tags']} tags in "
          f"{b['requests']} purge requests ({b['batches']} acknowledgements)\n  {b['line']}\n"
          f"  2,000 answers cached at Varnish still good afterwards: {b['still_good']}\n"
          f"  origin p99 (cached GET, wrk -t1 -c16): {b['baseline']['p99_ms']:.2f} ms without a "
          f"purge, {b['during_p99_ms']:.2f} ms while the revocation and its purge ran "
          f"({b['baseline']['rate']:.0f} vs {b['during_rate']:.0f} req/s)\n"
          f"  the same revocation with no edge configured: {nb['baseline']['p99_ms']:.2f} ms "
          f"before, {nb['during_p99_ms']:.2f} ms during ({nb['baseline']['rate']:.0f} vs "
          f"{nb['during_rate']:.0f} req/s; vigil-store revoke took {nb['commit_s']:.2f} s)")
if not args.skip_origin:
    res = {a: bench_origin(work, a) for a in (60, 0)}
    print(f"\norigin behind nginx, {args.urls} answers, wrk -t2 -c32 -d{args.duration}s through "
          "the edge:")
    print(f"{'max_age':>8} {'edge req/s':>11} {'origin reqs':>12} {'of them 304':>12} "
          f"{'origin req/s':>13} {'origin CPU s':>13}")
    for a, r in res.items():
        print(f"{a:>8} {r['wrk']['rate']:>11.0f} {r['origin']:>12} {r['origin_304']:>12} "
              f"{r['origin'] / args.duration:>13.1f} {r['cpu']:>13.2f}")
        assert r["wrk"]["non2xx"] == 0 and not r["wrk"]["socket_errors"], r["wrk"]["raw"]
