/**
 * rtnetlink messages as bytes: the route, link and neighbour messages the reconciler sends and
 * the dumps and notifications it reads. Pure (Buffers in, Buffers out); netlink-kernel.ts does
 * the socket work. The `netlink` package has typed encoders for these too; the reconciler's
 * hot paths (a 50k-route dump, a 50k-route batch) use these instead, which write one Buffer per
 * batch and decode a route without an object per attribute.
 *
 * Layouts (include/uapi/linux/netlink.h, rtnetlink.h, if_link.h, neighbour.h), little endian
 * host order as on every Linux target we run on, attributes 4-byte aligned:
 *
 *   nlmsghdr  len u32 | type u16 | flags u16 | seq u32 | pid u32              16 bytes
 *   rtmsg     family | dst_len | src_len | tos | table | protocol | scope | type | flags u32   12
 *   ifinfomsg family | pad | type u16 | index i32 | flags u32 | change u32                   16
 *   ndmsg     family | pad | pad u16 | ifindex i32 | state u16 | flags u8 | type u8        12
 *   rtattr    len u16 | type u16 | value, padded to 4
 *   rtnexthop len u16 | flags u8 | hops u8 | ifindex i32 | nested rtattrs (RTA_GATEWAY)     8+
 *   nlmsgerr  error i32 (negative errno, 0 = ACK) | the request's nlmsghdr (+ payload on error)
 *
 * What is read: RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_TABLE, RTA_MULTIPATH of
 * routes; IFLA_IFNAME and IFF_UP of links; NDA_DST, NDA_LLADDR, NDA_PROTOCOL of neighbours.
 * Anything else is skipped. RTA_VIA (a next hop of the other family) is not read: such a
 * route decodes with no gateway for that hop and so never matches one of ours.
 */
import {
  formatIpv4,
  formatIpv6,
  parseIpv4,
  parseIpv6,
  prefix4Addr,
  prefix4Key,
  prefix4Len,
  prefix6Parts,
} from '../net/addr.js';
import type { NeighbourEntry } from './kernel.js';
import type { Family, KernelRoute, LinkState, NextHop, RouteOp } from './route-model.js';

export const enum NlMsgType {
  Noop = 1,
  Error = 2,
  Done = 3,
  Overrun = 4,
  NewLink = 16,
  DelLink = 17,
  GetLink = 18,
  NewRoute = 24,
  DelRoute = 25,
  GetRoute = 26,
  NewNeigh = 28,
  DelNeigh = 29,
  GetNeigh = 30,
}

export const enum NlFlags {
  Request = 0x1,
  Multi = 0x2,
  Ack = 0x4,
  DumpIntr = 0x10,
  Dump = 0x300,
  Replace = 0x100,
  Excl = 0x200,
  Create = 0x400,
}

export const enum RtGroup {
  Link = 1,
  Neigh = 3,
  Ipv4Route = 7,
  Ipv6Route = 11,
}

const enum Rta {
  Dst = 1,
  Oif = 4,
  Gateway = 5,
  Priority = 6,
  Multipath = 9,
  Table = 15,
}

const AF_INET = 2;
const AF_INET6 = 10;
const AF_UNSPEC = 0;
const IFLA_IFNAME = 3;
const IFLA_IFALIAS = 20;
const IFF_UP = 0x1;
const NDA_DST = 1;
const NDA_LLADDR = 2;
const NDA_PROTOCOL = 12;
const RT_SCOPE_NOWHERE = 255;

export const NLMSG_HDRLEN = 16;

const align4 = (n: number) => (n + 3) & ~3;
const afOf = (f: Family) => (f === 4 ? AF_INET : AF_INET6);

// ---- encoding --------------------------------------------------------------------------

/** Size on the wire of one route message for `op`. */
export function routeMsgSize(op: RouteOp): number {
  const r = op.route;
  const alen = r.family === 4 ? 4 : 16;
  let n = NLMSG_HDRLEN + 12 + 8 /* table */ + 4 + alen /* dst */ + 8; /* priority */
  if (op.op === 'del') return n;
  if (r.nexthops.length === 1) {
    const nh = r.nexthops[0]!;
    if (nh.gateway !== undefined) n += 4 + alen;
    if (nh.oif !== 0) n += 8;
  } else if (r.nexthops.length > 1) {
    n += 4 + r.nexthops.length * (8 + 4 + alen);
  }
  return n;
}

