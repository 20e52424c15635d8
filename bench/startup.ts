/**
 * `npm run bench:startup -- NAME=DIR [NAME=DIR ...]`: what the `wireweave` command costs to start
 * and to keep running, for checkouts side by side in one run (issue 13: before and after the
 * compiled package). Reports only; nothing asserts a figure.
 *
 *   git worktree add /tmp/ww-before <commit> && (cd /tmp/ww-before && npm ci)
 *   npm run bench:startup -- before=/tmp/ww-before after=.
 *
 * - `wireweave genkey` start to exit: hyperfine (Debian package), no shell (-N), 3 warm-ups,
 *   --runs runs per checkout (default 40), the checkouts interleaved by hyperfine's order.
 *   Without hyperfine, the same by spawnSync and the clock here, the checkouts alternating run
 *   by run (spawnSync's own cost, ~1 ms, is in every figure then). A bare `node -e 0` is timed
 *   beside them as the control: Node's own start-up varies from machine to machine and hour to hour.
 * - An idle daemon's RSS (needs root): `DIR/bin/wireweave IFNAME -f` in a network namespace
 *   of its own (named for this process), configured as a client would be (a private key, a
 *   listen port, one peer with an endpoint on the namespace's loopback, the interface up with
 *   an address), then left alone --settle seconds (default 5); VmRSS, VmHWM and the thread
 *   count from /proc. --rounds rounds (default 5), the checkouts alternating; the median.
 *
 * Results: stdout and bench/results/startup-<time>.md (and .json, hyperfine's too).
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(fileURLToPath(new URL('..', import.meta.url)));
const USAGE = `Usage: npm run bench:startup -- NAME=DIR [NAME=DIR ...] [--runs N] [--rounds N] [--settle S] [--no-daemon]
DIR is a checkout with node_modules installed (and dist/ built, where bin/wireweave runs dist/).`;

interface Checkout { name: string; dir: string; bin: string }
interface Args { checkouts: Checkout[]; runs: number; rounds: number; settle: number; daemon: boolean }

function parseArgs(argv: string[]): Args {
  const a: Args = { checkouts: [], runs: 40, rounds: 5, settle: 5, daemon: true };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const num = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${arg} needs a positive integer`);
      return v;
    };
    if (arg === '--runs') a.runs = num();
    else if (arg === '--rounds') a.rounds = num();
    else if (arg === '--settle') a.settle = num();
    else if (arg === '--no-daemon') a.daemon = false;
    else if (arg === '-h' || arg === '--help') { console.log(USAGE); process.exit(0); }
    else if (/^[A-Za-z0-9_-]+=/.test(arg)) {
      const name = arg.slice(0, arg.indexOf('='));
      const dir = path.resolve(arg.slice(arg.indexOf('=') + 1));
      const bin = path.join(dir, 'bin', 'wireweave');
      if (!fs.existsSync(bin)) throw new Error(`${bin} does not exist`);
      a.checkouts.push({ name, dir, bin });
    } else throw new Error(`unknown argument ${arg}\n${USAGE}`);
  }
  if (a.checkouts.length === 0) throw new Error(USAGE);
  return a;
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message || `exit ${r.status}`}`);
  return r.stdout;
}

function gitDescribe(dir: string): string {
  const r = spawnSync('git', ['-C', dir, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '?';
}

interface GenkeyFigures { meanMs: number; stddevMs: number; medianMs: number; minMs: number; maxMs: number; runs: number }

/** What is timed start to exit: each checkout's genkey, and Node itself as the control. */
interface Timed { name: string; cmd: string; argv: string[] }
const CONTROL = 'node -e 0 (control)';

function timedCommands(args: Args): Timed[] {
  return [...args.checkouts.map((c) => ({ name: c.name, cmd: c.bin, argv: ['genkey'] })), { name: CONTROL, cmd: process.execPath, argv: ['-e', '0'] }];
}

