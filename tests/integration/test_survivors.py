# SPDX-License-Identifier: Apache-2.0
"""Tests for what an outside mutation run found untested or tested once only
(issue 18); tests/mutation/mutants.py holds the source edits each test kills.

The OCSP answers are read with python3-cryptography and `openssl ocsp`, the
CRLs with python3-cryptography and `openssl verify`; requests that no client
library writes (a CertID naming one CA's name with another CA's key, a
critical extension inside one certificate's entry) are made by editing the
DER of a python3-cryptography request."""
import datetime
import hashlib
import os
import re
import signal
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

import pki
from conftest import Runner, binary, der_tlv, run, write_config
from crlgen_util import Env as CrlEnv
from crlgen_util import entries, openssl_crl_verify, openssl_verify_leaf, write_index
from responder_util import (EXT_REVOKE_OID, Responder, check_response, fake_cert, http_date,
                            load_cert, make_request, openssl_ocsp, serving, status_of)

GOOD, REVOKED, UNKNOWN = (ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED,
                          ocsp.OCSPCertStatus.UNKNOWN)


# ---- DER by hand ---------------------------------------------------------------------------

def der_read(buf, off=0):
    """(tag, start of contents, end) of the TLV at |off|."""
    tag, n = buf[off], buf[off + 1]
    at = off + 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(buf[at:at + k], "big")
        at += k
    return tag, at, at + n


def der_children(buf, off=0):
    """The TLVs inside the constructed TLV at |off|, as byte strings."""
    _, at, end = der_read(buf, off)
    out = []
    while at < end:
        _, c, e = der_read(buf, at)
        out.append(buf[at:e])
        at = e
    return out


def certid_der(cert, issuer, alg=None):
    """The CertID python3-cryptography writes for |cert| of |issuer|."""
    req = make_request(cert, issuer, alg=alg)
    tbs = der_children(req)[0]
    request_list = der_children(tbs)[0]
    request = der_children(request_list)[0]
    return der_children(request)[0]


def extension(oid_der, critical, value):
    body = oid_der + (der_tlv(0x01, b"\xff") if critical else b"") + der_tlv(0x04, value)
    return der_tlv(0x30, body)


def ocsp_request(entries_, request_exts=None):
    """An OCSPRequest of (CertID DER, [Extension DER]) entries: Request ::=
    SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT
    Extensions OPTIONAL } (RFC 6960 §4.1.1)."""
    reqs = b""
    for cid, exts in entries_:
        body = cid
        if exts:
            body += der_tlv(0xA0, der_tlv(0x30, b"".join(exts)))
        reqs += der_tlv(0x30, body)
    tbs = der_tlv(0x30, reqs)
    if request_exts:
        tbs += der_tlv(0xA2, der_tlv(0x30, b"".join(request_exts)))
    return der_tlv(0x30, der_tlv(0x30, tbs))


OTHER_OID = bytes.fromhex("06092b0601050507300163")    # id-pkix-ocsp 99: nobody's
LOCATOR_OID = bytes.fromhex("06092b0601050507300107")  # id-pkix-ocsp-service-locator


def issuer_hashes(ca_cert, alg=hashlib.sha1):
    """(issuerNameHash, issuerKeyHash) of |ca_cert| (RFC 6960 §4.1.1)."""
    name = ca_cert.subject.public_bytes()
    spki = ca_cert.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    # subjectPublicKey: the BIT STRING inside SubjectPublicKeyInfo, less its unused-bits octet.
    _, at, end = der_read(der_children(spki)[1])
    key = der_children(spki)[1][at + 1:end]
    return alg(name).digest(), alg(key).digest()


# ---- One responder for the OCSP tests ------------------------------------------------------

