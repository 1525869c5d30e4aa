# SPDX-License-Identifier: Apache-2.0
"""vigil-crlgen against independent parsers: openssl crl/verify, GnuTLS
certtool and python3-cryptography; what the CRLs must hold is read from the
store with `vigil-store status`, and revocations are made with `openssl ca`
and `vigil-store revoke`."""
import datetime
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

import pki
from conftest import binary
from crlgen_util import (Daemon, Env, certtool_info, certtool_verify, crl_number, entries,
                         file_mode, openssl_crl_verify, openssl_verify_leaf, signature_valid,
                         synthetic_revoked, utc, wait_for, write_index)


def make_ca_with_leaves(tmp, name="ca1", keytype="rsa"):
    """A CA with five leaves: keyCompromise, certificateHold, superseded,
    keyCompromise with a compromise time (invalidity date), and one good."""
    ca = pki.CA(tmp, name, keytype)
    leaves = {}
    for cn in ("kc", "hold", "sup", "kctime", "good"):
        leaves[cn] = ca.issue(f"{cn}.example")
    ca.revoke(leaves["kc"][1], "keyCompromise")
    ca.revoke(leaves["hold"][1], extra=["-crl_hold", "1.2.840.10040.2.2"])
    ca.revoke(leaves["sup"][1], "superseded")
    ca.revoke(leaves["kctime"][1], extra=["-crl_compromise", "20260101120000Z"])
    return ca, leaves


def check_against_store(env, ca, crl, serials):
    """The CRL lists exactly the store's revoked serials, with their details."""
    got = entries(crl)
    want = {}
    for s in serials:
        state, reason, when, inv = env.status(ca.name, s)
        if state == "revoked":
            # RFC 5280 §5.3.1: unspecified is expressed by omitting the code.
            want["%X" % int(s, 16)] = (None if reason == "unspecified" else reason, when, inv)
    assert got == want


@pytest.mark.parametrize("keytype", ["rsa", "ec", "ed25519"])
def test_full_crl_independent_checks(tmp_path, keytype):
    ca, leaves = make_ca_with_leaves(tmp_path, keytype=keytype)
    env = Env(tmp_path, [ca])
    env.import_index(ca)
    r = env.crlgen("--once")
    # One log line for the CRL, key=value.
    lines = [l for l in r.stderr.splitlines() if l]
    assert len(lines) == 1 and "event=crl_published" in lines[0], r.stderr
    for key in ("ca=ca1", "kind=full", "number=", "entries=4", "bytes=", "ms="):
        assert key in lines[0]

    der, pem = env.crl_path("ca1"), env.crl_path("ca1", pem=True)
    assert file_mode(der) == 0o644 and file_mode(pem) == 0o644
    ok, out = openssl_crl_verify(der, ca.cert)
    assert ok, out
    ok, out = openssl_crl_verify(pem, ca.cert, inform="PEM")
    assert ok, out
    # PEM and DER are the same CRL.
    assert x509.load_pem_x509_crl(pem.read_bytes()).public_bytes(
        serialization.Encoding.DER) == der.read_bytes()

    crl = env.crl("ca1")
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    assert signature_valid(crl, ca_cert.public_key())
    assert crl.issuer == ca_cert.subject
    aki = crl.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value
    ski = ca_cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
    assert aki.key_identifier == ski.digest
    assert 10**15 < crl_number(crl) < 2**63
    this, nxt = utc(crl.last_update), utc(crl.next_update)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((this - now).total_seconds()) < 60
    assert nxt - this == datetime.timedelta(days=7)  # crl_validity default
    check_against_store(env, ca, crl, [s for s, _ in leaves.values()])
    got = entries(crl)
    kctime = "%X" % int(leaves["kctime"][0], 16)
    assert got[kctime][2] == "2026-01-01T12:00:00Z"  # invalidityDate from index.txt
    assert "%X" % int(leaves["good"][0], 16) not in got

    # openssl verify -crl_check: revoked leaves fail, the good one passes.
    for cn, (serial, path) in leaves.items():
        rc, out = openssl_verify_leaf(ca.cert, pem, path)
        if cn == "good":
            assert rc == 0, out
        else:
            assert rc != 0 and "certificate revoked" in out, out

    # GnuTLS reads and verifies it too.
    r = certtool_info(der)
    assert r.returncode == 0, r.stderr
    assert "Revoked certificates (4)" in r.stdout, r.stdout
    assert "%X" % crl_number(crl) in r.stdout.upper().replace(":", "") or \
        str(crl_number(crl)) in r.stdout
    r = certtool_verify(pem, ca.cert)
    assert r.returncode == 0 and "Verified" in r.stdout, r.stdout + r.stderr


