#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Replication through PostgreSQL (issue 15), measured (run on demand).

    tests/bench/replicate/bench.py [--build DIR] [--certs N] [--stream N]
                                   [--bulk N] [--work DIR]

Starts a PostgreSQL 15 primary and a streaming standby (pg_basebackup -R)
on 127.0.0.1, a primary site (a store of N certificates imported from an
index.txt) and a replica site following the standby, and prints:

  * first push: `replicate publish --once` of the whole store into an empty
    database (COPY), and the database's bytes per certificate
  * bootstrap: `replicate follow --once` of the whole store into an empty
    replica (goal under 30 s for 1,000,000)
  * commit-to-replica-answer latency under a steady stream of revocations
    (one every 100 ms, both daemons running, the replica's responder asked
    over HTTP until it answers revoked): p50, p99, max (goal p99 under 1 s)
  * a bulk revocation of --bulk certificates end to end, from the start of
    `vigil-store revoke --serials` on the primary to the replica's responder
    answering the last one revoked (goal under 5 s for 100,000)
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

BASE = 0x40000000000000000000000000000000  # 16-octet serials, as CAs issue them


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--certs", type=int, default=1000000)
    ap.add_argument("--stream", type=int, default=100)
    ap.add_argument("--bulk", type=int, default=100000)
    ap.add_argument("--work")
    a = ap.parse_args()
    os.environ["VIGIL_BUILD"] = str(Path(a.build).resolve())
    import pg_util
    import pki
    from conftest import Runner
    from repl_util import Daemon, counter, make_sites, serial_file, wait_until
    from responder_util import Responder, fake_cert, load_cert, make_request
    from cryptography.x509 import ocsp

    work = Path(a.work or tempfile.mkdtemp(prefix="vigil-bench-repl-"))
    work.mkdir(parents=True, exist_ok=True)
    primary = pg_util.Pg(work, "pg-primary").init()
    standby = pg_util.Pg(work, "pg-standby")
    daemons = []
    try:
        primary.start()
        standby.standby_of(primary).start()
        ca = pki.CA(work, "bench1")
        pconf, rconf = make_sites(work, ca, primary.conninfo(), standby.conninfo())
        idx = work / "index.txt"
        with open(idx, "w") as f:
            for i in range(a.certs):
                f.write("V\t301231235959Z\t\t%X\tunknown\t/CN=h%d\n" % (BASE + i, i))
        p = Runner(pconf)
        p.store("init")
        t0 = time.monotonic()
        p.store("-q", "import-index", "bench1", idx, timeout=3600)
        print(f"import-index of {a.certs} certificates: {time.monotonic() - t0:.1f} s")

        t0 = time.monotonic()
        p.store("-q", "replicate", "publish", "--once", timeout=3600)
        dt = time.monotonic() - t0
        size = int(primary.sql("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                               "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
                               "n.nspname = 'vigil' AND c.relkind = 'r'"))
        certs_only = int(primary.sql("SELECT pg_total_relation_size('vigil.certs')"))
        print(f"first push (COPY) of {a.certs}: {dt:.1f} s; database {size / a.certs:.0f} "
              f"bytes per certificate ({certs_only / a.certs:.0f} in vigil.certs with its "
              f"indexes)")
        standby.wait_replayed(primary, 600)

        t0 = time.monotonic()
        Runner(rconf).store("-q", "replicate", "follow", "--once", timeout=3600)
        dt = time.monotonic() - t0
        print(f"bootstrap of an empty replica from the standby, {a.certs} certificates: "
              f"{dt:.1f} s (goal < 30 s)")

        daemons.append(Daemon(pconf, "publish", work / "publish.log").start())
        daemons.append(Daemon(rconf, "follow", work / "follow.log").start())
        issuer = load_cert(ca.cert)
        with Responder(rconf).start() as rr:

            def revoked(serial):
                req = make_request(fake_cert(serial, issuer), issuer)
                st, _, body = rr.post(req)
                r = ocsp.load_der_ocsp_response(body)
                return r.certificate_status == ocsp.OCSPCertStatus.REVOKED

            lat, cmd = [], []
            for i in range(a.stream):
                serial = BASE + a.certs - 1 - i
                t0 = time.monotonic()
                p.store("revoke", "bench1", "%X" % serial, "--reason", "superseded")
                t1 = time.monotonic()  # committed: vigil-store returned
                ok = wait_until(lambda: revoked(serial), 10, step=0.005)
                assert ok, f"{serial:X} not revoked on the replica"
                lat.append(time.monotonic() - t1)
                cmd.append(t1 - t0)
                time.sleep(0.1)
            lat.sort()
            cmd.sort()

            def pct(v, q):
                return v[min(len(v) - 1, int(len(v) * q))] * 1000
            print(f"commit to replica answer, {a.stream} revocations one every 100 ms: "
                  f"p50 {statistics.median(lat) * 1000:.0f} ms, p99 {pct(lat, 0.99):.0f} ms, "
                  f"max {lat[-1] * 1000:.0f} ms (goal p99 < 1 s); the revoke command itself "
                  f"p50 {statistics.median(cmd) * 1000:.0f} ms, max {cmd[-1] * 1000:.0f} ms")

            sf = serial_file(work / "bulk.txt", BASE, a.bulk)
            last = BASE + a.bulk - 1
            t0 = time.monotonic()
            p.store("-q", "revoke", "bench1", "--serials", sf, "--reason", "keyCompromise",
                    timeout=600)
            t_cmd = time.monotonic() - t0
            assert wait_until(lambda: revoked(last), 120, step=0.01)
            dt = time.monotonic() - t0
            want = int(Runner(pconf).store("stats").stdout.split("Change counter: ")[1]
                       .split()[0])
            assert wait_until(lambda: counter(rconf) == want, 60)
            print(f"bulk revocation of {a.bulk} end to end: {dt:.2f} s (the revoke command "
                  f"{t_cmd:.2f} s; goal < 5 s)")
    finally:
        for d in daemons:
            d.stop()
        standby.destroy()
        primary.destroy()
    print(f"work directory: {work}")


if __name__ == "__main__":
    main()
