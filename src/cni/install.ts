/**
 * `twill cni-install`: what the DaemonSet's init container does on every node before the agent
 * starts, as calico-node's install-cni does. It puts three files on the host:
 *
 *   BIN/twill-node   the Node binary running this process (process.execPath), so the node needs
 *                    no Node of its own;
 *   BIN/twill        the CNI plugin, dist/cni/twill (one bundled file, see src/cni/main.ts),
 *                    its first line rewritten to `#!HOST_BIN/twill-node`: the kernel starts it,
 *                    no shell and no `env` in between;
 *   CONF/NAME        the network configuration list (default 10-twill.conflist), from the
 *                    CNI_CONFLIST variable (the DaemonSet takes it from the twill-config
 *                    ConfigMap), a file, or the built-in default below.
 *
 * BIN and CONF are where the host's folders are mounted in this container (/host/opt/cni/bin);
 * HOST_BIN is where the host itself sees BIN (/opt/cni/bin), which the shebang must name.
 *
 * The configuration is checked before anything is written: JSON, a CNI version, a network name,
 * a `plugins` list with exactly one `twill` entry that the plugin itself accepts (its own
 * parser, spec.ts, with the list's name and version put in as a runtime does), and a `type` in
 * every entry. A bad one is one line per problem and exit 2, and the files already on the host
 * stay as they were. Each file is written beside its target under a temporary name and renamed
 * over it (rename(2) is atomic), so a runtime starting a pod meanwhile runs either the old
 * plugin or the new one, never half a file; a plugin already running keeps its old inode.
 * Chained plugins missing from BIN (portmap) are reported, not fatal: the runtime's CNI_PATH
 * may hold them elsewhere.
 */
import { chmod, copyFile, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CniError, parseConfig } from './spec.js';

/** The conflist deploy/cni/10-twill.conflist and the ConfigMap carry (a test keeps them equal). */
export const DEFAULT_CONFLIST = {
  cniVersion: '1.0.0',
  name: 'k8s-pod-network',
  plugins: [
    {
      type: 'twill',
      mtu: 1500,
      ipv4: true,
      ipv6: false,
      agentSocket: '/run/twill/cni.sock',
      timeoutSeconds: 30,
    },
    { type: 'portmap', snat: true, capabilities: { portMappings: true } },
  ],
};

export interface InstallOptions {
  /** Where to put the binaries, as this process sees the folder. */
  binDir: string;
  /** Where the host sees binDir (the shebang names it). */
  hostBinDir: string;
  confDir: string;
  confName: string;
  /** The conflist text. */
  conflist: string;
  /** The Node binary to install (process.execPath). */
  node: string;
  /** The bundled plugin (dist/cni/twill). */
  plugin: string;
}

export interface InstallReport {
  written: string[];
  /** Chained plugin types with no binary in binDir. */
  missing: string[];
}

export class InstallError extends Error {
  override name = 'InstallError';
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
  }
}

/** The problems of a conflist (empty when it is fine), and the plugin types it chains. */
export function checkConflist(text: string): { problems: string[]; types: string[] } {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    return { problems: [`not JSON: ${(e as Error).message}`], types: [] };
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o))
    return { problems: ['not a JSON object'], types: [] };
  const list = o as Record<string, unknown>;
  const problems: string[] = [];
  if (typeof list.cniVersion !== 'string') problems.push('cniVersion: expected a version string');
  if (typeof list.name !== 'string') problems.push('name: expected the network name');
  if (!Array.isArray(list.plugins) || list.plugins.length === 0) {
    problems.push('plugins: expected a list of plugin configurations (this is a .conflist)');
    return { problems, types: [] };
  }
  const types: string[] = [];
  let twill = 0;
  list.plugins.forEach((p: unknown, i: number) => {
    if (typeof p !== 'object' || p === null || typeof (p as { type?: unknown }).type !== 'string') {
      problems.push(`plugins[${i}]: expected an object with a "type"`);
      return;
    }
    const entry = p as Record<string, unknown>;
    types.push(entry.type as string);
    if (entry.type !== 'twill') return;
    twill++;
    try {
      // As a runtime hands it to the plugin: the list's name and version put in.
      parseConfig({ ...entry, cniVersion: list.cniVersion, name: list.name }, 'ADD');
    } catch (e) {
      problems.push(`plugins[${i}] (twill): ${e instanceof CniError ? e.message : String(e)}`);
    }
  });
  if (twill !== 1) problems.push(`plugins: expected exactly one "twill" entry, found ${twill}`);
  return { problems, types };
}

/** Write `data` (or copy `from`) to `path` through a temporary file in the same folder. */
async function replaceFile(
  path: string,
  mode: number,
  src: { data: string } | { from: string },
): Promise<void> {
  const tmp = `${path}.twill-tmp-${process.pid}`;
  try {
    if ('data' in src) await writeFile(tmp, src.data, { mode });
    else await copyFile(src.from, tmp);
    await chmod(tmp, mode);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new InstallError([`${path}: ${(e as Error).message}`]);
  }
}

async function isFolder(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

export async function installCni(opts: InstallOptions): Promise<InstallReport> {
  const problems: string[] = [];
  const { problems: bad, types } = checkConflist(opts.conflist);
  problems.push(...bad.map((p) => `conflist: ${p}`));
  // Linux reads at most 255 bytes of a "#!" line; a path with blanks would be split.
  const interpreter = join(opts.hostBinDir, 'twill-node');
  if (!opts.hostBinDir.startsWith('/') || /\s/.test(interpreter) || interpreter.length > 200)
    problems.push(
      `--host-bin-dir: ${JSON.stringify(opts.hostBinDir)} must be an absolute path without blanks`,
    );
  let plugin = '';
  try {
    plugin = await readFile(opts.plugin, 'utf8');
    if (!plugin.startsWith('#!')) problems.push(`${opts.plugin}: not the bundled plugin (no "#!" line)`);
  } catch (e) {
    problems.push(`${opts.plugin}: ${(e as Error).message} (npm run build makes it)`);
  }
  for (const [flag, dir] of [
    ['--bin-dir', opts.binDir],
    ['--conf-dir', opts.confDir],
  ] as const) {
    if (!(await isFolder(dir))) problems.push(`${flag}: ${dir} is not a folder (is the host path mounted?)`);
  }
  if (problems.length > 0) throw new InstallError(problems);

  const written: string[] = [];
  const nodeTarget = join(opts.binDir, 'twill-node');
  await replaceFile(nodeTarget, 0o755, { from: opts.node });
  written.push(nodeTarget);
  const pluginTarget = join(opts.binDir, 'twill');
  const body = plugin.slice(plugin.indexOf('\n') + 1);
  await replaceFile(pluginTarget, 0o755, { data: `#!${interpreter}\n${body}` });
  written.push(pluginTarget);
  const confTarget = join(opts.confDir, opts.confName);
  await replaceFile(confTarget, 0o644, {
    data: `${JSON.stringify(JSON.parse(opts.conflist), null, 2)}\n`,
  });
  written.push(confTarget);
  const missing: string[] = [];
  for (const t of new Set(types)) {
    if (t === 'twill') continue;
    try {
      await stat(join(opts.binDir, t));
    } catch {
      missing.push(t);
    }
  }
  return { written, missing };
}