function writeAttrHdr(buf: Buffer, off: number, len: number, type: number): number {
  buf.writeUInt16LE(len, off);
  buf.writeUInt16LE(type, off + 2);
  return off + 4;
}

function writeAddr(buf: Buffer, off: number, family: Family, text: string, scratch: Uint8Array): number {
  if (family === 4) {
    buf.writeUInt32BE(parseIpv4(text), off);
    return off + 4;
  }
  parseIpv6(text, scratch);
  buf.set(scratch, off);
  return off + 16;
}

const scratch16 = new Uint8Array(16);

/**
 * Write one RTM_NEWROUTE / RTM_DELROUTE at `off`; returns the offset after it.
 * `ack` asks the kernel to acknowledge this message even when it succeeds.
 */
export function encodeRouteOp(buf: Buffer, off: number, op: RouteOp, seq: number, ack: boolean): number {
  const r = op.route;
  const size = routeMsgSize(op);
  const start = off;
  let flags = NlFlags.Request | (ack ? NlFlags.Ack : 0);
  let type: number = NlMsgType.NewRoute;
  if (op.op === 'add') flags |= NlFlags.Create | NlFlags.Excl;
  else if (op.op === 'replace') flags |= NlFlags.Create | NlFlags.Replace;
  else type = NlMsgType.DelRoute;
  buf.writeUInt32LE(size, off);
  buf.writeUInt16LE(type, off + 4);
  buf.writeUInt16LE(flags, off + 6);
  buf.writeUInt32LE(seq >>> 0, off + 8);
  buf.writeUInt32LE(0, off + 12);
  off += NLMSG_HDRLEN;
  // rtmsg
  let dstLen: number;
  if (r.family === 4) dstLen = prefix4Len(r.key as number);
  else dstLen = prefix6Parts(r.key as string, scratch16);
  buf[off] = afOf(r.family);
  buf[off + 1] = dstLen;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  buf[off + 4] = r.table < 256 ? r.table : 0;
  buf[off + 5] = r.protocol;
  // A delete matches any scope and type; protocol, table, prefix and metric pick the route.
  buf[off + 6] = op.op === 'del' ? RT_SCOPE_NOWHERE : r.scope;
  buf[off + 7] = op.op === 'del' ? 0 : r.type;
  buf.writeUInt32LE(0, off + 8);
  off += 12;
  off = writeAttrHdr(buf, off, 8, Rta.Table);
  buf.writeUInt32LE(r.table, off);
  off += 4;
  const alen = r.family === 4 ? 4 : 16;
  off = writeAttrHdr(buf, off, 4 + alen, Rta.Dst);
  if (r.family === 4) {
    buf.writeUInt32BE(prefix4Addr(r.key as number), off);
    off += 4;
  } else {
    buf.set(scratch16, off);
    off += 16;
  }
  off = writeAttrHdr(buf, off, 8, Rta.Priority);
  buf.writeUInt32LE(r.metric, off);
  off += 4;
  if (op.op !== 'del') {
    if (r.nexthops.length === 1) {
      const nh = r.nexthops[0]!;
      if (nh.gateway !== undefined) {
        off = writeAttrHdr(buf, off, 4 + alen, Rta.Gateway);
        off = writeAddr(buf, off, r.family, nh.gateway, scratch16);
      }
      if (nh.oif !== 0) {
        off = writeAttrHdr(buf, off, 8, Rta.Oif);
        buf.writeInt32LE(nh.oif, off);
        off += 4;
      }
    } else if (r.nexthops.length > 1) {
      off = writeAttrHdr(buf, off, 4 + r.nexthops.length * (12 + alen), Rta.Multipath);
      for (const nh of r.nexthops) {
        buf.writeUInt16LE(12 + alen, off);
        buf[off + 2] = 0; // flags
        buf[off + 3] = 0; // hops (weight - 1)
        buf.writeInt32LE(nh.oif, off + 4);
        off += 8;
        off = writeAttrHdr(buf, off, 4 + alen, Rta.Gateway);
        off = writeAddr(buf, off, r.family, nh.gateway ?? (r.family === 4 ? '0.0.0.0' : '::'), scratch16);
      }
    }
  }
  if (off - start !== size) throw new Error(`route message size ${off - start}, expected ${size}`);
  return off;
}

