/**
 * Memory that a peer or a local client could pin (issue 11 §4), end to end through real
 * netstack() tunnels in this process: 1,000 connections from the peer whose readers never read
 * and whose writers write until blocked, then the same through the SOCKS5 proxy with local
 * clients that never read. The stack under test must keep its reserved TCP memory within its
 * budget (exactly: the peak counter), the process's RSS growth bounded, and other connections
 * flowing with intact data; nothing may throw.
 *
 * RSS is a memory figure, not a time: its bound is generous and explained where it is asserted.
 * Both ends of the tunnel live in this process, so the peer's stack (with its own budget) counts
 * too. Before the budget, each such connection could pin 4 MiB per direction per end.
 */
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { encodeAddress, startSocks5 } from '../../src/netstack/socks5.ts';
import type { TcpIpStack } from '../../src/netstack/stack/stack.ts';
import { makePair } from './helpers.ts';
import type { Pair } from './helpers.ts';

const MiB = 1024 * 1024;
const FLOOD = 1000;
const SOCKS_CLIENTS = 300;
const CHUNK = Buffer.alloc(16 * 1024, 0x5a);

const rss = (): number => {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

/** Writes until the socket says stop, and again on every drain, for as long as it lives. */
function fillUntilBlocked(s: Duplex): void {
  const pump = () => {
    if (s.destroyed || s.writableEnded) return;
    while (s.write(CHUNK)) { /* the stack takes it */ }
    s.once('drain', pump);
  };
  pump();
}

/** Reserved-bytes watch over both stacks; fails the test if either passes its limit. */
class Watch {
  rssPeak = 0;
  samples = 0;
  private readonly stacks: [string, TcpIpStack][];
  constructor(stacks: [string, TcpIpStack][]) { this.stacks = stacks; }
  sample(): void {
    this.samples++;
    this.rssPeak = Math.max(this.rssPeak, process.memoryUsage().rss);
    for (const [name, s] of this.stacks) {
      const m = s.tcpMemory;
      assert.ok(m.inUse <= m.high, `${name}: ${m.inUse} bytes reserved, over its ${m.high} budget`);
    }
  }
  /** Samples every 250 ms until `key()` stops changing for 2 s (or `limitMs`). */
  async untilQuiet(key: () => string, limitMs: number): Promise<void> {
    let last = '';
    let same = 0;
    for (let waited = 0; waited < limitMs; waited += 250) {
      await sleep(250);
      this.sample();
      const k = key();
      same = k === last ? same + 1 : 0;
      last = k;
      if (same >= 8) return;
    }
  }
}

/** Sends `bytes` random bytes over `s` to a sink that answers the SHA-256 of what it got. */
async function hashedTransfer(s: Duplex, bytes: number): Promise<void> {
  const data = randomBytes(bytes);
  const want = createHash('sha256').update(data).digest('hex');
  let answer = '';
  s.on('data', (d: Buffer) => { answer += d.toString(); });
  const ended = once(s, 'end');
  s.end(data);
  await ended;
  assert.equal(answer, want, 'the sink hashed exactly what was sent');
}

/** bob's port `port`: reads everything, answers its SHA-256 at the end. */
function hashSink(pair: Pair, port: number): void {
  pair.bob.listen(port).on('connection', (s) => {
    const h = createHash('sha256');
    s.on('data', (d: Buffer) => h.update(d));
    s.on('end', () => s.end(h.digest('hex')));
  });
}

function report(t: TestContext, lines: string[]): void {
  for (const l of lines) t.diagnostic(l);
}

describe('memory a peer or local clients can pin', () => {
  it(`${FLOOD} connections from a peer against readers that never read stay within the budget; others flow`, async (t) => {
    const pair = await makePair();
    const bob = pair.bob.stack as TcpIpStack;
    const alice = pair.alice.stack as TcpIpStack;
    const watch = new Watch([['bob', bob], ['alice', alice]]);
    const unexpected: Error[] = [];
    let tearingDown = false;
    const onError = (e: Error) => { if (!tearingDown) unexpected.push(e); };
    try {
      hashSink(pair, 9001);
      // A connection established before the flood, used after it.
      const early = pair.alice.connect({ host: '10.0.0.2', port: 9001 });
      early.on('error', onError);
      await once(early, 'connect');
      await sleep(200);
      const rss0 = rss();

      // bob's readers never read (no 'data' listener: the socket stays paused) and write until blocked.
      const t0 = performance.now();
      const held: Duplex[] = [];
      pair.bob.listen(9000).on('connection', (s) => { held.push(s); s.on('error', onError); fillUntilBlocked(s); });
      const clients: Duplex[] = [];
      for (let i = 0; i < FLOOD; i++) {
        const c = pair.alice.connect({ host: '10.0.0.2', port: 9000 });
        c.on('error', onError);
        c.once('connect', () => fillUntilBlocked(c));
        clients.push(c);
        if (i % 100 === 99) { await sleep(20); watch.sample(); }
      }
      await watch.untilQuiet(() => `${held.length} ${bob.tcpMemory.inUse} ${alice.tcpMemory.inUse}`, 180_000);
      const rss1 = rss();
      const flooded = { bob: bob.tcpMemory.inUse, alice: alice.tcpMemory.inUse };
      const t1 = performance.now();

      // Others keep flowing: the early connection and a new one, 4 MiB each with a hash.
      await hashedTransfer(early, 4 * MiB);
      const late = pair.alice.connect({ host: '10.0.0.2', port: 9001 });
      late.on('error', onError);
      await once(late, 'connect');
      await hashedTransfer(late, 4 * MiB);
      watch.sample();
      const t2 = performance.now();

      const bc = bob.counters;
      report(t, [
        `RSS ${mib(rss0)} before the flood, ${mib(rss1)} with ${held.length} connections held (growth ${mib(rss1 - rss0)}), peak ${mib(watch.rssPeak)}`,
        `bob (listener): reserved ${mib(flooded.bob)} of ${mib(bob.tcpMemory.high)}, peak ${mib(bc.tcpMemoryPeak)}; ` +
          `pressure events ${bc.tcpMemoryPressureEvents}, window clamps ${bc.tcpWindowClamps}, send clamps ${bc.tcpSendBufferClamps}, ` +
          `refused ${bc.tcpMemoryRefused}, drops ${bc.tcpMemoryDrops}`,
        `alice (peer): reserved ${mib(flooded.alice)} of ${mib(alice.tcpMemory.high)}, peak ${mib(alice.counters.tcpMemoryPeak)}`,
        `${watch.samples} samples, all within budget; flood settled in ${((t1 - t0) / 1000).toFixed(1)} s ` +
          `(2 s of it quiet), two 4 MiB transfers under pressure took ${((t2 - t1) / 1000).toFixed(1)} s`,
      ]);
      assert.equal(held.length, FLOOD, 'the default budget admits all of them (floors and initial windows)');
      assert.ok(bc.tcpMemoryPeak <= bob.tcpMemory.high, 'bob never reserved more than its budget');
      assert.ok(alice.counters.tcpMemoryPeak <= alice.tcpMemory.high, 'alice never reserved more than its budget');
      assert.ok(bc.tcpMemoryPressureEvents >= 1 && bob.tcpMemory.underPressure, 'the flood put bob under pressure');
      // Without the budget every one of these connections could pin 4 MiB each way at each end
      // (~16 GiB). With it the two stacks reserve at most 2 × 128 MiB; RSS runs at about twice
      // the reserved bytes here (received payload is held as per-segment chunks, send buffers in
      // 16 KiB blocks, Node's stream buffers and V8's young generation come on top), measured
      // 363 MiB for 209 MiB reserved. 700 MiB bounds that with room for the allocator.
      assert.ok(rss1 - rss0 < 700 * MiB, `RSS grew by ${mib(rss1 - rss0)}`);
      assert.deepEqual(unexpected.map((e) => e.message), [], 'no socket erred');
      assert.equal(bc.internalErrors, 0);
      assert.equal(alice.counters.internalErrors, 0);

      tearingDown = true;
      for (const s of [...held, ...clients, early, late]) s.destroy(new Error('teardown'));
      for (let i = 0; i < 40 && bob.tcpMemory.inUse + alice.tcpMemory.inUse > 0; i++) await sleep(100);
      assert.equal(bob.tcpMemory.inUse, 0, 'bob: every reserved byte returned');
      assert.equal(alice.tcpMemory.inUse, 0, 'alice: every reserved byte returned');
    } finally {
      tearingDown = true;
      await pair.close();
    }
  });

  it(`the same through the SOCKS5 proxy: ${SOCKS_CLIENTS} local clients that never read`, async (t) => {
    const pair = await makePair();
    const alice = pair.alice.stack as TcpIpStack;
    const bob = pair.bob.stack as TcpIpStack;
    const watch = new Watch([['alice (proxy)', alice], ['bob', bob]]);
    const unexpected: Error[] = [];
    let tearingDown = false;
    const onError = (e: Error) => { if (!tearingDown) unexpected.push(e); };
    const proxy = await startSocks5(pair.alice, '127.0.0.1', 0, { log: (l) => { if (!tearingDown) unexpected.push(new Error(l)); } });
    const port = (proxy.address() as AddressInfo).port;
    const locals: net.Socket[] = [];
    const served: Duplex[] = [];
    try {
      hashSink(pair, 9101);
      // The server behind the peer writes until blocked and never reads.
      pair.bob.listen(9100).on('connection', (s) => { served.push(s); s.on('error', onError); fillUntilBlocked(s); });

      /** A SOCKS5 CONNECT; returns the socket with the reply consumed and nothing read after it. */
      const socks = async (target: number): Promise<net.Socket> => {
        const s = net.connect({ host: '127.0.0.1', port });
        s.on('error', onError);
        locals.push(s);
        await once(s, 'connect');
        let buf = Buffer.alloc(0);
        const need = async (n: number) => {
          while (buf.length < n) buf = Buffer.concat([buf, (await once(s, 'data'))[0] as Buffer]);
        };
        s.write(Buffer.from([5, 1, 0]));
        await need(2);
        s.write(Buffer.concat([Buffer.from([5, 1, 0]), encodeAddress('10.0.0.2', target)]));
        await need(12);
        assert.equal(buf[3], 0, 'SOCKS5 CONNECT succeeded');
        return s;
      };

      await sleep(200);
      const rss0 = rss();
      const pending: Promise<void>[] = [];
      for (let i = 0; i < SOCKS_CLIENTS; i++) {
        pending.push(socks(9100).then((s) => {
          // Never read again: paused, the kernel's buffers fill, then the proxy's, then the tunnel window closes.
          s.pause();
          fillUntilBlocked(s);
        }));
        if (i % 50 === 49) { await Promise.all(pending.splice(0)); watch.sample(); }
      }
      await Promise.all(pending);
      await watch.untilQuiet(() => `${served.length} ${alice.tcpMemory.inUse} ${bob.tcpMemory.inUse}`, 180_000);
      const rss1 = rss();
      const reserved = alice.tcpMemory.inUse;

      // Another client through the same proxy keeps flowing.
      const flowing = await socks(9101);
      await hashedTransfer(flowing, 4 * MiB);
      watch.sample();

      const ac = alice.counters;
      report(t, [
        `RSS ${mib(rss0)} before, ${mib(rss1)} with ${SOCKS_CLIENTS} clients that never read (growth ${mib(rss1 - rss0)}, ` +
          `${(((rss1 - rss0) / SOCKS_CLIENTS) / 1024).toFixed(0)} KiB per client), peak ${mib(watch.rssPeak)}`,
        `alice (proxy): reserved ${mib(reserved)} of ${mib(alice.tcpMemory.high)}, peak ${mib(ac.tcpMemoryPeak)}; ` +
          `pressure events ${ac.tcpMemoryPressureEvents}, window clamps ${ac.tcpWindowClamps}, receive buffers grown ${ac.tcpReceiveBufferGrown}`,
        `bob: reserved ${mib(bob.tcpMemory.inUse)}, peak ${mib(bob.counters.tcpMemoryPeak)}`,
      ]);
      assert.equal(served.length, SOCKS_CLIENTS, 'every client reached the server');
      assert.ok(ac.tcpMemoryPeak <= alice.tcpMemory.high, 'the proxy never reserved more than its budget');
      assert.ok(bob.counters.tcpMemoryPeak <= bob.tcpMemory.high);
      // Measured with the old 4 MiB windows and no budget, this same test grew RSS by 4.4 GiB
      // (15 MiB per client, both stacks). Both stacks now reserve at most their 128 MiB; at
      // about twice that in RSS (see the test above; measured alone: 429 MiB for 205 MiB
      // reserved), 700 MiB bounds it. Run after the test above, the growth reads lower: the
      // process reuses what that one freed.
      assert.ok(rss1 - rss0 < 700 * MiB, `RSS grew by ${mib(rss1 - rss0)}`);
      assert.deepEqual(unexpected.map((e) => e.message), [], 'nothing erred');
      assert.equal(ac.internalErrors, 0);
      assert.equal(bob.counters.internalErrors, 0);
      // Teardown by RST from both ends; the accounting returns to zero through the proxy too.
      tearingDown = true;
      for (const s of served) s.destroy(new Error('teardown'));
      for (const s of locals) s.resetAndDestroy();
      for (let i = 0; i < 50 && alice.tcpMemory.inUse + bob.tcpMemory.inUse > 0; i++) await sleep(100);
      assert.equal(alice.tcpMemory.inUse, 0, 'alice: every reserved byte returned');
      assert.equal(bob.tcpMemory.inUse, 0, 'bob: every reserved byte returned');
    } finally {
      tearingDown = true;
      for (const s of locals) s.destroy();
      for (const s of served) s.destroy(new Error('teardown'));
      proxy.close();
      await pair.close();
    }
  });
});
