/**
 * TAI64N timestamps for handshake initiations: 8-byte big-endian seconds + 2^62 + 10, then
 * 4-byte big-endian nanoseconds. The nanoseconds are rounded down to 2^24 ns (~16.8 ms) as
 * wireguard-go does, so the timestamp does not leak precise timing.
 */
import { writeU32BE } from './bytes.ts';

const NANOSECOND_WHITENER = 0x100_0000;

/** Encodes `wallMs` (milliseconds since the Unix epoch) into `out` (12 bytes). */
export function tai64n(wallMs: number, out: Uint8Array = new Uint8Array(12)): Uint8Array {
  const seconds = Math.floor(wallMs / 1000) + 10;
  const nanos = Math.floor((wallMs - Math.floor(wallMs / 1000) * 1000) * 1e6);
  writeU32BE(out, 0, 0x4000_0000 + Math.floor(seconds / 0x1_0000_0000));
  writeU32BE(out, 4, seconds >>> 0);
  writeU32BE(out, 8, nanos - (nanos % NANOSECOND_WHITENER));
  return out;
}
