# SPDX-License-Identifier: Apache-2.0
"""vigil-responder end to end: the real binary on 127.0.0.1, a PKI made with the
openssl CLI, the store written by vigil-store, and every answer checked by
independent clients: `openssl ocsp`, GnuTLS `ocsptool` and python3-cryptography."""
import datetime
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

import pki
from conftest import binary, run, write_config
from responder_env import (OCSP_REASON, REASONS, ask, assert_alive, env,  # noqa: F401 (env)
                           leaf, wait_status)
from responder_util import (EXT_REVOKE_OID, CrlMaker, Responder, check_response, fake_cert,
                            http_date, load_cert, make_request, ocsptool, openssl_ocsp,
                            parse_responses, recv_all, recv_all_until, status_of)

# ---- answers, checked with openssl ocsp ------------------------------------------------------

@pytest.mark.parametrize("caname", ["rsa1", "ec1", "ed1"])
def test_openssl_good_revoked_unknown(env, caname):
    ca = {"rsa1": env.rsa, "ec1": env.ec, "ed1": env.ed}[caname]
    url = f"http://127.0.0.1:{env.resp.port}/"
    good = env.good[caname][0]
    args = ["-issuer", ca.cert, "-CAfile", ca.cert, "-url", url, "-serial", "0x" + good,
            "-serial", "0x7777777"]
    if caname == "rsa1":
        args += ["-serial", "0x" + env.idx_revoked[0]]
    rc, out = openssl_ocsp(*args)
    assert rc == 0, out
    assert "Response verify OK" in out, out
    assert re.search(rf"0x{good}: good", out), out
    assert "0x7777777: unknown" in out, out
    if caname == "rsa1":
        assert re.search(rf"0x{env.idx_revoked[0]}: revoked\s+This Update: .*\s+Next Update: .*"
                         r"\s+Reason: keyCompromise", out), out


def test_openssl_get_and_cert_argument(env):
    """openssl ocsp with -cert (CertID from the certificate) and GET."""
    url = f"http://127.0.0.1:{env.resp.port}/"
    rc, out = openssl_ocsp("-issuer", env.ec.cert, "-cert", env.good["ec1"][1], "-CAfile",
                           env.ec.cert, "-url", url, "-no_nonce", "-resp_text")
    assert rc == 0 and "Response verify OK" in out and ": good" in out, out
    assert "Responder Id: " in out  # by key hash
    assert "Nonce" not in out


def test_openssl_nonce_checked(env):
    url = f"http://127.0.0.1:{env.resp.port}/"
    rc, out = openssl_ocsp("-issuer", env.rsa.cert, "-cert", env.good["rsa1"][1], "-CAfile",
                           env.rsa.cert, "-url", url, "-resp_text")
    assert rc == 0 and "Response verify OK" in out, out
    assert "OCSP Nonce" in out and "WARNING" not in out, out


def test_openssl_signed_request(env):
    """A signed request (requestorName and signature, RFC 6960 4.1.2) is answered."""
    url = f"http://127.0.0.1:{env.resp.port}/"
    rc, out = openssl_ocsp("-issuer", env.ec.cert, "-cert", env.good["ec1"][1], "-CAfile",
                           env.ec.cert, "-url", url, "-signer", env.ec.ocsp_cert, "-signkey",
                           env.ec.ocsp_key, "-req_text")
    assert rc == 0 and "Response verify OK" in out and ": good" in out, out
    assert "Requestor Name" in out and "Signature Algorithm" in out, out


def test_openssl_too_many_certids(env):
    url = f"http://127.0.0.1:{env.resp.port}/"
    args = ["-issuer", env.rsa.cert, "-CAfile", env.rsa.cert, "-url", url]
    for s in range(0x100, 0x105):  # max_certids = 4
        args += ["-serial", hex(s)]
    rc, out = openssl_ocsp(*args)
    assert "malformedrequest" in out.lower(), out


def test_openssl_unknown_issuer_unauthorized(env):
    url = f"http://127.0.0.1:{env.resp.port}/"
    rc, out = openssl_ocsp("-issuer", env.foreign.cert, "-cert", env.foreign_leaf[1], "-CAfile",
                           env.foreign.cert, "-url", url)
    assert "unauthorized" in out.lower(), out


# ---- GnuTLS ocsptool --------------------------------------------------------------------

@pytest.mark.parametrize("caname,which", [("rsa1", "good"), ("rsa1", "revoked"), ("ec1", "good"),
                                          ("ed1", "good")])
