/**
 * Target `proxy`: what a local client can send to `wireweave proxy`: the SOCKS5 server
 * (greeting, RFC 1929 auth, CONNECT / UDP ASSOCIATE requests, any address type) and the HTTP
 * proxy (CONNECT and absolute-URI requests, Proxy-Authorization), each with and without auth,
 * on real localhost sockets, the tunnel replaced by a fake that records every dial: hosts in
 * 10.0.0.0/8 connect and echo, anything else fails with EHOSTUNREACH as outside allowed IPs.
 *
 * Invariants: nothing escapes (a proxy crash would be an uncaught exception); with auth
 * configured, no connection that did not present the right credentials reaches the tunnel;
 * every answer starts like its protocol's (0x05 / 0x01 for SOCKS5, "HTTP/1.1 " for HTTP); after
 * each batch every client connection is closed on the server side and every tunnel stream
 * the proxies opened is gone (nothing leaks).
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Duplex } from 'node:stream';
import type http from 'node:http';
import { startHttpProxy } from '../../src/netstack/http-proxy.ts';
import type { TunnelNet } from '../../src/netstack/relay.ts';
import { startSocks5 } from '../../src/netstack/socks5.ts';
import type { TunnelUdpSocket } from '../../src/netstack/udp.ts';
import type { FuzzTarget } from '../harness.ts';
import { invariant } from '../harness.ts';
import { mutate } from '../mutate.ts';
import { ProgramReader, ProgramWriter } from '../program.ts';
import type { FuzzRng } from '../rng.ts';
import { junk } from '../text.ts';

const USER = 'fuzzer', PASS = 's3cret!';
const SOCKS_AUTH = Buffer.from([1, USER.length, ...Buffer.from(USER), PASS.length, ...Buffer.from(PASS)]);
const HTTP_AUTH = `Basic ${Buffer.from(`${USER}:${PASS}`).toString('base64')}`;
const OP = { write: 0, settle: 1, end: 2, destroy: 3 } as const;
const KINDS = ['socks5', 'socks5-auth', 'http', 'http-auth'] as const;

/** A tunnel stream: connects (and echoes) inside 10.0.0.0/8, fails as outside allowed IPs elsewhere. */
class FakeTunnelSocket extends Duplex {
  localAddress = '10.0.0.1';
  localPort = 40000;
  connecting = true;

  constructor(host: string) {
    super({ allowHalfOpen: true });
    setImmediate(() => {
      if (this.destroyed) return;
      this.connecting = false;
      if (/^10\./.test(host)) this.emit('connect');
      else this.destroy(Object.assign(new Error(`${host} is outside the allowed IPs`), { code: 'EHOSTUNREACH' }));
    });
  }

  override _read(): void {}
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void): void { this.push(chunk); cb(); }
  override _final(cb: () => void): void { this.push(null); cb(); }
}

export interface ProxyCtx {
  servers: Map<(typeof KINDS)[number], net.Server | http.Server>;
  ports: Map<(typeof KINDS)[number], number>;
  /** Tunnel dials since the current input began. */
  dials: number;
  open: Set<Duplex>;
  udpOpen: number;
  /** Server-side sockets, destroyed at teardown so that a leak found cannot hang the run. */
  accepted: Set<net.Socket>;
}

function fakeTunnel(ctx: ProxyCtx): TunnelNet {
  return {
    connect: ({ host }) => {
      ctx.dials++;
      const s = new FakeTunnelSocket(host);
      ctx.open.add(s);
      s.once('close', () => ctx.open.delete(s));
      return s;
    },
    udp: () => {
      ctx.udpOpen++;
      const u = new EventEmitter() as unknown as TunnelUdpSocket;
      let closed = false;
      Object.assign(u, {
        send: (_m: unknown, _p: number, _a: string, cb?: (e: Error | null, n: number) => void) => cb?.(null, 0),
        close: () => { if (!closed) { closed = true; ctx.udpOpen--; } },
      });
      return u;
    },
  };
}

async function setup(): Promise<ProxyCtx> {
  const ctx: ProxyCtx = { servers: new Map(), ports: new Map(), dials: 0, open: new Set(), udpOpen: 0, accepted: new Set() };
  const tunnel = fakeTunnel(ctx);
  const timeouts = { handshakeTimeoutMs: 100 };
  const auth = { username: USER, password: PASS };
  ctx.servers.set('socks5', await startSocks5(tunnel, '127.0.0.1', 0, timeouts));
  ctx.servers.set('socks5-auth', await startSocks5(tunnel, '127.0.0.1', 0, { ...timeouts, auth }));
  ctx.servers.set('http', await startHttpProxy(tunnel, '127.0.0.1', 0, timeouts));
  ctx.servers.set('http-auth', await startHttpProxy(tunnel, '127.0.0.1', 0, { ...timeouts, auth }));
  for (const [k, s] of ctx.servers) {
    ctx.ports.set(k, (s.address() as AddressInfo).port);
    s.on('connection', (c: net.Socket) => { ctx.accepted.add(c); c.once('close', () => ctx.accepted.delete(c)); });
  }
  return ctx;
}

