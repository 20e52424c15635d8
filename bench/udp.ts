/**
 * UDP bind throughput on loopback: LinuxUdpBind (koffi sendmsg / worker recvmmsg into a ring)
 * against NodeUdpBind (node:dgram), datagrams per second sent and received.
 *
 *   node --import tsx bench/udp.ts [--seconds N] [--size B] [--json]
 *
 * Cases, for each bind:
 *   send           the main thread calls bind.send() with one datagram at a time for N seconds,
 *                  to a socket on 127.0.0.1 that nobody reads (so the kernel queues, then drops,
 *                  at the receiving socket; the sender does not notice). node:dgram completes
 *                  sends on the event loop: its loop yields every 256 sends and is timed to the
 *                  last send's callback; LinuxUdpBind's sends are synchronous.
 *   receive, live  a separate process sends to the bind on 127.0.0.1 as fast as it can (through
 *                  LinuxUdpBind, the faster sender) for N seconds; counted is what reaches the
 *                  bind's receiver callback. The sender and the receiver share the machine, so
 *                  on a 2-core box this is "how much survives a flood", and the loss column is
 *                  what the receiving socket dropped because the receiver fell behind.
 *   receive, drain the main thread blocks (spawnSync) while another process sends 30,000
 *                  datagrams, which wait in the socket buffer (forced to 128 MiB on both binds,
 *                  as root); then the time from the first to the last datagram handed to the
 *                  receiver is the receive path's own rate, free of the sender's speed.
 * Sends go over IPv4 loopback only; nothing leaves the host. Reports only; asserts nothing.
 */
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { LinuxUdpBind } from '../src/device/linux/bind.ts';
import { NodeUdpBind } from '../src/device/bind-node.ts';
import type { Bind } from '../src/device/bind.ts';
import { dgramFd } from '../src/device/linux/sockopt.ts';
import koffi from 'koffi';
import { environment, formatRate, markdownTable } from './util.ts';

const USAGE = `usage: node --import tsx bench/udp.ts [--seconds N] [--size B] [--json]
  --seconds N   length of each case (default 2)
  --size B      UDP payload bytes (default 1420)
  --json        print JSON instead of a table`;

