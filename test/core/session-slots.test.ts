/**
 * A peer keeps at most three sessions (current, previous, next). A session that leaves those
 * slots must stop working at once — its index freed and its keys erased — not linger until it
 * expires. Seen from the wire: a datagram for it is dropped as `unknownIndex`; while it is still
 * in a slot, a copy of a datagram it already accepted is dropped as `replay` instead.
 *
 * Rekeys are forced quickly (well inside REJECT_AFTER_TIME, so nothing expires) by holding back
 * transport messages: an initiator that sends data and hears nothing for KEEPALIVE_TIMEOUT +
 * REKEY_TIMEOUT starts a new handshake.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { packet, pair } from '../support/pair.ts';
import { readU32LE } from '../../src/core/bytes.ts';
import { MESSAGE_TRANSPORT, Transport } from '../../src/core/messages.ts';
import { REJECT_AFTER_TIME } from '../../src/core/constants.ts';

interface Datagram { from: string; to: string; d: Uint8Array }

/** Two nodes with a first session up (a initiated), every transport datagram recorded. */
function established() {
  const p = pair();
  const transmit = p.sim.transmit.bind(p.sim);
  /** Directions ('a>b', 'b>a') whose transport messages are held back instead of sent. */
  const blocked = new Set<string>();
  const delivered: Datagram[] = [];
  const held: Datagram[] = [];
  p.sim.transmit = (from, to, d) => {
    if (d[0] === MESSAGE_TRANSPORT) {
      const copy = { from, to, d: d.slice() };
      if (blocked.has(`${from}>${to}`)) { held.push(copy); return; }
      delivered.push(copy);
    }
    transmit(from, to, d);
  };
  p.a.send(p.aToB, packet(1, 0));
  p.sim.run(100);
  p.b.send(p.bToA, packet(2, 0));
  p.sim.run(100);
  const first = {
    a: p.a.endpoint.inspectPeer(p.aToB).current!.localIndex,
    b: p.b.endpoint.inspectPeer(p.bToA).current!.localIndex,
  };
  return { ...p, blocked, delivered, held, first };
}

const receiver = (d: Uint8Array) => readU32LE(d, Transport.receiver);

/** Feeds `d` to `node` again; returns the reason it was dropped ('' if it was accepted). */
function refeed(node: ReturnType<typeof pair>['a'], from: string, d: Uint8Array): string {
  const dropped = node.endpoint.counters.dropped;
  const before = { ...dropped };
  const result = node.endpoint.recv(node.sim.now, d, from);
  if (result !== 'dropped') return result;
  return Object.keys(dropped).find((k) => dropped[k as keyof typeof dropped] !== before[k as keyof typeof before]) ?? '?';
}

/** Runs with `sender` sending a packet every second until `done()`; at most two virtual minutes. */
function until(p: ReturnType<typeof established>, senders: ('a' | 'b')[], done: () => boolean): void {
  const start = p.sim.now;
  for (let i = 0; !done(); i++) {
    assert.ok(p.sim.now - start < 120_000, 'the rekey came in time');
    for (const s of senders) {
      if (s === 'a') p.a.send(p.aToB, packet(1, 100 + i)); else p.b.send(p.bToA, packet(2, 100 + i));
    }
    p.sim.run(1000);
  }
  assert.ok(p.sim.now - start < REJECT_AFTER_TIME, 'nothing expired on its own');
}

const initiated = (n: ReturnType<typeof pair>['a']) => n.eventsOf('handshakeCompleted').filter((e) => 'initiator' in e && e.initiator).length;

describe('sessions that leave the slots stop working at once', () => {
  it('two rekeys later, the first session is gone on both sides', () => {
    const p = established();
    const fromB = p.delivered.find((x) => x.from === 'b' && receiver(x.d) === p.first.a)!;
    const fromA = p.delivered.find((x) => x.from === 'a' && receiver(x.d) === p.first.b)!;
    assert.ok(fromB && fromA, 'one datagram each way on the first session');
    // While the first session is still in a slot, its datagrams come back as replays.
    assert.equal(refeed(p.a, 'b', fromB.d), 'replay');
    // b's answers are held back: a gives up waiting and rekeys, twice (b confirms each).
    p.blocked.add('b>a');
    until(p, ['a'], () => initiated(p.a) >= 3);
    const a = p.a.endpoint.inspectPeer(p.aToB), b = p.b.endpoint.inspectPeer(p.bToA);
    assert.ok(a.current && a.previous && b.current && b.previous, 'two sessions each');
    assert.ok(![a.current.localIndex, a.previous.localIndex].includes(p.first.a));
    assert.ok(![b.current.localIndex, b.previous.localIndex].includes(p.first.b));
    assert.equal(refeed(p.a, 'b', fromB.d), 'unknownIndex', 'initiator: the session two rekeys old');
    assert.equal(refeed(p.b, 'a', fromA.d), 'unknownIndex', 'responder: the session two rekeys old');
  });

  it('an unconfirmed next session replaced by a newer handshake is gone', () => {
    const p = established();
    // Nothing gets through but handshakes: b never sees data on its next session.
    p.blocked.add('a>b').add('b>a');
    let nextIndex = -1;
    until(p, ['a'], () => {
      const next = p.b.endpoint.inspectPeer(p.bToA).next;
      if (nextIndex === -1 && next) nextIndex = next.localIndex;
      return nextIndex !== -1 && next !== null && next.localIndex !== nextIndex;
    });
    const forOld = p.held.find((x) => x.to === 'b' && receiver(x.d) === nextIndex);
    assert.ok(forOld, 'a sent data on the session b then had as next');
    assert.equal(refeed(p.b, 'a', forOld.d), 'unknownIndex');
    // The session b has not replaced still works.
    const forNew = p.held.findLast((x) => x.to === 'b');
    assert.match(refeed(p.b, 'a', forNew!.d), /^(data|keepalive)$/);
  });

  it('crossing rekeys: the initiator drops its old current session when its own handshake completes', () => {
    const p = established();
    const fromB = p.delivered.find((x) => x.from === 'b' && receiver(x.d) === p.first.a)!;
    const fromA = p.delivered.find((x) => x.from === 'a' && receiver(x.d) === p.first.b)!;
    // Both send and hear nothing: both rekey at the same moment, the initiations cross.
    p.blocked.add('a>b').add('b>a');
    until(p, ['a', 'b'], () => initiated(p.a) >= 2 && initiated(p.b) >= 1);
    assert.equal(refeed(p.a, 'b', fromB.d), 'unknownIndex');
    assert.equal(refeed(p.b, 'a', fromA.d), 'unknownIndex');
  });
});