class Ctx:
    pass


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Two served CAs with the same name and different keys (twina, twinb),
    an unserved third of that name (the impostor), and a frozen CA with
    not_issued = revoked and the longest ocsp_validity, 10d; one responder
    with two workers."""
    e = Ctx()
    root = tmp_path_factory.mktemp("surv")
    e.root = root
    # pki.CA names the subject after its second argument: "Vigil Test twin".
    e.a = pki.CA(root / "a", "twin", "ec")
    e.a.name = "twina"
    e.b = pki.CA(root / "b", "twin", "ec")
    e.b.name = "twinb"
    e.imp = pki.CA(root / "imp", "twin", "ec")
    e.frz = pki.CA(root, "frz", "ec")
    # Serials count from 1000 in each CA, the delegated signer taking the
    # first: both twins issue 1001, 1002, ...
    e.a1 = e.a.issue("a1.example")          # 1001: good under twina
    e.a2 = e.a.issue("a2.example")          # 1002: revoked under twina
    e.a3 = e.a.issue("a3.example")          # 1003: good under twina, absent from twinb
    e.b1 = e.b.issue("b1.example")          # 1001: revoked under twinb
    e.imp1 = e.imp.issue("imp1.example")    # 1001 of the impostor
    e.frz1 = e.frz.issue("frz1.example")
    assert e.a1[0] == e.b1[0] == e.imp1[0] == "1001"
    e.config = write_config(root / "vigil.conf", root / "store",
                          [(e.a, {}), (e.b, {}),
                           (e.frz, {"not_issued": "revoked", "ocsp_validity": "10d"})],
                          responder={"workers": "2"})
    e.store = Runner(e.config)
    e.store.store("init")
    for ca in (e.a, e.b, e.frz):
        e.store.store("import-index", ca.name, ca.index)
    e.store.store("revoke", "twina", e.a2[0], "--reason", "keyCompromise")
    e.store.store("revoke", "twinb", e.b1[0], "--reason", "keyCompromise")
    e.store.store("freeze", "frz")
    e.cert = {n: load_cert(ca.cert) for n, ca in (("a", e.a), ("b", e.b), ("imp", e.imp),
                                                   ("frz", e.frz))}
    with serving(e.config) as e.resp:
        yield e


def answer(env, der, issuer, method="post"):
    status, headers, body = getattr(env.resp, method)(der)
    assert status == 200
    return check_response(body, issuer)


def openssl_url(env):
    return f"http://127.0.0.1:{env.resp.port}/"


# ---- issuerKeyHash compared (match_ca) ------------------------------------------------------

def test_other_keys_hash_is_unauthorized(env):
    """A CertID with a served CA's issuerNameHash and the key hash of another
    key (an impostor CA of the same name, or no CA at all) names no CA this
    responder serves: unauthorized, never an answer from the records of the
    CA whose name matched. And the other way round: the right key hash with
    another name's hash."""
    leaf = load_cert(env.imp1[1])
    for alg, h in ((hashes.SHA1(), hashlib.sha1), (hashes.SHA256(), hashlib.sha256)):
        # python3-cryptography 38 has no add_certificate_by_hash: the CertID
        # of the impostor's leaf already carries the twins' name hash.
        der = make_request(leaf, env.cert["imp"], alg=alg)
        nh_a, kh_a = issuer_hashes(env.cert["a"], h)
        nh_i, kh_i = issuer_hashes(env.cert["imp"], h)
        assert nh_a == nh_i and kh_a != kh_i and der.count(kh_i) == 1
        for method in ("post", "get"):
            status, _, body = getattr(env.resp, method)(der)
            assert status == 200
            assert status_of(body) == ocsp.OCSPResponseStatus.UNAUTHORIZED
        # A key hash of no key at all, and twina's key hash with another name's hash.
        for bad in (der.replace(kh_i, bytes(len(kh_i))),
                    der.replace(kh_i, kh_a).replace(nh_a, h(b"another name").digest())):
            status, _, body = env.resp.post(bad)
            assert status_of(body) == ocsp.OCSPResponseStatus.UNAUTHORIZED
        # The same CertID with twina's key hash is answered, from twina's records.
        r = answer(env, der.replace(kh_i, kh_a), env.cert["a"])
        assert r.certificate_status == GOOD and r.issuer_key_hash == kh_a
    # openssl ocsp builds the CertID from the impostor's certificate itself.
    rc, out = openssl_ocsp("-issuer", env.imp.cert, "-cert", env.imp1[1], "-url",
                           openssl_url(env), "-noverify")
    assert "unauthorized" in out, out


