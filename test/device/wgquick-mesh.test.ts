import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WgQuickConfigError, formatWgQuickConfig, parseWgQuickConfig, toSetRequest } from '../../src/device/wgquick.ts';

const KEY_A = 'YAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const KEY_B = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';

function config(mesh: string): string {
  return `[Interface]\nPrivateKey = ${KEY_A}\nAddress = 10.10.0.1/24\n\n${mesh}\n[Peer]\nPublicKey = ${KEY_B}\nAllowedIPs = 10.10.0.2/32\n`;
}

function error(text: string): WgQuickConfigError {
  try {
    parseWgQuickConfig(text, 'wg0.conf');
  } catch (e) {
    assert.ok(e instanceof WgQuickConfigError, String(e));
    return e;
  }
  assert.fail(`no error for ${JSON.stringify(text)}`);
}

describe('wg-quick [Mesh] section', () => {
  it('parses hubs in order (bare URLs get /mesh) and the relay policy', () => {
    const cfg = parseWgQuickConfig(config('[Mesh]\nHub = ws://h1.example:8443, wss://h2.example/x  # failover\nhub=ws://[fd00::1]:9\nRelay = always\n'), 'wg0.conf');
    assert.deepEqual(cfg.mesh?.hubs, ['ws://h1.example:8443/mesh', 'wss://h2.example/x', 'ws://[fd00::1]:9/mesh']);
    assert.equal(cfg.mesh?.relay, 'always');
    assert.equal(cfg.mesh?.line, 5);
    assert.equal(cfg.peers.length, 1);
    assert.equal(cfg.peers[0]!.endpoint, undefined);
  });

  it('defaults Relay to auto and leaves files without [Mesh] without mesh options', () => {
    assert.equal(parseWgQuickConfig(config('[Mesh]\nHub = ws://h:1\n'), 'f').mesh?.relay, 'auto');
    assert.equal(parseWgQuickConfig(config(''), 'f').mesh, undefined);
  });

  it('names the file and line of every mistake', () => {
    const cases: [string, number, RegExp][] = [
      ['[Mesh]\nRelay = auto\n', 5, /\[Mesh\] section has no Hub/],
      ['[Mesh]\nHub = http://h:1\n', 6, /Hub URL has the scheme http: \(expected ws:\/\/ or wss:\/\/\)/],
      ['[Mesh]\nHub = not a url\n', 6, /Hub URL is not a URL/],
      ['[Mesh]\nHub = ws://user:pw@h:1\n', 6, /user name or password/],
      ['[Mesh]\nHub = ws://h:1\nRelay = sometimes\n', 7, /Relay must be auto, always or never/],
      ['[Mesh]\nHub = ws://h:1\nRelay = auto\nRelay = never\n', 8, /Relay is set twice \(first on line 7\)/],
      ['[Mesh]\nHub = ws://h:1, ws://h:1\n', 6, /listed twice/],
      ['[Mesh]\nHub = ws://h:1\nPeers = x\n', 7, /unknown key `Peers' in \[Mesh\]/],
      ['[Mesh]\nHub =\n', 6, /Hub has no value/],
      ['[Mesh]\nHub = ws://h:1\n[Mesh]\nHub = ws://h:2\n', 7, /second \[Mesh\] section \(the first is on line 5\)/],
    ];
    for (const [mesh, line, re] of cases) {
      const e = error(config(mesh));
      assert.equal(e.line, line, mesh);
      assert.match(e.message, /^wg0\.conf:\d+: /);
      assert.match(e.problem, re, mesh);
    }
    assert.match(error(config('[Mesh]\nHub = ' + Array.from({ length: 9 }, (_, i) => `ws://h${i}:1`).join(',') + '\n')).problem, /more than 8 Hub URLs/);
  });

  it('keeps the mesh out of the wg part: peers without Endpoint have none in the set request', async () => {
    const cfg = parseWgQuickConfig(config('[Mesh]\nHub = ws://h:1\n'), 'wg0.conf');
    const req = await toSetRequest(cfg);
    assert.equal(req.peers[0]!.endpoint, undefined);
  });

  it('writes [Mesh] back so that it reads back equal', () => {
    const cfg = parseWgQuickConfig(config('[Mesh]\nHub = ws://h1:1, ws://h2:2\nRelay = never\n'), 'wg0.conf');
    const again = parseWgQuickConfig(formatWgQuickConfig(cfg), 'wg0.conf');
    assert.deepEqual(again.mesh?.hubs, cfg.mesh?.hubs);
    assert.equal(again.mesh?.relay, 'never');
  });
});
