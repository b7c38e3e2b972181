/**
 * RFC 5881 §5 on the receiving side: a Control packet that arrives with a TTL other than 255 is
 * dropped before it reaches the endpoint (its netfilter rule), one with 255 reaches it. The
 * packets are sent from the peer's namespace by Node's dgram with the TTL set; they name an
 * unknown discriminator, so one that gets through shows in the endpoint's `dropped.unknown`.
 * The rule goes when the endpoint stops.
 */
import { encodeControl } from '../../src/bfd/packet.js';
import { expect, it } from 'vitest';
import { join } from 'node:path';
import { describeSystem } from '../helpers/env.js';
import { Lab, sh, waitFor } from '../helpers/netns.js';

const ENDPOINT = join(import.meta.dirname, 'endpoint.mjs');

describeSystem(
  'BFD: received TTL 255 enforced (RFC 5881 §5)',
  { root: true, tools: ['ip', 'iptables'] },
  () => {
    it('TTL 64 is dropped before the endpoint, TTL 255 reaches it; the rule goes at stop', async () => {
      const lab = new Lab();
      try {
        const tw = lab.ns('tw');
        const peer = lab.ns('peer');
        lab.link(tw, '10.9.5.1/24', peer, '10.9.5.2/24');
        const ep = lab.spawn(tw, process.execPath, [ENDPOINT, '10.9.5.1', '10.9.5.2']);
        let out = '';
        ep.stdout!.on('data', (c: Buffer) => {
          out += c.toString();
        });
        await waitFor('endpoint ready', () => out.includes('"ready":true'), 10_000, 50);
        expect(sh('ip', ['netns', 'exec', tw, 'iptables', '-S', 'INPUT'])).toContain('--ttl-eq 255 -j DROP');
        const pkt = encodeControl({
          diag: 0,
          state: 1,
          poll: false,
          final: false,
          cpi: false,
          auth: false,
          demand: false,
          multipoint: false,
          detectMult: 3,
          myDiscr: 777,
          yourDiscr: 12345,
          desiredMinTx: 1_000_000,
          requiredMinRx: 1_000_000,
          requiredMinEchoRx: 0,
        }).toString('hex');
        const send = (ttl: number) =>
          sh('ip', [
            'netns',
            'exec',
            peer,
            process.execPath,
            '-e',
            `const s=require('dgram').createSocket('udp4');s.bind(0,'10.9.5.2',()=>{s.setTTL(${ttl});s.send(Buffer.from('${pkt}','hex'),3784,'10.9.5.1',()=>s.close())})`,
          ]);
        const dropped = async () => {
          const before = out.length;
          process.kill(ep.pid!, 'SIGUSR1');
          await waitFor('status', () => out.slice(before).includes('"dropped"'), 5000, 20);
          const line = out
            .slice(before)
            .split('\n')
            .find((l) => l.includes('"dropped"'))!;
          return (JSON.parse(line) as { dropped: { unknown: number } }).dropped.unknown;
        };
        send(64);
        send(64);
        await new Promise((r) => setTimeout(r, 300));
        expect(await dropped()).toBe(0);
        send(255);
        await new Promise((r) => setTimeout(r, 300));
        expect(await dropped()).toBe(1);
        process.kill(ep.pid!, 'SIGTERM');
        await new Promise((r) => ep.once('exit', r));
        expect(sh('ip', ['netns', 'exec', tw, 'iptables', '-S', 'INPUT'])).not.toContain('--ttl-eq 255');
      } finally {
        await lab.cleanup();
      }
    }, 30_000);
  },
);
