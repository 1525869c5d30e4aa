# SPDX-License-Identifier: Apache-2.0
"""kill -9 vigil-store at random points during a large import and during bulk
revocations (issue 2), then check that the store opens, that every command
that reported success is fully present, that the store is consistent, and
that re-running the killed command completes to the full expected state.

Seeded: VIGIL_CRASH_SEED picks the data and the kill points, and
VIGIL_CRASH_TRIALS the number of kills per scenario (default 15; 8 on a
sanitizer build). The seed and the kill point are named in every failure.
"""
import base64
import datetime
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

import pki
from conftest import sanitized_build, write_config
from store_util import (Store, expected_from_revfield, kill_at, norm_serial, parse_summary,
                        store_cmd, synth_index, timeline)


SEED = int(os.environ.get("VIGIL_CRASH_SEED", "20261127"))
# Sanitizer builds run every command several times slower: fewer kills there
# (they look for memory errors on these paths; both kinds of kill point are
# still hit) keep the file well inside meson's timeout.
TRIALS = int(os.environ.get("VIGIL_CRASH_TRIALS", "8" if sanitized_build() else "15"))
N_IMPORT = 200_000  # lines of the large index.txt
N_WINDOW = 55_000   # certificates with a known notBefore, for the bulk revokes
CA = "crash1"
REVOKE_TIME = "2026-06-01T00:00:00Z"
WINDOW_AFTER, WINDOW_BEFORE = "2025-01-06T00:00:00Z", "2025-12-31T00:00:00Z"


def revoke_rule(tail, reason, when):
    """The status tail after revoking with (reason, when), per the issue:
    a serial not in the store is recorded revoked (not_issued); a revoked
    one stays as it is unless it is on hold, or the new reason is
    keyCompromise (which keeps the original time)."""
    want = f"revoked {reason} {when}"
    if tail is None:
        return want + " not_issued"
    if tail == "good":
        return want
    parts = tail.split()
    have = parts[1]
    if have == "certificateHold" and reason != "certificateHold":
        return want
    if reason == "keyCompromise" and have != "keyCompromise":
        return " ".join(["revoked", "keyCompromise"] + parts[2:])
    return tail


def copy_store(src_dir, dst_dir, ca_cert):
    shutil.copytree(src_dir / "store", dst_dir / "store")
    cfg = write_config(dst_dir / "vigil.conf", dst_dir / "store", [ca_cert])
    return Store(cfg)


def audit_count_of(st, marker):
    """Sum of the audit counts of the commits whose command line holds marker;
    also checks that audit counters are exactly 1..counter."""
    recs = st.audit()
    assert [r["counter"] for r in recs] == list(range(1, len(recs) + 1)), \
        "audit counters are not 1..N"
    assert st.counter() == len(recs), "change counter differs from the audit records"
    return sum(r["count"] for r in recs if marker in r["command"])


class Trials:
    """Bookkeeping, so a failure names the seed and the kill point."""

    def __init__(self, name):
        self.name = name
        self.rng = random.Random(f"{SEED}-{name}")
        self.killed = self.partial = self.flag_lost = self.flag_trials = 0

    def ctx(self, i, delay):
        return f"[{self.name} trial {i} delay={delay:.3f}s seed={SEED}]"


def after_crash(st, pre, post, prior_ok, marker, what):
    """The checks after a kill. Returns the listed state and how many
    serials the killed command had changed in it."""
    r = st.run("stats", check=False)
    assert r.returncode == 0, f"{what}: store does not open after kill -9: {r.stderr}"
    r = st.run("verify", check=False)
    assert r.returncode == 0, f"{what}: verify after kill -9: {r.stdout}{r.stderr}"
    full = st.check_consistent(CA)
    got = dict(ln.split(" ", 1) for ln in full)
    for s, v in prior_ok.items():
        assert got.get(s) == v, f"{what}: committed {s} {v} lost (now {got.get(s)})"
    lost = [s for s in pre if s not in got]
    assert not lost, f"{what}: {len(lost)} committed serials missing, e.g. {lost[:3]}"
    # `list` walks the ordered certs database; `status` reads the point
    # index when it is complete, else the same B-tree: both must agree.
    for s in random.Random(len(got)).sample(sorted(got), min(25, len(got))):
        assert st.status(CA, s) == f"{s} {got[s]}", f"{what}: status of {s} differs from list"
    changed = 0
    for s, v in got.items():
        if v != pre.get(s):
            assert v == post.get(s), \
                f"{what}: {s} is {v!r}, neither before {pre.get(s)!r} nor after {post.get(s)!r}"
            changed += 1
    n = audit_count_of(st, marker)
    assert n == changed, \
        f"{what}: the audit log counts {n} changes by the killed command, the store shows {changed}"
    return got, changed


