# SPDX-License-Identifier: Apache-2.0
"""Keys in an HSM: ocsp_key and crl_key as pkcs11: URIs (RFC 7512), with a
SoftHSM2 token in a temporary directory holding an ECDSA P-256 and an
RSA-2048 key. The CA certificates and leaves are signed by the token through
the openssl CLI; the real vigil-responder and vigil-crlgen sign through the
token, and openssl (ocsp -CAfile, crl -CAfile, verify -crl_check) and
python3-cryptography check what they produce."""
import concurrent.futures
import os
import re
import signal
import subprocess
import types

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

import crlgen_util
import hsm_util
import responder_util as ru
from conftest import Runner, binary, write_config

pytestmark = pytest.mark.skipif(hsm_util.missing() is not None,
                                reason=str(hsm_util.missing()))


def clean_env(token):
    """The environment the programs run in: the token's SOFTHSM2_CONF and no
    PIN or module from the caller's environment."""
    env = dict(token.env)
    env.pop("VIGIL_PKCS11_PIN", None)
    env.pop("VIGIL_PKCS11_MODULE", None)
    return env


@pytest.fixture(scope="module")
def hsm(tmp_path_factory):
    """A token, two CAs keyed in it (ECDSA and RSA), three leaves each (one
    revoked, one never asked about), a store with them and a config."""
    tmp = tmp_path_factory.mktemp("hsm")
    token = hsm_util.Token(tmp)
    cas = [hsm_util.HsmCA(tmp, "hsm-ec", token, "ec"), hsm_util.HsmCA(tmp, "hsm-rsa", token, "rsa")]
    leaves = {}
    for ca in cas:
        good = ca.issue("good.example")
        revoked = ca.issue("revoked.example")
        ca.revoke(revoked[1])
        later = ca.issue("later.example")
        leaves[ca.name] = {"good": good, "revoked": revoked, "later": later}
    config = write_config(tmp / "vigil.conf", tmp / "store", cas)
    Runner(config).seed(*cas)
    mp = pytest.MonkeyPatch()
    for k, v in clean_env(token).items():
        mp.setenv(k, v)
    mp.delenv("VIGIL_PKCS11_PIN", raising=False)
    mp.delenv("VIGIL_PKCS11_MODULE", raising=False)
    yield {"tmp": tmp, "token": token, "cas": {ca.name: ca for ca in cas}, "leaves": leaves,
           "config": config}
    mp.undo()


def run_bin(name, *args, env=None, timeout=60):
    return subprocess.run([str(binary(name)), *[str(a) for a in args]], capture_output=True,
                          text=True, env=env, timeout=timeout)


def one_line(r):
    """A start-up failure: non-zero exit and exactly one line on stderr."""
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode != 0, r.stderr
    assert len(lines) == 1, "expected one line on stderr, got:\n" + r.stderr
    return lines[0]


def test_keys_stay_in_the_token(hsm):
    """The private keys were generated in the token and cannot leave it; the
    CA certificates carry the token's public keys."""
    listing = hsm["token"].objects()
    privs = re.findall(r"Private Key Object.*?Access:\s*([^\n]*)", listing, re.S)
    assert len(privs) == 2, listing
    for access in privs:
        assert "sensitive" in access and "never extractable" in access, access
    kinds = {ca.name: type(ru.load_cert(ca.cert).public_key()).__name__
             for ca in hsm["cas"].values()}
    assert "EllipticCurvePublicKey" in kinds["hsm-ec"] and "RSAPublicKey" in kinds["hsm-rsa"]
    assert not list(hsm["tmp"].glob("*/ca.key"))


def test_responder_answers_signed_through_the_token(hsm):
    with ru.Responder(hsm["config"]) as r:
        url = f"http://127.0.0.1:{r.port}/"
        for name, ca in hsm["cas"].items():
            want = {"good": "good", "revoked": "revoked"}
            for kind, status in want.items():
                serial, leaf = hsm["leaves"][name][kind]
                # With a nonce (signed for this request) and without (cacheable).
                for nonce in ([], ["-no_nonce"]):
                    rc, out = ru.openssl_ocsp("-issuer", ca.cert, "-cert", leaf, "-url", url,
                                              "-CAfile", ca.cert, *nonce)
                    assert rc == 0 and "Response verify OK" in out, out
                    assert f"{leaf}: {status}" in out, out
            # A never-issued serial: unknown, still signed by the token.
            rc, out = ru.openssl_ocsp("-issuer", ca.cert, "-serial", "0x7777", "-url", url,
                                      "-CAfile", ca.cert)
            assert rc == 0 and "Response verify OK" in out and "unknown" in out, out
            # The same answers through python3-cryptography, over GET.
            cacert = ru.load_cert(ca.cert)
            serial, leaf = hsm["leaves"][name]["revoked"]
            status, hdrs, der = r.get(ru.make_request(ru.load_cert(leaf), cacert))
            assert status == 200
            resp = ru.check_response(der, cacert)
            assert resp.certificate_status == ocsp.OCSPCertStatus.REVOKED
            alg = resp.signature_algorithm_oid
            assert alg == (x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256 if name == "hsm-ec"
                           else x509.SignatureAlgorithmOID.RSA_WITH_SHA256)
        assert r.stop() == 0


