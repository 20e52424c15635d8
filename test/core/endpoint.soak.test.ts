/**
 * A day on a lossy, reordering, duplicating virtual wire. Split from endpoint.test.ts because it
 * takes seconds: the mutation run (stryker.config.mjs) leaves it out so each mutant costs less;
 * the normal suite still runs it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { packet, packetNumber, pair } from '../support/pair.ts';
import { REKEY_AFTER_TIME } from '../../src/core/constants.ts';

describe('24 virtual hours on a bad wire', () => {
  it('keeps a session through 5% loss, reordering and duplication', () => {
    const { sim, a, b, aToB, bToA } = pair({ seed: 42, conditions: { loss: 0.05, duplicate: 0.05, latency: 20, jitter: 40 } });
    const DAY = 24 * 3600_000;
    let sentA = 0, sentB = 0;
    const deliveredPerHourA = new Array<number>(24).fill(0);
    for (let t = 0; t < DAY; t += 1000) {
      sim.runUntil(t);
      // Both sides talk every second; a in bursts of two so reordering shows.
      a.send(aToB, packet(1, sentA++));
      a.send(aToB, packet(1, sentA++));
      if ((t / 1000) % 3 === 0) b.send(bToA, packet(2, sentB++));
    }
    sim.run(10_000);
    for (const d of b.delivered) deliveredPerHourA[Math.min(23, Math.floor(d.at / 3600_000))]!++;
    // Not a single hour without traffic, no handshake ever given up.
    assert.ok(deliveredPerHourA.every((n) => n > 6000), `per hour: ${deliveredPerHourA}`);
    assert.equal(a.eventsOf('handshakeFailed').length, 0);
    assert.equal(b.eventsOf('handshakeFailed').length, 0);
    // Duplicates never get through twice (the replay window), and nearly everything arrives.
    const seen = new Set(b.delivered.map((d) => packetNumber(d.data)));
    assert.equal(seen.size, b.delivered.length);
    assert.ok(b.delivered.length > sentA * 0.9, `${b.delivered.length}/${sentA}`);
    assert.ok(a.delivered.length > sentB * 0.9, `${a.delivered.length}/${sentB}`);
    assert.ok(b.endpoint.counters.dropped.replay > 0, 'duplicates were dropped as replays');
    // About one handshake per REKEY_AFTER_TIME.
    const rekeys = a.eventsOf('handshakeCompleted').length;
    assert.ok(rekeys >= DAY / (REKEY_AFTER_TIME + 30_000) && rekeys <= DAY / REKEY_AFTER_TIME + 20, `rekeys ${rekeys}`);
  });
});
