/**
 * Target `netstack`: IP packets out of the tunnel into the userspace stack (`TcpIpStack.input`):
 * what a peer can send to a rootless `wireweave proxy`. Stack A is fuzzed; B is an honest
 * stack with a TCP connection to A's port 80 and a UDP socket. A program mixes raw bytes,
 * B's genuine packets with bits flipped or cut short (checksums optionally repaired so they get
 * past the IP layer), TCP segments crafted around the live connection's sequence numbers
 * (any flags, window, options, payload), IPv4 fragments, UDP and ICMP, and time.
 *
 * Invariants: input never throws and the stack counts no internal error (it catches its own
 * bugs as `internalErrors`); tick never leaves a deadline due; the wire goes quiet; after each
 * batch TCP still carries data both ways (on a new connection if the fuzzer legitimately reset
 * the old one — RFC 5961 accepts an exact RST) and UDP gets through; connections stay bounded.
 */
import { parseIp } from '../../src/core/ip-address.ts';
import { seededRng } from '../../src/core/rng.ts';
import { finish, pseudoHeaderSum, sum16 } from '../../src/core/checksum.ts';
import { TcpIpStack } from '../../src/netstack/stack/stack.ts';
import type { TcpConnection, UdpSocket } from '../../src/netstack/stack/types.ts';
import type { FuzzTarget } from '../harness.ts';
import { invariant } from '../harness.ts';
import { mutate } from '../mutate.ts';
import { applyMutationSpec, ProgramReader, ProgramWriter, writeMutationSpec } from '../program.ts';
import type { FuzzRng } from '../rng.ts';

const OP = { raw: 0, tweak: 1, tcp: 2, bData: 3, bUdp: 4, bPing: 5, time: 6, fragment: 7, aData: 8, crafted: 9 } as const;
const OPS = 10;
const TIME_STEPS = [0, 1, 50, 200, 1000, 5000, 60_000, 200_000];
const POOL = 16;
const MAX_STEPS = 20_000;
const A4 = parseIp('10.0.0.1'), B4 = parseIp('10.0.0.2');

export interface StackCtx {
  now: number;
  a: TcpIpStack;
  b: TcpIpStack;
  queue: { to: 'a' | 'b'; data: Uint8Array }[];
  /** Genuine packets B sent to A (a ring). */
  pool: Uint8Array[];
  poolNext: number;
  /** The newest genuine TCP segment B sent to A: sequence numbers to craft around. */
  lastTcp: Uint8Array | null;
  client: TcpConnection | null;
  server: TcpConnection | null;
  udpA: UdpSocket;
  udpB: UdpSocket;
  gotAtA: string;
  gotAtB: string;
  udpAtA: number;
  checks: number;
}

function pump(ctx: StackCtx): void {
  for (let steps = 0; ctx.queue.length > 0; steps++) {
    invariant(steps < MAX_STEPS, 'packet storm: the wire never went quiet');
    const q = ctx.queue.shift()!;
    (q.to === 'a' ? ctx.a : ctx.b).input(q.data, ctx.now);
    noInternalErrors(ctx);
  }
}

function noInternalErrors(ctx: StackCtx): void {
  for (const s of [ctx.a, ctx.b]) {
    if (s.counters.internalErrors > 0) {
      const e = s.lastInternalError;
      throw e instanceof Error ? e : new Error(`internal error in the stack: ${String(e)}`);
    }
  }
}

function advanceTo(ctx: StackCtx, until: number): void {
  for (let steps = 0; ; steps++) {
    invariant(steps < MAX_STEPS, 'timers keep firing without time passing');
    const t = Math.min(ctx.a.nextDeadline(), ctx.b.nextDeadline());
    if (t > until) break;
    ctx.now = Math.max(ctx.now, t);
    for (const s of [ctx.a, ctx.b]) if (s.nextDeadline() <= ctx.now) s.tick(ctx.now);
    noInternalErrors(ctx);
    for (const s of [ctx.a, ctx.b]) invariant(s.nextDeadline() > ctx.now, 'tick left a deadline due');
    pump(ctx);
  }
  ctx.now = Math.max(ctx.now, until);
}

