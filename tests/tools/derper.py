#!/usr/bin/python3
"""Minimal DERP relay server for tests and the demo (never installed).

Implements the wire protocol described in /work/shared/spec/derp.md:
plain HTTP/1.1 on loopback (HTTPS with --tls-cert), `GET /derp` with `Upgrade: DERP` (or WebSocket
with `Sec-WebSocket-Protocol: derp`), DERP v2 handshake (NaCl box), packet
routing, PeerGone, KeepAlive, Ping/Pong, probe endpoints and fault injection
(`--hostile MODE`) for client tests.

Usage:
  derper.py --listen HOST:PORT [--key-file F] [--ws-only|--no-ws]
            [--max-packet N] [--keepalive S] [--ws-split N] [--hostile MODE]
            [--restarting MS] [--tls-cert PEM --tls-key PEM]

Prints `listening HOST:PORT pubkey=<hex>` on stdout once ready; logs to stderr.
"""
import argparse
import asyncio
import base64
import collections
import hashlib
import ipaddress
import json
import logging
import os
import random
import signal
import socket
import struct
import sys
import time

import nacl.exceptions
import nacl.public

MAGIC = b"DERP\xf0\x9f\x94\x91"
PROTO_VERSION = 2
MAX_PACKET = 64 << 10
KEY_LEN = 32
NONCE_LEN = 24

FRAME_SERVER_KEY = 0x01
FRAME_CLIENT_INFO = 0x02
FRAME_SERVER_INFO = 0x03
FRAME_SEND_PACKET = 0x04
FRAME_RECV_PACKET = 0x05
FRAME_KEEP_ALIVE = 0x06
FRAME_NOTE_PREFERRED = 0x07
FRAME_PEER_GONE = 0x08
FRAME_PING = 0x12
FRAME_PONG = 0x13
FRAME_RESTARTING = 0x15

PEER_GONE_DISCONNECTED = 0
PEER_GONE_NOT_HERE = 1

SEND_QUEUE_DEPTH = 32
CTRL_QUEUE_DEPTH = 256
WRITE_TIMEOUT = 2.0
HANDSHAKE_TIMEOUT = 10.0
HTTP_HEADER_LIMIT = 16 << 10
WS_MAX_MESSAGE = 1 << 20
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"   # RFC 6455 §1.3

HOSTILE_MODES = ("garbage", "garbage-before-key", "oversize", "endless", "bad-magic")

log = logging.getLogger("derper")


class ProtocolError(Exception):
    pass


def frame(ftype, payload=b""):
    return struct.pack(">BI", ftype, len(payload)) + payload


# ---------------------------------------------------------------- transports

