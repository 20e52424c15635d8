/**
 * `wireweave proxy CONFIG [--socks5 ADDR] [--http ADDR] [--auth-file FILE]`: brings the tunnel up
 * rootless (userspace TCP/IP on a UDP socket) and serves SOCKS5 and/or an HTTP proxy on the host
 * that reach only through the tunnel. Runs until SIGINT/SIGTERM.
 *
 * Also holds what `forward` shares with it: opening the tunnel with one-line errors, and running
 * until a signal.
 */
import { readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { checkConfigFilePermissions } from '../device/wgquick.ts';
import { netstack } from '../netstack/api.ts';
import type { Netstack, NetstackOptions } from '../netstack/api.ts';
import { formatHostPort, splitHostPort, parsePort } from '../netstack/addr.ts';
import { messageOf } from '../netstack/errors.ts';
import { startHttpProxy } from '../netstack/http-proxy.ts';
import { startSocks5 } from '../netstack/socks5.ts';

export interface ProxyIo {
  stdout: Writable;
  stderr: Writable;
}

/** For tests and embedders: stop on this signal instead of SIGINT/SIGTERM; netstack options. */
export interface RunOptions {
  signal?: AbortSignal;
  netstack?: NetstackOptions;
  /** Called once everything listens (with the bound addresses), for tests. */
  onReady?: (info: { tunnel: Netstack; listening: Record<string, string> }) => void;
}

export const PROXY_USAGE = `Usage: wireweave proxy CONFIG [--socks5 [HOST:]PORT] [--http [HOST:]PORT] [--auth-file FILE]

Brings up the WireGuard tunnel described by the wg-quick CONFIG file without root or a TUN
device (a userspace TCP/IP stack on an ordinary UDP socket) and serves proxies on this host
whose connections go only through the tunnel:

  --socks5 ADDR     SOCKS5 (CONNECT, UDP ASSOCIATE) on ADDR (default 127.0.0.1:1080 when
                    neither proxy is given)
  --http ADDR       HTTP proxy (CONNECT and http:// forwarding) on ADDR
  --auth-file FILE  require a user name and password (SOCKS5 RFC 1929, HTTP Basic): the file
                    holds one line USER:PASSWORD
  --handshake-timeout MS   close clients that do not finish their request in time (10000)

Host names are resolved only by the config's DNS servers, through the tunnel. Destinations
outside every peer's AllowedIPs are refused (SOCKS5 reply 2, HTTP 502), never dialled directly.
ADDR is PORT, HOST:PORT or [IPv6]:PORT; HOST defaults to 127.0.0.1.
`;

export class CliError extends Error {}

/** PORT, HOST:PORT or [v6]:PORT → host and port (host defaults to 127.0.0.1). */
export function parseListenAddress(flag: string, text: string | undefined): { host: string; port: number } {
  if (text === undefined) throw new CliError(`${flag} needs an address ([HOST:]PORT)`);
  const port = parsePort(text, true);
  if (port !== null) return { host: '127.0.0.1', port };
  const hp = splitHostPort(text, true);
  if (!hp || hp.host === '') throw new CliError(`${flag}: not [HOST:]PORT with a port from 0 to 65535: ${JSON.stringify(text.slice(0, 60))}`);
  return hp;
}

/** Reads USER:PASSWORD from a file (first line); never echoes its content. */
export function readAuthFile(path: string | undefined): { username: string; password: string } {
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

export function write(stream: Writable, text: string): Promise<void> {
  return new Promise((resolve) => stream.write(text, () => resolve()));
}

/**
 * Brings the tunnel up; errors become one-line CliErrors (config errors already name file:line).
 * Like wg-quick, warns when the file (which holds a private key) is world accessible.
 */
export async function openTunnel(config: string, options: NetstackOptions = {}, warn: (line: string) => void = () => {}): Promise<Netstack> {
  try {
    const warning = checkConfigFilePermissions(config);
    if (warning) warn(warning);
  } catch {
    // Unreadable or missing: netstack() below says so in its own words.
  }
  try {
    return await netstack(config, options);
  } catch (err) {
    throw new CliError(messageOf(err));
  }
}

/** Resolves when `signal` aborts, or on SIGINT/SIGTERM when there is no signal. */
export function untilStopped(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal) {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => resolve(), { once: true });
      return;
    }
    const stop = () => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

export function describeTunnel(tunnel: Netstack): string {
  return `tunnel up: ${tunnel.addresses.join(', ')} via UDP port ${tunnel.port}, ${tunnel.config.peers.length} peer${tunnel.config.peers.length === 1 ? '' : 's'}`;
}

interface ProxyArgs {
  config: string;
  socks5?: { host: string; port: number };
  http?: { host: string; port: number };
  auth?: { username: string; password: string };
  handshakeTimeoutMs: number;
}

function parseArgs(args: string[]): ProxyArgs | 'help' {
  const out: Partial<ProxyArgs> = { handshakeTimeoutMs: 10_000 };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => inline ?? args[++i];
    switch (flag) {
      case '-h': case '--help': return 'help';
      case '--socks5': out.socks5 = parseListenAddress('--socks5', value()); break;
      case '--http': out.http = parseListenAddress('--http', value()); break;
      case '--auth-file': out.auth = readAuthFile(value()); break;
      case '--handshake-timeout': {
        const v = value();
        if (v === undefined || !/^\d{1,7}$/.test(v) || Number(v) < 100) throw new CliError('--handshake-timeout needs milliseconds (at least 100)');
        out.handshakeTimeoutMs = Number(v);
        break;
      }
      default:
        if (arg.startsWith('-')) throw new CliError(`unknown option${/^--?[A-Za-z][A-Za-z0-9-]{0,31}$/.test(flag) ? ` '${flag}'` : ''}; run 'wireweave proxy --help'`);
        if (out.config !== undefined) throw new CliError('only one CONFIG file, please');
        out.config = arg;
    }
  }
  if (out.config === undefined) throw new CliError('missing CONFIG (a wg-quick file); run \'wireweave proxy --help\'');
  if (!out.socks5 && !out.http) out.socks5 = { host: '127.0.0.1', port: 1080 };
  return out as ProxyArgs;
}

export async function proxy(args: string[], io: ProxyIo, options: RunOptions = {}): Promise<number> {
  let parsed: ProxyArgs | 'help';
  try {
    parsed = parseArgs(args);
  } catch (err) {
    await write(io.stderr, `wireweave: proxy: ${messageOf(err)}\n`);
    return 1;
  }
  if (parsed === 'help') { await write(io.stdout, PROXY_USAGE); return 0; }
  const log = (line: string) => { io.stderr.write(`wireweave: ${line}\n`); };
  let tunnel: Netstack | undefined;
  const servers: { close(cb?: () => void): unknown }[] = [];
  try {
    tunnel = await openTunnel(parsed.config, options.netstack, (line) => io.stderr.write(`${line}\n`));
    await write(io.stderr, `wireweave: ${describeTunnel(tunnel)}\n`);
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
    options.onReady?.({ tunnel, listening });
    await untilStopped(options.signal);
    return 0;
  } catch (err) {
    await write(io.stderr, `wireweave: proxy: ${messageOf(err)}\n`);
    return 1;
  } finally {
    for (const s of servers) s.close();
    await tunnel?.close();
  }
}
