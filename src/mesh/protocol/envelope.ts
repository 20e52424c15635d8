/**
 * Signaling envelopes between two peers (docs/mesh.md §2): sealed with the per-direction key,
 * bound to sender and recipient, and accepted once under the replay rule (fresh `sent` time,
 * epoch never older than the newest seen, counter new in the window).
 *
 *   envelope = version ‖ epoch (8) ‖ counter (8) ‖ sent (8) ‖ nonce (24) ‖ XChaCha20-Poly1305(body)
 */
import type { CryptoProvider } from '../../core/crypto.ts';
import type { Rng } from '../../core/rng.ts';
import { ReplayWindow } from '../../core/replay.ts';
import { label } from './keys.ts';
import type { SignalKeys } from './keys.ts';

const ENVELOPE_VERSION = 1;
const HEADER_LENGTH = 1 + 8 + 8 + 8;
const NONCE_LENGTH = 24;
const TAG_LENGTH = 16;
export const ENVELOPE_OVERHEAD = HEADER_LENGTH + NONCE_LENGTH + TAG_LENGTH;
/** Envelopes sent longer ago (or further ahead) than this are refused: what outlives a lost window. */
export const MAX_CLOCK_SKEW_MS = 120_000;
const AD_LABEL = label('envelope');

export type EnvelopeDrop = 'malformed' | 'seal' | 'stale' | 'oldEpoch' | 'replay';

export type OpenResult = { ok: true; body: Uint8Array; epoch: number; counter: number } | { ok: false; reason: EnvelopeDrop };

/** 0 ≤ n < 2^53 as 8 bytes big-endian, without BigInt. */
function writeU64(b: Uint8Array, o: number, n: number): void {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  v.setUint32(o, Math.floor(n / 0x1_0000_0000));
  v.setUint32(o + 4, n >>> 0);
}

function readHalves(b: Uint8Array, o: number): [lo: number, hi: number] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return [v.getUint32(o + 4), v.getUint32(o)];
}

function associatedData(sender: Uint8Array, recipient: Uint8Array, header: Uint8Array): Uint8Array {
  const ad = new Uint8Array(AD_LABEL.length + 64 + header.length);
  ad.set(AD_LABEL, 0);
  ad.set(sender, AD_LABEL.length);
  ad.set(recipient, AD_LABEL.length + 32);
  ad.set(header, AD_LABEL.length + 64);
  return ad;
}

/**
 * One peer pair's signaling channel, seen from `self`. Sans-I/O: the caller passes the wall
 * clock (Unix ms) into every call.
 */
export class SignalChannel {
  private readonly crypto: CryptoProvider;
  private readonly rng: Rng;
  private readonly keys: SignalKeys;
  private readonly self: Uint8Array;
  private readonly peer: Uint8Array;
  private readonly epoch: number;
  private counter = 0;
  private highestEpoch = -1;
  private readonly window = new ReplayWindow();
  readonly drops: Record<EnvelopeDrop, number> = { malformed: 0, seal: 0, stale: 0, oldEpoch: 0, replay: 0 };

  /** `epoch`: this side's mesh session start in Unix ms (strictly later on every restart). */
  constructor(crypto: CryptoProvider, rng: Rng, keys: SignalKeys, self: Uint8Array, peer: Uint8Array, epoch: number) {
    this.crypto = crypto;
    this.rng = rng;
    this.keys = keys;
    this.self = self;
    this.peer = peer;
    this.epoch = epoch;
  }

  seal(wallNow: number, body: Uint8Array): Uint8Array {
    const header = new Uint8Array(HEADER_LENGTH);
    header[0] = ENVELOPE_VERSION;
    writeU64(header, 1, this.epoch);
    writeU64(header, 9, this.counter++);
    writeU64(header, 17, Math.max(0, Math.floor(wallNow)));
    const nonce = new Uint8Array(NONCE_LENGTH);
    this.rng.fill(nonce);
    const sealed = this.crypto.xseal(this.keys.send, nonce, body, associatedData(this.self, this.peer, header));
    const out = new Uint8Array(HEADER_LENGTH + NONCE_LENGTH + sealed.length);
    out.set(header, 0);
    out.set(nonce, HEADER_LENGTH);
    out.set(sealed, HEADER_LENGTH + NONCE_LENGTH);
    return out;
  }

  /** Opens an envelope from the peer; never throws, counts every refusal. */
  open(wallNow: number, envelope: Uint8Array): OpenResult {
    const reason = this.check(wallNow, envelope);
    if (typeof reason === 'string') {
      this.drops[reason]++;
      return { ok: false, reason };
    }
    return reason;
  }

  private check(wallNow: number, envelope: Uint8Array): OpenResult | EnvelopeDrop {
    if (envelope.length < ENVELOPE_OVERHEAD || envelope[0] !== ENVELOPE_VERSION) return 'malformed';
    const header = envelope.subarray(0, HEADER_LENGTH);
    const nonce = envelope.subarray(HEADER_LENGTH, HEADER_LENGTH + NONCE_LENGTH);
    const body = this.crypto.xopen(this.keys.recv, nonce, envelope.subarray(HEADER_LENGTH + NONCE_LENGTH), associatedData(this.peer, this.self, header));
    if (!body) return 'seal';
    const [epochLo, epochHi] = readHalves(header, 1);
    const [counterLo, counterHi] = readHalves(header, 9);
    const [sentLo, sentHi] = readHalves(header, 17);
    const epoch = epochHi * 0x1_0000_0000 + epochLo;
    const sent = sentHi * 0x1_0000_0000 + sentLo;
    if (Math.abs(wallNow - sent) > MAX_CLOCK_SKEW_MS) return 'stale';
    if (epoch < this.highestEpoch) return 'oldEpoch';
    if (epoch > this.highestEpoch) {
      // Only an authenticated, fresh envelope moves the epoch: a forged one cannot reset the window.
      this.window.reset();
      this.highestEpoch = epoch;
    }
    if (!this.window.mark(counterLo, counterHi)) return 'replay';
    return { ok: true, body, epoch, counter: counterHi * 0x1_0000_0000 + counterLo };
  }
}
