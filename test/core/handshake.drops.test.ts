/**
 * Why a handshake message with a valid mac1 is dropped, counted under the right reason: an
 * initiation from a key the responder does not know, one whose sealed parts do not open, and a
 * response that names our handshake but does not fit it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Simulation, packet } from '../support/pair.ts';
import { CookieGenerator } from '../../src/core/cookie.ts';
import { Initiation, MESSAGE_INITIATION, MESSAGE_RESPONSE, Response } from '../../src/core/messages.ts';

/** a → v; the first datagram of each type a sends to v is captured and not delivered. */
function setup(vKnowsA = true) {
  const sim = new Simulation();
  const v = sim.node('v', 71);
  const a = sim.node('a', 72);
  const va = vKnowsA ? v.addPeer(a) : 0;
  const av = a.addPeer(v);
  const captured: Uint8Array[] = [];
  const transmit = sim.transmit.bind(sim);
  sim.transmit = (from, to, d) => { captured.push(d.slice()); transmit(from, to, d); };
  return { sim, v, a, va, av, captured };
}

/** `msg` with byte `at` flipped and mac1 recomputed for `to`'s public key (mac2 zero). */
function tampered(sim: Simulation, to: Uint8Array, msg: Uint8Array, at: number): Uint8Array {
  const m = msg.slice();
  m[at]! ^= 1;
  new CookieGenerator(sim.crypto, to).addMacs(m, 0);
  return m;
}

describe('handshake drops by reason', () => {
  it('an initiation from a key the responder does not know: unknownPeer', () => {
    const { sim, v, a, av, captured } = setup(false);
    sim.cut.add('a>v');
    a.send(av, packet(1, 0));
    const init = captured.find((d) => d[0] === MESSAGE_INITIATION)!;
    assert.equal(v.endpoint.recv(sim.now, init, 'a'), 'dropped');
    assert.equal(v.endpoint.counters.dropped.unknownPeer, 1);
    assert.equal(v.endpoint.counters.dropped.handshakeDecrypt, 0);
  });

  it('an initiation whose static key or timestamp does not open: handshakeDecrypt', () => {
    const { sim, v, a, av, captured } = setup();
    sim.cut.add('a>v');
    a.send(av, packet(1, 0));
    const init = captured.find((d) => d[0] === MESSAGE_INITIATION)!;
    for (const at of [Initiation.encryptedStatic, Initiation.encryptedTimestamp, Initiation.mac1 - 1]) {
      assert.equal(v.endpoint.recv(sim.now, tampered(sim, v.publicKey, init, at), 'a'), 'dropped');
    }
    assert.equal(v.endpoint.counters.dropped.handshakeDecrypt, 3);
    assert.equal(v.endpoint.counters.dropped.unknownPeer, 0);
    assert.equal(v.endpoint.counters.dropped.mac1, 0, 'mac1 was valid each time');
    assert.equal(v.endpoint.recv(sim.now, init, 'a'), 'handshake', 'the genuine one still works');
  });

  it('a response that names our handshake but does not open: unexpectedResponse, and the handshake stays pending', () => {
    const { sim, v, a, av, captured } = setup();
    sim.cut.add('v>a');
    a.send(av, packet(1, 0));
    sim.run(20);
    const resp = captured.find((d) => d[0] === MESSAGE_RESPONSE)!;
    assert.equal(a.endpoint.recv(sim.now, tampered(sim, a.publicKey, resp, Response.encryptedNothing), 'v'), 'dropped');
    assert.equal(a.endpoint.counters.dropped.unexpectedResponse, 1);
    assert.equal(a.endpoint.inspectPeer(av).handshakeStage, 'initiationCreated');
    assert.equal(a.endpoint.recv(sim.now, resp, 'v'), 'handshake');
    assert.ok(a.endpoint.inspectPeer(av).current);
    void v;
  });
});