def clock(template, tmp, ca, args, progress):
    """One uninterrupted run on a copy of template: returns the state it
    ends in, the summary, and its timeline (duration, time of the first
    progress line, i.e. of the first committed batch)."""
    d = tmp / "clock"
    d.mkdir()
    st = copy_store(template, d, ca)
    dur, first, rc, out, err = timeline(store_cmd(st.config, *args, quiet=False), progress)
    assert rc == 0 and "Sanitizer" not in err and "runtime error" not in err, err
    assert first is not None, f"no progress line {progress!r} in {err!r}"
    state = st.list_map(CA)
    shutil.rmtree(d)
    return state, parse_summary(out), (dur, first, progress)


def run_trials(tr, template, tmp, ca, pre, post, args, prior, marker, tl):
    """Kill `vigil-store args` TRIALS times, each on a fresh copy of the
    template store on which `prior` (a committed command) ran: even trials
    at a random time, odd ones at a random time after the first batch was
    committed (its progress line), so that kills land between commits."""
    dur, first, progress = tl
    tail = dur - first
    for i in range(TRIALS):
        d = tmp / f"{tr.name}-{i}"
        d.mkdir()
        st = copy_store(template, d, ca)
        prior_ok = {}
        if prior:
            pargs, pserial, ptail = prior(tr.rng, pre)
            st.ok(*pargs)
            prior_ok[pserial] = ptail
        base = dict(pre, **prior_ok)
        # The prior command's serials are untouched by the killed one (a base
        # serial is not in the big index; keyCompromise outranks any revoke).
        final = dict(post, **prior_ok)
        targeted = i % 2 == 1
        if targeted:
            delay = tr.rng.uniform(0, tail * 1.1)
            what = tr.ctx(i, delay) + " (after the first commit)"
            rc, killed, err, ran = kill_at(store_cmd(st.config, *args, quiet=False), delay,
                                           after_line=progress)
        else:
            delay = tr.rng.uniform(0, dur * 1.15)
            what = tr.ctx(i, delay)
            rc, killed, err, ran = kill_at(store_cmd(st.config, *args), delay)
        if killed:
            tr.killed += 1
        else:
            # It ended before the kill: the clock run was slower than this
            # machine is now; aim the next kills within what it took.
            if targeted:
                tail = min(tail, ran)
            else:
                dur = min(dur, ran)
            assert rc == 0 and "Sanitizer" not in err and "runtime error" not in err, \
                f"{what}: {args} exited {rc}: {err}"
        got, changed = after_crash(st, base, final, prior_ok, marker, what)
        if not killed:
            assert got == final, f"{what}: completed but the state is not the expected one"
        elif 0 < changed:
            tr.partial += 1
        # Re-running the killed command completes it.
        r = st.run(*args)
        assert r.returncode == 0 and r.stderr == "", f"{what}: re-run failed: {r.stderr}"
        s = parse_summary(r.stdout)
        redo = sum(1 for k, v in final.items() if got.get(k) != v)
        assert s["added"] + s["revoked"] == redo, \
            f"{what}: re-run applied {s}, expected {redo} remaining changes"
        full = st.check_consistent(CA)
        lost_before = tr.flag_lost
        again = dict(ln.split(" ", 1) for ln in full)
        for k in set(again) | set(final):
            if again.get(k) != final.get(k) and f"{again.get(k)} not_issued" == final.get(k):
                # Known store bug, reported once at the end (see below).
                tr.flag_lost += 1
                again[k] = final[k]
        assert again == final, f"{what}: re-run state differs"
        if lost_before != tr.flag_lost:
            tr.flag_trials += 1
        shutil.rmtree(d)
    print(f"{tr.name}: {TRIALS} trials, {tr.killed} killed, {tr.partial} with part committed")
    assert tr.killed > 0, f"{tr.name}: no trial killed the command (seed {SEED})"
    assert tr.flag_lost == 0, (
        f"{tr.name}: in {tr.flag_trials} of {TRIALS} trials, re-running the killed revoke "
        f"dropped the not_issued flag ({tr.flag_lost} serials in all) of serials that an "
        "earlier, committed batch had recorded: revoking a serial that is "
        "recorded as not issued clears the flag (rules.c rules_merge() takes a revoke as 'seen as "
        "issued'); see test_store.py::test_revoke_twice_keeps_not_issued")


