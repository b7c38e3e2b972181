#!/usr/bin/env node
/**
 * A minimal raw BGP peer for interop tests: it opens a session the ordinary way (OPEN, KEEPALIVE),
 * then writes exactly the bytes a script gives it, however malformed, and records every message
 * it receives, so a test can assert how a real router answered (RFC 4271 §6, RFC 7606).
 *
 * It is deliberately not a BGP implementation: no decision process, no UPDATE parsing, no FSM
 * beyond "OPEN sent, OPEN received, KEEPALIVE received = established". Received bytes are framed
 * by the header length only (a bad length ends framing and the rest is recorded raw). It imports
 * nothing from Twill. Run under `ip netns exec NS node rawpeer.mjs ...`; test/interop/rawpeer.ts
 * wraps it.
 *
 * Usage:
 *   node rawpeer.mjs (--connect ADDR:PORT | --listen ADDR:PORT) --asn N --id A.B.C.D --out FILE
 *                    [--hold SECONDS] [--families ipv4,ipv6] [--script FILE] [--no-open] [--immediate]
 *
 * Script lines (after the session is established; with --immediate, right after TCP connects):
 *   <hex bytes>      written to the socket as they are (whitespace allowed; the whole message,
 *                    marker included, so a bad marker or length can be sent)
 *   sleep <ms>       pause
 *   waitfile <path>  pause until the file exists (a test's signal to go on)
 *   close            close the connection
 *   # comment
 *
 * Output, one JSON object per line, appended as it happens:
 *   {"t":ms,"event":"connected"|"established"|"closed"|"error","detail"?:...}
 *   {"t":ms,"dir":"rx"|"tx","type":N,"hex":"..."}     (type is the header's type octet)
 *   {"t":ms,"dir":"rx","raw":"..."}                   (bytes that do not frame as a message)
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const flag = (name) => args.includes(`--${name}`);

const out = opt('out');
if (!out) {
  process.stderr.write('rawpeer: --out FILE is required\n');
  process.exit(2);
}
const asn = Number(opt('asn', '65000'));
const routerId = opt('id', '192.0.2.1');
const hold = Number(opt('hold', '90'));
const families = opt('families', 'ipv4,ipv6').split(',').filter(Boolean);
const scriptFile = opt('script');
const script = scriptFile ? readFileSync(scriptFile, 'utf8').split('\n') : [];
const t0 = Date.now();

function record(obj) {
  appendFileSync(out, `${JSON.stringify({ t: Date.now() - t0, ...obj })}\n`);
}

function header(type, bodyLen) {
  const h = Buffer.alloc(19, 0xff);
  h.writeUInt16BE(19 + bodyLen, 16);
  h[18] = type;
  return h;
}

function message(type, body) {
  return Buffer.concat([header(type, body.length), body]);
}

/** OPEN with Multiprotocol (RFC 4760) per family and 4-octet AS (RFC 6793) capabilities. */
function openMessage() {
  const caps = [];
  for (const f of families) {
    const afi = f === 'ipv6' ? 2 : 1;
    caps.push(Buffer.from([1, 4, afi >> 8, afi & 0xff, 0, 1]));
  }
  const as4 = Buffer.alloc(6);
  as4[0] = 65;
  as4[1] = 4;
  as4.writeUInt32BE(asn, 2);
  caps.push(as4);
  const capBytes = Buffer.concat(caps);
  const params = Buffer.concat([Buffer.from([2, capBytes.length]), capBytes]);
  const fixed = Buffer.alloc(10);
  fixed[0] = 4;
  fixed.writeUInt16BE(asn > 0xffff ? 23456 : asn, 1);
  fixed.writeUInt16BE(hold, 3);
  Buffer.from(routerId.split('.').map(Number)).copy(fixed, 5);
  fixed[9] = params.length;
  return message(1, Buffer.concat([fixed, params]));
}

const KEEPALIVE = message(4, Buffer.alloc(0));

function run(sock) {
  record({
    event: 'connected',
    detail: `${sock.localAddress}:${sock.localPort} -> ${sock.remoteAddress}:${sock.remotePort}`,
  });
  let buf = Buffer.alloc(0);
  let framing = true;
  let gotOpen = false;
  let established = false;
  let scriptStarted = false;
  let keepaliveTimer;

  const send = (bytes) => {
    if (sock.destroyed) return;
    sock.write(bytes);
    record({ dir: 'tx', type: bytes.length >= 19 ? bytes[18] : -1, hex: bytes.toString('hex') });
  };

  const runScript = async () => {
    if (scriptStarted) return;
    scriptStarted = true;
    for (const raw of script) {
      const line = raw.trim();
      if (!line || line.startsWith('#')) continue;
      const [cmd, arg] = line.split(/\s+/, 2);
      if (cmd === 'sleep') await new Promise((r) => setTimeout(r, Number(arg)));
      else if (cmd === 'waitfile') while (!existsSync(arg)) await new Promise((r) => setTimeout(r, 50));
      else if (cmd === 'close') {
        sock.end();
        return;
      } else send(Buffer.from(line.replace(/\s+/g, ''), 'hex'));
      if (sock.destroyed) return;
    }
  };

  sock.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (framing && buf.length >= 19) {
      const len = buf.readUInt16BE(16);
      if (len < 19 || len > 65535) {
        framing = false;
        break;
      }
      if (buf.length < len) break;
      const msg = buf.subarray(0, len);
      buf = buf.subarray(len);
      const type = msg[18];
      record({ dir: 'rx', type, hex: msg.toString('hex') });
      if (type === 1 && !gotOpen) {
        gotOpen = true;
        send(KEEPALIVE);
      } else if (type === 4 && gotOpen && !established) {
        established = true;
        record({ event: 'established' });
        const every = Math.max(1, Math.floor(hold / 3)) * 1000;
        if (hold > 0) keepaliveTimer = setInterval(() => send(KEEPALIVE), every);
        void runScript();
      }
    }
    if (!framing && buf.length > 0) {
      record({ dir: 'rx', raw: buf.toString('hex') });
      buf = Buffer.alloc(0);
    }
  });
  sock.on('error', (err) => record({ event: 'error', detail: err.message }));
  sock.on('close', () => {
    clearInterval(keepaliveTimer);
    record({ event: 'closed' });
    process.exit(0);
  });

  if (!flag('no-open')) send(openMessage());
  if (flag('immediate')) void runScript();
}

function hostPort(s) {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
}

const connect = opt('connect');
const listen = opt('listen');
if (connect) {
  const { host, port } = hostPort(connect);
  const sock = createConnection({ host, port });
  sock.on('connect', () => run(sock));
  sock.on('error', (err) => {
    record({ event: 'error', detail: err.message });
    process.exit(1);
  });
} else if (listen) {
  const { host, port } = hostPort(listen);
  const server = createServer((sock) => {
    server.close();
    run(sock);
  });
  server.listen(port, host, () => record({ event: 'listening', detail: listen }));
} else {
  process.stderr.write('rawpeer: --connect or --listen is required\n');
  process.exit(2);
}
process.on('SIGTERM', () => {
  record({ event: 'terminated' });
  process.exit(0);
});
