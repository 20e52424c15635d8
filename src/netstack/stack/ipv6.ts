/**
 * IPv6 headers (RFC 8200): a view over the packet after one length check, walking the
 * extension-header chain to the upper layer. Hop-by-hop, destination options and routing headers
 * with no segments left are skipped; a fragment header is reported so the caller can reassemble.
 */
export const IPV6_HEADER = 40;
export const IPV6_FRAGMENT_HEADER = 8;

const HOP_BY_HOP = 0;
const ROUTING = 43;
const FRAGMENT = 44;
const DEST_OPTS = 60;
export const NO_NEXT_HEADER = 59;
export const FRAGMENT_NEXT_HEADER = FRAGMENT;

export interface Ipv6Fragment {
  /** Offset in bytes of this fragment's data. */
  readonly offset: number;
  readonly moreFragments: boolean;
  readonly id: number;
}

export interface Ipv6Header {
  /** The upper-layer protocol after the extension headers. */
  readonly protocol: number;
  /** Where the upper-layer data (or, if fragmented, the fragmentable part) starts. */
  readonly payloadOffset: number;
  /** End of the packet per the payload length field (padding beyond it is ignored). */
  readonly end: number;
  readonly src: Uint8Array;
  readonly dst: Uint8Array;
  readonly fragment?: Ipv6Fragment;
}

export type Ipv6Parse = Ipv6Header | 'malformed' | 'unsupportedExtension';

export function parseIpv6(p: Uint8Array): Ipv6Parse {
  if (p.length < IPV6_HEADER || p[0]! >> 4 !== 6) return 'malformed';
  const payloadLength = (p[4]! << 8) | p[5]!;
  const end = IPV6_HEADER + payloadLength;
  // A zero payload length means a jumbogram (RFC 2675), which no tunnel MTU allows.
  if (payloadLength === 0 && p[6] === HOP_BY_HOP) return 'unsupportedExtension';
  if (end > p.length) return 'malformed';
  let next = p[6]!;
  let off = IPV6_HEADER;
  let fragment: Ipv6Fragment | undefined;
  for (let hops = 0; ; hops++) {
    if (hops > 16) return 'unsupportedExtension';
    if (next === HOP_BY_HOP || next === DEST_OPTS || next === ROUTING) {
      if (next === HOP_BY_HOP && off !== IPV6_HEADER) return 'malformed';
      if (off + 8 > end) return 'malformed';
      const len = (p[off + 1]! + 1) * 8;
      if (off + len > end) return 'malformed';
      // A routing header still naming hops asks us to forward; we are a host, not a router.
      if (next === ROUTING && p[off + 3] !== 0) return 'unsupportedExtension';
      next = p[off]!;
      off += len;
    } else if (next === FRAGMENT) {
      if (fragment || off + IPV6_FRAGMENT_HEADER > end) return 'malformed';
      const field = (p[off + 2]! << 8) | p[off + 3]!;
      fragment = {
        offset: field & 0xfff8,
        moreFragments: (field & 1) !== 0,
        id: ((p[off + 4]! << 24) | (p[off + 5]! << 16) | (p[off + 6]! << 8) | p[off + 7]!) >>> 0,
      };
      next = p[off]!;
      off += IPV6_FRAGMENT_HEADER;
    } else {
      break;
    }
  }
  const header: Ipv6Header = { protocol: next, payloadOffset: off, end, src: p.subarray(8, 24), dst: p.subarray(24, 40) };
  return fragment ? { ...header, fragment } : header;
}

/** Writes the fixed 40-byte header at p[0..40). */
export function writeIpv6Header(p: Uint8Array, src: Uint8Array, dst: Uint8Array, nextHeader: number,
  payloadLength: number, hopLimit = 64): void {
  p[0] = 0x60; p[1] = 0; p[2] = 0; p[3] = 0;
  p[4] = payloadLength >> 8; p[5] = payloadLength & 0xff;
  p[6] = nextHeader; p[7] = hopLimit;
  p.set(src, 8); p.set(dst, 24);
}
