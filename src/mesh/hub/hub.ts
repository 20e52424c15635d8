/**
 * The hub's logic (docs/mesh.md §1, §4), without sockets: clients prove their key, then send
 * sealed signals and relayed datagrams to other keys, announce into networks and subscribe to
 * them. Every table is bounded; every bad frame is dropped and counted. `ws-server.ts` puts it
 * on WebSockets; `federation.ts` joins hubs.
 */
import type { CryptoProvider, X25519PrivateKey } from '../../core/crypto.ts';
import { equalConstantTime } from '../../core/crypto.ts';
import type { Rng } from '../../core/rng.ts';
import { decodeHex, encodeHex } from '../../core/keys.ts';
import { expectedHubProof, tokenProof } from '../protocol/keys.ts';
import { ABSENT, FRAME, HUB_ERROR, KEY_LENGTH, MAX_FRAME, PROTOCOL_VERSION, decodeFrame, encodeFrame } from '../protocol/frames.ts';
import type { ObservedAddress } from '../protocol/frames.ts';
import type { FederationSink, HubFederation } from './federation.ts';

export type { HubFederation } from './federation.ts';

/** One client connection as the hub sees it (a WebSocket, or an in-memory twin). */
export interface HubLink {
  readonly remote: ObservedAddress | null;
  send(frame: Uint8Array): void;
  /** Bytes handed to `send` and not yet written out (a WebSocket's bufferedAmount). */
  queuedBytes(): number;
  close(code: number, reason: string): void;
  /** Stop and restart reading from this client: backpressure on a flooding client. */
  pause?(): void;
  resume?(): void;
}

export interface HubLimits {
  maxClients: number;
  helloTimeoutMs: number;
  idleTimeoutMs: number;
  /** Bytes a client may send per second, and the bucket's depth. */
  rateBytesPerSecond: number;
  burstBytes: number;
  /** Frames per second (signals are small; this is what bounds a signal flood). */
  framesPerSecond: number;
  /** Bytes queued towards one client beyond which relayed datagrams to it are dropped. */
  maxQueueBytes: number;
  maxNetworksPerClient: number;
  maxAnnouncementsPerNetwork: number;
  maxNetworks: number;
  announcementTtlMs: number;
  maxAnnouncementBytes: number;
}

export const DEFAULT_HUB_LIMITS: HubLimits = {
  maxClients: 50_000,
  helloTimeoutMs: 5_000,
  idleTimeoutMs: 75_000,
  rateBytesPerSecond: 64 << 20,
  burstBytes: 8 << 20,
  framesPerSecond: 20_000,
  maxQueueBytes: 2 << 20,
  maxNetworksPerClient: 4,
  maxAnnouncementsPerNetwork: 1024,
  maxNetworks: 10_000,
  announcementTtlMs: 60_000,
  maxAnnouncementBytes: 512,
};

export interface HubOptions {
  crypto: CryptoProvider;
  rng: Rng;
  /** Only these keys (hex) are admitted, when given. */
  allow?: ReadonlySet<string>;
  /** Clients must also prove knowledge of this network token, when given. */
  networkToken?: Uint8Array;
  limits?: Partial<HubLimits>;
  federation?: HubFederation;
  /** One line per notable event (a refused hello, a replaced client); never a secret. */
  log?: (line: string) => void;
}

const HUB_DROPS = ['malformed', 'unexpected', 'rateLimited', 'queueFull', 'notConnected', 'federation', 'tooManyNetworks', 'announcementTooLarge'] as const;
export type HubDrop = (typeof HUB_DROPS)[number];

const HELLO_REFUSALS = ['badVersion', 'badProof', 'badToken', 'notAllowed', 'timeout', 'full'] as const;
export type HelloRefusal = (typeof HELLO_REFUSALS)[number];

export interface HubCounters {
  drops: Record<HubDrop, number>;
  refused: Record<HelloRefusal, number>;
  replaced: number;
  signals: number;
  packets: number;
  relayedBytes: number;
  forwarded: number;
  announcements: number;
}

interface Announcement {
  key: Uint8Array;
  sealed: Uint8Array;
  expiresAt: number;
}

