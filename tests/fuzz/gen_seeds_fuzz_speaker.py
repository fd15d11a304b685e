#!/usr/bin/python3
"""Writes the seed corpus tests/fuzz/seeds/fuzz_speaker/ (re-run to regenerate).

Input layout of fuzz_speaker: header line up to '\n', then a stream of frames
(4-byte big-endian length + protobuf payload). Payloads are the spec §5 byte vectors.
"""
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "seeds", "fuzz_speaker")

MANAGER = [  # ManagerMessage payloads (manager -> tunnel)
    "0a0208022a00",  # stop
    "0a0208033200",  # wake
    "0a0208041200",  # get_peer_update
    "0a0210011a020801",  # network_settings response
    "0a02080122590802121968747470733a2f2f636f6465722e6578616d706c652e636f6d1a0966616b65546f6b656e"
    "22150a0d582d546573742d4865616465721204746573742a0964657669636530303132056d61634f533a06302e3234"
    "2e38",  # start
]
TUNNEL = [  # TunnelMessage payloads (tunnel -> manager)
    "0a02100232020801",  # stop response
    "0a0210033a00",  # wake response
    "2a00",  # start{} without rpc
    "0a020801220310b009",  # network_settings mtu 1200
    "0a02080222241a220a12666436303a363237613a613432623a3a35331a05636f6465722205636f646572",  # DNS
    "0a020801223632340a18666436303a363237613a613432623a313a323a333a343a35120280011a140a10"
    "666436303a363237613a613432623a3a1030",  # router v6
    # peer_update{upserted_agents[Agent{last_handshake{seconds:-62135596800}}]}
    "1a0f" + "120d" + "320b088092b8c398feffffff01",
]


def frame(payload_hex):
    p = bytes.fromhex(payload_hex)
    return struct.pack(">I", len(p)) + p


def frames(hexes):
    return b"".join(frame(h) for h in hexes)


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def big_log_frame(n):
    """TunnelMessage{log{message: "x" * n}}: a frame above the reader's 64 KiB first allocation."""
    log = b"\x12" + varint(n) + b"x" * n
    return frame((b"\x12" + varint(len(log)) + log).hex())


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(1)
    seeds = {
        "good-manager-1.3": b"codervpn manager 1.3\n" + frames(MANAGER),
        "good-tunnel-1.3": b"codervpn tunnel 1.3\n" + frames(TUNNEL),
        "good-manager-multi-version": b"codervpn manager 1.3,2.1\n" + frames(MANAGER[:2] + TUNNEL[3:5]),
        "manager-1.1-all-vectors": b"codervpn manager 1.1\n" + frames(MANAGER + TUNNEL),
        "client-1.0": b"codervpn client 1.0\n" + frames(["0a020801120a1208687474703a2f2f78", "0a0208021a00",
                                                       "0a0208032200"]),
        # Zero-length frame, then the Go test's ten zero bytes, then length 1 + 00.
        "bad-payloads": b"codervpn manager 1.3\n" + struct.pack(">I", 0) + struct.pack(">I", 10) + bytes(10)
                        + struct.pack(">I", 1) + b"\x00" + frame(MANAGER[0]),
        # One good frame, then a length above 16 MiB.
        "oversize-length": b"codervpn manager 1.3\n" + frame(MANAGER[0]) + struct.pack(">I", 0x1000001)
                           + b"\x0a\x02\x08\x02",
        # Exactly 16 MiB announced, a few bytes given: a partial frame at EOF.
        "max-length-partial": b"codervpn manager 1.3\n" + struct.pack(">I", 0x1000000) + b"\x0a\x02\x08\x02",
        "length-ffffffff": b"codervpn manager 1.3\n" + b"\xff\xff\xff\xff",
        "no-common-major": b"codervpn manager 2.0,3.0\n" + frames(MANAGER[:1]),
        "old-order": b"codervpn 1.1 tunnel\n" + frames(MANAGER[:1]),
        "crlf": b"codervpn manager 1.3\r\n" + frames(MANAGER[:1]),
        # 140000-byte payload: the reader grows 64 KiB -> 128 KiB -> 140000, then gives it back;
        # libFuzzer's inputs are capped at 4096 bytes otherwise (max_len follows the largest seed).
        "large-frame-growth": b"codervpn manager 1.3\n" + frame(TUNNEL[0]) + big_log_frame(140000)
                              + frame(TUNNEL[1]),
        # Field 0 in an over-long tag ("80 00"): protobuf-c accepts it, then refuses its own
        # repacked bytes. Found by this fuzzer (crash-c0b2375d...), kept as a regression seed.
        "protobuf-c-overlong-field-zero": b"codervpn manager 1.3\n" + frame("800000") + frame("0a03800000")
                                          + frame(MANAGER[0]),
        "fuzzer-crash-c0b2375d": bytes.fromhex("11330a000000080a0210023202880000000008800000ba3302080000000000"),
        "too-large-no-newline": b"bad" * 256,
        "garbage": bytes(rng.getrandbits(8) for _ in range(300)),
        "garbage-after-header": b"codervpn manager 1.3\n" + bytes(rng.getrandbits(8) for _ in range(200)),
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
