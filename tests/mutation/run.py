#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Mutation run: is every mutant in mutants.py killed by the fast suites?

The committed tree (git archive of a revision, HEAD by default: no one's
uncommitted edits) is unpacked once into a temporary directory and built
once with meson; then for each mutant its edit is applied (exact string
replacement), the build is brought up to date (incremental), the suites of
its area run until one fails, and the file is restored. A mutant is
"killed" when a suite fails (or runs out of time), "survived" when all
pass, "stale" when its string is no longer in the tree (rewrite it), and
"build-error" when the edit does not compile (rewrite it too).

    tests/mutation/run.py                 # every mutant, against HEAD
    tests/mutation/run.py --check         # only: which mutants are stale
    tests/mutation/run.py ocsp. ctx.eku   # the mutants whose id starts so
    tests/mutation/run.py --rev HEAD~3 --keep /tmp/mut

Exit status: 0 when every mutant was killed, 1 otherwise, 2 on a setup
failure (the build or the unmutated suites failed).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from mutants import MUTANTS  # noqa: E402

PY = "/usr/bin/python3"
# Integration tests that only time HTTP edges (seconds of deliberate
# waiting), left out of the mutants' runs: no mutant here touches them.
RESPONDER_SLOW = ("not test_slow_reader_gets_the_whole_crl and not "
                  "test_keepalive_outlives_header_timeout and not test_slow_client_408")
# The suites per area, run in this order until one fails: every unit test
# (a few seconds), then the integration files that drive the mutated code.
# ("file", "-k expression or None")
SUITES = {
    "responder": [("test_survivors.py", None), ("test_responder.py", RESPONDER_SLOW),
                  ("test_responder_http.py", RESPONDER_SLOW), ("test_config_checks.py", None),
                  ("test_signer_expiry.py", "not crlgen")],
    "crlgen": [("test_survivors.py", None), ("test_crlgen.py", None),
               ("test_signer_expiry.py", "crlgen")],
    "store": [("test_survivors.py", None), ("test_crlgen.py", None),
              ("test_responder.py", RESPONDER_SLOW)],
    "conf": [("test_config_checks.py", None), ("test_survivors.py", None)],
    "cli": [("test_bulk_revoke.py", None)],
    "edge": [("test_edge.py", "never_past or headers_bound")],
    "shards": [("test_crl_shards.py", None)],
    "check": [("test_crl_check.py", "not plan and not dry_run")],
    "life": [("test_store_life.py", None)],
}
# The build targets the suites need: the programs and the unit tests, read
# from the build (run.py --list-targets), not the fuzz targets (which compile
# the responder's sources a second time) nor the benchmarks.
SKIP_TARGETS = ("fuzz_", "bench")


def sh(cmd, timeout=None, cwd=None, env=None):
    """Run |cmd|; (returncode or 'timeout', combined output)."""
    try:
        r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=timeout)
        return r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"")
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
        return "timeout", out


class Tree:
    def __init__(self, rev, where):
        self.root = Path(where)
        self.src = self.root / "src"
        self.build = self.root / "build"
        self.rev = rev

    def unpack(self):
        self.src.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", self.rev],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(self.src)], input=archive, check=True)

    def setup(self):
        rc, out = sh(["meson", "setup", str(self.build), str(self.src), "-Dwerror=false",
                      "-Dman=disabled"], timeout=300)
        if rc != 0:
            raise SystemExit(f"meson setup failed:\n{out}")

    def targets(self):
        """The executables to build, as `meson compile` names them."""
        import json
        r = subprocess.run(["meson", "introspect", "--targets", str(self.build)],
                           capture_output=True, text=True, check=True)
        out = []
        for t in json.loads(r.stdout):
            if t["type"] != "executable" or t["name"].startswith(SKIP_TARGETS):
                continue
            d = os.path.relpath(os.path.dirname(t["defined_in"]), str(self.src))
            out.append(t["name"] if d == "." else f"{d}/{t['name']}")
        return sorted(out)

    def compile(self, timeout=600):
        if not hasattr(self, "_targets"):
            self._targets = self.targets()
        return sh(["meson", "compile", "-C", str(self.build)] + self._targets, timeout=timeout)

    def run_units(self, timeout):
        return sh(["meson", "test", "-C", str(self.build), "--no-rebuild", "--suite", "unit",
                   "--print-errorlogs"], timeout=timeout)

    def run_pytest(self, name, kexpr, timeout):
        cmd = [PY, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
               str(self.src / "tests" / "integration" / name)]
        if kexpr:
            cmd += ["-k", kexpr]
        env = dict(os.environ, VIGIL_BUILD=str(self.build), PYTHONDONTWRITEBYTECODE="1")
        return sh(cmd, timeout=timeout, env=env)


SKIP = set()


def suites_of(area):
    return [s for s in [("unit", None)] + list(SUITES[area]) if s[0] not in SKIP]


