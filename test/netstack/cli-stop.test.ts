/**
 * How `wireweave forward`/`proxy` stop (issue 11 §1): the first stop delivers what the open
 * connections hold (Netstack.close(), bounded by closeTimeoutMs) and does not wait for host
 * clients that keep their connections open; a second stop during that drain takes the tunnel
 * down at once (RST). In process, with the stop signals as AbortSignals (SIGINT/SIGTERM in the
 * command) and the tunnel on a memory network.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { forward } from '../../src/cli/forward.ts';
import { MemoryBind, MemoryNetwork } from '../../src/device/bind-memory.ts';
import { netstack } from '../../src/netstack/api.ts';
import type { Netstack } from '../../src/netstack/api.ts';
import { keyPair } from './helpers.ts';

function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  return { stream: new Writable({ write(c: Buffer, _e, cb) { chunks.push(c.toString()); cb(); } }), text: () => chunks.join('') };
}

/** Resolves on 'close' (events.once would reject on the 'error' before it). */
function closed(s: net.Socket): Promise<void> {
  return s.destroyed ? Promise.resolve() : new Promise((resolve) => s.once('close', () => resolve()));
}

async function until(ok: () => boolean): Promise<void> {
  while (!ok()) await sleep(5);
}

describe('forward/proxy: stopping', () => {
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), `ww-stop-${process.pid}-`)); });
  after(() => { fs.rmSync(dir, { recursive: true, force: true }); });

  /** bob on a memory network, and `forward` for alice with a TCP forward to bob's port 7. */
  async function start(closeTimeoutMs: number): Promise<{
    network: MemoryNetwork; bob: Netstack; accepted: Promise<Duplex>; port: number; err: ReturnType<typeof sink>;
    stop: AbortController; stopNow: AbortController; exited: Promise<number>;
  }> {
    const network = new MemoryNetwork();
    const a = keyPair(), b = keyPair();
    const conf = path.join(dir, `stop${Math.floor(Math.random() * 1e6)}.conf`);
    fs.writeFileSync(conf, `[Interface]\nPrivateKey = ${a.priv}\nAddress = 10.0.0.1/24\n\n[Peer]\nPublicKey = ${b.pub}\nAllowedIPs = 10.0.0.0/24\nEndpoint = 192.0.2.2:51820\n`, { mode: 0o600 });
    const bob = await netstack(`[Interface]\nPrivateKey = ${b.priv}\nListenPort = 51820\nAddress = 10.0.0.2/24\n\n[Peer]\nPublicKey = ${a.pub}\nAllowedIPs = 10.0.0.1/32\n`, { bind: new MemoryBind(network, '192.0.2.2') });
    const accepted = new Promise<Duplex>((resolve) => {
      bob.listen(7, undefined, { allowHalfOpen: true }).on('connection', (s: Duplex) => { s.on('error', () => {}); resolve(s); });
    });
    const stop = new AbortController();
    const stopNow = new AbortController();
    const err = sink();
    let listening: Record<string, string> = {};
    let exited!: Promise<number>;
    await new Promise<void>((resolve) => {
      exited = forward([conf, '--tcp', '0:10.0.0.2:7'], { stdout: sink().stream, stderr: err.stream }, {
        signal: stop.signal,
        stopNowSignal: stopNow.signal,
        env: { XDG_RUNTIME_DIR: dir },
        netstack: { bind: new MemoryBind(network, '192.0.2.1'), closeTimeoutMs },
        onReady: (info) => { listening = info.listening; resolve(); },
      });
    });
    const port = Number(Object.values(listening)[0]!.split(':').pop());
    return { network, bob, accepted, port, err, stop, stopNow, exited };
  }

  it('the first stop does not wait for a host client that keeps its connection open', { timeout: 30_000 }, async () => {
    const r = await start(10_000);
    try {
      const client = net.connect({ host: '127.0.0.1', port: r.port });
      client.on('error', () => {});
      const peer = await r.accepted;
      peer.resume();
      client.write('hello');
      r.stop.abort();
      assert.equal(await r.exited, 0, `exit status; stderr: ${r.err.text()}`);
      assert.match(r.err.text(), /stopping: delivering what the open connections hold/);
      await closed(client);
    } finally {
      await r.bob.destroy();
    }
  });

  it('a second stop during the drain takes the tunnel down at once, resetting the connections', { timeout: 30_000 }, async () => {
    // A drain that would last a minute: only the second stop can end it within the test.
    const r = await start(60_000);
    try {
      const client = net.connect({ host: '127.0.0.1', port: r.port, allowHalfOpen: true });
      let clientError: string | undefined;
      client.on('error', (e: NodeJS.ErrnoException) => { clientError = e.code; });
      const peer = await r.accepted;
      let peerEnded = false;
      peer.on('end', () => { peerEnded = true; });
      peer.resume();
      // alice can no longer reach bob: what the client sends stays in alice's stack.
      r.network.filter = (_d, from) => from.address !== '192.0.2.1';
      client.end(randomBytes(512 * 1024));
      r.stop.abort();
      await until(() => /stopping: delivering/.test(r.err.text()));
      await sleep(100);
      r.stopNow.abort();
      assert.equal(await r.exited, 0, `exit status; stderr: ${r.err.text()}`);
      assert.match(r.err.text(), /stopping at once: resetting the connections still open/);
      await closed(client);
      assert.equal(clientError, 'ECONNRESET', 'the host client is reset, not ended');
      assert.equal(peerEnded, false, 'bob never saw a clean end of a cut upload');
    } finally {
      await r.bob.destroy();
    }
  });
});
