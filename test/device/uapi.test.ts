/**
 * The UAPI text protocol (parseSetRequest, formatGetResponse), the connection driver and the
 * socket server, against a fake UapiTarget that records what it is asked to apply. Sockets
 * live in temporary directories, so nothing here needs root; the real `wg` tool is exercised
 * in uapi.interop.test.ts.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { link, lstat, mkdtemp, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { createConnection, createServer, Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { until } from '../support/until.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { fcParams } from '../support/property.ts';
import type { DeviceState, Prefix, SetRequest, UapiTarget } from '../../src/device/config.ts';
import { Errno, UapiError } from '../../src/device/config.ts';
import {
  ERRNO_REQUEST_TOO_LARGE, ERRNO_UNKNOWN, formatGetResponse, parseEndpoint, parseSetRequest, parseUapiPrefix,
} from '../../src/device/uapi.ts';
import { formatPrefix } from '../../src/device/allowedips.ts';
import type { UapiConnectionOptions } from '../../src/device/uapi.ts';
import type { UapiServer } from '../../src/device/uapi-server.ts';
import { startUapiServer } from '../../src/device/uapi-server.ts';

// ---------------------------------------------------------------------------------------------
// helpers

const hexOf = (byte: number): string => byte.toString(16).padStart(2, '0').repeat(32);
const KEY_A = hexOf(0xaa);
const KEY_B = hexOf(0xbb);
const KEY_C = hexOf(0xcc);
const ZERO = hexOf(0);

function bytes(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

function prefix(text: string): Prefix {
  return parseUapiPrefix(text);
}

function errnoOf(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof UapiError, `expected a UapiError, got ${String(err)}`);
    return err.errno;
  }
  assert.fail('expected an error');
}

class FakeTarget implements UapiTarget {
  applied: SetRequest[] = [];
  getCalls = 0;
  failWith: unknown = null;
  /** applySet waits for this (set by a test that needs a set in progress). */
  gate: Promise<void> | null = null;
  onSetStart: () => void = () => {};
  onGet: () => void = () => {};
  events: string[] = [];
  state: DeviceState = { privateKey: null, listenPort: 0, fwmark: 0, peers: [] };

  getState(): DeviceState {
    this.getCalls++;
    this.events.push('get');
    this.onGet();
    return this.state;
  }

  async applySet(request: SetRequest): Promise<void> {
    this.events.push('set-start');
    this.onSetStart();
    if (this.gate) await this.gate;
    this.events.push('set-end');
    if (this.failWith !== null) throw this.failWith;
    this.applied.push(request);
  }
}

const tempDirs: string[] = [];
const servers: UapiServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
  for (const d of tempDirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'wwuapi-'));
  tempDirs.push(d);
  return d;
}

async function serve(target: UapiTarget, connection?: UapiConnectionOptions, extra: { pollIntervalMs?: number } = {}): Promise<UapiServer> {
  const srv = await startUapiServer('wgtest0', target, { dir: await tempDir(), connection, ...extra });
  servers.push(srv);
  return srv;
}

interface Exchange {
  text: string;
  /** Whether the server closed the connection. */
  closed: boolean;
}

const RESPONSE_END = /errno=-?\d+\n\n/g;

/**
 * Sends `data` (then half-closes when `end`), and collects what comes back until `responses`
 * answers have arrived (then disconnects) or, with `responses` undefined, until the server
 * closes the connection.
 */
function exchange(path: string, data: string | Buffer | (string | Buffer)[], opts: { responses?: number; end?: boolean; timeoutMs?: number } = {}): Promise<Exchange> {
  return new Promise<Exchange>((resolve, reject) => {
    const sock = createConnection({ path, allowHalfOpen: true });
    let text = '';
    let settled = false;
    const finish = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ text, closed });
    };
    const timer = setTimeout(() => {
      settled = true;
      sock.destroy();
      reject(new Error(`no answer in time; got ${JSON.stringify(text.slice(0, 200))}`));
    }, opts.timeoutMs ?? 5000);
    sock.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (opts.responses !== undefined && (text.match(RESPONSE_END)?.length ?? 0) >= opts.responses) {
        // Give a close that follows the answer a moment to arrive.
        setTimeout(() => finish(sock.readableEnded), 20);
      }
    });
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', (err) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        reject(err);
      }
    });
    sock.on('connect', () => {
      for (const part of Array.isArray(data) ? data : [data]) sock.write(part);
      if (opts.end) sock.end();
    });
  });
}

// ---------------------------------------------------------------------------------------------
// parseSetRequest

