/**
 * Soak test (issue 6): two wireweave daemons in network namespaces (test/support/netns.ts)
 * with continuous traffic for N minutes, while the sessions rekey (every 120 s, driven by the
 * traffic), the peers are reconfigured and their endpoints change.
 *
 *   npm run soak -- [--minutes N] [--rate MBPS] [--sample S] [--out FILE]
 *
 * Traffic: a TCP stream A → B through the tunnel at --rate MB/s (default 4; 0 = as fast as it
 * goes), reconnecting if it ever breaks, and a continuous ping B → A (every 0.5 s).
 * Every minute, in turn: `wg set` persistent-keepalive on/off on A; `wg set` allowed-ips on B
 * with and without an extra prefix (the tunnel addresses always stay); A's listen-port
 * changes (B must follow A's new source port: roaming); B's endpoint for A moves between A's
 * IPv4 and IPv6 underlay addresses.
 *
 * A session is lost when (a) no stream bytes arrive at B for more than STALL_MS (from the
 * receiver's report every second), (b) no ping B → A is answered for more than STALL_MS (the
 * longest run of unanswered sequence numbers), (c) the TCP stream breaks (the sender reconnects), or
 * (d) a daemon logs a handshake failure (no answer for 90 s) or exits. The result must be 0.
 *
 * Reports (stdout and docs/soak/soak-<UTC date>.md, or --out): throughput per sample interval,
 * handshakes seen (distinct `latest handshake` values), RSS (whole and anonymous) and CPU of both
 * daemons over time, and their V8 heap size and live heap (after the latest major collection),
 * which each daemon serves through --metrics in its namespace.
 * Exit code 1 if any session was lost or a daemon died.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { rigLeftovers, rigPrereqsMissing, setupPair } from '../test/support/netns.ts';
import type { Pair } from '../test/support/netns.ts';
import { FETCH_METRICS, parseMetrics, procSample, sleep, STREAM_RECEIVER, STREAM_SENDER, streamReports } from '../test/support/flood-tools.ts';
import type { ProcSample } from '../test/support/flood-tools.ts';
import { markdownTable } from './util.ts';
import type { RigNode } from '../test/support/netns.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const STALL_MS = 10_000;
const PING_INTERVAL_MS = 500;
const STREAM_PORT = 5301;
/** Each daemon serves --metrics inside its own namespace; the harness scrapes its memory there. */
const METRICS_ADDR = '127.0.0.1:9586';

/** The daemon's own view of its memory (process.memoryUsage and V8 through --metrics), bytes. */
interface HeapSample { heapUsed: number; heapTotal: number; live: number; majorGcs: number; newSpace: number }

function parseHeap(text: string): HeapSample | undefined {
  const m = parseMetrics(text);
  const heapUsed = m.nodejs_heap_size_used_bytes, heapTotal = m.nodejs_heap_size_total_bytes;
  if (heapUsed === undefined || heapTotal === undefined) return undefined;
  // The live heap is NaN (left out) until the daemon's first major collection.
  return { heapUsed, heapTotal, live: m.nodejs_heap_live_bytes ?? NaN, majorGcs: m.nodejs_gc_major_collections_total ?? NaN, newSpace: m['nodejs_heap_space_size_total_bytes{space="new"}'] ?? NaN };
}

const USAGE = `usage: npm run soak -- [--minutes N] [--rate MBPS] [--sample S] [--out FILE]
  --minutes N   how long (default 30)
  --rate MBPS   TCP stream A -> B in MB/s (default 4; 0 = unlimited)
  --sample S    seconds between samples (default 10)
  --out FILE    report file (default docs/soak/soak-<UTC date>.md, or -2, -3... if that exists)`;

interface Args { minutes: number; rate: number; sample: number; out: string }

