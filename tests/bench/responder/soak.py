#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""vigil-responder soak: steady wrk load for N minutes, memory sampled (run on demand).

    tests/bench/responder/soak.py [--build DIR] [--minutes M] [--certs N] [--conns C]
                                  [--delay-ms D] [--nonce-percent P] [--interval S] [--work DIR]

A store of N certificates (every tenth revoked) of one ECDSA CA with a
delegated signer; vigil-responder with two workers; one wrk (keep-alive, C
connections) whose Lua script picks at random, for every request: GET or POST
(half each) of one of the N serials or of a serial absent from the store (one
in ten), and with --nonce-percent P a POST with a fresh 16-octet nonce (signed
every time). N is above the cache's 16,384 answers by default, so the cache
evicts all along. --delay-ms paces each connection (wrk's delay()), for a
steady rate that leaves the machine some room; 0 is as fast as it goes.

Every --interval seconds: VmRSS (/proc/PID/status) and Rss, Pss, Pss_Anon,
Private_Clean, Private_Dirty (/proc/PID/smaps_rollup), cache entries and
requests served (/metrics). Prints the samples, the figures before the load,
after the warm-up (--warmup, default 60 s, while the cache fills) and at the
end, and the least-squares slope of VmRSS, Pss and Private_Dirty in KiB per
minute after the warm-up and over the second half. The goal is flat. Exit 1 if wrk saw errors or non-2xx answers.
"""
import argparse
import base64
import datetime
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import pki  # noqa: E402
from bench import make_store  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509 import ocsp  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

NO_PROBE = "wrk.resolve = function(host, service) wrk.addrs = wrk.lookup(host, service) end\n"


def lua_str(b):
    return '"' + "".join("\\%d" % x for x in b) + '"'


def fake_cert(serial, issuer, key):
    """A certificate with |serial| naming |issuer| (a CertID needs only these)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    now = datetime.datetime(2020, 1, 1)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject)
            .public_key(key.public_key()).serial_number(serial).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))


def request_der(cert, issuer, nonce=None):
    b = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    if nonce is not None:
        b = b.add_extension(x509.OCSPNonce(nonce), critical=False)
    return b.build().public_bytes(serialization.Encoding.DER)


def write_script(path, reqs, nonce_req, marker, nonce_percent, delay_ms):
    """The wrk Lua script: random GET/POST over |reqs|, some nonce POSTs."""
    at = nonce_req.index(marker)
    pre, post = nonce_req[:at], nonce_req[at + len(marker):]
    gets = ",".join('"/%s"' % urllib.parse.quote(base64.b64encode(r).decode(), safe="")
                    for r in reqs)
    bodies = ",".join(lua_str(r) for r in reqs)
    path.write_text(NO_PROBE + f"""
local gets = {{{gets}}}
local bodies = {{{bodies}}}
local pre = {lua_str(pre)}
local post = {lua_str(post)}
local hdrs = {{['Content-Type'] = 'application/ocsp-request'}}
local nonce_percent = {nonce_percent}
local delay_ms = {delay_ms}
function init(args)
  math.randomseed(os.time() + tonumber(tostring({{}}):sub(8), 16) % 100000)
end
function request()
  if math.random(1, 100) <= nonce_percent then
    local t = {{}}
    for k = 1, 16 do t[k] = string.char(math.random(0, 255)) end
    return wrk.format('POST', '/', hdrs, pre .. table.concat(t) .. post)
  end
  local i = math.random(1, #gets)
  if math.random(0, 1) == 0 then
    return wrk.format('GET', gets[i])
  end
  return wrk.format('POST', '/', hdrs, bodies[i])
end
if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end
function done(summary, latency, requests)
  io.write(string.format("ERRORS status=%d connect=%d read=%d write=%d timeout=%d\\n",
    summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
  io.write(string.format("LATENCY p50=%.3fms p99=%.3fms max=%.3fms\\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
""")


def kib(text, key):
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def sample(pid, port):
    status = Path(f"/proc/{pid}/status").read_text()
    roll = Path(f"/proc/{pid}/smaps_rollup").read_text()
    s = {"VmRSS": kib(status, "VmRSS"), "Rss": kib(roll, "Rss"), "Pss": kib(roll, "Pss"),
         "Pss_Anon": kib(roll, "Pss_Anon"), "Private_Clean": kib(roll, "Private_Clean"),
         "Private_Dirty": kib(roll, "Private_Dirty"), "entries": 0, "requests": 0}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        m = re.search(r"^vigil_cache_entries (\d+)", text, re.M)
        s["entries"] = int(m.group(1)) if m else 0
        s["requests"] = sum(int(v) for v in
                            re.findall(r"^vigil_http_responses_total\{[^}]*\} (\d+)", text, re.M))
    except OSError:
        pass
    return s


