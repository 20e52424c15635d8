/**
 * Target `wire`: datagrams from the network into the core `Endpoint.recv`.
 *
 * The victim A has a live session with its peer B; M is a stranger that knows A's public key
 * (so its handshake messages pass mac1 and reach decryption, and under load it gets cookie
 * replies and can answer them). A program mixes raw datagrams, well-framed messages with
 * random fields (receiver index optionally a live one), genuine datagrams of B and M with bits
 * flipped or cut short (handshake messages also with mac1 made valid again, so the mutation
 * reaches Noise), replays and bursts of replays, time jumps, time that passes while the timers
 * are late (a busy event loop: datagrams arrive after a deadline, before its tick), A without a
 * private key for a moment, under-load switching on either side and peer re-adds.
 *
 * Invariants: recv never throws; every datagram is counted received once; 'dropped' adds
 * exactly one drop, anything else none; only 'data' delivers (one packet); nothing
 * unauthenticated moves a peer's endpoint; tick never leaves a deadline due; bounded indexes
 * and queues; after each batch traffic still flows both ways.
 */
import { utf8 } from '../../src/core/bytes.ts';
import { LABEL_MAC1 } from '../../src/core/constants.ts';
import { DROP_REASONS, Endpoint } from '../../src/core/endpoint.ts';
import type { RecvResult } from '../../src/core/endpoint.ts';
import { CookieReply, Initiation, Response, Transport } from '../../src/core/messages.ts';
import type { PeerId } from '../../src/core/peer.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import type { FuzzTarget } from '../harness.ts';
import { invariant } from '../harness.ts';
import { mutate } from '../mutate.ts';
import { applyMutationSpec, ProgramReader, ProgramWriter, writeMutationSpec } from '../program.ts';
import type { FuzzRng } from '../rng.ts';

const OP = {
  raw: 0, bData: 1, bMutated: 2, replay: 3, time: 4, bHandshake: 5, mHandshake: 6, underLoad: 7,
  aData: 8, framed: 9, readd: 10, keepalive: 11, burst: 12, remac: 13, late: 14, noKey: 15,
} as const;
const OPS = 16;

/** Sources a datagram can claim: the fuzzer's own two, and B's and M's real ones (spoofing). */
const SOURCES = ['x', 'b', 'm', 'y'] as const;
const TIME_STEPS = [0, 1, 10, 100, 1000, 5_000, 15_000, 125_000, 185_000];
const POOL_SIZE = 32;
const MAX_WIRE_STEPS = 10_000;

interface Queued { to: 'a' | 'b' | 'm'; from: string; data: Uint8Array }

export interface WireCtx {
  now: number;
  a: Endpoint<string>;
  b: Endpoint<string>;
  m: Endpoint<string>;
  bPublic: Uint8Array;
  aPeerB: PeerId;
  bPeerA: PeerId;
  mPeerA: PeerId;
  /** Where A sends B's datagrams: the source of B's last authenticated packet. */
  aEndpointOfB: string;
  queue: Queued[];
  /** Genuine datagrams B sent towards A (a ring), for replays and mutation. */
  pool: Uint8Array[];
  poolNext: number;
  /** M's latest handshake message (kept apart: its retries would crowd B's datagrams out). */
  mLast: Uint8Array | null;
  /** M's datagrams reach the wire only during its own operation: its retries would be most of the work. */
  mOnline: boolean;
  /** HASH("mac1----" ‖ A's public key): lets the fuzzer sign mutated handshake messages. */
  mac1Key: Uint8Array;
  /** Mutates B's outgoing datagrams while set. */
  tap: ((d: Uint8Array) => Uint8Array) | null;
  aDeliveries: number;
  aAuthenticated: number;
  aLast: Uint8Array | null;
  bLast: Uint8Array | null;
  checks: number;
}

function key(seed: number): Uint8Array {
  const k = new Uint8Array(32);
  seededRng(seed).fill(k);
  return k;
}