/** One connection's state at the hub. */
export class HubClient {
  readonly link: HubLink;
  key: Uint8Array | null = null;
  keyHex = '';
  private ephemeral: X25519PrivateKey | null;
  readonly challenge = new Uint8Array(32);
  readonly connectedAt: number;
  lastSeen: number;
  byteTokens: number;
  frameTokens: number;
  refilledAt: number;
  paused = false;
  closed = false;
  readonly networks = new Set<string>();

  constructor(link: HubLink, ephemeral: X25519PrivateKey, now: number, limits: HubLimits) {
    this.link = link;
    this.ephemeral = ephemeral;
    this.connectedAt = now;
    this.lastSeen = now;
    this.byteTokens = limits.burstBytes;
    this.frameTokens = limits.framesPerSecond;
    this.refilledAt = now;
  }

  /** The hello's ephemeral key, handed out once: it is forgotten as soon as the proof is checked. */
  takeEphemeral(): X25519PrivateKey | null {
    const e = this.ephemeral;
    this.ephemeral = null;
    return e;
  }
}

export class Hub implements FederationSink {
  readonly limits: HubLimits;
  readonly counters: HubCounters = {
    drops: Object.fromEntries(HUB_DROPS.map((d) => [d, 0])) as Record<HubDrop, number>,
    refused: Object.fromEntries(HELLO_REFUSALS.map((d) => [d, 0])) as Record<HelloRefusal, number>,
    replaced: 0, signals: 0, packets: 0, relayedBytes: 0, forwarded: 0, announcements: 0,
  };
  readonly hubId = new Uint8Array(16);
  private readonly options: HubOptions;
  private readonly pending = new Set<HubClient>();
  private readonly byKey = new Map<string, HubClient>();
  private readonly networks = new Map<string, Map<string, Announcement>>();
  private readonly subscribers = new Map<string, Set<HubClient>>();
  private readonly log: (line: string) => void;

  constructor(options: HubOptions) {
    this.options = options;
    this.limits = { ...DEFAULT_HUB_LIMITS, ...options.limits };
    this.log = options.log ?? (() => {});
    options.rng.fill(this.hubId);
    options.federation?.attach(this, this.hubId);
  }

  /** The fleet this hub is part of, if any (for metrics). */
  get federation(): HubFederation | null {
    return this.options.federation ?? null;
  }