class PlainStream:
    """DERP byte stream directly on the TCP connection."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.lock = asyncio.Lock()

    async def readexactly(self, n):
        return await self.reader.readexactly(n)

    async def send(self, data):
        async with self.lock:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), WRITE_TIMEOUT)

    async def close(self):
        pass


class WSStream:
    """DERP byte stream carried in RFC 6455 binary messages (server side).

    The DERP stream is not aligned to WebSocket messages: reads reassemble
    across messages, and writes may be split at random points (ws_split>0)
    to exercise client reassembly.
    """

    def __init__(self, reader, writer, split=0):
        self.reader = reader
        self.writer = writer
        self.split = split
        self.buf = bytearray()
        self.lock = asyncio.Lock()
        self.closed = False

    async def _write_frame(self, opcode, payload, fin=True):
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            hdr = struct.pack(">BB", b0, n)
        elif n < 65536:
            hdr = struct.pack(">BBH", b0, 126, n)
        else:
            hdr = struct.pack(">BBQ", b0, 127, n)
        self.writer.write(hdr + payload)
        await asyncio.wait_for(self.writer.drain(), WRITE_TIMEOUT)

    async def send(self, data):
        async with self.lock:
            if self.closed:
                raise ConnectionError("websocket closed")
            if self.split <= 0:
                await self._write_frame(0x2, data)
                return
            i = 0
            while i < len(data):
                n = random.randint(1, self.split)
                chunk = data[i:i + n]
                i += n
                # Alternate between separate messages and fragmented
                # messages (continuation frames) for extra coverage.
                if len(chunk) > 1 and random.random() < 0.25:
                    h = len(chunk) // 2
                    await self._write_frame(0x2, chunk[:h], fin=False)
                    await self._write_frame(0x0, chunk[h:], fin=True)
                else:
                    await self._write_frame(0x2, chunk)

    async def _read_ws_frame(self):
        b0, b1 = await self.reader.readexactly(2)
        fin = bool(b0 & 0x80)
        if b0 & 0x70:
            raise ProtocolError("websocket RSV bits set")
        opcode = b0 & 0x0F
        masked = bool(b1 & 0x80)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack(">H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack(">Q", await self.reader.readexactly(8))
        if not masked:
            raise ProtocolError("unmasked client websocket frame")
        if n > WS_MAX_MESSAGE:
            raise ProtocolError("websocket frame too large (%d)" % n)
        if opcode >= 0x8 and (n > 125 or not fin):
            raise ProtocolError("bad websocket control frame")
        mask = await self.reader.readexactly(4)
        data = bytearray(await self.reader.readexactly(n))
        for i in range(n):
            data[i] ^= mask[i & 3]
        return fin, opcode, bytes(data)

    async def _fill(self):
        while True:
            fin, opcode, data = await self._read_ws_frame()
            if opcode in (0x0, 0x2):
                self.buf += data
                if data:
                    return
            elif opcode == 0x1:
                raise ProtocolError("text websocket message on derp stream")
            elif opcode == 0x8:
                code = data[:2] if len(data) >= 2 else b""
                async with self.lock:
                    if not self.closed:
                        self.closed = True
                        try:
                            await self._write_frame(0x8, code)
                        except (ConnectionError, asyncio.TimeoutError):
                            pass
                raise asyncio.IncompleteReadError(b"", None)
            elif opcode == 0x9:
                async with self.lock:
                    if not self.closed:
                        await self._write_frame(0xA, data)
            elif opcode == 0xA:
                pass
            else:
                raise ProtocolError("unknown websocket opcode %d" % opcode)

    async def readexactly(self, n):
        while len(self.buf) < n:
            await self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def close(self, code=1000):
        async with self.lock:
            if not self.closed:
                self.closed = True
                try:
                    await self._write_frame(0x8, struct.pack(">H", code))
                except (ConnectionError, asyncio.TimeoutError, RuntimeError):
                    pass


# ---------------------------------------------------------------- clients

class TokenBucket:
    def __init__(self, rate, burst):
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.t = time.monotonic()

    def allow(self):
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Client:
    _next = 0

    def __init__(self, server, stream, key, peer):
        Client._next += 1
        self.num = Client._next
        self.server = server
        self.stream = stream
        self.key = key
        self.peer = peer
        self.pkts = collections.deque()
        self.ctrl = collections.deque()
        self.wake = asyncio.Event()
        self.done = asyncio.Event()
        self.dropped = 0
        self.gone_limit = TokenBucket(1.0, 3)

    def name(self):
        return "%s#%d(%s)" % (self.key.hex()[:8], self.num, self.peer)

    def enqueue_packet(self, src, pkt):
        if len(self.pkts) >= SEND_QUEUE_DEPTH:
            # As upstream: drop the oldest queued packet to make room.
            self.pkts.popleft()
            self.dropped += 1
        self.pkts.append(frame(FRAME_RECV_PACKET, src + pkt))
        self.wake.set()

    def enqueue_ctrl(self, data):
        if len(self.ctrl) >= CTRL_QUEUE_DEPTH:
            self.dropped += 1
            return
        self.ctrl.append(data)
        self.wake.set()

    def close(self):
        self.done.set()
        self.wake.set()

    async def writer_loop(self):
        interval = self.server.keepalive
        next_ka = time.monotonic() + interval + self.server.jitter()
        while not self.done.is_set():
            timeout = max(0.0, next_ka - time.monotonic())
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            self.wake.clear()
            if self.done.is_set():
                break
            out = []
            while self.ctrl:
                out.append(self.ctrl.popleft())
            while self.pkts:
                out.append(self.pkts.popleft())
            if time.monotonic() >= next_ka:
                out.append(frame(FRAME_KEEP_ALIVE))
                next_ka = time.monotonic() + interval + self.server.jitter()
            if out:
                await self.stream.send(b"".join(out))


class Server:
    def __init__(self, args, priv):
        self.args = args
        self.priv = priv
        self.pub = priv.public_key.encode()
        self.keepalive = args.keepalive
        self.max_packet = args.max_packet
        self.clients = {}          # key -> active Client
        self.sent_to = collections.defaultdict(set)   # src key -> {dst key}
        self.tasks = set()

    def jitter(self):
        return random.uniform(0, min(5.0, self.keepalive / 12.0))

    # ------------------------------------------------------------ HTTP
    async def handle(self, reader, writer):
        task = asyncio.current_task()
        self.tasks.add(task)
        peer = writer.get_extra_info("peername")
        peer = "%s:%s" % peer[:2] if peer else "?"
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await self.handle_http(reader, writer, peer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError,
                asyncio.LimitOverrunError) as e:
            log.info("%s: connection ended: %s", peer, type(e).__name__)
        except ProtocolError as e:
            log.info("%s: protocol error: %s", peer, e)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("%s: unexpected error", peer)
        finally:
            self.tasks.discard(task)
            try:
                writer.close()
            except Exception:
                pass

    async def read_request(self, reader):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANDSHAKE_TIMEOUT)
        if len(head) > HTTP_HEADER_LIMIT:
            raise ProtocolError("request header too large")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise ProtocolError("bad request line %r" % lines[0])
        headers = {}
        for line in lines[1:]:
            if not line:
                continue
            k, sep, v = line.partition(":")
            if not sep:
                raise ProtocolError("bad header line")
            headers[k.strip().lower()] = v.strip()
        return parts[0], parts[1], headers

    async def respond(self, writer, code, reason, body=b"", head_only=False, extra=()):
        hdrs = ["HTTP/1.1 %d %s" % (code, reason),
                "Content-Type: text/plain; charset=utf-8",
                "Content-Length: %d" % len(body),
                "Connection: close"]
        hdrs += list(extra)
        data = ("\r\n".join(hdrs) + "\r\n\r\n").encode()
        if not head_only:
            data += body
        writer.write(data)
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)

    async def handle_http(self, reader, writer, peer):
        method, target, headers = await self.read_request(reader)
        path = target.split("?", 1)[0]
        log.debug("%s: %s %s", peer, method, target)
        if path in ("/derp/probe", "/derp/latency-check"):
            if method not in ("GET", "HEAD"):
                return await self.respond(writer, 405, "Method Not Allowed", b"bogus probe method\n")
            return await self.respond(writer, 200, "OK", head_only=(method == "HEAD"))
        if path == "/generate_204":
            return await self.respond(writer, 204, "No Content", head_only=True)
        if path != "/derp":
            return await self.respond(writer, 404, "Not Found", b"not found\n", method == "HEAD")
        if method != "GET":
            return await self.respond(writer, 405, "Method Not Allowed", b"GET required\n")
        upgrade = headers.get("upgrade", "").lower()
        if upgrade == "derp":
            if self.args.ws_only:
                return await self.respond(writer, 426, "Upgrade Required",
                                          b"DERP requires a WebSocket upgrade\n",
                                          extra=("Upgrade: websocket",))
            fast = headers.get("derp-fast-start", "") == "1"
            if not fast:
                resp = ("HTTP/1.1 101 Switching Protocols\r\n"
                        "Upgrade: DERP\r\n"
                        "Connection: Upgrade\r\n"
                        "Derp-Version: %d\r\n"
                        "Derp-Public-Key: %s\r\n\r\n" % (PROTO_VERSION, self.pub.hex()))
                writer.write(resp.encode())
            stream = PlainStream(reader, writer)
            return await self.serve_derp(stream, peer)
        if upgrade == "websocket":
            protos = [p.strip().lower() for p in headers.get("sec-websocket-protocol", "").split(",")]
            wskey = headers.get("sec-websocket-key", "")
            if self.args.no_ws:
                return await self.respond(writer, 426, "Upgrade Required",
                                          b"WebSocket not supported\n", extra=("Upgrade: DERP",))
            if "derp" not in protos:
                return await self.respond(writer, 400, "Bad Request", b"need derp subprotocol\n")
            if headers.get("sec-websocket-version", "") != "13" or not wskey:
                return await self.respond(writer, 400, "Bad Request", b"bad websocket handshake\n",
                                          extra=("Sec-WebSocket-Version: 13",))
            accept = base64.b64encode(hashlib.sha1((wskey + WS_GUID).encode()).digest()).decode()
            resp = ("HTTP/1.1 101 Switching Protocols\r\n"
                    "Upgrade: websocket\r\n"
                    "Connection: Upgrade\r\n"
                    "Sec-WebSocket-Accept: %s\r\n"
                    "Sec-WebSocket-Protocol: derp\r\n"
                    "Derp-Version: %d\r\n"
                    "Derp-Public-Key: %s\r\n\r\n" % (accept, PROTO_VERSION, self.pub.hex()))
            writer.write(resp.encode())
            stream = WSStream(reader, writer, self.args.ws_split)
            try:
                return await self.serve_derp(stream, peer + "/ws")
            except ProtocolError:
                await stream.close(1002)
                raise
            finally:
                await stream.close()
        return await self.respond(writer, 426, "Upgrade Required",
                                  b"DERP requires connection upgrade\n",
                                  extra=("Upgrade: DERP",))

    # ------------------------------------------------------------ DERP
    async def read_frame_header(self, stream):
        hdr = await stream.readexactly(5)
        return struct.unpack(">BI", hdr)

    async def hostile(self, stream, mode):
        log.info("hostile mode %s", mode)
        if mode == "garbage":
            await stream.send(os.urandom(4096))
        elif mode == "oversize":
            n = KEY_LEN + MAX_PACKET + 1
            await stream.send(struct.pack(">BI", FRAME_RECV_PACKET, n) + bytes(n))
        elif mode == "endless":
            await stream.send(struct.pack(">BI", FRAME_RECV_PACKET, 0xFFFFFFFF))
            while True:
                await stream.send(bytes(1024))
                await asyncio.sleep(0.05)
        # Then hold the connection until the client goes away.
        while True:
            await stream.readexactly(1)

    async def serve_derp(self, stream, peer):
        mode = self.args.hostile
        if mode == "garbage-before-key":
            return await self.hostile(stream, "garbage")
        magic = MAGIC if mode != "bad-magic" else b"DERQ\xf0\x9f\x94\x91"
        await stream.send(frame(FRAME_SERVER_KEY, magic + self.pub))
        if mode == "bad-magic":
            return await self.hostile(stream, "hold")

        async def read_client_info():
            ftype, flen = await self.read_frame_header(stream)
            if ftype != FRAME_CLIENT_INFO:
                raise ProtocolError("expected ClientInfo, got frame type %#x" % ftype)
            if flen < KEY_LEN + NONCE_LEN + 16 or flen > 256 << 10:
                raise ProtocolError("bad ClientInfo length %d" % flen)
            return await stream.readexactly(flen)

        payload = await asyncio.wait_for(read_client_info(), HANDSHAKE_TIMEOUT)
        ckey = payload[:KEY_LEN]
        try:
            box = nacl.public.Box(self.priv, nacl.public.PublicKey(ckey))
            msg = box.decrypt(payload[KEY_LEN + NONCE_LEN:], payload[KEY_LEN:KEY_LEN + NONCE_LEN])
            info = json.loads(msg)
            if not isinstance(info, dict):
                raise ValueError("ClientInfo JSON is not an object")
        except (nacl.exceptions.CryptoError, ValueError) as e:
            raise ProtocolError("bad ClientInfo from %s: %s" % (ckey.hex()[:8], e))
        log.info("%s: client %s info %s", peer, ckey.hex(), msg.decode(errors="replace"))

        nonce = os.urandom(NONCE_LEN)
        sbox = nacl.public.Box(self.priv, nacl.public.PublicKey(ckey))
        sealed = sbox.encrypt(json.dumps({"version": PROTO_VERSION}, separators=(",", ":")).encode(), nonce)
        if mode in ("garbage", "oversize", "endless"):
            await stream.send(frame(FRAME_SERVER_INFO, bytes(sealed)))
            return await self.hostile(stream, mode)
        if self.args.restarting is not None:
            # As a relay going down for a restart: Restarting(reconnect in, try for), close.
            ms = self.args.restarting
            await stream.send(frame(FRAME_SERVER_INFO, bytes(sealed)) +
                              frame(FRAME_RESTARTING, struct.pack(">II", ms, 10 * ms)))
            await asyncio.sleep(0.1)
            return

        # Register before ServerInfo goes out, so that once the client has
        # seen ServerInfo, packets to it are routed (queued until the writer
        # loop starts, which sends them after ServerInfo).
        client = Client(self, stream, ckey, peer)
        self.register(client)
        wtask = rtask = None
        try:
            await stream.send(frame(FRAME_SERVER_INFO, bytes(sealed)))
            wtask = asyncio.ensure_future(client.writer_loop())
            rtask = asyncio.ensure_future(self.reader_loop(client))
            done, _ = await asyncio.wait({wtask, rtask, asyncio.ensure_future(client.done.wait())},
                                         return_when=asyncio.FIRST_COMPLETED)
            for t in (wtask, rtask):
                if t in done and not t.cancelled() and t.exception() is not None:
                    e = t.exception()
                    if isinstance(e, ProtocolError):
                        log.info("%s: protocol error: %s", client.name(), e)
                        if isinstance(stream, WSStream):
                            await stream.close(1002)
                    else:
                        log.info("%s: connection ended: %s %s", client.name(), type(e).__name__, e)
        finally:
            client.close()
            tasks = [t for t in (wtask, rtask) if t is not None]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.unregister(client)

    def register(self, client):
        old = self.clients.get(client.key)
        self.clients[client.key] = client
        if old is not None:
            log.info("%s replaces %s", client.name(), old.name())
            old.close()
        else:
            log.info("%s connected (%d clients)", client.name(), len(self.clients))

    def unregister(self, client):
        if self.clients.get(client.key) is not client:
            return   # replaced by a newer connection with the same key
        del self.clients[client.key]
        log.info("%s disconnected (%d clients, %d frames dropped)", client.name(),
                 len(self.clients), client.dropped)
        # Tell the peers this client sent to, and the peers that sent to it.
        notify = set(self.sent_to.pop(client.key, ()))
        for src, dsts in self.sent_to.items():
            if client.key in dsts:
                notify.add(src)
                dsts.discard(client.key)
        gone = frame(FRAME_PEER_GONE, client.key + bytes([PEER_GONE_DISCONNECTED]))
        for k in notify:
            other = self.clients.get(k)
            if other is not None:
                other.enqueue_ctrl(gone)

    async def reader_loop(self, client):
        stream = client.stream
        limit = KEY_LEN + self.max_packet
        while True:
            ftype, flen = await self.read_frame_header(stream)
            if ftype == FRAME_SEND_PACKET:
                if flen < KEY_LEN:
                    raise ProtocolError("short SendPacket")
                if flen - KEY_LEN > self.max_packet:
                    raise ProtocolError("SendPacket of %d bytes exceeds max %d" % (flen - KEY_LEN, self.max_packet))
                data = await stream.readexactly(flen)
                dst, pkt = data[:KEY_LEN], data[KEY_LEN:]
                self.route(client, dst, pkt)
                continue
            if flen > limit:
                raise ProtocolError("frame type %#x too large (%d)" % (ftype, flen))
            data = await stream.readexactly(flen)
            if ftype == FRAME_PING:
                if flen < 8:
                    raise ProtocolError("short Ping")
                client.enqueue_ctrl(frame(FRAME_PONG, data[:8]))
            elif ftype == FRAME_NOTE_PREFERRED:
                pass
            elif ftype == FRAME_PONG:
                pass
            else:
                log.debug("%s: skipping frame type %#x len %d", client.name(), ftype, flen)

    def route(self, src, dst, pkt):
        target = self.clients.get(dst)
        if target is None:
            if src.gone_limit.allow():
                src.enqueue_ctrl(frame(FRAME_PEER_GONE, dst + bytes([PEER_GONE_NOT_HERE])))
            return
        self.sent_to[src.key].add(dst)
        target.enqueue_packet(src.key, pkt)

    async def shutdown(self):
        for c in list(self.clients.values()):
            c.close()
        for t in list(self.tasks):
            t.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2)


# ---------------------------------------------------------------- main

def load_key(path):
    if path and os.path.exists(path):
        with open(path) as f:
            text = f.read().strip()
        if text.startswith("{"):
            text = json.loads(text).get("PrivateKey", "")
        if text.startswith("privkey:"):
            text = text[len("privkey:"):]
        raw = bytes.fromhex(text)
        if len(raw) != 32:
            raise SystemExit("derper: bad key in %s" % path)
        return nacl.public.PrivateKey(raw)
    priv = nacl.public.PrivateKey.generate()
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("privkey:%s\n" % priv.encode().hex())
    return priv


def in_private_netns():
    """Whether we run in a named network namespace (`ip netns add`, as tests and the demo make)."""
    try:
        me = os.stat("/proc/self/ns/net").st_ino
        return any(os.stat(os.path.join("/run/netns", n)).st_ino == me for n in os.listdir("/run/netns"))
    except OSError:
        return False


def parse_listen(s):
    host, sep, port = s.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError("need HOST:PORT")
    host = host.strip("[]")
    if host != "localhost":
        try:
            if not ipaddress.ip_address(host).is_loopback and not in_private_netns():
                raise argparse.ArgumentTypeError("refusing non-loopback address %s outside a test's network "
                                                 "namespace" % host)
        except ValueError:
            raise argparse.ArgumentTypeError("bad host %r" % host)
    return host, int(port)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", type=parse_listen, required=True, help="HOST:PORT (loopback; port 0 = pick)")
    ap.add_argument("--key-file", help="private key file (hex, privkey:<hex> or derper JSON); created if absent")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--ws-only", action="store_true", help="answer Upgrade: DERP with 426")
    g.add_argument("--no-ws", action="store_true", help="refuse WebSocket upgrades")
    ap.add_argument("--max-packet", type=int, default=MAX_PACKET, help="max SendPacket payload (default 65536)")
    ap.add_argument("--keepalive", type=float, default=60.0, help="KeepAlive interval in seconds")
    ap.add_argument("--ws-split", type=int, default=0,
                    help="split the outgoing DERP stream into WebSocket messages of <= N bytes (0 = no split)")
    ap.add_argument("--hostile", choices=HOSTILE_MODES,
                    help="fault injection: garbage (after ServerInfo), garbage-before-key, "
                         "oversize (RecvPacket > 64 KiB), endless (frame length 2^32-1, trickled), "
                         "bad-magic (ServerKey with wrong magic)")
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM; needs --tls-key)")
    ap.add_argument("--tls-key", help="the certificate's private key (PEM)")
    ap.add_argument("--restarting", type=int, metavar="MS",
                    help="after the handshake send Restarting(MS, 10*MS) and close the connection")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.verbose else logging.INFO,
                        format="derper: %(asctime)s %(levelname)s %(message)s")
    priv = load_key(args.key_file)
    asyncio.run(amain(args, priv))


async def amain(args, priv):
    server = Server(args, priv)
    host, port = args.listen
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tls = None
    if args.tls_cert:
        import ssl
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        tls.set_alpn_protocols(["http/1.1"])
    srv = await asyncio.start_server(server.handle, host, port, limit=HTTP_HEADER_LIMIT + 1024,
                                     ssl=tls)
    sockname = srv.sockets[0].getsockname()
    shown = sockname[0] if ":" not in sockname[0] else "[%s]" % sockname[0]
    print("listening %s:%d pubkey=%s" % (shown, sockname[1], server.pub.hex()), flush=True)
    log.info("listening on %s:%d", shown, sockname[1])
    await stop.wait()
    log.info("stopping")
    srv.close()
    await server.shutdown()
    await srv.wait_closed()


if __name__ == "__main__":
    main()
