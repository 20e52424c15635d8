/**
 * A scenario harness for the core: endpoints on a virtual wire with a virtual clock that jumps
 * to the next event (a datagram arriving or an endpoint deadline). The wire can lose, delay,
 * reorder and duplicate datagrams from a seeded generator, so every run is repeatable.
 */
import { Endpoint } from '../../src/core/endpoint.ts';
import type { EndpointEvent, EndpointOptions } from '../../src/core/endpoint.ts';
import type { CryptoProvider } from '../../src/core/crypto.ts';
import type { PeerId } from '../../src/core/peer.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';

export interface WireConditions {
  /** Probability a datagram is lost. */
  loss: number;
  /** Probability a datagram is delivered twice. */
  duplicate: number;
  /** Base one-way latency (ms). */
  latency: number;
  /** Extra random delay up to this many ms (reorders datagrams). */
  jitter: number;
}

export const PERFECT: WireConditions = { loss: 0, duplicate: 0, latency: 5, jitter: 0 };

interface InFlight { at: number; seq: number; to: Node; from: string; data: Uint8Array }

export interface Delivered { at: number; peer: PeerId; data: Uint8Array }

/** One endpoint on the virtual wire, with everything it did recorded. */
export class Node {
  readonly name: string;
  readonly endpoint: Endpoint<string>;
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly delivered: Delivered[] = [];
  readonly events: (EndpointEvent & { at: number })[] = [];
  readonly sent: { at: number; to: string; type: number; length: number }[] = [];
  /** Peer id → name of the node it is, for routing datagrams. */
  readonly peerNames = new Map<PeerId, string>();
  /** Per peer, the node name it last authenticated from (roaming). */
  readonly endpoints = new Map<PeerId, string>();
  readonly sim: Simulation;

  constructor(sim: Simulation, name: string, seed: number, options: Partial<EndpointOptions<string>>) {
    this.sim = sim;
    this.name = name;
    const rng = seededRng(seed);
    this.privateKey = new Uint8Array(32);
    rng.fill(this.privateKey);
    this.endpoint = new Endpoint<string>({
      crypto: sim.crypto,
      rng,
      privateKey: this.privateKey,
      wallClock: (now) => 1_700_000_000_000 + now,
      io: {
        sendToPeer: (peer, datagram) => {
          const to = this.endpoints.get(peer) ?? this.peerNames.get(peer);
          this.sent.push({ at: sim.now, to: to ?? '?', type: datagram[0]!, length: datagram.length });
          if (to) sim.transmit(this.name, to, datagram);
        },
        sendToSource: (source, datagram) => {
          this.sent.push({ at: sim.now, to: source, type: datagram[0]!, length: datagram.length });
          sim.transmit(this.name, source, datagram);
        },
        deliver: (peer, packet) => { this.delivered.push({ at: sim.now, peer, data: packet.slice() }); },
        authenticated: (peer, source) => { this.endpoints.set(peer, source); },
        sourceTag: (source) => new TextEncoder().encode(source),
        event: (event) => { this.events.push({ ...event, at: sim.now }); },
      },
      ...options,
    });
    this.publicKey = this.endpoint.publicKey!;
  }

  /** Adds `other` as a peer of this node and returns the peer id. */
  addPeer(other: Node, extra: { presharedKey?: Uint8Array; persistentKeepalive?: number } = {}): PeerId {
    const id = this.endpoint.addPeer({ publicKey: other.publicKey, ...extra }, this.sim.now);
    this.peerNames.set(id, other.name);
    return id;
  }

  send(peer: PeerId, data: Uint8Array): void {
    this.endpoint.send(this.sim.now, peer, data);
  }

  eventsOf(type: EndpointEvent['type']): (EndpointEvent & { at: number })[] {
    return this.events.filter((e) => e.type === type);
  }

  sentOfType(type: number): { at: number; to: string; type: number; length: number }[] {
    return this.sent.filter((s) => s.type === type);
  }
}

export class Simulation {
  now = 0;
  readonly crypto: CryptoProvider;
  readonly nodes = new Map<string, Node>();
  conditions: WireConditions;
  /** Drop everything from→to while set (a cut link). */
  readonly cut = new Set<string>();
  private readonly wireRng;
  private readonly inFlight: InFlight[] = [];
  private seq = 0;
  datagramsLost = 0;
  datagramsDuplicated = 0;

  constructor(options: { seed?: number; conditions?: WireConditions; crypto?: CryptoProvider } = {}) {
    this.crypto = options.crypto ?? nodeCrypto;
    this.conditions = options.conditions ?? PERFECT;
    this.wireRng = seededRng((options.seed ?? 1) ^ 0x5eed);
  }

  node(name: string, seed: number, options: Partial<EndpointOptions<string>> = {}): Node {
    const n = new Node(this, name, seed, options);
    this.nodes.set(name, n);
    return n;
  }

