/**
 * Congestion control: slow start and congestion avoidance (RFC 5681 §3.1, with appropriate byte
 * counting L = 1·SMSS, RFC 3465), fast retransmit and NewReno fast recovery (RFC 6582) or SACK
 * recovery (RFC 6675; the scoreboard and pipe live in the connection), and the
 * reaction to a retransmission timeout (RFC 5681 §3.1 eq. 4, loss window of one segment).
 */
export class NewReno {
  cwnd: number;
  ssthresh = 0x7fffffff;
  /** In fast recovery until SND.UNA passes `recover`. */
  inRecovery = false;
  /** RFC 6582 "recover": the highest sequence sent when the last loss was detected. */
  recover: number;
  /** Bytes acknowledged in congestion avoidance not yet turned into cwnd growth. */
  private acked = 0;
  private readonly smss: number;

  constructor(smss: number, iss: number) {
    this.smss = smss;
    // RFC 5681 §3.1 initial window.
    this.cwnd = smss > 2190 ? 2 * smss : smss > 1095 ? 3 * smss : 4 * smss;
    this.recover = iss;
  }

  /** New data acknowledged outside recovery. */
  onAck(ackedBytes: number): void {
    if (this.cwnd < this.ssthresh) {
      this.cwnd += Math.min(ackedBytes, this.smss);
    } else {
      // cwnd += SMSS·SMSS/cwnd per ACK, done exactly by counting bytes: one SMSS per cwnd acked.
      this.acked += ackedBytes;
      if (this.acked >= this.cwnd) {
        this.acked -= this.cwnd;
        this.cwnd += this.smss;
      }
    }
  }

  /** Third duplicate ACK (RFC 6582 §3.2 step 2): halve, inflate by the three segments that left. */
  enterRecovery(flightSize: number, sndMax: number): void {
    this.ssthresh = Math.max(Math.floor(flightSize / 2), 2 * this.smss);
    this.cwnd = this.ssthresh + 3 * this.smss;
    this.recover = sndMax;
    this.inRecovery = true;
    this.acked = 0;
  }

  /** A further duplicate ACK in recovery: one more segment has left the network. */
  onDupAckInRecovery(): void {
    this.cwnd += this.smss;
  }

  /** A partial ACK (RFC 6582 §3.2 step 5): deflate by what was acknowledged, add back one SMSS. */
  onPartialAck(ackedBytes: number): void {
    this.cwnd = Math.max(this.smss, this.cwnd - ackedBytes + (ackedBytes >= this.smss ? this.smss : 0));
  }

  /** A full ACK ends recovery (RFC 6582 §3.2 step 4, the first option). */
  exitRecovery(flightSize: number): void {
    this.cwnd = Math.min(this.ssthresh, Math.max(flightSize, this.smss) + this.smss);
    this.inRecovery = false;
  }

  /**
   * Loss detected with SACK (RFC 6675 §5 step 4): cwnd = ssthresh = FlightSize/2 and no
   * inflation; how much goes out is then governed by the scoreboard's pipe estimate.
   */
  enterSackRecovery(flightSize: number, sndMax: number): void {
    this.ssthresh = Math.max(Math.floor(flightSize / 2), 2 * this.smss);
    this.cwnd = this.ssthresh;
    this.recover = sndMax;
    this.inRecovery = true;
    this.acked = 0;
  }

  exitSackRecovery(): void {
    this.cwnd = this.ssthresh;
    this.inRecovery = false;
  }

  /** A loss probe repaired a lost tail (RFC 8985 §7.4.2): halve as on entering recovery. */
  onProbeRepair(): void {
    this.ssthresh = Math.max(Math.floor(this.cwnd / 2), 2 * this.smss);
    this.cwnd = this.ssthresh;
    this.acked = 0;
  }

  /** Retransmission timeout: RFC 5681 §3.1 eq. 4, cwnd = LW = 1 SMSS; recovery is abandoned. */
  onTimeout(flightSize: number, sndMax: number): void {
    this.ssthresh = Math.max(Math.floor(flightSize / 2), 2 * this.smss);
    this.cwnd = this.smss;
    this.inRecovery = false;
    this.recover = sndMax;
    this.acked = 0;
  }
}
