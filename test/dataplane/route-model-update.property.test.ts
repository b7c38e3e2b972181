/**
 * `updateDesired` (part of an owner's set) ends where `setDesired` with the owner's resulting
 * whole set ends: random sequences of upserts and removals from several owners, against a model
 * that is given each owner's final set at once. The winning route of every prefix and the
 * desired count must agree.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RouteModel, type RouteSpec } from '../../src/dataplane/route-model.js';

const runs = Number(process.env.FC_RUNS ?? 200);
const PREFIXES = ['10.1.0.1/32', '10.1.0.0/26', '10.2.0.0/26', '10.3.0.0/24', 'fd00::1/128', 'fd00:3::/122'];
const OWNERS = ['pods', 'blocks', 'bgp'];

const specArb = (dst: string): fc.Arbitrary<RouteSpec> =>
  fc.oneof(
    fc.constantFrom('twl1', 'twl2').map((dev): RouteSpec => ({ dst, kind: 'dev', dev })),
    fc.constant<RouteSpec>({ dst, kind: 'blackhole' }),
    fc
      .subarray(dst.includes(':') ? ['fd09::2', 'fd09::3'] : ['10.9.0.2', '10.9.0.3'], { minLength: 1 })
      .map((via): RouteSpec => ({ dst, kind: 'via', via })),
  );

type Change = { owner: string; dst: string; spec: RouteSpec | null };

const changeArb: fc.Arbitrary<Change> = fc
  .tuple(fc.constantFrom(...OWNERS), fc.constantFrom(...PREFIXES), fc.boolean())
  .chain(([owner, dst, remove]) =>
    remove
      ? fc.constant<Change>({ owner, dst, spec: null })
      : specArb(dst).map((spec): Change => ({ owner, dst, spec })),
  );

describe('RouteModel.updateDesired', () => {
  it('ends where setDesired with the resulting sets ends', () => {
    fc.assert(
      fc.property(fc.array(fc.array(changeArb, { maxLength: 6 }), { maxLength: 8 }), (batches) => {
        const inc = new RouteModel();
        const sets = new Map<string, Map<string, RouteSpec>>();
        for (const batch of batches) {
          const byOwner = new Map<string, [string, RouteSpec | null][]>();
          for (const c of batch) {
            const list = byOwner.get(c.owner) ?? [];
            list.push([c.dst, c.spec]);
            byOwner.set(c.owner, list);
            const set = sets.get(c.owner) ?? new Map();
            if (c.spec === null) set.delete(c.dst);
            else set.set(c.dst, c.spec);
            sets.set(c.owner, set);
          }
          for (const [owner, list] of byOwner) inc.updateDesired(owner, list);
        }
        const whole = new RouteModel();
        for (const [owner, set] of sets) whole.setDesired(owner, set.values());
        expect(inc.desiredCount()).toBe(whole.desiredCount());
        for (const dst of PREFIXES) expect(inc.desiredRoute(dst)).toEqual(whole.desiredRoute(dst));
      }),
      { numRuns: runs },
    );
  });
});
