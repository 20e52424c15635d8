/**
 * Half-close orders through every relay (issue 11 §1): no byte a writer handed over is lost to a
 * graceful close, whichever side ends first, through SOCKS5, HTTP CONNECT, a TCP forward, a
 * reverse TCP forward and connect(), with SHA-256 over multi-MB transfers, clean and with loss,
 * reordering and duplication on the memory network. Then Netstack.close() (drains, bounded,
 * clear error) and destroy() (RST at once).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { ConnectOptions, Netstack } from '../../src/netstack/api.ts';
import { forwardTcp } from '../../src/netstack/forward.ts';
import { startHttpProxy } from '../../src/netstack/http-proxy.ts';
import type { TunnelSocket } from '../../src/netstack/socket.ts';
import { startSocks5 } from '../../src/netstack/socks5.ts';
import { describeResult, dialProxy, impair, makeRig, ORDERS, PATHS, transfer } from './halfclose-rig.ts';
import type { Rig } from './halfclose-rig.ts';
import { makePair } from './helpers.ts';

const ALICE = '192.0.2.1';

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Collects what `s` reads until its end; `null` if it does not end within `ms`. */
function collect(s: Duplex): { data: () => Buffer; ended: (ms: number) => Promise<boolean> } {
  const chunks: Buffer[] = [];
  let ended = false;
  let wake: (() => void) | null = null;
  s.on('data', (c: Buffer) => chunks.push(c));
  s.on('end', () => { ended = true; wake?.(); });
  s.on('error', () => {});
  return {
    data: () => Buffer.concat(chunks),
    ended: async (ms) => {
      if (!ended) await Promise.race([new Promise<void>((r) => { wake = r; }), sleep(ms)]);
      return ended;
    },
  };
}

/**
 * The reported case, made deterministic: bob's server ends its side at once; the client waits
 * for that end; then, with alice → bob cut off, it writes small pieces until the relay's tunnel
 * socket holds one the stack has no room for (seen through a TunnelNet that keeps the sockets it
 * opens), and ends. The relay reads the end while that piece waits; the host socket then closes.
 * The piece must still arrive, before the FIN.
 */
async function stalledTail(path: 'socks5' | 'http-connect' | 'forward-tcp'): Promise<void> {
  const pair = await makePair();
  const remotes: TunnelSocket[] = [];
  const spy = {
    connect: (o: ConnectOptions) => { const s = pair.alice.connect(o); remotes.push(s); return s; },
    udp: () => pair.alice.udp(),
  };
  const socks = await startSocks5(spy, '127.0.0.1', 0);
  const http = await startHttpProxy(spy, '127.0.0.1', 0);
  const rig: Rig = {
    pair,
    socksPort: (socks.address() as AddressInfo).port,
    httpPort: (http.address() as AddressInfo).port,
    close: async () => {},
  };
  try {
    const port = 4000;
    let received!: ReturnType<typeof collect>;
    const accepted = new Promise<void>((resolve) => {
      pair.bob.listen(port, undefined, { allowHalfOpen: true }).on('connection', (s: Duplex) => {
        received = collect(s);
        s.end();
        resolve();
      });
    });
    let client: Duplex;
    let closeForward = async () => {};
    if (path === 'forward-tcp') {
      const f = await forwardTcp(spy as unknown as Netstack, { bindHost: '127.0.0.1', bindPort: 0, host: '10.0.0.2', hostPort: port });
      closeForward = () => f.close();
      client = net.connect({ host: '127.0.0.1', port: Number(f.listening.split(':').pop()), allowHalfOpen: true });
      await once(client, 'connect');
    } else {
      client = (await dialProxy(rig, path, port)).socket;
    }
    const mine = collect(client);
    client.resume();
    await accepted;
    assert.ok(await mine.ended(10_000), 'the client saw the server end first');
    const remote = remotes[0]!;
    pair.network.filter = (_d, from) => from.address !== ALICE;
    const sent: Buffer[] = [];
    for (let i = 0; remote.writableLength === 0; i++) {
      assert.ok(i < 4096, 'the stack fills up');
      const piece = randomBytes(4096);
      sent.push(piece);
      client.write(piece);
      await sleep(5);
    }
    client.end();
    await once(client, 'close');
    await sleep(200);
    pair.network.filter = () => true;
    assert.ok(await received.ended(20_000), 'the server saw the end of the upload');
    const got = received.data();
    const all = Buffer.concat(sent);
    assert.equal(got.length, all.length, `bytes that arrived before the FIN (${all.length - got.length} missing)`);
    assert.equal(sha(got), sha(all), 'SHA-256 of the upload');
    await closeForward();
  } finally {
    socks.close();
    http.closeAllConnections();
    http.close();
    await pair.close();
  }
}