const wall = (now: number) => 1_700_000_000_000 + now;

export function setupWire(): WireCtx {
  const ctx = { now: 0, queue: [], pool: [], poolNext: 0, tap: null, aDeliveries: 0, aAuthenticated: 0, aLast: null, bLast: null, mLast: null, mOnline: false, checks: 0, aEndpointOfB: 'b' } as unknown as WireCtx;
  const remember = (from: 'b' | 'm', d: Uint8Array) => {
    if (from === 'm') ctx.mLast = d.slice();
    else if (ctx.pool.length < POOL_SIZE) ctx.pool.push(d.slice());
    else ctx.pool[ctx.poolNext++ % POOL_SIZE] = d.slice();
  };
  ctx.a = new Endpoint<string>({
    crypto: nodeCrypto, rng: seededRng(11), privateKey: key(1), wallClock: wall,
    io: {
      sendToPeer: (peer, d) => {
        if (peer === ctx.aPeerB && ctx.aEndpointOfB === 'b') ctx.queue.push({ to: 'b', from: 'a', data: d.slice() });
      },
      sendToSource: (src, d) => {
        if (src === 'b' || src === 'm') ctx.queue.push({ to: src, from: 'a', data: d.slice() });
      },
      deliver: (_peer, p) => { ctx.aDeliveries++; ctx.aLast = p.slice(0, 32); },
      authenticated: (peer, src) => { ctx.aAuthenticated++; if (peer === ctx.aPeerB) ctx.aEndpointOfB = src; },
      sourceTag: (src) => utf8(src),
    },
  });
  const outward = (from: 'b' | 'm') => ({
    sendToPeer: (_peer: PeerId, d: Uint8Array) => {
      if (from === 'm' && !ctx.mOnline) return;
      remember(from, d);
      const data = from === 'b' && ctx.tap ? ctx.tap(d.slice()) : d.slice();
      ctx.queue.push({ to: 'a', from, data });
    },
    sendToSource: (_src: string, d: Uint8Array) => { ctx.queue.push({ to: 'a', from, data: d.slice() }); },
    deliver: (_peer: PeerId, p: Uint8Array) => { if (from === 'b') ctx.bLast = p.slice(0, 32); },
    authenticated: () => {},
    sourceTag: (src: string) => utf8(src),
  });
  ctx.b = new Endpoint<string>({ crypto: nodeCrypto, rng: seededRng(12), privateKey: key(2), wallClock: wall, io: outward('b') });
  ctx.m = new Endpoint<string>({ crypto: nodeCrypto, rng: seededRng(13), privateKey: key(3), wallClock: wall, io: outward('m') });
  ctx.bPublic = ctx.b.publicKey!;
  ctx.mac1Key = nodeCrypto.hash([utf8(LABEL_MAC1), ctx.a.publicKey!]);
  ctx.aPeerB = ctx.a.addPeer({ publicKey: ctx.bPublic }, 0);
  ctx.bPeerA = ctx.b.addPeer({ publicKey: ctx.a.publicKey! }, 0);
  ctx.mPeerA = ctx.m.addPeer({ publicKey: ctx.a.publicKey! }, 0);
  // The live session the fuzzer attacks, made by genuine traffic both ways.
  ctx.b.send(0, ctx.bPeerA, utf8('hello a'));
  pump(ctx);
  ctx.a.send(0, ctx.aPeerB, utf8('hello b'));
  pump(ctx);
  invariant(ctx.a.inspectPeer(ctx.aPeerB).current !== null, 'setup: no session');
  return ctx;
}

function droppedTotal(e: Endpoint<string>): number {
  let n = 0;
  for (const r of DROP_REASONS) if (r !== 'queueFull') n += e.counters.dropped[r];
  return n;
}

const RESULTS = new Set<RecvResult>(['data', 'keepalive', 'handshake', 'cookie', 'dropped']);

