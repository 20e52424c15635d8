/**
 * Single-stream TCP throughput of the userspace stack, measured before and after changes to its
 * windows and buffers (no root, no namespaces):
 *   - tunnel: two netstack() tunnels in one process over a MemoryNetwork, connect() → listen(),
 *     N MiB with a SHA-256 over both ends (wall-clock MB/s; includes WireGuard crypto);
 *   - wire: two bare TcpIpStacks on the virtual wire (5 ms one-way), N MiB: virtual-time MB/s,
 *     which is window/RTT-bound and so shows what the receive window lets through.
 *
 *   node --import tsx bench/netstack-stream.ts [--mib N] [--repeat N]
 * Reports only; nothing asserts a timing.
 */
import { createHash } from 'node:crypto';
import { makePair } from '../test/netstack/helpers.ts';
import { connected, writeAll } from '../test/netstack/stack/tcp-support.ts';
import { pattern } from '../test/netstack/stack/wire.ts';

const args = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const MIB = opt('--mib', 64);
const REPEAT = opt('--repeat', 3);

async function tunnelRun(): Promise<number> {
  const pair = await makePair();
  try {
    const server = pair.bob.listen(9000);
    const chunk = Buffer.from(pattern(64 * 1024, 3));
    const total = MIB * 1024 * 1024;
    const got = new Promise<{ n: number; hash: string }>((resolve) => {
      server.on('connection', (s) => {
        const h = createHash('sha256');
        let n = 0;
        s.on('data', (d: Buffer) => { h.update(d); n += d.length; });
        s.on('end', () => { const r = { n, hash: h.digest('hex') }; s.end(); s.once('close', () => resolve(r)); });
      });
    });
    const sock = pair.alice.connect({ host: '10.0.0.2', port: 9000 });
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const sent = createHash('sha256');
    const t0 = performance.now();
    let off = 0;
    await new Promise<void>((resolve) => {
      const pump = () => {
        while (off < total) {
          sent.update(chunk);
          off += chunk.length;
          if (!sock.write(chunk)) { sock.once('drain', pump); return; }
        }
        sock.end();
        resolve();
      };
      pump();
    });
    const r = await got;
    const ms = performance.now() - t0;
    if (r.n !== total || r.hash !== sent.digest('hex')) throw new Error(`transfer corrupt: ${r.n} of ${total}`);
    return total / 1e6 / (ms / 1000);
  } finally {
    // Not measured; a close that has to reset a lingering connection is no concern here.
    await pair.close().catch(() => {});
  }
}

function wireRun(): { mbps: number; wallMs: number } {
  const { wire, client, serverLog } = connected();
  wire.record = false;
  const data = pattern(MIB * 1024 * 1024, 5);
  const t0 = wire.now;
  const w0 = performance.now();
  writeAll(client, data, wire, () => client.shutdown(wire.now));
  if (!wire.runWhile(() => !serverLog.ended, 3_600_000)) throw new Error('wire transfer did not finish');
  const ms = wire.now - t0;
  let n = 0;
  for (const d of serverLog.data) n += d.length;
  if (n !== data.length) throw new Error('wire transfer short');
  return { mbps: data.length / 1e6 / (ms / 1000), wallMs: performance.now() - w0 };
}

const tunnel: number[] = [];
const wire: number[] = [];
for (let i = 0; i < REPEAT; i++) {
  tunnel.push(await tunnelRun());
  const w = wireRun();
  wire.push(w.mbps);
  process.stderr.write(`run ${i + 1}: tunnel ${tunnel[i]!.toFixed(1)} MB/s, wire ${w.mbps.toFixed(1)} MB/s virtual (${w.wallMs.toFixed(0)} ms wall)\n`);
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
console.log(`${MIB} MiB single stream: tunnel median ${median(tunnel).toFixed(1)} MB/s (wall clock), ` +
  `virtual wire (10 ms RTT) median ${median(wire).toFixed(1)} MB/s`);