  get clientCount(): number {
    return this.byKey.size;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Whether `key` (raw) is connected and proven at this hub. */
  has(key: Uint8Array): boolean {
    return this.byKey.has(encodeHex(key));
  }

  /** A new connection: the hub sends its hello and waits for the client's proof. */
  connect(now: number, link: HubLink): HubClient {
    const secret = new Uint8Array(32);
    this.options.rng.fill(secret);
    const ephemeral = this.options.crypto.x25519PrivateKey(secret);
    secret.fill(0);
    const client = new HubClient(link, ephemeral, now, this.limits);
    this.options.rng.fill(client.challenge);
    if (this.pending.size + this.byKey.size >= this.limits.maxClients) {
      this.counters.refused.full++;
      client.closed = true;
      link.close(1013, 'hub full');
      return client;
    }
    this.pending.add(client);
    link.send(encodeFrame({
      type: FRAME.serverHello, version: PROTOCOL_VERSION, hubEphemeral: ephemeral.publicKey,
      challenge: client.challenge, tokenRequired: this.options.networkToken !== undefined,
    }));
    return client;
  }

  /** One WebSocket message from `client`. Never throws. */
  receive(now: number, client: HubClient, message: Uint8Array): void {
    if (client.closed) return;
    client.lastSeen = now;
    if (message.length > MAX_FRAME) {
      this.refuse(client, HUB_ERROR.tooLarge, 'frame too large');
      return;
    }
    const frame = decodeFrame(message);
    if (client.key === null) {
      if (!frame || frame.type !== FRAME.clientHello) {
        this.counters.drops.malformed++;
        this.refuse(client, HUB_ERROR.badHello, 'expected a client hello');
        return;
      }
      this.hello(now, client, frame.version, frame.publicKey, frame.proof, frame.tokenProof);
      return;
    }
    if (!frame) {
      this.counters.drops.malformed++;
      return;
    }
    if (!this.withinRate(now, client, message.length)) {
      this.counters.drops.rateLimited++;
      if (frame.type === FRAME.sendSignal) this.absent(client, frame.key, ABSENT.rateLimited);
      return;
    }
    switch (frame.type) {
      case FRAME.sendSignal:
      case FRAME.sendPacket:
        this.relay(client, frame.type, frame.key, frame.payload);
        return;
      case FRAME.announce:
        this.announce(now, client, encodeHex(frame.networkId), frame.networkId, frame.sealed);
        return;
      case FRAME.subscribe:
        this.subscribe(client, encodeHex(frame.networkId), frame.networkId);
        return;
      case FRAME.ping:
        client.link.send(encodeFrame({ type: FRAME.pong, data: frame.data }));
        return;
      default:
        this.counters.drops.unexpected++;
    }
  }

  /** The connection is gone (closed by either side). */
  disconnect(client: HubClient): void {
    client.closed = true;
    this.pending.delete(client);
    for (const n of client.networks) this.subscribers.get(n)?.delete(client);
    if (client.key && this.byKey.get(client.keyHex) === client) {
      this.byKey.delete(client.keyHex);
      this.options.federation?.absent(client.key);
    }
  }

  /** A frame from another hub for a client of this one (federation). */
  deliverForwarded(recipient: Uint8Array, frame: Uint8Array): boolean {
    const to = this.byKey.get(encodeHex(recipient));
    if (!to) return false;
    if (to.link.queuedBytes() > this.limits.maxQueueBytes) {
      this.counters.drops.queueFull++;
      return true;
    }
    to.link.send(frame);
    return true;
  }

  /** Another hub's client announced itself in a network a client here joined (federation). */
  remoteAnnouncement(now: number, networkId: Uint8Array, key: Uint8Array, sealed: Uint8Array): void {
    const network = encodeHex(networkId);
    const entries = this.networks.get(network);
    if (!entries || key.length !== KEY_LENGTH) return;
    if (sealed.length > this.limits.maxAnnouncementBytes) {
      this.counters.drops.announcementTooLarge++;
      return;
    }
    const hex = encodeHex(key);
    if (this.byKey.has(hex)) return;
    if (!entries.has(hex) && entries.size >= this.limits.maxAnnouncementsPerNetwork) {
      this.counters.drops.tooManyNetworks++;
      return;
    }
    const a: Announcement = { key: Uint8Array.from(key), sealed: Uint8Array.from(sealed), expiresAt: now + this.limits.announcementTtlMs };
    entries.set(hex, a);
    this.notify(network, encodeFrame({ type: FRAME.announcement, networkId, key: a.key, sealed: a.sealed }), null);
  }

  /** `key` proved itself at another hub since: this connection is stale (federation). */
  movedAway(key: Uint8Array): void {
    const c = this.byKey.get(encodeHex(key));
    if (!c) return;
    this.log(`key ${c.keyHex.slice(0, 16)}… moved to another hub`);
    // No Error(replaced) frame: that tells a client to stop, and this may be its live connection.
    c.link.close(4010, 'moved to another hub');
    this.disconnect(c);
  }

  /**
   * Resumes `client` if it was paused by its rate limit and its buckets have refilled since;
   * true while it stays paused. The socket edge calls it soon after a pause, so a client over its
   * burst waits for its bucket, not for the next tick.
   */
  refill(now: number, client: HubClient): boolean {
    if (client.closed || !client.paused) return false;
    this.withinRate(now, client, 0);
    return client.paused;
  }

  /** Hello and idle deadlines, expired announcements, paused clients. Call about once a second. */
  tick(now: number): void {
    for (const c of this.pending) {
      if (now - c.connectedAt >= this.limits.helloTimeoutMs) {
        this.counters.refused.timeout++;
        this.refuse(c, HUB_ERROR.helloTimeout, 'no hello in time');
      }
    }
    for (const c of this.byKey.values()) {
      if (now - c.lastSeen >= this.limits.idleTimeoutMs) this.refuse(c, 1001, 'idle');
      else if (c.paused) this.withinRate(now, c, 0);
    }
    for (const [n, entries] of this.networks) {
      for (const [k, a] of entries) {
        if (a.expiresAt > now) continue;
        entries.delete(k);
        this.notify(n, encodeFrame({ type: FRAME.withdrawn, networkId: decodeHex(n), key: a.key }), null);
      }
      if (entries.size === 0 && !this.subscribers.get(n)?.size) {
        this.networks.delete(n);
        this.subscribers.delete(n);
        this.options.federation?.unwatchNetwork(decodeHex(n));
      }
    }
  }

  /** Closes every connection (graceful shutdown). */
  close(): void {
    for (const c of [...this.pending, ...this.byKey.values()]) this.refuse(c, HUB_ERROR.shuttingDown, 'hub shutting down');
  }

  private hello(now: number, client: HubClient, version: number, key: Uint8Array, proof: Uint8Array, token: Uint8Array): void {
    const ephemeral = client.takeEphemeral();
    if (version !== PROTOCOL_VERSION || !ephemeral) {
      this.counters.refused.badVersion++;
      this.refuse(client, HUB_ERROR.badHello, `protocol version ${version} not supported`);
      return;
    }
    const expected = expectedHubProof(this.options.crypto, ephemeral, key, client.challenge);
    if (!expected || !equalConstantTime(expected, proof)) {
      this.counters.refused.badProof++;
      this.refuse(client, HUB_ERROR.forbidden, 'key not proven');
      return;
    }
    if (this.options.networkToken) {
      const want = tokenProof(this.options.crypto, this.options.networkToken, client.challenge, key);
      if (!equalConstantTime(want, token)) {
        this.counters.refused.badToken++;
        this.refuse(client, HUB_ERROR.forbidden, 'network token not proven');
        return;
      }
    }
    const hex = encodeHex(key);
    if (this.options.allow && !this.options.allow.has(hex)) {
      this.counters.refused.notAllowed++;
      this.log(`refused key ${hex.slice(0, 16)}…: not on the allow list`);
      this.refuse(client, HUB_ERROR.forbidden, 'key not allowed');
      return;
    }
    this.pending.delete(client);
    const previous = this.byKey.get(hex);
    if (previous) {
      this.counters.replaced++;
      previous.key = null; // its disconnect must not unregister the new connection
      this.refuse(previous, HUB_ERROR.replaced, 'replaced by a newer connection');
    }
    client.key = Uint8Array.from(key);
    client.keyHex = hex;
    client.lastSeen = now;
    this.byKey.set(hex, client);
    this.options.federation?.present(client.key);
    client.link.send(encodeFrame({
      type: FRAME.welcome, hubId: this.hubId, observed: client.link.remote,
      maxFrame: MAX_FRAME, rate: this.limits.rateBytesPerSecond, burst: this.limits.burstBytes,
    }));
  }

  private relay(from: HubClient, type: typeof FRAME.sendSignal | typeof FRAME.sendPacket, recipient: Uint8Array, payload: Uint8Array): void {
    const isSignal = type === FRAME.sendSignal;
    const out = encodeFrame({ type: isSignal ? FRAME.recvSignal : FRAME.recvPacket, key: from.key!, payload });
    const to = this.byKey.get(encodeHex(recipient));
    if (isSignal) this.counters.signals++;
    else this.counters.packets++;
    if (to) {
      // Signals are small and rare: they may exceed the queue bound by a little, so a relayed
      // flood towards a client never starves its signaling.
      const limit = isSignal ? this.limits.maxQueueBytes * 2 : this.limits.maxQueueBytes;
      if (to.link.queuedBytes() > limit) {
        this.counters.drops.queueFull++;
        if (isSignal) this.absent(from, recipient, ABSENT.queueFull);
        return;
      }
      to.link.send(out);
      this.counters.relayedBytes += payload.length;
      return;
    }
    const forwarded = this.options.federation?.forward(recipient, out) ?? 'absent';
    if (forwarded === 'sent') {
      this.counters.forwarded++;
      this.counters.relayedBytes += payload.length;
      return;
    }
    if (forwarded === 'dropped') {
      // The key is at another hub but the federation is down or its queue full.
      this.counters.drops.federation++;
      if (isSignal) this.absent(from, recipient, ABSENT.queueFull);
      return;
    }
    this.counters.drops.notConnected++;
    if (isSignal) this.absent(from, recipient, ABSENT.notConnected);
  }

  private announce(now: number, client: HubClient, network: string, networkId: Uint8Array, sealed: Uint8Array): void {
    if (sealed.length > this.limits.maxAnnouncementBytes) {
      this.counters.drops.announcementTooLarge++;
      return;
    }
    if (!this.join(client, network)) return;
    let entries = this.networks.get(network);
    if (!entries) {
      entries = new Map();
      this.networks.set(network, entries);
    }
    if (!entries.has(client.keyHex) && entries.size >= this.limits.maxAnnouncementsPerNetwork) {
      this.counters.drops.tooManyNetworks++;
      return;
    }
    const a: Announcement = { key: client.key!, sealed: Uint8Array.from(sealed), expiresAt: now + this.limits.announcementTtlMs };
    entries.set(client.keyHex, a);
    this.counters.announcements++;
    this.options.federation?.announce(networkId, a.key, a.sealed);
    this.notify(network, encodeFrame({ type: FRAME.announcement, networkId, key: a.key, sealed: a.sealed }), client);
  }

  private subscribe(client: HubClient, network: string, networkId: Uint8Array): void {
    if (!this.join(client, network)) return;
    let subs = this.subscribers.get(network);
    if (!subs) {
      subs = new Set();
      this.subscribers.set(network, subs);
    }
    subs.add(client);
    for (const [k, a] of this.networks.get(network) ?? []) {
      if (k !== client.keyHex) client.link.send(encodeFrame({ type: FRAME.announcement, networkId, key: a.key, sealed: a.sealed }));
    }
  }

  /** Admits `client` to `network`'s tables within the per-client and global bounds. */
  private join(client: HubClient, network: string): boolean {
    if (client.networks.has(network)) return true;
    const isNew = !this.networks.has(network) && !this.subscribers.has(network);
    if (client.networks.size >= this.limits.maxNetworksPerClient || (isNew && this.networks.size >= this.limits.maxNetworks)) {
      this.counters.drops.tooManyNetworks++;
      return false;
    }
    client.networks.add(network);
    if (!this.networks.has(network)) {
      this.networks.set(network, new Map());
      this.options.federation?.watchNetwork(decodeHex(network));
    }
    return true;
  }

  private notify(network: string, frame: Uint8Array, except: HubClient | null): void {
    for (const s of this.subscribers.get(network) ?? []) {
      if (s !== except && s.link.queuedBytes() <= this.limits.maxQueueBytes * 2) s.link.send(frame);
    }
  }

  /** Token buckets on bytes and frames; a client over them is paused until they refill. */
  private withinRate(now: number, c: HubClient, bytes: number): boolean {
    const l = this.limits;
    const dt = Math.max(0, now - c.refilledAt) / 1000;
    c.refilledAt = now;
    c.byteTokens = Math.min(l.burstBytes, c.byteTokens + dt * l.rateBytesPerSecond);
    c.frameTokens = Math.min(l.framesPerSecond, c.frameTokens + dt * l.framesPerSecond);
    if (bytes === 0) {
      // Read again once the largest frame would pass: resuming earlier only turns waiting into drops.
      if (c.paused && c.byteTokens >= Math.min(l.burstBytes, MAX_FRAME) && c.frameTokens >= 1) {
        c.paused = false;
        c.link.resume?.();
      }
      return true;
    }
    if (c.byteTokens < bytes || c.frameTokens < 1) {
      if (!c.paused && c.link.pause) {
        c.paused = true;
        c.link.pause();
      }
      return false;
    }
    c.byteTokens -= bytes;
    c.frameTokens -= 1;
    return true;
  }

  private absent(to: HubClient, key: Uint8Array, reason: number): void {
    if (key.length !== KEY_LENGTH) return;
    to.link.send(encodeFrame({ type: FRAME.peerAbsent, key, reason }));
  }

  private refuse(client: HubClient, code: number, reason: string): void {
    if (code >= 0x0400) client.link.send(encodeFrame({ type: FRAME.error, code, reason }));
    client.link.close(code >= 0x0400 ? 4000 + (code & 0xff) : code, reason);
    this.disconnect(client);
  }
}

