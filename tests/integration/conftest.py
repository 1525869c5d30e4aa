# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: paths to the build-dir binaries and a runner for them."""
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

BUILD = Path(os.environ.get("VIGIL_BUILD", Path(__file__).resolve().parents[2] / "build"))


def binary(name):
    subdir = {"vigil-store": "store", "vigil-responder": "responder", "vigil-crlgen": "crlgen"}[name]
    p = BUILD / subdir / name
    if not p.exists():
        pytest.fail(f"{p} not built; run meson compile -C {BUILD}")
    return p


class Runner:
    def __init__(self, config):
        self.config = config

    def store(self, *args, check=True, timeout=120, input=None):
        """Run vigil-store -c CONFIG ARGS; returns CompletedProcess (text)."""
        cmd = [str(binary("vigil-store")), "-c", str(self.config)] + [str(a) for a in args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"{cmd} exited {r.returncode}: {r.stderr}")
        return r


@pytest.fixture
def vigil_bin():
    return binary


@contextlib.contextmanager
def tmpfs(path, size="1m", mode=None):
    """Mount a small tmpfs on |path| (created) for full-disk tests and unmount
    it at the end; skips the test when mounting is refused (needs root, as CI
    runs)."""
    path.mkdir(exist_ok=True)
    opts = f"size={size}" + (f",mode={mode}" if mode else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
