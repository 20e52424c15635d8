/**
 * The npm package as a user gets it: `npm pack` (which builds dist/ through `prepare`), the
 * tarball installed into a fresh project, then (a) plain `node` imports every entry point and
 * runs a handshake between two Endpoints, (b) a strict TypeScript consumer compiles against the
 * published declarations, (c) `npx wireweave genkey | npx wireweave pubkey` works, (d) the
 * examples/ programs run against the installed package, (e) `require()` of the entry points
 * works and the BLAKE2s hashers load from the installed dist/. The tarball holds only dist/, the
 * launcher and README/LICENSE/SECURITY. Runtime dependencies come from the npm cache
 * (`--prefer-offline`; the network only if the cache lacks them). On the Node running this
 * file (Node 20, or Node 26 in scripts/test.sh's second pass): node and `npx` run on it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { encodeBase64, parseKeyBase64 } from '../../src/core/keys.ts';
import { nodeCrypto } from '../../src/crypto/node.ts';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixture', import.meta.url));
const TSC = path.join(REPO, 'node_modules/typescript/bin/tsc');
const NODE = process.execPath;
// `npx` and bin/wireweave's `#!/usr/bin/env node` find this Node first.
const ENV: NodeJS.ProcessEnv = { ...process.env, PATH: `${path.dirname(NODE)}${path.delimiter}${process.env.PATH ?? ''}`, npm_config_update_notifier: 'false' };
// Not a child of this test runner: the example test reports as a plain `node --test` would.
delete ENV.NODE_TEST_CONTEXT;

interface PackedFile { path: string; size: number }
interface Packed { filename: string; entryCount: number; size: number; unpackedSize: number; files: PackedFile[] }

let dir: string;
let app: string;
let packed: Packed;

const sh = (file: string, args: string[], cwd: string, options: { input?: string } = {}) => {
  const child = run(file, args, { cwd, env: ENV, maxBuffer: 16 * 1024 * 1024, timeout: 120_000 });
  if (options.input !== undefined) child.child.stdin!.end(options.input);
  return child;
};

describe('the npm package, installed from its tarball', { timeout: 240_000 }, () => {
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), `wireweave-package-${process.pid}-`));
    app = path.join(dir, 'app');
    // pack and install with the npm on the PATH as it was (not on the Node under test).
    const plain = { ...process.env, npm_config_update_notifier: 'false' };
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: REPO, env: plain, maxBuffer: 16 * 1024 * 1024, timeout: 180_000 });
    // prepare's build output precedes the JSON on stdout.
    packed = (JSON.parse(stdout.slice(stdout.indexOf('\n[') + 1)) as Packed[])[0]!;
    cpSync(FIXTURE, app, { recursive: true });
    cpSync(path.join(REPO, 'examples'), path.join(app, 'examples'), { recursive: true });
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({
      name: 'wireweave-consumer', private: true, type: 'module',
      // Their install scripts are not needed (README, "Install scripts"); npm 11 asks otherwise.
      allowScripts: { koffi: false, esbuild: false },
    }));
    const typesNode = (await import('../../node_modules/@types/node/package.json', { with: { type: 'json' } })).default.version;
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', path.join(dir, packed.filename), `@types/node@${typesNode}`], {
      cwd: app, env: plain, maxBuffer: 16 * 1024 * 1024, timeout: 180_000,
    });
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('holds dist/, the launcher and README/LICENSE/SECURITY only, under 1 MB unpacked', () => {
    const outside = packed.files.map((f) => f.path).filter((p) => !p.startsWith('dist/'));
    assert.deepEqual(outside.sort(), ['LICENSE', 'README.md', 'SECURITY.md', 'bin/wireweave', 'package.json']);
    const unexpected = packed.files.map((f) => f.path).filter((p) => p.startsWith('dist/') && !/\.(js|d\.ts)$/.test(p));
    assert.deepEqual(unexpected, [], 'dist/ ships JavaScript and declarations only');
    assert.ok(!packed.files.some((f) => /(^|\/)(test|bench|fuzz|docs|examples)\//.test(f.path)), 'no tests, benchmarks, fuzz targets, docs');
    assert.ok(packed.unpackedSize < 1024 * 1024, `unpacked ${packed.unpackedSize} bytes`);
    for (const entry of ['core', 'crypto', 'device', 'netstack']) {
      assert.ok(packed.files.some((f) => f.path === `dist/${entry}/index.js`), `dist/${entry}/index.js`);
      assert.ok(packed.files.some((f) => f.path === `dist/${entry}/index.d.ts`), `dist/${entry}/index.d.ts`);
    }
    const installed = readdirSync(path.join(app, 'node_modules'));
    assert.ok(!installed.includes('tsx') && !installed.includes('esbuild') && !installed.includes('typescript'), `no build tools at run time: ${installed.join(' ')}`);
  });

  it('(a) imports every entry point with plain node and handshakes two Endpoints', async () => {
    const { stdout } = await sh(NODE, ['smoke.mjs'], app);
    const r = JSON.parse(stdout) as Record<string, unknown> & Record<'core' | 'crypto' | 'device' | 'netstack', Record<string, string>>;
    assert.equal(r.sent, 'queued', 'the first packet waits for the handshake');
    assert.deepEqual(r.delivered, ['hello from a']);
    assert.deepEqual(r.handshakes, [1, 1]);
    for (const name of ['Endpoint', 'generatePrivateKey', 'publicKey', 'encodeBase64', 'decodeBase64', 'WireweaveError', 'KeyFormatError']) {
      assert.equal(r.core[name], 'function', `core exports ${name}`);
    }
    for (const internal of ['noiseStart', 'writeMessage1', 'Initiation', 'Session', 'CookieChecker']) {
      assert.equal(r.core[internal], undefined, `core does not export ${internal}`);
    }
    assert.equal(r.crypto.nodeCrypto, 'object');
    assert.equal(r.crypto.defaultCrypto, 'object');
    for (const name of ['Device', 'MemoryTun', 'MemoryBind', 'MemoryNetwork', 'ManualClock']) assert.equal(r.device[name], 'function', `device exports ${name}`);
    for (const name of ['netstack', 'Netstack', 'startSocks5', 'startHttpProxy', 'forwardTcp', 'reverseTcp', 'forwardUdp']) {
      assert.equal(r.netstack[name], 'function', `netstack exports ${name}`);
    }
  });

  it('(b) a strict TypeScript consumer and the examples compile against the published types', async () => {
    for (const config of ['tsconfig.json', 'tsconfig.examples.json']) {
      await assert.doesNotReject(sh(NODE, [TSC, '-p', config], app).catch((err: { stdout?: string }) => {
        throw new Error(`tsc -p ${config} failed:\n${err.stdout ?? String(err)}`);
      }));
    }
  });

  it('(c) npx wireweave genkey | npx wireweave pubkey', async () => {
    const { stdout } = await sh('sh', ['-c', 'npx --no-install wireweave genkey | tee private.key | npx --no-install wireweave pubkey'], app);
    assert.match(stdout, /^[A-Za-z0-9+/]{43}=\n$/);
    const { stdout: privateKey } = await sh('cat', ['private.key'], app);
    assert.equal(stdout.trim(), encodeBase64(nodeCrypto.x25519PrivateKey(parseKeyBase64(privateKey.trim())).publicKey));
    const { stdout: version } = await sh('npx', ['--no-install', 'wireweave', '--version'], app);
    assert.equal(version, '0.1.0\n');
  });

  it('(d) runs the examples against the installed package', async () => {
    const core = await sh(NODE, ['examples/core-udp.mjs'], app);
    assert.match(core.stdout, /^bob: received "hello through the tunnel"$/m);
    const device = await sh(NODE, ['examples/device-memory.test.mjs'], app);
    // The test passed (else node exits non-zero and this rejects), whatever the reporter.
    assert.match(device.stdout, /\bpass 1$/m);
    assert.match(device.stdout, /\bfail 0$/m);
    const fetched = await sh(NODE, ['examples/netstack-fetch.mjs'], app);
    assert.match(fetched.stdout, /^alice: GET http:\/\/10\.0\.0\.2\/ → 200: hello 10\.0\.0\.1, this is bob$/m);
    assert.match(fetched.stdout, /→ EHOSTUNREACH$/m);
  });

  it('(e) require() loads the entry points (no top-level await), and BLAKE2s runs on WebAssembly', async () => {
    writeFileSync(path.join(app, 'required.cjs'), "const c = require('wireweave/crypto'); const d = require('wireweave/device'); console.log(typeof c.nodeCrypto.hash, typeof d.Device);\n");
    const required = await sh(NODE, ['required.cjs'], app);
    assert.equal(required.stdout, 'function function\n');
    // The installed dist/ finds hash-wasm's BLAKE2s file (not an entry point: imported by path).
    const loader = path.join(app, 'node_modules/wireweave/dist/crypto/blake2s-wasm.js');
    writeFileSync(path.join(app, 'wasm.mjs'), `const m = await import(${JSON.stringify(pathToFileURL(loader).href)}); console.log(await m.wasmBlake2sLoaded);\n`);
    const wasm = await sh(NODE, ['wasm.mjs'], app);
    assert.equal(wasm.stdout, 'true\n');
  });
});
