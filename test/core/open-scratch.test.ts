/**
 * Transport messages are opened into the endpoint's own buffer, not in place: the datagram
 * (often a slot of a bind's shared receive ring) is left as it came. A delivery that makes the
 * endpoint receive again (a synchronous twin) must not see its packet overwritten.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EndpointIO } from '../../src/core/endpoint.ts';
import { packet, pair } from '../support/pair.ts';

/** A pair with a session, and `n` transport messages from a to b taken off the wire. */
function captured(n: number, size = 96) {
  const p = pair();
  p.a.send(p.aToB, packet(1, 0));
  p.sim.run(100);
  const wire: Uint8Array[] = [];
  const transmit = p.sim.transmit.bind(p.sim);
  p.sim.transmit = (from, to, d) => { if (from === 'a' && d[0] === 4) wire.push(d.slice()); else transmit(from, to, d); };
  for (let i = 0; i < n; i++) p.a.send(p.aToB, packet(5, i, size));
  return { ...p, wire };
}

const ioOf = (e: object) => (e as unknown as { io: EndpointIO<string> }).io;

describe('opening transport messages', () => {
  it('opens into a buffer of its own and leaves the datagram as it came', () => {
    const p = captured(1);
    const d = p.wire[0]!;
    const before = [...d];
    let view: Uint8Array | undefined;
    let seen: number[] = [];
    ioOf(p.b.endpoint).deliver = (_peer, packetView) => { view = packetView; seen = [...packetView.subarray(0, 96)]; };
    assert.equal(p.b.endpoint.recv(p.sim.now, d, 'a'), 'data');
    assert.ok(view);
    assert.notEqual(view.buffer, d.buffer, 'not opened in place');
    assert.deepEqual([...d], before, 'the datagram is unchanged');
    assert.deepEqual(seen, [...packet(5, 0, 96)]);
  });

  it('keeps a delivered packet intact while its delivery receives another', () => {
    const p = captured(2);
    const [d1, d2] = p.wire as [Uint8Array, Uint8Array];
    const got: number[][] = [];
    let nested = false;
    ioOf(p.b.endpoint).deliver = (_peer, view) => {
      if (!nested) {
        nested = true;
        const first = [...view.subarray(0, 96)];
        assert.equal(p.b.endpoint.recv(p.sim.now, d2, 'a'), 'data');
        assert.deepEqual([...view.subarray(0, 96)], first, 'the outer packet changed under its delivery');
      }
      got.push([...view.subarray(0, 96)]);
    };
    assert.equal(p.b.endpoint.recv(p.sim.now, d1, 'a'), 'data');
    assert.deepEqual(got, [[...packet(5, 1, 96)], [...packet(5, 0, 96)]]);
  });
});
