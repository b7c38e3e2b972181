/**
 * Reconfiguration as a pure diff of neighbor lists (reconfig.ts): which neighbors are removed,
 * added, restarted for new session settings, or given new policy without a reset.
 */
import { describe, expect, it } from 'vitest';
import { type NeighborConfig, parseSpeakerConfig } from '../../src/bgp/config.js';
import { diffNeighbors, sessionKey } from '../../src/bgp/reconfig.js';

function neighbors(yaml: string): NeighborConfig[] {
  return parseSpeakerConfig(`routerId: 10.0.0.1\nneighbors:\n${yaml}`, 'test').neighbors;
}

const A = '  - {address: 10.0.0.2, asn: 64512}\n';
const B = '  - {address: 10.0.0.3, asn: 64513}\n';
const C = '  - {address: 2001:db8::3, asn: 64514}\n';

describe('reconfiguration diff', () => {
  it('the same list is no change, whatever its order', () => {
    expect(diffNeighbors(neighbors(A + B + C), neighbors(C + A + B))).toEqual([]);
  });

  it('a neighbor gone is removed, a new one added', () => {
    const after = neighbors(A + C);
    expect(diffNeighbors(neighbors(A + B), after)).toEqual([
      { kind: 'remove', address: '10.0.0.3', why: 'removed' },
      { kind: 'add', neighbor: after[1] },
    ]);
  });

  it('a session setting changed: removed, then added again', () => {
    for (const change of [
      'holdTime: 30',
      'asn: 64599',
      'passive: true',
      'port: 1790',
      'families: [ipv4-unicast]',
    ]) {
      const after = neighbors(
        `  - {address: 10.0.0.2, asn: 64512, ${change}}\n`.replace('asn: 64512, asn', 'asn'),
      );
      const d = diffNeighbors(neighbors(A), after);
      expect(d, change).toEqual([
        { kind: 'remove', address: '10.0.0.2', why: 'session settings changed' },
        { kind: 'add', neighbor: after[0] },
      ]);
    }
  });

  it('policy changed: no reset; a route refresh only when the import rules changed', () => {
    const exp = neighbors(
      '  - {address: 10.0.0.2, asn: 64512, export: [{prefix: 10.0.0.0/8, le: 32, action: reject}]}\n',
    );
    expect(diffNeighbors(neighbors(A), exp)).toEqual([
      { kind: 'policy', neighbor: exp[0], importChanged: false },
    ]);
    const imp = neighbors(
      '  - {address: 10.0.0.2, asn: 64512, import: [{prefix: 10.0.0.0/8, le: 32, action: reject}]}\n',
    );
    expect(diffNeighbors(neighbors(A), imp)).toEqual([
      { kind: 'policy', neighbor: imp[0], importChanged: true },
    ]);
    for (const change of [
      'maxPrefix: 10',
      'nextHopSelf: true',
      'routeReflectorClient: true',
      'allowasIn: 1',
      'description: x',
    ]) {
      const after = neighbors(`  - {address: 10.0.0.2, asn: 64512, ${change}}\n`);
      expect(diffNeighbors(neighbors(A), after), change).toEqual([
        { kind: 'policy', neighbor: after[0], importChanged: false },
      ]);
    }
  });

  it('removals come first, then additions, then policy changes', () => {
    const before = neighbors(A + B);
    const after = neighbors(
      '  - {address: 10.0.0.2, asn: 64512, nextHopSelf: true}\n' +
        C +
        '  - {address: 10.0.0.3, asn: 64513, holdTime: 9}\n',
    );
    expect(diffNeighbors(before, after).map((c) => c.kind)).toEqual(['remove', 'add', 'add', 'policy']);
  });

  it('the session key ignores policy and description only', () => {
    const [n] = neighbors(A);
    expect(sessionKey({ ...n!, description: 'x', maxPrefix: 3 })).toBe(sessionKey(n!));
    expect(sessionKey({ ...n!, localAddress: '10.0.0.1' })).not.toBe(sessionKey(n!));
  });
});
