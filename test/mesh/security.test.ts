/**
 * Issue 14, must-show 7: the mesh against a hostile hub, a hostile client and a flood, on the
 * in-memory twins (a real Hub, mesh nodes on real Devices over MemoryTun/MemoryBind, WebSockets
 * replaced by a "hub double" that records every byte it carries and can replay, hold, reorder,
 * flip bits and misdeliver) with a virtual clock. Each refusal is checked where a user sees it:
 * the node's status (`show --json`) and the hub's counters (its metrics).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nodeCrypto as crypto } from '../../src/crypto/node.ts';
import { seededRng } from '../../src/core/rng.ts';
import { encodeHex, generatePrivateKey } from '../../src/core/keys.ts';
import type { X25519PrivateKey } from '../../src/core/crypto.ts';
import { Device } from '../../src/device/device.ts';
import { MemoryBind, MemoryNetwork } from '../../src/device/bind-memory.ts';
import { MemoryTun } from '../../src/device/tun-memory.ts';
import { Hub } from '../../src/mesh/hub/hub.ts';
import type { HubClient, HubOptions } from '../../src/mesh/hub/hub.ts';
import { MemoryHubLink } from '../../src/mesh/hub/memory-link.ts';
import { MeshHubClient } from '../../src/mesh/client/hub-client.ts';
import type { WebSocketLike } from '../../src/mesh/client/hub-client.ts';
import { VirtualTimers } from './virtual-timers.ts';
import { MeshBind } from '../../src/mesh/peer/mesh-bind.ts';
import { MeshNode } from '../../src/mesh/peer/mesh-node.ts';
import type { MeshPeerStatus } from '../../src/mesh/peer/mesh-node.ts';
import { hubProof, signalKeys } from '../../src/mesh/protocol/keys.ts';
import { SignalChannel } from '../../src/mesh/protocol/envelope.ts';
import { FRAME, decodeFrame, encodeFrame } from '../../src/mesh/protocol/frames.ts';
import { SIGNAL, decodeSignalBody, encodeSignalBody } from '../../src/mesh/protocol/signal-body.ts';

const T0 = Date.UTC(2026, 11, 6);
let seed = 7000;
const identity = (): X25519PrivateKey => crypto.x25519PrivateKey(generatePrivateKey(seededRng(seed++)));

interface Carried { dir: 'up' | 'down'; conn: number; bytes: Uint8Array }

/** What the double does with one frame on its way: pass it, or take it (a test may deliver it later). */
type Tap = (dir: 'up' | 'down', conn: number, frame: Uint8Array) => 'pass' | 'drop';

/**
 * The hub double: a real Hub behind in-memory "WebSockets" that records every byte both ways
 * and lets the test act as a malicious hub (tap frames, inject frames to any connection).
 */
class HubDouble {
  readonly timers = new VirtualTimers();
  readonly hub: Hub;
  readonly carried: Carried[] = [];
  tap: Tap = () => 'pass';
  private readonly conns: { ws: WebSocketLike & { readyState: number }; client: HubClient | null; key: () => Uint8Array | null }[] = [];

  constructor(options: Partial<HubOptions> = {}) {
    this.hub = new Hub({ crypto, rng: seededRng(3), ...options });
  }

  /** Unix ms for envelopes, on the same virtual clock. */
  wallNow = (): number => T0 + this.timers.t;

