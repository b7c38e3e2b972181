#!/usr/bin/env python3
"""Continuous ICMP echo: `probe.py ADDRESS SECONDS [INTERVAL_MS]`.

Sends an echo request every INTERVAL_MS (default 10) for SECONDS, then waits a second for late
replies, and prints one JSON line: {"sent": N, "received": M, "lost": [sequence numbers]}.
The machines have no ping(8) (see test/cni/ping.py).
"""
import json
import os
import select
import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def main() -> int:
    addr = sys.argv[1]
    seconds = float(sys.argv[2])
    interval = float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.01
    ident = os.getpid() & 0xFFFF
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sent = 0
    got = set()
    start = time.monotonic()
    next_send = start
    end = start + seconds
    while True:
        now = time.monotonic()
        if now >= end + 1.0:
            break
        if now >= next_send and now < end:
            header = struct.pack("!BBHHH", 8, 0, 0, ident, sent & 0xFFFF)
            payload = struct.pack("!d", now)
            packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, sent & 0xFFFF) + payload
            sock.sendto(packet, (addr, 0))
            sent += 1
            next_send += interval
        wait = max(0.0, min(next_send, end + 1.0) - time.monotonic()) if now < end else 0.05
        ready, _, _ = select.select([sock], [], [], wait)
        if ready:
            data, _ = sock.recvfrom(2048)
            ihl = (data[0] & 0x0F) * 4
            kind, _, _, rid, seq = struct.unpack("!BBHHH", data[ihl : ihl + 8])
            if kind == 0 and rid == ident:
                got.add(seq)
    lost = [i for i in range(sent) if (i & 0xFFFF) not in got]
    print(json.dumps({"sent": sent, "received": sent - len(lost), "lost": lost}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
