# SPDX-License-Identifier: Apache-2.0
"""Issue 11 item 2: a signer certificate that expires.

An answer's nextUpdate (and so Expires, max-age and the responder's own cache)
never outlives the certificate that signed it; a signer nearing its notAfter
is logged at start and once a day, and one past it is logged without any
client asking; then /healthz is 503 and answers that need a signature are
tryLater (RFC 6960 §2.3). crlgen caps a CRL's nextUpdate at the CA
certificate's notAfter and signs nothing once it has passed.

Answers are read with python3-cryptography and `openssl ocsp`; the signer
certificates are made with python3-cryptography (pki.make_ocsp_signer,
pki.reissue_ca_cert), which can give them any validity.
"""
import datetime
import re
import signal
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

import pki
from conftest import Runner, write_config
from responder_util import (Responder, check_response, http_date, load_cert, make_request,
                            openssl_ocsp)

UTC = datetime.datetime.utcnow


@pytest.fixture(scope="module")
def pkienv(tmp_path_factory):
    root = tmp_path_factory.mktemp("expiry")
    ca = pki.CA(root, "exp1", "ec")
    serials = [ca.issue(f"leaf{i}.example")[0] for i in range(3)]
    store = root / "store"
    Runner(write_config(root / "seed.conf", store, [ca])).seed(ca)
    return root, ca, store, serials


def conf_with(root, ca, store, name, signer=None, cert=None, opts=None):
    """A config whose [ca] uses |signer| as ocsp_cert (None: the CA key signs)
    and |cert| as the CA certificate."""
    o = dict(opts or {})
    if signer is None:
        o["delegated"] = False
    else:
        o["ocsp_cert"] = signer
    if cert is not None:
        o["cert"] = cert
    return write_config(root / f"{name}.conf", store, [(ca, o)])


def leaf_req(ca, serial, nonce=None):
    cert = load_cert(ca.leaves[serial])
    return make_request(cert, load_cert(ca.cert), nonce=nonce)


def answer(resp, ca, serial, nonce=None):
    status, hdrs, body = resp.post(leaf_req(ca, serial, nonce))
    assert status == 200, status
    return ocsp.load_der_ocsp_response(body)


def test_delegated_signer_expires_while_running(pkienv, tmp_path):
    """A signer expiring seconds after start: answers before end at its
    notAfter; after it, with no client request, the expiry is logged and
    /healthz turns 503; then every answer needing a signature is tryLater."""
    root, ca, store, serials = pkienv
    not_after = pki.make_ocsp_signer(ca, tmp_path / "short.pem", UTC() + datetime.timedelta(seconds=7))
    conf = conf_with(root, ca, store, "short", signer=tmp_path / "short.pem")
    with Responder(conf) as resp:
        resp.wait_log(r"event=signer_expires_soon ca=exp1 .*days_left=0 ")
        # Before: nextUpdate is the signer's notAfter, not now + 4 days.
        r = check_response(resp.post(leaf_req(ca, serials[0]))[2], load_cert(ca.cert))
        assert r.certificates[0].not_valid_after == not_after
        assert r.this_update <= r.next_update == not_after, (r.next_update, not_after)
        # GET: Expires is nextUpdate, max-age reaches no further.
        status, hdrs, body = resp.get(leaf_req(ca, serials[1]))
        assert status == 200 and ocsp.load_der_ocsp_response(body).next_update == not_after
        assert http_date(hdrs["expires"]) == not_after
        age = int(re.search(r"max-age=(\d+)", hdrs["cache-control"]).group(1))
        assert age <= (not_after - http_date(hdrs["date"])).total_seconds()
        # openssl's view: verifies, Next Update at the signer's notAfter.
        rc, out = openssl_ocsp("-issuer", ca.cert, "-cert", ca.leaves[serials[2]], "-CAfile",
                               ca.cert, "-url", f"http://127.0.0.1:{resp.port}/", "-resp_text",
                               "-no_nonce")
        assert rc == 0 and "Response verify OK" in out, out
        nu = re.search(r"Next Update: (.+ GMT)", out).group(1)
        assert datetime.datetime.strptime(nu, "%b %d %H:%M:%S %Y GMT") == not_after, out
        assert 0 < resp.metric('vigil_signer_expiry_seconds{ca="exp1"}') <= 7
        assert resp.request("GET", "/healthz")[0] == 200

        # After: logged within the probe period, no request needed.
        n = resp.n_lines()
        wait = (not_after - UTC()).total_seconds()
        line = resp.wait_log(r"event=signer_expired ca=exp1 ", timeout=wait + 5, start=n)
        assert str(tmp_path / "short.pem") in line
        assert UTC() >= not_after
        status, _, body = resp.request("GET", "/healthz")
        assert status == 503 and b"expired" in body, (status, body)
        # The cached answers went with their nextUpdate; fresh ones are not signed.
        for s in serials:
            assert answer(resp, ca, s).response_status == ocsp.OCSPResponseStatus.TRY_LATER
        status, _, body = resp.get(leaf_req(ca, serials[1]))
        assert ocsp.load_der_ocsp_response(body).response_status == \
            ocsp.OCSPResponseStatus.TRY_LATER
        assert answer(resp, ca, serials[0], nonce=b"0123456789abcdef").response_status == \
            ocsp.OCSPResponseStatus.TRY_LATER
        assert resp.metric('vigil_signer_expiry_seconds{ca="exp1"}') <= 0
        assert resp.metric('vigil_signer_expiry_events_total{ca="exp1"}') == 2
        # Said once, not at every probe or answer.
        time.sleep(2.2)
        assert sum("event=signer_expired" in l for l in resp.lines) == 1
        assert resp.stop() == 0


