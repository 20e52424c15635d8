/**
 * The transmission control block (RFC 9293 §3.3.1) of one connection: its variables, timers and
 * the plumbing every part of the connection shares — building segments, the announced window,
 * timestamps, closing, and the queue that runs application callbacks once a segment or timer is
 * fully processed. The sending side (sender.ts) and the state machine (connection.ts) build on it.
 */
import type { Counters } from '../counters.ts';
import type { ResolvedConfig } from '../config.ts';
import type { Timed } from '../heap.ts';
import type { Family } from '../ip.ts';
import type { Endpoint4or6, TcpErrorCode, TcpEvents, TcpState } from '../types.ts';
import { NewReno } from './newreno.ts';
import { OutOfOrderQueue } from './reassembly.ts';
import { RtoEstimator } from './rto.ts';
import { announceWindow } from './receive-window.ts';
import { Scoreboard } from './scoreboard.ts';
import { ACK, MAX_SACK_BLOCKS, RST, SYN, TS_OPTION_SPACE } from './segment.ts';
import type { SegmentOut, TcpSegment } from './segment.ts';
import { SendBuffer } from './send-buffer.ts';
import { seqAdd, seqDiff, seqLt } from './seq.ts';

/** What a connection needs from the TCP layer. */
export interface ConnectionHost {
  readonly config: ResolvedConfig;
  readonly counters: Counters;
  /** Builds the segment (header from `seg`, `length` payload bytes written by `fill`) and sends it. */
  emit(conn: Tcb, seg: SegmentOut, length: number, fill?: (b: Uint8Array, at: number) => void): void;
  /** `conn.deadline` changed. */
  reschedule(conn: Tcb): void;
  /** The connection reached CLOSED: forget it. */
  removed(conn: Tcb): void;
  /** A passive open completed the handshake. */
  established(conn: Tcb): void;
}

/** RFC 9293 §3.7.1: the MSS assumed when the peer sends none. */
const DEFAULT_MSS = { 4: 536, 6: 1220 } as const;
const IP_TCP_OVERHEAD = { 4: 40, 6: 60 } as const;
const MAX_WSCALE = 14;
export const OOW_ACK_INTERVAL = 500;
export const PAWS_IDLE = 24 * 24 * 3600 * 1000;

export interface ConnectionInit {
  readonly family: Family;
  readonly localIp: Uint8Array;
  readonly remoteIp: Uint8Array;
  readonly local: Endpoint4or6;
  readonly remote: Endpoint4or6;
  readonly key: string;
  readonly iss: number;
  readonly tsOffset: number;
}

export abstract class Tcb implements Timed {
  deadline = Infinity;
  heapIndex = -1;
  events: TcpEvents = {};
  state: TcpState = 'CLOSED';
  readonly family: Family;
  readonly localIp: Uint8Array;
  readonly remoteIp: Uint8Array;
  readonly local: Endpoint4or6;
  readonly remote: Endpoint4or6;
  readonly key: string;
  /** The listener that owns this connection while it is half-open (passive open). */
  listener: { halfOpen: Set<Tcb> } | undefined;
  passive = false;

  // Send sequence space (RFC 9293 §3.3.1). sndMax is the highest sequence ever sent: after a
  // timeout sndNxt goes back to sndUna and climbs again (go-back-N).
  readonly iss: number;
  sndUna: number;
  sndNxt: number;
  sndMax: number;
  sndWnd = 0;
  sndWl1 = 0;
  sndWl2 = 0;
  maxSndWnd = 0;
  sndWscale = 0;
  /** Payload bytes per segment: min(peer MSS, ours) less the timestamp option. */
  smss: number;
  readonly sendBuf: SendBuffer;
  /** The application asked for FIN after the queued data; finSeq is where it goes. */
  finQueued = false;
  finAcked = false;

