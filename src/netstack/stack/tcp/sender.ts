/**
 * The sending side of a connection: what goes out when (RFC 9293 §3.8.6.2.1 sender SWS avoidance,
 * RFC 5681/6582 windows, RFC 6675 SACK recovery), how ACKs move it (RFC 9293 §3.10.7.4 with the
 * RFC 5961 ACK check, SACK blocks, duplicate ACKs), and its timers: retransmission with RFC 6298
 * backoff and the user timeout, and zero-window probing.
 */
import { ACK, FIN, PSH, SYN } from './segment.ts';
import type { TcpSegment } from './segment.ts';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from './seq.ts';
import { Tcb } from './tcb.ts';

export abstract class Sender extends Tcb {
  /** Returns false if the segment is to be dropped after the ACK field. */
  protected processAck(seg: TcpSegment, now: number): boolean {
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
  protected takeSack(blocks: number[], ack: number): void {
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

  protected onNewAck(ack: number, acked: number, seg: TcpSegment, now: number): void {
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
    if (this.writeBlocked && dataAcked > 0) this.growSendBuffer();
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

  /**
   * Send-buffer autotuning (as Linux's tcp_sndbuf_expand): a writer held back by the buffer gets
   * room for twice what can be in flight — the congestion window or the peer's largest window,
   * whichever is smaller — so one window is queued while another is on the wire.
   */
  protected growSendBuffer(): void {
    if (this.sndBufSize >= this.sndBufMax || this.host.memory.underPressure) return;
    const want = Math.min(this.sndBufMax, 2 * Math.min(this.cc.cwnd, this.maxSndWnd));
    if (want <= this.sndBufSize) return;
    this.sndBufSize = want;
    this.host.counters.tcpSendBufferGrown++;
  }

  protected onDupAck(now: number): void {
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

  /** Sends what the windows allow (RFC 9293 §3.8.6.2.1 sender SWS avoidance), then any owed ACK. */
  protected output(now: number): void {
    if (this.cc.inRecovery && this.sackOk) this.sackRecoveryOutput(now);
    else this.windowOutput(now);
    if (this.sndWnd === 0 && this.rtxAt === Infinity && this.persistAt === Infinity &&
      (this.sendBuf.length > seqDiff(this.sndNxt, this.sndUna) || (this.finQueued && !this.finAcked && this.sndMax === this.sndUna))) {
      this.persistAt = now + this.persistInterval();
    }
  }

  protected windowOutput(now: number): void {
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
      // A small segment only when it is all we have, fills a hole up to a SACKed range, or
      // nothing is in flight; a window that only allows a sliver waits (sender SWS avoidance).
      if (len < limit && len < dataLeft && off > 0) break;
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
  protected sackRecoveryOutput(now: number): void {
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
  protected resend(now: number, seq: number, len: number): void {
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

  protected sendData(now: number, off: number, len: number, fin: boolean): void {
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
  protected retransmitFirst(now: number): void {
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

  protected onRetransmitTimeout(now: number): void {
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

  protected onPersist(now: number): void {
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
}
