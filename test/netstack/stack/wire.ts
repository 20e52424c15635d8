/**
 * A virtual wire and a virtual clock for TcpIpStacks: packets between stacks are routed by their
 * destination address and may be lost, delayed, reordered or duplicated from a seeded generator;
 * the clock jumps to the next packet arrival or stack deadline, so minutes of TCP run in
 * milliseconds and every run is repeatable.
 */
import { seededRng } from '../../../src/core/rng.ts';
import { TcpIpStack } from '../../../src/netstack/stack/stack.ts';
import type { StackConfig } from '../../../src/netstack/stack/types.ts';

export interface WireConditions {
  loss: number;
  duplicate: number;
  /** One-way latency (ms). */
  latency: number;
  /** Extra random delay up to this many ms: reorders packets. */
  jitter: number;
}

export const PERFECT: WireConditions = { loss: 0, duplicate: 0, latency: 5, jitter: 0 };

interface InFlight { at: number; seq: number; to: Host; data: Uint8Array }

export interface Host {
  readonly name: string;
  readonly stack: TcpIpStack;
  readonly addresses: readonly string[];
  /** Every packet this host sent, copied. */
  readonly sent: Uint8Array[];
}

export type Tap = (from: Host, packet: Uint8Array) => 'pass' | 'drop';

export class Wire {
  now = 0;
  conditions: WireConditions;
  readonly hosts: Host[] = [];
  /** Called for every packet sent; 'drop' loses it (before the random conditions apply). */
  tap: Tap | undefined;
  /** Record every packet in `host.sent` (off for bulk runs). */
  record = true;
  lost = 0;
  duplicated = 0;
  delivered = 0;
  private readonly rng;
  private readonly inFlight: InFlight[] = [];
  private seq = 0;

  constructor(options: { seed?: number; conditions?: WireConditions } = {}) {
    this.conditions = options.conditions ?? PERFECT;
    this.rng = seededRng((options.seed ?? 1) ^ 0x77697265);
  }

  host(name: string, addresses: string[], config: Partial<StackConfig> = {}, seed = this.hosts.length + 1): Host {
    const sent: Uint8Array[] = [];
    const h: Host = {
      name, addresses, sent,
      stack: new TcpIpStack({ addresses, rng: seededRng(seed * 1000 + 7), ...config }, {
        output: (packet) => this.transmit(h, packet),
      }),
    };
    this.hosts.push(h);
    return h;
  }

  random(): number {
    return this.rng.nextUint32() / 0x1_0000_0000;
  }

  transmit(from: Host, packet: Uint8Array): void {
    if (this.record) from.sent.push(packet.slice());
    if (this.tap && this.tap(from, packet) === 'drop') { this.lost++; return; }
    const to = this.route(packet);
    if (!to) { this.lost++; return; }
    const c = this.conditions;
    if (this.random() < c.loss) { this.lost++; return; }
    const copies = this.random() < c.duplicate ? 2 : 1;
    if (copies === 2) this.duplicated++;
    for (let i = 0; i < copies; i++) {
      this.insert({ at: this.now + c.latency + this.random() * c.jitter, seq: this.seq++, to, data: packet.slice() });
    }
  }

  /** Puts a packet on the wire towards `to` directly (for hand-made packets). */
  inject(to: Host, packet: Uint8Array, delay = 0): void {
    this.insert({ at: this.now + delay, seq: this.seq++, to, data: packet.slice() });
  }

  private insert(f: InFlight): void {
    // Sorted by (at, seq); arrivals are mostly in order, so search from the end.
    let i = this.inFlight.length;
    while (i > 0 && this.inFlight[i - 1]!.at > f.at) i--;
    this.inFlight.splice(i, 0, f);
  }

  private route(packet: Uint8Array): Host | undefined {
    const v = packet[0]! >> 4;
    let dst: string;
    if (v === 4) dst = `${packet[16]}.${packet[17]}.${packet[18]}.${packet[19]}`;
    else {
      const groups: string[] = [];
      for (let i = 24; i < 40; i += 2) groups.push(((packet[i]! << 8) | packet[i + 1]!).toString(16));
      dst = groups.join(':');
    }
    return this.hosts.find((h) => h.addresses.some((a) => a === dst || expand(a) === dst));
  }

  nextEventTime(): number {
    let t = this.inFlight[0]?.at ?? Infinity;
    for (const h of this.hosts) t = Math.min(t, h.stack.nextDeadline());
    return t;
  }

  /** Runs events until `until` (inclusive) and sets the clock there. */
  runUntil(until: number): void {
    let stalls = 0;
    for (;;) {
      const t = this.nextEventTime();
      if (t > until) break;
      if (t <= this.now) { if (++stalls > 100_000) throw new Error(`wire stalled at ${this.now}`); } else stalls = 0;
      this.now = Math.max(this.now, t);
      this.step();
    }
    this.now = Math.max(this.now, until);
  }

