/**
 * WireGuard handshake messages around the Noise core: indexes, timestamps, MACs, and turning a
 * finished handshake into a session (whitepaper §5.4.2–§5.4.6).
 */
import { EMPTY, compareBytes, readU32LE, utf8, writeU32LE } from './bytes.ts';
import { CONSTRUCTION, HANDSHAKE_INITIATION_RATE, IDENTIFIER } from './constants.ts';
import type { CryptoProvider, X25519PrivateKey } from './crypto.ts';
import { zeroize } from './crypto.ts';
import type { IndexTable } from './indexes.ts';
import {
  Initiation, KEY_SIZE, MESSAGE_INITIATION, MESSAGE_RESPONSE, Response, writeType,
} from './messages.ts';
import type { NoiseStart, SymmetricState } from './noise.ts';
import { noiseStart, readMessage1, readMessage2, split, writeMessage1, writeMessage2 } from './noise.ts';
import type { Peer, PeerId } from './peer.ts';
import type { Rng } from './rng.ts';
import { Session } from './session.ts';
import { tai64n } from './tai64n.ts';

export interface LocalIdentity {
  readonly privateKey: Uint8Array;
  readonly key: X25519PrivateKey;
  readonly publicKey: Uint8Array;
}

/** What an index names: a pending handshake (session null) or a session of a peer. */
export interface IndexEntry {
  readonly peer: Peer;
  readonly session: Session | null;
}

export interface HandshakeContext {
  readonly crypto: CryptoProvider;
  readonly rng: Rng;
  readonly start: NoiseStart;
  local(): LocalIdentity | null;
  readonly indexes: IndexTable<IndexEntry>;
  wallClock(now: number): number;
}

function newEphemeral(ctx: HandshakeContext): { raw: Uint8Array; key: X25519PrivateKey } {
  const raw = new Uint8Array(KEY_SIZE);
  ctx.rng.fill(raw);
  return { raw, key: ctx.crypto.x25519PrivateKey(raw) };
}

/** A new initiation for `peer` (replacing any pending handshake), or null if impossible. */
export function createInitiation(ctx: HandshakeContext, peer: Peer, now: number): Uint8Array | null {
  const local = ctx.local();
  if (!local || !peer.staticStatic) return null;
  const hs = peer.handshake;
  ctx.indexes.delete(hs.localIndex);
  hs.clear();
  const eph = newEphemeral(ctx);
  const msg = new Uint8Array(Initiation.size);
  writeType(msg, MESSAGE_INITIATION);
  const timestamp = tai64n(ctx.wallClock(now));
  const state = writeMessage1(
    ctx.crypto, ctx.start, local.key, peer.publicKey, peer.staticStatic, eph.key, timestamp, msg, Initiation.noiseStart,
  );
  // writeMessage1 fails only when DH(e, S_r) is zero, i.e. S_r is a low-order point, and then
  // peer.staticStatic is null too and we returned above: kept for the type.
  // Stryker disable next-line ConditionalExpression,BlockStatement: unreachable, see above
  if (!state) { zeroize(eph.raw); return null; }
  installInitiation(ctx, peer, msg, state, eph.key, eph.raw, now);
  return msg;
}

/**
 * Makes `msg` (its type and Noise part written) `peer`'s pending initiation, whose handshake was
 * cleared: a fresh sender index, the state for the response, the MACs.
 */
function installInitiation(
  ctx: HandshakeContext, peer: Peer, msg: Uint8Array, state: SymmetricState, ephemeral: X25519PrivateKey | null,
  ephemeralRaw: Uint8Array, now: number,
): void {
  const hs = peer.handshake;
  hs.localIndex = ctx.indexes.allocate({ peer, session: null });
  writeU32LE(msg, Initiation.sender, hs.localIndex);
  hs.stage = 'initiationCreated';
  hs.chainKey = state.chainKey;
  hs.hash = state.hash;
  hs.localEphemeral = ephemeral;
  hs.localEphemeralRaw = ephemeralRaw;
  peer.cookies.addMacs(msg, now);
}

/**
 * An initiation's inputs, for computing its Noise part elsewhere (a worker thread): everything
 * `computeInitiation` needs, so the result depends on nothing else. The secrets (`staticStatic`,
 * `ephemeral`) are the caller's to erase once used.
 */
export interface InitiationJob {
  readonly peer: PeerId;
  /** Matches the result to this request (Handshake.offloadToken); never 0. */
  readonly token: number;
  /** Our static public key. */
  readonly localStatic: Uint8Array;
  readonly remoteStatic: Uint8Array;
  /** DH(s_i, S_r), precomputed. */
  readonly staticStatic: Uint8Array;
  /** The ephemeral private key (from the endpoint's Rng, so runs with a seeded Rng repeat). */
  readonly ephemeral: Uint8Array;
  /** TAI64N of when the initiation was asked for. */
  readonly timestamp: Uint8Array;
}

