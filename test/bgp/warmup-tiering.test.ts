/**
 * The warm-up (src/bgp/warmup.ts) is there so that a fresh speaker's first table runs compiled
 * code. Checked on the built modules (dist/, built by npm test's pretest) in a node of its own
 * that compiles as soon as a function is hot instead of on a background thread
 * (--no-concurrent-recompilation), asking V8 (--allow-natives-syntax) whether each function a
 * table runs per UPDATE, per set and per prefix is compiled once `warmUp()` returns. With the
 * many-set part at 1k sets instead of 4k, decodeMessage, UpdateIn.receive and packBatch were not;
 * with three rounds instead of five, TxGroup.flush was not.
 *
 * Then the same question after what an idle speaker meets some 8 s after start: the loop's next
 * turn (the warm-up's flush queues' calls run) and V8's memory reducer, whose collections drop
 * every object shape no live object has (stood in for by `--retain-maps-for-n-gc=0` and two full
 * collections: V8 keeps dead shapes for two collections, except in a memory-reducing one). Code
 * compiled for a dropped shape is thrown away; before the warm-up kept one object of each shape,
 * nine of the thirteen lost their code so, and at the turn TxGroups.fanOut lost its own.
 *
 * Not listed: Rib.withdrawKeys. V8 compiles it in the first round and throws the code away when
 * the next round starts (a change in what it depends on, not a deoptimisation at a check), and
 * the later rounds' few withdrawals do not make it hot again; it is compiled within the first
 * table's withdrawal.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/twill.js';

/** V8's OptimizationStatus bit for code compiled by an optimising tier. */
const OPTIMIZED = 1 << 4;

const SCRIPT = `
const d = (p) => import(${JSON.stringify(`${ROOT}/dist/src/bgp/`)} + p);
const { warmUp } = await d('warmup.js');
const message = await d('wire/message.js');
const update = await d('wire/update.js');
const attributes = await d('wire/attributes.js');
const framer = await d('wire/framer.js');
const updateIn = await d('update-in.js');
const rib = await d('rib/rib.js');
const attrs = await d('rib/attrs.js');
const adjOut = await d('rib/adj-out.js');
const exp = await d('export.js');
const groups = await d('update-group.js');
warmUp();
const fns = {
  'Framer.next': framer.Framer.prototype.next,
  decodeMessage: message.decodeMessage,
  decodeUpdate: update.decodeUpdate,
  decodeAttributes: attributes.decodeAttributes,
  'UpdateIn.receive': updateIn.UpdateIn.prototype.receive,
  'Rib.announceKeys': rib.Rib.prototype.announceKeys,
  'AttrTable.internKey': attrs.AttrTable.prototype.internKey,
  'PeerExport.exportOf': exp.PeerExport.prototype.exportOf,
  exportKeyFromRaw: exp.exportKeyFromRaw,
  'TxGroups.fanOut': groups.TxGroups.prototype.fanOut,
  'TxGroup.flush': groups.TxGroup.prototype.flush,
  packBatch: adjOut.packBatch,
  writeWireFromExportKey: attrs.writeWireFromExportKey,
};
const status = () => {
  const s = {};
  for (const [name, f] of Object.entries(fns)) s[name] = %GetOptimizationStatus(f);
  return s;
};
const warm = status();
await new Promise((resolve) => setImmediate(resolve));
(await import('node:v8')).setFlagsFromString('--retain-maps-for-n-gc=0');
gc();
gc();
console.log(JSON.stringify({ warm, idle: status() }));
`;

describe('warmUp', () => {
  it('leaves the functions a table runs per UPDATE, per set and per prefix compiled, also once idle', () => {
    if (!existsSync(join(ROOT, 'dist/src/bgp/warmup.js')))
      throw new Error('dist/ is missing: run `npm run build` (npm test does it)');
    const r = spawnSync(
      process.execPath,
      [
        '--allow-natives-syntax',
        '--no-concurrent-recompilation',
        '--expose-gc',
        '--input-type=module',
        '-e',
        SCRIPT,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.stderr).toBe('');
    const { warm, idle } = JSON.parse(r.stdout) as Record<'warm' | 'idle', Record<string, number>>;
    const interpreted = (status: Record<string, number>) =>
      Object.entries(status)
        .filter(([, s]) => (s & OPTIMIZED) === 0)
        .map(([name]) => name);
    expect(Object.keys(warm)).toHaveLength(13);
    expect(interpreted(warm)).toEqual([]);
    expect(interpreted(idle)).toEqual([]);
  });
});