def test_same_name_cas_told_apart_by_key(env):
    """Two served CAs of one name: each serial is answered from the records
    of the CA whose key the CertID names. 1001 is good under twina and
    revoked under twinb; 1003 exists under twina only, so through twinb's
    key it is unknown, never good."""
    a, b = env.cert["a"], env.cert["b"]
    want = [(env.a1, a, GOOD), (env.a2, a, REVOKED), (env.a3, a, GOOD), (env.b1, b, REVOKED)]
    for (serial, path), issuer, status in want:
        for alg in (hashes.SHA1(), hashes.SHA256()):
            for method in ("post", "get"):
                r = answer(env, make_request(load_cert(path), issuer, alg=alg), issuer, method)
                assert r.certificate_status == status, (serial, issuer.subject, alg.name)
    # Serials through the key of the CA that did not issue them.
    for serial, issuer, status in ((0x1003, b, UNKNOWN), (0x1002, b, UNKNOWN)):
        r = answer(env, make_request(fake_cert(serial, issuer), issuer), issuer)
        assert r.certificate_status == status, hex(serial)
    # openssl agrees, verifying each answer against the CA it asked.
    for ca, serial, word in ((env.b, "0x1001", "revoked"), (env.b, "0x1003", "unknown"),
                             (env.a, "0x1001", "good"), (env.a, "0x1002", "revoked")):
        rc, out = openssl_ocsp("-issuer", ca.cert, "-CAfile", ca.cert, "-url", openssl_url(env),
                               "-serial", serial)
        assert rc == 0 and "Response verify OK" in out, out
        assert re.search(rf"^{serial}: {word}$", out, re.M), (ca.name, serial, out)


# ---- singleRequestExtensions (RFC 6960 §4.4) -----------------------------------------------

def test_critical_extension_in_one_entry(env, tmp_path):
    """RFC 6960 §4.4: an unrecognised extension a client marks critical must
    not be ignored, in the whole request or in one certificate's entry; a
    non-critical one is ignored."""
    a = env.cert["a"]
    cid1 = certid_der(load_cert(env.a1[1]), a)
    cid2 = certid_der(load_cert(env.a2[1]), a)
    crit = extension(OTHER_OID, True, b"\x05\x00")
    plain = extension(OTHER_OID, False, b"\x05\x00")
    locator = extension(LOCATOR_OID, True, der_tlv(0x30, b""))
    cases = [
        ([(cid1, [crit])], False),
        ([(cid1, [plain, crit])], False),
        ([(cid1, []), (cid2, [crit])], False),   # the second entry only
        ([(cid1, [locator])], False),            # known to some, not understood here
        ([(cid1, [plain])], True),
        ([(cid1, []), (cid2, [plain])], True),
    ]
    for reqs, answered in cases:
        der = ocsp_request(reqs)
        # Well-formed: python3-cryptography reads it (one entry), and openssl
        # prints the entry's extension.
        if len(reqs) == 1:
            assert ocsp.load_der_ocsp_request(der).serial_number == 0x1001
        path = tmp_path / "req.der"
        path.write_bytes(der)
        rc, out = openssl_ocsp("-reqin", path, "-req_text")
        assert rc == 0 and "Request Single Extensions" in out, out
        for method in ("post", "get"):
            status, _, body = getattr(env.resp, method)(der)
            assert status == 200
            if answered:
                r = check_response(body, a)
                got = [s.certificate_status for s in r.responses]
                assert got == [GOOD, REVOKED][:len(reqs)]
            else:
                assert status_of(body) == ocsp.OCSPResponseStatus.MALFORMED_REQUEST, reqs
    # The same critical extension on the whole request (test_request_extensions).
    status, _, body = env.resp.post(ocsp_request([(cid1, [])], [crit]))
    assert status_of(body) == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    # And the plain request is answered.
    r = answer(env, ocsp_request([(cid1, [])]), a)
    assert r.certificate_status == GOOD


# ---- max-age from the Date sent ------------------------------------------------------------

