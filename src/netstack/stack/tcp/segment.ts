/**
 * TCP segments (RFC 9293 §3.1) and the options we speak: MSS (RFC 9293 §3.7.1), window scale and
 * timestamps (RFC 7323), SACK-permitted (RFC 2018, recognised, not used). Unknown options are
 * skipped by their length; a malformed option list ends parsing of options, never the segment.
 */
export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;

const TCP_HEADER = 20;
/** NOP NOP TS(10): the timestamp option as every segment after the handshake carries it. */
export const TS_OPTION_SPACE = 12;
/** Option space is 40 bytes: with timestamps, three SACK blocks fit (12 + 4 + 3·8). */
export const MAX_SACK_BLOCKS = { withTs: 3, withoutTs: 4 } as const;

const OPT_END = 0;
const OPT_NOP = 1;
const OPT_MSS = 2;
const OPT_WSCALE = 3;
const OPT_SACK_PERMITTED = 4;
const OPT_SACK = 5;
const OPT_TIMESTAMP = 8;

export interface TcpOptions {
  mss?: number;
  wscale?: number;
  sackPermitted?: boolean;
  tsVal?: number;
  tsEcr?: number;
  /** SACK blocks as [left, right) pairs, flattened. */
  sack?: number[];
}

export interface TcpSegment {
  readonly srcPort: number;
  readonly dstPort: number;
  readonly seq: number;
  readonly ack: number;
  readonly flags: number;
  /** The raw 16-bit window field (unscaled). */
  readonly window: number;
  readonly options: TcpOptions;
  /** View into the packet. */
  readonly payload: Uint8Array;
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** Parses a checksum-verified segment; null if the header does not fit. */
export function parseTcp(b: Uint8Array): TcpSegment | null {
  if (b.length < TCP_HEADER) return null;
  const dataOffset = (b[12]! >> 4) * 4;
  if (dataOffset < TCP_HEADER || dataOffset > b.length) return null;
  return {
    srcPort: (b[0]! << 8) | b[1]!,
    dstPort: (b[2]! << 8) | b[3]!,
    seq: u32(b, 4),
    ack: u32(b, 8),
    flags: b[13]! & 0x3f,
    window: (b[14]! << 8) | b[15]!,
    options: dataOffset > TCP_HEADER ? parseOptions(b, TCP_HEADER, dataOffset) : {},
    payload: b.subarray(dataOffset),
  };
}

function parseOptions(b: Uint8Array, start: number, end: number): TcpOptions {
  const o: TcpOptions = {};
  let i = start;
  while (i < end) {
    const kind = b[i]!;
    if (kind === OPT_END) break;
    if (kind === OPT_NOP) { i++; continue; }
    if (i + 1 >= end) break;
    const len = b[i + 1]!;
    if (len < 2 || i + len > end) break;
    if (kind === OPT_MSS && len === 4) o.mss = (b[i + 2]! << 8) | b[i + 3]!;
    else if (kind === OPT_WSCALE && len === 3) o.wscale = b[i + 2]!;
    else if (kind === OPT_SACK_PERMITTED && len === 2) o.sackPermitted = true;
    else if (kind === OPT_TIMESTAMP && len === 10) { o.tsVal = u32(b, i + 2); o.tsEcr = u32(b, i + 6); }
    else if (kind === OPT_SACK && len >= 10 && (len - 2) % 8 === 0) {
      o.sack = [];
      for (let j = i + 2; j < i + len; j += 4) o.sack.push(u32(b, j));
    }
    i += len;
  }
  return o;
}

export interface SegmentOut {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** Only on SYNs. */
  mss?: number;
  wscale?: number;
  sackPermitted?: boolean;
  ts?: { val: number; ecr: number };
  /** SACK blocks as [left, right) pairs, flattened (at most 4 pairs, 3 with timestamps). */
  sack?: number[];
}

/** Bytes of header (with options) `writeTcpHeader` will write for `s`. */
export function tcpHeaderLength(s: SegmentOut): number {
  let n = TCP_HEADER;
  if (s.mss !== undefined) n += 4;
  if (s.wscale !== undefined) n += 4;
  if (s.sackPermitted) n += 4;
  if (s.ts) n += TS_OPTION_SPACE;
  if (s.sack && s.sack.length > 0) n += 4 + 4 * s.sack.length;
  return n;
}

function w32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24; b[o + 1] = (v >>> 16) & 0xff; b[o + 2] = (v >>> 8) & 0xff; b[o + 3] = v & 0xff;
}

/** Writes the header at b[o..) with a zero checksum; returns its length. */
export function writeTcpHeader(b: Uint8Array, o: number, s: SegmentOut): number {
  const len = tcpHeaderLength(s);
  b[o] = s.srcPort >> 8; b[o + 1] = s.srcPort & 0xff;
  b[o + 2] = s.dstPort >> 8; b[o + 3] = s.dstPort & 0xff;
  w32(b, o + 4, s.seq);
  w32(b, o + 8, s.ack);
  b[o + 12] = (len / 4) << 4;
  b[o + 13] = s.flags;
  b[o + 14] = s.window >> 8; b[o + 15] = s.window & 0xff;
  b[o + 16] = 0; b[o + 17] = 0; b[o + 18] = 0; b[o + 19] = 0;
  let i = o + TCP_HEADER;
  if (s.mss !== undefined) { b[i] = OPT_MSS; b[i + 1] = 4; b[i + 2] = s.mss >> 8; b[i + 3] = s.mss & 0xff; i += 4; }
  if (s.wscale !== undefined) { b[i] = OPT_NOP; b[i + 1] = OPT_WSCALE; b[i + 2] = 3; b[i + 3] = s.wscale; i += 4; }
  if (s.sackPermitted) { b[i] = OPT_NOP; b[i + 1] = OPT_NOP; b[i + 2] = OPT_SACK_PERMITTED; b[i + 3] = 2; i += 4; }
  if (s.ts) {
    b[i] = OPT_NOP; b[i + 1] = OPT_NOP; b[i + 2] = OPT_TIMESTAMP; b[i + 3] = 10;
    w32(b, i + 4, s.ts.val); w32(b, i + 8, s.ts.ecr);
    i += TS_OPTION_SPACE;
  }
  if (s.sack && s.sack.length > 0) {
    b[i] = OPT_NOP; b[i + 1] = OPT_NOP; b[i + 2] = OPT_SACK; b[i + 3] = 2 + 4 * s.sack.length;
    for (let j = 0; j < s.sack.length; j++) w32(b, i + 4 + 4 * j, s.sack[j]!);
  }
  return len;
}

/** Sequence space a segment occupies: data plus one for SYN and one for FIN. */
export function segmentLength(s: TcpSegment): number {
  return s.payload.length + (s.flags & SYN ? 1 : 0) + (s.flags & FIN ? 1 : 0);
}