def test_empty_crl_still_published(tmp_path):
    ca = pki.CA(tmp_path, "empty", "ec")
    ca.issue("one.example")
    env = Env(tmp_path, [ca], ca_extra={"empty": ["crl_validity = 2d", "digest = sha384"]})
    env.import_index(ca)
    env.crlgen("--once")
    crl = env.crl("empty")
    assert len(crl) == 0
    assert crl.signature_hash_algorithm.name == "sha384"
    assert utc(crl.next_update) - utc(crl.last_update) == datetime.timedelta(days=2)
    ok, out = openssl_crl_verify(env.crl_path("empty"), ca.cert)
    assert ok, out
    assert certtool_info(env.crl_path("empty")).returncode == 0


def test_numbers_increase_and_numbered_copies_kept(tmp_path):
    ca = pki.CA(tmp_path, "ca1", "ec")
    env = Env(tmp_path, [ca], extra="keep = 2")
    numbers = []
    for _ in range(4):
        env.crlgen("--once")
        numbers.append(crl_number(env.crl("ca1")))
    assert numbers == sorted(set(numbers)), numbers
    kept = sorted(p.name for p in env.out.glob("ca1-*.crl"))
    assert kept == [f"ca1-{n}.crl" for n in numbers[-2:]]
    assert (env.out / f"ca1-{numbers[-1]}.crl").read_bytes() == env.crl_path("ca1").read_bytes()

    # A number far in the future (a clock that went back since): the next
    # one is still above it, read from the out directory, not the store.
    state = env.out / "ca1.state"
    future = numbers[-1] + 10**12
    state.write_text(re.sub(r"last_number=\d+", f"last_number={future}", state.read_text()))
    env.crlgen("--once")
    assert crl_number(env.crl("ca1")) == future + 1
    # Without the state file, the numbered copies still keep it increasing.
    state.unlink()
    (env.out / f"ca1-{future + 5}.crl").write_bytes(b"")
    env.crlgen("--once")
    assert crl_number(env.crl("ca1")) == future + 6
    # No temporary file is left behind, and those of a killed crlgen (a
    # process that no longer exists) are removed by the next run.
    assert not list(env.out.glob(".*"))
    stale = env.out / ".ca1.crl.tmp-999999999-0"
    stale.write_bytes(b"partial")
    mine = env.out / f".ca1.crl.tmp-{os.getpid()}-0"  # a live process's
    mine.write_bytes(b"in progress")
    env.crlgen("--once")
    assert not stale.exists() and mine.exists()
    mine.unlink()


def other_host_crl(ca, number, base=None):
    """A CRL of |ca| numbered |number| as another publisher (another host,
    its own clock and state) would have put it in place: DER, signed with the
    CA's key by python3-cryptography."""
    from cryptography.hazmat.primitives import hashes
    key = serialization.load_pem_private_key(Path(ca.key).read_bytes(), None)
    cert = x509.load_pem_x509_certificate(Path(ca.cert).read_bytes())
    now = datetime.datetime.utcnow().replace(microsecond=0)
    b = (x509.CertificateRevocationListBuilder().issuer_name(cert.subject)
         .last_update(now).next_update(now + datetime.timedelta(days=1))
         .add_extension(x509.CRLNumber(number), critical=False))
    if base is not None:
        b = b.add_extension(x509.DeltaCRLIndicator(base), critical=True)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def now_us():
    return int(time.time() * 1_000_000)


