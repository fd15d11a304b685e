"""Split DNS end to end: resolvedtool routes `coder` to the tunnel DNS address on a link, a real
systemd-resolved (private bus, private namespaces: test_resolved.Scenario) sends those queries over
the link to dnsresponder-tool, and nothing else goes there.

Topology. resolved lives in Scenario's network+mount namespace; the responder lives in a second,
bare network namespace, joined to the first by a veth pair:

    [resolved ns]  cvtun0  fd60:627a:a42b::1/48   100.100.100.1/24
                     | veth (both ends up, so both have carrier)
    [responder ns] cvdns0  fd60:627a:a42b::53/48  100.100.100.100/24   dnsresponder-tool :53

Why veth and a second namespace: a TUN nobody reads has NO-CARRIER, and resolved does not use a
link without carrier for DNS; and with the responder's address local to resolved's namespace the
kernel would carry the queries over lo, so "it went via the link" would prove nothing. Here a
query can only reach the responder by crossing cvtun0.

Observables: `resolvectl query` (which names the link the answer came from), dig against
resolved's stub 127.0.0.53 inside the namespace, an AF_PACKET sniffer on cvdns0 that logs the
question of every UDP datagram to port 53 arriving from the link (tcpdump is not installed), and the
responder's own counter (SIGHUP -> "stats received=N ...").
"""
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from test_resolved import REQUIRES_RESOLVED, RESOLVEDTOOL, Scenario, Tool, coder_request, link_value

DNSRESPONDER_TOOL = os.path.abspath(os.environ.get("DNSRESPONDER_TOOL", "build/tests/dnsresponder-tool"))
IF = "cvtun0"        # resolved's side of the veth: the "tunnel" link resolved gets the DNS settings for
PEER_IF = "cvdns0"   # the responder's side
DNS6 = "fd60:627a:a42b::53"
DNS4 = "100.100.100.100"
NAME = "main.dev.me.coder"
AAAA = "fd60:627a:a42b:1::5"
A = "100.64.0.5"

pytestmark = [
    *REQUIRES_RESOLVED,
    pytest.mark.skipif(not shutil.which("resolvectl"), reason="resolvectl is not installed"),
]

# Prints "ready" once bound, then "QNAME QTYPE" for each UDP/53 datagram arriving on argv[1].
SNIFFER = r"""
import socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((sys.argv[1], 0))
print("ready", flush=True)
while True:
    pkt, addr = s.recvfrom(65535)
    if addr[2] == socket.PACKET_OUTGOING:
        continue
    eth = struct.unpack("!H", pkt[12:14])[0]
    if eth == 0x0800:
        ihl = (pkt[14] & 15) * 4
        if pkt[23] != 17:
            continue
        udp = 14 + ihl
    elif eth == 0x86DD:
        if pkt[20] != 17:
            continue
        udp = 14 + 40
    else:
        continue
    if struct.unpack("!H", pkt[udp + 2:udp + 4])[0] != 53:
        continue
    dns = pkt[udp + 8:]
    i, labels = 12, []
    while i < len(dns) and dns[i]:
        labels.append(dns[i + 1:i + 1 + dns[i]].decode("ascii", "replace"))
        i += 1 + dns[i]
    qtype = struct.unpack("!H", dns[i + 1:i + 3])[0] if i + 3 <= len(dns) else 0
    print(".".join(labels).lower(), qtype, flush=True)
"""


class PeerNs:
    """A bare network namespace (a holder process) for the responder, linked to Scenario's by veth."""

    def __init__(self):
        self.procs = []
        self.holder = subprocess.Popen(
            ["unshare", "--net", "--", "sh", "-c", "ip link set lo up && echo ready && exec sleep 600"],
            stdout=subprocess.PIPE, text=True)
        assert self.holder.stdout.readline().strip() == "ready"
        self.pid = self.holder.pid

    def argv(self, argv):
        return ["nsenter", "-t", str(self.pid), "-n", "--", *argv]

    def sh(self, *argv):
        return subprocess.run(self.argv(argv), capture_output=True, text=True, timeout=20, check=True)

    def spawn(self, argv, **kw):
        p = subprocess.Popen(self.argv(argv), **kw)
        self.procs.append(p)
        return p

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.holder.kill()
        self.holder.wait(5)


class Lines:
    """A child's stdout, line by line with a timeout (a reader thread: select() on a buffered pipe
    would miss lines that arrived in the same read as the previous one)."""

    def __init__(self, proc, what):
        self.proc, self.what, self.q = proc, what, queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.q.put(line.strip())
        self.q.put(None)

    def readline(self, timeout=10):
        try:
            line = self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.what} said nothing within {timeout}s") from None
        assert line is not None, f"{self.what} exited"
        return line

    def rest(self, timeout=5):
        """Every line up to EOF (once the child was stopped)."""
        out = []
        while (line := self.q.get(timeout=timeout)) is not None:
            out.append(line)
        return out


def received(responder, lines):
    responder.send_signal(signal.SIGHUP)
    line = lines.readline()
    assert line.startswith("stats "), line
    return int(dict(kv.split("=") for kv in line.split()[1:])["received"])


