# SPDX-License-Identifier: Apache-2.0
"""Helpers for the CDN edge test: run Debian's real nginx on 127.0.0.1 with the
shipped deploy/nginx/vigil-edge.conf (only its addresses and cache directory
substituted), talk HTTP to it, and read nginx's own record of a cache entry."""
import hashlib
import os
import re
import socket
import struct
import subprocess
from pathlib import Path

from server_util import Server, free_port

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


class Nginx(Server):
    """The real nginx (master and one worker) in its own prefix directory, in
    the foreground, with the shipped edge config in front of 127.0.0.1:|upstream_port|.

    Use as a context manager: the master and all its children are always
    stopped (SIGTERM, then SIGKILL after a bounded wait)."""

    name = "nginx"
    poll = 0.02

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
            return self.spawn(self.cmd(), subprocess.DEVNULL, err, timeout,
                              f"did not listen on 127.0.0.1:{self.port}")

    def ready(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def logs(self):
        out = []
        for p in (self.stderr, self.error_log):
            if p.exists():
                out.append(f"--- {p.name}\n" + p.read_text(errors="replace")[-4000:])
        return "\n".join(out)

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
