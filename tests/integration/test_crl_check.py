# SPDX-License-Identifier: Apache-2.0
"""vigil-crlgen --check (the watchdog on what crawlers fetch) and --plan
(the mass-revocation rehearsal), with the real binaries. The watchdog is
pointed at the real vigil-responder, and at a test HTTP server standing for
a CDN edge that serves what a broken edge would: an expired CRL, a shard
missing an entry (both signed here with python3-cryptography and the CA's
key), a stale copy, a wrong Content-Type; and at a port nobody listens on.
A sharded CA's full CRL, at crl_url, is checked beside its shards though the
CCADB list names only the shards: certificates issued before sharding point
at it."""
import datetime
import http.server
import os
import re
import shutil
import socket
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtensionOID

from conftest import binary, run
from crlgen_util import Env, crl_number, synthetic_revoked, write_index
from pki import CA
from responder_util import Responder

N = 4
SHARD_URL = "http://crl.example/crl/sh/%u.crl"
FULL_URL = "http://crl.example/crl/sh.crl"


def shard_url(k):
    return SHARD_URL.replace("%u", str(k))


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return CA(tmp_path_factory.mktemp("pki"), "sh", keytype="ec")


@pytest.fixture
def env(tmp_path, ca):
    rows = synthetic_revoked(40)
    rows += [("V", "351231235959Z", "", "%X" % (0x300000 + i)) for i in range(60)]
    write_index(ca.index, rows)
    e = Env(tmp_path, [ca], ca_extra={"sh": [
        "crl_url = " + FULL_URL, f"crl_shards = {N}", "crl_shard_url = " + SHARD_URL]})
    e.import_index(ca)
    e.crlgen("--once")
    return e


class Edge:
    """A test HTTP server: path -> (status, body, content type, headers)."""

    def __init__(self):
        self.routes = {}
        routes = self.routes

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                st, body, ctype, extra = routes.get(self.path, (404, b"", "text/plain", {}))
                self.send_response(st)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.base = "http://127.0.0.1:%d" % self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.srv.shutdown()
        self.srv.server_close()
        self.t.join(10)

    def serve_files(self, env):
        self.put("/crl/sh.crl", env.crl_path("sh").read_bytes())
        for k in range(1, N + 1):
            self.put(f"/crl/sh/{k}.crl", (env.out / "crl" / "sh" / f"{k}.crl").read_bytes())

    def put(self, path, body, ctype="application/pkix-crl", status=200, extra=None):
        self.routes[path] = (status, body, ctype, extra or {})


def check(env, base):
    r = env.crlgen("--check", "--url-base", base, check=False, timeout=60)
    failed = set(re.findall(r'vigil_crl_check_failed\{ca="sh",url="([^"]+)",check="(\w+)"\} 1',
                            r.stdout))
    return r, failed


def test_healthy_service_passes(env):
    with Responder(env.config) as resp:
        r, failed = check(env, f"http://127.0.0.1:{resp.port}")
    assert r.returncode == 0 and not failed, r.stdout + r.stderr
    for k in range(1, N + 1):
        assert f'vigil_crl_check_ok{{ca="sh",url="{shard_url(k)}"}} 1' in r.stdout
        assert f'vigil_crl_check_missing_entries{{ca="sh",url="{shard_url(k)}"}} 0' in r.stdout
    # The full CRL, which the list does not name, checked once, under crl_url.
    assert r.stdout.count(f'vigil_crl_check_ok{{ca="sh",url="{FULL_URL}"}} 1') == 1, r.stdout
    assert f'vigil_crl_check_missing_entries{{ca="sh",url="{FULL_URL}"}} 0' in r.stdout
    assert 'vigil_crl_check_ccadb_list_ok{ca="sh"} 1' in r.stdout


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root")
def test_check_reads_out_from_a_read_only_file_system(env, ca):
    """vigil-crl-check.service binds [crlgen] out read-only (it only reads the
    CCADB list there) and the watchdog verifies with the CA certificate: it
    must neither ask for out to be writable nor load crl_key (in an HSM it
    would need the token's PIN), while the publishing modes still refuse a
    read-only out. A read-only bind mount in a mount namespace of its own,
    as the unit's sandbox makes."""
    ro = (f"mount --bind {env.out} {env.out} && mount -o remount,bind,ro {env.out} && "
          f"exec {binary('vigil-crlgen')} -c {env.config}")
    hidden = ca.key.with_suffix(".away")
    with Responder(env.config) as resp:
        ca.key.rename(hidden)
        try:
            r = run("unshare", "-m", "sh", "-c",
                    ro + f" --check --url-base http://127.0.0.1:{resp.port}", check=False)
        finally:
            hidden.rename(ca.key)
    assert r.returncode == 0 and 'vigil_crl_check_ccadb_list_ok{ca="sh"} 1' in r.stdout, \
        r.stdout + r.stderr
    r = run("unshare", "-m", "sh", "-c", ro + " --once", check=False)
    assert r.returncode == 2 and "Read-only file system" in r.stderr, r.stderr


