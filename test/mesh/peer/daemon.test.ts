import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WireweaveError } from '../../../src/core/errors.ts';
import { meshEnvValue, parseMeshEnv } from '../../../src/mesh/peer/daemon.ts';

describe('the mesh options up hands the daemon', () => {
  it('round-trip through WIREWEAVE_MESH', () => {
    const v = meshEnvValue({ hubs: ['ws://h1:1/mesh', 'wss://h2/mesh'], relay: 'never', line: 7 });
    assert.deepEqual(parseMeshEnv(v), { hubs: ['ws://h1:1/mesh', 'wss://h2/mesh'], relay: 'never' });
    assert.doesNotMatch(v, /line/);
  });

  it('refuse what a config file could not have said, with a code', () => {
    for (const [text, re] of [
      ['not json', /not JSON/],
      ['{"hubs":[],"relay":"auto"}', /1 to 8 URLs/],
      ['{"hubs":["http://h"],"relay":"auto"}', /scheme http:/],
      ['{"hubs":["ws://u:p@h"],"relay":"auto"}', /user name or password/],
      ['{"hubs":["ws://h"],"relay":"sometimes"}', /relay must be/],
    ] as const) {
      assert.throws(() => parseMeshEnv(text), (e: unknown) => WireweaveError.is(e) && e.code === 'ERR_MESH_OPTIONS' && re.test(e.message), text);
    }
  });
});
