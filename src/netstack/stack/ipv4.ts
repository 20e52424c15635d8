/**
 * IPv4 headers (RFC 791): a view over the packet after one length check, and a builder.
 * Options are skipped (their length is in IHL); nothing here allocates except `slice` callers.
 */
import { finish, sum16, verifies } from '../../core/checksum.ts';

export const IPV4_HEADER = 20;
export const IPV4_MF = 0x2000;
export const IPV4_DF = 0x4000;

export interface Ipv4Header {
  readonly headerLength: number;
  readonly totalLength: number;
  readonly id: number;
  /** Fragment offset in bytes. */
  readonly fragmentOffset: number;
  readonly moreFragments: boolean;
  readonly protocol: number;
  readonly src: Uint8Array;
  readonly dst: Uint8Array;
}

export type Ipv4Parse = Ipv4Header | 'malformed' | 'checksum';

/** Parses the header; `src`/`dst` are views into `p`. */
export function parseIpv4(p: Uint8Array): Ipv4Parse {
  if (p.length < IPV4_HEADER || p[0]! >> 4 !== 4) return 'malformed';
  const headerLength = (p[0]! & 0x0f) * 4;
  const totalLength = (p[2]! << 8) | p[3]!;
  if (headerLength < IPV4_HEADER || totalLength < headerLength || totalLength > p.length) return 'malformed';
  if (!verifies(sum16(p, 0, headerLength))) return 'checksum';
  const flags = (p[6]! << 8) | p[7]!;
  return {
    headerLength,
    totalLength,
    id: (p[4]! << 8) | p[5]!,
    fragmentOffset: (flags & 0x1fff) * 8,
    moreFragments: (flags & IPV4_MF) !== 0,
    protocol: p[9]!,
    src: p.subarray(12, 16),
    dst: p.subarray(16, 20),
  };
}

/** Writes a 20-byte header at p[0..20) with its checksum. `flags` carries DF/MF and the offset field. */
export function writeIpv4Header(p: Uint8Array, src: Uint8Array, dst: Uint8Array, protocol: number,
  totalLength: number, id: number, flags: number, ttl = 64): void {
  p[0] = 0x45; p[1] = 0;
  p[2] = totalLength >> 8; p[3] = totalLength & 0xff;
  p[4] = (id >> 8) & 0xff; p[5] = id & 0xff;
  p[6] = flags >> 8; p[7] = flags & 0xff;
  p[8] = ttl; p[9] = protocol;
  p[10] = 0; p[11] = 0;
  p.set(src, 12); p.set(dst, 16);
  const c = finish(sum16(p, 0, IPV4_HEADER));
  p[10] = c >> 8; p[11] = c & 0xff;
}
