// The route reconciler in a child process, for test/dataplane/route-reconciler.root.test.ts.
// Node cannot enter a network namespace, so the test runs this under
// `ip netns exec NS node test/dataplane/route-driver.mjs` (from dist/, built by `npm test`'s
// pretest). One JSON command per stdin line: {id, cmd, ...}; one JSON answer per stdout line:
// {id, ok, result} or {id, ok: false, error}; errors of applies the reconciler scheduled itself
// come as {event: 'error', error}.
import { createInterface } from 'node:readline';
import { PodNeighbours } from '../../dist/src/dataplane/neigh.js';
import { NetlinkKernel } from '../../dist/src/dataplane/netlink-kernel.js';
import { RouteReconciler } from '../../dist/src/dataplane/routes.js';
import { configureHostVeth, enableForwarding } from '../../dist/src/dataplane/sysctl.js';
import { parsePrefix } from '../../dist/src/net/addr.js';

const out = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
let reconciler;
const kernels = [];
const open = () => {
  const k = new NetlinkKernel();
  kernels.push(k);
  return k;
};

const commands = {
  start({ graceMs = 0, readBackMs = 90_000, timers = false }) {
    reconciler = new RouteReconciler({
      kernel: open,
      graceMs,
      readBackMs,
      retryMs: 200,
      log: { warn: (o, msg) => process.stderr.write(`warn ${msg} ${JSON.stringify(o)}\n`) },
      onError: (err) => out({ event: 'error', error: String(err) }),
    });
    if (timers) reconciler.start();
    return {};
  },
  setDesired({ owner, routes }) {
    reconciler.setDesired(owner, routes);
    return {};
  },
  apply() {
    return reconciler.apply();
  },
  markForReadBack() {
    reconciler.markForReadBack();
    return {};
  },
  startTimers() {
    reconciler.start();
    return {};
  },
  status() {
    return reconciler.status();
  },
  async neighbours({ entries }) {
    const n = new PodNeighbours();
    n.setDesired(entries);
    const k = open();
    try {
      return await n.apply(k);
    } finally {
      k.close();
    }
  },
  async sysctls({ dev, ipv6 }) {
    return { veth: await configureHostVeth(dev, { ipv6 }), node: await enableForwarding({ ipv6 }) };
  },
  /** Kernel.writeRoutes straight through (keys as prefix text), then a dump of protocol 84. */
  async kernelWrite({ ops }) {
    const k = open();
    try {
      const parsed = ops.map((o) => ({ op: o.op, route: { ...o.route, key: parsePrefix(o.route.dst) } }));
      const results = await k.writeRoutes(parsed);
      const ours = (await k.listRoutes()).filter((r) => r.protocol === 84).length;
      return { results, ours };
    } finally {
      k.close();
    }
  },
  exit() {
    reconciler?.close();
    for (const k of kernels) k.close();
    setImmediate(() => process.exit(0));
    return {};
  },
};

const rl = createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const msg = JSON.parse(line);
  try {
    const result = await commands[msg.cmd](msg);
    out({ id: msg.id, ok: true, result });
  } catch (err) {
    out({ id: msg.id, ok: false, error: String(err?.stack ?? err) });
  }
});
rl.on('close', () => process.exit(0));
out({ event: 'ready' });
