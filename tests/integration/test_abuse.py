# SPDX-License-Identifier: Apache-2.0
"""vigil-responder under hostile input, with its privileges, and with a failing signer.

Connection abuse on 127.0.0.1 against the real binary: slowloris on headers and
bodies, thousands of idle connections past max_connections, header floods,
oversized URLs and bodies, pipelined garbage after a valid request. During
each, a well-behaved client (a separate process, so that the abuse's Python
work cannot delay it through the GIL) keeps asking over one keep-alive
connection, every 10 ms, by GET and POST, for a good, a revoked and an unknown
serial, and checks each answer (status and signature, python3-cryptography).
It must get every answer right, and within its normal latency:

  p99 during the abuse <= max(5 x p99 before it, 50 ms), and no answer over 1 s
  (100 ms under ASan and UBSan, which make the responder 2-3 times slower).

Why these bounds: on 127.0.0.1 an answer from the cache takes well under a
millisecond in the responder; what the client sees is mostly Python and the
scheduler. On a loaded 2-CPU CI machine (two responder workers, the abuse
generator and the client on two CPUs, maybe under ASan) a context switch or two
costs a few milliseconds, so a bound tighter than a few times the measured
baseline flakes, and 50 ms is the floor below which the baseline's own noise
decides. A responder that stalls on abuse (a blocked loop, a worker busy with
a flood, accept starved) shows as hundreds of milliseconds or as seconds, far
above either bound. The 1 s cap catches any stall up to the timeouts used here.

Privileges (root only): the responder drops to `user =` after binding, keeps
answering, and never writes to the store; it refuses key files others can read
or write. Signer failure (SoftHSM2): /healthz turns 503 after repeated failed
signatures and 200 after a success; a cached answer past its refresh point but
before its nextUpdate is served instead of tryLater."""
import base64
import hashlib
import json
import os
import pwd
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pki  # noqa: E402
from conftest import Runner, binary, run, sanitized_build, write_config  # noqa: E402
from responder_util import (Responder, check_response, fake_cert, load_cert,  # noqa: E402
                            make_request, parse_responses, recv_all, status_of)

PROBE_EVERY = 0.010  # seconds between two questions of the well-behaved client
LAT_FACTOR = 5
LAT_CAP = 1.0


# ASan and UBSan make every allocation and memory access of the responder
# slower (2-3x); the floor doubles with them.
LAT_FLOOR = 0.100 if sanitized_build() else 0.050


# ---- the well-behaved client (a separate process) -------------------------------------------

def probe_main(port, spec_path):
    """Ask, check and time until stdin closes (or 120 s); print each sample as
    a JSON line as it comes: [t_sent (CLOCK_MONOTONIC), latency s, error or null]."""
    import http.client
    from cryptography.x509 import ocsp as xocsp
    spec = json.loads(Path(spec_path).read_text())
    issuer = load_cert(spec["issuer"])
    want = {"good": xocsp.OCSPCertStatus.GOOD, "revoked": xocsp.OCSPCertStatus.REVOKED,
            "unknown": xocsp.OCSPCertStatus.UNKNOWN}
    items = []
    for q in spec["queries"]:
        der = base64.b64decode(q["der"])
        items.append(("POST", "/", der, want[q["status"]]))
        items.append(("GET", "/" + urllib.parse.quote(q["der"], safe=""), None,
                      want[q["status"]]))
    conn = None
    stop_at = time.monotonic() + 120
    i = 0
    while time.monotonic() < stop_at:
        r, _, _ = select.select([sys.stdin], [], [], PROBE_EVERY)
        if r:
            break
        method, path, body, status = items[i % len(items)]
        i += 1
        t0 = time.monotonic()
        err = None
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            hdrs = {"Content-Type": "application/ocsp-request"} if body else {}
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            lat = time.monotonic() - t0
            if resp.status != 200:
                err = f"HTTP {resp.status}"
            else:
                got = check_response(data, issuer).certificate_status
                if got != status:
                    err = f"status {got} for {method}, want {status}"
            if resp.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except Exception as e:  # noqa: BLE001 - every failure is a sample
            lat = time.monotonic() - t0
            err = f"{type(e).__name__}: {e}"
            if conn is not None:
                conn.close()
            conn = None
        sys.stdout.write(json.dumps((t0, lat, err)) + "\n")
        sys.stdout.flush()
    if conn is not None:
        conn.close()


