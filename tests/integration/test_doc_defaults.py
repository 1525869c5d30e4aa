# SPDX-License-Identifier: Apache-2.0
"""Every default the documents state (issue 17) is the one vigil.conf(5)
states, and the one the programs use when the key is absent.

Three tables, one chain:
  DOCS    where a guide, README, the runbook, a man page, a --help text or
          a comment of the shipped edge configurations states a key's
          default: (document, key, phrase with the value in group v). Each
          phrase must be found, and its value must be the reference's.
  MAN     the reference: each key's default as vigil.conf(5) states it, in
          the key's own entry.
  the programs: with none of these keys set, the value each program uses,
          observed where that takes seconds (a header, a CRL, a log line,
          an exit status, a prune with the store's clock moved), else, and
          also for the timeouts, the value common/conf.c sets (SOURCE).
A statement the tables do not know fails too: a key followed by "default" or
by a parenthesised value, a default's duration written in a guide's prose
("for 30 days"), and a `key = value` line of an INI example (which must show
the default, unless it is one of the deliberate settings in SET_ON_PURPOSE).
The whole file takes about 11 s, 10 of them waiting for two timeouts."""
import os
import re
import resource
import socket
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import Runner, binary, run

SRC = Path(__file__).resolve().parents[2]
CONF_C = SRC / "common" / "conf.c"

# ---- values ---------------------------------------------------------------------------------

UNITS = {"ms": 0.001, "s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60,
         "minute": 60, "minutes": 60, "h": 3600, "hour": 3600, "hours": 3600, "d": 86400,
         "day": 86400, "days": 86400}


NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
           "seven": 7, "eight": 8, "nine": 9, "ten": 10}


def seconds(v):
    m = re.fullmatch(r"(\d+|[a-z]+)\s*([a-z]*)", v.strip())
    assert m and (m.group(1).isdigit() or m.group(1) in NUMBERS) and \
        (not m.group(2) or m.group(2) in UNITS), f"not a duration: {v!r}"
    n = int(m.group(1)) if m.group(1).isdigit() else NUMBERS[m.group(1)]
    return n * (UNITS[m.group(2)] if m.group(2) else 1)


def nbytes(v):
    m = re.fullmatch(r"([\d,]+)\s*(MB|kB|GB)?", v.strip())
    assert m, f"not a size: {v!r}"
    return int(m.group(1).replace(",", "")) * {None: 1, "kB": 10**3, "MB": 10**6,
                                               "GB": 10**9}[m.group(2)]


def show(label, v):
    """A value for a message: durations in seconds and days."""
    if MAN[label][0] is seconds and isinstance(v, (int, float)) and v >= 86400:
        return f"{v:.0f} s ({v / 86400:g}d)"
    return repr(v)


def word(v):
    return v.strip().strip("`*").lower()


# key: (kind, the phrase of its vigil.conf(5) entry that states the default;
# a group w is the same value said again, "3600 (one hour)")
MAN = {
    "log_retention": (seconds, r"default (?P<v>\d+d)\."),
    "expired_retention": (seconds, r"default (?P<v>\d+d)\."),
    "listen": (word, r"Default (?P<v>[\d.]+:\d+)\."),
    "workers": (int, r"(?P<v>\d+), the default, is one per CPU"),
    "access_log": (word, r"Default: (?P<v>none)\."),
    "base_path": (word, r"Default \*(?P<v>/)\*"),
    "max_connections": (int, r"open connections \(default (?P<v>\d+),"),
    "max_request_bytes": (int, r"request body in bytes \((?P<v>\d+),"),
    "max_header_bytes": (int, r"request line and headers in bytes \((?P<v>\d+),"),
    "max_certids": (int, r"CertIDs answered per request \((?P<v>\d+),"),
    "idle_timeout": (seconds, r"Keep-alive idle time \((?P<v>\w+)\)"),
    "header_timeout": (seconds, r"time for a whole request head \((?P<v>\w+)\)"),
    "body_timeout": (seconds, r"and body \((?P<v>\w+)\);"),
    "refresh_percent": (int, r"1 to 90, default (?P<v>\d+)\."),
    "out": (word, r"\(default \*(?P<v>\w+)\* beside the file\)"),
    "interval": (seconds, r"default (?P<v>\d+) \((?P<w>\w+\s\w+)\)"),
    "metrics_file": (word, r"Default (?P<v>[\w.-]+) beside the \*out\* directory"),
    "keep": (int, r"0 to 1000, default (?P<v>\d+);"),
    "max_age": (seconds, r"0 to 86400, default (?P<v>\d+);"),
    "tag_header": (word, r"\*(?P<v>[\w-]+)\* \(Varnish, the default\)"),
    "purge_command_timeout": (seconds, r"100ms to 1h, default (?P<v>\w+)\."),
    "state_dir": (word, r"\(default: \*(?P<v>\w+)\* beside the store directory"),
    "not_issued": (word, r"\*(?P<v>\w+)\* \(the default\)"),
    "ocsp_validity": (seconds, r"8h to 10d, default (?P<v>\w+)"),
    "crl_validity": (seconds, r"1h to 10d, default (?P<v>\w+)"),
    "delta_crl": (word, r"Default (?P<v>on|off)\."),
    "crl_shards": (int, r"(?P<v>\d+), the default, is none"),
    "profile": (word, r"\*(?P<v>[\w-]+)\* \(the default otherwise\)"),
    "profile with crl_url": (word, r"\*(?P<v>[\w-]+)\* \(the default when \*crl_url\* is set\)"),
    "crl_max_bytes": (nbytes, r"default (?P<v>\d+) \((?P<w>\d+ MB),"),
    "digest": (word, r"Default (?P<v>sha\d+)\."),
    "ocsp_key": (word, r"Default: \*(?P<v>\w+)\* when no \*ocsp_cert\* is set"),
}


