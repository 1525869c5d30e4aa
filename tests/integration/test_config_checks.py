# SPDX-License-Identifier: Apache-2.0
"""Configurations every program must refuse, checked through the real
binaries (issue 11): two [ca] sections for one CA identity (the same subject
and key, e.g. a re-issued CA certificate), and key files that a foreign
group may read. Certificates come from python3-cryptography; answers are
checked with `openssl ocsp`."""
import datetime
import os
import re
import signal
import types

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import Runner, write_config
from responder_util import Responder, openssl_ocsp

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
LEAF_SERIAL = 0x1001


def _key(path):
    k = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(k.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    os.chmod(path, 0o600)
    return k


def _ca_cert(path, key, cn, serial, days_before, days_after):
    """A self-signed CA certificate named |cn| for |key|; a second call with the
    same name and key but another serial and validity is a re-issue."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(NOW - datetime.timedelta(days=days_before))
            .not_valid_after(NOW + datetime.timedelta(days=days_after))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert


def _leaf(path, ca_cert, ca_key, serial):
    k = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"leaf {serial:x}")]))
            .issuer_name(ca_cert.subject).public_key(k.public_key()).serial_number(serial)
            .not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=90))
            .sign(ca_key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


class Env:
    """One CA key with two certificates (the original and a re-issue: same
    name and key, another serial and validity), and a second key under the
    same name (a re-keyed CA)."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.store = tmp / "store"
        self.key = _key(tmp / "ca.key")
        self.cert = _ca_cert(tmp / "ca.pem", self.key, "Vigil Same Name CA", 0x51, 30, 3650)
        self.reissued = _ca_cert(tmp / "ca-reissued.pem", self.key, "Vigil Same Name CA",
                                 0x52, 1, 5000)
        self.rekey = _key(tmp / "rekey.key")
        self.rekeyed = _ca_cert(tmp / "rekeyed.pem", self.rekey, "Vigil Same Name CA", 0x53, 1,
                                3650)
        self.leaf = _leaf(tmp / "leaf.pem", self.cert, self.key, LEAF_SERIAL)
        self.leaf_rekeyed = _leaf(tmp / "leaf-rekeyed.pem", self.rekeyed, self.rekey,
                                  LEAF_SERIAL)

    def conf(self, sections, name="vigil.conf", responder=None):
        """|sections|: (section name, CA cert file, key file); the key signs
        CRLs, ocsp_key is left out."""
        cas = [(types.SimpleNamespace(name=sec, cert=cert, key=key), {"ocsp_key": None})
               for sec, cert, key in sections]
        return write_config(self.tmp / name, self.store, cas, workers=1, responder=responder)

    def run(self, prog, conf, *args, timeout=60):
        return Runner(conf).run(prog, *args, check=False, timeout=timeout)

    def store_cmd(self, conf, *args):
        r = self.run("vigil-store", conf, *args)
        assert r.returncode == 0, r.stderr
        return r

    def ocsp(self, port, issuer, leaf):
        rc, out = openssl_ocsp("-issuer", issuer, "-cert", leaf, "-url",
                               f"http://127.0.0.1:{port}/", "-CAfile", issuer, "-no_nonce")
        assert rc == 0, out
        m = re.search(r"leaf[^:]*: (good|revoked|unknown)", out)
        assert m, out
        return m.group(1)


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def _one_line(r):
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0, r.stderr
    assert len(lines) == 1, r.stderr
    return lines[0]


def _same_identity_line(line):
    assert re.search(r"\[ca a\] and \[ca b\] have the same subject and key", line), line
    assert "Vigil Same Name CA" in line, line


def test_same_subject_and_key_refused_by_every_program(env):
    """Two sections for one CA (a re-issued certificate beside the old one):
    every CertID would name both, crlgen would publish two CRLs for one
    issuer. vigil-store, vigil-crlgen and vigil-responder each refuse it with
    one line naming both sections."""
    good = env.conf([("a", env.tmp / "ca.pem", env.tmp / "ca.key")], "good.conf")
    env.store_cmd(good, "init")
    bad = env.conf([("a", env.tmp / "ca.pem", env.tmp / "ca.key"),
                    ("b", env.tmp / "ca-reissued.pem", env.tmp / "ca.key")])
    _same_identity_line(_one_line(env.run("vigil-store", bad, "status", "a", "1001")))
    _same_identity_line(_one_line(env.run("vigil-store", bad, "revoke", "b", "1001")))
    _same_identity_line(_one_line(env.run("vigil-crlgen", bad, "--once")))
    assert not (env.tmp / "crl" / "a.crl").exists() and not (env.tmp / "crl" / "b.crl").exists()
    _same_identity_line(_one_line(env.run("vigil-responder", bad, timeout=30)))
    # The same certificate file named twice is the same identity too.
    twice = env.conf([("a", env.tmp / "ca.pem", env.tmp / "ca.key"),
                      ("b", env.tmp / "ca.pem", env.tmp / "ca.key")], "twice.conf")
    _same_identity_line(_one_line(env.run("vigil-crlgen", twice, "--once")))


def test_same_subject_other_key_accepted(env):
    """A CA re-keyed under its old name is another CA identity (issuerKeyHash
    tells them apart): accepted, and each section answers for its own
    certificates."""
    conf = env.conf([("a", env.tmp / "ca.pem", env.tmp / "ca.key"),
                     ("b", env.tmp / "rekeyed.pem", env.tmp / "rekey.key")])
    env.store_cmd(conf, "init")
    env.store_cmd(conf, "add", "a", env.leaf)
    env.store_cmd(conf, "add", "b", env.leaf_rekeyed)
    env.store_cmd(conf, "revoke", "b", f"{LEAF_SERIAL:X}", "--reason", "keyCompromise")
    r = env.run("vigil-crlgen", conf, "--once")
    assert r.returncode == 0, r.stderr
    assert (env.tmp / "crl" / "a.crl").exists() and (env.tmp / "crl" / "b.crl").exists()
    with Responder(conf) as resp:
        assert env.ocsp(resp.port, env.tmp / "ca.pem", env.leaf) == "good"
        assert env.ocsp(resp.port, env.tmp / "rekeyed.pem", env.leaf_rekeyed) == "revoked"
        assert resp.stop() == 0


def test_reload_into_same_identity_refused_old_config_serves(env):
    """SIGHUP into a configuration with a re-issued CA certificate as a second
    section: one event=reload_failed line naming both sections, and the old
    configuration keeps answering (healthz, openssl ocsp)."""
    conf = env.conf([("a", env.tmp / "ca.pem", env.tmp / "ca.key")])
    env.store_cmd(conf, "init")
    env.store_cmd(conf, "add", "a", env.leaf)
    env.store_cmd(conf, "revoke", "a", f"{LEAF_SERIAL:X}", "--reason", "superseded")
    with Responder(conf) as resp:
        assert resp.request("GET", "/healthz")[0] == 200
        assert env.ocsp(resp.port, env.tmp / "ca.pem", env.leaf) == "revoked"
        start = resp.n_lines()
        env.conf([("a", env.tmp / "ca.pem", env.tmp / "ca.key"),
                  ("b", env.tmp / "ca-reissued.pem", env.tmp / "ca.key")])
        resp.signal(signal.SIGHUP)
        line = resp.wait_log(r"event=reload_failed", start=start)
        _same_identity_line(line)
        assert "action=keep_old_config" in line, line
        # A second SIGHUP proves the first was handled completely.
        resp.signal(signal.SIGHUP)
        resp.wait_log(r"event=reload_failed", start=resp.n_lines())
        with resp.lock:
            new = resp.lines[start:]
        assert sum("event=reload_failed" in l for l in new) == 2, new
        assert not any("event=reloaded" in l for l in new), new
        assert len(new) == 2, new
        assert resp.request("GET", "/healthz")[0] == 200
        assert env.ocsp(resp.port, env.tmp / "ca.pem", env.leaf) == "revoked"
        # Through the re-issued certificate the CertID is the same: the
        # old configuration's one section answers it, as before.
        assert env.ocsp(resp.port, env.tmp / "ca-reissued.pem", env.leaf) == "revoked"
        assert resp.stop() == 0


# ---- the signer policy (common/signer.h) ---------------------------------------------------

def test_rsa_key_under_2048_bits_refused_by_responder_and_crlgen(env):
    """An RSA key under 2048 bits signs neither CRLs nor, since issue 12 (one
    signer policy for both programs), OCSP answers: vigil-crlgen and
    vigil-responder each refuse it at start with one line, and a SIGHUP into
    it is refused while the old configuration keeps answering."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    k = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    (env.tmp / "rsa1024.key").write_bytes(k.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    os.chmod(env.tmp / "rsa1024.key", 0o600)
    _ca_cert(env.tmp / "rsa1024.pem", k, "Vigil RSA-1024 CA", 0x61, 1, 3650)
    good = [("a", env.tmp / "ca.pem", env.tmp / "ca.key")]
    weak = [("r", env.tmp / "rsa1024.pem", env.tmp / "rsa1024.key")]
    conf = env.conf(good)
    env.store_cmd(conf, "init")
    env.store_cmd(conf, "add", "a", env.leaf)
    bad = env.conf(good + weak, "bad.conf")
    for prog, args in (("vigil-crlgen", ("--once",)), ("vigil-responder", ())):
        line = _one_line(env.run(prog, bad, *args, timeout=30))
        assert "[ca r]" in line and "RSA key of 1024 bits: at least 2048 are required" in line, \
            (prog, line)
    with Responder(conf) as resp:
        assert env.ocsp(resp.port, env.tmp / "ca.pem", env.leaf) == "good"
        start = resp.n_lines()
        env.conf(good + weak)
        resp.signal(signal.SIGHUP)
        line = resp.wait_log(r"event=reload_failed", start=start)
        assert "RSA key of 1024 bits" in line and "action=keep_old_config" in line, line
        assert resp.request("GET", "/healthz")[0] == 200
        assert env.ocsp(resp.port, env.tmp / "ca.pem", env.leaf) == "good"
        assert resp.stop() == 0


# ---- key file permissions ------------------------------------------------------------------

def _foreign_gid():
    """A group the process is not in (neither effective nor supplementary)."""
    own = {os.getegid(), *os.getgroups()}
    for g in (33, 34, 12345, 23456):
        if g not in own:
            return g
    pytest.skip("no foreign group")


def _need_root():
    if os.geteuid() != 0:
        pytest.skip("changing a file's group to a foreign one needs root")


def test_key_readable_by_a_foreign_group_refused(env):
    """A 0640 key whose group is not the service's: vigil-crlgen and
    vigil-responder refuse it with one line naming the file and its mode;
    0600, and 0640 with the process's own group, are accepted."""
    _need_root()
    key = env.tmp / "ca.key"
    conf = env.conf([("a", env.tmp / "ca.pem", key)])
    env.store_cmd(conf, "init")
    os.chmod(key, 0o640)
    os.chown(key, -1, _foreign_gid())
    for prog, args in (("vigil-crlgen", ["--once"]), ("vigil-responder", [])):
        line = _one_line(env.run(prog, conf, *args, timeout=30))
        assert str(key) in line and "mode 0640" in line, line
        assert "group" in line, line
    os.chmod(key, 0o620)  # group-writable only: the group could replace the key
    line = _one_line(env.run("vigil-crlgen", conf, "--once"))
    assert str(key) in line and "mode 0620" in line, line
    os.chmod(key, 0o600)
    r = env.run("vigil-crlgen", conf, "--once")
    assert r.returncode == 0, r.stderr
    os.chmod(key, 0o640)
    os.chown(key, -1, os.getegid())
    r = env.run("vigil-crlgen", conf, "--once")
    assert r.returncode == 0, r.stderr
    with Responder(conf) as resp:
        assert resp.request("GET", "/healthz")[0] == 200
        assert resp.stop() == 0


def test_key_readable_by_the_service_users_group_accepted(env):
    """Started as root with [responder] user, the key may belong to that
    user's group (the responder re-reads it as that user on reload); any
    other group is still refused."""
    _need_root()
    import pwd
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    if pw.pw_gid == os.getegid():
        pytest.skip("nobody's group is ours")
    key = env.tmp / "ca.key"
    conf = env.conf([("a", env.tmp / "ca.pem", key)], responder={"user": "nobody"})
    env.store_cmd(conf, "init")
    os.chmod(key, 0o640)
    os.chown(key, -1, pw.pw_gid)
    r = env.run("vigil-crlgen", conf, "--once")
    assert r.returncode == 0, r.stderr
    other = _foreign_gid()
    if other == pw.pw_gid:
        pytest.skip("no second foreign group")
    os.chown(key, -1, other)
    line = _one_line(env.run("vigil-crlgen", conf, "--once"))
    assert str(key) in line and "mode 0640" in line, line


def test_key_check_follows_the_opened_file_not_the_name(env):
    """The mode is checked on the file the key is read from: a symlink to a
    world-readable key is refused (the target's mode), one to a 0600 key is
    accepted."""
    real = env.tmp / "real.key"
    real.write_bytes((env.tmp / "ca.key").read_bytes())
    link = env.tmp / "link.key"
    link.symlink_to(real)
    conf = env.conf([("a", env.tmp / "ca.pem", link)])
    env.store_cmd(conf, "init")
    os.chmod(real, 0o644)
    line = _one_line(env.run("vigil-crlgen", conf, "--once"))
    assert str(link) in line and "mode 0644" in line and "accessible by others" in line, line
    os.chmod(real, 0o600)
    r = env.run("vigil-crlgen", conf, "--once")
    assert r.returncode == 0, r.stderr


def test_key_fifo_refused_without_hanging(env):
    """A FIFO in place of a key file is refused at once (not a regular file),
    not waited on."""
    fifo = env.tmp / "fifo.key"
    os.mkfifo(fifo, 0o600)
    conf = env.conf([("a", env.tmp / "ca.pem", fifo)])
    env.store_cmd(conf, "init")
    line = _one_line(env.run("vigil-crlgen", conf, "--once", timeout=20))
    assert str(fifo) in line and "not a regular file" in line, line


def test_pin_file_readable_by_a_foreign_group_refused(tmp_path):
    """The PIN file of a pkcs11: key is checked as key files are: 0640 with a
    foreign group refused in one line naming it and its mode; 0640 with the
    process's own group, and 0600, accepted."""
    import hsm_util
    if hsm_util.missing():
        pytest.skip(hsm_util.missing())
    _need_root()
    token = hsm_util.Token(tmp_path)
    ca = hsm_util.HsmCA(tmp_path, "hsm-ec", token, "ec")
    pin = tmp_path / "vigil.pin"
    pin.write_text(hsm_util.PIN + "\n")
    conf = write_config(tmp_path / "vigil.conf", tmp_path / "store",
                        [hsm_util.with_key(ca, token.uri("ec", pin_file=pin))])
    environ = dict(token.env)
    environ.pop("VIGIL_PKCS11_PIN", None)
    environ.pop("VIGIL_PKCS11_MODULE", None)

    def crlgen():
        return Runner(conf).crlgen("--once", check=False, env=environ, timeout=60)
    Runner(conf).store("init", timeout=60)
    os.chmod(pin, 0o640)
    os.chown(pin, -1, _foreign_gid())
    line = _one_line(crlgen())
    assert str(pin) in line and "PIN file" in line and "mode 0640" in line, line
    assert hsm_util.PIN + "\n" not in line
    os.chown(pin, -1, os.getegid())
    r = crlgen()
    assert r.returncode == 0, r.stderr
    os.chmod(pin, 0o600)
    os.chown(pin, -1, _foreign_gid())
    r = crlgen()
    assert r.returncode == 0, r.stderr
