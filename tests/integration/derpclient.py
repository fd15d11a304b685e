"""Small, independent, synchronous DERP client for testing tests/tools/derper.py.

Supports the plain `Upgrade: DERP` path (optionally Derp-Fast-Start) and the
WebSocket variant (client frames masked; the DERP stream is reassembled
across messages; outgoing data may be split across messages with ws_split).
"""
import base64
import hashlib
import json
import os
import random
import socket
import struct
import time

import nacl.public

MAGIC = b"DERP\xf0\x9f\x94\x91"
MAX_PACKET = 64 << 10
KEY_LEN = 32
NONCE_LEN = 24
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"   # RFC 6455 §1.3

SERVER_KEY = 0x01
CLIENT_INFO = 0x02
SERVER_INFO = 0x03
SEND_PACKET = 0x04
RECV_PACKET = 0x05
KEEP_ALIVE = 0x06
NOTE_PREFERRED = 0x07
PEER_GONE = 0x08
PING = 0x12
PONG = 0x13

# Largest frame this client accepts (RecvPacket: src key + 64 KiB).
MAX_FRAME = KEY_LEN + MAX_PACKET


class DerpError(Exception):
    pass


class HTTPStatus(DerpError):
    def __init__(self, code, head):
        super().__init__("HTTP status %d" % code)
        self.code = code
        self.head = head


def frame(ftype, payload=b""):
    return struct.pack(">BI", ftype, len(payload)) + payload


def client_info_frame(client_priv, server_pub, nonce=None, info=None):
    """Build a ClientInfo frame: client pubkey + nonce + box(JSON)."""
    if info is None:
        info = {"version": 2, "CanAckPings": True}
    if nonce is None:
        nonce = os.urandom(NONCE_LEN)
    box = nacl.public.Box(client_priv, nacl.public.PublicKey(server_pub))
    sealed = box.encrypt(json.dumps(info, separators=(",", ":")).encode(), nonce)
    # PyNaCl returns nonce(24) + MAC(16) + ciphertext.
    assert sealed[:NONCE_LEN] == nonce
    return frame(CLIENT_INFO, client_priv.public_key.encode() + bytes(sealed))


