#!/usr/bin/env node
// The `twill` command. The TypeScript sources are compiled to dist/ by `npm install` (prepare).
import { main } from '../dist/src/cli.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`twill: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
