/** What the IP layer hands to ICMP, UDP and TCP, and what they need from it to send. */
import type { Counters } from './counters.ts';
import type { ResolvedConfig } from './config.ts';

export type Family = 4 | 6;

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;

/** One received datagram (reassembled if it came in fragments). Views are valid during the call. */
export interface IpInput {
  readonly family: Family;
  readonly src: Uint8Array;
  readonly dst: Uint8Array;
  /** Canonical text forms (formatIp), which are also the keys of every table. */
  readonly srcText: string;
  readonly dstText: string;
  readonly protocol: number;
  /** The upper-layer bytes. */
  readonly payload: Uint8Array;
  /** The IP header and what follows, for quoting in ICMP errors. */
  readonly packet: Uint8Array;
}

/** Fills the upper-layer bytes at buf[off..off+length) with the checksum field left zero. */
export type Fill = (buf: Uint8Array, off: number) => void;

/** The stack as its protocols see it. */
export interface StackHost {
  readonly config: ResolvedConfig;
  readonly counters: Counters;
  /**
   * Builds and outputs one datagram: `fill` writes the upper layer, then the host writes its
   * checksum at `checksumAt` (relative to the upper layer; pseudo-header unless ICMPv4; −1 for
   * none) and the IP header. Datagrams over the MTU are fragmented if `fragment`, else dropped.
   */
  sendIp(family: Family, src: Uint8Array, dst: Uint8Array, protocol: number, length: number, fill: Fill,
    checksumAt: number, fragment?: boolean): boolean;
  /** Our address of this family to send from (the first configured), or null. */
  sourceFor(family: Family): Uint8Array | null;
  /** Is this (canonical text) one of our addresses? */
  isLocal(text: string): boolean;
}
