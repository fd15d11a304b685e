"""codervpnd run: one manager on inherited pipes, the shape of `coder vpn-daemon run`."""
import os
import struct
import subprocess

import pytest

import vpn_pb2
import vpnpeer
from conftest import CODERVPND

TOKEN = "s3cr3t-Token-9f8e7d"


def start_request(url="https://coder.example.com", token=TOKEN, **kw):
    return vpn_pb2.StartRequest(coder_url=url, api_token=token, **kw)


def test_handshake_header_and_stop_ends_stream(run_daemon):
    d = run_daemon()
    assert d.peer.handshake() == "codervpn tunnel 1.3"
    resp = d.peer.call(stop=vpn_pb2.StopRequest())
    assert resp.WhichOneof("msg") == "stop"
    assert resp.stop.success
    assert resp.rpc.response_to == 1 and resp.rpc.msg_id == 0
    # StopResponse is the last message: the next read is EOF.
    assert [m for m in d.peer.expect_eof() if m.WhichOneof("msg") != "log"] == []
    assert d.wait() == 0


@pytest.mark.parametrize("req,error", [
    (start_request(url=""), "missing coder url"),
    (start_request(url="::not a url"), "invalid coder url"),
    (start_request(url="ftp://coder.example.com"), "invalid coder url"),
    (start_request(token=""), "missing api token"),
])
def test_start_validation(run_daemon, req, error):
    d = run_daemon()
    d.peer.handshake()
    resp = d.peer.call(start=req)
    assert resp.WhichOneof("msg") == "start"
    assert not resp.start.success
    assert error in resp.start.error_message


def test_start_is_not_faked(run_daemon):
    d = run_daemon()
    d.peer.handshake()
    resp = d.peer.call(start=start_request(device_id="device001", device_os="Linux",
                                           coder_desktop_version="0.24.8"))
    assert not resp.start.success
    assert resp.start.error_message.startswith("not implemented")
    # Nothing is left running: a Stop afterwards is a no-op success.
    assert d.peer.call(stop=vpn_pb2.StopRequest()).stop.success


def test_unsolicited_logs_have_no_rpc_and_hide_the_token(run_daemon):
    d = run_daemon()
    d.peer.handshake()
    d.peer.call(start=start_request(headers=[vpn_pb2.StartRequest.Header(name="X-Test-Header", value="test")]))
    d.peer.call(stop=vpn_pb2.StopRequest())
    msgs = d.peer.backlog + d.peer.expect_eof()
    logs = [m for m in msgs if m.WhichOneof("msg") == "log"]
    assert logs, "expected Log messages while a manager is attached"
    for m in logs:
        assert not m.HasField("rpc")
        assert TOKEN not in str(m)
        assert m.log.logger_names
    assert any(m.log.level == vpn_pb2.Log.ERROR and "not implemented" in m.log.message for m in logs)
    assert d.wait() == 0
    assert TOKEN not in d.log()


def test_get_peer_update_and_wake(run_daemon):
    d = run_daemon()
    d.peer.handshake()
    resp = d.peer.call(get_peer_update=vpn_pb2.GetPeerUpdate())
    assert resp.WhichOneof("msg") == "peer_update"
    assert resp.rpc.response_to == 1
    assert len(resp.peer_update.upserted_agents) == 0
    resp = d.peer.call(wake=vpn_pb2.WakeRequest())
    assert resp.WhichOneof("msg") == "wake"
    assert resp.rpc.response_to == 2


def test_wake_not_answered_below_1_3(run_daemon):
    d = run_daemon(versions="1.1")
    assert d.peer.handshake() == "codervpn tunnel 1.3"
    wake_id = d.peer.request(wake=vpn_pb2.WakeRequest())
    peers_id = d.peer.request(get_peer_update=vpn_pb2.GetPeerUpdate())
    resp = d.peer.recv_response(peers_id)
    assert resp.WhichOneof("msg") == "peer_update"
    assert all(m.rpc.response_to != wake_id for m in d.peer.backlog)
    assert "Wake needs 1.3" in d.log()


def test_several_outstanding_requests(run_daemon):
    d = run_daemon()
    d.peer.handshake()
    ids = [d.peer.request(get_peer_update=vpn_pb2.GetPeerUpdate()) for _ in range(5)]
    got = sorted(d.peer.recv_response(i).rpc.response_to for i in ids)
    assert got == ids


