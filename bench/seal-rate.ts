/**
 * One wireweave daemon's maximum send rate, by number of sealing threads (issue target: with
 * WIREWEAVE_SEAL_WORKERS=2, ≥ 1.7× the same daemon with 1).
 *
 *   npm run bench:seal -- [--workers 0,1,2] [--rounds 3] [--seconds 5] [--warmup 1] [--out DIR]
 *
 * A rig (test/support/netns.ts) of two namespaces joined by a veth:
 *   - B: bench/seal-sink.ts, a core Endpoint on B's underlay address that answers the daemon's
 *     handshakes, behind an nftables rule that counts and drops every transport message (UDP to
 *     the sink's port whose first payload byte is 4) before any socket sees it. Nothing is
 *     decrypted on the far side: the daemon is the only thing being measured.
 *   - A: the `wireweave` daemon (from the sources) with one peer, the sink, and
 *     bench/seal-gen.ts, which sends 1380-byte UDP datagrams to B's tunnel address as fast as one
 *     thread can (UDP_SEGMENT batches of 40, segmented by the kernel before the TUN).
 *   A's veth is told to take no GSO packets larger than one segment (gso_max_segs 1), so the
 *     daemon's UDP_SEGMENT batches are cut up in A as a NIC without UDP segmentation offload
 *     would, and B's counter counts datagrams, not batches.
 * For each round, each worker count in turn (rotated every round): a fresh daemon with
 * WIREWEAVE_SEAL_WORKERS=w, a handshake (one ping; `wg show` shows it), the generator, 1 s of
 * warm-up, then a window of --seconds over which it reads B's counter (datagrams, bytes), the
 * daemon's CPU time (utime+stime of all its threads, /proc/PID/stat; per thread from
 * /proc/PID/task, which shows where the sealing happens), the machine's busy CPU (/proc/stat)
 * and what the generator sent. Then the generator and the daemon stop.
 *
 * Output: progress on stderr, Markdown on stdout, bench/results/seal-rate-<UTC stamp>.md and
 * .json. Reports only; nothing asserts a timing. Everything is torn down on exit, errors and
 * signals included (netns.ts stops what it started, by PID, and deletes the namespaces).
 */
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRig, genKeyPair, rigLeftovers, rigPrereqsMissing } from '../test/support/netns.ts';
import type { Daemon, Rig, RigNode, Spawned } from '../test/support/netns.ts';
import { which } from '../test/support/wggo.ts';
import { markdownTable } from './util.ts';
import { argsOr, CLK_TCK, cmdOutput, errorText, fmt, log, parseFlags, resultsJson, runMain, statCpu, UsageError } from './proc.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const SINK = fileURLToPath(new URL('./seal-sink.ts', import.meta.url));
const GEN = fileURLToPath(new URL('./seal-gen.ts', import.meta.url));
const SINK_PORT = 51900;
const DAEMON_PORT = 51820;
const TARGET_PORT = 9;
/** IPv4 + UDP header bytes in each counted packet (nft counts whole IP packets). */
const IP_UDP = 28;

const USAGE = `usage: npm run bench:seal -- [--workers 0,1,2] [--rounds N] [--seconds N] [--warmup N] [--length N] [--segments N] [--offered N] [--out DIR]
  --workers LIST  WIREWEAVE_SEAL_WORKERS values to compare (default 0,1,2; 0 = seal on the main thread)
  --rounds N      rounds; each runs every worker count once, in a rotated order (default 3)
  --seconds N     measured window of each run (default 5)
  --warmup N      seconds of load before the window (default 1)
  --length N      UDP payload bytes of the generator's datagrams (default 1380)
  --segments N    datagrams per generator sendmsg (UDP_SEGMENT; default 40)
  --offered N     cap the generator at N datagrams/s (default 0: as fast as it goes). Uncapped it
                  takes a core of its own, which on a small machine is a core the daemon lacks  --out DIR       where the .md/.json go (default bench/results)`;

// ---------------------------------------------------------------- arguments

