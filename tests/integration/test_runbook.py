# SPDX-License-Identifier: Apache-2.0
"""The runbook runs as written (issue 17): every ```sh block of
deploy/INCIDENT.md, in order, in one bash session (as an operator's
terminal), against a real deployment: two CAs made with `openssl ca`, a
store, vigil-responder and vigil-crlgen --watch kept running by a restarting
supervisor (what systemd's Restart= does). Only the first block, the
variables, is replaced by this deployment's values; a block that fails stops
the run and is named. Afterwards the outcome is checked independently of
the runbook's own output: the CRL and the OCSP answers, with OpenSSL and
python3-cryptography."""
import datetime
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509

import pki
from conftest import BUILD, Runner, write_config
from server_util import free_port
from store_util import norm_serial

SRC = Path(__file__).resolve().parents[2]
RUNBOOK = SRC / "deploy" / "INCIDENT.md"
BLOCK = re.compile(r"^[ \t]*```sh\n(.*?)^[ \t]*```", re.S | re.M)

SUPERVISE = """#!/bin/bash
# supervise STOPFILE PIDFILE LOG PROG ARGS...: run PROG until STOPFILE exists,
# starting it again whenever it exits (systemd's Restart=always, RestartSec=0.3).
stop=$1 pidf=$2 log=$3; shift 3
while [ ! -e "$stop" ]; do
  "$@" >>"$log" 2>&1 &
  echo $! >"$pidf"
  wait $!
  sleep 0.3
done
"""


def blocks():
    return [b for b in BLOCK.findall(RUNBOOK.read_text())]


def stamp(t):
    return t.strftime("%Y%m%d%H%M%SZ")


@pytest.fixture
def deployment(tmp_path):
    now = datetime.datetime.utcnow().replace(microsecond=0)
    since = now - datetime.timedelta(days=2)
    ca = pki.CA(tmp_path / "pki", "inc1", keytype="ec")
    parent = pki.CA(tmp_path / "pki", "root1", keytype="ec")
    old = [ca.issue(f"old{i}", startdate=stamp(now - datetime.timedelta(days=30)),
                    enddate=stamp(now + datetime.timedelta(days=300)))[0] for i in range(3)]
    new = [ca.issue(f"new{i}", startdate=stamp(now - datetime.timedelta(hours=3)),
                    enddate=stamp(now + datetime.timedelta(days=300)))[0] for i in range(3)]
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    conf = write_config(tmp_path / "vigil.conf", tmp_path / "store",
                        [(ca, {"crl_url": f"{origin}/crl/inc1.crl"}), parent],
                        workers=1, responder={"listen": f"127.0.0.1:{port}"})
    r = Runner(conf)
    r.store("init")
    r.store("import-index", ca.name, ca.index, "--certs", ca.dir / "newcerts")
    r.store("import-index", parent.name, parent.index)
    r.crlgen("--once")
    (tmp_path / "backups").mkdir()
    suspects = tmp_path / "suspects.txt"
    suspects.write_text(f"# from the investigation\n{old[1]}\n7A7A7A7A7A\n")
    sup = tmp_path / "supervise"
    sup.write_text(SUPERVISE)
    sup.chmod(0o755)
    stop = tmp_path / "stop"
    procs = []
    for name, prog, args in (("resp", "responder/vigil-responder", ["-c", conf]),
                             ("crlgen", "crlgen/vigil-crlgen", ["-c", conf, "--watch"])):
        procs.append(subprocess.Popen(
            [str(sup), str(stop), str(tmp_path / f"{name}.pid"), str(tmp_path / f"{name}.log"),
             str(BUILD / prog), *map(str, args)], start_new_session=True))
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if subprocess.run(["curl", "-sf", f"{origin}/healthz"],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the responder did not come up")
        yield {"tmp": tmp_path, "ca": ca, "parent": parent, "conf": conf, "origin": origin,
               "since": since, "old": old, "new": new, "suspects": suspects, "runner": r}
    finally:
        stop.touch()
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)


