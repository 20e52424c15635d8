/**
 * Automatic under-load mode at its thresholds (1000 mac1-valid handshake messages within a
 * one-second window engage it for UNDER_LOAD_AFTER_TIME), forcing it, and the retry jitter
 * over more draws than one refill of the endpoint's jitter pool.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Simulation, packet } from '../support/pair.ts';
import { MESSAGE_RESPONSE, Response, writeType } from '../../src/core/messages.ts';
import { CookieGenerator } from '../../src/core/cookie.ts';
import {
  COOKIE_REFRESH_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX, UNDER_LOAD_AFTER_TIME, UNDER_LOAD_HANDSHAKES_PER_SECOND,
} from '../../src/core/constants.ts';
import { seededRng } from '../../src/core/rng.ts';

/**
 * A victim v, and a response message with a valid mac1 for v naming no handshake of v's: it
 * counts towards the handshake rate and is then dropped cheaply (no Diffie-Hellman).
 */
function setup() {
  const sim = new Simulation();
  const v = sim.node('v', 41, { rateLimit: false });
  const msg = new Uint8Array(Response.size);
  writeType(msg, MESSAGE_RESPONSE);
  new CookieGenerator(sim.crypto, v.publicKey).addMacs(msg, 0);
  return { sim, v, msg };
}

const N = UNDER_LOAD_HANDSHAKES_PER_SECOND;

describe('under-load mode', () => {
  it('engages at the 1000th handshake message within a second, for UNDER_LOAD_AFTER_TIME', () => {
    const { v, msg } = setup();
    const t0 = 1000;
    for (let i = 0; i < N - 1; i++) v.endpoint.recv(t0 + i / 2, msg.slice(), 'x');
    assert.equal(v.endpoint.isUnderLoad(t0 + 600), false, '999 messages: not yet');
    assert.equal(v.eventsOf('underLoad').length, 0);
    assert.equal(v.endpoint.counters.cookieRepliesSent, 0);
    v.endpoint.recv(t0 + 600, msg.slice(), 'x');
    assert.deepEqual(v.eventsOf('underLoad').map((e) => e.type === 'underLoad' && e.active), [true], 'the 1000th engages it');
    assert.equal(v.endpoint.counters.cookieRepliesSent, 1, 'and is answered with a cookie reply');
    assert.equal(v.endpoint.isUnderLoad(t0 + 600 + UNDER_LOAD_AFTER_TIME - 1), true);
    assert.equal(v.endpoint.isUnderLoad(t0 + 600 + UNDER_LOAD_AFTER_TIME), false);
    // The end is announced by the next tick, once.
    v.endpoint.tick(t0 + 600 + UNDER_LOAD_AFTER_TIME - 1);
    assert.equal(v.eventsOf('underLoad').length, 1);
    v.endpoint.tick(t0 + 600 + UNDER_LOAD_AFTER_TIME);
    v.endpoint.tick(t0 + 600 + UNDER_LOAD_AFTER_TIME + 1);
    assert.deepEqual(v.eventsOf('underLoad').map((e) => e.type === 'underLoad' && e.active), [true, false]);
  });

  it('counts per window: a message 1000 ms after the window began starts a new one', () => {
    const { v, msg } = setup();
    const t0 = 1000;
    for (let i = 0; i < N - 1; i++) v.endpoint.recv(t0 + i / 2, msg.slice(), 'x');
    v.endpoint.recv(t0 + 1000, msg.slice(), 'x');
    assert.equal(v.endpoint.isUnderLoad(t0 + 1000), false, 'the 1000th message is the first of a new window');
    for (let i = 1; i < N - 1; i++) v.endpoint.recv(t0 + 1000 + i / 2, msg.slice(), 'x');
    assert.equal(v.endpoint.isUnderLoad(t0 + 1999), false, '999 in the new window');
    assert.equal(v.eventsOf('underLoad').length, 0);
  });

  it('forced off, a flood gets no cookie replies; forced on, the first message does; auto again follows the rate', () => {
    const { v, msg } = setup();
    v.endpoint.setUnderLoad(false);
    for (let i = 0; i < N + 10; i++) v.endpoint.recv(1000 + i / 4, msg.slice(), 'x');
    assert.equal(v.endpoint.isUnderLoad(1500), false);
    assert.equal(v.endpoint.counters.cookieRepliesSent, 0);
    assert.equal(v.endpoint.counters.dropped.unexpectedResponse, N + 10, 'all reached the handshake code');
    v.endpoint.setUnderLoad(true);
    assert.equal(v.endpoint.isUnderLoad(1_000_000), true);
    v.endpoint.recv(1_000_000, msg.slice(), 'x');
    assert.equal(v.endpoint.counters.cookieRepliesSent, 1);
    v.endpoint.setUnderLoad('auto');
    assert.equal(v.endpoint.isUnderLoad(1_000_000), false);
  });
});

describe('the cookie secret', () => {
  it('is a deadline: drawn for the first cookie reply, zeroed by the tick COOKIE_REFRESH_TIME later', () => {
    const { v, msg } = setup();
    v.endpoint.setUnderLoad(true);
    assert.equal(v.endpoint.nextDeadline(), Infinity, 'no secret yet, no peers');
    v.endpoint.recv(5000, msg.slice(), 'x');
    assert.equal(v.endpoint.counters.cookieRepliesSent, 1);
    assert.equal(v.endpoint.nextDeadline(), 5000 + COOKIE_REFRESH_TIME);
    v.endpoint.tick(5000 + COOKIE_REFRESH_TIME - 1);
    assert.equal(v.endpoint.nextDeadline(), 5000 + COOKIE_REFRESH_TIME);
    v.endpoint.tick(5000 + COOKIE_REFRESH_TIME);
    assert.equal(v.endpoint.nextDeadline(), Infinity);
  });
});

describe('retry jitter', () => {
  it('stays random after the first 64 draws (the pool is refilled)', () => {
    const sim = new Simulation();
    const a = sim.node('a', 51);
    const rng = seededRng(99);
    const ids: number[] = [];
    for (let i = 0; i < 100; i++) {
      const key = new Uint8Array(32);
      rng.fill(key);
      ids.push(a.endpoint.addPeer({ publicKey: a.sim.crypto.x25519PrivateKey(key).publicKey }, 0));
    }
    for (const id of ids) a.endpoint.send(0, id, packet(1, id));
    sim.run(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 1);
    const retries = a.events.filter((e) => e.type === 'handshakeInitiated' && e.retry);
    assert.equal(retries.length, 100, 'every peer retried once');
    const jitters = retries.map((e) => e.at - REKEY_TIMEOUT);
    for (const j of jitters) assert.ok(j >= 0 && j <= REKEY_TIMEOUT_JITTER_MAX, `jitter ${j}`);
    // The first initiations drew 100 jitters: draws 65..100 came from a refilled pool.
    const late = new Set(jitters.slice(64)).size;
    assert.ok(late > 20, `distinct late jitters: ${late}`);
  });
});
