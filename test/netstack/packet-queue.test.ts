/**
 * The netstack TUN's queue of packet copies (src/netstack/packet-queue.ts): FIFO, copies, bound,
 * reused slots, and no memory pinned by a past burst.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { KEEP_SLOTS, PacketQueue } from '../../src/netstack/packet-queue.ts';

const packet = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);

describe('PacketQueue', () => {
  it('hands packets out in order, as copies taken at push', () => {
    const q = new PacketQueue(8);
    const buf = packet(100, 1);
    assert.equal(q.push(buf), true);
    buf.fill(2); // the caller reuses its buffer at once
    assert.equal(q.push(buf.subarray(0, 60)), true);
    assert.equal(q.length, 2);
    assert.deepEqual(q.front(), packet(100, 1));
    q.shift();
    assert.deepEqual(q.front(), packet(60, 2));
    q.shift();
    assert.equal(q.front(), undefined);
    assert.equal(q.length, 0);
  });

  it('refuses a packet when full and copies nothing', () => {
    const q = new PacketQueue(3);
    for (let i = 0; i < 3; i++) assert.equal(q.push(packet(10, i)), true);
    assert.equal(q.push(packet(10, 9)), false);
    for (let i = 0; i < 3; i++) { assert.deepEqual(q.front(), packet(10, i)); q.shift(); }
  });

  it('wraps around the slots and holds packets larger than a slot', () => {
    const q = new PacketQueue(4);
    let next = 0;
    let expect = 0;
    for (let round = 0; round < 50; round++) {
      // Keep 1-3 packets queued so head and tail go round the ring.
      while (q.length < 3) assert.equal(q.push(packet(round % 7 === 0 ? 9000 : 40 + (next % 50), next++ & 0xff)), true);
      const p = q.front()!;
      assert.equal(p[0], expect++ & 0xff);
      q.shift();
    }
    assert.ok(q.allocatedSlots <= 4);
  });

  it('starts again at slot 0 when empty: a shallow queue touches few slots', () => {
    const q = new PacketQueue(4096);
    for (let i = 0; i < 10_000; i++) {
      q.push(packet(1400, i & 0xff));
      q.push(packet(60, 0));
      q.shift();
      q.shift();
    }
    assert.equal(q.allocatedSlots, 2);
  });

  it('lets go of the slots a burst took beyond KEEP_SLOTS once it has drained', () => {
    const q = new PacketQueue(4096);
    for (let i = 0; i < 4096; i++) q.push(packet(1400, 1));
    assert.equal(q.allocatedSlots, 4096);
    while (q.length > 0) q.shift();
    assert.equal(q.allocatedSlots, KEEP_SLOTS);
    q.push(packet(10, 1));
    q.clear();
    assert.equal(q.allocatedSlots, 0);
    assert.equal(q.front(), undefined);
  });
});