/** A's recv with the per-datagram invariants. */
function recvA(ctx: WireCtx, data: Uint8Array, from: string): RecvResult {
  const a = ctx.a;
  const dropped = droppedTotal(a);
  const received = a.counters.datagramsReceived;
  const deliveries = ctx.aDeliveries;
  const authenticated = ctx.aAuthenticated;
  const r = a.recv(ctx.now, data, from);
  invariant(RESULTS.has(r), () => `recv returned ${String(r)}`);
  invariant(a.counters.datagramsReceived === received + 1, 'datagramsReceived not counted once');
  const delta = droppedTotal(a) - dropped;
  invariant(r === 'dropped' ? delta === 1 : delta === 0, () => `recv → ${r} counted ${delta} drops`);
  invariant(ctx.aDeliveries - deliveries === (r === 'data' ? 1 : 0), () => `recv → ${r} delivered ${ctx.aDeliveries - deliveries} packets`);
  if (r === 'dropped' || r === 'cookie') invariant(ctx.aAuthenticated === authenticated, () => `an unauthenticated datagram (${r}) moved an endpoint`);
  return r;
}

function recvOther(ctx: WireCtx, q: Queued): void {
  const e = q.to === 'b' ? ctx.b : ctx.m;
  const r = e.recv(ctx.now, q.data, q.from);
  invariant(RESULTS.has(r), () => `recv returned ${String(r)}`);
}

/** Delivers everything on the wire, replies included. */
function pump(ctx: WireCtx): void {
  for (let steps = 0; ctx.queue.length > 0; steps++) {
    invariant(steps < MAX_WIRE_STEPS, 'datagram storm: the wire never went quiet');
    const q = ctx.queue.shift()!;
    if (q.to === 'a') recvA(ctx, q.data, q.from);
    else recvOther(ctx, q);
  }
}

function nextDeadline(ctx: WireCtx): number {
  return Math.min(ctx.a.nextDeadline(), ctx.b.nextDeadline(), ctx.m.nextDeadline());
}

/** Moves time to `until`, running every timer that comes due on the way (in order). */
function advanceTo(ctx: WireCtx, until: number): void {
  for (let steps = 0; ; steps++) {
    invariant(steps < MAX_WIRE_STEPS, 'timers keep firing without time passing');
    const t = nextDeadline(ctx);
    if (t > until) break;
    ctx.now = Math.max(ctx.now, t);
    for (const e of [ctx.a, ctx.b, ctx.m]) {
      if (e.nextDeadline() <= ctx.now) e.tick(ctx.now);
    }
    // tick recomputes the deadline exactly: one still due would make a runtime spin.
    for (const e of [ctx.a, ctx.b, ctx.m]) invariant(e.nextDeadline() > ctx.now, 'tick left a deadline due');
    pump(ctx);
  }
  ctx.now = Math.max(ctx.now, until);
}

/** A message of `type` with the right length, its bytes drawn from `body`. */
function framed(ctx: WireCtx, type: number, flags: number, body: Uint8Array): Uint8Array {
  const size = type === 1 ? Initiation.size : type === 2 ? Response.size : type === 3 ? CookieReply.size : Transport.minSize + (body.length & ~15);
  const m = new Uint8Array(size);
  for (let i = 4; i < size && body.length > 0; i++) m[i] = body[i % body.length]!;
  m[0] = type;
  if (flags & 1) {
    // A live receiver index of A gets past the index lookup to the cryptography.
    const s = ctx.a.inspectPeer(ctx.aPeerB);
    const index = s.current?.localIndex ?? s.next?.localIndex ?? s.previous?.localIndex ?? 0;
    const at = type === 2 ? Response.receiver : type === 3 ? CookieReply.receiver : type === 4 ? Transport.receiver : -1;
    if (at > 0) new DataView(m.buffer).setUint32(at, index, true);
  }
  if (flags & 2 && type === 4) new DataView(m.buffer).setUint32(Transport.counter, 0, true);
  return m;
}

