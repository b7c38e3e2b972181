/**
 * The plugin stays a thin client: the runtime starts it for every pod, so what it loads is pod
 * start-up time. Checked twice:
 * - statically, on the sources: the files src/cni/plugin.ts reaches, and the Node modules they
 *   import (type-only imports do not load anything and are left out);
 * - on the built plugin, dist/cni/twill (one file bundled by esbuild): esbuild's metafile lists
 *   the same sources and the same Node modules, and the file requires nothing else.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');
/** node:crypto would be allowed, but loading it costs ~10 ms of CPU: names.ts has its own SHA-1. */
const BUILTINS = ['node:child_process', 'node:fs', 'node:net'];
const PLUGIN_FILES = [
  'src/cni/names.ts',
  'src/cni/plugin.ts',
  'src/cni/protocol.ts',
  'src/cni/spec.ts',
  'src/cni/wiring.ts',
];

/** Specifiers of the imports that load code (not `import type`). */
function runtimeImports(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
  const out: string[] = [];
  for (const m of code.matchAll(
    /(?:^|;|\n)\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*['"]([^'"]+)['"]/g,
  )) {
    if (m[2]) continue;
    out.push(m[4]!);
  }
  for (const m of code.matchAll(/import\s*\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s+['"]([^'"]+)['"]/gm))
    out.push((m[1] ?? m[2])!);
  return out;
}

function graph(entry: string): { files: string[]; builtins: string[]; packages: string[] } {
  const files = new Set<string>();
  const builtins = new Set<string>();
  const packages = new Set<string>();
  const visit = (abs: string) => {
    const rel = relative(ROOT, abs);
    if (files.has(rel)) return;
    files.add(rel);
    for (const spec of runtimeImports(readFileSync(abs, 'utf8'))) {
      if (spec.startsWith('.')) visit(resolve(dirname(abs), spec.replace(/\.js$/, '.ts')));
      else if (spec.startsWith('node:')) builtins.add(spec);
      else packages.add(spec);
    }
  };
  visit(join(ROOT, entry));
  return { files: [...files].sort(), builtins: [...builtins].sort(), packages: [...packages].sort() };
}

describe('the CNI plugin loads only what it needs', () => {
  it('statically: five files of its own, three Node modules, no package', () => {
    const g = graph('src/cni/plugin.ts');
    expect(g.files).toEqual(PLUGIN_FILES);
    expect(g.packages).toEqual([]);
    expect(g.builtins).toEqual(BUILTINS);
  });

  it('the checker sees through to what a file really loads', () => {
    expect(
      runtimeImports("import type { A } from './a.js';\nimport { b } from 'pino';\nimport 'yaml';"),
    ).toEqual(['pino', 'yaml']);
    // server.ts loads IPAM's allocations; it names the Allocator class as a type only.
    const server = graph('src/cni/server.ts').files;
    expect(server).toContain('src/ipam/allocations.ts');
    expect(server).not.toContain('src/ipam/allocator.ts');
  });

  it('the built plugin (dist/cni/twill, one bundled file) holds the same and requires nothing else', () => {
    const entry = join(ROOT, 'dist/cni/twill');
    if (!existsSync(entry))
      throw new Error('dist/cni/twill is not built: run `npm run build` (npm test does it in pretest)');
    const out = execFileSync(entry, [], {
      env: { PATH: process.env.PATH, CNI_COMMAND: 'VERSION' },
      input: '{"cniVersion":"1.1.0"}',
      encoding: 'utf8',
    });
    expect(JSON.parse(out).cniVersion).toBe('1.1.0');
    // esbuild's own account of the bundle (deploy/build-cni.mjs writes it beside the file).
    const meta = JSON.parse(readFileSync(join(ROOT, 'dist/cni/meta.json'), 'utf8')) as {
      inputs: Record<string, unknown>;
      outputs: Record<string, { imports: { path: string; external?: boolean }[] }>;
    };
    expect(Object.keys(meta.inputs).sort()).toEqual([...PLUGIN_FILES, 'src/cni/main.ts'].sort());
    const outputs = Object.values(meta.outputs);
    expect(outputs).toHaveLength(1);
    expect(outputs[0]!.imports.map((i) => i.path).sort()).toEqual(BUILTINS);
    expect(outputs[0]!.imports.every((i) => i.external)).toBe(true);
    // And the file itself: every require() in it names one of those.
    const text = readFileSync(entry, 'utf8');
    const required = [...new Set([...text.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]!))].sort();
    expect(required).toEqual(BUILTINS);
    expect(text.startsWith('#!/usr/bin/env node\n')).toBe(true);
  });
});