function connect(ctx: StackCtx): void {
  ctx.client = ctx.b.tcpConnect({ address: '10.0.0.1', port: 80 }, ctx.now);
  const client = ctx.client;
  client.events = {
    onData: (d) => { ctx.gotAtB = (ctx.gotAtB + new TextDecoder().decode(d)).slice(-64); client.release(d.length, ctx.now); },
    onClose: () => { if (ctx.client === client) ctx.client = null; },
  };
  pump(ctx);
}

export function setupStack(): StackCtx {
  const ctx = { now: 0, queue: [], pool: [], poolNext: 0, lastTcp: null, client: null, server: null, gotAtA: '', gotAtB: '', udpAtA: 0, checks: 0 } as unknown as StackCtx;
  ctx.a = new TcpIpStack({ addresses: ['10.0.0.1', 'fd00::1'], rng: seededRng(21) }, { output: (p) => ctx.queue.push({ to: 'b', data: p.slice() }) });
  ctx.b = new TcpIpStack({ addresses: ['10.0.0.2', 'fd00::2'], rng: seededRng(22) }, {
    output: (p) => {
      const copy = p.slice();
      if (ctx.pool.length < POOL) ctx.pool.push(copy);
      else ctx.pool[ctx.poolNext++ % POOL] = copy;
      if (copy[0]! >> 4 === 4 && copy[9] === 6) ctx.lastTcp = copy;
      ctx.queue.push({ to: 'a', data: p.slice() });
    },
  });
  const listener = ctx.a.tcpListen(80);
  listener.onConnection = (c) => {
    ctx.server = c;
    c.events = {
      onData: (d) => { ctx.gotAtA = (ctx.gotAtA + new TextDecoder().decode(d)).slice(-64); c.release(d.length, ctx.now); },
      onClose: () => { if (ctx.server === c) ctx.server = null; },
    };
  };
  ctx.udpA = ctx.a.udpBind(53);
  ctx.udpA.onMessage = () => { ctx.udpAtA++; };
  ctx.udpB = ctx.b.udpBind(5353);
  connect(ctx);
  invariant(ctx.server !== null && ctx.client?.state === 'ESTABLISHED', 'setup: no connection');
  return ctx;
}

// ------------------------------------------------------------------------------- packets

/** Recomputes the IPv4 header checksum and, for an unfragmented TCP/UDP/ICMP packet, its checksum. */
function repairChecksums(p: Uint8Array, fixLength: boolean): void {
  const v = p.length > 0 ? p[0]! >> 4 : 0;
  if (v === 4 && p.length >= 20) {
    const ihl = (p[0]! & 15) * 4;
    if (fixLength) { p[2] = p.length >> 8; p[3] = p.length & 0xff; }
    if (ihl < 20 || ihl > p.length) return;
    p[10] = p[11] = 0;
    const c = finish(sum16(p, 0, ihl));
    p[10] = c >> 8; p[11] = c & 0xff;
    const total = Math.min((p[2]! << 8) | p[3]!, p.length);
    const fragmented = (p[6]! & 0x3f) !== 0 || p[7] !== 0;
    if (!fragmented && total > ihl) transportChecksum(p, ihl, total, p[9]!, p.subarray(12, 16), p.subarray(16, 20), false);
  } else if (v === 6 && p.length >= 40) {
    if (fixLength) { p[4] = (p.length - 40) >> 8; p[5] = (p.length - 40) & 0xff; }
    const end = Math.min(40 + ((p[4]! << 8) | p[5]!), p.length);
    transportChecksum(p, 40, end, p[6]!, p.subarray(8, 24), p.subarray(24, 40), true);
  }
}

function transportChecksum(p: Uint8Array, start: number, end: number, proto: number, src: Uint8Array, dst: Uint8Array, v6: boolean): void {
  const at = proto === 6 ? 16 : proto === 17 ? 6 : proto === 1 || proto === 58 ? 2 : -1;
  if (at < 0 || start + at + 2 > end) return;
  p[start + at] = p[start + at + 1] = 0;
  const initial = proto === 1 && !v6 ? 0 : pseudoHeaderSum(src, dst, proto, end - start);
  const c = finish(sum16(p, start, end, initial));
  p[start + at] = c >> 8; p[start + at + 1] = c & 0xff;
}

