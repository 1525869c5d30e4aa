# SPDX-License-Identifier: Apache-2.0
"""What the edge tests' servers (nginx_util.Nginx, varnish_util.Varnish)
share: a free port on 127.0.0.1, a process started in the foreground and
waited for until it answers, stopped with SIGTERM (then SIGKILL, itself and
its children, past a bounded wait), and one HTTP request to it."""
import http.client
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from responder_util import _die_with_parent


def free_port():
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def stop_all(servers, resp):
    """Stop each of |servers| (callables) whatever the others do, then the
    responder |resp| last: its exit is checked (a sanitizer's report in an
    ASan build), so it must not be skipped by another's failure."""
    try:
        for stop in servers:
            try:
                stop()
            except Exception:  # noqa: BLE001 - stop the others whatever happens
                pass
    finally:
        if resp:
            resp.stop()


class Server:
    """A server on 127.0.0.1:|self.port|. A subclass names it (|name|, in
    messages), says when it answers (ready()) and what it logged (logs()).
    A context manager: always stopped."""

    name = "server"
    poll = 0.05  # seconds between two looks while it starts
    stop_timeout = 10
    proc = None

    def ready(self):
        raise NotImplementedError

    def logs(self):
        return ""

    def spawn(self, cmd, stdout, stderr, timeout, failure):
        """Start |cmd| and wait up to |timeout| s until ready(); past it, stop
        it and fail with "|name| |failure|" and the logs."""
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.logs()}")
            if self.ready():
                return self
            time.sleep(self.poll)
        self.stop()
        raise AssertionError(f"{self.name} {failure}:\n{self.logs()}")

    def _children(self):
        try:
            t = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            return [int(x) for x in t.split()]
        except OSError:
            return []

    def stop(self, timeout=None):
        """SIGTERM to the main process, which stops its children; SIGKILL to
        all of them past |timeout| (stop_timeout)."""
        if timeout is None:
            timeout = self.stop_timeout
        if self.proc is None or self.proc.poll() is not None:
            return
        children = self._children()
        self.proc.send_signal(signal.SIGTERM)
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
            raise AssertionError(f"{self.name} did not stop within {timeout}s of SIGTERM")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

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
