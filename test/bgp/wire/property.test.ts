/**
 * Property tests of the codec (STYLE.md §12): every message type round-trips through encode and
 * decode; byte fuzzing, random and mutation-based, lets nothing but BgpError escape and never
 * hangs.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BgpError,
  type CodecContext,
  decodeAll,
  decodeMessage,
  encodeMessage,
  Framer,
  type Message,
  makeContext,
  MsgType,
} from '../../../src/bgp/wire/index.js';
import { anyMessage, as4OverAs2Attributes, contexts, open, prefix4, update } from './arbitraries.js';
import { frame } from './hex.js';

function strip(m: Message): Record<string, unknown> {
  const { errors, action, attrBytes, endOfRib, shutdownMessage, ...rest } = m as Message &
    Record<string, unknown>;
  return rest;
}

const runs = Number(process.env.FC_RUNS ?? 300);

describe('round trip', () => {
  it('OPEN', () => {
    fc.assert(
      fc.property(open, (o) => {
        const [m] = decodeAll(encodeMessage({ type: MsgType.Open, ...o }, makeContext()), makeContext());
        expect(strip(m!)).toEqual({ type: MsgType.Open, ...o });
      }),
      { numRuns: runs },
    );
  });

  it('UPDATE under any context (4-octet AS, ADD-PATH per family)', () => {
    fc.assert(
      fc.property(
        contexts.chain((ctx) => update(ctx).map((u) => ({ ctx, u }))),
        ({ ctx, u }) => {
          const [m] = decodeAll(encodeMessage({ type: MsgType.Update, ...u }, ctx), ctx);
          expect(m!.type).toBe(MsgType.Update);
          expect((m as { errors: unknown[] }).errors).toEqual([]);
          expect(strip(m!)).toEqual({ type: MsgType.Update, ...u });
        },
      ),
      { numRuns: runs },
    );
  });

  it('4-octet AS numbers survive a 2-octet session through AS4_PATH and AS4_AGGREGATOR (RFC 6793)', () => {
    const ctx = makeContext({ as4: false });
    fc.assert(
      fc.property(
        as4OverAs2Attributes(),
        fc.array(prefix4, { minLength: 1, maxLength: 5 }),
        (attrs, nlri) => {
          const u = { type: MsgType.Update as const, withdrawn: [], attrs, nlri };
          const [m] = decodeAll(encodeMessage(u, ctx), ctx);
          expect(strip(m!)).toEqual(u);
        },
      ),
      { numRuns: runs },
    );
  });

  it('every message type, through a framer fed in random pieces', () => {
    fc.assert(
      fc.property(
        fc.array(anyMessage, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (items, cuts) => {
          // One context for the stream: the first item's.
          const ctx = items[0]!.ctx;
          const msgs = items
            .map((i) => i.msg)
            .filter((m) => m.type !== MsgType.Update || items[0]!.ctx === ctx);
          const wire = Buffer.concat(msgs.map((m) => encodeMessage(m, ctx)));
          const framer = new Framer();
          framer.setMaxLength(ctx.maxLength);
          const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
          const out: Message[] = [];
          let last = 0;
          for (const p of [...points, wire.length]) {
            framer.push(wire.subarray(last, p));
            last = p;
            for (let f = framer.next(); f; f = framer.next()) out.push(decodeMessage(f, ctx));
          }
          expect(out.map(strip)).toEqual(msgs.map((m) => strip(decodeAll(encodeMessage(m, ctx), ctx)[0]!)));
        },
      ),
      { numRuns: 100 },
    );
  });
});

function onlyBgpError(run: () => void): void {
  try {
    run();
  } catch (err) {
    if (!(err instanceof BgpError)) throw err;
    expect(err.code).toBeGreaterThanOrEqual(1);
    expect(err.code).toBeLessThanOrEqual(7);
  }
}

function decodeStream(bytes: Buffer, ctx: CodecContext): void {
  const framer = new Framer();
  framer.setMaxLength(ctx.maxLength);
  framer.push(bytes);
  for (let f = framer.next(); f; f = framer.next()) decodeMessage(f, ctx);
}

describe('byte fuzzing: nothing but BgpError escapes', () => {
  it('random bodies behind a valid header, for every message type', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.uint8Array({ maxLength: 600 }),
        contexts,
        (type, body, ctx) => {
          onlyBgpError(() => decodeStream(frame(type, Buffer.from(body)), ctx));
        },
      ),
      { numRuns: runs * 3 },
    );
  });

  it('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), contexts, (bytes, ctx) => {
        onlyBgpError(() => decodeStream(Buffer.from(bytes), ctx));
      }),
      { numRuns: runs },
    );
  });

  it('valid messages with bytes flipped, inserted or cut (lengths left or fixed)', () => {
    const mutation = fc.record({
      at: fc.nat(),
      kind: fc.constantFrom('flip', 'set', 'insert', 'delete'),
      value: fc.nat(255),
      fixLength: fc.boolean(),
    });
    fc.assert(
      fc.property(anyMessage, fc.array(mutation, { minLength: 1, maxLength: 4 }), ({ ctx, msg }, muts) => {
        let b = Buffer.from(encodeMessage(msg, ctx));
        for (const m of muts) {
          // Keep the marker intact most of the time so the body is what gets exercised.
          const at = 16 + (m.at % Math.max(1, b.length - 16));
          if (m.kind === 'flip') b[at] = b[at]! ^ (1 << (m.value & 7));
          else if (m.kind === 'set') b[at] = m.value;
          else if (m.kind === 'insert')
            b = Buffer.concat([b.subarray(0, at), Buffer.from([m.value]), b.subarray(at)]);
          else if (b.length > 19) b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
          if (m.fixLength && b.length >= 19) b.writeUInt16BE(Math.min(b.length, 0xffff), 16);
        }
        onlyBgpError(() => decodeStream(b, ctx));
      }),
      { numRuns: runs * 3 },
    );
  });
});
