/**
 * A TCP connection of the userspace stack as a Node `Duplex`, usable where a net.Socket is
 * expected (http.request's createConnection, tls.connect({ socket }), pipe, a proxy).
 *
 * Backpressure both ways:
 * - receiving: bytes the stack delivers count against its receive window until released. A
 *   chunk that Readable.push() accepts below its high-water mark is released at once; once
 *   push() says stop, further bytes stay unreleased (the window closes, the peer stops) until
 *   Node asks for more with `_read`.
 * - sending: `_write` completes only when the stack accepted the whole chunk; the rest waits
 *   for the stack's onDrain.
 *
 * Releases are batched into a microtask: it coalesces window updates and keeps this class from
 * calling back into the stack while the stack is delivering to it.
 *
 * Closing, as net.Socket over a kernel socket: 'finish' once the stack has accepted every byte
 * and queued the FIN; 'close' once the socket is released, while the stack may still be
 * delivering what it accepted (it lingers, as the kernel does, and the Netstack drains it on
 * close()). `destroy()` with nothing unsent ends with a FIN; with writes the stack has not taken
 * yet, or `resetAndDestroy()`, or on an error, with RST, so the peer never sees a clean end at a
 * short offset.
 */
import { Duplex } from 'node:stream';
import type { TcpConnection } from './stack/types.ts';
import { formatHostPort } from './addr.ts';
import { netError } from './errors.ts';
import type { NetError } from './errors.ts';

/**
 * What a socket needs from its owner: the stack's clock, a way to re-arm the stack's timer, and
 * somewhere to hand a connection whose socket is gone while the stack still delivers its data.
 */
export interface StackDriver {
  now(): number;
  poke(): void;
  linger?(conn: TcpConnection): void;
}

/** Everything written, and the FIN, has been acknowledged (or the connection is gone). */
export function sendSettled(conn: TcpConnection): boolean {
  const s = conn.state;
  return s === 'FIN-WAIT-2' || s === 'TIME-WAIT' || s === 'CLOSED';
}

export interface TunnelSocketOptions {
  /** Like net.Socket: when false (the default), the socket ends its side when the peer ends. */
  allowHalfOpen?: boolean;
}

interface PendingWrite {
  data: Uint8Array;
  callback: (error?: Error | null) => void;
}

export class TunnelSocket extends Duplex {
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  remoteFamily: 'IPv4' | 'IPv6' | undefined;
  localAddress: string | undefined;
  localPort: number | undefined;
  /** True until the handshake completes (as net.Socket). */
  connecting = true;
  bytesRead = 0;
  bytesWritten = 0;

  private readonly driver: StackDriver;
  private conn: TcpConnection | null = null;
  private connGone = false;
  private unreleased = 0;
  private toRelease = 0;
  private releaseQueued = false;
  private pending: PendingWrite | null = null;
  private finalCallback: ((error?: Error | null) => void) | null = null;
  private keepAliveMs = 0;
  private idleMs = 0;
  private idleTimer: NodeJS.Timeout | null = null;
  private resetOnDestroy = false;

  /** @internal Made by Netstack.connect and a TunnelServer. */
  constructor(driver: StackDriver, options: TunnelSocketOptions = {}) {
    super({ allowHalfOpen: options.allowHalfOpen ?? false });
    this.driver = driver;
  }

  /** Binds the stack's connection; `established` for passive opens (a listener's connection). */
  attach(conn: TcpConnection, established: boolean): void {
    this.conn = conn;
    this.localAddress = conn.local.address;
    this.localPort = conn.local.port;
    this.remoteAddress = conn.remote.address;
    this.remotePort = conn.remote.port;
    this.remoteFamily = conn.remote.address.includes(':') ? 'IPv6' : 'IPv4';
    conn.events = {
      onConnect: () => this.onConnected(),
      onData: (chunk) => this.onData(chunk),
      onEnd: () => { this.push(null); },
      onDrain: () => this.continueWrite(),
      onClose: (error) => this.onConnClose(error),
    };
    if (established) this.onConnected();
  }