  connect = (_url: string): WebSocketLike => {
    const n = this.conns.length;
    const timers = this.timers, hub = this.hub, carried = this.carried;
    // Each client comes from its own address behind a NAT; the hub sees only that one.
    const link = new MemoryHubLink({ address: `203.0.113.${100 + n}`, port: 40_000 + n });
    const conn = { ws: null as unknown as WebSocketLike & { readyState: number }, client: null as HubClient | null, key: () => conn.client?.key ?? null };
    const ws: WebSocketLike & { readyState: number } = {
      binaryType: 'arraybuffer', bufferedAmount: 0, readyState: 0, onopen: null, onmessage: null, onclose: null, onerror: null,
      send: (data) => {
        const bytes = Uint8Array.from(data);
        carried.push({ dir: 'up', conn: n, bytes });
        if (this.tap('up', n, bytes) === 'pass' && conn.client && ws.readyState === 1) hub.receive(timers.t, conn.client, bytes);
      },
      close: (code = 1000, reason = '') => {
        if (ws.readyState === 3) return;
        ws.readyState = 3;
        if (conn.client) hub.disconnect(conn.client);
        timers.setTimeout(() => ws.onclose?.({ code, reason }), 0);
      },
    };
    conn.ws = ws;
    // The hub closing the link closes the client's socket, as a WebSocket close would.
    link.close = (code, reason) => {
      if (ws.readyState === 3) return;
      ws.readyState = 3;
      timers.setTimeout(() => ws.onclose?.({ code, reason }), 0);
    };
    link.onSend = (frame) => {
      const bytes = Uint8Array.from(frame);
      carried.push({ dir: 'down', conn: n, bytes });
      if (this.tap('down', n, bytes) === 'pass') this.deliver(n, bytes);
    };
    this.conns.push(conn);
    timers.setTimeout(() => {
      ws.readyState = 1;
      ws.onopen?.({});
      conn.client = hub.connect(timers.t, link);
    }, 1);
    return ws;
  };

  /** Hands `frame` to connection `n` as if the hub had sent it (a later turn, as a socket would). */
  deliver(n: number, frame: Uint8Array): void {
    const ws = this.conns[n]!.ws;
    const copy = Uint8Array.from(frame);
    this.timers.setTimeout(() => { if (ws.readyState === 1) ws.onmessage?.({ data: copy.buffer }); }, 0);
  }

  /** The connection proven for `key`. */
  connOf(key: Uint8Array): number {
    const hex = encodeHex(key);
    const i = this.conns.findIndex((c) => c.ws.readyState === 1 && c.key() && encodeHex(c.key()!) === hex);
    assert.ok(i >= 0, 'the key is connected');
    return i;
  }

  /** RecvSignal frames carried to `to` from `from`, in order. */
  signals(from: Uint8Array, to: Uint8Array): Uint8Array[] {
    const n = this.connOf(to);
    return this.carried.filter((c) => {
      if (c.dir !== 'down' || c.conn !== n) return false;
      const f = decodeFrame(c.bytes);
      return f?.type === FRAME.recvSignal && encodeHex(f.key) === encodeHex(from);
    }).map((c) => c.bytes);
  }
}

interface Side {
  device: Device;
  node: MeshNode;
  key: X25519PrivateKey;
  peer(pub: Uint8Array): MeshPeerStatus;
}

const closers: (() => Promise<void>)[] = [];
after(async () => { for (const c of closers) await c().catch(() => {}); });

async function side(d: HubDouble, net: MemoryNetwork, address: string, addresses: () => string[], key: X25519PrivateKey): Promise<Side> {
  const bind = new MeshBind(new MemoryBind(net, address));
  const device = new Device({ tun: new MemoryTun({ name: `wwsec${seed % 1000}`, mtu: 1420 }), bind, rng: seededRng(seed++) });
  const node = new MeshNode({
    device, bind, hubs: ['ws://hub.invalid/mesh'], relay: 'auto', crypto, rng: seededRng(seed++), connect: d.connect, timers: d.timers,
    now: () => d.timers.t, wallNow: d.wallNow, hostAddresses: addresses, log: { error: () => {}, verbose: () => {} },
    candidateRefreshMs: REFRESH_MS,
  });
  node.start();
  await device.up();
  await device.ipcSet(`private_key=${encodeHex(keyBytes.get(key)!)}\n`);
  closers.push(async () => { node.stop(); await device.close(); });
  const peer = (pub: Uint8Array) => {
    const p = node.status().peers.find((x) => x.publicKey === Buffer.from(pub).toString('base64'));
    assert.ok(p, 'the peer is a mesh peer');
    return p;
  };
  return { device, node, key, peer };
}

/** Private key bytes by identity (the device takes bytes; identities are prepared keys). */
const keyBytes = new Map<X25519PrivateKey, Uint8Array>();
function newKey(): X25519PrivateKey {
  const bytes = generatePrivateKey(seededRng(seed++));
  const k = crypto.x25519PrivateKey(bytes);
  keyBytes.set(k, bytes);
  return k;
}

async function addPeer(s: Side, other: Side, allowed: string): Promise<void> {
  await s.device.ipcSet(`public_key=${encodeHex(other.key.publicKey)}\n${allowed.split(',').map((a) => `allowed_ip=${a}`).join('\n')}\n`);
}

