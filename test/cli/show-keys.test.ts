/**
 * `wireweave show` and WG_HIDE_KEYS, as wg(8) has it: private and preshared keys are
 * "(hidden)" unless WG_HIDE_KEYS=never; also end to end over a UAPI socket.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { formatShow, hideKeysFrom, show } from '../../src/cli/show.ts';
import { decodeBase64, encodeBase64 } from '../../src/core/keys.ts';
import type { DeviceState, UapiTarget } from '../../src/device/config.ts';
import { startUapiServer } from '../../src/device/uapi-server.ts';

const priv = decodeBase64('YAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=');
const psk = new Uint8Array(32).fill(7);
const state: DeviceState = {
  privateKey: priv, listenPort: 51820, fwmark: 0,
  peers: [{
    publicKey: decodeBase64('HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw='), presharedKey: psk, endpoint: null,
    lastHandshakeTimeSec: 0, lastHandshakeTimeNsec: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: 0, allowedIps: [], protocolVersion: 1,
  }],
};

describe('WG_HIDE_KEYS', () => {
  it('hides private and preshared keys unless it is exactly "never"', () => {
    for (const value of [undefined, 'always', '', 'Never', 'no', '0']) assert.equal(hideKeysFrom({ WG_HIDE_KEYS: value }), true, String(value));
    assert.equal(hideKeysFrom({ WG_HIDE_KEYS: 'never' }), false);
    const hidden = formatShow('wg0', state, 0);
    assert.match(hidden, /^ {2}private key: \(hidden\)$/m);
    assert.match(hidden, /^ {2}preshared key: \(hidden\)$/m);
    for (const k of [encodeBase64(priv), encodeBase64(psk)]) assert.ok(!hidden.includes(k), 'no secret key when hidden');
    const shown = formatShow('wg0', state, 0, false);
    assert.match(shown, /^ {2}private key: YAnz5TF\+lXXJte14tji3zlMNq\+hd2rYUIgJBgB3fBmk=$/m);
    assert.match(shown, new RegExp(`^ {2}preshared key: ${encodeBase64(psk).replace(/[+/]/g, '\\$&')}$`, 'm'));
  });

  it('applies to `wireweave show` on a live socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wireweave-show-'));
    const target: UapiTarget = { getState: () => state, applySet: async () => {} };
    const server = await startUapiServer('wwshow0', target, { dir });
    after(async () => { await server.close(); rmSync(dir, { recursive: true, force: true }); });
    const run = async (env: NodeJS.ProcessEnv) => {
      const out = new PassThrough();
      let text = '';
      out.on('data', (d: Buffer) => { text += d.toString(); });
      const code = await show(['wwshow0'], { stdout: out, stderr: new PassThrough() }, env, dir);
      assert.equal(code, 0);
      return text;
    };
    assert.ok((await run({ WG_HIDE_KEYS: 'never' })).includes(`private key: ${encodeBase64(priv)}`), 'never shows the key');
    const hidden = await run({});
    assert.ok(hidden.includes('private key: (hidden)') && !hidden.includes(encodeBase64(priv)), 'unset hides it');
  });
});
