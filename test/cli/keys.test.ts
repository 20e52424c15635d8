/**
 * `wireweave genkey | pubkey | genpsk` against `wg` (wireguard-tools), run as child processes
 * through bin/wireweave exactly as a user would. When `wg` is not installed the comparisons are
 * skipped, except under CI (process.env.CI set), where a missing `wg` fails them.
 */
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, fchmodSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { decodeBase64, decodeHex, encodeBase64 } from '../../src/core/keys.ts';
import { main } from '../../src/cli/main.ts';
import { readKeyFromStream } from '../../src/cli/keys.ts';

const BIN = fileURLToPath(new URL('../support/wireweave.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const KEY_LINE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=\n$/;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command args` with `input` on stdin (closed afterwards unless `keepOpen`). */
function run(
  command: string,
  args: string[],
  input: string | Uint8Array = '',
  options: { stdout?: number; keepOpen?: boolean; cwd?: string } = {},
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['pipe', options.stdout ?? 'pipe', 'pipe'],
      cwd: options.cwd ?? ROOT,
      timeout: 30_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin!.on('error', () => {}); // the child may exit before reading everything
    child.stdin!.write(input);
    if (!options.keepOpen) child.stdin!.end();
  });
}

const wireweave = (args: string[], input?: string | Uint8Array, options?: Parameters<typeof run>[3]): Promise<Result> =>
  run(BIN, args, input, options);

/** Runs `main()` in this process with `input` on stdin: the same code as the binary, cheaper. */
async function inProcess(args: string[], input: string): Promise<Result> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const collect = (into: Buffer[]): Writable =>
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        into.push(chunk);
        cb();
      },
    });
  const code = await main(args, { stdin: Readable.from([Buffer.from(input)]), stdout: collect(out), stderr: collect(err) });
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

const HAVE_WG = !spawnSync('wg', ['--version']).error;

/** True when `wg` can be compared against; skips the test when it cannot (fails under CI). */
function needWg(t: TestContext): boolean {
  if (HAVE_WG) return true;
  if (process.env.CI) assert.fail('`wg` (wireguard-tools) is not on PATH; CI requires it for these comparisons');
  t.skip('`wg` (wireguard-tools) is not installed');
  return false;
}

function isClamped(k: Uint8Array): boolean {
  return (k[0]! & 7) === 0 && (k[31]! & 0xc0) === 0x40;
}

function assertOneLineError(r: Result, mustMatch: RegExp, secrets: string[]): void {
  assert.notEqual(r.code, 0, 'exit code');
  assert.equal(r.stdout, '', 'nothing on stdout');
  assert.match(r.stderr, /^wireweave: [^\n]+\n$/, `one line on stderr: ${JSON.stringify(r.stderr)}`);
  assert.match(r.stderr, mustMatch);
  for (const s of secrets) assert.ok(!r.stderr.includes(s), `stderr echoes the input: ${r.stderr}`);
}

