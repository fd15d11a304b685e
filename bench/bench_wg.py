#!/usr/bin/python3
"""10,000 WireGuard peers: codervpnd's netlink path vs wg(8), same kernel, same run.

Needs kernel WireGuard: `make bench` runs it in the VM harness. Prints one line per result."""
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
WGTOOL = os.path.abspath(f"{BUILD}/tests/wgtool")
N = 10000
RUNS = int(os.environ.get("BENCH_RUNS", "3"))


def sh(*a, **kw):
    return subprocess.run(a, check=True, capture_output=True, text=True, **kw)


def conf_text(priv, peers):
    out = ["[Interface]", f"PrivateKey = {priv}", "ListenPort = 51820"]
    for key, ips in peers:
        out += ["[Peer]", f"PublicKey = {key}", "AllowedIPs = " + ", ".join(ips)]
    return "\n".join(out) + "\n"


def timed(*argv):
    t = time.perf_counter()
    p = subprocess.run(argv, check=True, capture_output=True, text=True)
    return time.perf_counter() - t, p


def main():
    ns = f"benchwg-{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", ns)
    ex = ("ip", "netns", "exec", ns)
    try:
        priv = sh(WGTOOL, "genkey").stdout.strip()
        peers = [(base64.b64encode(os.urandom(32)).decode(),
                  [f"10.{(i >> 8) & 255}.{i & 255}.1/32", f"fd00::{i:x}:1/128"]) for i in range(N)]
        with tempfile.TemporaryDirectory() as tmp:
            full = os.path.join(tmp, "full.conf")
            with open(full, "w") as f:
                f.write(conf_text(priv, peers))
            empty = os.path.join(tmp, "empty.conf")
            with open(empty, "w") as f:
                f.write(conf_text(priv, []))
            sh(*ex, "ip", "link", "add", "wgb0", "type", "wireguard")
            # Emptied with REPLACE_PEERS, not re-created: deleting a link with 10,000 peers
            # waits out an RCU grace period per peer (minutes under TCG).
            fresh = lambda: sh(*ex, "wg", "setconf", "wgb0", empty)
            wg_t, set_t, sync_t = [], [], []
            msgs = None
            for _ in range(RUNS):
                fresh()
                wg_t.append(timed(*ex, "wg", "setconf", "wgb0", full)[0])
                fresh()
                set_t.append(timed(*ex, WGTOOL, "--mode", "kernel", "wgb0", "set", full)[0])
                fresh()
                t, p = timed(*ex, WGTOOL, "--mode", "kernel", "wgb0", "sync", full)
                sync_t.append(t)
                msgs = p.stderr.strip()
            assert len(sh(*ex, "wg", "show", "wgb0", "peers").stdout.split()) == N
            mw, ms, my = (statistics.median(x) for x in (wg_t, set_t, sync_t))
            print(f"wg: {N} peers x 2 allowed IPs into an empty device, median of {RUNS}: "
                  f"wg setconf {mw * 1e3:.1f} ms, wgtool set {ms * 1e3:.1f} ms (ratio wg/ours {mw / ms:.2f}x), "
                  f"wgtool sync {my * 1e3:.1f} ms (ratio {mw / my:.2f}x; {msgs})")

            # One peer changed on the full device.
            peers[N // 2] = (peers[N // 2][0], ["10.250.0.1/32"])
            one = os.path.join(tmp, "one.conf")
            with open(one, "w") as f:
                f.write(conf_text(priv, peers))
            ours, cached, inproc, theirs = [], [], [], []
            for i in range(RUNS):
                # Alternate between the two configs so every run is a real one-peer change.
                target, other = (one, full) if i % 2 == 0 else (full, one)
                t, p = timed(*ex, WGTOOL, "--mode", "kernel", "wgb0", "sync", target)
                ours.append(t)
                assert p.stderr.split()[:2] == ["messages=1", "peers=1"], p.stderr
            for i in range(RUNS):
                # The engine's way: diff against the state it last applied, no dump.
                target, other = (one, full) if i % 2 == 0 else (full, one)
                t, p = timed(*ex, WGTOOL, "--mode", "kernel", "wgb0", "sync-from", other, target)
                cached.append(t)
                stats = dict(kv.split("=") for kv in p.stderr.split())
                assert (stats["messages"], stats["peers"]) == ("1", "1"), p.stderr
                inproc.append(int(stats["usec"]) / 1e6)
            for i in range(RUNS):
                target = one if i % 2 == 0 else full
                theirs.append(timed(*ex, "wg", "syncconf", "wgb0", target)[0])
            mo, mc, mi, mt = (statistics.median(x) for x in (ours, cached, inproc, theirs))
            print(f"wg: one peer changed on a {N}-peer device, median of {RUNS}: "
                  f"wg syncconf {mt * 1e3:.1f} ms; wgtool sync {mo * 1e3:.1f} ms (reads the device back, "
                  f"ratio {mt / mo:.2f}x); wgtool sync-from {mc * 1e3:.1f} ms (diff against the last applied "
                  f"state, ratio {mt / mc:.2f}x), of which wg_sync itself {mi * 1e3:.2f} ms: "
                  f"1 netlink message, 1 peer")
            fresh()
    finally:
        subprocess.run(["ip", "netns", "del", ns])


if __name__ == "__main__":
    main()
