"""What the DERP integration tests share (test_derpconn.py, test_derpclient.py): the
relay tests/tools/derper.py, a command-line test tool driven over stdin/stdout, and the
cleanup of both after every test.

Import python3-nacl (pytest.importorskip) before this module. A test module that starts
processes through it imports the autouse fixture too:

    from derptest import kill_processes  # noqa: F401  (autouse fixture)
"""
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time

import nacl.public
import pytest

from childlog import ChildLog

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DERPER = os.path.join(ROOT, "tests", "tools", "derper.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

# Every process started here; kill_processes() kills what is left after each test.
PROCS = []


def tool_binary(env, name):
    """The test tool @name: $@env, else build/tests/@name; it must be built."""
    path = os.path.abspath(os.environ.get(env, os.path.join(ROOT, "build", "tests", name)))
    assert os.access(path, os.X_OK), f"{name} is not built ({path}): make $(BUILD)/tests/{name}"
    return path


def _reap(p, timeout=5):
    if p.poll() is None:
        p.kill()
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        pass


@pytest.fixture(autouse=True)
def kill_processes():
    yield
    while PROCS:
        _reap(PROCS.pop())


def make_cert(tmp_path, name="derp.test"):
    """A self-signed P-256 certificate for @name: (cert path, key path)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=" + name, "-addext",
                    "subjectAltName=DNS:" + name], check=True, capture_output=True, timeout=30)
    return cert, key


class Derper:
    """tests/tools/derper.py on 127.0.0.1:@port (0: any) with its options @args; once it
    listens: host, port, pub (its key, hex) and url (http://HOST:PORT/derp)."""

    def __init__(self, *args, port=0, key_file=None):
        argv = [PYTHON, DERPER, "--listen", "127.0.0.1:%d" % port]
        if key_file:
            argv += ["--key-file", str(key_file)]
        self.proc = subprocess.Popen(argv + list(args), stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        PROCS.append(self.proc)
        r, _, _ = select.select([self.proc.stdout], [], [], 10)
        assert r, "derper did not start"
        line = self.proc.stdout.readline().decode().strip()
        assert line.startswith("listening "), line
        addr, pub = line.split()[1:3]
        self.host, port = addr.rsplit(":", 1)
        self.port = int(port)
        self.pub = pub.split("=", 1)[1]
        self.url = "http://%s:%d/derp" % (self.host, self.port)

    def kill(self):
        _reap(self.proc)


class ConnectProxy:
    """An HTTP proxy on 127.0.0.1 that only does CONNECT (or, with @refuse, answers every
    request with 403). It resolves names through @hosts first, as a real proxy resolves
    what the client does not. `requests` lists the request lines it got."""

    def __init__(self, refuse=False, hosts=None):
        self.refuse = refuse
        self.hosts = hosts or {}
        self.requests = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        head = b""
        conn.settimeout(10)
        with conn:
            while b"\r\n\r\n" not in head and len(head) < 8192:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode(errors="replace")
            self.requests.append(line)
            method, target = (line.split() + ["", ""])[:2]
            if self.refuse or method != "CONNECT":
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            host, port = target.rsplit(":", 1)
            host = self.hosts.get(host, host.strip("[]"))
            with socket.create_connection((host, int(port)), timeout=10) as up:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                rest = head.split(b"\r\n\r\n", 1)[1]
                if rest:
                    up.sendall(rest)
                conn.settimeout(None)
                up.settimeout(None)
                t = threading.Thread(target=self._pipe, args=(up, conn), daemon=True)
                t.start()
                self._pipe(conn, up)
                t.join(10)

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.listener.close()


class Tool:
    """A test tool: @argv + --key-file tmp_path/@key_name + @extra, with a fresh key pair
    (priv, pub as hex) in that file as privkey:<hex>. Commands go to its stdin, its
    output lines come from stdout; stderr is kept in tmp_path/@key_name.stderr."""

    def __init__(self, argv, tmp_path, key_name, extra=(), env=None):
        self.priv = nacl.public.PrivateKey.generate()
        self.pub = self.priv.public_key.encode().hex()
        kf = tmp_path / key_name
        kf.write_text("privkey:%s\n" % self.priv.encode().hex())
        self.errf = ChildLog(tmp_path / (key_name + ".stderr"))
        self.proc = subprocess.Popen(list(argv) + ["--key-file", str(kf)] + list(extra),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.errf, env=env)
        PROCS.append(self.proc)
        self.buf = b""

    def line(self, timeout=5.0):
        """Next stdout line (at EOF what is left of one, else None); fails on timeout."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, "timed out waiting for output; stderr:\n" + self.stderr()
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if not r:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
            if not chunk:
                if self.buf:
                    out, self.buf = self.buf, b""
                    return out.decode()
                return None
            self.buf += chunk
        out, _, self.buf = self.buf.partition(b"\n")
        return out.decode()

    def expect(self, prefix, timeout=5.0):
        """The next line that starts with @prefix (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            ln = self.line(max(0.01, deadline - time.monotonic()))
            assert ln is not None, "tool exited before %r; stderr:\n%s" % (prefix, self.stderr())
            if ln.startswith(prefix):
                return ln

    def cmd(self, text):
        self.proc.stdin.write((text + "\n").encode())
        self.proc.stdin.flush()

    def wait(self, timeout=10):
        return self.proc.wait(timeout)

    def stderr(self):
        """All the tool wrote to stderr so far."""
        return self.errf.read()

    def wait_log(self, pattern, timeout=5.0):
        """The first match of @pattern in stderr, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.stderr())
            if m:
                return m
            assert time.monotonic() < deadline, "no %r in stderr:\n%s" % (pattern, self.stderr())
            time.sleep(0.05)
