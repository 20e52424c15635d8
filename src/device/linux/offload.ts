/**
 * TUN offloads (IFF_VNET_HDR): the kernel hands us TCP "super-packets" of up to 64 KiB that we
 * cut into MTU-sized segments (TSO done in userspace, as wireguard-go's tun/offload_linux.go),
 * and we hand it back runs of consecutive segments of one TCP flow as one super-packet (GRO done
 * in userspace), so the kernel's TCP/IP path runs once per run instead of once per packet.
 *
 * Every read and write of such a TUN starts with a 10-byte struct virtio_net_hdr (host order,
 * little-endian on every Linux wireweave runs on):
 *   u8 flags (NEEDS_CSUM 1)  u8 gso_type (NONE 0, TCPV4 1, TCPV6 4, ECN bit 0x80)
 *   u16 hdr_len  u16 gso_size  u16 csum_start  u16 csum_offset
 * With NEEDS_CSUM the checksum field at csum_start + csum_offset holds the folded pseudo-header
 * sum and the rest of the checksum is ours (or the kernel's) to finish.
 *
 * Pure functions over byte arrays (no I/O) so they are unit-tested without a TUN.
 */
import { finish, fold, sum16, verifies } from '../../core/checksum.ts';
import { ViewCache } from '../../core/view-cache.ts';

export const VNET_HDR_LEN = 10;
export const VNET_F_NEEDS_CSUM = 1;
export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV4 = 1;
export const VNET_GSO_TCPV6 = 4;
export const VNET_GSO_ECN = 0x80;

const IPPROTO_TCP = 6;
const TCP_FIN = 0x01;
const TCP_SYN = 0x02;
const TCP_RST = 0x04;
const TCP_PSH = 0x08;
const TCP_ACK = 0x10;
const TCP_URG = 0x20;
const TCP_CWR = 0x80;
/** Largest IP packet (IPv4 total length / IPv6 payload length are 16 bits). */
const MAX_PACKET = 65535;

export interface VnetHeader {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

export function readVnetHeader(b: Uint8Array, h: VnetHeader): void {
  h.flags = b[0]!;
  h.gsoType = b[1]!;
  h.hdrLen = b[2]! | (b[3]! << 8);
  h.gsoSize = b[4]! | (b[5]! << 8);
  h.csumStart = b[6]! | (b[7]! << 8);
  h.csumOffset = b[8]! | (b[9]! << 8);
}

function writeVnetHeader(b: Uint8Array, off: number, flags: number, gsoType: number, hdrLen: number, gsoSize: number, csumStart: number, csumOffset: number): void {
  b[off] = flags; b[off + 1] = gsoType;
  b[off + 2] = hdrLen & 0xff; b[off + 3] = hdrLen >>> 8;
  b[off + 4] = gsoSize & 0xff; b[off + 5] = gsoSize >>> 8;
  b[off + 6] = csumStart & 0xff; b[off + 7] = csumStart >>> 8;
  b[off + 8] = csumOffset & 0xff; b[off + 9] = csumOffset >>> 8;
}

/** Sum of the TCP pseudo-header for a packet whose IP header starts at `o`. */
function pseudoSum(p: Uint8Array, l4Length: number, o = 0): number {
  if (p[o]! >> 4 === 4) return sum16(p, o + 12, o + 20) + IPPROTO_TCP + l4Length;
  return sum16(p, o + 8, o + 40) + IPPROTO_TCP + Math.floor(l4Length / 65536) + (l4Length % 65536);
}

function putU16(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >>> 8) & 0xff;
  b[off + 1] = v & 0xff;
}

function ipv4HeaderChecksum(p: Uint8Array, o: number, ihl: number): void {
  p[o + 10] = 0; p[o + 11] = 0;
  putU16(p, o + 10, finish(sum16(p, o, o + ihl)));
}

/**
 * Finishes a NEEDS_CSUM packet in place: the checksum over [csumStart, end), which starts from
 * the pseudo-header sum the kernel left in the field. Returns false if the offsets are out of range.
 */
export function completeChecksum(p: Uint8Array, csumStart: number, csumOffset: number): boolean {
  const at = csumStart + csumOffset;
  if (csumStart >= p.length || at + 2 > p.length) return false;
  putU16(p, at, finish(sum16(p, csumStart, p.length)));
  return true;
}

/**
 * Checks a TSO super-packet (`p`, IP header at 0, TCP header at `tcpOffset`) for cutting into
 * segments of at most `mss` payload bytes, each at most `maxSegment` bytes long: returns how
 * many segments it makes, or -1 if it is malformed.
 */
