/**
 * One TCP connection: the RFC 9293 state machine from SYN-SENT/SYN-RECEIVED to CLOSED, with
 * RFC 5961 checks on RST, SYN and ACK, RFC 7323 window scaling and timestamps, RFC 6298 RTO,
 * RFC 5681/6582 congestion control, delayed ACKs, zero-window probing and keepalive.
 *
 * Segment processing follows RFC 9293 §3.10.7.4 in its order (sequence check, RST, SYN, ACK,
 * data, FIN). Application callbacks are queued while a segment or timer is processed and run
 * after the connection's state is consistent again, so a handler may call back into it.
 */
import type { Counters } from '../counters.ts';
import type { ResolvedConfig } from '../config.ts';
import type { Timed } from '../heap.ts';
import type { Family } from '../ip.ts';
import type { Endpoint4or6, TcpConnection, TcpErrorCode, TcpEvents, TcpState } from '../types.ts';
import { NewReno } from './newreno.ts';
import { OutOfOrderQueue } from './reassembly.ts';
import { RtoEstimator } from './rto.ts';
import { announceWindow, windowUpdateDue } from './receive-window.ts';
import { Scoreboard } from './scoreboard.ts';
import { ACK, FIN, MAX_SACK_BLOCKS, PSH, RST, SYN, TS_OPTION_SPACE } from './segment.ts';
import type { SegmentOut, TcpSegment } from './segment.ts';
import { SendBuffer } from './send-buffer.ts';
import { segmentAcceptable, seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from './seq.ts';

/** What a connection needs from the TCP layer. */
export interface ConnectionHost {
  readonly config: ResolvedConfig;
  readonly counters: Counters;
  /** Builds the segment (header from `seg`, `length` payload bytes written by `fill`) and sends it. */
  emit(conn: Connection, seg: SegmentOut, length: number, fill?: (b: Uint8Array, at: number) => void): void;
  /** `conn.deadline` changed. */
  reschedule(conn: Connection): void;
  /** The connection reached CLOSED: forget it. */
  removed(conn: Connection): void;
  /** A passive open completed the handshake. */
  established(conn: Connection): void;
}

/** RFC 9293 §3.7.1: the MSS assumed when the peer sends none. */
const DEFAULT_MSS = { 4: 536, 6: 1220 } as const;
const IP_TCP_OVERHEAD = { 4: 40, 6: 60 } as const;
const MAX_WSCALE = 14;
const OOW_ACK_INTERVAL = 500;
const PAWS_IDLE = 24 * 24 * 3600 * 1000;

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

export class Connection implements TcpConnection, Timed {
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
  listener: { halfOpen: Set<Connection> } | undefined;
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
  private highRxt = 0;
  tsOk = false;
  tsRecent = 0;
  lastAckSent = 0;
  private readonly tsOffset: number;

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
  private progressAt = 0;
  private timing = false;
  /** Our timestamp clock at the last retransmission. */
  private rtxTs: number | undefined;
  private rttSeq = 0;
  private rttStart = 0;
  dupAcks = 0;
  private unackedSegments = 0;
  private ackNow = false;
  private persistBackoffs = 0;
  private keepIdle = 0;
  private lastOowAckAt = -Infinity;
  private lastChallengeAt = -Infinity;
  /** When tsRecent was last updated: PAWS trusts it for 24 days (RFC 7323 §5.5). */
  private tsRecentAt = 0;
  private keepProbes = 0;
  private lastRecvAt = 0;
  /** close() was called: received data is discarded, FIN-WAIT-2 times out. */
  private appClosed = false;
  /** abort() was called or the connection closed: no more onData/onEnd/onDrain/onConnect. */
  private destroyed = false;
  private closeNotified = false;
  private writeBlocked = false;
  private pendingError: { code: TcpErrorCode; message: string } | undefined;
  private readonly queued: (() => void)[] = [];
  private flushing = false;
  private readonly host: ConnectionHost;

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

  // --- opening --------------------------------------------------------------------------------

  /** Active open: send SYN (RFC 9293 §3.10.1). */
  openActive(now: number): void {
    this.state = 'SYN-SENT';
    this.sndNxt = this.sndMax = seqAdd(this.iss, 1);
    this.lastRecvAt = now;
    this.sendSyn(now);
    this.rtxAt = now + this.rto.rto;
    this.after();
  }

  /** Passive open from a listener's SYN: send SYN-ACK. */
  openPassive(seg: TcpSegment, now: number): void {
    this.passive = true;
    this.state = 'SYN-RECEIVED';
    this.irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.lastRecvAt = now;
    this.takeSynOptions(seg);
    this.sndNxt = this.sndMax = seqAdd(this.iss, 1);
    this.sendSyn(now);
    this.rtxAt = now + this.rto.rto;
    this.after();
  }

  /** A connection that fails before it starts (no route, no port, too many): reported at the next tick. */
  failSoon(code: TcpErrorCode, message: string, now: number): void {
    this.pendingError = { code, message };
    this.closeAt = now;
    this.after();
  }

  /** ICMP says the SYN cannot be delivered (the layer checked state and sequence). */
  unreachable(code: 'ECONNREFUSED' | 'EHOSTUNREACH'): void {
    this.finish({ code, message: code === 'ECONNREFUSED' ? 'connection refused (ICMP)' : 'host unreachable (ICMP)' });
    this.flush();
  }

  private takeSynOptions(seg: TcpSegment): void {
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

  private sendSyn(now: number): void {
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

  // --- application API ------------------------------------------------------------------------

  get bufferedAmount(): number { return this.sendBuf.length; }

  write(data: Uint8Array, now: number): number {
    if (this.finQueued || this.destroyed ||
      !(this.state === 'SYN-SENT' || this.state === 'SYN-RECEIVED' || this.state === 'ESTABLISHED' || this.state === 'CLOSE-WAIT')) {
      return 0;
    }
    const n = this.sendBuf.write(data);
    if (n < data.length) this.writeBlocked = true;
    if (n > 0 && this.canSendData()) this.output(now);
    this.after();
    return n;
  }

  release(n: number, now: number): void {
    if (!(n > 0)) return;
    this.unreleased = Math.max(0, this.unreleased - n);
    if (!(this.state === 'ESTABLISHED' || this.state === 'FIN-WAIT-1' || this.state === 'FIN-WAIT-2')) return;
    if (windowUpdateDue(this)) {
      this.sendAck(now);
      this.after();
    }
  }

  shutdown(now: number): void {
    if (this.finQueued || this.destroyed) return;
    if (this.state === 'CLOSED' || this.state === 'LISTEN') return;
    this.finQueued = true;
    if (this.state === 'ESTABLISHED') this.state = 'FIN-WAIT-1';
    else if (this.state === 'CLOSE-WAIT') this.state = 'LAST-ACK';
    if (this.canSendData()) this.output(now);
    this.after();
  }

  close(now: number): void {
    if (this.destroyed) return;
    this.appClosed = true;
    if (this.state === 'SYN-SENT' && this.sendBuf.length === 0) {
      // Nothing agreed and nothing to deliver: forget the attempt (RFC 9293 §3.10.4, CLOSE in
      // SYN-SENT). With data queued, the close waits for the handshake like socket.end() does.
      this.finish(undefined);
      this.flush();
      return;
    }
    // Bytes the application will never read no longer hold the window shut.
    this.unreleased = 0;
    this.shutdown(now);
    if (this.state === 'FIN-WAIT-2' && this.closeAt === Infinity) this.closeAt = now + this.host.config.tcpFinWait2Timeout;
    this.after();
  }

  abort(now: number): void {
    if (this.state === 'CLOSED') { this.destroyed = true; return; }
    if (this.state !== 'SYN-SENT' && this.state !== 'TIME-WAIT') this.sendRst(this.sndNxt, now);
    this.finish(undefined);
    this.destroyed = true;
    this.flush();
  }

  /** Forgets a half-open connection without a word (listener backlog eviction). */
  drop(): void {
    this.finish(undefined, true);
    this.destroyed = true;
    this.flush();
  }

  setKeepAlive(idleMs: number, now: number): void {
    this.keepIdle = Math.max(0, idleMs);
    this.keepProbes = 0;
    this.keepAt = this.keepIdle > 0 && this.state !== 'CLOSED' && this.state !== 'TIME-WAIT'
      ? Math.max(now, this.lastRecvAt) + this.keepIdle : Infinity;
    this.after();
  }

  // --- segment arrival ------------------------------------------------------------------------

  input(seg: TcpSegment, now: number): void {
    this.lastRecvAt = now;
    this.keepProbes = 0;
    if (this.state === 'SYN-SENT') this.inputSynSent(seg, now);
    else if (this.state !== 'CLOSED') this.inputSynchronized(seg, now);
    if (this.state !== 'CLOSED') {
      if (this.canSendData()) this.output(now);
      if (this.ackNow) this.sendAck(now);
    }
    this.after();
  }

  private inputSynSent(seg: TcpSegment, now: number): void {
    const c = this.host.counters;
    const hasAck = (seg.flags & ACK) !== 0;
    if (hasAck && (seqLe(seg.ack, this.iss) || seqGt(seg.ack, this.sndMax))) {
      c.tcpBadAck++;
      if (!(seg.flags & RST)) this.sendRstAt(seg.ack, now);
      return;
    }
    if (seg.flags & RST) {
      if (hasAck) { c.tcpRstReceived++; this.finish({ code: 'ECONNREFUSED', message: 'connection refused' }); }
      else c.tcpRstIgnored++;
      return;
    }
    if (!(seg.flags & SYN)) { c.tcpBadFlags++; return; }
    this.irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    // Our SYN offered an unscaled window; that is the right edge the peer knows.
    this.rcvAdv = seqAdd(this.rcvNxt, Math.min(this.rcvBufSize, 65535));
    this.takeSynOptions(seg);
    if (this.synRetries > 0) this.rto.resetAfterSynLoss();
    if (hasAck) {
      this.sndUna = seg.ack;
      if (this.tsOk && seg.options.tsEcr) this.sampleTs(seg.options.tsEcr, now);
      this.established(now);
      this.ackNow = true;
    } else {
      // Simultaneous open (RFC 9293 §3.5, figure 8): answer with SYN-ACK on the same ISS.
      this.state = 'SYN-RECEIVED';
      this.sendSyn(now);
      this.rtxAt = now + this.rto.rto;
    }
  }

  private established(now: number): void {
    this.state = this.finQueued ? 'FIN-WAIT-1' : 'ESTABLISHED';
    this.synRetries = 0;
    this.rtxAt = Infinity;
    this.progressAt = now;
    if (this.keepIdle > 0) this.keepAt = now + this.keepIdle;
    if (this.listener) { this.listener.halfOpen.delete(this); this.listener = undefined; }
    // Queued like every callback: the listener's onConnection runs after this segment is done,
    // and before the onData of any bytes the segment carried.
    if (this.passive) this.queueApp(() => this.host.established(this));
    else this.queueApp(() => this.events.onConnect?.());
  }

  private inputSynchronized(seg: TcpSegment, now: number): void {
    const c = this.host.counters;
    let payload = seg.payload;
    let seq = seg.seq;
    let fin = (seg.flags & FIN) !== 0;
    const segLen = payload.length + (seg.flags & SYN ? 1 : 0) + (fin ? 1 : 0);

    // First: is the segment in the window (RFC 9293 §3.10.7.4 table)?
    const acceptable = segmentAcceptable(seq, segLen, this.rcvNxt, Math.max(0, seqDiff(this.rcvAdv, this.rcvNxt)));
    if (this.state === 'SYN-RECEIVED' && (seg.flags & (SYN | ACK)) === SYN && seq === this.irs) {
      // The peer retransmitted its SYN: our SYN-ACK was lost. Answer again.
      this.sendSyn(now);
      return;
    }
    // PAWS (RFC 7323 §5.3 R1): a timestamp older than the last in-sequence one is an old duplicate.
    const o = seg.options;
    if (this.tsOk && o.tsVal !== undefined && !(seg.flags & RST) && seqLt(o.tsVal, this.tsRecent) &&
      now - this.tsRecentAt < PAWS_IDLE) {
      c.tcpPawsRejected++;
      if (segLen > 0 || now - this.lastOowAckAt >= OOW_ACK_INTERVAL) {
        this.ackNow = true;
        if (segLen === 0) this.lastOowAckAt = now;
      }
      return;
    }
    if (!acceptable) {
      c.tcpOutOfWindow++;
      // Answer with an ACK (RFC 9293), but answer bare out-of-window ACKs at most twice a second
      // so that two confused ends cannot ping-pong ACKs (as Linux's tcp_invalid_ratelimit).
      if (!(seg.flags & RST) && (segLen > 0 || now - this.lastOowAckAt >= OOW_ACK_INTERVAL)) {
        this.ackNow = true;
        if (segLen === 0) this.lastOowAckAt = now;
      }
      if (this.state === 'TIME-WAIT' && fin) this.closeAt = now + 2 * this.host.config.tcpMsl;
      return;
    }

    // Second: RST (RFC 5961 §3.2: only an exact match resets; in-window gets a challenge ACK).
    if (seg.flags & RST) {
      c.tcpRstReceived++;
      if (seq !== this.rcvNxt) { this.challengeAck(now); return; }
      this.onReset();
      return;
    }

    // Timestamps: remember the peer's clock for echoing (RFC 7323 §4.3).
    if (this.tsOk && o.tsVal !== undefined && seqLe(seq, this.lastAckSent) && seqGe(o.tsVal, this.tsRecent)) {
      this.tsRecent = o.tsVal;
      this.tsRecentAt = now;
    }

    // Fourth: a SYN in a synchronized state (RFC 5961 §4): challenge ACK, drop.
    if (seg.flags & SYN) {
      c.tcpSynInWindow++;
      this.challengeAck(now);
      return;
    }

    // Fifth: ACK.
    if (!(seg.flags & ACK)) { c.tcpNoAck++; return; }
    if (this.state === 'SYN-RECEIVED') {
      if (seqLe(seg.ack, this.sndUna) || seqGt(seg.ack, this.sndMax)) {
        c.tcpBadAck++;
        this.sendRstAt(seg.ack, now);
        return;
      }
      this.sndUna = seqAdd(this.sndUna, 1);
      this.sndWnd = seg.window << this.sndWscale;
      this.sndWl1 = seq;
      this.sndWl2 = seg.ack;
      this.maxSndWnd = this.sndWnd;
      if (this.synRetries > 0) this.rto.resetAfterSynLoss();
      if (this.tsOk && o.tsEcr) this.sampleTs(o.tsEcr, now);
      this.established(now);
    }
    if (!this.processAck(seg, now)) return;
    if (this.isClosed()) return;

    // Trim to the window: what precedes RCV.NXT was received already, what exceeds it we cannot hold.
    if (seqLt(seq, this.rcvNxt)) {
      const skip = seqDiff(this.rcvNxt, seq);
      if (skip >= payload.length) {
        if (payload.length > 0) c.tcpDuplicate++;
        payload = payload.subarray(payload.length);
        if (fin && skip > seg.payload.length) fin = false;
      } else {
        payload = payload.subarray(skip);
      }
      seq = this.rcvNxt;
    }
    const room = Math.max(0, seqDiff(this.rcvAdv, seq));
    if (payload.length > room) {
      payload = payload.subarray(0, room);
      fin = false;
    }

    // Seventh: data.
    if (payload.length > 0) {
      if (this.state === 'ESTABLISHED' || this.state === 'FIN-WAIT-1' || this.state === 'FIN-WAIT-2') {
        this.receiveData(seq, payload, fin, now);
      } else {
        // The peer already sent FIN: data after it is a protocol error we ignore.
        c.tcpDataAfterFin++;
        return;
      }
    } else if (seg.payload.length > 0) {
      this.ackNow = true;
    }

    // Eighth: FIN (possibly one that was waiting behind missing data).
    if (fin) {
      const finSeq = seqAdd(seq, payload.length);
      if (finSeq === this.rcvNxt) this.onFin(now);
      else if (seqGt(finSeq, this.rcvNxt)) { this.peerFinSeq = finSeq; this.ackNow = true; }
    } else if (this.peerFinSeq >= 0 && this.peerFinSeq === this.rcvNxt) {
      this.onFin(now);
    } else if (this.state === 'TIME-WAIT' && seg.payload.length === 0) {
      // Nothing to do: a stray ACK in TIME-WAIT.
    }
  }

  /** RFC 5961 §7: challenge ACKs are rate-limited, here to one per 500 ms per connection. */
  private challengeAck(now: number): void {
    const c = this.host.counters;
    if (now - this.lastChallengeAt < OOW_ACK_INTERVAL) { c.tcpChallengeAckLimited++; return; }
    this.lastChallengeAt = now;
    c.tcpChallengeAck++;
    this.ackNow = true;
  }

  private onReset(): void {
    const s = this.state;
    if (s === 'SYN-RECEIVED' && this.passive) {
      // Back to LISTEN (RFC 9293): the half-open connection just goes away.
      this.finish(undefined, true);
    } else if (s === 'SYN-RECEIVED') {
      this.finish({ code: 'ECONNREFUSED', message: 'connection refused' });
    } else if (s === 'CLOSING' || s === 'LAST-ACK' || s === 'TIME-WAIT') {
      this.finish(undefined);
    } else {
      this.finish({ code: 'ECONNRESET', message: 'connection reset by peer' });
    }
  }

  /** Returns false if the segment is to be dropped after the ACK field. */
  private processAck(seg: TcpSegment, now: number): boolean {
    const c = this.host.counters;
    const ack = seg.ack;
    if (seqGt(ack, this.sndMax)) {
      c.tcpAckTooNew++;
      this.ackNow = true;
      return false;
    }
    if (seqLt(ack, seqAdd(this.sndUna, -Math.max(this.maxSndWnd, 1)))) {
      // RFC 5961 §5.2: too old to be from this connection's recent past.
      c.tcpBadAck++;
      this.ackNow = true;
      return false;
    }
    const wnd = seg.window << this.sndWscale;
    const acked = seqDiff(ack, this.sndUna);
    const sackedBefore = this.scoreboard.sackedBytes;
    if (this.sackOk && seg.options.sack) this.takeSack(seg.options.sack, ack);
    const sackGrew = this.scoreboard.sackedBytes > sackedBefore;
    if (acked > 0) {
      this.onNewAck(ack, acked, seg, now);
      if (this.state === 'CLOSED' || this.state === 'TIME-WAIT') return this.state === 'TIME-WAIT';
    } else if (acked === 0 && seg.payload.length === 0 && !(seg.flags & (SYN | FIN)) &&
      this.sndMax !== this.sndUna && (wnd === this.sndWnd || sackGrew)) {
      this.onDupAck(now);
    }
    // Window update (RFC 9293 §3.10.7.4, SND.WL1/SND.WL2 rule).
    if (seqLt(this.sndWl1, seg.seq) || (this.sndWl1 === seg.seq && seqLe(this.sndWl2, ack))) {
      this.sndWnd = wnd;
      this.sndWl1 = seg.seq;
      this.sndWl2 = ack;
      if (wnd > this.maxSndWnd) this.maxSndWnd = wnd;
      if (wnd > 0) {
        this.persistAt = Infinity;
        this.persistBackoffs = 0;
      } else if (this.sndMax !== this.sndUna) {
        // The peer is alive but full: stop retransmitting into a closed window and probe instead.
        this.sndNxt = this.sndUna;
        this.rtxAt = Infinity;
        this.progressAt = now;
        this.timing = false;
      }
    }
    return true;
  }

  /** Records SACK blocks (RFC 2018) that lie inside what is outstanding; D-SACKs are ignored. */
  private takeSack(blocks: number[], ack: number): void {
    const una = seqGt(ack, this.sndUna) ? ack : this.sndUna;
    this.host.counters.tcpSackBlocksReceived += blocks.length / 2;
    for (let i = 0; i + 1 < blocks.length; i += 2) {
      let left = blocks[i]!;
      const right = blocks[i + 1]!;
      if (!seqLt(left, right) || seqGt(right, this.sndMax) || seqLe(right, una)) continue;
      if (seqLt(left, una)) left = una;
      this.scoreboard.add(left, right);
    }
  }

  private onNewAck(ack: number, acked: number, seg: TcpSegment, now: number): void {
    let dataAcked = acked;
    let finAckedNow = false;
    if (this.finQueued && !this.finAcked && acked > this.sendBuf.length) {
      dataAcked = this.sendBuf.length;
      finAckedNow = true;
    }
    this.sendBuf.consume(dataAcked);
    this.sndUna = ack;
    if (seqLt(this.sndNxt, this.sndUna)) this.sndNxt = this.sndUna;
    this.scoreboard.trim(ack);
    if (seqLt(this.highRxt, ack)) this.highRxt = ack;
    this.progressAt = now;
    // RTT: from the echoed timestamp when we have one, else from the one timed segment (Karn).
    if (this.tsOk && seg.options.tsEcr) this.sampleTs(seg.options.tsEcr, now);
    else if (this.timing && seqGe(ack, this.rttSeq)) { this.rto.sample(now - this.rttStart); this.timing = false; }
    const flight = seqDiff(this.sndMax, this.sndUna);
    if (this.cc.inRecovery && this.sackOk) {
      // RFC 6675: a full ACK ends recovery; a partial one lets the pipe send more (in output).
      if (seqGe(ack, this.cc.recover)) { this.cc.exitSackRecovery(); this.dupAcks = 0; }
    } else if (this.cc.inRecovery) {
      if (seqGe(ack, this.cc.recover)) {
        this.cc.exitRecovery(flight);
        this.dupAcks = 0;
      } else {
        // Partial ACK: the next hole is lost too; retransmit it now (RFC 6582 §3.2 step 5).
        this.cc.onPartialAck(dataAcked);
        this.retransmitFirst(now);
      }
    } else {
      this.cc.onAck(dataAcked);
      this.dupAcks = 0;
    }
    this.rtxAt = this.sndMax === this.sndUna ? Infinity : now + this.rto.rto;
    if (this.writeBlocked && dataAcked > 0) {
      this.writeBlocked = false;
      this.queueApp(() => this.events.onDrain?.());
    }
    if (finAckedNow) {
      this.finAcked = true;
      if (this.state === 'FIN-WAIT-1') {
        this.state = 'FIN-WAIT-2';
        if (this.appClosed) this.closeAt = now + this.host.config.tcpFinWait2Timeout;
      } else if (this.state === 'CLOSING') {
        this.enterTimeWait(now);
      } else if (this.state === 'LAST-ACK') {
        this.finish(undefined);
      }
    }
  }

  private onDupAck(now: number): void {
    this.dupAcks++;
    if (this.sackOk) {
      // RFC 6675 §5: three duplicates, or more than two segments' worth SACKed above the hole.
      if (!this.cc.inRecovery && (this.dupAcks >= 3 || this.scoreboard.sackedBytes > 2 * this.smss) &&
        seqGt(this.sndUna, this.cc.recover)) {
        this.host.counters.tcpFastRetransmits++;
        this.cc.enterSackRecovery(seqDiff(this.sndMax, this.sndUna), this.sndMax);
        this.highRxt = this.sndUna;
        this.sackRecoveryOutput(now);
        this.rtxAt = now + this.rto.rto;
      }
      return;
    }
    if (this.cc.inRecovery) {
      this.cc.onDupAckInRecovery();
    } else if (this.dupAcks === 3 && seqGt(this.sndUna, this.cc.recover)) {
      // Fast retransmit (RFC 5681 §3.2), guarded by RFC 6582 §4.1 against old-window duplicates.
      this.host.counters.tcpFastRetransmits++;
      this.cc.enterRecovery(seqDiff(this.sndMax, this.sndUna), this.sndMax);
      this.retransmitFirst(now);
      this.rtxAt = now + this.rto.rto;
    }
  }

  private receiveData(seq: number, payload: Uint8Array, fin: boolean, now: number): void {
    const c = this.host.counters;
    if (seq !== this.rcvNxt) {
      // Out of order: keep it and say at once what we miss (RFC 5681 §4.2).
      c.tcpOutOfOrder++;
      if (this.ooo.insert(seq, payload) === 0) c.tcpDuplicate++;
      if (fin) this.peerFinSeq = seqAdd(seq, payload.length);
      // A pure ACK at once, not one riding on data: only a pure ACK counts as a duplicate ACK,
      // and only pure ACKs carry our SACK blocks.
      this.sendAck(now);
      return;
    }
    const fillsHole = !this.ooo.isEmpty;
    this.deliver(payload.slice());
    this.rcvNxt = seqAdd(this.rcvNxt, payload.length);
    if (fillsHole) {
      for (const chunk of this.ooo.takeFrom(this.rcvNxt)) {
        this.deliver(chunk);
        this.rcvNxt = seqAdd(this.rcvNxt, chunk.length);
      }
      this.ackNow = true;
    }
    // Delayed ACK: at least every second segment, else within the delay (RFC 9293 §3.8.6.3).
    if (++this.unackedSegments >= 2 || fin) this.ackNow = true;
    else if (this.ackAt === Infinity) this.ackAt = now + this.host.config.tcpDelayedAck;
  }

  private deliver(chunk: Uint8Array): void {
    if (this.appClosed || this.destroyed) {
      // Nobody will read it: acknowledge and forget, keeping the window open.
      this.host.counters.tcpDataAfterClose++;
      return;
    }
    this.unreleased += chunk.length;
    this.queueApp(() => this.events.onData?.(chunk));
  }

  private onFin(now: number): void {
    if (this.peerFinReceived) { this.ackNow = true; return; }
    this.peerFinReceived = true;
    this.peerFinSeq = -1;
    this.rcvNxt = seqAdd(this.rcvNxt, 1);
    this.ackNow = true;
    this.queueApp(() => this.events.onEnd?.());
    switch (this.state) {
      case 'SYN-RECEIVED':
      case 'ESTABLISHED': this.state = 'CLOSE-WAIT'; break;
      case 'FIN-WAIT-1':
        if (this.finAcked) this.enterTimeWait(now);
        else this.state = 'CLOSING';
        break;
      case 'FIN-WAIT-2': this.enterTimeWait(now); break;
      default: break;
    }
  }

  private enterTimeWait(now: number): void {
    this.state = 'TIME-WAIT';
    this.rtxAt = this.persistAt = this.keepAt = Infinity;
    this.closeAt = now + 2 * this.host.config.tcpMsl;
    this.ooo.clear();
    this.notifyClose(undefined);
  }

  // --- sending --------------------------------------------------------------------------------

  private canSendData(): boolean {
    const s = this.state;
    return s === 'ESTABLISHED' || s === 'CLOSE-WAIT' || s === 'FIN-WAIT-1' || s === 'CLOSING' || s === 'LAST-ACK';
  }

  /** Sends what the windows allow (RFC 9293 §3.8.6.2.1 sender SWS avoidance), then any owed ACK. */
  private output(now: number): void {
    if (this.cc.inRecovery && this.sackOk) this.sackRecoveryOutput(now);
    else this.windowOutput(now);
    if (this.sndWnd === 0 && this.rtxAt === Infinity && this.persistAt === Infinity &&
      (this.sendBuf.length > seqDiff(this.sndNxt, this.sndUna) || (this.finQueued && !this.finAcked && this.sndMax === this.sndUna))) {
      this.persistAt = now + this.persistInterval();
    }
  }

  private windowOutput(now: number): void {
    for (;;) {
      // After a timeout rewound SND.NXT, skip what the receiver has SACKed.
      let limit = this.smss;
      if (this.sackOk && seqLt(this.sndNxt, this.sndMax)) {
        const end = this.scoreboard.sackedEnd(this.sndNxt);
        if (end !== undefined) { this.sndNxt = end; continue; }
        const next = this.scoreboard.nextStart(this.sndNxt);
        if (next !== undefined) limit = Math.min(limit, seqDiff(next, this.sndNxt));
      }
      const off = seqDiff(this.sndNxt, this.sndUna);
      const dataLeft = this.sendBuf.length - off;
      if (dataLeft < 0) break; // FIN already sent
      const usable = Math.min(this.cc.cwnd, this.sndWnd) - off;
      const len = Math.max(0, Math.min(dataLeft, limit, usable));
      const fin = this.finQueued && len === dataLeft;
      if (len === 0 && !fin) break;
      // A small segment only when it is all we have or nothing is in flight.
      if (len < this.smss && len < dataLeft && off > 0) break;
      if (len === 0 && fin && this.sndWnd === 0 && off > 0) break;
      this.sendData(now, off, len, fin);
      if (fin) break;
    }
  }

  /**
   * RFC 6675 §5 (C): while cwnd − pipe ≥ 1 SMSS, retransmit the next hole below the highest
   * SACKed byte (each once per recovery), else send new data. Holes above HighRxt and below the
   * highest SACK are taken as lost; everything else not SACKed is in the pipe.
   */
  private sackRecoveryOutput(now: number): void {
    for (let guard = 0; guard < 10_000; guard++) {
      if (this.cc.cwnd - this.scoreboard.pipe(this.sndUna, this.sndMax, this.highRxt) < this.smss) return;
      const from = seqLt(this.highRxt, this.sndUna) ? this.sndUna : this.highRxt;
      const hole = this.scoreboard.nextHole(from, seqAdd(this.sndUna, this.sendBuf.length), this.smss);
      if (hole) {
        this.resend(now, hole.seq, hole.len);
        this.highRxt = seqAdd(hole.seq, hole.len);
        continue;
      }
      const seq = from;
      if (this.scoreboard.isEmpty && seq === this.sndUna && seqLt(this.sndUna, this.sndMax)) {
        // Entered on three duplicate ACKs without SACK blocks: the first segment is the hole.
        const len = Math.min(this.smss, this.sendBuf.length);
        if (len > 0) { this.resend(now, seq, len); this.highRxt = seqAdd(seq, len); continue; }
      }
      // New data, within the peer's window.
      const off = seqDiff(this.sndNxt, this.sndUna);
      const dataLeft = this.sendBuf.length - off;
      if (dataLeft < 0 || seqLt(this.sndNxt, this.sndMax)) return;
      const len = Math.max(0, Math.min(dataLeft, this.smss, this.sndWnd - off));
      const fin = this.finQueued && len === dataLeft;
      if (len === 0 && !fin) return;
      this.sendData(now, off, len, fin);
      if (fin) return;
    }
  }

  /** Retransmits `len` bytes at `seq` (inside the send buffer), with FIN if they end the stream. */
  private resend(now: number, seq: number, len: number): void {
    const off = seqDiff(seq, this.sndUna);
    const fin = this.finQueued && !this.finAcked && off + len === this.sendBuf.length;
    let flags = ACK | (fin ? FIN : 0);
    if (len > 0 && off + len === this.sendBuf.length) flags |= PSH;
    this.host.counters.tcpRetransmits++;
    this.emitSegment(now, flags, seq, len, off);
    this.timing = false;
    this.rtxTs = this.tsNow(now);
    const end = seqAdd(seq, len + (fin ? 1 : 0));
    if (seqLt(this.sndNxt, end)) this.sndNxt = end;
    if (seqGt(end, this.sndMax)) this.sndMax = end;
  }

  private sendData(now: number, off: number, len: number, fin: boolean): void {
    const seq = this.sndNxt;
    const retransmit = seqLt(seq, this.sndMax);
    if (retransmit) { this.host.counters.tcpRetransmits++; this.rtxTs = this.tsNow(now); }
    let flags = ACK | (fin ? FIN : 0);
    if (len > 0 && len === this.sendBuf.length - off) flags |= PSH;
    this.emitSegment(now, flags, seq, len, off);
    if (!retransmit && !this.timing && !this.tsOk && len > 0) {
      this.timing = true;
      this.rttSeq = seqAdd(seq, len);
      this.rttStart = now;
    }
    if (this.sndMax === this.sndUna) this.progressAt = now;
    this.sndNxt = seqAdd(seq, len + (fin ? 1 : 0));
    if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
    if (this.rtxAt === Infinity) this.rtxAt = now + this.rto.rto;
  }

  /** Resends the first unacknowledged segment whatever the windows say (timeouts, fast retransmit). */
  private retransmitFirst(now: number): void {
    const len = Math.min(this.smss, this.sendBuf.length);
    const fin = this.finQueued && !this.finAcked && len === this.sendBuf.length;
    if (len === 0 && !fin) return;
    this.host.counters.tcpRetransmits++;
    let flags = ACK | (fin ? FIN : 0);
    if (len > 0 && len === this.sendBuf.length) flags |= PSH;
    this.emitSegment(now, flags, this.sndUna, len, 0);
    this.timing = false;
    this.rtxTs = this.tsNow(now);
    const end = seqAdd(this.sndUna, len + (fin ? 1 : 0));
    if (seqLt(this.sndNxt, end)) this.sndNxt = end;
    if (seqGt(end, this.sndMax)) this.sndMax = end;
  }

  /**
   * A pure ACK carries SND.MAX, not SND.NXT (as BSD does): after a timeout rewinds SND.NXT, the
   * peer may already hold bytes past it and would find an ACK at SND.NXT out of window. If both
   * sides rewound, each would answer the other's unacceptable ACK with another, forever.
   */
  private sendAck(now: number): void {
    this.emitSegment(now, ACK, this.sndMax, 0, 0);
  }

  /** A probe for a zero window or keepalive: one sequence number behind, so it is always answered. */
  private sendProbe(now: number): void {
    this.emitSegment(now, ACK, seqAdd(this.sndUna, -1), 0, 0);
  }

  private emitSegment(now: number, flags: number, seq: number, len: number, off: number): void {
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

  private sendRst(seq: number, now: number): void {
    const seg: SegmentOut = {
      srcPort: this.local.port, dstPort: this.remote.port, seq, ack: this.rcvNxt, flags: RST | ACK, window: 0,
    };
    if (this.tsOk) seg.ts = { val: this.tsNow(now), ecr: this.tsRecent };
    this.host.counters.tcpRstSent++;
    this.host.emit(this, seg, 0);
  }

  private sendRstAt(seq: number, now: number): void {
    const seg: SegmentOut = { srcPort: this.local.port, dstPort: this.remote.port, seq, ack: 0, flags: RST, window: 0 };
    void now;
    this.host.counters.tcpRstSent++;
    this.host.emit(this, seg, 0);
  }

  /**
   * The window to announce, scaled: the buffer not held by unreleased data, grown only in steps
   * of min(buffer/2, MSS) (receiver SWS avoidance) and never moving the right edge left.
   */
  private windowField(): number {
    const { field, rcvAdv } = announceWindow(this);
    this.rcvAdv = rcvAdv;
    return field;
  }

  // --- timers ---------------------------------------------------------------------------------

  onTimer(now: number): void {
    if (this.closeAt <= now) {
      this.closeAt = Infinity;
      if (this.pendingError) { this.finish(this.pendingError); this.flush(); return; }
      // TIME-WAIT over, or FIN-WAIT-2 after close() waited long enough.
      this.finish(undefined);
      this.flush();
      return;
    }
    if (this.rtxAt <= now) this.onRetransmitTimeout(now);
    if (this.isClosed()) { this.flush(); return; }
    if (this.persistAt <= now) this.onPersist(now);
    if (this.isClosed()) { this.flush(); return; }
    if (this.keepAt <= now) this.onKeepalive(now);
    if (this.isClosed()) { this.flush(); return; }
    if (this.ackAt <= now) {
      this.host.counters.tcpDelayedAcks++;
      this.sendAck(now);
    }
    this.after();
  }

  private onRetransmitTimeout(now: number): void {
    const c = this.host.counters;
    const cfg = this.host.config;
    c.tcpRtoExpired++;
    if (this.state === 'SYN-SENT' || this.state === 'SYN-RECEIVED') {
      const limit = this.passive ? cfg.tcpSynAckRetries : cfg.tcpSynRetries;
      if (this.synRetries >= limit) {
        if (this.passive) { c.tcpSynAckGiveUp++; this.finish(undefined, true); return; }
        c.tcpTimeouts++;
        this.finish({ code: 'ETIMEDOUT', message: 'connection timed out' });
        return;
      }
      this.synRetries++;
      this.rto.backoff();
      c.tcpRetransmits++;
      this.sendSyn(now);
      this.rtxAt = now + this.rto.rto;
      return;
    }
    if (this.sndMax === this.sndUna) { this.rtxAt = Infinity; return; }
    if (now - this.progressAt >= cfg.tcpUserTimeout) {
      c.tcpTimeouts++;
      this.sendRst(this.sndNxt, now);
      this.finish({ code: 'ETIMEDOUT', message: 'connection timed out' });
      return;
    }
    this.cc.onTimeout(seqDiff(this.sndMax, this.sndUna), this.sndMax);
    this.rto.backoff();
    this.dupAcks = 0;
    this.sndNxt = this.sndUna;
    this.highRxt = this.sndUna;
    this.retransmitFirst(now);
    this.rtxAt = now + this.rto.rto;
  }

  private persistInterval(): number {
    const cfg = this.host.config;
    return Math.min(cfg.tcpMaxRto, Math.max(cfg.tcpMinRto, this.rto.base) * 2 ** this.persistBackoffs);
  }

  private onPersist(now: number): void {
    this.persistAt = Infinity;
    if (this.sndWnd > 0 || !this.canSendData()) return;
    if (now - this.lastRecvAt >= this.host.config.tcpUserTimeout) {
      this.host.counters.tcpTimeouts++;
      this.finish({ code: 'ETIMEDOUT', message: 'connection timed out (zero window)' });
      return;
    }
    this.host.counters.tcpZeroWindowProbes++;
    this.sendProbe(now);
    if (this.persistBackoffs < 16) this.persistBackoffs++;
    this.persistAt = now + this.persistInterval();
  }

  private onKeepalive(now: number): void {
    const cfg = this.host.config;
    this.keepAt = Infinity;
    if (this.keepIdle <= 0 || !(this.state === 'ESTABLISHED' || this.state === 'CLOSE-WAIT' ||
      this.state === 'FIN-WAIT-1' || this.state === 'FIN-WAIT-2')) return;
    const idleUntil = this.lastRecvAt + this.keepIdle;
    if (this.keepProbes === 0 && now < idleUntil) { this.keepAt = idleUntil; return; }
    if (this.keepProbes >= cfg.tcpKeepaliveProbes) {
      this.host.counters.tcpTimeouts++;
      this.sendRst(this.sndNxt, now);
      this.finish({ code: 'ETIMEDOUT', message: 'keepalive timed out' });
      return;
    }
    this.keepProbes++;
    this.host.counters.tcpKeepaliveProbes++;
    this.sendProbe(now);
    this.keepAt = now + cfg.tcpKeepaliveInterval;
  }

  // --- bookkeeping ----------------------------------------------------------------------------

  /** A method, not a comparison, so TypeScript does not narrow `state` across calls that change it. */
  private isClosed(): boolean {
    return this.state === 'CLOSED';
  }

  private tsNow(now: number): number {
    return (Math.floor(now) + this.tsOffset) >>> 0;
  }

  private sampleTs(tsEcr: number, now: number): void {
    // Karn's rule carried over to timestamps: an echo older than our last retransmission may time
    // an ACK that was lost and repeated, which would count the retransmission timeout as RTT.
    if (this.rtxTs !== undefined && seqLt(tsEcr, this.rtxTs)) return;
    const r = seqDiff(this.tsNow(now), tsEcr);
    if (r >= 0 && r < 3_600_000) this.rto.sample(r);
  }

  /** Leaves every state for CLOSED. `quiet` skips onClose (a half-open connection nobody saw). */
  private finish(error: { code: TcpErrorCode; message: string } | undefined, quiet = false): void {
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

  private notifyClose(error: { code: TcpErrorCode; message: string } | undefined): void {
    if (this.closeNotified) return;
    this.closeNotified = true;
    this.queue(() => this.events.onClose?.(error));
  }

  private queue(f: () => void): void {
    this.queued.push(f);
  }

  /** Callbacks that make no sense once the application destroyed the connection. */
  private queueApp(f: () => void): void {
    this.queued.push(() => { if (!this.destroyed) f(); });
  }

  /** Recomputes the deadline and runs queued callbacks. */
  private after(): void {
    if (this.state !== 'CLOSED' || this.closeAt !== Infinity) {
      this.deadline = Math.min(this.rtxAt, this.ackAt, this.persistAt, this.keepAt, this.closeAt);
      this.host.reschedule(this);
    }
    this.flush();
  }

  private flush(): void {
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