describe('parseSetRequest', () => {
  it('parses every device key', () => {
    const req = parseSetRequest([
      `private_key=${hexOf(0xff)}`, 'listen_port=51820', 'fwmark=4294967295', 'replace_peers=true', '',
    ]);
    // Clamped, as wireguard-go's NoisePrivateKey.FromMaybeZeroHex does.
    const clamped = bytes(hexOf(0xff));
    clamped[0] = 0xf8;
    clamped[31] = 0x7f;
    assert.deepEqual(req.privateKey, clamped);
    assert.equal(req.listenPort, 51820);
    assert.equal(req.fwmark, 4294967295);
    assert.equal(req.replacePeers, true);
    assert.deepEqual(req.peers, []);
  });

  it('all-zero private key clears it; 0 is a valid port and fwmark; absent keys stay undefined', () => {
    assert.equal(parseSetRequest([`private_key=${ZERO}`]).privateKey, null);
    const r = parseSetRequest(['listen_port=0', 'fwmark=0']);
    assert.equal(r.listenPort, 0);
    assert.equal(r.fwmark, 0);
    const empty = parseSetRequest([]);
    assert.deepEqual(empty, { replacePeers: false, peers: [] });
    assert.equal(parseSetRequest(['listen_port=00080']).listenPort, 80); // ParseUint allows leading zeros
    assert.deepEqual(parseSetRequest([`private_key=${KEY_A.toUpperCase()}`]).privateKey!.length, 32);
  });

  it('parses every peer key', () => {
    const req = parseSetRequest([
      `public_key=${KEY_A}`,
      'update_only=true',
      `preshared_key=${KEY_C}`,
      'endpoint=192.0.2.1:51820',
      'persistent_keepalive_interval=25',
      'replace_allowed_ips=true',
      'allowed_ip=10.0.0.1/24',
      'allowed_ip=-fd00::/64',
      'protocol_version=1',
      `public_key=${KEY_B}`,
      `preshared_key=${ZERO}`,
      'endpoint=[fe80::1%eth0]:1',
      'remove=true',
      '',
    ]);
    assert.equal(req.peers.length, 2);
    const [a, b] = req.peers;
    assert.deepEqual(a, {
      publicKey: bytes(KEY_A),
      remove: false,
      updateOnly: true,
      presharedKey: bytes(KEY_C),
      endpoint: { address: '192.0.2.1', port: 51820 },
      persistentKeepalive: 25,
      replaceAllowedIps: true,
      allowedIps: [
        { op: 'add', prefix: { family: 4, bytes: Uint8Array.from([10, 0, 0, 0]), bits: 24 } },
        { op: 'remove', prefix: { family: 6, bytes: Uint8Array.from([0xfd, ...new Array<number>(15).fill(0)]), bits: 64 } },
      ],
    });
    assert.equal(b!.remove, true);
    assert.equal(b!.presharedKey, null);
    assert.deepEqual(b!.endpoint, { address: 'fe80::1%eth0', port: 1 });
  });

  it('after remove=true the section is checked but not recorded (wireguard-go\'s dummy peer)', () => {
    const req = parseSetRequest([`public_key=${KEY_A}`, 'remove=true', 'allowed_ip=10.0.0.0/8', 'endpoint=1.2.3.4:5']);
    assert.deepEqual(req.peers[0]!.allowedIps, []);
    assert.equal(req.peers[0]!.endpoint, undefined);
    assert.equal(errnoOf(() => parseSetRequest([`public_key=${KEY_A}`, 'remove=true', 'allowed_ip=10.0.0.0/99'])), Errno.EINVAL);
  });

  it('replace_allowed_ips drops the section\'s earlier allowed IPs; repeated keys form separate entries', () => {
    const req = parseSetRequest([
      `public_key=${KEY_A}`, 'allowed_ip=10.0.0.0/8', 'replace_allowed_ips=true', 'allowed_ip=10.1.0.0/16',
      `public_key=${KEY_A}`, 'allowed_ip=10.2.0.0/16',
    ]);
    assert.equal(req.peers.length, 2);
    assert.deepEqual(req.peers[0]!.allowedIps.map((e) => formatPrefix(e.prefix)), ['10.1.0.0/16']);
    assert.deepEqual(req.peers[1]!.allowedIps.map((e) => formatPrefix(e.prefix)), ['10.2.0.0/16']);
  });

  it('drops a trailing \\r from lines, as Go\'s bufio.ScanLines', () => {
    const req = parseSetRequest(['listen_port=1\r', `public_key=${KEY_A}\r`, '\r']);
    assert.equal(req.listenPort, 1);
    assert.equal(req.peers.length, 1);
  });

  const EINVAL_CASES: [string, string[]][] = [
    ['short private key', [`private_key=${KEY_A.slice(2)}`]],
    ['long private key', [`private_key=${KEY_A}00`]],
    ['non-hex private key', [`private_key=${'zz'.repeat(32)}`]],
    ['base64 private key', ['private_key=QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=']],
    ['empty private key', ['private_key=']],
    ['port 65536', ['listen_port=65536']],
    ['port -1', ['listen_port=-1']],
    ['port +1', ['listen_port=+1']],
    ['port with space', ['listen_port= 1']],
    ['port 1e3', ['listen_port=1e3']],
    ['port 0x10', ['listen_port=0x10']],
    ['empty port', ['listen_port=']],
    ['fwmark 2^32', ['fwmark=4294967296']],
    ['fwmark hex', ['fwmark=0x10']],
    ['replace_peers=false', ['replace_peers=false']],
    ['replace_peers=TRUE', ['replace_peers=TRUE']],
    ['unknown device key', ['foo=bar']],
    ['empty key', ['=1']],
    ['peer key before any public_key', ['endpoint=1.2.3.4:5']],
    ['allowed_ip before any public_key', ['allowed_ip=10.0.0.0/8']],
    ['protocol_version at device level', ['protocol_version=1']],
    ['device key inside a peer', [`public_key=${KEY_A}`, 'listen_port=1']],
    ['unknown peer key', [`public_key=${KEY_A}`, 'foo=bar']],
    ['bad public key', ['public_key=abc']],
    ['bad preshared key', [`public_key=${KEY_A}`, 'preshared_key=xyz']],
    ['remove=1', [`public_key=${KEY_A}`, 'remove=1']],
    ['update_only=yes', [`public_key=${KEY_A}`, 'update_only=yes']],
    ['replace_allowed_ips=1', [`public_key=${KEY_A}`, 'replace_allowed_ips=1']],
    ['keepalive 65536', [`public_key=${KEY_A}`, 'persistent_keepalive_interval=65536']],
    ['keepalive -1', [`public_key=${KEY_A}`, 'persistent_keepalive_interval=-1']],
    ['protocol_version=2', [`public_key=${KEY_A}`, 'protocol_version=2']],
    ['protocol_version empty', [`public_key=${KEY_A}`, 'protocol_version=']],
  ];
  for (const [name, lines] of EINVAL_CASES) {
    it(`EINVAL: ${name}`, () => assert.equal(errnoOf(() => parseSetRequest(lines)), Errno.EINVAL));
  }

  const BAD_CIDRS = [
    '10.0.0.0', '10.0.0.0/33', '10.0.0.0/024', '10.0.0.0/+8', '10.0.0.0/-1', '10.0.0.0/', '/8', '010.0.0.0/8',
    '10.0.0/8', '10.0.0.0.0/8', '256.0.0.0/8', '::/129', 'fe80::1%eth0/64', 'fd00:::/64', 'fd00::1::/64',
    '1:2:3:4:5:6:7:8:9/64', '1:2:3/64', '::1:2:3:4:5:6:7:8/64', 'g::/64', '12345::/64', 'example.com/8', '-',
    '--10.0.0.0/8', ' 10.0.0.0/8', '10.0.0.0/8 ', '1.2.3.4%eth0/32', '::ffff:1.2.3/128', '1:2:3:4:5:6:7:1.2.3.4/128',
    '10.0.0.0/99999999999999999999',
  ];
  for (const cidr of BAD_CIDRS) {
    it(`EINVAL: allowed_ip=${cidr}`, () => {
      assert.equal(errnoOf(() => parseSetRequest([`public_key=${KEY_A}`, `allowed_ip=${cidr}`])), Errno.EINVAL);
    });
  }

  const BAD_ENDPOINTS = [
    'example.com:51820', '1.2.3.4', '1.2.3.4:', ':51820', '[1.2.3.4]:5', '::1:5', '[::1]', '[::1]:', '[::1:5',
    '1.2.3.4:65536', '1.2.3.4:-1', '1.2.3.4:+5', '1.2.3.4:0x10', '[fe80::1%]:5', '01.2.3.4:5', '1.2.3.4 :5',
    '[::ffff:1.2.3]:5', '', '[1.2.3.4%eth0]:5', '1.2.3.4%eth0:5', '[%eth0]:5', '[fe80::1%eth0:5', 'fe80::1%eth0:5',
  ];
  for (const ep of BAD_ENDPOINTS) {
    it(`EINVAL: endpoint=${ep}`, () => {
      assert.equal(errnoOf(() => parseSetRequest([`public_key=${KEY_A}`, `endpoint=${ep}`])), Errno.EINVAL);
    });
  }

  it('EPROTO: a line without "=", and data after the blank line', () => {
    assert.equal(errnoOf(() => parseSetRequest(['listen_port'])), Errno.EPROTO);
    assert.equal(errnoOf(() => parseSetRequest(['garbage'])), Errno.EPROTO);
    assert.equal(errnoOf(() => parseSetRequest([`public_key=${KEY_A}`, 'allowed_ip'])), Errno.EPROTO);
    assert.equal(errnoOf(() => parseSetRequest(['listen_port=1', '', 'fwmark=1'])), Errno.EPROTO);
    parseSetRequest(['listen_port=1', '', '']); // trailing blank lines are fine
  });

  it('error messages never contain key material', () => {
    const secret = 'a1b2c3d4'.repeat(8) + 'zz';
    for (const line of [`private_key=${secret}`, `public_key=${KEY_A}\npreshared_key=${secret}`]) {
      try {
        parseSetRequest(line.split('\n'));
        assert.fail('accepted');
      } catch (err) {
        assert.ok(err instanceof UapiError);
        assert.ok(!err.message.includes('a1b2c3d4'), err.message);
      }
    }
  });

  it('never throws anything but a UapiError with EINVAL or EPROTO (fuzz)', () => {
    const key = fc.constantFrom('private_key', 'listen_port', 'fwmark', 'replace_peers', 'public_key', 'remove',
      'update_only', 'preshared_key', 'endpoint', 'persistent_keepalive_interval', 'replace_allowed_ips',
      'allowed_ip', 'protocol_version', 'x', '');
    const value = fc.oneof(fc.string({ maxLength: 70 }), fc.constantFrom(KEY_A, 'true', '1', '[::1]:1', '10.0.0.0/8'));
    const line = fc.oneof(fc.tuple(key, value).map(([k, v]) => `${k}=${v}`), fc.string({ maxLength: 20 }));
    fc.assert(fc.property(fc.array(line, { maxLength: 12 }), (lines) => {
      try {
        parseSetRequest(lines);
      } catch (err) {
        assert.ok(err instanceof UapiError);
        assert.ok(err.errno === Errno.EINVAL || err.errno === Errno.EPROTO);
      }
    }), fcParams(2000));
  });

  // How fast is measured by `npm run bench:peers`, not asserted here (machine-dependent).
  it('parses 1000 peers × 10 allowed IPs', () => {
    const lines = bigRequestLines(1000, 10);
    const req = parseSetRequest(lines);
    assert.equal(req.peers.length, 1000);
    assert.equal(req.peers[999]!.allowedIps.length, 10);
    assert.deepEqual(req.peers[999]!.publicKey, bytes(peerKeyHex(999)));
  });
});

