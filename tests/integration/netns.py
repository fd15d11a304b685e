"""Network namespaces for tests: created fresh, always deleted."""
import contextlib
import json
import os
import subprocess
import uuid


def sh(*argv, check=True, ns=None, **kw):
    if ns:
        argv = ("ip", "netns", "exec", ns, *argv)
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=60, **kw)


def ipj(ns, *args):
    """`ip -j ARGS` inside @ns, parsed."""
    out = sh("ip", "-j", *args, ns=ns).stdout.strip()
    return json.loads(out) if out else []


@contextlib.contextmanager
def namespace(prefix="cvt"):
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "link", "set", "lo", "up", ns=name)
        yield name
    finally:
        # wireguard-go processes die with their TUN links, which die with the namespace.
        subprocess.run(["ip", "netns", "pids", name], capture_output=True)
        for pid in subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                                  text=True).stdout.split():
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        sh("ip", "netns", "del", name, check=False)


def wg_mode():
    """The WireGuard path under test: the VM harness sets kernel; the host has only wireguard-go."""
    mode = os.environ.get("CODERVPN_WG_MODE")
    if mode:
        return mode
    return "kernel" if os.path.exists("/sys/module/wireguard") else "userspace"