def conf_key(label):
    return label.split()[0]


# ---- where the documents state them ---------------------------------------------------------

DOCS_MD = [SRC / "README.md", SRC / "store" / "README.md", *sorted((SRC / "doc").glob("*.md")),
           SRC / "deploy" / "INCIDENT.md"]
PAGES = [SRC / "doc" / f"{p}.scd" for p in ("vigil-store.8", "vigil-responder.8",
                                             "vigil-crlgen.8")]
HELP = ["vigil-store", "vigil-responder", "vigil-crlgen"]
# The shipped edge configurations and purge scripts explain the keys in comments.
COMMENTED = [SRC / "deploy" / "nginx" / "vigil-edge.conf",
             SRC / "deploy" / "varnish" / "vigil-edge.vcl",
             *sorted((SRC / "deploy" / "edge").glob("*.sh"))]

# (document, key, phrase): a space in a phrase matches any run of white
# space (a line break included), so re-wrapping a paragraph changes nothing.
DOCS = [
    ("doc/cdn.md", "max_age", r"`\[edge\] max_age` \((?P<v>\d+ s) by default\)"),
    ("doc/cdn.md", "tag_header", r"\(`(?P<v>[\w-]+)` for Varnish, the default;"),
    ("doc/cdn.md", "purge_command_timeout", r"`purge_command_timeout` \((?P<v>\d+ s)\)"),
    # The guides' store is /var/lib/vigil/store: "beside" it is /var/lib/vigil/.
    ("doc/cdn.md", "state_dir", r"`\[edge\] state_dir` \(default `/var/lib/vigil/(?P<v>\w+)`"),
    ("doc/backup.md", "log_retention", r"`\[store\] log_retention`, default (?P<v>\d+d);"),
    ("doc/backup.md", "expired_retention", r"`expired_retention`, default (?P<v>\d+d)\)"),
    ("doc/backup.md", "log_retention", r"the log does not hold every expired serial for "
                                       r"(?P<v>\d+ days)\)"),
    ("doc/crl.md", "crl_max_bytes", r"`crl_max_bytes` \((?P<v>\d+ MB) by default\)"),
    ("doc/production.md", "log_retention", r"`log_retention` \((?P<v>\d+ days)\)"),
    ("doc/production.md", "expired_retention", r"`expired_retention` \((?P<v>\d+ days);"),
    ("doc/operations.md", "not_issued", r"with the default `not_issued = (?P<v>\w+)`"),
    ("deploy/INCIDENT.md", "log_retention", r"`\[store\] log_retention` \((?P<v>\d+ days)\)"),
    ("deploy/INCIDENT.md", "expired_retention", r"`expired_retention` \((?P<v>\d+ days);"),
    ("deploy/INCIDENT.md", "not_issued",
     r"must answer `(?P<v>\w+)` instead \(Baseline Requirements §4\.9\.9\): keep the default"),
    # vigil-responder(8), CONFIGURATION.
    ("doc/vigil-responder.8.scd", "listen", r"listen \(default (?P<v>[\d.]+:\d+)\)"),
    ("doc/vigil-responder.8.scd", "workers", r"workers \((?P<v>\d+), one per CPU\)"),
    ("doc/vigil-responder.8.scd", "base_path", r"base_path \((?P<v>/)\)"),
    *[("doc/vigil-responder.8.scd", k, rf"{k} \((?P<v>\w+)\)")
      for k in ("max_connections", "max_request_bytes", "max_header_bytes", "max_certids",
                "idle_timeout", "header_timeout", "body_timeout", "refresh_percent", "max_age",
                "tag_header", "purge_command_timeout")],
    ("doc/vigil-responder.8.scd", "state_dir", r"state_dir \(\*(?P<v>\w+)\* beside the store\)"),
    ("doc/vigil-responder.8.scd", "ocsp_validity",
     r"ocsp_validity \(8h to 10d, default (?P<v>\w+)\)"),
    # vigil-crlgen(8).
    ("doc/vigil-crlgen.8.scd", "crl_max_bytes", r"\*crl_max_bytes\* \(default (?P<v>\d+ MB)\)"),
    ("doc/vigil-crlgen.8.scd", "digest", r"\*digest\* \((?P<v>sha\d+) by default;"),
    ("doc/vigil-crlgen.8.scd", "crl_validity",
     r"crl_validity\*? \(1h to 10d, default (?P<v>\w+)\)"),
    ("doc/vigil-crlgen.8.scd", "out", r"out \(default \*(?P<v>\w+)\* beside _FILE_;"),
    ("doc/vigil-crlgen.8.scd", "interval", r"interval \((?P<v>\d+ seconds)\)"),
    ("doc/vigil-crlgen.8.scd", "keep", r"keep \((?P<v>\d+)\)"),
    ("doc/vigil-crlgen.8.scd", "metrics_file",
     r"\*\[crlgen\] metrics_file\* \(default (?P<v>[\w.-]+)\)"),
    # The edge configurations' and purge scripts' comments.
    ("deploy/nginx/vigil-edge.conf", "max_age",
     r"s-maxage = min\(\[edge\] max_age, #? nextUpdate - now\), (?P<v>\d+ s) by default"),
    ("deploy/nginx/vigil-edge.conf", "idle_timeout",
     r"the responder's idle_timeout \((?P<v>\d+ s) by default\)"),
    ("deploy/nginx/vigil-edge.conf", "max_request_bytes",
     r"max_request_bytes \((?P<v>\d+)\)"),
    ("deploy/nginx/vigil-edge.conf", "base_path", r"base_path is \"(?P<v>/)\" by default"),
    ("deploy/varnish/vigil-edge.vcl", "tag_header", r"tag_header = (?P<v>[\w-]+) +; the default"),
    ("deploy/varnish/vigil-edge.vcl", "max_age", r"max_age \((?P<v>\d+ s) by default\)"),
    ("deploy/edge/fastly-purge.sh", "purge_command_timeout",
     r"purge_command_timeout \((?P<v>\d+ s) by default\)"),
    # --help.
    ("vigil-responder --help", "workers", r"workers \((?P<v>\d+) = one per CPU\)"),
    ("vigil-responder --help", "base_path", r"base_path \(default (?P<v>/)\)"),
    *[("vigil-responder --help", k, rf"{k} \((?P<v>\w+)\)")
      for k in ("max_connections", "max_request_bytes", "max_header_bytes", "max_certids",
                "idle_timeout", "header_timeout", "body_timeout", "refresh_percent", "max_age",
                "tag_header", "purge_command_timeout")],
    ("vigil-responder --help", "ocsp_validity", r"ocsp_validity \(8h to 10d, default (?P<v>\w+)\)"),
    ("vigil-crlgen --help", "out", r"\[crlgen\] out \(default: (?P<v>\w+) beside FILE\)"),
    ("vigil-crlgen --help", "keep", r"the last \[crlgen\] keep full CRLs \(default (?P<v>\d+)\)"),
    ("vigil-crlgen --help", "crl_validity",
     r"crl_validity \(nextUpdate - thisUpdate, default (?P<v>\w+),"),
]

