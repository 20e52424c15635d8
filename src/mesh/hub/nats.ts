/**
 * The federation on NATS (docs/mesh.md §5): frames on core subjects `ww.v1.hub.<hub id>`,
 * presence and announcements in JetStream KV buckets with a bucket TTL (Debian's nats-server
 * 2.9 has no per-key TTL), re-put by `Federation.tick`. This file only moves bytes; bounds,
 * drops and re-registration are `Federation`'s. The hub serves its own clients from the start;
 * NATS joins when it answers, and its loss is logged and counted, never fatal.
 */
import { connect, credsAuthenticator } from '@nats-io/transport-node';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import { WireweaveError } from '../../core/errors.ts';
import { Federation, ANNOUNCE_BUCKET, PRESENCE_BUCKET, subjectOf } from './federation.ts';
import type { FederationLimits, FederationTransport } from './federation.ts';

export interface NatsFederationOptions {
  /** nats://host:port URLs of one cluster. */
  servers: string[];
  /** The hub's clock (ws-server's `clock.now`). */
  now: () => number;
  limits?: Partial<FederationLimits>;
  /** KV replicas; 3 on a cluster of three or more (so losing a server loses no entry), else 1. */
  replicas?: number;
  log?: (line: string) => void;
  /** How the hub authenticates to NATS, if the cluster asks: never logged, never in a URL. */
  auth?: NatsAuth;
}

/** A token (`nats-server --auth`, `authorization { token }`) or a user's .creds file (JWT and nkey seed). */
export type NatsAuth = { token: string } | { creds: Uint8Array };

const BATCH_BYTES = 256 << 10;
const MAX_KV_INFLIGHT = 32;
const MAX_KV_PENDING = 100_000;
const KV_RETRIES = 10;

interface PendingKv {
  op: () => Promise<unknown>;
  attempt: number;
}

interface QueuedIterator<T> extends AsyncIterable<T> {
  stop(): void;
}

/** `nats://a,nats://b` as a checked list; a bad URL is a configuration error. */
export function parseNatsServers(text: string): string[] {
  const servers = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (servers.length === 0) throw new WireweaveError('MESH_NATS_URL', '--nats needs at least one nats://HOST:PORT');
  for (const s of servers) {
    // No user:password@: it would end up in logs and process lists. Credentials come from files.
    if (s.includes('@')) throw new WireweaveError('MESH_NATS_URL', '--nats: credentials in the URL are not supported; give them with --nats-token FILE or --nats-creds FILE');
    if (!/^(nats|tls):\/\/[^\s/,]+(:\d{1,5})?\/?$/.test(s)) throw new WireweaveError('MESH_NATS_URL', `--nats ${JSON.stringify(s)}: expected nats://HOST:PORT`);
  }
  return servers;
}

export class NatsFederation implements FederationTransport {
  readonly federation: Federation;
  /** KV writes that failed (logged once per outage), for metrics and tests. */
  kvFailures = 0;
  kvDropped = 0;
  private readonly options: NatsFederationOptions;
  private readonly log: (line: string) => void;
  private nc: NatsConnection | null = null;
  private sub: Subscription | null = null;
  private presence: KV | null = null;
  private announcements: KV | null = null;
  private readonly watches = new Map<string, QueuedIterator<KvWatchEntry> | null>();
  private readonly kvPending = new Map<string, PendingKv>();
  /** The newest write per id until it is done: an older failed write is not retried over it. */
  private readonly kvLatest = new Map<string, () => Promise<unknown>>();
  private kvInflight = 0;
  private pumping = false;
  private closed = false;
  private ticker: ReturnType<typeof setInterval> | null = null;
  private loggedKvFailure = false;

  constructor(options: NatsFederationOptions) {
    this.options = options;
    this.log = options.log ?? (() => {});
    this.federation = new Federation(this, { now: options.now, log: (l) => this.log(`nats: ${l}`), ...(options.limits ? { limits: options.limits } : {}) });
  }

