// A Twill BFD endpoint for the interop tests, run inside a test's namespace:
//   node test/bfd/endpoint.mjs LOCAL PEER [TX_MS RX_MS MULT]
// Prints one JSON line per state change ({t, peer, from, to, diag}; t: ms since start), and
// the endpoint's status on SIGUSR1. Uses the built module (dist/, made by `npm run build`).
import { join } from 'node:path';

const { BfdEndpoint } = await import(join(import.meta.dirname, '../../dist/src/bfd/udp.js'));
const { STATE_NAMES } = await import(join(import.meta.dirname, '../../dist/src/bfd/packet.js'));
const [local, peer, tx = '100', rx = '100', mult = '3'] = process.argv.slice(2);
const t0 = performance.now();
const ep = new BfdEndpoint(local);
ep.onStateChange((c) =>
  process.stdout.write(
    `${JSON.stringify({ t: performance.now() - t0, peer: c.peer, from: STATE_NAMES[c.from], to: STATE_NAMES[c.to], diag: c.diag })}\n`,
  ),
);
await ep.start();
await ep.addPeer(peer, {
  desiredMinTxUs: Number(tx) * 1000,
  requiredMinRxUs: Number(rx) * 1000,
  detectMult: Number(mult),
});
process.on('SIGUSR1', () =>
  process.stdout.write(`${JSON.stringify({ status: ep.status(), dropped: ep.dropped })}\n`),
);
process.on('SIGTERM', () => ep.stop().then(() => process.exit(0)));
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