def run_suites(tree, area, budget):
    """Run the area's suites in order; (None, elapsed) when all passed, or
    (name of the first failing suite, elapsed)."""
    t0 = time.monotonic()
    for name, kexpr in suites_of(area):
        left = budget - (time.monotonic() - t0)
        if left <= 0:
            return f"{name} (time limit)", time.monotonic() - t0
        if name == "unit":
            rc, out = tree.run_units(left)
        elif not (tree.src / "tests" / "integration" / name).exists():
            continue  # not in this revision
        else:
            rc, out = tree.run_pytest(name, kexpr, left)
        if rc == "timeout":
            return f"{name} (time limit)", time.monotonic() - t0
        if rc == 5 and name != "unit":
            continue  # pytest: no test selected (a -k that matches nothing here)
        if rc != 0:
            return name, time.monotonic() - t0
    return None, time.monotonic() - t0


def stale_state(src, mut):
    path = src / mut["file"]
    if not path.exists():
        return f"stale (no {mut['file']})"
    n = path.read_text().count(mut["find"])
    if n == 0:
        return "stale (string not found)"
    if n > 1:
        return f"stale (string found {n} times)"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("only", nargs="*", help="run the mutants whose id starts with one of these")
    ap.add_argument("--rev", default="HEAD", help="the committed revision to mutate (HEAD)")
    ap.add_argument("--check", action="store_true", help="only report stale mutants")
    ap.add_argument("--keep", help="work in this directory (made) and leave it there")
    ap.add_argument("--timeout", type=float, default=180,
                    help="seconds the suites may take per mutant (180)")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip running the suites on the unmutated tree first")
    ap.add_argument("--skip", action="append", default=[], metavar="SUITE",
                    help="leave out a suite (unit, test_survivors.py, ...): what would "
                         "survive without it")
    args = ap.parse_args()
    SKIP.update(args.skip)

    muts = [x for x in MUTANTS if not args.only or any(x["id"].startswith(p) for p in args.only)]
    ids = [x["id"] for x in MUTANTS]
    assert len(ids) == len(set(ids)), "duplicate mutant ids"
    if not muts:
        raise SystemExit("no mutant matches")
    where = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vigil-mutation-"))
    if args.keep and where.exists():
        shutil.rmtree(where)
    tree = Tree(args.rev, where)
    t_start = time.monotonic()
    try:
        tree.unpack()
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.rev],
                             capture_output=True, text=True).stdout.strip()
        print(f"mutation run: {len(muts)} mutants against {args.rev} ({rev}) in {where}",
              flush=True)
        if args.check:
            bad = 0
            for x in muts:
                st = stale_state(tree.src, x)
                print(f"{x['id']:40} {st or 'ok'}")
                bad += bool(st)
            return 1 if bad else 0
        tree.setup()
        rc, out = tree.compile()
        if rc != 0:
            print(out[-4000:])
            print("the unmutated tree does not build")
            return 2
        if not args.no_baseline:
            for area in sorted({x["area"] for x in muts}):
                failed, el = run_suites(tree, area, args.timeout * 2)
                print(f"baseline {area:10} {'FAILED in ' + failed if failed else 'ok'} "
                      f"({el:.0f} s)", flush=True)
                if failed:
                    print("the suites fail without any mutant: fix that first")
                    return 2
        results = []
        for x in muts:
            t0 = time.monotonic()
            path = tree.src / x["file"]
            st = stale_state(tree.src, x)
            killer = ""
            if st:
                state = st
            else:
                orig = path.read_text()
                path.write_text(orig.replace(x["find"], x["replace"], 1))
                try:
                    rc, out = tree.compile()
                    if rc != 0:
                        state = "build-error"
                        killer = out.strip().splitlines()[-1][:80] if out.strip() else ""
                    else:
                        failed, _ = run_suites(tree, x["area"], args.timeout)
                        state = "killed" if failed else "SURVIVED"
                        killer = failed or ""
                finally:
                    path.write_text(orig)
            el = time.monotonic() - t0
            results.append((x, state, killer))
            print(f"{x['id']:40} {state:9} {el:5.0f} s  {killer}", flush=True)
        # Bring the build back to the unmutated tree (for --keep).
        tree.compile()
        killed = sum(1 for _, s, _ in results if s == "killed")
        valid = sum(1 for _, s, _ in results if s in ("killed", "SURVIVED"))
        print()
        for x, s, _ in results:
            if s != "killed":
                print(f"{s}: {x['id']} ({x['file']}): {x['why']}")
        print(f"score: {killed}/{valid} killed"
              + (f" ({100.0 * killed / valid:.0f}%)" if valid else "")
              + f", {len(results) - valid} stale or not building, "
              f"{(time.monotonic() - t_start) / 60:.1f} min")
        return 0 if killed == len(results) else 1
    finally:
        if not args.keep:
            shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