/** Runs the virtual clock and the promise jobs the device's configuration needs. */
async function settle(d: HubDouble, ms = 50): Promise<void> {
  for (let i = 0; i < ms; i++) {
    d.timers.advance(1);
    await new Promise((r) => setImmediate(r));
  }
}

/** How often a node looks at its addresses again (30 s by default; shorter keeps the tests quick). */
const REFRESH_MS = 1000;
const TUNNEL = { a: ['10.9.0.1', 'fd10::1'], b: ['10.9.0.2', 'fd10::2'], c: ['10.9.0.3', 'fd10::3'] };
/** Each side's host addresses (its candidates); a test changes them to make a new generation. */
const hostsOf = () => ({ a: ['192.0.2.1', '2001:db8::a1'], b: ['198.51.100.2', '2001:db8::b2'], c: ['198.51.100.3', '2001:db8::c3'] });
const HOST = hostsOf();

/** A, B and C on one hub double; A and C are B's peers, B is A's and C's. Candidates exchanged. */
async function trio(options: Partial<HubOptions> = {}) {
  const d = new HubDouble(options);
  const net = new MemoryNetwork();
  net.filter = () => false; // no direct path: everything crosses the hub
  const hosts = hostsOf();
  const a = await side(d, net, hosts.a[0]!, () => hosts.a, newKey());
  const b = await side(d, net, hosts.b[0]!, () => hosts.b, newKey());
  const c = await side(d, net, hosts.c[0]!, () => hosts.c, newKey());
  await addPeer(a, b, `${TUNNEL.b[0]}/32,${TUNNEL.b[1]}/128`);
  await addPeer(b, a, `${TUNNEL.a[0]}/32,${TUNNEL.a[1]}/128`);
  await addPeer(b, c, `${TUNNEL.c[0]}/32,${TUNNEL.c[1]}/128`);
  await addPeer(c, b, `${TUNNEL.b[0]}/32,${TUNNEL.b[1]}/128`);
  await addPeer(c, a, `${TUNNEL.a[0]}/32,${TUNNEL.a[1]}/128`);
  await settle(d);
  assert.equal(d.hub.clientCount, 3);
  return { d, a, b, c, hosts, net };
}

function dropsAt(s: Side, from: Side): MeshPeerStatus['drops'] {
  return s.peer(from.key.publicKey).drops;
}

function hasBytes(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

function ipBytes(address: string): Uint8Array {
  if (address.includes('.')) return Uint8Array.from(address.split('.').map(Number));
  const [head, tail] = address.split('::') as [string, string?];
  const h = head ? head.split(':') : [], t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t].map((g) => parseInt(g, 16));
  return Uint8Array.from(groups.flatMap((g) => [g >> 8, g & 0xff]));
}

