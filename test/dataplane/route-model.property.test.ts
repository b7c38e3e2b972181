/**
 * The route reconciler converges, whatever the starting point, and never touches what is not
 * ours: random kernels (foreign routes, stale routes of ours at our and other metrics, links up,
 * down or missing) and random desired sets from several owners, reconciled through the
 * in-memory kernel. After each apply, with a reference computed independently of the model:
 *   - every foreign route is exactly as it was;
 *   - each prefix some owner wants holds the highest-priority owner's route, unless its
 *     interface is missing or down (then no route of ours) or a foreign route holds the slot
 *     (then nothing of ours was added there);
 *   - no route of ours is left that nobody wants (grace 0);
 *   - a second apply and a restarted reconciler both plan nothing (idempotent, adopts).
 * Then a random sequence of changes (new desired sets, links going down, up, away and back,
 * routes deleted from outside with a read-back) keeps all of the above true after every apply.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FakeKernel } from '../helpers/kernel-fake.js';
import {
  DEFAULT_PRIORITIES,
  type KernelRoute,
  RTPROT_TWILL,
  RtnType,
  RtScope,
} from '../../src/dataplane/route-model.js';
import { RouteReconciler, type RouteSpec } from '../../src/dataplane/routes.js';
import { parsePrefix } from '../../src/net/addr.js';
import { FakeClock } from '../../src/bgp/clock.js';

const runs = Number(process.env.FC_RUNS ?? 150);

const PREFIXES = ['10.1.0.1/32', '10.1.0.2/32', '10.1.0.0/26', '10.3.0.0/26', 'fd00::1/128', 'fd00:3::/122'];
const DEVS = ['twl1', 'twl2', 'twl3'];
const GW4 = ['10.9.0.2', '10.9.0.3', '10.9.0.4'];
const GW6 = ['fd09::2', 'fd09::3'];
const OWNERS = ['pods', 'blocks', 'bgp', 'extra'];

const v6 = (dst: string) => dst.includes(':');

const specArb = (dst: string): fc.Arbitrary<RouteSpec> =>
  fc.oneof(
    fc.constantFrom(...DEVS).map((dev): RouteSpec => ({ dst, kind: 'dev', dev })),
    fc.constant<RouteSpec>({ dst, kind: 'blackhole' }),
    fc.subarray(v6(dst) ? GW6 : GW4, { minLength: 1 }).map((via): RouteSpec => ({ dst, kind: 'via', via })),
  );

const desiredArb = fc.array(
  fc
    .tuple(fc.constantFrom(...OWNERS), fc.constantFrom(...PREFIXES))
    .chain(([owner, dst]) => specArb(dst).map((spec) => ({ owner, spec }))),
  { maxLength: 12 },
);

const kernelRouteArb = fc
  .record({
    dst: fc.constantFrom(...PREFIXES),
    protocol: fc.constantFrom(RTPROT_TWILL, 4, 12, 186),
    otherMetric: fc.boolean(),
    kind: fc.constantFrom('gw', 'blackhole'),
  })
  .map(({ dst, protocol, otherMetric, kind }): KernelRoute => {
    const key = parsePrefix(dst);
    const family = v6(dst) ? 6 : 4;
    return {
      key,
      family,
      table: 254,
      protocol,
      metric: (family === 4 ? 0 : 1024) + (otherMetric ? 50 : 0),
      type: kind === 'gw' ? RtnType.Unicast : RtnType.Blackhole,
      scope: RtScope.Universe,
      nexthops: kind === 'gw' ? [{ gateway: family === 4 ? '10.9.0.9' : 'fd09::9', oif: 2 }] : [],
    };
  });

type Step =
  | { kind: 'desired'; owner: string; specs: RouteSpec[] }
  | { kind: 'linkDown' | 'linkUp' | 'linkDel' | 'linkAdd'; dev: string }
  | { kind: 'outsideDelete'; dst: string };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc
    .tuple(
      fc.constantFrom(...OWNERS),
      fc.array(fc.constantFrom(...PREFIXES).chain(specArb), { maxLength: 5 }),
    )
    .map(([owner, specs]): Step => {
      const seen = new Set<string>();
      return { kind: 'desired', owner, specs: specs.filter((s) => !seen.has(s.dst) && seen.add(s.dst)) };
    }),
  fc.record({
    kind: fc.constantFrom('linkDown', 'linkUp', 'linkDel', 'linkAdd'),
    dev: fc.constantFrom(...DEVS),
  }) as fc.Arbitrary<Step>,
  fc.record({ kind: fc.constant('outsideDelete'), dst: fc.constantFrom(...PREFIXES) }) as fc.Arbitrary<Step>,
);

/** What the kernel must hold, computed without the model. */
function check(k: FakeKernel, desired: Map<string, Map<string, RouteSpec>>, foreign: KernelRoute[]): void {
  const all = [...k.routes.values()];
  // Foreign routes: exactly as they were.
  const foreignNow = all
    .filter((r) => r.protocol !== RTPROT_TWILL)
    .map((r) => JSON.stringify(r))
    .sort();
  expect(foreignNow).toEqual(foreign.map((r) => JSON.stringify(r)).sort());
  const ours = all.filter((r) => r.protocol === RTPROT_TWILL);
  const oursByKey = new Map(ours.map((r) => [String(r.key), r]));
  expect(oursByKey.size).toBe(ours.length);
  const ownerRank = (o: string) => -(DEFAULT_PRIORITIES[o] ?? 0);
  const owners = [...desired.keys()].sort((a, b) => ownerRank(a) - ownerRank(b) || (a < b ? -1 : 1));
  const wanted = new Set<string>();
  for (const dst of PREFIXES) {
    let spec: RouteSpec | undefined;
    for (const o of owners) {
      spec = desired.get(o)?.get(dst);
      if (spec) break;
    }
    const key = String(parsePrefix(dst));
    const have = oursByKey.get(key);
    if (!spec) continue;
    wanted.add(key);
    const family = v6(dst) ? 6 : 4;
    const ourMetric = family === 4 ? 0 : 1024;
    const blocked = foreign.some((f) => String(f.key) === key && f.metric === ourMetric);
    const link = spec.kind === 'dev' ? [...k.links.values()].find((l) => l.name === spec.dev) : undefined;
    const linkOk = spec.kind !== 'dev' || link?.up === true;
    if (blocked || !linkOk) {
      if (have)
        expect(have.metric, `no route of ours for ${dst} while it cannot be installed`).not.toBe(ourMetric);
      continue;
    }
    expect(have, `route for ${dst}`).toBeDefined();
    expect(have!.metric).toBe(ourMetric);
    if (spec.kind === 'blackhole') expect(have!.type).toBe(RtnType.Blackhole);
    else if (spec.kind === 'dev') expect(have!.nexthops).toEqual([{ gateway: undefined, oif: link!.index }]);
    else expect(have!.nexthops.map((n) => n.gateway).sort()).toEqual([...new Set(spec.via)].sort());
  }
  for (const r of ours)
    expect(wanted.has(String(r.key)), `unwanted route of ours ${String(r.key)}`).toBe(true);
}

