"""The standalone engine end to end: two `codervpnd up` from config files in two namespaces.

Host: wireguard-go. In the VM (make check-kernel): kernel WireGuard.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from childlog import ChildLog
from conftest import CODERVPND, CODERVPNCTL
from netns import ipj, sh, wg_mode
from polling import wait_until
from topology import hub_pair, netns_resolv_conf, unique_ifname
import wgutil

DERPER = os.path.join(os.path.dirname(__file__), "..", "tools", "derper.py")
TABLE = "7477"
RESOLV = "# test resolv.conf\nnameserver 10.77.0.53\n"
NAME = {"a": "dev.alice-ws.me.coder", "b": "dev.bob-ws.me.coder"}
TUN = {"a": "100.64.0.1", "b": "100.64.0.2"}


class Node:
    def __init__(self, hub, ns, name, tmp):
        self.hub, self.ns, self.name, self.tmp = hub, ns, name, tmp
        self.ifname = unique_ifname("cv" + name)
        self.key = os.path.join(tmp, f"{name}.key")
        self.conf = os.path.join(tmp, f"{name}.conf")
        self.socket = os.path.join(tmp, f"{name}.sock")
        self.log_file = ChildLog()
        self.proc = None
        priv = wgutil.genkey()
        fd = os.open(self.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (priv + "\n").encode())
        os.close(fd)
        self.pub = wgutil.pubkey(priv)

    def write_config(self, peer, extra_peer_lines=(), derp=True, broken=None):
        other = "b" if self.name == "a" else "a"
        lines = [
            "[Interface]", f"Name = {self.ifname}", f"PrivateKeyFile = {self.key}", "ListenPort = 51820",
            f"Address = {TUN[self.name]}/32", f"WireGuard = {wg_mode()}", "",
            "[DNS]", "Mode = file", "Address = 100.100.100.100", "Domain = me.coder", "",
        ]
        if derp:
            lines += ["[DERP]", f"URL = http://{self.hub.gateway[self.ns]}:3340", ""]
        lines += [
            "[Peer]", f"PublicKey = {peer.pub}", f"AllowedIPs = {TUN[other]}/32",
            f"Endpoint = {self.hub.addr[peer.ns]}:51820", f"Name = {NAME[other]}",
            f"Workspace = {NAME[other].split('.')[1]}", "Agent = dev", *extra_peer_lines,
        ]
        if broken:
            lines.append(broken)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, *extra):
        self.log_file.clear()
        self.proc = self.hub.spawn(self.ns, [CODERVPND, "--log-target=stderr", "--log-level=debug", "up",
                                             "--config", self.conf, "--socket", self.socket, "--group", "",
                                             *extra], stderr=self.log_file)
        wait_until(f"{self.ifname} up", lambda: self.proc.poll() is not None or "starting -> started" in self.log())
        assert self.proc.poll() is None, self.log()
        assert self.has_address()

    def has_address(self):
        return any(a.get("local") == TUN[self.name]
                   for link in ipj(self.ns, "addr", "show") if link["ifname"] == self.ifname
                   for a in link.get("addr_info", []))

    def log(self):
        return self.log_file.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            return self.proc.wait(30)
        return None

    def ctl(self, *args):
        return subprocess.run([CODERVPNCTL, "--socket", self.socket, *args], capture_output=True, text=True,
                              timeout=20)

    def agents(self):
        p = self.ctl("--json", "peers")
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)["agents"]

    def ping(self, target, count=3, deadline=10):
        return sh("ping", "-c", str(count), "-i", "0.2", "-w", str(deadline), target, ns=self.ns, check=False)

    def wg_dump(self):
        return wgutil.in_ns(self.ns, "wg", "show", self.ifname, "dump").stdout


def leftovers(node):
    """What of codervpnd is still in @node's namespace."""
    left = []
    if any(l["ifname"] == node.ifname for l in ipj(node.ns, "link", "show")):
        left.append("link")
    if any(r.get("priority") in (5269, 5270) for r in ipj(node.ns, "rule", "show")):
        left.append("rule")
    if sh("ip", "route", "show", "table", TABLE, ns=node.ns, check=False).stdout.strip():
        left.append("routes")
    with open(f"/etc/netns/{node.ns}/resolv.conf") as f:
        if f.read() != RESOLV:
            left.append("resolv.conf")
    return left