def test_numbers_above_another_publishers_crl_in_place(tmp_path):
    """Issue 11 item 10: CRL numbers are the clock in microseconds; a second
    publisher whose clock is ahead (or this one's behind) wrote the CRL in
    place with a higher number. The next number is above it, above the delta
    in place and above the state, and a number that cannot be above the CRL
    it replaces is refused: non-zero exit, one line naming both numbers, the
    CRL in place kept."""
    ca = pki.CA(tmp_path, "ca1", "ec")
    env = Env(tmp_path, [ca], ca_extra={"ca1": ["delta_crl = on"]})
    env.crlgen("--once")
    first = crl_number(env.crl("ca1"))

    # The other host, 30 s ahead, published the full CRL into this directory
    # (its own state file elsewhere): ours is above it, and so is our delta.
    ahead = now_us() + 30_000_000
    env.crl_path("ca1").write_bytes(other_host_crl(ca, ahead))
    r = env.crlgen("--once")
    full = crl_number(env.crl("ca1"))
    assert full > ahead > first, r.stderr
    assert crl_number(env.crl("ca1", delta=True)) > full
    assert f"number={full} " in r.stderr

    # Its delta is in place: numbers share one sequence (RFC 5280 §5.2.4).
    ahead = now_us() + 60_000_000
    env.crl_path("ca1", delta=True).write_bytes(other_host_crl(ca, ahead, base=full))
    env.crlgen("--once", "--delta")
    delta = env.crl("ca1", delta=True)
    assert crl_number(delta) > ahead
    assert delta.extensions.get_extension_for_oid(
        ExtensionOID.DELTA_CRL_INDICATOR).value.crl_number == full
    env.crlgen("--once")
    assert crl_number(env.crl("ca1")) > ahead

    # A shared state file with a higher last number counts too.
    state = env.out / "ca1.state"
    ahead = now_us() + 90_000_000
    state.write_text(re.sub(r"last_number=\d+", f"last_number={ahead}", state.read_text()))
    env.crlgen("--once")
    assert crl_number(env.crl("ca1")) > ahead

    # A damaged CRL in place holds no number: logged, and replaced.
    env.crl_path("ca1").write_bytes(b"\x30\x03\x02\x01\x01")
    r = env.crlgen("--once")
    assert "event=published_crl_unreadable ca=ca1 file=ca1.crl" in r.stderr
    assert crl_number(env.crl("ca1")) > ahead

    # A number no 64-bit number exceeds (RFC 5280 allows up to 20 octets):
    # refused, and the CRL in place stays.
    for huge in (2**64, 2**159 - 1, 2**64 - 1):
        placed = other_host_crl(ca, huge)
        env.crl_path("ca1").write_bytes(placed)
        r = env.crlgen("--once", check=False)
        assert r.returncode == 1, r.stderr
        lines = [l for l in r.stderr.splitlines() if "event=crl_failed" in l]
        assert len(lines) == 1, r.stderr
        assert str(huge) in lines[0] and str(2**64 - 1) in lines[0], lines[0]
        assert "refused" in lines[0]
        assert env.crl_path("ca1").read_bytes() == placed
        assert not list(env.out.glob(".*"))
    ok, out = openssl_crl_verify(env.crl_path("ca1"), ca.cert)
    assert ok, out


def test_crl_published_meanwhile_by_another_host_is_not_replaced(tmp_path):
    """Issue 11 item 10: another host writing into the shared directory,
    which crlgen's lock does not reach (a network file system), publishes a
    higher number while crlgen builds its CRL: crlgen checks the number in
    place again before its rename and refuses rather than go back. The
    other CRL lands while crlgen's temporary file exists (a 100,000-entry CRL
    takes tens of ms); a run where it lands too late is allowed, but never a
    lower number in place, and at least one of five runs must be caught."""
    ca = pki.CA(tmp_path, "ca1", "ec")
    env = Env(tmp_path, [ca])
    write_index(ca.index, synthetic_revoked(100000))
    env.import_index(ca)
    env.crlgen("--once")
    refused = 0
    for attempt in range(5):
        number = now_us() + (attempt + 1) * 10**12
        placed = other_host_crl(ca, number)
        landed = threading.Event()
        stop = threading.Event()

        def other_host():
            while not stop.is_set():
                if any(n.startswith(".ca1.crl.tmp-") for n in os.listdir(env.out)):
                    (env.out / "other.tmp").write_bytes(placed)
                    os.rename(env.out / "other.tmp", env.crl_path("ca1"))
                    landed.set()
                    return
                time.sleep(0.0005)

        t = threading.Thread(target=other_host)
        t.start()
        try:
            r = env.crlgen("--once", check=False)
        finally:
            stop.set()
            t.join(timeout=10)
        in_place = crl_number(env.crl("ca1"))
        assert in_place >= number or not landed.is_set(), r.stderr
        if r.returncode != 0:
            lines = [l for l in r.stderr.splitlines() if "event=crl_failed" in l]
            assert len(lines) == 1, r.stderr
            assert f"over {number}, the number of the published ca1.crl: refused" in lines[0]
            assert re.search(r"CRL number \d+ does not increase", lines[0]), lines[0]
            assert env.crl_path("ca1").read_bytes() == placed
            refused += 1
            break
    assert refused == 1
    # The next run is above it.
    env.crlgen("--once")
    assert crl_number(env.crl("ca1")) > number


