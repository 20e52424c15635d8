/**
 * The NATS edge without a NATS server: `--nats` URLs are checked, and a hub whose NATS cluster
 * does not answer still serves its own clients, says so in its log and its metrics, and stops
 * promptly. (With a real cluster: test/mesh/nats.interop.test.ts.)
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { main } from '../../../src/cli/main.ts';
import { nodeCrypto as crypto } from '../../../src/crypto/node.ts';
import { systemRng } from '../../../src/core/rng.ts';
import { generatePrivateKey } from '../../../src/core/keys.ts';
import { systemClock } from '../../../src/device/clock.ts';
import { startHubServer } from '../../../src/mesh/hub/ws-server.ts';
import type { HubServer } from '../../../src/mesh/hub/ws-server.ts';
import { NatsFederation, parseNatsServers } from '../../../src/mesh/hub/nats.ts';
import { MeshHubClient } from '../../../src/mesh/client/hub-client.ts';
import { nodeTimers, nodeWebSocket } from '../../../src/mesh/client/node.ts';
import { until as poll } from '../../support/until.ts';

const until = (what: string, cond: () => boolean, ms = 10_000): Promise<boolean> => poll(what, cond, ms, 10);

const cleanup: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});


describe('hub on NATS, without NATS', () => {
  it('checks --nats URLs', () => {
    assert.deepEqual(parseNatsServers('nats://10.0.0.1:4222, nats://h2:4222'), ['nats://10.0.0.1:4222', 'nats://h2:4222']);
    assert.deepEqual(parseNatsServers('nats://localhost'), ['nats://localhost']);
    for (const bad of ['', ',', 'http://h:4222', 'nats://h:4222/x', 'h:4222', 'nats://user:secret@h:4222']) {
      assert.throws(() => parseNatsServers(bad), { code: 'MESH_NATS_URL' }, bad);
    }
  });

  it('wireweave hub --nats with a bad URL is a one-line error that does not echo credentials', async () => {
    const out = new PassThrough(), err = new PassThrough();
    let e = '';
    err.on('data', (d) => { e += d; });
    const code = await main(['hub', '--listen', '127.0.0.1:0', '--nats', 'nats://u:hunter2@h:4222'], { stdin: Readable.from(['']), stdout: out, stderr: err });
    assert.equal(code, 1);
    assert.equal(e, 'wireweave: hub: --nats: credentials in the URL are not supported; give them with --nats-token FILE or --nats-creds FILE\n');
  });

  it('--nats-token and --nats-creds: checked, one-line errors that name the file, never its contents', async () => {
    const dir = mkdtempSync(join(tmpdir(), `ww-nats-auth-${process.pid}-`));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = (name: string, text: string) => { const f = join(dir, name); writeFileSync(f, text, { mode: 0o600 }); return f; };
    const token = file('token', 'hunter2-token\n');
    const cases: [string[], RegExp][] = [
      [['--nats-token', token], /^wireweave: hub: --nats-token and --nats-creds need --nats\n$/],
      [['--nats', 'nats://127.0.0.1:1', '--nats-token', token, '--nats-creds', token], /^wireweave: hub: give one of --nats-token and --nats-creds\n$/],
      [['--nats', 'nats://127.0.0.1:1', '--nats-token', file('two', 'hunter2 words')], /^wireweave: hub: --nats-token \S+two: expected one token on one line\n$/],
      [['--nats', 'nats://127.0.0.1:1', '--nats-creds', token], /^wireweave: hub: --nats-creds \S+token: not a NATS \.creds file/],
      [['--nats', 'nats://127.0.0.1:1', '--nats-token', join(dir, 'missing')], /^wireweave: hub: --nats-token \S+missing: no such file\n$/],
    ];
    for (const [args, want] of cases) {
      const err = new PassThrough();
      let e = '';
      err.on('data', (d) => { e += d; });
      const code = await main(['hub', '--listen', '127.0.0.1:0', ...args], { stdin: Readable.from(['']), stdout: new PassThrough(), stderr: err });
      assert.equal(code, 1, args.join(' '));
      assert.match(e, want);
      assert.doesNotMatch(e, /hunter2/, 'the secret is never echoed');
    }
  });

  it('a hub whose NATS cluster is unreachable serves its own clients and reports it', async () => {
    // A port that refuses: bound, then closed.
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as { port: number }).port;
    await new Promise((r) => s.close(r));

    const logs: string[] = [];
    const fleet = new NatsFederation({ servers: [`nats://127.0.0.1:${port}`], now: systemClock.now, log: (l) => logs.push(l) });
    const server: HubServer = await startHubServer({ host: '127.0.0.1', port: 0, crypto, rng: systemRng, clock: systemClock, federation: fleet.federation });
    fleet.start();
    cleanup.push(() => server.close(100), () => fleet.close());
    await until('the log to say so', () => logs.some((l) => /cannot reach .*serving local clients only/.test(l)));

    let got = 0;
    const keyB = crypto.x25519PrivateKey(generatePrivateKey(systemRng));
    const mk = (privateKey = crypto.x25519PrivateKey(generatePrivateKey(systemRng)), packet?: () => void) => {
      const c = new MeshHubClient({
        crypto, rng: systemRng, privateKey, hubs: [server.url],
        connect: nodeWebSocket, timers: nodeTimers, now: Date.now, events: packet ? { packet } : {},
      });
      c.start();
      cleanup.push(() => c.stop());
      return c;
    };
    const a = mk(), b = mk(keyB, () => { got++; });
    await until('both connected', () => a.connected && b.connected);
    a.sendPacket(keyB.publicKey, Uint8Array.of(1));
    await until('a local datagram', () => got === 1);
    const metrics = await (await fetch(`http://127.0.0.1:${server.address.port}/metrics`)).text();
    assert.match(metrics, /^wireweave_hub_federation_up 0$/m);
    assert.match(metrics, /^wireweave_hub_clients 2$/m);
    assert.equal(fleet.connectedServer, null);

    // close() ends the retry loop (else this file's process would not exit).
    await fleet.close();
    assert.equal(fleet.federation.up, false);
  });
});
