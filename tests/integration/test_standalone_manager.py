"""Standalone mode driven by a manager: `codervpnd serve --config F`, Start naming file://F.

With --network-by=manager the manager gets the NetworkSettingsRequest as an RPC and applies
it itself; its failure response fails the Start with its message.
"""
import os
import subprocess
import tempfile
import time

import pytest

import vpn_pb2
import vpnpeer
import wgutil
from childlog import ChildLog
from conftest import CODERVPNCTL, CODERVPND
from netns import ipj, namespace, wg_mode
from topology import unique_ifname


@pytest.fixture
def daemon():
    procs = []

    def start(*extra):
        ns_cm = namespace("cvsm")
        ns = ns_cm.__enter__()
        tmp = tempfile.mkdtemp(prefix="cvsm-")
        ifname = unique_ifname("cvm")
        conf = os.path.join(tmp, "codervpnd.conf")
        with open(conf, "w") as f:
            f.write("\n".join([
                "[Interface]", f"Name = {ifname}", f"PrivateKeyFile = {tmp}/private.key",
                "Address = 100.64.1.1/32", "Address = fd7a:115c:a1e0::1/128", f"WireGuard = {wg_mode()}",
                "[DNS]", "Mode = off",
                "[Peer]", f"PublicKey = {wgutil.pubkey(wgutil.genkey())}", "AllowedIPs = 100.64.1.2/32",
                "Name = dev.ws.me.coder", "Workspace = ws", "Agent = dev", ""]))
        sock = os.path.join(tmp, "codervpnd.sock")
        log = ChildLog()
        p = subprocess.Popen(["ip", "netns", "exec", ns, CODERVPND, "--log-target=stderr", "serve", "--config",
                              conf, "--socket", sock, "--group", "", *extra], stderr=log)
        procs.append((p, ns_cm, tmp))
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            assert p.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        return ns, ifname, conf, sock, log

    yield start
    for p, ns_cm, tmp in procs:
        if p.poll() is None:
            p.terminate()
            p.wait(20)
        ns_cm.__exit__(None, None, None)
        subprocess.run(["rm", "-rf", tmp], check=False)


def links(ns):
    return [l["ifname"] for l in ipj(ns, "link", "show")]


def addresses(ns, ifname):
    return sorted(a["local"] for l in ipj(ns, "addr", "show") if l["ifname"] == ifname
                  for a in l.get("addr_info", []) if a.get("scope") != "link")


def manager(sock):
    m = vpnpeer.Peer.connect(sock, "manager", "1.3")
    assert m.handshake().startswith("codervpn tunnel")
    return m


def test_start_names_the_config_and_stop_leaves_nothing(daemon):
    ns, ifname, conf, sock, log = daemon()
    m = manager(sock)
    r = m.call(start=vpn_pb2.StartRequest(coder_url="file://" + conf), timeout=30)
    assert r.start.success, r.start.error_message
    assert ifname in links(ns)
    assert addresses(ns, ifname) == ["100.64.1.1", "fd7a:115c:a1e0::1"]
    peers = m.call(get_peer_update=vpn_pb2.GetPeerUpdate())
    assert [a.name for a in peers.peer_update.upserted_agents] == ["dev"]
    assert list(peers.peer_update.upserted_agents[0].fqdn) == ["dev.ws.me.coder"]
    r = m.call(stop=vpn_pb2.StopRequest(), timeout=30)
    assert r.stop.success
    assert ifname not in links(ns)


def test_codervpnctl_start_config(daemon):
    ns, ifname, conf, sock, log = daemon()
    ctl = lambda *a: subprocess.run([CODERVPNCTL, "--socket", sock, *a], capture_output=True, text=True, timeout=30)
    p = ctl("start", "--config", conf)
    assert p.returncode == 0, p.stderr
    assert ifname in links(ns)
    p = ctl("start", "--config", conf + ".other")
    assert p.returncode == 1   # a Start naming another file is a Coder URL to this daemon: refused
    assert ctl("stop").returncode == 0
    assert ifname not in links(ns)


def test_other_urls_are_refused(daemon):
    ns, ifname, conf, sock, log = daemon()
    m = manager(sock)
    r = m.call(start=vpn_pb2.StartRequest(coder_url="https://coder.example.com", api_token="t"), timeout=30)
    assert not r.start.success and "standalone" in r.start.error_message
    m = manager(sock)
    r = m.call(start=vpn_pb2.StartRequest(coder_url="file:///etc/passwd", api_token="t"), timeout=30)
    assert not r.start.success and "invalid coder url" in r.start.error_message
    assert ifname not in links(ns)


def network_request(m, timeout=30):
    """The tunnel's NetworkSettingsRequest RPC, skipping logs and peer updates."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = m.recv(timeout)
        if msg.WhichOneof("msg") == "network_settings":
            return msg
    raise AssertionError("no NetworkSettingsRequest")


def answer(m, req, success, error=""):
    reply = vpn_pb2.ManagerMessage()
    reply.rpc.response_to = req.rpc.msg_id
    reply.network_settings.success = success
    reply.network_settings.error_message = error
    m.send(reply)


def test_manager_applies_network(daemon):
    ns, ifname, conf, sock, log = daemon("--network-by=manager")
    m = manager(sock)
    start_id = m.request(start=vpn_pb2.StartRequest(coder_url="file://" + conf))
    req = network_request(m)
    ns_req = req.network_settings
    assert list(ns_req.ipv4_settings.addrs) == ["100.64.1.1"]
    assert [(r.destination, r.mask) for r in ns_req.ipv4_settings.included_routes] == [("100.64.1.2", "255.255.255.255")]
    assert list(ns_req.ipv6_settings.addrs) == ["fd7a:115c:a1e0::1"]
    assert ns_req.mtu == 1280
    assert req.rpc.msg_id > 0
    answer(m, req, False, "the NetworkManager plugin said no")
    r = m.recv_response(start_id, timeout=30)
    assert not r.start.success and r.start.error_message == "the NetworkManager plugin said no"
    assert ifname not in links(ns)   # a failed Start leaves nothing

    m = manager(sock)
    start_id = m.request(start=vpn_pb2.StartRequest(coder_url="file://" + conf))
    answer(m, network_request(m), True)
    r = m.recv_response(start_id, timeout=30)
    assert r.start.success, r.start.error_message
    # The link and its peers are codervpnd's; addresses and routes were the manager's to set.
    assert ifname in links(ns) and addresses(ns, ifname) == []
    assert m.call(stop=vpn_pb2.StopRequest(), timeout=30).stop.success
    assert ifname not in links(ns)