def test_concurrent_runs_never_publish_a_lower_number(tmp_path):
    ca = pki.CA(tmp_path, "ca1", "ec")
    env = Env(tmp_path, [ca], extra="keep = 50")
    write_index(ca.index, synthetic_revoked(20000))
    env.import_index(ca)
    procs = [subprocess.Popen([str(binary("vigil-crlgen")), "-c", str(env.config), "--once"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(6)]
    try:
        for p in procs:
            assert p.wait(timeout=60) == 0, p.stderr.read()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
            p.stderr.close()
    numbers = sorted(int(p.name[4:-4]) for p in env.out.glob("ca1-*.crl"))
    assert len(numbers) == 6
    # The CRL left published is the one with the highest number.
    assert crl_number(env.crl("ca1")) == numbers[-1]
    assert (env.out / f"ca1-{numbers[-1]}.crl").read_bytes() == env.crl_path("ca1").read_bytes()


def test_expired_entries_kept_once_after_expiry(tmp_path):
    ca = pki.CA(tmp_path, "ca1", "ec")
    env = Env(tmp_path, [ca])
    # Expired 2024-06-01 (before any CRL of ours), expires 2034, and one whose
    # certificate expires in the future but... all revoked.
    write_index(ca.index, [
        ("R", "240601000000Z", "240101000000Z,keyCompromise", "A1"),
        ("R", "340601000000Z", "250101000000Z,superseded", "A2"),
    ])
    env.import_index(ca)
    env.crlgen("--once")
    assert set(entries(env.crl("ca1"))) == {"A2"}
    # Pretend the previous full CRL was issued on 2024-05-01, before A1
    # expired: A1 must then appear on this CRL (RFC 5280 §3.3)...
    state = env.out / "ca1.state"
    may2024 = int(datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc).timestamp())
    state.write_text(re.sub(r"full_this_update=-?\d+", f"full_this_update={may2024}",
                            state.read_text()))
    env.crlgen("--once")
    assert set(entries(env.crl("ca1"))) == {"A1", "A2"}
    # ...and not on the next one, issued after a CRL that listed it past expiry.
    env.crlgen("--once")
    assert set(entries(env.crl("ca1"))) == {"A2"}


def test_delta_crl_lists_exactly_the_changes(tmp_path):
    ca, leaves = make_ca_with_leaves(tmp_path, keytype="ec")
    extra_leaf = ca.issue("later.example")
    env = Env(tmp_path, [ca], ca_extra={"ca1": [
        "delta_crl = on", "crl_url = http://crl.example/ca1.crl", "profile = private",
        "delta_crl_url = http://crl.example/ca1-delta.crl"]})
    env.import_index(ca)
    env.crlgen("--once")
    full = env.crl("ca1")
    base = crl_number(full)
    fresh = full.extensions.get_extension_for_oid(ExtensionOID.FRESHEST_CRL)
    assert not fresh.critical
    assert fresh.value[0].full_name[0].value == "http://crl.example/ca1-delta.crl"
    # The delta published with it is empty and refers to it.
    delta = env.crl("ca1", delta=True)
    ind = delta.extensions.get_extension_for_oid(ExtensionOID.DELTA_CRL_INDICATOR)
    assert ind.critical and ind.value.crl_number == base
    assert len(delta) == 0 and crl_number(delta) > base
    assert not any(e.oid == ExtensionOID.FRESHEST_CRL for e in delta.extensions)

    # Changes after the base: a revocation, a hold lifted, a hold made final.
    good = leaves["good"][0]
    env.runner.store("revoke", "ca1", good, "--reason", "keyCompromise")
    env.runner.store("release", "ca1", leaves["hold"][0])
    env.runner.store("revoke", "ca1", extra_leaf[0], "--reason", "certificateHold")
    env.crlgen("--once", "--delta")
    delta = env.crl("ca1", delta=True)
    ok, out = openssl_crl_verify(env.crl_path("ca1", delta=True), ca.cert)
    assert ok, out
    assert delta.extensions.get_extension_for_oid(
        ExtensionOID.DELTA_CRL_INDICATOR).value.crl_number == base
    got = entries(delta)
    assert set(got) == {"%X" % int(s, 16) for s in (good, leaves["hold"][0], extra_leaf[0])}
    assert got["%X" % int(good, 16)][0] == "keyCompromise"
    assert got["%X" % int(leaves["hold"][0], 16)][0] == "removeFromCRL"
    assert got["%X" % int(extra_leaf[0], 16)][0] == "certificateHold"
    # The full CRL did not change with --delta.
    assert crl_number(env.crl("ca1")) == base
    # OpenSSL applies the delta over the base: the newly revoked leaf fails.
    both = tmp_path / "both.pem"
    both.write_text(env.crl_path("ca1", pem=True).read_text() +
                    env.crl_path("ca1", delta=True, pem=True).read_text())
    rc, out = openssl_verify_leaf(ca.cert, both, leaves["good"][1], extra=["-use_deltas"])
    assert rc != 0 and "revoked" in out, out
    # A new full CRL has them all, and the delta against it is empty again.
    env.crlgen("--once")
    check_against_store(env, ca, env.crl("ca1"), [s for s, _ in leaves.values()] + [extra_leaf[0]])
    assert len(env.crl("ca1", delta=True)) == 0
    assert certtool_info(env.crl_path("ca1", delta=True)).returncode == 0


def apply_delta(base, delta):
    """What a relying party holds after merging |delta| over |base| (both as
    entries()): RFC 5280 §5.2.4, removeFromCRL takes a serial out."""
    out = dict(base)
    for serial, e in delta.items():
        if e[0] == "removeFromCRL":
            out.pop(serial, None)
        else:
            out[serial] = e
    return out


def test_delta_removes_a_released_hold_on_a_never_issued_serial(tmp_path):
    """Issue 11 item 3: a serial the store never saw, put on hold and then
    released, is absent again; the delta must still say removeFromCRL, or
    base + delta keeps it on hold while the next full CRL does not list it."""
    ca, leaves = make_ca_with_leaves(tmp_path, keytype="ec")
    env = Env(tmp_path, [ca], ca_extra={"ca1": ["delta_crl = on"]})
    env.import_index(ca)
    ghost = "7E57AB1E0001"  # not issued by this CA: not in the store
    issued = leaves["good"][0]
    env.runner.store("revoke", "ca1", ghost, "--reason", "certificateHold")
    env.runner.store("revoke", "ca1", issued, "--reason", "certificateHold")
    line = env.runner.store("status", "ca1", ghost).stdout
    assert "certificateHold" in line and "not_issued" in line, line
    env.crlgen("--once")
    base = entries(env.crl("ca1"))
    issued_hex = "%X" % int(issued, 16)
    assert base[ghost][0] == "certificateHold" and base[issued_hex][0] == "certificateHold"

    env.runner.store("release", "ca1", ghost)
    env.runner.store("release", "ca1", issued)
    assert env.status("ca1", ghost)[0] == "unknown"  # absent again, never good
    assert env.status("ca1", issued)[0] == "good"
    env.crlgen("--once", "--delta")
    path = env.crl_path("ca1", delta=True)
    ok, out = openssl_crl_verify(path, ca.cert)
    assert ok, out
    delta = entries(env.crl("ca1", delta=True))
    assert delta == {ghost: ("removeFromCRL", delta[ghost][1], None),
                     issued_hex: ("removeFromCRL", delta[issued_hex][1], None)}
    # openssl reads the same: the never-issued serial, reason Remove From CRL.
    text = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(path), "-noout",
                           "-text"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"Serial Number: 0*%s\s.*?CRL Reason Code:\s*\n\s*([^\n]+)" % ghost, text, re.S)
    assert m and m.group(1).strip() == "Remove From CRL", text
    # Base + delta is what the next full CRL lists (RFC 5280 §5.2.4).
    merged = apply_delta(base, delta)
    env.crlgen("--once")
    assert merged == entries(env.crl("ca1"))
    assert ghost not in merged and issued_hex not in merged


