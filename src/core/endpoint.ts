/**
 * The sans-I/O WireGuard endpoint: many peers, one local static key.
 *
 * Inputs are calls with the current time `now` (milliseconds, monotonic, chosen by the caller):
 * `recv` for datagrams from the network, `send` for plaintext packets to a peer, `tick` when the
 * deadline from `nextDeadline()` has come. Outputs go synchronously to the `EndpointIO` the
 * caller supplies: datagrams for a peer (the caller knows its address), datagrams back to the
 * source of a packet (cookie replies), decrypted packets, and events.
 *
 * Buffers handed to `io` are valid only during the call: copy them to keep them. `recv` may
 * decrypt in place, overwriting the datagram it was given. `deliver` and `event` may call back
 * into the endpoint (e.g. `send` a reply); `sendToPeer` and `sendToSource` must not, because the
 * send buffer they are lent is still in use.
 *
 * The responder's `handshakeCompleted` comes when the initiator's first packet confirms the
 * session, not when the response is sent (as in wireguard-go).
 *
 * The core never sees addresses. A datagram's source is an opaque value of type S that is
 * handed back in `authenticated` (so the caller can update the peer's endpoint — roaming) and
 * in `sendToSource`; `io.sourceTag(source)` gives bytes identifying it for cookies (IP ‖ port).
 */
import { isAllZero, readU32LE, utf8, writeU32LE } from './bytes.ts';
import { encodeHex } from './keys.ts';
import {
  CONSTRUCTION, IDENTIFIER, KEEPALIVE_TIMEOUT, MAX_QUEUED_PACKETS, REKEY_AFTER_MESSAGES_HI,
  REKEY_AFTER_TIME, REKEY_ATTEMPT_TIME, REKEY_ON_RECEIVE_AGE, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX,
  UNDER_LOAD_AFTER_TIME, UNDER_LOAD_HANDSHAKES_PER_SECOND, ZERO_KEY_MATERIAL_AFTER,
} from './constants.ts';
import { CookieChecker } from './cookie.ts';
import type { CryptoProvider } from './crypto.ts';
import { equalConstantTime, zeroize } from './crypto.ts';
import { ConfigError } from './errors.ts';
import type { HandshakeContext, IndexEntry, LocalIdentity } from './handshake.ts';
import {
  beginSession, completeInitiation, consumeInitiation, consumeResponse, createInitiation, createResponse,
} from './handshake.ts';
import type { InitiationJob, InitiationResult } from './handshake.ts';
import { IndexTable } from './indexes.ts';
import {
  CookieReply, Initiation, MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_TRANSPORT,
  KEY_SIZE, MAC_SIZE, messageType, paddedLength, Response, TAG_SIZE, Transport, writeType,
} from './messages.ts';
import type { NoiseStart } from './noise.ts';
import { noiseStart } from './noise.ts';
import type { PeerConfig, PeerId, PeerStats } from './peer.ts';
import { Peer } from './peer.ts';
import { RateLimiter } from './ratelimiter.ts';
import type { RateLimiterOptions } from './ratelimiter.ts';
import type { Rng } from './rng.ts';
import { systemRng } from './rng.ts';
import { tai64n } from './tai64n.ts';
import type { Session } from './session.ts';
import { ViewCache } from './view-cache.ts';

export type EndpointEvent =
  | { type: 'handshakeInitiated'; peer: PeerId; retry: boolean }
  | { type: 'handshakeCompleted'; peer: PeerId; initiator: boolean }
  /** Retries went on for REKEY_ATTEMPT_TIME without an answer; queued packets were dropped. */
  | { type: 'handshakeFailed'; peer: PeerId }
  | { type: 'sessionExpired'; peer: PeerId; localIndex: number }
  /** No handshake for 3 × REJECT_AFTER_TIME: all of the peer's key material was erased. */
  | { type: 'keysZeroed'; peer: PeerId }
  | { type: 'cookieReplySent' }
  | { type: 'underLoad'; active: boolean };

export interface EndpointIO<S> {
  /** A datagram for `peer`'s current endpoint. */
  sendToPeer(peer: PeerId, datagram: Uint8Array): void;
  /**
   * Optional: where sendToPeer would copy a `length`-byte datagram for `peer` (the bind's next
   * send slot), or null. A transport message is then sealed straight into it and sent as that
   * view, which saves a copy. The view is valid until the next sendToPeer or sendBuffer call.
   */
  sendBuffer?(peer: PeerId, length: number): Uint8Array | null;
  /** A datagram back to where a received packet came from (cookie replies). */
  sendToSource(source: S, datagram: Uint8Array): void;
  /** A decrypted packet from `peer` (padded plaintext; the caller strips padding by IP length). */
  deliver(peer: PeerId, packet: Uint8Array): void;
  /** `peer` sent an authenticated packet from `source`: the caller may update its endpoint. */
  authenticated(peer: PeerId, source: S): void;
  /** Bytes identifying `source` for cookies (IP address ‖ port). Only called when needed. */
  sourceTag(source: S): Uint8Array;
  /** Called with what happened: handshakes, sessions, drops; for logs and metrics. */
  event?(event: EndpointEvent): void;
  /**
   * Optional: takes an initiation to compute elsewhere (a worker thread) and returns true, or
   * returns false to have it computed here. The job's arrays are valid only during the call
   * (its secrets are erased after it). The result goes to `completeInitiation`; one that never
   * comes is covered by the retransmission, as a lost initiation is.
   */
  offloadInitiation?(job: InitiationJob): boolean;
}

/** Where `reserveTransport` says a caller's own transport messages go (see there). */
export interface TransportReservation {
  remoteIndex: number;
  counterLo: number;
  counterHi: number;
  sendKey: Uint8Array;
}

