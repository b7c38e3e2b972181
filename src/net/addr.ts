/**
 * Addresses and prefixes in the compact forms the hot paths use.
 *
 * - An IPv4 address is a uint32 number. An IPv4 prefix is one number, its *key*:
 *   `addr * 64 + len` (exact in a double: the largest key is below 2^38). Keys sort by address,
 *   then length, compare with `===`, and index a Map without allocating.
 * - An IPv6 address is 16 bytes; an IPv6 prefix is its canonical text (RFC 5952, lower case,
 *   longest zero run compressed) with `/len`, e.g. `2001:db8::/32`. Strings are Map keys too, and
 *   IPv6 tables are small next to IPv4 ones in a pod network.
 *
 * Parsing here is strict (no leading zeros in IPv4 octets, host bits must be zero in a prefix)
 * and throws `AddrError` with the offending text. `ip-num` is for user-facing validation and IPAM
 * arithmetic; these functions are for per-prefix work and must not allocate more than their
 * result. This module imports nothing from Node.
 */

export class AddrError extends Error {
  override name = 'AddrError';
}

/** A prefix key: IPv4 as `addr * 64 + len`, IPv6 as canonical `addr/len` text. */
export type PrefixKey = number | string;

export const enum Afi {
  Ipv4 = 1,
  Ipv6 = 2,
}

export function parseIpv4(text: string): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || dots === 3) throw new AddrError(`not an IPv4 address: ${JSON.stringify(text)}`);
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0)
        throw new AddrError(`not an IPv4 address (leading zero): ${JSON.stringify(text)}`);
      octet = octet * 10 + (c - 48);
      digits++;
      if (octet > 255) throw new AddrError(`not an IPv4 address (octet > 255): ${JSON.stringify(text)}`);
    } else {
      throw new AddrError(`not an IPv4 address: ${JSON.stringify(text)}`);
    }
  }
  if (dots !== 3 || digits === 0) throw new AddrError(`not an IPv4 address: ${JSON.stringify(text)}`);
  return value * 256 + octet;
}

