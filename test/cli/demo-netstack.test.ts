/**
 * The netstack part of `wireweave demo` (src/cli/demo-netstack.ts): two rootless netstacks on real
 * loopback UDP, HTTP served through `listen`, fetched, uploaded, pinged; and no secret printed.
 * WIREWEAVE_FAKE_STACK=1 runs it on the test stand-in stack instead of the real one.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { encodeBase64, encodeHex, generatePrivateKey } from '../../src/core/keys.ts';
import { systemRng } from '../../src/core/rng.ts';
import { runNetstackDemo } from '../../src/cli/demo-netstack.ts';
import type { StackFactory } from '../../src/netstack/api.ts';
import { FakeStack } from '../netstack/fake-stack.ts';

const createStack: StackFactory | undefined = process.env.WIREWEAVE_FAKE_STACK === '1' ? (c, io) => new FakeStack(c, io) : undefined;

function sink(chunks: string[]): Writable {
  return new Writable({ write(c: Buffer, _e, cb) { chunks.push(c.toString()); cb(); } });
}

describe('wireweave demo: the netstack part', () => {
  it('fetches from node:http served on the other netstack, uploads, pings and fails closed', async () => {
    const keys = { alice: generatePrivateKey(systemRng), bob: generatePrivateKey(systemRng) };
    const chunks: string[] = [];
    const ok = await runNetstackDemo(sink(chunks), { quiet: false, keys, createStack });
    const out = chunks.join('');
    assert.equal(ok, true, out);
    assert.match(out, /alice {2}GET http:\/\/10\.0\.0\.2\/file → 200 OK, 2 MiB in \d+ ms, SHA-256 matches/, 'download');
    assert.match(out, /alice {2}POST 512 KiB → bob's SHA-256 of what arrived matches/, 'upload');
    assert.match(out, /alice {2}ping 10\.0\.0\.2: echo reply in [\d.]+ ms/, 'ping');
    assert.match(out, /EHOSTUNREACH: outside every peer's allowed IPs/, 'fail closed');
    assert.match(out, /^Netstack: OK\./m, 'verdict');
    for (const secret of [keys.alice, keys.bob]) {
      assert.ok(!out.includes(encodeBase64(secret)) && !out.includes(encodeHex(secret)), 'no private key printed');
    }
  });

  it('--quiet prints only the verdict', async () => {
    const chunks: string[] = [];
    const ok = await runNetstackDemo(sink(chunks), { quiet: true, createStack });
    assert.equal(ok, true, chunks.join(''));
    assert.match(chunks.join(''), /^Netstack: OK\.[^\n]*\n$/, 'one line');
  });
});
