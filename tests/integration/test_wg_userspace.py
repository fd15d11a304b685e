"""Userspace WireGuard (wireguard-go over UAPI) through netlink/wg.h, driven with wgtool.

Needs root, /dev/net/tun, wireguard-go and wg(8). Everything happens inside two
network namespaces of this test (joined by a veth pair); they are deleted at the
end, even on failure. wireguard-go's UAPI sockets live in the machine-wide
/var/run/wireguard, so interface names are unique per run.
"""
import base64
import ipaddress
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

from wgutil import WGTOOL, genkey, in_ns, many_peers, pubkey, run, sync_stats, wgtool, write_config

SOCKET_DIR = "/var/run/wireguard"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, TUN)"),
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="needs /dev/net/tun"),
    pytest.mark.skipif(shutil.which("wireguard-go") is None, reason="needs wireguard-go"),
    pytest.mark.skipif(shutil.which("wg") is None, reason="needs wg (wireguard-tools)"),
]


@pytest.fixture(autouse=True)
def wgtool_built():
    assert os.access(WGTOOL, os.X_OK), f"{WGTOOL} is not built (make $(BUILD)/tests/wgtool, or set WGTOOL)"














def sock_path(ifname):
    return os.path.join(SOCKET_DIR, ifname + ".sock")


def uapi_pid(ifname):
    """The pid of the process listening on the UAPI socket (SO_PEERCRED), or None."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sock_path(ifname))
        pid, _, _ = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        return pid
    except OSError:
        return None
    finally:
        s.close()


def process_state(pid):
    """The state letter of /proc/PID/stat ("Z": exited, not reaped), or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0]
    except FileNotFoundError:
        return None


def link_exists(ns, ifname):
    return in_ns(ns, "ip", "link", "show", "dev", ifname, check=False).returncode == 0


def wait_for(predicate, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)




def parse_dump(text):
    """`wg show IFNAME dump`: (device fields, {public key: peer fields})."""
    lines = [line.split("\t") for line in text.splitlines() if line]
    assert lines, "empty dump"
    device, peers = lines[0], {}
    assert len(device) == 4, device
    for fields in lines[1:]:
        assert len(fields) == 8, fields
        peers[fields[0]] = fields
    return device, peers


# Peer columns that change on their own: latest handshake, rx bytes, tx bytes.
VOLATILE = (4, 5, 6)


def stable(dump):
    device, peers = dump
    return device, {k: [f for i, f in enumerate(v) if i not in VOLATILE] for k, v in peers.items()}


def cleanup_interface(ns, ifname):
    """Best effort, for teardown: delete the link, stop its wireguard-go, remove the socket."""
    if ns:
        in_ns(ns, WGTOOL, "--mode", "userspace", ifname, "delete", check=False)
    pid = uapi_pid(ifname)
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.unlink(sock_path(ifname))
    except FileNotFoundError:
        pass


