/**
 * Randomness (src/core/rng.ts): the system generator fills any length, the seeded one is the
 * documented xoshiro128** (so a recorded simulation seed replays the same run), and
 * randomUint32 reads four bytes little-endian.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUint32, seededRng, systemRng } from '../../src/core/rng.ts';
import type { Rng } from '../../src/core/rng.ts';

/** Reference in BigInt arithmetic, written from the published algorithms: splitmix32 seeding, xoshiro128**. */
function reference(seed: number, n: number): number[] {
  const M = (1n << 32n) - 1n;
  const rotl = (x: bigint, k: number) => ((x << BigInt(k)) | (x >> BigInt(32 - k))) & M;
  let s = BigInt(seed >>> 0);
  const next = () => {
    s = (s + 0x9e3779b9n) & M;
    let z = s;
    z = ((z ^ (z >> 16n)) * 0x85ebca6bn) & M;
    z = ((z ^ (z >> 13n)) * 0xc2b2ae35n) & M;
    return (z ^ (z >> 16n)) & M;
  };
  const st = [next(), next(), next(), next()];
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(Number((rotl((st[1]! * 5n) & M, 7) * 9n) & M));
    const t = (st[1]! << 9n) & M;
    st[2]! ^= st[0]!; st[3]! ^= st[1]!; st[1]! ^= st[2]!; st[0]! ^= st[3]!; st[2]! ^= t; st[3] = rotl(st[3]!, 11);
  }
  return out;
}

describe('systemRng', () => {
  it('fills buffers beyond the 65536-byte getRandomValues limit, to the last byte', () => {
    const out = new Uint8Array(65536 * 2 + 100);
    systemRng.fill(out);
    // Each chunk (and the short tail) got random bytes: all-zero 100 bytes has probability 2^-800.
    for (const [from, to] of [[0, 65536], [65536, 131072], [131072, out.length]] as const) {
      assert.ok(out.subarray(from, to).some((v) => v !== 0), `bytes ${from}..${to}`);
    }
    const small = new Uint8Array(16);
    systemRng.fill(small);
    assert.ok(small.some((v) => v !== 0));
    systemRng.fill(new Uint8Array(0));
  });

  it('never hands out the same bytes twice across pool refills, small draws and large ones', () => {
    // 32-byte draws (ephemeral keys) and 4-byte ones (indexes) through several refills of the
    // pool, with large draws (which bypass it) in between: no 8 bytes of one key appear in any
    // other (a chance repeat has probability ~1e-10), and none is all zero (a wiped pool byte
    // handed out again would show as zeros).
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const key = new Uint8Array(32);
      systemRng.fill(key);
      assert.ok(key.some((v) => v !== 0), `draw ${i} is all zero`);
      const windows = new Set<string>();
      for (let at = 0; at + 8 <= 32; at++) windows.add(Buffer.from(key.subarray(at, at + 8)).toString('hex'));
      for (const w of windows) assert.ok(!seen.has(w), `draw ${i} shares bytes with an earlier one`);
      for (const w of windows) seen.add(w);
      systemRng.fill(new Uint8Array(4));
      if (i % 100 === 0) systemRng.fill(new Uint8Array(1000));
    }
  });
});

describe('seededRng', () => {
  it('is splitmix32-seeded xoshiro128**: equal to an independent reference', () => {
    for (const seed of [0, 1, 2, 0xdeadbeef, 0xffffffff, -1]) {
      const r = seededRng(seed);
      const got = Array.from({ length: 200 }, () => r.nextUint32());
      assert.deepEqual(got, reference(seed, 200), `seed ${seed}`);
    }
  });

  it('fill gives the same stream little-endian, four bytes per draw, a partial draw at the end', () => {
    const words = reference(7, 3);
    const bytes = new Uint8Array(11);
    seededRng(7).fill(bytes);
    const expected = words.flatMap((w) => [w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, w >>> 24]).slice(0, 11);
    assert.deepEqual([...bytes], expected);
    // A later fill continues after the partial draw: the unused byte of draw 3 is skipped.
    const r = seededRng(7);
    r.fill(new Uint8Array(11));
    assert.equal(r.nextUint32(), reference(7, 4)[3]);
  });
});

describe('randomUint32', () => {
  it('reads four bytes little-endian as an unsigned 32-bit number', () => {
    const fixed = (bytes: number[]): Rng => ({ fill: (out) => out.set(bytes) });
    assert.equal(randomUint32(fixed([1, 2, 3, 4])), 0x04030201);
    assert.equal(randomUint32(fixed([0xff, 0xff, 0xff, 0xff])), 0xffffffff);
    assert.equal(randomUint32(fixed([0, 0, 0, 0x80])), 0x80000000);
    assert.equal(randomUint32(fixed([0x80, 0, 0, 0])), 0x80);
    const scratch = new Uint8Array(4);
    assert.equal(randomUint32(fixed([9, 0, 0, 0]), scratch), 9);
    assert.deepEqual([...scratch], [9, 0, 0, 0], 'uses the scratch buffer it is given');
  });
});
