# SPDX-License-Identifier: Apache-2.0
"""kill -9 of `replicate publish` and of `replicate follow` at random moments
(issue 15), at least 20 trials each, while the primary keeps writing:
revocations by list, a large import (logged as one CA-wide change, which
publish carries by copying the CA whole) and a freeze. Each series ends with
a catch-up and dumps of both stores that must be identical, and the
database's counter must be the primary's: a push repeated after a crash
changes nothing, an apply repeated after a crash changes nothing. Slow suite
(plain build only)."""
import random
import threading
import time

import pytest

import pg_util
import pki
from conftest import Runner
from repl_util import Daemon, dump, make_sites, serial_file
from store_util import Store, synth_index

TRIALS = 24


@pytest.fixture
def pg(tmp_path):
    pg_util.need_pg()
    p = pg_util.Pg(tmp_path / "pg", "primary").init()
    try:
        p.start()
        yield p
    finally:
        p.destroy()


class Writer:
    """Writes to the primary store in a loop until stopped."""

    def __init__(self, store, ca, tmp, rng):
        self.store, self.ca, self.tmp, self.rng = store, ca, tmp, rng
        self.stop_ev = threading.Event()
        self.n = 0
        self.err = None
        self.th = threading.Thread(target=self.run, daemon=True)

    def run(self):
        try:
            while not self.stop_ev.is_set():
                self.n += 1
                k = self.rng.randrange(4)
                if k < 2:
                    f = serial_file(self.tmp / f"w{self.n}.txt",
                                    0x20000000 + self.rng.randrange(1 << 20), 3000)
                    self.store.run("revoke", self.ca, "--serials", f)
                elif k == 2:
                    text, _ = synth_index(self.rng, 2000)
                    idx = self.tmp / f"idx{self.n}.txt"
                    idx.write_text(text)
                    self.store.run("import-index", self.ca, idx)
                else:
                    self.store.run("revoke", self.ca, "%X" % (0x30000000 + self.n),
                                  "--reason", "certificateHold")
                time.sleep(0.05)
        except Exception as e:  # noqa: BLE001 - reported by stop()
            self.err = e

    def start(self):
        self.th.start()
        return self

    def stop(self):
        self.stop_ev.set()
        self.th.join(60)
        assert self.err is None, self.err


def wait_log(path, needles, timeout=15):
    """Until the daemon's log at |path| has a line with one of |needles|."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        if any(n in text for n in needles):
            return True
        time.sleep(0.01)
    return False


def make_primary(tmp_path, pg, rng):
    ca = pki.CA(tmp_path, "crash1")
    pconf, rconf = make_sites(tmp_path, ca, pg.conninfo(), pg.conninfo())
    Runner(pconf).seed(ca)
    text, _ = synth_index(rng, 60000)
    (tmp_path / "big.txt").write_text(text)
    Store(pconf).ok("import-index", "crash1", tmp_path / "big.txt")
    return Store(pconf), Store(rconf), pconf, rconf


def converge(pconf, rconf, pg):
    Runner(pconf).store("replicate", "publish", "--once")
    Runner(rconf).store("replicate", "follow", "--once")
    p, r = Store(pconf), Store(rconf)
    assert pg.sql("SELECT value FROM vigil.meta WHERE key = 'counter'") == str(p.counter())
    assert dump(p, ["crash1"]) == dump(r, ["crash1"])
    assert p.audit() == r.audit()


def kill_trials(conf, mode, tmp_path, rng, phases, midway):
    """TRIALS runs of `replicate MODE`, each killed at a random moment;
    |midway()| runs once half of them are done. Every other trial waits for
    one of |phases| in its log first, so that both phases are hit however
    loaded the machine is; at least one trial must have reached each."""
    for i in range(TRIALS):
        if i == TRIALS // 2:
            midway()
        log = tmp_path / f"{mode}{i}.log"
        d = Daemon(conf, mode, log).start()
        if i % 2:
            wait_log(log, phases)
        time.sleep(rng.uniform(0.02, 0.6))
        d.kill()
    logs = "".join((tmp_path / f"{mode}{i}.log").read_text() for i in range(TRIALS))
    assert all(w in logs for w in phases), f"no trial in one of the phases {phases}"


def test_kill_publish_at_random_moments(tmp_path, pg):
    rng = random.Random(15001)
    p, r, pconf, rconf = make_primary(tmp_path, pg, rng)
    w = Writer(p, "crash1", tmp_path, rng).start()
    try:
        # The first half kills the first push (the whole store by COPY);
        # the rest kill commits pushed one by one.
        kill_trials(pconf, "publish", tmp_path, rng, ("full_push", "changes="),
                    lambda: Runner(pconf).store("replicate", "publish", "--once"))
        p.run("freeze", "crash1")  # a killed daemon leaves a reader slot: warned
    finally:
        w.stop()
    converge(pconf, rconf, pg)


def test_kill_follow_at_random_moments(tmp_path, pg):
    rng = random.Random(15002)
    p, r, pconf, rconf = make_primary(tmp_path, pg, rng)
    pub = Daemon(pconf, "publish", tmp_path / "pub.log").start()
    w = Writer(p, "crash1", tmp_path, rng).start()
    try:
        # The first half lands in the bootstrap, the rest in the steady state.
        kill_trials(rconf, "follow", tmp_path, rng, ("bootstrap_start", "replicate_applied"),
                    lambda: Runner(rconf).store("replicate", "follow", "--once"))
        p.run("freeze", "crash1")  # a killed daemon leaves a reader slot: warned
    finally:
        w.stop()
        pub.stop()
    converge(pconf, rconf, pg)
