"""NetworkSettingsRequest applied for real: addresses, MTU, routes, rules, diff, rollback, cleanup.

Runs in a fresh network namespace with the WireGuard path of this machine
(wireguard-go on the host, kernel WireGuard in the VM harness)."""
import os
import select
import subprocess
import tempfile
import time

import pytest

import vpn_pb2
from conftest import CODERVPND
from netns import ipj, namespace, sh, wg_mode

NETAPPLY = os.path.abspath(os.environ.get("NETAPPLY", "build/tests/netapply"))
TABLE, PRIO, MARK = 7477, 5270, 0x1D4
# Set per test: wireguard-go's UAPI sockets (/var/run/wireguard/IF.sock) are not per
# network namespace, so a name still held by the previous test's dying instance would clash.
IF = "wgt0"

NSR = vpn_pb2.NetworkSettingsRequest
V4Route = NSR.IPv4Settings.IPv4Route
V6Route = NSR.IPv6Settings.IPv6Route


def router(v4=(("100.64.0.1", "255.255.255.255"),), v6=(("fd60:627a:a42b:1::1", 128),),
           routes4=(("100.64.0.0", "255.192.0.0"),), routes6=(("fd60:627a:a42b::", 48),),
           excl4=(), excl6=(), mtu=1280):
    r = NSR(mtu=mtu)
    if v4 is not None:
        r.ipv4_settings.addrs.extend(a for a, _ in v4)
        r.ipv4_settings.subnet_masks.extend(m for _, m in v4)
        r.ipv4_settings.included_routes.extend(V4Route(destination=d, mask=m) for d, m in routes4)
        r.ipv4_settings.excluded_routes.extend(V4Route(destination=d, mask=m) for d, m in excl4)
    if v6 is not None:
        r.ipv6_settings.addrs.extend(a for a, _ in v6)
        r.ipv6_settings.prefix_lengths.extend(n for _, n in v6)
        r.ipv6_settings.included_routes.extend(V6Route(destination=d, prefix_length=n) for d, n in routes6)
        r.ipv6_settings.excluded_routes.extend(V6Route(destination=d, prefix_length=n) for d, n in excl6)
    return r