/** What `computeInitiation` returns for a job. */
export interface InitiationResult {
  readonly peer: PeerId;
  readonly token: number;
  /** The message's Noise part: Initiation.noiseEnd - Initiation.noiseStart bytes. */
  readonly noise: Uint8Array;
  readonly chainKey: Uint8Array;
  readonly hash: Uint8Array;
  /** The job's ephemeral private key, kept by the handshake for the response. */
  readonly ephemeral: Uint8Array;
}

/** WireGuard's NoiseStart per provider (jobs exist only for endpoints with the standard identifier). */
const starts = new WeakMap<CryptoProvider, NoiseStart>();

/**
 * The pure part of an initiation (es, s, ss and the timestamp): two X25519 operations and the
 * hashing, which is what a worker thread takes off the endpoint's thread. Null only for a
 * low-order remote static key (no peer with one has a staticStatic to put in a job).
 */
export function computeInitiation(crypto: CryptoProvider, job: InitiationJob): InitiationResult | null {
  let start = starts.get(crypto);
  if (!start) { start = noiseStart(crypto, CONSTRUCTION, utf8(IDENTIFIER)); starts.set(crypto, start); }
  const ephemeral = crypto.x25519PrivateKey(job.ephemeral);
  const noise = new Uint8Array(Initiation.noiseEnd - Initiation.noiseStart);
  const state = writeMessage1(
    crypto, start, { publicKey: job.localStatic }, job.remoteStatic, job.staticStatic, ephemeral, job.timestamp, noise, 0,
  );
  if (!state) return null;
  return { peer: job.peer, token: job.token, noise, chainKey: state.chainKey, hash: state.hash, ephemeral: job.ephemeral };
}

/**
 * Installs a computed initiation as `peer`'s pending handshake and returns the message to send,
 * or null when the result is no longer wanted (a newer handshake, a cleared one). Copies what it
 * keeps: the caller erases the result's secrets.
 */
export function completeInitiation(ctx: HandshakeContext, peer: Peer, result: InitiationResult, now: number): Uint8Array | null {
  const hs = peer.handshake;
  if (result.token === 0 || hs.offloadToken !== result.token) return null;
  ctx.indexes.delete(hs.localIndex);
  hs.clear();
  const msg = new Uint8Array(Initiation.size);
  writeType(msg, MESSAGE_INITIATION);
  msg.set(result.noise, Initiation.noiseStart);
  // The X25519 key object is made when a response comes (consumeResponse): most initiations
  // of a dialing storm get none, and making it costs what the worker saved.
  const state = { chainKey: result.chainKey.slice(), hash: result.hash.slice() };
  installInitiation(ctx, peer, msg, state, null, result.ephemeral.slice(), now);
  return msg;
}

export type ConsumeFailure = 'decrypt' | 'unknownPeer' | 'replayedTimestamp' | 'floodedInitiation' | 'noPrivateKey';

/**
 * Consumes an initiation whose MACs were checked. Updates the peer's handshake only when the
 * message is genuine, newer than the last one and not flooding.
 */
export function consumeInitiation(
  ctx: HandshakeContext, msg: Uint8Array, now: number, peerByKey: (publicKey: Uint8Array) => Peer | undefined,
): Peer | ConsumeFailure {
  const local = ctx.local();
  if (!local) return 'noPrivateKey';
  let peer: Peer | undefined;
  let unknown = false;
  const state = readMessage1(ctx.crypto, ctx.start, local.key, msg.subarray(Initiation.noiseStart, Initiation.noiseEnd), (key) => {
    peer = peerByKey(key);
    if (!peer) unknown = true;
    return peer?.staticStatic ?? null;
  });
  if (unknown) return 'unknownPeer';
  // A state means the peer was found and the message decrypted (so no derived value to zero
  // here), and its timestamp is TIMESTAMP_SIZE bytes: recv admits only Initiation.size messages.
  if (!state || !peer) return 'decrypt';
  const hs = peer.handshake;
  if (compareBytes(state.payload, hs.lastTimestamp) <= 0) { zeroize(state.chainKey, state.hash); return 'replayedTimestamp'; }
  if (now - hs.lastInitiationConsumed < HANDSHAKE_INITIATION_RATE) { zeroize(state.chainKey, state.hash); return 'floodedInitiation'; }
  ctx.indexes.delete(hs.localIndex);
  hs.clear();
  hs.stage = 'initiationConsumed';
  hs.chainKey = state.chainKey;
  hs.hash = state.hash;
  hs.remoteEphemeral = state.remoteEphemeral;
  hs.remoteIndex = readU32LE(msg, Initiation.sender);
  hs.lastTimestamp.set(state.payload);
  hs.lastInitiationConsumed = now;
  return peer;
}

