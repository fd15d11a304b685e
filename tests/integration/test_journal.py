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