class DerpClient:
    def __init__(self, host, port, priv=None, websocket=False, fast_start=False,
                 ws_split=0, timeout=5.0, max_frame=MAX_FRAME):
        self.host = host
        self.port = port
        self.priv = priv if priv is not None else nacl.public.PrivateKey.generate()
        self.pub = self.priv.public_key.encode()
        self.websocket = websocket
        self.fast_start = fast_start
        self.ws_split = ws_split
        self.timeout = timeout
        self.max_frame = max_frame
        self.sock = None
        self.raw = bytearray()     # bytes read from the socket, not yet parsed
        self.buf = bytearray()     # DERP stream bytes
        self.server_pub = None
        self.server_info = None
        self.http_headers = {}
        self.ws_messages = 0       # binary/continuation frames received (ws)
        self.ws_closed = None      # close code from the server, if any

    # ---------------------------------------------------------- connection
    def open(self, upgrade=None, extra_headers=()):
        """TCP connect and send the HTTP upgrade; returns after the response head."""
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lines = ["GET /derp HTTP/1.1", "Host: %s:%d" % (self.host, self.port)]
        if self.websocket:
            self.ws_key = base64.b64encode(os.urandom(16)).decode()
            lines += ["Upgrade: %s" % (upgrade or "websocket"), "Connection: Upgrade",
                      "Sec-WebSocket-Key: " + self.ws_key, "Sec-WebSocket-Version: 13",
                      "Sec-WebSocket-Protocol: derp"]
        else:
            lines += ["Upgrade: %s" % (upgrade or "DERP"), "Connection: Upgrade"]
            if self.fast_start:
                lines.append("Derp-Fast-Start: 1")
        lines += list(extra_headers)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        if self.fast_start and not self.websocket:
            return
        head = self._read_http_head()
        status = head.split("\r\n", 1)[0].split(" ")
        code = int(status[1])
        for line in head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            self.http_headers[k.strip().lower()] = v.strip()
        if code != 101:
            raise HTTPStatus(code, head)
        if self.websocket:
            want = base64.b64encode(hashlib.sha1((self.ws_key + WS_GUID).encode()).digest()).decode()
            if self.http_headers.get("sec-websocket-accept") != want:
                raise DerpError("bad Sec-WebSocket-Accept")
            if self.http_headers.get("sec-websocket-protocol", "").lower() != "derp":
                raise DerpError("server did not select derp subprotocol")
        elif self.http_headers.get("upgrade", "").lower() != "derp":
            raise DerpError("bad Upgrade in response")

    def _read_http_head(self):
        deadline = time.monotonic() + self.timeout
        while b"\r\n\r\n" not in self.raw:
            if time.monotonic() > deadline or len(self.raw) > 16384:
                raise DerpError("no HTTP response head")
            self._recv_raw()
        i = self.raw.index(b"\r\n\r\n")
        head = bytes(self.raw[:i]).decode("latin-1")
        del self.raw[:i + 4]
        if not self.websocket:
            self.buf += self.raw
            self.raw.clear()
        return head

    def _recv_raw(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("connection closed by server")
        self.raw += d

    def connect(self, info=None):
        """Full connect: HTTP upgrade + DERP handshake. Returns self."""
        self.open()
        self.handshake(info=info)
        return self

    def read_server_key(self):
        ftype, payload = self.recv_frame(max_len=1024)
        if ftype != SERVER_KEY:
            raise DerpError("expected ServerKey, got %#x" % ftype)
        if len(payload) < 40 or payload[:8] != MAGIC:
            raise DerpError("bad ServerKey magic")
        self.server_pub = payload[8:40]
        hk = self.http_headers.get("derp-public-key")
        if hk and bytes.fromhex(hk) != self.server_pub:
            raise DerpError("Derp-Public-Key header differs from ServerKey")
        return self.server_pub

    def handshake(self, info=None):
        self.read_server_key()
        self.send_raw(client_info_frame(self.priv, self.server_pub, info=info))
        ftype, payload = self.recv_frame()
        if ftype != SERVER_INFO:
            raise DerpError("expected ServerInfo, got %#x" % ftype)
        box = nacl.public.Box(self.priv, nacl.public.PublicKey(self.server_pub))
        msg = box.decrypt(payload[NONCE_LEN:], payload[:NONCE_LEN])
        self.server_info = json.loads(msg)
        return self.server_info

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------- websocket
    def _ws_frame(self, opcode, payload, fin=True):
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            hdr = struct.pack(">BB", b0, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack(">BBH", b0, 0x80 | 126, n)
        else:
            hdr = struct.pack(">BBQ", b0, 0x80 | 127, n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        return hdr + mask + body

    def ws_send(self, opcode, payload, fin=True, masked=True):
        if masked:
            self.sock.sendall(self._ws_frame(opcode, payload, fin))
        else:
            b0 = (0x80 if fin else 0) | opcode
            self.sock.sendall(struct.pack(">BB", b0, len(payload)) + payload)

    def _ws_need(self, n):
        while len(self.raw) < n:
            self._recv_raw()

    def _ws_read_frame(self):
        self._ws_need(2)
        b0, b1 = self.raw[0], self.raw[1]
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._ws_need(4)
            (n,) = struct.unpack(">H", self.raw[2:4])
            off = 4
        elif n == 127:
            self._ws_need(10)
            (n,) = struct.unpack(">Q", self.raw[2:10])
            off = 10
        if b1 & 0x80:
            raise DerpError("server sent a masked websocket frame")
        if n > (1 << 20):
            raise DerpError("websocket frame too large")
        self._ws_need(off + n)
        data = bytes(self.raw[off:off + n])
        del self.raw[:off + n]
        return bool(b0 & 0x80), b0 & 0x0F, data

    def ws_read_frame(self):
        """Read one raw websocket frame (for tests of control frames)."""
        return self._ws_read_frame()

    def _fill(self):
        if not self.websocket:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("connection closed by server")
            self.buf += d
            return
        while True:
            fin, op, data = self._ws_read_frame()
            if op in (0x0, 0x2):
                self.ws_messages += 1
                self.buf += data
                return
            if op == 0x8:
                self.ws_closed = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else 1005
                raise EOFError("websocket closed by server (%s)" % self.ws_closed)
            if op == 0x9:
                self.ws_send(0xA, data)
            elif op == 0xA:
                pass
            else:
                raise DerpError("unexpected websocket opcode %d" % op)

    def send_raw(self, data):
        """Send DERP stream bytes (wrapped in websocket messages if needed)."""
        if not self.websocket:
            self.sock.sendall(data)
            return
        if self.ws_split <= 0:
            self.ws_send(0x2, data)
            return
        i = 0
        while i < len(data):
            n = random.randint(1, self.ws_split)
            self.ws_send(0x2, data[i:i + n])
            i += n

    # ---------------------------------------------------------- frames
    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out reading DERP stream")
            self.sock.settimeout(left)
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def recv_frame(self, timeout=None, max_len=None):
        """Next (type, payload). Raises DerpError on a frame over the size bound."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        hdr = self._read_exact(5, deadline)
        ftype, flen = struct.unpack(">BI", hdr)
        if flen > (self.max_frame if max_len is None else max_len):
            raise DerpError("frame type %#x length %d over limit" % (ftype, flen))
        return ftype, self._read_exact(flen, deadline)

    def recv_until(self, want, timeout=None):
        """Read frames until one of type `want` (skipping keepalives etc.)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            ftype, payload = self.recv_frame(timeout=max(0.0, deadline - time.monotonic()))
            if ftype == want:
                return payload

    def send_packet(self, dst, pkt):
        self.send_raw(frame(SEND_PACKET, dst + pkt))

    def recv_packet(self, timeout=None):
        payload = self.recv_until(RECV_PACKET, timeout)
        return payload[:KEY_LEN], payload[KEY_LEN:]

    def ping(self, data=None, timeout=None):
        data = data or os.urandom(8)
        self.send_raw(frame(PING, data))
        pong = self.recv_until(PONG, timeout)
        if pong != data:
            raise DerpError("pong payload mismatch")
        return pong

    def note_preferred(self, preferred=True):
        self.send_raw(frame(NOTE_PREFERRED, b"\x01" if preferred else b"\x00"))

    def is_closed(self, timeout=2.0):
        """True if the server closes the connection within timeout (frames are drained)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.recv_frame(timeout=left, max_len=1 << 31)
        except (EOFError, ConnectionError):
            return True
        except socket.timeout:
            return False
