/**
 * The retransmission timeout per RFC 6298: SRTT/RTTVAR smoothing (α = 1/8, β = 1/4),
 * RTO = SRTT + max(G, 4·RTTVAR) clamped to [min, max], exponential backoff on expiry. Karn's
 * algorithm lives with the caller: it never offers samples from retransmitted segments (except
 * through timestamps, RFC 7323 §4).
 */
/** Clock granularity G: our clock is in milliseconds. */
const G = 1;

export class RtoEstimator {
  srtt = 0;
  rttvar = 0;
  /** The RTO before backoff. */
  base: number;
  /** Number of consecutive backoffs applied. */
  backoffs = 0;
  hasSample = false;
  private readonly min: number;
  private readonly max: number;

  constructor(initial: number, min: number, max: number) {
    this.base = initial;
    this.min = min;
    this.max = max;
  }

  /** The current timeout, backoff included. */
  get rto(): number {
    return Math.min(this.max, this.base * 2 ** this.backoffs);
  }

  /** A round-trip measurement R (ms). Clears the backoff (RFC 6298 §5, note on Karn). */
  sample(r: number): void {
    r = Math.max(r, 0);
    if (!this.hasSample) {
      this.srtt = r;
      this.rttvar = r / 2;
      this.hasSample = true;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.base = Math.min(this.max, Math.max(this.min, this.srtt + Math.max(G, 4 * this.rttvar)));
    this.backoffs = 0;
  }

  /** The timer expired: double the RTO (§5.5), up to the maximum. */
  backoff(): void {
    if (this.base * 2 ** this.backoffs < this.max) this.backoffs++;
  }

  /**
   * RFC 6298 §5.7: if the SYN or SYN-ACK was retransmitted and no RTT sample exists, data
   * transmission starts with an RTO of 3 s.
   */
  resetAfterSynLoss(): void {
    if (!this.hasSample) this.base = Math.max(this.base, 3000);
    this.backoffs = 0;
  }
}
