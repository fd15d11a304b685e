"""resolved/ against a real systemd-resolved on a private system bus.

Everything runs inside a fresh network + mount namespace (a holder process made
with `unshare --net --mount`, entered with nsenter) with its own tmpfs on /run
and sysfs on /sys, so /run/systemd/resolve is this test's and the host's
resolver configuration is never touched. dbus-daemon listens on a socket in a
temporary directory; children get DBUS_SYSTEM_BUS_ADDRESS.
"""
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import vpn_pb2

RESOLVEDTOOL = os.path.abspath(os.environ.get("RESOLVEDTOOL", "build/tests/resolvedtool"))
RESOLVED_BIN = "/lib/systemd/systemd-resolved"
SYSTEM_CONF = "/usr/share/dbus-1/system.conf"
IF = "cvtun0"

# What every test against a private resolved needs (test_split_dns.py adds its own).
REQUIRES_RESOLVED = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, TUN, veth)"),
    pytest.mark.skipif(not os.path.exists(RESOLVED_BIN), reason="systemd-resolved is not installed"),
    pytest.mark.skipif(not shutil.which("dbus-daemon"), reason="dbus-daemon is not installed"),
]
pytestmark = REQUIRES_RESOLVED


def bus_config(socket_path):
    """The system bus policy (root may own names, everyone may connect), on our socket."""
    with open(SYSTEM_CONF) as f:
        conf = f.read()
    conf = re.sub(r"<listen>.*?</listen>", f"<listen>unix:path={socket_path}</listen>", conf)
    for pattern in (r"<user>.*?</user>", r"<pidfile>.*?</pidfile>", r"<fork\s*/>",
                    r"<standard_system_servicedirs\s*/>", r"<servicehelper>.*?</servicehelper>"):
        conf = re.sub(pattern, "", conf)
    conf = conf.replace("<includedir>system.d</includedir>",
                        "<includedir>/usr/share/dbus-1/system.d</includedir>")
    return conf


