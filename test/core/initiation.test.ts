/**
 * When the endpoint cannot make an initiation at all it sends nothing and does not throw: with
 * no private key yet, and towards a peer whose public key is a low-order point (every
 * Diffie-Hellman with it is all zeros, so no handshake with it can be authenticated).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Simulation, packet, packetNumber } from '../support/pair.ts';
import { REKEY_ATTEMPT_TIME } from '../../src/core/constants.ts';

describe('no initiation when none can be made', () => {
  it('towards a low-order public key: nothing is sent, ever', () => {
    const sim = new Simulation();
    const a = sim.node('a', 1);
    const id = a.endpoint.addPeer({ publicKey: new Uint8Array(32) }, 0);
    assert.equal(a.endpoint.send(0, id, packet(1, 0)), 'queued');
    sim.run(REKEY_ATTEMPT_TIME + 10_000);
    assert.equal(a.sent.length, 0);
    assert.equal(a.endpoint.counters.handshakeInitiationsSent, 0);
  });

  it('without a private key: nothing is sent until one is set, then the handshake runs', () => {
    const sim = new Simulation();
    const a = sim.node('a', 1, { privateKey: null });
    const b = sim.node('b', 2);
    const key = new Uint8Array(32).fill(7);
    const aToB = a.endpoint.addPeer({ publicKey: b.publicKey }, 0);
    a.peerNames.set(aToB, 'b');
    assert.equal(a.endpoint.send(0, aToB, packet(1, 0)), 'queued');
    sim.run(10_000);
    assert.equal(a.sent.length, 0);
    a.endpoint.setPrivateKey(key);
    b.peerNames.set(b.endpoint.addPeer({ publicKey: a.endpoint.publicKey! }, sim.now), 'a');
    a.endpoint.send(sim.now, aToB, packet(1, 1));
    sim.run(1000);
    assert.equal(a.endpoint.counters.handshakeInitiationsSent, 1);
    assert.deepEqual(b.delivered.map((d) => packetNumber(d.data)), [0, 1], 'the waiting packet too');
  });
});
