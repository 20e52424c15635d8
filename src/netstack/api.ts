/**
 * Rootless wireweave: a WireGuard device whose "TUN" is the userspace TCP/IP stack, on an
 * ordinary UDP socket (node:dgram). No root, no TUN, no routes: the application reaches the
 * tunnel through this object's sockets.
 *
 *   const net = await netstack('./wg0.conf');
 *   const res = await net.fetch('http://10.0.0.1/');
 *   const sock = net.connect({ host: 'db.internal', port: 5432 });   // a Duplex like net.Socket
 *   net.listen(8080).on('connection', (s) => ...);
 *
 * Fail closed: host names are resolved only by the config's DNS servers through the tunnel, and a
 * destination outside every peer's allowed IPs fails with EHOSTUNREACH; nothing is ever dialled
 * from the host instead.
 */
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { CryptoProvider } from '../core/crypto.ts';
import { formatIp, parseIp } from '../core/ip-address.ts';
import type { Bind } from '../device/bind.ts';
import { chooseBind } from '../device/bind-choose.ts';
import type { Clock } from '../device/clock.ts';
import { Device } from '../device/device.ts';
import type { DeviceLogger } from '../device/device.ts';
import { parseWgQuickConfig, toSetRequest } from '../device/wgquick.ts';
import type { WgQuickConfig, ToSetRequestOptions } from '../device/wgquick.ts';
import { ConfigError } from '../core/errors.ts';
import { formatHostPort, ipFamily, unbracket } from './addr.ts';
import { netError } from './errors.ts';
import { tunnelFetch } from './fetch.ts';
import type { TunnelFetchInit } from './fetch.ts';
import { armConnectTimeout } from './connect-timeout.ts';
import { TunnelResolver } from './resolver.ts';
import type { ResolveOptions } from './resolver.ts';
import { TunnelServer } from './server.ts';
import { sendSettled, TunnelSocket } from './socket.ts';
import type { StackDriver, TunnelSocketOptions } from './socket.ts';
import { TcpIpStack } from './stack/stack.ts';
import type { TcpIpStackApi, StackConfig, StackIO, TcpConnection } from './stack/types.ts';
import { NetstackTun } from './tun.ts';
import { TunnelUdpSocket } from './udp.ts';

/** How long close() waits, once our FINs are acknowledged, for the peers' FINs (FIN-WAIT-2). */
const FIN_WAIT_2_GRACE_MS = 2000;

export type StackFactory = (config: StackConfig, io: StackIO) => TcpIpStackApi;

export interface NetstackOptions {
  /**
   * UDP for the tunnel, on the config's ListenPort or any; default the Linux bind (batched, no
   * root needed) where it opens, else node:dgram (device/bind-choose.ts).
   */
  bind?: Bind;
  clock?: Clock;
  logger?: DeviceLogger;
  /** The TCP/IP stack; default the sans-I/O TcpIpStack of src/netstack/stack. */
  createStack?: StackFactory;
  /** Stack tuning beyond what the config says (buffers, backlog, connection limit). */
  stack?: Omit<StackConfig, 'addresses' | 'mtu'>;
  /** Resolves peer Endpoint host names (the underlay: the host's resolver is right for those). */
  resolveEndpoint?: ToSetRequestOptions['resolve'];
  /** Per-try timeout of DNS queries through the tunnel (default 2000 ms). */
  dnsTimeoutMs?: number;
  /** Name for logs (default "netstack0"). */
  name?: string;
  /** The crypto provider (default: libsodium when it loads, else node:crypto). */
  crypto?: CryptoProvider;
  /**
   * How long close() waits for the connections to deliver what they accepted, FIN included
   * (default 10000 ms), before it resets them and fails with ERR_NETSTACK_CLOSE_TIMEOUT.
   */
  closeTimeoutMs?: number;
  /**
   * How long connect() waits for the connection to be established, name resolution included,
   * before it fails with ETIMEDOUT (default 10000 ms, like wireproxy's and tsnet's dials; 0 = the
   * stack's own SYN retries only). A dead peer then fails a dial in seconds, not minutes.
   */
  connectTimeoutMs?: number;
}

export interface ConnectOptions {
  host: string;
  port: number;
  /** Like net.Socket: keep our side open after the peer ends (default false). */
  allowHalfOpen?: boolean;
  /** Overrides NetstackOptions.connectTimeoutMs for this connection. */
  timeoutMs?: number;
}

export interface PingOptions {
  /** Default 3000 ms. */
  timeoutMs?: number;
  /** Payload bytes (default 56, like ping). */
  size?: number;
}

