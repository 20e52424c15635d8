/**
 * Sparse flows first in the TUN ring (src/device/linux/sparse-ahead.ts): a small packet of a
 * flow with nothing waiting ahead of it is handed out before a bulk backlog; nothing is ever
 * reordered inside a flow.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { flowKey, handOutSparse, HANDED_OUT, SCAN_ITEMS, SPARSE_BYTES } from '../../../src/device/linux/sparse-ahead.ts';
import type { SparseRing } from '../../../src/device/linux/sparse-ahead.ts';

const SLOT = 2048;
const HDR = 10;

/** An IPv4 packet of `len` bytes: protocol, addresses and ports as given. */
function ipv4(len: number, proto: number, src: number, dst: number, sport = 0, dport = 0): Uint8Array {
  const p = new Uint8Array(len);
  p[0] = 0x45;
  p[9] = proto;
  new DataView(p.buffer).setUint32(12, src);
  new DataView(p.buffer).setUint32(16, dst);
  if (proto === 6 || proto === 17) { new DataView(p.buffer).setUint16(20, sport); new DataView(p.buffer).setUint16(22, dport); }
  return p;
}

function ipv6(len: number, proto: number, srcLast: number, sport = 0, dport = 0): Uint8Array {
  const p = new Uint8Array(len);
  p[0] = 0x60;
  p[6] = proto;
  p[8] = 0xfd;
  p[23] = srcLast;
  p[24] = 0xfd;
  p[39] = 2;
  if (proto === 6 || proto === 17) { new DataView(p.buffer).setUint16(40, sport); new DataView(p.buffer).setUint16(42, dport); }
  return p;
}

const A = 0x0a000001;
const B = 0x0a000002;
/** The bulk stream's segments (A:5201 → B:40000), a big TSO read (trimmed to the slot). */
const bulk = (): Uint8Array => ipv4(1500, 6, A, B, 5201, 40000);
const ackOfBulk = (): Uint8Array => ipv4(52, 6, A, B, 5201, 40000);
const ping = (): Uint8Array => ipv4(84, 1, A, B);
const dns = (): Uint8Array => ipv4(70, 17, A, B, 53000, 53);

/** A ring of `packets` (each after a virtio_net_hdr) starting at `tail`; returns the handed-out order. */
function run(packets: Uint8Array[], tail = 0, slots = 128): { handed: number[]; lens: Int32Array } {
  const sab = new SharedArrayBuffer(slots * SLOT);
  const lens = new Int32Array(slots);
  const bytes = new Uint8Array(sab);
  const ring: SparseRing = { lens, bytes, dataOffset: 0, slotSize: SLOT, mask: slots - 1, headerLength: HDR };
  packets.forEach((p, i) => {
    const slot = (tail + i) & (slots - 1);
    bytes.set(p, slot * SLOT + HDR);
    lens[slot] = HDR + p.length;
  });
  const handed: number[] = [];
  const n = handOutSparse(ring, tail, (tail + packets.length) | 0, new Int32Array(SCAN_ITEMS), (slot) => {
    assert.notEqual(lens[slot], HANDED_OUT, 'handed out once');
    handed.push(((slot - tail) & (slots - 1)));
  });
  assert.equal(n, handed.length);
  // A second look at the same ring (the next turn) hands out nothing again.
  assert.equal(handOutSparse(ring, tail, (tail + packets.length) | 0, new Int32Array(SCAN_ITEMS), () => assert.fail('handed out twice')), 0);
  return { handed, lens };
}

