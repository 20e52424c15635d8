/**
 * The mesh side of one interface (docs/mesh.md §2-3): follows the device's configuration (its
 * private key, which peers are mesh peers), keeps the hub connection, gives each mesh peer a
 * relay slot, exchanges sealed candidates with it, probes them on the UDP socket, and points
 * the peer's WireGuard endpoint at the path its state machine picks: the relay until a direct
 * candidate answers, direct while it keeps answering.
 *
 * A mesh peer is a peer configured without an endpoint (or with a relay endpoint) while the
 * interface has a [Mesh] section; a peer with an Endpoint stays a plain WireGuard peer.
 * Every table is bounded; a bad signal or probe is dropped and counted, never thrown.
 */
import type { CryptoProvider } from '../../core/crypto.ts';
import { encodeBase64, encodeHex } from '../../core/keys.ts';
import type { Rng } from '../../core/rng.ts';
import type { BindEndpoint } from '../../device/bind.ts';
import type { DeviceState, PeerChange, Prefix, SetRequest } from '../../device/config.ts';
import { formatIp, parseIp } from '../../core/ip-address.ts';
import { MeshHubClient } from '../client/hub-client.ts';
import type { HubConnectionState, Timers, WebSocketFactory } from '../client/hub-client.ts';
import { ANNOUNCE_INTERVAL_MS, DiscoveryBook, prefixContains, sealAnnouncement } from '../protocol/discovery.ts';
import type { AnnounceDrop, HelloRefusal } from '../protocol/discovery.ts';
import { SignalChannel } from '../protocol/envelope.ts';
import type { EnvelopeDrop } from '../protocol/envelope.ts';
import { signalKeys } from '../protocol/keys.ts';
import { PathMachine } from '../protocol/path.ts';
import type { PathState, RelayPolicy } from '../protocol/path.ts';
import { decodeProbe, encodeProbe } from '../protocol/probe.ts';
import { SIGNAL, TXID_LENGTH, decodeSignalBody, encodeSignalBody } from '../protocol/signal-body.ts';
import type { Candidate, SignalBody } from '../protocol/signal-body.ts';
import { MAX_RELAY_SLOT, RELAY_ADDRESS } from './mesh-bind.ts';
import type { MeshBind } from './mesh-bind.ts';

/** What the node needs of the device (the Device class has it; tests use a twin). */
export interface MeshDevice {
  getState(): DeviceState;
  applySet(request: SetRequest): Promise<void>;
  onConfigured(listener: () => void): void;
}

export interface MeshLog {
  error(message: string): void;
  verbose(message: string): void;
}

/** Discovery (docs/mesh.md §4): what this member announces and the network's keys and ranges. */
export interface MeshDiscovery {
  /** The network's name, for `show` only (the hub sees `networkId`). */
  network: string;
  networkId: Uint8Array;
  announceKey: Uint8Array;
  /** This member's name in the network. */
  name: string;
  prefix4: Prefix;
  prefix6: Prefix;
  /** The interface's addresses (host bits kept); those inside the ranges are announced. */
  addresses: Prefix[];
}

export interface MeshNodeOptions {
  device: MeshDevice;
  bind: MeshBind;
  hubs: readonly string[];
  relay: RelayPolicy;
  crypto: CryptoProvider;
  rng: Rng;
  connect: WebSocketFactory;
  timers: Timers;
  /** Monotonic ms (path timers). */
  now(): number;
  /** Unix ms (envelopes). */
  wallNow(): number;
  /** This host's addresses to offer as host candidates (the tunnel's own excluded). */
  hostAddresses(): string[];
  log: MeshLog;
  /** How often our addresses are looked at again; default 30 s. */
  candidateRefreshMs?: number;
  /** Network/NetworkSecret in [Mesh]: announce, and add the other members as peers. */
  discovery?: MeshDiscovery;
  /** How often we announce ourselves; default 20 s (the hub keeps an announcement 60 s). */
  announceIntervalMs?: number;
}

