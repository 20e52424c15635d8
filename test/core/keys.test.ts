import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fcParams } from '../support/property.ts';
import {
  EncodingError,
  KEY_LENGTH,
  KeyFormatError,
  clampPrivateKey,
  decodeBase64,
  decodeHex,
  encodeBase64,
  encodeHex,
  generatePresharedKey,
  generatePrivateKey,
  parseKeyBase64,
  parseKeyHex,
} from '../../src/core/keys.ts';
import { seededRng } from '../../src/core/rng.ts';

const B64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const HEX_DIGITS = '0123456789abcdefABCDEF';

/**
 * Every code unit below 0x800 (so each ASCII character also appears with high bits set that a
 * careless `c & 0x7f` would drop) plus a few high ones.
 */
const CODE_UNITS = [...Array.from({ length: 0x800 }, (_, i) => i), 0x4141, 0xd800, 0xdc00, 0xfeff, 0xff21, 0xffff];

/** RFC 7748 §6.1: Alice's private key (unclamped as given) and its public key. */
const RFC7748_ALICE_PRIVATE = '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a';

function isClamped(k: Uint8Array): boolean {
  return (k[0]! & 7) === 0 && (k[31]! & 0x80) === 0 && (k[31]! & 0x40) === 0x40;
}

describe('base64', () => {
  it('encodes like Buffer (standard alphabet, padded) for all lengths', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        assert.equal(encodeBase64(bytes), Buffer.from(bytes).toString('base64'));
      }),
      fcParams(500),
    );
    assert.equal(encodeBase64(new Uint8Array(0)), '');
    assert.equal(encodeBase64(new TextEncoder().encode('foobar')), 'Zm9vYmFy');
    assert.equal(encodeBase64(new TextEncoder().encode('fooba')), 'Zm9vYmE=');
    assert.equal(encodeBase64(new TextEncoder().encode('foob')), 'Zm9vYg==');
  });

  it('round-trips and decodes like Buffer', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const text = Buffer.from(bytes).toString('base64');
        const decoded = decodeBase64(text);
        assert.ok(decoded instanceof Uint8Array);
        assert.deepEqual(decoded, new Uint8Array(bytes));
      }),
      fcParams(500),
    );
    assert.deepEqual(decodeBase64(''), new Uint8Array(0));
    // Encodes a large input (beyond one String.fromCharCode batch).
    const big = new Uint8Array(100_000).map((_, i) => (i * 7) & 0xff);
    assert.deepEqual(decodeBase64(encodeBase64(big)), big);
  });

  it('accepts exactly the standard alphabet in every position', () => {
    for (const c of CODE_UNITS) {
      const ch = String.fromCharCode(c);
      const ok = B64_ALPHABET.includes(ch);
      for (const text of [ch + 'AAA', 'AA' + ch + 'A', 'AAAA' + 'A' + ch + 'AA']) {
        let accepted = true;
        try {
          decodeBase64(text);
        } catch (err) {
          assert.ok(err instanceof EncodingError);
          accepted = false;
        }
        assert.equal(accepted, ok, `code unit ${c} in ${JSON.stringify(text)}`);
      }
    }
  });

  it('rejects bad length, misplaced padding, whitespace, URL-safe and non-canonical input', () => {
    const bad = [
      'A', 'AA', 'AAA', 'AAAAA', // length
      'A===', '====', '=AAA', 'AA=A', 'AAAA====', 'AA==AAAA', 'Zm9=Zm9v', // padding
      ' AAA', 'AAA ', 'AAAA\n', 'AA\nA', // whitespace
      '-_-_', 'AA-A', 'AAA_', // URL-safe alphabet
      'AB==', 'AAB=', 'Zm9vYh==', 'Zm9vYmF=', // unused bits set
      'AAA\u00c0', '\u0141AAA', // non-ASCII (0x141 & 0x7f would be 'A')
    ];
    for (const text of bad) {
      assert.throws(() => decodeBase64(text), (err: unknown) => {
        assert.ok(err instanceof EncodingError, JSON.stringify(text));
        assert.equal(err.code, 'ERR_ENCODING');
        return true;
      }, JSON.stringify(text));
    }
  });
});

