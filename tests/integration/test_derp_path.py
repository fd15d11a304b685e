"""Per-peer path selection (agent/pathmgr) between direct UDP and DERP, end to end.

Three namespaces: a hub with a veth to A and one to B (IP forwarding on), tests/tools/derper.py
in the hub, and tests/tools/pathmgr-tool in A and in B, each with a WireGuard interface
(wireguard-go on the host; kernel WireGuard in the VM: CODERVPN_WG_MODE=kernel, see
check-kernel). derper.py only listens on loopback, so the hub DNATs port 3340 of its veth
addresses to it (route_localnet). nftables in the hub drops the UDP it forwards between A
and B when a test blocks the direct path.

PATHMGR_TOOL names the tool (default build/tests/pathmgr-tool).
"""
import base64
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

import nacl.public

from netns import namespace, sh, wg_mode

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DERPER = os.path.join(ROOT, "tests", "tools", "derper.py")
TOOL = os.path.abspath(os.environ.get("PATHMGR_TOOL", os.path.join(ROOT, "build", "tests", "pathmgr-tool")))
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
MODE = wg_mode()

DERP_PORT = 3340
A_VETH, B_VETH = "10.99.1.2", "10.99.2.2"
A_HUB, B_HUB = "10.99.1.1", "10.99.2.1"
A_TUN, B_TUN = "10.77.0.1", "10.77.0.2"
A_PORT, B_PORT = 51820, 51821
# Generous: the design target is 5 s (pathmgr.h); a loaded CI machine must not flake.
FALLBACK_BOUND = 15.0
# A probe every 10 s +- 2 s, then the path has to be proven: well within this.
RECOVER_BOUND = 40.0

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
]


@pytest.fixture(autouse=True)
def _prerequisites():
    assert os.access(TOOL, os.X_OK), f"{TOOL} is not built (make $(BUILD)/tests/pathmgr-tool)"
    assert shutil.which("nft"), "needs nft (nftables)"
    if MODE == "userspace":
        assert shutil.which("wireguard-go"), "needs wireguard-go"
        assert os.path.exists("/dev/net/tun"), "needs /dev/net/tun"
    else:
        assert os.path.exists("/sys/module/wireguard"), "kernel mode needs the wireguard module"


def keypair():
    priv = nacl.public.PrivateKey.generate()
    return base64.b64encode(priv.encode()).decode(), base64.b64encode(priv.public_key.encode()).decode()


