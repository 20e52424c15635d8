/**
 * Sliding-window replay protection for transport counters (RFC 6479 style): a ring of 32-bit
 * blocks, so advancing the window clears whole blocks instead of shifting bits.
 *
 * Counters are 64-bit and are handled as two 32-bit halves so no per-packet BigInt is needed.
 * Differences are computed as (hiΔ · 2^32 + loΔ), which is exact whenever it is small enough to
 * matter (below 2^53), and far above the window otherwise.
 *
 * `check` is done before decryption (cheap rejection of replays); `mark` after authentication.
 */
import { REJECT_AFTER_MESSAGES_HI, REJECT_AFTER_MESSAGES_LO } from './constants.ts';

const BLOCK_BITS = 32;
const BLOCK_SHIFT = 5;
const RING_BLOCKS = 256; // 8192 bits in the ring
const RING_MASK = RING_BLOCKS - 1;
/** Counters up to this far behind the greatest one seen are still accepted once. */
export const REPLAY_WINDOW_SIZE = (RING_BLOCKS - 1) * BLOCK_BITS; // 8160 ≥ wireguard-go's 8128

/** Whether a 64-bit counter is below REJECT_AFTER_MESSAGES (usable at all). */
export function counterUsable(lo: number, hi: number): boolean {
  // hi is a 32-bit half and REJECT_AFTER_MESSAGES_HI is 2^32 − 1: not below it means equal to it.
  return hi < REJECT_AFTER_MESSAGES_HI || lo < REJECT_AFTER_MESSAGES_LO;
}

export class ReplayWindow {
  /**
   * Made at the first counter accepted (until then every bit is zero): a typed array costs an
   * off-heap allocation, and under a handshake flood most sessions never see a packet.
   */
  private ring: Uint32Array | null = null;
  private lastLo = 0;
  private lastHi = 0;
  private readonly limitLo: number;
  private readonly limitHi: number;

  /** `limit` (as 32-bit halves) is the first counter never accepted: REJECT_AFTER_MESSAGES. */
  constructor(limitLo = REJECT_AFTER_MESSAGES_LO, limitHi = REJECT_AFTER_MESSAGES_HI) {
    this.limitLo = limitLo;
    this.limitHi = limitHi;
  }

  private belowLimit(lo: number, hi: number): boolean {
    return hi < this.limitHi || (hi === this.limitHi && lo < this.limitLo);
  }

  reset(): void {
    this.ring?.fill(0);
    this.lastLo = 0;
    this.lastHi = 0;
  }

  /** Would `counter` be accepted now? Does not change state. */
  check(lo: number, hi: number): boolean {
    if (!this.belowLimit(lo, hi)) return false;
    if (hi > this.lastHi || (hi === this.lastHi && lo > this.lastLo)) return true;
    const behind = (this.lastHi - hi) * 0x1_0000_0000 + (this.lastLo - lo);
    if (behind > REPLAY_WINDOW_SIZE) return false;
    if (this.ring === null) return true;
    const block = (lo >>> BLOCK_SHIFT) & RING_MASK;
    return (this.ring[block]! & (1 << (lo & (BLOCK_BITS - 1)))) === 0;
  }

  /** Accept and record `counter`; false (and no change) if it is a replay, too old or too large. */
  mark(lo: number, hi: number): boolean {
    if (!this.belowLimit(lo, hi)) return false;
    const ring = this.ring ??= new Uint32Array(RING_BLOCKS);
    if (
      hi > this.lastHi || (hi === this.lastHi &&
        // Stryker disable next-line EqualityOperator: the greatest counter again takes either branch to the same bit test
        lo > this.lastLo)
    ) {
      const lastBlock = (this.lastLo >>> BLOCK_SHIFT);
      const blockAdvance = (hi - this.lastHi) * 0x800_0000 + ((lo >>> BLOCK_SHIFT) - lastBlock);
      const clear = Math.min(blockAdvance, RING_BLOCKS);
      for (let i = 1; i <= clear; i++) ring[(lastBlock + i) & RING_MASK] = 0;
      this.lastLo = lo;
      this.lastHi = hi;
    } else {
      const behind = (this.lastHi - hi) * 0x1_0000_0000 + (this.lastLo - lo);
      if (behind > REPLAY_WINDOW_SIZE) return false;
    }
    const block = (lo >>> BLOCK_SHIFT) & RING_MASK;
    const bit = 1 << (lo & (BLOCK_BITS - 1));
    const word = ring[block]!;
    if ((word & bit) !== 0) return false;
    ring[block] = word | bit;
    return true;
  }
}