interface Args {
  workers: number[];
  rounds: number;
  seconds: number;
  warmup: number;
  length: number;
  segments: number;
  offered: number;
  out: string;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { workers: [0, 1, 2], rounds: 3, seconds: 5, warmup: 1, length: 1380, segments: 40, offered: 0, out: path.join(REPO, 'bench', 'results') };
  parseFlags(argv, (flag, value, arg) => {
    const number = (min: number, integer: boolean): number => {
      const v = value();
      const n = Number(v);
      if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) throw new UsageError(`${flag} must be ${integer ? 'an integer' : 'a number'} ≥ ${min}, not ${v}`);
      return n;
    };
    switch (flag) {
      case '--workers': {
        const v = value();
        const list = v.split(',').map((x) => x.trim());
        if (list.length === 0 || list.some((x) => !/^\d+$/.test(x) || Number(x) > 64)) throw new UsageError(`--workers takes counts in 0..64 separated by commas, not ${v}`);
        a.workers = [...new Set(list.map(Number))];
        break;
      }
      case '--rounds': a.rounds = number(1, true); break;
      case '--seconds': a.seconds = number(0.5, false); break;
      case '--warmup': a.warmup = number(0, false); break;
      case '--length': a.length = number(64, true); break;
      case '--segments': a.segments = number(1, true); break;
      case '--offered': a.offered = number(0, true); break;
      case '--out': a.out = path.resolve(value()); break;
      case '--help': case '-h': throw new UsageError('');
      default: throw new UsageError(`unknown argument ${arg}`);
    }
  });
  if (a.length * a.segments > 65000 || a.segments > 64) throw new UsageError(`--segments ${a.segments} × --length ${a.length} does not fit one UDP_SEGMENT send (65000 bytes, 64 segments)`);
  if (a.length > 1392) throw new UsageError(`--length ${a.length}: the tunnel's MTU is 1420, so at most 1392 bytes of UDP payload fit one packet`);
  return a;
}

// ---------------------------------------------------------------- small helpers

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


function median(xs: readonly number[]): number {
  const s = xs.filter(Number.isFinite).sort((x, y) => x - y);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** CPU seconds of each thread of `pid`, by thread id (name in `names`). */
function threadCpu(pid: number, names: Map<number, string>): Map<number, number> {
  const out = new Map<number, number>();
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tids) {
    const tid = Number(t);
    out.set(tid, statCpu(`/proc/${pid}/task/${t}/stat`));
    if (!names.has(tid)) {
      try {
        names.set(tid, fs.readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim());
      } catch {
        /* gone */
      }
    }
  }
  return out;
}

/** CPU seconds of every process on the machine (all threads), by PID, with its name. */
function allProcesses(): Map<number, { name: string; cpu: number }> {
  const out = new Map<number, { name: string; cpu: number }>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(e), { name, cpu: (Number(fields[11]) + Number(fields[12])) / CLK_TCK });
    } catch {
      /* gone */
    }
  }
  return out;
}

/** The start of a process's command line (for telling the other processes apart). */
function commandOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 120);
  } catch {
    return '';
  }
}

/** Busy (steal excluded), steal and total jiffies of the whole machine (/proc/stat "cpu" line). */
function machineJiffies(): { busy: number; steal: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((x, y) => x + y, 0); // guest time is inside user already
  const idle = f[3]! + (f[4] ?? 0);
  const steal = f[7] ?? 0;
  return { busy: total - idle - steal, steal, total };
}

// ---------------------------------------------------------------- the rig

interface Setup {
  rig: Rig;
  a: RigNode;
  b: RigNode;
  daemonKeys: { privateKey: string; publicKey: string };
  sinkPublicKey: string;
  sink: Spawned;
}

const NFT_TABLE = 'wwsink';