describe('half-close: the reported upload truncation', () => {
  for (const path of ['socks5', 'http-connect', 'forward-tcp'] as const) {
    it(`${path}: server ends first, the client's last bytes arrive before the FIN`, { timeout: 60_000 }, async () => {
      await stalledTail(path);
    });
  }

  it('connect(): `await net.close()` right after the socket closes still delivers the upload and the FIN', { timeout: 60_000 }, async () => {
    const rig = await makeRig();
    // A 16 MB/s bottleneck: the stack still holds the end of the upload when the socket closes.
    impair(rig.pair.network, { loss: 0, reorder: 0, latency: 1, rate: 16_000 });
    try {
      let received!: ReturnType<typeof collect>;
      const accepted = new Promise<void>((resolve) => {
        rig.pair.bob.listen(4001, undefined, { allowHalfOpen: true }).on('connection', (s: Duplex) => {
          received = collect(s);
          s.end();
          resolve();
        });
      });
      const client = rig.pair.alice.connect({ host: '10.0.0.2', port: 4001, allowHalfOpen: true });
      const mine = collect(client);
      await once(client, 'connect');
      await accepted;
      assert.ok(await mine.ended(10_000), 'the server ended first');
      const upload = randomBytes(8 * 1024 * 1024);
      client.end(upload);
      await once(client, 'close');
      await rig.pair.alice.close();
      assert.ok(await received.ended(20_000), 'the FIN arrived');
      const got = received.data();
      assert.equal(got.length, upload.length, 'bytes delivered');
      assert.equal(sha(got), sha(upload), 'SHA-256 of the upload');
    } finally {
      await rig.close();
    }
  });
});

describe('half-close: every order through every relay, hashed', () => {
  const MB = 1024 * 1024;
  let clean: Rig;
  let lossy: Rig;
  before(async () => {
    // Bottleneck links: the relays' queues fill in front of the tunnel, where the truncation was.
    clean = await makeRig();
    impair(clean.pair.network, { loss: 0, reorder: 0, latency: 1, rate: 8000 });
    lossy = await makeRig({ options: { stack: { tcpSendBuffer: 64 * 1024 } } });
    impair(lossy.pair.network, { loss: 0.01, reorder: 0.03, dup: 0.005, delayMax: 8, latency: 2, rate: 4000, seed: 11 });
  });
  after(async () => { await clean.close(); await lossy.close(); });

  for (const path of PATHS) {
    for (const order of ORDERS) {
      it(`${path}, ${order}: 4 MiB up and 1 MiB down, clean and with loss/reordering/duplication`, { timeout: 120_000 }, async () => {
        const download = order === 'server-first' ? 0 : MB;
        const r1 = await transfer(clean, { path, order, upload: 4 * MB, download }, 60_000);
        assert.ok(r1.ok, describeResult(r1));
        assert.equal(r1.uploadReceived.sha, r1.uploadSent.sha, 'upload hash');
        // The server reads slowly too: the queues in front of it fill (the host side, for reverse).
        const r2 = await transfer(lossy, { path, order, upload: 2 * MB + 12345, download: download && download + 777, readRate: 3000 }, 90_000);
        assert.ok(r2.ok, `lossy: ${describeResult(r2)}`);
        assert.equal(r2.downloadReceived.sha, r2.downloadSent.sha, 'download hash');
      });
    }
  }
});

