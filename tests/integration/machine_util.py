# SPDX-License-Identifier: Apache-2.0
"""A second machine for the tests that need systemd as PID 1 (issue 17).

This machine's own PID 1 is not systemd, so units cannot be started here.
Machine boots the real systemd of this Debian 12 as PID 1 of new PID, mount,
network, UTS, IPC and cgroup namespaces, on an overlay of this machine's root:
every package installed here is there, every write lands in the test's
temporary directory, the network is a loopback of its own (the shipped ports,
80 and 8080, are free there), and the whole machine ends with its PID 1.

Needs root, unshare(1), nsenter(1), pivot_root(8), overlayfs and cgroup2."""
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

BOOT = r"""#!/bin/bash
# boot TOP: mount the overlay and the API file systems, then exec systemd.
set -e
top=$1 lower=$2 m=$1/root
mount -t overlay overlay -o lowerdir=$lower,upperdir=$top/upper,workdir=$top/work $m
mount -t proc proc $m/proc
mount -t sysfs sysfs $m/sys
mount -t cgroup2 cgroup2 $m/sys/fs/cgroup
mount -t tmpfs -o mode=755 tmpfs $m/run
mount -t tmpfs -o mode=1777 tmpfs $m/tmp
mount --rbind /dev $m/dev
ip link set lo up
# pivot_root, not chroot: a chrooted process may not make user namespaces,
# which units with PrivateUsers= (Debian's prometheus) need.
cd $m
pivot_root . .
umount -l .
# Shared, as on a booted machine: systemd sets up a unit's credentials in a
# namespace of its own and moves the mount back through this propagation.
mount --make-rshared /
exec /lib/systemd/systemd --system --log-target=journal --unit=multi-user.target
"""

TOOLS = ["unshare", "nsenter", "ip", "pivot_root"]


def available():
    """Why a Machine cannot boot here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing or not Path("/lib/systemd/systemd").exists():
        return "needs " + ", ".join(missing or ["systemd"])
    return None


class Machine:
    """|lower| is the root file system the machine starts from (this
    machine's by default; a debootstrap'd tree for a fresh install). With
    |network| it shares this machine's network instead of a loopback of its
    own (for apt on a fresh tree; never in the test suite)."""

    def __init__(self, top, mask=(), lower="/", network=False):
        self.top = Path(top)
        self.lower = str(lower)
        self.network = network
        self.upper = self.top / "upper"
        for d in ("upper", "work", "root"):
            (self.top / d).mkdir(parents=True, exist_ok=True)
        # Units of this machine that the test has no use for (the servers
        # other tests start by hand) stay off, as on a machine without them.
        units = self.upper / "etc/systemd/system"
        units.mkdir(parents=True, exist_ok=True)
        for u in mask:
            (units / u).symlink_to("/dev/null")
        self.proc = None
        self.pid = None

    def path(self, p):
        """Where a file of the machine is written before it boots."""
        return self.upper / str(p).lstrip("/")

    def boot(self, timeout=90):
        script = self.top / "boot"
        script.write_text(BOOT)
        script.chmod(0o755)
        self.log = open(self.top / "boot.log", "w")
        ns = ["--pid", "--fork", "--mount", "--uts", "--ipc", "--cgroup"]
        if not self.network:
            ns.append("--net")
        self.proc = subprocess.Popen(
            ["unshare", *ns, "--propagation", "private", str(script), str(self.top), self.lower],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid is None:
                self.pid = self._pid1()
            if self.pid is not None:
                r = self.run("systemctl is-system-running", check=False, timeout=10)
                if r.stdout.strip() in ("running", "degraded"):
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        self.stop()
        raise AssertionError("the machine did not boot: " + (self.top / "boot.log").read_text())

    def _pid1(self):
        try:
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return None
        for k in kids.split():
            try:
                if Path(f"/proc/{k}/comm").read_text().strip() == "systemd":
                    return int(k)
            except OSError:
                pass
        return None

    def run(self, script, check=True, timeout=120, env=None):
        """bash -c SCRIPT inside the machine, as root, from /root."""
        cmd = ["nsenter", "-t", str(self.pid), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w",
               "env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME=/root", "LANG=C.UTF-8", "TERM=dumb", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"]
        cmd += [f"{k}={v}" for k, v in (env or {}).items()]
        cmd += ["bash", "-c", "cd /root && " + script]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"in the machine: {script}\nexit {r.returncode}\n"
                                 f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r

    def journal(self, unit):
        return self.run(f"journalctl -u {unit} --no-pager -o cat", check=False).stdout

    def stop(self):
        """Kill PID 1: every process of the machine and its mounts go with it."""
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
            self.log.close()
        self.pid = None
