/**
 * The stack-wide TCP memory budget, in the spirit of Linux's tcp_mem (low, pressure, high).
 * Connections hold reservations from it: receive bytes (delivered and unreleased, out of order,
 * and the window still promised to the peer) and send bytes (written, not yet acknowledged).
 * Every connection keeps a small floor in each direction, reserved when it is admitted, so it
 * can always make progress; the sum of reservations never exceeds `high`.
 *
 * - below `pressure`: buffers autotune up to their per-connection maxima;
 * - at `pressure` (until back under `low`): no growth, windows and send buffers clamp to the floor;
 * - at `high`: no reservation grows, and new connections are refused.
 */
import type { Counters } from '../counters.ts';

/** Bytes each direction of a connection may always use (Linux's tcp_rmem[0]/tcp_wmem[0] role). */
export const MEMORY_FLOOR = 16 * 1024;

export interface MemoryLimits {
  readonly low: number;
  readonly pressure: number;
  readonly high: number;
}

export class MemoryBudget {
  readonly limits: MemoryLimits;
  private used = 0;
  private pressured = false;
  private readonly counters: Counters;

  constructor(limits: MemoryLimits, counters: Counters) {
    this.limits = limits;
    this.counters = counters;
  }

  /** Bytes reserved by all connections. */
  get inUse(): number { return this.used; }

  /** Between crossing `pressure` and falling back under `low`. */
  get underPressure(): boolean { return this.pressured; }

  /** Reserves `n` bytes for a new connection's floors; false (counted) if that would cross `high`. */
  admit(n: number): boolean {
    if (this.used + n > this.limits.high) {
      this.counters.tcpMemoryRefused++;
      return false;
    }
    this.add(n);
    return true;
  }

  /** Up to `n` more bytes; returns how many were granted (never past `high`). */
  take(n: number): number {
    const g = Math.max(0, Math.min(n, this.limits.high - this.used));
    if (g > 0) this.add(g);
    return g;
  }

  give(n: number): void {
    if (!(n > 0)) return;
    this.used = Math.max(0, this.used - n);
    if (this.pressured && this.used < this.limits.low) this.pressured = false;
    this.counters.tcpMemoryInUse = this.used;
  }

  private add(n: number): void {
    this.used += n;
    if (!this.pressured && this.used >= this.limits.pressure) {
      this.pressured = true;
      this.counters.tcpMemoryPressureEvents++;
    }
    this.counters.tcpMemoryInUse = this.used;
    if (this.used > this.counters.tcpMemoryPeak) this.counters.tcpMemoryPeak = this.used;
  }
}