async function teardown(ctx: ProxyCtx): Promise<void> {
  for (const c of ctx.accepted) c.destroy();
  for (const s of ctx.servers.values()) {
    (s as http.Server).closeAllConnections?.();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

const immediate = () => new Promise<void>((r) => setImmediate(r));

/**
 * Whether any Proxy-Authorization header sent decodes to the right user:password. As leniently
 * as the proxy reads it (any whitespace JavaScript's \s knows, NBSP included; base64 padding
 * optional): the property is that the right password is needed, not how strictly it is parsed.
 */
function presentsHttpCredentials(bytes: Buffer): boolean {
  for (const m of bytes.toString('latin1').matchAll(/proxy-authorization:\s*basic\s+([A-Za-z0-9+/=]+)/gi)) {
    if (Buffer.from(m[1]!, 'base64').toString('latin1') === `${USER}:${PASS}`) return true;
  }
  return false;
}

async function run(ctx: ProxyCtx, input: Uint8Array): Promise<void> {
  const r = new ProgramReader(input);
  const kind = KINDS[r.u8() % KINDS.length]!;
  const sock = net.connect({ host: '127.0.0.1', port: ctx.ports.get(kind)! });
  const received: Buffer[] = [];
  const sent: Buffer[] = [];
  sock.on('data', (d: Buffer) => received.push(d));
  sock.on('error', () => {});
  await new Promise<void>((resolve) => { sock.once('connect', resolve); sock.once('close', () => resolve()); });
  ctx.dials = 0;
  while (!r.done) {
    switch (r.u8() % 4) {
      case OP.write: {
        const chunk = Buffer.from(r.blob());
        sent.push(chunk);
        if (sock.writable) sock.write(chunk);
        break;
      }
      case OP.settle: await immediate(); break;
      case OP.end: sock.end(); break;
      case OP.destroy: sock.destroy(); break;
    }
  }
  for (let i = 0; i < 4; i++) await immediate();
  sock.destroy();
  const bytes = Buffer.concat(sent);
  if (kind === 'socks5-auth') invariant(ctx.dials === 0 || bytes.includes(SOCKS_AUTH), 'SOCKS5 dialled the tunnel without the right credentials');
  if (kind === 'http-auth') invariant(ctx.dials === 0 || presentsHttpCredentials(bytes), 'the HTTP proxy dialled the tunnel without the right credentials');
  const answer = Buffer.concat(received);
  if (answer.length > 0) {
    if (kind.startsWith('socks5')) invariant(answer[0] === 5 || answer[0] === 1, () => `SOCKS5 answered ${answer.subarray(0, 8).toString('hex')}`);
    else invariant(answer.toString('latin1').startsWith('HTTP/1.1 '), () => `the HTTP proxy answered ${JSON.stringify(answer.subarray(0, 40).toString('latin1'))}`);
  }
}

async function check(ctx: ProxyCtx): Promise<void> {
  // Every connection of this batch was closed by the client: within the handshake timeout and
  // a little, the servers must hold none, and every tunnel stream must be gone.
  const count = async () => {
    let n = 0;
    for (const s of ctx.servers.values()) n += await new Promise<number>((resolve) => s.getConnections((_e, c) => resolve(c ?? 0)));
    return n;
  };
  const until = Date.now() + 3000;
  for (;;) {
    const connections = await count();
    if (connections === 0 && ctx.open.size === 0 && ctx.udpOpen === 0) return;
    invariant(Date.now() < until, `resources left after the clients hung up: ${connections} connections, ${ctx.open.size} tunnel streams, ${ctx.udpOpen} tunnel UDP sockets`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ------------------------------------------------------------------------------------ inputs

function socksBytes(rng: FuzzRng, auth: boolean): Buffer[] {
  const parts: Buffer[] = [];
  const methods = rng.chance(0.8) ? [auth ? 2 : 0, ...(rng.chance(0.3) ? [0, 2] : [])] : [...rng.bytes(rng.int(6))];
  parts.push(Buffer.from([rng.chance(0.95) ? 5 : rng.int(256), rng.chance(0.9) ? methods.length : rng.int(256), ...methods]));
  if (auth || rng.chance(0.1)) {
    if (rng.chance(0.6)) parts.push(SOCKS_AUTH);
    else {
      const u = Buffer.from(rng.chance(0.5) ? USER : junk(rng)), p = Buffer.from(rng.chance(0.5) ? 's3cret' : junk(rng));
      parts.push(Buffer.from([rng.chance(0.9) ? 1 : rng.int(3), u.length, ...u, p.length, ...p]));
    }
  }
  const atyp = rng.chance(0.9) ? rng.pick([1, 3, 4]) : rng.int(256);
  const addr = atyp === 1 ? [rng.pick([10, 192, 127]), rng.int(256), rng.int(256), rng.int(256)]
    : atyp === 4 ? [...rng.bytes(16)]
    : atyp === 3 ? (() => { const h = Buffer.from(rng.pick(['10.0.0.7', 'example.com', '', 'x'.repeat(255), junk(rng)])); return [rng.chance(0.9) ? h.length : rng.int(256), ...h]; })()
    : [...rng.bytes(rng.int(20))];
  parts.push(Buffer.from([rng.chance(0.95) ? 5 : rng.int(256), rng.pick([1, 1, 3, 2, rng.int(256)]), rng.chance(0.95) ? 0 : rng.int(256), atyp, ...addr, rng.int(256), rng.int(256)]));
  if (rng.chance(0.3)) parts.push(Buffer.from(rng.bytes(rng.length(100))));
  return parts;
}

function httpBytes(rng: FuzzRng, auth: boolean): Buffer[] {
  const target = rng.pick(['10.0.0.7:80', '[fd00::7]:443', '192.0.2.1:22', 'example.com:443', ':80', '10.0.0.7', '10.0.0.7:99999', junk(rng)]);
  const method = rng.pick(['CONNECT', 'GET', 'POST', 'get', 'PUT', junk(rng)]);
  const uri = method === 'CONNECT' ? target : rng.pick([`http://${target}/p?q=1`, `https://${target}/`, '/relative', `http://${junk(rng)}/`, junk(rng)]);
  const headers = [`Host: ${target}`];
  if (auth || rng.chance(0.1)) headers.push(`Proxy-Authorization: ${rng.chance(0.6) ? HTTP_AUTH : rng.pick(['Basic Zm9vOmJhcg==', 'Bearer x', junk(rng)])}`);
  if (rng.chance(0.2)) headers.push(rng.pick(['Transfer-Encoding: chunked', 'Content-Length: 5', 'Content-Length: -1', 'Connection: keep-alive, Upgrade', `X-Junk: ${junk(rng)}`, 'X'.repeat(rng.int(20000))]));
  let text = `${method} ${uri} HTTP/1.${rng.int(2)}\r\n${headers.join('\r\n')}\r\n\r\n`;
  if (rng.chance(0.3)) text += rng.pick(['hello', '0\r\n\r\n', '5\r\nhello\r\n0\r\n\r\n', junk(rng)]);
  if (rng.chance(0.15)) text += text; // pipelined
  return [Buffer.from(text, 'latin1')];
}

function generate(rng: FuzzRng, corpus: readonly Uint8Array[]): Uint8Array {
  if (corpus.length > 0 && rng.chance(0.25)) return mutate(rng, rng.pick(corpus), corpus, 8192);
  const kind = rng.int(KINDS.length);
  const w = new ProgramWriter().u8(kind);
  const bytes = Buffer.concat(kind < 2 ? socksBytes(rng, kind === 1) : httpBytes(rng, kind === 3));
  for (let at = 0; at < bytes.length;) {
    const n = rng.chance(0.6) ? bytes.length - at : rng.range(1, 24);
    w.op(OP.write).blob(bytes.subarray(at, at + n));
    at += n;
    if (rng.chance(0.3)) w.op(OP.settle);
  }
  if (rng.chance(0.3)) w.op(rng.chance(0.7) ? OP.end : OP.destroy);
  return w.finish();
}

function seeds(): Uint8Array[] {
  const prog = (kind: number, b: Buffer) => new ProgramWriter().u8(kind).op(OP.write).blob(b).op(OP.settle).finish();
  return [
    prog(0, Buffer.from([5, 1, 0, 5, 1, 0, 1, 10, 0, 0, 7, 0, 80])),
    prog(1, Buffer.concat([Buffer.from([5, 1, 2]), SOCKS_AUTH, Buffer.from([5, 3, 0, 1, 0, 0, 0, 0, 0, 0])])),
    prog(2, Buffer.from('CONNECT 10.0.0.7:443 HTTP/1.1\r\nHost: 10.0.0.7:443\r\n\r\n')),
    prog(3, Buffer.from(`GET http://10.0.0.7/ HTTP/1.1\r\nHost: 10.0.0.7\r\nProxy-Authorization: ${HTTP_AUTH}\r\n\r\n`)),
  ];
}

export const proxyTarget: FuzzTarget<ProxyCtx> = {
  name: 'proxy',
  description: 'the SOCKS5 and HTTP proxies (with and without auth) on localhost sockets, tunnel faked',
  batchSize: 1000,
  setup,
  teardown,
  seeds,
  generate,
  run,
  check,
};
