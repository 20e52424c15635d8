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
import { MEMORY_FLOOR } from './memory-budget.ts';
import type { MemoryBudget } from './memory-budget.ts';
import { desiredWindow, ReceiveSpace } from './receive-window.ts';
import { Scoreboard } from './scoreboard.ts';
import { ACK, MAX_SACK_BLOCKS, RST, SYN, TS_OPTION_SPACE } from './segment.ts';
import type { SegmentOut, TcpSegment } from './segment.ts';
import { SendBuffer } from './send-buffer.ts';
import { seqAdd, seqDiff, seqLt } from './seq.ts';

/** What a connection needs from the TCP layer. */
export interface ConnectionHost {
  readonly config: ResolvedConfig;
  readonly counters: Counters;
  /** The stack's TCP memory budget, shared by all connections. */
  readonly memory: MemoryBudget;
  /** Builds the segment (header from `seg`, `length` payload bytes written by `fill`) and sends it. */
  emit(conn: Tcb, seg: SegmentOut, length: number, fill?: (b: Uint8Array, at: number) => void): void;
  /** `conn.deadline` changed. */
  reschedule(conn: Tcb): void;
  /**
   * Within an input burst (TcpIpStackApi.beginInputBurst), takes `conn` to send its held ACK
   * at the burst's end (Tcb.sendHeldAck) and returns true; outside one, false.
   */
  holdAck(conn: Tcb): boolean;
  /**
   * Within an input burst, lends `conn` a buffer to gather the burst's in-order bytes in, to be
   * handed to the application as one chunk by Tcb.deliverStaged at the latest at the burst's
   * end; outside one, or when every buffer is lent, undefined.
   */
  stage(conn: Tcb): Uint8Array | undefined;
  /** A lent buffer comes back (`buffer`), or was handed to the application (undefined). */
  unstage(buffer: Uint8Array | undefined): void;
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
  /** What the send buffer may hold now: autotuned from the initial size up to sndBufMax. */
  sndBufSize: number;
  readonly sndBufMax: number;
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
  /** The receive buffer now: autotuned from the initial size up to rcvBufMax (receive-window.ts). */
  rcvBufSize: number;
  readonly rcvBufMax: number;
  readonly rcvSpace: ReceiveSpace;
  readonly rcvMss: number;