export function tsoSegmentCount(p: Uint8Array, tcpOffset: number, mss: number, maxSegment = 65535): number {
  const version = p.length > 0 ? p[0]! >> 4 : 0;
  if (version === 4) {
    if (p.length < 20 || p[9] !== IPPROTO_TCP) return -1;
  } else if (version === 6) {
    if (p.length < 40) return -1;
  } else return -1;
  if (mss <= 0 || tcpOffset + 20 > p.length) return -1;
  const tcpLen = (p[tcpOffset + 12]! >> 4) * 4;
  const headers = tcpOffset + tcpLen;
  if (tcpLen < 20 || headers > p.length || headers + mss > maxSegment) return -1;
  return Math.max(1, Math.ceil((p.length - headers) / mss));
}

/**
 * Writes segment `i` of the `count` that tsoSegmentCount gave for `p` into `out` at `o`: a
 * complete packet with its own lengths, IPv4 id, sequence number, flags and checksums. Returns
 * its length.
 */
export function writeTcpSegment(p: Uint8Array, tcpOffset: number, mss: number, i: number, count: number, out: Uint8Array, o: number): number {
  const headers = tcpOffset + (p[tcpOffset + 12]! >> 4) * 4;
  const off = i * mss;
  const len = Math.min(mss, p.length - headers - off);
  out.set(p.subarray(headers + off, headers + off + len), o + headers);
  return writeSegmentHeaders(p, tcpOffset, headers, i * mss, i, count, len, out, o);
}

/**
 * Writes segment `i`'s headers into `out` at `o`, in front of its `len` payload bytes already
 * there, from `template` (the super-packet's headers): lengths, IPv4 id and checksum, sequence
 * number (`off` past the first), flags, TCP checksum. Returns the segment's length.
 */
function writeSegmentHeaders(template: Uint8Array, tcpOffset: number, headers: number, off: number, i: number, count: number, len: number, out: Uint8Array, o: number): number {
  const version = template[0]! >> 4;
  for (let k = 0; k < headers; k++) out[o + k] = template[k]!; // ≤ 120 bytes: no view to make
  const total = headers + len;
  if (version === 4) {
    putU16(out, o + 2, total);
    putU16(out, o + 4, (((template[4]! << 8) | template[5]!) + i) & 0xffff);
    ipv4HeaderChecksum(out, o, tcpOffset);
  } else putU16(out, o + 4, total - 40);
  const seq = (((template[tcpOffset + 4]! << 24) | (template[tcpOffset + 5]! << 16) | (template[tcpOffset + 6]! << 8) | template[tcpOffset + 7]!) + off) >>> 0;
  const t = o + tcpOffset;
  out[t + 4] = seq >>> 24; out[t + 5] = (seq >>> 16) & 0xff;
  out[t + 6] = (seq >>> 8) & 0xff; out[t + 7] = seq & 0xff;
  let flags = template[tcpOffset + 13]!;
  if (i !== count - 1) flags &= ~(TCP_FIN | TCP_PSH); // only the last segment ends or pushes
  if (i !== 0) flags &= ~TCP_CWR; // congestion window reduced is said once
  out[t + 13] = flags;
  out[t + 16] = 0; out[t + 17] = 0;
  putU16(out, t + 16, finish(sum16(out, t, o + total, pseudoSum(out, total - tcpOffset, o))));
  return total;
}

/**
 * Cuts a TSO super-packet (`p`, IP header at 0, TCP header at `tcpOffset`) into segments of at
 * most `mss` payload bytes, each a complete packet with correct lengths, sequence numbers, flags
 * and checksums, written in turn into `out` and passed to `emit` (the view is valid only during
 * the call). Returns the number of segments, or -1 if the packet is malformed (nothing emitted).
 */
export function segmentTcp(p: Uint8Array, tcpOffset: number, mss: number, out: Uint8Array, emit: (segment: Uint8Array) => void): number {
  const count = tsoSegmentCount(p, tcpOffset, mss, out.length);
  for (let i = 0; i < count; i++) emit(out.subarray(0, writeTcpSegment(p, tcpOffset, mss, i, count, out, 0)));
  return count;
}

/**
 * segmentTcp without moving the payload: segment i's headers are written into `p` itself, just
 * in front of its payload, so it is p[i·mss, i·mss + headers + len). They overwrite the end of
 * segment i − 1, already emitted, which is why `emit` must be done with a segment when it
 * returns. The original headers are first copied to `template`. The payload is not copied at
 * all, which matters when `p` lies in a SharedArrayBuffer (the TUN ring): V8 copies out of one
 * with relaxed atomic moves. Returns the number of segments, -1 if the packet is malformed, -2
 * if its headers do not fit `template` (nothing emitted either way).
 */
