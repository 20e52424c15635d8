/**
 * The few IP header facts the device's data path needs, read straight from a packet buffer:
 * the version, the length the header declares (to trim WireGuard's zero padding after
 * decryption) and where the addresses are (for cryptokey routing). No allocation, no throwing:
 * a malformed packet gives 0 / -1 / false and the caller drops it.
 *
 * Checks are those wireguard-go makes before routing (device/receive.go), plus the IPv4 IHL:
 * no header checksum, options or extension headers are examined; that is the receiving
 * stack's job.
 */

export const IPV4_HEADER_LENGTH = 20;
export const IPV6_HEADER_LENGTH = 40;
const IPV4_SOURCE_OFFSET = 12;
const IPV4_DESTINATION_OFFSET = 16;
const IPV6_SOURCE_OFFSET = 8;
const IPV6_DESTINATION_OFFSET = 24;

/** 4 or 6 from the first nibble; 0 for an empty buffer or any other version. */
export function ipVersion(p: Uint8Array): 0 | 4 | 6 {
  if (p.length === 0) return 0;
  const v = p[0]! >> 4;
  return v === 4 ? 4 : v === 6 ? 6 : 0;
}

/**
 * The packet's length according to its header: IPv4 total length, or 40 + payload length for
 * IPv6. 0 when the packet is malformed: unknown version, shorter than the fixed header, an
 * IPv4 IHL below 5 or a total length shorter than the IHL says, or a declared length larger
 * than the buffer. `p.subarray(0, ipPacketLength(p))` drops trailing padding.
 */
export function ipPacketLength(p: Uint8Array): number {
  const n = p.length;
  if (n === 0) return 0;
  const v = p[0]! >> 4;
  if (v === 4) {
    if (n < IPV4_HEADER_LENGTH) return 0;
    const ihl = (p[0]! & 0x0f) << 2;
    const total = (p[2]! << 8) | p[3]!;
    if (ihl < IPV4_HEADER_LENGTH || total < ihl || total > n) return 0;
    return total;
  }
  if (v === 6) {
    if (n < IPV6_HEADER_LENGTH) return 0;
    const total = IPV6_HEADER_LENGTH + ((p[4]! << 8) | p[5]!);
    return total > n ? 0 : total;
  }
  return 0;
}

/** True when `ipPacketLength` accepts the packet (so the address offsets are in bounds). */
export function isValidIpHeader(p: Uint8Array): boolean {
  return ipPacketLength(p) !== 0;
}

/**
 * Offset of the source address: 12 (IPv4, 4 bytes) or 8 (IPv6, 16 bytes); -1 for another
 * version. Only the version is looked at: check `isValidIpHeader` first.
 */
export function sourceAddressOffset(p: Uint8Array): number {
  const v = ipVersion(p);
  return v === 4 ? IPV4_SOURCE_OFFSET : v === 6 ? IPV6_SOURCE_OFFSET : -1;
}

/**
 * Offset of the destination address: 16 (IPv4) or 24 (IPv6); -1 for another version. Only the
 * version is looked at: check `isValidIpHeader` first.
 */
export function destinationAddressOffset(p: Uint8Array): number {
  const v = ipVersion(p);
  return v === 4 ? IPV4_DESTINATION_OFFSET : v === 6 ? IPV6_DESTINATION_OFFSET : -1;
}
