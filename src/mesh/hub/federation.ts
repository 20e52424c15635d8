/**
 * Hubs joined into one fleet (docs/mesh.md §5), without sockets. A hub hands `Recv*` frames for
 * keys it does not hold to its `HubFederation`; the federation looks the key up in a presence
 * cache (key → hub id, fed by the registry) and queues the frame for that hub's subject. The
 * transport underneath (NATS in `nats.ts`, an in-memory bus in `memory-federation.ts`) only
 * moves bytes; every bound, every drop and the re-announcement live here.
 */
import { decodeHex, encodeHex } from '../../core/keys.ts';
import { FRAME, KEY_LENGTH, MAX_FRAME, NETWORK_ID_LENGTH, decodeFrame } from '../protocol/frames.ts';

/** What `forward` did: sent to another hub, no hub has the key, or could not (down, queue full). */
export type ForwardResult = 'sent' | 'absent' | 'dropped';

/** The hub as its federation sees it. */
export interface FederationSink {
  /** A frame from another hub for a client of this one; false when the client is not here. */
  deliverForwarded(recipient: Uint8Array, frame: Uint8Array): boolean;
  /** Another hub's client announced itself in a network this hub watches. */
  remoteAnnouncement(now: number, networkId: Uint8Array, key: Uint8Array, sealed: Uint8Array): void;
  /** `key` proved itself at another hub after it did here: the connection here is stale. */
  movedAway(key: Uint8Array): void;
}

/** What the hub calls (hub.ts). */
export interface HubFederation {
  attach(sink: FederationSink, hubId: Uint8Array): void;
  present(key: Uint8Array): void;
  absent(key: Uint8Array): void;
  forward(recipient: Uint8Array, frame: Uint8Array): ForwardResult;
  announce(networkId: Uint8Array, key: Uint8Array, sealed: Uint8Array): void;
  watchNetwork(networkId: Uint8Array): void;
  unwatchNetwork(networkId: Uint8Array): void;
}

/** What the federation asks of its transport; each call is fire-and-forget. */
export interface FederationTransport {
  /** Queued frames are waiting in `Federation.takeOutbox`. */
  kick(): void;
  putPresence(keyHex: string, hubHex: string): void;
  /** Removes the registration only if it still names `hubHex` (a newer one elsewhere stays). */
  deletePresence(keyHex: string, hubHex: string): void;
  putAnnouncement(networkHex: string, keyHex: string, value: Uint8Array): void;
  watchNetwork(networkHex: string): void;
  unwatchNetwork(networkHex: string): void;
}

export interface FederationLimits {
  /** Frames and bytes waiting for the transport; past either, frames are dropped. */
  maxQueueFrames: number;
  maxQueueBytes: number;
  /** Keys of other hubs' clients remembered. */
  maxPresence: number;
  /** How long a registration lives without being re-put (the KV bucket's TTL). */
  presenceTtlMs: number;
  /** Every hub re-puts its clients this often, well within the TTL. */
  reannounceMs: number;
  maxWatchedNetworks: number;
}

const DEFAULT_FEDERATION_LIMITS: FederationLimits = {
  maxQueueFrames: 8192,
  maxQueueBytes: 4 << 20,
  maxPresence: 200_000,
  presenceTtlMs: 60_000,
  reannounceMs: 20_000,
  maxWatchedNetworks: 1024,
};

const FEDERATION_DROPS = ['down', 'queueFull', 'malformed', 'notHere', 'presenceFull', 'tooManyNetworks'] as const;
export type FederationDrop = (typeof FEDERATION_DROPS)[number];

export interface FederationCounters {
  sent: number;
  received: number;
  drops: Record<FederationDrop, number>;
  movedAway: number;
  reannounced: number;
}

/** NATS subjects and KV names (docs/mesh.md §5). KV keys are hex: NATS refuses `+` and `/`. */
export const SUBJECT_PREFIX = 'ww.v1.hub.';
export const PRESENCE_BUCKET = 'ww_v1_presence';
export const ANNOUNCE_BUCKET = 'ww_v1_announce';
export const subjectOf = (hubHex: string): string => SUBJECT_PREFIX + hubHex;

/** Hub to hub: recipient (32) ‖ a RecvSignal or RecvPacket frame as the hub would send it. */
const MAX_FORWARD = KEY_LENGTH + MAX_FRAME;