  // Receive sequence space.
  irs = 0;
  rcvNxt = 0;
  /** Right edge of the window we announced: never moves left (RFC 9293 §3.8.6). */
  rcvAdv = 0;
  rcvWscale = 0;
  /** Delivered to onData and not yet released by the application. */
  unreleased = 0;
  readonly ooo = new OutOfOrderQueue();
  /** Sequence number of a FIN that arrived ahead of data still missing, or -1. */
  peerFinSeq = -1;
  peerFinReceived = false;
  readonly rcvBufSize: number;
  readonly rcvMss: number;

  // RFC 7323.
  offerWscale: boolean;
  offerTs: boolean;
  offerSack: boolean;
  /** Both ends agreed on SACK (RFC 2018): we send blocks and keep a scoreboard. */
  sackOk = false;
  readonly scoreboard = new Scoreboard();
  /** RFC 6675 HighRxt: retransmissions in this recovery reached up to here. */
  protected highRxt = 0;
  tsOk = false;
  tsRecent = 0;
  lastAckSent = 0;
  protected readonly tsOffset: number;

  // Timers: absolute times, Infinity when off; `deadline` is their minimum.
  rtxAt = Infinity;
  ackAt = Infinity;
  persistAt = Infinity;
  keepAt = Infinity;
  closeAt = Infinity;

  readonly rto: RtoEstimator;
  cc: NewReno;
  /** Consecutive retransmissions of the same SYN/SYN-ACK. */
  synRetries = 0;
  /** Last time the peer acknowledged new data, or we started sending into an idle pipe. */
  protected progressAt = 0;
  protected timing = false;
  /** Our timestamp clock at the last retransmission. */
  protected rtxTs: number | undefined;
  protected rttSeq = 0;
  protected rttStart = 0;
  dupAcks = 0;
  protected unackedSegments = 0;
  protected ackNow = false;
  protected persistBackoffs = 0;
  protected keepIdle = 0;
  protected lastOowAckAt = -Infinity;
  protected lastChallengeAt = -Infinity;
  /** When tsRecent was last updated: PAWS trusts it for 24 days (RFC 7323 §5.5). */
  protected tsRecentAt = 0;
  protected keepProbes = 0;
  protected lastRecvAt = 0;
  /** close() was called: received data is discarded, FIN-WAIT-2 times out. */
  protected appClosed = false;
  /** abort() was called or the connection closed: no more onData/onEnd/onDrain/onConnect. */
  protected destroyed = false;
  protected closeNotified = false;
  protected writeBlocked = false;
  protected pendingError: { code: TcpErrorCode; message: string } | undefined;
  protected readonly queued: (() => void)[] = [];
  protected flushing = false;
  protected readonly host: ConnectionHost;

  constructor(host: ConnectionHost, init: ConnectionInit) {
    this.host = host;
    const c = host.config;
    this.family = init.family;
    this.localIp = init.localIp;
    this.remoteIp = init.remoteIp;
    this.local = init.local;
    this.remote = init.remote;
    this.key = init.key;
    this.iss = init.iss;
    this.sndUna = init.iss;
    this.sndNxt = init.iss;
    this.sndMax = init.iss;
    this.tsOffset = init.tsOffset;
    this.sendBuf = new SendBuffer(c.tcpSendBuffer);
    this.rcvBufSize = c.tcpReceiveBuffer;
    this.rcvMss = c.mtu - IP_TCP_OVERHEAD[init.family];
    this.smss = Math.min(DEFAULT_MSS[init.family], this.rcvMss);
    this.offerWscale = c.tcpWindowScaling;
    this.offerTs = c.tcpTimestamps;
    this.offerSack = c.tcpSack;
    this.rto = new RtoEstimator(c.tcpInitialRto, c.tcpMinRto, c.tcpMaxRto);
    this.cc = new NewReno(this.smss, init.iss);
    if (this.offerWscale) {
      while (this.rcvWscale < MAX_WSCALE && this.rcvBufSize > 65535 * 2 ** this.rcvWscale) this.rcvWscale++;
    }
  }