function run(ctx: WireCtx, input: Uint8Array): void {
  const r = new ProgramReader(input);
  while (!r.done) {
    const op = r.u8() % OPS;
    switch (op) {
      case OP.raw: {
        const from = SOURCES[r.u8() & 3]!;
        recvA(ctx, r.blob(), from);
        break;
      }
      case OP.bData: ctx.b.send(ctx.now, ctx.bPeerA, r.blob()); break;
      case OP.bMutated: {
        const payload = r.blob();
        const spec = new ProgramReader(r.blob());
        ctx.tap = (d) => applyMutationSpec(spec, d);
        try { ctx.b.send(ctx.now, ctx.bPeerA, payload); } finally { ctx.tap = null; }
        break;
      }
      case OP.replay: {
        const index = r.u8();
        const from = SOURCES[r.u8() & 3]!;
        const spec = new ProgramReader(r.blob());
        // Index 255 picks M's last handshake message, the others B's datagrams.
        const genuine = index === 255 ? ctx.mLast : ctx.pool[index % Math.max(1, ctx.pool.length)];
        if (genuine) recvA(ctx, applyMutationSpec(spec, genuine.slice()), from);
        break;
      }
      case OP.time: advanceTo(ctx, ctx.now + TIME_STEPS[r.u8() % TIME_STEPS.length]!); break;
      case OP.late:
        // The clock moves but no timer has fired yet: what arrives now meets sessions past their
        // deadlines (expired, due for rekey) before tick has dealt with them.
        ctx.now += TIME_STEPS[r.u8() % TIME_STEPS.length]!;
        break;
      case OP.noKey: {
        // A's private key is removed (wg set private-key /dev/null), one genuine datagram of B or
        // M arrives, and the key comes back.
        const index = r.u8();
        const genuine = index === 255 ? ctx.mLast : ctx.pool[index % Math.max(1, ctx.pool.length)];
        const privateKey = key(1);
        ctx.a.setPrivateKey(null);
        try {
          if (genuine) recvA(ctx, genuine.slice(), SOURCES[r.u8() & 3]!);
        } finally {
          ctx.a.setPrivateKey(privateKey);
        }
        break;
      }
      case OP.bHandshake: ctx.b.initiateHandshake(ctx.now, ctx.bPeerA); break;
      case OP.mHandshake:
        ctx.mOnline = true;
        try { ctx.m.initiateHandshake(ctx.now, ctx.mPeerA); pump(ctx); } finally { ctx.mOnline = false; }
        break;
      case OP.underLoad: {
        // 0-2: A auto/on/off; 3-5: the same for B, whose cookie replies A then has to handle.
        const mode = r.u8() % 6;
        (mode < 3 ? ctx.a : ctx.b).setUnderLoad(mode % 3 === 0 ? 'auto' : mode % 3 === 1);
        break;
      }
      case OP.aData: {
        const result = ctx.a.send(ctx.now, ctx.aPeerB, r.blob());
        invariant(result === 'sent' || result === 'queued' || result === 'dropped', 'send result');
        break;
      }
      case OP.framed: {
        const type = (r.u8() % 4) + 1;
        const flags = r.u8();
        recvA(ctx, framed(ctx, type, flags, r.blob()), SOURCES[(flags >> 2) & 3]!);
        break;
      }
      case OP.readd:
        ctx.a.removePeer(ctx.aPeerB);
        ctx.aPeerB = ctx.a.addPeer({ publicKey: ctx.bPublic }, ctx.now);
        break;
      case OP.keepalive:
        if (r.u8() & 1) ctx.a.keepalive(ctx.now, ctx.aPeerB);
        else ctx.b.keepalive(ctx.now, ctx.bPeerA);
        break;
      case OP.burst: {
        // One genuine datagram many times from one source: the rate limits' and replay paths.
        const index = r.u8();
        const from = SOURCES[r.u8() & 3]!;
        const count = r.u8() % 48;
        const genuine = index === 255 ? ctx.mLast : ctx.pool[index % Math.max(1, ctx.pool.length)];
        for (let i = 0; genuine && i < count; i++) recvA(ctx, genuine.slice(), from);
        break;
      }
      case OP.remac: {
        // A genuine handshake message, mutated, with mac1 made valid again: past the MAC check
        // to Noise decryption, the timestamp and index checks.
        const index = r.u8();
        const from = SOURCES[r.u8() & 3]!;
        const spec = new ProgramReader(r.blob());
        const genuine = index === 255 ? ctx.mLast : ctx.pool[index % Math.max(1, ctx.pool.length)];
        if (!genuine) break;
        const m = applyMutationSpec(spec, genuine.slice());
        if (m.length === Initiation.size || m.length === Response.size) m.set(nodeCrypto.mac(ctx.mac1Key, m.subarray(0, m.length - 32)), m.length - 32);
        recvA(ctx, m, from);
        break;
      }
    }
    pump(ctx);
  }
}