def test_reader_never_sees_a_partial_crl(tmp_path):
    ca = pki.CA(tmp_path, "big", "ec")
    env = Env(tmp_path, [ca])
    write_index(ca.index, synthetic_revoked(40000))
    env.import_index(ca)
    env.crlgen("--once")
    stop = threading.Event()
    seen, bad = set(), []

    def reader():
        path = env.crl_path("big")
        while not stop.is_set():
            data = path.read_bytes()
            try:
                crl = x509.load_der_x509_crl(data)
                seen.add(crl_number(crl))
                if len(crl) != 40000:
                    bad.append(len(crl))
            except ValueError as e:
                bad.append(str(e))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(6):
            env.crlgen("--once")
    finally:
        stop.set()
        t.join(timeout=30)
    assert not bad, bad[:3]
    assert len(seen) >= 2


def test_watch_publishes_within_one_second(tmp_path):
    ca, leaves = make_ca_with_leaves(tmp_path, keytype="ec")
    env = Env(tmp_path, [ca])
    env.import_index(ca)
    d = Daemon(env)
    try:
        assert d.wait_log(r"event=crl_published ca=ca1"), d.text()
        assert d.wait_log(r"event=watching"), d.text()
        first = crl_number(env.crl("ca1"))
        good = "%X" % int(leaves["good"][0], 16)
        env.runner.store("revoke", "ca1", good, "--reason", "keyCompromise")

        def published():
            try:
                return good in entries(env.crl("ca1"))
            except (ValueError, FileNotFoundError):
                return False
        elapsed = wait_for(published, timeout=5)
        assert elapsed is not None and elapsed < 1.0, (elapsed, d.text())
        assert crl_number(env.crl("ca1")) > first

        # A burst of revocations is coalesced into few CRLs, and all land.
        n_before = d.text().count("event=crl_published")
        for s in ("kc", "sup"):
            env.runner.store("revoke", "ca1", leaves[s][0], "--reason", "keyCompromise")
        extra = [ca.issue(f"x{i}.example")[0] for i in range(3)]
        for s in extra:
            env.runner.store("revoke", "ca1", s)
        assert wait_for(lambda: all("%X" % int(s, 16) in entries(env.crl("ca1"))
                                    for s in extra), timeout=5) is not None
        time.sleep(0.5)
        assert d.text().count("event=crl_published") - n_before <= 4

        # SIGHUP with a broken config: one error line, the daemon keeps going.
        good_conf = env.config.read_text()
        env.config.write_text(good_conf + "\n[ca ca1]\nbogus = 1\n")
        d.signal(signal.SIGHUP)
        assert d.wait_log(r"event=reload_failed [^\n]*action=keep_old_config"), d.text()
        assert d.p.poll() is None
        env.config.write_text(good_conf)
        n = d.text().count("event=crl_published")
        d.signal(signal.SIGHUP)
        assert d.wait_log(r"event=reloaded"), d.text()
        # A reload publishes again with the new keys.
        assert d.wait_log(r"event=crl_published", count=n + 1), d.text()
    finally:
        rc = d.stop()
    assert rc == 0, d.text()
    assert "event=stopped" in d.text()