export function encodeForward(recipient: Uint8Array, frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(KEY_LENGTH + frame.length);
  out.set(recipient, 0);
  out.set(frame, KEY_LENGTH);
  return out;
}

/** Null for anything but a well-formed, size-bounded recipient ‖ Recv* frame. */
export function decodeForward(message: Uint8Array): { recipient: Uint8Array; frame: Uint8Array } | null {
  if (message.length <= KEY_LENGTH || message.length > MAX_FORWARD) return null;
  const frame = message.subarray(KEY_LENGTH);
  const f = decodeFrame(frame);
  if (!f || (f.type !== FRAME.recvSignal && f.type !== FRAME.recvPacket)) return null;
  return { recipient: message.subarray(0, KEY_LENGTH), frame };
}

interface Queued {
  subject: string;
  data: Uint8Array;
}

/** The sans-I/O federation: presence cache, bounded outbox, re-announcement, counters. */
export class Federation implements HubFederation {
  readonly limits: FederationLimits;
  readonly counters: FederationCounters = {
    sent: 0, received: 0, movedAway: 0, reannounced: 0,
    drops: Object.fromEntries(FEDERATION_DROPS.map((d) => [d, 0])) as Record<FederationDrop, number>,
  };
  private readonly transport: FederationTransport;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private sink: FederationSink | null = null;
  private self = '';
  private isUp = false;
  private readonly local = new Set<string>();
  private readonly presence = new Map<string, { hub: string; expiresAt: number }>();
  private readonly watched = new Set<string>();
  private readonly outbox: Queued[] = [];
  private outboxHead = 0;
  private outboxBytes = 0;
  private lastReannounce = 0;

  /** `now` must be the hub's own clock: announcements it hands over expire on it. */
  constructor(transport: FederationTransport, options: { now: () => number; limits?: Partial<FederationLimits>; log?: (line: string) => void }) {
    this.transport = transport;
    this.now = options.now;
    this.limits = { ...DEFAULT_FEDERATION_LIMITS, ...options.limits };
    this.log = options.log ?? (() => {});
    this.lastReannounce = this.now();
  }

  get hubHex(): string {
    return this.self;
  }

  get up(): boolean {
    return this.isUp;
  }

  get presenceCount(): number {
    return this.presence.size;
  }

  get queuedFrames(): number {
    return this.outbox.length - this.outboxHead;
  }

  get queuedBytes(): number {
    return this.outboxBytes;
  }

  // ---- the hub's side ----

  attach(sink: FederationSink, hubId: Uint8Array): void {
    this.sink = sink;
    this.self = encodeHex(hubId);
  }

  present(key: Uint8Array): void {
    const hex = encodeHex(key);
    this.local.add(hex);
    this.presence.delete(hex);
    if (this.isUp) this.transport.putPresence(hex, this.self);
  }

  absent(key: Uint8Array): void {
    const hex = encodeHex(key);
    this.local.delete(hex);
    if (this.isUp) this.transport.deletePresence(hex, this.self);
  }

  forward(recipient: Uint8Array, frame: Uint8Array): ForwardResult {
    const hex = encodeHex(recipient);
    const where = this.presence.get(hex);
    if (!where || where.hub === this.self || where.expiresAt <= this.now()) return 'absent';
    if (!this.isUp) {
      this.counters.drops.down++;
      return 'dropped';
    }
    const data = encodeForward(recipient, frame);
    if (this.queuedFrames >= this.limits.maxQueueFrames || this.outboxBytes + data.length > this.limits.maxQueueBytes) {
      this.counters.drops.queueFull++;
      return 'dropped';
    }
    this.outbox.push({ subject: subjectOf(where.hub), data });
    this.outboxBytes += data.length;
    this.counters.sent++;
    if (this.queuedFrames === 1) this.transport.kick();
    return 'sent';
  }

  announce(networkId: Uint8Array, key: Uint8Array, sealed: Uint8Array): void {
    if (!this.isUp) return;
    // The value names this hub so that its own watch does not hand the entry back to it.
    const value = new Uint8Array(16 + sealed.length);
    value.set(decodeHex(this.self), 0);
    value.set(sealed, 16);
    this.transport.putAnnouncement(encodeHex(networkId), encodeHex(key), value);
  }

