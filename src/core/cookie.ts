/**
 * MACs and cookies (whitepaper §5.3, §5.4.4, §5.4.7).
 *
 * CookieChecker is the receiving side of one local static key: it verifies mac1 and mac2 and
 * makes cookie replies. CookieGenerator is the sending side towards one peer: it adds mac1/mac2
 * to our handshake messages and consumes the peer's cookie replies.
 */
import { utf8, writeU32LE } from './bytes.ts';
import { COOKIE_REFRESH_TIME, COOKIE_VALID_TIME, LABEL_COOKIE, LABEL_MAC1 } from './constants.ts';
import type { CryptoProvider } from './crypto.ts';
import { equalConstantTime, zeroize } from './crypto.ts';
import { COOKIE_NONCE_SIZE, CookieReply, MAC_SIZE, MESSAGE_COOKIE_REPLY, writeType } from './messages.ts';
import type { Rng } from './rng.ts';

const MAC1_LABEL = utf8(LABEL_MAC1);
const COOKIE_LABEL = utf8(LABEL_COOKIE);

/** mac1 key and cookie encryption key for a static public key. */
function macKeys(crypto: CryptoProvider, publicKey: Uint8Array): { mac1Key: Uint8Array; cookieKey: Uint8Array } {
  return { mac1Key: crypto.hash([MAC1_LABEL, publicKey]), cookieKey: crypto.hash([COOKIE_LABEL, publicKey]) };
}

/** Offsets of mac1 and mac2 within a handshake message: both are the last 32 bytes. */
function mac1Offset(msg: Uint8Array): number { return msg.length - 2 * MAC_SIZE; }
function mac2Offset(msg: Uint8Array): number { return msg.length - MAC_SIZE; }

export class CookieChecker {
  private mac1Key: Uint8Array;
  private cookieKey: Uint8Array;
  private readonly secret = new Uint8Array(32);
  private secretSetAt = -Infinity;

  private readonly crypto: CryptoProvider;
  private readonly rng: Rng;

  constructor(crypto: CryptoProvider, rng: Rng, localPublicKey: Uint8Array) {
    this.crypto = crypto;
    this.rng = rng;
    ({ mac1Key: this.mac1Key, cookieKey: this.cookieKey } = macKeys(crypto, localPublicKey));
  }

  /** Re-key for a new local static key; cookies made under the old one stop working. */
  setPublicKey(localPublicKey: Uint8Array): void {
    ({ mac1Key: this.mac1Key, cookieKey: this.cookieKey } = macKeys(this.crypto, localPublicKey));
    this.clearSecret();
  }

  /** When the secret stops being used (COOKIE_REFRESH_TIME after it was drawn); Infinity if none. */
  get secretExpiresAt(): number {
    return this.secretSetAt === -Infinity ? Infinity : this.secretSetAt + COOKIE_REFRESH_TIME;
  }

  /** Zeroes the secret once it has expired: no cookie it made is checked any more. */
  expire(now: number): void {
    if (now >= this.secretExpiresAt) this.clearSecret();
  }

  /** Zeroes the secret now (key change or removal). */
  clearSecret(): void {
    zeroize(this.secret);
    this.secretSetAt = -Infinity;
  }

  /** mac1 = MAC(HASH("mac1----" ‖ our public key), msg before mac1). Constant-time compare. */
  checkMac1(msg: Uint8Array): boolean {
    const at = mac1Offset(msg);
    const mac = this.crypto.mac(this.mac1Key, msg.subarray(0, at));
    return equalConstantTime(mac, msg.subarray(at, at + MAC_SIZE));
  }

  /** mac2 = MAC(cookie for `sourceTag`, msg before mac2); false once the secret has expired. */
  checkMac2(msg: Uint8Array, sourceTag: Uint8Array, now: number): boolean {
    if (now - this.secretSetAt >= COOKIE_REFRESH_TIME) return false;
    const cookie = this.crypto.mac(this.secret, sourceTag);
    const at = mac2Offset(msg);
    const mac = this.crypto.mac(cookie, msg.subarray(0, at));
    return equalConstantTime(mac, msg.subarray(at, at + MAC_SIZE));
  }