class NetApply:
    def __init__(self, ns, tmp, mode=None):
        self.ns, self.tmp = ns, tmp
        self.state = os.path.join(tmp, "network.state")
        self.n = 0
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, NETAPPLY, "--mode", mode or wg_mode(), "--state", self.state,
             "--table", str(TABLE), "--priority", str(PRIO), "--fwmark", str(MARK), IF],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "netapply.log"), "a"),
            text=True, bufsize=1)
        self.ready = self.readline()

    def readline(self, timeout=30):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert r, "netapply did not answer:\n" + self.log()
        line = self.proc.stdout.readline().strip()
        assert line, "netapply died:\n" + self.log()
        return line

    def apply(self, req):
        self.n += 1
        path = os.path.join(self.tmp, f"req{self.n}.pb")
        with open(path, "wb") as f:
            f.write(req.SerializeToString())
        self.proc.stdin.write(f"apply {path}\n")
        return self.readline()

    def quit(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        return self.proc.wait(30)

    def log(self):
        with open(os.path.join(self.tmp, "netapply.log")) as f:
            return f.read()


@pytest.fixture
def env():
    global IF
    with namespace() as ns, tempfile.TemporaryDirectory() as tmp:
        IF = "wg" + ns[-8:]
        procs = []

        def start(mode=None):
            p = NetApply(ns, tmp, mode)
            procs.append(p)
            return p
        yield ns, tmp, start
        for p in procs:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait(10)


def addrs(ns):
    out = set()
    for link in ipj(ns, "addr", "show", "dev", IF):
        for a in link.get("addr_info", []):
            if a.get("scope") != "link":
                out.add(f"{a['local']}/{a['prefixlen']}")
    return out


def routes(ns):
    out = set()
    for fam in ("-4", "-6"):
        for r in ipj(ns, fam, "route", "show", "table", str(TABLE)):
            kind = r.get("type", "unicast")
            # The kernel shows IPv6 throw routes on lo; only a unicast route's link means anything.
            out.add((kind, r["dst"], r.get("dev") if kind == "unicast" else None))
    return out


def our_rules(ns):
    out = set()
    for fam in ("-4", "-6"):
        for r in ipj(ns, fam, "rule", "show"):
            if r["priority"] in (PRIO - 1, PRIO):
                out.add((fam, r["priority"], r.get("table"), "not" in r,
                         r.get("fwmark"), r.get("suppress_prefixlen")))
    return out


def snapshot(ns):
    link = ipj(ns, "link", "show", "dev", IF)
    return addrs(ns), routes(ns), our_rules(ns), link[0]["mtu"] if link else None


def test_apply_reads_back_exactly(env):
    ns, tmp, start = env
    t = start()
    assert t.ready == f"ready {IF} {wg_mode()}"
    assert os.path.exists(t.state)
    res = t.apply(router(excl4=(("100.100.100.0", "255.255.255.0"),), excl6=(("fd60:627a:a42b:ff::", 64),)))
    assert res.startswith("ok added="), res
    assert addrs(ns) == {"100.64.0.1/32", "fd60:627a:a42b:1::1/128"}
    assert routes(ns) == {("unicast", "100.64.0.0/10", IF), ("unicast", "fd60:627a:a42b::/48", IF),
                          ("throw", "100.100.100.0/24", None), ("throw", "fd60:627a:a42b:ff::/64", None)}
    assert our_rules(ns) == {("-4", PRIO, str(TABLE), True, hex(MARK), None),
                             ("-6", PRIO, str(TABLE), True, hex(MARK), None)}
    link = ipj(ns, "link", "show", "dev", IF)[0]
    assert link["mtu"] == 1280 and "UP" in link["flags"]
    assert sh("wg", "show", IF, "fwmark", ns=ns).stdout.strip() == hex(MARK)


def test_partial_updates_and_no_flapping(env):
    ns, tmp, start = env
    t = start()
    assert t.apply(router()).startswith("ok")
    before = snapshot(ns)

    mon = subprocess.Popen(["ip", "netns", "exec", ns, "ip", "monitor", "address", "route", "rule"],
                           stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    dns_only = NSR()
    dns_only.dns_settings.servers.append("fd60:627a:a42b::53")
    dns_only.dns_settings.match_domains.append("coder")
    assert t.apply(dns_only) == "ok added=0 removed=0 ipv6_skipped=0"
    assert t.apply(router()) == "ok added=0 removed=0 ipv6_skipped=0"
    time.sleep(0.5)
    mon.terminate()
    events = mon.communicate(timeout=10)[0]
    assert events.strip() == "", f"unchanged settings touched the system:\n{events}"
    assert snapshot(ns) == before

    # An IPv4-only part replaces IPv4 and leaves IPv6 alone; MTU 0 keeps the MTU.
    v4 = router(v4=(("100.64.0.9", "255.255.255.255"),), v6=None, mtu=0)
    assert t.apply(v4) == "ok added=1 removed=1 ipv6_skipped=0"
    a, r, rules, mtu = snapshot(ns)
    assert a == {"100.64.0.9/32", "fd60:627a:a42b:1::1/128"}
    assert r == before[1] and rules == before[2] and mtu == 1280


@pytest.mark.parametrize("req,field", [
    (router(v4=(("100.64.0.300", "255.255.255.255"),)), "ipv4_settings.addrs[0]"),
    (router(v4=(("100.64.0.1", "255.0.255.0"),)), "contiguous IPv4 netmask"),
    (router(v6=(("fd60::1", 129),)), "ipv6_settings.addrs[0]: prefix length 129"),
    (router(routes6=(("nonsense", 48),)), "ipv6_settings.included_routes[0]"),
    (router(mtu=100), "mtu: 100"),
])
def test_bad_settings_change_nothing(env, req, field):
    ns, tmp, start = env
    t = start()
    assert t.apply(router()).startswith("ok")
    before = snapshot(ns)
    res = t.apply(req)
    assert res.startswith("error: ") and field in res, res
    assert snapshot(ns) == before


def test_failure_midway_rolls_back(env):
    ns, tmp, start = env
    t = start()
    assert t.apply(router()).startswith("ok")
    before = snapshot(ns)
    # Someone else's route in our table, for a prefix the next update wants.
    sh("ip", "route", "add", "10.20.0.0/16", "dev", "lo", "table", str(TABLE), ns=ns)
    res = t.apply(router(v4=(("100.64.0.1", "255.255.255.255"), ("100.64.0.2", "255.255.255.255")),
                         routes4=(("100.64.0.0", "255.192.0.0"), ("10.20.0.0", "255.255.0.0")), mtu=1400))
    assert res.startswith("error: adding a route"), res
    a, r, rules, mtu = snapshot(ns)
    assert (a, rules, mtu) == (before[0], before[2], before[3])
    assert r == before[1] | {("unicast", "10.20.0.0/16", "lo")}   # the foreign route stays too


def test_full_tunnel_rules(env):
    ns, tmp, start = env
    t = start()
    res = t.apply(router(routes4=(("0.0.0.0", "0.0.0.0"),), excl4=(("192.168.0.0", "255.255.0.0"),),
                         routes6=(("::", 0),)))
    assert res.startswith("ok"), res
    assert our_rules(ns) == {
        ("-4", PRIO - 1, "main", False, None, 0), ("-4", PRIO, str(TABLE), True, hex(MARK), None),
        ("-6", PRIO - 1, "main", False, None, 0), ("-6", PRIO, str(TABLE), True, hex(MARK), None)}
    assert ("throw", "192.168.0.0/16", None) in routes(ns)
    assert ("unicast", "default", IF) in routes(ns)


def test_deleted_rules_come_back(env):
    ns, tmp, start = env
    t = start()
    assert t.apply(router()).startswith("ok")
    want = our_rules(ns)
    sh("ip", "-4", "rule", "del", "priority", str(PRIO), ns=ns)
    sh("ip", "-6", "rule", "del", "priority", str(PRIO), ns=ns)
    deadline = time.monotonic() + 5
    while our_rules(ns) != want:
        assert time.monotonic() < deadline, "rules were not restored"
        time.sleep(0.05)
    assert "Restored" in t.log()


def test_ipv6_disabled_on_the_link_is_skipped(env):
    ns, tmp, start = env
    sh("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", ns=ns)
    t = start()
    res = t.apply(router())
    assert res.endswith("ipv6_skipped=1"), res
    assert addrs(ns) == {"100.64.0.1/32"}
    assert {r for r in our_rules(ns) if r[0] == "-6"} == set()


def leftovers(ns):
    return (ipj(ns, "link", "show", "dev", IF) if IF in sh("ip", "-br", "link", ns=ns).stdout else [],
            routes(ns), our_rules(ns))


def test_clean_stop_leaves_nothing(env):
    ns, tmp, start = env
    t = start()
    assert t.apply(router(routes4=(("0.0.0.0", "0.0.0.0"),), excl4=(("10.0.0.0", "255.0.0.0"),))).startswith("ok")
    assert t.quit() == 0
    assert leftovers(ns) == ([], set(), set())
    assert not os.path.exists(t.state)


def test_crash_leftovers_are_removed(env):
    ns, tmp, start = env
    t = start()
    assert t.apply(router(excl4=(("10.0.0.0", "255.0.0.0"),))).startswith("ok")
    t.proc.kill()
    t.proc.wait(10)
    assert leftovers(ns) != ([], set(), set())
    assert os.path.exists(t.state)
    # The next start cleans first ...
    t2 = start()
    assert t2.ready.startswith("ready"), t2.ready
    assert "left behind" in t2.log()
    assert routes(ns) == set() and our_rules(ns) == set()
    t2.proc.kill()
    t2.proc.wait(10)
    # ... and so does `codervpnd cleanup`, the unit's ExecStopPost.
    p = sh(CODERVPND, "--log-target=stderr", "cleanup", "--state", t2.state, ns=ns, check=False)
    assert p.returncode == 0, p.stderr
    assert leftovers(ns) == ([], set(), set())
    assert not os.path.exists(t2.state)
    assert sh(CODERVPND, "cleanup", "--state", t2.state, ns=ns, check=False).returncode == 0


def test_foreign_interface_is_not_taken_over(env):
    ns, tmp, start = env
    sh("ip", "link", "add", IF, "type", "veth", "peer", "name", "other0", ns=ns)
    t = start()
    assert t.ready.startswith("error: the interface exists and is not ours"), t.ready
    assert t.proc.wait(10) == 1
    assert IF in sh("ip", "-br", "link", ns=ns).stdout
