"""Tests for agent/derpconn through tests/tools/derpconn-tool against tests/tools/derper.py.

Run with /usr/bin/python3 -m pytest; DERPCONN_TOOL names the binary (default
build-derpconn/tests/derpconn-tool).
"""
import json
import os
import signal
import socket
import struct
import subprocess
import time

import pytest

pytest.importorskip("nacl.public", reason="python3-nacl not installed")

import nacl.public  # noqa: E402
import derpclient as dc  # noqa: E402
import derptest  # noqa: E402
from derptest import ConnectProxy, Derper, make_cert, kill_processes  # noqa: E402,F401  (autouse fixture)

TOOL = derptest.tool_binary("DERPCONN_TOOL", "derpconn-tool")


class Tool(derptest.Tool):
    """derpconn-tool connected to @url, its key in tmp_path/@name."""

    def __init__(self, tmp_path, url, name="k", extra=(), env=None):
        super().__init__([TOOL, url], tmp_path, name, extra, env)

    def ready(self):
        ln = self.expect("ready ")
        assert ln == "ready pubkey=%s" % self.pub
        return ln


def send_and_expect(src, dst, data_hex, timeout=5.0):
    """A packet from tool @src arrives at tool @dst."""
    src.cmd("send %s %s" % (dst.pub, data_hex))
    assert dst.expect("recv ", timeout) == "recv %s %s" % (src.pub, data_hex)


def hello_world(a, b):
    send_and_expect(a, b, b"hello".hex())
    send_and_expect(b, a, b"world".hex())


def send_burst(src, dst, n):
    """@n one-byte packets from @src, sent before any is read, arrive at @dst in order."""
    for i in range(n):
        src.cmd("send %s %02x" % (dst.pub, i))
    for i in range(n):
        assert dst.expect("recv ") == "recv %s %02x" % (src.pub, i)


def test_two_tools_exchange_packets(tmp_path):
    d = Derper()
    a = Tool(tmp_path, d.url, "a")
    b = Tool(tmp_path, "http://%s:%d" % (d.host, d.port), "b")   # default path /derp
    a.ready()
    b.ready()
    hello_world(a, b)
    send_and_expect(a, b, os.urandom(65536).hex(), 10)
    send_burst(b, a, 20)
    a.cmd("quit")
    assert a.wait() == 0
    # b may get PeerGone for a; it is still usable.
    b.cmd("ping")
    assert b.expect("pong ")
    b.cmd("quit")
    assert b.wait() == 0


def exchange_with_python_client(t, d, empty=False):
    """A packet each way between @t and the Python client (plain DERP) through @d; with
    @empty, also an empty one to @t."""
    with dc.DerpClient(d.host, d.port) as py:
        py.connect()
        t.cmd("send %s 0102ff" % py.pub.hex())
        src, pkt = py.recv_packet()
        assert src.hex() == t.pub and pkt == b"\x01\x02\xff"
        py.send_packet(bytes.fromhex(t.pub), b"from-python")
        assert t.expect("recv ") == "recv %s %s" % (py.pub.hex(), b"from-python".hex())
        if empty:
            py.send_packet(bytes.fromhex(t.pub), b"")
            assert t.expect("recv ").split(" ") == ["recv", py.pub.hex(), ""]


def test_tool_and_python_client(tmp_path):
    d = Derper()
    t = Tool(tmp_path, d.url)
    t.ready()
    exchange_with_python_client(t, d, empty=True)
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


def expect_closed(t, message=None):
    """@t exits with 1 after "connection closed: " (and @message) on stderr, with no
    sanitizer report; returns its stderr."""
    rc = t.wait(10)
    err = t.stderr()
    assert rc == 1, err
    assert "connection closed: " in err, err
    if message:
        assert message in err, err
    assert "AddressSanitizer" not in err and "runtime error" not in err, err
    return err


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
    err = expect_closed(t, message)
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
    d.kill()
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


