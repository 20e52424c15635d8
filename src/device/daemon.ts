/**
 * `wireweave [-f|--foreground] IFNAME`: the cross-platform userspace interface, as
 * wireguard-go implements it. Creates the TUN device, serves the UAPI socket
 * /var/run/wireguard/IFNAME.sock, and runs until SIGINT/SIGTERM, until the TUN device is
 * deleted, or until the socket file is removed.
 *
 * Without -f (and without WG_PROCESS_FOREGROUND=1) the command starts a detached copy of
 * itself in the foreground mode and returns once that copy reports the interface and the
 * socket ready — which is what `wg-quick` waits for before it runs `wg setconf`.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../core/errors.ts';
import { Device } from './device.ts';
import { ThreadInitiationOffload } from './initiation-thread.ts';
import { isInterfaceName } from './ifname.ts';
import { chooseBind } from './bind-choose.ts';
import { chooseCrypto } from '../crypto/choose.ts';
import { openLinuxTun } from './linux/tun.ts';
import { startUapiServer } from './uapi-server.ts';
import { logFormatFrom, makeLogger } from './logger.ts';
import { DeviceMetrics, parseListenAddress, startMetricsServer } from './metrics.ts';
import type { MetricsServer } from './metrics.ts';
import { dropPrivileges, lookupUser } from './privileges.ts';
import type { Bind } from './bind.ts';
import type { DeviceLogger } from './device.ts';

/**
 * What a layer above the device adds to the interface process (the mesh: a bind that relays,
 * and the hub connection). The device knows nothing of it beyond this shape.
 */
export interface DaemonExtension {
  /** Wraps the UDP bind before the device is made. */
  wrapBind(bind: Bind): Bind;
  /** Runs once the device is up and its UAPI socket serves, before privileges are dropped. */
  attach(device: Device, ifname: string, logger: DeviceLogger): Promise<{ close(): Promise<void> }>;
}

const DEFAULT_MTU = 1420;

/**
 * V8 flags daemonize() gives the interface process it starts: a young generation of two 1 MiB
 * semi-spaces. Without it V8 grows the young generation to 2 × 16 MiB during a burst of
 * allocation (a `wg setconf` of 10,000 peers, a handshake flood) and keeps that memory until its
 * memory reducer runs some 25 s later; the data path allocates little, so scavenging more often
 * costs next to nothing. The size is fixed when the process starts (v8.setFlagsFromString
 * cannot change it later), hence a flag of the re-executed process. `wireweave -f` started
 * directly does not re-execute: give it the flag yourself (node --max-semi-space-size=1, or
 * NODE_OPTIONS).
 */
export const DAEMON_V8_FLAGS: readonly string[] = ['--max-semi-space-size=1'];

/**
 * The Node options for the interface process: this process's own, plus DAEMON_V8_FLAGS unless
 * the user sized the heap themselves (on the command line or in NODE_OPTIONS).
 */
export function daemonNodeArgs(execArgv: readonly string[], nodeOptions = ''): string[] {
  const own = [...execArgv, ...nodeOptions.split(/\s+/)];
  const sized = own.some((a) => /^--(?:max-semi-space-size|min-semi-space-size|max-heap-size|semi-space-growth-factor)(?:=|$)/.test(a.replace(/_/g, '-')));
  return sized ? [...execArgv] : [...execArgv, ...DAEMON_V8_FLAGS];
}

export interface DaemonIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** wireguard-go's LOG_LEVEL and line format (logger.ts); kept here for existing importers. */
export { makeLogger } from './logger.ts';

const USAGE = 'Usage: wireweave [-f/--foreground] [--metrics [HOST:]PORT] [--user NAME] [--] INTERFACE-NAME\n';

/**
 * Entry point for `wireweave [-f] [--metrics ADDR] [--user NAME] IFNAME`; resolves with the
 * exit code. --metrics and --user may also come as WIREWEAVE_METRICS and WIREWEAVE_USER (the
 * flags win); both are checked before anything is created, and handed to the detached copy
 * through its environment.
 */
