/**
 * The TCP memory budget against the Linux kernel as the peer: a TUN in a private network
 * namespace (kernel 10.204.0.1) with a TcpIpStack behind it (10.204.0.2), as kernel.interop.test.ts.
 * 1,000 kernel sockets connect to a listener whose handlers never read and write until blocked,
 * while the kernel side writes until blocked and never reads. Only our stack lives in this
 * process, so the RSS growth is the stack's own. Needs root and /dev/net/tun; skipped otherwise
 * (fails under CI=true).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { openLinuxTun } from '../../../src/device/linux/tun.ts';
import type { LinuxTun } from '../../../src/device/linux/tun.ts';
import { TcpIpStack } from '../../../src/netstack/stack/stack.ts';
import type { TcpConnection } from '../../../src/netstack/stack/types.ts';

const skip = process.env.CI ? false : process.getuid?.() !== 0 || !existsSync('/dev/net/tun') ? 'needs root and /dev/net/tun' : false;
const NS = `wwmem${process.pid}`;
const FLOOD = 1000;
const MiB = 1024 * 1024;
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sh(...args: string[]): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A Python program in the namespace; `onOut` sees its stdout as it grows. */
function python(code: string, onOut?: (out: string) => void): { proc: ChildProcess; done: Promise<{ out: string; err: string }> } {
  const proc = spawn('ip', ['netns', 'exec', NS, 'python3', '-c', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => { out += d; onOut?.(out); });
  proc.stderr!.on('data', (d) => { err += d; });
  const done = new Promise<{ out: string; err: string }>((resolve) => proc.on('close', () => resolve({ out, err })));
  return { proc, done };
}

/** 1,000 kernel clients: connect, write until the socket blocks, never read; report, then wait to be killed. */
const FLOOD_CLIENTS = `
import socket, time, errno
socks = []
for i in range(${FLOOD}):
    s = socket.socket(); s.setblocking(False)
    try: s.connect(('10.204.0.2', 6000))
    except BlockingIOError: pass
    socks.append(s)
    if i % 100 == 99: time.sleep(0.05)
buf = b'k' * 65536
sent = 0; failed = set(); idle = 0
while idle < 10:
    n = 0
    for i, s in enumerate(socks):
        if i in failed: continue
        try:
            while True:
                k = s.send(buf); n += k
        except (BlockingIOError, InterruptedError): pass
        except OSError: failed.add(i)
    sent += n
    idle = idle + 1 if n == 0 else 0
    time.sleep(0.2)
print('FILLED %d %d' % (sent, len(failed)), flush=True)
time.sleep(600)
`;

describe('the TCP memory budget against the Linux kernel', { skip, timeout: 300_000 }, () => {
  let tun: LinuxTun;
  let stack: TcpIpStack;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const schedule = () => {
    if (timer) clearTimeout(timer);
    const d = stack.nextDeadline();
    if (d === Infinity) return;
    timer = setTimeout(() => { stack.tick(now()); schedule(); }, Math.max(0, Math.ceil(d - now())));
  };

  before(async () => {
    sh('ip', 'netns', 'add', NS);
    tun = await openLinuxTun('wwm%d', { mtu: 1420, offload: false });
    sh('ip', 'link', 'set', tun.name, 'netns', NS);
    sh('ip', '-n', NS, 'link', 'set', 'lo', 'up');
    sh('ip', '-n', NS, 'addr', 'add', '10.204.0.1/24', 'dev', tun.name);
    sh('ip', '-n', NS, 'link', 'set', tun.name, 'up');
    stack = new TcpIpStack({ addresses: ['10.204.0.2'], mtu: 1420 }, { output: (p) => { tun.write(p); } });
    tun.start((p) => { stack.input(p, now()); schedule(); });
  });

  after(async () => {
    if (timer) clearTimeout(timer);
    await tun?.close();
    try { sh('ip', 'netns', 'del', NS); } catch { /* already gone */ }
  });

  it(`${FLOOD} kernel connections against readers that never read: within budget, RSS reported, another flows`, async (t) => {
    (globalThis as { gc?: () => void }).gc?.();
    const rss0 = process.memoryUsage().rss;
    // Never read (no release), write until blocked and again on every drain.
    const chunk = new Uint8Array(16 * 1024).fill(0x73);
    const held: TcpConnection[] = [];
    const flood = stack.tcpListen(6000);
    flood.onConnection = (c) => {
      held.push(c);
      const pump = () => { while (c.write(chunk, now()) === chunk.length) { /* taken */ } schedule(); };
      c.events = { onDrain: pump };
      pump();
    };
    let filled = '';
    const clients = python(FLOOD_CLIENTS, (out) => { const m = /FILLED .*/.exec(out); if (m) filled = m[0]; });
    let rssPeak = 0;
    try {
      for (let waited = 0; !filled && waited < 120_000; waited += 250) {
        await sleep(250);
        rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
        const m = stack.tcpMemory;
        assert.ok(m.inUse <= m.high, `${m.inUse} bytes reserved, over the ${m.high} budget`);
      }
      assert.ok(filled, `the kernel clients filled their windows (${(await Promise.race([clients.done, sleep(10)]) as { err?: string } | undefined)?.err ?? ''})`);
      (globalThis as { gc?: () => void }).gc?.();
      const rss1 = process.memoryUsage().rss;
      const reserved = stack.tcpMemory.inUse;

      // Another connection keeps flowing: 8 MB from the kernel, hashed on both ends.
      const hash = createHash('sha256');
      const sink = stack.tcpListen(6001);
      const got = new Promise<string>((resolve) => {
        sink.onConnection = (c) => {
          c.events = {
            onData: (d) => { hash.update(d); c.release(d.length, now()); schedule(); },
            onEnd: () => { c.close(now()); schedule(); resolve(hash.digest('hex')); },
          };
        };
      });
      const sender = python(`
import socket, os, hashlib
data = os.urandom(8_000_000)
s = socket.create_connection(('10.204.0.2', 6001), timeout=60)
s.sendall(data); s.shutdown(socket.SHUT_WR); s.recv(1)
print(hashlib.sha256(data).hexdigest(), flush=True)
`);
      const [ours, theirs] = await Promise.all([got, sender.done]);
      const c = stack.counters;
      const lines = [
        `RSS ${mib(rss0)} before, ${mib(rss1)} with ${held.length} kernel connections held (growth ${mib(rss1 - rss0)}, ` +
          `${((rss1 - rss0) / held.length / 1024).toFixed(0)} KiB each), peak ${mib(rssPeak)}`,
        `stack: reserved ${mib(reserved)} of ${mib(stack.tcpMemory.high)}, peak ${mib(c.tcpMemoryPeak)}; pressure events ${c.tcpMemoryPressureEvents}, ` +
          `window clamps ${c.tcpWindowClamps}, send clamps ${c.tcpSendBufferClamps}, refused ${c.tcpMemoryRefused}, drops ${c.tcpMemoryDrops}`,
        `kernel clients: ${filled}`,
      ];
      for (const l of lines) t.diagnostic(l);
      assert.equal(theirs.out.trim(), ours, 'the 8 MB arrived intact');
      assert.equal(held.length, FLOOD, 'all admitted');
      assert.ok(c.tcpMemoryPeak <= stack.tcpMemory.high, 'never over the budget');
      // Without the budget each connection could pin 4 MiB received plus 4 MiB to send (~8 GiB).
      // The stack reserves at most 128 MiB; at about twice that in RSS (per-segment chunks, 16 KiB
      // send blocks, connection objects), 400 MiB bounds it.
      assert.ok(rss1 - rss0 < 400 * MiB, `RSS grew by ${mib(rss1 - rss0)}`);
      assert.equal(c.internalErrors, 0);
      flood.close();
      sink.close();
      for (const h of held) h.abort(now());
      schedule();
      assert.equal(stack.tcpMemory.inUse, 0, 'every reserved byte returned');
    } finally {
      clients.proc.kill('SIGKILL');
      await clients.done;
    }
  });
});
