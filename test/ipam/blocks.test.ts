import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as alloc from '../../src/ipam/allocations.js';
import {
  addressAt,
  affinityName,
  blockCount,
  blockName,
  canonicalCidr,
  contains,
  formatCidr,
  nthBlock,
  ordinalOf,
  overlaps,
  parseAddress,
  parseCidr,
} from '../../src/ipam/blocks.js';
import { validateBlock } from '../../src/ipam/model.js';

describe('CIDR arithmetic', () => {
  it('parses and formats both families canonically', () => {
    expect(parseCidr('10.244.1.0/26')).toEqual({ family: 4, base: 0x0af40100n, len: 26 });
    expect(canonicalCidr('FD00:0:0::40/122')).toBe('fd00::40/122');
    expect(formatCidr(parseCidr('0.0.0.0/0'))).toBe('0.0.0.0/0');
  });

  it.each(['10.0.0.1/24', '10.0.0.0/33', '10.0.0/24', 'fd00::1/64', '10.0.0.0', 'x/8'])('rejects %j', (t) => {
    expect(() => parseCidr(t)).toThrow();
  });

  it('numbers the blocks of a pool in address order, IPv6 without listing them', () => {
    const p4 = parseCidr('10.244.0.0/16');
    expect(blockCount(p4, 26)).toBe(1024n);
    expect(formatCidr(nthBlock(p4, 26, 0n))).toBe('10.244.0.0/26');
    expect(formatCidr(nthBlock(p4, 26, 5n))).toBe('10.244.1.64/26');
    const p6 = parseCidr('fd00:10:244::/64');
    expect(blockCount(p6, 122)).toBe(1n << 58n);
    expect(formatCidr(nthBlock(p6, 122, (1n << 58n) - 1n))).toBe('fd00:10:244:0:ffff:ffff:ffff:ffc0/122');
  });

  it('finds addresses and ordinals in a block', () => {
    const b = parseCidr('fd00::40/122');
    expect(addressAt(b, 0)).toBe('fd00::40');
    expect(addressAt(b, 63)).toBe('fd00::7f');
    const a = parseAddress('fd00::7f');
    expect(ordinalOf(b, a.family, a.value)).toBe(63);
    const out = parseAddress('fd00::80');
    expect(ordinalOf(b, out.family, out.value)).toBeUndefined();
    const v4 = parseAddress('10.0.0.5');
    expect(ordinalOf(b, v4.family, v4.value)).toBeUndefined();
  });

  it('containment and overlap never cross families', () => {
    expect(contains(parseCidr('10.0.0.0/8'), parseCidr('10.1.0.0/16'))).toBe(true);
    expect(contains(parseCidr('10.1.0.0/16'), parseCidr('10.0.0.0/8'))).toBe(false);
    expect(overlaps(parseCidr('10.1.0.0/16'), parseCidr('10.0.0.0/8'))).toBe(true);
    expect(overlaps(parseCidr('10.1.0.0/16'), parseCidr('10.2.0.0/16'))).toBe(false);
    expect(overlaps(parseCidr('0.0.0.0/0'), parseCidr('::/0'))).toBe(false);
  });

  it("names blocks as Calico's Kubernetes datastore does, always a valid object name", () => {
    expect(blockName(parseCidr('10.244.1.0/26'))).toBe('10-244-1-0-26');
    expect(blockName(parseCidr('fd00::40/122'))).toBe('fd00--40-122');
    expect(blockName(parseCidr('::/122'))).toBe('0---122');
    expect(affinityName('node-1', parseCidr('10.244.1.0/26'))).toBe('node-1-10-244-1-0-26');
    const name = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
    fc.assert(
      fc.property(fc.ipV6(), fc.integer({ min: 116, max: 128 }), (addr, len) => {
        const c = parseCidr(`${addr}/128`);
        const block = { ...c, base: (c.base >> BigInt(128 - len)) << BigInt(128 - len), len };
        expect(blockName(block)).toMatch(name);
      }),
    );
  });
});

describe('block allocation arrays', () => {
  const cidr = parseCidr('10.0.0.0/30');
  const owner = (handle: string) => ({ handle, node: 'n1' });

  it('hands out ordinals in order, counts sequence numbers, and reuses released ones last', () => {
    let spec = alloc.newBlockSpec(cidr, 'host:n1');
    const got: number[] = [];
    for (const h of ['a', 'b', 'c']) {
      const r = alloc.allocate(spec, owner(h))!;
      got.push(r.ordinal);
      spec = r.spec;
    }
    expect(got).toEqual([0, 1, 2]);
    expect(spec.sequenceNumber).toBe(3);
    expect(spec.sequenceNumberForAllocation).toEqual({ 0: 1, 1: 2, 2: 3 });
    spec = alloc.release(spec, (_o, a) => a.handle === 'a').spec;
    expect(spec.unallocated).toEqual([3, 0]);
    // Attributes are compacted and renumbered: b and c keep their handles.
    expect(spec.attributes.map((a) => a.handle)).toEqual(['b', 'c']);
    expect(alloc.attributesAt(spec, 1)?.handle).toBe('b');
    expect(alloc.attributesAt(spec, 2)?.handle).toBe('c');
    const d = alloc.allocate(spec, owner('d'))!;
    expect(d.ordinal).toBe(3);
    expect(d.sequenceNumber).toBe(4);
    expect(
      validateBlock({ apiVersion: 'x', kind: 'IPAMBlock', metadata: { name: '10-0-0-0-30' }, spec: d.spec })
        .errors,
    ).toEqual([]);
  });

  it('release that matches nothing returns the same spec (no write needed)', () => {
    const spec = alloc.newBlockSpec(cidr, null);
    expect(alloc.release(spec, () => true).spec).toBe(spec);
  });

  it('a full block allocates nothing', () => {
    let spec = alloc.newBlockSpec(parseCidr('10.0.0.0/32'), null);
    spec = alloc.allocate(spec, owner('a'))!.spec;
    expect(alloc.allocate(spec, owner('b'))).toBeUndefined();
    expect(alloc.freeCount(spec)).toBe(0);
  });

  it('any sequence of allocate and release keeps the block consistent', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constant('alloc'), fc.nat(15)), { maxLength: 60 }), (ops) => {
        let spec = alloc.newBlockSpec(parseCidr('10.0.0.0/28'), 'host:n1');
        const held = new Map<number, string>();
        let i = 0;
        for (const op of ops) {
          if (op === 'alloc') {
            const r = alloc.allocate(spec, owner(`h${i++}`));
            if (!r) {
              expect(held.size).toBe(16);
              continue;
            }
            expect(held.has(r.ordinal)).toBe(false);
            held.set(r.ordinal, `h${i - 1}`);
            spec = r.spec;
          } else {
            const h = held.get(op);
            spec = alloc.release(spec, (_o, a) => a.handle === h).spec;
            held.delete(op);
          }
          const v = validateBlock({
            apiVersion: 'x',
            kind: 'IPAMBlock',
            metadata: { name: '10-0-0-0-28' },
            spec,
          });
          expect(v.errors).toEqual([]);
          for (const [o, h] of held) expect(alloc.attributesAt(spec, o)?.handle).toBe(h);
          expect(spec.attributes.length).toBe(held.size);
        }
      }),
    );
  });
});