/** At most this many mesh peers per interface (relay slots are 16 bits). */
const MAX_MESH_PEERS = 4096;
const MAX_PENDING_PINGS = 32;
const PRIORITY = { host: 100, hubObserved: 50 } as const;
/** Our addresses are looked at again this often (a laptop changes networks without telling us). */
const CANDIDATE_REFRESH_MS = 30_000;

interface PendingPing {
  candidate: string;
  sentAt: number;
}

interface MeshPeer {
  readonly key: Uint8Array;
  readonly base64: string;
  readonly slot: number;
  readonly path: PathMachine;
  channel: SignalChannel | null;
  pskId: string;
  remoteEpoch: number;
  remoteGeneration: number;
  /** Candidate text (`ip:port`, as BindEndpoint.text) → its endpoint, of the peer's newest generation. */
  candidates: Map<string, BindEndpoint>;
  pings: Map<string, PendingPing>;
  /** Bytes last seen, to tell whether traffic flows (heartbeats on a direct path). */
  bytes: number;
  /** Why the hub could not deliver to this peer, last time it said so. */
  absent: string | null;
}

export interface MeshPeerStatus {
  publicKey: string;
  slot: number;
  path: { kind: 'relay'; hub: string; reason: string } | { kind: 'direct'; address: string; rttMs: number };
  candidates: string[];
  drops: Record<EnvelopeDrop, number>;
  /** A member found by discovery: its name and announced addresses (empty until its Hello). */
  discovered?: { name: string; addresses: string[]; refused: HelloRefusal | null };
}

export interface MeshStatus {
  hub: { url: string; state: HubConnectionState['kind']; reason?: string; observed?: string };
  relay: RelayPolicy;
  peers: MeshPeerStatus[];
  counters: MeshNode['counters'];
  network?: { name: string; self: string; addresses: string[]; members: number; announceDrops: Record<AnnounceDrop, number>; helloRefused: Record<HelloRefusal, number> };
}

const ABSENT_TEXT: Record<number, string> = { 1: 'the peer is not connected to the hub', 2: 'the hub does not admit the peer', 3: 'rate limited by the hub', 4: "the hub's queue to the peer is full" };

export class MeshNode {
  readonly counters = {
    unknownSender: 0, badBody: 0, signalsSent: 0, signalsReceived: 0, probesSent: 0, pongs: 0, pathChanges: 0, relayFromUnknown: 0,
    staleCandidates: 0, announcementsSent: 0, membersAdded: 0, membersRemoved: 0,
  };
  private readonly o: MeshNodeOptions;
  private readonly peers = new Map<string, MeshPeer>();
  private readonly bySlot = new Map<number, MeshPeer>();
  private nextSlot = 1;
  /** Hex of our public key ('' without a private key). */
  private identity = '';
  private selfPublic: Uint8Array | null = null;
  private client: MeshHubClient | null = null;
  private epoch = 0;
  private generation = 0;
  private ownCandidates: Candidate[] = [];
  private timer: unknown = null;
  private timerAt = Infinity;
  private stopped = false;
  private refreshAt = 0;
  private book: DiscoveryBook | null = null;
  /** Keys of peers this node added to the device for discovered members (it removes only these). */
  private readonly discovered = new Set<string>();
  private announceSeq = 0;
  private announceAt = Infinity;

  constructor(options: MeshNodeOptions) {
    this.o = options;
  }

  start(): void {
    this.o.bind.setHooks({
      relay: (slot, d) => this.relayOut(slot, d),
      probe: (d, from) => this.onProbe(d, from),
    });
    this.o.device.onConfigured(() => { if (!this.stopped) this.sync(); });
    this.sync();
  }

  stop(): void {
    this.stopped = true;
    this.o.bind.setHooks(null);
    this.client?.stop();
    this.client = null;
    this.o.timers.clearTimeout(this.timer);
  }

  // ------------------------------------------------------------ following the configuration