def test_gnutls_ocsptool(env, caname, which):
    ca = {"rsa1": env.rsa, "ec1": env.ec, "ed1": env.ed}[caname]
    cert = env.good[caname][1] if which == "good" else env.idx_revoked[1]
    # A response signed by the CA key itself carries no certificate; GnuTLS then
    # wants the signer named directly.
    trust = "--load-signer" if caname == "ed1" else "--load-trust"
    rc, out = ocsptool(f"--ask=http://127.0.0.1:{env.resp.port}/", "--nonce", "--load-issuer",
                       ca.cert, "--load-cert", cert, trust, ca.cert)
    assert "Verifying OCSP Response: Success" in out, out
    assert f"Certificate Status: {which}" in out, out
    assert "Nonce:" in out, out


# ---- python3-cryptography: statuses ------------------------------------------------------

@pytest.mark.parametrize("reason", REASONS)
def test_revoked_each_reason(env, reason):
    serial, path = env.by_reason[reason]
    r = ask(env, load_cert(path), env.ca_cert["rsa1"])
    assert r.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert r.revocation_reason == OCSP_REASON[reason]
    assert r.revocation_time is not None
    assert abs((r.revocation_time - datetime.datetime.utcnow()).total_seconds()) < 3600


@pytest.mark.parametrize("alg", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()],
                         ids=lambda a: a.name)
def test_certid_hash_algorithms(env, alg):
    for ca in (env.rsa, env.ec):
        cert, issuer = leaf(env, ca, env.good[ca.name])
        for method in ("post", "get"):
            der = make_request(cert, issuer, alg=alg)
            status, headers, body = getattr(env.resp, method)(der)
            assert status == 200
            r = check_response(body, issuer)
            assert r.certificate_status == ocsp.OCSPCertStatus.GOOD
            assert r.hash_algorithm.name == alg.name
            assert r.serial_number == cert.serial_number
            req = ocsp.load_der_ocsp_request(der)
            assert r.issuer_key_hash == req.issuer_key_hash
            assert r.issuer_name_hash == req.issuer_name_hash


def test_unknown_serial_and_unknown_issuer(env):
    r = ask(env, fake_cert(0x5A5A5A5A, env.ca_cert["ec1"]), env.ca_cert["ec1"])
    assert r.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    status, _, body = env.resp.post(make_request(load_cert(env.foreign_leaf[1]),
                                                 env.ca_cert["foreign"]))
    assert status == 200
    assert status_of(body) == ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_validity_and_times(env):
    cert, issuer = leaf(env, env.ec, env.good["ec1"])
    r = ask(env, cert, issuer, nonce=os.urandom(16))
    now = datetime.datetime.utcnow()
    assert abs((r.produced_at - now).total_seconds()) < 60
    assert abs((r.this_update - now).total_seconds()) < 60
    assert (r.next_update - r.this_update) == datetime.timedelta(days=4)  # ocsp_validity default


def test_nonce_echo_and_limits(env):
    cert, issuer = leaf(env, env.rsa, env.good["rsa1"])
    for n in (1, 16, 32, 128):
        nonce = os.urandom(n)
        r = ask(env, cert, issuer, nonce=nonce)
        assert r.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    for n in (129, 300):
        status, headers, body = env.resp.post(make_request(cert, issuer, nonce=os.urandom(n)))
        assert status == 200
        assert status_of(body) == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


NONCE_OID = bytes.fromhex("06092b0601050507300102")   # id-pkix-ocsp-nonce
OTHER_OID = bytes.fromhex("06092b0601050507300163")   # id-pkix-ocsp 99, unknown


def request_with_extension(cert, issuer, critical, oid=NONCE_OID):
    """A request with one extension (python3-cryptography writes a nonce;
    its OID is then swapped for |oid|, the same length)."""
    b = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    der = b.add_extension(x509.OCSPNonce(b"N" * 16), critical=critical).build() \
        .public_bytes(serialization.Encoding.DER)
    assert der.count(NONCE_OID) == 1
    return der.replace(NONCE_OID, oid)


def test_request_extensions(env):
    """RFC 6960 §4.4: an unknown extension is ignored unless it is critical;
    a critical one gets malformedRequest. A critical nonce is understood."""
    cert, issuer = leaf(env, env.rsa, env.good["rsa1"])
    for method in ("post", "get"):
        send = getattr(env.resp, method)
        r = check_response(send(request_with_extension(cert, issuer, False, OTHER_OID))[2], issuer)
        assert r.certificate_status == ocsp.OCSPCertStatus.GOOD
        with pytest.raises(x509.ExtensionNotFound):
            r.extensions.get_extension_for_class(x509.OCSPNonce)
        status, _, body = send(request_with_extension(cert, issuer, True, OTHER_OID))
        assert status == 200
        assert status_of(body) == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        r = check_response(send(request_with_extension(cert, issuer, True))[2], issuer)
        assert r.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"N" * 16
    # The answers to the critical one were not cached: the plain request is answered.
    assert check_response(env.resp.get(make_request(cert, issuer))[2], issuer) \
        .certificate_status == ocsp.OCSPCertStatus.GOOD


