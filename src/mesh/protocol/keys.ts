/**
 * Key derivations of the mesh protocol (docs/mesh.md): every mesh key comes from the peers'
 * WireGuard static keys or the network secret, under labels that cannot meet WireGuard's own.
 */
import type { CryptoProvider, X25519PrivateKey } from '../../core/crypto.ts';
import { concatBytes, utf8 } from '../../core/bytes.ts';
import { zeroize } from '../../core/crypto.ts';

const LABEL_PREFIX = 'wireweave mesh v1 ';
const ZERO_KEY = new Uint8Array(32);

/** HKDF (RFC 5869) over HMAC-BLAKE2s with one 32-byte output block: salt `key`, IKM `input`, info `label`. */
function meshKdf(crypto: CryptoProvider, key: Uint8Array, input: Uint8Array, label: Uint8Array): Uint8Array {
  const prk = crypto.hmac(key.length === 0 ? ZERO_KEY : key, input);
  const out = crypto.hmac(prk, concatBytes(label, Uint8Array.of(1)));
  zeroize(prk);
  return out;
}

export function label(name: string): Uint8Array {
  return utf8(LABEL_PREFIX + name);
}

/** The two keys of a pair of peers' signaling channel, one per direction. */
export interface SignalKeys {
  /** Seals what this peer sends. */
  readonly send: Uint8Array;
  /** Opens what the other peer sends. */
  readonly recv: Uint8Array;
}

/**
 * Per-direction signaling keys from DH(s_self, S_peer), with the pair's WireGuard preshared key
 * mixed in when there is one. Null when the DH is all zeros (a low-order peer key).
 */
export function signalKeys(
  crypto: CryptoProvider,
  self: X25519PrivateKey,
  peerPublicKey: Uint8Array,
  presharedKey?: Uint8Array,
): SignalKeys | null {
  const shared = crypto.x25519(self, peerPublicKey);
  if (!shared) return null;
  const salt = presharedKey ?? ZERO_KEY;
  const send = meshKdf(crypto, salt, shared, concatBytes(label('signal '), self.publicKey, peerPublicKey));
  const recv = meshKdf(crypto, salt, shared, concatBytes(label('signal '), peerPublicKey, self.publicKey));
  zeroize(shared);
  return { send, recv };
}

/** The client's proof to a hub that it holds the private half of `self.publicKey`. */
export function hubProof(
  crypto: CryptoProvider,
  self: X25519PrivateKey,
  hubEphemeral: Uint8Array,
  challenge: Uint8Array,
): Uint8Array | null {
  const dh = crypto.x25519(self, hubEphemeral);
  if (!dh) return null;
  return proofFrom(crypto, dh, challenge, self.publicKey, hubEphemeral);
}

/** The hub's side of the same computation, with its ephemeral private key. */
export function expectedHubProof(
  crypto: CryptoProvider,
  hubEphemeral: X25519PrivateKey,
  clientPublicKey: Uint8Array,
  challenge: Uint8Array,
): Uint8Array | null {
  const dh = crypto.x25519(hubEphemeral, clientPublicKey);
  if (!dh) return null;
  return proofFrom(crypto, dh, challenge, clientPublicKey, hubEphemeral.publicKey);
}

function proofFrom(crypto: CryptoProvider, dh: Uint8Array, challenge: Uint8Array, client: Uint8Array, hub: Uint8Array): Uint8Array {
  const k = meshKdf(crypto, challenge, dh, label('hub proof'));
  zeroize(dh);
  const proof = crypto.mac(k, concatBytes(client, hub));
  zeroize(k);
  return proof;
}

/** What a member derives from a network's name and secret. */
export interface NetworkKeys {
  /** What the hub sees: a 16-byte name for the network. */
  readonly networkId: Uint8Array;
  /** Seals announcements; never leaves the members. */
  readonly announceKey: Uint8Array;
  /** Given to a hub to admit members (`--network-token`); cannot derive the other two. */
  readonly hubToken: Uint8Array;
}

export function networkKeys(crypto: CryptoProvider, name: string, secret: Uint8Array): NetworkKeys {
  const root = meshKdf(crypto, ZERO_KEY, secret, label(`network ${name}`));
  const networkId = meshKdf(crypto, root, new Uint8Array(0), label('network id')).subarray(0, 16);
  const announceKey = meshKdf(crypto, root, new Uint8Array(0), label('announce'));
  zeroize(root);
  const hubToken = meshKdf(crypto, ZERO_KEY, secret, label('hub token'));
  return { networkId, announceKey, hubToken };
}

/** The token proof a client adds to its hello when the hub requires a network token. */
export function tokenProof(crypto: CryptoProvider, hubToken: Uint8Array, challenge: Uint8Array, clientPublicKey: Uint8Array): Uint8Array {
  const k = meshKdf(crypto, challenge, hubToken, label('token proof'));
  const proof = crypto.mac(k, clientPublicKey);
  zeroize(k);
  return proof;
}