# ---- data ------------------------------------------------------------------

def window_certs(rng, n, certdir):
    """n PEM files SERIAL.pem for --certs, with random 16-byte serials and
    notBefore spread over 2025, made by patching one template certificate
    (--certs reads serial and notBefore only; signing 60k certificates would
    take minutes). Returns the index text and serial -> notBefore."""
    key = ec.generate_private_key(ec.SECP256R1())
    mark = bytes([0x7E]) + bytes(range(1, 16))
    name = x509.Name.from_rfc4514_string("CN=crash window template")
    der = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(key.public_key()).serial_number(int.from_bytes(mark, "big"))
           .not_valid_before(datetime.datetime(2025, 1, 1))
           .not_valid_after(datetime.datetime(2030, 1, 1))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    so, to = der.index(mark), der.index(b"250101000000Z")
    lines, nb = [], {}
    start = datetime.datetime(2025, 1, 1)
    while len(nb) < n:
        sb = bytes([rng.randrange(0x10, 0x80)]) + rng.randbytes(15)
        hx = sb.hex().upper()
        if hx in nb:
            continue
        t = start + datetime.timedelta(seconds=rng.randrange(365 * 86400))
        b = der[:so] + sb + der[so + 16:to] + t.strftime("%y%m%d%H%M%SZ").encode() + der[to + 13:]
        b64 = base64.b64encode(b).decode()
        (certdir / f"{hx}.pem").write_text(
            "-----BEGIN CERTIFICATE-----\n" +
            "\n".join(b64[j:j + 64] for j in range(0, len(b64), 64)) +
            "\n-----END CERTIFICATE-----\n")
        nb[hx] = t
        if rng.random() < 0.05:
            lines.append(f"R\t301231235959Z\t250301000000Z,certificateHold\t{hx}\tunknown\t/CN=w")
        else:
            lines.append(f"V\t301231235959Z\t\t{hx}\tunknown\t/CN=w")
    return "\n".join(lines) + "\n", nb


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    rng = random.Random(SEED)
    ca = pki.CA(root / "pki", CA, "ec")
    e = type("Env", (), {})()
    e.root, e.ca = root, ca
    # The committed part: a small index imported before the kill.
    text, both = synth_index(rng, N_IMPORT + 500)
    lines = text.splitlines()
    e.base_index = root / "base.txt"
    e.base_index.write_text("\n".join(lines[:500]) + "\n")
    e.big_index = root / "big-index.txt"
    e.big_index.write_text("\n".join(lines[500:]) + "\n")
    serials = list(both)
    e.base = {s: both[s] for s in serials[:500]}
    e.big = {s: both[s] for s in serials[500:]}
    assert len(lines) == N_IMPORT + 500

    # Template A: initialised, base imported (for the import trials).
    (root / "A").mkdir()
    a = Store(write_config(root / "A" / "vigil.conf", root / "A" / "store", [ca]))
    a.ok("init")
    a.ok("import-index", CA, e.base_index)
    e.tmpl_a = root / "A"

    # The state after the whole import (checked once in the import test).
    e.after_import = dict(e.base, **e.big)

    # Template C: A plus N_WINDOW certificates whose notBefore is known
    # (the bulk revocation trials run on it: both need more than one
    # transaction's worth of changes, and a smaller store keeps them quick).
    shm = Path("/dev/shm")
    certroot = Path(tempfile.mkdtemp(prefix="vigil-crash-", dir=shm)) \
        if shm.is_dir() and os.access(shm, os.W_OK) else root / "certs"
    certdir = certroot / "newcerts"
    certdir.mkdir(parents=True)
    try:
        wtext, e.nb = window_certs(rng, N_WINDOW, certdir)
        (root / "window-index.txt").write_text(wtext)
        shutil.copytree(root / "A" / "store", root / "C" / "store")
        c = Store(write_config(root / "C" / "vigil.conf", root / "C" / "store", [ca]))
        out = c.ok("import-index", CA, root / "window-index.txt", "--certs", certdir)
    finally:
        shutil.rmtree(certroot)
    assert f"issuance times: read={N_WINDOW} unreadable_or_missing=0" in out
    e.tmpl_c = root / "C"
    e.after_window_import = dict(e.base)
    for ln in wtext.splitlines():
        f = ln.split("\t")
        e.after_window_import[norm_serial(f[3])] = expected_from_revfield(f[0], f[2])
    assert c.list_map(CA) == e.after_window_import
    yield e