def test_crls_signed_through_the_token(hsm):
    r = run_bin("vigil-crlgen", "-c", hsm["config"], "--once")
    assert r.returncode == 0, r.stderr
    out = hsm["tmp"] / "crl"
    for name, ca in hsm["cas"].items():
        crl_der = out / f"{name}.crl"
        ok, text = crlgen_util.openssl_crl_verify(crl_der, ca.cert)
        assert ok, text
        crl = x509.load_der_x509_crl(crl_der.read_bytes())
        assert crlgen_util.signature_valid(crl, ru.load_cert(ca.cert).public_key())
        assert crl.signature_algorithm_oid == (
            x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256 if name == "hsm-ec"
            else x509.SignatureAlgorithmOID.RSA_WITH_SHA256)
        revoked_serial = hsm["leaves"][name]["revoked"][0]
        assert set(crlgen_util.entries(crl)) == {revoked_serial.lstrip("0")}
        # A relying party's view: openssl verify -crl_check with this CRL.
        pem = out / f"{name}.crl.pem"
        for kind, expect in (("good", "OK"), ("revoked", "certificate revoked")):
            leaf = hsm["leaves"][name][kind][1]
            v = subprocess.run(["openssl", "verify", "-crl_check", "-CAfile", str(ca.cert),
                                "-CRLfile", str(pem), str(leaf)], capture_output=True, text=True)
            assert expect in v.stdout + v.stderr, v.stdout + v.stderr


def test_pin_and_module_from_the_environment(hsm):
    """Without pin-source the PIN comes from VIGIL_PKCS11_PIN; the module
    from module-path in the URI or VIGIL_PKCS11_MODULE."""
    token, tmp = hsm["token"], hsm["tmp"]
    cas = list(hsm["cas"].values())
    bare = {ca.name: f"pkcs11:token={token.label};object={ca.obj};type=private" for ca in cas}
    conf = write_config(tmp / "env.conf", tmp / "store",
                        [hsm_util.with_key(ca, bare[ca.name]) for ca in cas])
    env = clean_env(token)
    line = one_line(run_bin("vigil-responder", "-c", conf, "--check", env=env))
    assert "no PIN" in line and "VIGIL_PKCS11_PIN" in line, line
    env["VIGIL_PKCS11_PIN"] = hsm_util.PIN
    env["VIGIL_PKCS11_MODULE"] = hsm_util.SOFTHSM_MODULE
    r = run_bin("vigil-responder", "-c", conf, "--check", env=env)
    assert r.returncode == 0, r.stderr
    r = run_bin("vigil-crlgen", "-c", conf, "--once", env=env)
    assert r.returncode == 0, r.stderr
    # A module that is not there, named by the environment or by the URI.
    env["VIGIL_PKCS11_MODULE"] = "/nonexistent/libpkcs11.so"
    line = one_line(run_bin("vigil-responder", "-c", conf, "--check", env=env))
    assert "/nonexistent/libpkcs11.so" in line, line
    withpath = {n: u + f"?module-path={hsm_util.SOFTHSM_MODULE}" for n, u in bare.items()}
    conf = write_config(tmp / "env2.conf", tmp / "store",
                        [hsm_util.with_key(ca, withpath[ca.name]) for ca in cas])
    r = run_bin("vigil-responder", "-c", conf, "--check", env=env)
    assert r.returncode == 0, r.stderr