function peerKeyHex(i: number): string {
  return i.toString(16).padStart(8, '0').repeat(8);
}

/** What `wg setconf` sends for `peers` peers with `ips` allowed IPs (half IPv6) each. */
function bigRequestLines(peers: number, ips: number): string[] {
  const lines = [`private_key=${KEY_A}`, 'listen_port=51820', 'replace_peers=true'];
  for (let i = 0; i < peers; i++) {
    lines.push(`public_key=${peerKeyHex(i)}`, `preshared_key=${KEY_C}`, `endpoint=[2001:db8::${i.toString(16)}]:51820`,
      'persistent_keepalive_interval=25', 'replace_allowed_ips=true');
    for (let j = 0; j < ips; j++) {
      lines.push(j % 2 === 0
        ? `allowed_ip=10.${(i >> 8) & 255}.${i & 255}.${j}/32`
        : `allowed_ip=fd00:1234:5678:9abc:def0:${i.toString(16)}:${j.toString(16)}:ffff/128`);
    }
  }
  lines.push('');
  return lines;
}

// ---------------------------------------------------------------------------------------------
// addresses

describe('addresses as Go net/netip parses and prints them', () => {
  const CANONICAL: [string, string][] = [
    ['[2001:DB8:0:0:1:0:0:1]:1', '2001:db8::1:0:0:1'],
    ['[0:0:0:0:0:0:0:1]:1', '::1'],
    ['[::]:1', '::'],
    ['[1::]:1', '1::'],
    ['[1:0:0:2:0:0:0:3]:1', '1:0:0:2::3'],
    ['[1::2:3:4:5:6:7]:1', '1:0:2:3:4:5:6:7'],
    ['[1:2:3:4:5:6:7::]:1', '1:2:3:4:5:6:7:0'],
    ['[1:2:3:4:5:6:1.2.3.4]:1', '1:2:3:4:5:6:102:304'],
    ['[::1.2.3.4]:1', '::102:304'],
    ['[::ffff:1.2.3.4]:1', '::ffff:1.2.3.4'],
    ['[::FFFF:0102:0304]:1', '::ffff:1.2.3.4'],
    ['[fe80::0001%wg0]:1', 'fe80::1%wg0'],
    ['[0000:0000::0001]:1', '::1'],
    ['255.255.255.255:65535', '255.255.255.255'],
    ['0.0.0.0:0', '0.0.0.0'],
  ];
  for (const [input, address] of CANONICAL) {
    it(`endpoint ${input} → ${address}`, () => assert.equal(parseEndpoint(input).address, address));
  }

  it('masks host bits of allowed IPs and prints prefixes as Go does', () => {
    assert.equal(formatPrefix(prefix('10.1.2.3/8')), '10.0.0.0/8');
    assert.equal(formatPrefix(prefix('10.1.2.3/0')), '0.0.0.0/0');
    assert.equal(formatPrefix(prefix('fd00::ff/120')), 'fd00::/120');
    assert.equal(formatPrefix(prefix('fd00::ff/121')), 'fd00::80/121');
    assert.equal(formatPrefix(prefix('::ffff:10.1.2.3/128')), '::ffff:10.1.2.3/128');
    assert.equal(formatPrefix(prefix('::/0')), '::/0');
  });

  it('prefix text round-trips (property)', () => {
    const v4 = fc.record({ family: fc.constant<4 | 6>(4), bytes: fc.uint8Array({ minLength: 4, maxLength: 4 }), bits: fc.integer({ min: 0, max: 32 }) });
    const v6 = fc.record({ family: fc.constant<4 | 6>(6), bytes: fc.uint8Array({ minLength: 16, maxLength: 16 }), bits: fc.integer({ min: 0, max: 128 }) });
    fc.assert(fc.property(fc.oneof(v4, v6), (p) => {
      const masked = prefix(`${formatPrefix(p)}`); // formatting does not mask; parsing does
      const again = prefix(formatPrefix(masked));
      assert.deepEqual(again, masked);
      assert.equal(formatPrefix(again), formatPrefix(masked));
      // Host bits are zero.
      for (let i = 0; i < masked.bytes.length; i++) {
        const keep = Math.min(8, Math.max(0, masked.bits - 8 * i));
        assert.equal(masked.bytes[i]! & (0xff >> keep), 0);
      }
    }), fcParams(3000));
  });
});