def resign(ca, der, this_update, next_update, drop=None, number=None):
    """The CRL |der| re-made and signed with the CA's key: other times, maybe
    without the entry |drop|, maybe another number; extensions kept."""
    old = x509.load_der_x509_crl(der)
    key = serialization.load_pem_private_key(ca.key.read_bytes(), None)
    issuer = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
         .last_update(this_update).next_update(next_update))
    for ext in old.extensions:
        if ext.oid == ExtensionOID.CRL_NUMBER and number is not None:
            b = b.add_extension(x509.CRLNumber(number), False)
        else:
            b = b.add_extension(ext.value, ext.critical)
    for rc in old:
        if rc.serial_number != drop:
            b = b.add_revoked_certificate(rc)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def now():
    return datetime.datetime.utcnow().replace(microsecond=0)


def test_expired_crl_reported(env, ca):
    with Edge() as edge:
        edge.serve_files(env)
        p = env.out / "crl" / "sh" / "2.crl"
        old = x509.load_der_x509_crl(p.read_bytes())
        edge.put("/crl/sh/2.crl", resign(ca, p.read_bytes(), now() - datetime.timedelta(days=9),
                                         now() - datetime.timedelta(hours=1),
                                         number=crl_number(old) + 1))
        r, failed = check(env, edge.base)
    assert r.returncode == 1
    assert failed == {(shard_url(2), "next_update"), (shard_url(2), "this_update")}, r.stdout
    assert re.search(r"event=crl_check_failed ca=sh url=\S+/2\.crl check=next_update "
                     r"detail=\"expired", r.stderr)


def test_shard_missing_an_entry_reported(env, ca):
    with Edge() as edge:
        edge.serve_files(env)
        p = env.out / "crl" / "sh" / "3.crl"
        old = x509.load_der_x509_crl(p.read_bytes())
        victim = sorted(rc.serial_number for rc in old)[0]
        edge.put("/crl/sh/3.crl", resign(ca, p.read_bytes(), now(),
                                         now() + datetime.timedelta(days=7), drop=victim,
                                         number=crl_number(old) + 1))
        r, failed = check(env, edge.base)
    assert r.returncode == 1
    assert failed == {(shard_url(3), "entries")}, r.stdout
    assert f'vigil_crl_check_missing_entries{{ca="sh",url="{shard_url(3)}"}} 1' in r.stdout


def test_stale_edge_copy_reported(env):
    with Edge() as edge:
        edge.serve_files(env)  # the copies the edge cached
        env.runner.store("revoke", "sh", "300001", "--reason", "keyCompromise")  # shard 2
        env.crlgen("--once")  # published at the origin, not at the edge
        r, failed = check(env, edge.base)
        assert r.returncode == 1
        assert {c for _, c in failed} == {"crl_number"}, r.stdout
        assert len(failed) == N + 1  # every shard and the full CRL are behind the origin
        assert (FULL_URL, "crl_number") in failed
        # Fresh copies: healthy again.
        edge.serve_files(env)
        r, failed = check(env, edge.base)
        assert r.returncode == 0 and not failed, r.stdout


def test_wrong_content_type_and_expires_reported(env):
    with Edge() as edge:
        edge.serve_files(env)
        body = (env.out / "crl" / "sh" / "1.crl").read_bytes()
        edge.put("/crl/sh/1.crl", body, ctype="application/octet-stream",
                 extra={"Expires": "Fri, 01 Jan 2100 00:00:00 GMT"})
        r, failed = check(env, edge.base)
    assert failed == {(shard_url(1), "content_type"), (shard_url(1), "expires")}, r.stdout


def test_unreachable_url_reported(env):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    r, failed = check(env, f"http://127.0.0.1:{port}")
    assert r.returncode == 1
    assert failed == {(shard_url(k), "fetch") for k in range(1, N + 1)} | \
        {(FULL_URL, "fetch")}, r.stdout
    assert "connecting to 127.0.0.1" in r.stderr


