/**
 * Hub frames (docs/mesh.md §1): one WebSocket message is one frame, a type byte then the body.
 * `decodeFrame` checks every length once and returns views into the message, or null.
 */
import { formatIp, parseIp } from '../../core/ip-address.ts';

export const FRAME = {
  serverHello: 0x01,
  clientHello: 0x02,
  welcome: 0x03,
  sendSignal: 0x10,
  recvSignal: 0x11,
  sendPacket: 0x12,
  recvPacket: 0x13,
  peerAbsent: 0x20,
  announce: 0x30,
  subscribe: 0x31,
  announcement: 0x32,
  withdrawn: 0x33,
  ping: 0x40,
  pong: 0x41,
  error: 0x7f,
} as const;

export const PROTOCOL_VERSION = 1;
export const KEY_LENGTH = 32;
export const NETWORK_ID_LENGTH = 16;
const PROOF_LENGTH = 16;
/** The largest WireGuard datagram the relay carries, as DERP's 64 KiB. */
export const MAX_PAYLOAD = 65_535;
export const MAX_FRAME = 1 + KEY_LENGTH + NETWORK_ID_LENGTH + MAX_PAYLOAD;

export const ABSENT = { notConnected: 1, notAllowed: 2, rateLimited: 3, queueFull: 4 } as const;
export type AbsentReason = (typeof ABSENT)[keyof typeof ABSENT];

/** Error frame codes, HTTP-like so they read at a glance. */
export const HUB_ERROR = {
  badHello: 0x0400,
  forbidden: 0x0403,
  helloTimeout: 0x0408,
  replaced: 0x0409,
  tooLarge: 0x0413,
  shuttingDown: 0x0503,
} as const;

export interface ObservedAddress {
  address: string;
  port: number;
}

export type Frame =
  | { type: typeof FRAME.serverHello; version: number; hubEphemeral: Uint8Array; challenge: Uint8Array; tokenRequired: boolean }
  | { type: typeof FRAME.clientHello; version: number; publicKey: Uint8Array; proof: Uint8Array; tokenProof: Uint8Array }
  | { type: typeof FRAME.welcome; hubId: Uint8Array; observed: ObservedAddress | null; maxFrame: number; rate: number; burst: number }
  | { type: typeof FRAME.sendSignal | typeof FRAME.recvSignal | typeof FRAME.sendPacket | typeof FRAME.recvPacket; key: Uint8Array; payload: Uint8Array }
  | { type: typeof FRAME.peerAbsent; key: Uint8Array; reason: number }
  | { type: typeof FRAME.announce; networkId: Uint8Array; sealed: Uint8Array }
  | { type: typeof FRAME.subscribe; networkId: Uint8Array }
  | { type: typeof FRAME.announcement; networkId: Uint8Array; key: Uint8Array; sealed: Uint8Array }
  | { type: typeof FRAME.withdrawn; networkId: Uint8Array; key: Uint8Array }
  | { type: typeof FRAME.ping | typeof FRAME.pong; data: Uint8Array }
  | { type: typeof FRAME.error; code: number; reason: string };

function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24; b[o + 1] = v >>> 16; b[o + 2] = v >>> 8; b[o + 3] = v;
}

/** Address ‖ port as family (4 or 6) ‖ 4 or 16 bytes ‖ port (2); family 0 for none. */
function encodeAddress(a: ObservedAddress | null): Uint8Array {
  if (!a) return Uint8Array.of(0);
  let bytes: Uint8Array;
  try { bytes = parseIp(a.address); } catch { return Uint8Array.of(0); }
  const out = new Uint8Array(1 + bytes.length + 2);
  out[0] = bytes.length === 4 ? 4 : 6;
  out.set(bytes, 1);
  out[out.length - 2] = a.port >>> 8;
  out[out.length - 1] = a.port & 0xff;
  return out;
}

function decodeAddress(b: Uint8Array, o: number): [ObservedAddress | null, number] | null {
  const family = b[o];
  if (family === 0) return [null, o + 1];
  const n = family === 4 ? 4 : family === 6 ? 16 : -1;
  if (n < 0 || o + 1 + n + 2 > b.length) return null;
  const ip = b.subarray(o + 1, o + 1 + n);
  return [{ address: formatIp(ip), port: u16(b, o + 1 + n) }, o + 1 + n + 2];
}