  run(ms: number): void {
    this.runUntil(this.now + ms);
  }

  /** Runs until `done()` or `limit` ms of virtual time pass; returns whether done() became true. */
  runWhile(notDone: () => boolean, limit = 600_000): boolean {
    const end = this.now + limit;
    let stalls = 0;
    while (notDone()) {
      const t = this.nextEventTime();
      if (t > end) { this.now = end; return !notDone(); }
      if (t <= this.now) { if (++stalls > 100_000) throw new Error(`wire stalled at ${this.now}`); } else stalls = 0;
      this.now = Math.max(this.now, t);
      this.step();
    }
    return true;
  }

  private step(): void {
    while (this.inFlight.length > 0 && this.inFlight[0]!.at <= this.now) {
      const f = this.inFlight.shift()!;
      this.delivered++;
      f.to.stack.input(f.data, this.now);
    }
    for (const h of this.hosts) if (h.stack.nextDeadline() <= this.now) h.stack.tick(this.now);
  }

  get inFlightCount(): number { return this.inFlight.length; }
}

function expand(a: string): string {
  if (!a.includes(':')) return a;
  const [head, tail] = a.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const mid = tail === undefined ? [] : new Array(8 - h.length - t.length).fill('0');
  return [...h, ...mid, ...t].map((g) => parseInt(g, 16).toString(16)).join(':');
}

/** Two hosts A (10.0.0.1, fd00::1) and B (10.0.0.2, fd00::2) on one wire. */
export function twoHosts(options: { seed?: number; conditions?: WireConditions; a?: Partial<StackConfig>; b?: Partial<StackConfig> } = {}) {
  const wire = new Wire(options);
  const a = wire.host('a', ['10.0.0.1', 'fd00::1'], options.a, (options.seed ?? 1) * 2);
  const b = wire.host('b', ['10.0.0.2', 'fd00::2'], options.b, (options.seed ?? 1) * 2 + 1);
  return { wire, a, b };
}

/** Deterministic test data. */
export function pattern(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  seededRng(seed).fill(out);
  return out;
}

export function concat(chunks: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) { out.set(c, o); o += c.length; }
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

import { parseIp } from '../../../src/core/ip-address.ts';
import { finish, pseudoHeaderSum, sum16 } from '../../../src/core/checksum.ts';
import { writeIpv4Header } from '../../../src/netstack/stack/ipv4.ts';
import { writeIpv6Header } from '../../../src/netstack/stack/ipv6.ts';
import { parseTcp, tcpHeaderLength, writeTcpHeader } from '../../../src/netstack/stack/tcp/segment.ts';
import type { SegmentOut, TcpSegment } from '../../../src/netstack/stack/tcp/segment.ts';

/** A complete IP packet around `protocol` bytes `body` with the upper-layer checksum at `checksumAt`. */
export function ipPacket(src: string, dst: string, protocol: number, body: Uint8Array, checksumAt: number): Uint8Array {
  const s = parseIp(src);
  const d = parseIp(dst);
  const h = s.length === 4 ? 20 : 40;
  const p = new Uint8Array(h + body.length);
  p.set(body, h);
  if (checksumAt >= 0) {
    const b = p.subarray(h);
    b[checksumAt] = 0; b[checksumAt + 1] = 0;
    const init = s.length === 4 && protocol === 1 ? 0 : pseudoHeaderSum(s, d, protocol, body.length);
    const c = finish(sum16(b, 0, b.length, init));
    b[checksumAt] = c >> 8; b[checksumAt + 1] = c & 0xff;
  }
  if (s.length === 4) writeIpv4Header(p, s, d, protocol, p.length, 1, 0);
  else writeIpv6Header(p, s, d, protocol, body.length);
  return p;
}

/** A hand-made TCP segment as an IP packet. */
export function tcpPacket(src: string, dst: string, seg: SegmentOut, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const hl = tcpHeaderLength(seg);
  const body = new Uint8Array(hl + payload.length);
  writeTcpHeader(body, 0, seg);
  body.set(payload, hl);
  return ipPacket(src, dst, 6, body, 16);
}

/** The TCP segment in an IP packet, if it is one. */
export function tcpOf(packet: Uint8Array): TcpSegment | null {
  const v = packet[0]! >> 4;
  if (v === 4 && packet[9] === 6) return parseTcp(packet.subarray((packet[0]! & 15) * 4));
  if (v === 6 && packet[6] === 6) return parseTcp(packet.subarray(40));
  return null;
}
