/**
 * Linux TUN throughput through koffi (src/device/linux/tun.ts): packets per second read from and
 * written to a real TUN device. Needs root and /dev/net/tun.
 *
 *   node --import tsx bench/tun.ts [--seconds N] [--size B] [--json]
 *
 * The TUN (wwbt<pid>) lives in a private network namespace (wwbn<pid>) with 10.<x>.0.1/24 and
 * IPv6 off, so nothing touches the host; both are removed at the end. Cases:
 *   read, drain   UDP datagrams are queued in the kernel first (txqueuelen raised, reader not yet
 *                 started; a sender process in the namespace fills the queue), then the reader
 *                 starts: the time from the first to the last packet handed to the handler is
 *                 the reader's own rate (worker read() → ring → main-thread handler), free of
 *                 the sender's speed.
 *   read, live    a sender process in the namespace sends UDP as fast as node:dgram can while
 *                 the reader runs: shows the sender and the reader sharing the machine.
 *   write         write() of one UDP datagram per call on the main thread, for N seconds; the
 *                 kernel takes each through IP input to UDP (no socket listens: ICMP port
 *                 unreachable, rate-limited, comes back out of the TUN and is ignored).
 *   echo          `ping -f` in the namespace answered by an echo handler: round trips per second
 *                 (one packet in flight; latency-bound, not throughput-bound).
 * Reports only; nothing asserts a timing.
 */
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { openLinuxTun } from '../src/device/linux/tun.ts';
import type { LinuxTun } from '../src/device/linux/tun.ts';
import { environment, formatRate } from './util.ts';

const USAGE = `usage: node --import tsx bench/tun.ts [--seconds N] [--size B] [--json]
  --seconds N   length of the live-read and write cases (default 2)
  --size B      UDP payload bytes (default 1392: 1420-byte IP packets)
  --json        print JSON instead of text`;

interface Args { seconds: number; size: number; json: boolean }

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { seconds: 2, size: 1392, json: false };
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

function sh(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, out }));
  });
}

