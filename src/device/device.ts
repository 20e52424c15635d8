/**
 * A WireGuard interface: the core Endpoint joined to a TUN, a UDP bind and a clock, with
 * cryptokey routing (allowed IPs), roaming and the UAPI configuration model.
 *
 * Packets from the TUN go to the peer owning their destination address; decrypted packets are
 * delivered to the TUN only when their source address belongs to the peer that sent them.
 * A peer's endpoint follows the source of its last authenticated packet (roaming).
 */
import { Endpoint } from '../core/endpoint.ts';
import type { EndpointEvent } from '../core/endpoint.ts';
import type { CryptoProvider } from '../core/crypto.ts';
import type { InitiationJob } from '../core/handshake.ts';
import { equalConstantTime } from '../core/crypto.ts';
import { isWireGuardMessage, paddedLength, TAG_SIZE, Transport } from '../core/messages.ts';
import type { PeerId } from '../core/peer.ts';
import type { Rng } from '../core/rng.ts';
import { isAllZero } from '../core/bytes.ts';
import { encodeHex } from '../core/keys.ts';
import { defaultCrypto } from '../crypto/index.ts';
import { AllowedIps } from './allowedips.ts';
import type { Bind, BindEndpoint } from './bind.ts';
import type { Clock } from './clock.ts';
import { systemClock } from './clock.ts';
import { Errno, UapiError } from './config.ts';
import type { DeviceState, DeviceStateStream, PeerChange, PeerState, SetRequest, UapiTarget } from './config.ts';
import type { InitiationOffload } from './initiation-offload.ts';
import { ipPacketLength } from './ip.ts';
import type { Tun } from './tun.ts';
import { formatGetResponse, parseSetRequest } from './uapi.ts';

export interface DeviceLogger {
  /** Something went wrong and the device carries on or closes; always logged. */
  error(message: string): void;
  /** What the device does (handshakes, roaming, up/down); logged when verbose. */
  verbose(message: string): void;
}

/** Handshake initiations per endpoint tick, and the time one timer turn may keep ticking. */
const TICK_INITIATIONS = 4;
const TICK_BUDGET_MS = 2;

export const silentLogger: DeviceLogger = { error: () => {}, verbose: () => {} };

export interface DeviceOptions {
  tun: Tun;
  bind: Bind;
  clock?: Clock;
  crypto?: CryptoProvider;
  rng?: Rng;
  logger?: DeviceLogger;
  /** Datagrams on our port that are not WireGuard messages (for protocols sharing the socket). */
  onForeignDatagram?: (datagram: Uint8Array, from: BindEndpoint) => void;
  /**
   * Where handshake initiations are computed (ThreadInitiationOffload: a worker thread, as the
   * daemon uses); without one, on the device's thread. The device closes it.
   */
  initiationOffload?: InitiationOffload;
}

/** The device's side of a peer; its keys live in the endpoint's peer only (memory: 10,000 peers). */
interface DevicePeer {
  readonly id: PeerId;
  /** The endpoint's copy (Endpoint.peerPublicKey). */
  readonly publicKey: Uint8Array;
  readonly hex: string;
  endpoint: BindEndpoint | null;
  persistentKeepalive: number;
}

export interface DeviceCounters {
  tunPacketsIn: number;
  tunPacketsOut: number;
  noRoute: number;
  invalidTunPacket: number;
  sourceNotAllowed: number;
  invalidDecrypted: number;
  noEndpoint: number;
  foreignDatagrams: number;
  /** Handshake initiations computed by the initiation offload and sent. */
  initiationsOffloaded: number;
}

export class Device implements UapiTarget {
  readonly endpoint: Endpoint<BindEndpoint>;
  /** @internal The cryptokey routing table (the netstack asks it which addresses route in). */
  readonly allowedIps = new AllowedIps<DevicePeer>();
  readonly counters: DeviceCounters = {
    tunPacketsIn: 0, tunPacketsOut: 0, noRoute: 0, invalidTunPacket: 0, sourceNotAllowed: 0,
    invalidDecrypted: 0, noEndpoint: 0, foreignDatagrams: 0, initiationsOffloaded: 0,
  };
  private readonly tun: Tun;
  private readonly bind: Bind;
  private readonly clock: Clock;
  private readonly crypto: CryptoProvider;
  private readonly logger: DeviceLogger;
  private readonly onForeign: DeviceOptions['onForeignDatagram'];
  private readonly offload: InitiationOffload | null;
  private readonly peers = new Map<string, DevicePeer>();
  private readonly peersById = new Map<PeerId, DevicePeer>();
  private privateKey: Uint8Array | null = null;
  private listenPort = 0;
  private fwmark = 0;
  private isUp = false;
  private closed = false;
  private timer: unknown = null;
  private timerAt = Infinity;
  private readonly closeListeners: ((reason: string) => void)[] = [];
  private readonly eventListeners: ((event: EndpointEvent) => void)[] = [];
  private readonly configListeners: (() => void)[] = [];
  /** cookieRepliesSent when under-load mode last changed, for the summary line. */
  private cookieRepliesAtUnderLoad = 0;
  /** Serialises configuration changes (UAPI clients may overlap). */
  private configQueue: Promise<void> = Promise.resolve();