describe('sparse flows ahead of a backlog', () => {
  it('a ping, a DNS query and another connection\'s ACK go ahead of the bulk stream', () => {
    const other = ipv4(52, 6, A, B, 22, 51000);
    const { handed, lens } = run([bulk(), bulk(), ping(), bulk(), dns(), bulk(), other]);
    assert.deepEqual(handed, [2, 4, 6]);
    for (const i of [2, 4, 6]) assert.equal(lens[i], HANDED_OUT);
    for (const i of [0, 1, 3, 5]) assert.notEqual(lens[i], HANDED_OUT);
  });

  it('never reorders inside a flow: the bulk stream\'s own ACK or small segment stays behind it', () => {
    const { handed } = run([bulk(), ackOfBulk(), bulk(), ipv4(200, 6, A, B, 5201, 40000)]);
    assert.deepEqual(handed, []);
  });

  it('a second packet of a sparse flow follows the first one in order', () => {
    // Both pings go ahead (the first is not waiting once handed out); then a big ICMP packet
    // of the same flow stays, and the ping after it stays too.
    const bigIcmp = ipv4(1400, 1, A, B);
    const { handed } = run([bulk(), ping(), ping(), bigIcmp, ping()]);
    assert.deepEqual(handed, [1, 2]);
  });

  it('leaves the item at the tail and large packets of other flows to the in-order pass', () => {
    assert.deepEqual(run([ping(), bulk()]).handed, []);
    const bigOther = ipv4(SPARSE_BYTES + 1, 17, A, B, 1, 2);
    const justSmall = ipv4(SPARSE_BYTES, 17, A, B, 3, 4);
    assert.deepEqual(run([bulk(), bigOther, justSmall]).handed, [2]);
  });

  it('tells flows apart by ports and addresses, IPv6 too', () => {
    assert.deepEqual(run([bulk(), ipv4(52, 6, A, B, 5201, 40001)]).handed, [1]);
    assert.deepEqual(run([bulk(), ipv4(52, 6, B, A, 40000, 5201)]).handed, [1]); // the reverse direction is its own flow
    const v6bulk = ipv6(1500, 6, 1, 443, 50000);
    assert.deepEqual(run([v6bulk, ipv6(60, 6, 1, 443, 50000), ipv6(60, 6, 1, 443, 50001), ipv6(100, 58, 1)]).handed, [2, 3]);
  });

  it('looks at no more than SCAN_ITEMS items and skips what was handed out already', () => {
    const packets = [...Array.from({ length: SCAN_ITEMS }, bulk), ping()];
    assert.deepEqual(run(packets).handed, []);
    const again = run([bulk(), ping(), bulk(), dns()]);
    assert.deepEqual(again.handed, [1, 3]);
  });

  it('keeps unreadable packets (not IP, truncated) and what follows them of no known flow in order', () => {
    const junk = new Uint8Array(40).fill(0xff);
    const { handed } = run([bulk(), junk, new Uint8Array(10), ping()]);
    assert.deepEqual(handed, [3]);
    assert.equal(flowKey(junk, 0, junk.length), 0);
    assert.equal(flowKey(new Uint8Array(10), 0, 10), 0);
  });

  it('works across the wrap of the ring counters and slots', () => {
    const { handed } = run([bulk(), bulk(), ping(), dns()], 0x7fff_fffe, 4);
    assert.deepEqual(handed, [2, 3]);
  });

  it('puts every fragment of a datagram in one flow (a later one has no ports)', () => {
    const first = ipv4(100, 17, A, B, 1, 2);
    first[6] = 0x20; // MF, offset 0: the ports are there, but the later fragments have none
    const later = ipv4(100, 17, A, B, 9, 9);
    later[7] = 185;
    assert.equal(flowKey(first, 0, 100), flowKey(later, 0, 100));
  });

  it('ignores the ports of a later IPv4 fragment (it has none)', () => {
    const frag = ipv4(100, 17, A, B, 1, 2);
    frag[7] = 185; // fragment offset 185 × 8: bytes 20.. are payload, not ports
    const frag2 = ipv4(100, 17, A, B, 9, 9);
    frag2[7] = 185;
    assert.equal(flowKey(frag, 0, 100), flowKey(frag2, 0, 100));
    assert.notEqual(flowKey(ipv4(100, 17, A, B, 1, 2), 0, 100), flowKey(ipv4(100, 17, A, B, 9, 9), 0, 100));
  });
});