def test_max_age_of_a_cached_answer(env):
    """A GET answer served from the cache seconds after it was signed:
    max-age = nextUpdate - Date, so that no cache keeps it past nextUpdate
    (not nextUpdate - thisUpdate, which is the same only in the second it
    was signed)."""
    der = make_request(load_cert(env.a3[1]), env.cert["a"], alg=hashes.SHA384())
    status, h1, body1 = env.resp.get(der)
    assert status == 200
    deadline = time.monotonic() + 10
    while True:
        time.sleep(0.5)
        status, h2, body2 = env.resp.get(der)
        assert status == 200 and body2 == body1  # the cached answer
        r = check_response(body2, env.cert["a"])
        date = http_date(h2["date"])
        if (date - r.this_update).total_seconds() >= 2 or time.monotonic() > deadline:
            break
    assert (date - r.this_update).total_seconds() >= 2
    m = re.fullmatch(r"max-age=(\d+)(?:, s-maxage=\d+)?, public, no-transform, must-revalidate", h2["cache-control"])
    assert m, h2["cache-control"]
    assert int(m.group(1)) == (r.next_update - date).total_seconds()
    assert http_date(h2["expires"]) == r.next_update
    assert http_date(h2["last-modified"]) == r.this_update
    # A 304 for it carries the same.
    status, h3, _ = env.resp.get(der, headers={"If-None-Match": h2["etag"]})
    assert status == 304
    m3 = re.match(r"max-age=(\d+)", h3["cache-control"])
    assert int(m3.group(1)) == (r.next_update - http_date(h3["date"])).total_seconds()


def test_crl_max_age_from_date(env):
    """A CRL downloaded seconds after it was published: max-age = nextUpdate
    - Date, Expires = nextUpdate, Last-Modified = thisUpdate."""
    r = run(binary("vigil-crlgen"), "-c", env.config, "--once", check=False)
    assert r.returncode == 0, r.stderr
    published = (env.root / "crl" / "twina.crl").read_bytes()
    crl = x509.load_der_x509_crl(published)
    deadline = time.monotonic() + 10
    while True:
        status, h, body = env.resp.request("GET", "/crl/twina.crl")
        assert status == 200
        date = http_date(h["date"])
        if (date - crl.last_update).total_seconds() >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert body == published
    assert (date - crl.last_update).total_seconds() >= 2
    m = re.fullmatch(r"max-age=(\d+)(?:, s-maxage=\d+)?, public, no-transform, must-revalidate", h["cache-control"])
    assert m, h["cache-control"]
    assert int(m.group(1)) == (crl.next_update - date).total_seconds()
    assert http_date(h["expires"]) == crl.next_update
    assert http_date(h["last-modified"]) == crl.last_update


# ---- extended-revoke (RFC 6960 §2.2, §4.4.8) -----------------------------------------------

def test_extended_revoke_for_never_issued(env, tmp_path):
    """A frozen CA with not_issued = revoked answers a serial it never issued
    revoked (certificateHold, 1970-01-01) with the extended-revoke extension,
    alone or next to an issued certificate's good answer; a serial revoked
    by an operator though never seen as issued carries it too; an issued
    one does not."""
    frz = env.cert["frz"]
    absent = fake_cert(0x7E57AB, frz)
    issued = load_cert(env.frz1[1])
    for method in ("post", "get"):
        r = answer(env, make_request(absent, frz, alg=hashes.SHA256()), frz, method)
        assert r.certificate_status == REVOKED
        assert r.revocation_reason == x509.ReasonFlags.certificate_hold
        assert r.revocation_time == datetime.datetime(1970, 1, 1)
        assert r.extensions.get_extension_for_oid(EXT_REVOKE_OID).critical is False
        # The Baseline Requirements' ten days count both ends (§4.9.10):
        # nextUpdate is one second short of ten days after thisUpdate.
        assert r.next_update - r.this_update == datetime.timedelta(days=10, seconds=-1)
        r = answer(env, make_request(issued, frz), frz, method)
        assert r.certificate_status == GOOD
        assert r.next_update - r.this_update == datetime.timedelta(days=10, seconds=-1)
        with pytest.raises(x509.ExtensionNotFound):
            r.extensions.get_extension_for_oid(EXT_REVOKE_OID)
    # Two entries, one never issued: one answer, with the extension.
    der = ocsp_request([(certid_der(issued, frz), []), (certid_der(absent, frz), [])])
    r = answer(env, der, frz)
    assert [s.certificate_status for s in r.responses] == [GOOD, REVOKED]
    assert r.extensions.get_extension_for_oid(EXT_REVOKE_OID)
    # openssl sees the extension (id-pkix-ocsp 9, which it calls "valid").
    rc, out = openssl_ocsp("-issuer", env.frz.cert, "-CAfile", env.frz.cert, "-url",
                           openssl_url(env), "-serial", "0x7E57AB", "-resp_text")
    assert rc == 0 and "Response verify OK" in out and "0x7E57AB: revoked" in out, out
    assert re.search(r"Response Extensions:\n\s+valid: ", out), out
    # Revoked by serial on a CA that still issues, never seen as issued.
    env.store.store("revoke", "twina", "5EC0DE", "--reason", "keyCompromise")
    a = env.cert["a"]
    deadline = time.monotonic() + 3
    while True:
        r = answer(env, make_request(fake_cert(0x5EC0DE, a), a), a)
        if r.certificate_status == REVOKED or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert r.certificate_status == REVOKED
    assert r.revocation_reason == x509.ReasonFlags.key_compromise
    assert r.extensions.get_extension_for_oid(EXT_REVOKE_OID)
    r = answer(env, make_request(load_cert(env.a2[1]), a), a)
    assert r.certificate_status == REVOKED
    with pytest.raises(x509.ExtensionNotFound):
        r.extensions.get_extension_for_oid(EXT_REVOKE_OID)


