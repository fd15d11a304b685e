"""Tests for agent/derpconn through tests/tools/derpconn-tool against tests/tools/derper.py.

Run with /usr/bin/python3 -m pytest; DERPCONN_TOOL names the binary (default
build-derpconn/tests/derpconn-tool).
"""
import os
import select
import json
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

pytest.importorskip("nacl.public", reason="python3-nacl not installed")

import nacl.public  # noqa: E402
import derpclient as dc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DERPER = os.path.join(ROOT, "tests", "tools", "derper.py")
TOOL = os.path.abspath(os.environ.get("DERPCONN_TOOL",
                                      os.path.join(ROOT, "build", "tests", "derpconn-tool")))
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

assert os.access(TOOL, os.X_OK), f"derpconn-tool is not built ({TOOL}): make $(BUILD)/tests/derpconn-tool"

PROCS = []


def _reap(p, timeout=5):
    if p.poll() is None:
        p.kill()
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        pass


@pytest.fixture(autouse=True)
def _kill_everything():
    yield
    while PROCS:
        _reap(PROCS.pop())


class Derper:
    def __init__(self, *args):
        self.proc = subprocess.Popen([PYTHON, DERPER, "--listen", "127.0.0.1:0"] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
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


class Tool:
    def __init__(self, tmp_path, url, name="k", extra=()):
        self.priv = nacl.public.PrivateKey.generate()
        self.pub = self.priv.public_key.encode().hex()
        kf = tmp_path / name
        kf.write_text("privkey:%s\n" % self.priv.encode().hex())
        self.proc = subprocess.Popen([TOOL, url, "--key-file", str(kf)] + list(extra),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        PROCS.append(self.proc)
        self.buf = b""

    def line(self, timeout=5.0):
        """Next stdout line, or None at EOF; fails on timeout."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, "timed out waiting for output from derpconn-tool"
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if not r:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                if self.buf:
                    out, self.buf = self.buf, b""
                    return out.decode()
                return None
            self.buf += chunk
        out, _, self.buf = self.buf.partition(b"\n")
        return out.decode()

    def expect(self, prefix, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            ln = self.line(max(0.01, deadline - time.monotonic()))
            assert ln is not None, "tool exited before %r; stderr: %s" % (prefix, self.stderr())
            if ln.startswith(prefix):
                return ln

    def cmd(self, text):
        self.proc.stdin.write((text + "\n").encode())
        self.proc.stdin.flush()

    def wait(self, timeout=10):
        return self.proc.wait(timeout)

    def stderr(self):
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read().decode(errors="replace")

    def ready(self):
        ln = self.expect("ready ")
        assert ln == "ready pubkey=%s" % self.pub
        return ln


def test_two_tools_exchange_packets(tmp_path):
    d = Derper()
    a = Tool(tmp_path, d.url, "a")
    b = Tool(tmp_path, "http://%s:%d" % (d.host, d.port), "b")   # default path /derp
    a.ready()
    b.ready()
    a.cmd("send %s 68656c6c6f" % b.pub)
    assert b.expect("recv ") == "recv %s 68656c6c6f" % a.pub
    b.cmd("send %s 776f726c64" % a.pub)
    assert a.expect("recv ") == "recv %s 776f726c64" % b.pub
    big = os.urandom(65536).hex()
    a.cmd("send %s %s" % (b.pub, big))
    assert b.expect("recv ", 10) == "recv %s %s" % (a.pub, big)
    for i in range(20):
        b.cmd("send %s %02x" % (a.pub, i))
    for i in range(20):
        assert a.expect("recv ") == "recv %s %02x" % (b.pub, i)
    a.cmd("quit")
    assert a.wait() == 0
    # b may get PeerGone for a; it is still usable.
    b.cmd("ping")
    assert b.expect("pong ")
    b.cmd("quit")
    assert b.wait() == 0


def test_tool_and_python_client(tmp_path):
    d = Derper()
    t = Tool(tmp_path, d.url)
    t.ready()
    with dc.DerpClient(d.host, d.port) as py:
        py.connect()
        t.cmd("send %s 0102ff" % py.pub.hex())
        src, pkt = py.recv_packet()
        assert src.hex() == t.pub and pkt == b"\x01\x02\xff"
        py.send_packet(bytes.fromhex(t.pub), b"from-python")
        assert t.expect("recv ") == "recv %s %s" % (py.pub.hex(), b"from-python".hex())
        py.send_packet(bytes.fromhex(t.pub), b"")
        assert t.expect("recv ").split(" ") == ["recv", py.pub.hex(), ""]
    t.cmd("quit")
    assert t.wait() == 0


def test_ping_pong(tmp_path):
    d = Derper()
    t = Tool(tmp_path, d.url)
    t.ready()
    for _ in range(3):
        t.cmd("ping")
        rtt = int(t.expect("pong ").split()[1])
        assert 0 <= rtt < 5_000_000
    t.cmd("quit")
    assert t.wait() == 0


def test_keepalives(tmp_path):
    d = Derper("--keepalive", "0.1")
    t = Tool(tmp_path, d.url)
    t.ready()
    time.sleep(0.5)
    t.cmd("ping")
    assert t.expect("pong ")
    t.cmd("quit")
    assert t.wait() == 0


class FakeServer:
    """A scripted DERP server on one connection (for frames derper.py never sends)."""

    def __init__(self):
        self.priv = nacl.public.PrivateKey.generate()
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.lsock.settimeout(10)
        self.url = "http://127.0.0.1:%d/derp" % self.lsock.getsockname()[1]
        self.buf = b""

    def accept(self):
        self.sock, _ = self.lsock.accept()
        self.sock.settimeout(5)
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head.decode()

    def read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            assert chunk, "client closed"
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        ftype, flen = struct.unpack(">BI", self.read(5))
        return ftype, self.read(flen)

    def handshake(self, extra=b""):
        """101 + ServerKey in one write (bytes after the head belong to DERP), ClientInfo,
        ServerInfo (+ @extra in the same write)."""
        self.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\n"
                          b"Connection: Upgrade\r\n\r\n" +
                          dc.frame(0x01, dc.MAGIC + self.priv.public_key.encode()))
        ftype, payload = self.frame()
        assert ftype == 0x02
        ckey = payload[:32]
        box = nacl.public.Box(self.priv, nacl.public.PublicKey(ckey))
        info = box.decrypt(payload[56:], payload[32:56])
        assert json.loads(info) == {"version": 2, "CanAckPings": True}
        sealed = box.encrypt(b'{"version":2}', os.urandom(24))
        self.sock.sendall(dc.frame(0x03, bytes(sealed)) + extra)
        return ckey

    def close(self):
        for s in (getattr(self, "sock", None), self.lsock):
            if s is not None:
                s.close()


def test_scripted_server_frames(tmp_path):
    srv = FakeServer()
    try:
        t = Tool(tmp_path, srv.url)
        head = srv.accept()
        lines = head.split("\r\n")
        assert lines[0] == "GET /derp HTTP/1.1"
        assert "Upgrade: DERP" in lines and "Connection: Upgrade" in lines
        assert any(l.startswith("Host: 127.0.0.1:") for l in lines)
        # Unknown frame types and a KeepAlive are skipped; Health, Restarting reported.
        srv.handshake(dc.frame(0x7f, b"whatever") + dc.frame(0x06) +
                      dc.frame(0x14, b"BAD") + dc.frame(0x14) +
                      dc.frame(0x15, struct.pack(">II", 1, 2)) +
                      dc.frame(0x12, bytes(range(1, 9))))
        t.ready()
        assert t.expect("health ") == "health BAD"
        assert t.expect("health-clear") == "health-clear"
        assert t.expect("restarting ") == "restarting 1 2"
        # The server's Ping is answered with a Pong carrying the same 8 bytes.
        assert srv.frame() == (0x13, bytes(range(1, 9)))
        # A client Ping, answered by the scripted server.
        t.cmd("ping")
        ftype, data = srv.frame()
        assert ftype == 0x12 and len(data) == 8
        srv.sock.sendall(dc.frame(0x13, data))
        assert int(t.expect("pong ").split()[1]) >= 0
        # PeerGone from an older server: key only (reason disconnected).
        k = os.urandom(32)
        srv.sock.sendall(dc.frame(0x08, k))
        assert t.expect("gone ") == "gone %s 0" % k.hex()
        # A SendPacket from the tool arrives whole.
        t.cmd("send %s 616263" % k.hex())
        assert srv.frame() == (0x04, k + b"abc")
        # A ServerInfo box that does not open is not possible any more; a second
        # ServerKey after the handshake is a protocol error.
        srv.sock.sendall(dc.frame(0x01, dc.MAGIC + bytes(32)))
        assert t.wait(10) == 1
        assert "unexpected ServerKey frame after the handshake" in t.stderr()
    finally:
        srv.close()


def test_send_queue_bounded(tmp_path):
    """A server that stops reading: SendPacket queues up to the bound, then -ENOBUFS."""
    srv = FakeServer()
    try:
        t = Tool(tmp_path, srv.url)
        srv.accept()
        srv.handshake()
        t.ready()
        srv.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        dst = "cd" * 32
        data = "ee" * 65536
        for _ in range(200):
            t.cmd("send %s %s" % (dst, data))
        ln = t.line(20)
        assert ln == "error send: No buffer space available", (ln, t.stderr())
        assert t.proc.poll() is None
        t.cmd("quit")
        assert t.wait() == 0
    finally:
        srv.close()


def test_scripted_bad_server_info(tmp_path):
    srv = FakeServer()
    try:
        t = Tool(tmp_path, srv.url)
        srv.accept()
        srv.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\n\r\n" +
                         dc.frame(0x01, dc.MAGIC + srv.priv.public_key.encode()))
        assert srv.frame()[0] == 0x02
        srv.sock.sendall(dc.frame(0x03, os.urandom(60)))
        assert t.wait(10) == 1
        assert "bad ServerInfo frame" in t.stderr()
    finally:
        srv.close()


def test_scripted_http_head_too_long(tmp_path):
    srv = FakeServer()
    try:
        t = Tool(tmp_path, srv.url)
        srv.accept()
        srv.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Pad: " + b"a" * 9000)
        assert t.wait(10) == 1
        assert "HTTP response head over 8192 bytes" in t.stderr()
    finally:
        srv.close()


def test_peer_gone_unknown_destination(tmp_path):
    d = Derper()
    t = Tool(tmp_path, d.url)
    t.ready()
    unknown = nacl.public.PrivateKey.generate().public_key.encode().hex()
    t.cmd("send %s 00" % unknown)
    assert t.expect("gone ") == "gone %s 1" % unknown
    t.cmd("quit")
    assert t.wait() == 0


def test_send_errors_do_not_close(tmp_path):
    d = Derper()
    t = Tool(tmp_path, d.url)
    t.ready()
    t.cmd("send %s %s" % ("ab" * 32, "00" * 65537))
    assert t.expect("error ") == "error send: Message too long"
    t.cmd("send zz 00")
    assert t.expect("error ").startswith("error send: usage")
    t.cmd("ping")
    assert t.expect("pong ")
    t.cmd("quit")
    assert t.wait() == 0


@pytest.mark.parametrize("mode,message", [
    ("garbage", None),
    ("garbage-before-key", None),
    ("oversize", "oversize RecvPacket frame"),
    ("endless", "oversize DERP frame"),
    ("bad-magic", "bad magic"),
])
def test_hostile_server(tmp_path, mode, message):
    d = Derper("--hostile", mode)
    t = Tool(tmp_path, d.url)
    rc = t.wait(10)
    err = t.stderr()
    assert rc == 1, err
    assert "connection closed: " in err, err
    if message:
        assert message in err, err
    assert "AddressSanitizer" not in err and "runtime error" not in err, err
    assert d.pub not in err and t.pub not in err    # keys never in messages


def test_ws_only_server_refuses_upgrade(tmp_path):
    d = Derper("--ws-only")
    t = Tool(tmp_path, d.url)
    assert t.wait(10) == 1
    err = t.stderr()
    assert "DERP upgrade refused: HTTP/1.1 426" in err, err


def test_connect_refused(tmp_path):
    d = Derper()
    url = d.url
    _reap(d.proc)
    t = Tool(tmp_path, url)
    assert t.wait(10) == 1
    assert "cannot connect" in t.stderr()


def test_server_killed(tmp_path):
    d = Derper()
    t = Tool(tmp_path, d.url)
    t.ready()
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(5)
    assert t.wait(10) == 1
    err = t.stderr()
    assert "connection closed: connection closed by the DERP server" in err, err


def test_read_deadline(tmp_path):
    d = Derper("--keepalive", "30")
    t = Tool(tmp_path, d.url, extra=("--read-timeout-ms", "500"))
    t.ready()
    assert t.wait(10) == 1
    assert "no frame from the DERP server" in t.stderr()


def test_fwmark(tmp_path):
    """SO_MARK needs CAP_NET_ADMIN; as root the connection works with a mark."""
    if os.geteuid() != 0:
        pytest.skip("needs root for SO_MARK")
    d = Derper()
    t = Tool(tmp_path, d.url, extra=("--fwmark", "0x1d4"))
    t.ready()
    ss = subprocess.run(["ss", "-tnHe", "state", "established", "( dport = :%d )" % d.port],
                        capture_output=True, text=True, timeout=5)
    if ss.returncode == 0:
        assert "fwmark:0x1d4" in ss.stdout, ss.stdout
    t.cmd("quit")
    assert t.wait() == 0
