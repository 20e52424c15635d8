import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { fcParams } from '../support/property.ts';
import { createRequire } from 'node:module';
import { blake2s } from '@noble/hashes/blake2.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { portableCrypto } from '../../src/crypto/portable.ts';
import { defaultCrypto } from '../../src/crypto/index.ts';
import { sodiumCrypto } from '../../src/crypto/sodium.ts';
import { wasmBlake2sLoaded } from '../../src/crypto/blake2s-wasm.ts';
import type { AeadVector } from '../fixtures/vectors.ts';
import type { CryptoProvider } from '../../src/core/crypto.ts';
import {
  BLAKE2S_KAT_KEY,
  BLAKE2S_KEYED_KAT,
  BLAKE2S_UNKEYED_KAT,
  RFC7748_X25519_DH,
  RFC7748_X25519_ITERATED,
  RFC7748_X25519_VECTORS,
  RFC8439_AEAD_2_8_2,
  RFC8439_AEAD_A_5,
  WIREGUARD_KDF_VECTORS,
  XCHACHA_A_3_1,
} from '../fixtures/vectors.ts';

// The vectors below then check the BLAKE2s that the Node providers use once loaded (WebAssembly);
// node:crypto's, used until then, is checked against it in blake2s-wasm.test.ts.
await wasmBlake2sLoaded;

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const cat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
/** The bytes 00 01 02 ... (n bytes), the BLAKE2 KAT input. */
const seq = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => i & 0xff);

/**
 * Low-order X25519 u-coordinates: libsodium's blocklist (crypto_scalarmult/curve25519/ref10,
 * has_small_order): 0, 1, two points of order 8, p - 1, p, p + 1.
 */
const LOW_ORDER_POINTS = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];

/**
 * WireGuard's KDF as HMAC chains: t0 = HMAC(key, input) (the extracted PRK); t1 = HMAC(t0, 0x01);
 * t2 = HMAC(t0, t1 ‖ 0x02); t3 = HMAC(t0, t2 ‖ 0x03). The three outputs of KDF3 are t1, t2, t3;
 * wireguard-go's kdf_test.go calls them t0, t1, t2 (its PRK is a local variable).
 */
function kdf(p: CryptoProvider, key: Uint8Array, input: Uint8Array): Uint8Array[] {
  const t0 = p.hmac(key, input);
  const t1 = p.hmac(t0, Uint8Array.of(0x01));
  const t2 = p.hmac(t0, cat(t1, Uint8Array.of(0x02)));
  const t3 = p.hmac(t0, cat(t2, Uint8Array.of(0x03)));
  return [t0, t1, t2, t3];
}

/** Seal into a fresh buffer; returns ciphertext ‖ tag. */
function sealNew(p: CryptoProvider, key: Uint8Array, lo: number, hi: number, pt: Uint8Array, ad: Uint8Array): Uint8Array {
  const out = new Uint8Array(pt.length + 16);
  assert.equal(p.seal(p.aeadKey(key), lo, hi, pt, ad, out, 0), pt.length + 16);
  return out;
}

/** Open into a fresh buffer; returns the plaintext or null. */
function openNew(p: CryptoProvider, key: Uint8Array, lo: number, hi: number, ct: Uint8Array, ad: Uint8Array): Uint8Array | null {
  const out = new Uint8Array(Math.max(0, ct.length - 16));
  return p.open(p.aeadKey(key), lo, hi, ct, ad, out, 0) ? out : null;
}

/**
 * RFC 8439 §2.8.2 uses a nonce whose first 4 bytes are not zero, which CryptoProvider.seal cannot
 * express; each provider's underlying primitive is checked with the full nonce instead.
 */