@pytest.fixture
def pair():
    with hub_pair() as hub, tempfile.TemporaryDirectory(prefix="cvengine-") as tmp, \
            netns_resolv_conf(hub.a, RESOLV), netns_resolv_conf(hub.b, RESOLV):
        relay = hub.spawn(hub.hub, [sys.executable, DERPER, "--listen", "0.0.0.0:3340"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        a, b = Node(hub, hub.a, "a", tmp), Node(hub, hub.b, "b", tmp)
        a.write_config(b)
        b.write_config(a)
        try:
            yield hub, a, b
        finally:
            for n in (a, b):
                if n.stop() is None and n.proc:
                    n.proc.wait(10)
            relay.kill()
            relay.wait(10)


def test_names_resolve_and_traffic_flows_direct(pair):
    hub, a, b = pair
    a.start()
    b.start()
    got = sh("getent", "hosts", NAME["b"], ns=a.ns, check=False)
    assert got.returncode == 0 and got.stdout.split()[0] == TUN["b"], (got, a.log())
    p = a.ping(NAME["b"], count=1)
    assert p.returncode == 0, (p.stdout, a.log(), b.log())
    # Asked right after the first packet, the handshake it needed is there (not a tick later).
    agents = a.agents()
    assert agents and agents[0].get("last_handshake_unix"), agents
    assert agents[0]["name"] == "dev" and agents[0]["fqdn"] == [NAME["b"]]
    assert agents[0]["ip_addrs"] == [TUN["b"]]
    assert agents[0]["last_ping"]["did_p2p"] is True
    assert "Created " + a.ifname in a.log()
    # Anyone may read the public key of the running tunnel; the private key is never shown.
    got = subprocess.run([CODERVPNCTL, "pubkey", "--interface", a.ifname], capture_output=True, text=True)
    assert got.returncode == 0 and got.stdout == a.pub + "\n", got
    assert oct(os.stat(a.key).st_mode & 0o777) == "0o600"


def test_blocked_udp_falls_back_to_derp_and_back(pair):
    hub, a, b = pair
    a.start()
    b.start()
    assert a.ping(TUN["b"]).returncode == 0
    hub.block_udp()
    t0 = time.monotonic()
    # A continuous ping: it succeeds again once both sides moved to the relay.
    wait_until("traffic through DERP", lambda: a.ping(TUN["b"], count=1, deadline=2).returncode == 0, timeout=30)
    print(f"direct path lost -> traffic via DERP in {time.monotonic() - t0:.1f} s")
    assert "path is now DERP" in a.log() or "path is now DERP" in b.log()
    # Relayed, the path holds: a steady ping loses (almost) nothing.
    p = sh("ping", "-c", "20", "-i", "0.2", "-W", "1", TUN["b"], ns=a.ns, check=False)
    received = int(p.stdout.split(" received")[0].rsplit(" ", 1)[1])
    assert received >= 18, (p.stdout, a.log(), b.log())
    hub.unblock_udp()
    # WireGuard learns nothing without traffic: keep pinging while the path is probed.
    wait_until("back to direct", lambda: a.ping(TUN["b"], count=1, deadline=1) and "path is now direct" in a.log(),
               timeout=60)
    assert a.ping(TUN["b"]).returncode == 0


SINK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 5001))
s.settimeout(20)
n = 0
print("listening", flush=True)
try:
    while True:
        s.recv(2048)
        n += 1
except socket.timeout:
    pass
print(n, flush=True)
"""

SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(160):
    s.sendto(b"x" * 200, (sys.argv[1], 5001))
    time.sleep(0.05)
"""


