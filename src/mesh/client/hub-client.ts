/**
 * A peer's connection to the hubs (docs/mesh.md §1): proves its key, sends and receives sealed
 * signals and relayed datagrams, pings, and fails over through the hub list. No `node:*`: it
 * takes a WebSocket factory (the `ws` package in Node, the browser's own WebSocket in a page)
 * and timer functions, so the same code runs inside a web page.
 */
import type { CryptoProvider, X25519PrivateKey } from '../../core/crypto.ts';
import type { Rng } from '../../core/rng.ts';
import { ConfigError } from '../../core/errors.ts';
import { decodeHex, encodeHex } from '../../core/keys.ts';
import { hubProof, tokenProof } from '../protocol/keys.ts';
import { FRAME, PROTOCOL_VERSION, decodeFrame, encodeFrame, HUB_ERROR } from '../protocol/frames.ts';
import type { Frame, ObservedAddress } from '../protocol/frames.ts';

/** The part of the WHATWG WebSocket API the client uses; `ws` implements it too. */
export interface WebSocketLike {
  binaryType: string;
  readonly bufferedAmount: number;
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketFactory = (url: string, protocol: string) => WebSocketLike;

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export type HubConnectionState =
  | { kind: 'connecting'; hub: string; attempt: number }
  | { kind: 'connected'; hub: string; observed: ObservedAddress | null; since: number }
  | { kind: 'disconnected'; hub: string; reason: string; retryInMs: number };

export interface HubClientEvents {
  signal?(from: Uint8Array, envelope: Uint8Array): void;
  packet?(from: Uint8Array, datagram: Uint8Array): void;
  absent?(key: Uint8Array, reason: number): void;
  announcement?(networkId: Uint8Array, key: Uint8Array, sealed: Uint8Array): void;
  withdrawn?(networkId: Uint8Array, key: Uint8Array): void;
  state?(state: HubConnectionState): void;
}

export interface HubClientOptions {
  crypto: CryptoProvider;
  rng: Rng;
  privateKey: X25519PrivateKey;
  /** Tried in order; after a failure the next one (docs/mesh.md §5). */
  hubs: readonly string[];
  connect: WebSocketFactory;
  timers: Timers;
  /** Unix ms now (for `since`); the client keeps no other clock. */
  now(): number;
  networkToken?: Uint8Array;
  events?: HubClientEvents;
  /** Ping the hub this often; give it up after this long without any frame. */
  pingIntervalMs?: number;
  deadAfterMs?: number;
  /** Datagrams are dropped (not queued without bound) while this much is unsent. */
  maxBufferedBytes?: number;
}

const SUBPROTOCOL = 'wireweave-mesh.v1';
const OPEN = 1;
const BACKOFF_MS = [250, 500, 1000, 2000, 5000, 10_000];

function bytesOf(data: unknown): Uint8Array | null {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return null;
}

export class MeshHubClient {
  private readonly o: HubClientOptions;
  private readonly events: HubClientEvents;
  private socket: WebSocketLike | null = null;
  private hubIndex = 0;
  private failures = 0;
  private proven = false;
  private stopped = false;
  private lastFrameAt = 0;
  private pingTimer: unknown = null;
  private retryTimer: unknown = null;
  private current: HubConnectionState;
  private readonly subscriptions = new Set<string>();
  /** Counters for `show` and tests. */
  readonly counters = { connects: 0, failovers: 0, droppedWhileDown: 0, droppedBuffered: 0, malformed: 0 };

  constructor(options: HubClientOptions) {
    if (options.hubs.length === 0) throw new ConfigError('ERR_MESH_OPTIONS', 'no hub configured');
    this.o = options;
    this.events = options.events ?? {};
    this.current = { kind: 'connecting', hub: options.hubs[0]!, attempt: 0 };
  }

  get state(): HubConnectionState {
    return this.current;
  }

  get connected(): boolean {
    return this.current.kind === 'connected';
  }

  start(): void {
    this.stopped = false;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    this.o.timers.clearTimeout(this.pingTimer);
    this.o.timers.clearTimeout(this.retryTimer);
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.onclose = null;
      s.close(1000, 'bye');
    }
  }

  sendSignal(to: Uint8Array, envelope: Uint8Array): boolean {
    return this.sendFrame({ type: FRAME.sendSignal, key: to, payload: envelope }, false);
  }

  sendPacket(to: Uint8Array, datagram: Uint8Array): boolean {
    return this.sendFrame({ type: FRAME.sendPacket, key: to, payload: datagram }, true);
  }

  announce(networkId: Uint8Array, sealed: Uint8Array): boolean {
    return this.sendFrame({ type: FRAME.announce, networkId, sealed }, false);
  }

  /** Subscriptions are kept and renewed on every (re)connection. */
  subscribe(networkId: Uint8Array): void {
    this.subscriptions.add(encodeHex(networkId));
    if (this.proven) this.sendFrame({ type: FRAME.subscribe, networkId }, false);
  }

  private sendFrame(frame: Frame, droppable: boolean): boolean {
    const s = this.socket;
    if (!s || !this.proven || s.readyState !== OPEN) {
      this.counters.droppedWhileDown++;
      return false;
    }
    if (droppable && s.bufferedAmount > (this.o.maxBufferedBytes ?? 1 << 20)) {
      this.counters.droppedBuffered++;
      return false;
    }
    s.send(encodeFrame(frame));
    return true;
  }