const rawAead: Record<string, (v: AeadVector) => { ct: Uint8Array; opened: Uint8Array }> = {
  node(v) {
    const c = createCipheriv('chacha20-poly1305', hex(v.key), hex(v.nonce), { authTagLength: 16 });
    c.setAAD(hex(v.aad), { plaintextLength: v.plaintext.length / 2 });
    const ct = cat(c.update(hex(v.plaintext)), c.final(), c.getAuthTag());
    const d = createDecipheriv('chacha20-poly1305', hex(v.key), hex(v.nonce), { authTagLength: 16 });
    d.setAAD(hex(v.aad), { plaintextLength: v.ciphertext.length / 2 });
    d.setAuthTag(hex(v.tag));
    const opened = cat(d.update(hex(v.ciphertext)), d.final());
    return { ct, opened };
  },
  portable(v) {
    const ct = chacha20poly1305(hex(v.key), hex(v.nonce), hex(v.aad)).encrypt(hex(v.plaintext));
    const opened = chacha20poly1305(hex(v.key), hex(v.nonce), hex(v.aad)).decrypt(hex(v.ciphertext + v.tag));
    return { ct, opened };
  },
  sodium(v) {
    const sodium = createRequire(import.meta.url)('sodium-native');
    const ct = new Uint8Array(v.plaintext.length / 2 + 16);
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt(ct, hex(v.plaintext), hex(v.aad), null, hex(v.nonce), hex(v.key));
    const opened = new Uint8Array(v.ciphertext.length / 2);
    sodium.crypto_aead_chacha20poly1305_ietf_decrypt(opened, null, hex(v.ciphertext + v.tag), hex(v.aad), hex(v.nonce), hex(v.key));
    return { ct, opened };
  },
};

const PROVIDERS: readonly CryptoProvider[] = [nodeCrypto, portableCrypto, ...(sodiumCrypto ? [sodiumCrypto] : [])];

describe('crypto provider exports', () => {
  it('defaultCrypto is sodium when sodium-native loads, else node', () => {
    // sodium-native is an optionalDependency; `npm ci` installs it wherever a prebuild exists,
    // so in CI its absence is a failure, not a fallback.
    if (process.env.CI) assert.notEqual(sodiumCrypto, null, 'sodium-native did not load in CI');
    assert.equal(defaultCrypto, sodiumCrypto ?? nodeCrypto);
    assert.equal(nodeCrypto.name, 'node');
    assert.equal(portableCrypto.name, 'portable');
    if (sodiumCrypto) assert.equal(sodiumCrypto.name, 'sodium');
  });
});

