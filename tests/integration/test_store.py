# SPDX-License-Identifier: Apache-2.0
"""vigil-store against a real PKI made with `openssl ca` (issue 2).

Status is cross-checked against OpenSSL's own index.txt; every bad input of
the issue must give one line on stderr, a non-zero exit, and change nothing.
"""
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
import datetime

import pki
from conftest import run, write_config
from store_util import (RFC5280_REASONS, Store, expect_error, expected_from_index, norm_serial,
                        summary_of, to_der, whoami)

T1 = "2026-01-01T00:00:00Z"
T2 = "2026-02-01T00:00:00Z"
T3 = "2026-03-01T00:00:00Z"

# Every revocation form `openssl ca` writes: -crl_reason with each of its
# reasons, -crl_hold with each hold instruction, -crl_compromise and
# -crl_CA_compromise (keyTime / CAkeyTime), and a plain -revoke.
REVOCATIONS = [
    ("plain", None, None),
    *[(f"reason-{r}", r, None) for r in ("unspecified", "keyCompromise", "CACompromise",
                                         "affiliationChanged", "superseded",
                                         "cessationOfOperation", "certificateHold",
                                         "removeFromCRL")],
    *[(f"hold-{h}", None, ["-crl_hold", h]) for h in ("holdInstructionNone",
                                                      "holdInstructionCallIssuer",
                                                      "holdInstructionReject")],
    ("keytime", None, ["-crl_compromise", "20240101120000Z"]),
    ("cakeytime", None, ["-crl_CA_compromise", "20240102130000Z"]),
]


def make_pki_ca(root, name, keytype):
    ca = pki.CA(root, name, keytype)
    for label, reason, extra in REVOCATIONS:
        _, path = ca.issue(f"{name}-{label}")
        ca.revoke(path, reason=reason, extra=extra)
    ca.issue(f"{name}-valid-1")
    ca.issue(f"{name}-valid-2", keytype="rsa")
    # An expired certificate, marked E by `openssl ca -updatedb`.
    ca.issue(f"{name}-expired", startdate="20200101000000Z", enddate="20200201000000Z")
    run(pki.OPENSSL, "ca", "-config", ca.cnf, "-updatedb")
    return ca


