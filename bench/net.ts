/**
 * Network benchmark (issue 4): real tunnels between two network namespaces, wireweave against
 * wireguard-go measured in the same run.
 *
 *   npm run bench -- [--quick] [--repeat N] [--seconds N] [--pair ID] [--case ID] [--out DIR]
 *
 * For each configuration (wg-go ↔ wg-go, wireweave ↔ wireweave, wireweave ↔ wg-go, the rootless
 * netstack through `wireweave forward` ↔ wireweave, raw veth)
 * it builds a rig with test/support/netns.ts (two namespaces A and B joined by a veth pair;
 * for the tunnel configurations a daemon on each side, `wg set` with a preshared key, MTU 1420
 * tunnels) and measures with iperf3 (-J) and ping:
 *   - TCP, 1 and 4 streams, A→B and B→A (-R): Gbit/s and retransmits, ping RTT under that load
 *     (ping -i 0.01 from A to B during the run);
 *   - UDP at 200 Mbit/s offered and unlimited (-b 0), 1380-byte datagrams, A→B: received
 *     Mbit/s, packets/s and loss;
 *   - ping RTT with the tunnel idle;
 *   - CPU seconds of each daemon process per GB received (utime+stime from /proc/PID/stat,
 *     all threads, before and after each run) and peak RSS (VmHWM).
 * The daemons run in the foreground under this process (netns.ts spawnIn), so their PIDs are
 * known. All rigs are built first and kept; repeats are interleaved (each repeat runs every
 * configuration, in a rotated order), and each configuration block starts with a few pings,
 * which also renew the session. A failing case is recorded with its reason and the run goes
 * on; a rig whose daemon died is rebuilt. Everything is torn down at the end, also on errors
 * and signals (netns.ts hooks).
 *
 * Output: progress on stderr, a Markdown table on stdout, and bench/results/<timestamp>.json,
 * .md and .svg (ratios wireweave / wireguard-go). Reports only; nothing asserts a timing.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WIREWEAVE_BIN, createRig, rigLeftovers, rigPrereqsMissing, setupPair } from '../test/support/netns.ts';
import type { Daemon, Exit, Impl, Rig, RigNode } from '../test/support/netns.ts';
import { which } from '../test/support/wggo.ts';
import type { RunResult } from '../test/support/wggo.ts';
import { markdownTable } from './util.ts';
import { argsOr, cmdOutput, cpuSeconds, errorText, fmt, log, parseFlags, resultsJson, runMain, UsageError } from './proc.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const PORT = '5201';
const UDP_LEN = 1380;
const PING_INTERVAL = 0.01;

const USAGE = `usage: npm run bench -- [--quick] [--repeat N] [--veth-repeat N] [--seconds N] [--pair ID] [--case ID] [--out DIR]
  --quick          developer loop: 1 repeat, 3 s runs, fewer cases
  --repeat N       repeats of every tunnel case (default 3; --quick: 1); medians are reported
  --veth-repeat N  repeats of the raw veth cases (default 1: a reference, part of no ratio)
  --seconds N      length of each TCP run (default 10; --quick: 3); UDP runs last 0.4 of it (at least 3 s)
  --pair ID        only these configurations (repeatable): wggo, ww, mixed, netstack, veth
  --case ID        only these cases (repeatable): tcp1, tcp1-rev, tcp4, tcp4-rev, udp200, udpmax, idle
  --out DIR        where the .json/.md/.svg go (default bench/results)`;

// ---------------------------------------------------------------- what is measured

type ConfigId = 'wggo' | 'ww' | 'ww-seal' | 'mixed' | 'netstack' | 'veth';

interface ConfigDef {
  id: ConfigId;
  label: string;
  /** Implementation on A and B; null for the raw veth (no tunnel). */
  a: Impl | null;
  b: Impl | null;
  /** Added to both daemons' environment. */
  env?: Record<string, string>;
}

const CONFIGS: readonly ConfigDef[] = [
  { id: 'wggo', label: 'wg-go ↔ wg-go', a: 'wireguard-go', b: 'wireguard-go' },
  { id: 'ww', label: 'wireweave ↔ wireweave', a: 'wireweave', b: 'wireweave' },
  // Transport sealed on two threads per daemon (WIREWEAVE_SEAL_WORKERS=2).
  { id: 'ww-seal', label: 'wireweave ↔ wireweave, 2 sealing threads', a: 'wireweave', b: 'wireweave', env: { WIREWEAVE_SEAL_WORKERS: '2' } },
  { id: 'mixed', label: 'wireweave (A) ↔ wg-go (B)', a: 'wireweave', b: 'wireguard-go' },
  // A runs `wireweave forward` (userspace TCP/IP stack, no TUN); iperf3 in A talks to its local port.
  { id: 'netstack', label: 'wireweave netstack (A, no TUN) ↔ wireweave (B)', a: 'wireweave', b: 'wireweave' },
  { id: 'veth', label: 'raw veth', a: null, b: null },
];

type CaseKind = 'tcp' | 'udp' | 'idle';

interface CaseDef {
  id: string;
  label: string;
  kind: CaseKind;
  streams: number;
  reverse: boolean;
  /** iperf3 -b for UDP. */
  bitrate: string;
  /** Part of --quick. */
  quick: boolean;
}

