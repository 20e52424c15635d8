/**
 * Two Devices on the in-memory twins (MemoryTun, MemoryBind on a MemoryNetwork, ManualClock)
 * with a session between them, for the `device-tun` and `device-bind` targets: A is fuzzed,
 * B is its honest peer. Shared pieces: IP packet construction, the integrity invariant on
 * what a TUN gets written, and the batch check that pings still cross both ways.
 */
import { encodeHex, generatePrivateKey } from '../../src/core/keys.ts';
import { paddedLength } from '../../src/core/messages.ts';
import type { PeerId } from '../../src/core/peer.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { MemoryBind, MemoryNetwork } from '../../src/device/bind-memory.ts';
import { ManualClock } from '../../src/device/clock.ts';
import { Device } from '../../src/device/device.ts';
import { ipPacketLength } from '../../src/device/ip.ts';
import { MemoryTun } from '../../src/device/tun-memory.ts';
import { icmpEcho4, icmpEcho6, parseIPv4, parseIPv6 } from '../../test/support/ip.ts';
import { invariant } from '../harness.ts';
import type { ProgramReader, ProgramWriter } from '../program.ts';
import type { FuzzRng } from '../rng.ts';

export interface Host {
  device: Device;
  tun: MemoryTun;
  bind: MemoryBind;
  publicKey: Uint8Array;
  /** Packets written to this host's TUN since the last check. */
  written: number;
}

export interface PairCtx {
  net: MemoryNetwork;
  clock: ManualClock;
  a: Host;
  b: Host;
  /** B's peer id for A, to make B seal arbitrary plaintext for A. */
  bPeerA: PeerId;
  /** Packets (trimmed, hex) that were handed to a side for sending: what the other TUN may get. */
  sentByA: Set<string>;
  sentByB: Set<string>;
  checks: number;
}

export const A_ADDR = '192.0.2.1';
export const B_ADDR = '192.0.2.2';
/** Tunnel addresses: A owns .1 and ::1, B owns .2 and ::2 (its allowed IPs at A). */
const A_IPS = ['10.9.0.1', 'fd09::1'];
const B_IPS = ['10.9.0.2', 'fd09::2'];
const MAX_SENT = 20_000;

async function host(net: MemoryNetwork, clock: ManualClock, address: string, seed: number): Promise<Host> {
  const rng = seededRng(seed);
  const key = generatePrivateKey(rng);
  const tun = new MemoryTun({ name: `fz${seed}`, mtu: 1420 });
  const bind = new MemoryBind(net, address);
  const device = new Device({ tun, bind, clock, rng });
  await device.ipcSet(`private_key=${encodeHex(key)}\nlisten_port=51820\n`);
  await device.up();
  return { device, tun, bind, publicKey: nodeCrypto.x25519PrivateKey(key).publicKey, written: 0 };
}

const hex = (p: Uint8Array) => encodeHex(p);

/** What a TUN may be written: a whole IP packet, from the peer's addresses, that the peer was given to send. */
function guard(h: Host, ownerIps: string[], sentByPeer: Set<string>): void {
  h.tun.onWrite = (p) => {
    h.written++;
    invariant(ipPacketLength(p) === p.length, 'a packet written to the TUN is not exactly one IP packet');
    const src = p[0]! >> 4 === 4 ? p.subarray(12, 16) : p.subarray(8, 24);
    invariant(ownerIps.some((ip) => hex(ip.includes(':') ? parseIPv6(ip) : parseIPv4(ip)) === hex(src)), 'a packet from an address the peer does not own reached the TUN');
    invariant(sentByPeer.has(hex(p)), 'a packet reached the TUN that the peer never sent');
    h.tun.written.length = 0; // keep the twin's log from growing
  };
}

export async function setupPair(): Promise<PairCtx> {
  const net = new MemoryNetwork();
  const clock = new ManualClock();
  const a = await host(net, clock, A_ADDR, 1);
  const b = await host(net, clock, B_ADDR, 2);
  await a.device.ipcSet(`public_key=${encodeHex(b.publicKey)}\nendpoint=${B_ADDR}:51820\nallowed_ip=10.9.0.2/32\nallowed_ip=fd09::2/128\n`);
  await b.device.ipcSet(`public_key=${encodeHex(a.publicKey)}\nallowed_ip=10.9.0.1/32\nallowed_ip=fd09::1/128\n`);
  const ctx: PairCtx = {
    net, clock, a, b, bPeerA: b.device.endpoint.peerIdByKey(a.publicKey)!, sentByA: new Set(), sentByB: new Set(), checks: 0,
  };
  guard(a, B_IPS, ctx.sentByB);
  guard(b, A_IPS, ctx.sentByA);
  await pingBothWays(ctx);
  return ctx;
}

/**
 * Records a packet handed to `side` for sending, as the other TUN may get it: zero-padded to
 * a multiple of 16 (never beyond the MTU) on the wire, then cut to the length its header
 * declares. (A header that declares more than the packet has thus arrives with padding
 * zeros appended, as with wireguard-go; a kernel never hands such a packet to a TUN.)
 */
