/**
 * BLAKE2s through hash-wasm (the BLAKE2 reference code built to WebAssembly) with hashers reused
 * for every call. Why: node:crypto costs ~1.4 µs a call whatever the input, almost all of it
 * finding the digest by name, and a responder's handshake makes ~50 such calls; @noble's keyed
 * BLAKE2s (the MACs; node ignores a BLAKE2s key) takes ~10 µs. The reused hashers take
 * ~0.4–0.8 µs (bench/README.md, "Handshakes"). libsodium has BLAKE2b only.
 *
 * A keyed hasher reads its key from the array it was made with at every init(), so one hasher
 * per key length serves every key: the key is written into that array first. A known answer
 * for two keys checks this at load. Each hasher's linear memory keeps its last input, state
 * and digest, and `wipe` overwrites them.
 *
 * Loading is asynchronous, started at import and not awaited there: a top-level await would
 * break `require()` of the package. Until it is ready, or when it cannot load or fails a known
 * answer, `wasmBlake2s()` is null and callers use node:crypto and @noble (same results).
 */
import { createRequire } from 'node:module';
import { blake2s as nobleBlake2s } from '@noble/hashes/blake2.js';
import type { IHasher } from 'hash-wasm';

export interface Blake2sEngine {
  /** BLAKE2s-256 of `input`, as a new array. */
  digest(input: Uint8Array): Uint8Array;
  /** Keyed BLAKE2s-128 (WireGuard's MAC) for a 16- or 32-byte key; null for other lengths. */
  mac(key: Uint8Array, input: Uint8Array): Uint8Array | null;
  /** Overwrites the unkeyed hasher's last `length` bytes of input (≥ 32 covers the digest) and state. */
  wipe(length: number): void;
}

/** BLAKE2s-256("abc"), RFC 7693 Appendix B. */
const ABC_DIGEST = '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982';
const WIPE_LEN = 2048;
const zeros = new Uint8Array(WIPE_LEN);

/** A keyed hasher and the array it reads its key from. */
interface Keyed {
  readonly key: Uint8Array;
  readonly hasher: IHasher;
}

function overwrite(hasher: IHasher, length: number): void {
  // init() zeroes the state; the zeros then overwrite the input copy (and the digest, which
  // the module writes over its first bytes) and, past a block, the compression's stack.
  hasher.init();
  for (let left = Math.max(length, 32); left > 0; left -= WIPE_LEN) {
    hasher.update(zeros.subarray(0, Math.min(left, WIPE_LEN)));
  }
}

function engine(plain: IHasher, keyed16: Keyed, keyed32: Keyed): Blake2sEngine {
  return {
    digest(input) {
      return plain.init().update(input).digest('binary');
    },
    mac(key, input) {
      const k = key.length === 32 ? keyed32 : key.length === 16 ? keyed16 : null;
      if (!k) return null;
      k.key.set(key);
      const out = k.hasher.init().update(input).digest('binary');
      k.key.fill(0); // a cookie is a secret; init() below writes this zero key over it
      overwrite(k.hasher, input.length);
      return out;
    },
    wipe(length) {
      overwrite(plain, length);
    },
  };
}

/** hash-wasm's factory; a parameter so tests can watch what is done to the hashers. */
export type CreateBlake2s = (bits: number, key?: Uint8Array) => Promise<IHasher>;

/**
 * hash-wasm's BLAKE2s file alone: its index loads every algorithm it has, ~4–7 MiB more RSS
 * in an idle daemon (measured) for code never used.
 */
function hashWasmBlake2s(): CreateBlake2s {
  const m = createRequire(import.meta.url)('hash-wasm/dist/blake2s.umd.min.js') as { createBLAKE2s: CreateBlake2s };
  return m.createBLAKE2s;
}

async function keyedHasher(create: CreateBlake2s, length: number): Promise<Keyed> {
  const key = new Uint8Array(length);
  return { key, hasher: await create(128, key) };
}

/** Both keyed hashers must follow their key array: checked against @noble for two keys each. */
function followsKey(k: Keyed): boolean {
  const data = Uint8Array.from({ length: 100 }, (_, i) => i);
  for (const fill of [0x11, 0xa7]) {
    const key = new Uint8Array(k.key.length).fill(fill);
    k.key.set(key);
    const got = k.hasher.init().update(data).digest('hex');
    const want = Buffer.from(nobleBlake2s(data, { key, dkLen: 16 })).toString('hex');
    if (got !== want) return false;
  }
  k.key.fill(0);
  return true;
}

/** Makes the hashers and checks them; null when that fails. */
export async function loadBlake2s(create?: CreateBlake2s): Promise<Blake2sEngine | null> {
  try {
    create ??= hashWasmBlake2s();
    const plain = await create(256);
    if (plain.init().update(new Uint8Array([0x61, 0x62, 0x63])).digest('hex') !== ABC_DIGEST) return null;
    const keyed16 = await keyedHasher(create, 16);
    const keyed32 = await keyedHasher(create, 32);
    if (!followsKey(keyed16) || !followsKey(keyed32)) return null;
    return engine(plain, keyed16, keyed32);
  } catch {
    return null;
  }
}

let ready: Blake2sEngine | null = null;

/** Resolves once loading has ended: true when the WebAssembly hashers are in use. */
export const wasmBlake2sLoaded: Promise<boolean> = loadBlake2s().then((e) => { ready = e; return e !== null; });

/** The hashers, or null while they load or when they could not. */
export function wasmBlake2s(): Blake2sEngine | null {
  return ready;
}
