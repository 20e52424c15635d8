/**
 * An in-memory twin of NATS for `Federation`: one bus holds the presence registry and the
 * announcement registry, and carries frames between hubs' subjects when the test calls
 * `deliver()` (so queues build up in between, as they do while NATS is busy). `setUp(false)` is
 * an outage. Registry changes reach every member at once, as a KV watch would.
 */
import { Federation } from './federation.ts';
import type { FederationLimits, FederationTransport } from './federation.ts';
import { SUBJECT_PREFIX } from './federation.ts';

export class MemoryFederationBus {
  readonly presence = new Map<string, string>();
  readonly announcements = new Map<string, Uint8Array>();
  private readonly members: Federation[] = [];
  private readonly watching = new Map<Federation, Set<string>>();
  private isUp = true;
  /** Frames delivered so far, for tests to count. */
  delivered = 0;

  /** A new hub's federation on this bus; `now` is that hub's clock. */
  join(now: () => number, limits: Partial<FederationLimits> = {}, log?: (line: string) => void): Federation {
    const transport = new MemoryTransport(this);
    const fed = new Federation(transport, { now, limits, ...(log ? { log } : {}) });
    transport.fed = fed;
    this.members.push(fed);
    this.watching.set(fed, transport.watching);
    fed.onStatus(this.isUp, 'memory bus');
    return fed;
  }

  /** @internal the transport's registry writes */
  put(keyHex: string, hubHex: string): void {
    if (!this.isUp) return;
    this.presence.set(keyHex, hubHex);
    for (const m of this.members) m.onPresence(keyHex, hubHex);
  }

  /** @internal */
  remove(keyHex: string, hubHex: string): void {
    if (!this.isUp || this.presence.get(keyHex) !== hubHex) return;
    this.presence.delete(keyHex);
    for (const m of this.members) m.onPresence(keyHex, null);
  }

  /** @internal */
  putAnnouncement(networkHex: string, keyHex: string, value: Uint8Array): void {
    if (!this.isUp) return;
    this.announcements.set(`${networkHex}.${keyHex}`, value);
    for (const [m, w] of this.watching) if (w.has(networkHex)) m.onAnnouncement(networkHex, keyHex, value);
  }

  /** A hub process dies: its federation leaves the bus; its registrations stay until TTL. */
  leave(fed: Federation): void {
    const i = this.members.indexOf(fed);
    if (i >= 0) this.members.splice(i, 1);
    this.watching.delete(fed);
  }

  setUp(up: boolean): void {
    this.isUp = up;
    for (const m of this.members) m.onStatus(up, up ? 'memory bus back' : 'memory bus down');
  }

  /** Carries every queued frame to its subject's hub; frames for a hub that left are lost. */
  deliver(maxBatchBytes = 256 << 10): number {
    let n = 0;
    for (const from of this.members) {
      for (;;) {
        if (!this.isUp || from.queuedFrames === 0) break;
        for (const q of from.takeOutbox(maxBatchBytes)) {
          const to = this.members.find((m) => SUBJECT_PREFIX + m.hubHex === q.subject);
          if (to) {
            to.onMessage(q.data);
            n++;
          }
        }
      }
    }
    this.delivered += n;
    return n;
  }
}

class MemoryTransport implements FederationTransport {
  readonly watching = new Set<string>();
  fed: Federation | null = null;
  private readonly bus: MemoryFederationBus;

  constructor(bus: MemoryFederationBus) {
    this.bus = bus;
  }

  kick(): void {}

  putPresence(keyHex: string, hubHex: string): void {
    this.bus.put(keyHex, hubHex);
  }

  deletePresence(keyHex: string, hubHex: string): void {
    this.bus.remove(keyHex, hubHex);
  }

  putAnnouncement(networkHex: string, keyHex: string, value: Uint8Array): void {
    this.bus.putAnnouncement(networkHex, keyHex, value);
  }

  watchNetwork(networkHex: string): void {
    this.watching.add(networkHex);
    for (const [k, v] of this.bus.announcements) {
      const [n, key] = k.split('.') as [string, string];
      if (n === networkHex) this.fed?.onAnnouncement(n, key, v);
    }
  }

  unwatchNetwork(networkHex: string): void {
    this.watching.delete(networkHex);
  }
}
