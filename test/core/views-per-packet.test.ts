/**
 * The data path makes no new view per packet where the window recurs: sealing into the send
 * scratch, opening into the receive scratch and delivering from it reuse their views (a view is
 * an allocation: ~25 ns, and work for the GC). What is left is one view a received datagram, its
 * ciphertext, whose place in a receive ring varies.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EndpointIO } from '../../src/core/endpoint.ts';
import { sodiumCrypto } from '../../src/crypto/sodium.ts';
import { packet, pair } from '../support/pair.ts';

const typedArrayProto = Object.getPrototypeOf(Uint8Array.prototype) as { subarray: (this: Uint8Array, start?: number, end?: number) => Uint8Array };

/** How many views (subarray calls) `run` makes. */
function viewsMadeBy(run: () => void): number {
  const original = typedArrayProto.subarray;
  let n = 0;
  typedArrayProto.subarray = function (this: Uint8Array, start?: number, end?: number) { n++; return original.call(this, start, end); };
  try { run(); } finally { typedArrayProto.subarray = original; }
  return n;
}

const ioOf = (e: object) => (e as unknown as { io: EndpointIO<string> }).io;

describe('views per packet on the data path (sodium)', () => {
  it('sealing full-size packets makes none; opening and delivering make one a datagram', () => {
    assert.ok(sodiumCrypto, 'sodium-native is a dependency and loads');
    const p = pair({ crypto: sodiumCrypto });
    p.a.send(p.aToB, packet(1, 0));
    p.sim.run(100);
    const wire: Uint8Array[] = [];
    const transmit = p.sim.transmit.bind(p.sim);
    p.sim.transmit = (from, to, d) => { if (from === 'a' && d[0] === 4) wire.push(d.slice()); else transmit(from, to, d); };
    const N = 200;
    // 1424 bytes: a multiple of 16, so nothing is padded (the common full-size case).
    const packets = Array.from({ length: N + 10 }, (_, i) => packet(5, i, 1424));
    for (let i = 0; i < 10; i++) p.a.send(p.aToB, packets[i]!); // warm: the views are made once
    const sent = viewsMadeBy(() => { for (let i = 10; i < N + 10; i++) p.a.send(p.aToB, packets[i]!); });
    assert.equal(wire.length, N + 10);
    assert.ok(sent <= 2, `${sent} views made sealing ${N} packets`);

    let delivered = 0;
    ioOf(p.b.endpoint).deliver = (_peer, view) => { if (view.length === 1424) delivered++; };
    for (let i = 0; i < 10; i++) p.b.endpoint.recv(p.sim.now, wire[i]!, 'a');
    const received = viewsMadeBy(() => { for (let i = 10; i < N + 10; i++) p.b.endpoint.recv(p.sim.now, wire[i]!, 'a'); });
    assert.equal(delivered, N + 10);
    assert.ok(received <= N + 2, `${received} views made opening ${N} datagrams (one each expected: the ciphertext)`);
  });
});
