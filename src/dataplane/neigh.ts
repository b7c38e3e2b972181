/**
 * Permanent neighbour entries for local pods: on each pod's host-side veth, the pod's address
 * resolves to the pod's MAC without ARP or NDP (Calico does the same: the host never has to ask
 * a pod who it is, and a pod that ignores ARP stays reachable).
 *
 * - `setDesired(entries)` records intent (level-triggered, the whole set); `apply(kernel)` reads
 *   links and neighbours, writes with NLM_F_CREATE | NLM_F_REPLACE what is missing or differs
 *   (state NUD_PERMANENT, NDA_PROTOCOL = our route protocol number), and deletes permanent
 *   entries carrying our protocol that nobody wants. The tables are small (one entry per local
 *   pod), so every apply reads them whole.
 * - An entry whose interface does not exist yet waits (counted in `waiting`); the next apply
 *   after the veth appears writes it. Deleting a veth removes its entries in the kernel.
 * - Entries without our protocol (the kernel's own, an operator's) are never changed. Kernels
 *   before 5.2 do not keep NDA_PROTOCOL: there, entries we no longer want are left in place
 *   (they go with their veth).
 */

import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../net/addr.js';
import type { Kernel, NeighbourEntry } from './kernel.js';
import { NUD_PERMANENT } from './kernel.js';
import { RTPROT_TWILL } from './route-model.js';

export interface NeighbourSpec {
  /** The host-side veth. */
  dev: string;
  /** The pod's address (IPv4 or IPv6). */
  address: string;
  /** The pod's MAC. */
  lladdr: string;
}

export interface NeighbourStats {
  written: number;
  removed: number;
  waiting: number;
}

interface Want {
  dev: string;
  family: 4 | 6;
  address: string;
  lladdr: string;
}

export class PodNeighbours {
  private desired = new Map<string, Want>();
  readonly protocol: number;

  constructor(opts: { protocol?: number } = {}) {
    this.protocol = opts.protocol ?? RTPROT_TWILL;
  }

  setDesired(entries: Iterable<NeighbourSpec>): void {
    const next = new Map<string, Want>();
    for (const e of entries) {
      const v6 = e.address.includes(':');
      const address = v6 ? formatIpv6(parseIpv6(e.address)) : formatIpv4(parseIpv4(e.address));
      const lladdr = e.lladdr.toLowerCase();
      if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(lladdr))
        throw new Error(`neighbour ${e.address} on ${e.dev}: not a MAC address: ${JSON.stringify(e.lladdr)}`);
      next.set(`${e.dev}|${address}`, { dev: e.dev, family: v6 ? 6 : 4, address, lladdr });
    }
    this.desired = next;
  }

  async apply(k: Kernel): Promise<NeighbourStats> {
    const stats: NeighbourStats = { written: 0, removed: 0, waiting: 0 };
    const [links, neighs] = await Promise.all([k.listLinks(), k.listNeighbours()]);
    const byName = new Map(links.map((l) => [l.name, l.index]));
    const nameOf = new Map(links.map((l) => [l.index, l.name]));
    const have = new Map<string, NeighbourEntry>();
    for (const n of neighs) {
      const name = nameOf.get(n.ifindex);
      if (name !== undefined) have.set(`${name}|${n.address}`, n);
    }
    for (const [id, w] of this.desired) {
      const ifindex = byName.get(w.dev);
      if (ifindex === undefined) {
        stats.waiting++;
        continue;
      }
      const cur = have.get(id);
      if (cur !== undefined && cur.lladdr === w.lladdr && (cur.state & NUD_PERMANENT) !== 0) continue;
      await k.setNeighbour({
        family: w.family,
        ifindex,
        address: w.address,
        lladdr: w.lladdr,
        state: NUD_PERMANENT,
        protocol: this.protocol,
      });
      stats.written++;
    }
    for (const [id, n] of have) {
      if (this.desired.has(id) || n.protocol !== this.protocol || (n.state & NUD_PERMANENT) === 0) continue;
      await k.delNeighbour(n);
      stats.removed++;
    }
    return stats;
  }
}
