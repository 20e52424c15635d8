/**
 * The hub client's failover on in-memory hubs and a virtual clock: hubs are tried in the
 * configured order, a failed or dead hub moves the client to the next one after a backoff that
 * grows while every hub fails and resets after a success, and relay works again on the new hub.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nodeCrypto as crypto } from '../../../src/crypto/node.ts';
import { seededRng } from '../../../src/core/rng.ts';
import { generatePrivateKey } from '../../../src/core/keys.ts';
import type { X25519PrivateKey } from '../../../src/core/crypto.ts';
import { Hub } from '../../../src/mesh/hub/hub.ts';
import type { HubClient } from '../../../src/mesh/hub/hub.ts';
import { MemoryHubLink } from '../../../src/mesh/hub/memory-link.ts';
import { MeshHubClient } from '../../../src/mesh/client/hub-client.ts';
import type { HubConnectionState, WebSocketLike } from '../../../src/mesh/client/hub-client.ts';
import { VirtualTimers } from '../virtual-timers.ts';

let seed = 900;
const identity = (): X25519PrivateKey => crypto.x25519PrivateKey(generatePrivateKey(seededRng(seed++)));

/** Hubs by URL on the virtual clock; a URL with no hub (or a killed one) refuses. */
class MemoryNet {
  readonly hubs = new Map<string, Hub>();
  readonly attempts: string[] = [];
  private readonly sockets = new Set<{ hub: string; close(code: number, reason: string): void }>();
  readonly timers: VirtualTimers;
  constructor(timers: VirtualTimers) {
    this.timers = timers;
  }

  kill(url: string): void {
    this.hubs.delete(url);
    for (const s of [...this.sockets]) if (s.hub === url) s.close(1006, '');
  }

  connect = (url: string): WebSocketLike => {
    this.attempts.push(url);
    const hubs = this.hubs, sockets = this.sockets, timers = this.timers;
    let hubClient: HubClient | null = null;
    const link = new MemoryHubLink({ address: '192.0.2.1', port: 1 });
    const ws: WebSocketLike & { readyState: number } = {
      binaryType: 'arraybuffer', bufferedAmount: 0, readyState: 0,
      onopen: null, onmessage: null, onclose: null, onerror: null,
      send(data) {
        const hub = hubs.get(url);
        if (hub && hubClient && ws.readyState === 1) hub.receive(timers.t, hubClient, Uint8Array.from(data));
      },
      close(code = 1000, reason = '') {
        if (ws.readyState === 3) return;
        ws.readyState = 3;
        const hub = hubs.get(url);
        if (hub && hubClient) hub.disconnect(hubClient);
        sockets.delete(entry);
        timers.setTimeout(() => ws.onclose?.({ code, reason }), 0);
      },
    };
    const entry = { hub: url, close: (code: number, reason: string) => ws.close(code, reason) };
    this.sockets.add(entry);
    // Frames from the hub arrive on a later turn, as a socket's would.
    link.onSend = (frame) => { const copy = Uint8Array.from(frame); timers.setTimeout(() => { if (ws.readyState === 1) ws.onmessage?.({ data: copy.buffer }); }, 0); };
    timers.setTimeout(() => {
      const hub = this.hubs.get(url);
      if (!hub) {
        ws.close(1006, '');
        return;
      }
      ws.readyState = 1;
      ws.onopen?.({});
      hubClient = hub.connect(timers.t, link);
    }, 1);
    return ws;
  };
}

/** The hub a client is connected to, or null (a call, so no narrowing sticks across awaits). */
function hubOf(c: MeshHubClient): string | null {
  const s: HubConnectionState = c.state;
  return s.kind === 'connected' ? s.hub : null;
}

function retryOf(c: MeshHubClient): number | null {
  const s: HubConnectionState = c.state;
  return s.kind === 'disconnected' ? s.retryInMs : null;
}

function setup(urls: string[], alive: string[]) {
  const timers = new VirtualTimers();
  const net = new MemoryNet(timers);
  for (const [i, u] of alive.entries()) net.hubs.set(u, new Hub({ crypto, rng: seededRng(40 + i) }));
  const mk = (id = identity(), packets: Uint8Array[] = []) => {
    const states: HubConnectionState[] = [];
    const c = new MeshHubClient({
      crypto, rng: seededRng(seed++), privateKey: id, hubs: urls, connect: net.connect, timers, now: () => timers.t,
      pingIntervalMs: 1000, deadAfterMs: 3000,
      events: { state: (s) => states.push(s), packet: (_f, d) => packets.push(Uint8Array.from(d)) },
    });
    c.start();
    return { c, id, states, packets };
  };
  return { timers, net, mk };
}

