"""Tests for agent/derpclient (regions, idle close, reconnect with backoff, WebSocket
fallback) through tests/tools/derpclient-tool against tests/tools/derper.py.

Run with /usr/bin/python3 -m pytest; DERPCLIENT_TOOL names the binary (default
build/tests/derpclient-tool). Everything is on loopback; every timer is shortened
through the tool's options.
"""
import json
import os
import re
import socket
import subprocess
import time

import pytest

pytest.importorskip("nacl.public", reason="python3-nacl not installed")

import derpclient as dc  # noqa: E402
import derptest  # noqa: E402
from derptest import Derper, make_cert, kill_processes  # noqa: E402,F401  (autouse fixture)

TOOL = derptest.tool_binary("DERPCLIENT_TOOL", "derpclient-tool")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def node(region, name, port, host="localhost", ipv4="127.0.0.1"):
    return {"Name": name, "RegionID": region, "HostName": host, "IPv4": ipv4, "IPv6": "none",
            "DERPPort": port, "ForceHTTP": True}


def write_map(tmp_path, regions, scores=None):
    """@regions: {id: [node, ...]}."""
    m = {"Regions": {str(rid): {"RegionID": rid, "RegionCode": "r%d" % rid,
                                "RegionName": "Region %d" % rid, "Nodes": nodes}
                     for rid, nodes in regions.items()}}
    if scores:
        m["HomeParams"] = {"RegionScore": {str(k): v for k, v in scores.items()}}
    path = tmp_path / "derpmap.json"
    path.write_text(json.dumps(m))
    return path


class Tool(derptest.Tool):
    """derpclient-tool with the DERP map @map_path."""

    def __init__(self, tmp_path, map_path, extra=()):
        super().__init__([TOOL, "--map", str(map_path)], tmp_path, "tool.key", extra)

    def send_until_sent(self, region, dst, data_hex, timeout=5.0):
        """Sends until the client has the region up (the first sends are -EAGAIN)."""
        deadline = time.monotonic() + timeout
        while True:
            self.cmd("status %d" % region)
            st = self.expect("status ")
            if st.split()[2] == "ready":
                self.cmd("send %d %s %s" % (region, dst, data_hex))
                return
            assert time.monotonic() < deadline, "region %d never ready:\n%s" % (region, self.stderr())
            time.sleep(0.05)

    def quit(self):
        self.cmd("quit")
        assert self.proc.wait(10) == 0, self.stderr()
        err = self.stderr()
        assert "AddressSanitizer" not in err and "runtime error" not in err, err
        assert self.pub not in err and self.priv.encode().hex() not in err   # keys never logged


def py_client(d, **kw):
    c = dc.DerpClient(d.host, d.port, **kw)
    c.connect()
    return c


def test_home_region_connects_and_traffic(tmp_path):
    d1, d2 = Derper(), Derper()
    m = write_map(tmp_path, {1: [node(1, "1a", d1.port)], 2: [node(2, "2a", d2.port)]},
                  scores={1: 2.0, 2: 0.5})    # lower score = preferred
    t = Tool(tmp_path, m, ("--ping-ms", "100"))
    assert t.expect("home ") == "home 2"
    assert t.expect("up ") == "up 2"
    t.wait_log(r"DERP region 2: connected to node 2a \(http://localhost:%d/derp\)" % d2.port)
    with py_client(d2) as py:
        t.cmd("send 0 %s 68656c6c6f" % py.pub.hex())
        src, pkt = py.recv_packet()
        assert src.hex() == t.pub and pkt == b"hello"
        py.send_packet(bytes.fromhex(t.pub), b"back")
        assert t.expect("recv ") == "recv 2 %s %s" % (py.pub.hex(), b"back".hex())
    # Latency from the periodic pings.
    deadline = time.monotonic() + 5
    while True:
        t.cmd("status 2")
        st = t.expect("status ").split()
        if st[2] == "ready" and int(st[3]) > 0:
            assert int(st[3]) < 2_000_000
            break
        assert time.monotonic() < deadline, st
        time.sleep(0.1)
    # Region 1 was never used: not connected.
    t.cmd("status 1")
    assert t.expect("status ") == "status 1 down 0"
    t.cmd("send 7 %s 00" % ("ab" * 32))
    assert t.expect("error ") == "error send: No such file or directory"
    t.quit()