def test_every_block_runs_in_order(deployment):
    d = deployment
    tmp, ca = d["tmp"], d["ca"]
    all_blocks = blocks()
    assert len(all_blocks) >= 15, "the runbook lost its command blocks"
    variables = all_blocks[0]
    names = re.findall(r"^([A-Z_]+)=", variables, re.M)
    assert {"F", "CA", "ORIGIN", "PUBLIC"} <= set(names), names
    # $RELOAD and $RESTART are words, as `systemctl reload ...` is: small
    # scripts signal the supervised daemons (the supervisor starts a killed
    # one again, as systemd would).
    for name, sig in (("reload", "HUP"), ("restart", "TERM")):
        (tmp / f"{name}.sh").write_text(
            f"#!/bin/sh\nkill -{sig} $(cat {tmp}/resp.pid) $(cat {tmp}/crlgen.pid)\n")
        (tmp / f"{name}.sh").chmod(0o755)
    values = {
        "F": d["conf"], "CA": ca.name, "CACERT": ca.cert, "INDEX": ca.index,
        "CERTS": ca.dir / "newcerts", "OUT": tmp / "crl", "ORIGIN": d["origin"],
        # No edge here: the public URLs are the origin's (test_edge.py runs the edges).
        "PUBLIC": d["origin"], "CRL_PUBLIC": f"{d['origin']}/crl/inc1.crl",
        "SINCE": d["since"].strftime("%Y-%m-%dT%H:%M:%SZ"), "LIST": d["suspects"],
        "SERIAL": norm_serial(d["old"][0]), "PARENT": d["parent"].name,
        "CA_SERIAL": "0A1B2C", "BACKUPS": tmp / "backups", "AS_VIGIL": "",
        "RELOAD": tmp / "reload.sh", "RESTART": tmp / "restart.sh",
        "LOGS": f"cat {tmp}/resp.log {tmp}/crlgen.log",
    }
    assert set(names) <= set(values), f"variables the test does not set: {set(names) - set(values)}"
    script = ["set -euo pipefail"]
    script += [f"{k}='{v}'" for k, v in values.items()]
    for i, b in enumerate(all_blocks[1:], 1):
        script.append(f'echo "=== runbook block {i}" >&2')
        script.append(b)
    script.append('echo "=== runbook done" >&2')
    env = dict(os.environ, PATH=":".join([str(BUILD / "store"), str(BUILD / "responder"),
                                           str(BUILD / "crlgen"), os.environ["PATH"]]))
    r = subprocess.run(["bash", "-c", "\n".join(script)], capture_output=True, text=True,
                       timeout=300, env=env, cwd=tmp)
    ran = re.findall(r"=== runbook block (\d+)", r.stderr)
    last = int(ran[-1]) if ran else 0
    assert r.returncode == 0 and "=== runbook done" in r.stderr, (
        f"block {last} failed (exit {r.returncode}):\n{all_blocks[last]}\n"
        f"--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}")

    # What the incident did, checked without the runbook's own output: the
    # window's certificates, the list's, and SERIAL revoked with keyCompromise
    # on the CRL the responder serves (signature checked), the OCSP signer left
    # out of the bulk revocation, and a certificate issued before the window
    # and in no list still good.
    crl = x509.load_der_x509_crl(subprocess.run(
        ["curl", "-sf", f"{d['origin']}/crl/inc1.crl"], capture_output=True,
        check=True).stdout)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    assert crl.is_signature_valid(ca_cert.public_key())
    listed = {norm_serial("%X" % e.serial_number): e for e in crl}
    for s in d["new"] + [d["old"][0], d["old"][1]]:
        e = listed.get(norm_serial(s))
        assert e is not None, f"{s} not on the CRL"
        assert e.extensions.get_extension_for_class(x509.CRLReason).value.reason == \
            x509.ReasonFlags.key_compromise
    ocsp_serial = norm_serial("%X" % x509.load_pem_x509_certificate(
        ca.ocsp_cert.read_bytes()).serial_number)
    assert ocsp_serial not in listed, "the bulk revocation took the responder's own certificate"
    assert norm_serial(d["old"][2]) not in listed
    ans = subprocess.run(["openssl", "ocsp", "-issuer", str(ca.cert), "-serial",
                          "0x" + d["old"][2], "-CAfile", str(ca.cert), "-url", d["origin"]],
                         capture_output=True, text=True, timeout=30)
    assert "Response verify OK" in ans.stderr + ans.stdout and ": good" in ans.stdout, \
        ans.stdout + ans.stderr
