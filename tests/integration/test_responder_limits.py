# SPDX-License-Identifier: Apache-2.0
"""vigil-responder at its limits (issue 11): memory under slow CRL readers across
publications, connections past the file-descriptor limit, a broken CRL file
asked for again and again, and `user =` when not started as root.

Each drives the real binary on 127.0.0.1; CRLs are signed here with
python3-cryptography's key (the DER written by hand: its builder takes
minutes for hundreds of thousands of entries) and checked with it."""
import os
import pwd
import re
import resource
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import pytest
from cryptography import x509

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pki  # noqa: E402
from conftest import Runner, write_config  # noqa: E402
from responder_util import CrlMaker, Responder, load_cert, parse_responses  # noqa: E402


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    root = tmp_path_factory.mktemp("limits")
    c = pki.CA(root, "lim", "rsa")
    c.root = root
    return c


def setup_store(tmp_path, ca, responder, crl_dir=None):
    crl_dir = crl_dir or tmp_path / "crl"
    crl_dir.mkdir(exist_ok=True)
    conf = write_config(tmp_path / "vigil.conf", tmp_path / "store", [(ca, {})],
                        responder=responder, crl_out=crl_dir)
    Runner(conf).seed(ca)
    return conf, crl_dir


def proc_status(pid):
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: int(v) * 1024 for k, v in re.findall(r"^(Vm\w+|Rss\w+):\s+(\d+) kB", text, re.M)}


