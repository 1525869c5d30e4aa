#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The store's life (issue 16), on demand:

  tests/bench/store/life.py [--certs N] [--expired M] [--days D] [--per-day K] [--build DIR]

1. A store of N certificates (default 10,000,000), M of them (default
   1,000,000) expired two years ago, 10% revoked:
   - vigil-responder's p99 under wrk (GET, keep-alive), in runs alternating
     idle with backups back to back (the hot backup must not move it beyond
     the noise the idle runs show), and the backup's time; `backup
     --compact` time and size;
   - `vigil-store verify` time;
   - `vigil-store prune` of the M expired certificates: time, then the free
     pages it left and the size of a compact backup.
2. A simulated year (D days, default 365) of 47-day certificates issued at K a
   day (default 10,000), 1% of them revoked, with the time given to the
   commands (VIGIL_NOW), once with retention (a daily `prune`,
   log_retention = expired_retention = 30d so that the plateau shows within
   the year; with the default 365d it comes at day 47 + 365) and once without:
   store bytes, certificates and change-log entries every 30 days.

Figures are printed as key=value lines and a table; nothing is asserted.
"""
import argparse
import base64
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

DAY = 86400

WRK_LUA = r"""
local reqs = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do reqs[#reqs + 1] = wrk.format("GET", line) end
  i = math.random(#reqs)
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests=%d errors=%d p50_us=%d p99_us=%d p999_us=%d\n",
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"""


def sh(*args, env=None, check=True):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise SystemExit(f"{args[:3]} exited {r.returncode}: {r.stderr}")
    return r


def timed(*args, env=None):
    t = time.monotonic()
    r = sh(*args, env=env)
    return time.monotonic() - t, r


def make_ca(work, name):
    key, pem = work / f"{name}.key", work / f"{name}.pem"
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
       "-nodes", "-keyout", key, "-out", pem, "-subj", f"/CN={name}", "-days", "3650")
    return key, pem


def write_conf(path, store, cas, extra=""):
    lines = [f"[store]\npath = {store}\n{extra}", "[responder]\nlisten = 127.0.0.1:0\nworkers = 1",
             f"[crlgen]\nout = {path.parent / 'crl'}"]
    for name, key, pem in cas:
        lines.append(f"[ca {name}]\ncert = {pem}\nocsp_key = {key}\ncrl_key = {key}")
    path.write_text("\n\n".join(lines) + "\n")
    return path


def stats(store_bin, conf):
    out = sh(store_bin, "-c", conf, "stats").stdout
    get = lambda k: int(re.search(rf"{k}: (\d+)", out).group(1))  # noqa: E731
    return {"file": get("File bytes"), "used": get("Used bytes"), "free": get("Free pages"),
            "log": get("Change log entries"), "certs": get("Certificates")}


def gen_index(path, n, expired, rnd):
    """n lines with random 16-byte serials, the first |expired| of them
    expired in June 2024, 10% revoked; returns a sample of good serials."""
    sample = []
    with open(path, "w") as f:
        buf = []
        for i in range(n):
            s = "%032X" % (rnd.getrandbits(127) | (1 << 120))
            exp = "240601000000Z" if i < expired else "301231235959Z"
            if rnd.random() < 0.1:
                buf.append(f"R\t{exp}\t240101000000Z,superseded\t{s}\tunknown\t/CN=h{i}\n")
            else:
                buf.append(f"V\t{exp}\t\t{s}\tunknown\t/CN=h{i}\n")
                if i >= expired and len(sample) < 4000 and rnd.random() < 0.01:
                    sample.append(int(s, 16))
            if len(buf) == 65536:
                f.writelines(buf)
                buf = []
        f.writelines(buf)
    return sample


def wrk_run(port, reqfile, lua, seconds):
    r = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds}s", "--timeout", "5s", "-s", lua,
                        f"http://127.0.0.1:{port}/", "--", reqfile],
                       capture_output=True, text=True)
    m = re.search(r"WRK requests=(\d+) errors=(\d+) p50_us=(\d+) p99_us=(\d+) p999_us=(\d+)",
                  r.stdout)
    if not m:
        raise SystemExit(f"wrk: {r.stdout}{r.stderr}")
    return {k: int(v) for k, v in zip(("requests", "errors", "p50_us", "p99_us", "p999_us"),
                                      m.groups())}


def big_store(args, work, store_bin, resp_bin):
    from cryptography import x509
    from responder_util import fake_cert, make_request
    rnd = random.Random(16)
    key, pem = make_ca(work, "big")
    conf = write_conf(work / "big.conf", work / "store", [("big", key, pem)])
    print(f"== index.txt: {args.certs} certificates, {args.expired} expired in 2024", flush=True)
    sample = gen_index(work / "index.txt", args.certs, args.expired, rnd)
    sh(store_bin, "-c", conf, "init")
    t, _ = timed(store_bin, "-q", "-c", conf, "import-index", "big", work / "index.txt")
    (work / "index.txt").unlink()
    st = stats(store_bin, conf)
    print(f"import_seconds={t:.1f} store_file_bytes={st['file']} certs={st['certs']}", flush=True)

    ca_cert = x509.load_pem_x509_certificate(pem.read_bytes())
    reqfile, lua = work / "reqs.txt", work / "wrk.lua"
    with open(reqfile, "w") as f:
        for s in sample[:2000]:
            der = make_request(fake_cert(s, ca_cert), ca_cert)
            f.write("/" + base64.b64encode(der).decode().replace("/", "%2F")
                    .replace("+", "%2B").replace("=", "%3D") + "\n")
    lua.write_text(WRK_LUA)
    resp = subprocess.Popen([str(resp_bin), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    port = None
    for line in resp.stderr:
        m = re.search(r"event=listening addr=127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    try:
        wrk_run(port, reqfile, lua, 3)  # warm the cache and the page cache
        # Alternating runs, so that the machine's own noise shows: idle, then
        # with backups back to back for the whole run, three times.
        idle, busy, bk_times = [], [], []
        for cycle in range(args.cycles):
            base = wrk_run(port, reqfile, lua, 10)
            idle.append(base["p99_us"])
            print(f"wrk_idle cycle={cycle} p50_us={base['p50_us']} p99_us={base['p99_us']} "
                  f"p999_us={base['p999_us']} requests={base['requests']} "
                  f"errors={base['errors']}", flush=True)
            stop = time.monotonic() + 10
            w = subprocess.Popen(["wrk", "-t1", "-c16", "-d10s", "--timeout", "5s", "-s",
                                  str(lua), f"http://127.0.0.1:{port}/", "--", str(reqfile)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            n = 0
            while time.monotonic() < stop:
                dest = work / f"bk{cycle}-{n}"
                t, _ = timed(store_bin, "-q", "-c", conf, "backup", dest)
                bk_times.append(t)
                shutil.rmtree(dest)
                n += 1
            out = w.communicate()[0]
            m = re.search(r"WRK requests=(\d+) errors=(\d+) p50_us=(\d+) p99_us=(\d+) "
                          r"p999_us=(\d+)", out)
            during = dict(zip(("requests", "errors", "p50_us", "p99_us", "p999_us"),
                              map(int, m.groups())))
            busy.append(during["p99_us"])
            print(f"wrk_during_backups cycle={cycle} p50_us={during['p50_us']} "
                  f"p99_us={during['p99_us']} p999_us={during['p999_us']} "
                  f"requests={during['requests']} errors={during['errors']} backups={n}",
                  flush=True)
        print(f"backup_seconds={min(bk_times):.2f} to {max(bk_times):.2f} ({len(bk_times)} "
              f"backups under load) p99_idle_us={sorted(idle)} p99_during_backups_us="
              f"{sorted(busy)}", flush=True)
    finally:
        resp.terminate()
        resp.wait(30)
    t, _ = timed(store_bin, "-q", "-c", conf, "backup", work / "full")
    tc, _ = timed(store_bin, "-q", "-c", conf, "backup", work / "compact", "--compact")
    print(f"backup_idle_seconds={t:.2f} backup_bytes={(work / 'full' / 'data.mdb').stat().st_size} "
          f"backup_compact_seconds={tc:.2f} "
          f"compact_bytes={(work / 'compact' / 'data.mdb').stat().st_size}", flush=True)
    shutil.rmtree(work / "full")
    shutil.rmtree(work / "compact")
    t, r = timed(store_bin, "-c", conf, "verify")
    print(f"verify_seconds={t:.2f} {r.stdout.strip()}", flush=True)
    (work / "crl").mkdir(exist_ok=True)
    (work / "crl" / "big.state").write_text(f"full_this_update={int(time.time())}\n")
    t, r = timed(store_bin, "-q", "-c", conf, "prune")
    st = stats(store_bin, conf)
    print(f"prune_seconds={t:.2f} {r.stdout.strip()}", flush=True)
    tc, _ = timed(store_bin, "-q", "-c", conf, "backup", work / "compact", "--compact")
    print(f"after_prune file_bytes={st['file']} free_pages={st['free']} certs={st['certs']} "
          f"compact_backup_bytes={(work / 'compact' / 'data.mdb').stat().st_size} "
          f"compact_seconds={tc:.2f}", flush=True)
    shutil.rmtree(work / "compact")
    t, r = timed(store_bin, "-c", conf, "verify")
    print(f"verify_after_prune_seconds={t:.2f} {r.stdout.strip()}", flush=True)
    shutil.rmtree(work / "store")


def year(args, work, store_bin):
    rnd = random.Random(47)
    key, pem = make_ca(work, "year")
    start = int(time.time()) // DAY * DAY
    runs = {}
    for mode in ("retention", "none"):
        d = work / f"year-{mode}"
        d.mkdir()
        extra = "log_retention = 30d\nexpired_retention = 30d\n"
        conf = write_conf(d / "vigil.conf", d / "store", [("year", key, pem)], extra)
        (d / "crl").mkdir()
        sh(store_bin, "-c", conf, "init")
        rows = []
        pending = []  # serials to revoke some days after issuance
        t0 = time.monotonic()
        for day in range(args.days):
            now = start + day * DAY
            env = dict(os.environ, VIGIL_NOW=str(now))
            exp = time.strftime("%y%m%d%H%M%SZ", time.gmtime(now + 47 * DAY))
            idx = d / "day.txt"
            serials = ["%032X" % (rnd.getrandbits(127) | (1 << 120)) for _ in range(args.per_day)]
            idx.write_text("".join(f"V\t{exp}\t\t{s}\tunknown\t/CN=x\n" for s in serials))
            sh(store_bin, "-q", "-c", conf, "import-index", "year", idx, env=env)
            pending.append(rnd.sample(serials, args.per_day // 100))
            if len(pending) > 3:  # revoked three days after issuance
                (d / "rev.txt").write_text("\n".join(pending.pop(0)) + "\n")
                sh(store_bin, "-q", "-c", conf, "revoke", "year", "--serials", d / "rev.txt",
                   "--reason", "superseded", env=env)
            if mode == "retention":
                # crlgen's daily full CRL, as its state records it.
                (d / "crl" / "year.state").write_text(f"full_this_update={now}\n")
                sh(store_bin, "-q", "-c", conf, "prune", env=env)
            if day % 30 == 29 or day == args.days - 1:
                st = stats(store_bin, conf)
                rows.append((day + 1, st))
                print(f"year mode={mode} day={day + 1} certs={st['certs']} "
                      f"used_bytes={st['used']} file_bytes={st['file']} log_entries={st['log']} "
                      f"free_pages={st['free']} elapsed={time.monotonic() - t0:.0f}s",
                      flush=True)
        runs[mode] = rows
        shutil.rmtree(d / "store")
    print("\n| day | certs (retention) | used MB (retention) | log entries (retention) "
          "| certs (none) | used MB (none) | log entries (none) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for (day, a), (_, b) in zip(runs["retention"], runs["none"]):
        print(f"| {day} | {a['certs']} | {a['used'] / 1e6:.1f} | {a['log']} | {b['certs']} | "
              f"{b['used'] / 1e6:.1f} | {b['log']} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--certs", type=int, default=10_000_000)
    ap.add_argument("--expired", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--per-day", type=int, default=10_000)
    ap.add_argument("--cycles", type=int, default=3, help="idle/backup wrk runs alternated")
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--skip-year", action="store_true")
    ap.add_argument("--build", default=os.environ.get("VIGIL_BUILD", str(ROOT / "build")))
    args = ap.parse_args()
    build = Path(args.build)
    store_bin = build / "store" / "vigil-store"
    resp_bin = build / "responder" / "vigil-responder"
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-life-"))
    try:
        if not args.skip_big:
            big_store(args, work, store_bin, resp_bin)
        if not args.skip_year:
            year(args, work, store_bin)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
