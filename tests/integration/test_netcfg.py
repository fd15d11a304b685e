"""netlink/netcfg.c against the kernel, through tests/tools/netcfg-tool.

Every test runs in a network namespace of its own, made fresh and deleted
afterwards even on failure, on a TUN link (the shape of a WireGuard link:
no link-layer address, point-to-point). What the tool sets is read back with
`ip -j`, and what the tool lists is compared with what `ip -j` shows.
"""
import errno
import ipaddress
import json
import os
import subprocess
import uuid

import pytest

TOOL = os.path.abspath(os.environ.get("NETCFG_TOOL", "build/tests/netcfg-tool"))
IF = "nct0"
TABLE = 7120
TABLE_IDS = {"local": 255, "main": 254, "default": 253}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=60)


class Netns:
    def __init__(self, name):
        self.name = name

    def run(self, *argv, check=True):
        return sh("ip", "netns", "exec", self.name, *argv, check=check)

    def ip(self, *args):
        """`ip -j ARGS` in the namespace, parsed."""
        out = self.run("ip", "-j", *args).stdout.strip()
        return json.loads(out) if out else []

    def tool(self, *args):
        """Runs netcfg-tool, which must succeed; returns its stdout."""
        p = self.run(TOOL, *map(str, args), check=False)
        assert p.returncode == 0, f"netcfg-tool {' '.join(map(str, args))}: {p.stderr}"
        return p.stdout

    def tool_json(self, *args):
        return [json.loads(line) for line in self.tool(*args).splitlines()]

    def tool_fails(self, err, *args):
        """Runs netcfg-tool, which must fail with errno @err; returns its stdout."""
        p = self.run(TOOL, *map(str, args), check=False)
        assert p.returncode == err, f"netcfg-tool {' '.join(map(str, args))}: rc {p.returncode}: {p.stderr}"
        assert errno.errorcode[err] in p.stderr
        return p.stdout

    def ifindex(self, name):
        return self.ip("link", "show", "dev", name)[0]["ifindex"]

    def sysctl(self, path):
        return self.run("cat", path).stdout.strip()


@pytest.fixture
def ns():
    name = f"ncfg-{uuid.uuid4().hex[:10]}"
    sh("ip", "netns", "add", name)
    try:
        n = Netns(name)
        n.run("ip", "link", "set", "lo", "up")
        n.run("ip", "tuntap", "add", "dev", IF, "mode", "tun")
        yield n
    finally:
        sh("ip", "netns", "del", name, check=False)


@pytest.fixture
def up(ns):
    """The TUN link, up (routes through a link need it up)."""
    ns.tool("up", IF)
    return ns


def prefix(s, family):
    """An address or prefix as `ip` prints it, in the tool's canonical form."""
    if s == "default":
        s = "0.0.0.0/0" if family == "inet" else "::/0"
    return str(ipaddress.ip_network(s, strict=False)) if "/" in s else str(ipaddress.ip_interface(s))


def ip_routes(ns, family, table):
    """The routes `ip -j route show table T` lists, as (type, dst, ifindex) of the tool's output."""
    names = {link["ifname"]: link["ifindex"] for link in ns.ip("link")}
    out = set()
    for r in ns.ip("-4" if family == "inet" else "-6", "route", "show", "table", str(table)):
        kind = r.get("type", "unicast")
        out.add((kind, prefix(r["dst"], family), names[r["dev"]] if kind == "unicast" else 0))
    return out


def tool_routes(ns, family, table, *ifname):
    return {(r["type"], r["dst"], r["ifindex"]) for r in ns.tool_json("route-list", family, table, *ifname)}


def ip_rules(ns, family):
    """`ip -j rule` as the tool prints rules."""
    out = []
    for r in ns.ip("-4" if family == "inet" else "-6", "rule"):
        has_mark = "fwmark" in r
        out.append({
            "family": family,
            "priority": r["priority"],
            "table": TABLE_IDS.get(r["table"]) or int(r["table"]),
            "fwmark": int(r["fwmark"], 16) if has_mark else 0,
            "fwmask": int(r.get("fwmask", "0xffffffff"), 16) if has_mark else 0,
            "invert": "not" in r,
            "suppress_prefixlen": r.get("suppress_prefixlen", -1),
        })
    return out