async function must(cmd: string, ...args: string[]): Promise<string> {
  const r = await sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.out}`);
  return r.out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** IPv4/UDP packet src:9999 → dst:9 with `size` payload bytes; UDP checksum 0 (none). */
function udpPacket(src: string, dst: string, size: number): Uint8Array {
  const p = new Uint8Array(28 + size);
  const v = new DataView(p.buffer);
  p[0] = 0x45;
  v.setUint16(2, p.length);
  p[8] = 64;
  p[9] = 17;
  p.set(src.split('.').map(Number), 12);
  p.set(dst.split('.').map(Number), 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += v.getUint16(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  v.setUint16(10, ~sum & 0xffff);
  v.setUint16(20, 9999);
  v.setUint16(22, 9);
  v.setUint16(24, 8 + size);
  return p;
}

/** Sender mode (runs inside the namespace): `--send <host> <count> <seconds> <size>`. */
async function sender(argv: readonly string[]): Promise<void> {
  const [host, countText, secondsText, sizeText] = argv;
  const count = Number(countText);
  const until = Date.now() + Number(secondsText) * 1000;
  const payload = Buffer.alloc(Number(sizeText));
  const sock = dgram.createSocket('udp4');
  sock.connect(9, host);
  await new Promise((r) => sock.once('connect', r));
  let sent = 0;
  let done = 0;
  let failed = 0;
  const onSent = (err: Error | null) => {
    done++;
    if (err) failed++;
  };
  while ((count === 0 || sent < count) && Date.now() < until) {
    const batch = count === 0 ? 256 : Math.min(256, count - sent);
    for (let i = 0; i < batch; i++) sock.send(payload, onSent);
    sent += batch;
    // Let the callbacks catch up so libuv's queue stays short.
    while (sent - done > 1024) await new Promise((r) => setImmediate(r));
  }
  while (done < sent) await new Promise((r) => setImmediate(r));
  sock.close();
  process.stdout.write(JSON.stringify({ sent, failed }) + '\n');
}

function spawnSender(ns: string, host: string, count: number, seconds: number, size: number): Promise<{ sent: number; failed: number }> {
  const self = fileURLToPath(import.meta.url);
  const args = ['netns', 'exec', ns, process.execPath, ...process.execArgv, self, '--send', host, String(count), String(seconds), String(size)];
  return must('ip', ...args).then((out) => JSON.parse(out.trim().split('\n').pop()!) as { sent: number; failed: number });
}

interface Result { case: string; packets: number; seconds: number; pps: number; mbits: number; note: string }

function result(name: string, packets: number, seconds: number, ipBytes: number, note: string): Result {
  const pps = packets / seconds;
  return { case: name, packets, seconds, pps, mbits: (pps * ipBytes * 8) / 1e6, note };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--send') return sender(argv.slice(1));
  const args = parseArgs(argv);
  if (process.getuid?.() !== 0) throw new Error('bench/tun.ts needs root (TUN device, network namespace)');
  const pid = process.pid;
  const x = 20 + (pid % 200);
  const ns = `wwbn${pid}`;
  const ipBytes = 28 + args.size;
  const results: Result[] = [];
  const log = (s: string) => process.stderr.write(`${s}\n`);
  let tun: LinuxTun | undefined;
  await must('ip', 'netns', 'add', ns);
  try {
    const QUEUE = 60_000;
    const t = await openLinuxTun(`wwbt${pid}`, { mtu: Math.max(1420, ipBytes) });
    tun = t;
    await must('ip', 'link', 'set', 'dev', t.name, 'netns', ns);
    await must('ip', 'netns', 'exec', ns, 'sysctl', '-qw', `net.ipv6.conf.${t.name}.disable_ipv6=1`);
    await must('ip', '-n', ns, 'addr', 'add', `10.${x}.0.1/24`, 'dev', t.name);
    await must('ip', '-n', ns, 'link', 'set', 'dev', t.name, 'txqueuelen', String(QUEUE), 'up');

    // ---- read, drain: fill the kernel queue first, then time the reader alone.
    log(`read, drain: queueing ${QUEUE} packets in the kernel…`);
    const filled = await spawnSender(ns, `10.${x}.0.2`, QUEUE, 60, args.size);
    let n = 0;
    let first = 0;
    let last = 0;
    let mode: 'count' | 'echo' | 'ignore' = 'count';
    const peer = `10.${x}.0.2`;
    const local = `10.${x}.0.1`;
    t.start((p) => {
      if (mode === 'count') {
        if (n === 0) first = performance.now();
        n++;
        last = performance.now();
      } else if (mode === 'echo' && p[0] === 0x45 && p[9] === 1 && p[20] === 8) {
        // Echo request → reply in place: swap addresses, type 0, adjust the ICMP checksum (RFC 1624).
        const r = p.slice();
        r.set(p.subarray(16, 20), 12);
        r.set(p.subarray(12, 16), 16);
        r[20] = 0;
        let sum = ((r[22]! << 8) | r[23]!) + 0x0800;
        sum = (sum & 0xffff) + (sum >>> 16);
        r[22] = sum >> 8;
        r[23] = sum & 0xff;
        t.write(r);
      }
    });
    for (let idle = 0; idle < 10 && n < filled.sent; ) {
      const before = n;
      await sleep(50);
      idle = n === before ? idle + 1 : 0;
    }
    results.push(result('read, drain (kernel queue → handler)', n - 1, (last - first) / 1000, ipBytes, `${n} of ${filled.sent} queued; ring drops ${t.stats.rxDropped}`));

    // ---- read, live: a sender in the namespace while the reader runs.
    log(`read, live: ${args.seconds} s of node:dgram sending…`);
    n = 0;
    const dropsBefore = t.stats.rxDropped;
    const live = await spawnSender(ns, peer, 0, args.seconds, args.size);
    await sleep(100);
    results.push(result('read, live (dgram sender in the namespace)', n, args.seconds, ipBytes, `sender sent ${live.sent}; ring drops ${t.stats.rxDropped - dropsBefore}`));

    // ---- write: one packet per write() call on the main thread.
    log(`write: ${args.seconds} s…`);
    mode = 'ignore';
    const pkt = udpPacket(peer, local, args.size);
    const before = t.stats;
    const t0 = performance.now();
    const end = t0 + args.seconds * 1000;
    let writes = 0;
    let now = t0;
    while (now < end) {
      for (let i = 0; i < 1024; i++) t.write(pkt);
      writes += 1024;
      now = performance.now();
      if ((writes & 0xffff) === 0) await new Promise((r) => setImmediate(r)); // let the reader's wake-ups through
    }
    const after = t.stats;
    results.push(result('write (main thread, one packet per call)', after.txPackets - before.txPackets, (now - t0) / 1000, ipBytes, `${writes} calls; EAGAIN drops ${after.txDropped - before.txDropped}, errors ${after.txErrors - before.txErrors}`));

    // ---- echo: ping -f round trips.
    log('echo: ping -f -c 20000…');
    mode = 'echo';
    const e0 = performance.now();
    const ping = await sh('ip', ['netns', 'exec', ns, 'ping', '-q', '-f', '-c', '20000', '-W', '1', '-w', '120', peer]);
    const es = (performance.now() - e0) / 1000;
    const received = Number(/(\d+) received/.exec(ping.out)?.[1] ?? 0);
    results.push(result('echo (ping -f, one in flight)', received, es, 84, `${received}/20000 answered; includes ping's start-up`));
  } finally {
    await tun?.close();
    await sh('ip', ['netns', 'del', ns]);
  }

  if (args.json) {
    process.stdout.write(JSON.stringify({ environment: environment(), size: args.size, results }, null, 2) + '\n');
    return;
  }
  const env = environment();
  console.log(`TUN via koffi: ${env.cpu}, ${env.cores} cores, node ${env.node}, ${env.platform}; IP packets of ${ipBytes} B`);
  for (const r of results) console.log(`${r.case.padEnd(44)} ${formatRate(r.pps).padStart(10)} pps ${r.mbits.toFixed(0).padStart(6)} Mbit/s  (${r.note})`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