def test_ccadb_list_mismatch_reported(env):
    with Responder(env.config) as resp:
        (env.out / "sh.ccadb.json").write_text(f'["{shard_url(1)}"]\n')
        r, _ = check(env, f"http://127.0.0.1:{resp.port}")
    assert r.returncode == 1
    assert 'vigil_crl_check_ccadb_list_ok{ca="sh"} 0' in r.stdout
    # Without a list at all, the full CRL at crl_url is still checked.
    with Responder(env.config) as resp:
        (env.out / "sh.ccadb.json").unlink()
        r, failed = check(env, f"http://127.0.0.1:{resp.port}")
    assert r.returncode == 1 and not failed, r.stdout
    assert 'vigil_crl_check_ccadb_list_ok{ca="sh"} 0' in r.stdout
    assert f'vigil_crl_check_ok{{ca="sh",url="{FULL_URL}"}} 1' in r.stdout, r.stdout


def full_broken(env, ca, how):
    """The bytes and headers a broken edge serves at crl_url, and the checks
    that must fail for the full CRL alone."""
    full = env.crl_path("sh").read_bytes()
    old = x509.load_der_x509_crl(full)
    nxt = crl_number(old) + 1
    week = now() + datetime.timedelta(days=7)
    if how == "shard_at_full_url":  # a shard (with its IDP) where the full CRL belongs
        body = (env.out / "crl" / "sh" / "1.crl").read_bytes()
        return body, {}, {"idp", "entries"}
    if how == "missing_entry":
        victim = sorted(rc.serial_number for rc in old)[-1]
        return resign(ca, full, now(), week, drop=victim, number=nxt), {}, {"entries"}
    if how == "expired":
        body = resign(ca, full, now() - datetime.timedelta(days=9),
                      now() - datetime.timedelta(hours=1), number=nxt)
        return body, {}, {"this_update", "next_update"}
    if how == "old_number":
        return resign(ca, full, now(), week, number=crl_number(old) - 1), {}, {"crl_number"}
    if how == "headers":
        return full, {"ctype": "text/html",
                      "extra": {"Expires": "Fri, 01 Jan 2100 00:00:00 GMT"}}, \
            {"content_type", "expires"}
    if how == "other_key":
        other = CA(env.tmp / "other", "sh", keytype="ec")  # same name, another key
        return resign(other, full, now(), week, number=nxt), {}, {"signature"}
    if how == "not_der":
        return full[:-10], {}, {"der"}
    if how == "not_found":
        return b"", {"status": 404}, {"fetch"}
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["shard_at_full_url", "missing_entry", "expired", "old_number",
                                 "headers", "other_key", "not_der", "not_found"])
def test_broken_full_crl_of_a_sharded_ca_reported(env, ca, how):
    """The edge serves healthy shards and a broken full CRL: the full CRL's
    URL (crl_url, not the --url-base it was fetched through) fails the check
    that applies, and nothing else does."""
    body, kw, want = full_broken(env, ca, how)
    with Edge() as edge:
        edge.serve_files(env)
        edge.put("/crl/sh.crl", body, **kw)
        r, failed = check(env, edge.base)
    assert r.returncode == 1
    assert failed == {(FULL_URL, c) for c in want}, r.stdout + r.stderr
    assert f'vigil_crl_check_ok{{ca="sh",url="{FULL_URL}"}} 0' in r.stdout
    for c in want:
        assert re.search(rf"event=crl_check_failed ca=sh url={re.escape(FULL_URL)} check={c} ",
                         r.stderr), r.stderr
    assert edge.base not in r.stdout  # metrics name the public URL


def plan_lines(out):
    rows = []
    for line in out.splitlines():
        rows.append(dict(kv.split("=", 1) for kv in line.split()))
    return rows