def addr_info(ns):
    return {(a["family"], a["local"], a["prefixlen"]) for a in ns.ip("addr", "show", "dev", IF)[0]["addr_info"]}


# Links.

def test_link_index_mtu_up_down(ns):
    assert int(ns.tool("index", IF)) == ns.ifindex(IF)
    ns.tool_fails(errno.ENODEV, "index", "nosuch0")

    ns.tool("mtu", IF, 1280)
    assert ns.ip("link", "show", "dev", IF)[0]["mtu"] == 1280
    assert int(ns.tool("get-mtu", IF)) == 1280

    assert int(ns.tool("is-up", IF)) == 0
    ns.tool("up", IF)
    assert "UP" in ns.ip("link", "show", "dev", IF)[0]["flags"]
    assert int(ns.tool("is-up", IF)) == 1
    ns.tool("down", IF)
    assert "UP" not in ns.ip("link", "show", "dev", IF)[0]["flags"]
    assert int(ns.tool("is-up", IF)) == 0
    # Only IFF_UP moved: the MTU is still what was set.
    assert ns.ip("link", "show", "dev", IF)[0]["mtu"] == 1280


def test_link_delete(ns):
    ns.run("ip", "link", "add", "ncv0", "type", "veth", "peer", "name", "ncv1")
    ns.tool("link-del", "ncv0")
    names = {link["ifname"] for link in ns.ip("link")}
    assert "ncv0" not in names and "ncv1" not in names
    ns.tool_fails(errno.ENODEV, "link-del", "ncv0")


# Addresses.

def test_addresses_v4_v6(up):
    ns = up
    ns.tool("addr-add", IF, "10.1.2.3/24")
    ns.tool("addr-add", IF, "fd00:1::5/64")
    ns.tool("addr-add", IF, "100.64.0.1")
    assert addr_info(ns) >= {("inet", "10.1.2.3", 24), ("inet6", "fd00:1::5", 64), ("inet", "100.64.0.1", 32)}
    got = {a["prefix"] for a in ns.tool_json("addr-list", IF)}
    assert got == {"10.1.2.3/24", "fd00:1::5/64", "100.64.0.1/32"}

    ns.tool_fails(errno.EEXIST, "addr-add", IF, "10.1.2.3/24")
    ns.tool_fails(errno.EEXIST, "addr-add", IF, "fd00:1::5/64")

    ns.tool("addr-del", IF, "10.1.2.3/24")
    ns.tool("addr-del", IF, "fd00:1::5/64")
    assert ("inet", "10.1.2.3", 24) not in addr_info(ns)
    assert ("inet6", "fd00:1::5", 64) not in addr_info(ns)
    assert {a["prefix"] for a in ns.tool_json("addr-list", IF)} == {"100.64.0.1/32"}
    ns.tool_fails(errno.EADDRNOTAVAIL, "addr-del", IF, "10.1.2.3/24")
    ns.tool_fails(errno.EADDRNOTAVAIL, "addr-del", IF, "fd00:1::5/64")


def test_address_list_leaves_out_link_local_and_temporary(up):
    ns = up
    ns.run("ip", "addr", "add", "fe80::99/64", "dev", IF)
    ns.run("ip", "addr", "add", "10.5.5.5/32", "dev", IF, "valid_lft", "600", "preferred_lft", "600")
    ns.tool("addr-add", IF, "fd00:2::1/128")
    assert ("inet6", "fe80::99", 64) in addr_info(ns)
    assert ("inet", "10.5.5.5", 32) in addr_info(ns)
    assert [a["prefix"] for a in ns.tool_json("addr-list", IF)] == ["fd00:2::1/128"]