def test_watch_delta_ca_publishes_a_delta(tmp_path):
    ca, leaves = make_ca_with_leaves(tmp_path, keytype="ec")
    env = Env(tmp_path, [ca], ca_extra={"ca1": ["delta_crl = on"]})
    env.import_index(ca)
    d = Daemon(env)
    try:
        assert d.wait_log(r"event=watching"), d.text()
        base = crl_number(env.crl("ca1"))
        good = "%X" % int(leaves["good"][0], 16)
        env.runner.store("revoke", "ca1", good, "--reason", "cACompromise")

        def in_delta():
            try:
                return good in entries(env.crl("ca1", delta=True))
            except (ValueError, FileNotFoundError):
                return False
        elapsed = wait_for(in_delta, timeout=5)
        assert elapsed is not None and elapsed < 1.0, (elapsed, d.text())
        delta = env.crl("ca1", delta=True)
        assert entries(delta)[good][0] == "cACompromise"
        assert delta.extensions.get_extension_for_oid(
            ExtensionOID.DELTA_CRL_INDICATOR).value.crl_number == base
        # The full CRL waits for its schedule.
        assert crl_number(env.crl("ca1")) == base
    finally:
        assert d.stop() == 0, d.text()


def test_sigterm_finishes_the_crl_in_progress(tmp_path):
    ca = pki.CA(tmp_path, "big", "ec")
    env = Env(tmp_path, [ca])
    write_index(ca.index, synthetic_revoked(200000))
    env.import_index(ca)
    d = Daemon(env)
    try:
        # Signal while the first CRL is being written.
        assert wait_for(lambda: list(env.out.glob(".big.crl.tmp-*")), timeout=20) is not None
        d.signal(signal.SIGTERM)
        d.p.wait(timeout=60)
    finally:
        rc = d.stop()
    assert rc == 0, d.text()
    assert "event=crl_published ca=big" in d.text(), d.text()
    assert len(env.crl("big")) == 200000
    assert not list(env.out.glob(".*"))


