/**
 * MACs and cookies in isolation (whitepaper §5.4.4, §5.4.7): the responder's CookieChecker and
 * the initiator's CookieGenerator, with a virtual clock and a recording RNG so the cookie itself
 * can be recomputed from the secret.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CookieChecker, CookieGenerator } from '../../src/core/cookie.ts';
import { COOKIE_REFRESH_TIME, COOKIE_VALID_TIME, LABEL_COOKIE, LABEL_MAC1 } from '../../src/core/constants.ts';
import { CookieReply, Initiation, MAC_SIZE, MESSAGE_COOKIE_REPLY, Response } from '../../src/core/messages.ts';
import { readU32LE, utf8 } from '../../src/core/bytes.ts';
import type { Rng } from '../../src/core/rng.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto as crypto } from '../../src/crypto/node.ts';

/** A seeded RNG that keeps a reference to every buffer it filled (the secret, then nonces). */
function recordingRng(seed: number): Rng & { filled: Uint8Array[] } {
  const inner = seededRng(seed);
  const filled: Uint8Array[] = [];
  return { filled, fill: (out) => { inner.fill(out); filled.push(out); } };
}

function keyPair(seed: number) {
  const raw = new Uint8Array(32);
  seededRng(seed).fill(raw);
  return crypto.x25519PrivateKey(raw).publicKey;
}

/** A handshake message of `size` bytes with a recognisable body. */
function message(size: number, fill = 0x11): Uint8Array {
  const m = new Uint8Array(size).fill(fill);
  m[0] = 1;
  return m;
}

const TAG_A = Uint8Array.of(192, 0, 2, 1, 0xca, 0x6c);
const TAG_A_OTHER_PORT = Uint8Array.of(192, 0, 2, 1, 0xca, 0x6d);
const TAG_B = Uint8Array.of(192, 0, 2, 2, 0xca, 0x6c);

function setup(now = 1000) {
  const responder = keyPair(1);
  const rng = recordingRng(7);
  const checker = new CookieChecker(crypto, rng, responder);
  const generator = new CookieGenerator(crypto, responder);
  // The initiator's first message (no cookie yet), answered with a cookie reply for TAG_A.
  const first = message(Initiation.size);
  generator.addMacs(first, now);
  const reply = checker.createReply(first, 0x01020304, TAG_A, now);
  return { responder, rng, checker, generator, first, reply };
}

describe('mac1', () => {
  it('is MAC(HASH("mac1----" ‖ responder public key), message before mac1) and checked as such', () => {
    const { responder, checker, first } = setup();
    const at = first.length - 2 * MAC_SIZE;
    const expected = crypto.mac(crypto.hash([utf8(LABEL_MAC1), responder]), first.subarray(0, at));
    assert.deepEqual(first.subarray(at, at + MAC_SIZE), expected);
    assert.equal(checker.checkMac1(first), true);
    // Any changed byte before mac1, or in mac1, fails.
    for (const i of [0, 4, at - 1, at, at + MAC_SIZE - 1]) {
      const bad = first.slice();
      bad[i]! ^= 1;
      assert.equal(checker.checkMac1(bad), false, `byte ${i}`);
    }
    // mac2 is not covered by mac1.
    const other = first.slice();
    other[other.length - 1]! ^= 1;
    assert.equal(checker.checkMac1(other), true);
    // Another responder's key does not check.
    assert.equal(new CookieChecker(crypto, seededRng(1), keyPair(2)).checkMac1(first), false);
  });

  it('works for responses (92 bytes) as well as initiations', () => {
    const responder = keyPair(3);
    const msg = message(Response.size, 0x22);
    new CookieGenerator(crypto, responder).addMacs(msg, 0);
    assert.equal(new CookieChecker(crypto, seededRng(1), responder).checkMac1(msg), true);
  });
});

