/**
 * Faults of time (issue 6): the monotonic clock jumps forward by hours (a suspended VM or
 * laptop, a stalled process) under two devices on their in-memory twins. Time is ManualClock's,
 * plus an offset that `jump` moves without running the timers in between: timers then fire
 * late and see the new time, as after a real suspend. Sessions must expire and re-handshake,
 * no timer may "catch up" by firing once per missed period, and nothing may throw.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Device } from '../../src/device/device.ts';
import { MemoryTun } from '../../src/device/tun-memory.ts';
import { MemoryBind, MemoryNetwork } from '../../src/device/bind-memory.ts';
import { ManualClock } from '../../src/device/clock.ts';
import { encodeHex, generatePrivateKey } from '../../src/core/keys.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { icmpEcho4 } from '../support/ip.ts';
import { REJECT_AFTER_TIME, REKEY_ATTEMPT_TIME, REKEY_TIMEOUT } from '../../src/core/constants.ts';

const HOUR = 3_600_000;

/** ManualClock whose `now` can jump forward without running the timers in between. */
class JumpingClock extends ManualClock {
  private offset = 0;
  override now(): number { return super.now() + this.offset; }
  jump(ms: number): void { this.offset += ms; }
}

interface Host { device: Device; tun: MemoryTun; bind: MemoryBind; pub: string }

async function host(net: MemoryNetwork, clock: JumpingClock, address: string, seed: number): Promise<Host> {
  const rng = seededRng(seed);
  const key = generatePrivateKey(rng);
  const tun = new MemoryTun({ name: `wwj${seed}`, mtu: 1420 });
  const bind = new MemoryBind(net, address);
  const device = new Device({ tun, bind, clock, rng });
  await device.ipcSet(`private_key=${encodeHex(key)}\nlisten_port=51820\n`);
  await device.up();
  return { device, tun, bind, pub: encodeHex(nodeCrypto.x25519PrivateKey(key).publicKey) };
}

async function twoHosts() {
  const net = new MemoryNetwork();
  const clock = new JumpingClock();
  const a = await host(net, clock, '192.0.2.1', 31);
  const b = await host(net, clock, '192.0.2.2', 32);
  await a.device.ipcSet(`public_key=${b.pub}\nendpoint=192.0.2.2:51820\nallowed_ip=10.9.0.2/32\n`);
  await b.device.ipcSet(`public_key=${a.pub}\nendpoint=192.0.2.1:51820\nallowed_ip=10.9.0.1/32\n`);
  return { net, clock, a, b };
}

const payload = new TextEncoder().encode('after the jump');
let seq = 0;

/** a → b and b → a once; returns how many of the two arrived. */
async function exchange(clock: JumpingClock, a: Host, b: Host): Promise<number> {
  const [wa, wb] = [a.tun.written.length, b.tun.written.length];
  a.tun.inject(icmpEcho4('10.9.0.1', '10.9.0.2', 7, ++seq, payload));
  await clock.advance(50);
  b.tun.inject(icmpEcho4('10.9.0.2', '10.9.0.1', 7, seq, payload, true));
  await clock.advance(50);
  return b.tun.written.length - wb + a.tun.written.length - wa;
}

const uncaught: unknown[] = [];
const onUncaught = (e: unknown): void => { uncaught.push(e); };
process.on('uncaughtException', onUncaught);
after(() => { process.off('uncaughtException', onUncaught); });