describe('Netstack.close() and destroy()', () => {
  it('close() fails with ERR_NETSTACK_CLOSE_TIMEOUT when the peer stops acknowledging, and the tunnel still goes down', { timeout: 30_000 }, async () => {
    const rig = await makeRig({ options: { closeTimeoutMs: 300 } });
    try {
      rig.pair.bob.listen(4002, undefined, { allowHalfOpen: true }).on('connection', (s: Duplex) => s.resume());
      const client = rig.pair.alice.connect({ host: '10.0.0.2', port: 4002, allowHalfOpen: true });
      client.on('error', () => {});
      await once(client, 'connect');
      rig.pair.network.filter = () => false;
      client.write(randomBytes(100_000));
      await assert.rejects(rig.pair.alice.close(), (err: NodeJS.ErrnoException) => {
        assert.equal(err.code, 'ERR_NETSTACK_CLOSE_TIMEOUT');
        assert.match(err.message, /1 connection\(s\) had not delivered \d+ byte\(s\) and their FIN within 300 ms/);
        return true;
      });
      assert.ok(client.destroyed, 'the socket is gone');
      assert.throws(() => rig.pair.alice.listen(4003), /the netstack is closed/);
    } finally {
      rig.pair.network.filter = () => true;
      await rig.close().catch(() => {});
    }
  });

  it('close() ends the sockets still open after their queued writes, and waits for delivery', { timeout: 30_000 }, async () => {
    const rig = await makeRig();
    try {
      const got: ReturnType<typeof collect>[] = [];
      rig.pair.bob.listen(4004, undefined, { allowHalfOpen: true }).on('connection', (s: Duplex) => got.push(collect(s)));
      // A socket the application never ends: close() ends it after what it wrote.
      const open = rig.pair.alice.connect({ host: '10.0.0.2', port: 4004, allowHalfOpen: true });
      await once(open, 'connect');
      const data = randomBytes(3 * 1024 * 1024);
      open.write(data);
      await rig.pair.alice.close();
      while (got.length < 1) await sleep(5);
      assert.ok(await got[0]!.ended(10_000), 'ended by close()');
      assert.equal(sha(got[0]!.data()), sha(data), 'everything written arrived first');

      assert.throws(() => rig.pair.alice.listen(4005), /the netstack is closed/);
    } finally {
      // bob's side is still open towards a tunnel that is gone: nothing to drain there.
      await rig.pair.bob.destroy();
      await rig.close();
    }
  });

  it('close() acknowledges a FIN the peer sends after ours, so a peer closing at the same time settles too', { timeout: 30_000 }, async () => {
    const rig = await makeRig({ options: { closeTimeoutMs: 1500 } });
    try {
      // bob ends his side 300 ms after alice's FIN: alice is in FIN-WAIT-2 meanwhile.
      rig.pair.bob.listen(4006, undefined, { allowHalfOpen: true }).on('connection', (s: Duplex) => {
        s.resume();
        s.on('end', () => { setTimeout(() => s.end(), 300); });
      });
      const client = rig.pair.alice.connect({ host: '10.0.0.2', port: 4006, allowHalfOpen: true });
      await once(client, 'connect');
      client.resume();
      const aliceClosed = rig.pair.alice.close();
      await sleep(100);
      const bobClosed = rig.pair.bob.close();
      // Were alice's tunnel gone once her FIN was acknowledged, bob's FIN would go unanswered.
      await aliceClosed;
      await bobClosed;
    } finally {
      await rig.close().catch(() => {});
    }
  });

  /**
   * bob ends first and is in TIME-WAIT once alice's last data and FIN arrive; his ACK of them is
   * lost. Returns the pair and alice's connection (her socket destroyed: it lingers in LAST-ACK).
   */
  async function lastAckLost(options?: { closeTimeoutMs: number }) {
    const pair = await makePair({ options });
    await pair.alice.ping('10.0.0.2', { timeoutMs: 10_000 });
    const accepted = once(pair.bob.listen(4009), 'connection');
    const client = pair.alice.connect({ host: '10.0.0.2', port: 4009, allowHalfOpen: true });
    client.resume();
    const [server] = await accepted as [TunnelSocket];
    let got = 0;
    server.on('data', (d: Buffer) => { got += d.length; });
    const serverEnded = once(server, 'end');
    const clientEnded = once(client, 'end');
    server.end();
    await clientEnded;
    pair.network.filter = (_d, from) => from.address !== '192.0.2.2';
    client.end(Buffer.alloc(4000, 7)); // within the initial window: no ACK needed to send it all
    await serverEnded;
    assert.equal(got, 4000);
    client.destroy();
    return pair;
  }

  it('a tunnel in TIME-WAIT that goes down leaves its peer\'s close waiting for the lost ACK, and the pair harness waits for it', { timeout: 30_000 }, async () => {
    // The tunnels alone: bob is settled and goes down at once; alice retransmits into nothing.
    const bare = await lastAckLost({ closeTimeoutMs: 1500 });
    bare.network.filter = () => true;
    const [a, b] = await Promise.allSettled([bare.alice.close(), bare.bob.close()]);
    assert.equal(b.status, 'fulfilled');
    assert.equal(a.status, 'rejected');
    assert.equal((a.reason as NodeJS.ErrnoException).code, 'ERR_NETSTACK_CLOSE_TIMEOUT');
    assert.match((a.reason as Error).message, /1 connection\(s\) had not delivered 4000 byte\(s\)/);
    // The harness every netstack test closes with: both stay up until the retransmission is answered.
    const pair = await lastAckLost();
    await pair.close();
  });

  it('close() does not wait on a peer that keeps its half open beyond the grace, and is no error then', { timeout: 30_000 }, async () => {
    const rig = await makeRig();
    try {
      rig.pair.bob.listen(4007, undefined, { allowHalfOpen: true }).on('connection', (s: Duplex) => s.resume());
      const client = rig.pair.alice.connect({ host: '10.0.0.2', port: 4007, allowHalfOpen: true });
      await once(client, 'connect');
      client.resume();
      await rig.pair.alice.close();
      assert.ok(client.destroyed, 'the half-open socket is gone');
    } finally {
      await rig.pair.bob.destroy();
      await rig.close().catch(() => {});
    }
  });

  it('destroy() resets every connection: the peer gets ECONNRESET, not a clean end', { timeout: 30_000 }, async () => {
    const rig = await makeRig();
    try {
      let peer!: Duplex;
      const accepted = new Promise<void>((resolve) => {
        rig.pair.bob.listen(4006, undefined, { allowHalfOpen: true }).on('connection', (s: Duplex) => { peer = s; resolve(); });
      });
      const client = rig.pair.alice.connect({ host: '10.0.0.2', port: 4006, allowHalfOpen: true });
      await once(client, 'connect');
      await accepted;
      let ended = false;
      peer.on('end', () => { ended = true; });
      peer.resume();
      const failed = once(peer, 'error');
      await rig.pair.alice.destroy();
      const [err] = (await failed) as [NodeJS.ErrnoException];
      assert.equal(err.code, 'ECONNRESET');
      assert.equal(ended, false, 'no clean end');
    } finally {
      await rig.close();
    }
  });
});
