import { describe, expect, it } from 'vitest';
import {
  validateAffinity,
  validateBlock,
  validateConfig,
  validateHandle,
  validatePool,
  validatePools,
} from '../../src/ipam/model.js';
import { compileNodeSelector, nodeSelectorMatches, SelectorError } from '../../src/ipam/selector.js';
import { pool } from './helpers.js';

const errorsOf = (spec: unknown) => validatePool({ ...pool('p', { cidr: '' }), spec }).errors.map(String);

describe('IPPool validation names the object and the field', () => {
  it('accepts a pool and fills in the defaults', () => {
    const v4 = validatePool(pool('p4', { cidr: '10.244.0.0/16' }));
    expect(v4.errors).toEqual([]);
    expect(v4.pool).toMatchObject({ name: 'p4', blockSize: 26, disabled: false, mode: 'blocks' });
    expect(validatePool(pool('p6', { cidr: 'fd00:10:244::/56' })).pool?.blockSize).toBe(122);
  });

  it.each([
    [{ cidr: '10.244.0.1/16' }, 'IPPool p: spec.cidr: prefix has host bits set: "10.244.0.1/16"'],
    [{ cidr: '10.244.0/16' }, 'IPPool p: spec.cidr: not an IPv4 address'],
    [{}, 'IPPool p: spec.cidr: is required'],
    [{ cidr: '10.0.0.0/8', blockSize: 19 }, 'IPPool p: spec.blockSize: 19 is out of range (20..32 for IPv4)'],
    [{ cidr: '10.0.0.0/8', blockSize: 33 }, 'IPPool p: spec.blockSize: 33 is out of range (20..32 for IPv4)'],
    [
      { cidr: 'fd00::/48', blockSize: 64 },
      'IPPool p: spec.blockSize: 64 is out of range (116..128 for IPv6)',
    ],
    [{ cidr: '10.0.0.0/30', blockSize: 26 }, "IPPool p: spec.blockSize: 26 is shorter than the pool's /30"],
    [{ cidr: '10.0.0.0/8', blockSize: 26.5 }, 'IPPool p: spec.blockSize: 26.5 is not an integer'],
    [{ cidr: '10.0.0.0/8', mode: 'hostLocal' }, 'IPPool p: spec.mode: "hostLocal" is not blocks or podCIDR'],
    [
      { cidr: '10.0.0.0/8', nodeSelector: 'a == "b" || c == "d"' },
      'IPPool p: spec.nodeSelector: "a == \\"b\\" || c == \\"d\\"": \'||\' is not supported',
    ],
    [{ cidr: '10.0.0.0/8', disabled: 'yes' }, 'IPPool p: spec.disabled: is not true or false'],
  ])('%j', (spec, message) => {
    const errors = errorsOf(spec);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]).toContain(message);
  });

  it('a podCIDR pool ignores blockSize', () => {
    expect(validatePool(pool('k', { cidr: '10.0.0.0/8', mode: 'podCIDR', blockSize: 8 })).errors).toEqual([]);
  });

  it('overlapping pools: the one created first stays, the other is named with both', () => {
    const a = {
      ...pool('b-first', { cidr: '10.0.0.0/16' }),
      metadata: { name: 'b-first', creationTimestamp: '2026-01-01T00:00:00Z' },
    };
    const b = {
      ...pool('a-second', { cidr: '10.0.128.0/17' }),
      metadata: { name: 'a-second', creationTimestamp: '2026-01-02T00:00:00Z' },
    };
    const c = pool('v6', { cidr: 'fd00::/64' });
    const r = validatePools([b, c, a]);
    expect(r.pools.map((p) => p.name)).toEqual(['b-first', 'v6']);
    expect(r.errors.map(String)).toEqual([
      'IPPool a-second: spec.cidr: 10.0.128.0/17 overlaps IPPool b-first (10.0.0.0/16); pools must not overlap',
    ]);
  });
});