def test_pin_from_systemd_credentials(hsm):
    """LoadCredential=pkcs11-pin:FILE puts the PIN in $CREDENTIALS_DIRECTORY,
    for this unit alone: read after pin-source and before VIGIL_PKCS11_PIN,
    with the rules of a PIN file (not readable by others, one line)."""
    token, tmp = hsm["token"], hsm["tmp"]
    cas = list(hsm["cas"].values())
    bare = {ca.name: f"pkcs11:token={token.label};object={ca.obj};type=private" for ca in cas}
    conf = write_config(tmp / "cred.conf", tmp / "store",
                        [hsm_util.with_key(ca, bare[ca.name]) for ca in cas])
    creds = tmp / "credentials"
    creds.mkdir()
    pin = creds / "pkcs11-pin"
    pin.write_text(hsm_util.PIN + "\n")
    pin.chmod(0o400)
    env = clean_env(token)
    env["CREDENTIALS_DIRECTORY"] = str(creds)
    env["VIGIL_PKCS11_PIN"] = "9999"  # wrong: the credential comes first
    r = run_bin("vigil-responder", "-c", conf, "--check", env=env)
    assert r.returncode == 0, r.stderr
    r = run_bin("vigil-crlgen", "-c", conf, "--once", env=env)
    assert r.returncode == 0, r.stderr
    # A credential readable by others is refused like a PIN file.
    pin.chmod(0o604)
    line = one_line(run_bin("vigil-responder", "-c", conf, "--check", env=env))
    assert "pkcs11-pin" in line and "others" in line, line
    # No credential of that name: the environment, then the one-line refusal.
    pin.unlink()
    env["VIGIL_PKCS11_PIN"] = hsm_util.PIN
    assert run_bin("vigil-responder", "-c", conf, "--check", env=env).returncode == 0
    del env["VIGIL_PKCS11_PIN"]
    line = one_line(run_bin("vigil-responder", "-c", conf, "--check", env=env))
    assert "no PIN" in line and "LoadCredential=pkcs11-pin" in line, line


def start_failure_cases(hsm):
    token, tmp = hsm["token"], hsm["tmp"]
    wrong = tmp / "wrong.pin"
    wrong.write_text("9999\n")
    wrong.chmod(0o600)
    shared = tmp / "shared.pin"
    shared.write_text(hsm_util.PIN + "\n")
    shared.chmod(0o644)
    noconf = tmp / "no-tokens.conf"
    noconf.write_text(f"directories.tokendir = {tmp}/no-such-dir\nobjectstore.backend = file\n"
                      "log.level = ERROR\n")
    return {
        "missing token": (token.uri("ec").replace("token=vigil", "token=absent"), {},
                          "no token holds a private key that matches"),
        "missing key": (token.uri("ec").replace("object=ec", "object=absent"), {},
                        "no token holds a private key that matches"),
        "wrong PIN": (token.uri("ec", pin_file=wrong), {}, "PIN incorrect"),
        "token directory gone": (token.uri("ec"), {"SOFTHSM2_CONF": str(noconf)},
                                 "could not be loaded or initialised"),
        "PIN in the URI": (f"pkcs11:token=vigil;object=ec;type=private?pin-value={hsm_util.PIN}",
                           {}, "pin-value in the URI"),
        "no PIN file": (token.uri("ec", pin_file=tmp / "absent.pin"), {},
                        "No such file or directory"),
        "PIN file readable by others": (token.uri("ec", pin_file=shared), {},
                                        "accessible by others"),
    }


CASES = ["missing token", "missing key", "wrong PIN", "token directory gone", "PIN in the URI",
         "no PIN file", "PIN file readable by others"]


@pytest.mark.parametrize("case", CASES)
def test_start_fails_in_one_line(hsm, case):
    """Each program stops at start with one line naming the key and why;
    the PIN never appears in it."""
    uri, env_extra, expect = start_failure_cases(hsm)[case]
    ca = hsm["cas"]["hsm-ec"]
    conf = write_config(hsm["tmp"] / "bad.conf", hsm["tmp"] / "store",
                        [hsm_util.with_key(ca, uri)])
    env = dict(clean_env(hsm["token"]), **env_extra)
    for args, name in ((["--check"], "vigil-responder"), ([], "vigil-responder"),
                       (["--once"], "vigil-crlgen")):
        r = run_bin(name, "-c", conf, *args, env=env, timeout=30)
        line = one_line(r)
        assert line.startswith(f"{name}: [ca hsm-ec] "), line
        assert expect in line, line
        assert f"pin-value={hsm_util.PIN}" not in line, line


def test_concurrent_signing_and_reload(hsm):
    """Two workers sign through the same token at once; a reload loads the
    keys again through the same engine."""
    cas = list(hsm["cas"].values())
    with ru.Responder(hsm["config"]) as r:
        def ask(i):
            ca = cas[i % 2]
            cacert = ru.load_cert(ca.cert)
            req = ru.make_request(ru.fake_cert(0x500000 + i, cacert), cacert)
            status, _, der = r.post(req)
            assert status == 200
            resp = ru.check_response(der, cacert)
            assert resp.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
            return True
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            assert all(ex.map(ask, range(64)))
        n = r.n_lines()
        r.signal(signal.SIGHUP)
        r.wait_log(r"event=reloaded", start=n)
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            assert all(ex.map(ask, range(64, 96)))
        assert r.stop() == 0