describe('cookie replies', () => {
  it('seal MAC(secret, source tag) under HASH("cookie--" ‖ responder key) with mac1 as associated data', () => {
    const { responder, rng, first, reply } = setup();
    const [secret, nonce] = rng.filled;
    assert.equal(secret!.length, 32);
    assert.equal(reply.length, CookieReply.size);
    assert.equal(reply[0], MESSAGE_COOKIE_REPLY);
    assert.deepEqual(reply.subarray(1, 4), new Uint8Array(3));
    assert.equal(readU32LE(reply, CookieReply.receiver), 0x01020304);
    assert.deepEqual(reply.subarray(CookieReply.nonce, CookieReply.nonce + 24), nonce);
    const at = first.length - 2 * MAC_SIZE;
    const opened = crypto.xopen(
      crypto.hash([utf8(LABEL_COOKIE), responder]), nonce!, reply.subarray(CookieReply.encryptedCookie), first.subarray(at, at + MAC_SIZE),
    );
    assert.deepEqual(opened, crypto.mac(secret!, TAG_A));
  });

  it('bind the cookie to the source address and port: mac2 from another source fails', () => {
    const { checker, generator, reply } = setup();
    assert.equal(generator.consumeReply(reply, 1000), true);
    const retry = message(Initiation.size, 0x33);
    generator.addMacs(retry, 1000);
    assert.notDeepEqual(retry.subarray(retry.length - MAC_SIZE), new Uint8Array(MAC_SIZE));
    assert.equal(checker.checkMac2(retry, TAG_A, 1000), true);
    assert.equal(checker.checkMac2(retry, TAG_B, 1000), false, 'another address');
    assert.equal(checker.checkMac2(retry, TAG_A_OTHER_PORT, 1000), false, 'another port');
    // A reply made for another source carries another cookie.
    const forB = new CookieGenerator(crypto, keyPair(1));
    const msgB = message(Initiation.size, 0x44);
    forB.addMacs(msgB, 1000);
    assert.equal(forB.consumeReply(checker.createReply(msgB, 9, TAG_B, 1000), 1000), true);
    const retryB = message(Initiation.size, 0x55);
    forB.addMacs(retryB, 1000);
    assert.equal(checker.checkMac2(retryB, TAG_B, 1000), true);
    assert.equal(checker.checkMac2(retryB, TAG_A, 1000), false);
  });

  it('mac2 covers the whole message before it, mac1 included', () => {
    const { checker, generator, reply } = setup();
    generator.consumeReply(reply, 1000);
    const retry = message(Initiation.size, 0x33);
    generator.addMacs(retry, 1000);
    for (const i of [0, 8, retry.length - 2 * MAC_SIZE, retry.length - MAC_SIZE - 1, retry.length - 1]) {
      const bad = retry.slice();
      bad[i]! ^= 0x80;
      assert.equal(checker.checkMac2(bad, TAG_A, 1000), false, `byte ${i}`);
    }
  });

  it('open only against the mac1 of our last message, and not before we sent one', () => {
    const { responder, checker, generator, reply } = setup();
    assert.equal(new CookieGenerator(crypto, responder).consumeReply(reply, 1000), false, 'nothing sent yet');
    // After a newer message the old reply's associated data no longer matches.
    generator.addMacs(message(Initiation.size, 0x66), 1000);
    assert.equal(generator.consumeReply(reply, 1000), false);
    const tampered = checker.createReply(message(Initiation.size, 0x66), 1, TAG_A, 1000);
    tampered[CookieReply.encryptedCookie]! ^= 1;
    generator.addMacs(message(Initiation.size, 0x66), 1000);
    assert.equal(generator.consumeReply(tampered, 1000), false, 'tampered ciphertext');
    // With no cookie taken, mac2 stays zero.
    const msg = message(Initiation.size, 0x77);
    generator.addMacs(msg, 1000);
    assert.deepEqual(msg.subarray(msg.length - MAC_SIZE), new Uint8Array(MAC_SIZE));
  });
});

