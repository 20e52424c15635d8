/**
 * The internet checksum (RFC 1071) and the pseudo-headers TCP, UDP and ICMPv6 add to it
 * (RFC 9293 §3.1, RFC 768, RFC 8200 §8.1). Sums are kept unfolded in a double (safe far past a
 * 64 KiB datagram) and folded once at the end.
 */

/** Adds the big-endian 16-bit words of b[start..end) to `acc`; an odd last byte is padded with zero. */
export function sum16(b: Uint8Array, start: number, end: number, acc = 0): number {
  let i = start;
  if (end - start >= 64) {
    // 32-bit big-endian words: the one's-complement sum of 16-bit words folds out of them the
    // same (RFC 1071 §2 B, "parallel summation"), at half the loads. A double holds the total.
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (; i + 3 < end; i += 4) acc += v.getUint32(i);
  }
  for (; i + 1 < end; i += 2) acc += (b[i]! << 8) | b[i + 1]!;
  if (i < end) acc += b[i]! << 8;
  return acc;
}

/** Folds carries back in: the one's-complement sum as 16 bits. */
export function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc % 0x10000) + Math.floor(acc / 0x10000);
  return acc;
}

/** The checksum field value for a sum taken with the field zeroed. */
export function finish(acc: number): number {
  return ~fold(acc) & 0xffff;
}

/** A sum that includes its checksum field verifies when it folds to all ones. */
export function verifies(acc: number): boolean {
  return fold(acc) === 0xffff;
}

/** The pseudo-header sum: both addresses, the protocol and the upper-layer length (v4 16-bit, v6 32-bit). */
export function pseudoHeaderSum(src: Uint8Array, dst: Uint8Array, protocol: number, length: number): number {
  let acc = sum16(src, 0, src.length);
  acc = sum16(dst, 0, dst.length, acc);
  // 16 bits of length fit both layouts when length < 65536; the v6 jumbo high half is added too.
  return acc + protocol + (length & 0xffff) + Math.floor(length / 0x10000);
}
