import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { createBLAKE2s } from 'hash-wasm';
import type { IHasher } from 'hash-wasm';
import { loadBlake2s, wasmBlake2s, wasmBlake2sLoaded } from '../../src/crypto/blake2s-wasm.ts';
import type { CreateBlake2s } from '../../src/crypto/blake2s-wasm.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { BLAKE2S_UNKEYED_KAT } from '../fixtures/vectors.ts';

const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const seq = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => i & 0xff);
const bytes = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

/** What was done to one hasher, in order: 'init' or the bytes given to update. */
type Op = 'init' | Uint8Array;

/** hash-wasm's factory, with every hasher's init/update calls recorded and its key array kept. */
function watched(): { create: CreateBlake2s; made: { bits: number; key: Uint8Array | undefined; ops: Op[] }[] } {
  const made: { bits: number; key: Uint8Array | undefined; ops: Op[] }[] = [];
  const create: CreateBlake2s = async (bits, key) => {
    const h = await createBLAKE2s(bits, key);
    const rec = { bits, key, ops: [] as Op[] };
    made.push(rec);
    const spy: IHasher = {
      ...h,
      init: () => { rec.ops.push('init'); h.init(); return spy; },
      update: (d) => { rec.ops.push(Uint8Array.from(d as Uint8Array)); h.update(d); return spy; },
      digest: ((t: 'binary' | 'hex') => h.digest(t as 'binary')) as IHasher['digest'],
    };
    return spy;
  };
  return { create, made };
}

/** The hasher's last operations were init() then zeros covering at least `length` bytes. */
function assertOverwritten(ops: Op[], length: number): void {
  const at = ops.lastIndexOf('init');
  assert.ok(at >= 0, 'init() after the digest');
  const after = ops.slice(at + 1) as Uint8Array[];
  const total = after.reduce((n, d) => n + d.length, 0);
  assert.ok(total >= Math.max(length, 32), `zeros over ${total} < ${length} bytes`);
  for (const d of after) assert.ok(d.every((b) => b === 0), 'only zeros are written after init()');
}

describe('blake2s-wasm', () => {
  it('loads here and is what nodeCrypto uses', async () => {
    assert.equal(await wasmBlake2sLoaded, true);
    assert.ok(wasmBlake2s());
  });

  it('digest reproduces the BLAKE2s-256 KAT and node:crypto for 0..1100 bytes', async () => {
    await wasmBlake2sLoaded;
    const e = wasmBlake2s()!;
    for (const v of BLAKE2S_UNKEYED_KAT) assert.equal(toHex(e.digest(seq(v.inputLength))), v.output);
    for (let n = 0; n <= 1100; n += 7) {
      const d = bytes(n);
      assert.equal(toHex(e.digest(d)), createHash('blake2s256').update(d).digest('hex'), `len ${n}`);
      assert.equal(toHex(nodeCrypto.hash([d.subarray(0, n >> 1), d.subarray(n >> 1)])), toHex(e.digest(d)));
    }
  });

  it('mac is keyed BLAKE2s-128 for 16- and 32-byte keys, null for other lengths', async () => {
    await wasmBlake2sLoaded;
    const e = wasmBlake2s()!;
    for (const keyLen of [16, 32]) {
      for (let n = 0; n <= 300; n += 13) {
        const key = bytes(keyLen);
        const d = bytes(n);
        assert.equal(toHex(e.mac(key, d)!), toHex(blake2s(d, { key, dkLen: 16 })), `key ${keyLen} len ${n}`);
      }
    }
    for (const keyLen of [1, 15, 17, 31]) assert.equal(e.mac(bytes(keyLen), bytes(40)), null);
    // nodeCrypto.mac answers for every key length (the others through @noble).
    for (let keyLen = 1; keyLen <= 32; keyLen++) {
      const key = bytes(keyLen);
      const d = bytes(116);
      assert.equal(toHex(nodeCrypto.mac(key, d)), toHex(blake2s(d, { key, dkLen: 16 })), `key ${keyLen}`);
    }
  });

  it('one keyed hasher serves keys used one after another (a cookie, then a mac1 key, then the cookie)', async () => {
    await wasmBlake2sLoaded;
    const e = wasmBlake2s()!;
    const k1 = bytes(32);
    const k2 = bytes(32);
    const d = bytes(116);
    const first = toHex(e.mac(k1, d)!);
    assert.notEqual(toHex(e.mac(k2, d)!), first);
    assert.equal(toHex(e.mac(k1, d)!), first);
  });

  it('overwrites input, digest, state and the key after each call', async () => {
    const w = watched();
    const e = (await loadBlake2s(w.create))!;
    assert.ok(e);
    const [plain, keyed16, keyed32] = w.made;
    assert.deepEqual([plain!.bits, keyed16!.key!.length, keyed32!.key!.length], [256, 16, 32]);

    e.digest(bytes(100));
    e.wipe(100);
    assertOverwritten(plain!.ops, 100);
    // An HMAC hashes 64 + data bytes before the outer hash: every byte is covered.
    const hmacLen = 64 + 900;
    e.digest(bytes(hmacLen));
    e.wipe(hmacLen);
    assertOverwritten(plain!.ops, hmacLen);

    const cookie = bytes(16);
    e.mac(cookie, bytes(60));
    assert.ok(keyed16!.key!.every((b) => b === 0), 'the cookie is not left in the key array');
    assertOverwritten(keyed16!.ops, 60);
    e.mac(bytes(32), bytes(116));
    assert.ok(keyed32!.key!.every((b) => b === 0));
    assertOverwritten(keyed32!.ops, 116);
  });

  it('refuses hashers that fail a known answer or do not follow their key array', async () => {
    // A factory that copies the key (as a later hash-wasm might): every key would be the first.
    const copying: CreateBlake2s = (bits, key) => createBLAKE2s(bits, key ? key.slice() : undefined);
    assert.equal(await loadBlake2s(copying), null);
    const wrong: CreateBlake2s = async (bits, key) => createBLAKE2s(bits === 256 ? 248 : bits, key);
    assert.equal(await loadBlake2s(wrong), null);
    const failing: CreateBlake2s = () => Promise.reject(new Error('no WebAssembly'));
    assert.equal(await loadBlake2s(failing), null);
  });
});