class Proc:
    """A process whose stdout lines are collected, with the monotonic time each arrived."""

    def __init__(self, argv, stdin=subprocess.DEVNULL):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines = []
        self.err = []
        self.cond = threading.Condition()
        self.threads = [threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
                        threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True)]
        for t in self.threads:
            t.start()

    def _read(self, f, into):
        for line in f:
            with self.cond:
                into.append((time.monotonic(), line.rstrip("\n")))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, pred, timeout, start=0, what="line"):
        """The first (time, line) from index @start matching @pred; fails after @timeout s."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.lines)):
                    if pred(self.lines[i][1]):
                        return i, self.lines[i]
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.threads[0].is_alive()):
                    raise AssertionError(f"no {what} within {timeout} s from {self.argv[-1]!r}: "
                                         f"{self.output()}")
                self.cond.wait(min(left, 0.2))

    def output(self):
        with self.cond:
            return ("stdout:\n" + "\n".join(l for _, l in self.lines) +
                    "\nstderr:\n" + "\n".join(l for _, l in self.err[-30:]))

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for t in self.threads:
            t.join(2)
        return self.proc.returncode


class Net:
    def __init__(self, hub, a, b, tmp):
        self.hub, self.a, self.b, self.tmp = hub, a, b, tmp
        self.procs = []
        self.derper = None
        self.derper_port = None
        sfx = uuid.uuid4().hex[:6]
        for ns, peer, hub_ip, ip, name in ((a, "a", A_HUB, A_VETH, f"ha{sfx}"), (b, "b", B_HUB, B_VETH, f"hb{sfx}")):
            sh("ip", "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", ns, ns=hub)
            sh("ip", "addr", "add", f"{hub_ip}/24", "dev", name, ns=hub)
            sh("ip", "link", "set", name, "up", ns=hub)
            sh("sysctl", "-qw", f"net.ipv4.conf.{name}.route_localnet=1", ns=hub)
            sh("ip", "addr", "add", f"{ip}/24", "dev", "eth0", ns=ns)
            sh("ip", "link", "set", "eth0", "up", ns=ns)
            sh("ip", "route", "add", "default", "via", hub_ip, ns=ns)
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=hub)
        sh("sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1", ns=hub)
        sh("nft", "add table inet cvtblock", ns=hub)
        sh("nft", "add chain inet cvtblock blk { type filter hook forward priority 0 ; policy accept ; }", ns=hub)
        self.ifnames = {a: f"pa{sfx}", b: f"pb{sfx}"}
        self.keys = {a: keypair(), b: keypair()}

    def start_derper(self, *args):
        port = self.derper_port or 0
        p = Proc(["ip", "netns", "exec", self.hub, PYTHON, DERPER, "--listen", f"127.0.0.1:{port}", *args])
        self.procs.append(p)
        _, (_, line) = p.wait_line(lambda l: l.startswith("listening "), 60, what="derper listening")
        port = int(line.split()[1].rsplit(":", 1)[1])
        if self.derper_port is None:
            self.derper_port = port
            sh("nft", "add table ip cvtnat", ns=self.hub)
            sh("nft", "add chain ip cvtnat prert { type nat hook prerouting priority -100 ; }", ns=self.hub)
            sh("nft", f"add rule ip cvtnat prert tcp dport {DERP_PORT} dnat to 127.0.0.1:{port}", ns=self.hub)
        self.derper = p
        return p

    def start_tool(self, ns, direct=True, extra_peer=""):
        other = self.b if ns == self.a else self.a
        priv, _ = self.keys[ns]
        kf = self.tmp / f"{self.ifnames[ns]}.key"
        kf.write_text(priv + "\n")
        os.chmod(kf, 0o600)
        me_tun, me_port, hub = (A_TUN, A_PORT, A_HUB) if ns == self.a else (B_TUN, B_PORT, B_HUB)
        other_tun, other_ip, other_port = (B_TUN, B_VETH, B_PORT) if ns == self.a else (A_TUN, A_VETH, A_PORT)
        peer = f"key={self.keys[other][1]},allowed={other_tun}/32,region=1{extra_peer}"
        if direct:
            peer += f",endpoint={other_ip}:{other_port}"
        p = Proc(["ip", "netns", "exec", ns, TOOL, "--mode", MODE, "--ifname", self.ifnames[ns],
                  "--private-key-file", str(kf), "--listen-port", str(me_port), "--address", f"{me_tun}/24",
                  "--derp-url", f"http://{hub}:{DERP_PORT}/derp", "--peer", peer, "--verbose"], stdin=subprocess.PIPE)
        self.procs.append(p)
        p.wait_line(lambda l: l.startswith("ready "), 60, what="ready")
        p.peer_key = self.keys[other][1]
        return p

    def block(self):
        sh("nft", "add rule inet cvtblock blk meta l4proto udp drop", ns=self.hub)

    def unblock(self):
        sh("nft", "flush chain inet cvtblock blk", ns=self.hub)

    def ping(self, ns, dst, count=5, deadline=10):
        p = subprocess.run(["ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", str(count), "-i", "0.2",
                            "-W", "1", "-w", str(deadline), dst], capture_output=True, text=True,
                           timeout=deadline + 10)
        return p

    def close(self):
        for i, p in enumerate(reversed(self.procs)):
            p.stop()
            # Kept by pytest (tmp_path) for a look after a failure.
            (self.tmp / f"proc{i}.log").write_text(" ".join(p.argv) + "\n" + p.output() + "\n")


@pytest.fixture
def net(tmp_path):
    with namespace("cvhub") as hub, namespace("cva") as a, namespace("cvb") as b:
        n = Net(hub, a, b, tmp_path)
        try:
            yield n
        finally:
            n.close()


def path_line(tool, kind):
    return lambda l: l.startswith(f"path {tool.peer_key} {kind} ")


def stats(tool):
    """relayed_in, relayed_out of the tool's peer."""
    start = len(tool.lines)
    tool.proc.stdin.write("stats\n")
    tool.proc.stdin.flush()
    _, (_, line) = tool.wait_line(lambda l: l.startswith(f"stats {tool.peer_key} "), 5, start, "stats")
    kv = dict(f.split("=", 1) for f in line.split()[3:])
    return int(kv["relayed_in"]), int(kv["relayed_out"])


