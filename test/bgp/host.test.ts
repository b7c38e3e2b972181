/**
 * The standalone speaker's next-hop resolver (src/bgp/host.ts connectedResolver): a next hop is
 * reachable when it is on one of our connected subnets (RFC 4271 §9.1.2.1), link-local IPv6
 * always; `version` moves only when the subnets do; and a read of unchanged interfaces works
 * nothing out again (on a node with a veth per pod a read is hundreds of addresses).
 */
import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/bgp/clock.js';
import { connectedResolver, type HostInterfaces, interfacesKey } from '../../src/bgp/host.js';

type Ifs = Record<string, NetworkInterfaceInfo[]>;

function addr(cidr: string, internal = false): NetworkInterfaceInfo {
  const address = cidr.split('/')[0]!;
  const v6 = address.includes(':');
  const base = { address, cidr, internal, mac: '00:00:00:00:00:00' };
  return v6
    ? { ...base, family: 'IPv6', netmask: 'ffff:ffff:ffff:ffff::', scopeid: 0 }
    : { ...base, family: 'IPv4', netmask: '255.255.255.0' };
}

/** A host whose reads are counted, and whose addresses count how often they are looked at. */
function countingHost(start: Ifs) {
  let ifs = start;
  const counts = { reads: 0, addressLooks: 0 };
  const watched = (list: Ifs): Ifs =>
    Object.fromEntries(
      Object.entries(list).map(([name, addrs]) => [
        name,
        addrs.map((a) => {
          const copy = { ...a };
          Object.defineProperty(copy, 'address', {
            get: () => {
              counts.addressLooks++;
              return a.address;
            },
            enumerable: true,
          });
          return copy;
        }),
      ]),
    );
  const host: HostInterfaces = {
    interfaces: () => {
      counts.reads++;
      return watched(ifs);
    },
  };
  return { host, counts, set: (next: Ifs) => (ifs = next) };
}

describe('connectedResolver', () => {
  it('resolves next hops on connected subnets, link-local IPv6 always, and not through loopback', () => {
    const clock = new FakeClock();
    const { host } = countingHost({
      lo: [addr('127.0.0.1/8', true)],
      eth0: [addr('10.0.0.1/24'), addr('2001:db8::1/64')],
    });
    const r = connectedResolver(host, clock);
    expect(r.resolve('10.0.0.9')).toBe(0);
    expect(r.resolve('::ffff:10.0.0.9')).toBe(0);
    expect(r.resolve('2001:db8::7')).toBe(0);
    expect(r.resolve('fe80::1')).toBe(0);
    expect(r.resolve('10.0.1.9')).toBeUndefined();
    expect(r.resolve('127.0.0.2')).toBeUndefined();
  });

  it('a read of unchanged interfaces works nothing out again and keeps the version', () => {
    const clock = new FakeClock();
    const eth0 = [addr('10.0.0.1/24')];
    const h = countingHost({ eth0 });
    const r = connectedResolver(h.host, clock);
    r.read();
    const v = r.version;
    // Reading the same interfaces looks at each address once (their key), not again to work
    // out the subnets.
    const looks = h.counts.addressLooks;
    r.read();
    expect(h.counts.addressLooks - looks).toBe(1);
    expect(r.version).toBe(v);
    // An address more: the subnets are worked out again and the version moves.
    h.set({ eth0: [...eth0, addr('10.0.5.1/24')] });
    const before = h.counts.addressLooks;
    r.read();
    expect(h.counts.addressLooks - before).toBe(4);
    expect(r.version).toBe(v + 1);
    expect(r.resolve('10.0.5.3')).toBe(0);
    // The same subnets under another interface name: worked out, but the version stays.
    h.set({ eth1: [...eth0, addr('10.0.5.1/24')] });
    r.read();
    expect(r.version).toBe(v + 1);
  });

  it('read(snapshot) uses the read it is given and does not read the host', () => {
    const clock = new FakeClock();
    const h = countingHost({ eth0: [addr('10.0.0.1/24')] });
    const r = connectedResolver(h.host, clock);
    const snapshot: Ifs = { eth0: [addr('10.0.0.1/24'), addr('192.168.9.1/24')] };
    const reads = h.counts.reads;
    r.read({ interfaces: () => snapshot });
    expect(h.counts.reads).toBe(reads);
    // Fresh (read this second), so resolving does not read again either.
    expect(r.resolve('192.168.9.20')).toBe(0);
    expect(h.counts.reads).toBe(reads);
  });

  it('interfacesKey tells interfaces apart by name, address, prefix length and loopback', () => {
    const k = (ifs: Ifs) => interfacesKey(ifs);
    const base = k({ eth0: [addr('10.0.0.1/24')] });
    expect(k({ eth0: [addr('10.0.0.1/24')] })).toBe(base);
    expect(k({ eth1: [addr('10.0.0.1/24')] })).not.toBe(base);
    expect(k({ eth0: [addr('10.0.0.2/24')] })).not.toBe(base);
    expect(k({ eth0: [addr('10.0.0.1/25')] })).not.toBe(base);
    expect(k({ eth0: [addr('10.0.0.1/24', true)] })).not.toBe(base);
  });
});