async function setUp(): Promise<Setup> {
  const rig = await createRig({ name: 'bench seal-rate' });
  try {
    const [a, b] = rig.nodes as [RigNode, RigNode];
    const daemonKeys = genKeyPair();
    const sinkKeys = genKeyPair();
    // The daemon's UDP_SEGMENT batches are segmented in A (see the header).
    await rig.execOk(a, ['ip', 'link', 'set', 'dev', a.dev, 'gso_max_segs', '1']);
    const rules = [
      `table inet ${NFT_TABLE} {`,
      '  chain input {',
      '    type filter hook input priority -10;',
      `    udp dport ${SINK_PORT} @th,64,8 4 counter drop`,
      '  }',
      '}',
      '',
    ].join('\n');
    await rig.execOk(b, ['nft', '-f', '-'], { input: rules });
    const keyFile = rig.secretFile('sink.key', `${sinkKeys.privateKey}\n`);
    const sink = rig.spawnIn(b, [process.execPath, '--import', 'tsx', SINK, b.addr4, String(SINK_PORT), keyFile, daemonKeys.publicKey]);
    await sink.waitFor(/listening \d+/, 15_000);
    return { rig, a, b, daemonKeys, sinkPublicKey: sinkKeys.publicKey, sink };
  } catch (e) {
    await rig.destroy().catch(() => undefined);
    throw e;
  }
}

async function sinkCounter(s: Setup): Promise<{ packets: number; bytes: number }> {
  const r = await s.rig.execOk(s.b, ['nft', '-j', 'list', 'table', 'inet', NFT_TABLE]);
  const doc = JSON.parse(r.stdout) as { nftables: { rule?: { expr: { counter?: { packets: number; bytes: number } }[] } }[] };
  for (const item of doc.nftables) {
    for (const e of item.rule?.expr ?? []) if (e.counter) return { packets: e.counter.packets, bytes: e.counter.bytes };
  }
  throw new Error(`no counter in nft -j list table inet ${NFT_TABLE}: ${r.stdout.slice(0, 400)}`);
}

// ---------------------------------------------------------------- one run

interface Mark {
  at: number;
  sink: { packets: number; bytes: number };
  cpu: number;
  genCpu: number;
  threads: Map<number, number>;
  machine: { busy: number; steal: number; total: number };
  processes: Map<number, { name: string; cpu: number }>;
  gen: { sent: number; errors: number; ms: number };
}

interface RunRecord {
  workers: number;
  round: number;
  ok: boolean;
  error?: string;
  /** Measured window, seconds (the orchestrator's clock between its two marks). */
  seconds?: number;
  sinkDatagrams?: number;
  sinkPayloadBytes?: number;
  generatorDatagrams?: number;
  generatorErrors?: number;
  datagramsPerSecond?: number;
  gbps?: number;
  generatorPerSecond?: number;
  /** Sink datagrams over generator datagrams in the window. */
  delivered?: number;
  daemonCpuSeconds?: number;
  /** CPU seconds of the daemon per 10⁹ bytes of UDP payload counted at the sink. */
  cpuPerGB?: number;
  /** Busy fraction of the whole machine (all cores) over the window, 0..1 (steal excluded). */
  machineBusy?: number;
  /** CPU seconds per second of the generator, and of everything on the machine but it and the daemon. */
  generatorCpuPerSecond?: number;
  otherCpuPerSecond?: number;
  /** CPU seconds per second the hypervisor took (steal). */
  stealPerSecond?: number;
  /** The other processes that were busiest in the window (kernel threads such as ksoftirqd included), CPU-s per s. */
  otherProcesses?: { pid: number; name: string; command: string; cpuPerSecond: number }[];
  /** Daemon threads and their CPU seconds in the window, busiest first (those above 1 % of it). */
  threads?: { tid: number; name: string; cpuSeconds: number }[];
  threadCount?: number;
  /** The daemon's log lines about its bind and sealing threads. */
  bindLog?: string[];
}

async function genMark(gen: Spawned, kind: 'mark' | 'done'): Promise<{ sent: number; errors: number; ms: number }> {
  const before = gen.stdout().split('\n').filter((l) => l.startsWith(`${kind} `)).length;
  process.kill(gen.pid, kind === 'mark' ? 'SIGUSR1' : 'SIGTERM');
  const deadline = Date.now() + 5000;
  for (;;) {
    const lines = gen.stdout().split('\n').filter((l) => l.startsWith(`${kind} `));
    if (lines.length > before) {
      const [, sent, errors, ms] = lines[before]!.split(' ');
      return { sent: Number(sent), errors: Number(errors), ms: Number(ms) };
    }
    if (!gen.running()) throw new Error(`the generator exited: ${gen.stderr().slice(-1000)}`);
    if (Date.now() > deadline) throw new Error(`the generator did not answer ${kind} within 5 s`);
    await sleep(2);
  }
}