def test_reload_onto_expired_then_renewed_signer(pkienv, tmp_path):
    """20 days left: said at start; a reload onto an already expired signer
    is taken (answers stay tryLater, /healthz 503) until a reload onto a
    renewed one, which clears both at once."""
    root, ca, store, serials = pkienv
    signer = tmp_path / "signer.pem"
    pki.make_ocsp_signer(ca, signer, UTC() + datetime.timedelta(days=20, hours=1))
    conf = conf_with(root, ca, store, "reload", signer=signer)
    with Responder(conf) as resp:
        line = resp.wait_log(r"event=signer_expires_soon ca=exp1 ")
        assert "days_left=20 " in line and str(signer) in line, line
        r = answer(resp, ca, serials[0])
        assert r.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert r.next_update - r.this_update == datetime.timedelta(days=4)
        assert resp.request("GET", "/healthz")[0] == 200
        # Already expired at the reload.
        pki.make_ocsp_signer(ca, signer, UTC() - datetime.timedelta(hours=1))
        n = resp.n_lines()
        resp.signal(signal.SIGHUP)
        resp.wait_log(r"event=reloaded", start=n)
        resp.wait_log(r"event=signer_expired ca=exp1 ", start=n, timeout=3)
        assert resp.request("GET", "/healthz")[0] == 503
        assert answer(resp, ca, serials[0]).response_status == ocsp.OCSPResponseStatus.TRY_LATER
        # Renewed.
        not_after = pki.make_ocsp_signer(ca, signer, UTC() + datetime.timedelta(days=365))
        n = resp.n_lines()
        resp.signal(signal.SIGHUP)
        resp.wait_log(r"event=reloaded", start=n)
        assert resp.request("GET", "/healthz")[0] == 200
        r = check_response(resp.post(leaf_req(ca, serials[0]))[2], load_cert(ca.cert))
        assert r.certificates[0].not_valid_after == not_after
        assert resp.stop() == 0
    assert not any("signer_expires_soon" in l for l in resp.lines[n:])


def test_ca_key_signing_directly_capped_at_ca_cert(pkienv, tmp_path):
    """Without ocsp_cert the CA certificate is the signer: its notAfter caps
    nextUpdate (20 hours left, 4-day validity)."""
    root, ca, store, serials = pkienv
    not_after = pki.reissue_ca_cert(ca, tmp_path / "ca-short.pem",
                                    UTC() + datetime.timedelta(hours=20))
    conf = conf_with(root, ca, store, "direct", cert=tmp_path / "ca-short.pem")
    with Responder(conf) as resp:
        resp.wait_log(r"event=signer_expires_soon ca=exp1 .*days_left=0 ")
        r = answer(resp, ca, serials[0])
        assert r.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert not r.certificates and r.next_update == not_after
        assert resp.stop() == 0


def crlgen(conf, *args):
    return Runner(conf).crlgen(*args, check=False, timeout=60)


def test_crlgen_caps_next_update_and_refuses_when_expired(pkienv, tmp_path):
    root, ca, store, _ = pkienv
    out = tmp_path / "crl"
    # Under two days left, crl_validity 7 days: nextUpdate at the notAfter.
    not_after = pki.reissue_ca_cert(ca, tmp_path / "ca-2d.pem",
                                    UTC() + datetime.timedelta(days=2) - datetime.timedelta(hours=1))
    conf = conf_with(root, ca, store, "crl2d", cert=tmp_path / "ca-2d.pem",
                     opts={"crl_validity": "7d"})
    conf.write_text(conf.read_text().replace(f"out = {root / 'crl'}", f"out = {out}"))
    r = crlgen(conf, "--once")
    assert r.returncode == 0, r.stderr
    assert re.search(r"event=crl_signer_expires_soon ca=exp1 .*days_left=1 ", r.stderr), r.stderr
    crl = x509.load_der_x509_crl((out / "exp1.crl").read_bytes())
    assert crl.next_update == not_after
    assert crl.is_signature_valid(load_cert(tmp_path / "ca-2d.pem").public_key())
    rc = subprocess.run(["openssl", "crl", "-in", out / "exp1.crl", "-inform", "DER", "-noout",
                         "-nextupdate"], capture_output=True, text=True)
    assert not_after.strftime("%b %e %H:%M:%S %Y GMT").replace("  ", " ") in \
        rc.stdout.replace("  ", " "), rc.stdout
    published = (out / "exp1.crl").read_bytes()
    # Expired: nothing signed, nothing published, a non-zero exit.
    pki.reissue_ca_cert(ca, tmp_path / "ca-old.pem", UTC() - datetime.timedelta(seconds=5))
    conf.write_text(conf.read_text().replace(str(tmp_path / "ca-2d.pem"),
                                             str(tmp_path / "ca-old.pem")))
    r = crlgen(conf, "--once")
    assert r.returncode != 0
    assert "event=crl_signer_expired ca=exp1 " in r.stderr, r.stderr
    assert re.search(r"event=crl_failed ca=exp1 .*expired", r.stderr), r.stderr
    assert (out / "exp1.crl").read_bytes() == published