# `key = value` lines of the INI examples that are not the default, on
# purpose: (document, key, value).
SET_ON_PURPOSE = {
    ("doc/crl.md", "crl_shards", "16"),                        # the sharding examples
    ("deploy/vigil.conf.example", "crl_shards", "16"),
    ("deploy/vigil.conf.example", "profile", "tls-br"),         # the default once crl_url is set
}
# What the scan below takes for a default and is not: (document, key, what follows).
NOT_A_DEFAULT = {
    ("doc/vigil-crlgen.8.scd", "delta_crl", "(on/off),"),
    ("vigil-crlgen --help", "delta_crl", "(on/off),"),
    ("vigil-responder --help", "out", "(application/pkix-crl)"),   # a Content-Type
}
# Keys whose default is a path or another key (the example names its own
# files): an example line of these states no default.
PATHS = {"access_log", "out", "metrics_file", "state_dir", "ocsp_key"}


def phrase(rx):
    # '>' and '#': a Markdown quote's and a comment's line starts.
    return re.compile(rx.replace(" ", r"[\s>#]+"))


_help = {}


def doc_text(name):
    if name.endswith("--help"):
        prog = name.split()[0]
        if prog not in _help:
            r = run(binary(prog), "--help")
            _help[prog] = r.stdout
        return _help[prog]
    return (SRC / name).read_text()


