/**
 * An HTTP proxy whose connections go through the tunnel: CONNECT (for https and anything else)
 * and absolute-URI forwarding of plain http requests (RFC 9112 §3.2.2). Optional Basic
 * Proxy-Authorization.
 *
 * Parsing is node:http's (bounded header size; garbage gets 400 and the connection is closed);
 * a request whose headers do not arrive within `handshakeTimeoutMs` gets 408. Fails closed: a
 * destination outside the peers' allowed IPs gets 502 with the reason, and is never dialled from
 * the host.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { timingSafeEqual } from 'node:crypto';
import { splitHostPort, unbracket } from './addr.ts';
import { messageOf } from './errors.ts';
import { httpStatusFor, relay } from './relay.ts';
import type { LogLine, TunnelNet } from './relay.ts';

export interface HttpProxyOptions {
  auth?: { username: string; password: string };
  /** Time for a client to send its request headers (default 10 s). */
  handshakeTimeoutMs?: number;
  log?: LogLine;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus the proxy's own, not passed on. */
const HOP_BY_HOP = new Set([
  'connection', 'proxy-connection', 'keep-alive', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer',
  'transfer-encoding', 'upgrade',
]);

export async function startHttpProxy(tunnel: TunnelNet, host: string, port: number, options: HttpProxyOptions = {}): Promise<http.Server> {
  const timeout = options.handshakeTimeoutMs ?? 10_000;
  const log = options.log ?? (() => {});
  const server = http.createServer({
    headersTimeout: timeout,
    requestTimeout: 0,
    connectionsCheckingInterval: Math.min(1000, timeout),
    keepAliveTimeout: 5000,
  });
  server.on('request', (req, res) => forward(tunnel, req, res, options, log));
  server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => tunnelConnect(tunnel, req, socket as Socket, head, options, log));
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    if ((socket as Socket).writable) socket.end(`HTTP/1.1 ${timedOut ? '408 Request Timeout' : '400 Bad Request'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  return server;
}

function authorized(req: http.IncomingMessage, options: HttpProxyOptions): boolean {
  if (!options.auth) return true;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(req.headers['proxy-authorization'] ?? '');
  if (!m) return false;
  const given = Buffer.from(m[1]!, 'base64');
  const want = Buffer.from(`${options.auth.username}:${options.auth.password}`);
  return given.length === want.length && timingSafeEqual(given, want);
}

const AUTH_REQUIRED = 'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="wireweave"\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';

function plainResponse(status: number, reason: string): string {
  const body = `${reason}\n`;
  return `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

function tunnelConnect(tunnel: TunnelNet, req: http.IncomingMessage, client: Socket, head: Buffer, options: HttpProxyOptions, log: LogLine): void {
  client.on('error', () => client.destroy());
  // The socket node:http hands over is not being read: read on (discarding) after refusing, or
  // data the client sent after its request hides its EOF and the half-open socket never closes
  // (found by fuzz/targets/proxy.ts).
  const refuse = (text: string) => { client.end(text); client.resume(); };
  if (!authorized(req, options)) { refuse(AUTH_REQUIRED); return; }
  const target = splitHostPort(req.url ?? '');
  if (!target) { refuse(plainResponse(400, 'CONNECT needs host:port')); return; }
  const remote = tunnel.connect({ host: unbracket(target.host), port: target.port, allowHalfOpen: true });
  remote.once('error', (err: NodeJS.ErrnoException) => {
    log(`http-proxy: CONNECT ${req.url} failed: ${messageOf(err)}`);
    if (client.writable) refuse(plainResponse(httpStatusFor(err.code), `wireweave: ${messageOf(err)}`));
  });
  // Destroyed without an error before it connected (the tunnel closing): still a failed CONNECT.
  const onGone = () => { if ((remote as { connecting?: boolean }).connecting && client.writable) refuse(plainResponse(502, 'wireweave: the tunnel closed')); };
  remote.once('close', onGone);
  remote.once('connect', () => {
    remote.removeAllListeners('error');
    remote.off('close', onGone);
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) remote.write(head);
    relay(client, remote);
  });
  client.once('close', () => { if ((remote as { connecting?: boolean }).connecting) remote.destroy(); });
}

function forward(tunnel: TunnelNet, req: http.IncomingMessage, res: http.ServerResponse, options: HttpProxyOptions, log: LogLine): void {
  const fail = (status: number, reason: string) => {
    if (res.headersSent) { res.destroy(); return; }
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
    res.end(`${reason}\n`);
  };
  if (!authorized(req, options)) {
    res.writeHead(407, { 'proxy-authenticate': 'Basic realm="wireweave"', connection: 'close' });
    res.end();
    return;
  }
  let url: URL;
  try {
    url = new URL(req.url ?? '');
  } catch {
    fail(400, 'wireweave: a proxy request needs an absolute http:// URI');
    return;
  }
  if (url.protocol !== 'http:') { fail(400, `wireweave: only http:// is forwarded; use CONNECT for ${url.protocol}`); return; }
  const headers: http.OutgoingHttpHeaders = {};
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    if (HOP_BY_HOP.has(name.toLowerCase())) continue;
    const prev = headers[name];
    headers[name] = prev === undefined ? req.rawHeaders[i + 1]! : [...(Array.isArray(prev) ? prev : [String(prev)]), req.rawHeaders[i + 1]!];
  }
  if (req.headers['transfer-encoding']) headers['transfer-encoding'] = 'chunked';
  headers['connection'] = 'close';
  const host = unbracket(url.hostname);
  const port = url.port ? Number(url.port) : 80;
  const upstream = http.request({
    method: req.method,
    path: url.pathname + url.search,
    headers,
    setHost: false,
    createConnection: (() => tunnel.connect({ host, port })) as unknown as http.RequestOptions['createConnection'],
  });
  upstream.on('error', (err: NodeJS.ErrnoException) => {
    log(`http-proxy: ${req.method} ${url.origin} failed: ${messageOf(err)}`);
    fail(httpStatusFor(err.code), `wireweave: ${messageOf(err)}`);
  });
  upstream.on('response', (up) => {
    const out: http.OutgoingHttpHeaders = {};
    for (let i = 0; i + 1 < up.rawHeaders.length; i += 2) {
      const name = up.rawHeaders[i]!;
      if (HOP_BY_HOP.has(name.toLowerCase())) continue;
      const prev = out[name];
      out[name] = prev === undefined ? up.rawHeaders[i + 1]! : [...(Array.isArray(prev) ? prev : [String(prev)]), up.rawHeaders[i + 1]!];
    }
    res.writeHead(up.statusCode ?? 502, up.statusMessage, out);
    up.pipe(res);
    up.on('error', () => res.destroy());
  });
  req.pipe(upstream);
  res.on('close', () => { if (!res.writableFinished) upstream.destroy(); });
}