async function mark(s: Setup, d: Daemon, gen: Spawned, names: Map<number, string>): Promise<Mark> {
  // Everything read as close together as possible: the generator's count arrives a few ms
  // later (it looks at signals between bursts) and only serves the sanity check.
  const pending = genMark(gen, 'mark');
  const at = performance.now();
  const cpu = statCpu(`/proc/${d.proc.pid}/stat`);
  const genCpu = statCpu(`/proc/${gen.pid}/stat`);
  const threads = threadCpu(d.proc.pid, names);
  const machine = machineJiffies();
  const processes = allProcesses();
  const sink = await sinkCounter(s);
  return { at, sink, cpu, genCpu, threads, machine, processes, gen: await pending };
}

async function waitForHandshake(s: Setup, d: Daemon): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    // The first packet starts the handshake; it gets no answer (the sink only counts).
    await s.rig.exec(s.a, ['ping', '-n', '-q', '-c', '1', '-W', '1', s.b.tun4], { timeoutMs: 5000 });
    const peer = (await s.rig.dump(d.ifname)).peers[0];
    if (peer && peer.latestHandshake > 0) return;
    if (!d.proc.running()) throw new Error(`the daemon exited: ${d.logs().slice(-1500)}`);
    if (Date.now() > deadline) throw new Error(`no handshake with the sink within 15 s; daemon log: ${d.logs().slice(-1500)}`);
  }
}

