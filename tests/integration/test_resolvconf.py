"""DNS without resolved (resolved/resolvconf.h) through tests/tools/resolvconf-tool.

Direct mode runs in a private mount namespace with a temporary file bind-mounted over
/etc/resolv.conf, so the host's file is never touched (checked before and after every test).
resolvconf mode runs against a fake `resolvconf` that records its argv and stdin.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

TOOL = os.path.abspath(os.environ.get("RESOLVCONF_TOOL", "build/tests/resolvconf-tool"))
TIMEOUT = 30

ORIGINAL = (b"# the host's own file\n"
            b"nameserver 192.168.1.1\n"
            b"nameserver 192.168.1.2\n"
            b"search lan\n"
            b"options edns0 timeout:2\n")
APPLY_ARGS = ["--server", "fd60:627a:a42b::53", "--match", "coder", "--search", "corp"]

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                reason="needs root and unshare(1) for a private mount namespace")


def read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(autouse=True)
def host_resolv_conf_untouched():
    """The host's /etc/resolv.conf is byte-for-byte the same after every test."""
    path = "/etc/resolv.conf"
    before = (os.path.islink(path), os.readlink(path) if os.path.islink(path) else None,
              read(path) if os.path.exists(path) else None)
    yield
    after = (os.path.islink(path), os.readlink(path) if os.path.islink(path) else None,
             read(path) if os.path.exists(path) else None)
    assert after == before, "the host's /etc/resolv.conf changed"


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="test_resolvconf.")
    os.chmod(d, 0o755)
    rc = os.path.join(d, "resolv.conf")
    with open(rc, "wb") as f:
        f.write(ORIGINAL)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def tool(*args, check=None):
    p = subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=TIMEOUT)
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
    return p


def in_namespace(d, script):
    """Runs script (sh -e) in a private mount namespace with d/resolv.conf bound over
    /etc/resolv.conf, and a PID namespace so that nothing started there outlives it. $TOOL, $D, $RC, $BK are set; $BK is d/run/resolv.conf.orig."""
    env = dict(os.environ, TOOL=TOOL, D=d, RC=os.path.join(d, "resolv.conf"),
               BK=os.path.join(d, "run", "resolv.conf.orig"))
    prologue = ('mount --bind "$RC" /etc/resolv.conf\n'
                'ns() { "$TOOL" --backup "$BK" --resolvconf none --mode direct "$@"; }\n'
                'where() { stat -L -c %d:%i /etc/resolv.conf > "$D/$1.stat"; '
                'awk \'$5 == "/etc/resolv.conf"\' /proc/self/mountinfo > "$D/$1.mnt"; '
                'cp /etc/resolv.conf "$D/$1.content"; }\n')
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "-p", "-f", "--kill-child",
                        "--mount-proc", "sh", "-ec", prologue + script],
                       env=env, capture_output=True, text=True, timeout=TIMEOUT)
    return p


def dev_ino(path):
    st = os.stat(path)
    return "%d:%d" % (st.st_dev, st.st_ino)


def seen(d, name):
    """What `where NAME` recorded inside the namespace."""
    return (read(os.path.join(d, name + ".stat")).decode().strip(),
            read(os.path.join(d, name + ".mnt")).decode(),
            read(os.path.join(d, name + ".content")))


@needs_root
def test_direct_apply_restore_in_place(tmp):
    rc = os.path.join(tmp, "resolv.conf")
    bk = os.path.join(tmp, "run", "resolv.conf.orig")
    ino = dev_ino(rc)
    p = in_namespace(tmp, 'where before\n'
                          'ns ' + " ".join(APPLY_ARGS) + ' apply > "$D/apply.out"\n'
                          'where applied\n'
                          'cp "$BK" "$D/backup.copy"\n'
                          'ns restore > "$D/restore.out"\n'
                          'where restored\n')
    assert p.returncode == 0, p.stderr
    st, mnt, content = seen(tmp, "before")
    assert st == ino and mnt, "the bind mount is not in place"
    assert content == ORIGINAL

    st, mnt, content = seen(tmp, "applied")
    assert st == ino, "resolv.conf was replaced, not written in place"
    assert mnt, "the bind mount is gone after apply"
    text = content.decode()
    assert text.startswith("# Written by codervpnd; the original is in %s; do not edit\n" % bk)
    assert "nameserver fd60:627a:a42b::53\nnameserver 192.168.1.1\nnameserver 192.168.1.2\n" in text
    assert "search corp coder lan\n" in text
    assert "options edns0 timeout:2\n" in text
    assert read(os.path.join(tmp, "backup.copy")) == ORIGINAL
    assert read(os.path.join(tmp, "apply.out")).strip() == b"applied direct"

    st, mnt, content = seen(tmp, "restored")
    assert st == ino and mnt
    assert content == ORIGINAL
    assert read(rc) == ORIGINAL
    assert dev_ino(rc) == ino
    assert not os.path.exists(bk)
    assert read(os.path.join(tmp, "restore.out")).strip() == b"restored"