for (const p of PROVIDERS) {
  describe(`${p.name} provider`, () => {
    describe('BLAKE2s', () => {
      it('hash matches the unkeyed BLAKE2s-256 KAT (blake2-kat.json)', () => {
        for (const v of BLAKE2S_UNKEYED_KAT) assert.equal(toHex(p.hash([seq(v.inputLength)])), v.output, `len ${v.inputLength}`);
      });

      it('hash of several parts equals the hash of their concatenation', () => {
        const data = seq(200);
        const whole = toHex(p.hash([data]));
        assert.equal(toHex(p.hash([data.subarray(0, 63), data.subarray(63, 64), new Uint8Array(0), data.subarray(64)])), whole);
        assert.equal(toHex(p.hash([])), BLAKE2S_UNKEYED_KAT[0]!.output);
      });

      it('the keyed BLAKE2s behind mac matches the keyed BLAKE2s-256 KAT (blake2-kat.json)', () => {
        // mac() is keyed BLAKE2s with a 16-byte digest (a different parameter block, not a prefix of
        // the 32-byte KAT output), so the KAT is checked on the primitive both providers' mac use.
        const key = hex(BLAKE2S_KAT_KEY);
        assert.ok(BLAKE2S_KEYED_KAT.length >= 6);
        for (const v of BLAKE2S_KEYED_KAT) {
          assert.equal(toHex(blake2s(seq(v.inputLength), { key, dkLen: 32 })), v.output, `len ${v.inputLength}`);
        }
      });

      it('mac is keyed BLAKE2s-128: 16 bytes, differs from unkeyed, depends on the key', () => {
        const key = hex(BLAKE2S_KAT_KEY);
        const data = seq(65);
        const m = p.mac(key, data);
        assert.equal(m.length, 16);
        assert.equal(toHex(m), toHex(blake2s(data, { key, dkLen: 16 })));
        assert.notEqual(toHex(m), toHex(blake2s(data, { dkLen: 16 })));
        assert.notEqual(toHex(m), toHex(p.hash([data]).subarray(0, 16)));
        const key2 = key.slice();
        key2[31]! ^= 1;
        assert.notEqual(toHex(p.mac(key2, data)), toHex(m));
        assert.equal(p.mac(key.subarray(0, 1), data).length, 16); // 1-byte keys are allowed
      });

      it('hmac reproduces the HKDF-BLAKE2s vectors of wireguard-go device/kdf_test.go', () => {
        for (const v of WIREGUARD_KDF_VECTORS) {
          const [prk, t1, t2, t3] = kdf(p, hex(v.key), hex(v.input));
          assert.equal(prk!.length, 32);
          // kdf_test.go's t0, t1, t2 are the chain's t1, t2, t3 (see kdf above).
          assert.equal(toHex(t1!), v.t0);
          assert.equal(toHex(t2!), v.t1);
          assert.equal(toHex(t3!), v.t2);
        }
      });
    });

    describe('X25519', () => {
      it('RFC 7748 §5.2 vectors (unclamped scalars, u with the top bit set)', () => {
        for (const v of RFC7748_X25519_VECTORS) {
          const scalar = hex(v.scalar);
          const priv = p.x25519PrivateKey(scalar);
          assert.equal(toHex(scalar), v.scalar, 'private key bytes must not be modified');
          const out = p.x25519(priv, hex(v.u));
          assert.ok(out);
          assert.equal(toHex(out), v.output);
        }
      });

      it('RFC 7748 §5.2 iterated: 1 and 1,000 iterations', () => {
        let k = hex(RFC7748_X25519_ITERATED.start);
        let u = hex(RFC7748_X25519_ITERATED.start);
        for (let i = 1; i <= 1000; i++) {
          const r = p.x25519(p.x25519PrivateKey(k), u);
          assert.ok(r, `iteration ${i}`);
          u = k;
          k = r;
          if (i === 1) assert.equal(toHex(k), RFC7748_X25519_ITERATED.after1);
        }
        assert.equal(toHex(k), RFC7748_X25519_ITERATED.after1000);
      });

      it('RFC 7748 §6.1 Alice and Bob', () => {
        const v = RFC7748_X25519_DH;
        const a = p.x25519PrivateKey(hex(v.alicePrivate));
        const b = p.x25519PrivateKey(hex(v.bobPrivate));
        assert.equal(toHex(a.publicKey), v.alicePublic);
        assert.equal(toHex(b.publicKey), v.bobPublic);
        assert.equal(toHex(p.x25519(a, b.publicKey)!), v.shared);
        assert.equal(toHex(p.x25519(b, a.publicKey)!), v.shared);
      });

      it('returns null for the all-zero key and for low-order points', () => {
        const priv = p.x25519PrivateKey(hex(RFC7748_X25519_DH.alicePrivate));
        for (const lo of LOW_ORDER_POINTS) assert.equal(p.x25519(priv, hex(lo)), null, lo);
      });

      it('returns null for a public key of the wrong length', () => {
        const priv = p.x25519PrivateKey(hex(RFC7748_X25519_DH.alicePrivate));
        assert.equal(p.x25519(priv, new Uint8Array(31).fill(9)), null);
      });

      it('clamping is internal: a scalar and its clamped form give the same key', () => {
        fc.assert(
          fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (s) => {
            const clamped = s.slice();
            clamped[0]! &= 248;
            clamped[31]! &= 127;
            clamped[31]! |= 64;
            assert.equal(toHex(p.x25519PrivateKey(s).publicKey), toHex(p.x25519PrivateKey(clamped).publicKey));
          }),
          fcParams(200),
        );
      });
    });

    describe('ChaCha20-Poly1305', () => {
      it('RFC 8439 §2.8.2 on the underlying primitive (its nonce has a non-zero prefix)', () => {
        const v = RFC8439_AEAD_2_8_2;
        const { ct, opened } = rawAead[p.name]!(v);
        assert.equal(toHex(ct), v.ciphertext + v.tag);
        assert.equal(toHex(opened), v.plaintext);
      });

      it('RFC 8439 §A.5 through seal/open (counter 0x0807060504030201)', () => {
        const v = RFC8439_AEAD_A_5;
        assert.equal(toHex(cat(new Uint8Array(4), hex('0102030405060708'))), v.nonce);
        const sealed = sealNew(p, hex(v.key), v.counterLo, v.counterHi, hex(v.plaintext), hex(v.aad));
        assert.equal(toHex(sealed), v.ciphertext + v.tag);
        const opened = openNew(p, hex(v.key), v.counterLo, v.counterHi, hex(v.ciphertext + v.tag), hex(v.aad));
        assert.ok(opened);
        assert.equal(toHex(opened), v.plaintext);
      });

      it('seal and open in place, at an offset, for several lengths', () => {
        const key = randomBytes(32);
        const ad = randomBytes(13);
        for (const len of [0, 1, 15, 16, 17, 63, 64, 65, 1420]) {
          const pt = Uint8Array.from(randomBytes(len));
          const off = 7;
          const buf = new Uint8Array(off + len + 16 + 5);
          buf.set(pt, off);
          const n = p.seal(p.aeadKey(key), 0xfffffffe, 0x12345678, buf.subarray(off, off + len), ad, buf, off);
          assert.equal(n, len + 16);
          const expected = sealNew(p, key, 0xfffffffe, 0x12345678, pt, ad);
          assert.equal(toHex(buf.subarray(off, off + n)), toHex(expected), `seal in place, len ${len}`);
          assert.ok(p.open(p.aeadKey(key), 0xfffffffe, 0x12345678, buf.subarray(off, off + n), ad, buf, off));
          assert.equal(toHex(buf.subarray(off, off + len)), toHex(pt), `open in place, len ${len}`);
        }
      });

      it('open rejects tampering, a wrong counter, wrong AD and short input (false, no throw)', () => {
        const key = randomBytes(32);
        const ad = Uint8Array.of(1, 2, 3);
        const pt = Uint8Array.from(randomBytes(100));
        const ct = sealNew(p, key, 5, 0, pt, ad);
        const flip = (i: number) => {
          const c = ct.slice();
          c[i]! ^= 0x01;
          return c;
        };
        assert.equal(openNew(p, key, 5, 0, flip(0), ad), null, 'ciphertext bit');
        assert.equal(openNew(p, key, 5, 0, flip(99), ad), null, 'last ciphertext byte');
        assert.equal(openNew(p, key, 5, 0, flip(100), ad), null, 'tag bit');
        assert.equal(openNew(p, key, 5, 0, flip(115), ad), null, 'last tag byte');
        assert.equal(openNew(p, key, 6, 0, ct, ad), null, 'counter lo');
        assert.equal(openNew(p, key, 5, 1, ct, ad), null, 'counter hi');
        assert.equal(openNew(p, key, 5, 0, ct, Uint8Array.of(1, 2, 4)), null, 'ad');
        assert.equal(openNew(p, randomBytes(32), 5, 0, ct, ad), null, 'key');
        assert.equal(openNew(p, key, 5, 0, ct.subarray(0, 115), ad), null, 'truncated');
        const out = new Uint8Array(16);
        for (const len of [0, 1, 15]) assert.equal(p.open(p.aeadKey(key), 0, 0, new Uint8Array(len), ad, out, 0), false, `len ${len}`);
        assert.ok(openNew(p, key, 5, 0, ct, ad), 'the untouched message still opens');
      });

      it('a keepalive (empty plaintext) seals to exactly a tag and opens', () => {
        const key = randomBytes(32);
        const ct = sealNew(p, key, 0, 0, new Uint8Array(0), new Uint8Array(0));
        assert.equal(ct.length, 16);
        assert.equal(openNew(p, key, 0, 0, ct, new Uint8Array(0))?.length, 0);
      });
    });

    describe('XChaCha20-Poly1305', () => {
      it('draft-irtf-cfrg-xchacha §A.3.1', () => {
        const v = XCHACHA_A_3_1;
        const sealed = p.xseal(hex(v.key), hex(v.nonce), hex(v.plaintext), hex(v.aad));
        assert.equal(toHex(sealed), v.ciphertext + v.tag);
        const opened = p.xopen(hex(v.key), hex(v.nonce), hex(v.ciphertext + v.tag), hex(v.aad));
        assert.ok(opened);
        assert.equal(toHex(opened), v.plaintext);
      });

      it('xopen returns null on tampering and on short input', () => {
        const v = XCHACHA_A_3_1;
        const ct = hex(v.ciphertext + v.tag);
        ct[ct.length - 1]! ^= 0x80;
        assert.equal(p.xopen(hex(v.key), hex(v.nonce), ct, hex(v.aad)), null);
        assert.equal(p.xopen(hex(v.key), hex(v.nonce), new Uint8Array(15), hex(v.aad)), null);
        assert.equal(p.xopen(hex(v.key), hex(v.nonce), hex(v.ciphertext + v.tag), new Uint8Array(0)), null);
      });
    });
  });
}

