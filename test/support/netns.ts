/**
 * Network-namespace rigs for end-to-end interop tests of the `wireweave` daemon against
 * itself and against wireguard-go.
 *
 * A rig is a set of private network namespaces (names `ww<pid>r<n><label>`) joined by an
 * underlay: with two nodes a veth pair `ul0`<->`ul0`; with more, node 0 (the hub) holds a
 * bridge `ul0` and every other node a veth `ul0` whose other end is a port of that bridge. Each
 * node has an IPv4 (/24) and an IPv6 (/64, nodad) underlay address; `lo` is up everywhere.
 * Daemons run inside a namespace (`ip netns exec NS <daemon> -f IFNAME`), so their UDP sockets
 * and TUN devices live there; only the UAPI socket /var/run/wireguard/IFNAME.sock is shared
 * with the host, and `wg` from the root namespace reaches it. Interface names
 * (`ww<pid%1e5>r<n><tag>`) are unique to this process and checked against existing sockets.
 *
 * Every process started here (`spawnIn`, `startDaemon`) runs in the foreground with its PID
 * owned by this process (`ip netns exec` execs in place), and is stopped by that PID
 * (SIGTERM, then SIGKILL) in `destroy()`, which also deletes the namespaces and removes the
 * sockets; a process 'exit'/signal hook does the same synchronously for rigs still alive.
 *
 * Secrets go to 0600 files in a private 0700 directory (removed right after use), never onto a
 * command line or into a message.
 *
 * `definePairCases` holds the test cases shared by the interop test files, parameterised by
 * the implementation on each end.
 */