  /** Reads keys and peers from the device: (re)starts the hub client, adds and forgets mesh peers. */
  private sync(): void {
    const state = this.o.device.getState();
    // Compared by public key: no copy of the private key is kept here.
    const selfPublic = state.privateKey ? this.o.crypto.x25519PrivateKey(state.privateKey).publicKey : null;
    const identity = selfPublic ? encodeHex(selfPublic) : '';
    if (identity !== this.identity) {
      this.identity = identity;
      this.selfPublic = selfPublic;
      this.client?.stop();
      this.client = null;
      for (const p of this.peers.values()) p.channel = null;
      this.book = null;
      if (selfPublic && this.o.discovery) this.book = this.makeBook(selfPublic, this.o.discovery);
      if (state.privateKey) this.startClient(state.privateKey);
    }
    const present = new Set<string>();
    const endpoints: PeerChange[] = [];
    for (const ps of state.peers) {
      const hex = encodeHex(ps.publicKey);
      let peer = this.peers.get(hex);
      const isMesh = peer !== undefined || ps.endpoint === null || ps.endpoint.startsWith(`${RELAY_ADDRESS}:`);
      if (!isMesh) continue;
      if (!peer) {
        const slot = this.allocateSlot();
        if (slot === null) { this.o.log.error(`more than ${MAX_MESH_PEERS} mesh peers; peer ${encodeBase64(ps.publicKey)} is not meshed`); continue; }
        peer = {
          key: ps.publicKey.slice(), base64: encodeBase64(ps.publicKey), slot, path: new PathMachine(this.o.now(), this.o.relay),
          channel: null, pskId: '', remoteEpoch: -1, remoteGeneration: -1, candidates: new Map(), pings: new Map(), bytes: 0, absent: null,
        };
        this.peers.set(hex, peer);
        this.bySlot.set(slot, peer);
        this.o.log.verbose(`mesh peer ${peer.base64.slice(0, 4)}… relay slot ${slot}`);
      }
      present.add(hex);
      // A hash tells a changed preshared key without keeping a copy of it.
      const pskId = ps.presharedKey ? encodeHex(this.o.crypto.hash([ps.presharedKey])) : '';
      if (!peer.channel || pskId !== peer.pskId) {
        peer.pskId = pskId;
        peer.channel = this.makeChannel(state.privateKey, ps.publicKey, ps.presharedKey);
        // A new peer (or new keys) while connected: it learns our candidates now, not at the next change.
        if (peer.channel && this.client?.connected) {
          this.sendCandidates(peer);
          if (this.book?.get(hex)) this.sendHello(peer, true);
        }
      }
      if (ps.endpoint === null && this.o.relay !== 'never') endpoints.push(this.endpointChange(peer, RELAY_ADDRESS, peer.slot));
    }
    for (const [hex, peer] of this.peers) {
      if (present.has(hex)) continue;
      this.peers.delete(hex);
      this.bySlot.delete(peer.slot);
      this.discovered.delete(hex);
    }
    if (endpoints.length) this.apply(endpoints);
    this.arm();
  }

  private allocateSlot(): number | null {
    if (this.peers.size >= MAX_MESH_PEERS) return null;
    while (this.bySlot.has(this.nextSlot)) this.nextSlot = this.nextSlot >= MAX_RELAY_SLOT ? 1 : this.nextSlot + 1;
    const slot = this.nextSlot;
    this.nextSlot = slot >= MAX_RELAY_SLOT ? 1 : slot + 1;
    return slot;
  }

  private makeChannel(privateKey: Uint8Array | null, peerKey: Uint8Array, psk: Uint8Array | null): SignalChannel | null {
    if (!privateKey) return null;
    const self = this.o.crypto.x25519PrivateKey(privateKey);
    const keys = signalKeys(this.o.crypto, self, peerKey, psk ?? undefined);
    return keys ? new SignalChannel(this.o.crypto, this.o.rng, keys, self.publicKey, peerKey, this.epoch) : null;
  }

