/**
 * The fuzzer's randomness: one seeded generator (xoshiro128** from the core's seededRng), so a
 * run is repeated exactly by its seed. Never used for keys.
 */
import { seededRng } from '../src/core/rng.ts';

export class FuzzRng {
  private readonly next: () => number;

  constructor(seed: number) {
    const r = seededRng(seed);
    this.next = r.nextUint32;
  }

  u32(): number {
    return this.next();
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.next() / 0x1_0000_0000) * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      let v = this.next();
      for (let j = i; j < Math.min(i + 4, n); j++) { out[j] = v & 0xff; v >>>= 8; }
    }
    return out;
  }

  /** Lengths skewed towards small ones and the edges that parsers get wrong. */
  length(max: number): number {
    switch (this.int(4)) {
      case 0: return this.int(Math.min(max, 16) + 1);
      case 1: return this.int(max + 1);
      case 2: return Math.max(0, max - this.int(4));
      default: return this.int(Math.min(max, 256) + 1);
    }
  }
}