const CASES: readonly CaseDef[] = [
  { id: 'tcp1', label: 'TCP 1 stream A→B', kind: 'tcp', streams: 1, reverse: false, bitrate: '', quick: true },
  { id: 'tcp1-rev', label: 'TCP 1 stream B→A (-R)', kind: 'tcp', streams: 1, reverse: true, bitrate: '', quick: true },
  { id: 'tcp4', label: 'TCP 4 streams A→B', kind: 'tcp', streams: 4, reverse: false, bitrate: '', quick: true },
  { id: 'tcp4-rev', label: 'TCP 4 streams B→A (-R)', kind: 'tcp', streams: 4, reverse: true, bitrate: '', quick: false },
  { id: 'udp200', label: 'UDP 200 Mbit/s offered A→B', kind: 'udp', streams: 1, reverse: false, bitrate: '200M', quick: false },
  { id: 'udpmax', label: 'UDP unlimited (-b 0) A→B', kind: 'udp', streams: 1, reverse: false, bitrate: '0', quick: true },
  { id: 'idle', label: 'ping, idle tunnel', kind: 'idle', streams: 0, reverse: false, bitrate: '', quick: true },
];

interface MetricDef {
  key: string;
  label: string;
  better: 'higher' | 'lower';
  /** Significant digits in the table. */
  digits: number;
  /** Not meaningful without a tunnel (no daemons). */
  tunnelOnly?: boolean;
}

const TCP_METRICS: readonly MetricDef[] = [
  { key: 'gbps', label: 'Gbit/s', better: 'higher', digits: 3 },
  { key: 'retransmits', label: 'retransmits', better: 'lower', digits: 3 },
  { key: 'pingMedianMs', label: 'ping under load, median ms', better: 'lower', digits: 3 },
  { key: 'pingP99Ms', label: 'ping under load, p99 ms', better: 'lower', digits: 3 },
  { key: 'cpuA', label: 'CPU s/GB, daemon A', better: 'lower', digits: 3, tunnelOnly: true },
  { key: 'cpuB', label: 'CPU s/GB, daemon B', better: 'lower', digits: 3, tunnelOnly: true },
];
const UDP_METRICS: readonly MetricDef[] = [
  { key: 'mbps', label: 'received Mbit/s', better: 'higher', digits: 3 },
  { key: 'pps', label: 'received packets/s', better: 'higher', digits: 3 },
  { key: 'lossPct', label: 'loss %', better: 'lower', digits: 3 },
  { key: 'cpuA', label: 'CPU s/GB, daemon A', better: 'lower', digits: 3, tunnelOnly: true },
  { key: 'cpuB', label: 'CPU s/GB, daemon B', better: 'lower', digits: 3, tunnelOnly: true },
];
const IDLE_METRICS: readonly MetricDef[] = [
  { key: 'pingMedianMs', label: 'median ms', better: 'lower', digits: 3 },
  { key: 'pingP99Ms', label: 'p99 ms', better: 'lower', digits: 3 },
];
/** Per configuration, over the whole run. */
const DAEMON_METRICS: readonly MetricDef[] = [
  { key: 'rssA', label: 'peak RSS MiB, daemon A', better: 'lower', digits: 3, tunnelOnly: true },
  { key: 'rssB', label: 'peak RSS MiB, daemon B', better: 'lower', digits: 3, tunnelOnly: true },
];
const DAEMON_GROUP = { id: 'daemons', label: 'daemon processes (whole run)' };

function repeatsOf(cfg: ConfigDef, args: Args): number {
  return cfg.a === null ? args.vethRepeat : args.repeat;
}

function metricsOf(kind: CaseKind): readonly MetricDef[] {
  return kind === 'tcp' ? TCP_METRICS : kind === 'udp' ? UDP_METRICS : IDLE_METRICS;
}

// ---------------------------------------------------------------- arguments

interface Args {
  quick: boolean;
  repeat: number;
  vethRepeat: number;
  seconds: number;
  udpSeconds: number;
  idlePings: number;
  pairs: ConfigId[];
  cases: string[];
  out: string;
}

function parseArgs(argv: readonly string[]): Args {
  let quick = false;
  let repeat: number | undefined;
  let vethRepeat = 1;
  let seconds: number | undefined;
  const pairs: ConfigId[] = [];
  const cases: string[] = [];
  let out = path.join(REPO, 'bench', 'results');
  parseFlags(argv, (flag, value, arg) => {
    const positive = (integer: boolean): number => {
      const v = value();
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw new UsageError(`${flag} must be a positive ${integer ? 'integer' : 'number'}, not ${v}`);
      return n;
    };
    switch (flag) {
      case '--quick': quick = true; break;
      case '--repeat': repeat = positive(true); break;
      case '--veth-repeat': vethRepeat = positive(true); break;
      case '--seconds': seconds = positive(false); break;
      case '--pair': {
        const v = value();
        if (!CONFIGS.some((c) => c.id === v)) throw new UsageError(`unknown pair ${v} (known: ${CONFIGS.map((c) => c.id).join(', ')})`);
        pairs.push(v as ConfigId);
        break;
      }
      case '--case': {
        const v = value();
        if (!CASES.some((c) => c.id === v)) throw new UsageError(`unknown case ${v} (known: ${CASES.map((c) => c.id).join(', ')})`);
        cases.push(v);
        break;
      }
      case '--out': out = path.resolve(value()); break;
      case '--help': case '-h': throw new UsageError('');
      default: throw new UsageError(`unknown argument ${arg}`);
    }
  });
  const s = seconds ?? (quick ? 3 : 10);
  return {
    quick,
    repeat: repeat ?? (quick ? 1 : 3),
    vethRepeat,
    seconds: s,
    udpSeconds: Math.max(3, Math.round(s * 0.4)),
    idlePings: quick ? 100 : 200,
    pairs,
    cases,
    out,
  };
}

// ---------------------------------------------------------------- small helpers

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


