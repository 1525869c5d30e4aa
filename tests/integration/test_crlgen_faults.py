# SPDX-License-Identifier: Apache-2.0
"""Faults in vigil-crlgen (issue 5): kill -9 while it publishes, and a full
disk while it publishes. What is published is read with python3-cryptography
and `openssl crl -verify`, never with Vigil's code.

The published CRLs must always be either the previous ones or new complete
ones; a restart must continue with a higher CRL number; a full disk must give
one clear error line and leave the previous CRL and no temporary file."""
import binascii
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID

import pki
from conftest import binary, tmpfs
from crlgen_util import (Daemon, Env, crl_number, openssl_crl_verify, synthetic_revoked,
                         wait_for, write_index)

SEED = 20261128
TRIALS = 25          # kill -9 trials
ENTRIES = 100000     # revoked certificates on the CRL being killed
RESTART_EVERY = 5    # a complete run (a restart) after every few kills

PUBLISHED = ("ca1.crl", "ca1.crl.pem", "ca1-delta.crl", "ca1-delta.crl.pem")
NUMBERED = re.compile(r"^ca1-(\d{16,})\.crl$")
TEMP = re.compile(r"^\.ca1(?:-delta)?\.(?:crl|crl\.pem|state)\.tmp-(\d+)-\d+$")


def sha(data):
    return hashlib.sha256(data).hexdigest()


def read_state(path):
    """NAME.state as a dict of ints; raises on a damaged file."""
    out = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        k, v = line.split("=", 1)
        out[k] = int(v)
    return out


def pem_to_der(data):
    """The DER inside one PEM CRL; ValueError unless the whole file is one
    well-formed block (64-character lines)."""
    lines = data.split(b"\n")
    if (lines[0] != b"-----BEGIN X509 CRL-----" or lines[-1] != b"" or
            lines[-2] != b"-----END X509 CRL-----"):
        raise ValueError("not one PEM block")
    body = lines[1:-2]
    if not body or any(len(l) != 64 for l in body[:-1]) or not 0 < len(body[-1]) <= 64:
        raise ValueError("bad PEM lines")
    return binascii.a2b_base64(b"".join(body))


