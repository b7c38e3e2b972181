/**
 * A scripted BGP peer for tests of an in-process speaker on loopback: it connects from `local`,
 * sends OPEN (IPv4 unicast, hold time 30) and KEEPALIVE, and hands everything it reads to
 * `onData` (or drops it). The socket is added to `socks`, for the test to destroy.
 */
import { connect, type Socket } from 'node:net';
import { encodeOpen, IPV4_UNICAST, KEEPALIVE, makeOpen } from '../../src/bgp/wire/index.js';
import { parseIpv4 } from '../../src/net/addr.js';

export async function dialSpeaker(
  port: number,
  local: string,
  asn: number,
  socks: Socket[],
  onData: (chunk: Buffer) => void = () => {},
): Promise<Socket> {
  const sock = connect({ port, host: '127.0.0.1', localAddress: local });
  socks.push(sock);
  sock.on('error', () => {});
  await new Promise((r) => sock.once('connect', r));
  sock.on('data', onData);
  sock.write(encodeOpen(makeOpen(asn, 30, parseIpv4(local), { multiprotocol: [IPV4_UNICAST] })));
  sock.write(KEEPALIVE);
  return sock;
}
