"""Fixtures that run the real codervpnd and codervpnctl binaries."""
import os
import signal
import subprocess
import tempfile
import time

import pytest

import vpnpeer
from childlog import ChildLog

CODERVPND = os.path.abspath(os.environ.get("CODERVPND", "build/codervpnd"))
CODERVPNCTL = os.path.abspath(os.environ.get("CODERVPNCTL", "build/codervpnctl"))


class RunDaemon:
    """`codervpnd run` on two pipes, as Coder's manager starts `coder vpn-daemon run`."""

    def __init__(self, args=("--rpc-read-handle", "{r}", "--rpc-write-handle", "{w}"), env=None, versions="1.3"):
        m2t_r, m2t_w = os.pipe()
        t2m_r, t2m_w = os.pipe()
        argv = [CODERVPND, "--log-level=debug", "--log-target=stderr", "run"]
        argv += [a.format(r=m2t_r, w=t2m_w) for a in args]
        full_env = dict(os.environ)
        for k, v in (env or {}).items():
            full_env[k] = v.format(r=m2t_r, w=t2m_w)
        self.stderr = ChildLog()
        self.proc = subprocess.Popen(argv, pass_fds=(m2t_r, t2m_w), env=full_env, stderr=self.stderr)
        os.close(m2t_r)
        os.close(t2m_w)
        self.peer = vpnpeer.Peer(t2m_r, m2t_w, "manager", versions)
        self.fds = (t2m_r, m2t_w)

    def log(self):
        return self.stderr.read()

    def wait(self, timeout=10):
        return self.proc.wait(timeout)

    def close(self):
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def run_daemon():
    made = []

    def make(**kw):
        d = RunDaemon(**kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


class ServeDaemon:
    """`codervpnd serve` on a socket in a fresh directory."""

    def __init__(self, directory, group=""):
        self.dir = directory
        self.socket = os.path.join(directory, "codervpnd.sock")
        self.stderr = ChildLog()
        self.proc = subprocess.Popen(
            [CODERVPND, "--log-level=debug", "--log-target=stderr", "serve", "--socket", self.socket,
             "--group", group], stderr=self.stderr)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.socket):
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, "codervpnd serve did not create its socket"
            time.sleep(0.02)

    def log(self):
        return self.stderr.read()

    def connect(self, role="manager", versions="1.3"):
        p = vpnpeer.Peer.connect(self.socket, role, versions)
        return p

    def ctl(self, *args, input=None, user=None, timeout=20):
        argv = [CODERVPNCTL, "--socket", self.socket, *args]
        if user is not None:
            argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
        return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(10)


@pytest.fixture
def serve_daemon():
    made = []

    def make(group=""):
        # World-traversable, so a test can connect as an unprivileged user.
        d = tempfile.mkdtemp(prefix="codervpnd-test-")
        os.chmod(d, 0o755)
        s = ServeDaemon(d, group)
        made.append(s)
        return s

    yield make
    for s in made:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(5)
        subprocess.run(["rm", "-rf", s.dir], check=False)