# ---- ocsp_cert without id-kp-OCSPSigning ---------------------------------------------------

def responder_cmd(*args):
    """vigil-responder ARGS, its exit status and output (a failure is no error)."""
    return run(binary("vigil-responder"), *args, check=False, timeout=20)


def signer_cert(env, tmp_path, name, eku):
    """A responder certificate for twina's delegated key, issued by twina,
    with extendedKeyUsage |eku| (None: no such extension)."""
    ext = tmp_path / f"{name}.cnf"
    ext.write_text("[e]\nbasicConstraints = CA:false\nkeyUsage = critical, digitalSignature\n"
                   "noCheck = ignored\nauthorityKeyIdentifier = keyid:always\n" +
                   (f"extendedKeyUsage = {eku}\n" if eku else ""))
    csr, out = tmp_path / f"{name}.csr", tmp_path / f"{name}.pem"
    run("openssl", "req", "-new", "-config", env.a.cnf, "-key", env.a.ocsp_key,
        "-subj", f"/CN={name}", "-out", csr)
    run("openssl", "x509", "-req", "-in", csr, "-CA", env.a.cert, "-CAkey", env.a.key,
        "-set_serial", str(abs(hash(name)) % 100000 + 5000), "-days", "30", "-extfile", ext,
        "-extensions", "e", "-out", out)
    return out


def test_signer_without_ocsp_signing_refused(env, tmp_path):
    """Every client refuses an answer whose delegated signer lacks
    id-kp-OCSPSigning (RFC 6960 §4.2.2.2): such an ocsp_cert is refused at
    start (--check too) and on reload, where the old signer keeps signing."""
    store = env.root / "store"
    good = write_config(tmp_path / "good.conf", store, [(env.a, {})], responder={"workers": "1"})
    signer_ok = signer_cert(env, tmp_path, "ocsp-ok", "critical, OCSPSigning")
    bad = {"no-eku": signer_cert(env, tmp_path, "ocsp-noeku", None),
           "server-auth": signer_cert(env, tmp_path, "ocsp-server", "serverAuth, clientAuth")}
    confs = {}
    for k, path in bad.items():
        confs[k] = tmp_path / f"{k}.conf"
        confs[k].write_text(good.read_text().replace(str(env.a.ocsp_cert), str(path)))
    ok_conf = tmp_path / "ok.conf"
    ok_conf.write_text(good.read_text().replace(str(env.a.ocsp_cert), str(signer_ok)))
    # The certificates differ in their EKU only: the one with it is taken.
    assert responder_cmd("-c", ok_conf, "--check").returncode == 0
    for k, conf in confs.items():
        for args in (("--check",), ("--listen", "127.0.0.1:0")):
            r = responder_cmd("-c", conf, *args)
            assert r.returncode == 1, (k, args, r.stderr)
            assert "lacks extendedKeyUsage OCSPSigning" in r.stderr and \
                r.stderr.count("\n") == 1, (k, r.stderr)
    # Reload: refused, the signer loaded at start keeps signing.
    leaf, issuer = load_cert(env.a1[1]), env.cert["a"]
    live = tmp_path / "live.conf"
    live.write_text(ok_conf.read_text())
    with Responder(live) as rr:
        for k in bad:
            live.write_text(confs[k].read_text())
            n = rr.n_lines()
            rr.signal(signal.SIGHUP)
            line = rr.wait_log(r"event=reload_failed", start=n)
            assert "lacks extendedKeyUsage OCSPSigning" in line, line
            _, _, body = rr.post(make_request(leaf, issuer, nonce=os.urandom(8)))
            r = check_response(body, issuer)  # checks the signer's EKU
            assert r.certificates[0].subject.rfc4514_string() == "CN=ocsp-ok"
        assert rr.stop() == 0