class Pair:
    """Two network namespaces joined by a veth pair (10.99.0.1/24 <-> 10.99.0.2/24)."""

    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.ns = (f"wgtest-{tag}-a", f"wgtest-{tag}-b")
        self.veth = (f"vwg{tag}a", f"vwg{tag}b")
        self.wg = (f"wga{tag}", f"wgb{tag}")
        self.underlay = ("10.99.0.1", "10.99.0.2")
        self.tunnel = ("10.98.0.1", "10.98.0.2")
        self.port = (51820, 51821)
        self.interfaces = []    # (ns, ifname) to clean up
        self.dir = tempfile.mkdtemp(prefix="wgtest-")

    def setup(self):
        for ns in self.ns:
            run("ip", "netns", "add", ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "link", "add", self.veth[0], "netns", self.ns[0], "type", "veth",
            "peer", "name", self.veth[1], "netns", self.ns[1])
        for i in range(2):
            run("ip", "-n", self.ns[i], "addr", "add", f"{self.underlay[i]}/24", "dev", self.veth[i])
            run("ip", "-n", self.ns[i], "link", "set", self.veth[i], "up")

    def teardown(self):
        for ns, ifname in self.interfaces:
            cleanup_interface(ns, ifname)
        for ns in self.ns:
            run("ip", "netns", "del", ns, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def create(self, i, ifname=None):
        ifname = ifname or self.wg[i]
        self.interfaces.append((self.ns[i], ifname))
        wgtool(self.ns[i], "--mode", "userspace", ifname, "create")
        return ifname

    def path(self, name):
        return os.path.join(self.dir, name)

    def bring_up(self):
        """Both tunnel ends configured with each other, addressed, up; a ping has gone through."""
        self.priv = (genkey(), genkey())
        self.pub = tuple(pubkey(k) for k in self.priv)
        psk = genkey()
        self.peer_conf = []
        for i in range(2):
            j = 1 - i
            self.peer_conf.append({
                "public_key": self.pub[j],
                "preshared_key": psk,
                "endpoint": f"{self.underlay[j]}:{self.port[j]}",
                "keepalive": 25 if i == 0 else None,
                "allowed_ips": [f"{self.tunnel[j]}/32"],
            })
        self.conf = [None, None]
        # The responder first: the initiator sends its first handshake as soon as its
        # keepalive is set (wireguard-go's device counts as up from the start), and a lost
        # one is only repeated after REKEY_TIMEOUT (5 s).
        for i in (1, 0):
            self.create(i)
            conf = write_config(self.path(f"wg{i}.conf"), self.priv[i], self.port[i], [self.peer_conf[i]])
            self.conf[i] = conf
            wgtool(self.ns[i], self.wg[i], "set", conf)
            run("ip", "-n", self.ns[i], "addr", "add", f"{self.tunnel[i]}/24", "dev", self.wg[i])
        for i in (1, 0):
            run("ip", "-n", self.ns[i], "link", "set", self.wg[i], "up")
        in_ns(self.ns[0], "ping", "-c", "3", "-W", "2", self.tunnel[1], timeout=20)

    def dumps(self, i, ifname=None):
        ifname = ifname or self.wg[i]
        ours = parse_dump(wgtool(self.ns[i], ifname, "show").stdout)
        theirs = parse_dump(in_ns(self.ns[i], "wg", "show", ifname, "dump").stdout)
        return ours, theirs


@pytest.fixture
def pair():
    p = Pair()
    try:
        p.setup()
        yield p
    finally:
        p.teardown()


def sync(pair, i, conf):
    p = wgtool(pair.ns[i], pair.wg[i], "sync", conf)
    return sync_stats(p.stderr.strip().splitlines()[-1])


# ---- Tests --------------------------------------------------------------------------------


def test_tunnel_and_dump(pair):
    pair.bring_up()
    for i in range(2):
        ours, theirs = pair.dumps(i)
        assert stable(ours) == stable(theirs)
        device, peers = ours
        assert device[0] == pair.priv[i] and device[1] == pair.pub[i]
        assert device[2] == str(pair.port[i]) and device[3] == "off"
        assert list(peers) == [pair.pub[1 - i]]
        peer = peers[pair.pub[1 - i]]
        assert peer[1] == pair.peer_conf[i]["preshared_key"]
        assert peer[2] == pair.peer_conf[i]["endpoint"]
        assert peer[3] == pair.peer_conf[i]["allowed_ips"][0]
        assert peer[7] == ("25" if i == 0 else "off")
        assert int(peer[4]) > 0, "no handshake"
        assert int(peer[5]) > 0 and int(peer[6]) > 0, "no traffic counted"
        # Within a second of each other the counters agree with wg's view too.
        theirs_peer = theirs[1][pair.pub[1 - i]]
        assert abs(int(theirs_peer[4]) - int(peer[4])) <= 1


def test_sync(pair):
    pair.bring_up()
    conf = pair.peer_conf[0]
    # One peer's allowed IPs change: one transaction, one peer.
    changed = dict(conf, allowed_ips=[f"{pair.tunnel[1]}/32", "10.97.0.0/16"])
    path = write_config(pair.path("sync1.conf"), pair.priv[0], pair.port[0], [changed])
    assert sync(pair, 0, path) == "messages=1 peers=1"
    allowed = in_ns(pair.ns[0], "wg", "show", pair.wg[0], "allowed-ips").stdout.split()
    assert allowed[0] == pair.pub[1] and sorted(allowed[1:]) == sorted(changed["allowed_ips"])
    # The tunnel still works after the update (the peer was updated, not re-created).
    in_ns(pair.ns[0], "ping", "-c", "1", "-W", "2", pair.tunnel[1], timeout=10)

    # Unchanged: nothing is sent.
    assert sync(pair, 0, path) == "messages=0 peers=0"
    ours, theirs = pair.dumps(0)
    assert stable(ours) == stable(theirs)

    # Peer removed.
    empty = write_config(pair.path("sync2.conf"), pair.priv[0], pair.port[0], [])
    assert sync(pair, 0, empty) == "messages=1 peers=1"
    assert in_ns(pair.ns[0], "wg", "show", pair.wg[0], "peers").stdout.strip() == ""
    ours, theirs = pair.dumps(0)
    assert ours == theirs and ours[1] == {}
    assert sync(pair, 0, empty) == "messages=0 peers=0"




def test_many_peers_set_and_read_back(pair, record_property):
    ifname = pair.create(0)
    n = 1000
    peers = many_peers(n)
    conf = write_config(pair.path("many.conf"), genkey(), 51900, peers)

    t = time.monotonic()
    p = wgtool(pair.ns[0], ifname, "set", conf, timeout=60)
    uapi_first = time.monotonic() - t
    assert sync_stats(p.stderr) == f"messages=1 peers={n}"

    ours, theirs = pair.dumps(0, ifname)
    assert len(ours[1]) == n and len(theirs[1]) == n
    assert stable(ours) == stable(theirs)
    want = {p["public_key"]: sorted(str(ipaddress.ip_network(a)) for a in p["allowed_ips"]) for p in peers}
    assert {k: sorted(v[3].split(",")) for k, v in ours[1].items()} == want

    # Same replacement of 1,000 peers, both ways, on the same interface.
    times = {"wgtool set (UAPI)": [], "wg setconf": []}
    for _ in range(3):
        t = time.monotonic()
        wgtool(pair.ns[0], ifname, "set", conf, timeout=60)
        times["wgtool set (UAPI)"].append(time.monotonic() - t)
        t = time.monotonic()
        in_ns(pair.ns[0], "wg", "setconf", ifname, conf, timeout=60)
        times["wg setconf"].append(time.monotonic() - t)
    assert len(parse_dump(wgtool(pair.ns[0], ifname, "show").stdout)[1]) == n
    # Syncing the same state afterwards sends nothing, even at this size.
    assert sync_stats(wgtool(pair.ns[0], ifname, "sync", conf, timeout=60).stderr) == "messages=0 peers=0"

    summary = {k: round(min(v) * 1000, 1) for k, v in times.items()}
    summary["wgtool set (UAPI), first, empty device"] = round(uapi_first * 1000, 1)
    record_property("timing_ms_1000_peers", summary)
    print(f"\n1,000 peers x 2 allowed IPs, best of 3 (ms): {summary}")


def test_delete_and_stale_socket(pair):
    ns = pair.ns[0]
    ifname = pair.create(0)
    assert link_exists(ns, ifname) and os.path.exists(sock_path(ifname))

    # A second create of the same name fails, and so does one over any existing link.
    p = wgtool(ns, "--mode", "userspace", ifname, "create", check=False)
    assert p.returncode == 1 and "File exists" in p.stderr
    p = wgtool(ns, "--mode", "userspace", pair.veth[0], "create", check=False)
    assert p.returncode == 1 and "File exists" in p.stderr
    assert not os.path.exists(sock_path(pair.veth[0]))

    # delete: link, process and socket are gone when it returns.
    pid = uapi_pid(ifname)
    assert pid
    wgtool(ns, ifname, "delete")
    assert not link_exists(ns, ifname)
    assert not os.path.exists(sock_path(ifname))
    assert process_state(pid) in (None, "Z"), "wireguard-go still running"
    p = wgtool(ns, ifname, "delete", check=False)
    assert p.returncode == 1 and "No such device" in p.stderr
    p = wgtool(ns, ifname, "show", check=False)
    assert p.returncode == 1 and "No such device" in p.stderr

    # kill -9 leaves a stale socket; the next create removes it and starts afresh.
    wgtool(ns, "--mode", "userspace", ifname, "create")
    pid = uapi_pid(ifname)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not link_exists(ns, ifname), what="the TUN link to go with its process")
    assert os.path.exists(sock_path(ifname)) and uapi_pid(ifname) is None
    wgtool(ns, "--mode", "userspace", ifname, "create")
    assert uapi_pid(ifname) not in (None, pid)
    assert parse_dump(wgtool(ns, ifname, "show").stdout)[1] == {}
    wgtool(ns, ifname, "delete")
    assert not os.path.exists(sock_path(ifname))

    # A stale socket alone: delete cleans it up and says there was no device.
    open(sock_path(ifname), "w").close()
    p = wgtool(ns, ifname, "delete", check=False)
    assert p.returncode == 1 and "No such device" in p.stderr
    assert not os.path.exists(sock_path(ifname))