import { encodeBase64, generatePrivateKey } from '../../src/core/keys.ts';
import { systemRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { parseWgDump, run, which, withTimeout } from './wggo.ts';
import type { RunOptions, RunResult, WgDump } from './wggo.ts';

export type Impl = 'wireweave' | 'wireguard-go';

export const WIREWEAVE_BIN = fileURLToPath(new URL('./wireweave.js', import.meta.url));
const RUN_DIR = '/var/run/wireguard';
const CMD_TIMEOUT_MS = 15_000;
const OUTPUT_LIMIT = 1 << 20;

// ---------------------------------------------------------------------------
// Prerequisites

/** Why this machine cannot run rigs with these implementations, or undefined if it can. */
export function rigPrereqsMissing(impls: readonly Impl[]): string | undefined {
  const missing: string[] = [];
  if (process.platform !== 'linux') missing.push(`Linux only (this is ${process.platform})`);
  if (process.getuid?.() !== 0) missing.push('needs root (network namespaces, TUN, /var/run/wireguard)');
  if (!fs.existsSync('/dev/net/tun')) missing.push('/dev/net/tun does not exist');
  const tools = ['ip', 'wg', 'ping', 'sysctl'];
  if (impls.includes('wireguard-go')) tools.push('wireguard-go');
  for (const t of tools) if (!which(t)) missing.push(`${t} not found on PATH`);
  return missing.length ? missing.join('; ') : undefined;
}

/** describe()'s `skip` option: the reason when prerequisites are missing, except under CI. */
export function skipUnlessRig(impls: readonly Impl[]): string | false {
  return process.env.CI ? false : (rigPrereqsMissing(impls) ?? false);
}

/** For a `before` hook: under CI, missing prerequisites are a failure. */
export function requireRig(impls: readonly Impl[]): void {
  const missing = rigPrereqsMissing(impls);
  assert.equal(missing, undefined, `interop prerequisites are missing (CI=${process.env.CI ?? ''}): ${missing}`);
}

// ---------------------------------------------------------------------------
// Keys (in memory; only ever written to 0600 files)

export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

/**
 * A fresh key pair. Not generateKeyPairSync('x25519') + JWK export: that deadlocked Node 20
 * in long runs (wireguard-facts.md; it hung a CI rehearsal here). Random bytes, clamped, and the
 * public key through our provider's JWK import path do not.
 */
export function genKeyPair(): KeyPair {
  const priv = generatePrivateKey(systemRng);
  const pub = nodeCrypto.x25519PrivateKey(priv).publicKey;
  return { privateKey: encodeBase64(priv), publicKey: encodeBase64(pub) };
}

export function genPsk(): string {
  return crypto.randomBytes(32).toString('base64');
}

// ---------------------------------------------------------------------------
// Processes

class Ring {
  private chunks: string[] = [];
  private size = 0;
  push(s: string): void {
    this.chunks.push(s);
    this.size += s.length;
    while (this.size > OUTPUT_LIMIT && this.chunks.length > 1) this.size -= this.chunks.shift()!.length;
  }
  text(): string {
    return this.chunks.join('');
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Spawned {
  readonly pid: number;
  readonly ns: string;
  readonly argv: readonly string[];
  /** Settles when the process has exited (never rejects). */
  readonly exited: Promise<Exit>;
  running(): boolean;
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout matches `re`; rejects on timeout or if the process exits first. */
  waitFor(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

// ---------------------------------------------------------------------------
// Rigs

export interface RigNode {
  /** 'A', 'B', 'C', ... */
  readonly label: string;
  readonly index: number;
  readonly ns: string;
  /** Underlay device in the namespace (veth, or the hub's bridge). */
  readonly dev: string;
  /** Current underlay IPv4 address (without prefix length); roaming changes it. */
  addr4: string;
  /** Underlay IPv6 address (without prefix length). */
  readonly addr6: string;
  /** Suggested tunnel addresses (without prefix length), inside rig.tunnel4/6. */
  readonly tun4: string;
  readonly tun6: string;
}

export interface PeerConfig {
  publicKey: string;
  presharedKey?: string;
  /** host:port or [v6]:port */
  endpoint?: string;
  allowedIPs: string[];
  persistentKeepalive?: number;
}

export interface InterfaceConfig {
  privateKey: string;
  listenPort?: number;
  peers: PeerConfig[];
  /** With prefix length, e.g. '10.1.2.1/24'. */
  address4?: string;
  address6?: string;
  mtu?: number;
}

export interface Daemon {
  readonly impl: Impl;
  readonly node: RigNode;
  readonly ifname: string;
  readonly socketPath: string;
  readonly proc: Spawned;
  /** The daemon's stdout and stderr so far. */
  logs(): string;
}

export interface PingResult {
  transmitted: number;
  received: number;
  /** Percent. */
  loss: number;
  output: string;
}

export interface PingOptions {
  count?: number;
  interval?: number;
  wait?: number;
  flood?: boolean;
  /** Source address or interface (`ping -I`). */
  source?: string;
  timeoutMs?: number;
}

export interface Rig {
  /** The name given to createRig (for messages). */
  readonly name: string;
  /** Prefix of the namespace names, unique to this process and rig. */
  readonly id: string;
  readonly nodes: readonly RigNode[];
  /** Underlay and tunnel prefixes (network/len). */
  readonly underlay4: string;
  readonly underlay6: string;
  readonly tunnel4: string;
  readonly tunnel6: string;
  /** `ip netns exec NS ...argv`; never rejects on a non-zero exit. */
  exec(node: RigNode | string, argv: string[], opts?: RunOptions): Promise<RunResult>;
  /** Like exec, but rejects on a non-zero exit. */
  execOk(node: RigNode | string, argv: string[], opts?: RunOptions): Promise<RunResult>;
  /** A long-running process in a namespace, stopped on destroy(). */
  spawnIn(node: RigNode | string, argv: string[], opts?: { env?: Record<string, string> }): Spawned;
  /** A fresh interface name unique to this process (≤ 15 chars, no socket of that name exists). */
  ifname(tag: string): string;
  /** `env` adds to the daemon's environment (LOG_LEVEL=verbose is always set). */
  startDaemon(node: RigNode, impl: Impl, ifname?: string, env?: Record<string, string>): Promise<Daemon>;
  /** `wg set` (keys through 0600 files), then addresses, MTU, link up and routes for the allowed IPs. */
  configure(node: RigNode, ifname: string, cfg: InterfaceConfig): Promise<void>;
  /** `wg ...args` from the root namespace (it only needs the socket). */
  wg(args: string[], opts?: RunOptions): Promise<RunResult>;
  wgOk(args: string[], opts?: RunOptions): Promise<string>;
  /** Parsed `wg show IF dump` (no secrets). */
  dump(ifname: string): Promise<WgDump>;
  /** Writes `content` to a 0600 file in the rig's private directory; returns its path. */
  secretFile(name: string, content: string): string;
  ping(node: RigNode, target: string, opts?: PingOptions): Promise<PingResult>;
  /** Stops every process, deletes the namespaces, removes sockets and files. Idempotent. */
  destroy(): Promise<void>;
}

interface LiveRig {
  namespaces: string[];
  procs: Set<Spawned & { child: ChildProcess }>;
  /** Short-lived commands (exec) still running. */
  children: Set<ChildProcess>;
  sockets: Set<string>;
  tmpDir: string;
}

const liveRigs = new Set<LiveRig>();
let rigCounter = 0;
let hookInstalled = false;

function killNow(child: ChildProcess): void {
  if (child.pid === undefined || !isRunning(child)) return;
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

function cleanupSync(live: LiveRig): void {
  for (const p of live.procs) killNow(p.child);
  for (const c of live.children) killNow(c);
  for (const ns of live.namespaces) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 5000 });
  for (const s of live.sockets) fs.rmSync(s, { force: true });
  fs.rmSync(live.tmpDir, { recursive: true, force: true });
  liveRigs.delete(live);
}

function installExitHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  process.on('exit', () => {
    for (const r of [...liveRigs]) cleanupSync(r);
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      for (const r of [...liveRigs]) cleanupSync(r);
      process.off(sig, handler);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

/** Namespaces, sockets and processes of this process's rigs still present (for leak checks). */
export function rigLeftovers(): string[] {
  const out: string[] = [];
  const nsPrefix = `ww${process.pid}r`;
  const ifPrefix = `ww${process.pid % 100000}r`;
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  for (const l of list.split('\n')) if (l.startsWith(nsPrefix)) out.push(`namespace ${l.split(' ')[0]}`);
  try {
    for (const f of fs.readdirSync(RUN_DIR)) if (f.startsWith(ifPrefix)) out.push(`socket ${RUN_DIR}/${f}`);
  } catch {
    /* no dir */
  }
  for (const r of liveRigs) {
    for (const p of r.procs) if (p.running()) out.push(`process ${p.pid} ${p.argv.join(' ')}`);
    for (const c of r.children) if (isRunning(c)) out.push(`process ${c.pid} ${c.spawnargs.join(' ').slice(0, 200)}`);
  }
  return out;
}

/** Like wggo.ts's run(), but the child is in `track` while it runs (so cleanup can kill it). */
function runTracked(cmd: string, args: string[], opts: RunOptions, track: Set<ChildProcess>): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      cwd: opts.cwd,
    });
    track.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      track.delete(child);
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      track.delete(child);
      if (timedOut) {
        reject(new Error(`timeout after ${opts.timeoutMs} ms: ${args.slice(0, 6).join(' ')}`));
        return;
      }
      resolve({
        code: code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    if (child.stdin) {
      child.stdin.on('error', () => {
        /* EPIPE if the child exits first */
      });
      child.stdin.end(opts.input);
    }
  });
}

function nsOf(node: RigNode | string): string {
  return typeof node === 'string' ? node : node.ns;
}

async function runOk(cmd: string, args: string[], what: string, opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, { timeoutMs: CMD_TIMEOUT_MS, ...opts });
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${(r.stderr.trim() || r.stdout.trim()).slice(0, 2000)}`);
  return r;
}

export function parsePing(output: string): PingResult {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(output);
  if (!m) return { transmitted: 0, received: 0, loss: 100, output };
  const transmitted = Number(m[1]);
  const received = Number(m[2]);
  return { transmitted, received, loss: transmitted ? (100 * (transmitted - received)) / transmitted : 100, output };
}

/** Creates the namespaces and the underlay. `nodes` defaults to 2 (A and B). */
export async function createRig(opts: { name: string; nodes?: number }): Promise<Rig> {
  const n = opts.nodes ?? 2;
  if (n < 2 || n > 8) throw new Error(`createRig: nodes must be 2..8, got ${n}`);
  installExitHook();
  const k = ++rigCounter;
  const pid = process.pid;
  const id = `ww${pid}r${k}`;
  const y = pid % 250;
  const hex = (pid % 0xffff).toString(16);
  const underlay4 = `10.${(100 + k) % 250}.${y}.0/24`;
  const tunnel4 = `10.${(200 + k) % 250}.${y}.0/24`;
  const underlay6 = `fd77:${hex}:${k}::/64`;
  const tunnel6 = `fd78:${hex}:${k}::/64`;
  const base4 = (net: string, host: number): string => net.replace(/\.0\/24$/, `.${host}`);
  const base6 = (net: string, host: number): string => net.replace(/::\/64$/, `::${host}`);

  const nodes: RigNode[] = [];
  for (let i = 0; i < n; i++) {
    const label = String.fromCharCode(65 + i);
    nodes.push({
      label,
      index: i,
      ns: `${id}${label.toLowerCase()}`,
      dev: 'ul0',
      addr4: base4(underlay4, i + 1),
      addr6: base6(underlay6, i + 1),
      tun4: base4(tunnel4, i + 1),
      tun6: base6(tunnel6, i + 1),
    });
  }

  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), `${id}-`));
  fs.chmodSync(tmpDir, 0o700);
  const live: LiveRig = { namespaces: [], procs: new Set(), children: new Set(), sockets: new Set(), tmpDir };
  liveRigs.add(live);
  const used = new Set<string>();
  let fileCounter = 0;
  let destroying: Promise<void> | undefined;

  const ipn = (node: RigNode, args: string[], what: string): Promise<RunResult> => runOk('ip', ['-n', node.ns, ...args], `${node.label}: ${what}`);
  const exec = (node: RigNode | string, argv: string[], o: RunOptions = {}): Promise<RunResult> =>
    runTracked('ip', ['netns', 'exec', nsOf(node), ...argv], { timeoutMs: CMD_TIMEOUT_MS, ...o }, live.children);
  const execOk = async (node: RigNode | string, argv: string[], o: RunOptions = {}): Promise<RunResult> => {
    const r = await exec(node, argv, o);
    if (r.code !== 0) throw new Error(`${nsOf(node)}: ${argv.join(' ').slice(0, 200)} failed (exit ${r.code}): ${(r.stderr.trim() || r.stdout.trim()).slice(0, 2000)}`);
    return r;
  };

  const spawnIn = (node: RigNode | string, argv: string[], o: { env?: Record<string, string> } = {}): Spawned => {
    const ns = nsOf(node);
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: o.env ? { ...process.env, ...o.env } : process.env,
    });
    const out = new Ring();
    const err = new Ring();
    const waiters = new Set<() => void>();
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => {
      out.push(s);
      for (const w of [...waiters]) w();
    });
    child.stderr!.on('data', (s: string) => err.push(s));
    const exited = new Promise<Exit>((resolve) => {
      child.on('error', (e) => {
        err.push(`\n[rig] spawn error: ${e.message}\n`);
        resolve({ code: null, signal: null });
      });
      child.on('exit', (code, signal) => resolve({ code, signal }));
    });
    void exited.then(() => {
      for (const w of [...waiters]) w();
    });
    // A leaked process must not keep the test process alive; destroy()/the exit hook ends it.
    child.unref();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
    if (child.pid === undefined) throw new Error(`cannot start ${argv[0]} in ${ns}`);
    const pidOf = child.pid;
    let stopping: Promise<void> | undefined;
    const handle: Spawned & { child: ChildProcess } = {
      child,
      pid: pidOf,
      ns,
      argv,
      exited,
      running: () => isRunning(child),
      stdout: () => out.text(),
      stderr: () => err.text(),
      waitFor: (re, timeoutMs) =>
        new Promise<RegExpMatchArray>((resolve, reject) => {
          const check = (): void => {
            const m = re.exec(out.text());
            if (m) done(() => resolve(m));
            else if (!isRunning(child)) {
              done(() => reject(new Error(`${argv[0]} exited (${child.exitCode ?? child.signalCode}) before printing ${re}: ${err.text().slice(-2000)}`)));
            }
          };
          const timer = setTimeout(() => done(() => reject(new Error(`timeout after ${timeoutMs} ms waiting for ${re} from ${argv[0]}: ${err.text().slice(-2000)}`))), timeoutMs);
          const done = (f: () => void): void => {
            clearTimeout(timer);
            waiters.delete(check);
            f();
          };
          waiters.add(check);
          check();
        }),
      stop: (graceMs = 3000) => {
        stopping ??= (async () => {
          if (!isRunning(child)) return;
          child.kill('SIGTERM');
          const termed = await withTimeout(exited, graceMs, 'SIGTERM').then(() => true, () => false);
          if (!termed && isRunning(child)) {
            child.kill('SIGKILL');
            await withTimeout(exited, 5000, `pid ${pidOf} to die after SIGKILL`);
          }
        })();
        return stopping;
      },
    };
    live.procs.add(handle);
    return handle;
  };

  const ifname = (tag: string): string => {
    for (let tries = 0; tries < 100; tries++) {
      const name = `ww${pid % 100000}r${k}${tag}${tries === 0 ? '' : tries}`;
      if (name.length > 15) throw new Error(`interface name too long: ${name}`);
      const sock = path.join(RUN_DIR, `${name}.sock`);
      if (fs.existsSync(sock) || used.has(name)) continue;
      used.add(name);
      return name;
    }
    throw new Error('no free interface name');
  };

  const wg = (args: string[], o: RunOptions = {}): Promise<RunResult> => run('wg', args, { timeoutMs: CMD_TIMEOUT_MS, ...o });
  const wgOk = async (args: string[], o: RunOptions = {}): Promise<string> => {
    const r = await wg(args, o);
    if (r.code !== 0) throw new Error(`wg ${args[0]} ${args[1] ?? ''} failed (exit ${r.code}): ${r.stderr.trim()}`);
    return r.stdout;
  };

  const secretFile = (name: string, content: string): string => {
    const p = path.join(tmpDir, `${++fileCounter}-${name}`);
    fs.writeFileSync(p, content, { mode: 0o600 });
    return p;
  };

  const startDaemon = async (node: RigNode, impl: Impl, name?: string, env: Record<string, string> = {}): Promise<Daemon> => {
    const ifn = name ?? ifname(node.label.toLowerCase());
    const socketPath = path.join(RUN_DIR, `${ifn}.sock`);
    if (fs.existsSync(socketPath)) throw new Error(`${socketPath} already exists`);
    const argv = impl === 'wireweave' ? [process.execPath, WIREWEAVE_BIN, '-f', ifn] : ['wireguard-go', '-f', ifn];
    const proc = spawnIn(node, argv, { env: { ...env, LOG_LEVEL: 'verbose' } });
    live.sockets.add(socketPath);
    const logs = (): string => `${proc.stdout()}${proc.stderr()}`;
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (!proc.running()) throw new Error(`${impl} ${ifn} exited before it was ready:\n${logs().slice(-4000)}`);
      if (fs.existsSync(socketPath) && (await wg(['show', ifn, 'listen-port'])).code === 0) break;
      if (Date.now() > deadline) {
        await proc.stop();
        throw new Error(`${impl} ${ifn} not ready within 10 s:\n${logs().slice(-4000)}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    return { impl, node, ifname: ifn, socketPath, proc, logs };
  };

  const configure = async (node: RigNode, ifn: string, cfg: InterfaceConfig): Promise<void> => {
    const args = ['set', ifn, 'private-key', secretFile('private', `${cfg.privateKey}\n`)];
    const files = [args[3]!];
    if (cfg.listenPort !== undefined) args.push('listen-port', String(cfg.listenPort));
    for (const p of cfg.peers) {
      args.push('peer', p.publicKey);
      if (p.presharedKey !== undefined) {
        const f = secretFile('psk', `${p.presharedKey}\n`);
        files.push(f);
        args.push('preshared-key', f);
      }
      if (p.endpoint !== undefined) args.push('endpoint', p.endpoint);
      args.push('allowed-ips', p.allowedIPs.join(','));
      if (p.persistentKeepalive !== undefined) args.push('persistent-keepalive', String(p.persistentKeepalive));
    }
    try {
      await wgOk(args);
    } finally {
      for (const f of files) fs.rmSync(f, { force: true });
    }
    if (cfg.address4) await ipn(node, ['-4', 'addr', 'add', cfg.address4, 'dev', ifn], `address ${cfg.address4}`);
    if (cfg.address6) await ipn(node, ['-6', 'addr', 'add', cfg.address6, 'dev', ifn, 'nodad'], `address ${cfg.address6}`);
    await ipn(node, ['link', 'set', 'dev', ifn, 'mtu', String(cfg.mtu ?? 1420), 'up'], `${ifn} up`);
    for (const p of cfg.peers) {
      for (const a of p.allowedIPs) {
        const r = await run('ip', ['-n', node.ns, a.includes(':') ? '-6' : '-4', 'route', 'add', a, 'dev', ifn], { timeoutMs: CMD_TIMEOUT_MS });
        if (r.code !== 0 && !/File exists/.test(r.stderr)) throw new Error(`${node.label}: route ${a} dev ${ifn} failed: ${r.stderr.trim()}`);
      }
    }
  };

  const ping = async (node: RigNode, target: string, o: PingOptions = {}): Promise<PingResult> => {
    const args = ['ping', '-n', '-q'];
    if (o.flood) args.push('-f');
    else args.push('-i', String(o.interval ?? 0.2));
    args.push('-c', String(o.count ?? 3), '-W', String(o.wait ?? 2));
    if (o.source) args.push('-I', o.source);
    args.push(target);
    const r = await exec(node, args, { timeoutMs: o.timeoutMs ?? 60_000 });
    return parsePing(r.stdout + r.stderr);
  };

  const destroy = (): Promise<void> => {
    destroying ??= (async () => {
      const errors: string[] = [];
      for (const c of live.children) killNow(c);
      await Promise.all([...live.procs].map((p) => p.stop().catch((e: Error) => errors.push(e.message))));
      for (const ns of [...live.namespaces].reverse()) {
        const r = await run('ip', ['netns', 'del', ns], { timeoutMs: CMD_TIMEOUT_MS });
        if (r.code !== 0 && fs.existsSync(`/run/netns/${ns}`)) errors.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
      }
      for (const s of live.sockets) fs.rmSync(s, { force: true });
      fs.rmSync(tmpDir, { recursive: true, force: true });
      liveRigs.delete(live);
      if (errors.length) throw new Error(`rig ${opts.name} (${id}) cleanup: ${errors.join('; ')}`);
    })();
    return destroying;
  };

  const rig: Rig = {
    name: opts.name,
    id,
    nodes,
    underlay4,
    underlay6,
    tunnel4,
    tunnel6,
    exec,
    execOk,
    spawnIn,
    ifname,
    startDaemon,
    configure,
    wg,
    wgOk,
    dump: async (ifn) => parseWgDump(await wgOk(['show', ifn, 'dump'])),
    secretFile,
    ping,
    destroy,
  };

  try {
    for (const node of nodes) {
      if (fs.existsSync(`/run/netns/${node.ns}`)) throw new Error(`namespace ${node.ns} already exists`);
      await runOk('ip', ['netns', 'add', node.ns], `ip netns add ${node.ns}`);
      live.namespaces.push(node.ns);
      await ipn(node, ['link', 'set', 'dev', 'lo', 'up'], 'lo up');
    }
    const hub = nodes[0]!;
    if (n === 2) {
      await ipn(hub, ['link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', 'ul0', 'netns', nodes[1]!.ns], 'veth pair');
    } else {
      await ipn(hub, ['link', 'add', 'ul0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0'], 'bridge');
      for (const node of nodes.slice(1)) {
        const port = `p${node.label.toLowerCase()}`;
        await ipn(hub, ['link', 'add', port, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', node.ns], `veth to ${node.label}`);
        await ipn(hub, ['link', 'set', 'dev', port, 'master', 'ul0', 'up'], `bridge port ${port}`);
      }
    }
    for (const node of nodes) {
      // Deleting the primary address must keep a secondary one (roaming tests).
      await execOk(node, ['sysctl', '-qw', 'net.ipv4.conf.ul0.promote_secondaries=1']);
      await ipn(node, ['-4', 'addr', 'add', `${node.addr4}/24`, 'dev', 'ul0'], 'underlay IPv4');
      await ipn(node, ['-6', 'addr', 'add', `${node.addr6}/64`, 'dev', 'ul0', 'nodad'], 'underlay IPv6');
      await ipn(node, ['link', 'set', 'dev', 'ul0', 'up'], 'ul0 up');
    }
  } catch (e) {
    await destroy().catch(() => undefined);
    throw e;
  }
  return rig;
}

// ---------------------------------------------------------------------------
// Traffic generators (node scripts run inside the namespaces)

const TCP_RECEIVER = `
const net = require('net'), crypto = require('crypto');
const [host, port] = process.argv.slice(1);
const srv = net.createServer((s) => {
  const h = crypto.createHash('sha256'); let n = 0, t0 = 0;
  s.on('data', (d) => { if (!t0) t0 = performance.now(); h.update(d); n += d.length; });
  s.on('end', () => {
    const ms = performance.now() - t0;
    process.stdout.write(JSON.stringify({ sha256: h.digest('hex'), bytes: n, ms }) + '\\n');
    s.end(); srv.close();
  });
  s.on('error', (e) => { console.error('receiver: ' + e.message); process.exit(2); });
});
srv.listen(Number(port), host, () => process.stdout.write('listening\\n'));
`;

const TCP_SENDER = `
const net = require('net'), crypto = require('crypto');
const [host, port, total, seed] = process.argv.slice(1);
const size = Number(total);
const key = crypto.createHash('sha256').update(seed).digest().subarray(0, 16);
const gen = crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
const zero = Buffer.alloc(1 << 16);
const h = crypto.createHash('sha256');
let sent = 0;
const s = net.connect(Number(port), host, () => {
  const pump = () => {
    while (sent < size) {
      const chunk = gen.update(zero.subarray(0, Math.min(zero.length, size - sent)));
      h.update(chunk); sent += chunk.length;
      if (!s.write(chunk)) { s.once('drain', pump); return; }
    }
    s.end();
  };
  pump();
});
s.on('error', (e) => { console.error('sender: ' + e.message); process.exit(2); });
s.on('close', () => process.stdout.write(JSON.stringify({ sha256: h.digest('hex'), bytes: sent }) + '\\n'));
s.resume();
`;

const UDP_RECEIVER = `
const dgram = require('dgram');
const [host, port, expected] = process.argv.slice(1);
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
const seen = new Set(); let bad = 0, dup = 0, idle;
const finish = () => { process.stdout.write(JSON.stringify({ received: seen.size, bad, dup }) + '\\n'); s.close(); };
const arm = (ms) => { clearTimeout(idle); idle = setTimeout(finish, ms); };
s.on('message', (m) => {
  const seq = m.length >= 4 ? m.readUInt32BE(0) : -1;
  let ok = m.length === 4 + (seq % 900) + 100;
  for (let i = 4; ok && i < m.length; i++) if (m[i] !== ((seq * 31 + i) & 255)) ok = false;
  if (!ok) bad++; else if (seen.has(seq)) dup++; else seen.add(seq);
  if (seen.size >= Number(expected)) finish(); else arm(1500);
});
s.bind(Number(port), host, () => { process.stdout.write('listening\\n'); arm(15000); });
`;

const UDP_SENDER = `
const dgram = require('dgram');
const [host, port, count] = process.argv.slice(1);
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
(async () => {
  for (let seq = 0; seq < Number(count); seq++) {
    const m = Buffer.alloc(4 + (seq % 900) + 100);
    m.writeUInt32BE(seq, 0);
    for (let i = 4; i < m.length; i++) m[i] = (seq * 31 + i) & 255;
    await new Promise((r, j) => s.send(m, Number(port), host, (e) => (e ? j(e) : r())));
    if (seq % 20 === 19) await new Promise((r) => setTimeout(r, 2));
  }
  s.close();
})().catch((e) => { console.error('udp sender: ' + e.message); process.exit(2); });
`;

export interface TransferResult {
  bytes: number;
  ms: number;
  mbPerS: number;
  sentSha256: string;
  receivedSha256: string;
  receivedBytes: number;
}

/** Sends `bytes` of seeded pseudo-random data over TCP from `from` to `to` (a tunnel address of `to`). */
export async function tcpTransfer(rig: Rig, from: RigNode, to: RigNode, host: string, bytes: number, timeoutMs: number): Promise<TransferResult> {
  const port = 5201;
  const recv = rig.spawnIn(to, [process.execPath, '-e', TCP_RECEIVER, host, String(port)]);
  try {
    await recv.waitFor(/listening/, 10_000);
    const send = await rig.exec(from, [process.execPath, '-e', TCP_SENDER, host, String(port), String(bytes), `${rig.id}-${from.label}`], { timeoutMs });
    if (send.code !== 0) throw new Error(`TCP sender failed (${send.code}): ${send.stderr.trim()}`);
    const sent = JSON.parse(send.stdout.trim()) as { sha256: string; bytes: number };
    await withTimeout(recv.exited, 10_000, 'TCP receiver to finish');
    const line = recv.stdout().split('\n').find((l) => l.startsWith('{'));
    if (!line) throw new Error(`TCP receiver printed no result: ${recv.stderr().slice(-2000)}`);
    const got = JSON.parse(line) as { sha256: string; bytes: number; ms: number };
    return {
      bytes: sent.bytes,
      ms: got.ms,
      mbPerS: got.bytes / 1e6 / (got.ms / 1000),
      sentSha256: sent.sha256,
      receivedSha256: got.sha256,
      receivedBytes: got.bytes,
    };
  } finally {
    await recv.stop();
  }
}

export interface UdpResult {
  received: number;
  bad: number;
  dup: number;
}

export async function udpBurst(rig: Rig, from: RigNode, to: RigNode, host: string, count: number): Promise<UdpResult> {
  const port = 5202;
  const recv = rig.spawnIn(to, [process.execPath, '-e', UDP_RECEIVER, host, String(port), String(count)]);
  try {
    await recv.waitFor(/listening/, 10_000);
    const send = await rig.exec(from, [process.execPath, '-e', UDP_SENDER, host, String(port), String(count)], { timeoutMs: 30_000 });
    if (send.code !== 0) throw new Error(`UDP sender failed (${send.code}): ${send.stderr.trim()}`);
    await withTimeout(recv.exited, 20_000, 'UDP receiver to finish');
    const line = recv.stdout().split('\n').find((l) => l.startsWith('{'));
    if (!line) throw new Error(`UDP receiver printed no result: ${recv.stderr().slice(-2000)}`);
    return JSON.parse(line) as UdpResult;
  } finally {
    await recv.stop();
  }
}

// ---------------------------------------------------------------------------
// Shared test cases: A and B, each running a daemon, peered with each other

export interface Pair {
  rig: Rig;
  a: RigNode;
  b: RigNode;
  da: Daemon;
  db: Daemon;
  keysA: KeyPair;
  keysB: KeyPair;
  psk: string;
  portA: number;
  portB: number;
}

function peerOf(p: Pair, side: 'a' | 'b', endpoint: string): PeerConfig {
  const other = side === 'a' ? p.b : p.a;
  return {
    publicKey: (side === 'a' ? p.keysB : p.keysA).publicKey,
    presharedKey: p.psk,
    endpoint,
    allowedIPs: [`${other.tun4}/32`, `${other.tun6}/128`],
  };
}

export async function setupPair(name: string, implA: Impl, implB: Impl, opts: { daemonEnv?: Record<string, string> } = {}): Promise<Pair> {
  const rig = await createRig({ name });
  try {
    const [a, b] = rig.nodes as [RigNode, RigNode];
    const [da, db] = await Promise.all([rig.startDaemon(a, implA, undefined, opts.daemonEnv), rig.startDaemon(b, implB, undefined, opts.daemonEnv)]);
    const p: Pair = { rig, a, b, da, db, keysA: genKeyPair(), keysB: genKeyPair(), psk: genPsk(), portA: 51820, portB: 51821 };
    await rig.configure(a, da.ifname, {
      privateKey: p.keysA.privateKey,
      listenPort: p.portA,
      peers: [peerOf(p, 'a', `${b.addr4}:${p.portB}`)],
      address4: `${a.tun4}/24`,
      address6: `${a.tun6}/64`,
    });
    await rig.configure(b, db.ifname, {
      privateKey: p.keysB.privateKey,
      listenPort: p.portB,
      peers: [peerOf(p, 'b', `${a.addr4}:${p.portA}`)],
      address4: `${b.tun4}/24`,
      address6: `${b.tun6}/64`,
    });
    return p;
  } catch (e) {
    await rig.destroy().catch(() => undefined);
    throw e;
  }
}

function daemonLogs(p: Pair): string {
  return `--- ${p.da.impl} (A) log tail ---\n${p.da.logs().slice(-3000)}\n--- ${p.db.impl} (B) log tail ---\n${p.db.logs().slice(-3000)}`;
}

async function expectPing(p: Pair, from: RigNode, to: string, opts: PingOptions = {}): Promise<PingResult> {
  const r = await p.rig.ping(from, to, { count: 3, interval: 0.2, wait: 2, ...opts });
  assert.equal(r.received, r.transmitted, `ping ${from.label} -> ${to}: ${r.output.trim()}\n${daemonLogs(p)}`);
  assert.ok(r.transmitted > 0, `ping ${from.label} -> ${to} sent nothing: ${r.output.trim()}`);
  return r;
}

async function pingAll(p: Pair): Promise<void> {
  for (const [from, to] of [[p.a, p.b], [p.b, p.a]] as const) {
    await expectPing(p, from, to.tun4);
    await expectPing(p, from, to.tun6);
  }
}

function peerIn(dump: WgDump, publicKey: string): WgDump['peers'][number] {
  const peer = dump.peers.find((x) => x.publicKey === publicKey);
  assert.ok(peer, `peer ${publicKey} missing from wg dump`);
  return peer;
}

async function waitFor<T>(what: string, timeoutMs: number, f: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await f();
    if (last !== undefined) return last;
    if (Date.now() > deadline) throw new Error(`timeout after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export type PairCase = (t: TestContext, p: Pair) => Promise<void>;

export const pairCases = {
  'ping IPv4 and IPv6 through the tunnel, both ways': async (_t, p) => {
    await pingAll(p);
  },

  'flood ping both ways, at most 1% loss': async (t, p) => {
    for (const [from, to] of [[p.a, p.b], [p.b, p.a]] as const) {
      const r = await p.rig.ping(from, to.tun4, { flood: true, count: 2000, wait: 1, timeoutMs: 60_000 });
      t.diagnostic(`flood ping ${from.label} -> ${to.label}: ${r.received}/${r.transmitted} received, loss ${r.loss.toFixed(2)}%`);
      assert.equal(r.transmitted, 2000, r.output);
      assert.ok(r.loss <= 1, `flood ping ${from.label} -> ${to.label} lost ${r.loss}%: ${r.output.trim()}`);
    }
  },

  'TCP transfer with sha256 check: 100 MB A -> B, 20 MB B -> A': async (t, p) => {
    for (const [from, to, mb] of [[p.a, p.b, 100], [p.b, p.a, 20]] as const) {
      const r = await tcpTransfer(p.rig, from, to, to.tun4, mb * 1_000_000, 80_000);
      t.diagnostic(`TCP ${from.label} (${from === p.a ? p.da.impl : p.db.impl}) -> ${to.label} (${to === p.a ? p.da.impl : p.db.impl}): ${mb} MB in ${(r.ms / 1000).toFixed(2)} s = ${r.mbPerS.toFixed(1)} MB/s`);
      assert.equal(r.receivedBytes, r.bytes);
      assert.equal(r.receivedSha256, r.sentSha256);
    }
  },

  'UDP datagrams through the tunnel, content checked': async (t, p) => {
    for (const [from, to, host] of [[p.a, p.b, p.b.tun4], [p.b, p.a, p.a.tun6]] as const) {
      const r = await udpBurst(p.rig, from, to, host, 1000);
      t.diagnostic(`UDP ${from.label} -> ${to.label} (${host}): ${r.received}/1000 received, ${r.bad} corrupt, ${r.dup} duplicated`);
      assert.equal(r.bad, 0);
      assert.ok(r.received >= 950, `only ${r.received}/1000 datagrams arrived`);
    }
  },

  'wg show dump: handshake, transfer, endpoints, preshared key': async (_t, p) => {
    await expectPing(p, p.a, p.b.tun4, { count: 1 });
    const [dumpA, dumpB] = await Promise.all([p.rig.dump(p.da.ifname), p.rig.dump(p.db.ifname)]);
    for (const [dump, self, other, port, otherPort, keys] of [
      [dumpA, p.a, p.b, p.portA, p.portB, p.keysA],
      [dumpB, p.b, p.a, p.portB, p.portA, p.keysB],
    ] as const) {
      assert.equal(dump.publicKey, keys.publicKey, `${self.label} public key`);
      assert.equal(dump.listenPort, port, `${self.label} listen port`);
      assert.equal(dump.peers.length, 1);
      const peer = peerIn(dump, (self === p.a ? p.keysB : p.keysA).publicKey);
      assert.ok(peer.latestHandshake > 0, `${self.label}: no handshake`);
      assert.ok(Math.abs(peer.latestHandshake - Date.now() / 1000) < 300, `${self.label}: handshake time ${peer.latestHandshake}`);
      assert.ok(peer.transferRx > 0 && peer.transferTx > 0, `${self.label}: transfer ${peer.transferRx}/${peer.transferTx}`);
      assert.equal(peer.endpoint, `${other.addr4}:${otherPort}`, `${self.label}: endpoint`);
      assert.ok(peer.hasPresharedKey, `${self.label}: preshared key missing`);
      assert.deepEqual([...peer.allowedIPs].sort(), [`${other.tun4}/32`, `${other.tun6}/128`].sort());
    }
  },

  'IPv6 underlay: endpoints on the veth IPv6 addresses': async (_t, p) => {
    const v6A = `[${p.a.addr6}]:${p.portA}`;
    const v6B = `[${p.b.addr6}]:${p.portB}`;
    await p.rig.wgOk(['set', p.da.ifname, 'peer', p.keysB.publicKey, 'endpoint', v6B]);
    await p.rig.wgOk(['set', p.db.ifname, 'peer', p.keysA.publicKey, 'endpoint', v6A]);
    try {
      await pingAll(p);
      assert.equal(peerIn(await p.rig.dump(p.da.ifname), p.keysB.publicKey).endpoint, v6B);
      assert.equal(peerIn(await p.rig.dump(p.db.ifname), p.keysA.publicKey).endpoint, v6A);
    } finally {
      await p.rig.wgOk(['set', p.da.ifname, 'peer', p.keysB.publicKey, 'endpoint', `${p.b.addr4}:${p.portB}`]);
      await p.rig.wgOk(['set', p.db.ifname, 'peer', p.keysA.publicKey, 'endpoint', `${p.a.addr4}:${p.portA}`]);
    }
    await pingAll(p);
  },

  'multi-homed: A answers from the address B talks to': async (t, p) => {
    const { a, rig } = p;
    // A second underlay address on A that the kernel would not choose as a source by itself.
    const extra = a.addr4.replace(/\.\d+$/, `.${a.index + 151}`);
    await rig.execOk(a, ['ip', '-4', 'addr', 'add', `${extra}/24`, 'dev', a.dev]);
    try {
      await rig.wgOk(['set', p.db.ifname, 'peer', p.keysA.publicKey, 'endpoint', `${extra}:${p.portA}`]);
      // B talks to `extra`; every reply and every packet A starts must come back from it, or
      // B (which follows authenticated sources) would move its endpoint to A's primary address.
      await expectPing(p, p.b, p.a.tun4);
      await expectPing(p, a, p.b.tun4);
      await expectPing(p, p.b, p.a.tun6);
      const e = (await rig.wgOk(['show', p.db.ifname, 'endpoints'])).trim();
      t.diagnostic(`B: wg show endpoints -> ${e.split('\t')[1] ?? e}`);
      assert.ok(e.includes(`${extra}:${p.portA}`), `B's endpoint for A moved away from ${extra}: ${e}`);
    } finally {
      await rig.wgOk(['set', p.db.ifname, 'peer', p.keysA.publicKey, 'endpoint', `${a.addr4}:${p.portA}`]);
      await rig.execOk(a, ['ip', '-4', 'addr', 'del', `${extra}/24`, 'dev', a.dev]);
    }
    await pingAll(p);
  },

  "roaming: A's underlay address changes, B follows": async (t, p) => {
    const { a, rig } = p;
    const oldAddr = a.addr4;
    const newAddr = oldAddr.replace(/\.\d+$/, `.${a.index + 101}`);
    await rig.execOk(a, ['ip', '-4', 'addr', 'add', `${newAddr}/24`, 'dev', a.dev]);
    await rig.execOk(a, ['ip', '-4', 'addr', 'del', `${oldAddr}/24`, 'dev', a.dev]);
    a.addr4 = newAddr;
    const routes = (await rig.execOk(a, ['ip', '-4', 'route', 'show', 'dev', a.dev])).stdout;
    if (!routes.includes(rig.underlay4)) await rig.execOk(a, ['ip', '-4', 'route', 'add', rig.underlay4, 'dev', a.dev, 'src', newAddr]);
    const addrs = (await rig.execOk(a, ['ip', '-4', '-o', 'addr', 'show', 'dev', a.dev])).stdout;
    assert.ok(addrs.includes(`${newAddr}/24`) && !addrs.includes(`${oldAddr}/`), addrs);
    // A speaks first, so B learns the new source address; then traffic in both directions.
    await expectPing(p, a, p.b.tun4);
    const endpoint = await waitFor('B to show A at its new address', 5000, async () => {
      const e = (await rig.wgOk(['show', p.db.ifname, 'endpoints'])).trim();
      return e.includes(`${newAddr}:${p.portA}`) ? e : undefined;
    });
    t.diagnostic(`B: wg show endpoints -> ${endpoint.split('\t')[1] ?? endpoint}`);
    await pingAll(p);
  },

  'allowed-IPs source filtering: a spoofed source is dropped': async (_t, p) => {
    const spoof = '192.0.2.77';
    await p.rig.execOk(p.b, ['ip', '-4', 'addr', 'add', `${spoof}/32`, 'dev', p.db.ifname]);
    try {
      const r = await p.rig.ping(p.b, p.a.tun4, { source: spoof, count: 3, interval: 0.2, wait: 2 });
      assert.equal(r.transmitted, 3, r.output);
      assert.equal(r.received, 0, `A accepted packets from ${spoof}, which it does not allow for B: ${r.output}`);
      await expectPing(p, p.b, p.a.tun4);
    } finally {
      await p.rig.execOk(p.b, ['ip', '-4', 'addr', 'del', `${spoof}/32`, 'dev', p.db.ifname]);
    }
  },

  'wg show/showconf/set/setconf/syncconf against the A daemon': async (t, p) => {
    const { rig, da } = p;
    const ifn = da.ifname;
    const show = await rig.wgOk(['show', ifn]);
    assert.match(show, new RegExp(`interface: ${ifn}`));
    assert.match(show, new RegExp(`peer: ${p.keysB.publicKey.replace(/[+/]/g, '\\$&')}`));
    assert.match(show, /preshared key: \(hidden\)/);
    assert.match(show, /latest handshake: /);
    assert.match(show, new RegExp(`listening port: ${p.portA}`));
    const conf = await rig.wgOk(['showconf', ifn]);
    assert.match(conf, new RegExp(`ListenPort = ${p.portA}`));
    assert.ok(conf.includes(`PrivateKey = ${p.keysA.privateKey}`), 'showconf: private key');
    assert.ok(conf.includes(`PresharedKey = ${p.psk}`), 'showconf: preshared key');
    assert.ok(conf.includes(`PublicKey = ${p.keysB.publicKey}`), 'showconf: peer');
    assert.ok(conf.includes(`Endpoint = ${p.b.addr4}:${p.portB}`), 'showconf: endpoint');

    // listen-port: A speaks first from the new port; B follows.
    const newPort = p.portA + 100;
    await rig.wgOk(['set', ifn, 'listen-port', String(newPort)]);
    assert.equal((await rig.wgOk(['show', ifn, 'listen-port'])).trim(), String(newPort));
    await expectPing(p, p.a, p.b.tun4);
    assert.equal(peerIn(await rig.dump(p.db.ifname), p.keysA.publicKey).endpoint, `${p.a.addr4}:${newPort}`);
    await rig.wgOk(['set', ifn, 'listen-port', String(p.portA)]);
    await expectPing(p, p.a, p.b.tun4);

    // persistent-keepalive
    await rig.wgOk(['set', ifn, 'peer', p.keysB.publicKey, 'persistent-keepalive', '7']);
    assert.equal(peerIn(await rig.dump(ifn), p.keysB.publicKey).persistentKeepalive, 7);
    await rig.wgOk(['set', ifn, 'peer', p.keysB.publicKey, 'persistent-keepalive', 'off']);
    assert.equal(peerIn(await rig.dump(ifn), p.keysB.publicKey).persistentKeepalive, 0);

    // remove and re-add the peer
    await rig.wgOk(['set', ifn, 'peer', p.keysB.publicKey, 'remove']);
    assert.equal((await rig.dump(ifn)).peers.length, 0);
    const pskFile = rig.secretFile('psk', `${p.psk}\n`);
    try {
      await rig.wgOk(['set', ifn, 'peer', p.keysB.publicKey, 'preshared-key', pskFile, 'endpoint', `${p.b.addr4}:${p.portB}`,
        'allowed-ips', `${p.b.tun4}/32,${p.b.tun6}/128`]);
    } finally {
      fs.rmSync(pskFile, { force: true });
    }
    await expectPing(p, p.a, p.b.tun4);
    await expectPing(p, p.b, p.a.tun6);

    // setconf: the whole configuration again (peers are replaced, so A speaks first)
    const confFile = rig.secretFile('setconf.conf', conf);
    try {
      await rig.wgOk(['setconf', ifn, confFile]);
    } finally {
      fs.rmSync(confFile, { force: true });
    }
    assert.equal((await rig.wgOk(['showconf', ifn])).replace(/\n+$/, ''), conf.replace(/\n+$/, ''), 'showconf after setconf');
    await expectPing(p, p.a, p.b.tun4);
    await expectPing(p, p.b, p.a.tun4);

    // syncconf: add an extra peer, then remove it again; B's session is kept throughout
    const before = peerIn(await rig.dump(ifn), p.keysB.publicKey).latestHandshake;
    const extra = genKeyPair().publicKey;
    const withExtra = `${conf.replace(/\n+$/, '')}\n\n[Peer]\nPublicKey = ${extra}\nAllowedIPs = 198.51.100.0/24\n`;
    for (const text of [withExtra, conf]) {
      const f = rig.secretFile('syncconf.conf', text);
      try {
        await rig.wgOk(['syncconf', ifn, f]);
      } finally {
        fs.rmSync(f, { force: true });
      }
      const keys = (await rig.dump(ifn)).peers.map((x) => x.publicKey);
      assert.equal(keys.includes(extra), text === withExtra, `extra peer after syncconf: ${keys.join(' ')}`);
      assert.ok(keys.includes(p.keysB.publicKey));
    }
    assert.equal(peerIn(await rig.dump(ifn), p.keysB.publicKey).latestHandshake, before, 'syncconf must keep the session');
    await pingAll(p);
    t.diagnostic('wg show, showconf, set (listen-port, persistent-keepalive, remove/re-add), setconf, syncconf: ok');
  },

  'the daemon exits when its interface is deleted': async (_t, p) => {
    const { rig, a } = p;
    const d = await rig.startDaemon(a, p.da.impl, rig.ifname('x'));
    assert.ok(fs.existsSync(d.socketPath));
    await rig.execOk(a, ['ip', 'link', 'del', 'dev', d.ifname]);
    const exit = await withTimeout(d.proc.exited, 10_000, `${d.impl} ${d.ifname} to exit after ip link del`);
    assert.ok(exit.code === 0 || exit.code === null, `exit ${JSON.stringify(exit)}: ${d.logs().slice(-2000)}`);
    await waitFor('the socket file to disappear', 3000, async () => (fs.existsSync(d.socketPath) ? undefined : true));
  },
} satisfies Record<string, PairCase>;

export type PairCaseName = keyof typeof pairCases;

/**
 * describe() block with a rig of two daemons (A: implA, B: implB) configured with `wg`,
 * running `cases` in order as separate tests.
 */
export function describePair(title: string, implA: Impl, implB: Impl, cases: readonly PairCaseName[]): void {
  const impls = [implA, implB];
  describe(title, { skip: skipUnlessRig(impls) }, () => {
    let pair: Pair | undefined;
    before(async () => {
      requireRig(impls);
      pair = await setupPair(title, implA, implB);
    });
    after(async () => {
      await pair?.rig.destroy();
      assert.deepEqual(rigLeftovers(), [], 'left behind');
    });
    for (const name of cases) {
      it(name, async (t) => {
        assert.ok(pair, 'rig not set up');
        await pairCases[name](t, pair);
      });
    }
  });
}