/** A dump request (NLM_F_REQUEST | NLM_F_DUMP) for routes, links or neighbours. */
export function encodeDump(type: NlMsgType, family: number, seq: number): Buffer {
  // rtmsg and ndmsg are 12 bytes, ifinfomsg 16; the kernel reads only the family for a dump
  // without strict checking, but wants at least the header of the request's type.
  const body = type === NlMsgType.GetLink ? 16 : 12;
  const buf = Buffer.alloc(NLMSG_HDRLEN + body);
  buf.writeUInt32LE(buf.length, 0);
  buf.writeUInt16LE(type, 4);
  buf.writeUInt16LE(NlFlags.Request | NlFlags.Dump, 6);
  buf.writeUInt32LE(seq >>> 0, 8);
  buf[NLMSG_HDRLEN] = family;
  return buf;
}

export function familyCode(f: Family | undefined): number {
  return f === undefined ? AF_UNSPEC : afOf(f);
}

function parseMac(text: string): Buffer {
  const parts = text.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p)))
    throw new Error(`not a MAC address: ${JSON.stringify(text)}`);
  return Buffer.from(parts.map((p) => Number.parseInt(p, 16)));
}

/** RTM_NEWNEIGH (create or replace) or RTM_DELNEIGH, always acknowledged. */
export function encodeNeigh(
  n: Pick<NeighbourEntry, 'family' | 'ifindex' | 'address'> & Partial<NeighbourEntry>,
  seq: number,
  del: boolean,
): Buffer {
  const alen = n.family === 4 ? 4 : 16;
  const mac = !del && n.lladdr !== undefined ? parseMac(n.lladdr) : undefined;
  const size =
    NLMSG_HDRLEN + 12 + 4 + alen + (mac ? 4 + align4(6) : 0) + (!del && n.protocol !== undefined ? 8 : 0);
  const buf = Buffer.alloc(size);
  buf.writeUInt32LE(size, 0);
  buf.writeUInt16LE(del ? NlMsgType.DelNeigh : NlMsgType.NewNeigh, 4);
  buf.writeUInt16LE(NlFlags.Request | NlFlags.Ack | (del ? 0 : NlFlags.Create | NlFlags.Replace), 6);
  buf.writeUInt32LE(seq >>> 0, 8);
  let off = NLMSG_HDRLEN;
  buf[off] = afOf(n.family);
  buf.writeInt32LE(n.ifindex, off + 4);
  buf.writeUInt16LE(del ? 0 : (n.state ?? 0x80), off + 8);
  off += 12;
  off = writeAttrHdr(buf, off, 4 + alen, NDA_DST);
  off = writeAddr(buf, off, n.family, n.address, scratch16);
  if (mac) {
    off = writeAttrHdr(buf, off, 4 + 6, NDA_LLADDR);
    mac.copy(buf, off);
    off += 8;
  }
  if (!del && n.protocol !== undefined) {
    off = writeAttrHdr(buf, off, 5, NDA_PROTOCOL);
    buf[off] = n.protocol;
    off += 4;
  }
  return buf;
}

/**
 * RTM_NEWLINK on an existing link named `name` (no create: the kernel finds it by IFLA_IFNAME and
 * changes it, as `ip link set NAME up alias TEXT` does), acknowledged. `up` sets IFF_UP (false
 * clears it, absent leaves it); `alias` sets IFLA_IFALIAS.
 */
