/**
 * EndpointIO.sendBuffer: a transport message is sealed straight into the view the I/O offers
 * and sent as that view, byte for byte what the endpoint seals in its own scratch; a view of
 * the wrong size is not used. Full-size packets (nothing to pad) are sealed from the caller's
 * packet itself, which must not change the bytes either.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EndpointIO } from '../../src/core/endpoint.ts';
import { establishedPair, packet } from '../support/pair.ts';

const established = establishedPair;

const ioOf = (e: object) => (e as unknown as { io: EndpointIO<string> }).io;
const SIZES = [64, 100, 1424, 8, 48, 1400];

describe('EndpointIO.sendBuffer', () => {
  it('seals into the offered view, sends that view, and puts the same bytes on the wire', () => {
    const plain = established();
    for (const [i, size] of SIZES.entries()) plain.a.send(plain.aToB, packet(2, i, size));

    const direct = established();
    const arena = new Uint8Array(8192);
    const offered: Uint8Array[] = [];
    const sentViews: Uint8Array[] = [];
    const io = ioOf(direct.a.endpoint);
    io.sendBuffer = (_peer, length) => {
      const v = arena.subarray(100, 100 + length);
      offered.push(v);
      return v;
    };
    const sendToPeer = io.sendToPeer;
    io.sendToPeer = (peer, d) => { sentViews.push(d); sendToPeer(peer, d); };
    for (const [i, size] of SIZES.entries()) direct.a.send(direct.aToB, packet(2, i, size));

    assert.equal(offered.length, SIZES.length, 'asked once per transport message');
    for (const [i, v] of sentViews.entries()) {
      assert.equal(v.buffer, arena.buffer, `message ${i} was sent from the offered buffer`);
      assert.equal(v.byteOffset, 100);
      assert.equal(v.length, offered[i]!.length);
    }
    assert.deepEqual(direct.wire.map((d) => [...d]), plain.wire.map((d) => [...d]), 'the same datagrams');
    direct.sim.run(100);
    assert.deepEqual(direct.b.delivered.map((d, i) => [...d.data.subarray(0, SIZES[i])]),
      SIZES.map((size, i) => [...packet(2, i, size)]), 'b opens every one');
  });

  it('does not use a view of the wrong size', () => {
    const plain = established();
    plain.a.send(plain.aToB, packet(3, 0, 64));
    const p = established();
    const wrong = new Uint8Array(200);
    ioOf(p.a.endpoint).sendBuffer = () => wrong;
    p.a.send(p.aToB, packet(3, 0, 64));
    assert.ok(wrong.every((b) => b === 0), 'the wrong view was left alone');
    assert.deepEqual([...p.wire[0]!], [...plain.wire[0]!]);
  });

  it('leaves the caller\'s full-size packet as it was', () => {
    const p = established();
    const pk = packet(4, 0, 1424);
    const before = [...pk];
    p.a.send(p.aToB, pk);
    assert.deepEqual([...pk], before);
  });
});
