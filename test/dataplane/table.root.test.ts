/**
 * The policy table against the real kernel, inside a throwaway namespace: apply, then break our
 * rules and sets in every way drift happens (a rule deleted, a foreign rule inserted into our
 * chain, our jump removed or pushed down, a set member added, a stray chain and set) and check
 * that one read-back + apply restores exactly what was rendered, while the rules, chains and
 * sets that are not ours stay untouched; then the legacy backend and its auto-detection.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { render } from '../../src/dataplane/iptables/render.js';
import { execInNetns, PolicyTable } from '../../src/dataplane/iptables/table.js';
import { compile } from '../../src/policy/compile.js';
import type { ClusterState } from '../../src/policy/types.js';
import { describeSystem } from '../helpers/env.js';
import { Lab } from '../helpers/netns.js';

const state = JSON.parse(
  readFileSync(join(import.meta.dirname, '../fixtures/policy/state.json'), 'utf8'),
) as ClusterState;

/** Our part of iptables-save, without counters and header lines. */
function ours(save: string): string[] {
  return save.split('\n').filter((l) => /twl-/.test(l) && !l.startsWith('#'));
}

/** Our part of ipset save, without the per-set random hash seed. */
function ourSets(save: string): string[] {
  return save
    .split('\n')
    .filter((l) => l.includes('twl-'))
    .map((l) => l.replace(/ initval 0x[0-9a-f]+/, ''))
    .sort();
}

function foreign(save: string): string[] {
  return save.split('\n').filter((l) => (l.startsWith('-A') || l.startsWith(':')) && !/twl-/.test(l));
}

describeSystem(
  'PolicyTable on the real kernel',
  { root: true, tools: ['ip', 'iptables-nft-restore', 'iptables-legacy-restore', 'ipset'] },
  () => {
    const lab = new Lab();
    afterAll(() => lab.cleanup());

    it('repairs every kind of drift by read-back and never touches what is not ours', async () => {
      const ns = lab.ns('drift');
      const sh = (cmd: string, ...args: string[]) => lab.exec(ns, cmd, args);
      sh('iptables-nft', '-N', 'KUBE-FOO');
      sh('iptables-nft', '-A', 'KUBE-FOO', '-j', 'RETURN');
      sh('iptables-nft', '-A', 'FORWARD', '-m', 'comment', '--comment', 'foreign', '-j', 'KUBE-FOO');
      sh('ipset', 'create', 'foreign', 'hash:ip');
      sh('ipset', 'add', 'foreign', '192.0.2.1');
      const foreignBefore = foreign(sh('iptables-nft-save', '-t', 'filter'));

      const t = new PolicyTable({ exec: execInNetns(ns) });
      t.setDesired(render(compile(state)));
      expect((await t.apply()).readBack).toBe(true);
      const want = ours(sh('iptables-nft-save', '-t', 'filter'));
      const wantSets = ourSets(sh('ipset', 'save'));
      expect(want).toContain('-A FORWARD -m comment --comment "twl:jump-twl-FORWARD" -j twl-FORWARD');
      expect(
        sh('iptables-nft-save', '-t', 'filter')
          .split('\n')
          .find((l) => l.startsWith('-A FORWARD')),
      ).toContain('twl:jump-twl-FORWARD');

      // Drift, five ways.
      const ingressChain = want
        .find((l) => l.startsWith(':twl-tw-twl'))!
        .slice(1)
        .split(' ')[0]!;
      const peerSet = wantSets.find((l) => l.startsWith('create twl-s-'))!.split(' ')[1]!;
      sh('iptables-nft', '-D', ingressChain, '2');
      sh('iptables-nft', '-I', 'twl-FORWARD', '3', '-j', 'ACCEPT');
      sh(
        'iptables-nft',
        '-D',
        'INPUT',
        '-m',
        'comment',
        '--comment',
        'twl:jump-twl-INPUT',
        '-j',
        'twl-INPUT',
      );
      sh('iptables-nft', '-I', 'FORWARD', '1', '-j', 'KUBE-FOO');
      sh('iptables-nft', '-N', 'twl-stray');
      sh('ipset', 'add', peerSet, '198.51.100.9');
      sh('ipset', 'create', 'twl-s-stray', 'hash:ip');

      // Without a read-back the table believes nothing changed.
      expect((await t.apply()).chainsWritten).toEqual([]);
      t.markForReadBack();
      const stats = await t.apply();
      expect(stats.readBack).toBe(true);
      expect(stats.chainsWritten.sort()).toEqual([ingressChain, 'twl-FORWARD'].sort());
      expect(stats.chainsRemoved).toEqual(['twl-stray']);
      expect(stats.setsWritten).toEqual([peerSet]);
      expect(stats.setsRemoved).toEqual(['twl-s-stray']);
      expect(stats.jumpsFixed).toBe(2);

      const after = sh('iptables-nft-save', '-t', 'filter');
      expect(ours(after).sort()).toEqual([...want].sort());
      expect(after.split('\n').find((l) => l.startsWith('-A FORWARD'))).toContain('twl:jump-twl-FORWARD');
      expect(ourSets(sh('ipset', 'save'))).toEqual(wantSets);
      // The foreign rules are all still there (plus the one the drift added).
      expect(foreign(after)).toEqual(expect.arrayContaining(foreignBefore));
      expect(foreign(after)).toContain('-A FORWARD -j KUBE-FOO');

      // A second read-back finds nothing to do.
      t.markForReadBack();
      expect(await t.apply()).toMatchObject({
        chainsWritten: [],
        chainsRemoved: [],
        setsWritten: [],
        setsRemoved: [],
        jumpsFixed: 0,
      });

      // Removing everything leaves only what is not ours.
      await t.removeAll();
      const end = sh('iptables-nft-save', '-t', 'filter');
      expect(ours(end)).toEqual([]);
      expect(foreign(end)).toEqual(expect.arrayContaining(foreignBefore));
      expect(sh('ipset', 'list', '-n').trim().split('\n')).toEqual(['foreign']);
    });

    it('drives iptables-legacy when the host uses it, detected automatically', async () => {
      const ns = lab.ns('legacy');
      lab.exec(ns, 'iptables-legacy', [
        '-A',
        'FORWARD',
        '-m',
        'comment',
        '--comment',
        'host-rule',
        '-j',
        'ACCEPT',
      ]);
      const t = new PolicyTable({ exec: execInNetns(ns) });
      expect(await t.detectBackend()).toBe('legacy');
      t.setDesired(render(compile(state)));
      await t.apply();
      const save = lab.exec(ns, 'iptables-legacy-save', ['-t', 'filter']);
      expect(save).toContain('-A FORWARD -m comment --comment "twl:jump-twl-FORWARD" -j twl-FORWARD');
      expect(save).toContain('host-rule');
      expect(ours(lab.exec(ns, 'iptables-nft-save', ['-t', 'filter']))).toEqual([]);
      t.markForReadBack();
      expect(await t.apply()).toMatchObject({ chainsWritten: [], jumpsFixed: 0 });
    });
  },
);