/** Sends `marker` (again every second) until `arrived`, within two minutes of virtual time. */
function deliverWithin(ctx: WireCtx, send: () => void, arrived: () => boolean, what: string): void {
  const deadline = ctx.now + 120_000;
  let sentAt = -Infinity;
  for (let steps = 0; ; steps++) {
    invariant(steps < MAX_WIRE_STEPS, `${what}: no progress`);
    if (ctx.now - sentAt >= 1000) { send(); sentAt = ctx.now; }
    pump(ctx);
    if (arrived()) return;
    const next = Math.min(nextDeadline(ctx), sentAt + 1000);
    invariant(next <= deadline, `${what}: traffic no longer flows after this batch`);
    advanceTo(ctx, next);
  }
}

function check(ctx: WireCtx): void {
  ctx.a.setUnderLoad('auto');
  const n = ++ctx.checks;
  const toA = utf8(`check b→a ${n}`), toB = utf8(`check a→b ${n}`);
  const same = (got: Uint8Array | null, want: Uint8Array) => got !== null && want.every((x, i) => got[i] === x);
  ctx.aLast = ctx.bLast = null;
  deliverWithin(ctx, () => ctx.b.send(ctx.now, ctx.bPeerA, toA), () => same(ctx.aLast, toA), 'B → A');
  deliverWithin(ctx, () => ctx.a.send(ctx.now, ctx.aPeerB, toB), () => same(ctx.bLast, toB), 'A → B');
  // Bounded: one peer, at most four live indexes per peer (three sessions and a handshake).
  invariant(ctx.a.peerCount === 1, 'A has one peer');
  invariant(ctx.a.liveIndexes <= 4, () => `A holds ${ctx.a.liveIndexes} live indexes`);
  invariant(ctx.b.liveIndexes <= 4 && ctx.m.liveIndexes <= 4, 'B and M hold at most four live indexes');
  invariant(ctx.a.inspectPeer(ctx.aPeerB).queued <= 1024, 'queue bounded');
}

// ------------------------------------------------------------------------------------ inputs

function randomDatagram(rng: FuzzRng): Uint8Array {
  switch (rng.int(4)) {
    case 0: return rng.bytes(rng.length(1600));
    case 1: { // right type and reserved bytes, random length and body
      const b = rng.bytes(rng.pick([Initiation.size, Response.size, CookieReply.size, Transport.minSize, 48, 64, 1500, rng.length(200)]));
      if (b.length >= 4) b.set([rng.range(1, 4), 0, 0, 0]);
      return b;
    }
    case 2: return Uint8Array.of(rng.range(0, 5), 0, 0, 0);
    default: return new Uint8Array(rng.length(200));
  }
}