def test_configured_home_and_node_priority(tmp_path):
    """--home wins over scores; a dead first node is skipped for the next one."""
    d = Derper()
    dead = free_port()
    m = write_map(tmp_path, {1: [node(1, "1a", dead), node(1, "1b", d.port)],
                             2: [node(2, "2a", d.port)]}, scores={2: 0.1})
    t = Tool(tmp_path, m, ("--home", "1"))
    assert t.expect("home ") == "home 1"
    assert t.expect("up ", 10) == "up 1"
    err = t.stderr()
    assert "DERP region 1: node 1a (http://localhost:%d/derp): cannot connect" % dead in err, err
    assert "DERP region 1: connected to node 1b" in err, err
    t.quit()


def test_second_region_opens_and_idles(tmp_path):
    d1, d2 = Derper(), Derper()
    m = write_map(tmp_path, {1: [node(1, "1a", d1.port)], 2: [node(2, "2a", d2.port)]})
    idle = 1.5
    t = Tool(tmp_path, m, ("--idle-ms", str(int(idle * 1000))))
    assert t.expect("home ") == "home 1"    # no scores: the lowest RegionID
    assert t.expect("up ") == "up 1"
    with py_client(d2) as py:
        # The first send to region 2 is dropped (-EAGAIN) and opens it.
        t.cmd("send 2 %s 01" % py.pub.hex())
        assert t.expect("error ") == "error send: Resource temporarily unavailable"
        assert t.expect("up ") == "up 2"
        t.send_until_sent(2, py.pub.hex(), "02")
        src, pkt = py.recv_packet()
        assert src.hex() == t.pub and pkt == b"\x02"
        last_use = time.monotonic()
        # A reply keeps it in use too.
        py.send_packet(bytes.fromhex(t.pub), b"r")
        assert t.expect("recv ") == "recv 2 %s 72" % py.pub.hex()
        last_use = time.monotonic()
        assert t.expect("down ", idle + 5) == "down 2"
        waited = time.monotonic() - last_use
        assert idle * 0.8 <= waited <= idle + 3, waited
    t.wait_log(r"DERP region 2: idle for 1\.5 s, closing")
    # The home region is kept.
    t.cmd("status 1")
    assert t.expect("status ").startswith("status 1 ready ")
    # Sending again reopens region 2.
    t.cmd("send 2 %s 03" % ("cd" * 32))
    assert t.expect("error ") == "error send: Resource temporarily unavailable"
    assert t.expect("up ") == "up 2"
    t.quit()


def test_reconnect_with_backoff(tmp_path):
    keyf = tmp_path / "derper.key"
    d = Derper(key_file=keyf)
    port = d.port
    m = write_map(tmp_path, {1: [node(1, "1a", port)]})
    t = Tool(tmp_path, m, ("--backoff-min-ms", "100", "--backoff-max-ms", "800"))
    assert t.expect("up ") == "up 1"
    d.kill()
    assert t.expect("down ", 5) == "down 1"
    # Let it fail a few times; the delays grow and stay within max + 25 %.
    deadline = time.monotonic() + 15
    while True:
        delays = [float(x) for x in re.findall(r"DERP region 1: reconnecting in ([0-9.]+) s",
                                               t.stderr())]
        if len(delays) >= 6:
            break
        assert time.monotonic() < deadline, t.stderr()
        time.sleep(0.1)
    assert t.proc.poll() is None
    assert 0.075 <= delays[0] <= 0.125, delays
    # Doubling with +-25 % jitter: each of the first steps is larger than the last.
    assert delays[0] < delays[1] < delays[2], delays
    assert max(delays) <= 0.8 * 1.25 + 1e-3, delays
    assert delays[5] >= 0.8 * 0.75 - 1e-3, delays     # reached the cap
    assert "Connection refused" in t.stderr()
    # The relay comes back on the same port: the client reconnects, traffic flows.
    d = Derper(port=port, key_file=keyf)
    assert t.expect("up ", 5) == "up 1"
    with py_client(d) as py:
        t.cmd("send 1 %s 7a" % py.pub.hex())
        src, pkt = py.recv_packet()
        assert src.hex() == t.pub and pkt == b"z"
    t.quit()


