/**
 * Transport sealing on worker threads (src/device/linux/seal-pipeline.ts, sealer.ts): two
 * Devices on loopback, A's Linux bind sealing on two threads, B's on its main thread. Every
 * packet A sends must reach B decrypted (so the threads seal exactly as the core would) and in
 * the order A's TUN gave them, across many jobs spread over both threads, mixed sizes, and with
 * handshake-path datagrams (keepalives) queued among them.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LinuxUdpBind } from '../../src/device/linux/bind.ts';
import { Device } from '../../src/device/device.ts';
import { MemoryTun } from '../../src/device/tun-memory.ts';
import { encodeHex, generatePrivateKey } from '../../src/core/keys.ts';
import { publicKey } from '../../src/core/public-key.ts';
import { systemRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { sodiumCrypto } from '../../src/crypto/index.ts';
import { icmpEcho4, parseEcho } from '../support/ip.ts';
import { until } from '../support/until.ts';

const skip = process.platform !== 'linux' ? 'Linux only' : !sodiumCrypto && !process.env.CI ? 'sodium-native is not installed' : false;

describe('sealing threads', { skip }, () => {
  const keyA = generatePrivateKey(systemRng);
  const keyB = generatePrivateKey(systemRng);
  const tunA = new MemoryTun({ name: 'wwseala', mtu: 1420 });
  const tunB = new MemoryTun({ name: 'wwsealb', mtu: 1420 });
  const bindA = new LinuxUdpBind({ sealWorkers: 2 });
  const bindB = new LinuxUdpBind();
  const a = new Device({ tun: tunA, bind: bindA });
  const b = new Device({ tun: tunB, bind: bindB });

  before(async () => {
    await a.ipcSet(`private_key=${encodeHex(keyA)}\nlisten_port=0\n`);
    await b.ipcSet(`private_key=${encodeHex(keyB)}\nlisten_port=0\n`);
    await a.up();
    await b.up();
    await a.ipcSet(`public_key=${encodeHex(publicKey(nodeCrypto, keyB))}\nendpoint=127.0.0.1:${b.port}\nallowed_ip=10.77.0.2/32\n`);
    await b.ipcSet(`public_key=${encodeHex(publicKey(nodeCrypto, keyA))}\nendpoint=127.0.0.1:${a.port}\nallowed_ip=10.77.0.1/32\n`);
    // The first packet starts the handshake; it is queued and sent by the main thread.
    tunA.inject(icmpEcho4('10.77.0.1', '10.77.0.2', 1, 0, new Uint8Array(8)));
    await until('the handshake', () => tunB.written.length === 1, 5000);
  });
  after(async () => {
    await a.close();
    await b.close();
  });

  it('seals on the threads: every packet arrives decrypted and in order, across jobs and sizes', async (t) => {
    assert.equal(bindA.sealsTransport, true, 'the bind has its sealing threads');
    tunB.written.length = 0;
    const total = 6000;
    const sizes = [1392, 1392, 1392, 600, 1392, 64, 1392, 1392];
    let sent = 0;
    // Bursts of 300 per task: jobs of up to 64 datagrams, split where the size grows, spread
    // over both threads; a keepalive in some bursts goes behind the jobs already queued.
    while (sent < total) {
      for (let i = 0; i < 300 && sent < total; i++, sent++) {
        tunA.inject(icmpEcho4('10.77.0.1', '10.77.0.2', 2, sent, new Uint8Array(sizes[sent % sizes.length]!)));
      }
      if (sent % 1200 === 0) a.endpoint.keepalive(performance.now(), a.endpoint.peerIdByKey(publicKey(nodeCrypto, keyB))!);
      await new Promise((r) => setImmediate(r));
      await until('B to catch up', () => tunB.written.length >= sent - 600, 5000);
    }
    await until('every packet sent or counted as dropped', () => tunB.written.length + bindA.stats.txDropped >= total, 5000);
    const seqs = tunB.written.map((p) => parseEcho(p)?.seq ?? -1);
    const stats = bindA.stats;
    t.diagnostic(`${seqs.length} of ${total} received; ${stats.gsoBatches} UDP_SEGMENT batches, ${stats.txDropped} dropped`);
    // Loopback with 7 MiB buffers loses nothing here; what matters is that what arrived is in order.
    assert.ok(seqs.length >= total * 0.99, `received ${seqs.length} of ${total} (tx dropped ${stats.txDropped})`);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, `packet ${seqs[i]} arrived after ${seqs[i - 1]}`);
    for (let i = 0; i < seqs.length; i++) {
      const size = sizes[seqs[i]! % sizes.length]!;
      assert.equal(tunB.written[i]!.length, 28 + size, `packet ${seqs[i]} has its own length`);
    }
    assert.ok(stats.gsoBatches > 0, 'datagrams left in UDP_SEGMENT batches');
    assert.equal(b.endpoint.counters.dropped.decrypt, 0, 'B opened everything the threads sealed');
    assert.equal(b.endpoint.counters.dropped.replay, 0, 'no counter was used twice');
  });

  it('counts what the threads sent in the bind statistics', async () => {
    const before = bindA.stats.txPackets;
    assert.ok(before > 6000);
    tunB.written.length = 0;
    for (let i = 0; i < 10; i++) tunA.inject(icmpEcho4('10.77.0.1', '10.77.0.2', 3, i, new Uint8Array(100)));
    await until('ten more', () => tunB.written.length === 10, 5000);
    assert.equal(bindA.stats.txPackets, before + 10);
  });
});
