/** The in-memory TUN twin: what the device tests rely on. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryTun } from '../../src/device/tun-memory.ts';
import { icmpEcho4, parseEcho } from '../support/ip.ts';

const ping = icmpEcho4('10.0.0.1', '10.0.0.2', 7, 1, new Uint8Array([1, 2, 3]));

describe('MemoryTun', () => {
  it('has the configured name and MTU, with defaults', () => {
    assert.equal(new MemoryTun().name, 'memtun0');
    assert.equal(new MemoryTun().mtu, 1420);
    const t = new MemoryTun({ name: 'wg7', mtu: 1280 });
    assert.equal(t.name, 'wg7');
    assert.equal(t.mtu, 1280);
  });

  it('inject calls the handler synchronously with the packet, in order', () => {
    const t = new MemoryTun();
    const seen: number[] = [];
    t.start((p) => seen.push(parseEcho(p)!.seq));
    for (let seq = 1; seq <= 3; seq++) assert.equal(t.inject(icmpEcho4('10.0.0.1', '10.0.0.2', 7, seq, new Uint8Array(4))), true);
    assert.deepEqual(seen, [1, 2, 3]);
  });

  it('hands out a view that is only valid during the call (poisoned afterwards), and never the caller\'s array', () => {
    const t = new MemoryTun();
    let kept: Uint8Array | undefined;
    let during: ReturnType<typeof parseEcho> = null;
    t.start((p) => {
      during = parseEcho(p);
      kept = p;
    });
    const original = ping.slice();
    t.inject(original);
    assert.equal(during!.checksumOk, true);
    assert.deepEqual(original, ping, 'the injected array is untouched');
    assert.ok(kept!.every((b) => b === 0xee), 'a kept view is overwritten after the call');

    const plain = new MemoryTun({ poison: false });
    plain.start((p) => (kept = p));
    plain.inject(ping);
    assert.deepEqual(kept, ping);
  });

  it('queues packets injected before start (bounded) and delivers them on start', () => {
    const t = new MemoryTun({ queueLimit: 2 });
    assert.equal(t.inject(ping), true);
    assert.equal(t.inject(ping), true);
    assert.equal(t.inject(ping), false);
    assert.equal(t.injectDropped, 1);
    let n = 0;
    t.start(() => n++);
    assert.equal(n, 2);
    assert.throws(() => t.start(() => {}), /already started/);
  });

  it('collects written packets as copies and reports them through onWrite; onWrite can drop', () => {
    const t = new MemoryTun();
    const hooked: Uint8Array[] = [];
    t.onWrite = (p) => {
      hooked.push(p);
    };
    const buf = ping.slice();
    assert.equal(t.write(buf), true);
    buf.fill(0);
    assert.deepEqual(t.written, [ping]);
    assert.equal(hooked[0], t.written[0]);
    t.onWrite = () => false;
    assert.equal(t.write(ping), false);
    assert.equal(t.written.length, 2, 'a dropped packet is still recorded as attempted');
  });

  it('a handler may write back re-entrantly (echo)', () => {
    const t = new MemoryTun();
    t.start((p) => {
      const e = parseEcho(p)!;
      t.write(icmpEcho4('10.0.0.2', '10.0.0.1', e.id, e.seq, e.payload, true));
    });
    t.inject(ping);
    const reply = parseEcho(t.written[0]!)!;
    assert.equal(reply.reply, true);
    assert.equal(reply.checksumOk, true);
    assert.deepEqual(reply.payload, new Uint8Array([1, 2, 3]));
  });

  it('simulateDelete fires onClose once; then writes and injects fail', () => {
    const t = new MemoryTun();
    const reasons: string[] = [];
    t.onClose((r) => reasons.push(r));
    t.onClose((r) => reasons.push(`2:${r}`));
    let n = 0;
    t.start(() => n++);
    t.simulateDelete();
    t.simulateDelete();
    assert.deepEqual(reasons, ['deleted', '2:deleted']);
    assert.equal(t.closed, true);
    assert.equal(t.write(ping), false);
    assert.equal(t.inject(ping), false);
    assert.equal(n, 0);
  });

  it('close stops delivery without firing onClose', async () => {
    const t = new MemoryTun();
    let fired = false;
    t.onClose(() => (fired = true));
    let n = 0;
    t.start(() => n++);
    await t.close();
    assert.equal(t.inject(ping), false);
    assert.equal(t.write(ping), false);
    assert.equal(n, 0);
    assert.equal(fired, false);
    assert.throws(() => t.start(() => {}), /closed/);
  });
});