def test_certid_hash_parameters_malformed(env):
    """A CertID whose SHA-1 AlgorithmIdentifier has an empty constructed
    [UNIVERSAL 0] for parameters (which OpenSSL reads but cannot write back):
    the client's mistake, malformedRequest, not internalError."""
    cert, issuer = leaf(env, env.rsa, env.good["rsa1"])
    good = make_request(cert, issuer)
    sha1_null = bytes.fromhex("06052b0e03021a0500")
    assert good.count(sha1_null) == 1
    bad = good.replace(sha1_null, bytes.fromhex("06052b0e03021a2000"))
    for method in ("post", "get"):
        status, _, body = getattr(env.resp, method)(bad)
        assert status == 200
        assert status_of(body) == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert_alive(env)


def test_nonce_answers_signed_fresh(env):
    cert, issuer = leaf(env, env.rsa, env.good["rsa1"])
    a = env.resp.post(make_request(cert, issuer, nonce=b"A" * 16))[2]
    b = env.resp.post(make_request(cert, issuer, nonce=b"B" * 16))[2]
    assert a != b
    ra, rb = check_response(a, issuer), check_response(b, issuer)
    assert ra.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"A" * 16
    assert rb.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"B" * 16


@pytest.mark.parametrize("caname", ["rsa1", "ec1", "ed1"])
def test_nonce_answers_each_key_type(env, caname):
    """Freshly signed answers (a nonce each) from an RSA and an ECDSA delegated
    responder and an Ed25519 CA key, checked by openssl and by cryptography."""
    ca = {"rsa1": env.rsa, "ec1": env.ec, "ed1": env.ed}[caname]
    url = f"http://127.0.0.1:{env.resp.port}/"
    rc, out = openssl_ocsp("-issuer", ca.cert, "-cert", env.good[caname][1], "-CAfile", ca.cert,
                           "-url", url, "-resp_text")
    assert rc == 0 and "Response verify OK" in out and ": good" in out, out
    assert "OCSP Nonce" in out and "WARNING" not in out, out
    cert, issuer = leaf(env, ca, env.good[caname])
    unknown = fake_cert(0x6B6B6B6B, issuer)
    for alg in (hashes.SHA1(), hashes.SHA256()):
        for c, want in ((cert, ocsp.OCSPCertStatus.GOOD), (unknown, ocsp.OCSPCertStatus.UNKNOWN)):
            nonce = os.urandom(20)
            r = ask(env, c, issuer, alg=alg, nonce=nonce)  # signature checked
            assert r.certificate_status == want
            assert r.hash_algorithm.name == alg.name and r.serial_number == c.serial_number
            assert r.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
            assert bool(r.certificates) == (caname != "ed1")  # delegated: the signer included


def test_several_certids(env):
    """openssl ocsp builds the multi-CertID request; cryptography checks every answer."""
    req = env.root / "multi.req"
    rc, out = openssl_ocsp("-issuer", env.rsa.cert, "-serial", "0x" + env.good["rsa1"][0],
                           "-serial", "0x" + env.idx_revoked[0], "-serial", "0x99999",
                           "-no_nonce", "-reqout", req)
    assert rc == 0, out
    status, _, body = env.resp.post(req.read_bytes())
    r = check_response(body, env.ca_cert["rsa1"])
    got = {s.serial_number: s.certificate_status for s in r.responses}
    assert got == {int(env.good["rsa1"][0], 16): ocsp.OCSPCertStatus.GOOD,
                   int(env.idx_revoked[0], 16): ocsp.OCSPCertStatus.REVOKED,
                   0x99999: ocsp.OCSPCertStatus.UNKNOWN}
    # The same over GET.
    status, headers, body = env.resp.get(req.read_bytes())
    r = check_response(body, env.ca_cert["rsa1"])
    assert len(list(r.responses)) == 3


def test_serials_with_top_bit_set(env, tmp_path):
    """Serials whose first octet has its top bit set (DER adds a 0x00) are
    found in the store: good when added, revoked when revoked by serial only
    (never issued: with the extended-revoke extension)."""
    ca_key = serialization.load_pem_private_key(Path(env.rsa.key).read_bytes(), None)
    issuer = env.ca_cert["rsa1"]
    now = datetime.datetime.utcnow()
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "high.example")]))
            .issuer_name(issuer.subject).public_key(leaf_key.public_key())
            .serial_number(0x80AABBCCDDEEFF).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(ca_key, hashes.SHA256()))
    # Recorded through an index.txt line (hexadecimal serial).
    idx = tmp_path / "index.txt"
    idx.write_text("V\t351231235959Z\t\t80AABBCCDDEEFF\tunknown\t/CN=high.example\n")
    env.store.store("import-index", "rsa1", idx)
    env.store.store("revoke", "rsa1", "FF00112233", "--reason", "keyCompromise")
    r = wait_status(env, cert, issuer, ocsp.OCSPCertStatus.GOOD)
    assert r.certificate_status == ocsp.OCSPCertStatus.GOOD
    r = wait_status(env, fake_cert(0xFF00112233, issuer), issuer, ocsp.OCSPCertStatus.REVOKED)
    assert r.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert r.revocation_reason == x509.ReasonFlags.key_compromise
    r.extensions.get_extension_for_oid(EXT_REVOKE_OID)
    rc, out = openssl_ocsp("-issuer", env.rsa.cert, "-CAfile", env.rsa.cert, "-url",
                           f"http://127.0.0.1:{env.resp.port}/", "-serial", "0x80AABBCCDDEEFF",
                           "-serial", "0xFF00112233")
    assert "0x80AABBCCDDEEFF: good" in out and "0xFF00112233: revoked" in out, out


