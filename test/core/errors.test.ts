/** WireweaveError and ConfigError (src/core/errors.ts): stable codes, names, and `is` across copies. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, WireweaveError } from '../../src/core/errors.ts';

describe('WireweaveError', () => {
  it('carries its code, message and name, and is an Error', () => {
    const e = new WireweaveError('ERR_X', 'something failed');
    assert.equal(e.code, 'ERR_X');
    assert.equal(e.message, 'something failed');
    assert.equal(e.name, 'WireweaveError');
    assert.ok(e instanceof Error);
    assert.match(String(e), /^WireweaveError: something failed$/);
  });

  it('ConfigError is a WireweaveError with its own name', () => {
    const e = new ConfigError('ERR_KEY_LENGTH', 'private key must be 32 bytes');
    assert.equal(e.code, 'ERR_KEY_LENGTH');
    assert.equal(e.message, 'private key must be 32 bytes');
    assert.equal(e.name, 'ConfigError');
    assert.ok(e instanceof WireweaveError);
    assert.equal(WireweaveError.is(e), true);
  });

  it('is() recognises the brand, also from another copy of the module, and nothing else', () => {
    assert.equal(WireweaveError.is(new WireweaveError('E', 'm')), true);
    // What a second copy of the module (another realm, a duplicated dependency) would make.
    const foreign = Object.assign(new Error('m'), { code: 'E', [Symbol.for('wireweave.error')]: true });
    assert.equal(WireweaveError.is(foreign), true);
    for (const v of [
      new Error('m'), Object.assign(new Error('m'), { code: 'E' }), { [Symbol.for('wireweave.error')]: 1 },
      { [Symbol.for('wireweave.error')]: 'true' }, { [Symbol('wireweave.error')]: true }, null, undefined, 0, 'E', true,
    ]) {
      assert.equal(WireweaveError.is(v), false, String(v));
    }
    // A function is not an error object even if someone branded it.
    const fn = Object.assign(() => 0, { [Symbol.for('wireweave.error')]: true });
    assert.equal(WireweaveError.is(fn), false);
  });
});
