import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatAgo, formatBytes, formatShow } from '../../src/cli/show.ts';
import { parsePrefix } from '../../src/device/allowedips.ts';
import { formatGetResponse, formatSetRequest, parseGetResponse, parseSetRequest } from '../../src/device/uapi.ts';
import type { DeviceState } from '../../src/device/config.ts';
import { decodeBase64 } from '../../src/core/keys.ts';

const priv = decodeBase64('YAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=');
const pub = decodeBase64('HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=');

const state: DeviceState = {
  privateKey: priv, listenPort: 51820, fwmark: 0x1234,
  peers: [{
    publicKey: pub, presharedKey: new Uint8Array(32).fill(1), endpoint: '192.95.5.67:1234',
    lastHandshakeTimeSec: 1_700_000_000, lastHandshakeTimeNsec: 5, rxBytes: 1536, txBytes: 10,
    persistentKeepalive: 25, allowedIps: [parsePrefix('10.192.122.3/32'), parsePrefix('10.192.124.0/24')], protocolVersion: 1,
  }],
};

describe('wg show formatting', () => {
  it('prints interface and peers as wg show does, keys other than public ones hidden', () => {
    const text = formatShow('wg0', state, 1_700_000_065);
    assert.equal(text, [
      'interface: wg0',
      '  public key: Y2FD6uTgrq+/bbBAXCNOtE+PGk8Papoh7qaWBpQUXn0=', // = wg pubkey of the private key
      '  private key: (hidden)',
      '  listening port: 51820',
      '  fwmark: 0x1234',
      '',
      'peer: HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=',
      '  preshared key: (hidden)',
      '  endpoint: 192.95.5.67:1234',
      '  allowed ips: 10.192.122.3/32, 10.192.124.0/24',
      '  latest handshake: 1 minute, 5 seconds ago',
      '  transfer: 1.50 KiB received, 10 B sent',
      '  persistent keepalive: every 25 seconds',
      '',
    ].join('\n'));
  });

  it('formats ages and byte counts like wg', () => {
    assert.equal(formatAgo(0), 'Now');
    assert.equal(formatAgo(1), '1 second ago');
    assert.equal(formatAgo(3661), '1 hour, 1 minute, 1 second ago');
    assert.equal(formatAgo(2 * 86400), '2 days ago');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(5 * 1024 * 1024 * 1024), '5.00 GiB');
  });
});

describe('UAPI client side', () => {
  it('reads a get answer back into the same state', () => {
    const back = parseGetResponse(formatGetResponse(state));
    assert.deepEqual(back, state);
  });

  it('writes set requests that the server side parses into the same request', () => {
    const request = parseSetRequest([
      'private_key=' + '60'.repeat(32), 'listen_port=1', 'fwmark=2', 'replace_peers=true',
      'public_key=' + '1c'.repeat(32), 'preshared_key=' + '01'.repeat(32), 'endpoint=[fd00::1]:9',
      'persistent_keepalive_interval=5', 'replace_allowed_ips=true', 'allowed_ip=10.0.0.0/8', 'allowed_ip=-fd00::/64',
      'public_key=' + '2c'.repeat(32), 'remove=true',
    ]);
    const again = parseSetRequest(formatSetRequest(request).trimEnd().split('\n'));
    assert.deepEqual(again, request);
  });
});