def slope(points):
    """Least-squares slope of [(t_seconds, kib)] in KiB per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return 60 * sum((t - mt) * (v - mv) for t, v in points) / den if den else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--certs", type=int, default=20000)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--nonce-percent", type=int, default=5)
    ap.add_argument("--interval", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=60,
                    help="seconds until the cache is full, left out of the slope")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("soak: wrk not found (apt-get install wrk)")
    build = Path(a.build).resolve()
    store_bin = build / "store" / "vigil-store"
    resp_bin = build / "responder" / "vigil-responder"
    work = Path(a.work or tempfile.mkdtemp(prefix="vigil-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work dir {work}", file=sys.stderr)

    ca = pki.CA(work, "soak", "ec")
    ca_cert = x509.load_pem_x509_certificate(Path(ca.cert).read_bytes())
    rng = random.Random(1)
    serials = rng.sample(range(1 << 40, 1 << 48), a.certs + a.certs // 10)
    present = serials[:a.certs]  # the rest are absent from the store
    lines = []
    for i, s in enumerate(present):
        hexs = "%X" % s
        hexs = "0" + hexs if len(hexs) % 2 else hexs
        rev = "260101000000Z,keyCompromise" if i % 10 == 9 else ""
        lines.append(f"{'R' if rev else 'V'}\t351231235959Z\t{rev}\t{hexs}\tunknown\t/CN=s{i}\n")
    (work / "index.txt").write_text("".join(lines))
    conf = make_store(store_bin, work, ca, "soak", a.workers)
    key = ec.generate_private_key(ec.SECP256R1())
    reqs = [request_der(fake_cert(s, ca_cert, key), ca_cert) for s in serials]
    marker = b"\xAB" * 16
    nonce_req = request_der(fake_cert(present[0], ca_cert, key), ca_cert, nonce=marker)
    script = work / "soak.lua"
    write_script(script, reqs, nonce_req, marker, a.nonce_percent, a.delay_ms)

    log = open(work / "responder.log", "w")
    proc = subprocess.Popen([resp_bin, "-c", conf], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=log)
    port = None
    deadline = time.monotonic() + 20
    while port is None and time.monotonic() < deadline:
        m = re.search(r"event=listening .*addr=127\.0\.0\.1:(\d+)",
                      (work / "responder.log").read_text())
        port = int(m.group(1)) if m else None
        time.sleep(0.05)
    if port is None:
        proc.kill()
        sys.exit("soak: the responder did not start: " + (work / "responder.log").read_text())

    duration = int(a.minutes * 60)
    cmd = ["wrk", "-t2", f"-c{a.conns}", f"-d{duration}s", "--timeout", "10s", "-s",
           str(script), f"http://127.0.0.1:{port}"]
    print("$ " + " ".join(cmd), file=sys.stderr)
    samples = []
    t0 = time.monotonic()
    samples.append((0.0, sample(proc.pid, port)))
    wrk = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    hdr = (f"{'t_s':>6} {'VmRSS':>8} {'Rss':>8} {'Pss':>8} {'Pss_Anon':>8} {'Priv_Cl':>8} "
           f"{'Priv_Di':>8} {'entries':>8} {'requests':>10}")
    print(hdr + "   (KiB)")
    try:
        nxt = t0 + a.interval
        while wrk.poll() is None:
            time.sleep(max(0, min(1.0, nxt - time.monotonic())))
            if time.monotonic() >= nxt and wrk.poll() is None:
                nxt += a.interval
                t = time.monotonic() - t0
                s = sample(proc.pid, port)
                samples.append((t, s))
                print(f"{t:6.0f} {s['VmRSS']:8} {s['Rss']:8} {s['Pss']:8} {s['Pss_Anon']:8} "
                      f"{s['Private_Clean']:8} {s['Private_Dirty']:8} {s['entries']:8} "
                      f"{s['requests']:10}", flush=True)
        out = wrk.stdout.read()
    finally:
        if wrk.poll() is None:
            wrk.kill()
        t = time.monotonic() - t0
        samples.append((t, sample(proc.pid, port)))
        proc.terminate()
        rc = proc.wait(30)
        log.close()
    print(out)
    start, last = samples[0][1], samples[-1][1]
    steady = [p for p in samples[1:] if p[0] >= a.warmup] or samples[1:]
    first = steady[0]
    half = [p for p in steady if p[0] >= duration / 2]
    print(f"responder exit {rc}; {len(samples)} samples every {a.interval:.0f} s over "
          f"{duration} s; {last['requests']} requests served; cache {last['entries']} answers")
    for k in ("VmRSS", "Pss", "Private_Dirty"):
        pts = [(t, s[k]) for t, s in steady]
        print(f"{k}: {start[k]} KiB before the load, {first[1][k]} KiB at {first[0]:.0f} s "
              f"(after the warm-up), {last[k]} KiB at the end: {last[k] - first[1][k]:+d} KiB; "
              f"slope {slope(pts):+.1f} KiB/min after the warm-up, "
              f"{slope([(t, s[k]) for t, s in half]):+.1f} KiB/min over the second half")
    errs = re.search(r"ERRORS status=(\d+) connect=(\d+) read=(\d+) write=(\d+) timeout=(\d+)",
                     out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = (sum(int(x) for x in errs.groups()) if errs else 1) + \
        (int(non2xx.group(1)) if non2xx else 0)
    print(f"wrk errors + non-2xx: {bad}")
    sys.exit(0 if bad == 0 and rc == 0 else 1)


if __name__ == "__main__":
    main()