  private startClient(privateKey: Uint8Array): void {
    this.epoch = this.o.wallNow();
    this.client = new MeshHubClient({
      crypto: this.o.crypto,
      rng: this.o.rng,
      privateKey: this.o.crypto.x25519PrivateKey(privateKey),
      hubs: this.o.hubs,
      connect: this.o.connect,
      timers: this.o.timers,
      now: () => this.o.wallNow(),
      events: {
        state: (s) => this.onHubState(s),
        announcement: (id, key, sealed) => this.onAnnouncement(id, key, sealed),
        withdrawn: (id, key) => { if (this.isOurNetwork(id) && this.book?.remove(encodeHex(key))) this.forget(encodeHex(key), 'withdrawn by the hub'); },
        signal: (from, envelope) => this.onSignal(from, envelope),
        packet: (from, datagram) => this.onRelayed(from, datagram),
        absent: (key, reason) => {
          const peer = this.peers.get(encodeHex(key));
          if (peer) peer.absent = ABSENT_TEXT[reason] ?? `the hub could not deliver (reason ${reason})`;
        },
      },
    });
    if (this.o.discovery) this.client.subscribe(this.o.discovery.networkId);
    this.client.start();
  }

  private endpointChange(peer: MeshPeer, address: string, port: number): PeerChange {
    return { publicKey: peer.key, remove: false, updateOnly: true, replaceAllowedIps: false, allowedIps: [], endpoint: { address, port } };
  }

  private apply(changes: PeerChange[]): void {
    this.o.device.applySet({ replacePeers: false, peers: changes }).catch((err: Error) => this.o.log.error(`mesh: cannot set endpoints: ${err.message}`));
  }

  // ------------------------------------------------------------ the hub

  private onHubState(s: HubConnectionState): void {
    if (s.kind === 'connected') {
      this.o.log.verbose(`mesh: connected to ${s.hub}${s.observed ? `, seen as ${s.observed.address}` : ''}`);
      this.refreshAt = this.o.now() + (this.o.candidateRefreshMs ?? CANDIDATE_REFRESH_MS);
      this.refreshCandidates(true);
      if (this.book) this.announce();
      this.arm();
    } else if (s.kind === 'disconnected') {
      this.o.log.verbose(`mesh: hub ${s.hub} lost (${s.reason}); retrying in ${s.retryInMs} ms`);
    }
  }

  /** Our candidates now; a changed set is a new generation, sent to every peer. */
  private refreshCandidates(force: boolean): void {
    const port = this.o.bind.port;
    if (port === 0) return;
    const list: Candidate[] = [];
    for (const address of this.o.hostAddresses()) list.push({ kind: 'host', address, port, priority: PRIORITY.host });
    const st = this.client?.state;
    // The hub saw our TCP source; with no NAT or a one-to-one NAT its address is ours for UDP too.
    if (st?.kind === 'connected' && st.observed && !list.some((c) => c.address === st.observed!.address)) {
      list.push({ kind: 'hubObserved', address: st.observed.address, port, priority: PRIORITY.hubObserved });
    }
    const same = list.length === this.ownCandidates.length && list.every((c, i) => c.address === this.ownCandidates[i]!.address && c.port === this.ownCandidates[i]!.port);
    if (!same) { this.ownCandidates = list.slice(0, 16); this.generation++; }
    if (!same || force) for (const peer of this.peers.values()) this.sendCandidates(peer);
  }

  private sendCandidates(peer: MeshPeer): void {
    if (this.generation === 0) this.refreshCandidates(false);
    this.sendSignal(peer, { type: SIGNAL.candidates, generation: this.generation, candidates: this.ownCandidates });
  }

  private sendSignal(peer: MeshPeer, body: SignalBody): void {
    if (!peer.channel || !this.client) return;
    if (this.client.sendSignal(peer.key, peer.channel.seal(this.o.wallNow(), encodeSignalBody(body)))) this.counters.signalsSent++;
  }

