/**
 * encodeGetResponse: the bytes of a get=1 answer, checked against the string form
 * (formatGetResponse) over generated states, and its writer's wiping; a device's streamed
 * state (what the UAPI encodes) against its whole one.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fcParams } from '../support/property.ts';
import type { DeviceState, PeerState, Prefix } from '../../src/device/config.ts';
import { formatGetResponse } from '../../src/device/uapi.ts';
import { ByteWriter, encodeGetResponse } from '../../src/device/uapi-get.ts';
import { Device } from '../../src/device/device.ts';
import { MemoryTun } from '../../src/device/tun-memory.ts';
import { MemoryBind, MemoryNetwork } from '../../src/device/bind-memory.ts';
import { ManualClock } from '../../src/device/clock.ts';
import { encodeHex, generatePrivateKey } from '../../src/core/keys.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';

/** The string form: what the socket carries is the same text, written as latin1. */
const oracle = formatGetResponse;

const text = (b: Uint8Array) => Buffer.from(b).toString('latin1');
const key = fc.uint8Array({ minLength: 32, maxLength: 32 });
const count = fc.oneof(
  fc.constantFrom(0, 1, 9, 10, 99, 100, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 64 - 1, 1e21, 1e300, -1, 0.5, 1.9, NaN, Infinity, -Infinity),
  fc.nat(),
  fc.double({ min: 0, max: 2 ** 70, noNaN: true }),
);
const prefix: fc.Arbitrary<Prefix> = fc.oneof(
  fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 32 })).map(([bytes, bits]) => ({ family: 4 as const, bytes, bits })),
  fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 128 })).map(([bytes, bits]) => ({ family: 6 as const, bytes, bits })),
);
const peer: fc.Arbitrary<PeerState> = fc.record({
  publicKey: key,
  presharedKey: fc.option(key, { nil: null }),
  endpoint: fc.option(fc.oneof(fc.constantFrom('192.0.2.1:51820', '[2001:db8::1%eth0]:1'), fc.string({ maxLength: 600 })), { nil: null }),
  lastHandshakeTimeSec: count,
  lastHandshakeTimeNsec: count,
  rxBytes: count,
  txBytes: count,
  persistentKeepalive: count,
  allowedIps: fc.array(prefix, { maxLength: 6 }),
  protocolVersion: fc.constant(1),
});
const state: fc.Arbitrary<DeviceState> = fc.record({
  privateKey: fc.option(fc.oneof(key, fc.constant(new Uint8Array(32))), { nil: null }),
  listenPort: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 65535 })),
  fwmark: fc.oneof(fc.constant(0), fc.nat()),
  peers: fc.array(peer, { maxLength: 8 }),
});

describe('encodeGetResponse', () => {
  it('writes what the string formatter wrote, for any state', () => {
    fc.assert(fc.property(state, (s) => {
      // Endpoints are ASCII in practice; the latin1 text is what the socket carried before too.
      const expected = Buffer.from(oracle(s), 'latin1').toString('latin1');
      assert.equal(text(encodeGetResponse(s)), expected);
    }), fcParams(300));
  });

  it('grows past its first guess (long endpoints, 300-digit counters)', () => {
    const p: PeerState = {
      publicKey: new Uint8Array(32).fill(1), presharedKey: null, endpoint: 'x'.repeat(5000),
      lastHandshakeTimeSec: 1e300, lastHandshakeTimeNsec: 1e300, rxBytes: 1e300, txBytes: 1e300, persistentKeepalive: 1e300,
      allowedIps: [], protocolVersion: 1,
    };
    const s: DeviceState = { privateKey: null, listenPort: 0, fwmark: 0, peers: [p, p, p] };
    const out = encodeGetResponse(s);
    assert.ok(out.length > 3 * 6000);
    assert.equal(text(out), oracle(s));
  });
});

describe('formatGetResponse and encodeGetResponse on a zone above latin1', () => {
  it('keeps the characters in the string form and writes their low bytes, as latin1 on the socket did', () => {
    const p: PeerState = {
      publicKey: new Uint8Array(32).fill(1), presharedKey: null, endpoint: '[fe80::1%eth\u20ac]:1',
      lastHandshakeTimeSec: 0, lastHandshakeTimeNsec: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: 0, allowedIps: [], protocolVersion: 1,
    };
    const s: DeviceState = { privateKey: null, listenPort: 0, fwmark: 0, peers: [p] };
    assert.ok(formatGetResponse(s).includes('endpoint=[fe80::1%eth\u20ac]:1\n'));
    assert.deepEqual(Buffer.from(encodeGetResponse(s)), Buffer.from(formatGetResponse(s), 'latin1'));
  });
});

describe('ByteWriter', () => {
  it('wipes the buffer it outgrows, which held keys', () => {
    const w = new ByteWriter(40);
    w.hex(new Uint8Array(16).fill(0xab));
    const first = w.buf;
    w.text('y'.repeat(100));
    assert.notEqual(w.buf, first);
    assert.ok(first.every((b) => b === 0), 'the outgrown buffer still holds the key');
    assert.equal(text(w.buf.subarray(0, w.at)), 'ab'.repeat(16) + 'y'.repeat(100));
  });
});

describe('a device\'s get=1 state, streamed and whole', () => {
  async function configured(): Promise<Device> {
    const rng = seededRng(44);
    const device = new Device({ tun: new MemoryTun({ name: 'wwget0' }), bind: new MemoryBind(new MemoryNetwork(), '192.0.2.9'), clock: new ManualClock(), rng });
    const pub = () => encodeHex(nodeCrypto.x25519PrivateKey(generatePrivateKey(rng)).publicKey);
    await device.ipcSet([
      `private_key=${encodeHex(generatePrivateKey(rng))}`, 'listen_port=51820',
      `public_key=${pub()}`, `preshared_key=${'ab'.repeat(32)}`, 'endpoint=192.0.2.1:51820', 'persistent_keepalive_interval=25',
      ...Array.from({ length: 40 }, (_, i) => `allowed_ip=10.0.${i}.0/24`), 'allowed_ip=fd00::/64',
      `public_key=${pub()}`, 'allowed_ip=10.1.0.1/32',
      `public_key=${pub()}`, `preshared_key=${'cd'.repeat(32)}`, 'endpoint=[2001:db8::1]:1',
    ].join('\n') + '\n');
    return device;
  }

  it('the UAPI\'s streamed state encodes exactly as getState() does', async () => {
    const device = await configured();
    const stream = device.streamState();
    assert.equal(stream.peerCount, 3);
    const whole = device.getState();
    assert.equal(text(encodeGetResponse(stream)), formatGetResponse(whole));
    assert.ok(formatGetResponse(whole).includes(`preshared_key=${'ab'.repeat(32)}\n`));
    // 41 prefixes for the first peer: past the stream's first guess of one a peer.
    assert.equal(formatGetResponse(whole).split('allowed_ip=').length - 1, 42);
  });

  it('getState() hands out copies of the keys: changing them changes nothing', async () => {
    const device = await configured();
    const before = formatGetResponse(device.getState());
    const [first] = device.getState().peers;
    first!.publicKey.fill(7);
    first!.presharedKey!.fill(7);
    assert.equal(formatGetResponse(device.getState()), before);
    assert.equal(text(encodeGetResponse(device.streamState())), before);
  });
});
