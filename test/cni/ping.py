#!/usr/bin/env python3
"""ICMP / ICMPv6 echo: `ping.py ADDRESS [TIMEOUT_S]`, exit 0 when a reply comes back.

The test machines have no ping(8) (iputils-ping is not in .ci/run's package list), so the CNI
tests send their echo requests with this: a raw socket, one request, one matching reply.
"""
import os
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
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    v6 = ":" in addr
    ident = os.getpid() & 0xFFFF
    if v6:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        kind, reply_kind = 128, 129
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        kind, reply_kind = 8, 0
    payload = b"twill-cni-test"
    header = struct.pack("!BBHHH", kind, 0, 0, ident, 1)
    # The kernel fills in the ICMPv6 checksum (it needs the pseudo-header).
    csum = 0 if v6 else checksum(header + payload)
    packet = struct.pack("!BBHHH", kind, 0, csum, ident, 1) + payload
    sock.sendto(packet, (addr, 0))
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            print(f"no echo reply from {addr} within {timeout} s", file=sys.stderr)
            return 1
        sock.settimeout(left)
        try:
            data, src = sock.recvfrom(2048)
        except socket.timeout:
            continue
        icmp = data if v6 else data[(data[0] & 0x0F) * 4 :]
        if len(icmp) >= 8:
            t, _c, _s, i, _q = struct.unpack("!BBHHH", icmp[:8])
            if t == reply_kind and i == ident and src[0] == addr:
                return 0


if __name__ == "__main__":
    sys.exit(main())
