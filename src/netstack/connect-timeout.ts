/**
 * A bound on how long a tunnel connect() may stay "connecting". Without it a dial to a peer that
 * never answers (no handshake, host down) waits out the stack's SYN retries, over a minute, and
 * a SOCKS5 or HTTP client behind the proxy hangs that long with no reply.
 */
import type { Clock } from '../device/clock.ts';
import { formatHostPort } from './addr.ts';
import { netError } from './errors.ts';

/** What the timer needs of a TunnelSocket. */
export interface ConnectingSocket {
  readonly connecting: boolean;
  readonly destroyed: boolean;
  destroy(error?: Error): unknown;
  once(event: 'connect' | 'close', listener: () => void): unknown;
}

/**
 * Fails `socket` with ETIMEDOUT (the stack resets the half-open connection) unless it connects
 * or closes within `timeoutMs` of the clock. 0, a negative or a non-finite value arms nothing.
 */
export function armConnectTimeout(socket: ConnectingSocket, clock: Clock, timeoutMs: number, host: string, port: number): void {
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) return;
  const timer = clock.setTimer(() => {
    if (!socket.connecting || socket.destroyed) return;
    socket.destroy(netError('ETIMEDOUT',
      `connect to ${formatHostPort(host, port)} timed out after ${timeoutMs} ms (no answer through the tunnel: is the peer up, its Endpoint and keys right?)`,
      { syscall: 'connect', address: host, port }));
  }, timeoutMs);
  const clear = () => clock.clearTimer(timer);
  socket.once('connect', clear);
  socket.once('close', clear);
}