/** The response to a consumed initiation, or null if none is pending or a DH fails. */
export function createResponse(ctx: HandshakeContext, peer: Peer, now: number): Uint8Array | null {
  const hs = peer.handshake;
  if (hs.stage !== 'initiationConsumed') return null;
  // Stryker disable next-line ConditionalExpression,LogicalOperator: consumeInitiation sets all three with the stage; narrows types
  if (!hs.chainKey || !hs.hash || !hs.remoteEphemeral) return null;
  const eph = newEphemeral(ctx);
  const msg = new Uint8Array(Response.size);
  writeType(msg, MESSAGE_RESPONSE);
  writeU32LE(msg, Response.receiver, hs.remoteIndex);
  const state = { chainKey: hs.chainKey, hash: hs.hash };
  const ok = writeMessage2(
    ctx.crypto, state, hs.remoteEphemeral, peer.publicKey, peer.presharedKey, eph.key, EMPTY, msg, Response.noiseStart,
  );
  // writeMessage2 zeroed the chaining key and hash it replaced (hs's); zero what it made.
  // Unreachable: ee and se are zero only for a low-order e_i or S_i, and readMessage1 already
  // failed on those (es = DH(s_r, e_i) zero; no peer has a low-order key and a staticStatic).
  // Stryker disable next-line ConditionalExpression,BlockStatement: unreachable, see above
  if (!ok) { zeroize(eph.raw, state.chainKey, state.hash); hs.clear(); return null; }
  hs.localIndex = ctx.indexes.allocate({ peer, session: null });
  writeU32LE(msg, Response.sender, hs.localIndex);
  hs.chainKey = state.chainKey;
  hs.hash = state.hash;
  hs.localEphemeral = eph.key;
  hs.localEphemeralRaw = eph.raw;
  hs.stage = 'responseCreated';
  peer.cookies.addMacs(msg, now);
  return msg;
}

/** Consumes a response to our pending initiation; returns the peer, or null if it does not fit. */
export function consumeResponse(ctx: HandshakeContext, msg: Uint8Array): Peer | null {
  const local = ctx.local();
  if (!local) return null;
  const entry = ctx.indexes.get(readU32LE(msg, Response.receiver));
  if (!entry || entry.session) return null;
  const peer = entry.peer;
  const hs = peer.handshake;
  if (hs.stage !== 'initiationCreated') return null;
  // Stryker disable next-line ConditionalExpression,LogicalOperator: createInitiation sets all three with the stage; narrows types
  if (!hs.chainKey || !hs.hash || !hs.localEphemeralRaw) return null;
  hs.localEphemeral ??= ctx.crypto.x25519PrivateKey(hs.localEphemeralRaw);
  const result = readMessage2(
    ctx.crypto, { chainKey: hs.chainKey, hash: hs.hash, ephemeral: hs.localEphemeral }, local.key, peer.presharedKey,
    msg.subarray(Response.noiseStart, Response.noiseEnd),
  );
  if (!result) return null;
  zeroize(hs.chainKey, hs.hash);
  hs.chainKey = result.state.chainKey;
  hs.hash = result.state.hash;
  hs.remoteIndex = readU32LE(msg, Response.sender);
  return peer;
}

/**
 * Turns the finished handshake into a session and places it (wireguard-go's
 * BeginSymmetricSession): the initiator uses it at once; the responder keeps it as `next`
 * until the initiator's first packet confirms it. Returns sessions that left the slots.
 */
export function beginSession(ctx: HandshakeContext, peer: Peer, now: number, isInitiator: boolean): Session[] {
  const hs = peer.handshake;
  const [k1, k2] = split(ctx.crypto, { chainKey: hs.chainKey!, hash: hs.hash! });
  const session = new Session(
    ctx.crypto, hs.localIndex, hs.remoteIndex, isInitiator, now, isInitiator ? k1 : k2, isInitiator ? k2 : k1,
  );
  ctx.indexes.replace(hs.localIndex, { peer, session });
  hs.localIndex = 0; // handed over to the session
  hs.chainKey = null;
  hs.clear();
  const gone: Session[] = [];
  if (isInitiator) {
    if (peer.next) {
      // An unconfirmed responder session becomes the fallback for in-flight packets. No
      // previous to drop: taking `next` as responder (below) emptied it, and only this branch
      // or confirming `next` (which empties `next`) fills it again.
      if (peer.current) gone.push(peer.current);
      peer.previous = peer.next;
      peer.next = null;
    } else {
      if (peer.previous) gone.push(peer.previous);
      peer.previous = peer.current;
    }
    peer.current = session;
  } else {
    if (peer.next) gone.push(peer.next);
    if (peer.previous) gone.push(peer.previous);
    peer.next = session;
    peer.previous = null;
  }
  return gone;
}
