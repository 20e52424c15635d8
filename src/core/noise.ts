/**
 * Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s as WireGuard uses it (whitepaper §5.4.2–§5.4.5).
 *
 * These are pure functions over the Noise part of the two handshake messages; the WireGuard
 * framing (type, indexes, MACs) lives in handshake.ts. The prologue and the payloads are
 * parameters so the same code reproduces the public Noise test vectors: WireGuard's identifier
 * string is the prologue, its TAI64N timestamp the first payload and the empty string the second.
 *
 *   initiator → responder:  e, es, s, ss   (+ payload)
 *   responder → initiator:  e, ee, se, psk (+ payload)
 */
import { concatBytes, EMPTY, utf8 } from './bytes.ts';
import type { CryptoProvider, X25519PrivateKey } from './crypto.ts';
import { zeroize } from './crypto.ts';
import { KEY_SIZE, TAG_SIZE } from './messages.ts';

/** Chaining key and handshake hash after InitializeSymmetric(name) and MixHash(prologue). */
export interface NoiseStart {
  readonly chainKey: Uint8Array;
  readonly hash: Uint8Array;
}

export function noiseStart(crypto: CryptoProvider, protocolName: string, prologue: Uint8Array): NoiseStart {
  const name = utf8(protocolName);
  let h: Uint8Array;
  if (name.length <= 32) { h = new Uint8Array(32); h.set(name); } else h = crypto.hash([name]);
  return { chainKey: h, hash: crypto.hash([h, prologue]) };
}

/** HKDF over HMAC-BLAKE2s with n = 1..3 outputs (whitepaper KDF_n). */
export function kdf(crypto: CryptoProvider, key: Uint8Array, input: Uint8Array, n: 1 | 2 | 3): Uint8Array[] {
  const prk = crypto.hmac(key, input);
  const t1 = crypto.hmac(prk, Uint8Array.of(1));
  const out = [t1];
  if (n >= 2) out.push(crypto.hmac(prk, concatBytes(t1, Uint8Array.of(2))));
  if (n >= 3) out.push(crypto.hmac(prk, concatBytes(out[1]!, Uint8Array.of(3))));
  zeroize(prk);
  return out;
}

/** Handshake state carried from one message to the next. */
export interface SymmetricState {
  chainKey: Uint8Array;
  hash: Uint8Array;
}

/** Replaces the hash, zeroing the old one (after the psk token it depends on a secret). */
function mixHash(crypto: CryptoProvider, s: SymmetricState, data: Uint8Array): void {
  const old = s.hash;
  s.hash = crypto.hash([old, data]);
  zeroize(old);
}

/** Zeroes a state given up on a failure path. */
function abandon(s: SymmetricState): null {
  zeroize(s.chainKey, s.hash);
  return null;
}

function mixKey(crypto: CryptoProvider, s: SymmetricState, input: Uint8Array): void {
  const [ck] = kdf(crypto, s.chainKey, input, 1);
  zeroize(s.chainKey);
  s.chainKey = ck!;
}

/** MixKey returning the derived cipher key as well (KDF2). */
function mixKeyAndKey(crypto: CryptoProvider, s: SymmetricState, input: Uint8Array): Uint8Array {
  const [ck, k] = kdf(crypto, s.chainKey, input, 2);
  zeroize(s.chainKey);
  s.chainKey = ck!;
  return k!;
}

function encryptAndHash(
  crypto: CryptoProvider, s: SymmetricState, key: Uint8Array, plaintext: Uint8Array, out: Uint8Array, offset: number,
): void {
  const n = crypto.seal(crypto.aeadKey(key), 0, 0, plaintext, s.hash, out, offset);
  mixHash(crypto, s, out.subarray(offset, offset + n));
}