# The tool itself in the background (not the `ns` function: that would be a subshell), and
# $pid checked to be it.
HOLD = ('"$TOOL" --backup "$BK" --resolvconf none --mode direct ' + " ".join(APPLY_ARGS) +
        ' hold > "$D/hold.out" 2>&1 &\n'
        'pid=$!\n'
        '[ "$(readlink /proc/$pid/exe)" = "$TOOL" ] || sleep 0.2\n'
        'i=0; while ! grep -q holding "$D/hold.out"; do\n'
        '  i=$((i+1)); [ $i -lt 200 ] || { cat "$D/hold.out" >&2; exit 9; }; sleep 0.05\n'
        'done\n'
        'where held\n'
        '[ "$(readlink /proc/$pid/exe)" = "$TOOL" ] || { echo "pid $pid is not the tool" >&2; exit 8; }\n')


@needs_root
def test_direct_sigterm_restores(tmp):
    p = in_namespace(tmp, HOLD + 'kill -TERM $pid; wait $pid\nwhere stopped\n')
    assert p.returncode == 0, p.stderr
    assert seen(tmp, "held")[2].startswith(b"# Written by codervpnd;")
    st, mnt, content = seen(tmp, "stopped")
    assert content == ORIGINAL and mnt
    assert not os.path.exists(os.path.join(tmp, "run", "resolv.conf.orig"))


@needs_root
def test_direct_crash_then_restore(tmp):
    rc = os.path.join(tmp, "resolv.conf")
    ino = dev_ino(rc)
    p = in_namespace(tmp, HOLD + 'kill -KILL $pid; wait $pid || true\n'
                                 'where killed\n'
                                 'ns restore > "$D/restore.out"\n'
                                 'where restored\n')
    assert p.returncode == 0, p.stderr
    assert seen(tmp, "killed")[2].startswith(b"# Written by codervpnd;"), "kill -9 should leave our file"
    st, mnt, content = seen(tmp, "restored")
    assert content == ORIGINAL and st == ino and mnt
    assert read(os.path.join(tmp, "restore.out")).strip() == b"restored"


@needs_root
def test_direct_crash_then_apply(tmp):
    """The next start after a crash applies over the original, not over our own file, and
    keeps the backup; its stop restores the original."""
    bk = os.path.join(tmp, "run", "resolv.conf.orig")
    p = in_namespace(tmp, HOLD + 'kill -KILL $pid; wait $pid || true\n'
                                 'ns --server 10.0.0.53 apply\n'
                                 'where reapplied\n'
                                 'cp "$BK" "$D/backup.copy"\n'
                                 'ns restore\n'
                                 'where restored\n')
    assert p.returncode == 0, p.stderr
    text = seen(tmp, "reapplied")[2].decode()
    assert text.count("# Written by codervpnd;") == 1
    assert "nameserver 10.0.0.53\nnameserver 192.168.1.1\nnameserver 192.168.1.2\n" in text
    assert "fd60" not in text
    assert read(os.path.join(tmp, "backup.copy")) == ORIGINAL
    assert seen(tmp, "restored")[2] == ORIGINAL
    assert not os.path.exists(bk)


def test_marker_without_backup_is_left_alone(tmp):
    rc = os.path.join(tmp, "resolv.conf")
    ours = b"# Written by codervpnd; the original is in /gone; do not edit\nnameserver 10.0.0.53\n"
    with open(rc, "wb") as f:
        f.write(ours)
    args = ["--resolv-conf", rc, "--backup", os.path.join(tmp, "missing"), "--resolvconf", "none",
            "--mode", "direct"]
    for cmd in (["restore"], APPLY_ARGS + ["apply"]):
        p = tool(*args, *cmd, check=1)
        assert "backup" in p.stderr and "missing" in p.stderr, p.stderr
        assert read(rc) == ours


