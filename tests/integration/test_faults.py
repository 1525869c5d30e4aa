# SPDX-License-Identifier: Apache-2.0
"""Faults (issue 5): a full disk while committing, and store map growth under
a running responder. The store must report one clear line, keep every
committed change, and readers must keep answering."""
import os
import random
import subprocess
import time

import pytest
from cryptography.x509 import ocsp

from conftest import Runner, binary, tmpfs, write_config
from pki import CA
from responder_util import Responder, check_response, fake_cert, load_cert, make_request


def index_lines(n, seed, status="V"):
    rnd = random.Random(seed)
    serials = ["%032X" % (rnd.getrandbits(127) | (1 << 120)) for _ in range(n)]
    text = "".join(f"{status}\t301231235959Z\t\t{s}\tunknown\t/CN=h{i}\n" for i, s in enumerate(serials))
    return serials, text


@pytest.fixture
def small_fs(tmp_path):
    """A 1 MiB tmpfs, unmounted at the end (needs root, as CI runs)."""
    with tmpfs(tmp_path / "fs") as mnt:
        yield mnt


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return CA(tmp_path_factory.mktemp("pki"), "ca1", "ec")


def test_full_disk_keeps_committed_state(tmp_path, small_fs, ca):
    conf = write_config(tmp_path / "vigil.conf", small_fs / "store", [ca])
    st = Runner(conf)
    st.store("init")
    serials, text = index_lines(500, 1)
    (tmp_path / "index.txt").write_text(text)
    st.store("import-index", "ca1", tmp_path / "index.txt")
    st.store("revoke", "ca1", serials[0], "--reason", "keyCompromise")
    before = st.store("list", "ca1").stdout
    counter = [l for l in st.store("stats").stdout.splitlines() if "Change counter" in l]

    # 40,000 more revocations of serials never seen cannot fit in 1 MiB.
    many, _ = index_lines(40000, 2)
    (tmp_path / "serials.txt").write_text("\n".join(many) + "\n")
    r = st.store("revoke", "ca1", "--serials", tmp_path / "serials.txt", check=False)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "no space left on device" in lines[0] and "nothing changed" in lines[0], lines[0]

    # The same for an import.
    _, big = index_lines(40000, 3)
    (tmp_path / "big.txt").write_text(big)
    r = st.store("import-index", "ca1", tmp_path / "big.txt", check=False)
    assert r.returncode == 1
    assert "no space left on device" in r.stderr, r.stderr

    # Everything committed before is there, nothing of the failed commands.
    assert st.store("list", "ca1").stdout == before
    assert [l for l in st.store("stats").stdout.splitlines() if "Change counter" in l] == counter
    assert st.store("status", "ca1", serials[0]).stdout.split()[1:3] == ["revoked", "keyCompromise"]

    # With room again, the same command completes.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_fs)], check=True)
    st.store("revoke", "ca1", "--serials", tmp_path / "serials.txt")
    assert st.store("status", "ca1", many[-1]).stdout.split()[1] == "revoked"


def test_map_growth_under_running_responder(tmp_path, ca):
    """The store grows far past its initial map while the responder reads it."""
    store = tmp_path / "store"
    conf = write_config(tmp_path / "vigil.conf", store, [ca])
    env = dict(os.environ, VIGIL_STORE_INITIAL_MAP="65536")

    def vs(*args):
        cmd = [str(binary("vigil-store")), "-q", "-c", str(conf)] + [str(a) for a in args]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        return r

    vs("init")
    first, text = index_lines(10, 4)
    (tmp_path / "a.txt").write_text(text)
    vs("import-index", "ca1", tmp_path / "a.txt")
    issuer = load_cert(ca.cert)

    def ask(serial_hex, resp):
        der = make_request(fake_cert(int(serial_hex, 16), issuer), issuer)
        status, _, body = resp.post(der)
        assert status == 200
        return check_response(body, issuer).certificate_status

    with Responder(conf) as resp:
        assert ask(first[0], resp) == ocsp.OCSPCertStatus.GOOD
        more, text = index_lines(60000, 5)
        (tmp_path / "b.txt").write_text(text)
        vs("import-index", "ca1", tmp_path / "b.txt")
        size = (store / "data.mdb").stat().st_size
        assert size > 8 * 65536, size  # grown through several doublings
        assert ask(first[0], resp) == ocsp.OCSPCertStatus.GOOD

        def eventually(serial, want):
            # The responder follows the store within its polling interval.
            deadline = time.monotonic() + 2
            while ask(serial, resp) != want:
                assert time.monotonic() < deadline, f"{serial} never became {want}"
                time.sleep(0.05)

        eventually(more[-1], ocsp.OCSPCertStatus.GOOD)
        resp.wait_log("event=store_map_followed", timeout=1)
        vs("revoke", "ca1", more[-1], "--reason", "superseded")
        eventually(more[-1], ocsp.OCSPCertStatus.REVOKED)