def test_token_failing_while_running(tmp_path, monkeypatch):
    """The token fails under the running programs (its files vanish; SoftHSM2
    then answers CKR_OBJECT_HANDLE_INVALID to every signature): answers that
    need a signature get tryLater, cached answers are still served, the
    published CRL stays in place, nothing crashes; a reload says the token
    cannot sign and keeps the old configuration."""
    token = hsm_util.Token(tmp_path)
    for k, v in clean_env(token).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("VIGIL_PKCS11_PIN", raising=False)
    monkeypatch.delenv("VIGIL_PKCS11_MODULE", raising=False)
    cas = [hsm_util.HsmCA(tmp_path, "hsm-ec", token, "ec"),
           hsm_util.HsmCA(tmp_path, "hsm-rsa", token, "rsa")]
    issued = {ca.name: [ca.issue(f"leaf{i}.example") for i in range(3)] for ca in cas}
    leaves = {name: [path for _, path in v] for name, v in issued.items()}
    config = write_config(tmp_path / "vigil.conf", tmp_path / "store", cas)
    runner = Runner(config).seed(*cas)
    daemon = None
    with ru.Responder(config) as r:
        cached = {}
        for ca in cas:
            cacert = ru.load_cert(ca.cert)
            req = ru.make_request(ru.load_cert(leaves[ca.name][0]), cacert)
            status, _, der = r.get(req)
            assert status == 200 and ru.check_response(der, cacert)
            cached[ca.name] = (req, der)
        daemon = crlgen_util.Daemon(types.SimpleNamespace(tmp=tmp_path, config=config))
        try:
            assert daemon.wait_log(r"event=watching"), daemon.text()
            assert daemon.wait_log(r"event=crl_published ca=hsm-rsa"), daemon.text()
            crls = {ca.name: (tmp_path / "crl" / f"{ca.name}.crl").read_bytes() for ca in cas}

            token.fail()
            n = r.n_lines()
            for ca in cas:
                cacert = ru.load_cert(ca.cert)
                req, der = cached[ca.name]
                # Cached: the same signed bytes, by GET and by POST.
                status, _, again = r.get(req)
                assert status == 200 and again == der
                status, _, again = r.post(req)
                assert status == 200 and again == der
                # Not cached: a serial not asked before, and any nonce request.
                fresh = ru.make_request(ru.load_cert(leaves[ca.name][1]), cacert)
                nonced = ru.make_request(ru.load_cert(leaves[ca.name][0]), cacert,
                                         nonce=os.urandom(16))
                for q in (fresh, nonced):
                    for method in (r.post, r.get):
                        status, _, out = method(q)
                        assert status == 200
                        assert ru.status_of(out) == ocsp.OCSPResponseStatus.TRY_LATER
            r.wait_log(r"event=sign_failed ca=hsm-ec", start=n)
            r.wait_log(r"event=sign_failed ca=hsm-rsa", start=n)
            # The responder still answers what needs no signature.
            status, _, _ = r.request("GET", "/healthz")
            assert status in (200, 503)
            # A reload cannot load keys the token cannot sign with: it says
            # so and keeps serving with the old configuration.
            n = r.n_lines()
            r.signal(signal.SIGHUP)
            line = r.wait_log(r"event=reload_failed", start=n)
            assert "does not sign with this key" in line and "action=keep_old_config" in line
            status, _, again = r.get(cached["hsm-ec"][0])
            assert status == 200 and again == cached["hsm-ec"][1]

            # crlgen: a revocation while the token is down cannot be signed;
            # the daemon says so, keeps the last CRL in place, and stays up.
            runner.store("revoke", "hsm-ec", issued["hsm-ec"][2][0], "--reason",
                         "keyCompromise")
            assert daemon.wait_log(r"event=crl_failed ca=hsm-ec", timeout=30), daemon.text()
            assert daemon.p.poll() is None, daemon.text()
            for ca in cas:
                assert (tmp_path / "crl" / f"{ca.name}.crl").read_bytes() == crls[ca.name]
                ok, text = crlgen_util.openssl_crl_verify(tmp_path / "crl" / f"{ca.name}.crl",
                                                          ca.cert)
                assert ok, text
            assert r.proc.poll() is None
        finally:
            rc = daemon.stop()
        text = daemon.final
        assert rc is not None and rc >= 0, text  # stopped, not killed by a signal
        assert "Sanitizer" not in text and "runtime error:" not in text, text
        assert r.stop() == 0

    # A restart with the token back signs again.
    token.restore()
    with ru.Responder(config) as r:
        cacert = ru.load_cert(cas[0].cert)
        req = ru.make_request(ru.load_cert(leaves["hsm-ec"][1]), cacert)
        status, _, der = r.post(req)
        assert status == 200 and ru.check_response(der, cacert)
        assert r.stop() == 0
