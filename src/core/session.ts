/**
 * A transport session (a "keypair" in wireguard-go): the two symmetric keys of one completed
 * handshake, the send counter and the receive replay window.
 */
import { REJECT_AFTER_TIME } from './constants.ts';
import type { AeadKey, CryptoProvider } from './crypto.ts';
import { zeroize } from './crypto.ts';
import { counterUsable, ReplayWindow } from './replay.ts';

export class Session {
  readonly localIndex: number;
  readonly remoteIndex: number;
  readonly isInitiator: boolean;
  /** `now` when the handshake that made this session completed. */
  readonly created: number;
  /** created + REJECT_AFTER_TIME, computed once so deadline and check agree to the last bit. */
  readonly expiresAt: number;
  readonly sendKey: AeadKey;
  readonly receiveKey: AeadKey;
  /** Next send counter as 32-bit halves. */
  sendLo = 0;
  sendHi = 0;
  readonly replay = new ReplayWindow();
  /** Raw key bytes, kept only so they can be erased. */
  private readonly rawKeys: Uint8Array[];
  private erased = false;

  constructor(
    crypto: CryptoProvider, localIndex: number, remoteIndex: number, isInitiator: boolean, created: number,
    sendKey: Uint8Array, receiveKey: Uint8Array,
  ) {
    this.localIndex = localIndex;
    this.remoteIndex = remoteIndex;
    this.isInitiator = isInitiator;
    this.created = created;
    this.expiresAt = created + REJECT_AFTER_TIME;
    this.sendKey = crypto.aeadKey(sendKey);
    this.receiveKey = crypto.aeadKey(receiveKey);
    this.rawKeys = [sendKey, receiveKey];
  }

  get isErased(): boolean {
    return this.erased;
  }

  /** Usable for receiving: not erased and younger than REJECT_AFTER_TIME. */
  canReceive(now: number): boolean {
    return !this.erased && now < this.expiresAt;
  }

  /** Usable for sending: as for receiving, and the send counter below REJECT_AFTER_MESSAGES. */
  canSend(now: number): boolean {
    return this.canReceive(now) && counterUsable(this.sendLo, this.sendHi);
  }

  /** Takes the next send counter; the caller checked canSend. */
  nextCounter(): void {
    this.sendLo = (this.sendLo + 1) >>> 0;
    if (this.sendLo === 0) this.sendHi = (this.sendHi + 1) >>> 0;
  }

  /** True if the next `count` send counters (count ≥ 1) are all below REJECT_AFTER_MESSAGES. */
  canReserve(count: number): boolean {
    const last = this.sendLo + count - 1;
    const hi = this.sendHi + (last > 0xffff_ffff ? 1 : 0);
    return hi <= 0xffff_ffff && counterUsable(last >>> 0, hi);
  }

  /** Takes the next `count` send counters at once; the caller checked canReserve. */
  advanceCounter(count: number): void {
    const next = this.sendLo + count;
    this.sendLo = next >>> 0;
    if (next > 0xffff_ffff) this.sendHi = (this.sendHi + 1) >>> 0;
  }

  /** The raw 32-byte send key, for a caller that seals elsewhere (zeros once erased). */
  get sendKeyBytes(): Uint8Array {
    return this.rawKeys[0]!;
  }

  /**
   * Erase key material. Raw bytes are zeroed; prepared key objects (e.g. node KeyObjects) are
   * dropped for the garbage collector, which is as far as JavaScript allows.
   */
  erase(): void {
    this.erased = true;
    zeroize(...this.rawKeys);
    this.replay.reset();
  }
}