export async function runInterfaceCommand(args: string[], io: DaemonIo, env = process.env, extension?: DaemonExtension): Promise<number> {
  let foreground = env.WG_PROCESS_FOREGROUND === '1';
  let metrics = env.WIREWEAVE_METRICS || undefined;
  let user = env.WIREWEAVE_USER || undefined;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') { rest.push(...args.slice(i + 1)); break; }
    if (a === '-f' || a === '--foreground') foreground = true;
    else if (a === '--metrics' || a === '--user') {
      const value = args[++i];
      if (value === undefined) { io.stderr.write(`wireweave: ${a} needs a value\n${USAGE}`); return 1; }
      if (a === '--metrics') metrics = value; else user = value;
    } else if (a.startsWith('--metrics=')) metrics = a.slice('--metrics='.length);
    else if (a.startsWith('--user=')) user = a.slice('--user='.length);
    else rest.push(a);
  }
  if (rest.length !== 1 || !isInterfaceName(rest[0]!)) {
    io.stderr.write(USAGE);
    return 1;
  }
  try {
    if (metrics !== undefined) parseListenAddress(metrics);
    if (user !== undefined) lookupUser(user);
  } catch (err) {
    io.stderr.write(`wireweave: ${(err as Error).message}\n`);
    return 1;
  }
  const ifname = rest[0]!;
  const childEnv: NodeJS.ProcessEnv = { ...env, WIREWEAVE_METRICS: metrics, WIREWEAVE_USER: user };
  for (const k of ['WIREWEAVE_METRICS', 'WIREWEAVE_USER']) if (childEnv[k] === undefined) delete childEnv[k];
  if (!foreground) return daemonize(ifname, io, childEnv);
  return runForeground(ifname, io, childEnv, null, extension);
}

/** Starts a detached foreground copy and waits for its readiness line on fd 3. */
async function daemonize(ifname: string, io: DaemonIo, env: NodeJS.ProcessEnv): Promise<number> {
  // Re-run this process's own script and Node flags, as wireguard-go re-runs its executable: a
  // daemon started from bin/wireweave runs dist/ again, one started from the sources (the tests'
  // launcher) runs the sources again.
  const script = process.argv[1] ?? fileURLToPath(new URL('../../bin/wireweave', import.meta.url));
  const logFd = env.LOG_LEVEL && env.LOG_LEVEL !== 'silent' ? 'inherit' : 'ignore';
  // `--`: the name is an interface name even if it looks like a command (main.ts).
  const child = spawn(process.execPath, [...daemonNodeArgs(process.execArgv, env.NODE_OPTIONS), script, '--foreground', '--', ifname], {
    detached: true,
    stdio: ['ignore', logFd, logFd, 'pipe'],
    env: { ...env, WG_PROCESS_FOREGROUND: '1', WIREWEAVE_READY_FD: '3' },
  });
  const ready = child.stdio[3] as NodeJS.ReadableStream;
  let report = '';
  const code = await new Promise<number>((resolve) => {
    ready.on('data', (chunk: Buffer) => {
      report += chunk.toString();
      if (report.includes('\n')) resolve(report.startsWith('ready') ? 0 : 1);
    });
    child.on('exit', (c) => resolve(c === 0 && report.startsWith('ready') ? 0 : 1));
  });
  if (code !== 0) {
    const why = report.replace(/^error /, '').trim() || 'the interface process exited early';
    io.stderr.write(`wireweave: ${why}\n`);
  }
  child.unref();
  (ready as unknown as { destroy(): void }).destroy();
  return code;
}

/**
 * WIREWEAVE_INITIATION_THREAD: where handshake initiations are computed. 'auto': a worker thread
 * that starts on a burst (many peers dialing) and stops when idle; 'always'; 'off': the main
 * thread only. The default is 'auto' with more than two cores, else 'off': on two cores the
 * thread only competes with the device's own thread and `wg` (bench/results/peers-20261207T2130Z.md).
 */
export function initiationThreadFrom(text: string | undefined, cores = availableParallelism()): 'auto' | 'always' | 'off' {
  if (text === undefined || text === '') return cores > 2 ? 'auto' : 'off';
  if (text === 'auto' || text === 'always' || text === 'off') return text;
  throw new ConfigError('ERR_INITIATION_THREAD', `WIREWEAVE_INITIATION_THREAD must be auto, always or off, not ${JSON.stringify(text)}`);
}

