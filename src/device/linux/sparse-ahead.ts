/**
 * Sparse flows first, as fq_codel serves them: when the TUN ring holds a backlog (a bulk TCP
 * stream's TSO super-packets), a small packet of another flow — a ping, a DNS query, another
 * connection's ACK — is handed out before the packets ahead of it instead of waiting its turn
 * (bench/README.md, "Latency"). Order within a flow never changes: a small packet whose flow
 * has an earlier packet still waiting stays in place. Flows are told apart by a hash of the
 * addresses, protocol and ports; a collision only keeps a packet in order.
 */

/** A handed-out slot's length in the ring: the in-order pass skips it. */
export const HANDED_OUT = -1;

/** The ring's layout, as the scan reads it. */
export interface SparseRing {
  /** One int32 length per slot (the packet's length, header included). */
  readonly lens: Int32Array;
  /** The whole shared buffer. */
  readonly bytes: Uint8Array;
  readonly dataOffset: number;
  readonly slotSize: number;
  readonly mask: number;
  /** Bytes before the IP header in a slot (the virtio_net_hdr, or 0). */
  readonly headerLength: number;
}

/** Items looked at per scan, and the largest packet (IP bytes) that counts as sparse. */
export const SCAN_ITEMS = 64;
export const SPARSE_BYTES = 256;

/**
 * A 32-bit hash of an IP packet's flow: version, protocol, addresses and, for TCP and UDP, the
 * ports. 0 for what is not IPv4 or IPv6 or is too short to read.
 */
export function flowKey(b: Uint8Array, at: number, len: number): number {
  if (len < 20) return 0;
  const version = b[at]! >> 4;
  let h = 0x811c9dc5;
  let proto: number;
  let addrAt: number;
  let addrLen: number;
  let l4: number;
  if (version === 4) {
    proto = b[at + 9]!;
    addrAt = at + 12;
    addrLen = 8;
    l4 = (b[at]! & 15) * 4;
    // Every fragment of a datagram is one flow (a later one has no ports): MF or an offset.
    if ((b[at + 6]! & 0x3f) !== 0 || b[at + 7] !== 0) l4 = -1;
  } else if (version === 6) {
    if (len < 40) return 0;
    proto = b[at + 6]!;
    addrAt = at + 8;
    addrLen = 32;
    l4 = 40;
  } else {
    return 0;
  }
  h = Math.imul(h ^ (version << 8 | proto), 0x01000193);
  for (let i = 0; i < addrLen; i++) h = Math.imul(h ^ b[addrAt + i]!, 0x01000193);
  if ((proto === 6 || proto === 17) && l4 >= 0 && l4 + 4 <= len) {
    for (let i = 0; i < 4; i++) h = Math.imul(h ^ b[at + l4 + i]!, 0x01000193);
  }
  return h | 1; // never 0
}

/**
 * Looks at up to SCAN_ITEMS items of [tail, head) and calls `handOut(slot)` for each small one
 * whose flow has no earlier item still waiting, marking its length HANDED_OUT. Returns how many
 * were handed out. The pending flows are kept in `seen`, a scratch array of SCAN_ITEMS keys.
 */
export function handOutSparse(ring: SparseRing, tail: number, head: number, seen: Int32Array, handOut: (slot: number) => void): number {
  const { lens, bytes, dataOffset, slotSize, mask, headerLength } = ring;
  const end = ((head - tail) | 0) > SCAN_ITEMS ? (tail + SCAN_ITEMS) | 0 : head;
  let pending = 0;
  let handed = 0;
  for (let i = tail; i !== end; i = (i + 1) | 0) {
    const slot = i & mask;
    const len = lens[slot]!;
    const ipLen = len - headerLength;
    if (ipLen <= 0) continue; // handed out already (HANDED_OUT), or malformed: the in-order pass counts it
    const key = flowKey(bytes, dataOffset + slot * slotSize + headerLength, ipLen);
    let waiting = key === 0;
    for (let j = 0; j < pending && !waiting; j++) waiting = seen[j] === key;
    if (!waiting && ipLen <= SPARSE_BYTES && i !== tail) {
      handOut(slot);
      lens[slot] = HANDED_OUT;
      handed++;
    } else if (key !== 0 && pending < seen.length) {
      seen[pending++] = key;
    }
  }
  return handed;
}
