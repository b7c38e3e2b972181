/**
 * The topologies in containerlab/ stay deployable: each reads with readClab, every bind's host
 * file exists (relative to the topology file, as containerlab resolves it), and each Twill
 * speaker config a node runs parses with parseSpeakerConfig, each `twill agent` command line
 * parses with the agent's own parser, and every file a `twill.dev/objects` label names exists. So renaming a file or a config
 * field cannot leave a topology behind.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSpeakerConfig } from '../../src/bgp/config.js';
import { parseAgentConfig } from '../../src/agent/config.js';
import { bindHostPath, readClab } from '../../src/lab/clab.js';
import { agentFlags, roleOf } from '../../src/lab/lab.js';

const dir = join(import.meta.dirname, '..', '..', 'containerlab');
const topologies = readdirSync(dir)
  .filter((f) => f.endsWith('.clab.yml'))
  .map((f) => join(dir, f));

describe('containerlab/', () => {
  it('has topologies to check', () => {
    // A glob that matches nothing would make every check below pass vacuously.
    expect(topologies.map((f) => f.slice(dir.length + 1))).toContain('twill-bird.clab.yml');
  });

  describe.each(topologies)('%s', (file) => {
    const topo = readClab(readFileSync(file, 'utf8'), file);

    it('binds only files that exist', () => {
      const missing = topo.nodes.flatMap((n) =>
        n.binds.map((b) => bindHostPath(file, b)).filter((p) => !existsSync(p)),
      );
      expect(missing).toEqual([]);
    });

    it('links only interfaces of its own nodes', () => {
      const names = new Set(topo.nodes.map((n) => n.name));
      for (const l of topo.links) for (const ep of l.endpoints) expect(names).toContain(ep.node);
    });

    it('gives every twill speaker a config that parses', () => {
      const speakers = topo.nodes.flatMap((n) =>
        [n.cmd ?? '', ...n.exec].flatMap((c) => {
          const m = /\btwill speaker --config (\S+)/.exec(c);
          return m ? [{ node: n, path: m[1]! }] : [];
        }),
      );
      for (const { node, path } of speakers) {
        const bind = node.binds.find((b) => b.container === path);
        expect(bind, `${node.name}: no bind for ${path}`).toBeDefined();
        const host = bindHostPath(file, bind!);
        expect(() => parseSpeakerConfig(readFileSync(host, 'utf8'), host)).not.toThrow();
      }
    });
  });

  describe.each(topologies)('%s: agents', (file) => {
    const topo = readClab(readFileSync(file, 'utf8'), file);
    it('gives every twill agent a command line the agent accepts, and objects files that exist', () => {
      for (const n of topo.nodes) {
        const objects = n.labels['twill.dev/objects'];
        if (objects)
          for (const f of objects.split(',')) expect(existsSync(join(dir, f.trim())), f).toBe(true);
        if (roleOf(n) !== 'twill' || !n.cmd?.startsWith('twill agent')) continue;
        const argv = ['--nodename', n.name, ...agentFlags(n)];
        const cfg = parseAgentConfig(argv, n.env, n.name);
        expect(cfg, `${n.name}: ${n.cmd}`).toBeDefined();
      }
    });
  });

  it('twill-bird: Twill and BIRD agree on addresses and AS numbers', () => {
    const file = join(dir, 'twill-bird.clab.yml');
    const topo = readClab(readFileSync(file, 'utf8'), file);
    const twill = topo.nodes.find((n) => n.name === 'twill1')!;
    const bird = topo.nodes.find((n) => n.name === 'bird1')!;
    expect(twill.exec).toContain('ip addr add 10.10.0.1/24 dev eth1');
    expect(bird.exec).toContain('ip addr add 10.10.0.2/24 dev eth1');

    const config = parseSpeakerConfig(
      readFileSync(join(dir, 'twill-bird', 'twill.yml'), 'utf8'),
      'twill.yml',
    );
    expect(config.routerId).toBe('10.10.0.1');
    expect(config.asn).toBe(64512);
    expect(config.neighbors.map((n) => [n.address, n.asn])).toEqual([['10.10.0.2', 64513]]);
    expect(config.originate).toEqual(['10.20.0.0/24']);

    const birdConf = readFileSync(join(dir, 'twill-bird', 'bird.conf'), 'utf8');
    expect(bird.binds.map((b) => b.container)).toContain('/etc/bird/bird.conf');
    expect(birdConf).toMatch(/router id 10\.10\.0\.2;/);
    expect(birdConf).toMatch(/local as 64513;/);
    expect(birdConf).toMatch(/neighbor 10\.10\.0\.1 as 64512;/);
  });
});
