/**
 * fetch through the tunnel at the edges of a connection's life (issue 11 §1, the audit of the
 * stream glue): a body delimited by the server's close arrives whole however late the close
 * comes behind the data; a multi-MB upload arrives whole; a body cut by a reset or by a FIN
 * before its Content-Length fails the read instead of ending it short. The server is a raw
 * TunnelSocket on bob so that its close follows its last write at once, on a bottleneck link
 * with loss, reordering and duplication.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { TunnelSocket } from '../../src/netstack/socket.ts';
import { impair, makeRig } from './halfclose-rig.ts';
import type { Rig } from './halfclose-rig.ts';

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Reads a request from `s`: its head, then Content-Length bytes of body. */
function readRequest(s: TunnelSocket): Promise<{ head: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const i = buf.indexOf('\r\n\r\n');
      if (i < 0) return;
      const head = buf.subarray(0, i).toString('latin1');
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length - (i + 4) < length) return;
      s.removeAllListeners('data');
      resolve({ head, body: buf.subarray(i + 4, i + 4 + length) });
    });
    s.on('error', reject);
  });
}

/** bob answers each request on `port` with what `answer` does to the raw socket. */
function serve(rig: Rig, port: number, answer: (s: TunnelSocket, req: { head: string; body: Buffer }) => void): void {
  rig.pair.bob.listen(port, undefined, { allowHalfOpen: true }).on('connection', (s: TunnelSocket) => {
    readRequest(s).then((req) => answer(s, req), () => s.destroy());
  });
}

describe('fetch through the tunnel: close and errors around the body', () => {
  let rig: Rig;
  // A 16 MB/s bottleneck: the server's close comes while most of its body is still queued.
  const link = { loss: 0.01, reorder: 0.02, dup: 0.01, latency: 1, rate: 16_000, seed: 11 };
  before(async () => {
    rig = await makeRig();
    impair(rig.pair.network, link);
  });
  after(async () => { await rig.close(); });

  it('a multi-MB body ended by the server closing right after its last write arrives whole', { timeout: 60_000 }, async () => {
    const body = randomBytes(6 * 1024 * 1024);
    // No Content-Length: the end of the body is the FIN, which must come after every byte.
    serve(rig, 8101, (s) => s.end(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n'), body])));
    const res = await rig.pair.alice.fetch('http://10.0.0.2:8101/big');
    assert.equal(res.status, 200);
    const got = Buffer.from(await res.arrayBuffer());
    assert.equal(got.length, body.length, 'bytes of the body');
    assert.equal(sha(got), sha(body), 'SHA-256 of the body');
  });

  it('the same with Content-Length, the server destroying its socket as soon as the stack took the body', { timeout: 60_000 }, async () => {
    const body = randomBytes(4 * 1024 * 1024);
    serve(rig, 8102, (s) => {
      s.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`), body]));
      // 'finish': the stack holds every byte, most not yet acknowledged; the connection lingers.
      s.once('finish', () => s.destroy());
    });
    const res = await rig.pair.alice.fetch('http://10.0.0.2:8102/big');
    const got = Buffer.from(await res.arrayBuffer());
    assert.equal(got.length, body.length, 'bytes of the body');
    assert.equal(sha(got), sha(body), 'SHA-256 of the body');
  });

  it('a multi-MB upload arrives whole, and the answer after it', { timeout: 60_000 }, async () => {
    const upload = randomBytes(6 * 1024 * 1024);
    serve(rig, 8103, (s, req) => {
      const digest = sha(req.body);
      s.end(`HTTP/1.1 200 OK\r\nContent-Length: ${digest.length}\r\nConnection: close\r\n\r\n${digest}`);
    });
    const res = await rig.pair.alice.fetch('http://10.0.0.2:8103/up', { method: 'POST', body: upload });
    assert.equal(await res.text(), sha(upload), 'SHA-256 of what the server read');
  });

  it('a close-delimited body cut by a reset fails the read, never ends it short', { timeout: 60_000 }, async (t) => {
    // No loss here: an RST is sent once and never retransmitted, so were it lost, the client
    // (all its data acknowledged, nothing to send) would wait for ever, as over any TCP.
    impair(rig.pair.network, { ...link, loss: 0 });
    t.after(() => { impair(rig.pair.network, link); });
    serve(rig, 8104, (s) => {
      s.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n'), randomBytes(256 * 1024)]));
      // Once the stack has taken it all, cut: the client has a prefix and then an RST.
      const cut = () => { if (s.bufferedAmount === 0) s.resetAndDestroy(); else setTimeout(cut, 5); };
      setTimeout(cut, 5);
    });
    const res = await rig.pair.alice.fetch('http://10.0.0.2:8104/cut');
    assert.equal(res.status, 200);
    await assert.rejects(res.arrayBuffer(), 'a reset body is an error, not a shorter body');
  });

  it('a body that ends (FIN) before its Content-Length fails the read', { timeout: 60_000 }, async () => {
    serve(rig, 8105, (s) => {
      s.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${1024 * 1024}\r\n\r\n`), randomBytes(300 * 1024)]));
    });
    const res = await rig.pair.alice.fetch('http://10.0.0.2:8105/short');
    await assert.rejects(res.arrayBuffer(), 'a premature end is an error');
  });
});
