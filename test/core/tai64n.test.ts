/** TAI64N timestamps of handshake initiations (src/core/tai64n.ts): external format and order. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tai64n } from '../../src/core/tai64n.ts';
import { compareBytes } from '../../src/core/bytes.ts';
import { encodeHex } from '../../src/core/keys.ts';

describe('tai64n', () => {
  it('encodes the Unix epoch as 2^62 + 10 seconds and no nanoseconds', () => {
    assert.equal(encodeHex(tai64n(0)), '400000000000000a' + '00000000');
  });

  it('encodes seconds big-endian and rounds nanoseconds down to 2^24 ns', () => {
    // 1_700_000_010 s = 0x6553f10a; 123.456 ms = 123_456_000 ns, 7 whole 2^24-ns steps.
    assert.equal(encodeHex(tai64n(1_700_000_000_123.456)), '400000006553f10a' + '07000000');
    // 999.9 ms = 999_900_000 ns: 59 steps (0x3b), never a carry into the seconds.
    assert.equal(encodeHex(tai64n(999.9)), '400000000000000a' + '3b000000');
  });

  it('carries seconds beyond 32 bits into the high word (after 2106)', () => {
    assert.equal(encodeHex(tai64n(2 ** 32 * 1000)), '400000010000000a' + '00000000');
  });

  it('writes into the buffer it is given', () => {
    const out = new Uint8Array(12).fill(0xee);
    assert.equal(tai64n(0, out), out);
    assert.equal(encodeHex(out), '400000000000000a00000000');
  });

  it('is monotonic: a later time is never a smaller timestamp, 17 ms apart always larger', () => {
    let prev = tai64n(1_700_000_000_000);
    for (let ms = 1_700_000_000_000 + 17; ms < 1_700_000_003_000; ms += 17) {
      const t = tai64n(ms);
      assert.ok(compareBytes(t, prev) > 0, `${ms}`);
      prev = t;
    }
    // Within one 2^24-ns step the timestamp does not change (what the 20 ms flood rule is for).
    assert.equal(compareBytes(tai64n(1_700_000_000_000), tai64n(1_700_000_000_016)), 0);
  });
});
