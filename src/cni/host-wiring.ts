/**
 * The host side of a pod attachment, done by the agent over its netlink socket when the plugin
 * asks (`wire`, protocol.ts), after the plugin has made the veth from inside the pod (plugin.ts
 * direct path): the same end state as the plugin's own host script (wiring.ts), so CHECK, DEL
 * and the route reconciler see no difference:
 *   - the host veth administratively up, with the alias `twill:<containerID>` that marks it ours
 *     (refused when the interface carries someone else's alias);
 *   - per address a scope-link route to the pod on the veth and a permanent neighbour entry with
 *     the pod's MAC, both with protocol 84 (route-model.ts RTPROT_TWILL); the route reconciler
 *     wants the identical route under its `pods` owner once the block's change reaches it, and
 *     the agent tells it of the route as written (routes.ts `noteWritten`), so it adds nothing;
 *   - the veth's sysctls (sysctl.ts vethSysctls) under the agent's /proc/sys.
 * Loaded by the agent only, never by the plugin (it needs the netlink addon).
 */
import { readFileSync } from 'node:fs';
import type { Kernel } from '../dataplane/kernel.js';
import { NUD_PERMANENT } from '../dataplane/kernel.js';
import { type KernelRoute, parseDst, RT_TABLE_MAIN, RTPROT_TWILL } from '../dataplane/route-model.js';
import { vethSysctls, writeSysctlsSync } from '../dataplane/sysctl.js';
import { ALIAS_PREFIX } from './names.js';
import type { AttachmentEvent } from './server.js';

const RTN_UNICAST = 1;
const RT_SCOPE_LINK = 253;

export interface HostWiringOptions {
  kernel: Kernel;
  /** The /proc/sys the veth's sysctls are written under (the agent's --proc-sys-net parent). */
  sysctlRoot?: string;
  /** Where interfaces are looked up by name (default /sys/class/net). */
  sysClassNet?: string;
}

function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Wire the host side of `e`; returns the routes written; throws naming what failed. */
export async function wireHostSide(o: HostWiringOptions, e: AttachmentEvent): Promise<KernelRoute[]> {
  const sys = `${o.sysClassNet ?? '/sys/class/net'}/${e.hostIfname}`;
  const index = Number(readOr(`${sys}/ifindex`));
  if (!Number.isInteger(index) || index <= 0) throw new Error(`host interface ${e.hostIfname} is not there`);
  const alias = readOr(`${sys}/ifalias`) ?? '';
  const ours = `${ALIAS_PREFIX}${e.containerID}`;
  if (alias !== '' && alias !== ours)
    throw new Error(`host interface ${e.hostIfname} carries the alias ${JSON.stringify(alias)}, not ours`);
  // One request after the other on one socket, acknowledged in order: sent together.
  const link = o.kernel.setLink(e.hostIfname, { up: true, alias: ours });
  const written = e.addresses.map(
    (a): KernelRoute => ({
      key: parseDst(`${a.address}/${a.family === 4 ? 32 : 128}`),
      family: a.family,
      table: RT_TABLE_MAIN,
      protocol: RTPROT_TWILL,
      metric: 0,
      type: RTN_UNICAST,
      scope: RT_SCOPE_LINK,
      nexthops: [{ gateway: undefined, oif: index }],
    }),
  );
  const routes = o.kernel.writeRoutes(written.map((route) => ({ op: 'replace' as const, route })));
  const neighbours = e.addresses.map((a) =>
    o.kernel.setNeighbour({
      family: a.family,
      ifindex: index,
      address: a.address,
      lladdr: e.mac,
      state: NUD_PERMANENT,
      protocol: RTPROT_TWILL,
    }),
  );
  const all = Promise.all([link, routes, ...neighbours]);
  // A handful of small files: written at once, not through the thread pool.
  writeSysctlsSync(
    vethSysctls(e.hostIfname, {
      ipv4: e.addresses.some((a) => a.family === 4),
      ipv6: e.addresses.some((a) => a.family === 6),
    }),
    o.sysctlRoot,
  );
  const [, results] = await all;
  const failed = results.findIndex((r) => r !== undefined);
  if (failed >= 0)
    throw new Error(`route to ${e.addresses[failed]!.address} on ${e.hostIfname}: ${results[failed]}`);
  return written;
}
