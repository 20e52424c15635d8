/**
 * An in-memory HubLink: what the hub sends is kept in `sent` (or handed to `onSend`), the queue
 * depth is whatever the test sets. The hub's twin of a WebSocket, for tests of code that runs a
 * hub or talks to one.
 */
import type { HubLink } from './hub.ts';
import type { ObservedAddress } from '../protocol/frames.ts';

export class MemoryHubLink implements HubLink {
  readonly remote: ObservedAddress | null;
  readonly sent: Uint8Array[] = [];
  queued = 0;
  closedWith: { code: number; reason: string } | null = null;
  paused = false;
  onSend: ((frame: Uint8Array) => void) | null = null;

  constructor(remote: ObservedAddress | null = null) {
    this.remote = remote;
  }

  send(frame: Uint8Array): void {
    if (this.closedWith) return;
    if (this.onSend) this.onSend(frame);
    else this.sent.push(frame);
  }

  queuedBytes(): number {
    return this.queued;
  }

  close(code: number, reason: string): void {
    this.closedWith ??= { code, reason };
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  /** Takes what was sent so far. */
  take(): Uint8Array[] {
    return this.sent.splice(0);
  }
}