class Checker:
    """Checks each CRL file once per content: well-formed, signed by the CA
    (python3-cryptography, and `openssl crl -verify` once per CRL, on the
    published file), complete, of the right kind. A PEM file is checked
    through the DER it holds."""

    def __init__(self, ca, entries):
        self.ca = ca
        self.entries = entries
        self.pub = x509.load_pem_x509_certificate(ca.cert.read_bytes()).public_key()
        self.seen = {}      # DER sha -> (kind, number, DER sha), or an error
        self.files = {}     # stat key -> (file sha, DER sha or error)
        self.verified = set()  # DER sha that openssl crl -verify passed
        self.full_numbers = set()

    def digest(self, path):
        """(file sha, DER sha or an error), read once per file version."""
        st = path.stat()
        key = (path.name, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if key not in self.files:
            data = path.read_bytes()
            try:
                der = pem_to_der(data) if path.name.endswith(".pem") else data
                h = sha(der)
                if h not in self.seen:
                    try:
                        self.seen[h] = self._check(der, h)
                    except (AssertionError, ValueError) as e:
                        self.seen[h] = f"{e}"
            except (ValueError, binascii.Error) as e:
                h = f"{e}"
            self.files[key] = (sha(data), h)
        return self.files[key]

    def check(self, path, openssl=True):
        """Returns (kind, number, DER sha) or raises AssertionError. With
        |openssl| "always", openssl checks this file even when it has seen
        the CRL in another file."""
        _, h = self.digest(path)
        r = self.seen.get(h, h)
        if isinstance(r, str):
            raise AssertionError(f"{path.name}: {r}")
        want = "delta" if "-delta" in path.name else "full"
        if r[0] != want:
            raise AssertionError(f"{path.name}: a {r[0]} CRL")
        form = "PEM" if path.name.endswith(".pem") else "DER"
        if openssl == "always" or (openssl and h not in self.verified):
            ok, out = openssl_crl_verify(path, self.ca.cert, inform=form)
            if not ok:
                raise AssertionError(f"{path.name}: openssl crl -verify: {out.strip()}")
            self.verified.add(h)
        return r

    def _check(self, der, h):
        crl = x509.load_der_x509_crl(der)
        try:
            self.pub.verify(crl.signature, crl.tbs_certlist_bytes,
                            ec.ECDSA(crl.signature_hash_algorithm))
        except InvalidSignature:
            raise AssertionError("bad signature")
        number = crl_number(crl)
        try:
            crl.extensions.get_extension_for_oid(ExtensionOID.DELTA_CRL_INDICATOR)
            kind = "delta"
        except x509.ExtensionNotFound:
            kind = "full"
        # Nothing changes in the store during the trials: every full CRL
        # lists every revoked certificate, every delta none.
        n = len(crl)
        assert n == (self.entries if kind == "full" else 0), f"{kind} CRL of {n} entries"
        if kind == "full":
            self.full_numbers.add(number)
        return (kind, number, h)


def listing(out):
    return sorted(p.name for p in out.iterdir())


class Publications:
    """The out directory of CA ca1 (with a delta CRL and numbered copies)
    across kills: what was there before each trial, and every violation."""

    def __init__(self, tmp_path, entries):
        self.ca = pki.CA(tmp_path, "ca1", "ec")
        self.env = Env(tmp_path, [self.ca], extra="keep = 3",
                       ca_extra={"ca1": ["delta_crl = on"]})
        write_index(self.ca.index, synthetic_revoked(entries))
        self.env.import_index(self.ca)
        self.out = self.env.out
        self.chk = Checker(self.ca, entries)
        self.cmd = [str(binary("vigil-crlgen")), "-c", str(self.env.config)]
        self.lost = []       # every violation, with its trial
        self.killed = set()  # pids killed (their temporary files may remain)
        self.before, self.top = {}, 0

    def snapshot(self):
        """Remember the published and numbered files, and the highest number
        in any of them or reserved in the state."""
        files, top = {}, 0
        for name in listing(self.out):
            if name in PUBLISHED or NUMBERED.match(name):
                files[name] = self.chk.digest(self.out / name)[0]
                try:
                    top = max(top, self.chk.check(self.out / name, openssl=False)[1])
                except AssertionError:
                    pass
        st = self.out / "ca1.state"
        if st.exists():
            top = max(top, read_state(st)["last_number"])
        self.before, self.top = files, top

    def complete(self, trial):
        """Run crlgen --once to the end: it removes what the killed ones
        left and publishes every file anew, above every number before."""
        self.env.crlgen("--once")
        self.verify(trial, 0, complete=True)

    def verify(self, trial, pid, complete=False):
        """Check the directory after a kill (or a complete run) against the
        last snapshot, then take a new one. Returns where the kill landed."""
        bad = []
        files, numbers = {}, {}
        changed = unchanged = 0
        temps = False
        for name in listing(self.out):
            path = self.out / name
            m = TEMP.match(name)
            if m:
                temps |= int(m.group(1)) == pid
                if complete:
                    bad.append(f"temporary file {name} left after a complete run")
                elif int(m.group(1)) not in self.killed:
                    bad.append(f"temporary file {name} of a live or unknown process")
                continue
            if name == "ca1.state":
                continue
            if name not in PUBLISHED and not NUMBERED.match(name):
                bad.append(f"unexpected file {name}")
                continue
            files[name] = h = self.chk.digest(path)[0]
            if self.before.get(name) == h:
                unchanged += name in PUBLISHED
                info = self.chk.check(path, openssl=False)  # checked when it was new
                numbers.setdefault(info[1], set()).add(info[2])
                continue
            # New: a complete CRL with a number above every one before.
            try:
                kind, number, der = self.chk.check(
                    path, openssl=name in PUBLISHED and ("always" if complete else True))
            except AssertionError as e:
                bad.append(f"partial or bad {e}")
                continue
            numbers.setdefault(number, set()).add(der)
            changed += name in PUBLISHED
            if number <= self.top:
                bad.append(f"{name}: number {number} not above {self.top}")
            m = NUMBERED.match(name)
            if m and int(m.group(1)) != number:
                bad.append(f"{name} holds number {number}")
        for name in PUBLISHED:
            if name not in files:
                bad.append(f"{name} missing")
        # PEM and DER of the same number are the same CRL; a delta's base
        # is a full CRL that was published.
        bad += [f"two different CRLs numbered {n}" for n, d in numbers.items() if len(d) > 1]
        try:
            dcrl = x509.load_der_x509_crl((self.out / "ca1-delta.crl").read_bytes())
            base = dcrl.extensions.get_extension_for_oid(
                ExtensionOID.DELTA_CRL_INDICATOR).value.crl_number
            if base not in self.chk.full_numbers:
                bad.append(f"delta CRL against base {base}, never published")
        except (OSError, ValueError, x509.ExtensionNotFound) as e:
            bad.append(f"ca1-delta.crl: {e}")
        # The state parses and has reserved every number in use.
        try:
            st = read_state(self.out / "ca1.state")
            if numbers and st["last_number"] < max(numbers):
                bad.append(f"state last_number {st['last_number']} < {max(numbers)}")
        except (OSError, ValueError, KeyError) as e:
            bad.append(f"ca1.state: {e}")
        if complete and changed != len(PUBLISHED):
            bad.append(f"a complete run changed {changed} of {len(PUBLISHED)} files")
        self.lost.extend(f"trial {trial} (pid {pid}): {b}" for b in bad)
        self.snapshot()
        if temps:
            return "writing"
        if changed and unchanged:
            return "renaming"
        return "after" if changed else "before"


def test_kill_9_at_random_points(tmp_path, capsys):
    """kill -9 at random times during publications of a 100,000-entry CRL
    (with a delta CRL, numbered copies and the state file), from --once and
    from --watch. After every kill, each published file is the previous one
    or a new complete CRL; a restart publishes a higher number."""
    rnd = random.Random(SEED)
    pubs = Publications(tmp_path, ENTRIES)

    # Calibrate: how long after its start crlgen has published everything
    # (its last file renamed; not its exit, which ASan's leak check delays).
    pubs.env.crlgen("--once")
    durations = []
    last = pubs.out / PUBLISHED[-1]
    for _ in range(3):
        ino = last.stat().st_ino
        t = time.monotonic()
        p = subprocess.Popen(pubs.cmd + ["--once"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            while last.stat().st_ino == ino and time.monotonic() - t < 60:
                time.sleep(0.0005)
            durations.append(time.monotonic() - t)
            assert p.wait(timeout=60) == 0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    window = sorted(durations)[1]
    pubs.verify(0, 0, complete=True)

    where = {"before": 0, "writing": 0, "renaming": 0, "after": 0}
    restarts = 0
    for trial in range(1, TRIALS + 1):
        watch = trial % 3 == 0
        delay = rnd.uniform(0, window)
        with open(tmp_path / f"kill-{trial}.log", "w") as log:
            p = subprocess.Popen(pubs.cmd + ["--watch" if watch else "--once"],
                                 stdout=subprocess.DEVNULL, stderr=log)
            try:
                time.sleep(delay)
            finally:
                p.kill()
                p.wait(timeout=10)
        pubs.killed.add(p.pid)
        where[pubs.verify(trial, p.pid)] += 1
        if trial % RESTART_EVERY == 0:
            pubs.complete(trial)
            restarts += 1

    summary = (f"crlgen kill -9 at random times: {TRIALS} trials (killed {where['before']} "
               f"before publishing, {where['writing']} while writing, {where['renaming']} "
               f"between renames, {where['after']} after), {restarts} restarts, "
               f"{len(pubs.lost)} partial or lost")
    with capsys.disabled():
        print("\n" + summary)
    assert not pubs.lost, "\n".join(pubs.lost[:20])
    # The kills did land inside publications, not only around them.
    assert where["writing"] + where["renaming"] >= TRIALS // 4, summary


# An LD_PRELOAD shim that kills the process with SIGKILL just before its Nth
# step (creating a temporary file, fsync, link, rename, unlink), and can log
# every step: kill -9 at every point between two steps of a publication.
SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static long n;

static void step(const char *what, const char *a, const char *b)
{
	const char *t = getenv("SHIM_TRACE"), *k = getenv("SHIM_KILL_AT");
	n++;
	if (t) {
		FILE *f = fopen(t, "a");
		if (f) {
			fprintf(f, "%ld %s %s %s\n", n, what, a ? a : "-", b ? b : "-");
			fclose(f);
		}
	}
	if (k && atol(k) == n)
		raise(SIGKILL);
}

#define REAL(ret, name, ...) \
	static ret (*real)(__VA_ARGS__); \
	if (!real) \
		real = (ret(*)(__VA_ARGS__))dlsym(RTLD_NEXT, name)

int openat(int dirfd, const char *path, int flags, ...)
{
	REAL(int, "openat", int, const char *, int, ...);
	mode_t mode = 0;
	if (flags & O_CREAT) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	if ((flags & O_CREAT) && (flags & O_EXCL))
		step("create", path, NULL);
	return real(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	REAL(int, "openat64", int, const char *, int, ...);
	mode_t mode = 0;
	if (flags & O_CREAT) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	if ((flags & O_CREAT) && (flags & O_EXCL))
		step("create", path, NULL);
	return real(dirfd, path, flags, mode);
}

int fsync(int fd)
{
	REAL(int, "fsync", int);
	char p[64], l[512];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	ssize_t r = readlink(p, l, sizeof(l) - 1);
	l[r > 0 ? r : 0] = 0;
	char *s = strrchr(l, '/');
	step("fsync", s ? s + 1 : l, NULL);
	return real(fd);
}

int renameat(int a, const char *from, int b, const char *to)
{
	REAL(int, "renameat", int, const char *, int, const char *);
	step("rename", from, to);
	return real(a, from, b, to);
}

int linkat(int a, const char *from, int b, const char *to, int flags)
{
	REAL(int, "linkat", int, const char *, int, const char *, int);
	step("link", from, to);
	return real(a, from, b, to, flags);
}

int unlinkat(int dirfd, const char *path, int flags)
{
	REAL(int, "unlinkat", int, const char *, int);
	step("unlink", path, NULL);
	return real(dirfd, path, flags);
}
"""


def build_shim(tmp_path):
    if not shutil.which("cc"):
        pytest.skip("no C compiler (cc) to build the LD_PRELOAD shim")
    shim = tmp_path / "killshim.so"
    src = tmp_path / "killshim.c"
    src.write_text(SHIM)
    r = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(shim), str(src), "-ldl"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return shim


def shim_env(shim, **kw):
    return dict(os.environ, LD_PRELOAD=str(shim), **kw,
                ASAN_OPTIONS="verify_asan_link_order=0:" + os.environ.get("ASAN_OPTIONS", ""))


def test_kill_9_at_every_step(tmp_path, capsys):
    """kill -9 just before each step of a publication in turn (file created,
    fsync, numbered copy linked, rename, old copy pruned), for a full CRL and
    its delta, each followed by a restart: the same checks as above, at the
    points a random kill rarely hits."""
    shim = build_shim(tmp_path)
    pubs = Publications(tmp_path, 5000)
    # Past `keep` numbered copies, so that every run prunes one: the same
    # steps each time.
    for _ in range(4):
        pubs.env.crlgen("--once")
    pubs.verify(0, 0, complete=True)

    # The steps of one publication, in order.
    trace = tmp_path / "steps.txt"
    env = shim_env(shim, SHIM_TRACE=str(trace))
    r = subprocess.run(pubs.cmd + ["--once"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    steps = trace.read_text().splitlines()
    assert len(steps) >= 10 and any(" rename " in s for s in steps), steps
    pubs.verify(0, 0, complete=True)

    where = {"before": 0, "writing": 0, "renaming": 0, "after": 0}
    del env["SHIM_TRACE"]
    for i, what in enumerate(steps, 1):
        env["SHIM_KILL_AT"] = str(i)
        p = subprocess.Popen(pubs.cmd + ["--once"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        try:
            _, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        if p.returncode != -signal.SIGKILL:
            pubs.lost.append(f"step {i} ({what}): not killed: {p.returncode} {err}")
            continue
        pubs.killed.add(p.pid)
        where[pubs.verify(f"{i} ({what})", p.pid)] += 1
        pubs.complete(f"{i} ({what}), restart")

    summary = (f"crlgen kill -9 at every step: {len(steps)} steps (" +
               ", ".join(f"{k} {v}" for k, v in where.items()) + f"), "
               f"{len(steps)} restarts, {len(pubs.lost)} partial or lost")
    with capsys.disabled():
        print("\n" + summary)
    assert not pubs.lost, "\n".join(pubs.lost[:20])


def test_watch_removes_what_a_killed_run_left(tmp_path):
    """A crlgen --once killed with its CRL written but not renamed, while
    the daemon runs: the daemon's next publication removes its files."""
    shim = build_shim(tmp_path)
    ca = pki.CA(tmp_path, "ca1", "ec")
    env = Env(tmp_path, [ca])
    write_index(ca.index, synthetic_revoked(1000))
    env.import_index(ca)
    d = Daemon(env)
    try:
        assert d.wait_log(r"event=watching", timeout=20), d.text()
        trace = tmp_path / "steps.txt"
        r = subprocess.run([str(binary("vigil-crlgen")), "-c", str(env.config), "--once"],
                           env=shim_env(shim, SHIM_TRACE=str(trace)), capture_output=True,
                           timeout=60)
        assert r.returncode == 0
        # Killed just before the rename of its DER file.
        at = next(int(l.split()[0]) for l in trace.read_text().splitlines()
                  if " rename .ca1.crl.tmp-" in l)
        r = subprocess.run([str(binary("vigil-crlgen")), "-c", str(env.config), "--once"],
                           env=shim_env(shim, SHIM_KILL_AT=str(at)), capture_output=True,
                           timeout=60)
        assert r.returncode == -signal.SIGKILL
        left = [p.name for p in env.out.iterdir() if p.name.startswith(".")]
        assert len(left) >= 2, left
        env.runner.store("revoke", "ca1", "ABCDEF01", "--reason", "keyCompromise")
        assert d.wait_log(r"event=stale_files_removed", timeout=10), d.text()
        assert wait_for(lambda: not [p for p in env.out.iterdir() if p.name.startswith(".")],
                        timeout=5) is not None
    finally:
        rc = d.stop()
    assert rc == 0, d.text()


def test_store_killed_while_crlgen_watches(tmp_path, capsys):
    """kill -9 of vigil-store during bulk revocations (several commits of
    50,000 each) while crlgen --watch publishes: every CRL crlgen published
    (all kept as numbered copies) lists exactly the revocations of a prefix
    of the committed transactions, never part of one."""
    rnd = random.Random(SEED + 1)
    ca = pki.CA(tmp_path, "ca1", "ec")
    env = Env(tmp_path, [ca], extra="keep = 1000")
    pub = x509.load_pem_x509_certificate(ca.cert.read_bytes()).public_key()
    per_trial, trials = 60000, 10

    def serials_file(k):
        path = tmp_path / f"serials-{k}.txt"
        path.write_text("".join("%X\n" % (0x10000000 * (k + 1) + i) for i in range(per_trial)))
        return path

    def revoked_in_store():
        out = env.runner.store("list", "ca1", "--revoked").stdout
        return sum(1 for line in out.splitlines() if line.strip())

    d = Daemon(env)
    killed = completed = between = 0
    try:
        assert d.wait_log(r"event=watching", timeout=20), d.text()
        # One uninterrupted run, to know how long one takes; the kills fall
        # before, between and after the two commits of each run.
        store = [str(binary("vigil-store")), "-c", str(env.config), "-q"]
        t = time.monotonic()
        env.runner.store("revoke", "ca1", "--serials", serials_file(0), "--reason", "keyCompromise")
        window = time.monotonic() - t
        completed += 1
        before = revoked_in_store()
        for k in range(1, trials + 1):
            p = subprocess.Popen(store + ["revoke", "ca1", "--serials", str(serials_file(k)),
                                          "--reason", "keyCompromise"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(rnd.uniform(0.6, 1.0) * window)
            finally:
                p.kill()
                rc = p.wait(timeout=10)
            killed += rc == -signal.SIGKILL
            completed += rc == 0
            n = revoked_in_store()
            between += 0 < n - before < per_trial
            # Aim at the commits: later when nothing was committed, earlier
            # when everything was.
            window *= 1.25 if n == before else 0.85 if rc == 0 else 1
            before = n
            # crlgen catches up with whatever was committed.
            assert wait_for(lambda: len(env.crl("ca1")) == n, timeout=20, step=0.1) \
                is not None, (n, d.text())
    finally:
        rc = d.stop()
    assert rc == 0, d.text()

    # What the store committed: the revoked count after each transaction.
    totals, total = {0}, 0
    for line in env.runner.store("audit").stdout.splitlines():
        m = re.search(r"action=revoke count=(\d+)", line)
        if m:
            total += int(m.group(1))
            totals.add(total)
    assert total == revoked_in_store()
    crls = sorted(env.out.glob("ca1-*.crl"))
    assert len(crls) >= 2, [c.name for c in crls]
    bad = []
    for path in crls:
        crl = x509.load_der_x509_crl(path.read_bytes())
        try:
            pub.verify(crl.signature, crl.tbs_certlist_bytes,
                       ec.ECDSA(crl.signature_hash_algorithm))
        except InvalidSignature:
            bad.append(f"{path.name}: bad signature")
        if len(crl) not in totals:
            bad.append(f"{path.name}: {len(crl)} entries, not a committed state {sorted(totals)}")
    with capsys.disabled():
        print(f"\nvigil-store kill -9 under crlgen --watch: {trials} trials ({killed} killed, "
              f"{between} of them between two commits, {completed - 1} completed), "
              f"{len(totals) - 1} commits, {len(crls)} CRLs published, "
              f"{len(bad)} with part of a commit")
    assert not bad, bad[:5]


# ---- A full disk -----------------------------------------------------------

PAGE = os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def small_out(tmp_path):
    """The out directory on a 1 MiB tmpfs, unmounted at the end."""
    with tmpfs(tmp_path / "crl", mode="0755") as mnt:
        yield mnt


def remount(mnt, size):
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mnt)], check=True,
                   capture_output=True)


def free_pages(mnt):
    s = os.statvfs(mnt)
    return s.f_bavail * s.f_frsize // PAGE


def fill(mnt, leave_pages):
    """A filler file that leaves exactly |leave_pages| pages free."""
    filler = mnt / "filler"
    if filler.exists():
        filler.unlink()
    n = free_pages(mnt) - leave_pages
    assert n > 0
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, n * PAGE)
    finally:
        os.close(fd)
    assert free_pages(mnt) == leave_pages
    return filler


def published_state(out):
    """Every file but the filler and NAME.state, with its content."""
    return {p.name: p.read_bytes() for p in out.iterdir()
            if p.name not in ("filler", "ca1.state")}


def one_ca_env(tmp_path, small, keytype="ec"):
    """CA ca1 with |small| revoked certificates, and its first CRL published."""
    ca = pki.CA(tmp_path, "ca1", keytype)
    env = Env(tmp_path, [ca])
    write_index(ca.index, synthetic_revoked(small))
    env.import_index(ca)
    env.crlgen("--once")
    return ca, env


def grow(env, ca, n):
    """Revoke n more certificates, so that the next CRL is much larger."""
    more = env.tmp / "more.txt"
    write_index(more, synthetic_revoked(n, start=0x900000))
    env.runner.store("import-index", ca.name, more)


def assert_failed_cleanly(env, ca, r, before):
    """--once on a full disk: status 1, one error line, nothing changed."""
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert "event=crl_failed" in line and "ca=ca1" in line, line
    assert "No space left on device" in line, line
    assert str(env.out) in line, line  # says where
    assert published_state(env.out) == before, "a file changed, appeared or was left"
    ok, out = openssl_crl_verify(env.crl_path("ca1"), ca.cert)
    assert ok, out
    ok, out = openssl_crl_verify(env.crl_path("ca1", pem=True), ca.cert, inform="PEM")
    assert ok, out
    return line


@pytest.mark.parametrize("keytype", ["ec", "ed25519"])  # Ed25519 signs from a map of the file
def test_full_disk_once(tmp_path, small_out, keytype):
    """--once with no room for the new CRL: exit status 1, one line naming
    the file and the reason, the previous CRL in place and verifying, no
    temporary file; whichever step runs out of space."""
    ca, env = one_ca_env(tmp_path, 2000, keytype)
    old = env.crl("ca1")
    before = published_state(env.out)
    grow(env, ca, 60000)  # a CRL of ~1.9 MB DER and ~2.6 MB PEM: cannot fit in 1 MiB
    r = env.crlgen("--once", check=False)
    assert_failed_cleanly(env, ca, r, before)
    assert crl_number(env.crl("ca1")) == crl_number(old)

    # More room, then a filler leaving exactly N pages free: the publication
    # fails at each step (the number's reservation, the DER, the PEM, the
    # state) and never leaves anything behind.
    remount(small_out, "64m")
    env.crlgen("--once")  # the big CRL, to learn its sizes
    der_pages = -(-env.crl_path("ca1").stat().st_size // PAGE)
    pem_pages = -(-env.crl_path("ca1", pem=True).stat().st_size // PAGE)
    failures = {}
    for leave in (0, 1, der_pages // 2, der_pages + 1, der_pages + pem_pages // 2,
                  der_pages + pem_pages):
        before = published_state(env.out)
        top = crl_number(env.crl("ca1"))
        filler = fill(small_out, leave)
        r = env.crlgen("--once", check=False)
        line = assert_failed_cleanly(env, ca, r, before)
        failures[leave] = re.search(r'error="([^"]*)"', line).group(1)
        filler.unlink()
        # With the room back, the next run publishes, above the failed one.
        env.crlgen("--once")
        assert crl_number(env.crl("ca1")) > top
        assert len(env.crl("ca1")) == 62000
        assert not [p for p in env.out.iterdir() if p.name.startswith(".")]
    # The failures were at different steps: the state, the DER, the PEM.
    msgs = " | ".join(failures.values())
    assert ".state:" in msgs and "ca1.crl:" in msgs and "ca1.crl.pem:" in msgs, msgs


def test_full_disk_watch_retries(tmp_path, small_out):
    """--watch with no room: it logs, keeps running and the previous CRL,
    and publishes once space is back."""
    ca, env = one_ca_env(tmp_path, 2000)
    before = published_state(env.out)
    grow(env, ca, 60000)
    d = Daemon(env)
    try:
        assert d.wait_log(r"event=crl_failed ca=ca1[^\n]*No space left", timeout=20), d.text()
        assert d.p.poll() is None, d.text()
        # The previous CRL stays published, nothing partial is left.
        assert published_state(env.out) == before
        ok, out = openssl_crl_verify(env.crl_path("ca1"), ca.cert)
        assert ok, out
        assert "event=crl_published" not in d.text()
        # Space comes back: the retry (every 10 s) publishes.
        remount(small_out, "64m")
        assert d.wait_log(r"event=crl_published ca=ca1 kind=full", timeout=20), d.text()
        assert len(env.crl("ca1")) == 62000
        ok, out = openssl_crl_verify(env.crl_path("ca1", pem=True), ca.cert, inform="PEM")
        assert ok, out
        assert not [p for p in env.out.iterdir() if p.name.startswith(".")]
        # One line per failed attempt, no more.
        fails = d.text().count("event=crl_failed")
        assert 1 <= fails <= 3, d.text()
    finally:
        rc = d.stop()
    assert rc == 0, d.text()


def test_full_disk_watch_delta_is_retried(tmp_path, small_out):
    """A revocation whose delta CRL cannot be written for want of space is
    published once space is back, not only at the next scheduled full CRL."""
    ca = pki.CA(tmp_path, "ca1", "ec")
    env = Env(tmp_path, [ca], ca_extra={"ca1": ["delta_crl = on"]})
    write_index(ca.index, synthetic_revoked(100))
    env.import_index(ca)
    remount(small_out, "8m")
    d = Daemon(env)
    try:
        assert d.wait_log(r"event=watching", timeout=20), d.text()
        filler = fill(small_out, 0)
        serial = "ABCDEF01"
        env.runner.store("revoke", "ca1", serial, "--reason", "keyCompromise")
        assert d.wait_log(r"event=crl_failed ca=ca1[^\n]*No space left", timeout=20), d.text()
        assert not [p for p in env.out.iterdir() if p.name.startswith(".")]
        filler.unlink()

        def listed():
            try:
                return serial in {"%X" % r.serial_number for r in env.crl("ca1")} or \
                    serial in {"%X" % r.serial_number for r in env.crl("ca1", delta=True)}
            except (ValueError, FileNotFoundError):
                return False
        assert wait_for(listed, timeout=20, step=0.1) is not None, d.text()
        ok, out = openssl_crl_verify(env.crl_path("ca1", delta=True), ca.cert)
        assert ok, out
    finally:
        rc = d.stop()
    assert rc == 0, d.text()