def assert_ping(net, ns, dst, count=5, deadline=10, what=""):
    p = net.ping(ns, dst, count, deadline)
    assert p.returncode == 0, f"ping {what} failed:\n{p.stdout}{p.stderr}\nA: {net.procs[-2].output()}"


class pinging:
    """A background ping (so that WireGuard has something to send), killed on exit."""

    def __init__(self, ns, dst, seconds=60):
        self.argv = ["ip", "netns", "exec", ns, "ping", "-n", "-q", "-i", "0.2", "-W", "1", "-w", str(seconds), dst]

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def start_pair(net, direct=(True, True)):
    net.start_derper()
    a = net.start_tool(net.a, direct[0])
    b = net.start_tool(net.b, direct[1])
    a.wait_line(lambda l: l.startswith("derp up"), 30, what="derp up")
    b.wait_line(lambda l: l.startswith("derp up"), 30, what="derp up")
    return a, b


def test_direct(net):
    a, b = start_pair(net)
    a.wait_line(path_line(a, "direct"), 1, what="initial direct path")
    assert_ping(net, net.a, B_TUN, what="direct")
    assert_ping(net, net.b, A_TUN, what="direct")
    # Nothing went through DERP, and the path stayed direct.
    assert stats(a) == (0, 0) and stats(b) == (0, 0)
    assert not [l for _, l in a.lines if path_line(a, "derp")(l)], a.output()
    # SIGTERM deletes the interface.
    assert a.stop() == 0
    assert sh("ip", "link", "show", "dev", net.ifnames[net.a], ns=net.a, check=False).returncode != 0


