/**
 * The sending side of a connection: what goes out when (RFC 9293 §3.8.6.2.1 sender SWS avoidance,
 * RFC 5681/6582 windows, RFC 6675 SACK recovery with RFC 5827 early retransmit and RFC 3042
 * limited transmit), how ACKs move it (RFC 9293 §3.10.7.4 with the RFC 5961 ACK check, SACK
 * blocks, duplicate ACKs), and its timers: retransmission with RFC 6298 backoff and the user
 * timeout, the RFC 8985 tail loss probe, and zero-window probing.
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
    this.dsack = false;
    if (this.sackOk && seg.options.sack) this.takeSack(seg.options.sack, ack);
    const sackGrew = this.scoreboard.sackedBytes > sackedBefore;
    if (this.tlpEnd !== undefined) this.probeAcked(ack, acked > 0 || sackGrew || wnd !== this.sndWnd);
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
        this.rtxAt = this.tlpAt = Infinity;
        this.progressAt = now;
        this.timing = false;
      }
    }
    return true;
  }

  /**
   * Records SACK blocks (RFC 2018) that lie inside what is outstanding. A D-SACK (RFC 2883: the
   * first block below the ACK or inside the second) is only noted: it tells a loss probe that
   * what it resent had arrived before.
   */
  protected takeSack(blocks: number[], ack: number): void {
    const una = seqGt(ack, this.sndUna) ? ack : this.sndUna;
    this.host.counters.tcpSackBlocksReceived += blocks.length / 2;
    if (blocks.length >= 2 && (seqLe(blocks[1]!, ack) ||
      (blocks.length >= 4 && seqGe(blocks[0]!, blocks[2]!) && seqLe(blocks[1]!, blocks[3]!)))) this.dsack = true;
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
    // Karn (RFC 6298 §5): the backoff lasts until data sent only once is acknowledged. Timestamp
    // echoes older than the last retransmission give no sample, and under steady loss there is
    // nearly always a newer retransmission, so without this the backoff could outlive the losses
    // that caused it and climb toward its cap while data kept being acknowledged.
    if (this.rto.backoffs > 0 && seqGt(ack, this.rtxEnd)) this.rto.backoffs = 0;
    // Kept within the window so that sequence wrap-around cannot make it look ahead of us.
    if (seqLt(this.rtxEnd, ack)) this.rtxEnd = ack;
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
    this.armProbe(now);
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

  /**
   * The duplicate-ACK threshold: 3 (RFC 5681), or with two or three segments outstanding and
   * nothing new to send, one less than those segments (RFC 5827 early retransmit) — a small
   * window never collects three duplicates, and every loss in it would wait for the RTO. One
   * segment alone elicits no duplicate that would tell of its loss: that is left to the probe.
   */
  protected dupThresh(): number {
    const flight = seqDiff(this.sndMax, this.sndUna);
    const oseg = Math.ceil(flight / this.smss);
    if (oseg >= 4 || oseg < 2 || this.canSendNew(flight)) return 3;
    return oseg - 1;
  }

  /** Whether unsent data could go out now (limited transmit's allowance included). */
  private canSendNew(flight: number): boolean {
    const unsent = this.sendBuf.length - flight;
    const allowance = this.cc.cwnd + this.limitedTransmit() - flight;
    return unsent > 0 && Math.min(allowance, this.sndWnd - flight) >= Math.min(unsent, this.smss);
  }

  /** RFC 3042 limited transmit: a new segment for each of the first two duplicate ACKs. */
  protected limitedTransmit(): number {
    return !this.cc.inRecovery && this.dupAcks > 0 && this.dupAcks < 3 ? this.dupAcks * this.smss : 0;
  }

  protected onDupAck(now: number): void {
    this.dupAcks++;
    const thresh = this.dupThresh();
    if (this.sackOk) {
      // RFC 6675 §5: DupThresh duplicates, or more than DupThresh − 1 segments SACKed above the
      // hole; a new recovery may start once SND.UNA reached the last one's RecoveryPoint (§5.1).
      // Early retransmit's lower threshold wants a SACKed segment behind the hole (RFC 5827
      // §3.2), not a duplicate the network made of an ACK.
      const early = thresh < 3;
      if (!this.cc.inRecovery && (!early || !this.scoreboard.isEmpty) &&
        (this.dupAcks >= thresh || this.scoreboard.sackedBytes > (thresh - 1) * this.smss) &&
        seqGe(this.sndUna, this.cc.recover)) {
        this.host.counters.tcpFastRetransmits++;
        this.endProbe();
        this.cc.enterSackRecovery(seqDiff(this.sndMax, this.sndUna), this.sndMax);
        // RFC 6675 (4.3): the first segment presumed lost goes out at once, whatever the pipe
        // says; (C) then sends what the pipe allows.
        const end = seqAdd(this.sndUna, this.sendBuf.length);
        const len = this.scoreboard.nextHole(this.sndUna, end, this.smss)?.len ?? Math.min(this.smss, this.sendBuf.length);
        this.resend(now, this.sndUna, len);
        this.highRxt = seqAdd(this.sndUna, len);
        this.sackRecoveryOutput(now);
        this.rtxAt = now + this.rto.rto;
      }
      return;
    }
    if (this.cc.inRecovery) {
      this.cc.onDupAckInRecovery();
    } else if (this.dupAcks >= thresh && seqGt(this.sndUna, this.cc.recover)) {
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
    // RFC 6298 (5.1): a flight always has a retransmission timer once the window is open again —
    // after a zero window rewound SND.NXT, recovery's pipe may let nothing go out, and no ACK
    // would come to restart it.
    if (this.sndWnd > 0 && this.rtxAt === Infinity && this.sndMax !== this.sndUna && this.canSendData()) {
      this.rtxAt = now + this.rto.rto;
    }
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
      // Limited transmit sends only new data: off ≥ the flight when SND.NXT is at SND.MAX.
      const lt = seqLt(this.sndNxt, this.sndMax) ? 0 : this.limitedTransmit();
      const usable = Math.min(this.cc.cwnd + lt, this.sndWnd) - off;
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
    this.emitSegment(now, flags, seq, len, off);
    const end = seqAdd(seq, len + (fin ? 1 : 0));
    this.retransmitted(now, end);
    if (seqLt(this.sndNxt, end)) this.sndNxt = end;
    if (seqGt(end, this.sndMax)) this.sndMax = end;
  }

  /**
   * Bookkeeping for every retransmission: Karn's rule (no RTT from the timed segment, no
   * timestamp echo older than this one) and how far retransmitted data reaches, so that an ACK
   * beyond it — for data sent once — ends the backoff.
   */
  protected retransmitted(now: number, end: number): void {
    this.host.counters.tcpRetransmits++;
    this.timing = false;
    this.rtxTs = this.tsNow(now);
    if (seqGt(end, this.rtxEnd)) this.rtxEnd = end;
    if (this.rtxAt === Infinity) this.rtxAt = now + this.rto.rto;
  }

  protected sendData(now: number, off: number, len: number, fin: boolean): void {
    const seq = this.sndNxt;
    const retransmit = seqLt(seq, this.sndMax);
    let flags = ACK | (fin ? FIN : 0);
    if (len > 0 && len === this.sendBuf.length - off) flags |= PSH;
    this.emitSegment(now, flags, seq, len, off);
    if (retransmit) this.retransmitted(now, seqAdd(seq, len + (fin ? 1 : 0)));
    if (!retransmit && !this.timing && !this.tsOk && len > 0) {
      this.timing = true;
      this.rttSeq = seqAdd(seq, len);
      this.rttStart = now;
    }
    if (this.sndMax === this.sndUna) this.progressAt = now;
    this.sndNxt = seqAdd(seq, len + (fin ? 1 : 0));
    if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
    if (this.rtxAt === Infinity) this.rtxAt = now + this.rto.rto;
    if (!retransmit) this.armProbe(now);
  }

  // --- RFC 8985 tail loss probe ---------------------------------------------------------------

  /**
   * (Re)arms the probe timeout after new data went out or new data was acknowledged (RFC 8985
   * §7.2): 2·SRTT, plus room for a delayed ACK when one segment is out (as Linux), and only when
   * it comes before the RTO. Small windows and lost ACKs otherwise leave a loss to the RTO:
   * nothing comes back to count as a duplicate.
   */
  protected armProbe(now: number): void {
    this.tlpAt = Infinity;
    if (!this.sackOk || !this.rto.hasSample || this.cc.inRecovery || this.tlpEnd !== undefined ||
      this.rto.backoffs > 0 || this.sndMax === this.sndUna || this.sndWnd === 0 || seqLt(this.sndNxt, this.sndMax)) return;
    const flight = seqDiff(this.sndMax, this.sndUna);
    const pto = 2 * this.rto.srtt + (flight <= this.smss ? this.host.config.tcpMinRto : 2);
    if (now + pto < this.rtxAt) this.tlpAt = now + pto;
  }

  /**
   * The probe (RFC 8985 §7.3): one new segment if the peer's window allows, else the last
   * segment again, so that the peer's ACK — with SACK blocks — starts recovery without the RTO.
   */
  protected onProbeTimeout(now: number): void {
    this.tlpAt = Infinity;
    if (!this.canSendData() || this.sndMax === this.sndUna || this.cc.inRecovery || this.tlpEnd !== undefined ||
      seqLt(this.sndNxt, this.sndMax)) return;
    this.host.counters.tcpLossProbes++;
    const flight = seqDiff(this.sndMax, this.sndUna);
    const unsent = this.sendBuf.length - flight;
    const len = Math.min(unsent, this.smss, this.sndWnd - flight);
    if (unsent > 0 && len > 0) {
      this.sendData(now, flight, len, this.finQueued && len === unsent);
      this.tlpRetrans = false;
    } else {
      const data = Math.min(this.sendBuf.length, flight);
      const last = Math.min(this.smss, data);
      this.resend(now, seqAdd(this.sndUna, data - last), last);
      this.tlpRetrans = true;
    }
    this.tlpAt = Infinity; // sendData re-armed it: one probe an episode
    this.tlpEnd = this.sndMax;
    this.rtxAt = now + this.rto.rto;
  }

  /** Fast recovery or the RTO takes over from a probe: no probe pending, no episode open. */
  protected endProbe(): void {
    this.tlpAt = Infinity;
    this.tlpEnd = undefined;
  }

  /**
   * An ACK during a probe's episode (RFC 8985 §7.4.2, as Linux): new data sent as the probe
   * needs only its ACK; a resent segment was spurious if a D-SACK or a pure duplicate answers it,
   * and repaired a lost tail — calling for the same reduction as fast recovery — once data
   * beyond it is acknowledged with no D-SACK first. An ACK of exactly the probe says neither:
   * the original's ACK may have been the delayed one.
   */
  protected probeAcked(ack: number, news: boolean): void {
    const end = this.tlpEnd!;
    if (seqLt(ack, end)) return;
    if (!this.tlpRetrans || this.dsack) { this.tlpEnd = undefined; return; }
    if (seqGt(ack, end)) {
      if (!this.cc.inRecovery) this.cc.onProbeRepair();
      this.tlpEnd = undefined;
    } else if (!news) {
      this.tlpEnd = undefined;
    }
  }

  /** Resends the first unacknowledged segment whatever the windows say (timeouts, fast retransmit). */
  protected retransmitFirst(now: number): void {
    const len = Math.min(this.smss, this.sendBuf.length);
    const fin = this.finQueued && !this.finAcked && len === this.sendBuf.length;
    if (len === 0 && !fin) return;
    let flags = ACK | (fin ? FIN : 0);
    if (len > 0 && len === this.sendBuf.length) flags |= PSH;
    this.emitSegment(now, flags, this.sndUna, len, 0);
    const end = seqAdd(this.sndUna, len + (fin ? 1 : 0));
    this.retransmitted(now, end);
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
      // Karn: a SYN-ACK may echo the first SYN's clock (the peer answers a repeated SYN with the
      // timestamp it kept); that would time the whole retransmission delay as RTT.
      this.rtxTs = this.tsNow(now);
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
    this.endProbe();
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
