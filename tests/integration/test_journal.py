"""Logs reach journald as structured records (native protocol), with no secrets in them."""
import json
import os
import subprocess
import sys

from conftest import CODERVPND

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "journal-s3cret-Tok"

# The manager side, run by the sink inside the namespace: Start, then Stop.
MANAGER = f"""
import os, subprocess, sys
sys.path[:0] = {sys.path!r}
import vpnpeer, vpn_pb2
m2t_r, m2t_w = os.pipe(); t2m_r, t2m_w = os.pipe()
d = subprocess.Popen([{CODERVPND!r}, "--log-target=journal", "run", "--rpc-read-handle", str(m2t_r),
                      "--rpc-write-handle", str(t2m_w)], pass_fds=(m2t_r, t2m_w))
os.close(m2t_r); os.close(t2m_w)
p = vpnpeer.Peer(t2m_r, m2t_w)
p.handshake()
p.call(start=vpn_pb2.StartRequest(coder_url="https://coder.example.com", api_token={TOKEN!r}))
p.call(stop=vpn_pb2.StopRequest())
p.expect_eof()
sys.exit(d.wait(10))
"""


def test_structured_records_reach_the_journal():
    p = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'mount -t tmpfs tmpfs /run && exec "$@"', "sh",
         sys.executable, os.path.join(HERE, "journal_sink.py"), sys.executable, "-c", MANAGER],
        capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    records = [json.loads(line) for line in p.stdout.splitlines()]
    assert records, "codervpnd sent nothing to the journal socket"
    assert all(r["SYSLOG_IDENTIFIER"] == "codervpnd" for r in records)
    failed = [r for r in records if r["MESSAGE"].startswith("Start failed")]
    assert len(failed) == 1
    assert failed[0]["PRIORITY"] == "3" and failed[0]["CODERVPN_COMPONENT"] == "tunnel"
    starting = [r for r in records if r["MESSAGE"].startswith("Starting for")]
    assert starting and starting[0]["CODERVPN_CODER_URL"] == "https://coder.example.com"
    assert all("CODE_FILE" in r for r in records)
    assert TOKEN not in p.stdout and TOKEN not in p.stderr


def test_engine_records_carry_peer_fields():
    """The engine's peer records: CODERVPN_PEER/WORKSPACE/AGENT fields, no private key anywhere."""
    import tempfile
    import uuid
    import wgutil
    from netns import namespace, wg_mode

    priv, peer_priv = wgutil.genkey(), wgutil.genkey()
    with namespace("cvj") as ns, tempfile.TemporaryDirectory() as tmp:
        key = os.path.join(tmp, "private.key")
        fd = os.open(key, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, (priv + "\n").encode())
        os.close(fd)
        ifname = "cvj" + uuid.uuid4().hex[:6]
        env = dict(os.environ, CODERVPND_INTERFACE_NAME=ifname, CODERVPND_INTERFACE_PRIVATEKEYFILE=key,
                   CODERVPND_INTERFACE_ADDRESS="100.64.2.1/32", CODERVPND_INTERFACE_WIREGUARD=wg_mode(),
                   CODERVPND_DNS_MODE="off", CODERVPND_PEER0_PUBLICKEY=wgutil.pubkey(peer_priv),
                   CODERVPND_PEER0_ALLOWEDIPS="100.64.2.2/32", CODERVPND_PEER0_WORKSPACE="alice-ws",
                   CODERVPND_PEER0_AGENT="dev")
        # Up for a moment, then SIGTERM; the sink collects what reached "journald".
        script = (f'{CODERVPND} --log-target=journal up --no-socket & pid=$!; '
                  f'for i in $(seq 100); do ip link show {ifname} >/dev/null 2>&1 && break; sleep 0.1; done; '
                  'sleep 0.5; kill -TERM $pid; wait $pid')
        p = subprocess.run(
            ["ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private", "sh", "-c",
             'mount -t tmpfs tmpfs /run && exec "$@"', "sh",
             sys.executable, os.path.join(HERE, "journal_sink.py"), "sh", "-c", script],
            capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    records = [json.loads(line) for line in p.stdout.splitlines()]
    peer = [r for r in records if r.get("CODERVPN_PEER") == wgutil.pubkey(peer_priv)]
    assert peer, records
    assert peer[0]["CODERVPN_WORKSPACE"] == "alice-ws" and peer[0]["CODERVPN_AGENT"] == "dev"
    assert peer[0]["MESSAGE"] == "Peer dev: configured" and peer[0]["PRIORITY"] == "6"
    assert any(r["MESSAGE"].startswith("Created " + ifname) for r in records)
    assert priv not in p.stdout and priv not in p.stderr