  private onConnected(): void {
    if (!this.connecting || !this.conn) return;
    this.connecting = false;
    // Local address and port are final only now for some stacks.
    this.localAddress = this.conn.local.address;
    this.localPort = this.conn.local.port;
    if (this.keepAliveMs > 0) this.conn.setKeepAlive(this.keepAliveMs, this.driver.now());
    this.resetIdle();
    this.emit('connect');
    this.emit('ready');
    if (this.pending) {
      const p = this.pending;
      this.pending = null;
      this.writeSome(p);
    }
    if (this.finalCallback && !this.pending) this.finishWriting();
  }

  private onData(chunk: Uint8Array): void {
    if (this.destroyed) return;
    this.bytesRead += chunk.length;
    this.resetIdle();
    const buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    if (this.push(buffer) && this.unreleased === 0) this.release(chunk.length);
    else this.unreleased += chunk.length;
  }

  /** @internal Readable: more data wanted. */
  override _read(): void {
    if (this.unreleased > 0) {
      const n = this.unreleased;
      this.unreleased = 0;
      this.release(n);
    }
  }

  private release(n: number): void {
    this.toRelease += n;
    if (this.releaseQueued) return;
    this.releaseQueued = true;
    queueMicrotask(() => {
      this.releaseQueued = false;
      const amount = this.toRelease;
      this.toRelease = 0;
      if (this.conn && !this.connGone && amount > 0) {
        this.conn.release(amount, this.driver.now());
        this.driver.poke();
      }
    });
  }