def test_mixed_issuers_and_unsupported_hash(env):
    """CertIDs of two served CAs in one request: the first one's signer answers,
    the other CA's certificate is unknown to it (RFC 6960 2.2)."""
    req = env.root / "mixed.req"
    rc, out = openssl_ocsp("-issuer", env.rsa.cert, "-serial", "0x" + env.good["rsa1"][0],
                           "-issuer", env.ec.cert, "-serial", "0x" + env.good["ec1"][0],
                           "-no_nonce", "-reqout", req)
    assert rc == 0, out
    status, _, body = env.resp.post(req.read_bytes())
    r = check_response(body, env.ca_cert["rsa1"])
    got = [(s.issuer_key_hash, s.certificate_status) for s in r.responses]
    rsa_req = ocsp.load_der_ocsp_request(make_request(*leaf(env, env.rsa, env.good["rsa1"])))
    assert got[0] == (rsa_req.issuer_key_hash, ocsp.OCSPCertStatus.GOOD)
    assert got[1][1] == ocsp.OCSPCertStatus.UNKNOWN
    # SHA-224 CertIDs name no issuer we can match: unauthorized.
    cert, issuer = leaf(env, env.rsa, env.good["rsa1"])
    status, _, body = env.resp.post(make_request(cert, issuer, alg=hashes.SHA224()))
    assert status_of(body) == ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_frozen_ca_not_issued(env):
    absent = {n: fake_cert(0x0BADBEEF, env.ca_cert[n]) for n in ("frzunk", "frzrev")}
    for ca in (env.frz_unk, env.frz_rev):
        r = ask(env, absent[ca.name], env.ca_cert[ca.name])
        assert r.certificate_status == ocsp.OCSPCertStatus.UNKNOWN  # not frozen yet
    env.store.store("freeze", "frzunk")
    env.store.store("freeze", "frzrev")
    # Answered from the freeze at once, by every worker
    # (test_revocation_answered_at_once).
    # not_issued = unknown (default): still unknown.
    r = ask(env, absent["frzunk"], env.ca_cert["frzunk"])
    assert r.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    # not_issued = revoked: RFC 6960 §2.2 revoked, certificateHold, 1970-01-01, extended revoke.
    for method in ("post", "get"):
        der = make_request(absent["frzrev"], env.ca_cert["frzrev"], alg=hashes.SHA256())
        status, _, body = getattr(env.resp, method)(der)
        r = check_response(body, env.ca_cert["frzrev"])
        assert r.certificate_status == ocsp.OCSPCertStatus.REVOKED
        assert r.revocation_reason == x509.ReasonFlags.certificate_hold
        assert r.revocation_time == datetime.datetime(1970, 1, 1)
        ext = r.extensions.get_extension_for_oid(EXT_REVOKE_OID)
        assert ext.critical is False
    # Issued certificates of a frozen CA keep their status.
    for ca in (env.frz_unk, env.frz_rev):
        cert, issuer = leaf(env, ca, env.good[ca.name])
        r = ask(env, cert, issuer)
        assert r.certificate_status == ocsp.OCSPCertStatus.GOOD
        with pytest.raises(x509.ExtensionNotFound):
            r.extensions.get_extension_for_oid(EXT_REVOKE_OID)
    # openssl agrees.
    rc, out = openssl_ocsp("-issuer", env.frz_rev.cert, "-CAfile", env.frz_rev.cert, "-url",
                           f"http://127.0.0.1:{env.resp.port}/", "-serial", "0x0BADBEEF")
    assert "Response verify OK" in out and "revoked" in out and "certificateHold" in out, out
    # Thawing brings unknown back, again without a restart.
    env.store.store("thaw", "frzrev")
    r = wait_status(env, absent["frzrev"], env.ca_cert["frzrev"], ocsp.OCSPCertStatus.UNKNOWN)
    assert r.certificate_status == ocsp.OCSPCertStatus.UNKNOWN


