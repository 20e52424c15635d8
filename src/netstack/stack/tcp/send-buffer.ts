/**
 * The send buffer: bytes the application wrote that the peer has not acknowledged, from SND.UNA
 * on. Bytes are copied once, on write, into fixed-size blocks (so a thousand one-byte writes do
 * not become a thousand arrays), and copied once more, straight into the outgoing packet. The
 * byte at any offset is found in O(1): every block but the last is full.
 */
const BLOCK = 16 * 1024;

export class SendBuffer {
  private blocks: Uint8Array[] = [];
  /** Bytes of blocks[0] already acknowledged. */
  private head = 0;
  /** Bytes used in the last block. */
  private tail = BLOCK;
  private size = 0;
  readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** Bytes held (unacknowledged, sent or not). */
  get length(): number { return this.size; }

  get free(): number { return this.capacity - this.size; }

  /** Appends as much of `data` as fits; returns the count taken. */
  write(data: Uint8Array): number {
    const n = Math.min(data.length, this.free);
    let done = 0;
    while (done < n) {
      if (this.tail === BLOCK) { this.blocks.push(new Uint8Array(BLOCK)); this.tail = 0; }
      const take = Math.min(n - done, BLOCK - this.tail);
      this.blocks[this.blocks.length - 1]!.set(data.subarray(done, done + take), this.tail);
      this.tail += take;
      done += take;
    }
    this.size += n;
    return n;
  }

  /** Copies `length` bytes starting `offset` bytes after the first unacknowledged one into `dst`. */
  copyOut(offset: number, length: number, dst: Uint8Array, at: number): void {
    let pos = this.head + offset;
    let i = Math.floor(pos / BLOCK);
    pos -= i * BLOCK;
    let done = 0;
    while (done < length) {
      const block = this.blocks[i]!;
      const take = Math.min(length - done, BLOCK - pos);
      dst.set(block.subarray(pos, pos + take), at + done);
      done += take;
      i++;
      pos = 0;
    }
  }

  /** Forgets the first `n` bytes (acknowledged). */
  consume(n: number): void {
    n = Math.min(n, this.size);
    this.size -= n;
    this.head += n;
    const drop = Math.floor(this.head / BLOCK);
    if (this.size === 0) {
      this.blocks = [];
      this.head = 0;
      this.tail = BLOCK;
      return;
    }
    if (drop > 0) {
      this.blocks.splice(0, drop);
      this.head -= drop * BLOCK;
    }
  }
}
