import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AddrError,
  formatIpv4,
  formatIpv6,
  formatPrefix4,
  parseIpv4,
  parseIpv6,
  parsePrefix4,
  parsePrefix6,
  prefix4Addr,
  prefix4Key,
  prefix4Len,
} from '../../src/net/addr.js';

describe('IPv4', () => {
  it('parses and formats', () => {
    expect(parseIpv4('10.1.2.3')).toBe(0x0a010203);
    expect(formatIpv4(0xffffffff)).toBe('255.255.255.255');
    expect(parsePrefix4('192.168.0.0/16')).toBe(prefix4Key(0xc0a80000, 16));
    expect(formatPrefix4(parsePrefix4('0.0.0.0/0'))).toBe('0.0.0.0/0');
  });
  it.each(['1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1..2.3', 'a.b.c.d', '', '1.2.3.4 '])(
    'rejects %j',
    (t) => {
      expect(() => parseIpv4(t)).toThrow(AddrError);
    },
  );
  it('rejects host bits and bad lengths, masks when lenient', () => {
    expect(() => parsePrefix4('10.0.0.1/24')).toThrow(/host bits/);
    expect(() => parsePrefix4('10.0.0.0/33')).toThrow(/over 32/);
    expect(() => parsePrefix4('10.0.0.0')).toThrow(/no \/length/);
    expect(formatPrefix4(parsePrefix4('10.0.0.1/24', true))).toBe('10.0.0.0/24');
  });
  it('round-trips any address', () => {
    fc.assert(fc.property(fc.nat(0xffffffff), (a) => parseIpv4(formatIpv4(a)) === a));
  });
  it('splits any key back into its address and length', () => {
    const edges = fc.constantFrom(0, 1, 0x7fffffff, 0x80000000, 0xffffffff);
    fc.assert(
      fc.property(fc.oneof(fc.nat(0xffffffff), edges), fc.nat(32), (a, len) => {
        const k = prefix4Key(a, len);
        expect([prefix4Addr(k), prefix4Len(k)]).toEqual([a, len]);
      }),
    );
  });
});

describe('IPv6', () => {
  it('formats canonically (RFC 5952)', () => {
    expect(formatIpv6(parseIpv6('2001:0DB8:0:0:0:0:0:1'))).toBe('2001:db8::1');
    expect(formatIpv6(parseIpv6('2001:db8:0:0:1:0:0:1'))).toBe('2001:db8::1:0:0:1');
    expect(formatIpv6(parseIpv6('2001:db8:0:1:1:1:1:1'))).toBe('2001:db8:0:1:1:1:1:1');
    expect(formatIpv6(parseIpv6('::'))).toBe('::');
    expect(formatIpv6(parseIpv6('::ffff:10.0.0.1'))).toBe('::ffff:10.0.0.1');
    expect(formatIpv6(parseIpv6('fe80::1'))).toBe('fe80::1');
  });
  it.each(['1::2::3', ':::', '12345::', 'g::1', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7'])('rejects %j', (t) => {
    expect(() => parseIpv6(t)).toThrow(AddrError);
  });
  it('prefixes', () => {
    expect(parsePrefix6('2001:DB8::/32')).toBe('2001:db8::/32');
    expect(() => parsePrefix6('2001:db8::1/64')).toThrow(/host bits/);
    expect(parsePrefix6('2001:db8::1/64', true)).toBe('2001:db8::/64');
  });
  it('round-trips any address', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
        expect(parseIpv6(formatIpv6(b))).toEqual(b);
      }),
    );
  });
});