  watchNetwork(networkId: Uint8Array): void {
    const hex = encodeHex(networkId);
    if (this.watched.has(hex)) return;
    if (this.watched.size >= this.limits.maxWatchedNetworks) {
      this.counters.drops.tooManyNetworks++;
      return;
    }
    this.watched.add(hex);
    this.transport.watchNetwork(hex);
  }

  unwatchNetwork(networkId: Uint8Array): void {
    const hex = encodeHex(networkId);
    if (this.watched.delete(hex)) this.transport.unwatchNetwork(hex);
  }

  // ---- the transport's side ----

  /** Up to `maxBytes` of queued frames (at least one), oldest first, for the transport to publish. */
  takeOutbox(maxBytes: number): Queued[] {
    const out: Queued[] = [];
    let bytes = 0;
    while (this.outboxHead < this.outbox.length && (out.length === 0 || bytes + this.outbox[this.outboxHead]!.data.length <= maxBytes)) {
      const q = this.outbox[this.outboxHead]!;
      this.outbox[this.outboxHead++] = undefined as unknown as Queued;
      bytes += q.data.length;
      out.push(q);
    }
    this.outboxBytes -= bytes;
    if (this.outboxHead === this.outbox.length) {
      this.outbox.length = 0;
      this.outboxHead = 0;
    }
    return out;
  }

  /** A message on this hub's subject. Never throws. */
  onMessage(message: Uint8Array): void {
    const m = decodeForward(message);
    if (!m) {
      this.counters.drops.malformed++;
      return;
    }
    if (this.sink?.deliverForwarded(m.recipient, m.frame)) this.counters.received++;
    else this.counters.drops.notHere++;
  }

  /** A registry change: `hubHex` null when the key was deleted. */
  onPresence(keyHex: string, hubHex: string | null): void {
    if (!/^[0-9a-f]{64}$/.test(keyHex)) return;
    if (hubHex === null) {
      this.presence.delete(keyHex);
      return;
    }
    if (hubHex === this.self) {
      this.presence.delete(keyHex);
      return;
    }
    if (this.local.has(keyHex)) {
      // The newer proof wins, across hubs as within one (docs/mesh.md §1).
      this.counters.movedAway++;
      this.local.delete(keyHex);
      this.sink?.movedAway(decodeHex(keyHex));
    }
    if (!this.presence.has(keyHex) && this.presence.size >= this.limits.maxPresence) {
      this.expirePresence();
      if (this.presence.size >= this.limits.maxPresence) {
        this.counters.drops.presenceFull++;
        return;
      }
    }
    this.presence.set(keyHex, { hub: hubHex, expiresAt: this.now() + this.limits.presenceTtlMs });
  }

  /** An entry of a watched network's registry. */
  onAnnouncement(networkHex: string, keyHex: string, value: Uint8Array): void {
    if (!this.watched.has(networkHex) || !/^[0-9a-f]{64}$/.test(keyHex) || value.length <= 16) return;
    if (encodeHex(value.subarray(0, 16)) === this.self) return;
    this.sink?.remoteAnnouncement(this.now(), decodeHex(networkHex).subarray(0, NETWORK_ID_LENGTH), decodeHex(keyHex), value.subarray(16));
  }

  /** The transport's connection came or went; on coming back, every local key is put again. */
  onStatus(up: boolean, detail: string): void {
    if (up === this.isUp) return;
    this.isUp = up;
    if (up) {
      this.log(`federation up (${detail}): ${this.local.size} local clients registered`);
      this.reannounce();
    } else {
      this.log(`federation down (${detail}): serving local clients only`);
    }
  }

  /** Re-puts local keys every `reannounceMs` (bucket TTL, no per-key TTL); expires stale cache. */
  tick(): void {
    const now = this.now();
    if (now - this.lastReannounce < this.limits.reannounceMs) return;
    this.lastReannounce = now;
    this.expirePresence();
    if (this.isUp) this.reannounce();
  }

  private reannounce(): void {
    for (const hex of this.local) this.transport.putPresence(hex, this.self);
    this.counters.reannounced += this.local.size;
  }

  private expirePresence(): void {
    const now = this.now();
    for (const [k, v] of this.presence) if (v.expiresAt <= now) this.presence.delete(k);
  }
}
