// A BGP peer that stops reading, against an in-process Twill speaker, for
// test/bgp/backpressure.root.test.ts. Run inside a network namespace whose TCP buffers the test
// made small: `ip netns exec NS node test/bgp/stop-reading.mjs`. Prints one JSON line:
// { state, lastError, rssGrowthMiB, sentBeforeDrop }.
import { connect } from 'node:net';
import { parseSpeakerConfig } from '../../dist/src/bgp/config.js';
import { Speaker } from '../../dist/src/bgp/speaker.js';
import { encodeOpen, IPV4_UNICAST, KEEPALIVE, makeOpen } from '../../dist/src/bgp/wire/index.js';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const config = parseSpeakerConfig(
  'routerId: 127.0.0.1\nasn: 64512\nlisten: {address: 127.0.0.1, port: 0}\n' +
    'neighbors:\n  - {address: 127.0.0.1, asn: 64513, passive: true, holdTime: 30}\n' +
    'api: {listen: /tmp/unused.sock}\n',
  'stop-reading',
);
// 300k /24s: about 1.2 MB of UPDATEs, far more than the namespace's socket buffers hold.
config.originate = Array.from(
  { length: 300_000 },
  (_, i) => `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`,
);
const speaker = new Speaker(config, quiet, { sendHoldMs: 2000 });
await speaker.start();

const sock = connect(speaker.port, '127.0.0.1');
await new Promise((r) => sock.once('connect', r));
sock.on('error', () => {});
sock.write(encodeOpen(makeOpen(64513, 30, 0x7f000002, { multiprotocol: [IPV4_UNICAST] })));
sock.write(KEEPALIVE);
// Read Twill's OPEN and KEEPALIVE, then nothing more; keep our hold timer at Twill alive.
sock.once('data', () => sock.pause());
const ka = setInterval(() => sock.write(KEEPALIVE), 500);

const peer = () => speaker.status().peers[0];
for (let i = 0; i < 100 && peer().state !== 'Established'; i++) await sleep(100);
const rss0 = process.memoryUsage().rss;
let peak = rss0;
let sentBeforeDrop = 0;
for (let i = 0; i < 200 && peer().state === 'Established'; i++) {
  sentBeforeDrop = peer().prefixesAdvertised;
  peak = Math.max(peak, process.memoryUsage().rss);
  await sleep(100);
}
const p = peer();
clearInterval(ka);
sock.destroy();
await speaker.stop();
process.stdout.write(
  `${JSON.stringify({ state: p.state, lastError: p.lastError, rssGrowthMiB: (peak - rss0) / 2 ** 20, sentBeforeDrop })}\n`,
);
process.exit(0);
