/**
 * The proxies when the tunnel closes under a CONNECT still in progress (issue 11 §1, the audit
 * of the stream glue): Netstack.close() resets a connection that never got through without an
 * error event, and the proxies must still answer the client (SOCKS5 failure reply, HTTP 502) and
 * close, not leave it waiting forever.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConnectOptions } from '../../src/netstack/api.ts';
import { startHttpProxy } from '../../src/netstack/http-proxy.ts';
import type { TunnelSocket } from '../../src/netstack/socket.ts';
import { startSocks5 } from '../../src/netstack/socks5.ts';
import { makePair } from './helpers.ts';
import { makeRig } from './halfclose-rig.ts';

/** Everything `s` reads until it closes. */
function readToClose(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.on('error', () => {});
  return new Promise((resolve) => s.once('close', () => resolve(Buffer.concat(chunks))));
}

describe('proxies: the tunnel closing under a CONNECT in progress', () => {
  it('SOCKS5 replies with a failure and HTTP CONNECT with 502, and both close', { timeout: 30_000 }, async () => {
    // SYNs never arrive (alice's datagrams are dropped) and the connect timeout is long: only
    // the tunnel closing ends these CONNECTs.
    const pair = await makePair({ options: { closeTimeoutMs: 200, connectTimeoutMs: 600_000 } });
    pair.network.filter = (_d, from) => from.address !== '192.0.2.1';
    const opened: TunnelSocket[] = [];
    const spy = {
      connect: (o: ConnectOptions) => { const s = pair.alice.connect(o); opened.push(s); return s; },
      udp: () => pair.alice.udp(),
    };
    const socks = await startSocks5(spy, '127.0.0.1', 0);
    const http = await startHttpProxy(spy, '127.0.0.1', 0);
    try {
      const s = net.connect({ host: '127.0.0.1', port: (socks.address() as AddressInfo).port });
      const socksGot = readToClose(s);
      s.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 10, 0, 0, 2, 0, 80]));
      const h = net.connect({ host: '127.0.0.1', port: (http.address() as AddressInfo).port });
      const httpGot = readToClose(h);
      h.write('CONNECT 10.0.0.2:80 HTTP/1.1\r\nHost: 10.0.0.2:80\r\n\r\n');
      while (opened.length < 2) await sleep(5);
      await pair.alice.close().catch(() => {}); // ERR_NETSTACK_CLOSE_TIMEOUT: they never connected
      const sr = await socksGot;
      assert.equal(sr.length, 12, 'method choice and a reply');
      assert.notEqual(sr[3], 0, 'the SOCKS5 reply is a failure');
      assert.match((await httpGot).toString('latin1'), /^HTTP\/1\.1 502 /, 'HTTP CONNECT answered 502');
    } finally {
      socks.close();
      http.closeAllConnections();
      http.close();
      await pair.bob.destroy();
    }
  });
});

describe('HTTP proxy: forwarding a body delimited by the close', () => {
  /** GET url through the HTTP proxy on `port`: the body, and whether the response completed. */
  function get(port: number, url: string): Promise<{ body: Buffer; complete: boolean; error?: string }> {
    return new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: url, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        let error: string | undefined;
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e: Error) => { error = e.message; });
        res.on('close', () => resolve({ body: Buffer.concat(chunks), complete: res.complete, error }));
      });
      req.on('error', (e: Error) => resolve({ body: Buffer.alloc(0), complete: false, error: e.message }));
    });
  }

  it('passes a multi-MB close-delimited body on whole, and a reset one on as cut', { timeout: 60_000 }, async () => {
    const rig = await makeRig();
    try {
      const body = randomBytes(3 * 1024 * 1024);
      let cutNext = false;
      rig.pair.bob.listen(8201, undefined, { allowHalfOpen: true }).on('connection', (s: TunnelSocket) => {
        s.once('data', () => {
          const head = Buffer.from('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n');
          s.on('error', () => {});
          if (cutNext) {
            s.write(Buffer.concat([head, body.subarray(0, 256 * 1024)]));
            const cut = () => { if (s.bufferedAmount === 0) s.resetAndDestroy(); else setTimeout(cut, 5); };
            setTimeout(cut, 5);
          } else {
            s.end(Buffer.concat([head, body]));
          }
        });
      });
      const whole = await get(rig.httpPort, 'http://10.0.0.2:8201/whole');
      assert.equal(whole.complete, true, `complete (${whole.error ?? 'no error'})`);
      assert.equal(createHash('sha256').update(whole.body).digest('hex'), createHash('sha256').update(body).digest('hex'), 'SHA-256 of the body');
      cutNext = true;
      const cut = await get(rig.httpPort, 'http://10.0.0.2:8201/cut');
      assert.equal(cut.complete, false, 'a cut body reaches the client as a cut response');
      assert.ok(cut.body.length < body.length, 'and short');
    } finally {
      await rig.close();
    }
  });
});
