/**
 * ICMP (RFC 792) and ICMPv6 (RFC 4443): we answer echo requests to our addresses, hand echo
 * replies to `onEchoReply`, send Destination Unreachable for closed UDP ports, and count the rest.
 * Errors are never sent in reply to errors, fragments beyond the first or multicast.
 */
import { fold, sum16, pseudoHeaderSum } from '../../core/checksum.ts';
import type { EchoReply } from './types.ts';
import { PROTO_ICMP, PROTO_ICMPV6 } from './ip.ts';
import type { Family, IpInput, StackHost } from './ip.ts';

const ECHO_REPLY_4 = 0;
const UNREACHABLE_4 = 3;
const ECHO_REQUEST_4 = 8;
const UNREACHABLE_6 = 1;
const ECHO_REQUEST_6 = 128;
const ECHO_REPLY_6 = 129;
/** An ICMPv6 error must fit the IPv6 minimum MTU (RFC 4443 §2.4 c). */
const MIN_MTU_6 = 1280;
/** Error rate limit (RFC 4443 §2.4 f, RFC 1812 §4.3.2.8): a token bucket of 50, refilled at 100/s. */
const ERROR_BURST = 50;
const ERRORS_PER_MS = 0.1;

/** A Destination Unreachable about a datagram we sent, for the transport it came from. */
export type IcmpUnreachable = (family: Family, quoted: Uint8Array, reason: 'port' | 'host') => void;

export class Icmp {
  onEchoReply?: (reply: EchoReply) => void;
  /** Where Destination Unreachable messages go (TCP, to fail connection attempts). */
  onUnreachable?: IcmpUnreachable;
  private readonly host: StackHost;
  private errorTokens = ERROR_BURST;
  private errorTokensAt = -Infinity;

  constructor(host: StackHost) {
    this.host = host;
  }

  input(ip: IpInput): void {
    const c = this.host.counters;
    c.icmpReceived++;
    const m = ip.payload;
    if (m.length < 8) { c.icmpMalformed++; return; }
    const acc = ip.family === 4 ? sum16(m, 0, m.length)
      : sum16(m, 0, m.length, pseudoHeaderSum(ip.src, ip.dst, PROTO_ICMPV6, m.length));
    if (fold(acc) !== 0xffff) { c.icmpBadChecksum++; return; }
    const type = m[0]!;
    const request = ip.family === 4 ? ECHO_REQUEST_4 : ECHO_REQUEST_6;
    const reply = ip.family === 4 ? ECHO_REPLY_4 : ECHO_REPLY_6;
    if (type === request) {
      if (m[1] !== 0) { c.icmpMalformed++; return; }
      this.echo(ip.family, ip.dst, ip.src, reply, m.subarray(4, 8), m.subarray(8));
      c.icmpEchoAnswered++;
    } else if (type === reply) {
      c.icmpEchoReplies++;
      this.onEchoReply?.({
        from: ip.srcText,
        id: (m[4]! << 8) | m[5]!,
        sequence: (m[6]! << 8) | m[7]!,
        payload: m.slice(8),
      });
    } else if (ip.family === 4 ? type < 128 && type !== 0 && type !== 8 : type < 128) {
      c.icmpErrorsReceived++;
      if (type === (ip.family === 4 ? UNREACHABLE_4 : UNREACHABLE_6)) {
        // v4 code 3 / v6 code 4 is port unreachable; the rest mean the host or network is.
        const port = m[1] === (ip.family === 4 ? 3 : 4);
        this.onUnreachable?.(ip.family, m.subarray(8), port ? 'port' : 'host');
      }
    } else {
      c.icmpUnhandled++;
    }
  }

  ping(family: Family, src: Uint8Array, dst: Uint8Array, id: number, sequence: number, payload: Uint8Array): boolean {
    const idSeq = new Uint8Array([id >> 8 & 0xff, id & 0xff, sequence >> 8 & 0xff, sequence & 0xff]);
    return this.echo(family, src, dst, family === 4 ? ECHO_REQUEST_4 : ECHO_REQUEST_6, idSeq, payload);
  }

  /** Port unreachable for a datagram nobody listens to, quoting as much of it as allowed. */
  portUnreachable(ip: IpInput, now: number): void {
    const v4 = ip.family === 4;
    // Never about multicast/broadcast destinations (RFC 1122 §3.2.2, RFC 4443 §2.4 e).
    if (v4 ? ip.dst[0]! >= 224 || ip.dst[3] === 255 : ip.dst[0] === 0xff) return;
    this.errorTokens = Math.min(ERROR_BURST, this.errorTokens + (now - this.errorTokensAt) * ERRORS_PER_MS);
    this.errorTokensAt = now;
    if (this.errorTokens < 1) { this.host.counters.icmpErrorsRateLimited++; return; }
    this.errorTokens--;
    const room = v4 ? this.host.config.mtu - 20 - 8 : MIN_MTU_6 - 40 - 8;
    const quote = ip.packet.subarray(0, Math.min(ip.packet.length, room));
    const length = 8 + quote.length;
    const sent = this.host.sendIp(ip.family, ip.dst, ip.src, v4 ? PROTO_ICMP : PROTO_ICMPV6, length, (b, o) => {
      b[o] = v4 ? UNREACHABLE_4 : UNREACHABLE_6;
      b[o + 1] = v4 ? 3 : 4;
      b.set(quote, o + 8);
    }, 2);
    if (sent) this.host.counters.icmpUnreachableSent++;
  }

  private echo(family: Family, src: Uint8Array, dst: Uint8Array, type: number, idSeq: Uint8Array, data: Uint8Array): boolean {
    return this.host.sendIp(family, src, dst, family === 4 ? PROTO_ICMP : PROTO_ICMPV6, 8 + data.length, (b, o) => {
      b[o] = type;
      b.set(idSeq, o + 4);
      b.set(data, o + 8);
    }, 2, true);
  }
}
