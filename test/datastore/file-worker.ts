/**
 * A separate OS process for file.test.ts, bundled and run with `node`:
 *   increment DIR NAME N   N compare-and-swap increments of IPAMConfig NAME's spec.count,
 *                          retrying on Conflict; prints `acked <count>` after each success
 *                          and `conflicts <n>` at the end.
 */
import { openFileDatastore } from '../../src/datastore/file.js';
import { isDatastoreError } from '../../src/datastore/types.js';

const [cmd, dir, name, n] = process.argv.slice(2);
if (cmd !== 'increment' || dir === undefined || name === undefined || n === undefined) {
  console.error('usage: increment DIR NAME N');
  process.exit(2);
}
const store = await openFileDatastore(dir, { onWarning: () => {} });
let conflicts = 0;
for (let i = 0; i < Number(n); i++) {
  for (;;) {
    const o = await store.get({ kind: 'IPAMConfig', name });
    if (o === undefined) throw new Error(`IPAMConfig ${name} not found`);
    const count = (o.spec as { count: number }).count + 1;
    try {
      await store.update({ ...o, spec: { count } });
      process.stdout.write(`acked ${count}\n`);
      break;
    } catch (e) {
      if (!isDatastoreError(e, 'Conflict')) throw e;
      conflicts++;
    }
  }
}
process.stdout.write(`conflicts ${conflicts}\n`);
await store.close();