function decryptAndHash(
  crypto: CryptoProvider, s: SymmetricState, key: Uint8Array, ciphertext: Uint8Array,
): Uint8Array | null {
  const plain = new Uint8Array(ciphertext.length - TAG_SIZE);
  if (!crypto.open(crypto.aeadKey(key), 0, 0, ciphertext, s.hash, plain, 0)) return null;
  mixHash(crypto, s, ciphertext);
  return plain;
}

/** Length of the Noise part of message 1 for a payload of `payloadLength` bytes. */
export function message1Length(payloadLength: number): number {
  return KEY_SIZE + KEY_SIZE + TAG_SIZE + payloadLength + TAG_SIZE;
}

/** Length of the Noise part of message 2 for a payload of `payloadLength` bytes. */
export function message2Length(payloadLength: number): number {
  return KEY_SIZE + payloadLength + TAG_SIZE;
}

export interface InitiatorState extends SymmetricState {
  ephemeral: X25519PrivateKey;
}

/**
 * Initiator writes message 1 into `out[offset..]`: e ‖ AEAD(s) ‖ AEAD(payload).
 * `staticStatic` is the precomputed DH(s_i, S_r). Returns null when a DH result is zero.
 */
export function writeMessage1(
  crypto: CryptoProvider,
  start: NoiseStart,
  localStatic: { readonly publicKey: Uint8Array },
  remoteStatic: Uint8Array,
  staticStatic: Uint8Array,
  ephemeral: X25519PrivateKey,
  payload: Uint8Array,
  out: Uint8Array,
  offset: number,
): InitiatorState | null {
  const s: SymmetricState = { chainKey: start.chainKey.slice(), hash: start.hash.slice() };
  mixHash(crypto, s, remoteStatic); // pre-message: responder's static key is known
  // e
  out.set(ephemeral.publicKey, offset);
  mixHash(crypto, s, ephemeral.publicKey);
  mixKey(crypto, s, ephemeral.publicKey); // the psk modes mix e into the key too
  // es
  const es = crypto.x25519(ephemeral, remoteStatic);
  if (!es) return abandon(s);
  let k = mixKeyAndKey(crypto, s, es);
  zeroize(es);
  // s
  encryptAndHash(crypto, s, k, localStatic.publicKey, out, offset + KEY_SIZE);
  zeroize(k);
  // ss
  k = mixKeyAndKey(crypto, s, staticStatic);
  encryptAndHash(crypto, s, k, payload, out, offset + KEY_SIZE + KEY_SIZE + TAG_SIZE);
  zeroize(k);
  return { chainKey: s.chainKey, hash: s.hash, ephemeral };
}

export interface ResponderState extends SymmetricState {
  remoteEphemeral: Uint8Array;
  remoteStatic: Uint8Array;
  payload: Uint8Array;
}

/**
 * Responder reads message 1 (`msg` is exactly the Noise part). `staticStaticFor` gives the
 * precomputed DH(s_r, S_i) for the decrypted initiator static key, or null for an unknown peer.
 */
export function readMessage1(
  crypto: CryptoProvider,
  start: NoiseStart,
  localStatic: X25519PrivateKey,
  msg: Uint8Array,
  staticStaticFor: (remoteStatic: Uint8Array) => Uint8Array | null,
): ResponderState | null {
  if (msg.length < message1Length(0)) return null;
  const s: SymmetricState = { chainKey: start.chainKey.slice(), hash: start.hash.slice() };
  mixHash(crypto, s, localStatic.publicKey);
  const remoteEphemeral = msg.slice(0, KEY_SIZE);
  mixHash(crypto, s, remoteEphemeral);
  mixKey(crypto, s, remoteEphemeral);
  const es = crypto.x25519(localStatic, remoteEphemeral);
  if (!es) return abandon(s);
  let k = mixKeyAndKey(crypto, s, es);
  zeroize(es);
  const remoteStatic = decryptAndHash(crypto, s, k, msg.subarray(KEY_SIZE, KEY_SIZE + KEY_SIZE + TAG_SIZE));
  zeroize(k);
  if (!remoteStatic) return abandon(s);
  const ss = staticStaticFor(remoteStatic);
  if (!ss) return abandon(s);
  k = mixKeyAndKey(crypto, s, ss);
  const payload = decryptAndHash(crypto, s, k, msg.subarray(KEY_SIZE + KEY_SIZE + TAG_SIZE));
  zeroize(k);
  if (!payload) return abandon(s);
  return { chainKey: s.chainKey, hash: s.hash, remoteEphemeral, remoteStatic, payload };
}

