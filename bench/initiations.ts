/**
 * How much of the device's thread a storm of handshake initiations takes, with the initiations
 * computed there and on the initiation thread (ThreadInitiationOffload, 'always').
 *
 *   npm run bench:initiations -- [--peers N] [--rounds R]
 *
 * A Device on the in-memory twins (its datagrams go nowhere) is given N peers that each have an
 * endpoint and a persistent keepalive, so every one dials at once. Measured from the end of the
 * set until all N initiations are sent: wall time, and the device thread's busy time (event-loop utilisation,
 * which counts only that thread). Alternating rounds; reports only, nothing asserts a timing.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Device } from '../src/device/device.ts';
import { MemoryTun } from '../src/device/tun-memory.ts';
import { MemoryBind, MemoryNetwork } from '../src/device/bind-memory.ts';
import { ThreadInitiationOffload } from '../src/device/initiation-thread.ts';
import { encodeHex } from '../src/core/keys.ts';
import { defaultCrypto } from '../src/crypto/index.ts';
import { positiveFlag } from './util.ts';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => positiveFlag(args, 'bench:initiations', name, dflt, true);
const PEERS = flag('--peers', 10_000);
const ROUNDS = flag('--rounds', 3);

function request(): string {
  const lines = [`private_key=${encodeHex(randomBytes(32))}`, 'listen_port=51820', 'replace_peers=true'];
  for (let i = 0; i < PEERS; i++) {
    const pub = defaultCrypto.x25519PrivateKey(randomBytes(32)).publicKey;
    lines.push(`public_key=${encodeHex(pub)}`, `endpoint=192.0.2.${1 + (i % 250)}:${10000 + (i % 50000)}`, 'persistent_keepalive_interval=25');
  }
  return lines.join('\n') + '\n';
}

async function round(where: 'here' | 'thread', text: string): Promise<{ wallMs: number; busyMs: number }> {
  const offload = where === 'thread' ? new ThreadInitiationOffload({ mode: 'always' }) : undefined;
  const device = new Device({ tun: new MemoryTun({ name: 'wwinit0' }), bind: new MemoryBind(new MemoryNetwork(), '192.0.2.254'), initiationOffload: offload });
  try {
    await device.up();
    if (offload) while (!offload.running) await new Promise((r) => setTimeout(r, 5));
    await device.ipcSet(text);
    // From the end of the set (its replies wait in the device's queue, none sent yet: the tick
    // that starts the storm runs on the next timer turn).
    const elu0 = performance.eventLoopUtilization();
    const t0 = performance.now();
    while (device.endpoint.counters.handshakeInitiationsSent < PEERS) await new Promise((r) => setTimeout(r, 1));
    const wallMs = performance.now() - t0;
    const elu = performance.eventLoopUtilization(elu0);
    return { wallMs, busyMs: elu.active };
  } finally {
    await device.close();
  }
}

const text = request();
console.log(`${PEERS.toLocaleString('en')} peers dialing at once (from the end of the set), ${defaultCrypto.name}, Node ${process.version}`);
console.log('| round | initiations computed | wall time | device thread busy |');
console.log('|---:|---|---:|---:|');
for (let r = 1; r <= ROUNDS; r++) {
  for (const where of ['here', 'thread'] as const) {
    const { wallMs, busyMs } = await round(where, text);
    console.log(`| ${r} | ${where === 'here' ? 'on the device thread' : 'on the initiation thread'} | ${(wallMs / 1000).toFixed(2)} s | ${(busyMs / 1000).toFixed(2)} s |`);
  }
}