/** Private keys as base64; the RFC 7748 ones are unclamped, as is all-ones. */
const RFC7748_ALICE = encodeBase64(decodeHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'));
const RFC7748_ALICE_PUBLIC = encodeBase64(decodeHex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a'));
const RFC7748_BOB = encodeBase64(decodeHex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'));
const RFC7748_BOB_PUBLIC = encodeBase64(decodeHex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f'));
const FIXED_KEYS = [
  RFC7748_ALICE,
  RFC7748_BOB,
  'A'.repeat(43) + '=', // all zero
  '/'.repeat(42) + '8=', // all ones: every clamped bit is wrong
  'sCmlmrK9H6i7WBCafAhc99aszFcdPApDxj8/pvgW/no=', // made by `wg genkey`
];

describe('wireweave genkey', { concurrency: true }, () => {
  it('prints one clamped base64 key and a newline', async () => {
    const [a, b] = await Promise.all([wireweave(['genkey']), wireweave(['genkey'])]);
    for (const r of [a, b]) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.equal(r.stdout.length, 45);
      assert.match(r.stdout, KEY_LINE);
      const key = decodeBase64(r.stdout.slice(0, 44));
      assert.equal(key.length, 32);
      assert.ok(isClamped(key), 'clamped');
    }
    assert.notEqual(a.stdout, b.stdout);
  });

  it('genkey | pubkey equals wg pubkey of the same key', async (t) => {
    const gen = await wireweave(['genkey']);
    assert.equal(gen.code, 0, gen.stderr);
    const ours = await wireweave(['pubkey'], gen.stdout);
    assert.equal(ours.code, 0, ours.stderr);
    assert.match(ours.stdout, KEY_LINE);
    if (!needWg(t)) return;
    const theirs = await run('wg', ['pubkey'], gen.stdout);
    assert.equal(theirs.code, 0, theirs.stderr);
    assert.equal(ours.stdout, theirs.stdout);
  });

  it('warns, like wg, when stdout is a file others can access, and still succeeds', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'wireweave-genkey-'));
    try {
      const attempt = async (cmd: string, args: string[], mode: number): Promise<Result & { file: string }> => {
        const path = join(dir, `${cmd === BIN ? 'wireweave' : cmd}-${args.join('-')}-${mode.toString(8)}`);
        const fd = openSync(path, 'w', 0o600);
        fchmodSync(fd, mode); // independent of the test runner's umask
        try {
          const r = await run(cmd, args, '', { stdout: fd });
          return { ...r, file: readFileSync(path, 'utf8') };
        } finally {
          closeSync(fd);
        }
      };
      const ours644 = await attempt(BIN, ['genkey'], 0o644);
      assert.equal(ours644.code, 0);
      assert.match(ours644.file, KEY_LINE);
      assert.match(ours644.stderr, /^wireweave: Warning: writing to world accessible file\.\nConsider setting the umask to 077 and trying again\.\n$/);
      const psk604 = await attempt(BIN, ['genpsk'], 0o604);
      assert.equal(psk604.code, 0);
      assert.match(psk604.file, KEY_LINE);
      assert.equal(psk604.stderr, ours644.stderr);
      const ours600 = await attempt(BIN, ['genkey'], 0o600);
      const ours640 = await attempt(BIN, ['genpsk'], 0o640);
      for (const r of [ours600, ours640]) {
        assert.equal(r.code, 0);
        assert.match(r.file, KEY_LINE);
        assert.equal(r.stderr, '');
      }
      if (!needWg(t)) return;
      const cases: [string, number, Result][] = [['genkey', 0o644, ours644], ['genpsk', 0o604, psk604], ['genkey', 0o600, ours600], ['genpsk', 0o640, ours640]];
      for (const [command, mode, ours] of cases) {
        const theirs = await attempt('wg', [command], mode);
        assert.equal(ours.code, theirs.code);
        assert.equal(ours.stderr, theirs.stderr === '' ? '' : 'wireweave: ' + theirs.stderr, `${command} ${mode.toString(8)}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('wireweave genpsk', () => {
  it('prints one 32-byte base64 key and a newline', async () => {
    const r = await wireweave(['genpsk']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, KEY_LINE);
    assert.equal(decodeBase64(r.stdout.slice(0, 44)).length, 32);
  });
});

describe('wireweave pubkey', { concurrency: true }, () => {
  it('matches the RFC 7748 vectors (unclamped private keys are clamped first)', async () => {
    const alice = await wireweave(['pubkey'], RFC7748_ALICE + '\n');
    assert.equal(alice.code, 0, alice.stderr);
    assert.equal(alice.stdout, RFC7748_ALICE_PUBLIC + '\n');
    const bob = await wireweave(['pubkey'], RFC7748_BOB);
    assert.equal(bob.code, 0, bob.stderr);
    assert.equal(bob.stdout, RFC7748_BOB_PUBLIC + '\n');
  });

  it('prints what wg pubkey prints for fixed keys, including unclamped ones', async (t) => {
    if (!needWg(t)) return;
    for (const key of FIXED_KEYS) {
      const [ours, theirs] = await Promise.all([wireweave(['pubkey'], key + '\n'), run('wg', ['pubkey'], key + '\n')]);
      assert.equal(theirs.code, 0, theirs.stderr);
      assert.equal(ours.code, 0, ours.stderr);
      assert.equal(ours.stdout, theirs.stdout, key);
      assert.equal(ours.stderr, '');
    }
  });

  it('accepts what wg accepts after the key: nothing, whitespace, NUL bytes', async (t) => {
    const key = FIXED_KEYS[4]!;
    const inputs = [key, key + '\n', key + '\r\n', key + ' \t\v\f\n\n', key + '\0\0\n'];
    const expected = needWg(t) ? (await run('wg', ['pubkey'], key)).stdout : undefined;
    for (const [i, input] of inputs.entries()) {
      const r = i === inputs.length - 1 ? await wireweave(['pubkey'], input) : await inProcess(['pubkey'], input);
      assert.equal(r.code, 0, `${JSON.stringify(input)}: ${r.stderr}`);
      if (expected !== undefined) {
        assert.equal(r.stdout, expected);
        const theirs = await run('wg', ['pubkey'], input);
        assert.equal(theirs.code, 0);
      }
    }
  });

  const key = 'sCmlmrK9H6i7WBCafAhc99aszFcdPApDxj8/pvgW/no=';
  // `spawn`: run bin/wireweave; otherwise main() in-process (same code path after startup).
  const badInputs: { name: string; input: string; problem: RegExp; spawn?: true }[] = [
    { name: 'empty stdin', input: '', problem: /no private key/, spawn: true },
    { name: 'only a newline', input: '\n', problem: /no private key/ },
    { name: 'short garbage', input: 'hello world\n', problem: /too short/, spawn: true },
    { name: '44 characters of garbage', input: 'this is not a base64 key, it is garbage!!!!=\n', problem: /not valid base64.*alphabet/, spawn: true },
    { name: 'short key (43 characters)', input: key.slice(0, 43) + '\n', problem: /too short.*got 43/, spawn: true },
    { name: 'short key (unpadded, no newline)', input: key.slice(0, 43), problem: /too short/ },
    { name: '45 characters', input: key + 'A\n', problem: /too long.*trailing/, spawn: true },
    { name: 'two keys', input: key + '\n' + key + '\n', problem: /too long.*trailing/ },
    { name: 'leading space', input: ' ' + key + '\n', problem: /whitespace.*before/, spawn: true },
    { name: 'leading NUL', input: '\0' + key + '\n', problem: /NUL before/ },
    { name: 'missing "="', input: key.slice(0, 43) + 'A\n', problem: /not valid base64/ },
    { name: 'non-canonical last character', input: key.slice(0, 42) + 'p=\n', problem: /canonical/ },
    { name: 'URL-safe alphabet', input: key.replace(/\//g, '_') + '\n', problem: /alphabet/ },
    { name: 'non-ASCII', input: key.slice(0, 41) + '\u00e9=\n', problem: /too short|alphabet/ },
    { name: 'hex instead of base64', input: '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a\n', problem: /too long.*trailing/ },
  ];
  for (const { name, input, problem, spawn: viaBinary } of badInputs) {
    it(`rejects ${name} like wg, naming the problem without echoing the input${viaBinary ? '' : ' (in-process)'}`, async (t) => {
      const ours = viaBinary ? await wireweave(['pubkey'], input) : await inProcess(['pubkey'], input);
      const secrets = input.trim().length >= 6 ? [input.trim().slice(0, 6), input.trim().slice(-8)] : [];
      assertOneLineError(ours, problem, secrets);
      assert.match(ours.stderr, /^wireweave: pubkey: /);
      if (!needWg(t)) return;
      const theirs = await run('wg', ['pubkey'], input);
      assert.notEqual(theirs.code, 0);
      assert.equal(ours.code, theirs.code, 'same exit code as wg');
    });
  }

  it('stops at trailing garbage without waiting for EOF', async () => {
    const r = await wireweave(['pubkey'], key + 'x', { keepOpen: true });
    assertOneLineError(r, /trailing/, [key.slice(0, 8)]);
  });

  it('takes no arguments and does not echo them', async (t) => {
    const r = await wireweave(['pubkey', key], key);
    assertOneLineError(r, /takes no arguments/, [key.slice(0, 8)]);
    if (!needWg(t)) return;
    assert.equal(r.code, (await run('wg', ['pubkey', 'x'], key)).code);
  });
});

describe('wireweave command dispatch', { concurrency: true }, () => {
  it('unknown command: one line, exit 1', async () => {
    // (A bare word that is a valid interface name means "create that interface", as with
    // wireguard-go, so the unknown command here is an option-like word.)
    const r = await wireweave(['--frobnicate']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^wireweave: unknown command '--frobnicate'[^\n]*\n$/);
    const long = await inProcess(['no-such-command-at-all'], '');
    assert.equal(long.code, 1);
    assert.match(long.stderr, /^wireweave: unknown command/);
  });

  it('does not echo an unknown "command" that looks like a key', async () => {
    const key = FIXED_KEYS[4]!;
    const r = await inProcess([key], '');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^wireweave: unknown command[^\n]*\n$/);
    assert.ok(!r.stderr.includes(key.slice(0, 8)));
  });

  it('--help and help list the commands on stdout; no command prints usage and fails', async () => {
    const results = [await wireweave(['--help']), await inProcess(['help'], ''), await inProcess(['-h'], '')];
    for (const r of results) {
      assert.equal(r.code, 0);
      for (const cmd of ['genkey', 'pubkey', 'genpsk', 'demo']) assert.match(r.stdout, new RegExp(`^  ${cmd} `, 'm'));
    }
    const none = await inProcess([], '');
    assert.equal(none.code, 1);
    assert.match(none.stderr, /^Usage: wireweave/);
  });

  it('a command given --help prints its usage', async () => {
    for (const cmd of ['genkey', 'pubkey', 'genpsk']) {
      const r = await inProcess([cmd, '--help'], '');
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(`^Usage: wireweave ${cmd}\n`));
    }
  });

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await wireweave(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, pkg.version + '\n');
  });

  it('works through a symlink (node_modules/.bin, npm link) from another working directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wireweave-link-'));
    try {
      const link = join(dir, 'wireweave');
      symlinkSync(BIN, link);
      const r = await run(link, ['genkey'], '', { cwd: dir });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.match(r.stdout, KEY_LINE);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prints no ExperimentalWarning or other noise', async () => {
    const r = await wireweave(['pubkey'], FIXED_KEYS[0]!);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, '');
  });
});

describe('in-process', () => {
  function sink(): Writable & { text: () => string } {
    const chunks: Buffer[] = [];
    const w = new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk);
        cb();
      },
    });
    return Object.assign(w, { text: () => Buffer.concat(chunks).toString('utf8') });
  }

  it('reads a key split into one-byte chunks', async () => {
    const key = FIXED_KEYS[4]!;
    const bytes = Buffer.from(key + '\n\0 ');
    const chunks = [...bytes].map((b) => Buffer.from([b]));
    const input = await readKeyFromStream(Readable.from(chunks));
    assert.ok(input.ok);
    assert.deepEqual(input.key, decodeBase64(key));
  });

  it('main() runs pubkey with injected streams', async () => {
    const stdout = sink();
    const stderr = sink();
    const code = await main(['pubkey'], { stdin: Readable.from([Buffer.from(RFC7748_ALICE + '\n')]), stdout, stderr });
    assert.equal(code, 0);
    assert.equal(stdout.text(), RFC7748_ALICE_PUBLIC + '\n');
    assert.equal(stderr.text(), '');
  });

  it('main() reports bad input with exit code 1', async () => {
    const stdout = sink();
    const stderr = sink();
    const code = await main(['pubkey'], { stdin: Readable.from([Buffer.from('nope')]), stdout, stderr });
    assert.equal(code, 1);
    assert.equal(stdout.text(), '');
    assert.match(stderr.text(), /^wireweave: pubkey: private key is too short: expected 44 base64 characters, got 4\n$/);
  });
});
