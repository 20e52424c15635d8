/**
 * `npm run bench:hub`: what a mesh hub costs with 10,000 clients, and what relaying through it
 * costs next to a direct path (issue 14, must-show 8). Reports only; nothing asserts a figure.
 *
 *   npm run bench:hub -- [--clients N] [--workers W] [--relay-seconds S] [--no-nats] [--quick] [--out DIR]
 *   npm run bench:hub -- --render bench/results/hub-TIME.json     (rewrites its .md)
 *
 * Phase "one hub": a real `wireweave hub` process on loopback; W client processes
 * (bench/hub-clients.ts) open N real WebSocket connections to it, each a `MeshHubClient` that
 * proves its key and pings the hub every 10 s as a peer does. Measured at the hub process
 * (/proc): RSS before and after the clients and its peak, CPU seconds to admit them, CPU while
 * they idle, CPU during the round trips; signaling round trips (a signal from a client to its
 * partner and the partner's echo, both through the hub) one at a time per process ("light") and
 * 100 in flight per process ("loaded"), p50/p99; then, with the N clients still connected, the
 * relay: datagrams of 1,452 bytes (a 1,420-byte packet in WireGuard) from one client to
 * another through the hub, next to the same datagrams sent directly over UDP on loopback, in
 * the same process and the same way, as a ratio.
 * Phase "two hubs over NATS": a nats-server (JetStream) and two hub processes with --nats; the
 * clients alternate between the hubs and every pair straddles them, so each round trip and the
 * relayed datagrams cross NATS; the same measures, with the NATS server's CPU and RSS too.
 *
 * Results go to bench/results/hub-<time>.json and .md. The machine is whatever runs it (the
 * committed run: 2 shared cores), so figures compare runs on one machine, not machines.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { nodeCrypto as crypto } from '../src/crypto/node.ts';
import { systemRng } from '../src/core/rng.ts';
import { MeshHubClient } from '../src/mesh/client/hub-client.ts';
import { nodeTimers, nodeWebSocket } from '../src/mesh/client/node.ts';
import { DEFAULT_HUB_LIMITS } from '../src/mesh/hub/hub.ts';
import { positiveFlag } from './util.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const has = (f: string) => args.includes(f);
const num = (f: string, dflt: number): number => positiveFlag(args, 'bench:hub', f, dflt);
const QUICK = has('--quick');
const CLIENTS = Math.floor(num('--clients', QUICK ? 1000 : 10_000) / 2) * 2;
const WORKERS = Math.floor(num('--workers', 2));
const RELAY_SECONDS = num('--relay-seconds', QUICK ? 2 : 5);
const IDLE_SECONDS = QUICK ? 3 : 10;
const LOADED_ROUNDS = QUICK ? 1000 : 5000;
const LIGHT_ROUNDS = QUICK ? 100 : 500;
const OUT = path.resolve(ROOT, args.includes('--out') ? args[args.indexOf('--out') + 1]! : 'bench/results');
/** A 1,420-byte packet in a WireGuard data message: 16 header + 1,420 + 16 tag. */
const DATAGRAM = 1452;
const SIGNAL_PAYLOAD = 140;
/** The hub's default frames per second per client: what one relaying client may send. */
const FRAMES_PER_SECOND = DEFAULT_HUB_LIMITS.framesPerSecond; // about a sealed Candidates envelope with two candidates
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;