  private onSignal(from: Uint8Array, envelope: Uint8Array): void {
    const peer = this.peers.get(encodeHex(from));
    if (!peer?.channel) { this.counters.unknownSender++; return; }
    const opened = peer.channel.open(this.o.wallNow(), envelope);
    if (!opened.ok) return; // counted by the channel
    const body = decodeSignalBody(opened.body);
    if (!body) { this.counters.badBody++; return; }
    this.counters.signalsReceived++;
    peer.absent = null;
    if (body.type === SIGNAL.candidates || body.type === SIGNAL.callMeMaybe) {
      const newer = opened.epoch > peer.remoteEpoch || (opened.epoch === peer.remoteEpoch && body.generation > peer.remoteGeneration);
      if (!newer) {
        // Older than what we hold: reordered or re-sent, and ignored. (An equal generation is the
        // peer answering ours, not counted.)
        if (opened.epoch === peer.remoteEpoch && body.generation < peer.remoteGeneration) this.counters.staleCandidates++;
        return;
      }
      peer.remoteEpoch = opened.epoch;
      peer.remoteGeneration = body.generation;
      this.setRemoteCandidates(peer, body.candidates);
      // In reply to a newer generation: the other side may have missed ours (it was not connected).
      this.sendCandidates(peer);
    } else if (body.type === SIGNAL.bye) {
      this.setRemoteCandidates(peer, []);
    } else if (body.type === SIGNAL.hello) {
      this.onHello(peer, opened.epoch, body);
    } else if (body.type === SIGNAL.helloRequest) {
      if (this.book?.get(encodeHex(peer.key))) this.sendHello(peer, false);
    }
    this.arm();
  }

  // ------------------------------------------------------------ discovery (docs/mesh.md §4)

  private makeBook(self: Uint8Array, d: MeshDiscovery): DiscoveryBook {
    return new DiscoveryBook({
      crypto: this.o.crypto, networkId: d.networkId, announceKey: d.announceKey, self, prefix4: d.prefix4, prefix6: d.prefix6,
      // Nobody may claim our addresses or a configured peer's routes.
      reserved: () => [
        ...d.addresses.map(hostPrefix),
        ...this.o.device.getState().peers.filter((p) => !this.discovered.has(encodeHex(p.publicKey))).flatMap((p) => p.allowedIps),
      ],
    });
  }

  private isOurNetwork(id: Uint8Array): boolean {
    const own = this.o.discovery?.networkId;
    return own !== undefined && encodeHex(id) === encodeHex(own);
  }

  private announce(): void {
    const d = this.o.discovery;
    if (!d || !this.client || !this.selfPublic) return;
    this.announceAt = this.o.now() + (this.o.announceIntervalMs ?? ANNOUNCE_INTERVAL_MS);
    const sealed = sealAnnouncement(this.o.crypto, this.o.rng, d.announceKey, d.networkId, this.selfPublic, { epoch: this.epoch, seq: this.announceSeq++, sent: this.o.wallNow() });
    if (this.client.announce(d.networkId, sealed)) this.counters.announcementsSent++;
  }

  private onAnnouncement(id: Uint8Array, key: Uint8Array, sealed: Uint8Array): void {
    if (!this.book || !this.isOurNetwork(id)) return;
    const r = this.book.onAnnouncement(this.o.now(), this.o.wallNow(), key, sealed);
    if (r.kind === 'dropped' || r.kind === 'duplicate') return; // counted by the book
    const hex = r.member.hex;
    const peer = this.peers.get(hex);
    if (r.kind === 'new' && !peer) {
      // A WireGuard peer with no allowed IPs until its own Hello says which: it can route nothing yet.
      this.discovered.add(hex);
      this.counters.membersAdded++;
      this.o.log.verbose(`mesh: member ${encodeBase64(key).slice(0, 4)}… announced; adding it`);
      this.o.device.applySet({ replacePeers: false, peers: [{ publicKey: r.member.key, remove: false, updateOnly: false, replaceAllowedIps: true, allowedIps: [] }] })
        .catch((err: Error) => this.o.log.error(`mesh: cannot add a member: ${err.message}`));
    } else if (peer && r.member.helloEpoch < 0) {
      // Known but no Hello yet (lost, or refused before it announced): ask again.
      this.sendHello(peer, true);
    }
    this.arm();
  }

