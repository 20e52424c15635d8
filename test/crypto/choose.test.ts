import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chooseCrypto } from '../../src/crypto/choose.ts';
import { defaultCrypto } from '../../src/crypto/index.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { sodiumCrypto } from '../../src/crypto/sodium.ts';

describe('chooseCrypto (the edge reads WIREWEAVE_CRYPTO, not the providers)', () => {
  it('WIREWEAVE_CRYPTO=node gives node:crypto', () => {
    assert.equal(chooseCrypto({ WIREWEAVE_CRYPTO: 'node' }), nodeCrypto);
  });

  it('otherwise the default: libsodium when it loads, else node:crypto', () => {
    assert.equal(chooseCrypto({}), defaultCrypto);
    assert.equal(chooseCrypto({ WIREWEAVE_CRYPTO: 'sodium' }), sodiumCrypto ?? nodeCrypto);
  });

  it('the sodium provider loads whatever the process environment says', () => {
    // It used to read WIREWEAVE_CRYPTO itself; now only the edge does.
    const module = new URL('../../src/crypto/sodium.ts', import.meta.url).href;
    const child = spawnSync(process.execPath, [
      '--import', 'tsx', '--input-type=module', '-e', `const { sodiumCrypto } = await import(${JSON.stringify(module)}); console.log(sodiumCrypto ? 'sodium' : 'none');`,
    ], { env: { ...process.env, WIREWEAVE_CRYPTO: 'node' }, encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout.trim(), sodiumCrypto ? 'sodium' : 'none');
  });
});