function median(xs: readonly number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** Nearest-rank percentile (q in 0..1). */
function percentile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((x, y) => x - y);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/** VmHWM (peak resident set) in MiB; NaN if the process is gone. */
function peakRssMiB(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

// ---------------------------------------------------------------- rigs

interface Live {
  def: ConfigDef;
  rig: Rig;
  a: RigNode;
  b: RigNode;
  /** Address of B that the traffic goes to: its tunnel address, or its veth address. */
  target: string;
  da: Daemon | null;
  db: Daemon | null;
  /** Where the iperf3 client connects when not straight to `target` (the netstack's forward). */
  client?: { host: string; port: string };
  /** No ping from A through the tunnel (A has no TUN). */
  noPing?: boolean;
}

/** Local port of the netstack configuration's TCP forward to B's iperf3 server. */
const FORWARD_PORT = '15201';

/** Cases each configuration runs: the netstack one is measured through a TCP port forward only. */
function casesFor(cfg: ConfigDef, cases: readonly CaseDef[]): CaseDef[] {
  return cfg.id === 'netstack' ? cases.filter((c) => c.kind === 'tcp') : [...cases];
}

/** Peak RSS seen so far (MiB) per configuration, over every daemon it had (rebuilds included). */
const peakRss = new Map<ConfigId, { a: number; b: number }>();

async function build(def: ConfigDef): Promise<Live> {
  const name = `bench ${def.id}`;
  const base = { def };
  if (def.a === null || def.b === null) {
    const rig = await createRig({ name });
    const [a, b] = rig.nodes as [RigNode, RigNode];
    return { ...base, rig, a, b, target: b.addr4, da: null, db: null };
  }
  const p = await setupPair(name, def.a, def.b, { daemonEnv: def.env });
  if (def.id === 'netstack') {
    try {
      return await buildNetstack(def, p);
    } catch (e) {
      await p.rig.destroy().catch(() => undefined);
      throw e;
    }
  }
  watchExit(p.da);
  watchExit(p.db);
  return { ...base, rig: p.rig, a: p.a, b: p.b, target: p.b.tun4, da: p.da, db: p.db };
}

/**
 * A's TUN daemon gives up its peer; a rootless `wireweave forward` in A takes over A's key (on
 * another port: B's daemon roams to it at the first handshake) and forwards 127.0.0.1:15201 to
 * B's tunnel address, port 5201.
 */
async function buildNetstack(def: ConfigDef, p: Awaited<ReturnType<typeof setupPair>>): Promise<Live> {
  await p.rig.wgOk(['set', p.da.ifname, 'peer', p.keysB.publicKey, 'remove']);
  const conf = p.rig.secretFile('netstack.conf', [
    '[Interface]', `PrivateKey = ${p.keysA.privateKey}`, `Address = ${p.a.tun4}/24`, `ListenPort = ${p.portA + 2}`, '',
    '[Peer]', `PublicKey = ${p.keysB.publicKey}`, `PresharedKey = ${p.psk}`, `Endpoint = ${p.b.addr4}:${p.portB}`,
    `AllowedIPs = ${p.b.tun4}/32`, '',
  ].join('\n'));
  const proc = p.rig.spawnIn(p.a, [WIREWEAVE_BIN, 'forward', conf, '--tcp', `127.0.0.1:${FORWARD_PORT}:${p.b.tun4}:${PORT}`]);
  const deadline = Date.now() + 20_000;
  while (!/TCP forward/.test(proc.stderr())) {
    if (!proc.running()) throw new Error(`wireweave forward exited: ${proc.stderr().trim().slice(-400)}`);
    if (Date.now() > deadline) throw new Error(`wireweave forward not ready after 20 s: ${proc.stderr().trim().slice(-400)}`);
    await sleep(100);
  }
  const da: Daemon = { impl: 'wireweave', node: p.a, ifname: 'netstack', socketPath: '', proc, logs: () => proc.stdout() + proc.stderr() };
  watchExit(da);
  watchExit(p.db);
  return { def, rig: p.rig, a: p.a, b: p.b, target: p.b.tun4, da, db: p.db, client: { host: '127.0.0.1', port: FORWARD_PORT }, noPing: true };
}

const exits = new Map<Daemon, Exit>();

function watchExit(d: Daemon | null): void {
  if (d) void d.proc.exited.then((e) => exits.set(d, e));
}

/** Why a daemon of the rig is gone (exit status and the tail of its log), or undefined. */
function deadDaemon(l: Live): string | undefined {
  for (const [side, d] of [['A', l.da], ['B', l.db]] as const) {
    if (d && !d.proc.running()) {
      const e = exits.get(d);
      const status = e ? (e.signal ? `killed by ${e.signal}` : `exit code ${e.code}`) : 'exited';
      const tail = d.logs().trim().split('\n').slice(-4).join(' | ');
      return `daemon ${side} (${d.impl} ${d.ifname}, pid ${d.proc.pid}) is not running (${status}); log tail: ${tail.slice(-500)}`;
    }
  }
  return undefined;
}

function updateRss(l: Live): void {
  const upd = (cur: number, d: Daemon | null): number => {
    if (!d) return cur;
    const v = peakRssMiB(d.proc.pid);
    return Number.isFinite(v) ? (Number.isFinite(cur) ? Math.max(cur, v) : v) : cur;
  };
  const cur = peakRss.get(l.def.id) ?? { a: NaN, b: NaN };
  peakRss.set(l.def.id, { a: upd(cur.a, l.da), b: upd(cur.b, l.db) });
}

// ---------------------------------------------------------------- one measurement

type Metrics = Record<string, number>;

interface PingStats {
  sent: number;
  received: number;
  lossPct: number;
  medianMs: number;
  p99Ms: number;
}

function parsePing(out: string): PingStats {
  const times = [...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  const sent = m ? Number(m[1]) : 0;
  const received = m ? Number(m[2]) : times.length;
  if (times.length === 0) throw new Error(`ping got no replies: ${out.trim().split('\n').slice(-3).join(' / ')}`);
  return { sent, received, lossPct: sent ? (100 * (sent - received)) / sent : NaN, medianMs: median(times), p99Ms: percentile(times, 0.99) };
}

/**
 * `count` pings `PING_INTERVAL` apart from A to the target, after `delayMs`; ping stops at
 * `deadline` seconds at the latest (when RTTs exceed the interval, ping sends more slowly,
 * and a lost reply would keep it waiting until the deadline).
 */
async function pingRun(l: Live, count: number, delayMs: number, deadline: number): Promise<PingStats> {
  if (delayMs) await sleep(delayMs);
  const argv = ['ping', '-n', '-i', String(PING_INTERVAL), '-c', String(count), '-W', '1', '-w', String(deadline), l.target];
  const r = await l.rig.exec(l.a, argv, { timeoutMs: (deadline + 15) * 1000 });
  return parsePing(r.stdout + r.stderr);
}

interface IperfSide {
  bytes: number;
  seconds: number;
  bits_per_second: number;
  retransmits?: number;
  packets?: number;
  lost_packets?: number;
}

interface IperfJson {
  error?: string;
  end?: { sum_sent?: IperfSide; sum_received?: IperfSide };
}

async function measure(l: Live, c: CaseDef, args: Args): Promise<Metrics> {
  if (c.kind === 'idle') {
    const p = await pingRun(l, args.idlePings, 0, Math.ceil(args.idlePings * PING_INTERVAL) + 3);
    return { pingMedianMs: p.medianMs, pingP99Ms: p.p99Ms, pingLossPct: p.lossPct };
  }
  const seconds = c.kind === 'tcp' ? args.seconds : args.udpSeconds;
  const { rig, a, b, target } = l;
  const server = rig.spawnIn(b, ['iperf3', '-s', '-1', '--forceflush', '-B', target, '-p', PORT]);
  try {
    await server.waitFor(/listening/i, 10_000);
    const argv = ['iperf3', '-c', l.client?.host ?? target, '-p', l.client?.port ?? PORT, '-t', String(seconds), '-J', '--connect-timeout', '5000'];
    if (c.kind === 'tcp') {
      argv.push('-P', String(c.streams));
      if (c.reverse) argv.push('-R');
    } else {
      argv.push('-u', '-b', c.bitrate, '-l', String(UDP_LEN));
    }
    const pids = [l.da?.proc.pid, l.db?.proc.pid];
    const cpu0 = pids.map((p) => (p === undefined ? NaN : cpuSeconds(p)));
    let cpu1: number[] = [];
    const tStart = performance.now();
    let clientSeconds = NaN;
    let pingSeconds = NaN;
    const client = rig.exec(a, argv, { timeoutMs: (seconds + 30) * 1000 }).then((r) => {
      cpu1 = pids.map((p) => (p === undefined ? NaN : cpuSeconds(p)));
      clientSeconds = (performance.now() - tStart) / 1000;
      return r;
    });
    // Under load: from 0.5 s after the start to 0.5 s before the end at the latest.
    const pingDeadline = Math.max(1, Math.floor(seconds - 1));
    const pings = c.kind === 'tcp' && !l.noPing
      ? pingRun(l, Math.floor(pingDeadline / PING_INTERVAL), 500, pingDeadline).then((p) => {
        pingSeconds = (performance.now() - tStart) / 1000;
        return p;
      })
      : Promise.resolve(undefined);
    // A daemon that dies ends the case at once (the client would otherwise wait for its timeout;
    // the rebuild that follows kills it).
    let watch: NodeJS.Timeout | undefined;
    const death = new Promise<never>((_, reject) => {
      watch = setInterval(() => {
        const dead = deadDaemon(l);
        if (dead) reject(new Error(dead));
      }, 250);
    });
    let r: RunResult;
    let p: PingStats | undefined;
    try {
      [r, p] = await Promise.race([Promise.all([client, pings]), death]);
    } finally {
      clearInterval(watch);
    }
    let j: IperfJson;
    try {
      j = JSON.parse(r.stdout) as IperfJson;
    } catch {
      throw new Error(`iperf3 exit ${r.code}, no JSON: ${(r.stderr || r.stdout).trim().slice(0, 500)}`);
    }
    if (j.error) throw new Error(`iperf3: ${j.error}`);
    const sent = j.end?.sum_sent;
    const recv = j.end?.sum_received;
    if (!sent || !recv || !(recv.seconds > 0)) throw new Error(`iperf3 exit ${r.code}: no end summary in its JSON`);
    const gb = recv.bytes / 1e9;
    const perGb = (i: number): number => (gb > 0 ? (cpu1[i]! - cpu0[i]!) / gb : NaN);
    if (c.kind === 'tcp') {
      return {
        gbps: recv.bits_per_second / 1e9,
        retransmits: sent.retransmits ?? NaN,
        pingMedianMs: p?.medianMs ?? NaN,
        pingP99Ms: p?.p99Ms ?? NaN,
        pingLossPct: p?.lossPct ?? NaN,
        cpuA: perGb(0),
        cpuB: perGb(1),
        bytes: recv.bytes,
        clientSeconds,
        pingSeconds,
      };
    }
    const sentPackets = sent.packets ?? NaN;
    const gotPackets = (recv.packets ?? NaN) - (recv.lost_packets ?? NaN);
    return {
      mbps: recv.bits_per_second / 1e6,
      pps: gotPackets / recv.seconds,
      lossPct: sentPackets > 0 ? Math.max(0, (100 * (sentPackets - gotPackets)) / sentPackets) : NaN,
      cpuA: perGb(0),
      cpuB: perGb(1),
      bytes: recv.bytes,
      sentMbps: sent.bits_per_second / 1e6,
      clientSeconds,
    };
  } finally {
    await server.stop(2000).catch(() => undefined);
  }
}

function progressLine(c: CaseDef, m: Metrics): string {
  const parts: string[] = [];
  if (c.kind === 'tcp') {
    parts.push(`${fmt(m.gbps!)} Gbit/s`, `${fmt(m.retransmits!)} retr`, `ping ${fmt(m.pingMedianMs!)}/${fmt(m.pingP99Ms!)} ms`);
  } else if (c.kind === 'udp') {
    parts.push(`${fmt(m.mbps!)} Mbit/s`, `${fmt(m.pps!)} pkt/s`, `loss ${fmt(m.lossPct!)}%`);
  } else {
    parts.push(`ping ${fmt(m.pingMedianMs!)}/${fmt(m.pingP99Ms!)} ms`);
  }
  if (Number.isFinite(m.cpuA)) parts.push(`CPU ${fmt(m.cpuA!)}+${fmt(m.cpuB!)} s/GB`);
  return parts.join(', ');
}

// ---------------------------------------------------------------- summary

interface RunRecord {
  config: ConfigId;
  case: string;
  repeat: number;
  ok: boolean;
  error?: string;
  metrics?: Metrics;
  startedAt: string;
}

interface Cell {
  median: number;
  min: number;
  max: number;
  n: number;
  of: number;
}

interface Row {
  group: string;
  groupLabel: string;
  metric: string;
  label: string;
  better: 'higher' | 'lower';
  digits: number;
  cells: Partial<Record<ConfigId, Cell>>;
  /** median(config) / median(wggo), for ww and mixed. */
  ratios: Partial<Record<'ww' | 'mixed' | 'netstack', number>>;
}

function summarize(runs: readonly RunRecord[], configs: readonly ConfigDef[], cases: readonly CaseDef[], args: Args): Row[] {
  const rows: Row[] = [];
  const addRow = (group: string, groupLabel: string, m: MetricDef, cellOf: (cfg: ConfigDef) => Cell | undefined): void => {
    const cells: Row['cells'] = {};
    for (const cfg of configs) {
      if (m.tunnelOnly && cfg.a === null) continue;
      const cell = cellOf(cfg);
      if (cell) cells[cfg.id] = cell;
    }
    const ratios: Row['ratios'] = {};
    const base = cells.wggo?.median;
    for (const id of ['ww', 'mixed'] as const) {
      const v = cells[id]?.median;
      if (v !== undefined && base !== undefined && Number.isFinite(v) && Number.isFinite(base) && base > 0) ratios[id] = v / base;
    }
    // The netstack is compared with wireweave's own TUN mode (issue 5: at least 50% of it).
    const tun = cells.ww?.median;
    const ns = cells.netstack?.median;
    if (ns !== undefined && tun !== undefined && Number.isFinite(ns) && Number.isFinite(tun) && tun > 0) ratios.netstack = ns / tun;
    rows.push({ group, groupLabel, metric: m.key, label: m.label, better: m.better, digits: m.digits, cells, ratios });
  };
  for (const c of cases) {
    for (const m of metricsOf(c.kind)) {
      addRow(c.id, c.label, m, (cfg) => {
        const okRuns = runs.filter((r) => r.ok && r.config === cfg.id && r.case === c.id);
        const vals = okRuns.map((r) => r.metrics?.[m.key]).filter((v): v is number => v !== undefined && Number.isFinite(v));
        const of = repeatsOf(cfg, args);
        if (vals.length === 0 && okRuns.length > 0) return undefined; // not measured there (the netstack's pings)
        if (vals.length === 0) return runs.some((r) => r.config === cfg.id && r.case === c.id) ? { median: NaN, min: NaN, max: NaN, n: 0, of } : undefined;
        return { median: median(vals), min: Math.min(...vals), max: Math.max(...vals), n: vals.length, of };
      });
    }
  }
  for (const m of DAEMON_METRICS) {
    addRow(DAEMON_GROUP.id, DAEMON_GROUP.label, m, (cfg) => {
      const peak = peakRss.get(cfg.id);
      const v = peak ? (m.key === 'rssA' ? peak.a : peak.b) : NaN;
      return peak ? { median: v, min: v, max: v, n: Number.isFinite(v) ? 1 : 0, of: 1 } : undefined;
    });
  }
  return rows;
}

function cellText(cell: Cell | undefined, digits: number): string {
  if (!cell) return '';
  if (cell.n === 0) return 'failed';
  let s = fmt(cell.median, digits);
  if (cell.n > 1 && cell.min !== cell.max) s += ` (${fmt(cell.min, digits)}–${fmt(cell.max, digits)})`;
  if (cell.n < cell.of) s += ` [${cell.n}/${cell.of}]`;
  return s;
}

function ratioText(r: number | undefined): string {
  return r === undefined ? '' : `${fmt(r, 3)}×`;
}

interface EnvInfo {
  date: string;
  host: string;
  kernel: string;
  cpu: string;
  cores: number;
  node: string;
  wireguardGo: string;
  iperf3: string;
  commit: string;
  dirtyFiles: string[];
  loadAvgStart: number[];
  loadAvgEnd?: number[];
  wallSeconds?: number;
}

function environmentInfo(): EnvInfo {
  const dirty = cmdOutput('git', ['-C', REPO, 'status', '--porcelain', '--', 'src', 'bin', 'package.json']);
  return {
    date: new Date().toISOString(),
    host: os.hostname(),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    cores: os.cpus().length,
    node: process.version,
    wireguardGo: cmdOutput('wireguard-go', ['--version']).split('\n')[0] ?? '?',
    iperf3: cmdOutput('iperf3', ['--version']).split('\n')[0] ?? '?',
    commit: cmdOutput('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']) || '?',
    dirtyFiles: dirty ? dirty.split('\n').map((l) => l.trim()) : [],
    loadAvgStart: os.loadavg().map((x) => Number(x.toFixed(2))),
  };
}

function markdown(env: EnvInfo, args: Args, rows: readonly Row[], configs: readonly ConfigDef[], runs: readonly RunRecord[]): string {
  const showRatios = configs.some((c) => c.id === 'wggo') && configs.some((c) => c.id === 'ww' || c.id === 'mixed');
  const ratioCols: ('ww' | 'mixed' | 'netstack')[] = showRatios ? (['ww', 'mixed'] as const).filter((id) => configs.some((c) => c.id === id)) : [];
  if (configs.some((c) => c.id === 'netstack') && configs.some((c) => c.id === 'ww')) ratioCols.push('netstack');
  const ratioHeader = { ww: 'ratio ww↔ww / wg-go', mixed: 'ratio ww↔wg-go / wg-go', netstack: 'ratio netstack / ww↔ww (TUN)' } as const;
  const headers = ['case', 'metric', ...configs.map((c) => c.label), ...ratioCols.map((id) => ratioHeader[id])];
  const body = rows.map((r) => [
    r.groupLabel,
    `${r.label} (${r.better === 'higher' ? '↑' : '↓'})`,
    ...configs.map((c) => cellText(r.cells[c.id], r.digits)),
    ...ratioCols.map((id) => ratioText(r.ratios[id])),
  ]);
  const failures = runs.filter((r) => !r.ok);
  const lines = [
    `## wireweave network benchmark (${args.quick ? 'quick' : 'full'})`,
    '',
    `- date: ${env.date}; wall time ${env.wallSeconds === undefined ? '?' : `${Math.round(env.wallSeconds)} s`}`,
    `- machine: ${env.cpu}, ${env.cores} logical cores, ${env.kernel}; load average (1/5/15 min) at start ${env.loadAvgStart.join(' / ')}, at end ${env.loadAvgEnd?.join(' / ') ?? '?'}`,
    `- ${env.node}, ${env.wireguardGo}, ${env.iperf3}; wireweave at ${env.commit}${env.dirtyFiles.length ? ` with uncommitted changes in ${env.dirtyFiles.length} file(s) (${env.dirtyFiles.join(', ')})` : ''}`,
    `- runs: TCP ${args.seconds} s, UDP ${args.udpSeconds} s (${UDP_LEN}-byte datagrams), idle ping ${args.idlePings} × ${PING_INTERVAL * 1000} ms; ${args.repeat} repeat(s) of the tunnels, interleaved${configs.some((c) => c.a === null) ? `, raw veth ${args.vethRepeat}` : ''}`,
    '',
    markdownTable(headers, body, headers.map((_, i) => i >= 2)),
    '',
    'Cells: median over the repeats (min–max), `[k/n]` when only k of n repeats succeeded. ↑ higher is better, ↓ lower is better.',
    'Ratios are the median of the wireweave configuration over the median of wg-go ↔ wg-go measured in the same run; the netstack ratio is over wireweave ↔ wireweave (TUN mode).',
    'Netstack: A runs `wireweave forward` (no TUN, userspace TCP/IP) and iperf3 in A connects to its 127.0.0.1 port, forwarded through the tunnel to B; its CPU column A is the forward process (which also carries the TCP stack). No ping (A has no tunnel interface); TCP cases only.',
    'A→B: the iperf3 client is in A (in "wireweave (A) ↔ wg-go (B)", A→B means wireweave encrypts and wireguard-go decrypts).',
    'Gbit/s and Mbit/s are what the iperf3 receiver got (payload). Ping under load: ping -i 0.01 from A to B during the TCP run.',
    'CPU s/GB: utime+stime of the daemon process (all threads) during the run per 10⁹ bytes received by iperf3.',
    'Peak RSS: VmHWM of the daemon process at the end of the run (the largest of any restarted daemon).',
  ];
  if (failures.length) {
    lines.push('', '### Failed runs', '');
    for (const f of failures) lines.push(`- ${CONFIGS.find((c) => c.id === f.config)?.label ?? f.config}, ${f.case}, repeat ${f.repeat + 1}: ${(f.error ?? '').slice(0, 400)}`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------- SVG chart of the ratios

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function svgChart(env: EnvInfo, args: Args, rows: readonly Row[]): string {
  const series = [
    { id: 'ww' as const, label: 'wireweave ↔ wireweave', color: '#3b6fb6' },
    { id: 'mixed' as const, label: 'wireweave (A) ↔ wg-go (B)', color: '#e08a2c' },
  ];
  const charted = rows.filter((r) => series.some((s) => r.ratios[s.id] !== undefined));
  const all = charted.flatMap((r) => series.map((s) => r.ratios[s.id]).filter((v): v is number => v !== undefined && v > 0));
  let lo = Math.floor(Math.log2(Math.min(0.5, ...all)));
  let hi = Math.ceil(Math.log2(Math.max(2, ...all)));
  lo = Math.max(lo, -12);
  hi = Math.min(hi, 12);
  const labelW = 390;
  const plotW = 520;
  const valueW = 90;
  const barH = 9;
  const rowH = series.length * (barH + 2) + 8;
  const groupH = 22;
  const top = 96;
  const groups = [...new Set(charted.map((r) => r.group))];
  const height = top + charted.length * rowH + groups.length * groupH + 40;
  const width = labelW + plotW + valueW + 20;
  const x = (v: number): number => labelW + ((Math.log2(Math.min(Math.max(v, 2 ** lo), 2 ** hi)) - lo) / (hi - lo)) * plotW;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="10" y="22" font-size="16" font-weight="bold">${escapeXml(`wireweave / wireguard-go ratios (${args.quick ? 'quick' : 'full'} run, ${env.date.slice(0, 19)}Z)`)}</text>`);
  out.push(`<text x="10" y="40" fill="#555">${escapeXml(`median of each configuration over the median of wg-go ↔ wg-go in the same run; log scale; ${env.cores}-core ${env.cpu}, load ${env.loadAvgStart.join('/')} at start`)}</text>`);
  out.push(`<text x="10" y="56" fill="#555">${escapeXml('↑ higher is better, ↓ lower is better: a bar on the wrong side of 1× means wireweave is worse there')}</text>`);
  series.forEach((s, i) => {
    const lx = labelW + i * 230;
    out.push(`<rect x="${lx}" y="64" width="12" height="12" fill="${s.color}"/><text x="${lx + 16}" y="75">${escapeXml(s.label)}</text>`);
  });
  const plotTop = top - 8;
  const plotBottom = height - 34;
  for (let e = lo; e <= hi; e++) {
    const xx = x(2 ** e).toFixed(1);
    const label = e >= 0 ? `${2 ** e}×` : `1/${2 ** -e}`;
    out.push(`<line x1="${xx}" y1="${plotTop}" x2="${xx}" y2="${plotBottom}" stroke="${e === 0 ? '#000' : '#ddd'}" stroke-width="${e === 0 ? 1.5 : 1}"/>`);
    out.push(`<text x="${xx}" y="${plotBottom + 14}" text-anchor="middle" fill="#555">${label}</text>`);
  }
  let y = top;
  let lastGroup = '';
  for (const r of charted) {
    if (r.group !== lastGroup) {
      lastGroup = r.group;
      out.push(`<text x="10" y="${y + 14}" font-weight="bold">${escapeXml(r.groupLabel)}</text>`);
      y += groupH;
    }
    out.push(`<text x="${labelW - 8}" y="${y + rowH / 2 + 2}" text-anchor="end">${escapeXml(`${r.label} ${r.better === 'higher' ? '↑' : '↓'}`)}</text>`);
    series.forEach((s, i) => {
      const v = r.ratios[s.id];
      const by = y + i * (barH + 2);
      if (v === undefined) return;
      const x0 = x(1);
      const x1 = x(v);
      const offScale = v < 2 ** lo || v > 2 ** hi;
      const worse = r.better === 'higher' ? v < 1 : v > 1;
      out.push(`<rect x="${Math.min(x0, x1).toFixed(1)}" y="${by}" width="${Math.max(1, Math.abs(x1 - x0)).toFixed(1)}" height="${barH}" fill="${s.color}"${worse ? '' : ' fill-opacity="0.55"'}/>`);
      out.push(`<text x="${labelW + plotW + 6}" y="${by + barH - 1}" font-size="10" fill="${s.color}">${escapeXml(`${fmt(v, 3)}×${worse ? ' worse' : ''}${offScale ? ' (off scale)' : ''}`)}</text>`);
    });
    y += rowH;
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const args = argsOr(() => parseArgs(process.argv.slice(2)), USAGE);
  if (typeof args === 'number') return args;
  const missing = [rigPrereqsMissing(['wireweave', 'wireguard-go']), which('iperf3') ? undefined : 'iperf3 not found on PATH'].filter(Boolean);
  if (missing.length) {
    log(`cannot run the network benchmark: ${missing.join('; ')}`);
    return 2;
  }
  const configs = CONFIGS.filter((c) => args.pairs.length === 0 || args.pairs.includes(c.id));
  const cases = CASES.filter((c) => (args.cases.length ? args.cases.includes(c.id) : !args.quick || c.quick));
  const env = environmentInfo();
  const t0 = Date.now();
  log(`wireweave network benchmark (${args.quick ? 'quick' : 'full'}): ${configs.map((c) => c.id).join(', ')} × ${cases.map((c) => c.id).join(', ')} × ${args.repeat} repeat(s) (raw veth ${args.vethRepeat}); load average ${env.loadAvgStart.join(' ')}`);
  if (env.dirtyFiles.length) log(`note: the working tree has uncommitted changes (${env.dirtyFiles.join(', ')}); they are what runs`);

  const lives = new Map<ConfigId, Live>();
  const buildErrors = new Map<ConfigId, string>();
  const runs: RunRecord[] = [];
  const events: string[] = [];
  try {
    for (const cfg of configs) {
      log(`building rig ${cfg.label} …`);
      try {
        lives.set(cfg.id, await build(cfg));
      } catch (e) {
        buildErrors.set(cfg.id, errorText(e));
        events.push(`${cfg.id}: build failed: ${errorText(e)}`);
        log(`  failed: ${errorText(e)}`);
      }
    }
    /**
     * Makes sure `cfg` has a working rig: rebuilds it when it has none or a daemon died, then
     * pings through it (when asked, and after a rebuild). Two tries; returns why it is not
     * usable, or undefined.
     */
    const ready = async (cfg: ConfigDef, ping: boolean, when: string): Promise<string | undefined> => {
      let last: string | undefined;
      for (let attempt = 0; attempt < 2; attempt++) {
        let l = lives.get(cfg.id);
        try {
          const why = l ? deadDaemon(l) : (last ?? buildErrors.get(cfg.id) ?? 'no rig');
          if (why) {
            events.push(`${cfg.id}: rebuilding ${when}: ${why}`);
            log(`  rebuilding ${cfg.label} ${when}: ${why.slice(0, 300)}`);
            if (l) await l.rig.destroy().catch((e: unknown) => events.push(`${cfg.id}: destroy: ${errorText(e)}`));
            lives.delete(cfg.id);
            l = undefined;
            l = await build(cfg);
            lives.set(cfg.id, l);
            ping = true;
          }
          if (ping && !l!.noPing) {
            const p = await l!.rig.ping(l!.a, l!.target, { count: 3, interval: 0.2, wait: 2 });
            if (p.received === 0) throw new Error(`no reply to 3 pings through ${cfg.label}: ${p.output.trim().split('\n').slice(-2).join(' / ')}`);
          }
          return undefined;
        } catch (e) {
          last = errorText(e);
          const dead = l ? deadDaemon(l) : undefined;
          if (dead) last += `; ${dead}`;
          if (l) await l.rig.destroy().catch(() => undefined);
          lives.delete(cfg.id);
        }
      }
      events.push(`${cfg.id}: not usable ${when}: ${last}`);
      return last;
    };
    const total = configs.reduce((n, cfg) => n + repeatsOf(cfg, args) * casesFor(cfg, cases).length, 0);
    const rounds = Math.max(...configs.map((cfg) => repeatsOf(cfg, args)));
    let done = 0;
    for (let rep = 0; rep < rounds; rep++) {
      const order = configs.map((_, i) => configs[(i + rep) % configs.length]!).filter((cfg) => rep < repeatsOf(cfg, args));
      for (const cfg of order) {
        // The block starts with pings (renewing the session); a dead rig is rebuilt. When that
        // fails, the block's cases are reported as failed without further rebuilds.
        let blockError = await ready(cfg, true, `before repeat ${rep + 1}`);
        for (const c of casesFor(cfg, cases)) {
          done++;
          const head = `[${done}/${total}] ${cfg.label}, ${c.label}, repeat ${rep + 1}/${repeatsOf(cfg, args)}`;
          const rec: RunRecord = { config: cfg.id, case: c.id, repeat: rep, ok: false, startedAt: new Date().toISOString() };
          runs.push(rec);
          blockError ??= await ready(cfg, false, `before ${c.id}, repeat ${rep + 1}`);
          const l = lives.get(cfg.id);
          if (blockError || !l) {
            rec.error = blockError ?? 'no rig';
            log(`${head}: FAILED (${rec.error.slice(0, 300)})`);
            continue;
          }
          try {
            rec.metrics = await measure(l, c, args);
            rec.ok = true;
            log(`${head}: ${progressLine(c, rec.metrics)}`);
          } catch (e) {
            const dead = deadDaemon(l);
            rec.error = errorText(e);
            if (dead && !rec.error.includes(dead)) rec.error += `; ${dead}`;
            log(`${head}: FAILED (${rec.error.slice(0, 300)})`);
          }
          updateRss(l);
        }
        const elapsed = (Date.now() - t0) / 1000;
        log(`  elapsed ${Math.round(elapsed)} s, about ${Math.round((elapsed / done) * (total - done))} s to go`);
      }
    }
  } finally {
    for (const l of lives.values()) updateRss(l);
    log('tearing down …');
    for (const l of lives.values()) {
      await l.rig.destroy().catch((e: unknown) => {
        events.push(`${l.def.id}: destroy: ${errorText(e)}`);
        log(`  cleanup error: ${errorText(e)}`);
      });
    }
  }
  const left = rigLeftovers();
  if (left.length) {
    events.push(`left behind: ${left.join('; ')}`);
    log(`WARNING: left behind: ${left.join('; ')}`);
  }

  env.loadAvgEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
  env.wallSeconds = (Date.now() - t0) / 1000;
  const rows = summarize(runs, configs, cases, args);
  const md = markdown(env, args, rows, configs, runs);
  const stamp = env.date.replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '') + (args.quick ? '-quick' : '');
  fs.mkdirSync(args.out, { recursive: true });
  const base = path.join(args.out, stamp);
  const json = {
    environment: env,
    settings: { quick: args.quick, repeat: args.repeat, vethRepeat: args.vethRepeat, tcpSeconds: args.seconds, udpSeconds: args.udpSeconds, udpLength: UDP_LEN, idlePings: args.idlePings, pingInterval: PING_INTERVAL },
    configurations: configs,
    cases,
    summary: rows,
    runs,
    events,
  };
  fs.writeFileSync(`${base}.json`, resultsJson(json));
  fs.writeFileSync(`${base}.md`, `${md}\n`);
  fs.writeFileSync(`${base}.svg`, svgChart(env, args, rows));
  process.stdout.write(`${md}\n`);
  log(`wrote ${path.relative(process.cwd(), base)}.{json,md,svg} (wall time ${Math.round(env.wallSeconds)} s)`);
  return runs.some((r) => r.ok) ? 0 : 1;
}

await runMain(main);
