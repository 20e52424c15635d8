/**
 * A UDP socket of the userspace stack, shaped like a dgram.Socket: 'message' (Buffer, rinfo),
 * send(msg, port, address, callback), address(), close(). Destinations are resolved and
 * checked against the peers' allowed IPs by the owner (`Netstack.udp`), never sent from the host.
 */
import { EventEmitter } from 'node:events';
import type { UdpSocket } from './stack/types.ts';
import type { StackDriver } from './socket.ts';
import { netError } from './errors.ts';

export interface RemoteInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
  size: number;
}

/** Resolves a destination host to an IP literal that is routed into the tunnel, or throws. */
export type UdpRouter = (host: string) => string | Promise<string>;

/**
 * Datagrams to host names that may wait, per socket, for their name to resolve. Past this a send
 * fails with ENOBUFS: a sender faster than the resolver (a SOCKS5 UDP client naming its target)
 * must not queue datagrams without bound.
 */
export const MAX_WAITING_DATAGRAMS = 64;

export class TunnelUdpSocket extends EventEmitter {
  private readonly socket: UdpSocket;
  private readonly driver: StackDriver;
  private readonly route: UdpRouter;
  private closed = false;
  /** How to fail each datagram waiting for a name to resolve (close() fails them at once). */
  private readonly waiting = new Set<(error: Error) => void>();
  /** One lookup per name at a time, shared by its datagrams (which so keep their order). */
  private readonly resolving = new Map<string, Promise<string>>();

  /** @internal Made by Netstack.udp. */
  constructor(socket: UdpSocket, driver: StackDriver, route: UdpRouter) {
    super();
    this.socket = socket;
    this.driver = driver;
    this.route = route;
    socket.onMessage = (data, from) => {
      if (this.closed) return;
      const rinfo: RemoteInfo = { address: from.address, family: from.address.includes(':') ? 'IPv6' : 'IPv4', port: from.port, size: data.length };
      this.emit('message', Buffer.from(data.buffer, data.byteOffset, data.length), rinfo);
    };
  }

  /** The local address and port in the tunnel. */
  address(): { address: string; family: string; port: number } {
    const { address, port } = this.socket.local;
    return { address, family: address.includes(':') ? 'IPv6' : 'IPv4', port };
  }

  /**
   * Sends one datagram. Without a callback, failures are emitted as 'error' (as dgram does);
   * with one, they go to it.
   */
  send(msg: Uint8Array | string, port: number, address: string, callback?: (error: Error | null, bytes: number) => void): void {
    const data = typeof msg === 'string' ? Buffer.from(msg) : msg;
    const fail = (error: Error) => {
      if (callback) callback(error, 0);
      else this.emit('error', error);
    };
    if (this.closed) { fail(netError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'the UDP socket is closed')); return; }
    if (!Number.isInteger(port) || port < 1 || port > 65535) { fail(netError('ERR_SOCKET_BAD_PORT', `bad UDP port ${port}`)); return; }
    const deliver = (ip: string) => {
      if (this.closed) { fail(netError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'the UDP socket is closed')); return; }
      const ok = this.socket.send(data, { address: ip, port }, this.driver.now());
      this.driver.poke();
      if (!ok) { fail(netError('EMSGSIZE', `send to ${address}:${port} failed: the datagram was dropped (too large or no route)`, { syscall: 'send' })); return; }
      callback?.(null, data.length);
    };
    // IP literals are routed synchronously, so datagrams to them keep their order.
    let ip: string | Promise<string> | undefined = this.resolving.get(address);
    if (ip === undefined) {
      try {
        ip = this.route(address);
      } catch (err) {
        fail(err as Error);
        return;
      }
      if (typeof ip !== 'string') {
        const lookup = ip;
        this.resolving.set(address, lookup);
        const forget = () => { if (this.resolving.get(address) === lookup) this.resolving.delete(address); };
        lookup.then(forget, forget);
      }
    }
    if (typeof ip === 'string') { deliver(ip); return; }
    if (this.waiting.size >= MAX_WAITING_DATAGRAMS) {
      fail(netError('ENOBUFS', `send to ${address}:${port} dropped: ${MAX_WAITING_DATAGRAMS} datagrams already wait for names to resolve`, { syscall: 'send' }));
      return;
    }
    this.waiting.add(fail);
    ip.then((a) => { if (this.waiting.delete(fail)) deliver(a); }, (err: Error) => { if (this.waiting.delete(fail)) fail(err); });
  }

  /** Datagrams waiting for their destination's name to resolve. */
  get waitingDatagrams(): number {
    return this.waiting.size;
  }

  /** Closes the socket; emits 'close', then calls `callback`. */
  close(callback?: () => void): void {
    if (!this.closed) {
      this.closed = true;
      this.socket.close();
      // Nothing waits past the socket: each waiting datagram is reported as not sent.
      const waiting = [...this.waiting];
      this.waiting.clear();
      for (const fail of waiting) fail(netError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'the UDP socket closed before the destination\'s name resolved'));
      queueMicrotask(() => this.emit('close'));
    }
    if (callback) queueMicrotask(callback);
  }
}
