/**
 * The netstack as the device's TUN: instead of an OS interface, a userspace TCP/IP stack sits on
 * the inner side of the tunnel.
 *
 * - `write` (the device delivers a decrypted packet "to the OS") feeds `stack.input`.
 * - `StackIO.output` (the stack sends a packet) goes to the device's `onPacket`, as if the OS
 *   had routed it into the tunnel.
 * - This class owns the clock and the one timer for the stack's `nextDeadline()`/`tick`.
 *
 * Re-entrancy: the device calls `write` from inside the core's `recv` (its `deliver` callback),
 * with a view into a buffer that is reused afterwards. Feeding the stack there would make the
 * stack's replies (ACKs) re-enter the core's send path in the middle of its receive path, and
 * application callbacks (a Duplex pushing data, a user writing back) would run deep inside the
 * device. So `write` copies the packet into a bounded queue (reused buffers: packet-queue.ts)
 * and the stack sees it in a microtask, after the device's call has returned. Output needs no
 * queue: the device's `onPacket` only encrypts and hands the datagram to the bind, and never
 * calls back into us.
 */
import { PacketQueue } from './packet-queue.ts';
import type { Clock } from '../device/clock.ts';
import { systemClock } from '../device/clock.ts';
import { WireweaveError } from '../core/errors.ts';
import type { Tun } from '../device/tun.ts';
import type { TcpIpStackApi, StackIO } from './stack/types.ts';

export interface NetstackTunOptions {
  /** Builds the stack around the output callback this TUN gives it. */
  createStack: (io: StackIO) => TcpIpStackApi;
  /** Default "netstack0". */
  name?: string;
  /** Default 1420. */
  mtu?: number;
  clock?: Clock;
  /** Packets from the tunnel waiting for the stack before new ones are dropped (default 4096). */
  queueLimit?: number;
}

export interface NetstackTunCounters {
  /** Packets from the tunnel given to the stack. */
  input: number;
  /** Packets the stack sent into the tunnel. */
  output: number;
  /** Tunnel packets dropped because the queue to the stack was full. */
  inputDropped: number;
  /** Stack packets dropped because the device had not started reading yet, or we are closed. */
  outputDropped: number;
  /** Packets the stack threw on (a bug in the stack; the packet is dropped). */
  stackErrors: number;
}

export class NetstackTun implements Tun {
  readonly name: string;
  readonly mtu: number;
  readonly stack: TcpIpStackApi;
  readonly clock: Clock;
  readonly counters: NetstackTunCounters = { input: 0, output: 0, inputDropped: 0, outputDropped: 0, stackErrors: 0 };

  private onPacket: ((packet: Uint8Array) => void) | undefined;
  private readonly queue: PacketQueue;
  private draining = false;
  private closed = false;
  private timer: unknown = null;
  private timerAt = Infinity;
  private rearmQueued = false;

  constructor(options: NetstackTunOptions) {
    this.name = options.name ?? 'netstack0';
    this.mtu = options.mtu ?? 1420;
    this.clock = options.clock ?? systemClock;
    this.queue = new PacketQueue(options.queueLimit ?? 4096);
    this.stack = options.createStack({ output: (p) => this.onOutput(p) });
  }

  /** Monotonic milliseconds, the `now` every stack call gets. */
  now(): number {
    return this.clock.now();
  }

  start(onPacket: (packet: Uint8Array) => void): void {
    if (this.onPacket) throw new WireweaveError('ERR_STARTED', `${this.name}: already started`);
    if (this.closed) throw new WireweaveError('ERR_CLOSED', `${this.name}: closed`);
    this.onPacket = onPacket;
    this.poke();
  }

  write(packet: Uint8Array): boolean {
    if (this.closed) return false;
    if (!this.queue.push(packet)) {
      this.counters.inputDropped++;
      return false;
    }
    if (!this.draining) {
      this.draining = true;
      queueMicrotask(() => this.drain());
    }
    return true;
  }

  /**
   * Call after anything that may have moved the stack's next deadline (a write, a connect, a
   * close): the timer is re-armed once, after the current burst of calls.
   */
  poke(): void {
    if (this.rearmQueued || this.closed) return;
    this.rearmQueued = true;
    queueMicrotask(() => {
      this.rearmQueued = false;
      this.armTimer();
    });
  }

  onClose(_listener: (reason: string) => void): void {
    // Nothing underneath can go away: the stack lives exactly as long as this object.
  }

  close(): Promise<void> {
    this.closed = true;
    this.onPacket = undefined;
    this.queue.clear();
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
    return Promise.resolve();
  }

  private drain(): void {
    this.draining = false;
    const stack = this.stack;
    // One burst: a connection acknowledges what it got in this drain with one ACK at its end.
    stack.beginInputBurst?.();
    // Packets queued while we drain are taken in the same loop.
    for (let packet = this.queue.front(); packet && !this.closed; packet = this.queue.front()) {
      this.counters.input++;
      try {
        // The stack copies what it keeps of a packet, so the slot is reused once input returns.
        stack.input(packet, this.clock.now());
      } catch {
        // The stack promises not to throw; if it breaks that, one packet is lost, not the tunnel.
        this.counters.stackErrors++;
      }
      this.queue.shift();
    }
    try {
      stack.endInputBurst?.(this.clock.now());
    } catch {
      this.counters.stackErrors++;
    }
    this.armTimer();
  }

  private onOutput(packet: Uint8Array): void {
    if (!this.onPacket || this.closed) {
      this.counters.outputDropped++;
      return;
    }
    this.counters.output++;
    this.onPacket(packet);
  }

  private armTimer(): void {
    if (this.closed) return;
    const deadline = this.stack.nextDeadline();
    if (deadline >= this.timerAt) return;
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timerAt = deadline;
    if (deadline === Infinity) { this.timer = null; return; }
    this.timer = this.clock.setTimer(() => this.onTimer(), Math.max(0, deadline - this.clock.now()));
  }

  private onTimer(): void {
    this.timer = null;
    this.timerAt = Infinity;
    if (this.closed) return;
    this.stack.tick(this.clock.now());
    this.armTimer();
  }
}
