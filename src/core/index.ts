/**
 * `wireweave/core`: the sans-I/O WireGuard protocol engine. Imports nothing from node:*, so it
 * also runs in browsers, Deno and Bun; give it a CryptoProvider (`wireweave/crypto`, or
 * `wireweave/crypto/portable` in a browser) and drive it with `now`. Noise internals and wire
 * layouts are not part of this API.
 */

/** The WireGuard endpoint: many peers, one static key; feed it `recv`/`send`/`tick`. */
export { Endpoint } from './endpoint.ts';
/** Every reason a datagram or packet can be dropped, as counted in `counters.dropped`. */
export { DROP_REASONS } from './endpoint.ts';
/** Endpoint options, I/O callbacks, events, counters and per-call results. */
export type {
  DropReason, EndpointCounters, EndpointEvent, EndpointIO, EndpointOptions, PeerInspection, RecvResult, SendResult,
  TransportReservation,
} from './endpoint.ts';
/**
 * Handshake initiations computed elsewhere (a worker thread): the job `EndpointIO.offloadInitiation`
 * receives, the pure computation, and the result for `Endpoint.completeInitiation`.
 */
export { computeInitiation } from './handshake.ts';
export type { InitiationJob, InitiationResult } from './handshake.ts';
/** A peer's configuration, its id within an Endpoint, its statistics and handshake stage. */
export type { HandshakeStage, PeerConfig, PeerId, PeerStats } from './peer.ts';
/** Per-source handshake rate limits used under load (`EndpointOptions.rateLimit`). */
export type { RateLimiterOptions } from './ratelimiter.ts';

/** The cryptographic primitives an Endpoint needs, behind one synchronous interface. */
export type { AeadKey, CryptoProvider, X25519PrivateKey } from './crypto.ts';
/** Overwrites buffers with zeros (key material you are done with). */
export { zeroize } from './crypto.ts';
/** A source of random bytes; `systemRng` is Web Crypto's getRandomValues. */
export type { Rng } from './rng.ts';
/** Random bytes from Web Crypto's getRandomValues (Node, browsers, Deno, Bun). */
export { systemRng } from './rng.ts';

/** Errors with stable `code`s, for configuration and API misuse (packets never throw). */
export { ConfigError, WireweaveError } from './errors.ts';
/** Malformed key text (`reason` says why; the message never contains the text). */
export { EncodingError, KeyFormatError } from './keys.ts';
/** Why a key's text was rejected: empty, wrong length or not canonical base64/hex. */
export type { KeyFormatReason } from './keys.ts';

/** A new clamped private key (`wg genkey`) and a new preshared key (`wg genpsk`). */
export { generatePresharedKey, generatePrivateKey } from './keys.ts';
/** The public key of a private key (`wg pubkey`). */
export { publicKey } from './public-key.ts';
/** Key and byte encodings as wireguard-tools spells them (constant-time codecs). */
export { decodeBase64, decodeHex, encodeBase64, encodeHex, parseKeyBase64, parseKeyHex } from './keys.ts';
/** Bytes in a key, and characters in its base64 and hex forms. */
export { KEY_BASE64_LENGTH, KEY_HEX_LENGTH, KEY_LENGTH } from './keys.ts';

/** The whitepaper's timers, in milliseconds (section 6.1). */
export { KEEPALIVE_TIMEOUT, REJECT_AFTER_TIME, REKEY_AFTER_TIME, REKEY_ATTEMPT_TIME, REKEY_TIMEOUT } from './constants.ts';
/** True when a datagram looks like a WireGuard message (type and length), for sharing a socket. */
export { isWireGuardMessage } from './messages.ts';
