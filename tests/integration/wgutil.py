"""wgtool and wg(8) helpers shared by the WireGuard tests."""
import base64
import os
import subprocess

WGTOOL = os.path.abspath(os.environ.get("WGTOOL", "build/tests/wgtool"))


def run(*argv, check=True, timeout=60, input=None):
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise AssertionError(f"{argv} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def in_ns(ns, *argv, **kw):
    return run("ip", "netns", "exec", ns, *argv, **kw)


def wgtool(ns, *args, **kw):
    argv = [WGTOOL, *args]
    return in_ns(ns, *argv, **kw) if ns else run(*argv, **kw)


def genkey():
    return run(WGTOOL, "genkey").stdout.strip()


def pubkey(priv):
    return run(WGTOOL, "pubkey", input=priv + "\n").stdout.strip()


def write_config(path, private_key, listen_port=None, peers=(), fwmark=None):
    """Writes a wg(8)-style config to @path and returns the path."""
    lines = ["[Interface]", f"PrivateKey = {private_key}"]
    if listen_port is not None:
        lines.append(f"ListenPort = {listen_port}")
    if fwmark is not None:
        lines.append(f"FwMark = {fwmark}")
    for p in peers:
        lines += ["", "[Peer]", f"PublicKey = {p['public_key']}"]
        if p.get("preshared_key"):
            lines.append(f"PresharedKey = {p['preshared_key']}")
        if p.get("endpoint"):
            lines.append(f"Endpoint = {p['endpoint']}")
        if p.get("keepalive") is not None:
            lines.append(f"PersistentKeepalive = {p['keepalive']}")
        if p.get("allowed_ips"):
            lines.append("AllowedIPs = " + ", ".join(p["allowed_ips"]))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


def dump_rows(text):
    """Peer rows of `wg show IF dump` (the interface line dropped), sorted, allowed IPs sorted."""
    rows = []
    for line in text.strip().splitlines()[1:]:
        cols = line.split("\t")
        cols[3] = ",".join(sorted(cols[3].split(",")))
        rows.append(cols)
    return sorted(rows)


def random_key():
    return base64.b64encode(os.urandom(32)).decode()


def many_peers(n, ips_each=2):
    """@n peers with random keys and distinct allowed IPs (a /32 and an IPv6 /96)."""
    peers = []
    for k in range(n):
        hi, lo = divmod(k, 256)
        peers.append({
            "public_key": random_key(),
            "allowed_ips": [f"10.{100 + hi // 256}.{hi % 256}.{lo}/32", f"fd77:{hi:x}:{lo:x}::/96"][:ips_each],
        })
    return peers


def sync_stats(stderr):
    """wgtool sync's "messages=N peers=M" (its timing left out)."""
    return " ".join(kv for kv in stderr.split() if not kv.startswith("usec="))
