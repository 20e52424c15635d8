/**
 * The receive side's out-of-order queue (RFC 9293 §3.10.7.4): segments beyond RCV.NXT kept sorted
 * and non-overlapping until the gap before them fills. The caller only offers bytes inside the
 * advertised window, so the queue is bounded by the receive buffer.
 */
import { seqAdd, seqDiff, seqGe, seqLe, seqLt } from './seq.ts';

interface Block { seq: number; data: Uint8Array }

export class OutOfOrderQueue {
  private blocks: Block[] = [];
  private bytesHeld = 0;
  /** Start of the most recently offered segment: RFC 2018 §4 puts its block first. */
  private lastSeq = 0;

  get bytes(): number { return this.bytesHeld; }
  get isEmpty(): boolean { return this.blocks.length === 0; }

  /**
   * Stores a copy of the parts of `data` (starting at `seq`) not already held. Returns how many
   * new bytes were stored.
   */
  insert(seq: number, data: Uint8Array): number {
    this.lastSeq = seq;
    let added = 0;
    let s = seq;
    let d = data;
    let i = 0;
    while (d.length > 0) {
      while (i < this.blocks.length && seqLe(seqAdd(this.blocks[i]!.seq, this.blocks[i]!.data.length), s)) i++;
      const next = this.blocks[i];
      if (!next || seqGe(next.seq, seqAdd(s, d.length))) {
        this.blocks.splice(i, 0, { seq: s, data: d.slice() });
        added += d.length;
        break;
      }
      if (seqLt(s, next.seq)) {
        // The part before the next block is new.
        const n = seqDiff(next.seq, s);
        this.blocks.splice(i, 0, { seq: s, data: d.slice(0, n) });
        added += n;
        i++;
      }
      // Skip what `next` already holds.
      const skip = seqDiff(seqAdd(next.seq, next.data.length), s);
      if (skip >= d.length) break;
      s = seqAdd(s, skip);
      d = d.subarray(skip);
    }
    this.bytesHeld += added;
    return added;
  }

  /** Removes and returns, in order, the bytes that now continue `rcvNxt`. Stale bytes are dropped. */
  takeFrom(rcvNxt: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let next = rcvNxt;
    while (this.blocks.length > 0) {
      const b = this.blocks[0]!;
      if (seqLt(next, b.seq)) break;
      this.blocks.shift();
      this.bytesHeld -= b.data.length;
      const skip = seqDiff(next, b.seq);
      if (skip >= b.data.length) continue;
      const chunk = skip > 0 ? b.data.subarray(skip) : b.data;
      out.push(chunk);
      next = seqAdd(next, chunk.length);
    }
    return out;
  }

  /**
   * SACK blocks (RFC 2018 §4) as flattened [left, right) pairs, at most `max`: the block holding
   * the most recent segment first, then the others from the highest down.
   */
  sackBlocks(max: number): number[] {
    const merged: [number, number][] = [];
    for (const b of this.blocks) {
      const end = seqAdd(b.seq, b.data.length);
      const last = merged[merged.length - 1];
      if (last && last[1] === b.seq) last[1] = end;
      else merged.push([b.seq, end]);
    }
    const first = merged.findIndex((r) => seqGe(this.lastSeq, r[0]) && seqLt(this.lastSeq, r[1]));
    const out: number[] = [];
    if (first >= 0) out.push(merged[first]![0], merged[first]![1]);
    for (let i = merged.length - 1; i >= 0 && out.length < 2 * max; i--) {
      if (i !== first) out.push(merged[i]![0], merged[i]![1]);
    }
    return out;
  }

  clear(): void {
    this.blocks = [];
    this.bytesHeld = 0;
  }
}