def test_revocation_answered_at_once(env):
    """A request sent after vigil-store returned is answered from its commit,
    whichever worker takes it, cached answers included, and no later answer
    goes back to the status before it. Each request is on a new connection,
    which SO_REUSEPORT spreads over both workers; a worker that moved to the
    new snapshot only at its next 50 ms tick fails this at once."""
    serial, path = env.spare[0]
    cert, issuer = load_cert(path), env.ca_cert["rsa1"]
    der = make_request(cert, issuer)

    def answers(want, reason=None):
        for i in range(6):  # GET (cached by both workers) and POST, alternately
            method = env.resp.get if i % 2 == 0 else env.resp.post
            r = check_response(method(der)[2], issuer)
            assert r.certificate_status == want, f"answer {i} after the commit"
            if reason:
                assert r.revocation_reason == reason

    answers(ocsp.OCSPCertStatus.GOOD)
    for _ in range(8):
        env.store.store("revoke", "rsa1", serial, "--reason", "certificateHold")
        answers(ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.certificate_hold)
        env.store.store("release", "rsa1", serial)
        answers(ocsp.OCSPCertStatus.GOOD)
    env.store.store("revoke", "rsa1", serial, "--reason", "keyCompromise")
    rc, out = openssl_ocsp("-issuer", env.rsa.cert, "-CAfile", env.rsa.cert, "-url",
                           f"http://127.0.0.1:{env.resp.port}/", "-serial", "0x" + serial)
    assert "revoked" in out and "keyCompromise" in out, out
    answers(ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.key_compromise)


def test_invalidity_date(env):
    serial, path = env.spare[2]
    cert, issuer = load_cert(path), env.ca_cert["rsa1"]
    env.store.store("revoke", "rsa1", serial, "--reason", "keyCompromise", "--time",
                    "2026-01-02T03:04:05Z", "--invalidity-date", "2025-12-31T00:00:00Z")
    r = wait_status(env, cert, issuer, ocsp.OCSPCertStatus.REVOKED)
    assert r.revocation_time == datetime.datetime(2026, 1, 2, 3, 4, 5)
    inv = r.single_extensions.get_extension_for_class(x509.InvalidityDate).value
    assert inv.invalidity_date == datetime.datetime(2025, 12, 31)


def test_release_hold_seen(env):
    serial, path = env.spare[1]
    cert, issuer = load_cert(path), env.ca_cert["rsa1"]
    env.store.store("revoke", "rsa1", serial, "--reason", "certificateHold")
    r = wait_status(env, cert, issuer, ocsp.OCSPCertStatus.REVOKED)
    assert r.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert r.revocation_reason == x509.ReasonFlags.certificate_hold
    env.store.store("release", "rsa1", serial)
    r = wait_status(env, cert, issuer, ocsp.OCSPCertStatus.GOOD)
    assert r.certificate_status == ocsp.OCSPCertStatus.GOOD


# ---- operations ---------------------------------------------------------------------------

def test_healthz_and_metrics(env):
    # An answer signed, then served twice from the cache (shared by the workers).
    cert, issuer = leaf(env, env.ec, env.good["ec1"])
    der = make_request(cert, issuer, alg=hashes.SHA256())
    for _ in range(3):
        assert check_response(env.resp.get(der)[2], issuer).certificate_status == \
            ocsp.OCSPCertStatus.GOOD
    status, h, body = env.resp.request("GET", "/healthz")
    assert status == 200 and body == b"ok\n"
    # The cache's oldest nextUpdate is measured by its sweep, once a second.
    deadline = time.monotonic() + 3
    while True:
        status, h, body = env.resp.request("GET", "/metrics")
        assert status == 200 and h["content-type"].startswith("text/plain; version=0.0.4")
        text = body.decode()
        if re.search(r"^vigil_cache_oldest_next_update_seconds ", text, re.M) or \
                time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for name in ["vigil_http_responses_total{code=\"200\"}", "vigil_ocsp_responses_total",
                 "vigil_ocsp_certificates_total{ca=\"rsa1\",status=\"good\"}",
                 "vigil_cache_hits_total", "vigil_signatures_total", "vigil_signing_seconds_total",
                 "vigil_request_duration_seconds_bucket{le=\"+Inf\"}", "vigil_connections_open",
                 "vigil_cache_oldest_next_update_seconds"]:
        assert name in text, name
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            values[k] = float(v)
    assert values["vigil_cache_hits_total"] > 0
    assert values["vigil_signatures_total"] > 0
    assert values["vigil_connections_open"] >= 1
    left = values["vigil_cache_oldest_next_update_seconds"]
    assert 3 * 86400 < left <= 4 * 86400
    # The access log got a line per request.
    log = (env.root / "access.log").read_text()
    assert re.search(r'peer=127\.0\.0\.1:\d+ method=GET path="/healthz" status=200 bytes=3 ', log)


