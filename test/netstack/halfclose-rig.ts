/**
 * One upload/download through a relay with a chosen order of half-closes, hashed at both ends
 * (issue 11). Shared by test/netstack/halfclose.test.ts and bench/halfclose-soak.ts.
 *
 * alice (10.0.0.1) runs the relays on the host side; bob (10.0.0.2) is the far end inside the
 * tunnel. Paths: SOCKS5 CONNECT, HTTP CONNECT, a TCP forward (host → tunnel), a reverse TCP
 * forward (tunnel → host) and alice's in-process connect(). Each transfer gets its own server
 * (and forward), so the server knows its plan before a byte arrives.
 *
 * Orders: 'client-first' (the client sends and ends; the server answers after the client's end),
 * 'server-first' (the server sends and ends at once, as `nc -l < /dev/null`; the client sends only
 * after the server's end), 'both' (both send and end at once).
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { MemoryNetwork } from '../../src/device/bind-memory.ts';
import { forwardTcp, reverseTcp } from '../../src/netstack/forward.ts';
import { startHttpProxy } from '../../src/netstack/http-proxy.ts';
import { startSocks5 } from '../../src/netstack/socks5.ts';
import { seeded } from '../support/udp-shim.ts';
import { makePair } from './helpers.ts';
import type { Pair, PairOptions } from './helpers.ts';

export const PATHS = ['socks5', 'http-connect', 'forward-tcp', 'reverse-tcp', 'connect'] as const;
export type RelayPath = (typeof PATHS)[number];
export const ORDERS = ['client-first', 'server-first', 'both'] as const;
export type CloseOrder = (typeof ORDERS)[number];

export interface Impairment {
  /** Probability that a datagram is lost. */
  loss: number;
  /** Probability that a datagram is held back 1..delayMax ms (later ones overtake it). */
  reorder: number;
  /** Probability that a datagram is delivered twice. */
  dup?: number;
  delayMax?: number;
  /** Every datagram is delivered this many ms later (a path with a round-trip time). */
  latency?: number;
  /**
   * Bytes per millisecond each direction carries (a bottleneck link, so that the relays' queues
   * fill as they do in front of a real network); beyond 100 ms of queue, datagrams are dropped.
   */
  rate?: number;
  seed?: number;
}

export interface ImpairCounters { lost: number; reordered: number; duplicated: number; queueDropped: number }

/**
 * Loss, reordering and duplication on a MemoryNetwork, with test/support/udp-shim.ts's seeded
 * generator and its rules (each datagram independently). Returns live counters.
 */
export function impair(network: MemoryNetwork, opts: Impairment): ImpairCounters {
  const random = seeded(opts.seed ?? 1);
  const delayMax = opts.delayMax ?? 10;
  const counters: ImpairCounters = { lost: 0, reordered: 0, duplicated: 0, queueDropped: 0 };
  // Datagrams we re-deliver ourselves pass the filter once.
  const passing = new Set<Uint8Array>();
  // When each direction's link is free again (performance.now() ms).
  const linkFree = new Map<string, number>();
  network.filter = (datagram, from, to) => {
    if (passing.delete(datagram)) return true;
    if (random() < opts.loss) { counters.lost++; return false; }
    let base = opts.latency ?? 0;
    if (opts.rate) {
      const now = performance.now();
      const start = Math.max(now, linkFree.get(from.address) ?? 0);
      if (start - now > 100) { counters.queueDropped++; return false; }
      const done = start + datagram.length / opts.rate;
      linkFree.set(from.address, done);
      base += Math.ceil(done - now);
    }
    const later = (delay: number): void => {
      const copy = datagram.slice();
      setTimeout(() => { passing.add(copy); network.deliver(copy, from, to); }, delay);
    };
    let now = base === 0;
    if (random() < opts.reorder) { counters.reordered++; now = false; later(base + 1 + Math.floor(random() * delayMax)); }
    else if (!now) later(base);
    if (random() < (opts.dup ?? 0)) { counters.duplicated++; later(base + Math.floor(random() * delayMax)); }
    return now;
  };
  return counters;
}

export interface Rig {
  pair: Pair;
  socksPort: number;
  httpPort: number;
  close(): Promise<void>;
}

