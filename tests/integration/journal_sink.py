"""Runs inside a private mount namespace with its own /run: listens where journald would,
starts the command given on argv with its stdin/stdout, and prints every native-protocol
record it received as one JSON object per line once the command exits."""
import json
import os
import socket
import struct
import subprocess
import sys

os.makedirs("/run/systemd/journal", exist_ok=True)
sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sink.bind("/run/systemd/journal/socket")
sink.setblocking(False)


def parse(data):
    """The journal's native protocol: KEY=value lines, or KEY\\n + le64 length + bytes + \\n."""
    record, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            (n,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            k, v = line, data[nl + 9:nl + 9 + n]
            i = nl + 9 + n + 1
        record[k.decode()] = v.decode(errors="replace")
    return record


proc = subprocess.run(sys.argv[1:], check=False)
records = []
while True:
    try:
        records.append(parse(sink.recv(1 << 20)))
    except BlockingIOError:
        break
for r in records:
    print(json.dumps(r))
sys.exit(proc.returncode)