def man_entries():
    """vigil.conf(5)'s entries: {key: its text, white space collapsed}."""
    text = (SRC / "doc" / "vigil.conf.5.scd").read_text()
    text = text.split("\n# EXAMPLE", 1)[0]
    entries, keys, body = {}, [], []
    for line in text.splitlines() + ["# end"]:
        if re.match(r"\*[a-z_]+\*", line) or line.startswith("#"):
            for k in keys:
                entries[k] = " ".join(" ".join(body).split())
            keys = re.findall(r"\*([a-z_]+)\*", line) if not line.startswith("#") else []
            body = [line]
        elif keys:
            body.append(line)
    return entries


def man_defaults():
    """{label: the normalised default vigil.conf(5) states}."""
    entries = man_entries()
    out = {}
    for label, (kind, rx) in MAN.items():
        entry = entries.get(conf_key(label))
        assert entry, f"vigil.conf.5.scd has no entry *{conf_key(label)}*"
        m = phrase(rx).search(entry)
        assert m, f"vigil.conf.5.scd, *{conf_key(label)}*: the default is no longer stated " \
                  f"as /{rx}/ (update MAN in {Path(__file__).name}):\n{entry}"
        out[label] = kind(m.group("v"))
        if m.groupdict().get("w"):
            assert kind(m.group("w")) == out[label], \
                f"vigil.conf.5.scd, *{conf_key(label)}*: {m.group(0)!r} says two values"
    return out


def lineno(text, pos):
    return text.count("\n", 0, pos) + 1


def test_documents_state_the_reference_defaults():
    """Each DOCS phrase is in its document, and its value is vigil.conf(5)'s."""
    ref = man_defaults()
    bad = []
    for doc, key, rx in DOCS:
        text = doc_text(doc)
        found = list(phrase(rx).finditer(text))
        if not found:
            bad.append(f"{doc}: no longer says /{rx}/ for {key} (the sentence changed: "
                       "update DOCS)")
        for m in found:
            v = MAN[key][0](m.group("v"))
            if v != ref[key]:
                bad.append(f"{doc}:{lineno(text, m.start())}: {key} default {m.group('v')!r}, "
                           f"vigil.conf(5) says {show(key, ref[key])}")
    assert not bad, "\n".join(bad)


def ini_lines(doc, text):
    """(line number, key, value, commented) of the INI example lines of |text|:
    the whole file for the example configuration, ```ini blocks of Markdown,
    the EXAMPLE block of vigil.conf(5)."""
    if doc.endswith(".example"):
        spans = [(0, len(text))]
    elif doc.endswith(".scd"):
        spans = [(m.start(), m.end()) for m in re.finditer(r"# EXAMPLE\n+```.*?```", text, re.S)]
    else:
        spans = [(m.start(), m.end()) for m in re.finditer(r"```ini\n.*?```", text, re.S)]
    for a, b in spans:
        for m in re.finditer(r"^(;\s*)?([a-z_]+) = (\S+)", text[a:b], re.M):
            yield lineno(text, a + m.start()), m.group(2), m.group(3), bool(m.group(1))


def test_examples_show_the_defaults():
    """A key of an INI example with a default shows it, unless set on purpose."""
    ref = man_defaults()
    docs = ["deploy/vigil.conf.example", "doc/vigil.conf.5.scd",
            *[str(p.relative_to(SRC)) for p in DOCS_MD]]
    bad, seen = [], 0
    for doc in docs:
        text = doc_text(doc)
        for n, key, v, _ in ini_lines(doc, text):
            if key not in ref or key in PATHS:
                continue
            seen += 1
            if (doc, key, v) in SET_ON_PURPOSE:
                continue
            try:
                val = MAN[key][0](v)
            except (AssertionError, ValueError):
                val = v
            if val != ref[key]:
                bad.append(f"{doc}:{n}: {key} = {v}, the default is {show(key, ref[key])} "
                           "(state the default, or add the line to SET_ON_PURPOSE)")
    assert seen >= 15, f"only {seen} example lines found: the INI scan is broken"
    assert not bad, "\n".join(bad)


