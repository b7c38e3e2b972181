/**
 * The mesh warm-up (src/bgp/warmup-mesh.ts) must run a block's real path: the origin's export
 * under the agent's rules, the UPDATE packed and decoded, the receiver's RIB and best routes. If
 * a block did not come out of the receiver's best routes, the warm-up warmed code a block does not
 * run.
 */
import { describe, expect, it } from 'vitest';
import { MESH_WARM_UP, warmUpMesh } from '../../src/bgp/warmup-mesh.js';

const POOL = { base: 0x0a090000, len: 16 }; // 10.9.0.0/16

describe('warmUpMesh', () => {
  it("carries each block from the origin's export to the receiver's best routes, and its withdrawal", () => {
    const changes = warmUpMesh(POOL, undefined, 3, 2);
    const block = (n: number) => `10.9.0.${n * 64}/26`;
    const expected = [0, 1, 2, 3, 4, 5].flatMap((n) => {
      const prefix = n < 4 ? block(n) : `10.9.1.${(n - 4) * 64}/26`;
      // The origin's session address as the next hop (iBGP: the origin's own, as sent).
      return [
        { prefix, nextHops: ['198.51.100.1'], local: false },
        { prefix, nextHops: [], local: false },
      ];
    });
    expect(changes).toEqual(expected);
    expect(warmUpMesh()).toHaveLength(2 * MESH_WARM_UP.blocks * MESH_WARM_UP.rounds);
  });

  it("sends nothing that the agent's export rules refuse", () => {
    const otherPool = [
      { prefix: '10.244.0.0/16', ge: 16, le: 32, action: 'accept' as const },
      { prefix: '0.0.0.0/0', ge: 0, le: 32, action: 'reject' as const },
    ];
    expect(warmUpMesh(POOL, otherPool, 2, 1)).toEqual([]);
  });

  it('keeps its blocks inside a pool smaller than a block, or of a few blocks', () => {
    for (const change of warmUpMesh({ base: 0x0a090000, len: 25 }, undefined, 3, 1))
      expect(['10.9.0.0/26', '10.9.0.64/26']).toContain(change.prefix);
    for (const change of warmUpMesh({ base: 0x0a090000, len: 28 }, undefined, 2, 1))
      expect(change.prefix).toBe('10.9.0.0/28');
  });
});
