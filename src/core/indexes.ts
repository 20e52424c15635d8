/**
 * Receiver indexes: random 32-bit values naming a pending handshake or a session, never two
 * live at once (whitepaper §5.4.1). Random so they reveal nothing about peer count or order.
 */
import { WireweaveError } from './errors.ts';
import { randomUint32 } from './rng.ts';
import type { Rng } from './rng.ts';

export class IndexTable<T> {
  private readonly entries = new Map<number, T>();
  private readonly rng: Rng;
  private readonly scratch = new Uint8Array(4);

  constructor(rng: Rng) {
    this.rng = rng;
  }

  /** A fresh index bound to `value`. 0 is never handed out so it can mean "none". */
  allocate(value: T): number {
    for (let tries = 0; ; tries++) {
      // Only a broken Rng (constant output) gets here: 2^32 indexes, bounded tables.
      if (tries > 1000) throw new WireweaveError('ERR_RNG_STUCK', 'rng stuck ' + this.entries.size);
      const index = randomUint32(this.rng, this.scratch);
      if (index !== 0 && !this.entries.has(index)) {
        this.entries.set(index, value);
        return index;
      }
    }
  }

  /** Rebind a live index (a handshake becoming a session keeps its index). */
  replace(index: number, value: T): void {
    if (this.entries.has(index)) this.entries.set(index, value);
  }

  get(index: number): T | undefined {
    return this.entries.get(index);
  }

  delete(index: number): void {
    if (index !== 0) this.entries.delete(index);
  }

  get size(): number {
    return this.entries.size;
  }
}
