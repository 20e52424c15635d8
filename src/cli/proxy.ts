/**
 * `wireweave proxy CONFIG [--socks5 ADDR] [--http ADDR] [--tcp SPEC]...`: brings the tunnel up
 * rootless (userspace TCP/IP on a UDP socket) and serves SOCKS5 and/or an HTTP proxy on the host
 * that reach only through the tunnel, and port forwards (one process for all, as wireproxy's
 * config does). Runs until SIGINT/SIGTERM.
 *
 * `forward` is the same command with forwards in front (cli/forward.ts). Around the tunnel: a
 * report of its handshakes, a control socket for `wireweave show`/`wg show`, optional metrics,
 * and a warning when another process runs a tunnel with the same key.
 */
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';
import { WireweaveError } from '../core/errors.ts';
import { encodeBase64 } from '../core/keys.ts';
import { nodeCrypto } from '../crypto/node.ts';
import { makeLogger } from '../device/logger.ts';
import { DeviceMetrics, parseListenAddress as parseMetricsAddress, startMetricsServer } from '../device/metrics.ts';
import type { MetricsServer } from '../device/metrics.ts';
import type { UapiServer } from '../device/uapi-server.ts';
import { checkConfigFilePermissions, parseWgQuickConfig } from '../device/wgquick.ts';
import type { WgQuickConfig, WgQuickMesh } from '../device/wgquick.ts';
import { chooseCrypto } from '../crypto/choose.ts';
import { chooseBind } from '../device/bind-choose.ts';
import { MeshBind } from '../mesh/peer/mesh-bind.ts';
import { meshDaemonOptions, runMesh } from '../mesh/peer/daemon.ts';
import { withMeshAddresses } from '../mesh/peer/discovery-config.ts';
import { meshStatusPath } from '../mesh/peer/status-socket.ts';
import { netstack } from '../netstack/api.ts';
import type { Netstack, NetstackOptions } from '../netstack/api.ts';
import { formatHostPort, splitHostPort, parsePort } from '../netstack/addr.ts';
import { ensurePrivateDir, nameForConfig, runtimeDir, startControlSocket } from '../netstack/control.ts';
import { messageOf } from '../netstack/errors.ts';
import { forwardTcp, forwardUdp, formatForwardSpec, parseForwardSpec, reverseTcp } from '../netstack/forward.ts';
import type { Forward, ForwardSpec } from '../netstack/forward.ts';
import { reportHandshakes } from '../netstack/handshake-report.ts';
import type { HandshakeReport } from '../netstack/handshake-report.ts';
import { startHttpProxy } from '../netstack/http-proxy.ts';
import { lockPublicKey } from '../netstack/key-lock.ts';
import type { KeyLock } from '../netstack/key-lock.ts';
import { startSocks5 } from '../netstack/socks5.ts';

export interface ProxyIo {
  stdout: Writable;
  stderr: Writable;
}

/** For tests and embedders: stop on this signal instead of SIGINT/SIGTERM; netstack options. */
export interface RunOptions {
  signal?: AbortSignal;
  /**
   * With `signal`: while the stop drains the connections, this one takes the tunnel down at once
   * (as a second SIGINT/SIGTERM does without `signal`).
   */
  stopNowSignal?: AbortSignal;
  netstack?: NetstackOptions;
  /** Called once everything listens (with the bound addresses), for tests. */
  onReady?: (info: { tunnel: Netstack; listening: Record<string, string>; control?: string }) => void;
  /** The environment (XDG_RUNTIME_DIR, LOG_LEVEL); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Our user id (default process.getuid()); 0 puts the control socket in /var/run/wireguard when free. */
  uid?: number;
  /** Directory for `uid` 0's control socket (default /var/run/wireguard). */
  systemSocketDir?: string;
}

