/**
 * The Internet checksum (RFC 1071) and the pseudo-header sum TCP, UDP and ICMPv6 add to it
 * (RFC 9293 §3.1, RFC 768, RFC 8200 §8.1), for every layer that checks or writes one (the TUN
 * offloads, the userspace TCP/IP stack, the demo). Sums are kept unfolded in a double (safe far
 * past a 64 KiB datagram) and folded once at the end.
 */

/** Every platform wireweave runs on is little-endian; the fast path below checks anyway. */
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;
/**
 * Buffers at least this large (a TUN or UDP ring, a packet pool) get one Uint32Array view, made
 * once: packets come from them again and again. Smaller ones are mostly one packet's own buffer,
 * where making and remembering a view per packet cost more than it saves (a third more time a
 * sum, measured on 1420-byte packets in fresh buffers).
 */
const VIEW_MIN_BYTES = 65536;
const words32 = new WeakMap<ArrayBufferLike, Uint32Array>();

function words32Of(buffer: ArrayBufferLike): Uint32Array {
  let w = words32.get(buffer);
  if (!w) {
    w = new Uint32Array(buffer, 0, buffer.byteLength >>> 2);
    words32.set(buffer, w);
  }
  return w;
}

/**
 * Adds the big-endian 16-bit words of b[start, end) to `acc`, unfolded; an odd last byte is
 * padded with zero. Long spans are summed as 32-bit words, half or a quarter of the loads: the
 * ones'-complement sum folds out of wider words the same (RFC 1071 §2 B). In a large buffer,
 * even-aligned spans are read as aligned native (little-endian) words, and summing in the other
 * byte order gives the byte-swapped result (§2 A); elsewhere as big-endian words (a DataView).
 */
export function sum16(b: Uint8Array, start: number, end: number, acc = 0): number {
  let i = start;
  if (end - i >= 64) {
    const at = b.byteOffset + i;
    if (LITTLE_ENDIAN && (at & 1) === 0 && b.buffer.byteLength >= VIEW_MIN_BYTES) {
      if ((at & 2) !== 0) { acc += (b[i]! << 8) | b[i + 1]!; i += 2; }
      const n = (end - i) >>> 2;
      acc += sumNative32(words32Of(b.buffer), (b.byteOffset + i) >>> 2, n);
      i += n * 4;
    } else {
      const n = (end - i) >>> 2;
      acc += sumBigEndian32(dataViewOf(b.buffer), b.byteOffset + i, n);
      i += n * 4;
    }
  }
  for (; i + 3 < end; i += 4) acc += ((b[i]! << 8) | b[i + 1]!) + ((b[i + 2]! << 8) | b[i + 3]!);
  for (; i + 1 < end; i += 2) acc += (b[i]! << 8) | b[i + 1]!;
  if (i < end) acc += b[i]! << 8;
  return acc;
}

/** The 16-bit ones'-complement sum, in network byte order, of `n` native little-endian words from `first`. */
function sumNative32(w: Uint32Array, first: number, n: number): number {
  let le = 0;
  for (let k = first; k < first + n; k++) le += w[k]!;
  le = fold(le);
  return ((le & 0xff) << 8) | (le >>> 8);
}

/** The unfolded sum of `n` big-endian 32-bit words from byte `first`. */
function sumBigEndian32(v: DataView, first: number, n: number): number {
  let acc = 0;
  for (let k = first; k < first + 4 * n; k += 4) acc += v.getUint32(k);
  return acc;
}

// The DataView of the last buffer summed through one: packets are mostly opened into one
// scratch buffer, again and again, and a view a packet is an allocation a packet.
let lastBuffer: ArrayBufferLike | null = null;
let lastView: DataView | null = null;

function dataViewOf(buffer: ArrayBufferLike): DataView {
  if (buffer !== lastBuffer || lastView === null) {
    lastView = new DataView(buffer);
    lastBuffer = buffer;
  }
  return lastView;
}

/** Folds carries back in: the ones'-complement sum as 16 bits. */
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