  /** A 64-byte cookie reply to the handshake message `msg` from `sourceTag`. */
  createReply(msg: Uint8Array, senderIndex: number, sourceTag: Uint8Array, now: number): Uint8Array {
    if (now - this.secretSetAt >= COOKIE_REFRESH_TIME) {
      // Drawn in place: the new secret overwrites the old one's bytes.
      this.rng.fill(this.secret);
      this.secretSetAt = now;
    }
    const cookie = this.crypto.mac(this.secret, sourceTag);
    const reply = new Uint8Array(CookieReply.size);
    writeType(reply, MESSAGE_COOKIE_REPLY);
    writeU32LE(reply, CookieReply.receiver, senderIndex);
    const nonce = reply.subarray(CookieReply.nonce, CookieReply.nonce + COOKIE_NONCE_SIZE);
    this.rng.fill(nonce);
    const at = mac1Offset(msg);
    const sealed = this.crypto.xseal(this.cookieKey, nonce, cookie, msg.subarray(at, at + MAC_SIZE));
    reply.set(sealed, CookieReply.encryptedCookie);
    zeroize(cookie);
    return reply;
  }
}

export class CookieGenerator {
  /** Views of one buffer (one generator per peer: see Peer's keys). */
  private readonly mac1Key: Uint8Array;
  private readonly cookieKey: Uint8Array;
  private readonly lastMac1: Uint8Array;
  private hasLastMac1 = false;
  private cookie: Uint8Array | null = null;
  // Stryker disable next-line UnaryOperator: read only while `cookie` is set, and set with it
  private cookieSetAt = -Infinity;

  private readonly crypto: CryptoProvider;

  constructor(crypto: CryptoProvider, remotePublicKey: Uint8Array) {
    this.crypto = crypto;
    const store = new ArrayBuffer(2 * 32 + MAC_SIZE);
    this.mac1Key = new Uint8Array(store, 0, 32);
    this.cookieKey = new Uint8Array(store, 32, 32);
    this.lastMac1 = new Uint8Array(store, 64, MAC_SIZE);
    const keys = macKeys(crypto, remotePublicKey);
    this.mac1Key.set(keys.mac1Key);
    this.cookieKey.set(keys.cookieKey);
  }

  /** Fills mac1 and mac2 (zeros without a fresh cookie) of an outgoing handshake message. */
  addMacs(msg: Uint8Array, now: number): void {
    const at1 = mac1Offset(msg);
    const mac1 = this.crypto.mac(this.mac1Key, msg.subarray(0, at1));
    msg.set(mac1, at1);
    this.lastMac1.set(mac1);
    this.hasLastMac1 = true;
    const at2 = mac2Offset(msg);
    if (this.cookie && now - this.cookieSetAt < COOKIE_VALID_TIME) {
      msg.set(this.crypto.mac(this.cookie, msg.subarray(0, at2)), at2);
    } else {
      msg.fill(0, at2, at2 + MAC_SIZE);
    }
  }

  /** Takes the cookie from a reply to our last handshake message; false if it does not open. */
  consumeReply(reply: Uint8Array, now: number): boolean {
    if (!this.hasLastMac1) return false;
    const nonce = reply.subarray(CookieReply.nonce, CookieReply.nonce + COOKIE_NONCE_SIZE);
    const cookie = this.crypto.xopen(this.cookieKey, nonce, reply.subarray(CookieReply.encryptedCookie), this.lastMac1);
    if (!cookie) return false;
    zeroize(this.cookie);
    this.cookie = cookie;
    this.cookieSetAt = now;
    return true;
  }

  clear(): void {
    zeroize(this.cookie);
    this.cookie = null;
    // Stryker disable next-line UnaryOperator: read only while `cookie` is set, and set with it
    this.cookieSetAt = -Infinity;
    this.hasLastMac1 = false;
  }
}