def test_bad_config_and_key_leave_the_old_crl(tmp_path):
    ca, leaves = make_ca_with_leaves(tmp_path, keytype="ec")
    env = Env(tmp_path, [ca])
    env.import_index(ca)
    env.crlgen("--once")
    before = env.crl_path("ca1").read_bytes()
    good_conf = env.config.read_text()

    def one_line(r, *words):
        assert r.returncode != 0
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        for w in words:
            assert w in lines[0], r.stderr
        assert env.crl_path("ca1").read_bytes() == before

    # Usage errors.
    one_line(env.crlgen(check=False), "--once")
    one_line(env.crlgen("--once", "--watch", check=False), "--once")
    one_line(env.crlgen("--once", "--bogus", check=False), "--bogus")
    one_line(env.crlgen("--once", "--ca", "nope", check=False), "nope")
    # A bad config.
    env.config.write_text(good_conf.replace("[crlgen]", "[crlgen]\nkeep = lots"))
    one_line(env.crlgen("--once", check=False), "keep")
    env.config.write_text(good_conf + "crl_validity = 30d\n")
    one_line(env.crlgen("--once", check=False), "crl_validity")
    # An unreadable key, a world-readable key, a key of another CA.
    env.config.write_text(good_conf.replace(f"crl_key = {ca.key}",
                                            f"crl_key = {tmp_path}/missing.key"))
    one_line(env.crlgen("--once", check=False), "missing.key")
    os.chmod(ca.key, 0o644)
    env.config.write_text(good_conf)
    one_line(env.crlgen("--once", check=False), "crl_key")
    os.chmod(ca.key, 0o600)
    other = tmp_path / "other.key"
    pki.genkey(other, "ec")
    env.config.write_text(good_conf.replace(f"crl_key = {ca.key}", f"crl_key = {other}"))
    one_line(env.crlgen("--once", check=False), "does not match")
    # --help is complete enough to run the program from.
    env.config.write_text(good_conf)
    r = env.crlgen("--help")
    for w in ("--once", "--watch", "--ca", "SIGHUP", "SIGTERM", "crl_validity", "keep"):
        assert w in r.stdout
    # Back to a good config: the old CRL is replaced by a newer one.
    env.crlgen("--once", "--ca", "ca1")
    assert env.crl_path("ca1").read_bytes() != before


def test_several_cas_and_ca_option(tmp_path):
    a = pki.CA(tmp_path, "a", "ec")
    b = pki.CA(tmp_path, "b", "ed25519")
    sa, pa = a.issue("x.example")
    a.revoke(pa, "cessationOfOperation")
    env = Env(tmp_path, [a, b])
    env.import_index(a)
    env.import_index(b)
    env.crlgen("--once", "--ca", "b")
    assert not env.crl_path("a").exists() and env.crl_path("b").exists()
    env.crlgen("--once")
    assert set(entries(env.crl("a"))) == {"%X" % int(sa, 16)}
    assert len(env.crl("b")) == 0
    # Each CRL is signed by its own CA, not the other.
    ok, _ = openssl_crl_verify(env.crl_path("a"), b.cert)
    assert not ok
    ok, out = openssl_crl_verify(env.crl_path("b"), b.cert)
    assert ok, out
