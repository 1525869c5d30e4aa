# SPDX-License-Identifier: Apache-2.0
"""Manual pages (issue 6) stay consistent with the programs: every long option
a program's --help prints is in its man page, every configuration key and
section the parser accepts (common/conf.c, conf_sections.c) is in
vigil.conf(5), and the scdoc sources render without error (nor fall into
scdoc's silent pitfalls).
Every script the READMEs and RESULTS files tell the reader to run exists and
can be run as written."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import binary

SRC = Path(__file__).resolve().parents[2]
DOC = SRC / "doc"
# The parser: its dispatch by section, and the sections it leaves to conf_sections.c.
CONF_C = [SRC / "common" / "conf.c", SRC / "common" / "conf_sections.c"]
PROGRAMS = ["vigil-store", "vigil-responder", "vigil-crlgen"]
PAGES = {"vigil-store": "vigil-store.8", "vigil-responder": "vigil-responder.8",
         "vigil-crlgen": "vigil-crlgen.8"}

needs_scdoc = pytest.mark.skipif(shutil.which("scdoc") is None, reason="scdoc not installed")


def page_source(page):
    p = DOC / f"{page}.scd"
    assert p.exists(), f"{p} missing"
    return p.read_text()


def all_pages():
    return sorted(p.name[:-len(".scd")] for p in DOC.glob("*.scd"))


def long_options(text):
    return sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)))


@needs_scdoc
@pytest.mark.parametrize("prog", PROGRAMS)
def test_help_options_in_man_page(prog):
    r = subprocess.run([str(binary(prog)), "--help"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    opts = long_options(r.stdout)
    assert "--config" in opts and "--help" in opts, r.stdout  # the regex still works
    src = page_source(PAGES[prog])
    missing = [o for o in opts if not re.search(re.escape(o) + r"(?![a-z0-9-])", src)]
    assert not missing, f"{PAGES[prog]}.scd lacks {missing} that {prog} --help prints"


def conf_keys():
    """The key names common/conf.c and conf_sections.c accept, as the handlers
    spell them."""
    text = "".join(p.read_text() for p in CONF_C)
    keys = sorted(set(re.findall(r'!strcmp\(\s*k\s*,\s*"([^"]+)"\s*\)', text)))
    sections = sorted(set(re.findall(r'!strn?cmp\(\s*section\s*,\s*"([^"]+)"', text)))
    return keys, sections


@needs_scdoc
def test_conf_keys_in_vigil_conf_5():
    keys, sections = conf_keys()
    # The handler has keys in every section; a regex that found few is broken.
    assert len(keys) >= 25 and {"path", "listen", "out", "cert", "digest"} <= set(keys), keys
    assert {"store", "responder", "crlgen", "ca "} <= set(sections), sections
    src = page_source("vigil.conf.5")
    # Each key is documented as a bold term, *key*.
    missing = [k for k in keys if f"*{k}*" not in src]
    assert not missing, f"vigil.conf.5.scd lacks the keys {missing} that the parser accepts"
    heads = re.findall(r"^# \[([^\]]+)\]", src, re.M)
    for s in sections:
        s = s.strip()
        assert any(h == s or h.startswith(s + " ") for h in heads), \
            f"vigil.conf.5.scd has no '# [{s}...]' section (sections: {heads})"


@needs_scdoc
def test_every_page_is_built():
    build = (DOC / "meson.build").read_text()
    for page in ["vigil-store.8", "vigil-responder.8", "vigil-crlgen.8", "vigil.conf.5"]:
        assert (DOC / f"{page}.scd").exists(), page
        assert f"'{page}'" in build, f"doc/meson.build does not build {page}"


@needs_scdoc
@pytest.mark.parametrize("page", all_pages())
def test_page_renders(page, tmp_path):
    src = page_source(page)
    r = subprocess.run(["scdoc"], input=src, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and not r.stderr.strip(), f"scdoc {page}.scd: {r.stderr}"
    name, section = page.rsplit(".", 1)
    assert re.search(rf'^\.TH "{re.escape(name)}" "{section}"', r.stdout, re.M), \
        "the first line must be NAME(SECTION)"
    # Pitfalls scdoc accepts silently, outside ``` literal blocks: an
    # indented line starting with '[' or '|' becomes a table, and a leading
    # '.' is dropped.
    literal = False
    for n, line in enumerate(src.splitlines(), 1):
        if line.strip().startswith("```"):
            literal = not literal
            continue
        if literal:
            continue
        assert not re.match(r"^\s+[\[|]", line), f"{page}.scd:{n}: read as a table: {line!r}"
        assert not re.match(r"^\s*\.", line), f"{page}.scd:{n}: leading '.' is lost: {line!r}"
    if shutil.which("man"):
        out = tmp_path / page
        out.write_text(r.stdout)
        m = subprocess.run(["man", "--warnings", "-l", str(out)], capture_output=True,
                           text=True, timeout=30, env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"})
        assert m.returncode == 0 and not m.stderr.strip(), f"man -l {page}: {m.stderr}"
        text = re.sub(r".\x08", "", m.stdout)  # overstrike bold and underline
        assert "NAME" in text and "SEE ALSO" in text, text[:500]


# A command as the documents write it: a script's path at the start of a code
# span or of a line, e.g. `tests/bench/store/run.sh` or "deploy/setup.sh demo"
# (the tests under tests/integration are named, not run, so they are left out).
SCRIPT = re.compile(r"(?:^ *|`)((?:tests/(?:bench|drill|fuzz|walkthrough)|deploy)/[\w./-]+\.(?:py|sh)|\.ci/run)\b",
                    re.M)


def all_docs():
    """Every Markdown document a reader is sent to."""
    return [SRC / "README.md", *SRC.glob("*/README.md"), *SRC.glob("doc/*.md"),
            SRC / "deploy" / "INCIDENT.md", *SRC.glob("tests/**/RESULTS.md"),
            *SRC.glob("tests/**/README.md")]


def test_documented_links_resolve():
    """Every relative link between the documents names a file that exists."""
    bad = []
    for doc in all_docs():
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            if not (doc.parent / target).exists():
                bad.append(f"{doc.relative_to(SRC)}: {target}")
    assert not bad, "links to nothing:\n" + "\n".join(bad)


def test_documented_scripts_run_as_written():
    docs = all_docs()
    seen = {}
    for doc in docs:
        for m in SCRIPT.finditer(doc.read_text()):
            seen.setdefault(m.group(1), doc.relative_to(SRC))
    assert "deploy/setup.sh" in seen, "the README's set-up command was not found"
    bad = []
    for script, doc in sorted(seen.items()):
        path = SRC / script
        if not path.is_file():
            bad.append(f"{doc}: {script} does not exist")
        elif not path.stat().st_mode & 0o111:
            bad.append(f"{doc}: {script} is not executable")
        elif not path.read_bytes().startswith(b"#!"):
            bad.append(f"{doc}: {script} has no #! line")
    assert not bad, "\n".join(bad)


# ---- what the documents state, against what the programs do (issue 17) ----

def test_documented_exit_status_on_a_key_failure(tmp_path):
    """A key that cannot be loaded: the responder exits 1 and crlgen 2, as
    their EXIT STATUS sections and the HSM guide (doc/hsm.md) say."""
    import pki
    from conftest import run, write_config
    ca = pki.CA(tmp_path, "docs1")
    conf = write_config(tmp_path / "vigil.conf", tmp_path / "store", [(ca, {
        "ocsp_key": tmp_path / "missing.key", "crl_key": tmp_path / "missing.key"})])
    run(binary("vigil-store"), "-c", conf, "init")
    r = run(binary("vigil-responder"), "-c", conf, "--check", check=False)
    assert r.returncode == 1 and "missing.key" in r.stderr, r.stderr
    assert "1 on a start-up error" in page_source("vigil-responder.8") and \
        "configuration, certificate, key" in page_source("vigil-responder.8")
    r = run(binary("vigil-crlgen"), "-c", conf, "--once", check=False)
    assert r.returncode == 2 and "missing.key" in r.stderr, r.stderr
    assert re.search(r"2 on a usage, configuration,\s+certificate, key",
                     page_source("vigil-crlgen.8"))
    hsm = (SRC / "doc" / "hsm.md").read_text()
    assert re.search(r"exit status 1 from\s+`vigil-responder`", hsm)
    assert re.search(r"2 from `vigil-crlgen`", hsm)


def test_documented_http_statuses_and_test_summary():
    """The OCSP guide's HTTP promise names the 505 that test_abuse.py sees for
    an unknown HTTP version, and its test command's summary line is the one
    deploy/setup.sh prints."""
    readme = (SRC / "README.md").read_text()
    ocsp = (SRC / "doc" / "ocsp.md").read_text()
    assert "never get a 5xx" not in ocsp
    assert re.search(r"other than 1\.0 and\s+1\.1 a 505", ocsp)
    abuse = (SRC / "tests" / "integration" / "test_abuse.py").read_text()
    assert '(b"GET / HTTP/9.9\\r\\n\\r\\n", 505)' in abuse
    setup = (SRC / "deploy" / "setup.sh").read_text()
    assert 'print(f"{passed} passed, {failed} failed, {skipped} skipped")' in setup
    assert 'print "N passed, N failed, N skipped"' in readme
