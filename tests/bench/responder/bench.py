#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""vigil-responder against nginx, `openssl ocsp -index` and cfssl ocspserve (run on demand).

    tests/bench/responder/bench.py [--build DIR] [--certs N] [--duration S] [--conns C]
                                   [--keytype rsa|ec] [--rounds R] [--only-cached]
                                   [--mem-certs M] [--mem-only] [--work DIR]

Same pinning and same wrk load for every server: the server on CPU 0 (one
worker / one process / GOMAXPROCS=1), wrk on CPU 1 (-t1 -cC, keep-alive),
cycling through N different requests (one CertID each, SHA-1, no nonce) by
POST and by GET. Servers:

  * vigil-responder, workers = 1, answers cached (warmed up first)
  * nginx serving a static file of the size of one answer (the ceiling for
    sending a stored answer over HTTP/1.1); POST is served the same number of
    bytes from memory
  * openssl ocsp -index index.txt (signs every answer)
  * cfssl ocspserve with a responses file of pre-signed answers (taken from
    vigil, one per certificate)

Cached answers, vigil against nginx, are measured in R rounds (default 5):
in each round vigil and nginx take the same GET load, then the same POST load,
one right after the other (which one first alternates between rounds), both
servers up and pinned to CPU 0 all along. The machine may be shared with
other work, which lowers the wall rate of whichever run it hits (and, less,
its rate per CPU second): a round compares two runs seconds apart, and the
median over the rounds drops a round hit by a burst. "per CPU" is requests
divided by the CPU time (user + system) of the server process during the run.
Before each vigil run one pass over every request checks that the answers are
cached (repeated until a pass causes no cache miss); /metrics before and after
the run gives the run's own hit ratio (cache hits / successful OCSP answers).

Then: vigil with a fresh nonce in every request (every answer signed), R
runs, each right after `openssl speed` for the signer's key on the same core
(a pair close in time, as for the cached rounds), with the ceiling that the
HTTP exchange leaves: a fresh answer costs at least one signature
(1 / openssl speed) plus what a cached POST answer costs (1 / vigil's cached
POST rate per CPU second, the median of the rounds), so it cannot beat
cached / (speed + cached) x openssl speed. With --mem-certs M, the
responder's private memory (RssAnon) serving a store of M certificates after
a load of random queries. --only-cached skips openssl ocsp and cfssl.
Needs wrk, nginx-light, golang-cfssl (Debian). Prints Markdown tables.
"""
import argparse
import base64
import datetime
import http.client
import os
import re
import shutil
import signal
import socket
import statistics
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
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509 import ocsp  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

resp_bin = None  # set by main()
LOGDIR = Path(tempfile.gettempdir())  # main() uses the work directory
SERVER_CPU = "0"
CLIENT_CPU = "1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Server:
    """A server pinned to SERVER_CPU; ready when |ready_log| shows in its output
    (or, without it, when its port accepts a connection)."""

    def __init__(self, name, cmd, port, env=None, ready_log=None):
        self.name, self.port = name, port
        self.logpath = LOGDIR / f"bench-{name}.log"
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + [str(c) for c in cmd],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        if ready_log:
            deadline = time.monotonic() + 10
            while ready_log not in self.logpath.read_text():
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{name} did not start: {self.logpath.read_text()}")
                time.sleep(0.05)
        else:
            wait_port(port)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def make_leaves(ca, n, work):
    """n leaf certificates signed by |ca| (python3-cryptography, fast); returns
    [(serial, cert)] and writes index.txt (every 10th revoked) and PEMs."""
    ca_key = serialization.load_pem_private_key(Path(ca.key).read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(Path(ca.cert).read_bytes())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.utcnow()
    out = []
    lines = []
    pem_dir = work / "leaves"
    pem_dir.mkdir()
    alg = hashes.SHA256()
    for i in range(n):
        serial = 0x100000 + i * 7919
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"h{i}.example")]))
                .issuer_name(ca_cert.subject).public_key(leaf_key.public_key())
                .serial_number(serial).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=90)).sign(ca_key, alg))
        (pem_dir / f"{serial:X}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        hexs = "%X" % serial
        hexs = "0" + hexs if len(hexs) % 2 else hexs
        if i % 10 == 9:
            lines.append(f"R\t351231235959Z\t260101000000Z,keyCompromise\t{hexs}\tunknown\t/CN=h{i}.example\n")
        else:
            lines.append(f"V\t351231235959Z\t\t{hexs}\tunknown\t/CN=h{i}.example\n")
        out.append((serial, cert))
    (work / "index.txt").write_text("".join(lines))
    (work / "index.txt.attr").write_text("unique_subject = no\n")
    return out, ca_cert


def lua_str(b):
    return '"' + "".join("\\%d" % x for x in b) + '"'


# wrk probes the address with a connection it closes at once; `openssl ocsp`
# (3.0) then spins on that connection forever. Skip the probe.
NO_PROBE = "wrk.resolve = function(host, service) wrk.addrs = wrk.lookup(host, service) end\n"


def write_scripts(work, reqs, nonce_req, nonce_at):
    paths = ["/" + urllib.parse.quote(base64.b64encode(r).decode(), safe="") for r in reqs]
    common = """