function genkey(args: Args, hyperfine: boolean, jsonOut: string): Map<string, GenkeyFigures> {
  if (!hyperfine) return genkeyTimed(args);
  const hf = ['-N', '--warmup', '3', '--runs', String(args.runs), '--export-json', jsonOut];
  for (const t of timedCommands(args)) hf.push('-n', t.name, [t.cmd, ...t.argv].join(' '));
  const r = spawnSync('hyperfine', hf, { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`hyperfine failed (${r.error?.message ?? `exit ${r.status}`})`);
  const json = JSON.parse(fs.readFileSync(jsonOut, 'utf8')) as { results: { command: string; mean: number; stddev: number; median: number; min: number; max: number; times: number[] }[] };
  return new Map(json.results.map((x) => [x.command, { meanMs: x.mean * 1e3, stddevMs: x.stddev * 1e3, medianMs: x.median * 1e3, minMs: x.min * 1e3, maxMs: x.max * 1e3, runs: x.times.length }]));
}

/** genkey without hyperfine: 3 warm-ups each, then `runs` rounds, the checkouts alternating. */
function genkeyTimed(args: Args): Map<string, GenkeyFigures> {
  const once = (c: Timed): number => {
    const t = performance.now();
    const r = spawnSync(c.cmd, c.argv, { stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0) throw new Error(`${c.cmd} ${c.argv.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})`);
    return performance.now() - t;
  };
  const commands = timedCommands(args);
  for (const c of commands) for (let i = 0; i < 3; i++) once(c);
  const times = new Map<string, number[]>(commands.map((c) => [c.name, []]));
  for (let r = 0; r < args.runs; r++) {
    const order = r % 2 === 0 ? commands : [...commands].reverse();
    for (const c of order) times.get(c.name)!.push(once(c));
  }
  return new Map(commands.map((c) => {
    const xs = times.get(c.name)!;
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const stddev = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
    console.log(`${c.name}: ${mean.toFixed(1)} ms ± ${stddev.toFixed(1)} (${xs.length} runs, no hyperfine: spawnSync)`);
    return [c.name, { meanMs: mean, stddevMs: stddev, medianMs: median(xs), minMs: Math.min(...xs), maxMs: Math.max(...xs), runs: xs.length }];
  }));
}

interface DaemonSample { rssKiB: number; hwmKiB: number; threads: number }

function procStatus(pid: number): DaemonSample {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM'), threads: field('Threads') };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

async function idleDaemon(c: Checkout, tag: string, settleSeconds: number): Promise<DaemonSample> {
  const ns = `ww-rss-${tag}`;
  const ifname = `wr${tag}`.slice(0, 15);
  const sock = `/var/run/wireguard/${ifname}.sock`;
  const keyFile = `/tmp/ww-rss-${tag}.key`;
  const peer = generateKeyPairSync('x25519').publicKey.export({ format: 'jwk' }).x!;
  const peerKey = Buffer.from(peer, 'base64url').toString('base64');
  fs.writeFileSync(keyFile, run(c.bin, ['genkey']), { mode: 0o600 });
  run('ip', ['netns', 'add', ns]);
  let child: ChildProcess | undefined;
  try {
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    // `ip netns exec` enters the namespace and execs the command: the child's PID is the daemon's.
    child = spawn('ip', ['netns', 'exec', ns, c.bin, ifname, '-f'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    for (let t = 0; !fs.existsSync(sock); t++) {
      if (child.exitCode !== null || t > 300) throw new Error(`${c.name}: the daemon did not come up: ${stderr}`);
      await sleep(100);
    }
    run('ip', ['netns', 'exec', ns, 'wg', 'set', ifname, 'private-key', keyFile, 'listen-port', '51820',
      'peer', peerKey, 'allowed-ips', '10.77.0.2/32', 'endpoint', '127.0.0.1:51821']);
    run('ip', ['-n', ns, 'address', 'add', '10.77.0.1/24', 'dev', ifname]);
    run('ip', ['-n', ns, 'link', 'set', ifname, 'up']);
    await sleep(settleSeconds * 1000);
    return procStatus(child.pid!);
  } finally {
    if (child?.pid !== undefined && child.exitCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited(child), sleep(5000)]);
      if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited(child); }
    }
    spawnSync('ip', ['netns', 'del', ns]);
    fs.rmSync(keyFile, { force: true });
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const mib = (kib: number): string => (kib / 1024).toFixed(1);

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const time = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const outDir = path.join(REPO, 'bench', 'results');
  fs.mkdirSync(outDir, { recursive: true });
  const base = path.join(outDir, `startup-${time}`);

  const lines: string[] = [`# Startup and idle daemon, ${time}`, '', `node ${process.version}, ${process.arch}; load average ${fsLoad()}`, ''];
  for (const c of args.checkouts) lines.push(`- **${c.name}**: \`${c.dir}\` at ${gitDescribe(c.dir)}`);

  const hyperfine = spawnSync('hyperfine', ['--version']).status === 0;
  const tool = hyperfine ? 'hyperfine -N' : 'spawnSync, no hyperfine here';
  console.log(`== wireweave genkey, start to exit (${tool})`);
  const g = genkey(args, hyperfine, `${base}.hyperfine.json`);
  lines.push('', `\`wireweave genkey\`, start to exit (${tool}, 3 warm-ups):`, '', '| checkout | mean | ± σ | median | min | max | runs |', '|---|---:|---:|---:|---:|---:|---:|');
  for (const c of timedCommands(args)) {
    const f = g.get(c.name)!;
    lines.push(`| ${c.name} | ${f.meanMs.toFixed(1)} ms | ${f.stddevMs.toFixed(1)} ms | ${f.medianMs.toFixed(1)} ms | ${f.minMs.toFixed(1)} ms | ${f.maxMs.toFixed(1)} ms | ${f.runs} |`);
  }

  const samples = new Map<string, DaemonSample[]>(args.checkouts.map((c) => [c.name, []]));
  if (args.daemon) {
    if (process.getuid?.() !== 0) throw new Error('the idle daemon needs root (a TUN device in a network namespace); --no-daemon skips it');
    for (let r = 0; r < args.rounds; r++) {
      const order = r % 2 === 0 ? args.checkouts : [...args.checkouts].reverse();
      for (const [i, c] of order.entries()) {
        const s = await idleDaemon(c, `${process.pid}${r}${i}`, args.settle);
        samples.get(c.name)!.push(s);
        console.log(`== idle daemon, round ${r + 1}, ${c.name}: VmRSS ${mib(s.rssKiB)} MiB, VmHWM ${mib(s.hwmKiB)} MiB, ${s.threads} threads`);
      }
    }
    lines.push('', `Idle daemon (\`bin/wireweave IFNAME -f\` on a TUN in its own network namespace, configured with a key, a listen port and one peer, then left alone ${args.settle} s), median of ${args.rounds}:`, '',
      '| checkout | VmRSS | (min – max) | VmHWM | threads |', '|---|---:|---:|---:|---:|');
    for (const c of args.checkouts) {
      const s = samples.get(c.name)!;
      const rss = s.map((x) => x.rssKiB);
      lines.push(`| ${c.name} | ${mib(median(rss))} MiB | ${mib(Math.min(...rss))} – ${mib(Math.max(...rss))} MiB | ${mib(median(s.map((x) => x.hwmKiB)))} MiB | ${median(s.map((x) => x.threads))} |`);
    }
  }
  const md = lines.join('\n') + '\n';
  fs.writeFileSync(`${base}.md`, md);
  fs.writeFileSync(`${base}.json`, JSON.stringify({ time, checkouts: args.checkouts, genkey: Object.fromEntries(g), daemon: Object.fromEntries(samples) }, null, 2) + '\n');
  console.log('\n' + md + `\n(${path.relative(REPO, base)}.md)`);
}

function fsLoad(): string {
  return fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