def test_one_way_flow_stays_direct(pair):
    """8 s of UDP from A to a sink in B that never answers: WireGuard hears nothing back from
    B, but the checks through the tunnel (answered by B's kernel) keep the path direct."""
    hub, a, b = pair
    a.start()
    b.start()
    assert a.ping(TUN["b"]).returncode == 0
    sink = hub.spawn(b.ns, [sys.executable, "-c", SINK, TUN["b"]], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout.readline().strip() == "listening"
        got = sh(sys.executable, "-c", SENDER, TUN["b"], ns=a.ns)
        assert got.returncode == 0, got
        assert a.agents()[0]["last_ping"]["did_p2p"] is True
    finally:
        sink.kill()
        sink.wait(10)
    assert "path is now DERP" not in a.log(), a.log()


def test_hanging_relay_connect_blocks_nothing(pair):
    """With TCP to the relay dropped, every DERP connect hangs until its 10 s timeout. The
    tunnel comes up, the control socket answers and traffic flows directly all the same, and
    once the relay is reachable DERP connects."""
    hub, a, b = pair
    hub.block_relay()
    a.start()
    p = a.ctl("--json", "peers")
    assert p.returncode == 0, p.stderr
    # All of that happened while the first connect attempt was still hanging.
    assert "cannot connect to the DERP server" not in a.log(), a.log()
    b.start()
    assert a.ping(TUN["b"]).returncode == 0
    wait_until("the connect timeout", lambda: "cannot connect to the DERP server" in a.log(), timeout=30)
    hub.unblock_relay()
    wait_until("DERP connected", lambda: "DERP region 1 connected" in a.log(), timeout=60)
    assert a.proc.poll() is None


def test_sighup_applies_one_changed_peer(pair):
    hub, a, b = pair
    a.start()
    b.start()
    assert a.ping(TUN["b"]).returncode == 0
    before = a.wg_dump()
    a.write_config(b, extra_peer_lines=["AllowedIPs = 100.64.9.0/24"])
    a.proc.send_signal(signal.SIGHUP)
    wait_until("the reload", lambda: "Configuration reloaded" in a.log())
    assert "100.64.9.0/24" in a.wg_dump() and before != a.wg_dump()
    routes = sh("ip", "route", "show", "table", TABLE, ns=a.ns).stdout
    assert "100.64.9.0/24" in routes
    reload_log = a.log().split("Received SIGHUP")[-1]
    assert f"WireGuard {a.ifname}: 1 message(s), 1 peer entries" in reload_log, reload_log
    assert a.ping(TUN["b"]).returncode == 0


def test_invalid_config_on_sighup_keeps_running_state(pair):
    hub, a, b = pair
    a.start()
    b.start()
    before = a.wg_dump()
    a.write_config(b, broken="Bogus = 1")
    a.proc.send_signal(signal.SIGHUP)
    wait_until("the refusal", lambda: "Not reloading" in a.log())
    line = [l for l in a.log().splitlines() if "Not reloading" in l][0]
    assert f"{a.conf}:" in line and "Bogus" in line, line
    assert a.proc.poll() is None and a.wg_dump() == before
    assert a.ping(TUN["b"]).returncode == 0


def test_invalid_config_at_start_names_file_and_line(pair):
    hub, a, b = pair
    a.write_config(b, broken="AllowedIPs = 300.1.2.3/32")
    p = subprocess.run(["ip", "netns", "exec", a.ns, CODERVPND, "--log-target=stderr", "up", "--config", a.conf,
                        "--no-socket"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    n = len(open(a.conf).read().splitlines())
    assert f"{a.conf}:{n}:" in p.stderr, p.stderr
    assert leftovers(a) == []


def test_sigterm_leaves_nothing(pair):
    hub, a, b = pair
    a.start()
    with open(f"/etc/netns/{a.ns}/resolv.conf") as f:
        assert "100.100.100.100" in f.read()
    assert leftovers(a) == ["link", "rule", "routes", "resolv.conf"]
    assert a.stop() == 0, a.log()
    assert leftovers(a) == []
    assert not os.path.exists(f"/run/codervpnd/{a.ifname}.pub")


def test_kill9_then_restart_leaves_nothing_stale(pair):
    hub, a, b = pair
    a.start()
    b.start()
    a.stop(signal.SIGKILL)
    assert "link" in leftovers(a)
    a.start()   # removes what the killed one left, then comes up again
    assert a.ping(TUN["b"]).returncode == 0, a.log()
    assert a.stop() == 0
    assert leftovers(a) == []


def test_kill9_then_cleanup_command(pair):
    hub, a, b = pair
    a.start()
    a.stop(signal.SIGKILL)
    p = subprocess.run(["ip", "netns", "exec", a.ns, CODERVPND, "--log-target=stderr", "cleanup", "--state",
                        f"/run/codervpnd/{a.ifname}.state"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert leftovers(a) == []   # resolv.conf included


def test_environment_only_sidecar(pair):
    """No file, no socket, DNS off: the container sidecar shape."""
    hub, a, b = pair
    b.start()
    env = dict(os.environ, CODERVPND_INTERFACE_NAME=a.ifname, CODERVPND_INTERFACE_PRIVATEKEYFILE=a.key,
               CODERVPND_INTERFACE_LISTENPORT="51820", CODERVPND_INTERFACE_ADDRESS=TUN["a"] + "/32",
               CODERVPND_INTERFACE_WIREGUARD=wg_mode(), CODERVPND_DNS_MODE="off",
               CODERVPND_PEER0_PUBLICKEY=b.pub, CODERVPND_PEER0_ALLOWEDIPS=TUN["b"] + "/32",
               CODERVPND_PEER0_ENDPOINT=hub.addr[b.ns] + ":51820")
    a.proc = hub.spawn(a.ns, [CODERVPND, "--log-target=stderr", "up", "--no-socket"], env=env, stderr=a.log_file)
    wait_until("the link", lambda: a.proc.poll() is not None or a.has_address())
    assert a.proc.poll() is None, a.log()
    assert a.ping(TUN["b"]).returncode == 0, a.log()
    assert a.stop() == 0
    assert leftovers(a) == []