  constructor(options: DeviceOptions) {
    this.tun = options.tun;
    this.bind = options.bind;
    this.clock = options.clock ?? systemClock;
    this.crypto = options.crypto ?? defaultCrypto;
    this.logger = options.logger ?? silentLogger;
    this.onForeign = options.onForeignDatagram;
    const offload = this.offload = options.initiationOffload ?? null;
    this.endpoint = new Endpoint<BindEndpoint>({
      crypto: this.crypto,
      rng: options.rng,
      mtu: this.tun.mtu,
      wallClock: (now) => this.clock.wall(now),
      io: {
        sendToPeer: (id, datagram) => {
          const peer = this.peersById.get(id);
          if (!peer?.endpoint) { this.counters.noEndpoint++; return; }
          this.bind.send(datagram, peer.endpoint);
        },
        sendBuffer: (id, length) => {
          const to = this.peersById.get(id)?.endpoint;
          return to && this.bind.sendBuffer ? this.bind.sendBuffer(length, to) : null;
        },
        sendToSource: (source, datagram) => this.bind.send(datagram, source),
        deliver: (id, packet) => this.deliver(id, packet),
        authenticated: (id, source) => {
          const peer = this.peersById.get(id);
          if (peer && peer.endpoint !== source) {
            if (peer.endpoint) this.logger.verbose(`peer(${short(peer.publicKey)}) roamed to ${source.text}`);
            peer.endpoint = source;
          }
        },
        sourceTag: (source) => source.tag,
        event: (e) => this.onEvent(e),
        ...(offload ? { offloadInitiation: (job: InitiationJob) => offload.submit(job) } : {}),
      },
    });
    offload?.onResult((result) => {
      if (!this.isUp) return;
      if (this.endpoint.completeInitiation(this.clock.now(), result)) this.counters.initiationsOffloaded++;
      this.armTimer();
    });
    this.tun.onClose((reason) => void this.close(`tun ${reason}`));
  }

  /**
   * Opens the UDP port and starts moving packets. Queued with configuration changes, so a
   * listen_port set while the port is being opened applies after it (not lost to the race).
   */
  up(): Promise<void> {
    const run = this.configQueue.then(() => this.upNow());
    this.configQueue = run.catch(() => undefined);
    return run;
  }

  private async upNow(): Promise<void> {
    if (this.isUp || this.closed) return;
    this.listenPort = await this.bind.open(this.listenPort, (d, from) => this.onDatagram(d, from));
    this.tun.start((p) => this.onTunPacket(p));
    this.isUp = true;
    this.logger.verbose(`interface ${this.tun.name} up, UDP port ${this.listenPort}`);
    this.armTimer();
  }

  /** Calls `listener` once the device has closed, with the reason. */
  onClose(listener: (reason: string) => void): void {
    this.closeListeners.push(listener);
  }

  /**
   * Runs after every configuration change that applied (UAPI set, applySet), so a layer above
   * (the mesh) can follow keys and peers; must not throw.
   */
  onConfigured(listener: () => void): void {
    this.configListeners.push(listener);
  }

  /** Observes the endpoint's events (for metrics: handshakes that failed, …); must not throw. */
  onEndpointEvent(listener: (event: EndpointEvent) => void): void {
    this.eventListeners.push(listener);
  }

