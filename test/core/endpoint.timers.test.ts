/**
 * Endpoint timers and bookkeeping beyond the main scenarios: exact counters and byte counts of
 * one exchange, a second keepalive for data received while one was pending, sessions that expire
 * from the previous and next slots, and the zeroing deadline after a failed handshake.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { packet, pair } from '../support/pair.ts';
import {
  KEEPALIVE_TIMEOUT, REJECT_AFTER_TIME, REKEY_ATTEMPT_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX, ZERO_KEY_MATERIAL_AFTER,
} from '../../src/core/constants.ts';
import { MESSAGE_INITIATION, MESSAGE_TRANSPORT } from '../../src/core/messages.ts';

describe('endpoint bookkeeping', () => {
  it('counts the handshake, data and keepalives of one exchange exactly, on both sides', () => {
    const { sim, a, b, aToB, bToA } = pair();
    a.send(aToB, packet(1, 0)); // 64 bytes: 96 on the wire
    sim.run(50);
    b.send(bToA, packet(2, 0, 10)); // 10 bytes padded to 16: 48 on the wire
    sim.run(KEEPALIVE_TIMEOUT + 100); // a answers b's data with a keepalive (32)
    const ca = a.endpoint.counters, cb = b.endpoint.counters;
    assert.deepEqual(
      [ca.handshakeInitiationsSent, ca.handshakeResponsesSent, ca.handshakesCompleted, ca.dataPacketsSent, ca.dataPacketsReceived,
        ca.keepalivesSent, ca.keepalivesReceived, ca.datagramsReceived],
      [1, 0, 1, 1, 1, 1, 0, 2],
    );
    assert.deepEqual(
      [cb.handshakeInitiationsSent, cb.handshakeResponsesSent, cb.handshakesCompleted, cb.dataPacketsSent, cb.dataPacketsReceived,
        cb.keepalivesSent, cb.keepalivesReceived, cb.datagramsReceived],
      [0, 1, 1, 1, 1, 0, 1, 3],
    );
    assert.equal(a.endpoint.peerStats(aToB).txBytes, 148 + 96 + 32);
    assert.equal(a.endpoint.peerStats(aToB).rxBytes, 92 + 48);
    assert.equal(b.endpoint.peerStats(bToA).txBytes, 92 + 48);
    assert.equal(b.endpoint.peerStats(bToA).rxBytes, 148 + 96 + 32);
    assert.ok(b.endpoint.peerStats(bToA).lastHandshakeWall >= 1_700_000_000_000);
    assert.equal(Object.values(ca.dropped).reduce((x, y) => x + y) + Object.values(cb.dropped).reduce((x, y) => x + y), 0);
  });

  it('data received while a keepalive is pending earns a second keepalive one timeout later', () => {
    const { sim, a, b, aToB } = pair();
    a.send(aToB, packet(1, 0));
    sim.run(50);
    const first = b.delivered[0]!.at;
    sim.run(1000);
    a.send(aToB, packet(1, 1)); // b has a keepalive pending: it owes another one
    sim.run(3 * KEEPALIVE_TIMEOUT);
    const keepalives = b.sentOfType(MESSAGE_TRANSPORT).filter((s) => s.length === 32).map((s) => s.at);
    assert.deepEqual(keepalives, [first + KEEPALIVE_TIMEOUT, first + 2 * KEEPALIVE_TIMEOUT]);
  });

  it('one packet received and not answered earns exactly one keepalive', () => {
    const { sim, a, b, aToB } = pair();
    a.send(aToB, packet(1, 0));
    sim.run(4 * KEEPALIVE_TIMEOUT);
    assert.equal(b.sentOfType(MESSAGE_TRANSPORT).filter((s) => s.length === 32).length, 1);
  });
});

describe('session slots expire on their own', () => {
  it('the next slot: a handshake b answered but a never confirmed is gone after REJECT_AFTER_TIME', () => {
    const { sim, a, b, aToB, bToA } = pair();
    const toB: Uint8Array[] = [];
    const transmit = sim.transmit.bind(sim);
    sim.transmit = (from, to, d) => { if (to === 'b') toB.push(d.slice()); transmit(from, to, d); };
    sim.cut.add('a>b');
    a.endpoint.initiateHandshake(sim.now, aToB);
    b.endpoint.recv(sim.now, toB[0]!.slice(), 'a'); // b answers; the answer reaches a, a's keepalive is cut
    sim.run(50);
    const made = sim.now - 50;
    assert.ok(b.endpoint.inspectPeer(bToA).next, 'b holds an unconfirmed session');
    assert.equal(b.endpoint.liveIndexes, 1);
    sim.runUntil(made + REJECT_AFTER_TIME - 1);
    assert.ok(b.endpoint.inspectPeer(bToA).next, 'still there just before');
    sim.runUntil(made + REJECT_AFTER_TIME + 1);
    assert.equal(b.endpoint.inspectPeer(bToA).next, null);
    assert.equal(b.endpoint.liveIndexes, 0, 'its index is free');
    assert.equal(b.eventsOf('sessionExpired').length, 0, 'only the current session reports expiry');
  });

  it('the previous slot: the session before a rekey is gone REJECT_AFTER_TIME after it was made', () => {
    const { sim, a, b, aToB } = pair();
    a.send(aToB, packet(1, 0));
    sim.run(50);
    const first = a.endpoint.inspectPeer(aToB).current!;
    sim.run(REKEY_TIMEOUT);
    a.endpoint.initiateHandshake(sim.now, aToB);
    sim.run(50);
    assert.equal(a.endpoint.inspectPeer(aToB).previous!.localIndex, first.localIndex);
    assert.equal(a.endpoint.liveIndexes, 2);
    sim.runUntil(first.created + REJECT_AFTER_TIME - 1);
    assert.ok(a.endpoint.inspectPeer(aToB).previous);
    sim.runUntil(first.created + REJECT_AFTER_TIME);
    assert.equal(a.endpoint.inspectPeer(aToB).previous, null);
    assert.equal(a.endpoint.liveIndexes, 1);
    assert.ok(a.endpoint.inspectPeer(aToB).current, 'the newer session stays');
    void b;
  });
});

describe('zeroing after a failed handshake', () => {
  it('keeps the zeroing deadline a session armed; arms one only when none is armed', () => {
    const { sim, a, aToB } = pair();
    a.send(aToB, packet(1, 0));
    sim.run(50);
    const zeroAt = a.endpoint.inspectPeer(aToB).timers.zeroKeyMaterial;
    sim.runUntil(zeroAt - REKEY_ATTEMPT_TIME - 4 * REKEY_TIMEOUT);
    sim.cut.add('a>b');
    a.send(aToB, packet(1, 1));
    sim.run(REKEY_ATTEMPT_TIME + 2 * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX));
    const failed = a.eventsOf('handshakeFailed');
    assert.equal(failed.length, 1);
    assert.ok(failed[0]!.at < zeroAt);
    assert.equal(a.endpoint.inspectPeer(aToB).timers.zeroKeyMaterial, zeroAt, 'unchanged by giving up');
    sim.runUntil(zeroAt);
    assert.deepEqual(a.eventsOf('keysZeroed').map((e) => e.at), [zeroAt]);
    // Giving up again with nothing armed arms it ZERO_KEY_MATERIAL_AFTER later.
    a.send(aToB, packet(1, 2));
    sim.run(REKEY_ATTEMPT_TIME + 2 * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX));
    const again = a.eventsOf('handshakeFailed')[1]!;
    assert.equal(a.endpoint.inspectPeer(aToB).timers.zeroKeyMaterial, again.at + ZERO_KEY_MATERIAL_AFTER);
  });
});

describe('initiations that wait for the rate limit', () => {
  it('data queued while initiations are rate-limited goes out in one REKEY_TIMEOUT after the last', () => {
    const { sim, a, b, aToB, bToA } = pair();
    sim.cut.add('a>b');
    const toB: Uint8Array[] = [];
    const transmit = sim.transmit.bind(sim);
    sim.transmit = (from, to, d) => { if (to === 'b') toB.push(d.slice()); transmit(from, to, d); };
    a.endpoint.initiateHandshake(sim.now, aToB);
    const respondedAt = sim.now;
    b.endpoint.recv(sim.now, toB[0]!.slice(), 'a'); // b responds (its last handshake message)
    sim.run(100); // a's confirming keepalive is cut: b has no current session
    assert.equal(b.endpoint.send(sim.now, bToA, packet(2, 0)), 'queued');
    assert.equal(b.sentOfType(MESSAGE_INITIATION).length, 0, 'rate-limited');
    assert.equal(b.endpoint.inspectPeer(bToA).timers.retransmitHandshake, respondedAt + REKEY_TIMEOUT);
    sim.cut.delete('a>b');
    sim.run(REKEY_TIMEOUT);
    assert.deepEqual(b.sentOfType(MESSAGE_INITIATION).map((s) => s.at), [respondedAt + REKEY_TIMEOUT]);
    assert.equal(a.delivered.length, 1, 'and the packet arrived');
  });

  it('new data during retries starts the attempt count again (as wireguard-go)', () => {
    const { sim, a, aToB } = pair();
    sim.cut.add('a>b');
    a.send(aToB, packet(1, 0));
    sim.run(3 * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX));
    assert.equal(a.endpoint.inspectPeer(aToB).handshakeAttempts, 3);
    a.send(aToB, packet(1, 1));
    assert.equal(a.endpoint.inspectPeer(aToB).handshakeAttempts, 0);
  });
});