local i = 0
function request()
  i = i + 1
  if i > #items then i = 1 end
  return items[i]
end
function done(summary, latency, requests)
  io.write(string.format("ERRORS status=%d connect=%d read=%d write=%d timeout=%d\\n",
    summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
"""
    get = "items = {}\nlocal paths = {" + ",".join('"%s"' % p for p in paths) + "}\n" \
        "function init(args)\n  for k, p in ipairs(paths) do items[k] = wrk.format('GET', p) end\nend\n"
    post = "items = {}\nlocal bodies = {" + ",".join(lua_str(r) for r in reqs) + "}\n" \
        "function init(args)\n  for k, b in ipairs(bodies) do items[k] = wrk.format('POST', '/', " \
        "{['Content-Type'] = 'application/ocsp-request'}, b) end\nend\n"
    (work / "get.lua").write_text(NO_PROBE + get + common)
    (work / "post.lua").write_text(NO_PROBE + post + common)
    pre, post_ = nonce_req[:nonce_at], nonce_req[nonce_at + 16:]
    nonce = ("local pre = %s\nlocal post = %s\n" % (lua_str(pre), lua_str(post_)) + """
local hdrs = {['Content-Type'] = 'application/ocsp-request'}
function request()
  local t = {}
  for k = 1, 16 do t[k] = string.char(math.random(0, 255)) end
  return wrk.format('POST', '/', hdrs, pre .. table.concat(t) .. post)
end
function done(summary, latency, requests)
  io.write(string.format("ERRORS status=%d connect=%d read=%d write=%d timeout=%d\\n",
    summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
""")
    (work / "nonce.lua").write_text(NO_PROBE + nonce)
    # One static file per path for nginx (same size as the answers).
    return paths


def cpu_seconds(pid, system_only=False):
    """CPU time (user + system, or system only) of |pid| and its descendants,
    in seconds."""
    total = 0
    pending = [pid]
    while pending:
        p = pending.pop()
        try:
            stat = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (0 if system_only else int(stat[11])) + int(stat[12])
            for task in Path(f"/proc/{p}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def wrk(url, script, duration, conns, pid=None):
    cmd = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency",
           "--timeout", "10s", "-s", str(script), url]
    cpu0 = cpu_seconds(pid) if pid else 0
    sys0 = cpu_seconds(pid, True) if pid else 0
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    cpu = cpu_seconds(pid) - cpu0 if pid else 0
    sys_ = cpu_seconds(pid, True) - sys0 if pid else 0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    nreq = int(re.search(r"(\d+) requests in", out).group(1))

    def lat(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    errs = re.search(r"ERRORS status=(\d+) connect=(\d+) read=(\d+) write=(\d+) timeout=(\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = int(non2xx.group(1)) if non2xx else 0
    return {"rps": rps, "p50": lat(50), "p99": lat(99), "non2xx": bad, "cpu": cpu, "n": nreq,
            "per_cpu": nreq / cpu if cpu else 0, "sys_us": sys_ / nreq * 1e6 if nreq else 0,
            "errors": sum(int(x) for x in errs.groups()[1:]) if errs else 0, "raw": out}


def openssl_speed(keytype):
    """Signatures per CPU second (openssl speed divides by user CPU time)."""
    alg = "rsa2048" if keytype == "rsa" else "ecdsap256"
    out = subprocess.run(["taskset", "-c", SERVER_CPU, "openssl", "speed", "-seconds", "3", alg],
                         capture_output=True, text=True, timeout=120).stdout
    if keytype == "rsa":
        m = re.search(r"rsa\s+2048 bits\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)", out)
    else:
        m = re.search(r"256 bits ecdsa \(nistp256\)\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)", out)
    return float(m.group(1))


def rss_anon(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def scrape(port):
    """vigil's /metrics as {name or name{labels}: value}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {k: float(v) for k, v in re.findall(r"^(vigil_\w+(?:\{[^}]*\})?) ([\d.e+]+)$", text, re.M)}


HITS, MISSES = "vigil_cache_hits_total", "vigil_cache_misses_total"
ANSWERS = 'vigil_ocsp_responses_total{result="successful"}'


def one_pass(port, method, paths, reqs):
    """Every request once over one connection; returns (answers, cache misses caused)."""
    before = scrape(port)
    hc = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    answers = []
    for p, r in zip(paths, reqs):
        if method == "GET":
            hc.request("GET", p)
        else:
            hc.request("POST", "/", r, {"Content-Type": "application/ocsp-request"})
        resp = hc.getresponse()
        body = resp.read()
        assert resp.status == 200 and ocsp.load_der_ocsp_response(body).response_status == \
            ocsp.OCSPResponseStatus.SUCCESSFUL
        answers.append(body)
    hc.close()
    return answers, scrape(port)[MISSES] - before[MISSES]


def ensure_warm(port, method, paths, reqs):
    """Passes until one causes no cache miss (every answer cached, none past
    its refresh point); returns the misses of the passes before it."""
    warmed = 0
    for _ in range(5):
        _, misses = one_pass(port, method, paths, reqs)
        if misses == 0:
            return warmed
        warmed += misses
    raise RuntimeError(f"vigil: answers do not stay cached ({misses:.0f} misses in the last pass)")


def start_nginx(work, size):
    www = work / "www"
    www.mkdir(exist_ok=True)
    (www / "answer").write_bytes(os.urandom(size))
    port = free_port()
    (work / "nginx.conf").write_text(f"""user root;
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx.err;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  server {{
    listen 127.0.0.1:{port};
    root {www};
    open_file_cache max=16 inactive=600s;
    open_file_cache_valid 600s;
    default_type application/ocsp-response;
    # GET: the file. POST (which the static module refuses): the same number
    # of bytes from memory.
    location / {{
      if ($request_method = POST) {{ return 200 "{'x' * size}"; }}
      try_files /answer =404;
    }}
  }}
}}
""")
    return Server("nginx", ["nginx", "-c", work / "nginx.conf"], port)


def median(xs):
    return statistics.median(xs) if xs else 0


def summarise(runs):
    """The median of each figure over the runs of one server and method."""
    out = {k: median([r[k] for r in runs]) for k in ("rps", "p50", "p99", "cpu", "per_cpu")}
    out["non2xx"] = sum(r["non2xx"] for r in runs)
    out["errors"] = sum(r["errors"] for r in runs)
    out["runs"] = len(runs)
    return out


def run_cached_rounds(a, work, v, port, paths, reqs):
    """vigil (|v|, on |port|) and nginx, cached answers, a.rounds rounds;
    returns (answers, {method: {"vigil": [run], "nginx": [run]}}), each vigil
    run with its hit ratio."""
    n = None
    try:
        # Warm up: every answer signed once and cached; keep them for cfssl.
        answers, _ = one_pass(port, "GET", paths, reqs)
        sizes = sorted(len(b) for b in answers)
        n = start_nginx(work, sizes[len(sizes) // 2])
        vurl, nurl = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{n.port}"
        pid = v.proc.pid  # taskset execs the server: same pid
        runs = {"GET": {"vigil": [], "nginx": []}, "POST": {"vigil": [], "nginx": []}}
        for rnd in range(a.rounds):
            for method in ("GET", "POST"):
                script = work / f"{method.lower()}.lua"
                order = ("vigil", "nginx") if rnd % 2 == 0 else ("nginx", "vigil")
                for server in order:
                    if server == "nginx":
                        runs[method]["nginx"].append(wrk(nurl, script, a.duration, a.conns,
                                                         n.proc.pid))
                        continue
                    warmed = ensure_warm(port, method, paths, reqs)
                    before = scrape(port)
                    r = wrk(vurl, script, a.duration, a.conns, pid)
                    after = scrape(port)
                    answered = after[ANSWERS] - before[ANSWERS]
                    r["hits"] = after[HITS] - before[HITS]
                    r["misses"] = after[MISSES] - before[MISSES]
                    r["hit_ratio"] = r["hits"] / answered if answered else 0
                    r["warmed"] = warmed
                    runs[method]["vigil"].append(r)
                vr, nr = runs[method]["vigil"][-1], runs[method]["nginx"][-1]
                print(f"round {rnd + 1} {method}: vigil {vr['per_cpu']:.0f}/CPU s "
                      f"{vr['rps']:.0f}/s (hits {vr['hit_ratio']:.4f}), nginx "
                      f"{nr['per_cpu']:.0f}/CPU s {nr['rps']:.0f}/s", file=sys.stderr)
        return answers, runs
    finally:
        if n:
            n.stop()


def run_fresh(a, work, v, port):
    """vigil, a fresh nonce in every request, a.rounds runs, each after an
    `openssl speed` run (its rate in the run's "speed")."""
    runs = []
    for _ in range(a.rounds):
        speed = openssl_speed(a.keytype)
        r = wrk(f"http://127.0.0.1:{port}", work / "nonce.lua", a.duration, a.conns, v.proc.pid)
        r["speed"] = speed
        runs.append(r)
    return runs


def run_others(a, work, ca, answers, results):
    """openssl ocsp and cfssl ocspserve, one run each."""
    # openssl ocsp (3.0) may spin forever on a connection wrk leaves half-done
    # at the end of a run: a fresh process for each run.
    for method in ("GET", "POST"):
        port = free_port()
        o = Server("openssl", ["openssl", "ocsp", "-index", work / "index.txt", "-port", port,
                               "-rsigner", ca.ocsp_cert, "-rkey", ca.ocsp_key, "-CA", ca.cert,
                               "-nmin", "60", "-ignore_err"], port,
                   ready_log="waiting for OCSP client connections")
        try:
            results["openssl ocsp " + method] = wrk(f"http://127.0.0.1:{port}",
                                                    work / f"{method.lower()}.lua", a.duration,
                                                    a.conns, o.proc.pid)
        finally:
            o.stop()

    (work / "responses.txt").write_text("".join(base64.b64encode(b).decode() + "\n"
                                                for b in answers))
    port = free_port()
    env = dict(os.environ, GOMAXPROCS="1")
    c = Server("cfssl", ["cfssl", "ocspserve", "-address", "127.0.0.1", "-port", port,
                         "-responses", work / "responses.txt", "-loglevel", "1"], port, env=env,
               ready_log="Now listening")
    # Debian's cfssl (1.2.0+git2016) base64-decodes the GET path with its leading
    # '/', so it cannot answer GET requests at all: POST only.
    try:
        results["cfssl ocspserve POST"] = wrk(f"http://127.0.0.1:{port}", work / "post.lua",
                                              a.duration, a.conns, c.proc.pid)
    finally:
        c.stop()


def make_store(store_bin, work, ca, name, workers):
    """Write work/vigil.conf for one CA |name| served by |workers| workers,
    and import work/index.txt into a new store. Returns the config path."""
    conf = work / "vigil.conf"
    conf.write_text(f"""[store]
path = {work}/store
[responder]
listen = 127.0.0.1:0
workers = {workers}
max_connections = 100000
[crlgen]
out = {work}/crl
[ca {name}]
cert = {ca.cert}
ocsp_cert = {ca.ocsp_cert}
ocsp_key = {ca.ocsp_key}
""")
    subprocess.run([store_bin, "-c", conf, "init"], check=True, capture_output=True)
    subprocess.run([store_bin, "-c", conf, "import-index", name, work / "index.txt"], check=True,
                   capture_output=True)
    return conf


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--certs", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--keytype", default="rsa", choices=["rsa", "ec"])
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds of vigil and nginx (cached) and of fresh signatures")
    ap.add_argument("--only-cached", action="store_true",
                    help="skip openssl ocsp and cfssl")
    ap.add_argument("--mem-certs", type=int, default=0)
    ap.add_argument("--mem-only", action="store_true", help="only the memory measurement")
    ap.add_argument("--work")
    a = ap.parse_args()
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    global resp_bin, LOGDIR
    build = Path(a.build).resolve()
    store_bin = build / "store" / "vigil-store"
    resp_bin = build / "responder" / "vigil-responder"
    for tool in ("wrk", "nginx", "cfssl", "taskset"):
        if not shutil.which(tool) and not Path("/usr/sbin/" + tool).exists():
            sys.exit(f"bench: {tool} not found (apt-get install wrk nginx-light golang-cfssl)")
    work = Path(a.work or tempfile.mkdtemp(prefix="vigil-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    LOGDIR = work
    print(f"work dir {work}", file=sys.stderr)

    ca = pki.CA(work, "bench", a.keytype)
    leaves, ca_cert = make_leaves(ca, a.certs, work)
    conf = make_store(store_bin, work, ca, "bench", 1)
    reqs = [ocsp.OCSPRequestBuilder().add_certificate(c, ca_cert, hashes.SHA1()).build()
            .public_bytes(serialization.Encoding.DER) for _, c in leaves]
    marker = b"\xAB" * 16
    nreq = (ocsp.OCSPRequestBuilder().add_certificate(leaves[0][1], ca_cert, hashes.SHA1())
            .add_extension(x509.OCSPNonce(marker), critical=False).build()
            .public_bytes(serialization.Encoding.DER))
    paths = write_scripts(work, reqs, nreq, nreq.index(marker))

    results = {}
    rounds = fresh = None
    sizes = []
    speed = 0
    if not a.mem_only:
        port = free_port()
        v = Server("vigil", [resp_bin, "-c", conf, "--listen", f"127.0.0.1:{port}"], port)
        try:
            answers, rounds = run_cached_rounds(a, work, v, port, paths, reqs)
            fresh = run_fresh(a, work, v, port)
        finally:
            v.stop()
        sizes = sorted(len(b) for b in answers)
        for method in ("GET", "POST"):
            results["vigil " + method] = summarise(rounds[method]["vigil"])
        results["vigil POST, nonce (signed fresh)"] = summarise(fresh)
        for method in ("GET", "POST"):
            results[f"nginx {method} (static file)"] = summarise(rounds[method]["nginx"])
        if not a.only_cached:
            run_others(a, work, ca, answers, results)
        speed = median([r["speed"] for r in fresh])

    # ---- memory with a large store ----------------------------------------------------------
    mem = None
    if a.mem_certs:
        mwork = work / "mem"
        mwork.mkdir()
        subprocess.run([sys.executable, ROOT / "tests" / "bench" / "store" / "gen_index.py",
                        str(a.mem_certs), mwork / "index.txt"], check=True)
        mconf = mwork / "vigil.conf"
        mconf.write_text(conf.read_text().replace(f"{work}/store", f"{mwork}/store")
                         .replace("workers = 1", "workers = 2"))
        subprocess.run([store_bin, "-c", mconf, "init"], check=True, capture_output=True)
        t0 = time.monotonic()
        subprocess.run([store_bin, "-c", mconf, "import-index", "bench", mwork / "index.txt"],
                       check=True, capture_output=True)
        import_s = time.monotonic() - t0
        serials = [line.split("\t")[3] for line in open(mwork / "index.txt")][::max(1, a.mem_certs // 20000)]
        mreqs = [ocsp.OCSPRequestBuilder().add_certificate(fake(int(s, 16), ca_cert), ca_cert,
                                                           hashes.SHA1()).build()
                 .public_bytes(serialization.Encoding.DER) for s in serials]
        mpaths = write_scripts(mwork, mreqs, nreq, nreq.index(marker))
        port = free_port()
        m = Server("vigil-mem", [resp_bin, "-c", mconf, "--listen", f"127.0.0.1:{port}"], port)
        try:
            base = rss_anon(m.proc.pid)
            # taskset wraps the responder: its pid is the responder's after exec.
            r = wrk(f"http://127.0.0.1:{port}", mwork / "get.lua", max(a.duration, 20), a.conns)
            time.sleep(1.2)  # the cache gauge is refreshed every second
            peak = rss_anon(m.proc.pid)
            priv = 0
            for line in Path(f"/proc/{m.proc.pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Private_Dirty:"):
                    priv = int(line.split()[1]) / 1024.0
            val = scrape(port)
        finally:
            m.stop()
        mem = {"certs": a.mem_certs, "import_s": import_s, "distinct": len(mpaths),
               "rss_start": base, "rss_after": peak, "priv_dirty": priv, "rps": r["rps"],
               "entries": val.get("vigil_cache_entries", 0),
               "signs": val.get("vigil_signatures_total", 0)}

    # ---- report -----------------------------------------------------------------------------------
    if a.mem_only:
        print_mem(mem)
        return
    ref = {m: results[f"nginx {m} (static file)"] for m in ("GET", "POST")}
    print(f"\n{a.certs} certificates ({a.keytype} CA, delegated {a.keytype} signer), answers "
          f"{sizes[0]}-{sizes[-1]} bytes; wrk -t1 -c{a.conns} -d{a.duration}s on CPU "
          f"{CLIENT_CPU}, each server on CPU {SERVER_CPU}; vigil and nginx: median of "
          f"{a.rounds} rounds; {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC\n")
    print("| server | runs | req/s | p50 ms | p99 ms | x nginx | vigil x this | server CPU s "
          "| req per CPU s | per CPU: x nginx | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        method = "POST" if "POST" in name else "GET"
        vig = results["vigil " + method]["rps"]
        ngx = ref[method]
        ratio = f"{vig / r['rps']:.1f}" if r["rps"] else "-"
        pc = f"{r['per_cpu'] / ngx['per_cpu']:.2f}" if ngx["per_cpu"] else "-"
        print(f"| {name} | {r.get('runs', 1)} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
              f"{r['rps'] / ngx['rps']:.2f} | {ratio} | {r['cpu']:.1f} | {r['per_cpu']:.0f} | {pc} "
              f"| {r['non2xx'] + r['errors']} |")

    print("\nCached answers, round by round (the ratios are vigil / nginx within the round):\n")
    print("| round | method | vigil req per CPU s | nginx req per CPU s | per CPU: x nginx "
          "| vigil req/s | nginx req/s | wall: x nginx | vigil hit ratio | misses |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    summary = {}
    for method in ("GET", "POST"):
        pcr, wr = [], []
        for i, (v_, n_) in enumerate(zip(rounds[method]["vigil"], rounds[method]["nginx"])):
            pcr.append(v_["per_cpu"] / n_["per_cpu"] if n_["per_cpu"] else 0)
            wr.append(v_["rps"] / n_["rps"] if n_["rps"] else 0)
            print(f"| {i + 1} | {method} | {v_['per_cpu']:.0f} | {n_['per_cpu']:.0f} | {pcr[-1]:.2f} "
                  f"| {v_['rps']:.0f} | {n_['rps']:.0f} | {wr[-1]:.2f} | {v_['hit_ratio']:.4f} "
                  f"| {v_['misses']:.0f} |")
        summary[method] = (pcr, wr)
    print()
    for method, (pcr, wr) in summary.items():
        hits = sum(r["hits"] for r in rounds[method]["vigil"])
        reqs_ = sum(r["n"] for r in rounds[method]["vigil"])
        print(f"Cached {method}: vigil / nginx per CPU second **{median(pcr):.2f}x** (median; "
              f"rounds {min(pcr):.2f}-{max(pcr):.2f}), wall {median(wr):.2f}x (rounds "
              f"{min(wr):.2f}-{max(wr):.2f}); cache hits {hits:.0f} for {reqs_} requests wrk "
              f"counted ({hits / reqs_ if reqs_ else 0:.4f})")

    fr = results["vigil POST, nonce (signed fresh)"]
    alg = "rsa2048" if a.keytype == "rsa" else "ecdsap256"
    # A fresh answer costs a signature plus at least what a cached answer
    # to the same POST costs (the HTTP exchange, the request's framing).
    cached = results["vigil POST"]["per_cpu"]
    print("\nFresh signatures, run by run (`openssl speed` right before each run):\n")
    print(f"| run | openssl speed {alg}, signs per CPU s | vigil answers/s | vigil answers per CPU s "
          "| wall: x speed | per CPU: x speed | ceiling: x speed | per CPU: x ceiling |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    wall_r, pc_r, ceil_r = [], [], []
    for i, r in enumerate(fresh):
        sp = r["speed"]
        wall_r.append(r["rps"] / sp)
        pc_r.append(r["per_cpu"] / sp)
        ceil_r.append(cached / (sp + cached) if cached else 0)
        print(f"| {i + 1} | {sp:.0f} | {r['rps']:.0f} | {r['per_cpu']:.0f} | {wall_r[-1]:.2f} "
              f"| {pc_r[-1]:.2f} | {ceil_r[-1]:.2f} | {pc_r[-1] / ceil_r[-1] if ceil_r[-1] else 0:.2f} |")
    print(f"\nFresh signatures: {fr['rps']:.0f} answers/s, {fr['per_cpu']:.0f} per CPU second of the "
          f"responder (medians of {fr['runs']}), against `openssl speed` {alg} "
          f"{speed:.0f} signs per CPU second on the same core (median): **{median(pc_r):.2f}x** per "
          f"CPU second (median of the runs' ratios; {min(pc_r):.2f}-{max(pc_r):.2f}), "
          f"{median(wall_r):.2f}x wall")
    if cached and speed:
        ceiling = cached / (speed + cached)
        print(f"Ceiling: a fresh answer costs at least 1/{speed:.0f} s (the signature) + "
              f"1/{cached:.0f} s (a cached POST answer, HTTP included) of CPU, so at most "
              f"{speed * ceiling:.0f} answers per CPU second: **{ceiling:.2f}x** `openssl speed`; "
              f"measured {median(pc_r):.2f}x, {median(pc_r) / ceiling:.2f} of the ceiling")
    # The kernel's share alone: nginx's system time per cached POST (one
    # read, one write, epoll), which no HTTP/1.1 server avoids.
    ksys = median([r["sys_us"] for r in rounds["POST"]["nginx"]]) if rounds else 0
    if ksys and speed:
        floor = (1e6 / speed) / (1e6 / speed + ksys)
        print(f"Kernel floor: nginx spends {ksys:.1f} µs of system time per cached POST "
              f"(median of the rounds); a responder whose own user-space work cost nothing "
              f"but the signature ({1e6 / speed:.1f} µs) would still reach at most "
              f"**{floor:.2f}x** `openssl speed`")
    print_mem(mem)


def print_mem(mem):
    if mem:
        print(f"\nMemory: store of {mem['certs']} certificates (import {mem['import_s']:.0f} s), "
              f"2 workers, {mem['distinct']} distinct GET queries at {mem['rps']:.0f} req/s "
              f"({mem['signs']:.0f} signatures, {mem['entries']:.0f} answers cached): "
              f"RssAnon {mem['rss_start']:.1f} MiB at start, {mem['rss_after']:.1f} MiB after, "
              f"Private_Dirty {mem['priv_dirty']:.1f} MiB (the store's map is shared file cache)")


def fake(serial, issuer):
    key = fake.key = getattr(fake, "key", None) or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    now = datetime.datetime(2020, 1, 1)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject)
            .public_key(key.public_key()).serial_number(serial).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))


if __name__ == "__main__":
    main()
