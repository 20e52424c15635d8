/**
 * Sticky source addresses (IP_PKTINFO / IPV6_PKTINFO): each received datagram tells the local
 * address it arrived on, and a reply carries that address in a control message so it leaves
 * from where the peer sent to (as wireguard-go's StdNetBind on Linux). Layouts (LP64):
 *   struct in_pktinfo   (12): int ipi_ifindex @0, u8 ipi_spec_dst[4] @4, u8 ipi_addr[4] @8
 *                             (CMSG_LEN 28, CMSG_SPACE 32)
 *   struct in6_pktinfo  (20): u8 ipi6_addr[16] @0, unsigned ipi6_ifindex @16 (CMSG_LEN 36, CMSG_SPACE 40)
 */
import { tryParseIp } from '../../core/ip-address.ts';
import type { BindEndpoint } from '../bind.ts';
import { CMSG_HDR, cmsgSpace, IPPROTO_IP, IPPROTO_IPV6 } from './socket-abi.ts';

/** IPPROTO_IP: ask for (setsockopt) and send (cmsg) struct in_pktinfo. */
export const IP_PKTINFO = 8;
/** IPPROTO_IPV6: ask for struct in6_pktinfo on received datagrams. */
export const IPV6_RECVPKTINFO = 49;
/** IPPROTO_IPV6: the cmsg type of struct in6_pktinfo. */
export const IPV6_PKTINFO = 50;

/** Source address bytes and interface index for sends to an endpoint with a local address. */
export interface SourceInfo {
  bytes: Uint8Array;
  ifindex: number;
}

/**
 * The source to send to `e` from: its local address, and for IPv6 link-local the zone's index
 * ("fe80::1%3"); null when there is none to use (no local address, or not one of e's family).
 */
export function sourceInfo(e: BindEndpoint): SourceInfo | null {
  const local = e.localAddress;
  if (local === undefined) return null;
  const pct = local.indexOf('%');
  const bytes = tryParseIp(pct < 0 ? local : local.slice(0, pct));
  if (bytes === null || bytes.length !== (e.family === 4 ? 4 : 16)) return null;
  const ifindex = pct < 0 ? 0 : Number(local.slice(pct + 1)) >>> 0;
  return { bytes, ifindex };
}

/**
 * Writes the PKTINFO control message that makes `source` the datagram's source address at
 * byte `at` of a control buffer (`b`, and `w` over the same bytes); returns its CMSG_SPACE.
 */
export function writePktinfo(b: Uint8Array, w: Int32Array, at: number, family: 4 | 6, source: SourceInfo): number {
  const i = at >> 2;
  w[i + 1] = 0; // cmsg_len's high word
  if (family === 4) {
    w[i] = CMSG_HDR + 12; // cmsg_len
    w[i + 2] = IPPROTO_IP; w[i + 3] = IP_PKTINFO;
    w[i + 4] = 0; // ipi_ifindex: let the route choose
    b.set(source.bytes, at + 20); // ipi_spec_dst: the source
    w[i + 6] = 0; w[i + 7] = 0; // ipi_addr (ignored on send)
    return cmsgSpace(12);
  }
  w[i] = CMSG_HDR + 20;
  w[i + 2] = IPPROTO_IPV6; w[i + 3] = IPV6_PKTINFO;
  b.set(source.bytes, at + 16); // ipi6_addr: the source
  w[i + 8] = source.ifindex; // ipi6_ifindex (0 but for link-local)
  w[i + 9] = 0;
  return cmsgSpace(20);
}
