# SPDX-License-Identifier: Apache-2.0
"""Helpers for the vigil-store integration and crash tests.

Everything here is independent of the C code: expected states are computed
from OpenSSL's index.txt format and RFC 5280 names, not from vigil-store.
"""
import datetime
import os
import re
import subprocess
import time
from pathlib import Path

from conftest import Runner, binary, rfc3339, run
import pki

# openssl ca's revocation reason names (apps/ca.c crl_reasons[]) -> RFC 5280
# names as vigil-store prints them.
INDEX_REASONS = {
    "unspecified": "unspecified",
    "keycompromise": "keyCompromise",
    "cacompromise": "cACompromise",
    "affiliationchanged": "affiliationChanged",
    "superseded": "superseded",
    "cessationofoperation": "cessationOfOperation",
    "certificatehold": "certificateHold",
    "holdinstruction": "certificateHold",
    "keytime": "keyCompromise",
    "cakeytime": "cACompromise",
}

RFC5280_REASONS = ["unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
                   "superseded", "cessationOfOperation", "certificateHold",
                   "privilegeWithdrawn", "aACompromise"]


def norm_serial(s):
    """A hexadecimal serial as vigil-store prints it: uppercase, no leading
    zero octets, even length ('00' for zero)."""
    v = int(str(s).replace(":", ""), 16)
    h = "%X" % v
    return h if len(h) % 2 == 0 else "0" + h


def index_time(t):
    """OpenSSL index time (YYMMDDHHMMSSZ) or GeneralizedTime -> RFC 3339 UTC."""
    if len(t) == 13:
        d = datetime.datetime.strptime(t, "%y%m%d%H%M%SZ")
    else:
        d = datetime.datetime.strptime(t, "%Y%m%d%H%M%SZ")
    return rfc3339(d)


def expected_from_revfield(status, rev):
    """The status line tail vigil-store should print for one index row,
    derived from the row alone: 'good' or 'revoked REASON TIME [invalidity=T]'."""
    if status in ("V", "E"):
        # E is `openssl ca -updatedb`'s "expired": the status stays good;
        # expiry is not revocation.
        return "good"
    assert status == "R", status
    parts = rev.split(",")
    t = index_time(parts[0])
    if len(parts) == 1:
        # No reason code; vigil-store prints that as "unspecified".
        return f"revoked unspecified {t}"
    r = parts[1].lower()
    if r == "removefromcrl":
        # vigil-store reads removeFromCRL as the hold lifted (store/cli/index.c).
        return "good"
    line = f"revoked {INDEX_REASONS[r]} {t}"
    if r in ("keytime", "cakeytime"):
        line += f" invalidity={index_time(parts[2])}"
    return line


def expected_from_index(path):
    """serial -> expected status tail, for every row of an index.txt."""
    out = {}
    for ln in Path(path).read_text().splitlines():
        if not ln:
            continue
        f = ln.split("\t")
        out[norm_serial(f[3])] = expected_from_revfield(f[0], f[2])
    return out


def parse_summary(stdout):
    """The key=value counts of a write command's summary line."""
    line = [ln for ln in stdout.splitlines() if "commits=" in ln]
    assert len(line) == 1, f"no single summary line in {stdout!r}"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line[0].split(":", 1)[1])}


def summary_of(stdout, **expect):
    """Assert the summary's counts; counts not named must be 0 (commits aside)."""
    s = parse_summary(stdout)
    for k in ("added", "revoked", "released", "updated", "unchanged", "kept_revoked",
              "skipped_unknown_issuance", "not_in_store"):
        assert s.get(k, 0) == expect.get(k, 0), f"{k}: {s} != {expect} in {stdout!r}"
    if "commits" in expect:
        assert s["commits"] == expect["commits"], (s, expect)
    return s