function parseArgs(argv: string[]): Args {
  const date = new Date().toISOString().slice(0, 10);
  const a: Args = { minutes: 30, rate: 4, sample: 10, out: path.join(REPO, 'docs', 'soak', `soak-${date}.md`) };
  let explicitOut = false;
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = argv[i + 1];
    const num = (): number => {
      const n = Number(v);
      if (v === undefined || !Number.isFinite(n) || n < 0) throw new Error(`${k} needs a number\n${USAGE}`);
      i++;
      return n;
    };
    if (k === '--minutes') a.minutes = num();
    else if (k === '--rate') a.rate = num();
    else if (k === '--sample') a.sample = Math.max(1, num());
    else if (k === '--out') { if (!v) throw new Error(USAGE); a.out = path.resolve(v); explicitOut = true; i++; }
    else if (k === '--help' || k === '-h') { process.stdout.write(`${USAGE}\n`); process.exit(0); }
    else throw new Error(`unknown argument ${k}\n${USAGE}`);
  }
  // Never overwrite an earlier run of the same day by default.
  if (!explicitOut) for (let n = 2; fs.existsSync(a.out); n++) a.out = path.join(REPO, 'docs', 'soak', `soak-${date}-${n}.md`);
  return a;
}

interface Sample {
  t: number;
  mbPerS: number;
  pingOk: boolean;
  /** Longest stream stall and ping gap so far, ms. */
  maxStall: number;
  maxPingGap: number;
  handshakes: number;
  a?: ProcSample;
  b?: ProcSample;
  heapA?: HeapSample;
  heapB?: HeapSample;
  action: string;
}

function log(msg: string): void {
  process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const missing = rigPrereqsMissing(['wireweave']);
  if (missing) { log(`cannot run: ${missing}`); return 2; }
  log(`${args.minutes} min, stream ${args.rate || 'unlimited'} MB/s A -> B, sample every ${args.sample} s`);
  // On a busy (shared) machine a daemon can miss setupPair's 10 s readiness bound: try again.
  let p: Pair | undefined;
  for (let attempt = 1; !p; attempt++) {
    try {
      p = await setupPair('soak', 'wireweave', 'wireweave', { daemonEnv: { WIREWEAVE_METRICS: METRICS_ADDR } });
    } catch (e) {
      if (attempt >= 3) throw e;
      log(`setup failed (${(e as Error).message.split('\n')[0]}), retrying`);
    }
  }
  try {
    return await soak(p, args);
  } finally {
    await p.rig.destroy();
    const left = rigLeftovers();
    if (left.length) log(`left behind: ${left.join(', ')}`);
  }
}