  /** Connects in the background once the hub has attached (its id names the subject). */
  start(): void {
    if (!this.federation.hubHex) throw new WireweaveError('MESH_NATS_STATE', 'start the hub with this federation first');
    this.ticker = setInterval(() => this.federation.tick(), 1000);
    this.ticker.unref();
    void this.run();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.ticker) clearInterval(this.ticker);
    // Let the hub's last unregistrations (its clients were just closed) reach the registry.
    for (let i = 0; i < 50 && (this.kvPending.size > 0 || this.kvInflight > 0) && this.federation.up; i++) await new Promise((r) => setTimeout(r, 20));
    for (const w of this.watches.values()) w?.stop();
    const nc = this.nc;
    this.nc = null;
    if (nc) await nc.close().catch(() => {});
  }

  get connectedServer(): string | null {
    return this.nc && !this.nc.isClosed() ? this.nc.getServer() : null;
  }

  // ---- FederationTransport ----

  kick(): void {
    if (this.pumping || !this.nc) return;
    this.pumping = true;
    void this.pump().finally(() => { this.pumping = false; });
  }

  putPresence(keyHex: string, hubHex: string): void {
    this.kv(`p:${keyHex}`, async () => this.presence?.put(keyHex, hubHex));
  }

  deletePresence(keyHex: string, hubHex: string): void {
    this.kv(`p:${keyHex}`, async () => {
      const kv = this.presence;
      const e = await kv?.get(keyHex);
      // Only our own registration: the key may have moved to another hub since.
      if (kv && e && e.operation === 'PUT' && e.string() === hubHex) await kv.delete(keyHex, { previousSeq: e.revision });
    });
  }

  putAnnouncement(networkHex: string, keyHex: string, value: Uint8Array): void {
    this.kv(`a:${networkHex}.${keyHex}`, async () => this.announcements?.put(`${networkHex}.${keyHex}`, value));
  }

  watchNetwork(networkHex: string): void {
    if (this.watches.has(networkHex)) return;
    this.watches.set(networkHex, null);
    if (this.announcements) void this.openWatch(networkHex);
  }

  unwatchNetwork(networkHex: string): void {
    this.watches.get(networkHex)?.stop();
    this.watches.delete(networkHex);
  }

  // ---- the edge ----

  private async run(): Promise<void> {
    const servers = this.options.servers;
    const auth = this.options.auth;
    const credentials = !auth ? {} : 'token' in auth ? { token: auth.token } : { authenticator: credsAuthenticator(auth.creds) };
    let nc: NatsConnection | null = null;
    // Our own retry loop for the first connection (not waitOnFirstConnect) so close() ends it.
    for (let attempt = 0; !this.closed && !nc; attempt++) {
      try {
        nc = await connect({
          servers, name: `wireweave-hub-${this.federation.hubHex.slice(0, 8)}`,
          maxReconnectAttempts: -1, reconnectTimeWait: 500, reconnectJitter: 200,
          // A dead server is noticed within a few seconds, not NATS's default two minutes.
          pingInterval: 2000, maxPingOut: 2, timeout: 2000,
          ...credentials,
        });
      } catch (e) {
        if (attempt === 0) this.log(`nats: cannot reach ${servers.join(',')} (${(e as Error).message}): serving local clients only, retrying`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    if (!nc) return;
    if (this.closed) {
      await nc.close();
      return;
    }
    this.nc = nc;
    void this.watchStatus(nc);
    this.sub = nc.subscribe(subjectOf(this.federation.hubHex), {
      callback: (err, msg) => { if (!err) this.federation.onMessage(msg.data); },
    });
    this.log(`nats: connected to ${nc.getServer()}; opening the registry`);
    await this.openBuckets(nc);
  }

  private async openBuckets(nc: NatsConnection): Promise<void> {
    const kvm = new Kvm(nc);
    let replicas = this.options.replicas ?? 3;
    const ttl = this.federation.limits.presenceTtlMs;
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        this.presence = await kvm.create(PRESENCE_BUCKET, { ttl, history: 1, replicas, maxValueSize: 128 });
        this.announcements = await kvm.create(ANNOUNCE_BUCKET, { ttl, history: 1, replicas, maxValueSize: 1024 });
        break;
      } catch (e) {
        const why = (e as Error).message;
        if (replicas > 1 && /replicas > 1 not supported/i.test(why)) {
          replicas = 1; // a single server, not a cluster
          continue;
        }
        if (/already in use/i.test(why)) {
          // Made by another hub with other settings: use it as it is.
          this.presence = await kvm.open(PRESENCE_BUCKET).catch(() => null);
          this.announcements = await kvm.open(ANNOUNCE_BUCKET).catch(() => null);
          if (this.presence && this.announcements) break;
        }
        // A new cluster elects its JetStream leader in a few seconds.
        if (attempt % 10 === 0) this.log(`nats: registry not ready (${why}); retrying`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    if (this.closed || !this.presence) return;
    void this.watchPresence(this.presence);
    for (const n of this.watches.keys()) void this.openWatch(n);
    this.log(`nats: registry open (replicas ${replicas}, TTL ${ttl / 1000} s)`);
    this.federation.onStatus(true, `nats ${nc.getServer()}`);
    this.drainKv();
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') this.federation.onStatus(false, `lost ${s.server}`);
      else if (s.type === 'reconnect' && this.presence) {
        this.federation.onStatus(true, `reconnected to ${s.server}`);
        this.kick();
        this.drainKv();
      } else if (s.type === 'close') this.federation.onStatus(false, 'connection closed');
    }
  }

  /** The presence cache's feed; restarted if it ever ends while the hub runs. */
  private async watchPresence(kv: KV): Promise<void> {
    while (!this.closed) {
      try {
        const it = await kv.watch();
        for await (const e of it) {
          this.federation.onPresence(e.key, e.operation === 'PUT' ? new TextDecoder().decode(e.value) : null);
        }
      } catch (e) {
        if (!this.closed) this.log(`nats: presence watch ended (${(e as Error).message}); restarting`);
      }
      await new Promise((r) => setTimeout(r, 1000).unref());
    }
  }

  private async openWatch(networkHex: string): Promise<void> {
    const kv = this.announcements;
    if (!kv) return;
    try {
      const it = await kv.watch({ key: `${networkHex}.>` });
      if (!this.watches.has(networkHex)) {
        it.stop();
        return;
      }
      this.watches.set(networkHex, it);
      for await (const e of it) {
        if (e.operation !== 'PUT') continue;
        const dot = e.key.indexOf('.');
        this.federation.onAnnouncement(e.key.slice(0, dot), e.key.slice(dot + 1), e.value);
      }
    } catch (e) {
      if (!this.closed) this.log(`nats: announcement watch ended: ${(e as Error).message}`);
    }
  }

  /** Publishes the federation's queue in batches; each flush bounds what NATS buffers for us. */
  private async pump(): Promise<void> {
    const nc = this.nc;
    if (!nc) return;
    try {
      while (this.federation.queuedFrames > 0 && !nc.isClosed()) {
        for (const q of this.federation.takeOutbox(BATCH_BYTES)) nc.publish(q.subject, q.data);
        await nc.flush();
      }
    } catch (e) {
      if (!this.closed) this.log(`nats: publishing failed: ${(e as Error).message}`);
    }
  }

  /** One registry write per id (a newer intent replaces a pending one), at most 32 in flight. */
  private kv(id: string, op: () => Promise<unknown>, attempt = 0): void {
    if (!this.kvPending.has(id) && this.kvPending.size >= MAX_KV_PENDING) {
      this.kvDropped++;
      return;
    }
    this.kvPending.delete(id);
    this.kvPending.set(id, { op, attempt });
    this.kvLatest.set(id, op);
    this.drainKv();
  }

  private drainKv(): void {
    while (this.kvInflight < MAX_KV_INFLIGHT && this.kvPending.size > 0 && this.presence && this.federation.up) {
      const [id, { op, attempt }] = this.kvPending.entries().next().value as [string, PendingKv];
      this.kvPending.delete(id);
      this.kvInflight++;
      op().then(() => {
        this.loggedKvFailure = false;
        if (this.kvLatest.get(id) === op) this.kvLatest.delete(id);
      }, (e: unknown) => {
        this.kvFailures++;
        if (!this.loggedKvFailure && !this.closed) this.log(`nats: registry write failed (${(e as Error).message}); retrying`);
        this.loggedKvFailure = true;
        // A stream electing a new leader (a NATS server lost) refuses writes for a few seconds.
        // Retried only while it is still the newest intent for its key.
        if (attempt < KV_RETRIES && !this.closed) {
          setTimeout(() => { if (this.kvLatest.get(id) === op && !this.kvPending.has(id)) this.kv(id, op, attempt + 1); }, 1000).unref();
        } else if (this.kvLatest.get(id) === op) {
          this.kvLatest.delete(id);
        }
      }).finally(() => {
        this.kvInflight--;
        this.drainKv();
      });
    }
  }
}
