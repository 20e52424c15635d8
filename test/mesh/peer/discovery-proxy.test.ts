/**
 * `wireweave proxy` with a discovery config (only a private key and [Mesh] Network): in process,
 * against a hub on loopback and a meshNetstack() member named bob. The proxy derives its
 * addresses, learns bob through the hub, and a SOCKS5 CONNECT to the host name `bob` reaches
 * bob's echo service: names resolve before the tunnel's DNS.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { proxy } from '../../../src/cli/proxy.ts';
import type { RunOptions } from '../../../src/cli/proxy.ts';
import { encodeBase64, generatePrivateKey } from '../../../src/core/keys.ts';
import { systemRng } from '../../../src/core/rng.ts';
import { nodeCrypto } from '../../../src/crypto/node.ts';
import { startHubServer } from '../../../src/mesh/hub/ws-server.ts';
import type { HubServer } from '../../../src/mesh/hub/ws-server.ts';
import { meshNetstack, meshStatus } from '../../../src/mesh/peer/netstack.ts';
import type { Netstack } from '../../../src/netstack/api.ts';
import { until } from '../../support/until.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => { for (const c of cleanups.reverse()) await c(); });

function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  return { stream: new Writable({ write(c: Buffer, _e, cb) { chunks.push(c.toString()); cb(); } }), text: () => chunks.join('') };
}


describe('proxy with discovery', () => {
  it('a SOCKS5 CONNECT to a member by name', { timeout: 40_000 }, async () => {
    const hub: HubServer = await startHubServer({ host: '127.0.0.1', port: 0, crypto: nodeCrypto, rng: systemRng });
    cleanups.push(() => hub.close());
    const conf = (name: string) => `[Interface]\nPrivateKey = ${encodeBase64(generatePrivateKey(systemRng))}\n\n[Mesh]\nHub = ${hub.url}\nNetwork = lab\nNetworkSecret = the proxy test's secret\nName = ${name}\n`;
    const bob: Netstack = await meshNetstack(conf('bob'));
    cleanups.push(() => bob.close().catch(() => bob.destroy()));
    bob.listen(7, undefined, { allowHalfOpen: true }).on('connection', (s) => { s.on('error', () => {}); s.pipe(s); });

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ww-disc-proxy-'));
    cleanups.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'alice.conf');
    fs.writeFileSync(file, conf('alice'), { mode: 0o600 });
    const err = sink();
    const stop = new AbortController();
    let info: Parameters<NonNullable<RunOptions['onReady']>>[0] | undefined;
    const done = proxy([file, '--socks5', '127.0.0.1:0', '--no-control'], { stdout: sink().stream, stderr: err.stream }, {
      signal: stop.signal, env: { XDG_RUNTIME_DIR: dir }, onReady: (i) => { info = i; },
    });
    cleanups.push(async () => { stop.abort(); await done; });
    await until('the proxy to listen', () => info !== undefined || /proxy: /.test(err.text()));
    assert.ok(info, err.text());
    assert.match(err.text(), /tunnel started: 100\.96\.\d+\.\d+, fd[0-9a-f:]+ /);
    assert.match(err.text(), /network lab\)/);
    await until('bob to learn alice', () => meshStatus(bob)?.peers[0]?.discovered?.addresses.length === 2);
    await until('alice to learn bob', () => info!.tunnel.device.getState().peers[0]?.allowedIps.length === 2);

    const port = Number(/:(\d+)$/.exec(info.listening.socks5 ?? Object.values(info.listening)[0]!)![1]);
    const s = net.connect({ host: '127.0.0.1', port });
    await once(s, 'connect');
    let buf = Buffer.alloc(0);
    s.on('data', (c: Buffer) => { buf = Buffer.concat([buf, c]); });
    s.write(Buffer.from([5, 1, 0]));
    // CONNECT to a domain name (ATYP 3): the proxy resolves it, here to a member.
    s.write(Buffer.concat([Buffer.from([5, 1, 0, 3, 3]), Buffer.from('bob'), Buffer.from([0, 7])]));
    // Method reply (2 bytes), then the CONNECT reply (10 bytes for an IPv4 bound address).
    await until('the CONNECT reply', () => buf.length >= 12 || s.destroyed);
    assert.equal(buf[3], 0, `SOCKS5 reply ${buf[3]}: ${err.text()}`);
    buf = Buffer.alloc(0);
    s.write('hello bob');
    await until('the echo', () => buf.toString() === 'hello bob');
    s.destroy();
  });
});