def test_ws_only_relay_falls_back_to_websocket(tmp_path):
    d = Derper("--ws-only", "--ws-split", "500")
    m = write_map(tmp_path, {1: [node(1, "1a", d.port)]})
    t = Tool(tmp_path, m)
    assert t.expect("up ", 10) == "up 1"
    err = t.stderr()
    assert "DERP upgrade refused: HTTP/1.1 426" in err and "switching to WebSocket" in err, err
    assert "connected to node 1a (http://localhost:%d/derp, WebSocket)" % d.port in err, err
    with py_client(d, websocket=True) as py:
        big = os.urandom(65536)
        t.cmd("send 1 %s %s" % (py.pub.hex(), big.hex()))
        src, pkt = py.recv_packet()
        assert src.hex() == t.pub and pkt == big
        py.send_packet(bytes.fromhex(t.pub), big)
        assert t.expect("recv ", 10) == "recv 1 %s %s" % (py.pub.hex(), big.hex())
    t.quit()


def test_force_websocket(tmp_path):
    d = Derper()
    m = write_map(tmp_path, {1: [node(1, "1a", d.port)]})
    t = Tool(tmp_path, m, ("--force-websocket",))
    assert t.expect("up ") == "up 1"
    assert "WebSocket)" in t.stderr()
    with py_client(d) as py:
        py.send_packet(bytes.fromhex(t.pub), b"ws")
        assert t.expect("recv ") == "recv 1 %s 7773" % py.pub.hex()
    t.quit()
    # A relay that refuses WebSocket: force_websocket does not fall back to plain DERP.
    d2 = Derper("--no-ws")
    m = write_map(tmp_path, {1: [node(1, "1a", d2.port)]})
    t = Tool(tmp_path, m, ("--force-websocket", "--backoff-min-ms", "50"))
    t.wait_log(r"WebSocket upgrade refused: HTTP/1\.1 426")
    t.wait_log(r"reconnecting in")
    t.cmd("status 1")
    assert t.expect("status ") == "status 1 down 0"
    t.quit()


def test_dead_relay(tmp_path):
    port = free_port()
    m = write_map(tmp_path, {1: [node(1, "1a", port)]})
    t = Tool(tmp_path, m, ("--backoff-min-ms", "50", "--backoff-max-ms", "200"))
    t.wait_log(r"DERP region 1: node 1a \(http://localhost:%d/derp\): cannot connect to the "
               r"DERP server: .*Connection refused" % port)
    deadline = time.monotonic() + 10
    while len(re.findall("reconnecting in", t.stderr())) < 5:
        assert time.monotonic() < deadline, t.stderr()
        time.sleep(0.05)
    assert t.proc.poll() is None
    t.cmd("send 0 %s 00" % ("ab" * 32))
    assert t.expect("error ") == "error send: Resource temporarily unavailable"
    t.quit()


