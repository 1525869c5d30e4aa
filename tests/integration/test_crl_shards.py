# SPDX-License-Identifier: Apache-2.0
"""CRL shards (partitioned CRLs), the CCADB list, the tls-br lint and the
responder's serving of shards, with the real vigil-store, vigil-crlgen and
vigil-responder. Shards are read with python3-cryptography, openssl crl and
GnuTLS certtool, never with Vigil's own code."""
import json
import os
import re
import time

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from conftest import binary, run, write_config
from crlgen_util import (Daemon, Env, certtool_info, crl_number, openssl_crl_verify,
                         synthetic_revoked, wait_for, write_index)
from pki import CA, OPENSSL
from responder_util import Responder

N = 4
HOST = "http://crl.example"
SHARD_URL = HOST + "/crl/sh/%u.crl"
FULL_URL = HOST + "/crl/sh.crl"


def shard_url(k):
    return SHARD_URL.replace("%u", str(k))


def sharded_keys(extra=()):
    return ["crl_url = " + FULL_URL, f"crl_shards = {N}", "crl_shard_url = " + SHARD_URL,
            *extra]


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return CA(tmp_path_factory.mktemp("pki"), "sh", keytype="ec")


def make_env(tmp_path, ca, n=200, extra=()):
    write_index(ca.index, synthetic_revoked(n))
    env = Env(tmp_path, [ca], ca_extra={"sh": sharded_keys(extra)})
    env.import_index(ca)
    return env


def shard_path(env, k):
    return env.out / "crl" / "sh" / f"{k}.crl"


def load(path):
    return x509.load_der_x509_crl(path.read_bytes())


def serials(crl):
    return {r.serial_number for r in crl}


def idp(crl):
    return crl.extensions.get_extension_for_oid(ExtensionOID.ISSUING_DISTRIBUTION_POINT)


def idp_uri_bytes(der):
    """The IDP's URI exactly as encoded: the bytes after the [6] tag, found
    in the DER (independent of any decoder's string handling)."""
    m = re.search(rb"\x86(.)(http://[^\x00-\x20]+?)\xa0?", der, re.S)
    return der[m.start(2):m.start(2) + m.group(1)[0]]


def test_shards_verified_by_three_readers(tmp_path, ca):
    env = make_env(tmp_path, ca)
    env.crlgen("--once")
    full = load(env.crl_path("sh"))
    with pytest.raises(x509.ExtensionNotFound):
        idp(full)  # no IDP on the full CRL (NOT RECOMMENDED there)
    revoked = serials(full)
    assert len(revoked) == 200
    union = set()
    numbers = set()
    for k in range(1, N + 1):
        p = shard_path(env, k)
        der = p.read_bytes()
        crl = x509.load_der_x509_crl(der)
        ext = idp(crl)
        assert ext.critical
        assert [g.value for g in ext.value.full_name] == [shard_url(k)]
        assert idp_uri_bytes(der) == shard_url(k).encode()
        assert ext.value.only_contains_user_certs and not ext.value.only_contains_ca_certs
        assert crl.is_signature_valid(
            x509.load_pem_x509_certificate(ca.cert.read_bytes()).public_key())
        got = serials(crl)
        assert all(s % N + 1 == k for s in got), k
        assert not (union & got)
        union |= got
        numbers.add(crl_number(crl))
        ok, out = openssl_crl_verify(p, ca.cert)
        assert ok, out
        text = run(OPENSSL, "crl", "-inform", "DER", "-in", p, "-noout", "-text").stdout
        assert "Issuing Distribution Point: critical" in text and shard_url(k) in text
        info = certtool_info(p)
        assert info.returncode == 0, info.stderr
        assert f"Revoked certificates ({len(got)})" in info.stdout
    assert union == revoked
    assert len(numbers) == 1 and numbers.pop() > crl_number(full)
    # The full CRL also at its URL's path; the CCADB list names every shard.
    assert (env.out / "crl" / "sh.crl").read_bytes() == env.crl_path("sh").read_bytes()
    assert json.loads((env.out / "sh.ccadb.json").read_text()) == [
        shard_url(k) for k in range(1, N + 1)]