export function encodeFrame(f: Frame): Uint8Array {
  switch (f.type) {
    case FRAME.serverHello: {
      const out = new Uint8Array(1 + 1 + 32 + 32 + 1);
      out[0] = f.type; out[1] = f.version;
      out.set(f.hubEphemeral, 2); out.set(f.challenge, 34);
      out[66] = f.tokenRequired ? 1 : 0;
      return out;
    }
    case FRAME.clientHello: {
      const out = new Uint8Array(1 + 1 + 32 + PROOF_LENGTH * 2);
      out[0] = f.type; out[1] = f.version;
      out.set(f.publicKey, 2); out.set(f.proof, 34); out.set(f.tokenProof, 34 + PROOF_LENGTH);
      return out;
    }
    case FRAME.welcome: {
      const addr = encodeAddress(f.observed);
      const out = new Uint8Array(1 + 16 + addr.length + 12);
      out[0] = f.type; out.set(f.hubId, 1); out.set(addr, 17);
      putU32(out, 17 + addr.length, f.maxFrame);
      putU32(out, 21 + addr.length, f.rate);
      putU32(out, 25 + addr.length, f.burst);
      return out;
    }
    case FRAME.sendSignal: case FRAME.recvSignal: case FRAME.sendPacket: case FRAME.recvPacket:
      return keyed(f.type, f.key, f.payload);
    case FRAME.peerAbsent:
      return keyed(f.type, f.key, Uint8Array.of(f.reason));
    case FRAME.announce: {
      const out = new Uint8Array(1 + NETWORK_ID_LENGTH + f.sealed.length);
      out[0] = f.type; out.set(f.networkId, 1); out.set(f.sealed, 1 + NETWORK_ID_LENGTH);
      return out;
    }
    case FRAME.subscribe: {
      const out = new Uint8Array(1 + NETWORK_ID_LENGTH);
      out[0] = f.type; out.set(f.networkId, 1);
      return out;
    }
    case FRAME.announcement: case FRAME.withdrawn: {
      const sealed = f.type === FRAME.announcement ? f.sealed : new Uint8Array(0);
      const out = new Uint8Array(1 + NETWORK_ID_LENGTH + KEY_LENGTH + sealed.length);
      out[0] = f.type; out.set(f.networkId, 1); out.set(f.key, 1 + NETWORK_ID_LENGTH);
      out.set(sealed, 1 + NETWORK_ID_LENGTH + KEY_LENGTH);
      return out;
    }
    case FRAME.ping: case FRAME.pong: {
      const out = new Uint8Array(1 + 8);
      out[0] = f.type; out.set(f.data.subarray(0, 8), 1);
      return out;
    }
    case FRAME.error: {
      const reason = new TextEncoder().encode(f.reason.slice(0, 200));
      const out = new Uint8Array(3 + reason.length);
      out[0] = f.type; out[1] = f.code >>> 8; out[2] = f.code & 0xff; out.set(reason, 3);
      return out;
    }
  }
}

function keyed(type: number, key: Uint8Array, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + KEY_LENGTH + payload.length);
  out[0] = type; out.set(key, 1); out.set(payload, 1 + KEY_LENGTH);
  return out;
}

/** The frame in `m`, with views into it; null when its type is unknown or a length is wrong. */
export function decodeFrame(m: Uint8Array): Frame | null {
  if (m.length < 1 || m.length > MAX_FRAME) return null;
  const type = m[0]!;
  switch (type) {
    case FRAME.serverHello:
      if (m.length !== 67) return null;
      return { type, version: m[1]!, hubEphemeral: m.subarray(2, 34), challenge: m.subarray(34, 66), tokenRequired: (m[66]! & 1) === 1 };
    case FRAME.clientHello:
      if (m.length !== 2 + 32 + PROOF_LENGTH * 2) return null;
      return { type, version: m[1]!, publicKey: m.subarray(2, 34), proof: m.subarray(34, 50), tokenProof: m.subarray(50, 66) };
    case FRAME.welcome: {
      if (m.length < 18) return null;
      const addr = decodeAddress(m, 17);
      if (!addr || m.length !== addr[1] + 12) return null;
      const o = addr[1];
      return { type, hubId: m.subarray(1, 17), observed: addr[0], maxFrame: u32(m, o), rate: u32(m, o + 4), burst: u32(m, o + 8) };
    }
    case FRAME.sendSignal: case FRAME.recvSignal: case FRAME.sendPacket: case FRAME.recvPacket:
      if (m.length < 1 + KEY_LENGTH + 1 || m.length > 1 + KEY_LENGTH + MAX_PAYLOAD) return null;
      return { type, key: m.subarray(1, 33), payload: m.subarray(33) };
    case FRAME.peerAbsent:
      if (m.length !== 1 + KEY_LENGTH + 1) return null;
      return { type, key: m.subarray(1, 33), reason: m[33]! };
    case FRAME.announce:
      if (m.length <= 1 + NETWORK_ID_LENGTH) return null;
      return { type, networkId: m.subarray(1, 17), sealed: m.subarray(17) };
    case FRAME.subscribe:
      if (m.length !== 1 + NETWORK_ID_LENGTH) return null;
      return { type, networkId: m.subarray(1, 17) };
    case FRAME.announcement:
      if (m.length <= 1 + NETWORK_ID_LENGTH + KEY_LENGTH) return null;
      return { type, networkId: m.subarray(1, 17), key: m.subarray(17, 49), sealed: m.subarray(49) };
    case FRAME.withdrawn:
      if (m.length !== 1 + NETWORK_ID_LENGTH + KEY_LENGTH) return null;
      return { type, networkId: m.subarray(1, 17), key: m.subarray(17, 49) };
    case FRAME.ping: case FRAME.pong:
      if (m.length !== 9) return null;
      return { type, data: m.subarray(1) };
    case FRAME.error: {
      if (m.length < 3) return null;
      let reason: string;
      try { reason = new TextDecoder('utf-8', { fatal: true }).decode(m.subarray(3)); } catch { return null; }
      return { type, code: u16(m, 1), reason };
    }
    default:
      return null;
  }
}
