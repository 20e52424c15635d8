/**
 * The hub on WebSockets (the `ws` package): one HTTP listener serves the mesh at /mesh (binary
 * frames, subprotocol wireweave-mesh.v1), Prometheus metrics at /metrics and /healthz. The
 * protocol is in hub.ts; this file only moves bytes and time.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import type { CryptoProvider } from '../../core/crypto.ts';
import type { Rng } from '../../core/rng.ts';
import type { Clock } from '../../device/clock.ts';
import { systemClock } from '../../device/clock.ts';
import { Hub } from './hub.ts';
import type { HubFederation, HubLimits, HubLink } from './hub.ts';
import { MAX_FRAME } from '../protocol/frames.ts';
import { renderHubMetrics } from './metrics.ts';

const MESH_PATH = '/mesh';
/** How soon a client paused by its rate limit is looked at again (its bucket refills meanwhile). */
const RESUME_CHECK_MS = 20;
const MESH_SUBPROTOCOL = 'wireweave-mesh.v1';

export interface HubServerOptions {
  host: string;
  port: number;
  crypto: CryptoProvider;
  rng: Rng;
  clock?: Clock;
  allow?: ReadonlySet<string>;
  networkToken?: Uint8Array;
  limits?: Partial<HubLimits>;
  federation?: HubFederation;
  log?: (line: string) => void;
}

export interface HubServer {
  readonly hub: Hub;
  readonly address: AddressInfo;
  /** ws://HOST:PORT/mesh as a client dials it. */
  readonly url: string;
  /** Graceful: tells every client, waits up to `graceMs` for them to go, then stops listening. */
  close(graceMs?: number): Promise<void>;
}

/** `::ffff:10.0.0.1` as 10.0.0.1: what a dual-stack socket reports for IPv4 clients. */
function plainAddress(address: string | undefined): string | null {
  if (!address) return null;
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export async function startHubServer(options: HubServerOptions): Promise<HubServer> {
  const clock = options.clock ?? systemClock;
  const log = options.log ?? (() => {});
  const hub = new Hub({
    crypto: options.crypto, rng: options.rng, log,
    ...(options.allow ? { allow: options.allow } : {}),
    ...(options.networkToken ? { networkToken: options.networkToken } : {}),
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.federation ? { federation: options.federation } : {}),
  });
  const startedAt = clock.now();
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(renderHubMetrics(hub, (clock.now() - startedAt) / 1000));
    } else if (req.method === 'GET' && req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('wireweave mesh hub: WebSocket at /mesh, metrics at /metrics\n');
    }
  });
  // Slow or idle HTTP clients must not hold sockets forever.
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  const wss = new WebSocketServer({
    server,
    path: MESH_PATH,
    maxPayload: MAX_FRAME,
    perMessageDeflate: false,
    handleProtocols: (protocols) => (protocols.has(MESH_SUBPROTOCOL) ? MESH_SUBPROTOCOL : false),
  });
  const sockets = new Set<WebSocket>();

  wss.on('connection', (ws, req) => {
    sockets.add(ws);
    const remoteAddress = plainAddress(req.socket.remoteAddress);
    let resumeTimer: ReturnType<typeof setTimeout> | null = null;
    const checkResume = () => {
      resumeTimer = null;
      if (hub.refill(clock.now(), client)) resumeTimer = setTimeout(checkResume, RESUME_CHECK_MS);
    };
    const link: HubLink = {
      remote: remoteAddress ? { address: remoteAddress, port: req.socket.remotePort ?? 0 } : null,
      send: (frame) => { if (ws.readyState === ws.OPEN) ws.send(frame, { binary: true }); },
      queuedBytes: () => ws.bufferedAmount,
      close: (code, reason) => ws.close(code, reason),
      pause: () => {
        ws.pause();
        resumeTimer ??= setTimeout(checkResume, RESUME_CHECK_MS);
      },
      resume: () => ws.resume(),
    };
    const client = hub.connect(clock.now(), link);
    ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        ws.close(1003, 'binary frames only');
        return;
      }
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      hub.receive(clock.now(), client, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    });
    ws.on('close', () => {
      if (resumeTimer) clearTimeout(resumeTimer);
      sockets.delete(ws);
      hub.disconnect(client);
    });
    // ws reports protocol violations (oversized or malformed WebSocket frames) here, then closes.
    ws.on('error', () => {});
  });
  wss.on('error', () => {});

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const ticker = setInterval(() => hub.tick(clock.now()), 1000);
  ticker.unref();
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  return {
    hub,
    address,
    url: `ws://${host}:${address.port}${MESH_PATH}`,
    async close(graceMs = 2000): Promise<void> {
      clearInterval(ticker);
      hub.close();
      const deadline = Date.now() + graceMs;
      while (sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const ws of sockets) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
