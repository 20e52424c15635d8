/**
 * A dial to a peer that never answers fails within a bounded, configurable time: connect()
 * with ETIMEDOUT, SOCKS5 with reply 6 (TTL expired), HTTP CONNECT with 504, where before the
 * client waited out the stack's SYN retries (over a minute) without any reply.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { ManualClock } from '../../src/device/clock.ts';
import { armConnectTimeout } from '../../src/netstack/connect-timeout.ts';
import { startHttpProxy } from '../../src/netstack/http-proxy.ts';
import { encodeAddress, startSocks5 } from '../../src/netstack/socks5.ts';
import { makePair } from './helpers.ts';
import type { Pair } from './helpers.ts';

class FakeSocket extends EventEmitter {
  connecting = true;
  destroyed = false;
  error: (Error & { code?: string }) | undefined;
  destroy(error?: Error): void { this.destroyed = true; this.error = error; this.emit('close'); }
}

describe('armConnectTimeout (virtual clock)', () => {
  it('fails a socket still connecting at the deadline with ETIMEDOUT, not before', async () => {
    const clock = new ManualClock();
    const s = new FakeSocket();
    armConnectTimeout(s, clock, 5000, '10.0.0.2', 80);
    await clock.advance(4999);
    assert.equal(s.destroyed, false, 'still waiting before the deadline');
    await clock.advance(1);
    assert.equal(s.error?.code, 'ETIMEDOUT');
    assert.match(s.error!.message, /10\.0\.0\.2:80 timed out after 5000 ms/);
  });
  it('leaves a socket alone once it connected', async () => {
    const clock = new ManualClock();
    const s = new FakeSocket();
    armConnectTimeout(s, clock, 5000, 'db', 5432);
    s.connecting = false;
    s.emit('connect');
    await clock.advance(60_000);
    assert.equal(s.destroyed, false);
  });
  it('arms nothing for 0 (the stack\'s own retries only)', async () => {
    const clock = new ManualClock();
    const s = new FakeSocket();
    armConnectTimeout(s, clock, 0, 'db', 5432);
    await clock.advance(600_000);
    assert.equal(s.destroyed, false);
  });
});

describe('dialling a peer that never answers', { timeout: 60_000 }, () => {
  let pair: Pair;
  let socksPort: number, httpPort: number;
  const servers: net.Server[] = [];
  before(async () => {
    // Short timeouts keep the test quick; the default is 10 s.
    pair = await makePair({ options: { connectTimeoutMs: 300 } });
    // bob is gone: every datagram to him is lost, no handshake ever completes.
    pair.network.filter = (_d, _from, to) => to.text !== '192.0.2.2:51820';
    const s = await startSocks5(pair.alice, '127.0.0.1', 0);
    const h = await startHttpProxy(pair.alice, '127.0.0.1', 0);
    servers.push(s, h);
    socksPort = (s.address() as AddressInfo).port;
    httpPort = (h.address() as AddressInfo).port;
  });
  after(async () => {
    for (const s of servers) s.close();
    await pair.alice.destroy();
    await pair.bob.destroy();
  });

  it('connect() fails with ETIMEDOUT', async () => {
    const c = pair.alice.connect({ host: '10.0.0.2', port: 80 });
    const [err] = (await once(c, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ETIMEDOUT');
    assert.equal(err.syscall, 'connect');
  });

  it('a per-connection timeoutMs overrides the tunnel\'s', async () => {
    const c = pair.alice.connect({ host: '10.0.0.2', port: 81, timeoutMs: 50 });
    const [err] = (await once(c, 'error')) as [Error];
    assert.match(err.message, /after 50 ms/);
  });

  it('SOCKS5 CONNECT gets reply 6 (TTL expired)', async () => {
    const s = net.connect({ host: '127.0.0.1', port: socksPort });
    await once(s, 'connect');
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.write(Buffer.from([5, 1, 0]));
    s.write(Buffer.concat([Buffer.from([5, 1, 0]), encodeAddress('10.0.0.2', 80)]));
    await once(s, 'close');
    const all = Buffer.concat(chunks);
    assert.deepEqual([...all.subarray(0, 2)], [5, 0], 'method reply');
    assert.equal(all[2], 5, 'version of the request reply');
    assert.equal(all[3], 6, 'reply 6: TTL expired (timed out)');
  });

  it('HTTP CONNECT gets 504 Gateway Timeout', async () => {
    const s = net.connect({ host: '127.0.0.1', port: httpPort });
    await once(s, 'connect');
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => { text += c; });
    s.write('CONNECT 10.0.0.2:80 HTTP/1.1\r\nHost: 10.0.0.2:80\r\n\r\n');
    await once(s, 'close');
    assert.match(text, /^HTTP\/1\.1 504 /);
    assert.match(text, /timed out/);
  });

  it('a plain http:// request through the HTTP proxy gets 504 Gateway Timeout', async () => {
    const s = net.connect({ host: '127.0.0.1', port: httpPort });
    await once(s, 'connect');
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => { text += c; });
    s.write('GET http://10.0.0.2/ HTTP/1.1\r\nHost: 10.0.0.2\r\nConnection: close\r\n\r\n');
    await once(s, 'close');
    assert.match(text, /^HTTP\/1\.1 504 /);
  });
});