  protected takeSynOptions(seg: TcpSegment): void {
    const o = seg.options;
    const peerMss = o.mss !== undefined && o.mss > 0 ? o.mss : DEFAULT_MSS[this.family];
    if (o.wscale !== undefined && this.offerWscale) {
      this.sndWscale = Math.min(o.wscale, MAX_WSCALE);
    } else {
      this.offerWscale = false;
      this.sndWscale = 0;
      this.rcvWscale = 0;
    }
    this.tsOk = this.offerTs && o.tsVal !== undefined;
    this.sackOk = this.offerSack && o.sackPermitted === true;
    if (this.tsOk) this.tsRecent = o.tsVal!;
    this.tsRecentAt = this.lastRecvAt;
    // RFC 6691: the MSS counts data only; our timestamp option comes out of it.
    this.smss = Math.max(64, Math.min(peerMss, this.rcvMss) - (this.tsOk ? TS_OPTION_SPACE : 0));
    this.cc = new NewReno(this.smss, this.iss);
    // The window in a SYN is never scaled (RFC 7323 §2.2).
    this.sndWnd = seg.window;
    this.sndWl1 = seg.seq;
    this.sndWl2 = seg.ack;
    this.maxSndWnd = this.sndWnd;
  }

  protected sendSyn(now: number): void {
    const synAck = this.state === 'SYN-RECEIVED';
    const window = Math.min(this.rcvBufSize, 65535);
    if (synAck) this.rcvAdv = seqAdd(this.rcvNxt, window);
    const seg: SegmentOut = {
      srcPort: this.local.port, dstPort: this.remote.port, seq: this.iss,
      ack: synAck ? this.rcvNxt : 0, flags: synAck ? SYN | ACK : SYN, window, mss: this.rcvMss,
    };
    if (this.offerWscale) seg.wscale = this.rcvWscale;
    if (synAck ? this.sackOk : this.offerSack) seg.sackPermitted = true;
    if (synAck ? this.tsOk : this.offerTs) seg.ts = { val: this.tsNow(now), ecr: synAck ? this.tsRecent : 0 };
    if (synAck) this.lastAckSent = this.rcvNxt;
    this.host.emit(this, seg, 0);
  }

  protected enterTimeWait(now: number): void {
    this.state = 'TIME-WAIT';
    this.rtxAt = this.persistAt = this.keepAt = Infinity;
    this.closeAt = now + 2 * this.host.config.tcpMsl;
    this.ooo.clear();
    this.notifyClose(undefined);
  }

  protected canSendData(): boolean {
    const s = this.state;
    return s === 'ESTABLISHED' || s === 'CLOSE-WAIT' || s === 'FIN-WAIT-1' || s === 'CLOSING' || s === 'LAST-ACK';
  }

  /**
   * A pure ACK carries SND.MAX, not SND.NXT (as BSD does): after a timeout rewinds SND.NXT, the
   * peer may already hold bytes past it and would find an ACK at SND.NXT out of window. If both
   * sides rewound, each would answer the other's unacceptable ACK with another, forever.
   */
  protected sendAck(now: number): void {
    this.emitSegment(now, ACK, this.sndMax, 0, 0);
  }

  /** A probe for a zero window or keepalive: one sequence number behind, so it is always answered. */
  protected sendProbe(now: number): void {
    this.emitSegment(now, ACK, seqAdd(this.sndUna, -1), 0, 0);
  }

  protected emitSegment(now: number, flags: number, seq: number, len: number, off: number): void {
    const seg: SegmentOut = {
      srcPort: this.local.port, dstPort: this.remote.port, seq, ack: this.rcvNxt, flags, window: this.windowField(),
    };
    if (this.tsOk) seg.ts = { val: this.tsNow(now), ecr: this.tsRecent };
    // SACK blocks ride on pure ACKs only, so data segments never outgrow the MSS.
    if (this.sackOk && len === 0 && !this.ooo.isEmpty) {
      seg.sack = this.ooo.sackBlocks(this.tsOk ? MAX_SACK_BLOCKS.withTs : MAX_SACK_BLOCKS.withoutTs);
    }
    this.lastAckSent = this.rcvNxt;
    this.ackAt = Infinity;
    this.ackNow = false;
    this.unackedSegments = 0;
    this.host.emit(this, seg, len, len > 0 ? (b, at) => this.sendBuf.copyOut(off, len, b, at) : undefined);
  }