def complete(data):
    """Whether |data| holds a whole HTTP response (framed by Content-Length)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"Content-Length: (\d+)", head)
    return bool(sep and m and len(body) >= int(m.group(1)))


def log_count(r, pattern):
    rx = re.compile(pattern)
    with r.lock:
        return sum(1 for line in r.lines if rx.search(line))


# ---- Memory under slow CRL readers -----------------------------------------------------

N_READERS = 40
PUBLICATIONS = 5
CRL_ENTRIES = 480_000  # 12 MB, as in the issue
RSS_GROWTH_MAX = 16 << 20


def test_slow_crl_readers_do_not_pin_crl_versions(ca, tmp_path):
    """40 clients that stop reading a 12 MB CRL, 8 after each of 5
    publications, on two workers: the responder's peak RSS stays within
    16 MiB of what it was before (each worker reading each version into its
    own buffer, held for as long as a slow client reads, took it up by
    hundreds of MB). Each version is read once, shared by the workers, and
    every slow client still gets the exact version it asked for."""
    conf, crl_dir = setup_store(tmp_path, ca, {"workers": "2", "idle_timeout": "60s"})
    maker = CrlMaker(ca, CRL_ENTRIES)
    path = crl_dir / f"{ca.name}.crl"
    versions = []
    readers = []  # (socket, version index, bytes received so far)
    with Responder(conf) as r:
        pid = r.proc.pid
        assert r.request("GET", "/healthz")[0] == 200
        base = proc_status(pid)["VmRSS"]
        try:
            for p in range(PUBLICATIONS):
                versions.append(maker.publish(path))
                assert len(versions[-1]) > 12_000_000
                for _ in range(N_READERS // PUBLICATIONS):
                    s = socket.socket()
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                    s.settimeout(10)
                    s.connect(("127.0.0.1", r.port))
                    s.sendall(f"GET /crl/{ca.name}.crl HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                    got = b""
                    while b"\r\n\r\n" not in got:
                        chunk = s.recv(1024)
                        assert chunk, got
                        got += chunk
                    assert got.startswith(b"HTTP/1.1 200"), got[:200]
                    readers.append((s, p, got))
                time.sleep(0.3)  # the responder sends what the sockets take
            time.sleep(0.5)
            st = proc_status(pid)
            print(f"slow readers: {len(readers)} publications: {PUBLICATIONS} "
                  f"crl: {len(versions[0])} bytes; RSS before {base >> 20} MiB, "
                  f"peak {st['VmHWM'] >> 20} MiB (now {st['VmRSS'] >> 20} MiB: anon "
                  f"{st.get('RssAnon', 0) >> 20}, file {st.get('RssFile', 0) >> 20})")
            assert st["VmHWM"] - base <= RSS_GROWTH_MAX, (base, st)
            # Each version was read once for the whole process.
            assert r.metric("vigil_crl_loads_total") == PUBLICATIONS
            # Every slow reader gets its version whole, the old ones too
            # (their files replaced since): one per version read to the end.
            seen = set()
            for s, p, got in readers:
                if p in seen:
                    continue
                seen.add(p)
                s.settimeout(20)
                head, _, body = got.partition(b"\r\n\r\n")
                n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
                deadline = time.monotonic() + 30
                while len(body) < n and time.monotonic() < deadline:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    body += chunk
                assert n == len(versions[p]) and body == versions[p], (p, len(body), n)
                crl = x509.load_der_x509_crl(body)
                assert crl.is_signature_valid(load_cert(ca.cert).public_key())
            assert proc_status(pid)["VmHWM"] - base <= RSS_GROWTH_MAX
        finally:
            for s, _, _ in readers:
                s.close()
        assert r.request("GET", "/healthz")[0] == 200
        assert r.stop() == 0


# ---- Past the file-descriptor limit ------------------------------------------------------

NOFILE = 64


def test_connections_past_the_fd_limit_get_503(ca, tmp_path):
    """With 64 descriptors (soft and hard: it cannot raise them), the
    responder says at start that max_connections is more than the limit
    allows; connections past it are each answered 503 (never a silent EOF),
    counted in /metrics and logged within the log budget; those accepted are
    served, and once they close new ones are served again."""
    conf, _ = setup_store(tmp_path, ca, {"workers": "1", "idle_timeout": "30s",
                                         "header_timeout": "30s"})

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))

    conns = []

    def answer(s, i, wait):
        """What connection |i| got within |wait| s: None (nothing yet, open),
        or its answer, checked: a whole 503, or 200 to its request."""
        s.settimeout(wait)
        try:
            data = s.recv(65536)
        except socket.timeout:
            return None
        except ConnectionResetError:
            data = b""  # reset: no answer either
        # Never a silent close.
        assert data, f"connection {i}: closed or reset without an answer"
        deadline = time.monotonic() + 2
        while not complete(data) and time.monotonic() < deadline:
            s.settimeout(0.5)
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
        (status, headers, body), = parse_responses(data)
        if status == 200:
            assert i % 2 and body == b"ok\n", data
        else:
            assert status == 503 and headers["connection"] == "close", data
            assert headers["retry-after"] == "1" and body, data
        return status

    with Responder(conf, preexec=limit) as r:
        line = r.wait_log(r"event=fd_limit_low")
        assert f"nofile={NOFILE}" in line and "max_connections=10000" in line, line
        assert re.search(r"event=listening .*nofile=64", "\n".join(r.lines))
        got = {}
        t0 = time.monotonic()
        try:
            for i in range(2 * NOFILE):
                s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
                conns.append(s)
                if i % 2:  # half send their request at once
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(1)
            for i, s in enumerate(conns):
                got[i] = answer(s, i, 0.05)  # None: accepted, waiting for a request
            elapsed = time.monotonic() - t0
            refused = sum(1 for v in got.values() if v == 503)
            accepted = len(got) - refused
            assert refused >= NOFILE // 2 and accepted >= 16, (refused, accepted)
        finally:
            for s in conns:
                s.close()
        time.sleep(0.3)
        # Descriptors are free again: served, and the refusals were counted.
        assert r.request("GET", "/healthz")[0] == 200
        assert r.metric("vigil_connections_fd_limit_total") == refused
        assert r.metric("vigil_connections_refused_total") >= refused
        n = log_count(r, r"event=conn_refused reason=fd_limit")
        assert 1 <= n <= 10 * (int(elapsed) + 2), n  # the log budget: 10 a second
        if refused > n:
            r.wait_log(r"event=log_suppressed .*conn_refused reason=fd_limit", timeout=3)
        assert r.stop() == 0


# ---- A broken CRL file -----------------------------------------------------------------

def test_broken_crl_read_once_and_logged_once(ca, tmp_path):
    """A 3 MB file that is no CRL, asked for 300 times over 10 connections
    (two workers): every answer is 503 with Retry-After, the file is read
    once (vigil_crl_load_failures_total), and event=crl_unreadable is written
    once, not per request. A new (valid) file is read at once."""
    conf, crl_dir = setup_store(tmp_path, ca, {"workers": "2"})
    path = crl_dir / f"{ca.name}.crl"
    path.write_bytes(b"\x30\x84\x7f\xff\xff\xff" + os.urandom(3_000_000))
    req = f"GET /crl/{ca.name}.crl HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    with Responder(conf) as r:
        statuses = []
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
            try:
                s.sendall(req * 30)
                data = b""
                deadline = time.monotonic() + 10
                while data.count(b"HTTP/1.1 ") < 30 and time.monotonic() < deadline:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            finally:
                s.close()
            for status, headers, body in parse_responses(data):
                statuses.append(status)
                assert headers["retry-after"] == "10", headers
        assert statuses == [503] * 300, statuses
        assert r.metric("vigil_crl_load_failures_total") == 1
        assert r.metric("vigil_crl_loads_total") == 0
        time.sleep(1.2)  # past the log budget's window: anything suppressed is said
        assert log_count(r, r"event=crl_unreadable") == 1, "\n".join(r.lines)
        assert log_count(r, r"log_suppressed.*crl_unreadable") == 0
        # Replaced by a valid CRL: read at once, served.
        der = CrlMaker(ca, 10).publish(path)
        status, _, body = r.request("GET", f"/crl/{ca.name}.crl")
        assert status == 200 and body == der
        assert r.metric("vigil_crl_loads_total") == 1
        assert r.stop() == 0


# ---- user = when not root ------------------------------------------------------------------

def test_user_ignored_when_not_root_is_said():
    """`user =` is honoured only when started as root: started as nobody
    with user = daemon, the responder says in one line that it ignores it
    (and nothing when it already runs as that user)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start the responder as another user")
    nobody = pwd.getpwnam("nobody")
    d = Path(tempfile.mkdtemp(prefix="vigil-limits-"))
    try:
        d.chmod(0o755)
        ca = pki.CA(d, "usr", "ec")
        ca.dir.chmod(0o755)
        os.chown(ca.ocsp_key, nobody.pw_uid, nobody.pw_gid)
        for user, said in (("daemon", True), ("nobody", False)):
            sub = d / user
            sub.mkdir(mode=0o755)
            conf = write_config(sub / "vigil.conf", sub / "store", [(ca, {})],
                                responder={"user": user, "workers": "1"})
            Runner(conf).store("init")
            for root, dirs, files in os.walk(sub):
                for name in dirs + files:
                    os.chown(Path(root) / name, nobody.pw_uid, nobody.pw_gid)

            def become_nobody():
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)

            with Responder(conf, preexec=become_nobody) as r:
                assert r.request("GET", "/healthz")[0] == 200
                n = log_count(r, r"event=user_ignored")
                if said:
                    line = r.wait_log(r"event=user_ignored")
                    assert "user=daemon" in line and "reason=not_started_as_root" in line
                    assert n == 1
                else:
                    assert n == 0
                assert r.stop() == 0
    finally:
        shutil.rmtree(d, ignore_errors=True)