const COMMON_USAGE = `Proxies (SOCKS5 and HTTP):
  --socks5 ADDR     SOCKS5 (CONNECT, UDP ASSOCIATE) on ADDR
  --http ADDR       HTTP proxy (CONNECT and http:// forwarding) on ADDR
  --auth-file FILE  require a user name and password (SOCKS5 RFC 1929, HTTP Basic): the file
                    holds one line USER:PASSWORD
  --handshake-timeout MS   close clients that do not finish their request in time (10000)

Port forwards (ssh -L / -R style):
  --tcp [BIND:]PORT:HOST:HOSTPORT      listen on this host's BIND:PORT (BIND defaults to
                                       127.0.0.1) and connect through the tunnel to HOST:HOSTPORT
  --udp [BIND:]PORT:HOST:HOSTPORT      the same for UDP datagrams (replies go back to the sender)
  --reverse-tcp [ADDR:]PORT:HOST:HOSTPORT
                                       listen on our tunnel address PORT and connect each
                                       connection to HOST:HOSTPORT from this host

The tunnel:
  --connect-timeout MS   fail a connection through the tunnel that is not established in
                    time (10000; 0 = the TCP retries only): SOCKS5 reply 6, HTTP 504
  --name NAME       the tunnel's name for \`wireweave show NAME' (default: the config file's
                    name, as wg-quick names the interface: wg0.conf is wg0)
  --no-control      no control socket
  --metrics ADDR    Prometheus metrics at http://ADDR/metrics ([HOST:]PORT)
  -v, --verbose     log every handshake and the device's events (also LOG_LEVEL=verbose)

The first handshake with each peer is reported, and a peer that has not answered after 15 s is
named. The control socket speaks wireguard-go's UAPI: \`wireweave show NAME' reads it from
$XDG_RUNTIME_DIR/wireweave/NAME.sock; as root it goes to /var/run/wireguard/NAME.sock when that
name is free, so \`wg show NAME' works too. Run one process for all the proxies and forwards of a
config: two processes with one key make the peer's endpoint flip between them (warned).

Host names are resolved only by the config's DNS servers (and its search domains), through the
tunnel. Destinations outside every peer's AllowedIPs are refused (SOCKS5 reply 2, HTTP 502),
never dialled directly. ADDR is PORT, HOST:PORT or [IPv6]:PORT; HOST defaults to 127.0.0.1.
IPv6 addresses in SPECs go in brackets: --tcp 8080:[fd00::2]:80.
`;

const PROXY_USAGE = `Usage: wireweave proxy CONFIG [--socks5 [HOST:]PORT] [--http [HOST:]PORT] [--tcp SPEC]... [OPTIONS]

Brings up the WireGuard tunnel described by the wg-quick CONFIG file without root or a TUN
device (a userspace TCP/IP stack on an ordinary UDP socket) and serves proxies and port forwards
on this host whose connections go only through the tunnel. With neither a proxy nor a forward,
SOCKS5 on 127.0.0.1:1080.

${COMMON_USAGE}`;

export const FORWARD_USAGE = `Usage: wireweave forward CONFIG [--tcp SPEC]... [--udp SPEC]... [--reverse-tcp SPEC]... [OPTIONS]

Brings up the WireGuard tunnel described by the wg-quick CONFIG file without root or a TUN
device and forwards ports, like ssh -L and -R; the same command as \`wireweave proxy', so it
takes --socks5 and --http as well. HOST is resolved by the config's DNS servers through the
tunnel (reverse: by this host) and must be inside a peer's AllowedIPs.

${COMMON_USAGE}`;

class CliError extends WireweaveError {
  constructor(message: string) {
    super('ERR_CLI', message);
    this.name = 'CliError';
  }
}

/** PORT, HOST:PORT or [v6]:PORT → host and port (host defaults to 127.0.0.1). */
function parseListenAddress(flag: string, text: string | undefined): { host: string; port: number } {
  if (text === undefined) throw new CliError(`${flag} needs an address ([HOST:]PORT)`);
  const port = parsePort(text, true);
  if (port !== null) return { host: '127.0.0.1', port };
  const hp = splitHostPort(text, true);
  if (!hp || hp.host === '') throw new CliError(`${flag}: not [HOST:]PORT with a port from 0 to 65535: ${JSON.stringify(text.slice(0, 60))}`);
  return hp;
}

