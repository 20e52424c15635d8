/**
 * A Device whose handshake initiations are computed elsewhere: on the in-memory twin
 * (MemoryInitiationOffload, computed when the test says) and on the worker thread
 * (ThreadInitiationOffload), which starts on a burst of initiations and stops when idle.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Device } from '../../src/device/device.ts';
import type { DeviceOptions } from '../../src/device/device.ts';
import { MemoryTun } from '../../src/device/tun-memory.ts';
import { MemoryBind, MemoryNetwork } from '../../src/device/bind-memory.ts';
import { ManualClock, systemClock } from '../../src/device/clock.ts';
import type { Clock } from '../../src/device/clock.ts';
import { MemoryInitiationOffload, readJob, readResult, writeJob, writeResult, JOB_BYTES, RESULT_BYTES } from '../../src/device/initiation-offload.ts';
import { ThreadInitiationOffload } from '../../src/device/initiation-thread.ts';
import { computeInitiation } from '../../src/core/handshake.ts';
import { encodeHex, generatePrivateKey } from '../../src/core/keys.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { Worker } from 'node:worker_threads';
import { icmpEcho4 } from '../support/ip.ts';
import { until } from '../support/until.ts';

interface Host { device: Device; tun: MemoryTun; key: Uint8Array; pub: string }

async function host(net: MemoryNetwork, clock: Clock, address: string, seed: number, extra: Partial<DeviceOptions> = {}): Promise<Host> {
  const rng = seededRng(seed);
  const key = generatePrivateKey(rng);
  const tun = new MemoryTun({ name: `wwo${seed}`, mtu: 1420 });
  const device = new Device({ tun, bind: new MemoryBind(net, address), clock, rng, ...extra });
  await device.ipcSet(`private_key=${encodeHex(key)}\nlisten_port=51820\n`);
  await device.up();
  return { device, tun, key, pub: encodeHex(nodeCrypto.x25519PrivateKey(key).publicKey) };
}

async function pair(clock: Clock, offload: DeviceOptions['initiationOffload']): Promise<{ a: Host; b: Host }> {
  const net = new MemoryNetwork();
  const a = await host(net, clock, '192.0.2.1', 1, { initiationOffload: offload });
  const b = await host(net, clock, '192.0.2.2', 2);
  await a.device.ipcSet(`public_key=${b.pub}\nendpoint=192.0.2.2:51820\nallowed_ip=10.9.0.2/32\n`);
  await b.device.ipcSet(`public_key=${a.pub}\nallowed_ip=10.9.0.1/32\n`);
  return { a, b };
}

const ping = icmpEcho4('10.9.0.1', '10.9.0.2', 1, 1, new TextEncoder().encode('offloaded'));

describe('a device with its initiations computed elsewhere', () => {
  it('sends the initiation when the twin computes it, and the packet waiting for it follows', async () => {
    const clock = new ManualClock();
    const offload = new MemoryInitiationOffload(nodeCrypto);
    const { a, b } = await pair(clock, offload);
    a.tun.inject(ping);
    await clock.advance(10);
    assert.equal(offload.pending, 1, 'the initiation waits for the offload');
    assert.equal(a.device.endpoint.counters.handshakeInitiationsSent, 0);
    assert.equal(b.tun.written.length, 0);
    assert.equal(offload.run(), 1);
    await clock.advance(10);
    assert.equal(a.device.endpoint.counters.handshakeInitiationsSent, 1);
    assert.equal(a.device.endpoint.counters.handshakesCompleted, 1);
    assert.equal(a.device.counters.initiationsOffloaded, 1);
    assert.deepEqual(b.tun.written[0], ping);
    await a.device.close();
    await b.device.close();
  });

  it('computes on its own thread when the offload declines', async () => {
    const clock = new ManualClock();
    const offload = new MemoryInitiationOffload(nodeCrypto);
    offload.accepting = false;
    const { a, b } = await pair(clock, offload);
    a.tun.inject(ping);
    await clock.advance(10);
    assert.equal(offload.pending, 0);
    assert.equal(a.device.counters.initiationsOffloaded, 0);
    assert.deepEqual(b.tun.written[0], ping);
    await a.device.close();
    await b.device.close();
  });

  it('records carry a job and a result across the thread boundary unchanged', () => {
    const rng = seededRng(9);
    const bytes = (n: number): Uint8Array => { const b = new Uint8Array(n); rng.fill(b); return b; };
    const job = {
      peer: 77, token: 0xfedcba98, localStatic: bytes(32), remoteStatic: bytes(32), staticStatic: bytes(32),
      ephemeral: bytes(32), timestamp: bytes(12),
    };
    const jobs = new Uint8Array(3 * JOB_BYTES);
    writeJob(jobs, 2, job);
    assert.deepEqual({ ...readJob(jobs, 2) }, job);
    const result = computeInitiation(nodeCrypto, job)!;
    const results = new Uint8Array(2 * RESULT_BYTES);
    writeResult(results, 1, result);
    writeResult(results, 0, null);
    assert.equal(readResult(results, 0), null, 'a job without a result');
    assert.deepEqual({ ...readResult(results, 1) }, { ...result });
  });

  it('uses the worker thread in always mode, end to end', async () => {
    const offload = new ThreadInitiationOffload({ mode: 'always' });
    const { a, b } = await pair(systemClock, offload);
    try {
      await until('the thread starts', () => offload.running);
      a.tun.inject(ping);
      await until('the packet arrives', () => b.tun.written.length > 0);
      assert.deepEqual(b.tun.written[0], ping);
      assert.equal(offload.computed, 1, 'the thread computed the initiation');
      assert.equal(a.device.counters.initiationsOffloaded, 1);
      assert.equal(a.device.endpoint.counters.handshakesCompleted, 1);
    } finally {
      await a.device.close();
      await b.device.close();
    }
  });

  it('starts the thread on a burst of initiations and stops it when idle', async () => {
    const net = new MemoryNetwork();
    const verbose: string[] = [];
    const offload = new ThreadInitiationOffload({ idleMs: 300, logger: { error: (m) => verbose.push(`error ${m}`), verbose: (m) => verbose.push(m) } });
    const a = await host(net, systemClock, '192.0.2.1', 1, { initiationOffload: offload });
    try {
      // 100 peers with a persistent keepalive all dial at once: with no session, initiations.
      let conf = '';
      for (let i = 0; i < 100; i++) {
        const pub = encodeHex(nodeCrypto.x25519PrivateKey(generatePrivateKey(seededRng(1000 + i))).publicKey);
        conf += `public_key=${pub}\nendpoint=192.0.2.${10 + (i % 200)}:51820\npersistent_keepalive_interval=25\n`;
      }
      assert.equal(offload.running, false, 'no thread before a burst');
      await a.device.ipcSet(conf);
      await until('every peer dialed', () => a.device.endpoint.counters.handshakeInitiationsSent === 100);
      // The burst was computed here while the thread started (it takes a while to load).
      await until('the burst starts the thread', () => offload.running);
      // The same peers again (new ones, replacing them): now the thread computes them.
      await a.device.ipcSet(`replace_peers=true\n${conf.replaceAll('192.0.2.', '198.51.100.')}`);
      await until('every peer dialed again', () => a.device.endpoint.counters.handshakeInitiationsSent === 200);
      assert.equal(offload.computed, 100, 'the thread computed the second burst');
      await until('the idle thread stops', () => !offload.running, 5000);
      assert.deepEqual(verbose.filter((m) => m.startsWith('error')), []);
      assert.ok(verbose.some((m) => m.startsWith('initiation thread started')));
      assert.ok(verbose.includes('initiation thread stopped (idle)'));
    } finally {
      await a.device.close();
    }
  });

  it('gives the initiations back to the device thread when the thread fails, for good', async () => {
    const errors: string[] = [];
    let spawned = 0;
    const offload = new ThreadInitiationOffload({
      mode: 'always',
      logger: { error: (m) => errors.push(m), verbose: () => {} },
      spawn: () => { spawned++; return new Worker('throw new Error("no initiations today")', { eval: true }); },
    });
    const { a, b } = await pair(systemClock, offload);
    try {
      await until('the failure is told', () => errors.length > 0);
      assert.match(errors[0]!, /^initiation thread: .*no initiations today.*; initiations are computed on the main thread$/);
      a.tun.inject(ping);
      await until('the packet arrives', () => b.tun.written.length > 0);
      assert.equal(a.device.counters.initiationsOffloaded, 0);
      assert.equal(offload.running, false);
      assert.equal(spawned, 1, 'not started again');
    } finally {
      await a.device.close();
      await b.device.close();
    }
  });
});
