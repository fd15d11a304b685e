"""Two hosts A and B behind a forwarding hub, each in its own network namespace.

    hub (10.77.1.1 / 10.77.2.1, forwards)  -- A (10.77.1.2)
                                            -- B (10.77.2.2)

block_udp() drops forwarded UDP in the hub with nftables (the direct WireGuard path);
TCP (a DERP relay in the hub) still passes.
"""
import contextlib
import errno
import os
import subprocess
import uuid

from netns import namespace, sh

NFT_TABLE = "cvtest"


class Hub:
    def __init__(self, hub, a, b):
        self.hub, self.a, self.b = hub, a, b
        self.addr = {a: "10.77.1.2", b: "10.77.2.2"}
        self.gateway = {a: "10.77.1.1", b: "10.77.2.1"}

    def _drop(self, table, hook, match):
        sh("nft", "-f", "-", ns=self.hub, input=(
            f"table inet {table} {{\n chain {hook} {{\n  type filter hook {hook} priority 0; "
            f"policy accept;\n  {match} drop\n }}\n}}\n"))

    def block_udp(self):
        """Drops all UDP between A and B: the direct WireGuard path."""
        self._drop(NFT_TABLE, "forward", "meta l4proto udp")

    def unblock_udp(self):
        sh("nft", "delete", "table", "inet", NFT_TABLE, ns=self.hub)

    def block_relay(self, port=3340):
        """Drops TCP to @port in the hub itself, where the test relay listens: a connect to
        it hangs (the SYN goes unanswered)."""
        self._drop(NFT_TABLE + "_relay", "input", f"tcp dport {port}")

    def unblock_relay(self):
        sh("nft", "delete", "table", "inet", NFT_TABLE + "_relay", ns=self.hub)

    def spawn(self, ns, argv, **kw):
        return subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)


@contextlib.contextmanager
def hub_pair():
    with namespace("cvh") as hub, namespace("cva") as a, namespace("cvb") as b:
        for i, (ns, dev) in enumerate(((a, "hA"), (b, "hB")), start=1):
            sh("ip", "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", ns, ns=hub)
            sh("ip", "addr", "add", f"10.77.{i}.1/24", "dev", dev, ns=hub)
            sh("ip", "link", "set", dev, "up", ns=hub)
            sh("ip", "addr", "add", f"10.77.{i}.2/24", "dev", "eth0", ns=ns)
            sh("ip", "link", "set", "eth0", "up", ns=ns)
            sh("ip", "route", "add", "default", "via", f"10.77.{i}.1", ns=ns)
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=hub)
        yield Hub(hub, a, b)


@contextlib.contextmanager
def netns_resolv_conf(ns, text):
    """/etc/netns/NS/resolv.conf, which `ip netns exec` mounts over /etc/resolv.conf."""
    d = f"/etc/netns/{ns}"
    try:
        os.makedirs(d, exist_ok=True)
    except OSError as e:
        # The VM harness's / is read-only; `make check-kernel` makes /etc/netns beforehand
        # so that a tmpfs can go over it here.
        if e.errno != errno.EROFS or not os.path.isdir("/etc/netns"):
            raise
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "netns", "/etc/netns"], check=True)
        os.makedirs(d)
    with open(f"{d}/resolv.conf", "w") as f:
        f.write(text)
    try:
        yield f"{d}/resolv.conf"
    finally:
        subprocess.run(["rm", "-rf", d], check=False)


def unique_ifname(prefix):
    """wireguard-go's UAPI sockets are not per namespace: names must differ across tests."""
    return f"{prefix}{uuid.uuid4().hex[:6]}"
