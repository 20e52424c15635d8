/**
 * wireweave core: the sans-I/O WireGuard protocol engine. Imports nothing from node:*; give it
 * a CryptoProvider (src/crypto) and drive it with `now`.
 */
export * from './constants.ts';
export * from './crypto.ts';
export * from './errors.ts';
export * from './messages.ts';
export * from './replay.ts';
export * from './rng.ts';
export * from './tai64n.ts';
export { noiseStart, kdf, writeMessage1, readMessage1, writeMessage2, readMessage2, split, message1Length, message2Length } from './noise.ts';
export type { NoiseStart, SymmetricState, InitiatorState, ResponderState } from './noise.ts';
export { CookieChecker, CookieGenerator } from './cookie.ts';
export { Session } from './session.ts';
export type { PeerConfig, PeerId, PeerStats, HandshakeStage } from './peer.ts';
export { Endpoint, DROP_REASONS } from './endpoint.ts';
export type { PeerInspection, EndpointEvent, EndpointIO, EndpointOptions, EndpointCounters, DropReason, RecvResult, SendResult } from './endpoint.ts';
