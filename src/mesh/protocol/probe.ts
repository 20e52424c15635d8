/**
 * Path probes (docs/mesh.md §3): datagrams on the WireGuard UDP socket itself, told apart from
 * WireGuard (first byte 1-4 then three zero bytes) and STUN (first two bits 0, magic cookie at
 * offset 4) by their first four bytes, "WWm" 0x01:
 *
 *   probe = "WWm" 0x01 ‖ S_sender (32) ‖ envelope (the pair's signaling envelope, §2)
 *
 * The envelope carries a Ping or Pong body (signal-body.ts), so a probe is sealed, bound to
 * both keys and replay-safe like any signal.
 */
import { ENVELOPE_OVERHEAD } from './envelope.ts';

const PROBE_MAGIC = Uint8Array.of(0x57, 0x57, 0x6d, 0x01);
const HEADER = PROBE_MAGIC.length + 32;
/** Probes are small; anything larger is not one of ours. */
export const MAX_PROBE = 512;

export function isProbe(d: Uint8Array): boolean {
  return d.length >= 4 && d[0] === 0x57 && d[1] === 0x57 && d[2] === 0x6d && d[3] === 0x01;
}

export function encodeProbe(sender: Uint8Array, envelope: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER + envelope.length);
  out.set(PROBE_MAGIC, 0);
  out.set(sender, PROBE_MAGIC.length);
  out.set(envelope, HEADER);
  return out;
}

/** The sender and envelope (views into `d`), or null when `d` is not a well-formed probe. */
export function decodeProbe(d: Uint8Array): { sender: Uint8Array; envelope: Uint8Array } | null {
  if (!isProbe(d) || d.length < HEADER + ENVELOPE_OVERHEAD || d.length > MAX_PROBE) return null;
  return { sender: d.subarray(PROBE_MAGIC.length, HEADER), envelope: d.subarray(HEADER) };
}
