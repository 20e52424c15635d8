/**
 * The receive window we announce (RFC 9293 §3.8.6, RFC 7323 §2.3) and its autotuning.
 *
 * The window is the receive buffer not held by delivered-but-unreleased bytes — the application's
 * backpressure — opened only in steps of min(buffer/2, MSS) (receiver SWS avoidance,
 * §3.8.6.2.2). The buffer itself starts small and grows as the application reads, in the spirit
 * of Linux's tcp_rcv_space_adjust (dynamic right-sizing): once per receiver RTT, if the
 * application consumed more than in any RTT before, the buffer becomes twice that plus some
 * slack, so a reading application's window doubles each RTT while a reader that never reads
 * pins only its initial window. The caller (tcb.ts) clamps the result to the memory budget and
 * never moves the right edge left.
 */
import { seqDiff } from './seq.ts';

export interface ReceiveSide {
  /** The receive buffer now (autotuned, ≤ the configured maximum). */
  readonly rcvBufSize: number;
  readonly unreleased: number;
  readonly rcvNxt: number;
  /** Right edge announced so far. */
  readonly rcvAdv: number;
  readonly rcvMss: number;
}

/** The window (bytes from RCV.NXT) we would like to announce, before the budget; may be < current. */
export function desiredWindow(r: ReceiveSide): number {
  const free = Math.max(0, r.rcvBufSize - r.unreleased);
  const cur = Math.max(0, seqDiff(r.rcvAdv, r.rcvNxt));
  return free - cur >= Math.min(Math.floor(r.rcvBufSize / 2), r.rcvMss) ? free : cur;
}

/**
 * After the application released bytes: is a window update worth a segment of its own? Only
 * when the window at least doubles by a segment or more (as Linux does); smaller openings ride
 * on the next ACK.
 */
export function windowUpdateDue(r: ReceiveSide): boolean {
  const free = r.rcvBufSize - r.unreleased;
  const cur = Math.max(0, seqDiff(r.rcvAdv, r.rcvNxt));
  return free >= 2 * cur && free - cur >= r.rcvMss;
}

/** Per-connection state of the receive-buffer autotuning. */
export class ReceiveSpace {
  /** Most bytes the application consumed in one measurement period so far. */
  space: number;
  private copied = 0;
  private since = 0;
  /** Receiver-side RTT estimate (ms), 0 until measured. */
  rtt = 0;

  constructor(mss: number, initialBuffer: number) {
    // As Linux: start from ten segments, so a reader keeping up with the first window grows it.
    this.space = Math.min(10 * mss, Math.floor(initialBuffer / 2));
  }

  /** A receiver RTT sample (ms): kept close to the minimum, as stale echoes only overestimate. */
  sampleRtt(m: number): void {
    if (!(m >= 0) || m >= 3_600_000) return;
    if (this.rtt === 0 || m < this.rtt) this.rtt = m;
    else this.rtt += (m - this.rtt) / 8;
  }

  /**
   * The application consumed `n` bytes at `now`. Returns the buffer size wanted (> `current`)
   * when a measurement period shows it reads faster than the buffer allows, else 0.
   */
  consumed(n: number, now: number, current: number, max: number, mss: number): number {
    this.copied += n;
    // Measure over at least one RTT, and at least 1 ms (our clock's granularity).
    if (now - this.since < Math.max(1, this.rtt)) return 0;
    const copied = this.copied;
    this.copied = 0;
    this.since = now;
    if (copied <= this.space) return 0;
    this.space = copied;
    const want = Math.min(max, 2 * copied + 16 * mss);
    return want > current ? want : 0;
  }
}
