/**
 * systemClock's timers: one due at once runs as a referenced immediate, so a device working
 * through a backlog in turns (10,000 initiations after a setconf) neither idles ≥ 1 ms between
 * turns, as a zero timeout would, nor stalls until the next I/O, as an unreferenced immediate does.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from '../../src/device/clock.ts';

describe('systemClock timers', () => {
  it('a chain of 500 zero-delay timers finishes before a 200 ms timeout (≥ 500 ms as timeouts)', async () => {
    let ran = 0;
    const step = (): void => { if (++ran < 500) systemClock.setTimer(step, 0); };
    systemClock.setTimer(step, 0);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(ran, 500);
  });

  it('cancels a zero-delay timer and a delayed one', async () => {
    let fired = 0;
    systemClock.clearTimer(systemClock.setTimer(() => fired++, 0));
    systemClock.clearTimer(systemClock.setTimer(() => fired++, 5));
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(fired, 0);
  });

  it('a delayed timer fires after its delay', async () => {
    let fired = false;
    systemClock.setTimer(() => { fired = true; }, 10);
    await new Promise((resolve) => setTimeout(resolve, 40));
    assert.ok(fired);
  });
});