const log = (s: string) => process.stderr.write(`bench:hub: ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const mib = (kb: number) => round(kb / 1024);

// ------------------------------------------------------------------ processes and /proc

const started: ChildProcess[] = [];
function cleanup(): void {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
process.on('exit', cleanup);
process.on('SIGINT', () => { cleanup(); process.exit(130); });

const hardFdLimit = Number(spawnSync('sh', ['-c', 'ulimit -Hn']).stdout.toString().trim()) || 1024;

/** Runs argv with the soft fd limit raised to the hard one (10,000 sockets need more than 1,024). */
function spawnWithFds(argv: string[], ipc = false): ChildProcess {
  const child = spawn('sh', ['-c', `ulimit -n ${hardFdLimit} 2>/dev/null; exec "$@"`, 'sh', ...argv], {
    stdio: ipc ? ['ignore', 'inherit', 'inherit', 'ipc'] : ['ignore', 'ignore', 'pipe'],
    cwd: ROOT,
  });
  started.push(child);
  return child;
}

/** The hub as users run it: the compiled dist/ when it is newer than the sources, else the sources through tsx. */
function hubCommand(): { argv: string[]; how: string } {
  const dist = path.join(ROOT, 'dist/cli/run.js');
  const newest = (dir: string): number => {
    let t = 0;
    for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
      if (e.isFile() && e.name.endsWith('.ts')) t = Math.max(t, fs.statSync(path.join(e.parentPath, e.name)).mtimeMs);
    }
    return t;
  };
  if (fs.existsSync(dist) && fs.statSync(dist).mtimeMs >= newest(path.join(ROOT, 'src'))) {
    return { argv: [process.execPath, path.join(ROOT, 'bin/wireweave')], how: 'bin/wireweave (dist/)' };
  }
  return { argv: [process.execPath, path.join(ROOT, 'test/support/wireweave.js')], how: 'the sources through tsx (dist/ is older than src/)' };
}

interface ProcStat { cpuSeconds: number; rssKb: number; peakKb: number }

function procStat(pid: number): ProcStat {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { cpuSeconds, rssKb: kb('VmRSS'), peakKb: kb('VmHWM') };
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms: number): Promise<number> {
  const t0 = performance.now();
  while (!(await cond())) {
    if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
  return (performance.now() - t0) / 1000;
}

async function metrics(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match) m.set(match[1]!, Number(match[2]));
  }
  return m;
}

interface HubProc { child: ChildProcess; port: number; url: string; stderr: () => string }

async function startHub(cmd: string[], natsUrl: string | null): Promise<HubProc> {
  const port = await freePort();
  const child = spawnWithFds([...cmd, 'hub', '--listen', `127.0.0.1:${port}`, ...(natsUrl ? ['--nats', natsUrl] : [])]);
  let err = '';
  child.stderr!.on('data', (d) => { err = (err + d).slice(-4000); });
  await until('the hub to listen', async () => {
    if (child.exitCode !== null) throw new Error(`the hub exited: ${err}`);
    try { return (await fetch(`http://127.0.0.1:${port}/healthz`)).ok; } catch { return false; }
  }, 20_000);
  return { child, port, url: `ws://127.0.0.1:${port}/mesh`, stderr: () => err };
}