describe('hex', () => {
  it('round-trips, encodes lowercase, accepts either case', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        const hex = encodeHex(bytes);
        assert.equal(hex, Buffer.from(bytes).toString('hex'));
        assert.deepEqual(decodeHex(hex), new Uint8Array(bytes));
        assert.deepEqual(decodeHex(hex.toUpperCase()), new Uint8Array(bytes));
      }),
      fcParams(300),
    );
    assert.deepEqual(decodeHex('00ff7FaB'), new Uint8Array([0, 255, 0x7f, 0xab]));
    assert.equal(encodeHex(new Uint8Array([0, 9, 10, 15, 16, 255])), '00090a0f10ff');
  });

  it('accepts exactly 0-9 a-f A-F in both positions', () => {
    for (const c of CODE_UNITS) {
      const ch = String.fromCharCode(c);
      const ok = HEX_DIGITS.includes(ch);
      for (const text of [ch + '0', '0' + ch]) {
        let accepted = true;
        try {
          decodeHex(text);
        } catch (err) {
          assert.ok(err instanceof EncodingError);
          accepted = false;
        }
        assert.equal(accepted, ok, `code unit ${c}`);
      }
    }
  });

  it('rejects odd length and garbage', () => {
    for (const text of ['0', 'abc', '0x00', 'gg', ' 00', '00 ', '-1']) {
      assert.throws(() => decodeHex(text), EncodingError, JSON.stringify(text));
    }
    assert.deepEqual(decodeHex(''), new Uint8Array(0));
  });
});

describe('clampPrivateKey', () => {
  it('clears the low 3 bits and the top bit, sets bit 254, in place', () => {
    const key = new Uint8Array(32).fill(0xff);
    const same = clampPrivateKey(key);
    assert.equal(same, key);
    assert.equal(key[0], 0xf8);
    assert.equal(key[31], 0x7f);
    assert.ok(key.subarray(1, 31).every((b) => b === 0xff));

    const zero = clampPrivateKey(new Uint8Array(32));
    assert.equal(zero[0], 0);
    assert.equal(zero[31], 0x40);

    const alice = clampPrivateKey(decodeHex(RFC7748_ALICE_PRIVATE));
    assert.equal(encodeHex(alice), '70076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c6a');
  });

  it('is idempotent and always yields a clamped key', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const once = clampPrivateKey(new Uint8Array(bytes));
        assert.ok(isClamped(once));
        assert.deepEqual(clampPrivateKey(new Uint8Array(once)), once);
        // Only bits 0-2 of byte 0 and bits 6-7 of byte 31 may change.
        assert.deepEqual(once.subarray(1, 31), new Uint8Array(bytes).subarray(1, 31));
      }),
    );
  });

  it('refuses a key of the wrong length', () => {
    assert.throws(() => clampPrivateKey(new Uint8Array(31)), RangeError);
  });
});

describe('key generation', () => {
  it('generatePrivateKey: 32 clamped bytes from the RNG', () => {
    const a = generatePrivateKey(seededRng(1));
    assert.equal(a.length, KEY_LENGTH);
    assert.ok(isClamped(a));
    const raw = new Uint8Array(32);
    seededRng(1).fill(raw);
    assert.deepEqual(a, clampPrivateKey(raw));
    assert.notDeepEqual(generatePrivateKey(seededRng(2)), a);
  });

  it('generatePresharedKey: 32 unmodified RNG bytes', () => {
    const raw = new Uint8Array(32);
    seededRng(7).fill(raw);
    assert.deepEqual(generatePresharedKey(seededRng(7)), raw);
    // Unclamped: over many keys some have the bits clamping would change.
    const rng = seededRng(3);
    let unclamped = 0;
    for (let i = 0; i < 64; i++) if (!isClamped(generatePresharedKey(rng))) unclamped++;
    assert.ok(unclamped > 0);
  });
});