describe('cookie lifetimes', () => {
  it('the initiator uses a cookie for COOKIE_VALID_TIME after receiving it, then sends zeros', () => {
    const { generator, reply } = setup(0);
    assert.equal(generator.consumeReply(reply, 500), true);
    const mac2 = (now: number) => {
      const m = message(Initiation.size, 0x33);
      generator.addMacs(m, now);
      return m.subarray(m.length - MAC_SIZE);
    };
    assert.notDeepEqual(mac2(500 + COOKIE_VALID_TIME - 1), new Uint8Array(MAC_SIZE));
    assert.deepEqual(mac2(500 + COOKIE_VALID_TIME), new Uint8Array(MAC_SIZE));
  });

  it('the responder accepts mac2 for COOKIE_REFRESH_TIME after making its secret, then makes a new one', () => {
    const { rng, checker, generator, reply } = setup(0);
    generator.consumeReply(reply, 0);
    const retry = message(Initiation.size, 0x33);
    generator.addMacs(retry, 0);
    assert.equal(checker.checkMac2(retry, TAG_A, COOKIE_REFRESH_TIME - 1), true);
    assert.equal(checker.checkMac2(retry, TAG_A, COOKIE_REFRESH_TIME), false, 'the secret expired');
    // Replies within the lifetime reuse the secret (one fill for the nonce only) …
    const fills = rng.filled.length;
    checker.createReply(retry, 1, TAG_A, COOKIE_REFRESH_TIME - 1);
    assert.equal(rng.filled.length, fills + 1);
    // … and the first reply after it draws a fresh secret, under which the old cookie fails.
    const first = message(Initiation.size, 0x12);
    generator.addMacs(first, COOKIE_REFRESH_TIME);
    const fresh = checker.createReply(first, 1, TAG_A, COOKIE_REFRESH_TIME);
    assert.equal(rng.filled.length, fills + 3);
    assert.equal(checker.checkMac2(retry, TAG_A, COOKIE_REFRESH_TIME), false);
    assert.equal(generator.consumeReply(fresh, COOKIE_REFRESH_TIME), true);
    const again = message(Initiation.size, 0x34);
    generator.addMacs(again, COOKIE_REFRESH_TIME);
    assert.equal(checker.checkMac2(again, TAG_A, COOKIE_REFRESH_TIME), true);
  });

  it('no mac2 checks before the first reply, and none after the local key changes', () => {
    const responder = keyPair(1);
    const checker = new CookieChecker(crypto, seededRng(1), responder);
    // A secret of zeros was never handed out: a mac2 made with it must not pass.
    const msg = message(Initiation.size);
    const at = msg.length - MAC_SIZE;
    msg.set(crypto.mac(crypto.mac(new Uint8Array(32), TAG_A), msg.subarray(0, at)), at);
    assert.equal(checker.checkMac2(msg, TAG_A, 0), false);
    const { checker: c2, generator, reply } = setup(0);
    generator.consumeReply(reply, 0);
    const retry = message(Initiation.size, 0x33);
    generator.addMacs(retry, 0);
    assert.equal(c2.checkMac2(retry, TAG_A, 10), true);
    c2.setPublicKey(keyPair(4));
    assert.equal(c2.checkMac2(retry, TAG_A, 10), false, 'secret dropped with the key');
    assert.equal(c2.checkMac1(retry), false, 'mac1 now for the new key');
  });

  it('clear() forgets the cookie and the last mac1', () => {
    const { generator, reply } = setup(0);
    generator.consumeReply(reply, 0);
    generator.clear();
    const msg = message(Initiation.size, 0x33);
    generator.addMacs(msg, 1);
    assert.deepEqual(msg.subarray(msg.length - MAC_SIZE), new Uint8Array(MAC_SIZE));
    const fresh = new CookieGenerator(crypto, keyPair(1));
    fresh.clear();
    assert.equal(fresh.consumeReply(reply, 1), false);
    // A reply to the message sent just before clear() is no longer taken.
    const { checker, generator: g2 } = setup(0);
    const sent = message(Initiation.size, 0x21);
    g2.addMacs(sent, 0);
    const late = checker.createReply(sent, 1, TAG_A, 0);
    g2.clear();
    assert.equal(g2.consumeReply(late, 0), false);
  });

  it('a generator that sent nothing takes no reply, even one sealed to an all-zero mac1', () => {
    // The associated data would be the zeros of an unset last mac1: refused before opening.
    const { checker } = setup(0);
    const zeroMac1 = message(Initiation.size, 0x31);
    zeroMac1.fill(0, zeroMac1.length - 2 * MAC_SIZE);
    const reply = checker.createReply(zeroMac1, 1, TAG_A, 0);
    assert.equal(new CookieGenerator(crypto, keyPair(1)).consumeReply(reply, 0), false);
  });
});
