/**
 * [Mesh] Network/NetworkSecret/Name/Prefix4/Prefix6: parsed, refused in one line that never
 * shows the secret, carried to the daemon through WIREWEAVE_MESH, and — without Address —
 * turned into addresses derived from the public key.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WgQuickConfigError, formatWgQuickConfig, parseWgQuickConfig } from '../../../src/device/wgquick.ts';
import { formatIp } from '../../../src/core/ip-address.ts';
import { decodeBase64 } from '../../../src/core/keys.ts';
import { nodeCrypto as crypto } from '../../../src/crypto/node.ts';
import { WireweaveError } from '../../../src/core/errors.ts';
import { meshDiscovery, meshEnvValue, parseMeshEnv } from '../../../src/mesh/peer/daemon.ts';
import { meshAddresses } from '../../../src/mesh/peer/discovery-config.ts';
import { networkKeys } from '../../../src/mesh/protocol/keys.ts';
import { derivedAddresses, defaultPrefix6 } from '../../../src/mesh/protocol/discovery.ts';
import { parsePrefix } from '../../../src/device/allowedips.ts';

const KEY = 'YAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const SECRET = 'zq8Jd1fOa0pU7m3kXy+Wb2/Tn5cRvL4eHs6gAiQ9oNw=';
const conf = (mesh: string, address = '') => `[Interface]\nPrivateKey = ${KEY}\n${address}\n[Mesh]\nHub = ws://h:1\n${mesh}`;

function problem(text: string): string {
  try {
    parseWgQuickConfig(text, 'wg0.conf');
  } catch (e) {
    assert.ok(e instanceof WgQuickConfigError, String(e));
    assert.doesNotMatch(e.message, /\n/);
    return e.message;
  }
  assert.fail('no error');
}

describe('[Mesh] discovery keys', () => {
  it('parses Network, NetworkSecret, Name and the prefixes, and writes them back', () => {
    const cfg = parseWgQuickConfig(conf(`Network = lab\nNetworkSecret = ${SECRET}\nName = Bob\nPrefix4 = 10.77.1.2/16\nPrefix6 = fd99:1::/64\n`), 'wg0.conf');
    assert.deepEqual({ ...cfg.mesh, line: 0 }, { hubs: ['ws://h:1/mesh'], relay: 'auto', network: 'lab', networkSecret: SECRET, name: 'Bob', prefix4: '10.77.0.0/16', prefix6: 'fd99:1::/64', line: 0 });
    assert.deepEqual(parseWgQuickConfig(formatWgQuickConfig(cfg), 'wg0.conf').mesh, cfg.mesh);
  });

  it('refuses bad values in one line, never echoing the secret', () => {
    const cases: [string, RegExp][] = [
      ['Network = lab\n', /has Network but no NetworkSecret/],
      [`NetworkSecret = ${SECRET}\n`, /has NetworkSecret but no Network/],
      ['Network = lab\nNetworkSecret = short-s3cret\n', /NetworkSecret is too short \(12 bytes; at least 16/],
      [`Network = a b\nNetworkSecret = ${SECRET}\n`, /Network must be a name/],
      [`Network = lab\nNetworkSecret = ${SECRET}\nName = bob.example\n`, /Name must be a DNS label/],
      [`Network = lab\nNetworkSecret = ${SECRET}\nPrefix4 = fd00::/64\n`, /Prefix4 must be an IPv4 prefix/],
      [`Network = lab\nNetworkSecret = ${SECRET}\nPrefix4 = 10.0.0.0/28\n`, /Prefix4 must be a \/8 to \/24/],
      [`Network = lab\nNetworkSecret = ${SECRET}\nPrefix6 = fd00::/120\n`, /Prefix6 must be a \/48 to \/112/],
      ['Name = bob\n', /need Network and NetworkSecret/],
      [`Network = lab\nNetworkSecret = ${SECRET}\nNetworkSecret = ${SECRET}\n`, /NetworkSecret is set twice/],
    ];
    for (const [mesh, re] of cases) {
      const m = problem(conf(mesh));
      assert.match(m, re, mesh);
      assert.ok(!m.includes(SECRET) && !m.includes('short-s3cret'), `no secret in: ${m}`);
    }
  });

  it('derives addresses from the key when there is no Address, and keeps an Address', () => {
    const cfg = parseWgQuickConfig(conf(`Network = lab\nNetworkSecret = ${SECRET}\n`), 'wg0.conf');
    const pub = crypto.x25519PrivateKey(decodeBase64(KEY)).publicKey;
    const id = networkKeys(crypto, 'lab', new TextEncoder().encode(SECRET)).networkId;
    const want = derivedAddresses(crypto, pub, parsePrefix('100.96.0.0/16'), defaultPrefix6(id));
    assert.deepEqual(meshAddresses(crypto, cfg), want);
    assert.equal(want[0]!.bits, 16);
    assert.equal(want[1]!.bits, 64);
    const own = parseWgQuickConfig(conf(`Network = lab\nNetworkSecret = ${SECRET}\n`, 'Address = 100.96.7.7/16'), 'wg0.conf');
    assert.equal(formatIp(meshAddresses(crypto, own)[0]!.bytes), '100.96.7.7');
  });

  it('carries discovery to the daemon through WIREWEAVE_MESH, and refuses a bad one without the secret', () => {
    const cfg = parseWgQuickConfig(conf(`Network = lab\nNetworkSecret = ${SECRET}\nName = bob\n`), 'wg0.conf');
    const v = meshEnvValue(cfg.mesh!, meshAddresses(crypto, cfg));
    const o = parseMeshEnv(v);
    assert.equal(o.discovery?.network, 'lab');
    assert.equal(o.discovery?.addresses.length, 2);
    const d = meshDiscovery(o.discovery!, 'ignored-host');
    assert.equal(d.name, 'bob');
    assert.deepEqual(d.networkId, networkKeys(crypto, 'lab', new TextEncoder().encode(SECRET)).networkId);
    assert.equal(meshDiscovery({ ...o.discovery!, name: '' }, 'Build_Host.local').name, 'build-host');
    const bad = JSON.parse(v) as { discovery: Record<string, unknown> };
    for (const [field, value, re] of [
      ['secret', 'short', /secret must be 16 to 1024 bytes/],
      ['prefix4', '10.0.0.0/30', /Prefix4 must be a/],
      ['addresses', ['nonsense'], /addresses must be/],
    ] as const) {
      const text = JSON.stringify({ ...bad, discovery: { ...bad.discovery, [field]: value } });
      assert.throws(() => parseMeshEnv(text), (e: unknown) => WireweaveError.is(e) && e.code === 'ERR_MESH_OPTIONS' && re.test(e.message) && !e.message.includes(SECRET), field);
    }
  });
});
