/** A transport session (src/core/session.ts): lifetime, send counter, erasure. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Session } from '../../src/core/session.ts';
import { REJECT_AFTER_MESSAGES_HI, REJECT_AFTER_MESSAGES_LO, REJECT_AFTER_TIME } from '../../src/core/constants.ts';
import { nodeCrypto as crypto } from '../../src/crypto/node.ts';

function session(created = 1000) {
  const send = new Uint8Array(32).fill(1), receive = new Uint8Array(32).fill(2);
  return { s: new Session(crypto, 11, 22, true, created, send, receive), send, receive };
}

describe('Session', () => {
  it('keeps what it was made with', () => {
    const { s } = session();
    assert.deepEqual([s.localIndex, s.remoteIndex, s.isInitiator, s.created], [11, 22, true, 1000]);
    assert.equal(s.expiresAt, 1000 + REJECT_AFTER_TIME);
  });

  it('receives and sends until REJECT_AFTER_TIME after it was made, not at that instant', () => {
    const { s } = session();
    assert.equal(s.canReceive(1000 + REJECT_AFTER_TIME - 1), true);
    assert.equal(s.canSend(1000 + REJECT_AFTER_TIME - 1), true);
    assert.equal(s.canReceive(1000 + REJECT_AFTER_TIME), false);
    assert.equal(s.canSend(1000 + REJECT_AFTER_TIME), false);
  });

  it('counts sends as 64 bits: the low half carries into the high half', () => {
    const { s } = session();
    s.nextCounter();
    assert.deepEqual([s.sendLo, s.sendHi], [1, 0]);
    s.sendLo = 0xffff_fffe;
    s.nextCounter();
    assert.deepEqual([s.sendLo, s.sendHi], [0xffff_ffff, 0]);
    s.nextCounter();
    assert.deepEqual([s.sendLo, s.sendHi], [0, 1]);
  });

  it("a low half at or past the limit's low half is fine while the high half is below its limit", () => {
    const { s } = session();
    s.sendHi = REJECT_AFTER_MESSAGES_HI - 1;
    s.sendLo = 0xffff_ffff;
    assert.equal(s.canSend(1000), true);
    s.sendHi = 0;
    s.sendLo = REJECT_AFTER_MESSAGES_LO;
    assert.equal(s.canSend(1000), true);
  });

  it('stops sending at REJECT_AFTER_MESSAGES but still receives', () => {
    const { s } = session();
    s.sendHi = REJECT_AFTER_MESSAGES_HI;
    s.sendLo = REJECT_AFTER_MESSAGES_LO - 1;
    assert.equal(s.canSend(1000), true, 'the last usable counter');
    s.nextCounter();
    assert.equal(s.canSend(1000), false);
    assert.equal(s.canReceive(1000), true);
  });

  it('erase zeroes the raw keys, forgets the replay window and refuses everything after', () => {
    const { s, send, receive } = session();
    assert.equal(s.replay.check(5, 0), true);
    s.replay.mark(5, 0);
    assert.equal(s.replay.check(5, 0), false, 'counter 5 seen');
    assert.equal(s.isErased, false);
    s.erase();
    assert.equal(s.isErased, true);
    assert.ok(send.every((v) => v === 0) && receive.every((v) => v === 0), 'raw keys zeroed');
    assert.equal(s.canReceive(1000), false);
    assert.equal(s.canSend(1000), false);
    assert.equal(s.replay.check(5, 0), true, 'window reset');
  });
});
