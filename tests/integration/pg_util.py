# SPDX-License-Identifier: Apache-2.0
"""PostgreSQL 15 from Debian, started by a test: a primary and streaming
standbys made with pg_basebackup -R, each with its data directory and unix
socket under the test's tmp directory, listening on 127.0.0.1 on a free port
only. As root the servers run as the postgres user (runuser)."""
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

PGBIN = Path("/usr/lib/postgresql/15/bin")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args, timeout=120):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"{args[-8:]} exited {r.returncode}: {r.stderr[-1500:]}")
    return r


def _as_pg(args):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + [str(a) for a in args]
    return [str(a) for a in args]


def available():
    if not (PGBIN / "initdb").exists():
        return False
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return False
    return True


def need_pg():
    if not available():
        pytest.skip("PostgreSQL 15 (postgresql-15) is not installed")


class Pg:
    """One server. start() waits until it accepts connections."""

    def __init__(self, root, name):
        self.root = Path(root)
        if os.geteuid() == 0:
            # The server runs as postgres, which must reach its directory:
            # not under pytest's /tmp/pytest-of-root, which every pytest
            # session starting makes private (0700) again.
            self.dir = Path(tempfile.mkdtemp(prefix=f"vigil-pg-{name}-"))
            os.chmod(self.dir, 0o755)
            (self.root / f"{name}.pgdir").parent.mkdir(parents=True, exist_ok=True)
            (self.root / f"{name}.pgdir").write_text(str(self.dir))  # for a look afterwards
        else:
            self.dir = self.root / name
        self.data = self.dir / "data"
        self.sock = self.dir / "sock"
        self.log = self.dir / "log"
        self.port = free_port()
        self.running = False

    def _prepare(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")

    def init(self):
        self._prepare()
        _run(_as_pg([PGBIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                     "--no-sync", "-E", "UTF8"]))
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("\nwal_level = replica\nmax_wal_senders = 5\nhot_standby = on\n"
                    "fsync = off\nsynchronous_commit = on\nfull_page_writes = off\n"
                    "shared_buffers = 64MB\n")
        # The role pwuser must give a password (tests of password_file);
        # every other role is trusted.
        hba = self.data / "pg_hba.conf"
        text = hba.read_text()
        hba.write_text("host all pwuser 127.0.0.1/32 scram-sha-256\n" + text +
                       "\nhost replication all 127.0.0.1/32 trust\n")
        return self

    def standby_of(self, primary):
        """A streaming standby of |primary| (pg_basebackup -R)."""
        self._prepare()
        _run(_as_pg([PGBIN / "pg_basebackup", "-h", "127.0.0.1", "-p", primary.port,
                     "-U", "postgres", "-D", self.data, "-R", "-X", "stream"]))
        return self

    def start(self, timeout=60):
        """pg_ctl start -w: the server runs in the background until stop()."""
        self.running = True
        _run(_as_pg([PGBIN / "pg_ctl", "start", "-w", "-t", timeout, "-D", self.data, "-l",
                     self.log, "-o", f"-p {self.port} -h 127.0.0.1 -k {self.sock}"]),
             timeout=timeout + 10)
        return self

    def stop(self, mode="fast"):
        if not getattr(self, "running", False):
            return
        r = subprocess.run(_as_pg([PGBIN / "pg_ctl", "stop", "-w", "-t", "30", "-m", mode, "-D",
                                   self.data]), capture_output=True, timeout=60)
        if r.returncode != 0 and mode != "immediate":
            subprocess.run(_as_pg([PGBIN / "pg_ctl", "stop", "-w", "-m", "immediate", "-D",
                                   self.data]), capture_output=True, timeout=60)
        self.running = False

    def destroy(self):
        """stop(), and remove a directory made outside the test's own."""
        self.stop(mode="immediate")
        if os.geteuid() == 0:
            shutil.rmtree(self.dir, ignore_errors=True)

    def conninfo(self, db="postgres"):
        return f"host=127.0.0.1 port={self.port} dbname={db} user=postgres"

    def sql(self, q, db="postgres", check=True):
        r = subprocess.run([PGBIN / "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db,
                            "-c", q], capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"psql {q!r}: {r.stderr}")
        return r.stdout.strip()

    def promote(self):
        _run(_as_pg([PGBIN / "pg_ctl", "promote", "-w", "-D", self.data]), timeout=60)

    def wait_replayed(self, primary, timeout=10):
        """Until this standby has replayed what |primary| has written."""
        lsn = primary.sql("SELECT pg_current_wal_lsn()")
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.sql(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn") == "t":
                return
            time.sleep(0.05)
        raise AssertionError("standby did not catch up")
