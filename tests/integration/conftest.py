# SPDX-License-Identifier: Apache-2.0
"""The integration tests' shared helpers, one copy each: the build-dir
binaries and a runner for them, any command run, the configuration file, time
and DER text. The *_util.py modules and pki.py hold what one area needs."""
import contextlib
import json
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


def sanitized_build():
    """True when VIGIL_BUILD is an ASan/UBSan build (meson's b_sanitize)."""
    try:
        opts = json.loads((BUILD / "meson-info" / "intro-buildoptions.json").read_text())
    except (OSError, ValueError):
        return False
    v = next((o["value"] for o in opts if o["name"] == "b_sanitize"), "none")
    return v not in ("none", "", [], ["none"])


def run(*args, check=True, timeout=120, env=None, input=None, text=True):
    """Run a command (its arguments made strings) with its output captured;
    returns the CompletedProcess. With |check|, a non-zero exit fails the
    test with both outputs."""
    r = subprocess.run([str(a) for a in args], capture_output=True, text=text, timeout=timeout,
                       env=env, input=input)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


class Runner:
    """The three programs on one configuration file."""

    def __init__(self, config):
        self.config = config

    def run(self, prog, *args, check=True, timeout=120, input=None, env=None):
        """Run PROG -c CONFIG ARGS; returns CompletedProcess (text)."""
        cmd = [str(binary(prog)), "-c", str(self.config)] + [str(a) for a in args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input,
                           env=env)
        if check and r.returncode != 0:
            raise AssertionError(f"{cmd} exited {r.returncode}: {r.stderr}")
        return r

    def store(self, *args, check=True, timeout=120, input=None):
        """Run vigil-store -c CONFIG ARGS."""
        return self.run("vigil-store", *args, check=check, timeout=timeout, input=input)

    def crlgen(self, *args, check=True, timeout=120, env=None):
        """Run vigil-crlgen -c CONFIG ARGS."""
        return self.run("vigil-crlgen", *args, check=check, timeout=timeout, env=env)

    def seed(self, *cas):
        """vigil-store init, then each CA's index.txt imported."""
        self.store("init")
        for ca in cas:
            self.store("import-index", ca.name, ca.index)
        return self


def write_config(path, store, cas, workers=2, responder=None, crlgen=None, crl_out=None,
                 edge=None):
    """Write a Vigil configuration to |path| and return its path.

    |cas| holds CAs (pki.CA, hsm_util.HsmCA), each alone or as (CA, {key:
    value}). A CA with a delegated OCSP signer (ocsp_cert) signs its answers
    with it, one without (or given 'delegated': False) with its own key,
    which signs its CRLs. Keys given replace those in place or follow them;
    a key given None is left out. |responder| and |crlgen| hold more keys of
    those sections; [responder] listens on 127.0.0.1:0 with |workers|
    workers, [crlgen] writes to |crl_out| (default: crl/ beside |path|). An
    [edge] section is written when |edge| holds its keys."""
    def section(name, keys):
        return [f"[{name}]"] + [f"{k} = {v}" for k, v in keys.items() if v is not None] + [""]

    lines = section("store", {"path": store})
    lines += section("responder", {"listen": "127.0.0.1:0", "workers": workers,
                                   **(responder or {})})
    lines += section("crlgen", {"out": crl_out or Path(path).parent / "crl", "interval": 3600,
                                **(crlgen or {})})
    if edge is not None:
        lines += section("edge", edge)
    for item in cas:
        ca, keys = item if isinstance(item, tuple) else (item, {})
        keys = dict(keys)
        sec = {"cert": ca.cert}
        if keys.pop("delegated", hasattr(ca, "ocsp_cert")):
            sec.update(ocsp_cert=ca.ocsp_cert, ocsp_key=ca.ocsp_key)
        else:
            sec["ocsp_key"] = ca.key
        sec["crl_key"] = ca.key
        sec.update(keys)
        lines += section(f"ca {ca.name}", sec)
    Path(path).write_text("\n".join(lines))
    return Path(path)


def rfc3339(t):
    """A datetime as RFC 3339 UTC text, as the programs print times."""
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def der_tlv(tag, body):
    """One DER tag-length-value (a one-byte tag), for hand-made structures."""
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    ln = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(ln)]) + ln + body


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