export async function makeRig(opts: PairOptions = {}): Promise<Rig> {
  const pair = await makePair(opts);
  // bob has no Endpoint for alice: he learns it from alice's handshake, before any reverse dial.
  await pair.alice.ping('10.0.0.2', { timeoutMs: 10_000 });
  const socks = await startSocks5(pair.alice, '127.0.0.1', 0);
  const http = await startHttpProxy(pair.alice, '127.0.0.1', 0);
  return {
    pair,
    socksPort: (socks.address() as AddressInfo).port,
    httpPort: (http.address() as AddressInfo).port,
    close: async () => {
      socks.close();
      http.closeAllConnections();
      http.close();
      await pair.close();
    },
  };
}

export interface Plan {
  path: RelayPath;
  order: CloseOrder;
  upload: number;
  download: number;
  /** The server reads at most this many bytes per ms (a slow reader: queues fill behind it). */
  readRate?: number;
}

export interface Side { bytes: number; sha: string }

export interface TransferResult {
  plan: Plan;
  /** What the client wrote and what the server read up to its end. */
  uploadSent: Side;
  uploadReceived: Side;
  downloadSent: Side;
  downloadReceived: Side;
  /** Both directions arrived whole and each side saw exactly one end. */
  ok: boolean;
  /** Errors either end saw. */
  errors: string[];
}

const CHUNK = 64 * 1024;
let nextPort = 20000;
function tunnelPort(): number {
  nextPort = nextPort >= 60000 ? 20000 : nextPort + 1;
  return nextPort;
}

class Hasher {
  private readonly h = createHash('sha256');
  bytes = 0;
  update(b: Uint8Array): void { this.h.update(b); this.bytes += b.length; }
  done(): Side { return { bytes: this.bytes, sha: this.h.digest('hex') }; }
}

/** Writes `total` random bytes with backpressure, then ends. */
async function send(s: Duplex, total: number, h: Hasher): Promise<void> {
  let left = total;
  while (left > 0 && !s.destroyed) {
    const chunk = randomBytes(Math.min(CHUNK, left));
    left -= chunk.length;
    h.update(chunk);
    if (!s.write(chunk)) await drainOrClose(s);
  }
  if (!s.destroyed) s.end();
}

function drainOrClose(s: Duplex): Promise<void> {
  return new Promise((resolve) => {
    const done = () => { s.off('drain', done); s.off('close', done); resolve(); };
    s.on('drain', done);
    s.on('close', done);
  });
}

interface Receiving { hasher: Hasher; ended: Promise<void>; ends: () => number }

function receive(s: Duplex, errors: string[], who: string, first?: Buffer, readRate?: number): Receiving {
  const hasher = new Hasher();
  if (first && first.length > 0) hasher.update(first);
  let ends = 0;
  const ended = new Promise<void>((resolve) => {
    s.on('data', (c: Buffer) => {
      hasher.update(c);
      if (readRate) { s.pause(); setTimeout(() => s.resume(), c.length / readRate); }
    });
    s.on('end', () => { ends++; resolve(); });
    s.on('close', () => resolve());
    s.on('error', (e: Error) => { errors.push(`${who}: ${e.message}`); resolve(); });
  });
  return { hasher, ended, ends: () => ends };
}

/** The far end: sends `download` bytes and ends, at once or after the client's end. */
function serve(s: Duplex, plan: Plan, errors: string[]): Promise<{ received: Side; sent: Side; ends: number }> {
  const r = receive(s, errors, 'server', undefined, plan.readRate);
  const sent = new Hasher();
  const sending = plan.order === 'client-first'
    ? r.ended.then(() => send(s, plan.download, sent))
    : send(s, plan.download, sent);
  return Promise.all([r.ended, sending]).then(() => ({ received: r.hasher.done(), sent: sent.done(), ends: r.ends() }));
}

/** Reads from `s` until `done(buffer)` gives the length of a complete reply; returns [reply, rest]. */
function readReply(s: net.Socket, done: (b: Buffer) => number): Promise<[Buffer, Buffer]> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const n = done(buf);
      if (n > 0) { s.off('data', onData); s.off('end', onEnd); s.pause(); resolve([buf.subarray(0, n), buf.subarray(n)]); }
    };
    const onEnd = () => reject(new Error(`the proxy closed during the handshake (${buf.length} bytes)`));
    s.on('data', onData);
    s.once('end', onEnd);
    s.once('error', reject);
  });
}

