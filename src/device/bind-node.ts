/**
 * The UDP bind on node:dgram: one IPv4 and one IPv6-only socket on the same port (dual stack
 * like wireguard-go). One syscall per datagram; batching (recvmmsg/sendmmsg) and sticky source
 * addresses (IP_PKTINFO) need a native path and come with the performance work.
 */
import dgram from 'node:dgram';
import type { Bind, BindEndpoint, BindReceiver } from './bind.ts';
import { EndpointCache } from './endpoint-address.ts';
import { setSocketMark } from './linux/sockopt.ts';

const SOCKET_BUFFER = 4 * 1024 * 1024;

/** A NodeUdpBind's counters. */
export interface NodeBindStats {
  sendErrors: number;
}

export class NodeUdpBind implements Bind {
  port = 0;
  readonly stats: NodeBindStats = { sendErrors: 0 };
  private v4: dgram.Socket | null = null;
  private v6: dgram.Socket | null = null;
  private readonly endpoints = new EndpointCache();
  private mark = 0;
  private readonly onSendError = () => { this.stats.sendErrors++; };

  async open(port: number, receiver: BindReceiver): Promise<number> {
    await this.close();
    // With port 0 the IPv6 socket must take the port the IPv4 one got; retry if it is taken.
    for (let attempt = 0; ; attempt++) {
      const v4 = await bindSocket('udp4', port, '0.0.0.0');
      const actual = v4.address().port;
      let v6: dgram.Socket | null = null;
      try {
        v6 = await bindSocket('udp6', actual, '::');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE' && port === 0 && attempt < 10) { v4.close(); continue; }
        if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') { v4.close(); throw err; }
      }
      for (const s of [v4, v6]) {
        if (!s) continue;
        try { s.setRecvBufferSize(SOCKET_BUFFER); s.setSendBufferSize(SOCKET_BUFFER); } catch { /* capped by the kernel */ }
        s.on('message', (msg, rinfo) => {
          receiver(new Uint8Array(msg.buffer, msg.byteOffset, msg.length), this.endpoints.get(rinfo.address, rinfo.port));
        });
        s.on('error', this.onSendError);
      }
      this.v4 = v4;
      this.v6 = v6;
      this.port = actual;
      if (this.mark !== 0) this.setMark(this.mark);
      return actual;
    }
  }

  send(datagram: Uint8Array, to: BindEndpoint): void {
    const s = to.family === 4 ? this.v4 : this.v6;
    if (!s) { this.stats.sendErrors++; return; }
    // dgram sends after a tick: copy, because the caller reuses its buffer.
    s.send(Buffer.from(datagram), to.port, to.address, (err) => { if (err) this.stats.sendErrors++; });
  }

  endpointFor(address: string, port: number): BindEndpoint {
    return this.endpoints.get(address, port);
  }

  /** SO_MARK on both sockets (Linux); kept and re-applied when the port changes. */
  setMark(mark: number): void {
    this.mark = mark >>> 0;
    for (const s of [this.v4, this.v6]) if (s) setSocketMark(s, this.mark);
  }

  /** Closes the sockets; resolves when they are closed. */
  async close(): Promise<void> {
    const sockets = [this.v4, this.v6].filter((s): s is dgram.Socket => s !== null);
    this.v4 = this.v6 = null;
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

function bindSocket(type: 'udp4' | 'udp6', port: number, address: string): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type, ipv6Only: type === 'udp6', reuseAddr: false });
    s.once('error', (err) => { s.close(); reject(err); });
    s.bind(port, address, () => { s.removeAllListeners('error'); resolve(s); });
  });
}