/**
 * Responder writes message 2 into `out[offset..]`: e ‖ AEAD(payload). Mutates `state` into the
 * final chaining key and hash. Returns false when a DH result is zero.
 */
export function writeMessage2(
  crypto: CryptoProvider,
  state: SymmetricState,
  remoteEphemeral: Uint8Array,
  remoteStatic: Uint8Array,
  presharedKey: Uint8Array,
  ephemeral: X25519PrivateKey,
  payload: Uint8Array,
  out: Uint8Array,
  offset: number,
): boolean {
  out.set(ephemeral.publicKey, offset);
  mixHash(crypto, state, ephemeral.publicKey);
  mixKey(crypto, state, ephemeral.publicKey);
  const ee = crypto.x25519(ephemeral, remoteEphemeral);
  if (!ee) return false;
  mixKey(crypto, state, ee);
  zeroize(ee);
  const se = crypto.x25519(ephemeral, remoteStatic);
  if (!se) return false;
  mixKey(crypto, state, se);
  zeroize(se);
  const k = mixPsk(crypto, state, presharedKey);
  encryptAndHash(crypto, state, k, payload, out, offset + KEY_SIZE);
  zeroize(k);
  return true;
}

/** Initiator reads message 2 (`msg` is exactly the Noise part); returns the payload or null. */
export function readMessage2(
  crypto: CryptoProvider,
  state: InitiatorState,
  localStatic: X25519PrivateKey,
  presharedKey: Uint8Array,
  msg: Uint8Array,
): { state: SymmetricState; payload: Uint8Array } | null {
  if (msg.length < message2Length(0)) return null;
  // Work on a copy: a forged response must not disturb the pending handshake.
  const s: SymmetricState = { chainKey: state.chainKey.slice(), hash: state.hash.slice() };
  const remoteEphemeral = msg.subarray(0, KEY_SIZE);
  mixHash(crypto, s, remoteEphemeral);
  mixKey(crypto, s, remoteEphemeral);
  const ee = crypto.x25519(state.ephemeral, remoteEphemeral);
  if (!ee) return abandon(s);
  mixKey(crypto, s, ee);
  zeroize(ee);
  const se = crypto.x25519(localStatic, remoteEphemeral);
  if (!se) return abandon(s);
  mixKey(crypto, s, se);
  zeroize(se);
  const k = mixPsk(crypto, s, presharedKey);
  const payload = decryptAndHash(crypto, s, k, msg.subarray(KEY_SIZE));
  zeroize(k);
  if (!payload) return abandon(s);
  return { state: s, payload };
}

/** The psk token: (C, τ, k) = KDF3(C, Q); MixHash(τ). */
function mixPsk(crypto: CryptoProvider, s: SymmetricState, presharedKey: Uint8Array): Uint8Array {
  const [ck, tau, k] = kdf(crypto, s.chainKey, presharedKey, 3);
  zeroize(s.chainKey);
  s.chainKey = ck!;
  mixHash(crypto, s, tau!);
  zeroize(tau);
  return k!;
}

/** Split: (initiator→responder key, responder→initiator key); erases the chaining key. */
export function split(crypto: CryptoProvider, s: SymmetricState): [Uint8Array, Uint8Array] {
  const [k1, k2] = kdf(crypto, s.chainKey, EMPTY, 2);
  zeroize(s.chainKey);
  return [k1!, k2!];
}