export async function dialProxy(rig: Rig, path: 'socks5' | 'http-connect', port: number): Promise<{ socket: net.Socket; rest: Buffer }> {
  const s = net.connect({ host: '127.0.0.1', port: path === 'socks5' ? rig.socksPort : rig.httpPort, allowHalfOpen: true });
  await once(s, 'connect');
  if (path === 'socks5') {
    s.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 10, 0, 0, 2, port >> 8, port & 0xff]));
    const [reply, rest] = await readReply(s, (b) => (b.length >= 12 ? 12 : 0));
    if (reply[1] !== 0 || reply[3] !== 0) throw new Error(`SOCKS5 refused: ${reply.toString('hex')}`);
    return { socket: s, rest };
  }
  s.write(`CONNECT 10.0.0.2:${port} HTTP/1.1\r\nHost: 10.0.0.2:${port}\r\n\r\n`);
  const [reply, rest] = await readReply(s, (b) => { const i = b.indexOf('\r\n\r\n'); return i < 0 ? 0 : i + 4; });
  if (!/^HTTP\/1\.1 200/.test(reply.toString('latin1'))) throw new Error(`CONNECT refused: ${reply.toString('latin1').split('\r\n')[0]}`);
  return { socket: s, rest };
}

/** Runs one transfer; `timeoutMs` bounds the wait for both ends (a stall counts as failure). */
export async function transfer(rig: Rig, plan: Plan, timeoutMs = 120_000): Promise<TransferResult> {
  const { alice, bob } = rig.pair;
  const errors: string[] = [];
  const port = tunnelPort();
  const cleanup: (() => unknown)[] = [];
  let served!: Promise<{ received: Side; sent: Side; ends: number }>;
  let onAccepted!: () => void;
  const accepted = new Promise<void>((resolve) => { onAccepted = resolve; });
  let serverSocket: Duplex | undefined;
  const onConnection = (s: Duplex) => { serverSocket = s; served = serve(s, plan, errors); onAccepted(); };
  let hostServer: net.Server | undefined;
  if (plan.path === 'reverse-tcp') {
    const host = net.createServer({ allowHalfOpen: true }, onConnection);
    hostServer = host;
    cleanup.push(() => host.close());
    await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
  } else {
    const server = bob.listen(port, undefined, { allowHalfOpen: true });
    server.on('connection', onConnection);
    cleanup.push(() => server.close());
  }

  let client: Duplex;
  let rest: Buffer | undefined;
  if (plan.path === 'socks5' || plan.path === 'http-connect') {
    ({ socket: client, rest } = await dialProxy(rig, plan.path, port));
  } else if (plan.path === 'forward-tcp') {
    const f = await forwardTcp(alice, { bindHost: '127.0.0.1', bindPort: 0, host: '10.0.0.2', hostPort: port });
    cleanup.push(() => f.close());
    client = net.connect({ host: '127.0.0.1', port: Number(f.listening.split(':').pop()), allowHalfOpen: true });
    await once(client, 'connect');
  } else if (plan.path === 'reverse-tcp') {
    const hostPort = (hostServer!.address() as AddressInfo).port;
    const f = await reverseTcp(alice, { bindHost: undefined, bindPort: port, host: '127.0.0.1', hostPort });
    cleanup.push(() => f.close());
    client = bob.connect({ host: '10.0.0.1', port, allowHalfOpen: true });
    await once(client, 'connect');
  } else {
    client = alice.connect({ host: '10.0.0.2', port, allowHalfOpen: true });
    await once(client, 'connect');
  }

  const got = receive(client, errors, 'client', rest);
  if (client instanceof net.Socket) client.resume();
  const sent = new Hasher();
  const uploading = plan.order === 'server-first'
    ? got.ended.then(() => send(client, plan.upload, sent))
    : send(client, plan.upload, sent);

  // Which part of the transfer is still waiting, for the report of a stall.
  const progress = { served: false, clientEnded: false, uploaded: false };
  void accepted.then(() => served.then(() => { progress.served = true; }));
  void got.ended.then(() => { progress.clientEnded = true; });
  void uploading.then(() => { progress.uploaded = true; });

  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<'stalled'>((resolve) => { timer = setTimeout(() => resolve('stalled'), timeoutMs); });
  const outcome = await Promise.race([
    (async () => {
      await accepted;
      const [server] = await Promise.all([served, got.ended, uploading]);
      return server;
    })(),
    stalled,
  ]);
  clearTimeout(timer);
  const stallReport = outcome === 'stalled';
  const empty: Side = { bytes: 0, sha: '' };
  if (stallReport) {
    errors.push(`stalled for ${timeoutMs} ms (server done ${progress.served}, client saw end ${progress.clientEnded}, ` +
      `upload written ${progress.uploaded}, client got ${got.hasher.bytes} B; client ${socketState(client)}; server ${serverSocket ? socketState(serverSocket) : 'none'})`);
  }
  client.destroy();
  for (const c of cleanup) await c();
  const server = outcome === 'stalled' ? { received: empty, sent: empty, ends: 0 } : outcome;
  const uploadSent = sent.done();
  const downloadReceived = got.hasher.done();
  const ok = outcome !== 'stalled' &&
    server.received.sha === uploadSent.sha && server.received.bytes === plan.upload &&
    downloadReceived.sha === server.sent.sha && downloadReceived.bytes === plan.download &&
    server.ends === 1 && got.ends() === 1;
  return { plan, uploadSent, uploadReceived: server.received, downloadSent: server.sent, downloadReceived, ok, errors };
}

