"""codervpnd serve: managers and desktop clients on the control socket, and codervpnctl."""
import grp
import json
import os
import stat
import struct
import subprocess
import time

import pytest

import vpn_pb2
import vpnpeer
from conftest import CODERVPND, CODERVPNCTL

NOBODY = 65534


def write_token(d, token="ctl-T0ken-abc123"):
    path = os.path.join(d.dir, "token")
    with open(path, "w") as f:
        f.write(token + "\n")
    return path


def wait_for(cond, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_socket_mode_and_group(serve_daemon):
    d = serve_daemon(group="nogroup")
    st = os.stat(d.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_uid == 0 and st.st_gid == grp.getgrnam("nogroup").gr_gid


def test_socket_without_group_is_root_only(serve_daemon):
    d = serve_daemon()
    assert stat.S_IMODE(os.stat(d.socket).st_mode) == 0o600
    p = d.ctl("status", user=NOBODY)
    assert p.returncode == 1
    assert "permission denied" in p.stderr and "codervpn" in p.stderr


def test_group_member_may_connect(serve_daemon):
    d = serve_daemon(group="nogroup")
    p = d.ctl("status", user=NOBODY)
    assert p.returncode == 0, p.stderr
    assert "Tunnel:     stopped" in p.stdout


def test_peercred_refuses_outsiders_even_if_the_mode_allows(serve_daemon):
    d = serve_daemon()
    os.chmod(d.socket, 0o666)
    p = d.ctl("status", user=NOBODY)
    assert p.returncode == 1
    assert "connection to codervpnd lost" in p.stderr
    assert "Refusing pid" in d.log() and f"uid {NOBODY}" in d.log()


def test_manager_and_client_roles_on_one_socket(serve_daemon):
    d = serve_daemon()
    m = d.connect("manager", "1.3")
    assert m.handshake() == "codervpn tunnel 1.3"
    c = d.connect("client", "1.0")
    assert c.handshake() == "codervpn service 1.0"
    st = c.call(status=vpn_pb2.StatusRequest())
    assert st.WhichOneof("msg") == "status"
    assert st.status.lifecycle == vpn_pb2.Status.STOPPED
    assert m.call(get_peer_update=vpn_pb2.GetPeerUpdate()).WhichOneof("msg") == "peer_update"


def test_client_sees_status_changes_and_start_error(serve_daemon):
    d = serve_daemon()
    c = d.connect("client", "1.0")
    c.handshake()
    resp = c.call(start=vpn_pb2.StartRequest(coder_url="https://coder.example.com", api_token="x"))
    assert resp.WhichOneof("msg") == "start" and not resp.start.success
    pushed = [m.status.lifecycle for m in c.backlog if m.WhichOneof("msg") == "status"]
    assert pushed == [vpn_pb2.Status.STARTING, vpn_pb2.Status.STOPPED]
    st = c.call(status=vpn_pb2.StatusRequest()).status
    assert st.lifecycle == vpn_pb2.Status.STOPPED
    assert st.error_message.startswith("not implemented")
    # A client's Stop does not end its connection; a manager's does.
    assert c.call(stop=vpn_pb2.StopRequest()).stop.success
    assert c.call(status=vpn_pb2.StatusRequest()).WhichOneof("msg") == "status"


def test_second_manager_watches_and_survives_the_first_ones_stop(serve_daemon):
    d = serve_daemon()
    a = d.connect()
    a.handshake()
    b = d.connect()
    b.handshake()
    a.call(start=vpn_pb2.StartRequest(coder_url="https://coder.example.com", api_token="x"))
    # The watcher receives the same lifecycle logs, unsolicited.
    seen = []
    def saw_start_failure():
        try:
            seen.append(b.recv(timeout=0.2))
        except TimeoutError:
            pass
        return any(m.WhichOneof("msg") == "log" and "Start failed" in m.log.message for m in seen)
    wait_for(saw_start_failure, "the watcher to see the Start failure")
    assert all(not m.HasField("rpc") for m in seen)
    assert a.call(stop=vpn_pb2.StopRequest()).stop.success
    a.expect_eof()
    assert b.call(get_peer_update=vpn_pb2.GetPeerUpdate()).WhichOneof("msg") == "peer_update"


@pytest.mark.parametrize("garbage", [
    b"codervpn manager 1.3\n" + bytes.fromhex("0000000a") + bytes(10),    # undecodable
    b"codervpn manager 1.3\n" + struct.pack(">I", (1 << 24) + 1),         # oversize
    b"codervpn manager 1.3\n" + bytes.fromhex("0000000100"),              # 1 byte, invalid
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                                  # not our protocol
    b"x" * 1000,                                                           # no newline
])
def test_garbage_closes_only_that_connection(serve_daemon, garbage):
    d = serve_daemon()
    good = d.connect()
    good.handshake()
    bad = d.connect()
    bad.write(garbage)
    with pytest.raises(vpnpeer.Closed):
        while True:
            bad.read_exact(1)
    assert d.proc.poll() is None
    assert good.call(get_peer_update=vpn_pb2.GetPeerUpdate()).WhichOneof("msg") == "peer_update"
    fresh = d.connect()
    fresh.handshake()
    assert fresh.call(get_peer_update=vpn_pb2.GetPeerUpdate()).WhichOneof("msg") == "peer_update"


def test_handshake_timeout(serve_daemon):
    d = serve_daemon()
    silent = d.connect()
    t0 = time.monotonic()
    with pytest.raises(vpnpeer.Closed):
        while True:
            silent.read_exact(1, timeout=15)
    assert 4.0 < time.monotonic() - t0 < 10.0
    assert "no handshake within 5 s" in d.log()


def test_second_instance_refuses_a_live_socket_and_replaces_a_stale_one(serve_daemon):
    d = serve_daemon()
    p = subprocess.run([CODERVPND, "--log-target=stderr", "serve", "--socket", d.socket, "--group", ""],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 1
    assert "Another codervpnd is serving" in p.stderr
    d.proc.kill()
    d.proc.wait(5)
    assert os.path.exists(d.socket)     # killed: the socket file is left over
    again = subprocess.Popen([CODERVPND, "serve", "--socket", d.socket, "--group", ""],
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: d.ctl("status").returncode == 0, "the new instance to serve")
    finally:
        again.terminate()
        assert again.wait(10) == 0
    assert not os.path.exists(d.socket)


def test_sigterm_exits_cleanly_and_removes_the_socket(serve_daemon):
    d = serve_daemon()
    m = d.connect()
    m.handshake()
    assert d.stop() == 0
    assert not os.path.exists(d.socket)
    m.expect_eof()


# ---- codervpnctl ---------------------------------------------------------------------------

def test_ctl_status_text_and_json(serve_daemon):
    d = serve_daemon()
    p = d.ctl("status")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "Tunnel:     stopped"
    p = d.ctl("--json", "status")
    doc = json.loads(p.stdout)
    assert doc["lifecycle"] == "stopped" and doc["error"] is None
    assert doc["peers"] == {"workspaces": [], "agents": []}


def test_ctl_start_reports_the_error_and_never_logs_the_token(serve_daemon):
    d = serve_daemon()
    token = write_token(d)
    p = d.ctl("start", "--url", "https://coder.example.com", "--token-file", token, "--header", "X-Test: yes")
    assert p.returncode == 1
    assert "start failed: not implemented" in p.stderr
    p = d.ctl("status")
    assert "Last error: not implemented" in p.stdout
    assert "ctl-T0ken-abc123" not in d.log()
    p = d.ctl("start", "--url", "https://coder.example.com", "--token-file", "-", input="")
    assert p.returncode == 2 and "is empty" in p.stderr
    p = d.ctl("start", "--url", "coder.example.com", "--token-file", token)
    assert p.returncode == 1 and "invalid coder url" in p.stderr


def test_ctl_stop_peers_watch(serve_daemon):
    d = serve_daemon()
    p = d.ctl("stop")
    assert p.returncode == 0 and p.stdout == "Stopped.\n"
    p = d.ctl("peers")
    assert p.returncode == 0 and p.stdout.startswith("No agents")
    p = d.ctl("peers", "--json")
    assert json.loads(p.stdout) == {"workspaces": [], "agents": []}

    watch = subprocess.Popen([CODERVPNCTL, "--socket", d.socket, "--json", "watch", "--count", "2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: d.log().count("Connection from") >= 4, "the watcher to connect")
        time.sleep(0.2)
        d.ctl("start", "--url", "https://coder.example.com", "--token-file", write_token(d))
        out, err = watch.communicate(timeout=10)
    finally:
        watch.kill()
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2 and all(x["type"] == "log" for x in lines)
    assert watch.returncode == 0


def test_ctl_errors_say_what_to_do(tmp_path):
    sock = str(tmp_path / "nothing.sock")
    p = subprocess.run([CODERVPNCTL, "--socket", sock, "status"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 1
    assert "codervpnd is not running" in p.stderr and "codervpnd serve" in p.stderr
    p = subprocess.run([CODERVPNCTL, "start", "--url", "https://x"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "--token-file" in p.stderr
    p = subprocess.run([CODERVPNCTL, "launch"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "unknown command" in p.stderr
    p = subprocess.run([CODERVPNCTL, "--help"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and "--token-file" in p.stdout