// ---------------------------------------------------------------------------------------------
// formatGetResponse

const GOLDEN_STATE: DeviceState = {
  privateKey: Uint8Array.from({ length: 32 }, (_, i) => i),
  listenPort: 51820,
  fwmark: 0x1234,
  peers: [
    {
      publicKey: bytes(KEY_A),
      presharedKey: null,
      endpoint: '192.0.2.1:51820',
      lastHandshakeTimeSec: 1700000000,
      lastHandshakeTimeNsec: 123456789,
      rxBytes: 2048,
      txBytes: 1024,
      persistentKeepalive: 25,
      allowedIps: [prefix('10.0.0.0/24'), prefix('fd00::/64'), prefix('::ffff:1.2.3.4/128')],
      protocolVersion: 1,
    },
    {
      publicKey: bytes(KEY_B),
      presharedKey: bytes(KEY_C),
      endpoint: null,
      lastHandshakeTimeSec: 0,
      lastHandshakeTimeNsec: 0,
      rxBytes: 0,
      txBytes: 0,
      persistentKeepalive: 0,
      allowedIps: [],
      protocolVersion: 1,
    },
  ],
};

const GOLDEN_TEXT = [
  'private_key=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
  'listen_port=51820',
  'fwmark=4660',
  `public_key=${KEY_A}`,
  `preshared_key=${ZERO}`,
  'protocol_version=1',
  'endpoint=192.0.2.1:51820',
  'last_handshake_time_sec=1700000000',
  'last_handshake_time_nsec=123456789',
  'tx_bytes=1024',
  'rx_bytes=2048',
  'persistent_keepalive_interval=25',
  'allowed_ip=10.0.0.0/24',
  'allowed_ip=fd00::/64',
  'allowed_ip=::ffff:1.2.3.4/128',
  `public_key=${KEY_B}`,
  `preshared_key=${KEY_C}`,
  'protocol_version=1',
  'last_handshake_time_sec=0',
  'last_handshake_time_nsec=0',
  'tx_bytes=0',
  'rx_bytes=0',
  'persistent_keepalive_interval=0',
  'errno=0',
  '',
  '',
].join('\n');

