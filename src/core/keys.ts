/**
 * Key encodings and key generation, as WireGuard tools spell them.
 *
 * Portable: no Node built-ins, no Buffer. The codecs follow wireguard-tools' encoding.c: they
 * avoid table look-ups and branches indexed by the (possibly secret) input bytes, so decoding a
 * private key does not leak it through cache timing as far as JavaScript allows (the engine
 * gives no guarantee). Error messages never contain the input text.
 */
import { WireweaveError } from './errors.ts';
import type { Rng } from './rng.ts';

/** Bytes in a WireGuard key (private, public or preshared). */
export const KEY_LENGTH = 32;
/** Characters in the base64 form of a key: 43 data characters and one '='. */
export const KEY_BASE64_LENGTH = 44;
/** Characters in the hex form of a key. */
export const KEY_HEX_LENGTH = 64;

/** Malformed base64 or hex text given to `decodeBase64` / `decodeHex`. */
export class EncodingError extends WireweaveError {
  declare readonly code: 'ERR_ENCODING';
  constructor(message: string) {
    super('ERR_ENCODING', message);
    this.name = 'EncodingError';
  }
}

/** Why a key was rejected. */
export type KeyFormatReason = 'empty' | 'length' | 'encoding';

/** Text that is not a key. The message names the problem and never contains the text. */
export class KeyFormatError extends WireweaveError {
  declare readonly code: 'ERR_KEY_FORMAT';
  readonly reason: KeyFormatReason;
  constructor(reason: KeyFormatReason, message: string) {
    super('ERR_KEY_FORMAT', message);
    this.name = 'KeyFormatError';
    this.reason = reason;
  }
}

// ---------------------------------------------------------------------------------------------
// base64 (RFC 4648 standard alphabet, with padding)

/** The base64 character for a 6-bit value, computed without a table (encoding.c). */
function base64Char(v: number): number {
  return (
    v + 65 /* 'A' */ +
    (((25 - v) >> 8) & 6) -
    (((51 - v) >> 8) & 75) -
    (((61 - v) >> 8) & 15) +
    (((62 - v) >> 8) & 3)
  );
}

/**
 * The 6-bit value of an ASCII character code (0..127), or -1 when it is not in the standard
 * alphabet, computed without a table (encoding.c). Callers reject codes above 127 separately.
 */
function base64Value(c: number): number {
  return (
    -1 +
    ((((64 /* 'A' - 1 */ - c) & (c - 91 /* 'Z' + 1 */)) >> 8) & (c - 64)) +
    ((((96 /* 'a' - 1 */ - c) & (c - 123 /* 'z' + 1 */)) >> 8) & (c - 70)) +
    ((((47 /* '0' - 1 */ - c) & (c - 58 /* '9' + 1 */)) >> 8) & (c + 5)) +
    ((((42 /* '+' - 1 */ - c) & (c - 44 /* '+' + 1 */)) >> 8) & 63) +
    ((((46 /* '/' - 1 */ - c) & (c - 48 /* '/' + 1 */)) >> 8) & 64)
  );
}

function charCodesToString(codes: Uint8Array): string {
  let out = '';
  // apply() takes the typed array as it is; a spread would walk it through the iterator
  // protocol, which made hex/base64 encoding the largest cost of a 10,000-peer UAPI get.
  for (let i = 0; i < codes.length; i += 8192) {
    out += String.fromCharCode.apply(null, codes.subarray(i, i + 8192) as unknown as number[]);
  }
  return out;
}

/** Standard base64 with '=' padding. */
export function encodeBase64(bytes: Uint8Array): string {
  const n = bytes.length;
  const out = new Uint8Array(Math.ceil(n / 3) * 4);
  let o = 0;
  let i = 0;
  for (; i + 3 <= n; i += 3) {
    const b0 = bytes[i]!, b1 = bytes[i + 1]!, b2 = bytes[i + 2]!;
    out[o++] = base64Char(b0 >> 2);
    out[o++] = base64Char(((b0 << 4) | (b1 >> 4)) & 63);
    out[o++] = base64Char(((b1 << 2) | (b2 >> 6)) & 63);
    out[o++] = base64Char(b2 & 63);
  }
  const rest = n - i;
  if (rest > 0) {
    const b0 = bytes[i]!;
    const b1 = rest === 2 ? bytes[i + 1]! : 0;
    out[o] = base64Char(b0 >> 2);
    out[o + 1] = base64Char(((b0 << 4) | (b1 >> 4)) & 63);
    out[o + 2] = rest === 2 ? base64Char((b1 << 2) & 63) : 61; /* '=' */
    out[o + 3] = 61;
  }
  return charCodesToString(out);
}

