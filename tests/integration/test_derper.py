"""Tests for the test DERP relay server tests/tools/derper.py (run with /usr/bin/python3 -m pytest)."""
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

nacl = pytest.importorskip("nacl.public", reason="python3-nacl not installed")

import nacl.public  # noqa: E402
import derpclient as dc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DERPER = os.path.join(HERE, "..", "tools", "derper.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

VEC_CLIENT_PRIV = "40ab1b58e9076c7a4d9d07291f5edf9d1aa017eb949624ba683317f48a640369"
VEC_CLIENT_PUB = "50d20b455ecf12bc453f83c2cfdb2a24925d06cf2598dcaa54e91af82ce9f765"
VEC_SERVER_PUB = "a4e09292b651c278b9772c569f5fa9bb13d906b46ab68c9df9dc2b4409f8a209"
VEC_BOX = ("6e0403b1f8ec349df830b4fd805cd9732de9edd84d6b15a937e81ff589e1c42319f8c190"
           "728ef2d7e59db029d94548be")


class Derper:
    def __init__(self, *args):
        self.stderr = open(os.devnull, "wb") if os.environ.get("DERPER_QUIET") else None
        self.proc = subprocess.Popen([PYTHON, DERPER, "--listen", "127.0.0.1:0"] + list(args),
                                     stdout=subprocess.PIPE, stderr=self.stderr)
        r, _, _ = select.select([self.proc.stdout], [], [], 10)
        if not r:
            self.kill()
            raise RuntimeError("derper did not start")
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("listening "):
            self.kill()
            raise RuntimeError("derper: unexpected first line %r" % line)
        addr, pk = line.split(" ")[1:3]
        self.host, port = addr.rsplit(":", 1)
        self.port = int(port)
        self.pubkey = bytes.fromhex(pk.split("=", 1)[1])

    def client(self, **kw):
        return dc.DerpClient(self.host, self.port, **kw)

    def http(self, req):
        with socket.create_connection((self.host, self.port), timeout=5) as s:
            s.sendall(req.encode())
            data = b""
            while True:
                d = s.recv(4096)
                if not d:
                    break
                data += d
        return data.decode("latin-1")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        if self.stderr:
            self.stderr.close()


@pytest.fixture
def derper():
    made = []

    def make(*args):
        d = Derper(*args)
        made.append(d)
        return d

    yield make
    for d in made:
        d.kill()


@pytest.fixture
def clients():
    made = []

    def add(c):
        made.append(c)
        return c

    yield add
    for c in made:
        c.close()


def status(resp):
    return int(resp.split(" ", 2)[1])


# ------------------------------------------------------------------ vectors

def test_clientinfo_vector():
    client = nacl.public.PrivateKey(bytes.fromhex(VEC_CLIENT_PRIV))
    server = nacl.public.PrivateKey(b"\x01" * 32)
    assert client.public_key.encode().hex() == VEC_CLIENT_PUB
    assert server.public_key.encode().hex() == VEC_SERVER_PUB
    got = dc.client_info_frame(client, server.public_key.encode(), nonce=b"\x02" * 24)
    want = bytes.fromhex("0200000068" + VEC_CLIENT_PUB + "02" * 24 + VEC_BOX)
    assert got == want
    # And the server side opens it.
    box = nacl.public.Box(server, client.public_key)
    assert box.decrypt(got[5 + 56:], got[5 + 32:5 + 56]) == b'{"version":2,"CanAckPings":true}'


def test_frame_vectors():
    assert dc.frame(dc.KEEP_ALIVE) == bytes.fromhex("0600000000")
    assert dc.frame(dc.PING, bytes(range(1, 9))) == bytes.fromhex("12000000080102030405060708")
    assert dc.frame(dc.SEND_PACKET, bytes(1024))[:5] == bytes.fromhex("0400000400")


def test_server_key_frame_and_headers(derper, clients):
    d = derper()
    c = clients(d.client())
    c.open()
    assert c.http_headers["derp-version"] == "2"
    assert bytes.fromhex(c.http_headers["derp-public-key"]) == d.pubkey
    assert c.http_headers["connection"].lower() == "upgrade"
    ftype, payload = c.recv_frame()
    assert ftype == dc.SERVER_KEY and payload == dc.MAGIC + d.pubkey
    c.server_pub = payload[8:40]
    c.send_raw(dc.client_info_frame(c.priv, c.server_pub))
    ftype, payload = c.recv_frame()
    assert ftype == dc.SERVER_INFO


# ------------------------------------------------------------------ routing

def test_exchange_both_ways(derper, clients):
    d = derper()
    a = clients(d.client()).connect()
    b = clients(d.client()).connect()
    assert a.server_info["version"] == 2
    for size in (0, 1, 1500, 65536):
        pkt = os.urandom(size)
        a.send_packet(b.pub, pkt)
        assert b.recv_packet() == (a.pub, pkt)
        pkt = os.urandom(size)
        b.send_packet(a.pub, pkt)
        assert a.recv_packet() == (b.pub, pkt)


def test_unknown_destination_peer_gone_not_here(derper, clients):
    d = derper()
    a = clients(d.client()).connect()
    nobody = os.urandom(32)
    a.send_packet(nobody, b"hello")
    assert a.recv_until(dc.PEER_GONE) == nobody + b"\x01"


def test_disconnect_peer_gone(derper, clients):
    d = derper()
    a = clients(d.client()).connect()
    b = clients(d.client()).connect()
    c = clients(d.client()).connect()
    # b talked to a; c never did.
    b.send_packet(a.pub, b"x")
    assert a.recv_packet() == (b.pub, b"x")
    a.close()
    assert b.recv_until(dc.PEER_GONE) == a.pub + b"\x00"
    c.ping()
    with pytest.raises(socket.timeout):
        c.recv_until(dc.PEER_GONE, timeout=0.5)
    # And the other direction: e sent to b, e goes away, b is told.
    e = clients(d.client()).connect()
    e.send_packet(b.pub, b"y")
    assert b.recv_packet() == (e.pub, b"y")
    e.close()
    assert b.recv_until(dc.PEER_GONE) == e.pub + b"\x00"


def test_ping_pong(derper, clients):
    d = derper()
    a = clients(d.client()).connect()
    a.send_raw(bytes.fromhex("12000000080102030405060708"))
    assert a.recv_frame() == (dc.PONG, bytes(range(1, 9)))
    a.ping()


def test_keepalive(derper, clients):
    d = derper("--keepalive", "0.3")
    a = clients(d.client()).connect()
    t0 = time.monotonic()
    assert a.recv_frame(timeout=3) == (dc.KEEP_ALIVE, b"")
    assert a.recv_frame(timeout=3) == (dc.KEEP_ALIVE, b"")
    assert time.monotonic() - t0 < 3


def test_unknown_frames_skipped(derper, clients):
    d = derper()
    a = clients(d.client()).connect()
    b = clients(d.client()).connect()
    a.send_raw(dc.frame(0x7e, os.urandom(100)) + dc.frame(dc.NOTE_PREFERRED, b"\x01"))
    a.send_packet(b.pub, b"after")
    assert b.recv_packet() == (a.pub, b"after")


def test_oversize_send_packet_closes_only_that_client(derper, clients):
    d = derper()
    a = clients(d.client()).connect()
    b = clients(d.client()).connect()
    bad = clients(d.client()).connect()
    bad.send_packet(a.pub, bytes(65537))
    assert bad.is_closed(timeout=3)
    a.send_packet(b.pub, b"still")
    assert b.recv_packet() == (a.pub, b"still")
    b.send_packet(a.pub, b"works")
    src, pkt = a.recv_packet()
    assert (src, pkt) == (b.pub, b"works")


def test_max_packet_option(derper, clients):
    d = derper("--max-packet", "100")
    a = clients(d.client()).connect()
    b = clients(d.client()).connect()
    a.send_packet(b.pub, bytes(100))
    assert b.recv_packet() == (a.pub, bytes(100))
    a.send_packet(b.pub, bytes(101))
    assert a.is_closed(timeout=3)


def test_bad_client_info_box_closed(derper, clients):
    d = derper()
    c = clients(d.client())
    c.open()
    c.read_server_key()
    f = bytearray(dc.client_info_frame(c.priv, c.server_pub))
    f[-1] ^= 0xFF
    c.send_raw(bytes(f))
    assert c.is_closed(timeout=3)
    # Wrong first frame also closes.
    c2 = clients(d.client())
    c2.open()
    c2.read_server_key()
    c2.send_raw(dc.frame(dc.PING, bytes(8)))
    assert c2.is_closed(timeout=3)


def test_same_key_replaces_older_connection(derper, clients):
    d = derper()
    priv = nacl.public.PrivateKey.generate()
    old = clients(d.client(priv=priv)).connect()
    a = clients(d.client()).connect()
    new = clients(d.client(priv=priv)).connect()
    assert old.is_closed(timeout=3)
    a.send_packet(new.pub, b"to-new")
    assert new.recv_packet() == (a.pub, b"to-new")


def test_fast_start(derper, clients):
    d = derper()
    a = clients(d.client(fast_start=True)).connect()
    assert a.http_headers == {}
    b = clients(d.client()).connect()
    a.send_packet(b.pub, b"fast")
    assert b.recv_packet() == (a.pub, b"fast")


# ------------------------------------------------------------------ HTTP

def test_probe_endpoints(derper):
    d = derper()
    for m in ("GET", "HEAD"):
        for p in ("/derp/probe", "/derp/latency-check"):
            assert status(d.http("%s %s HTTP/1.1\r\nHost: x\r\n\r\n" % (m, p))) == 200
    r = d.http("GET /generate_204 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(r) == 204
    assert status(d.http("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")) == 404


def test_upgrade_values(derper, clients):
    d = derper()
    r = d.http("GET /derp HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
    assert status(r) == 426
    r = d.http("GET /derp HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(r) == 426
    c = clients(d.client())
    c.open(upgrade="derp")           # lower case accepted
    c.handshake()
    c.ping()


def test_ws_only(derper, clients):
    d = derper("--ws-only")
    c = clients(d.client())
    with pytest.raises(dc.HTTPStatus) as e:
        c.open()
    assert e.value.code == 426
    w = clients(d.client(websocket=True)).connect()
    w.ping()


def test_no_ws(derper, clients):
    d = derper("--no-ws")
    w = clients(d.client(websocket=True))
    with pytest.raises(dc.HTTPStatus) as e:
        w.open()
    assert e.value.code == 426


# ------------------------------------------------------------------ websocket

def test_websocket_split_talks_to_plain_client(derper, clients):
    d = derper("--ws-split", "7")
    w = clients(d.client(websocket=True, ws_split=5)).connect()
    p = clients(d.client()).connect()
    frames_before = w.ws_messages
    assert frames_before > 2        # ServerKey + ServerInfo (two frames) took many messages
    for size in (1, 300, 5000):
        pkt = os.urandom(size)
        w.send_packet(p.pub, pkt)
        assert p.recv_packet() == (w.pub, pkt)
        pkt = os.urandom(size)
        p.send_packet(w.pub, pkt)
        assert w.recv_packet() == (p.pub, pkt)
    w.ping()
    assert w.ws_messages > frames_before + 10


def test_websocket_control_frames(derper, clients):
    d = derper()
    w = clients(d.client(websocket=True)).connect()
    w.ws_send(0x9, b"hi")
    assert w.ws_read_frame() == (True, 0xA, b"hi")
    # A fragmented DERP frame (continuation) is reassembled.
    ping = dc.frame(dc.PING, b"12345678")
    w.ws_send(0x2, ping[:3], fin=False)
    w.ws_send(0x0, ping[3:], fin=True)
    assert w.recv_until(dc.PONG) == b"12345678"
    w.ws_send(0x8, struct.pack(">H", 1000))
    fin, op, data = w.ws_read_frame()
    assert op == 0x8
    assert w.is_closed(timeout=3)


def test_websocket_unmasked_rejected(derper, clients):
    d = derper()
    w = clients(d.client(websocket=True)).connect()
    w.ws_send(0x2, dc.frame(dc.PING, bytes(8)), masked=False)
    assert w.is_closed(timeout=3)
    assert w.ws_closed in (None, 1002)


# ------------------------------------------------------------------ hostile

def test_hostile_garbage(derper, clients):
    d = derper("--hostile", "garbage")
    c = clients(d.client()).connect()      # handshake itself is fine
    with pytest.raises(dc.DerpError):
        for _ in range(100):
            c.recv_frame(timeout=3)


def test_hostile_garbage_before_key(derper, clients):
    d = derper("--hostile", "garbage-before-key")
    c = clients(d.client())
    with pytest.raises(dc.DerpError):
        c.connect()


def test_hostile_bad_magic(derper, clients):
    d = derper("--hostile", "bad-magic")
    c = clients(d.client())
    with pytest.raises(dc.DerpError, match="magic"):
        c.connect()


def test_hostile_oversize(derper, clients):
    d = derper("--hostile", "oversize")
    c = clients(d.client()).connect()
    with pytest.raises(dc.DerpError, match="over limit"):
        c.recv_frame(timeout=3)
    # A client without the bound would read the full oversize frame.
    c2 = clients(d.client(max_frame=1 << 20)).connect()
    ftype, payload = c2.recv_frame(timeout=5)
    assert ftype == dc.RECV_PACKET and len(payload) == 32 + 65536 + 1


def test_hostile_endless(derper, clients):
    d = derper("--hostile", "endless")
    c = clients(d.client()).connect()
    with pytest.raises(dc.DerpError, match="over limit"):
        c.recv_frame(timeout=3)
    c2 = clients(d.client(max_frame=1 << 32)).connect()
    with pytest.raises(socket.timeout):
        c2.recv_frame(timeout=1)
    assert len(c2.buf) > 1024          # bytes keep trickling in


def test_hostile_over_websocket(derper, clients):
    d = derper("--hostile", "oversize", "--ws-split", "1000")
    w = clients(d.client(websocket=True)).connect()
    with pytest.raises(dc.DerpError, match="over limit"):
        w.recv_frame(timeout=3)


# ------------------------------------------------------------------ process

def test_key_file_and_sigterm(derper, clients, tmp_path):
    kf = tmp_path / "derp.key"
    d1 = derper("--key-file", str(kf))
    clients(d1.client()).connect()   # SIGTERM must not hang on live clients
    clients(d1.client(websocket=True)).connect()
    text = kf.read_text().strip()
    assert text.startswith("privkey:")
    priv = nacl.public.PrivateKey(bytes.fromhex(text[len("privkey:"):]))
    assert priv.public_key.encode() == d1.pubkey
    d1.proc.send_signal(signal.SIGTERM)
    assert d1.proc.wait(5) == 0
    d2 = derper("--key-file", str(kf))
    assert d2.pubkey == d1.pubkey


def test_non_loopback_refused():
    r = subprocess.run([PYTHON, DERPER, "--listen", "0.0.0.0:0"], capture_output=True, timeout=10)
    assert r.returncode != 0
    assert b"loopback" in r.stderr


def test_slow_reader_bounded(derper, clients):
    """A client that never reads does not stall the relay; other clients keep working."""
    d = derper()
    slow = clients(d.client()).connect()
    a = clients(d.client()).connect()
    b = clients(d.client()).connect()
    pkt = bytes(60000)
    for _ in range(200):
        a.send_packet(slow.pub, pkt)
    a.send_packet(b.pub, b"ok")
    assert b.recv_packet(timeout=5) == (a.pub, b"ok")
    # The slow client gets at most a bounded number of packets once it reads.
    n = 0
    try:
        while True:
            slow.recv_packet(timeout=1)
            n += 1
    except (socket.timeout, EOFError, ConnectionError):
        pass
    assert n < 200