describe('formatGetResponse', () => {
  it('matches wireguard-go byte for byte', () => {
    assert.equal(formatGetResponse(GOLDEN_STATE), GOLDEN_TEXT);
  });

  it('omits an unset private key, port 0 and fwmark 0', () => {
    assert.equal(formatGetResponse({ privateKey: null, listenPort: 0, fwmark: 0, peers: [] }), 'errno=0\n\n');
    assert.equal(formatGetResponse({ privateKey: new Uint8Array(32), listenPort: 0, fwmark: 0, peers: [] }), 'errno=0\n\n');
  });

  it('round-trips through parseSetRequest', () => {
    // The configuration part of a get answer is a valid set body.
    const lines = GOLDEN_TEXT.split('\n').filter((l) => !/^(last_handshake|tx_bytes|rx_bytes|errno)/.test(l));
    const req = parseSetRequest(lines);
    assert.equal(req.listenPort, 51820);
    assert.equal(req.peers.length, 2);
    assert.deepEqual(req.peers[0]!.allowedIps.map((e) => e.prefix), GOLDEN_STATE.peers[0]!.allowedIps);
  });
});

// ---------------------------------------------------------------------------------------------
// connections

describe('handleUapiConnection (over a unix socket)', () => {
  it('answers get=1 with the state', async () => {
    const t = new FakeTarget();
    t.state = GOLDEN_STATE;
    const srv = await serve(t);
    const r = await exchange(srv.path, 'get=1\n\n', { responses: 1 });
    assert.equal(r.text, GOLDEN_TEXT);
    assert.equal(r.closed, false);
  });

  it('wipes the answer\'s bytes (keys in hex) once the socket has written them', async () => {
    const t = new FakeTarget();
    t.state = GOLDEN_STATE;
    const srv = await serve(t);
    const sent: Uint8Array[] = [];
    const write = Socket.prototype.write;
    Socket.prototype.write = function (this: Socket, chunk: unknown, ...rest: unknown[]) {
      if (chunk instanceof Uint8Array) sent.push(chunk);
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof write;
    let r: Exchange;
    try {
      r = await exchange(srv.path, 'get=1\n\n', { responses: 1 });
    } finally {
      Socket.prototype.write = write;
    }
    assert.equal(r.text, GOLDEN_TEXT);
    const answer = sent.find((c) => c.length === GOLDEN_TEXT.length);
    assert.ok(answer, 'the answer was not written as bytes');
    assert.ok(answer.every((b) => b === 0), 'the answer still holds the private key after it was written');
  });

  it('answers get=1 intact over a Duplex that hands its chunks on later', async () => {
    const { handleUapiConnection } = await import('../../src/device/uapi.ts');
    const t = new FakeTarget();
    t.state = GOLDEN_STATE;
    const written: Buffer[] = [];
    const stream = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) { written.push(chunk); cb(); },
    });
    const done = handleUapiConnection(stream, t);
    stream.push('get=1\n\n');
    await until('the answer', () => written.length > 0 && Buffer.concat(written).toString('latin1').endsWith('errno=0\n\n'));
    // The stream kept the chunk itself: a wipe after its callback would have zeroed it.
    assert.equal(Buffer.concat(written).toString('latin1'), GOLDEN_TEXT);
    stream.push(null);
    stream.destroy();
    await done;
  });

  it('applies a valid set=1 and answers errno=0', async () => {
    const t = new FakeTarget();
    const srv = await serve(t);
    const r = await exchange(srv.path, `set=1\nlisten_port=1234\npublic_key=${KEY_A}\nallowed_ip=10.0.0.0/8\n\n`, { responses: 1 });
    assert.equal(r.text, 'errno=0\n\n');
    assert.equal(t.applied.length, 1);
    assert.equal(t.applied[0]!.listenPort, 1234);
    assert.equal(t.applied[0]!.peers.length, 1);
  });

  it('serves several requests on one connection, pipelined or one by one', async () => {
    const t = new FakeTarget();
    t.state = GOLDEN_STATE;
    const srv = await serve(t);
    const r = await exchange(srv.path, `get=1\n\nset=1\nfwmark=7\n\nget=1\n\nset=1\nfwmark=x\n\nset=1\nfwmark=8\n\n`, { responses: 5 });
    assert.equal(r.text, `${GOLDEN_TEXT}errno=0\n\n${GOLDEN_TEXT}errno=-22\n\nerrno=0\n\n`);
    assert.deepEqual(t.applied.map((a) => a.fwmark), [7, 8]);

    // Byte by byte.
    const t2 = new FakeTarget();
    const srv2 = await serve(t2);
    const input = 'set=1\nlisten_port=9\n\nget=1\n\n';
    const r2 = await exchange(srv2.path, [...input].map((c) => Buffer.from(c)), { responses: 2 });
    assert.equal(r2.text, 'errno=0\n\nerrno=0\n\n');
    assert.equal(t2.applied[0]!.listenPort, 9);
  });

  const MALFORMED: [string, string, number][] = [
    ['bad hex key', `set=1\nprivate_key=${'g'.repeat(64)}\n\n`, -22],
    ['short key', `set=1\npublic_key=${KEY_A.slice(1)}\n\n`, -22],
    ['bad CIDR', `set=1\npublic_key=${KEY_A}\nallowed_ip=10.0.0.0/40\n\n`, -22],
    ['unknown key', 'set=1\nfoo=bar\n\n', -22],
    ['port out of range', 'set=1\nlisten_port=70000\n\n', -22],
    ['value without key', 'set=1\n=5\n\n', -22],
    ['line without =', 'set=1\nlisten_port\n\n', -71],
    ['good lines, then a bad one', `set=1\nlisten_port=5\nreplace_peers=true\npublic_key=${KEY_A}\nendpoint=host:1\nallowed_ip=10.0.0.0/8\n\n`, -22],
  ];
  for (const [name, input, errno] of MALFORMED) {
    it(`${name}: errno=${errno}, nothing applied, connection still usable`, async () => {
      const t = new FakeTarget();
      const srv = await serve(t);
      const r = await exchange(srv.path, input + 'get=1\n\n', { responses: 2 });
      assert.equal(r.text, `errno=${errno}\n\nerrno=0\n\n`);
      assert.equal(t.applied.length, 0);
      assert.deepEqual(t.events, ['get']);
    });
  }

  it('missing blank line at EOF: errno=-71 (EPROTO), nothing applied', async () => {
    const t = new FakeTarget();
    const srv = await serve(t);
    const r = await exchange(srv.path, 'set=1\nlisten_port=5\n', { end: true });
    assert.equal(r.text, 'errno=-71\n\n');
    assert.equal(r.closed, true);
    assert.equal(t.applied.length, 0);
    const r2 = await exchange(srv.path, 'set=1\nlisten_port=5', { end: true });
    assert.equal(r2.text, 'errno=-71\n\n');
    const r3 = await exchange(srv.path, 'get=1\n', { end: true });
    assert.equal(r3.text, 'errno=-71\n\n');
    assert.equal(t.getCalls, 0);
  });

  it('a clean EOF between requests closes quietly', async () => {
    const t = new FakeTarget();
    const srv = await serve(t);
    const r = await exchange(srv.path, 'set=1\nlisten_port=5\n\n', { end: true });
    assert.equal(r.text, 'errno=0\n\n');
    assert.equal(r.closed, true);
  });

  for (const garbage of ['hello\n', 'GET / HTTP/1.1\r\n', 'get=2\n\n', 'set=1\r\nlisten_port=1\r\n\r\n', 'get=1 \n\n', '\n']) {
    it(`garbage operation ${JSON.stringify(garbage)}: errno=-71 then closed`, async () => {
      const t = new FakeTarget();
      const srv = await serve(t);
      const r = await exchange(srv.path, garbage);
      assert.equal(r.text, 'errno=-71\n\n');
      assert.equal(r.closed, true);
      assert.equal(t.applied.length, 0);
      assert.equal(t.getCalls, 0);
    });
  }

  it('get=1 followed by another character: EINVAL, the character is consumed, the connection goes on', async () => {
    const t = new FakeTarget();
    const srv = await serve(t);
    const r = await exchange(srv.path, 'get=1\nxget=1\n\n', { responses: 2 });
    assert.equal(r.text, 'errno=-22\n\nerrno=0\n\n');
    assert.equal(t.getCalls, 1);
  });

  it('an oversized request: errno=-90 (EMSGSIZE), closed, nothing applied', async () => {
    const t = new FakeTarget();
    const srv = await serve(t, { maxRequestBytes: 4096 });
    const body = Array.from({ length: 200 }, (_, i) => `public_key=${peerKeyHex(i)}\n`).join('');
    const r = await exchange(srv.path, `set=1\n${body}\n`);
    assert.equal(r.text, `errno=-${ERRNO_REQUEST_TOO_LARGE}\n\n`);
    assert.equal(r.closed, true);
    assert.equal(t.applied.length, 0);
  });

  it('an over-long line: errno=-5 (EIO, as Go\'s scanner), closed, nothing applied', async () => {
    const t = new FakeTarget();
    const srv = await serve(t);
    const r = await exchange(srv.path, `set=1\nlisten_port=1\nendpoint=${'1'.repeat(70_000)}`);
    assert.equal(r.text, 'errno=-5\n\n');
    assert.equal(r.closed, true);
    assert.equal(t.applied.length, 0);
  });

  it('a half-written request times out and the connection is closed', async () => {
    // A timer twin: the test sees the timeout armed (an event) and fires it by hand.
    const armed: { callback: () => void; delayMs: number; cleared: boolean }[] = [];
    let onArm: () => void = () => {};
    const clock = {
      setTimer: (callback: () => void, delayMs: number) => {
        const timer = { callback, delayMs, cleared: false };
        armed.push(timer);
        onArm();
        return timer;
      },
      clearTimer: (handle: unknown) => { (handle as { cleared: boolean }).cleared = true; },
    };
    const t = new FakeTarget();
    const srv = await serve(t, { requestTimeoutMs: 150, clock });
    const wasArmed = new Promise<void>((resolve) => { onArm = resolve; });
    const result = exchange(srv.path, 'set=1\nlisten_port=1\n');
    await wasArmed;
    assert.deepEqual(armed.map((a) => [a.delayMs, a.cleared]), [[150, false]]);
    armed[0]!.callback();
    const r = await result;
    assert.equal(r.text, '');
    assert.equal(r.closed, true);
    assert.equal(t.applied.length, 0);
    // A complete request is answered and leaves no timer running.
    const done = await exchange(srv.path, 'set=1\nlisten_port=2\n\n', { responses: 1 });
    assert.equal(done.text, 'errno=0\n\n');
    assert.ok(armed.slice(1).every((a) => a.cleared), 'no timer left armed');
    // An idle connection (no partial request) is not timed out.
    const idle = await exchange(srv.path, 'get=1\n\n', { responses: 1 });
    assert.equal(idle.closed, false);
  });

  it('answers the errno of a failing applySet; other errors are -55 (ENOANO, wireguard-go\'s unknown)', async () => {
    const t = new FakeTarget();
    const srv = await serve(t);
    t.failWith = new UapiError(Errno.EADDRINUSE, 'port taken');
    assert.equal((await exchange(srv.path, 'set=1\nlisten_port=1\n\n', { responses: 1 })).text, 'errno=-98\n\n');
    t.failWith = new Error('boom');
    assert.equal((await exchange(srv.path, 'set=1\nlisten_port=1\n\n', { responses: 1 })).text, `errno=-${ERRNO_UNKNOWN}\n\n`);
    t.failWith = null;
    const bad: UapiTarget = {
      getState: () => { throw new UapiError(Errno.EIO, 'gone'); },
      applySet: async () => {},
    };
    const srv2 = await serve(bad);
    assert.equal((await exchange(srv2.path, 'get=1\n\n', { responses: 1 })).text, 'errno=-5\n\n');
  });

  it('runs operations on one target one at a time, across connections', async () => {
    const t = new FakeTarget();
    let release: () => void = () => {};
    t.gate = new Promise<void>((resolve) => { release = resolve; });
    const setStarted = new Promise<void>((resolve) => { t.onSetStart = resolve; });
    const srv = await serve(t);
    const set = exchange(srv.path, 'set=1\nlisten_port=1\n\n', { responses: 1 });
    await setStarted;
    // On a second connection: an invalid set (answered without the target) and then a get, in
    // one write. Its answer proves the server has read the get too, while the set still runs.
    const second = await exchange(srv.path, 'set=1\nfwmark=x\n\nget=1\n\n', { responses: 1 });
    assert.equal(second.text, 'errno=-22\n\n');
    assert.deepEqual(t.events, ['set-start'], 'the get waits for the set');
    const got = new Promise<void>((resolve) => { t.onGet = resolve; });
    release();
    assert.equal((await set).text, 'errno=0\n\n');
    await got;
    assert.deepEqual(t.events, ['set-start', 'set-end', 'get']);
  });

  it('delivers a large get answer to a slow reader (backpressure)', async () => {
    const t = new FakeTarget();
    t.state = {
      ...GOLDEN_STATE,
      peers: Array.from({ length: 3000 }, (_, i) => ({ ...GOLDEN_STATE.peers[0]!, publicKey: bytes(peerKeyHex(i)) })),
    };
    const expected = formatGetResponse(t.state);
    const srv = await serve(t);
    const text = await new Promise<string>((resolve, reject) => {
      const sock = createConnection({ path: srv.path });
      let got = '';
      sock.on('connect', () => {
        sock.write('get=1\n\nget=1\n\n');
        sock.pause();
        setTimeout(() => sock.resume(), 200);
      });
      sock.on('data', (c: Buffer) => {
        got += c.toString('latin1');
        if (got.length >= 2 * expected.length) {
          sock.destroy();
          resolve(got);
        }
      });
      sock.on('error', reject);
    });
    assert.equal(text, expected + expected);
  });

  it('takes 1000 peers × 10 allowed IPs through the socket', async () => {
    const t = new FakeTarget();
    const srv = await serve(t);
    const body = bigRequestLines(1000, 10).join('\n') + '\n';
    assert.ok(body.length < UAPI_LIMIT_FOR_TEST, `request is ${body.length} bytes`);
    const r = await exchange(srv.path, `set=1\n${body}`, { responses: 1, timeoutMs: 60_000 });
    assert.equal(r.text, 'errno=0\n\n');
    assert.equal(t.applied[0]!.peers.length, 1000);
    assert.equal(t.applied[0]!.peers[999]!.allowedIps.length, 10);
  });

  it('works on any Duplex, and resolves when the connection closes', async () => {
    const { handleUapiConnection } = await import('../../src/device/uapi.ts');
    const dir = await tempDir();
    const t = new FakeTarget();
    let finished: Promise<void> | null = null;
    const server = createServer({ allowHalfOpen: true }, (s) => { finished = handleUapiConnection(s, t); });
    await new Promise<void>((r) => server.listen(join(dir, 'x.sock'), r));
    const r = await exchange(join(dir, 'x.sock'), 'get=1\n\n', { end: true });
    assert.equal(r.text, 'errno=0\n\n');
    await finished;
    await new Promise<void>((r2) => server.close(() => r2()));
  });
});