async function runOne(s: Setup, workers: number, round: number, args: Args): Promise<RunRecord> {
  const rec: RunRecord = { workers, round, ok: false };
  let d: Daemon | undefined;
  let gen: Spawned | undefined;
  try {
    d = await s.rig.startDaemon(s.a, 'wireweave', undefined, { WIREWEAVE_SEAL_WORKERS: String(workers) });
    await s.rig.configure(s.a, d.ifname, {
      privateKey: s.daemonKeys.privateKey,
      listenPort: DAEMON_PORT,
      peers: [{ publicKey: s.sinkPublicKey, endpoint: `${s.b.addr4}:${SINK_PORT}`, allowedIPs: [`${s.b.tun4}/32`] }],
      address4: `${s.a.tun4}/24`,
    });
    await waitForHandshake(s, d);
    gen = s.rig.spawnIn(s.a, [process.execPath, '--import', 'tsx', GEN, s.b.tun4, String(TARGET_PORT), String(args.length), String(args.segments), String(args.offered)]);
    await gen.waitFor(/sending/, 15_000);
    await sleep(args.warmup * 1000);
    const names = new Map<number, string>();
    const m0 = await mark(s, d, gen, names);
    await sleep(args.seconds * 1000);
    const m1 = await mark(s, d, gen, names);
    if (!d.proc.running()) throw new Error(`the daemon exited during the run: ${d.logs().slice(-1500)}`);
    const seconds = (m1.at - m0.at) / 1000;
    const datagrams = m1.sink.packets - m0.sink.packets;
    const payload = m1.sink.bytes - m0.sink.bytes - datagrams * IP_UDP;
    const sent = m1.gen.sent - m0.gen.sent;
    const cpu = m1.cpu - m0.cpu;
    const busy = m1.machine.busy - m0.machine.busy;
    const total = m1.machine.total - m0.machine.total;
    const steal = m1.machine.steal - m0.machine.steal;
    const genCpu = m1.genCpu - m0.genCpu;
    const threads = [...m1.threads].map(([tid, c1]) => ({ tid, name: tid === d!.proc.pid ? 'main' : names.get(tid) ?? '?', cpuSeconds: c1 - (m0.threads.get(tid) ?? 0) }))
      .filter((t) => Number.isFinite(t.cpuSeconds))
      .sort((x, y) => y.cpuSeconds - x.cpuSeconds);
    Object.assign(rec, {
      seconds,
      sinkDatagrams: datagrams,
      sinkPayloadBytes: payload,
      generatorDatagrams: sent,
      generatorErrors: m1.gen.errors - m0.gen.errors,
      datagramsPerSecond: datagrams / seconds,
      gbps: (payload * 8) / seconds / 1e9,
      generatorPerSecond: sent / ((m1.gen.ms - m0.gen.ms) / 1000),
      delivered: sent > 0 ? datagrams / sent : NaN,
      daemonCpuSeconds: cpu,
      cpuPerGB: payload > 0 ? cpu / (payload / 1e9) : NaN,
      machineBusy: total > 0 ? busy / total : NaN,
      generatorCpuPerSecond: genCpu / seconds,
      otherCpuPerSecond: (busy / CLK_TCK - cpu - genCpu) / seconds,
      stealPerSecond: steal / CLK_TCK / seconds,
      otherProcesses: [...m1.processes]
        .filter(([pid]) => pid !== d!.proc.pid && pid !== gen!.pid)
        .map(([pid, p]) => ({ pid, name: pid === s.sink.pid ? 'sink' : p.name, cpuPerSecond: Number(((p.cpu - (m0.processes.get(pid)?.cpu ?? p.cpu)) / seconds).toFixed(3)) }))
        .filter((p) => p.cpuPerSecond >= 0.02)
        .sort((x, y) => y.cpuPerSecond - x.cpuPerSecond)
        .slice(0, 5)
        .map((p) => ({ ...p, command: commandOf(p.pid) })),
      threads: threads.filter((t) => t.cpuSeconds >= 0.01 * seconds).map((t) => ({ ...t, cpuSeconds: Number(t.cpuSeconds.toFixed(3)) })),
      threadCount: m1.threads.size,
    });
    // Sanity: datagrams, not GSO batches, and no more than were sent.
    if (datagrams <= 0) throw new Error('the sink counted no transport datagrams');
    const perPacket = (m1.sink.bytes - m0.sink.bytes) / datagrams;
    if (perPacket > 1500) throw new Error(`the sink's counter saw ${fmt(perPacket)} bytes per packet: GSO batches were not segmented in A`);
    if (datagrams > sent * 1.01 + 1000) throw new Error(`the sink counted ${datagrams} datagrams but the generator sent only ${sent}`);
    rec.ok = true;
  } catch (e) {
    rec.error = errorText(e);
  } finally {
    if (gen) {
      if (gen.running()) await genMark(gen, 'done').catch(() => undefined);
      await gen.stop().catch(() => undefined);
    }
    if (d) {
      rec.bindLog = d.logs().split('\n').filter((l) => /seal|bind|sodium/i.test(l)).slice(0, 10);
      await d.proc.stop().catch((e: unknown) => { rec.error = `${rec.error ?? ''} stopping the daemon: ${errorText(e)}`.trim(); });
    }
  }
  return rec;
}

// ---------------------------------------------------------------- summary

interface Summary {
  workers: number;
  runs: number;
  ok: number;
  datagramsPerSecond: number;
  gbps: number;
  cpuPerGB: number;
  daemonCpuPerSecond: number;
  generatorPerSecond: number;
  delivered: number;
  machineBusy: number;
  generatorCpuPerSecond: number;
  otherCpuPerSecond: number;
  min: number;
  max: number;
}

function summarize(runs: readonly RunRecord[], workers: readonly number[]): Summary[] {
  return workers.map((w) => {
    const mine = runs.filter((r) => r.workers === w);
    const ok = mine.filter((r) => r.ok);
    const pick = (f: (r: RunRecord) => number | undefined): number => median(ok.map((r) => f(r) ?? NaN));
    const dps = ok.map((r) => r.datagramsPerSecond!);
    return {
      workers: w,
      runs: mine.length,
      ok: ok.length,
      datagramsPerSecond: pick((r) => r.datagramsPerSecond),
      gbps: pick((r) => r.gbps),
      cpuPerGB: pick((r) => r.cpuPerGB),
      daemonCpuPerSecond: pick((r) => r.daemonCpuSeconds! / r.seconds!),
      generatorPerSecond: pick((r) => r.generatorPerSecond),
      delivered: pick((r) => r.delivered),
      machineBusy: pick((r) => r.machineBusy),
      generatorCpuPerSecond: pick((r) => r.generatorCpuPerSecond),
      otherCpuPerSecond: pick((r) => r.otherCpuPerSecond),
      min: dps.length ? Math.min(...dps) : NaN,
      max: dps.length ? Math.max(...dps) : NaN,
    };
  });
}

