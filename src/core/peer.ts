/**
 * Per-peer protocol state: configuration, the handshake in progress, the three session slots,
 * the timers (as absolute deadlines, Infinity when disarmed) and the packets waiting for a
 * handshake. Behaviour lives in endpoint.ts and handshake.ts; this file only holds state.
 */
import type { CryptoProvider, X25519PrivateKey } from './crypto.ts';
import { zeroize } from './crypto.ts';
import { CookieGenerator } from './cookie.ts';
import type { Session } from './session.ts';
import { TIMESTAMP_SIZE } from './messages.ts';

export type PeerId = number;

export type HandshakeStage = 'zeroed' | 'initiationCreated' | 'initiationConsumed' | 'responseCreated';

export class Handshake {
  stage: HandshakeStage = 'zeroed';
  /** Our index for this handshake while it is pending (0 = none). */
  localIndex = 0;
  remoteIndex = 0;
  chainKey: Uint8Array | null = null;
  hash: Uint8Array | null = null;
  localEphemeral: X25519PrivateKey | null = null;
  localEphemeralRaw: Uint8Array | null = null;
  remoteEphemeral: Uint8Array | null = null;
  /** Greatest TAI64N timestamp accepted from this peer; survives clear() so old initiations stay replays. */
  readonly lastTimestamp = new Uint8Array(TIMESTAMP_SIZE);
  /** When we last accepted an initiation from this peer (flood limit). */
  lastInitiationConsumed = -Infinity;
  /** When we last sent an initiation or response (rate limit for new initiations). */
  lastSentHandshake = -Infinity;
  /** The token of an initiation being computed elsewhere (Endpoint.completeInitiation), or 0. */
  offloadToken = 0;
  /** Whether that initiation is a retry (for its event). */
  offloadRetry = false;

  clear(): void {
    zeroize(this.chainKey, this.hash, this.localEphemeralRaw, this.remoteEphemeral);
    this.stage = 'zeroed';
    this.localIndex = 0;
    this.remoteIndex = 0;
    this.chainKey = null;
    this.hash = null;
    this.localEphemeral = null;
    this.localEphemeralRaw = null;
    this.remoteEphemeral = null;
    this.offloadToken = 0;
  }
}

export interface PeerConfig {
  publicKey: Uint8Array;
  /** 32 bytes; omitted or all zeros means no preshared key. */
  presharedKey?: Uint8Array | null;
  /** Seconds; 0 or omitted disables persistent keepalive. */
  persistentKeepalive?: number;
}

export interface PeerStats {
  rxBytes: number;
  txBytes: number;
  /** Wall-clock milliseconds of the last completed handshake, 0 if none. */
  lastHandshakeWall: number;
  /** Packets dropped because the waiting queue was full. */
  queueDrops: number;
}

export class Peer {
  readonly id: PeerId;
  /**
   * The public key, preshared key and DH(our static, their static) are views of one buffer:
   * a small array of its own costs ~200 bytes more, and 10,000 peers have 30,000 of them.
   */
  readonly publicKey: Uint8Array;
  publicKeyHex: string;
  readonly presharedKey: Uint8Array;
  persistentKeepalive = 0;
  /** DH(our static, their static), or null when that is invalid (then no handshake is possible). */
  staticStatic: Uint8Array | null = null;
  /** Where a valid staticStatic is kept. */
  private readonly staticStaticSlot: Uint8Array;
  /** Made on first use (`cookies`): most of 10,000 configured peers never handshake. */
  private cookieGenerator: CookieGenerator | null = null;
  private readonly crypto: CryptoProvider;

  readonly handshake = new Handshake();
  current: Session | null = null;
  previous: Session | null = null;
  next: Session | null = null;

  /** Plaintext packets waiting for a session (copies), oldest first. */
  readonly queue: Uint8Array[] = [];

  // Timers (absolute `now` values; Infinity when disarmed). Names follow wireguard-go's timers.go.
  retransmitHandshakeAt = Infinity;
  sendKeepaliveAt = Infinity;
  newHandshakeAt = Infinity;
  zeroKeyMaterialAt = Infinity;
  persistentKeepaliveAt = Infinity;
  handshakeAttempts = 0;
  needAnotherKeepalive = false;
  /** The initiator already asked for a fresh handshake on receive for the current session. */
  sentRekeyOnReceive = false;

  readonly stats: PeerStats = { rxBytes: 0, txBytes: 0, lastHandshakeWall: 0, queueDrops: 0 };

  constructor(id: PeerId, crypto: CryptoProvider, publicKey: Uint8Array, publicKeyHex: string) {
    this.id = id;
    const keys = new ArrayBuffer(3 * 32);
    this.publicKey = new Uint8Array(keys, 0, 32);
    this.publicKey.set(publicKey);
    this.presharedKey = new Uint8Array(keys, 32, 32);
    this.staticStaticSlot = new Uint8Array(keys, 64, 32);
    this.publicKeyHex = publicKeyHex;
    this.crypto = crypto;
  }

  /** Takes `dh` (zeroing it) as DH(our static, their static); null: no valid one. */
  setStaticStatic(dh: Uint8Array | null): void {
    const slot = this.staticStaticSlot;
    slot.fill(0);
    this.staticStatic = null;
    if (dh === null) return;
    slot.set(dh);
    dh.fill(0);
    this.staticStatic = slot;
  }

  /** mac1/mac2 for our handshake messages to this peer, and the cookie it last gave us. */
  get cookies(): CookieGenerator {
    return (this.cookieGenerator ??= new CookieGenerator(this.crypto, this.publicKey));
  }

  /** Forgets the peer's cookie (and our last mac1); nothing to do if none was ever made. */
  clearCookies(): void {
    this.cookieGenerator?.clear();
  }

  /** Whether the cookie state exists yet (tests: it is made lazily). */
  get hasCookieState(): boolean {
    return this.cookieGenerator !== null;
  }

  /** The earliest of this peer's deadlines, including session expiry. */
  nextDeadline(): number {
    let t = Math.min(
      this.retransmitHandshakeAt, this.sendKeepaliveAt, this.newHandshakeAt,
      this.zeroKeyMaterialAt, this.persistentKeepaliveAt,
    );
    const c = this.current, p = this.previous, n = this.next;
    if (c && !c.isErased && c.expiresAt < t) t = c.expiresAt;
    if (p && !p.isErased && p.expiresAt < t) t = p.expiresAt;
    if (n && !n.isErased && n.expiresAt < t) t = n.expiresAt;
    return t;
  }
}