  private setState(s: HubConnectionState): void {
    this.current = s;
    this.events.state?.(s);
  }

  private open(): void {
    if (this.stopped) return;
    const hub = this.o.hubs[this.hubIndex % this.o.hubs.length]!;
    this.proven = false;
    this.setState({ kind: 'connecting', hub, attempt: this.failures });
    let s: WebSocketLike;
    try {
      s = this.o.connect(hub, SUBPROTOCOL);
    } catch (e) {
      this.fail(hub, `cannot connect: ${(e as Error).message}`);
      return;
    }
    this.socket = s;
    s.binaryType = 'arraybuffer';
    s.onmessage = (ev) => {
      if (this.socket !== s) return;
      const bytes = bytesOf(ev.data);
      const frame = bytes ? decodeFrame(bytes) : null;
      if (!frame) {
        this.counters.malformed++;
        return;
      }
      this.lastFrameAt = this.o.now();
      this.onFrame(hub, s, frame);
    };
    // An error (connection refused, TLS, HTTP status) comes just before the close: it says why.
    let error = '';
    s.onclose = (ev) => {
      if (this.socket !== s) return;
      this.fail(hub, ev.reason ? `closed: ${ev.reason}` : error ? `cannot connect: ${error}` : `closed (${ev.code})`);
    };
    s.onerror = (ev) => {
      const m = (ev as { message?: unknown } | null)?.message;
      if (typeof m === 'string') error = m.slice(0, 200);
    };
  }

  private onFrame(hub: string, s: WebSocketLike, frame: Frame): void {
    switch (frame.type) {
      case FRAME.serverHello: {
        const proof = hubProof(this.o.crypto, this.o.privateKey, frame.hubEphemeral, frame.challenge);
        if (!proof || frame.version !== PROTOCOL_VERSION) {
          s.close(4000, 'bad server hello');
          return;
        }
        if (frame.tokenRequired && !this.o.networkToken) {
          this.fail(hub, 'the hub requires a network token');
          return;
        }
        const tp = this.o.networkToken ? tokenProof(this.o.crypto, this.o.networkToken, frame.challenge, this.o.privateKey.publicKey) : new Uint8Array(16);
        s.send(encodeFrame({ type: FRAME.clientHello, version: PROTOCOL_VERSION, publicKey: this.o.privateKey.publicKey, proof, tokenProof: tp }));
        return;
      }
      case FRAME.welcome:
        this.proven = true;
        this.failures = 0;
        this.counters.connects++;
        this.setState({ kind: 'connected', hub, observed: frame.observed, since: this.o.now() });
        for (const hex of this.subscriptions) s.send(encodeFrame({ type: FRAME.subscribe, networkId: decodeHex(hex) }));
        this.schedulePing(s);
        return;
      case FRAME.recvSignal: this.events.signal?.(frame.key, frame.payload); return;
      case FRAME.recvPacket: this.events.packet?.(frame.key, frame.payload); return;
      case FRAME.peerAbsent: this.events.absent?.(frame.key, frame.reason); return;
      case FRAME.announcement: this.events.announcement?.(frame.networkId, frame.key, frame.sealed); return;
      case FRAME.withdrawn: this.events.withdrawn?.(frame.networkId, frame.key); return;
      case FRAME.pong: return;
      case FRAME.error:
        // A replaced connection must not reconnect and replace the newer one in turn.
        if (frame.code === HUB_ERROR.replaced) this.stop();
        else this.fail(hub, `refused by the hub: ${frame.reason}`);
        return;
      default:
        this.counters.malformed++;
    }
  }

  private schedulePing(s: WebSocketLike): void {
    const interval = this.o.pingIntervalMs ?? 10_000;
    const dead = this.o.deadAfterMs ?? 15_000;
    this.o.timers.clearTimeout(this.pingTimer);
    this.pingTimer = this.o.timers.setTimeout(() => {
      if (this.socket !== s) return;
      if (this.o.now() - this.lastFrameAt >= dead) {
        this.fail(this.current.hub, `no answer from the hub for ${Math.round(dead / 1000)} s`);
        return;
      }
      const data = new Uint8Array(8);
      this.o.rng.fill(data);
      if (s.readyState === OPEN) s.send(encodeFrame({ type: FRAME.ping, data }));
      this.schedulePing(s);
    }, Math.min(interval, dead / 2));
  }

  /** This hub failed: drop the socket, move on to the next hub after a backoff. */
  private fail(hub: string, reason: string): void {
    const s = this.socket;
    this.socket = null;
    this.proven = false;
    this.o.timers.clearTimeout(this.pingTimer);
    if (s) {
      s.onclose = null;
      s.onmessage = null;
      try { s.close(1000, 'failover'); } catch { /* already closed */ }
    }
    if (this.stopped) return;
    const retryInMs = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)]!;
    this.failures++;
    if (this.o.hubs.length > 1) {
      this.hubIndex++;
      this.counters.failovers++;
    }
    this.setState({ kind: 'disconnected', hub, reason, retryInMs });
    this.retryTimer = this.o.timers.setTimeout(() => this.open(), retryInMs);
  }
}