describe('other objects', () => {
  it('IPAMConfig: defaults, and errors naming the field', () => {
    expect(validateConfig(undefined).config).toEqual({ strictAffinity: false, maxBlocksPerHost: 0 });
    const bad = validateConfig({
      apiVersion: 'x',
      kind: 'IPAMConfig',
      metadata: { name: 'default' },
      spec: { strictAffinity: 1, maxBlocksPerHost: -1 },
    });
    expect(bad.errors.map(String)).toEqual([
      'IPAMConfig default: spec.strictAffinity: is not true or false',
      'IPAMConfig default: spec.maxBlocksPerHost: is not a non-negative integer (0: no limit)',
    ]);
  });

  it('handles must be object names', () => {
    expect(validateHandle('k8s-pod-network.0123abcd')).toEqual([]);
    expect(validateHandle('Pod_A').map(String)[0]).toContain(
      'IPAMHandle "Pod_A": spec.handleID: is not a Kubernetes object name',
    );
  });

  it('BlockAffinity state must be one of the three', () => {
    const a = {
      apiVersion: 'x',
      kind: 'BlockAffinity' as const,
      metadata: { name: 'n1-10-0-0-0-26' },
      spec: { node: 'n1', cidr: '10.0.0.0/26', state: 'done' },
    };
    expect(validateAffinity(a).map(String)).toEqual([
      'BlockAffinity n1-10-0-0-0-26: spec.state: "done" is not pending, confirmed or pendingDeletion',
    ]);
  });

  it('an inconsistent block is reported field by field', () => {
    const spec = {
      cidr: '10.0.0.0/30',
      affinity: 'host:n1',
      allocations: [0, null, null, 7],
      unallocated: [1, 1],
      attributes: [{ handle: 'h', node: 'n1' }],
      sequenceNumber: 1,
      sequenceNumberForAllocation: { 0: 1 },
    };
    const errors = validateBlock({
      apiVersion: 'x',
      kind: 'IPAMBlock',
      metadata: { name: '10-0-0-0-30' },
      spec,
    }).errors.map(String);
    expect(errors).toEqual([
      'IPAMBlock 10-0-0-0-30: spec.unallocated[1]: ordinal 1 is listed twice',
      'IPAMBlock 10-0-0-0-30: spec.allocations[2]: is free but not in unallocated',
      'IPAMBlock 10-0-0-0-30: spec.allocations[3]: 7 is not an index into attributes',
    ]);
    const big = validateBlock({
      apiVersion: 'x',
      kind: 'IPAMBlock',
      metadata: { name: '10-0-0-0-16' },
      spec: { ...spec, cidr: '10.0.0.0/16' },
    });
    expect(big.errors.map(String)[0]).toContain('IPAMBlock 10-0-0-0-16: spec.cidr: /16 cannot be a block');
    const misnamed = validateBlock({
      apiVersion: 'x',
      kind: 'IPAMBlock',
      metadata: { name: 'other' },
      spec: { ...spec, cidr: '10.0.0.4/30' },
    });
    expect(misnamed.errors.map(String)[0]).toBe(
      'IPAMBlock other: metadata.name: is not 10-0-0-4-30, the name of the block 10.0.0.4/30',
    );
  });
});

describe('nodeSelector (the common subset of Calico selectors)', () => {
  const labels = { rack: 'a', zone: 'z1', 'kubernetes.io/os': 'linux' };
  it.each([
    ['', true],
    ['all()', true],
    ["rack == 'a'", true],
    ['rack == "b"', false],
    ["rack != 'b'", true],
    ["missing != 'b'", true],
    ['has(zone)', true],
    ['!has(zone)', false],
    ["rack in {'a', 'b'}", true],
    ["rack not in {'a'}", false],
    ["kubernetes.io/os == 'linux' && has(rack) && zone in {'z1'}", true],
    ["has(rack) && rack == 'b'", false],
  ])('%j -> %s', (text, want) => {
    expect(nodeSelectorMatches(compileNodeSelector(text), labels)).toBe(want);
  });
  it.each(['rack', "rack = 'a'", "(rack == 'a')", "rack == 'a' &&", "rack == 'a", 'global()'])(
    'rejects %j',
    (text) => {
      expect(() => compileNodeSelector(text)).toThrow(SelectorError);
    },
  );
});
