/**
 * src/core/checksum.ts against the plain RFC 1071 definition (16-bit big-endian words, an odd
 * last byte padded with zero, end-around carry), over both of sum16's wide paths: spans inside
 * a large buffer (aligned native words, at every alignment) and in small buffers (DataView).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { finish, fold, pseudoHeaderSum, sum16, verifies } from '../../src/core/checksum.ts';

/** RFC 1071 by its definition, folded as it goes. */
function reference(b: Uint8Array, start: number, end: number): number {
  let acc = 0;
  for (let i = start; i < end; i += 2) {
    acc += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
    acc = (acc & 0xffff) + (acc >>> 16);
  }
  return acc;
}

const LARGE = new Uint8Array(70_000); // past the 64 KiB at which sum16 reads native words
const SMALL = new Uint8Array(3_000);
for (const b of [LARGE, SMALL]) for (let i = 0; i < b.length; i++) b[i] = (i * 2654435761) >>> 13;

/** A span [start, end) of `buf`, seen through a subarray that starts at `shift`. */
const span = (buf: Uint8Array) => fc.record({
  shift: fc.integer({ min: 0, max: 7 }),
  start: fc.integer({ min: 0, max: 2_000 }),
  length: fc.integer({ min: 0, max: 700 }),
}).map(({ shift, start, length }) => ({ view: buf.subarray(shift), start, end: Math.min(start + length, buf.length - shift) }));

describe('the Internet checksum', () => {
  for (const [name, buf] of [['inside a large buffer (native words)', LARGE], ['in a small buffer (DataView)', SMALL]] as const) {
    it(`sums every span at every alignment as RFC 1071 does, ${name}`, () => {
      fc.assert(fc.property(span(buf), fc.integer({ min: 0, max: 0xffff }), ({ view, start, end }, carry) => {
        assert.equal(fold(sum16(view, start, end, carry)), fold(reference(view, start, end) + carry));
      }), { numRuns: 3000 });
    });
  }

  it('writes a field that verifies, and a flipped bit does not', () => {
    const packet = Uint8Array.from(LARGE.subarray(2, 1502));
    packet[10] = 0; packet[11] = 0;
    const field = finish(sum16(packet, 0, packet.length));
    packet[10] = field >> 8; packet[11] = field & 0xff;
    assert.ok(verifies(sum16(packet, 0, packet.length)));
    packet[700] = packet[700]! ^ 0x10;
    assert.ok(!verifies(sum16(packet, 0, packet.length)));
  });

  it('adds the pseudo-header: addresses, protocol and length (a jumbo length\'s high half too)', () => {
    const src = Uint8Array.of(10, 0, 0, 1), dst = Uint8Array.of(192, 0, 2, 7);
    assert.equal(pseudoHeaderSum(src, dst, 17, 28), 0x0a00 + 0x0001 + 0xc000 + 0x0207 + 17 + 28);
    const six = new Uint8Array(16); six[0] = 0xfe; six[15] = 1;
    assert.equal(fold(pseudoHeaderSum(six, six, 58, 0x12345)), fold(2 * (0xfe00 + 1) + 58 + 0x2345 + 0x1));
  });
});