describe('hub client failover (memory hubs, virtual clock)', () => {
  it('tries the hubs in order and settles on the first that answers', () => {
    const { timers, net, mk } = setup(['ws://h1', 'ws://h2', 'ws://h3'], ['ws://h2', 'ws://h3']);
    const a = mk();
    timers.advance(10);
    assert.deepEqual(net.attempts, ['ws://h1'], 'the first hub first');
    assert.equal(retryOf(a.c), 250, 'then a backoff');
    timers.advance(240); // the refusal came at t = 1: the retry is due at 251
    assert.deepEqual(net.attempts, ['ws://h1'], 'not before the backoff ends');
    timers.advance(20);
    assert.deepEqual(net.attempts, ['ws://h1', 'ws://h2']);
    assert.equal(hubOf(a.c), 'ws://h2');
    timers.advance(60_000);
    assert.deepEqual(net.attempts, ['ws://h1', 'ws://h2'], 'stays on a working hub (pings answered)');
  });

  it('moves every client to the next hub when theirs dies, and relay resumes there', () => {
    const { timers, net, mk } = setup(['ws://h1', 'ws://h2'], ['ws://h1', 'ws://h2']);
    const b = mk();
    const a = mk();
    timers.advance(10);
    assert.equal(hubOf(a.c), 'ws://h1');
    assert.equal(hubOf(b.c), 'ws://h1');
    assert.ok(a.c.sendPacket(b.id.publicKey, Uint8Array.of(1)));
    timers.advance(1);
    assert.equal(b.packets.length, 1);
    net.kill('ws://h1');
    timers.advance(1);
    assert.ok(!a.c.connected && !a.c.sendPacket(b.id.publicKey, Uint8Array.of(2)), 'nothing is sent while between hubs');
    timers.advance(300);
    assert.equal(hubOf(a.c), 'ws://h2');
    assert.equal(hubOf(b.c), 'ws://h2');
    assert.ok(a.c.sendPacket(b.id.publicKey, Uint8Array.of(3)));
    timers.advance(1);
    assert.deepEqual(b.packets.map((p) => p[0]), [1, 3]);
    assert.equal(a.c.counters.failovers, 1);
  });

  it('backs off more while every hub fails, cycling through the list; a success resets it', () => {
    const { timers, net, mk } = setup(['ws://h1', 'ws://h2'], []);
    const a = mk();
    timers.advance(30_000);
    const retries = a.states.filter((s) => s.kind === 'disconnected').map((s) => s.kind === 'disconnected' && s.retryInMs);
    assert.deepEqual(retries.slice(0, 7), [250, 500, 1000, 2000, 5000, 10_000, 10_000]);
    assert.deepEqual(net.attempts.slice(0, 4), ['ws://h1', 'ws://h2', 'ws://h1', 'ws://h2']);
    net.hubs.set('ws://h1', new Hub({ crypto, rng: seededRng(7) }));
    net.hubs.set('ws://h2', new Hub({ crypto, rng: seededRng(8) }));
    timers.advance(10_001);
    assert.ok(a.c.connected);
    const at = hubOf(a.c) ?? '';
    net.kill(at);
    timers.advance(1);
    const last = a.states.at(-1)!;
    assert.ok(last.kind === 'disconnected' && last.retryInMs === 250, 'first retry after a success is quick again');
  });

  it('gives up on a hub that stops answering and moves on', () => {
    const { timers, net, mk } = setup(['ws://h1', 'ws://h2'], ['ws://h1', 'ws://h2']);
    const a = mk();
    timers.advance(10);
    assert.equal(hubOf(a.c), 'ws://h1');
    // h1 hangs: the socket stays open but nothing comes back.
    const hung = net.hubs.get('ws://h1')!;
    hung.receive = () => {};
    net.hubs.delete('ws://h1');
    timers.advance(3000 + 1000 + 300);
    assert.equal(hubOf(a.c), 'ws://h2', `moved on: ${JSON.stringify(a.c.state)}`);
    assert.ok(a.states.some((s) => s.kind === 'disconnected' && /no answer from the hub/.test(s.reason)));
  });
});
