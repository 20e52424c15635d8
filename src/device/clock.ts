/**
 * The clock edge: monotonic time for the protocol, wall time for handshake timestamps, and
 * timers. `systemClock` is the real one; `ManualClock` the twin tests drive by hand.
 */
import { performance } from 'node:perf_hooks';

export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Milliseconds since the Unix epoch at monotonic time `now`. */
  wall(now: number): number;
  /** Calls `callback` once after `delayMs` milliseconds; returns a handle for clearTimer. */
  setTimer(callback: () => void, delayMs: number): unknown;
  /** Cancels a timer that has not fired. */
  clearTimer(handle: unknown): void;
}

const epochAtZero = Date.now() - performance.now();

export const systemClock: Clock = {
  now: () => performance.now(),
  // Anchored once: later wall-clock steps cannot make our TAI64N timestamps go backwards.
  wall: (now) => epochAtZero + now,
  setTimer: (callback, delayMs) => {
    const t = setTimeout(callback, delayMs);
    t.unref?.();
    return t;
  },
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export class ManualClock implements Clock {
  private t = 0;
  private readonly epoch: number;
  private timers: { at: number; seq: number; callback: () => void }[] = [];
  private seq = 0;

  constructor(epoch = 1_700_000_000_000) {
    this.epoch = epoch;
  }

  now(): number { return this.t; }
  wall(now: number): number { return this.epoch + now; }

  /** Arms a timer that fires when `advance` passes its time. */
  setTimer(callback: () => void, delayMs: number): unknown {
    const timer = { at: this.t + Math.max(0, delayMs), seq: this.seq++, callback };
    this.timers.push(timer);
    return timer;
  }

  /** Cancels a timer that has not fired. */
  clearTimer(handle: unknown): void {
    this.timers = this.timers.filter((t) => t !== handle);
  }

  /** Advances time by `ms`, firing due timers in order (each sees its own due time). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await flushMicrotasks();
      const next = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.t = Math.max(this.t, next.at);
      next.callback();
    }
    this.t = end;
    await flushMicrotasks();
  }
}

async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}