def test_plan_changes_nothing_and_measures(env, ca):
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in env.out.rglob("*") if p.is_file()}
    status_before = env.runner.store("status", "sh", "300001").stdout
    r = env.crlgen("--plan", "--revoke-all")
    rows = plan_lines(r.stdout)
    as_is = {(x.get("crl"), x.get("shard")): x for x in rows
             if x["scenario"] == "as-is" and "crl" in x}
    # As is: the published CRLs' entries, and their sizes but for the
    # ECDSA signature's length, which varies by a byte or two.
    full = env.crl_path("sh")
    assert abs(int(as_is[("full", None)]["bytes"]) - full.stat().st_size) <= 2
    assert int(as_is[("full", None)]["entries"]) == 40
    for k in range(1, N + 1):
        p = env.out / "crl" / "sh" / f"{k}.crl"
        crl = x509.load_der_x509_crl(p.read_bytes())
        assert abs(int(as_is[("shard", str(k))]["bytes"]) - p.stat().st_size) <= 2
        assert int(as_is[("shard", str(k))]["entries"]) == len(list(crl))
    ra = {(x.get("crl"), x.get("shard")): x for x in rows
          if x["scenario"] == "revoke-all" and "crl" in x}
    assert int(ra[("full", None)]["entries"]) == 100
    assert int(ra[("full", None)]["newly_revoked"]) == 60
    assert sum(int(ra[("shard", str(k))]["entries"]) for k in range(1, N + 1)) == 100
    need = [x for x in rows if "shards_needed" in x]
    assert [x["shards_needed"] for x in need] == ["1", "1"]  # 10 MB is far
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in env.out.rglob("*") if p.is_file()}
    assert after == before
    assert env.runner.store("status", "sh", "300001").stdout == status_before


def test_plan_shards_needed_and_window(tmp_path, ca):
    rows = synthetic_revoked(10)
    rows += [("V", "351231235959Z", "", "%X" % (0x300000 + i)) for i in range(400)]
    write_index(ca.index, rows)
    e = Env(tmp_path, [ca], ca_extra={"sh": ["crl_max_bytes = 4000"]})
    e.import_index(ca)
    r = e.crlgen("--plan", "--revoke-all")
    need = {x["scenario"]: x for x in plan_lines(r.stdout) if "shards_needed" in x}
    assert need["as-is"]["shards_needed"] == "1"
    # 410 entries of about 37 bytes: 15 kB, so 8 shards of under 4000 bytes.
    assert need["revoke-all"]["shards_needed"] == "8"
    assert need["revoke-all"]["action"] == "add_shards"
    # A window nobody was issued in (the index has no issuance times: all
    # are skipped and said so).
    r = e.crlgen("--plan", "--issued-after", "2020-01-01T00:00:00Z")
    rows = plan_lines(r.stdout)
    full = [x for x in rows if x.get("crl") == "full" and x["scenario"] == "issued-window"]
    assert full[0]["newly_revoked"] == "0"
    assert any(x.get("skipped_without_issuance_time") == "400" for x in rows)
    # Certificates added with their dates: a window around now selects them.
    for i in range(2):
        e.runner.store("add", "sh", ca.issue(f"w{i}.example")[1])
    t0 = (now() - datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    t1 = (now() + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = e.crlgen("--plan", "--issued-after", t0, "--issued-before", t1)
    full = [x for x in plan_lines(r.stdout)
            if x.get("crl") == "full" and x["scenario"] == "issued-window"]
    assert full[0]["newly_revoked"] == "2" and full[0]["entries"] == "12"
    r = e.crlgen("--plan", "--issued-after", t1)
    full = [x for x in plan_lines(r.stdout)
            if x.get("crl") == "full" and x["scenario"] == "issued-window"]
    assert full[0]["newly_revoked"] == "0"
    bad = e.crlgen("--plan", "--issued-before", "2020-01-01T00:00:00Z", check=False)
    assert bad.returncode == 2 and "--issued-before goes with --issued-after" in bad.stderr


def test_dry_run_signs_and_publishes_nothing(tmp_path, ca):
    """--dry-run, the check before a deployment (issue 17): every key loaded,
    every CA's CRLs built and signed as they are, nothing written to out; a
    key that cannot be loaded stops it with one line, exit 2."""
    write_index(ca.index, synthetic_revoked(5))
    e = Env(tmp_path, [ca])
    e.import_index(ca)
    r = e.crlgen("--dry-run")
    rows = [x for x in plan_lines(r.stdout) if x.get("crl") == "full"]
    assert rows and all(x["scenario"] == "as-is" for x in rows), r.stdout
    assert int(rows[0]["entries"]) == 5 and int(rows[0]["bytes"]) > 300, rows
    assert not e.out.exists() or not any(p.is_file() for p in e.out.rglob("*")), \
        list(e.out.rglob("*"))
    bad = tmp_path / "bad.conf"
    bad.write_text(e.config.read_text().replace(f"crl_key = {ca.key}",
                                                f"crl_key = {tmp_path}/none.key"))
    r = run(binary("vigil-crlgen"), "-c", bad, "--dry-run", check=False)
    assert r.returncode == 2 and "none.key" in r.stderr and \
        r.stderr.strip().count("\n") == 0, r.stderr
