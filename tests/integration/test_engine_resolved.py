"""The engine with [DNS] Mode=resolved against a real systemd-resolved on a private bus
(test_resolved.Scenario: its own network and mount namespace, so /run and the host's
resolver are untouched): `codervpnd up` gives its tunnel link the responder address and
the routing domain, resolved answers peer names from the built-in responder, a resolved
restart gets the settings back, and SIGTERM, or kill -9 then `codervpnd cleanup`, leave
resolved with no trace of the link.
"""
import os
import shutil
import signal
import tempfile

import pytest

import wgutil
from childlog import ChildLog
from conftest import CODERVPND
from netns import wg_mode
from polling import wait_until
from test_resolved import REQUIRES_RESOLVED, Scenario, link_value
from topology import unique_ifname

pytestmark = REQUIRES_RESOLVED

DNS_ADDR = "100.100.100.100"
PEER_NAME = "dev.ws.me.coder"
PEER_ADDR = "100.64.0.2"


class Engine:
    def __init__(self, scenario):
        self.s = scenario
        self.ifname = unique_ifname("cvres")
        self.conf = os.path.join(scenario.tmp, "codervpnd.conf")
        self.log = ChildLog()
        self.proc = None
        with open(self.conf, "w") as f:
            f.write("\n".join([
                "[Interface]", f"Name = {self.ifname}", f"PrivateKeyFile = {scenario.tmp}/private.key",
                "Address = 100.64.0.1/32", f"WireGuard = {wg_mode()}",
                "[DNS]", "Mode = resolved", f"Address = {DNS_ADDR}", "Domain = me.coder",
                "[Peer]", f"PublicKey = {wgutil.pubkey(wgutil.genkey())}", f"AllowedIPs = {PEER_ADDR}/32",
                f"Name = {PEER_NAME}", "Workspace = ws", "Agent = dev", ""]))

    def start(self):
        self.log.clear()
        self.proc = self.s.spawn([CODERVPND, "--log-target=stderr", "--log-level=debug", "up", "--config",
                                  self.conf, "--no-socket"], stderr=self.log)
        wait_until("the DNS settings in resolved", lambda: self.proc.poll() is not None or
                   f"DNS for {self.ifname} set in systemd-resolved" in self.log.read())
        assert self.proc.poll() is None, self.log.read()

    def link_dns(self):
        got = self.s.sh("resolvectl", "--no-pager", "dns", self.ifname, check=False)
        return link_value(got.stdout) if got.returncode == 0 else None

    def link_known(self):
        return self.ifname in self.s.sh("resolvectl", "--no-pager", "status").stdout

    def query(self):
        return self.s.sh("resolvectl", "--no-pager", "query", "--cache=no", PEER_NAME, check=False)


@pytest.fixture
def engine():
    tmp = tempfile.mkdtemp(prefix="cvt-engine-resolved-")
    s = None
    try:
        s = Scenario(tmp)
        s.start_resolved()
        e = Engine(s)
        yield e
        if e.proc and e.proc.poll() is None:
            e.proc.kill()
            e.proc.wait(10)
        s.sh(CODERVPND, "cleanup", check=False)
    finally:
        if s:
            s.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_peer_names_resolve_through_resolved(engine):
    engine.start()
    assert engine.link_dns() == DNS_ADDR
    assert link_value(engine.s.resolvectl("domain", engine.ifname)) == "me.coder"
    assert link_value(engine.s.resolvectl("default-route", engine.ifname)) == "no"
    got = engine.query()
    assert got.returncode == 0 and f"{PEER_NAME}: {PEER_ADDR}" in got.stdout, (got, engine.log.read())
    assert f"-- link: {engine.ifname}" in got.stdout, got.stdout
    # A name under the domain that no peer has is NXDOMAIN from the responder, not a fallback.
    got = engine.s.sh("resolvectl", "--no-pager", "query", "--cache=no", "nobody.ws.me.coder", check=False)
    assert got.returncode != 0 and "Name 'nobody.ws.me.coder' not found" in got.stderr, got


def test_resolved_restart_gets_the_settings_back(engine):
    engine.start()
    engine.s.stop_resolved()
    engine.s.start_resolved()
    wait_until("the settings re-applied", lambda: engine.link_dns() == DNS_ADDR)
    got = engine.query()
    assert got.returncode == 0 and PEER_ADDR in got.stdout, (got, engine.log.read())
    assert engine.proc.poll() is None


def test_sigterm_leaves_resolved_clean(engine):
    engine.start()
    engine.proc.send_signal(signal.SIGTERM)
    assert engine.proc.wait(30) == 0, engine.log.read()
    wait_until("resolved forgot the link", lambda: not engine.link_known())
    assert engine.query().returncode != 0


def test_kill9_then_cleanup_leaves_resolved_clean(engine):
    engine.start()
    engine.proc.kill()
    engine.proc.wait(10)
    assert engine.link_dns() == DNS_ADDR      # what a crash leaves behind
    got = engine.s.sh(CODERVPND, "--log-target=stderr", "cleanup", check=False)
    assert got.returncode == 0, got
    wait_until("resolved forgot the link", lambda: not engine.link_known())
