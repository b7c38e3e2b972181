/**
 * The plugin driven by a CNI client we did not write: `cnitool` (libcni, built by
 * test/k8s/build.sh from the pinned containernetworking/cni module), with the conflist of
 * deploy/cni (Twill, then Debian's reference `portmap`). libcni derives each plugin's request
 * configuration, passes Twill's result to portmap as `prevResult`, caches it, and hands it back to
 * both on CHECK and DEL: prevResult handling is proven against someone else's code. portmap's
 * DNAT for a hostPort then carries a real TCP connection to the pod.
 *
 * Everything runs in namespaces this test makes: cnitool under `ip netns exec NODE`, so the
 * plugins' host side, portmap's iptables chains included, is the node namespace (deleting it
 * removes them all). libcni's result cache (/var/lib/cni/results) gets an entry per ADD, under a
 * network name unique to this run; DEL removes it and cleanup removes any a failure left.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { hostVethName } from '../../src/cni/names.js';
import { describeSystem } from '../helpers/env.js';
import { Lab, sh } from '../helpers/netns.js';
import { binary } from '../k8s/control-plane.js';
import { type Agent, PLUGIN, type PluginRun, ROOT, runProcess, startAgent } from './helpers.js';
import { resultProblems } from './spec-format.js';

const REFERENCE = '/usr/lib/cni';
const CACHE = '/var/lib/cni/results';

describeSystem(
  'cnitool (libcni) drives Twill chained with the reference portmap',
  { root: true, tools: ['ip', 'nsenter', 'iptables-save'] },
  () => {
    const lab = new Lab();
    let agent: Agent;
    let node: string;
    let outside: string;
    let dir: string;
    let cnitool: string;
    const net = `twill-test-${process.pid}`;
    const net11 = `twill-test11-${process.pid}`;

    const tool = (command: string, netName: string, netns: string, env: Record<string, string> = {}) =>
      runProcess(
        'ip',
        ['netns', 'exec', node, cnitool, command, netName, netns],
        {
          NETCONFPATH: join(dir, 'net.d'),
          CNI_PATH: join(dir, 'bin'),
          PATH: `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
          ...env,
        },
        '',
      );
    const okRun = (r: PluginRun) => {
      if (r.code !== 0) throw new Error(`cnitool failed (${r.code}): ${r.stdout}${r.stderr}`);
      return r;
    };

    beforeAll(async () => {
      cnitool = binary('cnitool');
      if (!existsSync(cnitool))
        throw new Error(`no ${cnitool}: run test/k8s/build.sh (Go and the Go module proxy)`);
      for (const p of ['portmap'])
        if (!existsSync(join(REFERENCE, p)))
          throw new Error(`no ${REFERENCE}/${p}: install Debian's containernetworking-plugins`);
      if (!existsSync(join(ROOT, 'dist/src/cni/plugin.js')))
        throw new Error('dist/ is not built: run `npm run build` (npm test does it in pretest)');
      agent = await startAgent();
      dir = mkdtempSync(join(tmpdir(), 'twill-cnitool-'));
      mkdirSync(join(dir, 'bin'));
      mkdirSync(join(dir, 'net.d'));
      // Installed as a runtime finds it: /opt/cni/bin/twill is a link to the entry.
      symlinkSync(PLUGIN, join(dir, 'bin', 'twill'));
      symlinkSync(join(REFERENCE, 'portmap'), join(dir, 'bin', 'portmap'));
      const shipped = JSON.parse(readFileSync(join(ROOT, 'deploy/cni/10-twill.conflist'), 'utf8'));
      shipped.name = net;
      shipped.plugins[0].agentSocket = agent.socket;
      writeFileSync(join(dir, 'net.d', '10-twill.conflist'), JSON.stringify(shipped));
      writeFileSync(
        join(dir, 'net.d', '20-twill11.conflist'),
        JSON.stringify({
          cniVersion: '1.1.0',
          name: net11,
          plugins: [{ type: 'twill', agentSocket: agent.socket }],
        }),
      );
      node = lab.ns('node');
      outside = lab.ns('out');
      lab.link(node, '192.168.100.1/24', outside, '192.168.100.2/24');
      sh('ip', ['-n', node, 'route', 'add', 'default', 'via', '192.168.100.2']);
      lab.exec(node, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    });

    afterAll(async () => {
      await lab.cleanup();
      await agent?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
      if (existsSync(CACHE))
        for (const f of readdirSync(CACHE))
          if (f.startsWith(`${net}-`) || f.startsWith(`${net11}-`)) rmSync(join(CACHE, f), { force: true });
    });

    let pod: string;
    let podAddress: string;
    // As kubelet does, every call for the pod carries the same CNI_ARGS and capability args
    // (portmap's DEL finds its rules from the portMappings it is given).
    const podArgs = 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=tooled';
    const capArgs = JSON.stringify({
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
    });

    it('ADD: Twill wires the pod, portmap reads its result as prevResult and maps a hostPort to it', async () => {
      pod = lab.ns('pod');
      const r = okRun(
        await tool('add', net, `/run/netns/${pod}`, {
          CAP_ARGS: JSON.stringify({
            portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
          }),
          CNI_ARGS: podArgs,
        }),
      );
      const result = JSON.parse(r.stdout);
      expect(resultProblems(result, '1.0.0')).toEqual([]);
      expect(result.interfaces.map((i: { name: string }) => i.name)).toEqual([
        hostVethName('default', 'tooled'),
        'eth0',
      ]);
      podAddress = result.ips[0].address.split('/')[0];
      expect(result.ips[0]).toEqual({ address: `${podAddress}/32`, gateway: '169.254.1.1', interface: 1 });
      // portmap found the pod's address in Twill's result: its DNAT names it.
      expect(sh('ip', ['netns', 'exec', node, 'iptables-save', '-t', 'nat'])).toContain(
        `--to-destination ${podAddress}:80`,
      );

      // And the mapping carries a connection: outside -> node:8080 -> pod:80.
      const server = lab.spawn(pod, process.execPath, [
        '-e',
        "require('net').createServer((s) => s.end('hello from the pod\\n')).listen(80, () => console.log('up'))",
      ]);
      await new Promise<void>((resolve, reject) => {
        server.stdout!.once('data', () => resolve());
        server.once('exit', (c) => reject(new Error(`pod server exited ${c}`)));
      });
      const reply = lab.exec(outside, process.execPath, [
        '-e',
        "const c = require('net').connect(8080, '192.168.100.1'); c.pipe(process.stdout); c.setTimeout(5000, () => process.exit(2));",
      ]);
      expect(reply).toBe('hello from the pod\n');
    });

    // CHECK leaves the port mappings out: portmap 1.1.1 (Debian 12) checks its IPv4 DNAT chain in
    // ip6tables too (portmap.go checkPorts), so a CHECK with mappings fails for any IPv4-only
    // pod. Without them portmap still insists on prevResult ("Required prevResult missing").
    it('CHECK: libcni hands the cached result back as prevResult; a broken route fails it', async () => {
      okRun(await tool('check', net, `/run/netns/${pod}`, { CNI_ARGS: podArgs }));
      sh('ip', ['-n', pod, 'route', 'del', 'default']);
      const r = await tool('check', net, `/run/netns/${pod}`, { CNI_ARGS: podArgs });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('pod: default route via 169.254.1.1 dev eth0 is missing');
      sh('ip', ['-n', pod, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);
      okRun(await tool('check', net, `/run/netns/${pod}`, { CNI_ARGS: podArgs }));
    });

    it('DEL: both plugins undo their work, the address goes back, and DEL again is fine', async () => {
      // Without the pod's CNI_ARGS, Twill finds its veth in the prevResult libcni passes.
      okRun(await tool('del', net, `/run/netns/${pod}`, { CAP_ARGS: capArgs }));
      expect(
        sh('ip', ['-n', node, 'link', 'show', hostVethName('default', 'tooled')], { allowFail: true }),
      ).toBe('');
      const nat = sh('ip', ['netns', 'exec', node, 'iptables-save', '-t', 'nat']);
      expect(nat, nat).not.toContain(podAddress);
      expect(
        (await agent.store.list('IPAMHandle')).filter((h) => h.metadata.name.startsWith(`${net}.`)),
      ).toEqual([]);
      okRun(await tool('del', net, `/run/netns/${pod}`, { CNI_ARGS: podArgs, CAP_ARGS: capArgs }));
    });

    it('STATUS and GC through libcni (a 1.1.0 list)', async () => {
      const ns = lab.ns('pod11');
      okRun(await tool('status', net11, `/run/netns/${ns}`));
      agent.handler.setReady(false, 'datastore not in sync yet');
      const st = await tool('status', net11, `/run/netns/${ns}`);
      agent.handler.setReady(true);
      expect(st.code).not.toBe(0);
      expect(st.stderr).toContain('the Twill agent is not ready');

      // An address held for a container the runtime no longer knows: GC releases it.
      await agent.handler.handle({
        v: 1,
        op: 'assign',
        network: net11,
        containerID: 'orphan',
        ifname: 'eth0',
        families: [4],
        hostIfname: 'twlorphan',
        mac: '02:00:00:00:00:09',
      });
      expect(await agent.store.get({ kind: 'IPAMHandle', name: `${net11}.orphan` })).toBeDefined();
      okRun(await tool('gc', net11, `/run/netns/${ns}`));
      expect(await agent.store.get({ kind: 'IPAMHandle', name: `${net11}.orphan` })).toBeUndefined();
    });
  },
);