def test_address_list_is_per_link(up):
    ns = up
    ns.run("ip", "tuntap", "add", "dev", "nct1", "mode", "tun")
    ns.tool("addr-add", "nct1", "10.3.3.3/24")
    ns.tool("addr-add", IF, "10.4.4.4/24")
    assert [a["prefix"] for a in ns.tool_json("addr-list", "nct1")] == ["10.3.3.3/24"]
    assert [a["prefix"] for a in ns.tool_json("addr-list", IF)] == ["10.4.4.4/24"]


# Routes.

def test_routes_in_dedicated_table(up):
    ns = up
    idx = ns.ifindex(IF)
    ns.tool("route-add", TABLE, IF, "10.9.0.0/16")
    ns.tool("route-add", TABLE, IF, "fd01::/64")
    ns.tool("route-throw", TABLE, "10.8.0.0/16")
    ns.tool("route-throw", TABLE, "fd02::/64")

    v4 = {r["dst"]: r for r in ns.ip("-4", "route", "show", "table", str(TABLE))}
    assert v4["10.9.0.0/16"]["dev"] == IF
    assert v4["10.9.0.0/16"]["scope"] == "link"
    assert v4["10.9.0.0/16"]["protocol"] == "static"
    assert "gateway" not in v4["10.9.0.0/16"]
    assert v4["10.8.0.0/16"]["type"] == "throw"
    assert "dev" not in v4["10.8.0.0/16"]
    v6 = {r["dst"]: r for r in ns.ip("-6", "route", "show", "table", str(TABLE))}
    assert v6["fd01::/64"]["dev"] == IF and v6["fd01::/64"]["protocol"] == "static"
    assert v6["fd02::/64"]["type"] == "throw"

    want = {("unicast", "10.9.0.0/16", idx), ("unicast", "fd01::/64", idx),
            ("throw", "10.8.0.0/16", 0), ("throw", "fd02::/64", 0)}
    assert tool_routes(ns, "all", TABLE) == want
    assert tool_routes(ns, "inet", TABLE) == ip_routes(ns, "inet", TABLE)
    assert tool_routes(ns, "inet6", TABLE) == ip_routes(ns, "inet6", TABLE)
    # Only @ifindex: throw routes have no link.
    assert tool_routes(ns, "all", TABLE, IF) == {r for r in want if r[0] == "unicast"}
    assert tool_routes(ns, "all", TABLE + 1) == set()

    for r in ns.tool_json("route-list", "all", TABLE):
        assert r["table"] == TABLE


def test_route_errors_and_delete(up):
    ns = up
    ns.tool("route-add", TABLE, IF, "10.9.0.0/16")
    ns.tool("route-throw", TABLE, "fd02::/64")
    ns.tool_fails(errno.EEXIST, "route-add", TABLE, IF, "10.9.0.0/16")
    ns.tool_fails(errno.EEXIST, "route-throw", TABLE, "fd02::/64")

    ns.tool("route-del", TABLE, IF, "10.9.0.0/16")
    ns.tool("route-throw-del", TABLE, "fd02::/64")
    assert ns.ip("route", "show", "table", str(TABLE)) == []
    assert ns.ip("-6", "route", "show", "table", str(TABLE)) == []
    ns.tool_fails(errno.ESRCH, "route-del", TABLE, IF, "10.9.0.0/16")
    ns.tool_fails(errno.ESRCH, "route-del", TABLE, IF, "fd03::/64")
    ns.tool_fails(errno.ESRCH, "route-throw-del", TABLE, "fd02::/64")


def test_route_delete_leaves_routes_of_others(up):
    ns = up
    ns.run("ip", "route", "add", "10.66.0.0/16", "dev", IF, "table", str(TABLE))
    ns.tool_fails(errno.ESRCH, "route-del", TABLE, IF, "10.66.0.0/16")
    assert [r["dst"] for r in ns.ip("route", "show", "table", str(TABLE))] == ["10.66.0.0/16"]
    # Listed all the same: lists show what the kernel holds.
    assert tool_routes(ns, "inet", TABLE) == {("unicast", "10.66.0.0/16", ns.ifindex(IF))}


