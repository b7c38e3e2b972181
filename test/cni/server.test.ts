/**
 * The agent's CNI endpoint: the handler over the real Allocator on the in-memory datastore, and
 * the socket shell (permissions, one request per connection, stale sockets, a second server,
 * malformed requests). The plugin's side of the socket is `askAgent`.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { askAgent } from '../../src/cni/plugin.js';
import { type AgentRequest, PROTOCOL_VERSION, ProtocolError, parseRequest } from '../../src/cni/protocol.js';
import { type AttachmentEvent, CniServer } from '../../src/cni/server.js';
import { type Agent, startAgent } from './helpers.js';

const v = PROTOCOL_VERSION;
type Assign = Extract<AgentRequest, { op: 'assign' }>;
const assign = (containerID: string, extra: Partial<Assign> = {}): Assign => ({
  v,
  op: 'assign',
  network: 'k8s-pod-network',
  containerID,
  ifname: 'eth0',
  namespace: 'default',
  pod: containerID,
  families: [4],
  hostIfname: 'twlx',
  mac: '02:00:00:00:00:01',
  ...extra,
});

let agent: Agent | undefined;
afterEach(async () => {
  await agent?.stop();
  agent = undefined;
});

describe('CniHandler', () => {
  it('assign is idempotent per handle, records the pod, and tells the agent', async () => {
    const events: AttachmentEvent[] = [];
    agent = await startAgent({ onAssigned: (e) => events.push(e) });
    const a = await agent.handler.handle(assign('c1', { families: [6, 4] }));
    expect(a).toEqual({
      ok: true,
      handle: 'k8s-pod-network.c1',
      addresses: [
        { address: '10.77.0.0', family: 4, block: '10.77.0.0/28', borrowed: false },
        { address: 'fd00:77::', family: 6, block: 'fd00:77::/122', borrowed: false },
      ],
    });
    expect(await agent.handler.handle(assign('c1', { families: [6, 4] }))).toEqual(a);
    expect((await agent.handler.handle(assign('c2'))) as { addresses: { address: string }[] }).toMatchObject({
      addresses: [{ address: '10.77.0.1' }],
    });
    expect(events[0]).toMatchObject({ handle: 'k8s-pod-network.c1', hostIfname: 'twlx', pod: 'c1' });
  });

  it('wire does the host side of what this endpoint assigned, and nothing else', async () => {
    const wired: AttachmentEvent[] = [];
    agent = await startAgent({
      wireHost: async (e) => {
        wired.push(e);
      },
    });
    const wire = (containerID: string, ifname = 'eth0') =>
      agent!.handler.handle({ v, op: 'wire', network: 'k8s-pod-network', containerID, ifname });
    // Nothing assigned: the request cannot name an interface or addresses of its own.
    expect(await wire('c1')).toMatchObject({ ok: false, error: { code: 'Invalid' } });
    await agent.handler.handle(assign('c1', { hostIfname: 'twl0123456789a', mac: '02:00:00:00:00:09' }));
    expect(await wire('c1', 'eth1')).toMatchObject({ ok: false, error: { code: 'Invalid' } });
    expect(await wire('c1')).toEqual({ ok: true, handle: 'k8s-pod-network.c1' });
    expect(wired).toEqual([
      expect.objectContaining({
        hostIfname: 'twl0123456789a',
        mac: '02:00:00:00:00:09',
        addresses: [{ address: '10.77.0.0', family: 4, block: '10.77.0.0/28', borrowed: false }],
      }),
    ]);
    // Once wired, or once released, it is forgotten.
    expect(await wire('c1')).toMatchObject({ ok: false, error: { code: 'Invalid' } });
    await agent.handler.handle(assign('c2'));
    await agent.handler.handle({
      v,
      op: 'release',
      network: 'k8s-pod-network',
      containerID: 'c2',
      ifname: 'eth0',
    });
    expect(await wire('c2')).toMatchObject({ ok: false, error: { code: 'Invalid' } });
    expect(
      parseRequest(JSON.stringify({ v, op: 'wire', network: 'n', containerID: 'c', ifname: 'eth0' })),
    ).toEqual({
      v,
      op: 'wire',
      network: 'n',
      containerID: 'c',
      ifname: 'eth0',
    });
  });

  it('wire on an endpoint that does not write to the kernel is Unsupported (the plugin then does it)', async () => {
    agent = await startAgent();
    await agent.handler.handle(assign('c1'));
    expect(
      await agent.handler.handle({
        v,
        op: 'wire',
        network: 'k8s-pod-network',
        containerID: 'c1',
        ifname: 'eth0',
      }),
    ).toMatchObject({ ok: false, error: { code: 'Unsupported' } });
  });

  it('check compares the handle with the expected addresses', async () => {
    agent = await startAgent();
    await agent.handler.handle(assign('c1'));
    const check = (addresses: string[]) =>
      agent!.handler.handle({
        v,
        op: 'check',
        network: 'k8s-pod-network',
        containerID: 'c1',
        ifname: 'eth0',
        addresses,
      });
    expect(await check(['10.77.0.0'])).toEqual({ ok: true, handle: 'k8s-pod-network.c1' });
    expect(await check(['10.77.0.9'])).toEqual({
      ok: false,
      error: {
        code: 'Mismatch',
        message: 'IPAM handle k8s-pod-network.c1 does not hold 10.77.0.9 and also holds 10.77.0.0',
      },
    });
  });

  it('release frees the handle and is idempotent', async () => {
    agent = await startAgent();
    await agent.handler.handle(assign('c1'));
    const rel = { v, op: 'release', network: 'k8s-pod-network', containerID: 'c1', ifname: 'eth0' } as const;
    expect(await agent.handler.handle(rel)).toEqual({
      ok: true,
      handle: 'k8s-pod-network.c1',
      released: ['10.77.0.0'],
    });
    expect(await agent.handler.handle(rel)).toEqual({ ok: true, handle: 'k8s-pod-network.c1', released: [] });
  });

  it("gc releases only this network's handles on this node that are not valid", async () => {
    agent = await startAgent();
    for (const c of ['keep', 'drop']) await agent.handler.handle(assign(c));
    await agent.handler.handle(assign('other-net', { network: 'another' }));
    const r = await agent.handler.handle({
      v,
      op: 'gc',
      network: 'k8s-pod-network',
      valid: [{ containerID: 'keep', ifname: 'eth0' }],
    });
    expect(r).toEqual({ ok: true, released: ['10.77.0.1'], errors: [] });
    const handles = (await agent.store.list('IPAMHandle')).map((h) => h.metadata.name).sort();
    expect(handles).toEqual(['another.other-net', 'k8s-pod-network.keep']);
  });

  it('not ready: everything but status is NotReady with the reason', async () => {
    agent = await startAgent({ ready: false });
    expect(await agent.handler.handle({ v, op: 'status' })).toEqual({
      ok: true,
      ready: false,
      node: 'node-a',
      reason: 'the agent is starting (datastore not in sync yet)',
    });
    expect(await agent.handler.handle(assign('c1'))).toEqual({
      ok: false,
      error: { code: 'NotReady', message: 'node node-a: the agent is starting (datastore not in sync yet)' },
    });
    agent.handler.setReady(true);
    expect(await agent.handler.handle({ v, op: 'status' })).toEqual({
      ok: true,
      ready: true,
      node: 'node-a',
    });
  });

  it('an exhausted pool is Exhausted, an invalid network name Invalid', async () => {
    agent = await startAgent({ pool4: '10.77.0.0/31', blockSize4: 31 });
    await agent.handler.handle(assign('a'));
    await agent.handler.handle(assign('b'));
    const r = (await agent.handler.handle(assign('c'))) as { ok: false; error: { code: string } };
    expect(r.error.code).toBe('Exhausted');
    const bad = (await agent.handler.handle(assign('d', { network: 'Upper' }))) as {
      ok: false;
      error: { code: string };
    };
    expect(bad.error.code).toBe('Invalid');
  });
});

describe('protocol', () => {
  it('parseRequest refuses other versions, unknown ops and malformed fields', () => {
    const t = (o: unknown) => () => parseRequest(JSON.stringify(o));
    expect(t({ v: 2, op: 'status' })).toThrow(ProtocolError);
    expect(t({ v: 2, op: 'status' })).toThrow(/plugin and agent from different releases/);
    expect(t({ v, op: 'nope' })).toThrow(/op: "nope"/);
    expect(t({ ...assign('c'), families: [5] })).toThrow(/families/);
    expect(t({ ...assign('c'), namespace: undefined })).toThrow(/namespace and pod/);
    expect(t({ v, op: 'gc', network: 'n', valid: [{ containerID: 'x' }] })).toThrow(/ifname/);
    expect(() => parseRequest('{')).toThrow(/not JSON/);
    expect(parseRequest(JSON.stringify(assign('c')))).toEqual(assign('c'));
  });
});

describe('CniServer', () => {
  it("socket 0600 in a 0700 folder; the plugin's client gets its answer", async () => {
    agent = await startAgent();
    expect(statSync(agent.socket).mode & 0o777).toBe(0o600);
    expect(statSync(join(agent.dir, 'run')).mode & 0o777).toBe(0o700);
    expect(await askAgent(agent.socket, { v, op: 'status' }, 5000)).toEqual({
      ok: true,
      ready: true,
      node: 'node-a',
    });
  });

  it('refuses to take over a live socket; replaces a stale one; refuses a file that is not a socket', async () => {
    agent = await startAgent();
    const second = new CniServer({ handler: agent.handler, path: agent.socket });
    await expect(second.listen()).rejects.toThrow(/another agent already serves/);
    // A stale socket: the file of a socket nobody listens on (as a crashed agent leaves it).
    const stale = join(agent.dir, 'stale', 'cni.sock');
    mkdirSync(join(agent.dir, 'stale'));
    execFileSync('python3', [
      '-c',
      'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])',
      stale,
    ]);
    expect(statSync(stale).isSocket()).toBe(true);
    writeFileSync(join(agent.dir, 'plain'), '');
    const third = new CniServer({ handler: agent.handler, path: join(agent.dir, 'plain') });
    await expect(third.listen()).rejects.toThrow(/is not a socket/);
    const fourth = new CniServer({ handler: agent.handler, path: stale });
    await fourth.listen();
    expect(await askAgent(stale, { v, op: 'status' }, 5000)).toMatchObject({ ok: true });
    await fourth.close();
  });

  it('an agent that closes without answering is "try again later" for the plugin', async () => {
    agent = await startAgent();
    const path = join(agent.dir, 'mute.sock');
    const mute = createServer((c) => c.end());
    await new Promise<void>((r) => mute.listen(path, r));
    try {
      await expect(askAgent(path, { v, op: 'status' }, 5000)).rejects.toMatchObject({
        code: 11,
        message: 'the Twill agent closed the connection without an answer',
      });
    } finally {
      mute.close();
    }
  });

  it('malformed requests get Invalid; a request without its newline too', async () => {
    agent = await startAgent();
    const raw = (text: string, end: boolean) =>
      new Promise<string>((resolve, reject) => {
        const c = connect(agent!.socket);
        let out = '';
        c.on('data', (d) => {
          out += d;
        });
        c.on('end', () => resolve(out));
        c.on('error', reject);
        c.write(text);
        if (end) c.end();
      });
    expect(JSON.parse(await raw('{"v":1,"op":"status"\n', false))).toMatchObject({
      ok: false,
      error: { code: 'Invalid' },
    });
    expect(JSON.parse(await raw('{"v":1,"op":"status"}', true))).toEqual({
      ok: false,
      error: { code: 'Invalid', message: 'connection closed before a complete request (no newline)' },
    });
  });
});