  private sendHello(peer: MeshPeer, request: boolean): void {
    const d = this.o.discovery;
    if (!d) return;
    const inRange = d.addresses.filter((a) => prefixContains(a.family === 4 ? d.prefix4 : d.prefix6, a.bytes));
    const addresses = inRange.map((a) => ({ address: formatIp(a.bytes), bits: a.bytes.length * 8 }));
    this.sendSignal(peer, { type: SIGNAL.hello, addresses, name: d.name, generation: 1 });
    if (request) this.sendSignal(peer, { type: SIGNAL.helloRequest });
  }

  private onHello(peer: MeshPeer, epoch: number, body: Extract<SignalBody, { type: typeof SIGNAL.hello }>): void {
    if (!this.book) return;
    const hex = encodeHex(peer.key);
    const r = this.book.onHello(peer.key, epoch, body);
    if (!r.ok) {
      this.o.log.verbose(`mesh: Hello from ${peer.base64.slice(0, 4)}… refused (${r.reason})`);
      return;
    }
    // A configured peer keeps the allowed IPs its [Peer] section gave it.
    if (!r.changed || !this.discovered.has(hex)) return;
    this.o.log.verbose(`mesh: member ${peer.base64.slice(0, 4)}…${r.member.name ? ` (${r.member.name})` : ''} at ${r.member.addresses.map((a) => formatIp(a.bytes)).join(', ')}`);
    const allowedIps = r.member.addresses.map((prefix) => ({ op: 'add' as const, prefix }));
    this.o.device.applySet({ replacePeers: false, peers: [{ publicKey: peer.key, remove: false, updateOnly: true, replaceAllowedIps: true, allowedIps }] })
      .catch((err: Error) => this.o.log.error(`mesh: cannot set a member's addresses: ${err.message}`));
  }

  /** A member left (withdrawn or expired): the peer this node added for it goes. */
  private forget(hex: string, why: string): void {
    if (!this.discovered.delete(hex)) return;
    const peer = this.peers.get(hex);
    this.counters.membersRemoved++;
    this.o.log.verbose(`mesh: member ${peer?.base64.slice(0, 4) ?? hex.slice(0, 8)}… ${why}; removing it`);
    if (peer) {
      this.peers.delete(hex);
      this.bySlot.delete(peer.slot);
    }
    const key = peer?.key ?? Uint8Array.from(hex.match(/../g)!.map((b) => parseInt(b, 16)));
    this.o.device.applySet({ replacePeers: false, peers: [{ publicKey: key, remove: true, updateOnly: false, replaceAllowedIps: false, allowedIps: [] }] })
      .catch((err: Error) => this.o.log.error(`mesh: cannot remove a member: ${err.message}`));
  }

  /** Addresses of the member called `name` (netstack's resolver asks before DNS); empty when none. */
  lookupName(name: string): string[] {
    return this.book?.lookup(name) ?? [];
  }

  private setRemoteCandidates(peer: MeshPeer, list: readonly Candidate[]): void {
    const usable = new Map<string, BindEndpoint>();
    const routes = this.o.device.getState().peers.flatMap((p) => p.allowedIps);
    for (const c of list) {
      // Never probe an address routed into the tunnel itself (a "direct" path over the relay).
      if (!usableCandidate(c.address) || routes.some((r) => contains(r, c.address))) continue;
      try {
        const e = this.o.bind.endpointFor(c.address, c.port);
        usable.set(e.text, e);
      } catch { /* not an address the socket can reach */ }
    }
    peer.candidates = usable;
    peer.path.setCandidates(this.o.now(), [...usable.keys()]);
    this.applyPathChanges(peer);
  }

  private relayOut(slot: number, datagram: Uint8Array): boolean {
    const peer = this.bySlot.get(slot);
    if (!peer || !this.client || !peer.path.relayAllowed) return false;
    return this.client.sendPacket(peer.key, datagram);
  }

  private onRelayed(from: Uint8Array, datagram: Uint8Array): void {
    const peer = this.peers.get(encodeHex(from));
    if (!peer || !peer.path.relayAllowed) { this.counters.relayFromUnknown++; return; }
    this.o.bind.deliverRelayed(peer.slot, datagram);
  }

  // ------------------------------------------------------------ probes and paths