def test_route_destination_is_masked(up):
    ns = up
    ns.tool("route-add", TABLE, IF, "10.7.1.2/16")
    ns.tool("route-add", TABLE, IF, "fd07::1:2/64", 50)
    assert [r["dst"] for r in ns.ip("route", "show", "table", str(TABLE))] == ["10.7.0.0/16"]
    six = ns.ip("-6", "route", "show", "table", str(TABLE))
    assert [(r["dst"], r["metric"]) for r in six] == [("fd07::/64", 50)]
    ns.tool("route-del", TABLE, IF, "10.7.9.9/16")
    assert ns.ip("route", "show", "table", str(TABLE)) == []


def test_routes_in_main_table(up):
    ns = up
    idx = ns.ifindex(IF)
    ns.tool("addr-add", IF, "10.1.2.3/24")
    ns.tool("addr-add", IF, "fd00:1::5/64")
    ns.tool("route-add", "main", IF, "10.77.0.0/16")
    ns.tool("route-add", "main", IF, "fd77::/48")
    ns.tool("route-throw", "main", "10.78.0.0/16")

    assert "10.77.0.0/16" in {r["dst"] for r in ns.ip("route", "show", "table", "main")}
    got4 = tool_routes(ns, "inet", "main")
    assert got4 == ip_routes(ns, "inet", "main")
    assert {("unicast", "10.77.0.0/16", idx), ("unicast", "10.1.2.0/24", idx), ("throw", "10.78.0.0/16", 0)} <= got4
    got6 = tool_routes(ns, "inet6", "main")
    assert got6 == ip_routes(ns, "inet6", "main")
    assert {("unicast", "fd77::/48", idx), ("unicast", "fd00:1::/64", idx)} <= got6
    # The kernel's prefix route is listed, but is not ours to delete.
    ns.tool_fails(errno.ESRCH, "route-del", "main", IF, "10.1.2.0/24")
    ns.tool("route-del", "main", IF, "10.77.0.0/16")
    assert "10.77.0.0/16" not in {r["dst"] for r in ns.ip("route", "show", "table", "main")}


@pytest.mark.parametrize("family,base,table", [("inet", "10.200.0.0", 7121), ("inet6", "fd10::", 7122)])
def test_route_add_many_1000(up, family, base, table):
    ns = up
    assert ns.tool_json("route-add-many", table, IF, 1000, base) == [{"done": 1000}]

    first = ipaddress.ip_address(base)
    want = {("unicast", str(ipaddress.ip_interface(first + i)), ns.ifindex(IF)) for i in range(1000)}
    listed = ns.tool_json("route-list", family, table)
    assert len(listed) == 1000
    assert {(r["type"], r["dst"], r["ifindex"]) for r in listed} == want
    shown = ns.run("ip", "-4" if family == "inet" else "-6", "route", "show", "table", str(table)).stdout
    assert len(shown.splitlines()) == 1000
    assert ip_routes(ns, family, table) == want


def test_route_add_many_stops_at_first_failure(up):
    ns = up
    table = 7123
    # Route 500 of the run is there already: 10.201.0.0 + 500 = 10.201.1.244.
    ns.tool("route-add", table, IF, "10.201.1.244/32")
    out = ns.tool_fails(errno.EEXIST, "route-add-many", table, IF, 1000, "10.201.0.0")
    assert json.loads(out) == {"done": 500}
    # The first 500 went in; the ones sent after the failure were taken back out.
    want = {str(ipaddress.ip_address("10.201.0.0") + i) for i in range(500)} | {"10.201.1.244"}
    assert {r["dst"] for r in ns.ip("route", "show", "table", str(table))} == want


def test_route_add_many_nothing(up):
    assert up.tool_json("route-add-many", 7124, IF, 0, "10.202.0.0") == [{"done": 0}]