/**
 * Strict standard base64: the length is a multiple of 4, only the alphabet A-Z a-z 0-9 + /,
 * '=' only as one or two final padding characters, and the unused bits before the padding are
 * zero (so each byte string has exactly one accepted encoding). No whitespace, no URL-safe
 * alphabet. Throws `EncodingError` otherwise.
 */
export function decodeBase64(text: string): Uint8Array {
  const len = text.length;
  if (len % 4 !== 0) {
    throw new EncodingError('invalid base64: length is not a multiple of 4');
  }
  if (len === 0) return new Uint8Array(0);
  let pad = 0;
  if (text.charCodeAt(len - 1) === 61) pad = text.charCodeAt(len - 2) === 61 ? 2 : 1;
  const out = new Uint8Array((len / 4) * 3 - pad);
  // Accumulate failures instead of branching on each (secret) character.
  let bad = 0;
  let o = 0;
  for (let i = 0; i < len; i += 4) {
    const last = i + 4 === len;
    let val = 0;
    for (let j = 0; j < 4; j++) {
      const c = text.charCodeAt(i + j);
      let v: number;
      if (last && j >= 4 - pad) {
        v = 0; // padding, checked above
      } else {
        bad |= (127 - c) >>> 31; // non-ASCII
        v = base64Value(c & 127);
        bad |= v >>> 31; // -1: not in the alphabet (this also rejects '=' inside the text)
      }
      val |= (v & 63) << (18 - 6 * j);
    }
    if (last && pad > 0) {
      // Bits that the padding says are unused must be zero (canonical encoding).
      bad |= pad === 1 ? (val & 0xff) : (val & 0xffff);
      out[o++] = (val >> 16) & 0xff;
      if (pad === 1) out[o++] = (val >> 8) & 0xff;
    } else {
      out[o++] = (val >> 16) & 0xff;
      out[o++] = (val >> 8) & 0xff;
      out[o++] = val & 0xff;
    }
  }
  if (bad !== 0) {
    out.fill(0);
    throw new EncodingError('invalid base64: characters outside the standard alphabet, misplaced padding, or non-canonical final bits');
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// hex

/** Lowercase hex. */
export function encodeHex(bytes: Uint8Array): string {
  const out = new Uint8Array(bytes.length * 2);
  writeHex(bytes, out, 0);
  return charCodesToString(out);
}

/**
 * Writes `bytes` as lowercase hex ASCII into `out` at `at` (room for twice their length) and
 * returns the index after it. No table is indexed by a byte, so keys leak nothing through cache.
 */
export function writeHex(bytes: Uint8Array, out: Uint8Array, at: number): number {
  for (let i = 0; i < bytes.length; i++) {
    const hi = bytes[i]! >> 4, lo = bytes[i]! & 15;
    // 48 = '0'; values 10..15 move up by 39 to 'a'..'f'.
    out[at++] = hi + 48 + (((9 - hi) >> 8) & 39);
    out[at++] = lo + 48 + (((9 - lo) >> 8) & 39);
  }
  return at;
}

/** The value of an ASCII hex digit (0..127 in, either case), or -1, without a table. */
function hexValue(c: number): number {
  return (
    -1 +
    ((((47 /* '0' - 1 */ - c) & (c - 58 /* '9' + 1 */)) >> 8) & (c - 47)) +
    ((((96 /* 'a' - 1 */ - c) & (c - 103 /* 'f' + 1 */)) >> 8) & (c - 86)) +
    ((((64 /* 'A' - 1 */ - c) & (c - 71 /* 'F' + 1 */)) >> 8) & (c - 54))
  );
}

/** Strict hex: an even number of digits 0-9 a-f A-F, nothing else. Throws `EncodingError`. */
export function decodeHex(text: string): Uint8Array {
  if (text.length % 2 !== 0) throw new EncodingError('invalid hex: odd number of digits');
  const out = new Uint8Array(text.length / 2);
  let bad = 0;
  for (let i = 0; i < out.length; i++) {
    const c1 = text.charCodeAt(2 * i), c2 = text.charCodeAt(2 * i + 1);
    bad |= ((127 - c1) | (127 - c2)) >>> 31;
    const hi = hexValue(c1 & 127), lo = hexValue(c2 & 127);
    bad |= (hi | lo) >>> 31;
    out[i] = ((hi << 4) | lo) & 0xff;
  }
  if (bad !== 0) {
    out.fill(0);
    throw new EncodingError('invalid hex: characters other than 0-9, a-f, A-F');
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// keys

/**
 * Curve25519 clamping, in place: clear the 3 low bits, clear the top bit, set bit 254.
 * Returns `key`.
 */
export function clampPrivateKey(key: Uint8Array): Uint8Array {
  if (key.length !== KEY_LENGTH) throw new RangeError(`a private key is ${KEY_LENGTH} bytes, not ${key.length}`);
  key[0] = key[0]! & 248;
  key[31] = (key[31]! & 127) | 64;
  return key;
}

/** A new clamped private key (what `wg genkey` prints). */
export function generatePrivateKey(rng: Rng): Uint8Array {
  const key = new Uint8Array(KEY_LENGTH);
  rng.fill(key);
  return clampPrivateKey(key);
}

/** A new preshared key: 32 uniformly random bytes (what `wg genpsk` prints). */
export function generatePresharedKey(rng: Rng): Uint8Array {
  const key = new Uint8Array(KEY_LENGTH);
  rng.fill(key);
  return key;
}

/**
 * A key in the form wireguard-tools accepts (key_from_base64): exactly 44 characters, 43 from
 * the standard base64 alphabet followed by '=', and canonical (the last data character carries
 * no stray low bits). Surrounding whitespace is NOT accepted here; a reader of lines or files
 * strips it first (as `wg pubkey` and the config parser do). Throws `KeyFormatError`.
 */
export function parseKeyBase64(text: string): Uint8Array {
  if (text.length === 0) throw new KeyFormatError('empty', 'key is empty: expected 44 base64 characters');
  if (text.length !== KEY_BASE64_LENGTH) {
    throw new KeyFormatError(
      'length',
      `key is not the correct length: expected 44 base64 characters, got ${text.length}`,
    );
  }
  if (text.charCodeAt(KEY_BASE64_LENGTH - 1) !== 61 || text.charCodeAt(KEY_BASE64_LENGTH - 2) === 61) {
    throw new KeyFormatError('encoding', "key is not valid base64: expected 43 base64 characters followed by one '='");
  }
  // Check the alphabet first (without branching per character) to name the problem precisely.
  let bad = 0;
  for (let i = 0; i < KEY_BASE64_LENGTH - 1; i++) {
    const c = text.charCodeAt(i);
    bad |= ((127 - c) >>> 31) | (base64Value(c & 127) >>> 31);
  }
  if (bad !== 0) {
    throw new KeyFormatError('encoding', 'key is not valid base64: it has characters outside the standard base64 alphabet');
  }
  try {
    return decodeBase64(text);
  } catch {
    throw new KeyFormatError(
      'encoding',
      "key is not canonical base64: the character before '=' has unused low bits set",
    );
  }
}

/** A key as exactly 64 hex digits (either case), as in the UAPI. Throws `KeyFormatError`. */
export function parseKeyHex(text: string): Uint8Array {
  if (text.length === 0) throw new KeyFormatError('empty', 'key is empty: expected 64 hex digits');
  if (text.length !== KEY_HEX_LENGTH) {
    throw new KeyFormatError('length', `key is not the correct length: expected 64 hex digits, got ${text.length}`);
  }
  try {
    return decodeHex(text);
  } catch {
    throw new KeyFormatError('encoding', 'key is not valid hex: expected only the digits 0-9, a-f, A-F');
  }
}
