/**
 * One client process of `npm run bench:hub` (bench/hub.ts forks several, so 10,000 WebSockets
 * do not share one event loop with the measuring code). Each simulated client is the real
 * client code a mesh peer runs (`MeshHubClient` over `ws`): it connects, proves its key and
 * pings the hub every 10 s like any peer. Clients 2i and 2i+1 are partners: a round trip is
 * a signal from one to the other and its echo, both through the hub(s). With two hub URLs the
 * partners sit on different hubs, so every round trip crosses the federation twice.
 *
 * Driven over the IPC channel by bench/hub.ts:
 *   { type: 'connect', hubs, count, concurrency } → { type: 'connected', connected, failed, seconds }
 *   { type: 'rtt', rounds, inflight, payloadBytes } → { type: 'rtt', samples (ms), lost }
 *   { type: 'stop' } → closes every connection and exits
 */
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { nodeCrypto as crypto } from '../src/crypto/node.ts';
import { systemRng } from '../src/core/rng.ts';
import type { X25519PrivateKey } from '../src/core/crypto.ts';
import { MeshHubClient } from '../src/mesh/client/hub-client.ts';
import { nodeTimers, nodeWebSocket } from '../src/mesh/client/node.ts';

type Command =
  | { type: 'connect'; hubs: string[]; count: number; concurrency: number; timeoutMs: number }
  | { type: 'rtt'; rounds: number; inflight: number; payloadBytes: number; timeoutMs: number }
  | { type: 'stop' };

const REQUEST = 1, REPLY = 2;

interface Sim {
  client: MeshHubClient;
  key: X25519PrivateKey;
  connected: boolean;
}

const sims: Sim[] = [];
/** Round trips in flight: sequence number → start time (ms). */
const inflight = new Map<number, number>();
let onReply: ((seq: number) => void) | null = null;

function send(msg: unknown): void {
  process.send!(msg);
}

function makeSim(index: number, hubs: string[], onState: (sim: Sim) => void): Sim {
  const key = crypto.x25519PrivateKey(randomBytes(32));
  const sim: Sim = { client: null as unknown as MeshHubClient, key, connected: false };
  sim.client = new MeshHubClient({
    crypto, rng: systemRng, privateKey: key, hubs: [hubs[index % hubs.length]!], connect: nodeWebSocket, timers: nodeTimers, now: Date.now,
    events: {
      state: (s) => {
        const was = sim.connected;
        sim.connected = s.kind === 'connected';
        if (sim.connected !== was) onState(sim);
      },
      signal: (from, payload) => {
        if (payload[0] === REQUEST) {
          const echo = Uint8Array.from(payload);
          echo[0] = REPLY;
          sim.client.sendSignal(from, echo);
        } else if (payload[0] === REPLY && payload.length >= 5) {
          onReply?.(new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(1));
        }
      },
    },
  });
  return sim;
}

async function connectAll(hubs: string[], count: number, concurrency: number, timeoutMs: number): Promise<void> {
  const started = performance.now();
  let next = 0, open = 0, done = 0;
  await new Promise<void>((resolve) => {
    // Clients that cannot connect keep retrying; the phase ends anyway and reports them.
    setTimeout(resolve, timeoutMs).unref();
    const pump = () => {
      while (open < concurrency && next < count) {
        const i = next++;
        open++;
        let settled = false;
        const sim = makeSim(i, hubs, (s) => {
          if (settled || !s.connected) return;
          settled = true;
          open--;
          done++;
          if (done === count) resolve();
          else pump();
        });
        sims.push(sim);
        sim.client.start();
      }
    };
    pump();
  });
  send({ type: 'connected', connected: sims.filter((s) => s.connected).length, failed: count - done, seconds: (performance.now() - started) / 1000 });
}

async function roundTrips(rounds: number, parallel: number, payloadBytes: number, timeoutMs: number): Promise<void> {
  const samples: number[] = [];
  const pairs = Math.floor(sims.length / 2);
  let seq = 0, sent = 0, lost = 0;
  await new Promise<void>((resolve) => {
    const launch = () => {
      while (inflight.size < parallel && sent < rounds) {
        const pair = Math.floor(Math.random() * pairs);
        const [from, to] = Math.random() < 0.5 ? [sims[2 * pair]!, sims[2 * pair + 1]!] : [sims[2 * pair + 1]!, sims[2 * pair]!];
        const payload = randomBytes(payloadBytes);
        payload[0] = REQUEST;
        const s = seq++;
        new DataView(payload.buffer, payload.byteOffset, payload.byteLength).setUint32(1, s);
        inflight.set(s, performance.now());
        sent++;
        if (!from.client.sendSignal(to.key.publicKey, payload)) { inflight.delete(s); lost++; }
      }
      if (sent >= rounds && inflight.size === 0) resolve();
    };
    onReply = (s) => {
      const t = inflight.get(s);
      if (t === undefined) return;
      inflight.delete(s);
      samples.push(performance.now() - t);
      launch();
    };
    // A round trip the hub dropped would stall the pipeline: give it up after timeoutMs.
    const reaper = setInterval(() => {
      const now = performance.now();
      for (const [s, t] of inflight) if (now - t > timeoutMs) { inflight.delete(s); lost++; }
      launch();
      if (sent >= rounds && inflight.size === 0) { clearInterval(reaper); resolve(); }
    }, 100);
    launch();
  });
  onReply = null;
  send({ type: 'rtt', samples, lost });
}

process.on('message', (m: Command) => {
  if (m.type === 'connect') void connectAll(m.hubs, m.count, m.concurrency, m.timeoutMs);
  else if (m.type === 'rtt') void roundTrips(m.rounds, m.inflight, m.payloadBytes, m.timeoutMs);
  else if (m.type === 'stop') {
    for (const s of sims) s.client.stop();
    setTimeout(() => process.exit(0), 200);
  }
});
send({ type: 'ready' });