def test_crl_download(env):
    pem = env.root / "rsa1-crl.pem"
    run("openssl", "ca", "-batch", "-config", env.rsa.cnf, "-gencrl", "-out", pem)
    der = env.crl_dir / "rsa1.crl"
    run("openssl", "crl", "-in", pem, "-outform", "DER", "-out", der)
    status, h, body = env.resp.request("GET", "/crl/rsa1.crl")
    assert status == 200 and h["content-type"] == "application/pkix-crl"
    assert body == der.read_bytes()
    crl = x509.load_der_x509_crl(body)
    assert http_date(h["expires"]) == crl.next_update
    assert http_date(h["last-modified"]) == crl.last_update
    assert crl.is_signature_valid(env.ca_cert["rsa1"].public_key())
    status, h2, body2 = env.resp.request("GET", "/crl/rsa1.crl",
                                         headers={"If-None-Match": h["etag"]})
    assert status == 304 and body2 == b""
    status, hh, bodyh = env.resp.request("HEAD", "/crl/rsa1.crl")
    assert status == 200 and bodyh == b"" and hh["content-length"] == str(len(body))
    # A newly published CRL (atomic rename) is served at once.
    time.sleep(0.01)
    run("openssl", "ca", "-batch", "-config", env.rsa.cnf, "-gencrl", "-crldays", "2",
            "-out", pem)
    tmp = env.crl_dir / "rsa1.crl.tmp"
    run("openssl", "crl", "-in", pem, "-outform", "DER", "-out", tmp)
    os.rename(tmp, der)
    status, h3, body3 = env.resp.request("GET", "/crl/rsa1.crl")
    assert status == 200 and body3 == der.read_bytes() and h3["etag"] != h["etag"]
    assert env.resp.request("GET", "/crl/ec1.crl")[0] == 404  # not published
    assert env.resp.request("GET", "/crl/nosuch.crl")[0] == 404
    assert env.resp.request("GET", "/crl/../vigil.conf")[0] == 404
    # What vigil-crlgen publishes is served as it lands.
    env.store.crlgen("--once", "--ca", "ec1", timeout=60)
    status, h, body = env.resp.request("GET", "/crl/ec1.crl")
    assert status == 200 and body == (env.crl_dir / "ec1.crl").read_bytes()
    crl = x509.load_der_x509_crl(body)
    assert crl.is_signature_valid(env.ca_cert["ec1"].public_key())
    assert http_date(h["expires"]) == crl.next_update


# ---- separate responders: reload, limits, stop ----------------------------------------------

def big_crl(ca, path, entries):
    """A CRL of |entries| revoked serials signed by |ca| (RSA), DER, written
    by hand: python3-cryptography's builder takes minutes for 200,000."""
    der = CrlMaker(ca, entries).make()
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(load_cert(ca.cert).public_key()) and len(crl) == entries
    path.write_bytes(der)
    return der


def test_slow_reader_gets_the_whole_crl(env, tmp_path):
    """A client that reads a large answer (a 4.6 MB CRL, more than the kernel's
    socket buffers take) more slowly than idle_timeout (here 0.5 s) allows
    for the whole of it still gets all of it,
    with keep-alive and with Connection: close: a deadline moves on while the
    answer is being read (and only then: no more than one idle_timeout
    without progress)."""
    crl_dir = tmp_path / "crl"
    crl_dir.mkdir()
    want = big_crl(env.rsa, crl_dir / "rsa1.crl", 200_000)
    assert len(want) > 4_500_000
    conf = write_config(tmp_path / "v.conf", env.root / "store", [(env.rsa, {})],
                        responder={"idle_timeout": "500ms", "workers": "1"}, crl_out=crl_dir)

    def slow_get(port, close):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /crl/rsa1.crl HTTP/1.1\r\nHost: x\r\n" +
                  (b"Connection: close\r\n" if close else b"") + b"\r\n")
        data, t0 = b"", time.monotonic()
        try:
            while time.monotonic() - t0 < 30:  # bounded
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data:
                    head, body = data.split(b"\r\n\r\n", 1)
                    n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
                    if len(body) >= n:
                        break
                time.sleep(0.03)  # at most about 2 MB/s: 2 s or more for the whole
        finally:
            s.close()
        return data, time.monotonic() - t0

    with Responder(conf) as r:
        for close in (False, True):
            data, took = slow_get(r.port, close)
            head, body = data.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 200"), head
            assert took > 1, took  # slower than idle_timeout
            assert body == want, (len(body), len(want), close)
        assert r.request("GET", "/healthz")[0] == 200