async function stopProc(c: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill(signal);
  const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

// ------------------------------------------------------------------ client processes

interface Worker { child: ChildProcess; next<T>(type: string): Promise<T> }

function startWorker(): Worker {
  const child = spawnWithFds([process.execPath, '--import', 'tsx', path.join(ROOT, 'bench/hub-clients.ts')], true);
  const inbox: { type: string }[] = [];
  const waiting: { type: string; resolve: (m: unknown) => void }[] = [];
  child.on('message', (m: { type: string }) => {
    const w = waiting.findIndex((x) => x.type === m.type);
    if (w >= 0) waiting.splice(w, 1)[0]!.resolve(m);
    else inbox.push(m);
  });
  return {
    child,
    next<T>(type: string): Promise<T> {
      const i = inbox.findIndex((m) => m.type === type);
      if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0] as T);
      return new Promise((resolve, reject) => {
        waiting.push({ type, resolve: resolve as (m: unknown) => void });
        child.once('exit', (code) => reject(new Error(`a client process exited (${code}) while waiting for ${type}`)));
      });
    },
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

interface RttResult { roundTrips: number; lost: number; perSecond: number; p50Ms: number; p99Ms: number; maxMs: number }

async function roundTrips(workers: Worker[], rounds: number, inflight: number): Promise<RttResult> {
  const t0 = performance.now();
  for (const w of workers) w.child.send({ type: 'rtt', rounds, inflight, payloadBytes: SIGNAL_PAYLOAD, timeoutMs: 5000 });
  const results = await Promise.all(workers.map((w) => w.next<{ samples: number[]; lost: number }>('rtt')));
  const seconds = (performance.now() - t0) / 1000;
  const all = results.flatMap((r) => r.samples).sort((a, b) => a - b);
  return {
    roundTrips: all.length, lost: results.reduce((n, r) => n + r.lost, 0), perSecond: round(all.length / seconds, 0),
    p50Ms: round(percentile(all, 0.5), 2), p99Ms: round(percentile(all, 0.99), 2), maxMs: round(all[all.length - 1] ?? NaN, 2),
  };
}

// ------------------------------------------------------------------ relay next to direct

interface Throughput { mbitPerSecond: number; datagrams: number }

/** What a receiver counts, only while a measured window is open. */
class Meter {
  bytes = 0;
  datagrams = 0;
  counting = false;
  add(length: number): void {
    if (this.counting) { this.bytes += length; this.datagrams++; }
  }
}

/** One measured window for relay and direct alike: 1 s of warm-up (buffers fill, the hub's bucket settles), then `seconds` counted. */
async function measureWindow(meter: Meter, seconds: number): Promise<Throughput> {
  await sleep(1000);
  meter.bytes = 0; meter.datagrams = 0; meter.counting = true;
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const elapsed = (performance.now() - t0) / 1000;
  meter.counting = false;
  return { mbitPerSecond: round((meter.bytes * 8) / elapsed / 1e6), datagrams: meter.datagrams };
}

/** Datagrams from `a` to `b` through the hub(s), as fast as the client's send buffer lets it, for `seconds`. */
async function relayThroughput(hubA: string, hubB: string, seconds: number): Promise<Throughput & { refusedByBuffer: number }> {
  const meter = new Meter();
  const mk = (hub: string, onPacket?: (d: Uint8Array) => void) => {
    const key = crypto.x25519PrivateKey(randomBytes(32));
    const c = new MeshHubClient({
      crypto, rng: systemRng, privateKey: key, hubs: [hub], connect: nodeWebSocket, timers: nodeTimers, now: Date.now,
      events: onPacket ? { packet: (_f, d) => onPacket(d) } : {},
    });
    c.start();
    return { c, key };
  };
  const a = mk(hubA);
  const b = mk(hubB, (d) => meter.add(d.length));
  await until('the relay clients to connect', () => a.c.connected && b.c.connected, 30_000);
  // Across hubs, B's registration must reach A's hub first.
  const probe = new Uint8Array(DATAGRAM);
  let seen = false;
  await until('a first relayed datagram', () => {
    meter.counting = true;
    if (meter.datagrams > 0) seen = true;
    else a.c.sendPacket(b.key.publicKey, probe);
    return seen;
  }, 60_000);
  meter.counting = false;
  const datagram = randomBytes(DATAGRAM);
  let stop = false;
  const sender = (async () => {
    while (!stop) {
      for (let i = 0; i < 64 && a.c.sendPacket(b.key.publicKey, datagram); i++);
      await new Promise((r) => setImmediate(r));
    }
  })();
  const measured = await measureWindow(meter, seconds);
  stop = true;
  await sender;
  const refused = a.c.counters.droppedBuffered;
  a.c.stop(); b.c.stop();
  return { ...measured, refusedByBuffer: refused };
}

/** The same datagrams over UDP on loopback, socket to socket, in this process. */
async function directThroughput(seconds: number): Promise<Throughput> {
  const rx = dgram.createSocket('udp4');
  const tx = dgram.createSocket('udp4');
  const meter = new Meter();
  rx.on('message', (m) => meter.add(m.length));
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', r));
  try { rx.setRecvBufferSize(4 << 20); } catch { /* capped by net.core.rmem_max */ }
  const port = rx.address().port;
  const datagram = randomBytes(DATAGRAM);
  let stop = false, outstanding = 0;
  const sender = (async () => {
    while (!stop) {
      // At most 64 sends queued in libuv, as the relay client stops at its buffer bound.
      while (outstanding < 64) { outstanding++; tx.send(datagram, port, '127.0.0.1', () => { outstanding--; }); }
      await new Promise((r) => setImmediate(r));
    }
  })();
  const measured = await measureWindow(meter, seconds);
  stop = true;
  await sender;
  rx.close(); tx.close();
  return measured;
}

// ------------------------------------------------------------------ one phase

interface ProcFigures { rssIdleMiB: number; rssWithClientsMiB: number; rssPeakMiB: number; kibPerClient: number; cpuAdmitSeconds: number; cpuIdlePerSecond: number; cpuRoundTripSeconds: number; cpuRelaySeconds: number }

interface PhaseResult {
  name: string;
  hubs: number;
  clients: number;
  connected: number;
  failed: number;
  connectSeconds: number;
  registrySeconds?: number;
  hubProcesses: ProcFigures[];
  nats?: { rssMiB: number; cpuSeconds: number };
  light: RttResult;
  loaded: RttResult;
  relay: Throughput & { refusedByBuffer: number; rateLimitedAtHub: number; droppedAtHubs?: Record<string, number> };
  direct: Throughput;
  relayToDirect: number;
}

async function phase(name: string, hubs: HubProc[], natsPid: number | null): Promise<PhaseResult> {
  log(`${name}: ${CLIENTS} clients in ${WORKERS} processes`);
  await sleep(1000);
  const s0 = hubs.map((h) => procStat(h.child.pid!));
  const workers = Array.from({ length: WORKERS }, startWorker);
  await Promise.all(workers.map((w) => w.next('ready')));
  const per = CLIENTS / WORKERS;
  for (const w of workers) w.child.send({ type: 'connect', hubs: hubs.map((h) => h.url), count: per, concurrency: 200, timeoutMs: 180_000 });
  const conn = await Promise.all(workers.map((w) => w.next<{ connected: number; failed: number; seconds: number }>('connected')));
  const connected = conn.reduce((n, c) => n + c.connected, 0);
  const connectSeconds = round(Math.max(...conn.map((c) => c.seconds)), 2);
  log(`${name}: ${connected} connected in ${connectSeconds} s`);
  let registrySeconds: number | undefined;
  if (hubs.length > 1) {
    // Every hub must know where the other hub's clients are before a round trip can cross.
    registrySeconds = round(await until('the registry to hold every client', async () => {
      const ms = await Promise.all(hubs.map((h) => metrics(h.port)));
      return ms.every((m, i) => (m.get('wireweave_hub_federation_remote_keys') ?? 0) >= ms.filter((_, j) => j !== i).reduce((n, o) => n + (o.get('wireweave_hub_clients') ?? 0), 0));
    }, 120_000), 2);
    log(`${name}: registry complete ${registrySeconds} s after the last connection`);
  }
  const s1 = hubs.map((h) => procStat(h.child.pid!));
  await sleep(IDLE_SECONDS * 1000);
  const s2 = hubs.map((h) => procStat(h.child.pid!));
  log(`${name}: round trips`);
  const light = await roundTrips(workers, LIGHT_ROUNDS, 1);
  const loaded = await roundTrips(workers, LOADED_ROUNDS, 100);
  const s3 = hubs.map((h) => procStat(h.child.pid!));
  log(`${name}: loaded p50 ${loaded.p50Ms} ms, p99 ${loaded.p99Ms} ms; relay for ${RELAY_SECONDS} s`);
  const m0 = await Promise.all(hubs.map((h) => metrics(h.port)));
  const rl0 = m0.reduce((n, m) => n + (m.get('wireweave_hub_dropped_frames_total{reason="rateLimited"}') ?? 0), 0);
  const relay = await relayThroughput(hubs[0]!.url, hubs[hubs.length - 1]!.url, RELAY_SECONDS);
  const m1 = await Promise.all(hubs.map((h) => metrics(h.port)));
  const rl1 = m1.reduce((n, m) => n + (m.get('wireweave_hub_dropped_frames_total{reason="rateLimited"}') ?? 0), 0);
  // Every frame a hub (or its federation) dropped during the relay, by metric and reason.
  const droppedAtHubs: Record<string, number> = {};
  m1.forEach((m, i) => {
    for (const [k, v] of m) {
      if (!/_dropped_(frames_)?total\{/.test(k)) continue;
      const d = v - (m0[i]!.get(k) ?? 0);
      if (d > 0) droppedAtHubs[k.replace(/^wireweave_hub_/, '')] = (droppedAtHubs[k.replace(/^wireweave_hub_/, '')] ?? 0) + d;
    }
  });
  const s4 = hubs.map((h) => procStat(h.child.pid!));
  log(`${name}: relay ${relay.mbitPerSecond} Mbit/s; direct UDP for ${RELAY_SECONDS} s`);
  const direct = await directThroughput(RELAY_SECONDS);
  const natsStat = natsPid ? procStat(natsPid) : null;
  for (const w of workers) w.child.send({ type: 'stop' });
  await Promise.all(workers.map((w) => new Promise((r) => w.child.once('exit', r))));
  const hubProcesses = hubs.map((_, i): ProcFigures => ({
    rssIdleMiB: mib(s0[i]!.rssKb),
    rssWithClientsMiB: mib(s2[i]!.rssKb),
    rssPeakMiB: mib(s4[i]!.peakKb),
    kibPerClient: round((s2[i]!.rssKb - s0[i]!.rssKb) / (CLIENTS / hubs.length), 1),
    cpuAdmitSeconds: round(s1[i]!.cpuSeconds - s0[i]!.cpuSeconds, 2),
    cpuIdlePerSecond: round((s2[i]!.cpuSeconds - s1[i]!.cpuSeconds) / IDLE_SECONDS, 3),
    cpuRoundTripSeconds: round(s3[i]!.cpuSeconds - s2[i]!.cpuSeconds, 2),
    cpuRelaySeconds: round(s4[i]!.cpuSeconds - s3[i]!.cpuSeconds, 2),
  }));
  return {
    name, hubs: hubs.length, clients: CLIENTS, connected, failed: CLIENTS - connected, connectSeconds,
    ...(registrySeconds !== undefined ? { registrySeconds } : {}),
    hubProcesses,
    ...(natsStat ? { nats: { rssMiB: mib(natsStat.rssKb), cpuSeconds: round(natsStat.cpuSeconds, 2) } } : {}),
    light, loaded, relay: { ...relay, rateLimitedAtHub: rl1 - rl0, droppedAtHubs }, direct,
    relayToDirect: round(relay.mbitPerSecond / direct.mbitPerSecond, 3),
  };
}

// ------------------------------------------------------------------ report

function markdown(r: { time: string; machine: string; hub: string; clients: number; workers: number; phases: PhaseResult[] }): string {
  const out: string[] = [];
  out.push(`# bench:hub, ${r.time}`, '');
  out.push(`${r.clients} simulated clients (real WebSockets, \`MeshHubClient\`, in ${r.workers} client processes) on ${r.machine}; hub run as ${r.hub}.`, '');
  out.push('| | ' + r.phases.map((p) => p.name).join(' | ') + ' |', '|---|' + r.phases.map(() => '---:').join('|') + '|');
  const row = (label: string, f: (p: PhaseResult) => string) => out.push(`| ${label} | ${r.phases.map(f).join(' | ')} |`);
  const hubs = (f: (h: ProcFigures) => number | string) => (p: PhaseResult) => p.hubProcesses.map(f).join(' / ');
  row('clients connected (failed)', (p) => `${p.connected} (${p.failed})`);
  row('time to connect all, s', (p) => String(p.connectSeconds));
  row('registry complete after, s', (p) => (p.registrySeconds === undefined ? '–' : String(p.registrySeconds)));
  row('hub RSS idle → with clients, MiB', hubs((h) => `${h.rssIdleMiB} → ${h.rssWithClientsMiB}`));
  row('hub RSS peak, MiB', hubs((h) => h.rssPeakMiB));
  row('hub memory per client, KiB', hubs((h) => h.kibPerClient));
  row('hub CPU to admit the clients, s', hubs((h) => h.cpuAdmitSeconds));
  row('hub CPU while they idle, s per s', hubs((h) => h.cpuIdlePerSecond));
  row('signal round trip, light: p50 / p99 ms', (p) => `${p.light.p50Ms} / ${p.light.p99Ms}`);
  row('signal round trip, loaded: p50 / p99 ms', (p) => `${p.loaded.p50Ms} / ${p.loaded.p99Ms}`);
  row('loaded round trips per s (lost)', (p) => `${p.loaded.perSecond} (${p.loaded.lost + p.light.lost})`);
  row('hub CPU during the round trips, s', hubs((h) => h.cpuRoundTripSeconds));
  row('relay through the hub(s), Mbit/s', (p) => String(p.relay.mbitPerSecond));
  row('direct UDP on loopback, Mbit/s', (p) => String(p.direct.mbitPerSecond));
  row('relay / direct', (p) => String(p.relayToDirect));
  row('hub CPU during the relay, s', hubs((h) => h.cpuRelaySeconds));
  row('relayed frames the hub rate-limited', (p) => String(p.relay.rateLimitedAtHub));
  row('frames the hubs dropped during the relay', (p) => (p.relay.droppedAtHubs ? Object.entries(p.relay.droppedAtHubs).map(([k, v]) => `${k} ${v}`).join(', ') || '0' : '–'));
  row('nats-server RSS MiB, CPU s (whole phase)', (p) => (p.nats ? `${p.nats.rssMiB}, ${p.nats.cpuSeconds}` : '–'));
  out.push('');
  out.push('Light: one round trip at a time per client process; loaded: 100 in flight per client process. A round trip is a',
    `${SIGNAL_PAYLOAD}-byte signal from a client to its partner and the partner's echo, through the hub (two hubs: across NATS both ways).`,
    `Relay: ${DATAGRAM}-byte datagrams from one client to another for ${RELAY_SECONDS} s after 1 s of warm-up, with the ${CLIENTS} clients still`,
    'connected; direct: the same datagrams over UDP on loopback from the same process. With several hubs, "/" separates the hubs.',
    `The hub's default per-client limit of ${FRAMES_PER_SECOND.toLocaleString('en')} frames/s is ${round((FRAMES_PER_SECOND * (DATAGRAM + 33) * 8) / 1e6, 0)} Mbit/s of these datagrams: one sender through`,
    'one hub cannot go faster than that (frames past it are counted as rate-limited and the sender is paused).', '');
  return out.join('\n');
}

async function main(): Promise<void> {
  if (has('--render')) {
    // Re-renders the Markdown of a results file (after a change to this report's wording).
    const file = path.resolve(args[args.indexOf('--render') + 1]!);
    fs.writeFileSync(file.replace(/\.json$/, '.md'), markdown(JSON.parse(fs.readFileSync(file, 'utf8'))));
    return;
  }
  const need = CLIENTS + 256;
  if (hardFdLimit < Math.min(need, CLIENTS / WORKERS + 256)) {
    console.error(`bench:hub: the fd limit is ${hardFdLimit}; ${CLIENTS} clients need about ${need} on the hub (raise it: ulimit -Hn)`);
    process.exit(1);
  }
  const hub = hubCommand();
  log(`hub command: ${hub.how}`);
  const phases: PhaseResult[] = [];

  const single = await startHub(hub.argv, null);
  try {
    phases.push(await phase('one hub', [single], null));
  } finally {
    await stopProc(single.child);
  }

  if (!has('--no-nats')) {
    if (spawnSync('nats-server', ['--version']).error) {
      log('nats-server not found: the two-hub phase is left out (apt-get install nats-server)');
    } else {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ww-bench-hub-${process.pid}-`));
      const natsPort = await freePort();
      const nats = spawnWithFds(['nats-server', '-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', dir, '-n', `ww-bench-${process.pid}`]);
      let hubs: HubProc[] = [];
      try {
        await until('nats-server', () => new Promise<boolean>((r) => {
          const s = net.connect(natsPort, '127.0.0.1', () => { s.destroy(); r(true); });
          s.on('error', () => r(false));
        }), 20_000);
        hubs = [await startHub(hub.argv, `nats://127.0.0.1:${natsPort}`), await startHub(hub.argv, `nats://127.0.0.1:${natsPort}`)];
        await until('both hubs on NATS', async () => (await Promise.all(hubs.map((h) => metrics(h.port)))).every((m) => m.get('wireweave_hub_federation_up') === 1), 30_000);
        phases.push(await phase('two hubs over NATS', hubs, nats.pid!));
      } finally {
        for (const h of hubs) await stopProc(h.child);
        await stopProc(nats);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  }

  const time = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, load ${os.loadavg()[0]!.toFixed(2)} at the end`;
  const result = { time, machine, hub: hub.how, clients: CLIENTS, workers: WORKERS, quick: QUICK, phases };
  fs.mkdirSync(OUT, { recursive: true });
  const base = path.join(OUT, `hub-${time}${QUICK ? '-quick' : ''}`);
  fs.writeFileSync(`${base}.json`, JSON.stringify(result, null, 2) + '\n');
  fs.writeFileSync(`${base}.md`, markdown(result));
  process.stdout.write(markdown(result));
  log(`results in ${path.relative(ROOT, base)}.json and .md`);
}

main().then(() => process.exit(0), (e: Error) => {
  console.error(`bench:hub: ${e.stack ?? e.message}`);
  cleanup();
  process.exit(1);
});
