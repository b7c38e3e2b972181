/**
 * The pure cores stay pure (DESIGN.md "Dependency direction", STYLE.md §2): the codec, FSM,
 * decision process, RIB, IPAM and policy compiler import no sockets, processes, files or timers,
 * so they run the same under a fake clock and in a property test as in the agent.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const pure = [
  'src/bgp/wire',
  'src/bgp/fsm.ts',
  'src/bgp/decision.ts',
  'src/bgp/rib',
  'src/bgp/policy.ts',
  'src/bgp/export.ts',
  'src/bgp/warmup.ts',
  'src/bgp/config.ts',
  'src/lab',
  'src/ipam',
  'src/policy',
  'src/net',
];
const bannedModules = [
  'net',
  'dgram',
  'child_process',
  'fs',
  'fs/promises',
  'timers',
  'timers/promises',
  'worker_threads',
  'http',
  'https',
];
const bannedGlobals =
  /\b(setTimeout|setInterval|setImmediate|clearTimeout|clearInterval|queueMicrotask)\s*\(/;

function files(path: string): string[] {
  const abs = join(root, path);
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(abs);
  } catch {
    return [];
  }
  if (st.isFile()) return path.endsWith('.ts') ? [abs] : [];
  return readdirSync(abs).flatMap((e) => files(join(path, e)));
}

function violations(source: string): string[] {
  const found: string[] = [];
  const importRe =
    /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|require\s*\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of source.matchAll(importRe)) {
    const spec = (m[1] ?? m[2] ?? m[3])!;
    const bare = spec.replace(/^node:/, '');
    if (bannedModules.includes(bare)) found.push(`imports ${spec}`);
  }
  const code = source.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
  const t = bannedGlobals.exec(code);
  if (t) found.push(`calls ${t[1]}`);
  return found;
}

describe('layering', () => {
  it('the checker itself catches each banned import and timer', () => {
    expect(violations("import { Socket } from 'node:net';")).toEqual(['imports node:net']);
    expect(violations("import * as fs from 'fs';")).toEqual(['imports fs']);
    expect(violations("const cp = require('node:child_process');")).toEqual(['imports node:child_process']);
    expect(violations("await import('node:dgram');")).toEqual(['imports node:dgram']);
    expect(violations('setTimeout(() => {}, 10);')).toEqual(['calls setTimeout']);
    expect(violations("// setTimeout(x)\nimport { x } from './y.js';")).toEqual([]);
  });

  it('pure modules import no socket, process, file or timer', () => {
    const checked = pure.flatMap(files);
    expect(checked.length).toBeGreaterThan(0);
    const bad = checked.flatMap((f) =>
      violations(readFileSync(f, 'utf8')).map((v) => `${relative(root, f)} ${v}`),
    );
    expect(bad).toEqual([]);
  });

  it('lower layers never import the agent or the CLI', () => {
    const bad = files('src')
      .filter((f) => !/src\/(agent|cli)/.test(f) && !f.endsWith('src/cli.ts'))
      .filter((f) => /from\s+['"][./]*(?:\.\.\/)*(agent|cli)(\/|\.js)/.test(readFileSync(f, 'utf8')))
      .map((f) => relative(root, f));
    expect(bad).toEqual([]);
  });
});
