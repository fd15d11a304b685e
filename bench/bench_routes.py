#!/usr/bin/python3
"""1,000 routes into an empty table: codervpnd's netlink path vs `ip -batch`, same namespace, same run.

Run as root: python3 bench/bench_routes.py [BUILD]. Prints one line per measurement."""
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
TOOL = os.path.abspath(f"{BUILD}/tests/netcfg-tool")
NETAPPLY = os.path.abspath(f"{BUILD}/tests/netapply")
sys.path[:0] = [f"{BUILD}/py", "tests/integration"]
import vpn_pb2  # noqa: E402

N, RUNS, TABLE = 1000, 15, 7477


def sh(*a, **kw):
    return subprocess.run(a, check=True, capture_output=True, text=True, **kw)


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def request(n):
    r = vpn_pb2.NetworkSettingsRequest(mtu=1280)
    r.ipv4_settings.addrs.append("100.64.0.1")
    r.ipv4_settings.subnet_masks.append("255.255.255.255")
    for i in range(n):
        r.ipv4_settings.included_routes.add(destination=f"10.{(i >> 8) & 255}.{i & 255}.0", mask="255.255.255.0")
    return r


def bench_apply(ex):
    """The whole path: merge, validate, read current state, diff, pipelined adds."""
    with tempfile.TemporaryDirectory() as tmp:
        full, empty = os.path.join(tmp, "full.pb"), os.path.join(tmp, "empty.pb")
        with open(full, "wb") as f:
            f.write(request(N).SerializeToString())
        with open(empty, "wb") as f:
            f.write(request(0).SerializeToString())
        p = subprocess.Popen([*ex, NETAPPLY, "--state", os.path.join(tmp, "state"), "bench0"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, bufsize=1)
        assert p.stdout.readline().startswith("ready")
        times = []
        for _ in range(RUNS):
            t = time.perf_counter()
            p.stdin.write(f"apply {full}\n")
            line = p.stdout.readline()
            times.append(time.perf_counter() - t)
            assert line.startswith("ok added=100"), line   # the routes, plus rule and address
            p.stdin.write(f"apply {empty}\n")
            assert p.stdout.readline().startswith("ok")
        p.stdin.write("quit\n")
        p.wait(30)
    return statistics.median(times)


def main():
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", ns)
    try:
        ex = ("ip", "netns", "exec", ns)
        sh(*ex, "ip", "tuntap", "add", "dev", "bt0", "mode", "tun")
        sh(*ex, "ip", "link", "set", "bt0", "up")
        with tempfile.TemporaryDirectory() as tmp:
            batch = os.path.join(tmp, "routes.batch")
            with open(batch, "w") as f:
                for i in range(N):
                    f.write(f"route add 10.{(i >> 8) & 255}.{i & 255}.0/24 dev bt0 table {TABLE}\n")
            flush = lambda: sh(*ex, "ip", "route", "flush", "table", str(TABLE))
            ours, theirs = [], []
            for _ in range(RUNS):
                theirs.append(timed(lambda: sh(*ex, "ip", "-batch", batch)))
                assert len(sh(*ex, "ip", "route", "show", "table", str(TABLE)).stdout.splitlines()) == N
                flush()
                ours.append(timed(lambda: sh(*ex, TOOL, "route-add-many", str(TABLE), "bt0", str(N), "10.0.0.0/24")))
                assert len(sh(*ex, "ip", "route", "show", "table", str(TABLE)).stdout.splitlines()) == N
                flush()
        mo, mt = statistics.median(ours), statistics.median(theirs)
        print(f"routes: {N} routes, median of {RUNS}: netcfg route_add_many {mo * 1e3:.2f} ms, "
              f"ip -batch {mt * 1e3:.2f} ms, ratio ip/ours {mt / mo:.2f}x")
        ma = bench_apply(ex)
        print(f"routes: a NetworkSettingsRequest with {N} routes applied (validate, diff, apply), "
              f"median of {RUNS}: {ma * 1e3:.2f} ms, ratio ip -batch/apply {mt / ma:.2f}x")
    finally:
        subprocess.run(["ip", "netns", "del", ns])


if __name__ == "__main__":
    main()