/** Ratio of medians, and the range of the per-round ratios (runs of the same round). */
function ratio(runs: readonly RunRecord[], sums: readonly Summary[], num: number, den: number): { median: number; rounds: number[] } | undefined {
  const n = sums.find((x) => x.workers === num);
  const d = sums.find((x) => x.workers === den);
  if (!n || !d) return undefined;
  const rounds: number[] = [];
  for (const r of new Set(runs.map((x) => x.round))) {
    const a = runs.find((x) => x.round === r && x.workers === num && x.ok);
    const b = runs.find((x) => x.round === r && x.workers === den && x.ok);
    if (a && b) rounds.push(a.datagramsPerSecond! / b.datagramsPerSecond!);
  }
  return { median: n.datagramsPerSecond / d.datagramsPerSecond, rounds };
}

interface EnvInfo {
  date: string;
  cpu: string;
  cores: number;
  kernel: string;
  node: string;
  commit: string;
  dirtyFiles: string[];
  loadAvgStart: number[];
  loadAvgEnd?: number[];
  wallSeconds?: number;
  sodiumNative: string;
}

function environmentInfo(): EnvInfo {
  const dirty = cmdOutput('git', ['-C', REPO, 'status', '--porcelain', '--untracked-files=no']);
  let sodium = 'missing';
  try {
    sodium = (createRequire(import.meta.url)('sodium-native/package.json') as { version: string }).version;
  } catch {
    /* reported */
  }
  return {
    date: new Date().toISOString(),
    cpu: os.cpus()[0]?.model.trim() ?? '?',
    cores: os.cpus().length,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    commit: cmdOutput('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']) || '?',
    dirtyFiles: dirty ? dirty.split('\n').map((l) => l.trim()) : [],
    loadAvgStart: os.loadavg().map((x) => Number(x.toFixed(2))),
    sodiumNative: sodium,
  };
}

