#!/usr/bin/env node
// The Twill CNI plugin, installed as /opt/cni/bin/twill: a symbolic link to this file (Node
// follows the link, so the import below finds dist/ beside it). It loads the CNI client alone
// (src/cni/plugin.ts), never the rest of Twill: the runtime starts it for every pod, so
// start-up time is pod start-up time. It exits as soon as the answer is written (stdout is a
// pipe or a file: writes to either are synchronous on Linux).
import { main } from '../dist/src/cni/plugin.js';

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stdout.write(
      `${JSON.stringify({ cniVersion: '1.1.0', code: 104, msg: 'twill: unexpected failure', details: String(err) })}\n`,
    );
    process.exit(1);
  },
);