  private onProbe(d: Uint8Array, from: BindEndpoint): void {
    const probe = decodeProbe(d);
    const peer = probe ? this.peers.get(encodeHex(probe.sender)) : undefined;
    if (!probe || !peer?.channel) { this.counters.unknownSender++; return; }
    const opened = peer.channel.open(this.o.wallNow(), probe.envelope);
    if (!opened.ok) return;
    const body = decodeSignalBody(opened.body);
    if (!body || (body.type !== SIGNAL.ping && body.type !== SIGNAL.pong)) { this.counters.badBody++; return; }
    if (body.type === SIGNAL.ping) {
      this.sendProbe(peer, from, { type: SIGNAL.pong, txid: body.txid, observed: { address: from.address, port: from.port } });
      return;
    }
    const id = encodeHex(body.txid);
    const pending = peer.pings.get(id);
    if (!pending) return;
    peer.pings.delete(id);
    this.counters.pongs++;
    const now = this.o.now();
    peer.path.onPong(now, pending.candidate, now - pending.sentAt);
    this.applyPathChanges(peer);
    this.arm();
  }

  private sendProbe(peer: MeshPeer, to: BindEndpoint, body: SignalBody): void {
    if (!peer.channel || !this.selfPublic) return;
    this.o.bind.sendDirect(encodeProbe(this.selfPublic, peer.channel.seal(this.o.wallNow(), encodeSignalBody(body))), to);
    this.counters.probesSent++;
  }

  private ping(peer: MeshPeer, candidate: string): void {
    const to = peer.candidates.get(candidate);
    if (!to) return;
    const txid = new Uint8Array(TXID_LENGTH);
    this.o.rng.fill(txid);
    if (peer.pings.size >= MAX_PENDING_PINGS) peer.pings.delete(peer.pings.keys().next().value!);
    peer.pings.set(encodeHex(txid), { candidate, sentAt: this.o.now() });
    this.sendProbe(peer, to, { type: SIGNAL.ping, txid });
  }

  /** Points the WireGuard endpoint at the path the machine chose, and logs the change. */
  private applyPathChanges(peer: MeshPeer): void {
    const changes = peer.path.takeChanges();
    if (changes.length === 0) return;
    this.counters.pathChanges += changes.length;
    const to = changes[changes.length - 1]!.to;
    this.o.log.verbose(`mesh peer ${peer.base64.slice(0, 4)}… path: ${describePath(to, this.hubUrl())}`);
    if (to.kind === 'direct') {
      const e = peer.candidates.get(to.candidate);
      if (e) this.apply([this.endpointChange(peer, e.address, e.port)]);
    } else if (peer.path.relayAllowed) {
      this.apply([this.endpointChange(peer, RELAY_ADDRESS, peer.slot)]);
    }
  }

  private arm(): void {
    if (this.stopped) return;
    let at = Infinity;
    for (const p of this.peers.values()) at = Math.min(at, p.path.nextDeadline());
    // While direct, the traffic check needs a look now and then even with no deadline due.
    if ([...this.peers.values()].some((p) => p.path.state.kind === 'direct')) at = Math.min(at, this.o.now() + 1000);
    if (this.client?.connected && this.peers.size > 0) at = Math.min(at, this.refreshAt);
    if (this.book) at = Math.min(at, this.book.nextDeadline(), this.client?.connected ? this.announceAt : Infinity);
    if (at >= this.timerAt) return;
    this.o.timers.clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = this.o.timers.setTimeout(() => this.onTimer(), Math.max(0, at - this.o.now()));
  }

  private onTimer(): void {
    this.timer = null;
    this.timerAt = Infinity;
    if (this.stopped) return;
    const now = this.o.now();
    if (now >= this.refreshAt) {
      this.refreshAt = now + (this.o.candidateRefreshMs ?? CANDIDATE_REFRESH_MS);
      if (this.client?.connected) this.refreshCandidates(false);
    }
    if (this.book) {
      if (now >= this.announceAt && this.client?.connected) this.announce();
      for (const m of this.book.expire(now)) this.forget(m.hex, 'not announced for 60 s');
    }
    const bytes = new Map(this.o.device.getState().peers.map((p) => [encodeHex(p.publicKey), p.rxBytes + p.txBytes]));
    for (const [hex, peer] of this.peers) {
      const b = bytes.get(hex) ?? 0;
      if (b !== peer.bytes) { peer.bytes = b; peer.path.onTraffic(now); }
      for (const candidate of peer.path.poll(now)) this.ping(peer, candidate);
      this.applyPathChanges(peer);
    }
    this.arm();
  }