describe('parseKeyBase64', () => {
  const key = generatePrivateKey(seededRng(42));
  const text = encodeBase64(key);

  function rejects(input: string, reason: string): void {
    assert.throws(
      () => parseKeyBase64(input),
      (err: unknown) => {
        assert.ok(err instanceof KeyFormatError, JSON.stringify(input));
        assert.equal(err.code, 'ERR_KEY_FORMAT');
        assert.equal(err.name, 'KeyFormatError');
        assert.equal(err.reason, reason, JSON.stringify(input));
        assert.ok(err.message.length > 0);
        assert.ok(!err.message.includes(input.trim().slice(0, 8)) || input.trim().length < 4, 'message echoes the input');
        return true;
      },
      JSON.stringify(input),
    );
  }

  it('accepts a 44-character canonical key', () => {
    assert.equal(text.length, 44);
    assert.deepEqual(parseKeyBase64(text), key);
    assert.deepEqual(parseKeyBase64('A'.repeat(43) + '='), new Uint8Array(32));
    assert.deepEqual(parseKeyBase64('/'.repeat(42) + '8='), new Uint8Array(32).fill(0xff));
  });

  it('rejects empty, wrong lengths and surrounding whitespace', () => {
    rejects('', 'empty');
    rejects(text.slice(0, 43), 'length');
    rejects(text + 'A', 'length');
    rejects(text + '\n', 'length');
    rejects(' ' + text, 'length');
    rejects(text.slice(0, 40) + '====', 'encoding');
    rejects(Buffer.from(new Uint8Array(33)).toString('base64'), 'encoding'); // 44 characters, no '='
    rejects(Buffer.from(new Uint8Array(31)).toString('base64'), 'encoding'); // 44 characters ending in '=='
  });

  it('rejects garbage, a missing or doubled "=", URL-safe and non-canonical text', () => {
    rejects('!'.repeat(43) + '=', 'encoding');
    rejects(text.slice(0, 43) + 'A', 'encoding');
    rejects(text.slice(0, 42) + '==', 'encoding');
    rejects('-'.repeat(43) + '=', 'encoding');
    rejects('A'.repeat(42) + 'B=', 'encoding'); // low 2 bits of the last character must be 0
    rejects('A'.repeat(42) + '\u0141=', 'encoding');
    rejects('A'.repeat(20) + '\0' + 'A'.repeat(22) + '=', 'encoding');
  });

  it('never puts the input in the message', () => {
    const secret = 'S3cr3t' + text.slice(6, 43);
    for (const input of [secret, secret + '=x', secret.replace('3', '!') + '=', secret.slice(0, 42) + 'z=']) {
      try {
        parseKeyBase64(input);
        assert.fail('accepted');
      } catch (err) {
        assert.ok(err instanceof KeyFormatError);
        assert.ok(!err.message.includes('S3cr3t'), err.message);
        assert.ok(!String(err.stack).includes('S3cr3t'));
      }
    }
  });
});

describe('parseKeyHex', () => {
  it('accepts 64 hex digits in either case', () => {
    const bytes = decodeHex(RFC7748_ALICE_PRIVATE);
    assert.deepEqual(parseKeyHex(RFC7748_ALICE_PRIVATE), bytes);
    assert.deepEqual(parseKeyHex(RFC7748_ALICE_PRIVATE.toUpperCase()), bytes);
  });

  it('rejects other lengths and non-hex characters without echoing them', () => {
    const cases: [string, string][] = [
      ['', 'empty'],
      [RFC7748_ALICE_PRIVATE.slice(0, 63), 'length'],
      [RFC7748_ALICE_PRIVATE + '0', 'length'],
      [RFC7748_ALICE_PRIVATE + '\n', 'length'],
      ['g' + RFC7748_ALICE_PRIVATE.slice(1), 'encoding'],
      ['0x' + RFC7748_ALICE_PRIVATE.slice(2), 'encoding'],
    ];
    for (const [input, reason] of cases) {
      assert.throws(
        () => parseKeyHex(input),
        (err: unknown) =>
          err instanceof KeyFormatError &&
          err.code === 'ERR_KEY_FORMAT' &&
          err.reason === reason &&
          !err.message.includes('77076d0a'),
        JSON.stringify(input),
      );
    }
  });
});