def test_signer_from_same_name_impostor_refused(env, tmp_path):
    """An ocsp_cert naming twina as its issuer, without an authority key
    identifier to tell the CAs apart, but signed by the impostor's key (a
    CA of the same name): names match, the signature does not; clients
    refuse its answers, so it is refused at start and on reload."""
    imp_key = serialization.load_pem_private_key(env.imp.key.read_bytes(), None)
    signer_key = serialization.load_pem_private_key(env.a.ocsp_key.read_bytes(), None)
    now = datetime.datetime.utcnow()

    def make(sign_key, name):
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name.from_rfc4514_string(f"CN={name}"))
                .issuer_name(env.cert["a"].subject).public_key(signer_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                             False, False), True)
                .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.OCSP_SIGNING]),
                               True)
                .sign(sign_key, hashes.SHA256()))
        path = tmp_path / f"{name}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    a_key = serialization.load_pem_private_key(env.a.key.read_bytes(), None)
    real, fake = make(a_key, "real-no-akid"), make(imp_key, "fake-no-akid")
    good = write_config(tmp_path / "good.conf", env.root / "store", [(env.a, {})],
                        responder={"workers": "1"})
    confs = {}
    for name, path in (("real", real), ("fake", fake)):
        confs[name] = tmp_path / f"{name}.conf"
        confs[name].write_text(good.read_text().replace(str(env.a.ocsp_cert), str(path)))
    assert responder_cmd("-c", confs["real"], "--check").returncode == 0
    r = responder_cmd("-c", confs["fake"], "--check")
    assert r.returncode == 1 and "is not issued by the CA cert" in r.stderr, r.stderr
    live = tmp_path / "live.conf"
    live.write_text(confs["real"].read_text())
    leaf, issuer = load_cert(env.a1[1]), env.cert["a"]
    with Responder(live) as rr:
        live.write_text(confs["fake"].read_text())
        n = rr.n_lines()
        rr.signal(signal.SIGHUP)
        assert "is not issued by the CA cert" in rr.wait_log(r"event=reload_failed", start=n)
        _, _, body = rr.post(make_request(leaf, issuer, nonce=os.urandom(8)))
        r = check_response(body, issuer)  # checks the signer's signature by the CA
        assert r.certificates[0].subject.rfc4514_string() == "CN=real-no-akid"
        assert rr.stop() == 0


# ---- CRLs ----------------------------------------------------------------------------------