export function noteSent(ctx: PairCtx, side: 'a' | 'b', packet: Uint8Array): void {
  const padded = new Uint8Array(paddedLength(packet.length, 1420));
  padded.set(packet);
  const n = ipPacketLength(padded);
  if (n === 0) return;
  const set = side === 'a' ? ctx.sentByA : ctx.sentByB;
  if (set.size >= MAX_SENT) set.clear(); // bounded; a false alarm needs a packet older than this
  set.add(hex(padded.subarray(0, n)));
}

export function injectA(ctx: PairCtx, packet: Uint8Array): void {
  noteSent(ctx, 'a', packet);
  const before = ctx.a.device.counters.tunPacketsIn;
  ctx.a.tun.inject(packet);
  invariant(ctx.a.device.counters.tunPacketsIn === before + 1, 'a TUN packet was not counted');
}

export function injectB(ctx: PairCtx, packet: Uint8Array): void {
  noteSent(ctx, 'b', packet);
  ctx.b.tun.inject(packet);
}

export const TIME_STEPS = [0, 1, 10, 100, 1000, 5_000, 15_000, 125_000, 185_000];

/** Lets the memory network deliver (a few hops) without time passing. */
export function settle(ctx: PairCtx): Promise<void> {
  return ctx.clock.advance(0);
}

// ------------------------------------------------------------------------------- IP packets

/** Writes the arguments of an IP packet op: version, addresses, length field, payload. */
export function writeIpPacket(w: ProgramWriter, rng: FuzzRng): void {
  w.u8(rng.chance(0.9) ? rng.pick([4, 6]) : rng.int(16)).u8(rng.int(256)).u8(rng.int(256)).u8(rng.int(8)).u16(rng.int(0x10000)).blob(rng.bytes(rng.length(200)));
}

/**
 * An IPv4/IPv6 header from the program: the source and destination are picked among both
 * sides' tunnel addresses and strangers; the length field is right, or off, or random.
 */
export function readIpPacket(r: ProgramReader): Uint8Array {
  const version = r.u8() & 15;
  const srcSel = r.u8(), dstSel = r.u8();
  const lenMode = r.u8();
  const lenRandom = r.u16();
  const payload = r.blob();
  const v6 = version === 6;
  const pool = v6 ? ['fd09::1', 'fd09::2', 'fd09::3', '::', 'ff02::1'] : ['10.9.0.1', '10.9.0.2', '10.9.0.3', '0.0.0.0', '255.255.255.255'];
  const addr = (sel: number) => (v6 ? parseIPv6 : parseIPv4)(pool[sel % pool.length]!);
  const header = v6 ? 40 : 20;
  const p = new Uint8Array(header + payload.length);
  p.set(payload, header);
  p[0] = v6 ? 0x60 : (version << 4) | 5;
  const length = lenMode % 4 === 0 ? lenRandom : lenMode % 4 === 1 ? p.length + 1 : p.length;
  if (v6) {
    new DataView(p.buffer).setUint16(4, Math.max(0, length - 40) & 0xffff);
    p[6] = 58;
    p.set(addr(srcSel), 8);
    p.set(addr(dstSel), 24);
  } else {
    new DataView(p.buffer).setUint16(2, length & 0xffff);
    p[9] = 1;
    p.set(addr(srcSel), 12);
    p.set(addr(dstSel), 16);
    if (lenMode & 4) p[0] = (p[0]! & 0xf0) | (lenRandom & 15); // IHL too
  }
  return p;
}

// ------------------------------------------------------------------------------- the check

async function pingUntil(ctx: PairCtx, from: Host, to: Host, packet: Uint8Array, what: string): Promise<void> {
  const before = to.written;
  for (let waited = 0; waited <= 120_000; waited += 1000) {
    if (from === ctx.a) injectA(ctx, packet);
    else injectB(ctx, packet);
    await ctx.clock.advance(1000);
    if (to.written > before) return;
  }
  invariant(false, `${what}: traffic no longer flows after this batch`);
}

export async function pingBothWays(ctx: PairCtx): Promise<void> {
  const n = ++ctx.checks & 0xffff;
  const body = new TextEncoder().encode('check');
  await pingUntil(ctx, ctx.a, ctx.b, n % 2 ? icmpEcho4('10.9.0.1', '10.9.0.2', 1, n, body) : icmpEcho6('fd09::1', 'fd09::2', 1, n, body), 'A → B');
  await pingUntil(ctx, ctx.b, ctx.a, n % 2 ? icmpEcho6('fd09::2', 'fd09::1', 1, n, body, true) : icmpEcho4('10.9.0.2', '10.9.0.1', 1, n, body, true), 'B → A');
}

export async function checkPair(ctx: PairCtx): Promise<void> {
  await pingBothWays(ctx);
  for (const h of [ctx.a, ctx.b]) {
    invariant(h.device.endpoint.peerCount === 1, 'one peer each');
    invariant(h.device.endpoint.liveIndexes <= 4, () => `${h.device.endpoint.liveIndexes} live indexes`);
    invariant(h.tun.written.length === 0, 'TUN log bounded');
  }
}

export async function teardownPair(ctx: PairCtx): Promise<void> {
  await ctx.a.device.close();
  await ctx.b.device.close();
}