def test_unknown_response_is_dropped(run_daemon):
    d = run_daemon()
    d.peer.handshake()
    stray = vpn_pb2.ManagerMessage()
    stray.rpc.response_to = 77
    stray.network_settings.success = True
    d.peer.send(stray)
    assert d.peer.call(get_peer_update=vpn_pb2.GetPeerUpdate()).WhichOneof("msg") == "peer_update"
    assert "unknown request 77" in d.log()


@pytest.mark.parametrize("args,env", [
    (("--rpc-read-fd", "{r}", "--rpc-write-fd", "{w}"), None),
    ((), {"CODER_VPN_DAEMON_RPC_READ_HANDLE": "{r}", "CODER_VPN_DAEMON_RPC_WRITE_HANDLE": "{w}"}),
])
def test_handle_spellings(run_daemon, args, env):
    d = run_daemon(args=args, env=env)
    assert d.peer.handshake() == "codervpn tunnel 1.3"
    assert d.peer.call(stop=vpn_pb2.StopRequest()).stop.success


@pytest.mark.parametrize("header", [
    b"ssh manager 1.1\n",
    b"ssh manager\n",
    b"codervpn manager 2.0,3.0\n",
    b"codervpn 0.1 manager\n",
    b"codervpn 1.1 supervisor\n",
    b"codervpn 1.1 tunnel\n",
    b"codervpn tunnel 1.3\n",
    b"codervpn manager 1.3\r\n",
    b"bad" * 256,
])
def test_rejected_headers_close_the_stream(run_daemon, header):
    d = run_daemon()
    d.peer.write(header)
    # Our header may or may not have gone out first (both are written concurrently),
    # but nothing follows it in-band.
    got = b""
    with pytest.raises(vpnpeer.Closed):
        while True:
            got += d.peer.read_exact(1)
    assert got in (b"", b"codervpn tunnel 1.3\n")
    assert d.wait() == 0
    assert "Closing manager" in d.log()


@pytest.mark.parametrize("versions,expect", [("1.3", "1.3"), ("1.3,2.1", "1.3"), ("1.0", "1.0"), ("1.1", "1.1")])
def test_accepted_headers(run_daemon, versions, expect):
    d = run_daemon(versions=versions)
    d.peer.handshake()
    assert d.peer.call(get_peer_update=vpn_pb2.GetPeerUpdate()).WhichOneof("msg") == "peer_update"
    assert f"version {expect}" in d.log()


def test_undecodable_frame_closes(run_daemon):
    d = run_daemon()
    d.peer.handshake()
    d.peer.write(bytes.fromhex("0000000a") + bytes(10))
    d.peer.expect_eof()
    assert "undecodable 10-byte message" in d.log()


def test_oversize_frame_closes(run_daemon):
    d = run_daemon()
    d.peer.handshake()
    d.peer.write(struct.pack(">I", (1 << 24) + 1))
    d.peer.expect_eof()
    assert "exceeds the 16777216-byte limit" in d.log()


def test_frame_of_exactly_16_mib_is_accepted(run_daemon):
    d = run_daemon()
    d.peer.handshake()
    body = bytes.fromhex("0a0208011200")   # rpc{msg_id:1} get_peer_update{}
    # Pad with an unknown length-delimited field 100 (tag a2 06, then a 4-byte varint length).
    pad_len = (1 << 24) - len(body) - 2 - 4
    varint = bytes([0x80 | (pad_len & 0x7f), 0x80 | ((pad_len >> 7) & 0x7f),
                    0x80 | ((pad_len >> 14) & 0x7f), pad_len >> 21])
    assert pad_len >> 28 == 0
    payload = body + b"\xa2\x06" + varint + bytes(pad_len)
    assert len(payload) == 1 << 24
    d.peer.write(struct.pack(">I", len(payload)) + payload)
    assert d.peer.recv_response(1, timeout=30).WhichOneof("msg") == "peer_update"


def test_eof_stops_and_exits(run_daemon):
    d = run_daemon()
    d.peer.handshake()
    os.close(d.peer.wfd)
    assert d.wait() == 0


@pytest.mark.parametrize("argv,message", [
    (["run"], "needs --rpc-read-handle"),
    (["run", "--rpc-read-handle", "x", "--rpc-write-handle", "1"], "not a file descriptor number"),
    (["run", "--rpc-read-handle", "97", "--rpc-write-handle", "1"], "not open"),
    (["frobnicate"], "unknown command"),
])
def test_bad_arguments(argv, message):
    p = subprocess.run([CODERVPND, *argv], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2
    assert message in p.stderr
