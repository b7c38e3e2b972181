// Bundles the CNI plugin (src/cni/main.ts and what it imports) into dist/cni/twill: one
// minified CommonJS file, run by Node through its first line. Part of `npm run build`; the
// image build runs it too. `twill cni-install` copies the result to the host's CNI folder and
// rewrites the first line to name the Node binary it installs beside it.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { build } from 'esbuild';

const root = join(dirname(new URL(import.meta.url).pathname), '..');
const out = join(root, 'dist/cni');
mkdirSync(out, { recursive: true });
// No extension, so the folder says how Node must read it (the repository is "type": "module").
writeFileSync(join(out, 'package.json'), '{ "type": "commonjs" }\n');
const result = await build({
  entryPoints: [join(root, 'src/cni/main.ts')],
  outfile: join(out, 'twill'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  legalComments: 'none',
  banner: { js: '#!/usr/bin/env node' },
  logLevel: 'warning',
  metafile: true,
});
// What went in, for test/cni/import-graph.test.ts (and anyone asking what the plugin holds).
writeFileSync(join(out, 'meta.json'), JSON.stringify(result.metafile, null, 1));
chmodSync(join(out, 'twill'), 0o755);
