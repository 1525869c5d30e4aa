# SPDX-License-Identifier: Apache-2.0
"""The shipped alert rules (deploy/prometheus, issue 17): Prometheus' own
promtool accepts them and their unit tests pass, and every vigil_* metric
they use is one the programs really emit (the responder's /metrics with
crlgen's metrics file appended, and the CRL watchdog's output), so a renamed
metric cannot leave an alert that never fires."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from crlgen_util import Env, synthetic_revoked, write_index
from pki import CA
from responder_util import Responder

SRC = Path(__file__).resolve().parents[2]
RULES = SRC / "deploy" / "prometheus" / "vigil-alerts.yml"
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool (package prometheus) not installed")
# Series that come from Prometheus itself or node_exporter, not from Vigil.
EXTERNAL = {"up", "node_textfile_mtime_seconds"}


@needs_promtool
def test_promtool_checks_and_tests_the_rules():
    r = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["promtool", "test", "rules", "vigil-alerts.test.yml"],
                       cwd=RULES.parent, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def metric_names(text):
    """The metrics a text exposes: its samples and its declared families (a
    counter with no sample yet, such as lint failures, is still declared)."""
    return set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{|\s)", text, re.M)) | \
        set(re.findall(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) ", text, re.M))


def rule_metrics():
    exprs = re.findall(r"^\s*expr:\s*(.+)$", RULES.read_text(), re.M)
    names = set()
    for e in exprs:
        e = re.sub(r'\{[^}]*\}', "", e)  # label matchers
        e = re.sub(r'"[^"]*"', "", e)
        names |= {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e)
                  if w.startswith(("vigil_", "node_", "up"))}
    return names


def test_every_metric_the_rules_use_is_emitted(tmp_path):
    ca = CA(tmp_path / "pki", "mon", keytype="ec")
    write_index(ca.index, synthetic_revoked(5))
    url = "http://crl.example/crl/mon.crl"
    e = Env(tmp_path, [ca], ca_extra={"mon": ["crl_url = " + url]})
    e.import_index(ca)
    e.crlgen("--once")
    with Responder(e.config) as resp:
        _, _, body = resp.request("GET", "/metrics")
        check = e.crlgen("--check", "--url-base", f"http://127.0.0.1:{resp.port}", check=False)
    emitted = metric_names(body.decode()) | metric_names(check.stdout)
    used = rule_metrics()
    assert {"vigil_crl_next_update_seconds", "vigil_signer_expiry_seconds",
            "vigil_crl_check_ok"} <= used, used
    missing = sorted(n for n in used - EXTERNAL if n not in emitted)
    assert not missing, f"the alert rules use metrics no program emits: {missing}"
