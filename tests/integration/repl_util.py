# SPDX-License-Identifier: Apache-2.0
"""Two Vigil sites joined through PostgreSQL (issue 15), for the replication
tests and benches: a primary site (its store, `replicate publish`) and a
replica site (its own store, `replicate follow`, its own responder), each on
its own configuration file; the daemons as processes the test stops."""
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from conftest import binary, write_config
from responder_util import openssl_ocsp
from store_util import Store


def add_replicate(conf, conninfo, **keys):
    """Append a [replicate] section to the configuration |conf|."""
    lines = ["", "[replicate]", f"postgres = {conninfo}"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    with open(conf, "a") as f:
        f.write("\n".join(lines) + "\n")


def set_conninfo(conf, conninfo):
    text = Path(conf).read_text()
    Path(conf).write_text(re.sub(r"^postgres = .*$", f"postgres = {conninfo}", text, flags=re.M))


class Daemon:
    """vigil-store -c CONF replicate WHAT, in the background; stderr to a file."""

    def __init__(self, conf, what, log):
        self.conf, self.what, self.log = conf, what, Path(log)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [str(binary("vigil-store")), "-q", "-c", str(self.conf), "replicate", self.what],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def stop(self):
        return self.kill(signal.SIGTERM)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


def wait_until(fn, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            return v
        time.sleep(step)


def dump(store, cas):
    """Every certificate's status line, per CA, and each CA's counts and
    frozen state, as vigil-store prints them: equal dumps, equal stores."""
    st = store.stats()
    out = {"counter": st["store"]["Change counter"]}
    keys = ("Certificates", "Good", "Revoked", "On hold", "Frozen")
    for ca in cas:
        out[ca] = (store.list(ca), {k: st.get(ca, {}).get(k) for k in keys})
    return out


def counter(conf):
    try:
        return Store(conf).counter()
    except AssertionError:
        return -1


def ocsp_statuses(ca_cert, serials, url):
    """{serial: 'good'|'revoked'|'unknown' [+ reason/time lines]} from one
    `openssl ocsp` request for |serials| to |url|."""
    args = ["-issuer", ca_cert, "-url", url, "-noverify", "-no_nonce"]
    for s in serials:
        args += ["-serial", "0x" + s]
    rc, out = openssl_ocsp(*args)
    assert rc == 0, out
    res, cur = {}, None
    for ln in out.splitlines():
        m = re.match(r"^0x([0-9A-Fa-f]+): (\w+)$", ln.strip())
        if m:
            cur = m.group(1).upper()
            res[cur] = [m.group(2)]
        elif cur and re.match(r"^\s*(Reason|Revocation Time):", ln):
            res[cur].append(ln.strip())
    return res


def make_sites(tmp, ca, primary_conninfo, replica_conninfo, ca_keys=None, **replicate_keys):
    """Configurations for a primary site and a replica site of |ca|."""
    cas = [(ca, ca_keys or {})]
    pconf = write_config(tmp / "primary.conf", tmp / "primary-store", cas)
    add_replicate(pconf, primary_conninfo)
    rconf = write_config(tmp / "replica.conf", tmp / "replica-store", cas)
    add_replicate(rconf, replica_conninfo, **replicate_keys)
    return pconf, rconf


def serial_file(path, start, n):
    with open(path, "w") as f:
        for i in range(n):
            f.write("%X\n" % (start + i))
    return path


def env_without_pg():
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}