@pytest.fixture(scope="module")
def pkienv(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki")
    return {"rsa1": make_pki_ca(root, "rsa1", "rsa"), "ec1": make_pki_ca(root, "ec1", "ec")}


@pytest.fixture
def store(tmp_path, pkienv):
    cfg = write_config(tmp_path / "vigil.conf", tmp_path / "store", list(pkienv.values()))
    st = Store(cfg)
    assert "initialised" in st.ok("init")
    return st


def own_ca(tmp_path, name="own1", keytype="ec"):
    ca = pki.CA(tmp_path / "pki", name, keytype)
    cfg = write_config(tmp_path / "vigil.conf", tmp_path / "store", [ca])
    st = Store(cfg)
    st.ok("init")
    return ca, st


def small_index(path, serials, status="V", rev=""):
    lines = [f"{status}\t301231235959Z\t{rev}\t{s}\tunknown\t/CN=s{s}" for s in serials]
    Path(path).write_text("\n".join(lines) + "\n")
    return path


# ---- cross-check against openssl ca's index.txt ---------------------------

@pytest.mark.parametrize("name", ["rsa1", "ec1"])
def test_status_matches_openssl_index(pkienv, store, name):
    ca = pkienv[name]
    text = ca.index.read_text()
    # The premise: the index holds every form openssl ca writes.
    for form in (",keyTime,", ",CAkeyTime,", ",holdInstruction,holdInstructionReject",
                 ",holdInstruction,holdInstructionNone", ",certificateHold", ",removeFromCRL",
                 ",CACompromise", ",cessationOfOperation", ",affiliationChanged",
                 ",superseded", ",unspecified", ",keyCompromise"):
        assert form in text, f"openssl ca wrote no {form} line"
    assert any(r["status"] == "E" for r in ca.index_rows())
    assert any(r["status"] == "R" and "," not in r["rev"] for r in ca.index_rows())

    expected = expected_from_index(ca.index)
    n_rev = sum(1 for v in expected.values() if v != "good")
    out = store.ok("import-index", name, ca.index, "--certs", ca.dir / "newcerts")
    summary_of(out, added=len(expected) - n_rev, revoked=n_rev, commits=1)
    assert f"issuance times: read={len(expected)} unreadable_or_missing=0" in out

    for serial, tail in expected.items():
        assert store.status(name, serial) == f"{serial} {tail}", f"serial {serial}"
        # The serial as OpenSSL prints it, in lower case with a leading zero.
        assert store.status(name, "0" + serial.lower()) == f"{serial} {tail}"
    assert store.list_map(name) == expected
    store.check_consistent(name)
    # The other CA is untouched; a serial not in the index is unknown.
    other = "ec1" if name == "rsa1" else "rsa1"
    assert store.list(other) == []
    assert store.status(name, "0FFFFF") == "0FFFFF unknown"
    assert store.status(other, next(iter(expected))) == f"{next(iter(expected))} unknown"


def test_removefromcrl_is_not_served_as_revoked(pkienv, store):
    """openssl ca accepts -crl_reason removeFromCRL; vigil-store never stores
    that reason (RFC 5280: delta CRLs only) and reads it as the hold lifted."""
    ca = pkienv["rsa1"]
    row = [r for r in ca.index_rows() if r["rev"].endswith(",removeFromCRL")]
    assert len(row) == 1
    store.ok("import-index", "rsa1", ca.index)
    serial = norm_serial(row[0]["serial"])
    assert store.status("rsa1", serial) == f"{serial} good"
    assert all("removeFromCRL" not in ln for ln in store.list("rsa1"))


def test_reimport_applies_only_the_difference(tmp_path):
    ca, st = own_ca(tmp_path)
    leaves = [ca.issue(f"leaf{i}") for i in range(6)]
    ca.revoke(leaves[0][1], reason="superseded")
    summary_of(st.ok("import-index", "own1", ca.index), added=6, revoked=1, commits=1)
    c1 = st.counter()
    # Nothing new: nothing written, no commit, no counter step.
    summary_of(st.ok("import-index", "own1", ca.index), unchanged=7, commits=0)
    assert st.counter() == c1

    # The CA issues and revokes more.
    new = [ca.issue(f"new{i}") for i in range(3)]
    ca.revoke(leaves[1][1], reason="certificateHold")
    ca.revoke(leaves[2][1], extra=["-crl_compromise", "20250101000000Z"])
    ca.revoke(new[0][1], reason="cessationOfOperation")
    summary_of(st.ok("import-index", "own1", ca.index), added=2, revoked=3, unchanged=5,
               commits=1)
    assert st.counter() == c1 + 1
    assert st.list_map("own1") == expected_from_index(ca.index)

    # A revocation made in the store stays when the index still says V.
    v = leaves[3][0]
    summary_of(st.ok("revoke", "own1", v, "--reason", "keyCompromise", "--time", T1), revoked=1,
               commits=1)
    summary_of(st.ok("import-index", "own1", ca.index), unchanged=9, kept_revoked=1, commits=0)
    assert st.status("own1", v) == f"{norm_serial(v)} revoked keyCompromise {T1}"

    # --certs on a later run learns every notBefore (an update, not a change
    # of status), and a run after that is a no-op again.
    out = st.ok("import-index", "own1", ca.index, "--certs", ca.dir / "newcerts")
    summary_of(out, updated=10, kept_revoked=1, commits=1)
    assert "issuance times: read=10 unreadable_or_missing=0" in out
    summary_of(st.ok("import-index", "own1", ca.index, "--certs", ca.dir / "newcerts"),
               unchanged=9, kept_revoked=1, commits=0)
    st.check_consistent("own1")


# ---- issuance window -------------------------------------------------------

def not_before(path):
    c = x509.load_pem_x509_certificate(Path(path).read_bytes())
    return c.not_valid_before.replace(tzinfo=datetime.timezone.utc)


def test_revoke_by_issuance_window(tmp_path):
    ca, st = own_ca(tmp_path)
    dates = ["20250101000000Z", "20250501000000Z", "20250615120000Z", "20250831235959Z",
             "20250901000000Z", "20251001000000Z", "20250701000000Z", "20250702000000Z"]
    leaves = [ca.issue(f"d{i}", startdate=d) for i, d in enumerate(dates)]
    # In the window but already revoked: stays as it is.
    ca.revoke(leaves[6][1], reason="superseded")
    # In the window, but its file is gone: issuance time unknown.
    lost = leaves[7][0]
    (ca.dir / "newcerts" / f"{lost}.pem").unlink()
    out = st.ok("import-index", "own1", ca.index, "--certs", ca.dir / "newcerts")
    assert "issuance times: read=8 unreadable_or_missing=1" in out

    after = datetime.datetime(2025, 5, 1, tzinfo=datetime.timezone.utc)
    before = datetime.datetime(2025, 9, 1, tzinfo=datetime.timezone.utc)
    before_status = st.list_map("own1")
    out = st.ok("revoke", "own1", "--issued-after", "2025-05-01T00:00:00Z", "--issued-before",
                "250901000000Z", "--reason", "cessationOfOperation", "--time", T1)
    in_window = {norm_serial(s) for s, p in leaves if s != lost and after <= not_before(p) < before}
    assert in_window == {norm_serial(leaves[i][0]) for i in (1, 2, 3, 6)}  # premise
    summary_of(out, revoked=3, unchanged=1, skipped_unknown_issuance=1, commits=1)
    for s, rest in st.list_map("own1").items():
        if s in in_window and s != norm_serial(leaves[6][0]):
            assert rest == f"revoked cessationOfOperation {T1}", s
        else:
            assert rest == before_status[s], s
    st.check_consistent("own1")

    # Open-ended window: everything issued from 2025-09-01 on, but the OCSP
    # signer issued today, which a bulk revocation leaves out unless told.
    out = st.ok("revoke", "own1", "--issued-after", "2025-09-01T00:00:00Z", "--reason",
                "keyCompromise", "--time", T2)
    summary_of(out, revoked=2, skipped_unknown_issuance=1, left_out=1, commits=1)
    ocsp = norm_serial(ca.index_rows()[0]["serial"])
    assert st.status("own1", ocsp) == f"{ocsp} good"
    summary_of(st.ok("revoke", "own1", "--issued-after", "2025-09-01T00:00:00Z", "--reason",
                     "keyCompromise", "--time", T2, "--include-signers"),
               revoked=1, unchanged=2, skipped_unknown_issuance=1, commits=1)
    for s in (norm_serial(leaves[4][0]), norm_serial(leaves[5][0]), ocsp):
        assert st.status("own1", s) == f"{s} revoked keyCompromise {T2}"
    assert st.status("own1", lost) == f"{norm_serial(lost)} good"
    assert st.status("own1", leaves[0][0]) == f"{norm_serial(leaves[0][0])} good"
    # An empty window revokes nothing.
    summary_of(st.ok("revoke", "own1", "--issued-after", "2024-01-01T00:00:00Z",
                     "--issued-before", "2024-06-01T00:00:00Z"),
               skipped_unknown_issuance=1, commits=0)


# ---- add -------------------------------------------------------------------

def forged_cert(ca, path):
    """A certificate naming ca's subject as issuer (no AKI) but signed by
    another key: only the signature check can refuse it."""
    cacert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    c = (x509.CertificateBuilder().subject_name(x509.Name.from_rfc4514_string("CN=forged"))
         .issuer_name(cacert.subject).public_key(key.public_key()).serial_number(0x7EADBEEF)
         .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
         .sign(key, hashes.SHA256()))
    Path(path).write_bytes(c.public_bytes(serialization.Encoding.PEM))
    return path


def test_add_pem_and_der(pkienv, store, tmp_path):
    ca = pkienv["rsa1"]
    serials = sorted(ca.leaves)[:4]
    pem1 = ca.leaves[serials[0]]
    der = to_der(ca.leaves[serials[1]], tmp_path / "leaf.der")
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(ca.leaves[serials[2]].read_text() + ca.leaves[serials[3]].read_text())
    out = store.ok("add", "rsa1", pem1, der, bundle)
    assert out.startswith("add rsa1 certificates=4:")
    summary_of(out, added=4, commits=1)
    for s in serials:
        assert store.status("rsa1", s) == f"{norm_serial(s)} good"
    assert len(store.list("rsa1")) == 4
    summary_of(store.ok("add", "rsa1", der), unchanged=1, commits=0)
    # add records the issuance time: a window covering today finds them.
    out = store.ok("revoke", "rsa1", "--issued-after", "2020-01-01T00:00:00Z", "--reason",
                   "superseded", "--time", T1)
    summary_of(out, revoked=4, commits=1)
    store.check_consistent("rsa1")


def test_add_and_import_serial_with_top_bit_set(tmp_path):
    """A serial whose first octet is 0x80 or more is positive (DER adds a 0x00
    octet); `add` once refused it as negative."""
    ca, st = own_ca(tmp_path)
    (ca.dir / "serial").write_text("8A0102030405\n")
    serial, pem = ca.issue("top.example")
    assert serial == "8A0102030405"
    summary_of(st.ok("add", "own1", pem), added=1, commits=1)
    assert st.status("own1", serial) == "8A0102030405 good"
    ca.revoke(pem, "keyCompromise")
    # The index also holds the CA's OCSP signer (serial 1000), new to the store.
    summary_of(st.ok("import-index", "own1", ca.index, "--certs", ca.dir / "newcerts"),
               added=1, revoked=1, commits=1)
    assert st.status("own1", serial).startswith("8A0102030405 revoked keyCompromise")


@pytest.mark.parametrize("kind", ["other-ca", "forged", "not-a-cert", "ec-ca-der"])
def test_add_refuses_foreign_certificate(pkienv, store, tmp_path, kind):
    rsa, ecca = pkienv["rsa1"], pkienv["ec1"]
    good = rsa.leaves[sorted(rsa.leaves)[0]]
    if kind == "other-ca":
        bad = ecca.leaves[sorted(ecca.leaves)[0]]
    elif kind == "forged":
        bad = forged_cert(rsa, tmp_path / "forged.pem")
    elif kind == "ec-ca-der":
        bad = to_der(ecca.leaves[sorted(ecca.leaves)[1]], tmp_path / "other.der")
    else:
        bad = tmp_path / "junk.pem"
        bad.write_text("this is not a certificate\n")
    store.ok("add", "rsa1", rsa.leaves[sorted(rsa.leaves)[5]])
    snap = store.snapshot(["rsa1", "ec1"])
    line = expect_error(store, "add", "rsa1", good, bad, good, exit_codes=(1,),
                        contains=str(bad))
    assert "nothing added" in line
    assert store.snapshot(["rsa1", "ec1"]) == snap
    assert store.status("rsa1", sorted(rsa.leaves)[0]).endswith(" unknown")


# ---- revoke rules ------------------------------------------------------------

@pytest.fixture
def synth(store, tmp_path):
    """rsa1 holds serials 0A..1D (good), imported from a synthetic index."""
    serials = ["%02X" % i for i in range(0x0A, 0x1E)]
    store.ok("import-index", "rsa1", small_index(tmp_path / "synth.txt", serials))
    return store


def test_revoked_stays_revoked(synth):
    st = synth
    summary_of(st.ok("revoke", "rsa1", "0A", "--reason", "superseded", "--time", T1), revoked=1,
               commits=1)
    c = st.counter()
    for reason in ("cessationOfOperation", "unspecified", "certificateHold", "cACompromise",
                   "superseded"):
        summary_of(st.ok("revoke", "rsa1", "0A", "--reason", reason, "--time", T2),
                   unchanged=1, commits=0)
    summary_of(st.ok("revoke", "rsa1", "0a", "--time", T2), unchanged=1, commits=0)
    assert st.status("rsa1", "0A") == f"0A revoked superseded {T1}"
    assert st.counter() == c
    # Release works only on a hold.
    expect_error(st, "release", "rsa1", "0A", exit_codes=(1,), contains="certificateHold")
    expect_error(st, "release", "rsa1", "0B", exit_codes=(1,), contains="certificateHold")
    expect_error(st, "release", "rsa1", "7777", exit_codes=(1,), contains="not in the store")
    assert st.status("rsa1", "0A") == f"0A revoked superseded {T1}"
    assert st.status("rsa1", "0B") == "0B good"
    assert st.counter() == c


@pytest.mark.parametrize("reason", [None] + [r for r in RFC5280_REASONS
                                             if r not in ("keyCompromise", "certificateHold")])
def test_any_reason_raised_to_keycompromise_keeps_time(synth, reason):
    st = synth
    args = ["--reason", reason] if reason else []
    st.ok("revoke", "rsa1", "0C", *args, "--time", T1)
    shown = reason or "unspecified"
    assert st.status("rsa1", "0C") == f"0C revoked {shown} {T1}"
    out = st.ok("revoke", "rsa1", "0C", "--reason", "keyCompromise", "--time", T2,
                "--invalidity-date", "2025-12-24T10:00:00Z")
    summary_of(out, revoked=1, commits=1)
    assert st.status("rsa1", "0C") == \
        f"0C revoked keyCompromise {T1} invalidity=2025-12-24T10:00:00Z"
    summary_of(st.ok("revoke", "rsa1", "0C", "--reason", "keyCompromise", "--time", T3),
               unchanged=1, commits=0)
    st.check_consistent("rsa1")


def test_hold_replace_and_release(synth):
    st = synth
    st.ok("revoke", "rsa1", "0D", "--reason", "certificateHold", "--time", T1)
    st.ok("revoke", "rsa1", "0E", "--reason", "certificateHold", "--time", T1)
    st.ok("revoke", "rsa1", "0F", "--reason", "certificateHold", "--time", T1)
    assert st.stats()["rsa1"]["On hold"] == "3"
    # A hold again changes nothing.
    summary_of(st.ok("revoke", "rsa1", "0D", "--reason", "certificateHold", "--time", T2),
               unchanged=1, commits=0)
    assert st.status("rsa1", "0D") == f"0D revoked certificateHold {T1}"
    # A hold is replaced by a final reason, with the new time.
    summary_of(st.ok("revoke", "rsa1", "0D", "--reason", "superseded", "--time", T2), revoked=1)
    assert st.status("rsa1", "0D") == f"0D revoked superseded {T2}"
    summary_of(st.ok("revoke", "rsa1", "0E", "--reason", "keyCompromise", "--time", T3),
               revoked=1)
    assert st.status("rsa1", "0E") == f"0E revoked keyCompromise {T3}"
    # Release lifts the hold: good again, and gone from the revoked list.
    assert st.ok("release", "rsa1", "0f").startswith("OK: released")
    assert st.status("rsa1", "0F") == "0F good"
    assert "0F" not in st.list_map("rsa1", revoked=True)
    expect_error(st, "release", "rsa1", "0F", exit_codes=(1,))
    assert st.stats()["rsa1"]["On hold"] == "0"
    # Once released it can be revoked again.
    st.ok("revoke", "rsa1", "0F", "--reason", "privilegeWithdrawn", "--time", T3)
    assert st.status("rsa1", "0F") == f"0F revoked privilegeWithdrawn {T3}"
    st.check_consistent("rsa1")


def test_revoke_unknown_serial_and_invalidity(synth):
    st = synth
    out = st.ok("revoke", "rsa1", "00:AB:CD:EF", "--reason", "keyCompromise", "--time", T1,
                "--invalidity-date", "251231000000Z")
    summary_of(out, revoked=1, not_in_store=1, commits=1)
    assert st.status("rsa1", "ABCDEF") == \
        f"ABCDEF revoked keyCompromise {T1} invalidity=2025-12-31T00:00:00Z not_issued"
    # Seen as issued later (index V): stays revoked, no longer flagged.
    small_index(st.config.parent / "later.txt", ["ABCDEF"])
    summary_of(st.ok("import-index", "rsa1", st.config.parent / "later.txt"), updated=1,
               kept_revoked=1, commits=1)
    assert st.status("rsa1", "ABCDEF") == \
        f"ABCDEF revoked keyCompromise {T1} invalidity=2025-12-31T00:00:00Z"
    st.check_consistent("rsa1")


def test_revoke_twice_keeps_not_issued(synth, tmp_path):
    """Revoking a serial the store knows only from a revocation again must not
    claim it was issued: the second run changes nothing (re-running a bulk
    revoke, e.g. after a crash, is a no-op)."""
    st = synth
    st.ok("revoke", "rsa1", "DEADBEEF", "--time", T1)
    want = f"DEADBEEF revoked unspecified {T1} not_issued"
    assert st.status("rsa1", "DEADBEEF") == want
    c = st.counter()
    out = st.ok("revoke", "rsa1", "DEADBEEF", "--time", T2)
    assert st.status("rsa1", "DEADBEEF") == want, \
        "a second revoke of a not-issued serial dropped the not_issued flag (rules.c rules_merge())"
    summary_of(out, unchanged=1, commits=0)
    assert st.counter() == c
    f = tmp_path / "list.txt"
    f.write_text("DEADBEEF\n")
    summary_of(st.ok("revoke", "rsa1", "--serials", f, "--reason", "superseded"), unchanged=1,
               commits=0)
    assert st.status("rsa1", "DEADBEEF") == want


def test_release_never_makes_a_not_issued_serial_good(synth):
    """A serial never seen as issued, put on hold by serial and then released,
    must not become good: a serial the CA's records lack is never good
    (design: Baseline Requirements 4.9.9). Either release refuses it, or the
    serial is unknown again."""
    st = synth
    st.ok("revoke", "rsa1", "BADC0DE", "--reason", "certificateHold", "--time", T1)
    assert st.status("rsa1", "BADC0DE") == f"0BADC0DE revoked certificateHold {T1} not_issued"
    r = st.run("release", "rsa1", "BADC0DE", check=False)
    status = st.status("rsa1", "BADC0DE")
    assert status != "0BADC0DE good", (
        "release of a hold on a serial never seen as issued left it good (write.c release_fn "
        f"keeps the record, status good, flag not_issued; the responder answers good); "
        f"release exited {r.returncode}")
    if r.returncode != 0:
        assert len(r.stderr.splitlines()) == 1
        assert status == f"0BADC0DE revoked certificateHold {T1} not_issued"
    else:
        assert status == "0BADC0DE unknown"
    st.check_consistent("rsa1")


def test_revoke_serials_file(synth, tmp_path):
    st = synth
    f = tmp_path / "serials.txt"
    f.write_text("# handed over by the investigation\n"
                 "0a\n"
                 "\n"
                 "  00:0B  # leading zeros and colons\n"
                 "0C\r\n"
                 "\t0d\n"
                 "0A\n"                     # twice in the list
                 "DEADBEEF\n"               # not in the store
                 "0102030405060708090A0B0C0D0E0F1011121314\n")
    st.ok("revoke", "rsa1", "0D", "--reason", "superseded", "--time", T1)
    out = st.ok("revoke", "rsa1", "--serials", f, "--reason", "affiliationChanged", "--time", T2)
    s = summary_of(out, revoked=5, unchanged=2, not_in_store=2, commits=1)
    assert "serials=7" in out, out
    for x in ("0A", "0B", "0C"):
        assert st.status("rsa1", x) == f"{x} revoked affiliationChanged {T2}"
    assert st.status("rsa1", "0D") == f"0D revoked superseded {T1}"
    assert st.status("rsa1", "DEADBEEF") == f"DEADBEEF revoked affiliationChanged {T2} not_issued"
    big = "0102030405060708090A0B0C0D0E0F1011121314"
    assert st.status("rsa1", big) == f"{big} revoked affiliationChanged {T2} not_issued"
    assert st.status("rsa1", "0E") == "0E good"
    assert s["commits"] == 1
    st.check_consistent("rsa1")


def test_point_index_in_stats(store):
    """stats shows the point index complete, with one segment for a small store."""
    assert store.stats()["store"]["Point index"] == "complete, 1 segment"


def test_freeze_thaw_in_stats(store):
    st = store
    assert st.stats()["rsa1"]["Frozen"] == "no"
    out = st.ok("freeze", "rsa1")
    assert out.startswith("OK: CA rsa1 frozen since ")
    fr = st.stats()["rsa1"]["Frozen"]
    assert fr.startswith("yes, since 20"), fr
    assert st.stats()["ec1"]["Frozen"] == "no"
    c = st.counter()
    st.ok("freeze", "rsa1")  # already frozen: keeps the first time, no commit
    assert st.stats()["rsa1"]["Frozen"] == fr
    assert st.counter() == c
    assert st.ok("thaw", "rsa1").startswith("OK: CA rsa1 thawed")
    assert st.stats()["rsa1"]["Frozen"] == "no"
    assert st.counter() == c + 1
    assert [a["action"] for a in st.audit()] == ["freeze", "thaw"]


def test_audit_lines(store, tmp_path, pkienv):
    st = store
    me = whoami()
    idx = small_index(tmp_path / "a.txt", ["01", "02", "03"])
    st.ok("import-index", "rsa1", idx)
    st.ok("import-index", "rsa1", idx)  # nothing changed: no record
    st.ok("revoke", "rsa1", "02", "--reason", "keyCompromise", "--time", T1)
    st.ok("revoke", "ec1", "99", "--time", T1)
    st.ok("revoke", "rsa1", "03", "--reason", "certificateHold", "--time", T1)
    st.ok("release", "rsa1", "03")
    st.ok("freeze", "ec1")
    st.ok("thaw", "ec1")
    st.ok("revoke", "rsa1", "--issued-after", "2000-01-01T00:00:00Z")  # matches nothing
    st.ok("add", "rsa1", pkienv["rsa1"].leaves[sorted(pkienv["rsa1"].leaves)[0]])
    recs = st.audit()
    assert [(r["ca"], r["action"], r["count"]) for r in recs] == [
        ("rsa1", "add", 3), ("rsa1", "revoke", 1), ("ec1", "revoke", 1), ("rsa1", "revoke", 1),
        ("rsa1", "release", 1), ("ec1", "freeze", 0), ("ec1", "thaw", 0), ("rsa1", "add", 1)]
    assert [r["counter"] for r in recs] == list(range(1, 9))
    assert st.counter() == 8
    for r in recs:
        assert r["user"] == me
        assert r["time"].startswith("20") and r["time"].endswith("Z")
    assert "import-index rsa1" in recs[0]["command"] and str(idx) in recs[0]["command"]
    assert "revoke rsa1 02 --reason keyCompromise" in recs[1]["command"]
    assert "release rsa1 03" in recs[4]["command"]
    assert [r["counter"] for r in st.audit("ec1")] == [3, 6, 7]


def test_list_in_integer_serial_order(store, tmp_path):
    st = store
    serials = ["01", "7F", "80", "FF", "0100", "0101", "FFFF", "010000", "1000",
               "0FFFFFFF", "10000000", "7FFFFFFFFFFFFFFFFFFF",
               "0102030405060708090A0B0C0D0E0F1011121314", "00", "02"]
    good = serials[::2]
    rev = serials[1::2]
    st.ok("import-index", "rsa1", small_index(tmp_path / "o.txt", good))
    f = tmp_path / "rev.txt"
    f.write_text("\n".join(reversed(rev)) + "\n")
    st.ok("revoke", "rsa1", "--serials", f, "--time", T1)
    want = sorted({norm_serial(s) for s in serials}, key=lambda s: int(s, 16))
    full = st.check_consistent("rsa1")
    assert [ln.split()[0] for ln in full] == want
    want_rev = sorted({norm_serial(s) for s in rev}, key=lambda s: int(s, 16))
    assert [ln.split()[0] for ln in st.list("rsa1", revoked=True)] == want_rev
    assert st.status("rsa1", "0000") == f"00 revoked unspecified {T1} not_issued"
    assert st.status("rsa1", "00:02") == "02 good"


# ---- bad input: one line on stderr, non-zero exit, nothing changed --------

class Populated:
    """One store shared by the bad-input tests: since none of them may change
    it, each compares the store after its command with the state before."""

    def __init__(self, st):
        self.st = st
        self.snap = st.snapshot(["rsa1", "ec1"])

    def unchanged(self):
        now = self.st.snapshot(["rsa1", "ec1"])
        before, self.snap = self.snap, now  # a failure here must not cascade
        assert now == before, "the store changed"


@pytest.fixture(scope="module")
def populated(pkienv, tmp_path_factory):
    d = tmp_path_factory.mktemp("populated")
    cfg = write_config(d / "vigil.conf", d / "store", list(pkienv.values()))
    st = Store(cfg)
    st.ok("init")
    st.ok("import-index", "rsa1", pkienv["rsa1"].index)
    st.ok("revoke", "ec1", "ABCD", "--reason", "keyCompromise", "--time", T1)
    st.ok("freeze", "ec1")
    return Populated(st)


def bad_cases(ca_serial):
    s = ca_serial
    return [
        # unknown CA
        (["status", "nope", s], "unknown CA"),
        (["list", "nope"], "unknown CA"),
        (["revoke", "nope", s], "unknown CA"),
        (["revoke", "nope", "--issued-after", T1], "unknown CA"),
        (["release", "nope", s], "unknown CA"),
        (["freeze", "nope"], "unknown CA"),
        (["thaw", "nope"], "unknown CA"),
        (["import-index", "nope", "{index}"], "unknown CA"),
        (["add", "nope", "{leaf}"], "unknown CA"),
        (["audit", "--ca", "nope"], "unknown CA"),
        # malformed serial
        (["status", "rsa1", "XYZ"], "malformed serial"),
        (["status", "rsa1", "12G4"], "malformed serial"),
        (["status", "rsa1", ""], "malformed serial"),
        (["status", "rsa1", "-1"], None),
        (["revoke", "rsa1", "0x10"], "malformed serial"),
        (["revoke", "rsa1", "1" * 41], "malformed serial"),
        (["revoke", "rsa1", "10 20"], "malformed serial"),
        (["release", "rsa1", "zz"], "malformed serial"),
        # unknown reason
        (["revoke", "rsa1", s, "--reason", "stolen"], "unknown reason"),
        (["revoke", "rsa1", s, "--reason", "removeFromCRL"], "removeFromCRL"),
        (["revoke", "rsa1", s, "--reason", ""], "unknown reason"),
        (["revoke", "rsa1", "--issued-after", T1, "--reason", "7"], "unknown reason"),
        # bad time
        (["revoke", "rsa1", s, "--time", "yesterday"], "bad time"),
        (["revoke", "rsa1", s, "--time", "2026-02-30T00:00:00Z"], "bad time"),
        (["revoke", "rsa1", s, "--time", "2026-11-27T10:00:00+01:00"], "bad time"),
        (["revoke", "rsa1", s, "--time", "261327000000Z"], "bad time"),
        (["revoke", "rsa1", s, "--invalidity-date", "2026-11-27"], "bad time"),
        (["revoke", "rsa1", "--issued-after", "2026-11-27T25:00:00Z"], "bad time"),
        (["revoke", "rsa1", "--issued-after", T1, "--issued-before", "soon"], "bad time"),
        # a revocation in the future, an invalidity date after the revocation
        (["revoke", "rsa1", s, "--time", "2099-01-01T00:00:00Z"], "in the future"),
        (["revoke", "rsa1", "--issued-after", T1, "--time", "2099-01-01T00:00:00Z"],
         "in the future"),
        (["revoke", "rsa1", s, "--invalidity-date", "2099-01-01T00:00:00Z"], "later than"),
        (["revoke", "rsa1", s, "--time", T1, "--invalidity-date", T2], "later than"),
        # missing or unreadable files
        (["import-index", "rsa1", "{missing}"], "No such file"),
        (["import-index", "rsa1", "{dir}"], None),
        (["import-index", "rsa1", "{index}", "--certs", "{missing}"], "--certs"),
        (["revoke", "rsa1", "--serials", "{missing}"], "No such file"),
        (["revoke", "rsa1", "--serials", "{dir}"], None),
        (["add", "rsa1", "{missing}"], "No such file"),
        (["add", "rsa1", "{leaf}", "{dir}"], None),
        (["revoke", "rsa1", "--issued-after", T2, "--issued-before", T1], "later than"),
        # usage errors: exit 2
        (["revoke", "rsa1", s, "--bogus"], "unknown option", 2),
        (["revoke", "rsa1", s, "--reason"], None, 2),
        (["revoke", "rsa1", s, "--serials", "x.txt"], "exactly one", 2),
        (["revoke", "rsa1", "--issued-before", T1], None, 2),
        (["revoke", "rsa1"], None, 2),
        (["import-index", "rsa1"], "usage", 2),
        (["import-index", "rsa1", "{index}", "--bogus"], "unknown option", 2),
        (["list", "rsa1", "--all"], "usage", 2),
        (["status", "rsa1"], "usage", 2),
        (["release", "rsa1"], "usage", 2),
        (["freeze"], "usage", 2),
        (["frobnicate"], "unknown command", 2),
        (["-x", "stats"], "unknown option", 2),
    ]


@pytest.mark.parametrize("case", range(len(bad_cases("1"))))
def test_bad_input_changes_nothing(populated, pkienv, tmp_path, case):
    st = populated.st
    ca = pkienv["rsa1"]
    serial = norm_serial(ca.index_rows()[-2]["serial"])  # a good one (valid-2)
    assert st.status("rsa1", serial) == f"{serial} good"
    args, contains, *code = bad_cases(serial)[case]
    (tmp_path / "adir").mkdir(exist_ok=True)
    subst = {"{index}": str(ca.index), "{leaf}": str(ca.leaves[serial]),
             "{missing}": str(tmp_path / "no-such-file"), "{dir}": str(tmp_path / "adir")}
    args = [subst.get(a, a) for a in args]
    line = expect_error(st, *args, contains=contains, exit_codes=tuple(code or [1]))
    if "{missing}" in bad_cases(serial)[case][0] or "{dir}" in bad_cases(serial)[case][0]:
        assert any(p in line for p in (subst["{missing}"], subst["{dir}"])), \
            f"message does not name the file: {line}"
    populated.unchanged()


def test_unreadable_file_changes_nothing(populated, pkienv, tmp_path):
    """A file that opens but cannot be read. Mode 000 stops everyone but
    root; /proc/self/mem opens for root too and fails on the first read."""
    st = populated.st
    if os.geteuid() == 0:
        f = Path("/proc/self/mem")
    else:
        f = tmp_path / "secret.txt"
        f.write_text(pkienv["rsa1"].index.read_text())
        f.chmod(0)
    expect_error(st, "import-index", "ec1", f, exit_codes=(1,),
                 contains=[str(f), "nothing imported"])
    expect_error(st, "revoke", "ec1", "--serials", f, exit_codes=(1,),
                 contains=[str(f), "nothing revoked"])
    expect_error(st, "add", "ec1", f, exit_codes=(1,), contains=[str(f), "nothing added"])
    populated.unchanged()


BAD_INDEX_LINES = [
    ("fields", "V\t301231235959Z\t\t1234\tunknown"),
    ("fields7", "V\t301231235959Z\t\t1234\tunknown\t/CN=x\textra"),
    ("status", "X\t301231235959Z\t\t1234\tunknown\t/CN=x"),
    ("expiry", "V\t30123123595Z\t\t1234\tunknown\t/CN=x"),
    ("serial", "V\t301231235959Z\t\t12G4\tunknown\t/CN=x"),
    ("serial-empty", "V\t301231235959Z\t\t\tunknown\t/CN=x"),
    ("serial-long", "V\t301231235959Z\t\t" + "AB" * 21 + "\tunknown\t/CN=x"),
    ("reason", "R\t301231235959Z\t250101000000Z,stolen\t1234\tunknown\t/CN=x"),
    ("revtime", "R\t301231235959Z\t251301000000Z\t1234\tunknown\t/CN=x"),
    ("no-revtime", "R\t301231235959Z\t\t1234\tunknown\t/CN=x"),
    ("V-with-rev", "V\t301231235959Z\t250101000000Z\t1234\tunknown\t/CN=x"),
    ("keytime-no-time", "R\t301231235959Z\t250101000000Z,keyTime\t1234\tunknown\t/CN=x"),
    ("keytime-bad-time", "R\t301231235959Z\t250101000000Z,keyTime,soon\t1234\tunknown\t/CN=x"),
    ("hold-no-oid", "R\t301231235959Z\t250101000000Z,holdInstruction\t1234\tunknown\t/CN=x"),
    ("reason-extra", "R\t301231235959Z\t250101000000Z,superseded,x\t1234\tunknown\t/CN=x"),
    ("four-parts", "R\t301231235959Z\t250101000000Z,keyTime,250101000000Z,x\t1234\tunknown\t/CN=x"),
    ("spaces", "V 301231235959Z  1234 unknown /CN=x"),
]


@pytest.mark.parametrize("name,bad", BAD_INDEX_LINES, ids=[b[0] for b in BAD_INDEX_LINES])
def test_malformed_index_line_imports_nothing(populated, tmp_path, name, bad):
    st = populated.st
    good = [f"V\t301231235959Z\t\t{s}\tunknown\t/CN=g{s}" for s in ("A1", "A2", "A3", "A4")]
    lines = good[:3] + [bad] + good[3:]
    idx = tmp_path / "index.txt"
    idx.write_text("\n".join(lines) + "\n")
    line = expect_error(st, "import-index", "ec1", idx, exit_codes=(1,))
    assert f"{idx}:4:" in line, f"no line number in {line!r}"
    assert "nothing imported" in line
    assert st.list("ec1") == populated.snap["lists"]["ec1"]
    populated.unchanged()


def test_malformed_serials_file_revokes_nothing(populated, tmp_path):
    st = populated.st
    f = tmp_path / "s.txt"
    f.write_text("# list\n0A\n0B\nnot-a-serial\n0C\n")
    line = expect_error(st, "revoke", "rsa1", "--serials", f, exit_codes=(1,))
    assert f"{f}:4:" in line and "nothing revoked" in line, line
    populated.unchanged()


def test_store_not_initialised(pkienv, tmp_path):
    cfg = write_config(tmp_path / "vigil.conf", tmp_path / "nostore", list(pkienv.values()))
    st = Store(cfg)
    ca = pkienv["rsa1"]
    for args in (["status", "rsa1", "1000"], ["list", "rsa1"], ["stats"], ["audit"],
                 ["revoke", "rsa1", "1000"], ["import-index", "rsa1", ca.index],
                 ["add", "rsa1", ca.leaves[sorted(ca.leaves)[0]]], ["freeze", "rsa1"],
                 ["release", "rsa1", "1000"], ["revoke", "rsa1", "--issued-after", T1]):
        expect_error(st, *args, exit_codes=(1,), contains="not initialised")
        assert not (tmp_path / "nostore").exists(), f"{args} created the store"


BAD_CONFIGS = [
    ("unknown-key-store", lambda c: c.replace("[store]\n", "[store]\nsize = 10\n"), "unknown key"),
    ("unknown-key-ca", lambda c: c.replace("[ca rsa1]\n", "[ca rsa1]\ncolour = red\n"),
     "unknown key"),
    ("unknown-section", lambda c: c + "\n[storage]\npath = x\n", "unknown section"),
    ("missing-ca-cert", lambda c: c.replace("rsa1/ca.pem", "rsa1/gone.pem"), "gone.pem"),
    ("no-ca-cert-key", lambda c: "\n".join(ln for ln in c.splitlines()
                                           if not ln.startswith("cert = ") or "ec1" not in ln),
     "cert is required"),
]


@pytest.mark.parametrize("name,edit,contains", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config_changes_nothing(populated, tmp_path, name, edit, contains):
    st = populated.st
    text = st.config.read_text()
    bad = tmp_path / "bad.conf"
    bad.write_text(edit(text))
    assert bad.read_text() != text
    for args in (["revoke", "rsa1", "ABCDEF"], ["revoke", "ec1", "ABCDEF"], ["thaw", "ec1"],
                 ["init"], ["status", "rsa1", "01"], ["stats"]):
        line = expect_error(st, *args, config=bad, exit_codes=(1,), contains=contains)
        assert "config" in line
    populated.unchanged()
    expect_error(st, "stats", config=tmp_path / "missing.conf", exit_codes=(1,),
                 contains="missing.conf")


def test_init_again_changes_nothing(populated):
    st = populated.st
    out = st.ok("init")
    assert "already initialised" in out, out
    populated.unchanged()


def test_index_with_crlf_lines(pkienv, store, tmp_path):
    ca = pkienv["ec1"]
    crlf = tmp_path / "index-crlf.txt"
    crlf.write_bytes(ca.index.read_bytes().replace(b"\n", b"\r\n"))
    store.ok("import-index", "ec1", crlf)
    assert store.list_map("ec1") == expected_from_index(ca.index)


def test_malformed_line_in_large_index(populated, tmp_path):
    """A large index shows progress while read; a malformed line near its end
    still imports nothing, gives the one error line (with -q, the only line;
    on a terminal, on a line of its own after the progress line)."""
    import random
    import pty
    import subprocess
    from store_util import store_cmd, synth_index
    st = populated.st
    text, _ = synth_index(random.Random(7), 150_000)
    idx = tmp_path / "large-index.txt"
    idx.write_text(text + "V\t301231235959Z\t\tZZ\tunknown\t/CN=bad\n")
    line = expect_error(st, "-q", "import-index", "ec1", idx, exit_codes=(1,))
    assert f"{idx}:150001:" in line and "nothing imported" in line, line
    populated.unchanged()
    master, slave = pty.openpty()
    p = subprocess.run(store_cmd(st.config, "import-index", "ec1", idx, quiet=False),
                       stdout=subprocess.PIPE, stderr=slave, timeout=120)
    os.close(slave)
    out = b""
    while True:
        try:
            d = os.read(master, 65536)
        except OSError:
            break
        if not d:
            break
        out += d
    os.close(master)
    assert p.returncode == 1 and p.stdout == b""
    lines = [ln.split(b"\r")[-1] for ln in out.split(b"\r\n") if ln]
    assert lines[-1].decode().startswith(f"vigil-store: {idx}:150001:"), out
    assert all(b"vigil-store: reading " in ln for ln in lines[:-1]), out
    populated.unchanged()