def one_revoke(reason="keyCompromise"):
    """A committed single revoke before the kill: a serial that is good in
    the template gets revoked; returns (args, serial, expected tail)."""
    def prior(rng, pre):
        good = [s for s, v in sorted(pre.items())[:2000] if v == "good"]
        s = rng.choice(good)
        return (["revoke", CA, s, "--reason", reason, "--time", "2026-05-01T00:00:00Z"], s,
                f"revoked {reason} 2026-05-01T00:00:00Z")
    return prior


def test_kill_during_import(env, tmp_path):
    tr = Trials("import")
    args = ["import-index", CA, env.big_index]
    state, summary, tl = clock(env.tmpl_a, tmp_path, env.ca, args, "importing")
    assert summary["added"] + summary["revoked"] == N_IMPORT and summary["commits"] >= 4
    assert state == env.after_import
    # The prior committed command revokes a base serial, which the import
    # (whose lines are all new serials) must leave alone.
    run_trials(tr, env.tmpl_a, tmp_path, env.ca, env.base, env.after_import, args,
               one_revoke("superseded"), str(env.big_index), tl)


def test_kill_during_revoke_serials_file(env, tmp_path):
    tr = Trials("serials")
    pre = env.after_window_import
    # Nearly every certificate of the store, and 45,500 serials it never saw
    # (an investigation's list): more than 100,000 lines, three commits.
    picks = tr.rng.sample(sorted(pre), len(pre) - 500)
    unknown = set()
    while len(unknown) < 45_500:
        s = norm_serial("%X" % tr.rng.getrandbits(120))
        if s not in pre:
            unknown.add(s)
    lst = picks + sorted(unknown)
    tr.rng.shuffle(lst)
    f = tmp_path / "investigation.txt"
    f.write_text("# serials from the investigation\n" + "\n".join(lst) + "\n")
    post = dict(pre)
    for s in lst:
        post[s] = revoke_rule(pre.get(s), "superseded", REVOKE_TIME)
    args = ["revoke", CA, "--serials", f, "--reason", "superseded", "--time", REVOKE_TIME]
    state, summary, tl = clock(env.tmpl_c, tmp_path, env.ca, args, "revoking")
    assert summary["not_in_store"] == 45_500 and summary["commits"] >= 3, summary
    assert state == post
    run_trials(tr, env.tmpl_c, tmp_path, env.ca, pre, post, args, one_revoke(), str(f), tl)


def test_kill_during_revoke_window(env, tmp_path):
    tr = Trials("window")
    pre = env.after_window_import
    lo = datetime.datetime(2025, 1, 6)
    hi = datetime.datetime(2025, 12, 31)
    post = dict(pre)
    hits = 0
    for hx, t in env.nb.items():
        if lo <= t < hi:
            s = norm_serial(hx)
            post[s] = revoke_rule(pre[s], "cessationOfOperation", REVOKE_TIME)
            hits += 1
    assert hits > 50_000  # more than one transaction's worth
    args = ["revoke", CA, "--issued-after", WINDOW_AFTER, "--issued-before", WINDOW_BEFORE,
            "--reason", "cessationOfOperation", "--time", REVOKE_TIME]
    state, summary, tl = clock(env.tmpl_c, tmp_path, env.ca, args, "revoke window")
    n_good_unknown = sum(1 for v in env.base.values() if v == "good")
    assert summary.get("skipped_unknown_issuance") == n_good_unknown, summary
    assert summary["commits"] >= 2, summary
    assert state == post
    run_trials(tr, env.tmpl_c, tmp_path, env.ca, pre, post, args, one_revoke(),
               "--issued-after", tl)