async function soak(p: Pair, args: Args): Promise<number> {
  const { rig, a, b, da, db } = p;
  const started = new Date();
  const t0 = Date.now();
  const lost: string[] = [];
  const samples: Sample[] = [];
  const handshakeTimes = new Set<number>();
  const actions: string[] = [];

  const recv = rig.spawnIn(b, [process.execPath, '-e', STREAM_RECEIVER, b.tun4, String(STREAM_PORT), '1000']);
  await recv.waitFor(/listening/, 10_000);
  const send = rig.spawnIn(a, [process.execPath, '-e', STREAM_SENDER, b.tun4, String(STREAM_PORT), String(args.rate * 1e6)]);
  await send.waitFor(/connected 1/, 20_000);
  const pinger = rig.spawnIn(b, ['ping', '-n', '-i', String(PING_INTERVAL_MS / 1000), '-W', '2', a.tun6]);
  log('stream up');

  // Reconfiguration and endpoint changes, one per minute in turn.
  let step = 0;
  let portA = p.portA;
  let bToA6 = false;
  const reconfigure = async (): Promise<string> => {
    const k = step++ % 4;
    if (k === 0) {
      const ka = step % 8 < 4 ? '25' : 'off';
      await rig.wgOk(['set', da.ifname, 'peer', p.keysB.publicKey, 'persistent-keepalive', ka]);
      return `A: persistent-keepalive ${ka}`;
    }
    if (k === 1) {
      const extra = step % 8 < 4 ? ',198.51.100.0/24' : '';
      await rig.wgOk(['set', db.ifname, 'peer', p.keysA.publicKey, 'allowed-ips', `${a.tun4}/32,${a.tun6}/128${extra}`]);
      return `B: allowed-ips ${extra ? 'with' : 'without'} 198.51.100.0/24`;
    }
    if (k === 2) {
      portA = portA === p.portA ? p.portA + 1000 : p.portA;
      await rig.wgOk(['set', da.ifname, 'listen-port', String(portA)]);
      return `A: listen-port ${portA}`;
    }
    bToA6 = !bToA6;
    const ep = bToA6 ? `[${a.addr6}]:${portA}` : `${a.addr4}:${portA}`;
    await rig.wgOk(['set', db.ifname, 'peer', p.keysA.publicKey, 'endpoint', ep]);
    return `B: endpoint of A ${ep}`;
  };

  let lastBytes = 0;
  let lastT = 0;
  // Stream stalls from the receiver's 1 s reports (its own clock).
  let lastProgressT = 0;
  let maxStall = 0;
  let stallFlagged = false;
  let reportsSeen = 0;
  // Ping gaps from the sequence numbers answered.
  let maxPingGap = 0;
  const flaggedGaps = new Set<number>();
  let repliesBefore = 0;
  let lastMaxSeq = 0;
  let lastReplyAt = Date.now();
  let closedSeen = 0;
  let failSeen = false;
  let nextReconfig = Date.now() + 60_000;
  const end = t0 + args.minutes * 60_000;

  while (Date.now() < end) {
    await sleep(Math.min(args.sample * 1000, Math.max(0, end - Date.now())));
    const now = Date.now();
    let action = '';
    if (now >= nextReconfig) {
      nextReconfig += 60_000;
      try {
        action = await reconfigure();
      } catch (e) {
        action = `reconfigure failed: ${(e as Error).message.slice(0, 200)}`;
        lost.push(`${fmtT(now - t0)} ${action}`);
      }
      actions.push(`${fmtT(now - t0)} ${action}`);
    }
    const reports = streamReports(recv.stdout());
    const last = reports.at(-1);
    const bytes = last?.bytes ?? 0;
    const dt = last ? (last.t - lastT) / 1000 : 0;
    const mbPerS = dt > 0 ? (bytes - lastBytes) / 1e6 / dt : 0;
    if (last) { lastBytes = bytes; lastT = last.t; }
    let prevBytes = reportsSeen > 0 ? reports[Math.min(reportsSeen, reports.length) - 1]?.bytes ?? 0 : 0;
    for (const rpt of reports.slice(reportsSeen)) {
      if (rpt.bytes > prevBytes) { lastProgressT = rpt.t; stallFlagged = false; }
      prevBytes = rpt.bytes;
      const stall = rpt.t - lastProgressT;
      maxStall = Math.max(maxStall, stall);
      if (stall > STALL_MS && !stallFlagged) { stallFlagged = true; lost.push(`${fmtT(now - t0)} stream stalled for more than ${STALL_MS / 1000} s`); }
    }
    reportsSeen = reports.length;
    // Unanswered runs of ping sequence numbers between answered ones (exact), and an ongoing
    // silence measured from when the highest answered number last grew (to a sample's accuracy).
    const replied = new Set<number>();
    for (const m of pinger.stdout().matchAll(/bytes from .* icmp_seq=(\d+)/g)) replied.add(Number(m[1]));
    let minSeq = Infinity, maxSeq = 0;
    for (const q of replied) { if (q < minSeq) minSeq = q; if (q > maxSeq) maxSeq = q; }
    let run = 0;
    for (let q = Number.isFinite(minSeq) ? minSeq : 1; q <= maxSeq; q++) {
      if (replied.has(q)) { run = 0; continue; }
      run++;
      const gap = run * PING_INTERVAL_MS;
      maxPingGap = Math.max(maxPingGap, gap);
      const start = q - run + 1;
      if (gap > STALL_MS && !flaggedGaps.has(start)) { flaggedGaps.add(start); lost.push(`${fmtT(now - t0)} no ping reply B -> A for more than ${STALL_MS / 1000} s (from icmp_seq ${start})`); }
    }
    if (maxSeq > lastMaxSeq) { lastMaxSeq = maxSeq; lastReplyAt = Date.now(); }
    const silence = Date.now() - lastReplyAt;
    maxPingGap = Math.max(maxPingGap, silence - args.sample * 1000);
    if (silence > STALL_MS + args.sample * 1000 && !flaggedGaps.has(lastMaxSeq + 1)) {
      flaggedGaps.add(lastMaxSeq + 1);
      lost.push(`${fmtT(now - t0)} no ping reply B -> A for more than ${STALL_MS / 1000} s (ongoing, from icmp_seq ${lastMaxSeq + 1})`);
    }
    const ping = { received: replied.size - repliesBefore, transmitted: Math.round((args.sample * 1000) / PING_INTERVAL_MS) };
    repliesBefore = replied.size;
    let handshakes = handshakeTimes.size;
    try {
      const dump = await rig.dump(da.ifname);
      for (const peer of dump.peers) if (peer.latestHandshake > 0) handshakeTimes.add(peer.latestHandshake);
      handshakes = handshakeTimes.size;
    } catch (e) {
      lost.push(`${fmtT(now - t0)} wg show failed: ${(e as Error).message.slice(0, 200)}`);
    }
    const closes = send.stdout().split('\n').filter((l) => l.includes('"event":"closed"')).length;
    if (closes > closedSeen) { lost.push(`${fmtT(now - t0)} TCP stream broke (${closes - closedSeen}×), sender reconnects`); closedSeen = closes; }
    const logs = da.logs() + db.logs();
    if (!failSeen && /giving up/.test(logs)) { failSeen = true; lost.push(`${fmtT(now - t0)} handshake failure logged`); }
    for (const d of [da, db]) if (!d.proc.running()) { lost.push(`${fmtT(now - t0)} daemon ${d.node.label} exited`); break; }
    const [heapA, heapB] = await Promise.all([scrapeHeap(rig, a), scrapeHeap(rig, b)]);
    const s: Sample = { t: now - t0, mbPerS, pingOk: ping.received > 0, maxStall, maxPingGap, handshakes, a: procSample(da.proc.pid), b: procSample(db.proc.pid), heapA, heapB, action };
    samples.push(s);
    log(`${fmtT(s.t)} ${mbPerS.toFixed(2)} MB/s, ping ${ping.received}/~${ping.transmitted}, handshakes ${handshakes}, RSS A ${mib(s.a?.rssKiB)} B ${mib(s.b?.rssKiB)} MiB, heap A ${mibB(heapA?.heapUsed)} B ${mibB(heapB?.heapUsed)}, live A ${mibB(heapA?.live)} B ${mibB(heapB?.live)}${action ? `, ${action}` : ''}${lost.length ? `, LOST ${lost.length}` : ''}`);
    if (!da.proc.running() || !db.proc.running()) break;
  }
  await send.stop();
  await recv.stop();
  await pinger.stop();

  const report = renderReport(args, started, samples, lost, actions, lastBytes);
  fs.mkdirSync(path.dirname(args.out), { recursive: true });
  fs.writeFileSync(args.out, report);
  process.stdout.write(report);
  log(`report written to ${path.relative(REPO, args.out)}`);
  return lost.length === 0 ? 0 : 1;
}

