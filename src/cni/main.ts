/**
 * The CNI plugin's program entry: what /opt/cni/bin/twill runs. `npm run build` bundles this
 * file and the CNI client it reaches (plugin.ts, nothing else of Twill) into one minified
 * CommonJS file, dist/cni/twill (deploy/build-cni.mjs); `twill cni-install` copies that file and
 * the Node binary to the host. One file spares the ES module loader (about 10 ms of start-up on
 * these machines: resolving, reading and linking each module), which the runtime would pay for
 * every pod. It exits as soon as the answer is written (stdout is a pipe or a file: writes to
 * either are synchronous on Linux).
 */
import { main } from './plugin.js';

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stdout.write(
      `${JSON.stringify({ cniVersion: '1.1.0', code: 104, msg: 'twill: unexpected failure', details: String(err) })}\n`,
    );
    process.exit(1);
  },
);
