"""The built-in DNS responder (agent/dnsresponder) through tests/tools/dnsresponder-tool:
dig for answers, raw sockets for malformed packets, a fresh namespace for IP_FREEBIND."""
import os
import random
import socket
import struct
import subprocess
import time

import pytest

import netns

TOOL = os.path.abspath(os.environ.get("DNSRESPONDER_TOOL", "build/tests/dnsresponder-tool"))

NAMES = [
    "main.dev.me.coder=fd60:627a:a42b::1,100.64.0.1",
    "Other.Dev.Me.Coder.=fd60:627a:a42b::2",
    "many.coder=" + ",".join(f"fd60::{i:x}" for i in range(1, 60)),
]


class Tool:
    def __init__(self, listen, ns=None, names=NAMES, zones=("coder",)):
        argv = [TOOL]
        for a in listen:
            argv += ["--listen", a]
        for z in zones:
            argv += ["--zone", z]
        for n in names:
            argv += ["--name", n]
        if ns:
            argv = ["ip", "netns", "exec", ns] + argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addrs = []
        deadline = time.monotonic() + 10
        while True:
            assert time.monotonic() < deadline, "dnsresponder-tool did not get ready"
            line = self.proc.stdout.readline()
            assert line, "dnsresponder-tool exited: " + self.proc.stderr.read()
            line = line.strip()
            if line == "ready":
                break
            assert line.startswith("listening ")
            hostport = line.split()[1]
            host, port = hostport.rsplit(":", 1)
            self.addrs.append((host.strip("[]"), int(port)))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise
            return rc
        return self.proc.returncode


@pytest.fixture
def tool():
    made = []

    def make(*a, **kw):
        t = Tool(*a, **kw)
        made.append(t)
        return t

    yield make
    for t in made:
        if t.proc.poll() is None:
            t.proc.kill()
            t.proc.wait(5)


def dig(host, port, name, qtype, *extra, ns=None):
    argv = ["dig", f"@{host}", "-p", str(port), name, qtype, "+time=2", "+tries=1", *extra]
    if ns:
        argv = ["ip", "netns", "exec", ns] + argv
    return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout


def short(host, port, name, qtype, ns=None):
    return sorted(dig(host, port, name, qtype, "+short", ns=ns).split())


def status(host, port, name, qtype):
    out = dig(host, port, name, qtype)
    for line in out.splitlines():
        if "status:" in line:
            return line.split("status:")[1].split(",")[0].strip()
    raise AssertionError(out)


def query(name, qtype=1, qid=0x1234, flags=0x0100, qd=1, ar=0, extra=b""):
    labels = b"".join(bytes([len(x)]) + x.encode() for x in name.split(".") if x) + b"\0"
    return struct.pack(">HHHHHH", qid, flags, qd, 0, 0, ar) + labels + struct.pack(">HH", qtype, 1) + extra


def raw(host, port, payload, timeout=1.0):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, (host, port))
        try:
            return s.recv(4096)
        except socket.timeout:
            return None


def header(resp):
    return struct.unpack(">HHHHHH", resp[:12])


def test_answers(tool):
    t = tool(["127.0.0.1:0", "[::1]:0"])
    assert len(t.addrs) == 2
    for host, port in t.addrs:
        assert short(host, port, "main.dev.me.coder", "AAAA") == ["fd60:627a:a42b::1"]
        assert short(host, port, "main.dev.me.coder.", "A") == ["100.64.0.1"]
        assert short(host, port, "MAIN.Dev.ME.coder", "AAAA") == ["fd60:627a:a42b::1"]
        assert short(host, port, "other.dev.me.coder", "AAAA") == ["fd60:627a:a42b::2"]
        assert status(host, port, "other.dev.me.coder", "A") == "NOERROR"
        assert short(host, port, "other.dev.me.coder", "A") == []
        assert status(host, port, "nope.dev.me.coder", "AAAA") == "NXDOMAIN"
        assert status(host, port, "coder", "SOA") == "NOERROR"
        assert status(host, port, "example.com", "A") == "REFUSED"
        assert status(host, port, "main.dev.me.coder", "A", ) == "NOERROR"
    host, port = t.addrs[0]
    out = dig(host, port, "main.dev.me.coder", "AAAA")
    assert "flags: qr aa rd;" in out
    assert "EDNS: version: 0" in out
    assert "\t5\tIN\tAAAA\t" in out  # TTL 5
    # Without EDNS: 512 bytes, truncated (dig +ignore shows the truncated answer).
    out = dig(host, port, "many.coder", "AAAA", "+noedns", "+ignore")
    assert "flags: qr aa tc rd;" in out, out
    assert t.stop() == 0