  // ------------------------------------------------------------ status

  private hubUrl(): string {
    return this.client?.state.hub ?? this.o.hubs[0]!;
  }

  status(): MeshStatus {
    const st = this.client?.state;
    const hub: MeshStatus['hub'] = { url: st?.hub ?? this.o.hubs[0]!, state: st?.kind ?? 'disconnected' };
    if (!this.client) hub.reason = 'no private key yet';
    else if (st?.kind === 'disconnected') hub.reason = st.reason;
    if (st?.kind === 'connected' && st.observed) hub.observed = formatHostPort(st.observed.address, st.observed.port);
    const peers: MeshPeerStatus[] = [];
    for (const p of this.peers.values()) {
      const s = p.path.state;
      let path: MeshPeerStatus['path'];
      if (s.kind === 'direct') {
        path = { kind: 'direct', address: s.candidate, rttMs: s.rttMs };
      } else {
        let reason = this.o.relay === 'never' ? 'relay = never, and no direct path answers' : s.reason;
        if (st?.kind !== 'connected') reason += '; the hub is not connected';
        else if (p.absent) reason += `; ${p.absent}`;
        path = { kind: 'relay', hub: hub.url, reason };
      }
      const status: MeshPeerStatus = { publicKey: p.base64, slot: p.slot, path, candidates: [...p.candidates.keys()], drops: { ...(p.channel?.drops ?? { malformed: 0, seal: 0, stale: 0, oldEpoch: 0, replay: 0 }) } };
      const m = this.book?.get(encodeHex(p.key));
      if (m) status.discovered = { name: m.name, addresses: m.addresses.map((a) => formatIp(a.bytes)), refused: m.refused };
      peers.push(status);
    }
    const out: MeshStatus = { hub, relay: this.o.relay, peers, counters: { ...this.counters } };
    const d = this.o.discovery;
    if (d) {
      out.network = {
        name: d.network, self: d.name, addresses: d.addresses.map((a) => `${formatIp(a.bytes)}/${a.bits}`), members: this.book?.size ?? 0,
        announceDrops: { ...(this.book?.drops ?? { malformed: 0, seal: 0, stale: 0, replay: 0, full: 0 }) },
        helloRefused: { ...(this.book?.refused ?? { notMember: 0, old: 0, noAddress: 0, outOfRange: 0, overlap: 0 }) },
      };
    }
    return out;
  }
}

function describePath(s: PathState, hub: string): string {
  return s.kind === 'direct' ? `direct ${s.candidate}` : `relay ${hub} (${s.reason})`;
}

function formatHostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Loopback, unspecified, link-local (needs a zone) and the relay range are never candidates. */
function usableCandidate(address: string): boolean {
  const a = address.toLowerCase();
  if (a.startsWith('127.') || a === '0.0.0.0' || a === '::' || a === '::1' || a.startsWith('fe80:') || a.startsWith('169.254.')) return false;
  return true;
}

function hostPrefix(p: Prefix): Prefix {
  return { family: p.family, bytes: p.bytes, bits: p.bytes.length * 8 };
}

function contains(prefix: Prefix, address: string): boolean {
  let bytes: Uint8Array;
  try { bytes = parseIp(address); } catch { return false; }
  if (bytes.length !== prefix.bytes.length) return false;
  for (let bit = 0; bit < prefix.bits; bit += 8) {
    const keep = Math.min(8, prefix.bits - bit);
    const mask = (0xff00 >> keep) & 0xff;
    if ((bytes[bit / 8]! & mask) !== (prefix.bytes[bit / 8]! & mask)) return false;
  }
  return true;
}