export function segmentTcpInPlace(p: Uint8Array, tcpOffset: number, mss: number, template: Uint8Array, emit: (segment: Uint8Array) => void): number {
  const count = tsoSegmentCount(p, tcpOffset, mss);
  if (count < 0) return -1;
  const headers = tcpOffset + (p[tcpOffset + 12]! >> 4) * 4;
  if (headers > template.length) return -2;
  template.set(p.subarray(0, headers));
  for (let i = 0; i < count; i++) {
    const o = i * mss;
    const len = Math.min(mss, p.length - headers - o);
    emit(p.subarray(o, o + writeSegmentHeaders(template, tcpOffset, headers, o, i, count, len, p, o)));
  }
  return count;
}

/** True if the TCP checksum of a complete packet (IP header at 0, TCP at `tcpOffset`) verifies. */
export function tcpChecksumValid(p: Uint8Array, tcpOffset: number): boolean {
  return verifies(sum16(p, tcpOffset, p.length, pseudoSum(p, p.length - tcpOffset)));
}

/**
 * Gathers consecutive in-order segments of one TCP flow into one super-packet for a TUN write
 * (userspace GRO). `buffer` holds a virtio_net_hdr and the packet being built.
 *
 * A packet joins the run when it has the same addresses, ports, IP fields, ACK number, window
 * and TCP options as the first, continues its sequence space, carries no flag beyond ACK/PSH,
 * has a valid checksum, and the run's segments so far are all `gsoSize` long; a shorter segment
 * or a PSH ends the run. Anything else is written on its own.
 */
export class TcpCoalescer {
  /** virtio_net_hdr + packet under construction. */
  readonly buffer = new Uint8Array(VNET_HDR_LEN + MAX_PACKET);
  /** Segments in the current run (0: empty). */
  count = 0;
  private length = 0; // bytes of the packet (after the vnet header)
  private version = 0;
  private tcpOffset = 0;
  private headers = 0;
  private gsoSize = 0;
  private nextSeq = 0;
  private closed = false;
  /** Largest super-packet built (bytes after the vnet header). */
  private readonly maxPacket: number;
  /** Payload views of the packets appended: they come from the same receive scratch each time. */
  private readonly views = new ViewCache(16);

  constructor(maxPacket = MAX_PACKET) {
    this.maxPacket = Number.isFinite(maxPacket) ? Math.max(1500, Math.min(MAX_PACKET, Math.floor(maxPacket))) : MAX_PACKET;
  }

  /**
   * Tries to add `p` to the run; returns false if it cannot join (the caller flushes the run and
   * then calls `start` or writes `p` alone).
   */
  append(p: Uint8Array): boolean {
    if (this.count === 0 || this.closed) return false;
    const b = this.buffer;
    const base = VNET_HDR_LEN;
    const tcp = this.tcpOffset;
    const headers = this.headers;
    if (p.length <= headers || p.length - headers > this.gsoSize) return false;
    if (this.length + p.length - headers > this.maxPacket) return false;
    if (!segmentShapeOk(p, this.version, tcp, headers)) return false;
    // Identical headers but for the lengths, the IPv4 id and checksum, the sequence number,
    // the flags (PSH allowed) and the TCP checksum.
    if (this.version === 4) {
      if (p[1] !== b[base + 1] || p[6] !== b[base + 6] || p[8] !== b[base + 8]) return false; // TOS, DF, TTL
      if (!same(p, b, 12, base + 12, 8)) return false; // addresses
    } else {
      if (!same(p, b, 0, base, 4) || p[7] !== b[base + 7] || !same(p, b, 8, base + 8, 32)) return false;
    }
    if (!same(p, b, tcp, base + tcp, 4)) return false; // ports
    const seq = ((p[tcp + 4]! << 24) | (p[tcp + 5]! << 16) | (p[tcp + 6]! << 8) | p[tcp + 7]!) >>> 0;
    if (seq !== this.nextSeq) return false;
    if (!same(p, b, tcp + 8, base + tcp + 8, 5)) return false; // ack, data offset
    if (!same(p, b, tcp + 14, base + tcp + 14, 2) || !same(p, b, tcp + 18, base + tcp + 18, headers - tcp - 18)) return false; // window, urgent, options
    if (!tcpChecksumValid(p, tcp)) return false;
    const payload = p.length - headers;
    b.set(this.views.view(p, headers, p.length), base + this.length);
    this.length += payload;
    this.nextSeq = (this.nextSeq + payload) >>> 0;
    this.count++;
    const flags = p[tcp + 13]!;
    if ((flags & TCP_PSH) !== 0) b[base + tcp + 13]! |= TCP_PSH;
    if (payload < this.gsoSize || (flags & TCP_PSH) !== 0) this.closed = true;
    return true;
  }

