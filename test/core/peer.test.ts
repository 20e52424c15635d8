/** Per-peer state (src/core/peer.ts): the earliest deadline, and what clearing a handshake forgets. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Handshake, Peer } from '../../src/core/peer.ts';
import { Session } from '../../src/core/session.ts';
import { REJECT_AFTER_TIME } from '../../src/core/constants.ts';
import { nodeCrypto as crypto } from '../../src/crypto/node.ts';

function session(created: number): Session {
  return new Session(crypto, 1, 2, true, created, new Uint8Array(32), new Uint8Array(32));
}

function peer(): Peer {
  return new Peer(1, crypto, new Uint8Array(32).fill(9), '09'.repeat(32));
}

describe('Peer', () => {
  it('starts with nothing scheduled and empty statistics', () => {
    const p = peer();
    assert.equal(p.nextDeadline(), Infinity);
    assert.deepEqual(p.stats, { rxBytes: 0, txBytes: 0, lastHandshakeWall: 0, queueDrops: 0 });
    assert.equal(p.handshake.stage, 'zeroed');
    assert.equal(p.handshake.lastInitiationConsumed, -Infinity, 'a first initiation is never a flood');
    assert.equal(p.handshake.lastSentHandshake, -Infinity, 'a first initiation is never rate-limited');
  });

  it('nextDeadline is the earliest timer', () => {
    const timers = ['retransmitHandshakeAt', 'sendKeepaliveAt', 'newHandshakeAt', 'zeroKeyMaterialAt', 'persistentKeepaliveAt'] as const;
    for (const name of timers) {
      const p = peer();
      for (const other of timers) p[other] = 5000;
      p[name] = 4000;
      assert.equal(p.nextDeadline(), 4000, name);
    }
  });

  it('nextDeadline includes the expiry of each live session slot, not of an erased one', () => {
    for (const slot of ['current', 'previous', 'next'] as const) {
      const p = peer();
      p.retransmitHandshakeAt = REJECT_AFTER_TIME + 500;
      p.current = session(300);
      p.previous = session(200);
      p.next = session(400);
      p[slot] = session(100);
      assert.equal(p.nextDeadline(), 100 + REJECT_AFTER_TIME, `${slot} expires first`);
      p[slot]!.erase();
      const others = { current: 300, previous: 200, next: 400 };
      const expected = Math.min(...Object.entries(others).filter(([k]) => k !== slot).map(([, v]) => v)) + REJECT_AFTER_TIME;
      assert.equal(p.nextDeadline(), expected, `${slot} erased: ignored`);
      // A timer earlier than every session wins.
      p.sendKeepaliveAt = 50;
      assert.equal(p.nextDeadline(), 50);
    }
  });
});

describe('Handshake.clear', () => {
  it('zeroes and drops every secret and index, but keeps the replay and flood state', () => {
    const hs = new Handshake();
    const chainKey = new Uint8Array(32).fill(1), hash = new Uint8Array(32).fill(2);
    const ephRaw = new Uint8Array(32).fill(3), remoteEph = new Uint8Array(32).fill(4);
    Object.assign(hs, {
      stage: 'initiationCreated', localIndex: 5, remoteIndex: 6, chainKey, hash,
      localEphemeral: crypto.x25519PrivateKey(ephRaw.slice()), localEphemeralRaw: ephRaw, remoteEphemeral: remoteEph,
      lastInitiationConsumed: 77, lastSentHandshake: 88,
    });
    hs.lastTimestamp.fill(9);
    hs.clear();
    for (const b of [chainKey, hash, ephRaw, remoteEph]) assert.ok(b.every((v) => v === 0));
    assert.deepEqual(
      [hs.stage, hs.localIndex, hs.remoteIndex, hs.chainKey, hs.hash, hs.localEphemeral, hs.localEphemeralRaw, hs.remoteEphemeral],
      ['zeroed', 0, 0, null, null, null, null, null],
    );
    assert.ok(hs.lastTimestamp.every((v) => v === 9), 'old initiations stay replays');
    assert.deepEqual([hs.lastInitiationConsumed, hs.lastSentHandshake], [77, 88]);
  });
});
