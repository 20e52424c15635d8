/**
 * IP fragment reassembly (RFC 791 §3.2, RFC 8200 §4.5) with bounded memory, and fragmentation of
 * our own oversized datagrams.
 *
 * Pending datagrams are keyed by (family, source, destination, protocol, id). Memory is bounded
 * twice: at most `maxDatagrams` pending and `maxBytes` buffered in all; past either bound the
 * oldest pending datagram is evicted. Overlapping fragments discard the whole datagram (RFC
 * 5722 requires it for IPv6 and it closes the overlap attacks on IPv4 too); an exact duplicate
 * of a fragment already held (same offset, same length) is ignored, since wires duplicate.
 * Every pending datagram times out `timeout` ms after its first fragment: entries are kept in
 * insertion order (a Map), so the first one is always the next to expire.
 */
import type { Counters } from './counters.ts';

export interface ReassemblyLimits {
  readonly timeout: number;
  readonly maxBytes: number;
  readonly maxDatagrams: number;
}

const MAX_DATAGRAM = 65535;

interface Piece { readonly offset: number; readonly data: Uint8Array }

interface Pending {
  readonly deadline: number;
  readonly pieces: Piece[];
  /** Length of the whole payload once the last fragment arrived, else -1. */
  total: number;
  bytes: number;
}

export class Reassembler {
  private readonly pending = new Map<string, Pending>();
  private bytes = 0;
  private readonly limits: ReassemblyLimits;
  private readonly counters: Counters;

  constructor(limits: ReassemblyLimits, counters: Counters) {
    this.limits = limits;
    this.counters = counters;
  }

  get pendingDatagrams(): number { return this.pending.size; }
  get bufferedBytes(): number { return this.bytes; }

  /**
   * One fragment: `data` (copied if kept) at byte `offset` of the payload. Returns the whole
   * payload once every fragment is in, else null.
   */
  add(key: string, offset: number, data: Uint8Array, more: boolean, now: number): Uint8Array | null {
    this.counters.fragmentsReceived++;
    const end = offset + data.length;
    // Non-final fragments carry multiples of 8 bytes; anything else cannot be placed.
    if (end > MAX_DATAGRAM || (more && data.length % 8 !== 0) || (more && data.length === 0)) {
      this.counters.fragmentsTooBig++;
      this.discard(key);
      return null;
    }
    let p = this.pending.get(key);
    if (!p) {
      p = { deadline: now + this.limits.timeout, pieces: [], total: -1, bytes: 0 };
      this.pending.set(key, p);
    }
    if (!more) {
      if ((p.total >= 0 && p.total !== end) || p.pieces.some((x) => x.offset + x.data.length > end)) return this.overlap(key);
      p.total = end;
    } else if (p.total >= 0 && end > p.total) {
      return this.overlap(key);
    }
    // Sorted insert; exact duplicates are ignored, other overlaps poison the datagram.
    let i = 0;
    while (i < p.pieces.length && p.pieces[i]!.offset < offset) i++;
    const same = p.pieces[i];
    if (same && same.offset === offset && same.data.length === data.length) return null;
    const prev = p.pieces[i - 1];
    if ((prev && prev.offset + prev.data.length > offset) || (same && same.offset < end)) return this.overlap(key);
    p.pieces.splice(i, 0, { offset, data: data.slice() });
    p.bytes += data.length;
    this.bytes += data.length;
    this.enforceBounds(key);
    if (!this.pending.has(key) || p.total < 0) return null;
    let covered = 0;
    for (const x of p.pieces) { if (x.offset !== covered) return null; covered += x.data.length; }
    if (covered !== p.total) return null;
    const out = new Uint8Array(p.total);
    for (const x of p.pieces) out.set(x.data, x.offset);
    this.discard(key);
    this.counters.fragmentsReassembled++;
    return out;
  }

  nextDeadline(): number {
    for (const p of this.pending.values()) return p.deadline;
    return Infinity;
  }

  /** Drops datagrams whose time is up (RFC 8200 would send Time Exceeded; we only count). */
  expire(now: number): void {
    for (const [key, p] of this.pending) {
      if (p.deadline > now) break;
      this.discard(key);
      this.counters.fragmentsTimedOut++;
    }
  }

  private overlap(key: string): null {
    this.counters.fragmentsOverlap++;
    this.discard(key);
    return null;
  }

  private enforceBounds(keep: string): void {
    while (this.pending.size > this.limits.maxDatagrams || this.bytes > this.limits.maxBytes) {
      const oldest = this.pending.keys().next().value!;
      // The newest datagram goes last: evict it only if it alone is over the bound.
      const victim = oldest === keep && this.pending.size > 1 ? [...this.pending.keys()][1]! : oldest;
      this.discard(victim);
      this.counters.fragmentsEvicted++;
    }
  }

  private discard(key: string): void {
    const p = this.pending.get(key);
    if (!p) return;
    this.bytes -= p.bytes;
    this.pending.delete(key);
  }
}

/**
 * Splits `payloadLength` bytes into fragment sizes that fit `room` bytes per packet, each but the
 * last a multiple of 8.
 */
export function fragmentSizes(payloadLength: number, room: number): number[] {
  const step = Math.floor(room / 8) * 8;
  const sizes: number[] = [];
  for (let off = 0; off < payloadLength; off += step) sizes.push(Math.min(step, payloadLength - off));
  return sizes;
}