/** The default maxRequestBytes (8 MiB); a 1000 × 10 `wg setconf` is far below. */
const UAPI_LIMIT_FOR_TEST = 8 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// the server

describe('startUapiServer', () => {
  it('creates the directory 0755 and the socket 0600, and removes the socket on close', async () => {
    const base = await tempDir();
    const dir = join(base, 'run', 'wireguard');
    const srv = await startUapiServer('wg7', new FakeTarget(), { dir });
    assert.equal(srv.path, join(dir, 'wg7.sock'));
    const dirMode = (await stat(dir)).mode & 0o777;
    assert.equal(dirMode & ~0o755, 0, `directory mode ${dirMode.toString(8)}`); // 0755 less the umask
    assert.equal(dirMode & 0o700, 0o700);
    const st = await lstat(srv.path);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    // No temporary files left next to it.
    const { readdir } = await import('node:fs/promises');
    assert.deepEqual(await readdir(dir), ['wg7.sock']);
    await srv.close();
    await srv.close(); // idempotent
    await assert.rejects(lstat(srv.path), { code: 'ENOENT' });
  });

  it('refuses to start when a live daemon answers on the socket', async () => {
    const dir = await tempDir();
    const first = await startUapiServer('wg0', new FakeTarget(), { dir });
    servers.push(first);
    await assert.rejects(startUapiServer('wg0', new FakeTarget(), { dir }), { code: 'EADDRINUSE' });
    // The first one still works.
    assert.equal((await exchange(first.path, 'get=1\n\n', { responses: 1 })).text, 'errno=0\n\n');
  });

  it('replaces a stale socket', async () => {
    const dir = await tempDir();
    // A socket file nobody listens on: a hard link that outlives its server.
    const other = createServer();
    await new Promise<void>((r) => other.listen(join(dir, 'old.sock'), r));
    await link(join(dir, 'old.sock'), join(dir, 'wg0.sock'));
    await new Promise<void>((r) => other.close(() => r()));
    await assert.rejects(exchange(join(dir, 'wg0.sock'), 'get=1\n\n'), { code: 'ECONNREFUSED' });
    const srv = await startUapiServer('wg0', new FakeTarget(), { dir });
    servers.push(srv);
    assert.equal((await exchange(srv.path, 'get=1\n\n', { responses: 1 })).text, 'errno=0\n\n');
  });

  it('refuses a name taken by a file that is not a socket', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'wg0.sock'), 'not a socket');
    await assert.rejects(startUapiServer('wg0', new FakeTarget(), { dir }), { code: 'EEXIST' });
  });

  it('rejects bad names and paths too long for a unix socket', async () => {
    const dir = await tempDir();
    await assert.rejects(startUapiServer('a/b', new FakeTarget(), { dir }), { code: 'EINVAL' });
    await assert.rejects(startUapiServer('', new FakeTarget(), { dir }), { code: 'EINVAL' });
    await assert.rejects(startUapiServer('x'.repeat(100), new FakeTarget(), { dir }), { code: 'ENAMETOOLONG' });
  });

  it('reports the deletion of the socket file and stops listening', async () => {
    const srv = await serve(new FakeTarget(), undefined, { pollIntervalMs: 50 });
    const removed = new Promise<void>((r) => srv.onSocketRemoved(r));
    await unlink(srv.path);
    await removed;
    let late = false;
    srv.onSocketRemoved(() => { late = true; });
    await new Promise((r) => setTimeout(r, 10));
    assert.ok(late, 'a callback registered afterwards runs too');
  });

  it('reports a socket file replaced by another, and close leaves the other alone', async () => {
    const srv = await serve(new FakeTarget(), undefined, { pollIntervalMs: 50 });
    const removed = new Promise<void>((r) => srv.onSocketRemoved(r));
    await unlink(srv.path);
    await writeFile(srv.path, 'someone else');
    await removed;
    await srv.close();
    assert.ok((await lstat(srv.path)).isFile());
  });

  it('close ends open connections', async () => {
    const t = new FakeTarget();
    const srv = await startUapiServer('wg0', t, { dir: await tempDir() });
    const pending = exchange(srv.path, 'set=1\nlisten_port=1\n'); // half-written, held open
    await new Promise((r) => setTimeout(r, 50));
    await srv.close();
    const r = await pending;
    assert.equal(r.closed, true);
    assert.equal(t.applied.length, 0);
  });
});