async function scrapeHeap(rig: Pair['rig'], node: RigNode): Promise<HeapSample | undefined> {
  const r = await rig.exec(node, [process.execPath, '-e', FETCH_METRICS, `http://${METRICS_ADDR}/metrics`], { timeoutMs: 10_000 }).catch(() => undefined);
  return r && r.code === 0 ? parseHeap(r.stdout) : undefined;
}

function mibB(bytes: number | undefined): string {
  return bytes === undefined || Number.isNaN(bytes) ? '—' : (bytes / 1048576).toFixed(1);
}

function fmtT(ms: number): string {
  const s = Math.round(ms / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

function mib(kib: number | undefined): string {
  return kib === undefined || Number.isNaN(kib) ? '—' : (kib / 1024).toFixed(1);
}

function renderReport(args: Args, started: Date, samples: Sample[], lost: string[], actions: string[], totalBytes: number): string {
  const first = samples[0];
  const last = samples.at(-1);
  const minutes = last ? last.t / 60_000 : 0;
  const cpu = (k: 'a' | 'b'): string => {
    const s0 = first?.[k], s1 = last?.[k];
    if (!s0 || !s1 || !last || !first || last.t === first.t) return '—';
    return `${((100 * (s1.cpuSeconds - s0.cpuSeconds)) / ((last.t - first.t) / 1000)).toFixed(0)} %`;
  };
  const rates = samples.map((s) => s.mbPerS).filter((x) => x > 0).sort((x, y) => x - y);
  const median = rates.length ? rates[Math.floor(rates.length / 2)]! : 0;
  // One row per minute (the sample closest to each whole minute) keeps the table readable.
  const rows: string[][] = [];
  let nextMinute = 0;
  for (const s of samples) {
    if (s.t < nextMinute * 60_000 && s !== last) continue;
    nextMinute = Math.floor(s.t / 60_000) + 1;
    rows.push([fmtT(s.t), s.mbPerS.toFixed(2), s.pingOk ? 'ok' : 'FAIL', String(s.handshakes), mib(s.a?.rssKiB), mib(s.b?.rssKiB),
      mib(s.a?.rssAnonKiB), mib(s.b?.rssAnonKiB), mibB(s.heapA?.heapTotal), mibB(s.heapB?.heapTotal), mibB(s.heapA?.live), mibB(s.heapB?.live),
      s.a ? s.a.cpuSeconds.toFixed(0) : '—', s.b ? s.b.cpuSeconds.toFixed(0) : '—']);
  }
  // Memory trend after the first third (start-up, first rekeys and ring warm-up are over by then):
  // the least-squares slope and the band RSS stays in. Flat means the slope's projection over
  // the whole run is within the band's own noise, not a steady climb.
  const trend = (k: 'a' | 'b', field: 'rssKiB' | 'rssAnonKiB' = 'rssKiB', from = (last?.t ?? 0) / 3): string => {
    const pts = samples.filter((x) => x.t >= from && x[k] && !Number.isNaN(x[k][field])).map((x) => [x.t / 3_600_000, x[k]![field] / 1024] as const);
    if (pts.length < 3) return '—';
    const mx = pts.reduce((acc, [x]) => acc + x, 0) / pts.length, my = pts.reduce((acc, [, y]) => acc + y, 0) / pts.length;
    const slope = pts.reduce((acc, [x, y]) => acc + (x - mx) * (y - my), 0) / pts.reduce((acc, [x]) => acc + (x - mx) ** 2, 0);
    const ys = pts.map(([, y]) => y);
    return `${slope >= 0 ? '+' : ''}${slope.toFixed(1)} MiB/h; within ${Math.min(...ys).toFixed(1)}–${Math.max(...ys).toFixed(1)} MiB`;
  };
  const heapRange = (k: 'heapA' | 'heapB', field: 'heapUsed' | 'live' = 'heapUsed'): string => {
    const v = samples.filter((x) => x.t >= (last?.t ?? 0) / 3).map((x) => x[k]?.[field] ?? NaN).filter((x) => !Number.isNaN(x));
    return v.length ? `${mibB(Math.min(...v))}–${mibB(Math.max(...v))} MiB` : '—';
  };
  const majorGcs = (k: 'heapA' | 'heapB'): string => String(samples.at(-1)?.[k]?.majorGcs ?? '—');
  // V8 grows the young generation in steps up to a fixed cap (32 MiB on 64-bit), each step a
  // step in RSS; from the first sample at the run's largest young generation on, RSS must be flat.
  const sinceYoungCap = (k: 'a' | 'b'): string => {
    const hk = k === 'a' ? 'heapA' : 'heapB';
    const sizes = samples.map((x) => x[hk]?.newSpace ?? NaN).filter((x) => !Number.isNaN(x));
    if (!sizes.length) return '—';
    const cap = Math.max(...sizes);
    const at = samples.find((x) => x[hk]?.newSpace === cap)!.t;
    return `from ${fmtT(at)} (young generation ${mibB(cap)} MiB): ${trend(k, 'rssKiB', at)}`;
  };
  const heapSize = (k: 'heapA' | 'heapB'): string => {
    const s0 = samples.find((x) => x[k])?.[k], s1 = samples.findLast((x) => x[k])?.[k];
    return s0 && s1 ? `${mibB(s0.heapTotal)} → ${mibB(s1.heapTotal)} MiB (young generation ${mibB(s0.newSpace)} → ${mibB(s1.newSpace)})` : '—';
  };
  const rss = (k: 'a' | 'b'): string => {
    const v = samples.map((s) => s[k]?.rssKiB ?? NaN).filter((x) => !Number.isNaN(x));
    if (!v.length) return '—';
    const early = v[Math.min(v.length - 1, Math.floor(v.length / 10))]!;
    return `${mib(early)} → ${mib(v.at(-1))} MiB (peak ${mib(samples.at(-1)?.[k]?.hwmKiB)})`;
  };
  return `# Soak run ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC

\`npm run soak -- --minutes ${args.minutes} --rate ${args.rate} --sample ${args.sample}\` on ${os.hostname()}
(${os.cpus().length} cores, Node ${process.version}, shared with other work: throughput figures are noisy).
Two wireweave daemons in network namespaces (test/support/netns.ts), a TCP stream A → B through
the tunnel at ${args.rate || 'unlimited'} MB/s, a continuous ping B → A (every ${PING_INTERVAL_MS / 1000} s); every minute one of:
A's persistent keepalive on/off, B's allowed IPs with/without an extra prefix, A's listen port
changes (B follows: roaming), B's endpoint for A moves between IPv4 and IPv6.

**Sessions lost: ${lost.length}** (a stream or ping stall over ${STALL_MS / 1000} s, a broken TCP stream, a
handshake failure or a daemon exit).

| figure | value |
|---|--:|
| duration | ${minutes.toFixed(1)} min |
| data A → B | ${(totalBytes / 1e9).toFixed(2)} GB |
| median throughput per sample | ${median.toFixed(2)} MB/s |
| longest stream stall (receiver reports every 1 s) | ${((last?.maxStall ?? 0) / 1000).toFixed(0)} s |
| longest run of unanswered pings (every ${PING_INTERVAL_MS / 1000} s) | ${((last?.maxPingGap ?? 0) / 1000).toFixed(1)} s |
| handshakes seen (rekeys + first) | ${last?.handshakes ?? 0} |
| reconfigurations | ${actions.length} |
| RSS A | ${rss('a')} |
| RSS B | ${rss('b')} |
| RSS A trend after the first third | ${trend('a')} |
| RSS B trend after the first third | ${trend('b')} |
| anonymous RSS A / B trend after the first third | ${trend('a', 'rssAnonKiB')} / ${trend('b', 'rssAnonKiB')} |
| RSS A since the young generation reached its largest size | ${sinceYoungCap('a')} |
| RSS B since the young generation reached its largest size | ${sinceYoungCap('b')} |
| V8 heap in use A / B after the first third | ${heapRange('heapA')} / ${heapRange('heapB')} |
| live V8 heap (after a major collection) A / B after the first third | ${heapRange('heapA', 'live')} / ${heapRange('heapB', 'live')} |
| major collections A / B | ${majorGcs('heapA')} / ${majorGcs('heapB')} |
| V8 heap size A | ${heapSize('heapA')} |
| V8 heap size B | ${heapSize('heapB')} |
| CPU A / B (average) | ${cpu('a')} / ${cpu('b')} |

${lost.length ? `## Sessions lost\n\n${lost.map((l) => `- ${l}`).join('\n')}\n\n` : ''}## Over time (one row per minute)

Anon is the anonymous part of RSS (heaps, rings; the rest is the node binary and libraries as
they are paged in). Heap is the size of the main thread's V8 heap (V8 sizes it by its own
heuristics) and live what it held after the latest major collection (the daemon's
\`nodejs_heap_live_bytes\`): what a leak in JavaScript would make grow.

${markdownTable(['t', 'MB/s', 'ping', 'handshakes', 'RSS A MiB', 'RSS B MiB', 'anon A', 'anon B', 'heap A', 'heap B', 'live A', 'live B', 'CPU A s', 'CPU B s'], rows, [false, true, false, true, true, true, true, true, true, true, true, true, true, true])}

## Reconfigurations

${actions.map((x) => `- ${x}`).join('\n') || '(none)'}
`;
}

main().then((code) => { process.exitCode = code; }, (e: unknown) => {
  log(`failed: ${(e as Error).stack ?? String(e)}`);
  process.exitCode = 2;
});
