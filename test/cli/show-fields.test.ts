/**
 * `wireweave show IF FIELD` texts as wg's show.c writes them (ugly_print, dump_print); the
 * interop test compares them with the real `wg show` on live interfaces.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { formatShowField, show, SHOW_FIELDS } from '../../src/cli/show.ts';
import { parsePrefix } from '../../src/device/allowedips.ts';
import type { DeviceState } from '../../src/device/config.ts';
import { decodeBase64 } from '../../src/core/keys.ts';

const PRIV = 'YAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const PUB = 'Y2FD6uTgrq+/bbBAXCNOtE+PGk8Papoh7qaWBpQUXn0=';
const P1 = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';
const P2 = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const PSK = 'AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=';

const state: DeviceState = {
  privateKey: decodeBase64(PRIV), listenPort: 51820, fwmark: 0xca6c,
  peers: [
    {
      publicKey: decodeBase64(P1), presharedKey: decodeBase64(PSK), endpoint: '192.95.5.67:1234',
      lastHandshakeTimeSec: 1_700_000_000, lastHandshakeTimeNsec: 5, rxBytes: 1536, txBytes: 10,
      persistentKeepalive: 25, allowedIps: [parsePrefix('10.192.122.3/32'), parsePrefix('fd00::/64')], protocolVersion: 1,
    },
    {
      publicKey: decodeBase64(P2), presharedKey: null, endpoint: null, lastHandshakeTimeSec: 0, lastHandshakeTimeNsec: 0,
      rxBytes: 0, txBytes: 0, persistentKeepalive: 0, allowedIps: [], protocolVersion: 1,
    },
  ],
};
const bare: DeviceState = { privateKey: null, listenPort: 0, fwmark: 0, peers: [] };

describe('show IF FIELD', () => {
  it('prints each field as wg does', () => {
    const want: Record<string, string> = {
      'public-key': `${PUB}\n`,
      'private-key': `${PRIV}\n`,
      'listen-port': '51820\n',
      fwmark: '0xca6c\n',
      peers: `${P1}\n${P2}\n`,
      'preshared-keys': `${P1}\t${PSK}\n${P2}\t(none)\n`,
      endpoints: `${P1}\t192.95.5.67:1234\n${P2}\t(none)\n`,
      'allowed-ips': `${P1}\t10.192.122.3/32 fd00::/64\n${P2}\t(none)\n`,
      'latest-handshakes': `${P1}\t1700000000\n${P2}\t0\n`,
      transfer: `${P1}\t1536\t10\n${P2}\t0\t0\n`,
      'persistent-keepalive': `${P1}\t25\n${P2}\toff\n`,
      dump: `${PRIV}\t${PUB}\t51820\t0xca6c\n` +
        `${P1}\t${PSK}\t192.95.5.67:1234\t10.192.122.3/32,fd00::/64\t1700000000\t1536\t10\t25\n` +
        `${P2}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n`,
    };
    assert.deepEqual(Object.keys(want).sort(), [...SHOW_FIELDS].sort());
    for (const field of SHOW_FIELDS) assert.equal(formatShowField('wg0', state, field, false), want[field], field);
  });

  it('prefixes every line with the interface under `all`, and says (none)/off for what is unset', () => {
    assert.equal(formatShowField('wg0', state, 'transfer', true), `wg0\t${P1}\t1536\t10\nwg0\t${P2}\t0\t0\n`);
    assert.equal(formatShowField('wg1', bare, 'dump', true), 'wg1\t(none)\t(none)\t0\toff\n');
    assert.equal(formatShowField('wg1', bare, 'public-key', false), '(none)\n');
    assert.equal(formatShowField('wg1', bare, 'peers', false), '');
  });

  it('--help and -h print the usage; a bad field is named', async () => {
    for (const args of [['--help'], ['-h'], ['wg0', '--help']]) {
      let out = '';
      const stdout = new Writable({ write(c: Buffer, _e, cb) { out += c.toString(); cb(); } });
      const code = await show(args, { stdout, stderr: stdout }, {}, '/nonexistent-ww-dir');
      assert.equal(code, 0);
      assert.match(out, /^Usage: wireweave show \[ INTERFACE \| all \| interfaces \] \[public-key \|/);
    }
    let err = '';
    const stderr = new Writable({ write(c: Buffer, _e, cb) { err += c.toString(); cb(); } });
    assert.equal(await show(['wg0', 'bogus'], { stdout: stderr, stderr }, {}, '/nonexistent-ww-dir'), 1);
    assert.match(err, /^wireweave: invalid parameter `bogus'; one of: public-key, /);
  });
});
