"""A CoderVPN peer for tests, on Python's protobuf runtime: the other end of codervpnd.

Independent of the C code: its own framing and handshake, from the spec.
"""
import os
import select
import socket
import struct
import time

import vpn_pb2

FRAME_MAX = 1 << 24


class Closed(Exception):
    """The other side closed the stream (EOF)."""


class Peer:
    """One end of a CoderVPN stream: role 'manager' or 'client'."""

    def __init__(self, rfd, wfd, role="manager", versions="1.3"):
        self.rfd, self.wfd = rfd, wfd
        self.role = role
        self.versions = versions
        self.next_id = 1
        self.backlog = []
        self.incoming = vpn_pb2.TunnelMessage if role == "manager" else vpn_pb2.ServiceMessage
        self.outgoing = vpn_pb2.ManagerMessage if role == "manager" else vpn_pb2.ClientMessage

    @classmethod
    def connect(cls, path, role="manager", versions="1.3"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        return cls(s.fileno(), s.fileno(), role, versions)._keep(s)

    def _keep(self, sock):
        self.sock = sock
        return self

    def write(self, data):
        while data:
            n = os.write(self.wfd, data)
            data = data[n:]

    def read_exact(self, n, timeout=10.0):
        buf = b""
        deadline = time.monotonic() + timeout
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"read {len(buf)} of {n} bytes")
            r, _, _ = select.select([self.rfd], [], [], left)
            if not r:
                continue
            try:
                chunk = os.read(self.rfd, n - len(buf))
            except ConnectionResetError:   # closed with our bytes unread: the kernel sends RST
                raise Closed() from None
            if not chunk:
                raise Closed()
            buf += chunk
        return buf

    def read_line(self, timeout=10.0):
        line = b""
        while not line.endswith(b"\n"):
            line += self.read_exact(1, timeout)
        return line

    def handshake(self):
        """Sends our header, reads theirs; returns their header line without '\\n'."""
        self.write(f"codervpn {self.role} {self.versions}\n".encode())
        return self.read_line().decode().rstrip("\n")

    def send(self, msg):
        data = msg.SerializeToString()
        self.write(struct.pack(">I", len(data)) + data)

    def recv(self, timeout=10.0):
        if self.backlog:
            return self.backlog.pop(0)
        (n,) = struct.unpack(">I", self.read_exact(4, timeout))
        msg = self.incoming()
        msg.ParseFromString(self.read_exact(n, timeout))
        return msg

    def request(self, **arm):
        """Sends a request with the next msg_id; returns that id."""
        msg = self.outgoing()
        msg.rpc.msg_id = self.next_id
        self.next_id += 1
        ((name, value),) = arm.items()
        getattr(msg, name).CopyFrom(value)
        self.send(msg)
        return msg.rpc.msg_id

    def recv_response(self, msg_id, timeout=10.0):
        """The response to msg_id; unsolicited messages read meanwhile are kept."""
        deadline = time.monotonic() + timeout
        kept = []
        while True:
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            if msg.HasField("rpc") and msg.rpc.response_to == msg_id:
                self.backlog = kept + self.backlog
                return msg
            kept.append(msg)

    def call(self, timeout=10.0, **arm):
        return self.recv_response(self.request(**arm), timeout)

    def expect_eof(self, timeout=10.0):
        """Reads until EOF; returns what came before it."""
        got = []
        try:
            while True:
                got.append(self.recv(timeout))
        except Closed:
            return got