@pytest.mark.parametrize("answer", [b"", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\n\r\n"],
                         ids=["no HTTP response", "no ServerKey"])
def test_handshake_deadline(tmp_path, answer):
    """A server that takes the connection and then says nothing (or only upgrades) is given
    up on at the handshake deadline, not after the much longer read deadline."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    port = listener.getsockname()[1]
    t = Tool(tmp_path, "http://127.0.0.1:%d/derp" % port, extra=("--handshake-timeout-ms", "500"))
    conn, _ = listener.accept()
    conn.settimeout(10)
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(4096)
        assert chunk, request
        request += chunk
    assert request.startswith(b"GET /derp HTTP/1.1\r\n"), request
    conn.sendall(answer)
    assert t.wait(10) == 1
    err = t.stderr()
    assert "no DERP handshake within 0.5 s of connecting" in err, err
    assert ("(no HTTP response)" in err) == (answer == b""), err
    conn.close()
    listener.close()


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


# ---------------------------------------------------------------- WebSocket variant

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"    # RFC 6455 §1.3


def ws_accept(key):
    import base64
    import hashlib
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_frame(opcode, payload=b"", fin=True, mask=None):
    """A server frame (unmasked unless @mask, which a server must never do)."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr = struct.pack(">BB", b0, mbit | n)
    elif n < 65536:
        hdr = struct.pack(">BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack(">BBQ", b0, mbit | 127, n)
    if mask:
        payload = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        hdr += mask
    return hdr + payload


class FakeWSServer(FakeServer):
    """FakeServer speaking the WebSocket variant: the DERP stream in binary messages."""

    def accept_ws(self, accept=None, extra=b""):
        head = self.accept()
        hdrs = {}
        for line in head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        self.headers = hdrs
        self.request_line = head.split("\r\n")[0]
        acc = accept if accept is not None else ws_accept(hdrs.get("sec-websocket-key", ""))
        self.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Protocol: derp\r\n"
                          b"Sec-WebSocket-Accept: " + acc.encode() + b"\r\n\r\n" + extra)
        self.stream = b""
        return hdrs

    def ws_read(self):
        """One client frame: (fin, opcode, mask, payload); asserts it is masked."""
        b0, b1 = self.read(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack(">H", self.read(2))
        elif n == 127:
            (n,) = struct.unpack(">Q", self.read(8))
        assert b1 & 0x80, "client frame not masked"
        mask = self.read(4)
        data = bytes(b ^ mask[i & 3] for i, b in enumerate(self.read(n)))
        return bool(b0 & 0x80), b0 & 0x0F, mask, data

    def derp_frame(self):
        """The next DERP frame from the client's binary messages."""
        while True:
            if len(self.stream) >= 5:
                ftype, flen = struct.unpack(">BI", self.stream[:5])
                if len(self.stream) >= 5 + flen:
                    out = (ftype, self.stream[5:5 + flen])
                    self.stream = self.stream[5 + flen:]
                    return out
            fin, op, _, data = self.ws_read()
            assert op in (0x0, 0x2), op
            self.stream += data

    def handshake_ws(self, split=3):
        """ServerKey and ServerInfo, cut into messages of @split bytes."""
        def send_stream(data):
            for i in range(0, len(data), split):
                self.sock.sendall(ws_frame(0x2, data[i:i + split]))
        send_stream(dc.frame(0x01, dc.MAGIC + self.priv.public_key.encode()))
        ftype, payload = self.derp_frame()
        assert ftype == 0x02
        box = nacl.public.Box(self.priv, nacl.public.PublicKey(payload[:32]))
        box.decrypt(payload[56:], payload[32:56])
        send_stream(dc.frame(0x03, bytes(box.encrypt(b'{"version":2}', os.urandom(24)))))


def test_websocket_both_directions(tmp_path):
    """Two tools over WebSocket (the relay splits its stream into small, sometimes
    fragmented messages), one over plain DERP: packets both ways, 64 KiB ones too."""
    d = Derper("--ws-split", "700")
    a = Tool(tmp_path, d.url, "a", extra=("--websocket",))
    b = Tool(tmp_path, d.url, "b", extra=("--websocket",))
    p = Tool(tmp_path, d.url, "p")
    a.ready()
    b.ready()
    p.ready()
    hello_world(a, b)
    for src, dst in ((a, b), (b, a), (a, p), (p, a)):
        send_and_expect(src, dst, os.urandom(65536).hex(), 10)
    send_burst(b, a, 30)
    a.cmd("ping")
    assert a.expect("pong ")
    for t in (a, b, p):
        t.cmd("quit")
        assert t.wait() == 0


def test_websocket_python_client(tmp_path):
    """The tool over WebSocket and the Python client (plain) through the relay."""
    d = Derper("--ws-split", "1")
    t = Tool(tmp_path, d.url, extra=("--websocket",))
    t.ready()
    exchange_with_python_client(t, d)
    t.cmd("quit")
    assert t.wait() == 0


def test_websocket_scripted(tmp_path):
    """The request head, masking, ping/pong, frames split across messages, close."""
    srv = FakeWSServer()
    try:
        t = Tool(tmp_path, srv.url, extra=("--websocket",))
        hdrs = srv.accept_ws()
        assert srv.request_line == "GET /derp HTTP/1.1"
        assert hdrs["upgrade"] == "websocket" and hdrs["connection"] == "Upgrade"
        assert hdrs["sec-websocket-protocol"] == "derp"
        assert hdrs["sec-websocket-version"] == "13"
        import base64
        assert len(base64.b64decode(hdrs["sec-websocket-key"])) == 16
        srv.handshake_ws()
        t.ready()
        # A ping between the fragments of a message; then a RecvPacket cut into a
        # fragmented message, with a frame that carries the end of one DERP frame and
        # the start of the next.
        k = os.urandom(32)
        f1 = dc.frame(0x05, k + b"one")
        f2 = dc.frame(0x05, k + b"two")
        srv.sock.sendall(ws_frame(0x2, f1[:4], fin=False) + ws_frame(0x9, b"pingdata") +
                         ws_frame(0x0, f1[4:] + f2[:10], fin=False) + ws_frame(0x0, b"", fin=False) +
                         ws_frame(0x0, f2[10:]))
        fin, op, _, data = srv.ws_read()
        assert (fin, op, data) == (True, 0xA, b"pingdata")
        assert t.expect("recv ") == "recv %s %s" % (k.hex(), b"one".hex())
        assert t.expect("recv ") == "recv %s %s" % (k.hex(), b"two".hex())
        # Every client frame is masked, each with its own mask.
        masks = set()
        for i in range(4):
            t.cmd("send %s %02x" % (k.hex(), i))
            fin, op, mask, data = srv.ws_read()
            assert fin and op == 0x2
            assert data == dc.frame(0x04, k + bytes([i]))    # one DERP frame per message
            masks.add(mask)
        assert len(masks) == 4
        # 64 KiB in one message needs the 64-bit length.
        big = os.urandom(65536)
        t.cmd("send %s %s" % (k.hex(), big.hex()))
        fin, op, mask, data = srv.ws_read()
        assert data == dc.frame(0x04, k + big)
        srv.sock.sendall(ws_frame(0x2, dc.frame(0x05, k + big)))
        assert t.expect("recv ", 10) == "recv %s %s" % (k.hex(), big.hex())
        # The server closes: the code is echoed and the connection ends.
        srv.sock.sendall(ws_frame(0x8, struct.pack(">H", 1001) + b"going away"))
        fin, op, _, data = srv.ws_read()
        assert op == 0x8 and data == struct.pack(">H", 1001)
        assert t.wait(10) == 1
        assert "WebSocket closed by the DERP server (code 1001)" in t.stderr()
    finally:
        srv.close()


@pytest.mark.parametrize("mode,message", [
    ("masked", "masked WebSocket frame from the server"),
    ("text", "text WebSocket message on the DERP stream"),
    ("oversize", "oversize WebSocket frame"),
    ("rsv", "WebSocket RSV bits set"),
    ("bad-accept", "wrong Sec-WebSocket-Accept"),
    ("garbage", None),
])
def test_websocket_hostile_server(tmp_path, mode, message):
    srv = FakeWSServer()
    try:
        t = Tool(tmp_path, srv.url, extra=("--websocket",))
        if mode == "bad-accept":
            srv.accept_ws(accept=ws_accept("AAAAAAAAAAAAAAAAAAAAAA=="))
        else:
            srv.accept_ws()
            srv.handshake_ws()
            t.ready()
            bad = {
                "masked": ws_frame(0x2, dc.frame(0x06), mask=b"\x01\x02\x03\x04"),
                "text": ws_frame(0x1, b"hello"),
                "oversize": struct.pack(">BBQ", 0x82, 127, 1 << 40),
                "rsv": b"\xc2\x00",
                "garbage": os.urandom(4096),
            }[mode]
            srv.sock.sendall(bad)
            if mode != "garbage":
                # The client says why before it goes: protocol error (1002), data it
                # cannot take (1003), message too big (1009).
                fin, op, _, data = srv.ws_read()
                assert op == 0x8, (op, data)
                code = {"oversize": 1009, "text": 1003}.get(mode, 1002)
                assert data == struct.pack(">H", code)
        err = expect_closed(t, message)
        assert t.pub not in err
    finally:
        srv.close()


@pytest.mark.parametrize("mode", ["garbage", "garbage-before-key", "oversize", "endless",
                                  "bad-magic"])
def test_websocket_hostile_derper(tmp_path, mode):
    """The relay's DERP-level faults arrive intact through the WebSocket layer."""
    d = Derper("--hostile", mode, "--ws-split", "333")
    t = Tool(tmp_path, d.url, extra=("--websocket",))
    expect_closed(t)


def test_ws_only_is_protonosupport(tmp_path):
    """A 4xx to Upgrade: DERP is -EPROTONOSUPPORT (retry with WebSocket), which works."""
    d = Derper("--ws-only")
    t = Tool(tmp_path, d.url)
    assert t.wait(10) == 1
    err = t.stderr()
    assert "DERP upgrade refused: HTTP/1.1 426 Upgrade Required (try the WebSocket variant)" in err
    assert "(Protocol not supported)" in err, err
    w = Tool(tmp_path, d.url, "w", extra=("--websocket",))
    w.ready()
    w.cmd("ping")
    assert w.expect("pong ")
    w.cmd("quit")
    assert w.wait() == 0


def test_websocket_refused(tmp_path):
    d = Derper("--no-ws")
    t = Tool(tmp_path, d.url, extra=("--websocket",))
    assert t.wait(10) == 1
    err = t.stderr()
    assert "WebSocket upgrade refused: HTTP/1.1 426" in err, err
    assert "(Connection refused)" in err, err


# ---------------------------------------------------------------- TLS

@pytest.mark.parametrize("websocket", [False, True])
def test_tls_verified_with_cert_name(tmp_path, websocket):
    """https: the certificate is checked against --ca-file for the name (SNI) derp.test
    while the TCP connection goes to 127.0.0.1."""
    cert, key = make_cert(tmp_path)
    d = Derper("--tls-cert", str(cert), "--tls-key", str(key))
    ws = ("--websocket",) if websocket else ()
    # The URL's host is the name; the address comes from --connect-host.
    a = Tool(tmp_path, "https://derp.test:%d/derp" % d.port, "a",
             extra=("--ca-file", str(cert), "--connect-host", "127.0.0.1") + ws)
    a.ready()
    # The URL's host is the address; the name comes from --cert-name.
    b = Tool(tmp_path, "https://127.0.0.1:%d/derp" % d.port, "b",
             extra=("--ca-file", str(cert), "--cert-name", "derp.test") + ws)
    b.ready()
    a.cmd("send %s 746c73" % b.pub)
    assert b.expect("recv ") == "recv %s 746c73" % a.pub
    for t in (a, b):
        t.cmd("quit")
        assert t.wait() == 0


def test_tls_verification_fails(tmp_path):
    cert, key = make_cert(tmp_path)
    d = Derper("--tls-cert", str(cert), "--tls-key", str(key))
    # Wrong name for the certificate.
    t = Tool(tmp_path, "https://127.0.0.1:%d/derp" % d.port, "a",
             extra=("--ca-file", str(cert), "--cert-name", "other.test"))
    assert t.wait(15) == 1
    assert "cannot connect to the DERP server" in t.stderr()
    # Not in the default CA store.
    t = Tool(tmp_path, "https://127.0.0.1:%d/derp" % d.port, "b")
    assert t.wait(15) == 1
    assert "cannot connect to the DERP server" in t.stderr()
    # InsecureForTests skips the check.
    t = Tool(tmp_path, "https://127.0.0.1:%d/derp" % d.port, "c", extra=("--insecure",))
    t.ready()
    t.cmd("quit")
    assert t.wait() == 0


def proxy_env(**proxies):
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(proxies)
    return env


def test_http_proxy_gets_connect(tmp_path):
    """With http_proxy set, the connection is a CONNECT tunnel through the proxy, also for
    an http:// URL (a forwarded GET could not carry the upgraded stream)."""
    d = Derper()
    proxy = ConnectProxy()
    a = Tool(tmp_path, d.url, "a", env=proxy_env(http_proxy=proxy.url))
    b = Tool(tmp_path, d.url, "b")
    a.ready()
    b.ready()
    hello_world(a, b)
    assert proxy.requests == ["CONNECT %s:%d HTTP/1.1" % (d.host, d.port)], proxy.requests
    for t in (a, b):
        t.cmd("quit")
        assert t.wait() == 0
    proxy.close()


def test_https_through_proxy(tmp_path):
    """https_proxy: CONNECT, then TLS with the server's name checked end to end."""
    cert, key = make_cert(tmp_path)
    d = Derper("--tls-cert", str(cert), "--tls-key", str(key))
    proxy = ConnectProxy(hosts={"derp.test": "127.0.0.1"})
    url = "https://derp.test:%d/derp" % d.port
    a = Tool(tmp_path, url, "a", extra=("--ca-file", str(cert)), env=proxy_env(https_proxy=proxy.url))
    b = Tool(tmp_path, url, "b", extra=("--ca-file", str(cert), "--connect-host", "127.0.0.1"))
    a.ready()
    b.ready()
    hello_world(a, b)
    assert proxy.requests == ["CONNECT derp.test:%d HTTP/1.1" % d.port], proxy.requests
    for t in (a, b):
        t.cmd("quit")
        assert t.wait() == 0
    proxy.close()


def test_proxy_refuses(tmp_path):
    d = Derper()
    proxy = ConnectProxy(refuse=True)
    t = Tool(tmp_path, d.url, "a", env=proxy_env(http_proxy=proxy.url))
    assert t.wait(15) == 1
    err = t.stderr()
    assert "cannot connect to the DERP server" in err and "403" in err, err
    assert proxy.requests and proxy.requests[0].startswith("CONNECT "), proxy.requests
    proxy.close()