function markdown(env: EnvInfo, args: Args, runs: readonly RunRecord[], sums: readonly Summary[]): string {
  const headers = ['sealing threads', 'runs ok', 'datagrams/s at the sink (min–max)', 'Gbit/s (UDP payload)', 'daemon CPU-s per GB', 'daemon CPU-s per s', 'generator datagrams/s', 'sink / generator', 'generator CPU-s per s', 'other CPU-s per s', 'machine busy'];
  const rows = sums.map((x) => [
    x.workers === 0 ? '0 (main thread)' : String(x.workers),
    `${x.ok}/${x.runs}`,
    `${fmt(x.datagramsPerSecond)} (${fmt(x.min)}–${fmt(x.max)})`,
    fmt(x.gbps),
    fmt(x.cpuPerGB),
    fmt(x.daemonCpuPerSecond),
    fmt(x.generatorPerSecond),
    `${fmt(100 * x.delivered, 3)} %`,
    fmt(x.generatorCpuPerSecond),
    fmt(x.otherCpuPerSecond),
    `${fmt(100 * x.machineBusy, 3)} %`,
  ]);
  const ratios: string[] = [];
  for (const [num, den] of [[2, 1], [1, 0]] as const) {
    const r = ratio(runs, sums, num, den);
    if (!r) continue;
    ratios.push(`- ${num} vs ${den} sealing thread${den === 1 ? '' : 's'}: **${fmt(r.median)}×** (ratio of the medians; per round: ${r.rounds.map((x) => fmt(x)).join(', ') || '–'})`);
  }
  const threadLines = sums.map((x) => {
    const last = runs.filter((r) => r.workers === x.workers && r.ok).at(-1);
    if (!last) return `- ${x.workers}: no successful run`;
    const busy = (last.threads ?? []).slice(0, 6).map((t) => `${t.name} ${fmt((100 * t.cpuSeconds) / last.seconds!, 2)} %`).join(', ');
    return `- ${x.workers} sealing thread(s), round ${last.round + 1}: ${last.threadCount} threads; busiest: ${busy}`;
  });
  const runHeaders = ['round', 'sealing threads', 'datagrams/s', 'daemon CPU-s per s', 'generator CPU-s per s', 'other CPU-s per s', 'busiest other processes (CPU-s per s)'];
  const runRows = runs.filter((r) => r.ok).map((r) => [
    String(r.round + 1), String(r.workers), fmt(r.datagramsPerSecond!), fmt(r.daemonCpuSeconds! / r.seconds!), fmt(r.generatorCpuPerSecond!),
    fmt(r.otherCpuPerSecond!), (r.otherProcesses ?? []).map((p) => `${p.name} ${fmt(p.cpuPerSecond, 2)}`).join(', ') || '–',
  ]);
  const failures = runs.filter((r) => !r.ok);
  const lines = [
    '## wireweave: one daemon\'s send rate by sealing threads (`npm run bench:seal`)',
    '',
    `- date: ${env.date}; wall time ${env.wallSeconds === undefined ? '?' : `${Math.round(env.wallSeconds)} s`}`,
    `- machine: ${env.cpu}, ${env.cores} logical cores, ${env.kernel}; load average (1/5/15 min) at start ${env.loadAvgStart.join(' / ')}, at end ${env.loadAvgEnd?.join(' / ') ?? '?'}`,
    `- ${env.node}, sodium-native ${env.sodiumNative}; wireweave at ${env.commit}${env.dirtyFiles.length ? ` with uncommitted changes in ${env.dirtyFiles.length} file(s) (${env.dirtyFiles.join(', ')})` : ''}`,
    `- runs: ${args.rounds} round(s) × WIREWEAVE_SEAL_WORKERS ${args.workers.join(', ')} (order rotated each round), ${args.warmup} s warm-up + ${args.seconds} s measured, a fresh daemon each run; load: ${args.length}-byte UDP datagrams, ${args.segments} per sendmsg, ${args.offered ? `capped at ${fmt(args.offered)}/s` : 'as fast as the generator goes'}`,
    '',
    markdownTable(headers, rows, headers.map((_, i) => i >= 1)),
    '',
    ...ratios,
    '',
    'Medians over the runs. Datagrams/s: WireGuard transport messages counted (and dropped) by nftables in B before any socket; nothing decrypts them.',
    `Gbit/s: their UDP payload (the WireGuard messages, ${args.length} + 28 inner header bytes padded to 16, + 32). CPU-s per GB: utime+stime of the daemon process, all threads, over the window, per 10⁹ bytes of that payload.`,
    'Generator: datagrams the kernel accepted from bench/seal-gen.ts in A (it runs on the same machine and competes for the same cores); what the daemon could not take was dropped at its TUN.',
    'Generator CPU-s per s: its process (with the kernel work done in its sendmsg calls: segmentation, routing, the TUN). Other: everything else busy on the machine (softirq work charged to no process, other processes), from /proc/stat minus the daemon and the generator.',
    'Machine busy: all cores, from /proc/stat, over the window, hypervisor steal excluded. Near 100 % the daemon\'s figures are bounded by the cores, not by its design.',
    '',
    'Where the daemon\'s CPU went (per thread, share of one core over the window; "main" is the main thread; Node 20 names every other thread "node", so the sealers show up as the extra busy ones):',
    '',
    ...threadLines,
    '',
    '### Runs, in order',
    '',
    markdownTable(runHeaders, runRows, runHeaders.map((_, i) => i >= 1 && i <= 5)),
  ];
  if (failures.length) {
    lines.push('', '### Failed runs', '');
    for (const f of failures) lines.push(`- ${f.workers} sealing thread(s), round ${f.round + 1}: ${(f.error ?? '').slice(0, 400)}`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const args = argsOr(() => parseArgs(process.argv.slice(2)), USAGE);
  if (typeof args === 'number') return args;
  const env = environmentInfo();
  const missing = [rigPrereqsMissing(['wireweave']), which('nft') ? undefined : 'nft not found on PATH',
    env.sodiumNative === 'missing' && args.workers.some((w) => w > 0) ? 'sodium-native is not installed (the sealing threads need it)' : undefined].filter(Boolean);
  if (missing.length) {
    log(`cannot run the seal-rate benchmark: ${missing.join('; ')}`);
    return 2;
  }
  process.chdir(REPO); // `--import tsx` of the sink and the generator resolves from here
  const t0 = Date.now();
  log(`seal-rate: WIREWEAVE_SEAL_WORKERS ${args.workers.join(', ')} × ${args.rounds} round(s), ${args.seconds} s each; load average ${env.loadAvgStart.join(' ')}`);
  if (env.dirtyFiles.length) log(`note: the working tree has uncommitted changes (${env.dirtyFiles.length} files); they are what runs`);
  const runs: RunRecord[] = [];
  let setup: Setup | undefined;
  try {
    setup = await setUp();
    const total = args.rounds * args.workers.length;
    for (let round = 0; round < args.rounds; round++) {
      const order = args.workers.map((_, i) => args.workers[(i + round) % args.workers.length]!);
      for (const w of order) {
        if (!setup.sink.running()) throw new Error(`the sink exited: ${setup.sink.stderr().slice(-1000)}`);
        const rec = await runOne(setup, w, round, args);
        runs.push(rec);
        const head = `[${runs.length}/${total}] round ${round + 1}, ${w} sealing thread(s)`;
        if (rec.ok) {
          log(`${head}: ${fmt(rec.datagramsPerSecond!)} datagrams/s, ${fmt(rec.gbps!)} Gbit/s, daemon ${fmt(rec.daemonCpuSeconds! / rec.seconds!)} CPU-s/s (${fmt(rec.cpuPerGB!)} per GB), generator ${fmt(rec.generatorPerSecond!)}/s (${fmt(rec.generatorCpuPerSecond!)} CPU-s/s), other ${fmt(rec.otherCpuPerSecond!)} CPU-s/s${rec.otherProcesses!.length ? ` (${rec.otherProcesses!.map((p) => `${p.name} ${fmt(p.cpuPerSecond, 2)}`).join(', ')})` : ''}, machine ${fmt(100 * rec.machineBusy!)} % busy`);
        } else {
          log(`${head}: FAILED (${(rec.error ?? '').slice(0, 400)})`);
        }
      }
    }
  } finally {
    log('tearing down …');
    if (setup) {
      if (setup.sink.running()) process.kill(setup.sink.pid, 'SIGTERM');
      await setup.sink.stop().catch(() => undefined);
      const line = setup.sink.stdout().split('\n').find((l) => l.startsWith('{'));
      if (line) log(`sink: ${line}`);
      await setup.rig.destroy().catch((e: unknown) => log(`cleanup error: ${errorText(e)}`));
    }
  }
  const left = rigLeftovers();
  if (left.length) log(`WARNING: left behind: ${left.join('; ')}`);

  env.loadAvgEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
  env.wallSeconds = (Date.now() - t0) / 1000;
  const sums = summarize(runs, args.workers);
  const md = markdown(env, args, runs, sums);
  const stamp = env.date.replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '');
  fs.mkdirSync(args.out, { recursive: true });
  const base = path.join(args.out, `seal-rate-${stamp}`);
  const json = {
    environment: env,
    settings: { ...args, out: undefined, sinkPort: SINK_PORT, targetPort: TARGET_PORT },
    summary: sums,
    ratios: { '2v1': ratio(runs, sums, 2, 1) ?? null, '1v0': ratio(runs, sums, 1, 0) ?? null },
    runs,
    leftBehind: left,
  };
  fs.writeFileSync(`${base}.json`, resultsJson(json));
  fs.writeFileSync(`${base}.md`, `${md}\n`);
  process.stdout.write(`${md}\n`);
  log(`wrote ${path.relative(process.cwd(), base)}.{json,md} (wall time ${Math.round(env.wallSeconds)} s)`);
  return runs.some((r) => r.ok) ? 0 : 1;
}

await runMain(main);
