/**
 * How long a device takes to accept 10,000 peers through the UAPI, and what they cost in memory
 * (issue 4: under 2 s and under 200 MB RSS).
 *
 *   npm run bench:peers -- [--peers N] [--allowed N] [--json] [--daemons]
 *
 * In process: a Device on the in-memory twins (no TUN, no UDP) serves its UAPI on a unix socket in
 * a temporary directory, exactly as the daemon does; a client writes one `set=1` request with N
 * peers (each a public key, a preshared key, an endpoint, a persistent keepalive and `--allowed`
 * /32 allowed IPs) the way `wg setconf` does, and waits for `errno=0`. Then a `get=1` reads
 * everything back. Reported: wall time of the set and of the get, the process RSS before and
 * after (and the growth), heap used, and the set request's size.
 *
 * --daemons (root, wg and wireguard-go): N peers, as a wg config file, given with `wg setconf`
 * to a real `wireweave -f` daemon and to wireguard-go, each in its own network namespace
 * (test/support/netns.ts), link down, in two scenarios: "hub" (public key, preshared key,
 * allowed IPs: a server whose clients come to it) and "dialing" (also an endpoint and a 25 s
 * persistent keepalive, so every peer starts a handshake at once). Reported: `wg setconf` and
 * `wg show dump` wall times and the daemon's RSS (VmRSS, VmHWM). Reports only; nothing asserts
 * a timing.
 *
 * --bin DIR (with --daemons): start wireweave as wg-quick does, `DIR/bin/wireweave IFNAME`
 * (the compiled dist/ of checkout DIR, daemonized, so with the Node options the daemon gives
 * its re-executed process), instead of the sources in the foreground.
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
import type { Rig, RigNode } from '../test/support/netns.ts';
import { positiveFlag } from './util.ts';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => positiveFlag(args, 'bench:peers', name, dflt, true);
const PEERS = flag('--peers', 10_000);
const ALLOWED = flag('--allowed', 1);
const JSON_OUT = args.includes('--json');
const DAEMONS = args.includes('--daemons');
const BIN_DIR = args.includes('--bin') ? path.resolve(args[args.indexOf('--bin') + 1] ?? '.') : null;

const mib = (n: number): number => Math.round((n / 1048576) * 10) / 10;

/** The `--allowed` /32 prefixes of peer `i`: consecutive addresses in 10.0.0.0/8. */
function allowedIps(i: number): string[] {
  return Array.from({ length: ALLOWED }, (_, a) => {
    const n = i * ALLOWED + a;
    return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}/32`;
  });
}

function request(peers: number): string {
  const lines = ['set=1', `private_key=${encodeHex(randomBytes(32))}`, 'listen_port=51820', 'replace_peers=true'];
  for (let i = 0; i < peers; i++) {
    // Real public keys: the device precomputes DH(static, peer static) for each, as wireguard-go does.
    const pub = defaultCrypto.x25519PrivateKey(randomBytes(32)).publicKey;
    lines.push(`public_key=${encodeHex(pub)}`, `preshared_key=${encodeHex(randomBytes(32))}`,
      `endpoint=192.0.2.${1 + (i % 250)}:${10000 + (i % 50000)}`, 'persistent_keepalive_interval=25');
    for (const prefix of allowedIps(i)) lines.push(`allowed_ip=${prefix}`);
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

/** `wg setconf` of N peers into real daemons (wireweave and wireguard-go), side by side. */
async function daemons(): Promise<void> {
  const { createRig, genKeyPair, genPsk } = await import('../test/support/netns.ts');
  const { run } = await import('../test/support/wggo.ts');
  const rows: string[] = [];
  // hub: what a server with 10,000 road-warrior clients is told (no endpoints, nothing sent);
  // dialing: every peer also has an endpoint and a 25 s keepalive, so all 10,000 handshake at once.
  for (const scenario of ['hub', 'dialing'] as const) {
    const rig = await createRig({ name: 'bench peers' });
    try {
      const lines = ['[Interface]', `PrivateKey = ${genKeyPair().privateKey}`, 'ListenPort = 51820', ''];
      for (let i = 0; i < PEERS; i++) {
        lines.push('[Peer]', `PublicKey = ${genKeyPair().publicKey}`, `PresharedKey = ${genPsk()}`);
        if (scenario === 'dialing') lines.push(`Endpoint = 192.0.2.${1 + (i % 250)}:${10000 + (i % 50000)}`, 'PersistentKeepalive = 25');
        lines.push(`AllowedIPs = ${allowedIps(i).join(', ')}`, '');
      }
      const conf = rig.secretFile('peers.conf', lines.join('\n'));
      for (const impl of ['wireweave', 'wireguard-go'] as const) {
        const node = rig.nodes[impl === 'wireweave' ? 0 : 1]!;
        const d = impl === 'wireweave' && BIN_DIR ? await startDaemonized(rig, node, BIN_DIR) : await rig.startDaemon(node, impl);
        const status = (key: string): number => {
          const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${d.proc.pid}/status`, 'utf8'));
          return m ? Number(m[1]) / 1024 : NaN;
        };
        const rssIdle = status('VmRSS');
        let t = performance.now();
        const set = await run('wg', ['setconf', d.ifname, conf], { timeoutMs: 120_000 });
        const setS = (performance.now() - t) / 1000;
        if (set.code !== 0) throw new Error(`${impl}: wg setconf failed: ${set.stderr.trim()}`);
        t = performance.now();
        const dump = await run('wg', ['show', d.ifname, 'dump'], { timeoutMs: 120_000 });
        const dumpS = (performance.now() - t) / 1000;
        const peers = dump.stdout.trim().split('\n').length - 1;
        if (peers !== PEERS) throw new Error(`${impl}: wg show dump lists ${peers} peers, expected ${PEERS}`);
        await new Promise((r) => setTimeout(r, 1000));
        rows.push(`| ${scenario} | ${impl} | ${PEERS.toLocaleString('en')} | ${setS.toFixed(2)} s | ${dumpS.toFixed(2)} s | ${mib(rssIdle * 1048576)} MiB | ${mib(status('VmRSS') * 1048576)} MiB | ${mib(status('VmHWM') * 1048576)} MiB |`);
        if (process.env.BENCH_PEERS_LOG) console.error(`${impl} log: ${d.logs().split('\n').length} lines; tail:\n${d.logs().slice(-1500)}`);
        await d.proc.stop(2000);
      }
    } finally {
      await rig.destroy();
    }
  }
  console.log('| scenario | daemon | peers | wg setconf | wg show dump | RSS idle | RSS 1 s after | peak RSS |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
}

/** `DIR/bin/wireweave IFNAME` in `node`'s namespace: daemonized, as wg-quick starts it. */
async function startDaemonized(rig: Rig, node: RigNode, dir: string) {
  const ifname = rig.ifname('d');
  const up = await rig.exec(node, [path.join(dir, 'bin', 'wireweave'), ifname], { timeoutMs: 20_000 });
  if (up.code !== 0) throw new Error(`wireweave ${ifname} (daemonized) failed: ${up.stderr.trim()}`);
  const pid = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number).find((p) => {
    try { return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes(ifname); } catch { return false; }
  });
  if (pid === undefined) throw new Error(`the daemon of ${ifname} was not found`);
  const stop = async (waitMs: number): Promise<void> => {
    try { process.kill(pid, 'SIGTERM'); } catch { return; }
    for (const end = Date.now() + waitMs; fs.existsSync(`/proc/${pid}`) && Date.now() < end;) await new Promise((r) => setTimeout(r, 50));
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  };
  return { ifname, proc: { pid, stop }, logs: () => '(daemonized: logs not kept)' };
}

if (DAEMONS) await daemons();
else await main();