  // Memory reserved from the budget (memory-budget.ts), each at least its floor once admitted:
  // receive covers unreleased bytes plus the window promised (out-of-order bytes lie inside it),
  // send covers the send buffer.
  rcvReserved = 0;
  sndReserved = 0;
  readonly rcvFloor: number;
  readonly sndFloor: number;
  protected memoryHeld = false;
  /** Without timestamps, the receiver RTT is timed from a window's right edge to its arrival. */
  protected rcvRttSeq: number | undefined;
  protected rcvRttAt = 0;
  /** The window our last SYN or SYN-ACK offered. */
  protected synWnd = 0;

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
  /** RFC 8985 tail loss probe timeout. */
  tlpAt = Infinity;
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
  /** SND.MAX after the outstanding loss probe, and whether it resent data (RFC 8985 TLP.end_seq). */
  protected tlpEnd: number | undefined;
  protected tlpRetrans = false;
  /** The ACK being processed carried a D-SACK (RFC 2883). */
  protected dsack = false;
  /** End of the highest sequence ever retransmitted (Karn: ACKs beyond it end the backoff). */
  protected rtxEnd: number;
  protected rttSeq = 0;
  protected rttStart = 0;
  dupAcks = 0;
  protected unackedSegments = 0;
  protected ackNow = false;
  /** An ACK the every-second-segment rule asked for, held to the end of the input burst. */
  protected ackHeld = false;
  private readonly segOut: SegmentOut;
  private readonly tsOut = { val: 0, ecr: 0 };
  private fillOffset = 0;
  private fillLength = 0;
  private readonly fillPayload = (b: Uint8Array, at: number): void => this.sendBuf.copyOut(this.fillOffset, this.fillLength, b, at);
  /** This input burst's in-order bytes not yet delivered (Connection.deliverCopy), and how many. */
  protected staged: Uint8Array | undefined;
  protected stagedLength = 0;
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
    this.segOut = { srcPort: init.local.port, dstPort: init.remote.port, seq: 0, ack: 0, flags: 0, window: 0, ts: undefined, sack: undefined };
    this.key = init.key;
    this.iss = init.iss;
    this.sndUna = init.iss;
    this.sndNxt = init.iss;
    this.sndMax = init.iss;
    this.rtxEnd = init.iss;
    this.tsOffset = init.tsOffset;
    this.sendBuf = new SendBuffer(c.tcpSendBuffer);
    this.sndBufSize = c.tcpSendBufferInitial;
    this.sndBufMax = c.tcpSendBuffer;
    this.rcvBufSize = c.tcpReceiveBufferInitial;
    this.rcvBufMax = c.tcpReceiveBuffer;
    this.rcvFloor = Math.min(MEMORY_FLOOR, c.tcpReceiveBufferInitial);
    this.sndFloor = Math.min(MEMORY_FLOOR, c.tcpSendBufferInitial);
    this.rcvMss = c.mtu - IP_TCP_OVERHEAD[init.family];
    this.rcvSpace = new ReceiveSpace(this.rcvMss, this.rcvBufSize);
    this.smss = Math.min(DEFAULT_MSS[init.family], this.rcvMss);
    this.offerWscale = c.tcpWindowScaling;
    this.offerTs = c.tcpTimestamps;
    this.offerSack = c.tcpSack;
    this.rto = new RtoEstimator(c.tcpInitialRto, c.tcpMinRto, c.tcpMaxRto);
    this.cc = new NewReno(this.smss, init.iss);
    if (this.offerWscale) {
      // Scaled for the largest the buffer may grow to: the scale is fixed at the SYN.
      while (this.rcvWscale < MAX_WSCALE && this.rcvBufMax > 65535 * 2 ** this.rcvWscale) this.rcvWscale++;
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
    const window = this.synWindow();
    this.synWnd = window;
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
    // Nothing more to receive or send: TIME-WAIT holds no memory (as Linux's minisockets).
    this.freeMemory();
    this.rtxAt = this.tlpAt = this.persistAt = this.keepAt = Infinity;
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
    // One segment object, timestamp and payload filler serve every segment: emit() writes the
    // header and payload before it returns (or sends anything that could lead back here).
    const seg = this.segOut;
    seg.seq = seq;
    seg.ack = this.rcvNxt;
    seg.flags = flags;
    seg.window = this.windowField();
    if (this.tsOk) {
      this.tsOut.val = this.tsNow(now);
      this.tsOut.ecr = this.tsRecent;
      seg.ts = this.tsOut;
    } else {
      seg.ts = undefined;
    }
    // SACK blocks ride on pure ACKs only, so data segments never outgrow the MSS.
    seg.sack = this.sackOk && len === 0 && !this.ooo.isEmpty
      ? this.ooo.sackBlocks(this.tsOk ? MAX_SACK_BLOCKS.withTs : MAX_SACK_BLOCKS.withoutTs)
      : undefined;
    this.lastAckSent = this.rcvNxt;
    this.ackAt = Infinity;
    this.ackNow = false;
    this.ackHeld = false;
    this.unackedSegments = 0;
    this.fillOffset = off;
    this.fillLength = len;
    this.host.emit(this, seg, len, len > 0 ? this.fillPayload : undefined);
  }