  /** @internal Writable: queue a chunk on the connection. */
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const p: PendingWrite = { data: new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length), callback };
    if (this.connecting) { this.pending = p; return; }
    this.writeSome(p);
  }

  private writeSome(p: PendingWrite): void {
    if (!this.conn || this.connGone) {
      p.callback(this.pipeError());
      return;
    }
    const n = this.conn.write(p.data, this.driver.now());
    this.driver.poke();
    this.bytesWritten += n;
    if (n > 0) this.resetIdle();
    if (n >= p.data.length) { p.callback(); return; }
    if (n === 0 && (this.conn.state === 'CLOSED' || this.connGone)) { p.callback(this.pipeError()); return; }
    this.pending = { data: p.data.subarray(n), callback: p.callback };
  }

  private continueWrite(): void {
    if (!this.pending || this.connecting) return;
    const p = this.pending;
    this.pending = null;
    this.writeSome(p);
  }

  /** @internal Writable: end() sends a FIN. */
  override _final(callback: (error?: Error | null) => void): void {
    this.finalCallback = callback;
    if (!this.connecting) this.finishWriting();
  }

  private finishWriting(): void {
    const callback = this.finalCallback!;
    this.finalCallback = null;
    if (this.conn && !this.connGone) {
      this.conn.shutdown(this.driver.now());
      this.driver.poke();
    }
    callback();
  }

  /** @internal Duplex: destroy() resets the connection. */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.clearIdle();
    const conn = this.conn;
    if (conn && !this.connGone) {
      this.connGone = true;
      conn.events = {};
      // Like closing a kernel socket: FIN after the queued data normally; RST on error, on
      // resetAndDestroy(), while the handshake is under way, or when bytes handed to write()
      // have not reached the stack (a FIN would tell the peer that a cut stream was whole).
      const unsent = this.pending !== null || this.writableLength > 0;
      if (error || this.resetOnDestroy || this.connecting || unsent) {
        conn.abort(this.driver.now());
      } else {
        conn.close(this.driver.now());
        if (!sendSettled(conn)) this.driver.linger?.(conn);
      }
      this.driver.poke();
    }
    if (this.pending) {
      const p = this.pending;
      this.pending = null;
      p.callback(error ?? this.pipeError());
    }
    callback(error);
  }

  private onConnClose(error?: { code: string; message: string }): void {
    this.connGone = true;
    if (error) {
      const syscall = this.connecting ? 'connect' : 'read';
      const where = this.remoteAddress !== undefined ? ` ${formatHostPort(this.remoteAddress, this.remotePort ?? 0)}` : '';
      this.destroy(netError(error.code, `${syscall} ${error.code}${where}: ${error.message}`, {
        syscall, address: this.remoteAddress, port: this.remotePort,
      }));
      return;
    }
    // A clean close: data already pushed stays readable; autoDestroy finishes once both sides end.
    if (!this.readableEnded) this.push(null);
    if (this.pending) {
      const p = this.pending;
      this.pending = null;
      p.callback(this.pipeError());
    }
  }

  /** Closes the connection with RST and destroys the socket (as net.Socket.resetAndDestroy). */
  resetAndDestroy(): this {
    this.resetOnDestroy = true;
    return this.destroy();
  }

  /**
   * The writable side is finished and the stack has delivered it all, FIN included (or the
   * connection is gone): nothing this socket accepted is still on its way.
   */
  get settled(): boolean {
    if (this.connGone || this.destroyed) return true;
    if (!this.writableFinished) return false;
    return this.conn === null || sendSettled(this.conn);
  }

  /**
   * Our FIN is acknowledged and the peer's has not come (FIN-WAIT-2): close() gives it a moment
   * to arrive, so that it is acknowledged instead of retransmitted into a closed tunnel.
   */
  get awaitingPeerFin(): boolean {
    return !this.connGone && !this.destroyed && this.conn !== null && this.conn.state === 'FIN-WAIT-2';
  }

  private pipeError(): NetError {
    return netError('EPIPE', 'write EPIPE: the connection is closed', { syscall: 'write' });
  }

  // ---------------------------------------------------------------- net.Socket look-alikes

  /** Idle timeout as net.Socket: emits 'timeout' after `ms` without traffic (0 turns it off). */
  setTimeout(ms: number, callback?: () => void): this {
    this.idleMs = ms;
    if (callback) {
      if (ms === 0) this.removeListener('timeout', callback);
      else this.once('timeout', callback);
    }
    this.resetIdle();
    return this;
  }

  get timeout(): number | undefined {
    return this.idleMs || undefined;
  }

  /** TCP keepalive probes after `initialDelay` ms of silence, as net.Socket.setKeepAlive. */
  setKeepAlive(enable = false, initialDelay = 0): this {
    this.keepAliveMs = enable ? (initialDelay > 0 ? initialDelay : 60_000) : 0;
    if (this.conn && !this.connecting && !this.connGone) this.conn.setKeepAlive(this.keepAliveMs, this.driver.now());
    return this;
  }

  /** The stack sends as soon as it can; there is no Nagle delay to turn off. */
  setNoDelay(_noDelay?: boolean): this {
    return this;
  }

  /** The socket never holds the event loop open by itself (the UDP socket underneath does). */
  ref(): this { return this; }
  /** For net.Socket compatibility: the tunnel, not the socket, keeps the process alive. */
  unref(): this { return this; }

  /** The local address and port in the tunnel, or {} before the connection exists. */
  address(): { address: string; family: string; port: number } | Record<string, never> {
    if (this.localAddress === undefined) return {};
    return { address: this.localAddress, family: this.localAddress.includes(':') ? 'IPv6' : 'IPv4', port: this.localPort ?? 0 };
  }

  get pendingConnection(): boolean {
    return this.conn === null;
  }

  get readyState(): string {
    if (this.connecting) return 'opening';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }

  /** The stack's bytes queued and not yet acknowledged (plus a write waiting for room). */
  get bufferedAmount(): number {
    return (this.conn?.bufferedAmount ?? 0) + (this.pending?.data.length ?? 0);
  }

  private resetIdle(): void {
    this.clearIdle();
    if (this.idleMs <= 0 || this.destroyed) return;
    this.idleTimer = setTimeout(() => { this.idleTimer = null; this.emit('timeout'); }, this.idleMs);
    this.idleTimer.unref();
  }

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }
}