export function encodeSetLink(name: string, opts: { up?: boolean; alias?: string }, seq: number): Buffer {
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  const aliasBytes = opts.alias === undefined ? undefined : Buffer.from(opts.alias, 'utf8');
  if (nameBytes.length > 16) throw new Error(`not an interface name: ${JSON.stringify(name)}`);
  const size =
    NLMSG_HDRLEN + 16 + 4 + align4(nameBytes.length) + (aliasBytes ? 4 + align4(aliasBytes.length) : 0);
  const buf = Buffer.alloc(size);
  buf.writeUInt32LE(size, 0);
  buf.writeUInt16LE(NlMsgType.NewLink, 4);
  buf.writeUInt16LE(NlFlags.Request | NlFlags.Ack, 6);
  buf.writeUInt32LE(seq >>> 0, 8);
  let off = NLMSG_HDRLEN;
  buf[off] = AF_UNSPEC;
  if (opts.up !== undefined) {
    buf.writeUInt32LE(opts.up ? IFF_UP : 0, off + 8); // ifi_flags
    buf.writeUInt32LE(IFF_UP, off + 12); // ifi_change
  }
  off += 16;
  off = writeAttrHdr(buf, off, 4 + nameBytes.length, IFLA_IFNAME);
  nameBytes.copy(buf, off);
  off += align4(nameBytes.length);
  if (aliasBytes) {
    off = writeAttrHdr(buf, off, 4 + aliasBytes.length, IFLA_IFALIAS);
    aliasBytes.copy(buf, off);
    off += align4(aliasBytes.length);
  }
  return buf;
}

// ---- decoding --------------------------------------------------------------------------

/** Calls `fn(type, flags, seq, off, end)` for each message in a datagram (off = payload). */
export function forEachMessage(
  buf: Buffer,
  fn: (type: number, flags: number, seq: number, off: number, end: number) => void,
): void {
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    fn(
      buf.readUInt16LE(off + 4),
      buf.readUInt16LE(off + 6),
      buf.readUInt32LE(off + 8),
      off + NLMSG_HDRLEN,
      off + len,
    );
    off += align4(len);
  }
}

/** An NLMSG_ERROR payload: negative errno (0 = ACK) and the sequence number it answers. */
export function decodeError(buf: Buffer, off: number): { errno: number; seq: number } {
  return { errno: buf.readInt32LE(off), seq: buf.readUInt32LE(off + 4 + 8) };
}

function readGateway(buf: Buffer, off: number, family: Family): string {
  return family === 4 ? formatIpv4(buf.readUInt32BE(off)) : formatIpv6(buf, off);
}

/**
 * Decoded next-hop lists are shared: a 50k-route dump has a few hundred distinct single IPv4
 * next hops, so each (gateway, oif) pair is one list. Callers never mutate them.
 */
const NO_HOPS: NextHop[] = [];
const hopCache = new Map<number, NextHop[]>();

function hops4(gw4: number, oif: number): NextHop[] {
  if (gw4 < 0 && oif === 0) return NO_HOPS;
  if (oif < 0 || oif >= 65_536) return [{ gateway: gw4 < 0 ? undefined : formatIpv4(gw4), oif }];
  const id = (gw4 < 0 ? 2 ** 32 : gw4) * 65_536 + oif;
  let hops = hopCache.get(id);
  if (hops === undefined) {
    if (hopCache.size >= 4096) hopCache.clear();
    hops = [{ gateway: gw4 < 0 ? undefined : formatIpv4(gw4), oif }];
    hopCache.set(id, hops);
  }
  return hops;
}

