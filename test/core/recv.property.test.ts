/**
 * Property-based tests (fast-check): whatever arrives from the network, `recv` never throws,
 * never disturbs an established session, and counts the datagram as dropped.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fcParams } from '../support/property.ts';
import { pair, packet, packetNumber } from '../support/pair.ts';
import { DROP_REASONS } from '../../src/core/endpoint.ts';
import type { Endpoint } from '../../src/core/endpoint.ts';
import { Initiation, Response, Transport } from '../../src/core/messages.ts';

function droppedTotal(e: Endpoint<string>): number {
  let n = 0;
  for (const r of DROP_REASONS) n += e.counters.dropped[r];
  return n;
}

/** An established pair plus one genuine datagram of each kind a→b, captured off the wire. */
function established() {
  const p = pair({ seed: 3 });
  const captured: Uint8Array[] = [];
  const transmit = p.sim.transmit.bind(p.sim);
  p.sim.transmit = (from, to, d) => { captured.push(d.slice()); transmit(from, to, d); };
  p.a.send(p.aToB, packet(1, 0));
  p.sim.run(50);
  p.b.send(p.bToA, packet(2, 0));
  p.sim.run(50);
  const [initiation, response, data] = captured;
  assert.equal(initiation!.length, Initiation.size);
  assert.equal(response!.length, Response.size);
  return { ...p, genuine: [initiation!, response!, data!] };
}

function sessionFingerprint(e: Endpoint<string>, id: number): string {
  const s = e.inspectPeer(id);
  return JSON.stringify([s.current?.localIndex, s.current?.remoteIndex, s.current?.created, s.previous?.localIndex, s.next?.localIndex]);
}

describe('recv with hostile input', () => {
  const ctx = established();
  const { sim, a, b, aToB, bToA } = ctx;
  const before = sessionFingerprint(b.endpoint, bToA);

  const check = (bytes: Uint8Array) => {
    const dropped = droppedTotal(b.endpoint);
    const delivered = b.delivered.length;
    let result: string;
    assert.doesNotThrow(() => { result = b.endpoint.recv(sim.now, bytes, 'mallory'); });
    assert.equal(result!, 'dropped');
    assert.equal(droppedTotal(b.endpoint), dropped + 1);
    assert.equal(b.delivered.length, delivered);
    assert.equal(sessionFingerprint(b.endpoint, bToA), before);
  };

  it('drops any byte string', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1600 }), (bytes) => check(bytes)), fcParams(3000));
  });

  it('drops well-framed messages of every type with random contents', () => {
    const framed = fc.oneof(
      fc.uint8Array({ minLength: Initiation.size, maxLength: Initiation.size }).map((b) => { b.set([1, 0, 0, 0]); return b; }),
      fc.uint8Array({ minLength: Response.size, maxLength: Response.size }).map((b) => { b.set([2, 0, 0, 0]); return b; }),
      fc.uint8Array({ minLength: 64, maxLength: 64 }).map((b) => { b.set([3, 0, 0, 0]); return b; }),
      fc.uint8Array({ minLength: Transport.minSize, maxLength: 1500 }).map((b) => { b.set([4, 0, 0, 0]); return b; }),
    );
    fc.assert(fc.property(framed, (bytes) => check(bytes)), fcParams(3000));
  });

  it('drops genuine datagrams with any bit flipped, and their replays', () => {
    const mutation = fc.record({
      which: fc.integer({ min: 0, max: 2 }),
      flips: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
    });
    fc.assert(fc.property(mutation, ({ which, flips }) => {
      const bytes = ctx.genuine[which]!.slice();
      for (const f of flips) bytes[Math.floor(f / 8) % bytes.length]! ^= 1 << (f % 8);
      if (bytes.every((x, i) => x === ctx.genuine[which]![i])) return; // flips cancelled out
      check(bytes);
    }), fcParams(3000));
    for (const g of ctx.genuine) check(g.slice());
  });

  it('still carries traffic both ways afterwards', () => {
    a.send(aToB, packet(1, 99));
    b.send(bToA, packet(2, 99));
    sim.run(50);
    assert.equal(packetNumber(b.delivered.at(-1)!.data), 99);
    assert.equal(packetNumber(a.delivered.at(-1)!.data), 99);
    assert.equal(sessionFingerprint(b.endpoint, bToA), before);
  });
});