def test_every_default_statement_is_known():
    """A key named near "default", or followed by a parenthesised value, in a
    guide, a man page or --help, is covered by a DOCS row: a new sentence
    stating a default cannot drift unchecked."""
    keys = sorted({conf_key(k) for k in MAN}, key=len, reverse=True)
    docs = [str(p.relative_to(SRC)) for p in DOCS_MD + PAGES + COMMENTED] + \
        [f"{p} --help" for p in HELP]
    mention = re.compile(r"(?<![\w/.-])(" + "|".join(keys) + r")(?![\w/-])")
    unknown, flagged = [], 0
    for doc in docs:
        text = doc_text(doc)
        # Fenced blocks: shell and INI examples (the latter checked above).
        masked = re.sub(r"```.*?```", lambda m: " " * len(m.group(0)), text, flags=re.S)
        covered = [m.span() for d, _, rx in DOCS if d == doc for m in phrase(rx).finditer(text)]
        prev = 0
        for m in mention.finditer(masked):
            after = masked[m.end():m.end() + 60]
            after = re.split(r"\.\s|;|\n\s*\n", after)[0]
            nxt = mention.search(after)
            if nxt:
                after = after[:nxt.start()]
            # Back to the sentence's start or the previous key, at most 25 characters.
            before = masked[max(prev, m.start() - 25):m.start()]
            before = re.split(r"[.;:,)]\s", before)[-1]
            prev = m.end()
            # "key (60 s)", "key (xkey)", "key` (30 days;", "default `key = v`".
            if not (re.search(r"\bdefault", after + " " + before) or
                    re.match(r"[`*]?\s*\(\s*[*`]?(\d|[\w/.-]+[*`]?\))", after)):
                continue
            if any(doc == d and m.group(1) == k and after.strip().startswith(x)
                   for d, k, x in NOT_A_DEFAULT):
                continue
            flagged += 1
            if not any(a <= m.end() + len(after) and m.start() - len(before) <= b
                       for a, b in covered):
                snippet = " ".join((before + m.group(0) + after).split())
                unknown.append(f"{doc}:{lineno(text, m.start())}: {m.group(1)}: {snippet!r}")
    assert flagged >= 30, f"only {flagged} statements found: the scan is broken"
    assert not unknown, ("default statements no DOCS row checks (add a row, or fix the "
                         "sentence):\n" + "\n".join(unknown))


# ---- what the programs use when the key is absent -------------------------------------------

# Observed too slowly for this test (a 30 s wait, hours of validity): the
# default common/conf.c sets, as (pattern, multiplier to the MAN unit).
SOURCE = {
    "idle_timeout": (r"c->idle_timeout_ms = (\d+);", 0.001),
    "refresh_percent": (r"c->refresh_percent = (\d+);", 1),
    "purge_command_timeout": (r"c->edge_command_timeout_ms = (\d+);", 0.001),
    # Observed too, within a timer's lateness.
    "header_timeout": (r"c->header_timeout_ms = (\d+);", 0.001),
    "body_timeout": (r"c->body_timeout_ms = (\d+);", 0.001),
}
# Nothing to observe: no access log is written unless access_log is set.
NOT_OBSERVED = {"access_log"}


def utc(s):
    """An `openssl crl -text` date (Dec  3 10:00:00 2026 GMT) as a naive UTC datetime."""
    return datetime.strptime(" ".join(s.split()), "%b %d %H:%M:%S %Y %Z")


def status_line(resp):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", resp)
    return int(m.group(1)) if m else None


def raw(port, data, timeout=5):
    """Send |data|; the status of the answer (None when closed without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        try:
            while b"\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        except socket.timeout:
            pass
        return status_line(buf)


def time_to_408(port, data, box, key):
    """Send |data| (an incomplete request); box[key] = seconds until the 408."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(data)
        t0 = time.monotonic()
        buf = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        box[key] = (status_line(buf), time.monotonic() - t0)