# Rules.

def test_rules_add_list_delete(ns):
    ns.tool("rule-add", "inet", 5210, TABLE, "not", "fwmark", "0x1bd00/0xffffffff")
    ns.tool("rule-add", "inet", 5209, "main", "suppress", 0)
    ns.tool("rule-add", "inet6", 5210, TABLE, "not", "fwmark", "0x1bd00/0xffffffff")
    ns.tool("rule-add", "inet6", 5209, "main", "suppress", 0)
    ns.tool("rule-add", "inet", 5300, TABLE, "fwmark", "0x100/0xff00")

    for family in ("inet", "inet6"):
        shown = {r["priority"]: r for r in ns.ip("-4" if family == "inet" else "-6", "rule")}
        assert shown[5210] == {"priority": 5210, "not": None, "src": "all", "fwmark": "0x1bd00", "table": str(TABLE)}
        assert shown[5209] == {"priority": 5209, "src": "all", "table": "main", "suppress_prefixlen": 0}
        assert ns.tool_json("rule-list", family) == ip_rules(ns, family)
    shown = {r["priority"]: r for r in ns.ip("-4", "rule")}
    assert shown[5300]["fwmark"] == "0x100" and shown[5300]["fwmask"] == "0xff00"

    rules = {(r["family"], r["priority"]): r for r in ns.tool_json("rule-list", "all")}
    assert rules[("inet", 5210)] == {"family": "inet", "priority": 5210, "table": TABLE, "fwmark": 0x1bd00,
                                     "fwmask": 0xffffffff, "invert": True, "suppress_prefixlen": -1}
    assert rules[("inet6", 5209)] == {"family": "inet6", "priority": 5209, "table": 254, "fwmark": 0,
                                      "fwmask": 0, "invert": False, "suppress_prefixlen": 0}
    assert set(rules) == {(f, p) for f in ("inet", "inet6") for p in (0, 5209, 5210, 32766)} | {
        ("inet", 32767), ("inet", 5300)}

    ns.tool_fails(errno.EEXIST, "rule-add", "inet", 5210, TABLE, "not", "fwmark", "0x1bd00/0xffffffff")

    ns.tool("rule-del", "inet", 5210, TABLE, "not", "fwmark", "0x1bd00/0xffffffff")
    ns.tool("rule-del", "inet", 5209, "main", "suppress", 0)
    assert {r["priority"] for r in ns.ip("-4", "rule")} == {0, 5300, 32766, 32767}
    assert {r["priority"] for r in ns.ip("-6", "rule")} == {0, 5209, 5210, 32766}
    ns.tool_fails(errno.ENOENT, "rule-del", "inet", 5210, TABLE, "not", "fwmark", "0x1bd00/0xffffffff")


def test_rule_list_leaves_out_what_it_cannot_express(ns):
    ns.run("ip", "rule", "add", "from", "10.0.0.0/8", "lookup", str(TABLE), "priority", "5400")
    ns.run("ip", "rule", "add", "priority", "5401", "blackhole")
    assert {r["priority"] for r in ns.tool_json("rule-list", "inet")} == {0, 32766, 32767}


# /proc/sys/net.

def test_ipv6_enabled(ns):
    assert int(ns.tool("ipv6-enabled", IF)) == 1
    ns.run("sysctl", "-qw", f"net.ipv6.conf.{IF}.disable_ipv6=1")
    assert int(ns.tool("ipv6-enabled", IF)) == 0
    assert int(ns.tool("ipv6-enabled", "nosuch0")) == 0
    ns.tool_fails(errno.EINVAL, "ipv6-enabled", "../all")


def test_src_valid_mark(ns):
    path = "/proc/sys/net/ipv4/conf/all/src_valid_mark"
    ns.tool("src-valid-mark", 1)
    assert ns.sysctl(path) == "1"
    ns.tool("src-valid-mark", 0)
    assert ns.sysctl(path) == "0"
