# SPDX-License-Identifier: Apache-2.0
"""Helpers for the CDN edge test: run Debian's real nginx on 127.0.0.1 with the
shipped deploy/nginx/vigil-edge.conf (only its addresses and cache directory
substituted), talk HTTP to it, and read nginx's own record of a cache entry."""
import hashlib
import http.client
import os
import re
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

from responder_util import _die_with_parent

NGINX = Path("/usr/sbin/nginx")
EDGE_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "vigil-edge.conf"

# The lines of vigil-edge.conf an operator sets ("<- set" in the file). The
# test changes these and nothing else; each must match exactly once, so a
# change to the shipped file cannot silently make the test run something else.
_SUBST = [
    (r"^(\s*server\s+)127\.0\.0\.1:8080;", "upstream"),
    (r"^(\s*proxy_cache_path\s+)/var/lib/nginx/vigil-cache(?=\s)", "cache"),
    (r"^(\s*listen\s+)80;", "listen"),
    (r"^\s*listen\s+\[::\]:80;", "listen6"),
    (r"^(\s*listen\s+)127\.0\.0\.1:8081;", "purge"),
]


def render_edge_conf(upstream_port, cache_dir, listen_port, purge_port, src=EDGE_CONF):
    """The shipped config with the origin at 127.0.0.1:|upstream_port|, the cache
    in |cache_dir|, the edge listening on 127.0.0.1:|listen_port| only and its
    purge server on 127.0.0.1:|purge_port|."""
    text = Path(src).read_text()
    repl = {
        "upstream": lambda m: f"{m.group(1)}127.0.0.1:{upstream_port};",
        "cache": lambda m: f"{m.group(1)}{cache_dir}",
        "listen": lambda m: f"{m.group(1)}127.0.0.1:{listen_port};",
        "listen6": lambda m: "    # listen [::]:80; (the test listens on 127.0.0.1 only)",
        "purge": lambda m: f"{m.group(1)}127.0.0.1:{purge_port};",
    }
    for rx, name in _SUBST:
        text, n = re.subn(rx, repl[name], text, flags=re.M)
        assert n == 1, f"{src}: expected one '{name}' line to substitute, found {n}"
    return text


def free_port():
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


MAIN_CONF = """\
# Written by tests/integration/nginx_util.py: a minimal main context around
# the shipped http{{}}-context file, like Debian's /etc/nginx/nginx.conf.
{user}worker_processes 1;
# As Debian's modules-enabled/50-mod-http-cache-purge.conf does.
load_module /usr/lib/nginx/modules/ngx_http_cache_purge_module.so;
events {{ worker_connections 256; }}
http {{
    log_format edge '$request_method $request_uri $status cache=$upstream_cache_status '
                    'upstream=$upstream_status';
    access_log {prefix}/logs/access.log edge;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/conf/vigil-edge.conf;
}}
"""