def test_sighup_reload(env, tmp_path):
    alog = tmp_path / "access.log"
    conf = write_config(tmp_path / "r.conf", env.root / "store", [(env.rsa, {})],
                        responder={"workers": "1", "access_log": alog})
    ec_cert, ec_issuer = leaf(env, env.ec, env.good["ec1"])
    with Responder(conf) as r:
        status, _, body = r.post(make_request(ec_cert, ec_issuer))
        assert status_of(body) == ocsp.OCSPResponseStatus.UNAUTHORIZED
        keep = r.conn()
        keep.request("GET", "/healthz")
        assert keep.getresponse().read() == b"ok\n"
        # Add a CA and a base path, then SIGHUP.
        write_config(conf, env.root / "store", [(env.rsa, {}), (env.ec, {"ocsp_validity": "1d"})],
                     responder={"workers": "1", "base_path": "/ocsp", "access_log": alog})
        os.rename(alog, tmp_path / "access.log.1")  # as logrotate does
        n = r.n_lines()
        r.signal(signal.SIGHUP)
        r.wait_log(r"event=reloaded", start=n)
        status, h, body = r.get(make_request(ec_cert, ec_issuer), prefix="/ocsp/")
        resp = check_response(body, ec_issuer)
        assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert resp.next_update - resp.this_update == datetime.timedelta(days=1)
        # The access log was reopened: new lines go to the new file.
        assert 'path="/ocsp/' in alog.read_text()
        assert "/ocsp/" not in (tmp_path / "access.log.1").read_text()
        # The connection opened before the reload still works.
        keep.request("GET", "/healthz")
        assert keep.getresponse().read() == b"ok\n"
        keep.close()
        # A bad config is refused; the old one keeps serving.
        conf.write_text(conf.read_text() + "\n[responder]\nbogus_key = 1\n")
        n = r.n_lines()
        r.signal(signal.SIGHUP)
        line = r.wait_log(r"event=reload_failed", start=n)
        assert "bogus_key" in line
        status, h, body = r.post(make_request(ec_cert, ec_issuer))
        assert check_response(body, ec_issuer).certificate_status == ocsp.OCSPCertStatus.GOOD
        # A key that does not match its certificate is refused too.
        write_config(conf, env.root / "store", [(env.rsa, {})], responder={"workers": "1"})
        conf.write_text(conf.read_text().replace(str(env.rsa.ocsp_key), str(env.ec.ocsp_key)))
        n = r.n_lines()
        r.signal(signal.SIGHUP)
        r.wait_log(r"event=reload_failed .*does not match", start=n)
        assert r.post(make_request(ec_cert, ec_issuer))[0] == 200
        assert r.stop() == 0


def test_max_connections_503(env, tmp_path):
    conf = write_config(tmp_path / "m.conf", env.root / "store", [(env.rsa, {})],
                        responder={"workers": "1", "max_connections": "2"})
    with Responder(conf) as r:
        held = [socket.create_connection(("127.0.0.1", r.port), timeout=5) for _ in range(2)]
        try:
            for s in held:  # both accepted and kept open (keep-alive)
                s.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
                assert parse_responses(recv_all_until(s, b"ok\n"))[0][0] == 200
            data = r.raw(b"GET /healthz HTTP/1.1\r\n\r\n", timeout=5)
            assert parse_responses(data)[0][0] == 503
            r.wait_log(r"event=conn_refused reason=max_connections")
        finally:
            for s in held:
                s.close()
        deadline = time.monotonic() + 5
        while r.request("GET", "/healthz")[0] != 200:  # once the server saw the closes
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert r.stop() == 0


def test_sigterm_drains(env, tmp_path):
    # workers = 0: one per CPU.
    conf = write_config(tmp_path / "t.conf", env.root / "store", [(env.rsa, {})],
                        responder={"workers": "0"})
    r = Responder(conf)
    with r:
        idle = socket.create_connection(("127.0.0.1", r.port), timeout=5)
        idle.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
        assert parse_responses(recv_all_until(idle, b"ok\n"))[0][0] == 200
        t0 = time.monotonic()
        assert r.stop() == 0
        assert time.monotonic() - t0 < 5
        assert idle.recv(10) == b""  # closed by the server
        idle.close()
        r.wait_log(r"event=stopped")
        assert re.search(rf"workers={os.cpu_count()} ", r.wait_log(r"event=listening"))
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", r.port), timeout=1).close()


def test_sigterm_finishes_requests_in_flight(env, tmp_path):
    """A request half received when SIGTERM arrives is still answered (with
    Connection: close) before the responder exits."""
    conf = write_config(tmp_path / "d.conf", env.root / "store", [(env.rsa, {})],
                        responder={"workers": "1"})
    cert, issuer = leaf(env, env.rsa, env.good["rsa1"])
    der = make_request(cert, issuer)
    with Responder(conf) as r:
        s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
        s.sendall(b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(der) + der[:10])
        time.sleep(0.1)
        n = r.n_lines()
        r.signal(signal.SIGTERM)
        r.wait_log(r"event=stopping", start=n)
        s.sendall(der[10:])
        (status, h, body), = parse_responses(recv_all(s, 5))
        s.close()
        assert status == 200 and h["connection"] == "close"
        check_response(body, issuer)
        assert r.proc.wait(10) == 0
        r.check_sanitizers()