def test_malformed(tool):
    t = tool(["127.0.0.1:0", "[::1]:0"])
    host, port = t.addrs[0]

    # A good raw query: exact ID and flags.
    r = raw(host, port, query("main.dev.me.coder", 28, qid=0xabcd))
    assert header(r) == (0xabcd, 0x8500, 1, 1, 0, 0)

    # FORMERR, header only: QDCOUNT 0 and 2, label over 63, name over 255, pointer loop.
    bad = [
        query("main.coder", qd=0),
        query("main.coder", qd=2),
        query("a" * 64 + ".coder"),
        query(".".join(["b" * 63] * 4)),
        struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",
        query("main.coder")[:20],
    ]
    for p in bad:
        r = raw(host, port, p)
        assert r is not None and len(r) == 12, p
        qid, flags, qd, an, ns, ar = header(r)
        assert qid == struct.unpack(">H", p[:2])[0]
        assert flags == 0x8101, hex(flags)
        assert (qd, an, ns, ar) == (0, 0, 0, 0)

    # NOTIMP for opcode STATUS (2).
    r = raw(host, port, query("main.dev.me.coder", flags=(2 << 11) | 0x0100))
    assert header(r)[1] == 0x8000 | (2 << 11) | 0x0100 | 4

    # Dropped: short header, responses.
    assert raw(host, port, b"\x12\x34\x01", timeout=0.3) is None
    assert raw(host, port, query("main.dev.me.coder", flags=0x8000), timeout=0.3) is None

    # Garbage of every size; then it still answers, on both sockets.
    rnd = random.Random(1)
    fam_socks = []
    for h, p in t.addrs:
        fam = socket.AF_INET6 if ":" in h else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        fam_socks.append((s, (h, p)))
    for i in range(3000):
        n = rnd.randrange(0, 1500)
        payload = bytes(rnd.randrange(256) for _ in range(n))
        if i % 3 == 0 and n >= 12:
            payload = payload[:2] + b"\x01\x00\x00\x01" + payload[6:]  # plausible header
        for s, a in fam_socks:
            s.sendto(payload, a)
    for s, a in fam_socks:
        s.sendto(b"\0" * 9000, a)  # larger than the receive buffer: dropped (MSG_TRUNC)
        s.sendto(query("main.dev.me.coder") + b"\0" * 9000, a)
        s.close()
    assert t.proc.poll() is None
    for h, p in t.addrs:
        assert short(h, p, "main.dev.me.coder", "AAAA") == ["fd60:627a:a42b::1"]
    assert t.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_freebind_in_namespace(tool):
    with netns.namespace("cvdns") as ns:
        # Bound before the addresses exist: only IP_FREEBIND / IPV6_FREEBIND allow that.
        t = tool(["[fd60:627a:a42b::53]:53", "10.77.0.53:53"], ns=ns)
        assert t.addrs == [("fd60:627a:a42b::53", 53), ("10.77.0.53", 53)]
        netns.sh("ip", "addr", "add", "fd60:627a:a42b::53/128", "dev", "lo", "nodad", ns=ns)
        netns.sh("ip", "addr", "add", "10.77.0.53/32", "dev", "lo", ns=ns)
        deadline = time.monotonic() + 10
        while True:
            got = short("fd60:627a:a42b::53", 53, "main.dev.me.coder", "AAAA", ns=ns)
            if got or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert got == ["fd60:627a:a42b::1"]
        assert short("10.77.0.53", 53, "main.dev.me.coder", "A", ns=ns) == ["100.64.0.1"]
        out = dig("fd60:627a:a42b::53", 53, "x.coder", "A", ns=ns)
        assert "status: NXDOMAIN" in out
        assert t.stop() == 0