def idx_time(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%y%m%d%H%M%SZ")


def test_crl_expiry_cutoff_boundary(tmp_path):
    """RFC 5280 §3.3: an entry stays until it has appeared on one regular CRL
    issued after the certificate expired. The cut-off is the previous full
    CRL's thisUpdate T: a certificate that expired before T (it was listed
    past its expiry on that CRL) is dropped, one expiring at T or after is
    kept."""
    ca = pki.CA(tmp_path, "ca1", "ec")
    env = CrlEnv(tmp_path, [ca])
    env.crlgen("--once")
    t = int(env.crl("ca1").last_update.replace(tzinfo=datetime.timezone.utc).timestamp())
    rows = [("R", idx_time(t + d), "250101000000Z,keyCompromise", s)
            for d, s in ((-3600, "B0"), (-1, "B1"), (0, "B2"), (1, "B3"), (86400, "B4"))]
    write_index(ca.index, rows)
    env.import_index(ca)
    # This CRL is issued after B2 and B3 expired, so that the next cut-off
    # (its thisUpdate) is after them too.
    while time.time() < t + 2.2:
        time.sleep(0.1)
    env.crlgen("--once")
    crl = env.crl("ca1")
    assert set(entries(crl)) == {"B2", "B3", "B4"}
    ok, out = openssl_crl_verify(env.crl_path("ca1"), ca.cert)
    assert ok, out
    assert crl.last_update.replace(tzinfo=datetime.timezone.utc).timestamp() >= t + 2
    env.crlgen("--once")
    assert set(entries(env.crl("ca1"))) == {"B4"}


def test_delta_lists_remove_from_crl(tmp_path):
    """A hold lifted after the base CRL: the delta lists the serial with
    removeFromCRL (RFC 5280 §5.3.1), and OpenSSL, applying base + delta,
    accepts the certificate again while the base alone refuses it."""
    ca = pki.CA(tmp_path, "ca1", "ec")
    held = ca.issue("held.example")
    other = ca.issue("other.example")
    env = CrlEnv(tmp_path, [ca], ca_extra={"ca1": [
        "delta_crl = on", "crl_url = http://crl.example/ca1.crl", "profile = private",
        "delta_crl_url = http://crl.example/ca1-delta.crl"]})
    env.import_index(ca)
    env.runner.store("revoke", "ca1", held[0], "--reason", "certificateHold")
    env.crlgen("--once")
    assert entries(env.crl("ca1"))["%X" % int(held[0], 16)][0] == "certificateHold"
    env.runner.store("release", "ca1", held[0])
    env.crlgen("--once", "--delta")
    got = entries(env.crl("ca1", delta=True))
    assert set(got) == {"%X" % int(held[0], 16)}
    assert got["%X" % int(held[0], 16)][0] == "removeFromCRL"
    ok, out = openssl_crl_verify(env.crl_path("ca1", delta=True), ca.cert)
    assert ok, out
    base_pem = env.crl_path("ca1", pem=True).read_text()
    rc, out = openssl_verify_leaf(ca.cert, env.crl_path("ca1", pem=True), held[1])
    assert rc != 0 and "revoked" in out, out
    both = tmp_path / "both.pem"
    both.write_text(base_pem + env.crl_path("ca1", delta=True, pem=True).read_text())
    rc, out = openssl_verify_leaf(ca.cert, both, held[1], extra=["-use_deltas"])
    assert rc == 0, out
    rc, out = openssl_verify_leaf(ca.cert, both, other[1], extra=["-use_deltas"])
    assert rc == 0, out


def test_hold_replaced_by_key_compromise_in_crl(tmp_path):
    """A certificate put on hold, then revoked for keyCompromise: the next
    full CRL (read through the store's index of revoked certificates) lists
    keyCompromise with the new revocation time, as `vigil-store status`
    says; released, it leaves the CRL."""
    ca = pki.CA(tmp_path, "ca1", "ec")
    leaf = ca.issue("leaf.example")
    env = CrlEnv(tmp_path, [ca])
    env.import_index(ca)
    s = "%X" % int(leaf[0], 16)
    env.runner.store("revoke", "ca1", leaf[0], "--reason", "certificateHold",
                     "--time", "2025-01-01T00:00:00Z")
    env.crlgen("--once")
    assert entries(env.crl("ca1"))[s][:2] == ("certificateHold", "2025-01-01T00:00:00Z")
    env.runner.store("revoke", "ca1", leaf[0], "--reason", "keyCompromise",
                     "--time", "2025-02-01T00:00:00Z")
    assert env.status("ca1", leaf[0])[:2] == ("revoked", "keyCompromise")
    env.crlgen("--once")
    assert entries(env.crl("ca1"))[s][:2] == ("keyCompromise", "2025-02-01T00:00:00Z")
    rc, out = openssl_verify_leaf(ca.cert, env.crl_path("ca1", pem=True), leaf[1])
    assert rc != 0 and "revoked" in out, out
    # A second hold on another certificate, lifted: gone from the next CRL.
    other = ca.issue("other.example")
    env.runner.store("add", "ca1", other[1])
    env.runner.store("revoke", "ca1", other[0], "--reason", "certificateHold")
    env.crlgen("--once")
    assert "%X" % int(other[0], 16) in entries(env.crl("ca1"))
    env.runner.store("release", "ca1", other[0])
    env.crlgen("--once")
    assert set(entries(env.crl("ca1"))) == {s}
    # superseded with an invalidity date, raised to keyCompromise without
    # one: the original time and the invalidity date known stand.
    third = ca.issue("third.example")
    env.runner.store("add", "ca1", third[1])
    env.runner.store("revoke", "ca1", third[0], "--reason", "superseded",
                     "--time", "2025-03-01T00:00:00Z", "--invalidity-date", "2025-02-20T00:00:00Z")
    env.runner.store("revoke", "ca1", third[0], "--reason", "keyCompromise",
                     "--time", "2025-04-01T00:00:00Z")
    want = ("keyCompromise", "2025-03-01T00:00:00Z", "2025-02-20T00:00:00Z")
    assert env.status("ca1", third[0])[1:] == want
    env.crlgen("--once")
    assert entries(env.crl("ca1"))["%X" % int(third[0], 16)] == want


def test_delta_leaves_out_what_did_not_change(tmp_path):
    """A delta lists the certificates whose CRL entry changed since the base:
    not one revoked by serial before the base whose certificate (and so its
    dates) the store learned after it."""
    ca = pki.CA(tmp_path, "ca1", "ec")
    early = ca.issue("early.example")    # revoked by serial before anything was imported
    later = ca.issue("later.example")
    env = CrlEnv(tmp_path, [ca], ca_extra={"ca1": [
        "delta_crl = on", "crl_url = http://crl.example/ca1.crl",
        "delta_crl_url = http://crl.example/ca1-delta.crl"]})
    env.runner.store("revoke", "ca1", early[0], "--reason", "keyCompromise",
                     "--time", "2025-01-01T00:00:00Z")
    env.runner.store("add", "ca1", later[1])
    env.crlgen("--once")
    e, l = "%X" % int(early[0], 16), "%X" % int(later[0], 16)
    assert set(entries(env.crl("ca1"))) == {e}
    env.runner.store("add", "ca1", early[1])   # its dates learned: the entry is the same
    env.runner.store("revoke", "ca1", later[0], "--reason", "superseded")
    env.crlgen("--once", "--delta")
    assert set(entries(env.crl("ca1", delta=True))) == {l}
    env.crlgen("--once")
    assert entries(env.crl("ca1"))[e][:2] == ("keyCompromise", "2025-01-01T00:00:00Z")


def test_index_remove_from_crl_lifts_only_a_hold(tmp_path):
    """openssl ca records a lifted hold as a revocation with reason
    removeFromCRL; re-importing its index lifts a hold the store holds, but
    never a final revocation (keyCompromise stays keyCompromise, on the CRL
    too)."""
    ca = pki.CA(tmp_path, "ca1", "ec")
    env = CrlEnv(tmp_path, [ca])
    far = "351231235959Z"
    write_index(ca.index, [("V", far, "", "C1"), ("V", far, "", "C2")])
    env.import_index(ca)
    env.runner.store("revoke", "ca1", "C1", "--reason", "certificateHold")
    env.runner.store("revoke", "ca1", "C2", "--reason", "keyCompromise")
    env.crlgen("--once")
    assert set(entries(env.crl("ca1"))) == {"C1", "C2"}
    write_index(ca.index, [("R", far, "250101000000Z,removeFromCRL", "C1"),
                           ("R", far, "250101000000Z,removeFromCRL", "C2")])
    env.import_index(ca)
    assert env.status("ca1", "C1")[0] == "good"
    assert env.status("ca1", "C2")[:2] == ("revoked", "keyCompromise")
    env.crlgen("--once")
    got = entries(env.crl("ca1"))
    assert set(got) == {"C2"} and got["C2"][0] == "keyCompromise"