class Scenario:
    def __init__(self, tmp):
        self.tmp = tmp
        os.chmod(tmp, 0o755)  # nobody must reach the bus socket and the request files
        self.sock = os.path.join(tmp, "system_bus_socket")
        self.env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={self.sock}",
                        SYSTEMD_PAGER="", SYSTEMD_COLORS="0", LC_ALL="C")
        self.procs = []
        self.holder = None
        self.holder = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", "--",
             "sh", "-c", "mount -t tmpfs tmpfs /run && mount -t sysfs sysfs /sys && "
                         "mkdir -p /run/systemd /run/dbus && ip link set lo up && echo ready && exec sleep 600"],
            stdout=subprocess.PIPE, text=True)
        assert self.holder.stdout.readline().strip() == "ready"
        self.pid = self.holder.pid
        self.resolved = None
        self.resolved_log = open(os.path.join(tmp, "resolved.log"), "ab")
        try:
            self._start_bus()
        except BaseException:
            self.close()
            raise

    def _start_bus(self):
        tmp = self.tmp
        conf = os.path.join(tmp, "bus.conf")
        with open(conf, "w") as f:
            f.write(bus_config(self.sock))
        self.bus = self.spawn(["dbus-daemon", f"--config-file={conf}", "--nofork", "--nopidfile",
                               "--print-address=1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.bus.stdout.readline().startswith("unix:")

    def argv(self, argv):
        return ["nsenter", "-t", str(self.pid), "-n", "-m", "--", *argv]

    def spawn(self, argv, **kw):
        kw.setdefault("env", self.env)
        p = subprocess.Popen(self.argv(argv), **kw)
        self.procs.append(p)
        return p

    def sh(self, *argv, check=True):
        return subprocess.run(self.argv(argv), env=self.env, capture_output=True, text=True, timeout=20,
                              check=check)

    def start_resolved(self):
        self.resolved = self.spawn([RESOLVED_BIN], stdout=self.resolved_log, stderr=self.resolved_log,
                                   env=dict(self.env, SYSTEMD_LOG_LEVEL="debug", SYSTEMD_LOG_TARGET="console"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = self.sh("busctl", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                        "NameHasOwner", "s", "org.freedesktop.resolve1", check=False)
            if r.stdout.strip() == "b true":
                return
            assert self.resolved.poll() is None, f"systemd-resolved exited: {self.log()[-4000:]}"
            time.sleep(0.05)
        raise AssertionError(f"systemd-resolved did not take its bus name: {self.log()[-4000:]}")

    def stop_resolved(self, sig=signal.SIGKILL):
        self.resolved.send_signal(sig)
        self.resolved.wait(10)
        self.procs.remove(self.resolved)
        self.resolved = None

    def log(self):
        with open(os.path.join(self.tmp, "resolved.log"), errors="replace") as f:
            return f.read()

    def add_tun(self, name=IF):
        self.sh("ip", "tuntap", "add", "dev", name, "mode", "tun")
        self.sh("ip", "link", "set", name, "up")
        self.sh("ip", "-6", "addr", "add", "fd60:627a:a42b::1/48", "dev", name)
        return int(self.sh("cat", f"/sys/class/net/{name}/ifindex").stdout)

    def resolvectl(self, *args):
        return self.sh("resolvectl", "--no-pager", *args).stdout

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self.holder:
            self.holder.kill()
            self.holder.wait(5)
        self.resolved_log.close()


class Tool:
    def __init__(self, scenario, link, req, user=None, group=None):
        path = os.path.join(scenario.tmp, f"req-{time.monotonic_ns()}.bin")
        with open(path, "wb") as f:
            f.write(req.SerializeToString())
        os.chmod(path, 0o644)
        argv = [RESOLVEDTOOL, str(link), "apply", path]
        if user:
            argv = ["setpriv", f"--reuid={user}", f"--regid={group or user}", "--clear-groups", *argv]
        self.proc = scenario.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def readline(self, timeout=10):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert r, "resolvedtool said nothing"
        line = self.proc.stdout.readline()
        assert line, "resolvedtool exited"
        return line.strip()

    def expect_silence(self, seconds):
        r, _, _ = select.select([self.proc.stdout], [], [], seconds)
        if r:
            raise AssertionError(f"unexpected output: {self.proc.stdout.readline()!r}")

    def quit(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        line = self.readline()
        return line, self.proc.wait(10)


@pytest.fixture
def scenario():
    tmp = tempfile.mkdtemp(prefix="cvt-resolved-")
    s = None
    try:
        s = Scenario(tmp)
        yield s
    finally:
        if s:
            s.close()
        shutil.rmtree(tmp, ignore_errors=True)


def coder_request(no_search=False, servers=("fd60:627a:a42b::53",)):
    req = vpn_pb2.NetworkSettingsRequest()
    req.dns_settings.servers.extend(servers)
    req.dns_settings.domain_name = "coder"
    req.dns_settings.match_domains.append("coder")
    req.dns_settings.match_domains_no_search = no_search
    return req


def link_value(out):
    """`Link 2 (cvtun0): VALUE` -> VALUE."""
    m = re.search(r"^Link \d+ \([^)]*\):\s*(.*)$", out, re.M)
    assert m, out
    return m.group(1).strip()


def assert_coder_dns(s, domain="coder"):
    assert link_value(s.resolvectl("domain", IF)) == domain
    assert link_value(s.resolvectl("dns", IF)) == "fd60:627a:a42b::53"
    assert link_value(s.resolvectl("default-route", IF)) == "no"
    assert link_value(s.resolvectl("llmnr", IF)) == "no"
    assert link_value(s.resolvectl("mdns", IF)) == "no"
    status = s.resolvectl("status", IF)
    assert "-DefaultRoute" in status and "-LLMNR" in status and "-mDNS" in status, status


def assert_reverted(s):
    assert link_value(s.resolvectl("domain", IF)) == ""
    assert link_value(s.resolvectl("dns", IF)) == ""


def test_apply_restart_quit(scenario):
    s = scenario
    s.start_resolved()
    s.add_tun()
    t = Tool(s, IF, coder_request())
    assert t.readline() == "applied"
    # match domains are search domains too: a plain domain, which resolved also routes on
    assert_coder_dns(s, "coder")

    # resolved restarts and (state files removed) forgets everything: re-applied within a second or two
    s.stop_resolved()
    shutil.rmtree("/proc/%d/root/run/systemd/resolve/netif" % s.pid, ignore_errors=True)
    began = time.monotonic()
    s.start_resolved()
    assert t.readline(timeout=5) == "applied"
    assert time.monotonic() - began < 3
    assert_coder_dns(s, "coder")

    assert t.quit() == ("reverted", 0)
    assert_reverted(s)


def test_match_domains_no_search_is_routing_only(scenario):
    s = scenario
    s.start_resolved()
    s.add_tun()
    t = Tool(s, IF, coder_request(no_search=True))
    assert t.readline() == "applied"
    assert_coder_dns(s, "~coder")
    assert t.quit() == ("reverted", 0)
    assert_reverted(s)


def test_full_tunnel_dns_is_default_route(scenario):
    s = scenario
    s.start_resolved()
    s.add_tun()
    req = vpn_pb2.NetworkSettingsRequest()
    req.dns_settings.servers.extend(["100.100.100.100", "fd60:627a:a42b::53"])
    req.dns_settings.search_domains.append("example.com.")
    t = Tool(s, IF, req)
    assert t.readline() == "applied"
    assert link_value(s.resolvectl("domain", IF)).split() == ["example.com", "~."]
    assert link_value(s.resolvectl("dns", IF)).split() == ["100.100.100.100", "fd60:627a:a42b::53"]
    assert link_value(s.resolvectl("default-route", IF)) == "yes"
    assert t.quit() == ("reverted", 0)


def test_apply_before_resolved_knows_the_link(scenario):
    """NoSuchLink is retried: the link is created ~300 ms after the first attempt."""
    s = scenario
    s.start_resolved()
    # A fresh namespace numbers links from 1 (lo): the TUN link will be 2.
    t = Tool(s, 2, coder_request())
    deadline = time.monotonic() + 3
    while "not known" not in s.log():  # resolved refused the first attempt (NoSuchLink)
        assert time.monotonic() < deadline, "resolved never answered NoSuchLink"
        time.sleep(0.02)
    time.sleep(0.3)
    assert s.add_tun() == 2
    assert t.readline(timeout=6) == "applied"
    assert_coder_dns(s, "coder")
    assert t.quit() == ("reverted", 0)


def test_link_that_never_appears_fails_bounded(scenario):
    s = scenario
    s.start_resolved()
    began = time.monotonic()
    t = Tool(s, 7, coder_request())
    line = t.readline(timeout=10)
    assert line.startswith("error: systemd-resolved SetLinkDomains on 7: link not known"), line
    assert 4 < time.monotonic() - began < 8


def test_unprivileged_caller_is_told_about_polkit(scenario):
    s = scenario
    s.start_resolved()
    s.add_tun()
    t = Tool(s, IF, coder_request(), user="nobody", group="nogroup")
    line = t.readline()
    print(line)
    assert line.startswith(f"error: systemd-resolved SetLinkDomains on {IF}: access denied"), line
    # resolved without polkit refuses unprivileged callers with a plain AccessDenied
    assert "org.freedesktop.DBus.Error.AccessDenied" in line, line
    for action in ("set-dns-servers", "set-domains", "set-default-route", "set-llmnr", "set-mdns", "revert"):
        assert f"org.freedesktop.resolve1.{action}" in line
    assert link_value(s.resolvectl("domain", IF)) == ""
    line, code = t.quit()
    assert line.startswith("error: systemd-resolved RevertLink") and code == 1


def test_link_managed_by_networkd_is_busy(scenario):
    """resolved refuses links networkd manages (its state file says so): LinkBusy -> the Unmanaged=yes advice."""
    s = scenario
    # Written before resolved and the link exist, so resolved reads it when it first sees the link
    # (a fresh namespace numbers links from 1, lo: the TUN link is 2).
    links = "/proc/%d/root/run/systemd/netif/links" % s.pid
    os.makedirs(links, exist_ok=True)
    with open(os.path.join(links, "2"), "w") as f:
        f.write("ADMIN_STATE=configured\nOPER_STATE=routable\n")
    s.start_resolved()
    assert s.add_tun() == 2
    t = Tool(s, IF, coder_request())
    line = t.readline()
    print(line)
    assert "managed by systemd-networkd" in line, line
    assert f"[Match] Name={IF}" in line and "[Link] Unmanaged=yes" in line, line


def test_resolved_not_running_then_appears(scenario):
    s = scenario
    s.add_tun()
    t = Tool(s, IF, coder_request())
    line = t.readline()
    assert line.startswith("error: systemd-resolved SetLinkDomains"), line
    s.start_resolved()
    assert t.readline(timeout=5) == "applied"
    assert_coder_dns(s, "coder")
    assert t.quit() == ("reverted", 0)