  /** Starts a run with `p` if it can lead one (returns false: write it alone). */
  start(p: Uint8Array): boolean {
    const version = p.length > 0 ? p[0]! >> 4 : 0;
    let tcp: number;
    if (version === 4) {
      if (p.length < 40 || p[0] !== 0x45 || p[9] !== IPPROTO_TCP) return false; // no IP options
      if ((p[6]! & 0x3f) !== 0 || p[7] !== 0) return false; // MF or a fragment offset
      if (((p[2]! << 8) | p[3]!) !== p.length) return false;
      tcp = 20;
    } else if (version === 6) {
      if (p.length < 60 || p[6] !== IPPROTO_TCP) return false; // no extension headers
      if (((p[4]! << 8) | p[5]!) !== p.length - 40) return false;
      tcp = 40;
    } else return false;
    const tcpLen = (p[tcp + 12]! >> 4) * 4;
    const headers = tcp + tcpLen;
    if (tcpLen < 20 || headers >= p.length) return false; // no payload: nothing to coalesce
    const flags = p[tcp + 13]!;
    if ((flags & ~(TCP_ACK | TCP_PSH)) !== 0 || (flags & TCP_ACK) === 0 || (flags & TCP_PSH) !== 0) return false;
    if (!tcpChecksumValid(p, tcp)) return false;
    this.buffer.set(p, VNET_HDR_LEN);
    this.length = p.length;
    this.version = version;
    this.tcpOffset = tcp;
    this.headers = headers;
    this.gsoSize = p.length - headers;
    this.nextSeq = ((((p[tcp + 4]! << 24) | (p[tcp + 5]! << 16) | (p[tcp + 6]! << 8) | p[tcp + 7]!) >>> 0) + this.gsoSize) >>> 0;
    this.count = 1;
    this.closed = false;
    return true;
  }

  /**
   * Finishes the run and returns the bytes to write (virtio_net_hdr + packet), then resets.
   * One segment goes out untouched with an empty header; several as a GSO packet whose TCP
   * checksum the kernel completes (NEEDS_CSUM with the pseudo-header sum in the field).
   */
  finish(): Uint8Array {
    const b = this.buffer;
    const base = VNET_HDR_LEN;
    const total = this.length;
    if (this.count === 1) {
      writeVnetHeader(b, 0, 0, VNET_GSO_NONE, 0, 0, 0, 0);
    } else {
      const p = b.subarray(base, base + total);
      const tcp = this.tcpOffset;
      if (this.version === 4) {
        putU16(p, 2, total);
        ipv4HeaderChecksum(p, 0, 20);
      } else putU16(p, 4, total - 40);
      putU16(p, tcp + 16, fold(pseudoSum(p, total - tcp)));
      writeVnetHeader(b, 0, VNET_F_NEEDS_CSUM, this.version === 4 ? VNET_GSO_TCPV4 : VNET_GSO_TCPV6, this.headers, this.gsoSize, tcp, 16);
    }
    this.count = 0;
    return b.subarray(0, base + total);
  }
}

/** The structural checks a follower segment must pass before its fields are compared. */
function segmentShapeOk(p: Uint8Array, version: number, tcp: number, headers: number): boolean {
  if ((p[0]! >> 4) !== version) return false;
  if (version === 4) {
    if (p[0] !== 0x45 || p[9] !== IPPROTO_TCP || (p[6]! & 0x3f) !== 0 || p[7] !== 0) return false;
    if (((p[2]! << 8) | p[3]!) !== p.length) return false;
  } else {
    if (p[6] !== IPPROTO_TCP || ((p[4]! << 8) | p[5]!) !== p.length - 40) return false;
  }
  if ((p[tcp + 12]! >> 4) * 4 !== headers - tcp) return false;
  const flags = p[tcp + 13]!;
  return (flags & (TCP_FIN | TCP_SYN | TCP_RST | TCP_URG | TCP_CWR | 0x40)) === 0 && (flags & TCP_ACK) !== 0;
}

function same(a: Uint8Array, b: Uint8Array, ai: number, bi: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[ai + i] !== b[bi + i]) return false;
  return true;
}