/** Runs the interface in this process until it is told or made to stop. */
async function runForeground(
  ifname: string, io: DaemonIo, env: NodeJS.ProcessEnv, signal: AbortSignal | null, extension?: DaemonExtension,
): Promise<number> {
  const logger = makeLogger(ifname, env.LOG_LEVEL, io.stdout, logFormatFrom(env.WIREWEAVE_LOG_FORMAT));
  const readyFd = env.WIREWEAVE_READY_FD ? Number(env.WIREWEAVE_READY_FD) : null;
  const tell = (text: string) => { if (readyFd !== null) try { fs.writeSync(readyFd, text + '\n'); } catch { /* parent gone */ } };
  let device: Device;
  let uapi: Awaited<ReturnType<typeof startUapiServer>>;
  let metricsServer: MetricsServer | null = null;
  let attached: { close(): Promise<void> } | null = null;
  try {
    // WIREWEAVE_TUN_SLOTS: packets the TUN reader may hold (a power of two; tuning and diagnosis).
    const slots = env.WIREWEAVE_TUN_SLOTS ? Number(env.WIREWEAVE_TUN_SLOTS) : undefined;
    const initiationThread = initiationThreadFrom(env.WIREWEAVE_INITIATION_THREAD);
    // WIREWEAVE_TUN_OFFLOAD=0: no TSO/GRO on the TUN (comparisons, diagnosis).
    // WIREWEAVE_TUN_GRO_BYTES: the largest super-packet written to the TUN (tuning and diagnosis).
    const groMaxBytes = env.WIREWEAVE_TUN_GRO_BYTES ? Number(env.WIREWEAVE_TUN_GRO_BYTES) : undefined;
    // WIREWEAVE_TUN_FULL_WAIT_MS: how long the TUN reader waits for room before it drops (tuning and diagnosis).
    const ringFullWaitMs = env.WIREWEAVE_TUN_FULL_WAIT_MS ? Number(env.WIREWEAVE_TUN_FULL_WAIT_MS) : undefined;
    const tun = await openLinuxTun(ifname, { mtu: DEFAULT_MTU, ringSlots: slots, offload: env.WIREWEAVE_TUN_OFFLOAD !== '0', groMaxBytes, ringFullWaitMs });
    const bind = await chooseBind(env, { error: (m) => logger.error(m), verbose: (m) => logger.verbose(m) });
    const initiationOffload = initiationThread === 'off' ? undefined : new ThreadInitiationOffload({ mode: initiationThread, logger });
    device = new Device({ tun, bind: extension ? extension.wrapBind(bind) : bind, logger, crypto: chooseCrypto(env), initiationOffload });
    try {
      uapi = await startUapiServer(tun.name, device);
    } catch (err) {
      await device.close('uapi failed');
      throw err;
    }
    await device.up();
    try {
      if (extension) attached = await extension.attach(device, tun.name, logger);
      if (env.WIREWEAVE_METRICS) {
        metricsServer = await startMetricsServer(new DeviceMetrics(device), env.WIREWEAVE_METRICS);
        const { host, port } = metricsServer.address;
        logger.verbose(`metrics at http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`);
      }
      // Last: everything that needs root (TUN, sockets, ports) is open by now.
      if (env.WIREWEAVE_USER) {
        const account = lookupUser(env.WIREWEAVE_USER);
        dropPrivileges(account);
        logger.verbose(`running as user ${account.name} (uid ${account.uid}, gid ${account.gid})`);
      }
    } catch (err) {
      await metricsServer?.close();
      await attached?.close();
      await uapi.close();
      await device.close('start-up failed');
      throw err;
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const hint = (code === 'EPERM' || code === 'EACCES') && process.geteuid?.() !== 0
      ? '; creating an interface needs root or CAP_NET_ADMIN (`wireweave proxy` and `wireweave forward` run a tunnel without either)'
      : '';
    const message = `failed to create interface ${ifname}: ${(err as Error).message}${hint}`;
    logger.error(message);
    tell(`error ${message}`);
    if (readyFd === null) io.stderr.write(`wireweave: ${message}\n`);
    return 1;
  }
  logger.verbose('UAPI listener started');
  tell('ready');
  if (readyFd !== null) try { fs.closeSync(readyFd); } catch { /* already closed */ }

  const reason = await new Promise<string>((resolve) => {
    const onSignal = (s: string) => resolve(`received ${s}`);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    device.onClose((r) => resolve(r));
    uapi.onSocketRemoved(() => resolve('UAPI socket removed'));
    signal?.addEventListener('abort', () => resolve('aborted'));
  });
  logger.verbose(`shutting down: ${reason}`);
  await metricsServer?.close();
  await attached?.close();
  await uapi.close();
  await device.close(reason);
  return 0;
}
