/**
 * Test harness: run a real wireguard-go peer for interop tests.
 *
 * Arrangement (verified experimentally with wireguard-go 0.0.20220316):
 *   - wireguard-go runs in the ROOT network namespace, so its UDP socket
 *     (bound to 0.0.0.0:<port> and [::]:<port>) is reachable at
 *     127.0.0.1:<port> from the test process;
 *   - right after start its TUN device is moved into a private network
 *     namespace (`ip link set <if> netns <ns>`). The daemon keeps running and
 *     keeps reading/writing the TUN fd; the tunnel addresses and routes live
 *     only inside that namespace, so nothing touches the host's routing.
 *   - `wg` keeps working from the root namespace: it talks to the UAPI socket
 *     /var/run/wireguard/<if>.sock, which is a file, not a netns object.
 *
 * Secrets: private and preshared keys only ever go to 0600 files in a private
 * temp dir (removed right after `wg set`) or to `wg pubkey` via stdin. They are
 * never put on a command line, in a log or in an error message.
 *
 * Requirements: root, /dev/net/tun, and `wireguard-go`, `wg`, `ip` on PATH.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// ---------------------------------------------------------------------------
// Generic helpers

export interface RunOptions {
  /** Written to the child's stdin (then closed). */
  input?: string;
  /** Kill the child (SIGKILL) and reject after this many ms. No limit if omitted. */
  timeoutMs?: number;
  /** Extra environment variables (merged over process.env). */
  env?: Record<string, string>;
  cwd?: string;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Run a command without a shell and collect its output. Resolves with the exit
 * code (a signal death gives 128 + signal number); rejects only if the command
 * cannot be started or the timeout hits.
 */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      cwd: opts.cwd,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (timedOut) {
        reject(new Error(`timeout after ${opts.timeoutMs} ms: ${cmd} ${args.join(' ')}`));
        return;
      }
      const sigNum = signal ? (os.constants.signals[signal] ?? 0) : 0;
      resolve({
        code: code ?? 128 + sigNum,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
        // Do not wait for 'close': a grandchild that inherited stdout would hold it open forever.
        child.stdout.destroy();
        child.stderr.destroy();
        reject(new Error(`timeout after ${opts.timeoutMs} ms: ${cmd} ${args.join(' ')}`));
      }, opts.timeoutMs);
    }
    child.stdin.on('error', () => {
      /* child may exit before reading stdin (EPIPE) */
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Reject with `timeout after <ms> ms: <what>` if `p` does not settle in time. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------
// Tool discovery

/** Absolute path of an executable found on PATH. */
export function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

interface Tools {
  wireguardGo: string;
  wg: string;
  ip: string;
}

let toolsCache: Tools | undefined;

function tools(): Tools {
  if (toolsCache) return toolsCache;
  const wireguardGo = which('wireguard-go');
  const wg = which('wg');
  const ip = which('ip');
  if (!wireguardGo || !wg || !ip) {
    const c = canRunWireguardGo();
    throw new Error(`cannot run wireguard-go: ${c.ok ? 'tool lookup failed' : c.reason}`);
  }
  toolsCache = { wireguardGo, wg, ip };
  return toolsCache;
}

/** Whether this machine can run the wireguard-go harness; `reason` lists everything missing. */
export function canRunWireguardGo(): { ok: true } | { ok: false; reason: string } {
  const missing: string[] = [];
  if (process.platform !== 'linux') missing.push(`platform is ${process.platform}, need linux`);
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) missing.push('not running as root');
  if (!fs.existsSync('/dev/net/tun')) missing.push('/dev/net/tun does not exist');
  for (const t of ['wireguard-go', 'wg', 'ip']) {
    if (!which(t)) missing.push(`${t} not found on PATH`);
  }
  return missing.length === 0 ? { ok: true } : { ok: false, reason: missing.join('; ') };
}

// ---------------------------------------------------------------------------
// wg dump parsing

export interface WgDumpPeer {
  publicKey: string;
  /** '(none)' or a key; present here only as a flag, the value is redacted. */
  hasPresharedKey: boolean;
  endpoint: string | null;
  allowedIPs: string[];
  /** Unix seconds, 0 = never. */
  latestHandshake: number;
  transferRx: number;
  transferTx: number;
  persistentKeepalive: number;
}

export interface WgDump {
  publicKey: string;
  listenPort: number;
  fwmark: string;
  peers: WgDumpPeer[];
}

/**
 * Parse `wg show <if> dump` output. The private/preshared key columns are
 * dropped so the result can be logged safely.
 */
export function parseWgDump(text: string): WgDump {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const head = lines[0]?.split('\t');
  if (!head || head.length < 4) throw new Error('unexpected wg dump output (no interface line)');
  const peers = lines.slice(1).map((line): WgDumpPeer => {
    const f = line.split('\t');
    if (f.length < 8) throw new Error('unexpected wg dump output (short peer line)');
    return {
      publicKey: f[0]!,
      hasPresharedKey: f[1] !== '(none)',
      endpoint: f[2] === '(none)' ? null : f[2]!,
      allowedIPs: f[3] === '(none)' ? [] : f[3]!.split(','),
      latestHandshake: Number(f[4]),
      transferRx: Number(f[5]),
      transferTx: Number(f[6]),
      persistentKeepalive: f[7] === 'off' ? 0 : Number(f[7]),
    };
  });
  return { publicKey: head[1]!, listenPort: Number(head[2]), fwmark: head[3]!, peers };
}

// ---------------------------------------------------------------------------
// The harness

export interface WgGoPeerConfig {
  publicKey: string;
  presharedKey?: string;
  /** host:port, e.g. '127.0.0.1:51820'. */
  endpoint?: string;
  allowedIPs: string[];
  persistentKeepalive?: number;
}

export interface WgGoOptions {
  /** base64 Curve25519 private key. */
  privateKey: string;
  /** 0 or omitted: wireguard-go picks a free port (read back with `wg show`). */
  listenPort?: number;
  peers: WgGoPeerConfig[];
  /** Address inside the namespace, e.g. '10.77.0.1/24'. */
  tunAddress4?: string;
  /** Address inside the namespace, e.g. 'fd00:77::1/64'. */
  tunAddress6?: string;
  /** TUN MTU; default 1420. */
  mtu?: number;
}

export interface WgGoExecOptions {
  input?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
}

export interface WgGo {
  /** base64 public key of this wireguard-go instance. */
  readonly publicKey: string;
  /** UDP port, bound on all addresses of the root namespace (use 127.0.0.1). */
  readonly listenPort: number;
  /** Network namespace holding the TUN device. */
  readonly netns: string;
  /** TUN interface name (also the UAPI socket name). */
  readonly ifname: string;
  /** PID of the wireguard-go process. */
  readonly pid: number;
  /** /var/run/wireguard/<ifname>.sock */
  readonly socketPath: string;
  /** Run a command inside the namespace (`ip netns exec <ns> ...cmd`). Never rejects on non-zero exit. */
  exec(cmd: string[], opts?: WgGoExecOptions): Promise<RunResult>;
  /** `wg show <ifname> dump` (contains the private key column: do not log raw, use parseWgDump). */
  show(): Promise<string>;
  /** `wg set <ifname> ...args`; rejects on failure. Pass keys as file paths, as `wg` requires. */
  wgSet(args: string[]): Promise<void>;
  /** Recent wireguard-go stdout/stderr (ring buffer). */
  logs(): string;
  /** Kill wireguard-go (SIGTERM, then SIGKILL), delete the namespace, remove the socket. Idempotent. */
  stop(): Promise<void>;
}

const RUN_DIR = '/var/run/wireguard';
const LOG_LIMIT = 256 * 1024;
const SOCKET_TIMEOUT_MS = 5000;
const CMD_TIMEOUT_MS = 10_000;
const STOP_TERM_TIMEOUT_MS = 3000;

class RingLog {
  private chunks: string[] = [];
  private size = 0;
  push(s: string): void {
    this.chunks.push(s);
    this.size += s.length;
    while (this.size > LOG_LIMIT && this.chunks.length > 1) {
      this.size -= this.chunks.shift()!.length;
    }
  }
  text(): string {
    const t = this.chunks.join('');
    return t.length > LOG_LIMIT ? t.slice(t.length - LOG_LIMIT) : t;
  }
}

interface LiveInstance {
  netns: string;
  socketPath: string;
  child: ChildProcess | undefined;
  nsCreated: boolean;
  tmpDir: string | undefined;
}

const live = new Set<LiveInstance>();
let counter = 0;
let exitHookInstalled = false;

function isRunning(child: ChildProcess | undefined): boolean {
  return !!child && child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** Synchronous best-effort cleanup, for process exit. */
function cleanupSync(inst: LiveInstance): void {
  if (isRunning(inst.child)) {
    try {
      process.kill(inst.child!.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  if (inst.nsCreated) {
    const ip = toolsCache?.ip ?? 'ip';
    spawnSync(ip, ['netns', 'del', inst.netns], { stdio: 'ignore', timeout: 5000 });
  }
  try {
    fs.rmSync(inst.socketPath, { force: true });
  } catch {
    /* ignore */
  }
  if (inst.tmpDir) fs.rmSync(inst.tmpDir, { recursive: true, force: true });
  live.delete(inst);
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const inst of [...live]) cleanupSync(inst);
  });
  // On a fatal signal, clean up and then die from the same signal (default action),
  // unless someone else also handles it.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      for (const inst of [...live]) cleanupSync(inst);
      process.off(sig, handler);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

const KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

function assertKey(k: string, what: string): void {
  // Never include the key itself in the message.
  if (!KEY_RE.test(k)) throw new Error(`${what} is not a base64 WireGuard key (44 chars)`);
}

function pickNames(): { netns: string; ifname: string; socketPath: string } {
  const existingNs = new Set(
    (spawnSync(tools().ip, ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '')
      .split('\n')
      .map((l) => l.split(' ')[0])
      .filter(Boolean),
  );
  for (let tries = 0; tries < 1000; tries++) {
    const n = ++counter;
    const netns = `wwt${process.pid}x${n}`;
    const ifname = `wwg${process.pid % 100000}x${n}`;
    if (ifname.length > 15) throw new Error(`interface name too long: ${ifname}`);
    const socketPath = path.join(RUN_DIR, `${ifname}.sock`);
    // The socket dir is shared with other processes (possibly in other PID
    // namespaces, where our pid may repeat): skip any name that is in use.
    if (existingNs.has(netns) || fs.existsSync(socketPath) || fs.existsSync(`/sys/class/net/${ifname}`)) continue;
    return { netns, ifname, socketPath };
  }
  throw new Error('could not find a free namespace/interface name');
}

async function runOk(cmd: string, args: string[], what: string, opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, { timeoutMs: CMD_TIMEOUT_MS, ...opts });
  if (r.code !== 0) {
    throw new Error(`${what} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r;
}

function redactArgs(args: string[]): string {
  return args.map((a, i) => (args[i - 1] === 'private-key' || args[i - 1] === 'preshared-key' ? '<file>' : a)).join(' ');
}

/** Start a wireguard-go instance with its TUN device in a fresh network namespace. */
export async function startWireguardGo(opts: WgGoOptions): Promise<WgGo> {
  const check = canRunWireguardGo();
  if (!check.ok) throw new Error(`cannot run wireguard-go: ${check.reason}`);
  const t = tools();

  assertKey(opts.privateKey, 'privateKey');
  opts.peers.forEach((p, i) => {
    assertKey(p.publicKey, `peers[${i}].publicKey`);
    if (p.presharedKey !== undefined) assertKey(p.presharedKey, `peers[${i}].presharedKey`);
  });
  const mtu = opts.mtu ?? 1420;
  const requestedPort = opts.listenPort ?? 0;

  installExitHook();
  const { netns, ifname, socketPath } = pickNames();
  const inst: LiveInstance = { netns, socketPath, child: undefined, nsCreated: false, tmpDir: undefined };
  live.add(inst);
  const log = new RingLog();

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const child = inst.child;
      if (child && isRunning(child)) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const termed = await withTimeout(exited, STOP_TERM_TIMEOUT_MS, 'SIGTERM').then(
          () => true,
          () => false,
        );
        if (!termed && isRunning(child)) {
          child.kill('SIGKILL');
          await withTimeout(exited, 5000, `wireguard-go ${ifname} (pid ${child.pid}) to die after SIGKILL`);
        }
      }
      if (inst.nsCreated) {
        const r = await run(t.ip, ['netns', 'del', netns], { timeoutMs: CMD_TIMEOUT_MS });
        if (r.code !== 0 && fs.existsSync(`/run/netns/${netns}`)) {
          throw new Error(`ip netns del ${netns} failed: ${r.stderr.trim()}`);
        }
        inst.nsCreated = false;
      }
      fs.rmSync(socketPath, { force: true });
      if (inst.tmpDir) fs.rmSync(inst.tmpDir, { recursive: true, force: true });
      inst.tmpDir = undefined;
      live.delete(inst);
    })();
    return stopping;
  };

  const fail = async (e: unknown): Promise<never> => {
    const msg = e instanceof Error ? e.message : String(e);
    try {
      await stop();
    } catch (e2) {
      log.push(`\n[harness] cleanup after failure also failed: ${e2 instanceof Error ? e2.message : String(e2)}\n`);
    }
    throw new Error(`startWireguardGo(${ifname}): ${msg}\n--- wireguard-go log (tail) ---\n${log.text().slice(-8000)}`);
  };

  try {
    // 1. namespace
    await runOk(t.ip, ['netns', 'add', netns], `ip netns add ${netns}`);
    inst.nsCreated = true;
    await runOk(t.ip, ['-n', netns, 'link', 'set', 'dev', 'lo', 'up'], 'bring up lo in namespace');

    // 2. wireguard-go in the root namespace
    const child = spawn(t.wireguardGo, ['-f', ifname], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: 'verbose' },
    });
    inst.child = child;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (s: string) => log.push(s));
    child.stderr.on('data', (s: string) => log.push(s));
    let spawnError: Error | undefined;
    child.on('error', (e) => {
      spawnError = e;
      log.push(`\n[harness] spawn error: ${e.message}\n`);
    });
    child.on('exit', (code, signal) => log.push(`\n[harness] wireguard-go exited (code ${code}, signal ${signal})\n`));
    // A forgotten stop() must not keep the test process alive; the exit hook cleans up.
    child.unref();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();

    const deadline = Date.now() + SOCKET_TIMEOUT_MS;
    while (!fs.existsSync(socketPath)) {
      if (spawnError) throw new Error(`cannot start wireguard-go: ${spawnError.message}`);
      if (!isRunning(child) && child.pid !== undefined) throw new Error('wireguard-go exited before creating its UAPI socket');
      if (Date.now() > deadline) throw new Error(`UAPI socket ${socketPath} did not appear within ${SOCKET_TIMEOUT_MS} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }

    // 3. configure; keys go through 0600 files only
    inst.tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wwt-keys-'));
    fs.chmodSync(inst.tmpDir, 0o700);
    const keyFile = (name: string, key: string): string => {
      const p = path.join(inst.tmpDir!, name);
      fs.writeFileSync(p, `${key}\n`, { mode: 0o600 });
      return p;
    };
    const setArgs = ['private-key', keyFile('private', opts.privateKey), 'listen-port', String(requestedPort)];
    opts.peers.forEach((p, i) => {
      setArgs.push('peer', p.publicKey);
      if (p.presharedKey !== undefined) setArgs.push('preshared-key', keyFile(`psk${i}`, p.presharedKey));
      if (p.endpoint !== undefined) setArgs.push('endpoint', p.endpoint);
      setArgs.push('allowed-ips', p.allowedIPs.join(','));
      if (p.persistentKeepalive !== undefined) setArgs.push('persistent-keepalive', String(p.persistentKeepalive));
    });
    try {
      await runOk(t.wg, ['set', ifname, ...setArgs], `wg set ${ifname} ${redactArgs(setArgs)}`);
    } finally {
      fs.rmSync(inst.tmpDir, { recursive: true, force: true });
      inst.tmpDir = undefined;
    }

    const publicKey = (await runOk(t.wg, ['pubkey'], 'wg pubkey', { input: `${opts.privateKey}\n` })).stdout.trim();
    const listenPort = Number((await runOk(t.wg, ['show', ifname, 'listen-port'], 'wg show listen-port')).stdout.trim());
    if (!Number.isInteger(listenPort) || listenPort <= 0) throw new Error(`bad listen port read back from wg: ${listenPort}`);
    if (requestedPort !== 0 && listenPort !== requestedPort) {
      throw new Error(`wireguard-go listens on ${listenPort}, requested ${requestedPort}`);
    }
    // Normalised (masked) allowed IPs as wireguard-go stores them, for the routes.
    const allowedOut = (await runOk(t.wg, ['show', ifname, 'allowed-ips'], 'wg show allowed-ips')).stdout;
    const routes = new Set<string>();
    for (const line of allowedOut.split('\n')) {
      const cols = line.trim().split(/\s+/).slice(1);
      for (const c of cols) if (c && c !== '(none)') routes.add(c);
    }

    // 4. MTU in the root namespace (so wireguard-go's netlink watcher sees it),
    //    then move the link into the namespace and finish setup there.
    await runOk(t.ip, ['link', 'set', 'dev', ifname, 'mtu', String(mtu)], `set mtu ${mtu}`);
    await runOk(t.ip, ['link', 'set', 'dev', ifname, 'netns', netns], `move ${ifname} into ${netns}`);
    if (!isRunning(child)) throw new Error('wireguard-go exited after its TUN device was moved');
    const nsIp = (args: string[], what: string): Promise<RunResult> => runOk(t.ip, ['-n', netns, ...args], what);
    if (opts.tunAddress4) await nsIp(['-4', 'addr', 'add', opts.tunAddress4, 'dev', ifname], `add address ${opts.tunAddress4}`);
    if (opts.tunAddress6) {
      await nsIp(['-6', 'addr', 'add', opts.tunAddress6, 'dev', ifname, 'nodad'], `add address ${opts.tunAddress6}`);
    }
    await nsIp(['link', 'set', 'dev', ifname, 'mtu', String(mtu), 'up'], `bring ${ifname} up`);
    for (const r of routes) {
      await nsIp([r.includes(':') ? '-6' : '-4', 'route', 'replace', r, 'dev', ifname], `route ${r} dev ${ifname}`);
    }
    if (!isRunning(child)) throw new Error('wireguard-go exited during namespace setup');

    const pid = child.pid!;
    return {
      publicKey,
      listenPort,
      netns,
      ifname,
      pid,
      socketPath,
      exec: (cmd, o = {}) => {
        if (cmd.length === 0) return Promise.reject(new Error('exec: empty command'));
        return run(t.ip, ['netns', 'exec', netns, ...cmd], o);
      },
      show: async () => (await runOk(t.wg, ['show', ifname, 'dump'], `wg show ${ifname} dump`)).stdout,
      wgSet: async (args) => {
        await runOk(t.wg, ['set', ifname, ...args], `wg set ${ifname} ${redactArgs(args)}`);
      },
      logs: () => log.text(),
      stop,
    };
  } catch (e) {
    return fail(e);
  }
}
