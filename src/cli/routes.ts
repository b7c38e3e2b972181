/**
 * `twill routes [--json] [--prefix P] [--api ADDR]`: the Loc-RIB of a running speaker (or agent)
 * with every candidate path and why the best one won, like `birdc show route all` but with the
 * reason. `--prefix P` shows P and every prefix inside it. The JSON form is what the local API
 * serves (`RouteView[]` in src/bgp/status.ts).
 */
import { getJson } from '../api/http.js';
import { ConfigError, DEFAULT_API_SOCKET, formatApiAddress, parseApiAddress } from '../bgp/config.js';
import type { RouteView } from '../bgp/status.js';
import { UsageError } from './usage.js';

const USAGE = 'usage: twill routes [--json] [--prefix P] [--api ADDR]';

/** The human form: one block per prefix, best path first, marked with '>'. */
export function formatRoutes(routes: readonly RouteView[]): string {
  if (routes.length === 0) return 'No routes.\n';
  const lines: string[] = [];
  for (const r of routes) {
    lines.push(`${r.prefix}  (${r.paths.length} path${r.paths.length === 1 ? '' : 's'}, ${r.reason})`);
    const paths = [...r.paths].sort((a, b) => Number(b.best) - Number(a.best));
    for (const p of paths) {
      const flags = `${p.best ? '>' : ' '}${p.stale ? 'S' : ' '}${p.reachable ? ' ' : '!'}`;
      const via = p.nextHops.length ? `via ${p.nextHops.join(', ')}` : 'originated';
      const from = p.from === 'local' ? 'local' : `from ${p.from}`;
      const attrs = [
        `path [${p.asPath}]`,
        p.origin,
        p.localPref !== undefined ? `localpref ${p.localPref}` : '',
        p.med !== undefined ? `med ${p.med}` : '',
        p.communities?.length ? `communities ${p.communities.join(' ')}` : '',
        p.largeCommunities?.length ? `large ${p.largeCommunities.join(' ')}` : '',
        p.originatorId ? `originator ${p.originatorId}` : '',
        p.clusterList?.length ? `cluster-list ${p.clusterList.join(' ')}` : '',
      ].filter(Boolean);
      lines.push(`  ${flags} ${via}  ${from}  ${attrs.join(', ')}`);
    }
  }
  lines.push('', 'Flags: > best, S stale (graceful restart), ! next hop unreachable');
  return `${lines.join('\n')}\n`;
}

export async function routesCommand(args: string[]): Promise<number> {
  let json = false;
  let prefix: string | undefined;
  let api = DEFAULT_API_SOCKET;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--json') json = true;
    else if (a === '--prefix' || a === '--api') {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value; ${USAGE}`);
      if (a === '--prefix') prefix = v;
      else api = v;
    } else throw new UsageError(`unknown option ${JSON.stringify(a)}; ${USAGE}`);
  }
  let address: ReturnType<typeof parseApiAddress>;
  try {
    address = parseApiAddress(api, '--api');
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  let routes: RouteView[];
  try {
    routes = (await getJson(
      address,
      `/routes${prefix ? `?prefix=${encodeURIComponent(prefix)}` : ''}`,
    )) as RouteView[];
  } catch (err) {
    process.stderr.write(
      `twill routes: no answer from Twill at ${formatApiAddress(address)}: ${(err as Error).message}\n`,
    );
    return 1;
  }
  process.stdout.write(json ? `${JSON.stringify(routes, null, 2)}\n` : formatRoutes(routes));
  return 0;
}
