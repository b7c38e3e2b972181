/**
 * BFD benchmark, in namespaces it makes and deletes (as root). A benchmark, never a test.
 *
 *   npm run build && node dist/bench/bfd/run.js [--cuts 20] [--sessions 100] [--seconds 30]
 *
 * detection   Twill's endpoint (src/bfd/udp.ts) in namespace A, BIRD 2's bfd protocol in B, one
 *             session at 100 ms x 3 (detection time 300 ms). The link is set down in A, 20 times;
 *             each time, from the cut to Twill's Down (diag 1), then up again until Up. Reported:
 *             p50 and p99 against the configured 300 ms.
 * CPU         100 sessions at 100 ms, one side measured: Twill (one endpoint, 100 sessions, in
 *             this process's child) against BIRD 2 (one bfd protocol, 100 neighbors), each facing
 *             the same far side (a Twill process with an endpoint on each of 100 addresses), one
 *             after the other. CPU seconds per minute from /proc/PID/stat (user + system).
 * Roles: this program re-runs itself inside the namespaces (`--role near|far`).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { BfdState } from '../../src/bfd/packet.js';
import { BfdEndpoint } from '../../src/bfd/udp.js';
import { cpuSeconds } from '../proc.js';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1]! : dflt;
};
const CUTS = Number(opt('--cuts', '20'));
const SESSIONS = Number(opt('--sessions', '100'));
const SECONDS = Number(opt('--seconds', '30'));
const TAG = `tbfd${process.pid}`;
const NEAR = '10.9.3.1';
const far = (i: number) => `10.9.${4 + Math.floor(i / 250)}.${(i % 250) + 2}`;
const T = { desiredMinTxUs: 100_000, requiredMinRxUs: 100_000, detectMult: 3 };

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Inside a namespace: endpoints, printing state changes as JSON lines. */
async function role(): Promise<void> {
  const r = opt('--role', '');
  const peers = opt('--peers', '').split(',').filter(Boolean);
  const locals = opt('--locals', '').split(',').filter(Boolean);
  const eps: BfdEndpoint[] = [];
  for (const local of locals) {
    const ep = new BfdEndpoint(local);
    ep.onStateChange((c) =>
      process.stdout.write(
        `${JSON.stringify({ t: performance.now() + performance.timeOrigin, peer: c.peer, to: c.to, diag: c.diag })}\n`,
      ),
    );
    await ep.start();
    eps.push(ep);
  }
  if (r === 'near') for (const p of peers) await eps[0]!.addPeer(p, T);
  else for (const ep of eps) await ep.addPeer(peers[0]!, T);
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  process.on('SIGTERM', () => Promise.all(eps.map((e) => e.stop())).then(() => process.exit(0)));
}

function lines(
  p: ChildProcess,
  on: (o: { t?: number; to?: number; ready?: boolean; peer?: string }) => void,
): void {
  let buf = '';
  p.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    for (const l of parts) on(JSON.parse(l));
  });
}