class Nginx:
    """The real nginx (master and one worker) in its own prefix directory, in
    the foreground, with the shipped edge config in front of 127.0.0.1:|upstream_port|.

    Use as a context manager: the master and all its children are always
    stopped (SIGTERM, then SIGKILL after a bounded wait)."""

    def __init__(self, root, upstream_port):
        self.prefix = Path(root)
        self.upstream_port = upstream_port
        self.cache_dir = self.prefix / "cache"
        self.port = free_port()
        self.purge_port = free_port()
        self.proc = None
        for d in ("conf", "logs", "tmp"):
            (self.prefix / d).mkdir(parents=True, exist_ok=True)
        self.edge_conf = self.prefix / "conf" / "vigil-edge.conf"
        self.edge_conf.write_text(render_edge_conf(upstream_port, self.cache_dir, self.port,
                                                  self.purge_port))
        # As root, workers would run as "nobody" and could not enter pytest's
        # 0700 temporary directories: keep them as the invoking user.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        self.conf = self.prefix / "conf" / "nginx.conf"
        self.conf.write_text(MAIN_CONF.format(prefix=self.prefix, user=user))
        self.error_log = self.prefix / "logs" / "error.log"
        self.access_log = self.prefix / "logs" / "access.log"
        self.stderr = self.prefix / "logs" / "stderr.log"

    def cmd(self, *extra):
        g = f"daemon off; pid {self.prefix}/nginx.pid; error_log {self.error_log} info;"
        return [str(NGINX), "-p", f"{self.prefix}/", "-c", str(self.conf), "-g", g] + list(extra)

    def check_config(self):
        r = subprocess.run(self.cmd("-t", "-q"), capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, f"nginx -t failed:\n{r.stdout}{r.stderr}"

    def start(self, timeout=10):
        self.check_config()
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(self.cmd(), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited {self.proc.returncode}:\n{self.logs()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise AssertionError(f"nginx did not listen on 127.0.0.1:{self.port}:\n{self.logs()}")

    def logs(self):
        out = []
        for p in (self.stderr, self.error_log):
            if p.exists():
                out.append(f"--- {p.name}\n" + p.read_text(errors="replace")[-4000:])
        return "\n".join(out)

    def _children(self):
        try:
            t = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            return [int(x) for x in t.split()]
        except OSError:
            return []

    def stop(self, timeout=10):
        if self.proc is None or self.proc.poll() is not None:
            return
        children = self._children()
        self.proc.send_signal(signal.SIGTERM)  # fast shutdown: workers exit, then the master
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            for pid in children:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"nginx did not stop within {timeout}s of SIGTERM")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- HTTP -------------------------------------------------------------------------

    def request(self, method, path, body=None, headers=None, timeout=15):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            # A repeated header is one list (RFC 9110 5.3): a Cache-Control sent
            # twice must show both values.
            h = {}
            for k, v in r.getheaders():
                h[k.lower()] = f"{h[k.lower()]}, {v}" if k.lower() in h else v
            return r.status, h, r.read()
        finally:
            c.close()

    # ---- nginx's cache entries ------------------------------------------------------------

    def cache_key(self, request_uri):
        # proxy_cache_key $scheme$proxy_host$request_uri, $proxy_host being the
        # upstream block's name.
        return f"httpvigil_responder{request_uri}"

    def cache_file(self, request_uri):
        """The cache file of an entry: levels=1:2 under the MD5 of its key."""
        h = hashlib.md5(self.cache_key(request_uri).encode()).hexdigest()
        return self.cache_dir / h[-1] / h[-3:-1] / h

    def cache_entry(self, request_uri):
        """nginx's header of a cache entry (ngx_http_file_cache_header_t,
        version 5 in nginx 1.22 on LP64): the time the entry stops being fresh
        (valid_sec) and its stale-while-revalidate/stale-if-error windows."""
        p = self.cache_file(request_uri)
        if not p.exists():
            return None
        data = p.read_bytes()
        version, valid, updating, error, last_mod, date = struct.unpack_from("<Qqqqqq", data, 0)
        assert version == 5, f"unknown nginx cache file version {version} in {p}"
        key = self.cache_key(request_uri).encode()
        assert b"\nKEY: " + key + b"\n" in data[:4096], f"{p} is not the entry of {request_uri}"
        return {"valid_sec": valid, "updating_sec": updating, "error_sec": error,
                "last_modified": last_mod, "date": date, "path": p}

    def age_entry(self, request_uri, valid_sec):
        """Set the time an entry stops being fresh, in place, as if the clock had
        moved on: nginx reads this header from the file at every request (there
        is no open_file_cache), so its own freshness logic then runs as it would
        at that time. Returns the previous value."""
        p = self.cache_file(request_uri)
        old = self.cache_entry(request_uri)["valid_sec"]
        fd = os.open(p, os.O_WRONLY)
        try:
            os.pwrite(fd, struct.pack("<q", valid_sec), 8)
        finally:
            os.close(fd)
        return old