class Prober:
    """The well-behaved client, started as `python3 test_abuse.py --probe`; its
    samples are collected as they come."""

    def __init__(self, port, spec_path):
        self.p = subprocess.Popen([sys.executable, __file__, "--probe", str(port),
                                   str(spec_path)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, env=dict(os.environ,
                                                                   PYTHONDONTWRITEBYTECODE="1"))
        self.samples = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            with self.lock:
                self.samples.append(json.loads(line))

    def count(self, since=0.0):
        with self.lock:
            return sum(1 for s in self.samples if s[0] >= since)

    def stop(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write(b"stop\n")
                self.p.stdin.close()
                self.p.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait(10)
            self.reader.join(10)
        with self.lock:
            return list(self.samples)

    def window(self, t0, t1):
        with self.lock:
            return [s for s in self.samples if t0 <= s[0] < t1]


def p99(lats):
    s = sorted(lats)
    return s[min(len(s) - 1, int(len(s) * 0.99))]


def judge(prober, base, during, what):
    """No failed answer at any time; the latency during the abuse within the
    bounds of the module docstring. Returns a one-line summary."""
    samples = prober.stop()
    errors = [s for s in samples if s[2]]
    assert not errors, f"{what}: {len(errors)} failed answers, first: {errors[:3]}"
    b = [s[1] for s in prober.window(*base)]
    d = [s[1] for s in prober.window(*during)]
    assert len(b) >= 50, f"{what}: only {len(b)} baseline samples"
    assert len(d) >= 10, f"{what}: only {len(d)} samples during the abuse"
    bound = max(LAT_FACTOR * p99(b), LAT_FLOOR)
    slow = sorted(prober.window(*during), key=lambda s: -s[1])[:3]
    line = (f"{what}: baseline n={len(b)} p99={p99(b) * 1000:.1f} ms; during n={len(d)} "
            f"p99={p99(d) * 1000:.1f} ms max={max(d) * 1000:.1f} ms (bound {bound * 1000:.0f} ms)"
            "; slowest at +" + ", +".join(f"{s[0] - during[0]:.2f} s ({s[1] * 1000:.0f} ms)"
                                          for s in slow))
    print(line)
    assert p99(d) <= bound, line
    assert max(d) <= LAT_CAP, line
    return line


# ---- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pkienv(tmp_path_factory):
    """One ECDSA CA with a delegated signer: a good and a revoked leaf, a store."""
    root = tmp_path_factory.mktemp("abuse")
    e = type("Env", (), {})()
    e.root = root
    e.ca = pki.CA(root, "abuse", "ec")
    e.good = e.ca.issue("good.example")
    e.revoked = e.ca.issue("revoked.example")
    e.ca.revoke(e.revoked[1], "keyCompromise")
    e.store_dir = root / "store"
    Runner(write_config(root / "init.conf", e.store_dir, [e.ca])).seed(e.ca)
    e.issuer = load_cert(e.ca.cert)
    good = make_request(load_cert(e.good[1]), e.issuer)
    revoked = make_request(load_cert(e.revoked[1]), e.issuer)
    unknown = make_request(fake_cert(0x7777777, e.issuer), e.issuer)
    e.good_req = good
    e.spec = root / "probe.json"
    e.spec.write_text(json.dumps({"issuer": str(e.ca.cert), "queries": [
        {"der": base64.b64encode(good).decode(), "status": "good"},
        {"der": base64.b64encode(revoked).decode(), "status": "revoked"},
        {"der": base64.b64encode(unknown).decode(), "status": "unknown"}]}))
    return e


def start(e, tmp_path, **responder):
    opts = {"workers": "2", "header_timeout": "3s", "body_timeout": "3s", "idle_timeout": "60s"}
    opts.update({k: str(v) for k, v in responder.items()})
    conf = write_config(tmp_path / "vigil.conf", e.store_dir, [(e.ca, {})], responder=opts)
    return Responder(conf).start()


def count_log(r, pattern, start=0):
    rx = re.compile(pattern)
    with r.lock:
        return sum(1 for line in r.lines[start:] if rx.search(line))


# The responder writes at most LOG_BURST lines a second of each kind of
# refusal per worker and counts the rest in one line,
# "event=log_suppressed what=<kind> count=N", once the second is over
# (common/log.h).
LOG_BURST = 10


def count_events(r, what, start=0):
    """Events |what| (a regex such as "http_refused status=414") logged since
    line |start|: the lines written plus the counts of the log_suppressed
    lines that stand for the others."""
    line_rx = re.compile(r"event=" + what + r"(?: |$)")
    sup_rx = re.compile(r"event=log_suppressed what=" + what + r" count=(\d+)")
    with r.lock:
        lines = r.lines[start:]
        return sum(1 for ln in lines if line_rx.search(ln)) + \
            sum(int(m.group(1)) for ln in lines for m in [sup_rx.search(ln)] if m)


def wait_events(r, what, n, start=0, timeout=10):
    deadline = time.monotonic() + timeout
    while count_events(r, what, start) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return count_events(r, what, start)


def assert_lines_bounded(r, what, start, seconds, kinds=1, workers=2):
    """At most LOG_BURST lines |what| per kind (here, per status), worker and
    started second."""
    written = count_log(r, r"event=" + what + r"(?: |$)", start)
    bound = LOG_BURST * kinds * workers * (int(seconds) + 2)
    assert written <= bound, f"{written} lines of {what} in {seconds:.1f} s (at most {bound})"


def baseline(prober, samples=100, limit=10.0):
    """Let the client ask alone, after a short warm-up, until it has |samples|
    answers (at least 1 s, at most |limit| s: a loaded machine is slower)."""
    time.sleep(0.5)
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit and (time.monotonic() - t0 < 1.0 or
                                             prober.count(t0) < samples):
        time.sleep(0.05)
    return (t0, time.monotonic())


def ocsp_ok(r, e):
    status, _, der = r.post(e.good_req)
    return status == 200 and status_of(der).name == "SUCCESSFUL"


# ---- connection abuse -----------------------------------------------------------------------

def test_slowloris_cut_at_timeouts(pkienv, tmp_path):
    """Connections that send one byte a second, in the headers (8) and in a
    body (4), are cut with 408 at header_timeout / body_timeout (3 s here),
    counted from their first byte / from the end of their headers: a trickle
    does not extend them. One log line each."""
    e = pkienv
    r = start(e, tmp_path)
    prober = Prober(r.port, e.spec)
    socks = []
    try:
        base = baseline(prober)
        n0 = r.n_lines()
        t_start = time.monotonic()
        header_part = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 64
        body_head = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
                     b"Content-Length: 200\r\n\r\n")
        for kind in ["headers"] * 8 + ["body"] * 4:
            s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
            s.setblocking(False)
            if kind == "body":
                s.sendall(body_head)  # the headers complete at once; the body trickles
            socks.append({"s": s, "kind": kind, "t0": time.monotonic(), "data": b"", "eof": None,
                          "sent": 0})
        deadline = time.monotonic() + 10
        next_byte = time.monotonic()
        while time.monotonic() < deadline and any(c["eof"] is None for c in socks):
            if time.monotonic() >= next_byte:
                next_byte += 1.0
                for c in socks:
                    if c["eof"] is None:
                        src = header_part if c["kind"] == "headers" else b"x" * 200
                        try:
                            c["s"].send(src[c["sent"] % len(src):][:1])
                            c["sent"] += 1
                        except OSError:
                            pass
            rl, _, _ = select.select([c["s"] for c in socks if c["eof"] is None], [], [], 0.05)
            for c in socks:
                if c["s"] in rl:
                    try:
                        chunk = c["s"].recv(4096)
                    except (ConnectionResetError, BlockingIOError):
                        chunk = b"" if c["data"] else None
                    if chunk is None:
                        continue
                    c["data"] += chunk
                    if not chunk:
                        c["eof"] = time.monotonic()
        during = (t_start, time.monotonic())
        for c in socks:
            assert c["eof"] is not None, f"{c['kind']} slowloris still open after 10 s"
            cut = c["eof"] - c["t0"]
            # 3 s after the first byte (sent right after connecting); the slack
            # is the lingering close and a loaded machine.
            assert 2.8 <= cut <= 5.0, f"{c['kind']}: cut after {cut:.2f} s"
            assert parse_responses(c["data"])[0][0] == 408, c["data"][:200]
            assert c["sent"] <= 6
        assert wait_events(r, r"timeout phase=headers", 8, n0) >= 8
        assert wait_events(r, r"timeout phase=body", 4, n0) >= 4
        judge(prober, base, during, "slowloris")
    finally:
        for c in socks:
            c["s"].close()
        prober.stop()
        r.__exit__(None, None, None)
    assert r.stop() == 0


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        if hard < n:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
            except (ValueError, OSError):
                pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {n}")
        else:
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def test_thousands_of_idle_connections(pkienv, tmp_path):
    """2,600 connections that connect and say nothing, against max_connections
    = 2000: the first 1,999 (the client holds one) are kept, every other one
    gets 503 and a log line; the client keeps being answered; once they go,
    new connections are accepted again."""
    e = pkienv
    total, maxc = 2600, 2000
    raise_nofile(total + 512)
    r = start(e, tmp_path, max_connections=maxc, header_timeout="30s")
    prober = Prober(r.port, e.spec)
    socks = []
    try:
        base = baseline(prober)
        n0 = r.n_lines()
        t_start = time.monotonic()
        for _ in range(total):
            socks.append(socket.create_connection(("127.0.0.1", r.port), timeout=5))
        print(f"{total} connections opened in {time.monotonic() - t_start:.2f} s")
        # The refused ones are answered 503 and closed; the kept ones stay silent.
        poller = select.poll()
        for s in socks:
            poller.register(s, select.POLLIN)
        refused = {}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for fd, _ in poller.poll(200):
                s = socket.socket(fileno=os.dup(fd))
                try:
                    s.settimeout(2)
                    refused[fd] = recv_all(s, 2)
                finally:
                    s.close()
                poller.unregister(fd)
            if len(refused) >= total - (maxc - 1) and \
                    count_events(r, r"conn_refused reason=max_connections", n0) >= len(refused):
                break
        time.sleep(2.0)  # held a while longer, the client still asking
        during = (t_start, time.monotonic())
        assert len(refused) == total - (maxc - 1), f"{len(refused)} refused"
        for data in refused.values():
            assert parse_responses(data)[0][0] == 503, data[:200]
        assert wait_events(r, r"conn_refused reason=max_connections", len(refused), n0) == \
            len(refused)
        # While full, a newcomer is refused too (the client's kept connection is not).
        assert r.raw(b"GET /healthz HTTP/1.1\r\n\r\n", timeout=5).startswith(b"HTTP/1.1 503")
        judge(prober, base, during, f"{total} idle connections")
    finally:
        for s in socks:
            s.close()
        prober.stop()
    try:
        deadline = time.monotonic() + 10
        while r.request("GET", "/healthz")[0] != 200:
            assert time.monotonic() < deadline, "connections not released"
            time.sleep(0.1)
        assert ocsp_ok(r, e)
    finally:
        r.__exit__(None, None, None)
    assert r.stop() == 0


def refused_with(r, data, status, timeout=5):
    """Send |data| (in chunks, stopping when the server has closed) on a new
    connection; return the parsed first response, which must be |status|,
    and check the server closed the connection."""
    s = socket.create_connection(("127.0.0.1", r.port), timeout=timeout)
    try:
        view = memoryview(data)
        try:
            while view:
                n = s.send(view[:65536])
                view = view[n:]
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        out = recv_all(s, timeout)
    finally:
        s.close()
    resp = parse_responses(out)
    assert resp and resp[0][0] == status, (status, out[:300])
    return len(data) - len(view)


def abuse_in_parallel(r, cases, seconds=3.0, workers=3, max_rounds=1000):
    """Run the (data, status) |cases| from |workers| threads, round after round,
    for |seconds| (at most |max_rounds| rounds); returns how many were sent."""
    stop_at = time.monotonic() + seconds
    sent = [0] * workers

    def loop(k):
        for rnd in range(max_rounds):
            if time.monotonic() >= stop_at:
                break
            data, status = cases[(k + rnd) % len(cases)]
            refused_with(r, data, status)
            sent[k] += 1

    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(loop, range(workers)))
    return sum(sent), sent


