/**
 * `twill cni-install`: installs the CNI plugin, the Node binary it runs on and the network
 * configuration on the host (src/cni/install.ts says what and how). The DaemonSet's init
 * container runs it with the host's folders mounted:
 *
 *   twill cni-install --bin-dir /host/opt/cni/bin --host-bin-dir /opt/cni/bin \
 *                     --conf-dir /host/etc/cni/net.d          # conflist from $CNI_CONFLIST
 *
 * Options: --bin-dir [/opt/cni/bin], --host-bin-dir [the --bin-dir], --conf-dir
 * [/etc/cni/net.d], --conf-name [10-twill.conflist], --conflist FILE [$CNI_CONFLIST, else the
 * built-in default]. Exit 0 installed, 2 a bad option or configuration (nothing written), 1 a
 * write that failed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_CONFLIST, InstallError, installCni } from '../cni/install.js';
import { UsageError } from './usage.js';

const USAGE =
  'usage: twill cni-install [--bin-dir DIR] [--host-bin-dir DIR] [--conf-dir DIR] [--conf-name NAME] [--conflist FILE]';

/** dist/cni/twill, beside dist/src/cli/ in the build (and in the image). */
const BUNDLE = join(import.meta.dirname, '../../cni/twill');

export async function cniInstallCommand(
  args: string[],
  env: Record<string, string | undefined> = process.env,
): Promise<number> {
  let binDir = '/opt/cni/bin';
  let hostBinDir: string | undefined;
  let confDir = '/etc/cni/net.d';
  let confName = '10-twill.conflist';
  let conflistFile: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value; ${USAGE}`);
      return v;
    };
    if (a === '--bin-dir') binDir = value();
    else if (a === '--host-bin-dir') hostBinDir = value();
    else if (a === '--conf-dir') confDir = value();
    else if (a === '--conf-name') confName = value();
    else if (a === '--conflist') conflistFile = value();
    else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    } else throw new UsageError(`unknown option ${a}; ${USAGE}`);
  }
  if (!/^[\w.-]+\.conflist$/.test(confName))
    throw new UsageError(`--conf-name: ${JSON.stringify(confName)} must be a file name ending in .conflist`);
  let conflist: string;
  let source: string;
  if (conflistFile !== undefined) {
    try {
      conflist = readFileSync(conflistFile, 'utf8');
    } catch (e) {
      throw new UsageError(`--conflist: ${(e as Error).message}`);
    }
    source = conflistFile;
  } else if (env.CNI_CONFLIST !== undefined && env.CNI_CONFLIST.trim() !== '') {
    conflist = env.CNI_CONFLIST;
    source = 'CNI_CONFLIST';
  } else {
    conflist = JSON.stringify(DEFAULT_CONFLIST);
    source = 'the built-in default';
  }
  try {
    const report = await installCni({
      binDir,
      hostBinDir: hostBinDir ?? binDir,
      confDir,
      confName,
      conflist,
      node: process.execPath,
      plugin: BUNDLE,
    });
    for (const w of report.written) process.stdout.write(`installed ${w}\n`);
    process.stdout.write(`network configuration from ${source}\n`);
    for (const m of report.missing)
      process.stderr.write(
        `warning: the configuration chains "${m}", which is not in ${binDir}: install it (containernetworking-plugins) or the runtime's ADD will fail\n`,
      );
    return 0;
  } catch (e) {
    if (!(e instanceof InstallError)) throw e;
    const usage = e.problems.some((p) => p.startsWith('conflist:') || p.startsWith('--'));
    for (const p of e.problems)
      process.stderr.write(
        `twill cni-install: ${p}${p.startsWith('conflist:') ? ` (from ${source})` : ''}\n`,
      );
    process.stderr.write('nothing was changed on the host\n');
    return usage ? 2 : 1;
  }
}
