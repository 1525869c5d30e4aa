# SPDX-License-Identifier: Apache-2.0
"""Helpers for the vigil-crlgen integration tests.

CRLs are read with python3-cryptography, the openssl CLI and GnuTLS certtool,
never with Vigil's own code; what the store holds is read with
`vigil-store status`.
"""
import datetime
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from conftest import Runner, binary, rfc3339, run, write_config

# cryptography's ReasonFlags values -> RFC 5280 names as vigil-store prints them.
REASON_NAMES = {
    "unspecified": "unspecified",
    "keyCompromise": "keyCompromise",
    "cACompromise": "cACompromise",
    "affiliationChanged": "affiliationChanged",
    "superseded": "superseded",
    "cessationOfOperation": "cessationOfOperation",
    "certificateHold": "certificateHold",
    "privilegeWithdrawn": "privilegeWithdrawn",
    "aACompromise": "aACompromise",
    "removeFromCRL": "removeFromCRL",
}


def _keys(lines):
    """Configuration lines "key = value" as {key: value}."""
    return dict(ln.split(" = ", 1) for ln in lines)


class Env:
    """A store, a config and one or more CAs, with crlgen runs on them."""

    def __init__(self, tmp, cas, extra="", ca_extra=None):
        self.tmp = Path(tmp)
        self.cas = {ca.name: ca for ca in cas}
        self.store_dir = self.tmp / "store"
        # |extra|: [crlgen] lines; |ca_extra|: CA name -> its more lines ("key = value").
        self.config = write_config(
            self.tmp / "vigil.conf", self.store_dir,
            [(ca, _keys((ca_extra or {}).get(ca.name, []))) for ca in cas],
            crlgen=_keys(extra.splitlines()))
        self.out = self.tmp / "crl"
        self.runner = Runner(self.config)
        self.runner.store("init")

    def import_index(self, ca):
        self.runner.store("import-index", ca.name, ca.index)

    def crlgen(self, *args, check=True, timeout=120):
        return self.runner.crlgen(*args, check=check, timeout=timeout)

    def crl_path(self, name, delta=False, pem=False):
        return self.out / (f"{name}{'-delta' if delta else ''}.crl{'.pem' if pem else ''}")

    def crl(self, name, delta=False):
        return x509.load_der_x509_crl(self.crl_path(name, delta).read_bytes())

    def status(self, name, serial):
        """vigil-store status: (state, reason, time, invalidity) for a serial."""
        line = self.runner.store("status", name, serial).stdout.strip()
        f = line.split()
        assert f[0].upper() == serial.upper().lstrip("0") or int(f[0], 16) == int(serial, 16)
        if f[1] != "revoked":
            return (f[1], None, None, None)
        inv = None
        for extra in f[4:]:
            if extra.startswith("invalidity="):
                inv = extra.split("=", 1)[1]
        return ("revoked", f[2], f[3], inv)


def signature_valid(crl, public_key):
    """cryptography 38's is_signature_valid does not take EdDSA keys; for
    those, verify the signature over tbs_certlist_bytes directly."""
    from cryptography.hazmat.primitives.asymmetric import ed25519
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        try:
            public_key.verify(crl.signature, crl.tbs_certlist_bytes)
            return True
        except Exception:
            return False
    return crl.is_signature_valid(public_key)


def crl_number(crl):
    return crl.extensions.get_extension_for_oid(ExtensionOID.CRL_NUMBER).value.crl_number


def utc(dt):
    """A datetime from cryptography as an aware UTC datetime."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt


def entries(crl):
    """{serial hex upper: (reason name or None, revocation time, invalidity or None)}"""
    out = {}
    for r in crl:
        reason = inv = None
        for ext in r.extensions:
            if ext.oid == x509.oid.CRLEntryExtensionOID.CRL_REASON:
                reason = REASON_NAMES[ext.value.reason.value]
            elif ext.oid == x509.oid.CRLEntryExtensionOID.INVALIDITY_DATE:
                inv = rfc3339(ext.value.invalidity_date)
        out["%X" % r.serial_number] = (reason, rfc3339(r.revocation_date), inv)
    return out


def openssl_crl_verify(crl_path, ca_cert, inform="DER"):
    """openssl crl -verify: returns (ok, output)."""
    r = run("openssl", "crl", "-inform", inform, "-in", crl_path, "-CAfile", ca_cert, "-noout",
            check=False, timeout=60)
    return r.returncode == 0 and "verify OK" in (r.stdout + r.stderr), r.stdout + r.stderr


def openssl_verify_leaf(ca_cert, crl_pem, leaf, extra=()):
    """openssl verify -crl_check: returns (rc, output)."""
    r = run("openssl", "verify", "-crl_check", *extra, "-CAfile", ca_cert, "-CRLfile", crl_pem,
            leaf, check=False, timeout=60)
    return r.returncode, r.stdout + r.stderr


def certtool_info(crl_path):
    return run("certtool", "--crl-info", "--inder", "--infile", crl_path, check=False, timeout=60)


def certtool_verify(crl_pem, ca_cert):
    return run("certtool", "--verify-crl", "--load-ca-certificate", ca_cert, "--infile", crl_pem,
               check=False, timeout=60)


def write_index(path, rows):
    """Write an OpenSSL ca index.txt from (status, expiry, revfield, serial hex)."""
    with open(path, "w") as f:
        for status, expiry, rev, serial in rows:
            f.write(f"{status}\t{expiry}\t{rev}\t{serial}\tunknown\t/CN=s{serial}\n")


def synthetic_revoked(n, start=0x100000, expiry="351231235959Z", when="260101000000Z"):
    """n revoked rows with varied reasons, never expiring before 2035."""
    reasons = ["", ",keyCompromise", ",superseded", ",cessationOfOperation",
               ",affiliationChanged", ",unspecified"]
    return [("R", expiry, when + reasons[i % len(reasons)], "%X" % (start + i))
            for i in range(n)]


class Daemon:
    """vigil-crlgen --watch in the background; always stopped by stop()."""

    def __init__(self, env, *args):
        self.log = open(env.tmp / "crlgen-watch.log", "w+")
        self.p = subprocess.Popen([str(binary("vigil-crlgen")), "-c", str(env.config), "--watch",
                                   *args], stdout=subprocess.DEVNULL, stderr=self.log)

    def text(self):
        if self.log.closed:
            return self.final
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def wait_log(self, pattern, timeout=20, count=1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.text())) >= count:
                return True
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        return False

    def signal(self, sig):
        self.p.send_signal(sig)

    def stop(self, timeout=20):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=10)
        if not self.log.closed:
            self.final = self.text()
            self.log.close()
        return self.p.returncode


def wait_for(pred, timeout, step=0.01):
    """Poll pred() until true or timeout; returns elapsed seconds or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(step)
    return None


def file_mode(path):
    return os.stat(path).st_mode & 0o777
