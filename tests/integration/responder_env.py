# SPDX-License-Identifier: Apache-2.0
"""The shared responder of test_responder.py and test_responder_http.py: one
PKI (RSA, ECDSA and Ed25519 CAs, two CAs to freeze, one foreign CA), one store
and one responder with two workers per test module, and the helpers that ask it."""
import time

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

import pki
from conftest import Runner, write_config
from responder_util import Responder, check_response, load_cert, make_request

REASONS = ["unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
           "cessationOfOperation", "certificateHold", "privilegeWithdrawn", "aACompromise"]
# unspecified (0) is left out of the answer, as out of CRLs (RFC 5280 §5.3.1,
# Baseline Requirements §7.2.2 and §7.3.2).
OCSP_REASON = {
    "unspecified": None,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "cACompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "certificateHold": x509.ReasonFlags.certificate_hold,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
    "aACompromise": x509.ReasonFlags.aa_compromise,
}


class Env:
    pass


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One PKI (RSA, ECDSA and Ed25519 CAs, two CAs to freeze, one foreign CA),
    one store and one responder with two workers for the whole module."""
    e = Env()
    root = tmp_path_factory.mktemp("resp")
    e.root = root
    e.rsa = pki.CA(root, "rsa1", "rsa")
    e.ec = pki.CA(root, "ec1", "ec")
    e.ed = pki.CA(root, "ed1", "ed25519")
    e.frz_unk = pki.CA(root, "frzunk", "ec")
    e.frz_rev = pki.CA(root, "frzrev", "ec")
    e.foreign = pki.CA(root, "foreign", "ec")
    e.good = {}
    for ca in (e.rsa, e.ec, e.ed, e.frz_unk, e.frz_rev):
        serial, path = ca.issue(f"good.{ca.name}.example")
        e.good[ca.name] = (serial, path)
    # Revoked through `openssl ca -revoke`, imported from index.txt.
    e.idx_revoked = e.rsa.issue("idx-revoked.example")
    e.rsa.revoke(e.idx_revoked[1], "keyCompromise")
    e.foreign_leaf = e.foreign.issue("foreign.example")
    # Leaves to revoke with vigil-store, one per reason.
    e.by_reason = {r: e.rsa.issue(f"{r}.example") for r in REASONS}
    e.spare = [e.rsa.issue(f"spare{i}.example") for i in range(3)]
    e.crl_dir = root / "crl"
    e.crl_dir.mkdir()
    e.config = write_config(
        root / "vigil.conf", root / "store",
        [(e.rsa, {}), (e.ec, {}), (e.ed, {"delegated": False}), (e.frz_unk, {}),
         (e.frz_rev, {"not_issued": "revoked"})],
        responder={"header_timeout": "1s", "body_timeout": "1s", "idle_timeout": "5s",
                   "max_certids": "4", "access_log": root / "access.log"},
        crl_out=e.crl_dir)
    e.store = Runner(e.config).seed(e.rsa, e.ec, e.ed, e.frz_unk, e.frz_rev)
    for r, (serial, _) in e.by_reason.items():
        e.store.store("revoke", "rsa1", serial, "--reason", r)
    e.ca_cert = {ca.name: load_cert(ca.cert) for ca in (e.rsa, e.ec, e.ed, e.frz_unk, e.frz_rev,
                                                          e.foreign)}
    e.resp = Responder(e.config)
    e.resp.start()
    yield e
    try:
        assert e.resp.stop() == 0
    finally:
        e.resp.__exit__(None, None, None)


def leaf(env, ca, serial_path):
    return load_cert(serial_path[1]), env.ca_cert[ca.name]


def ask(env, cert, issuer, **kw):
    status, headers, body = env.resp.post(make_request(cert, issuer, **kw))
    assert status == 200
    assert headers["content-type"] == "application/ocsp-response"
    return check_response(body, issuer)


def wait_status(env, cert, issuer, want, timeout=2.0):
    """Ask until the answer is |want|, for the tests of what an answer says
    rather than of when (an answer follows every commit made before its
    request: test_revocation_answered_at_once)."""
    deadline = time.monotonic() + timeout
    while True:
        r = ask(env, cert, issuer)
        if r.certificate_status == want or time.monotonic() > deadline:
            return r
        time.sleep(0.02)


def assert_alive(env):
    """The responder still answers OCSP after whatever the test did."""
    cert, issuer = leaf(env, env.rsa, env.good["rsa1"])
    r = ask(env, cert, issuer)
    assert r.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert env.resp.proc.poll() is None