class Store:
    """vigil-store on one config, with parsed outputs."""

    def __init__(self, config):
        self.config = Path(config)
        self.r = Runner(config)

    def run(self, *args, check=True, timeout=120):
        return self.r.store("-q", *args, check=check, timeout=timeout)

    def ok(self, *args):
        r = self.run(*args)
        assert r.stderr == "", f"{args}: unexpected stderr {r.stderr!r}"
        return r.stdout

    def status(self, ca, serial):
        out = self.ok("status", ca, serial).splitlines()
        assert len(out) == 1, out
        return out[0]

    def list(self, ca, revoked=False):
        """`list` lines as `status` prints them: the notBefore= and notAfter=
        that list adds are left out (test_bulk_revoke.py checks them)."""
        args = ["list", ca] + (["--revoked"] if revoked else [])
        return [" ".join(w for w in ln.split(" ")
                         if not w.startswith(("notBefore=", "notAfter=")))
                for ln in self.ok(*args).splitlines()]

    def list_map(self, ca, revoked=False):
        m = {}
        for ln in self.list(ca, revoked):
            s, rest = ln.split(" ", 1)
            assert s not in m, f"serial {s} listed twice"
            m[s] = rest
        return m

    def stats(self):
        """{'store': {...}, CA: {...}} from `stats`."""
        res, cur = {"store": {}}, None
        for ln in self.ok("stats").splitlines():
            if ln.startswith("Store:"):
                cur = res["store"]
            elif ln.startswith("CA: "):
                cur = res.setdefault(ln[4:], {})
            elif ln.startswith("  ") and ":" in ln:
                k, v = ln.strip().split(":", 1)
                cur[k] = v.strip()
        return res

    def counter(self):
        return int(self.stats()["store"]["Change counter"])

    def audit(self, ca=None):
        out = self.ok("audit", *(["--ca", ca] if ca else []))
        recs = []
        for ln in out.splitlines():
            m = re.match(r'counter=(\d+) time=(\S+) user=(\S+) ca=(\S+) action=(\S+) '
                         r'count=(\d+) command=(.*)$', ln)
            assert m, f"bad audit line {ln!r}"
            recs.append({"counter": int(m[1]), "time": m[2], "user": m[3], "ca": m[4],
                         "action": m[5], "count": int(m[6]), "command": m[7]})
        return recs

    def snapshot(self, cas):
        """Everything observable: per CA list and stats, and the store counters."""
        return {"stats": self.stats(), "lists": {ca: self.list(ca) for ca in cas},
                "audit": self.ok("audit")}

    def check_consistent(self, ca):
        """list --revoked is the revoked part of list, serials ascend as
        integers, and stats counts match the list."""
        full = self.list(ca)
        rev = self.list(ca, True)
        # Printed serials carry no leading zero octets, so integer order is
        # (length, text) order.
        serials = [ln.split(" ", 1)[0] for ln in full]
        assert all(s == norm_serial(s) for s in serials[:1000]), "serial not normalised"
        assert serials == sorted(serials, key=lambda s: (len(s), s)), \
            "list not in ascending serial order"
        assert len(set(serials)) == len(serials), "list repeats a serial"
        assert rev == [ln for ln in full if " revoked " in ln], \
            "list --revoked differs from the revoked lines of list"
        st = self.stats().get(ca, {})
        n_hold = sum(1 for ln in rev if " certificateHold " in ln)
        got = (int(st["Certificates"]), int(st["Good"]), int(st["Revoked"]), int(st["On hold"]))
        assert got == (len(full), len(full) - len(rev), len(rev), n_hold), \
            f"stats {got} vs list (total={len(full)} revoked={len(rev)} hold={n_hold})"
        return full


