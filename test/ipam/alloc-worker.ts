/**
 * One allocator in a process of its own, for allocator.processes.test.ts: the test can SIGKILL
 * it in the middle of an operation, as a node's agent or a CNI ADD can die.
 *
 *   node alloc-worker.mjs STORE NODE      STORE: file:DIR | kubeconfig:FILE
 *
 * Reads one JSON command per line on stdin and answers each on stdout, in order:
 *   {"id":1,"op":"assign","handle":"h","family":4}     -> {"id":1,"ok":true,"result":{...Assignment}}
 *   {"id":2,"op":"release","handle":"h"}               -> {"id":2,"ok":true,"result":[...Released]}
 *   {"id":3,"op":"releaseEmpty"}                       -> {"id":3,"ok":true,"result":[cidr...]}
 * A failure is {"id":N,"ok":false,"error":{"name","code","message"}}. Prints {"ready":true} first.
 */
import { createInterface } from 'node:readline';
import type { Datastore } from '../../src/datastore/types.js';
import { Allocator } from '../../src/ipam/allocator.js';
import { jitteredBackoff } from '../../src/datastore/backoff.js';

const [spec, node] = process.argv.slice(2);
if (!spec || !node) {
  console.error('usage: alloc-worker STORE NODE');
  process.exit(2);
}
// Load only the store in use: a Kubernetes client costs a file-store worker its start-up time.
const store: Datastore = spec.startsWith('file:')
  ? await (await import('../../src/datastore/file.js')).openFileDatastore(spec.slice(5), {
      onWarning: () => {},
    })
  : (await import('../../src/datastore/kubernetes.js')).KubernetesStore.open({
      kubeconfig: spec.replace(/^kubeconfig:/, ''),
    });
const allocator = new Allocator({
  store,
  clock: { now: () => Date.now() },
  maxRetries: 200,
  backoff: jitteredBackoff(),
});

const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
out({ ready: true });
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const cmd = JSON.parse(line) as { id: number; op: string; handle?: string; family?: 4 | 6 };
  try {
    let result: unknown;
    if (cmd.op === 'assign')
      result = await allocator.assign({ handle: cmd.handle!, node, family: cmd.family! });
    else if (cmd.op === 'release') result = await allocator.release(cmd.handle!);
    else if (cmd.op === 'releaseEmpty') result = await allocator.releaseEmptyBlocks(node);
    else throw new Error(`unknown op ${cmd.op}`);
    out({ id: cmd.id, ok: true, result });
  } catch (e) {
    const err = e as { name?: string; code?: string; message?: string };
    out({ id: cmd.id, ok: false, error: { name: err.name, code: err.code, message: err.message } });
  }
}
await store.close();