/** A TCP segment B → A:port around the last genuine one: sequence deltas, any flags, options and payload. */
function craftTcp(ctx: StackCtx, r: ProgramReader): Uint8Array {
  const base = ctx.lastTcp;
  const seqDelta = r.u32() | 0, ackDelta = r.u32() | 0;
  const flags = r.u8(), window = r.u16(), portSel = r.u8();
  const options = r.blob().subarray(0, 40);
  const payload = r.blob();
  const optLen = (options.length + 3) & ~3;
  const p = new Uint8Array(20 + 20 + optLen + payload.length);
  p.set([0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6]);
  p.set(B4, 12); p.set(A4, 16);
  const t = 20;
  const u32 = (o: number, x: number) => { p[o] = x >>> 24; p[o + 1] = (x >>> 16) & 0xff; p[o + 2] = (x >>> 8) & 0xff; p[o + 3] = x & 0xff; };
  const rd = (o: number) => base ? ((base[o]! << 24) | (base[o + 1]! << 16) | (base[o + 2]! << 8) | base[o + 3]!) >>> 0 : 0;
  const srcPort = base ? (base[20]! << 8) | base[21]! : 40000;
  const dstPort = portSel & 1 ? [80, 81, 53, 0][(portSel >> 1) & 3]! : 80;
  p[t] = srcPort >> 8; p[t + 1] = srcPort & 0xff; p[t + 2] = dstPort >> 8; p[t + 3] = dstPort & 0xff;
  u32(t + 4, (rd(24) + seqDelta) >>> 0);
  u32(t + 8, (rd(28) + ackDelta) >>> 0);
  p[t + 12] = ((20 + optLen) / 4) << 4;
  p[t + 13] = flags;
  p[t + 14] = window >> 8; p[t + 15] = window & 0xff;
  p.set(options, t + 20);
  p.set(payload, t + 20 + optLen);
  repairChecksums(p, true);
  return p;
}

/** An IPv4 fragment from B: id, offset, more-fragments, protocol and payload from the program. */
function fragment(r: ProgramReader): Uint8Array {
  const id = r.u16(), off = r.u16() & 0x1fff, mf = r.u8() & 1, proto = [6, 17, 1, 99][r.u8() & 3]!;
  const payload = r.blob();
  const p = new Uint8Array(20 + payload.length);
  p.set([0x45, 0, 0, 0, id >> 8, id & 0xff, (mf << 5) | (off >> 8), off & 0xff, 64, proto]);
  p.set(B4, 12); p.set(A4, 16);
  p.set(payload, 20);
  repairChecksums(p, true);
  return p;
}

function run(ctx: StackCtx, input: Uint8Array): void {
  const r = new ProgramReader(input);
  while (!r.done) {
    const op = r.u8() % OPS;
    switch (op) {
      case OP.raw: ctx.a.input(r.blob(), ctx.now); break;
      case OP.tweak: {
        const index = r.u8(), repair = r.u8();
        const spec = new ProgramReader(r.blob());
        const genuine = ctx.pool[index % Math.max(1, ctx.pool.length)];
        if (!genuine) break;
        const p = applyMutationSpec(spec, genuine.slice());
        if (repair & 1) repairChecksums(p, (repair & 2) !== 0);
        ctx.a.input(p, ctx.now);
        break;
      }
      case OP.tcp: ctx.a.input(craftTcp(ctx, r), ctx.now); break;
      case OP.bData: { const d = r.blob(); ctx.client?.write(d, ctx.now); break; }
      case OP.aData: { const d = r.blob(); ctx.server?.write(d, ctx.now); break; }
      case OP.bUdp: ctx.udpB.send(r.blob(), { address: r.u8() & 1 ? 'fd00::1' : '10.0.0.1', port: 53 }, ctx.now); break;
      case OP.bPing: ctx.b.ping(r.u8() & 1 ? 'fd00::1' : '10.0.0.1', 1, r.u16(), r.blob(), ctx.now); break;
      case OP.time: advanceTo(ctx, ctx.now + TIME_STEPS[r.u8() % TIME_STEPS.length]!); break;
      case OP.fragment: ctx.a.input(fragment(r), ctx.now); break;
      case OP.crafted: {
        // Any IPv4/IPv6 header and protocol around a payload, checksums right.
        const v6 = r.u8() & 1, proto = [6, 17, 1, 58, 0, 44, 43, 60][r.u8() & 7]!;
        const payload = r.blob();
        const h = v6 ? 40 : 20;
        const p = new Uint8Array(h + payload.length);
        if (v6) { p.set([0x60, 0, 0, 0, 0, 0, proto, 64]); p.set(parseIp('fd00::2'), 8); p.set(parseIp('fd00::1'), 24); }
        else { p.set([0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto]); p.set(B4, 12); p.set(A4, 16); }
        p.set(payload, h);
        repairChecksums(p, true);
        ctx.a.input(p, ctx.now);
        break;
      }
    }
    noInternalErrors(ctx);
    pump(ctx);
  }
}