def test_numbers_increase_per_shard(tmp_path, ca):
    env = make_env(tmp_path, ca, n=20)
    env.crlgen("--once")
    first = [crl_number(load(shard_path(env, k))) for k in range(1, N + 1)]
    env.crlgen("--once")
    second = [crl_number(load(shard_path(env, k))) for k in range(1, N + 1)]
    assert all(b > a for a, b in zip(first, second))


def issue_with_cdp(ca, cn, url):
    """A leaf whose CRL distribution point is |url| (openssl ca -extfile)."""
    ext = ca.dir / "cdp.ext"
    ext.write_text("[cdp]\nbasicConstraints = CA:false\n"
                   f"crlDistributionPoints = URI:{url}\n")
    serial = (ca.dir / "serial").read_text().strip().upper()
    key, csr, out = (ca.dir / f"leaf-{serial}.{e}" for e in ("key", "csr", "pem"))
    run(OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-out", key)
    run(OPENSSL, "req", "-new", "-config", ca.cnf, "-key", key, "-subj", f"/CN={cn}",
        "-out", csr)
    run(OPENSSL, "ca", "-batch", "-config", ca.cnf, "-in", csr, "-out", out, "-notext",
        "-days", "30", "-extfile", ext, "-extensions", "cdp")
    return int(serial, 16), out


def test_cdp_decides_the_shard(tmp_path):
    """Certificates whose CDP names shard 3 land in shard 3, whatever their
    serial: through import-index --certs and through add."""
    ca = CA(tmp_path / "pki", "sh", keytype="ec")
    leaves = [issue_with_cdp(ca, f"l{i}", shard_url(3)) for i in range(4)]
    assert {s % N + 1 for s, _ in leaves} != {3}  # the serial rule would spread them
    for _, path in leaves[:3]:
        ca.revoke(path, "keyCompromise")
    env = Env(tmp_path, [ca], ca_extra={"sh": sharded_keys()})
    env.runner.store("import-index", "sh", ca.index, "--certs", ca.dir / "newcerts")
    # The fourth through add, then revoked by serial.
    env.runner.store("add", "sh", leaves[3][1])
    env.runner.store("revoke", "sh", "%X" % leaves[3][0], "--reason", "superseded")
    env.crlgen("--once")
    assert serials(load(shard_path(env, 3))) == {s for s, _ in leaves}
    for k in (1, 2, 4):
        assert not serials(load(shard_path(env, k)))


def test_responder_serves_shards(tmp_path, ca):
    env = make_env(tmp_path, ca, n=40)
    env.crlgen("--once")
    with Responder(env.config) as r:
        for k in range(1, N + 1):
            status, h, body = r.request("GET", f"/crl/sh/{k}.crl")
            assert status == 200
            assert body == shard_path(env, k).read_bytes()
            assert h["content-type"] == "application/pkix-crl"
            assert "max-age=" in h["cache-control"] and h["expires"] and h["last-modified"]
            status, h2, body = r.request("GET", f"/crl/sh/{k}.crl",
                                         headers={"If-None-Match": h["etag"]})
            assert status == 304 and body == b"" and h2["etag"] == h["etag"]
        # Every URL of the CCADB list, in absolute form as a proxy sends it,
        # gives the file at the URL's path under out; the full CRL too.
        listed = json.loads((env.out / "sh.ccadb.json").read_text())
        assert len(listed) == N
        for url in listed:
            status, _, body = r.request("GET", url)
            path = url.split("/", 3)[3]
            assert status == 200 and body == (env.out / path).read_bytes(), url
        status, _, body = r.request("GET", "/crl/sh.crl")
        assert status == 200 and body == env.crl_path("sh").read_bytes()
        for bad in ("/crl/sh/0.crl", f"/crl/sh/{N + 1}.crl", "/crl/sh/01.crl",
                    "/crl/sh/x.crl"):
            assert r.request("GET", bad)[0] == 404, bad
        # Entries and bytes of every published CRL on /metrics.
        for k in range(1, N + 1):
            crl = load(shard_path(env, k))
            lbl = f'{{ca="sh",crl="{shard_url(k)}"}}'
            assert r.metric("vigil_crl_entries" + lbl) == len(serials(crl))
            assert r.metric("vigil_crl_bytes" + lbl) == shard_path(env, k).stat().st_size


def test_watch_publishes_the_touched_shard(tmp_path, ca):
    env = make_env(tmp_path, ca, n=40)
    d = Daemon(env)
    try:
        assert d.wait_log(r"event=crl_published ca=sh kind=shards shards=4 of=4")
        before = {k: shard_path(env, k).read_bytes() for k in range(1, N + 1)}
        full_before = crl_number(load(env.crl_path("sh")))
        serial = 0x200002  # a new serial: shard 0x200002 % 4 + 1 = 3
        env.runner.store("revoke", "sh", "%X" % serial, "--reason", "keyCompromise")
        assert d.wait_log(r"kind=shards shards=1 of=4", timeout=20)
        # The touched shard first, then the full CRL.
        assert d.wait_log(r"event=crl_published ca=sh kind=full", count=2, timeout=20)
        log = d.text()
        assert log.rindex("kind=shards shards=1 of=4") < log.rindex("kind=full")
        after = {k: shard_path(env, k).read_bytes() for k in range(1, N + 1)}
        assert serial in serials(load(shard_path(env, 3)))
        assert all(after[k] == before[k] for k in (1, 2, 4))
        assert after[3] != before[3]
        assert serial in serials(load(env.crl_path("sh")))
        assert crl_number(load(env.crl_path("sh"))) > full_before
    finally:
        d.stop()


LINT_RULES = ["issuer", "validity", "aki", "crl_number", "idp", "entries", "reason"]


@pytest.mark.parametrize("rule", LINT_RULES)
def test_lint_refuses_and_keeps_the_last_good(tmp_path, ca, rule):
    env = make_env(tmp_path, ca, n=12)
    env.crlgen("--once")
    files = [env.crl_path("sh")] + [shard_path(env, k) for k in range(1, N + 1)]
    good = {p: p.read_bytes() for p in files}
    r = env.runner.crlgen("--once", check=False,
                          env={**os.environ, "VIGIL_CRLGEN_LINT_INJECT": rule})
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if "event=crl_lint_failed" in ln]
    assert len(lines) == 1 and f"rule={rule} " in lines[0], r.stderr
    assert {p: p.read_bytes() for p in files} == good
    prom = (env.tmp / "vigil-crlgen.prom").read_text()
    assert f'vigil_crlgen_lint_failures_total{{ca="sh",rule="{rule}"}} 1' in prom
    # Without the fault, the next publication passes.
    env.crlgen("--once")