  protected sendRst(seq: number, now: number): void {
    const seg: SegmentOut = {
      srcPort: this.local.port, dstPort: this.remote.port, seq, ack: this.rcvNxt, flags: RST | ACK, window: 0,
    };
    if (this.tsOk) seg.ts = { val: this.tsNow(now), ecr: this.tsRecent };
    this.host.counters.tcpRstSent++;
    this.host.emit(this, seg, 0);
  }

  protected sendRstAt(seq: number, now: number): void {
    const seg: SegmentOut = { srcPort: this.local.port, dstPort: this.remote.port, seq, ack: 0, flags: RST, window: 0 };
    void now;
    this.host.counters.tcpRstSent++;
    this.host.emit(this, seg, 0);
  }

  /**
   * The window to announce, scaled: the buffer not held by unreleased data, grown only in steps
   * of min(buffer/2, MSS) (receiver SWS avoidance) and never moving the right edge left.
   */
  protected windowField(): number {
    const { field, rcvAdv } = announceWindow(this);
    this.rcvAdv = rcvAdv;
    return field;
  }

  protected persistInterval(): number {
    const cfg = this.host.config;
    return Math.min(cfg.tcpMaxRto, Math.max(cfg.tcpMinRto, this.rto.base) * 2 ** this.persistBackoffs);
  }

  /** A method, not a comparison, so TypeScript does not narrow `state` across calls that change it. */
  protected isClosed(): boolean {
    return this.state === 'CLOSED';
  }

  protected tsNow(now: number): number {
    return (Math.floor(now) + this.tsOffset) >>> 0;
  }

  protected sampleTs(tsEcr: number, now: number): void {
    // Karn's rule carried over to timestamps: an echo older than our last retransmission may time
    // an ACK that was lost and repeated, which would count the retransmission timeout as RTT.
    if (this.rtxTs !== undefined && seqLt(tsEcr, this.rtxTs)) return;
    const r = seqDiff(this.tsNow(now), tsEcr);
    if (r >= 0 && r < 3_600_000) this.rto.sample(r);
  }

  /** Leaves every state for CLOSED. `quiet` skips onClose (a half-open connection nobody saw). */
  protected finish(error: { code: TcpErrorCode; message: string } | undefined, quiet = false): void {
    if (this.state === 'CLOSED' && this.heapIndex < 0 && this.closeNotified) return;
    this.state = 'CLOSED';
    this.rtxAt = this.ackAt = this.persistAt = this.keepAt = this.closeAt = Infinity;
    this.deadline = Infinity;
    this.ooo.clear();
    if (this.listener) { this.listener.halfOpen.delete(this); this.listener = undefined; }
    this.host.removed(this);
    if (!quiet) this.notifyClose(error);
    else this.closeNotified = true;
  }

  protected notifyClose(error: { code: TcpErrorCode; message: string } | undefined): void {
    if (this.closeNotified) return;
    this.closeNotified = true;
    this.queue(() => this.events.onClose?.(error));
  }

  protected queue(f: () => void): void {
    this.queued.push(f);
  }

  /** Callbacks that make no sense once the application destroyed the connection. */
  protected queueApp(f: () => void): void {
    this.queued.push(() => { if (!this.destroyed) f(); });
  }

  /** Recomputes the deadline and runs queued callbacks. */
  protected after(): void {
    if (this.state !== 'CLOSED' || this.closeAt !== Infinity) {
      this.deadline = Math.min(this.rtxAt, this.ackAt, this.persistAt, this.keepAt, this.closeAt);
      this.host.reschedule(this);
    }
    this.flush();
  }

  protected flush(): void {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.queued.length > 0) {
        const f = this.queued.shift()!;
        f();
      }
    } finally {
      this.flushing = false;
    }
  }
}