/** Runs until `arrived()`, calling `send` every 30 s, for at most ten minutes of virtual time. */
function deliverWithin(ctx: StackCtx, send: () => void, arrived: () => boolean, what: string): boolean {
  const deadline = ctx.now + 600_000;
  let sentAt = -Infinity;
  for (let steps = 0; ; steps++) {
    invariant(steps < MAX_STEPS, `${what}: no progress`);
    if (ctx.now - sentAt >= 30_000) { send(); sentAt = ctx.now; }
    pump(ctx);
    if (arrived()) return true;
    const next = Math.min(ctx.a.nextDeadline(), ctx.b.nextDeadline(), sentAt + 30_000);
    if (next > deadline) return false;
    advanceTo(ctx, next);
  }
}

const usable = (c: TcpConnection | null) => c !== null && c.state === 'ESTABLISHED';

/** Data both ways on the current connection. */
function exchange(ctx: StackCtx): boolean {
  const n = ++ctx.checks;
  const toA = `[check ${n} b→a]`, toB = `[check ${n} a→b]`;
  if (!usable(ctx.client) || !usable(ctx.server)) return false;
  // TCP is reliable: write once, then let it retransmit.
  ctx.client!.write(new TextEncoder().encode(toA), ctx.now);
  if (!deliverWithin(ctx, () => {}, () => ctx.gotAtA.includes(toA), 'TCP B → A')) return false;
  if (!usable(ctx.server)) return false;
  ctx.server!.write(new TextEncoder().encode(toB), ctx.now);
  return deliverWithin(ctx, () => {}, () => ctx.gotAtB.includes(toB), 'TCP A → B');
}

function check(ctx: StackCtx): void {
  // The fuzzer plays B's side of the connection too: data it injected with in-window sequence
  // numbers can legitimately desynchronise or reset it (TCP has no integrity of its own; in the
  // tunnel only the authenticated peer can do this). Then a fresh connection must work.
  if (!exchange(ctx)) {
    ctx.client?.abort(ctx.now);
    ctx.server?.abort(ctx.now);
    ctx.client = ctx.server = null;
    pump(ctx);
    invariant(deliverWithin(ctx, () => { if (!usable(ctx.client)) connect(ctx); }, () => usable(ctx.client) && usable(ctx.server), 'reconnect'), 'a new TCP connection cannot be made after this batch');
    invariant(exchange(ctx), 'TCP no longer carries data both ways after this batch, even on a new connection');
  }
  const udp = ctx.udpAtA;
  invariant(deliverWithin(ctx, () => ctx.udpB.send(new TextEncoder().encode('check'), { address: '10.0.0.1', port: 53 }, ctx.now), () => ctx.udpAtA > udp, 'UDP B → A'), 'UDP no longer gets through after this batch');
  invariant(ctx.a.tcpConnectionCount <= 130, () => `A holds ${ctx.a.tcpConnectionCount} TCP connections`);
}

