/**
 * `wireweave demo`: run in this process with captured output (keys injected, so the test can
 * check that no secret is printed), and once as a child process through bin/wireweave, to check
 * that it exits promptly on its own.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { encodeBase64, encodeHex, generatePresharedKey, generatePrivateKey } from '../../src/core/keys.ts';
import { systemRng } from '../../src/core/rng.ts';
import { defaultCrypto } from '../../src/crypto/index.ts';
import type { CliIo } from '../../src/cli/main.ts';
import { runDemo } from '../../src/cli/demo.ts';
import type { DemoOptions } from '../../src/cli/demo.ts';

const BIN = fileURLToPath(new URL('../support/wireweave.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function sink(chunks: string[]): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
}

async function demo(args: string[], options?: DemoOptions): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { stdin: Readable.from([]), stdout: sink(out), stderr: sink(err) };
  const code = await runDemo(args, io, options);
  return { code, stdout: out.join(''), stderr: err.join('') };
}

/** The figures on a summary line such as "alice → bob  1,234 packets sent, 1,234 received: 0 lost, ...". */
function flow(stdout: string, label: string): { sent: number; received: number; lost: number; corrupted: number } {
  const m = new RegExp(`^  ${label}\\s+([\\d,]+) packets sent, ([\\d,]+) received: ([\\d,]+) lost, ([\\d,]+) corrupted`, 'm').exec(stdout);
  assert.ok(m, `no summary line for ${label} in:\n${stdout}`);
  const n = (s: string) => Number(s.replaceAll(',', ''));
  return { sent: n(m[1]!), received: n(m[2]!), lost: n(m[3]!), corrupted: n(m[4]!) };
}

describe('wireweave demo', () => {
  it('brings a tunnel up over loopback UDP, rekeys, sends keepalives and loses nothing', async () => {
    const keys = { alice: generatePrivateKey(systemRng), bob: generatePrivateKey(systemRng), preshared: generatePresharedKey(systemRng) };
    const { code, stdout, stderr } = await demo(['--seconds', '3', '--speed', '100'], { keys });
    assert.equal(code, 0, `exit code; stdout:\n${stdout}\nstderr:\n${stderr}`);
    assert.equal(stderr, '');

    // Public keys are shown; private and preshared keys never are, in any encoding.
    for (const key of [keys.alice, keys.bob]) {
      assert.ok(stdout.includes(encodeBase64(defaultCrypto.x25519PrivateKey(key).publicKey)), 'public key shown');
    }
    for (const secret of [keys.alice, keys.bob, keys.preshared]) {
      assert.ok(!stdout.includes(encodeBase64(secret)), 'a secret key (base64) appears in the output');
      assert.ok(!stdout.toLowerCase().includes(encodeHex(secret)), 'a secret key (hex) appears in the output');
    }

    // The story: handshake, roaming, tunnel up, a passive keepalive, a rekey.
    assert.match(stdout, /alice → bob\s+handshake initiation \(148 B\)/);
    assert.match(stdout, /bob\s+→ alice handshake response \(92 B\)/);
    assert.match(stdout, /bob\s+learned alice's address 127\.0\.0\.1:\d+/);
    assert.match(stdout, /alice\s+handshake complete: session [0-9a-f]{8} is up/);
    assert.match(stdout, /tunnel up/);
    assert.match(stdout, /keepalive \(32 B\): alice received data but has sent nothing for 10 s/);
    assert.match(stdout, /rekey: the session is 120 s old/);
    assert.match(stdout, /rekey #1 done/);
    assert.match(stdout, /handshake complete: new session [0-9a-f]{8}/);

    // The summary: at least one rekey, traffic both ways, nothing lost or damaged.
    const handshakes = /handshakes\s+(\d+) completed: 1 to start, then (\d+) rekeys?/.exec(stdout);
    assert.ok(handshakes, stdout);
    assert.ok(Number(handshakes[2]) >= 1, 'at least one rekey');
    for (const label of ['alice → bob', 'bob → alice']) {
      const f = flow(stdout, label);
      assert.ok(f.sent > 100, `${label}: packets sent`);
      assert.equal(f.received, f.sent, `${label}: every packet received`);
      assert.equal(f.lost, 0);
      assert.equal(f.corrupted, 0);
    }
    assert.match(stdout, /keepalives\s+alice sent [1-9]/);
    assert.match(stdout, /drops\s+none/);
    assert.match(stdout, /^Result: OK\. All [\d,]+ packets arrived intact and in order\.$/m);
  });

  it('--quiet prints only the summary', async () => {
    const { code, stdout } = await demo(['--seconds', '1', '--quiet']);
    assert.equal(code, 0, stdout);
    assert.match(stdout, /^Summary: /);
    assert.doesNotMatch(stdout, /public key|\[t\+/);
    assert.match(stdout, /no rekey yet/);
    assert.match(stdout, /^Result: OK\./m);
  });

  it('prints its usage and rejects bad arguments without echoing them', async () => {
    const help = await demo(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: wireweave demo/);
    for (const args of [['--speed', '0'], ['--speed', '5000'], ['--seconds'], ['--rate', 'many'], ['--seconds=-1']]) {
      const r = await demo(args);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, /^wireweave: demo: --\w+ needs a number from/);
    }
    const secret = encodeBase64(generatePrivateKey(systemRng));
    const r = await demo([secret]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.ok(!r.stderr.includes(secret));
    assert.match(r.stderr, /unknown argument; run 'wireweave demo --help'/);
  });

  it('runs as `wireweave demo` and the process exits by itself', async () => {
    const { code, signal, stdout, stderr } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(BIN, ['demo', '--seconds', '1', '--quiet'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
    // Exiting with 0 on its own (no handle left open) is the event; the 120 s spawn timeout only
    // ends a hang, which then shows as SIGTERM here, whatever the machine's speed.
    assert.equal(signal, null, `killed by ${signal}: it did not exit by itself\nstdout:\n${stdout}\nstderr:\n${stderr}`);
    assert.equal(code, 0, `stdout:\n${stdout}\nstderr:\n${stderr}`);
    assert.match(stdout, /^Result: OK\./m);
  });
});
