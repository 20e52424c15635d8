/**
 * One TCP connection as the application and the TCP layer see it: the RFC 9293 state machine
 * from SYN-SENT/SYN-RECEIVED to CLOSED with RFC 5961 checks on RST and SYN, PAWS (RFC 7323), the
 * receiving side (in-order delivery, out-of-order queue, delayed ACKs, FIN), keepalive, and the
 * application API. The sending side is sender.ts; the shared control block is tcb.ts.
 *
 * Segment processing follows RFC 9293 §3.10.7.4 in its order (sequence check, RST, SYN, ACK,
 * data, FIN). Application callbacks are queued while a segment or timer is processed and run
 * after the connection's state is consistent again, so a handler may call back into it.
 */
import type { TcpConnection, TcpErrorCode } from '../types.ts';
import { windowUpdateDue } from './receive-window.ts';
import { ACK, FIN, RST, SYN } from './segment.ts';
import type { TcpSegment } from './segment.ts';
import { segmentAcceptable, seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from './seq.ts';
import { Sender } from './sender.ts';
import { OOW_ACK_INTERVAL, PAWS_IDLE } from './tcb.ts';

/** The most in-order data one held ACK may cover (a GRO batch's limit). */
const STRETCH_ACK_BYTES = 65536;

export type { ConnectionHost, ConnectionInit } from './tcb.ts';

export class Connection extends Sender implements TcpConnection {
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

  get bufferedAmount(): number { return this.sendBuf.length; }

  write(data: Uint8Array, now: number): number {
    if (this.finQueued || this.destroyed ||
      !(this.state === 'SYN-SENT' || this.state === 'SYN-RECEIVED' || this.state === 'ESTABLISHED' || this.state === 'CLOSE-WAIT')) {
      return 0;
    }
    const room = this.sendRoom(data.length);
    const n = room > 0 ? this.sendBuf.write(room < data.length ? data.subarray(0, room) : data) : 0;
    if (n < data.length) this.writeBlocked = true;
    if (n > 0 && this.canSendData()) this.output(now);
    this.after();
    return n;
  }

  release(n: number, now: number): void {
    if (!(n > 0)) return;
    this.unreleased = Math.max(0, this.unreleased - n);
    if (!(this.state === 'ESTABLISHED' || this.state === 'FIN-WAIT-1' || this.state === 'FIN-WAIT-2')) { this.trimMemory(); return; }
    const want = this.rcvSpace.consumed(n, now, this.rcvBufSize, this.rcvBufMax, this.rcvMss);
    if (want > 0 && !this.host.memory.underPressure) {
      this.rcvBufSize = want;
      this.host.counters.tcpReceiveBufferGrown++;
    }
    if (windowUpdateDue(this)) {
      this.sendAck(now);
      this.after();
    } else {
      this.trimMemory();
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
    this.rcvAdv = seqAdd(this.rcvNxt, this.synWnd);
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
      // Bytes beyond the window we announced: the sender overran it; drop them (counted).
      this.host.counters.tcpBeyondWindow++;
      payload = payload.subarray(0, room);
      fin = false;
    }

    // Seventh: data.
    if (payload.length > 0 && this.tsOk && o.tsEcr) {
      // Receiver RTT for autotuning: the peer echoes our latest ACK's clock (RFC 7323 §4.3).
      this.rcvSpace.sampleRtt(seqDiff(this.tsNow(now), o.tsEcr));
    }
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

  private receiveData(seq: number, payload: Uint8Array, fin: boolean, now: number): void {
    const c = this.host.counters;
    // Hold no byte beyond the buffer or the budget's grant. Rounding the scaled window up to keep
    // its right edge (tcb.ts windowField) promises up to a scale step more per ACK; a sender of
    // full segments fills the window in about rcvBufSize/MSS ACKs, so that much creep is held
    // (taken from the budget like any byte). Beyond it — a peer sending tiny segments to creep
    // the window open — bytes are dropped and sent again once the application reads.
    const held = this.unreleased + this.ooo.bytes + payload.length;
    const step = 2 ** this.rcvWscale - 1;
    const cap = Math.max(this.rcvBufSize, this.rcvReserved) + (Math.ceil(this.rcvBufSize / this.rcvMss) + 2) * step;
    if (held > Math.min(cap, this.reserveReceive(Math.min(held, cap)))) {
      const room = Math.max(0, Math.min(cap, this.rcvReserved) - this.unreleased - this.ooo.bytes);
      c.tcpMemoryDrops++;
      if (room === 0) { this.ackNow = true; return; }
      payload = payload.subarray(0, room);
      fin = false;
    }
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
    this.deliverCopy(payload);
    this.rcvNxt = seqAdd(this.rcvNxt, payload.length);
    if (!this.tsOk) this.timeWindow(now);
    if (fillsHole) {
      for (const chunk of this.ooo.takeFrom(this.rcvNxt)) {
        this.deliver(chunk);
        this.rcvNxt = seqAdd(this.rcvNxt, chunk.length);
      }
      this.ackNow = true;
    }
    // Delayed ACK: at least every second segment, else within the delay (RFC 9293 §3.8.6.3).
    const due = ++this.unackedSegments >= 2;
    if (fin || (due && !this.holdAck())) this.ackNow = true;
    else if (this.ackAt === Infinity) this.ackAt = now + this.host.config.tcpDelayedAck;
  }

  /**
   * In an input burst (one drain of the tunnel's queue) a single ACK at its end covers every
   * in-order segment of it, as Linux sends one for a GRO batch: a pure ACK costs a WireGuard
   * seal and a datagram on both ends. At most STRETCH_ACK_BYTES go unacknowledged meanwhile.
   */
  private holdAck(): boolean {
    if (seqDiff(this.rcvNxt, this.lastAckSent) >= STRETCH_ACK_BYTES) return false;
    if (!this.ackHeld) {
      if (!this.host.holdAck(this)) return false;
      this.ackHeld = true;
    }
    return true;
  }

  /** Without timestamps: the receiver RTT is the time a window takes to arrive (as Linux's tcp_rcv_rtt_measure). */
  private timeWindow(now: number): void {
    if (this.rcvRttSeq === undefined) {
      this.rcvRttSeq = this.rcvAdv;
      this.rcvRttAt = now;
    } else if (seqGe(this.rcvNxt, this.rcvRttSeq)) {
      this.rcvSpace.sampleRtt(now - this.rcvRttAt);
      this.rcvRttSeq = undefined;
    }
  }

  /**
   * Delivers in-order bytes that lie in the caller's packet. In an input burst they are gathered
   * in a staging buffer and go to the application as one chunk: one allocation and one onData per
   * burst instead of per segment, as a socket read returns what arrived meanwhile.
   */
  private deliverCopy(payload: Uint8Array): void {
    if (this.appClosed || this.destroyed) { this.host.counters.tcpDataAfterClose++; return; }
    if (this.staged !== undefined && this.stagedLength + payload.length > this.staged.length) this.deliverStaged();
    this.staged ??= this.host.stage(this);
    const staged = this.staged;
    if (staged !== undefined && payload.length <= staged.length) {
      staged.set(payload, this.stagedLength);
      this.stagedLength += payload.length;
      this.unreleased += payload.length;
      return;
    }
    this.deliver(payload.slice());
  }

  /** The input burst is over: its staged bytes go to the application now. */
  endBurst(): void {
    if (this.staged === undefined) return;
    this.deliverStaged();
    this.after();
  }

  override deliverStaged(): void {
    const staged = this.staged;
    if (staged === undefined) return;
    const n = this.stagedLength;
    this.staged = undefined;
    this.stagedLength = 0;
    if (n === 0 || this.appClosed || this.destroyed) {
      // close() already let go of undelivered bytes; an aborted connection's are not read.
      this.host.unstage(staged);
      return;
    }
    // A buffer at least half full is handed over as it is; less is copied out and the buffer reused.
    let chunk: Uint8Array;
    if (2 * n >= staged.length) {
      chunk = staged.subarray(0, n);
      this.host.unstage(undefined);
    } else {
      chunk = staged.slice(0, n);
      this.host.unstage(staged);
    }
    this.unreleased -= n; // deliver() counts them again
    this.deliver(chunk);
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
    if (this.tlpAt <= now) this.onProbeTimeout(now);
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
}
