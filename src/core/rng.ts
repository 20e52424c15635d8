/**
 * Randomness is an I/O edge: injected so tests can be deterministic.
 * `systemRng` uses Web Crypto's getRandomValues, present in Node >= 20, browsers, Deno and Bun
 * without any import.
 */
export interface Rng {
  /** Fill `out` with random bytes. */
  fill(out: Uint8Array): void;
}

export const systemRng: Rng = {
  fill(out: Uint8Array): void {
    const n = out.length;
    if (n > POOL_SIZE / 4) { getRandomValues(out); return; }
    if (poolNext + n > POOL_SIZE) { getRandomValues(pool); poolNext = 0; }
    // Each byte is handed out once, then wiped: the pool holds only bytes nobody has seen.
    out.set(pool.subarray(poolNext, poolNext + n));
    pool.fill(0, poolNext, poolNext + n);
    poolNext += n;
  },
};

/**
 * Small draws (an ephemeral key, a sender index, an ISN) come from a pool refilled 512 bytes at
 * a time: one getRandomValues call costs ~4 µs in Node 20 whatever its size, and a responder's
 * handshake makes two such draws (bench:core).
 */
const POOL_SIZE = 512;
const pool = new Uint8Array(POOL_SIZE);
let poolNext = POOL_SIZE;

function getRandomValues(out: Uint8Array): void {
  // getRandomValues accepts at most 65536 bytes per call.
  for (let off = 0; off < out.length; off += 65536) {
    globalThis.crypto.getRandomValues(out.subarray(off, Math.min(out.length, off + 65536)) as Uint8Array<ArrayBuffer>);
  }
}

/**
 * A deterministic generator for tests and simulations (xoshiro128**). NOT for keys in production.
 */
export function seededRng(seed: number): Rng & { nextUint32(): number } {
  // splitmix32 to spread the seed over the state
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = next(), b = next(), c = next(), d = next();
  const nextUint32 = (): number => {
    const result = Math.imul(rotl(Math.imul(b, 5) >>> 0, 7), 9) >>> 0;
    const t = (b << 9) >>> 0;
    c ^= a; d ^= b; b ^= c; a ^= d; c ^= t;
    d = rotl(d, 11);
    return result;
  };
  return {
    nextUint32,
    fill(out: Uint8Array): void {
      for (let i = 0; i < out.length; i += 4) {
        let v = nextUint32();
        for (let j = i; j < Math.min(i + 4, out.length); j++) { out[j] = v & 0xff; v >>>= 8; }
      }
    },
  };
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** A uniformly random uint32 from `rng`. */
export function randomUint32(rng: Rng, scratch = new Uint8Array(4)): number {
  rng.fill(scratch);
  return (scratch[0]! | (scratch[1]! << 8) | (scratch[2]! << 16) | (scratch[3]! << 24)) >>> 0;
}
