# SPDX-License-Identifier: Apache-2.0
"""Concurrent writers while the store's map grows (issue 11, item 4).

vigil-store commands started while another one grows the LMDB map must wait
for the writer lock and then succeed: LMDB tells a process whose map is too
small for what another process committed with MDB_MAP_RESIZED, at open and at
the start of every transaction. Dozens of commands (imports that double the
map several times, one large enough to take several commits, single and
list revocations, additions of certificate files) run at once against one
store whose map starts at 64 KiB; every one must exit 0, and afterwards every
serial must have the status its commands give it, whatever their order.

VIGIL_WRITERS_ROUNDS=N runs the whole round N times (the README's figure).
"""
import os
import random
import subprocess
import time

import pytest

from conftest import binary
from pki import CA
from responder_util import write_conf
from store_util import norm_serial

INITIAL_MAP = 65536  # VIGIL_STORE_INITIAL_MAP: the map starts at 16 pages


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    c = CA(tmp_path_factory.mktemp("pki"), "ca1", "ec")
    c.test_leaves = [c.issue(f"leaf{i}.example") for i in range(6)]
    return c


def index_text(serials, status="V"):
    return "".join(f"{status}\t301231235959Z\t\t{s}\tunknown\t/CN=w{i}\n"
                   for i, s in enumerate(serials))


def one_round(tmp_path, ca, rng):
    store = tmp_path / "store"
    conf = write_conf(tmp_path / "vigil.conf", store, [(ca, {})])
    env = dict(os.environ, VIGIL_STORE_INITIAL_MAP=str(INITIAL_MAP))

    def cmd(*args):
        return [str(binary("vigil-store")), "-q", "-c", str(conf)] + [str(a) for a in args]

    r = subprocess.run(cmd("init"), capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr

    def fresh(n):
        return ["%032X" % (rng.getrandbits(124) | (1 << 124)) for _ in range(n)]

    cmds, expect = [], {}
    # Imports: each grows the map; one is over VG_TXN_MAX_CHANGES (50,000),
    # so it commits in several transactions with the others in between.
    for i, n in enumerate([60000] + [3000] * 9):
        serials = fresh(n)
        (tmp_path / f"index{i}.txt").write_text(index_text(serials))
        cmds.append(cmd("import-index", "ca1", tmp_path / f"index{i}.txt"))
        expect.update((norm_serial(s), "good") for s in serials)
    imported = list(expect)
    # Single revocations: of imported serials (before or after their import
    # commits: revoked either way) and of serials no import has.
    singles = rng.sample(imported, 12) + fresh(8)
    for s in singles:
        cmds.append(cmd("revoke", "ca1", s, "--reason", "keyCompromise"))
        expect[norm_serial(s)] = "revoked"
    # Revocations by list, half imported, half not.
    for i in range(4):
        lst = rng.sample(imported, 300) + fresh(300)
        (tmp_path / f"serials{i}.txt").write_text("\n".join(lst) + "\n")
        cmds.append(cmd("revoke", "ca1", "--serials", tmp_path / f"serials{i}.txt",
                        "--reason", "superseded"))
        for s in lst:
            expect.setdefault(norm_serial(s), "revoked")
            if expect[norm_serial(s)] == "good":
                expect[norm_serial(s)] = "revoked"
    # Additions of certificate files.
    for serial, path in ca.test_leaves:
        cmds.append(cmd("add", "ca1", path))
        expect[norm_serial(serial)] = "good"
    rng.shuffle(cmds)

    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for c in cmds]
    failed = []
    for c, p in zip(cmds, procs):
        out, err = p.communicate(timeout=120)
        if p.returncode != 0:
            failed.append((c[4:], p.returncode, err.strip()))

    # Everything is in: the full list has every serial with its status, and
    # each single revocation and addition answers it through status too.
    listed = {}
    r = subprocess.run(cmd("list", "ca1"), capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    for ln in r.stdout.splitlines():
        s, st = ln.split()[:2]
        listed[s] = st
    wrong = {s: (listed.get(s), want) for s, want in expect.items() if listed.get(s) != want}
    for s in singles + [serial for serial, _ in ca.test_leaves]:
        r = subprocess.run(cmd("status", "ca1", s), capture_output=True, text=True, env=env,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        got = r.stdout.split()[1]
        if got != expect[norm_serial(s)]:
            wrong[s] = (got, expect[norm_serial(s)])
    size = (store / "data.mdb").stat().st_size
    return len(cmds), failed, wrong, len(listed) - len(expect), size


def test_concurrent_writers_during_map_growth(tmp_path, ca):
    rounds = int(os.environ.get("VIGIL_WRITERS_ROUNDS", "1"))
    rng = random.Random(11)
    total = nfailed = 0
    t0 = time.monotonic()
    for i in range(rounds):
        d = tmp_path / f"round{i}"
        d.mkdir()
        n, failed, wrong, extra, size = one_round(d, ca, rng)
        total += n
        nfailed += len(failed)
        assert size > 64 * INITIAL_MAP, size  # the map doubled at least six times
        assert not failed, f"{len(failed)} of {n} commands failed: {failed[:5]}"
        assert not wrong, f"{len(wrong)} serials wrong: {list(wrong.items())[:5]}"
        assert extra == 0, f"{extra} serials listed that no command wrote"
    print(f"concurrent writers during map growth: commands={total} failed={nfailed} "
          f"rounds={rounds} seconds={time.monotonic() - t0:.1f}")
