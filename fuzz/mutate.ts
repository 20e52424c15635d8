/**
 * Byte-level mutations of a seed input, as libFuzzer's default mutators do: bit flips,
 * interesting values, truncation, extension, insertion, deletion, duplication, splicing.
 * They keep no state, so a mutated input depends only on the seed bytes and the rng.
 */
import type { FuzzRng } from './rng.ts';

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff, 0x10, 0x20, 0x40, 4, 3];
const INTERESTING_32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe, 0x10000, 0xffff, 148, 92, 64, 32];

export function mutateOnce(rng: FuzzRng, input: Uint8Array, other: Uint8Array | null, maxLength: number): Uint8Array {
  const b = input;
  switch (rng.int(10)) {
    case 0: { // flip a bit
      if (b.length === 0) return rng.bytes(1);
      const out = b.slice();
      out[rng.int(out.length)]! ^= 1 << rng.int(8);
      return out;
    }
    case 1: { // an interesting byte
      if (b.length === 0) return Uint8Array.of(rng.pick(INTERESTING_8));
      const out = b.slice();
      out[rng.int(out.length)] = rng.pick(INTERESTING_8);
      return out;
    }
    case 2: { // an interesting 32-bit little-endian value
      if (b.length < 4) return b.slice();
      const out = b.slice();
      const at = rng.int(out.length - 3);
      new DataView(out.buffer).setUint32(at, rng.pick(INTERESTING_32), rng.chance(0.5));
      return out;
    }
    case 3: // truncate
      return b.slice(0, rng.int(b.length + 1));
    case 4: { // extend with random bytes
      const extra = rng.bytes(rng.range(1, 64));
      const out = new Uint8Array(Math.min(maxLength, b.length + extra.length));
      out.set(b.subarray(0, out.length));
      out.set(extra.subarray(0, out.length - Math.min(b.length, out.length)), Math.min(b.length, out.length));
      return out;
    }
    case 5: { // insert random bytes
      const at = rng.int(b.length + 1);
      const ins = rng.bytes(rng.range(1, 16));
      return concat(b.subarray(0, at), ins, b.subarray(at)).subarray(0, maxLength);
    }
    case 6: { // delete a range
      if (b.length === 0) return b.slice();
      const at = rng.int(b.length);
      const n = rng.range(1, Math.min(32, b.length - at));
      return concat(b.subarray(0, at), b.subarray(at + n));
    }
    case 7: { // duplicate a range
      if (b.length === 0) return b.slice();
      const at = rng.int(b.length);
      const n = rng.range(1, Math.min(64, b.length - at));
      return concat(b.subarray(0, at + n), b.subarray(at, at + n), b.subarray(at + n)).subarray(0, maxLength);
    }
    case 8: { // splice with another input
      if (!other || other.length === 0) return b.slice();
      const cut = rng.int(b.length + 1);
      const from = rng.int(other.length);
      return concat(b.subarray(0, cut), other.subarray(from)).subarray(0, maxLength);
    }
    default: { // overwrite a range with random bytes
      if (b.length === 0) return b.slice();
      const out = b.slice();
      const at = rng.int(out.length);
      out.set(rng.bytes(Math.min(out.length - at, rng.range(1, 8))), at);
      return out;
    }
  }
}

/** 1 to `max` stacked mutations of `input`. */
export function mutate(rng: FuzzRng, input: Uint8Array, corpus: readonly Uint8Array[], maxLength: number, max = 4): Uint8Array {
  let out = input;
  const n = rng.range(1, max);
  for (let i = 0; i < n; i++) out = mutateOnce(rng, out, corpus.length ? rng.pick(corpus) : null, maxLength);
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