def test_create_without_tun(pair):
    ifname = pair.wg[0]
    pair.interfaces.append((pair.ns[0], ifname))
    p = run("unshare", "-m", "sh", "-c",
            f"mount -t tmpfs none /dev/net && exec ip netns exec {pair.ns[0]} {WGTOOL} --mode userspace {ifname} create",
            check=False)
    assert p.returncode == 1
    assert "/dev/net/tun is missing" in p.stderr
    assert not os.path.exists(sock_path(ifname))
    assert not link_exists(pair.ns[0], ifname)


def create_with(pair, implementation, timeout=30):
    ifname = pair.wg[0]
    pair.interfaces.append((pair.ns[0], ifname))
    env = dict(os.environ, WG_QUICK_USERSPACE_IMPLEMENTATION=implementation)
    t = time.monotonic()
    p = subprocess.run(["ip", "netns", "exec", pair.ns[0], WGTOOL, "--mode", "userspace", ifname, "create"],
                       capture_output=True, text=True, timeout=timeout, env=env)
    return p, time.monotonic() - t, ifname


def script(pair, name, body):
    path = pair.path(name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return path


@pytest.mark.parametrize("kind", ["missing", "exits", "not-executable-format"])
def test_create_implementation_fails(pair, kind):
    if kind == "missing":
        impl, error = pair.path("no-such-wireguard-go"), "is not installed"
    elif kind == "exits":
        impl, error = script(pair, "fails", "exit 1\n"), "Input/output error"
    else:
        impl = pair.path("garbage")
        with open(impl, "wb") as f:
            f.write(b"\x00" * 64)
        os.chmod(impl, 0o755)
        error = "Exec format error"
    p, _, ifname = create_with(pair, impl)
    assert p.returncode == 1 and error in p.stderr, p.stderr
    assert not os.path.exists(sock_path(ifname))
    assert not link_exists(pair.ns[0], ifname)


def test_create_implementation_hangs(pair):
    pidfile = pair.path("hang.pid")
    impl = script(pair, "hangs", f"echo $$ > {pidfile}\nexec sleep 60\n")
    p, took, ifname = create_with(pair, impl)
    assert p.returncode == 1 and "Connection timed out" in p.stderr, p.stderr
    assert 4.5 < took < 10
    with open(pidfile) as f:
        pid = int(f.read())
    # Killed, not left behind (a zombie at most, where nothing reaps orphans).
    wait_for(lambda: process_state(pid) in (None, "Z"), what="the hung process to be killed")
    assert not os.path.exists(sock_path(ifname))


# ---- Replies from a fake UAPI server ------------------------------------------------------


class FakeUAPI:
    """Answers each connection on /var/run/wireguard/IFNAME.sock with the next canned reply."""

    def __init__(self, ifname):
        os.makedirs(SOCKET_DIR, mode=0o755, exist_ok=True)
        self.path = sock_path(ifname)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.reply = b""        # for every connection, unless
        self.replies = []       # ... one of these is queued for it
        self.requests = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                conn.settimeout(5)
                try:
                    while not data.endswith(b"\n\n"):
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    self.requests.append(data)
                    conn.sendall(self.replies.pop(0) if self.replies else self.reply)
                except OSError:
                    pass

    def close(self):
        # shutdown() wakes the accept() in the thread; close() alone would not.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(5)
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


@pytest.fixture
def fake():
    ifname = "wgf" + uuid.uuid4().hex[:6]
    f = FakeUAPI(ifname)
    f.ifname = ifname
    yield f
    f.close()


K1 = "a0" * 32
K2 = "b1" * 32
PSK = "c2" * 32
GOOD = (
    f"private_key={K1}\nlisten_port=51820\nfwmark=4660\nunknown_device_key=1\n"
    f"public_key={K2}\npreshared_key={PSK}\nprotocol_version=1\nendpoint=[2001:db8::1]:51820\n"
    "last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\ntx_bytes=18446744073709551615\n"
    "rx_bytes=7\npersistent_keepalive_interval=25\nallowed_ip=10.0.0.0/8\nallowed_ip=fd00::/64\n"
    "some_future_key=whatever\n"
    f"public_key={'d3' * 32}\npreshared_key={'00' * 32}\nlast_handshake_time_sec=0\n"
    "last_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=0\n"
    "errno=0\n\n"
)


def test_fake_uapi_good_reply_matches_wg(fake):
    fake.reply = GOOD.encode()
    ours = wgtool(None, fake.ifname, "show").stdout
    theirs = run("wg", "show", fake.ifname, "dump").stdout
    assert ours == theirs
    assert fake.requests[0] == b"get=1\n\n"
    device, peers = parse_dump(ours)
    assert device[2:] == ["51820", "0x1234"]
    assert len(peers) == 2


@pytest.mark.parametrize("reply,error", [
    ("garbage\n\n", "Bad message"),
    ("=1\nerrno=0\n\n", "Bad message"),
    ("private_key=zz\nerrno=0\n\n", "Bad message"),
    (f"private_key={K1[:-2]}\nerrno=0\n\n", "Bad message"),
    ("listen_port=70000\nerrno=0\n\n", "Bad message"),
    ("listen_port=-1\nerrno=0\n\n", "Bad message"),
    ("listen_port=\nerrno=0\n\n", "Bad message"),
    ("fwmark=4294967296\nerrno=0\n\n", "Bad message"),
    ("endpoint=1.2.3.4:5\nerrno=0\n\n", "Bad message"),              # peer key before a peer
    (f"public_key={K2}\nendpoint=nonsense\nerrno=0\n\n", "Bad message"),
    (f"public_key={K2}\nallowed_ip=10.0.0.0/33\nerrno=0\n\n", "Bad message"),
    (f"public_key={K2}\nallowed_ip=10.0.0.1\nerrno=0\n\n", "Bad message"),
    (f"public_key={K2}\ntx_bytes=18446744073709551616\nerrno=0\n\n", "Bad message"),
    (f"public_key={K2}\nlast_handshake_time_nsec=1000000000\nerrno=0\n\n", "Bad message"),
    (f"public_key={K2}\nlisten_port=1\nerrno=0\n\n", "Bad message"),  # device key after a peer
    ("listen_port=1\n", "Bad message"),                                 # truncated
    ("listen_port=1\nerrno=0\n", "Bad message"),                        # no blank line
    ("listen_port=1\n\n", "Bad message"),                               # no errno
    ("errno=0\nlisten_port=1\n\n", "Bad message"),                      # lines after errno
    ("errno=x\n\n", "Bad message"),
    ("a=" + "x" * 10000 + "\nerrno=0\n\n", "Bad message"),              # line too long
    ("listen_port=1\x00\nerrno=0\n\n", "Bad message"),
    ("errno=5\n\n", "Input/output error"),
    ("errno=-22\n\n", "Invalid argument"),
])
def test_fake_uapi_malformed_get(fake, reply, error):
    fake.reply = reply.encode()
    p = wgtool(None, fake.ifname, "show", check=False)
    assert p.returncode == 1, p.stdout
    assert error in p.stderr
    assert p.stdout == ""


def test_fake_uapi_set(fake, tmp_path):
    priv, peer_pub, psk = genkey(), pubkey(genkey()), genkey()
    conf = write_config(str(tmp_path / "c.conf"), priv, 51820, [
        {"public_key": peer_pub, "preshared_key": psk, "endpoint": "[2001:db8::2]:1", "keepalive": 0,
         "allowed_ips": ["10.0.0.1/32", "fd00::/64"]},
    ], fwmark="0x10")
    fake.reply = b"errno=0\n\n"
    p = wgtool(None, fake.ifname, "set", conf)
    assert sync_stats(p.stderr) == "messages=1 peers=1"
    hexkey = lambda k: base64.b64decode(k).hex()
    assert fake.requests[-1].decode() == (
        f"set=1\nprivate_key={hexkey(priv)}\nlisten_port=51820\nfwmark=16\nreplace_peers=true\n"
        f"public_key={hexkey(peer_pub)}\npreshared_key={hexkey(psk)}\nendpoint=[2001:db8::2]:1\n"
        "persistent_keepalive_interval=0\nreplace_allowed_ips=true\n"
        "allowed_ip=10.0.0.1/32\nallowed_ip=fd00::/64\n\n")
    # Errors come back as -errno, whichever sign the implementation uses.
    for reply, error in [(b"errno=-98\n\n", "Address already in use"), (b"errno=22\n\n", "Invalid argument"),
                         (b"nonsense\n\n", "Bad message"), (b"", "Bad message")]:
        fake.reply = reply
        p = wgtool(None, fake.ifname, "set", conf, check=False)
        assert p.returncode == 1 and error in p.stderr, (reply, p.stderr)


def test_fake_uapi_sync_sends_only_the_difference(fake, tmp_path):
    fake.replies = [GOOD.encode(), b"errno=0\n\n"]
    k2 = base64.b64encode(bytes.fromhex(K2)).decode()
    k4 = base64.b64encode(bytes.fromhex("e4" * 32)).decode()
    priv = base64.b64encode(bytes.fromhex(K1)).decode()
    conf = write_config(str(tmp_path / "c.conf"), priv, 51820, [
        {"public_key": k2, "endpoint": "[2001:db8::1]:51820", "allowed_ips": ["fd00::/64", "10.0.0.0/8"]},
        {"public_key": k4, "allowed_ips": ["10.4.0.0/16"]},
    ])
    # Peer b1.. is unchanged (allowed IPs in another order), d3.. goes, e4.. is new.
    p = wgtool(None, fake.ifname, "sync", conf)
    assert sync_stats(p.stderr) == "messages=1 peers=2"
    assert fake.requests[0] == b"get=1\n\n"
    assert fake.requests[1].decode() == (
        f"set=1\npublic_key={'d3' * 32}\nremove=true\n"
        f"public_key={'e4' * 32}\nreplace_allowed_ips=true\nallowed_ip=10.4.0.0/16\n\n")
    assert len(fake.requests) == 2