interface Args { seconds: number; size: number; json: boolean }

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { seconds: 2, size: 1420, json: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const num = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${flag} needs a positive number\n${USAGE}`);
      return v;
    };
    if (flag === '--seconds') a.seconds = num();
    else if (flag === '--size') a.size = Math.min(65507, Math.floor(num()));
    else if (flag === '--json') a.json = true;
    else throw new Error(`${flag === '--help' || flag === '-h' ? '' : `unknown argument ${flag}\n`}${USAGE}`);
  }
  return a;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tick = () => new Promise((r) => setImmediate(r));

type Impl = 'linux' | 'node';

function makeBind(impl: Impl): Bind & { stats: object } {
  return impl === 'linux' ? new LinuxUdpBind() : new NodeUdpBind();
}

/** Sender mode (another process): `--send <port> <seconds> <size> [count]`; prints { sent, dropped }. */
async function sender(argv: readonly string[]): Promise<void> {
  const [portText, secondsText, sizeText, countText] = argv;
  const count = Number(countText ?? 0);
  const bind = new LinuxUdpBind();
  await bind.open(0, () => {});
  const to = bind.endpointFor('127.0.0.1', Number(portText));
  const payload = new Uint8Array(Number(sizeText));
  const until = performance.now() + Number(secondsText) * 1000;
  let sent = 0;
  while (performance.now() < until && (count === 0 || sent < count)) {
    const n = count === 0 ? 1024 : Math.min(1024, count - sent);
    for (let i = 0; i < n; i++) bind.send(payload, to);
    sent += n;
  }
  const { txDropped } = bind.stats;
  await bind.close();
  process.stdout.write(JSON.stringify({ sent, dropped: txDropped }) + '\n');
}

function runSender(port: number, seconds: number, size: number): Promise<{ sent: number; dropped: number }> {
  const self = fileURLToPath(import.meta.url);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, self, '--send', String(port), String(seconds), String(size)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`sender exited with ${code}`));
      else resolve(JSON.parse(out.trim().split('\n').pop()!) as { sent: number; dropped: number });
    });
  });
}

interface Result { impl: Impl; case: string; datagrams: number; seconds: number; pps: number; gbits: number; note: string }

function result(impl: Impl, name: string, datagrams: number, seconds: number, size: number, note: string): Result {
  const pps = datagrams / seconds;
  return { impl, case: name, datagrams, seconds, pps, gbits: (pps * size * 8) / 1e9, note };
}

async function sendCase(impl: Impl, args: Args): Promise<Result> {
  const sink = dgram.createSocket('udp4');
  await new Promise<void>((r) => sink.bind(0, '127.0.0.1', () => r()));
  const bind = makeBind(impl);
  await bind.open(0, () => {});
  const to = bind.endpointFor('127.0.0.1', sink.address().port);
  const payload = new Uint8Array(args.size);
  let sent: number;
  let t0: number;
  let t1: number;
  if (impl === 'linux') {
    const lb = bind as LinuxUdpBind;
    const run = (ms: number) => {
      const until = performance.now() + ms;
      let n = 0;
      while (performance.now() < until) {
        for (let i = 0; i < 1024; i++) lb.send(payload, to);
        n += 1024;
      }
      return n;
    };
    run(200); // warm-up
    t0 = performance.now();
    sent = run(args.seconds * 1000);
    t1 = performance.now();
  } else {
    // NodeUdpBind.send (a copy, then dgram's send: libuv writes at once when it can and runs
    // the callback later). Yield to the event loop every 256 so the callbacks run; at the end
    // one more datagram straight on its socket, whose callback comes after all the others.
    const sock = (bind as unknown as { v4: dgram.Socket }).v4;
    const run = async (ms: number) => {
      const until = performance.now() + ms;
      let n = 0;
      while (performance.now() < until) {
        for (let i = 0; i < 256; i++) bind.send(payload, to);
        n += 256;
        await tick();
      }
      await new Promise((r) => sock.send(payload, to.port, to.address, r));
      return n + 1;
    };
    await run(200);
    t0 = performance.now();
    sent = await run(args.seconds * 1000);
    t1 = performance.now();
  }
  const stats = JSON.stringify(bind.stats);
  await bind.close();
  sink.close();
  const note = `stats ${stats}`;
  return result(impl, 'send', sent, (t1 - t0) / 1000, args.size, note);
}

async function receiveCase(impl: Impl, args: Args): Promise<Result> {
  const bind = makeBind(impl);
  let n = 0;
  let first = 0;
  let last = 0;
  let badLength = 0;
  const port = await bind.open(0, (d) => {
    if (n === 0) first = performance.now();
    n++;
    last = performance.now();
    if (d.length !== args.size) badLength++;
  });
  const s = await runSender(port, args.seconds, args.size);
  for (let idle = 0; idle < 5; ) {
    const before = n;
    await sleep(20);
    idle = n === before ? idle + 1 : 0;
  }
  const stats = bind.stats as { rxKernelDropped?: number };
  await bind.close();
  const loss = s.sent - s.dropped - n;
  const note = `sender ${formatRate((s.sent - s.dropped) / args.seconds)}/s; lost ${(100 * loss / Math.max(1, s.sent - s.dropped)).toFixed(1)} %${stats.rxKernelDropped !== undefined ? ` (SO_RXQ_OVFL ${stats.rxKernelDropped})` : ''}${badLength ? `; ${badLength} bad lengths` : ''}`;
  return result(impl, 'receive, live', n, (last - first) / 1000, args.size, note);
}

const DRAIN_COUNT = 30_000;
const DRAIN_BUFFER = 128 << 20;

/** SO_RCVBUFFORCE on a dgram socket (root), so node:dgram can queue a burst as large as ours. */
function forceRecvBuffer(sock: dgram.Socket, bytes: number): void {
  const lib = koffi.load('libc.so.6');
  const setsockopt = lib.func('int setsockopt(int, int, int, const void *, uint32_t)');
  if (setsockopt(dgramFd(sock), 1, 33, Int32Array.of(bytes), 4) !== 0) throw new Error(`SO_RCVBUFFORCE failed: errno ${koffi.errno()}`);
}

async function drainCase(impl: Impl, args: Args): Promise<Result> {
  const bind = impl === 'linux' ? new LinuxUdpBind({ socketBuffer: DRAIN_BUFFER }) : new NodeUdpBind();
  let n = 0;
  let first = 0;
  let last = 0;
  const port = await bind.open(0, () => {
    if (n === 0) first = performance.now();
    n++;
    last = performance.now();
  });
  if (impl === 'node') forceRecvBuffer((bind as unknown as { v4: dgram.Socket }).v4, DRAIN_BUFFER);
  // The main thread is blocked while the sender runs: everything waits in the socket buffer
  // (and, for LinuxUdpBind, the first ring-full in the ring).
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, [...process.execArgv, self, '--send', String(port), '60', String(args.size), String(DRAIN_COUNT)], { stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`sender exited with ${r.status}`);
  const s = JSON.parse(r.stdout.toString().trim().split('\n').pop()!) as { sent: number; dropped: number };
  for (let idle = 0; idle < 5; ) {
    const before = n;
    await sleep(20);
    idle = n === before ? idle + 1 : 0;
  }
  await bind.close();
  return result(impl, 'receive, drain', n - 1, (last - first) / 1000, args.size, `${n} of ${s.sent - s.dropped} queued while the main thread was blocked`);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--send') return sender(argv.slice(1));
  const args = parseArgs(argv);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const results: Result[] = [];
  for (const impl of ['linux', 'node'] as const) {
    log(`${impl}: send, ${args.seconds} s…`);
    results.push(await sendCase(impl, args));
    log(`${impl}: receive, ${args.seconds} s…`);
    results.push(await receiveCase(impl, args));
    log(`${impl}: receive, drain of ${DRAIN_COUNT}…`);
    results.push(await drainCase(impl, args));
  }
  if (args.json) {
    process.stdout.write(JSON.stringify({ environment: environment(), size: args.size, results }, null, 2) + '\n');
    return;
  }
  const env = environment();
  process.stdout.write(`UDP binds on loopback, ${args.size}-byte datagrams, ${args.seconds} s per case (${env.cpu}, ${env.cores} cores, Node ${env.node})\n\n`);
  const rows = results.map((r) => [r.case, r.impl === 'linux' ? 'LinuxUdpBind' : 'NodeUdpBind', formatRate(r.pps), r.gbits.toFixed(2), r.note]);
  process.stdout.write(markdownTable(['case', 'bind', 'datagrams/s', 'Gbit/s', 'notes'], rows, [false, false, true, true, false]) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
