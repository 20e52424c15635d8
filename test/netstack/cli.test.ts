/**
 * `bin/wireweave forward` and `bin/wireweave proxy` as real child processes (no root): the peer
 * is a netstack in this process on loopback UDP. Checks the subcommand wiring, what the command
 * prints (no key), that traffic flows, and that SIGTERM ends it with status 0.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { netstack } from '../../src/netstack/api.ts';
import type { Netstack } from '../../src/netstack/api.ts';
import { encodeAddress } from '../../src/netstack/socks5.ts';
import { keyPair } from './helpers.ts';

const BIN = fileURLToPath(new URL('../support/wireweave.js', import.meta.url));

function start(args: string[]): { child: ChildProcess; stderr: () => string; waitFor: (re: RegExp) => Promise<RegExpMatchArray> } {
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  const waiters = new Set<() => void>();
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; for (const w of [...waiters]) w(); });
  child.on('exit', () => { for (const w of [...waiters]) w(); });
  return {
    child,
    stderr: () => err,
    waitFor: (re) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timeout waiting for ${re}; stderr: ${err}`)), 20_000);
      const check = () => {
        const m = re.exec(err);
        if (m) { clearTimeout(timer); waiters.delete(check); resolve(m); }
        else if (child.exitCode !== null) { clearTimeout(timer); waiters.delete(check); reject(new Error(`exited ${child.exitCode}: ${err}`)); }
      };
      waiters.add(check);
      check();
    }),
  };
}

async function echoThrough(port: number, text: string): Promise<string> {
  const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  let got = '';
  s.on('data', (d: Buffer) => { got += d.toString(); });
  await once(s, 'connect');
  s.end(text);
  await once(s, 'end');
  s.destroy();
  return got;
}

describe('wireweave forward / proxy as commands', () => {
  let bob: Netstack;
  let dir: string;
  let conf: string;
  const alice = keyPair();

  before(async () => {
    const b = keyPair();
    bob = await netstack(`[Interface]\nPrivateKey = ${b.priv}\nAddress = 10.0.0.2/24\n\n[Peer]\nPublicKey = ${alice.pub}\nAllowedIPs = 10.0.0.1/32\n`);
    bob.listen(7, undefined, { allowHalfOpen: true }).on('connection', (s) => s.pipe(s));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ww-cli-'));
    conf = path.join(dir, 'wg0.conf');
    fs.writeFileSync(conf, `[Interface]\nPrivateKey = ${alice.priv}\nAddress = 10.0.0.1/24\n\n[Peer]\nPublicKey = ${b.pub}\nAllowedIPs = 10.0.0.2/32\nEndpoint = 127.0.0.1:${bob.port}\n`, { mode: 0o600 });
  });
  after(async () => {
    // The children that were bob's peers are gone: a graceful close could only wait for their
    // FIN acknowledgements until closeTimeoutMs (it did once, on a loaded machine). Reset instead.
    await bob.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('forward: says what it does, carries traffic, exits 0 on SIGTERM', async () => {
    const p = start(['forward', conf, '--tcp', '127.0.0.1:0:10.0.0.2:7']);
    const m = await p.waitFor(/TCP forward host 127\.0\.0\.1:(\d+) → tunnel 10\.0\.0\.2:7/);
    assert.equal(await echoThrough(Number(m[1]), 'hello via a child process'), 'hello via a child process', 'echoed');
    p.child.kill('SIGTERM');
    const [code] = (await once(p.child, 'exit')) as [number];
    assert.equal(code, 0, `exit status; stderr: ${p.stderr()}`);
    assert.match(p.stderr(), /tunnel started: 10\.0\.0\.1 via UDP port \d+, 1 peer; waiting for a handshake/, 'tunnel line');
    assert.ok(!p.stderr().includes(alice.priv), 'no private key printed');
  });

  it('proxy: SOCKS5 CONNECT through the child, and a one-line error for a bad config', async () => {
    const p = start(['proxy', conf, '--socks5', '127.0.0.1:0']);
    const m = await p.waitFor(/SOCKS5 proxy on 127\.0\.0\.1:(\d+)/);
    const s = net.connect({ host: '127.0.0.1', port: Number(m[1]) });
    await once(s, 'connect');
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.write(Buffer.from([5, 1, 0]));
    s.write(Buffer.concat([Buffer.from([5, 1, 0]), encodeAddress('10.0.0.2', 7)]));
    s.write('socks!');
    const deadline = Date.now() + 10_000;
    while (Buffer.concat(chunks).length < 2 + 10 + 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const all = Buffer.concat(chunks);
    assert.deepEqual([...all.subarray(0, 2)], [5, 0], 'no-auth chosen');
    assert.equal(all[3], 0, 'CONNECT succeeded');
    assert.equal(all.subarray(12).toString(), 'socks!', 'echoed through the tunnel');
    s.destroy();
    p.child.kill('SIGTERM');
    const [code] = (await once(p.child, 'exit')) as [number];
    assert.equal(code, 0, `exit status; stderr: ${p.stderr()}`);

    const bad = path.join(dir, 'bad.conf');
    fs.writeFileSync(bad, '[Interface]\nAddress = 10.0.0.1/24\n');
    const q = start(['proxy', bad]);
    const [badCode] = (await once(q.child, 'exit')) as [number];
    assert.equal(badCode, 1, 'exit 1');
    assert.equal(q.stderr(), `wireweave: proxy: ${bad}: the [Interface] has no PrivateKey\n`, 'one line naming the problem');
  });
});