export interface EndpointOptions<S> {
  crypto: CryptoProvider;
  io: EndpointIO<S>;
  /** Our static private key (32 bytes); may be set later with setPrivateKey. */
  privateKey?: Uint8Array | null;
  /** Wall-clock milliseconds since the Unix epoch at monotonic time `now` (TAI64N, last handshake). */
  wallClock: (now: number) => number;
  rng?: Rng;
  /** Cap for padding (the tunnel MTU); 0 pads every packet to a multiple of 16. */
  mtu?: number;
  /** 'auto' (default) engages under-load mode from the handshake rate; true/false force it. */
  underLoad?: boolean | 'auto';
  /** Noise prologue; WireGuard's identifier unless a test needs another. */
  identifier?: string;
  /**
   * Per-source token buckets used under load (`ratelimiter.ts`; default 20/s, burst 5):
   * for handshake messages with a valid mac2 (as wireguard-go), and separately for the cookie
   * replies we send. false turns both off.
   */
  rateLimit?: RateLimiterOptions | false;
}

export const DROP_REASONS = [
  'malformed', 'mac1', 'cookieRequired', 'noPrivateKey', 'unknownPeer', 'handshakeDecrypt', 'replayedTimestamp',
  'floodedInitiation', 'unexpectedResponse', 'unexpectedCookie', 'unknownIndex', 'expiredSession', 'replay',
  'decrypt', 'queueFull', 'noSession', 'rateLimited', 'cookieRateLimited',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export interface EndpointCounters {
  datagramsReceived: number;
  handshakeInitiationsSent: number;
  handshakeResponsesSent: number;
  handshakesCompleted: number;
  cookieRepliesSent: number;
  cookieRepliesReceived: number;
  dataPacketsSent: number;
  dataPacketsReceived: number;
  keepalivesSent: number;
  keepalivesReceived: number;
  dropped: Record<DropReason, number>;
}

/** What `inspectPeer` returns. */
export type PeerInspection = ReturnType<Endpoint['inspectPeer']>;

export type RecvResult = 'data' | 'keepalive' | 'handshake' | 'cookie' | 'dropped';
export type SendResult = 'sent' | 'queued' | 'dropped';

const MAX_HANDSHAKE_ATTEMPTS = Math.floor(REKEY_ATTEMPT_TIME / REKEY_TIMEOUT);

export class Endpoint<S = unknown> {
  readonly crypto: CryptoProvider;
  readonly counters: EndpointCounters;
  private readonly io: EndpointIO<S>;
  private readonly rng: Rng;
  private readonly wallClock: (now: number) => number;
  private readonly mtu: number;
  private readonly start: NoiseStart;
  /** Jobs for io.offloadInitiation assume WireGuard's identifier (computeInitiation). */
  private readonly standardIdentifier: boolean;
  private readonly indexes: IndexTable<IndexEntry>;
  private readonly peers = new Map<PeerId, Peer>();
  private readonly peersByKey = new Map<string, Peer>();
  private local: LocalIdentity | null = null;
  private cookieChecker: CookieChecker | null = null;
  private nextPeerId = 1;
  /** Earliest deadline of any peer; may be too early (harmless), never too late. */
  private earliest = Infinity;
  /**
   * Where a tick that ran out of initiations stopped: the rest of its pass over the peers (a
   * live Map iterator: peers removed since are skipped) and the due peer it did not serve. The
   * next tick resumes there, so serving N due peers a few at a time costs O(N), not O(N²).
   */
  private tickRest: Iterator<Peer> | null = null;
  private tickPending: Peer | null = null;
  private underLoadMode: boolean | 'auto';
  private underLoadUntil = -Infinity;
  private underLoadActive = false;
  private rateWindowStart = -Infinity;
  private rateWindowCount = 0;
  /** Under load: handshakes with a valid mac2, and cookie replies, per source. */
  private readonly handshakeLimiter: RateLimiter | null;
  private readonly cookieLimiter: RateLimiter | null;
  private scratch = new Uint8Array(2048);
  /** Where transport messages are opened, and whether a delivery from it is under way. */
  private rxScratch = new Uint8Array(2048);
  /** The windows of the scratch buffers (and of a bind's send buffer) packets recur in. */
  private readonly views = new ViewCache(128);
  private delivering = false;
  private readonly reservation: TransportReservation = { remoteIndex: 0, counterLo: 0, counterHi: 0, sendKey: new Uint8Array(0) };
  /** Initiations begun, here or offloaded (tick's budget counts these). */
  private initiationsBegun = 0;
  private lastOffloadToken = 0;
  private readonly jitterPool = new Uint8Array(256);
  private jitterNext = 256;
  private readonly ctx: HandshakeContext;

  constructor(options: EndpointOptions<S>) {
    this.crypto = options.crypto;
    this.io = options.io;
    this.rng = options.rng ?? systemRng;
    this.wallClock = options.wallClock;
    this.mtu = options.mtu ?? 0;
    this.underLoadMode = options.underLoad ?? 'auto';
    const limit = options.rateLimit ?? {};
    this.handshakeLimiter = limit === false ? null : new RateLimiter(limit);
    this.cookieLimiter = limit === false ? null : new RateLimiter(limit);
    this.start = noiseStart(this.crypto, CONSTRUCTION, utf8(options.identifier ?? IDENTIFIER));
    this.standardIdentifier = (options.identifier ?? IDENTIFIER) === IDENTIFIER;
    this.indexes = new IndexTable<IndexEntry>(this.rng);
    const dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
    this.counters = {
      datagramsReceived: 0, handshakeInitiationsSent: 0, handshakeResponsesSent: 0, handshakesCompleted: 0,
      cookieRepliesSent: 0, cookieRepliesReceived: 0, dataPacketsSent: 0, dataPacketsReceived: 0,
      keepalivesSent: 0, keepalivesReceived: 0, dropped,
    };
    this.ctx = {
      crypto: this.crypto, rng: this.rng, start: this.start, indexes: this.indexes,
      local: () => this.local,
      wallClock: (now) => this.wallClock(now),
    };
    if (options.privateKey) this.setPrivateKey(options.privateKey);
  }

  // ---------------------------------------------------------------- configuration

  get publicKey(): Uint8Array | null {
    return this.local?.publicKey ?? null;
  }

  /**
   * Sets (or with null clears) the static private key. As in wireguard-go, a changed key
   * expires every session, and a peer whose public key equals our new one is removed.
   */
  setPrivateKey(privateKey: Uint8Array | null): void {
    if (privateKey && privateKey.length !== 32) throw new ConfigError('ERR_KEY_LENGTH', 'private key must be 32 bytes');
    if (privateKey && this.local && equalConstantTime(privateKey, this.local.privateKey)) return;
    if (this.local) zeroize(this.local.privateKey);
    if (privateKey && !isAllZero(privateKey)) {
      const raw = privateKey.slice();
      const key = this.crypto.x25519PrivateKey(raw);
      this.local = { privateKey: raw, key, publicKey: key.publicKey };
      if (this.cookieChecker) this.cookieChecker.setPublicKey(key.publicKey);
      else this.cookieChecker = new CookieChecker(this.crypto, this.rng, key.publicKey);
      const self = this.peersByKey.get(encodeHex(key.publicKey));
      if (self) this.removePeer(self.id);
    } else {
      this.local = null;
      this.cookieChecker?.clearSecret();
    }
    for (const peer of this.peers.values()) {
      this.computeStaticStatic(peer);
      this.expireSessions(peer);
      this.indexes.delete(peer.handshake.localIndex);
      peer.handshake.clear();
    }
  }

  /** Adds a peer and returns its id; a bad or duplicate peer throws a ConfigError and changes nothing. */
  addPeer(config: PeerConfig, now: number): PeerId {
    const key = checkKey(config.publicKey, 'public key');
    checkPeerChanges(config); // before the peer exists: a refused config adds nothing
    const hex = encodeHex(key);
    if (this.peersByKey.has(hex)) throw new ConfigError('ERR_PEER_EXISTS', 'a peer with this public key already exists');
    if (this.local && equalConstantTime(key, this.local.publicKey)) {
      throw new ConfigError('ERR_PEER_IS_SELF', "a peer's public key cannot be the interface's own");
    }
    const id = this.nextPeerId++;
    const peer = new Peer(id, this.crypto, key, hex);
    this.peers.set(id, peer);
    this.peersByKey.set(hex, peer);
    this.computeStaticStatic(peer);
    this.updatePeer(id, { presharedKey: config.presharedKey, persistentKeepalive: config.persistentKeepalive }, now);
    return id;
  }

  /** Changes a peer's preshared key or persistent keepalive while traffic flows. */
  updatePeer(id: PeerId, changes: Partial<Omit<PeerConfig, 'publicKey'>>, now: number): void {
    const peer = this.mustPeer(id);
    checkPeerChanges(changes); // all or nothing: no change is made when one is refused
    if (changes.presharedKey !== undefined) peer.presharedKey.set(changes.presharedKey ?? new Uint8Array(32));
    if (changes.persistentKeepalive !== undefined) {
      const interval = changes.persistentKeepalive;
      const was = peer.persistentKeepalive;
      peer.persistentKeepalive = interval;
      if (interval === 0) peer.persistentKeepaliveAt = Infinity;
      // As wireguard-go, turning it on sends a keepalive at once: at the next tick, so the
      // caller can finish configuring the peer (its endpoint) first.
      else if (was === 0) peer.persistentKeepaliveAt = now;
    }
    this.touch(peer);
  }

  /** Removes a peer, erasing its keys; its indexes become free. */
  removePeer(id: PeerId): void {
    const peer = this.peers.get(id);
    if (!peer) return;
    this.expireSessions(peer);
    this.indexes.delete(peer.handshake.localIndex);
    peer.handshake.clear();
    peer.clearCookies();
    zeroize(peer.staticStatic, peer.presharedKey);
    peer.queue.length = 0;
    this.peers.delete(id);
    this.peersByKey.delete(peer.publicKeyHex);
  }

  /** The id of the peer with this public key, if there is one. */
  peerIdByKey(publicKey: Uint8Array): PeerId | undefined {
    return this.peersByKey.get(encodeHex(publicKey))?.id;
  }

  /** Every peer's id. */
  peerIds(): IterableIterator<PeerId> {
    return this.peers.keys();
  }

  get peerCount(): number {
    return this.peers.size;
  }

  /** A peer's public key: the endpoint's own bytes, to read and not to change (ERR_NO_PEER). */
  peerPublicKey(id: PeerId): Uint8Array {
    return this.mustPeer(id).publicKey;
  }

  /** A copy of a peer's preshared key, or null when it has none (ERR_NO_PEER). */
  peerPresharedKey(id: PeerId): Uint8Array | null {
    return this.peerPresharedKeyView(id)?.slice() ?? null;
  }

  /**
   * @internal The peer's preshared key itself (null when it has none), for a caller that reads
   * it at once and keeps no reference (the UAPI's `get=1` encoder): no copy of it is left behind.
   */
  peerPresharedKeyView(id: PeerId): Uint8Array | null {
    const key = this.mustPeer(id).presharedKey;
    return isAllZero(key) ? null : key;
  }

  /** A peer's counters and handshake times (ERR_NO_PEER for an unknown id). */
  peerStats(id: PeerId): Readonly<PeerStats> {
    return this.mustPeer(id).stats;
  }

  /** A read-only look at a peer's state, for tests and `show`. */
  inspectPeer(id: PeerId) {
    const p = this.mustPeer(id);
    const session = (s: Session | null) => s && !s.isErased
      ? { localIndex: s.localIndex, remoteIndex: s.remoteIndex, created: s.created, isInitiator: s.isInitiator, sendCounter: s.sendHi * 2 ** 32 + s.sendLo }
      : null;
    return {
      publicKey: p.publicKey,
      persistentKeepalive: p.persistentKeepalive,
      handshakeStage: p.handshake.stage,
      handshakeAttempts: p.handshakeAttempts,
      current: session(p.current),
      previous: session(p.previous),
      next: session(p.next),
      queued: p.queue.length,
      timers: {
        retransmitHandshake: p.retransmitHandshakeAt, sendKeepalive: p.sendKeepaliveAt, newHandshake: p.newHandshakeAt,
        zeroKeyMaterial: p.zeroKeyMaterialAt, persistentKeepalive: p.persistentKeepaliveAt,
      },
    };
  }

  /** Force under-load mode on or off, or leave it to the handshake rate ('auto'). */
  setUnderLoad(mode: boolean | 'auto'): void {
    this.underLoadMode = mode;
  }

  /** Whether handshake messages now need a valid cookie (mac2) to be answered. */
  isUnderLoad(now: number): boolean {
    if (this.underLoadMode !== 'auto') return this.underLoadMode;
    return now < this.underLoadUntil;
  }

  /** Number of live receiver indexes (pending handshakes and sessions). */
  get liveIndexes(): number {
    return this.indexes.size;
  }

  // ---------------------------------------------------------------- inputs

  /** A datagram from the network. Never throws on any input; bad input is dropped and counted. */
  recv(now: number, datagram: Uint8Array, source: S): RecvResult {
    this.counters.datagramsReceived++;
    switch (messageType(datagram)) {
      case MESSAGE_TRANSPORT: return this.recvTransport(now, datagram, source);
      case MESSAGE_INITIATION: return this.recvInitiation(now, datagram, source);
      case MESSAGE_RESPONSE: return this.recvResponse(now, datagram, source);
      case MESSAGE_COOKIE_REPLY: return this.recvCookieReply(now, datagram);
      default: return this.drop('malformed');
    }
  }

  /**
   * A plaintext packet for `peer`: encrypted and sent at once when a session can be used,
   * otherwise queued (a copy) while a handshake is started.
   */
  send(now: number, id: PeerId, packet: Uint8Array): SendResult {
    const peer = this.peers.get(id);
    if (!peer) return this.drop('noSession');
    if (peer.queue.length === 0) {
      const s = peer.current;
      if (s && s.canSend(now)) {
        this.sealAndSend(now, peer, s, packet);
        this.keepKeyFreshSending(now, peer, s);
        this.touch(peer);
        return 'sent';
      }
    }
    this.enqueue(peer, packet.slice());
    this.sendStaged(now, peer);
    this.touch(peer);
    return peer.queue.length === 0 ? 'sent' : 'queued';
  }

  /**
   * For a caller that seals transport messages itself (on another thread): takes `count`
   * consecutive send counters of `peer`'s current session and does everything `send` does for
   * `count` data packets except the sealing (statistics with `datagramBytes` on the wire,
   * timers, rekeying). The caller writes each message as type 4, `remoteIndex`, then counter
   * `counterLo/Hi` + i, seals it with `sendKey` (padded as paddedLength says) and sends it to
   * the peer's endpoint in order. Null, with nothing changed, when `send` would not send at
   * once: unknown peer, packets already waiting for a handshake, no usable session, or the
   * counters would reach REJECT_AFTER_MESSAGES; the caller then uses `send`. The returned
   * object is reused by the next call and `sendKey` is the session's own: copy both at once.
   */
  reserveTransport(now: number, id: PeerId, count: number, datagramBytes: number): Readonly<TransportReservation> | null {
    const peer = this.peers.get(id);
    if (!peer || peer.queue.length !== 0 || !(count >= 1)) return null;
    const s = peer.current;
    if (!s || !s.canSend(now) || !s.canReserve(count)) return null;
    const r = this.reservation;
    r.remoteIndex = s.remoteIndex;
    r.counterLo = s.sendLo;
    r.counterHi = s.sendHi;
    r.sendKey = s.sendKeyBytes;
    s.advanceCounter(count);
    peer.stats.txBytes += datagramBytes;
    this.counters.dataPacketsSent += count;
    this.dataSent(now, peer);
    this.anyAuthenticatedPacketSent(peer);
    this.anyAuthenticatedPacketTraversal(now, peer);
    this.keepKeyFreshSending(now, peer, s);
    this.touch(peer);
    return r;
  }

  /** Starts a handshake now (subject to the REKEY_TIMEOUT rate limit). */
  initiateHandshake(now: number, id: PeerId): void {
    const peer = this.peers.get(id);
    if (peer) { this.sendInitiation(now, peer, false); this.touch(peer); }
  }

  /** Sends an empty (keepalive) packet to `peer`, starting a handshake if needed. */
  keepalive(now: number, id: PeerId): void {
    const peer = this.peers.get(id);
    if (peer) { this.sendKeepalive(peer, now); this.touch(peer); }
  }

  /**
   * When `tick` should next be called (Infinity if nothing is scheduled). O(1): kept up to date
   * by every call that can arm a timer, recomputed exactly by `tick`. It may be early (a timer
   * was disarmed since), never late.
   */
  nextDeadline(): number {
    const secret = this.cookieChecker?.secretExpiresAt ?? Infinity; // zeroed then (tick)
    return secret < this.earliest ? secret : this.earliest;
  }

  /** Folds `peer`'s deadlines into the cached earliest one. */
  private touch(peer: Peer): void {
    const d = peer.nextDeadline();
    if (d < this.earliest) this.earliest = d;
  }

  /**
   * Runs every timer that is due at `now`; with `maxInitiations`, stops at the next due peer
   * once this call has sent that many handshake initiations. An initiation
   * costs ~0.2 ms of X25519 and hashing, so 10,000 peers due at once (all dialing after a
   * setconf) would hold the caller's thread for seconds. The peers not reached stay due
   * (`nextDeadline()` ≤ now) for the caller's next tick, after it let other work run.
   * Returns true when every due timer ran.
   */
  tick(now: number, maxInitiations = Infinity): boolean {
    this.cookieChecker?.expire(now);
    const begunBefore = this.initiationsBegun;
    let complete = true;
    // A resumed pass ends with one whole pass, for the peers before its start that fell due since.
    let whole = this.tickRest === null;
    let rest = this.tickRest ?? this.peers.values();
    let peer = this.tickPending !== null && this.peers.get(this.tickPending.id) === this.tickPending ? this.tickPending : null;
    this.tickRest = null;
    this.tickPending = null;
    for (;;) {
      if (peer === null) {
        const next = rest.next();
        if (next.done === true) {
          if (whole) break;
          rest = this.peers.values();
          whole = true;
          continue;
        }
        peer = next.value;
      }
      if (peer.nextDeadline() > now) { peer = null; continue; }
      if (this.initiationsBegun - begunBefore >= maxInitiations) {
        this.tickRest = rest;
        this.tickPending = peer;
        complete = false;
        break;
      }
      this.expireOldSessions(now, peer);
      if (peer.retransmitHandshakeAt <= now) this.onRetransmitHandshake(now, peer);
      if (peer.sendKeepaliveAt <= now) this.onSendKeepalive(now, peer);
      if (peer.newHandshakeAt <= now) {
        peer.newHandshakeAt = Infinity;
        // We sent data and heard nothing back for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT.
        this.sendInitiation(now, peer, false);
      }
      if (peer.zeroKeyMaterialAt <= now) this.onZeroKeyMaterial(peer);
      if (peer.persistentKeepaliveAt <= now) {
        peer.persistentKeepaliveAt = Infinity;
        this.sendKeepalive(peer, now);
      }
      peer = null;
    }
    if (this.underLoadActive && !this.isUnderLoad(now)) {
      this.underLoadActive = false;
      this.emit({ type: 'underLoad', active: false });
    }
    // Unfinished: `earliest` stays as it was, no later than the due peer left pending.
    if (!complete) return false;
    let earliest = Infinity;
    for (const p of this.peers.values()) {
      const d = p.nextDeadline();
      if (d < earliest) earliest = d;
    }
    this.earliest = earliest;
    return true;
  }

  // ---------------------------------------------------------------- receive path

  private recvTransport(now: number, d: Uint8Array, source: S): RecvResult {
    const entry = this.indexes.get(readU32LE(d, Transport.receiver));
    const s = entry?.session;
    if (!entry || !s) return this.drop('unknownIndex');
    if (!s.canReceive(now)) return this.drop('expiredSession');
    const lo = readU32LE(d, Transport.counter);
    const hi = readU32LE(d, Transport.counter + 4);
    if (!s.replay.check(lo, hi)) return this.drop('replay');
    const ciphertext = d.subarray(Transport.headerSize);
    // Opened into a buffer of our own rather than in place: a bind's receive ring is often a
    // SharedArrayBuffer, and whatever copies the plaintext on (the TUN's GRO) copies out of one
    // with slow relaxed moves. A delivery that receives again (a synchronous twin) opens in place.
    const length = ciphertext.length - TAG_SIZE;
    let plain = d;
    let at: number = Transport.headerSize;
    if (!this.delivering && length > 0) {
      plain = this.rxScratch = atLeast(this.rxScratch, length);
      at = 0;
    }
    if (!this.crypto.open(s.receiveKey, lo, hi, ciphertext, EMPTY_AD, plain, at)) return this.drop('decrypt');
    if (!s.replay.mark(lo, hi)) return this.drop('replay');
    const peer = entry.peer;
    peer.stats.rxBytes += d.length;
    this.io.authenticated(peer.id, source);
    if (peer.next === s) this.confirmNext(now, peer);
    this.anyAuthenticatedPacketReceived(peer);
    this.anyAuthenticatedPacketTraversal(now, peer);
    this.keepKeyFreshReceiving(now, peer);
    if (length === 0) {
      this.counters.keepalivesReceived++;
      this.touch(peer);
      return 'keepalive';
    }
    this.counters.dataPacketsReceived++;
    this.dataReceived(now, peer);
    this.touch(peer);
    this.delivering = true;
    try {
      this.io.deliver(peer.id, this.views.view(plain, at, at + length));
    } finally {
      this.delivering = false;
    }
    return 'data';
  }

  /**
   * mac1 always; under load also mac2, answering with a cookie reply when it is missing.
   * Under load, per source (ratelimiter.ts): mac2-valid messages are rate-limited (wireguard-go),
   * and so are cookie replies; a wrong (non-zero) mac2 costs the source a handshake token too.
   * A message its source could not get anything for (no cookie-reply token, and for a non-zero
   * mac2 no handshake token either) is dropped before any MAC is computed.
   */
  private admitHandshake(now: number, msg: Uint8Array, senderIndex: number, source: S): boolean {
    const checker = this.cookieChecker;
    if (!checker || !this.local) { this.drop('noPrivateKey'); return false; }
    // All zeros: no cookie (a real mac2 never is all zeros), so at most a cookie reply is due.
    const noMac2 = isAllZero(msg.subarray(msg.length - MAC_SIZE));
    const hl = this.handshakeLimiter, cl = this.cookieLimiter;
    if (hl && cl && this.isUnderLoad(now)) {
      const tag = this.io.sourceTag(source);
      if (!cl.wouldAllow(now, tag) && (noMac2 || !hl.wouldAllow(now, tag))) {
        this.noteHandshakeRate(now); // keeps under-load mode engaged while the flood lasts
        this.drop(noMac2 ? 'cookieRateLimited' : 'rateLimited');
        return false;
      }
    }
    if (!checker.checkMac1(msg)) { this.drop('mac1'); return false; }
    if (this.noteHandshakeRate(now)) {
      const tag = this.io.sourceTag(source);
      if (noMac2 || !checker.checkMac2(msg, tag, now)) {
        if (!noMac2) hl?.allow(now, tag);
        // Not in wireguard-go: replies per source are limited too, so a flood of mac1-valid
        // messages is not answered (reflected) at its own rate.
        if (cl && !cl.allow(now, tag)) { this.drop('cookieRateLimited'); return false; }
        const reply = checker.createReply(msg, senderIndex, tag, now);
        this.counters.cookieRepliesSent++;
        this.io.sendToSource(source, reply);
        this.emit({ type: 'cookieReplySent' });
        this.drop('cookieRequired');
        return false;
      }
      // wireguard-go: a valid mac2 proves the source address, which then gets its token bucket.
      if (hl && !hl.allow(now, tag)) { this.drop('rateLimited'); return false; }
    }
    return true;
  }

  /** Counts a handshake message towards the automatic under-load trigger; returns whether under load. */
  private noteHandshakeRate(now: number): boolean {
    if (now - this.rateWindowStart >= 1000) {
      this.rateWindowStart = now;
      this.rateWindowCount = 0;
    }
    if (++this.rateWindowCount >= UNDER_LOAD_HANDSHAKES_PER_SECOND) this.underLoadUntil = now + UNDER_LOAD_AFTER_TIME;
    const active = this.isUnderLoad(now);
    if (active !== this.underLoadActive) {
      this.underLoadActive = active;
      this.emit({ type: 'underLoad', active });
    }
    return active;
  }

  private recvInitiation(now: number, msg: Uint8Array, source: S): RecvResult {
    if (!this.admitHandshake(now, msg, readU32LE(msg, Initiation.sender), source)) return 'dropped';
    const result = consumeInitiation(this.ctx, msg, now, (key) => this.peersByKey.get(encodeHex(key)));
    if (typeof result === 'string') return this.drop(result === 'decrypt' ? 'handshakeDecrypt' : result);
    const peer = result;
    peer.stats.rxBytes += msg.length;
    this.io.authenticated(peer.id, source);
    this.anyAuthenticatedPacketReceived(peer);
    this.anyAuthenticatedPacketTraversal(now, peer);
    const response = createResponse(this.ctx, peer, now);
    if (!response) return this.drop('handshakeDecrypt');
    const gone = beginSession(this.ctx, peer, now, false);
    for (const s of gone) this.dropSession(s);
    peer.handshake.lastSentHandshake = now;
    this.counters.handshakeResponsesSent++;
    this.transmit(peer, response);
    this.anyAuthenticatedPacketSent(peer);
    this.anyAuthenticatedPacketTraversal(now, peer);
    this.sessionDerived(now, peer);
    this.touch(peer);
    return 'handshake';
  }

  private recvResponse(now: number, msg: Uint8Array, source: S): RecvResult {
    if (!this.admitHandshake(now, msg, readU32LE(msg, Response.sender), source)) return 'dropped';
    const peer = consumeResponse(this.ctx, msg);
    if (!peer) return this.drop('unexpectedResponse');
    peer.stats.rxBytes += msg.length;
    this.io.authenticated(peer.id, source);
    const gone = beginSession(this.ctx, peer, now, true);
    for (const s of gone) this.dropSession(s);
    this.anyAuthenticatedPacketReceived(peer);
    this.anyAuthenticatedPacketTraversal(now, peer);
    this.sessionDerived(now, peer);
    this.handshakeComplete(now, peer, true);
    // The responder needs a packet to confirm the session: queued data, or a keepalive.
    this.sendKeepalive(peer, now);
    this.touch(peer);
    return 'handshake';
  }

  private recvCookieReply(now: number, msg: Uint8Array): RecvResult {
    // The reply names the index of our handshake message: pending, or (for a response) already a session.
    const entry = this.indexes.get(readU32LE(msg, CookieReply.receiver));
    if (!entry) return this.drop('unexpectedCookie');
    if (!entry.peer.cookies.consumeReply(msg, now)) return this.drop('unexpectedCookie');
    this.counters.cookieRepliesReceived++;
    return 'cookie';
  }

  // ---------------------------------------------------------------- send path

  private sealAndSend(now: number, peer: Peer, s: Session, packet: Uint8Array): void {
    const padded = paddedLength(packet.length, this.mtu);
    const total = Transport.headerSize + padded + TAG_SIZE;
    // Sealed where the bind will send it from when it can say where that is, else in scratch.
    let buf = this.io.sendBuffer?.(peer.id, total) ?? null;
    if (buf === null || buf.length !== total) {
      buf = this.views.view(this.scratch = atLeast(this.scratch, total), 0, total);
    }
    writeType(buf, MESSAGE_TRANSPORT);
    writeU32LE(buf, Transport.receiver, s.remoteIndex);
    writeU32LE(buf, Transport.counter, s.sendLo);
    writeU32LE(buf, Transport.counter + 4, s.sendHi);
    if (padded === packet.length) {
      // Nothing to pad (a full-size packet): sealed from the caller's packet, not from a copy.
      this.crypto.seal(s.sendKey, s.sendLo, s.sendHi, packet, EMPTY_AD, buf, Transport.headerSize);
    } else {
      buf.set(packet, Transport.headerSize);
      buf.fill(0, Transport.headerSize + packet.length, Transport.headerSize + padded);
      const plaintext = this.views.view(buf, Transport.headerSize, Transport.headerSize + padded);
      this.crypto.seal(s.sendKey, s.sendLo, s.sendHi, plaintext, EMPTY_AD, buf, Transport.headerSize);
    }
    s.nextCounter();
    this.transmit(peer, buf);
    if (packet.length === 0) this.counters.keepalivesSent++;
    else {
      this.counters.dataPacketsSent++;
      this.dataSent(now, peer);
    }
    this.anyAuthenticatedPacketSent(peer);
    this.anyAuthenticatedPacketTraversal(now, peer);
  }

  private transmit(peer: Peer, datagram: Uint8Array): void {
    peer.stats.txBytes += datagram.length;
    this.io.sendToPeer(peer.id, datagram);
  }

  private enqueue(peer: Peer, packet: Uint8Array): void {
    if (peer.queue.length >= MAX_QUEUED_PACKETS) {
      peer.queue.shift(); // wireguard-go drops the oldest
      peer.stats.queueDrops++;
      this.counters.dropped.queueFull++;
    }
    peer.queue.push(packet);
  }

  /** wireguard-go's SendStagedPackets: send what waits, or start a handshake if no session can. */
  private sendStaged(now: number, peer: Peer): void {
    const s = peer.current;
    if (!s || !s.canSend(now)) {
      this.sendInitiation(now, peer, false);
      return;
    }
    const queued = peer.queue.splice(0);
    for (const packet of queued) this.sealAndSend(now, peer, s, packet);
    this.keepKeyFreshSending(now, peer, s);
  }

  /** An empty packet, staged only when nothing else waits (anything else keeps alive as well). */
  private sendKeepalive(peer: Peer, now: number): void {
    if (peer.queue.length === 0) this.enqueue(peer, EMPTY_PACKET);
    this.sendStaged(now, peer);
  }

  /** wireguard-go's SendHandshakeInitiation: at most one per REKEY_TIMEOUT unless a retry. */
  private sendInitiation(now: number, peer: Peer, isRetry: boolean): void {
    if (!isRetry) peer.handshakeAttempts = 0;
    if (now - peer.handshake.lastSentHandshake < REKEY_TIMEOUT) {
      // Rate-limited. wireguard-go would leave waiting packets until some later trigger; we
      // schedule the initiation for when the limit allows, so they cannot get stuck.
      if (peer.queue.length > 0 && peer.retransmitHandshakeAt === Infinity) {
        peer.retransmitHandshakeAt = peer.handshake.lastSentHandshake + REKEY_TIMEOUT;
      }
      return;
    }
    if (this.io.offloadInitiation && this.offloadInitiation(now, peer, isRetry)) {
      // Sent as far as the timers go: the rate limit and the retransmission count from now.
      this.initiationsBegun++;
      peer.handshake.lastSentHandshake = now;
      peer.retransmitHandshakeAt = now + REKEY_TIMEOUT + this.jitter();
      return;
    }
    const msg = createInitiation(this.ctx, peer, now);
    if (!msg) return;
    this.initiationsBegun++;
    peer.handshake.lastSentHandshake = now;
    this.initiationSent(now, peer, msg, isRetry);
    peer.retransmitHandshakeAt = now + REKEY_TIMEOUT + this.jitter();
  }

  private initiationSent(now: number, peer: Peer, msg: Uint8Array, isRetry: boolean): void {
    this.counters.handshakeInitiationsSent++;
    this.transmit(peer, msg);
    this.emit({ type: 'handshakeInitiated', peer: peer.id, retry: isRetry });
    this.anyAuthenticatedPacketTraversal(now, peer);
    this.anyAuthenticatedPacketSent(peer);
  }

  /** Hands the initiation to io.offloadInitiation; false when it must be computed here. */
  private offloadInitiation(now: number, peer: Peer, isRetry: boolean): boolean {
    const local = this.local;
    if (!local || !peer.staticStatic || !this.standardIdentifier) return false;
    this.lastOffloadToken = this.lastOffloadToken >= 0xffffffff ? 1 : this.lastOffloadToken + 1;
    const ephemeral = new Uint8Array(KEY_SIZE);
    this.rng.fill(ephemeral);
    const job: InitiationJob = {
      peer: peer.id, token: this.lastOffloadToken, localStatic: local.publicKey, remoteStatic: peer.publicKey,
      staticStatic: peer.staticStatic, ephemeral, timestamp: tai64n(this.wallClock(now)),
    };
    const taken = this.io.offloadInitiation!(job);
    zeroize(ephemeral);
    if (!taken) return false;
    peer.handshake.offloadToken = job.token;
    peer.handshake.offloadRetry = isRetry;
    return true;
  }

  /**
   * Sends an initiation computed elsewhere (`computeInitiation` on a job from
   * io.offloadInitiation). Returns false, sending nothing, when it is no longer wanted: the
   * peer is gone, or a newer handshake (ours or the peer's) or a new key superseded it. Copies
   * what it keeps; the caller erases the result.
   */
  completeInitiation(now: number, result: InitiationResult): boolean {
    const peer = this.peers.get(result.peer);
    if (!peer) return false;
    const isRetry = peer.handshake.offloadRetry;
    const msg = completeInitiation(this.ctx, peer, result, now);
    if (!msg) return false;
    this.initiationSent(now, peer, msg, isRetry);
    this.touch(peer);
    return true;
  }

  private keepKeyFreshSending(now: number, peer: Peer, s: Session): void {
    if ((s.isInitiator && now - s.created >= REKEY_AFTER_TIME) || s.sendHi >= REKEY_AFTER_MESSAGES_HI) {
      this.sendInitiation(now, peer, false);
    }
  }

  private keepKeyFreshReceiving(now: number, peer: Peer): void {
    const s = peer.current;
    if (!s || !s.isInitiator || peer.sentRekeyOnReceive) return;
    if (now - s.created >= REKEY_ON_RECEIVE_AGE) {
      peer.sentRekeyOnReceive = true;
      this.sendInitiation(now, peer, false);
    }
  }

  // ---------------------------------------------------------------- sessions

  private confirmNext(now: number, peer: Peer): void {
    const next = peer.next!;
    if (peer.previous) this.dropSession(peer.previous);
    peer.previous = peer.current;
    peer.current = next;
    peer.next = null;
    this.handshakeComplete(now, peer, false);
    if (peer.queue.length > 0) this.sendStaged(now, peer);
  }

  private dropSession(s: Session): void {
    this.indexes.delete(s.localIndex);
    s.erase();
  }

  /** Erase all sessions of a peer (key change, removal, zeroing). */
  private expireSessions(peer: Peer): void {
    for (const s of [peer.current, peer.previous, peer.next]) if (s) this.dropSession(s);
    peer.current = peer.previous = peer.next = null;
  }

  private expireOldSessions(now: number, peer: Peer): void {
    const expired = (s: Session | null) => s !== null && now >= s.expiresAt;
    if (expired(peer.previous)) { this.dropSession(peer.previous!); peer.previous = null; }
    if (expired(peer.next)) { this.dropSession(peer.next!); peer.next = null; }
    if (expired(peer.current)) {
      const s = peer.current!;
      this.dropSession(s);
      peer.current = null;
      this.emit({ type: 'sessionExpired', peer: peer.id, localIndex: s.localIndex });
    }
  }

  // ---------------------------------------------------------------- timers (wireguard-go timers.go)

  /**
   * 0..REKEY_TIMEOUT_JITTER_MAX ms. Drawn from a pool refilled 64 draws at a time: with traffic
   * both ways the new-handshake timer is re-armed for nearly every packet sent, and one rng call
   * (getRandomValues) per packet showed in profiles.
   */
  private jitter(): number {
    const pool = this.jitterPool;
    if (this.jitterNext >= pool.length) {
      this.rng.fill(pool);
      this.jitterNext = 0;
    }
    const i = this.jitterNext;
    this.jitterNext = i + 4;
    return ((pool[i]! | (pool[i + 1]! << 8) | (pool[i + 2]! << 16) | (pool[i + 3]! << 24)) >>> 0) % (REKEY_TIMEOUT_JITTER_MAX + 1);
  }

  private dataSent(now: number, peer: Peer): void {
    if (peer.newHandshakeAt === Infinity) peer.newHandshakeAt = now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + this.jitter();
  }

  private dataReceived(now: number, peer: Peer): void {
    if (peer.sendKeepaliveAt === Infinity) peer.sendKeepaliveAt = now + KEEPALIVE_TIMEOUT;
    else peer.needAnotherKeepalive = true;
  }

  private anyAuthenticatedPacketSent(peer: Peer): void {
    peer.sendKeepaliveAt = Infinity;
  }

  private anyAuthenticatedPacketReceived(peer: Peer): void {
    peer.newHandshakeAt = Infinity;
  }

  private anyAuthenticatedPacketTraversal(now: number, peer: Peer): void {
    if (peer.persistentKeepalive > 0) peer.persistentKeepaliveAt = now + peer.persistentKeepalive * 1000;
  }

  private sessionDerived(now: number, peer: Peer): void {
    peer.zeroKeyMaterialAt = now + ZERO_KEY_MATERIAL_AFTER;
  }

  private handshakeComplete(now: number, peer: Peer, initiator: boolean): void {
    peer.retransmitHandshakeAt = Infinity;
    peer.handshakeAttempts = 0;
    peer.sentRekeyOnReceive = false;
    peer.stats.lastHandshakeWall = this.wallClock(now);
    this.counters.handshakesCompleted++;
    this.emit({ type: 'handshakeCompleted', peer: peer.id, initiator });
  }

  private onRetransmitHandshake(now: number, peer: Peer): void {
    peer.retransmitHandshakeAt = Infinity;
    if (peer.handshakeAttempts >= MAX_HANDSHAKE_ATTEMPTS) {
      // Gave up after REKEY_ATTEMPT_TIME: forget what was waiting and stop keepalives.
      peer.sendKeepaliveAt = Infinity;
      peer.queue.length = 0;
      if (peer.zeroKeyMaterialAt === Infinity) peer.zeroKeyMaterialAt = now + ZERO_KEY_MATERIAL_AFTER;
      this.indexes.delete(peer.handshake.localIndex);
      peer.handshake.clear();
      this.emit({ type: 'handshakeFailed', peer: peer.id });
      return;
    }
    peer.handshakeAttempts++;
    this.sendInitiation(now, peer, true);
  }

  private onSendKeepalive(now: number, peer: Peer): void {
    peer.sendKeepaliveAt = Infinity;
    this.sendKeepalive(peer, now);
    if (peer.needAnotherKeepalive) {
      peer.needAnotherKeepalive = false;
      peer.sendKeepaliveAt = now + KEEPALIVE_TIMEOUT;
    }
  }

  private onZeroKeyMaterial(peer: Peer): void {
    peer.zeroKeyMaterialAt = Infinity;
    this.expireSessions(peer);
    this.indexes.delete(peer.handshake.localIndex);
    peer.handshake.clear();
    peer.clearCookies(); // the cookie the peer gave us
    this.emit({ type: 'keysZeroed', peer: peer.id });
  }

  // ---------------------------------------------------------------- helpers

  private computeStaticStatic(peer: Peer): void {
    peer.setStaticStatic(this.local ? this.crypto.x25519(this.local.key, peer.publicKey) : null);
  }

  private mustPeer(id: PeerId): Peer {
    const peer = this.peers.get(id);
    if (!peer) throw new ConfigError('ERR_NO_PEER', `no peer with id ${id}`);
    return peer;
  }

  private drop(reason: DropReason): 'dropped' {
    this.counters.dropped[reason]++;
    return 'dropped';
  }

  private emit(event: EndpointEvent): void {
    this.io.event?.(event);
  }
}

const EMPTY_AD = new Uint8Array(0);
const EMPTY_PACKET = new Uint8Array(0);

/** Throws a ConfigError for a preshared key or keepalive interval `updatePeer` must refuse. */
function checkPeerChanges(changes: Partial<Omit<PeerConfig, 'publicKey'>>): void {
  if (changes.presharedKey !== undefined && changes.presharedKey !== null) checkKey(changes.presharedKey, 'preshared key');
  const interval = changes.persistentKeepalive;
  if (interval !== undefined && (!Number.isInteger(interval) || interval < 0 || interval > 65535)) {
    throw new ConfigError('ERR_KEEPALIVE', 'persistent keepalive must be an integer from 0 to 65535 seconds');
  }
}

function checkKey(key: Uint8Array | null | undefined, what: string): Uint8Array {
  if (!(key instanceof Uint8Array) || key.length !== 32) throw new ConfigError('ERR_KEY_LENGTH', `${what} must be 32 bytes`);
  return key;
}

/** `buffer` if it holds `length` bytes, else a new one at least twice its size (contents not kept). */
function atLeast(buffer: Uint8Array<ArrayBuffer>, length: number): Uint8Array<ArrayBuffer> {
  return buffer.length >= length ? buffer : new Uint8Array(Math.max(length, buffer.length * 2));
}