def ocsp_request(ca, serials, path):
    """An OCSPRequest for |serials| of |ca|, built by `openssl ocsp`."""
    args = ["openssl", "ocsp", "-issuer", str(ca.cert), "-no_nonce", "-reqout", str(path)]
    for s in serials:
        args += ["-serial", f"0x{s:X}"]
    run(*args)
    return path.read_bytes()


def follow_log(cmd, pattern, timeout=10, env=None):
    """Start |cmd|, wait for a stderr line matching |pattern|, stop it; the
    line (or everything read, when none matched)."""
    p = subprocess.Popen([str(a) for a in cmd], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    try:
        deadline = time.monotonic() + timeout
        os.set_blocking(p.stderr.fileno(), False)
        while time.monotonic() < deadline:
            line = p.stderr.readline()
            if line:
                lines.append(line)
                if re.search(pattern, line):
                    return line
            elif p.poll() is not None:
                break
            else:
                time.sleep(0.02)
        return "".join(lines)
    finally:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    """{label: the value the programs use} with only [store] path and [ca t]
    cert and crl_key set."""
    import threading

    import pki
    from cryptography.x509 import ocsp
    from responder_util import (Responder, check_response, fake_cert, load_cert,
                                make_request)

    ref = man_defaults()
    obs = {}
    d = tmp_path_factory.mktemp("defaults")
    ca = pki.CA(d, "t")
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    end = now + timedelta(days=2)
    serial, leaf = ca.issue("good.example", enddate=end.strftime("%Y%m%d%H%M%SZ"))
    conf = d / "vigil.conf"
    conf.write_text(f"[store]\npath = {d / 'store'}\n\n[ca t]\ncert = {ca.cert}\n"
                    f"crl_key = {ca.key}\n")
    vs = Runner(conf)
    vs.store("init")
    vs.store("import-index", "t", ca.index)
    vs.store("revoke", "t", "0A0B0C", "--reason", "certificateHold")
    vs.store("freeze", "t")

    # ---- vigil-crlgen: out, keep, delta_crl, metrics_file, crl_validity, digest,
    # crl_shards, profile, crl_max_bytes, interval.
    # A store with a certificate on hold: tls-br refuses it, private publishes.
    r = vs.crlgen("--once", check=False)
    obs["profile"] = "private" if r.returncode == 0 else f"exit {r.returncode}: {r.stderr}"
    for _ in range(ref["keep"] + 1):
        vs.crlgen("--once")
    crls = sorted(p.relative_to(d) for p in d.rglob("t*.crl"))
    outs = {str(p.parent) for p in crls}
    obs["out"] = outs.pop() if len(outs) == 1 else outs
    out = d / obs["out"] if isinstance(obs["out"], str) else d
    obs["keep"] = len([p for p in crls if re.fullmatch(r"t-\d+\.crl", p.name)])
    obs["delta_crl"] = "on" if (out / "t-delta.crl").exists() else "off"
    proms = list(d.rglob("*.prom"))
    obs["metrics_file"] = (proms[0].name if len(proms) == 1 and proms[0].parent == out.parent
                           else [str(p) for p in proms])
    txt = run("openssl", "crl", "-inform", "DER", "-in", out / "t.crl", "-noout", "-text").stdout
    last = utc(re.search(r"Last Update: (.+)", txt).group(1))
    nxt = utc(re.search(r"Next Update: (.+)", txt).group(1))
    obs["crl_validity"] = int((nxt - last).total_seconds())
    obs["digest"] = re.search(r"Signature Algorithm: (\w+)", txt).group(1) \
        .replace("WithRSAEncryption", "").lower()
    obs["crl_shards"] = txt.count("Issuing Distribution Point") + len(
        [p for p in crls if not re.fullmatch(r"t(-\d+|-delta)?\.crl", p.name)])
    r = vs.crlgen("--plan")
    obs["crl_max_bytes"] = int(re.search(r"crl_max_bytes=(\d+)", r.stdout + r.stderr).group(1))
    line = follow_log([binary("vigil-crlgen"), "-c", conf, "--watch"], r"event=watching")
    m = re.search(r"event=watching .*interval=(\d+)", line)
    obs["interval"] = int(m.group(1)) if m else line
    conf_url = d / "url.conf"
    conf_url.write_text(conf.read_text() + "crl_url = http://crl.example/crl/t.crl\n"
                        f"\n[crlgen]\nout = {d / 'crl-url'}\n")
    r = Runner(conf_url).crlgen("--once", check=False)
    obs["profile with crl_url"] = ("tls-br" if r.returncode != 0 and "profile = tls-br" in
                                   r.stderr else f"exit {r.returncode}: {r.stderr}")

    # ---- vigil-responder: listen, workers, max_connections, the limits and
    # timeouts, max_age, tag_header, ocsp_validity, digest, ocsp_key, base_path,
    # not_issued, state_dir.
    def few_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
    with Responder(conf, args=["--listen", "127.0.0.1:0"], preexec=few_fds) as resp:
        port = resp.port
        box = {}
        slow = [threading.Thread(target=time_to_408, args=(port, data, box, key))
                for key, data in (
                    ("header_timeout", b"GET / HTTP/1.1\r\nHost: x\r\n"),
                    ("body_timeout", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                                     b"\r\nAB"))]
        for t in slow:
            t.start()
        line = resp.wait_log(r"event=listening")
        n = int(re.search(r"workers=(\d+)", line).group(1))
        obs["workers"] = 0 if n == os.sysconf("SC_NPROCESSORS_ONLN") else n
        line = resp.wait_log(r"event=fd_limit_low")
        obs["max_connections"] = int(re.search(r"max_connections=(\d+)", line).group(1))

        cacert = load_cert(ca.cert)
        status, headers, body = resp.get(make_request(load_cert(leaf), cacert))
        assert status == 200, f"GET /BASE64 answered {status}: base_path is not /"
        obs["base_path"] = "/"
        m = re.search(r"s-maxage=(\d+)", headers.get("cache-control", ""))
        obs["max_age"] = int(m.group(1)) if m else headers
        tags = [k for k, v in headers.items() if "vigil~t" in v]
        obs["tag_header"] = tags[0] if len(tags) == 1 else tags
        a = check_response(body, cacert)   # signed by the CA key: crl_key
        obs["ocsp_key"] = "crl_key" if not a.certificates else a.certificates
        obs["ocsp_validity"] = int((a.next_update - a.this_update).total_seconds())
        obs["digest ocsp"] = a.signature_hash_algorithm.name
        status, _, body = resp.get(make_request(fake_cert(0x7777, cacert), cacert))
        obs["not_issued"] = ocsp.load_der_ocsp_response(body).certificate_status.name.lower()

        k = ref["max_certids"]
        ok = resp.post(ocsp_request(ca, range(1, k + 1), d / "k.req"))[2]
        over = resp.post(ocsp_request(ca, range(1, k + 2), d / "k1.req"))[2]
        obs["max_certids"] = (k if ocsp.load_der_ocsp_response(ok).response_status.name ==
                              "SUCCESSFUL" and ocsp.load_der_ocsp_response(over)
                              .response_status.name == "MALFORMED_REQUEST" else "not " + str(k))
        k = ref["max_request_bytes"]
        post = [raw(port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % n +
                    b"A" * n) for n in (k, k + 1)]
        obs["max_request_bytes"] = k if post[0] != 413 and post[1] == 413 else f"{k}: {post}"
        k = ref["max_header_bytes"]
        url = [raw(port, b"GET /" + b"A" * (n - 1) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
               for n in (k, k + 1)]
        obs["max_header_bytes"] = k if url[0] != 414 and url[1] == 414 else f"{k}: {url}"
        for t in slow:
            t.join(30)
        for key in ("header_timeout", "body_timeout"):
            # Timers fire late on a busy machine, never early: the exact value
            # is SOURCE's, this is that the responder uses it.
            st, sec = box.get(key, (None, None))
            obs[key] = (ref[key] if st == 408 and ref[key] - 0.5 <= sec < ref[key] + 2.5
                        else box.get(key))

    # The listen default: held by this test (or by someone else), so the
    # responder does not start, and names it.
    s = socket.socket()
    try:
        try:
            s.bind(("127.0.0.1", 8080))
            s.listen(1)
        except OSError:
            pass
        line = follow_log([binary("vigil-responder"), "-c", conf],
                          r"cannot listen|event=listening", timeout=10)
    finally:
        s.close()
    m = re.search(r"(127\.0\.0\.1:8080)", line)
    obs["listen"] = m.group(1) if m else line

    conf_edge = d / "edge.conf"
    conf_edge.write_text(conf.read_text() + "\n[edge]\npurge_command = /bin/true\n")
    before = set(d.iterdir())
    with Responder(conf_edge, args=["--listen", "127.0.0.1:0"]):
        for _ in range(250):                # the purgers start after event=listening
            dirs = [p.name for p in set(d.iterdir()) - before if p.is_dir()]
            if dirs:
                break
            time.sleep(0.02)
    obs["state_dir"] = dirs[0] if len(dirs) == 1 else dirs

    # ---- vigil-store prune: the retentions, with its clock (VIGIL_NOW) just
    # before and just after each default.
    def prune(at):
        r = run(binary("vigil-store"), "-c", conf, "prune",
                env=dict(os.environ, VIGIL_NOW=str(int(at.replace(tzinfo=timezone.utc)
                                                        .timestamp()))))
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", r.stdout)}
    hour = timedelta(hours=1)
    # The commits are now, the leaf's notAfter |end|.
    for key, count, t0 in (("log_retention", "log_removed", now),
                           ("expired_retention", "certs_removed", end)):
        k = timedelta(seconds=ref[key])
        a, b = prune(t0 + k - hour), prune(t0 + k + hour)
        obs[key] = (ref[key] if a[count] == 0 and b[count] > 0
                    else f"{count} at {k} - 1h: {a[count]}, at {k} + 1h: {b[count]}")
    return obs


def test_programs_use_the_reference_defaults(observed):
    """With the key absent, each program does what vigil.conf(5) says."""
    ref = man_defaults()
    assert observed.pop("digest ocsp") == ref["digest"], "OCSP answers' digest"
    src = CONF_C.read_text()
    bad = []
    for label, want in ref.items():
        if label in NOT_OBSERVED:
            continue
        if label in SOURCE:
            rx, mul = SOURCE[label]
            m = re.search(rx, src)
            got = int(m.group(1)) * mul if m else f"/{rx}/ not in common/conf.c"
            if got != want:
                bad.append(f"{label}: vigil.conf(5) says {show(label, want)}, common/conf.c: "
                           f"{show(label, got)}")
        if label in observed or label not in SOURCE:
            got = observed.get(label, "not observed")
            if got != want:
                bad.append(f"{label}: vigil.conf(5) says {show(label, want)}, observed: "
                           f"{show(label, got)}")
    assert set(ref) == set(observed) | set(SOURCE) | NOT_OBSERVED, \
        set(ref) ^ (set(observed) | set(SOURCE) | NOT_OBSERVED)
    assert not bad, "\n".join(bad)


# Where a default's value is written without the key, and is not that default.
NOT_A_DEFAULT_VALUE = {
    ("doc/ocsp.md", "30 days of its notAfter"),          # the signer expiry warning
    ("deploy/varnish/vigil-edge.vcl", "keep = 1h"),      # Varnish's own keep
}


def test_every_default_value_is_known():
    """A duration equal to a default of 30 s or more (60 s, one hour, 30 days,
    4 days...) written in a guide or an edge configuration, with or without
    its key, is a DOCS row or is named in NOT_A_DEFAULT_VALUE: "the log does
    not hold every expired serial for 30 days" states log_retention's default
    too. (The man pages and --help list every key with its default, which
    the scan above covers.)"""
    ref = man_defaults()
    spell = set()
    for label, v in ref.items():
        if MAN[label][0] is not seconds or v < 30:
            continue
        spell.add(rf"{v} ?(?:s|seconds?)")
        if v % 3600 == 0:
            spell.add(rf"{v // 3600} ?(?:h|hours?)")
        if v == 3600:
            spell.add(r"one hour")
        if v % 86400 == 0:
            spell.add(rf"{v // 86400} ?(?:d|days?)")
    value = re.compile(r"(?<![\w.])(?:" + "|".join(sorted(spell)) + r")(?![\w])")
    docs = [str(p.relative_to(SRC)) for p in DOCS_MD + COMMENTED]
    unknown, found = [], 0
    for doc in docs:
        text = doc_text(doc)
        masked = re.sub(r"```.*?```", lambda m: " " * len(m.group(0)), text, flags=re.S)
        covered = [m.span() for d, _, rx in DOCS if d == doc for m in phrase(rx).finditer(text)]
        for m in value.finditer(masked):
            found += 1
            if any(a <= m.start() and m.end() <= b for a, b in covered):
                continue
            around = " ".join(masked[max(0, m.start() - 40):m.end() + 40].split())
            if any(doc == d and " ".join(x.split()) in around for d, x in NOT_A_DEFAULT_VALUE):
                continue
            unknown.append(f"{doc}:{lineno(text, m.start())}: {m.group(0)!r} in {around!r}")
    assert found >= 10, f"only {found} values found: the scan is broken"
    assert not unknown, ("a default's value that no DOCS row checks (add a row, or name it in "
                         "NOT_A_DEFAULT_VALUE):\n" + "\n".join(unknown))
