# SPDX-License-Identifier: Apache-2.0
"""The shipped alert rules (deploy/prometheus, issue 17): Prometheus' own
promtool accepts them and their unit tests pass, and every vigil_* metric
they use is one the programs really emit (the responder's /metrics with
crlgen's metrics file appended, and the CRL watchdog's output), so a renamed
metric cannot leave an alert that never fires."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD
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
    prom = tmp_path / "import.prom"
    e.runner.store("import-index", ca.name, ca.index, "--metrics-file", prom)
    emitted = metric_names(body.decode()) | metric_names(check.stdout) | \
        metric_names(prom.read_text())
    used = rule_metrics()
    assert {"vigil_crl_next_update_seconds", "vigil_signer_expiry_seconds",
            "vigil_crl_check_ok"} <= used, used
    missing = sorted(n for n in used - EXTERNAL if n not in emitted)
    assert not missing, f"the alert rules use metrics no program emits: {missing}"


def test_import_metrics_file(tmp_path):
    """import-index --metrics-file (vigil-import@.timer): a successful import
    writes when it ran and what it changed; a failed one leaves the file as it
    was, so the file's age is what VigilImportStale watches."""
    import time
    ca = CA(tmp_path / "pki", "imp", keytype="ec")
    write_index(ca.index, synthetic_revoked(3))
    e = Env(tmp_path, [ca])
    prom = tmp_path / "metrics" / "vigil-import-imp.prom"
    prom.parent.mkdir()
    t0 = int(time.time())
    old = os.umask(0o007)  # vigil-import@.service's UMask=
    try:
        e.runner.store("import-index", ca.name, ca.index, "--metrics-file", prom)
    finally:
        os.umask(old)
    # node_exporter runs as another user: the file is readable by all.
    assert prom.stat().st_mode & 0o777 == 0o644, oct(prom.stat().st_mode)
    text = prom.read_text()
    t = int(re.search(r'^vigil_store_import_last_success_seconds\{ca="imp"\} (\d+)$', text,
                      re.M).group(1))
    assert t0 <= t <= t0 + 60, (t0, t)
    # Three revoked lines, new to the store: recorded revoked.
    assert 'vigil_store_import_changes{ca="imp",change="revoked"} 3' in text, text
    assert re.search(r'^vigil_store_import_lines\{ca="imp"\} 3$', text, re.M), text
    assert list(prom.parent.iterdir()) == [prom], "a temporary file was left"
    # A malformed index: nothing imported, the metrics file unchanged.
    bad = tmp_path / "bad-index.txt"
    bad.write_text("V\tnot-a-time\t\t01\tunknown\t/CN=x\n")
    r = e.runner.store("import-index", ca.name, bad, "--metrics-file", prom, check=False)
    assert r.returncode == 1 and prom.read_text() == text, r.stderr
    # The same index again: a success that changed nothing.
    e.runner.store("import-index", ca.name, ca.index, "--metrics-file", prom)
    assert 'vigil_store_import_changes{ca="imp",change="revoked"} 0' in prom.read_text()


def test_expired_crl_is_503_and_healthz_says_so(tmp_path):
    """A CRL past its nextUpdate (crlgen stopped publishing) is answered 503,
    never 200 with max-age=0, counted, and /healthz turns 503 naming the CA;
    a fresh CRL brings both back (issue 17)."""
    import datetime
    from conftest import write_config
    from responder_util import CrlMaker
    ca = CA(tmp_path / "pki", "exp", keytype="rsa")
    conf = write_config(tmp_path / "vigil.conf", tmp_path / "store", [ca], workers=1)
    subprocess.run([str(BUILD / "store" / "vigil-store"), "-c", str(conf), "init"], check=True,
                   capture_output=True)
    path = tmp_path / "crl" / "exp.crl"
    path.parent.mkdir()
    old = CrlMaker(ca, 3)
    old.now -= datetime.timedelta(days=2)  # nextUpdate = thisUpdate + 1 day: yesterday
    old.publish(path)
    with Responder(conf) as r:
        status, _, body = r.request("GET", "/crl/exp.crl")
        assert status == 503 and b"expired" in body, (status, body)
        status, _, body = r.request("GET", "/healthz")
        assert status == 503 and b"CRL of CA exp expired" in body, (status, body)
        assert r.metric("vigil_crl_expired_total") == 1
        der = CrlMaker(ca, 3).publish(path)
        status, _, body = r.request("GET", "/crl/exp.crl")
        assert status == 200 and body == der
        status, _, body = r.request("GET", "/healthz")
        assert status == 200, body