export function formatIpv4(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`;
}

export function isIpv4(text: string): boolean {
  try {
    parseIpv4(text);
    return true;
  } catch {
    return false;
  }
}

/** Netmask of a prefix length as a uint32 (0 for /0). */
export function maskIpv4(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

export function prefix4Key(addr: number, len: number): number {
  return addr * 64 + len;
}

export function prefix4Addr(key: number): number {
  return Math.floor(key / 64);
}

/**
 * The length of an IPv4 key. Not `key % 64`: keys pass 2^31, and `%` on a double is a call to
 * fmod, ten times the cost of a floor; per-prefix loops split keys this way too.
 */
export function prefix4Len(key: number): number {
  return key - Math.floor(key / 64) * 64;
}

export function formatPrefix4(key: number): string {
  return `${formatIpv4(prefix4Addr(key))}/${prefix4Len(key)}`;
}

function splitPrefix(text: string, max: number): [string, number] {
  const slash = text.indexOf('/');
  if (slash < 0) throw new AddrError(`not a prefix (no /length): ${JSON.stringify(text)}`);
  const lenText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText))
    throw new AddrError(`not a prefix length: ${JSON.stringify(text)}`);
  const len = Number(lenText);
  if (len > max) throw new AddrError(`prefix length ${len} is over ${max}: ${JSON.stringify(text)}`);
  return [text.slice(0, slash), len];
}

/** Parse `a.b.c.d/len` into a key. Host bits must be zero unless `lenient`, which masks them. */
export function parsePrefix4(text: string, lenient = false): number {
  const [addrText, len] = splitPrefix(text, 32);
  const addr = parseIpv4(addrText);
  const masked = (addr & maskIpv4(len)) >>> 0;
  if (masked !== addr && !lenient) throw new AddrError(`prefix has host bits set: ${JSON.stringify(text)}`);
  return prefix4Key(masked, len);
}

/** Parse IPv6 text (RFC 4291 §2.2, including a trailing dotted IPv4 part) into 16 bytes. */
export function parseIpv6(text: string, out: Uint8Array = new Uint8Array(16)): Uint8Array {
  const bad = (): never => {
    throw new AddrError(`not an IPv6 address: ${JSON.stringify(text)}`);
  };
  if (text.length < 2 || text.length > 45) bad();
  const dbl = text.indexOf('::');
  if (dbl >= 0 && text.indexOf('::', dbl + 1) >= 0) bad();
  const parseSide = (side: string, allowV4Tail: boolean): number[] => {
    if (side === '') return [];
    const groups = side.split(':');
    const words: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (allowV4Tail && i === groups.length - 1 && g.includes('.')) {
        const v4 = parseIpv4(g);
        words.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) bad();
        words.push(Number.parseInt(g, 16));
      }
    }
    return words;
  };
  let words: number[];
  if (dbl >= 0) {
    const head = parseSide(text.slice(0, dbl), false);
    const tail = parseSide(text.slice(dbl + 2), true);
    if (head.length + tail.length > 7) bad();
    words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    words = parseSide(text, true);
    if (words.length !== 8) bad();
  }
  for (let i = 0; i < 8; i++) {
    out[i * 2] = words[i]! >>> 8;
    out[i * 2 + 1] = words[i]! & 255;
  }
  return out;
}

/** Format 16 bytes at `off` as canonical IPv6 text (RFC 5952 §4). */
export function formatIpv6(bytes: Uint8Array, off = 0): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((bytes[off + i * 2]! << 8) | bytes[off + i * 2 + 1]!);
  // The longest run of two or more zero words is compressed; the first such run wins a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  // IPv4-mapped addresses keep their dotted tail (RFC 5952 §5).
  if (bestStart === 0 && bestLen === 5 && words[5] === 0xffff) {
    return `::ffff:${bytes[off + 12]}.${bytes[off + 13]}.${bytes[off + 14]}.${bytes[off + 15]}`;
  }
  if (bestStart < 0) return words.map((w) => w.toString(16)).join(':');
  const head = words
    .slice(0, bestStart)
    .map((w) => w.toString(16))
    .join(':');
  const tail = words
    .slice(bestStart + bestLen)
    .map((w) => w.toString(16))
    .join(':');
  return `${head}::${tail}`;
}

export function isIpv6(text: string): boolean {
  try {
    parseIpv6(text);
    return true;
  } catch {
    return false;
  }
}

/** Parse `addr/len` IPv6 into its canonical text; host bits must be zero unless `lenient`. */
export function parsePrefix6(text: string, lenient = false): string {
  const [addrText, len] = splitPrefix(text, 128);
  const bytes = parseIpv6(addrText);
  let hostBits = false;
  for (let bit = len; bit < 128; bit++) {
    const byte = bit >> 3;
    const m = 0x80 >> (bit & 7);
    if (bytes[byte]! & m) {
      hostBits = true;
      bytes[byte]! &= ~m;
    }
  }
  if (hostBits && !lenient) throw new AddrError(`prefix has host bits set: ${JSON.stringify(text)}`);
  return `${formatIpv6(bytes)}/${len}`;
}

/** Parse either family's prefix text into its key. */
export function parsePrefix(text: string, lenient = false): PrefixKey {
  return text.includes(':') ? parsePrefix6(text, lenient) : parsePrefix4(text, lenient);
}

export function formatPrefix(key: PrefixKey): string {
  return typeof key === 'number' ? formatPrefix4(key) : key;
}

/** Split IPv6 prefix text (canonical or not) into 16 bytes and a length. */
export function prefix6Parts(key: string, out: Uint8Array = new Uint8Array(16)): number {
  const [addrText, len] = splitPrefix(key, 128);
  parseIpv6(addrText, out);
  return len;
}

export function prefixAfi(key: PrefixKey): Afi {
  return typeof key === 'number' ? Afi.Ipv4 : Afi.Ipv6;
}
