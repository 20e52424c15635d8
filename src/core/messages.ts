/**
 * WireGuard wire messages as views over Uint8Array (whitepaper §5.4). Integers are little-endian.
 * `messageType` is the one length check: after it returns a type, every offset of that message
 * is inside the buffer.
 */

export const MESSAGE_INITIATION = 1;
export const MESSAGE_RESPONSE = 2;
export const MESSAGE_COOKIE_REPLY = 3;
export const MESSAGE_TRANSPORT = 4;

export const KEY_SIZE = 32;
export const TAG_SIZE = 16;
export const MAC_SIZE = 16;
export const TIMESTAMP_SIZE = 12;
export const COOKIE_NONCE_SIZE = 24;

/** Handshake initiation: type ‖ sender ‖ ephemeral ‖ static(32+16) ‖ timestamp(12+16) ‖ mac1 ‖ mac2 */
export const Initiation = {
  size: 148,
  sender: 4,
  ephemeral: 8,
  /** Noise payload (ephemeral ‖ encrypted static ‖ encrypted timestamp) spans these bytes. */
  noiseStart: 8,
  noiseEnd: 116,
  encryptedStatic: 40,
  encryptedTimestamp: 88,
  mac1: 116,
  mac2: 132,
} as const;

/** Handshake response: type ‖ sender ‖ receiver ‖ ephemeral ‖ empty(0+16) ‖ mac1 ‖ mac2 */
export const Response = {
  size: 92,
  sender: 4,
  receiver: 8,
  ephemeral: 12,
  noiseStart: 12,
  noiseEnd: 60,
  encryptedNothing: 44,
  mac1: 60,
  mac2: 76,
} as const;

/** Cookie reply: type ‖ receiver ‖ nonce(24) ‖ encrypted cookie(16+16) */
export const CookieReply = {
  size: 64,
  receiver: 4,
  nonce: 8,
  encryptedCookie: 32,
} as const;

/** Transport data: type ‖ receiver ‖ counter(8) ‖ encrypted padded packet ‖ tag */
export const Transport = {
  headerSize: 16,
  receiver: 4,
  counter: 8,
  /** A keepalive: header plus the tag of an empty plaintext. */
  minSize: 32,
} as const;

/**
 * The message type of `b` if it is a well-formed WireGuard message of that type (type byte,
 * zero reserved bytes, exact or minimum length), else 0.
 */
export function messageType(b: Uint8Array): number {
  if (b.length < 4 || b[1] !== 0 || b[2] !== 0 || b[3] !== 0) return 0;
  switch (b[0]) {
    case MESSAGE_INITIATION: return b.length === Initiation.size ? MESSAGE_INITIATION : 0;
    case MESSAGE_RESPONSE: return b.length === Response.size ? MESSAGE_RESPONSE : 0;
    case MESSAGE_COOKIE_REPLY: return b.length === CookieReply.size ? MESSAGE_COOKIE_REPLY : 0;
    case MESSAGE_TRANSPORT: return b.length >= Transport.minSize ? MESSAGE_TRANSPORT : 0;
    default: return 0;
  }
}

/** Whether a datagram looks like WireGuard at all (for sharing a UDP port with other protocols). */
export function isWireGuardMessage(b: Uint8Array): boolean {
  return messageType(b) !== 0;
}

/** Writes the 4-byte type field (type ‖ 3 reserved zero bytes). */
export function writeType(b: Uint8Array, type: number): void {
  b[0] = type;
  b[1] = 0;
  b[2] = 0;
  b[3] = 0;
}

/** Plaintext length after padding to a multiple of 16, never beyond `mtu` (0 = no cap). */
export function paddedLength(length: number, mtu: number): number {
  const padded = (length + 15) & ~15;
  if (mtu > 0 && padded > mtu) return Math.max(length, mtu);
  return padded;
}
