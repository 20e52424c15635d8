/**
 * Key and encoding errors (src/core/keys.ts) name the problem, so a user who pasted a wrong key
 * learns what is wrong with it — without the message ever containing the text itself.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  clampPrivateKey, decodeBase64, decodeHex, encodeBase64, EncodingError, KeyFormatError, parseKeyBase64, parseKeyHex,
} from '../../src/core/keys.ts';

function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  assert.fail('did not throw');
}

const KEY = encodeBase64(new Uint8Array(32).fill(0x5a));

describe('EncodingError', () => {
  it('says which rule base64 text broke', () => {
    const len = thrown(() => decodeBase64('abc'));
    assert.ok(len instanceof EncodingError, 'an EncodingError, not a RangeError from a bad length');
    assert.equal(len.name, 'EncodingError');
    assert.equal((len as EncodingError).code, 'ERR_ENCODING');
    assert.match(len.message, /^invalid base64: length is not a multiple of 4$/);
    assert.match(thrown(() => decodeBase64('ab!d')).message, /^invalid base64: characters outside the standard alphabet/);
  });

  it('says which rule hex text broke', () => {
    assert.match(thrown(() => decodeHex('abc')).message, /^invalid hex: odd number of digits$/);
    assert.match(thrown(() => decodeHex('zz')).message, /^invalid hex: characters other than 0-9, a-f, A-F$/);
    assert.ok(thrown(() => decodeHex('zz')) instanceof EncodingError);
  });

  it('a private key of the wrong length is a RangeError naming both lengths', () => {
    assert.match(thrown(() => clampPrivateKey(new Uint8Array(31))).message, /^a private key is 32 bytes, not 31$/);
  });
});

describe('KeyFormatError messages', () => {
  it('base64 keys: empty, length, missing or doubled "=", alphabet, canonical bits', () => {
    const cases: [string, RegExp][] = [
      ['', /^key is empty: expected 44 base64 characters$/],
      [KEY.slice(0, 43), /^key is not the correct length: expected 44 base64 characters, got 43$/],
      [KEY.slice(0, 43) + 'A', /expected 43 base64 characters followed by one '='$/],
      [KEY.slice(0, 42) + '==', /expected 43 base64 characters followed by one '='$/],
      ['!' + KEY.slice(1), /it has characters outside the standard base64 alphabet$/],
      [KEY.slice(0, 20) + '\u0141' + KEY.slice(21), /it has characters outside the standard base64 alphabet$/],
      [KEY.slice(0, 42) + 'B=', /the character before '=' has unused low bits set$/],
    ];
    for (const [input, message] of cases) {
      const e = thrown(() => parseKeyBase64(input));
      assert.ok(e instanceof KeyFormatError, JSON.stringify(input));
      assert.match(e.message, message, JSON.stringify(input));
    }
  });

  it('hex keys: empty, length, digits', () => {
    const hex = '5a'.repeat(32);
    const cases: [string, RegExp][] = [
      ['', /^key is empty: expected 64 hex digits$/],
      [hex.slice(0, 63), /^key is not the correct length: expected 64 hex digits, got 63$/],
      ['g' + hex.slice(1), /^key is not valid hex: expected only the digits 0-9, a-f, A-F$/],
    ];
    for (const [input, message] of cases) assert.match(thrown(() => parseKeyHex(input)).message, message, JSON.stringify(input));
  });
});
