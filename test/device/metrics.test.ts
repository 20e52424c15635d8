/**
 * The Prometheus endpoint (src/device/metrics.ts), scraped over HTTP while two devices on the
 * in-memory twins exchange traffic: the values move with what happens, per peer and per drop
 * reason, and never show a private key.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Device } from '../../src/device/device.ts';
import { MemoryTun } from '../../src/device/tun-memory.ts';
import { MemoryBind, MemoryNetwork } from '../../src/device/bind-memory.ts';
import { ManualClock } from '../../src/device/clock.ts';
import { DeviceMetrics, parseListenAddress, startMetricsServer } from '../../src/device/metrics.ts';
import { gcSnapshot } from '../../src/device/gc-watch.ts';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { MetricsServer } from '../../src/device/metrics.ts';
import { encodeBase64, encodeHex, generatePrivateKey } from '../../src/core/keys.ts';
import { seededRng } from '../../src/core/rng.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';
import { REKEY_ATTEMPT_TIME } from '../../src/core/constants.ts';
import { icmpEcho4 } from '../support/ip.ts';

interface Host { device: Device; tun: MemoryTun; key: Uint8Array; pub: Uint8Array }

async function host(net: MemoryNetwork, clock: ManualClock, address: string, seed: number): Promise<Host> {
  const key = generatePrivateKey(seededRng(seed));
  const tun = new MemoryTun({ name: `wwx${seed}` });
  const device = new Device({ tun, bind: new MemoryBind(net, address), clock, rng: seededRng(seed) });
  await device.ipcSet(`private_key=${encodeHex(key)}\nlisten_port=51820\n`);
  await device.up();
  return { device, tun, key, pub: nodeCrypto.x25519PrivateKey(key).publicKey };
}

const servers: MetricsServer[] = [];
after(async () => { for (const s of servers) await s.close(); });

async function serve(metrics: DeviceMetrics): Promise<string> {
  const server = await startMetricsServer(metrics, '127.0.0.1:0');
  servers.push(server);
  return `http://127.0.0.1:${server.address.port}`;
}

/** Scrapes and parses `name{labels} value` lines into a map keyed by `name{labels}`. */
async function scrape(base: string): Promise<{ text: string; value: (key: string) => number }> {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\w+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(m, `well-formed sample line: ${line}`);
    values.set(m[1]!, Number(m[2]));
  }
  return {
    text,
    value: (key) => {
      const v = values.get(key);
      assert.ok(v !== undefined, `metric ${key} in\n${text}`);
      return v;
    },
  };
}