function generate(rng: FuzzRng, corpus: readonly Uint8Array[]): Uint8Array {
  if (corpus.length > 0 && rng.chance(0.25)) return mutate(rng, rng.pick(corpus), corpus, 4096);
  const w = new ProgramWriter();
  const ops = rng.range(1, 6);
  for (let i = 0; i < ops; i++) {
    // Mostly cheap, parser-heavy operations; re-adds and big time jumps cost handshakes.
    const op = rng.chance(0.1) ? rng.int(OPS) : rng.pick([OP.raw, OP.raw, OP.bMutated, OP.replay, OP.framed, OP.framed, OP.bData, OP.time, OP.remac]);
    w.op(op);
    switch (op) {
      case OP.raw: w.u8(rng.int(4)).blob(randomDatagram(rng)); break;
      case OP.bData: case OP.aData: w.blob(rng.bytes(rng.length(300))); break;
      case OP.bMutated: {
        const spec = new ProgramWriter();
        writeMutationSpec(spec, rng);
        w.blob(rng.bytes(rng.length(100))).blob(spec.finish());
        break;
      }
      case OP.replay: {
        const spec = new ProgramWriter();
        writeMutationSpec(spec, rng, rng.chance(0.2) ? 0 : rng.range(1, 3));
        w.u8(rng.chance(0.1) ? 255 : rng.int(POOL_SIZE)).u8(rng.int(4)).blob(spec.finish());
        break;
      }
      case OP.time: w.u8(rng.chance(0.9) ? rng.int(5) : rng.int(TIME_STEPS.length)); break;
      case OP.underLoad: w.u8(rng.int(6)); break;
      case OP.burst: w.u8(rng.chance(0.3) ? 255 : rng.int(POOL_SIZE)).u8(rng.int(4)).u8(rng.range(2, 47)); break;
      case OP.remac: {
        const spec = new ProgramWriter();
        writeMutationSpec(spec, rng);
        w.u8(rng.chance(0.3) ? 255 : rng.int(POOL_SIZE)).u8(rng.int(4)).blob(spec.finish());
        break;
      }
      case OP.framed: w.u8(rng.int(4)).u8(rng.int(256)).blob(rng.bytes(rng.length(200))); break;
      case OP.keepalive: w.u8(rng.int(2)); break;
      case OP.late: w.u8(rng.int(TIME_STEPS.length)); break;
      case OP.noKey: w.u8(rng.chance(0.3) ? 255 : rng.int(POOL_SIZE)).u8(rng.int(4)); break;
      default: break;
    }
  }
  return w.finish();
}

function seeds(): Uint8Array[] {
  // Genuine datagrams of a fresh context (the handshake and first data), replayed as raw input.
  const ctx = setupWire();
  const out = ctx.pool.map((d) => new ProgramWriter().op(OP.raw).u8(1).blob(d).finish());
  out.push(new ProgramWriter().op(OP.bData).blob(utf8('data')).op(OP.time).u8(6).op(OP.bData).blob(utf8('after rekey')).finish());
  out.push(new ProgramWriter().op(OP.underLoad).u8(1).op(OP.mHandshake).op(OP.time).u8(5).op(OP.mHandshake).finish());
  out.push(new ProgramWriter().op(OP.readd).op(OP.aData).blob(utf8('x')).finish());
  // B's data arrives after REJECT_AFTER_TIME, before the expiry timer ran.
  out.push(new ProgramWriter().op(OP.bData).blob(utf8('late')).op(OP.late).u8(8).op(OP.replay).u8(POOL_SIZE - 1).u8(1).blob(new ProgramWriter().finish()).finish());
  out.push(new ProgramWriter().op(OP.mHandshake).op(OP.noKey).u8(255).u8(2).op(OP.noKey).u8(0).u8(1).finish());
  return out;
}

export const wireTarget: FuzzTarget<WireCtx> = {
  name: 'wire',
  description: 'datagrams into the core Endpoint.recv, with a live session (data, handshake, cookie paths)',
  batchSize: 500,
  setup: setupWire,
  seeds,
  generate,
  run,
  check,
};