/** One route message (payload from `off` to `end`), or undefined for a family we skip. */
export function decodeRoute(buf: Buffer, off: number, end: number): KernelRoute | undefined {
  const af = buf[off]!;
  if (af !== AF_INET && af !== AF_INET6) return undefined;
  const family: Family = af === AF_INET ? 4 : 6;
  const dstLen = buf[off + 1]!;
  let table = buf[off + 4]!;
  const protocol = buf[off + 5]!;
  const scope = buf[off + 6]!;
  const type = buf[off + 7]!;
  let dst4 = 0;
  let dst6: string | undefined;
  let metric = 0;
  let oif = 0;
  let gateway: string | undefined;
  let gw4 = -1;
  let nexthops: NextHop[] | undefined;
  let a = off + 12;
  while (a + 4 <= end) {
    const alen = buf.readUInt16LE(a);
    const atype = buf.readUInt16LE(a + 2) & 0x3fff;
    if (alen < 4 || a + alen > end) break;
    const v = a + 4;
    switch (atype) {
      case Rta.Dst:
        if (family === 4) dst4 = buf.readUInt32BE(v);
        else dst6 = formatIpv6(buf, v);
        break;
      case Rta.Oif:
        oif = buf.readInt32LE(v);
        break;
      case Rta.Gateway:
        if (family === 4) gw4 = buf.readUInt32BE(v);
        else gateway = readGateway(buf, v, family);
        break;
      case Rta.Priority:
        metric = buf.readUInt32LE(v);
        break;
      case Rta.Table:
        table = buf.readUInt32LE(v);
        break;
      case Rta.Multipath: {
        nexthops = [];
        let h = v;
        const hend = a + alen;
        while (h + 8 <= hend) {
          const hlen = buf.readUInt16LE(h);
          if (hlen < 8 || h + hlen > hend) break;
          const hop: NextHop = { gateway: undefined, oif: buf.readInt32LE(h + 4) };
          let n = h + 8;
          while (n + 4 <= h + hlen) {
            const nlen = buf.readUInt16LE(n);
            if (nlen < 4) break;
            if ((buf.readUInt16LE(n + 2) & 0x3fff) === Rta.Gateway)
              hop.gateway = readGateway(buf, n + 4, family);
            n += align4(nlen);
          }
          nexthops.push(hop);
          h += align4(hlen);
        }
        break;
      }
    }
    a += align4(alen);
  }
  // Blackhole, unreachable and prohibit routes have no next hop, whatever interface IPv6 shows.
  if (type !== 1 /* unicast */) nexthops = NO_HOPS;
  else if (nexthops === undefined) {
    if (family === 4) nexthops = hops4(gw4, oif);
    else nexthops = gateway !== undefined || oif !== 0 ? [{ gateway, oif }] : NO_HOPS;
  }
  const key = family === 4 ? prefix4Key(dst4, dstLen) : `${dst6 ?? '::'}/${dstLen}`;
  return { key, family, table, protocol, metric, type, scope, nexthops };
}

/** A link message: index, name and IFF_UP. */
export function decodeLink(buf: Buffer, off: number, end: number): LinkState {
  const index = buf.readInt32LE(off + 4);
  const flags = buf.readUInt32LE(off + 8);
  let name = '';
  let a = off + 16;
  while (a + 4 <= end) {
    const alen = buf.readUInt16LE(a);
    if (alen < 4 || a + alen > end) break;
    if ((buf.readUInt16LE(a + 2) & 0x3fff) === IFLA_IFNAME) {
      let e = a + alen;
      while (e > a + 4 && buf[e - 1] === 0) e--;
      name = buf.toString('utf8', a + 4, e);
    }
    a += align4(alen);
  }
  return { index, name, up: (flags & IFF_UP) !== 0 };
}

function formatMac(buf: Buffer, off: number, len: number): string {
  const parts: string[] = [];
  for (let i = 0; i < len; i++) parts.push(buf[off + i]!.toString(16).padStart(2, '0'));
  return parts.join(':');
}

export function decodeNeigh(buf: Buffer, off: number, end: number): NeighbourEntry | undefined {
  const af = buf[off]!;
  if (af !== AF_INET && af !== AF_INET6) return undefined;
  const family: Family = af === AF_INET ? 4 : 6;
  const entry: NeighbourEntry = {
    family,
    ifindex: buf.readInt32LE(off + 4),
    address: '',
    lladdr: undefined,
    state: buf.readUInt16LE(off + 8),
    protocol: undefined,
  };
  let a = off + 12;
  while (a + 4 <= end) {
    const alen = buf.readUInt16LE(a);
    if (alen < 4 || a + alen > end) break;
    const t = buf.readUInt16LE(a + 2) & 0x3fff;
    if (t === NDA_DST) entry.address = readGateway(buf, a + 4, family);
    else if (t === NDA_LLADDR) entry.lladdr = formatMac(buf, a + 4, alen - 4);
    else if (t === NDA_PROTOCOL) entry.protocol = buf[a + 4];
    a += align4(alen);
  }
  return entry;
}
