# SPDX-License-Identifier: Apache-2.0
"""A bulk revocation that can be previewed and that leaves the service's own
certificates alone (issue 17): `revoke --dry-run` changes nothing and says what
would change; a revocation by window or by a list of serials leaves out the
delegated OCSP signer and a subordinate CA that the CA issued unless
--include-signers; `list` shows each certificate's notBefore and notAfter.
Expected values come from the certificates themselves (python3-cryptography),
not from vigil-store."""
import types

import pytest
from cryptography import x509

import pki
from conftest import Runner, rfc3339, run, write_config
from store_util import norm_serial

EPOCH = "2000-01-01T00:00:00Z"


def serial_of(path):
    return norm_serial("%X" % x509.load_pem_x509_certificate(path.read_bytes()).serial_number)


@pytest.fixture
def env(tmp_path):
    ca = pki.CA(tmp_path, "bulk1")
    leaves = [ca.issue(f"leaf {i}")[1] for i in range(4)]
    # A subordinate CA issued by bulk1 through `openssl ca`, so that it is in
    # bulk1's index.txt like any certificate, and configured as [ca sub1].
    sub = types.SimpleNamespace(name="sub1", key=tmp_path / "sub1.key",
                                cert=tmp_path / "sub1.pem")
    pki.genkey(sub.key, "ec")
    csr = tmp_path / "sub1.csr"
    run(pki.OPENSSL, "req", "-new", "-config", ca.cnf, "-key", sub.key, "-subj", "/CN=Sub 1",
        "-out", csr)
    run(pki.OPENSSL, "ca", "-batch", "-config", ca.cnf, "-extensions", "ca_ext", "-in", csr,
        "-out", sub.cert, "-notext")
    conf = write_config(tmp_path / "vigil.conf", tmp_path / "store",
                        [ca, (sub, {"delegated": False})])
    r = Runner(conf)
    r.store("init")
    r.store("import-index", "bulk1", ca.index, "--certs", ca.dir / "newcerts")
    return types.SimpleNamespace(r=r, ca=ca, leaves=[serial_of(p) for p in leaves],
                                 leaf_paths=leaves, ocsp=serial_of(ca.ocsp_cert),
                                 sub=serial_of(sub.cert), tmp=tmp_path)


def status(env, serial):
    return env.r.store("status", "bulk1", serial).stdout.split()[1]


def test_dry_run_changes_nothing_and_says_what_would(env):
    before = (env.r.store("list", "bulk1").stdout, env.r.store("stats").stdout)
    out = env.r.store("revoke", "bulk1", "--issued-after", EPOCH, "--dry-run",
                      "--reason", "keyCompromise").stdout
    assert (env.r.store("list", "bulk1").stdout, env.r.store("stats").stdout) == before
    assert f"would leave out: serial {env.ocsp}, the ocsp_cert of [ca bulk1]" in out, out
    assert f"would leave out: serial {env.sub}, the certificate of [ca sub1]" in out, out
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("dry run, nothing changed:"), out
    assert f"would_revoke={len(env.leaves)} " in summary and "left_out=2" in summary, summary
    # The sample names the certificates with their validity.
    for serial, path in zip(env.leaves, env.leaf_paths):
        c = x509.load_pem_x509_certificate(path.read_bytes())
        assert (f"  {serial} notBefore={rfc3339(c.not_valid_before)} "
                f"notAfter={rfc3339(c.not_valid_after)} now=good") in out, out
    # Already revoked ones are counted apart; a list's unknown serials too.
    env.r.store("revoke", "bulk1", env.leaves[0], "--reason", "superseded")
    out = env.r.store("revoke", "bulk1", "--issued-after", EPOCH, "--dry-run").stdout
    assert f"would_revoke={len(env.leaves) - 1} already_revoked=1 " in out, out
    lst = env.tmp / "serials.txt"
    lst.write_text("\n".join([env.leaves[1], "7777777777", env.ocsp]) + "\n")
    out = env.r.store("revoke", "bulk1", "--serials", lst, "--dry-run").stdout
    assert "would_revoke=1 already_revoked=0 not_in_store=1 left_out=1" in out, out
    assert status(env, env.leaves[1]) == "good" and status(env, "7777777777") == "unknown"


def test_window_leaves_signers_out(env):
    out = env.r.store("revoke", "bulk1", "--issued-after", EPOCH, "--reason",
                      "keyCompromise").stdout
    assert f"left out: serial {env.ocsp}, the ocsp_cert of [ca bulk1]" in out, out
    assert f"left out: serial {env.sub}, the certificate of [ca sub1]" in out, out
    assert f"revoked={len(env.leaves)} " in out and " left_out=2 " in out, out
    assert [status(env, s) for s in env.leaves] == ["revoked"] * len(env.leaves)
    assert status(env, env.ocsp) == "good" and status(env, env.sub) == "good"
    # Told explicitly, the window takes them too.
    out = env.r.store("revoke", "bulk1", "--issued-after", EPOCH, "--include-signers").stdout
    assert "left out" not in out and "revoked=2 " in out, out
    assert status(env, env.ocsp) == "revoked" and status(env, env.sub) == "revoked"


def test_serials_list_leaves_signers_out_but_one_serial_is_meant(env):
    lst = env.tmp / "serials.txt"
    lst.write_text("\n".join([env.leaves[0], env.ocsp]) + "\n")
    out = env.r.store("revoke", "bulk1", "--serials", lst).stdout
    assert f"left out: serial {env.ocsp}" in out and "left_out=1" in out, out
    assert status(env, env.leaves[0]) == "revoked" and status(env, env.ocsp) == "good"
    out = env.r.store("revoke", "bulk1", "--serials", lst, "--include-signers").stdout
    assert "left out" not in out and status(env, env.ocsp) == "revoked", out
    # A single serial on the command line is named on purpose.
    env.r.store("revoke", "bulk1", env.sub)
    assert status(env, env.sub) == "revoked"


def test_list_shows_validity(env):
    lines = {ln.split()[0]: ln for ln in env.r.store("list", "bulk1").stdout.splitlines()}
    for serial, path in zip(env.leaves, env.leaf_paths):
        c = x509.load_pem_x509_certificate(path.read_bytes())
        assert lines[serial] == (f"{serial} good notBefore={rfc3339(c.not_valid_before)} "
                                 f"notAfter={rfc3339(c.not_valid_after)}"), lines[serial]
    # status keeps its one-line form without the dates.
    assert env.r.store("status", "bulk1", env.leaves[0]).stdout.strip() == \
        f"{env.leaves[0]} good"