const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
};

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('the BFD benchmark needs root (network namespaces)');
  const dir = mkdtempSync(join(tmpdir(), 'twill-bfd-bench-'));
  const a = `${TAG}-a`;
  const b = `${TAG}-b`;
  const procs: ChildProcess[] = [];
  const self = (ns: string, args: string[]) => {
    const p = spawn('ip', ['netns', 'exec', ns, process.execPath, process.argv[1]!, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    procs.push(p);
    return p;
  };
  const waitReady = (p: ChildProcess) =>
    new Promise<void>((resolve) => lines(p, (o) => o.ready && resolve()));
  try {
    sh('ip', ['netns', 'add', a]);
    sh('ip', ['netns', 'add', b]);
    sh('ip', ['link', 'add', 'bfdba', 'netns', a, 'type', 'veth', 'peer', 'name', 'bfdbb', 'netns', b]);
    sh('ip', ['-n', a, 'addr', 'add', `${NEAR}/16`, 'dev', 'bfdba']);
    for (const ns of [a, b]) {
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      sh('ip', ['-n', ns, 'link', 'set', ns === a ? 'bfdba' : 'bfdbb', 'up']);
    }
    const addrs = Array.from({ length: SESSIONS }, (_, i) => far(i));
    for (const x of addrs) sh('ip', ['-n', b, 'addr', 'add', `${x}/16`, 'dev', 'bfdbb']);

    // ---- detection: Twill (near, in A) against BIRD (in B, first far address) ----
    const conf = join(dir, 'bird.conf');
    writeFileSync(
      conf,
      `router id ${far(0)};\nprotocol device { }\nprotocol bfd {\n  interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };\n  neighbor ${NEAR} local ${far(0)};\n}\n`,
    );
    const bird = spawn('ip', ['netns', 'exec', b, 'bird', '-f', '-c', conf, '-s', join(dir, 'bird.ctl')], {
      stdio: 'ignore',
    });
    procs.push(bird);
    const near = self(a, ['--role', 'near', '--locals', NEAR, '--peers', far(0)]);
    const events: { t: number; to: number }[] = [];
    lines(near, (o) => o.to !== undefined && events.push({ t: o.t!, to: o.to }));
    await waitReady(near);
    const waitTo = async (state: number, after: number, ms: number) => {
      const end = Date.now() + ms;
      for (;;) {
        const e = events.find((x) => x.t >= after && x.to === state);
        if (e) return e.t;
        if (Date.now() > end) throw new Error(`no ${state} within ${ms} ms`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await waitTo(BfdState.Up, 0, 15_000);
    const detect: number[] = [];
    for (let i = 0; i < CUTS; i++) {
      await new Promise((r) => setTimeout(r, 300));
      const t0 = performance.now() + performance.timeOrigin;
      sh('ip', ['-n', a, 'link', 'set', 'bfdba', 'down']);
      detect.push((await waitTo(BfdState.Down, t0, 5000)) - t0);
      const t1 = performance.now() + performance.timeOrigin;
      sh('ip', ['-n', a, 'link', 'set', 'bfdba', 'up']);
      await waitTo(BfdState.Up, t1, 15_000);
    }
    near.kill('SIGTERM');
    bird.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));

    // ---- CPU: 100 sessions at 100 ms, Twill then BIRD on the near side ----
    const farSide = self(b, ['--role', 'far', '--locals', addrs.join(','), '--peers', NEAR]);
    await waitReady(farSide);
    const measure = async (pid: number, upCount: () => number) => {
      const end = Date.now() + 30_000;
      while (upCount() < SESSIONS && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      const up = upCount();
      const c0 = cpuSeconds(pid);
      await new Promise((r) => setTimeout(r, SECONDS * 1000));
      return { up, cpuPerMin: ((cpuSeconds(pid) - c0) / SECONDS) * 60 };
    };
    const twillNear = self(a, ['--role', 'near', '--locals', NEAR, '--peers', addrs.join(',')]);
    const upTwill = new Set<string>();
    lines(twillNear, (o) => {
      if (o.peer && o.to === BfdState.Up) upTwill.add(o.peer);
      else if (o.peer) upTwill.delete(o.peer);
    });
    await waitReady(twillNear);
    const twill = await measure(twillNear.pid!, () => upTwill.size);
    twillNear.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 1000));
    const conf2 = join(dir, 'bird2.conf');
    writeFileSync(
      conf2,
      `router id ${NEAR};\nprotocol device { }\nprotocol bfd {\n  interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };\n${addrs.map((x) => `  neighbor ${x} local ${NEAR};`).join('\n')}\n}\n`,
    );
    const ctl2 = join(dir, 'bird2.ctl');
    const birdNear = spawn('ip', ['netns', 'exec', a, 'bird', '-f', '-c', conf2, '-s', ctl2], {
      stdio: 'ignore',
    });
    procs.push(birdNear);
    const birdUp = () => {
      try {
        return (sh('birdc', ['-s', ctl2, 'show', 'bfd', 'sessions']).match(/\sUp\s/g) ?? []).length;
      } catch {
        return 0;
      }
    };
    const birdCpu = await measure(birdNear.pid!, birdUp);

    console.log(`Twill BFD benchmark — ${new Date().toISOString()}`);
    console.log(`${cpus()[0]?.model ?? 'CPU'}, ${cpus().length} cores`);
    console.log('');
    console.log(
      `detection, ${CUTS} link cuts, 100 ms x 3 (detection time 300 ms): p50 ${pct(detect, 0.5).toFixed(0)} ms, p99 ${pct(detect, 0.99).toFixed(0)} ms, max ${Math.max(...detect).toFixed(0)} ms`,
    );
    console.log(
      `CPU, ${SESSIONS} sessions at 100 ms, over ${SECONDS} s: Twill ${twill.cpuPerMin.toFixed(2)} s/min (${twill.up} Up), BIRD ${birdCpu.cpuPerMin.toFixed(2)} s/min (${birdCpu.up} Up), ratio ${(twill.cpuPerMin / birdCpu.cpuPerMin).toFixed(2)}x`,
    );
    if (argv.includes('--json')) console.log(JSON.stringify({ detect, twill, bird: birdCpu }));
    return 0;
  } finally {
    for (const p of procs) if (p.exitCode === null && p.pid !== undefined) p.kill('SIGKILL');
    for (const ns of [a, b]) {
      for (const pid of (() => {
        try {
          return sh('ip', ['netns', 'pids', ns]).split(/\s+/).filter(Boolean);
        } catch {
          return [];
        }
      })())
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {}
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {}
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

if (argv.includes('--role'))
  role().catch((err) => {
    console.error(err);
    process.exit(1);
  });
else
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      console.error(`bfd bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      process.exitCode = 1;
    },
  );