/** Reads USER:PASSWORD from a file (first line); never echoes its content. */
function readAuthFile(path: string | undefined): { username: string; password: string } {
  if (path === undefined) throw new CliError('--auth-file needs a file name');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read --auth-file ${path}: ${(err as NodeJS.ErrnoException).code ?? messageOf(err)}`);
  }
  const line = text.split(/\r?\n/)[0] ?? '';
  const colon = line.indexOf(':');
  if (colon <= 0 || colon === line.length - 1) throw new CliError(`--auth-file ${path}: the first line must be USER:PASSWORD`);
  const username = line.slice(0, colon), password = line.slice(colon + 1);
  if (Buffer.byteLength(username) > 255 || Buffer.byteLength(password) > 255) throw new CliError(`--auth-file ${path}: user name and password are at most 255 bytes each`);
  return { username, password };
}

function write(stream: Writable, text: string): Promise<void> {
  return new Promise((resolve) => stream.write(text, () => resolve()));
}

/**
 * Brings the tunnel up; errors become one-line CliErrors (config errors already name file:line).
 * Like wg-quick, warns when the file (which holds a private key) is world accessible.
 */
async function openTunnel(config: string, options: NetstackOptions = {}, warn: (line: string) => void = () => {}, parsed?: WgQuickConfig): Promise<Netstack> {
  try {
    const warning = checkConfigFilePermissions(config);
    if (warning) warn(warning);
  } catch {
    // Unreadable or missing: netstack() below says so in its own words.
  }
  try {
    return await netstack(parsed ?? config, options);
  } catch (err) {
    throw new CliError(messageOf(err));
  }
}

/**
 * `stopped` resolves when `signal` aborts, or on SIGINT/SIGTERM when there is no signal. Taken
 * before the set-up starts, so a signal that comes while it runs (say, right after a "ready"
 * line) stops the tunnel cleanly instead of killing the process with its lock behind; `off`
 * stops listening.
 */
function untilStopped(signal: AbortSignal | undefined): { stopped: Promise<void>; off(): void } {
  let off = (): void => {};
  const stopped = new Promise<void>((resolve) => {
    if (signal) {
      const abort = () => resolve();
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', abort, { once: true });
      off = () => signal.removeEventListener('abort', abort);
      return;
    }
    const stop = () => { off(); resolve(); };
    off = () => { process.off('SIGINT', stop); process.off('SIGTERM', stop); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return { stopped, off }; // the executor above has run: `off` is final
}

/**
 * Calls `act` on a second stop while the first one drains: `signal` when given, else the next
 * SIGINT or SIGTERM (a third one then gets Node's default, which ends the process). Returns a
 * function that stops listening.
 */
function onSecondStop(signal: AbortSignal | undefined, act: () => void): () => void {
  if (signal) {
    if (signal.aborted) { act(); return () => {}; }
    signal.addEventListener('abort', act, { once: true });
    return () => signal.removeEventListener('abort', act);
  }
  const off = () => { process.off('SIGINT', now); process.off('SIGTERM', now); };
  const now = () => { off(); act(); };
  process.on('SIGINT', now);
  process.on('SIGTERM', now);
  return off;
}

function describeTunnel(tunnel: Netstack): string {
  const peers = tunnel.config.peers.length;
  return `tunnel started: ${tunnel.addresses.join(', ')} via UDP port ${tunnel.port}, ${peers} peer${peers === 1 ? '' : 's'}; waiting for a handshake`;
}

type ForwardKind = 'tcp' | 'udp' | 'reverse-tcp';

export interface TunnelArgs {
  config: string;
  socks5?: { host: string; port: number };
  http?: { host: string; port: number };
  auth?: { username: string; password: string };
  handshakeTimeoutMs: number;
  forwards: { kind: ForwardKind; spec: ForwardSpec }[];
  connectTimeoutMs: number;
  name?: string;
  control: boolean;
  metrics?: string;
  verbose: boolean;
}

function milliseconds(flag: string, v: string | undefined, min: number): number {
  if (v === undefined || !/^\d{1,7}$/.test(v) || Number(v) < min) throw new CliError(`${flag} needs milliseconds (${min === 0 ? '0 or more' : `at least ${min}`})`);
  return Number(v);
}

/** The flags of `proxy` and `forward` (one grammar); `command` picks the defaults and the help. */
export function parseTunnelArgs(command: 'proxy' | 'forward', args: string[]): TunnelArgs | 'help' {
  const out: Partial<TunnelArgs> & { forwards: TunnelArgs['forwards'] } = {
    handshakeTimeoutMs: 10_000, forwards: [], connectTimeoutMs: 10_000, control: true, verbose: false,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => inline ?? args[++i];
    switch (flag) {
      case '-h': case '--help': return 'help';
      case '-v': case '--verbose': out.verbose = true; break;
      case '--socks5': out.socks5 = parseListenAddress('--socks5', value()); break;
      case '--http': out.http = parseListenAddress('--http', value()); break;
      case '--auth-file': out.auth = readAuthFile(value()); break;
      case '--handshake-timeout': out.handshakeTimeoutMs = milliseconds(flag, value(), 100); break;
      case '--connect-timeout': out.connectTimeoutMs = milliseconds(flag, value(), 0); break;
      case '--no-control': out.control = false; break;
      case '--name': {
        const v = value();
        if (v === undefined || !/^[A-Za-z0-9_=+.-]{1,15}$/.test(v) || v === '.' || v === '..') throw new CliError('--name needs a name of 1-15 characters from A-Z a-z 0-9 _ = + . -');
        out.name = v;
        break;
      }
      case '--metrics': {
        const v = value();
        if (v === undefined) throw new CliError('--metrics needs an address ([HOST:]PORT)');
        try { parseMetricsAddress(v); } catch (err) { throw new CliError(`--metrics: ${messageOf(err)}`); }
        out.metrics = v;
        break;
      }
      case '--tcp': case '--udp': case '--reverse-tcp': {
        const text = value();
        if (text === undefined) throw new CliError(`${flag} needs [BIND:]PORT:HOST:HOSTPORT`);
        const spec = parseForwardSpec(text);
        if (!spec) throw new CliError(`${flag}: not [BIND:]PORT:HOST:HOSTPORT (ports 1-65535): ${JSON.stringify(text.slice(0, 80))}`);
        if (spec.bindPort === 0 && flag === '--reverse-tcp') throw new CliError('--reverse-tcp needs a tunnel port from 1 to 65535');
        out.forwards.push({ kind: flag.slice(2) as ForwardKind, spec });
        break;
      }
      default:
        if (arg.startsWith('-')) throw new CliError(`unknown option${/^--?[A-Za-z][A-Za-z0-9-]{0,31}$/.test(flag) ? ` '${flag}'` : ''}; run 'wireweave ${command} --help'`);
        if (out.config !== undefined) throw new CliError('only one CONFIG file, please');
        out.config = arg;
    }
  }
  if (out.config === undefined) throw new CliError(`missing CONFIG (a wg-quick file); run 'wireweave ${command} --help'`);
  const nothing = !out.socks5 && !out.http && out.forwards.length === 0;
  if (nothing && command === 'forward') throw new CliError('nothing to forward: give at least one --tcp, --udp or --reverse-tcp');
  if (nothing) out.socks5 = { host: '127.0.0.1', port: 1080 };
  return out as TunnelArgs;
}

/** `wireweave proxy` (and, through runTunnel, `wireweave forward`). */
export function proxy(args: string[], io: ProxyIo, options: RunOptions = {}): Promise<number> {
  return runTunnel('proxy', args, io, options);
}

/** Runs the tunnel with its proxies and forwards until stopped; the exit status. */
export async function runTunnel(command: 'proxy' | 'forward', args: string[], io: ProxyIo, options: RunOptions = {}): Promise<number> {
  let parsed: TunnelArgs | 'help';
  try {
    parsed = parseTunnelArgs(command, args);
  } catch (err) {
    await write(io.stderr, `wireweave: ${command}: ${messageOf(err)}\n`);
    return 1;
  }
  if (parsed === 'help') { await write(io.stdout, command === 'proxy' ? PROXY_USAGE : FORWARD_USAGE); return 0; }
  const env = options.env ?? process.env;
  const uid = options.uid ?? process.getuid?.() ?? -1;
  const verbose = parsed.verbose || env.LOG_LEVEL === 'verbose' || env.LOG_LEVEL === 'debug';
  const name = parsed.name ?? nameForConfig(parsed.config) ?? 'wireweave';
  const log = (line: string) => { io.stderr.write(`wireweave: ${line}\n`); };
  let tunnel: Netstack | undefined;
  let stopping = false;
  const servers: { close(cb?: () => void): unknown }[] = [];
  const forwards: Forward[] = [];
  let control: UapiServer | undefined;
  let metrics: MetricsServer | undefined;
  let report: HandshakeReport | undefined;
  let lock: KeyLock | undefined;
  let mesh: { close(): Promise<void> } | undefined;
  const stop = untilStopped(options.signal);
  try {
    // [Mesh]: the tunnel's UDP goes through the mesh bind, and the mesh runs beside it.
    const meshConfig = meshOf(parsed.config);
    const meshOptions = meshConfig?.mesh;
    const meshBind = meshOptions ? new MeshBind(await chooseBind()) : undefined;
    const netstackOptions: NetstackOptions = {
      name,
      // The device's own lines (errors; handshakes and events with --verbose), on stderr.
      logger: makeLogger(name, verbose ? 'verbose' : 'error', io.stderr),
      connectTimeoutMs: parsed.connectTimeoutMs,
      crypto: chooseCrypto(env),
      ...options.netstack,
    };
    if (meshBind) netstackOptions.bind = meshBind;
    tunnel = await openTunnel(parsed.config, netstackOptions, (line) => io.stderr.write(`${line}\n`), meshConfig);
    await write(io.stderr, `wireweave: ${describeTunnel(tunnel)}\n`);
    const dir = runtimeDir(env, uid);
    lock = await takeKeyLock(tunnel, dir, uid, `${command} ${name}`, log);
    report = reportHandshakes(tunnel.device, { clock: tunnel.tun.clock, log, verbose: verbose ? log : undefined });
    if (parsed.control) {
      try {
        control = await startControlSocket(tunnel.device, name, { dir, uid, system: uid === 0, systemDir: options.systemSocketDir });
        await write(io.stderr, `wireweave: control socket ${control.path} ('wireweave show ${name}')\n`);
      } catch (err) {
        // The tunnel works without it: say why `show` will not find it, and go on.
        log(`warning: no control socket for ${name}: ${messageOf(err)}`);
      }
    }
    if (meshOptions && meshBind) {
      const running = await runMesh({
        device: tunnel.device, bind: meshBind, options: meshDaemonOptions(meshOptions, meshConfig!.interface.addresses), tunnel: '', logger: netstackOptions.logger!,
        statusPath: control ? meshStatusPath(name, dirname(control.path)) : null,
      });
      mesh = running;
      // Discovered members' names resolve before the tunnel's DNS.
      if (meshOptions.network) tunnel.setLocalNames((host) => running.node.lookupName(host));
      await write(io.stderr, `wireweave: mesh through ${meshOptions.hubs.join(', ')} (relay ${meshOptions.relay}${meshOptions.network ? `, network ${meshOptions.network}` : ''})\n`);
    }
    if (parsed.metrics) {
      metrics = await startMetricsServer(new DeviceMetrics(tunnel.device, { clock: tunnel.tun.clock }), parsed.metrics)
        .catch((err: Error) => { throw new CliError(`--metrics: ${messageOf(err)}`); });
      await write(io.stderr, `wireweave: metrics on http://${formatHostPort(metrics.address.host, metrics.address.port)}/metrics\n`);
    }
    const listening: Record<string, string> = {};
    const common = { auth: parsed.auth, handshakeTimeoutMs: parsed.handshakeTimeoutMs, log };
    if (parsed.socks5) {
      const s = await startSocks5(tunnel, parsed.socks5.host, parsed.socks5.port, common).catch((err: Error) => { throw new CliError(`--socks5 ${formatHostPort(parsed.socks5!.host, parsed.socks5!.port)}: ${messageOf(err)}`); });
      servers.push(s);
      const a = s.address() as { address: string; port: number };
      listening.socks5 = formatHostPort(a.address, a.port);
      await write(io.stderr, `wireweave: SOCKS5 proxy on ${listening.socks5}${parsed.auth ? ' (user name and password required)' : ''}\n`);
    }
    if (parsed.http) {
      const s = await startHttpProxy(tunnel, parsed.http.host, parsed.http.port, common).catch((err: Error) => { throw new CliError(`--http ${formatHostPort(parsed.http!.host, parsed.http!.port)}: ${messageOf(err)}`); });
      servers.push(s);
      const a = s.address() as { address: string; port: number };
      listening.http = formatHostPort(a.address, a.port);
      await write(io.stderr, `wireweave: HTTP proxy on ${listening.http}${parsed.auth ? ' (user name and password required)' : ''}\n`);
    }
    for (const { kind, spec } of parsed.forwards) {
      const what = `--${kind} ${formatForwardSpec(spec)}`;
      let f: Forward;
      try {
        f = kind === 'tcp' ? await forwardTcp(tunnel, spec, log) : kind === 'udp' ? await forwardUdp(tunnel, spec, log) : await reverseTcp(tunnel, spec, log);
      } catch (err) {
        throw new CliError(`${what}: ${messageOf(err)}`);
      }
      forwards.push(f);
      listening[what] = f.listening;
      const arrow = kind === 'reverse-tcp' ? `tunnel ${f.listening} → host ${spec.host}:${spec.hostPort}` : `host ${f.listening} → tunnel ${spec.host}:${spec.hostPort}`;
      await write(io.stderr, `wireweave: ${kind === 'udp' ? 'UDP' : 'TCP'} forward ${arrow}\n`);
    }
    options.onReady?.({ tunnel, listening, control: control?.path });
    await stop.stopped;
    stopping = true;
    return 0;
  } catch (err) {
    await write(io.stderr, `wireweave: ${command}: ${messageOf(err)}\n`);
    return 1;
  } finally {
    stop.off();
    report?.stop();
    // Closing delivers what the connections still hold (Netstack.close(), closeTimeoutMs); a
    // second stop resets them and takes the tunnel down at once.
    const open = tunnel;
    const offSecond = open ? onSecondStop(options.stopNowSignal, () => {
      log(`${command}: stopping at once: resetting the connections still open`);
      void open.destroy();
    }) : () => {};
    if (open && stopping) log(`${command}: stopping: delivering what the open connections hold (signal again to stop at once)`);
    for (const s of servers) s.close();
    // A TCP forward's close() waits for its host connections, which end only with the tunnel's:
    // not awaited before the tunnel closes, or one open connection would hold the stop forever.
    const forwardsClosed = Promise.all(forwards.map((f) => f.close().catch(() => {})));
    await mesh?.close().catch(() => {});
    await control?.close().catch(() => {});
    await metrics?.close().catch(() => {});
    await tunnel?.close().catch((err: unknown) => log(`${command}: ${messageOf(err)}`));
    await forwardsClosed;
    offSecond();
    lock?.release();
  }
}