describe('route reconciler convergence (property)', () => {
  it('converges from any kernel, leaves foreign routes alone, adopts on restart, after any change', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.subarray(DEVS),
        fc.uniqueArray(kernelRouteArb, { selector: (r) => `${String(r.key)}|${r.metric}`, maxLength: 8 }),
        desiredArb,
        fc.array(stepArb, { maxLength: 10 }),
        async (devs, kernelRoutes, initial, steps) => {
          const k = new FakeKernel();
          k.addLink('lo');
          k.addLink('eth0');
          for (const d of devs) k.addLink(d);
          for (const r of kernelRoutes) k.inject(r);
          const foreign = kernelRoutes.filter((r) => r.protocol !== RTPROT_TWILL);
          const clock = new FakeClock();
          const make = () => new RouteReconciler({ kernel: () => k.handle(), clock, graceMs: 0 });
          const desired = new Map<string, Map<string, RouteSpec>>();
          for (const { owner, spec } of initial) {
            const m = desired.get(owner) ?? new Map<string, RouteSpec>();
            if (!m.has(spec.dst)) m.set(spec.dst, spec);
            desired.set(owner, m);
          }
          let r = make();
          for (const [owner, m] of desired) r.setDesired(owner, m.values());

          const settle = async () => {
            await r.apply();
            check(k, desired, foreign);
            const before = k.ops.length;
            const again = await r.apply();
            expect(again.added + again.replaced + again.deleted).toBe(0);
            // A restart adopts: nothing is written.
            r.close();
            r = make();
            for (const [owner, m] of desired) r.setDesired(owner, m.values());
            const s = await r.apply();
            expect(s.added + s.replaced + s.deleted).toBe(0);
            expect(k.ops.length).toBe(before);
          };
          await settle();
          for (const step of steps) {
            switch (step.kind) {
              case 'desired':
                desired.set(step.owner, new Map(step.specs.map((s) => [s.dst, s])));
                r.setDesired(step.owner, step.specs);
                break;
              case 'linkDown':
              case 'linkUp':
                if (k.linkIndex(step.dev) !== undefined) k.setLinkUp(step.dev, step.kind === 'linkUp');
                r.markForReadBack();
                break;
              case 'linkDel':
                if (k.linkIndex(step.dev) !== undefined) k.delLink(step.dev);
                r.markForReadBack();
                break;
              case 'linkAdd':
                if (k.linkIndex(step.dev) === undefined) k.addLink(step.dev);
                r.markForReadBack();
                break;
              case 'outsideDelete': {
                const key = parsePrefix(step.dst);
                for (const [, kr] of k.routes)
                  if (kr.key === key && kr.protocol === RTPROT_TWILL) k.remove(254, key, kr.metric);
                r.markForReadBack();
                break;
              }
            }
            await settle();
          }
          r.close();
        },
      ),
      { numRuns: runs },
    );
  });
});
