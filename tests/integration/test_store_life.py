# SPDX-License-Identifier: Apache-2.0
"""The store's life (issue 16): hot backup and restore, verify, and retention.

Every test drives the real binaries. Answers are read with
python3-cryptography (OCSP) and CRLs with python3-cryptography and the
openssl CLI; stores are damaged with LMDB's own tools (mdb_dump, mdb_load).
Months of retention are simulated with VIGIL_NOW (vigil-store's clock), and
certificates that expired years ago are imported as such.
"""
import base64
import os
import random
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

import pki
from conftest import Runner, run, sanitized_build, write_config
from crlgen_util import Daemon, entries, openssl_crl_verify, wait_for, write_index
from responder_util import Responder, fake_cert, load_cert, make_request
from store_util import Store, norm_serial, store_cmd, synth_index

CA = "life1"


def ocsp_answer(resp, ca_cert, serial):
    """'GOOD', 'REVOKED', 'UNKNOWN', or the response status when not
    successful (TRY_LATER while the responder does not answer from a store)."""
    der = make_request(fake_cert(serial, ca_cert), ca_cert)
    _, _, body = resp.post(der)
    r = ocsp.load_der_ocsp_response(body)
    if r.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return r.response_status.name
    return r.certificate_status.name


def config_for(path, store, ca, **ca_keys):
    return write_config(path, store, [(ca, ca_keys)] if ca_keys else [ca])


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return pki.CA(tmp_path_factory.mktemp("pki"), CA, "ec")


def seeded(tmp, ca, n, rng, **ca_keys):
    """A store of |n| synthetic certificates (a tenth revoked); returns
    (Store, expected {serial: tail})."""
    cfg = config_for(tmp / "vigil.conf", tmp / "store", ca, **ca_keys)
    st = Store(cfg)
    st.ok("init")
    text, expected = synth_index(rng, n)
    (tmp / "index.txt").write_text(text)
    st.ok("import-index", CA, tmp / "index.txt")
    return st, expected


def backup_store(ca, dest, tmp, name):
    """A Store on the backup directory |dest| (its own config)."""
    return Store(write_config(tmp / f"{name}.conf", dest, [ca]))


def verify(st):
    r = st.run("verify", check=False)
    return r.returncode, r.stdout + r.stderr


def sorted_serials(serials):
    return sorted(serials, key=lambda s: int(s, 16))


# ---- backup -------------------------------------------------------------------------------