describe('the clock jumps forward', () => {
  it('by hours, five times: the old sessions expire and traffic re-handshakes each time', async () => {
    const { clock, a, b } = await twoHosts();
    assert.equal(await exchange(clock, a, b), 2, 'before the jump');
    const peerA = [...a.device.endpoint.peerIds()][0]!;
    const hs0 = a.device.endpoint.counters.handshakesCompleted + b.device.endpoint.counters.handshakesCompleted;
    const events: string[] = [];
    for (const jumpHours of [3, 1, 1, 6, 24]) {
      const old = a.device.endpoint.inspectPeer(peerA).current;
      assert.ok(old, 'a session before the jump');
      clock.jump(jumpHours * HOUR);
      const jumpedAt = clock.now();
      // Only the timers that were armed fire (late); nothing runs once per missed period.
      const sent0 = a.device.endpoint.counters.handshakeInitiationsSent + a.device.endpoint.counters.keepalivesSent;
      await clock.advance(REJECT_AFTER_TIME);
      const sent = a.device.endpoint.counters.handshakeInitiationsSent + a.device.endpoint.counters.keepalivesSent - sent0;
      assert.ok(sent <= 3, `after a ${jumpHours} h jump a sent ${sent} initiations/keepalives by itself`);
      // The old session expired; a timer that fired late (keepalive) may already have made a new one.
      const now = a.device.endpoint.inspectPeer(peerA).current;
      assert.ok(!now || (now.localIndex !== old.localIndex && now.created >= jumpedAt), `after ${jumpHours} h the old session is gone: ${JSON.stringify(now)}`);
      assert.equal(await exchange(clock, a, b), 2, `traffic after a ${jumpHours} h jump`);
      events.push(`${jumpHours}h`);
    }
    const hs = a.device.endpoint.counters.handshakesCompleted + b.device.endpoint.counters.handshakesCompleted - hs0;
    assert.ok(hs >= 5 * 2, `a new handshake after every jump (${hs} completions for ${events.join(', ')})`);
    assert.deepEqual(uncaught, [], 'nothing threw');
  });

  it('with persistent keepalive on: one keepalive after the jump, not one per missed interval', async () => {
    const { net, clock, a, b } = await twoHosts();
    await a.device.ipcSet(`public_key=${b.pub}\npersistent_keepalive_interval=25\n`);
    assert.equal(await exchange(clock, a, b), 2, 'before the jump');
    await clock.advance(30_000);
    const delivered0 = net.delivered;
    clock.jump(5 * HOUR);
    await clock.advance(26_000);
    // A handful of datagrams (a keepalive needs a new handshake: initiation, response,
    // keepalive...), not 5 h / 25 s = 720 keepalives.
    const n = net.delivered - delivered0;
    assert.ok(n > 0 && n <= 10, `${n} datagrams in the 26 s after a 5 h jump`);
    assert.ok(a.device.endpoint.inspectPeer([...a.device.endpoint.peerIds()][0]!).current, 'keepalive re-established a session');
    assert.deepEqual(uncaught, [], 'nothing threw');
  });

  it('during handshake retries to an unreachable peer: retries continue one at a time and then give up', async () => {
    const { net, clock, a, b } = await twoHosts();
    net.filter = () => false; // the link is down
    a.tun.inject(icmpEcho4('10.9.0.1', '10.9.0.2', 9, 1, payload));
    await clock.advance(2 * REKEY_TIMEOUT);
    const tries0 = a.device.endpoint.counters.handshakeInitiationsSent;
    assert.ok(tries0 >= 2, `retrying (${tries0})`);
    clock.jump(2 * HOUR);
    await clock.advance(1_000);
    assert.ok(a.device.endpoint.counters.handshakeInitiationsSent - tries0 <= 1, 'one late retry, no burst');
    // The attempt budget is counted in retries, so it still runs out after REKEY_ATTEMPT_TIME of them.
    await clock.advance(REKEY_ATTEMPT_TIME + 2 * REKEY_TIMEOUT);
    const peerA = [...a.device.endpoint.peerIds()][0]!;
    const inspect = a.device.endpoint.inspectPeer(peerA);
    assert.equal(inspect.queued, 0, 'gave up and dropped the waiting packet');
    assert.ok(a.device.endpoint.counters.handshakeInitiationsSent <= tries0 + 20, 'bounded retries');
    // The link comes back: a new packet gets through.
    net.filter = () => true;
    assert.equal(await exchange(clock, a, b), 2, 'after the link is back');
    assert.deepEqual(uncaught, [], 'nothing threw');
  });
});
