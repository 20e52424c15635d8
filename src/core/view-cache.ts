/**
 * Views of recurring windows of long-lived buffers: a scratch buffer, a batch buffer's segments.
 * The data path asks for the same few windows packet after packet, and a new view each time is
 * an allocation a packet (~25 ns, and work for the GC). Direct-mapped by byte offset and length:
 * a miss makes the view and keeps it, so the cache holds at most `slots` views.
 */
export class ViewCache {
  private readonly views: (Uint8Array | null)[];
  private readonly shift: number;

  /** `slots`: a power of two, at least the number of windows one caller cycles through. */
  constructor(slots: number) {
    if (!Number.isInteger(slots) || slots < 1 || slots > 1 << 16 || (slots & (slots - 1)) !== 0) {
      throw new RangeError(`ViewCache slots must be a power of two in 1..65536, not ${slots}`);
    }
    this.views = new Array<Uint8Array | null>(slots).fill(null);
    this.shift = 32 - Math.log2(slots);
  }

  /** What `b.subarray(start, end)` returns, for 0 ≤ start ≤ end ≤ b.length; the same object as last time for the same window. */
  view(b: Uint8Array, start: number, end: number): Uint8Array {
    const at = b.byteOffset + start;
    const length = end - start;
    // Fibonacci hashing: segments at multiples of one length spread over the slots.
    const i = this.shift === 32 ? 0 : Math.imul(at + Math.imul(length, 0x3b9b), 0x9e3779b1) >>> this.shift;
    const v = this.views[i];
    if (v?.byteOffset === at && v.length === length && v.buffer === b.buffer) return v;
    return (this.views[i] = b.subarray(start, end));
  }
}
