/**
 * `wireweave hub` as a user runs it: a child process on loopback that peers reach, a graceful
 * stop on SIGTERM, one-line errors for bad options, and `hub token` from a secret.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.ts';
import { hubTokenFor, parseAllowFile } from '../../src/cli/hub.ts';
import { nodeCrypto as crypto } from '../../src/crypto/node.ts';
import { systemRng } from '../../src/core/rng.ts';
import { encodeBase64, generatePrivateKey } from '../../src/core/keys.ts';
import { networkKeys } from '../../src/mesh/protocol/keys.ts';
import { MeshHubClient } from '../../src/mesh/client/hub-client.ts';
import { nodeTimers, nodeWebSocket } from '../../src/mesh/client/node.ts';

const BIN = fileURLToPath(new URL('../support/wireweave.js', import.meta.url));

async function run(args: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough(), err = new PassThrough();
  let o = '', e = '';
  out.on('data', (d) => { o += d; });
  err.on('data', (d) => { e += d; });
  const code = await main(args, { stdin: Readable.from([stdin]), stdout: out, stderr: err });
  return { code, out: o, err: e };
}

describe('wireweave hub', () => {
  it('serves peers until SIGTERM, then exits 0', async () => {
    const child = spawn(process.execPath, [BIN, 'hub', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        const m = /listening on (ws:\/\/\S+)/.exec(stderr);
        if (m) resolve(m[1]!.replace(/,$/, ''));
      });
      child.once('exit', () => reject(new Error(`hub exited: ${stderr}`)));
    });
    const keyA = crypto.x25519PrivateKey(generatePrivateKey(systemRng));
    const keyB = crypto.x25519PrivateKey(generatePrivateKey(systemRng));
    let got: Uint8Array | null = null;
    const mk = (privateKey: typeof keyA, packet?: (from: Uint8Array, d: Uint8Array) => void) => {
      const c = new MeshHubClient({ crypto, rng: systemRng, privateKey, hubs: [url], connect: nodeWebSocket, timers: nodeTimers, now: Date.now, events: packet ? { packet } : {} });
      c.start();
      return c;
    };
    const a = mk(keyA), b = mk(keyB, (_f, d) => { got = Uint8Array.from(d); });
    const until = async (cond: () => boolean) => { for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 20)); assert.ok(cond()); };
    await until(() => a.connected && b.connected);
    a.sendPacket(keyB.publicKey, Uint8Array.of(9, 9, 9));
    await until(() => got !== null);
    assert.deepEqual(got, Uint8Array.of(9, 9, 9));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    await until(() => !a.connected && !b.connected);
    assert.match(stderr, /shutting down/);
    a.stop(); b.stop();
  });

  it('refuses bad options in one line and changes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ww-hub-'));
    const cases: [string[], RegExp][] = [
      [[], /--listen \[ADDR:\]PORT is required/],
      [['--listen', '99999'], /--listen "99999": expected \[ADDR:\]PORT/],
      [['--listen', '8443', '--frob'], /unknown option --frob/],
      [['--listen', '8443', '--allow', join(dir, 'missing')], /--allow .*missing: no such file/],
      [['--listen', '8443', '--log-format', 'xml'], /--log-format "xml": expected text or json/],
    ];
    writeFileSync(join(dir, 'bad-token'), 'not base64!\n');
    cases.push([['--listen', '8443', '--network-token', join(dir, 'bad-token')], /not a base64 token/]);
    for (const [args, message] of cases) {
      const r = await run(['hub', ...args]);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.err, message);
      assert.equal(r.err.trim().split('\n').length, 1, 'one line');
    }
    const r = await run(['hub', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.out, /Usage: wireweave hub/);
  });

  it('parses --allow files and names a bad line', () => {
    const k = encodeBase64(crypto.x25519PrivateKey(generatePrivateKey(systemRng)).publicKey);
    assert.equal(parseAllowFile(`# peers\n${k}  # laptop\n\n`, 'f').size, 1);
    assert.throws(() => parseAllowFile(`${k}\nnope\n`, 'allow.txt'), /allow\.txt:2: not a base64 WireGuard public key/);
  });

  it('hub token derives the token from the secret, and refuses an empty one', async () => {
    const r = await run(['hub', 'token'], 'correct horse\n');
    assert.equal(r.code, 0);
    assert.equal(r.out.trim(), encodeBase64(networkKeys(crypto, '', new TextEncoder().encode('correct horse')).hubToken));
    assert.equal(hubTokenFor('  correct horse \n'), r.out.trim());
    const empty = await run(['hub', 'token'], '\n');
    assert.equal(empty.code, 1);
    assert.match(empty.err, /no network secret on stdin/);
  });
});
