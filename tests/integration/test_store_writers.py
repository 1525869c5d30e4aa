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

And a data file cut short (item 5): LMDB maps data.mdb and a read of a page
beyond its end kills the process with SIGBUS; each of the three programs must
instead refuse it at start with one line, "store damaged: PATH expected N
bytes, found M", N being what LMDB itself (mdb_stat) says the store uses.
"""
import os
import random
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import binary, write_config
from pki import CA
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
    conf = write_config(tmp_path / "vigil.conf", store, [(ca, {})])
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


# ---- A data file cut short (item 5) ----------------------------------------

def lmdb_pages(store):
    """(pages in use, page size, first page of the free pages that end the
    file), as LMDB's own mdb_stat reads them."""
    out = subprocess.run(["mdb_stat", "-e", "-fff", str(store)], check=True,
                         capture_output=True, text=True).stdout
    pages = int(re.search(r"Number of pages used: (\d+)", out)[1])
    psize = int(re.search(r"Page size: (\d+)", out)[1])
    free = set()
    for m in re.finditer(r"^\s+(\d+)(?:\[(\d+)\])?$", out, re.M):
        free.update(range(int(m[1]), int(m[1]) + int(m[2] or 1)))
    tail = pages
    while tail - 1 in free:
        tail -= 1
    return pages, psize, tail


@pytest.fixture(scope="module")
def filled(tmp_path_factory, ca):
    """A store of 20,000 certificates, some revoked, whose file ends with
    free pages; returns (config, store, bytes in use, page size, first page
    of the free end)."""
    if not shutil.which("mdb_stat"):
        pytest.skip("mdb_stat (lmdb-utils) not installed")
    d = tmp_path_factory.mktemp("filled")
    store = d / "store"
    conf = write_config(d / "vigil.conf", store, [(ca, {})])
    vs = [str(binary("vigil-store")), "-q", "-c", str(conf)]
    subprocess.run(vs + ["init"], check=True, capture_output=True)
    rng = random.Random(5)
    serials = ["%032X" % (rng.getrandbits(124) | (1 << 124)) for _ in range(20000)]
    (d / "index.txt").write_text(index_text(serials))
    subprocess.run(vs + ["import-index", "ca1", d / "index.txt"], check=True, capture_output=True)
    # Single revocations until the file ends with free pages (each commit
    # frees the pages it copied and reuses freed ones).
    for s in serials[:300]:
        subprocess.run(vs + ["revoke", "ca1", s], check=True, capture_output=True)
        pages, psize, tail = lmdb_pages(store)
        if tail < pages:
            break
    assert tail < pages, "no free pages at the end of the file"
    return conf, store, pages * psize, psize, tail


def run_program(name, conf):
    """Run one program on |conf| as an operator would start it; returns
    (returncode, lines on stderr that are not key=value log lines). A
    program still running after 10 s took the store as sound: it is
    stopped and reported as such."""
    args = {"vigil-store": ["status", "ca1", "01"], "vigil-responder": [],
            "vigil-crlgen": ["--once"]}[name]
    p = subprocess.Popen([str(binary(name)), "-c", str(conf)] + args, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail(f"{name} kept running on a damaged store")
    return p.returncode, [ln for ln in err.splitlines() if not ln.startswith("ts=")]


def cut_copy(tmp_path, filled, size):
    conf, store = filled[:2]
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    os.truncate(copy / "data.mdb", size)
    c = tmp_path / "vigil.conf"
    c.write_text(conf.read_text().replace(f"path = {store}", f"path = {copy}"))
    return c, copy


CUTS = {"half": lambda used, psize, tail: used // 2,
        "roots": lambda used, psize, tail: 2 * psize + 100,
        "page_in_use": lambda used, psize, tail: (tail - 1) * psize}
PROGRAMS = ["vigil-store", "vigil-responder", "vigil-crlgen"]


@pytest.mark.parametrize("cut", list(CUTS))
@pytest.mark.parametrize("program", PROGRAMS)
def test_truncated_store_refused(tmp_path, filled, program, cut):
    """No program dies of a signal on a cut data file: each exits non-zero
    at start with one line naming the store."""
    _, _, used, psize, tail = filled
    size = CUTS[cut](used, psize, tail)
    conf, copy = cut_copy(tmp_path, filled, size)
    rc, lines = run_program(program, conf)
    assert rc > 0, f"{program} exited {rc}" + (
        f" (signal {signal.Signals(-rc).name})" if rc < 0 else "")
    assert len(lines) == 1, lines
    assert str(copy) in lines[0], lines[0]
    assert (copy / "data.mdb").stat().st_size == size  # left as it was


@pytest.mark.parametrize("program", [
    "vigil-store",
    "vigil-responder",
    "vigil-crlgen",
])
def test_truncated_store_line(tmp_path, filled, program):
    """The line says what is wrong: the file, the size LMDB uses, the size
    found."""
    used = filled[2]
    conf, copy = cut_copy(tmp_path, filled, used // 2)
    rc, lines = run_program(program, conf)
    want = f"store damaged: {copy / 'data.mdb'} expected {used} bytes, found {used // 2}"
    assert rc > 0 and len(lines) == 1 and lines[0].endswith(want), lines


def test_free_end_missing_is_sound(tmp_path, filled):
    """Free pages at the end of the file are never read, and LMDB does not
    write a page that the transaction which took it freed again: a file
    without them is sound, and every program works on it."""
    _, _, used, psize, tail = filled
    conf, copy = cut_copy(tmp_path, filled, tail * psize)
    vs = [str(binary("vigil-store")), "-q", "-c", str(conf)]
    r = subprocess.run(vs + ["list", "ca1"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 20000, r.stderr
    r = subprocess.run([str(binary("vigil-crlgen")), "-c", str(conf), "--once"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    p = subprocess.Popen([str(binary("vigil-responder")), "-c", str(conf)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        for ln in p.stderr:
            if "event=listening" in ln or time.monotonic() > deadline:
                break
        assert p.poll() is None, "the responder stopped"
        assert "event=listening" in ln, ln
    finally:
        p.terminate()
        p.wait(timeout=10)
    r = subprocess.run(vs + ["revoke", "ca1", "01"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