  /** The end of an input burst: sends the ACK held for it, unless another segment carried it. */
  sendHeldAck(now: number): void {
    if (!this.ackHeld) return;
    this.ackHeld = false;
    if (this.state === 'CLOSED') return;
    this.sendAck(now);
    this.after();
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
   * The window to announce, scaled: what desiredWindow() asks, clamped to what the memory budget
   * grants, rounded down to the scale — but never moving the right edge left (RFC 9293 §3.8.6):
   * when the budget grants nothing, the edge stops where it is and the window closes as data
   * arrives.
   */
  protected windowField(): number {
    const cur = Math.max(0, seqDiff(this.rcvAdv, this.rcvNxt));
    this.pressureClamp();
    let wnd = desiredWindow(this);
    if (wnd > cur) {
      const granted = this.reserveReceive(this.unreleased + wnd);
      if (granted < this.unreleased + wnd) {
        this.host.counters.tcpWindowClamps++;
        wnd = Math.max(cur, granted - this.unreleased);
        // A sliver is not worth announcing (receiver SWS avoidance).
        if (wnd - cur < Math.min(Math.floor(this.rcvBufSize / 2), this.rcvMss)) wnd = cur;
      }
    }
    const scale = 2 ** this.rcvWscale;
    const field = Math.min(65535, Math.max(Math.floor(wnd / scale), Math.ceil(cur / scale)));
    const right = seqAdd(this.rcvNxt, field * scale);
    // Rounding up to keep the edge may promise a few bytes beyond the buffer: like Linux, we do
    // not hold them (receiveData drops them; the peer sends them again once there is room).
    if (seqLt(this.rcvAdv, right)) this.rcvAdv = right;
    return field;
  }

  /** The unscaled window of our SYN or SYN-ACK, within the budget (at least the floor, held since admission). */
  protected synWindow(): number {
    this.pressureClamp();
    const want = Math.min(this.rcvBufSize, 65535);
    return Math.max(0, Math.min(want, this.reserveReceive(want)));
  }

  // --- memory ---------------------------------------------------------------------------------

  /** Takes this connection's floors from the budget; false if the budget cannot spare them. */
  admitMemory(): boolean {
    if (!this.host.memory.admit(this.rcvFloor + this.sndFloor)) return false;
    this.rcvReserved = this.rcvFloor;
    this.sndReserved = this.sndFloor;
    this.memoryHeld = true;
    return true;
  }

  /** Grows the receive reservation toward `total`; returns the reservation (may be less). */
  protected reserveReceive(total: number): number {
    if (!this.memoryHeld) return total;
    if (total > this.rcvReserved) this.rcvReserved += this.host.memory.take(total - this.rcvReserved);
    return this.rcvReserved;
  }

  /** How many of `n` more bytes the send buffer takes now: its autotuned size, then the budget. */
  protected sendRoom(n: number): number {
    this.pressureClamp();
    const len = this.sendBuf.length;
    let take = Math.min(n, Math.max(0, this.sndBufSize - len));
    if (take > 0 && this.memoryHeld && len + take > this.sndReserved) {
      this.sndReserved += this.host.memory.take(len + take - this.sndReserved);
      if (len + take > this.sndReserved) {
        this.host.counters.tcpSendBufferClamps++;
        take = Math.max(0, this.sndReserved - len);
      }
    }
    return take;
  }

  /**
   * Under memory pressure buffers fall back to their floors (as Linux clamps windows under
   * tcp_mem pressure); announced windows still never shrink, they close as data arrives.
   */
  protected pressureClamp(): void {
    if (!this.host.memory.underPressure) return;
    if (this.rcvBufSize > this.rcvFloor) {
      this.rcvBufSize = this.rcvFloor;
      this.rcvSpace.space = Math.min(this.rcvSpace.space, this.rcvFloor);
      this.host.counters.tcpWindowClamps++;
    }
    if (this.sndBufSize > this.sndFloor) {
      this.sndBufSize = this.sndFloor;
      this.host.counters.tcpSendBufferClamps++;
    }
  }

  /** Gives back what the connection no longer needs, keeping the floors and what it promised. */
  protected trimMemory(): void {
    if (!this.memoryHeld) return;
    const s = this.state;
    if (s === 'CLOSED' || s === 'TIME-WAIT') { this.freeMemory(); return; }
    // In SYN-SENT the window our SYN offered is promised although RCV.NXT is not known yet.
    const promised = s === 'SYN-SENT' ? this.synWnd : Math.max(0, seqDiff(this.rcvAdv, this.rcvNxt));
    const rcv = Math.max(this.rcvFloor, this.unreleased + promised);
    if (this.rcvReserved > rcv) { this.host.memory.give(this.rcvReserved - rcv); this.rcvReserved = rcv; }
    const snd = Math.max(this.sndFloor, this.sendBuf.length);
    if (this.sndReserved > snd) { this.host.memory.give(this.sndReserved - snd); this.sndReserved = snd; }
  }

  protected freeMemory(): void {
    if (!this.memoryHeld) return;
    this.memoryHeld = false;
    this.host.memory.give(this.rcvReserved + this.sndReserved);
    this.rcvReserved = this.sndReserved = 0;
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
    this.rtxAt = this.tlpAt = this.ackAt = this.persistAt = this.keepAt = this.closeAt = Infinity;
    this.deadline = Infinity;
    this.ooo.clear();
    this.freeMemory();
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

  // Every event comes after the bytes received before it: staged bytes are handed over first.
  protected queue(f: () => void): void {
    this.deliverStaged();
    this.queued.push(f);
  }

  /** Callbacks that make no sense once the application destroyed the connection. */
  protected queueApp(f: () => void): void {
    this.deliverStaged();
    this.queued.push(() => { if (!this.destroyed) f(); });
  }

  /** Hands bytes gathered in a staging buffer (ConnectionHost.stage) to the application. */
  deliverStaged(): void {}

  /** Recomputes the deadline and runs queued callbacks. */
  protected after(): void {
    this.trimMemory();
    if (this.state !== 'CLOSED' || this.closeAt !== Infinity) {
      this.deadline = Math.min(this.rtxAt, this.tlpAt, this.ackAt, this.persistAt, this.keepAt, this.closeAt);
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