def expect_error(store, *args, config=None, exit_codes=(1, 2), contains=None):
    """Run a command that must fail: non-zero exit, exactly one line on stderr
    starting with 'vigil-store: '. Returns that line."""
    r = Runner(config or store.config).store(*args, check=False)
    assert r.returncode in exit_codes, \
        f"{args}: exit {r.returncode}, stdout={r.stdout!r} stderr={r.stderr!r}"
    lines = r.stderr.splitlines()
    assert len(lines) == 1, f"{args}: expected one line on stderr, got {r.stderr!r}"
    assert lines[0].startswith("vigil-store: "), lines[0]
    assert r.stdout == "", f"{args}: stdout on error: {r.stdout!r}"
    if contains:
        for c in ([contains] if isinstance(contains, str) else contains):
            assert c.lower() in lines[0].lower(), f"{args}: {c!r} not in {lines[0]!r}"
    return lines[0]


def to_der(pem, der):
    run(pki.OPENSSL, "x509", "-in", pem, "-outform", "DER", "-out", der)
    return Path(der)


# ---- synthetic data for the crash test ------------------------------------

def synth_index(rng, n, revoked_fraction=0.1, when="250101000000Z"):
    """n index.txt lines with random 16-byte serials; returns (text, expected)
    where expected maps normalised serial -> status tail."""
    forms = [("", None), (",keyCompromise", "keyCompromise"), (",superseded", "superseded"),
             (",certificateHold", "certificateHold"),
             (",holdInstruction,holdInstructionReject", "certificateHold"),
             (",keyTime,240601000000Z", "keyCompromise"),
             (",CAkeyTime,240602000000Z", "cACompromise"),
             (",cessationOfOperation", "cessationOfOperation")]
    lines, expected = [], {}
    while len(expected) < n:
        v = rng.getrandbits(128)
        s = norm_serial("%X" % v)
        if s in expected:
            continue
        if rng.random() < revoked_fraction:
            suffix, _ = forms[rng.randrange(len(forms))]
            rev = when + suffix
            lines.append(f"R\t301231235959Z\t{rev}\t{'%032X' % v}\tunknown\t/CN=s{len(lines)}")
            expected[s] = expected_from_revfield("R", rev)
        else:
            lines.append(f"V\t301231235959Z\t\t{'%032X' % v}\tunknown\t/CN=s{len(lines)}")
            expected[s] = "good"
    return "\n".join(lines) + "\n", expected


def kill_at(cmd, delay, after_line=None):
    """Start cmd and SIGKILL it delay seconds after it started, or, with
    after_line, delay seconds after it printed a stderr line containing
    after_line (a progress line: a batch was committed). A command that ends
    first is not killed. Returns (returncode, killed, stderr)."""
    import threading
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    lines, seen = [], threading.Event()

    def reader():
        for ln in p.stderr:
            lines.append(ln)
            if after_line and after_line in ln:
                seen.set()
        seen.set()  # EOF: the command ended

    th = threading.Thread(target=reader, daemon=True)
    t0 = time.monotonic()
    th.start()
    t_seen = 0.0
    if after_line:
        seen.wait(timeout=120)
        t_seen = time.monotonic()
    killed = False
    try:
        p.wait(timeout=max(0.0, delay - (time.monotonic() - t0)) if not after_line else delay)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        killed = True
    t_end = time.monotonic()
    th.join(10)
    # How long the command ran (from the trigger line, with after_line).
    ran = t_end - (t_seen if after_line else t0)
    return p.returncode, killed, "".join(lines), ran


def timeline(cmd, marker):
    """Run cmd to completion; returns (duration, seconds until the first
    stderr line containing marker or None, returncode, stderr)."""
    t0 = time.monotonic()
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    first, err = None, []
    for ln in p.stderr:
        err.append(ln)
        if first is None and marker in ln:
            first = time.monotonic() - t0
    out = p.stdout.read()
    p.wait()
    return time.monotonic() - t0, first, p.returncode, out, "".join(err)


def store_cmd(config, *args, quiet=True):
    return [str(binary("vigil-store")), "-c", str(config)] + (["-q"] if quiet else []) + \
        [str(a) for a in args]


def whoami():
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name