  random(): number {
    return this.wireRng.nextUint32() / 0x1_0000_0000;
  }

  transmit(from: string, to: string, datagram: Uint8Array): void {
    const node = this.nodes.get(to);
    if (!node || this.cut.has(`${from}>${to}`)) { this.datagramsLost++; return; }
    const c = this.conditions;
    if (this.random() < c.loss) { this.datagramsLost++; return; }
    const copies = this.random() < c.duplicate ? 2 : 1;
    if (copies === 2) this.datagramsDuplicated++;
    for (let i = 0; i < copies; i++) {
      const at = this.now + c.latency + this.random() * c.jitter;
      this.inFlight.push({ at, seq: this.seq++, to: node, from, data: datagram.slice() });
    }
  }

  /** The next time anything happens. */
  nextEventTime(): number {
    let t = Infinity;
    for (const f of this.inFlight) if (f.at < t) t = f.at;
    for (const n of this.nodes.values()) t = Math.min(t, n.endpoint.nextDeadline());
    return t;
  }

  /** Runs events in time order until `until` (inclusive), then sets the clock to `until`. */
  runUntil(until: number): void {
    let stalls = 0;
    for (;;) {
      const t = this.nextEventTime();
      if (t > until) break;
      // A deadline that tick() does not clear would spin forever: fail loudly instead.
      if (t <= this.now && ++stalls > 100_000) throw new Error(`simulation stalled at ${this.now}: ${this.describe()}`);
      if (t > this.now) stalls = 0;
      this.now = Math.max(this.now, t);
      this.processDue();
    }
    this.now = Math.max(this.now, until);
  }

  run(ms: number): void {
    this.runUntil(this.now + ms);
  }

  private processDue(): void {
    // Deliver every datagram that is due, in arrival order, then fire due timers.
    for (;;) {
      let best = -1;
      for (let i = 0; i < this.inFlight.length; i++) {
        const f = this.inFlight[i]!;
        if (f.at <= this.now && (best < 0 || f.at < this.inFlight[best]!.at ||
          (f.at === this.inFlight[best]!.at && f.seq < this.inFlight[best]!.seq))) best = i;
      }
      if (best < 0) break;
      const [f] = this.inFlight.splice(best, 1);
      f!.to.endpoint.recv(this.now, f!.data, f!.from);
    }
    for (const n of this.nodes.values()) {
      if (n.endpoint.nextDeadline() <= this.now) n.endpoint.tick(this.now);
    }
  }

  describe(): string {
    const parts: string[] = [];
    for (const n of this.nodes.values()) {
      for (const id of n.endpoint.peerIds()) parts.push(`${n.name}/${id} ${JSON.stringify(n.endpoint.inspectPeer(id), (_k, v) => v instanceof Uint8Array ? undefined : v)}`);
    }
    return parts.join('; ');
  }

  get inFlightCount(): number {
    return this.inFlight.length;
  }
}

/** Two nodes that know each other: the usual starting point. */
export function pair(options: { seed?: number; conditions?: WireConditions; crypto?: CryptoProvider; psk?: Uint8Array } = {}) {
  const sim = new Simulation(options);
  const a = sim.node('a', (options.seed ?? 1) * 7 + 1);
  const b = sim.node('b', (options.seed ?? 1) * 7 + 2);
  const aToB = a.addPeer(b, { presharedKey: options.psk });
  const bToA = b.addPeer(a, { presharedKey: options.psk });
  return { sim, a, b, aToB, bToA };
}

/** A recognisable payload: `tag` then a counter, padded to `size`. */
export function packet(tag: number, n: number, size = 64): Uint8Array {
  const p = new Uint8Array(size);
  p[0] = 0x45;
  p[1] = tag;
  new DataView(p.buffer).setUint32(4, n);
  return p;
}

export function packetNumber(p: Uint8Array): number {
  return new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(4);
}

/**
 * A pair with a session both ways: a sent b one packet and b answered with one, so a's timers
 * are in the state received data leaves them (keepalive armed, no handshake expected). From
 * then on every datagram a sends is recorded whole in `wire`; both `delivered` lists are empty.
 */
export function establishedPair() {
  const p = pair();
  const wire: Uint8Array[] = [];
  const transmit = p.sim.transmit.bind(p.sim);
  p.sim.transmit = (from, to, d) => { if (from === 'a') wire.push(d.slice()); transmit(from, to, d); };
  p.a.send(p.aToB, packet(1, 0));
  p.sim.run(100);
  p.b.send(p.bToA, packet(1, 1));
  p.sim.run(100);
  if (p.b.delivered.length !== 1 || p.a.delivered.length !== 1) throw new Error('establishedPair: the first exchange did not arrive');
  wire.length = 0;
  p.a.delivered.length = 0;
  p.b.delivered.length = 0;
  return { ...p, wire };
}
