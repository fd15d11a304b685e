#!/usr/bin/python3
"""Direct vs DERP through agent/pathmgr, in the same run: throughput, ping latency, the
relay's CPU per Gbit, and the time from losing the direct path to traffic through DERP.

The namespaces, relay and tools are those of tests/integration/test_derp_path.py (hub with
derper.py, A and B running pathmgr-tool). WireGuard: CODERVPN_WG_MODE, else what the
machine has (wireguard-go on the build machines). Needs iperf3. Prints one line per result.

  bench/bench_derp.py [BUILD]        BENCH_SECONDS=N per iperf3 run (default 5)
"""
import json
import os
import pathlib
import select
import subprocess
import sys
import tempfile
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
ROOT = pathlib.Path(__file__).resolve().parent.parent
os.environ.setdefault("PATHMGR_TOOL", str(ROOT / BUILD / "tests" / "pathmgr-tool"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import test_derp_path as t  # noqa: E402
from netns import namespace  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS   # utime + stime


def iperf(net, *args):
    server = subprocess.Popen(["ip", "netns", "exec", net.b, "iperf3", "-s", "-1", "-B", t.B_TUN],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        p = subprocess.run(["ip", "netns", "exec", net.a, "iperf3", "-c", t.B_TUN, "-t", str(SECONDS), "-J",
                            *args], capture_output=True, text=True, timeout=SECONDS + 30)
        return json.loads(p.stdout)
    finally:
        server.kill()
        server.wait()


def ping_rtt(net, count=100):
    p = net.ping(net.a, t.B_TUN, count=count, deadline=count // 5 + 10)
    # rtt min/avg/max/mdev = 0.448/0.874/2.164/0.648 ms
    line = [l for l in p.stdout.splitlines() if l.startswith("rtt")]
    assert line, p.stdout
    mn, avg, mx, _ = line[0].split("=")[1].split()[0].split("/")
    return float(mn), float(avg), float(mx)


def last_path(tool):
    lines = [l for _, l in tool.lines if l.startswith(f"path {tool.peer_key} ")]
    return lines[-1].split()[2]


def ensure_direct(net, tool):
    if last_path(tool) != "direct":
        start = len(tool.lines)
        with t.pinging(net.a, t.B_TUN):
            tool.wait_line(t.path_line(tool, "direct"), 60, start, "back to direct")


def switches(tool, start):
    return len([l for _, l in tool.lines[start:] if l.startswith(f"path {tool.peer_key} ")])


def measure(net, tools, label):
    res = {}
    start = len(tools[0].lines)
    res["rtt"] = ping_rtt(net)
    before = [cpu_seconds(x.proc.pid) for x in tools]
    d_before = cpu_seconds(net.derper.proc.pid)
    relayed_before = t.stats(tools[0])[1]
    j = iperf(net)
    res["relay_pps"] = (t.stats(tools[0])[1] - relayed_before) / j["end"]["sum_received"]["seconds"]
    res["tcp_mbit"] = j["end"]["sum_received"]["bits_per_second"] / 1e6
    res["tcp_bytes"] = j["end"]["sum_received"]["bytes"]
    res["cpu"] = [cpu_seconds(x.proc.pid) - b for x, b in zip(tools, before)]
    res["derper_cpu"] = cpu_seconds(net.derper.proc.pid) - d_before
    j = iperf(net, "-u", "-b", "0", "-l", "1200")
    s = j["end"]["sum_received"]
    res["udp_pps"] = s["bytes"] / 1200 / s["seconds"]
    res["udp_loss"] = s["lost_percent"]
    # A one-way flow gets no answers: after the silence rule, pathmgr takes that for a dead
    # direct path (pathmgr.h). Counted, not hidden.
    res["switches"] = switches(tools[0], start)
    gbit = res["tcp_bytes"] * 8 / 1e9
    print(f"{label}: ping rtt min/avg/max {res['rtt'][0]:.3f}/{res['rtt'][1]:.3f}/{res['rtt'][2]:.3f} ms; "
          f"TCP {res['tcp_mbit']:.0f} Mbit/s ({res['relay_pps']:.0f} WireGuard packets/s from A through DERP); UDP 1200 B received {res['udp_pps']:.0f} packets/s "
          f"({res['udp_loss']:.1f} % lost); pathmgr-tool CPU A {res['cpu'][0]:.2f} s, B {res['cpu'][1]:.2f} s "
          f"= {res['cpu'][0] / gbit:.2f} / {res['cpu'][1] / gbit:.2f} CPU-s per Gbit; "
          f"derper.py {res['derper_cpu']:.2f} s; path changes during the runs: {res['switches']}", flush=True)
    return res


def fallback_time(net, a):
    """Seconds from blocking the direct path to the first ping reply through DERP."""
    pinger = subprocess.Popen(["ip", "netns", "exec", net.a, "ping", "-n", "-D", "-i", "0.05", "-W", "1",
                               "-w", "30", t.B_TUN], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        start = len(a.lines)
        net.block()
        # From when the rule is surely in place (nft can take a while to start).
        wall, mono = time.time(), time.monotonic()
        _, (t_derp, _) = a.wait_line(t.path_line(a, "derp"), 20, start, "switch to DERP")
        while True:
            r, _, _ = select.select([pinger.stdout], [], [], 20)
            assert r, "no reply through DERP"
            line = pinger.stdout.readline()
            if "bytes from" in line and line.startswith("[") and float(line[1:line.index("]")]) > wall + 0.02:
                return t_derp - mono, float(line[1:line.index("]")]) - wall
    finally:
        pinger.kill()
        pinger.wait()


def main():
    print(f"WireGuard: {t.MODE}; {SECONDS} s per iperf3 run", flush=True)
    with tempfile.TemporaryDirectory() as tmp, namespace("bdhub") as hub, namespace("bda") as a, \
            namespace("bdb") as b:
        net = t.Net(hub, a, b, pathlib.Path(tmp))
        try:
            ta, tb = t.start_pair(net)
            direct = measure(net, (ta, tb), "direct")
            ensure_direct(net, ta)
            runs = [fallback_time(net, ta)]
            relayed = measure(net, (ta, tb), "DERP")
            # Probes point WireGuard at the dead direct path until the silence rule ends them.
            p = net.ping(net.a, t.B_TUN, count=150, deadline=40)
            loss = [l for l in p.stdout.splitlines() if "packet loss" in l]
            print(f"30 s of ping (5/s) on DERP with the direct path still blocked: {loss[0] if loss else p.stdout}",
                  flush=True)
            # Twice more, for a spread: back to direct, then block again.
            for _ in range(2):
                start = len(ta.lines)
                net.unblock()
                with t.pinging(net.a, t.B_TUN):
                    ta.wait_line(t.path_line(ta, "direct"), 60, start, "back to direct")
                runs.append(fallback_time(net, ta))
            for i, (sw, tr) in enumerate(runs):
                print(f"direct path lost -> pathmgr on DERP {sw:.2f} s, ping replies through DERP {tr:.2f} s "
                      f"(run {i + 1})", flush=True)
            print(f"DERP/direct: TCP {relayed['tcp_mbit'] / direct['tcp_mbit']:.2f}x, "
                  f"avg rtt {relayed['rtt'][1] / direct['rtt'][1]:.1f}x", flush=True)
        finally:
            net.close()


if __name__ == "__main__":
    main()
