/**
 * What the proxies and forwarders need from a tunnel (a Netstack satisfies it), how tunnel errors
 * map to proxy replies, and the two-way byte relay between a host socket and a tunnel socket.
 */
import type { Duplex } from 'node:stream';
import type { TunnelUdpSocket } from './udp.ts';
import { netError } from './errors.ts';

export interface TunnelNet {
  /** A TCP connection through the tunnel to `host:port`. */
  connect(options: { host: string; port: number; allowHalfOpen?: boolean }): Duplex & { localAddress?: string | undefined; localPort?: number | undefined };
  /** A UDP socket in the tunnel. */
  udp(): TunnelUdpSocket;
}

/** A logger line sink; proxies report one line per failure, never a credential. */
export type LogLine = (line: string) => void;

/**
 * Joins two sockets both ways with half-close: each side's end is passed on as an end once the
 * bytes before it are written, in whichever order the two ends come.
 *
 * A side that closes cleanly (its end read and ours to it written) leaves the other alone: that
 * one still has our bytes queued and finishes by itself. A side that errs or closes before both
 * its directions are done cuts a stream, so the other side is reset (RST), never ended: a FIN
 * would tell its peer that a truncated stream was whole.
 */
export function relay(a: Duplex, b: Duplex): void {
  corkPerTick(a, b);
  corkPerTick(b, a);
  a.pipe(b);
  b.pipe(a);
  const onError = () => { reset(a); reset(b); };
  a.on('error', onError);
  b.on('error', onError);
  a.on('close', () => { if (!closedCleanly(a)) reset(b); });
  b.on('close', () => { if (!closedCleanly(b)) reset(a); });
}

function closedCleanly(s: Duplex): boolean {
  return s.readableEnded && s.writableFinished;
}

/** Destroys `s` with RST where it can say so (net.Socket, TunnelSocket), else with an error. */
function reset(s: Duplex): void {
  if (s.destroyed) return;
  const r = (s as { resetAndDestroy?: () => unknown }).resetAndDestroy;
  if (typeof r === 'function') r.call(s);
  else s.destroy(netError('ECONNRESET', 'the other side of the relay was cut'));
}

/**
 * The tunnel delivers a TCP segment at a time (~1.4 KB); written one by one, each is a syscall on
 * a host socket. Corking the destination from the first chunk of a tick to the end of it turns a
 * burst into one writev. Registered before pipe() so that the first chunk is corked too.
 */
function corkPerTick(src: Duplex, dest: Duplex): void {
  let corked = false;
  const uncork = (): void => { corked = false; dest.uncork(); };
  src.on('data', () => {
    if (corked || dest.destroyed) return;
    corked = true;
    dest.cork();
    process.nextTick(uncork);
  });
}

/** The SOCKS5 reply code (RFC 1928 §6) for a tunnel error code. */
export function socksReplyFor(code: string | undefined): number {
  switch (code) {
    case 'EHOSTUNREACH': return 0x02; // outside the allowed IPs: not allowed by the ruleset
    case 'ENOTFOUND': case 'ESERVFAIL': return 0x04;
    case 'ECONNREFUSED': return 0x05;
    case 'ETIMEDOUT': return 0x06;
    case 'ENETUNREACH': return 0x03;
    default: return 0x01;
  }
}

/** The HTTP status a proxy answers for a tunnel error code. */
export function httpStatusFor(code: string | undefined): number {
  return code === 'ETIMEDOUT' ? 504 : 502;
}
