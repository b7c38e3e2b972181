/**
 * The prefixes this speaker originates, as a set replaced whole (level-triggered): each is a
 * path of the local peer in the RIB with ORIGIN IGP and an empty AS_PATH (RFC 4271 §5.1.1-2;
 * peers add our AS on export). `set` returns the RIB's deltas for the speaker to pass on.
 */
import type { PrefixKey } from '../net/addr.js';
import type { Delta, PeerRef, Rib } from './rib/rib.js';
import { Origin } from './wire/constants.js';

export class Origination {
  private current = new Set<PrefixKey>();

  constructor(
    private readonly rib: Rib,
    private readonly local: PeerRef,
  ) {}

  set(next: readonly PrefixKey[]): Delta[] {
    const want = new Set(next);
    const deltas: Delta[] = [];
    for (const k of this.current) {
      if (want.has(k)) continue;
      const d = this.rib.withdraw(k, this.local.id);
      if (d) deltas.push(d);
    }
    for (const k of want) {
      if (this.current.has(k)) continue;
      const ra = this.rib.attrs.intern({ origin: Origin.Igp, asPath: [] }, []);
      const d = this.rib.announce(k, this.local, 0, ra);
      if (d) deltas.push(d);
    }
    this.current = want;
    return deltas;
  }
}
