/**
 * How long a device takes to accept 10,000 peers through the UAPI, and what they cost in memory
 * (issue 4: under 2 s and under 200 MB RSS).
 *
 *   npm run bench:peers -- [--peers N] [--allowed N] [--json]
 *
 * A Device on the in-memory twins (no TUN, no UDP) serves its UAPI on a unix socket in a temporary
 * directory, exactly as the daemon does; a client writes one `set=1` request with N peers (each a
 * public key, a preshared key, an endpoint, a persistent keepalive and `--allowed` /32 allowed IPs)
 * the way `wg setconf` does, and waits for `errno=0`. Then a `get=1` reads everything back.
 * Reported: wall time of the set and of the get, the process RSS before and after (and the
 * growth), heap used, and the set request's size. Reports only; nothing asserts a timing.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Device } from '../src/device/device.ts';
import { MemoryTun } from '../src/device/tun-memory.ts';
import { MemoryBind, MemoryNetwork } from '../src/device/bind-memory.ts';
import { startUapiServer } from '../src/device/uapi-server.ts';
import { uapiRequest } from '../src/device/uapi-client.ts';
import { encodeHex } from '../src/core/keys.ts';
import { defaultCrypto } from '../src/crypto/index.ts';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v <= 0) { console.error(`bench:peers: ${name} needs a positive integer`); process.exit(2); }
  return v;
};
const PEERS = flag('--peers', 10_000);
const ALLOWED = flag('--allowed', 1);
const JSON_OUT = args.includes('--json');

const mib = (n: number): number => Math.round((n / 1048576) * 10) / 10;

function request(peers: number): string {
  const lines = ['set=1', `private_key=${encodeHex(randomBytes(32))}`, 'listen_port=51820', 'replace_peers=true'];
  for (let i = 0; i < peers; i++) {
    // Real public keys: the device precomputes DH(static, peer static) for each, as wireguard-go does.
    const pub = defaultCrypto.x25519PrivateKey(randomBytes(32)).publicKey;
    lines.push(`public_key=${encodeHex(pub)}`, `preshared_key=${encodeHex(randomBytes(32))}`,
      `endpoint=192.0.2.${1 + (i % 250)}:${10000 + (i % 50000)}`, 'persistent_keepalive_interval=25');
    for (let a = 0; a < ALLOWED; a++) {
      const n = i * ALLOWED + a;
      lines.push(`allowed_ip=10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}/32`);
    }
  }
  return lines.join('\n') + '\n\n';
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ww-peers-'));
  const network = new MemoryNetwork();
  const device = new Device({ tun: new MemoryTun({ name: 'wwbench0' }), bind: new MemoryBind(network, '192.0.2.254') });
  const server = await startUapiServer('wwbench0', device, { dir });
  try {
    const text = request(PEERS);
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    const t0 = performance.now();
    const answer = await uapiRequest('wwbench0', text, dir, 120_000);
    const setMs = performance.now() - t0;
    if (!/errno=0\n/.test(answer)) throw new Error(`set failed: ${answer.trim()}`);
    const rssAfter = process.memoryUsage().rss;
    const t1 = performance.now();
    const got = await uapiRequest('wwbench0', 'get=1\n\n', dir, 120_000);
    const getMs = performance.now() - t1;
    const peersBack = got.split('\npublic_key=').length - 1;
    if (peersBack !== PEERS) throw new Error(`get returned ${peersBack} peers, expected ${PEERS}`);
    global.gc?.();
    const mem = process.memoryUsage();
    const result = {
      peers: PEERS, allowedIpsPerPeer: ALLOWED, crypto: defaultCrypto.name, requestMiB: mib(Buffer.byteLength(text)),
      setSeconds: Math.round(setMs) / 1000, getSeconds: Math.round(getMs) / 1000,
      rssBeforeMiB: mib(rssBefore), rssAfterSetMiB: mib(rssAfter), rssGrowthMiB: mib(rssAfter - rssBefore),
      rssAfterGetMiB: mib(mem.rss), heapUsedMiB: mib(mem.heapUsed), node: process.version,
    };
    if (JSON_OUT) console.log(JSON.stringify(result, null, 2));
    else {
      console.log(`| peers | allowed IPs each | crypto | set=1 request | set time | get time | RSS before → after set (growth) | heap used |`);
      console.log(`|---:|---:|---|---:|---:|---:|---:|---:|`);
      console.log(`| ${PEERS.toLocaleString('en')} | ${ALLOWED} | ${result.crypto} | ${result.requestMiB} MiB | ${result.setSeconds} s | ${result.getSeconds} s | ${result.rssBeforeMiB} → ${result.rssAfterSetMiB} MiB (+${result.rssGrowthMiB}) | ${result.heapUsedMiB} MiB |`);
    }
  } finally {
    await server.close();
    await device.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
