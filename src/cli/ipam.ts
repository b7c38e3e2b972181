/**
 * `twill ipam [--json]` shows pools, blocks, per-node use, block affinities (the table lists those
 * not yet confirmed: a claim or release under way, or a crash's leftover; --json all of them) and
 * leaked addresses, read straight
 * from the datastore (as `calicoctl ipam show` does); `twill ipam check` lists inconsistencies
 * and exits 1 when there are any (as `calicoctl ipam check`). The figures and problems come
 * from src/ipam/report.ts.
 *
 *   twill ipam [show] [--json] [--datastore file:DIR|kubernetes] [--kubeconfig FILE]
 *   twill ipam [show] [--json] --api PATH
 *   twill ipam check [--json] [...]
 *
 * `--api` asks a running agent (its local API's `/ipam`, the same report from the objects it
 * watches) instead of reading the datastore. Without --api and --datastore, the local agent is
 * asked when its socket is there (the default /run/twill/twill.sock); otherwise the datastore
 * is TWILL_DATASTORE, else `kubernetes`. Exit codes: 0 fine, 1 problems
 * found (check) or the datastore could not be read, 2 a usage error.
 */
import { existsSync } from 'node:fs';
import { getJson } from '../api/http.js';
import { DEFAULT_API_SOCKET } from '../bgp/config.js';
import { DATASTORE_FORMS, openDatastore } from '../datastore/open.js';
import { type Datastore, isDatastoreError } from '../datastore/types.js';
import { type IpamReport, ipamReport } from '../ipam/report.js';
import { UsageError } from './usage.js';

const USAGE =
  'usage: twill ipam [show|check] [--json] [--datastore file:DIR|kubernetes] [--kubeconfig FILE] [--api PATH]';

export async function ipamCommand(args: string[]): Promise<number> {
  let sub: 'show' | 'check' = 'show';
  let json = false;
  let datastore: string | undefined;
  let kubeconfig: string | undefined;
  let api: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value; ${USAGE}`);
      return v;
    };
    if (a === 'show' || a === 'check') sub = a;
    else if (a === '--json') json = true;
    else if (a === '--datastore') datastore = value();
    else if (a === '--kubeconfig') kubeconfig = value();
    else if (a === '--api') api = value();
    else throw new UsageError(`unknown option ${JSON.stringify(a)}; ${USAGE}`);
  }
  if (api !== undefined && datastore !== undefined)
    throw new UsageError(`--api and --datastore exclude each other; ${USAGE}`);
  if (
    api === undefined &&
    datastore === undefined &&
    process.env.TWILL_DATASTORE === undefined &&
    existsSync(DEFAULT_API_SOCKET)
  )
    api = DEFAULT_API_SOCKET;
  const report =
    api !== undefined
      ? await fromAgent(api)
      : await fromDatastore(datastore ?? process.env.TWILL_DATASTORE ?? 'kubernetes', kubeconfig);
  if (report === undefined) return 1;
  return print(report, sub, json);
}

async function fromAgent(api: string): Promise<IpamReport | undefined> {
  if (!api.startsWith('/'))
    throw new UsageError(`--api: ${JSON.stringify(api)} is not an absolute unix socket path`);
  try {
    return (await getJson({ kind: 'unix', path: api }, '/ipam')) as IpamReport;
  } catch (e) {
    process.stderr.write(`twill ipam: no Twill agent answering at ${api}: ${(e as Error).message}\n`);
    return undefined;
  }
}

async function fromDatastore(
  datastore: string,
  kubeconfig: string | undefined,
): Promise<IpamReport | undefined> {
  let store: Datastore;
  try {
    store = await openDatastore(datastore, {
      mustExist: true,
      ...(kubeconfig === undefined ? {} : { kubeconfig }),
    });
  } catch (e) {
    if (isDatastoreError(e, 'Invalid')) throw new UsageError(`${e.message} (${DATASTORE_FORMS})`);
    if (!isDatastoreError(e)) throw e;
    process.stderr.write(`twill ipam: cannot open the datastore (${datastore}): ${e.message}\n`);
    return undefined;
  }
  let report: IpamReport;
  try {
    const [pools, blocks, affinities, handles, nodes, pods] = await Promise.all([
      store.list('IPPool'),
      store.list('IPAMBlock'),
      store.list('BlockAffinity'),
      store.list('IPAMHandle'),
      store.list('Node'),
      store.list('Pod'),
    ]);
    report = ipamReport({ pools, blocks, affinities, handles, nodes, pods });
  } catch (e) {
    if (!isDatastoreError(e)) throw e;
    process.stderr.write(`twill ipam: cannot read the datastore (${datastore}): ${e.message}\n`);
    return undefined;
  } finally {
    await store.close();
  }
  return report;
}

function print(report: IpamReport, sub: 'show' | 'check', json: boolean): number {
  if (sub === 'check') {
    if (json) process.stdout.write(`${JSON.stringify({ problems: report.problems }, null, 2)}\n`);
    else if (report.problems.length === 0) process.stdout.write('no problems found\n');
    else process.stdout.write(`${report.problems.map((p) => `${p.kind}: ${p.message}`).join('\n')}\n`);
    return report.problems.length === 0 ? 0 : 1;
  }
  process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : formatIpam(report));
  return 0;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

const pct = (used: number, of: number) =>
  of === 0 ? '0%' : `${((100 * used) / of).toFixed(used === 0 ? 0 : 1)}%`;

export function formatIpam(r: IpamReport): string {
  const out: string[] = [];
  out.push(
    r.pools.length === 0
      ? 'no IP pools\n'
      : table(
          ['POOL', 'CIDR', 'BLOCK', 'MODE', 'IN USE', 'CAPACITY', 'BLOCKS'],
          r.pools.map((p) => [
            p.name + (p.disabled ? ' (disabled)' : ''),
            p.cidr,
            `/${p.blockSize}`,
            p.mode,
            `${p.used} (${pct(p.used, p.capacity)})`,
            String(p.capacity),
            String(p.blocks),
          ]),
        ),
  );
  if (r.nodes.length)
    out.push(
      table(
        ['NODE', 'BLOCKS', 'ADDRESSES', 'BORROWED'],
        r.nodes.map((n) => [n.node, String(n.blocks), String(n.used), String(n.borrowed)]),
      ),
    );
  if (r.blocks.length)
    out.push(
      table(
        ['BLOCK', 'NODE', 'IN USE', 'BORROWED BY'],
        r.blocks.map((b) => [
          b.cidr,
          b.node ?? '(none)',
          `${b.used}/${b.size}`,
          b.borrowedBy.join(',') || '-',
        ]),
      ),
    );
  // Affinities that are not settled: a claim or a release under way, or left by a crash.
  const unsettled = r.affinities.filter((a) => a.state !== 'confirmed');
  if (unsettled.length)
    out.push(
      table(
        ['AFFINITY NODE', 'BLOCK', 'STATE'],
        unsettled.map((a) => [a.node, a.cidr, a.state]),
      ),
    );
  out.push(
    r.leaked.length === 0
      ? 'leaked addresses: none\n'
      : `leaked addresses (their pod is gone):\n${table(
          ['ADDRESS', 'POD', 'NODE', 'HANDLE'],
          r.leaked.map((l) => [l.address, `${l.namespace}/${l.pod}`, l.node, l.handle]),
        )}`,
  );
  if (r.problems.length) out.push(`${r.problems.length} problem(s): run twill ipam check\n`);
  return out.join('\n');
}