describe('metrics endpoint', () => {
  it('reports handshakes, bytes per peer, drops, sessions, under-load and uptime, and they move with traffic', async () => {
    const net = new MemoryNetwork();
    const clock = new ManualClock();
    const a = await host(net, clock, '192.0.2.1', 1);
    const b = await host(net, clock, '192.0.2.2', 2);
    await a.device.ipcSet(`public_key=${encodeHex(b.pub)}\nendpoint=192.0.2.2:51820\nallowed_ip=10.9.0.2/32\n`);
    await b.device.ipcSet(`public_key=${encodeHex(a.pub)}\nallowed_ip=10.9.0.1/32\n`);
    const metrics = new DeviceMetrics(a.device, { clock });
    const base = await serve(metrics);
    const i = 'interface="wwx1"';
    const peer = `${i},public_key="${encodeBase64(b.pub)}"`;

    const before = await scrape(base);
    assert.equal(before.value(`wireweave_peers{${i}}`), 1);
    assert.equal(before.value(`wireweave_sessions{${i}}`), 0);
    assert.equal(before.value(`wireweave_handshakes_completed_total{${i}}`), 0);
    assert.equal(before.value(`wireweave_peer_transmit_bytes_total{${peer}}`), 0);
    assert.equal(before.value(`wireweave_under_load{${i}}`), 0);
    assert.equal(before.value(`wireweave_dropped_packets_total{${i},reason="noRoute"}`), 0);

    a.tun.inject(icmpEcho4('10.9.0.1', '10.9.0.2', 1, 1, new Uint8Array(100)));
    a.tun.inject(icmpEcho4('10.9.0.1', '10.200.0.1', 1, 2, new Uint8Array(10))); // no route
    await clock.advance(1500);
    assert.equal(b.tun.written.length, 1, 'the ping crossed');

    const afterTraffic = await scrape(base);
    assert.equal(afterTraffic.value(`wireweave_handshakes_initiated_total{${i}}`), 1);
    assert.equal(afterTraffic.value(`wireweave_handshakes_completed_total{${i}}`), 1);
    assert.equal(afterTraffic.value(`wireweave_sessions{${i}}`), 1);
    assert.equal(afterTraffic.value(`wireweave_data_packets_sent_total{${i}}`), 1);
    assert.ok(afterTraffic.value(`wireweave_peer_transmit_bytes_total{${peer}}`) >= 148 + 32 + 100, 'initiation and data counted');
    assert.ok(afterTraffic.value(`wireweave_peer_receive_bytes_total{${peer}}`) >= 92, 'response counted');
    assert.equal(afterTraffic.value(`wireweave_peer_last_handshake_seconds{${peer}}`), clock.wall(0) / 1000);
    assert.equal(afterTraffic.value(`wireweave_dropped_packets_total{${i},reason="noRoute"}`), 1);
    assert.equal(afterTraffic.value(`wireweave_uptime_seconds{${i}}`), 1.5);

    // Junk from the network is dropped and counted by reason; a non-WireGuard datagram is foreign.
    const junkFrom = new MemoryBind(net, '198.51.100.9');
    await junkFrom.open(0, () => {});
    junkFrom.send(Uint8Array.of(4, 0, 0, 0, ...new Uint8Array(40)), junkFrom.endpointFor('192.0.2.1', 51820));
    junkFrom.send(Uint8Array.of(0x17, 1, 2), junkFrom.endpointFor('192.0.2.1', 51820));
    a.device.endpoint.setUnderLoad(true);
    await clock.advance(10);
    const later = await scrape(base);
    assert.equal(later.value(`wireweave_dropped_packets_total{${i},reason="unknownIndex"}`), 1);
    assert.equal(later.value(`wireweave_foreign_datagrams_total{${i}}`), 1);
    assert.equal(later.value(`wireweave_under_load{${i}}`), 1);

    // Never key material other than public keys.
    for (const secret of [encodeHex(a.key), encodeBase64(a.key), encodeHex(b.key), encodeBase64(b.key)]) {
      assert.ok(!later.text.includes(secret), 'no private key in the metrics');
    }
    await a.device.close();
    await b.device.close();
  });

  it('counts handshakes that fail after REKEY_ATTEMPT_TIME', async () => {
    const net = new MemoryNetwork();
    const clock = new ManualClock();
    const a = await host(net, clock, '192.0.2.1', 3);
    const nobody = nodeCrypto.x25519PrivateKey(generatePrivateKey(seededRng(4))).publicKey;
    await a.device.ipcSet(`public_key=${encodeHex(nobody)}\nendpoint=192.0.2.99:51820\nallowed_ip=10.9.0.2/32\n`);
    const metrics = new DeviceMetrics(a.device, { clock });
    const base = await serve(metrics);
    a.tun.inject(icmpEcho4('10.9.0.1', '10.9.0.2', 1, 1, new Uint8Array(8)));
    await clock.advance(REKEY_ATTEMPT_TIME + 10_000);
    const s = await scrape(base);
    assert.equal(s.value('wireweave_handshakes_failed_total{interface="wwx3"}'), 1);
    assert.ok(s.value('wireweave_handshakes_initiated_total{interface="wwx3"}') >= 18, 'retries counted');
    await a.device.close();
  });

  it('reports the process\'s memory and CPU under the usual Node exporter names, without the interface label', async () => {
    const net = new MemoryNetwork();
    const clock = new ManualClock();
    const a = await host(net, clock, '192.0.2.1', 5);
    const base = await serve(new DeviceMetrics(a.device, { clock }));
    // A forced major collection, seen by the watcher (its observer runs a few loop turns later).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const collections = gcSnapshot().majorCollections;
    gc();
    for (let turn = 0; turn < 10_000 && gcSnapshot().majorCollections === collections; turn++) await new Promise((r) => setImmediate(r));
    const before = process.memoryUsage();
    const counted = gcSnapshot().majorCollections;
    const s = await scrape(base);
    const rss = s.value('process_resident_memory_bytes');
    const heapUsed = s.value('nodejs_heap_size_used_bytes');
    const heapTotal = s.value('nodejs_heap_size_total_bytes');
    const external = s.value('nodejs_external_memory_bytes');
    const arrayBuffers = s.value('nodejs_array_buffers_bytes');
    assert.ok(rss > heapTotal && heapTotal >= heapUsed && heapUsed > 1e6, `rss ${rss} > heap total ${heapTotal} >= heap used ${heapUsed} > 1 MB`);
    assert.ok(external > 0 && arrayBuffers > 0, `external ${external} and array buffers ${arrayBuffers} counted`);
    // The same process measured just before: within a factor of two (the scrape itself allocates).
    assert.ok(rss > before.rss / 2 && rss < before.rss * 2, `rss ${rss} near ${before.rss}`);
    assert.ok(s.value('process_cpu_user_seconds_total') > 0, 'user CPU counted');
    const major = s.value('nodejs_gc_major_collections_total');
    assert.ok(major > collections && major >= counted && major <= gcSnapshot().majorCollections, `major collections ${major}: the forced one counted`);
    assert.match(s.text, /^nodejs_heap_live_bytes (NaN|\d+)$/m, 'live heap: NaN before the first major collection, bytes after');
    const newSpace = s.value('nodejs_heap_space_size_total_bytes{space="new"}');
    assert.ok(newSpace > 0 && newSpace < heapTotal, `new space ${newSpace} is part of the heap ${heapTotal}`);
    assert.ok(s.value('nodejs_heap_space_size_used_bytes{space="old"}') > 0, 'old space in use');
    assert.match(s.text, /^# TYPE process_resident_memory_bytes gauge$/m);
    assert.match(s.text, /^# TYPE process_cpu_user_seconds_total counter$/m);
    await a.device.close();
  });

  it('answers only GET/HEAD /metrics and says why it cannot listen, in one line', async () => {
    const net = new MemoryNetwork();
    const a = await host(net, new ManualClock(), '192.0.2.1', 5);
    const metrics = new DeviceMetrics(a.device);
    const base = await serve(metrics);
    assert.equal((await fetch(`${base}/`)).status, 404);
    assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
    const head = await fetch(`${base}/metrics`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    const port = new URL(base).port;
    await assert.rejects(startMetricsServer(metrics, `127.0.0.1:${port}`), (err: Error) => {
      assert.equal(err.message, `cannot serve metrics on 127.0.0.1:${port}: address in use`);
      return true;
    });
    await a.device.close();
  });

  it('parses listen addresses as --metrics takes them', () => {
    assert.deepEqual(parseListenAddress('127.0.0.1:9586'), { host: '127.0.0.1', port: 9586 });
    assert.deepEqual(parseListenAddress('[::1]:9586'), { host: '::1', port: 9586 });
    assert.deepEqual(parseListenAddress('localhost:1'), { host: 'localhost', port: 1 });
    assert.deepEqual(parseListenAddress('9586'), { host: '127.0.0.1', port: 9586 });
    assert.deepEqual(parseListenAddress('[::]:9586'), { host: '::', port: 9586 });
    for (const bad of [':9586', '127.0.0.1', '127.0.0.1:', '127.0.0.1:70000', '::1:9586', 'a b:1', '']) {
      assert.throws(() => parseListenAddress(bad), /^ConfigError: invalid metrics address .*: expected \[HOST:\]PORT, e\.g\. 127\.0\.0\.1:9586$/, bad);
    }
  });
});
