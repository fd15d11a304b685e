"""Kernel WireGuard through netlink/wg.h (generic netlink), driven with wgtool.

Runs where the kernel has WireGuard: `make check-kernel` runs it in the VM harness.
On a host without the module it is skipped (the VM run is where it counts)."""
import os

import pytest

from netns import namespace, sh
from wgutil import dump_rows, genkey, many_peers, pubkey, random_key, sync_stats, wgtool, write_config

pytestmark = pytest.mark.skipif(not os.path.exists("/sys/module/wireguard"),
                                reason="no kernel WireGuard here; runs in the VM (make check-kernel)")






def empty_device(ns, tmp_path):
    """Removes every peer at once: deleting a link that holds thousands waits out an RCU
    grace period per peer, which takes minutes under TCG."""
    conf = write_config(tmp_path / "empty.conf", genkey(), listen_port=51820)
    wgtool(ns, "--mode", "kernel", "wgk0", "set", conf)


def test_link_create_delete(tmp_path):
    with namespace() as ns:
        wgtool(ns, "--mode", "kernel", "wgk0", "create")
        assert "wireguard" in sh("ip", "-d", "link", "show", "wgk0", ns=ns).stdout
        p = wgtool(ns, "--mode", "kernel", "wgk0", "create", check=False)
        assert p.returncode == 1 and "exists" in p.stderr
        wgtool(ns, "--mode", "kernel", "wgk0", "delete")
        assert "wgk0" not in sh("ip", "-br", "link", ns=ns).stdout
        assert wgtool(ns, "--mode", "kernel", "wgk0", "delete", check=False).returncode == 1


def test_many_peers_split_across_messages_and_merged_back(tmp_path):
    peers = many_peers(1500)
    # One peer whose allowed IPs cannot fit one netlink message: split, then merged on read.
    peers.append({"public_key": random_key(),
                  "allowed_ips": [f"172.{16 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}/32" for i in range(5000)]})
    conf = tmp_path / "big.conf"
    write_config(conf, genkey(), listen_port=51820, peers=peers)
    with namespace() as ns:
        wgtool(ns, "--mode", "kernel", "wgk0", "create")
        p = wgtool(ns, "--mode", "kernel", "wgk0", "sync", str(conf))
        stats = dict(kv.split("=") for kv in sync_stats(p.stderr).split())
        assert int(stats["messages"]) >= 4, stats   # ~250 KB of attributes in messages of < 64 KiB
        assert int(stats["peers"]) > len(peers), stats   # the split peer is sent in several messages

        theirs = dump_rows(sh("wg", "show", "wgk0", "dump", ns=ns).stdout)
        ours = dump_rows(wgtool(ns, "--mode", "kernel", "wgk0", "show").stdout)
        assert len(theirs) == len(peers)
        assert ours == theirs
        big = [row for row in theirs if row[0] == peers[-1]["public_key"]][0]
        assert len(big[3].split(",")) == 5000

        # Nothing changed: nothing sent. One peer changed: one peer in one message.
        p = wgtool(ns, "--mode", "kernel", "wgk0", "sync", str(conf))
        assert sync_stats(p.stderr) == "messages=0 peers=0"
        peers[700]["allowed_ips"] = ["10.250.0.1/32"]
        write_config(conf, genkey(), listen_port=51820, peers=peers)
        p = wgtool(ns, "--mode", "kernel", "wgk0", "sync", str(conf))
        # A new private key and one peer: still a single message.
        assert sync_stats(p.stderr) == "messages=1 peers=1"
        row = [r for r in dump_rows(sh("wg", "show", "wgk0", "dump", ns=ns).stdout)
               if r[0] == peers[700]["public_key"]][0]
        assert row[3] == "10.250.0.1/32"
        empty_device(ns, tmp_path)


def test_handshake_and_ping_between_namespaces(tmp_path):
    with namespace("wga") as a, namespace("wgb") as b:
        sh("ip", "link", "add", "va", "netns", a, "type", "veth", "peer", "name", "vb", "netns", b)
        sh("ip", "addr", "add", "10.99.0.1/24", "dev", "va", ns=a)
        sh("ip", "addr", "add", "10.99.0.2/24", "dev", "vb", ns=b)
        sh("ip", "link", "set", "va", "up", ns=a)
        sh("ip", "link", "set", "vb", "up", ns=b)
        ka, kb = genkey(), genkey()
        write_config(tmp_path / "a.conf", ka, listen_port=51820,
                     peers=[{"public_key": pubkey(kb), "endpoint": "10.99.0.2:51820", "allowed_ips": ["10.98.0.2/32"]}])
        write_config(tmp_path / "b.conf", kb, listen_port=51820,
                     peers=[{"public_key": pubkey(ka), "endpoint": "10.99.0.1:51820", "allowed_ips": ["10.98.0.1/32"]}])
        for ns, conf, addr in ((a, "a.conf", "10.98.0.1/24"), (b, "b.conf", "10.98.0.2/24")):
            wgtool(ns, "--mode", "kernel", "wg0", "create")
            wgtool(ns, "--mode", "kernel", "wg0", "set", str(tmp_path / conf))
            sh("ip", "addr", "add", addr, "dev", "wg0", ns=ns)
            sh("ip", "link", "set", "wg0", "up", ns=ns)
        assert sh("ping", "-c", "3", "-W", "5", "10.98.0.2", ns=a, check=False).returncode == 0
        row = dump_rows(wgtool(a, "--mode", "kernel", "wg0", "show").stdout)[0]
        # public key, psk, endpoint, allowed, handshake, rx, tx, keepalive
        assert row[2] == "10.99.0.2:51820"
        assert int(row[4]) > 0 and int(row[5]) > 0 and int(row[6]) > 0


def test_dump_retried_when_the_device_changes_underneath(tmp_path):
    """The kernel ends a dump with EINTR when peers change mid-dump; the read starts over."""
    import subprocess
    import time
    peers = many_peers(10000)
    conf = write_config(tmp_path / "big.conf", genkey(), listen_port=51820, peers=peers)
    with namespace() as ns:
        wgtool(ns, "--mode", "kernel", "wgk0", "create")
        wgtool(ns, "--mode", "kernel", "wgk0", "set", conf)
        churn = subprocess.Popen(
            ["ip", "netns", "exec", ns, "sh", "-c",
             # Every 0.4 s, as long as a 10,000-peer dump can take under TCG: many dumps are
             # interrupted once, and each read must still come back whole.
             f"while :; do wg set wgk0 peer {peers[0]['public_key']} allowed-ips 10.200.0.1/32; sleep 0.4; "
             f"wg set wgk0 peer {peers[0]['public_key']} allowed-ips 10.200.0.2/32; sleep 0.4; done"])
        try:
            deadline = time.monotonic() + 120
            for _ in range(10):
                assert time.monotonic() < deadline
                rows = dump_rows(wgtool(ns, "--mode", "kernel", "wgk0", "show").stdout)
                assert len(rows) == len(peers)
        finally:
            churn.kill()
            churn.wait(10)
        empty_device(ns, tmp_path)