describe('mesh security: a hostile hub, a hostile client, a flood (must-show 7)', () => {
  it('a replayed signal is refused and counted; the original was accepted once', async () => {
    const { d, a, b } = await trio();
    const recorded = d.signals(a.key.publicKey, b.key.publicKey);
    assert.ok(recorded.length >= 1, 'A signalled B through the hub');
    const before = b.node.counters.signalsReceived;
    for (const f of recorded) d.deliver(d.connOf(b.key.publicKey), f);
    await settle(d, 5);
    assert.equal(dropsAt(b, a).replay, recorded.length, 'every replayed envelope counted as a replay');
    assert.equal(b.node.counters.signalsReceived, before, 'none of them was acted on');
    // The same envelope replayed later, past the clock skew, is refused as stale instead.
    d.timers.advance(121_000);
    d.deliver(d.connOf(b.key.publicKey), recorded[0]!);
    await settle(d, 5);
    assert.equal(dropsAt(b, a).stale, 1);
  });

  it('reordered signals: the older candidates never replace the newer; an envelope from before a restart is refused', async () => {
    const { d, a, b, hosts, net } = await trio();
    // A's addresses change twice; the hub holds both announcements and delivers them swapped.
    const held: Uint8Array[] = [];
    const nB = d.connOf(b.key.publicKey);
    d.tap = (dir, n, f) => {
      if (dir === 'down' && n === nB && decodeFrame(f)?.type === FRAME.recvSignal) { held.push(f); return 'drop'; }
      return 'pass';
    };
    hosts.a.splice(0, 2, '192.0.2.11', '2001:db8::a11');
    await settle(d, REFRESH_MS + 50);
    hosts.a.splice(0, 2, '192.0.2.12', '2001:db8::a12');
    await settle(d, REFRESH_MS + 50);
    assert.equal(held.length, 2, 'two generations of candidates held');
    d.tap = () => 'pass';
    d.deliver(nB, held[1]!);
    d.deliver(nB, held[0]!);
    await settle(d, 5);
    const port = a.device.port;
    assert.ok(b.peer(a.key.publicKey).candidates.includes(`192.0.2.12:${port}`), 'the newest generation stands');
    assert.ok(!b.peer(a.key.publicKey).candidates.includes(`192.0.2.11:${port}`), 'the older one did not come back');
    assert.equal(b.node.counters.staleCandidates, 1, 'the older generation is counted, not acted on');

    // A restarts its mesh session (a new epoch); an envelope of the old epoch delivered after the
    // new one is refused, and counted.
    d.tap = (dir, n, f) => {
      if (dir === 'down' && n === nB && decodeFrame(f)?.type === FRAME.recvSignal) { held.push(f); return 'drop'; }
      return 'pass';
    };
    hosts.a.splice(0, 2, '192.0.2.13', '2001:db8::a13');
    await settle(d, REFRESH_MS + 50);
    const oldEpoch = held.pop()!;
    d.tap = () => 'pass';
    const before = b.node.counters.signalsReceived;
    a.node.stop();
    await a.device.close();
    d.timers.advance(1000);
    const a2 = await side(d, net, '192.0.2.14', () => ['192.0.2.14'], a.key);
    await addPeer(a2, b, `${TUNNEL.b[0]}/32`);
    await settle(d, 50);
    const fresh = b.node.counters.signalsReceived;
    assert.ok(fresh > before, 'the restarted A signalled B in its new epoch');
    d.deliver(d.connOf(b.key.publicKey), oldEpoch);
    await settle(d, 5);
    assert.equal(dropsAt(b, a).oldEpoch, 1, 'the old-epoch envelope is counted');
    assert.equal(b.node.counters.signalsReceived, fresh, 'and not acted on');
  });

  it('an envelope delayed past the replay window is refused as a replay', () => {
    const a = identity(), b = identity();
    const ab = new SignalChannel(crypto, seededRng(1), signalKeys(crypto, a, b.publicKey)!, a.publicKey, b.publicKey, T0);
    const ba = new SignalChannel(crypto, seededRng(2), signalKeys(crypto, b, a.publicKey)!, b.publicKey, a.publicKey, T0);
    const late = ab.seal(T0, Uint8Array.of(1));
    let opened = 0;
    for (let i = 0; i < 8300; i++) if (ba.open(T0, ab.seal(T0, Uint8Array.of(2))).ok) opened++;
    assert.equal(opened, 8300);
    assert.deepEqual(ba.open(T0, late), { ok: false, reason: 'replay' });
    assert.equal(ba.drops.replay, 1);
  });

  it('a tampered signal is refused and counted: any flipped bit in the envelope, or a changed sender', async () => {
    const { d, a, b, c } = await trio();
    const [f] = d.signals(a.key.publicKey, b.key.publicKey);
    assert.ok(f);
    const nB = d.connOf(b.key.publicKey);
    const before = b.node.counters.signalsReceived;
    const envelopeStart = 1 + 32 + 1 + 8 + 8 + 8; // frame type, sender, then the envelope's version, epoch, counter, sent
    let flips = 0;
    for (let i = envelopeStart; i < f.length; i += 7) {
      const t = Uint8Array.from(f);
      t[i]! ^= 0x10;
      d.deliver(nB, t);
      flips++;
    }
    await settle(d, 5);
    assert.equal(dropsAt(b, a).seal, flips, 'each flipped bit counted as a seal failure');
    // A header field flipped (the epoch, counter or sent time) is authenticated too.
    for (const at of [1 + 32 + 1 + 3, 1 + 32 + 9 + 7, 1 + 32 + 17 + 7]) {
      const t = Uint8Array.from(f);
      t[at]! ^= 0x01;
      d.deliver(nB, t);
    }
    await settle(d, 5);
    assert.equal(dropsAt(b, a).seal, flips + 3);
    // The hub stamps C as the sender of A's envelope: it opens under no key B shares with C.
    const restamped = Uint8Array.from(f);
    restamped.set(c.key.publicKey, 1);
    d.deliver(nB, restamped);
    await settle(d, 5);
    assert.equal(dropsAt(b, c).seal, 1);
    // A sender B does not know at all.
    const stranger = Uint8Array.from(f);
    stranger.set(identity().publicKey, 1);
    const unknown = b.node.counters.unknownSender;
    d.deliver(nB, stranger);
    await settle(d, 5);
    assert.equal(b.node.counters.unknownSender, unknown + 1);
    assert.equal(b.node.counters.signalsReceived, before, 'nothing tampered was acted on');
  });

  it('a misaddressed signal (A to B, delivered to C as from A) is refused and counted', async () => {
    const { d, a, b, c } = await trio();
    const [f] = d.signals(a.key.publicKey, b.key.publicKey);
    assert.ok(f);
    const before = c.node.counters.signalsReceived;
    const seal = dropsAt(c, a).seal;
    d.deliver(d.connOf(c.key.publicKey), f);
    await settle(d, 5);
    assert.equal(dropsAt(c, a).seal, seal + 1);
    assert.equal(c.node.counters.signalsReceived, before);
    // Reflected: A's own envelope to B handed back to A as if B had sent it.
    const reflected = Uint8Array.from(f);
    reflected.set(b.key.publicKey, 1);
    d.deliver(d.connOf(a.key.publicKey), reflected);
    await settle(d, 5);
    assert.equal(dropsAt(a, b).seal, 1);
  });

  it("registering another peer's key is refused, even with its recorded hello; the victim keeps its traffic", async () => {
    const { d, b, hosts } = await trio();
    const hello = d.carried.find((c) => c.dir === 'up' && c.conn === d.connOf(b.key.publicKey) && c.bytes[0] === FRAME.clientHello);
    assert.ok(hello, "B's hello was recorded");
    // The attacker replays B's hello on a new connection (a new challenge) …
    const replayed = d.connect('ws://hub.invalid/mesh');
    await settle(d, 2);
    replayed.send(hello.bytes);
    // … and claims B's key with a proof made with its own key.
    const forged = d.connect('ws://hub.invalid/mesh');
    forged.onmessage = (ev) => {
      const sh = decodeFrame(new Uint8Array(ev.data as ArrayBuffer));
      if (sh?.type !== FRAME.serverHello) return;
      const proof = hubProof(crypto, identity(), sh.hubEphemeral, sh.challenge)!;
      forged.send(encodeFrame({ type: FRAME.clientHello, version: 1, publicKey: b.key.publicKey, proof, tokenProof: new Uint8Array(16) }));
    };
    await settle(d, 5);
    assert.equal(forged.readyState, 3, 'closed by the hub');
    assert.equal(d.hub.counters.refused.badProof, 2);
    assert.equal(replayed.readyState, 3);
    // B is still the one registered, and A's signals still reach it.
    const received = b.node.counters.signalsReceived;
    hosts.a.splice(0, 2, '192.0.2.21', '2001:db8::a21');
    await settle(d, REFRESH_MS + 50);
    assert.ok(b.node.counters.signalsReceived > received, 'B still receives');
    assert.equal(b.node.status().hub.state, 'connected');
  });

  it('a recording hub sees no candidate address, name or tunnel address in clear, either way', async () => {
    const { d, a, b } = await trio();
    // Candidates crossed (B knows A's) …
    assert.ok(b.peer(a.key.publicKey).candidates.includes(`${HOST.a[0]}:${a.device.port}`));
    // … and a Hello with a name and tunnel addresses (what discovery sends) crosses too.
    const x = identity(), y = identity();
    const heard: Uint8Array[] = [];
    const cx = new MeshHubClient({ crypto, rng: seededRng(seed++), privateKey: x, hubs: ['ws://h'], connect: d.connect, timers: d.timers, now: d.wallNow });
    const cy = new MeshHubClient({
      crypto, rng: seededRng(seed++), privateKey: y, hubs: ['ws://h'], connect: d.connect, timers: d.timers, now: d.wallNow,
      events: { signal: (_f, e) => heard.push(Uint8Array.from(e)) },
    });
    cx.start(); cy.start();
    await settle(d, 5);
    const xy = new SignalChannel(crypto, seededRng(1), signalKeys(crypto, x, y.publicKey)!, x.publicKey, y.publicKey, d.wallNow());
    const yx = new SignalChannel(crypto, seededRng(2), signalKeys(crypto, y, x.publicKey)!, y.publicKey, x.publicKey, d.wallNow());
    const name = 'alice-laptop';
    cx.sendSignal(y.publicKey, xy.seal(d.wallNow(), encodeSignalBody({ type: SIGNAL.hello, name, addresses: [{ address: '10.77.0.5', bits: 32 }, { address: 'fd77::5', bits: 128 }] })));
    await settle(d, 5);
    const opened = yx.open(d.wallNow(), heard[0]!);
    assert.ok(opened.ok && decodeSignalBody(opened.body)?.type === SIGNAL.hello, 'the Hello was carried');
    cx.stop(); cy.stop();

    const secrets = [...HOST.a, ...HOST.b, ...HOST.c, ...TUNNEL.a, ...TUNNEL.b, ...TUNNEL.c, '10.77.0.5', 'fd77::5'];
    const latin1 = new TextDecoder('latin1');
    let bytes = 0;
    for (const c of d.carried) {
      bytes += c.bytes.length;
      const text = latin1.decode(c.bytes);
      for (const s of secrets) {
        assert.ok(!hasBytes(c.bytes, ipBytes(s)), `${s} in binary in a frame of type ${c.bytes[0]} (${c.dir})`);
        assert.ok(!text.includes(s), `${s} as text in a frame (${c.dir})`);
        assert.ok(!text.toLowerCase().includes(Buffer.from(ipBytes(s)).toString('hex')), `${s} as hex in a frame`);
      }
      assert.ok(!text.includes(name) && !text.includes(Buffer.from(name, 'utf16le').toString('latin1')), 'the name in clear');
    }
    assert.ok(d.carried.filter((c) => c.bytes[0] === FRAME.sendSignal).length >= 4 && bytes > 1000, 'the recording is not empty');
  });

  it('a peer not on --allow is refused; it says why, and its peers are told it is not there', async () => {
    const aKey = newKey(), bKey = newKey();
    const d = new HubDouble({ allow: new Set([encodeHex(aKey.publicKey)]) });
    const net = new MemoryNetwork();
    const a = await side(d, net, HOST.a[0]!, () => [HOST.a[0]!], aKey);
    const b = await side(d, net, HOST.b[0]!, () => [HOST.b[0]!], bKey);
    await addPeer(a, b, '10.9.0.2/32');
    await addPeer(b, a, '10.9.0.1/32');
    await settle(d, 100);
    assert.equal(d.hub.counters.refused.notAllowed >= 1, true);
    assert.ok(d.hub.has(a.key.publicKey) && !d.hub.has(b.key.publicKey));
    const st = b.node.status().hub;
    assert.equal(st.state === 'connected', false);
    assert.match(st.reason ?? '', /key not allowed/);
    assert.equal(b.node.counters.signalsReceived, 0);
    const pa = a.peer(b.key.publicKey).path;
    assert.match(pa.kind === 'relay' ? pa.reason : '', /not connected to the hub/);
  });

  it('a client paused by its rate limit is read again as soon as its bucket refills, not at the next tick', () => {
    const hub = new Hub({ crypto, rng: seededRng(6), limits: { rateBytesPerSecond: 100_000, burstBytes: 10_000, framesPerSecond: 1000 } });
    const link = new MemoryHubLink();
    const client = hub.connect(0, link);
    const sh = decodeFrame(link.take()[0]!);
    assert.ok(sh && sh.type === FRAME.serverHello);
    const key = identity();
    hub.receive(0, client, encodeFrame({ type: FRAME.clientHello, version: 1, publicKey: key.publicKey, proof: hubProof(crypto, key, sh.hubEphemeral, sh.challenge)!, tokenProof: new Uint8Array(16) }));
    const other = identity().publicKey;
    for (let i = 0; i < 20; i++) hub.receive(0, client, encodeFrame({ type: FRAME.sendPacket, key: other, payload: new Uint8Array(1000) }));
    assert.ok(link.paused, 'past its 10 kB burst: paused');
    assert.equal(hub.refill(0, client), true, 'no time has passed: still paused');
    assert.equal(hub.refill(20, client), true, 'after 20 ms its bucket holds less than the largest frame: still paused');
    assert.equal(hub.refill(100, client), false, 'after 100 ms the bucket is full again: read again, with no tick');
    assert.equal(link.paused, false);
    assert.equal(hub.refill(120, client), false, 'nothing to do for a client that is not paused');
  });

  it('a flood from one client does not starve another: every signal arrives within a bounded number of steps', () => {
    // One step is 1 ms of virtual time. The victim reads 32 KiB per step (a slow reader); the
    // flooder sends 40 datagrams of 1,400 bytes per step (56 MB/s) to the victim, and a friend
    // one signal per step. The hub drops datagrams past the victim's queue bound and never lets
    // a signal wait behind more than twice that bound, so a signal waits at most
    // ceil(2 × maxQueueBytes / drain) + 1 steps.
    const maxQueueBytes = 256 << 10, drain = 32 << 10, steps = 2000;
    const hub = new Hub({ crypto, rng: seededRng(5), limits: { maxQueueBytes } });
    const join = (key: X25519PrivateKey) => {
      const link = new MemoryHubLink();
      const client = hub.connect(0, link);
      const sh = decodeFrame(link.take()[0]!);
      assert.ok(sh && sh.type === FRAME.serverHello);
      const proof = hubProof(crypto, key, sh.hubEphemeral, sh.challenge)!;
      hub.receive(0, client, encodeFrame({ type: FRAME.clientHello, version: 1, publicKey: key.publicKey, proof, tokenProof: new Uint8Array(16) }));
      link.take();
      return { key, link, client };
    };
    const victim = join(identity()), flooder = join(identity()), friend = join(identity()), bystander = join(identity());
    // The victim's socket: a FIFO of frames, drained `drain` bytes per step.
    const fifo: Uint8Array[] = [];
    victim.link.onSend = (f) => { fifo.push(f); victim.link.queued += f.length; };
    const bystanderGot: number[] = [];
    bystander.link.onSend = (f) => { const fr = decodeFrame(f); if (fr?.type === FRAME.recvSignal) bystanderGot.push(fr.payload[0]! | (fr.payload[1]! << 8)); };
    const waits: number[] = [];
    const junk = new Uint8Array(1400);
    for (let step = 0; step < steps; step++) {
      for (let i = 0; i < 40; i++) hub.receive(step, flooder.client, encodeFrame({ type: FRAME.sendPacket, key: victim.key.publicKey, payload: junk }));
      const id = Uint8Array.of(step & 0xff, step >> 8);
      hub.receive(step, friend.client, encodeFrame({ type: FRAME.sendSignal, key: victim.key.publicKey, payload: id }));
      hub.receive(step, friend.client, encodeFrame({ type: FRAME.sendSignal, key: bystander.key.publicKey, payload: id }));
      let budget = drain;
      while (fifo.length > 0 && budget >= fifo[0]!.length) {
        const f = fifo.shift()!;
        budget -= f.length;
        victim.link.queued -= f.length;
        const fr = decodeFrame(f);
        if (fr?.type === FRAME.recvSignal) waits.push(step - (fr.payload[0]! | (fr.payload[1]! << 8)));
      }
      if (step % 1000 === 500) hub.tick(step);
    }
    const bound = Math.ceil((2 * maxQueueBytes) / drain) + 1;
    const delivered = waits.length;
    assert.ok(delivered >= steps - bound, `${delivered} of ${steps} signals reached the victim`);
    assert.ok(Math.max(...waits) <= bound, `a signal waited ${Math.max(...waits)} steps (bound ${bound})`);
    assert.equal(bystanderGot.length, steps, 'a client nobody floods gets every signal in the step it was sent');
    assert.ok(hub.counters.drops.queueFull > 0 && hub.counters.drops.rateLimited > 0, 'the flood was cut by the queue bound and the rate limit');
    assert.equal(friend.link.closedWith, null);
    assert.ok(flooder.link.paused, 'the flooder is no longer read');
  });
});