for (const [a, b] of [[nodeCrypto, portableCrypto], ...(sodiumCrypto ? [[sodiumCrypto, nodeCrypto]] : [])] as const)
describe(`${a.name} and ${b.name} providers agree`, () => {
  const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });
  const key32 = bytes(32, 32);
  const u32 = fc.integer({ min: 0, max: 0xffffffff });

  it('seal by one opens with the other (and the ciphertexts are equal)', () => {
    fc.assert(
      fc.property(key32, u32, u32, bytes(0, 300), bytes(0, 40), (key, lo, hi, pt, ad) => {
        const ca = sealNew(a, key, lo, hi, pt, ad);
        const cb = sealNew(b, key, lo, hi, pt, ad);
        assert.equal(toHex(ca), toHex(cb));
        assert.equal(toHex(openNew(b, key, lo, hi, ca, ad)!), toHex(pt));
        assert.equal(toHex(openNew(a, key, lo, hi, cb, ad)!), toHex(pt));
      }),
      fcParams(200),
    );
  });

  it('xseal by one xopens with the other', () => {
    fc.assert(
      fc.property(key32, bytes(24, 24), bytes(0, 200), bytes(0, 40), (key, nonce, pt, ad) => {
        const ca = a.xseal(key, nonce, pt, ad);
        assert.equal(toHex(ca), toHex(b.xseal(key, nonce, pt, ad)));
        assert.equal(toHex(b.xopen(key, nonce, ca, ad)!), toHex(pt));
      }),
      fcParams(100),
    );
  });

  it('x25519: same public keys and shared secrets', () => {
    fc.assert(
      fc.property(key32, key32, (s1, s2) => {
        const a1 = a.x25519PrivateKey(s1);
        const b1 = b.x25519PrivateKey(s1);
        const a2 = a.x25519PrivateKey(s2);
        const b2 = b.x25519PrivateKey(s2);
        assert.equal(toHex(a1.publicKey), toHex(b1.publicKey));
        assert.equal(toHex(a2.publicKey), toHex(b2.publicKey));
        const k = toHex(a.x25519(a1, a2.publicKey)!);
        assert.equal(toHex(b.x25519(b1, b2.publicKey)!), k);
        assert.equal(toHex(a.x25519(a2, b1.publicKey)!), k);
        assert.equal(toHex(b.x25519(b2, a1.publicKey)!), k);
      }),
      fcParams(200),
    );
  });

  it('hash, hmac and mac agree', () => {
    fc.assert(
      fc.property(fc.array(bytes(0, 100), { maxLength: 4 }), bytes(0, 80), bytes(1, 32), (parts, data, key) => {
        assert.equal(toHex(a.hash(parts)), toHex(b.hash(parts)));
        assert.equal(toHex(a.hmac(key, data)), toHex(b.hmac(key, data)));
        assert.equal(toHex(a.mac(key, data)), toHex(b.mac(key, data)));
      }),
      fcParams(200),
    );
  });

  it('hash and hmac agree at the edges of the one-shot scratch (block-long keys, long inputs)', () => {
    // nodeCrypto hashes short inputs through a reusable buffer and falls back to streaming
    // beyond it; HMAC keys longer than a block are hashed first (RFC 2104).
    const fill = (n: number, k: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * k + 1) & 255);
    for (const keyLength of [0, 1, 63, 64, 65, 100]) {
      for (const dataLength of [0, 1, 32, 33, 1023, 1024, 1025, 1088, 1089, 3000]) {
        const key = fill(keyLength, 7), data = fill(dataLength, 3);
        assert.equal(toHex(a.hmac(key, data)), toHex(b.hmac(key, data)), `hmac key ${keyLength} data ${dataLength}`);
        assert.equal(toHex(a.hash([key, data])), toHex(b.hash([key, data])), `hash ${keyLength} + ${dataLength}`);
      }
    }
  });

  it('a key handle from one provider is refused by the other', () => {
    const key = new Uint8Array(32).fill(1);
    assert.throws(() => a.seal(b.aeadKey(key), 0, 0, new Uint8Array(0), new Uint8Array(0), new Uint8Array(16), 0), TypeError);
    assert.throws(() => b.x25519(a.x25519PrivateKey(key), a.x25519PrivateKey(key).publicKey), TypeError);
  });
});