DELTA_URL = HOST + "/crl/sh-delta.crl"


@pytest.mark.parametrize("rule", LINT_RULES + ["delta_indicator"])
def test_lint_refuses_a_delta_and_keeps_the_last_good(tmp_path, ca, rule):
    """A tls-br CA with delta_crl = on: its delta CRL is linted like its full
    CRL, with the delta's rules (the fault delta:RULE spoils the delta only:
    delta_indicator names another base). The delta that fails is not
    published, the last good one stays; the full CRL and shards are not
    touched; the next delta passes and python3-cryptography and openssl read
    it as a delta of the published full CRL."""
    env = make_env(tmp_path, ca, n=12, extra=["delta_crl = on", "delta_crl_url = " + DELTA_URL])
    env.crlgen("--once")
    files = [env.crl_path("sh"), env.crl_path("sh", delta=True),
             env.crl_path("sh", delta=True, pem=True)] + \
        [shard_path(env, k) for k in range(1, N + 1)]
    good = {p: p.read_bytes() for p in files}
    serial = 0x200002
    env.runner.store("revoke", "sh", "%X" % serial, "--reason", "keyCompromise")
    r = env.runner.crlgen("--once", "--delta", check=False,
                          env={**os.environ, "VIGIL_CRLGEN_LINT_INJECT": "delta:" + rule})
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "event=crl_lint_failed" in ln]
    assert len(lines) == 1 and f"kind=delta rule={rule} " in lines[0], r.stderr
    assert {p: p.read_bytes() for p in files} == good
    prom = (env.tmp / "vigil-crlgen.prom").read_text()
    assert f'vigil_crlgen_lint_failures_total{{ca="sh",rule="{rule}"}} 1' in prom
    # Without the fault, the delta passes the lint and is published.
    r = env.runner.crlgen("--once", "--delta")
    assert "crl_lint_failed" not in r.stderr
    delta = env.crl("sh", delta=True)
    full = env.crl("sh")
    ind = delta.extensions.get_extension_for_oid(ExtensionOID.DELTA_CRL_INDICATOR)
    assert ind.critical and ind.value.crl_number == crl_number(full)
    assert crl_number(delta) > crl_number(full)
    assert serials(delta) == {serial}
    assert delta.is_signature_valid(
        x509.load_pem_x509_certificate(ca.cert.read_bytes()).public_key())
    ok, out = openssl_crl_verify(env.crl_path("sh", delta=True), ca.cert)
    assert ok, out