def test_detect(tmp):
    rc = os.path.join(tmp, "resolv.conf")
    ns = os.path.join(tmp, "nsswitch.conf")
    fake = os.path.join(tmp, "resolvconf")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(fake, 0o755)

    def detect(nsswitch, resolv, bus, binary):
        with open(ns, "w") as f:
            f.write(nsswitch)
        with open(rc, "w") as f:
            f.write(resolv)
        args = ["--resolv-conf", rc, "--nsswitch", ns, "--resolvconf", binary] + (["--bus"] if bus else [])
        return tool(*args, "detect", check=0).stdout.split("\n")[0]

    stub = "nameserver 127.0.0.53\n"
    assert detect("hosts: files resolve [!UNAVAIL=return] dns\n", "nameserver 1.1.1.1\n", True, "none") == "resolved"
    assert detect("hosts: files dns\n", stub, True, fake) == "resolved"
    assert detect("hosts: files dns\n", stub, False, fake) == "resolvconf"
    assert detect("hosts: files dns\n", stub + "nameserver 1.1.1.1\n", True, fake) == "resolvconf"
    assert detect("hosts: files dns\n", stub, False, "none") == "direct"
    assert detect("hosts: files dns resolve\n", "nameserver 1.1.1.1\n", True, "none") == "direct"


FAKE_RESOLVCONF = """#!%s
import json, os, sys
with open(os.path.join(%r, "calls.jsonl"), "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "stdin": sys.stdin.read()}) + "\\n")
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""


def calls(d):
    path = os.path.join(d, "calls.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.fixture
def fake_resolvconf(tmp):
    path = os.path.join(tmp, "resolvconf")
    with open(path, "w") as f:
        f.write(FAKE_RESOLVCONF % (sys.executable, tmp))
    os.chmod(path, 0o755)
    return path


def rc_args(tmp, binary):
    # Explicit resolv.conf/backup paths: restore also undoes a direct-mode leftover, and must
    # only ever look at the test's files.
    return ["--resolv-conf", os.path.join(tmp, "resolv.conf"), "--backup", os.path.join(tmp, "bk"),
            "--resolvconf", binary, "--mode", "resolvconf", "--ifname", "coder0"]


def test_resolvconf_mode(tmp, fake_resolvconf):
    p = tool(*rc_args(tmp, fake_resolvconf), *APPLY_ARGS, "apply", check=0)
    assert p.stdout.strip() == "applied resolvconf"
    assert calls(tmp) == [{"argv": ["-a", "coder0", "-m", "0", "-x"],
                           "stdin": "nameserver fd60:627a:a42b::53\nsearch corp coder\n"}]
    p = tool(*rc_args(tmp, fake_resolvconf), "restore", check=0)
    assert "removed coder0" in p.stdout
    assert calls(tmp)[1] == {"argv": ["-f", "-d", "coder0"], "stdin": ""}
    assert read(os.path.join(tmp, "resolv.conf")) == ORIGINAL

    # hold: apply, then remove on SIGTERM.
    proc = subprocess.Popen([TOOL, *rc_args(tmp, fake_resolvconf), *APPLY_ARGS, "--no-search", "hold"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "applied resolvconf"
        assert proc.stdout.readline().strip() == "holding"
        proc.terminate()
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [c["argv"] for c in calls(tmp)[2:]] == [["-a", "coder0", "-m", "0", "-x"], ["-f", "-d", "coder0"]]
    assert calls(tmp)[2]["stdin"] == "nameserver fd60:627a:a42b::53\nsearch corp\n"


def test_resolvconf_failures(tmp, fake_resolvconf):
    p = tool(*rc_args(tmp, os.path.join(tmp, "no-such-resolvconf")), *APPLY_ARGS, "apply")
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "no-such-resolvconf" in p.stderr and "missing" in p.stderr

    p = tool(*rc_args(tmp, "none"), "restore")
    assert p.returncode == 1 and "no resolvconf binary" in p.stderr

    env = dict(os.environ, FAKE_EXIT="4")
    p = subprocess.run([TOOL, *rc_args(tmp, fake_resolvconf), *APPLY_ARGS, "apply"], env=env,
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 1 and "exited with status 4" in p.stderr, p.stderr

    hang = os.path.join(tmp, "hang")
    with open(hang, "w") as f:
        f.write("#!/bin/sh\nexec sleep 60\n")
    os.chmod(hang, 0o755)
    p = tool(*rc_args(tmp, hang), "--timeout-ms", "500", *APPLY_ARGS, "apply")
    assert p.returncode == 1 and "did not finish within 500 ms" in p.stderr, p.stderr


def test_usage():
    assert tool("frobnicate").returncode == 2
    assert tool("--server", "not-an-address", "apply").returncode == 2
    assert tool().returncode == 2
