/**
 * The in-memory twin of a TUN device, for tests: `inject` plays the OS routing a packet into the
 * tunnel, `written` / `onWrite` collect what the device writes out, `simulateDelete` plays
 * `ip link del`.
 *
 * It keeps the real device's contract strict so that tests catch misuse: the handler gets a
 * private copy of each injected packet that is overwritten (with 0xEE) as soon as the handler
 * returns, like a real ring slot being reused (turn off with `poison: false`), and packets
 * injected before start() wait in a queue bounded like the kernel's (txqueuelen 500).
 */
import type { Tun } from './tun.ts';
import { WireweaveError } from '../core/errors.ts';

export interface MemoryTunOptions {
  /** Default "memtun0". */
  name?: string;
  /** Default 1420. */
  mtu?: number;
  /** Overwrite the handler's view after the call returns (default true). */
  poison?: boolean;
  /** Packets injected before start() that are kept (default 500, like a TUN's txqueuelen). */
  queueLimit?: number;
}

export class MemoryTun implements Tun {
  readonly name: string;
  readonly mtu: number;
  /** Copies of the packets the device wrote out, in order. */
  readonly written: Uint8Array[] = [];
  /**
   * Called with each written packet (a copy, the caller may keep it) after it is appended to
   * `written`. Return false to simulate a drop: write() then returns false.
   */
  onWrite: ((packet: Uint8Array) => boolean | void) | undefined;

  private readonly poison: boolean;
  private readonly queueLimit: number;
  private handler: ((packet: Uint8Array) => void) | undefined;
  private readonly queued: Uint8Array[] = [];
  private readonly closeListeners: ((reason: string) => void)[] = [];
  private state: 'open' | 'deleted' | 'closed' = 'open';
  /** Injected packets dropped (queue full before start, or after close/delete). */
  injectDropped = 0;

  constructor(opts: MemoryTunOptions = {}) {
    this.name = opts.name ?? 'memtun0';
    this.mtu = opts.mtu ?? 1420;
    this.poison = opts.poison ?? true;
    this.queueLimit = opts.queueLimit ?? 500;
  }

  get started(): boolean {
    return this.handler !== undefined;
  }

  get closed(): boolean {
    return this.state !== 'open';
  }

  start(onPacket: (packet: Uint8Array) => void): void {
    if (this.handler) throw new WireweaveError('ERR_STARTED', `${this.name}: already started`);
    if (this.state !== 'open') throw new WireweaveError('ERR_CLOSED', `${this.name}: closed`);
    this.handler = onPacket;
    while (this.queued.length > 0 && this.handler) this.deliver(this.queued.shift()!);
  }

  /**
   * As if the OS routed `packet` into the tunnel: calls the started handler synchronously with a
   * copy (or queues it until start()). Returns false if it was dropped.
   */
  inject(packet: Uint8Array): boolean {
    if (this.state !== 'open') {
      this.injectDropped++;
      return false;
    }
    const copy = packet.slice();
    if (!this.handler) {
      if (this.queued.length >= this.queueLimit) {
        this.injectDropped++;
        return false;
      }
      this.queued.push(copy);
      return true;
    }
    this.deliver(copy);
    return true;
  }

  write(packet: Uint8Array): boolean {
    if (this.state !== 'open') return false;
    const copy = packet.slice();
    this.written.push(copy);
    return this.onWrite?.(copy) !== false;
  }

  onClose(listener: (reason: string) => void): void {
    this.closeListeners.push(listener);
  }

  /** Plays `ip link del`: the listeners get `reason` once; later writes and injects fail. */
  simulateDelete(reason = 'deleted'): void {
    if (this.state !== 'open') return;
    this.state = 'deleted';
    this.handler = undefined;
    this.queued.length = 0;
    for (const l of this.closeListeners.splice(0)) l(reason);
  }

  /** Closes this end; the other end's reads end too. */
  close(): Promise<void> {
    if (this.state === 'open') this.state = 'closed';
    this.handler = undefined;
    this.queued.length = 0;
    return Promise.resolve();
  }

  private deliver(packet: Uint8Array): void {
    try {
      this.handler!(packet);
    } finally {
      if (this.poison) packet.fill(0xee);
    }
  }
}
