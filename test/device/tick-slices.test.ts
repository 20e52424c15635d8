/**
 * Many peers due at once (all dialing after a setconf) are served over several timer turns, so
 * the event loop gets the thread back in between (the UAPI answers meanwhile); in the end every
 * peer has sent its initiation once.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Device } from '../../src/device/device.ts';
import { MemoryTun } from '../../src/device/tun-memory.ts';
import { MemoryBind, MemoryNetwork } from '../../src/device/bind-memory.ts';
import type { Clock } from '../../src/device/clock.ts';
import { encodeHex, generatePrivateKey } from '../../src/core/keys.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';

const PEERS = 60;

/** Time moves 0.5 ms at every look, as if each step took that long; timers fire on `fire()`. */
class SteppingClock implements Clock {
  t = 0;
  timers: (() => void)[] = [];
  now(): number { return (this.t += 0.5); }
  wall(now: number): number { return 1_700_000_000_000 + now; }
  setTimer(callback: () => void): unknown { this.timers.push(callback); return callback; }
  clearTimer(handle: unknown): void { this.timers = this.timers.filter((t) => t !== handle); }
  /** Fires the timers armed so far; returns how many. */
  fire(): number {
    const due = this.timers;
    this.timers = [];
    for (const t of due) t();
    return due.length;
  }
}

describe('device timers in slices', () => {
  it('sends the initiations of many dialing peers over several turns, each once', async () => {
    const clock = new SteppingClock();
    const rng = seededRng(7);
    const device = new Device({
      tun: new MemoryTun({ name: 'wwslice0' }), bind: new MemoryBind(new MemoryNetwork(), '192.0.2.1'), clock, rng,
    });
    const lines = [`private_key=${encodeHex(generatePrivateKey(rng))}`, 'listen_port=51820'];
    for (let i = 0; i < PEERS; i++) {
      const pub = nodeCrypto.x25519PrivateKey(generatePrivateKey(rng)).publicKey;
      lines.push(`public_key=${encodeHex(pub)}`, `endpoint=192.0.2.${10 + i}:51820`, 'persistent_keepalive_interval=25');
    }
    await device.ipcSet(lines.join('\n') + '\n');
    await device.up();
    const sent = (): number => device.endpoint.counters.handshakeInitiationsSent;

    assert.equal(clock.fire(), 1);
    const first = sent();
    assert.ok(first > 0 && first < PEERS, `one turn sent ${first} of ${PEERS}`);
    assert.equal(clock.timers.length, 1, 'the next turn is armed');
    // The UAPI is served between turns (here: right now, with initiations still to send).
    assert.equal(device.getState().peers.length, PEERS);

    let turns = 1;
    while (sent() < PEERS && turns < PEERS) { clock.fire(); turns++; }
    assert.equal(sent(), PEERS);
    assert.ok(turns > 1);
    // Nothing more is due until the retransmission timeout: no turn sends anything now.
    clock.fire();
    assert.equal(sent(), PEERS, 'no peer twice');
    await device.close();
  });
});