def test_bad_map(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"Regions":{"1":{"RegionID":2}}}')
    kf = tmp_path / "k"
    kf.write_text("00" * 32)
    r = subprocess.run([TOOL, "--map", str(p), "--key-file", str(kf)], capture_output=True,
                       text=True, timeout=10, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "bad DERP map" in r.stderr, r.stderr
    # Only STUN-only nodes: no usable region.
    p.write_text(json.dumps({"Regions": {"1": {"RegionID": 1, "Nodes": [
        dict(node(1, "1a", 1), STUNOnly=True)]}}}))
    r = subprocess.run([TOOL, "--map", str(p), "--key-file", str(kf)], capture_output=True,
                       text=True, timeout=10, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "Invalid argument" in r.stderr, r.stderr


def test_restarting_frame_sets_the_delay(tmp_path):
    """A Restarting frame's reconnect_in is the next delay (not the short backoff)."""
    d = Derper("--restarting", "700")
    m = write_map(tmp_path, {1: [node(1, "1a", d.port)]})
    t = Tool(tmp_path, m, ("--backoff-min-ms", "50"))
    assert t.expect("up ") == "up 1"
    assert t.expect("down ") == "down 1"
    t0 = time.monotonic()
    assert t.expect("up ", 5) == "up 1"
    waited = time.monotonic() - t0
    assert 0.6 <= waited <= 3, waited
    err = t.stderr()
    assert "DERP region 1: server restarting, reconnecting in 700 ms" in err, err
    assert "DERP region 1: reconnecting in 0.700 s" in err, err
    t.quit()


def test_https_nodes(tmp_path):
    """Nodes without ForceHTTP use https: HostName is the name checked (the TCP connection
    goes to the fixed IPv4), CertName overrides it, InsecureForTests skips the check."""
    cert, key = make_cert(tmp_path)
    d = Derper("--tls-cert", str(cert), "--tls-key", str(key))
    https = dict(ForceHTTP=False)
    m = write_map(tmp_path, {
        1: [dict(node(1, "1a", d.port, host="derp.test"), **https)],
        2: [dict(node(2, "2a", d.port, host="127.0.0.1"), CertName="derp.test", **https)],
        3: [dict(node(3, "3a", d.port, host="127.0.0.1"), InsecureForTests=True, **https)],
        4: [dict(node(4, "4a", d.port, host="127.0.0.1"), **https)],   # name mismatch
    })
    t = Tool(tmp_path, m, ("--ca-file", str(cert), "--backoff-min-ms", "2000"))
    assert t.expect("up ") == "up 1"
    t.wait_log(r"connected to node 1a \(https://derp.test:%d/derp\)" % d.port)
    for r in (2, 3):
        t.cmd("send %d %s 00" % (r, "ab" * 32))
        assert t.expect("error ") == "error send: Resource temporarily unavailable"
        assert t.expect("up ") == "up %d" % r
    t.cmd("send 4 %s 00" % ("ab" * 32))
    assert t.expect("error ") == "error send: Resource temporarily unavailable"
    t.wait_log(r"DERP region 4: node 4a \(https://127.0.0.1:%d/derp\): cannot connect" % d.port)
    t.quit()


def test_fwmark(tmp_path):
    """The region's socket carries the configured fwmark (SO_MARK needs root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root for SO_MARK")
    d = Derper()
    m = write_map(tmp_path, {1: [node(1, "1a", d.port)]})
    t = Tool(tmp_path, m, ("--fwmark", "0x1d4"))
    assert t.expect("up ") == "up 1"
    ss = subprocess.run(["ss", "-tnHe", "state", "established", "( dport = :%d )" % d.port],
                        capture_output=True, text=True, timeout=5)
    if ss.returncode != 0:
        pytest.skip("no usable ss")
    assert "fwmark:0x1d4" in ss.stdout, ss.stdout
    t.quit()


def test_connect_to_a_silent_server_keeps_the_loop_running(tmp_path):
    """A node that accepts TCP and never answers the TLS handshake: the connect runs inside
    the event loop, so the client answers commands while it waits, and the attempt ends
    at the connect timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(10)
    port = listener.getsockname()[1]
    m = write_map(tmp_path, {1: [dict(node(1, "1a", port, host="127.0.0.1"), ForceHTTP=False)]})
    t = Tool(tmp_path, m, ("--backoff-min-ms", "60000"))
    conn, _ = listener.accept()
    conn.settimeout(5)
    assert conn.recv(1)[0] == 0x16, "expected a TLS handshake record"   # the client is waiting now
    t.cmd("status 1")
    assert t.expect("status ") == "status 1 down 0"
    conn.setblocking(False)
    with pytest.raises(BlockingIOError):    # still connected: the answer came during the connect
        while conn.recv(65536):
            pass
    t.wait_log(r"DERP region 1: node 1a \(https://127.0.0.1:%d/derp\): cannot connect to the DERP "
               r"server: .*(timed out|timeout)" % port, timeout=20)
    conn.close()
    listener.close()
    t.quit()