/**
 * The config file when it has [Mesh], with derived addresses for a discovery member without
 * Address; undefined otherwise (none, or a file netstack() will refuse in its own words).
 */
function meshOf(config: string): (WgQuickConfig & { mesh: WgQuickMesh }) | undefined {
  try {
    const cfg = parseWgQuickConfig(readFileSync(config, 'utf8'), config);
    return cfg.mesh ? withMeshAddresses(nodeCrypto, cfg) as WgQuickConfig & { mesh: WgQuickMesh } : undefined;
  } catch {
    return undefined;
  }
}

/** Takes the lock for our public key; warns when another live process holds it. */
async function takeKeyLock(tunnel: Netstack, dir: string, uid: number, what: string, log: (line: string) => void): Promise<KeyLock | undefined> {
  const privateKey = tunnel.device.getState().privateKey;
  if (!privateKey) return undefined;
  const publicKey = encodeBase64(nodeCrypto.x25519PrivateKey(privateKey).publicKey);
  try {
    await ensurePrivateDir(dir, uid);
    const lock = lockPublicKey(dir, publicKey, what);
    if (lock.other) {
      log(`warning: another wireweave process (pid ${lock.other.pid}${lock.other.what ? `, ${lock.other.what}` : ''}) runs a tunnel with this private key (public key ${publicKey}): `
        + 'the peer answers whichever sent last, so its endpoint flips between the two and both lose packets. '
        + `Run one process with all the proxies and forwards: wireweave proxy CONFIG --socks5 ... --http ... --tcp ...`);
    }
    return lock;
  } catch (err) {
    log(`warning: cannot check for other processes with this key: ${messageOf(err)}`);
    return undefined;
  }
}