def test_backup_under_load_is_the_source_at_its_counter(tmp_path, ca):
    """wrk on the responder and a bulk revocation of 120,000 serials (three
    commits) running while backups are taken: each backup opens as a store,
    verifies clean, and lists exactly the source's state at the counter it
    records (the revocation batches committed before it, in serial order)."""
    if not shutil.which("wrk"):
        pytest.skip("wrk not installed")
    rng = random.Random(16)
    st, expected = seeded(tmp_path, ca, 150_000, rng)
    pre = st.list_map(CA)
    c0 = st.counter()
    good = sorted_serials([s for s, v in pre.items() if v == "good"])
    targets = rng.sample(good, 120_000)
    (tmp_path / "serials.txt").write_text("\n".join(targets) + "\n")
    ca_cert = load_cert(ca.cert)
    with Responder(st.config) as resp:
        der = make_request(fake_cert(int(targets[0], 16), ca_cert), ca_cert)
        path = "/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="")
        wrk = subprocess.Popen(["wrk", "-t1", "-c8", "-d6s", "--latency",
                                f"http://127.0.0.1:{resp.port}{path}"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.5)
        rev = subprocess.Popen(store_cmd(st.config, "revoke", CA, "--serials",
                                         tmp_path / "serials.txt", "--reason", "superseded",
                                         "--time", "2026-06-01T00:00:00Z"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        backups = []
        i = 0
        while True:
            done = rev.poll() is not None
            dest = tmp_path / f"bk{i}"
            r = st.run("backup", dest)
            m = re.search(r"counter=(\d+) bytes=(\d+)", r.stdout)
            assert m, r.stdout
            backups.append((dest, int(m.group(1))))
            i += 1
            if done:
                break
        out, err = rev.communicate(timeout=120)
        assert rev.returncode == 0, err
        wout, _ = wrk.communicate(timeout=60)
        assert "Non-2xx" not in wout and "Socket errors" not in wout, wout
        assert ocsp_answer(resp, ca_cert, int(targets[0], 16)) == "REVOKED"
        assert resp.stop() == 0  # and no sanitizer report
    # The revocation's commits, in order: batches of 50,000 sorted serials.
    tsorted = sorted_serials(targets)
    batches = [tsorted[k:k + 50_000] for k in range(0, len(tsorted), 50_000)]
    assert st.counter() == c0 + len(batches)
    src_audit = st.audit()
    seen = set()
    for dest, counter in backups:
        bst = backup_store(ca, dest, tmp_path, dest.name)
        rc, text = verify(bst)
        assert rc == 0, text
        assert bst.counter() == counter
        want = dict(pre)
        for b in batches[:counter - c0]:
            for s in b:
                want[s] = "revoked superseded 2026-06-01T00:00:00Z"
        got = bst.list_map(CA)
        assert got == want, f"backup at counter {counter} differs from the source at it"
        # The copy's audit log is the source's, up to its counter.
        assert bst.audit() == src_audit[:counter]
        stats = bst.stats()["store"]
        assert stats["Copy of"].endswith(f"at counter {counter}")
        assert stats["Store id"] != st.stats()["store"]["Store id"]
        seen.add(counter)
    # At least one backup landed between the revocation's commits or before them.
    assert min(seen) < c0 + len(batches), seen


def test_backup_compact_returns_space_and_refuses_an_existing_path(tmp_path, ca):
    rng = random.Random(7)
    st, _ = seeded(tmp_path, ca, 20_000, rng)
    for s in list(st.list_map(CA))[:3]:  # churn: pages freed by copy-on-write
        st.ok("revoke", CA, s, "--reason", "keyCompromise")
    free = int(st.stats()["store"]["Free pages"].split()[0])
    assert free > 0
    st.ok("backup", tmp_path / "full")
    st.ok("backup", tmp_path / "compact", "--compact")
    full = (tmp_path / "full" / "data.mdb").stat().st_size
    compact = (tmp_path / "compact" / "data.mdb").stat().st_size
    assert compact < full, (compact, full)
    bst = backup_store(ca, tmp_path / "compact", tmp_path, "compact")
    assert bst.list_map(CA) == st.list_map(CA)
    assert int(bst.stats()["store"]["Free pages"].split()[0]) < free
    r = st.run("backup", tmp_path / "full", check=False)
    assert r.returncode == 1 and "exists" in r.stderr, r.stderr
    assert not list(tmp_path.glob("full.tmp-*"))


# ---- restore ------------------------------------------------------------------------------

def test_restore_under_a_running_responder_and_crlgen(tmp_path, ca):
    """A backup restored under a running responder and crlgen --watch: both
    notice within a second and reopen; the responder answers from the
    restored store (never from its cache of the replaced one); crlgen
    refuses, loudly, to publish a CRL that would drop a revocation it
    already published, until the revocation is in the store again."""
    rng = random.Random(3)
    st, expected = seeded(tmp_path, ca, 2_000, rng)
    r = Runner(st.config)
    r.crlgen("--once")
    good = sorted_serials([s for s, v in expected.items() if v == "good"])
    early, late = good[0], good[1]
    st.ok("revoke", CA, early, "--reason", "keyCompromise")
    st.ok("backup", tmp_path / "bk")
    ca_cert = load_cert(ca.cert)
    d = Daemon(SimpleNamespace(tmp=tmp_path, config=st.config))
    try:
        with Responder(st.config) as resp:
            assert d.wait_log(r"event=watching"), d.text()
            st.ok("revoke", CA, late, "--reason", "keyCompromise")
            crl = tmp_path / "crl" / f"{CA}.crl"
            assert wait_for(lambda: late in entries(x509.load_der_x509_crl(crl.read_bytes())),
                            5) is not None, d.text()
            assert ocsp_answer(resp, ca_cert, int(late, 16)) == "REVOKED"  # now cached
            published = crl.read_bytes()
            n = resp.n_lines()
            t0 = time.monotonic()
            r = st.run("restore", tmp_path / "bk")
            assert "replaced_kept=" in r.stdout, r.stdout
            assert "warning: the replaced store was at counter 3, the backup at 2" in r.stderr
            resp.wait_log(r"event=store_reopened", timeout=2, start=n)
            assert time.monotonic() - t0 < 1.5
            # The restored store does not hold the late revocation: once
            # the responder said it reopened, every answer, whichever worker
            # gives it, says so (not the cached one, not "try later" from a
            # worker still on the replaced store).
            for _ in range(8):
                assert ocsp_answer(resp, ca_cert, int(late, 16)) == "GOOD"
                assert ocsp_answer(resp, ca_cert, int(early, 16)) == "REVOKED"
            # crlgen reopened and refused: the CRL still lists the late one.
            assert d.wait_log(r"event=store_reopened"), d.text()
            assert d.wait_log(r"event=crl_refused ca=life1 reason=store_older_than_published"
                              r"[^\n]*missing=1 first=" + late), d.text()
            assert crl.read_bytes() == published
            # ... and counts it for the alert (VigilCRLRefusedOlderStore).
            prom = next(tmp_path.glob("*.prom")).read_text()
            assert re.search(r'^vigil_crlgen_refusals_total\{ca="life1",'
                             r'reason="store_older_than_published"\} [1-9]', prom, re.M), prom
            # CA.missing: the serial, and the options that record it as the
            # published CRL does (reason and revocation time).
            old_entry = entries(x509.load_der_x509_crl(published))[late]
            lines = (tmp_path / "crl" / f"{CA}.missing").read_text().splitlines()
            assert lines == [f"{late} # --reason keyCompromise --time {old_entry[1]}"], lines
            # The operator revokes it again from the list: crlgen accepts the
            # store and publishes a full CRL from it, listing both, the late
            # one as it was.
            serial, args = lines[0].split(" # ")
            st.ok("revoke", CA, serial, *args.split())
            assert d.wait_log(r"event=store_replaced_accepted ca=life1", timeout=15), d.text()
            assert wait_for(lambda: crl.read_bytes() != published, 15) is not None, d.text()
            got = entries(x509.load_der_x509_crl(crl.read_bytes()))
            assert early in got and got[late] == old_entry
            ok, txt = openssl_crl_verify(crl, ca.cert)
            assert ok, txt
            assert ocsp_answer(resp, ca_cert, int(late, 16)) == "REVOKED"
            assert resp.stop() == 0  # never died; no sanitizer report
    finally:
        assert d.stop() == 0, d.text()
    assert "Sanitizer" not in d.text() and "runtime error" not in d.text(), d.text()
    rc, text = verify(st)
    assert rc == 0, text
    kept = list(tmp_path.glob("store.replaced-*"))
    assert len(kept) == 1 and (kept[0] / "data.mdb").exists()
    assert [a["action"] for a in st.audit()][-2:] == ["restore", "revoke"]


def test_restore_refuses_a_damaged_backup_and_a_waiting_writer_writes_nothing(tmp_path, ca):
    rng = random.Random(5)
    st, _ = seeded(tmp_path, ca, 3_000, rng)
    st.ok("backup", tmp_path / "bk")
    before = st.list_map(CA)
    damaged = tmp_path / "damaged"
    corrupt_copy(tmp_path / "bk", damaged, "cas", lambda kv: [
        (k, v[:32] + "%016x" % 12345 + v[48:]) for k, v in kv])
    r = st.run("restore", damaged, check=False)
    assert r.returncode == 1 and "fails verify" in r.stderr, r.stderr
    assert st.list_map(CA) == before
    assert not list(tmp_path.glob("store.restore-*"))
    assert not list(tmp_path.glob("store.replaced-*"))


# ---- verify ------------------------------------------------------------------------------

def dump(store_dir):
    """mdb_dump -a of a store: {database: [(key hex, value hex)]}."""
    out = run("mdb_dump", "-a", store_dir).stdout
    dbs, cur, pair = {}, None, []
    for ln in out.splitlines():
        if ln.startswith("database="):
            cur = ln.split("=", 1)[1]
            dbs[cur] = []
        elif ln.startswith(" "):
            pair.append(ln.strip())
            if len(pair) == 2:
                dbs[cur].append(tuple(pair))
                pair = []
    return dbs


def load(dbs, store_dir):
    """mdb_load every database into a new store directory."""
    store_dir.mkdir()
    text = []
    for name, kv in dbs.items():
        text += ["VERSION=3", "format=bytevalue", f"database={name}", "type=btree",
                 "HEADER=END"]
        for k, v in kv:
            text += [" " + k, " " + v]
        text.append("DATA=END")
    run("mdb_load", "-f", "/dev/stdin", store_dir, input="\n".join(text) + "\n")


def corrupt_copy(src, dst, db, fn):
    dbs = dump(src)
    dbs[db] = sorted(fn(dbs[db]))
    load(dbs, dst)


def cert_key_of(k):
    """'caid/SERIAL' as verify names a certificate key."""
    return f"{k[:8]}/{k[10:].upper()}"


def test_verify_reports_each_broken_invariant(tmp_path, ca):
    """verify exits 0 on a healthy store, and 1 on copies damaged one
    invariant at a time with mdb_dump/mdb_load, naming the key."""
    if not shutil.which("mdb_dump"):
        pytest.skip("lmdb-utils not installed")
    rng = random.Random(11)
    st, expected = seeded(tmp_path, ca, 3_000, rng)
    rc, text = verify(st)
    assert rc == 0 and "differences=0" in text, text
    src = tmp_path / "store"
    dbs = dump(src)
    rev_k, rev_v = dbs["revoked"][5]
    good_k, good_v = next((k, v) for k, v in dbs["certs"] if v[2:4] == "00")
    max_counter = int(next(v for k, v in dbs["meta"] if bytes.fromhex(k) == b"counter"), 16)

    def flip_last(v):
        return v[:-2] + "%02x" % (int(v[-2:], 16) ^ 1)

    cases = {
        # A revoked record missing from the revoked index.
        "revoked_missing": ("revoked", lambda kv: [p for p in kv if p[0] != rev_k],
                            ("revoked", cert_key_of(rev_k), "missing")),
        # A revoked record whose copy in the index differs.
        "revoked_differs": ("revoked", lambda kv: [(k, flip_last(v)) if k == rev_k else (k, v)
                                                   for k, v in kv],
                            ("revoked", cert_key_of(rev_k), "differs")),
        # A good certificate listed as revoked in the index only.
        "revoked_extra": ("revoked", lambda kv: kv + [(good_k, good_v)],
                          ("revoked", cert_key_of(good_k), "not revoked")),
        # The point index no longer equal to certs (a record changed).
        "points_differ": ("certs", lambda kv: [(k, flip_last(v)) if k == good_k else (k, v)
                                               for k, v in kv],
                          ("points", cert_key_of(good_k), "differs from certs")),
        # The CA's count of certificates wrong.
        "ca_count": ("cas", lambda kv: [(k, v[:32] + "%016x" % 12345 + v[48:]) for k, v in kv],
                     ("cas", CA, "n_certs 12345")),
        # A change-log entry past the store's counter.
        "log_future": ("log", lambda kv: kv + [("%016x%08x" % (max_counter + 7, 0),
                                                kv[0][1])],
                       ("log", str(max_counter + 7), "past the store")),
        # A change-log entry with an unknown op.
        "log_op": ("log", lambda kv: [(k, v[:8] + "09" + v[10:]) if i == 0 else (k, v)
                                      for i, (k, v) in enumerate(kv)],
                   ("log", None, "unknown op 9")),
        # Meta: the log floor claims a future.
        "meta_floor": ("meta", lambda kv: kv + [(b"log_floor".hex(), "%016x" % (max_counter + 5))],
                       ("meta", "log_floor", "past the counter")),
    }
    for name, (db, fn, (rdb, rkey, what)) in cases.items():
        dst = tmp_path / f"bad-{name}"
        corrupt_copy(src, dst, db, fn)
        cfg = write_config(tmp_path / f"{name}.conf", dst, [ca])
        r = Runner(cfg).store("verify", check=False)
        assert r.returncode == 1, f"{name}: verify exited {r.returncode}: {r.stdout}{r.stderr}"
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("DIFF ")]
        hit = [ln for ln in lines if f"db={rdb} " in ln and what in ln and
               (rkey is None or f"key={rkey} " in ln)]
        assert hit, f"{name}: no DIFF db={rdb} key={rkey} '{what}' in:\n{r.stdout}"


# ---- retention ----------------------------------------------------------------------------

def expired_rows(rng, n, expiry, revoked_fraction=0.3):
    rows = []
    for _ in range(n):
        s = "%X" % (rng.getrandbits(120) | (1 << 112))
        if rng.random() < revoked_fraction:
            rows.append(("R", expiry, "230601000000Z,keyCompromise", s))
        else:
            rows.append(("V", expiry, "", s))
    return rows


def test_prune_with_responder_and_crlgen_watch_running(tmp_path, ca):
    """Certificates expired two years ago are removed (revoked ones only
    after a full CRL past their expiry), the change log older than
    log_retention is removed; a responder and crlgen --watch (delta CRLs)
    running all along never serve what the store no longer says: a pruned
    serial answers unknown at once (its cached good answer dropped), and the
    delta CRL after the log was pruned past its base is replaced by a full
    one that lists every revocation."""
    rng = random.Random(21)
    old = expired_rows(rng, 4_000, "241201000000Z")       # expired two years ago
    live = expired_rows(rng, 1_000, "301231235959Z", 0.1)  # valid
    write_index(tmp_path / "index.txt", old + live)
    cfg = write_config(tmp_path / "vigil.conf", tmp_path / "store",
                       [(ca, {"delta_crl": "on"})])
    st = Store(cfg)
    st.ok("init")
    st.ok("import-index", CA, tmp_path / "index.txt")
    old_good = [norm_serial(s) for st_, _, _, s in old if st_ == "V"]
    old_rev = [norm_serial(s) for st_, _, _, s in old if st_ == "R"]
    live_good = [norm_serial(s) for st_, _, _, s in live if st_ == "V"]
    # No CRL yet: expired revoked certificates stay (RFC 5280 §3.3).
    out = st.ok("prune")
    assert f"kept_awaiting_crl={len(old_rev)}" in out and "certs_removed=" in out, out
    assert st.status(CA, old_rev[0]).startswith(f"{old_rev[0]} revoked")
    assert st.status(CA, old_good[0]) == f"{old_good[0]} unknown"
    ca_cert = load_cert(ca.cert)
    d = Daemon(SimpleNamespace(tmp=tmp_path, config=cfg))
    try:
        with Responder(cfg) as resp:
            assert d.wait_log(r"event=watching"), d.text()
            assert ocsp_answer(resp, ca_cert, int(old_rev[1], 16)) == "REVOKED"
            assert ocsp_answer(resp, ca_cert, int(live_good[0], 16)) == "GOOD"
            st.ok("revoke", CA, live_good[1], "--reason", "keyCompromise")
            delta = tmp_path / "crl" / f"{CA}-delta.crl"
            assert wait_for(lambda: live_good[1] in entries(
                x509.load_der_x509_crl(delta.read_bytes())), 5) is not None, d.text()
            # A month and more later: the full CRL exists, the log is old.
            later = str(int(time.time()) + 40 * 86400)
            r = subprocess.run(store_cmd(cfg, "prune"), env=dict(os.environ, VIGIL_NOW=later),
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            m = re.search(r"certs_removed=(\d+) revoked_removed=(\d+) kept_awaiting_crl=0 "
                          r"log_removed=(\d+) log_floor=(\d+)", r.stdout)
            assert m and int(m.group(2)) == len(old_rev) and int(m.group(3)) > 0, r.stdout
            # The cached answer is dropped: unknown within a tick or two.
            assert wait_for(lambda: ocsp_answer(resp, ca_cert, int(old_rev[1], 16)) ==
                            "UNKNOWN", 1.0) is not None
            assert ocsp_answer(resp, ca_cert, int(live_good[0], 16)) == "GOOD"
            # Another revocation: the delta base's changes were pruned, so
            # crlgen publishes a full CRL (and an empty delta) instead.
            st.ok("revoke", CA, live_good[2], "--reason", "superseded")
            full = tmp_path / "crl" / f"{CA}.crl"
            assert wait_for(lambda: live_good[2] in entries(
                x509.load_der_x509_crl(full.read_bytes())), 5) is not None, d.text()
            assert "event=delta_to_full ca=life1 reason=change_log_pruned" in d.text(), d.text()
            got = entries(x509.load_der_x509_crl(full.read_bytes()))
            assert live_good[1] in got and live_good[2] in got
            assert not any(s in got for s in old_rev)
            assert ocsp_answer(resp, ca_cert, int(live_good[2], 16)) == "REVOKED"
            assert resp.stop() == 0
    finally:
        assert d.stop() == 0, d.text()
    assert "Sanitizer" not in d.text() and "runtime error" not in d.text(), d.text()
    rc, text = verify(st)
    assert rc == 0, text
    stats = st.stats()
    assert stats[CA]["Certificates"] == str(len(live))
    assert stats[CA]["Expired certificates pruned"] == "yes"


def test_frozen_ca_never_answers_a_pruned_serial_revoked(tmp_path, ca, tmp_path_factory):
    """A CA with not_issued = revoked keeps its expired certificates (the
    store must stay complete for it); a CA pruned before it was frozen and
    configured not_issued = revoked answers its absent serials unknown, never
    revoked: a pruned serial may have been issued."""
    ca2 = pki.CA(tmp_path_factory.mktemp("pki2"), "life2", "ec")
    rng = random.Random(31)
    rows1 = expired_rows(rng, 200, "231201000000Z", 0)
    rows2 = expired_rows(rng, 200, "231201000000Z", 0)
    write_index(tmp_path / "i1.txt", rows1)
    write_index(tmp_path / "i2.txt", rows2)
    cfg = write_config(tmp_path / "vigil.conf", tmp_path / "store",
                       [ca, (ca2, {"not_issued": "revoked"})])
    st = Store(cfg)
    st.ok("init")
    st.ok("import-index", CA, tmp_path / "i1.txt")
    st.ok("import-index", "life2", tmp_path / "i2.txt")
    out = st.ok("prune")
    assert "ca=life2 certificates kept" in out, out
    assert "certs_removed=200" in out, out
    s1, s2 = norm_serial(rows1[0][3]), norm_serial(rows2[0][3])
    # Now both frozen with not_issued = revoked (life1 after its pruning).
    cfg2 = write_config(tmp_path / "vigil2.conf", tmp_path / "store",
                        [(ca, {"not_issued": "revoked"}), (ca2, {"not_issued": "revoked"})])
    st2 = Store(cfg2)
    st2.ok("freeze", CA)
    st2.ok("freeze", "life2")
    never = 0x7EADBEEF0123456789
    c1, c2 = load_cert(ca.cert), load_cert(ca2.cert)
    with Responder(cfg2) as resp:
        assert ocsp_answer(resp, c1, int(s1, 16)) == "UNKNOWN"
        assert ocsp_answer(resp, c1, never) == "UNKNOWN"
        assert ocsp_answer(resp, c2, int(s2, 16)) == "GOOD"
        assert ocsp_answer(resp, c2, never) == "REVOKED"
        assert resp.stop() == 0
    r = st2.run("prune")
    assert "ca=life1 certificates kept" in r.stdout and "ca=life2 certificates kept" in r.stdout
    rc, text = verify(st2)
    assert rc == 0, text


# ---- kill -9 ------------------------------------------------------------------------------

def kill_after(cmd, delay, env=None):
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=env)
    try:
        p.wait(delay)
        return False
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        return True


def test_kill_during_backup_and_prune(tmp_path, ca):
    """kill -9 at random points of a backup and of a prune: the store opens,
    verifies clean, no partial backup takes the backup's name, and a prune
    run again ends where an uninterrupted one does."""
    rng = random.Random(41)
    # A sanitizer build runs every command several times slower: half the
    # store and half the trials there (both kinds of kill still land).
    half = 30_000 if sanitized_build() else 60_000
    trials = 2 if sanitized_build() else 4
    rows = expired_rows(rng, half, "231201000000Z", 0.2) + \
        expired_rows(rng, half, "301231235959Z", 0.1)
    write_index(tmp_path / "index.txt", rows)
    (tmp_path / "crl").mkdir()
    (tmp_path / "crl" / f"{CA}.state").write_text(f"full_this_update={int(time.time())}\n")
    cfg = write_config(tmp_path / "vigil.conf", tmp_path / "store", [ca])
    st = Store(cfg)
    st.ok("init")
    st.ok("import-index", CA, tmp_path / "index.txt")
    template = tmp_path / "template"
    shutil.copytree(tmp_path / "store", template)
    # The uninterrupted prune, for reference.
    ref = tmp_path / "ref"
    shutil.copytree(template, ref)
    rcfg = write_config(tmp_path / "ref.conf", ref, [ca], crl_out=tmp_path / "crl")
    t0 = time.monotonic()
    Store(rcfg).ok("prune")
    dur = time.monotonic() - t0
    want = Store(rcfg).list_map(CA)
    killed = 0
    for i in range(trials):
        d = tmp_path / f"k{i}"
        shutil.copytree(template, d)
        kcfg = write_config(tmp_path / f"k{i}.conf", d, [ca], crl_out=tmp_path / "crl")
        k = Store(kcfg)
        killed += kill_after(store_cmd(kcfg, "prune"), rng.uniform(0.02, dur))
        rc, text = verify(k)
        assert rc == 0, f"trial {i}: {text}"
        k.ok("prune")
        assert k.list_map(CA) == want, f"trial {i}: state after prune again differs"
        # A backup killed part way leaves only its temporary directory.
        killed += kill_after(store_cmd(kcfg, "backup", tmp_path / f"bk{i}"),
                             rng.uniform(0.0, 0.25))
        rc, text = verify(k)
        assert rc == 0, f"trial {i} backup: {text}"
        if (tmp_path / f"bk{i}").exists():
            bst = Store(write_config(tmp_path / f"bk{i}.conf", tmp_path / f"bk{i}", [ca]))
            assert bst.list_map(CA) == want
        k.ok("backup", tmp_path / f"bk{i}-again")
        shutil.rmtree(d)
    assert killed >= 2, "no kill landed inside a command"


def test_restore_under_a_running_bulk_revocation(tmp_path, ca):
    """A restore while a bulk revocation commits batch after batch: the
    restore waits for the writer lock between two batches, and the
    revocation's next batch, which finds its store gone from the path,
    writes nothing and says so. The restored store holds none of it; the
    replaced one, kept, holds exactly the batches committed before."""
    rng = random.Random(51)
    st, expected = seeded(tmp_path, ca, 60_000, rng)
    st.ok("backup", tmp_path / "bk")
    before = st.list_map(CA)
    good = [s for s, v in before.items() if v == "good"]
    # 600,000 serials, 12 batches: 50,000 issued ones, the rest never seen
    # (recorded revoked as not issued), so that the restore lands between
    # two batches.
    targets = rng.sample(good, 50_000) + ["%X" % (rng.getrandbits(120) | 1 << 116)
                                          for _ in range(550_000)]
    (tmp_path / "serials.txt").write_text("\n".join(targets) + "\n")
    p = subprocess.Popen(store_cmd(st.config, "revoke", CA, "--serials", tmp_path / "serials.txt",
                                   "--reason", "superseded", quiet=False),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = p.stderr.readline()  # the first batch is committed
    assert "revoking 50000/" in first, first
    # Stopped there, the revocation cannot finish before the restore starts:
    # it is between two batches (the restore takes the lock at once) or
    # inside the next (the restore waits, gets the lock in the pause writers
    # leave between batches, and the batch after finds the store gone).
    # Without that pause the revocation took the lock again at once, every
    # time, and the restore waited for its last batch.
    os.kill(p.pid, signal.SIGSTOP)
    try:
        rp = subprocess.Popen(store_cmd(st.config, "restore", tmp_path / "bk"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
    finally:
        os.kill(p.pid, signal.SIGCONT)
    rout, rerr = rp.communicate(timeout=120)
    rest = p.stderr.read()
    p.wait(120)
    assert rp.returncode == 0, rerr
    assert p.returncode == 1, (p.returncode, rest)
    assert "the store was replaced (vigil-store restore) while this command ran" in rest, rest
    m = re.search(r"after (\d+) committed batches", rest)
    assert m and 1 <= int(m.group(1)) < 12, rest
    # The restored store: the backup, none of the revocation.
    assert st.list_map(CA) == before
    rc, text = verify(st)
    assert rc == 0, text
    # The replaced store, kept: exactly the committed batches, consistent.
    kept = next(tmp_path.glob("store.replaced-*"))
    old = Store(write_config(tmp_path / "old.conf", kept, [ca]))
    rc, text = verify(old)
    assert rc == 0, text
    got = old.list_map(CA)
    changed = sum(1 for s, v in got.items() if before.get(s) != v)
    assert changed == 50_000 * int(m.group(1)), (changed, m.group(0))