# ---- command line ---------------------------------------------------------------------------

def run_resp(*args):
    return subprocess.run([str(binary("vigil-responder"))] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=20)


def test_delegated_signer_checked(env, tmp_path):
    """ocsp_cert must carry the CA's signature, not only its name: one issued
    by another CA of the same name (with no authority key identifier to tell
    them apart) is refused at start in one line, and so is one that is not
    valid yet. (Clients would refuse every answer it signs.)"""
    ext = tmp_path / "ext.cnf"
    ext.write_text("[e]\nbasicConstraints = CA:false\nkeyUsage = critical, digitalSignature\n"
                   "extendedKeyUsage = critical, OCSPSigning\nnoCheck = ignored\n")
    good_conf = write_config(tmp_path / "good.conf", env.root / "store", [(env.rsa, {})])

    def signed_by(ca, name, *extra):
        csr, out = tmp_path / f"{name}.csr", tmp_path / f"{name}.pem"
        run("openssl", "req", "-new", "-config", ca.cnf, "-key", env.rsa.ocsp_key,
                "-subj", f"/CN={name}", "-out", csr)
        run("openssl", "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key,
                "-set_serial", "77", "-days", "30", "-extfile", ext, "-extensions", "e",
                "-out", out, *extra)
        conf = tmp_path / f"{name}.conf"
        conf.write_text(good_conf.read_text().replace(str(env.rsa.ocsp_cert), str(out)))
        return conf

    assert run_resp("-c", signed_by(env.rsa, "real"), "--check").returncode == 0
    impostor = pki.CA(tmp_path / "impostor", env.rsa.name, env.rsa.keytype)
    r = run_resp("-c", signed_by(impostor, "fake"), "--check")
    assert r.returncode == 1 and "is not issued by the CA cert" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    # Not valid yet: the CA's own signature, notBefore a day ahead
    # (python3-cryptography, so that the CA's openssl index is left alone).
    ca_key = serialization.load_pem_private_key(env.rsa.key.read_bytes(), None)
    ca_cert = load_cert(env.rsa.cert)
    signer_key = serialization.load_pem_private_key(env.rsa.ocsp_key.read_bytes(), None)
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name.from_rfc4514_string("CN=future OCSP"))
            .issuer_name(ca_cert.subject).public_key(signer_key.public_key())
            .serial_number(78).not_valid_before(now + datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.OCSP_SIGNING]), True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), False)
            .sign(ca_key, hashes.SHA256()))
    fut = tmp_path / "fut.pem"
    fut.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    conf = tmp_path / "fut.conf"
    conf.write_text(good_conf.read_text().replace(str(env.rsa.ocsp_cert), str(fut)))
    r = run_resp("-c", conf, "--check")
    assert r.returncode == 1 and "not valid yet" in r.stderr and r.stderr.count("\n") == 1, \
        r.stderr


def test_cli(env, tmp_path):
    r = run_resp("--help")
    assert r.returncode == 0 and "SYNOPSIS" in r.stdout and "SIGHUP" in r.stdout
    assert "vigil-responder -c FILE" in r.stdout and "EXIT STATUS" in r.stdout
    for args, code in [((), 2), (("--bogus",), 2), (("-c",), 2), (("-c", "x", "extra"), 2),
                       (("-c", tmp_path / "missing.conf"), 1),
                       (("-c", env.config, "--listen", "nonsense"), 2)]:
        r = run_resp(*args)
        assert r.returncode == code, (args, r.stderr)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("vigil-responder: "), r.stderr
    bad = tmp_path / "bad.conf"
    write_config(bad, env.root / "store", [(env.rsa, {"ocsp_validity": "20d"})])
    r = run_resp("-c", bad)
    assert r.returncode == 1 and "ocsp_validity" in r.stderr and r.stderr.count("\n") == 1
    r = run_resp("-c", env.config, "--check")
    assert r.returncode == 0, r.stderr
    # --listen overrides the config.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Responder(env.config, ["--listen", f"127.0.0.1:{port}"]) as rr:
        assert rr.port == port
        assert rr.request("GET", "/healthz")[0] == 200
        # A second responder on the same port is refused (SO_REUSEPORT would
        # otherwise let it share the first one's clients).
        r = run_resp("-c", env.config, "--listen", f"127.0.0.1:{port}")
        assert r.returncode == 1 and "in use" in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert rr.request("GET", "/healthz")[0] == 200
