/**
 * The replay window against the kernel's counter selftest as wireguard-go ports it
 * (test/fixtures/replay-cases.ts), with our window size in place of theirs, then the same
 * scripted counters end to end through sessions of both crypto providers.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { REPLAY_WINDOW_SIZE, ReplayWindow } from '../../src/core/replay.ts';
import { REJECT_AFTER_MESSAGES_HI, REJECT_AFTER_MESSAGES_LO } from '../../src/core/constants.ts';
import {
  REPLAY_BULK_TESTS, REPLAY_CASES, REPLAY_TEST_REJECT_AFTER_MESSAGES, expandBulkTest, resolveCounter,
} from '../fixtures/replay-cases.ts';
import { pair, packet } from '../support/pair.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { portableCrypto } from '../../src/crypto/portable.ts';
import { MESSAGE_TRANSPORT, Transport, writeType } from '../../src/core/messages.ts';
import { writeU32LE } from '../../src/core/bytes.ts';
import type { Session } from '../../src/core/session.ts';

const W = BigInt(REPLAY_WINDOW_SIZE);
const halves = (c: bigint) => [Number(c & 0xffff_ffffn), Number(c >> 32n)] as const;
const limit = halves(REPLAY_TEST_REJECT_AFTER_MESSAGES);

describe('replay window (kernel selftest cases)', () => {
  it('has a window of exactly 8160 counters (documented; wireguard-go has 8128)', () => {
    assert.equal(REPLAY_WINDOW_SIZE, 8160);
    // The edge itself: 8160 behind the greatest counter is accepted, 8161 is not.
    const w = new ReplayWindow();
    assert.equal(w.mark(20_000, 0), true);
    assert.equal(w.check(20_000 - 8161, 0), false);
    assert.equal(w.mark(20_000 - 8161, 0), false);
    assert.equal(w.check(20_000 - 8160, 0), true);
    assert.equal(w.mark(20_000 - 8160, 0), true);
    assert.equal(w.mark(20_000 - 8160, 0), false, 'once');
  });

  it('gives the scripted results in order, and check() always predicts mark()', () => {
    const w = new ReplayWindow(limit[0], limit[1]);
    for (const c of REPLAY_CASES) {
      const [lo, hi] = halves(resolveCounter(c.counter, W, REPLAY_TEST_REJECT_AFTER_MESSAGES));
      const predicted = w.check(lo, hi);
      assert.equal(w.mark(lo, hi), c.expected, `case ${c.n}: T(${c.source}, ${c.expected})`);
      assert.equal(predicted, c.expected, `check, case ${c.n}`);
    }
  });

  for (const bulk of REPLAY_BULK_TESTS) {
    it(bulk.name, () => {
      const w = new ReplayWindow(limit[0], limit[1]);
      for (const { counter, expected } of expandBulkTest(bulk, W)) {
        const [lo, hi] = halves(counter);
        assert.equal(w.mark(lo, hi), expected, `${bulk.name}: T(${counter}, ${expected})`);
      }
    });
  }

  it('rejects REJECT_AFTER_MESSAGES and beyond with the protocol limit, and crosses 2^32 correctly', () => {
    const w = new ReplayWindow();
    assert.equal(w.mark(0xffff_ffff, 0), true);
    assert.equal(w.mark(0, 1), true);           // 2^32
    assert.equal(w.mark(0xffff_fff0, 0), true); // 16 behind, across the 32-bit boundary
    assert.equal(w.mark(0xffff_fff0, 0), false);
    assert.equal(w.mark(REJECT_AFTER_MESSAGES_LO - 1, REJECT_AFTER_MESSAGES_HI), true);
    assert.equal(w.mark(REJECT_AFTER_MESSAGES_LO, REJECT_AFTER_MESSAGES_HI), false);
    assert.equal(w.mark(0xffff_ffff, 0xffff_ffff), false);
    // After the huge jump every old counter is far outside the window.
    assert.equal(w.mark(5, 1), false);
  });
});

/** Seal a transport message with an arbitrary counter on `s` (as a peer with that counter would). */
function forge(crypto: typeof nodeCrypto, s: Session, lo: number, hi: number, payload: Uint8Array): Uint8Array {
  const d = new Uint8Array(Transport.headerSize + payload.length + 16);
  writeType(d, MESSAGE_TRANSPORT);
  writeU32LE(d, Transport.receiver, s.remoteIndex);
  writeU32LE(d, Transport.counter, lo);
  writeU32LE(d, Transport.counter + 4, hi);
  crypto.seal(s.sendKey, lo, hi, payload, new Uint8Array(0), d, Transport.headerSize);
  return d;
}