// ------------------------------------------------------------------------------------ inputs

function generate(rng: FuzzRng, corpus: readonly Uint8Array[]): Uint8Array {
  if (corpus.length > 0 && rng.chance(0.25)) return mutate(rng, rng.pick(corpus), corpus, 4096);
  const w = new ProgramWriter();
  const ops = rng.range(1, 5);
  for (let i = 0; i < ops; i++) {
    const op = rng.chance(0.15) ? rng.int(OPS) : rng.pick([OP.tweak, OP.tweak, OP.tcp, OP.tcp, OP.tcp, OP.bData, OP.crafted, OP.fragment]);
    w.op(op);
    switch (op) {
      case OP.raw: w.blob(rng.chance(0.5) ? rng.bytes(rng.length(1500)) : Uint8Array.of(rng.pick([0x45, 0x46, 0x4f, 0x60]), ...rng.bytes(rng.length(80)))); break;
      case OP.tweak: {
        const spec = new ProgramWriter();
        writeMutationSpec(spec, rng);
        w.u8(rng.int(POOL)).u8(rng.chance(0.7) ? 1 : rng.int(4)).blob(spec.finish());
        break;
      }
      case OP.tcp: {
        const near = () => (rng.chance(0.6) ? rng.range(-3, 3) : rng.chance(0.5) ? rng.range(-70000, 70000) : rng.u32()) >>> 0;
        const flags = rng.chance(0.7) ? rng.pick([0x10, 0x18, 0x04, 0x14, 0x02, 0x12, 0x01, 0x11, 0x19, 0x00, 0x3f]) : rng.int(256);
        const options = rng.chance(0.3) ? rng.bytes(rng.int(41)) : rng.chance(0.5) ? Uint8Array.of(1, 1, 8, 10, ...rng.bytes(8)) : new Uint8Array(0);
        w.u32(near()).u32(near()).u8(flags).u16(rng.chance(0.5) ? 65535 : rng.int(65536)).u8(rng.int(8)).blob(options).blob(rng.bytes(rng.length(200)));
        break;
      }
      case OP.bData: case OP.aData: w.blob(rng.bytes(rng.length(3000))); break;
      case OP.bUdp: w.blob(rng.bytes(rng.length(200))).u8(rng.int(2)); break;
      case OP.bPing: w.u8(rng.int(2)).u16(rng.int(65536)).blob(rng.bytes(rng.length(100))); break;
      case OP.time: w.u8(rng.chance(0.9) ? rng.int(5) : rng.int(TIME_STEPS.length)); break;
      case OP.fragment: w.u16(rng.int(4)).u16(rng.chance(0.5) ? rng.int(8) : rng.int(0x2000)).u8(rng.int(2)).u8(rng.int(4)).blob(rng.bytes(rng.length(64) & ~7 || 8)); break;
      case OP.crafted: w.u8(rng.int(2)).u8(rng.int(8)).blob(rng.bytes(rng.length(100))); break;
    }
  }
  return w.finish();
}

function seeds(): Uint8Array[] {
  const ctx = setupStack();
  ctx.client!.write(new TextEncoder().encode('hello'), 0);
  pump(ctx);
  return [
    ...ctx.pool.map((p) => new ProgramWriter().op(OP.raw).blob(p).finish()),
    new ProgramWriter().op(OP.tcp).u32(0).u32(0).u8(0x04).u16(0).u8(0).blob(new Uint8Array(0)).blob(new Uint8Array(0)).finish(),
    new ProgramWriter().op(OP.fragment).u16(1).u16(0).u8(1).u8(1).blob(new Uint8Array(16)).op(OP.fragment).u16(1).u16(2).u8(0).u8(1).blob(new Uint8Array(8)).finish(),
  ];
}

export const netstackTarget: FuzzTarget<StackCtx> = {
  name: 'netstack',
  description: 'IP packets into the userspace TCP/IP stack (TcpIpStack.input) with a live TCP connection',
  batchSize: 300,
  setup: setupStack,
  seeds,
  generate,
  run,
  check,
};
