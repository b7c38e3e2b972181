/**
 * The vocabulary the RIB and the Adj-RIB-Outs share, kept apart so that neither imports the
 * other: slots naming prefixes (`SlotSpace`, which the Rib implements and the Adj-RIB-Outs name
 * prefixes by), the receiving end of `Rib.feed` (`SlotSink`, which AdjRibOut implements), and the
 * family of a prefix key (IPv4 keys are numbers, IPv6 keys text: net/addr.ts).
 *
 * Interfaces and one function; no state.
 */
import type { PrefixKey } from '../../net/addr.js';
import { type Family, IPV4_UNICAST, IPV6_UNICAST } from '../wire/constants.js';
import type { RouteAttrs } from './attrs.js';

/** Slots naming prefixes, shared by the tables that use them (the Rib is one). */
export interface SlotSpace {
  /** The prefix's slot, or -1. */
  slotOf(prefix: PrefixKey): number;
  /** The prefix's slot, made if it has none; the caller pins it at once. */
  claim(prefix: PrefixKey): number;
  prefixAt(slot: number): PrefixKey | undefined;
  /** While pinned, a slot keeps its prefix. */
  pin(slot: number): void;
  unpin(slot: number): void;
  /** One past the highest slot in use. */
  readonly slotCount: number;
  /** The IPv4 key of each slot, as PrefixIndex.keys4 has them. */
  readonly keys4: Float64Array;
}

/** What a peer should hold for a slot (null: nothing), as `Rib.feed` hands it on. */
export interface SlotSink {
  /** The caller passes its reference to `ra`. */
  setSlot(slot: number, ra: RouteAttrs | null): void;
}

export const familyOfPrefix = (k: PrefixKey): Family => (typeof k === 'number' ? IPV4_UNICAST : IPV6_UNICAST);
