/**
 * Two Twill speakers in network namespaces, through the real CLI and local API: sessions come
 * up with a 4-octet AS on one side, both dialing at once ends in exactly one TCP connection,
 * prefixes flow both ways, `twill status --json` tells the truth, an unconfigured address gets
 * neither a session nor an OPEN, a frozen peer is dropped by the hold timer with 4/0, and SIGTERM
 * sends Cease 6/2 with an RFC 8203 message.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeSystem } from '../helpers/env.js';
import { Lab, waitFor } from '../helpers/netns.js';
import { Twill } from '../helpers/twill.js';

describeSystem(
  'twill speaker against twill speaker (namespaces)',
  { root: true, tools: ['ip', 'ss'] },
  () => {
    const lab = new Lab();
    let dir: string;
    let a: Twill;
    let b: Twill;
    let nsA: string;
    let nsB: string;
    let nsC: string;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'twill-speaker-'));
      nsA = lab.ns('a');
      nsB = lab.ns('b');
      nsC = lab.ns('c');
      lab.link(nsA, '10.71.0.1/24', nsB, '10.71.0.2/24', { v6: ['fd71::1/64', 'fd71::2/64'] });
      lab.link(nsA, '10.72.0.1/24', nsC, '10.72.0.3/24');
      a = new Twill(lab, {
        ns: nsA,
        dir,
        routerId: '10.71.0.1',
        asn: 64512,
        neighbors: [{ address: '10.71.0.2', asn: 4200000001, holdTime: 3, connectRetry: 1 }],
        originate: ['10.1.0.0/24', '10.1.1.0/24', 'fd00:1::/48'],
        // Without graceful restart, so SIGTERM ends the session with Cease 6/2.
        extra: { gracefulRestart: { enabled: false } },
      });
      b = new Twill(lab, {
        ns: nsB,
        dir,
        routerId: '10.71.0.2',
        asn: 4200000001,
        neighbors: [{ address: '10.71.0.1', asn: 64512, holdTime: 30, connectRetry: 1 }],
        originate: ['10.2.0.0/24'],
      });
      // Start both at once: each dials the other.
      await Promise.all([a.start(), b.start()]);
    });

    afterAll(async () => {
      await lab.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    it('both sides reach Established, with the lower hold time and a 4-octet AS', async () => {
      await a.waitState('10.71.0.2', 'Established');
      await b.waitState('10.71.0.1', 'Established');
      const p = a.peer('10.71.0.2');
      expect(p).toMatchObject({
        asn: 4200000001,
        type: 'ebgp',
        holdTime: 3,
        keepalive: 1,
        routerId: '10.71.0.2',
      });
      expect(p.capabilities).toEqual(
        expect.arrayContaining(['ipv4-unicast', 'ipv6-unicast', '4-octet-as', 'route-refresh']),
      );
    });

    it('both dialing at once ends in exactly one session', async () => {
      // Let any second connection finish its collision.
      await new Promise((r) => setTimeout(r, 2500));
      const est = execFileSync(
        'ip',
        ['netns', 'exec', nsA, 'ss', '-Htn', 'state', 'established', '( sport = :179 or dport = :179 )'],
        {
          encoding: 'utf8',
        },
      );
      expect(est.trim().split('\n').filter(Boolean)).toHaveLength(1);
      expect(a.peer('10.71.0.2').state).toBe('Established');
    });

    it('prefixes flow both ways and the counts in status agree', async () => {
      await waitFor('routes at b', async () => (await b.prefixesFrom('10.71.0.1')).length === 3);
      expect(await b.prefixesFrom('10.71.0.1')).toEqual(['10.1.0.0/24', '10.1.1.0/24', 'fd00:1::/48']);
      expect(await a.prefixesFrom('10.71.0.2')).toEqual(['10.2.0.0/24']);
      const route = (await b.pathFrom('10.1.0.0/24', '10.71.0.1'))!;
      expect(route).toMatchObject({ asPath: '64512', nextHops: ['10.71.0.1'], best: true, origin: 'IGP' });
      expect(a.peer('10.71.0.2')).toMatchObject({ prefixesAdvertised: 3, prefixesReceived: 1 });
      expect(b.peer('10.71.0.1')).toMatchObject({ prefixesAdvertised: 1, prefixesReceived: 3 });
      expect(a.statusText()).toMatch(/10\.71\.0\.2\s+\|\s+eBGP AS 4200000001\s+\|\s+Established/);
    });

    it('a connection from an unconfigured address gets no session and no OPEN', async () => {
      // Connect from c, which is not a neighbor of a, and report what comes back.
      const probe = `const s=require('net').connect(179,'10.72.0.1');let n=0;s.on('data',d=>n+=d.length);
      s.on('close',()=>{console.log(JSON.stringify({bytes:n}));process.exit(0)});s.on('error',()=>{});
      setTimeout(()=>{console.log(JSON.stringify({bytes:n,open:true}));process.exit(0)},3000);`;
      const r = spawnSync('ip', ['netns', 'exec', nsC, process.execPath, '-e', probe], { encoding: 'utf8' });
      expect(JSON.parse(r.stdout)).toEqual({ bytes: 0 });
      await waitFor(
        'the refusal in the log',
        () => /refused BGP connection from an address that is not a configured neighbor/.test(a.log),
        5000,
      );
      expect(a.status().peers.map((p) => p.address)).toEqual(['10.71.0.2']);
    });

    it('a frozen peer is dropped by the hold timer with NOTIFICATION 4/0, and comes back', async () => {
      b.kill('SIGSTOP');
      try {
        await waitFor('hold timer expiry at a', () => a.peer('10.71.0.2').state !== 'Established', 10_000);
        expect(a.peer('10.71.0.2').lastError).toMatchObject({ direction: 'sent', code: 4, subcode: 0 });
      } finally {
        b.kill('SIGCONT');
      }
      await a.waitState('10.71.0.2', 'Established', 30_000);
      await waitFor('routes back at a', async () => (await a.prefixesFrom('10.71.0.2')).length === 1);
    });

    it('SIGTERM sends Cease 6/2 with a shutdown message (RFC 8203) and the peer reports it', async () => {
      await a.stop();
      await waitFor(
        'b sees the Cease',
        () => b.peer('10.71.0.1').lastError?.direction === 'received',
        10_000,
      );
      const e = b.peer('10.71.0.1').lastError!;
      expect(e).toMatchObject({ direction: 'received', code: 6, subcode: 2 });
      expect(e.text).toContain('Twill speaker stopped (SIGTERM)');
      expect(await b.prefixesFrom('10.71.0.1')).toEqual([]);
    });
  },
);