@pytest.fixture
def env():
    tmp = tempfile.mkdtemp(prefix="cvt-splitdns-")
    s = peer = None
    try:
        s = Scenario(tmp)
        peer = PeerNs()
        yield s, peer
    finally:
        # Killing the holders (and everything nsenter'd) frees both namespaces and the veth with them.
        if peer:
            peer.close()
        if s:
            s.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_split_dns_through_resolved_to_the_responder(env):
    s, peer = env
    assert os.path.exists(DNSRESPONDER_TOOL), DNSRESPONDER_TOOL
    assert os.path.exists(RESOLVEDTOOL), RESOLVEDTOOL

    # The link. nodad: the addresses are usable at once rather than tentative for a second or two.
    s.sh("ip", "link", "add", IF, "type", "veth", "peer", "name", PEER_IF, "netns", str(peer.pid))
    s.sh("ip", "-6", "addr", "add", "fd60:627a:a42b::1/48", "dev", IF, "nodad")
    s.sh("ip", "addr", "add", "100.100.100.1/24", "dev", IF)
    s.sh("ip", "link", "set", IF, "up")
    peer.sh("ip", "-6", "addr", "add", f"{DNS6}/48", "dev", PEER_IF, "nodad")
    peer.sh("ip", "addr", "add", f"{DNS4}/24", "dev", PEER_IF)
    peer.sh("ip", "link", "set", PEER_IF, "up")

    sniffer = peer.spawn([sys.executable, "-c", SNIFFER, PEER_IF], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    sniffed = Lines(sniffer, "sniffer")
    assert sniffed.readline() == "ready"

    responder = peer.spawn([DNSRESPONDER_TOOL, "--listen", f"[{DNS6}]:53", "--listen", f"{DNS4}:53",
                            "--zone", "coder", "--name", f"{NAME}={AAAA},{A}"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    rlines = Lines(responder, "dnsresponder-tool")
    lines = []
    while (line := rlines.readline()) != "ready":
        lines.append(line)
    assert lines == [f"listening [{DNS6}]:53", f"listening {DNS4}:53"], lines

    # The first datagram over the fresh veth takes ~1 s (seen with a direct dig too: neighbour
    # discovery on a new link), which would make resolved's first transaction retransmit. Warm the
    # path up first so what follows is deterministic.
    for addr in (DNS6, DNS4):
        s.sh("ping", "-c", "1", "-W", "5", addr)

    s.start_resolved()
    t = Tool(s, IF, coder_request(no_search=False, servers=(DNS6,)))
    assert t.readline() == "applied"
    assert link_value(s.resolvectl("dns", IF)) == DNS6
    assert link_value(s.resolvectl("domain", IF)) == "coder"
    assert link_value(s.resolvectl("default-route", IF)) == "no"

    # 1. The workspace name: both families, answered via the link.
    out = s.resolvectl("query", "--cache=no", NAME)
    print(out)
    for addr in (AAAA, A):
        assert any(addr in l and f"-- link: {IF}" in l for l in out.splitlines()), out
    assert "protocol DNS" in out, out
    for rtype, addr in (("AAAA", AAAA), ("A", A)):
        out = s.resolvectl("query", "--cache=no", "-t", rtype, NAME)
        assert f"IN {rtype} {addr}" in out and f"-- link: {IF}" in out, out

    # ... and through resolved's stub listener, which listens inside the namespace (lo is up).
    if shutil.which("dig"):
        for rtype, addr in (("AAAA", AAAA), ("A", A)):
            r = s.sh("dig", "+time=3", "+tries=1", "+short", "@127.0.0.53", NAME, rtype)
            assert r.stdout.split() == [addr], r.stdout + r.stderr

    # 2. A name in the zone the responder does not know: NXDOMAIN through resolved.
    r = s.sh("resolvectl", "--no-pager", "query", "--cache=no", "nosuch.me.coder", check=False)
    assert r.returncode != 0, r.stdout
    assert "'nosuch.me.coder' not found" in r.stderr, r.stderr
    if shutil.which("dig"):
        r = s.sh("dig", "+time=3", "+tries=1", "@127.0.0.53", "nosuch.me.coder", "AAAA")
        assert "status: NXDOMAIN" in r.stdout, r.stdout

    # 3. A name outside `coder` must not be sent to the tunnel DNS. resolved has no other route in
    # this namespace (its fallback servers are unreachable), so the query fails; what matters is
    # that neither the sniffer nor the responder saw it.
    before = received(responder, rlines)
    r = s.sh("resolvectl", "--no-pager", "query", "--cache=no", "example.com", check=False)
    print(r.returncode, r.stdout, r.stderr)
    if shutil.which("dig"):
        s.sh("dig", "+time=2", "+tries=1", "@127.0.0.53", "example.com", "A", check=False)
    time.sleep(0.5)  # anything resolved sent would have arrived by now
    assert received(responder, rlines) == before, "the responder got queries during the example.com lookups"

    assert t.quit() == ("reverted", 0)
    responder.terminate()
    assert responder.wait(5) == 0
    sniffer.kill()
    sniffer.wait(5)
    seen = [l.split() for l in sniffed.rest()]
    print(seen)
    names = {q[0] for q in seen}
    assert NAME in names and "nosuch.me.coder" in names, seen  # the sniffer does see link traffic
    assert not [q for q in seen if q[0] == "example.com" or q[0].startswith("example.com.")], seen
