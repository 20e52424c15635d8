/**
 * Pieces of configuration text for the grammar-based generators (UAPI requests, wg-quick
 * files): valid values, values just outside what is valid, and junk. Keys come from a handful
 * of fixed ones so that lines refer to the same peers.
 */
import { encodeBase64, encodeHex } from '../src/core/keys.ts';
import type { FuzzRng } from './rng.ts';

const KEYS = [0x11, 0x22, 0x33, 0x44, 0x55].map((b) => {
  const k = new Uint8Array(32).fill(b);
  k[0] = b & 0xf8; // clamped, like a stored private key
  return k;
});

const JUNK = ['', ' ', '=', '==', '-', '+', '0', '-0', '00', '01', 'true', 'false', 'TRUE', '1e3', '0x10', 'NaN', '\t', '\r', '%', '[', ']', ':', '/', '#', ',', '\u00ff', '\u0000', '🙂', 'a'.repeat(70)];

export function junk(rng: FuzzRng): string {
  if (rng.chance(0.3)) {
    let s = '';
    const n = rng.length(40);
    for (let i = 0; i < n; i++) s += String.fromCharCode(rng.chance(0.9) ? rng.range(0x20, 0x7e) : rng.int(256));
    return s;
  }
  return rng.pick(JUNK);
}

export function keyBytes(rng: FuzzRng): Uint8Array {
  if (rng.chance(0.1)) return new Uint8Array(32);
  return rng.chance(0.8) ? rng.pick(KEYS) : rng.bytes(32);
}

export function hexKey(rng: FuzzRng): string {
  const h = encodeHex(keyBytes(rng));
  switch (rng.int(12)) {
    case 0: return h.slice(0, rng.int(64));
    case 1: return h + rng.pick(['0', '00', ' ', '\r']);
    case 2: return h.toUpperCase();
    case 3: return h.slice(0, 63) + rng.pick(['g', 'G', ' ', '-', 'x']);
    default: return h;
  }
}

export function base64Key(rng: FuzzRng): string {
  const b = encodeBase64(keyBytes(rng));
  switch (rng.int(12)) {
    case 0: return b.slice(0, rng.int(44));
    case 1: return b.slice(0, 43) + rng.pick(['A', 'B', '', '==', '!']);
    case 2: return b.replace(/=$/, '');
    case 3: return ` ${b} `;
    default: return b;
  }
}

export function uint(rng: FuzzRng, max: number): string {
  switch (rng.int(8)) {
    case 0: return String(max);
    case 1: return String(max + 1);
    case 2: return '0';
    case 3: return String(rng.int(2 ** 32) * 2 ** 21);
    case 4: return junk(rng);
    case 5: return `0${rng.int(100)}`;
    default: return String(rng.int(max + 1));
  }
}

const V4 = ['10.0.0.1', '192.0.2.7', '0.0.0.0', '255.255.255.255', '127.0.0.1', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.04'];
const V6 = ['::', '::1', 'fd00::1', 'fe80::1%eth0', '2001:db8::ff00:42:8329', '::ffff:1.2.3.4', '1::2::3', ':::', 'fe80::1%', '12345::', '::ffff:1.2.3', 'a:b:c:d:e:f:1:2', 'a:b:c:d:e:f:1:2:3', '[::1]'];

export function ip(rng: FuzzRng): string {
  if (rng.chance(0.1)) return junk(rng);
  return rng.chance(0.5) ? rng.pick(V4) : rng.pick(V6);
}

export function endpoint(rng: FuzzRng): string {
  const addr = ip(rng);
  const port = uint(rng, 65535);
  switch (rng.int(6)) {
    case 0: return `${addr}:${port}`;
    case 1: return `[${addr}]:${port}`;
    case 2: return addr;
    case 3: return `${rng.pick(['example.com', 'localhost', 'a..b', '-x', 'x'.repeat(300)])}:${port}`;
    default: return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
  }
}

export function prefix(rng: FuzzRng): string {
  const addr = ip(rng);
  const bits = rng.chance(0.7) ? String(rng.int(addr.includes(':') ? 129 : 33)) : uint(rng, 128);
  switch (rng.int(6)) {
    case 0: return addr;
    case 1: return `${addr}/`;
    default: return `${addr}/${bits}`;
  }
}