def endless_header(r, limit=15):
    """Send one header value without end; return (seconds until the server cut
    the connection, what it answered)."""
    s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    got = b""
    t0 = time.monotonic()
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nX-Endless: ")
        chunk = b"v" * 65536
        while time.monotonic() - t0 < limit:
            try:
                rl, wl, _ = select.select([s], [s], [], 1)
                if rl:
                    data = s.recv(65536)
                    if not data:
                        break
                    got += data
                if wl:
                    s.send(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        return time.monotonic() - t0, got
    finally:
        s.close()


def test_header_floods_431(pkienv, tmp_path):
    """Many headers (3,000), one huge header value (64 KiB), and a header value
    without end: 431 and closed, each with a log line; the endless one is cut
    within the lingering close, not read for ever."""
    e = pkienv
    r = start(e, tmp_path)
    prober = Prober(r.port, e.spec)
    try:
        base = baseline(prober)
        n0 = r.n_lines()
        t_start = time.monotonic()
        many = b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-F%d: v\r\n" % i for i in range(3000)) \
            + b"\r\n"
        huge = b"GET /healthz HTTP/1.1\r\nX-Big: " + b"v" * 65536 + b"\r\n\r\n"
        cases = [(many, 431), (huge, 431)]
        n, _ = abuse_in_parallel(r, cases)
        cut, answer = endless_header(r)
        during = (t_start, time.monotonic())
        assert parse_responses(answer)[0][0] == 431, answer[:200]
        # Cut after the lingering close (2 s of reading and dropping), not never.
        assert cut < 6, f"an endless header was read for {cut:.1f} s"
        got = wait_events(r, r"http_refused status=431", n + 1, n0)
        assert got == n + 1, got
        judge(prober, base, during, "header floods")
        assert ocsp_ok(r, e)
    finally:
        prober.stop()
        r.__exit__(None, None, None)
    assert r.stop() == 0


def test_oversized_urls_and_bodies(pkienv, tmp_path):
    """URLs of 16 KiB and 1 MiB: 414. Bodies over max_request_bytes (16 KiB),
    announced (Content-Length: 10^9, nothing sent), sent (100 KiB) and chunked
    (chunks past the limit): 413. Closed, with a log line each."""
    e = pkienv
    r = start(e, tmp_path)
    prober = Prober(r.port, e.spec)
    try:
        base = baseline(prober)
        n0 = r.n_lines()
        t_start = time.monotonic()
        url16k = b"GET /" + b"A" * 16384 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        url1m = b"GET /" + b"A" * (1 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
        announced = post + b"Content-Length: 1000000000\r\n\r\n"
        sent = post + b"Content-Length: 102400\r\n\r\n" + b"\x30" * 102400
        chunked = post + b"Transfer-Encoding: chunked\r\n\r\n" + \
            b"".join(b"1000\r\n" + b"\x30" * 4096 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
        cases = [(url16k, 414), (url1m, 414), (announced, 413), (sent, 413), (chunked, 413)]
        n, per = abuse_in_parallel(r, cases)
        during = (t_start, time.monotonic())
        # Thread k sends case (k + round) % 5: count what each status got.
        want = {414: 0, 413: 0}
        for k, m in enumerate(per):
            for rnd in range(m):
                want[cases[(k + rnd) % len(cases)][1]] += 1
        n414 = wait_events(r, r"http_refused status=414", want[414], n0)
        n413 = wait_events(r, r"http_refused status=413", want[413], n0)
        assert (n414, n413) == (want[414], want[413]) and n >= 50, (n414, n413, want)
        assert_lines_bounded(r, r"http_refused status=41[34]", n0, during[1] - during[0],
                             kinds=2)
        judge(prober, base, during, "oversized URLs and bodies")
    finally:
        prober.stop()
        r.__exit__(None, None, None)
    assert r.stop() == 0


GARBAGE = [(b"\x00\xff\xfe garbage \x01\r\n\r\n", 400), (b"GET / HTTP/9.9\r\n\r\n", 505),
           (b"GET /healthz HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
           (b"\x16\x03\x01\x02\x00\x01\x00", 400),
           (b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400)]


def test_pipelined_garbage_after_a_valid_request(pkienv, tmp_path):
    """A valid request followed, in the same segment, by garbage: the valid one
    is answered (and its answer checked), then 400 (505 for "HTTP/9.9"), then
    the connection is closed. For 3 s from 3 threads, 5 kinds of garbage, by GET and by POST."""
    e = pkienv
    r = start(e, tmp_path)
    prober = Prober(r.port, e.spec)
    b64 = urllib.parse.quote(base64.b64encode(e.good_req).decode(), safe="")
    valid = [b"GET /" + b64.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n",
             b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
             b"Content-Length: %d\r\n\r\n" % len(e.good_req) + e.good_req]

    def one(i):
        s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
        try:
            junk, status = GARBAGE[i % len(GARBAGE)]
            s.sendall(valid[i % 2] + junk)
            t0 = time.monotonic()
            data = recv_all(s, 5)
            closed_after = time.monotonic() - t0
        finally:
            s.close()
        resp = parse_responses(data)
        assert [x[0] for x in resp] == [200, status], (i, data[:400])
        check_response(resp[0][2], e.issuer)
        assert closed_after < 4, f"not closed after the 400 ({closed_after:.1f} s)"

    try:
        base = baseline(prober)
        n0 = r.n_lines()
        t_start = time.monotonic()
        stop_at = time.monotonic() + 3.0
        done = [0] * 3

        def loop(k):
            for i in range(k, 3 * 2000, 3):  # bounded
                if time.monotonic() >= stop_at:
                    break
                one(i)
                done[k] += 1

        with ThreadPoolExecutor(3) as ex:
            list(ex.map(loop, range(3)))
        during = (t_start, time.monotonic())
        n = sum(done)
        assert n >= 50
        # Every refusal is accounted for, in lines or in log_suppressed
        # counts, and the lines themselves stay few.
        assert wait_events(r, r"http_refused status=(?:400|505)", n, n0) == n
        assert_lines_bounded(r, r"http_refused status=(?:400|505)", n0, during[1] - during[0],
                             kinds=2)
        judge(prober, base, during, "pipelined garbage")
    finally:
        prober.stop()
        r.__exit__(None, None, None)
    assert r.stop() == 0


# ---- privileges ---------------------------------------------------------------------------

def ids(pid):
    """The Uid, Gid and Groups lines of every thread of |pid|."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        st = (task / "status").read_text()
        uid = re.search(r"^Uid:\s+(.*)$", st, re.M).group(1).split()
        gid = re.search(r"^Gid:\s+(.*)$", st, re.M).group(1).split()
        groups = re.search(r"^Groups:\s*(.*)$", st, re.M).group(1).split()
        out.append((uid, gid, groups))
    return out


def data_mdb_opened_read_only(pid, store_dir):
    """Every descriptor and mapping of data.mdb in |pid| is read-only."""
    target = str(Path(store_dir).resolve() / "data.mdb")
    fds = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) != target:
                continue
        except FileNotFoundError:
            continue
        flags = int(re.search(r"^flags:\s+(\d+)", (Path(f"/proc/{pid}/fdinfo") / fd.name)
                              .read_text(), re.M).group(1), 8)
        assert flags & os.O_ACCMODE == os.O_RDONLY, f"data.mdb open with flags {flags:o}"
        fds += 1
    maps = [line for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
            if line.endswith(target)]
    assert fds >= 1 and maps, (fds, maps)
    for line in maps:
        assert line.split()[1][1] == "-", f"data.mdb mapped writable: {line}"


def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root")


@pytest.fixture
def public_dir():
    """A directory others may enter (pytest's tmp dirs are 0700 root)."""
    d = Path(tempfile.mkdtemp(prefix="vigil-abuse-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_drops_root_after_binding(public_dir):
    """Started as root with user = nobody, listening on a port under 1024:
    every thread runs as nobody:nogroup
    with no supplementary group, and it answers OCSP (store readable, lock
    file writable, data.mdb not), serves the CRL, reloads (its key is
    nobody's, 0600) and never opens data.mdb for writing."""
    need_root()
    nobody = pwd.getpwnam("nobody")
    d = public_dir
    ca = pki.CA(d, "priv", "ec")
    leaf = ca.issue("leaf.example")
    for p in (ca.dir,):
        p.chmod(0o755)
    os.chown(ca.ocsp_key, nobody.pw_uid, nobody.pw_gid)
    ca.ocsp_key.chmod(0o600)
    ca.key.chmod(0o600)  # the CA key stays root's: the responder does not need it
    crl_dir = d / "crl"
    crl_dir.mkdir(mode=0o755)
    conf = write_config(d / "vigil.conf", d / "store", [ca],
                        responder={"user": "nobody", "workers": "2"}, crl_out=crl_dir)
    Runner(conf).seed(ca)
    (d / "store").chmod(0o755)
    (d / "store" / "data.mdb").chmod(0o644)
    os.chown(d / "store" / "lock.mdb", nobody.pw_uid, nobody.pw_gid)
    run(pki.OPENSSL, "ca", "-batch", "-config", ca.cnf, "-gencrl", "-crldays", "7",
        "-out", crl_dir / "priv.crl")
    (crl_dir / "priv.crl").chmod(0o644)
    conf.chmod(0o644)
    before = hashlib.sha256((d / "store" / "data.mdb").read_bytes()).hexdigest()
    # A privileged port: bound as root, served as nobody.
    port = None
    for cand in range(1000, 600, -1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", cand))
                port = cand
                break
            except OSError:
                continue
    assert port
    with Responder(conf, ["--listen", f"127.0.0.1:{port}"]) as r:
        assert r.port == port
        for uid, gid, groups in ids(r.proc.pid):
            assert uid == [str(nobody.pw_uid)] * 4, uid
            assert gid == [str(nobody.pw_gid)] * 4, gid
            assert "0" not in groups, groups
        issuer = load_cert(ca.cert)
        status, _, der = r.post(make_request(load_cert(leaf[1]), issuer))
        assert status == 200 and check_response(der, issuer).certificate_status.name == "GOOD"
        assert r.request("GET", "/healthz")[0] == 200
        status, headers, body = r.request("GET", "/crl/priv.crl")
        assert status == 200 and body == (crl_dir / "priv.crl").read_bytes()
        n = r.n_lines()
        r.signal(signal.SIGHUP)
        r.wait_log(r"event=reloaded", start=n)
        status, _, der = r.get(make_request(load_cert(leaf[1]), issuer))
        assert status == 200 and check_response(der, issuer)
        data_mdb_opened_read_only(r.proc.pid, d / "store")
        assert r.stop() == 0
    assert hashlib.sha256((d / "store" / "data.mdb").read_bytes()).hexdigest() == before


@pytest.mark.parametrize("mode", [0o644, 0o666, 0o604, 0o602])
def test_refuses_key_file_others_can_access(pkienv, tmp_path, mode):
    """A key file others can read or write: one line naming it, exit 1; the
    same file at 0640 (group, e.g. the service's) starts."""
    e = pkienv
    key = tmp_path / "ocsp.key"
    shutil.copy(e.ca.ocsp_key, key)
    ca = type("CA", (), dict(name=e.ca.name, cert=e.ca.cert, key=e.ca.key,
                              ocsp_cert=e.ca.ocsp_cert, ocsp_key=key))
    conf = write_config(tmp_path / "vigil.conf", e.store_dir, [(ca, {})])
    key.chmod(mode)
    for args in ([], ["--check"]):
        p = subprocess.run([str(binary("vigil-responder")), "-c", str(conf)] + args,
                           capture_output=True, text=True, timeout=30)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 1, p.stderr
        assert len(lines) == 1, p.stderr
        assert str(key) in lines[0] and "accessible by others" in lines[0], lines[0]
        assert "mode 0%o" % mode in lines[0], lines[0]
    key.chmod(0o640)
    p = subprocess.run([str(binary("vigil-responder")), "-c", str(conf), "--check"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr


def test_never_writes_the_store(pkienv, tmp_path):
    """Hundreds of queries (GET, POST, nonces, unknown serials), a reload and a
    stop leave data.mdb byte for byte and mtime unchanged; data.mdb is open
    and mapped read-only. Then the same on a read-only bind mount of data.mdb
    (the lock file writable): it still answers."""
    e = pkienv
    store = tmp_path / "store"
    shutil.copytree(e.store_dir, store)
    data = store / "data.mdb"
    before = (hashlib.sha256(data.read_bytes()).hexdigest(), data.stat().st_mtime_ns)
    conf = write_config(tmp_path / "vigil.conf", store, [(e.ca, {})])
    reqs = [e.good_req, make_request(load_cert(e.revoked[1]), e.issuer)] + \
        [make_request(fake_cert(0x100000 + i, e.issuer), e.issuer) for i in range(50)]

    def ask_all(r):
        for i in range(300):
            q = reqs[i % len(reqs)]
            if i % 7 == 0:
                q = make_request(load_cert(e.good[1]), e.issuer, nonce=os.urandom(16))
            status, _, der = (r.post if i % 2 else r.get)(q)
            assert status == 200 and check_response(der, e.issuer)

    with Responder(conf) as r:
        ask_all(r)
        data_mdb_opened_read_only(r.proc.pid, store)
        n = r.n_lines()
        r.signal(signal.SIGHUP)
        r.wait_log(r"event=reloaded", start=n)
        ask_all(r)
        assert r.stop() == 0
    assert (hashlib.sha256(data.read_bytes()).hexdigest(), data.stat().st_mtime_ns) == before

    if os.geteuid() != 0:
        return
    if subprocess.run(["mount", "--bind", str(data), str(data)],
                      capture_output=True).returncode != 0:
        return  # no mount namespace privileges here: the checks above stand
    try:
        assert subprocess.run(["mount", "-o", "remount,ro,bind", str(data)],
                              capture_output=True).returncode == 0
        with pytest.raises(OSError):
            open(data, "r+b").close()
        with Responder(conf) as r:
            ask_all(r)
            assert r.stop() == 0
    finally:
        subprocess.run(["umount", str(data)], capture_output=True)
    assert (hashlib.sha256(data.read_bytes()).hexdigest(), data.stat().st_mtime_ns) == before


# ---- a failing signer -----------------------------------------------------------------------

CLOCK_SHIM = r"""
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
/* time() plus the seconds written in the file $VIGIL_TEST_CLOCK_SHIFT: the
 * process's wall clock as it will be that much later. */
static long shift(void)
{
	const char *p = getenv("VIGIL_TEST_CLOCK_SHIFT");
	char buf[32];
	int fd;
	ssize_t n;
	if (!p || (fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return strtol(buf, NULL, 10);
}
time_t time(time_t *t)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	time_t r = ts.tv_sec + shift();
	if (t)
		*t = r;
	return r;
}
"""


def hsm_env(tmp_path, monkeypatch, names=("hsm-ec",)):
    """A SoftHSM2 token with one CA per name (ECDSA key "ec"), two leaves each,
    a store; the programs started later find the token through os.environ."""
    import hsm_util
    why = hsm_util.missing()
    if why:
        pytest.skip(why)
    token = hsm_util.Token(tmp_path)
    monkeypatch.setenv("SOFTHSM2_CONF", str(token.conf))
    monkeypatch.delenv("VIGIL_PKCS11_PIN", raising=False)
    monkeypatch.delenv("VIGIL_PKCS11_MODULE", raising=False)
    ca = hsm_util.HsmCA(tmp_path, "hsm-ec", token, "ec")
    leaves = [load_cert(ca.issue(f"leaf{i}.example")[1]) for i in range(2)]
    conf = write_config(tmp_path / "vigil.conf", tmp_path / "store", [ca])
    Runner(conf).seed(ca)
    return token, ca, leaves, conf


def test_stale_answer_served_while_signer_fails(tmp_path, monkeypatch):
    """The token fails (SoftHSM2's files gone). An answer cached before, past
    its refresh point (the clock moved 2 days and a minute on: ocsp_validity 4
    days, refresh_percent 50) but before its nextUpdate, is served, the same
    bytes, by GET and POST, instead of tryLater; a serial never answered gets
    tryLater; past the nextUpdate the old answer is no longer served."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler for the clock shim")
    token, ca, leaves, conf = hsm_env(tmp_path, monkeypatch)
    (tmp_path / "clock.c").write_text(CLOCK_SHIM)
    shim = tmp_path / "clock.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", shim, tmp_path / "clock.c"], check=True)
    shift = tmp_path / "shift"
    shift.write_text("0")
    monkeypatch.setenv("LD_PRELOAD", str(shim))
    monkeypatch.setenv("VIGIL_TEST_CLOCK_SHIFT", str(shift))
    # Under ASan the shim precedes the runtime in the library list.
    monkeypatch.setenv("ASAN_OPTIONS", ":".join(
        x for x in (os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0") if x))
    issuer = load_cert(ca.cert)
    req = make_request(leaves[0], issuer)
    with Responder(conf) as r:
        monkeypatch.delenv("LD_PRELOAD")  # only the responder runs with the shim
        status, _, der = r.get(req)
        assert status == 200
        first = check_response(der, issuer)
        assert r.post(req)[2] == der  # cached
        token.fail()
        n = r.n_lines()
        shift.write_text(str(2 * 86400 + 60))
        time.sleep(1.2)  # a sweep of the cache (every second) at the new time
        for method in (r.get, r.post):
            status, headers, again = method(req)
            assert status == 200 and again == der, status_of(again)
        r.wait_log(r"event=sign_failed ca=hsm-ec", start=n)
        assert r.metric("vigil_stale_answers_total") == 2
        assert check_response(again, issuer).next_update == first.next_update
        # Never answered before: nothing to fall back on.
        other = make_request(leaves[1], issuer)
        assert status_of(r.post(other)[2]).name == "TRY_LATER"
        # Past the nextUpdate the old answer is not valid any more.
        shift.write_text(str(4 * 86400 + 60))
        for method in (r.get, r.post):
            status, _, out = method(req)
            assert status == 200 and status_of(out).name == "TRY_LATER"
        assert r.metric("vigil_stale_answers_total") == 2
        assert r.stop() == 0


def test_healthz_follows_the_signer(tmp_path, monkeypatch):
    """/healthz: 200 while signing works; after three failed signatures in a
    row for a CA (the token gone) 503, naming the CA, with one log line. The
    responder then tries the signer itself every 2 s, so /healthz turns 200
    again with no client request (a load balancer that obeys /healthz sends
    none) once the operator reloads onto a delegated key file. (A token that
    comes back is not enough: libp11 keeps its dead object handles until a
    restart, which the error line of a reload onto it says.)"""
    token, ca, leaves, conf = hsm_env(tmp_path, monkeypatch)
    issuer = load_cert(ca.cert)
    # A delegated responder certificate with a key file, issued while the token works.
    okey, ocsr, ocert = tmp_path / "ocsp.key", tmp_path / "ocsp.csr", tmp_path / "ocsp.pem"
    pki.genkey(okey, "ec")
    okey.chmod(0o600)
    run("openssl", "req", "-new", "-config", ca.cnf, "-key", okey, "-subj",
        "/CN=hsm-ec OCSP", "-out", ocsr)
    ca._ca("-extensions", "ocsp_ext", "-in", ocsr, "-out", ocert, "-notext", "-days", "30")

    def fresh():
        return status_of(r.post(make_request(leaves[0], issuer, nonce=os.urandom(16)))[2]).name

    def break_signer():
        token.fail()
        n = r.n_lines()
        for _ in range(2):
            assert fresh() == "TRY_LATER"
        assert r.request("GET", "/healthz")[0] == 200  # two failures: not yet
        assert fresh() == "TRY_LATER"
        status, headers, body = r.request("GET", "/healthz")
        assert status == 503 and b"hsm-ec" in body and headers["cache-control"] == "no-store"
        r.wait_log(r"event=signer_unhealthy ca=hsm-ec failures=3", start=n)
        assert fresh() == "TRY_LATER"
        assert count_log(r, r"event=signer_unhealthy", n) == 1
        assert r.request("GET", "/healthz")[0] == 503

    def wait_healthy(n):
        """/healthz turns 200 within a few probe periods, no OCSP request asked."""
        signs = r.metric("vigil_signatures_total")
        deadline = time.monotonic() + 10
        while r.request("GET", "/healthz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert r.request("GET", "/healthz")[:1] == (200,)
        r.wait_log(r"event=signer_recovered ca=hsm-ec failures=\d+ by=probe", start=n)
        assert r.metric("vigil_signatures_total") == signs  # no answer was signed

    with Responder(conf) as r:
        assert fresh() == "SUCCESSFUL"
        assert r.request("GET", "/healthz")[:1] == (200,)
        break_signer()
        # The operator switches to the delegated key file and reloads.
        text = conf.read_text().replace(f"ocsp_key = {ca.key}",
                                        f"ocsp_cert = {ocert}\nocsp_key = {okey}")
        conf.write_text(text)
        n = r.n_lines()
        r.signal(signal.SIGHUP)
        r.wait_log(r"event=reload(ed|_failed)", start=n)
        assert count_log(r, r"event=reloaded", n) == 1, "\n".join(r.lines[n:])
        wait_healthy(n)
        status, _, der = r.post(make_request(leaves[1], issuer, nonce=os.urandom(16)))
        check_response(der, issuer)
        assert r.stop() == 0


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--probe":
    probe_main(int(sys.argv[2]), sys.argv[3])
