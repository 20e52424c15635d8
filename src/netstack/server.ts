/**
 * A TCP listener of the userspace stack as an EventEmitter shaped like net.Server: 'listening',
 * 'connection' (a TunnelSocket), 'close'. Hand the sockets to an http.Server with
 * `server.on('connection', (s) => httpServer.emit('connection', s))`.
 */
import { EventEmitter } from 'node:events';
import type { TcpListener } from './stack/types.ts';
import { TunnelSocket } from './socket.ts';
import type { StackDriver, TunnelSocketOptions } from './socket.ts';

export class TunnelServer extends EventEmitter {
  readonly listening: boolean = true;
  private readonly listener: TcpListener;
  private readonly sockets = new Set<TunnelSocket>();
  private closed = false;

  /**
   * @internal Made by Netstack.listen. `track` sees every accepted socket (the Netstack drains
   * them on close).
   */
  constructor(listener: TcpListener, driver: StackDriver, options: TunnelSocketOptions = {}, track?: (socket: TunnelSocket) => void) {
    super();
    this.listener = listener;
    listener.onConnection = (conn) => {
      const socket = new TunnelSocket(driver, options);
      socket.attach(conn, true);
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      track?.(socket);
      // Nobody to take it: refuse rather than leave an open connection nobody reads.
      if (this.listenerCount('connection') === 0) { socket.destroy(); return; }
      this.emit('connection', socket);
    };
    queueMicrotask(() => { if (!this.closed) this.emit('listening'); });
  }

  /** The address and port it listens on in the tunnel. */
  address(): { address: string; family: string; port: number } {
    const { address, port } = this.listener.local;
    return { address, family: address.includes(':') ? 'IPv6' : 'IPv4', port };
  }

  /** Live connections accepted by this server. */
  get connections(): number {
    return this.sockets.size;
  }

  /** Stops accepting; existing connections stay open (as net.Server.close). */
  close(callback?: () => void): this {
    if (!this.closed) {
      this.closed = true;
      (this as { listening: boolean }).listening = false;
      this.listener.close();
      queueMicrotask(() => this.emit('close'));
    }
    if (callback) queueMicrotask(callback);
    return this;
  }

  /** Destroys every connection this server accepted. */
  closeAllConnections(): void {
    for (const s of this.sockets) s.destroy();
  }
}