def test_block_fallback_and_back(net):
    a, b = start_pair(net)
    assert_ping(net, net.a, B_TUN, what="direct")
    # A steady ping, so that WireGuard keeps sending: timestamps (-D) say when DERP carries it.
    pinger = subprocess.Popen(["ip", "netns", "exec", net.a, "ping", "-n", "-D", "-i", "0.1", "-W", "1",
                               "-w", "60", B_TUN], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        start = len(a.lines)
        net.block()
        # From when the rule is surely in place (nft can take a while to start).
        t_block_wall, t_block = time.time(), time.monotonic()
        _, (t_derp, _) = a.wait_line(path_line(a, "derp"), FALLBACK_BOUND, start, "switch to DERP")
        # The first reply after the block arrives through DERP.
        first = None
        deadline = time.monotonic() + FALLBACK_BOUND
        while first is None and time.monotonic() < deadline:
            r, _, _ = select.select([pinger.stdout], [], [], 1)
            if not r:
                continue
            line = pinger.stdout.readline()
            if "bytes from" in line and line.startswith("["):
                ts = float(line[1:line.index("]")])
                if ts > t_block_wall + 0.05:
                    first = ts
        assert first is not None, "no ping reply through DERP"
        print(f"\n[{MODE}] direct path blocked: pathmgr on DERP after {t_derp - t_block:.2f} s, "
              f"ping replies again after {first - t_block_wall:.2f} s")
        assert t_derp - t_block <= FALLBACK_BOUND
    finally:
        pinger.kill()
        pinger.wait()
    assert_ping(net, net.a, B_TUN, what="through DERP")
    assert_ping(net, net.b, A_TUN, what="through DERP")
    rin, rout = stats(a)
    assert rin > 0 and rout > 0, (rin, rout)
    # Relayed traffic alone never makes it look direct (no flapping while blocked).
    assert not [l for _, l in a.lines[start:] if path_line(a, "direct")(l)], a.output()

    start_a, start_b = len(a.lines), len(b.lines)
    t_unblock = time.monotonic()
    net.unblock()
    # Traffic both ways, so that a probe has something to carry.
    with pinging(net.a, B_TUN):
        _, (t_direct, _) = a.wait_line(path_line(a, "direct"), RECOVER_BOUND, start_a, "back to direct")
        b.wait_line(path_line(b, "direct"), RECOVER_BOUND, start_b, "B back to direct")
        print(f"[{MODE}] unblocked: direct again after {t_direct - t_unblock:.2f} s")
    assert_ping(net, net.a, B_TUN, what="direct again")
    # Direct again means DERP carries nothing more.
    before = stats(a)
    assert_ping(net, net.a, B_TUN, what="direct again")
    assert stats(a) == before


def test_derper_restart(net):
    a, b = start_pair(net)
    net.block()
    with pinging(net.a, B_TUN):
        a.wait_line(path_line(a, "derp"), FALLBACK_BOUND, what="switch to DERP")
    assert_ping(net, net.a, B_TUN, what="through DERP")
    start_a, start_b = len(a.lines), len(b.lines)
    net.derper.stop()
    a.wait_line(lambda l: l.startswith("derp down"), 10, start_a, "derp down")
    b.wait_line(lambda l: l.startswith("derp down"), 10, start_b, "derp down")
    assert net.ping(net.a, B_TUN, count=3, deadline=3).returncode != 0, "ping without any path"
    start_a, start_b = len(a.lines), len(b.lines)
    net.start_derper()
    a.wait_line(lambda l: l.startswith("derp up"), 15, start_a, "derp up again")
    b.wait_line(lambda l: l.startswith("derp up"), 15, start_b, "derp up again")
    assert_ping(net, net.a, B_TUN, deadline=15, what="through the restarted DERP")
    assert a.proc.poll() is None and b.proc.poll() is None


def test_no_direct_endpoint_uses_derp(net):
    a, b = start_pair(net, direct=(False, False))
    a.wait_line(path_line(a, "derp"), 1, what="initial DERP path")
    b.wait_line(path_line(b, "derp"), 1, what="initial DERP path")
    assert_ping(net, net.a, B_TUN, what="through DERP")
    assert_ping(net, net.b, A_TUN, what="through DERP")
    rin, rout = stats(a)
    assert rin >= 5 and rout >= 5, (rin, rout)
    # Nothing direct to probe: still DERP.
    assert not [l for _, l in a.lines if path_line(a, "direct")(l)], a.output()


def test_roam_to_direct_without_endpoint(net):
    """A knows no endpoint for B, B knows A's: B's direct packets make A's WireGuard roam to
    B, and A takes that as the direct path."""
    a, b = start_pair(net, direct=(False, True))
    a.wait_line(path_line(a, "derp"), 1, what="initial DERP path")
    assert_ping(net, net.b, A_TUN, what="B to A")
    a.wait_line(path_line(a, "direct"), 5, what="A roamed to direct")
    before = stats(a)
    assert_ping(net, net.a, B_TUN, what="A to B, direct")
    assert stats(a)[1] == before[1], "A still sends through DERP"


@pytest.mark.parametrize("mode", ["garbage", "oversize", "bad-magic"])
def test_hostile_relay(net, mode):
    derper = net.start_derper("--hostile", mode)
    a = net.start_tool(net.a, True)
    b = net.start_tool(net.b, True)
    # Retried: the relay sees connection after connection (it logs each), the tools live on.
    deadline = time.monotonic() + 20
    while len([l for _, l in derper.err if "hostile mode" in l]) < 6:
        assert time.monotonic() < deadline, f"fewer than 6 attempts in 20 s: {derper.output()}"
        time.sleep(0.2)
    assert_ping(net, net.a, B_TUN, what="direct with a hostile relay")
    assert a.proc.poll() is None and b.proc.poll() is None
    if mode == "bad-magic":
        assert not [l for _, l in a.lines if l.startswith("derp up")], a.output()
    # A good relay on the same address is picked up by the retries (backoff up to 30 s).
    net.derper.stop()
    start = len(a.lines)
    net.start_derper()
    a.wait_line(lambda l: l.startswith("derp up"), 40, start, "derp up after the hostile relay")
    assert a.stop() == 0 and b.stop() == 0
