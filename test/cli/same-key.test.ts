/**
 * Two `wireweave` processes on one config (one key): the second warns that the peer's endpoint
 * will flip between them, naming the first process; real child processes on loopback UDP, the
 * peer a netstack in this process. No root needed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { netstack } from '../../src/netstack/api.ts';
import type { Netstack } from '../../src/netstack/api.ts';
import { keyPair } from '../netstack/helpers.ts';

const BIN = fileURLToPath(new URL('../support/wireweave.js', import.meta.url));

function start(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; waitFor: (re: RegExp) => Promise<string> } {
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
  return {
    child,
    waitFor: async (re) => {
      for (let i = 0; i < 4000 && !re.test(err) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 5));
      assert.match(err, re);
      return err;
    },
  };
}

describe('two processes with one key', () => {
  let bob: Netstack;
  let dir: string;
  let conf: string;
  const children: ChildProcess[] = [];

  before(async () => {
    const a = keyPair(), b = keyPair();
    bob = await netstack(`[Interface]\nPrivateKey = ${b.priv}\nAddress = 10.0.0.2/24\n\n[Peer]\nPublicKey = ${a.pub}\nAllowedIPs = 10.0.0.1/32\n`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ww-samekey-'));
    conf = path.join(dir, 'wg0.conf');
    fs.writeFileSync(conf, `[Interface]\nPrivateKey = ${a.priv}\nAddress = 10.0.0.1/24\n\n[Peer]\nPublicKey = ${b.pub}\nAllowedIPs = 10.0.0.2/32\nEndpoint = 127.0.0.1:${bob.port}\n`, { mode: 0o600 });
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) { c.kill('SIGTERM'); await once(c, 'exit'); }
    await bob.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the second process warns and names the first; after the first exits, no warning', async () => {
    const env = { ...process.env, XDG_RUNTIME_DIR: dir };
    const first = start(['proxy', conf, '--socks5', '127.0.0.1:0', '--no-control'], env);
    children.push(first.child);
    const firstErr = await first.waitFor(/SOCKS5 proxy on/);
    assert.ok(!/another wireweave process/.test(firstErr), firstErr);
    const second = start(['forward', conf, '--tcp', '127.0.0.1:0:10.0.0.2:7', '--no-control'], env);
    children.push(second.child);
    const secondErr = await second.waitFor(/TCP forward/);
    assert.match(secondErr, new RegExp(`warning: another wireweave process \\(pid ${first.child.pid}, proxy wg0\\) runs a tunnel with this private key .*endpoint flips between the two`));
    second.child.kill('SIGTERM');
    assert.deepEqual(await once(second.child, 'exit'), [0, null]);
    first.child.kill('SIGTERM');
    assert.deepEqual(await once(first.child, 'exit'), [0, null]);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'wireweave')).filter((f) => f.endsWith('.lock')), [], 'the lock is removed on exit');
    const third = start(['proxy', conf, '--socks5', '127.0.0.1:0', '--no-control'], env);
    children.push(third.child);
    const thirdErr = await third.waitFor(/SOCKS5 proxy on/);
    assert.ok(!/another wireweave process/.test(thirdErr), thirdErr);
    third.child.kill('SIGTERM');
    assert.deepEqual(await once(third.child, 'exit'), [0, null]);
  });

  it('a SIGTERM during the set-up (right after its first line) stops cleanly and removes the lock', async () => {
    const env = { ...process.env, XDG_RUNTIME_DIR: dir };
    const early = start(['forward', conf, '--tcp', '127.0.0.1:0:10.0.0.2:7', '--no-control'], env);
    children.push(early.child);
    await early.waitFor(/tunnel started/);
    early.child.kill('SIGTERM');
    assert.deepEqual(await once(early.child, 'exit'), [0, null], 'exit status, signal');
    assert.deepEqual(fs.readdirSync(path.join(dir, 'wireweave')).filter((f) => f.endsWith('.lock')), [], 'the lock is removed on exit');
  });
});
