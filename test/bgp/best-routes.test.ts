/**
 * The best-route stream for the kernel (best-routes.ts): every equal-cost next hop of a prefix,
 * a change only when that set changes, including changes that leave the best path as it was.
 */
import { describe, expect, it } from 'vitest';
import { BestRoutes } from '../../src/bgp/best-routes.js';
import { type Delta, type PeerRef, Rib } from '../../src/bgp/rib/rib.js';
import type { PathAttributes } from '../../src/bgp/wire/attributes.js';
import { AsPathSegmentType } from '../../src/bgp/wire/constants.js';
import { parsePrefix } from '../../src/net/addr.js';

const P = parsePrefix('10.9.0.0/24');
const peer = (n: number, asn = 64512): PeerRef => ({
  id: `10.0.0.${n}`,
  asn,
  routerId: 0x0a000000 + n,
  ebgp: asn !== 64512,
  local: false,
  rrClient: false,
});
const attrs = (asns: number[], extra: Partial<PathAttributes> = {}): PathAttributes => ({
  origin: 0,
  asPath: asns.length ? [{ type: AsPathSegmentType.AsSequence, asns }] : [],
  ...extra,
});

function setup() {
  const rib = new Rib();
  rib.reportEveryChange = true;
  const routes = new BestRoutes(rib);
  const announce = (n: number, a: PathAttributes, nh = `10.0.0.${n}`): Delta[] => {
    const d = rib.announce(P, peer(n), 0, rib.attrs.intern(a, [nh]));
    return d ? [d] : [];
  };
  const withdraw = (n: number): Delta[] => {
    const d = rib.withdraw(P, `10.0.0.${n}`);
    return d ? [d] : [];
  };
  return { rib, routes, announce, withdraw };
}

describe('best routes with every equal-cost next hop', () => {
  it('equal paths from two nodes: both next hops; a worse path adds none', () => {
    const { routes, announce } = setup();
    expect(routes.changes(announce(2, attrs([])))).toEqual([
      { prefix: '10.9.0.0/24', nextHops: ['10.0.0.2'], local: false },
    ]);
    expect(routes.changes(announce(3, attrs([])))).toEqual([
      { prefix: '10.9.0.0/24', nextHops: ['10.0.0.2', '10.0.0.3'], local: false },
    ]);
    // Lower LOCAL_PREF: a candidate, not an equal-cost one; nothing changes for the kernel.
    expect(routes.changes(announce(4, attrs([], { localPref: 50 })))).toEqual([]);
  });

  it('an equal path withdrawn while the best stays: the set shrinks', () => {
    const { routes, announce, withdraw } = setup();
    routes.changes(announce(2, attrs([])));
    routes.changes(announce(3, attrs([])));
    // 10.0.0.2 has the lower router id: it stays best; 10.0.0.3 goes.
    const d = withdraw(3);
    expect(d).toHaveLength(1);
    expect(routes.changes(d)).toEqual([{ prefix: '10.9.0.0/24', nextHops: ['10.0.0.2'], local: false }]);
    expect(routes.changes(withdraw(2))).toEqual([{ prefix: '10.9.0.0/24', nextHops: [], local: false }]);
  });

  it('paths through different neighbouring ASes are not merged', () => {
    const { rib, routes } = setup();
    const a = rib.announce(P, peer(2, 65001), 0, rib.attrs.intern(attrs([65001]), ['10.0.0.2']))!;
    const b = rib.announce(P, peer(3, 65002), 0, rib.attrs.intern(attrs([65002]), ['10.0.0.3']));
    expect(routes.changes([a, ...(b ? [b] : [])]).at(-1)).toEqual({
      prefix: '10.9.0.0/24',
      nextHops: ['10.0.0.2'],
      local: false,
    });
  });

  it('our own prefix is local, with no next hop', () => {
    const { rib, routes } = setup();
    const us: PeerRef = { id: '', asn: 64512, routerId: 1, ebgp: false, local: true, rrClient: false };
    const d = rib.announce(P, us, 0, rib.attrs.intern(attrs([]), []))!;
    expect(routes.changes([d])).toEqual([{ prefix: '10.9.0.0/24', nextHops: [], local: true }]);
  });
});