export interface PingResult {
  address: string;
  /** Round-trip time in milliseconds. */
  time: number;
}

/** Reads a wg-quick config given as a parsed object, its text (has a newline) or a file path. */
export function loadConfig(config: WgQuickConfig | string): WgQuickConfig {
  if (typeof config !== 'string') return config;
  if (config.includes('\n')) return parseWgQuickConfig(config, '<config>');
  let text: string;
  try {
    text = readFileSync(config, 'utf8');
  } catch (err) {
    throw new ConfigError('ERR_CONFIG', `cannot read config ${config}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseWgQuickConfig(text, config);
}

/** Brings a rootless tunnel up from a wg-quick config and returns its socket API. */
export async function netstack(config: WgQuickConfig | string, options: NetstackOptions = {}): Promise<Netstack> {
  const cfg = loadConfig(config);
  const file = cfg.fileName ?? '<config>';
  if (!cfg.interface.privateKey) throw new ConfigError('ERR_CONFIG', `${file}: the [Interface] has no PrivateKey`);
  if (cfg.interface.addresses.length === 0) {
    throw new ConfigError('ERR_CONFIG', `${file}: the [Interface] has no Address (the userspace stack needs its tunnel address)`);
  }
  const createStack = options.createStack ?? ((c: StackConfig, io: StackIO) => new TcpIpStack(c, io));
  const request = await toSetRequest(cfg, { resolve: options.resolveEndpoint });
  const mtu = cfg.interface.mtu ?? 1420;
  const stackConfig: StackConfig = { ...options.stack, addresses: cfg.interface.addresses.map((a) => formatIp(a.bytes)), mtu };
  const tun = new NetstackTun({ name: options.name, mtu, clock: options.clock, createStack: (io) => createStack(stackConfig, io) });
  const device = new Device({ tun, bind: options.bind ?? await chooseBind(), clock: tun.clock, logger: options.logger, crypto: options.crypto });
  try {
    await device.applySet(request);
    await device.up();
  } catch (err) {
    await device.close('failed to start');
    throw err;
  }
  return new Netstack(cfg, device, tun, options);
}

export class Netstack {
  readonly config: WgQuickConfig;
  readonly device: Device;
  readonly tun: NetstackTun;
  readonly stack: TcpIpStackApi;
  /** Our tunnel addresses. */
  readonly addresses: readonly string[];
  private readonly resolver: TunnelResolver;
  private localNames: ((name: string) => string[]) | null = null;
  private readonly pings = new Map<number, { resolve: (r: PingResult) => void; sent: number; sequence: number }>();
  private pingSequence = 0;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly closeTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  /** Sockets still open (ours and the servers'), ended and drained by close(). */
  private readonly sockets = new Set<TunnelSocket>();
  private readonly servers = new Set<TunnelServer>();
  /** UDP sockets still open, closed by close()/destroy() so later sends fail instead of vanishing. */
  private readonly udpSockets = new Set<TunnelUdpSocket>();
  /**
   * Connections whose socket is gone while the stack still delivers their data and FIN (as a
   * kernel keeps a closed socket's data); bounded by the stack's connection limit.
   */
  private readonly lingering = new Set<TcpConnection>();
  private readonly driver: StackDriver;

  constructor(config: WgQuickConfig, device: Device, tun: NetstackTun, options: NetstackOptions = {}) {
    this.config = config;
    this.device = device;
    this.tun = tun;
    this.stack = tun.stack;
    this.addresses = config.interface.addresses.map((a) => formatIp(a.bytes));
    this.closeTimeoutMs = options.closeTimeoutMs ?? 10_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.driver = {
      now: () => tun.now(),
      poke: () => tun.poke(),
      linger: (conn) => {
        this.lingering.add(conn);
        conn.events = { onClose: () => this.lingering.delete(conn) };
      },
    };
    this.resolver = new TunnelResolver({
      servers: config.interface.dns.map(unbracket).filter((s) => ipFamily(s) !== 0),
      search: config.interface.dnsSearch,
      openSocket: () => this.udp(),
      openTcp: (server, port) => this.connect({ host: server, port }),
      timeoutMs: options.dnsTimeoutMs,
    });
    this.stack.onEchoReply = (reply) => {
      const waiting = this.pings.get(reply.id);
      if (!waiting || waiting.sequence !== reply.sequence) return;
      this.pings.delete(reply.id);
      waiting.resolve({ address: reply.from, time: this.tun.now() - waiting.sent });
    };
  }

  /** The UDP port the tunnel uses on the host. */
  get port(): number {
    return this.device.port;
  }

  /**
   * Whether `address` (an IP literal) is inside some peer's allowed IPs and we have a tunnel
   * address of its family to send from.
   */
  routable(address: string): boolean {
    const family = ipFamily(address);
    if (family === 0) return false;
    if (!this.addresses.some((a) => ipFamily(a) === family)) return false;
    return this.device.allowedIps.lookup(parseIp(address)) !== undefined;
  }

  /** An IP literal for `host` that the tunnel routes: resolved through the tunnel's DNS, checked against allowed IPs. */
  async route(host: string, port?: number): Promise<string> {
    this.checkOpen();
    const name = unbracket(host);
    if (ipFamily(name)) { this.checkRoute(name, port); return name; }
    const local = this.localNames?.(name) ?? [];
    const addresses = local.length > 0 ? local : await this.resolver.resolve(name);
    const usable = addresses.find((a) => this.routable(a));
    if (usable === undefined) {
      throw netError('EHOSTUNREACH', `${name} resolves to ${addresses.join(', ')}, outside every peer's allowed IPs: not sent (the tunnel fails closed)`, { hostname: name, port });
    }
    return usable;
  }

  private checkRoute(address: string, port?: number): void {
    if (this.routable(address)) return;
    const where = port === undefined ? address : formatHostPort(address, port);
    throw netError('EHOSTUNREACH', `${where} is outside every peer's allowed IPs: not sent (the tunnel fails closed)`, { address, port });
  }

  /** Resolves a name through the tunnel's DNS servers (A and AAAA). */
  resolve(name: string, options?: ResolveOptions): Promise<string[]> {
    this.checkOpen();
    const family = options?.family ?? 0;
    const local = (this.localNames?.(name) ?? []).filter((a) => family === 0 || ipFamily(a) === family);
    if (local.length > 0) return Promise.resolve(local);
    return this.resolver.resolve(name, options);
  }

  /**
   * Names answered before DNS (a layer above, such as the mesh's discovered members, sets it):
   * `lookup` returns a name's addresses, or none to ask the DNS servers.
   */
  setLocalNames(lookup: ((name: string) => string[]) | null): void {
    this.localNames = lookup;
  }

  /**
   * A TCP connection through the tunnel, returned at once like net.connect(): 'connect' when
   * established, 'error' (code ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ENOTFOUND...) otherwise.
   */
  connect(options: ConnectOptions): TunnelSocket {
    const socket = new TunnelSocket(this.driver, { allowHalfOpen: options.allowHalfOpen });
    socket.remotePort = options.port;
    this.track(socket);
    const open = async () => {
      if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
        throw netError('ERR_SOCKET_BAD_PORT', `bad TCP port ${options.port}`);
      }
      const address = await this.route(options.host, options.port);
      if (socket.destroyed) return;
      socket.remoteAddress = address;
      const conn = this.stack.tcpConnect({ address, port: options.port }, this.tun.now());
      this.tun.poke();
      socket.attach(conn, false);
    };
    open().catch((err: Error) => socket.destroy(err));
    armConnectTimeout(socket, this.tun.clock, options.timeoutMs ?? this.connectTimeoutMs, options.host, options.port);
    return socket;
  }

  /** Accepts TCP connections on `port` of our tunnel addresses (or just `address`). */
  listen(port: number, address?: string, options: TunnelSocketOptions = {}): TunnelServer {
    this.checkOpen();
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw netError('ERR_SOCKET_BAD_PORT', `bad TCP port ${port}`);
    const server = new TunnelServer(this.stack.tcpListen(port, address), this.driver, options, (s) => this.track(s));
    this.servers.add(server);
    server.once('close', () => this.servers.delete(server));
    return server;
  }

  private track(socket: TunnelSocket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /** A UDP socket on the tunnel (port 0 = ephemeral). */
  udp(port = 0, address?: string): TunnelUdpSocket {
    this.checkOpen();
    const socket = this.stack.udpBind(port, address);
    const udp = new TunnelUdpSocket(socket, this.tun, (host) => {
      const name = unbracket(host);
      if (ipFamily(name)) { this.checkRoute(name); return name; }
      return this.route(name);
    });
    this.udpSockets.add(udp);
    udp.once('close', () => this.udpSockets.delete(udp));
    return udp;
  }

  /** One ICMP echo through the tunnel; rejects with ETIMEDOUT. */
  async ping(host: string, options: PingOptions = {}): Promise<PingResult> {
    const address = await this.route(host);
    const timeoutMs = options.timeoutMs ?? 3000;
    const payload = new Uint8Array(options.size ?? 56);
    let id = randomInt(1, 65536);
    while (this.pings.has(id)) id = (id % 65535) + 1;
    const sequence = (this.pingSequence = (this.pingSequence + 1) & 0xffff);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(id);
        reject(netError('ETIMEDOUT', `no echo reply from ${address} within ${timeoutMs} ms`, { address }));
      }, timeoutMs);
      this.pings.set(id, { sequence, sent: this.tun.now(), resolve: (r) => { clearTimeout(timer); resolve(r); } });
      if (!this.stack.ping(address, id, sequence, payload, this.tun.now())) {
        clearTimeout(timer);
        this.pings.delete(id);
        reject(netError('EHOSTUNREACH', `cannot send an echo request to ${address}`, { address }));
        return;
      }
      this.tun.poke();
    });
  }

  /** WHATWG fetch through the tunnel (http: and https:). */
  fetch(input: string | URL | Request, init?: TunnelFetchInit): Promise<Response> {
    this.checkOpen();
    return tunnelFetch((host, port) => this.connect({ host, port }), input, init);
  }

  /**
   * Takes the tunnel down gracefully: stops the listeners, ends every open socket (its queued
   * writes go first) and waits until the stack has delivered everything it accepted, FIN
   * included, on every connection (also those whose socket already closed), and up to 2 s more
   * for the peers' FINs to arrive and be acknowledged (so a peer closing at the same time settles
   * too), then closes the UDP socket and stops the stack's timers. If that takes longer than `closeTimeoutMs`, the
   * remaining connections are reset, the tunnel still goes down, and the promise rejects with
   * ERR_NETSTACK_CLOSE_TIMEOUT. Later calls return the same promise.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    this.closing = this.drainAndClose();
    return this.closing;
  }

  /** Takes the tunnel down at once: every connection is reset (RST), nothing is drained. */
  destroy(): Promise<void> {
    if (this.closing) { this.resetAll(); return this.closing.catch(() => {}); }
    this.closed = true;
    this.resetAll();
    this.closing = this.device.close('destroyed');
    return this.closing;
  }

  private async drainAndClose(): Promise<void> {
    for (const server of this.servers) server.close();
    this.closeUdp();
    for (const s of this.sockets) if (!s.destroyed && !s.writableEnded) s.end();
    const deadline = performance.now() + this.closeTimeoutMs;
    // The stack reports no "FIN acknowledged" event, and this runs once per tunnel: poll.
    while (!this.settled() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    // Our FINs are acknowledged; a peer's FIN is usually a round trip behind. Acknowledging it
    // lets the peer settle too (two ends closing at once); a peer keeping its half open costs
    // at most the grace, and is not an error.
    const graceEnd = Math.min(deadline, performance.now() + FIN_WAIT_2_GRACE_MS);
    while (this.settled() && this.awaitingPeerFin() && performance.now() < graceEnd) await new Promise((r) => setTimeout(r, 10));
    const stuck = this.unsettled();
    // Without an error: an 'error' nobody listens for would crash the application on shutdown.
    if (stuck.connections === 0) for (const s of this.sockets) s.destroy();
    else this.resetAll();
    await this.device.close('closed');
    if (stuck.connections > 0) {
      throw netError('ERR_NETSTACK_CLOSE_TIMEOUT',
        `close: ${stuck.connections} connection(s) had not delivered ${stuck.bytes} byte(s) and their FIN within ${this.closeTimeoutMs} ms; reset them`);
    }
  }

  private settled(): boolean {
    for (const s of this.sockets) if (!s.settled) return false;
    for (const c of this.lingering) if (!sendSettled(c)) return false;
    return true;
  }

  private awaitingPeerFin(): boolean {
    for (const s of this.sockets) if (s.awaitingPeerFin) return true;
    for (const c of this.lingering) if (c.state === 'FIN-WAIT-2') return true;
    return false;
  }

  private unsettled(): { connections: number; bytes: number } {
    let connections = 0, bytes = 0;
    for (const s of this.sockets) if (!s.settled) { connections++; bytes += s.bufferedAmount + s.writableLength; }
    for (const c of this.lingering) if (!sendSettled(c)) { connections++; bytes += c.bufferedAmount; }
    return { connections, bytes };
  }

  /** UDP has nothing to drain: a datagram is sent or not when send() calls back. */
  private closeUdp(): void {
    for (const u of this.udpSockets) u.close();
  }

  private resetAll(): void {
    for (const server of this.servers) server.close();
    this.closeUdp();
    for (const s of this.sockets) s.resetAndDestroy();
    const now = this.tun.now();
    for (const c of this.lingering) c.abort(now);
    this.lingering.clear();
  }

  private checkOpen(): void {
    if (this.closed) throw netError('ERR_NETSTACK_CLOSED', 'the netstack is closed');
  }
}
