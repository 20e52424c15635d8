/** The mesh's `Timers` on a virtual clock for tests: `advance` runs what falls due, in order. */
import type { Timers } from '../../src/mesh/client/hub-client.ts';

export class VirtualTimers implements Timers {
  t = 0;
  private next = 1;
  private readonly queue = new Map<number, { at: number; fn: () => void }>();

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.queue.set(id, { at: this.t + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.queue.delete(handle as number);
  }

  /** Runs every timer due by t + ms (earliest first, then in arming order), then sets t to it. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let first: [number, { at: number; fn: () => void }] | null = null;
      for (const e of this.queue) if (e[1].at <= end && (!first || e[1].at < first[1].at || (e[1].at === first[1].at && e[0] < first[0]))) first = e;
      if (!first) break;
      this.queue.delete(first[0]);
      this.t = Math.max(this.t, first[1].at);
      first[1].fn();
    }
    this.t = end;
  }
}