  /** Closes the TUN and the bind, zeroes the keys; resolves when both are closed. */
  async close(reason = 'closed'): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.isUp = false;
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timer = null;
    for (const peer of this.peers.values()) this.endpoint.removePeer(peer.id);
    this.peers.clear();
    this.peersById.clear();
    await this.offload?.close();
    await this.bind.close();
    await this.tun.close();
    this.logger.verbose(`interface ${this.tun.name} down: ${reason}`);
    for (const l of this.closeListeners) l(reason);
  }

  // ---------------------------------------------------------------- data path

  private onTunPacket(p: Uint8Array): void {
    this.counters.tunPacketsIn++;
    const version = p.length > 0 ? p[0]! >> 4 : 0;
    let peer: DevicePeer | undefined;
    if (version === 4 && p.length >= 20) peer = this.allowedIps.lookupV4(p, 16);
    else if (version === 6 && p.length >= 40) peer = this.allowedIps.lookupV6(p, 24);
    else { this.counters.invalidTunPacket++; return; }
    if (!peer) { this.counters.noRoute++; return; }
    const now = this.clock.now();
    if (peer.endpoint !== null && this.bind.sealsTransport === true) {
      // The bind's threads seal it: the endpoint gives the counter and key and does the rest.
      const padded = paddedLength(p.length, this.tun.mtu);
      const r = this.endpoint.reserveTransport(now, peer.id, 1, Transport.headerSize + padded + TAG_SIZE);
      if (r !== null) {
        this.bind.sendTransport!(p, padded, r, peer.endpoint);
        this.armTimer();
        return;
      }
    }
    this.endpoint.send(now, peer.id, p);
    this.armTimer();
  }

  private onDatagram(d: Uint8Array, from: BindEndpoint): void {
    if (!isWireGuardMessage(d)) {
      this.counters.foreignDatagrams++;
      this.onForeign?.(d, from);
      return;
    }
    this.endpoint.recv(this.clock.now(), d, from);
    this.armTimer();
  }

  private deliver(id: PeerId, packet: Uint8Array): void {
    const peer = this.peersById.get(id);
    const length = ipPacketLength(packet);
    if (!peer || length === 0 || length > packet.length) { this.counters.invalidDecrypted++; return; }
    // Cryptokey routing, inbound: the source address must belong to the peer that sent it.
    const version = packet[0]! >> 4;
    const owner = version === 4 ? this.allowedIps.lookupV4(packet, 12) : this.allowedIps.lookupV6(packet, 8);
    if (owner !== peer) { this.counters.sourceNotAllowed++; return; }
    this.counters.tunPacketsOut++;
    this.tun.write(length === packet.length ? packet : packet.subarray(0, length));
  }

  private armTimer(): void {
    if (!this.isUp) return;
    const deadline = this.endpoint.nextDeadline();
    if (deadline >= this.timerAt) return;
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timerAt = deadline;
    this.timer = this.clock.setTimer(() => this.onTimer(), Math.max(0, deadline - this.clock.now()));
  }

  private onTimer(): void {
    this.timer = null;
    this.timerAt = Infinity;
    if (!this.isUp) return;
    this.tickSliced();
    this.armTimer();
  }

  /**
   * Runs the endpoint's due timers for at most TICK_BUDGET_MS, a few handshake initiations per
   * call. What is left stays due, so armTimer() schedules the next turn at once: between turns
   * the event loop serves the UAPI socket and packets (10,000 peers dialing at once would
   * otherwise hold the thread for seconds). With a virtual clock time stands still: one turn.
   */
  private tickSliced(): void {
    const start = this.clock.now();
    let now = start;
    while (!this.endpoint.tick(now, TICK_INITIATIONS)) {
      now = this.clock.now();
      if (now - start >= TICK_BUDGET_MS) return;
    }
  }

  private onEvent(e: EndpointEvent): void {
    for (const l of this.eventListeners) l(e);
    // A cookie reply is one per handshake message under load, from any number of sources: not
    // logged one by one (the metrics count them); the under-load transitions carry the sum.
    if (e.type === 'cookieReplySent') return;
    if (e.type === 'underLoad') {
      const sent = this.endpoint.counters.cookieRepliesSent;
      if (e.active) this.logger.verbose('under load: handshake messages without a valid cookie (mac2) get a cookie reply');
      else this.logger.verbose(`no longer under load; ${sent - this.cookieRepliesAtUnderLoad} cookie replies sent meanwhile`);
      this.cookieRepliesAtUnderLoad = sent;
      return;
    }
    // Any other event without a peer (none today) is logged by name.
    if (!('peer' in e)) { this.logger.verbose(`event ${(e as EndpointEvent).type}`); return; }
    const peer = this.peersById.get(e.peer);
    const name = peer ? `peer(${short(peer.publicKey)})` : `peer ${e.peer}`;
    switch (e.type) {
      case 'handshakeCompleted': this.logger.verbose(`${name} handshake completed (${e.initiator ? 'initiator' : 'responder'})`); break;
      case 'handshakeInitiated':
        this.logger.verbose(`${name} sending handshake initiation${e.retry ? ' (retry)' : ''}`);
        // Like wireguard-go, a retry forgets the sticky source address in case it went away.
        if (e.retry && peer?.endpoint) peer.endpoint = this.bind.clearSource?.(peer.endpoint) ?? peer.endpoint;
        break;
      case 'handshakeFailed': this.logger.verbose(`${name} handshake did not complete after ${90} seconds, giving up`); break;
      default: this.logger.verbose(`${name} ${e.type}`);
    }
  }

  // ---------------------------------------------------------------- configuration

  /** The device's configuration and peer statistics, as the UAPI's `get=1` gives them. */
  getState(): DeviceState {
    const peers: PeerState[] = [];
    for (const peer of this.peers.values()) {
      // Copies: the endpoint's own key bytes are not handed out.
      peers.push(this.peerState(peer, peer.publicKey.slice(), this.endpoint.peerPresharedKey(peer.id)));
    }
    return { privateKey: this.privateKey, listenPort: this.listenPort, fwmark: this.fwmark, peers };
  }

  /**
   * @internal getState() for the UAPI's encoder, one peer at a time (DeviceStateStream): each
   * peer's object holds the endpoint's own public and preshared keys, read at once, not copied.
   */
  streamState(): DeviceStateStream {
    return {
      privateKey: this.privateKey, listenPort: this.listenPort, fwmark: this.fwmark, peerCount: this.peers.size,
      peers: { [Symbol.iterator]: () => this.lentPeerStates() },
    };
  }

  private *lentPeerStates(): Generator<PeerState> {
    for (const peer of this.peers.values()) yield this.peerState(peer, peer.publicKey, this.endpoint.peerPresharedKeyView(peer.id));
  }

  private peerState(peer: DevicePeer, publicKey: Uint8Array, presharedKey: Uint8Array | null): PeerState {
    const stats = this.endpoint.peerStats(peer.id);
    const wall = stats.lastHandshakeWall;
    return {
      publicKey,
      presharedKey,
      endpoint: peer.endpoint?.text ?? null,
      lastHandshakeTimeSec: wall > 0 ? Math.floor(wall / 1000) : 0,
      lastHandshakeTimeNsec: wall > 0 ? Math.floor((wall % 1000) * 1e6) : 0,
      rxBytes: stats.rxBytes,
      txBytes: stats.txBytes,
      persistentKeepalive: peer.persistentKeepalive,
      allowedIps: this.allowedIps.entriesForPeer(peer),
      protocolVersion: 1,
    };
  }

  /**
   * Applies a validated request all or nothing. Only the privileged steps can fail: binding a
   * new port, then setting the fwmark. A failed fwmark re-opens the old port, so a request that
   * answers with an error has changed nothing; everything after them cannot fail.
   */
  applySet(request: SetRequest): Promise<void> {
    const run = this.configQueue.then(() => this.applyNow(request));
    this.configQueue = run.catch(() => undefined);
    return run;
  }

  private async applyNow(request: SetRequest): Promise<void> {
    if (this.closed) throw new UapiError(Errno.EIO, 'device is closed');
    const now = this.clock.now();
    const oldPort = this.listenPort;
    let newPort = oldPort;
    let reopened = false;
    if (request.listenPort !== undefined && request.listenPort !== oldPort) {
      if (this.isUp) {
        try {
          newPort = await this.bind.open(request.listenPort, (d, from) => this.onDatagram(d, from));
          reopened = true;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          // The old port is gone with the failed reopen: restore it so nothing changed.
          await this.reopen(oldPort);
          throw new UapiError(code === 'EADDRINUSE' ? Errno.EADDRINUSE : Errno.EIO, `cannot listen on port ${request.listenPort}: ${code ?? err}`);
        }
      } else newPort = request.listenPort;
    }
    if (request.fwmark !== undefined && request.fwmark !== this.fwmark) {
      try {
        this.bind.setMark(request.fwmark);
      } catch (err) {
        // Binds record the mark before the syscall: put the old one back (its syscall may fail
        // the same way; the record is what a later re-open applies), then the old port.
        try { this.bind.setMark(this.fwmark); } catch { /* the record is restored */ }
        if (reopened) await this.reopen(oldPort);
        throw new UapiError(Errno.EADDRINUSE, `failed to update fwmark: ${(err as Error).message}`);
      }
      this.fwmark = request.fwmark;
    }
    this.listenPort = newPort;
    if (request.privateKey !== undefined) {
      const key = request.privateKey && !isAllZero(request.privateKey) ? request.privateKey.slice() : null;
      this.privateKey = key;
      this.endpoint.setPrivateKey(key);
      // The endpoint drops a peer that has our new public key; follow it.
      for (const peer of [...this.peers.values()]) {
        if (this.endpoint.peerIdByKey(peer.publicKey) === undefined) this.forgetPeer(peer);
      }
    }
    if (request.replacePeers) for (const peer of [...this.peers.values()]) this.removePeer(peer);
    for (const change of request.peers) this.applyPeer(change, now);
    this.armTimer();
    for (const l of this.configListeners) {
      try { l(); } catch (err) { this.logger.error(`configuration listener failed: ${(err as Error).message}`); }
    }
  }

  /** Binds `port` again after a failed or undone change; a failure here leaves the device unbound (EIO). */
  private async reopen(port: number): Promise<void> {
    try {
      this.listenPort = await this.bind.open(port, (d, from) => this.onDatagram(d, from));
    } catch (err) {
      throw new UapiError(Errno.EIO, `cannot listen on port ${port} again: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }

  private applyPeer(change: PeerChange, now: number): void {
    const hex = encodeHex(change.publicKey);
    let peer = this.peers.get(hex);
    if (change.remove) { if (peer) this.removePeer(peer); return; }
    if (!peer) {
      if (change.updateOnly) return;
      // Like wireguard-go, a peer with our own public key is ignored.
      const own = this.endpoint.publicKey;
      if (own && equalConstantTime(own, change.publicKey)) return;
      const id = this.endpoint.addPeer({ publicKey: change.publicKey }, now);
      peer = { id, publicKey: this.endpoint.peerPublicKey(id), hex, endpoint: null, persistentKeepalive: 0 };
      this.peers.set(hex, peer);
      this.peersById.set(id, peer);
    }
    if (change.presharedKey !== undefined) {
      const psk = change.presharedKey && !isAllZero(change.presharedKey) ? change.presharedKey : null;
      this.endpoint.updatePeer(peer.id, { presharedKey: psk }, now);
    }
    if (change.endpoint) peer.endpoint = this.bind.endpointFor(change.endpoint.address, change.endpoint.port);
    if (change.replaceAllowedIps) this.allowedIps.removeByPeer(peer);
    for (const { op, prefix } of change.allowedIps) {
      if (op === 'add') this.allowedIps.insert(prefix, peer);
      else this.allowedIps.remove(prefix, peer);
    }
    // Last, so a keepalive sent at once (interval turned on) finds the endpoint set above.
    if (change.persistentKeepalive !== undefined) {
      peer.persistentKeepalive = change.persistentKeepalive;
      this.endpoint.updatePeer(peer.id, { persistentKeepalive: change.persistentKeepalive }, now);
    }
  }

  private removePeer(peer: DevicePeer): void {
    this.endpoint.removePeer(peer.id);
    this.forgetPeer(peer);
  }

  private forgetPeer(peer: DevicePeer): void {
    this.allowedIps.removeByPeer(peer);
    this.peers.delete(peer.hex);
    this.peersById.delete(peer.id);
  }

  /** The UAPI `get=1` answer, exactly as `wg` reads it from the socket. */
  ipcGet(): string {
    return formatGetResponse(this.getState());
  }

  /** Applies UAPI `set=1` lines (without the `set=1` header); throws UapiError, changing nothing. */
  async ipcSet(text: string): Promise<void> {
    const lines = text.split('\n').filter((l) => l.length > 0);
    await this.applySet(parseSetRequest(lines));
  }

  get name(): string {
    return this.tun.name;
  }

  get port(): number {
    return this.listenPort;
  }
}

/** The first characters of a base64 public key, as wireguard-go names peers in logs. */
function short(key: Uint8Array): string {
  let s = '';
  for (const b of key.subarray(0, 3)) s += String.fromCharCode(b);
  return btoa(s).slice(0, 4) + '…';
}