def test_lint_refuses_a_full_crl_that_says_it_is_a_delta(tmp_path, ca):
    """The delta_indicator rule on a full CRL: a deltaCRLIndicator in it
    (the fault makes the full CRL a delta) is refused, the last good stays."""
    env = make_env(tmp_path, ca, n=12)
    env.crlgen("--once")
    good = env.crl_path("sh").read_bytes()
    r = env.runner.crlgen("--once", check=False,
                          env={**os.environ, "VIGIL_CRLGEN_LINT_INJECT": "delta_indicator"})
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if "event=crl_lint_failed" in ln]
    assert len(lines) == 1 and "kind=full rule=delta_indicator " in lines[0], r.stderr
    assert env.crl_path("sh").read_bytes() == good


def refused(tmp_path, ca, keys):
    """Each program refuses the configuration in one line."""
    conf = write_config(tmp_path / "vigil.conf", tmp_path / "store",
                        [(ca, dict(k.split(" = ", 1) for k in keys))])
    out = []
    for prog, args in (("vigil-crlgen", ["--once"]), ("vigil-store", ["init"]),
                       ("vigil-responder", ["--check"])):
        r = run(binary(prog), "-c", conf, *args, check=False)
        assert r.returncode != 0, prog
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        out.append(lines[0])
    return out[0]


@pytest.mark.parametrize("keys,why", [
    ([f"crl_shards = {N}"], "needs crl_shard_url"),
    (["crl_shard_url = " + SHARD_URL], "crl_shards is 0"),
    ([f"crl_shards = {N}", "crl_shard_url = http://crl.example/crl/sh.crl"],
     "exactly one %u"),
    ([f"crl_shards = {N}", "crl_shard_url = https://crl.example/%u.crl"], "http://"),
    (["crl_url = ldap://crl.example/sh.crl"], "http://"),
    ([f"crl_shards = {N}", "crl_shard_url = http://crl.example/a/../%u.crl"], ".."),
    (["crl_shards = 257"], "0 to 256"),
    (["profile = public"], "tls-br or private"),
])
def test_config_refused(tmp_path, ca, keys, why):
    line = refused(tmp_path, ca, keys)
    assert why in line and "[ca sh]" in line, line


