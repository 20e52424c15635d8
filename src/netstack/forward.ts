/**
 * Port forwards between the host and the tunnel, in the shapes of ssh -L and -R:
 *
 * - TCP local forward: listen on a host address, connect each client through the tunnel to
 *   HOST:HOSTPORT (resolved by the tunnel's DNS, checked against allowed IPs).
 * - UDP local forward: a host UDP port; each host client (address:port) gets its own tunnel UDP
 *   socket to HOST:HOSTPORT, so replies find their way back; idle flows expire.
 * - TCP reverse forward: listen on our tunnel address, connect each tunnel client to HOST:HOSTPORT
 *   on the host side (the one direction that dials from the host, by explicit configuration).
 */
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import type { Netstack } from './api.ts';
import { formatHostPort, ipFamily, parsePort, unbracket } from './addr.ts';
import { messageOf } from './errors.ts';
import { relay } from './relay.ts';
import type { LogLine } from './relay.ts';
import type { TunnelUdpSocket } from './udp.ts';

export interface ForwardSpec {
  /** Where to listen: host address for local forwards, tunnel address (or undefined = all) for reverse. */
  bindHost: string | undefined;
  bindPort: number;
  host: string;
  hostPort: number;
}

export interface Forward {
  /** "127.0.0.1:8080", where it actually listens. */
  readonly listening: string;
  /** Stops listening and closes its connections. */
  close(): Promise<void>;
}

/**
 * Parses `[BIND:]PORT:HOST:HOSTPORT` (IPv6 in brackets, as ssh). Null when malformed.
 */
export function parseForwardSpec(text: string): ForwardSpec | null {
  const parts: string[] = [];
  const re = /\[([^\]]*)\]|([^:[\]]*)/y;
  let pos = 0;
  for (;;) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) return null;
    parts.push(m[1] ?? m[2]!);
    pos = re.lastIndex;
    if (pos === text.length) break;
    if (text[pos] !== ':') return null;
    pos++;
  }
  if (parts.length !== 3 && parts.length !== 4) return null;
  const [bindHost, portText, host, hostPortText] = parts.length === 4 ? parts : [undefined, ...parts];
  const bindPort = parsePort(portText!, true);
  const hostPort = parsePort(hostPortText!);
  if (bindPort === null || hostPort === null || !host) return null;
  if (bindHost !== undefined && bindHost === '') return null;
  return { bindHost, bindPort, host, hostPort };
}

export function formatForwardSpec(s: ForwardSpec): string {
  const b = (h: string) => (h.includes(':') ? `[${h}]` : h);
  return `${s.bindHost !== undefined ? `${b(s.bindHost)}:` : ''}${s.bindPort}:${b(s.host)}:${s.hostPort}`;
}

/** Host TCP port → tunnel HOST:HOSTPORT. */
export async function forwardTcp(tunnel: Netstack, spec: ForwardSpec, log: LogLine = () => {}): Promise<Forward> {
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    client.on('error', () => client.destroy());
    client.pause();
    const remote = tunnel.connect({ host: spec.host, port: spec.hostPort, allowHalfOpen: true });
    remote.once('error', (err) => {
      log(`forward ${formatForwardSpec(spec)}: ${messageOf(err)}`);
      client.destroy();
    });
    remote.once('connect', () => {
      remote.removeAllListeners('error');
      relay(client, remote);
      client.resume();
    });
    // Destroyed without an error before it connected (the tunnel went down): nothing to relay.
    remote.once('close', () => { if (remote.connecting) client.destroy(); });
    client.once('close', () => { if (remote.connecting) remote.destroy(); });
  });
  await listenOn(server, spec.bindHost ?? '127.0.0.1', spec.bindPort);
  const a = server.address() as AddressInfo;
  return {
    listening: formatHostPort(a.address, a.port),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Tunnel TCP port (on our tunnel address) → host HOST:HOSTPORT. */
export async function reverseTcp(tunnel: Netstack, spec: ForwardSpec, log: LogLine = () => {}): Promise<Forward> {
  const server = tunnel.listen(spec.bindPort, spec.bindHost, { allowHalfOpen: true });
  server.on('connection', (remote) => {
    remote.pause();
    const local = net.connect({ host: unbracket(spec.host), port: spec.hostPort, allowHalfOpen: true });
    local.once('error', (err) => {
      log(`reverse forward ${formatForwardSpec(spec)}: ${messageOf(err)}`);
      remote.destroy();
    });
    local.once('connect', () => {
      local.removeAllListeners('error');
      relay(remote, local);
      remote.resume();
    });
  });
  const a = server.address();
  return {
    listening: formatHostPort(spec.bindHost ?? tunnel.addresses[0] ?? a.address, a.port),
    close: async () => { server.close(); },
  };
}

export interface UdpForwardOptions {
  /** A flow (one host client) without traffic for this long is forgotten (default 60 s). */
  idleMs?: number;
  /** Most flows at once; the least recently used goes (default 1024). */
  maxFlows?: number;
}

/** Host UDP port → tunnel HOST:HOSTPORT, one tunnel socket per host client. */
export async function forwardUdp(tunnel: Netstack, spec: ForwardSpec, log: LogLine = () => {}, options: UdpForwardOptions = {}): Promise<Forward> {
  const bindHost = spec.bindHost ?? '127.0.0.1';
  const socket = dgram.createSocket(ipFamily(bindHost) === 6 ? 'udp6' : 'udp4');
  const idleMs = options.idleMs ?? 60_000;
  const maxFlows = options.maxFlows ?? 1024;
  const flows = new Map<string, { tunnel: TunnelUdpSocket; last: number }>();
  const target = await tunnel.route(spec.host, spec.hostPort);
  const forget = (key: string) => {
    flows.get(key)?.tunnel.close();
    flows.delete(key);
  };
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [key, f] of flows) if (now - f.last > idleMs) forget(key);
  }, Math.min(idleMs, 10_000));
  sweep.unref();
  socket.on('message', (msg, rinfo) => {
    const key = formatHostPort(rinfo.address, rinfo.port);
    let flow = flows.get(key);
    if (!flow) {
      if (flows.size >= maxFlows) forget(flows.keys().next().value!);
      const t = tunnel.udp();
      t.on('message', (data: Buffer, from: { address: string; port: number }) => {
        if (from.address !== target || from.port !== spec.hostPort) return;
        const f = flows.get(key);
        if (f) f.last = Date.now();
        socket.send(data, rinfo.port, rinfo.address);
      });
      flow = { tunnel: t, last: Date.now() };
      flows.set(key, flow);
    } else {
      // Keep the map in least-recently-used order.
      flows.delete(key);
      flows.set(key, flow);
    }
    flow.last = Date.now();
    flow.tunnel.send(msg, spec.hostPort, target, (err) => {
      if (err) log(`udp forward ${formatForwardSpec(spec)}: ${messageOf(err)}`);
    });
  });
  socket.on('error', (err) => log(`udp forward ${formatForwardSpec(spec)}: ${messageOf(err)}`));
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(spec.bindPort, bindHost, () => { socket.off('error', reject); resolve(); });
  });
  const a = socket.address();
  return {
    listening: formatHostPort(a.address, a.port),
    close: async () => {
      clearInterval(sweep);
      for (const key of [...flows.keys()]) forget(key);
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

function listenOn(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
}
