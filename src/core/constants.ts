/**
 * Protocol constants (whitepaper §6 and §5.4). Times are in milliseconds, the unit of `now`.
 * Message counters are 64-bit; limits that do not fit a double exactly are given as the
 * high/low 32-bit halves that `Counter64` compares against.
 */

export const REKEY_AFTER_TIME = 120_000;
export const REJECT_AFTER_TIME = 180_000;
export const REKEY_ATTEMPT_TIME = 90_000;
export const REKEY_TIMEOUT = 5_000;
/** Each handshake retry waits REKEY_TIMEOUT plus up to this much random jitter. */
export const REKEY_TIMEOUT_JITTER_MAX = 334;
export const KEEPALIVE_TIMEOUT = 10_000;
export const COOKIE_REFRESH_TIME = 120_000;
/** A cookie received from a responder is usable for this long (cookie secret lifetime minus a margin). */
export const COOKIE_VALID_TIME = COOKIE_REFRESH_TIME - 2_000;
/** Initiations from one peer closer together than this are ignored (flood protection). */
export const HANDSHAKE_INITIATION_RATE = 20;
/** With no new handshake for this long, all key material of a peer is erased. */
export const ZERO_KEY_MATERIAL_AFTER = 3 * REJECT_AFTER_TIME;
/**
 * The initiator starts a new handshake when it receives data on a session this old, so a
 * fresh session exists before the old one is rejected (REJECT − KEEPALIVE − REKEY_TIMEOUT).
 */
export const REKEY_ON_RECEIVE_AGE = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT;

/** REKEY_AFTER_MESSAGES = 2^60: high half 2^28, low half 0. */
export const REKEY_AFTER_MESSAGES_HI = 0x1000_0000;
/** REJECT_AFTER_MESSAGES = 2^64 − 2^13 − 1. */
export const REJECT_AFTER_MESSAGES_HI = 0xffff_ffff;
export const REJECT_AFTER_MESSAGES_LO = 0xffff_dfff;

/** Plaintext of transport messages is padded to a multiple of this. */
export const PADDING_MULTIPLE = 16;
/** Packets waiting for a handshake, per peer (wireguard-go: 1024). */
export const MAX_QUEUED_PACKETS = 1024;

/** Automatic under-load mode: engage at this many handshake messages per second … */
export const UNDER_LOAD_HANDSHAKES_PER_SECOND = 1000;
/** … and stay engaged this long after the rate last exceeded it (wireguard-go: 1 s). */
export const UNDER_LOAD_AFTER_TIME = 1_000;

export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';