def test_holds_refused_in_tls_br(tmp_path, ca):
    rows = synthetic_revoked(3)
    rows.append(("R", "351231235959Z", "260101000000Z,certificateHold", "ABCDEF"))
    write_index(ca.index, rows)
    env = Env(tmp_path, [ca], ca_extra={"sh": sharded_keys()})
    env.import_index(ca)
    r = env.crlgen("--once", check=False)
    assert r.returncode != 0 and "profile = tls-br" in r.stderr and "on hold" in r.stderr
    (tmp_path / "p").mkdir()
    env2 = Env(tmp_path / "p", [ca], ca_extra={"sh": sharded_keys(["profile = private"])})
    env2.import_index(ca)
    env2.crlgen("--once")
    crl = load(env2.out / "crl" / "sh" / f"{0xABCDEF % N + 1}.crl")
    assert 0xABCDEF in serials(crl)
    assert not idp(crl).value.only_contains_user_certs  # private: no claim on the scope


def test_ccadb_list_without_shards(tmp_path, ca):
    write_index(ca.index, synthetic_revoked(3))
    env = Env(tmp_path, [ca], ca_extra={"sh": ["crl_url = " + FULL_URL]})
    env.import_index(ca)
    env.crlgen("--once")
    assert json.loads((env.out / "sh.ccadb.json").read_text()) == [FULL_URL]
    with Responder(env.config) as r:
        status, _, body = r.request("GET", "/crl/sh.crl")
        assert status == 200 and body == env.crl_path("sh").read_bytes()


def test_two_cas_at_one_url_refused(tmp_path, ca):
    other = CA(tmp_path / "pki2", "other", keytype="ec")
    for keys_other, clash in (
            (sharded_keys(), FULL_URL),                                  # same crl_url
            ([f"crl_shards = {N}", "crl_shard_url = " + SHARD_URL], SHARD_URL),
            (["crl_url = " + shard_url(2)], shard_url(2))):              # one of sh's shards
        conf = write_config(tmp_path / "vigil.conf", tmp_path / "store",
                            [(ca, dict(k.split(" = ", 1) for k in sharded_keys())),
                             (other, dict(k.split(" = ", 1) for k in keys_other))])
        r = run(binary("vigil-crlgen"), "-c", conf, "--once", check=False)
        assert r.returncode == 2, r.stderr
        assert "both publish at " + clash in r.stderr and "[ca" in r.stderr, r.stderr


def test_stale_temporaries_in_shard_directories_removed(tmp_path, ca):
    """A crlgen killed while writing shards leaves temporary files beside
    them; the next publication removes those whose process is gone."""
    env = make_env(tmp_path, ca, n=8)
    env.crlgen("--once")
    d = env.out / "crl" / "sh"
    p = run("sh", "-c", "echo $$")  # a process that has exited
    dead = int(p.stdout.strip())
    stale = [d / f".{k}.crl.tmp-{dead}-{k}" for k in (1, 2)]
    mirror = env.out / "crl" / f".sh.crl.tmp-{dead}-2147483648"
    for f in stale + [mirror]:
        f.write_bytes(b"partial")
    env.crlgen("--once")
    assert not any(f.exists() for f in stale + [mirror])
    assert sorted(f.name for f in d.iterdir()) == [f"{k}.crl" for k in range(1, N + 1)]


def test_watch_touched_shard_larger_than_memory_kept(tmp_path, ca):
    """A touched shard of more than 65,536 entries is written from a second
    walk of the store rather than from the entries kept from the first."""
    n = 140_000
    write_index(ca.index, synthetic_revoked(n))
    env = Env(tmp_path, [ca], ca_extra={"sh": [
        "crl_url = " + FULL_URL, "crl_shards = 2", "crl_shard_url = " + SHARD_URL]})
    env.import_index(ca)
    d = Daemon(env)
    try:
        assert d.wait_log(r"kind=shards shards=2 of=2", timeout=60)
        one = shard_path(env, 1).read_bytes()
        serial = 0x900001  # shard 0x900001 % 2 + 1 = 2
        env.runner.store("revoke", "sh", "%X" % serial, "--reason", "keyCompromise")
        assert d.wait_log(r"kind=shards shards=1 of=2", timeout=60)
        got = serials(load(shard_path(env, 2)))
        assert serial in got and len(got) == n // 2 + 1
        assert shard_path(env, 1).read_bytes() == one
    finally:
        d.stop()