/**
 * A client of a host-side path to bob's tunnel `port`: through a proxy (paused after its reply;
 * `rest` is what came after it), a new forward, or connect().
 */
export async function openClient(rig: Rig, path: 'socks5' | 'http-connect' | 'forward-tcp' | 'connect', port: number): Promise<{ client: Duplex; rest?: Buffer; close: () => Promise<void> }> {
  if (path === 'socks5' || path === 'http-connect') {
    const { socket, rest } = await dialProxy(rig, path, port);
    return { client: socket, rest, close: async () => {} };
  }
  if (path === 'forward-tcp') {
    const f = await forwardTcp(rig.pair.alice, { bindHost: '127.0.0.1', bindPort: 0, host: '10.0.0.2', hostPort: port });
    const client = net.connect({ host: '127.0.0.1', port: Number(f.listening.split(':').pop()), allowHalfOpen: true });
    await once(client, 'connect');
    return { client, close: () => f.close() };
  }
  const client = rig.pair.alice.connect({ host: '10.0.0.2', port, allowHalfOpen: true });
  await once(client, 'connect');
  return { client, close: async () => {} };
}

export function describeResult(r: TransferResult): string {
  const p = r.plan;
  return `${p.path} ${p.order} up ${r.uploadReceived.bytes}/${p.upload} down ${r.downloadReceived.bytes}/${p.download}` +
    (r.errors.length ? ` errors: ${r.errors.join('; ')}` : '');
}

/** A socket's stream and TCP state in one line (internals read loosely: for a stall report only). */
function socketState(s: Duplex): string {
  const io = s as unknown as { bytesRead?: number; bytesWritten?: number };
  const stream = `read ${io.bytesRead} B, wrote ${io.bytesWritten} B, writable ${s.writableLength} B, readable ${s.readableLength} B, paused ${s.isPaused()}, ended ${s.writableEnded}/${s.readableEnded}`;
  const conn = (s as unknown as { conn?: Record<string, unknown> | null }).conn;
  if (!conn) return `{${stream}}`;
  const f = (k: string): unknown => conn[k];
  const buf = f('sendBuf') as { length?: number } | undefined;
  const tcp = ['state', 'sndUna', 'sndNxt', 'sndMax', 'sndWnd', 'rcvNxt', 'sndBufSize', 'rcvBufSize', 'writeBlocked', 'finQueued', 'finAcked', 'rtxAt', 'persistAt', 'unreleased']
    .map((k) => `${k}=${String(f(k))}`).join(' ');
  return `{${stream}; ${tcp} sendBuf=${buf?.length}}`;
}