describe('replay protection end to end', () => {
  for (const crypto of [nodeCrypto, portableCrypto]) {
    it(`drops exactly the scripted replays through a real session (${crypto.name} provider)`, () => {
      const { sim, a, b, aToB } = pair({ crypto });
      a.send(aToB, packet(1, 0));
      sim.run(50);
      const s = (a.endpoint as unknown as { peers: Map<number, { current: Session }> }).peers.get(aToB)!.current;
      const results: boolean[] = [];
      const cases = REPLAY_CASES.filter((c) => c.counter.reject === 0n);
      for (const c of cases) {
        const [lo, hi] = halves(resolveCounter(c.counter, W, 0n) + 1n); // counter 0 was used by the first packet
        const before = b.delivered.length;
        b.endpoint.recv(sim.now, forge(crypto, s, lo, hi, packet(9, c.n)), 'a');
        results.push(b.delivered.length > before);
      }
      // Counter 0 was consumed by the handshake's first packet, so case 1 (counter 0 → 1) is fresh.
      assert.deepEqual(results, cases.map((c) => c.expected));
      // The protocol limit applies end to end.
      const [rlo, rhi] = [REJECT_AFTER_MESSAGES_LO, REJECT_AFTER_MESSAGES_HI];
      assert.equal(b.endpoint.recv(sim.now, forge(crypto, s, rlo, rhi, packet(9, 1)), 'a'), 'dropped');
      assert.equal(b.endpoint.recv(sim.now, forge(crypto, s, rlo - 1, rhi, packet(9, 2)), 'a'), 'data');
      assert.equal(b.endpoint.recv(sim.now, forge(crypto, s, rlo - 1, rhi, packet(9, 2)), 'a'), 'dropped');
    });
  }
});

/** mark() must do what check() said it would; returns the outcome. */
function accept(w: ReplayWindow, lo: number, hi = 0): boolean {
  const predicted = w.check(lo, hi);
  const marked = w.mark(lo, hi);
  assert.equal(marked, predicted, `check(${lo}, ${hi}) predicted ${predicted}, mark gave ${marked}`);
  return marked;
}

describe('replay window ring: what moving the window forgets and keeps', () => {
  it('forgets a slot reused after a whole ring, and after a one-block advance', () => {
    // Counter 8193 lands in the ring slot (and bit) of counter 1; it is new, not a replay.
    const w = new ReplayWindow();
    assert.equal(accept(w, 1), true);
    assert.equal(accept(w, 8193), true);
    assert.equal(accept(w, 1), false, '8192 behind: outside the window');
    // The same slot reached by a one-block step from the window's last block.
    const v = new ReplayWindow();
    assert.equal(accept(v, 1), true);
    assert.equal(accept(v, 8160), true);
    assert.equal(accept(v, 1), false, 'still inside the window: a replay');
    assert.equal(accept(v, 8193), true);
  });

  it('keeps the oldest counters of the window when the newest advances within its block', () => {
    const w = new ReplayWindow();
    assert.equal(accept(w, 31), true);
    assert.equal(accept(w, 8190), true); // 31 is now 8159 behind
    assert.equal(accept(w, 8191), true); // same block: nothing may be cleared
    assert.equal(accept(w, 31), false, 'exactly 8160 behind and already seen');
    assert.equal(accept(w, 32), true, 'inside the window, never seen');
  });

  it('clears the right slots when the counter crosses 2^32', () => {
    const w = new ReplayWindow();
    assert.equal(accept(w, 0xffff_e020), true); // shares a slot with 2^32 + 0x20
    assert.equal(accept(w, 0xffff_ffe0), true);
    assert.equal(accept(w, 0x20, 1), true, '2^32 + 0x20 is new');
    assert.equal(accept(w, 0xffff_ffe0), false, '64 behind: a replay');
    assert.equal(accept(w, 0xffff_e020), false, '8192 behind: too old');
    // The low bits of a counter in the same slot but the next 2^32 round are new too.
    const v = new ReplayWindow();
    assert.equal(accept(v, 1), true);
    assert.equal(accept(v, 1, 1), true);
  });

  it('rejects a counter 2^32 behind even when its low half is larger', () => {
    const w = new ReplayWindow();
    assert.equal(accept(w, 0, 1), true);
    assert.equal(accept(w, 100, 0), false);
    assert.equal(accept(w, 0xffff_ffff, 0), true, 'one behind across the boundary is fine');
  });

  it('keeps replays out when the high half is not zero', () => {
    const w = new ReplayWindow();
    for (const lo of [0, 5, 10]) assert.equal(accept(w, lo, 1), true);
    for (const lo of [0, 5, 10]) assert.equal(accept(w, lo, 1), false, `replay of 2^32 + ${lo}`);
    assert.equal(accept(w, 7, 1), true);
  });

  it('applies a custom limit to both halves', () => {
    const w = new ReplayWindow(10, 1); // limit 2^32 + 10
    assert.equal(accept(w, 5, 2), false, 'above the limit though its low half is smaller');
    assert.equal(accept(w, 9, 1), true);
    assert.equal(accept(w, 10, 1), false);
  });

  it('reset() forgets every counter and the window position', () => {
    const w = new ReplayWindow();
    assert.equal(accept(w, 100), true);
    assert.equal(accept(w, 0, 5), true);
    w.reset();
    assert.equal(accept(w, 100), true, 'seen before the reset, new after');
    assert.equal(accept(w, 3), true, 'the window is back at the start');
  });
});
