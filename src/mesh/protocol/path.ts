/**
 * The path state machine of one mesh peer (docs/mesh.md §3): relay until a candidate answers a
 * probe, direct while it keeps answering, back to relay within seconds when it stops. Sans-I/O:
 * time goes in, the probes to send come out of `poll`, the caller sends them and reports pongs.
 * Candidates are opaque strings (`ip:port`).
 */
export type RelayPolicy = 'auto' | 'always' | 'never';

export const PATH_TIMING = {
  /** Probe every candidate this often for `burstMs` after either side's candidates change… */
  burstIntervalMs: 5_000,
  burstMs: 30_000,
  /** …then this often while relayed (Tailscale tries to upgrade once a minute). */
  idleIntervalMs: 60_000,
  /** While traffic flows on a direct path, ping it this often… */
  heartbeatMs: 500,
  /** …and give it up when a ping has gone unanswered this long. */
  pongTimeoutMs: 2_500,
  /** Traffic within this long counts as flowing. */
  activeMs: 5_000,
  /** Another path must be this much faster (RTT ratio) to take over: no flapping. */
  switchRatio: 0.8,
} as const;

export type PathState =
  | { kind: 'relay'; reason: string }
  | { kind: 'direct'; candidate: string; rttMs: number; since: number };

export interface PathChange {
  from: PathState;
  to: PathState;
}

export class PathMachine {
  private readonly policy: RelayPolicy;
  private candidates: string[] = [];
  private burstUntil = 0;
  private nextProbeAt = 0;
  private lastTrafficAt = -Infinity;
  /** When the oldest still-unanswered heartbeat went out (direct only). */
  private unansweredSince: number | null = null;
  private nextHeartbeatAt = 0;
  private current: PathState;
  private readonly changes: PathChange[] = [];

  constructor(now: number, policy: RelayPolicy = 'auto') {
    this.policy = policy;
    this.current = { kind: 'relay', reason: policy === 'always' ? 'relay = always' : 'no candidates' };
    this.burstUntil = now + PATH_TIMING.burstMs;
    this.nextProbeAt = now;
  }

  get state(): PathState {
    return this.current;
  }

  /** The other side's candidates (a new generation) or our own changed: probe again, often. */
  setCandidates(now: number, candidates: readonly string[]): void {
    this.candidates = [...new Set(candidates)].slice(0, 16);
    this.burstUntil = now + PATH_TIMING.burstMs;
    this.nextProbeAt = now;
    if (this.current.kind === 'direct' && !this.candidates.includes(this.current.candidate)) {
      this.change(now, { kind: 'relay', reason: 'the direct address is no longer a candidate' });
    } else if (this.current.kind === 'relay' && this.policy !== 'always') {
      this.current = { kind: 'relay', reason: this.candidates.length === 0 ? 'no candidates' : this.current.reason };
    }
  }

  /** Tunnel traffic to or from the peer: keeps heartbeats going on a direct path. */
  onTraffic(now: number): void {
    this.lastTrafficAt = now;
  }

  /** A pong (authenticated) from `candidate`, `rttMs` after its ping. */
  onPong(now: number, candidate: string, rttMs: number): void {
    if (this.policy === 'always' || !this.candidates.includes(candidate)) return;
    const cur = this.current;
    if (cur.kind === 'direct' && cur.candidate === candidate) {
      this.unansweredSince = null;
      this.current = { ...cur, rttMs };
      return;
    }
    if (cur.kind === 'direct' && rttMs >= cur.rttMs * PATH_TIMING.switchRatio) return;
    this.change(now, { kind: 'direct', candidate, rttMs, since: now });
    this.unansweredSince = null;
    this.nextHeartbeatAt = now + PATH_TIMING.heartbeatMs;
  }

  /** The socket could not send to `candidate` at all (no route, unreachable). */
  onUnreachable(now: number, candidate: string): void {
    if (this.current.kind === 'direct' && this.current.candidate === candidate) {
      this.change(now, { kind: 'relay', reason: `direct path to ${candidate} unreachable` });
    }
  }

  /** The candidates to probe now (and state changes due by now). Call at `nextDeadline()`. */
  poll(now: number): string[] {
    if (this.policy === 'always') return [];
    const cur = this.current;
    if (cur.kind === 'direct') {
      if (this.unansweredSince !== null && now - this.unansweredSince >= PATH_TIMING.pongTimeoutMs) {
        this.change(now, { kind: 'relay', reason: `no UDP answer from ${cur.candidate} for ${PATH_TIMING.pongTimeoutMs / 1000} s` });
        this.burstUntil = now + PATH_TIMING.burstMs;
        this.nextProbeAt = now;
        return this.poll(now);
      }
      if (now >= this.nextHeartbeatAt && now - this.lastTrafficAt <= PATH_TIMING.activeMs) {
        this.nextHeartbeatAt = now + PATH_TIMING.heartbeatMs;
        if (this.unansweredSince === null) this.unansweredSince = now;
        return [cur.candidate];
      }
      return [];
    }
    if (now < this.nextProbeAt || this.candidates.length === 0) return [];
    this.nextProbeAt = now + (now < this.burstUntil ? PATH_TIMING.burstIntervalMs : PATH_TIMING.idleIntervalMs);
    // Still relayed after a round of probes: that is the reason until one answers (unless a
    // more precise one, such as a direct path that stopped answering, is already there).
    if (cur.reason === 'no candidates') this.current = { kind: 'relay', reason: 'no UDP answer from any candidate' };
    return [...this.candidates];
  }

  nextDeadline(): number {
    if (this.policy === 'always') return Infinity;
    if (this.current.kind === 'direct') {
      const timeout = this.unansweredSince === null ? Infinity : this.unansweredSince + PATH_TIMING.pongTimeoutMs;
      const heartbeat = this.lastTrafficAt + PATH_TIMING.activeMs >= this.nextHeartbeatAt ? this.nextHeartbeatAt : Infinity;
      return Math.min(timeout, heartbeat);
    }
    return this.candidates.length === 0 ? Infinity : this.nextProbeAt;
  }

  /** Whether datagrams may go through the relay now (`Relay = never` forbids it). */
  get relayAllowed(): boolean {
    return this.policy !== 'never';
  }

  /** State changes since the last call, oldest first (for logs and `show`). */
  takeChanges(): PathChange[] {
    return this.changes.splice(0);
  }

  private change(_now: number, to: PathState): void {
    this.changes.push({ from: this.current, to });
    this.current = to;
    if (to.kind === 'relay') this.unansweredSince = null;
  }
}
