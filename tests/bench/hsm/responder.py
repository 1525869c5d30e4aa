#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""End to end: the real vigil-responder answering OCSP requests that each
carry a fresh nonce (so every answer is signed), the CA key in SoftHSM2
(pkcs11: URI) against the same kind of key in a PEM file, ECDSA P-256 and
RSA-2048.

    tests/bench/hsm/responder.py [--build build] [--duration 10]

The responder runs one worker with all its threads on CPU 0, wrk (-t1 -c16)
on CPU 1; "per CPU s" divides the answers by the responder's CPU time (user +
system, SoftHSM2 included: it runs in the process)."""
import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def cpu_seconds(pid):
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
        total += int(stat[11]) + int(stat[12])
    return total / os.sysconf("SC_CLK_TCK")


def lua_str(b):
    return '"' + "".join("\\%d" % x for x in b) + '"'


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--conns", type=int, default=16)
    a = ap.parse_args()
    os.environ["VIGIL_BUILD"] = str(Path(a.build).resolve())
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    import hsm_util
    import pki
    import responder_util as ru
    from conftest import Runner, write_config

    if hsm_util.missing():
        sys.exit("responder.py: " + hsm_util.missing())
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-hsm-"))
    token = hsm_util.Token(work)
    os.environ["SOFTHSM2_CONF"] = str(token.conf)
    rows = []
    for kt in ("ec", "rsa"):
        for kind in ("file", "pkcs11"):
            name = f"{kind}-{kt}"
            ca = (hsm_util.HsmCA(work, name, token, kt) if kind == "pkcs11"
                  else pki.CA(work, name, keytype=kt))
            # The CA key signs answers, in the token or in a file.
            conf = write_config(work / f"{name}.conf", work / f"{name}.mdb",
                                [(ca, {"delegated": False})], workers=1)
            Runner(conf).store("init")
            cacert = ru.load_cert(ca.cert)
            marker = b"N" * 16
            req = ru.make_request(ru.fake_cert(0x4242, cacert), cacert, nonce=marker)
            at = req.find(marker)
            script = work / f"{name}.lua"
            script.write_text(
                "wrk.resolve = function(host, service) wrk.addrs = wrk.lookup(host, service) end\n"
                f"local pre = {lua_str(req[:at])}\nlocal post = {lua_str(req[at + 16:])}\n"
                "local hdrs = {['Content-Type'] = 'application/ocsp-request'}\n"
                "function request()\n  local t = {}\n"
                "  for k = 1, 16 do t[k] = string.char(math.random(0, 255)) end\n"
                "  return wrk.format('POST', '/', hdrs, pre .. table.concat(t) .. post)\nend\n")
            with ru.Responder(conf) as r:
                subprocess.run(["taskset", "-a", "-pc", "0", str(r.proc.pid)], check=True,
                               capture_output=True)
                # Every answer is signed by the key under test, and valid.
                status, _, der = r.post(req.replace(marker, os.urandom(16)))
                assert status == 200
                ru.check_response(der, cacert)
                cpu0 = cpu_seconds(r.proc.pid)
                out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{a.conns}",
                                      f"-d{a.duration}s", "-s", str(script),
                                      f"http://127.0.0.1:{r.port}/"],
                                     capture_output=True, text=True, timeout=a.duration + 60).stdout
                cpu = cpu_seconds(r.proc.pid) - cpu0
                n = int(re.search(r"(\d+) requests in", out).group(1))
                rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
                status, _, der = r.post(req.replace(marker, os.urandom(16)))
                assert status == 200
                ru.check_response(der, cacert)
                assert r.stop() == 0
            rows.append((kt, kind, rps, cpu, n / cpu if cpu else 0))
            print(f"{kt:4} {kind:7} answers/s {rps:9.0f}  responder CPU s {cpu:5.1f}  "
                  f"answers per CPU s {n / cpu if cpu else 0:9.0f}", flush=True)
    print("\n| key | where | answers/s | per CPU s | per CPU s: x file |\n|---|---|---:|---:|---:|")
    for kt, kind, rps, cpu, per in rows:
        base = [p for k, w, _, _, p in rows if k == kt and w == "file"][0]
        print(f"| {'ECDSA P-256' if kt == 'ec' else 'RSA-2048'} | {kind} | {rps:.0f} | {per:.0f} "
              f"| {per / base:.2f} |")
    subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
