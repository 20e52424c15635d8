/**
 * The sender's SACK scoreboard (RFC 2018, RFC 6675 §3): which bytes above SND.UNA the receiver
 * has reported holding, as sorted, disjoint [start, end) ranges. A handful of ranges at most in
 * practice (each ACK reports up to four), so arrays and linear scans are the right size.
 */
import { seqDiff, seqGe, seqGt, seqLe, seqLt } from './seq.ts';

export class Scoreboard {
  private ranges: [number, number][] = [];
  private total = 0;

  get sackedBytes(): number { return this.total; }
  get isEmpty(): boolean { return this.ranges.length === 0; }

  /** End of the highest SACKed range, or undefined. */
  get highest(): number | undefined { return this.ranges[this.ranges.length - 1]?.[1]; }

  /** Adds [start, end), merging with what overlaps or touches it. */
  add(start: number, end: number): void {
    if (!seqLt(start, end)) return;
    const out: [number, number][] = [];
    let s = start;
    let e = end;
    let placed = false;
    for (const r of this.ranges) {
      if (seqLt(r[1], s)) { out.push(r); continue; }
      if (seqGt(r[0], e)) {
        if (!placed) { out.push([s, e]); placed = true; }
        out.push(r);
        continue;
      }
      if (seqLt(r[0], s)) s = r[0];
      if (seqGt(r[1], e)) e = r[1];
    }
    if (!placed) out.push([s, e]);
    this.set(out);
  }

  /** Forgets everything below `una` (cumulatively acknowledged). */
  trim(una: number): void {
    if (this.ranges.length === 0) return;
    const out: [number, number][] = [];
    for (const r of this.ranges) {
      if (seqLe(r[1], una)) continue;
      out.push(seqLt(r[0], una) ? [una, r[1]] : r);
    }
    this.set(out);
  }

  clear(): void {
    this.ranges = [];
    this.total = 0;
  }

  /** If `seq` is SACKed, the end of its range; else undefined. */
  sackedEnd(seq: number): number | undefined {
    for (const r of this.ranges) if (seqGe(seq, r[0]) && seqLt(seq, r[1])) return r[1];
    return undefined;
  }

  /** Start of the first SACKed range above `seq`, or undefined. */
  nextStart(seq: number): number | undefined {
    for (const r of this.ranges) if (seqGt(r[0], seq)) return r[0];
    return undefined;
  }

  /** Bytes in [from, to) that are not SACKed. */
  holeBytes(from: number, to: number): number {
    let n = Math.max(0, seqDiff(to, from));
    for (const r of this.ranges) {
      const s = seqLt(r[0], from) ? from : r[0];
      const e = seqGt(r[1], to) ? to : r[1];
      if (seqLt(s, e)) n -= seqDiff(e, s);
    }
    return n;
  }

  /**
   * RFC 6675 SetPipe: bytes believed in the network — outstanding, not SACKed, and not in a hole
   * at or above HighRxt below the highest SACK (those are taken as lost and not yet resent).
   */
  pipe(sndUna: number, sndMax: number, highRxt: number): number {
    let p = seqDiff(sndMax, sndUna) - this.total;
    const high = this.highest;
    const from = seqLt(highRxt, sndUna) ? sndUna : highRxt;
    if (high !== undefined && seqLt(from, high)) p -= this.holeBytes(from, high);
    return Math.max(0, p);
  }

  /**
   * RFC 6675 NextSeg rule 1: the first hole at or after `from`, below the highest SACK and the
   * end of the data, as at most one segment that stops where the next SACKed range starts.
   */
  nextHole(from: number, dataEnd: number, smss: number): { seq: number; len: number } | undefined {
    const high = this.highest;
    if (high === undefined) return undefined;
    let seq = from;
    for (let end = this.sackedEnd(seq); end !== undefined; end = this.sackedEnd(seq)) seq = end;
    if (!seqLt(seq, high) || !seqLt(seq, dataEnd)) return undefined;
    const next = this.nextStart(seq) ?? high;
    return { seq, len: Math.min(smss, seqDiff(next, seq), seqDiff(dataEnd, seq)) };
  }

  private set(ranges: [number, number][]): void {
    this.ranges = ranges;
    let t = 0;
    for (const r of ranges) t += seqDiff(r[1], r[0]);
    this.total = t;
  }
}
