/**
 * A bounded FIFO of packet copies in reused buffers: the netstack TUN's queue between the
 * device's call (whose buffer is reused afterwards) and the stack's input in a microtask. A copy
 * per packet is needed, an allocation per packet is not (`slice()` here was ~9 % of a netstack
 * receiver's main thread). The queue starts again at slot 0 whenever it empties, so a shallow
 * queue touches few slots; slots past KEEP_SLOTS are let go then, so a burst does not pin its peak.
 */

/** Slots kept allocated when the queue empties (each at least SLOT_BYTES). */
export const KEEP_SLOTS = 256;
const SLOT_BYTES = 2048;

export class PacketQueue {
  private readonly buffers: (Uint8Array | undefined)[] = [];
  private readonly lengths: Int32Array;
  private head = 0;
  private count = 0;

  readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
    this.lengths = new Int32Array(limit);
  }

  get length(): number {
    return this.count;
  }

  /** Copies `packet` in; false (nothing copied) when the queue is full. */
  push(packet: Uint8Array): boolean {
    if (this.count >= this.limit) return false;
    const i = (this.head + this.count) % this.limit;
    let b = this.buffers[i];
    if (!b || b.length < packet.length) {
      b = new Uint8Array(Math.max(SLOT_BYTES, packet.length));
      this.buffers[i] = b;
    }
    b.set(packet);
    this.lengths[i] = packet.length;
    this.count++;
    return true;
  }

  /** The oldest packet, left in place (valid until `shift`), or undefined when empty. */
  front(): Uint8Array | undefined {
    if (this.count === 0) return undefined;
    return this.buffers[this.head]!.subarray(0, this.lengths[this.head]);
  }

  /** Lets go of the oldest packet. */
  shift(): void {
    if (this.count === 0) return;
    this.count--;
    this.head = this.count === 0 ? 0 : (this.head + 1) % this.limit;
    // `buffers` is as long as the highest slot used since it was last cut.
    if (this.count === 0 && this.buffers.length > KEEP_SLOTS) this.buffers.length = KEEP_SLOTS;
  }

  clear(): void {
    this.count = 0;
    this.head = 0;
    this.buffers.length = 0;
  }

  /** Slots holding a buffer (for tests and memory accounting). */
  get allocatedSlots(): number {
    let n = 0;
    for (const b of this.buffers) if (b) n++;
    return n;
  }
}
